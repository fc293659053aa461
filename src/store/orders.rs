//! Orders: stored once each, and the carts they close marked ordered.

use rusqlite::params;

use crate::error::Result;
use crate::model::{Order, normalize_email};

use super::{Store, to_unix};

/// What importing a batch of orders did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OrderImport {
    pub added: u64,
    pub unchanged: u64,
    pub marked_ordered: u64,
    /// Orders of forgotten people, dropped.
    pub forgotten: u64,
}

impl Store {
    /// Stores orders (once each, by id) and marks their carts ordered: by
    /// `cart_id`, else every open cart of the address last active at or
    /// before the order. A forgotten person's orders are dropped, and
    /// counted.
    pub fn import_orders(&self, orders: &[Order]) -> Result<OrderImport> {
        self.write(|conn| {
            let mut result = OrderImport::default();
            let forgotten = self.forgotten_set(conn)?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO orders (id, email, email_norm, cart_id, total_minor, currency, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
            )?;
            for order in orders {
                if forgotten.as_ref().is_some_and(|set| set.contains(&order.email)) {
                    result.forgotten += 1;
                    continue;
                }
                let added = insert.execute(params![
                    order.id,
                    order.email,
                    normalize_email(&order.email),
                    order.cart_id,
                    order.total_minor,
                    order.currency.as_str(),
                    to_unix(order.created_at),
                ])?;
                if added == 0 {
                    result.unchanged += 1;
                    continue;
                }
                result.added += 1;
                for sku in &order.skus {
                    conn.prepare_cached(
                        "INSERT INTO order_items (order_id, sku) VALUES (?1, ?2)
                         ON CONFLICT DO NOTHING",
                    )?
                    .execute([&order.id, sku])?;
                }
                result.marked_ordered += match &order.cart_id {
                    Some(cart_id) => conn.execute(
                        "UPDATE carts SET status = 'ordered' WHERE id = ?1 AND status = 'open'",
                        [cart_id],
                    )?,
                    None => conn.execute(
                        "UPDATE carts SET status = 'ordered'
                         WHERE email_norm = ?1 AND status = 'open' AND updated_at <= ?2",
                        params![normalize_email(&order.email), to_unix(order.created_at)],
                    )?,
                } as u64;
            }
            Ok(result)
        })
    }
}
