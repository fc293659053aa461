//! The composer against a real (in-memory) store and the starter
//! templates: a due cart becomes a mail or a webhook call, or is skipped
//! as gone or for a dry coupon pool.

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::token::Signer;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn config() -> Config {
    let text = r#"
[transport]
from = "Shop <hello@shop.example>"
return_path = "bounces+{token}@shop.example"

[links]
recover = "https://shop.example/r/{token}"
unsubscribe = "https://shop.example/u/{token}"
secret_env = "RECART_SECRET"

[[steps]]
name = "1h"
after = "1h"
template = "reminder"

[[steps]]
name = "24h"
after = "24h"
template = "reminder-3"
coupon = "pool"

[[steps]]
name = "48h"
after = "48h"
channel = "webhook"
url = "https://hooks.shop.example/recart"
"#;
    let mut config = Config::parse(Path::new("/shop/recart.toml"), text).unwrap();
    config.templates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    config
}

/// Composes `wanted` (cart id, step index) for a store holding the sample
/// cart as `C1`, `C2` and `C3` (a batch names each cart once, as a plan
/// decides each cart once).
fn compose(how: Compose<'_>, wanted: &[(&str, usize)]) -> Vec<Composed> {
    let config = config();
    let store = Store::open_in_memory().unwrap();
    let carts: Vec<_> = ["C1", "C2", "C3"]
        .into_iter()
        .map(|id| {
            let mut cart = sample_cart(now());
            cart.id = id.into();
            cart.email = "ann@example.com".into();
            cart
        })
        .collect();
    store.import_carts(&carts).unwrap();
    let renderer = Renderer::load(&config.templates_dir, &config.steps, &config.shop_name).unwrap();
    let signer = Signer::new(b"compose-test-key");
    let links = LinkMaker {
        config: &config,
        signer: &signer,
        now: now(),
    };
    let keys = WebhookKeys::new();
    let composer = Composer::new(&store, &config, &renderer, &links, &keys, how).unwrap();
    let wanted: Vec<(&str, &Step)> = wanted
        .iter()
        .map(|(id, step)| (*id, &config.steps[*step]))
        .collect();
    std::thread::scope(|scope| {
        let job = composer.start_composing(scope, &wanted, false).unwrap();
        Composer::finish_composing(job, None).unwrap()
    })
}

#[test]
fn a_due_cart_becomes_a_mail_to_its_customer_in_order() {
    let how = Compose {
        to: None,
        encode: true,
        ..Compose::default()
    };
    let composed = compose(how, &[("C1", 0), ("gone", 0), ("C2", 1), ("C3", 2)]);
    let [first, second, third, fourth] = composed.try_into().unwrap();
    let Composed::Ready(Reminder::Mail(mail)) = first else {
        panic!("not a mail: {first:?}");
    };
    assert_eq!((mail.cart_id.as_str(), mail.step.as_str()), ("C1", "1h"));
    let to: Vec<String> = mail.envelope.to().iter().map(ToString::to_string).collect();
    assert_eq!(to, ["ann@example.com"]);
    // The envelope sender names the send (VERP), signed with the links' key.
    let token = crate::token::return_path_token(&Signer::new(b"compose-test-key"), "C1", "1h");
    assert_eq!(
        mail.envelope.from().unwrap().to_string(),
        format!("bounces+{token}@shop.example")
    );
    let text = String::from_utf8_lossy(&mail.bytes);
    assert!(text.contains("List-Unsubscribe"), "{text}");
    assert!(text.contains("https://shop.example/u/"), "{text}");
    assert!(matches!(second, Composed::Gone), "{second:?}");
    // The pool is empty: never a mail without the code it promises.
    assert!(matches!(third, Composed::NoCoupon), "{third:?}");
    let Composed::Ready(Reminder::Webhook(call)) = fourth else {
        panic!("not a webhook call: {fourth:?}");
    };
    assert_eq!(call.idempotency_key, webhook::idempotency_key("C3", "48h"));
    let document: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(document["customer"]["email"], "ann@example.com");
    assert_eq!(document["cart"]["item_count"], 3);
}

#[test]
fn a_test_send_goes_to_the_operator_and_a_dry_run_builds_no_message() {
    let how = Compose {
        to: Some("ops@shop.example"),
        encode: true,
        ..Compose::default()
    };
    let [composed] = compose(how, &[("C1", 0)]).try_into().unwrap();
    let Composed::Ready(Reminder::Mail(mail)) = composed else {
        panic!("not a mail");
    };
    let to: Vec<String> = mail.envelope.to().iter().map(ToString::to_string).collect();
    assert_eq!(to, ["ops@shop.example"]);
    // A test send records nothing, so its bounces must name no send.
    assert_eq!(
        mail.envelope.from().unwrap().to_string(),
        "hello@shop.example"
    );

    let [composed] = compose(Compose::default(), &[("C1", 0)])
        .try_into()
        .unwrap();
    let Composed::Ready(Reminder::Mail(mail)) = composed else {
        panic!("not a mail");
    };
    assert!(
        mail.bytes.is_empty(),
        "a dry run without a gallery needs no MIME"
    );
}

#[test]
fn every_template_is_tried_in_every_locale() {
    let config = config();
    let renderer = Renderer::load(&config.templates_dir, &config.steps, &config.shop_name).unwrap();
    let signer = Signer::new(b"compose-test-key");
    let links = LinkMaker {
        config: &config,
        signer: &signer,
        now: now(),
    };
    let mut tried = Vec::new();
    try_every_template(&config, &renderer, &links, |t| {
        assert!(!t.rendered.unwrap().subject.is_empty());
        tried.push(format!("{}:{}:{}", t.step.name, t.template, t.locale));
    })
    .unwrap();
    // The webhook step has no template.
    assert_eq!(tried, ["1h:reminder:", "24h:reminder-3:"]);
}
