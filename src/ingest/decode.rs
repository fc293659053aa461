//! A file's bytes → the UTF-8 text the CSV parser reads: a UTF-8 byte
//! order mark dropped, a UTF-16 file named (it is not read as garbage), a
//! declared `encoding` decoded (`encoding_rs`), and a bare CR (old Mac
//! line endings) read as a line ending.
//!
//! Without an `encoding` the bytes go through as they are: invalid UTF-8 is
//! found row by row (`Row::get`), so one bad row does not cost the file.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use encoding_rs::Encoding;

use crate::error::{Error, Result};

/// Read ahead from the file: the parser takes its records from this buffer.
const BUFFER: usize = 1 << 16;

/// `input` (the file at `path`) as UTF-8 text whose lines end with `\n`
/// (or `\r\n`), or why it cannot be read as a CSV file. `encoding` is the
/// file's declared one (`None`: UTF-8).
pub fn text(
    path: &Path,
    input: Box<dyn Read + Send>,
    encoding: Option<&'static Encoding>,
) -> Result<BareCrAsLf<Box<dyn BufRead + Send>>> {
    let mut input = BufReader::with_capacity(BUFFER, input);
    let bytes: Box<dyn BufRead + Send> = match encoding {
        Some(encoding) if encoding != encoding_rs::UTF_8 => {
            // A byte order mark says more than a setting: it wins.
            let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(encoding))
                .bom_override(true)
                .strip_bom(true)
                .build(input);
            Box::new(BufReader::with_capacity(BUFFER, decoded))
        }
        _ => {
            let start = input.fill_buf().map_err(|source| Error::io(path, source))?;
            if let Some(order) = utf16_byte_order(start) {
                return Err(Error::Input {
                    path: path.to_path_buf(),
                    message: format!(
                        "is UTF-16 (it starts with the byte order mark {order}), not UTF-8: \
                         re-export it as UTF-8 (Excel: \"CSV UTF-8\"), or read it with \
                         encoding = \"utf-16\" ([[sources]]; import --encoding utf-16)"
                    ),
                });
            }
            if start.starts_with(b"\xEF\xBB\xBF") {
                input.consume(3);
            }
            Box::new(input)
        }
    };
    Ok(BareCrAsLf { bytes })
}

fn utf16_byte_order(start: &[u8]) -> Option<&'static str> {
    if start.starts_with(b"\xFF\xFE") {
        Some("FF FE, little-endian")
    } else if start.starts_with(b"\xFE\xFF") {
        Some("FE FF, big-endian")
    } else {
        None
    }
}

/// The names `--encoding` and `encoding =` take: any label of the WHATWG
/// Encoding Standard (`windows-1252`, `latin1`, `utf-16`, `shift_jis`...).
pub fn parse_encoding(label: &str) -> Result<&'static Encoding, String> {
    match Encoding::for_label(label.trim().as_bytes()) {
        // The standard's "replacement" decodes every byte as U+FFFD.
        Some(encoding) if encoding != encoding_rs::REPLACEMENT => Ok(encoding),
        _ => Err(format!(
            "{label:?} is not an encoding (expected a name like windows-1252, \
             iso-8859-15, utf-16 or utf-8)"
        )),
    }
}

/// Text whose bare CRs (a CR not followed by LF) are LFs: the CSV parser
/// ends records at LF only (so that CRLF files count their lines right),
/// and an old Mac export, which ends its lines with CR alone, would
/// otherwise be one record. A CR before LF is left for the field trim.
pub struct BareCrAsLf<R> {
    bytes: R,
}

impl<R: BufRead> Read for BareCrAsLf<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.bytes.fill_buf()?;
        let copied = available.len().min(out.len());
        if copied == 0 {
            return Ok(0);
        }
        out[..copied].copy_from_slice(&available[..copied]);
        // A CR that ends what was copied waits for the next read, where the
        // byte after it is known; alone, it looks ahead.
        let kept = if copied > 1 && out[copied - 1] == b'\r' {
            copied - 1
        } else {
            copied
        };
        self.bytes.consume(kept);
        let mut at = 0;
        while let Some(found) = memchr::memchr(b'\r', &out[at..kept]) {
            let cr = at + found;
            let next = if cr + 1 < copied {
                Some(out[cr + 1])
            } else {
                self.bytes.fill_buf()?.first().copied()
            };
            if next != Some(b'\n') {
                out[cr] = b'\n';
            }
            at = cr + 1;
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], encoding: Option<&'static Encoding>) -> Result<Vec<u8>, String> {
        let mut text = Vec::new();
        super::text(
            Path::new("t.csv"),
            Box::new(io::Cursor::new(bytes.to_vec())),
            encoding,
        )
        .map_err(|error| error.to_string())?
        .read_to_end(&mut text)
        .unwrap();
        Ok(text)
    }

    /// Reads through a buffer of `size` bytes, so CRs fall on every edge.
    fn read_in_pieces(bytes: &[u8], size: usize) -> Vec<u8> {
        let mut reader = BareCrAsLf {
            bytes: BufReader::with_capacity(size, io::Cursor::new(bytes.to_vec())),
        };
        let mut text = Vec::new();
        let mut piece = vec![0; size];
        loop {
            match reader.read(&mut piece).unwrap() {
                0 => return text,
                n => text.extend_from_slice(&piece[..n]),
            }
        }
    }

    #[test]
    fn bare_crs_end_lines_and_crlf_is_left_alone() {
        let input = b"a,b\r1,2\r\n3,\"x\ry\"\r\r\n4,5\r";
        let expected = b"a,b\n1,2\r\n3,\"x\ny\"\n\r\n4,5\n";
        assert_eq!(read(input, None).unwrap(), expected);
        for size in 1..=input.len() {
            assert_eq!(read_in_pieces(input, size), expected, "pieces of {size}");
        }
    }

    #[test]
    fn utf16_is_named_and_can_be_declared() {
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("a,b\r\né,2\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let error = read(&utf16le, None).unwrap_err();
        assert!(
            error.contains("UTF-16") && error.contains("FF FE"),
            "{error}"
        );
        let utf16 = parse_encoding("utf-16").unwrap();
        assert_eq!(
            read(&utf16le, Some(utf16)).unwrap(),
            "a,b\r\né,2\n".as_bytes()
        );
        // A BOM wins over the declared encoding.
        let windows = parse_encoding("windows-1252").unwrap();
        assert_eq!(
            read(&utf16le, Some(windows)).unwrap(),
            "a,b\r\né,2\n".as_bytes()
        );
    }

    #[test]
    fn a_declared_encoding_is_decoded() {
        let windows = parse_encoding("windows-1252").unwrap();
        assert_eq!(
            read(b"name\nCaf\xE9 \x80\n", Some(windows)).unwrap(),
            "name\nCafé €\n".as_bytes()
        );
        // Without it the bytes are left for the rows to report.
        assert_eq!(
            read(b"\xEF\xBB\xBFname\nCaf\xE9\n", None).unwrap(),
            b"name\nCaf\xE9\n"
        );
        assert_eq!(parse_encoding("latin1").unwrap(), windows);
        assert!(parse_encoding("klingon").is_err());
        assert!(parse_encoding("iso-2022-kr").is_err());
    }
}
