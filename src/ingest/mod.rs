//! Ingest: input files → [`Cart`] snapshots and [`Order`]s, with every bad
//! row reported by file, line and field and every good row kept.

mod native;
mod table;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::model::{Cart, Order};

/// The input formats `import --format` and `[[sources]] format` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Recognised by the header.
    Auto,
    Native,
    NativeOrders,
    Shopify,
    ShopifyOrders,
}

impl Format {
    /// Orders, not carts.
    pub fn is_orders(self) -> bool {
        matches!(self, Format::NativeOrders | Format::ShopifyOrders)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Native => "native",
            Format::NativeOrders => "native-orders",
            Format::Shopify => "shopify",
            Format::ShopifyOrders => "shopify-orders",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Format::Auto),
            "native" => Ok(Format::Native),
            "native-orders" => Ok(Format::NativeOrders),
            "shopify" => Ok(Format::Shopify),
            "shopify-orders" => Ok(Format::ShopifyOrders),
            other => Err(format!(
                "{other:?} is not a format (expected auto, native, native-orders, shopify or shopify-orders)"
            )),
        }
    }
}

/// One rejected row: where it is, which field, and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub path: PathBuf,
    /// 1-based line in the file where the row starts (the header is line 1).
    pub line: u64,
    pub field: String,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: field {}: {}",
            self.path.display(),
            self.line,
            self.field,
            self.message
        )
    }
}

/// What one file held.
#[derive(Debug, Default)]
pub struct Parsed {
    pub format: Option<Format>,
    pub rows: u64,
    pub carts: Vec<Cart>,
    pub orders: Vec<Order>,
    /// Rows not imported (a bad row rejects its whole cart, so this counts
    /// the cart's other rows too).
    pub rejected_rows: u64,
    pub errors: Vec<RowError>,
}

/// Reads one file in the given format (or the one its header shows).
pub fn read_file(path: &Path, format: Format) -> Result<Parsed> {
    let bytes = std::fs::read(path).map_err(|source| Error::io(path, source))?;
    let table = table::Table::new(path, &bytes)?;
    let format = match format {
        Format::Auto => detect(&table).ok_or_else(|| Error::Input {
            path: path.to_path_buf(),
            message: "the header matches no known format (native, native-orders); give --format"
                .into(),
        })?,
        other => other,
    };
    let mut parsed = match format {
        Format::Native => native::read_carts(&table)?,
        Format::NativeOrders => native::read_orders(&table)?,
        Format::Shopify | Format::ShopifyOrders => {
            return Err(Error::Usage(format!(
                "{}: format {format} is not supported yet",
                path.display()
            )));
        }
        Format::Auto => unreachable!("resolved above"),
    };
    parsed.format = Some(format);
    Ok(parsed)
}

fn detect(table: &table::Table) -> Option<Format> {
    if table.has_columns(native::CART_COLUMNS_REQUIRED) {
        Some(Format::Native)
    } else if table.has_columns(native::ORDER_COLUMNS_REQUIRED) {
        Some(Format::NativeOrders)
    } else {
        None
    }
}
