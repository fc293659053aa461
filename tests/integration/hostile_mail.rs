//! Mails a hostile world cannot break: templates bounded in output and
//! work (one mail fails, the run goes on), one address rule with IDNA
//! domains and SMTPUTF8 only where the server offers it, and cart text
//! that looks like RFC 2047 encoded words shown as typed.

use mail_parser::MessageParser;

use crate::{
    fixtures::{ADA, Config, NOW, Transport, carts_csv, shop},
    harness::{Test, carts_with, for_cart, mail_file},
    smtp_server::SmtpServer,
};

/// A cart due for the 1h step at `NOW`, with one item.
fn cart(id: &str, email: &str, first_name: &str) -> String {
    format!(
        "{id},{email},{first_name},en-GB,EUR,open,true,2026-11-21T08:55:00Z,2026-11-21T09:30:00Z,SKU-{id},Thing,Stuff,1,29.00,,"
    )
}

/// An address whose local part is not ASCII, on a domain that is not
/// either, and one with only the domain so.
const JOERG_UTF8: &str = "jörg@bücher.example";
const JOERG_IDN: &str = "joerg@bücher.example";
const PUNYCODE: &str = "xn--bcher-kva.example";

#[test]
fn a_mail_over_the_output_bound_fails_alone_and_the_run_goes_on() {
    // The sample cart's "Sam " comes to 240 KB, Ann's too; the long name
    // to 1.26 MB, over the 1 MiB of one part.
    let t = shop(&Config::new(Transport::File))
        .file(
            "templates/reminder.txt",
            "{{ (customer.first_name ~ \" \") * 60000 }}\n{{ links.recover }}\n",
        )
        .file(
            "carts.csv",
            carts_csv(&[
                &cart("C-1", "ann@example.com", "Ann"),
                &cart("C-2", "max@example.com", "Maximiliana-Theodora"),
                &cart("C-3", "bo@example.com", "Bo"),
            ]),
        );
    for args in [
        &["run", "--dry-run", "--json", "--now", NOW][..],
        &["run", "--json", "--now", NOW][..],
    ] {
        let out = t.recart(args);
        out.expect_status(3);
        let decisions = out.decisions();
        let max = for_cart(&decisions, "C-2");
        assert_eq!(max.len(), 1, "{decisions:?}");
        assert_eq!(max[0].outcome, "failed", "{decisions:?}");
        let reason = max[0].reason.as_deref().unwrap_or_default();
        assert!(reason.contains("reminder.txt"), "{reason}");
        assert!(reason.contains("1 MiB"), "{reason}");
    }
    let decisions = t
        .recart(&["run", "--dry-run", "--json", "--now", NOW])
        .decisions();
    assert_eq!(
        carts_with(&decisions, "failed"),
        ["C-2"],
        "not recorded: due again"
    );
    let outbox = t.files_in("outbox", ".eml");
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    let sends = t.store().sends();
    assert!(sends.iter().all(|send| send.cart_id != "C-2"), "{sends:?}");
    assert_eq!(sends.len(), 2, "{sends:?}");
}

#[test]
fn check_names_a_template_over_a_bound() {
    let t = shop(&Config::new(Transport::File));
    t.recart(&["check"]).expect_success();
    let txt = t.read("templates/reminder.txt");
    t.write(
        "templates/reminder.txt",
        "{% for a in range(2000) %}{% for b in range(2000) %}{% endfor %}{% endfor %}",
    );
    t.recart(&["check"])
        .expect_status(2)
        .expect_stderr_contains("reminder.txt")
        .expect_stderr_contains("template instructions");
    t.write("templates/reminder.txt", txt);
    t.write(
        "templates/reminder.html",
        "<html><body><p>{{ \"x\" * 100000000 }}</p></body></html>",
    );
    t.recart(&["check"])
        .expect_status(2)
        .expect_stderr_contains("reminder.html")
        .expect_stderr_contains("output over the limit of 1 MiB");
}

#[test]
fn addresses_outside_the_rule_are_refused_at_every_door() {
    let t = shop(&Config::new(Transport::File)).file(
        "carts.csv",
        carts_csv(&[
            &cart("C-1", "a@b", "A"),
            &cart("C-2", "x@ex_ample.com", "X"),
            &cart("C-3", "x@[127.0.0.1]", "Y"),
            &cart("C-4", JOERG_UTF8, "Jörg"),
            &cart("C-5", ADA, "Ada"),
        ]),
    );
    let out = t.recart(&["import", "carts.csv"]);
    out.expect_status(3);
    for bad in ["\"a@b\"", "\"x@ex_ample.com\"", "\"x@[127.0.0.1]\""] {
        out.expect_stderr_contains(&format!("{bad} is not an e-mail address"));
    }
    out.expect_stderr_contains("the domain needs a dot");
    out.expect_stderr_contains("an address literal is not taken");
    assert_eq!(t.store().cart_ids(), ["C-4", "C-5"]);

    for bad in ["a@b", "x@ex_ample.com", "x@[127.0.0.1]"] {
        t.recart(&["suppress", "add", bad])
            .expect_status(2)
            .expect_stderr_contains("is not an e-mail address");
        t.recart(&["run", "--to", bad, "--now", NOW])
            .expect_status(2)
            .expect_stderr_contains("is not an e-mail address");
    }
    t.recart(&["suppress", "add", JOERG_IDN]).expect_success();
}

/// The carts of the SMTP cases: an ASCII address, one whose local part is
/// not ASCII, one with only an international domain, another ASCII one.
fn international_shop(port: u16) -> Test {
    shop(&Config::new(Transport::Smtp(port))).file(
        "carts.csv",
        carts_csv(&[
            &cart("C-1", ADA, "Ada"),
            &cart("C-2", JOERG_UTF8, "Jörg"),
            &cart("C-3", JOERG_IDN, "Joerg"),
            &cart("C-4", "grace@example.com", "Grace"),
        ]),
    )
}

#[test]
fn without_smtputf8_a_local_part_that_is_not_ascii_fails_that_mail_only() {
    // Pipelining: the mail after it would go ahead with the one before.
    let server = SmtpServer::start_pipelining();
    let t = international_shop(server.port());
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(3);
    let decisions = out.decisions();
    assert_eq!(carts_with(&decisions, "sent"), ["C-1", "C-3", "C-4"]);
    let joerg = for_cart(&decisions, "C-2");
    assert_eq!(joerg[0].outcome, "failed", "{decisions:?}");
    assert!(
        joerg[0]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("SMTPUTF8"),
        "{decisions:?}"
    );
    assert_eq!(t.store().sends_in("failed"), [("C-2".into(), "1h".into())]);

    let attempts = server.rcpt_attempts();
    assert!(attempts.iter().all(|rcpt| rcpt.is_ascii()), "{attempts:?}");
    let idn = format!("joerg@{PUNYCODE}");
    assert!(attempts.contains(&idn), "{attempts:?}");
    for message in server.messages() {
        assert!(message.data.is_ascii(), "{}", message.data);
        assert!(!message.smtputf8);
    }
    let mail = server.messages_to(&idn)[0].mail();
    let to = mail.header("To").unwrap_or_default();
    assert!(to.ends_with(&format!("<{idn}>")), "To: {to}");
}

#[test]
fn with_smtputf8_the_local_part_goes_as_it_is_and_the_domain_as_idna() {
    let server = SmtpServer::start_smtputf8();
    let t = international_shop(server.port());
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_success();
    assert_eq!(
        carts_with(&out.decisions(), "sent"),
        ["C-1", "C-2", "C-3", "C-4"]
    );
    let utf8 = format!("jörg@{PUNYCODE}");
    let sent = server.messages_to(&utf8);
    assert_eq!(sent.len(), 1, "{:?}", server.rcpt_attempts());
    assert!(sent[0].smtputf8, "MAIL FROM without SMTPUTF8");
    let to = sent[0].mail().header("To").unwrap_or_default();
    assert!(to.ends_with(&format!("<{utf8}>")), "To: {to}");
    // The others need no SMTPUTF8 and do not ask for it.
    let ada = &server.messages_to(ADA)[0];
    assert!(!ada.smtputf8);
    assert!(!server.messages_to(&format!("joerg@{PUNYCODE}"))[0].smtputf8);
}

#[test]
fn the_file_transport_writes_what_smtp_would_send() {
    let t = international_shop(0);
    t.write(
        "recart.toml",
        Config::new(Transport::File).to_toml().as_str(),
    );
    t.recart(&["run", "--now", NOW]).expect_success();
    let read = |cart: &str| {
        let eml = std::fs::read(t.join(mail_file("outbox", cart, "1h", "eml"))).unwrap();
        let message = MessageParser::default().parse(&eml).unwrap();
        let to = message.to().unwrap().first().unwrap();
        (to.address.as_deref().unwrap_or_default().to_string(), eml)
    };
    let (address, eml) = read("C-3");
    assert_eq!(address, format!("joerg@{PUNYCODE}"));
    assert!(eml.is_ascii());
    let (address, _) = read("C-2");
    assert_eq!(address, format!("jörg@{PUNYCODE}"));
}

#[test]
fn a_first_name_that_looks_encoded_is_shown_as_typed() {
    let typed = "=?utf-8?q?Ann=0D=0ABcc:_x@evil.example?=";
    let t = shop(&Config::new(Transport::File)).file(
        "carts.csv",
        carts_csv(&[&cart("C-1", "ann@example.com", typed)]),
    );
    t.recart(&["run", "--now", NOW]).expect_success();
    let eml = std::fs::read(t.join(mail_file("outbox", "C-1", "1h", "eml"))).unwrap();
    let raw = String::from_utf8_lossy(&eml);
    let head = &raw[..raw.find("\r\n\r\n").unwrap()];
    let message = MessageParser::default().parse(&eml).unwrap();
    assert_eq!(
        message.subject(),
        Some(format!("Still thinking it over, {typed}?").as_str()),
        "{head}"
    );
    let to = message.to().unwrap().first().unwrap();
    assert_eq!(to.name.as_deref(), Some(typed), "{head}");
    assert_eq!(to.address.as_deref(), Some("ann@example.com"));
    assert!(message.bcc().is_none(), "{head}");
    assert!(
        !head
            .split("\r\n")
            .any(|line| line.to_ascii_lowercase().starts_with("bcc")),
        "{head}"
    );
}
