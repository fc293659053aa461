//! Hand-written inputs shared by the tests: a small shop's cart export,
//! templates, and a config builder.

use std::fmt::Write as _;

use crate::harness::Test;

/// The reference "now" of every test: carts below are timed against it.
pub const NOW: &str = "2026-11-21T12:00:00Z";
/// Two days later: the 24h step is due for carts that got the 1h step, the
/// 72h step is not yet.
pub const LATER: &str = "2026-11-23T12:00:00Z";

pub const SECRET_ENV: &str = "RECART_TEST_SECRET";
pub const SECRET: &str = "k3y-for-signing-recovery-links-0f9a8b7c";

pub const NATIVE_HEADER: &str = "cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url";

/// Five carts, seven rows. At `NOW`:
/// - C-1001 (Ada, consent, idle 2h30): due for 1h; second row leaves the
///   cart-level fields blank.
/// - C-1002 (Grace, consent "yes", times with an offset, idle 2h48): due
///   for 1h; cart-level fields repeated on every row.
/// - C-1003 (Alan, no consent): due, but must never be mailed.
/// - C-1004 (Katherine, idle 20 minutes): not due.
/// - C-1005 (Hedy, idle 11 days): older than `max_age`.
pub const CARTS_CSV: &str = "\
cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url
C-1001,ada.lovelace@example.com,Ada,en-GB,EUR,open,true,2026-11-21T08:55:00Z,2026-11-21T09:30:00Z,MWB-01,Merino Wool Beanie,Accessories,1,29.00,https://cdn.shop.example/img/mwb-01.jpg,https://shop.example/products/merino-wool-beanie
C-1001,,,,,,,,,TRV-MUG-350,Insulated Travel Mug,Kitchen,2,14.50,https://cdn.shop.example/img/trv-mug-350.jpg,https://shop.example/products/insulated-travel-mug
C-1002,grace.hopper@example.com,Grace,en-US,USD,open,yes,2026-11-21 03:40:00 -0500,2026-11-21 04:12:00 -0500,APR-LIN-NAT,Linen Apron,Kitchen,1,48.00,https://cdn.shop.example/img/apr-lin-nat.jpg,https://shop.example/products/linen-apron
C-1002,grace.hopper@example.com,Grace,en-US,USD,open,yes,2026-11-21 03:40:00 -0500,2026-11-21 04:12:00 -0500,CUP-ESP-4,Espresso Cup Set,Kitchen,1,32.00,https://cdn.shop.example/img/cup-esp-4.jpg,https://shop.example/products/espresso-cup-set
C-1003,alan.turing@example.org,Alan,en-GB,GBP,open,false,2026-11-21T07:00:00Z,2026-11-21T08:05:00Z,CHS-WAL,Walnut Chess Set,Games,1,89.90,https://cdn.shop.example/img/chs-wal.jpg,https://shop.example/products/walnut-chess-set
C-1004,katherine.johnson@example.net,Katherine,en-US,USD,open,true,2026-11-21T11:20:00Z,2026-11-21T11:40:00Z,NB-DOT-A5,Dotted Notebook A5,Stationery,3,9.50,https://cdn.shop.example/img/nb-dot-a5.jpg,https://shop.example/products/dotted-notebook-a5
C-1005,hedy.lamarr@example.com,Hedy,de-AT,EUR,open,true,2026-11-10T14:00:00Z,2026-11-10T15:00:00Z,LMP-BRS,Brass Desk Lamp,Home,1,79.00,https://cdn.shop.example/img/lmp-brs.jpg,https://shop.example/products/brass-desk-lamp
";

pub const ADA: &str = "ada.lovelace@example.com";
pub const GRACE: &str = "grace.hopper@example.com";
pub const ALAN: &str = "alan.turing@example.org";
pub const KATHERINE: &str = "katherine.johnson@example.net";
pub const HEDY: &str = "hedy.lamarr@example.com";

pub const REMINDER_SUBJECT: &str = "Still thinking it over, {{ customer.first_name }}?\n";
pub const REMINDER_TXT: &str = "\
Hi {{ customer.first_name }},

you left {{ cart.item_count }} item(s) in your cart at {{ shop.name }}:
{% for item in items %}
- {{ item.quantity }} x {{ item.name }} ({{ item.sku }}, {{ item.category }}): {{ item.line_total }} {{ cart.currency }}
{%- endfor %}

Total: {{ cart.total }} {{ cart.currency }}

Pick up where you left off: {{ links.recover }}

--
Cart {{ cart.id }} ({{ cart.locale }}), reminder {{ step.name }}, sent to {{ customer.email }}.
Unsubscribe: {{ links.unsubscribe }}
";
pub const REMINDER_HTML: &str = r#"<!doctype html>
<html lang="{{ cart.locale }}">
<body>
<p>Hi {{ customer.first_name }},</p>
<p>you left these in your cart:</p>
<table>
{% for item in items %}
<tr>
<td><img src="{{ item.image_url }}" alt="" width="64"></td>
<td><a href="{{ item.product_url }}">{{ item.name }}</a><br><small>{{ item.category }}</small></td>
<td>{{ item.quantity }} &times; {{ item.unit_price }}</td>
<td>{{ item.line_total }} {{ cart.currency }}</td>
</tr>
{% endfor %}
</table>
<p><strong>Total: {{ cart.total }} {{ cart.currency }}</strong></p>
<p><a href="{{ links.recover }}">Return to your cart</a></p>
<p><small><a href="{{ links.unsubscribe }}">Unsubscribe</a></small></p>
</body>
</html>
"#;

pub const FOLLOW_UP_SUBJECT: &str = "Your cart is waiting, {{ customer.first_name }}\n";
pub const FOLLOW_UP_TXT: &str = "\
Hi {{ customer.first_name }},

your cart still holds:
{% for item in items %}
- {{ item.quantity }} x {{ item.name }}
{%- endfor %}

{{ links.recover }}

Unsubscribe: {{ links.unsubscribe }}
";
pub const FOLLOW_UP_HTML: &str = r#"<!doctype html>
<html lang="{{ cart.locale }}">
<body>
<p>Hi {{ customer.first_name }}, your cart still holds:</p>
<ul>
{% for item in items %}<li>{{ item.quantity }} &times; {{ item.name }}</li>
{% endfor %}
</ul>
<p><a href="{{ links.recover }}">Return to your cart</a> &middot; <a href="{{ links.unsubscribe }}">Unsubscribe</a></p>
</body>
</html>
"#;

pub enum Transport {
    /// `kind = "file"`, `dir = "outbox"`.
    File,
    /// `kind = "smtp"` to 127.0.0.1:port, `tls = "none"`.
    Smtp(u16),
}

/// A recart.toml for the tests; `to_toml` renders it.
pub struct Config {
    pub transport: Transport,
    /// `(path, format)` of each `[[sources]]`.
    pub sources: Vec<(String, String)>,
    pub require_consent: bool,
    pub min_value: String,
    pub max_age: String,
    pub cooldown: String,
    /// `(name, after, template)`.
    pub steps: Vec<(String, String, String)>,
    /// The `[links]` secret lines.
    pub secret: String,
    /// Appended verbatim.
    pub extra: String,
}

impl Config {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            sources: vec![("carts.csv".into(), "native".into())],
            require_consent: true,
            min_value: "0.00".into(),
            max_age: "7d".into(),
            cooldown: "20h".into(),
            steps: vec![
                ("1h".into(), "1h".into(), "reminder".into()),
                ("24h".into(), "24h".into(), "follow-up".into()),
                ("72h".into(), "72h".into(), "follow-up".into()),
            ],
            secret: format!("secret_env = \"{SECRET_ENV}\""),
            extra: String::new(),
        }
    }

    pub fn to_toml(&self) -> String {
        let mut toml = String::from("[store]\npath = \"recart.db\"\n\n");
        for (path, format) in &self.sources {
            write!(
                toml,
                "[[sources]]\npath = \"{path}\"\nformat = \"{format}\"\n\n"
            )
            .unwrap();
        }
        match self.transport {
            Transport::File => toml += "[transport]\nkind = \"file\"\ndir = \"outbox\"\n",
            Transport::Smtp(port) => write!(
                toml,
                "[transport]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n"
            )
            .unwrap(),
        }
        toml += "from = \"Shop <hello@shop.example>\"\n\n";
        toml += "[templates]\ndir = \"templates\"\n\n";
        toml += "[shop]\nname = \"Northwind Test Shop\"\n\n";
        write!(
            toml,
            "[links]\nrecover = \"https://shop.example/cart/recover/{{token}}\"\nunsubscribe = \"https://shop.example/unsubscribe/{{token}}\"\n{}\n\n",
            self.secret
        )
        .unwrap();
        write!(
            toml,
            "[policy]\nrequire_consent = {}\nmin_value = \"{}\"\nmax_age = \"{}\"\ncooldown = \"{}\"\n\n",
            self.require_consent, self.min_value, self.max_age, self.cooldown
        )
        .unwrap();
        for (name, after, template) in &self.steps {
            write!(
                toml,
                "[[steps]]\nname = \"{name}\"\nafter = \"{after}\"\ntemplate = \"{template}\"\n\n"
            )
            .unwrap();
        }
        toml += &self.extra;
        toml
    }
}

/// A tempdir holding `recart.toml` (from `config`), `carts.csv` and the two
/// template sets, with the link secret in the environment.
pub fn shop(config: &Config) -> Test {
    with_templates(Test::new())
        .file("recart.toml", config.to_toml())
        .file("carts.csv", CARTS_CSV)
        .env(SECRET_ENV, SECRET)
}

pub fn with_templates(test: Test) -> Test {
    with_templates_in(test, "templates")
}

/// The two template sets in `dir` (relative to the tempdir).
pub fn with_templates_in(test: Test, dir: &str) -> Test {
    test.file(format!("{dir}/reminder.subject"), REMINDER_SUBJECT)
        .file(format!("{dir}/reminder.txt"), REMINDER_TXT)
        .file(format!("{dir}/reminder.html"), REMINDER_HTML)
        .file(format!("{dir}/follow-up.subject"), FOLLOW_UP_SUBJECT)
        .file(format!("{dir}/follow-up.txt"), FOLLOW_UP_TXT)
        .file(format!("{dir}/follow-up.html"), FOLLOW_UP_HTML)
}

/// A native cart CSV with `rows` after the header.
pub fn carts_csv(rows: &[&str]) -> String {
    let mut csv = String::from(NATIVE_HEADER);
    csv.push('\n');
    for row in rows {
        csv.push_str(row);
        csv.push('\n');
    }
    csv
}

/// A native carts CSV of `n` generated carts, one item each: ids
/// `F-00000`…, addresses `f00000@example.com`….
pub fn many_carts(n: usize) -> String {
    let mut csv = String::from(crate::fixtures::NATIVE_HEADER);
    csv.push('\n');
    for i in 0..n {
        writeln!(
            csv,
            "F-{i:05},f{i:05}@example.com,Cust{i},en-GB,EUR,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,SKU-{i},Thing {i},Stuff,1,12.50,https://cdn.shop.example/img/{i}.jpg,https://shop.example/products/{i}"
        )
        .unwrap();
    }
    csv
}
