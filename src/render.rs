//! Render: a cart and a step through the step's templates into a message
//! (subject, HTML, text). Templates are minijinja with strict undefined, so
//! a typo fails the run before anything is sent; `.html` is autoescaped.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::Cart;
use crate::plan::Step;

/// The parts of one mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The links a mail carries, already signed.
#[derive(Debug, Clone, Serialize)]
pub struct Links {
    pub recover: String,
    pub unsubscribe: String,
}

const PARTS: [&str; 3] = ["subject", "html", "txt"];

pub struct Renderer {
    env: Environment<'static>,
    shop_name: String,
}

#[derive(Serialize)]
struct Context<'a> {
    shop: Shop<'a>,
    customer: Customer<'a>,
    cart: CartView<'a>,
    items: Vec<ItemView<'a>>,
    links: &'a Links,
    step: StepView<'a>,
}

#[derive(Serialize)]
struct Shop<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Customer<'a> {
    email: &'a str,
    first_name: &'a str,
}

#[derive(Serialize)]
struct CartView<'a> {
    id: &'a str,
    currency: &'a str,
    total: String,
    item_count: i64,
    locale: &'a str,
}

#[derive(Serialize)]
struct ItemView<'a> {
    name: &'a str,
    sku: &'a str,
    category: &'a str,
    quantity: u32,
    unit_price: String,
    line_total: String,
    image_url: &'a str,
    product_url: &'a str,
}

#[derive(Serialize)]
struct StepView<'a> {
    name: &'a str,
}

impl Renderer {
    /// Loads every template the steps name; a missing file is an error
    /// naming it.
    pub fn load(dir: &Path, steps: &[Step], shop_name: &str) -> Result<Renderer> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (step, template) in steps
            .iter()
            .flat_map(|step| step.templates().into_iter().map(move |t| (step, t)))
        {
            for part in PARTS {
                let name = format!("{template}.{part}");
                if env.get_template(&name).is_ok() {
                    continue;
                }
                let path: PathBuf = dir.join(&name);
                let source = std::fs::read_to_string(&path).map_err(|error| Error::Template {
                    name: path.display().to_string(),
                    message: if error.kind() == std::io::ErrorKind::NotFound {
                        format!("missing (step {:?} needs it)", step.name)
                    } else {
                        error.to_string()
                    },
                })?;
                env.add_template_owned(name.clone(), source)
                    .map_err(|error| template_error(&path, &error))?;
            }
        }
        Ok(Renderer {
            env,
            shop_name: shop_name.to_string(),
        })
    }

    /// Renders `template` (the step's, or its variant for this cart).
    pub fn render(
        &self,
        cart: &Cart,
        step: &Step,
        template: &str,
        links: &Links,
    ) -> Result<Rendered> {
        let currency = &cart.currency;
        let context = Context {
            shop: Shop {
                name: &self.shop_name,
            },
            customer: Customer {
                email: &cart.email,
                first_name: &cart.first_name,
            },
            cart: CartView {
                id: &cart.id,
                currency: currency.as_str(),
                total: currency.format(cart.total_minor()),
                item_count: cart.item_count(),
                locale: &cart.locale,
            },
            items: cart
                .items
                .iter()
                .map(|item| ItemView {
                    name: &item.name,
                    sku: &item.sku,
                    category: &item.category,
                    quantity: item.quantity,
                    unit_price: currency.format(item.unit_price_minor),
                    line_total: currency.format(item.line_total_minor()),
                    image_url: &item.image_url,
                    product_url: &item.product_url,
                })
                .collect(),
            links,
            step: StepView { name: &step.name },
        };
        let context = minijinja::Value::from(minijinja::value::Serde(&context));
        let render = |part: &str| -> Result<String> {
            let name = format!("{template}.{part}");
            let template = self
                .env
                .get_template(&name)
                .map_err(|error| Error::Template {
                    name: name.clone(),
                    message: error.to_string(),
                })?;
            template
                .render(&context)
                .map_err(|error| template_error(Path::new(&name), &error))
        };
        Ok(Rendered {
            subject: one_line(&render("subject")?),
            html: render("html")?,
            text: render("txt")?,
        })
    }
}

fn template_error(path: &Path, error: &minijinja::Error) -> Error {
    let mut message = error.kind().to_string();
    if let Some(detail) = error.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    if let Some(line) = error.line() {
        message = format!("line {line}: {message}");
    }
    Error::Template {
        name: path.display().to_string(),
        message,
    }
}

/// A subject is one line: CR, LF and other controls can never reach the
/// header (no header injection from cart data), runs of white space fold.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CartStatus, LineItem};
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
        let step = Step {
            name: "1h".into(),
            after: TimeDelta::hours(1),
            template: "reminder".into(),
            variants: Vec::new(),
            require_consent: true,
            filters: Default::default(),
        };
        (dir, step)
    }

    fn links() -> Links {
        Links {
            recover: "https://shop.example/r/T".into(),
            unsubscribe: "https://shop.example/u/T".into(),
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
        let mail = renderer
            .render(&cart(), &step, "reminder", &links())
            .unwrap();
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
    fn undefined_names_and_missing_files_are_errors() {
        let (dir, step) = setup("{{ custmer.first_name }}", "x", "x");
        let renderer = Renderer::load(dir.path(), std::slice::from_ref(&step), "Shop").unwrap();
        let error = renderer
            .render(&cart(), &step, "reminder", &links())
            .unwrap_err();
        assert!(error.to_string().contains("reminder.subject"), "{error}");
        assert_eq!(error.exit_code(), crate::error::exit::USAGE);

        std::fs::remove_file(dir.path().join("reminder.txt")).unwrap();
        let error = Renderer::load(dir.path(), &[step], "Shop").err().unwrap();
        assert!(error.to_string().contains("reminder.txt"), "{error}");
    }
}
