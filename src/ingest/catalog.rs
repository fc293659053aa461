//! Product catalogs: recart's own (`sku,name,image_url,product_url,price,
//! currency,in_stock`) and Shopify's products export (one row per variant;
//! image rows carry only `Handle` and `Image Src`).

use crate::error::Result;
use crate::model::{Currency, Product, parse_bool};

use super::Sink;
use super::group::{Emit, Grouping};
use super::table::Row;
use super::{Options, RowError};

pub const NATIVE_REQUIRED: &[&str] = &["sku", "name", "price", "in_stock"];
pub const SHOPIFY_REQUIRED: &[&str] = &["Handle", "Title", "Variant SKU", "Variant Price"];

/// The native catalog: one row per SKU.
pub(crate) struct Native;

impl Grouping for Native {
    type Item = Product;
    const NOUN: &'static str = "product";

    fn required(&self) -> &'static [&'static str] {
        NATIVE_REQUIRED
    }

    fn key_field(&self) -> &'static str {
        "sku"
    }

    fn key(&self, row: &Row<'_>) -> Result<String, RowError> {
        match row.id("sku")? {
            "" => Err(row.error("sku", "is blank: every product needs its SKU".into())),
            sku => Ok(sku.to_string()),
        }
    }

    fn start(&self, row: &Row<'_>, key: &str) -> Result<Option<Product>, RowError> {
        let currency = match row.get("currency")? {
            "" => None,
            text => Some(
                text.parse::<Currency>()
                    .map_err(|message| row.error("currency", message))?,
            ),
        };
        let price_minor = match (row.get("price")?, &currency) {
            ("", _) => None,
            (text, Some(currency)) => Some(
                currency
                    .parse_amount(text)
                    .map_err(|message| row.error("price", message))?,
            ),
            (_, None) => {
                return Err(row.error(
                    "currency",
                    "is blank but the row has a price; expected a currency code like EUR".into(),
                ));
            }
        };
        let in_stock = match row.get("in_stock")? {
            "" => None,
            text => Some(parse_bool(text).map_err(|message| row.error("in_stock", message))?),
        };
        Ok(Some(Product {
            sku: key.to_string(),
            name: row.name("name")?,
            image_url: row.get("image_url")?.to_string(),
            product_url: row.get("product_url")?.to_string(),
            price_minor,
            currency,
            in_stock,
        }))
    }

    fn add(&self, row: &Row<'_>, _product: &mut Product) -> Result<(), RowError> {
        Err(row.error(
            "sku",
            "repeats a SKU of an earlier row; expected one row per product".into(),
        ))
    }
}

/// Shopify's products export, grouped by `Handle`: the first row names the
/// product, every row with a `Variant SKU` is a variant, rows with only an
/// `Image Src` add images.
pub(crate) struct ShopifyProducts {
    currency: Currency,
    product_url: Option<String>,
}

impl ShopifyProducts {
    pub fn new(options: &Options) -> Result<ShopifyProducts, String> {
        Ok(ShopifyProducts {
            currency: options.currency.clone().ok_or(
                "Shopify's products export has no currency column: give its currency with \
                 `--currency EUR` or `currency` on its [[catalog]] entry",
            )?,
            product_url: options.product_url.clone(),
        })
    }

    fn variant(
        &self,
        row: &Row<'_>,
        title: &str,
        handle: &str,
    ) -> Result<Option<Product>, RowError> {
        let sku = row.id("Variant SKU")?;
        if sku.is_empty() {
            return Ok(None);
        }
        let price_minor = match row.get("Variant Price")? {
            "" => None,
            text => Some(
                self.currency
                    .parse_amount(text)
                    .map_err(|message| row.error("Variant Price", message))?,
            ),
        };
        let in_stock = match row.get("Variant Inventory Qty")? {
            "" => None,
            text => Some(
                text.parse::<f64>().map_err(|_| {
                    row.error("Variant Inventory Qty", format!("{text:?} is not a number"))
                })? > 0.0,
            ),
        };
        let option = [row.name("Option1 Value")?, row.name("Option2 Value")?]
            .into_iter()
            .filter(|value| !value.is_empty() && value != "Default Title")
            .collect::<Vec<_>>()
            .join(" / ");
        let name = if option.is_empty() {
            title.to_string()
        } else {
            format!("{title} ({option})")
        };
        Ok(Some(Product {
            sku: sku.to_string(),
            name,
            // Else the product's image, when the product is complete.
            image_url: row.get("Variant Image")?.to_string(),
            product_url: self
                .product_url
                .as_deref()
                .map(|url| url.replace("{handle}", handle))
                .unwrap_or_default(),
            price_minor,
            currency: Some(self.currency.clone()),
            in_stock,
        }))
    }
}

/// One product of Shopify's export: its variants, and its image for the
/// variants without one of their own.
pub(crate) struct ShopifyProduct {
    title: String,
    /// The first row's `Image Src` (the product's first image), else the
    /// first image of a later row.
    image: String,
    variants: Vec<Product>,
}

impl Emit for ShopifyProduct {
    fn emit(items: Vec<Self>, sink: &mut dyn Sink) -> Result<()> {
        let products = items
            .into_iter()
            .flat_map(|product| {
                let ShopifyProduct {
                    image, variants, ..
                } = product;
                variants.into_iter().map(move |mut variant| {
                    if variant.image_url.is_empty() {
                        variant.image_url.clone_from(&image);
                    }
                    variant
                })
            })
            .collect();
        sink.products(products)
    }
}

impl Grouping for ShopifyProducts {
    type Item = ShopifyProduct;
    const NOUN: &'static str = "product";

    fn required(&self) -> &'static [&'static str] {
        SHOPIFY_REQUIRED
    }

    fn key_field(&self) -> &'static str {
        "Handle"
    }

    fn key(&self, row: &Row<'_>) -> Result<String, RowError> {
        match row.id("Handle")? {
            "" => Err(row.error(
                "Handle",
                "is blank: every row needs its product's handle".into(),
            )),
            handle => Ok(handle.to_string()),
        }
    }

    fn start(&self, row: &Row<'_>, key: &str) -> Result<Option<ShopifyProduct>, RowError> {
        let title = row.name("Title")?;
        if title.is_empty() {
            return Err(row.error(
                "Title",
                "is blank on the product's first row; expected its title".into(),
            ));
        }
        Ok(Some(ShopifyProduct {
            variants: self.variant(row, &title, key)?.into_iter().collect(),
            image: row.get("Image Src")?.to_string(),
            title,
        }))
    }

    fn add(&self, row: &Row<'_>, product: &mut ShopifyProduct) -> Result<(), RowError> {
        let title = match row.name("Title")? {
            text if text.is_empty() => product.title.clone(),
            text => text,
        };
        let handle = self.key(row)?;
        if let Some(variant) = self.variant(row, &title, &handle)? {
            product.variants.push(variant);
        }
        // A later row's `Image Src` is a later image of the product (the
        // export lists images beside the variants, not for them): the
        // product's image only if the first row had none.
        if product.image.is_empty() {
            product.image = row.get("Image Src")?.to_string();
        }
        Ok(())
    }
}
