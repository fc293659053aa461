//! A product catalog filling what carts leave out, and a webhook step
//! after the e-mail: signed JSON to a real HTTP server on loopback.

use std::{fmt::Write as _, time::Duration};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    fixtures::{Config, NOW, Transport, shop},
    harness::{Test, for_cart, mail_file},
    http_server::{HttpServer, Request},
    mime::Mail,
};

const WEBHOOK_KEY_ENV: &str = "RECART_TEST_WEBHOOK_KEY";
const WEBHOOK_KEY: &str = "webhook-signing-key-for-tests-1f2e3d";

/// Two carts of people who gave SMS consent (one did not), idle 2h at NOW.
const CARTS: &str = "\
cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url,phone,sms_consent
W-1,nina.simone@example.com,Nina,en-US,USD,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,VNL-01,Vinyl Record,Music,1,30.00,,,+15550100,yes
W-2,miles.davis@example.com,Miles,en-US,USD,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,TRP-01,Trumpet Mute,Music,1,45.00,,,+15550101,yes
W-3,ella.fitzgerald@example.com,Ella,en-US,USD,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,MIC-01,Ribbon Mic,Audio,1,120.00,,,,no
";

fn webhook_step(name: &str, after: &str, server: &HttpServer, extra: &str) -> String {
    format!(
        "[[steps]]\nname = \"{name}\"\nafter = \"{after}\"\nchannel = \"webhook\"\nurl = \"{}\"\n\
         headers = {{ Authorization = \"Bearer sms-provider-token\" }}\nsecret_env = \"{WEBHOOK_KEY_ENV}\"\n\
         require = \"sms_consent\"\n{extra}\n",
        server.url("/hooks/cart")
    )
}

/// 1h e-mail, then a 24h webhook.
fn email_then_webhook(server: &HttpServer) -> Test {
    let mut config = Config::new(Transport::File);
    config.steps.truncate(1);
    config.extra = webhook_step("24h", "24h", server, "");
    shop(&config)
        .file("carts.csv", CARTS)
        .env(WEBHOOK_KEY_ENV, WEBHOOK_KEY)
}

fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_KEY.as_bytes()).unwrap();
    mac.update(body);
    let hex = mac
        .finalize()
        .into_bytes()
        .iter()
        .fold(String::new(), |mut hex, b| {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
            hex
        });
    format!("sha256={hex}")
}

#[test]
fn a_webhook_step_follows_the_email_with_signed_json() {
    let server = HttpServer::start();
    let t = email_then_webhook(&server);
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(t.files_in("outbox", ".eml").len(), 3);
    assert!(server.requests().is_empty());

    let later = "2026-11-22T12:00:00Z";
    let decisions = t
        .recart(&["run", "--json", "--now", later])
        .expect_success()
        .decisions();
    assert_eq!(for_cart(&decisions, "W-1")[0].outcome, "sent");
    assert_eq!(for_cart(&decisions, "W-2")[0].outcome, "sent");
    let ella = for_cart(&decisions, "W-3");
    assert_eq!(ella[0].reason.as_deref(), Some("no-sms-consent"));

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/hooks/cart");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(
            request.headers["authorization"],
            "Bearer sms-provider-token"
        );
        assert_eq!(
            request.headers["x-recart-signature"],
            signature(&request.body)
        );
        let body = request.json();
        assert_eq!(body["step"], "24h");
        assert_eq!(body["idempotency_key"], request.headers["idempotency-key"]);
        assert!(
            body["links"]["recover"]
                .as_str()
                .unwrap()
                .starts_with("https://shop.example/cart/recover/")
        );
        assert!(
            body["links"]["unsubscribe"]
                .as_str()
                .unwrap()
                .starts_with("https://shop.example/unsubscribe/")
        );
        assert!(body["coupon"].is_null());
    }
    let nina = requests
        .iter()
        .map(Request::json)
        .find(|b| b["cart"]["id"] == "W-1")
        .unwrap();
    assert_eq!(nina["customer"]["phone"], "+15550100");
    assert_eq!(nina["customer"]["email"], "nina.simone@example.com");
    assert_eq!(nina["cart"]["total"], "30.00");
    assert_eq!(nina["cart"]["items"][0]["name"], "Vinyl Record");
    assert_eq!(t.store().sends_in("sent").len(), 5);

    // The same ledger: nothing twice.
    t.recart(&["run", "--now", "2026-11-22T13:00:00Z"])
        .expect_success();
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn webhook_answers_become_sent_failed_and_retry() {
    let server = HttpServer::start();
    let mut config = Config::new(Transport::File);
    config.steps.clear();
    config.extra = webhook_step("1h", "1h", &server, "timeout = \"1s\"");
    let t = shop(&config)
        .file("carts.csv", CARTS.replace(",,no\n", ",+15550102,yes\n"))
        .env(WEBHOOK_KEY_ENV, WEBHOOK_KEY);
    server.answer("\"W-1\"", 400, Duration::ZERO);
    server.answer("\"W-2\"", 503, Duration::ZERO);
    server.answer("\"W-3\"", 200, Duration::from_secs(3));
    let out = t.recart(&["run", "--json", "--now", NOW]);
    out.expect_status(3);
    let decisions = out.decisions();
    assert_eq!(for_cart(&decisions, "W-1")[0].outcome, "failed");
    assert_eq!(for_cart(&decisions, "W-2")[0].outcome, "retry");
    assert_eq!(
        for_cart(&decisions, "W-3")[0].outcome,
        "retry",
        "a slow answer is a timeout"
    );

    // The provider is back: the retries go out after their backoff; the
    // refused one never again.
    server.clear_answers();
    t.recart(&["run", "--now", "2026-11-21T13:00:00Z"])
        .expect_success();
    let mut sent = t.store().sends_in("sent");
    sent.sort();
    assert_eq!(
        sent,
        [
            ("W-2".to_string(), "1h".to_string()),
            ("W-3".to_string(), "1h".to_string())
        ]
    );
    assert_eq!(
        t.store().sends_in("failed"),
        [("W-1".to_string(), "1h".to_string())]
    );
}

#[test]
fn an_order_between_the_email_and_the_webhook_stops_the_webhook() {
    let server = HttpServer::start();
    let t = email_then_webhook(&server);
    t.recart(&["run", "--now", NOW]).expect_success();
    t.write(
        "orders.csv",
        "order_id,email,cart_id,total,currency,created_at\n\
         O-1,nina.simone@example.com,,30.00,USD,2026-11-21T18:00:00Z\n",
    );
    t.recart(&["import", "orders.csv"]).expect_success();
    let decisions = t
        .recart(&["run", "--json", "--now", "2026-11-22T12:00:00Z"])
        .expect_success()
        .decisions();
    assert!(
        for_cart(&decisions, "W-1").is_empty(),
        "an ordered cart is not even a candidate"
    );
    let bodies: Vec<serde_json::Value> = server.requests().iter().map(Request::json).collect();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["cart"]["id"], "W-2");
}

/// Carts that name SKUs only, a catalog that knows them.
const SKU_CARTS: &str = "\
cart_id,email,first_name,locale,currency,status,accepts_marketing,created_at,updated_at,sku,product_name,category,quantity,unit_price,image_url,product_url
K-1,ada.lovelace@example.com,Ada,en-GB,EUR,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,TENT-2P,,tents,1,0,,
K-1,,,,,,,,,MUG-EN,My Own Mug Name,kitchen,2,9.00,,
K-1,,,,,,,,,SOLD-OUT,,kitchen,1,0,,
K-1,,,,,,,,,NOT-IN-CATALOG,Mystery Item,misc,1,5.00,,
K-2,grace.hopper@example.com,Grace,en-US,EUR,open,true,2026-11-21T09:00:00Z,2026-11-21T10:00:00Z,SOLD-OUT,,kitchen,1,0,,
";

const CATALOG: &str = "\
sku,name,image_url,product_url,price,currency,in_stock
TENT-2P,Ridge Tent 2P,https://cdn.shop.example/tent.jpg,https://shop.example/p/tent,249.00,EUR,true
MUG-EN,Enamel Mug,https://cdn.shop.example/mug.jpg,https://shop.example/p/mug,12.00,EUR,true
SOLD-OUT,Sold Out Lantern,https://cdn.shop.example/lantern.jpg,https://shop.example/p/lantern,40.00,EUR,false
";

fn catalog_shop(out_of_stock: &str) -> Test {
    let mut config = Config::new(Transport::File);
    config.extra = "[[catalog]]\npath = \"products.csv\"\nformat = \"native\"\n".to_string();
    let toml = config.to_toml().replace(
        "[policy]\n",
        &format!("[policy]\nout_of_stock = \"{out_of_stock}\"\n"),
    );
    shop(&config)
        .file("recart.toml", toml)
        .file("carts.csv", SKU_CARTS)
        .file("products.csv", CATALOG)
}

#[test]
fn the_catalog_fills_missing_fields_and_drops_what_is_out_of_stock() {
    let t = catalog_shop("drop-item");
    let decisions = t
        .recart(&["run", "--json", "--now", NOW])
        .expect_success()
        .decisions();
    assert_eq!(for_cart(&decisions, "K-1")[0].outcome, "sent");
    // Grace's only item is sold out: nothing left to show.
    assert_eq!(
        for_cart(&decisions, "K-2")[0].reason.as_deref(),
        Some("out-of-stock")
    );

    let mail = Mail::parse(&t.read(mail_file("outbox", "K-1", "1h", "eml")));
    let text = mail.text();
    // Name and price from the catalog where the cart had none…
    assert!(
        text.contains("1 x Ridge Tent 2P (TENT-2P, tents): €249.00"),
        "{text}"
    );
    // …the cart's own values where it had them…
    assert!(
        text.contains("2 x My Own Mug Name (MUG-EN, kitchen): €18.00"),
        "{text}"
    );
    // …an unknown SKU as the cart has it, and nothing sold out.
    assert!(
        text.contains("1 x Mystery Item (NOT-IN-CATALOG, misc): €5.00"),
        "{text}"
    );
    assert!(
        !text.contains("Lantern") && !text.contains("SOLD-OUT"),
        "{text}"
    );
    let html = mail.part("text/html").unwrap();
    assert!(
        html.contains("cdn.shop.example/tent.jpg")
            || html.contains("cdn.shop.example&#x2f;tent.jpg")
    );

    // Re-importing the catalog changes nothing.
    let again = t.recart(&["import", "--format", "catalog", "products.csv"]);
    again.expect_success();
    again.expect_stdout_contains("3 rows read, 0 products upserted, 3 unchanged, 0 rejected");
}

#[test]
fn out_of_stock_policies_skip_or_ignore() {
    let t = catalog_shop("skip-cart");
    let decisions = t
        .recart(&["run", "--dry-run", "--json", "--now", NOW])
        .expect_success()
        .decisions();
    assert_eq!(
        for_cart(&decisions, "K-1")[0].reason.as_deref(),
        Some("out-of-stock")
    );
    assert_eq!(
        for_cart(&decisions, "K-2")[0].reason.as_deref(),
        Some("out-of-stock")
    );

    let t = catalog_shop("ignore");
    t.recart(&["run", "--now", NOW]).expect_success();
    let text = Mail::parse(&t.read(mail_file("outbox", "K-2", "1h", "eml"))).text();
    assert!(
        text.contains("Sold Out Lantern") && text.contains("€40.00"),
        "{text}"
    );
}

#[test]
fn shopify_products_export_and_bad_catalog_rows() {
    let t = catalog_shop("drop-item").file(
        "shopify-products.csv",
        "Handle,Title,Body (HTML),Vendor,Option1 Name,Option1 Value,Variant SKU,Variant Price,Variant Inventory Qty,Image Src,Variant Image\n\
         ridge-tent,Ridge Tent,<p>Light</p>,Northwind,Size,2P,TENT-2P,249.00,4,https://cdn.shop.example/tent-a.jpg,\n\
         ridge-tent,,,,,3P,TENT-3P,299.00,0,,\n\
         ridge-tent,,,,,,,,,https://cdn.shop.example/tent-b.jpg,\n",
    );
    let toml = t.read("recart.toml").replace(
        "[[catalog]]\npath = \"products.csv\"\nformat = \"native\"\n",
        "[[catalog]]\npath = \"shopify-products.csv\"\nformat = \"shopify-products\"\ncurrency = \"EUR\"\nproduct_url = \"https://shop.example/products/{handle}\"\n",
    );
    t.write("recart.toml", toml);
    t.write(
        "carts.csv",
        SKU_CARTS.replace("TENT-2P,,tents", "TENT-3P,,tents"),
    );
    let decisions = t
        .recart(&["run", "--json", "--now", NOW])
        .expect_success()
        .decisions();
    assert_eq!(for_cart(&decisions, "K-1")[0].outcome, "sent");
    let text = Mail::parse(&t.read(mail_file("outbox", "K-1", "1h", "eml"))).text();
    // The 3P variant has no stock: dropped; the mug is not in this catalog.
    assert!(!text.contains("Ridge Tent"), "{text}");
    assert!(text.contains("My Own Mug Name"), "{text}");

    t.write("bad-products.csv", "sku,name,image_url,product_url,price,currency,in_stock\nX-1,Thing,,,abc,EUR,true\nX-2,Other,,,1.00,EUR,perhaps\nX-3,Fine,,,1.00,EUR,true\n");
    let out = t.recart(&["import", "--format", "catalog", "bad-products.csv"]);
    out.expect_status(3);
    out.expect_stderr_contains("bad-products.csv:2: field price");
    out.expect_stderr_contains("bad-products.csv:3: field in_stock");
    out.expect_stdout_contains("1 products upserted");
}

#[test]
fn a_blank_unit_price_is_unknown_and_the_catalog_fills_it() {
    let t = catalog_shop("drop-item")
        .file(
            "carts.csv",
            SKU_CARTS.replace("TENT-2P,,tents,1,0,,", "TENT-2P,,tents,1,,,"),
        )
        // A native catalog's blank price is not known either.
        .file(
            "products.csv",
            format!("{CATALOG}NO-PRICE,Priceless Thing,,,,,true\n"),
        );
    let decisions = t
        .recart(&["run", "--json", "--now", NOW])
        .expect_success()
        .decisions();
    assert_eq!(for_cart(&decisions, "K-1")[0].outcome, "sent");
    let text = Mail::parse(&t.read(mail_file("outbox", "K-1", "1h", "eml"))).text();
    assert!(
        text.contains("1 x Ridge Tent 2P (TENT-2P, tents): €249.00"),
        "{text}"
    );
    let unknown = t
        .store()
        .count("SELECT count(*) FROM products WHERE sku = 'NO-PRICE' AND price_minor IS NULL");
    assert_eq!(unknown, 1);
}

/// A Shopify products export: the product's image on its first row, a
/// second image beside the second variant, a variant with its own image.
const SHOPIFY_EXPORT: &str = "\
Handle,Title,Option1 Name,Option1 Value,Variant SKU,Variant Price,Variant Inventory Qty,Image Src,Image Position,Variant Image
ridge-tent,Ridge Tent,Size,2P,TENT-2P,249.00,4,https://cdn.shop.example/tent-main.jpg,1,
ridge-tent,,,3P,TENT-3P,299.00,2,https://cdn.shop.example/tent-side.jpg,2,
ridge-tent,,,4P,TENT-4P,349.00,2,,,https://cdn.shop.example/tent-4p.jpg
ridge-tent,,,,,,,https://cdn.shop.example/tent-back.jpg,3,
";

fn products(t: &Test) -> Vec<(String, String, String, i64, String)> {
    let store = t.store();
    let mut query = store
        .conn()
        .prepare(
            "SELECT sku, image_url, product_url, price_minor, currency FROM products
             WHERE sku LIKE 'TENT-%' ORDER BY sku",
        )
        .unwrap();
    query
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_shopify_products_export_by_hand_with_its_currency_and_images() {
    let t = catalog_shop("drop-item").file("export.csv", SHOPIFY_EXPORT);
    let import = ["import", "--format", "shopify-products", "export.csv"];
    // No currency anywhere: the error says where to give it.
    t.recart(&import)
        .expect_status(1)
        .expect_stderr_contains("--currency EUR");
    assert!(products(&t).is_empty());

    let by_flag = [&import[..], &["--currency", "EUR"]].concat();
    t.recart(&by_flag).expect_success();
    let main = "https://cdn.shop.example/tent-main.jpg";
    assert_eq!(
        products(&t),
        [
            (
                "TENT-2P".into(),
                main.into(),
                String::new(),
                24_900,
                "EUR".into()
            ),
            // The second row's image is the product's second, not this
            // variant's: the variant shows the product's.
            (
                "TENT-3P".into(),
                main.into(),
                String::new(),
                29_900,
                "EUR".into()
            ),
            (
                "TENT-4P".into(),
                "https://cdn.shop.example/tent-4p.jpg".into(),
                String::new(),
                34_900,
                "EUR".into()
            ),
        ]
    );

    // Without the flag: the currency and URLs of its [[catalog]].
    let toml = t.read("recart.toml").replace(
        "[[catalog]]\npath = \"products.csv\"\nformat = \"native\"\n",
        "[[catalog]]\npath = \"products.csv\"\nformat = \"native\"\n\n\
         [[catalog]]\npath = \"export*.csv\"\nformat = \"shopify-products\"\ncurrency = \"SEK\"\n\
         product_url = \"https://shop.example/products/{handle}\"\n",
    );
    t.write("recart.toml", toml);
    t.recart(&import).expect_success();
    let by_config = products(&t);
    assert_eq!(by_config.len(), 3);
    for (_, _, url, _, currency) in &by_config {
        assert_eq!(
            (url.as_str(), currency.as_str()),
            ("https://shop.example/products/ridge-tent", "SEK")
        );
    }
}
