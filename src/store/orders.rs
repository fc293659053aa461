//! Orders: stored once each, and the carts they close marked ordered.

use std::collections::HashSet;

use postgres::types::Type;
use rusqlite::{Connection, params};

use crate::error::Result;
use crate::model::{Order, normalize_email};

use super::engine::{DbResult, Engine, args};
use super::staging::{Staging, stage};
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
        self.write_db(|db| {
            let mut result = OrderImport::default();
            let forgotten = self.forgotten_in(db)?;
            let mut kept: Vec<&Order> = Vec::with_capacity(orders.len());
            for order in orders {
                if forgotten
                    .as_ref()
                    .is_some_and(|set| set.contains(&order.email))
                {
                    result.forgotten += 1;
                } else {
                    kept.push(order);
                }
            }
            match db.sqlite() {
                Some(conn) => import_one_by_one(conn, &kept, &mut result)?,
                None => import_postgres(db, &kept, &mut result)?,
            }
            Ok(result)
        })
    }
}

/// Stores the orders on `SQLite`, a few statements each.
fn import_one_by_one(
    conn: &Connection,
    orders: &[&Order],
    result: &mut OrderImport,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO orders (id, email, email_norm, cart_id, total_minor, currency, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
    )?;
    for order in orders {
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
    Ok(())
}

/// The staging tables of a batch's orders on PostgreSQL; `added` is set
/// for the orders the batch stored.
const ORDER_STAGING: Staging = Staging {
    name: "import_orders",
    columns: "id TEXT, email TEXT, email_norm TEXT, cart_id TEXT, total_minor BIGINT,
              currency TEXT, created_at BIGINT, added BIGINT NOT NULL DEFAULT 0",
    copied: "id, email, email_norm, cart_id, total_minor, currency, created_at",
    types: &[
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::INT8,
    ],
};
const ORDER_ITEM_STAGING: Staging = Staging {
    name: "import_order_items",
    columns: "order_id TEXT, sku TEXT",
    copied: "order_id, sku",
    types: &[Type::TEXT, Type::TEXT],
};

/// Stores the orders on PostgreSQL set-wise, with the same outcome as one
/// by one: copied into staging tables, then one INSERT of the orders, one
/// of the items of those it added, one UPDATE of the carts they close.
fn import_postgres(db: &Engine, orders: &[&Order], result: &mut OrderImport) -> DbResult<()> {
    // An id again in the batch finds its first order stored (now or
    // before): unchanged, as it would be one by one.
    let mut seen: HashSet<&str> = HashSet::with_capacity(orders.len());
    let first: Vec<&Order> = orders
        .iter()
        .copied()
        .filter(|order| seen.insert(&order.id))
        .collect();
    result.unchanged += (orders.len() - first.len()) as u64;
    if first.is_empty() {
        return Ok(());
    }
    stage(db, &ORDER_STAGING, |writer| {
        for order in &first {
            writer.write(&[
                &order.id,
                &order.email,
                &normalize_email(&order.email),
                &order.cart_id,
                &order.total_minor,
                &order.currency.as_str(),
                &to_unix(order.created_at),
            ])?;
        }
        Ok(())
    })?;
    stage(db, &ORDER_ITEM_STAGING, |writer| {
        for order in &first {
            for sku in &order.skus {
                writer.write(&[&order.id, sku])?;
            }
        }
        Ok(())
    })?;
    let added = db.execute(
        "WITH added AS (
            INSERT INTO orders (id, email, email_norm, cart_id, total_minor, currency, created_at)
            SELECT id, email, email_norm, cart_id, total_minor, currency, created_at
            FROM import_orders
            ON CONFLICT (id) DO NOTHING
            RETURNING id)
         UPDATE import_orders AS s SET added = 1 FROM added WHERE s.id = added.id",
        args![],
    )?;
    result.added += added;
    result.unchanged += first.len() as u64 - added;
    if added == 0 {
        return Ok(());
    }
    db.execute(
        "INSERT INTO order_items (order_id, sku)
         SELECT i.order_id, i.sku FROM import_order_items AS i
         JOIN import_orders AS o ON o.id = i.order_id AND o.added = 1
         ON CONFLICT DO NOTHING",
        args![],
    )?;
    // By `cart_id`, else every open cart of the address last active at or
    // before the order; a cart that two orders close counts once, as it
    // would one by one (the second finds it ordered).
    result.marked_ordered += db.execute(
        "UPDATE carts SET status = 'ordered' FROM (
            SELECT o.cart_id AS id FROM import_orders AS o
            WHERE o.added = 1 AND o.cart_id IS NOT NULL
            UNION
            SELECT c.id FROM import_orders AS o
            JOIN carts AS c ON c.email_norm = o.email_norm AND c.updated_at <= o.created_at
            WHERE o.added = 1 AND o.cart_id IS NULL AND c.status = 'open'
         ) AS closed
         WHERE carts.id = closed.id AND carts.status = 'open'",
        args![],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CartStatus;
    use crate::store::carts::tests::{all_carts, cart, dump, forgotten};
    use crate::store::from_unix;
    use crate::store::testing::both_stores;

    fn order(id: &str, email: &str, cart_id: Option<&str>, at: i64, skus: &[&str]) -> Order {
        Order {
            id: id.into(),
            email: email.into(),
            cart_id: cart_id.map(Into::into),
            total_minor: 4200,
            currency: "EUR".parse().unwrap(),
            created_at: from_unix(at),
            skus: skus.iter().map(|sku| (*sku).into()).collect(),
        }
    }

    fn counts(done: OrderImport) -> [u64; 4] {
        [
            done.added,
            done.unchanged,
            done.marked_ordered,
            done.forgotten,
        ]
    }

    /// The same orders on both engines: the same counts (as `SQLite` always
    /// gave them), the same orders and items stored, the same carts closed.
    #[test]
    fn both_engines_import_orders_alike() {
        let mut outcomes = Vec::new();
        for (engine, store) in both_stores("recart_unit_import_orders_alike") {
            store
                .import_carts(&[
                    cart("a", "a@example.com", 100, CartStatus::Open),
                    cart("b1", "b@example.com", 100, CartStatus::Open),
                    cart("b2", "B@example.com", 200, CartStatus::Open),
                    cart("b3", "b@example.com", 110, CartStatus::Closed),
                    cart("c", "c@example.com", 100, CartStatus::Open),
                ])
                .unwrap();
            forgotten(&store, "gone@example.com");
            let batch = [
                // By cart id.
                order("o1", "a@example.com", Some("a"), 150, &["S1", "S2", "S1"]),
                // By address: the open carts last active at or before it.
                order("o2", "B@Example.com", None, 150, &["S3"]),
                // Again in the batch, for another cart: unchanged, closes
                // nothing, its items not stored.
                order("o1", "c@example.com", Some("c"), 150, &["S9"]),
                // A cart that is not stored, and one closed already by o1.
                order("o3", "x@example.com", Some("nowhere"), 150, &[]),
                order("o4", "a@example.com", None, 300, &["S4"]),
                order("o5", "Gone@example.com", None, 300, &["S5"]),
            ];
            let mut seen = vec![counts(store.import_orders(&batch).unwrap())];
            assert_eq!(seen[0], [4, 1, 2, 1], "{engine}");
            seen.push(counts(store.import_orders(&batch).unwrap()));
            assert_eq!(seen[1], [0, 5, 0, 1], "{engine}: re-import unchanged");
            let statuses = dump(&store, "SELECT id, status FROM carts ORDER BY id", 2);
            assert_eq!(
                statuses,
                [
                    r#"[Text("a"), Text("ordered")]"#,
                    r#"[Text("b1"), Text("ordered")]"#,
                    r#"[Text("b2"), Text("open")]"#,
                    r#"[Text("b3"), Text("closed")]"#,
                    r#"[Text("c"), Text("open")]"#,
                ],
                "{engine}"
            );
            let orders = dump(
                &store,
                "SELECT id, email, email_norm, cart_id, total_minor, currency, created_at
                 FROM orders ORDER BY id",
                7,
            );
            let items = dump(
                &store,
                "SELECT order_id, sku FROM order_items ORDER BY order_id, sku",
                2,
            );
            assert_eq!(orders.len(), 4, "{engine}");
            assert_eq!(
                items,
                [
                    r#"[Text("o1"), Text("S1")]"#,
                    r#"[Text("o1"), Text("S2")]"#,
                    r#"[Text("o2"), Text("S3")]"#,
                    r#"[Text("o4"), Text("S4")]"#,
                ],
                "{engine}"
            );
            outcomes.push((engine, seen, orders, all_carts(&store)));
        }
        for (engine, seen, orders, carts) in &outcomes[1..] {
            assert_eq!(seen, &outcomes[0].1, "{engine}: counts");
            assert_eq!(orders, &outcomes[0].2, "{engine}: stored orders");
            assert_eq!(carts, &outcomes[0].3, "{engine}: stored carts");
        }
    }
}
