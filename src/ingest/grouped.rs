//! The hand-over between a database read's grouping thread and the
//! thread that stores its batches (see [`super::database::read_marking`]).

use std::path::PathBuf;
use std::sync::mpsc;

use rusqlite::types::Value;

use crate::error::{Error, Result};

use super::Sink;
use super::database::Shared;

/// What the grouping thread hands to the store's thread, in order.
pub(super) enum Grouped {
    /// A batch of carts, hashed, and the watermark that may move once
    /// they are stored: the newest `updated_at` handed over before the
    /// batch was cut (carts are read by `updated_at`, so a read that dies
    /// later re-reads at most one batch).
    Snapshots(Vec<crate::model::Snapshot>, Option<Value>),
    Orders(Vec<crate::model::Order>),
    Rejected(super::RowError),
    Progress(u64),
}

/// The sink of the grouping thread: it hashes each batch of carts there
/// (as a file's reader thread does) and hands it over.
pub(super) struct Handover {
    pub sender: mpsc::SyncSender<Grouped>,
    pub marked: Shared,
    pub name: PathBuf,
}

impl Handover {
    fn send(&self, grouped: Grouped) -> Result<()> {
        // Only when the store's side failed: its error is the one returned.
        self.sender.send(grouped).map_err(|_| Error::Input {
            path: self.name.clone(),
            message: "reading stopped".into(),
        })
    }
}

impl Sink for Handover {
    fn carts(&mut self, carts: Vec<crate::model::Cart>) -> Result<()> {
        let mark = self.marked.borrow_mut().take();
        let snapshots = crate::model::Snapshot::hash_all(carts);
        self.send(Grouped::Snapshots(snapshots, mark))
    }
    fn orders(&mut self, orders: Vec<crate::model::Order>) -> Result<()> {
        self.send(Grouped::Orders(orders))
    }
    fn rejected(&mut self, error: super::RowError) -> Result<()> {
        self.send(Grouped::Rejected(error))
    }
    fn progress(&mut self, bytes: u64) {
        let _ = self.send(Grouped::Progress(bytes));
    }
}
