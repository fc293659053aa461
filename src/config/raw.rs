//! The file's shape, as serde reads it: every key, its type, and the closed
//! sets of words some keys take. What serde cannot check (a key that needs
//! another, URLs, globs…) is checked by the section modules.
//!
//! `deny_unknown_fields` everywhere: a typo'd key is an error naming the
//! key, never silently ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::duration::HumanDuration;
use super::{DkimAlgorithm, Tls};
use crate::ingest::Format;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub templates: RawTemplates,
    #[serde(default)]
    pub shop: RawShop,
    #[serde(default)]
    pub sources: Vec<RawSource>,
    #[serde(default)]
    pub transport: RawTransport,
    pub links: Option<RawLinks>,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub steps: Vec<RawStep>,
    #[serde(default)]
    pub report: RawReport,
    #[serde(default)]
    pub catalog: Vec<RawCatalog>,
}

/// `[report]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    pub attribution_window: Option<HumanDuration>,
}

/// `[store]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// `postgres://user@host/db`: the store on PostgreSQL instead.
    pub url: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: default_store_path(),
            url: None,
            password_env: None,
            password_file: None,
        }
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("recart.db")
}

/// `[templates]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplates {
    #[serde(default = "default_templates_dir")]
    pub dir: PathBuf,
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

/// `[shop]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShop {
    pub name: Option<String>,
    pub url: Option<String>,
}

/// One `[[sources]]`: CSV files (`path`) or a database (`sqlite`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub path: Option<String>,
    pub sqlite: Option<String>,
    /// `mysql://user@host:port/db` or `postgres://user@host/db`.
    pub url: Option<String>,
    pub preset: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub timezone: Option<String>,
    pub timeout: Option<HumanDuration>,
    pub carts_query: Option<String>,
    pub items_query: Option<String>,
    pub orders_query: Option<String>,
    pub format: Option<SourceFormat>,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    pub date_format: Option<String>,
    pub encoding: Option<String>,
}

/// `[[sources]] format`: the words of [`Format`].
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum SourceFormat {
    Auto,
    Native,
    NativeOrders,
    Shopify,
    ShopifyOrders,
    Catalog,
    ShopifyProducts,
}

impl From<SourceFormat> for Format {
    fn from(format: SourceFormat) -> Self {
        match format {
            SourceFormat::Auto => Format::Auto,
            SourceFormat::Native => Format::Native,
            SourceFormat::NativeOrders => Format::NativeOrders,
            SourceFormat::Shopify => Format::Shopify,
            SourceFormat::ShopifyOrders => Format::ShopifyOrders,
            SourceFormat::Catalog => Format::Catalog,
            SourceFormat::ShopifyProducts => Format::ShopifyProducts,
        }
    }
}

/// One `[[catalog]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCatalog {
    pub path: String,
    #[serde(default)]
    pub format: CatalogFormat,
    pub currency: Option<String>,
    pub product_url: Option<String>,
    pub encoding: Option<String>,
}

/// `[[catalog]] format`.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub(super) enum CatalogFormat {
    /// [`Format::Catalog`].
    #[default]
    Native,
    ShopifyProducts,
}

/// `[transport]`: how mails leave, and the ledger's rules for sending.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransport {
    #[serde(default)]
    pub kind: TransportKind,
    pub dir: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<Tls>,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub connections: Option<usize>,
    pub timeout: Option<HumanDuration>,
    pub from: Option<String>,
    pub rate_limit: Option<f64>,
    pub retry_after: Option<HumanDuration>,
    pub max_attempts: Option<u32>,
    pub lease: Option<HumanDuration>,
    pub reply_to: Option<String>,
    /// The envelope sender, with a `{token}` (VERP): where bounces go.
    pub return_path: Option<String>,
    pub dkim: Option<RawDkim>,
}

/// `[transport.dkim]`: how mails are signed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDkim {
    pub domain: String,
    pub selector: String,
    pub key_file: PathBuf,
    #[serde(default)]
    pub algorithm: DkimAlgorithm,
}

/// `transport.kind`.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub(super) enum TransportKind {
    #[default]
    File,
    Smtp,
}

/// `[links]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLinks {
    pub recover: Option<String>,
    pub unsubscribe: Option<String>,
    pub base: Option<String>,
    pub cart: Option<String>,
    pub unsubscribe_mailto: Option<String>,
    #[serde(default)]
    pub utm: BTreeMap<String, String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub recover_ttl: Option<HumanDuration>,
}

/// `[policy]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub require_consent: Option<bool>,
    pub max_age: Option<HumanDuration>,
    pub not_before: Option<String>,
    pub cooldown: Option<HumanDuration>,
    pub max_per_address: Option<u32>,
    pub window: Option<HumanDuration>,
    pub quiet_hours: Option<String>,
    pub timezone: Option<String>,
    pub purchased_within: Option<HumanDuration>,
    pub max_sends_per_run: Option<usize>,
    #[serde(default)]
    pub out_of_stock: StockRule,
    pub min_value: Option<toml::Value>,
    pub max_value: Option<toml::Value>,
    pub include_skus: Option<Vec<String>>,
    pub exclude_skus: Option<Vec<String>>,
    pub include_categories: Option<Vec<String>>,
    pub exclude_categories: Option<Vec<String>>,
}

/// `policy.out_of_stock`: the words of [`crate::plan::OutOfStock`].
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub(super) enum StockRule {
    #[default]
    DropItem,
    SkipCart,
    Ignore,
}

impl From<StockRule> for crate::plan::OutOfStock {
    fn from(rule: StockRule) -> Self {
        match rule {
            StockRule::DropItem => Self::DropItem,
            StockRule::SkipCart => Self::SkipCart,
            StockRule::Ignore => Self::Ignore,
        }
    }
}

/// One `[[steps]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub name: String,
    pub after: HumanDuration,
    pub template: Option<String>,
    #[serde(default)]
    pub variants: Vec<String>,
    pub require_consent: Option<bool>,
    pub min_value: Option<toml::Value>,
    pub max_value: Option<toml::Value>,
    pub include_skus: Option<Vec<String>>,
    pub exclude_skus: Option<Vec<String>>,
    pub include_categories: Option<Vec<String>>,
    pub exclude_categories: Option<Vec<String>>,
    #[serde(default)]
    pub channel: ChannelKind,
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub secret_env: Option<String>,
    pub require: Option<Requirement>,
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub cross_channel: bool,
    #[serde(default)]
    pub coupon: CouponKind,
    pub coupon_prefix: Option<String>,
    pub coupon_ttl: Option<HumanDuration>,
    pub coupon_pool: Option<String>,
}

/// A step's `channel`.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub(super) enum ChannelKind {
    #[default]
    Email,
    Webhook,
}

/// A step's `require`: what a cart must have besides the step's filters.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Requirement {
    /// Spelled as the CSV column it stands for, hence not kebab-case.
    #[serde(rename = "sms_consent")]
    SmsConsent,
}

/// A step's `coupon`.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub(super) enum CouponKind {
    #[default]
    None,
    Pool,
    Generate,
}

/// Content filters: in `[policy]`, and per step where they replace the
/// policy's. (Repeated in both structs rather than `flatten`ed: serde's
/// `deny_unknown_fields` does not work through `flatten`.)
pub(super) struct RawFilters<'a> {
    pub min_value: Option<&'a toml::Value>,
    pub max_value: Option<&'a toml::Value>,
    pub include_skus: Option<&'a [String]>,
    pub exclude_skus: Option<&'a [String]>,
    pub include_categories: Option<&'a [String]>,
    pub exclude_categories: Option<&'a [String]>,
}

/// The filter keys of `[policy]` and of a step, which are spelled alike.
macro_rules! raw_filters {
    ($raw:expr) => {
        RawFilters {
            min_value: $raw.min_value.as_ref(),
            max_value: $raw.max_value.as_ref(),
            include_skus: $raw.include_skus.as_deref(),
            exclude_skus: $raw.exclude_skus.as_deref(),
            include_categories: $raw.include_categories.as_deref(),
            exclude_categories: $raw.exclude_categories.as_deref(),
        }
    };
}

impl RawPolicy {
    pub fn filters(&self) -> RawFilters<'_> {
        raw_filters!(self)
    }
}

impl RawStep {
    pub fn filters(&self) -> RawFilters<'_> {
        raw_filters!(self)
    }
}
