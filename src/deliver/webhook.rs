//! The webhook channel: one signed JSON POST per cart, for the SMS or push
//! provider a shop already uses. 2xx → sent; 4xx → failed; 5xx, timeouts
//! and connection errors → retry (the body carries an idempotency key, so a
//! retry the receiver already saw is recognised there).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Outcome;

/// One POST, ready to go.
#[derive(Debug, Clone)]
pub struct WebhookCall {
    pub cart_id: String,
    pub step: String,
    pub url: String,
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Stable per (cart, step): the receiver's deduplication key.
    pub idempotency_key: String,
    /// `sha256=<hex HMAC-SHA256 of the body>`, when the step has a key.
    pub signature: Option<String>,
}

/// The `X-Recart-Signature` value for a body.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", hex::encode(digest))
}

pub struct WebhookClient {
    agent: ureq::Agent,
}

impl WebhookClient {
    pub fn new(timeout: Duration) -> WebhookClient {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent("recart")
            .build();
        WebhookClient {
            agent: config.into(),
        }
    }

    pub fn post(&self, call: &WebhookCall) -> Outcome {
        let mut request = self
            .agent
            .post(&call.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &call.idempotency_key);
        if let Some(signature) = &call.signature {
            request = request.header("X-Recart-Signature", signature);
        }
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        match request.send(&call.body[..]) {
            Ok(response) => {
                let status = response.status();
                let reason = format!("{} answered {status}", call.url);
                if status.is_success() {
                    Outcome::Sent
                } else if status.is_client_error() {
                    Outcome::Failed(reason)
                } else {
                    Outcome::Retry(reason)
                }
            }
            Err(error) => Outcome::Retry(format!("{}: {error}", call.url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
