//! The file transport: one `.eml` per mail in a directory. The zero-setup
//! default and the preview sink.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::handover::Guards;
use super::{BatchReport, Outcome, Outgoing, Transport};

pub struct FileTransport {
    dir: PathBuf,
    /// The journal of each hand-over (the rename into place), and the stop.
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
        if let Err(error) = std::fs::write(&partial, &mail.bytes) {
            // A full disk must not leave half a mail behind.
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
        if let Err(error) = self
            .guards
            .handing_over(&mail.cart_id, &mail.step, &mail.message_id)
        {
            let _ = std::fs::remove_file(&partial);
            return Err(std::io::Error::other(format!(
                "cannot record the hand-over: {error}"
            )));
        }
        std::fs::rename(&partial, &path)?;
        self.guards
            .outcome(&mail.cart_id, &mail.step, &Outcome::Sent);
        Ok(())
    }
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
