//! `recart.toml` → a validated, immutable [`Config`]. Everything that can be
//! checked without touching the network or the store is checked here, so a
//! bad key fails before any side effect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::TimeDelta;
use lettre::message::Mailbox;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::ingest::Format;
use crate::plan::{Policy, Step};

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
    pub shop_name: String,
    pub links: Links,
    pub policy: Policy,
    pub steps: Vec<Step>,
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
}

impl Source {
    /// How to read the source's files.
    pub fn options(&self) -> crate::ingest::Options {
        crate::ingest::Options {
            format: self.format,
            columns: self.columns.clone(),
            date_format: self.date_format.clone(),
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
}

#[derive(Debug, Clone)]
pub struct Links {
    /// URL templates with a `{token}` placeholder.
    pub recover: String,
    pub unsubscribe: String,
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
    path: String,
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
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    recover_ttl: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    require_consent: Option<bool>,
    min_value: Option<String>,
    max_age: Option<String>,
    cooldown: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    after: String,
    template: String,
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
            .map_err(|error| Error::config(path, error.to_string().trim_end().to_string()))?;
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
                if let Some(date_format) = &source.date_format {
                    crate::ingest::check_date_format(date_format).map_err(|message| {
                        fail(&format!("sources[{index}].date_format"), message)
                    })?;
                }
                Ok(Source {
                    pattern: base.join(&source.path).to_string_lossy().into_owned(),
                    format,
                    columns: source
                        .columns
                        .iter()
                        .map(|(field, column)| (field.clone(), column.clone()))
                        .collect(),
                    date_format: source.date_format.clone(),
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
                Transport::Smtp(SmtpSettings {
                    host,
                    port,
                    tls,
                    username: raw.transport.username.clone(),
                    password_env: raw.transport.password_env.clone(),
                    connections,
                    timeout,
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
        let min_value = match &raw.policy.min_value {
            Some(text) => {
                let value: Decimal = text.trim().parse().map_err(|_| {
                    fail(
                        "policy.min_value",
                        format!("{text:?} is not a decimal amount"),
                    )
                })?;
                if value.is_sign_negative() {
                    return Err(fail("policy.min_value", format!("{text:?} is negative")));
                }
                value
            }
            None => Decimal::ZERO,
        };
        let policy = Policy {
            require_consent: raw.policy.require_consent.unwrap_or(true),
            min_value,
            max_age: duration_or("policy.max_age", &raw.policy.max_age, TimeDelta::days(7))?,
            cooldown: duration_or(
                "policy.cooldown",
                &raw.policy.cooldown,
                TimeDelta::hours(20),
            )?,
        };

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
            if step.template.contains(['/', '\\']) || step.template.trim().is_empty() {
                return Err(fail(
                    &format!("{key}.template"),
                    format!(
                        "{:?} is not a template name (a file stem in the templates dir)",
                        step.template
                    ),
                ));
            }
            steps.push(Step {
                name: step.name.clone(),
                after,
                template: step.template.clone(),
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
            links,
            policy,
            steps,
        })
    }
}

/// Durations as people write them: `30m`, `1h`, `7d`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let std = humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration like \"30m\", \"24h\" or \"7d\""))?;
    TimeDelta::from_std(std).map_err(|_| format!("{text:?} is too long"))
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
        assert!(config.policy.require_consent);
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
}
