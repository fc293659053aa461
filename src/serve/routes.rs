//! The routes and what each answers. Every store call runs on a blocking
//! thread ([`Pool::run`]); tokens are checked as `recart token verify`
//! does: the address a v2 token is bound to comes from the stored cart.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::mpsc::UnboundedSender;

use super::Clock;
use super::pages::Pages;
use super::pool::Pool;
use crate::error::Result;
use crate::store::{Recipient, Store};
use crate::token::{self, Signer, TokenError, Unverified};

/// The reason recorded with an address suppressed by its unsubscribe link.
pub const REASON: &str = "unsubscribe";

/// What the handlers share.
pub struct App {
    pub pool: Arc<Pool>,
    pub signer: Signer,
    pub pages: Pages,
    /// `links.cart`: the `{cart_id}` template of the shop's cart page.
    pub cart_url: String,
    /// `links.utm`, appended to the cart page's URL.
    pub utm: Vec<(String, String)>,
    pub clock: Clock,
    pub log: UnboundedSender<Log>,
}

/// A line for the log, written by the thread that owns the output.
pub enum Log {
    /// One request: its path without the token (`/u/…`).
    Access {
        method: Method,
        path: &'static str,
        status: u16,
        elapsed: std::time::Duration,
    },
    Error(String),
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .route("/r/{token}", get(recover))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        // A one-click body is 26 bytes; a form's a little more.
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), access_log))
        .with_state(app)
}

/// One log line per request, without what identifies a person: the token
/// is left out of the path (it leads to the cart and so to the address).
async fn access_log(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = loggable_path(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    let _ = app.log.send(Log::Access {
        method,
        path,
        status: response.status().as_u16(),
        elapsed: started.elapsed(),
    });
    response
}

fn loggable_path(path: &str) -> &'static str {
    if path.starts_with("/u/") {
        "/u/…"
    } else if path.starts_with("/r/") {
        "/r/…"
    } else if path == "/healthz" {
        "/healthz"
    } else {
        // Anything else may hold anything (a mangled link, an address).
        "/…"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unsubscribe,
    Recover,
}

/// A token checked against the store.
enum Checked {
    Valid {
        cart_id: String,
        step: String,
        recipient: Recipient,
    },
    /// Malformed, forged, of the other kind, or of a cart no longer stored
    /// (`expired` false), or expired; with the cart's locale when known.
    Refused { expired: bool, locale: String },
}

fn check(
    store: &Store,
    signer: &Signer,
    token: &str,
    now: DateTime<Utc>,
    kind: Kind,
) -> Result<Checked> {
    let refused = Checked::Refused {
        expired: false,
        locale: String::new(),
    };
    let Ok(unverified) = Unverified::parse(token) else {
        return Ok(refused);
    };
    let is_unsubscribe = unverified.step == token::UNSUBSCRIBE;
    if is_unsubscribe != (kind == Kind::Unsubscribe) {
        return Ok(refused);
    }
    // The cart must be stored, whatever the token carries: a v2 token is
    // checked against its address, and the cart of a person `forget`
    // erased is gone, so no old (v1) link writes their address back.
    let Some(stored) = store.recipient(&unverified.cart_id)? else {
        return Ok(refused);
    };
    // A v1 token carries the address it was sent to.
    let recipient = Recipient {
        email: unverified.email.clone().unwrap_or(stored.email),
        locale: stored.locale,
    };
    Ok(match unverified.verify(signer, &recipient.email, now) {
        Ok(claims) => Checked::Valid {
            cart_id: claims.cart_id,
            step: claims.step,
            recipient,
        },
        Err(TokenError::Expired(_)) => Checked::Refused {
            expired: true,
            locale: recipient.locale,
        },
        Err(TokenError::Forged | TokenError::Malformed) => refused,
    })
}

/// `GET /u/{token}`: who would be unsubscribed from what, and a button
/// that POSTs. Never unsubscribes: link scanners fetch GETs.
async fn unsubscribe_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    unsubscribe_answer(app, token, false).await
}

/// The unsubscribe page for a token (or why it is refused); with
/// `suppress` (the POST) the address is suppressed first.
async fn unsubscribe_answer(app: Arc<App>, token: String, suppress: bool) -> Response {
    let now = (app.clock)();
    let shared = Arc::clone(&app);
    let answer = app
        .pool
        .run(move |store| {
            Ok(
                match check(store, &shared.signer, &token, now, Kind::Unsubscribe)? {
                    Checked::Valid { recipient, .. } => {
                        let done = if suppress {
                            store.suppress(std::slice::from_ref(&recipient.email), REASON, now)?;
                            true
                        } else {
                            store.is_suppressed(&recipient.email)?
                        };
                        page(
                            StatusCode::OK,
                            shared
                                .pages
                                .unsubscribe(&recipient.locale, &recipient.email, done),
                        )
                    }
                    Checked::Refused { expired, locale } => {
                        refusal(&shared.pages, expired, &locale, true)
                    }
                },
            )
        })
        .await;
    answer.unwrap_or_else(|error| failure(&app, &error))
}

/// `POST /u/{token}` with `List-Unsubscribe=One-Click` (RFC 8058, from a
/// mail client or the page's button): suppresses the address. Idempotent.
async fn unsubscribe(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    if !one_click(&body) {
        return (
            StatusCode::BAD_REQUEST,
            "expected the body List-Unsubscribe=One-Click (RFC 8058)\n",
        )
            .into_response();
    }
    unsubscribe_answer(app, token, true).await
}

/// RFC 8058's body: `List-Unsubscribe=One-Click`, form-urlencoded (what
/// mail clients and the page's form send) or as a `multipart/form-data`
/// field.
fn one_click(body: &[u8]) -> bool {
    let urlencoded = url::form_urlencoded::parse(body)
        .any(|(name, value)| name.trim() == "List-Unsubscribe" && value.trim() == "One-Click");
    urlencoded || {
        let text = String::from_utf8_lossy(body);
        text.contains("name=\"List-Unsubscribe\"") && text.contains("One-Click")
    }
}

/// `GET /r/{token}`: records the click and redirects to the shop's cart
/// page, made from `links.cart` and the token's cart id alone (nothing
/// of the request goes into it: no open redirect). A HEAD is answered the
/// same, unrecorded.
async fn recover(
    State(app): State<Arc<App>>,
    method: Method,
    Path(token): Path<String>,
) -> Response {
    let now = (app.clock)();
    let shared = Arc::clone(&app);
    let answer = app
        .pool
        .run(move |store| {
            Ok(
                match check(store, &shared.signer, &token, now, Kind::Recover)? {
                    Checked::Valid { cart_id, step, .. } => {
                        let location = cart_location(&shared.cart_url, &cart_id, &shared.utm);
                        if method != Method::HEAD {
                            store.record_click(&cart_id, &step, now)?;
                        }
                        redirect(&location)
                    }
                    Checked::Refused { expired, locale } => {
                        refusal(&shared.pages, expired, &locale, false)
                    }
                },
            )
        })
        .await;
    answer.unwrap_or_else(|error| failure(&app, &error))
}

/// What may stand in a URL unencoded: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The cart page for `cart_id`: the id percent-encoded into the
/// template, `links.utm` appended to the query.
pub fn cart_location(template: &str, cart_id: &str, utm: &[(String, String)]) -> String {
    let id = utf8_percent_encode(cart_id, UNRESERVED).to_string();
    let filled = template.replace("{cart_id}", &id);
    // The config checked the template parses with an id in it; an id of
    // unreserved characters and escapes keeps it so.
    match url::Url::parse(&filled) {
        Ok(mut url) => {
            if !utm.is_empty() {
                url.query_pairs_mut().extend_pairs(utm);
            }
            url.into()
        }
        Err(_) => filled,
    }
}

/// Headers every answer about a link carries: not cached (each click is
/// counted), not indexed, and no Referer with the token in it.
fn private(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
}

fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, Body::from(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline' https:; img-src https: data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    private(&mut response);
    response
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            private(&mut response);
            response
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "bad links.cart URL\n").into_response(),
    }
}

/// A link that does not work: a page (410 if it expired, 403 otherwise)
/// that still leads to the shop.
fn refusal(pages: &Pages, expired: bool, locale: &str, unsubscribe: bool) -> Response {
    let status = if expired {
        StatusCode::GONE
    } else {
        StatusCode::FORBIDDEN
    };
    page(status, pages.invalid_link(locale, expired, unsubscribe))
}

/// The store failed: logged, and a 500 without details.
fn failure(app: &App, error: &crate::Error) -> Response {
    let _ = app.log.send(Log::Error(error.to_string()));
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cart_page_holds_the_id_encoded_and_the_utm_pairs() {
        let utm = [("utm_source".to_string(), "re cart".to_string())];
        assert_eq!(
            cart_location(
                "https://shop.example/abandoned-cart/{cart_id}",
                "C 1/../x?y#z",
                &[]
            ),
            "https://shop.example/abandoned-cart/C%201%2F..%2Fx%3Fy%23z"
        );
        assert_eq!(
            cart_location(
                "https://shop.example/cart?id={cart_id}&from=mail",
                "C-1001",
                &utm
            ),
            "https://shop.example/cart?id=C-1001&from=mail&utm_source=re+cart"
        );
        assert_eq!(
            cart_location("https://shop.example/c/{cart_id}", "Bücher", &[]),
            "https://shop.example/c/B%C3%BCcher"
        );
    }

    #[test]
    fn one_click_bodies() {
        assert!(one_click(b"List-Unsubscribe=One-Click"));
        assert!(one_click(b"List-Unsubscribe=One-Click&x=1"));
        assert!(one_click(
            b"--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n"
        ));
        assert!(!one_click(b""));
        assert!(!one_click(b"List-Unsubscribe=No"));
    }

    fn checked(store: &Store, token: &str, kind: Kind) -> Option<(String, String)> {
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        match check(store, &Signer::new(b"key"), token, now, kind).unwrap() {
            Checked::Valid {
                step, recipient, ..
            } => Some((step, recipient.email)),
            Checked::Refused { .. } => None,
        }
    }

    #[test]
    fn tokens_need_their_cart_in_the_store_and_their_own_route() {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use hmac::Mac;

        let store = Store::open_in_memory().unwrap();
        store
            .conn()
            .execute_batch(
                "INSERT INTO carts (id, email, email_norm, first_name, locale, currency, status,
                                    accepts_marketing, created_at, updated_at, total_minor,
                                    item_count, snapshot_hash)
                 VALUES ('C1', 'Ann@example.com', 'ann@example.com', 'Ann', 'de', 'EUR', 'open',
                         1, 0, 0, 100, 1, x'00')",
            )
            .unwrap();
        let expires = DateTime::from_timestamp(2_000_000_000, 0).unwrap();
        let sign = |cart_id: &str, step: &str| {
            Signer::new(b"key").sign(&token::Claims {
                cart_id: cart_id.into(),
                email: "ann@example.com".into(),
                step: step.into(),
                expires,
            })
        };
        let recover = sign("C1", "1h");
        let unsubscribe = sign("C1", token::UNSUBSCRIBE);
        assert_eq!(
            checked(&store, &recover, Kind::Recover),
            Some(("1h".into(), "Ann@example.com".into()))
        );
        assert!(checked(&store, &recover, Kind::Unsubscribe).is_none());
        assert!(checked(&store, &unsubscribe, Kind::Unsubscribe).is_some());
        assert!(checked(&store, &unsubscribe, Kind::Recover).is_none());
        assert!(checked(&store, &sign("C2", "1h"), Kind::Recover).is_none());

        // A v1 token (its address in the payload) counts while its cart is
        // stored, for the address it carries.
        let v1 = |cart_id: &str| {
            let payload = format!("v1\n{cart_id}\nold@example.com\nunsubscribe\n2000000000");
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"key").unwrap();
            mac.update(payload.as_bytes());
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(&payload),
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        };
        assert_eq!(
            checked(&store, &v1("C1"), Kind::Unsubscribe),
            Some(("unsubscribe".into(), "old@example.com".into()))
        );
        assert!(checked(&store, &v1("C2"), Kind::Unsubscribe).is_none());
    }

    #[test]
    fn logged_paths_hold_no_token() {
        assert_eq!(loggable_path("/u/djI.abc"), "/u/…");
        assert_eq!(loggable_path("/r/djI.abc"), "/r/…");
        assert_eq!(loggable_path("/healthz"), "/healthz");
        assert_eq!(loggable_path("/ann@example.com"), "/…");
    }
}
