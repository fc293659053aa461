//! The stage between plan and deliver: turns a due (cart, step) into a
//! reminder ready to hand over. Loads the cart, draws its coupon and fills
//! it from the catalog (through the store, on the caller's thread), signs
//! its links, then renders and builds the MIME message or the webhook
//! document (pure work, spread over the cores).

pub mod catalog;
pub mod coupons;
pub mod links;
pub mod sample;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use crate::config::Config;
use crate::coupon::Coupon;
use crate::deliver::{self, Gallery, Reminder};
use crate::error::{Error, Result};
use crate::model::Cart;
use crate::plan::{self, Step};
use crate::render::{OtherCart, Renderer};
use crate::store::Store;
use crate::token::Signer;

pub use coupons::{PoolDry, coupon_for, sample_coupon};
pub use links::{LinkMaker, link_signer};
pub use sample::{Tried, check_every_template, sample_cart, try_every_template};
pub use webhook::{WebhookKeys, webhook_call, webhook_keys};

/// What composing one due reminder gave.
#[derive(Debug)]
pub enum Composed {
    Ready(Reminder),
    /// The cart vanished from the store.
    Gone,
    /// The step promises a pool coupon and the pool is dry.
    NoCoupon,
    /// This mail cannot be made, and why: its template went over a bound
    /// (`render::MAX_PART_BYTES`, `render::FUEL`) or its address is
    /// outside the rule (`model::parse_email`). It is not claimed, so
    /// nothing is recorded: a later run tries it again.
    Failed(String),
}

/// Turns due carts into reminders. See the module's doc.
pub struct Composer<'a> {
    store: &'a Store,
    /// The store holds a product catalog to fill items from.
    catalog: bool,
    /// Some template shows the customer's other open carts: load them.
    other_carts: bool,
    out_of_stock: plan::OutOfStock,
    signer: &'a Signer,
    builder: Builder<'a>,
    /// The cores to build on: asked once (it reads cgroup files), not per
    /// batch.
    cores: usize,
}

/// How a run wants its reminders built.
#[derive(Debug, Clone, Copy, Default)]
pub struct Compose<'a> {
    /// Test send: the address every mail goes to instead.
    pub to: Option<&'a str>,
    /// Whether the MIME message is needed: not in a dry run without a
    /// gallery, where nothing carries it.
    pub encode: bool,
    /// The key that signs every mail (`[transport.dkim]`).
    pub dkim: Option<&'a deliver::DkimKey>,
}

/// Renders and builds reminders from prepared carts: no store, so it can
/// work on several threads at once.
struct Builder<'a> {
    config: &'a Config,
    renderer: &'a Renderer,
    links: &'a LinkMaker<'a>,
    how: Compose<'a>,
    webhook_keys: &'a WebhookKeys,
}

/// A due cart loaded and given its coupon, ready to render.
struct Prepared<'s> {
    /// Shared, so the templates read it in place.
    cart: Arc<Cart>,
    step: &'s Step,
    coupon: Option<Coupon>,
    /// The customer's other open carts, newest first, filled from the
    /// catalog like the cart.
    others: Vec<Arc<Cart>>,
}

/// A composed reminder and, for the gallery, its subject and HTML.
struct Built {
    reminder: Reminder,
    shown: Option<(String, String)>,
}

/// A reminder built, or why this one mail could not be (`Composed::Failed`).
type Made = std::result::Result<Built, String>;

/// One worker's share of a batch: its prepared carts (or why there is
/// nothing to build) and what it built of them.
type Share<'s> = (
    Vec<std::result::Result<Prepared<'s>, Composed>>,
    Result<Vec<Option<Made>>>,
);

/// A batch being rendered and built on other threads.
pub struct BuildJob<'scope, 's>(Vec<ScopedJoinHandle<'scope, Share<'s>>>);

impl<'c> Composer<'c> {
    pub fn new(
        store: &'c Store,
        config: &'c Config,
        renderer: &'c Renderer,
        links: &'c LinkMaker<'c>,
        webhook_keys: &'c WebhookKeys,
        how: Compose<'c>,
    ) -> Result<Composer<'c>> {
        Ok(Composer {
            store,
            catalog: store.has_products()?,
            other_carts: renderer.uses_other_carts(),
            out_of_stock: config.policy.out_of_stock,
            signer: links.signer,
            builder: Builder {
                config,
                renderer,
                links,
                how,
                webhook_keys,
            },
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        })
    }

    /// Starts composing the reminders for `wanted` (cart id, step): carts
    /// are loaded and coupons drawn here, one by one (the store is one
    /// connection); rendering and MIME building, the bulk of the work, are
    /// spread over the machine's cores while the caller goes on.
    /// [`Composer::finish_composing`] gives the results, in order.
    pub fn start_composing<'scope, 's: 'scope>(
        &'scope self,
        scope: &'scope Scope<'scope, '_>,
        wanted: &[(&str, &'s Step)],
        keep_shown: bool,
    ) -> Result<BuildJob<'scope, 's>> {
        let mut prepared: Vec<std::result::Result<Prepared<'s>, Composed>> =
            Vec::with_capacity(wanted.len());
        let ids: Vec<&str> = wanted.iter().map(|(cart_id, _)| *cart_id).collect();
        let mut carts = self.store.carts(&ids)?;
        let mut others = if self.other_carts {
            // The carts the plan would look at: its window.
            let now = self.builder.links.now;
            let oldest = now - self.builder.config.policy.max_age;
            self.store.other_open_carts(&ids, oldest, now)?
        } else {
            std::collections::HashMap::new()
        };
        for (cart_id, step) in wanted {
            let cart = carts.remove(*cart_id);
            let others = others.remove(*cart_id).unwrap_or_default();
            prepared.push(self.prepare(cart, others, step)?);
        }
        let threads = self.cores.min(prepared.len().div_ceil(16)).max(1);
        let chunk = prepared.len().div_ceil(threads).max(1);
        let builder = &self.builder;
        let mut job = Vec::with_capacity(threads);
        while !prepared.is_empty() {
            let rest = prepared.split_off(chunk.min(prepared.len()));
            let part = std::mem::replace(&mut prepared, rest);
            job.push(scope.spawn(move || {
                let built = part
                    .iter()
                    .map(|item| match item {
                        Ok(prepared) => builder.build(prepared, keep_shown).map(Some),
                        Err(_) => Ok(None),
                    })
                    .collect();
                (part, built)
            }));
        }
        Ok(BuildJob(job))
    }

    /// Waits for a batch started by [`Composer::start_composing`]; with a
    /// gallery, each reminder is also written there.
    pub fn finish_composing(
        job: BuildJob<'_, '_>,
        mut gallery: Option<&mut Gallery>,
    ) -> Result<Vec<Composed>> {
        let mut prepared = Vec::new();
        let mut built = Vec::new();
        for worker in job.0 {
            let (part, part_built) = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            prepared.extend(part);
            built.extend(part_built?);
        }
        let mut composed = Vec::with_capacity(prepared.len());
        for (item, built) in prepared.into_iter().zip(built) {
            match (item, built) {
                (Err(skipped), _) => composed.push(skipped),
                (Ok(prepared), Some(Ok(built))) => {
                    if let Some(gallery) = gallery.as_deref_mut() {
                        show(gallery, &prepared.cart, &built)?;
                    }
                    composed.push(Composed::Ready(built.reminder));
                }
                (Ok(_), Some(Err(reason))) => composed.push(Composed::Failed(reason)),
                (Ok(_), None) => unreachable!("every prepared cart is built"),
            }
        }
        Ok(composed)
    }

    /// Draws the loaded cart's coupon, fills it and the customer's other
    /// carts from the catalog; or says why there is nothing to send.
    fn prepare<'s>(
        &self,
        cart: Option<Cart>,
        mut others: Vec<Cart>,
        step: &'s Step,
    ) -> Result<std::result::Result<Prepared<'s>, Composed>> {
        let Some(mut cart) = cart else {
            return Ok(Err(Composed::Gone));
        };
        let now = self.builder.links.now;
        let Ok(coupon) = coupon_for(self.store, self.signer, &cart.id, step, now)? else {
            return Ok(Err(Composed::NoCoupon));
        };
        if self.catalog {
            for cart in std::iter::once(&mut cart).chain(&mut others) {
                let skus: Vec<&str> = cart.items.iter().map(|item| item.sku.as_str()).collect();
                let products = self.store.products(&skus)?;
                catalog::fill_from_catalog(cart, &products, self.out_of_stock);
            }
        }
        // An empty cart (or one left with nothing in stock) is nothing to
        // show.
        others.retain(|other| !other.items.is_empty());
        Ok(Ok(Prepared {
            cart: Arc::new(cart),
            step,
            coupon,
            others: others.into_iter().map(Arc::new).collect(),
        }))
    }
}

/// Adds a built reminder to the preview gallery.
fn show(gallery: &mut Gallery, cart: &Cart, built: &Built) -> Result<()> {
    let value = cart.currency.format_in(cart.total_minor(), &cart.locale);
    match (&built.reminder, &built.shown) {
        (Reminder::Webhook(call), _) => gallery.add_webhook(call, &cart.email, &value),
        (Reminder::Mail(mail), Some((subject, html))) => {
            gallery.add_mail(mail, &cart.email, &value, subject, html)
        }
        (Reminder::Mail(_), None) => Ok(()),
    }
}

impl Builder<'_> {
    /// Renders and builds one reminder: pure work, safe on any thread. A
    /// template over a bound or an address outside the rule fails this
    /// mail only (the inner error, its reason); any other error stops the
    /// run.
    fn build(&self, prepared: &Prepared<'_>, keep_shown: bool) -> Result<Made> {
        let Prepared {
            cart,
            step,
            coupon,
            others,
        } = prepared;
        let signed = self.links.for_cart(cart, step);
        if let plan::Channel::Webhook(webhook) = &step.channel {
            let call = webhook_call(
                cart,
                step,
                webhook,
                &signed,
                coupon.as_ref(),
                self.links.now,
                self.webhook_keys,
            );
            return Ok(Ok(Built {
                reminder: Reminder::Webhook(call),
                shown: None,
            }));
        }
        let others: Vec<OtherCart> = others
            .iter()
            .map(|other| OtherCart {
                recover: self.links.recover(other, step),
                cart: Arc::clone(other),
            })
            .collect();
        let rendered =
            match self
                .renderer
                .render_shared(cart, step, &signed, coupon.as_ref(), &others)
            {
                Ok(rendered) => rendered,
                Err(error @ Error::TemplateBound { .. }) => return Ok(Err(error.to_string())),
                Err(error) => return Err(error),
            };
        let build = if self.how.encode {
            deliver::build
        } else {
            deliver::check
        };
        let mail = match build(&deliver::Letter {
            from: &self.config.from,
            reply_to: self.config.reply_to.as_ref(),
            to_name: &cart.first_name,
            // A test send goes to the operator's address instead of the customer's.
            to_email: self.how.to.unwrap_or(&cart.email),
            cart_id: &cart.id,
            step: &step.name,
            rendered: &rendered,
            links: &signed,
            date: self.links.now,
            // A test send records nothing: its bounces must name no send.
            return_path: if self.how.to.is_some() {
                None
            } else {
                self.links.return_path(&cart.id, &step.name)
            },
            dkim: self.how.dkim,
        }) {
            Ok(mail) => mail,
            Err(error @ Error::Address(_)) => return Ok(Err(error.to_string())),
            Err(error) => return Err(error),
        };
        Ok(Ok(Built {
            reminder: Reminder::Mail(mail),
            shown: keep_shown.then_some((rendered.subject, rendered.html)),
        }))
    }
}
