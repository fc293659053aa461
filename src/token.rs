//! Signed link tokens: the recovery and unsubscribe links carry a token
//! that binds (cart, address, step, expiry) under an HMAC-SHA256 key, so
//! links cannot be forged or pointed at someone else's cart.
//!
//! Scheme (documented for shops' web apps): `token = B64(payload) "." B64(mac)`
//! where B64 is URL-safe base64 without padding, `payload` is the UTF-8 text
//! `v1\n<cart_id>\n<lower-cased email>\n<step>\n<expiry unix seconds>`, and
//! `mac = HMAC-SHA256(key, payload bytes)`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a token binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub cart_id: String,
    pub email: String,
    pub step: String,
    pub expires: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("forged token: the signature does not match")]
    Forged,
    #[error("expired token: it expired at {0}")]
    Expired(DateTime<Utc>),
}

pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(key: &[u8]) -> Signer {
        Signer { key: key.to_vec() }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = format!(
            "v1\n{}\n{}\n{}\n{}",
            claims.cart_id,
            claims.email.to_lowercase(),
            claims.step,
            claims.expires.timestamp()
        );
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let (payload, signature) = token.trim().split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::Forged)?;
        let text = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let fields: Vec<&str> = text.split('\n').collect();
        let [version, cart_id, email, step, expires] = fields[..] else {
            return Err(TokenError::Malformed);
        };
        if version != "v1" {
            return Err(TokenError::Malformed);
        }
        let expires = expires
            .parse::<i64>()
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .ok_or(TokenError::Malformed)?;
        if now > expires {
            return Err(TokenError::Expired(expires));
        }
        Ok(Claims {
            cart_id: cart_id.into(),
            email: email.into(),
            step: step.into(),
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            cart_id: "C1".into(),
            email: "ann@example.com".into(),
            step: "1h".into(),
            expires: DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn tokens_round_trip_and_resist_tampering() {
        let signer = Signer::new(b"key");
        let token = signer.sign(&claims());
        let before = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        assert_eq!(signer.verify(&token, before), Ok(claims()));
        assert_eq!(
            Signer::new(b"other").verify(&token, before),
            Err(TokenError::Forged)
        );
        let after = DateTime::from_timestamp(2_000_000_001, 0).unwrap();
        assert!(matches!(
            signer.verify(&token, after),
            Err(TokenError::Expired(_))
        ));
        assert_eq!(signer.verify("garbage", before), Err(TokenError::Malformed));
        let (payload, mac) = token.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("v1\nC2\nann@example.com\n1h\n2000000000");
        assert_ne!(payload, forged_payload);
        assert_eq!(
            signer.verify(&format!("{forged_payload}.{mac}"), before),
            Err(TokenError::Forged)
        );
    }
}
