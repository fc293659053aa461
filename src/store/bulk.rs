//! The bulk load of a first import: secondary indexes dropped, the file
//! loaded in one transaction, the indexes built again.

use crate::error::Result;

use super::{Bulk, Store};

/// A first import: the whole file in one transaction, into a carts table
/// that was empty, with the carts' secondary indexes dropped at the start
/// and built again, each by one sort, at the end. Inserting into them row
/// by row (the window index in `updated_at` order, the e-mail index in
/// address order, neither the file's) dirtied pages all over both at every
/// batch's commit: it was most of a first import's time.
///
/// The drop, the load and the rebuild are one transaction, so a crash or a
/// kill rolls all of it back and the store keeps its indexes; its schema
/// is the same afterwards (each index is made again from its own SQL, as
/// `sqlite_master` holds it). The price: other writers (a `run`) wait for
/// the whole file rather than one batch, and a batch that fails to write
/// (a full disk) rolls back the whole file, not itself alone. A file that
/// fails to read keeps the batches read before, as it does otherwise.
pub struct BulkLoad<'s> {
    store: &'s Store,
    /// The dropped indexes' `CREATE INDEX` statements.
    indexes: Vec<String>,
    open: bool,
}

impl Store {
    /// Starts a [`BulkLoad`] if the store is on `SQLite`, its carts table is
    /// empty and no transaction is open (a dry run's is); otherwise `None`,
    /// and batches commit one by one. (On PostgreSQL each batch is copied
    /// into a staging table and written set-wise; its indexes stay.)
    pub fn begin_bulk_load(&self) -> Result<Option<BulkLoad<'_>>> {
        let Some(conn) = self.db().sqlite() else {
            return Ok(None);
        };
        if !conn.is_autocommit() {
            return Ok(None);
        }
        let empty = || -> rusqlite::Result<bool> {
            conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM carts)", [], |row| {
                row.get(0)
            })
        };
        if !empty().map_err(|source| self.error(source))? {
            return Ok(None);
        }
        let start = || -> rusqlite::Result<Option<Vec<String>>> {
            // A rollback journal rather than the WAL for the load: the pages
            // of an empty store's new rows are written once, to the store,
            // instead of to the WAL and then copied over. (It takes effect
            // only when no other connection has the store open. Either way
            // the load is one atomic transaction.)
            // The pragma must come outside a transaction, and so must the
            // one on foreign keys: an import deletes no cart, so they need
            // no checking within it.
            // (Busy when another connection has it open: the WAL it is.)
            let _ = conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()));
            conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE")?;
            // Another import may have filled it meanwhile.
            if !empty()? {
                return Ok(None);
            }
            let indexes: Vec<(String, String)> = conn
                .prepare(
                    "SELECT name, sql FROM sqlite_master
                     WHERE type = 'index' AND tbl_name = 'carts' AND sql IS NOT NULL",
                )?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (name, _) in &indexes {
                conn.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
            }
            Ok(Some(indexes.into_iter().map(|(_, sql)| sql).collect()))
        };
        match start() {
            Ok(Some(indexes)) => {
                self.bulk.set(Bulk::Loading);
                Ok(Some(BulkLoad {
                    store: self,
                    indexes,
                    open: true,
                }))
            }
            Ok(None) => {
                self.end_bulk_load("ROLLBACK");
                Ok(None)
            }
            Err(source) => {
                self.end_bulk_load("ROLLBACK");
                Err(self.error(source))
            }
        }
    }

    fn end_bulk_load(&self, end: &str) {
        self.bulk.set(Bulk::Off);
        let Some(conn) = self.db().sqlite() else {
            return;
        };
        if !conn.is_autocommit() {
            let _ = conn.execute_batch(end);
        }
        let _ = conn.execute_batch("PRAGMA foreign_keys = ON");
        // Back to the WAL, which every connection asks for anyway.
        let _ = conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()));
    }
}

impl BulkLoad<'_> {
    /// Builds the indexes again and commits; rolls back instead if a batch
    /// failed to write (its error was returned then).
    pub fn finish(mut self) -> Result<()> {
        if self.store.bulk.get() == Bulk::Failed {
            return Ok(());
        }
        let Some(conn) = self.store.db().sqlite() else {
            return Ok(());
        };
        let done = self
            .indexes
            .iter()
            .try_for_each(|sql| conn.execute_batch(sql))
            .and_then(|()| conn.execute_batch("COMMIT"));
        // On failure, `drop` rolls back: the indexes come back with it.
        done.map_err(|source| self.store.error(source))?;
        self.open = false;
        self.store.end_bulk_load("COMMIT");
        Ok(())
    }
}

impl Drop for BulkLoad<'_> {
    fn drop(&mut self) {
        if self.open {
            self.store.end_bulk_load("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::both_stores;

    /// The bulk load is `SQLite`'s: on PostgreSQL batches are written as
    /// they come, each through its staging table.
    #[test]
    fn only_sqlite_loads_in_bulk() {
        for (engine, store) in both_stores("recart_unit_import_bulk") {
            let bulk = store.begin_bulk_load().unwrap();
            assert_eq!(bulk.is_some(), engine == "sqlite", "{engine}");
            if let Some(bulk) = bulk {
                bulk.finish().unwrap();
            }
        }
    }
}
