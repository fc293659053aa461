//! The mails the built binary writes, parsed with a real MIME parser:
//! starter templates, hostile cart data, locales, signed links, one-click
//! unsubscribe and `suppress import` of tokens.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mail_parser::{MessageParser, MimeHeaders};

const NOW: &str = "2026-11-21T12:00:00Z";

fn recart(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recart"))
        .current_dir(dir)
        .env_remove("RECART_CONFIG")
        .env_remove("RECART_SECRET")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `recart init` in a temp dir, with the sample carts replaced by `csv`
/// and the config edited by `edit` (without init's `not_before`: the
/// carts are dated before the time of init).
fn shop(csv: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(&recart(dir.path(), &["init", "."]));
    std::fs::write(dir.path().join("carts.csv"), csv).unwrap();
    let config = std::fs::read_to_string(dir.path().join("recart.toml")).unwrap();
    let config: String = config
        .lines()
        .filter(|line| !line.starts_with("not_before = "))
        .flat_map(|line| [line, "\n"])
        .collect();
    std::fs::write(dir.path().join("recart.toml"), edit(config)).unwrap();
    dir
}

const HEADER: &str = "cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url\n";

fn row(cart: &str, email: &str, name: &str, locale: &str, currency: &str, item: &str) -> String {
    format!(
        "{cart},{email},{name},{locale},{currency},open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,{item}\n"
    )
}

fn mails(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut mails: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    mails.sort();
    mails
}

fn raw_header(message: &mail_parser::Message<'_>, name: &str) -> String {
    message
        .header_raw(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The HTML part with character references to non-ASCII characters (the
/// HTML goes as 7bit) and `&nbsp;` written as the characters.
fn html_of(message: &mail_parser::Message<'_>) -> String {
    let html = message.body_html(0).unwrap().replace("&nbsp;", "\u{a0}");
    let mut out = String::with_capacity(html.len());
    let mut rest = html.as_str();
    while let Some(at) = rest.find("&#") {
        out.push_str(&rest[..at]);
        let reference = &rest[at + 2..];
        let decoded = reference.split_once(';').and_then(|(number, tail)| {
            let c = char::from_u32(number.parse().ok()?)?;
            (!c.is_ascii()).then_some((c, tail))
        });
        if let Some((c, tail)) = decoded {
            out.push(c);
            rest = tail;
        } else {
            out.push_str("&#");
            rest = reference;
        }
    }
    out.push_str(rest);
    out
}

fn token_in(url: &str, prefix: &str) -> String {
    let rest = url.split(prefix).nth(1).expect("the link");
    rest.split(['?', '>', '"', '#', '&'])
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn starter_mails_parse_with_every_header_and_part() {
    let csv = format!(
        "{HEADER}{}{}{}",
        row(
            "C-1",
            "zoe@example.com",
            "Zoë",
            "en",
            "EUR",
            "TENT,Ridge Tent 2P,tents,1,1234.50,https://cdn.shop.example/t.jpg,https://shop.example/p/t"
        ),
        row(
            "C-2",
            "jo@example.com",
            "",
            "en-US",
            "USD",
            "MUG,Enamel Mug,accessories,2,12.50,,"
        ),
        row(
            "C-3",
            "lars@example.com",
            "Lars",
            "sv-SE",
            "SEK",
            "BOOT,Kängor,footwear,1,1234.50,,"
        ),
    );
    let dir = shop(&csv, |config| {
        config
            .replace(
                "from = \"Demo Shop <hello@shop.example>\"",
                "from = \"Demo Shop <hello@shop.example>\"\nreply_to = \"Hjälp <help@shop.example>\"",
            )
            .replace(
                "secret_env = \"RECART_SECRET\"",
                "secret_env = \"RECART_SECRET\"\nunsubscribe_mailto = \"mailto:unsubscribe@shop.example?subject=unsubscribe%20{token}\"\nutm = { utm_source = \"recart\", utm_medium = \"email\" }",
            )
    });
    ok(&recart(dir.path(), &["check"]));
    ok(&recart(dir.path(), &["run", "--now", NOW]));
    let mails = mails(dir.path());
    assert_eq!(mails.len(), 3);
    for (path, bytes) in &mails {
        let name = path.display();
        let message = MessageParser::default().parse(bytes).unwrap();
        assert!(
            bytes.is_ascii(),
            "{name}: raw 8-bit bytes (should be encoded)"
        );
        let subject = message.subject().unwrap();
        assert!(subject.contains("left something in your cart"), "{name}");
        assert_eq!(
            message.from().unwrap().first().unwrap().address.as_deref(),
            Some("hello@shop.example")
        );
        let reply_to = message.reply_to().unwrap().first().unwrap();
        assert_eq!(reply_to.name.as_deref(), Some("Hjälp"));
        assert!(message.message_id().unwrap().ends_with("@shop.example"));
        assert!(message.date().is_some());
        let root = message.root_part().content_type().unwrap();
        assert_eq!(
            (root.ctype(), root.subtype()),
            ("multipart", Some("alternative"))
        );
        assert_eq!(message.text_body_count(), 1, "{name}");
        assert_eq!(message.html_body_count(), 1, "{name}");

        let unsubscribe = raw_header(&message, "List-Unsubscribe");
        assert!(
            unsubscribe.starts_with("<https://shop.example/unsubscribe/"),
            "{unsubscribe}"
        );
        assert!(
            unsubscribe.contains(", <mailto:unsubscribe@shop.example?subject=unsubscribe%20"),
            "{unsubscribe}"
        );
        assert_eq!(
            raw_header(&message, "List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );

        let html = html_of(&message);
        let text = message.body_text(0).unwrap();
        // Inlined CSS, responsive rules kept, the preheader hidden first.
        assert!(html.contains("<td class=\"header\" style=\""), "{name}");
        assert!(html.contains("@media"), "{name}");
        assert!(html.contains("display:none"), "{name}");
        // The recovery link carries the utm parameters, in both parts.
        for body in [html.as_str(), &*text] {
            assert!(
                body.contains("?utm_medium=email&utm_source=recart")
                    || body.contains("?utm_medium=email&amp;utm_source=recart"),
                "{name}: {body}"
            );
        }
        // No address in any link.
        let to = message
            .to()
            .unwrap()
            .first()
            .unwrap()
            .address
            .clone()
            .unwrap();
        // (The whole address, plain or percent-encoded: a short local part
        // alone may turn up by chance inside the random-keyed MAC.)
        let encoded = to.replace('@', "%40");
        for link in html.split("href=\"").skip(1) {
            let link = link.split('"').next().unwrap();
            assert!(!link.contains(&*to) && !link.contains(&encoded), "{link}");
        }
        let token = token_in(&html, "/cart/recover/");
        let verified = ok(&recart(
            dir.path(),
            &["token", "verify", &token, "--now", NOW],
        ));
        assert!(verified.contains(&format!("email: {to}")), "{verified}");
        assert!(verified.contains("step: 1h"), "{verified}");
    }

    // File names start with the cart id, lower-cased, and a dot.
    let by_cart = |cart: &str| {
        let prefix = format!("{}.", cart.to_ascii_lowercase());
        let (_, bytes) = mails
            .iter()
            .find(|(path, _)| {
                path.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .unwrap();
        MessageParser::default().parse(bytes).unwrap().into_owned()
    };
    // Money per locale; a name that needs RFC 2047.
    let zoe = by_cart("C-1");
    assert_eq!(
        zoe.to().unwrap().first().unwrap().name.as_deref(),
        Some("Zoë")
    );
    assert!(zoe.subject().unwrap().starts_with("Zoë, "));
    assert!(html_of(&zoe).contains("€1,234.50"));
    assert!(zoe.body_text(0).unwrap().contains("€1,234.50"));
    assert!(by_cart("C-2").body_text(0).unwrap().contains("$25.00"));
    assert!(
        by_cart("C-3")
            .body_text(0)
            .unwrap()
            .contains("1\u{a0}234,50\u{a0}kr")
    );
}

#[test]
fn hostile_cart_data_is_escaped_and_cannot_inject_headers() {
    let csv = format!(
        "{HEADER}{}{}",
        row(
            "C-1",
            "ann@example.com",
            "\"Ann\r\nBcc: x@evil.example\"",
            "en",
            "EUR",
            "S1,\"<script>alert(1)</script>\",x,1,10.00,,"
        ),
        "C-1,,,,,,,,,S2,\"\"\"><img src=x onerror=alert(2)>\",x,1,5.00,\"https://x\"\" onerror=\"\"alert(3)\",\"javascript:alert(4)\"\n",
    );
    let dir = shop(&csv, |config| config);
    ok(&recart(dir.path(), &["run", "--now", NOW]));
    let mails = mails(dir.path());
    assert_eq!(mails.len(), 1);
    let (_, bytes) = &mails[0];
    let raw = String::from_utf8(bytes.clone()).unwrap();
    let headers = &raw[..raw.find("\r\n\r\n").unwrap()];
    assert!(
        !headers
            .split("\r\n")
            .any(|line| line.to_ascii_lowercase().starts_with("bcc")),
        "{headers}"
    );
    let message = MessageParser::default().parse(bytes).unwrap();
    assert!(message.bcc().is_none());
    assert_eq!(message.to().unwrap().iter().count(), 1);
    assert!(!message.subject().unwrap().contains('\n'));
    let html = message.body_html(0).unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
    let (tags, attributes) = markup(&html);
    assert!(!tags.iter().any(|tag| tag == "script"), "{tags:?}");
    assert!(!attributes.iter().any(|name| name == "onerror"), "{html}");
    assert!(!html.to_ascii_lowercase().contains("javascript:"), "{html}");
    // Only the one real product image (S1 has none).
    assert_eq!(tags.iter().filter(|tag| *tag == "img").count(), 1, "{html}");
}

/// The element and attribute names of serialized HTML, as a browser's
/// tokenizer finds them (quoted attribute values skipped).
fn markup(html: &str) -> (Vec<String>, Vec<String>) {
    let (mut tags, mut attributes) = (Vec::new(), Vec::new());
    let mut chars = html.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '<' {
            continue;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '!' || c == '/' {
                name.push(c.to_ascii_lowercase());
                chars.next();
            } else {
                break;
            }
        }
        tags.push(name);
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                '>' => break,
                '"' | '\'' => {
                    for d in chars.by_ref() {
                        if d == c {
                            break;
                        }
                    }
                }
                '=' => attributes.push(std::mem::take(&mut word).to_ascii_lowercase()),
                c if c.is_whitespace() => word.clear(),
                c => word.push(c),
            }
        }
    }
    (tags, attributes)
}

#[test]
fn locale_templates_fall_back_to_the_language() {
    let csv = format!(
        "{HEADER}{}{}",
        row(
            "C-1",
            "lena@example.com",
            "Lena",
            "de-AT",
            "EUR",
            "S1,Zelt,x,1,1234.50,,"
        ),
        row(
            "C-2",
            "ann@example.com",
            "Ann",
            "fr-FR",
            "EUR",
            "S1,Tent,x,1,1234.50,,"
        ),
    );
    let dir = shop(&csv, |config| config);
    let templates = dir.path().join("templates");
    std::fs::write(
        templates.join("reminder.de.subject"),
        "{{ customer.first_name }}, Ihr Warenkorb wartet",
    )
    .unwrap();
    std::fs::write(
        templates.join("reminder.de.html"),
        "<html><body><p>Summe: {{ cart.total }}</p><a href=\"{{ links.recover }}\">Zum Warenkorb</a></body></html>",
    )
    .unwrap();
    let check = ok(&recart(dir.path(), &["check"]));
    assert!(check.contains("template reminder.de renders"), "{check}");
    ok(&recart(dir.path(), &["run", "--now", NOW]));
    let mails = mails(dir.path());
    let parse = |index: usize| MessageParser::default().parse(&mails[index].1).unwrap();
    let lena = parse(0);
    assert_eq!(lena.subject(), Some("Lena, Ihr Warenkorb wartet"));
    assert!(html_of(&lena).contains("1.234,50\u{a0}€"));
    // No .de.txt: the text part is derived from the German HTML.
    let text = lena.body_text(0).unwrap();
    assert!(text.contains("Summe: 1.234,50"), "{text}");
    assert!(text.contains("Zum Warenkorb"), "{text}");
    let ann = parse(1);
    assert_eq!(ann.subject(), Some("Ann, you left something in your cart"));
    let html = html_of(&ann);
    assert!(html.contains("1\u{a0}234,50\u{a0}€"), "{html}");
}

#[test]
fn token_verify_and_suppress_import_of_unsubscribe_tokens() {
    let csv = format!(
        "{HEADER}{}{}",
        row(
            "C-1",
            "Ann@Example.com",
            "Ann",
            "en",
            "EUR",
            "S1,Tent,x,1,10.00,,"
        ),
        row(
            "C-2",
            "bob@example.com",
            "Bob",
            "en",
            "EUR",
            "S1,Tent,x,1,10.00,,"
        ),
    );
    let dir = shop(&csv, |config| config);
    ok(&recart(dir.path(), &["run", "--now", NOW]));
    let mails = mails(dir.path());
    let header = |index: usize| {
        let message = MessageParser::default().parse(&mails[index].1).unwrap();
        raw_header(&message, "List-Unsubscribe")
    };
    let ann = token_in(&header(0), "/unsubscribe/");
    let bob_url = header(1)
        .trim_matches(['<', '>'])
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let bob = token_in(&bob_url, "/unsubscribe/");

    let verified = ok(&recart(
        dir.path(),
        &["token", "verify", &ann, "--now", NOW],
    ));
    assert!(verified.contains("cart_id: C-1"), "{verified}");
    assert!(verified.contains("step: unsubscribe"), "{verified}");
    // Tampered, wrong address, expired, malformed: exit 1, saying why.
    // Change the MAC's first character: every bit of it counts (the last
    // character of unpadded base64 has unused bits).
    let dot = ann.find('.').expect("payload.mac");
    let mut tampered = ann.clone();
    let first = ann.as_bytes()[dot + 1];
    tampered.replace_range(dot + 1..dot + 2, if first == b'A' { "B" } else { "A" });
    for (args, why) in [
        (vec!["token", "verify", &tampered], "forged"),
        (
            vec!["token", "verify", &ann, "--email", "eve@example.com"],
            "forged",
        ),
        (
            vec!["token", "verify", &ann, "--now", "2030-01-01T00:00:00Z"],
            "expired",
        ),
        (vec!["token", "verify", "not-a-token"], "malformed"),
    ] {
        let output = recart(dir.path(), &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }

    // What a shop's endpoint collected: a bare token, a full URL, an
    // address, a forged token and a recovery token.
    let recover = {
        let message = MessageParser::default().parse(&mails[0].1).unwrap();
        token_in(&message.body_html(0).unwrap(), "/cart/recover/")
    };
    std::fs::write(
        dir.path().join("unsubscribed.txt"),
        format!("{ann}\n{bob_url}\ncarol@example.com\n{tampered}\n{recover}\n"),
    )
    .unwrap();
    let output = recart(dir.path(), &["suppress", "import", "unsubscribed.txt"]);
    assert_eq!(output.status.code(), Some(3), "partial: two bad lines");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("3 addresses read (2 from tokens), 3 added"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsubscribed.txt:4"), "{stderr}");
    assert!(stderr.contains("forged"), "{stderr}");
    assert!(stderr.contains("unsubscribed.txt:5"), "{stderr}");
    assert!(stderr.contains("not an unsubscribe token"), "{stderr}");
    let list = ok(&recart(dir.path(), &["suppress", "list"]));
    for email in ["ann@example.com", "bob@example.com", "carol@example.com"] {
        assert!(list.contains(email), "{list}");
    }
    assert!(!bob.is_empty());
}
