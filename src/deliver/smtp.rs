//! The SMTP transport: lettre's async connection over a TCP stream we open
//! ourselves, with `TCP_NODELAY` set (lettre leaves it off, which stalls every
//! message on a delayed ACK), and the SMTP transaction driven command by
//! command so that each failure is known to be before or after the message
//! was handed over. Where the server offers PIPELINING (RFC 2920), MAIL,
//! RCPT and DATA go in one write and their answers are read after: two
//! round trips per mail instead of four.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::config::{SmtpSettings, Tls};

mod tls;

use crate::error::{Error, Result};
use tls::{certificate_hint, tls_parameters};

use super::handover::Guards;
use super::{BatchReport, Outcome, Outgoing, Transport};

pub struct SmtpTransport {
    settings: SmtpSettings,
    password: Option<String>,
    runtime: Runtime,
    connections: Vec<Option<Connection>>,
    /// `rate_limit`: the earliest time the next mail may start, shared by
    /// all connections.
    next_slot: Cell<Option<Instant>>,
    /// The journal of each hand-over (before the content goes out), and
    /// the stop.
    guards: Guards,
}

impl SmtpTransport {
    /// Checks the settings and opens the first connection, so that a wrong
    /// host or port fails the run before anything is claimed.
    pub fn connect(
        settings: &SmtpSettings,
        config_path: &Path,
        guards: Guards,
    ) -> Result<SmtpTransport> {
        let password = match (&settings.username, &settings.password_env) {
            (Some(_), Some(variable)) => Some(std::env::var(variable).map_err(|_| {
                Error::config(
                    config_path,
                    format!("transport.password_env: the variable {variable} is not set"),
                )
            })?),
            (Some(_), None) => {
                return Err(Error::config(
                    config_path,
                    "transport.username is set but transport.password_env is not",
                ));
            }
            (None, _) => None,
        };
        if password.is_some() && settings.tls == Tls::None {
            return Err(Error::config(
                config_path,
                "transport.tls = \"none\" would send the password in clear text; use starttls or implicit",
            ));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| Error::Transport(format!("cannot start the SMTP runtime: {error}")))?;
        let mut transport = SmtpTransport {
            settings: settings.clone(),
            password,
            runtime,
            connections: (0..settings.connections).map(|_| None).collect(),
            next_slot: Cell::new(None),
            guards,
        };
        let first = transport
            .runtime
            .block_on(open_connection(
                &transport.settings,
                transport.password.as_deref(),
            ))
            .map_err(Error::Transport)?;
        transport.connections[0] = Some(first);
        Ok(transport)
    }
}

impl Transport for SmtpTransport {
    fn send(&mut self, mails: &[Outgoing]) -> BatchReport {
        let (group, mut groups) = tokio::sync::mpsc::unbounded_channel();
        let _ = group.send(mails.to_vec());
        drop(group);
        let (reports, report) = std::sync::mpsc::channel();
        self.serve(&mut groups, &reports);
        report.try_recv().unwrap_or_default()
    }

    /// Every connection takes the next mail as soon as it is done with
    /// one, whichever group it is in (no connection waits for the slowest
    /// at a group's end, and a pipelined envelope goes ahead across
    /// groups); a group is reported once all its mails are done and those
    /// before it were reported. After a breakdown nothing more is handed
    /// over: the mails on their way end as they do, the rest come back not
    /// handed over, the first report after it carrying the reason.
    fn serve(&mut self, groups: &mut super::Groups, reports: &super::Reports) {
        let settings = &self.settings;
        let password = self.password.as_deref();
        let pacer = Pacer {
            interval: settings
                .rate_limit
                .map(|rate| Duration::from_secs_f64(1.0 / rate)),
            next_slot: &self.next_slot,
        };
        let work = Work::new(self.guards.stop.clone());
        let guards = &self.guards;
        let feed = async {
            while let Some(group) = groups.recv().await {
                work.add(group, reports);
            }
            work.closed.set(true);
            work.arrived.notify_waiters();
        };
        let lanes = self.connections.iter_mut().map(|slot| {
            let lane = Lane {
                work: &work,
                reports,
                settings,
                password,
                pacer: &pacer,
                guards,
            };
            send_lane(slot, lane)
        });
        self.runtime
            .block_on(async { futures_util::future::join(feed, join_all(lanes)).await });
    }

    fn close(&mut self) {
        let timeout = self.settings.timeout;
        for slot in &mut self.connections {
            if let Some(mut connection) = slot.take() {
                // Timers need the runtime: build the timeout inside it.
                let _ = self.runtime.block_on(async {
                    tokio::time::timeout(timeout, connection.smtp.command(Quit)).await
                });
            }
        }
    }
}

/// A mail waiting for a connection: its group and place in it.
struct Queued {
    group: u64,
    index: usize,
    mail: Outgoing,
}

/// A group not yet reported: the outcomes so far, and how many to come.
struct Pending {
    outcomes: Vec<Outcome>,
    left: usize,
}

/// What the connections share (one thread: cells, no locks).
#[derive(Default)]
struct Work {
    queue: RefCell<VecDeque<Queued>>,
    /// Groups not yet reported, oldest first; the first is `first_group`.
    pending: RefCell<VecDeque<Pending>>,
    first_group: Cell<u64>,
    /// The breakdown, once there is one; taken by the report that tells it.
    broken: Cell<bool>,
    fatal: RefCell<Option<String>>,
    /// No more groups will come.
    closed: Cell<bool>,
    arrived: tokio::sync::Notify,
    /// Raised by a signal: hand nothing more over.
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Work {
    fn new(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Work {
        Work {
            queue: RefCell::default(),
            pending: RefCell::default(),
            first_group: Cell::default(),
            broken: Cell::default(),
            fatal: RefCell::default(),
            closed: Cell::default(),
            arrived: tokio::sync::Notify::new(),
            stop,
        }
    }

    /// Nothing more is handed over: after a breakdown, or once stopped.
    fn halted(&self) -> bool {
        self.broken.get() || self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn add(&self, group: Vec<Outgoing>, reports: &super::Reports) {
        let number = self.first_group.get() + self.pending.borrow().len() as u64;
        self.pending.borrow_mut().push_back(Pending {
            outcomes: vec![Outcome::NotHandedOver; group.len()],
            left: group.len(),
        });
        if self.halted() {
            let mut pending = self.pending.borrow_mut();
            let last = pending.back_mut().expect("just added");
            last.left = 0;
        } else {
            let mut queue = self.queue.borrow_mut();
            for (index, mail) in group.into_iter().enumerate() {
                queue.push_back(Queued {
                    group: number,
                    index,
                    mail,
                });
            }
        }
        self.arrived.notify_waiters();
        self.report_done(reports);
    }

    /// The next mail for a connection; None once no more will come, or
    /// after a breakdown or a stop (then the mails waiting come back not
    /// handed over).
    async fn next(&self, reports: &super::Reports) -> Option<Queued> {
        loop {
            if self.halted() {
                let waiting: Vec<Queued> = self.queue.borrow_mut().drain(..).collect();
                for queued in &waiting {
                    self.done(queued, Outcome::NotHandedOver, reports);
                }
                return None;
            }
            if let Some(queued) = self.queue.borrow_mut().pop_front() {
                return Some(queued);
            }
            if self.closed.get() {
                return None;
            }
            // One thread: nothing can arrive between the checks above
            // and this wait being registered.
            self.arrived.notified().await;
        }
    }

    /// The next mail if one is waiting, to pipeline its envelope.
    fn next_waiting(&self) -> Option<Queued> {
        if self.halted() {
            return None;
        }
        self.queue.borrow_mut().pop_front()
    }

    fn done(&self, queued: &Queued, outcome: Outcome, reports: &super::Reports) {
        {
            let mut pending = self.pending.borrow_mut();
            let at = usize::try_from(queued.group - self.first_group.get())
                .expect("a pending group, so an index into `pending`");
            let group = &mut pending[at];
            group.outcomes[queued.index] = outcome;
            group.left -= 1;
        }
        self.report_done(reports);
    }

    /// Stops handing mails over: those waiting are not handed over.
    fn break_down(&self, message: String, reports: &super::Reports) {
        if !self.broken.replace(true) {
            *self.fatal.borrow_mut() = Some(message);
        }
        let waiting: Vec<Queued> = self.queue.borrow_mut().drain(..).collect();
        for queued in &waiting {
            self.done(queued, Outcome::NotHandedOver, reports);
        }
        self.arrived.notify_waiters();
        self.report_done(reports);
    }

    /// Reports the groups at the front that are done, in order.
    fn report_done(&self, reports: &super::Reports) {
        let mut pending = self.pending.borrow_mut();
        while pending.front().is_some_and(|group| group.left == 0) {
            let group = pending.pop_front().expect("checked");
            self.first_group.set(self.first_group.get() + 1);
            let fatal = if self.broken.get() {
                self.fatal.borrow_mut().take()
            } else {
                None
            };
            // The run is gone if nobody listens: nothing to tell.
            let _ = reports.send(BatchReport {
                outcomes: group.outcomes,
                fatal,
            });
        }
    }
}

fn describe(settings: &SmtpSettings) -> String {
    format!("SMTP server {}:{}", settings.host, settings.port)
}

/// One SMTP session, and whether the server pipelines.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

async fn open_connection(
    settings: &SmtpSettings,
    password: Option<&str>,
) -> std::result::Result<Connection, String> {
    let fail = |what: &str, error: &dyn std::fmt::Display| {
        let error = error.to_string();
        match certificate_hint(&error, settings) {
            Some(hint) => format!("{}: {what}: {error}: {hint}", describe(settings)),
            None => format!("{}: {what}: {error}", describe(settings)),
        }
    };
    let hello = ClientId::default();
    let timeout = settings.timeout;
    let address = (settings.host.as_str(), settings.port);
    let connect = async {
        let mut connection = match settings.tls {
            // lettre opens implicit TLS itself (without TCP_NODELAY).
            Tls::Implicit => {
                let tls = tls_parameters(settings).map_err(|error| fail("TLS setup", &error))?;
                AsyncSmtpConnection::connect_tokio1(address, Some(timeout), &hello, Some(tls), None)
                    .await
                    .map_err(|error| fail("cannot connect", &error))?
            }
            Tls::Starttls | Tls::None => {
                let stream = TcpStream::connect(address)
                    .await
                    .map_err(|error| fail("cannot connect", &error))?;
                stream
                    .set_nodelay(true)
                    .map_err(|error| fail("cannot set TCP_NODELAY", &error))?;
                let mut connection =
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello)
                        .await
                        .map_err(|error| fail("greeting failed", &error))?;
                if settings.tls == Tls::Starttls {
                    let tls =
                        tls_parameters(settings).map_err(|error| fail("TLS setup", &error))?;
                    connection
                        .starttls(tls, &hello)
                        .await
                        .map_err(|error| fail("STARTTLS failed", &error))?;
                }
                connection
            }
        };
        // lettre keeps only the extensions it knows; PIPELINING is not
        // one of them, so ask again (EHLO may be repeated; it only resets
        // the transaction, and comes before AUTH).
        let pipelining = connection
            .command(Ehlo::new(hello.clone()))
            .await
            .map_err(|error| fail("EHLO failed", &error))?
            .message()
            .any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
        if let (Some(username), Some(password)) = (&settings.username, password) {
            let credentials = Credentials::new(username.clone(), password.to_string());
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|error| fail("authentication failed", &error))?;
        }
        Ok(Connection {
            smtp: connection,
            pipelining,
        })
    };
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| fail("timed out", &format!("no answer within {timeout:?}")))?
}

/// Spaces mails out to `rate_limit` per second across all connections.
struct Pacer<'a> {
    interval: Option<Duration>,
    next_slot: &'a Cell<Option<Instant>>,
}

impl Pacer<'_> {
    async fn wait_turn(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        let slot = self.next_slot.get().map_or(now, |next| next.max(now));
        self.next_slot.set(Some(slot + interval));
        tokio::time::sleep_until(slot).await;
    }
}

/// What every connection's lane shares.
struct Lane<'a> {
    work: &'a Work,
    reports: &'a super::Reports,
    settings: &'a SmtpSettings,
    password: Option<&'a str>,
    pacer: &'a Pacer<'a>,
    guards: &'a Guards,
}

/// One connection's share: mails as they come, one after the other. With
/// PIPELINING and no `rate_limit`, each message goes in one write with
/// the next waiting mail's MAIL, RCPT and DATA: one round trip per mail.
async fn send_lane(slot: &mut Option<Connection>, lane: Lane<'_>) {
    let Lane {
        work,
        reports,
        settings,
        password,
        pacer,
        guards,
    } = lane;
    // The mail taken with the one before it, and the answers to its
    // envelope if that went ahead with the message before.
    let mut ahead: Option<(Queued, Option<std::result::Result<(), Failure>>)> = None;
    loop {
        let (queued, envelope_sent) = match ahead.take() {
            Some(next) => next,
            None => match work.next(reports).await {
                Some(queued) => (queued, None),
                None => break,
            },
        };
        if work.halted() && envelope_sent.is_none() {
            work.done(&queued, Outcome::NotHandedOver, reports);
            continue;
        }
        if slot.is_none() {
            match open_connection(settings, password).await {
                Ok(connection) => *slot = Some(connection),
                Err(message) => {
                    // Broken down first, so that the report this mail
                    // completes carries the reason.
                    work.break_down(message, reports);
                    work.done(&queued, Outcome::NotHandedOver, reports);
                    continue;
                }
            }
        }
        let connection = slot.as_mut().expect("connected above");
        if envelope_sent.is_none() {
            if let Some(failed) = cannot_go_on(connection, &queued.mail) {
                work.done(&queued, failed, reports);
                continue;
            }
            pacer.wait_turn().await;
        }
        let next = if connection.pipelining && pacer.interval.is_none() {
            work.next_waiting()
        } else {
            None
        };
        // One that cannot go on this connection is not sent ahead: it
        // comes next on its own, and fails there.
        let next_ahead = next
            .as_ref()
            .filter(|next| cannot_go_on(connection, &next.mail).is_none());
        let (outcome, next_envelope) = send_one(
            connection,
            &queued.mail,
            envelope_sent,
            next_ahead.map(|next| &next.mail),
            settings.timeout,
            guards,
        )
        .await;
        if let Step::Done(outcome) | Step::Refused(outcome) = &outcome {
            guards.outcome(&queued.mail.cart_id, &queued.mail.step, outcome);
        }
        match outcome {
            Step::Done(outcome) => work.done(&queued, outcome, reports),
            Step::Refused(outcome) => {
                // Reset the transaction; if that fails the connection is gone.
                if command(&mut connection.smtp, Rset, settings.timeout)
                    .await
                    .is_err()
                {
                    *slot = None;
                }
                work.done(&queued, outcome, reports);
            }
            Step::Broken(outcome, message) => {
                *slot = None;
                work.break_down(format!("{}: {message}", describe(settings)), reports);
                work.done(&queued, outcome, reports);
            }
        }
        // The next mail stays with this connection: its envelope went
        // ahead (the answers are read), or it goes on its own.
        ahead = next.map(|next| (next, next_envelope));
    }
}

enum Step {
    /// The transaction ended (sent, or refused after the data).
    Done(Outcome),
    /// Refused before the data: the transaction needs a reset.
    Refused(Outcome),
    /// The connection broke.
    Broken(Outcome, String),
}

enum Failure {
    /// The server answered 4xx/5xx.
    Refused(lettre::transport::smtp::Error),
    /// No usable answer: network error, timeout, garbage.
    Broken(String),
}

async fn command<C: std::fmt::Display>(
    connection: &mut AsyncSmtpConnection,
    command: C,
    timeout: Duration,
) -> std::result::Result<(), Failure> {
    match tokio::time::timeout(timeout, connection.command(command)).await {
        Err(_) => Err(Failure::Broken(format!("no answer within {timeout:?}"))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(classify(error)),
    }
}

fn classify(error: lettre::transport::smtp::Error) -> Failure {
    if error.is_transient() || error.is_permanent() {
        Failure::Refused(error)
    } else {
        Failure::Broken(error.to_string())
    }
}

fn refusal(error: &lettre::transport::smtp::Error) -> Outcome {
    if error.is_transient() {
        Outcome::Retry(error.to_string())
    } else {
        Outcome::Failed(error.to_string())
    }
}

/// Sends one mail: its envelope (unless it went ahead: `envelope_sent`),
/// then the message — together with the envelope of `next`, whose answers
/// come back second.
async fn send_one(
    connection: &mut Connection,
    mail: &Outgoing,
    envelope_sent: Option<std::result::Result<(), Failure>>,
    next: Option<&Outgoing>,
    timeout: Duration,
    guards: &Guards,
) -> (Step, Option<std::result::Result<(), Failure>>) {
    let smtp = &mut connection.smtp;
    let before_data = match envelope_sent {
        Some(answers) => answers,
        None if connection.pipelining => envelope_pipelined(smtp, mail, timeout).await,
        None => envelope_one_by_one(smtp, mail, timeout).await,
    };
    match before_data {
        Ok(()) => {}
        Err(Failure::Refused(error)) => return (Step::Refused(refusal(&error)), None),
        Err(Failure::Broken(message)) => {
            return (Step::Broken(Outcome::NotHandedOver, message), None);
        }
    }
    // The hand-over is recorded before the first byte of content: if it
    // cannot be, the content never goes (the connection is dropped in the
    // middle of DATA, which a server discards) and sending stops.
    if let Err(error) = guards.handing_over(&mail.cart_id, &mail.step, &mail.message_id) {
        let message = format!("cannot record the hand-over: {error}");
        return (Step::Broken(Outcome::NotHandedOver, message), None);
    }
    // From here on the message is in the server's hands: a broken
    // connection leaves its fate unknown.
    // The message, its end and the next envelope in one write (lettre's
    // own `message()` stuffs byte by byte and writes the end apart).
    let stuffed = dot_stuffed(&mail.bytes).map(|mut write| {
        write.push_str("\r\n.\r\n");
        if let Some(next) = next {
            write.push_str(&envelope_group(next));
        }
        write
    });
    let next = next.filter(|_| stuffed.is_some());
    let answer = match &stuffed {
        Some(write) => tokio::time::timeout(timeout, smtp.command(write)).await,
        None => tokio::time::timeout(timeout, smtp.message(&mail.bytes)).await,
    };
    let step = match answer {
        Ok(Ok(_)) => Step::Done(Outcome::Sent),
        Ok(Err(error)) => match classify(error) {
            Failure::Refused(error) => Step::Done(refusal(&error)),
            Failure::Broken(message) => Step::Broken(Outcome::Unknown(message.clone()), message),
        },
        Err(_) => {
            let message = format!("no answer to the message within {timeout:?}");
            Step::Broken(Outcome::Unknown(message.clone()), message)
        }
    };
    let next_envelope = match (&step, next) {
        (Step::Done(_), Some(next)) => {
            Some(read_envelope_answers(smtp, EnvelopeAnswers::new(next), timeout).await)
        }
        _ => None,
    };
    (step, next_envelope)
}

/// The message with SMTP's dot transparency (RFC 5321 4.5.2) as text, for
/// one write with its end; None if it is not UTF-8 (then it goes through
/// lettre's `message()`).
fn dot_stuffed(message: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(message).ok()?;
    let mut out = String::with_capacity(text.len() + 64);
    if text.starts_with('.') {
        out.push('.');
    }
    // A line that starts with a dot follows "\r\n."; memchr finds those
    // faster than splitting the message into lines.
    let mut copied = 0;
    for at in memchr::memmem::find_iter(message, b"\r\n.") {
        out.push_str(&text[copied..at + 2]);
        out.push('.');
        copied = at + 2;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// Whether the envelope has an address that is not ASCII: a local part
/// in another script (domains are IDNA already, `model::mail_address`).
fn needs_smtputf8(mail: &Outgoing) -> bool {
    mail.envelope
        .from()
        .into_iter()
        .chain(mail.envelope.to())
        .any(|address| !address.user().is_ascii() || !address.domain().is_ascii())
}

/// Whether this mail can go on this connection: one with an address that
/// is not ASCII needs a server that offers SMTPUTF8 (RFC 6531), else it
/// fails here, before anything of it is sent (no raw UTF-8 in `RCPT TO`
/// or `To:` to a server that did not ask for it).
fn cannot_go_on(connection: &Connection, mail: &Outgoing) -> Option<Outcome> {
    (needs_smtputf8(mail)
        && !connection
            .smtp
            .server_info()
            .supports_feature(Extension::SmtpUtfEight))
    .then(|| {
        Outcome::Failed(
            "the address is not ASCII and the server does not offer SMTPUTF8".to_string(),
        )
    })
}

fn mail_from(mail: &Outgoing) -> Mail {
    let mut parameters = Vec::new();
    if !mail.bytes.is_ascii() {
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if needs_smtputf8(mail) {
        parameters.push(MailParameter::SmtpUtfEight);
    }
    Mail::new(mail.envelope.from().cloned(), parameters)
}

/// MAIL, each RCPT, DATA: one command, one answer at a time.
async fn envelope_one_by_one(
    smtp: &mut AsyncSmtpConnection,
    mail: &Outgoing,
    timeout: Duration,
) -> std::result::Result<(), Failure> {
    command(smtp, mail_from(mail), timeout).await?;
    for recipient in mail.envelope.to() {
        command(smtp, Rcpt::new(recipient.clone(), Vec::new()), timeout).await?;
    }
    command(smtp, Data, timeout).await
}

/// MAIL, each RCPT and DATA as one piece of text.
fn envelope_group(mail: &Outgoing) -> String {
    let mut group = mail_from(mail).to_string();
    for recipient in mail.envelope.to() {
        group.push_str(&Rcpt::new(recipient.clone(), Vec::new()).to_string());
    }
    group.push_str(&Data.to_string());
    group
}

/// MAIL, each RCPT and DATA in one write, then every answer read in turn.
async fn envelope_pipelined(
    smtp: &mut AsyncSmtpConnection,
    mail: &Outgoing,
    timeout: Duration,
) -> std::result::Result<(), Failure> {
    let mut answers = EnvelopeAnswers::new(mail);
    let first = tokio::time::timeout(timeout, smtp.command(envelope_group(mail))).await;
    answers.take(first, timeout)?;
    read_envelope_answers(smtp, answers, timeout).await
}

/// The answers to a pipelined envelope: all of them are read, to keep the
/// session in step; the first refusal decides.
struct EnvelopeAnswers {
    expected: usize,
    seen: usize,
    refused: Option<lettre::transport::smtp::Error>,
    data_taken: bool,
}

type Answer = std::result::Result<
    std::result::Result<
        lettre::transport::smtp::response::Response,
        lettre::transport::smtp::Error,
    >,
    tokio::time::error::Elapsed,
>;

impl EnvelopeAnswers {
    fn new(mail: &Outgoing) -> EnvelopeAnswers {
        EnvelopeAnswers {
            expected: mail.envelope.to().len() + 2,
            seen: 0,
            refused: None,
            data_taken: false,
        }
    }

    fn take(&mut self, answer: Answer, timeout: Duration) -> std::result::Result<(), Failure> {
        self.seen += 1;
        match answer {
            Err(_) => Err(Failure::Broken(format!("no answer within {timeout:?}"))),
            Ok(Ok(_)) => {
                self.data_taken = self.seen == self.expected;
                Ok(())
            }
            Ok(Err(error)) => match classify(error) {
                Failure::Broken(message) => Err(Failure::Broken(message)),
                Failure::Refused(error) => {
                    self.refused.get_or_insert(error);
                    Ok(())
                }
            },
        }
    }
}

async fn read_envelope_answers(
    smtp: &mut AsyncSmtpConnection,
    mut answers: EnvelopeAnswers,
    timeout: Duration,
) -> std::result::Result<(), Failure> {
    while answers.seen < answers.expected {
        let answer = tokio::time::timeout(timeout, smtp.read_response()).await;
        answers.take(answer, timeout)?;
    }
    match answers.refused {
        None => Ok(()),
        // DATA was refused too (no recipient was taken), as RFC 2920 has it.
        Some(error) if !answers.data_taken => Err(Failure::Refused(error)),
        // The server waits for a message it should not: the session is
        // out of step, and nothing was handed over.
        Some(error) => Err(Failure::Broken(format!(
            "the server took DATA after refusing the envelope ({error})"
        ))),
    }
}

#[cfg(test)]
mod tests;
