//! `recart.toml` → a validated, immutable [`Config`]. Everything that can be
//! checked without touching the network or the store is checked here, so a
//! bad key fails before any side effect.
//!
//! Serde reads the file into the structs of `raw`, which already refuse unknown
//! keys, unknown words and bad durations; each section's own module then
//! checks what serde cannot, and [`Config::parse`] puts the sections together.

mod duration;
mod errors;
mod links;
mod policy;
mod raw;
mod sources;
mod steps;
#[cfg(test)]
mod tests;
mod transport;

use std::fmt::Display;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use lettre::message::Mailbox;
use serde::Deserialize;

pub use self::duration::parse_duration;
pub(crate) use self::errors::nearest;
use self::raw::RawConfig;
pub use self::transport::TrustedCa;
use crate::error::{Error, Result};
use crate::ingest::Format;
use crate::model::Currency;
use crate::plan::{Filters, Policy, Step};

/// Where the configuration is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "recart.toml";

/// The whole configuration, checked, with paths made absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from; relative paths in it are relative to
    /// its directory.
    pub path: PathBuf,
    /// The `SQLite` store; with `store_url`, only the base name of this
    /// host's hand-over journals (`<store_path>.handover/`).
    pub store_path: PathBuf,
    /// `store.url`: the store on PostgreSQL.
    pub store_url: Option<StoreUrl>,
    pub templates_dir: PathBuf,
    pub sources: Vec<Source>,
    pub transport: Transport,
    pub from: Mailbox,
    /// `transport.reply_to`: where replies go, if not to `from`.
    pub reply_to: Option<Mailbox>,
    pub shop_name: String,
    pub links: Links,
    pub policy: Policy,
    pub steps: Vec<Step>,
    pub delivery: Delivery,
    /// An order within this after a reminder counts as recovered.
    pub attribution_window: TimeDelta,
    /// Product catalogs imported at the start of every run (`[[catalog]]`).
    pub catalogs: Vec<Source>,
    /// `transport.return_path`: the envelope sender, one per mail (VERP).
    pub return_path: Option<ReturnPath>,
    /// `[transport.dkim]`: mails are signed with this key.
    pub dkim: Option<Dkim>,
}

/// `transport.return_path`, split at its `{token}`: every mail's envelope
/// sender is `<before><token><after>`, so a bounce names its send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnPath {
    pub before: String,
    /// From the token to the end, the `@domain` included.
    pub after: String,
}

impl ReturnPath {
    /// The address for one token.
    pub fn address(&self, token: &str) -> String {
        format!("{}{token}{}", self.before, self.after)
    }
}

/// `[transport.dkim]`: the key that signs every mail, and where its public
/// half is published (`<selector>._domainkey.<domain>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dkim {
    pub domain: String,
    pub selector: String,
    /// Made absolute against the config's directory; read when sending.
    pub key_file: PathBuf,
    pub algorithm: DkimAlgorithm,
}

/// `transport.dkim.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DkimAlgorithm {
    #[default]
    RsaSha256,
    Ed25519Sha256,
}

/// Ledger rules that hold for every transport.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Attempts before a send refused for now (4xx) is given up as failed.
    pub max_attempts: u32,
    /// A claim older than this, never confirmed, was left by a run that
    /// died: it becomes `unknown`. Runs hold the store's lock, so a claim
    /// seen by the next run is already dead: the default is 0.
    pub lease: TimeDelta,
}

/// Where carts, orders (`[[sources]]`) or products (`[[catalog]]`) are read
/// from, and how.
#[derive(Debug, Clone)]
pub struct Source {
    /// A glob, made absolute against the config's directory.
    pub pattern: String,
    pub format: Format,
    /// Native field name → the file's column (`columns = { … }`).
    pub columns: Vec<(String, String)>,
    /// strftime format of the file's times (`date_format`).
    pub date_format: Option<String>,
    /// Catalogs: the currency of prices when the file has no column for it.
    pub currency: Option<Currency>,
    /// Catalogs: product URLs made from `{handle}`.
    pub product_url: Option<String>,
    /// A shop's database (`sqlite = "shop.db"` or `url = …`) with its
    /// queries; then `pattern` is empty.
    pub database: Option<crate::ingest::database::DatabaseSource>,
    /// The files' encoding when not UTF-8 (`encoding`).
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

impl Source {
    /// How to read the source's files at `now` (the run's).
    pub fn options(&self, now: DateTime<Utc>) -> crate::ingest::Options {
        crate::ingest::Options {
            format: self.format,
            columns: self.columns.clone(),
            date_format: self.date_format.clone(),
            currency: self.currency.clone(),
            product_url: self.product_url.clone(),
            encoding: self.encoding,
            now: Some(now),
            ..crate::ingest::Options::default()
        }
    }
}

/// How mails leave (`[transport] kind`).
#[derive(Debug, Clone)]
pub enum Transport {
    /// One `.eml` file per mail in `dir`.
    File {
        dir: PathBuf,
    },
    Smtp(SmtpSettings),
}

/// `transport.tls`: how an SMTP connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tls {
    Starttls,
    Implicit,
    None,
}

/// The keys of `kind = "smtp"`.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    /// `transport.ca_file`: a private CA trusted for the relay's
    /// certificate, besides the public ones.
    pub ca: Option<TrustedCa>,
    pub username: Option<String>,
    /// The environment variable holding the password; never the password.
    pub password_env: Option<String>,
    pub connections: usize,
    pub timeout: std::time::Duration,
    /// Mails per second across all connections, for relays that throttle.
    pub rate_limit: Option<f64>,
}

/// `[links]`: what a mail links to, and how the links are signed.
#[derive(Debug, Clone)]
pub struct Links {
    /// URL templates with a `{token}` placeholder.
    pub recover: String,
    pub unsubscribe: String,
    /// `links.unsubscribe_mailto`: a `mailto:` URL (`{token}` optional) for
    /// the `List-Unsubscribe` header beside the HTTPS link.
    pub unsubscribe_mailto: Option<String>,
    /// `links.utm`: query parameters appended to the recovery URL, by name.
    pub utm: Vec<(String, String)>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub recover_ttl: TimeDelta,
    /// `links.base`: where `recart serve` is reached (no trailing `/`);
    /// then `recover` and `unsubscribe` are its `/r/` and `/u/` URLs.
    pub base: Option<String>,
    /// `links.cart`: the shop's cart page, a `{cart_id}` template, where
    /// `recart serve` redirects a recovery link.
    pub cart: Option<String>,
    /// The shop's home page (`shop.url`, else `links.cart`'s origin): where
    /// `recart serve` sends the holder of an invalid link.
    pub home: Option<String>,
}

impl Config {
    /// Reads and validates the configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::config(
                    path,
                    "no such configuration file (give --config FILE, set RECART_CONFIG, or run `recart init`)",
                )
            } else {
                Error::io(path, source)
            }
        })?;
        Config::parse(path, &text)
    }

    /// Validates configuration text as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|error| Error::config(path, errors::describe(text, &error)))?;
        let cx = Context {
            path,
            base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        // Sections in the order their errors have always been reported.
        let sources = sources::sources(&cx, &raw.sources)?;
        let (from, reply_to) = transport::addresses(&cx, &raw.transport)?;
        let transport = transport::transport(&cx, &raw.transport)?;
        let links = links::links(&cx, raw.links, raw.shop.url.as_deref())?;
        let policy_filters =
            policy::filters(&cx, &raw.policy.filters(), &Filters::default(), "policy")?;
        let retry_after = raw
            .transport
            .retry_after
            .map_or(TimeDelta::minutes(30), TimeDelta::from);
        let policy = policy::policy(&cx, &raw.policy, retry_after)?;
        let delivery = transport::delivery(&cx, &raw.transport)?;
        let return_path = transport::return_path(&cx, &raw.transport)?;
        let dkim = transport::dkim(&cx, &raw.transport)?;
        let inherited = steps::Inherited {
            require_consent: raw.policy.require_consent.unwrap_or(true),
            filters: &policy_filters,
        };
        let steps = steps::steps(&cx, &raw.steps, &inherited)?;
        let catalogs = sources::catalogs(&cx, &raw.catalog)?;
        Ok(Config {
            path: path.to_path_buf(),
            store_path: cx.resolve(&raw.store.path),
            store_url: store_url(&cx, &raw.store)?,
            templates_dir: cx.resolve(&raw.templates.dir),
            sources,
            transport,
            shop_name: raw
                .shop
                .name
                .or_else(|| from.name.clone())
                .unwrap_or_else(|| from.email.domain().to_string()),
            from,
            reply_to,
            links,
            policy,
            steps,
            delivery,
            catalogs,
            return_path,
            dkim,
            attribution_window: raw
                .report
                .attribution_window
                .map_or(TimeDelta::days(5), TimeDelta::from),
        })
    }
}

/// What every section's check needs besides its own table.
struct Context<'a> {
    /// The file, named in every error.
    path: &'a Path,
    /// Its directory: relative paths in the file are relative to it.
    base: PathBuf,
}

impl Context<'_> {
    /// A configuration error at `key` (`steps[1].after`).
    fn fail(&self, key: impl Display, message: impl Display) -> Error {
        Error::config(self.path, format!("{key}: {message}"))
    }

    /// A path of the file, made absolute against the file's directory.
    fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        self.base.join(path)
    }
}

impl Config {
    /// Whether the store exists already (a PostgreSQL store always does:
    /// recart makes its schema on the first connection).
    pub fn store_exists(&self) -> bool {
        self.store_url.is_some() || self.store_path.exists()
    }
}

/// `store.url`, with where its password comes from (never the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub url: String,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl StoreUrl {
    /// The password, from `password_env` or `password_file`.
    pub fn password(&self) -> std::result::Result<Option<String>, String> {
        password(self.password_env.as_deref(), self.password_file.as_deref())
    }
}

/// A password from an environment variable or a file (its last line end
/// trimmed), never from the config itself.
pub fn password(
    env: Option<&str>,
    file: Option<&std::path::Path>,
) -> std::result::Result<Option<String>, String> {
    if let Some(name) = env {
        return std::env::var(name)
            .map(Some)
            .map_err(|_| format!("password_env: the variable {name} is not set"));
    }
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|text| Some(text.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|error| format!("password_file {}: {error}", path.display()));
    }
    Ok(None)
}

fn store_url(cx: &Context<'_>, raw: &raw::RawStore) -> Result<Option<StoreUrl>> {
    let Some(url) = &raw.url else {
        if raw.password_env.is_some() || raw.password_file.is_some() {
            return Err(cx.fail("store.password_env", "needs store.url (password_file too)"));
        }
        return Ok(None);
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(cx.fail(
            "store.url",
            format!("{url:?}: only PostgreSQL (postgres://user@host/db) is supported"),
        ));
    }
    if let Err(message) = crate::db_url::PostgresUrl::parse(url) {
        return Err(cx.fail("store.url", message));
    }
    Ok(Some(StoreUrl {
        url: url.clone(),
        password_env: raw.password_env.clone(),
        password_file: raw.password_file.as_ref().map(|path| cx.resolve(path)),
    }))
}
