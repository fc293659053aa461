//! Filling a cart's items from the product catalog before rendering.

use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::model::{Cart, Product};
use crate::plan::OutOfStock;

/// Fills what the cart's items leave out — name (blank, or just the SKU),
/// image, product URL, price (zero) — from the catalog by SKU; the cart's
/// own values win where present. Items the catalog says are out of stock
/// are left out unless the rule is `ignore` (the plan has skipped carts the
/// rule does not allow).
pub fn fill_from_catalog<S: BuildHasher>(
    cart: &mut Cart,
    catalog: &HashMap<String, Product, S>,
    rule: OutOfStock,
) {
    let currency = cart.currency.clone();
    cart.items.retain(|item| {
        rule == OutOfStock::Ignore || catalog.get(&item.sku).and_then(|p| p.in_stock) != Some(false)
    });
    for item in &mut cart.items {
        let Some(product) = catalog.get(&item.sku) else {
            continue;
        };
        if (item.name.is_empty() || item.name == item.sku) && !product.name.is_empty() {
            item.name = product.name.clone();
        }
        if item.image_url.is_empty() {
            item.image_url = product.image_url.clone();
        }
        if item.product_url.is_empty() {
            item.product_url = product.product_url.clone();
        }
        if item.unit_price_minor == 0
            && product.currency.as_ref() == Some(&currency)
            && let Some(price) = product.price_minor
        {
            item.unit_price_minor = price;
        }
    }
}
