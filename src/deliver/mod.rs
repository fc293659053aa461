//! Deliver: rendered mails → a transport (SMTP, or `.eml` files), with the
//! outcome of each mail classified for the ledger.

mod dkim;
mod file;
pub mod handover;
pub mod ledger;
mod mime;
mod preview;
mod smtp;
mod webhook;

use lettre::address::Envelope;

use crate::config::{self, Config};
use crate::error::Result;

pub use dkim::DkimKey;
pub use file::FileTransport;
pub use ledger::Reminder;
pub use mime::{Letter, ListUnsubscribe, ListUnsubscribePost, build, check, message_id};
pub use preview::Gallery;
pub use smtp::SmtpTransport;
pub use webhook::{WebhookCall, WebhookClient, signature};

/// One mail ready to go, with the ledger key it belongs to.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub cart_id: String,
    pub step: String,
    pub message_id: String,
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
}

/// What became of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took it.
    Sent,
    /// A temporary refusal (4xx): due again later.
    Retry(String),
    /// A permanent refusal (5xx).
    Failed(String),
    /// The mail was handed over but the answer never came: it may or may
    /// not have been delivered.
    Unknown(String),
    /// Never handed over (the transport stopped first): still due.
    NotHandedOver,
}

/// The outcomes of a batch, in the batch's order, and whether the
/// transport broke down (connection lost or refused): then the run stops.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub outcomes: Vec<Outcome>,
    pub fatal: Option<String>,
}

/// The groups of mails handed to a transport's thread, in order.
pub type Groups = tokio::sync::mpsc::UnboundedReceiver<Vec<Outgoing>>;

pub trait Transport: Send {
    fn send(&mut self, mails: &[Outgoing]) -> BatchReport;
    /// Ends sessions politely; errors here change no outcome.
    fn close(&mut self) {}

    /// Sends the groups that come, in order, and reports on each, in
    /// order, until no more come. By default a `send` per group. After a
    /// breakdown nothing more is sent: later groups come back not handed
    /// over.
    fn serve(&mut self, groups: &mut Groups, reports: &Reports) {
        let mut broken = false;
        while let Some(mails) = groups.blocking_recv() {
            let report = if broken {
                BatchReport {
                    outcomes: vec![Outcome::NotHandedOver; mails.len()],
                    fatal: None,
                }
            } else {
                self.send(&mails)
            };
            broken |= report.fatal.is_some();
            if reports.send(report).is_err() {
                return;
            }
        }
    }
}

/// Where a transport's thread reports on each group.
pub type Reports = std::sync::mpsc::Sender<BatchReport>;

/// A transport working on its own thread, so that the run composes and
/// claims the next mails while these are sent. Groups are sent in the
/// order submitted and their reports come back one per group, in that
/// order (`Transport::serve`).
pub struct Background {
    to_worker: Option<tokio::sync::mpsc::UnboundedSender<Vec<Outgoing>>>,
    from_worker: std::sync::mpsc::Receiver<BatchReport>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn start(mut transport: Box<dyn Transport>) -> Background {
        let (to_worker, mut groups) = tokio::sync::mpsc::unbounded_channel::<Vec<Outgoing>>();
        let (reports, from_worker) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            transport.serve(&mut groups, &reports);
            transport.close();
        });
        Background {
            to_worker: Some(to_worker),
            from_worker,
            worker: Some(worker),
        }
    }

    pub fn submit(&self, mails: Vec<Outgoing>) {
        if let Some(to_worker) = &self.to_worker {
            // A worker that is gone shows up in `receive`.
            let _ = to_worker.send(mails);
        }
    }

    /// The report of the oldest group not yet received (`count` mails). A
    /// worker that died leaves their fate unknown.
    pub fn receive(&self, count: usize) -> BatchReport {
        self.from_worker.recv().unwrap_or_else(|_| {
            let reason = "the sending thread stopped".to_string();
            BatchReport {
                outcomes: vec![Outcome::Unknown(reason.clone()); count],
                fatal: Some(reason),
            }
        })
    }

    /// Waits for the sends submitted and ends the sessions.
    pub fn finish(&mut self) {
        self.to_worker.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Opens the configured transport.
/// Opens the configured transport, guarded by a real run's journal and
/// stop flag (default guards: nothing recorded, never stopped).
pub fn open(config: &Config, guards: handover::Guards) -> Result<Box<dyn Transport>> {
    match &config.transport {
        config::Transport::File { dir } => Ok(Box::new(FileTransport::new(dir, guards)?)),
        config::Transport::Smtp(settings) => Ok(Box::new(SmtpTransport::connect(
            settings,
            &config.path,
            guards,
        )?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it was given; breaks down on its second `send`.
    struct Flaky(std::sync::Arc<std::sync::Mutex<Vec<usize>>>);

    impl Transport for Flaky {
        fn send(&mut self, mails: &[Outgoing]) -> BatchReport {
            let mut calls = self.0.lock().unwrap();
            calls.push(mails.len());
            let broken = calls.len() == 2;
            BatchReport {
                outcomes: mails
                    .iter()
                    .map(|_| {
                        if broken {
                            Outcome::Unknown("reset".into())
                        } else {
                            Outcome::Sent
                        }
                    })
                    .collect(),
                fatal: broken.then(|| "reset".into()),
            }
        }
    }

    #[test]
    fn the_background_transport_reports_per_group_and_stops_after_a_breakdown() {
        let shop: lettre::Address = "shop@shop.example".parse().unwrap();
        let mail = Outgoing {
            cart_id: "C1".into(),
            step: "1h".into(),
            message_id: "<1@shop.example>".into(),
            envelope: Envelope::new(Some(shop.clone()), vec![shop]).unwrap(),
            bytes: Vec::new(),
        };
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut background = Background::start(Box::new(Flaky(calls.clone())));
        for size in [2, 3, 1, 2] {
            background.submit(vec![mail.clone(); size]);
        }
        let reports: Vec<BatchReport> = [2, 3, 1, 2].map(|size| background.receive(size)).into();
        background.finish();
        assert_eq!(
            *calls.lock().unwrap(),
            [2, 3],
            "nothing sent after the breakdown"
        );
        assert_eq!(reports[0].outcomes, [Outcome::Sent, Outcome::Sent]);
        assert!(reports[0].fatal.is_none());
        assert_eq!(reports[1].outcomes.len(), 3);
        assert_eq!(reports[1].fatal.as_deref(), Some("reset"));
        for report in &reports[2..] {
            assert!(report.outcomes.iter().all(|o| *o == Outcome::NotHandedOver));
        }
    }
}
