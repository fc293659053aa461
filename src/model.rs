//! The words of the domain: carts, line items, orders, money, steps.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

/// A cart's status as the shop reports it (or as an order marks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CartStatus {
    Open,
    Ordered,
    Closed,
}

impl CartStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CartStatus::Open => "open",
            CartStatus::Ordered => "ordered",
            CartStatus::Closed => "closed",
        }
    }
}

impl FromStr for CartStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(CartStatus::Open),
            "ordered" => Ok(CartStatus::Ordered),
            "closed" => Ok(CartStatus::Closed),
            _ => Err(()),
        }
    }
}

/// One snapshot of a cart with its line items, as read from an input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cart {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub locale: String,
    pub currency: Currency,
    pub status: CartStatus,
    pub accepts_marketing: bool,
    pub created_at: DateTime<Utc>,
    /// Last activity: reminders count their delay from here.
    pub updated_at: DateTime<Utc>,
    /// The offset the input gave `updated_at` in, kept for local-time rules.
    pub utc_offset_seconds: Option<i32>,
    /// IANA zone name (`Europe/Stockholm`), or empty when the input has none.
    pub timezone: String,
    /// For SMS / messaging steps; empty when unknown.
    pub phone: String,
    pub sms_consent: bool,
    pub items: Vec<LineItem>,
}

/// A cart with its snapshot hash and its items as the store keeps them,
/// both computed where the cart was read: on the reader thread of a large
/// import, off the store's. The store builds these (`Snapshot::hash_all`):
/// the hash and the items' encoding are its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub cart: Cart,
    pub hash: [u8; 32],
    /// The cart's items, encoded as the store keeps them.
    pub items: String,
}

impl Cart {
    /// The cart's value in minor units of its currency. An import refuses
    /// a cart whose lines or total pass `i64` (`ingest::line_item`), so a
    /// stored cart's total is exact.
    pub fn total_minor(&self) -> i64 {
        // Saturating: a cart made elsewhere must not panic.
        self.items
            .iter()
            .map(LineItem::line_total_minor)
            .fold(0, i64::saturating_add)
    }

    /// How many units the cart holds.
    pub fn item_count(&self) -> i64 {
        self.items.iter().map(|item| i64::from(item.quantity)).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineItem {
    pub sku: String,
    pub name: String,
    pub category: String,
    pub quantity: u32,
    /// Minor units of the cart's currency.
    pub unit_price_minor: i64,
    pub image_url: String,
    pub product_url: String,
}

impl LineItem {
    /// Quantity × unit price; saturating, as [`Cart::total_minor`] is.
    pub fn line_total_minor(&self) -> i64 {
        self.unit_price_minor
            .saturating_mul(i64::from(self.quantity))
    }

    /// Quantity × unit price, or `None` when it passes `i64`.
    pub fn checked_line_total_minor(&self) -> Option<i64> {
        self.unit_price_minor.checked_mul(i64::from(self.quantity))
    }
}

/// A product of the shop's catalog: fills what a cart's line item leaves
/// out (name, image, URL, price) and says whether it is in stock.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub image_url: String,
    pub product_url: String,
    /// Price in minor units of `currency`, when the catalog gives one.
    pub price_minor: Option<i64>,
    pub currency: Option<Currency>,
    /// `None` when the catalog does not say.
    pub in_stock: Option<bool>,
}

/// A completed purchase. It stops reminders for its cart.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: String,
    pub email: String,
    pub cart_id: Option<String>,
    pub total_minor: i64,
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
    /// The SKUs bought (empty when the input does not list items).
    pub skus: Vec<String>,
}

/// An ISO 4217 currency code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point of the currency's minor unit.
    pub fn exponent(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }

    /// Parses a decimal amount ("12.5", "1200") into minor units; refuses
    /// negative amounts and more decimals than the currency has.
    pub fn parse_amount(&self, text: &str) -> Result<i64, String> {
        let amount = Decimal::from_str(text.trim())
            .map_err(|_| format!("{text:?} is not a decimal amount"))?;
        self.amount_to_minor(amount)
            .map_err(|why| format!("{text:?} {why}"))
    }

    pub fn amount_to_minor(&self, amount: Decimal) -> Result<i64, String> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err("is negative".into());
        }
        let exponent = self.exponent();
        let amount = amount.normalize();
        if amount.scale() > exponent {
            return Err(format!("has more than {exponent} decimals for {}", self.0));
        }
        // Decimal arithmetic panics on overflow: a 29-digit amount in an
        // export must be a row error, not a crash (found by fuzzing).
        let minor = amount
            .checked_mul(Decimal::from(10_i64.pow(exponent)))
            .ok_or_else(|| "is too large".to_string())?;
        i64::try_from(minor).map_err(|_| "is too large".to_string())
    }

    pub fn minor_to_amount(&self, minor: i64) -> Decimal {
        Decimal::new(minor, self.exponent())
    }

    /// Formats minor units for an English reader: `€1,234.50`, `$5.00`,
    /// `129.80 SEK`.
    pub fn format(&self, minor: i64) -> String {
        self.format_in(minor, "en")
    }

    /// Formats minor units for a reader of `locale` (a BCP 47 tag like
    /// `de-AT` or `sv_SE`; only its language matters): `1.234,50 €` (de),
    /// `$1,234.50` (en), `1 234,50 kr` (sv, with no-break spaces). Unknown
    /// languages read as English.
    pub fn format_in(&self, minor: i64, locale: &str) -> String {
        use std::fmt::Write as _;
        const NBSP: char = '\u{a0}';
        // Every item of every mail goes through here: few allocations.
        let language = locale.split(['-', '_']).next().unwrap_or("");
        let language: std::borrow::Cow<str> = if language.bytes().any(|b| b.is_ascii_uppercase()) {
            language.to_ascii_lowercase().into()
        } else {
            language.into()
        };
        let style = NumberStyle::of(&language);
        let exponent = self.exponent();
        let scale = 10_u64.pow(exponent);
        let amount = minor.unsigned_abs();
        let whole = (amount / scale).to_string();
        let mut number = String::with_capacity(whole.len() * 2 + 8);
        if minor < 0 {
            number.push('-');
        }
        let symbol = self.symbol(&language);
        match (&style.symbol, symbol) {
            (Placement::Before, Some(symbol)) => number.push_str(symbol),
            (Placement::BeforeSpaced, Some(symbol)) => {
                number.push_str(symbol);
                number.push(NBSP);
            }
            _ => {}
        }
        for (index, digit) in whole.chars().enumerate() {
            if index > 0 && (whole.len() - index).is_multiple_of(3) {
                number.push(style.group);
            }
            number.push(digit);
        }
        if exponent > 0 {
            number.push(style.decimal);
            let _ = write!(
                number,
                "{:0width$}",
                amount % scale,
                width = exponent as usize
            );
        }
        match (style.symbol, symbol) {
            (Placement::Before | Placement::BeforeSpaced, Some(_)) => {}
            (Placement::After, Some(symbol)) => {
                number.push(NBSP);
                number.push_str(symbol);
            }
            // English keeps the plain space `format` always had.
            (Placement::Before, None) => {
                number.push(' ');
                number.push_str(&self.0);
            }
            (_, None) => {
                number.push(NBSP);
                number.push_str(&self.0);
            }
        }
        number
    }

    /// The sign a reader of `language` knows the currency by, if any.
    fn symbol(&self, language: &str) -> Option<&'static str> {
        Some(match (self.0.as_str(), language) {
            ("EUR", _) => "€",
            ("USD", _) => "$",
            ("GBP", _) => "£",
            ("JPY", _) => "¥",
            ("SEK", "sv") | ("NOK", "nb" | "nn" | "no") | ("DKK", "da") | ("ISK", "is") => "kr",
            ("PLN", "pl") => "zł",
            ("CZK", "cs") => "Kč",
            _ => return None,
        })
    }
}

/// How a language writes amounts.
struct NumberStyle {
    group: char,
    decimal: char,
    symbol: Placement,
}

enum Placement {
    /// `$1.00`
    Before,
    /// `€ 1,00`
    BeforeSpaced,
    /// `1,00 €`
    After,
}

impl NumberStyle {
    fn of(language: &str) -> NumberStyle {
        let (group, decimal, symbol) = match language {
            "de" | "es" | "it" | "pt" | "da" | "is" | "ro" | "hr" | "sl" | "el" | "id" | "tr" => {
                ('.', ',', Placement::After)
            }
            "nl" => ('.', ',', Placement::BeforeSpaced),
            "fr" | "sv" | "nb" | "nn" | "no" | "fi" | "pl" | "cs" | "sk" | "hu" | "ru" | "uk"
            | "bg" | "lt" | "lv" | "et" => ('\u{a0}', ',', Placement::After),
            _ => (',', '.', Placement::Before),
        };
        NumberStyle {
            group,
            decimal,
            symbol,
        }
    }
}

impl FromStr for Currency {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let code = text.trim().to_ascii_uppercase();
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(code))
        } else {
            Err(format!("{text:?} is not a three-letter currency code"))
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The state of one (cart, step) entry in the sends ledger.
///
/// `claimed` is written before a mail leaves and replaced after: `sent`
/// (the server took it), `retry` (a temporary refusal), `failed` (a
/// permanent one) or `unknown` (the outcome cannot be known, e.g. the
/// connection died after the message was handed over). `skipped` is
/// written by the plan's run instead of a claim: the step was due and the
/// cart did not meet its conditions, so it is passed over for good
/// (ARCHITECTURE, "The plan"); nothing was sent.
/// A sent (or unknown) one becomes `bounced` when a delivery-status
/// report says it failed permanently (`bounces import`); plan and report
/// treat it like `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendState {
    Claimed,
    Sent,
    Retry,
    Failed,
    Unknown,
    Skipped,
    Bounced,
}

impl SendState {
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Claimed => "claimed",
            SendState::Sent => "sent",
            SendState::Retry => "retry",
            SendState::Failed => "failed",
            SendState::Unknown => "unknown",
            SendState::Skipped => "skipped",
            SendState::Bounced => "bounced",
        }
    }
}

impl FromStr for SendState {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "claimed" => Ok(SendState::Claimed),
            "sent" => Ok(SendState::Sent),
            "retry" => Ok(SendState::Retry),
            "failed" => Ok(SendState::Failed),
            "unknown" => Ok(SendState::Unknown),
            "skipped" => Ok(SendState::Skipped),
            "bounced" => Ok(SendState::Bounced),
            other => Err(format!("{other:?} is not a send state")),
        }
    }
}

/// The form an address is matched by: suppressions, cooldowns and orders
/// compare addresses case-insensitively.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks an e-mail address against the address rule (import, `suppress
/// add`, `run --to`; every mail is built by [`mail_address`], the same
/// rule): gives it trimmed, as typed.
pub fn parse_email(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    check_email(trimmed).map_err(|why| format!("{text:?} is not an e-mail address: {why}"))?;
    Ok(trimmed.to_string())
}

/// The address a mail goes to, as SMTP sends it: the address rule
/// checked, the domain in its ASCII form (IDNA, punycode). A local part
/// that is not ASCII stays as it is: only a server that offers SMTPUTF8
/// takes it (`deliver::smtp`).
pub fn mail_address(text: &str) -> Result<lettre::Address, String> {
    let trimmed = text.trim();
    let (local, domain) = check_email(trimmed)
        .map_err(|why| format!("{trimmed:?} is not an e-mail address: {why}"))?;
    lettre::Address::new(local, domain)
        .map_err(|error| format!("{trimmed:?} is not an e-mail address: {error}"))
}

/// The address rule, written once (README, "Addresses"): `local@domain`;
/// the local part a dot-atom (RFC 5322 `atext`, letters of any script
/// allowed, RFC 6531), not quoted, at most 64 octets; the domain a
/// host name of at least two labels, each letters, digits and inner
/// hyphens (no `_`, no address literal such as `[127.0.0.1]`), not all
/// digits at the end (no IP address), within DNS lengths once in IDNA
/// form; the whole at most 254 octets on the wire (RFC 5321). Gives the
/// local part and the domain as it goes on the wire (IDNA when it is not
/// ASCII; as typed otherwise).
fn check_email(address: &str) -> Result<(&str, std::borrow::Cow<'_, str>), &'static str> {
    use email_address::{EmailAddress, Options};
    use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    let (local, domain) = address.rsplit_once('@').ok_or("no @")?;
    if local.starts_with('"') {
        return Err("quoted local parts are not taken");
    }
    EmailAddress::parse_with_options(address, options).map_err(|error| match error {
        email_address::Error::DomainTooFew => "the domain needs a dot, e.g. example.com",
        email_address::Error::UnsupportedDomainLiteral => "an address literal is not taken",
        email_address::Error::LocalPartTooLong => "the local part is over 64 octets",
        email_address::Error::LocalPartEmpty => "the local part is empty",
        email_address::Error::DomainEmpty => "the domain is empty",
        _ => "not local@domain of letters, digits and the usual signs",
    })?;
    let ascii = Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Verify,
        )
        .map_err(|_| "the domain is not a host name (letters, digits, inner hyphens)")?;
    if ascii
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return Err("the domain is an IP address");
    }
    if local.len() + 1 + ascii.len() > 254 {
        return Err("over 254 octets");
    }
    let domain = if domain.is_ascii() {
        std::borrow::Cow::Borrowed(domain)
    } else {
        ascii
    };
    Ok((local, domain))
}

/// Parses the input time formats: RFC 3339, or `YYYY-MM-DD HH:MM:SS ±HHMM`
/// (Shopify's). Returns the UTC instant and the customer's UTC offset, if
/// the text gives one ([`known_offset`]).
pub fn parse_time(text: &str) -> Result<(DateTime<Utc>, Option<i32>), String> {
    let trimmed = text.trim();
    if let Some((at, offset)) = parse_shopify_time(trimmed) {
        return Ok((at, known_offset(trimmed, offset)));
    }
    let parsed = DateTime::parse_from_rfc3339(trimmed)
        .or_else(|_| DateTime::<FixedOffset>::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S %z"))
        .map_err(|_| format!("{text:?} is not a time (RFC 3339 or YYYY-MM-DD HH:MM:SS +HHMM)"))?;
    Ok((
        parsed.with_timezone(&Utc),
        known_offset(trimmed, parsed.offset().local_minus_utc()),
    ))
}

/// The offset `text` was written in, as the customer's, or `None` when it
/// says nothing of the local offset. RFC 9557 (updating RFC 3339): `Z` and
/// `-00:00` mean UTC with the local offset unknown, `+00:00` a local offset
/// known to be zero; `-0000` and `+0000` are read alike (RFC 5322 reads
/// `-0000` so). A zero offset counts only when written with a plus sign:
/// no input format has a `+` anywhere else.
pub fn known_offset(text: &str, offset: i32) -> Option<i32> {
    (offset != 0 || text.contains('+')).then_some(offset)
}

/// Parses booleans as exports write them.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Ok(true),
        "false" | "no" | "n" | "0" => Ok(false),
        _ => Err(format!("{text:?} is not true/false/yes/no")),
    }
}

/// The fast path of [`parse_time`] for exactly `YYYY-MM-DD HH:MM:SS ±HHMM`
/// (every row of a Shopify export): `None` sends anything else, including
/// an invalid date, to chrono's parsers.
fn parse_shopify_time(text: &str) -> Option<(DateTime<Utc>, i32)> {
    let b = text.as_bytes();
    if b.len() != 25
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b' '
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |sum, &digit| {
            digit
                .is_ascii_digit()
                .then(|| sum * 10 + u32::from(digit - b'0'))
        })
    };
    let sign = match b[20] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = (number(21..23)?, number(23..25)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    let offset = sign * i32::try_from(hours * 3600 + minutes * 60).ok()?;
    let year = i32::try_from(number(0..4)?).ok()?;
    let local = chrono::NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)?.and_hms_opt(
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
    )?;
    let time = local
        .and_local_timezone(FixedOffset::east_opt(offset)?)
        .single()?;
    Some((time.with_timezone(&Utc), offset))
}

#[cfg(test)]
mod tests {
    use super::{mail_address, parse_email};

    /// The address rule (README, "Addresses"), over the cases it was
    /// made for.
    #[test]
    fn addresses_follow_one_documented_rule() {
        for good in [
            "ada@example.com",
            " Ada.Lovelace+cart@Mail.Example.co.uk ",
            "o'brien@example.ie",
            "x@a-b.example",
            "x@xn--mnchen-3ya.de",
            "jörg@münchen.de",
            "user@例え.jp",
            "a{b}|c=d?e@example.org",
        ] {
            assert_eq!(parse_email(good).as_deref(), Ok(good.trim()), "{good}");
        }
        for (bad, why) in [
            ("a@b", "needs a dot"),
            ("x@ex_ample.com", "not a host name"),
            ("x@[127.0.0.1]", "address literal"),
            ("x@[IPv6:::1]", "address literal"),
            ("x@127.0.0.1", "IP address"),
            ("\"a b\"@example.com", "quoted"),
            ("x@-example.com", ""),
            ("x@example-.com", ""),
            ("x@example.com.", ""),
            ("x@.example.com", ""),
            ("x..y@example.com", ""),
            (".x@example.com", ""),
            ("x y@example.com", ""),
            ("x@exa mple.com", ""),
            ("x\r\nBcc: y@example.com", ""),
            ("Ann <x@example.com>", ""),
            ("@example.com", "local part is empty"),
            ("x@", "domain is empty"),
            ("example.com", "no @"),
            ("", "no @"),
        ] {
            let error = parse_email(bad).expect_err(bad);
            assert!(error.contains("is not an e-mail address"), "{error}");
            assert!(error.contains(why), "{bad}: {error}");
        }
        let long_local = format!("{}@example.com", "x".repeat(65));
        assert!(parse_email(&long_local).unwrap_err().contains("64 octets"));
        let label = "d".repeat(63);
        let long = format!("{}@{label}.{label}.{label}.com", "x".repeat(60));
        assert!(parse_email(&long).unwrap_err().contains("254 octets"));
        assert!(parse_email(&format!("x@{}.com", "d".repeat(64))).is_err());
    }

    /// What SMTP sends: the domain as IDNA, an ASCII one as typed; a local
    /// part that is not ASCII as it is (for SMTPUTF8).
    #[test]
    fn a_mail_goes_to_the_idna_form_of_its_domain() {
        let address = mail_address(" jörg@München.de ").unwrap();
        assert_eq!(address.to_string(), "jörg@xn--mnchen-3ya.de");
        let address = mail_address("Ada@Example.COM").unwrap();
        assert_eq!(address.to_string(), "Ada@Example.COM");
        assert_eq!(
            mail_address("user@例え.jp").unwrap().to_string(),
            "user@xn--r8jz45g.jp"
        );
        assert!(mail_address("x@[127.0.0.1]").is_err());
    }

    #[test]
    fn shopify_time_fast_path_agrees_with_chrono() {
        for text in [
            "2026-03-07 13:28:42 +0100",
            "2026-03-07 13:28:42 -0930",
            "2024-02-29 23:59:59 +0000",
            "2026-02-29 12:00:00 +0100",
            "2026-13-01 12:00:00 +0100",
            "2026-03-07 24:00:00 +0100",
            "2026-03-07 13:28:60 +0100",
            "2026-03-07 13:28:42 +2400",
            "2026-03-07 13:28:42 +0160",
            "2026-03-07 13:28:42 +2359",
            "2026-03-07 13:28:42 *0100",
            "2026-03-07T13:28:42 +0100",
            "2026-0a-07 13:28:42 +0100",
            "0000-01-01 00:00:00 +0100",
        ] {
            let chrono = DateTime::<FixedOffset>::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z")
                .ok()
                .map(|time| (time.with_timezone(&Utc), time.offset().local_minus_utc()));
            if let Some(fast) = super::parse_shopify_time(text) {
                assert_eq!(Some(fast), chrono, "{text}");
            }
            assert_eq!(
                parse_time(text).ok(),
                chrono
                    .or_else(|| {
                        DateTime::parse_from_rfc3339(text)
                            .ok()
                            .map(|time| (time.with_timezone(&Utc), time.offset().local_minus_utc()))
                    })
                    .map(|(at, offset)| (at, super::known_offset(text, offset))),
                "{text}"
            );
        }
    }

    use super::*;

    fn currency(code: &str) -> Currency {
        code.parse().unwrap()
    }

    #[test]
    fn amounts_parse_to_minor_units() {
        assert_eq!(currency("EUR").parse_amount("12.5"), Ok(1250));
        assert_eq!(currency("EUR").parse_amount("12.50"), Ok(1250));
        assert_eq!(currency("EUR").parse_amount("0"), Ok(0));
        assert_eq!(currency("JPY").parse_amount("1200"), Ok(1200));
        assert!(currency("JPY").parse_amount("12.5").is_err());
        assert!(currency("EUR").parse_amount("-1.00").is_err());
        assert!(currency("EUR").parse_amount("abc").is_err());
        assert!(currency("EUR").parse_amount("1.005").is_err());
        // Too large for any currency: an error, never a panic.
        for huge in ["79228162514264337593543950335", "9223372036854775807.00"] {
            assert!(currency("EUR").parse_amount(huge).is_err(), "{huge}");
        }
    }

    #[test]
    fn absurd_line_items_saturate_instead_of_panicking() {
        let item = LineItem {
            sku: "X".into(),
            name: "X".into(),
            category: String::new(),
            quantity: u32::MAX,
            unit_price_minor: i64::MAX / 2,
            image_url: String::new(),
            product_url: String::new(),
        };
        assert_eq!(item.line_total_minor(), i64::MAX);
        assert_eq!(item.checked_line_total_minor(), None);
        let item = LineItem {
            quantity: 2,
            ..item
        };
        assert_eq!(item.checked_line_total_minor(), Some(i64::MAX - 1));
    }

    #[test]
    fn money_formats_for_readers() {
        assert_eq!(currency("EUR").format(123_450), "€1,234.50");
        assert_eq!(currency("USD").format(500), "$5.00");
        assert_eq!(currency("SEK").format(12980), "129.80 SEK");
        assert_eq!(currency("JPY").format(1200), "¥1,200");
        assert_eq!(currency("EUR").format(5), "€0.05");
    }

    #[test]
    fn money_formats_per_locale() {
        // `~` stands for a no-break space.
        let nbsp = |text: &str| text.replace('~', "\u{a0}");
        for (code, minor, locale, expected) in [
            ("EUR", 123_450, "de", "1.234,50~€"),
            ("EUR", 123_450, "de-AT", "1.234,50~€"),
            ("EUR", 123_450, "de_DE", "1.234,50~€"),
            ("EUR", 123_450, "DE-de", "1.234,50~€"),
            ("USD", 123_450, "en-US", "$1,234.50"),
            ("GBP", 19999, "en-GB", "£199.99"),
            ("SEK", 123_450, "sv-SE", "1~234,50~kr"),
            ("SEK", 123_450, "en", "1,234.50 SEK"),
            ("EUR", 123_450, "fr-FR", "1~234,50~€"),
            ("EUR", 123_450, "nl-NL", "€~1.234,50"),
            ("EUR", 123_456_789, "de", "1.234.567,89~€"),
            ("EUR", 5, "de", "0,05~€"),
            ("JPY", 1200, "ja", "¥1,200"),
            ("JPY", 1200, "de", "1.200~¥"),
            ("CHF", 9990, "de-CH", "99,90~CHF"),
            ("PLN", 123_450, "pl", "1~234,50~zł"),
            ("KWD", 1500, "en", "1.500 KWD"),
            ("USD", 123_450, "xx", "$1,234.50"),
            ("USD", 123_450, "", "$1,234.50"),
            ("EUR", -250, "de", "-2,50~€"),
            ("USD", -500, "en", "-$5.00"),
            ("CHF", 9990, "en", "99.90 CHF"),
        ] {
            assert_eq!(
                currency(code).format_in(minor, locale),
                nbsp(expected),
                "{code} {minor} {locale}"
            );
        }
    }

    #[test]
    fn times_parse_in_both_formats() {
        let (utc, offset) = parse_time("2026-03-07 13:28:42 +0100").unwrap();
        assert_eq!(utc.to_rfc3339(), "2026-03-07T12:28:42+00:00");
        assert_eq!(offset, Some(3600));
        let (utc, offset) = parse_time("2026-11-21T12:00:00Z").unwrap();
        assert_eq!(utc.to_rfc3339(), "2026-11-21T12:00:00+00:00");
        assert_eq!(offset, None, "Z: UTC, the local offset unknown");
        assert!(parse_time("yesterday").is_err());
    }

    /// Which written offsets are the customer's (README, "Whose clock").
    #[test]
    fn only_a_numeric_offset_is_the_customers() {
        for (text, offset) in [
            ("2026-11-21T12:00:00+05:30", Some(19_800)),
            ("2026-11-21T12:00:00-05:00", Some(-18_000)),
            ("2026-11-21 12:00:00 -0500", Some(-18_000)),
            ("2026-11-21T12:00:00+00:00", Some(0)),
            ("2026-11-21 12:00:00 +0000", Some(0)),
            ("2026-11-21T12:00:00.250+00:00", Some(0)),
            ("2026-11-21T12:00:00Z", None),
            ("2026-11-21T12:00:00z", None),
            ("2026-11-21T12:00:00.5Z", None),
            ("2026-11-21T12:00:00-00:00", None),
            ("2026-11-21 12:00:00 -0000", None),
        ] {
            let (at, given) = parse_time(text).unwrap();
            assert_eq!(given, offset, "{text}");
            let noon = DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap();
            assert_eq!(
                at.timestamp() - noon.timestamp(),
                -i64::from(offset.unwrap_or(0)),
                "{text}"
            );
        }
    }

    #[test]
    fn currency_codes_are_checked() {
        assert_eq!(currency("eur").as_str(), "EUR");
        assert!("EURO".parse::<Currency>().is_err());
    }
}
