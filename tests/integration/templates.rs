//! What templates see and what their errors say, from the binary: errors
//! that name the expression, its line and a near key; `check` reporting
//! every error; `cart.items`; `other_carts`; `{cart_id}` in link templates.

use crate::fixtures::{
    ADA, CARTS_CSV, Config, NOW, REMINDER_HTML, REMINDER_TXT, SECRET_ENV, Transport, carts_csv,
    shop,
};
use crate::harness::{Test, mail_file};
use crate::mime::Mail;

/// `reminder.html` of the fixtures with its item loop over `cart.itmes`.
fn html_with_typo() -> String {
    REMINDER_HTML.replacen("{% for item in items %}", "{% for item in cart.itmes %}", 1)
}

/// The (1-based) line of `text` that holds `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|line| line.contains(needle)).unwrap() + 1
}

#[test]
fn an_error_names_the_expression_its_line_and_the_key_meant() {
    let html = html_with_typo();
    let t = shop(&Config::new(Transport::File)).file("templates/reminder.html", &html);
    let line = line_of(&html, "cart.itmes");
    let out = t.recart(&["check"]);
    out.expect_status(2);
    out.expect_stderr_contains(&format!(
        "template reminder.html: `cart.itmes` is undefined (line {line}: `{{% for item in cart.itmes %}}`); did you mean `items`?"
    ));

    // A loop variable's key: compared with every view's keys.
    let text = REMINDER_TXT.replacen("{{ item.name }}", "{{ item.nmae }}", 1);
    let t = shop(&Config::new(Transport::File)).file("templates/reminder.txt", &text);
    let out = t.recart(&["check"]);
    out.expect_status(2);
    out.expect_stderr_contains("`item.nmae` is undefined");
    out.expect_stderr_contains("did you mean `name`?");
}

#[test]
fn check_reports_every_error_and_a_run_stops_at_the_first() {
    let t = shop(&Config::new(Transport::File))
        // Two parts of one set…
        .file("templates/reminder.html", html_with_typo())
        .file(
            "templates/reminder.subject",
            "Still there, {{ custmer.first_name }}?\n",
        )
        // …a locale's set of the same template…
        .file(
            "templates/reminder.de.subject",
            "Hallo {{ customer.frist_name }}\n",
        )
        .file("templates/reminder.de.html", "<p>{{ links.recover }}</p>")
        // …and another step's template that does not even load.
        .file("templates/follow-up.txt", "{% for item in items %}\n");
    let out = t.recart(&["check"]);
    out.expect_status(2);
    out.expect_stderr_contains("template reminder.subject: `custmer` is undefined");
    out.expect_stderr_contains("did you mean `customer`?");
    out.expect_stderr_contains("template reminder.html: `cart.itmes` is undefined");
    out.expect_stderr_contains("template reminder.de.subject: `customer.frist_name` is undefined");
    out.expect_stderr_contains("did you mean `first_name`?");
    out.expect_stderr_contains("follow-up.txt: syntax error");
    out.expect_stderr_contains("4 template errors");

    let run = t.recart(&["run", "--now", NOW]);
    run.expect_status(2);
    let errors = run.stderr.matches("recart: template").count();
    assert_eq!(errors, 1, "a run reports the first: {}", run.stderr);
    assert!(t.files_in("outbox", ".eml").is_empty(), "a mail was sent");
    assert!(t.sends_if_any().is_empty());
}

#[test]
fn cart_items_is_the_list_of_items() {
    let t = shop(&Config::new(Transport::File)).file(
        "templates/reminder.txt",
        "{% for item in cart.items %}[{{ item.name }}]{% endfor %} {{ cart.items == items }}\n{{ links.unsubscribe }}\n",
    );
    t.recart(&["check"]).expect_success();
    t.recart(&["run", "--now", NOW]).expect_success();
    let text = Mail::parse(&t.read(mail_file("outbox", "C-1001", "1h", "eml"))).text();
    assert!(
        text.contains("[Merino Wool Beanie][Insulated Travel Mug] True"),
        "{text}"
    );
}

/// Ada's mail lists her other open cart, with its own recovery link, and
/// nothing of her ordered one or another customer's.
#[test]
fn other_carts_shows_a_customers_other_open_carts() {
    let csv = format!(
        "{CARTS_CSV}{}",
        [
            "C-0990,Ada.Lovelace@example.com,Ada,en-GB,EUR,open,true,2026-11-19T08:00:00Z,2026-11-19T09:00:00Z,LMP-01,Reading Lamp,Home,1,40.00,,",
            "C-0991,ada.lovelace@example.com,Ada,en-GB,EUR,open,true,2026-11-20T08:00:00Z,2026-11-20T09:00:00Z,CUP-01,Cup,Kitchen,2,5.00,,",
            "C-0980,ada.lovelace@example.com,Ada,en-GB,EUR,ordered,true,2026-11-20T08:00:00Z,2026-11-20T09:00:00Z,OLD-01,Ordered Thing,Home,1,1.00,,",
            // Idle longer than max_age (7d): not shown.
            "C-0970,ada.lovelace@example.com,Ada,en-GB,EUR,open,true,2026-11-01T08:00:00Z,2026-11-01T09:00:00Z,OLD-02,Forgotten Thing,Home,1,1.00,,",
        ]
        .map(|row| format!("{row}\n"))
        .concat()
    );
    let t = shop(&Config::new(Transport::File))
        .file("carts.csv", csv)
        .file(
            "templates/reminder.txt",
            format!(
                "{REMINDER_TXT}{{% for other in other_carts %}}OTHER {{{{ other.id }}}} {{{{ other.total }}}} {{{{ other.items[0].name }}}} <{{{{ other.recover }}}}>\n{{% endfor %}}"
            ),
        );
    t.recart(&["check"]).expect_success();
    t.recart(&["run", "--now", NOW]).expect_success();
    let text = Mail::parse(&t.read(mail_file("outbox", "C-1001", "1h", "eml"))).text();
    let others: Vec<&str> = text.lines().filter(|l| l.starts_with("OTHER")).collect();
    assert_eq!(others.len(), 2, "{text}");
    // Newest first.
    assert!(others[0].starts_with("OTHER C-0991 €10.00 Cup <"), "{text}");
    assert!(
        others[1].starts_with("OTHER C-0990 €40.00 Reading Lamp <"),
        "{text}"
    );
    let token = others[1]
        .split("/cart/recover/")
        .nth(1)
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap();
    let verified = t.recart(&["token", "verify", token, "--now", NOW]);
    verified.expect_success();
    verified.expect_stdout_contains("cart_id: C-0990");
    verified.expect_stdout_contains(&format!("email: {ADA}"));

    // Grace has no other cart: her mail lists none.
    let text = Mail::parse(&t.read(mail_file("outbox", "C-1002", "1h", "eml"))).text();
    assert!(!text.contains("OTHER"), "{text}");
}

/// The shop's config with `[links]` recover and unsubscribe as given.
fn with_links(t: Test, recover: &str, unsubscribe: &str) -> Test {
    let toml = t
        .read("recart.toml")
        .replace("https://shop.example/cart/recover/{token}", recover)
        .replace("https://shop.example/unsubscribe/{token}", unsubscribe);
    t.write("recart.toml", toml);
    t
}

#[test]
fn cart_id_in_a_link_is_one_percent_encoded_path_segment() {
    let mut config = Config::new(Transport::File);
    config.secret = format!(
        "secret_env = \"{SECRET_ENV}\"\nunsubscribe_mailto = \"mailto:unsub@shop.example?subject={{cart_id}}%20{{token}}\""
    );
    let t = shop(&config).file(
        "carts.csv",
        carts_csv(&[
            "K/1 ü?x,ada.lovelace@example.com,Ada,en-GB,EUR,open,true,2026-11-21T08:55:00Z,2026-11-21T09:30:00Z,MWB-01,Merino Wool Beanie,Accessories,1,29.00,,",
        ]),
    );
    let t = with_links(
        t,
        "https://shop.example/cart/{cart_id}/recover/{token}",
        "https://shop.example/unsubscribe/{token}?cart={cart_id}",
    );
    t.recart(&["check"]).expect_success();
    t.recart(&["run", "--now", NOW]).expect_success();
    let mails = t.files_in("outbox", ".eml");
    assert_eq!(mails.len(), 1);
    let mail = Mail::parse(&std::fs::read_to_string(&mails[0]).unwrap());
    let text = mail.text();
    assert!(
        text.contains("https://shop.example/cart/K%2F1%20%C3%BC%3Fx/recover/"),
        "{text}"
    );
    assert!(text.contains("?cart=K%2F1%20%C3%BC%3Fx"), "{text}");
    let header = mail.header("List-Unsubscribe").unwrap();
    assert!(
        header.contains("mailto:unsub@shop.example?subject=K%2F1%20%C3%BC%3Fx%20"),
        "{header}"
    );
}

#[test]
fn an_unknown_placeholder_in_a_link_is_refused_naming_key_and_placeholder() {
    let t = with_links(
        shop(&Config::new(Transport::File)),
        "https://shop.example/cart/{cartid}/recover/{token}",
        "https://shop.example/unsubscribe/{token}",
    );
    for args in [&["check"][..], &["run", "--now", NOW]] {
        let out = t.recart(args);
        out.expect_status(2);
        out.expect_stderr_contains("links.recover");
        out.expect_stderr_contains("unknown placeholder {cartid}; did you mean {cart_id}?");
    }
    assert!(t.files_in("outbox", ".eml").is_empty());
}
