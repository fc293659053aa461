//! Signed link tokens: the recovery and unsubscribe links carry a token
//! that binds (cart, address, step, expiry) under an HMAC-SHA256 key, so
//! links cannot be forged or pointed at someone else's cart.
//!
//! Scheme v2 (documented in README for shops' web apps):
//! `token = B64(payload) "." B64(mac)` where B64 is URL-safe base64 without
//! padding, `payload` is the UTF-8 text
//! `v2\n<cart_id>\n<step>\n<expiry unix seconds>` and
//! `mac = HMAC-SHA256(key, "v2\n<cart_id>\n<lower-cased email>\n<step>\n<expiry>")`.
//!
//! The address is bound by the MAC but not carried: a link in a shop's
//! access log, a Referer header or an analytics tool does not reveal who it
//! was sent to. Whoever verifies looks the address up by the cart id (the
//! shop in its own database, `recart` in its store).
//!
//! Scheme v1 (the first release) carried the address in the payload:
//! `v1\n<cart_id>\n<email>\n<step>\n<expiry>`, MAC over the payload. Such
//! tokens are still verified, never made.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The step an unsubscribe token names: it unsubscribes the address, not
/// one reminder.
pub const UNSUBSCRIBE: &str = "unsubscribe";

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

/// A token read but not yet verified: what its payload says. A v2 token
/// does not carry the address; the verifier supplies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub cart_id: String,
    /// The address, for v1 tokens only.
    pub email: Option<String>,
    pub step: String,
    pub expires: DateTime<Utc>,
    version: Version,
    payload: Vec<u8>,
    mac: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl Unverified {
    /// Reads a token's payload without checking its signature.
    pub fn parse(token: &str) -> Result<Unverified, TokenError> {
        let (payload, mac) = token.trim().split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Malformed)?;
        let text = std::str::from_utf8(&payload).map_err(|_| TokenError::Malformed)?;
        let fields: Vec<&str> = text.split('\n').collect();
        let (version, cart_id, email, step, expires) = match fields[..] {
            ["v1", cart_id, email, step, expires] => {
                (Version::V1, cart_id, Some(email), step, expires)
            }
            ["v2", cart_id, step, expires] => (Version::V2, cart_id, None, step, expires),
            _ => return Err(TokenError::Malformed),
        };
        let expires = expires
            .parse::<i64>()
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .ok_or(TokenError::Malformed)?;
        let (cart_id, email, step) = (
            cart_id.to_string(),
            email.map(str::to_string),
            step.to_string(),
        );
        Ok(Unverified {
            cart_id,
            email,
            step,
            expires,
            version,
            payload,
            mac,
        })
    }

    /// Checks the signature against `email` (ignored for v1 tokens, which
    /// carry their own), but not the expiry.
    pub fn authenticate(&self, signer: &Signer, email: &str) -> Result<Claims, TokenError> {
        let email = match (&self.email, self.version) {
            (Some(own), Version::V1) => own.clone(),
            _ => email.to_lowercase(),
        };
        let signed = match self.version {
            Version::V1 => self.payload.clone(),
            Version::V2 => mac_input(&self.cart_id, &email, &self.step, self.expires).into_bytes(),
        };
        let mut mac = signer.mac();
        mac.update(&signed);
        mac.verify_slice(&self.mac)
            .map_err(|_| TokenError::Forged)?;
        Ok(Claims {
            cart_id: self.cart_id.clone(),
            email,
            step: self.step.clone(),
            expires: self.expires,
        })
    }

    /// Signature, then expiry.
    pub fn verify(
        &self,
        signer: &Signer,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        let claims = self.authenticate(signer, email)?;
        if now > claims.expires {
            return Err(TokenError::Expired(claims.expires));
        }
        Ok(claims)
    }
}

fn mac_input(cart_id: &str, email: &str, step: &str, expires: DateTime<Utc>) -> String {
    format!(
        "v2\n{cart_id}\n{}\n{step}\n{}",
        email.to_lowercase(),
        expires.timestamp()
    )
}

pub struct Signer {
    /// The HMAC with the key absorbed once; each MAC starts from a copy.
    keyed: HmacSha256,
}

impl Signer {
    pub fn new(key: &[u8]) -> Signer {
        Signer {
            keyed: HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"),
        }
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }

    /// HMAC-SHA256 of `data` under the key, for other derived values
    /// (generated coupon codes). Callers put a purpose of their own first
    /// (`coupon\n…`), so nothing derived can pass for a token's MAC, whose
    /// input starts with `v2\n`.
    pub fn mac_of(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// A v2 token. Cart ids and step names must not contain a newline
    /// (the store and the config guarantee it).
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = format!(
            "v2\n{}\n{}\n{}",
            claims.cart_id,
            claims.step,
            claims.expires.timestamp()
        );
        let mut mac = self.mac();
        mac.update(
            mac_input(&claims.cart_id, &claims.email, &claims.step, claims.expires).as_bytes(),
        );
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// Reads and verifies a token for the address it was sent to.
    pub fn verify(
        &self,
        token: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        Unverified::parse(token)?.verify(self, email, now)
    }
}

/// The 16 bytes that name a (cart, step) send: the first half of
/// SHA-256 of `<cart_id> NUL <step>`. Its hex is the local part of the
/// mail's Message-ID (`deliver::message_id`) and the start of its
/// return-path token.
pub fn send_digest(cart_id: &str, step: &str) -> [u8; 16] {
    use sha2::Digest as _;
    let digest = Sha256::new()
        .chain_update(cart_id)
        .chain_update([0])
        .chain_update(step)
        .finalize();
    digest[..16].try_into().expect("16 of 32 bytes")
}

/// Return-path (VERP) tokens, the `{token}` of `transport.return_path`:
/// 48 lower-case hex digits, the send's digest ([`send_digest`], 32
/// digits) then the first 8 bytes of
/// `HMAC-SHA256(key, "return-path\n" <digest>)` (16 digits). Short enough
/// for a local part (64 octets), of one case (some servers lower-case
/// addresses), and signed with the links' key, so that a bounce to a made
/// up address cannot suppress anyone.
pub fn return_path_token(signer: &Signer, cart_id: &str, step: &str) -> String {
    let digest = send_digest(cart_id, step);
    let mut token = hex::encode(digest);
    token.push_str(&hex::encode(&return_path_mac(signer, &digest)[..8]));
    token
}

/// The length of a return-path token.
pub const RETURN_PATH_TOKEN_LEN: usize = 48;

/// The send digest (as 32 hex digits) a return-path token names, if it
/// is one this key signed.
pub fn verify_return_path_token(signer: &Signer, token: &str) -> Option<String> {
    let token = token.to_ascii_lowercase();
    if token.len() != RETURN_PATH_TOKEN_LEN {
        return None;
    }
    let digest: [u8; 16] = hex::decode(&token[..32]).ok()?.try_into().ok()?;
    let mac = hex::decode(&token[32..]).ok()?;
    let expected = return_path_mac(signer, &digest);
    // Compared in constant time, as the link MACs are.
    let mut differ = 0;
    for (a, b) in mac.iter().zip(&expected[..8]) {
        differ |= a ^ b;
    }
    (differ == 0 && mac.len() == 8).then(|| token[..32].to_string())
}

fn return_path_mac(signer: &Signer, digest: &[u8; 16]) -> [u8; 32] {
    let mut input = Vec::with_capacity(12 + 16);
    input.extend_from_slice(b"return-path\n");
    input.extend_from_slice(digest);
    signer.mac_of(&input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_tokens_name_the_send_and_resist_forgery() {
        let signer = Signer::new(b"key");
        let token = return_path_token(&signer, "C1", "1h");
        assert_eq!(token.len(), RETURN_PATH_TOKEN_LEN);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        // The digest is the Message-ID's (see deliver's stable ids).
        assert_eq!(&token[..32], "6000aee29d7c7feb02cd5206ad96832f");
        assert_eq!(
            verify_return_path_token(&signer, &token).as_deref(),
            Some(&token[..32])
        );
        // A server that upper-cases the address changes nothing.
        assert!(verify_return_path_token(&signer, &token.to_uppercase()).is_some());
        assert_eq!(
            verify_return_path_token(&Signer::new(b"other"), &token),
            None
        );
        // Another send's digest under this MAC.
        let other = return_path_token(&signer, "C2", "1h");
        let forged = format!("{}{}", &other[..32], &token[32..]);
        assert_eq!(verify_return_path_token(&signer, &forged), None);
        for garbage in ["", "zz", &token[..47], &format!("{token}0")] {
            assert_eq!(
                verify_return_path_token(&signer, garbage),
                None,
                "{garbage}"
            );
        }
    }

    fn claims() -> Claims {
        Claims {
            cart_id: "C1".into(),
            email: "ann@example.com".into(),
            step: "1h".into(),
            expires: DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
        }
    }

    fn before() -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_resist_tampering() {
        let signer = Signer::new(b"key");
        let token = signer.sign(&claims());
        let email = "ann@example.com";
        assert_eq!(signer.verify(&token, email, before()), Ok(claims()));
        // Upper case in the address binds the same.
        assert_eq!(
            signer.verify(&token, "Ann@Example.com", before()),
            Ok(claims())
        );
        assert_eq!(
            Signer::new(b"other").verify(&token, email, before()),
            Err(TokenError::Forged)
        );
        // Someone else's address: the MAC binds it.
        assert_eq!(
            signer.verify(&token, "eve@example.com", before()),
            Err(TokenError::Forged)
        );
        let after = DateTime::from_timestamp(2_000_000_001, 0).unwrap();
        assert_eq!(
            signer.verify(&token, email, after),
            Err(TokenError::Expired(claims().expires))
        );
        // Expiry is checked after the signature: a forged token with a
        // past expiry is forged, not expired.
        assert_eq!(
            Signer::new(b"other").verify(&token, email, after),
            Err(TokenError::Forged)
        );
        for garbage in ["garbage", "a.b", "", "..", "djI.!!"] {
            assert_eq!(
                signer.verify(garbage, email, before()),
                Err(TokenError::Malformed),
                "{garbage:?}"
            );
        }
        // Another cart, step or expiry under the same MAC.
        let (_, mac) = token.split_once('.').unwrap();
        for payload in [
            "v2\nC2\n1h\n2000000000",
            "v2\nC1\n24h\n2000000000",
            "v2\nC1\n1h\n2100000000",
        ] {
            let forged = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(payload));
            assert_eq!(
                signer.verify(&forged, email, before()),
                Err(TokenError::Forged)
            );
        }
    }

    #[test]
    fn v2_tokens_do_not_carry_the_address() {
        let token = Signer::new(b"key").sign(&claims());
        let (payload, _) = token.split_once('.').unwrap();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(payload, "v2\nC1\n1h\n2000000000");
        assert!(!token.contains("ann"));
        let unverified = Unverified::parse(&token).unwrap();
        assert_eq!(unverified.cart_id, "C1");
        assert_eq!(unverified.email, None);
    }

    /// The scheme as README documents it, computed independently.
    #[test]
    fn the_documented_scheme() {
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(b"v2\nC1\nann@example.com\n1h\n2000000000");
        let expected = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("v2\nC1\n1h\n2000000000"),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(Signer::new(b"key").sign(&claims()), expected);
    }

    #[test]
    fn v1_tokens_still_verify() {
        let payload = "v1\nC1\nann@example.com\n1h\n2000000000";
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(payload.as_bytes());
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        let unverified = Unverified::parse(&token).unwrap();
        assert_eq!(unverified.email.as_deref(), Some("ann@example.com"));
        assert_eq!(
            unverified.verify(&Signer::new(b"key"), "", before()),
            Ok(claims())
        );
        assert_eq!(
            unverified.verify(&Signer::new(b"other"), "", before()),
            Err(TokenError::Forged)
        );
    }
}
