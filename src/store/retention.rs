//! Keeping personal data only as long as needed: `prune` drops old carts
//! and orders, `forget` erases people, and an import drops a forgotten
//! person's carts and orders.
//!
//! Deleting rows does not erase them from the files: SQLite leaves stale
//! copies of deleted or moved index entries in the free space of pages,
//! separator keys in interior pages, and whole records in a page that was
//! a leaf before it became an interior one (`secure_delete` zeroes only
//! the cell it deletes; `REINDEX` does not reach table pages). So both end
//! with [`Store::scrub`]: the file written anew from the live rows and the
//! write-ahead log emptied (`tests/integration/privacy.rs` checks the
//! bytes). On PostgreSQL the same rows are deleted, and the scrub is a
//! `VACUUM` of the tables touched: the server's files, log and backups are
//! its operator's (ARCHITECTURE, "Retention").

use std::collections::HashSet;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::model::normalize_email;

use super::engine::{DbResult, Engine, args};
use super::{Store, to_unix};

/// What `prune` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub carts: u64,
    pub orders: u64,
    /// Ledger entries whose address was erased (their counts stay).
    pub sends_anonymised: u64,
}

/// What `forget` removed of one person.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    pub carts: u64,
    pub orders: u64,
    pub sends_anonymised: u64,
}

/// The pseudonym a forgotten address is kept under: SHA-256 of the
/// lower-cased address with a fixed prefix, hex.
pub fn forget_hash(email: &str) -> String {
    hex::encode(forget_digest(email))
}

/// [`forget_hash`] before hex.
fn forget_digest(email: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(b"recart-forget\0");
    digest.update(normalize_email(email).as_bytes());
    digest.finalize().into()
}

/// The forgotten addresses' digests, as an import last read them.
#[derive(Debug, Default)]
pub(super) struct ForgottenCache {
    /// Rows of `forgotten` when read: rows are only ever added, so the
    /// same count is the same set.
    rows: i64,
    digests: Rc<HashSet<[u8; 32]>>,
}

/// Who an import drops: the forgotten addresses' digests.
pub(super) struct ForgottenSet(Rc<HashSet<[u8; 32]>>);

impl ForgottenSet {
    pub(super) fn contains(&self, email: &str) -> bool {
        self.0.contains(&forget_digest(email))
    }
}

impl Store {
    /// Deletes carts last active, and orders placed, before `cutoff`, and
    /// erases the addresses (and the server replies, which may quote them)
    /// of ledger entries claimed before it; then [`Store::scrub`]s the
    /// files. Runs and per-run skip counts stay: they hold no personal data.
    pub fn prune(&self, cutoff: DateTime<Utc>) -> Result<Pruned> {
        let pruned = self.write_db(|db| {
            secure_delete(db)?;
            let cutoff = to_unix(cutoff);
            Ok(Pruned {
                carts: db.execute("DELETE FROM carts WHERE updated_at < ?1", args![cutoff])?,
                orders: db.execute("DELETE FROM orders WHERE created_at < ?1", args![cutoff])?,
                sends_anonymised: db.execute(
                    "UPDATE sends SET email = '', email_norm = '', reason = NULL
                     WHERE claimed_at < ?1 AND email != ''",
                    args![cutoff],
                )?,
            })
        })?;
        self.scrub()?;
        Ok(pruned)
    }

    /// Erases people, in one transaction: their carts (items included),
    /// orders, their address in the ledger and in suppressions; keeps only
    /// a hash of each address, so that their carts and orders are dropped
    /// at import and never mailed. Then [`Store::scrub`]s the files, once.
    pub fn forget<S: AsRef<str>>(&self, emails: &[S], at: DateTime<Utc>) -> Result<Vec<Forgotten>> {
        let forgotten = self.write_db(|db| {
            secure_delete(db)?;
            emails
                .iter()
                .map(|email| forget_one(db, &normalize_email(email.as_ref()), at))
                .collect::<DbResult<Vec<_>>>()
        })?;
        self.scrub()?;
        Ok(forgotten)
    }

    /// The hashes of forgotten addresses.
    pub fn forgotten_hashes(&self) -> Result<HashSet<String>> {
        let mut hashes = HashSet::new();
        self.db()
            .each("SELECT email_hash FROM forgotten", &[], |row| {
                hashes.insert(row.get(0)?);
                Ok(())
            })
            .map_err(|source| self.error(source))?;
        Ok(hashes)
    }

    /// Leaves nothing erased in the files (`SQLite`), or the erased rows'
    /// space reclaimable (PostgreSQL, see [`Store::vacuum_erased`]).
    ///
    /// On `SQLite`, `VACUUM` writes the store anew from its live rows (no
    /// stale separator keys, no free space holding old cells), then a
    /// `TRUNCATE` checkpoint copies the log into the store and empties it.
    /// The `-shm` file holds only page numbers.
    ///
    /// Safe beside other connections: `VACUUM` is one write transaction
    /// (it waits for other writers, and readers keep their snapshot), but
    /// the log can only be emptied once no reader needs its old pages; if
    /// one still does after the busy timeout, this fails and says so (the
    /// rows are erased; running the command again finishes the job).
    /// Inside a dry run's transaction it does nothing: nothing is kept.
    fn scrub(&self) -> Result<()> {
        if self.db().in_transaction() {
            return Ok(());
        }
        let Some(conn) = self.db().sqlite() else {
            return self.vacuum_erased();
        };
        // The copy VACUUM builds goes to a temporary file, not to memory
        // (where statement journals go): it is as large as the store.
        conn.execute_batch("PRAGMA temp_store = FILE; VACUUM")
            .and_then(|()| conn.execute_batch("PRAGMA temp_store = MEMORY"))
            .map_err(|source| self.error(source))?;
        let busy: bool = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .map_err(|source| self.error(source))?;
        if busy {
            return Err(self.error(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some(
                    "another connection kept reading it until the busy timeout: the rows are \
                     erased, but its write-ahead log still holds old copies of them; \
                     run the command again once that connection is done"
                        .into(),
                ),
            )));
        }
        Ok(())
    }

    /// PostgreSQL: `VACUUM` of the tables `prune` and `forget` touch, so
    /// that the erased rows' versions (and their index entries) are removed
    /// and their space reused, rather than kept until autovacuum gets to
    /// them. One statement per table, outside any transaction (`VACUUM`
    /// cannot run in one). Copies in the write-ahead log, its archive,
    /// replicas and backups are the server's, and its operator's: see
    /// ARCHITECTURE, "Retention".
    fn vacuum_erased(&self) -> Result<()> {
        for table in ERASED_TABLES {
            self.db()
                .batch(&format!("VACUUM {table}"))
                .map_err(|source| self.error(source))?;
        }
        Ok(())
    }
}

/// The tables `prune` and `forget` delete from or overwrite rows of.
const ERASED_TABLES: [&str; 5] = ["carts", "orders", "order_items", "sends", "suppressions"];

/// On `SQLite`, deleted cells are zeroed (the scrub rewrites the rest).
fn secure_delete(db: &Engine) -> DbResult<()> {
    match db.sqlite() {
        Some(conn) => Ok(conn.execute_batch("PRAGMA secure_delete = ON")?),
        None => Ok(()),
    }
}

/// Erases one person (`norm`: the lower-cased address) and records the hash.
fn forget_one(db: &Engine, norm: &str, at: DateTime<Utc>) -> DbResult<Forgotten> {
    let result = Forgotten {
        carts: db.execute("DELETE FROM carts WHERE email_norm = ?1", args![norm])?,
        orders: db.execute("DELETE FROM orders WHERE email_norm = ?1", args![norm])?,
        sends_anonymised: db.execute(
            "UPDATE sends SET email = '', email_norm = '', reason = NULL WHERE email_norm = ?1",
            args![norm],
        )?,
    };
    db.execute(
        "DELETE FROM suppressions WHERE email_norm = ?1",
        args![norm],
    )?;
    db.execute(
        "INSERT INTO forgotten (email_hash, created_at) VALUES (?1, ?2)
         ON CONFLICT (email_hash) DO NOTHING",
        args![&forget_hash(norm), to_unix(at)],
    )?;
    Ok(result)
}

impl Store {
    /// The forgotten people, for an import to drop, read in the batch's
    /// transaction: one count per batch, and the table read again only
    /// when it grew. `None` while nobody was forgotten, so an import then
    /// hashes nothing.
    pub(super) fn forgotten_in(&self, db: &Engine) -> DbResult<Option<ForgottenSet>> {
        let rows: i64 = db.value("SELECT count(*) FROM forgotten", &[])?;
        if rows == 0 {
            return Ok(None);
        }
        let mut cache = self.forgotten.borrow_mut();
        if cache.rows != rows {
            let mut digests = HashSet::with_capacity(usize::try_from(rows).unwrap_or(0));
            db.each("SELECT email_hash FROM forgotten", &[], |row| {
                let hash: String = row.get(0)?;
                let mut digest = [0; 32];
                // A hash recart did not write matches no address.
                if hex::decode_to_slice(hash.as_bytes(), &mut digest).is_ok() {
                    digests.insert(digest);
                }
                Ok(())
            })?;
            *cache = ForgottenCache {
                rows,
                digests: Rc::new(digests),
            };
        }
        Ok(Some(ForgottenSet(Rc::clone(&cache.digests))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// A reader that holds a snapshot from before `forget` past the busy
    /// timeout: the rows are erased, the log cannot be emptied, and
    /// `forget` says so rather than claim the files are clean; once the
    /// reader is done, the same command finishes the job.
    #[test]
    fn a_reader_keeping_the_old_pages_makes_forget_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recart.db");
        let store = Store::open(&path).unwrap();
        store
            .conn()
            .execute(
                "INSERT INTO suppressions (email_norm, reason, created_at)
                 VALUES ('mia@example.com', 'manual', 0)",
                [],
            )
            .unwrap();
        let reader = rusqlite::Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let seen: i64 = reader
            .query_row("SELECT count(*) FROM suppressions", [], |row| row.get(0))
            .unwrap();
        assert_eq!(seen, 1);
        store
            .conn()
            .busy_timeout(std::time::Duration::from_millis(50))
            .unwrap();

        let error = store.forget(&["Mia@Example.com"], Utc::now()).unwrap_err();
        assert!(matches!(error, Error::Store { .. }), "{error:?}");
        assert!(
            error.to_string().contains("run the command again"),
            "{error}"
        );
        let left: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM suppressions", [], |row| row.get(0))
            .unwrap();
        assert_eq!(left, 0);

        reader.execute_batch("COMMIT").unwrap();
        store.forget(&["Mia@Example.com"], Utc::now()).unwrap();
        let wal = std::fs::metadata(dir.path().join("recart.db-wal")).unwrap();
        assert_eq!(wal.len(), 0);
    }
}

#[cfg(test)]
mod both_engines {
    use super::*;
    use crate::store::from_unix;
    use crate::store::testing::both_stores;

    /// A cart, an order with an item, a claimed send and a suppression of
    /// `email`, all at `at` (unix seconds), keyed by `key`.
    fn person(store: &Store, key: &str, email: &str, at: i64) {
        let norm = normalize_email(email);
        store
            .write_db(|db| {
                db.execute(
                    "INSERT INTO carts (id, email, email_norm, first_name, locale, currency,
                         status, accepts_marketing, created_at, updated_at, total_minor,
                         item_count, snapshot_hash)
                     VALUES (?1, ?2, ?3, 'Mia', 'en', 'EUR', 'open', 1, ?4, ?4, 100, 1, ?5)",
                    args![key, email, &norm, at, &b"hash"[..]],
                )?;
                db.execute(
                    "INSERT INTO orders (id, email, email_norm, total_minor, currency, created_at)
                     VALUES (?1, ?2, ?3, 100, 'EUR', ?4)",
                    args![key, email, &norm, at],
                )?;
                db.execute(
                    "INSERT INTO order_items (order_id, sku) VALUES (?1, 'SKU-1')",
                    args![key],
                )?;
                db.execute(
                    "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id,
                         attempts, claimed_at, reason)
                     VALUES (?1, 'first', ?2, ?3, 'sent', 1, 1, ?4, '250 ok')",
                    args![key, email, &norm, at],
                )?;
                db.execute(
                    "INSERT INTO suppressions (email_norm, reason, created_at)
                     VALUES (?1, 'manual', ?2)",
                    args![&norm, at],
                )
            })
            .unwrap();
    }

    fn count(store: &Store, sql: &str) -> i64 {
        store.db().value(sql, &[]).unwrap()
    }

    /// On PostgreSQL, whether `VACUUM` has been run by hand on `table`.
    fn vacuumed(store: &Store, table: &str) -> bool {
        store
            .db()
            .value(
                "SELECT coalesce(max(vacuum_count), 0) > 0 FROM pg_stat_user_tables
                 WHERE schemaname = 'recart' AND relname = ?1",
                args![table],
            )
            .unwrap()
    }

    #[test]
    fn forget_erases_a_person_on_both_engines() {
        for (engine, store) in both_stores("recart_unit_retention_forget") {
            person(&store, "c1", "Mia@Example.com", 1_000);
            person(&store, "c2", "leo@example.com", 1_000);
            let done = store
                .forget(&["MIA@example.com"], from_unix(2_000))
                .unwrap();
            let one = Forgotten {
                carts: 1,
                orders: 1,
                sends_anonymised: 1,
            };
            assert_eq!(done, vec![one], "{engine}");
            assert_eq!(count(&store, "SELECT count(*) FROM carts"), 1, "{engine}");
            assert_eq!(count(&store, "SELECT count(*) FROM orders"), 1, "{engine}");
            assert_eq!(
                count(&store, "SELECT count(*) FROM order_items"),
                1,
                "{engine}: the items cascade"
            );
            assert_eq!(
                count(
                    &store,
                    "SELECT count(*) FROM sends WHERE email = '' AND reason IS NULL"
                ),
                1,
                "{engine}"
            );
            assert_eq!(
                count(&store, "SELECT count(*) FROM suppressions"),
                1,
                "{engine}"
            );
            let hashes = store.forgotten_hashes().unwrap();
            assert_eq!(
                hashes,
                HashSet::from([forget_hash("mia@example.com")]),
                "{engine}"
            );
            let set = store.forgotten_in(store.db()).unwrap().unwrap();
            assert!(set.contains(" MIA@example.com"), "{engine}");
            assert!(!set.contains("leo@example.com"), "{engine}");
            // Again: nothing more to erase, the hash is kept once.
            let again = store
                .forget(&["mia@example.com"], from_unix(3_000))
                .unwrap();
            assert_eq!(again, vec![Forgotten::default()], "{engine}");
            assert_eq!(
                count(&store, "SELECT count(*) FROM forgotten"),
                1,
                "{engine}"
            );
            if store.is_postgres() {
                for table in ERASED_TABLES {
                    assert!(vacuumed(&store, table), "{engine}: {table} vacuumed");
                }
            }
        }
    }

    #[test]
    fn prune_deletes_old_rows_and_erases_old_addresses_on_both_engines() {
        for (engine, store) in both_stores("recart_unit_retention_prune") {
            person(&store, "old", "old@example.com", 1_000);
            person(&store, "new", "new@example.com", 5_000);
            let pruned = store.prune(from_unix(2_000)).unwrap();
            let expected = Pruned {
                carts: 1,
                orders: 1,
                sends_anonymised: 1,
            };
            assert_eq!(pruned, expected, "{engine}");
            let left: Vec<String> = {
                let mut ids = Vec::new();
                store
                    .db()
                    .each(
                        "SELECT id FROM carts UNION ALL SELECT id FROM orders",
                        &[],
                        |row| {
                            ids.push(row.get(0)?);
                            Ok(())
                        },
                    )
                    .unwrap();
                ids
            };
            assert_eq!(left, ["new", "new"], "{engine}");
            assert_eq!(
                count(
                    &store,
                    "SELECT count(*) FROM sends WHERE email = 'new@example.com'"
                ),
                1,
                "{engine}"
            );
            assert_eq!(
                count(&store, "SELECT count(*) FROM suppressions"),
                2,
                "{engine}: suppressions stay"
            );
            if store.is_postgres() {
                assert!(vacuumed(&store, "carts"), "{engine}");
            }
            // Again: nothing left to prune.
            assert_eq!(store.prune(from_unix(2_000)).unwrap(), Pruned::default());
        }
    }

    /// In a dry run's transaction the erasure is a savepoint and nothing is
    /// scrubbed: on PostgreSQL `VACUUM` would fail there.
    #[test]
    fn forget_in_a_discarded_transaction_scrubs_nothing() {
        for (engine, store) in both_stores("recart_unit_retention_dry") {
            person(&store, "c1", "mia@example.com", 1_000);
            store.begin_discarded().unwrap();
            let done = store
                .forget(&["mia@example.com"], from_unix(2_000))
                .unwrap();
            assert_eq!(done[0].carts, 1, "{engine}");
            assert_eq!(count(&store, "SELECT count(*) FROM carts"), 0, "{engine}");
        }
    }
}
