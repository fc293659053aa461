//! Just enough MIME to check the mails recart sends: unfolded headers,
//! RFC 2047 encoded words, multipart bodies and the base64/quoted-printable
//! transfer encodings.

use base64::Engine as _;

#[derive(Debug, Clone)]
pub struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    pub fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = match raw.find("\n\n") {
            Some(i) => (&raw[..i], &raw[i + 2..]),
            None => (raw.as_str(), ""),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        Self {
            headers,
            body: body.to_string(),
        }
    }

    /// The first header called `name` (case-insensitive), unfolded and with
    /// encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_words(v))
    }

    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    fn content_type(&self) -> String {
        self.header("Content-Type")
            .unwrap_or_else(|| "text/plain".into())
    }

    fn mime_type(&self) -> String {
        self.content_type()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    /// Leaf parts, depth first: (mime type, decoded body).
    pub fn parts(&self) -> Vec<(String, String)> {
        let mime_type = self.mime_type();
        if mime_type.starts_with("multipart/") {
            let Some(boundary) = param(&self.content_type(), "boundary") else {
                return vec![(mime_type, self.body.clone())];
            };
            let open = format!("--{boundary}");
            let mut parts = Vec::new();
            let mut current: Option<String> = None;
            for line in self.body.split('\n') {
                let trimmed = line.trim_end();
                if trimmed == open || trimmed == format!("{open}--") {
                    if let Some(part) = current.take() {
                        parts.extend(Mail::parse(&part).parts());
                    }
                    if trimmed == open {
                        current = Some(String::new());
                    }
                } else if let Some(part) = current.as_mut() {
                    part.push_str(line);
                    part.push('\n');
                }
            }
            parts
        } else {
            vec![(mime_type, self.decoded_body())]
        }
    }

    fn decoded_body(&self) -> String {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "base64" => {
                let compact: String = self.body.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("valid base64 body");
                String::from_utf8_lossy(&bytes).into_owned()
            }
            "quoted-printable" => quoted_printable(&self.body, false),
            _ => self.body.clone(),
        }
    }

    /// The decoded body of the first part of type `mime_type` (e.g. "text/plain").
    pub fn part(&self, mime_type: &str) -> Option<String> {
        self.parts()
            .into_iter()
            .find(|(t, _)| t == mime_type)
            .map(|(_, body)| body)
    }

    /// All decoded text parts, joined: for "contains" assertions.
    pub fn text(&self) -> String {
        self.parts()
            .into_iter()
            .filter(|(t, _)| t.starts_with("text/"))
            .map(|(_, body)| body)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Undo the HTML escaping templates apply (minijinja also escapes `/`), so
/// that URLs and names can be looked for verbatim.
pub fn html_unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A parameter of a structured header value, e.g. `boundary`.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (key, val) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().trim_matches('"').to_string())
    })
}

fn quoted_printable(input: &str, underscore_is_space: bool) -> String {
    let mut bytes = Vec::new();
    let mut chars = input.as_bytes().iter().copied().peekable();
    while let Some(b) = chars.next() {
        match b {
            b'=' => {
                let hi = chars.next();
                if hi == Some(b'\n') || hi.is_none() {
                    continue; // soft line break
                }
                if hi == Some(b'\r') && chars.peek() == Some(&b'\n') {
                    chars.next();
                    continue;
                }
                let lo = chars.next();
                let hex = [hi.unwrap_or(b'0'), lo.unwrap_or(b'0')];
                match u8::from_str_radix(std::str::from_utf8(&hex).unwrap_or("zz"), 16) {
                    Ok(v) => bytes.push(v),
                    Err(_) => bytes.extend_from_slice(&[b'=', hex[0], hex[1]]),
                }
            }
            b'_' if underscore_is_space => bytes.push(b' '),
            _ => bytes.push(b),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Decode RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`);
/// whitespace between two adjacent encoded words is dropped.
pub fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        let decoded = parse_word(candidate);
        if let Some((text, len)) = decoded {
            if !(last_was_word && before.trim().is_empty()) {
                out.push_str(before);
            }
            out.push_str(&text);
            rest = &candidate[len..];
            last_was_word = true;
        } else {
            out.push_str(before);
            out.push_str("=?");
            rest = &candidate[2..];
            last_was_word = false;
        }
    }
    out.push_str(rest);
    out
}

/// Parse one encoded word at the start of `s`: (decoded text, bytes consumed).
fn parse_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (_charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let text = &inner[..end];
    let consumed = s.len() - inner.len() + end + 2;
    let decoded = match encoding {
        "b" | "B" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        "q" | "Q" => quoted_printable(text, true),
        _ => return None,
    };
    Some((decoded, consumed))
}
