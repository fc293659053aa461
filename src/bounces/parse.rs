//! What one message from the bounce mailbox says: a delivery-status report
//! (RFC 3464, also RFC 6533's `message/global-delivery-status`) or a
//! feedback report (RFC 5965, ARF), and what it gives to find the mail it
//! is about: return-path tokens and Message-IDs.
//!
//! mail-parser takes the MIME apart; the report parts are blocks of
//! header-like fields, read here.

use mail_parser::{MessageParser, MimeHeaders as _, PartType};

use crate::token::RETURN_PATH_TOKEN_LEN;

/// What a report says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// A delivery-status report: the gravest status among its recipients
    /// (`5.x.x` permanent, `4.x.x` transient, `2.x.x` delivered).
    Delivery {
        status: String,
        /// `Diagnostic-Code`, if given: the remote server's words.
        diagnostic: Option<String>,
    },
    /// A feedback report: its `Feedback-Type` (`abuse`, `not-spam`, …).
    Feedback { feedback_type: String },
}

impl Said {
    /// The class of a delivery status: `'5'`, `'4'` or `'2'`.
    pub fn class(&self) -> Option<char> {
        match self {
            Said::Delivery { status, .. } => status.chars().next(),
            Said::Feedback { .. } => None,
        }
    }

    /// A short description for the store and the listing.
    pub fn detail(&self) -> String {
        match self {
            Said::Delivery {
                status,
                diagnostic: Some(diagnostic),
            } => {
                let mut text = format!("{status} {diagnostic}");
                if text.len() > 200 {
                    let mut end = 200;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                }
                text
            }
            Said::Delivery { status, .. } => status.clone(),
            Said::Feedback { feedback_type } => format!("feedback-type {feedback_type}"),
        }
    }
}

/// A report read from a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The report's own Message-ID, by which it is remembered.
    pub message_id: Option<String>,
    pub said: Said,
    /// Candidate return-path tokens (48 hex digits, lower-cased) from the
    /// addresses the report went to and the returned mail's `Return-Path`.
    pub tokens: Vec<String>,
    /// Message-IDs of the mail it is about (without angle brackets): the
    /// returned mail's, then the report's `In-Reply-To` and `References`.
    pub message_ids: Vec<String>,
}

/// Where a report puts the address it was sent to.
const ADDRESSED_TO: [&str; 6] = [
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "To",
    "Return-Path",
];

/// Reads a report, or says why the message is not one.
pub fn parse(bytes: &[u8]) -> Result<Report, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("an empty message".into());
    }
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or("not a mail message (no header could be read)")?;
    let mut tokens = Vec::new();
    for (name, value) in message.headers_raw() {
        if ADDRESSED_TO
            .iter()
            .any(|wanted| wanted.eq_ignore_ascii_case(name))
        {
            find_tokens(value, &mut tokens);
        }
    }
    let mut said = None;
    let mut problem = None;
    let mut message_ids = Vec::new();
    for part in &message.parts {
        let Some(content_type) = part.content_type() else {
            continue;
        };
        let kind = (
            content_type.ctype().to_ascii_lowercase(),
            content_type
                .subtype()
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
        );
        match (kind.0.as_str(), kind.1.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") if said.is_none() => {
                match delivery_status(part.contents()) {
                    Ok(found) => said = Some(found),
                    Err(why) => problem = Some(why),
                }
            }
            ("message", "feedback-report") if said.is_none() => {
                let fields = fields(part.contents());
                for (name, value) in &fields {
                    if name.eq_ignore_ascii_case("Original-Mail-From") {
                        find_tokens(value, &mut tokens);
                    }
                }
                match field(&fields, "Feedback-Type") {
                    Some(kind) if !kind.is_empty() => {
                        said = Some(Said::Feedback {
                            feedback_type: kind.to_ascii_lowercase(),
                        });
                    }
                    _ => problem = Some("a feedback report without a Feedback-Type".into()),
                }
            }
            ("message", "rfc822" | "global") => {
                if let PartType::Message(original) = &part.body {
                    returned(original, &mut tokens, &mut message_ids);
                }
            }
            ("text", "rfc822-headers") | ("message", "global-headers") => {
                if let Some(original) = MessageParser::default().parse(part.contents()) {
                    returned(&original, &mut tokens, &mut message_ids);
                }
            }
            _ => {}
        }
    }
    let said = match (said, problem) {
        (Some(said), _) => said,
        (None, Some(problem)) => return Err(problem),
        (None, None) => {
            return Err("not a delivery-status or feedback report (no \
                        message/delivery-status or message/feedback-report part)"
                .into());
        }
    };
    for name in ["In-Reply-To", "References"] {
        if let Some(value) = message.header_raw(name) {
            message_ids.extend(angle_ids(value));
        }
    }
    tokens.dedup();
    message_ids.dedup();
    Ok(Report {
        message_id: message.message_id().map(str::to_string),
        said,
        tokens,
        message_ids,
    })
}

/// What the returned mail (or its headers) gives: its `Return-Path` and
/// Message-ID.
fn returned(original: &mail_parser::Message<'_>, tokens: &mut Vec<String>, ids: &mut Vec<String>) {
    if let Some(return_path) = original.header_raw("Return-Path") {
        find_tokens(return_path, tokens);
    }
    if let Some(id) = original.message_id() {
        ids.push(id.to_string());
    }
}

/// The gravest recipient status of a `message/delivery-status` body.
fn delivery_status(body: &[u8]) -> Result<Said, String> {
    let text = String::from_utf8_lossy(body);
    let mut gravest: Option<Said> = None;
    let mut recipients = 0;
    for block in blocks(&text) {
        let fields = fields(block.as_bytes());
        let action = field(&fields, "Action");
        let status_field = field(&fields, "Status");
        if action.is_none() && status_field.is_none() {
            // The per-message block (Reporting-MTA, Arrival-Date, …).
            continue;
        }
        recipients += 1;
        let diagnostic = field(&fields, "Diagnostic-Code")
            .map(|code| code.split_once(';').map_or(code, |(_, text)| text).trim())
            .filter(|code| !code.is_empty())
            .map(|code| {
                // Kept in the store (the send's reason, the report's
                // detail), where `forget` does not look: no addresses.
                code.split_whitespace()
                    .map(|word| {
                        if word.contains('@') {
                            "<address>"
                        } else {
                            word
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        // Status is required; a report that leaves it out may still name
        // an enhanced code in the diagnostic.
        let status = status_field
            .and_then(|status| status.split_whitespace().next())
            .map(str::to_string)
            .or_else(|| diagnostic.as_deref().and_then(enhanced_code));
        let Some(status) = status else {
            return Err("a delivery-status report without a Status".into());
        };
        if !is_status(&status) {
            return Err(format!(
                "a delivery-status report whose Status {status:?} is not a status code (like 5.1.1)"
            ));
        }
        let said = Said::Delivery { status, diagnostic };
        let grave = |said: &Said| match said.class() {
            Some('5') => 3,
            Some('4') => 2,
            _ => 1,
        };
        if gravest
            .as_ref()
            .is_none_or(|before| grave(&said) > grave(before))
        {
            gravest = Some(said);
        }
    }
    match gravest {
        Some(said) => Ok(said),
        None if recipients == 0 => {
            Err("a delivery-status report that names no recipient (no Action or Status)".into())
        }
        None => unreachable!("every recipient gives a status or an error"),
    }
}

/// RFC 3463's `class.subject.detail`, class 2, 4 or 5.
fn is_status(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    matches!(parts[..], [class, subject, detail]
        if ["2", "4", "5"].contains(&class)
            && (1..=3).contains(&subject.len()) && subject.bytes().all(|b| b.is_ascii_digit())
            && (1..=3).contains(&detail.len()) && detail.bytes().all(|b| b.is_ascii_digit()))
}

/// The first enhanced status code in a server's reply (`550 5.1.1 …`).
fn enhanced_code(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '-'))
        .map(|word| word.trim_end_matches([',', ';', ':']))
        .find(|word| is_status(word))
        .map(str::to_string)
}

/// The blocks of a report body, split at blank lines.
fn blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

/// The fields of a header-like block (`Name: value`, continuation lines
/// folded back), in order.
fn fields(block: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(block);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Every run of exactly 48 hex digits in `text`: a return-path token
/// wherever the address is written (`<bounces+TOKEN@…>`, `rfc822;…`).
/// Its MAC, checked later, tells a token from chance.
fn find_tokens(text: &str, tokens: &mut Vec<String>) {
    for run in text.split(|c: char| !c.is_ascii_hexdigit()) {
        if run.len() == RETURN_PATH_TOKEN_LEN {
            let token = run.to_ascii_lowercase();
            if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
    }
}

/// The `<…>` ids of a header, without their brackets.
fn angle_ids(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>'))
        .map(|(id, _)| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        for good in ["5.1.1", "4.4.7", "2.0.0", "5.7.133"] {
            assert!(is_status(good), "{good}");
        }
        for bad in ["5.1", "6.1.1", "5.1.1.1", "x.1.1", "5..1", "5.1234.1", ""] {
            assert!(!is_status(bad), "{bad}");
        }
        assert_eq!(
            enhanced_code("550 5.1.1 <a@b>: user unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(enhanced_code("550-5.7.1, blocked"), Some("5.7.1".into()));
        assert_eq!(enhanced_code("550 user unknown"), None);
    }

    #[test]
    fn diagnostics_keep_no_address() {
        let body = "Final-Recipient: rfc822; ann@example.com\nAction: failed\nStatus: 5.1.1\n\
                    Diagnostic-Code: smtp; 550 5.1.1 <ann@example.com>: Recipient address rejected\n";
        assert_eq!(
            delivery_status(body.as_bytes()),
            Ok(Said::Delivery {
                status: "5.1.1".into(),
                diagnostic: Some("550 5.1.1 <address> Recipient address rejected".into())
            })
        );
    }

    #[test]
    fn fields_are_unfolded_and_blocks_split() {
        let body = "Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; a@b\r\n\
                    Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n \
                    user unknown\r\n\r\n";
        let blocks = blocks(body);
        assert_eq!(blocks.len(), 2);
        let fields = fields(blocks[1].as_bytes());
        assert_eq!(
            field(&fields, "diagnostic-code"),
            Some("smtp; 550 5.1.1 user unknown")
        );
        assert_eq!(
            delivery_status(body.as_bytes()),
            Ok(Said::Delivery {
                status: "5.1.1".into(),
                diagnostic: Some("550 5.1.1 user unknown".into())
            })
        );
    }

    fn fixture(name: &str) -> String {
        let token = "0123456789abcdef".repeat(3);
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/bounces")
                .join(name),
        )
        .unwrap()
        .replace("@@RETURN_PATH@@", &format!("bounces+{token}@shop.example"))
        .replace(
            "@@MESSAGE_ID@@",
            "6000aee29d7c7feb02cd5206ad96832f.recart@shop.example",
        )
        .replace("@@RCPT@@", "ann@example.com")
        .replace(
            "@@ORIGINAL@@",
            "Return-Path: <x@y>\nMessage-ID: <orig@shop.example>\nSubject: x\n\nhi\n",
        )
    }

    /// The feedback reports read the same as an independent ARF parser
    /// (mail-auth's) reads them.
    #[test]
    fn feedback_reports_read_as_mail_auth_reads_them() {
        use mail_auth::report::{Feedback, FeedbackType};
        for name in ["microsoft-arf.eml", "yahoo-arf.eml", "not-spam-arf.eml"] {
            let text = fixture(name);
            let ours = parse(text.as_bytes()).unwrap();
            let theirs = Feedback::parse_rfc5322(text.as_bytes()).unwrap();
            let their_type = match theirs.feedback_type() {
                FeedbackType::Abuse => "abuse",
                FeedbackType::NotSpam => "not-spam",
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(
                ours.said,
                Said::Feedback {
                    feedback_type: their_type.into()
                },
                "{name}"
            );
            let mut tokens = Vec::new();
            find_tokens(theirs.original_mail_from().unwrap_or_default(), &mut tokens);
            assert!(
                tokens.iter().all(|token| ours.tokens.contains(token)),
                "{name}"
            );
        }
        let microsoft = parse(fixture("microsoft-arf.eml").as_bytes()).unwrap();
        assert_eq!(microsoft.tokens, ["0123456789abcdef".repeat(3)]);
        assert_eq!(microsoft.message_ids, ["orig@shop.example"]);
        let yahoo = parse(fixture("yahoo-arf.eml").as_bytes()).unwrap();
        assert!(yahoo.tokens.is_empty());
        assert_eq!(
            yahoo.message_ids,
            ["6000aee29d7c7feb02cd5206ad96832f.recart@shop.example"]
        );
    }

    #[test]
    fn delivery_reports_give_their_gravest_status_and_references() {
        let exim = parse(fixture("exim-hard.eml").as_bytes()).unwrap();
        assert_eq!(
            exim.said,
            Said::Delivery {
                status: "5.0.0".into(),
                diagnostic: Some("550 5.1.1 No such user here".into())
            }
        );
        assert!(exim.tokens.is_empty());
        assert_eq!(
            exim.message_id.as_deref(),
            Some("E1tAbCd-000123-4x@mx.exim.example")
        );
        let gmail = parse(fixture("gmail-soft.eml").as_bytes()).unwrap();
        assert_eq!(gmail.said.class(), Some('4'));
        let relayed = parse(fixture("relayed-dsn.eml").as_bytes()).unwrap();
        assert_eq!(relayed.said.class(), Some('2'));
        // Two recipients: the permanent failure outweighs the delay.
        let body = "Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b\nAction: delayed\n\
                    Status: 4.4.1\n\nFinal-Recipient: rfc822; c@d\nAction: failed\nStatus: 5.2.1\n";
        assert_eq!(delivery_status(body.as_bytes()).unwrap().class(), Some('5'));
        assert!(
            delivery_status(b"Reporting-MTA: dns; mx\n")
                .unwrap_err()
                .contains("names no recipient")
        );
        assert!(
            delivery_status(b"Action: failed\nStatus: 9.9.9\n")
                .unwrap_err()
                .contains("not a status code")
        );
    }

    #[test]
    fn tokens_are_found_wherever_the_address_is_written() {
        let token = "0123456789abcdef".repeat(3);
        let mut found = Vec::new();
        find_tokens(
            &format!("<bounces+{}@shop.example>", token.to_uppercase()),
            &mut found,
        );
        find_tokens(&format!("rfc822; bounces-{token}@shop.example"), &mut found);
        // 47 or 49 digits are no token.
        find_tokens(&format!("x+{}@y, x+{token}0@y", &token[1..]), &mut found);
        assert_eq!(found, [token]);
        let ids: Vec<String> = angle_ids("<a@b> <c@d>\r\n <e@f>").collect();
        assert_eq!(ids, ["a@b", "c@d", "e@f"]);
    }
}
