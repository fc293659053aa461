//! What the store remembers of each source between reads: its watermark
//! (how far an incremental read got) and the row errors already reported.

use rusqlite::types::Value;

use crate::error::Result;

use super::Store;
use super::engine::{self, DbResult, args};

impl Store {
    /// The stored watermark of a source, if it was read before.
    pub fn watermark(&self, source: &str) -> Result<Option<Value>> {
        // PostgreSQL has no column of any type: a number or a text.
        let sql = if self.is_postgres() {
            "SELECT coalesce(int_value::text, text_value), int_value IS NOT NULL
             FROM source_watermarks WHERE source = ?1"
        } else {
            "SELECT updated_at, 0 FROM source_watermarks WHERE source = ?1"
        };
        let read = |row: &engine::Row<'_>| -> DbResult<Value> {
            let value: Value = row.get(0)?;
            Ok(match (value, row.get::<bool>(1)?) {
                (Value::Text(text), true) => text.parse().map_or(Value::Text(text), Value::Integer),
                (value, _) => value,
            })
        };
        self.conn
            .one(sql, args![source], read)
            .map_err(|source| self.error(source))
    }

    /// Stores a source's watermark (in a dry run, until it is rolled back).
    pub fn set_watermark(&self, source: &str, updated_at: &Value) -> Result<()> {
        let sql = if self.is_postgres() {
            "INSERT INTO source_watermarks (source, int_value, text_value)
             VALUES (?1, ?2, ?3) ON CONFLICT (source) DO UPDATE
             SET int_value = excluded.int_value, text_value = excluded.text_value"
        } else {
            "INSERT INTO source_watermarks (source, updated_at) VALUES (?1, ?2)
             ON CONFLICT (source) DO UPDATE SET updated_at = excluded.updated_at"
        };
        let text = match updated_at {
            Value::Integer(_) => None,
            Value::Real(real) => Some(real.to_string()),
            Value::Text(text) => Some(text.clone()),
            Value::Blob(blob) => Some(String::from_utf8_lossy(blob).into_owned()),
            Value::Null => Some(String::new()),
        };
        let int = match *updated_at {
            Value::Integer(int) => Some(int),
            _ => None,
        };
        self.write_db(|db| {
            if db.is_postgres() {
                db.execute(sql, args![source, int, &text])
            } else {
                db.execute(sql, args![source, updated_at])
            }
        })
        .map(|_| ())
    }
}

impl Store {
    /// The fingerprints of the row errors the last read of `source`
    /// rejected (see `ingest::sink::Reported`), in no order.
    pub fn reported_row_errors(&self, source: &str) -> Result<Vec<u64>> {
        let blob: Option<Vec<u8>> = self
            .conn
            .one(
                "SELECT fingerprints FROM reported_row_errors WHERE source = ?1",
                args![source],
                |row| row.get(0),
            )
            .map_err(|source| self.error(source))?;
        Ok(blob
            .unwrap_or_default()
            .chunks_exact(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
            .collect())
    }

    /// Replaces the row errors remembered for `source` (none: forgets it).
    pub fn set_reported_row_errors(&self, source: &str, fingerprints: &[u64]) -> Result<()> {
        let blob: Vec<u8> = fingerprints
            .iter()
            .flat_map(|fingerprint| fingerprint.to_le_bytes())
            .collect();
        self.write_db(|db| {
            if blob.is_empty() {
                db.execute(
                    "DELETE FROM reported_row_errors WHERE source = ?1",
                    args![source],
                )
            } else {
                db.execute(
                    "INSERT INTO reported_row_errors (source, fingerprints) VALUES (?1, ?2)
                     ON CONFLICT (source) DO UPDATE SET fingerprints = excluded.fingerprints",
                    args![source, &blob],
                )
            }
        })
        .map(|_| ())
    }
}
