//! Policy semantics through the binary: whose clock quiet hours are read
//! on, steps a cart does not qualify for, and caps per channel.

use crate::{
    fixtures::{Config, Transport, carts_csv, shop},
    harness::{Test, for_cart},
};

/// A shop in New York with quiet hours, one 1h step, and these carts.
fn new_york_shop(rows: &[&str]) -> Test {
    let mut config = Config::new(Transport::File);
    config.steps.truncate(1);
    let toml = config.to_toml().replace(
        "[policy]\n",
        "[policy]\ntimezone = \"America/New_York\"\nquiet_hours = \"21:00-08:00\"\n",
    );
    shop(&config)
        .file("recart.toml", toml)
        .file("carts.csv", carts_csv(rows))
}

/// `Z` says the time is UTC and nothing of the customer's offset (RFC
/// 9557): such a cart is on `policy.timezone`'s clock. A written offset
/// (`+05:30`, or `+00:00`) is the customer's own.
#[test]
fn a_z_time_is_held_on_the_policys_clock_and_an_offset_is_the_customers() {
    let t = new_york_shop(&[
        "Z-1,zulu@example.com,Zoe,en-US,USD,open,true,2026-11-21T05:00:00Z,2026-11-21T06:00:00Z,S-1,Socks,Clothing,1,10.00,,",
        "I-1,india@example.com,Ira,en-IN,USD,open,true,2026-11-21T11:00:00+05:30,2026-11-21T11:30:00+05:30,S-1,Socks,Clothing,1,10.00,,",
        "L-1,london@example.com,Leo,en-GB,USD,open,true,2026-11-21T05:00:00+00:00,2026-11-21T06:00:00+00:00,S-1,Socks,Clothing,1,10.00,,",
        "M-1,minus@example.com,Max,en-US,USD,open,true,2026-11-21T05:00:00-00:00,2026-11-21T06:00:00-00:00,S-1,Socks,Clothing,1,10.00,,",
    ]);
    // 08:30 UTC: 03:30 in New York, 14:00 in India, 08:30 in London.
    let decisions = t
        .recart(&["run", "--json", "--now", "2026-11-21T08:30:00Z"])
        .expect_success()
        .decisions();
    let outcome = |id: &str| {
        let found = for_cart(&decisions, id);
        assert_eq!(found.len(), 1, "{id}: {found:?}");
        (found[0].outcome.clone(), found[0].reason.clone())
    };
    let held = ("skip".to_string(), Some("quiet-hours".to_string()));
    assert_eq!(outcome("Z-1"), held);
    assert_eq!(outcome("M-1"), held, "-00:00 is an unknown offset too");
    assert_eq!(outcome("I-1"), ("sent".to_string(), None));
    assert_eq!(outcome("L-1"), ("sent".to_string(), None));
    let offsets: Vec<(String, Option<i64>)> = t
        .store()
        .conn()
        .prepare("SELECT id, utc_offset FROM carts ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        offsets,
        [
            ("I-1".to_string(), Some(19_800)),
            ("L-1".to_string(), Some(0)),
            ("M-1".to_string(), None),
            ("Z-1".to_string(), None),
        ]
    );

    // 13:00 UTC is 08:00 in New York: the quiet hours are over.
    let decisions = t
        .recart(&["run", "--json", "--now", "2026-11-21T13:00:00Z"])
        .expect_success()
        .decisions();
    for id in ["Z-1", "M-1"] {
        assert_eq!(for_cart(&decisions, id)[0].outcome, "sent", "{id}");
    }
    assert_eq!(t.store().sends_in("sent").len(), 4);
}
