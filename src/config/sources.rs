//! `[[sources]]` (carts and orders: CSV files or a database) and
//! `[[catalog]]` (products).

use super::raw::{CatalogFormat, RawCatalog, RawSource};
use super::{Context, Source};
use crate::error::Result;
use crate::ingest::Format;
use crate::ingest::sqlite::SqliteSource;
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
    let sqlite = sqlite(cx, key, source)?;
    if sqlite.is_some() && source.encoding.is_some() {
        return Err(cx.fail(
            format!("{key}.encoding"),
            "not for a sqlite source: SQLite hands over its text in UTF-8",
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
        sqlite,
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
fn sqlite(cx: &Context<'_>, key: &str, source: &RawSource) -> Result<Option<SqliteSource>> {
    let key = |name: &str| format!("{key}.{name}");
    match (&source.path, &source.sqlite) {
        (Some(_), Some(_)) => Err(cx.fail(
            key("sqlite"),
            "a source has either path (CSV files) or sqlite, not both",
        )),
        (None, None) => Err(cx.fail(
            key("path"),
            "missing: give path (a glob of CSV files) or sqlite (a database)",
        )),
        (Some(_), None) => {
            for (name, given) in [
                ("carts_query", &source.carts_query),
                ("items_query", &source.items_query),
            ] {
                if given.is_some() {
                    return Err(cx.fail(key(name), "only for a sqlite source"));
                }
            }
            Ok(None)
        }
        (None, Some(database)) => {
            if source.format.is_some() {
                return Err(cx.fail(
                    key("format"),
                    "not for a sqlite source: its queries return native fields",
                ));
            }
            if !source.columns.is_empty() {
                return Err(cx.fail(
                    key("columns"),
                    "not for a sqlite source: name the columns in the queries (AS)",
                ));
            }
            let query = |name: &str, given: Option<&String>| match given {
                Some(query) if !query.trim().is_empty() => Ok(query.clone()),
                _ => Err(cx.fail(key(name), "missing: a sqlite source needs it")),
            };
            Ok(Some(SqliteSource {
                path: cx.resolve(database),
                carts_query: query("carts_query", source.carts_query.as_ref())?,
                items_query: query("items_query", source.items_query.as_ref())?,
                date_format: source.date_format.clone(),
            }))
        }
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
        sqlite: None,
        format,
        columns: Vec::new(),
        date_format: None,
        currency,
        product_url: catalog.product_url.clone(),
        encoding: encoding(cx, key, catalog.encoding.as_deref())?,
    })
}
