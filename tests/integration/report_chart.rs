//! `report --html FILE`: the chart can be read — a y-axis with values, the
//! day under each pair of bars, each bar's figure, the day's figures on
//! hover, the period in words — checked in a real browser (headless
//! Chromium), with a screenshot in `target/test-artefacts/report-chart.png`.

use std::process::Command;

use crate::{
    fixtures::{Config, LATER, NOW, Transport, many_carts, shop},
    operator::{artefacts, tool},
};

#[test]
fn the_report_chart_reads_in_a_browser() {
    let t = shop(&Config::new(Transport::File)).file("more.csv", many_carts(24));
    t.recart(&["import", "more.csv"]).expect_success();
    // 26 first reminders on 21 November, 26 second ones on 23 November
    // (not to the three who ordered on the 22nd; Katherine gets her first).
    t.recart(&["run", "--now", NOW]).expect_success();
    t.write(
        "orders.csv",
        "order_id,email,cart_id,total,currency,created_at\n\
         O-1,f00001@example.com,,12.50,EUR,2026-11-22T08:00:00Z\n\
         O-2,f00002@example.com,,12.50,EUR,2026-11-22T09:00:00Z\n\
         O-3,f00003@example.com,,12.50,EUR,2026-11-22T10:00:00Z\n",
    );
    t.recart(&["import", "orders.csv"]).expect_success();
    t.recart(&["run", "--now", LATER]).expect_success();
    t.write(
        "later-orders.csv",
        "order_id,email,cart_id,total,currency,created_at\n\
         O-4,f00004@example.com,,12.50,EUR,2026-11-24T08:00:00Z\n",
    );
    t.recart(&["import", "later-orders.csv"]).expect_success();
    t.recart(&[
        "report",
        "--since",
        "2026-11-01T00:00:00Z",
        "--now",
        "2026-11-30T12:00:00Z",
        "--html",
        "report.html",
    ])
    .expect_success();
    let html = t.read("report.html");
    assert!(
        html.contains("1 – 30 November 2026 (days in UTC)"),
        "{html}"
    );
    assert!(
        !html.contains("2026-11-01T00:00:00"),
        "raw RFC 3339 in {html}"
    );

    let Some(chromium) = tool("chromium") else {
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let page = format!("file://{}", t.join("report.html").display());
    let browser = |extra: &[&str]| {
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&page)
            .output()
            .expect("chromium runs")
    };
    // The chart as the browser parsed it: 30 days, each with its label and
    // its figures in words; bars only where there is something to show.
    let dom = browser(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<g><title>").count(), 30, "{dom}");
    assert!(
        dom.contains("<title>Sat 21 November 2026: 26 reminders sent, 0 carts recovered</title>"),
        "{dom}"
    );
    assert!(
        dom.contains("<title>Sun 22 November 2026: 0 reminders sent, 3 carts recovered</title>"),
        "{dom}"
    );
    assert!(
        dom.contains("<title>Mon 23 November 2026: 24 reminders sent, 0 carts recovered</title>"),
        "{dom}"
    );
    assert_eq!(dom.matches("class=\"sent\" x=").count(), 2, "{dom}");
    assert_eq!(dom.matches("class=\"recovered\" x=").count(), 2, "{dom}");
    // The y-axis: 0 to 30 by 10.
    for label in [">0</text>", ">10</text>", ">20</text>", ">30</text>"] {
        assert!(dom.contains(label), "{label} in {dom}");
    }
    let shot = artefacts().join("report-chart.png");
    let _ = std::fs::remove_file(&shot);
    browser(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1100,700",
    ]);
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}
