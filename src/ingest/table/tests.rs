use super::*;

fn rows(bytes: &[u8]) -> Vec<(u64, Vec<String>)> {
    let mut table = Table::from_reader(
        Path::new("t.csv"),
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        &[],
        None,
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

/// Every row as (line, bytes read after it, fields), and how it ended.
type Read = (
    Vec<(u64, u64, Vec<Vec<u8>>)>,
    std::result::Result<(), String>,
);

fn read_all(mut table: Table) -> Read {
    let mut out = Vec::new();
    loop {
        match table.next_row() {
            Ok(Some(row)) => {
                let (line, fields) = (row.line, row.record.iter().map(<[u8]>::to_vec).collect());
                out.push((line, table.position, fields));
            }
            Ok(None) => return (out, Ok(())),
            Err(error) => return (out, Err(error.to_string())),
        }
    }
}

/// Fails with an I/O error once `good` bytes were read.
struct Failing {
    bytes: std::io::Cursor<Vec<u8>>,
    good: u64,
}

impl std::io::Read for Failing {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.bytes.position() >= self.good {
            return Err(std::io::Error::other("disk on fire"));
        }
        // Saturating: more than a usize can count is more than the buffer.
        let left = usize::try_from(self.good - self.bytes.position()).unwrap_or(usize::MAX);
        let room = left.min(buffer.len());
        self.bytes.read(&mut buffer[..room])
    }
}

/// Parsed on a thread of its own, a file reads exactly as it does on
/// the reader's thread: the same rows, line numbers, progress and
/// errors, across chunk boundaries and with the table dropped early.
#[test]
fn parsing_alongside_reads_like_parsing_inline() {
    let mut big = b"\xEF\xBB\xBFa,b\r\n".to_vec();
    for n in 0..(CHUNK * CHUNKS_AHEAD * 3 + 7) {
        match n % 5 {
            0 => big.extend_from_slice(format!("{n},\"multi\r\nline, {n}\"\r\n").as_bytes()),
            1 => big.extend_from_slice(b"\r\n"),
            2 => big.extend_from_slice(b"bad,\xFF\xFE,extra\r\n"),
            3 => big.extend_from_slice(b"short\r\n"),
            _ => big.extend_from_slice(format!("{n},plain\r\n").as_bytes()),
        }
    }
    let inputs: Vec<&[u8]> = vec![b"a,b\n", b"a,b\n1,2", b"a,b\n1,2\n\n\n3,4\n", &big];
    for bytes in inputs {
        let table = || {
            Table::from_reader(
                Path::new("t.csv"),
                Box::new(std::io::Cursor::new(bytes.to_vec())),
                &[],
                None,
            )
            .unwrap()
        };
        let inline = read_all(table());
        assert_eq!(read_all(table().parsed_alongside()), inline);
        assert!(inline.1.is_ok());
        // Dropped half-way: the parser thread stops.
        let mut early = table().parsed_alongside();
        early.next_row().unwrap();
        drop(early);
    }
    let failing = || {
        let input = Failing {
            bytes: std::io::Cursor::new(big.clone()),
            good: big.len() as u64 / 2,
        };
        Table::from_reader(Path::new("t.csv"), Box::new(input), &[], None).unwrap()
    };
    let inline = read_all(failing());
    assert!(
        inline.1.as_ref().unwrap_err().contains("disk on fire"),
        "{:?}",
        inline.1
    );
    assert!(inline.0.len() > CHUNK * CHUNKS_AHEAD);
    assert_eq!(read_all(failing().parsed_alongside()), inline);
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

fn table(bytes: &[u8]) -> Result<Table> {
    Table::from_reader(
        Path::new("t.csv"),
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        &[],
        None,
    )
}

/// A NUL in the header is a file that is not CSV text (a spreadsheet,
/// UTF-16 without a byte order mark); in a row, it rejects the row,
/// wherever the row is (`nul_bytes_reject_their_row_wherever_it_is`).
#[test]
fn empty_and_binary_files_are_refused() {
    for bytes in [
        &b""[..],
        b"\xEF\xBB\xBF",
        b"\n\n",
        b"PK\x03\x04\x14\0\x06\0\x08\0\0\0!\0\n",
        b"a\0,\0b\0\n\0",
        b"\xFF\xFEa\0,\0b\0\n\0",
    ] {
        assert!(table(bytes).is_err(), "{bytes:?}");
    }
}

#[test]
fn nul_bytes_reject_their_row_wherever_it_is() {
    let mut bytes = b"a,b\n1,x\0y\n2,ok\n".to_vec();
    for n in 3..20_000 {
        bytes.extend_from_slice(format!("{n},ok\n").as_bytes());
    }
    bytes.extend_from_slice(b"late,\0\n");
    let mut table = table(&bytes).unwrap();
    let mut rejected = Vec::new();
    while let Some(row) = table.next_row().unwrap() {
        if let Err(error) = row.check_shape() {
            rejected.push((error.line, error.field, error.value, error.message));
        }
    }
    let message = "holds a NUL byte (binary data, not text)".to_string();
    assert_eq!(
        rejected,
        [
            (2, "b".into(), "x\\0y".into(), message.clone()),
            (20_001, "b".into(), "\\0".into(), message),
        ]
    );
}

#[test]
fn a_column_named_twice_is_refused_naming_both() {
    let error = table(b"cart_id,email,Email,email,,\n").err().unwrap();
    let error = error.to_string();
    assert!(
        error.contains("\"email\" twice, as columns 2 and 4"),
        "{error}"
    );
    // Unnamed columns, as spreadsheets add, are no clash.
    assert!(table(b"a,b,,\n1,2,,\n").is_ok());
}

#[test]
fn bare_cr_line_endings_are_line_endings() {
    let got = rows(b"a,b\r1,x\r2,\"y\rz\"\r3,w\r");
    assert_eq!(
        got,
        [
            (2, vec!["1".into(), "x".into()]),
            (3, vec!["2".into(), "y\nz".into()]),
            (5, vec!["3".into(), "w".into()]),
        ]
    );
}

#[test]
fn a_field_over_the_limit_is_an_error_naming_it() {
    let long = "x".repeat(MAX_FIELD_BYTES + 1);
    let fitting = "y".repeat(MAX_FIELD_BYTES);
    let mut table = table(format!("a,b\n1,{long}\n2,{fitting}\n").as_bytes()).unwrap();
    let row = table.next_row().unwrap().unwrap();
    let error = row.get("b").unwrap_err();
    assert_eq!((error.line, error.field.as_str()), (2, "b"));
    assert!(
        error.message.contains("65537 bytes long"),
        "{}",
        error.message
    );
    assert!(error.value.len() < 100, "{}", error.value);
    let row = table.next_row().unwrap().unwrap();
    assert_eq!(row.get("b").unwrap().len(), MAX_FIELD_BYTES);
}

#[test]
fn invalid_utf8_names_the_encoding_to_try() {
    let mut latin1 = table(b"a,b\n1,caf\xE9\n").unwrap();
    let row = latin1.next_row().unwrap().unwrap();
    let message = row.get("b").unwrap_err().message;
    assert!(message.contains("encoding = \"windows-1252\""), "{message}");
    let mut decoded = Table::from_reader(
        Path::new("t.csv"),
        Box::new(std::io::Cursor::new(b"a,b\n1,caf\xE9\n".to_vec())),
        &[],
        Some(encoding_rs::WINDOWS_1252),
    )
    .unwrap();
    let row = decoded.next_row().unwrap().unwrap();
    assert_eq!(row.get("b").unwrap(), "café");
}

#[test]
fn ids_refuse_control_characters_and_names_lose_them() {
    let mut table = table(b"id,name\n\"C-1\n2\",\"Merino\tSocks\r\n2-pack\"\n").unwrap();
    let row = table.next_row().unwrap().unwrap();
    let error = row.id("id").unwrap_err();
    assert_eq!((error.line, error.field.as_str()), (2, "id"));
    assert!(error.message.contains("U+000A"), "{}", error.message);
    assert_eq!(row.name("name").unwrap(), "Merino Socks 2-pack");
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
