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
//! bytes).

use std::collections::HashSet;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
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
        let pruned = self.write(|conn| {
            conn.execute_batch("PRAGMA secure_delete = ON")?;
            let cutoff = to_unix(cutoff);
            Ok(Pruned {
                carts: conn.execute("DELETE FROM carts WHERE updated_at < ?1", [cutoff])? as u64,
                orders: conn.execute("DELETE FROM orders WHERE created_at < ?1", [cutoff])? as u64,
                sends_anonymised: conn.execute(
                    "UPDATE sends SET email = '', email_norm = '', reason = NULL
                     WHERE claimed_at < ?1 AND email != ''",
                    [cutoff],
                )? as u64,
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
        let forgotten = self.write(|conn| {
            conn.execute_batch("PRAGMA secure_delete = ON")?;
            emails
                .iter()
                .map(|email| forget_one(conn, &normalize_email(email.as_ref()), at))
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        self.scrub()?;
        Ok(forgotten)
    }

    /// The hashes of forgotten addresses.
    pub fn forgotten_hashes(&self) -> Result<HashSet<String>> {
        let run = || -> rusqlite::Result<_> {
            let mut query = self
                .conn()
                .prepare_cached("SELECT email_hash FROM forgotten")?;
            query.query_map([], |row| row.get(0))?.collect()
        };
        run().map_err(|source| self.error(source))
    }

    /// Leaves nothing erased in the files: `VACUUM` writes the store anew
    /// from its live rows (no stale separator keys, no free space holding
    /// old cells), then a `TRUNCATE` checkpoint copies the log into the
    /// store and empties it. The `-shm` file holds only page numbers.
    ///
    /// Safe beside other connections: `VACUUM` is one write transaction
    /// (it waits for other writers, and readers keep their snapshot), but
    /// the log can only be emptied once no reader needs its old pages; if
    /// one still does after the busy timeout, this fails and says so (the
    /// rows are erased; running the command again finishes the job).
    /// Inside a dry run's transaction it does nothing: nothing is kept.
    fn scrub(&self) -> Result<()> {
        let conn = self.conn();
        if !conn.is_autocommit() {
            return Ok(());
        }
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
}

/// Erases one person (`norm`: the lower-cased address) and records the hash.
fn forget_one(conn: &Connection, norm: &str, at: DateTime<Utc>) -> rusqlite::Result<Forgotten> {
    let result = Forgotten {
        carts: conn.execute("DELETE FROM carts WHERE email_norm = ?1", [norm])? as u64,
        orders: conn.execute("DELETE FROM orders WHERE email_norm = ?1", [norm])? as u64,
        sends_anonymised: conn.execute(
            "UPDATE sends SET email = '', email_norm = '', reason = NULL WHERE email_norm = ?1",
            [norm],
        )? as u64,
    };
    conn.execute("DELETE FROM suppressions WHERE email_norm = ?1", [norm])?;
    conn.execute(
        "INSERT INTO forgotten (email_hash, created_at) VALUES (?1, ?2)
         ON CONFLICT (email_hash) DO NOTHING",
        params![forget_hash(norm), to_unix(at)],
    )?;
    Ok(result)
}

impl Store {
    /// The forgotten people, for an import to drop, read in the batch's
    /// transaction: one count per batch, and the table read again only
    /// when it grew. `None` while nobody was forgotten, so an import then
    /// hashes nothing.
    pub(super) fn forgotten_set(&self, db: &Engine) -> DbResult<Option<ForgottenSet>> {
        let rows: i64 = db.value("SELECT count(*) FROM forgotten", args![])?;
        if rows == 0 {
            return Ok(None);
        }
        let mut cache = self.forgotten.borrow_mut();
        if cache.rows != rows {
            let mut digests = HashSet::with_capacity(usize::try_from(rows).unwrap_or(0));
            db.each("SELECT email_hash FROM forgotten", args![], |row| {
                let mut digest = [0; 32];
                // A hash recart did not write matches no address.
                if hex::decode_to_slice(row.get::<String>(0)?, &mut digest).is_ok() {
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
