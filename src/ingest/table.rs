//! A CSV file as a header and rows of fields, tolerant of what exports do:
//! a UTF-8 BOM, CRLF, ragged rows, invalid UTF-8 in one row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::RowError;

pub struct Table {
    pub path: PathBuf,
    columns: HashMap<String, usize>,
    header_len: usize,
    records: Vec<(u64, csv::ByteRecord)>,
}

/// One row, read by column name.
pub struct Row<'a> {
    table: &'a Table,
    pub line: u64,
    record: &'a csv::ByteRecord,
}

impl Table {
    pub fn new(path: &Path, bytes: &[u8]) -> Result<Table> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(bytes);
        let input_error = |message: String| Error::Input {
            path: path.to_path_buf(),
            message,
        };
        let header = reader
            .byte_headers()
            .map_err(|error| input_error(format!("cannot read the header: {error}")))?
            .clone();
        if header.is_empty() || header.iter().all(|field| field.is_empty()) {
            return Err(input_error("the file is empty: no header row".into()));
        }
        let columns = header
            .iter()
            .enumerate()
            .map(|(index, name)| (String::from_utf8_lossy(name).trim().to_string(), index))
            .collect();
        let mut records = Vec::new();
        let mut record = csv::ByteRecord::new();
        loop {
            let line = reader.position().line();
            match reader.read_byte_record(&mut record) {
                Ok(true) => {
                    let line = record.position().map_or(line, |p| p.line());
                    records.push((line, record.clone()));
                }
                Ok(false) => break,
                Err(error) => {
                    return Err(input_error(format!("line {line}: not CSV: {error}")));
                }
            }
        }
        Ok(Table {
            path: path.to_path_buf(),
            columns,
            header_len: header.len(),
            records,
        })
    }

    pub fn has_columns(&self, names: &[&str]) -> bool {
        names.iter().all(|name| self.columns.contains_key(*name))
    }

    /// Fails naming the first required column the header lacks.
    pub fn require_columns(&self, names: &[&str]) -> Result<()> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| !self.columns.contains_key(*name))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::Input {
                path: self.path.clone(),
                message: format!("the header lacks column(s): {}", missing.join(", ")),
            })
        }
    }

    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.records.iter().map(|(line, record)| Row {
            table: self,
            line: *line,
            record,
        })
    }
}

impl Row<'_> {
    /// The row has as many fields as the header.
    pub fn check_width(&self) -> std::result::Result<(), RowError> {
        let width = self.record.len();
        if width == self.table.header_len {
            Ok(())
        } else {
            Err(self.error(
                "(row)",
                format!(
                    "has {width} fields, the header has {}",
                    self.table.header_len
                ),
            ))
        }
    }

    /// The trimmed text of a column; empty when the column is absent.
    pub fn get(&self, column: &str) -> std::result::Result<&str, RowError> {
        let Some(&index) = self.table.columns.get(column) else {
            return Ok("");
        };
        let bytes = self.record.get(index).unwrap_or_default();
        std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|_| self.error(column, "is not valid UTF-8".into()))
    }

    pub fn error(&self, field: &str, message: String) -> RowError {
        RowError {
            path: self.table.path.clone(),
            line: self.line,
            field: field.to_string(),
            message,
        }
    }
}
