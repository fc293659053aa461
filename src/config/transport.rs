//! `[transport]`: where mails go (`.eml` files or an SMTP relay), who they
//! are from, and the ledger's rules for sending them.

use std::path::PathBuf;

use chrono::TimeDelta;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, TlsParameters};

use super::duration::HumanDuration;
use super::raw::{RawTransport, TransportKind};
use super::{Context, Delivery, Dkim, ReturnPath, SmtpSettings, Tls, Transport};
use crate::error::Result;

/// `transport.from` and `transport.reply_to`.
pub(super) fn addresses(
    cx: &Context<'_>,
    raw: &RawTransport,
) -> Result<(Mailbox, Option<Mailbox>)> {
    let from = raw.from.as_deref().unwrap_or("Shop <shop@localhost>");
    let from: Mailbox = from.parse().map_err(|_| {
        cx.fail(
            "transport.from",
            format!("{from:?} is not a mailbox like \"Shop <hello@shop.example>\""),
        )
    })?;
    let reply_to = match &raw.reply_to {
        Some(text) => Some(text.parse::<Mailbox>().map_err(|_| {
            cx.fail(
                "transport.reply_to",
                format!("{text:?} is not a mailbox like \"Shop <help@shop.example>\""),
            )
        })?),
        None => None,
    };
    Ok((from, reply_to))
}

/// The transport `transport.kind` names, with its own keys.
pub(super) fn transport(cx: &Context<'_>, raw: &RawTransport) -> Result<Transport> {
    Ok(match raw.kind {
        TransportKind::File => Transport::File {
            dir: cx.resolve(raw.dir.as_deref().unwrap_or("outbox".as_ref())),
        },
        TransportKind::Smtp => Transport::Smtp(smtp(cx, raw)?),
    })
}

/// The keys of `kind = "smtp"`.
fn smtp(cx: &Context<'_>, raw: &RawTransport) -> Result<SmtpSettings> {
    let host = raw
        .host
        .clone()
        .ok_or_else(|| cx.fail("transport.host", "is required when kind = \"smtp\""))?;
    let tls = raw.tls.unwrap_or(Tls::Starttls);
    let port = raw.port.unwrap_or(match tls {
        Tls::Implicit => 465,
        Tls::Starttls | Tls::None => 587,
    });
    let ca = match &raw.ca_file {
        Some(_) if tls == Tls::None => {
            return Err(cx.fail(
                "transport.ca_file",
                "is set but transport.tls = \"none\" checks no certificate",
            ));
        }
        Some(path) => Some(trusted_ca(cx, &host, &cx.resolve(path))?),
        None => None,
    };
    let connections = raw.connections.unwrap_or(4);
    if connections == 0 {
        return Err(cx.fail("transport.connections", "must be at least 1"));
    }
    let rate_limit = match raw.rate_limit {
        Some(rate) if !(rate > 0.0 && rate.is_finite()) => {
            return Err(cx.fail(
                "transport.rate_limit",
                format!("{rate} is not a positive number of mails per second"),
            ));
        }
        other => other,
    };
    Ok(SmtpSettings {
        host,
        port,
        tls,
        ca,
        username: raw.username.clone(),
        password_env: raw.password_env.clone(),
        connections,
        timeout: raw
            .timeout
            .map_or(std::time::Duration::from_secs(30), HumanDuration::to_std),
        rate_limit,
    })
}

/// A CA certificate (PEM) trusted for the relay's certificate, read and
/// checked when the configuration loads.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    pub path: PathBuf,
    pub certificate: Certificate,
}

/// Reads `transport.ca_file`: one or more PEM certificates that rustls
/// accepts as roots (a bad file fails here, naming the key, not at the
/// first connection).
fn trusted_ca(cx: &Context<'_>, host: &str, path: &PathBuf) -> Result<TrustedCa> {
    let fail = |message: String| cx.fail("transport.ca_file", message);
    let pem = std::fs::read(path)
        .map_err(|error| fail(format!("cannot read {}: {error}", path.display())))?;
    if !pem
        .windows(27)
        .any(|window| window == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(fail(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    let certificate = Certificate::from_pem(&pem)
        .map_err(|error| fail(format!("{}: {error}", path.display())))?;
    TlsParameters::builder(host.to_string())
        .add_root_certificate(certificate.clone())
        .build_rustls()
        .map_err(|error| {
            fail(format!(
                "{}: not a usable CA certificate: {error}",
                path.display()
            ))
        })?;
    Ok(TrustedCa {
        path: path.clone(),
        certificate,
    })
}

/// `transport.max_attempts` and `transport.lease`.
pub(super) fn delivery(cx: &Context<'_>, raw: &RawTransport) -> Result<Delivery> {
    Ok(Delivery {
        max_attempts: match raw.max_attempts {
            Some(0) => return Err(cx.fail("transport.max_attempts", "must be at least 1")),
            Some(attempts) => attempts,
            None => 5,
        },
        lease: raw.lease.map_or(TimeDelta::zero(), TimeDelta::from),
    })
}

/// `transport.return_path`: an address with one `{token}` in its local
/// part, which must stay within 64 octets with the token in it.
pub(super) fn return_path(cx: &Context<'_>, raw: &RawTransport) -> Result<Option<ReturnPath>> {
    let Some(text) = &raw.return_path else {
        return Ok(None);
    };
    let fail = |message: String| cx.fail("transport.return_path", message);
    let example = "like \"bounces+{token}@shop.example\"";
    let Some((before, after)) = text.split_once("{token}") else {
        return Err(fail(format!("{text:?} has no {{token}}: {example}")));
    };
    if after.contains("{token}") {
        return Err(fail(format!("{text:?} has {{token}} twice")));
    }
    if before.contains('@') || !after.contains('@') {
        return Err(fail(format!(
            "{text:?}: {{token}} goes in the local part, before the @: {example}"
        )));
    }
    let return_path = ReturnPath {
        before: before.to_string(),
        after: after.to_string(),
    };
    let sample = return_path.address(&"0".repeat(crate::token::RETURN_PATH_TOKEN_LEN));
    let local = sample.rfind('@').unwrap_or(sample.len());
    if local > 64 {
        return Err(fail(format!(
            "{text:?}: with its {}-character token the local part is {local} octets, over the 64 \
             an address may have (RFC 5321): shorten what is around {{token}}",
            crate::token::RETURN_PATH_TOKEN_LEN
        )));
    }
    sample
        .parse::<lettre::Address>()
        .map_err(|error| fail(format!("{text:?} is not an address: {error}")))?;
    Ok(Some(return_path))
}

/// `[transport.dkim]`: the key file is read when mails are built
/// (`deliver::DkimKey`), not here: every command loads the config.
pub(super) fn dkim(cx: &Context<'_>, raw: &RawTransport) -> Result<Option<Dkim>> {
    let Some(dkim) = &raw.dkim else {
        return Ok(None);
    };
    let name = |text: &str| {
        !text.is_empty()
            && text.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if !name(&dkim.domain) {
        return Err(cx.fail(
            "transport.dkim.domain",
            format!(
                "{:?} is not a domain name like \"shop.example\"",
                dkim.domain
            ),
        ));
    }
    if !name(&dkim.selector) {
        return Err(cx.fail(
            "transport.dkim.selector",
            format!("{:?} is not a DNS label like \"recart1\"", dkim.selector),
        ));
    }
    Ok(Some(Dkim {
        domain: dkim.domain.to_ascii_lowercase(),
        selector: dkim.selector.clone(),
        key_file: cx.resolve(&dkim.key_file),
        algorithm: dkim.algorithm,
    }))
}
