//! The hand-over journal: what a run handed to the server, written before
//! each mail's content goes out, so that after the run dies the next one
//! knows exactly which of its claims may have reached the server.
//!
//! One file per run (`<store>.handover/run-<id>`), appended to with one
//! `write(2)` per record and never fsynced: a record written survives the
//! death of the process (it is in the page cache), not necessarily the
//! machine's. The file's first line names the boot it was written in
//! (`/proc/sys/kernel/random/boot_id`); a journal from another boot may
//! have lost records, and every claim of its run then counts as
//! `unknown`. See ARCHITECTURE.md, "The ledger".
//!
//! Records, one JSON array a line:
//! - `["boot", BOOT_ID]`: the first line.
//! - `["handing-over", CART, STEP, MESSAGE_ID]`: the content is about to go
//!   out (after the server's go-ahead, before the first byte of content).
//! - `["outcome", CART, STEP, STATE, REASON]`: the server's final answer.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::deliver::Outcome;
use crate::error::{Error, Result};
use crate::model::SendState;

/// What guards a run's hand-overs: the journal that records each before
/// it happens, and the flag a signal raises to stop them (the mails on the
/// wire finish; the rest come back not handed over).
#[derive(Debug, Clone, Default)]
pub struct Guards {
    pub journal: Option<Arc<Journal>>,
    pub stop: Arc<AtomicBool>,
}

impl Guards {
    /// A signal asked the run to stop handing mails over.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records that (cart, step) is about to be handed over.
    pub fn handing_over(&self, cart_id: &str, step: &str, message_id: &str) -> Result<()> {
        match &self.journal {
            Some(journal) => journal.handing_over(cart_id, step, message_id),
            None => Ok(()),
        }
    }

    /// Records the answer about (cart, step).
    pub fn outcome(&self, cart_id: &str, step: &str, outcome: &Outcome) {
        if let Some(journal) = &self.journal {
            journal.outcome(cart_id, step, outcome);
        }
    }
}

/// Where the kernel names the current boot.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The current boot's id, if the system tells it.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string(BOOT_ID_PATH)
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

/// The folder of a store's journals.
pub fn dir_of(store_path: &Path) -> PathBuf {
    let mut dir = store_path.as_os_str().to_owned();
    dir.push(".handover");
    PathBuf::from(dir)
}

/// The journal file of run `run_id`.
pub fn path_of(store_path: &Path, run_id: i64) -> PathBuf {
    dir_of(store_path).join(format!("run-{run_id}"))
}

/// A run's journal, open for appending; shared by the transport's thread
/// and the run's (webhook calls).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Creates run `run_id`'s journal (0600), headed by the boot id.
    pub fn create(store_path: &Path, run_id: i64) -> Result<Journal> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let dir = dir_of(store_path);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::io(&dir, source))?;
        let path = path_of(store_path, run_id);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| Error::io(&path, source))?;
        let journal = Journal { path, file };
        let boot = boot_id().unwrap_or_default();
        journal.append(&("boot", boot))?;
        Ok(journal)
    }

    /// Says the content of (cart, step) is about to go out. Must succeed
    /// before the first byte of content is written.
    pub fn handing_over(&self, cart_id: &str, step: &str, message_id: &str) -> Result<()> {
        self.append(&serde_json::json!([
            "handing-over",
            cart_id,
            step,
            message_id
        ]))
    }

    /// Records the server's final answer about (cart, step). A failure
    /// here loses nothing: without it the mail counts as `unknown`.
    pub fn outcome(&self, cart_id: &str, step: &str, outcome: &Outcome) {
        let (state, reason) = match outcome {
            Outcome::Sent => (SendState::Sent, ""),
            Outcome::Retry(reason) => (SendState::Retry, reason.as_str()),
            Outcome::Failed(reason) => (SendState::Failed, reason.as_str()),
            Outcome::Unknown(_) | Outcome::NotHandedOver => return,
        };
        let _ = self.append(&("outcome", cart_id, step, state.as_str(), reason));
    }

    /// One record, one `write(2)` (the file is opened for appending, so
    /// records from two threads never interleave). A tuple is written as a
    /// JSON array without building a value first: this is per mail.
    fn append(&self, record: &impl serde::Serialize) -> Result<()> {
        let mut line = Vec::with_capacity(128);
        serde_json::to_writer(&mut line, record).expect("JSON serialises");
        line.push(b'\n');
        (&self.file)
            .write_all(&line)
            .map_err(|source| Error::io(&self.path, source))
    }

    /// The run ended with every claim confirmed: the journal has served.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a dead run's journal says of one of its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Never handed over: the claim is released, the mail stays due.
    NotHandedOver,
    /// Handed over, and the server's answer was recorded.
    Answered {
        state: SendState,
        reason: Option<String>,
        message_id: Option<String>,
    },
    /// It may have reached the server: the answer is unknown.
    Unknown { why: String },
}

/// A dead run's journal as read back.
#[derive(Debug, Default)]
pub struct Read {
    /// Written in this boot: every record written is there.
    pub same_boot: bool,
    handed: HashMap<(String, String), String>,
    answered: HashMap<(String, String), (SendState, String)>,
}

impl Read {
    /// The fate of (cart, step), claimed by the run this journal belongs to.
    pub fn fate(&self, cart_id: &str, step: &str) -> Fate {
        if !self.same_boot {
            return Fate::Unknown {
                why: "its run died in an earlier boot, whose hand-over records may be lost".into(),
            };
        }
        let key = (cart_id.to_string(), step.to_string());
        let message_id = self.handed.get(&key).cloned();
        match (self.answered.get(&key), message_id) {
            (Some((state, reason)), message_id) => Fate::Answered {
                state: *state,
                reason: (!reason.is_empty()).then(|| reason.clone()),
                message_id,
            },
            (None, Some(_)) => Fate::Unknown {
                why: "handed over by a run that died before the server's answer".into(),
            },
            (None, None) => Fate::NotHandedOver,
        }
    }
}

/// Reads run `run_id`'s journal. A missing journal (the run died before
/// writing it, or an older recart claimed) reads as another boot's: every
/// claim `unknown`. A torn last line is ignored.
pub fn read(store_path: &Path, run_id: i64) -> Read {
    let Ok(text) = std::fs::read(path_of(store_path, run_id)) else {
        return Read::default();
    };
    let mut read = Read::default();
    let current = boot_id();
    for line in text.split(|&byte| byte == b'\n') {
        let Ok(record) = serde_json::from_slice::<Vec<String>>(line) else {
            continue;
        };
        match record.as_slice() {
            [kind, boot] if kind == "boot" => {
                read.same_boot = current.as_deref() == Some(boot.as_str()) && !boot.is_empty();
            }
            [kind, cart, step, message_id] if kind == "handing-over" => {
                read.handed
                    .insert((cart.clone(), step.clone()), message_id.clone());
            }
            [kind, cart, step, state, reason] if kind == "outcome" => {
                if let Ok(state) = state.parse::<SendState>() {
                    read.answered
                        .insert((cart.clone(), step.clone()), (state, reason.clone()));
                }
            }
            _ => {}
        }
    }
    read
}

/// Deletes a dead run's journal once its claims are settled.
pub fn remove(store_path: &Path, run_id: i64) {
    let _ = std::fs::remove_file(path_of(store_path, run_id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_tells_each_claims_fate() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("recart.db");
        let journal = Journal::create(&store, 7).unwrap();
        journal.handing_over("C1", "1h", "<m1>").unwrap();
        journal.outcome("C1", "1h", &Outcome::Sent);
        journal.handing_over("C2", "1h", "<m2>").unwrap();
        journal.handing_over("C\n3", "1h", "<m3>").unwrap();
        journal.outcome("C\n3", "1h", &Outcome::Failed("550 no".into()));
        // A record torn by the kill is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(path_of(&store, 7))
            .unwrap()
            .write_all(b"[\"handing-over\",\"C4")
            .unwrap();
        let read = read(&store, 7);
        if boot_id().is_none() {
            assert!(matches!(read.fate("C1", "1h"), Fate::Unknown { .. }));
            return;
        }
        assert_eq!(
            read.fate("C1", "1h"),
            Fate::Answered {
                state: SendState::Sent,
                reason: None,
                message_id: Some("<m1>".into())
            }
        );
        assert!(matches!(read.fate("C2", "1h"), Fate::Unknown { .. }));
        assert!(matches!(
            read.fate("C\n3", "1h"),
            Fate::Answered {
                state: SendState::Failed,
                ..
            }
        ));
        assert_eq!(read.fate("C4", "1h"), Fate::NotHandedOver);
        assert_eq!(read.fate("C5", "1h"), Fate::NotHandedOver);
    }

    #[test]
    fn another_boots_or_a_missing_journal_makes_every_claim_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("recart.db");
        assert!(matches!(
            read(&store, 1).fate("C1", "1h"),
            Fate::Unknown { .. }
        ));
        std::fs::create_dir_all(dir_of(&store)).unwrap();
        std::fs::write(
            path_of(&store, 2),
            "[\"boot\",\"00000000-another-boot\"]\n[\"handing-over\",\"C1\",\"1h\",\"<m>\"]\n",
        )
        .unwrap();
        assert!(matches!(
            read(&store, 2).fate("C9", "1h"),
            Fate::Unknown { .. }
        ));
    }
}
