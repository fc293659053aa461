//! `recart serve` over real HTTP on the loopback interface: one-click
//! unsubscribe with the token of a real rendered mail, the recovery
//! redirect and its click, refused tokens, and serve beside a run on one
//! store.

use std::{
    io::{BufRead, BufReader, Read},
    process::Child,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    fixtures::{ADA, Config, GRACE, LATER, NOW, SECRET, Transport, many_carts, shop},
    harness::{Test, for_cart, mail_file},
    mime::Mail,
};

const BASE: &str = "https://mail.shop.example";
const CART_PAGE: &str = "https://shop.example/abandoned-cart/{cart_id}";

/// A shop whose mails link to `recart serve` (`links.base`).
fn served_shop() -> Test {
    let toml = Config::new(Transport::File).to_toml().replace(
        "recover = \"https://shop.example/cart/recover/{token}\"\nunsubscribe = \"https://shop.example/unsubscribe/{token}\"",
        &format!("base = \"{BASE}/\"\ncart = \"{CART_PAGE}\""),
    );
    assert!(toml.contains("base = "), "the fixture's [links] changed");
    shop(&Config::new(Transport::File)).file("recart.toml", toml)
}

/// The `List-Unsubscribe` header's HTTPS URL of a mail in the outbox.
fn list_unsubscribe(t: &Test, cart_id: &str, step: &str) -> String {
    let mail = Mail::parse(&t.read(mail_file("outbox", cart_id, step, "eml")));
    let header = mail
        .header("List-Unsubscribe")
        .unwrap_or_else(|| panic!("no List-Unsubscribe header in {mail:?}"));
    header
        .split(['<', '>', ',', ' '])
        .find(|part| part.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https URL in List-Unsubscribe: {header}"))
        .to_string()
}

/// The token of the recovery link in a mail's text part.
fn recover_token(t: &Test, cart_id: &str, step: &str) -> String {
    let text = Mail::parse(&t.read(mail_file("outbox", cart_id, step, "eml")))
        .part("text/plain")
        .expect("a text part");
    let prefix = format!("{BASE}/r/");
    let at = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in\n{text}"));
    text[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

/// A v2 token as README documents the scheme, signed with `key`.
fn sign(key: &str, cart_id: &str, email: &str, step: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("v2\n{cart_id}\n{email}\n{step}\n{expires}").as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(format!("v2\n{cart_id}\n{step}\n{expires}")),
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// `recart serve --listen 127.0.0.1:0` running in the test's directory;
/// its stderr (the access log) collected. SIGTERM when dropped.
struct Server {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(t: &Test, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend(extra);
        let mut child = t.spawn_piped(&args);
        let stdout = child.stdout.take().unwrap();
        let (first, line) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = Arc::clone(&stderr);
        let reader = thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let announced = line.recv_timeout(Duration::from_mins(1)).ok().flatten();
        let Some(url) = announced.and_then(|l| l.strip_prefix("listening on ").map(str::to_string))
        else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            panic!(
                "recart serve did not announce its address\n--- stderr ---\n{}",
                stderr.lock().unwrap()
            );
        };
        Server {
            child,
            url,
            stderr,
            reader: Some(reader),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// SIGTERM, then its exit status and everything it wrote on stderr.
    fn stop(mut self) -> (i32, String) {
        let status = self.terminate();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        (status, stderr)
    }

    fn terminate(&mut self) -> i32 {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("recart serve did not stop within 30 s of SIGTERM");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

/// A client that follows no redirect and reads every status as an answer.
fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_mins(1)))
        .build()
        .into()
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

fn answer(response: ureq::http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_string());
    let mut response = response;
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        location,
        body,
    }
}

fn get(url: &str) -> Answer {
    answer(client().get(url).call().unwrap())
}

fn one_click(url: &str) -> Answer {
    answer(
        client()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .send("List-Unsubscribe=One-Click")
            .unwrap(),
    )
}

fn suppressions(t: &Test) -> Vec<String> {
    t.store().dump("suppressions")
}

fn clicks(t: &Test) -> i64 {
    t.store().count("SELECT count(*) FROM clicks")
}

#[test]
fn a_one_click_post_with_a_mails_token_unsubscribes_and_a_get_does_not() {
    let t = served_shop();
    t.recart(&["run", "--now", NOW]).expect_success();
    let unsubscribe = list_unsubscribe(&t, "C-1001", "1h");
    let path = unsubscribe
        .strip_prefix(BASE)
        .unwrap_or_else(|| panic!("{unsubscribe} is not under links.base"));
    assert!(path.starts_with("/u/"), "{unsubscribe}");
    let token = path.trim_start_matches("/u/").to_string();
    let server = Server::start(&t, &["--now", NOW]);

    // A GET (a link scanner, or the person) shows the page and changes nothing.
    let page = get(&server.url(path));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("a***e@example.com"), "{}", page.body);
    assert!(!page.body.contains(ADA), "{}", page.body);
    assert!(page.body.contains("Northwind Test Shop"), "{}", page.body);
    assert!(
        page.body.contains("<form method=\"post\">"),
        "{}",
        page.body
    );
    assert!(suppressions(&t).is_empty());

    // The one-click POST suppresses; again, it is the same.
    for _ in 0..2 {
        let done = one_click(&server.url(path));
        assert_eq!(done.status, 200, "{}", done.body);
        assert!(done.body.contains("You are unsubscribed"), "{}", done.body);
    }
    let rows = suppressions(&t);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].starts_with(&format!("{ADA}|unsubscribe|")),
        "{rows:?}"
    );
    // A POST without RFC 8058's body does nothing.
    let bare = answer(client().post(&server.url(path)).send("").unwrap());
    assert_eq!(bare.status, 400);
    let page = get(&server.url(path));
    assert!(page.body.contains("You are unsubscribed"), "{}", page.body);

    let (status, log) = server.stop();
    assert_eq!(status, 0, "{log}");
    assert!(log.contains("GET /u/… 200"), "{log}");
    assert!(log.contains("POST /u/… 200"), "{log}");
    assert!(!log.contains(&token), "the token is logged:\n{log}");
    assert!(!log.contains(ADA), "the address is logged:\n{log}");

    let run = t.recart(&["run", "--now", LATER, "--json"]);
    run.expect_success();
    let decisions = run.decisions();
    let ada = for_cart(&decisions, "C-1001");
    assert_eq!(ada.len(), 1, "{ada:?}");
    assert_eq!(ada[0].outcome, "skip");
    assert_eq!(ada[0].reason.as_deref(), Some("suppressed"));
    // Grace, who did not unsubscribe, gets her next reminder.
    let grace = for_cart(&decisions, "C-1002");
    assert_eq!(grace[0].outcome, "sent", "{grace:?}");
}

#[test]
fn recover_redirects_to_the_cart_page_and_records_one_click() {
    let t = served_shop();
    t.recart(&["run", "--now", NOW]).expect_success();
    let token = recover_token(&t, "C-1001", "1h");
    let server = Server::start(&t, &["--now", NOW]);

    // Nothing of the request goes into the redirect.
    let clicked = get(&server.url(&format!("/r/{token}?next=https://evil.example/")));
    assert_eq!(clicked.status, 302, "{}", clicked.body);
    assert_eq!(
        clicked.location.as_deref(),
        Some("https://shop.example/abandoned-cart/C-1001")
    );
    // A HEAD (a link preview) is answered alike and not counted.
    let head = answer(
        client()
            .head(server.url(&format!("/r/{token}")))
            .call()
            .unwrap(),
    );
    assert_eq!(head.status, 302);
    assert_eq!(
        t.store()
            .dump("clicks")
            .iter()
            .map(|row| row.split('|').skip(1).take(3).collect::<Vec<_>>().join("|"))
            .collect::<Vec<_>>(),
        ["C-1001|1h|NULL"]
    );
    let health = get(&server.url("/healthz"));
    assert_eq!(health.status, 200);

    let (status, log) = server.stop();
    assert_eq!(status, 0, "{log}");
    assert!(log.contains("GET /r/… 302"), "{log}");
    assert!(log.contains("GET /healthz 200"), "{log}");
    assert!(!log.contains(&token), "the token is logged:\n{log}");
}

#[test]
fn forged_expired_and_other_secret_tokens_are_refused_and_nothing_is_recorded() {
    let t = served_shop();
    t.recart(&["run", "--now", NOW]).expect_success();
    let recover = recover_token(&t, "C-1001", "1h");
    let unsubscribe = list_unsubscribe(&t, "C-1001", "1h")
        .trim_start_matches(&format!("{BASE}/u/"))
        .to_string();
    let now = chrono::DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .timestamp();
    let server = Server::start(&t, &["--now", NOW]);

    let (payload, mac) = recover.split_once('.').unwrap();
    let other_cart = URL_SAFE_NO_PAD.encode(format!("v2\nC-1002\n1h\n{}", now + 86_400));
    let refused = [
        // Forged: another cart under the same signature; a changed signature.
        (format!("{other_cart}.{mac}"), 403),
        (
            format!(
                "{payload}.{}{}",
                if mac.starts_with('A') { 'B' } else { 'A' },
                &mac[1..]
            ),
            403,
        ),
        // Another secret.
        (
            sign("not-the-shops-key", "C-1001", ADA, "1h", now + 86_400),
            403,
        ),
        // The shop's key, expired an hour ago.
        (sign(SECRET, "C-1001", ADA, "1h", now - 3600), 410),
        // The shop's key, but someone else's address.
        (sign(SECRET, "C-1001", GRACE, "1h", now + 86_400), 403),
        // An unsubscribe token is not a recovery token.
        (unsubscribe.clone(), 403),
        ("garbage".to_string(), 403),
    ];
    for (token, status) in &refused {
        let page = get(&server.url(&format!("/r/{token}")));
        assert_eq!(page.status, *status, "/r/{token}: {}", page.body);
        assert!(
            page.body
                .contains("href=\"https:&#x2f;&#x2f;shop.example&#x2f;\""),
            "no way to the shop: {}",
            page.body
        );
    }
    for (token, status) in [
        (sign(SECRET, "C-1001", ADA, "unsubscribe", now - 1), 410),
        (
            sign(
                "not-the-shops-key",
                "C-1001",
                ADA,
                "unsubscribe",
                now + 86_400,
            ),
            403,
        ),
        // A recovery token does not unsubscribe.
        (recover.clone(), 403),
    ] {
        let page = get(&server.url(&format!("/u/{token}")));
        assert_eq!(page.status, status, "GET /u/{token}: {}", page.body);
        let page = one_click(&server.url(&format!("/u/{token}")));
        assert_eq!(page.status, status, "POST /u/{token}: {}", page.body);
    }
    assert_eq!(clicks(&t), 0);
    assert!(suppressions(&t).is_empty());
    drop(server);

    // The same mail's tokens, served at a time after they expired (the
    // recovery link lives 14 days): refused, nothing recorded.
    let server = Server::start(&t, &["--now", "2026-12-21T12:00:00Z"]);
    let page = get(&server.url(&format!("/r/{recover}")));
    assert_eq!(page.status, 410, "{}", page.body);
    assert!(page.body.contains("expired"), "{}", page.body);
    assert_eq!(
        one_click(&server.url(&format!("/u/{unsubscribe}"))).status,
        200
    );
    drop(server);
    let server = Server::start(&t, &["--now", "2028-01-01T00:00:00Z"]);
    assert_eq!(get(&server.url(&format!("/u/{unsubscribe}"))).status, 410);
    assert_eq!(clicks(&t), 0);
}

#[test]
fn the_unsubscribe_page_comes_from_the_templates_per_locale() {
    let t = served_shop().file(
        "templates/unsubscribe.en-GB.html",
        "<p>Cheerio {{ email }} from {{ shop.name }}{% if done %}, done{% endif %}</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"></form>",
    );
    t.recart(&["run", "--now", NOW]).expect_success();
    let ada = list_unsubscribe(&t, "C-1001", "1h").replace(BASE, "");
    let grace = list_unsubscribe(&t, "C-1002", "1h").replace(BASE, "");
    let server = Server::start(&t, &["--now", NOW]);
    // Ada's cart is en-GB; Grace's en-US gets the built-in page.
    let page = get(&server.url(&ada));
    assert!(
        page.body
            .starts_with("<p>Cheerio a***e@example.com from Northwind Test Shop</p>"),
        "{}",
        page.body
    );
    assert!(one_click(&server.url(&ada)).body.contains(", done"));
    let page = get(&server.url(&grace));
    assert!(page.body.contains("Unsubscribe?"), "{}", page.body);
    assert!(page.body.contains("g***r@example.com"), "{}", page.body);
}

#[test]
fn serve_needs_a_cart_page_and_names_the_key() {
    let toml = Config::new(Transport::File).to_toml();
    let t = shop(&Config::new(Transport::File)).file("recart.toml", toml);
    t.recart(&["serve", "--listen", "127.0.0.1:0"])
        .expect_status(2)
        .expect_stderr_contains("links.cart: is required by recart serve");
    t.recart(&["serve", "--listen", "not an address"])
        .expect_status(2);
}

/// A run imports and sends 400 reminders while the server answers clicks
/// and unsubscribes on the same store: neither sees `database is locked`.
#[test]
fn serve_and_a_run_share_one_store() {
    let t = served_shop();
    t.recart(&["run", "--now", NOW]).expect_success();
    let recover = recover_token(&t, "C-1001", "1h");
    let unsubscribe = list_unsubscribe(&t, "C-1002", "1h").replace(BASE, "");
    t.write("carts.csv", many_carts(400));
    let server = Server::start(&t, &["--now", NOW]);
    let stop = Arc::new(AtomicBool::new(false));
    let (redirected, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clickers: Vec<_> = (0..2)
        .map(|index| {
            let (stop, redirected, failed) = (stop.clone(), redirected.clone(), failed.clone());
            let (click, unsub) = (
                server.url(&format!("/r/{recover}")),
                server.url(&unsubscribe),
            );
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_mins(2);
                // Bounded in count and time.
                for round in 0..5_000 {
                    if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                        break;
                    }
                    let status = if index == 1 && round % 10 == 0 {
                        one_click(&unsub).status
                    } else {
                        let status = get(&click).status;
                        if status == 302 {
                            redirected.fetch_add(1, Ordering::SeqCst);
                        }
                        status
                    };
                    if !matches!(status, 200 | 302) {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let later = "2026-11-21T12:05:00Z";
    let run = t.recart(&["run", "--now", later]);
    let during = redirected.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    for clicker in clickers {
        clicker.join().unwrap();
    }
    run.expect_success();
    assert!(!run.stderr.contains("locked"), "{}", run.stderr);
    assert_eq!(
        t.store()
            .count("SELECT count(*) FROM sends WHERE state = 'sent'"),
        402
    );
    eprintln!("{during} clicks answered while the run sent 400 mails");
    assert!(during > 0, "no click was answered while the run ran");
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert_eq!(
        clicks(&t),
        i64::try_from(redirected.load(Ordering::SeqCst)).unwrap()
    );
    let (status, log) = server.stop();
    assert_eq!(status, 0, "{log}");
    assert!(!log.contains("locked"), "{log}");
    assert!(!log.contains("error"), "{log}");
}
