//! Builds a large store for `benches/scale.sh` (not part of the `recart`
//! CLI): N carts with items, orders, suppressions and a ledger of past
//! sends, of which M are due their first reminder at `--now`.
//!
//! ```text
//! cargo run --release --example gen_store -- --carts 1000000 --due 100000 \
//!     --now 2026-11-21T12:00:00Z --out recart.db [--days 365]
//! ```
//!
//! The store is created by `recart::store::Store::open`, so schema, indexes
//! and migrations are the real ones; the rows are then written straight
//! into it in big transactions (the import path would hash and compare
//! every snapshot, which is not what is measured here).
//!
//! The shape, for the starter steps 1h / 24h / 72h and `max_age = 7d`:
//!
//! - M *due* carts: open, consenting, one address each, last active 1–2
//!   hours before `--now`, no ledger entry: each is due step `1h`.
//! - N − M *background* carts, last active uniformly over `--days` before
//!   `--now` (ending 1–2 hours before it, so none is due), written in time
//!   order as a store fills: 65% open, 30%
//!   ordered (with an order), 5% closed; 1–4 items each; addresses shared
//!   by ~1.3 carts. Every open or ordered cart has a `sent` ledger entry for
//!   each step whose delay had passed (as hourly runs would have left it),
//!   so nothing in the background is due. One address in 97 is suppressed.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use recart::model::LineItem;
use rusqlite::{Connection, params};

const STEPS: [(&str, i64); 3] = [("1h", 3600), ("24h", 86_400), ("72h", 259_200)];
const BATCH: u64 = 50_000;

struct Args {
    carts: u64,
    due: u64,
    now: DateTime<Utc>,
    days: i64,
    out: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: gen_store --carts N --due M --now RFC3339 --out FILE [--days D (365)] [--seed S]"
    );
    std::process::exit(2)
}

fn parse_args() -> (Args, u64) {
    let mut args = Args {
        carts: 1_000_000,
        due: 0,
        now: "2026-11-21T12:00:00Z".parse().expect("a time"),
        days: 365,
        out: PathBuf::from("recart.db"),
    };
    let mut seed = 0x5eed_cafe_u64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--carts" => args.carts = value.parse().unwrap_or_else(|_| usage()),
            "--due" => args.due = value.parse().unwrap_or_else(|_| usage()),
            "--now" => args.now = value.parse().unwrap_or_else(|_| usage()),
            "--days" => args.days = value.parse().unwrap_or_else(|_| usage()),
            "--out" => args.out = PathBuf::from(value),
            "--seed" => seed = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if args.due > args.carts {
        eprintln!("gen_store: --due must not exceed --carts");
        std::process::exit(2);
    }
    (args, seed)
}

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// `below` for a positive i64 bound.
    fn below_i64(&mut self, n: i64) -> i64 {
        let n = u64::try_from(n).expect("a positive bound");
        i64::try_from(self.below(n)).expect("below an i64, so an i64")
    }
    /// One of `from`'s elements.
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        let at = self.below(from.len() as u64);
        from[usize::try_from(at).expect("below a length, so a usize")]
    }
}

const PRODUCTS: &[(&str, &str, &str, i64)] = &[
    ("TENT-2P", "Ridge Tent 2P", "tents", 24_900),
    ("TENT-4P", "Basecamp Tent 4P", "tents", 44_900),
    ("BAG-DOWN", "Down Sleeping Bag −5°", "sleeping", 18_900),
    ("MAT-AIR", "Air Mat Ultralight", "sleeping", 8_950),
    ("MUG-ENAMEL", "Enamel Mug", "accessories", 1_250),
    ("STOVE-GAS", "Canister Stove", "cooking", 5_490),
    ("PACK-45L", "Trail Pack 45 L", "packs", 15_900),
    ("LAMP-HEAD", "Headlamp 400 lm", "accessories", 3_990),
    ("POLE-CARB", "Carbon Trekking Poles", "accessories", 11_900),
    ("JACKET-RAIN", "Rain Jacket Storm", "clothing", 21_900),
];
const NAMES: &[&str] = &["Ann", "Bo", "Chiara", "Dmitri", "Elif", "Femi", "", "Greta"];
const LOCALES: &[&str] = &["en", "en", "en", "de", "sv", "nl"];
const CURRENCIES: &[&str] = &["EUR", "EUR", "EUR", "USD", "SEK", "GBP"];

/// What every cart is written against.
struct Shape {
    /// `--now`, in seconds.
    now: i64,
    /// `--days`, in seconds.
    span: i64,
    carts: u64,
    due: u64,
    /// How many carts are not due.
    background: u64,
    /// How many addresses the background carts share.
    addresses: u64,
}

/// The INSERTs of one transaction, prepared once.
struct Inserts<'tx> {
    cart: rusqlite::Statement<'tx>,
    order: rusqlite::Statement<'tx>,
    order_item: rusqlite::Statement<'tx>,
    send: rusqlite::Statement<'tx>,
    suppress: rusqlite::Statement<'tx>,
}

impl<'tx> Inserts<'tx> {
    fn prepare(tx: &'tx rusqlite::Transaction<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            cart: tx.prepare(
                "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
                    accepts_marketing, created_at, updated_at, utc_offset, total_minor, item_count,
                    snapshot_hash, timezone, items)
                 VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?12, '', ?13)",
            )?,
            order: tx.prepare(
                "INSERT INTO orders (id, email, email_norm, cart_id, total_minor, currency, created_at)
                 VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6)",
            )?,
            order_item: tx
                .prepare("INSERT OR IGNORE INTO order_items (order_id, sku) VALUES (?1, ?2)")?,
            send: tx.prepare(
                "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts,
                    claimed_at, sent_at, message_id)
                 VALUES (?1, ?2, ?3, ?3, 'sent', 1, 1, ?4, ?4, ?5)",
            )?,
            suppress: tx.prepare(
                "INSERT OR IGNORE INTO suppressions (email_norm, reason, created_at)
                 VALUES (?1, 'manual', ?2)",
            )?,
        })
    }
}

fn main() -> rusqlite::Result<()> {
    let (args, seed) = parse_args();
    if args.out.exists() {
        eprintln!(
            "gen_store: {} exists; not overwriting it",
            args.out.display()
        );
        std::process::exit(2);
    }
    // The real schema, through the real migrations.
    drop(
        recart::store::Store::open(&args.out).unwrap_or_else(|error| {
            eprintln!("gen_store: {error}");
            std::process::exit(1)
        }),
    );
    let mut conn = Connection::open(&args.out)?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -200000;")?;
    let background = args.carts - args.due;
    let shape = Shape {
        now: args.now.timestamp(),
        span: args.days * 86_400,
        carts: args.carts,
        due: args.due,
        background,
        addresses: (background * 10 / 13).max(1),
    };
    let mut rng = Rng(seed | 1);

    let mut written = 0;
    while written < args.carts {
        let end = (written + BATCH).min(args.carts);
        let tx = conn.transaction()?;
        {
            let mut inserts = Inserts::prepare(&tx)?;
            for n in written..end {
                write_cart(n, &shape, &mut rng, &mut inserts)?;
            }
        }
        tx.commit()?;
        written = end;
        eprint!("\rgen_store: {written} / {} carts", args.carts);
    }
    eprintln!();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// Cart `n`: its row, and for a background cart its order, ledger and
/// suppression.
fn write_cart(n: u64, shape: &Shape, rng: &mut Rng, inserts: &mut Inserts) -> rusqlite::Result<()> {
    let now = shape.now;
    let due = n < shape.due;
    let (id, email, updated_at, status) = if due {
        (
            format!("D{n:08}"),
            format!("due{n}@example.com"),
            now - 3600 - rng.below_i64(3600),
            "open",
        )
    } else {
        let status = match rng.below(100) {
            0..65 => "open",
            65..95 => "ordered",
            _ => "closed",
        };
        (
            format!("C{n:08}"),
            format!("customer{}@example.com", rng.below(shape.addresses)),
            // Stores fill in time order (ids grow with it), an
            // hour of jitter.
            now - 7200
                - shape.span * i64::try_from(shape.carts - n).expect("--carts fits an i64")
                    / i64::try_from(shape.background).expect("--carts fits an i64")
                + rng.below_i64(3600),
            status,
        )
    };
    let currency = rng.pick(CURRENCIES);
    let count = 1 + rng.below_i64(4);
    let mut lines = Vec::with_capacity(4);
    for _ in 0..count {
        let product = rng.pick(PRODUCTS);
        lines.push((product, 1 + rng.below_i64(2)));
    }
    let total: i64 = lines.iter().map(|((_, _, _, price), q)| price * q).sum();
    let first_sku = lines[0].0.0;
    let consent = due || rng.below(10) < 8;
    let items: Vec<LineItem> = lines
        .iter()
        .map(|&((sku, name, category, price), quantity)| LineItem {
            sku: sku.into(),
            name: name.into(),
            category: category.into(),
            quantity: u32::try_from(quantity).expect("1 or 2"),
            unit_price_minor: price,
            image_url: format!("https://shop.example/img/{sku}.jpg"),
            product_url: format!("https://shop.example/products/{sku}"),
        })
        .collect();
    inserts.cart.execute(params![
        id,
        email,
        rng.pick(NAMES),
        if due { "en" } else { rng.pick(LOCALES) },
        currency,
        status,
        consent,
        updated_at - 600,
        updated_at,
        total,
        count,
        u128::from(n).to_le_bytes().as_slice(),
        recart::store::encode_items(&items),
    ])?;
    if due {
        return Ok(());
    }
    if status == "ordered" {
        let order_id = format!("O{n:08}");
        inserts.order.execute(params![
            order_id,
            email,
            id,
            total,
            currency,
            updated_at + 1800
        ])?;
        inserts.order_item.execute(params![order_id, first_sku])?;
    }
    if status != "closed" && consent {
        for (step, delay) in STEPS {
            if updated_at + delay > now {
                break;
            }
            let at = (updated_at + delay + rng.below_i64(600)).min(now);
            inserts.send.execute(params![
                id,
                step,
                email,
                at,
                format!("<{n}.{step}.recart@shop.example>")
            ])?;
        }
    }
    if rng.below(97) == 0 {
        inserts.suppress.execute(params![email, updated_at])?;
    }
    Ok(())
}
