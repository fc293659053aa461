//! `recart.toml` → a validated, immutable [`Config`]. Everything that can be
//! checked without touching the network or the store is checked here, so a
//! bad key fails before any side effect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use lettre::message::Mailbox;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::coupon::{self, CouponRule};
use crate::error::{Error, Result};
use crate::ingest::Format;
use crate::model::Currency;
use crate::plan::{Channel, Filters, OutOfStock, Policy, QuietHours, Step, Threshold, Webhook};

/// Where the configuration is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "recart.toml";

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from; relative paths in it are relative to
    /// its directory.
    pub path: PathBuf,
    pub store_path: PathBuf,
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
    /// `sqlite = "shop.db"` with its queries; then `pattern` is empty.
    pub sqlite: Option<crate::ingest::sqlite::SqliteSource>,
}

impl Source {
    /// How to read the source's files.
    pub fn options(&self) -> crate::ingest::Options {
        crate::ingest::Options {
            format: self.format,
            columns: self.columns.clone(),
            date_format: self.date_format.clone(),
            currency: self.currency.clone(),
            product_url: self.product_url.clone(),
            ..crate::ingest::Options::default()
        }
    }
}

#[derive(Debug, Clone)]
pub enum Transport {
    /// One `.eml` file per mail in `dir`.
    File {
        dir: PathBuf,
    },
    Smtp(SmtpSettings),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    Starttls,
    Implicit,
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    /// The environment variable holding the password; never the password.
    pub password_env: Option<String>,
    pub connections: usize,
    pub timeout: std::time::Duration,
    /// Mails per second across all connections, for relays that throttle.
    pub rate_limit: Option<f64>,
}

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
}

// The file's shape. `deny_unknown_fields` everywhere: a typo'd key is an
// error naming the key, never silently ignored.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    templates: RawTemplates,
    #[serde(default)]
    shop: RawShop,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    transport: RawTransport,
    links: Option<RawLinks>,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    catalog: Vec<RawCatalog>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    attribution_window: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default = "default_store_path")]
    path: PathBuf,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: default_store_path(),
        }
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("recart.db")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    #[serde(default = "default_templates_dir")]
    dir: PathBuf,
}

impl Default for RawTemplates {
    fn default() -> Self {
        RawTemplates {
            dir: default_templates_dir(),
        }
    }
}

fn default_templates_dir() -> PathBuf {
    PathBuf::from("templates")
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawShop {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<String>,
    sqlite: Option<String>,
    carts_query: Option<String>,
    items_query: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
    date_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransport {
    #[serde(default = "default_kind")]
    kind: String,
    dir: Option<PathBuf>,
    host: Option<String>,
    port: Option<u16>,
    tls: Option<Tls>,
    username: Option<String>,
    password_env: Option<String>,
    connections: Option<usize>,
    timeout: Option<String>,
    from: Option<String>,
    rate_limit: Option<f64>,
    retry_after: Option<String>,
    max_attempts: Option<u32>,
    lease: Option<String>,
    reply_to: Option<String>,
}

impl Default for RawTransport {
    fn default() -> Self {
        RawTransport {
            kind: default_kind(),
            dir: None,
            host: None,
            port: None,
            tls: None,
            username: None,
            password_env: None,
            connections: None,
            timeout: None,
            from: None,
            rate_limit: None,
            retry_after: None,
            max_attempts: None,
            lease: None,
            reply_to: None,
        }
    }
}

fn default_kind() -> String {
    "file".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinks {
    recover: String,
    unsubscribe: String,
    unsubscribe_mailto: Option<String>,
    #[serde(default)]
    utm: BTreeMap<String, String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    recover_ttl: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    require_consent: Option<bool>,
    max_age: Option<String>,
    not_before: Option<String>,
    cooldown: Option<String>,
    max_per_address: Option<u32>,
    window: Option<String>,
    quiet_hours: Option<String>,
    timezone: Option<String>,
    purchased_within: Option<String>,
    max_sends_per_run: Option<usize>,
    out_of_stock: Option<String>,
    min_value: Option<toml::Value>,
    max_value: Option<toml::Value>,
    include_skus: Option<Vec<String>>,
    exclude_skus: Option<Vec<String>>,
    include_categories: Option<Vec<String>>,
    exclude_categories: Option<Vec<String>>,
}

/// Content filters: in `[policy]`, and per step where they replace the
/// policy's. (Repeated in both structs rather than `flatten`ed: serde's
/// `deny_unknown_fields` does not work through `flatten`.)
struct RawFilters<'a> {
    min_value: &'a Option<toml::Value>,
    max_value: &'a Option<toml::Value>,
    include_skus: &'a Option<Vec<String>>,
    exclude_skus: &'a Option<Vec<String>>,
    include_categories: &'a Option<Vec<String>>,
    exclude_categories: &'a Option<Vec<String>>,
}

macro_rules! raw_filters {
    ($raw:expr) => {
        RawFilters {
            min_value: &$raw.min_value,
            max_value: &$raw.max_value,
            include_skus: &$raw.include_skus,
            exclude_skus: &$raw.exclude_skus,
            include_categories: &$raw.include_categories,
            exclude_categories: &$raw.exclude_categories,
        }
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    after: String,
    template: Option<String>,
    #[serde(default)]
    variants: Vec<String>,
    require_consent: Option<bool>,
    min_value: Option<toml::Value>,
    max_value: Option<toml::Value>,
    include_skus: Option<Vec<String>>,
    exclude_skus: Option<Vec<String>>,
    include_categories: Option<Vec<String>>,
    exclude_categories: Option<Vec<String>>,
    channel: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    secret_env: Option<String>,
    require: Option<String>,
    timeout: Option<String>,
    coupon: Option<String>,
    coupon_prefix: Option<String>,
    coupon_ttl: Option<String>,
    coupon_pool: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    path: String,
    format: Option<String>,
    currency: Option<String>,
    product_url: Option<String>,
}

/// A step's `coupon`, `coupon_prefix`, `coupon_ttl` and `coupon_pool`.
fn coupon_rule(
    step: &RawStep,
    key: &str,
    fail: &dyn Fn(&str, String) -> Error,
) -> Result<Option<CouponRule>> {
    let kind = step.coupon.as_deref().map(str::trim);
    let only_with = |name: &str, value: bool, needs: &str| -> Result<()> {
        if value && kind != Some(needs) {
            return Err(fail(
                &format!("{key}.{name}"),
                format!("is only used with coupon = \"{needs}\""),
            ));
        }
        Ok(())
    };
    only_with("coupon_prefix", step.coupon_prefix.is_some(), "generate")?;
    only_with("coupon_ttl", step.coupon_ttl.is_some(), "generate")?;
    only_with("coupon_pool", step.coupon_pool.is_some(), "pool")?;
    Ok(match kind {
        None | Some("none") => None,
        Some("pool") => {
            let pool = step
                .coupon_pool
                .clone()
                .unwrap_or_else(|| coupon::DEFAULT_POOL.to_string());
            coupon::check_pool_name(&pool)
                .map_err(|message| fail(&format!("{key}.coupon_pool"), message))?;
            Some(CouponRule::Pool { pool })
        }
        Some("generate") => {
            let prefix = step
                .coupon_prefix
                .clone()
                .unwrap_or_else(|| coupon::DEFAULT_PREFIX.to_string());
            coupon::check_prefix(&prefix)
                .map_err(|message| fail(&format!("{key}.coupon_prefix"), message))?;
            let ttl = match &step.coupon_ttl {
                None => coupon::DEFAULT_TTL,
                Some(text) => parse_duration(text)
                    .and_then(|ttl| {
                        if ttl > TimeDelta::zero() {
                            Ok(ttl)
                        } else {
                            Err("must be longer than 0".into())
                        }
                    })
                    .map_err(|message| fail(&format!("{key}.coupon_ttl"), message))?,
            };
            Some(CouponRule::Generate { prefix, ttl })
        }
        Some(other) => {
            return Err(fail(
                &format!("{key}.coupon"),
                format!("{other:?} is not a coupon kind (expected \"pool\" or \"generate\")"),
            ));
        }
    })
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
        let raw: RawConfig = toml::from_str(text).map_err(|error| {
            let message = error.to_string().trim_end().to_string();
            let hint = did_you_mean(&message).unwrap_or_default();
            Error::config(path, format!("{message}{hint}"))
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let fail = |key: &str, message: String| Error::config(path, format!("{key}: {message}"));

        let sources = raw
            .sources
            .iter()
            .enumerate()
            .map(|(index, source)| {
                let format = match &source.format {
                    Some(name) => name
                        .parse::<Format>()
                        .map_err(|message| fail(&format!("sources[{index}].format"), message))?,
                    None => Format::Auto,
                };
                for field in source.columns.keys() {
                    if !crate::ingest::NATIVE_FIELDS.contains(&field.as_str()) {
                        return Err(fail(
                            &format!("sources[{index}].columns.{field}"),
                            format!(
                                "is not a native field (expected one of {})",
                                crate::ingest::NATIVE_FIELDS.join(", ")
                            ),
                        ));
                    }
                }
                let key = |name: &str| format!("sources[{index}].{name}");
                let sqlite = match (&source.path, &source.sqlite) {
                    (Some(_), Some(_)) => {
                        return Err(fail(
                            &key("sqlite"),
                            "a source has either path (CSV files) or sqlite, not both".into(),
                        ));
                    }
                    (None, None) => {
                        return Err(fail(
                            &key("path"),
                            "missing: give path (a glob of CSV files) or sqlite (a database)"
                                .into(),
                        ));
                    }
                    (Some(_), None) => {
                        for (name, given) in [
                            ("carts_query", &source.carts_query),
                            ("items_query", &source.items_query),
                        ] {
                            if given.is_some() {
                                return Err(fail(&key(name), "only for a sqlite source".into()));
                            }
                        }
                        None
                    }
                    (None, Some(database)) => {
                        if source.format.is_some() {
                            return Err(fail(
                                &key("format"),
                                "not for a sqlite source: its queries return native fields".into(),
                            ));
                        }
                        if !source.columns.is_empty() {
                            return Err(fail(
                                &key("columns"),
                                "not for a sqlite source: name the columns in the queries (AS)"
                                    .into(),
                            ));
                        }
                        let query = |name: &str, given: &Option<String>| match given {
                            Some(query) if !query.trim().is_empty() => Ok(query.clone()),
                            _ => Err(fail(&key(name), "missing: a sqlite source needs it".into())),
                        };
                        Some(crate::ingest::sqlite::SqliteSource {
                            path: base.join(database),
                            carts_query: query("carts_query", &source.carts_query)?,
                            items_query: query("items_query", &source.items_query)?,
                            date_format: source.date_format.clone(),
                        })
                    }
                };
                if let Some(date_format) = &source.date_format {
                    crate::ingest::check_date_format(date_format).map_err(|message| {
                        fail(&format!("sources[{index}].date_format"), message)
                    })?;
                }
                Ok(Source {
                    pattern: source
                        .path
                        .as_ref()
                        .map(|path| base.join(path).to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    sqlite,
                    format,
                    columns: source
                        .columns
                        .iter()
                        .map(|(field, column)| (field.clone(), column.clone()))
                        .collect(),
                    date_format: source.date_format.clone(),
                    currency: None,
                    product_url: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let transport_from = raw
            .transport
            .from
            .clone()
            .unwrap_or_else(|| "Shop <shop@localhost>".to_string());
        let from: Mailbox = transport_from.parse().map_err(|_| {
            fail(
                "transport.from",
                format!("{transport_from:?} is not a mailbox like \"Shop <hello@shop.example>\""),
            )
        })?;
        let reply_to = match &raw.transport.reply_to {
            Some(text) => Some(text.parse::<Mailbox>().map_err(|_| {
                fail(
                    "transport.reply_to",
                    format!("{text:?} is not a mailbox like \"Shop <help@shop.example>\""),
                )
            })?),
            None => None,
        };
        let transport = match raw.transport.kind.as_str() {
            "file" => Transport::File {
                dir: base.join(raw.transport.dir.clone().unwrap_or_else(|| "outbox".into())),
            },
            "smtp" => {
                let host = raw.transport.host.clone().ok_or_else(|| {
                    fail("transport.host", "is required when kind = \"smtp\"".into())
                })?;
                let tls = raw.transport.tls.unwrap_or(Tls::Starttls);
                let port = raw.transport.port.unwrap_or(match tls {
                    Tls::Implicit => 465,
                    Tls::Starttls | Tls::None => 587,
                });
                let connections = raw.transport.connections.unwrap_or(4);
                if connections == 0 {
                    return Err(fail("transport.connections", "must be at least 1".into()));
                }
                let timeout = match &raw.transport.timeout {
                    Some(text) => parse_duration(text)
                        .map_err(|message| fail("transport.timeout", message))?
                        .to_std()
                        .unwrap_or_default(),
                    None => std::time::Duration::from_secs(30),
                };
                let rate_limit = match raw.transport.rate_limit {
                    Some(rate) if !(rate > 0.0 && rate.is_finite()) => {
                        return Err(fail(
                            "transport.rate_limit",
                            format!("{rate} is not a positive number of mails per second"),
                        ));
                    }
                    other => other,
                };
                Transport::Smtp(SmtpSettings {
                    host,
                    port,
                    tls,
                    username: raw.transport.username.clone(),
                    password_env: raw.transport.password_env.clone(),
                    connections,
                    timeout,
                    rate_limit,
                })
            }
            other => {
                return Err(fail(
                    "transport.kind",
                    format!("{other:?} is not a transport (expected \"file\" or \"smtp\")"),
                ));
            }
        };

        let raw_links = raw.links.ok_or_else(|| {
            fail(
                "links",
                "is required: the recover and unsubscribe URLs the mails link to".into(),
            )
        })?;
        for (key, url) in [
            ("links.recover", &raw_links.recover),
            ("links.unsubscribe", &raw_links.unsubscribe),
        ] {
            if !url.contains("{token}") {
                return Err(fail(key, format!("{url:?} has no {{token}} placeholder")));
            }
            let example = url.replace("{token}", "TOKEN");
            match url::Url::parse(&example) {
                Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => {}
                _ => {
                    return Err(fail(
                        key,
                        format!(
                            "{url:?} is not an http(s) URL like \"https://shop.example/r/{{token}}\""
                        ),
                    ));
                }
            }
        }
        if let Some(mailto) = &raw_links.unsubscribe_mailto {
            let example = mailto.replace("{token}", "TOKEN");
            let valid = url::Url::parse(&example).is_ok_and(|parsed| {
                parsed.scheme() == "mailto" && parsed.path().parse::<lettre::Address>().is_ok()
            });
            if !valid {
                return Err(fail(
                    "links.unsubscribe_mailto",
                    format!(
                        "{mailto:?} is not a mailto URL like \"mailto:unsubscribe@shop.example?subject=unsubscribe%20{{token}}\""
                    ),
                ));
            }
        }
        for (name, value) in &raw_links.utm {
            if name.trim().is_empty() || value.trim().is_empty() {
                return Err(fail(
                    "links.utm",
                    format!("{name:?} = {value:?}: names and values must not be empty"),
                ));
            }
        }
        if raw_links.secret_env.is_none() && raw_links.secret_file.is_none() {
            return Err(fail(
                "links",
                "needs secret_env or secret_file: the key that signs link tokens".into(),
            ));
        }
        let links = Links {
            recover: raw_links.recover,
            unsubscribe: raw_links.unsubscribe,
            unsubscribe_mailto: raw_links.unsubscribe_mailto,
            utm: raw_links.utm.into_iter().collect(),
            secret_env: raw_links.secret_env,
            secret_file: raw_links.secret_file.map(|file| base.join(file)),
            recover_ttl: match &raw_links.recover_ttl {
                Some(text) => {
                    parse_duration(text).map_err(|message| fail("links.recover_ttl", message))?
                }
                None => TimeDelta::days(14),
            },
        };

        let duration_or = |key: &str, value: &Option<String>, default: TimeDelta| match value {
            Some(text) => parse_duration(text).map_err(|message| fail(key, message)),
            None => Ok(default),
        };
        let policy_filters = filters(
            &raw_filters!(raw.policy),
            &Filters::default(),
            "policy",
            &fail,
        )?;
        let policy = Policy {
            max_age: duration_or("policy.max_age", &raw.policy.max_age, TimeDelta::days(7))?,
            not_before: match &raw.policy.not_before {
                Some(text) => Some(
                    DateTime::parse_from_rfc3339(text.trim())
                        .map_err(|_| {
                            fail(
                                "policy.not_before",
                                format!(
                                    "{text:?} is not an RFC 3339 time like 2026-11-21T00:00:00Z"
                                ),
                            )
                        })?
                        .with_timezone(&Utc),
                ),
                None => None,
            },
            cooldown: duration_or(
                "policy.cooldown",
                &raw.policy.cooldown,
                TimeDelta::hours(20),
            )?,
            max_per_address: raw.policy.max_per_address,
            window: duration_or("policy.window", &raw.policy.window, TimeDelta::days(7))?,
            quiet_hours: match &raw.policy.quiet_hours {
                Some(text) => Some(
                    parse_quiet_hours(text)
                        .map_err(|message| fail("policy.quiet_hours", message))?,
                ),
                None => None,
            },
            timezone: match &raw.policy.timezone {
                Some(name) => name.trim().parse::<Tz>().map_err(|_| {
                    fail(
                        "policy.timezone",
                        format!("{name:?} is not an IANA time zone like \"Europe/Berlin\""),
                    )
                })?,
                None => Tz::UTC,
            },
            purchased_within: duration_or(
                "policy.purchased_within",
                &raw.policy.purchased_within,
                TimeDelta::days(30),
            )?,
            max_sends_per_run: raw.policy.max_sends_per_run,
            retry_after: duration_or(
                "transport.retry_after",
                &raw.transport.retry_after,
                TimeDelta::minutes(30),
            )?,
            resend_unknown: false,
            out_of_stock: match raw.policy.out_of_stock.as_deref() {
                None | Some("drop-item") => OutOfStock::DropItem,
                Some("skip-cart") => OutOfStock::SkipCart,
                Some("ignore") => OutOfStock::Ignore,
                Some(other) => {
                    return Err(fail(
                        "policy.out_of_stock",
                        format!("{other:?} is not drop-item, skip-cart or ignore"),
                    ));
                }
            },
        };
        let delivery = Delivery {
            max_attempts: match raw.transport.max_attempts {
                Some(0) => return Err(fail("transport.max_attempts", "must be at least 1".into())),
                Some(attempts) => attempts,
                None => 5,
            },
            lease: duration_or("transport.lease", &raw.transport.lease, TimeDelta::zero())?,
        };
        let require_consent = raw.policy.require_consent.unwrap_or(true);

        if raw.steps.is_empty() {
            return Err(fail("steps", "at least one [[steps]] is required".into()));
        }
        let mut seen = BTreeMap::new();
        let mut steps = Vec::with_capacity(raw.steps.len());
        for (index, step) in raw.steps.iter().enumerate() {
            let key = format!("steps[{index}]");
            if step.name.trim().is_empty() {
                return Err(fail(&format!("{key}.name"), "must not be empty".into()));
            }
            if let Some(previous) = seen.insert(step.name.clone(), index) {
                return Err(fail(
                    &format!("{key}.name"),
                    format!("{:?} is already the name of steps[{previous}]", step.name),
                ));
            }
            let after = parse_duration(&step.after)
                .map_err(|message| fail(&format!("{key}.after"), message))?;
            if let Some(previous) = steps.last().map(|s: &Step| s.after)
                && after < previous
            {
                return Err(fail(
                    &format!("{key}.after"),
                    "steps must be in order: each `after` at least the one before".into(),
                ));
            }
            let channel = match step.channel.as_deref() {
                None | Some("email") => {
                    for (field, given) in [
                        ("timeout", step.timeout.is_some()),
                        ("url", step.url.is_some()),
                        ("headers", !step.headers.is_empty()),
                        ("secret_env", step.secret_env.is_some()),
                    ] {
                        if given {
                            return Err(fail(
                                &format!("{key}.{field}"),
                                "belongs to channel = \"webhook\" steps".into(),
                            ));
                        }
                    }
                    Channel::Email
                }
                Some("webhook") => {
                    let url = step.url.clone().ok_or_else(|| {
                        fail(
                            &format!("{key}.url"),
                            "is required for a webhook step".into(),
                        )
                    })?;
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        return Err(fail(
                            &format!("{key}.url"),
                            format!("{url:?} is not an http(s) URL"),
                        ));
                    }
                    Channel::Webhook(Webhook {
                        url,
                        headers: step
                            .headers
                            .iter()
                            .map(|(name, value)| (name.clone(), value.clone()))
                            .collect(),
                        secret_env: step.secret_env.clone(),
                        timeout: match &step.timeout {
                            Some(text) => parse_duration(text)
                                .map_err(|message| fail(&format!("{key}.timeout"), message))?
                                .to_std()
                                .unwrap_or_default(),
                            None => std::time::Duration::from_secs(15),
                        },
                    })
                }
                Some(other) => {
                    return Err(fail(
                        &format!("{key}.channel"),
                        format!("{other:?} is not a channel (expected \"email\" or \"webhook\")"),
                    ));
                }
            };
            let require_sms_consent = match step.require.as_deref() {
                None => false,
                Some("sms_consent") => true,
                Some(other) => {
                    return Err(fail(
                        &format!("{key}.require"),
                        format!("{other:?} is not a requirement (expected \"sms_consent\")"),
                    ));
                }
            };
            let template = match (&step.template, step.variants.first(), &channel) {
                (Some(template), _, _) => template.clone(),
                (None, Some(first), _) => first.clone(),
                // A webhook sends JSON, not a rendered template.
                (None, None, Channel::Webhook(_)) => String::new(),
                (None, None, Channel::Email) => {
                    return Err(fail(
                        &format!("{key}.template"),
                        "is required (or give variants)".into(),
                    ));
                }
            };
            let named = (!template.is_empty()).then_some(&template);
            for name in named.into_iter().chain(&step.variants) {
                if name.contains(['/', '\\']) || name.trim().is_empty() {
                    return Err(fail(
                        &format!("{key}.template"),
                        format!(
                            "{name:?} is not a template name (a file stem in the templates dir)"
                        ),
                    ));
                }
            }
            steps.push(Step {
                name: step.name.clone(),
                after,
                template,
                variants: step.variants.clone(),
                require_consent: step.require_consent.unwrap_or(require_consent),
                filters: filters(&raw_filters!(step), &policy_filters, &key, &fail)?,
                channel,
                require_sms_consent,
                coupon: coupon_rule(step, &key, &fail)?,
            });
        }

        Ok(Config {
            path: path.to_path_buf(),
            store_path: base.join(&raw.store.path),
            templates_dir: base.join(&raw.templates.dir),
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
            catalogs: raw
                .catalog
                .iter()
                .enumerate()
                .map(|(index, catalog)| {
                    let key = format!("catalog[{index}]");
                    let format = match catalog.format.as_deref() {
                        None | Some("native") => Format::Catalog,
                        Some("shopify-products") => Format::ShopifyProducts,
                        Some(other) => {
                            return Err(fail(
                                &format!("{key}.format"),
                                format!("{other:?} is not native or shopify-products"),
                            ));
                        }
                    };
                    let currency = match &catalog.currency {
                        Some(code) => Some(
                            code.parse::<Currency>()
                                .map_err(|message| fail(&format!("{key}.currency"), message))?,
                        ),
                        None if format == Format::ShopifyProducts => {
                            return Err(fail(
                                &format!("{key}.currency"),
                                "is required for shopify-products (the export has no currency)"
                                    .into(),
                            ));
                        }
                        None => None,
                    };
                    Ok(Source {
                        pattern: base.join(&catalog.path).to_string_lossy().into_owned(),
                        sqlite: None,
                        format,
                        columns: Vec::new(),
                        date_format: None,
                        currency,
                        product_url: catalog.product_url.clone(),
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            attribution_window: duration_or(
                "report.attribution_window",
                &raw.report.attribution_window,
                TimeDelta::days(5),
            )?,
        })
    }
}

/// Resolves filters; what `raw` leaves out comes from `inherited`.
fn filters(
    raw: &RawFilters<'_>,
    inherited: &Filters,
    prefix: &str,
    fail: &dyn Fn(&str, String) -> Error,
) -> Result<Filters> {
    let threshold = |key: &str, value: &Option<toml::Value>, inherited: &Option<Threshold>| {
        let key = format!("{prefix}.{key}");
        match value {
            None => Ok(inherited.clone()),
            Some(value) => parse_threshold(value)
                .map(Some)
                .map_err(|message| fail(&key, message)),
        }
    };
    let patterns = |key: &str, value: &Option<Vec<String>>, inherited: &Vec<glob::Pattern>| {
        let key = format!("{prefix}.{key}");
        match value {
            None => Ok(inherited.clone()),
            Some(texts) => texts
                .iter()
                .map(|text| {
                    glob::Pattern::new(text).map_err(|error| {
                        fail(&key, format!("{text:?} is not a glob pattern: {error}"))
                    })
                })
                .collect(),
        }
    };
    Ok(Filters {
        min_value: threshold("min_value", raw.min_value, &inherited.min_value)?,
        max_value: threshold("max_value", raw.max_value, &inherited.max_value)?,
        include_skus: patterns("include_skus", raw.include_skus, &inherited.include_skus)?,
        exclude_skus: patterns("exclude_skus", raw.exclude_skus, &inherited.exclude_skus)?,
        include_categories: patterns(
            "include_categories",
            raw.include_categories,
            &inherited.include_categories,
        )?,
        exclude_categories: patterns(
            "exclude_categories",
            raw.exclude_categories,
            &inherited.exclude_categories,
        )?,
    })
}

/// `"20.00"`, `20`, or `{ EUR = "20", USD = "25" }`.
fn parse_threshold(value: &toml::Value) -> Result<Threshold, String> {
    let amount = |value: &toml::Value| -> Result<Decimal, String> {
        let text = match value {
            toml::Value::String(text) => text.trim().to_string(),
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Float(number) => number.to_string(),
            other => return Err(format!("{other} is not an amount")),
        };
        let amount: Decimal = text
            .parse()
            .map_err(|_| format!("{text:?} is not a decimal amount"))?;
        if amount.is_sign_negative() {
            return Err(format!("{text:?} is negative"));
        }
        Ok(amount)
    };
    match value {
        toml::Value::Table(table) => table
            .iter()
            .map(|(currency, value)| {
                let code: Currency = currency.parse()?;
                Ok((code.as_str().to_string(), amount(value)?))
            })
            .collect::<Result<_, String>>()
            .map(Threshold::PerCurrency),
        other => amount(other).map(Threshold::Any),
    }
}

/// `"21:00-08:00"`: local hours without reminders.
fn parse_quiet_hours(text: &str) -> Result<QuietHours, String> {
    let bad = || format!("{text:?} is not a range of local times like \"21:00-08:00\"");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let time = |part: &str| NaiveTime::parse_from_str(part.trim(), "%H:%M").map_err(|_| bad());
    Ok(QuietHours {
        start: time(start)?,
        end: time(end)?,
    })
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest
/// known key, when one is close enough to be a typo.
fn did_you_mean(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected")?.1;
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|known| (strsim::jaro_winkler(unknown, known), known))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    (best.0 >= 0.8).then(|| format!("\ndid you mean `{}`?", best.1))
}

/// Durations as people write them: `30m`, `1h`, `7d`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let std = humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration like \"30m\", \"24h\" or \"7d\""))?;
    // Times are shifted by these durations: keep them well inside what a
    // date can hold.
    match TimeDelta::from_std(std) {
        Ok(delta) if delta <= TimeDelta::days(36_500) => Ok(delta),
        _ => Err(format!("{text:?} is too long (at most 100 years)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[links]
recover = "https://shop.example/r/{token}"
unsubscribe = "https://shop.example/u/{token}"
secret_env = "RECART_SECRET"

[[steps]]
name = "1h"
after = "1h"
template = "reminder"
"#;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/shop/recart.toml"), text)
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.store_path, Path::new("/shop/recart.db"));
        assert_eq!(config.templates_dir, Path::new("/shop/templates"));
        assert!(
            matches!(config.transport, Transport::File { ref dir } if dir == Path::new("/shop/outbox"))
        );
        assert!(config.steps[0].require_consent);
        assert_eq!(config.policy.max_age, TimeDelta::days(7));
        assert_eq!(config.steps[0].after, TimeDelta::hours(1));
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = parse(&format!("{MINIMAL}\n[policy]\nmin_valeu = \"1\"\n")).unwrap_err();
        assert!(error.to_string().contains("min_valeu"), "{error}");
        assert_eq!(error.exit_code(), crate::error::exit::USAGE);
    }

    #[test]
    fn durations_are_bounded() {
        assert!(parse_duration("7d").is_ok());
        assert!(
            parse_duration("1000000years")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn a_typo_gets_a_suggestion() {
        let error = parse(&format!("{MINIMAL}\n[policy]\nmin_valeu = \"1\"\n")).unwrap_err();
        assert!(
            error.to_string().contains("did you mean `min_value`?"),
            "{error}"
        );
        let error = parse(&format!("{MINIMAL}\n[policy]\nzzzz = \"1\"\n")).unwrap_err();
        assert!(!error.to_string().contains("did you mean"), "{error}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let error = parse(&MINIMAL.replace("after = \"1h\"", "after = \"soon\"")).unwrap_err();
        assert!(error.to_string().contains("steps[0].after"), "{error}");
        let error = parse(&format!(
            "{MINIMAL}\n[[sources]]\npath = \"x.csv\"\nformat = \"excel\"\n"
        ))
        .unwrap_err();
        assert!(error.to_string().contains("sources[0].format"), "{error}");
    }

    #[test]
    fn sqlite_sources_name_the_key_that_is_wrong() {
        let queries = "carts_query = \"SELECT 1\"\nitems_query = \"SELECT 2\"\n";
        let config = parse(&format!(
            "{MINIMAL}\n[[sources]]\nsqlite = \"shop.db\"\n{queries}"
        ))
        .unwrap();
        let sqlite = config.sources[0].sqlite.as_ref().unwrap();
        assert!(sqlite.path.ends_with("shop.db"));
        assert_eq!(sqlite.items_query, "SELECT 2");
        for (source, key) in [
            (
                format!("path = \"x.csv\"\nsqlite = \"shop.db\"\n{queries}"),
                "sources[0].sqlite",
            ),
            ("format = \"native\"\n".to_string(), "sources[0].path"),
            (
                "sqlite = \"shop.db\"\ncarts_query = \"SELECT 1\"\n".to_string(),
                "sources[0].items_query",
            ),
            (
                format!("sqlite = \"shop.db\"\nformat = \"shopify\"\n{queries}"),
                "sources[0].format",
            ),
            (
                format!("path = \"x.csv\"\n{queries}"),
                "sources[0].carts_query",
            ),
        ] {
            let error = parse(&format!("{MINIMAL}\n[[sources]]\n{source}")).unwrap_err();
            assert!(error.to_string().contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn mail_keys_reply_to_mailto_and_utm() {
        let text = MINIMAL.replace(
            "secret_env = \"RECART_SECRET\"",
            "secret_env = \"RECART_SECRET\"\nunsubscribe_mailto = \"mailto:unsub@shop.example?subject=unsubscribe%20{token}\"\nutm = { utm_source = \"recart\", utm_medium = \"email\" }",
        );
        let config = parse(&format!(
            "{text}\n[transport]\nreply_to = \"Help <help@shop.example>\"\n"
        ))
        .unwrap();
        assert_eq!(
            config.reply_to.unwrap().to_string(),
            "Help <help@shop.example>"
        );
        assert_eq!(
            config.links.unsubscribe_mailto.as_deref(),
            Some("mailto:unsub@shop.example?subject=unsubscribe%20{token}")
        );
        assert_eq!(
            config.links.utm,
            vec![
                ("utm_medium".to_string(), "email".to_string()),
                ("utm_source".to_string(), "recart".to_string())
            ]
        );
        assert!(parse(MINIMAL).unwrap().reply_to.is_none());

        for (bad, key) in [
            (
                MINIMAL.replace(
                    "secret_env",
                    "unsubscribe_mailto = \"unsub@shop.example\"\nsecret_env",
                ),
                "links.unsubscribe_mailto",
            ),
            (
                MINIMAL.replace("https://shop.example/r/{token}", "shop.example/r/{token}"),
                "links.recover",
            ),
            (
                format!("{MINIMAL}\n[transport]\nreply_to = \"not an address\"\n"),
                "transport.reply_to",
            ),
            (
                MINIMAL.replace("secret_env", "utm = { utm_source = \"\" }\nsecret_env"),
                "links.utm",
            ),
        ] {
            let error = parse(&bad).unwrap_err();
            assert!(error.to_string().contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn sources_map_columns_and_dates() {
        let config = parse(&format!(
            "{MINIMAL}\n[[sources]]\npath = \"quotes/*.csv\"\nformat = \"native\"\n\
             columns = {{ cart_id = \"Quote ID\", email = \"Customer Email\" }}\n\
             date_format = \"%d/%m/%Y %H:%M\"\n"
        ))
        .unwrap();
        let source = &config.sources[0];
        assert_eq!(
            source.columns,
            vec![
                ("cart_id".to_string(), "Quote ID".to_string()),
                ("email".to_string(), "Customer Email".to_string())
            ]
        );
        assert_eq!(source.date_format.as_deref(), Some("%d/%m/%Y %H:%M"));
        let error = parse(&format!(
            "{MINIMAL}\n[[sources]]\npath = \"x.csv\"\ncolumns = {{ cart = \"Quote ID\" }}\n"
        ))
        .unwrap_err();
        assert!(
            error.to_string().contains("sources[0].columns.cart"),
            "{error}"
        );
        let error = parse(&format!(
            "{MINIMAL}\n[[sources]]\npath = \"x.csv\"\ndate_format = \"%Q\"\n"
        ))
        .unwrap_err();
        assert!(
            error.to_string().contains("sources[0].date_format"),
            "{error}"
        );
    }

    #[test]
    fn coupon_keys() {
        let with = |lines: &str| {
            parse(&MINIMAL.replace(
                "template = \"reminder\"",
                &format!("template = \"reminder\"\n{lines}"),
            ))
        };
        let config = with("coupon = \"generate\"").unwrap();
        assert_eq!(
            config.steps[0].coupon,
            Some(CouponRule::Generate {
                prefix: "COMEBACK-".into(),
                ttl: TimeDelta::days(7)
            })
        );
        let config =
            with("coupon = \"generate\"\ncoupon_prefix = \"BACK10_\"\ncoupon_ttl = \"48h\"")
                .unwrap();
        assert_eq!(
            config.steps[0].coupon,
            Some(CouponRule::Generate {
                prefix: "BACK10_".into(),
                ttl: TimeDelta::hours(48)
            })
        );
        let config = with("coupon = \"pool\"").unwrap();
        assert_eq!(
            config.steps[0].coupon,
            Some(CouponRule::Pool {
                pool: "default".into()
            })
        );
        let config = with("coupon = \"pool\"\ncoupon_pool = \"vip\"").unwrap();
        assert_eq!(
            config.steps[0].coupon,
            Some(CouponRule::Pool { pool: "vip".into() })
        );
        assert_eq!(parse(MINIMAL).unwrap().steps[0].coupon, None);
        for (lines, key) in [
            ("coupon = \"free\"", "steps[0].coupon"),
            (
                "coupon = \"pool\"\ncoupon_prefix = \"X\"",
                "steps[0].coupon_prefix",
            ),
            ("coupon_ttl = \"7d\"", "steps[0].coupon_ttl"),
            (
                "coupon = \"generate\"\ncoupon_pool = \"vip\"",
                "steps[0].coupon_pool",
            ),
            (
                "coupon = \"generate\"\ncoupon_prefix = \"NO SPACE\"",
                "steps[0].coupon_prefix",
            ),
            (
                "coupon = \"generate\"\ncoupon_ttl = \"0s\"",
                "steps[0].coupon_ttl",
            ),
            (
                "coupon = \"pool\"\ncoupon_pool = \"\"",
                "steps[0].coupon_pool",
            ),
        ] {
            let error = with(lines).unwrap_err();
            assert!(error.to_string().contains(key), "{lines}: {error}");
        }
    }
}
