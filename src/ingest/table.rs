//! A CSV file read row by row, tolerant of what exports do: a UTF-8 BOM,
//! CRLF or bare CR line endings, quoted newlines, ragged rows, invalid
//! UTF-8 or a NUL byte in one row (each rejects its row, not the file). A file is
//! parsed on a thread of its own, a few chunks of rows ahead of the reader
//! (parsing is a third of reading a large export); memory stays bounded.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use encoding_rs::Encoding;

use crate::error::{Error, Result};

use super::RowError;
use super::text::{MAX_FIELD_BYTES, control_character, describe, printable};

/// The header: column names (after the source's mapping) → field index.
pub struct Header {
    pub path: PathBuf,
    /// foldhash: looked up several times a row, so it must be cheap.
    columns: HashMap<String, usize, RandomState>,
    /// The file's own names, for messages: index → name as written.
    names: Vec<String>,
    /// Invalid UTF-8 is reported with the `encoding` setting to try: the
    /// input is a file read without one.
    suggest_encoding: bool,
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

type CsvReader = csv::Reader<Box<dyn Read + Send>>;

enum Input {
    Csv(CsvReader),
    Records(Records),
    Parsed(Parser),
}

/// Rows parsed per hand-over by a [`Parser`].
const CHUNK: usize = 256;
/// Chunks parsed ahead of the reader.
const CHUNKS_AHEAD: usize = 4;

/// CSV records parsed on a thread of their own, `CHUNK` at a time; the
/// chunks the reader is done with go back to be filled again, so records
/// keep their buffers.
struct Parser {
    chunks: Option<mpsc::Receiver<Result<Chunk>>>,
    used: mpsc::Sender<Chunk>,
    chunk: Chunk,
    next: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Chunk {
    records: Vec<csv::ByteRecord>,
    /// Per record read: its line, and the bytes read up to its end.
    places: Vec<(u64, u64)>,
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
    /// (`Quote ID`); `encoding` is the file's declared one (`None`: UTF-8).
    /// The rows are parsed on a thread of their own.
    pub fn open(
        path: &Path,
        columns: &[(String, String)],
        encoding: Option<&'static Encoding>,
    ) -> Result<Table> {
        let file = std::fs::File::open(path).map_err(|source| Error::io(path, source))?;
        Ok(Table::from_reader(path, Box::new(file), columns, encoding)?.parsed_alongside())
    }

    /// Reads `input` on the caller's thread.
    pub fn from_reader(
        path: &Path,
        input: Box<dyn Read + Send>,
        columns: &[(String, String)],
        encoding: Option<&'static Encoding>,
    ) -> Result<Table> {
        let input_error = |message: String| Error::Input {
            path: path.to_path_buf(),
            message,
        };
        let text = super::decode::text(path, input, encoding)?;
        // `\n` ends a record, so a CRLF file's `\r` is the end of its last
        // field (trimmed away): the csv crate's own CRLF handling counts the
        // `\n` into the next record's line number. A bare CR is a `\n` by now.
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(Box::new(text) as Box<dyn Read + Send>);
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
        if memchr::memchr(0, header.as_slice()).is_some() {
            return Err(input_error(
                "is not a CSV file in UTF-8: its header (line 1) holds NUL bytes, as a \
                 spreadsheet or a UTF-16 file without a byte order mark does; save it as \
                 CSV UTF-8"
                    .into(),
            ));
        }
        let names: Vec<String> = header
            .iter()
            .map(|name| String::from_utf8_lossy(name).trim().to_string())
            .collect();
        let mut map: HashMap<String, usize, RandomState> = HashMap::default();
        for (index, name) in names.iter().enumerate() {
            // Spreadsheets add unnamed columns; only named ones can clash.
            if name.is_empty() {
                continue;
            }
            if let Some(first) = map.insert(name.clone(), index) {
                return Err(input_error(format!(
                    "the header names the column {name:?} twice, as columns {} and {}: \
                     which one holds the value is unclear; rename or drop one",
                    first + 1,
                    index + 1
                )));
            }
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
                suggest_encoding: encoding.is_none_or(|encoding| encoding == encoding_rs::UTF_8),
            },
            input: Input::Csv(reader),
            record: csv::ByteRecord::new(),
            position: 0,
        })
    }

    /// A table of records made elsewhere (a `SQLite` source): `names` are the
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
                suggest_encoding: false,
            },
            input: Input::Records(records),
            record: csv::ByteRecord::new(),
            position: 0,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The same table, its records parsed on a thread of their own.
    fn parsed_alongside(self) -> Table {
        let Input::Csv(mut reader) = self.input else {
            return self;
        };
        let path = self.header.path.clone();
        let (sender, chunks) = mpsc::sync_channel::<Result<Chunk>>(CHUNKS_AHEAD);
        let (used, reusable) = mpsc::channel::<Chunk>();
        let thread = std::thread::spawn(move || {
            loop {
                let mut chunk = reusable.try_recv().unwrap_or_default();
                chunk.places.clear();
                let mut failed = None;
                while chunk.places.len() < CHUNK {
                    let at = chunk.places.len();
                    if chunk.records.len() == at {
                        chunk.records.push(csv::ByteRecord::new());
                    }
                    match read_record(&mut reader, &mut chunk.records[at], &path) {
                        Ok(Some(line)) => chunk.places.push((line, reader.position().byte())),
                        Ok(None) => break,
                        Err(error) => {
                            failed = Some(error);
                            break;
                        }
                    }
                }
                let last = chunk.places.len() < CHUNK;
                // A failed send: the table was dropped, nobody reads on.
                if !chunk.places.is_empty() && sender.send(Ok(chunk)).is_err() {
                    return;
                }
                if let Some(error) = failed {
                    let _ = sender.send(Err(error));
                    return;
                }
                if last {
                    return;
                }
            }
        });
        Table {
            input: Input::Parsed(Parser {
                chunks: Some(chunks),
                used,
                chunk: Chunk::default(),
                next: 0,
                thread: Some(thread),
            }),
            ..self
        }
    }

    /// The next row, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>> {
        match &mut self.input {
            Input::Csv(reader) => {
                let Some(line) = read_record(reader, &mut self.record, &self.header.path)? else {
                    return Ok(None);
                };
                self.position = reader.position().byte();
                Ok(Some(Row {
                    header: &self.header,
                    line,
                    record: &self.record,
                }))
            }
            Input::Records(records) => match records.next() {
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
            },
            Input::Parsed(parser) => {
                if parser.next == parser.chunk.places.len() {
                    let Some(chunks) = &parser.chunks else {
                        return Ok(None);
                    };
                    match chunks.recv() {
                        Ok(Ok(chunk)) => {
                            let done = std::mem::replace(&mut parser.chunk, chunk);
                            let _ = parser.used.send(done);
                            parser.next = 0;
                        }
                        Ok(Err(error)) => {
                            parser.stop();
                            return Err(error);
                        }
                        // The end of the file (or the parser panicked:
                        // `stop` passes the panic on).
                        Err(mpsc::RecvError) => {
                            parser.stop();
                            return Ok(None);
                        }
                    }
                }
                let at = parser.next;
                parser.next += 1;
                let (line, end) = parser.chunk.places[at];
                self.position = end;
                Ok(Some(Row {
                    header: &self.header,
                    line,
                    record: &parser.chunk.records[at],
                }))
            }
        }
    }
}

impl Parser {
    /// Stops the parser thread (its next hand-over fails) and waits for it.
    fn stop(&mut self) {
        self.chunks = None;
        self.chunk.places.clear();
        self.next = 0;
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        self.chunks = None;
        if let Some(thread) = self.thread.take() {
            // A panic is passed on by `stop`, not while dropping.
            let _ = thread.join();
        }
    }
}

/// Reads the next record into `record`, past blank lines: its line number,
/// or `None` at the end of the file.
fn read_record(
    reader: &mut CsvReader,
    record: &mut csv::ByteRecord,
    path: &Path,
) -> Result<Option<u64>> {
    let read = loop {
        let line = reader.position().line();
        match reader.read_byte_record(record) {
            // A blank line of a CRLF file.
            Ok(true) if record.len() == 1 && blank(&record[0]) => {}
            other => break other.map(|more| (more, line)),
        }
    };
    match read {
        Ok((true, line)) => Ok(Some(record.position().map_or(line, csv::Position::line))),
        Ok((false, _)) => Ok(None),
        Err(error) => Err(match error.into_kind() {
            csv::ErrorKind::Io(source) => Error::io(path, source),
            other => Error::Input {
                path: path.to_path_buf(),
                message: format!("not CSV: {other:?}"),
            },
        }),
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
    /// empty, as spreadsheets add, are tolerated) and no NUL byte, which
    /// no text holds: wherever it is, it rejects its row.
    pub fn check_shape(&self) -> std::result::Result<(), RowError> {
        let width = self.record.len();
        let expected = self.header.names.len();
        let extra_blank = width > expected
            && self
                .record
                .iter()
                .skip(expected)
                .all(|field| field.iter().all(u8::is_ascii_whitespace));
        if width != expected && !extra_blank {
            return Err(self.error(
                "(row)",
                format!("has {width} fields, the header has {expected}"),
            ));
        }
        if memchr::memchr(0, self.record.as_slice()).is_some() {
            let index = self
                .record
                .iter()
                .position(|field| field.contains(&0))
                .expect("a field holds the NUL");
            let column = self.header.names.get(index).map_or("(row)", String::as_str);
            return Err(RowError {
                path: self.header.path.clone(),
                line: self.line,
                field: column.to_string(),
                value: String::from_utf8_lossy(&self.record[index])
                    .trim()
                    .replace('\0', "\\0"),
                message: "holds a NUL byte (binary data, not text)".into(),
            });
        }
        Ok(())
    }

    /// The trimmed text of a column; empty when the column is absent.
    pub fn get(&self, column: &str) -> std::result::Result<&str, RowError> {
        let Some(&index) = self.header.columns.get(column) else {
            return Ok("");
        };
        let bytes = self.record.get(index).unwrap_or_default();
        if bytes.len() > MAX_FIELD_BYTES {
            return Err(self.too_long(column, bytes));
        }
        std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|_| self.not_utf8(column))
    }

    /// An id (cart, order, SKU): text without control characters.
    pub fn id(&self, column: &str) -> std::result::Result<&str, RowError> {
        let text = self.get(column)?;
        match control_character(text) {
            None => Ok(text),
            Some(c) => Err(self.error(
                column,
                format!(
                    "holds the control character {}; an id must be printable text",
                    describe(c)
                ),
            )),
        }
    }

    /// A name shown to people (first name, product name, category): each
    /// run of control characters becomes a space (`text::printable`).
    pub fn name(&self, column: &str) -> std::result::Result<String, RowError> {
        self.get(column).map(printable)
    }

    #[cold]
    fn too_long(&self, column: &str, bytes: &[u8]) -> RowError {
        let start = String::from_utf8_lossy(&bytes[..80]);
        RowError {
            value: format!("{}…", start.trim_start()),
            ..self.error(
                column,
                format!(
                    "is {} bytes long, over the limit of {MAX_FIELD_BYTES} bytes for a field \
                     (an unbalanced quote?)",
                    bytes.len()
                ),
            )
        }
    }

    #[cold]
    fn not_utf8(&self, column: &str) -> RowError {
        let mut message = String::from("is not valid UTF-8");
        if self.header.suggest_encoding {
            message.push_str(
                "; if the file is a Windows-1252 (Latin-1) export, as Excel's \"CSV\" is, \
                 read it with encoding = \"windows-1252\" in its [[sources]] \
                 (import --encoding windows-1252)",
            );
        }
        self.error(column, message)
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
        None,
    )
}

#[cfg(test)]
mod tests;
