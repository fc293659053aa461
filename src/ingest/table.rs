//! A CSV file read row by row, tolerant of what exports do: a UTF-8 BOM,
//! CRLF, quoted newlines, ragged rows, invalid UTF-8 in one row. Only one
//! row is in memory at a time.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::RowError;

/// The header: column names (after the source's mapping) → field index.
pub struct Header {
    pub path: PathBuf,
    /// foldhash: looked up several times a row, so it must be cheap.
    columns: HashMap<String, usize, RandomState>,
    /// The file's own names, for messages: index → name as written.
    names: Vec<String>,
}

pub struct Table {
    header: Header,
    input: Input,
    record: csv::ByteRecord,
    /// Bytes read so far (for progress).
    pub position: u64,
}

/// Records from another source than a CSV file: (line, record) pairs.
pub type Records = Box<dyn Iterator<Item = Result<(u64, csv::ByteRecord)>>>;

enum Input {
    Csv(csv::Reader<Box<dyn Read>>),
    Records(Records),
}

/// One row, read by column name.
pub struct Row<'a> {
    header: &'a Header,
    pub line: u64,
    record: &'a csv::ByteRecord,
}

impl Table {
    /// Opens `path` and reads its header. `columns` maps a field name the
    /// readers use (`cart_id`) to the column of the file that holds it
    /// (`Quote ID`).
    pub fn open(path: &Path, columns: &[(String, String)]) -> Result<Table> {
        let file = std::fs::File::open(path).map_err(|source| Error::io(path, source))?;
        Table::from_reader(path, Box::new(file), columns)
    }

    pub fn from_reader(
        path: &Path,
        input: Box<dyn Read>,
        columns: &[(String, String)],
    ) -> Result<Table> {
        let input_error = |message: String| Error::Input {
            path: path.to_path_buf(),
            message,
        };
        let mut input = BufReader::with_capacity(1 << 16, input);
        let start = input.fill_buf().map_err(|source| Error::io(path, source))?;
        let bom = start.starts_with(b"\xEF\xBB\xBF");
        let binary = start.iter().take(4096).any(|&byte| byte == 0);
        if bom {
            input.consume(3);
        }
        if binary {
            return Err(input_error(
                "is not a CSV file: it holds binary data (NUL bytes)".into(),
            ));
        }
        // `\n` ends a record, so a CRLF file's `\r` is the end of its last
        // field (trimmed away): the csv crate's own CRLF handling counts the
        // `\n` into the next record's line number.
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(Box::new(input) as Box<dyn Read>);
        let header = reader
            .byte_headers()
            .map_err(|error| input_error(format!("cannot read the header: {error}")))?
            .clone();
        if header
            .iter()
            .all(|field| field.iter().all(u8::is_ascii_whitespace))
        {
            return Err(input_error("the file is empty: no header row".into()));
        }
        let names: Vec<String> = header
            .iter()
            .map(|name| String::from_utf8_lossy(name).trim().to_string())
            .collect();
        let mut map: HashMap<String, usize, RandomState> = HashMap::default();
        for (index, name) in names.iter().enumerate() {
            // The first of two equally named columns wins.
            map.entry(name.clone()).or_insert(index);
        }
        for (field, column) in columns {
            match names.iter().position(|name| name == column) {
                Some(index) => {
                    map.insert(field.clone(), index);
                }
                None => {
                    return Err(input_error(format!(
                        "the header has no column {column:?} (mapped to {field})"
                    )));
                }
            }
        }
        Ok(Table {
            header: Header {
                path: path.to_path_buf(),
                columns: map,
                names,
            },
            input: Input::Csv(reader),
            record: csv::ByteRecord::new(),
            position: 0,
        })
    }

    /// A table of records made elsewhere (a SQLite source): `names` are the
    /// columns, `path` names the source in messages, `records` give each
    /// row's number and fields.
    pub fn from_records(path: &Path, names: Vec<String>, records: Records) -> Table {
        let mut columns: HashMap<String, usize, RandomState> = HashMap::default();
        for (index, name) in names.iter().enumerate() {
            columns.entry(name.clone()).or_insert(index);
        }
        Table {
            header: Header {
                path: path.to_path_buf(),
                columns,
                names,
            },
            input: Input::Records(records),
            record: csv::ByteRecord::new(),
            position: 0,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next row, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>> {
        let reader = match &mut self.input {
            Input::Csv(reader) => reader,
            Input::Records(records) => {
                return match records.next() {
                    None => Ok(None),
                    Some(Err(error)) => Err(error),
                    Some(Ok((line, record))) => {
                        self.position = line;
                        self.record = record;
                        Ok(Some(Row {
                            header: &self.header,
                            line,
                            record: &self.record,
                        }))
                    }
                };
            }
        };
        let line = loop {
            let line = reader.position().line();
            match reader.read_byte_record(&mut self.record) {
                // A blank line of a CRLF file.
                Ok(true) if self.record.len() == 1 && blank(&self.record[0]) => continue,
                other => break other.map(|more| (more, line)),
            }
        };
        match line {
            Ok((true, line)) => {
                self.position = reader.position().byte();
                let line = self.record.position().map_or(line, |p| p.line());
                Ok(Some(Row {
                    header: &self.header,
                    line,
                    record: &self.record,
                }))
            }
            Ok((false, _)) => Ok(None),
            Err(error) => Err(match error.into_kind() {
                csv::ErrorKind::Io(source) => Error::io(&self.header.path, source),
                other => Error::Input {
                    path: self.header.path.clone(),
                    message: format!("not CSV: {other:?}"),
                },
            }),
        }
    }
}

fn blank(field: &[u8]) -> bool {
    field.iter().all(u8::is_ascii_whitespace)
}

impl Header {
    pub fn has_columns(&self, names: &[&str]) -> bool {
        names.iter().all(|name| self.columns.contains_key(*name))
    }

    pub fn has_any(&self, names: &[&str]) -> bool {
        names.iter().any(|name| self.columns.contains_key(*name))
    }

    /// Fails naming the required columns the header lacks.
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
}

impl Row<'_> {
    /// The row has as many fields as the header (extra fields that are all
    /// empty, as spreadsheets add, are tolerated).
    pub fn check_width(&self) -> std::result::Result<(), RowError> {
        let width = self.record.len();
        let expected = self.header.names.len();
        let extra_blank = width > expected
            && self
                .record
                .iter()
                .skip(expected)
                .all(|field| field.iter().all(u8::is_ascii_whitespace));
        if width == expected || extra_blank {
            Ok(())
        } else {
            Err(self.error(
                "(row)",
                format!("has {width} fields, the header has {expected}"),
            ))
        }
    }

    /// The trimmed text of a column; empty when the column is absent.
    pub fn get(&self, column: &str) -> std::result::Result<&str, RowError> {
        let Some(&index) = self.header.columns.get(column) else {
            return Ok("");
        };
        let bytes = self.record.get(index).unwrap_or_default();
        std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|_| self.error(column, "is not valid UTF-8".into()))
    }

    /// The raw text of a column, invalid UTF-8 replaced, for reports.
    fn raw(&self, column: &str) -> String {
        self.header
            .columns
            .get(column)
            .and_then(|&index| self.record.get(index))
            .map(|bytes| String::from_utf8_lossy(bytes).trim().to_string())
            .unwrap_or_default()
    }

    /// An error about `field` (a name the readers use), naming the file's
    /// own column and carrying the value found.
    pub fn error(&self, field: &str, message: String) -> RowError {
        let name = match self.header.columns.get(field) {
            Some(&index) if self.header.names[index] != field => {
                format!("{} ({field})", self.header.names[index])
            }
            _ => field.to_string(),
        };
        RowError {
            path: self.header.path.clone(),
            line: self.line,
            field: name,
            value: self.raw(field),
            message,
        }
    }
}

#[cfg(test)]
pub(crate) fn from_text(text: &str, columns: &[(String, String)]) -> Result<Table> {
    Table::from_reader(
        Path::new("test.csv"),
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        columns,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(bytes: &[u8]) -> Vec<(u64, Vec<String>)> {
        let mut table = Table::from_reader(
            Path::new("t.csv"),
            Box::new(std::io::Cursor::new(bytes.to_vec())),
            &[],
        )
        .unwrap();
        let mut out = Vec::new();
        while let Some(row) = table.next_row().unwrap() {
            out.push((
                row.line,
                ["a", "b"]
                    .iter()
                    .map(|c| row.get(c).unwrap_or("<bad>").to_string())
                    .collect(),
            ));
        }
        out
    }

    #[test]
    fn bom_crlf_and_quoted_newlines() {
        let got = rows(b"\xEF\xBB\xBFa,b\r\n1,\"x\r\ny, z\"\r\n2,w\r\n\r\n3,\"q\"\r\n");
        assert_eq!(got[0], (2, vec!["1".into(), "x\r\ny, z".into()]));
        assert_eq!(got[1], (4, vec!["2".into(), "w".into()]));
        assert_eq!(got[2], (6, vec!["3".into(), "q".into()]));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn invalid_utf8_is_one_field_of_one_row() {
        let got = rows(b"a,b\n1,caf\xE9\n2,ok\n");
        assert_eq!(got[0].1, vec!["1".to_string(), "<bad>".to_string()]);
        assert_eq!(got[1].1, vec!["2".to_string(), "ok".to_string()]);
    }

    #[test]
    fn empty_and_binary_files_are_refused() {
        for bytes in [
            &b""[..],
            b"\xEF\xBB\xBF",
            b"\n\n",
            b"\x89PNG\r\n\x1a\n\0\0\0",
        ] {
            let result = Table::from_reader(
                Path::new("t.csv"),
                Box::new(std::io::Cursor::new(bytes.to_vec())),
                &[],
            );
            assert!(result.is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn mapped_columns_are_read_by_field_name_and_reported_by_column() {
        let mut table = from_text(
            "Quote ID,Customer Email\nQ1,nope\n",
            &[("cart_id".into(), "Quote ID".into())],
        )
        .unwrap();
        let row = table.next_row().unwrap().unwrap();
        assert_eq!(row.get("cart_id").unwrap(), "Q1");
        let error = row.error("cart_id", "bad".into());
        assert_eq!(error.field, "Quote ID (cart_id)");
        assert_eq!(error.value, "Q1");
    }
}
