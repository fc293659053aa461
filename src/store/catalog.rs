//! The product catalog: imported like carts, read by SKU.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use crate::error::Result;
use crate::model::Product;

use super::Store;

/// What importing a batch of products did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProductImport {
    pub upserted: u64,
    pub unchanged: u64,
}

impl Store {
    /// Stores products by SKU; the same product again changes nothing.
    pub fn import_products(&self, products: &[Product]) -> Result<ProductImport> {
        self.write(|conn| {
            let mut upsert = conn.prepare_cached(
                "INSERT INTO products (sku, name, image_url, product_url, price_minor, currency, in_stock)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (sku) DO UPDATE SET
                    name = excluded.name, image_url = excluded.image_url,
                    product_url = excluded.product_url, price_minor = excluded.price_minor,
                    currency = excluded.currency, in_stock = excluded.in_stock
                 WHERE (products.name, products.image_url, products.product_url,
                        products.price_minor, products.currency, products.in_stock)
                    IS NOT (excluded.name, excluded.image_url, excluded.product_url,
                            excluded.price_minor, excluded.currency, excluded.in_stock)",
            )?;
            let mut result = ProductImport::default();
            for product in products {
                let changed = upsert.execute(params![
                    product.sku,
                    product.name,
                    product.image_url,
                    product.product_url,
                    product.price_minor,
                    product.currency.as_ref().map(|c| c.as_str().to_string()),
                    product.in_stock,
                ])?;
                if changed == 0 {
                    result.unchanged += 1;
                } else {
                    result.upserted += 1;
                }
            }
            Ok(result)
        })
    }

    /// Whether any product is stored.
    pub fn has_products(&self) -> Result<bool> {
        self.conn()
            .query_row("SELECT EXISTS (SELECT 1 FROM products)", [], |row| {
                row.get(0)
            })
            .map_err(|source| self.error(source))
    }

    /// The catalog entries of these SKUs.
    pub fn products(&self, skus: &[&str]) -> Result<HashMap<String, Product>> {
        let run = || -> rusqlite::Result<HashMap<String, Product>> {
            let mut query = self.conn().prepare_cached(
                "SELECT sku, name, image_url, product_url, price_minor, currency, in_stock
                 FROM products WHERE sku = ?1",
            )?;
            let mut found = HashMap::new();
            for sku in skus {
                if found.contains_key(*sku) {
                    continue;
                }
                let product = query
                    .query_row([sku], |row| {
                        let currency: Option<String> = row.get(5)?;
                        Ok(Product {
                            sku: row.get(0)?,
                            name: row.get(1)?,
                            image_url: row.get(2)?,
                            product_url: row.get(3)?,
                            price_minor: row.get(4)?,
                            currency: currency.and_then(|c| c.parse().ok()),
                            in_stock: row.get(6)?,
                        })
                    })
                    .optional()?;
                if let Some(product) = product {
                    found.insert(sku.to_string(), product);
                }
            }
            Ok(found)
        };
        run().map_err(|source| self.error(source))
    }
}
