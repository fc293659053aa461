//! recart's own CSV formats: carts (one row per line item) and orders.

use crate::model::{Cart, CartStatus, Currency, Order, parse_bool, parse_email};

use super::group::Grouping;
use super::line_item::LineColumns;
use super::table::Row;
use super::{RowError, TimeFormat};

/// The native format's line columns.
const LINES: LineColumns = LineColumns {
    sku: "sku",
    name: "product_name",
    quantity: "quantity",
    unit_price: "unit_price",
    category: Some("category"),
    image_url: Some("image_url"),
    product_url: Some("product_url"),
    price_may_be_blank: true,
};

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

/// Native carts, grouped by `cart_id`.
pub(crate) struct Carts {
    pub times: TimeFormat,
}

impl Grouping for Carts {
    type Item = Cart;
    const NOUN: &'static str = "cart";

    fn required(&self) -> &'static [&'static str] {
        CART_COLUMNS_REQUIRED
    }

    fn key_field(&self) -> &'static str {
        "cart_id"
    }

    fn key(&self, row: &Row<'_>) -> Result<String, RowError> {
        match row.id("cart_id")? {
            "" => Err(row.error("cart_id", "is blank: every row needs its cart's id".into())),
            id => Ok(id.to_string()),
        }
    }

    fn start(&self, row: &Row<'_>, key: &str) -> Result<Option<Cart>, RowError> {
        start_cart(row, key, &self.times).map(Some)
    }

    fn add(&self, row: &Row<'_>, cart: &mut Cart) -> Result<(), RowError> {
        continue_cart(row, cart)
    }
}

/// Native orders, one row each; rows repeating an `order_id` (one per item,
/// with an optional `sku` column) belong to the same order.
pub(crate) struct Orders {
    pub times: TimeFormat,
}

impl Grouping for Orders {
    type Item = Order;
    const NOUN: &'static str = "order";

    fn required(&self) -> &'static [&'static str] {
        ORDER_COLUMNS_REQUIRED
    }

    fn key_field(&self) -> &'static str {
        "order_id"
    }

    fn key(&self, row: &Row<'_>) -> Result<String, RowError> {
        match row.id("order_id")? {
            "" => Err(row.error("order_id", "is blank; expected the order's id".into())),
            id => Ok(id.to_string()),
        }
    }

    fn start(&self, row: &Row<'_>, key: &str) -> Result<Option<Order>, RowError> {
        read_order(row, key, &self.times).map(Some)
    }

    fn add(&self, row: &Row<'_>, order: &mut Order) -> Result<(), RowError> {
        let email = row.get("email")?;
        if !email.is_empty() && !email.eq_ignore_ascii_case(&order.email) {
            return Err(row.error(
                "email",
                format!(
                    "{email:?} disagrees with {:?} on the order's first row",
                    order.email
                ),
            ));
        }
        add_sku(row, order)
    }
}

fn add_sku(row: &Row<'_>, order: &mut Order) -> Result<(), RowError> {
    let sku = row.id("sku")?;
    if !sku.is_empty() && !order.skus.iter().any(|known| known == sku) {
        order.skus.push(sku.to_string());
    }
    Ok(())
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
fn start_cart(row: &Row<'_>, cart_id: &str, times: &TimeFormat) -> Result<Cart, RowError> {
    let email = parse_email(required(row, "email", "an e-mail address")?)
        .map_err(|message| row.error("email", message))?;
    let currency: Currency = required(row, "currency", "a currency code like EUR")?
        .parse()
        .map_err(|message| row.error("currency", message))?;
    let (updated_at, offset) =
        times.snapshot_time(row, "updated_at", required(row, "updated_at", "a time")?)?;
    let created_at = match row.get("created_at")? {
        "" => updated_at,
        text => {
            times
                .parse(text)
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
        first_name: row.name("first_name")?,
        locale: row.get("locale")?.to_string(),
        currency,
        status,
        accepts_marketing,
        created_at,
        updated_at,
        utc_offset_seconds: offset,
        timezone: timezone.to_string(),
        phone: row.get("phone")?.to_string(),
        sms_consent: match row.get("sms_consent")? {
            "" => false,
            text => parse_bool(text).map_err(|message| row.error("sms_consent", message))?,
        },
        items: Vec::new(),
    };
    LINES.add_from(row, &mut cart)?;
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
    LINES.add_from(row, cart)?;
    Ok(())
}

fn read_order(row: &Row<'_>, id: &str, times: &TimeFormat) -> Result<Order, RowError> {
    let email = parse_email(row.get("email")?).map_err(|message| row.error("email", message))?;
    let currency: Currency = row
        .get("currency")?
        .parse()
        .map_err(|message| row.error("currency", message))?;
    let total_minor = currency
        .parse_amount(row.get("total")?)
        .map_err(|message| row.error("total", message))?;
    let (created_at, _) = times.snapshot_time(row, "created_at", row.get("created_at")?)?;
    let cart_id = row.id("cart_id")?;
    let mut order = Order {
        id: id.to_string(),
        email,
        cart_id: (!cart_id.is_empty()).then(|| cart_id.to_string()),
        total_minor,
        currency,
        created_at,
        skus: Vec::new(),
    };
    add_sku(row, &mut order)?;
    Ok(order)
}

#[cfg(test)]
mod tests {
    use crate::ingest::{Format, Options, Parsed, parse_text};

    const HEADER: &str = "cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url\n";

    fn carts(body: &str) -> Parsed {
        carts_in_batches(body, 100)
    }

    fn carts_in_batches(body: &str, batch: usize) -> Parsed {
        let options = Options {
            batch,
            ..Options::format(Format::Native)
        };
        parse_text(&format!("{HEADER}{body}"), &options).unwrap()
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
        assert_eq!(parsed.summary.rejected_rows, 3);
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

    const C1: &str = "C1,a@example.com,,,EUR,open,yes,,2026-11-20T11:00:00Z";
    const C2: &str = "C2,b@example.com,,,EUR,open,yes,,2026-11-20T11:00:00Z";

    #[test]
    fn rows_that_come_back_within_a_batch_join_their_cart() {
        let parsed = carts(&format!(
            "{C1},S1,Tent,,1,100.00,,\n{C2},S1,Tent,,1,100.00,,\nC1,,,,,,,,,S2,Mug,,1,5.00,,\n"
        ));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.carts.len(), 2);
        assert_eq!(parsed.carts[0].items.len(), 2);
    }

    #[test]
    fn rows_that_come_back_after_their_cart_was_handed_over_are_rejected() {
        let parsed = carts_in_batches(
            &format!(
                "{C1},S1,Tent,,1,100.00,,\n{C2},S1,Tent,,1,100.00,,\nC1,,,,,,,,,S2,Mug,,1,5.00,,\nC1,,,,,,,,,S3,Cap,,1,5.00,,\n"
            ),
            1,
        );
        assert_eq!(parsed.carts.len(), 2);
        assert_eq!(parsed.carts[0].items.len(), 1);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].line, 4);
        assert!(parsed.errors[0].message.contains("not together"));
        assert_eq!(parsed.summary.rejected_rows, 2);
    }

    #[test]
    fn duplicate_lines_merge_summing_quantities() {
        let parsed = carts(&format!(
            "{C1},S1,Tent,,1,100.00,,\nC1,,,,,,,,,S1,Tent,,2,100.00,,\nC1,,,,,,,,,S1,Tent (sale),,1,80.00,,\n"
        ));
        let cart = &parsed.carts[0];
        assert_eq!(cart.items.len(), 2);
        assert_eq!(cart.items[0].quantity, 3);
        assert_eq!(cart.total_minor(), 38000);
    }

    #[test]
    fn disagreeing_currency_rejects_the_cart() {
        let parsed = carts(&format!(
            "{C1},S1,Tent,,1,100.00,,\nC1,,,,USD,,,,,S2,Mug,,1,5.00,,\n{C2},S1,Tent,,1,1.00,,\n"
        ));
        assert_eq!(parsed.carts.len(), 1);
        assert_eq!(parsed.errors[0].field, "currency");
        assert_eq!(parsed.errors[0].value, "USD");
    }

    #[test]
    fn orders_keep_their_skus() {
        let text = "order_id,email,cart_id,total,currency,created_at,sku\n\
                    O1,a@example.com,,105.00,EUR,2026-11-20T12:00:00Z,S1\n\
                    O1,,,,,,S2\n\
                    O2,b@example.com,C9,1.00,EUR,2026-11-20T12:00:00Z,\n";
        let parsed = parse_text(text, &Options::format(Format::NativeOrders)).unwrap();
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.orders.len(), 2);
        assert_eq!(parsed.orders[0].skus, vec!["S1", "S2"]);
        assert_eq!(parsed.orders[1].cart_id.as_deref(), Some("C9"));
    }

    #[test]
    fn mapped_columns_and_date_format() {
        let text = "Quote ID,Customer Email,Currency Code,Last Change,Item SKU,Qty,Price\n\
                    Q1,a@example.com,EUR,07/03/2026 13:28,S1,2,9.50\n";
        let columns = [
            ("cart_id", "Quote ID"),
            ("email", "Customer Email"),
            ("currency", "Currency Code"),
            ("updated_at", "Last Change"),
            ("sku", "Item SKU"),
            ("quantity", "Qty"),
            ("unit_price", "Price"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let options = Options {
            columns,
            date_format: Some("%d/%m/%Y %H:%M".into()),
            ..Options::default()
        };
        let parsed = parse_text(text, &options).unwrap();
        assert_eq!(parsed.summary.format, Some(Format::Native));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let cart = &parsed.carts[0];
        assert_eq!(cart.id, "Q1");
        assert_eq!(cart.updated_at.to_rfc3339(), "2026-03-07T13:28:00+00:00");
        assert_eq!(cart.total_minor(), 1900);
    }

    #[test]
    fn ids_with_control_characters_are_rejected_naming_the_field() {
        let parsed = carts(
            "\"C\n1\",a@example.com,,,EUR,,,,2026-11-20T11:00:00Z,S1,Tent,,1,1.00,,\n\
             C2,b@example.com,,,EUR,,,,2026-11-20T11:00:00Z,\"S\t2\",Tent,,1,1.00,,\n\
             C3,c@example.com,,,EUR,,,,2026-11-20T11:00:00Z,S3,Tent,,1,1.00,,\n",
        );
        let found: Vec<(u64, &str)> = parsed
            .errors
            .iter()
            .map(|error| (error.line, error.field.as_str()))
            .collect();
        assert_eq!(found, [(2, "cart_id"), (4, "sku")]);
        assert!(parsed.errors[0].message.contains("control character"));
        assert_eq!(parsed.carts.len(), 1);

        let text = "order_id,email,cart_id,total,currency,created_at,sku\n\
                    \"O\r1\",a@example.com,,1.00,EUR,2026-11-20T12:00:00Z,\n\
                    O2,a@example.com,\"C\u{85}9\",1.00,EUR,2026-11-20T12:00:00Z,\n\
                    O3,a@example.com,,1.00,EUR,2026-11-20T12:00:00Z,\"S\u{7}1\"\n";
        let parsed = parse_text(text, &Options::format(Format::NativeOrders)).unwrap();
        let fields: Vec<&str> = parsed.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["order_id", "cart_id", "sku"]);
        assert!(parsed.orders.is_empty());
    }

    #[test]
    fn names_with_control_characters_are_kept_with_spaces() {
        let parsed = carts(
            "C1,a@example.com,\"Ann\tMarie\",,EUR,,,,2026-11-20T11:00:00Z,S1,\"Merino\r\nSocks\",\"Socks \u{7}& more\",1,1.00,,\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let cart = &parsed.carts[0];
        assert_eq!(cart.first_name, "Ann Marie");
        assert_eq!(cart.items[0].name, "Merino Socks");
        assert_eq!(cart.items[0].category, "Socks & more");
    }

    #[test]
    fn amounts_past_i64_are_rejected_not_clamped() {
        let parsed = carts(&format!(
            "{C1},S1,Tent,,2147483648,92233720368547758.07,,\n\
             {C2},S1,Tent,,1,92233720368547758.07,,\nC2,,,,,,,,,S2,Mug,,1,0.01,,\n\
             C3,c@example.com,,,EUR,,,,2026-11-20T11:00:00Z,S1,Tent,,4294967295,0.01,,\n\
             C3,,,,,,,,,S1,Tent,,1,0.01,,\n\
             C4,d@example.com,,,EUR,,,,2026-11-20T11:00:00Z,S1,Tent,,4294967295,21474836.47,,\n"
        ));
        let found: Vec<(u64, &str)> = parsed
            .errors
            .iter()
            .map(|error| (error.line, error.field.as_str()))
            .collect();
        assert_eq!(found, [(2, "quantity"), (4, "unit_price"), (6, "quantity")]);
        assert!(
            parsed.errors[0]
                .message
                .contains("2147483648 at 92233720368547758.07 each"),
            "{}",
            parsed.errors[0].message
        );
        // The largest cart that fits is stored exactly.
        assert_eq!(parsed.carts.len(), 1);
        assert_eq!(parsed.carts[0].total_minor(), 4_294_967_295 * 2_147_483_647);
    }

    #[test]
    fn times_more_than_a_day_after_now_are_rejected() {
        let options = Options {
            now: Some("2026-11-21T12:00:00Z".parse().unwrap()),
            ..Options::format(Format::Native)
        };
        let text = format!(
            "{HEADER}C1,a@example.com,,,EUR,,,,2030-01-01T00:00:00Z,S1,Tent,,1,1.00,,\n\
             C2,b@example.com,,,EUR,,,,2026-11-22T11:59:59Z,S1,Tent,,1,1.00,,\n"
        );
        let parsed = parse_text(&text, &options).unwrap();
        assert_eq!(parsed.errors.len(), 1);
        let error = &parsed.errors[0];
        assert_eq!((error.line, error.field.as_str()), (2, "updated_at"));
        assert!(
            error.message.contains("more than a day after now"),
            "{error}"
        );
        assert_eq!(parsed.carts.len(), 1, "within a day is fine");

        let orders = "order_id,email,cart_id,total,currency,created_at\n\
                      O1,a@example.com,,1.00,EUR,2030-01-01T00:00:00Z\n";
        let options = Options {
            format: Format::NativeOrders,
            ..options
        };
        let parsed = parse_text(orders, &options).unwrap();
        assert_eq!(parsed.errors[0].field, "created_at");
        assert!(parsed.orders.is_empty());
    }
}
