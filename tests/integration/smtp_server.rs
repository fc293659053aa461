//! A small, real SMTP receiver for the tests (std only): one thread accepts
//! on 127.0.0.1:<ephemeral>, one thread per connection. It records every
//! message it accepts and can answer chosen RCPT addresses with a chosen
//! reply, for fault tests. It can speak TLS (rustls): STARTTLS, or
//! implicit TLS from the first byte. It stops when dropped.

use std::{
    collections::HashMap,
    io::{self, BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use crate::mime::Mail;

const HOSTNAME: &str = "mx.test.invalid";

#[derive(Debug, Clone)]
pub struct Received {
    /// The MAIL FROM address, without angle brackets.
    pub from: String,
    /// The accepted RCPT TO addresses, without angle brackets.
    pub recipients: Vec<String>,
    /// The message as transmitted, dot-unstuffed, CRLF line endings.
    pub data: String,
    /// Whether MAIL FROM carried the SMTPUTF8 parameter (RFC 6531).
    pub smtputf8: bool,
}

impl Received {
    pub fn mail(&self) -> Mail {
        Mail::parse(&self.data)
    }
}

#[derive(Default)]
struct State {
    messages: Mutex<Vec<Received>>,
    /// Every RCPT TO address the server was asked for, accepted or not.
    rcpt_attempts: Mutex<Vec<String>>,
    /// Lower-cased address → full reply line, e.g. "550 5.1.1 user unknown".
    rcpt_replies: Mutex<HashMap<String, String>>,
    connections: AtomicUsize,
    stop: AtomicBool,
    /// Whether EHLO offers PIPELINING (RFC 2920).
    pipelining: bool,
    /// Whether EHLO offers SMTPUTF8 (RFC 6531).
    smtputf8: bool,
    /// MAIL commands whose RCPT had arrived with them, before any reply:
    /// envelopes the client sent without waiting.
    pipelined: AtomicUsize,
    /// TLS, if the server speaks it, and how.
    tls: Option<(TlsMode, Arc<rustls::ServerConfig>)>,
    /// Sessions that said EHLO over TLS.
    tls_sessions: AtomicUsize,
}

/// How a TLS server starts TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Offered in EHLO; the session goes on encrypted after STARTTLS.
    Starttls,
    /// From the first byte (port 465's way).
    Implicit,
}

pub struct SmtpServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl SmtpServer {
    pub fn start() -> Self {
        Self::start_with(State::default())
    }

    /// A server that offers PIPELINING.
    pub fn start_pipelining() -> Self {
        Self::start_with(State {
            pipelining: true,
            ..State::default()
        })
    }

    /// A server that offers SMTPUTF8 (and PIPELINING).
    pub fn start_smtputf8() -> Self {
        Self::start_with(State {
            pipelining: true,
            smtputf8: true,
            ..State::default()
        })
    }

    /// A server that speaks TLS with `config` (its certificate and key).
    pub fn start_tls(mode: TlsMode, config: rustls::ServerConfig) -> Self {
        Self::start_with(State {
            tls: Some((mode, Arc::new(config))),
            ..State::default()
        })
    }

    fn start_with(state: State) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind SMTP test server");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(state);
        let accept_state = Arc::clone(&state);
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                thread::spawn(move || {
                    // A client that misbehaves just loses its connection.
                    let _ = Session::new(stream, state).and_then(Session::serve);
                });
            }
        });
        Self {
            addr,
            state,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The messages accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        self.state.messages.lock().unwrap().clone()
    }

    /// Messages whose envelope includes `address` (case-insensitive).
    pub fn messages_to(&self, address: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.recipients.iter().any(|r| r.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Every envelope recipient of every accepted message, lower-cased, sorted.
    pub fn recipients(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .messages()
            .iter()
            .flat_map(|m| m.recipients.iter().map(|r| r.to_ascii_lowercase()))
            .collect();
        all.sort();
        all
    }

    /// Every address a client tried RCPT TO with, accepted or not.
    pub fn rcpt_attempts(&self) -> Vec<String> {
        self.state.rcpt_attempts.lock().unwrap().clone()
    }

    /// How many envelopes arrived pipelined: RCPT sent along with MAIL.
    pub fn pipelined_envelopes(&self) -> usize {
        self.state.pipelined.load(Ordering::SeqCst)
    }

    /// How many sessions said EHLO over TLS.
    pub fn tls_sessions(&self) -> usize {
        self.state.tls_sessions.load(Ordering::SeqCst)
    }

    /// How many TCP connections were accepted.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Answer `RCPT TO:<address>` with `reply` (a complete reply line such as
    /// `"450 4.2.0 try later"` or `"550 5.1.1 user unknown"`).
    pub fn reply_to_rcpt(&self, address: &str, reply: &str) {
        self.state
            .rcpt_replies
            .lock()
            .unwrap()
            .insert(address.to_ascii_lowercase(), reply.to_string());
    }

    /// Accept every recipient again.
    pub fn clear_rcpt_replies(&self) {
        self.state.rcpt_replies.lock().unwrap().clear();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A session's connection: plain, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Stream {
    fn tls(socket: TcpStream, config: &Arc<rustls::ServerConfig>) -> io::Result<Stream> {
        let connection =
            rustls::ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(
            connection, socket,
        ))))
    }

    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(socket) => socket,
            Stream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

struct Session {
    reader: BufReader<Stream>,
    state: Arc<State>,
    from: Option<String>,
    smtputf8: bool,
    recipients: Vec<String>,
}

impl Session {
    fn new(stream: TcpStream, state: Arc<State>) -> io::Result<Self> {
        // Short read timeouts so that idle connections notice a stop.
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        stream.set_nodelay(true).ok();
        let stream = match &state.tls {
            Some((TlsMode::Implicit, config)) => Stream::tls(stream, config)?,
            _ => Stream::Plain(stream),
        };
        Ok(Self {
            reader: BufReader::new(stream),
            state,
            from: None,
            smtputf8: false,
            recipients: Vec::new(),
        })
    }

    fn reply(&mut self, line: &str) -> io::Result<()> {
        let writer = self.reader.get_mut();
        writer.write_all(line.as_bytes())?;
        writer.write_all(b"\r\n")?;
        writer.flush()
    }

    fn encrypted(&self) -> bool {
        matches!(self.reader.get_ref(), Stream::Tls(_))
    }

    /// After `220` to STARTTLS: the rest of the session goes over TLS.
    fn start_tls(&mut self, config: &Arc<rustls::ServerConfig>) -> io::Result<()> {
        let socket = self.reader.get_ref().socket().try_clone()?;
        self.reader = BufReader::new(Stream::tls(socket, config)?);
        Ok(())
    }

    /// One line without its line ending, or None on EOF/stop.
    fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        loop {
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) => return Ok(None),
                Ok(_) if buf.ends_with(b"\n") => break,
                Ok(_) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    if self.state.stop.load(Ordering::SeqCst) {
                        return Ok(None);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        while buf.last() == Some(&b'\n') || buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    fn reset(&mut self) {
        self.from = None;
        self.recipients.clear();
    }

    fn serve(mut self) -> io::Result<()> {
        self.reply(&format!("220 {HOSTNAME} ESMTP recart-test"))?;
        while let Some(line) = self.read_line()? {
            let upper = line.to_ascii_uppercase();
            let verb = upper.split_whitespace().next().unwrap_or("");
            match verb {
                "EHLO" => {
                    self.reset();
                    if self.encrypted() {
                        self.state.tls_sessions.fetch_add(1, Ordering::SeqCst);
                    }
                    self.reply(&format!("250-{HOSTNAME}"))?;
                    self.reply("250-SIZE 10485760")?;
                    if matches!(self.state.tls, Some((TlsMode::Starttls, _))) && !self.encrypted() {
                        self.reply("250-STARTTLS")?;
                    }
                    if self.state.pipelining {
                        self.reply("250-PIPELINING")?;
                    }
                    if self.state.smtputf8 {
                        self.reply("250-SMTPUTF8")?;
                    }
                    self.reply("250 8BITMIME")?;
                }
                "HELO" => {
                    self.reset();
                    self.reply(&format!("250 {HOSTNAME}"))?;
                }
                "MAIL" if upper.starts_with("MAIL FROM:") => {
                    if self.from.is_some() {
                        self.reply("503 5.5.1 nested MAIL command")?;
                        continue;
                    }
                    if self
                        .reader
                        .buffer()
                        .windows(8)
                        .any(|w| w.eq_ignore_ascii_case(b"RCPT TO:"))
                    {
                        self.state.pipelined.fetch_add(1, Ordering::SeqCst);
                    }
                    self.from = Some(address(&line["MAIL FROM:".len()..]));
                    self.smtputf8 = upper.split_whitespace().any(|word| word == "SMTPUTF8");
                    self.recipients.clear();
                    self.reply("250 2.1.0 Ok")?;
                }
                "RCPT" if upper.starts_with("RCPT TO:") => {
                    if self.from.is_none() {
                        self.reply("503 5.5.1 need MAIL before RCPT")?;
                        continue;
                    }
                    let rcpt = address(&line["RCPT TO:".len()..]);
                    self.state.rcpt_attempts.lock().unwrap().push(rcpt.clone());
                    let custom = self
                        .state
                        .rcpt_replies
                        .lock()
                        .unwrap()
                        .get(&rcpt.to_ascii_lowercase())
                        .cloned();
                    if let Some(reply) = custom {
                        if reply.starts_with('2') {
                            self.recipients.push(rcpt);
                        }
                        self.reply(&reply)?;
                    } else {
                        self.recipients.push(rcpt);
                        self.reply("250 2.1.5 Ok")?;
                    }
                }
                "DATA" => {
                    if self.from.is_none() || self.recipients.is_empty() {
                        self.reply("554 5.5.1 no valid recipients")?;
                        continue;
                    }
                    self.reply("354 End data with <CR><LF>.<CR><LF>")?;
                    let mut data = String::new();
                    loop {
                        let Some(line) = self.read_line()? else {
                            return Ok(()); // connection lost mid-message: not recorded
                        };
                        if line == "." {
                            break;
                        }
                        // Dot-unstuffing (RFC 5321 4.5.2).
                        let line = line.strip_prefix('.').unwrap_or(&line);
                        data.push_str(line);
                        data.push_str("\r\n");
                    }
                    let received = Received {
                        from: self.from.take().unwrap_or_default(),
                        recipients: std::mem::take(&mut self.recipients),
                        data,
                        smtputf8: self.smtputf8,
                    };
                    // Recorded before the reply, so that a client that has seen
                    // the 250 can rely on the message being visible.
                    self.state.messages.lock().unwrap().push(received);
                    self.reply("250 2.0.0 Ok: queued")?;
                }
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 Ok")?;
                }
                "NOOP" => self.reply("250 2.0.0 Ok")?,
                "STARTTLS" => match self.state.tls.clone() {
                    Some((TlsMode::Starttls, config)) if !self.encrypted() => {
                        self.reply("220 2.0.0 Ready to start TLS")?;
                        self.reset();
                        self.start_tls(&config)?;
                    }
                    _ => self.reply("454 4.7.0 TLS not available")?,
                },
                "QUIT" => {
                    self.reply("221 2.0.0 Bye")?;
                    break;
                }
                _ => self.reply("502 5.5.2 Error: command not recognized")?,
            }
        }
        let _ = self.reader.get_ref().socket().shutdown(Shutdown::Both);
        Ok(())
    }
}

/// `<a@b.example> SIZE=123` → `a@b.example`.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(start), Some(end)) if start < end => arg[start + 1..end].to_string(),
        _ => arg.split_whitespace().next().unwrap_or("").to_string(),
    }
}
