//! Copying a whole store into another, empty one (`recart store copy`):
//! a `SQLite` file into PostgreSQL, back, or into another file. Every row
//! of every table, with the same ids and values, read from one snapshot
//! of the source and written in one transaction on the target (all or
//! nothing), a multi-row `INSERT` per batch.

use std::fmt::Write as _;

use postgres::fallible_iterator::FallibleIterator as _;
use rusqlite::types::Value;

use crate::error::{Error, Result};

use super::Store;
use super::engine::{Arg, DbError, DbResult, Engine, Row, to_postgres};

/// A table copied: its name and how many rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub rows: u64,
}

/// A table and the columns copied, named (the engines' column orders
/// need not agree). Parents come before the tables that reference them
/// (`orders` before `order_items`, `runs` before `run_skips`).
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
}

/// Every table of the store but `source_watermarks` (its columns differ
/// between the engines: copied through [`Store::watermark`]) and what
/// only one engine keeps of its own (PostgreSQL's `schema_version` and
/// `partition_runs`, a run's bookkeeping).
const TABLES: &[Table] = &[
    Table {
        name: "carts",
        columns: &[
            "id",
            "email",
            "email_norm",
            "first_name",
            "locale",
            "currency",
            "status",
            "accepts_marketing",
            "created_at",
            "updated_at",
            "utc_offset",
            "total_minor",
            "item_count",
            "snapshot_hash",
            "timezone",
            "phone",
            "sms_consent",
            "items",
        ],
    },
    Table {
        name: "orders",
        columns: &[
            "id",
            "email",
            "email_norm",
            "cart_id",
            "total_minor",
            "currency",
            "created_at",
        ],
    },
    Table {
        name: "order_items",
        columns: &["order_id", "sku"],
    },
    Table {
        name: "sends",
        columns: &[
            "id",
            "cart_id",
            "step",
            "email",
            "email_norm",
            "state",
            "run_id",
            "attempts",
            "claimed_at",
            "sent_at",
            "reason",
            "message_id",
            "variant",
        ],
    },
    Table {
        name: "suppressions",
        columns: &["email_norm", "reason", "created_at"],
    },
    Table {
        name: "coupons",
        columns: &[
            "code",
            "pool",
            "expires_at",
            "added_at",
            "cart_id",
            "step",
            "assigned_at",
        ],
    },
    Table {
        name: "runs",
        columns: &[
            "id",
            "started_at",
            "finished_at",
            "now",
            "imported",
            "sent",
            "skipped",
            "retry",
            "failed",
            "unknown",
            "exit_code",
        ],
    },
    Table {
        name: "run_skips",
        columns: &["run_id", "step", "reason", "count"],
    },
    Table {
        name: "forgotten",
        columns: &["email_hash", "created_at"],
    },
    Table {
        name: "products",
        columns: &[
            "sku",
            "name",
            "image_url",
            "product_url",
            "price_minor",
            "currency",
            "in_stock",
        ],
    },
    Table {
        name: "reported_row_errors",
        columns: &["source", "fingerprints"],
    },
    Table {
        name: "clicks",
        columns: &["id", "cart_id", "step", "variant", "clicked_at"],
    },
    Table {
        name: "mail_reports",
        columns: &[
            "key",
            "outcome",
            "cart_id",
            "step",
            "detail",
            "processed_at",
        ],
    },
];

/// The tables whose `id` PostgreSQL generates (an identity column): its
/// sequence is moved past the ids copied.
const IDENTITIES: [&str; 3] = ["sends", "runs", "clicks"];

/// Rows per `INSERT`: 500 carts are 9,000 parameters, well within both
/// engines' limits (`SQLite` 32,766, PostgreSQL 65,535).
const BATCH_ROWS: usize = 500;

impl Store {
    /// Copies every row of this store into `target`, which must hold
    /// none: the tables in [`TABLES`] order, then the watermarks. The
    /// source is read from one snapshot (a run writing meanwhile is not
    /// copied half), the target written in one transaction.
    pub fn copy_into(&self, target: &Store) -> Result<Vec<TableCopy>> {
        let held = target.tables_holding_rows()?;
        if !held.is_empty() {
            return Err(Error::Usage(format!(
                "store copy: the target {} already holds {}: copy only into an empty store",
                target.path().display(),
                held.join(", ")
            )));
        }
        self.begin_snapshot().map_err(|source| self.error(source))?;
        let copied = self.copy_rows(target);
        let _ = self.db().batch("COMMIT");
        copied
    }

    /// The copied tables of this store that hold rows.
    fn tables_holding_rows(&self) -> Result<Vec<&'static str>> {
        let mut held = Vec::new();
        for name in TABLES
            .iter()
            .map(|table| table.name)
            .chain(["source_watermarks"])
        {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {name})");
            if self
                .db()
                .value::<bool>(&sql, &[])
                .map_err(|source| self.error(source))?
            {
                held.push(name);
            }
        }
        Ok(held)
    }

    /// A read transaction: one snapshot of the whole store, taken at its
    /// first read (`SQLite` in WAL mode lets writers go on meanwhile).
    fn begin_snapshot(&self) -> DbResult<()> {
        self.db().batch(if self.is_postgres() {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        } else {
            "BEGIN DEFERRED"
        })
    }

    /// The copy itself, in the target's transaction.
    fn copy_rows(&self, target: &Store) -> Result<Vec<TableCopy>> {
        let db = target.db();
        db.begin().map_err(|source| target.error(source))?;
        let copied = (|| {
            let mut copied = Vec::with_capacity(TABLES.len() + 1);
            for table in TABLES {
                copied.push(TableCopy {
                    table: table.name,
                    rows: self.copy_table(table, target)?,
                });
            }
            copied.push(TableCopy {
                table: "source_watermarks",
                rows: self.copy_watermarks(target)?,
            });
            if db.is_postgres() {
                for table in IDENTITIES {
                    db.execute(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('{schema}.{table}', 'id'),
                                           coalesce(max(id), 0) + 1, false)
                             FROM {table}",
                            schema = super::postgres::SCHEMA
                        ),
                        &[],
                    )
                    .map_err(|source| target.error(source))?;
                }
            }
            Ok(copied)
        })();
        match copied {
            Ok(copied) => {
                db.end(true).map_err(|source| target.error(source))?;
                Ok(copied)
            }
            Err(error) => {
                let _ = db.end(false);
                Err(error)
            }
        }
    }

    /// Copies one table's rows into `target`, a batch per `INSERT`;
    /// errors name the store that failed.
    fn copy_table(&self, table: &Table, target: &Store) -> Result<u64> {
        let db = target.db();
        let width = table.columns.len();
        let columns = table.columns.join(", ");
        let mut batch: Vec<Value> = Vec::with_capacity(BATCH_ROWS * width);
        let mut rows = 0;
        // The target's error, kept apart to be told from the source's.
        let mut failed = None;
        // Codes that expire together are drawn in the order they were
        // added: copy them in that order (the target numbers them anew).
        let order = match (table.name, self.is_postgres()) {
            ("coupons", true) => " ORDER BY added_seq",
            ("coupons", false) => " ORDER BY rowid",
            _ => "",
        };
        let select = format!("SELECT {columns} FROM {}{order}", table.name);
        let read = self.stream(&select, |row| {
            for index in 0..width {
                batch.push(row.get::<Value>(index)?);
            }
            if batch.len() == BATCH_ROWS * width {
                rows += insert(db, table.name, &columns, width, &batch).map_err(|error| {
                    failed = Some(error);
                    DbError::Value("the target failed".into())
                })?;
                batch.clear();
            }
            Ok(())
        });
        if let Some(error) = failed {
            return Err(target.error(error));
        }
        read.map_err(|source| self.error(source))?;
        if !batch.is_empty() {
            rows += insert(db, table.name, &columns, width, &batch)
                .map_err(|error| target.error(error))?;
        }
        Ok(rows)
    }

    /// The watermarks, by value: `SQLite` keeps one column of any type,
    /// PostgreSQL a number or a text.
    fn copy_watermarks(&self, target: &Store) -> Result<u64> {
        let mut sources: Vec<String> = Vec::new();
        self.db()
            .each("SELECT source FROM source_watermarks", &[], |row| {
                sources.push(row.get(0)?);
                Ok(())
            })
            .map_err(|source| self.error(source))?;
        for source in &sources {
            if let Some(value) = self.watermark(source)? {
                target.set_watermark(source, &value)?;
            }
        }
        Ok(sources.len() as u64)
    }

    /// Runs a query of this store, calling `each` with every row as it
    /// comes: on PostgreSQL through a portal, not the whole table in
    /// memory.
    fn stream(&self, sql: &str, mut each: impl FnMut(&Row<'_>) -> DbResult<()>) -> DbResult<()> {
        let Some(mut client) = self.db().postgres_client() else {
            return self.db().each(sql, &[], each);
        };
        let none: [&(dyn postgres::types::ToSql + Sync); 0] = [];
        let mut rows = client.query_raw(to_postgres(sql).as_str(), none)?;
        while let Some(row) = rows.next()? {
            each(&Row::Postgres(&row))?;
        }
        Ok(())
    }
}

/// One multi-row `INSERT` of `values` (`width` per row) into `table`.
fn insert(
    db: &Engine,
    table: &str,
    columns: &str,
    width: usize,
    values: &[Value],
) -> DbResult<u64> {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    for row in 0..values.len() / width {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..width {
            if column > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "?{}", row * width + column + 1);
        }
        sql.push(')');
    }
    let args: Vec<Arg<'_>> = values.iter().map(Arg::from).collect();
    db.execute(&sql, &args)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::store::engine::args;
    use crate::store::testing::postgres_store;

    /// A row in every table, with NULLs, blobs and both kinds of watermark.
    fn fill(store: &Store) {
        store
            .db()
            .batch(
                "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
                     accepts_marketing, created_at, updated_at, utc_offset, total_minor,
                     item_count, snapshot_hash, timezone, phone, sms_consent, items)
                 VALUES ('c1', 'Mia@Example.com', 'mia@example.com', 'Mia', 'de', 'EUR', 'open',
                         1, 100, 200, NULL, 4200, 2, x'00ff10', 'Europe/Berlin', '+4912', 1,
                         '[[\"S\",\"Shoe\",\"\",1,4200,\"\",\"\"]]'),
                        ('c2', 'leo@example.com', 'leo@example.com', 'Léo', 'fr', 'EUR', 'ordered',
                         0, 100, 300, 3600, 0, 0, x'', '', '', 0, '[]');
                 INSERT INTO orders (id, email, email_norm, cart_id, total_minor, currency, created_at)
                 VALUES ('o1', 'leo@example.com', 'leo@example.com', 'c2', 999, 'EUR', 310),
                        ('o2', 'ann@example.com', 'ann@example.com', NULL, 5, 'USD', 320);
                 INSERT INTO order_items (order_id, sku) VALUES ('o1', 'S'), ('o1', 'T');
                 INSERT INTO runs (id, started_at, finished_at, now, imported, sent, skipped,
                     retry, failed, unknown, exit_code)
                 VALUES (7, 1000, 1010, 1000, 2, 1, 1, 0, 0, 0, 0),
                        (9, 2000, NULL, 2000, 0, 0, 0, 0, 0, 0, NULL);
                 INSERT INTO run_skips (run_id, step, reason, count) VALUES (7, '', 'suppressed', 3);
                 INSERT INTO sends (id, cart_id, step, email, email_norm, state, run_id, attempts,
                     claimed_at, sent_at, reason, message_id, variant)
                 VALUES (41, 'c1', 'first', 'Mia@Example.com', 'mia@example.com', 'sent', 7, 1,
                         1000, 1001, '250 ok', '<m1@x>', 'b'),
                        (42, 'c1', 'second', '', '', 'claimed', 9, 0, 2000, NULL, NULL, NULL, NULL);
                 INSERT INTO suppressions (email_norm, reason, created_at)
                 VALUES ('bob@example.com', 'manual', 5);
                 INSERT INTO coupons (code, pool, expires_at, added_at, cart_id, step, assigned_at)
                 VALUES ('FREE1', 'spring', NULL, 1, NULL, NULL, NULL),
                        ('GOT1', NULL, 99, 2, 'c1', 'first', 1000);
                 INSERT INTO forgotten (email_hash, created_at) VALUES ('ab12', 50);
                 INSERT INTO products (sku, name, image_url, product_url, price_minor, currency,
                     in_stock)
                 VALUES ('S', 'Shoe', 'https://i/s', 'https://p/s', 4200, 'EUR', 1),
                        ('T', 'Tie', '', '', NULL, NULL, NULL);
                 INSERT INTO reported_row_errors (source, fingerprints) VALUES ('a.csv', x'0102');
                 INSERT INTO clicks (id, cart_id, step, variant, clicked_at)
                 VALUES (3, 'c1', 'first', 'b', 1100);
                 INSERT INTO mail_reports (key, outcome, cart_id, step, detail, processed_at)
                 VALUES ('id:<r@x>', 'hard-bounce', 'c1', 'first', '5.1.1', 1200),
                        ('sha256:00', 'unparsable', NULL, NULL, 'no report', 1300);",
            )
            .unwrap();
        store
            .set_watermark("shop", &Value::Integer(1_700_000_000))
            .unwrap();
        store
            .set_watermark("other", &Value::Text("2026-11-20 10:00:00".into()))
            .unwrap();
    }

    /// Every copied table's rows, in key order, and the watermarks.
    fn dump(store: &Store) -> Vec<(String, Vec<Vec<Value>>)> {
        let mut tables = Vec::new();
        for table in TABLES {
            let columns = table.columns.join(", ");
            let order: Vec<String> = (1..=table.columns.len()).map(|n| n.to_string()).collect();
            let mut rows = Vec::new();
            store
                .db()
                .each(
                    &format!(
                        "SELECT {columns} FROM {} ORDER BY {}",
                        table.name,
                        order.join(", ")
                    ),
                    &[],
                    |row| {
                        let values = (0..table.columns.len())
                            .map(|index| row.get::<Value>(index))
                            .collect::<DbResult<_>>()?;
                        rows.push(values);
                        Ok(())
                    },
                )
                .unwrap();
            tables.push((table.name.to_owned(), rows));
        }
        let watermarks = ["shop", "other"]
            .iter()
            .map(|source| vec![store.watermark(source).unwrap().unwrap_or(Value::Null)])
            .collect();
        tables.push(("source_watermarks".to_owned(), watermarks));
        tables
    }

    fn sqlite_file(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::open(&dir.path().join(name)).unwrap()
    }

    #[test]
    fn a_store_is_copied_row_for_row_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let source = Store::open_in_memory().unwrap();
        fill(&source);
        let target = sqlite_file(&dir, "copy.db");
        let copied = source.copy_into(&target).unwrap();
        let counts: Vec<(&str, u64)> = copied.iter().map(|copy| (copy.table, copy.rows)).collect();
        assert_eq!(
            counts,
            [
                ("carts", 2),
                ("orders", 2),
                ("order_items", 2),
                ("sends", 2),
                ("suppressions", 1),
                ("coupons", 2),
                ("runs", 2),
                ("run_skips", 1),
                ("forgotten", 1),
                ("products", 2),
                ("reported_row_errors", 1),
                ("clicks", 1),
                ("mail_reports", 2),
                ("source_watermarks", 2),
            ]
        );
        assert_eq!(dump(&target), dump(&source));
    }

    #[test]
    fn more_rows_than_a_batch_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let source = Store::open_in_memory().unwrap();
        source
            .write_db(|db| {
                for n in 0..(BATCH_ROWS * 2 + 7) {
                    db.execute(
                        "INSERT INTO suppressions (email_norm, reason, created_at)
                         VALUES (?1, 'manual', ?2)",
                        args![&format!("p{n}@example.com"), i64::try_from(n).unwrap()],
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let target = sqlite_file(&dir, "copy.db");
        let copied = source.copy_into(&target).unwrap();
        let suppressions = copied.iter().find(|copy| copy.table == "suppressions");
        assert_eq!(suppressions.unwrap().rows, 1007);
        assert_eq!(dump(&target), dump(&source));
    }

    #[test]
    fn a_target_holding_rows_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let source = Store::open_in_memory().unwrap();
        fill(&source);
        let target = sqlite_file(&dir, "copy.db");
        target
            .db()
            .batch(
                "INSERT INTO runs (id, started_at, now) VALUES (1, 0, 0);
                 INSERT INTO products (sku, name, image_url, product_url) VALUES ('X', '', '', '')",
            )
            .unwrap();
        let error = source.copy_into(&target).unwrap_err();
        assert_eq!(error.exit_code(), 2, "{error}");
        let message = error.to_string();
        assert!(message.contains("copy.db"), "{message}");
        assert!(message.contains("runs, products"), "{message}");
        let runs: i64 = target.db().value("SELECT count(*) FROM runs", &[]).unwrap();
        assert_eq!(runs, 1);
    }

    /// SQLite → PostgreSQL → SQLite gives back the same rows, and
    /// PostgreSQL's identity columns go on after the copied ids.
    #[test]
    fn a_store_goes_to_postgres_and_back_unchanged() {
        let Some(postgres) = postgres_store("recart_unit_copy_round_trip") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let source = Store::open_in_memory().unwrap();
        fill(&source);
        source.copy_into(&postgres).unwrap();
        assert_eq!(dump(&postgres), dump(&source));
        let back = sqlite_file(&dir, "back.db");
        postgres.copy_into(&back).unwrap();
        assert_eq!(dump(&back), dump(&source));

        let next = |table: &str, sql: &str| -> i64 {
            postgres
                .db()
                .value(&format!("{sql} RETURNING id"), &[])
                .unwrap_or_else(|error| panic!("{table}: {error}"))
        };
        assert_eq!(
            next(
                "sends",
                "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts,
                     claimed_at) VALUES ('c9', 'first', '', '', 'claimed', 9, 0, 0)"
            ),
            43
        );
        assert_eq!(
            next("runs", "INSERT INTO runs (started_at, now) VALUES (0, 0)"),
            10
        );
        assert_eq!(
            next(
                "clicks",
                "INSERT INTO clicks (cart_id, step, clicked_at) VALUES ('c1', 'first', 0)"
            ),
            4
        );
    }

    /// The column lists name every column of every table on both engines:
    /// a migration that adds one must add it here too.
    #[test]
    fn every_column_of_every_table_is_copied() {
        let sqlite = Store::open_in_memory().unwrap();
        let mut stores = vec![(
            sqlite,
            "SELECT name FROM sqlite_schema WHERE type = 'table'",
            "SELECT name FROM pragma_table_info(?1)",
        )];
        if let Some(postgres) = postgres_store("recart_unit_copy_columns") {
            stores.push((
                postgres,
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'recart' AND table_type = 'BASE TABLE'",
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = 'recart' AND table_name = ?1",
            ));
        }
        for (store, tables_sql, columns_sql) in stores {
            let engine = if store.is_postgres() {
                "postgres"
            } else {
                "sqlite"
            };
            let mut tables = BTreeSet::new();
            store
                .db()
                .each(tables_sql, &[], |row| {
                    tables.insert(row.get::<String>(0)?);
                    Ok(())
                })
                .unwrap();
            for own in ["source_watermarks", "schema_version", "partition_runs"] {
                tables.remove(own);
            }
            let copied: BTreeSet<String> =
                TABLES.iter().map(|table| table.name.to_owned()).collect();
            assert_eq!(tables, copied, "{engine}");
            for table in TABLES {
                let mut columns = BTreeSet::new();
                store
                    .db()
                    .each(columns_sql, args![table.name], |row| {
                        columns.insert(row.get::<String>(0)?);
                        Ok(())
                    })
                    .unwrap();
                // PostgreSQL's order of the codes added (SQLite's rowid).
                columns.remove("added_seq");
                let listed: BTreeSet<String> = table
                    .columns
                    .iter()
                    .map(|&column| column.to_owned())
                    .collect();
                assert_eq!(columns, listed, "{engine}: {}", table.name);
            }
        }
    }
}
