//! `recart report` closes the loop: per step and per A/B variant, what was
//! sent, clicked, unsubscribed, bounced and complained about, and the
//! revenue by address and by click — after a real run, a real bounce
//! import, and clicks and unsubscribes written as `recart serve` records
//! them.

use crate::bounces::{fill, mailed_shop_with, sent};
use crate::fixtures::{Config, LATER, Transport};

#[test]
fn the_report_shows_variants_clicks_unsubscribes_bounces_and_complaints() {
    // Step 1h is split between two templates.
    let t = mailed_shop_with(&Config::new(Transport::File), 8, |toml| {
        toml.replacen(
            "name = \"1h\"\nafter = \"1h\"\ntemplate = \"reminder\"\n",
            "name = \"1h\"\nafter = \"1h\"\ntemplate = \"reminder\"\n\
             variants = [\"reminder\", \"follow-up\"]\n",
            1,
        )
    });
    let store = t.store();
    let variant_of = |cart: &str| -> String {
        store
            .conn()
            .query_row(
                "SELECT variant FROM sends WHERE cart_id = ?1 AND step = '1h'",
                [cart],
                |row| row.get(0),
            )
            .unwrap()
    };
    let carts: Vec<String> = (1..=8).map(|i| format!("B-{i}")).collect();
    let variants: Vec<String> = carts.iter().map(|cart| variant_of(cart)).collect();
    assert!(
        variants.iter().any(|v| v == "reminder") && variants.iter().any(|v| v == "follow-up"),
        "both variants sent: {variants:?}"
    );

    // B-1 bounces, B-5 complains (through the mailbox).
    t.write(
        "Maildir/new/1.mx",
        fill("postfix-hard.eml", &sent(&t, "B-1")),
    );
    t.write(
        "Maildir/new/2.mx",
        fill("microsoft-arf.eml", &sent(&t, "B-5")),
    );
    t.recart(&["bounces", "import", "Maildir", "--now", LATER])
        .expect_success();
    // B-2 clicks twice, B-3 once; B-4 unsubscribes the next day.
    for (cart, at) in [
        ("B-2", "2026-11-21T13:00:00Z"),
        ("B-2", "2026-11-21T14:00:00Z"),
        ("B-3", "2026-11-21T15:00:00Z"),
    ] {
        store
            .conn()
            .execute(
                "INSERT INTO clicks (cart_id, step, variant, clicked_at)
                 VALUES (?1, '1h', ?2, unixepoch(?3))",
                [cart, &variant_of(cart), at],
            )
            .unwrap();
    }
    store
        .conn()
        .execute(
            "INSERT INTO suppressions (email_norm, reason, created_at)
             VALUES ('b4@example.com', 'unsubscribe', unixepoch('2026-11-22T08:00:00Z'))",
            [],
        )
        .unwrap();
    // B-2 orders after its click; B-6 orders without one.
    t.write(
        "orders.csv",
        "order_id,email,cart_id,total,currency,created_at\n\
         O-2,b2@example.com,,30.00,EUR,2026-11-22T10:00:00Z\n\
         O-6,b6@example.com,,50.00,EUR,2026-11-22T11:00:00Z\n",
    );
    t.recart(&["import", "orders.csv", "--now", LATER])
        .expect_success();

    let out = t.recart(&["report", "--json", "--now", LATER, "--html", "report.html"]);
    out.expect_success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let first = &report["steps"][0];
    assert_eq!(first["step"], "1h");
    assert_eq!(first["sent"], 7);
    assert_eq!(first["bounced"], 1);
    assert_eq!(first["clicked"], 2);
    assert_eq!(first["unsubscribed"], 1);
    assert_eq!(first["complained"], 1);
    assert_eq!(first["recovered_orders"], 2);
    assert_eq!(first["recovered_revenue"]["EUR"], "80.00");
    assert_eq!(first["recovered_orders_by_click"], 1);
    assert_eq!(first["recovered_revenue_by_click"]["EUR"], "30.00");
    assert!((first["click_rate"].as_f64().unwrap() - 2.0 / 7.0).abs() < 1e-9);

    // Each variant's row counts its own carts.
    let rows = first["variants"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{first:#}");
    for row in rows {
        let name = row["variant"].as_str().unwrap();
        let mine =
            |carts: &[&str]| carts.iter().filter(|cart| variant_of(cart) == name).count() as u64;
        let all: Vec<&str> = carts.iter().map(String::as_str).collect();
        let expected = [
            ("sent", mine(&all) - mine(&["B-1"])),
            ("bounced", mine(&["B-1"])),
            ("clicked", mine(&["B-2", "B-3"])),
            ("unsubscribed", mine(&["B-4"])),
            ("complained", mine(&["B-5"])),
            ("recovered_orders", mine(&["B-2", "B-6"])),
            ("recovered_orders_by_click", mine(&["B-2"])),
        ];
        for (field, count) in expected {
            assert_eq!(row[field], count, "{name} {field}: {row:#}");
        }
    }

    let csv = t.recart(&["report", "--csv", "--now", LATER]);
    let b2 = variant_of("B-2");
    csv.expect_stdout_contains(&format!("1h,{b2},recovered_revenue_by_click,EUR,30.00"));
    csv.expect_stdout_contains("1h,,bounced,,1");
    let table = t.recart(&["report", "--now", LATER]);
    table.expect_stdout_contains("VARIANT");
    table.expect_stdout_contains("click-through rate 28.6% (2 of 7 sent)");
    let html = t.read("report.html");
    assert!(html.contains("<th>RECOVERED BY CLICK</th>"), "{html}");
    assert!(html.contains(&format!("<td>{b2}</td>")), "{html}");
}
