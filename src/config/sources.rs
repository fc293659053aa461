//! `[[sources]]` (carts and orders: CSV files or a database) and
//! `[[catalog]]` (products).

use super::raw::{CatalogFormat, RawCatalog, RawSource};
use super::{Context, Source};
use crate::error::Result;
use crate::ingest::Format;
use crate::ingest::database::{DatabaseSource, Kind};
use crate::model::Currency;

/// Every `[[sources]]`.
pub(super) fn sources(cx: &Context<'_>, raw: &[RawSource]) -> Result<Vec<Source>> {
    raw.iter()
        .enumerate()
        .map(|(index, source)| self::source(cx, &format!("sources[{index}]"), source))
        .collect()
}

/// One `[[sources]]`, named `key` in errors.
fn source(cx: &Context<'_>, key: &str, source: &RawSource) -> Result<Source> {
    for field in source.columns.keys() {
        if !crate::ingest::NATIVE_FIELDS.contains(&field.as_str()) {
            return Err(cx.fail(
                format!("{key}.columns.{field}"),
                format!(
                    "is not a native field (expected one of {})",
                    crate::ingest::NATIVE_FIELDS.join(", ")
                ),
            ));
        }
    }
    let database = database(cx, key, source)?;
    if database.is_some() && source.encoding.is_some() {
        return Err(cx.fail(
            format!("{key}.encoding"),
            "not for a database source: its text arrives in UTF-8",
        ));
    }
    let encoding = encoding(cx, key, source.encoding.as_deref())?;
    if let Some(date_format) = &source.date_format {
        crate::ingest::check_date_format(date_format)
            .map_err(|message| cx.fail(format!("{key}.date_format"), message))?;
    }
    Ok(Source {
        pattern: source
            .path
            .as_ref()
            .map(|path| cx.resolve(path).to_string_lossy().into_owned())
            .unwrap_or_default(),
        database,
        format: source.format.map_or(Format::Auto, Format::from),
        columns: source
            .columns
            .iter()
            .map(|(field, column)| (field.clone(), column.clone()))
            .collect(),
        date_format: source.date_format.clone(),
        currency: None,
        product_url: None,
        encoding,
    })
}

/// A source's `encoding`: `None` for UTF-8, the default.
fn encoding(
    cx: &Context<'_>,
    key: &str,
    label: Option<&str>,
) -> Result<Option<&'static encoding_rs::Encoding>> {
    label
        .map(|label| {
            crate::ingest::parse_encoding(label)
                .map_err(|message| cx.fail(format!("{key}.encoding"), message))
        })
        .transpose()
        .map(|encoding| encoding.filter(|&encoding| encoding != encoding_rs::UTF_8))
}

/// A source's database, if it has one rather than `path`; the keys that
/// belong to the other kind are refused.
fn database(cx: &Context<'_>, key: &str, source: &RawSource) -> Result<Option<DatabaseSource>> {
    let key = |name: &str| format!("{key}.{name}");
    let kind = match (&source.path, &source.sqlite, &source.url) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err(cx.fail(
                key(if source.sqlite.is_some() {
                    "sqlite"
                } else {
                    "url"
                }),
                "a source has one of path (CSV files), sqlite or url (a database)",
            ));
        }
        (None, None, None) => {
            return Err(cx.fail(
                key("path"),
                "missing: give path (a glob of CSV files), sqlite or url (a database)",
            ));
        }
        (Some(_), None, None) => {
            for (name, given) in [
                ("carts_query", source.carts_query.is_some()),
                ("items_query", source.items_query.is_some()),
                ("orders_query", source.orders_query.is_some()),
                ("preset", source.preset.is_some()),
                ("password_env", source.password_env.is_some()),
                ("password_file", source.password_file.is_some()),
                ("timezone", source.timezone.is_some()),
                ("timeout", source.timeout.is_some()),
            ] {
                if given {
                    return Err(cx.fail(key(name), "only for a database source (sqlite or url)"));
                }
            }
            return Ok(None);
        }
        (None, Some(path), None) => Kind::Sqlite(cx.resolve(path)),
        (None, None, Some(url)) => url_kind(url).map_err(|message| cx.fail(key("url"), message))?,
    };
    if source.format.is_some() {
        return Err(cx.fail(
            key("format"),
            "not for a database source: its queries return native fields",
        ));
    }
    if !source.columns.is_empty() {
        return Err(cx.fail(
            key("columns"),
            "not for a database source: name the columns in the queries (AS)",
        ));
    }
    let preset = match &source.preset {
        Some(name) => Some(
            crate::ingest::presets::for_kind(name, &kind)
                .map_err(|message| cx.fail(key("preset"), message))?,
        ),
        None => None,
    };
    let given = |own: &Option<String>, preset_query: Option<&str>| {
        own.clone()
            .or_else(|| preset_query.map(ToString::to_string))
            .filter(|query| !query.trim().is_empty())
    };
    let query = |name: &str, own: &Option<String>, preset_query: Option<&str>| {
        given(own, preset_query).ok_or_else(|| {
            cx.fail(
                key(name),
                "missing: a database source needs it (or a preset)",
            )
        })
    };
    let timezone = match (&source.timezone, &preset) {
        (Some(name), _) => name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
            cx.fail(
                key("timezone"),
                format!("{name:?} is not an IANA time zone"),
            )
        })?,
        (None, Some(preset)) if preset.local_time => {
            return Err(cx.fail(
                key("timezone"),
                format!(
                    "missing: {} stores times in the shop's own zone; give it (e.g. \"Europe/Paris\")",
                    preset.name
                ),
            ));
        }
        (None, _) => chrono_tz::Tz::UTC,
    };
    if source.password_env.is_some() && source.password_file.is_some() {
        return Err(cx.fail(
            key("password_file"),
            "give password_env or password_file, not both",
        ));
    }
    let items_query = query(
        "items_query",
        &source.items_query,
        preset.as_ref().map(|p| p.items_query.as_str()),
    )?;
    // A server's items come a batch of carts at a time (SQLite's a cart at
    // a time: its driver checks `:cart_id`).
    let example = match kind {
        Kind::Mysql(_) => Some("WHERE quote_id IN (:cart_ids)"),
        Kind::Postgres(_) => Some("WHERE order_id = ANY(:cart_ids)"),
        Kind::Sqlite(_) => None,
    };
    if let Some(example) = example.filter(|_| !items_query.contains(":cart_ids")) {
        return Err(cx.fail(
            key("items_query"),
            format!("has no :cart_ids (expected e.g. {example})"),
        ));
    }
    Ok(Some(DatabaseSource {
        kind,
        carts_query: query(
            "carts_query",
            &source.carts_query,
            preset.as_ref().map(|p| p.carts_query.as_str()),
        )?,
        items_query,
        orders_query: given(
            &source.orders_query,
            preset.as_ref().map(|p| p.orders_query.as_str()),
        ),
        date_format: source.date_format.clone(),
        timezone,
        timeout: source
            .timeout
            .as_ref()
            .and_then(|timeout| timeout.0.to_std().ok())
            .unwrap_or(std::time::Duration::from_mins(1)),
        password_env: source.password_env.clone(),
        password_file: source.password_file.as_ref().map(|path| cx.resolve(path)),
    }))
}

/// The database a URL names, by its scheme; a password in it is refused.
fn url_kind(url: &str) -> std::result::Result<Kind, String> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "mysql" | "mariadb" => {
            let url = url.replacen("mariadb://", "mysql://", 1);
            crate::ingest::mysql::options(&url)?;
            Ok(Kind::Mysql(url))
        }
        "postgres" | "postgresql" => {
            crate::db_url::PostgresUrl::parse(url)?;
            Ok(Kind::Postgres(url.to_string()))
        }
        _ => Err(format!(
            "{url:?}: expected mysql://user@host:port/db or postgres://user@host:port/db"
        )),
    }
}

/// Every `[[catalog]]`.
pub(super) fn catalogs(cx: &Context<'_>, raw: &[RawCatalog]) -> Result<Vec<Source>> {
    raw.iter()
        .enumerate()
        .map(|(index, catalog)| self::catalog(cx, &format!("catalog[{index}]"), catalog))
        .collect()
}

/// One `[[catalog]]`, named `key` in errors.
fn catalog(cx: &Context<'_>, key: &str, catalog: &RawCatalog) -> Result<Source> {
    let format = match catalog.format {
        CatalogFormat::Native => Format::Catalog,
        CatalogFormat::ShopifyProducts => Format::ShopifyProducts,
    };
    let currency = match &catalog.currency {
        Some(code) => Some(
            code.parse::<Currency>()
                .map_err(|message| cx.fail(format!("{key}.currency"), message))?,
        ),
        None if format == Format::ShopifyProducts => {
            return Err(cx.fail(
                format!("{key}.currency"),
                "is required for shopify-products (the export has no currency)",
            ));
        }
        None => None,
    };
    Ok(Source {
        pattern: cx.resolve(&catalog.path).to_string_lossy().into_owned(),
        database: None,
        format,
        columns: Vec::new(),
        date_format: None,
        currency,
        product_url: catalog.product_url.clone(),
        encoding: encoding(cx, key, catalog.encoding.as_deref())?,
    })
}
