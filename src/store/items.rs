//! A cart's items as `carts.items` keeps them: one JSON array of arrays,
//! written by [`encode_items`] and read back whole or as the plan needs them.

use crate::model::LineItem;

/// A line item as `carts.items` keeps it: one JSON array per item, in
/// this order (the `cart_items` view names them).
#[derive(serde::Serialize)]
struct StoredItemRef<'i>(&'i str, &'i str, &'i str, u32, i64, &'i str, &'i str);

/// A stored line item read back whole.
#[derive(serde::Deserialize)]
struct StoredItem(String, String, String, u32, i64, String, String);

/// What the plan reads of a stored item: SKU, category, quantity, price.
#[derive(serde::Deserialize)]
pub(super) struct StoredItemForPlan(
    pub(super) String,
    pub(super) serde::de::IgnoredAny,
    pub(super) String,
    pub(super) u32,
    pub(super) i64,
    pub(super) serde::de::IgnoredAny,
    pub(super) serde::de::IgnoredAny,
);

/// The value of `carts.items`: the items, in order, as a JSON array of
/// arrays (SKU, name, category, quantity, unit price in minor units, image
/// URL, product URL).
pub fn encode_items(items: &[LineItem]) -> String {
    let stored: Vec<StoredItemRef<'_>> = items
        .iter()
        .map(|item| {
            StoredItemRef(
                &item.sku,
                &item.name,
                &item.category,
                item.quantity,
                item.unit_price_minor,
                &item.image_url,
                &item.product_url,
            )
        })
        .collect();
    serde_json::to_string(&stored).expect("items serialise")
}

/// The items of a `carts.items` value read from result column `column`.
pub(super) fn decode_items(column: usize, json: &str) -> rusqlite::Result<Vec<LineItem>> {
    let stored: Vec<StoredItem> =
        serde_json::from_str(json).map_err(|error| bad_items(column, error))?;
    Ok(stored
        .into_iter()
        .map(|item| LineItem {
            sku: item.0,
            name: item.1,
            category: item.2,
            quantity: item.3,
            unit_price_minor: item.4,
            image_url: item.5,
            product_url: item.6,
        })
        .collect())
}

/// The error for a `carts.items` value that does not decode.
pub(super) fn bad_items(column: usize, error: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("the stored items are not valid: {error}").into(),
    )
}
