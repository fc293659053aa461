//! The file transport: one `.eml` per mail in a directory. The zero-setup
//! default and the preview sink. Also the file names and the file writes
//! it shares with the preview gallery.

use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::error::{Error, Result};

use super::handover::Guards;
use super::{BatchReport, Outcome, Outgoing, Transport};

/// At most this many characters of the cart id show in a file name.
const CART_CHARS: usize = 40;
/// At most this many characters of the step name show in a file name.
const STEP_CHARS: usize = 20;
/// Hex digits of the hash that tells apart ids that read the same.
const HASH_DIGITS: usize = 12;

/// The stem of the files of one (cart, step), `<cart>.<step>.<hash>`:
/// readable prefixes of both (lower-cased ASCII letters, digits, `-` and
/// `_`; anything else is `_`; at most 40 and 20 characters), then 12 hex
/// digits of SHA-256 of `<length of the id in bytes>:<id><step>`, which
/// tells apart ids that differ only in case or in the characters replaced.
/// At most 74 ASCII characters, whatever the id: a portable name on any
/// file system, case-insensitive ones included.
pub fn file_stem(cart_id: &str, step: &str) -> String {
    let readable = |text: &str, chars: usize| -> String {
        let prefix: String = text
            .chars()
            .take(chars)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        if prefix.is_empty() {
            "_".into()
        } else {
            prefix
        }
    };
    // The length prefix makes the hashed text unambiguous: no two
    // (id, step) pairs hash the same bytes.
    let digest = Sha256::new()
        .chain_update(format!("{}:", cart_id.len()))
        .chain_update(cart_id)
        .chain_update(step)
        .finalize();
    let mut hash = hex::encode(digest);
    hash.truncate(HASH_DIGITS);
    format!(
        "{}.{}.{hash}",
        readable(cart_id, CART_CHARS),
        readable(step, STEP_CHARS)
    )
}

/// A new file in `dir` for the contents of `name`: created with `O_EXCL`
/// under a random name (so nothing planted there is opened or followed),
/// mode 0600. `persist` or `persist_noclobber` moves it to its name; a
/// rename replaces a symbolic link at the destination, never follows it.
pub(super) fn temporary(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    Ok(file)
}

pub struct FileTransport {
    dir: PathBuf,
    /// The journal of each hand-over (the move into place), and the stop.
    guards: Guards,
}

impl FileTransport {
    pub fn new(dir: &Path, guards: Guards) -> Result<FileTransport> {
        std::fs::create_dir_all(dir).map_err(|source| Error::io(dir, source))?;
        Ok(FileTransport {
            dir: dir.to_path_buf(),
            guards,
        })
    }

    /// `<stem>.eml` ([`file_stem`]).
    pub fn file_name(cart_id: &str, step: &str) -> String {
        format!("{}.eml", file_stem(cart_id, step))
    }

    /// Writes the mail under a temporary name, then gives it its own name
    /// unless something is there already: a crash never leaves half a mail
    /// behind, and no file is overwritten. A failure of the mail's name
    /// (taken, or refused as a name) is this mail's alone: it fails and the
    /// others go on. Any other failure is the directory's (full, gone, not
    /// writable): `Err`, the transport breaks down and the mail stays due.
    fn write(&self, mail: &Outgoing) -> std::result::Result<Outcome, String> {
        let name = Self::file_name(&mail.cart_id, &mail.step);
        let path = self.dir.join(&name);
        let failed = |why: &dyn std::fmt::Display| {
            Outcome::Failed(format!(
                "cart {:?} step {:?}: {}: {why}",
                mail.cart_id,
                mail.step,
                path.display()
            ))
        };
        let breakdown = |at: &Path, error: &std::io::Error| {
            format!(
                "{}: {error} (writing cart {:?} step {:?})",
                at.display(),
                mail.cart_id,
                mail.step
            )
        };
        let temporary = match temporary(&self.dir, &name, &delivered(mail)) {
            Ok(temporary) => temporary,
            Err(error) if error.kind() == ErrorKind::InvalidFilename => {
                return Ok(failed(&error));
            }
            Err(error) => return Err(breakdown(&self.dir, &error)),
        };
        // Recorded before the mail takes its name (the hand-over); if it
        // cannot be, the temporary file goes and sending stops.
        if let Err(error) = self
            .guards
            .handing_over(&mail.cart_id, &mail.step, &mail.message_id)
        {
            return Err(format!("cannot record the hand-over: {error}"));
        }
        let outcome = match temporary.persist_noclobber(&path) {
            Ok(_) => Outcome::Sent,
            Err(error) => match error.error.kind() {
                ErrorKind::AlreadyExists => {
                    failed(&"already exists; recart never overwrites a mail file")
                }
                ErrorKind::InvalidFilename => failed(&error.error),
                _ => return Err(breakdown(&path, &error.error)),
            },
        };
        self.guards.outcome(&mail.cart_id, &mail.step, &outcome);
        Ok(outcome)
    }
}

/// The mail as a mailbox would hold it: a `Return-Path:` line with the
/// envelope sender first, as the delivering server writes it (RFC 5321
/// 4.4), so the file tells where its bounces go.
fn delivered(mail: &Outgoing) -> Vec<u8> {
    let Some(sender) = mail.envelope.from() else {
        return mail.bytes.clone();
    };
    let mut bytes = Vec::with_capacity(mail.bytes.len() + 64);
    bytes.extend_from_slice(format!("Return-Path: <{sender}>\r\n").as_bytes());
    bytes.extend_from_slice(&mail.bytes);
    bytes
}

impl Transport for FileTransport {
    fn send(&mut self, mails: &[Outgoing]) -> BatchReport {
        let mut report = BatchReport::default();
        for mail in mails {
            if report.fatal.is_some() || self.guards.stopping() {
                report.outcomes.push(Outcome::NotHandedOver);
                continue;
            }
            match self.write(mail) {
                Ok(outcome) => report.outcomes.push(outcome),
                Err(breakdown) => {
                    report.outcomes.push(Outcome::NotHandedOver);
                    report.fatal = Some(breakdown);
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_read_alike_get_names_of_their_own() {
        let ids = [
            "a/b", "a_b", "a\\b", "a b", "A_B", "ü-ñ", "ñ-ü", "x.y", "x_y", "A", "a",
        ];
        let names: std::collections::BTreeSet<String> =
            ids.iter().map(|id| file_stem(id, "1h")).collect();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        assert_ne!(file_stem("a", "1h"), file_stem("a", "24h"));
        // The id's length keeps the boundary between id and step.
        assert_ne!(file_stem("a1", "h"), file_stem("a", "1h"));
        for name in &names {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)),
                "{name}"
            );
        }
    }

    fn mail(cart_id: &str) -> Outgoing {
        let to: lettre::Address = "a@example.com".parse().unwrap();
        Outgoing {
            cart_id: cart_id.into(),
            step: "1h".into(),
            message_id: "<x@y>".into(),
            envelope: lettre::address::Envelope::new(None, vec![to]).unwrap(),
            bytes: format!("Subject: {cart_id}\r\n\r\nhi").into_bytes(),
        }
    }

    #[test]
    fn a_name_taken_fails_that_mail_and_a_directory_gone_breaks_down() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        let mut transport = FileTransport::new(&outbox, Guards::default()).unwrap();
        let taken = outbox.join(FileTransport::file_name("C2", "1h"));
        std::fs::write(&taken, "mine").unwrap();
        let report = transport.send(&[mail("C1"), mail("C2"), mail("C3")]);
        assert!(report.fatal.is_none());
        assert_eq!(report.outcomes[0], Outcome::Sent);
        assert!(
            matches!(&report.outcomes[1], Outcome::Failed(reason)
                if reason.contains("\"C2\"") && reason.contains(&*taken.to_string_lossy())),
            "{:?}",
            report.outcomes[1]
        );
        assert_eq!(report.outcomes[2], Outcome::Sent);
        assert_eq!(std::fs::read_to_string(&taken).unwrap(), "mine");

        std::fs::remove_dir_all(&outbox).unwrap();
        let report = transport.send(&[mail("C4"), mail("C5")]);
        assert_eq!(
            report.outcomes,
            [Outcome::NotHandedOver, Outcome::NotHandedOver]
        );
        let fatal = report.fatal.unwrap();
        assert!(fatal.contains("\"C4\""), "{fatal}");
    }

    #[test]
    fn a_mail_file_starts_with_its_return_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut transport = FileTransport::new(dir.path(), Guards::default()).unwrap();
        let mut with_sender = mail("C1");
        with_sender.envelope = lettre::address::Envelope::new(
            Some("bounces+abc@shop.example".parse().unwrap()),
            vec!["a@example.com".parse().unwrap()],
        )
        .unwrap();
        let report = transport.send(&[with_sender, mail("C2")]);
        assert_eq!(report.outcomes, [Outcome::Sent, Outcome::Sent]);
        let read =
            |cart| std::fs::read_to_string(dir.path().join(FileTransport::file_name(cart, "1h")));
        assert_eq!(
            read("C1").unwrap(),
            "Return-Path: <bounces+abc@shop.example>\r\nSubject: C1\r\n\r\nhi"
        );
        assert_eq!(read("C2").unwrap(), "Subject: C2\r\n\r\nhi");
    }

    #[test]
    fn a_name_is_readable_and_bounded() {
        let stem = file_stem("C-1001", "1h");
        assert!(stem.starts_with("c-1001.1h."), "{stem}");
        assert_eq!(stem.len(), "c-1001.1h.".len() + HASH_DIGITS);
        let long = file_stem(&"é".repeat(300), &"s".repeat(300));
        assert_eq!(long.len(), CART_CHARS + STEP_CHARS + HASH_DIGITS + 2);
        assert!(long.starts_with(&"_".repeat(CART_CHARS)), "{long}");
        assert_eq!(file_stem("", "1h").split('.').next(), Some("_"));
    }
}
