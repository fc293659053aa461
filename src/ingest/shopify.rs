//! Shopify's CSV exports, read as the admin writes them: "Export abandoned
//! checkouts" (`shopify`) and "Export orders" (`shopify-orders`).
//!
//! Both have one row per line item. The first row of a checkout (or order)
//! carries its fields; the following rows repeat `Name` and leave most other
//! fields blank. Rows are grouped by `Name` (by `Id` when `Name` is blank);
//! the cart's id is the checkout's `Id` when the first row has one, else its
//! `Name`. Columns recart does not use (addresses, zips with their leading
//! apostrophe, taxes, `Phone`, ...) are ignored.
//!
//! The checkouts export has no "updated at" column: its `Created at` is the
//! only time of a checkout, so it is the cart's last activity too.

use crate::model::{Cart, CartStatus, Currency, Order, parse_bool, parse_email};

use super::group::Grouping;
use super::line_item::LineColumns;
use super::table::{Header, Row};
use super::{RowError, TimeFormat};

/// An abandoned-checkouts export's line columns.
const LINES: LineColumns = LineColumns {
    sku: "Lineitem sku",
    name: "Lineitem name",
    quantity: "Lineitem quantity",
    unit_price: "Lineitem price",
    category: None,
    image_url: None,
    product_url: None,
    price_may_be_blank: false,
};

/// Columns both exports share and recart needs.
const REQUIRED: &[&str] = &[
    "Email",
    "Currency",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
];

const ORDERS_REQUIRED: &[&str] = &["Email", "Currency", "Total", "Created at"];

/// Columns only the orders export has.
const ORDERS_ONLY: &[&str] = &[
    "Outstanding Balance",
    "Payment ID",
    "Payment References",
    "Payment Terms Name",
    "Device ID",
    "Employee",
    "Location",
    "Duties",
];

pub fn is_shopify(header: &Header) -> bool {
    header.has_columns(REQUIRED) && header.has_any(&["Name", "Id"])
}

pub fn is_orders(header: &Header) -> bool {
    header.has_any(ORDERS_ONLY)
}

fn key(row: &Row<'_>) -> Result<String, RowError> {
    match (row.id("Name")?, row.id("Id")?) {
        ("", "") => Err(row.error(
            "Name",
            "is blank and so is Id: every row needs its checkout's name or id".into(),
        )),
        ("", id) => Ok(id.to_string()),
        (name, _) => Ok(name.to_string()),
    }
}

/// The id to store: the `Id` of the first row, else the group's key.
fn id(row: &Row<'_>, key: &str) -> Result<String, RowError> {
    Ok(match row.id("Id")? {
        "" => key.to_string(),
        id => id.to_string(),
    })
}

fn required<'r>(row: &'r Row<'_>, column: &str, what: &str) -> Result<&'r str, RowError> {
    match row.get(column)? {
        "" => Err(row.error(
            column,
            format!("is blank on the first row; expected {what}"),
        )),
        value => Ok(value),
    }
}

fn currency(row: &Row<'_>) -> Result<Currency, RowError> {
    required(row, "Currency", "a currency code like EUR")?
        .parse()
        .map_err(|message| row.error("Currency", message))
}

/// A later row may leave `Email` and `Currency` blank, not change them.
fn agree(row: &Row<'_>, email: &str, currency: &Currency) -> Result<(), RowError> {
    let given = row.get("Email")?;
    if !given.is_empty() && !given.eq_ignore_ascii_case(email) {
        return Err(row.error(
            "Email",
            format!("{given:?} disagrees with {email:?} on the first row"),
        ));
    }
    let given = row.get("Currency")?;
    if !given.is_empty() && !given.eq_ignore_ascii_case(currency.as_str()) {
        return Err(row.error(
            "Currency",
            format!(
                "{given:?} disagrees with {:?} on the first row",
                currency.as_str()
            ),
        ));
    }
    Ok(())
}

/// Abandoned checkouts → carts.
pub(crate) struct Checkouts {
    /// No `date_format`: the export's own; the latest a time may be.
    pub times: TimeFormat,
}

impl Grouping for Checkouts {
    type Item = Cart;
    const NOUN: &'static str = "checkout";

    fn required(&self) -> &'static [&'static str] {
        REQUIRED
    }

    fn key_field(&self) -> &'static str {
        "Name"
    }

    fn key(&self, row: &Row<'_>) -> Result<String, RowError> {
        key(row)
    }

    fn start(&self, row: &Row<'_>, key: &str) -> Result<Option<Cart>, RowError> {
        let email = match row.get("Email")? {
            // A checkout left with a phone number only: nobody to e-mail.
            "" => return Ok(None),
            text => parse_email(text).map_err(|message| row.error("Email", message))?,
        };
        let currency = currency(row)?;
        let (created_at, offset) =
            self.times
                .snapshot_time(row, "Created at", required(row, "Created at", "a time")?)?;
        let accepts_marketing = match row.get("Accepts Marketing")? {
            "" => false,
            text => parse_bool(text).map_err(|message| row.error("Accepts Marketing", message))?,
        };
        let full_name = match row.get("Billing Name")? {
            "" => row.get("Shipping Name")?,
            name => name,
        };
        let status = match row.get("Cancelled at")? {
            "" => CartStatus::Open,
            _ => CartStatus::Closed,
        };
        let mut cart = Cart {
            id: id(row, key)?,
            email,
            // The first word; a control character ends it as a space does.
            first_name: full_name
                .split(|c: char| c.is_whitespace() || c.is_control())
                .find(|word| !word.is_empty())
                .unwrap_or("")
                .to_string(),
            locale: String::new(),
            currency,
            status,
            accepts_marketing,
            created_at,
            updated_at: created_at,
            utc_offset_seconds: offset,
            timezone: String::new(),
            phone: row.get("Phone")?.trim_start_matches('\'').to_string(),
            // The export says nothing of SMS consent.
            sms_consent: false,
            items: Vec::new(),
        };
        LINES.add_from(row, &mut cart)?;
        Ok(Some(cart))
    }

    fn add(&self, row: &Row<'_>, cart: &mut Cart) -> Result<(), RowError> {
        agree(row, &cart.email, &cart.currency)?;
        LINES.add_from(row, cart)?;
        Ok(())
    }
}

/// Orders → orders with their SKUs. They carry no checkout id, so they mark
/// carts ordered by e-mail and time.
pub(crate) struct Orders {
    pub times: TimeFormat,
}

impl Grouping for Orders {
    type Item = Order;
    const NOUN: &'static str = "order";

    fn required(&self) -> &'static [&'static str] {
        ORDERS_REQUIRED
    }

    fn key_field(&self) -> &'static str {
        "Name"
    }

    fn key(&self, row: &Row<'_>) -> Result<String, RowError> {
        key(row)
    }

    fn start(&self, row: &Row<'_>, key: &str) -> Result<Option<Order>, RowError> {
        let email = match row.get("Email")? {
            // A point-of-sale order without an address: it matches no cart.
            "" => return Ok(None),
            text => parse_email(text).map_err(|message| row.error("Email", message))?,
        };
        let currency = currency(row)?;
        let total_minor = currency
            .parse_amount(required(row, "Total", "the order's total")?)
            .map_err(|message| row.error("Total", message))?;
        // When the customer ordered; `Paid at` only if that is missing.
        let (column, text) = match row.get("Created at")? {
            "" => ("Paid at", required(row, "Paid at", "a time")?),
            text => ("Created at", text),
        };
        let (created_at, _) = self.times.snapshot_time(row, column, text)?;
        let mut order = Order {
            id: id(row, key)?,
            email,
            cart_id: None,
            total_minor,
            currency,
            created_at,
            skus: Vec::new(),
        };
        add_sku(row, &mut order)?;
        Ok(Some(order))
    }

    fn add(&self, row: &Row<'_>, order: &mut Order) -> Result<(), RowError> {
        agree(row, &order.email, &order.currency)?;
        add_sku(row, order)
    }
}

fn add_sku(row: &Row<'_>, order: &mut Order) -> Result<(), RowError> {
    let sku = row.id("Lineitem sku")?;
    if !sku.is_empty() && !order.skus.iter().any(|known| known == sku) {
        order.skus.push(sku.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ingest::{Format, Options, Parsed, parse_text};
    use crate::model::CartStatus;

    const CHECKOUTS: &str = include_str!("../../tests/data/shopify-abandoned-checkouts.header.csv");
    const ORDERS: &str = include_str!("../../tests/data/shopify-orders.header.csv");

    /// A row of the export with `fields` set and every other column blank.
    fn row(header: &str, fields: &[(&str, &str)]) -> String {
        let columns: Vec<&str> = header.trim_end().split(',').collect();
        for (name, _) in fields {
            assert!(columns.contains(name), "no column {name}");
        }
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer
            .write_record(columns.iter().map(|column| {
                fields
                    .iter()
                    .find(|(name, _)| name == column)
                    .map_or("", |(_, value)| *value)
            }))
            .unwrap();
        String::from_utf8(writer.into_inner().unwrap()).unwrap()
    }

    fn checkouts(rows: &[Vec<(&str, &str)>]) -> Parsed {
        let mut text = CHECKOUTS.trim_end().to_string() + "\n";
        for fields in rows {
            text.push_str(&row(CHECKOUTS, fields));
        }
        parse_text(&text, &Options::format(Format::Shopify)).unwrap()
    }

    fn first<'a>(name: &'a str, id: &'a str, email: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("Name", name),
            ("Id", id),
            ("Email", email),
            ("Accepts Marketing", "yes"),
            ("Currency", "EUR"),
            ("Subtotal", "129.80"),
            ("Total", "134.70"),
            ("Created at", "2026-03-07 13:28:42 +0100"),
            ("Lineitem quantity", "1"),
            ("Lineitem name", "Trail Runner 2 - 42 / Slate"),
            ("Lineitem price", "119.90"),
            ("Lineitem sku", "TR2-42-SL"),
            ("Billing Name", "Mia Keller"),
            ("Billing Street", "Lindenstrasse 4, Hinterhaus"),
            ("Billing Zip", "'01067"),
            ("Shipping Zip", "'01067"),
            ("Notes", "leave at the door,\nplease"),
            ("Phone", "+49 30 1234567"),
        ]
    }

    fn next<'a>(name: &'a str, sku: &'a str, quantity: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("Name", name),
            ("Lineitem quantity", quantity),
            ("Lineitem name", "Merino Socks"),
            ("Lineitem price", "4.95"),
            ("Lineitem sku", sku),
        ]
    }

    #[test]
    fn a_checkout_with_continuation_rows_is_one_cart() {
        let parsed = checkouts(&[
            first(
                "#35012345678901",
                "35012345678901",
                "mia.keller@example.com",
            ),
            next("#35012345678901", "MS-01", "2"),
            first("#35012345678902", "", "noah.berg@example.org"),
        ]);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.summary.rows, 3);
        assert_eq!(parsed.carts.len(), 2);
        let cart = &parsed.carts[0];
        assert_eq!(cart.id, "35012345678901");
        assert_eq!(cart.email, "mia.keller@example.com");
        assert_eq!(cart.first_name, "Mia");
        assert!(cart.accepts_marketing);
        assert_eq!(cart.status, CartStatus::Open);
        assert_eq!(cart.currency.as_str(), "EUR");
        assert_eq!(cart.updated_at.to_rfc3339(), "2026-03-07T12:28:42+00:00");
        assert_eq!(cart.utc_offset_seconds, Some(3600));
        assert_eq!(cart.items.len(), 2);
        assert_eq!(cart.items[1].quantity, 2);
        assert_eq!(cart.total_minor(), 12980);
        // Without an Id the Name is the cart's id.
        assert_eq!(parsed.carts[1].id, "#35012345678902");
    }

    #[test]
    fn checkouts_without_email_are_skipped_not_rejected() {
        let mut phone_only = first("#2", "2", "");
        phone_only.push(("Phone", "+49 30 7654321"));
        let parsed = checkouts(&[
            phone_only,
            next("#2", "MS-01", "1"),
            first("#3", "3", "ella@example.com"),
        ]);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.summary.skipped_rows, 2);
        assert_eq!(parsed.summary.rejected_rows, 0);
        assert_eq!(parsed.carts.len(), 1);
    }

    #[test]
    fn bad_rows_reject_their_checkout_only() {
        let mut bad_price = next("#1", "MS-01", "1");
        bad_price[3] = ("Lineitem price", "4,95");
        let mut other_email = next("#2", "MS-01", "1");
        other_email.push(("Email", "someone.else@example.com"));
        let mut bad_time = first("#4", "4", "d@example.com");
        bad_time[7] = ("Created at", "07/03/2026");
        let parsed = checkouts(&[
            first("#1", "1", "a@example.com"),
            bad_price,
            first("#2", "2", "b@example.com"),
            other_email,
            first("#3", "3", "c@example.com"),
            bad_time,
        ]);
        assert_eq!(parsed.carts.len(), 1);
        assert_eq!(parsed.carts[0].id, "3");
        assert_eq!(parsed.summary.rejected_rows, 5);
        let found: Vec<(u64, &str, &str)> = parsed
            .errors
            .iter()
            .map(|e| (e.line, e.field.as_str(), e.value.as_str()))
            .collect();
        // Line numbers count the quoted newline in each first row's Notes.
        assert_eq!(
            found,
            vec![
                (4, "Lineitem price", "4,95"),
                (7, "Email", "someone.else@example.com"),
                (10, "Created at", "07/03/2026"),
            ]
        );
    }

    #[test]
    fn orders_group_by_name_and_keep_skus() {
        let mut text = ORDERS.trim_end().to_string() + "\n";
        text.push_str(&row(
            ORDERS,
            &[
                ("Name", "#1001"),
                ("Id", "5550001"),
                ("Email", "Mia.Keller@example.com"),
                ("Financial Status", "paid"),
                ("Paid at", "2026-03-08 09:01:00 +0100"),
                ("Currency", "EUR"),
                ("Total", "134.70"),
                ("Created at", "2026-03-08 09:00:12 +0100"),
                ("Lineitem quantity", "1"),
                ("Lineitem name", "Trail Runner 2 - 42 / Slate"),
                ("Lineitem price", "119.90"),
                ("Lineitem sku", "TR2-42-SL"),
                ("Billing Zip", "'01067"),
            ],
        ));
        text.push_str(&row(
            ORDERS,
            &[
                ("Name", "#1001"),
                ("Lineitem quantity", "2"),
                ("Lineitem name", "Merino Socks"),
                ("Lineitem price", "4.95"),
                ("Lineitem sku", "MS-01"),
            ],
        ));
        text.push_str(&row(
            ORDERS,
            &[
                ("Name", "#1002"),
                ("Currency", "EUR"),
                ("Total", "10.00"),
                ("Created at", "2026-03-08 10:00:00 +0100"),
            ],
        ));
        let parsed = parse_text(&text, &Options::default()).unwrap();
        assert_eq!(parsed.summary.format, Some(Format::ShopifyOrders));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.orders.len(), 1);
        assert_eq!(parsed.summary.skipped_rows, 1);
        let order = &parsed.orders[0];
        assert_eq!(order.id, "5550001");
        assert_eq!(order.total_minor, 13470);
        assert_eq!(order.skus, vec!["TR2-42-SL", "MS-01"]);
        assert_eq!(order.created_at.to_rfc3339(), "2026-03-08T08:00:12+00:00");
        assert_eq!(order.cart_id, None);
    }

    #[test]
    fn hostile_fields_name_the_export_s_columns() {
        let mut future = first("#2", "2", "b@example.com");
        future[7] = ("Created at", "2030-01-01 00:00:00 +0000");
        let mut overflow = next("#3", "MS-01", "2147483648");
        overflow[3] = ("Lineitem price", "92233720368547758.07");
        let mut name = first("#4", "4", "d@example.com");
        name[9] = ("Lineitem name", "Trail\tRunner\n2");
        name[12] = ("Billing Name", "\u{7}Mia\u{85}Keller");
        let mut text = CHECKOUTS.trim_end().to_string() + "\n";
        for fields in [
            first("#1\n1", "", "a@example.com"),
            future,
            first("#3", "3", "c@example.com"),
            overflow,
            name,
        ] {
            text.push_str(&row(CHECKOUTS, &fields));
        }
        let options = Options {
            now: Some("2026-11-21T12:00:00Z".parse().unwrap()),
            ..Options::format(Format::Shopify)
        };
        let parsed = parse_text(&text, &options).unwrap();
        let fields: Vec<&str> = parsed.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["Name", "Created at", "Lineitem quantity"]);
        assert_eq!(parsed.carts.len(), 1);
        assert_eq!(parsed.carts[0].items[0].name, "Trail Runner 2");
        assert_eq!(parsed.carts[0].first_name, "Mia");
    }
}
