//! recart's own CSV formats: carts (one row per line item) and orders.

use std::collections::HashMap;

use crate::error::Result;
use crate::model::{
    Cart, CartStatus, Currency, LineItem, Order, parse_bool, parse_email, parse_time,
};

use super::table::{Row, Table};
use super::{Parsed, RowError};

pub const CART_COLUMNS_REQUIRED: &[&str] = &[
    "cart_id",
    "email",
    "currency",
    "updated_at",
    "sku",
    "quantity",
    "unit_price",
];

pub const ORDER_COLUMNS_REQUIRED: &[&str] =
    &["order_id", "email", "total", "currency", "created_at"];

/// A cart being assembled from its rows.
struct Pending {
    cart: Cart,
    rows: u64,
    rejected: bool,
}

pub fn read_carts(table: &Table) -> Result<Parsed> {
    table.require_columns(CART_COLUMNS_REQUIRED)?;
    let mut parsed = Parsed::default();
    let mut pending: Vec<Pending> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();

    for row in table.rows() {
        parsed.rows += 1;
        let cart_id = match row.get("cart_id") {
            Ok(id) if !id.is_empty() => id.to_string(),
            Ok(_) => {
                parsed.rejected_rows += 1;
                parsed
                    .errors
                    .push(row.error("cart_id", "is blank: every row needs its cart's id".into()));
                continue;
            }
            Err(error) => {
                parsed.rejected_rows += 1;
                parsed.errors.push(error);
                continue;
            }
        };
        let index = by_id.get(&cart_id).copied();
        let outcome = row.check_width().and_then(|()| match index {
            None => start_cart(&row, &cart_id).map(Some),
            Some(index) => {
                let entry = &mut pending[index];
                if entry.rejected {
                    Ok(None)
                } else {
                    continue_cart(&row, &mut entry.cart).map(|()| None)
                }
            }
        });
        match (outcome, index) {
            (Ok(Some(cart)), _) => {
                by_id.insert(cart_id, pending.len());
                pending.push(Pending {
                    cart,
                    rows: 1,
                    rejected: false,
                });
            }
            (Ok(None), Some(index)) => {
                let entry = &mut pending[index];
                entry.rows += 1;
                if entry.rejected {
                    parsed.rejected_rows += 1;
                }
            }
            (Ok(None), None) => unreachable!("a new cart always yields Some"),
            (Err(mut error), index) => {
                error
                    .message
                    .push_str(&format!("; cart {cart_id} not imported"));
                parsed.errors.push(error);
                match index {
                    Some(index) => {
                        let entry = &mut pending[index];
                        entry.rows += 1;
                        if !entry.rejected {
                            entry.rejected = true;
                            parsed.rejected_rows += entry.rows;
                        } else {
                            parsed.rejected_rows += 1;
                        }
                    }
                    None => {
                        // Remember the id so its later rows are rejected too.
                        by_id.insert(cart_id.clone(), pending.len());
                        pending.push(Pending {
                            cart: placeholder(cart_id),
                            rows: 1,
                            rejected: true,
                        });
                        parsed.rejected_rows += 1;
                    }
                }
            }
        }
    }
    parsed.carts = pending
        .into_iter()
        .filter(|entry| !entry.rejected)
        .map(|entry| entry.cart)
        .collect();
    Ok(parsed)
}

fn placeholder(id: String) -> Cart {
    Cart {
        id,
        email: String::new(),
        first_name: String::new(),
        locale: String::new(),
        currency: "XXX".parse().expect("valid code"),
        status: CartStatus::Open,
        accepts_marketing: false,
        created_at: Default::default(),
        updated_at: Default::default(),
        utc_offset_seconds: None,
        timezone: String::new(),
        items: Vec::new(),
    }
}

fn required<'r>(row: &'r Row<'_>, column: &str, what: &str) -> Result<&'r str, RowError> {
    let value = row.get(column)?;
    if value.is_empty() {
        Err(row.error(
            column,
            format!("is blank on the cart's first row; expected {what}"),
        ))
    } else {
        Ok(value)
    }
}

/// The first row of a cart carries its cart-level fields.
fn start_cart(row: &Row<'_>, cart_id: &str) -> Result<Cart, RowError> {
    let email = parse_email(required(row, "email", "an e-mail address")?)
        .map_err(|message| row.error("email", message))?;
    let currency: Currency = required(row, "currency", "a currency code like EUR")?
        .parse()
        .map_err(|message| row.error("currency", message))?;
    let (updated_at, offset) = parse_time(required(row, "updated_at", "a time")?)
        .map_err(|message| row.error("updated_at", message))?;
    let created_at = match row.get("created_at")? {
        "" => updated_at,
        text => {
            parse_time(text)
                .map_err(|message| row.error("created_at", message))?
                .0
        }
    };
    let status = match row.get("status")? {
        "" => CartStatus::Open,
        text => text.parse().map_err(|()| {
            row.error("status", format!("{text:?} is not open, ordered or closed"))
        })?,
    };
    let accepts_marketing = match row.get("accepts_marketing")? {
        // No answer is no consent.
        "" => false,
        text => parse_bool(text).map_err(|message| row.error("accepts_marketing", message))?,
    };
    let timezone = row.get("timezone")?;
    if !timezone.is_empty() && timezone.parse::<chrono_tz::Tz>().is_err() {
        return Err(row.error(
            "timezone",
            format!("{timezone:?} is not an IANA time zone like Europe/Stockholm"),
        ));
    }
    let mut cart = Cart {
        id: cart_id.to_string(),
        email,
        first_name: row.get("first_name")?.to_string(),
        locale: row.get("locale")?.to_string(),
        currency,
        status,
        accepts_marketing,
        created_at,
        updated_at,
        utc_offset_seconds: Some(offset),
        timezone: timezone.to_string(),
        items: Vec::new(),
    };
    if let Some(item) = read_item(row, &cart.currency)? {
        cart.items.push(item);
    }
    Ok(cart)
}

/// A later row of a cart: cart-level fields may be blank or repeated, but
/// must not contradict the first row.
fn continue_cart(row: &Row<'_>, cart: &mut Cart) -> Result<(), RowError> {
    let email = row.get("email")?;
    if !email.is_empty() && !email.eq_ignore_ascii_case(&cart.email) {
        return Err(row.error(
            "email",
            format!(
                "{email:?} disagrees with {:?} on the cart's first row",
                cart.email
            ),
        ));
    }
    let currency = row.get("currency")?;
    if !currency.is_empty() && !currency.eq_ignore_ascii_case(cart.currency.as_str()) {
        return Err(row.error(
            "currency",
            format!(
                "{currency:?} disagrees with {:?} on the cart's first row",
                cart.currency.as_str()
            ),
        ));
    }
    if let Some(item) = read_item(row, &cart.currency)? {
        cart.items.push(item);
    }
    Ok(())
}

fn read_item(row: &Row<'_>, currency: &Currency) -> Result<Option<LineItem>, RowError> {
    let sku = row.get("sku")?;
    let name = row.get("product_name")?;
    let quantity = row.get("quantity")?;
    let unit_price = row.get("unit_price")?;
    if sku.is_empty() && name.is_empty() && quantity.is_empty() && unit_price.is_empty() {
        // A cart row without an item: an empty cart.
        return Ok(None);
    }
    if sku.is_empty() && name.is_empty() {
        return Err(row.error(
            "sku",
            "is blank and so is product_name; expected either".into(),
        ));
    }
    let quantity: u32 = quantity.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
        row.error(
            "quantity",
            format!("{quantity:?} is not a positive whole number"),
        )
    })?;
    let unit_price_minor = currency
        .parse_amount(unit_price)
        .map_err(|message| row.error("unit_price", message))?;
    Ok(Some(LineItem {
        sku: sku.to_string(),
        name: if name.is_empty() { sku } else { name }.to_string(),
        category: row.get("category")?.to_string(),
        quantity,
        unit_price_minor,
        image_url: row.get("image_url")?.to_string(),
        product_url: row.get("product_url")?.to_string(),
    }))
}

pub fn read_orders(table: &Table) -> Result<Parsed> {
    table.require_columns(ORDER_COLUMNS_REQUIRED)?;
    let mut parsed = Parsed::default();
    for row in table.rows() {
        parsed.rows += 1;
        match row.check_width().and_then(|()| read_order(&row)) {
            Ok(order) => parsed.orders.push(order),
            Err(error) => {
                parsed.rejected_rows += 1;
                parsed.errors.push(error);
            }
        }
    }
    Ok(parsed)
}

fn read_order(row: &Row<'_>) -> Result<Order, RowError> {
    let blank = |column: &str, what: &str| row.error(column, format!("is blank; expected {what}"));
    let id = row.get("order_id")?;
    if id.is_empty() {
        return Err(blank("order_id", "the order's id"));
    }
    let email = parse_email(row.get("email")?).map_err(|message| row.error("email", message))?;
    let currency: Currency = row
        .get("currency")?
        .parse()
        .map_err(|message| row.error("currency", message))?;
    let total_minor = currency
        .parse_amount(row.get("total")?)
        .map_err(|message| row.error("total", message))?;
    let (created_at, _) =
        parse_time(row.get("created_at")?).map_err(|message| row.error("created_at", message))?;
    let cart_id = row.get("cart_id")?;
    Ok(Order {
        id: id.to_string(),
        email,
        cart_id: (!cart_id.is_empty()).then(|| cart_id.to_string()),
        total_minor,
        currency,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const HEADER: &str = "cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url\n";

    fn carts(body: &str) -> Parsed {
        let text = format!("{HEADER}{body}");
        let table = Table::new(Path::new("carts.csv"), text.as_bytes()).unwrap();
        read_carts(&table).unwrap()
    }

    #[test]
    fn continuation_rows_inherit_cart_fields() {
        let parsed = carts(
            "C1,a@example.com,Ann,en,EUR,open,yes,2026-11-20T10:00:00Z,2026-11-20T11:00:00Z,S1,Tent,tents,1,100.00,,\n\
             C1,,,,,,,,,S2,Mug,acc,2,5.50,,\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.carts.len(), 1);
        let cart = &parsed.carts[0];
        assert_eq!(cart.items.len(), 2);
        assert_eq!(cart.total_minor(), 11100);
        assert!(cart.accepts_marketing);
    }

    #[test]
    fn a_bad_row_rejects_its_cart_and_names_line_and_field() {
        let parsed = carts(
            "C1,a@example.com,,,EUR,open,yes,,2026-11-20T11:00:00Z,S1,Tent,,1,100.00,,\n\
             C1,,,,,,,,,S2,Mug,,-2,5.50,,\n\
             C1,,,,,,,,,S3,Cap,,1,5.50,,\n\
             C2,b@example.com,,,EUR,open,yes,,2026-11-20T11:00:00Z,S1,Tent,,1,100.00,,\n",
        );
        assert_eq!(parsed.carts.len(), 1);
        assert_eq!(parsed.carts[0].id, "C2");
        assert_eq!(parsed.rejected_rows, 3);
        assert_eq!(parsed.errors.len(), 1);
        let error = &parsed.errors[0];
        assert_eq!((error.line, error.field.as_str()), (3, "quantity"));
    }

    #[test]
    fn disagreeing_email_rejects_the_cart() {
        let parsed = carts(
            "C1,a@example.com,,,EUR,open,yes,,2026-11-20T11:00:00Z,S1,Tent,,1,100.00,,\n\
             C1,z@example.com,,,,,,,,S2,Mug,,1,5.50,,\n",
        );
        assert!(parsed.carts.is_empty());
        assert_eq!(parsed.errors[0].field, "email");
    }

    #[test]
    fn each_bad_field_is_named() {
        for (row, field) in [
            (
                "C1,not-an-email,,,EUR,,,,2026-11-20T11:00:00Z,S1,T,,1,1.00,,",
                "email",
            ),
            (
                "C1,a@example.com,,,EUR,,,,2026-11-20T11:00:00Z,S1,T,,1,abc,,",
                "unit_price",
            ),
            (
                "C1,a@example.com,,,EUR,,,,last tuesday,S1,T,,1,1.00,,",
                "updated_at",
            ),
            (
                "C1,a@example.com,,,EUR,,maybe,,2026-11-20T11:00:00Z,S1,T,,1,1.00,,",
                "accepts_marketing",
            ),
            (
                "C1,a@example.com,,,EUR,,,,2026-11-20T11:00:00Z,S1,T,,1,1.00,",
                "(row)",
            ),
        ] {
            let parsed = carts(&format!("{row}\n"));
            assert_eq!(parsed.errors.len(), 1, "{row}");
            assert_eq!(parsed.errors[0].field, field, "{row}");
            assert_eq!(parsed.errors[0].line, 2);
        }
    }
}
