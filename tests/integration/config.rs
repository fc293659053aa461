//! Configuration errors: exit 2, with a message naming the key or file, and
//! nothing sent.

use crate::{
    fixtures::{Config, NOW, Transport, shop},
    harness::Test,
};

fn expect_config_error(t: &Test, needle: &str) {
    for args in [
        &["run", "--now", NOW][..],
        &["run", "--dry-run", "--now", NOW][..],
    ] {
        t.recart(args)
            .expect_status(2)
            .expect_stderr_contains(needle);
    }
    assert!(t.files_in("outbox", ".eml").is_empty(), "a mail was sent");
}

#[test]
fn unknown_key_is_a_config_error_naming_it() {
    let config = Config::new(Transport::File);
    let toml = config
        .to_toml()
        .replace("require_consent = true", "require_consnet = true");
    let t = shop(&config).file("recart.toml", toml);
    expect_config_error(&t, "require_consnet");
}

#[test]
fn unknown_table_is_a_config_error_naming_it() {
    let mut config = Config::new(Transport::File);
    config.extra = "[tracking]\nutm_source = \"recart\"\n".into();
    let t = shop(&config);
    expect_config_error(&t, "tracking");
}

#[test]
fn unknown_key_in_a_step_is_a_config_error_naming_it() {
    let mut config = Config::new(Transport::File);
    config.extra = "[[steps]]\nname = \"7d\"\nafter = \"7d\"\ntemplate = \"follow-up\"\ncoupon = \"COMEBACK10\"\n".into();
    let t = shop(&config);
    expect_config_error(&t, "coupon");
}

#[test]
fn invalid_duration_is_a_config_error_naming_the_key() {
    let mut config = Config::new(Transport::File);
    config.max_age = "a week or so".into();
    let t = shop(&config);
    expect_config_error(&t, "max_age");
}

#[test]
fn missing_template_is_a_config_error_naming_the_file() {
    let mut config = Config::new(Transport::File);
    config.steps[1].2 = "winback".into();
    let t = shop(&config);
    expect_config_error(&t, "winback");
    assert!(t.sends_if_any().is_empty());
}

#[test]
fn missing_template_part_is_a_config_error_naming_the_file() {
    let t = shop(&Config::new(Transport::File));
    // The .txt part is optional (derived from the HTML); .subject is not.
    std::fs::remove_file(t.join("templates/follow-up.subject")).unwrap();
    expect_config_error(&t, "follow-up.subject");
}

#[test]
fn template_syntax_error_is_a_config_error_naming_the_file() {
    let t = shop(&Config::new(Transport::File)).file(
        "templates/follow-up.html",
        "<p>{% for item in items %}{{ item.name }}</p>\n",
    );
    expect_config_error(&t, "follow-up.html");
}
