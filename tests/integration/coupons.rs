//! Coupons through the binary: `coupons import`/`list`, pool draws one
//! code per cart, `no-coupon` when the pool is dry, dry runs that draw
//! nothing lasting, generated codes that stay the same across renders and
//! re-sends.

use crate::{
    fixtures::{Config, NOW, Transport, shop},
    harness::{Test, for_cart, mail_file},
    mime::Mail,
};

const COUPON_SUBJECT: &str = "{% if coupon %}A code for you{% else %}Your cart{% endif %}\n";
const COUPON_TXT: &str = "\
Code: {{ coupon.code }}{% if coupon.expires %}, valid until {{ coupon.expires }}{% endif %}.
{{ links.recover }}
Unsubscribe: {{ links.unsubscribe }}
";
const COUPON_HTML: &str = "\
<p>Code: <b>{{ coupon.code }}</b>{% if coupon.expires %}, valid until {{ coupon.expires }}{% endif %}.</p>
<p><a href=\"{{ links.recover }}\">Back to your cart</a> <a href=\"{{ links.unsubscribe }}\">Unsubscribe</a></p>
";

/// One step, `1h`, with template `coupon` and the given coupon lines.
/// At `NOW` C-1001 (Ada) and C-1002 (Grace) are due, Grace first (longer
/// overdue); C-1003 has no consent.
fn coupon_shop(coupon_lines: &str) -> Test {
    let mut config = Config::new(Transport::File);
    config.steps = vec![("1h".into(), "1h".into(), "coupon".into())];
    // Appended after the last [[steps]]: its keys.
    config.extra = coupon_lines.to_string();
    shop(&config)
        .file("templates/coupon.subject", COUPON_SUBJECT)
        .file("templates/coupon.txt", COUPON_TXT)
        .file("templates/coupon.html", COUPON_HTML)
}

/// (code, `cart_id`) of every code in the store, by code.
fn coupons(t: &Test) -> Vec<(String, Option<String>)> {
    let store = t.store();
    let mut query = store
        .conn()
        .prepare("SELECT code, cart_id FROM coupons ORDER BY code")
        .unwrap();
    query
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn mail_text(t: &Test, path: &str) -> String {
    Mail::parse(&t.read(path)).text()
}

#[test]
fn coupons_import_reports_bad_rows_and_list_shows_the_stock() {
    let t = coupon_shop("coupon = \"pool\"\n").file(
        "codes.csv",
        "code,expires,pool\nSAVE-A,2099-12-31,\nSAVE-B,,vip\n,2099-12-31,\nSAVE-C,soon,\nSAVE-D,2001-01-01,\n",
    );
    let out = t.recart(&["coupons", "import", "codes.csv"]);
    out.expect_status(3)
        .expect_stdout_contains(
            "codes.csv: 5 rows read, 3 codes added, 0 already known, 2 rejected",
        )
        .expect_stderr_contains("codes.csv:4: field code:")
        .expect_stderr_contains("codes.csv:5: field expires:");
    // Again: nothing new, the known codes untouched.
    t.recart(&["coupons", "import", "codes.csv"])
        .expect_status(3)
        .expect_stdout_contains("0 codes added, 3 already known");

    let out = t.recart(&["coupons", "list"]);
    out.expect_success();
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["POOL", "FREE", "GIVEN", "EXPIRED"],
            vec!["default", "1", "0", "1"],
            vec!["vip", "1", "0", "0"],
        ],
        "{}",
        out.stdout
    );

    t.write("nocode.csv", "coupon\nX\n");
    t.recart(&["coupons", "import", "nocode.csv"])
        .expect_status(1)
        .expect_stderr_contains("no `code` column");
}

#[test]
fn pool_codes_go_one_per_cart_and_a_dry_pool_skips_with_no_coupon() {
    let t = coupon_shop("coupon = \"pool\"\n").file("codes.csv", "code\nFIRST-10\n");
    t.recart(&["coupons", "import", "codes.csv"])
        .expect_success();

    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(0);
    let decisions = out.decisions();
    let grace = for_cart(&decisions, "C-1002");
    assert_eq!(grace[0].outcome, "sent", "{decisions:?}");
    let ada = for_cart(&decisions, "C-1001");
    assert_eq!(ada[0].outcome, "skip", "{decisions:?}");
    assert_eq!(ada[0].reason.as_deref(), Some("no-coupon"));
    out.expect_stderr_contains("no-coupon 1");
    // Never a mail without its code.
    assert!(!t.exists(mail_file("outbox", "C-1001", "1h", "eml")));
    assert!(mail_text(&t, &mail_file("outbox", "C-1002", "1h", "eml")).contains("Code: FIRST-10."));
    assert_eq!(
        coupons(&t),
        [("FIRST-10".to_string(), Some("C-1002".to_string()))]
    );
    assert_eq!(t.store().sends_in("sent"), [("C-1002".into(), "1h".into())]);

    // More codes: Ada is due again and gets the new one, not Grace's.
    t.write("more.csv", "code,expires\nSECOND-10,2027-01-31T00:00:00Z\n");
    t.recart(&["coupons", "import", "more.csv"])
        .expect_success();
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_success();
    let decisions = out.decisions();
    assert_eq!(for_cart(&decisions, "C-1001")[0].outcome, "sent");
    let text = mail_text(&t, &mail_file("outbox", "C-1001", "1h", "eml"));
    assert!(
        text.contains("Code: SECOND-10, valid until 31 January 2027."),
        "{text}"
    );
    assert_eq!(
        coupons(&t),
        [
            ("FIRST-10".to_string(), Some("C-1002".to_string())),
            ("SECOND-10".to_string(), Some("C-1001".to_string())),
        ]
    );
}

#[test]
fn a_dry_run_shows_the_draw_and_leaves_the_pool_untouched() {
    let t = coupon_shop("coupon = \"pool\"\n").file("codes.csv", "code\nONLY-ONE\n");
    t.recart(&["coupons", "import", "codes.csv"])
        .expect_success();

    let out = t.recart(&[
        "run",
        "--dry-run",
        "--json",
        "--preview",
        "preview",
        "--now",
        NOW,
    ]);
    out.expect_success();
    let decisions = out.decisions();
    // As a real run would decide: one code, two carts.
    assert_eq!(for_cart(&decisions, "C-1002")[0].outcome, "send");
    assert_eq!(
        for_cart(&decisions, "C-1001")[0].reason.as_deref(),
        Some("no-coupon")
    );
    assert!(mail_text(&t, &mail_file("preview", "C-1002", "1h", "eml")).contains("ONLY-ONE"));
    // Nothing lasting: the code is still free, nothing was claimed.
    assert_eq!(coupons(&t), [("ONLY-ONE".to_string(), None)]);
    assert_eq!(t.sends_if_any(), []);

    // A test send records nothing either.
    t.recart(&["run", "--to", "qa@shop.example", "--now", NOW])
        .expect_success();
    assert_eq!(coupons(&t), [("ONLY-ONE".to_string(), None)]);
}

#[test]
fn generated_codes_are_the_same_in_the_preview_the_mail_and_a_re_send() {
    let t = coupon_shop("coupon = \"generate\"\ncoupon_prefix = \"BACK-\"\ncoupon_ttl = \"7d\"\n");
    let code_in = |text: &str| -> String {
        let start = text.find("Code: ").expect("a code line") + "Code: ".len();
        text[start..].split([',', '.']).next().unwrap().to_string()
    };

    t.recart(&["run", "--dry-run", "--preview", "preview", "--now", NOW])
        .expect_success();
    let preview = mail_text(&t, &mail_file("preview", "C-1001", "1h", "eml"));
    assert_eq!(t.sends_if_any(), []);

    t.recart(&["run", "--now", NOW]).expect_success();
    let sent = mail_text(&t, &mail_file("outbox", "C-1001", "1h", "eml"));
    let code = code_in(&sent);
    assert_eq!(code, code_in(&preview));
    assert!(
        code.starts_with("BACK-") && code.len() == "BACK-".len() + 10,
        "{code}"
    );
    // 7 days from the run.
    assert!(sent.contains("valid until 28 November 2026."), "{sent}");
    let other = code_in(&mail_text(&t, &mail_file("outbox", "C-1002", "1h", "eml")));
    assert_ne!(code, other);
    assert_eq!(coupons(&t).len(), 2, "{:?}", coupons(&t));

    // The mail's outcome turns out unknown; the operator re-sends it a day
    // later: the same code, with the expiry it was first given.
    t.store()
        .conn()
        .execute(
            "UPDATE sends SET state = 'unknown' WHERE cart_id = 'C-1001'",
            [],
        )
        .unwrap();
    std::fs::remove_file(t.join(mail_file("outbox", "C-1001", "1h", "eml"))).unwrap();
    let later = "2026-11-22T09:00:00Z";
    let out = t.recart(&["run", "--resend-unknown", "--json", "--now", later]);
    out.expect_success();
    assert_eq!(for_cart(&out.decisions(), "C-1001")[0].outcome, "sent");
    let resent = mail_text(&t, &mail_file("outbox", "C-1001", "1h", "eml"));
    assert_eq!(code_in(&resent), code);
    assert!(resent.contains("valid until 28 November 2026."), "{resent}");
    // Still one code for C-1001 (C-1004 became due meanwhile and got its own).
    let c1001: Vec<String> = coupons(&t)
        .into_iter()
        .filter(|(_, cart)| cart.as_deref() == Some("C-1001"))
        .map(|(code, _)| code)
        .collect();
    assert_eq!(c1001, [code]);
}

#[test]
fn check_fails_a_template_that_uses_a_coupon_the_step_does_not_have() {
    // The step has no coupon: `coupon.code` unguarded is an error, found
    // before anything is sent.
    let t = coupon_shop("");
    t.recart(&["check"])
        .expect_status(2)
        .expect_stderr_contains("coupon");
    t.recart(&["run", "--now", NOW]).expect_status(2);
    assert!(!t.exists("outbox"));

    let t = coupon_shop("coupon = \"generate\"\n");
    t.recart(&["check"])
        .expect_success()
        .expect_stdout_contains("subject: \"A code for you\"");
}

#[test]
fn coupons_export_lists_the_codes_given_with_cart_step_address_and_times() {
    let t = coupon_shop("coupon = \"pool\"\n").file(
        "codes.csv",
        "code,expires\nSAVE-A,2026-12-31T23:59:59Z\nSAVE-B,\nSPARE,\n",
    );
    t.recart(&["coupons", "import", "codes.csv"])
        .expect_success();
    t.recart(&["run", "--now", NOW]).expect_success();

    let out = t.recart(&["coupons", "export"]);
    out.expect_success();
    let mut rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        rows.remove(0),
        "code,pool,cart_id,step,email,issued_at,expires_at,mail"
    );
    rows.sort_unstable();
    // Grace (longer overdue) drew first: the code expiring soonest. The
    // spare code was given to nobody and is not listed.
    assert_eq!(
        rows,
        [
            "SAVE-A,default,C-1002,1h,grace.hopper@example.com,2026-11-21T12:00:00Z,2026-12-31T23:59:59Z,sent",
            "SAVE-B,default,C-1001,1h,ada.lovelace@example.com,2026-11-21T12:00:00Z,,sent",
        ]
    );
    out.expect_stderr_contains("2 codes");

    let json = t.recart(&["coupons", "export", "--format", "json"]);
    json.expect_success();
    let codes = json.json_lines();
    assert_eq!(codes.len(), 2);
    let grace = codes.iter().find(|c| c["code"] == "SAVE-A").unwrap();
    assert_eq!(grace["cart_id"], "C-1002");
    assert_eq!(grace["email"], "grace.hopper@example.com");
    assert_eq!(grace["expires_at"], "2026-12-31T23:59:59Z");
    assert!(codes.iter().any(|c| c["expires_at"].is_null()));

    // Only what was issued since a time: a later run's codes.
    let since = t.recart(&["coupons", "export", "--since", "2026-11-21T12:00:01Z"]);
    since.expect_success();
    assert_eq!(
        since.stdout.trim(),
        "code,pool,cart_id,step,email,issued_at,expires_at,mail"
    );
    t.recart(&["coupons", "export", "--format", "xml"])
        .expect_status(2);
}

#[test]
fn a_code_valid_for_less_than_a_day_shows_its_time_in_the_customers_zone() {
    let t = coupon_shop("coupon = \"generate\"\ncoupon_ttl = \"6h\"\n");
    t.recart(&["run", "--now", NOW]).expect_success();
    // Ada (en-GB, no zone: policy.timezone, UTC) and Grace (en-US, her
    // times written at -05:00): 18:00 UTC is 1 PM for her.
    let ada = mail_text(&t, &mail_file("outbox", "C-1001", "1h", "eml"));
    assert!(ada.contains(", valid until 18:00, 21 November."), "{ada}");
    let grace = mail_text(&t, &mail_file("outbox", "C-1002", "1h", "eml"));
    assert!(
        grace.contains(", valid until 1:00 PM, November 21."),
        "{grace}"
    );

    // Generated codes are exported too, without a pool.
    let out = t.recart(&["coupons", "export", "--format", "json"]);
    out.expect_success();
    let codes = out.json_lines();
    assert_eq!(codes.len(), 2);
    assert!(codes.iter().all(|c| c["pool"].is_null()), "{codes:?}");
    assert!(
        codes
            .iter()
            .all(|c| c["expires_at"] == "2026-11-21T18:00:00Z"),
        "{codes:?}"
    );
}
