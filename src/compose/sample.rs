//! Every template tried before anything is sent: each step's templates,
//! in each locale they exist in, rendered against a realistic sample cart
//! with the step's coupon. `run` does it first; `check` prints each.

use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::coupons::sample_coupon;
use super::links::LinkMaker;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{Cart, CartStatus, LineItem};
use crate::plan::Step;
use crate::render::{OtherCart, Rendered, Renderer};

/// One template tried by [`try_every_template`] or
/// [`check_every_template`].
pub struct Tried<'a> {
    pub step: &'a Step,
    pub template: &'a str,
    /// "" for the default set.
    pub locale: &'a str,
    /// The mail, or the error of each of its parts that failed.
    pub rendered: std::result::Result<Rendered, Vec<Error>>,
}

/// Renders every step's templates in every locale against the sample
/// cart; the first that fails is the error (`run`). `each` sees every
/// template that renders.
pub fn try_every_template(
    config: &Config,
    renderer: &Renderer,
    links: &LinkMaker<'_>,
    mut each: impl FnMut(Tried<'_>),
) -> Result<()> {
    let mut failed = None;
    every_template(config, renderer, links, |tried| {
        let Tried {
            step,
            template,
            locale,
            rendered,
        } = tried;
        match rendered {
            Ok(rendered) => {
                each(Tried {
                    step,
                    template,
                    locale,
                    rendered: Ok(rendered),
                });
                ControlFlow::Continue(())
            }
            Err(errors) => {
                failed = errors.into_iter().next();
                ControlFlow::Break(())
            }
        }
    });
    failed.map_or(Ok(()), Err)
}

/// Renders every step's templates in every locale that loaded against the
/// sample cart, whatever fails (`check`, which reports every error).
pub fn check_every_template(
    config: &Config,
    renderer: &Renderer,
    links: &LinkMaker<'_>,
    mut each: impl FnMut(Tried<'_>),
) {
    every_template(config, renderer, links, |tried| {
        each(tried);
        ControlFlow::Continue(())
    });
}

fn every_template(
    config: &Config,
    renderer: &Renderer,
    links: &LinkMaker<'_>,
    mut each: impl FnMut(Tried<'_>) -> ControlFlow<()>,
) {
    let now = links.now;
    let mut sample = sample_cart(now);
    let mut other = sample_other_cart(now);
    for step in &config.steps {
        let coupon = sample_coupon(step, links.signer, &sample, now);
        for template in step.templates() {
            // "" picks the default set.
            for locale in std::iter::once(String::new()).chain(renderer.locales(template)) {
                if !renderer.has_set(template, &locale) {
                    // It did not load: that error is reported already.
                    continue;
                }
                sample.locale.clone_from(&locale);
                other.locale.clone_from(&locale);
                let others = [OtherCart {
                    recover: links.recover(&other, step),
                    cart: Arc::new(other.clone()),
                }];
                let rendered = renderer.try_template(
                    &sample,
                    step,
                    template,
                    &links.for_cart(&sample, step),
                    coupon.as_ref(),
                    &others,
                );
                let tried = Tried {
                    step,
                    template,
                    locale: &locale,
                    rendered,
                };
                if each(tried).is_break() {
                    return;
                }
            }
        }
    }
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

/// Another open cart of the sample cart's customer, for `other_carts`.
fn sample_other_cart(now: DateTime<Utc>) -> Cart {
    let mut cart = sample_cart(now - TimeDelta::days(2));
    cart.id = "SAMPLE-0".into();
    cart.items.truncate(1);
    cart
}
