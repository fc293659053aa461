//! `recart import` against the built binary: each format, format detection,
//! bad input, `--errors`, re-import idempotence.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CONFIG: &str = r#"
[store]
path = "recart.db"

[links]
recover = "https://shop.example/r/{token}"
unsubscribe = "https://shop.example/u/{token}"
secret_env = "RECART_TEST_SECRET"

[[steps]]
name = "1h"
after = "1h"
template = "reminder"
"#;

struct Shop {
    dir: tempfile::TempDir,
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

impl Shop {
    fn new() -> Shop {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("recart.toml"), CONFIG).unwrap();
        Shop { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn import(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_recart"))
            .arg("--config")
            .arg(self.path("recart.toml"))
            .arg("import")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("recart.db")).unwrap()
    }

    fn strings(&self, sql: &str) -> Vec<String> {
        let db = self.db();
        let mut query = db.prepare(sql).unwrap();
        query
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn shopify_checkouts_then_orders() {
    let shop = Shop::new();
    let checkouts = data("shopify-checkouts.csv");
    let output = shop.import(&[checkouts.to_str().unwrap()]);
    assert_exit(&output, 0);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(
            "6 rows read, 3 carts upserted, 0 unchanged, 0 rejected, 1 skipped (no e-mail)"
        ),
        "{stdout}"
    );
    assert!(
        text(&output.stderr).contains("shopify-checkouts.csv: format shopify (detected)"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        shop.strings("SELECT id || ' ' || email || ' ' || currency || ' ' || total_minor || ' ' || item_count || ' ' || first_name FROM carts ORDER BY id"),
        vec![
            "35012345678901 mia.keller@example.com EUR 12980 3 Mia",
            "35012345678902 Noah.Berg@example.org USD 5800 2 Noah",
            "35012345678904 lea.roux@example.net EUR 24900 1 Léa",
        ]
    );

    // The same export again changes nothing.
    let output = shop.import(&["--format", "shopify", checkouts.to_str().unwrap()]);
    assert_exit(&output, 0);
    assert!(
        text(&output.stdout).contains("0 carts upserted, 3 unchanged"),
        "{}",
        text(&output.stdout)
    );
    assert!(!text(&output.stderr).contains("detected"));

    let orders = data("shopify-orders.csv");
    let output = shop.import(&[orders.to_str().unwrap()]);
    assert_exit(&output, 0);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("3 rows read, 1 orders added, 0 unchanged, 0 rejected, 1 carts marked ordered, 1 skipped (no e-mail)"),
        "{stdout}"
    );
    assert!(text(&output.stderr).contains("format shopify-orders (detected)"));
    assert_eq!(
        shop.strings("SELECT id FROM carts WHERE status = 'ordered'"),
        vec!["35012345678901"]
    );
    assert_eq!(
        shop.strings("SELECT sku FROM order_items WHERE order_id = '5550001' ORDER BY sku"),
        vec!["MS-01", "TR2-42-SL"]
    );
    // Orders again: nothing new.
    let output = shop.import(&["--format", "shopify-orders", orders.to_str().unwrap()]);
    assert_exit(&output, 0);
    assert!(text(&output.stdout).contains("0 orders added, 1 unchanged"));
}

const NATIVE: &str = "cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url";

#[test]
fn bad_input_keeps_the_good_rows_and_writes_errors() {
    let shop = Shop::new();
    let t = "2026-11-20T11:00:00Z";
    let mut body: Vec<u8> = Vec::new();
    body.extend_from_slice(b"\xEF\xBB\xBF");
    body.extend_from_slice(NATIVE.as_bytes());
    body.extend_from_slice(b"\r\n");
    let rows = [
        // 2: good, a quoted name with a comma and a newline
        format!("G1,g1@example.com,,,EUR,open,yes,,{t},S1,\"Tent, 2P\r\nGreen\",,1,10.00,,"),
        // 4: invalid UTF-8 in the product name (written below)
        format!("B1,b1@example.com,,,EUR,open,yes,,{t},S1,BAD_NAME,,1,10.00,,"),
        // 5: too few fields
        format!("B2,b2@example.com,,,EUR,open,yes,,{t},S1"),
        // 6: too many fields
        format!("B3,b3@example.com,,,EUR,open,yes,,{t},S1,Mug,,1,10.00,,,surplus"),
        // 7, 8: a cart whose rows disagree on the e-mail
        format!("B4,b4@example.com,,,EUR,open,yes,,{t},S1,Mug,,1,10.00,,"),
        "B4,other@example.com,,,,,,,,S2,Cap,,1,10.00,,".to_string(),
        // 9, 10: and on the currency
        format!("B5,b5@example.com,,,EUR,open,yes,,{t},S1,Mug,,1,10.00,,"),
        "B5,,,,USD,,,,,S2,Cap,,1,10.00,,".to_string(),
        // 11, 12: good, a duplicate line merged
        format!("G2,g2@example.com,,,EUR,open,yes,,{t},S1,Mug,,1,10.00,,"),
        "G2,,,,,,,,,S1,Mug,,2,10.00,,".to_string(),
        // 13: trailing empty fields a spreadsheet added: tolerated
        format!("G3,g3@example.com,,,EUR,open,yes,,{t},S1,Mug,,1,10.00,,,,"),
    ];
    for row in rows {
        let row = row.replace("BAD_NAME", "Caf\u{1}");
        let mut bytes = row.into_bytes();
        if let Some(at) = bytes.iter().position(|&b| b == 1) {
            bytes[at] = 0xE9; // Latin-1 é: not UTF-8
        }
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    let file = shop.write("carts.csv", &body);
    let errors = shop.path("errors.csv");
    let output = shop.import(&["--errors", errors.to_str().unwrap(), file.to_str().unwrap()]);
    assert_exit(&output, 3);
    assert!(
        text(&output.stdout).contains("11 rows read, 3 carts upserted, 0 unchanged, 7 rejected"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(
        shop.strings("SELECT id FROM carts ORDER BY id"),
        vec!["G1", "G2", "G3"]
    );
    // The quoted line break is read as part of the name, and a name keeps
    // no control characters: it is one space.
    assert_eq!(
        shop.strings("SELECT name FROM cart_items WHERE cart_id = 'G1'"),
        vec!["Tent, 2P Green"]
    );
    assert_eq!(
        shop.strings("SELECT CAST(quantity AS TEXT) FROM cart_items WHERE cart_id = 'G2'"),
        vec!["3"]
    );

    let mut reader = csv::Reader::from_path(&errors).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["file", "line", "field", "value", "message"]
    );
    let found: Vec<(String, String, String)> = reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            assert_eq!(&record[0], file.to_str().unwrap());
            (
                record[1].to_string(),
                record[2].to_string(),
                record[3].to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("4".into(), "product_name".into(), "Caf\u{FFFD}".into()),
            ("5".into(), "(row)".into(), String::new()),
            ("6".into(), "(row)".into(), String::new()),
            ("8".into(), "email".into(), "other@example.com".into()),
            ("10".into(), "currency".into(), "USD".into()),
        ]
    );
    // The same lines are on stderr.
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("carts.csv:8: field email: \"other@example.com\" disagrees"),
        "{stderr}"
    );
}

#[test]
fn empty_header_only_and_not_csv_files() {
    let shop = Shop::new();
    let empty = shop.write("empty.csv", "");
    let output = shop.import(&[empty.to_str().unwrap()]);
    assert_exit(&output, 1);
    assert!(
        text(&output.stderr).contains("empty"),
        "{}",
        text(&output.stderr)
    );

    let header_only = shop.write("header.csv", format!("{NATIVE}\n"));
    let output = shop.import(&[header_only.to_str().unwrap()]);
    assert_exit(&output, 0);
    assert!(text(&output.stdout).contains("0 rows read, 0 carts upserted"));

    let binary = shop.write("export.csv", b"PK\x03\x04\x14\x00\x00\x00\x08\x00binary");
    let output = shop.import(&[binary.to_str().unwrap()]);
    assert_exit(&output, 1);
    assert!(
        text(&output.stderr).contains("not a CSV file"),
        "{}",
        text(&output.stderr)
    );

    let prose = shop.write(
        "notes.txt",
        "Dear team,\nhere are the carts you asked for.\n",
    );
    let output = shop.import(&[prose.to_str().unwrap()]);
    assert_exit(&output, 1);
    assert!(
        text(&output.stderr).contains("matches no known format"),
        "{}",
        text(&output.stderr)
    );

    // A bad file among good ones: the good ones are imported, exit 3.
    let output = shop.import(&[
        empty.to_str().unwrap(),
        data("shopify-checkouts.csv").to_str().unwrap(),
    ]);
    assert_exit(&output, 3);
    assert!(text(&output.stdout).contains("3 carts upserted"));
}

#[test]
fn native_formats_are_detected_too() {
    let shop = Shop::new();
    let carts = shop.write(
        "carts.csv",
        format!(
            "{NATIVE}\nC1,a@example.com,,,EUR,open,yes,,2026-11-20T11:00:00Z,S1,Tent,,1,10.00,,\n"
        ),
    );
    let orders = shop.write(
        "orders.csv",
        "order_id,email,cart_id,total,currency,created_at\nO1,a@example.com,C1,10.00,EUR,2026-11-20T12:00:00Z\n",
    );
    let output = shop.import(&[carts.to_str().unwrap(), orders.to_str().unwrap()]);
    assert_exit(&output, 0);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("carts.csv: format native (detected)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("orders.csv: format native-orders (detected)"),
        "{stderr}"
    );
    assert_eq!(
        shop.strings("SELECT status FROM carts WHERE id = 'C1'"),
        vec!["ordered"]
    );
}

/// `[[sources]] sqlite`: `recart run` reads a shop's `SQLite` database,
/// incrementally by the stored watermark.
#[test]
fn sqlite_source_is_read_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let recart = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_recart"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    assert_exit(&recart(&["init", "."]), 0);
    let shop = rusqlite::Connection::open(dir.path().join("shop.db")).unwrap();
    shop.execute_batch(
        "CREATE TABLE quotes (id TEXT PRIMARY KEY, email TEXT, currency TEXT, modified TEXT);
         CREATE TABLE quote_lines (quote_id TEXT, sku TEXT, qty INTEGER, price TEXT);
         INSERT INTO quotes VALUES ('Q1', 'mia@example.com', 'EUR', '2026-03-01T10:00:00Z'),
                                   ('Q2', 'ben@example.com', 'EUR', '2026-03-01T11:00:00Z');
         INSERT INTO quote_lines VALUES ('Q1', 'TENT-2', 1, '249.00'), ('Q2', 'SOCK', 3, '12.50');",
    )
    .unwrap();
    let config = std::fs::read_to_string(dir.path().join("recart.toml")).unwrap();
    let source = r#"sqlite = "shop.db"
carts_query = """
SELECT id AS cart_id, email, currency, modified AS updated_at FROM quotes
WHERE :since IS NULL OR modified >= :since ORDER BY modified"""
items_query = "SELECT sku, qty AS quantity, price AS unit_price FROM quote_lines WHERE quote_id = :cart_id"
"#;
    let config: String = config
        .lines()
        .filter(|line| !line.starts_with("format = "))
        .map(|line| {
            if line.starts_with("path = \"carts.csv\"") {
                source.to_string()
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("recart.toml"), config).unwrap();
    // -v: the summary of every run (from cron, only of runs that need a person).
    let run = || {
        let output = recart(&["-v", "run", "--now", "2026-03-01T12:00:00Z"]);
        assert_exit(&output, 0);
        text(&output.stderr)
    };
    assert!(run().contains("imported 2 carts"));
    // Nothing changed: only the newest cart (at the watermark) is read again.
    assert!(run().contains("imported 0 carts"));
    shop.execute_batch(
        "UPDATE quotes SET modified = '2026-03-01T11:30:00Z' WHERE id = 'Q1';
         UPDATE quote_lines SET qty = 2 WHERE quote_id = 'Q1';",
    )
    .unwrap();
    assert!(run().contains("imported 1 carts"));
    let store = rusqlite::Connection::open(dir.path().join("recart.db")).unwrap();
    let quantity: i64 = store
        .query_row(
            "SELECT quantity FROM cart_items WHERE cart_id = 'Q1'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(quantity, 2);
    let watermark: String = store
        .query_row("SELECT updated_at FROM source_watermarks", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(watermark, "2026-03-01T11:30:00Z");
}
