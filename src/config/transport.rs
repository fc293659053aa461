//! `[transport]`: where mails go (`.eml` files or an SMTP relay), who they
//! are from, and the ledger's rules for sending them.

use std::path::PathBuf;

use chrono::TimeDelta;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, TlsParameters};

use super::duration::HumanDuration;
use super::raw::{RawTransport, TransportKind};
use super::{Context, Delivery, SmtpSettings, Tls, Transport};
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
