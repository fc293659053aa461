//! Coupon codes: imported pools, and which (cart, step) got which code.
//!
//! A code is given at most once (`code` is the key, a draw only takes a
//! row whose `cart_id` is NULL) and a (cart, step) gets at most one code
//! (`UNIQUE (cart_id, step)`): drawing again for the same (cart, step) —
//! a retry, a re-send of an `unknown` mail, a run that lost the claim —
//! returns the code it already has.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::coupon::{Coupon, PoolCode};
use crate::error::Result;

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

fn coupon_of(code: String, expires: Option<i64>) -> Coupon {
    Coupon {
        code,
        expires: expires.map(from_unix),
    }
}

impl Store {
    /// Adds the codes of a pool file; codes already known stay as they are.
    pub fn import_coupons(&self, codes: &[PoolCode], now: DateTime<Utc>) -> Result<CouponImport> {
        self.write(|conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO coupons (code, pool, expires_at, added_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (code) DO NOTHING",
            )?;
            let mut done = CouponImport::default();
            for code in codes {
                let added = insert.execute(params![
                    code.code,
                    code.pool,
                    code.expires.map(to_unix),
                    to_unix(now)
                ])?;
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
        self.write(|conn| {
            let given = conn
                .prepare_cached("SELECT code, expires_at FROM coupons WHERE cart_id = ?1 AND step = ?2")?
                .query_row(params![cart_id, step], |row| {
                    Ok(coupon_of(row.get(0)?, row.get(1)?))
                })
                .optional()?;
            if given.is_some() {
                return Ok(given);
            }
            match draw {
                Draw::Pool { pool, valid_until } => conn
                    .prepare_cached(
                        "UPDATE coupons SET cart_id = ?1, step = ?2, assigned_at = ?3
                         WHERE code = (
                            SELECT code FROM coupons
                            WHERE pool = ?4 AND cart_id IS NULL
                              AND (expires_at IS NULL OR expires_at >= ?5)
                            ORDER BY expires_at IS NULL, expires_at, rowid
                            LIMIT 1)
                         RETURNING code, expires_at",
                    )?
                    .query_row(
                        params![cart_id, step, to_unix(now), pool, to_unix(valid_until)],
                        |row| Ok(coupon_of(row.get(0)?, row.get(1)?)),
                    )
                    .optional(),
                Draw::Generated(coupon) => {
                    conn.prepare_cached(
                        "INSERT INTO coupons (code, pool, expires_at, added_at, cart_id, step, assigned_at)
                         VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?3)",
                    )?
                    .execute(params![
                        coupon.code,
                        coupon.expires.map(to_unix),
                        to_unix(now),
                        cart_id,
                        step
                    ])?;
                    Ok(Some(coupon.clone()))
                }
            }
        })
    }

    /// Free, given and expired codes per pool (the generated codes as pool
    /// None, last), by pool name.
    pub fn coupon_stock(&self, now: DateTime<Utc>) -> Result<Vec<PoolStock>> {
        let run = || -> rusqlite::Result<Vec<PoolStock>> {
            let mut query = self.conn().prepare(
                "SELECT pool,
                        COUNT(*) FILTER (WHERE cart_id IS NULL AND (expires_at IS NULL OR expires_at >= ?1)),
                        COUNT(*) FILTER (WHERE cart_id IS NOT NULL),
                        COUNT(*) FILTER (WHERE cart_id IS NULL AND expires_at < ?1)
                 FROM coupons GROUP BY pool ORDER BY pool IS NULL, pool",
            )?;
            query
                .query_map([to_unix(now)], |row| {
                    Ok(PoolStock {
                        pool: row.get(0)?,
                        free: count_from_sql(row.get(1)?),
                        given: count_from_sql(row.get(2)?),
                        expired: count_from_sql(row.get(3)?),
                    })
                })?
                .collect()
        };
        run().map_err(|source| self.error(source))
    }

    /// The codes given to carts, issued at or after `since` (all when
    /// None), oldest first.
    pub fn issued_coupons(&self, since: Option<DateTime<Utc>>) -> Result<Vec<IssuedCoupon>> {
        let run = || -> rusqlite::Result<Vec<IssuedCoupon>> {
            let mut query = self.conn().prepare(
                "SELECT k.code, k.pool, k.cart_id, k.step,
                        COALESCE(NULLIF(s.email, ''), c.email, ''),
                        k.assigned_at, k.expires_at, s.state
                 FROM coupons AS k
                 LEFT JOIN sends AS s ON s.cart_id = k.cart_id AND s.step = k.step
                 LEFT JOIN carts AS c ON c.id = k.cart_id
                 WHERE k.cart_id IS NOT NULL AND k.assigned_at >= ?1
                 ORDER BY k.assigned_at, k.code",
            )?;
            query
                .query_map([since.map_or(i64::MIN, to_unix)], |row| {
                    Ok(IssuedCoupon {
                        code: row.get(0)?,
                        pool: row.get(1)?,
                        cart_id: row.get(2)?,
                        step: row.get(3)?,
                        email: row.get(4)?,
                        issued_at: from_unix(row.get(5)?),
                        expires: row.get::<_, Option<i64>>(6)?.map(from_unix),
                        mail: row.get(7)?,
                    })
                })?
                .collect()
        };
        run().map_err(|source| self.error(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupon::DEFAULT_POOL;

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

    #[test]
    fn a_pool_code_goes_to_one_cart_and_stays_with_it() {
        let store = Store::open_in_memory().unwrap();
        let codes = [
            pool_code("NEVER", None),
            pool_code("LATE", Some("2027-01-01T00:00:00Z")),
            pool_code("SOON", Some("2026-11-30T00:00:00Z")),
            // Expires within a day of the run: never given out.
            pool_code("DYING", Some("2026-11-22T06:00:00Z")),
            pool_code("DEAD", Some("2026-11-01T00:00:00Z")),
        ];
        let done = store.import_coupons(&codes, now()).unwrap();
        assert_eq!(done, CouponImport { added: 5, known: 0 });
        // Importing the same codes again adds nothing.
        let again = store.import_coupons(&codes[..2], now()).unwrap();
        assert_eq!(again, CouponImport { added: 0, known: 2 });

        // Soonest to expire first, codes without expiry last.
        assert_eq!(code(&store, "C1", "72h").as_deref(), Some("SOON"));
        // The same (cart, step) again: the same code, nothing new drawn.
        assert_eq!(code(&store, "C1", "72h").as_deref(), Some("SOON"));
        assert_eq!(code(&store, "C2", "72h").as_deref(), Some("LATE"));
        // Another step of the same cart is another draw.
        assert_eq!(code(&store, "C1", "24h").as_deref(), Some("NEVER"));
        // Only the dying and the dead codes are left: exhausted.
        assert_eq!(code(&store, "C3", "72h"), None);
        assert_eq!(code(&store, "C2", "72h").as_deref(), Some("LATE"));

        let stock = store.coupon_stock(now()).unwrap();
        assert_eq!(
            stock,
            [PoolStock {
                pool: Some(DEFAULT_POOL.into()),
                // DYING is still valid now, though too short-lived to give.
                free: 1,
                given: 3,
                expired: 1,
            }]
        );
        // No code belongs to two carts.
        let owners: i64 = store
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM coupons WHERE cart_id IS NOT NULL",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(owners, 3);
    }

    #[test]
    fn pools_are_apart() {
        let store = Store::open_in_memory().unwrap();
        let mut vip = pool_code("VIP-1", None);
        vip.pool = "vip".into();
        store.import_coupons(&[vip], now()).unwrap();
        assert_eq!(code(&store, "C1", "72h"), None);
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
        assert_eq!(coupon.map(|c| c.code).as_deref(), Some("VIP-1"));
    }

    #[test]
    fn a_dry_run_leaves_the_pool_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recart.db");
        let store = Store::open(&path).unwrap();
        store
            .import_coupons(&[pool_code("ONLY", None)], now())
            .unwrap();
        {
            let dry = Store::open(&path).unwrap();
            dry.begin_discarded().unwrap();
            assert_eq!(code(&dry, "C1", "72h").as_deref(), Some("ONLY"));
            // Within the dry run, the code is taken.
            assert_eq!(code(&dry, "C2", "72h"), None);
        }
        // Rolled back: the next run finds the code free.
        assert_eq!(code(&store, "C2", "72h").as_deref(), Some("ONLY"));
    }

    #[test]
    fn issued_codes_are_listed_with_their_cart_step_and_address() {
        let store = Store::open_in_memory().unwrap();
        store
            .import_coupons(
                &[
                    pool_code("POOL-1", Some("2026-12-31T00:00:00Z")),
                    pool_code("FREE", None),
                ],
                now(),
            )
            .unwrap();
        assert_eq!(code(&store, "C1", "72h").as_deref(), Some("POOL-1"));
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
            ]
        );
        assert_eq!(all[0].issued_at, now());
        assert_eq!(all[1].expires, generated.expires);
        assert_eq!(all[1].mail, None);
        let since = store.issued_coupons(Some(later)).unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].code, "GEN-1");
    }

    #[test]
    fn generated_codes_are_recorded_once() {
        let store = Store::open_in_memory().unwrap();
        let first = Coupon {
            code: "COMEBACK-ABC".into(),
            expires: Some(at("2026-11-28T12:00:00Z")),
        };
        let got = store
            .coupon("C1", "72h", Draw::Generated(&first), now())
            .unwrap();
        assert_eq!(got.as_ref(), Some(&first));
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
        assert_eq!(got, Some(first));
        let stock = store.coupon_stock(now()).unwrap();
        assert_eq!(
            stock,
            [PoolStock {
                pool: None,
                free: 0,
                given: 1,
                expired: 0
            }]
        );
    }
}
