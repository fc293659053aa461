//! The document a webhook step posts, and the keys that sign it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::coupon::Coupon;
use crate::deliver::{self, WebhookCall};
use crate::error::{Error, Result};
use crate::model::Cart;
use crate::plan::{self, Step};
use crate::render::Links;

/// Webhook steps' signing keys, by step name.
pub type WebhookKeys = HashMap<String, Vec<u8>>;

/// The signing key of each webhook step that names one (`secret_env`): a
/// step naming a variable that is not set is a configuration error.
pub fn webhook_keys(config: &Config) -> Result<WebhookKeys> {
    let mut keys = HashMap::new();
    for (index, step) in config.steps.iter().enumerate() {
        if let plan::Channel::Webhook(plan::Webhook {
            secret_env: Some(variable),
            ..
        }) = &step.channel
        {
            let key = std::env::var(variable)
                .ok()
                .filter(|value| !value.trim().is_empty())
                .ok_or_else(|| {
                    Error::config(
                        &config.path,
                        format!("steps[{index}].secret_env: the variable {variable} is not set"),
                    )
                })?;
            keys.insert(step.name.clone(), key.trim().as_bytes().to_vec());
        }
    }
    Ok(keys)
}

/// The key the receiver deduplicates by: stable per (cart, step).
pub fn idempotency_key(cart_id: &str, step: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{cart_id}\0{step}"));
    format!("recart-{}", hex::encode(&digest[..16]))
}

/// The JSON document a webhook step posts: customer, cart with items and
/// totals, links, coupon, step, and a key stable per (cart, step).
pub fn webhook_call(
    cart: &Cart,
    step: &Step,
    webhook: &plan::Webhook,
    links: &Links,
    coupon: Option<&Coupon>,
    now: DateTime<Utc>,
    keys: &WebhookKeys,
) -> WebhookCall {
    let currency = &cart.currency;
    let idempotency_key = idempotency_key(&cart.id, &step.name);
    let document = serde_json::json!({
        "event": "cart.reminder",
        "idempotency_key": idempotency_key,
        "step": step.name,
        "created_at": now.to_rfc3339(),
        "customer": {
            "email": cart.email,
            "first_name": cart.first_name,
            "phone": (!cart.phone.is_empty()).then_some(&cart.phone),
            "sms_consent": cart.sms_consent,
            "locale": cart.locale,
        },
        "cart": {
            "id": cart.id,
            "currency": currency.as_str(),
            "total": currency.minor_to_amount(cart.total_minor()).to_string(),
            "total_formatted": currency.format_in(cart.total_minor(), &cart.locale),
            "item_count": cart.item_count(),
            "items": cart.items.iter().map(|item| serde_json::json!({
                "sku": item.sku,
                "name": item.name,
                "quantity": item.quantity,
                "unit_price": currency.minor_to_amount(item.unit_price_minor).to_string(),
                "line_total": currency.minor_to_amount(item.line_total_minor()).to_string(),
                "image_url": item.image_url,
                "product_url": item.product_url,
            })).collect::<Vec<_>>(),
        },
        "links": { "recover": links.recover, "unsubscribe": links.unsubscribe },
        "coupon": coupon.map(|coupon| serde_json::json!({
            "code": coupon.code,
            "expires": coupon.expires.map(|at| at.to_rfc3339()),
        })),
    });
    let body = serde_json::to_vec(&document).expect("JSON serialises");
    WebhookCall {
        cart_id: cart.id.clone(),
        step: step.name.clone(),
        timeout: webhook.timeout,
        url: webhook.url.clone(),
        headers: webhook.headers.clone(),
        signature: keys
            .get(&step.name)
            .map(|key| deliver::signature(key, &body)),
        body,
        idempotency_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_key_is_stable_per_cart_and_step() {
        let key = idempotency_key("C1", "reminder");
        assert_eq!(key, idempotency_key("C1", "reminder"));
        assert_ne!(key, idempotency_key("C1", "reminder-2"));
        assert_ne!(key, idempotency_key("C", "1reminder"));
        // "recart-" and 16 bytes in lower-case hex, as the first release wrote it.
        assert_eq!(key.len(), 7 + 32);
        assert!(
            key[7..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}
