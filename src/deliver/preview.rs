//! The preview gallery (`run --preview DIR`): every planned mail as `.eml`
//! and `.html`, and an `index.html` that lists them and every skip grouped
//! by reason. Plain files: it opens from disk in any browser, no server, no
//! script.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::Outgoing;
use super::file::{file_stem, temporary};

/// One planned mail, as listed.
struct Entry {
    email: String,
    step: String,
    value: String,
    subject: String,
    eml: String,
    html: String,
}

pub struct Gallery {
    dir: PathBuf,
    mails: Vec<Entry>,
    /// Reason → (cart, address, step) skipped so.
    skips: BTreeMap<String, Vec<(String, String, String)>>,
    /// Lines under the summary (e.g. the carts beyond the window).
    notes: Vec<String>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A file name as a relative URL: the names are made of `[a-z0-9_.-]` by
/// [`file_stem`], so nothing needs encoding.
fn href(name: &str) -> String {
    escape(name)
}

/// Writes `bytes` to `dir/name`, mode 0600, replacing what is there: a
/// file from an earlier preview, or a symbolic link, which is replaced, not
/// followed.
fn put(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    temporary(dir, name, bytes)
        .and_then(|file| file.persist(&path).map_err(|error| error.error))
        .map(drop)
        .map_err(|source| Error::io(&path, source))
}

impl Gallery {
    pub fn new(dir: &Path) -> Result<Gallery> {
        std::fs::create_dir_all(dir).map_err(|source| Error::io(dir, source))?;
        Ok(Gallery {
            dir: dir.to_path_buf(),
            mails: Vec::new(),
            skips: BTreeMap::new(),
            notes: Vec::new(),
        })
    }

    /// A line for the index, under the summary.
    pub fn note(&mut self, text: &str) {
        self.notes.push(text.to_string());
    }

    /// Writes the mail's `.eml` and its HTML part, and lists it.
    pub fn add_mail(
        &mut self,
        mail: &Outgoing,
        email: &str,
        value: &str,
        subject: &str,
        html: &str,
    ) -> Result<()> {
        let stem = file_stem(&mail.cart_id, &mail.step);
        let eml = format!("{stem}.eml");
        let html_name = format!("{stem}.html");
        put(&self.dir, &eml, &mail.bytes)?;
        put(&self.dir, &html_name, html.as_bytes())?;
        self.mails.push(Entry {
            email: email.to_string(),
            step: mail.step.clone(),
            value: value.to_string(),
            subject: subject.to_string(),
            eml,
            html: html_name,
        });
        Ok(())
    }

    /// Writes a webhook step's JSON document and lists it.
    pub fn add_webhook(
        &mut self,
        call: &super::WebhookCall,
        email: &str,
        value: &str,
    ) -> Result<()> {
        let name = format!("{}.json", file_stem(&call.cart_id, &call.step));
        put(&self.dir, &name, &call.body)?;
        self.mails.push(Entry {
            email: email.to_string(),
            step: call.step.clone(),
            value: value.to_string(),
            subject: format!("webhook POST {}", call.url),
            eml: name.clone(),
            html: name,
        });
        Ok(())
    }

    pub fn add_skip(&mut self, reason: &str, cart_id: &str, email: &str, step: Option<&str>) {
        self.skips.entry(reason.to_string()).or_default().push((
            cart_id.to_string(),
            email.to_string(),
            step.unwrap_or("-").to_string(),
        ));
    }

    /// Writes `index.html`; returns its path.
    pub fn finish(self) -> Result<PathBuf> {
        let skipped: usize = self.skips.values().map(Vec::len).sum();
        let mut page = String::from(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
             <title>recart preview</title>\n<style>\n\
             body{font-family:system-ui,sans-serif;margin:2em;color:#222}\n\
             table{border-collapse:collapse;margin:.5em 0 2em}\n\
             th,td{border:1px solid #ccc;padding:.3em .7em;text-align:left}\n\
             td.value{text-align:right}\n\
             </style></head><body>\n<h1>recart preview</h1>\n",
        );
        let _ = writeln!(
            page,
            "<p id=\"summary\">{} mails planned, {} carts skipped.</p>",
            self.mails.len(),
            skipped
        );
        for note in &self.notes {
            let _ = writeln!(page, "<p class=\"note\">{}.</p>", escape(note));
        }
        page.push_str(
            "<h2>Planned mails</h2>\n<table id=\"mails\">\n\
             <tr><th>Address</th><th>Step</th><th>Cart value</th><th>Subject</th><th>Open</th></tr>\n",
        );
        for entry in &self.mails {
            let _ = writeln!(
                page,
                "<tr class=\"mail\"><td>{}</td><td>{}</td><td class=\"value\">{}</td>\
                 <td><a href=\"{}\">{}</a></td><td><a href=\"{}\">.eml</a></td></tr>",
                escape(&entry.email),
                escape(&entry.step),
                escape(&entry.value),
                href(&entry.html),
                escape(&entry.subject),
                href(&entry.eml),
            );
        }
        page.push_str("</table>\n<h2>Skipped carts</h2>\n");
        for (reason, carts) in &self.skips {
            let _ = writeln!(
                page,
                "<details class=\"skip\"><summary><b>{}</b>: <span class=\"count\">{}</span></summary>\
                 <table><tr><th>Cart</th><th>Address</th><th>Step</th></tr>",
                escape(reason),
                carts.len()
            );
            for (cart, email, step) in carts {
                let _ = writeln!(
                    page,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(cart),
                    escape(email),
                    escape(step)
                );
            }
            page.push_str("</table></details>\n");
        }
        page.push_str("</body></html>\n");
        put(&self.dir, "index.html", page.as_bytes())?;
        Ok(self.dir.join("index.html"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_lists_mails_and_skips_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let mut gallery = Gallery::new(dir.path()).unwrap();
        let mail = Outgoing {
            cart_id: "C/1".into(),
            step: "1h".into(),
            message_id: "<x@y>".into(),
            envelope: lettre::address::Envelope::new(None, vec!["a@example.com".parse().unwrap()])
                .unwrap(),
            bytes: b"Subject: x\r\n\r\nhi".to_vec(),
        };
        gallery
            .add_mail(&mail, "a@example.com", "€10.00", "<b>Hi</b>", "<p>hi</p>")
            .unwrap();
        gallery.add_skip("no-consent", "C2", "b@example.com", None);
        gallery.add_skip("no-consent", "C3", "c@example.com", Some("1h"));
        gallery.note("9 carts idle longer than max_age 7d not shown");
        let index = std::fs::read_to_string(gallery.finish().unwrap()).unwrap();
        assert!(index.contains("1 mails planned, 2 carts skipped"));
        assert!(
            index.contains("<p class=\"note\">9 carts idle longer than max_age 7d not shown.</p>")
        );
        assert!(index.contains("&lt;b&gt;Hi&lt;/b&gt;"));
        let stem = file_stem("C/1", "1h");
        assert!(stem.starts_with("c_1.1h."), "{stem}");
        assert!(index.contains(&format!("href=\"{stem}.html\"")));
        assert!(dir.path().join(format!("{stem}.eml")).exists());
        assert!(dir.path().join(format!("{stem}.html")).exists());
        assert!(index.contains("<b>no-consent</b>: <span class=\"count\">2</span>"));
    }
}
