//! The MIME message of one reminder: multipart/alternative text and HTML
//! bodies (7bit where they can be, else quoted-printable or base64),
//! `List-Unsubscribe` headers and a stable Message-ID.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::error::{Error, Result};
use crate::render::{Links, Rendered};

use super::Outgoing;
use super::dkim::DkimKey;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A stable Message-ID per (cart, step): a mail re-sent after an unknown
/// outcome carries the same id, so receivers can tell it is the same one.
pub fn message_id(cart_id: &str, step: &str, from: &Mailbox) -> String {
    let digest = crate::token::send_digest(cart_id, step);
    let domain = from.email.domain();
    // Written in place: one allocation, not one per byte.
    let mut id = String::with_capacity(48 + domain.len());
    id.push('<');
    let mut hex = [0; 32];
    hex::encode_to_slice(digest, &mut hex).expect("32 hex digits for 16 bytes");
    id.push_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
    id.push_str(".recart@");
    id.push_str(domain);
    id.push('>');
    id
}

/// `List-Unsubscribe` (RFC 2369): the unsubscribe URLs, each in angle
/// brackets, HTTPS first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUnsubscribe(pub Vec<String>);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(text: &str) -> std::result::Result<Self, BoxError> {
        let urls: Vec<String> = text
            .split(',')
            .map(|part| {
                part.trim()
                    .strip_prefix('<')
                    .and_then(|rest| rest.strip_suffix('>'))
                    .map(str::to_string)
                    .ok_or_else(|| format!("{part:?} is not <URL>"))
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(ListUnsubscribe(urls))
    }

    fn display(&self) -> HeaderValue {
        let value = self
            .0
            .iter()
            .map(|url| format!("<{url}>"))
            .collect::<Vec<_>>()
            .join(", ");
        HeaderValue::new(Self::name(), value)
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): a POST
/// to the HTTPS URL unsubscribes, without a page to click through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(text: &str) -> std::result::Result<Self, BoxError> {
        if text.trim() == "List-Unsubscribe=One-Click" {
            Ok(ListUnsubscribePost)
        } else {
            Err(format!("{text:?} is not List-Unsubscribe=One-Click").into())
        }
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_string())
    }
}

/// Everything one mail is made of.
#[derive(Debug, Clone)]
pub struct Letter<'a> {
    pub from: &'a Mailbox,
    pub reply_to: Option<&'a Mailbox>,
    pub to_name: &'a str,
    pub to_email: &'a str,
    pub cart_id: &'a str,
    pub step: &'a str,
    pub rendered: &'a Rendered,
    pub links: &'a Links,
    pub date: DateTime<Utc>,
    /// The envelope sender (`transport.return_path`, VERP), if not `from`.
    pub return_path: Option<lettre::Address>,
    /// The key to sign with (`[transport.dkim]`).
    pub dkim: Option<&'a DkimKey>,
}

/// A display name from cart data: controls (CR, LF, ...) and runs of white
/// space become one space, so nothing can break out of the header.
fn display_name(name: &str) -> Option<String> {
    let name = name
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

/// Whether header text would be taken for RFC 2047 encoded words (`=?`
/// starts one). lettre writes ASCII words as they are, so a first name
/// such as `=?utf-8?q?Ann=0D=0ABcc:_x@evil.example?=` would be decoded
/// by mail clients into a fake header line; such text is encoded whole.
fn looks_encoded(text: &str) -> bool {
    memchr::memmem::find(text.as_bytes(), b"=?").is_some()
}

/// The header `name: <text as RFC 2047 encoded words> <tail>`, folded, so
/// that clients show the text exactly as typed.
fn encoded_header(name: &'static str, text: &str, tail: Option<&str>) -> HeaderValue {
    use email_encoding::headers::{rfc2047, writer::EmailWriter};
    use std::fmt::Write as _;
    let mut encoded = String::with_capacity(text.len() * 2);
    {
        let mut writer = EmailWriter::new(&mut encoded, name.len() + ": ".len(), 0, false);
        let written = rfc2047::encode(text, &mut writer).and_then(|()| {
            let Some(tail) = tail else { return Ok(()) };
            writer.space();
            writer.write_str(tail)
        });
        written.expect("writing to a String");
    }
    let raw = match tail {
        Some(tail) => format!("{text} {tail}"),
        None => text.to_string(),
    };
    HeaderValue::dangerous_new_pre_encoded(HeaderName::new_from_ascii_str(name), raw, encoded)
}

/// Builds the MIME message: multipart/alternative with text and HTML,
/// `List-Unsubscribe` with one-click POST, a stable Message-ID. lettre
/// encodes non-ASCII subjects and names (RFC 2047) and the bodies
/// (quoted-printable or base64); text that looks encoded already is
/// encoded here (`looks_encoded`). The recipient's domain goes as IDNA
/// (`model::mail_address`); a local part that is not ASCII goes as it is
/// (RFC 6532), for a server that offers SMTPUTF8.
pub fn build(letter: &Letter<'_>) -> Result<Outgoing> {
    let address = to_address(letter)?;
    // Given, so that lettre does not parse it back out of the From and To
    // headers it has just written: the same two addresses.
    let envelope = Envelope::new(Some(sender(letter)), vec![address.clone()])
        .map_err(|error| Error::Transport(format!("cannot address the mail: {error}")))?;
    let name = display_name(letter.to_name);
    let message_id = message_id(letter.cart_id, letter.step, letter.from);
    let mut unsubscribe = vec![letter.links.unsubscribe.clone()];
    unsubscribe.extend(letter.links.unsubscribe_mailto.clone());
    let mut builder = Message::builder().from(letter.from.clone());
    builder = match name {
        Some(name) if looks_encoded(&name) => {
            builder.raw_header(encoded_header("To", &name, Some(&format!("<{address}>"))))
        }
        name => builder.to(Mailbox::new(name, address)),
    };
    let subject = &letter.rendered.subject;
    builder = if looks_encoded(subject) {
        builder.raw_header(encoded_header("Subject", subject, None))
    } else {
        builder.subject(subject.clone())
    };
    let mut builder = builder
        .message_id(Some(message_id.clone()))
        .date(SystemTime::from(letter.date))
        .header(ListUnsubscribe(unsubscribe))
        .header(ListUnsubscribePost)
        .envelope(envelope);
    if let Some(reply_to) = letter.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    let mut message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(text_body(&letter.rendered.text)))
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html_body(&letter.rendered.html)),
                ),
        )
        .map_err(|error| {
            Error::Transport(format!(
                "cannot build the mail to {}: {error}",
                letter.to_email
            ))
        })?;
    // Signed last, over the headers and body as they will be sent.
    if let Some(key) = letter.dkim {
        key.sign(&mut message);
    }
    Ok(Outgoing {
        cart_id: letter.cart_id.to_string(),
        step: letter.step.to_string(),
        message_id,
        envelope: message.envelope().clone(),
        bytes: message.formatted(),
    })
}

/// The envelope sender (`MAIL FROM`): the return path, else `from`.
fn sender(letter: &Letter<'_>) -> lettre::Address {
    letter
        .return_path
        .clone()
        .unwrap_or_else(|| letter.from.email.clone())
}

/// What a dry run needs of a mail: the checks `build` makes, without the
/// MIME message nothing would carry (`bytes` is empty).
pub fn check(letter: &Letter<'_>) -> Result<Outgoing> {
    let to = to_address(letter)?;
    let envelope = Envelope::new(Some(sender(letter)), vec![to])
        .map_err(|error| Error::Transport(format!("cannot address the mail: {error}")))?;
    Ok(Outgoing {
        cart_id: letter.cart_id.to_string(),
        step: letter.step.to_string(),
        message_id: message_id(letter.cart_id, letter.step, letter.from),
        envelope,
        bytes: Vec::new(),
    })
}

/// The recipient as SMTP sends it, by the address rule: one outside it
/// fails this mail only (`Error::Address`).
fn to_address(letter: &Letter<'_>) -> Result<lettre::Address> {
    crate::model::mail_address(letter.to_email).map_err(Error::Address)
}

/// The HTML part, as 7bit where it can be: other characters written as
/// character references, CRLF line ends, no line over 998 octets (RFC
/// 2045's 7bit; lettre itself would only take lines under 76 and so
/// quoted-printable-encodes nearly every HTML mail, which was most of the
/// cost of building one). Where that cannot be done — text that is not
/// ASCII inside `<style>` or `<script>`, where references are not decoded,
/// a bare CR or NUL, a very long line — lettre chooses the encoding.
fn html_body(html: &str) -> Body {
    match seven_bit_html(html) {
        Some(bytes) => Body::dangerous_pre_encoded(bytes, ContentTransferEncoding::SevenBit),
        None => Body::new(html.to_string()),
    }
}

/// The text part: as 7bit when it is ASCII with lines up to 998 octets
/// (a text with a long link would otherwise be quoted-printable); else
/// quoted-printable or base64, as lettre would choose and encode it.
fn text_body(text: &str) -> Body {
    // For ASCII, the HTML conversion only makes line ends CRLF.
    if let Some(bytes) = text.is_ascii().then(|| seven_bit_html(text)).flatten() {
        return Body::dangerous_pre_encoded(bytes, ContentTransferEncoding::SevenBit);
    }
    // lettre's rule: quoted-printable unless over a third of the bytes need
    // escaping (then base64, which lettre does).
    let escaped = text
        .bytes()
        .filter(|byte| !matches!(byte, b'\t' | b' '..=b'~'))
        .count();
    if escaped > text.len() / 3 {
        return Body::new(text.to_string());
    }
    Body::dangerous_pre_encoded(
        quoted_printable_lines(text),
        ContentTransferEncoding::QuotedPrintable,
    )
}

/// Longest encoded line quoted-printable allows (RFC 2045 6.7).
const QP_LINE: usize = 76;

/// Quoted-printable, the same bytes as lettre's (line ends made CRLF,
/// then the whole text run through the `quoted_printable` crate, which
/// goes byte by byte: 7% of a run's CPU), but a line that fits in 76
/// octets once its bytes are escaped, and does not end in white space —
/// nearly every line of a reminder, a `€` in it or not — is escaped here,
/// a run of plain bytes at a time: it needs no soft line break, so there
/// is nothing else to do. A longer line of printable ASCII alone (a link)
/// gets soft breaks at fixed places. Other lines go to the crate.
fn quoted_printable_lines(text: &str) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // What quoted-printable escapes (the crate's rule).
    let escaped = |byte: u8| !matches!(byte, b'\t' | b' '..=b'~') || byte == b'=';
    let mut out = Vec::with_capacity(text.len() + text.len() / 8);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        // A CR before the LF is the line end; lettre keeps CRLF as is.
        let line = if last {
            line
        } else {
            line.strip_suffix('\r').unwrap_or(line)
        };
        // Escaped here in runs; if the line turns out too long for that,
        // it is taken back and goes to the crate.
        let start = out.len();
        let mut rest = line.as_bytes();
        while let Some(at) = rest.iter().position(|&byte| escaped(byte)) {
            let byte = rest[at];
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(&[
                b'=',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
            rest = &rest[at + 1..];
        }
        out.extend_from_slice(rest);
        let plain = out.len() - start == line.len();
        let white_end = line.ends_with([' ', '\t']);
        if out.len() - start > QP_LINE || white_end {
            out.truncate(start);
            if plain && !white_end {
                // Printable ASCII only, too long for one line (a link):
                // a soft break after every 75 octets, the last piece up to
                // 76, as the crate breaks it.
                let mut rest = line.as_bytes();
                while rest.len() > QP_LINE {
                    out.extend_from_slice(&rest[..QP_LINE - 1]);
                    out.extend_from_slice(b"=\r\n");
                    rest = &rest[QP_LINE - 1..];
                }
                out.extend_from_slice(rest);
            } else {
                out.extend_from_slice(quoted_printable::encode_to_str(line).as_bytes());
            }
        }
        if !last {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// The bytes `seven_bit_html` stops at: line ends, `<`, NUL, and every
/// byte that is not ASCII (a table: checked for every byte of every mail).
static SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte: u8 = 0;
    loop {
        // `as`: lossless, and `usize::from` cannot be called in a const.
        table[byte as usize] = byte >= 0x80 || matches!(byte, b'\n' | b'\r' | b'<' | 0);
        if byte == u8::MAX {
            break table;
        }
        byte += 1;
    }
};

fn seven_bit_html(html: &str) -> Option<Vec<u8>> {
    use std::io::Write as _;
    const MAX_LINE: usize = 998;
    let bytes = html.as_bytes();
    let mut out = Vec::with_capacity(html.len() + html.len() / 16);
    let mut line_start = 0;
    // Inside `<style>` or `<script>` until this closing tag.
    let mut raw_text_until: Option<&[u8]> = None;
    let tag_at = |at: usize, name: &[u8]| {
        bytes
            .get(at + 1..at + 1 + name.len())
            .is_some_and(|tag| tag.eq_ignore_ascii_case(name))
    };
    let mut at = 0;
    while at < bytes.len() {
        let plain = bytes[at..]
            .iter()
            .position(|&b| SPECIAL[usize::from(b)])
            .unwrap_or(bytes.len() - at);
        out.extend_from_slice(&bytes[at..at + plain]);
        at += plain;
        if out.len() - line_start > MAX_LINE {
            return None;
        }
        let Some(&byte) = bytes.get(at) else {
            break;
        };
        match byte {
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                line_start = out.len();
                at += 1;
            }
            b'\r' if bytes.get(at + 1) == Some(&b'\n') => at += 1,
            b'\r' | 0 => return None,
            b'<' => {
                match raw_text_until {
                    Some(end) if tag_at(at, end) => raw_text_until = None,
                    None if tag_at(at, b"style") => raw_text_until = Some(b"/style"),
                    None if tag_at(at, b"script") => raw_text_until = Some(b"/script"),
                    _ => {}
                }
                out.push(b'<');
                at += 1;
            }
            _ if raw_text_until.is_some() => return None,
            _ => {
                let c = html[at..].chars().next()?;
                write!(out, "&#{};", u32::from(c)).ok()?;
                at += c.len_utf8();
            }
        }
    }
    (out.len() - line_start <= MAX_LINE).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};

    fn rendered(subject: &str) -> Rendered {
        Rendered {
            subject: subject.into(),
            html: "<html><body><p>Grüße, <b>Zoë</b></p></body></html>".into(),
            text: "Grüße, Zoë".into(),
            locale: "de".into(),
        }
    }

    fn links(mailto: Option<&str>) -> Links {
        Links {
            recover: "https://shop.example/r/T1?utm_source=recart".into(),
            unsubscribe: "https://shop.example/u/T2".into(),
            unsubscribe_mailto: mailto.map(str::to_string),
        }
    }

    fn letter<'a>(
        from: &'a Mailbox,
        reply_to: Option<&'a Mailbox>,
        to_name: &'a str,
        rendered: &'a Rendered,
        links: &'a Links,
    ) -> Letter<'a> {
        Letter {
            from,
            reply_to,
            to_name,
            to_email: "zoe@example.com",
            cart_id: "C1",
            step: "1h",
            rendered,
            links,
            date: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            return_path: None,
            dkim: None,
        }
    }

    fn header(message: &mail_parser::Message<'_>, name: &str) -> String {
        message
            .header_raw(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_reminder_is_multipart_alternative_with_encoded_headers() {
        let from: Mailbox = "Grün & Co <hello@shop.example>".parse().unwrap();
        let reply_to: Mailbox = "Kundendienst <help@shop.example>".parse().unwrap();
        let rendered = rendered("Zoë, Ihr Warenkorb wartet – 1.234,50\u{a0}€ 🛒");
        let links = links(Some("mailto:unsub@shop.example?subject=unsubscribe%20T2"));
        let mail = build(&letter(&from, Some(&reply_to), "Zoë", &rendered, &links)).unwrap();
        let raw = String::from_utf8(mail.bytes.clone()).unwrap();
        assert!(raw.is_ascii(), "8-bit data in the raw message:\n{raw}");
        for line in raw.split("\r\n") {
            assert!(line.len() <= 998, "a line over 998 octets");
        }

        let message = MessageParser::default().parse(&mail.bytes).unwrap();
        assert_eq!(message.subject(), Some(rendered.subject.as_str()));
        let from = message.from().unwrap().first().unwrap();
        assert_eq!(from.name.as_deref(), Some("Grün & Co"));
        assert_eq!(from.address.as_deref(), Some("hello@shop.example"));
        let to = message.to().unwrap().first().unwrap();
        assert_eq!(to.name.as_deref(), Some("Zoë"));
        assert_eq!(to.address.as_deref(), Some("zoe@example.com"));
        let reply = message.reply_to().unwrap().first().unwrap();
        assert_eq!(reply.address.as_deref(), Some("help@shop.example"));
        assert_eq!(
            message.message_id(),
            Some(mail.message_id.trim_matches(['<', '>']))
        );
        assert!(mail.message_id.ends_with("@shop.example>"));
        assert_eq!(
            message.date().unwrap().to_timestamp(),
            1_795_000_000,
            "Date header"
        );

        let root = message.root_part();
        let content_type = root.content_type().unwrap();
        assert_eq!(content_type.ctype(), "multipart");
        assert_eq!(content_type.subtype(), Some("alternative"));
        assert_eq!(message.text_body_count(), 1);
        assert_eq!(message.html_body_count(), 1);
        assert_eq!(message.body_text(0).unwrap().trim(), "Grüße, Zoë");
        assert!(message.body_html(0).unwrap().contains("<b>Zo&#235;</b>"));
        let html_part = message.part(2).unwrap();
        assert_eq!(
            html_part.content_transfer_encoding(),
            Some("7bit"),
            "HTML goes as 7bit"
        );
        // text first, HTML last: clients show the last part they can.
        let text = message.part(1).unwrap().content_type().unwrap();
        assert_eq!((text.ctype(), text.subtype()), ("text", Some("plain")));
        let html = message.part(2).unwrap().content_type().unwrap();
        assert_eq!((html.ctype(), html.subtype()), ("text", Some("html")));

        assert_eq!(
            header(&message, "List-Unsubscribe"),
            "<https://shop.example/u/T2>, <mailto:unsub@shop.example?subject=unsubscribe%20T2>"
        );
        assert_eq!(
            header(&message, "List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        assert_eq!(mail.envelope.to().len(), 1);
    }

    #[test]
    fn html_is_seven_bit_unless_it_cannot_be() {
        let html = "<p>Grüße 🛒</p>\n<style>p { color: red }</style>\r\n<p>×</p>";
        assert_eq!(
            String::from_utf8(seven_bit_html(html).unwrap()).unwrap(),
            "<p>Gr&#252;&#223;e &#128722;</p>\r\n<style>p { color: red }</style>\r\n<p>&#215;</p>"
        );
        assert_eq!(
            seven_bit_html("<style>p::after { content: \"→\" }</style>"),
            None
        );
        assert_eq!(seven_bit_html("<script>'ü'</script>"), None);
        assert_eq!(seven_bit_html("a\rb"), None);
        assert_eq!(seven_bit_html(&"x".repeat(999)), None);
        assert!(seven_bit_html(&format!("{}\n{}", "x".repeat(998), "y".repeat(998))).is_some());
        // What cannot be 7bit still goes, encoded by lettre.
        let body = html_body(&"ü".repeat(600));
        assert_ne!(body.encoding(), ContentTransferEncoding::SevenBit);
        // Text: ASCII with a long line is 7bit; other characters are not.
        let link = format!("Your cart: https://shop.example/r/{}\n", "T".repeat(120));
        let body = text_body(&link);
        assert_eq!(body.encoding(), ContentTransferEncoding::SevenBit);
        assert!(body.as_ref().ends_with(b"\r\n"));
        assert_ne!(
            text_body("Grüße aus Köln").encoding(),
            ContentTransferEncoding::SevenBit
        );
    }

    #[test]
    fn the_text_part_is_encoded_as_lettre_would() {
        let texts = [
            "Grüße aus Köln\n".to_string(),
            "Total: €455.10 EUR\n\nPick up: https://shop.example/r/abc\n".to_string(),
            format!("€ {}\n", "x".repeat(200)),
            format!("{}\r\n€\r\n", "y".repeat(QP_LINE)),
            format!("{}\n€", "y".repeat(QP_LINE + 1)),
            "a = b, trailing space \nand tab\t\nx=y\n€\ttab inside\n".to_string(),
            "lone\rCR, NUL \0, emoji 🛒\n\n\n".to_string(),
            "ends with CR €\r".to_string(),
            "no line end €".to_string(),
            // Mostly not ASCII: base64.
            "Привет! Ваша корзина ждёт вас.\n".to_string(),
        ];
        let mut lengths = String::new();
        for width in 60..90 {
            lengths.push_str(&"z".repeat(width));
            lengths.push_str(" €\n");
            lengths.push_str(&"=".repeat(width / 3));
            lengths.push_str("x\n");
            lengths.push_str(&"w".repeat(width));
            lengths.push('\n');
        }
        // Random lines: letters, spaces, tabs, `=`, `€`, CRs, up to 300
        // octets (a fixed sequence, the same every run).
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut random_lines = String::new();
        for _ in 0..400 {
            let length = random() % 300;
            let spice = random() % 4;
            for _ in 0..length {
                let pick = random() % 100;
                random_lines.push(match (spice, pick) {
                    (0, _) | (_, 0..=79) => char::from(b'a' + (pick % 26) as u8),
                    (1, _) | (_, 80..=89) => ' ',
                    (2, 90..=93) => '\t',
                    (2, _) | (_, 94..=96) => '=',
                    (_, 97..=98) => '€',
                    _ => '\r',
                });
            }
            random_lines.push('\n');
        }
        // Mostly ASCII, so that lettre picks quoted-printable for it.
        random_lines.push('€');
        for text in texts.iter().chain([&lengths, &random_lines]) {
            let ours = text_body(text);
            let lettres = Body::new(text.clone());
            assert_eq!(ours.encoding(), lettres.encoding(), "{text:?}");
            assert_eq!(
                String::from_utf8_lossy(ours.as_ref()),
                String::from_utf8_lossy(lettres.as_ref()),
                "{text:?}"
            );
        }
    }

    /// Receivers and the ledger know mails by these ids: the same bytes
    /// in every release (lower-case hex of the first 16 bytes of SHA-256).
    #[test]
    fn message_ids_are_stable() {
        let from: Mailbox = "Shop <hello@shop.example>".parse().unwrap();
        assert_eq!(
            message_id("C1", "1h", &from),
            "<6000aee29d7c7feb02cd5206ad96832f.recart@shop.example>"
        );
    }

    #[test]
    fn without_mailto_and_reply_to() {
        let from: Mailbox = "hello@shop.example".parse().unwrap();
        let rendered = rendered("Your cart");
        let links = links(None);
        let mail = build(&letter(&from, None, "", &rendered, &links)).unwrap();
        let message = MessageParser::default().parse(&mail.bytes).unwrap();
        assert_eq!(
            header(&message, "List-Unsubscribe"),
            "<https://shop.example/u/T2>"
        );
        assert!(message.reply_to().is_none());
        assert_eq!(message.to().unwrap().first().unwrap().name, None);
    }

    /// Text that looks like RFC 2047 encoded words is shown as typed: the
    /// decoded Subject and To name are the typed text, no header appears.
    #[test]
    fn encoded_word_look_alikes_are_shown_as_typed() {
        let from: Mailbox = "Shop <hello@shop.example>".parse().unwrap();
        let links = links(None);
        for name in [
            "=?utf-8?q?Ann=0D=0ABcc:_x@evil.example?=",
            "=?UTF-8?B?QW5uDQpCY2M6IHhAZXZpbC5leGFtcGxl?=",
            "Ann =?iso-8859-1?q?=0ABcc:_x@evil.example?= Smith",
            "Zoë =?utf-8?q?=0D=0ABcc:_x@evil.example?=",
            "a=?b",
        ] {
            let subject = format!("{name}, your cart is waiting");
            let rendered = rendered(&subject);
            let mail = build(&letter(&from, None, name, &rendered, &links)).unwrap();
            let raw = String::from_utf8(mail.bytes.clone()).unwrap();
            let headers = &raw[..raw.find("\r\n\r\n").unwrap()];
            assert!(headers.is_ascii(), "{headers}");
            assert!(
                !headers
                    .split("\r\n")
                    .any(|line| line.to_ascii_lowercase().starts_with("bcc:")),
                "{name:?}:\n{headers}"
            );
            let message = MessageParser::default().parse(&mail.bytes).unwrap();
            assert_eq!(message.subject(), Some(subject.as_str()), "{headers}");
            assert!(message.bcc().is_none(), "{name:?}");
            let to: Vec<_> = message.to().unwrap().iter().collect();
            assert_eq!(to.len(), 1, "{headers}");
            assert_eq!(to[0].name.as_deref(), Some(name), "{headers}");
            assert_eq!(to[0].address.as_deref(), Some("zoe@example.com"));
        }
        // Text that does not look encoded is written as lettre writes it.
        let rendered = rendered("Your cart, Ann");
        let mail = build(&letter(&from, None, "Ann", &rendered, &links)).unwrap();
        let raw = String::from_utf8(mail.bytes).unwrap();
        assert!(raw.contains("\r\nSubject: Your cart, Ann\r\n"), "{raw}");
        assert!(raw.contains("\r\nTo: Ann <zoe@example.com>\r\n"), "{raw}");
    }

    /// The recipient's domain goes as IDNA in the envelope and `To:`; a
    /// local part that is not ASCII goes as it is (for SMTPUTF8); an
    /// address outside the rule fails this mail (`Error::Address`).
    #[test]
    fn international_addresses_go_with_an_idna_domain() {
        let from: Mailbox = "Shop <hello@shop.example>".parse().unwrap();
        let rendered = rendered("Your cart");
        let links = links(None);
        let mut letter = letter(&from, None, "Jörg", &rendered, &links);
        letter.to_email = "joerg@Bücher.example";
        let mail = build(&letter).unwrap();
        assert_eq!(
            mail.envelope.to()[0].to_string(),
            "joerg@xn--bcher-kva.example"
        );
        assert!(mail.bytes.is_ascii());
        let message = MessageParser::default().parse(&mail.bytes).unwrap();
        let to = message.to().unwrap().first().unwrap();
        assert_eq!(to.address.as_deref(), Some("joerg@xn--bcher-kva.example"));
        assert_eq!(to.name.as_deref(), Some("Jörg"));

        letter.to_email = "jörg@bücher.example";
        let mail = build(&letter).unwrap();
        assert_eq!(
            mail.envelope.to()[0].to_string(),
            "jörg@xn--bcher-kva.example"
        );
        let raw = String::from_utf8(mail.bytes).unwrap();
        assert!(raw.contains("<jörg@xn--bcher-kva.example>\r\n"), "{raw}");

        for bad in ["a@b", "x@ex_ample.com", "x@[127.0.0.1]"] {
            letter.to_email = bad;
            let error = build(&letter).unwrap_err();
            assert!(matches!(error, Error::Address(_)), "{bad}: {error:?}");
            assert!(error.to_string().contains(bad), "{error}");
            assert!(matches!(check(&letter), Err(Error::Address(_))), "{bad}");
        }
    }

    #[test]
    fn cart_data_cannot_inject_headers() {
        let from: Mailbox = "Shop <hello@shop.example>".parse().unwrap();
        // The renderer folds subjects; build must hold even if handed CR/LF.
        let rendered = rendered("Your cart\r\nBcc: x@evil.example");
        let links = links(None);
        for name in [
            "Ann\r\nBcc: x@evil.example",
            "Ann\nBcc: x@evil.example",
            "Ann\rBcc: x@evil.example",
            "\"Ann\" <x@evil.example>, y@evil.example",
            "Ann\u{0}\u{7}\u{1b}",
        ] {
            let mail = build(&letter(&from, None, name, &rendered, &links)).unwrap();
            let raw = String::from_utf8(mail.bytes.clone()).unwrap();
            let headers = &raw[..raw.find("\r\n\r\n").unwrap()];
            assert!(
                !headers
                    .split("\r\n")
                    .any(|line| line.to_ascii_lowercase().starts_with("bcc:")),
                "{name:?}:\n{headers}"
            );
            let message = MessageParser::default().parse(&mail.bytes).unwrap();
            assert!(message.bcc().is_none(), "{name:?}");
            let to: Vec<_> = message.to().unwrap().iter().collect();
            assert_eq!(to.len(), 1, "{name:?}:\n{headers}");
            assert_eq!(to[0].address.as_deref(), Some("zoe@example.com"));
            assert_eq!(mail.envelope.to().len(), 1);
            assert_eq!(mail.envelope.to()[0].to_string(), "zoe@example.com");
        }
    }
}
