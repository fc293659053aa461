//! DKIM signatures (RFC 6376; Ed25519, RFC 8463) of the mails recart
//! builds: the key of `[transport.dkim]`, read once per run, and the DNS
//! record that publishes its public half (`recart check` prints it).
//! lettre signs (`Message::sign`); this module reads the key files people
//! have (PKCS#1 or PKCS#8 PEM; an Ed25519 key also as base64 of its 32
//! bytes) and chooses what the signature covers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;

use crate::config::{Config, Dkim, DkimAlgorithm};
use crate::error::{Error, Result};

/// The headers a signature covers: who and what the mail is, and the
/// one-click unsubscribe (mailbox providers honour `List-Unsubscribe-Post`
/// only under a signature). A header the mail lacks (`Reply-To`) is signed
/// as absent, so it cannot be added on the way.
const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Shortest RSA key accepted (RFC 8301 forbids shorter ones).
const MIN_RSA_BITS: usize = 1024;

/// A loaded signing key.
#[derive(Debug)]
pub struct DkimKey {
    config: DkimConfig,
    /// `<selector>._domainkey.<domain>`.
    name: String,
    /// `v=DKIM1; k=…; p=…`.
    record: String,
}

impl DkimKey {
    /// Reads the key of `[transport.dkim]`, if there is one. A key that
    /// cannot be read is a configuration error naming the file.
    pub fn load(config: &Config) -> Result<Option<DkimKey>> {
        config
            .dkim
            .as_ref()
            .map(|dkim| DkimKey::read(dkim, &config.path))
            .transpose()
    }

    fn read(dkim: &Dkim, config_path: &std::path::Path) -> Result<DkimKey> {
        let file = &dkim.key_file;
        let fail = |message: String| {
            Error::config(
                config_path,
                format!("transport.dkim.key_file {}: {message}", file.display()),
            )
        };
        let text = std::fs::read_to_string(file).map_err(|error| fail(error.to_string()))?;
        let (key, public) = match dkim.algorithm {
            DkimAlgorithm::RsaSha256 => rsa_key(&text).map_err(fail)?,
            DkimAlgorithm::Ed25519Sha256 => ed25519_key(&text).map_err(fail)?,
        };
        let kind = match dkim.algorithm {
            DkimAlgorithm::RsaSha256 => "rsa",
            DkimAlgorithm::Ed25519Sha256 => "ed25519",
        };
        let headers = SIGNED_HEADERS
            .iter()
            .map(|name| HeaderName::new_from_ascii_str(name))
            .collect();
        Ok(DkimKey {
            config: DkimConfig::new(
                dkim.selector.clone(),
                dkim.domain.clone(),
                key,
                headers,
                DkimCanonicalization {
                    header: DkimCanonicalizationType::Relaxed,
                    body: DkimCanonicalizationType::Relaxed,
                },
            ),
            name: format!("{}._domainkey.{}", dkim.selector, dkim.domain),
            record: format!("v=DKIM1; k={kind}; p={}", STANDARD.encode(public)),
        })
    }

    /// Adds the `DKIM-Signature` header. lettre stamps it with the clock
    /// (`t=`); nothing is decided by it.
    pub fn sign(&self, message: &mut Message) {
        message.sign(&self.config);
    }

    /// The DNS name the public key is published at.
    pub fn dns_name(&self) -> &str {
        &self.name
    }

    /// The TXT record's text.
    pub fn dns_record(&self) -> &str {
        &self.record
    }

    /// The line to put in a zone file: the record in strings of at most
    /// 255 octets (a 2048-bit RSA key's record is longer than one may be).
    pub fn zone_line(&self) -> String {
        let strings: Vec<String> = self
            .record
            .as_bytes()
            .chunks(255)
            .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
            .collect();
        format!("{} TXT {}", self.name, strings.join(" "))
    }
}

/// An RSA key as lettre takes it (PKCS#1 PEM) and its public key as DKIM
/// publishes it (DER `SubjectPublicKeyInfo`).
fn rsa_key(text: &str) -> std::result::Result<(DkimSigningKey, Vec<u8>), String> {
    use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
    use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
    use rsa::traits::PublicKeyParts as _;
    let private = if text.contains("BEGIN RSA PRIVATE KEY") {
        rsa::RsaPrivateKey::from_pkcs1_pem(text).map_err(|error| error.to_string())?
    } else if text.contains("BEGIN PRIVATE KEY") {
        rsa::RsaPrivateKey::from_pkcs8_pem(text)
            .map_err(|error| format!("not an RSA private key: {error}"))?
    } else {
        return Err(
            "not an RSA private key in PEM (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY), \
                    e.g. from `openssl genrsa 2048`"
                .into(),
        );
    };
    let bits = private.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "a {bits}-bit RSA key is too short (at least {MIN_RSA_BITS}; 2048 recommended)"
        ));
    }
    let public = rsa::RsaPublicKey::from(&private)
        .to_public_key_der()
        .map_err(|error| error.to_string())?
        .into_vec();
    let pem = private
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|error| error.to_string())?;
    let key =
        DkimSigningKey::new(&pem, DkimSigningAlgorithm::Rsa).map_err(|error| error.to_string())?;
    Ok((key, public))
}

/// An Ed25519 key (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519`
/// writes it, or base64 of the 32 bytes) as lettre takes it (base64) and
/// its public key as DKIM publishes it (the 32 bytes, RFC 8463).
fn ed25519_key(text: &str) -> std::result::Result<(DkimSigningKey, Vec<u8>), String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let signing = if text.contains("BEGIN PRIVATE KEY") {
        ed25519_dalek::SigningKey::from_pkcs8_pem(text).map_err(|error| error.to_string())?
    } else {
        let bytes: [u8; 32] = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(
                "not an Ed25519 private key: PKCS#8 PEM (openssl genpkey -algorithm ed25519) \
                 or base64 of its 32 bytes",
            )?;
        ed25519_dalek::SigningKey::from_bytes(&bytes)
    };
    let key = DkimSigningKey::new(
        &STANDARD.encode(signing.to_bytes()),
        DkimSigningAlgorithm::Ed25519,
    )
    .map_err(|error| error.to_string())?;
    Ok((key, signing.verifying_key().to_bytes().to_vec()))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::{Path, PathBuf};

    use mail_auth::common::parse::TxtRecordParser as _;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, ResolverCache, Txt};

    use super::*;

    /// A DNS cache that holds what the test put in it: the verifier asks
    /// it first, so nothing goes to the network.
    struct Zone(std::collections::HashMap<String, Txt>);

    impl ResolverCache<Box<str>, Txt> for Zone {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            // The zone is small: compare names as text.
            self.0.iter().find_map(|(key, value)| {
                let key: Box<str> = key.clone().into_boxed_str();
                (std::borrow::Borrow::<Q>::borrow(&key) == name).then(|| value.clone())
            })
        }

        fn remove<Q>(&self, _: &Q) -> Option<Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            None
        }

        fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
    }

    /// The results of an independent verifier (mail-auth) for `bytes`,
    /// with `name` publishing `record` (as a zone file's TXT, joined).
    pub(crate) fn verify(bytes: &[u8], name: &str, record: &str) -> Vec<DkimResult> {
        let key = DomainKey::parse(record.as_bytes()).expect("a DKIM key record");
        let zone = Zone(std::collections::HashMap::from([(
            format!("{name}."),
            Txt::from(key),
        )]));
        let message = AuthenticatedMessage::parse(bytes).expect("a message");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
            let params = mail_auth::Parameters::new(&message).with_txt_cache(&zone);
            authenticator
                .verify_dkim(params)
                .await
                .iter()
                .map(|output| output.result().clone())
                .collect()
        })
    }

    pub(crate) fn key_file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/dkim")
            .join(name)
    }

    fn key(name: &str, algorithm: DkimAlgorithm) -> Result<DkimKey> {
        let dkim = Dkim {
            domain: "shop.example".into(),
            selector: "recart1".into(),
            key_file: key_file(name),
            algorithm,
        };
        DkimKey::read(&dkim, Path::new("recart.toml"))
    }

    #[test]
    fn keys_are_read_in_the_forms_people_have_them() {
        let rsa = key("rsa2048.pem", DkimAlgorithm::RsaSha256).unwrap();
        assert_eq!(rsa.dns_name(), "recart1._domainkey.shop.example");
        assert!(
            rsa.dns_record().starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
            "{}",
            rsa.dns_record()
        );
        // 2048 bits do not fit one TXT string: the zone line splits them.
        let line = rsa.zone_line();
        assert!(line.starts_with("recart1._domainkey.shop.example TXT \"v=DKIM1; k=rsa; p="));
        assert_eq!(line.matches('"').count(), 4, "{line}");
        assert!(key("rsa1024-pkcs1.pem", DkimAlgorithm::RsaSha256).is_ok());
        let ed = key("ed25519.pem", DkimAlgorithm::Ed25519Sha256).unwrap();
        assert!(ed.dns_record().starts_with("v=DKIM1; k=ed25519; p="));
        // 32 bytes of public key: 44 characters of base64.
        assert_eq!(ed.dns_record().len(), "v=DKIM1; k=ed25519; p=".len() + 44);
        assert_eq!(ed.zone_line().matches('"').count(), 2);

        for (file, algorithm, expected) in [
            (
                "rsa512-pkcs1.pem",
                DkimAlgorithm::RsaSha256,
                "512-bit RSA key is too short",
            ),
            (
                "ed25519.pem",
                DkimAlgorithm::RsaSha256,
                "not an RSA private key",
            ),
            ("rsa2048.pem", DkimAlgorithm::Ed25519Sha256, "key_file"),
            ("missing.pem", DkimAlgorithm::RsaSha256, "missing.pem"),
        ] {
            let error = key(file, algorithm).unwrap_err();
            assert!(matches!(error, Error::Config { .. }), "{error:?}");
            let text = error.to_string();
            assert!(text.contains("transport.dkim.key_file"), "{text}");
            assert!(text.contains(expected), "{file}: {text}");
        }
    }

    fn letter_bytes(key: &DkimKey) -> Vec<u8> {
        use crate::render::{Links, Rendered};
        let from: lettre::message::Mailbox = "Shop <hello@shop.example>".parse().unwrap();
        let rendered = Rendered {
            subject: "Zoë, your cart is waiting 🛒".into(),
            html: "<p>Grüße</p>\n<p>  two  spaces  </p>\n\n\n".into(),
            text: "Grüße\n\ttab and trailing space \n".into(),
            locale: "de".into(),
        };
        let links = Links {
            recover: "https://shop.example/r/T1".into(),
            unsubscribe: "https://shop.example/u/T2".into(),
            unsubscribe_mailto: None,
        };
        let letter = crate::deliver::Letter {
            from: &from,
            reply_to: None,
            to_name: "Zoë =?utf-8?q?x?=",
            to_email: "zoe@example.com",
            cart_id: "C1",
            step: "1h",
            rendered: &rendered,
            links: &links,
            date: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            return_path: Some("bounces+abc@shop.example".parse().unwrap()),
            dkim: Some(key),
        };
        crate::deliver::build(&letter).unwrap().bytes
    }

    /// Signed mails verify with an independent verifier against the
    /// published record, for both algorithms; a changed body or subject
    /// fails, and so does another key's record.
    #[test]
    fn signed_mails_verify_and_tampering_fails() {
        let rsa = key("rsa2048.pem", DkimAlgorithm::RsaSha256).unwrap();
        let ed = key("ed25519.pem", DkimAlgorithm::Ed25519Sha256).unwrap();
        for key in [&rsa, &ed] {
            let bytes = letter_bytes(key);
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(text.contains("DKIM-Signature: v=1; a="), "{text}");
            assert!(text.contains("list-unsubscribe-post"), "{text}");
            assert_eq!(
                verify(&bytes, key.dns_name(), key.dns_record()),
                [DkimResult::Pass],
                "{text}"
            );
            let tampered = text.replace("Gr=C3=BC=C3=9Fe", "Hallo");
            assert_ne!(tampered, text);
            // mail-auth says `neutral` for a body that does not match
            // its hash, `fail` for a signature that does not verify.
            let results = verify(tampered.as_bytes(), key.dns_name(), key.dns_record());
            assert!(
                matches!(results[..], [DkimResult::Neutral(_) | DkimResult::Fail(_)]),
                "{results:?}"
            );
            let subject = text.replacen("Subject: ", "Subject: Re: ", 1);
            let results = verify(subject.as_bytes(), key.dns_name(), key.dns_record());
            assert!(matches!(results[..], [DkimResult::Fail(_)]), "{results:?}");
        }
        let bytes = letter_bytes(&rsa);
        let other = key("rsa1024-pkcs1.pem", DkimAlgorithm::RsaSha256).unwrap();
        let results = verify(&bytes, rsa.dns_name(), other.dns_record());
        assert!(matches!(results[..], [DkimResult::Fail(_)]), "{results:?}");
    }
}
