//! The file transport: one `.eml` per mail in a directory. The zero-setup
//! default and the preview sink.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::{BatchReport, Outcome, Outgoing, Transport};

pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    pub fn new(dir: &Path) -> Result<FileTransport> {
        std::fs::create_dir_all(dir).map_err(|source| Error::io(dir, source))?;
        Ok(FileTransport {
            dir: dir.to_path_buf(),
        })
    }

    /// `<cart>.<step>.eml`, with anything unsafe in a file name replaced.
    pub fn file_name(cart_id: &str, step: &str) -> String {
        let safe = |text: &str| -> String {
            text.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!("{}.{}.eml", safe(cart_id), safe(step))
    }

    fn write(&self, mail: &Outgoing) -> std::io::Result<()> {
        let path = self.dir.join(Self::file_name(&mail.cart_id, &mail.step));
        // Write then rename: a crash never leaves half a mail behind.
        let partial = path.with_extension("eml.partial");
        std::fs::write(&partial, &mail.bytes)?;
        std::fs::rename(&partial, &path)
    }
}

impl Transport for FileTransport {
    fn send(&mut self, mails: &[Outgoing]) -> BatchReport {
        let mut report = BatchReport::default();
        for mail in mails {
            if report.fatal.is_some() {
                report.outcomes.push(Outcome::NotHandedOver);
                continue;
            }
            match self.write(mail) {
                Ok(()) => report.outcomes.push(Outcome::Sent),
                Err(error) => {
                    report.outcomes.push(Outcome::NotHandedOver);
                    report.fatal = Some(format!("{}: {error}", self.dir.display()));
                }
            }
        }
        report
    }
}
