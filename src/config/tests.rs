use std::path::Path;

use chrono::TimeDelta;

use super::{Config, Tls, Transport, parse_duration};
use crate::coupon::CouponRule;
use crate::error::Result;
use crate::ingest::Format;
use crate::plan::{Channel, OutOfStock};

const MINIMAL: &str = r#"
[links]
recover = "https://shop.example/r/{token}"
unsubscribe = "https://shop.example/u/{token}"
secret_env = "RECART_SECRET"

[[steps]]
name = "1h"
after = "1h"
template = "reminder"
"#;

fn parse(text: &str) -> Result<Config> {
    Config::parse(Path::new("/shop/recart.toml"), text)
}

#[test]
fn defaults_fill_what_is_not_given() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.store_path, Path::new("/shop/recart.db"));
    assert_eq!(config.templates_dir, Path::new("/shop/templates"));
    assert!(
        matches!(config.transport, Transport::File { ref dir } if dir == Path::new("/shop/outbox"))
    );
    assert!(config.steps[0].require_consent);
    assert_eq!(config.policy.max_age, TimeDelta::days(7));
    assert_eq!(config.steps[0].after, TimeDelta::hours(1));
}

#[test]
fn unknown_keys_are_named() {
    let error = parse(&format!("{MINIMAL}\n[policy]\nmin_valeu = \"1\"\n")).unwrap_err();
    assert!(error.to_string().contains("min_valeu"), "{error}");
    assert_eq!(error.exit_code(), crate::error::exit::USAGE);
}

#[test]
fn durations_are_bounded() {
    assert!(parse_duration("7d").is_ok());
    assert!(
        parse_duration("1000000years")
            .unwrap_err()
            .contains("too long")
    );
}

#[test]
fn a_typo_gets_a_suggestion() {
    let error = parse(&format!("{MINIMAL}\n[policy]\nmin_valeu = \"1\"\n")).unwrap_err();
    assert!(
        error.to_string().contains("did you mean `min_value`?"),
        "{error}"
    );
    let error = parse(&format!("{MINIMAL}\n[policy]\nzzzz = \"1\"\n")).unwrap_err();
    assert!(!error.to_string().contains("did you mean"), "{error}");
}

#[test]
fn bad_values_name_their_key() {
    let error = parse(&MINIMAL.replace("after = \"1h\"", "after = \"soon\"")).unwrap_err();
    assert!(error.to_string().contains("steps[0].after"), "{error}");
    let error = parse(&format!(
        "{MINIMAL}\n[[sources]]\npath = \"x.csv\"\nformat = \"excel\"\n"
    ))
    .unwrap_err();
    assert!(error.to_string().contains("sources[0].format"), "{error}");
}

#[test]
fn sqlite_sources_name_the_key_that_is_wrong() {
    let queries = "carts_query = \"SELECT 1\"\nitems_query = \"SELECT 2\"\n";
    let config = parse(&format!(
        "{MINIMAL}\n[[sources]]\nsqlite = \"shop.db\"\n{queries}"
    ))
    .unwrap();
    let sqlite = config.sources[0].database.as_ref().unwrap();
    assert!(sqlite.name().ends_with("shop.db"));
    assert_eq!(sqlite.items_query, "SELECT 2");
    for (source, key) in [
        (
            format!("path = \"x.csv\"\nsqlite = \"shop.db\"\n{queries}"),
            "sources[0].sqlite",
        ),
        ("format = \"native\"\n".to_string(), "sources[0].path"),
        (
            "sqlite = \"shop.db\"\ncarts_query = \"SELECT 1\"\n".to_string(),
            "sources[0].items_query",
        ),
        (
            format!("sqlite = \"shop.db\"\nformat = \"shopify\"\n{queries}"),
            "sources[0].format",
        ),
        (
            format!("path = \"x.csv\"\n{queries}"),
            "sources[0].carts_query",
        ),
    ] {
        let error = parse(&format!("{MINIMAL}\n[[sources]]\n{source}")).unwrap_err();
        assert!(error.to_string().contains(key), "{key}: {error}");
    }
}

#[test]
fn a_source_s_encoding_is_an_encoding_name() {
    let source = |encoding: &str| {
        parse(&format!(
            "{MINIMAL}\n[[sources]]\npath = \"x.csv\"\nencoding = \"{encoding}\"\n\
             [[catalog]]\npath = \"p.csv\"\nencoding = \"{encoding}\"\n"
        ))
    };
    let config = source("Windows-1252").unwrap();
    assert_eq!(config.sources[0].encoding, Some(encoding_rs::WINDOWS_1252));
    assert_eq!(config.catalogs[0].encoding, Some(encoding_rs::WINDOWS_1252));
    // UTF-8 is the default: nothing to decode.
    assert_eq!(source("utf-8").unwrap().sources[0].encoding, None);
    let error = source("klingon").unwrap_err().to_string();
    assert!(error.contains("sources[0].encoding"), "{error}");
    let queries = "carts_query = \"SELECT 1\"\nitems_query = \"SELECT 2\"\n";
    let error = parse(&format!(
        "{MINIMAL}\n[[sources]]\nsqlite = \"shop.db\"\n{queries}encoding = \"latin1\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("sources[0].encoding: not for a database source"),
        "{error}"
    );
}

#[test]
fn mail_keys_reply_to_mailto_and_utm() {
    let text = MINIMAL.replace(
        "secret_env = \"RECART_SECRET\"",
        "secret_env = \"RECART_SECRET\"\nunsubscribe_mailto = \"mailto:unsub@shop.example?subject=unsubscribe%20{token}\"\nutm = { utm_source = \"recart\", utm_medium = \"email\" }",
    );
    let config = parse(&format!(
        "{text}\n[transport]\nreply_to = \"Help <help@shop.example>\"\n"
    ))
    .unwrap();
    assert_eq!(
        config.reply_to.unwrap().to_string(),
        "Help <help@shop.example>"
    );
    assert_eq!(
        config.links.unsubscribe_mailto.as_deref(),
        Some("mailto:unsub@shop.example?subject=unsubscribe%20{token}")
    );
    assert_eq!(
        config.links.utm,
        vec![
            ("utm_medium".to_string(), "email".to_string()),
            ("utm_source".to_string(), "recart".to_string())
        ]
    );
    assert!(parse(MINIMAL).unwrap().reply_to.is_none());

    for (bad, key) in [
        (
            MINIMAL.replace(
                "secret_env",
                "unsubscribe_mailto = \"unsub@shop.example\"\nsecret_env",
            ),
            "links.unsubscribe_mailto",
        ),
        (
            MINIMAL.replace("https://shop.example/r/{token}", "shop.example/r/{token}"),
            "links.recover",
        ),
        (
            format!("{MINIMAL}\n[transport]\nreply_to = \"not an address\"\n"),
            "transport.reply_to",
        ),
        (
            MINIMAL.replace("secret_env", "utm = { utm_source = \"\" }\nsecret_env"),
            "links.utm",
        ),
    ] {
        let error = parse(&bad).unwrap_err();
        assert!(error.to_string().contains(key), "{key}: {error}");
    }
}

#[test]
fn sources_map_columns_and_dates() {
    let config = parse(&format!(
        "{MINIMAL}\n[[sources]]\npath = \"quotes/*.csv\"\nformat = \"native\"\n\
         columns = {{ cart_id = \"Quote ID\", email = \"Customer Email\" }}\n\
         date_format = \"%d/%m/%Y %H:%M\"\n"
    ))
    .unwrap();
    let source = &config.sources[0];
    assert_eq!(
        source.columns,
        vec![
            ("cart_id".to_string(), "Quote ID".to_string()),
            ("email".to_string(), "Customer Email".to_string())
        ]
    );
    assert_eq!(source.date_format.as_deref(), Some("%d/%m/%Y %H:%M"));
    let error = parse(&format!(
        "{MINIMAL}\n[[sources]]\npath = \"x.csv\"\ncolumns = {{ cart = \"Quote ID\" }}\n"
    ))
    .unwrap_err();
    assert!(
        error.to_string().contains("sources[0].columns.cart"),
        "{error}"
    );
    let error = parse(&format!(
        "{MINIMAL}\n[[sources]]\npath = \"x.csv\"\ndate_format = \"%Q\"\n"
    ))
    .unwrap_err();
    assert!(
        error.to_string().contains("sources[0].date_format"),
        "{error}"
    );
}

#[test]
fn coupon_keys() {
    let with = |lines: &str| {
        parse(&MINIMAL.replace(
            "template = \"reminder\"",
            &format!("template = \"reminder\"\n{lines}"),
        ))
    };
    let config = with("coupon = \"generate\"").unwrap();
    assert_eq!(
        config.steps[0].coupon,
        Some(CouponRule::Generate {
            prefix: "COMEBACK-".into(),
            ttl: TimeDelta::days(7)
        })
    );
    let config =
        with("coupon = \"generate\"\ncoupon_prefix = \"BACK10_\"\ncoupon_ttl = \"48h\"").unwrap();
    assert_eq!(
        config.steps[0].coupon,
        Some(CouponRule::Generate {
            prefix: "BACK10_".into(),
            ttl: TimeDelta::hours(48)
        })
    );
    let config = with("coupon = \"pool\"").unwrap();
    assert_eq!(
        config.steps[0].coupon,
        Some(CouponRule::Pool {
            pool: "default".into()
        })
    );
    let config = with("coupon = \"pool\"\ncoupon_pool = \"vip\"").unwrap();
    assert_eq!(
        config.steps[0].coupon,
        Some(CouponRule::Pool { pool: "vip".into() })
    );
    assert_eq!(parse(MINIMAL).unwrap().steps[0].coupon, None);
    for (lines, key) in [
        ("coupon = \"free\"", "steps[0].coupon"),
        (
            "coupon = \"pool\"\ncoupon_prefix = \"X\"",
            "steps[0].coupon_prefix",
        ),
        ("coupon_ttl = \"7d\"", "steps[0].coupon_ttl"),
        (
            "coupon = \"generate\"\ncoupon_pool = \"vip\"",
            "steps[0].coupon_pool",
        ),
        (
            "coupon = \"generate\"\ncoupon_prefix = \"NO SPACE\"",
            "steps[0].coupon_prefix",
        ),
        (
            "coupon = \"generate\"\ncoupon_ttl = \"0s\"",
            "steps[0].coupon_ttl",
        ),
        (
            "coupon = \"pool\"\ncoupon_pool = \"\"",
            "steps[0].coupon_pool",
        ),
    ] {
        let error = with(lines).unwrap_err();
        assert!(error.to_string().contains(key), "{lines}: {error}");
    }
}

#[test]
fn a_bad_word_names_its_key_and_the_words_it_may_be() {
    let error = parse(&format!("{MINIMAL}\n[transport]\nkind = \"smtps\"\n")).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("transport.kind: unknown variant `smtps`, expected `file` or `smtp`"),
        "{message}"
    );
    assert!(message.contains("did you mean `smtp`?"), "{message}");
    assert_eq!(error.exit_code(), crate::error::exit::USAGE);

    for (extra, key, words) in [
        (
            "[policy]\nout_of_stock = \"drop\"\n",
            "policy.out_of_stock",
            "`drop-item`, `skip-cart`",
        ),
        (
            "[transport]\ntls = \"ssl\"\n",
            "transport.tls",
            "`starttls`, `implicit`",
        ),
        (
            "[[catalog]]\npath = \"p.csv\"\nformat = \"csv\"\n",
            "catalog[0].format",
            "`native`",
        ),
    ] {
        let message = parse(&format!("{MINIMAL}\n{extra}"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!("{key}: unknown variant")),
            "{message}"
        );
        assert!(message.contains(words), "{message}");
    }
    for (line, key) in [
        (
            "channel = \"sms\"",
            "steps[0].channel: unknown variant `sms`",
        ),
        (
            "require = \"consent\"",
            "steps[0].require: unknown variant `consent`",
        ),
        (
            "coupon = \"free\"",
            "steps[0].coupon: unknown variant `free`",
        ),
    ] {
        let text = MINIMAL.replace(
            "template = \"reminder\"",
            &format!("template = \"reminder\"\n{line}"),
        );
        let message = parse(&text).unwrap_err().to_string();
        assert!(message.contains(key), "{message}");
    }
}

#[test]
fn every_word_is_read() {
    let config = parse(&format!(
        "{MINIMAL}\n[policy]\nout_of_stock = \"skip-cart\"\n\
         [transport]\nkind = \"smtp\"\nhost = \"mx\"\ntls = \"implicit\"\n\
         [[catalog]]\npath = \"p.csv\"\nformat = \"shopify-products\"\ncurrency = \"EUR\"\n\
         [[sources]]\npath = \"c.csv\"\nformat = \"shopify-orders\"\n"
    ))
    .unwrap();
    assert_eq!(config.policy.out_of_stock, OutOfStock::SkipCart);
    assert!(
        matches!(config.transport, Transport::Smtp(ref smtp) if smtp.tls == Tls::Implicit && smtp.port == 465)
    );
    assert_eq!(config.catalogs[0].format, Format::ShopifyProducts);
    assert_eq!(config.sources[0].format, Format::ShopifyOrders);

    let text = MINIMAL.replace(
        "template = \"reminder\"",
        "channel = \"webhook\"\nurl = \"https://sms.example/send\"\nrequire = \"sms_consent\"",
    );
    let step = &parse(&text).unwrap().steps[0];
    assert!(matches!(step.channel, Channel::Webhook(_)));
    assert!(step.require_sms_consent);
}

#[test]
fn a_bad_duration_names_its_key() {
    let text = format!(
        "{MINIMAL}\n[[steps]]\nname = \"later\"\nafter = \"soon\"\ntemplate = \"reminder\"\n"
    );
    let message = parse(&text).unwrap_err().to_string();
    assert!(
        message.contains(r#"steps[1].after: "soon" is not a duration like "30m", "24h" or "7d""#),
        "{message}"
    );
    let message = parse(&format!(
        "{MINIMAL}\n[policy]\ncooldown = \"1000000years\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("policy.cooldown: \"1000000years\" is too long"),
        "{message}"
    );
    let message = parse(&format!("{MINIMAL}\n[report]\nattribution_window = 5\n"))
        .unwrap_err()
        .to_string();
    assert!(
        message
            .contains("report.attribution_window: invalid type: integer `5`, expected a duration"),
        "{message}"
    );
    let config = parse(&format!("{MINIMAL}\n[transport]\nlease = \"1h 30m\"\n")).unwrap();
    assert_eq!(config.delivery.lease, TimeDelta::minutes(90));
}

#[test]
fn syntax_errors_keep_toml_s_own_message() {
    let message = parse(&format!("{MINIMAL}\n[policy\n"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("TOML parse error at line"), "{message}");
}

#[test]
fn a_servers_items_query_must_take_a_batch_of_cart_ids() {
    for (url, example) in [
        ("mysql://u@h/shop", "WHERE quote_id IN (:cart_ids)"),
        ("postgres://u@h/shop", "WHERE order_id = ANY(:cart_ids)"),
    ] {
        let source = format!(
            "{MINIMAL}\n[[sources]]\nurl = \"{url}\"\ncarts_query = \"SELECT 1\"\n\
             items_query = \"SELECT 1 WHERE cart_id = :cart_id\"\n"
        );
        let error = parse(&source).unwrap_err().to_string();
        assert!(error.contains("sources[0].items_query"), "{error}");
        assert!(
            error.contains(&format!("has no :cart_ids (expected e.g. {example})")),
            "{error}"
        );
    }
}
