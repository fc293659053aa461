//! The product catalog: imported like carts, read by SKU.

use std::collections::{HashMap, HashSet};

use postgres::types::Type;
use rusqlite::{Connection, params};

use crate::error::Result;
use crate::model::Product;

use super::Store;
use super::engine::{DbResult, Engine, Row, args};
use super::staging::{Staging, stage};

/// What importing a batch of products did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProductImport {
    pub upserted: u64,
    pub unchanged: u64,
}

impl Store {
    /// Stores products by SKU; the same product again changes nothing.
    pub fn import_products(&self, products: &[Product]) -> Result<ProductImport> {
        self.write_db(|db| {
            let mut result = ProductImport::default();
            let Some(conn) = db.sqlite() else {
                // Set-wise, which needs distinct SKUs: a run is cut where a
                // SKU comes back, so the later product meets the earlier
                // one as stored, as if written one by one.
                let mut seen: HashSet<&str> = HashSet::with_capacity(products.len());
                let mut start = 0;
                for (index, product) in products.iter().enumerate() {
                    if !seen.insert(&product.sku) {
                        import_postgres(db, &products[start..index], &mut result)?;
                        start = index;
                        seen.clear();
                        seen.insert(&product.sku);
                    }
                }
                import_postgres(db, &products[start..], &mut result)?;
                return Ok(result);
            };
            import_one_by_one(conn, products, &mut result)?;
            Ok(result)
        })
    }

    /// Whether any product is stored.
    pub fn has_products(&self) -> Result<bool> {
        self.db()
            .value("SELECT EXISTS (SELECT 1 FROM products)", args![])
            .map_err(|source| self.error(source))
    }

    /// The catalog entries of these SKUs.
    pub fn products(&self, skus: &[&str]) -> Result<HashMap<String, Product>> {
        let db = self.db();
        let mut found = HashMap::new();
        let run = if db.is_postgres() {
            // One round trip for them all.
            let keys: Vec<String> = skus.iter().map(|sku| (*sku).to_owned()).collect();
            db.each(
                "SELECT sku, name, image_url, product_url, price_minor, currency, in_stock
                 FROM products WHERE sku IN rarray(?1)",
                args![&keys],
                |row| {
                    let product = read_product(row)?;
                    found.insert(product.sku.clone(), product);
                    Ok(())
                },
            )
        } else {
            skus.iter().try_for_each(|sku| {
                if found.contains_key(*sku) {
                    return Ok(());
                }
                let product = db.one(
                    "SELECT sku, name, image_url, product_url, price_minor, currency, in_stock
                     FROM products WHERE sku = ?1",
                    args![*sku],
                    read_product,
                )?;
                if let Some(product) = product {
                    found.insert((*sku).to_string(), product);
                }
                Ok(())
            })
        };
        run.map_err(|source| self.error(source))?;
        Ok(found)
    }
}

fn read_product(row: &Row<'_>) -> DbResult<Product> {
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
}

/// Stores the products on `SQLite`, one statement each.
fn import_one_by_one(
    conn: &Connection,
    products: &[Product],
    result: &mut ProductImport,
) -> rusqlite::Result<()> {
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
    Ok(())
}

/// The staging table of a batch's products on PostgreSQL.
const PRODUCT_STAGING: Staging = Staging {
    name: "import_products",
    columns: "sku TEXT, name TEXT, image_url TEXT, product_url TEXT, price_minor BIGINT,
              currency TEXT, in_stock BIGINT",
    copied: "sku, name, image_url, product_url, price_minor, currency, in_stock",
    types: &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::INT8,
    ],
};

/// Stores products of distinct SKUs on PostgreSQL: copied into the staging
/// table, then one upsert that leaves a product the same as stored alone.
fn import_postgres(db: &Engine, products: &[Product], result: &mut ProductImport) -> DbResult<()> {
    if products.is_empty() {
        return Ok(());
    }
    stage(db, &PRODUCT_STAGING, |writer| {
        for product in products {
            writer.write(&[
                &product.sku,
                &product.name,
                &product.image_url,
                &product.product_url,
                &product.price_minor,
                &product
                    .currency
                    .as_ref()
                    .map(crate::model::Currency::as_str),
                &product.in_stock.map(i64::from),
            ])?;
        }
        Ok(())
    })?;
    let upserted = db.execute(
        "INSERT INTO products (sku, name, image_url, product_url, price_minor, currency, in_stock)
         SELECT sku, name, image_url, product_url, price_minor, currency, in_stock
         FROM import_products
         ON CONFLICT (sku) DO UPDATE SET
            name = excluded.name, image_url = excluded.image_url,
            product_url = excluded.product_url, price_minor = excluded.price_minor,
            currency = excluded.currency, in_stock = excluded.in_stock
         WHERE (products.name, products.image_url, products.product_url,
                products.price_minor, products.currency, products.in_stock)
            IS DISTINCT FROM (excluded.name, excluded.image_url, excluded.product_url,
                              excluded.price_minor, excluded.currency, excluded.in_stock)",
        args![],
    )?;
    result.upserted += upserted;
    result.unchanged += products.len() as u64 - upserted;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_stores;

    fn product(sku: &str, name: &str, price: Option<i64>, in_stock: Option<bool>) -> Product {
        Product {
            sku: sku.into(),
            name: name.into(),
            image_url: format!("https://cdn.example/{sku}.jpg"),
            product_url: String::new(),
            price_minor: price,
            currency: price.map(|_| "EUR".parse().unwrap()),
            in_stock,
        }
    }

    /// Products round trip on both engines, counted as `SQLite` always
    /// counted them: a product the same as stored (its unknowns included)
    /// is unchanged, a SKU again in one batch meets the one before it.
    #[test]
    fn products_round_trip_on_both_engines() {
        let mut outcomes = Vec::new();
        for (engine, store) in both_stores("recart_unit_import_products") {
            assert!(!store.has_products().unwrap(), "{engine}");
            let first = store
                .import_products(&[
                    product("P1", "Shoe", Some(1250), Some(true)),
                    product("P2", "Sock \t\\N", None, None),
                    product("P1", "Shoe", Some(1250), Some(true)),
                    product("P1", "Red shoe", Some(1100), Some(false)),
                ])
                .unwrap();
            assert_eq!((first.upserted, first.unchanged), (3, 1), "{engine}");
            let again = store
                .import_products(&[
                    product("P2", "Sock \t\\N", None, None),
                    product("P1", "Red shoe", Some(1100), Some(false)),
                    product("P3", "Hat", Some(900), None),
                ])
                .unwrap();
            assert_eq!((again.upserted, again.unchanged), (1, 2), "{engine}");
            let priced = store
                .import_products(&[product("P2", "Sock \t\\N", Some(300), Some(true))])
                .unwrap();
            assert_eq!((priced.upserted, priced.unchanged), (1, 0), "{engine}");
            assert!(store.has_products().unwrap(), "{engine}");
            let found = store.products(&["P1", "P3", "nope", "P1"]).unwrap();
            assert_eq!(found.len(), 2, "{engine}");
            assert_eq!(
                found["P1"],
                product("P1", "Red shoe", Some(1100), Some(false)),
                "{engine}"
            );
            assert_eq!(
                found["P3"],
                product("P3", "Hat", Some(900), None),
                "{engine}"
            );
            let all = store.products(&["P1", "P2", "P3"]).unwrap();
            outcomes.push((engine, all));
        }
        for (engine, all) in &outcomes[1..] {
            assert_eq!(all, &outcomes[0].1, "{engine}");
        }
    }
}
