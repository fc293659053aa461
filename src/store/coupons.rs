//! Coupon codes: imported pools, and which (cart, step) got which code.
//!
//! A code is given at most once (`code` is the key, a draw only takes a
//! row whose `cart_id` is NULL) and a (cart, step) gets at most one code
//! (`UNIQUE (cart_id, step)`): drawing again for the same (cart, step) —
//! a retry, a re-send of an `unknown` mail, a run that lost the claim —
//! returns the code it already has.

use chrono::{DateTime, Utc};

use crate::coupon::{Coupon, PoolCode};
use crate::error::Result;

use super::engine::{DbResult, Row, args};
use super::{Store, count_from_sql, from_unix, to_unix};

/// What importing a pool file did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CouponImport {
    pub added: u64,
    /// Codes already in the store (free or given): left as they are.
    pub known: u64,
}

/// How a (cart, step) without a code gets one.
#[derive(Debug, Clone, Copy)]
pub enum Draw<'a> {
    /// The free code of `pool` that expires soonest, but not before
    /// `valid_until`; codes without expiry last.
    Pool {
        pool: &'a str,
        valid_until: DateTime<Utc>,
    },
    /// This code, recorded as generated.
    Generated(&'a Coupon),
}

/// The codes of one pool (`pool` None: the generated ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStock {
    pub pool: Option<String>,
    /// Free and still valid at the time asked.
    pub free: u64,
    pub given: u64,
    /// Free but expired.
    pub expired: u64,
}

/// A code given to a (cart, step): what the shop's discount system needs
/// to honour it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCoupon {
    pub code: String,
    /// None: a generated code.
    pub pool: Option<String>,
    pub cart_id: String,
    pub step: String,
    /// The address its mail went to (the ledger's), else the cart's; empty
    /// when both are gone (pruned or forgotten).
    pub email: String,
    pub issued_at: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
    /// The ledger state of its mail; None when it has not been claimed
    /// (drawn, then not sent: it goes with the next try).
    pub mail: Option<String>,
}

fn coupon_of(row: &Row<'_>) -> DbResult<Coupon> {
    Ok(Coupon {
        code: row.get(0)?,
        expires: row.get::<Option<i64>>(1)?.map(from_unix),
    })
}

/// Drawing a free code on `SQLite`: the store has one writer at a time,
/// and ties go to the code added first (`rowid`).
const DRAW_SQLITE: &str = "UPDATE coupons SET cart_id = ?1, step = ?2, assigned_at = ?3
     WHERE code = (
        SELECT code FROM coupons
        WHERE pool = ?4 AND cart_id IS NULL
          AND (expires_at IS NULL OR expires_at >= ?5)
        ORDER BY expires_at IS NULL, expires_at, rowid
        LIMIT 1)
     RETURNING code, expires_at";

/// Drawing a free code on PostgreSQL, where workers draw at the same
/// time: a code another worker's open transaction is taking is skipped
/// (`SKIP LOCKED`) rather than waited for and then given twice; ties go
/// to the code added first (`added_seq`, `SQLite`'s `rowid`). PostgreSQL
/// sorts NULL last by itself, as `coupons_free` holds them: no sort of
/// the whole pool per draw.
const DRAW_POSTGRES: &str = "UPDATE coupons SET cart_id = ?1, step = ?2, assigned_at = ?3
     WHERE cart_id IS NULL AND code = (
        SELECT code FROM coupons
        WHERE pool = ?4 AND cart_id IS NULL
          AND (expires_at IS NULL OR expires_at >= ?5)
        ORDER BY expires_at, added_seq
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
     RETURNING code, expires_at";

impl Store {
    /// Adds the codes of a pool file; codes already known stay as they are.
    pub fn import_coupons(&self, codes: &[PoolCode], now: DateTime<Utc>) -> Result<CouponImport> {
        self.write_db(|db| {
            let mut done = CouponImport::default();
            for code in codes {
                let added = db.execute(
                    "INSERT INTO coupons (code, pool, expires_at, added_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (code) DO NOTHING",
                    args![
                        &code.code,
                        &code.pool,
                        code.expires.map(to_unix),
                        to_unix(now)
                    ],
                )?;
                if added == 1 {
                    done.added += 1;
                } else {
                    done.known += 1;
                }
            }
            Ok(done)
        })
    }

    /// The code of (cart, step): the one it already got, else a new one as
    /// `draw` says, recorded in the same atomic write. None when the pool
    /// has no usable code left. Inside a dry run's transaction, the draw
    /// is rolled back with everything else.
    pub fn coupon(
        &self,
        cart_id: &str,
        step: &str,
        draw: Draw<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Coupon>> {
        self.write_db(|db| {
            let given = db.one(
                "SELECT code, expires_at FROM coupons WHERE cart_id = ?1 AND step = ?2",
                args![cart_id, step],
                coupon_of,
            )?;
            if given.is_some() {
                return Ok(given);
            }
            match draw {
                Draw::Pool { pool, valid_until } => db.one(
                    if db.is_postgres() {
                        DRAW_POSTGRES
                    } else {
                        DRAW_SQLITE
                    },
                    args![cart_id, step, to_unix(now), pool, to_unix(valid_until)],
                    coupon_of,
                ),
                Draw::Generated(coupon) => {
                    db.execute(
                        "INSERT INTO coupons (code, pool, expires_at, added_at, cart_id, step, assigned_at)
                         VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?3)",
                        args![
                            &coupon.code,
                            coupon.expires.map(to_unix),
                            to_unix(now),
                            cart_id,
                            step
                        ],
                    )?;
                    Ok(Some(coupon.clone()))
                }
            }
        })
    }

    /// Free, given and expired codes per pool (the generated codes as pool
    /// None, last), by pool name.
    pub fn coupon_stock(&self, now: DateTime<Utc>) -> Result<Vec<PoolStock>> {
        let mut stock = Vec::new();
        self.db()
            .each(
                "SELECT pool,
                        COUNT(*) FILTER (WHERE cart_id IS NULL AND (expires_at IS NULL OR expires_at >= ?1)),
                        COUNT(*) FILTER (WHERE cart_id IS NOT NULL),
                        COUNT(*) FILTER (WHERE cart_id IS NULL AND expires_at < ?1)
                 FROM coupons GROUP BY pool ORDER BY pool IS NULL, pool",
                args![to_unix(now)],
                |row| {
                    stock.push(PoolStock {
                        pool: row.get(0)?,
                        free: count_from_sql(row.get(1)?),
                        given: count_from_sql(row.get(2)?),
                        expired: count_from_sql(row.get(3)?),
                    });
                    Ok(())
                },
            )
            .map_err(|source| self.error(source))?;
        Ok(stock)
    }

    /// The codes given to carts, issued at or after `since` (all when
    /// None), oldest first.
    pub fn issued_coupons(&self, since: Option<DateTime<Utc>>) -> Result<Vec<IssuedCoupon>> {
        let mut issued = Vec::new();
        self.db()
            .each(
                "SELECT k.code, k.pool, k.cart_id, k.step,
                        COALESCE(NULLIF(s.email, ''), c.email, ''),
                        k.assigned_at, k.expires_at, s.state
                 FROM coupons AS k
                 LEFT JOIN sends AS s ON s.cart_id = k.cart_id AND s.step = k.step
                 LEFT JOIN carts AS c ON c.id = k.cart_id
                 WHERE k.cart_id IS NOT NULL AND k.assigned_at >= ?1
                 ORDER BY k.assigned_at, k.code",
                args![since.map_or(i64::MIN, to_unix)],
                |row| {
                    issued.push(IssuedCoupon {
                        code: row.get(0)?,
                        pool: row.get(1)?,
                        cart_id: row.get(2)?,
                        step: row.get(3)?,
                        email: row.get(4)?,
                        issued_at: from_unix(row.get(5)?),
                        expires: row.get::<Option<i64>>(6)?.map(from_unix),
                        mail: row.get(7)?,
                    });
                    Ok(())
                },
            )
            .map_err(|source| self.error(source))?;
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupon::DEFAULT_POOL;
    use crate::store::testing::{both_stores, postgres_store};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn now() -> DateTime<Utc> {
        at("2026-11-21T12:00:00Z")
    }

    fn pool_code(code: &str, expires: Option<&str>) -> PoolCode {
        PoolCode {
            code: code.into(),
            pool: DEFAULT_POOL.into(),
            expires: expires.map(at),
        }
    }

    fn draw() -> Draw<'static> {
        Draw::Pool {
            pool: DEFAULT_POOL,
            valid_until: now() + crate::coupon::MIN_VALIDITY,
        }
    }

    fn code(store: &Store, cart: &str, step: &str) -> Option<String> {
        store
            .coupon(cart, step, draw(), now())
            .unwrap()
            .map(|coupon| coupon.code)
    }

    /// Another connection to the PostgreSQL database `name` a test's store
    /// is on (another worker).
    fn postgres_worker(name: &str) -> Store {
        let server = std::env::var("RECART_TEST_POSTGRES").unwrap();
        crate::store::testing::connect(&format!("{}/{name}", server.trim_end_matches('/')))
    }

    #[test]
    fn a_pool_code_goes_to_one_cart_and_stays_with_it() {
        for (engine, store) in both_stores("recart_unit_coupons_draw") {
            let codes = [
                pool_code("NEVER", None),
                pool_code("LATE", Some("2027-01-01T00:00:00Z")),
                pool_code("SOON", Some("2026-11-30T00:00:00Z")),
                // Expires within a day of the run: never given out.
                pool_code("DYING", Some("2026-11-22T06:00:00Z")),
                pool_code("DEAD", Some("2026-11-01T00:00:00Z")),
            ];
            let done = store.import_coupons(&codes, now()).unwrap();
            assert_eq!(done, CouponImport { added: 5, known: 0 }, "{engine}");
            // Importing the same codes again adds nothing.
            let again = store.import_coupons(&codes[..2], now()).unwrap();
            assert_eq!(again, CouponImport { added: 0, known: 2 }, "{engine}");

            // Soonest to expire first, codes without expiry last.
            assert_eq!(
                code(&store, "C1", "72h").as_deref(),
                Some("SOON"),
                "{engine}"
            );
            // The same (cart, step) again: the same code, nothing new drawn.
            assert_eq!(
                code(&store, "C1", "72h").as_deref(),
                Some("SOON"),
                "{engine}"
            );
            assert_eq!(
                code(&store, "C2", "72h").as_deref(),
                Some("LATE"),
                "{engine}"
            );
            // Another step of the same cart is another draw.
            assert_eq!(
                code(&store, "C1", "24h").as_deref(),
                Some("NEVER"),
                "{engine}"
            );
            // Only the dying and the dead codes are left: exhausted.
            assert_eq!(code(&store, "C3", "72h"), None, "{engine}");
            assert_eq!(
                code(&store, "C2", "72h").as_deref(),
                Some("LATE"),
                "{engine}"
            );

            let stock = store.coupon_stock(now()).unwrap();
            assert_eq!(
                stock,
                [PoolStock {
                    pool: Some(DEFAULT_POOL.into()),
                    // DYING is still valid now, though too short-lived to give.
                    free: 1,
                    given: 3,
                    expired: 1,
                }],
                "{engine}"
            );
            // No code belongs to two carts.
            let owners: i64 = store
                .db()
                .value(
                    "SELECT COUNT(*) FROM coupons WHERE cart_id IS NOT NULL",
                    args![],
                )
                .unwrap();
            assert_eq!(owners, 3, "{engine}");
        }
    }

    #[test]
    fn codes_that_expire_together_go_in_the_order_they_were_added() {
        for (engine, store) in both_stores("recart_unit_coupons_ties") {
            let codes: Vec<PoolCode> = ["Z", "B", "Y", "A"]
                .iter()
                .map(|code| pool_code(code, None))
                .chain(
                    ["Q", "P"]
                        .iter()
                        .map(|code| pool_code(code, Some("2026-12-31T00:00:00Z"))),
                )
                .collect();
            store.import_coupons(&codes, now()).unwrap();
            let drawn: Vec<Option<String>> = (1..=7)
                .map(|cart| code(&store, &format!("C{cart}"), "72h"))
                .collect();
            let expected = ["Q", "P", "Z", "B", "Y", "A"]
                .map(|code| Some(code.to_string()))
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>();
            assert_eq!(drawn, expected, "{engine}");
        }
    }

    #[test]
    fn pools_are_apart() {
        for (engine, store) in both_stores("recart_unit_coupons_pools") {
            let mut vip = pool_code("VIP-1", None);
            vip.pool = "vip".into();
            store.import_coupons(&[vip], now()).unwrap();
            assert_eq!(code(&store, "C1", "72h"), None, "{engine}");
            let coupon = store
                .coupon(
                    "C1",
                    "72h",
                    Draw::Pool {
                        pool: "vip",
                        valid_until: now(),
                    },
                    now(),
                )
                .unwrap();
            assert_eq!(coupon.map(|c| c.code).as_deref(), Some("VIP-1"), "{engine}");
        }
    }

    /// A dry run draws on its own connection, in a transaction it never
    /// commits.
    fn dry_run_leaves_the_pool(store: &Store, dry: &Store) {
        store
            .import_coupons(&[pool_code("ONLY", None)], now())
            .unwrap();
        dry.begin_discarded().unwrap();
        assert_eq!(code(dry, "C1", "72h").as_deref(), Some("ONLY"));
        // Within the dry run, the code is taken.
        assert_eq!(code(dry, "C2", "72h"), None);
    }

    #[test]
    fn a_dry_run_leaves_the_pool_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recart.db");
        let store = Store::open(&path).unwrap();
        dry_run_leaves_the_pool(&store, &Store::open(&path).unwrap());
        // Rolled back: the next run finds the code free.
        assert_eq!(code(&store, "C2", "72h").as_deref(), Some("ONLY"));

        let name = "recart_unit_coupons_dry";
        if let Some(store) = postgres_store(name) {
            dry_run_leaves_the_pool(&store, &postgres_worker(name));
            assert_eq!(code(&store, "C2", "72h").as_deref(), Some("ONLY"));
        }
    }

    /// On PostgreSQL a worker does not wait for the code another worker's
    /// open transaction is taking, nor take it too: it takes the next one.
    #[test]
    fn a_code_being_drawn_by_another_worker_is_passed_over() {
        let name = "recart_unit_coupons_locked";
        let Some(first) = postgres_store(name) else {
            return;
        };
        first
            .import_coupons(&[pool_code("ONE", None), pool_code("TWO", None)], now())
            .unwrap();
        let second = postgres_worker(name);
        // Without SKIP LOCKED the second worker would wait for the first:
        // fail at once instead of hanging the test.
        second.db().batch("SET lock_timeout = '5s'").unwrap();
        first.db().begin().unwrap();
        assert_eq!(code(&first, "C1", "72h").as_deref(), Some("ONE"));
        assert_eq!(code(&second, "C2", "72h").as_deref(), Some("TWO"));
        // Nothing is left while the first still holds ONE.
        assert_eq!(code(&second, "C3", "72h"), None);
        first.db().end(true).unwrap();
        let issued: Vec<(String, String)> = first
            .issued_coupons(None)
            .unwrap()
            .into_iter()
            .map(|coupon| (coupon.code, coupon.cart_id))
            .collect();
        assert_eq!(
            issued,
            [("ONE".into(), "C1".into()), ("TWO".into(), "C2".into())]
        );
    }

    #[test]
    fn workers_drawing_at_once_never_share_a_code() {
        const PER_WORKER: usize = 40;
        let name = "recart_unit_coupons_workers";
        let Some(store) = postgres_store(name) else {
            return;
        };
        // One code more than both take: nobody runs out.
        let codes: Vec<PoolCode> = (0..=2 * PER_WORKER)
            .map(|n| pool_code(&format!("CODE-{n:03}"), None))
            .collect();
        store.import_coupons(&codes, now()).unwrap();
        let start = std::sync::Barrier::new(2);
        let drawn: Vec<String> = std::thread::scope(|scope| {
            let workers: Vec<_> = ["A", "B"]
                .into_iter()
                .map(|worker| {
                    let start = &start;
                    scope.spawn(move || {
                        let store = postgres_worker(name);
                        start.wait();
                        (0..PER_WORKER)
                            .map(|cart| {
                                code(&store, &format!("{worker}{cart}"), "72h")
                                    .expect("a free code")
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().unwrap())
                .collect()
        });
        let distinct: std::collections::BTreeSet<&String> = drawn.iter().collect();
        assert_eq!(distinct.len(), 2 * PER_WORKER, "{drawn:?}");
        let stock = store.coupon_stock(now()).unwrap();
        assert_eq!((stock[0].given, stock[0].free), (2 * PER_WORKER as u64, 1));
    }

    #[test]
    fn issued_codes_are_listed_with_their_cart_step_and_address() {
        for (engine, store) in both_stores("recart_unit_coupons_issued") {
            store
                .import_coupons(
                    &[
                        pool_code("POOL-1", Some("2026-12-31T00:00:00Z")),
                        pool_code("FREE", None),
                    ],
                    now(),
                )
                .unwrap();
            assert_eq!(
                code(&store, "C1", "72h").as_deref(),
                Some("POOL-1"),
                "{engine}"
            );
            let later = at("2026-11-22T12:00:00Z");
            let generated = Coupon {
                code: "GEN-1".into(),
                expires: Some(at("2026-11-23T00:00:00Z")),
            };
            store
                .coupon("C2", "24h", Draw::Generated(&generated), later)
                .unwrap();
            let all = store.issued_coupons(None).unwrap();
            let listed: Vec<(&str, Option<&str>, &str, &str, &str)> = all
                .iter()
                .map(|c| {
                    (
                        c.code.as_str(),
                        c.pool.as_deref(),
                        c.cart_id.as_str(),
                        c.step.as_str(),
                        c.email.as_str(),
                    )
                })
                .collect();
            // Oldest first; the free code is not issued; no cart stored: no address.
            assert_eq!(
                listed,
                [
                    ("POOL-1", Some(DEFAULT_POOL), "C1", "72h", ""),
                    ("GEN-1", None, "C2", "24h", "")
                ],
                "{engine}"
            );
            assert_eq!(all[0].issued_at, now(), "{engine}");
            assert_eq!(all[1].expires, generated.expires, "{engine}");
            assert_eq!(all[1].mail, None, "{engine}");
            let since = store.issued_coupons(Some(later)).unwrap();
            assert_eq!(since.len(), 1, "{engine}");
            assert_eq!(since[0].code, "GEN-1", "{engine}");

            // Its mail sent: the ledger's address and state.
            store
                .db()
                .batch(
                    "INSERT INTO sends (cart_id, step, email, email_norm, state, run_id, attempts,
                                        claimed_at)
                     VALUES ('C1', '72h', 'Ann@x.example', 'ann@x.example', 'sent', 1, 1, 0)",
                )
                .unwrap();
            let first = &store.issued_coupons(None).unwrap()[0];
            assert_eq!(
                (first.email.as_str(), first.mail.as_deref()),
                ("Ann@x.example", Some("sent")),
                "{engine}"
            );
        }
    }

    #[test]
    fn generated_codes_are_recorded_once() {
        for (engine, store) in both_stores("recart_unit_coupons_generated") {
            let first = Coupon {
                code: "COMEBACK-ABC".into(),
                expires: Some(at("2026-11-28T12:00:00Z")),
            };
            let got = store
                .coupon("C1", "72h", Draw::Generated(&first), now())
                .unwrap();
            assert_eq!(got.as_ref(), Some(&first), "{engine}");
            // A later run (another `now`, another expiry): the first one stands.
            let later = Coupon {
                code: "COMEBACK-ABC".into(),
                expires: Some(at("2026-12-01T12:00:00Z")),
            };
            let got = store
                .coupon(
                    "C1",
                    "72h",
                    Draw::Generated(&later),
                    at("2026-11-24T12:00:00Z"),
                )
                .unwrap();
            assert_eq!(got, Some(first), "{engine}");
            let stock = store.coupon_stock(now()).unwrap();
            assert_eq!(
                stock,
                [PoolStock {
                    pool: None,
                    free: 0,
                    given: 1,
                    expired: 0
                }],
                "{engine}"
            );
        }
    }
}
