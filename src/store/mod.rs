//! The store: one `SQLite` file (WAL), or a PostgreSQL database
//! (`store.url`), that holds all state — carts and their items, orders,
//! the sends ledger, suppressions and runs. The schema is a list of
//! migrations applied on open ([`engine`] says how one set of statements
//! serves both engines; [`postgres`] holds PostgreSQL's own).

mod bulk;
mod candidates;
mod carts;
mod catalog;
mod claim_sets;
mod clicks;
mod copy;
mod coupons;
pub mod engine;
mod history;
mod inbox;
mod items;
mod ledger;
mod orders;
pub mod postgres;
mod report;
mod retention;
mod snapshot;
mod staging;
mod switch_on;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod watermarks;

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use rusqlite::types::Value;
use rusqlite::vtab::array::Array;
use rusqlite_migration::{M, Migrations};

use crate::error::{Error, Result};
use engine::{DbError, DbResult, Engine};

pub use bulk::BulkLoad;
pub use carts::CartImport;
pub use catalog::ProductImport;
pub use clicks::{Click, Recipient};
pub use copy::TableCopy;
pub use coupons::{CouponImport, Draw, IssuedCoupon, PoolStock};
pub use inbox::{Effect, InboxReport, SentMail};
pub use items::encode_items;
pub use ledger::{Claim, Confirmation, DeadClaim, PassOver, RunCounts, UnknownSend};
pub use orders::OrderImport;
pub use postgres::Taken;
pub use report::{ReportClick, ReportData, ReportOrder, ReportSend, RunRow};
pub use retention::{Forgotten, Pruned, forget_hash};

/// Versioned schema. Append new migrations; never edit a released one.
const MIGRATIONS: &[M<'static>] = &[
    // 1: the schema of the first release.
    M::up(
        "
CREATE TABLE carts (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL,
    email_norm        TEXT NOT NULL,
    first_name        TEXT NOT NULL,
    locale            TEXT NOT NULL,
    currency          TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('open', 'ordered', 'closed')),
    accepts_marketing INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,  -- unix seconds, UTC
    updated_at        INTEGER NOT NULL,  -- last activity, unix seconds, UTC
    utc_offset        INTEGER,           -- seconds east of UTC the input used
    total_minor       INTEGER NOT NULL,
    item_count        INTEGER NOT NULL,
    snapshot_hash     BLOB NOT NULL      -- tells a re-imported snapshot from a changed one
) STRICT;
-- The candidate window: open carts by last activity.
CREATE INDEX carts_open_by_activity ON carts (updated_at) WHERE status = 'open';
CREATE INDEX carts_by_email ON carts (email_norm);

CREATE TABLE cart_items (
    cart_id          TEXT NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    sku              TEXT NOT NULL,
    name             TEXT NOT NULL,
    category         TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    unit_price_minor INTEGER NOT NULL,
    image_url        TEXT NOT NULL,
    product_url      TEXT NOT NULL,
    PRIMARY KEY (cart_id, position)
) STRICT, WITHOUT ROWID;

CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    email_norm  TEXT NOT NULL,
    cart_id     TEXT,
    total_minor INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX orders_by_email ON orders (email_norm, created_at);
CREATE INDEX orders_by_cart ON orders (cart_id) WHERE cart_id IS NOT NULL;

-- The sends ledger: one row per (cart, step), claimed before the mail
-- leaves and confirmed after.
CREATE TABLE sends (
    id          INTEGER PRIMARY KEY,
    cart_id     TEXT NOT NULL,
    step        TEXT NOT NULL,
    email       TEXT NOT NULL,
    email_norm  TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('claimed', 'sent', 'retry', 'failed', 'unknown')),
    run_id      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    claimed_at  INTEGER NOT NULL,
    sent_at     INTEGER,
    reason      TEXT,
    message_id  TEXT,
    UNIQUE (cart_id, step)
) STRICT;
CREATE INDEX sends_by_claim_time ON sends (claimed_at);

CREATE TABLE suppressions (
    email_norm TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    now         INTEGER NOT NULL,
    imported    INTEGER NOT NULL DEFAULT 0,
    sent        INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    retry       INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    unknown     INTEGER NOT NULL DEFAULT 0,
    exit_code   INTEGER
) STRICT;
",
    ),
    // 2: the customer's time zone (quiet hours); the A/B variant sent.
    M::up(
        "
ALTER TABLE carts ADD COLUMN timezone TEXT NOT NULL DEFAULT '';
ALTER TABLE sends ADD COLUMN variant TEXT;
",
    ),
    // 3: the SKUs of each order (Shopify's orders export lists them), so a
    // policy can tell an address already bought a product.
    M::up(
        "
CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    sku      TEXT NOT NULL,
    PRIMARY KEY (order_id, sku)
) STRICT, WITHOUT ROWID;
CREATE INDEX order_items_by_sku ON order_items (sku);
",
    ),
    // 4: skips per run, step and reason, for `recart report`.
    M::up(
        "
CREATE TABLE run_skips (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step   TEXT NOT NULL,  -- '' when the skip concerns no step
    reason TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (run_id, step, reason)
) STRICT, WITHOUT ROWID;
CREATE INDEX runs_by_now ON runs (now);
CREATE INDEX sends_by_sent_at ON sends (sent_at) WHERE sent_at IS NOT NULL;
",
    ),
    // 5: addresses erased on request (GDPR Art. 17), kept only as a hash so
    // a re-imported cart of theirs is never mailed.
    M::up(
        "
CREATE TABLE forgotten (
    email_hash TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
",
    ),
    // 6: the product catalog (fills what carts leave out, says what is in
    // stock); the customer's phone and SMS consent (webhook steps).
    M::up(
        "
CREATE TABLE products (
    sku         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    image_url   TEXT NOT NULL,
    product_url TEXT NOT NULL,
    price_minor INTEGER,
    currency    TEXT,
    in_stock    INTEGER             -- NULL: the catalog does not say
) STRICT, WITHOUT ROWID;
ALTER TABLE carts ADD COLUMN phone TEXT NOT NULL DEFAULT '';
ALTER TABLE carts ADD COLUMN sms_consent INTEGER NOT NULL DEFAULT 0;
",
    ),
    // 7: coupon codes: imported pools (free until drawn) and the codes
    // given to each (cart, step), drawn or generated.
    M::up(
        "
CREATE TABLE coupons (
    code        TEXT PRIMARY KEY,
    pool        TEXT,              -- the pool it was imported into; NULL: generated
    expires_at  INTEGER,           -- unix seconds, UTC; NULL: never expires
    added_at    INTEGER NOT NULL,
    cart_id     TEXT,              -- who got it; NULL: still free
    step        TEXT,
    assigned_at INTEGER,
    UNIQUE (cart_id, step),
    CHECK ((cart_id IS NULL) = (step IS NULL)),
    CHECK (pool IS NOT NULL OR cart_id IS NOT NULL)
) STRICT;
-- Drawing: the free codes of a pool, soonest to expire first.
CREATE INDEX coupons_free ON coupons (pool, expires_at) WHERE cart_id IS NULL;
",
    ),
    // 8: the candidate window read from the index alone. Every column the
    // plan's candidate query and the history queries read of a window cart
    // is in the index, in `updated_at` order, so a window of W carts costs
    // a few pages of index instead of W random reads of the carts table.
    // The same for the recent sends (the caps).
    M::up(
        "
CREATE INDEX carts_open_window ON carts (
    updated_at, id, email_norm, email, accepts_marketing, total_minor, currency, timezone, utc_offset,
    sms_consent
) WHERE status = 'open';
DROP INDEX carts_open_by_activity;
-- The recent sends the caps count, read from the index alone.
CREATE INDEX sends_recent ON sends (claimed_at, state, email_norm);
DROP INDEX sends_by_claim_time;
",
    ),
    // 9: per SQLite source, the `updated_at` of the newest cart read, as
    // the shop's database holds it (any type): the next run reads from there.
    M::up(
        "
CREATE TABLE source_watermarks (
    source     TEXT PRIMARY KEY,
    updated_at ANY NOT NULL
) STRICT, WITHOUT ROWID;
",
    ),
    // 10: a cart's line items in its own row, as one JSON array (see
    // `carts::encode_items`), not as rows of a table of their own: a cart
    // is always written and read whole, and one value per cart costs far
    // less to write and read than a row per item. `cart_items` stays, as
    // a view, for whoever queries the store by hand.
    M::up(
        "
ALTER TABLE carts ADD COLUMN items TEXT NOT NULL DEFAULT '[]';
UPDATE carts SET items = (
    SELECT json_group_array(
        json_array(sku, name, category, quantity, unit_price_minor, image_url, product_url)
        ORDER BY position)
    FROM cart_items WHERE cart_id = carts.id)
WHERE EXISTS (SELECT 1 FROM cart_items WHERE cart_id = carts.id);
DROP TABLE cart_items;
CREATE VIEW cart_items AS
    SELECT c.id AS cart_id, CAST(j.key AS INTEGER) AS position,
           j.value ->> 0 AS sku, j.value ->> 1 AS name, j.value ->> 2 AS category,
           j.value ->> 3 AS quantity, j.value ->> 4 AS unit_price_minor,
           j.value ->> 5 AS image_url, j.value ->> 6 AS product_url
    FROM carts AS c, json_each(c.items) AS j;
",
    ),
    // 11: the CHECKs on `carts.status` and `sends.state` as comparisons
    // joined by OR. SQLite evaluates a constant IN list of more than two
    // values through a temporary b-tree, built anew for every statement
    // that checks it: every claim, confirm and cart written paid for one
    // (~5% of a run's CPU). The two are equivalent, so the stored rows
    // need no rewrite: the table's SQL is edited in place, SQLite's own
    // procedure for changing a CHECK (https://sqlite.org/lang_altertable.html,
    // section 7), and a throwaway table bumps the schema version so that
    // every connection reloads it.
    M::up(
        "
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, 'CHECK (status IN (''open'', ''ordered'', ''closed''))',
                          'CHECK (status = ''open'' OR status = ''ordered'' OR status = ''closed'')')
 WHERE type = 'table' AND name = 'carts';
UPDATE sqlite_schema
   SET sql = replace(sql, 'CHECK (state IN (''claimed'', ''sent'', ''retry'', ''failed'', ''unknown''))',
                          'CHECK (state = ''claimed'' OR state = ''sent'' OR state = ''retry''
                                  OR state = ''failed'' OR state = ''unknown'')')
 WHERE type = 'table' AND name = 'sends';
PRAGMA writable_schema = RESET;
CREATE TABLE schema_bump (x);
DROP TABLE schema_bump;
",
    ),
    // 12: an offset of 0 is "not known". `Z`, `-00:00`, zone-less and
    // integer times say nothing of the customer's offset (RFC 9557), and
    // until now they were stored as 0, which made the customer's clock UTC
    // instead of `policy.timezone`. A stored 0 cannot tell them from an
    // explicit `+00:00`; the open carts' (the only ones reminded) become
    // unknown, the much commoner case.
    M::up("UPDATE carts SET utc_offset = NULL WHERE status = 'open' AND utc_offset = 0;"),
    // 13: the ledger state `skipped`: a step the plan passed over (the
    // cart did not meet its conditions when it was due), never to be sent.
    // The CHECK is edited in place as in 11 (in either of its forms).
    M::up(
        "
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(replace(sql,
             'OR state = ''unknown'')', 'OR state = ''unknown'' OR state = ''skipped'')'),
             '''failed'', ''unknown'')', '''failed'', ''unknown'', ''skipped'')')
 WHERE type = 'table' AND name = 'sends';
PRAGMA writable_schema = RESET;
CREATE TABLE schema_bump (x);
DROP TABLE schema_bump;
",
    ),
    // 14: the recent sends with their step, from the index alone: the caps
    // count per channel, and the plan knows each step's channel.
    M::up(
        "
DROP INDEX sends_recent;
CREATE INDEX sends_recent ON sends (claimed_at, state, email_norm, step);
",
    ),
    // 15: per input (a file's path, a shop database's source key), the row
    // errors its last read rejected, as 64-bit fingerprints of (field,
    // value, message), little-endian, one after the other: a run that
    // reads the same bad rows again does not print them again.
    M::up(
        "
CREATE TABLE reported_row_errors (
    source       TEXT PRIMARY KEY,
    fingerprints BLOB NOT NULL
) STRICT;
",
    ),
    // 16: clicks on recovery links that `recart serve` redirected: which
    // reminder (cart, step, and the variant the ledger says was sent) and
    // when. No address: the cart id leads to it while the cart is stored.
    M::up(
        "
CREATE TABLE clicks (
    id         INTEGER PRIMARY KEY,
    cart_id    TEXT NOT NULL,
    step       TEXT NOT NULL,
    variant    TEXT,
    clicked_at INTEGER NOT NULL  -- unix seconds, UTC
) STRICT;
CREATE INDEX clicks_by_time ON clicks (clicked_at);
",
    ),
    // 17: what came back to the inbox (`bounces import`). A send whose
    // mail bounced permanently is `bounced` (the CHECK edited in place,
    // as in 11 and 13, in either of its forms); every report read is
    // remembered by its Message-ID (else its bytes' SHA-256) with what it
    // said, so a mailbox read twice counts nothing twice; sends are found
    // by their Message-ID (the VERP token carries its hash, a report the
    // id itself); clicks by their send, for the report.
    M::up(
        "
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(replace(sql,
             'OR state = ''skipped'')', 'OR state = ''skipped'' OR state = ''bounced'')'),
             '''unknown'', ''skipped'')', '''unknown'', ''skipped'', ''bounced'')')
 WHERE type = 'table' AND name = 'sends';
PRAGMA writable_schema = RESET;
CREATE TABLE schema_bump (x);
DROP TABLE schema_bump;
CREATE TABLE mail_reports (
    key          TEXT PRIMARY KEY,  -- 'id:<Message-ID>' or 'sha256:<hex of the bytes>'
    outcome      TEXT NOT NULL,     -- hard-bounce, soft-bounce, complaint, ignored, unmatched, unparsable
    cart_id      TEXT,              -- the send it concerns, if matched
    step         TEXT,
    detail       TEXT NOT NULL,     -- the status code and diagnostic, feedback type, or why not
    processed_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX mail_reports_by_send ON mail_reports (cart_id, step) WHERE cart_id IS NOT NULL;
CREATE INDEX sends_by_message_id ON sends (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX clicks_by_send ON clicks (cart_id, step);
",
    ),
];

pub struct Store {
    conn: Engine,
    path: PathBuf,
    /// Whether a [`BulkLoad`] holds the transaction.
    bulk: std::cell::Cell<Bulk>,
    /// The forgotten people, as an import last read them.
    forgotten: std::cell::RefCell<retention::ForgottenCache>,
    /// The run lock, once taken: closed after the connection (declared
    /// after it), since closing a file of the database drops the process's
    /// POSIX locks on it, SQLite's included.
    run_lock: std::cell::RefCell<Option<std::fs::File>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bulk {
    Off,
    Loading,
    /// A write failed: the load is rolled back, not committed.
    Failed,
}

/// How long a command waits for another's write transaction.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Puts the store in WAL mode, waiting up to `busy` while another
/// connection holds it: switching modes needs the store to itself, and
/// SQLite does not wait for that (no busy handler): a bulk first import
/// keeps a rollback journal for its whole file.
fn wal_mode(conn: &Connection, busy: std::time::Duration) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + busy;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())) {
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

impl Store {
    /// Opens (creating if need be) the store and brings its schema up to date.
    /// A new store file is created mode 0600, before SQLite opens it: it
    /// holds customers' addresses, and SQLite gives its `-wal` and `-shm`
    /// files the database file's mode.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_waiting(path, BUSY_TIMEOUT)
    }

    /// [`Store::open`], waiting up to `busy` for other writers — to open
    /// (a bulk first import holds the store for its whole file) and at
    /// every write. `run --wait` waits as long as it takes.
    pub fn open_waiting(path: &Path, busy: std::time::Duration) -> Result<Store> {
        // An empty file is an empty database. Any failure here (the file
        // exists, the directory does not) is SQLite's to report, in its
        // words, as before.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        let conn = Connection::open(path).map_err(|source| Error::Store {
            path: path.to_path_buf(),
            source: source.into(),
        })?;
        Store::setup(conn, path, busy)
    }

    /// A store that lives in memory only: for a dry run with no store yet.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory().map_err(|source| Error::Store {
            path: ":memory:".into(),
            source: source.into(),
        })?;
        Store::setup(conn, Path::new(":memory:"), BUSY_TIMEOUT)
    }

    /// Opens the store `config` names: its `SQLite` file, or its
    /// PostgreSQL database.
    pub fn open_configured(config: &crate::config::Config) -> Result<Store> {
        Store::open_configured_waiting(config, BUSY_TIMEOUT)
    }

    /// [`Store::open_configured`], waiting up to `busy` for other writers.
    pub fn open_configured_waiting(
        config: &crate::config::Config,
        busy: std::time::Duration,
    ) -> Result<Store> {
        match &config.store_url {
            None => Store::open_waiting(&config.store_path, busy),
            Some(url) => Store::open_postgres(url, busy),
        }
    }

    /// Opens the store on PostgreSQL, bringing recart's own schema there
    /// up to date.
    pub fn open_postgres(
        url: &crate::config::StoreUrl,
        busy: std::time::Duration,
    ) -> Result<Store> {
        let name = PathBuf::from(&url.url);
        let client = postgres::connect(url, busy).map_err(|message| Error::Store {
            path: name.clone(),
            source: DbError::Value(message),
        })?;
        let conn = Engine::postgres(client);
        postgres::migrate(&conn).map_err(|error| Error::Migration {
            path: name.clone(),
            message: error.to_string(),
        })?;
        Ok(Store {
            conn,
            path: name,
            bulk: std::cell::Cell::new(Bulk::Off),
            forgotten: std::cell::RefCell::default(),
            run_lock: std::cell::RefCell::new(None),
        })
    }

    fn setup(mut conn: Connection, path: &Path, busy: std::time::Duration) -> Result<Store> {
        let fail = |source: rusqlite::Error| Error::Store {
            path: path.to_path_buf(),
            source: source.into(),
        };
        // Overlapping runs wait for each other's short write transactions.
        conn.busy_timeout(busy).map_err(fail)?;
        wal_mode(&conn, busy).map_err(fail)?;
        // SQLite's own page cache size (2 MiB) unless importing: see
        // `Store::import_cache`. Statement journals in memory: otherwise
        // each claim or confirm statement mallocs a 64 KiB journal chunk
        // and frees it at the statement's end, and glibc hands the top of
        // the heap back to the kernel each time (brk, page faults, TLB
        // flushes): ~8% of a run's CPU.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
        )
        .map_err(fail)?;
        // `rarray(?)`: a batch's ids bound as one parameter.
        rusqlite::vtab::array::load_module(&conn).map_err(fail)?;
        conn.set_prepared_statement_cache_capacity(64);
        let migrations = Migrations::from_slice(MIGRATIONS);
        let mut migrated = migrations.to_latest(&mut conn);
        // Two commands opening a new store at once both read version 0;
        // the second then finds the first's tables. Read again from where
        // the other left it (a migration that truly fails fails again).
        for _ in 0..3 {
            if migrated.is_ok() {
                break;
            }
            migrated = migrations.to_latest(&mut conn);
        }
        migrated.map_err(|error| Error::Migration {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        Ok(Store {
            conn: Engine::Sqlite(conn),
            path: path.to_path_buf(),
            bulk: std::cell::Cell::new(Bulk::Off),
            forgotten: std::cell::RefCell::default(),
            run_lock: std::cell::RefCell::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the page cache for importing (`true`: 64 MiB, allocated as
    /// used, which keeps a large import's index pages in memory and bounds
    /// the index sort's in-memory run) or back to `SQLite`'s 2 MiB. Not
    /// larger for everything: `SQLite` walks its whole page-cache hash table
    /// at the end of every write transaction, so a run's many short
    /// claims and confirms pay for a large cache at each commit.
    pub fn import_cache(&self, importing: bool) -> Result<()> {
        let kib = if importing { 65_536 } else { 2_000 };
        match self.conn.sqlite() {
            Some(conn) => conn
                .execute_batch(&format!("PRAGMA cache_size = -{kib}"))
                .map_err(|source| self.error(source)),
            None => Ok(()),
        }
    }

    /// Takes the run lock: an exclusive `flock` on the database file
    /// itself, so that it is one lock however the store is named (a
    /// symlink, a relative path, a bind mount): at once, or failing with
    /// [`Error::Busy`], or after the holder is done with `wait`. The
    /// operating system releases it when the process ends, however it
    /// ends. (flock and SQLite's fcntl locks do not interact on Linux.)
    pub fn lock_runs(&self, wait: bool) -> Result<()> {
        // On PostgreSQL runs do not exclude each other: the workers of a
        // run share its work by partition (`Store::take_partition`), and
        // each says it is alive with a lock on its id (`Store::hold_run`).
        // They share a lock that erasure takes alone.
        if self.conn.is_postgres() {
            return postgres::lock_runs(self, wait, false);
        }
        if self.path == Path::new(":memory:") || self.run_lock.borrow().is_some() {
            return Ok(());
        }
        let file =
            std::fs::File::open(&self.path).map_err(|source| Error::io(&self.path, source))?;
        if wait {
            file.lock()
                .map_err(|source| Error::io(&self.path, source))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Busy {
                        lock: self.path.clone(),
                    });
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(Error::io(&self.path, source));
                }
            }
        }
        *self.run_lock.borrow_mut() = Some(file);
        Ok(())
    }

    /// The store to this command alone, no run beside it (erasure): the
    /// run lock on `SQLite`; on PostgreSQL, the lock runs share, taken
    /// exclusively.
    pub fn lock_out_runs(&self, wait: bool) -> Result<()> {
        if self.conn.is_postgres() {
            return postgres::lock_runs(self, wait, true);
        }
        self.lock_runs(wait)
    }

    pub(crate) fn error(&self, source: impl Into<DbError>) -> Error {
        Error::Store {
            path: self.path.clone(),
            source: source.into(),
        }
    }

    /// Whether the store is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.conn.is_postgres()
    }

    /// Starts a transaction that is never committed: everything written
    /// until the store is dropped is rolled back (a dry run).
    pub fn begin_discarded(&self) -> Result<()> {
        match self.conn.sqlite() {
            Some(conn) => conn.execute_batch("BEGIN"),
            None => return self.conn.begin().map_err(|source| self.error(source)),
        }
        .map_err(|source| self.error(source))
    }

    /// Runs `work` as one atomic write: a transaction (on `SQLite` an
    /// IMMEDIATE one, so it waits for other writers instead of failing),
    /// or a savepoint inside the transaction of a dry run.
    pub(crate) fn write_db<T>(&self, work: impl FnOnce(&Engine) -> DbResult<T>) -> Result<T> {
        if self.bulk.get() != Bulk::Off {
            return work(&self.conn).map_err(|source| {
                self.bulk.set(Bulk::Failed);
                self.error(source)
            });
        }
        if self.conn.in_transaction() {
            self.conn
                .batch("SAVEPOINT batch")
                .map_err(|source| self.error(source))?;
            return match work(&self.conn) {
                Ok(value) => {
                    self.conn
                        .batch("RELEASE SAVEPOINT batch")
                        .map_err(|source| self.error(source))?;
                    Ok(value)
                }
                Err(source) => {
                    let _ = self
                        .conn
                        .batch("ROLLBACK TO SAVEPOINT batch; RELEASE SAVEPOINT batch");
                    Err(self.error(source))
                }
            };
        }
        self.conn.begin().map_err(|source| self.error(source))?;
        match work(&self.conn) {
            Ok(value) => {
                self.conn.end(true).map_err(|source| self.error(source))?;
                Ok(value)
            }
            Err(source) => {
                let _ = self.conn.end(false);
                Err(self.error(source))
            }
        }
    }

    /// The connection, for reads.
    pub(crate) fn db(&self) -> &Engine {
        &self.conn
    }

    /// The `SQLite` connection, for tests of what only `SQLite` has.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> &Connection {
        self.conn.sqlite().expect("a SQLite store")
    }
}

pub(crate) fn to_unix(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

pub(crate) fn from_unix(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// A count SQL gives back (`COUNT`, a `SUM` of counts): never negative,
/// and read as 0 if it were rather than wrapping around.
fn count_from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A count as SQL stores it (an `INTEGER` is an i64): no count comes near
/// `i64::MAX`, so saturating changes nothing.
fn count_to_sql(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Keys bound as one parameter, for `rarray(?)`.
fn ids(values: impl Iterator<Item = String>) -> Array {
    std::rc::Rc::new(values.map(Value::Text).collect())
}
