//! The renderer's unit tests: escaping, strictness, locales, CSS
//! inlining and the starter templates.

use super::views::web_url;
use super::*;
use crate::model::{CartStatus, LineItem};
use crate::plan::{Channel, Filters};
use chrono::{TimeDelta, Utc};

fn cart() -> Cart {
    Cart {
        id: "C1".into(),
        email: "ann@example.com".into(),
        first_name: "Ann\r\nBcc: x@evil.example".into(),
        locale: "en".into(),
        currency: "EUR".parse().unwrap(),
        status: CartStatus::Open,
        accepts_marketing: true,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        utc_offset_seconds: None,
        timezone: String::new(),
        phone: String::new(),
        sms_consent: false,
        items: vec![LineItem {
            sku: "S1".into(),
            name: "<script>alert(1)</script> Tent".into(),
            category: "tents".into(),
            quantity: 2,
            unit_price_minor: 19900,
            image_url: String::new(),
            product_url: "https://shop.example/p/tent".into(),
        }],
    }
}

fn setup(subject: &str, html: &str, text: &str) -> (tempfile::TempDir, Step) {
    let dir = tempfile::tempdir().unwrap();
    for (part, source) in [("subject", subject), ("html", html), ("txt", text)] {
        std::fs::write(dir.path().join(format!("reminder.{part}")), source).unwrap();
    }
    (dir, one_hour_step("1h", "reminder"))
}

/// A step an hour after the cart that sends `template`, without coupon.
fn one_hour_step(name: &str, template: &str) -> Step {
    Step {
        name: name.into(),
        after: TimeDelta::hours(1),
        template: template.into(),
        variants: Vec::new(),
        require_consent: true,
        filters: Filters::default(),
        channel: Channel::default(),
        require_sms_consent: false,
        cross_channel: false,
        coupon: None,
    }
}

fn links() -> Links {
    Links {
        recover: "https://shop.example/r/T".into(),
        unsubscribe: "https://shop.example/u/T".into(),
        unsubscribe_mailto: None,
    }
}

#[test]
fn renders_items_escapes_html_and_folds_subjects() {
    let (dir, step) = setup(
        "{{ customer.first_name }}, your cart at {{ shop.name }}\n",
        "{% for item in items %}<p>{{ item.quantity }} × {{ item.name }} {{ item.line_total }}</p>{% endfor %}",
        "{% for item in items %}{{ item.quantity }} × {{ item.name }} {{ item.line_total }}\n{% endfor %}{{ links.recover }}",
    );
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
    assert_eq!(mail.subject, "Ann Bcc: x@evil.example, your cart at Shop");
    assert!(mail.html.contains("&lt;script&gt;"), "{}", mail.html);
    assert!(!mail.html.contains("<script>"));
    assert!(mail.html.contains("€398.00"));
    assert!(
        mail.text
            .contains("2 × <script>alert(1)</script> Tent €398.00")
    );
    assert!(mail.text.contains("https://shop.example/r/T"));
}

#[test]
fn the_coupon_is_there_when_the_step_has_one() {
    let (dir, step) = setup(
        "{% if coupon %}{{ coupon.code }} for you{% else %}Your cart{% endif %}",
        "{% if coupon %}<b>{{ coupon.code }}</b>{% if coupon.expires %} until {{ coupon.expires }}{% endif %}{% endif %}",
        "{% if coupon %}{{ coupon.code }}{% else %}no coupon{% endif %}",
    );
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let none = renderer.render(&cart(), &step, &links(), None).unwrap();
    assert_eq!(none.subject, "Your cart");
    assert_eq!(none.text, "no coupon");
    let coupon = Coupon {
        code: "COMEBACK-<X>".into(),
        // 23:30 UTC is the next day in Vienna.
        expires: Some("2026-11-28T23:30:00Z".parse().unwrap()),
    };
    let mut cart = cart();
    let mail = renderer
        .render(&cart, &step, &links(), Some(&coupon))
        .unwrap();
    assert_eq!(mail.subject, "COMEBACK-<X> for you");
    assert!(
        mail.html
            .contains("<b>COMEBACK-&lt;X&gt;</b> until 28 November 2026"),
        "{}",
        mail.html
    );
    cart.locale = "de-AT".into();
    cart.timezone = "Europe/Vienna".into();
    let mail = renderer
        .render(&cart, &step, &links(), Some(&coupon))
        .unwrap();
    assert!(mail.html.contains("until 29.11.2026"), "{}", mail.html);
    // A code that never expires.
    let forever = Coupon {
        code: "SAVE10".into(),
        expires: None,
    };
    let mail = renderer
        .render(&cart, &step, &links(), Some(&forever))
        .unwrap();
    assert!(mail.html.contains("<b>SAVE10</b>"), "{}", mail.html);
    assert!(!mail.html.contains("until"));
}

#[test]
fn undefined_names_and_missing_files_are_errors() {
    let (dir, step) = setup("{{ custmer.first_name }}", "x", "x");
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let error = renderer.render(&cart(), &step, &links(), None).unwrap_err();
    assert!(error.to_string().contains("reminder.subject"), "{error}");
    assert_eq!(error.exit_code(), crate::error::exit::USAGE);

    std::fs::remove_file(dir.path().join("reminder.html")).unwrap();
    let error = Renderer::load(dir.path(), &[step], "Shop").err().unwrap();
    assert!(error.to_string().contains("reminder.html"), "{error}");
}

#[test]
fn the_lazy_context_is_strict_and_looks_like_the_serialised_one() {
    for typo in [
        "{{ cart.totl }}",
        "{{ customer.nam }}",
        "{% for item in items %}{{ item.nme }}{% endfor %}",
        "{{ links.recovr }}",
        "{{ nothing }}",
    ] {
        let (dir, step) = setup(typo, "x", "x");
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let error = renderer.render(&cart(), &step, &links(), None);
        assert!(error.is_err(), "{typo} renders");
    }
    // Keys in the order the structs it replaced had, values as they were;
    // `cart.items` (added after them) last.
    let (dir, step) = setup(
        "x",
        "x",
        "{% for k, v in cart|items %}{% if k != 'items' %}{{ k }}={{ v }};{% endif %}{% endfor %}\n\
         {{ items[0]|tojson }}\n{{ customer }}\n{{ items|length }} {{ coupon is none }}\n\
         {{ cart.items == items }}",
    );
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
    let expected = [
        "id=C1;currency=EUR;total=€398.00;item_count=2;locale=en;",
        r#"{"name": "\u003cscript\u003ealert(1)\u003c/script\u003e Tent", "sku": "S1", "category": "tents", "quantity": 2, "unit_price": "€199.00", "line_total": "€398.00", "image_url": "", "product_url": "https://shop.example/p/tent"}"#,
        r"{'email': 'ann@example.com', 'first_name': 'Ann\r\nBcc: x@evil.example'}",
        "1 True",
        "True",
    ];
    assert_eq!(mail.text, expected.join("\n"));
}

#[test]
fn every_key_a_view_lists_has_a_value_and_no_other_name_does() {
    let (dir, step) = setup("x", "x", "x");
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let other = OtherCart {
        cart: Arc::new(cart()),
        recover: "https://shop.example/r/O".into(),
    };
    let context = renderer.context(&Arc::new(cart()), "1h", &links(), None, &[other]);
    let item = context
        .get_attr("items")
        .unwrap()
        .get_item_by_index(0)
        .unwrap();
    let customer = context.get_attr("customer").unwrap();
    let cart = context.get_attr("cart").unwrap();
    let other = context
        .get_attr("other_carts")
        .unwrap()
        .get_item_by_index(0)
        .unwrap();
    for (view, len) in [
        (&context, 8),
        (&customer, 2),
        (&cart, 6),
        (&item, 8),
        (&other, 7),
    ] {
        let keys: Vec<Value> = view.try_iter().unwrap().collect();
        assert_eq!((keys.len(), view.len()), (len, Some(len)), "{view:?}");
        for key in &keys {
            assert!(!view.get_item(key).unwrap().is_undefined(), "{key}");
        }
        assert!(view.get_attr("nope").unwrap().is_undefined());
    }
}

#[test]
fn other_carts_render_and_are_wanted_only_by_templates_that_name_them() {
    // The starter templates do not: a run loads no other carts for them.
    assert!(!starter().uses_other_carts());
    let (dir, step) = setup(
        "x",
        "x",
        "{% for other in other_carts %}{{ other.id }} {{ other.total }} {{ other.items|length }} {{ other.recover }};{% endfor %}",
    );
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    assert!(renderer.uses_other_carts());
    let mut older = cart();
    older.id = "C0".into();
    let other = OtherCart {
        cart: Arc::new(older),
        recover: "https://shop.example/r/O".into(),
    };
    let mail = renderer
        .render_shared(&Arc::new(cart()), &step, &links(), None, &[other])
        .unwrap();
    assert_eq!(mail.text, "C0 €398.00 1 https://shop.example/r/O;");
    let none = renderer.render(&cart(), &step, &links(), None).unwrap();
    assert_eq!(none.text, "");
}

#[test]
fn every_error_of_every_set_is_kept_and_the_sets_that_load_are_there() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("reminder.subject", "{{ x"),
            ("reminder.html", "{% if %}"),
            ("reminder.de.subject", "ok"),
            ("reminder.de.html", "ok"),
            ("reminder.fr.html", "ok"),
        ],
    );
    let step = one_hour_step("1h", "reminder");
    let (renderer, errors) =
        Renderer::load_all(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("reminder.subject: syntax error"),
        "{errors:#?}"
    );
    assert!(
        errors[1].contains("reminder.html: syntax error"),
        "{errors:#?}"
    );
    assert!(
        errors[2].contains("reminder.fr.subject: missing"),
        "{errors:#?}"
    );
    assert!(renderer.has_set("reminder", "de"));
    assert!(!renderer.has_set("reminder", "") && !renderer.has_set("reminder", "fr"));
    // `load` gives the first.
    let first = Renderer::load(dir.path(), &[step], "Shop").err().unwrap();
    assert_eq!(first.to_string(), errors[0]);
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, source) in files {
        std::fs::write(dir.join(name), source).unwrap();
    }
}

#[test]
fn text_is_derived_from_the_html_when_there_is_no_txt() {
    let (dir, step) = setup("Hi", "", "");
    std::fs::remove_file(dir.path().join("reminder.txt")).unwrap();
    write(
        dir.path(),
        &[(
            "reminder.html",
            "<html><head><style>p { color: red; }</style></head><body>\
             <h1>Your cart</h1>{% for item in items %}<p>{{ item.name }}: {{ item.line_total }}</p>{% endfor %}\
             <p><a href=\"{{ links.recover }}\">Back to your cart</a></p></body></html>",
        )],
    );
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
    assert!(mail.text.contains("Your cart"), "{}", mail.text);
    assert!(
        mail.text
            .contains("<script>alert(1)</script> Tent: €398.00"),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("Back to your cart"), "{}", mail.text);
    assert!(
        mail.text.contains("https://shop.example/r/T"),
        "{}",
        mail.text
    );
    assert!(
        !mail.text.contains("color"),
        "CSS leaked into the text: {}",
        mail.text
    );
    assert!(!mail.text.contains("&lt;"), "{}", mail.text);
}

#[test]
fn css_is_inlined_and_media_queries_stay() {
    let (dir, step) = setup(
        "Hi",
        "<html><head><style>.box { color: #123456; padding: 4px; } \
         @media only screen and (max-width: 620px) { .box { padding: 0 !important; } }</style></head>\
         <body><td class=\"box\">x</td><p class=\"box\" style=\"margin: 0\">y</p></body></html>",
        "text",
    );
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let html = renderer
        .render(&cart(), &step, &links(), None)
        .unwrap()
        .html;
    assert!(html.contains("color: #123456"), "{html}");
    assert!(html.contains("<p class=\"box\" style=\""), "{html}");
    assert!(
        html.contains("margin: 0"),
        "the template's own style is kept: {html}"
    );
    assert!(html.contains("@media"), "{html}");
    assert!(
        !html.contains(".box { color"),
        "inlined rules leave the <style>: {html}"
    );
}

#[test]
fn the_preheader_is_a_hidden_escaped_first_line() {
    let (dir, step) = setup(
        "Hi",
        "<html><head><title>t</title></head><body class=\"b\"><p>Body</p></body></html>",
        "text",
    );
    write(
        dir.path(),
        &[("reminder.preheader", "Saved for you, {{ items[0].name }}\n")],
    );
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
    let body = mail.html.find("<body").unwrap();
    let hidden = mail.html.find("<div style=\"display:none").unwrap();
    let first = mail.html.find("<p>Body").unwrap();
    assert!(body < hidden && hidden < first, "{}", mail.html);
    assert!(
        mail.html
            .contains("Saved for you, &lt;script&gt;alert(1)&lt;"),
        "{}",
        mail.html
    );
    assert!(!mail.text.contains("Saved for you"));
}

#[test]
fn locales_fall_back_from_region_to_language_to_default() {
    let (dir, step) = setup("Your cart {{ cart.total }}", "<p>en</p>", "en");
    write(
        dir.path(),
        &[
            ("reminder.de.subject", "Ihr Warenkorb {{ cart.total }}"),
            ("reminder.de.html", "<p>de</p>"),
            ("reminder.de.txt", "de"),
            ("reminder.de_CH.subject", "Ihr Warenkorb (CH)"),
            ("reminder.de_CH.html", "<p>de-ch</p>"),
            ("reminder.html.bak", "ignored"),
        ],
    );
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    assert_eq!(renderer.locales("reminder"), vec!["de", "de-ch"]);
    let mut cart = cart();
    for (locale, subject, text, chosen) in [
        ("de-AT", "Ihr Warenkorb 398,00\u{a0}€", "de", "de"),
        ("de", "Ihr Warenkorb 398,00\u{a0}€", "de", "de"),
        ("DE_at", "Ihr Warenkorb 398,00\u{a0}€", "de", "de"),
        ("de-CH", "Ihr Warenkorb (CH)", "de-ch", "de-ch"),
        ("fr-FR", "Your cart 398,00\u{a0}€", "en", ""),
        ("en-US", "Your cart €398.00", "en", ""),
        ("", "Your cart €398.00", "en", ""),
    ] {
        cart.locale = locale.into();
        let mail = renderer.render(&cart, &step, &links(), None).unwrap();
        assert_eq!(mail.subject, subject, "{locale}");
        assert!(mail.text.contains(text), "{locale}: {}", mail.text);
        assert_eq!(mail.locale, chosen, "{locale}");
    }
}

#[test]
fn only_web_urls_reach_links() {
    assert_eq!(web_url("https://shop.example/p"), "https://shop.example/p");
    assert_eq!(web_url(" HTTP://shop.example/p "), "HTTP://shop.example/p");
    for bad in [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "//evil",
        "http:/x",
        "",
    ] {
        assert_eq!(web_url(bad), "", "{bad}");
    }
}

#[test]
fn a_locale_set_needs_its_subject_and_html() {
    let (dir, step) = setup("s", "h", "t");
    write(dir.path(), &[("reminder.de.html", "<p>de</p>")]);
    let error = Renderer::load(dir.path(), &[step], "Shop").err().unwrap();
    assert!(error.to_string().contains("reminder.de.subject"), "{error}");
}

fn starter() -> Renderer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let steps: Vec<Step> = ["reminder", "reminder-2", "reminder-3"]
        .into_iter()
        .map(starter_step)
        .collect();
    Renderer::load(&dir, &steps, "Shop & Co").unwrap()
}

fn starter_step(template: &str) -> Step {
    one_hour_step(template, template)
}

/// The element names and attribute names of serialized HTML, as a
/// browser's tokenizer would find them (quoted values skipped).
fn markup(html: &str) -> (Vec<String>, Vec<String>) {
    let (mut tags, mut attributes) = (Vec::new(), Vec::new());
    let mut chars = html.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '<' {
            continue;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '!' || c == '/' {
                name.push(c.to_ascii_lowercase());
                chars.next();
            } else {
                break;
            }
        }
        tags.push(name);
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                '>' => break,
                '"' | '\'' => {
                    for d in chars.by_ref() {
                        if d == c {
                            break;
                        }
                    }
                }
                '=' => attributes.push(std::mem::take(&mut word).to_ascii_lowercase()),
                c if c.is_whitespace() => word.clear(),
                c => word.push(c),
            }
        }
    }
    (tags, attributes)
}

#[test]
fn starter_templates_escape_hostile_cart_fields() {
    let renderer = starter();
    let mut cart = cart();
    cart.first_name = "\"><img src=x onerror=alert(1)>".into();
    cart.items[0].name = "\"><img src=x onerror=alert(2)><script>alert(3)</script>".into();
    cart.items[0].image_url = "https://x/\" onerror=\"alert(5)".into();
    cart.items[0].product_url = "javascript:alert(6)".into();
    for template in ["reminder", "reminder-2", "reminder-3"] {
        let mail = renderer
            .render(&cart, &starter_step(template), &links(), None)
            .unwrap();
        let (tags, attributes) = markup(&mail.html);
        assert!(
            !tags.contains(&"script".to_string()),
            "{template}: {tags:?}"
        );
        assert!(!attributes.contains(&"onerror".to_string()), "{template}");
        assert_eq!(
            tags.iter().filter(|tag| *tag == "img").count(),
            1,
            "{template}: only the product image is an <img>"
        );
        assert!(
            mail.html
                .contains("src=\"https://x/&quot; onerror=&quot;alert(5)\""),
            "{template}"
        );
        assert!(mail.html.contains("&lt;script&gt;alert(3)"), "{template}");
        assert!(!mail.html.contains("javascript:"), "{template}");
        assert!(mail.html.contains("Shop &amp; Co"), "{template}");
        assert!(!mail.subject.contains('\n'));
    }
}

#[test]
fn starter_templates_are_inlined_ahead_and_give_the_mails_inlining_each_would() {
    let renderer = starter();
    let mut carts = vec![cart()];
    let mut hostile = cart();
    hostile.first_name = "\"><b class=\"button\">x</b>".into();
    hostile.items[0].name = "<td class=\"price\">&amp; ' /".into();
    carts.push(hostile);
    let mut empty = cart();
    empty.items.clear();
    empty.first_name.clear();
    carts.push(empty);
    let mut many = cart();
    many.items = (0..5).map(|_| cart().items[0].clone()).collect();
    many.items[1].image_url = "https://shop.example/i.jpg".into();
    many.locale = "de-AT".into();
    carts.push(many);
    let coupon = sample_coupon();
    for (stem, sets) in &renderer.sets {
        for (locale, set) in sets {
            assert!(set.inlined, "{stem} {locale:?} is inlined ahead");
            for cart in &carts {
                for coupon in [None, Some(&coupon)] {
                    let cart = Arc::new(cart.clone());
                    let context = renderer.context(&cart, stem, &links(), coupon, &[]);
                    let ahead = renderer.render_html(stem, locale, *set, &context, true);
                    let each = renderer.render_html(stem, locale, *set, &context, false);
                    let (ahead, each) = (ahead.unwrap(), each.unwrap());
                    assert!(
                        css::same_document(&ahead, &each),
                        "{stem} {locale:?}:\n{ahead}\n---\n{each}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_template_that_styles_by_position_is_inlined_per_mail() {
    let (dir, step) = setup(
        "Hi",
        "<html><head><style>tr:first-child td { color: red; }</style></head><body><table>{% for item in items %}<tr><td>{{ item.name }}</td></tr>{% endfor %}</table></body></html>",
        "Hi",
    );
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    assert!(!renderer.sets["reminder"][""].inlined);
    let mut cart = cart();
    cart.items.push(cart.items[0].clone());
    let mail = renderer.render(&cart, &step, &links(), None).unwrap();
    assert_eq!(mail.html.matches("color: red").count(), 1, "{}", mail.html);
}

#[test]
fn starter_templates_render_empty_carts_without_a_table() {
    let renderer = starter();
    let mut cart = cart();
    cart.items.clear();
    let coupon = sample_coupon();
    for (template, coupon) in ["reminder", "reminder-2", "reminder-3"]
        .into_iter()
        .flat_map(|template| [(template, None), (template, Some(&coupon))])
    {
        let mail = renderer
            .render(&cart, &starter_step(template), &links(), coupon)
            .unwrap();
        assert!(!mail.html.contains("class=\"items\""), "{template}");
        assert!(!mail.html.contains("Total ("), "{template}");
        assert!(!mail.text.contains("Total ("), "{template}");
        assert!(mail.html.contains("https://shop.example/r/T"), "{template}");
    }
}

fn sample_coupon() -> Coupon {
    Coupon {
        code: "COMEBACK-7KQ2M9XD4F".into(),
        expires: Some("2026-11-28T12:00:00Z".parse().unwrap()),
    }
}

#[test]
fn the_last_starter_reminder_shows_its_coupon() {
    let renderer = starter();
    let coupon = sample_coupon();
    let step = starter_step("reminder-3");
    let mail = renderer
        .render(&cart(), &step, &links(), Some(&coupon))
        .unwrap();
    for part in [&mail.html, &mail.text] {
        assert!(part.contains("COMEBACK-7KQ2M9XD4F"), "{part}");
        assert!(part.contains("Valid until 28 November 2026."), "{part}");
    }
    assert!(mail.html.contains("with a code for your order"));
    // Without a coupon: no trace of one.
    let mail = renderer.render(&cart(), &step, &links(), None).unwrap();
    for part in [&mail.html, &mail.text] {
        assert!(!part.contains("code at checkout"), "{part}");
        assert!(!part.contains("Valid until"), "{part}");
    }
    // A code without expiry: no date line.
    let forever = Coupon {
        expires: None,
        ..coupon
    };
    let mail = renderer
        .render(&cart(), &step, &links(), Some(&forever))
        .unwrap();
    assert!(mail.text.contains("COMEBACK-7KQ2M9XD4F"));
    assert!(!mail.text.contains("Valid until"));
}

/// A cart of `count` items, with links and images, as a big real one.
fn cart_of(count: usize) -> Cart {
    let mut cart = cart();
    cart.first_name = "Ann".into();
    cart.items = (0..count)
        .map(|at| LineItem {
            sku: format!("SKU-{at}"),
            name: format!("Product number {at}"),
            category: "gear".into(),
            quantity: 1 + u32::try_from(at % 3).unwrap(),
            unit_price_minor: 1000 + i64::try_from(at).unwrap(),
            image_url: format!("https://cdn.shop.example/img/{at}.jpg"),
            product_url: format!("https://shop.example/p/{at}"),
        })
        .collect();
    cart
}

/// The fuel each part of each starter set uses for a 500-item cart: the
/// measure `STARTER_FUEL_500_ITEMS` (and so `FUEL`) is set from.
#[test]
fn the_fuel_limit_leaves_the_starter_templates_a_hundredfold_headroom() {
    let mut renderer = starter();
    // Measured without the limit it checks.
    renderer.env.set_fuel(Some(u64::MAX >> 8));
    let cart = Arc::new(cart_of(500));
    let mut most = 0;
    for template in ["reminder", "reminder-2", "reminder-3"] {
        let coupon = sample_coupon();
        let context = renderer.context(&cart, template, &links(), Some(&coupon), &[]);
        for part in PARTS.iter().chain([&INLINED_HTML]) {
            let name = template_name(template, "", part);
            let used = renderer
                .env
                .get_template(&name)
                .unwrap_or_else(|_| panic!("{name}"))
                .render_captured_to(&context, std::io::sink())
                .unwrap()
                .state()
                .fuel_levels()
                .unwrap()
                .0;
            most = most.max(used);
        }
    }
    assert!(most <= STARTER_FUEL_500_ITEMS, "{most}");
    assert!(
        STARTER_FUEL_500_ITEMS <= most + most / 10,
        "{most}: lower the measure"
    );
    assert_eq!(FUEL, 100 * STARTER_FUEL_500_ITEMS);
}

/// A 500-item cart's mail is within the output bound with room to spare
/// (about half of it, the HTML with its CSS inlined); the bounds hold.
#[test]
fn a_500_item_cart_renders_within_the_bounds() {
    let renderer = starter();
    let cart = cart_of(500);
    for template in ["reminder", "reminder-2", "reminder-3"] {
        let step = starter_step(template);
        let mail = renderer
            .render(&cart, &step, &links(), Some(&sample_coupon()))
            .unwrap();
        assert!(
            mail.html.len() < MAX_PART_BYTES * 6 / 10,
            "{}",
            mail.html.len()
        );
        assert!(mail.html.contains("Product number 499"));
        assert!(mail.text.contains("Product number 499"));
    }
}

/// Output past `MAX_PART_BYTES` or work past `FUEL` fails that render
/// with `TemplateBound`, naming the part and the bound; other errors stay
/// template errors.
#[test]
fn a_runaway_template_fails_its_mail_at_a_bound() {
    let cases = [
        (
            "reminder.html",
            r#"<p>{{ "x" * 100000000 }}</p>"#,
            "output over the limit of 1 MiB per part",
        ),
        (
            "reminder.txt",
            "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
            "template instructions per part",
        ),
        (
            "reminder.html",
            "{% for a in range(50000) %}<p>{{ links.recover }} {{ a }}</p>{% endfor %}",
            "output over the limit of 1 MiB per part",
        ),
        (
            "reminder.txt",
            "{% for a in range(100000) %}{{ links.recover }} {{ a }}\n{% endfor %}",
            "output over the limit of 1 MiB per part",
        ),
        (
            "reminder.subject",
            r#"{{ "Hi " * 2000000 }}"#,
            "output over the limit of 1 MiB per part",
        ),
    ];
    for (file, source, bound) in cases {
        let (dir, step) = setup("Your cart", "<p>Hi</p>", "Hi");
        write(dir.path(), &[(file, source)]);
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let started = std::time::Instant::now();
        let error = renderer.render(&cart(), &step, &links(), None).unwrap_err();
        // Well under a second in a release build; minutes without bounds.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{file}: {:?}",
            started.elapsed()
        );
        assert!(
            matches!(error, Error::TemplateBound { .. }),
            "{file}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(file), "{message}");
        assert!(message.contains(bound), "{message}");
    }
    // Within the bounds, a template error is what it was.
    let (dir, step) = setup("Your cart", "<p>{{ nope }}</p>", "Hi");
    let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
    let error = renderer.render(&cart(), &step, &links(), None).unwrap_err();
    assert!(matches!(error, Error::Template { .. }), "{error:?}");
}
