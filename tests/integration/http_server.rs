//! A small real HTTP/1.1 receiver for webhook tests, std only: records each
//! request and answers with the status chosen for it (by a substring of the
//! body), optionally after a delay. Stops when dropped.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

#[derive(Default)]
struct Rules {
    /// (substring of the body, status, delay)
    answers: Vec<(String, u16, Duration)>,
}

pub struct HttpServer {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    rules: Arc<Mutex<Rules>>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let rules = Arc::new(Mutex::new(Rules::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (requests2, rules2, stop2) = (requests.clone(), rules.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (requests, rules) = (requests2.clone(), rules2.clone());
                thread::spawn(move || serve(stream, &requests, &rules));
            }
        });
        Self {
            port,
            requests,
            rules,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests whose body contains `needle` get `status`, after `delay`.
    pub fn answer(&self, needle: &str, status: u16, delay: Duration) {
        self.rules
            .lock()
            .unwrap()
            .answers
            .push((needle.to_string(), status, delay));
    }

    pub fn clear_answers(&self) {
        self.rules.lock().unwrap().answers.clear();
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, requests: &Mutex<Vec<Request>>, rules: &Mutex<Rules>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let text = String::from_utf8_lossy(&body).to_string();
    let (status, delay) = rules
        .lock()
        .unwrap()
        .answers
        .iter()
        .find(|(needle, _, _)| text.contains(needle.as_str()))
        .map_or((200, Duration::ZERO), |(_, status, delay)| {
            (*status, *delay)
        });
    requests.lock().unwrap().push(Request {
        method,
        path,
        headers,
        body,
    });
    thread::sleep(delay);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
}
