//! The store on PostgreSQL: the connection, recart's own schema and its
//! migrations, and the locks that let several workers share one run.
//!
//! Liveness is PostgreSQL's own: a run holds a session advisory lock on
//! its id for as long as its connection lives, and a worker holds one on
//! each partition it is sending. A connection that dies (its process was
//! killed, its host lost) loses its locks and can write nothing more, so
//! a run whose lock is free is dead, and its claims may be settled by
//! whoever sees it so: no lease to wait out, and no stale owner that
//! confirms after a take-over (see ARCHITECTURE, "Several workers").

use postgres::Client;

use crate::db_url::PostgresUrl;

use crate::config::StoreUrl;
use crate::error::{Error, Result};

use super::Store;
use super::engine::{Arg, DbResult, Engine, args};

/// recart's schema in the database: its tables live apart from the shop's.
pub const SCHEMA: &str = "recart";

/// The first key of recart's advisory locks (the second names the thing
/// locked): "rc" + 1.
const LOCK_RUN: i32 = 0x7263_0001;
const LOCK_PARTITION: i32 = 0x7263_0002;
const LOCK_MIGRATE: i32 = 0x7263_0003;
const LOCK_IMPORT: i32 = 0x7263_0004;
const LOCK_RUNS: i32 = 0x7263_0005;

/// SQL: whether run `run` (an SQL expression) is alive: its connection
/// holds its lock; `lock_run` is the placeholder bound to [`LOCK_RUN`].
fn alive(lock_run: &str, run: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_locks
                 WHERE locktype = 'advisory' AND granted
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND classid = {lock_run}::int::oid AND objid = {run}::int::oid
                   AND objsubid = 2)"
    )
}

/// Addresses are spread over this many partitions; each is sent by one
/// worker at a time.
pub const PARTITIONS: u32 = 16;

/// Connects, with the password from its env var or file, in UTC, with
/// recart's schema first on the search path; waits up to `busy` for a
/// lock before a statement fails.
pub fn connect(url: &StoreUrl, busy: std::time::Duration) -> std::result::Result<Client, String> {
    let mut server = PostgresUrl::parse(&url.url)?;
    if let Some(password) = url.password()? {
        server.config.password(password);
    }
    server
        .config
        .connect_timeout(std::time::Duration::from_secs(30));
    server.config.application_name("recart");
    let mut client = server.connect()?;
    client
        .batch_execute(&format!(
            "SET TIME ZONE 'UTC'; SET lock_timeout = {}; \
             CREATE SCHEMA IF NOT EXISTS {SCHEMA}; SET search_path = {SCHEMA}",
            busy.as_millis().min(i32::MAX as u128)
        ))
        .map_err(|error| super::engine::DbError::from(error).to_string())?;
    Ok(client)
}

/// The migrations of a PostgreSQL store, numbered as `SQLite`'s: version
/// 17 is the schema `SQLite` reached with its 17th (there was no
/// PostgreSQL store before it); later ones are appended to both lists in
/// step.
const MIGRATIONS: &[(i64, &str)] = &[(17, SCHEMA_17)];

// Text compares byte by byte, as on SQLite (`COLLATE "C"`), whatever
// the database's locale: the same order, and the same key ranges.
const SCHEMA_17: &str = r#"
CREATE TABLE carts (
    id                TEXT COLLATE "C" PRIMARY KEY,
    email             TEXT COLLATE "C" NOT NULL,
    email_norm        TEXT COLLATE "C" NOT NULL,
    first_name        TEXT COLLATE "C" NOT NULL,
    locale            TEXT COLLATE "C" NOT NULL,
    currency          TEXT COLLATE "C" NOT NULL,
    status            TEXT COLLATE "C" NOT NULL CHECK (status IN ('open', 'ordered', 'closed')),
    accepts_marketing BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    utc_offset        BIGINT,
    total_minor       BIGINT NOT NULL,
    item_count        BIGINT NOT NULL,
    snapshot_hash     BYTEA NOT NULL,
    timezone          TEXT COLLATE "C" NOT NULL DEFAULT '',
    phone             TEXT COLLATE "C" NOT NULL DEFAULT '',
    sms_consent       BIGINT NOT NULL DEFAULT 0,
    items             TEXT COLLATE "C" NOT NULL DEFAULT '[]'
);
CREATE INDEX carts_by_email ON carts (email_norm);
CREATE INDEX carts_open_window ON carts (updated_at, id)
    INCLUDE (email_norm, email, accepts_marketing, total_minor, currency, timezone, utc_offset,
             sms_consent)
    WHERE status = 'open';
CREATE VIEW cart_items AS
    SELECT c.id AS cart_id, j.position - 1 AS position,
           j.value ->> 0 AS sku, j.value ->> 1 AS name, j.value ->> 2 AS category,
           (j.value ->> 3)::bigint AS quantity, (j.value ->> 4)::bigint AS unit_price_minor,
           j.value ->> 5 AS image_url, j.value ->> 6 AS product_url
    FROM carts AS c, jsonb_array_elements(c.items::jsonb) WITH ORDINALITY AS j (value, position);

CREATE TABLE orders (
    id          TEXT COLLATE "C" PRIMARY KEY,
    email       TEXT COLLATE "C" NOT NULL,
    email_norm  TEXT COLLATE "C" NOT NULL,
    cart_id     TEXT COLLATE "C",
    total_minor BIGINT NOT NULL,
    currency    TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX orders_by_email ON orders (email_norm, created_at);
CREATE INDEX orders_by_cart ON orders (cart_id) WHERE cart_id IS NOT NULL;
CREATE TABLE order_items (
    order_id TEXT COLLATE "C" NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    sku      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (order_id, sku)
);
CREATE INDEX order_items_by_sku ON order_items (sku);

-- Keyed by (cart, step), as every statement finds an entry; `id` (as
-- SQLite's) has no index: each index costs every claim and outcome a
-- write. The key and the address index carry what a partition's plan
-- reads of the entries, which it then reads from them alone.
CREATE TABLE sends (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY,
    cart_id     TEXT COLLATE "C" NOT NULL,
    step        TEXT COLLATE "C" NOT NULL,
    email       TEXT COLLATE "C" NOT NULL,
    email_norm  TEXT COLLATE "C" NOT NULL,
    state       TEXT COLLATE "C" NOT NULL CHECK (state IN ('claimed', 'sent', 'retry', 'failed', 'unknown',
                                               'skipped', 'bounced')),
    run_id      BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    claimed_at  BIGINT NOT NULL,
    sent_at     BIGINT,
    reason      TEXT COLLATE "C",
    message_id  TEXT COLLATE "C",
    variant     TEXT COLLATE "C",
    PRIMARY KEY (cart_id, step) INCLUDE (state, attempts, claimed_at)
);
CREATE INDEX sends_recent ON sends (claimed_at, state, email_norm, step);
CREATE INDEX sends_by_sent_at ON sends (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX sends_by_message_id ON sends (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX sends_claimed ON sends (run_id) WHERE state = 'claimed';
-- A partition's recent sends, by address (workers read them so).
CREATE INDEX sends_by_address ON sends (email_norm, claimed_at) INCLUDE (state, step);

CREATE TABLE suppressions (
    email_norm TEXT COLLATE "C" PRIMARY KEY,
    reason     TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE runs (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    now         BIGINT NOT NULL,
    imported    BIGINT NOT NULL DEFAULT 0,
    sent        BIGINT NOT NULL DEFAULT 0,
    skipped     BIGINT NOT NULL DEFAULT 0,
    retry       BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    unknown     BIGINT NOT NULL DEFAULT 0,
    exit_code   BIGINT
);
CREATE INDEX runs_by_now ON runs (now);
CREATE TABLE run_skips (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step   TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C" NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (run_id, step, reason)
);

CREATE TABLE forgotten (
    email_hash TEXT COLLATE "C" PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE products (
    sku         TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    image_url   TEXT COLLATE "C" NOT NULL,
    product_url TEXT COLLATE "C" NOT NULL,
    price_minor BIGINT,
    currency    TEXT COLLATE "C",
    in_stock    BIGINT
);

CREATE TABLE coupons (
    code        TEXT COLLATE "C" PRIMARY KEY,
    pool        TEXT COLLATE "C",
    expires_at  BIGINT,
    added_at    BIGINT NOT NULL,
    cart_id     TEXT COLLATE "C",
    step        TEXT COLLATE "C",
    assigned_at BIGINT,
    -- The order codes were added (SQLite's rowid): ties between draws.
    added_seq   BIGINT GENERATED BY DEFAULT AS IDENTITY,
    UNIQUE (cart_id, step),
    CHECK ((cart_id IS NULL) = (step IS NULL)),
    CHECK (pool IS NOT NULL OR cart_id IS NOT NULL)
);
CREATE INDEX coupons_free ON coupons (pool, expires_at) WHERE cart_id IS NULL;

-- A source's watermark is a number or a text, as the source gave it.
CREATE TABLE source_watermarks (
    source     TEXT COLLATE "C" PRIMARY KEY,
    int_value  BIGINT,
    text_value TEXT COLLATE "C"
);
CREATE TABLE reported_row_errors (
    source       TEXT COLLATE "C" PRIMARY KEY,
    fingerprints BYTEA NOT NULL
);

CREATE TABLE clicks (
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    cart_id    TEXT COLLATE "C" NOT NULL,
    step       TEXT COLLATE "C" NOT NULL,
    variant    TEXT COLLATE "C",
    clicked_at BIGINT NOT NULL
);
CREATE INDEX clicks_by_time ON clicks (clicked_at);
CREATE INDEX clicks_by_send ON clicks (cart_id, step);

CREATE TABLE mail_reports (
    key          TEXT COLLATE "C" PRIMARY KEY,
    outcome      TEXT COLLATE "C" NOT NULL,
    cart_id      TEXT COLLATE "C",
    step         TEXT COLLATE "C",
    detail       TEXT COLLATE "C" NOT NULL,
    processed_at BIGINT NOT NULL
);
CREATE INDEX mail_reports_by_send ON mail_reports (cart_id, step) WHERE cart_id IS NOT NULL;

-- Several workers: which partition of the addresses each live run has
-- begun or finished, so that a worker passes by what a worker beside it
-- finished (rows of dead runs are deleted as runs start).
CREATE TABLE partition_runs (
    partition BIGINT NOT NULL,
    run_id    BIGINT NOT NULL,
    finished  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (partition, run_id)
);
"#;

/// Brings recart's schema up to date, one migration per transaction,
/// under a lock so that workers starting together migrate once.
pub fn migrate(db: &Engine) -> DbResult<()> {
    db.batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    db.begin()?;
    let applied = (|| -> DbResult<()> {
        db.execute("SELECT pg_advisory_xact_lock(?1, 0)", args![LOCK_MIGRATE])?;
        let current: i64 = db.value("SELECT coalesce(max(version), 0) FROM schema_version", &[])?;
        for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
            db.batch(sql)?;
            db.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                args![*version],
            )?;
        }
        Ok(())
    })();
    db.end(applied.is_ok())?;
    applied
}

/// The schema version of a PostgreSQL store.
pub fn version(db: &Engine) -> DbResult<i64> {
    db.value("SELECT coalesce(max(version), 0) FROM schema_version", &[])
}

/// Runs share a lock (`exclusive`: erasure takes it alone, so that no run
/// writes back an address being erased): at once, or [`Error::Busy`], or
/// waiting as long as it takes with `wait`. It goes with the connection.
pub(super) fn lock_runs(store: &Store, wait: bool, exclusive: bool) -> Result<()> {
    let db = store.db();
    let fail = |source| store.error(source);
    let (try_lock, lock) = if exclusive {
        (
            "SELECT pg_try_advisory_lock(?1, 0)",
            "SELECT pg_advisory_lock(?1, 0)",
        )
    } else {
        (
            "SELECT pg_try_advisory_lock_shared(?1, 0)",
            "SELECT pg_advisory_lock_shared(?1, 0)",
        )
    };
    if db.value::<bool>(try_lock, args![LOCK_RUNS]).map_err(fail)? {
        return Ok(());
    }
    if !wait {
        return Err(Error::Busy {
            lock: store.path().to_path_buf(),
        });
    }
    waiting_as_long_as_it_takes(db, lock, args![LOCK_RUNS]).map_err(fail)
}

/// Runs the lock statement `lock` without the session's `lock_timeout`:
/// the holder's work may take longer than a write is let wait.
fn waiting_as_long_as_it_takes(db: &Engine, lock: &str, args: &[Arg<'_>]) -> DbResult<()> {
    let timeout: String = db.value("SELECT current_setting('lock_timeout')", &[])?;
    db.batch("SET lock_timeout = 0")?;
    let locked = db.execute(lock, args);
    db.execute(
        "SELECT set_config('lock_timeout', ?1, false)",
        args![&timeout],
    )?;
    locked.map(|_| ())
}

impl Store {
    /// Marks run `run_id` alive for as long as this connection lives (on
    /// PostgreSQL; on `SQLite` the run lock says so).
    pub fn hold_run(&self, run_id: i64) -> Result<()> {
        if !self.is_postgres() {
            return Ok(());
        }
        let db = self.db();
        let fail = |source| self.error(source);
        db.execute(
            "SELECT pg_advisory_lock(?1, ?2)",
            args![LOCK_RUN, lock_key(run_id)],
        )
        .map_err(fail)?;
        // What dead runs went through tells a worker nothing more.
        let forget_dead = format!(
            "DELETE FROM partition_runs p WHERE p.run_id <> ?1 AND NOT {}",
            alive("?2", "p.run_id")
        );
        db.execute(&forget_dead, args![run_id, LOCK_RUN])
            .map(|_| ())
            .map_err(fail)
    }

    /// Whether run `run_id` is dead: no connection holds its lock.
    pub fn run_is_dead(&self, run_id: i64) -> Result<bool> {
        if !self.is_postgres() {
            return Ok(true);
        }
        self.db()
            .value(
                &format!("SELECT NOT {}", alive("?1", "?2")),
                args![LOCK_RUN, lock_key(run_id)],
            )
            .map_err(|source| self.error(source))
    }

    /// Tries to take partition `partition` for run `run_id`:
    /// [`Taken::Held`] while another worker holds it (`wait`: wait for it
    /// instead), [`Taken::Done`] once a worker beside this one (a run
    /// still alive, or begun after this one) went through it.
    pub fn take_partition(&self, partition: u32, run_id: i64, wait: bool) -> Result<Taken> {
        let db = self.db();
        let fail = |source| self.error(source);
        let key = i32::try_from(partition).unwrap_or(i32::MAX);
        if wait {
            let lock = "SELECT pg_advisory_lock(?1, ?2)";
            waiting_as_long_as_it_takes(db, lock, args![LOCK_PARTITION, key]).map_err(fail)?;
        } else if !db
            .value::<bool>(
                "SELECT pg_try_advisory_lock(?1, ?2)",
                args![LOCK_PARTITION, key],
            )
            .map_err(fail)?
        {
            return Ok(Taken::Held);
        }
        let done: bool = db
            .value(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM partition_runs p
                     WHERE p.partition = ?1 AND p.finished = 1 AND p.run_id <> ?2
                       AND (p.run_id > ?2 OR {}))",
                    alive("?3", "p.run_id")
                ),
                args![i64::from(partition), run_id, LOCK_RUN],
            )
            .map_err(fail)?;
        if done {
            self.release_partition(partition)?;
            return Ok(Taken::Done);
        }
        self.write_db(|db| {
            db.execute(
                "INSERT INTO partition_runs (partition, run_id) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
                args![i64::from(partition), run_id],
            )
        })?;
        Ok(Taken::Yes)
    }

    /// Records that run `run_id` went through `partition` (`done`), and
    /// lets it go.
    pub fn finish_partition(&self, partition: u32, run_id: i64, done: bool) -> Result<()> {
        if done {
            self.write_db(|db| {
                db.execute(
                    "UPDATE partition_runs SET finished = 1 WHERE partition = ?1 AND run_id = ?2",
                    args![i64::from(partition), run_id],
                )
            })?;
        }
        self.release_partition(partition)
    }

    /// Runs `import` while no other worker of this PostgreSQL store
    /// imports (on `SQLite` the run lock already says so).
    pub fn importing_alone<T>(&self, import: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.is_postgres() {
            return import();
        }
        let lock = "SELECT pg_advisory_lock(?1, 0)";
        self.db()
            .execute(lock, args![LOCK_IMPORT])
            .map_err(|source| self.error(source))?;
        let imported = import();
        let unlock = self
            .db()
            .execute("SELECT pg_advisory_unlock(?1, 0)", args![LOCK_IMPORT]);
        let imported = imported?;
        unlock.map_err(|source| self.error(source))?;
        Ok(imported)
    }

    fn release_partition(&self, partition: u32) -> Result<()> {
        let key = i32::try_from(partition).unwrap_or(i32::MAX);
        self.db()
            .execute(
                "SELECT pg_advisory_unlock(?1, ?2)",
                args![LOCK_PARTITION, key],
            )
            .map(|_| ())
            .map_err(|source| self.error(source))
    }
}

/// What [`Store::take_partition`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// This worker holds it now.
    Yes,
    /// Another worker holds it.
    Held,
    /// A worker went through it in this run.
    Done,
}

/// A run id as the second key of an advisory lock (ids wrap past 2³¹,
/// long after any run that could still hold claims).
fn lock_key(run_id: i64) -> i32 {
    #[allow(clippy::cast_possible_truncation, reason = "wrapping is the point")]
    let key = run_id as i32;
    key
}

/// The partition of an address: a stable hash (FNV-1a), so that every
/// worker, on every host and release, puts an address in the same one.
pub fn partition_of(email_norm: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in email_norm.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % PARTITIONS
}

/// Connects for a command that names the store by URL (`store copy
/// --to`), with no password (it comes from the URL's env var, if any).
pub fn open_url(url: &str, password_env: Option<&str>) -> Result<Store> {
    let url = StoreUrl {
        url: url.to_owned(),
        password_env: password_env.map(str::to_owned),
        password_file: None,
    };
    Store::open_postgres(&url, super::BUSY_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::{PARTITIONS, Taken, partition_of};
    use crate::store::testing::{both_stores, connect, postgres_store};
    use rusqlite::types::Value;

    #[test]
    fn a_postgres_store_migrates_once() {
        let Some(store) = postgres_store("recart_unit_migrate") else {
            return;
        };
        assert_eq!(super::version(store.db()).unwrap(), 17);
        super::migrate(store.db()).unwrap();
        assert_eq!(super::version(store.db()).unwrap(), 17);
    }

    #[test]
    fn watermarks_and_row_errors_come_back_as_stored() {
        for (engine, store) in both_stores("recart_unit_watermarks") {
            store.set_watermark("a", &Value::Integer(42)).unwrap();
            let text = Value::Text("2026-11-20 10:00:00".into());
            store.set_watermark("b", &text).unwrap();
            assert_eq!(
                store.watermark("a").unwrap(),
                Some(Value::Integer(42)),
                "{engine}"
            );
            assert_eq!(store.watermark("b").unwrap(), Some(text), "{engine}");
            assert_eq!(store.watermark("c").unwrap(), None, "{engine}");
            store.set_reported_row_errors("a", &[1, 2]).unwrap();
            assert_eq!(
                store.reported_row_errors("a").unwrap(),
                vec![1, 2],
                "{engine}"
            );
        }
    }

    #[test]
    fn runs_share_their_lock_and_erasure_takes_it_alone() {
        let Some(first) = postgres_store("recart_unit_run_lock") else {
            return;
        };
        let url = first.path().display().to_string();
        let open = || connect(&url);
        let (second, erasure) = (open(), open());
        first.lock_runs(false).unwrap();
        second.lock_runs(false).unwrap();
        assert!(matches!(
            erasure.lock_out_runs(false),
            Err(crate::error::Error::Busy { .. })
        ));
        drop((first, second));
        erasure.lock_out_runs(true).unwrap();
        assert!(matches!(
            open().lock_runs(false),
            Err(crate::error::Error::Busy { .. })
        ));
    }

    #[test]
    fn a_partition_is_one_workers_and_done_once_per_run() {
        let Some(store) = postgres_store("recart_unit_partitions") else {
            return;
        };
        let url = store.path().display().to_string();
        let other = connect(&url);
        store.hold_run(1).unwrap();
        other.hold_run(2).unwrap();
        assert_eq!(store.take_partition(3, 1, false).unwrap(), Taken::Yes);
        assert_eq!(other.take_partition(3, 2, false).unwrap(), Taken::Held);
        store.finish_partition(3, 1, false).unwrap();
        assert_eq!(
            other.take_partition(3, 2, false).unwrap(),
            Taken::Yes,
            "not finished"
        );
        other.finish_partition(3, 2, true).unwrap();
        assert_eq!(
            store.take_partition(3, 1, true).unwrap(),
            Taken::Done,
            "finished by a run beside it"
        );
        let third = connect(&url);
        drop(other);
        let mut taken = Taken::Done;
        for _ in 0..100 {
            taken = third.take_partition(3, 3, false).unwrap();
            if taken == Taken::Yes {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(taken, Taken::Yes, "a run that is over shares nothing");
        store.hold_run(7).unwrap();
        assert!(!third.run_is_dead(7).unwrap());
        assert!(third.run_is_dead(8).unwrap());
        drop(store);
        // The server ends the session and its locks with the connection.
        let mut dead = false;
        for _ in 0..100 {
            dead = third.run_is_dead(7).unwrap();
            if dead {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(dead);
    }

    #[test]
    fn an_address_has_one_partition_and_they_spread() {
        assert_eq!(partition_of("a@example.com"), partition_of("a@example.com"));
        let mut seen = std::collections::HashSet::new();
        for n in 0..200 {
            seen.insert(partition_of(&format!("p{n}@example.com")));
        }
        assert_eq!(seen.len(), PARTITIONS as usize);
    }
}
