//! What templates see of one mail: `Context` and the views of the cart in
//! it. The cart parts are read lazily, through one `minijinja` object
//! implementation (`ViewObject`) shared by every view.

use std::fmt;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Object, Serde, Value};
use serde::Serialize;

use super::{Links, OtherCart};
use crate::model::Cart;

/// Something templates read as a map with a fixed set of keys: its fields
/// become values only when a template reads them.
pub(super) trait View: fmt::Debug + Send + Sync + Sized + 'static {
    /// Its keys, in the order `|items`, `tojson` and printing show them.
    const KEYS: &'static [&'static str];

    /// The value of one of `KEYS`; None for any other name, which strict
    /// undefined makes an error.
    fn field(&self, key: &str) -> Option<Value>;

    /// The view as a template value.
    fn into_value(self) -> Value {
        Value::from_object(ViewObject(self))
    }
}

/// A `View` as a `minijinja` object. A wrapper because the orphan rule
/// forbids implementing the foreign `Object` for every `View` directly.
pub(super) struct ViewObject<T>(T);

/// As the view itself: the wrapper is no part of what it shows.
impl<T: View> fmt::Debug for ViewObject<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: View> Object for ViewObject<T> {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.field(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.0.field(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(T::KEYS)
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(T::KEYS.len())
    }
}

/// The name of the customer's other open carts in the context.
pub(super) const OTHER_CARTS: &str = "other_carts";

/// The whole context of one mail. The cart parts are views over the shared
/// cart, not serialised up front: a field becomes a value when a template
/// reads it (most read a few of them), and their keys and order are those
/// of the structs this replaced, so `tojson`, `|items` and printing a whole
/// object give what they gave.
#[derive(Debug)]
pub(super) struct Context {
    shop: Value,
    customer: Value,
    cart: Value,
    items: Value,
    links: Value,
    step: Value,
    /// None when the step promises no coupon: `{% if coupon %}` works
    /// under strict undefined.
    coupon: Value,
    /// The customer's other open carts (`OtherCartView`), newest first.
    other_carts: Value,
}

impl Context {
    /// The context of one mail of the step named `step`; `coupon` is the
    /// one the cart got for it, if any.
    pub fn new(
        shop: &Value,
        cart: &Arc<Cart>,
        step: &str,
        links: &Links,
        coupon: Option<&CouponView<'_>>,
        others: &[OtherCart],
    ) -> Context {
        let cart_view = CartView::new(Arc::clone(cart));
        let other_carts = others
            .iter()
            .map(|other| {
                OtherCartView {
                    cart: CartView::new(Arc::clone(&other.cart)),
                    recover: Value::from(other.recover.as_str()),
                }
                .into_value()
            })
            .collect::<Vec<_>>();
        Context {
            shop: shop.clone(),
            customer: CustomerView(Arc::clone(cart)).into_value(),
            items: cart_view.items.clone(),
            cart: cart_view.into_value(),
            links: Value::from(Serde(links)),
            step: Value::from(Serde(&StepView { name: step })),
            coupon: coupon.map_or_else(|| Value::from(()), |coupon| Value::from(Serde(coupon))),
            other_carts: Value::from_object(other_carts),
        }
    }
}

impl View for Context {
    const KEYS: &'static [&'static str] = &[
        "shop",
        "customer",
        "cart",
        "items",
        "links",
        "step",
        "coupon",
        OTHER_CARTS,
    ];

    fn field(&self, key: &str) -> Option<Value> {
        Some(
            match key {
                "shop" => &self.shop,
                "customer" => &self.customer,
                "cart" => &self.cart,
                "items" => &self.items,
                "links" => &self.links,
                "step" => &self.step,
                "coupon" => &self.coupon,
                OTHER_CARTS => &self.other_carts,
                _ => return None,
            }
            .clone(),
        )
    }
}

/// `coupon`: the code the cart got for the step.
#[derive(Serialize)]
pub(super) struct CouponView<'a> {
    pub code: &'a str,
    /// The last day it is valid (and the time, when that is less than a
    /// day after the mail), written for the cart's locale in the
    /// customer's zone; None if it does not expire.
    pub expires: Option<String>,
}

/// `shop`: its name.
#[derive(Serialize)]
pub(super) struct Shop<'a> {
    pub name: &'a str,
}

/// `step`: its name.
#[derive(Serialize)]
struct StepView<'a> {
    name: &'a str,
}

/// `customer`: `email`, `first_name`.
#[derive(Debug)]
struct CustomerView(Arc<Cart>);

impl View for CustomerView {
    const KEYS: &'static [&'static str] = &["email", "first_name"];

    fn field(&self, key: &str) -> Option<Value> {
        match key {
            "email" => Some(Value::from(self.0.email.as_str())),
            "first_name" => Some(Value::from(self.0.first_name.as_str())),
            _ => None,
        }
    }
}

/// `cart`: `id`, `currency`, `total` (formatted for the locale),
/// `item_count`, `locale`, `items` (the same list as the top-level
/// `items`: where a marketer coming from Liquid looks first).
#[derive(Debug)]
struct CartView {
    cart: Arc<Cart>,
    /// Formatted once, however many parts show it.
    total: OnceLock<Value>,
    /// `ItemView`s, in order.
    items: Value,
}

impl CartView {
    fn new(cart: Arc<Cart>) -> CartView {
        let items = (0..cart.items.len())
            .map(|index| ItemView::new(Arc::clone(&cart), index).into_value())
            .collect::<Vec<_>>();
        CartView {
            cart,
            total: OnceLock::new(),
            items: Value::from_object(items),
        }
    }
}

impl View for CartView {
    const KEYS: &'static [&'static str] =
        &["id", "currency", "total", "item_count", "locale", "items"];

    fn field(&self, key: &str) -> Option<Value> {
        let cart = &self.cart;
        match key {
            "id" => Some(Value::from(cart.id.as_str())),
            "currency" => Some(Value::from(cart.currency.as_str())),
            "total" => Some(
                self.total
                    .get_or_init(|| money(cart, cart.total_minor()))
                    .clone(),
            ),
            "item_count" => Some(Value::from(cart.item_count())),
            "locale" => Some(Value::from(cart.locale.as_str())),
            "items" => Some(self.items.clone()),
            _ => None,
        }
    }
}

/// One of `other_carts`: what `cart` shows of it, and `recover`, its own
/// signed recovery link.
#[derive(Debug)]
struct OtherCartView {
    cart: CartView,
    recover: Value,
}

impl View for OtherCartView {
    const KEYS: &'static [&'static str] = &[
        "id",
        "currency",
        "total",
        "item_count",
        "locale",
        "items",
        "recover",
    ];

    fn field(&self, key: &str) -> Option<Value> {
        match key {
            "recover" => Some(self.recover.clone()),
            _ => self.cart.field(key),
        }
    }
}

/// Every key any view of the context has: what a near miss on a name
/// whose view is not known (a loop variable's) is compared with.
pub(super) fn every_key() -> impl Iterator<Item = &'static str> {
    [
        Context::KEYS,
        CustomerView::KEYS,
        CartView::KEYS,
        OtherCartView::KEYS,
        ItemView::KEYS,
        &["recover", "unsubscribe", "unsubscribe_mailto"],
        &["name", "code", "expires"],
    ]
    .into_iter()
    .flatten()
    .copied()
}

/// One of `items`: `name`, `sku`, `category`, `quantity`, `unit_price`,
/// `line_total` (both formatted), `image_url`, `product_url` (web URLs
/// only).
#[derive(Debug)]
struct ItemView {
    cart: Arc<Cart>,
    index: usize,
    unit_price: OnceLock<Value>,
    line_total: OnceLock<Value>,
}

impl ItemView {
    /// The view of `cart.items[index]`.
    fn new(cart: Arc<Cart>, index: usize) -> ItemView {
        ItemView {
            cart,
            index,
            unit_price: OnceLock::new(),
            line_total: OnceLock::new(),
        }
    }
}

impl View for ItemView {
    const KEYS: &'static [&'static str] = &[
        "name",
        "sku",
        "category",
        "quantity",
        "unit_price",
        "line_total",
        "image_url",
        "product_url",
    ];

    fn field(&self, key: &str) -> Option<Value> {
        let cart = &self.cart;
        let item = &cart.items[self.index];
        match key {
            "name" => Some(Value::from(item.name.as_str())),
            "sku" => Some(Value::from(item.sku.as_str())),
            "category" => Some(Value::from(item.category.as_str())),
            "quantity" => Some(Value::from(item.quantity)),
            "unit_price" => Some(
                self.unit_price
                    .get_or_init(|| money(cart, item.unit_price_minor))
                    .clone(),
            ),
            "line_total" => Some(
                self.line_total
                    .get_or_init(|| money(cart, item.line_total_minor()))
                    .clone(),
            ),
            "image_url" => Some(Value::from(web_url(&item.image_url))),
            "product_url" => Some(Value::from(web_url(&item.product_url))),
            _ => None,
        }
    }
}

/// An amount of the cart's currency, written for its locale.
fn money(cart: &Cart, minor: i64) -> Value {
    Value::from(cart.currency.format_in(minor, &cart.locale))
}

/// A URL from cart data as a link or image source: http(s) only, so a
/// `javascript:` or `data:` URL from a CSV never reaches an `href`.
pub(super) fn web_url(url: &str) -> &str {
    let url = url.trim();
    // Compared in place: templates read a URL per item and part.
    let starts_with = |prefix: &str| {
        url.as_bytes()
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    if starts_with("https://") || starts_with("http://") {
        url
    } else {
        ""
    }
}
