//! Every template tried before anything is sent: each step's templates,
//! in each locale they exist in, rendered against a realistic sample cart
//! with the step's coupon. `run` does it first; `check` prints each.

use chrono::{DateTime, TimeDelta, Utc};

use super::coupons::sample_coupon;
use super::links::LinkMaker;
use crate::config::Config;
use crate::error::Result;
use crate::model::{Cart, CartStatus, LineItem};
use crate::plan::Step;
use crate::render::{Rendered, Renderer};

/// One template rendered by [`try_every_template`].
pub struct Tried<'a> {
    pub step: &'a Step,
    pub template: &'a str,
    /// "" for the default set.
    pub locale: &'a str,
    pub rendered: Rendered,
}

/// Renders every step's templates in every locale against the sample
/// cart; the first that fails is the error. `each` sees every rendering.
pub fn try_every_template(
    config: &Config,
    renderer: &Renderer,
    links: &LinkMaker<'_>,
    mut each: impl FnMut(Tried<'_>),
) -> Result<()> {
    let now = links.now;
    let mut sample = sample_cart(now);
    for step in &config.steps {
        let coupon = sample_coupon(step, links.signer, &sample, now);
        for template in step.templates() {
            // "" picks the default set.
            for locale in std::iter::once(String::new()).chain(renderer.locales(template)) {
                sample.locale.clone_from(&locale);
                let rendered = renderer.render_template(
                    &sample,
                    step,
                    template,
                    &links.for_cart(&sample, step),
                    coupon.as_ref(),
                )?;
                each(Tried {
                    step,
                    template,
                    locale: &locale,
                    rendered,
                });
            }
        }
    }
    Ok(())
}

/// A realistic cart to try every template on before anything is sent.
pub fn sample_cart(now: DateTime<Utc>) -> Cart {
    let item = |sku: &str, name: &str, quantity, price| LineItem {
        sku: sku.into(),
        name: name.into(),
        category: "sample".into(),
        quantity,
        unit_price_minor: price,
        image_url: format!("https://shop.example/img/{sku}.jpg"),
        product_url: format!("https://shop.example/products/{sku}"),
    };
    Cart {
        id: "SAMPLE-1".into(),
        email: "sample@example.com".into(),
        first_name: "Sam".into(),
        locale: "en".into(),
        currency: "EUR".parse().expect("a valid code"),
        status: CartStatus::Open,
        accepts_marketing: true,
        created_at: now - TimeDelta::hours(3),
        updated_at: now - TimeDelta::hours(2),
        utc_offset_seconds: Some(0),
        timezone: String::new(),
        phone: String::new(),
        sms_consent: false,
        items: vec![
            item("SAMPLE-TENT", "Sample tent", 1, 19900),
            item("SAMPLE-MUG", "Sample mug", 2, 1250),
        ],
    }
}
