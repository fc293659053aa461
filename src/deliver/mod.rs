//! Deliver: rendered mails → a transport (SMTP, or `.eml` files), with the
//! outcome of each mail classified for the ledger.

mod file;
mod smtp;

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::{Mailbox, MultiPart};
use sha2::{Digest, Sha256};

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::render::Rendered;

pub use file::FileTransport;
pub use smtp::SmtpTransport;

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

pub trait Transport {
    fn send(&mut self, mails: &[Outgoing]) -> BatchReport;
    /// Ends sessions politely; errors here change no outcome.
    fn close(&mut self) {}
}

/// Opens the configured transport.
pub fn open(config: &Config) -> Result<Box<dyn Transport>> {
    match &config.transport {
        config::Transport::File { dir } => Ok(Box::new(FileTransport::new(dir)?)),
        config::Transport::Smtp(settings) => {
            Ok(Box::new(SmtpTransport::connect(settings, &config.path)?))
        }
    }
}

/// A stable Message-ID per (cart, step): a mail re-sent after an unknown
/// outcome carries the same id, so receivers can tell it is the same one.
pub fn message_id(cart_id: &str, step: &str, from: &Mailbox) -> String {
    let digest = Sha256::digest(format!("{cart_id}\0{step}"));
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("<{hex}.recart@{}>", from.email.domain())
}

/// Builds the MIME message: multipart/alternative with text and HTML.
pub fn build(
    from: &Mailbox,
    to_name: &str,
    to_email: &str,
    cart_id: &str,
    step: &str,
    rendered: &Rendered,
    date: DateTime<Utc>,
) -> Result<Outgoing> {
    let address = to_email
        .parse()
        .map_err(|_| Error::Transport(format!("{to_email:?} is not an e-mail address")))?;
    let name = to_name.split_whitespace().collect::<Vec<_>>().join(" ");
    let to = Mailbox::new((!name.is_empty()).then_some(name), address);
    let message_id = message_id(cart_id, step, from);
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject.clone())
        .message_id(Some(message_id.clone()))
        .date(SystemTime::from(date))
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .map_err(|error| {
            Error::Transport(format!("cannot build the mail to {to_email}: {error}"))
        })?;
    Ok(Outgoing {
        cart_id: cart_id.to_string(),
        step: step.to_string(),
        message_id,
        envelope: message.envelope().clone(),
        bytes: message.formatted(),
    })
}
