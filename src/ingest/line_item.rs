//! A cart's lines from its rows: read by a format's column names, then
//! added to the cart, merged with an earlier line of the same product.

use crate::model::{Cart, Currency, LineItem};

use super::RowError;
use super::table::Row;

/// A format's columns for a cart's line.
pub(crate) struct LineColumns {
    pub sku: &'static str,
    pub name: &'static str,
    pub quantity: &'static str,
    pub unit_price: &'static str,
    pub category: Option<&'static str>,
    pub image_url: Option<&'static str>,
    pub product_url: Option<&'static str>,
    /// A blank price is "not known here" (a platform that keeps prices in
    /// its catalog): 0, which the catalog fills at render.
    pub price_may_be_blank: bool,
}

impl LineColumns {
    /// Reads the row's line, if it has one, and adds it to `cart`.
    pub(crate) fn add_from(&self, row: &Row<'_>, cart: &mut Cart) -> Result<(), RowError> {
        if let Some(item) = self.read(row, &cart.currency)? {
            add(row, cart, item, self.quantity, self.unit_price)?;
        }
        Ok(())
    }

    /// The row's line; `None`: a cart row without one (an empty cart).
    fn read(&self, row: &Row<'_>, currency: &Currency) -> Result<Option<LineItem>, RowError> {
        let sku = row.id(self.sku)?;
        let name = row.name(self.name)?;
        let quantity = row.get(self.quantity)?;
        let unit_price = row.get(self.unit_price)?;
        if sku.is_empty() && name.is_empty() && quantity.is_empty() && unit_price.is_empty() {
            return Ok(None);
        }
        if sku.is_empty() && name.is_empty() {
            return Err(row.error(
                self.sku,
                format!("is blank and so is {}; expected either", self.name),
            ));
        }
        let quantity: u32 = quantity.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            row.error(
                self.quantity,
                format!("{quantity:?} is not a positive whole number"),
            )
        })?;
        let unit_price_minor = if unit_price.is_empty() && self.price_may_be_blank {
            0
        } else {
            currency
                .parse_amount(unit_price)
                .map_err(|message| row.error(self.unit_price, message))?
        };
        let optional = |column: Option<&str>| match column {
            Some(column) => row.get(column).map(ToString::to_string),
            None => Ok(String::new()),
        };
        Ok(Some(LineItem {
            sku: sku.to_string(),
            name: if name.is_empty() {
                sku.to_string()
            } else {
                name
            },
            category: match self.category {
                Some(column) => row.name(column)?,
                None => String::new(),
            },
            quantity,
            unit_price_minor,
            image_url: optional(self.image_url)?,
            product_url: optional(self.product_url)?,
        }))
    }
}

/// Adds a line to a cart. A line repeating an earlier one's SKU (or, without
/// SKUs, its name) at the same unit price is merged into it, quantities
/// summed: the cart's total stays the export's, and the mail shows one line
/// per product. Every amount must fit: a line's total (quantity × unit
/// price), the cart's total and a merged quantity; the row that passes
/// one is an error naming `quantity` (the file's column for it) or
/// `unit_price`, so a stored cart's figures are exact, never clamped.
fn add(
    row: &Row<'_>,
    cart: &mut Cart,
    item: LineItem,
    quantity: &str,
    unit_price: &str,
) -> Result<(), RowError> {
    let largest = || cart.currency.minor_to_amount(i64::MAX);
    let Some(line_total) = item.checked_line_total_minor() else {
        return Err(row.error(
            quantity,
            format!(
                "{} at {} each comes to more than the largest amount recart stores ({})",
                item.quantity,
                cart.currency.minor_to_amount(item.unit_price_minor),
                largest()
            ),
        ));
    };
    if cart.total_minor().checked_add(line_total).is_none() {
        return Err(row.error(
            unit_price,
            format!(
                "brings the cart's total past the largest amount recart stores ({})",
                largest()
            ),
        ));
    }
    let same = |other: &LineItem| {
        other.unit_price_minor == item.unit_price_minor
            && if item.sku.is_empty() {
                other.sku.is_empty() && other.name == item.name
            } else {
                other.sku == item.sku
            }
    };
    match cart.items.iter_mut().find(|other| same(other)) {
        Some(other) => {
            other.quantity = other.quantity.checked_add(item.quantity).ok_or_else(|| {
                row.error(
                    quantity,
                    format!(
                        "with the cart's earlier rows of this product, the quantity passes {}",
                        u32::MAX
                    ),
                )
            })?;
        }
        None => cart.items.push(item),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Options, parse_text};

    /// A line needs a SKU or a name (the error names the format's SKU
    /// column); the native format's blank price is the catalog's (0).
    #[test]
    fn a_line_needs_a_sku_or_a_name_and_a_native_price_may_be_blank() {
        let native = "cart_id,email,currency,updated_at,sku,product_name,quantity,unit_price\n\
                      c1,a@example.com,EUR,2026-03-01T10:00:00Z,S1,,2,\n\
                      c2,b@example.com,EUR,2026-03-01T10:00:00Z,,,1,5.00\n";
        let parsed = parse_text(native, &Options::default()).unwrap();
        let [blank] = &parsed.errors[..] else {
            panic!("{:?}", parsed.errors)
        };
        assert_eq!((blank.line, blank.field.as_str()), (3, "sku"));
        assert!(
            blank
                .message
                .starts_with("is blank and so is product_name; expected either"),
            "{}",
            blank.message
        );
        let [cart] = &parsed.carts[..] else {
            panic!("{:?}", parsed.carts)
        };
        assert_eq!(
            (cart.items[0].quantity, cart.items[0].unit_price_minor),
            (2, 0)
        );
        assert_eq!(cart.items[0].name, "S1");
    }
}
