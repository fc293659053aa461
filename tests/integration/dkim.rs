//! DKIM: `recart check` prints the DNS record of `[transport.dkim]`'s key,
//! and the mails a real run writes verify against that record with an
//! independent verifier (mail-auth, its DNS answered from a zone the test
//! fills: no network), for RSA and Ed25519 keys. Bad keys and return
//! paths are configuration errors.

use mail_auth::common::parse::TxtRecordParser as _;
use mail_auth::common::verify::DomainKey;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, ResolverCache, Txt};

use crate::fixtures::{ADA, Config, GRACE, NOW, Transport, shop};
use crate::harness::{Test, mail_file};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dkim");

/// A zone of one TXT record, as the verifier's DNS cache.
struct Zone(String, Txt);

impl ResolverCache<Box<str>, Txt> for Zone {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let key: Box<str> = self.0.clone().into_boxed_str();
        (std::borrow::Borrow::<Q>::borrow(&key) == name).then(|| self.1.clone())
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

fn verify(mail: &[u8], name: &str, record: &str) -> Vec<DkimResult> {
    let zone = Zone(
        format!("{name}."),
        Txt::from(DomainKey::parse(record.as_bytes()).expect("a DKIM record")),
    );
    let message = AuthenticatedMessage::parse(mail).expect("a message");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let authenticator = MessageAuthenticator::new_cloudflare().unwrap();
            authenticator
                .verify_dkim(mail_auth::Parameters::new(&message).with_txt_cache(&zone))
                .await
                .iter()
                .map(|output| output.result().clone())
                .collect()
        })
}

/// A shop whose `[transport]` has `lines` added.
fn shop_with(lines: &str) -> Test {
    let t = shop(&Config::new(Transport::File));
    let toml = t.read("recart.toml").replacen(
        "from = \"Shop <hello@shop.example>\"\n",
        &format!("from = \"Shop <hello@shop.example>\"\n{lines}\n"),
        1,
    );
    t.write("recart.toml", toml);
    t
}

/// `name TXT "…" "…"` as printed by `check` → (name, the strings joined).
fn published(check: &str) -> (String, String) {
    let line = check
        .lines()
        .find(|line| line.starts_with("DKIM: "))
        .unwrap_or_else(|| panic!("no DKIM line in {check}"));
    let record = line.split("publish this DNS record: ").nth(1).unwrap();
    let (name, strings) = record.split_once(" TXT ").unwrap();
    let joined: String = strings
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat();
    (name.to_string(), joined)
}

#[test]
fn signed_mails_verify_against_the_record_check_prints() {
    for (file, algorithm, kind) in [
        ("rsa2048.pem", "rsa-sha256", "k=rsa"),
        ("ed25519.pem", "ed25519-sha256", "k=ed25519"),
    ] {
        let t = shop_with(&format!(
            "return_path = \"bounces+{{token}}@shop.example\"\n\
             dkim = {{ domain = \"shop.example\", selector = \"recart1\", \
             key_file = \"{KEYS}/{file}\", algorithm = \"{algorithm}\" }}"
        ));
        let check = t.recart(&["check"]);
        check.expect_success();
        let (name, record) = published(&check.stdout);
        assert_eq!(name, "recart1._domainkey.shop.example");
        assert!(
            record.starts_with(&format!("v=DKIM1; {kind}; p=")),
            "{record}"
        );

        t.recart(&["run", "--now", NOW]).expect_success();
        for (cart, email) in [("C-1001", ADA), ("C-1002", GRACE)] {
            let mail = t.read(mail_file("outbox", cart, "1h", "eml"));
            assert!(mail.contains("\r\nDKIM-Signature: v=1; a="), "{mail}");
            assert!(mail.contains(email));
            assert_eq!(
                verify(mail.as_bytes(), &name, &record),
                [DkimResult::Pass],
                "{algorithm} {cart}:\n{mail}"
            );
            // A relay that rewrites the subject breaks the signature.
            let changed = mail.replacen("Subject: ", "Subject: [EXTERNAL] ", 1);
            assert!(
                !verify(changed.as_bytes(), &name, &record).contains(&DkimResult::Pass),
                "{algorithm}"
            );
        }
    }
}

#[test]
fn bad_keys_and_return_paths_are_configuration_errors() {
    for (lines, expected) in [
        (
            format!(
                "dkim = {{ domain = \"shop.example\", selector = \"s\", key_file = \"{KEYS}/rsa512-pkcs1.pem\" }}"
            ),
            "512-bit RSA key is too short",
        ),
        (
            "dkim = { domain = \"shop.example\", selector = \"s\", key_file = \"nope.pem\" }".into(),
            "transport.dkim.key_file",
        ),
        (
            "dkim = { domain = \"shop example\", selector = \"s\", key_file = \"k.pem\" }".into(),
            "transport.dkim.domain",
        ),
        (
            "dkim = { domain = \"shop.example\", selector = \"s\", key_file = \"k.pem\", algorithm = \"rsa-sha1\" }"
                .into(),
            "rsa-sha1",
        ),
        (
            "return_path = \"bounces@shop.example\"".into(),
            "transport.return_path: \"bounces@shop.example\" has no {token}",
        ),
        (
            "return_path = \"a-very-long-bounce-prefix+{token}@shop.example\"".into(),
            "over the 64",
        ),
        (
            "return_path = \"bounces@{token}.shop.example\"".into(),
            "goes in the local part",
        ),
    ] {
        let t = shop_with(&lines);
        let out = t.recart(&["check"]);
        out.expect_status(2);
        out.expect_stderr_contains(expected);
        let out = t.recart(&["run", "--now", NOW]);
        out.expect_status(2);
        assert!(t.files_in("outbox", ".eml").is_empty(), "{lines}");
    }
}
