//! Keeping personal data only as long as needed: `prune` drops old carts
//! and orders, `forget` erases one person.

use chrono::{DateTime, Utc};
use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::model::normalize_email;

use super::{Store, to_unix};

/// What `prune` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub carts: u64,
    pub orders: u64,
    /// Ledger entries whose address was erased (their counts stay).
    pub sends_anonymised: u64,
}

/// What `forget` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    pub carts: u64,
    pub orders: u64,
    pub sends_anonymised: u64,
}

/// The pseudonym a forgotten address is kept under: SHA-256 of the
/// lower-cased address with a fixed prefix, hex.
pub fn forget_hash(email: &str) -> String {
    let digest = Sha256::digest(format!("recart-forget\0{}", normalize_email(email)));
    hex::encode(digest)
}

impl Store {
    /// Deletes carts last active, and orders placed, before `cutoff`, and
    /// erases the addresses (and the server replies, which may quote them)
    /// of ledger entries claimed before it. Runs and per-run skip counts
    /// stay: they hold no personal data.
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
        self.checkpoint()?;
        Ok(pruned)
    }

    /// Erases one person: their carts and items, orders, the address in
    /// the ledger and in suppressions; keeps only a hash so that a
    /// re-imported cart of theirs is never mailed again.
    pub fn forget(&self, email: &str, at: DateTime<Utc>) -> Result<Forgotten> {
        let norm = normalize_email(email);
        let forgotten = self.write(|conn| {
            conn.execute_batch("PRAGMA secure_delete = ON")?;
            let result = Forgotten {
                carts: conn.execute("DELETE FROM carts WHERE email_norm = ?1", [&norm])? as u64,
                orders: conn.execute("DELETE FROM orders WHERE email_norm = ?1", [&norm])? as u64,
                sends_anonymised: conn.execute(
                    "UPDATE sends SET email = '', email_norm = '', reason = NULL
                     WHERE email_norm = ?1",
                    [&norm],
                )? as u64,
            };
            conn.execute("DELETE FROM suppressions WHERE email_norm = ?1", [&norm])?;
            conn.execute(
                "INSERT INTO forgotten (email_hash, created_at) VALUES (?1, ?2)
                 ON CONFLICT (email_hash) DO NOTHING",
                params![forget_hash(&norm), to_unix(at)],
            )?;
            Ok(result)
        })?;
        self.checkpoint()?;
        Ok(forgotten)
    }

    /// The hashes of forgotten addresses.
    pub fn forgotten_hashes(&self) -> Result<std::collections::HashSet<String>> {
        let run = || -> rusqlite::Result<_> {
            let mut query = self
                .conn()
                .prepare_cached("SELECT email_hash FROM forgotten")?;
            query.query_map([], |row| row.get(0))?.collect()
        };
        run().map_err(|source| self.error(source))
    }

    /// Moves the WAL into the database and truncates it, so that erased
    /// rows do not linger in the log file.
    fn checkpoint(&self) -> Result<()> {
        if !self.conn().is_autocommit() {
            return Ok(());
        }
        self.conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|source| self.error(source))
    }
}
