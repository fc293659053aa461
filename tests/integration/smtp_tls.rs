//! SMTP to a relay whose certificate a private CA issued
//! (`transport.ca_file`): the test makes a CA and a server certificate
//! (rcgen) and serves STARTTLS or implicit TLS on loopback (rustls).
//! `check --smtp` passes with the CA and fails without it, naming the
//! certificate problem and what to do.

use std::fmt::Write as _;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{
    fixtures::{ADA, Config, GRACE, NOW, Transport, shop},
    harness::Test,
    smtp_server::{SmtpServer, TlsMode},
};

/// A private CA and a certificate it issued for 127.0.0.1 (also the
/// PostgreSQL test server's: `db_servers`).
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    ca_der: CertificateDer<'static>,
    ca_key: KeyPair,
    pub(crate) server_pem: String,
    server_der: CertificateDer<'static>,
    pub(crate) server_key: KeyPair,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "recart test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let ca_pem = ca_cert.pem();
        let ca_der = ca_cert.der().clone();
        let issuer = Issuer::new(ca, KeyPair::from_pem(&ca_key.serialize_pem()).unwrap());
        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "relay.test.invalid");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();
        Pki {
            ca_pem,
            ca_der,
            ca_key,
            server_pem: server_cert.pem(),
            server_der: server_cert.der().clone(),
            server_key,
        }
    }

    fn config(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> rustls::ServerConfig {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
    }

    /// A relay presenting the certificate the CA issued.
    fn relay(&self) -> rustls::ServerConfig {
        Self::config(vec![self.server_der.clone()], &self.server_key)
    }

    /// A relay presenting the CA's own certificate (self-signed, CA:TRUE).
    fn ca_as_relay(&self) -> rustls::ServerConfig {
        Self::config(vec![self.ca_der.clone()], &self.ca_key)
    }
}

/// The test shop, sending to `port` with `tls`, and `ca_file` if given.
fn tls_shop(port: u16, tls: &str, ca_file: Option<&str>) -> Test {
    let mut lines = format!("tls = \"{tls}\"");
    if let Some(path) = ca_file {
        let _ = write!(lines, "\nca_file = \"{path}\"");
    }
    let toml = Config::new(Transport::Smtp(port))
        .to_toml()
        .replace("tls = \"none\"", &lines);
    let t = shop(&Config::new(Transport::File));
    t.write("recart.toml", toml);
    t
}

#[test]
fn a_relay_with_a_private_ca_is_trusted_through_ca_file() {
    let pki = Pki::new();
    let server = SmtpServer::start_tls(TlsMode::Starttls, pki.relay());

    // Without the CA: refused, with the reason and what to do.
    let t = tls_shop(server.port(), "starttls", None);
    t.recart(&["check", "--smtp"])
        .expect_status(1)
        .expect_stderr_contains("STARTTLS failed")
        .expect_stderr_contains("UnknownIssuer")
        .expect_stderr_contains("set transport.ca_file to its certificate (PEM)");

    // With it: the session works, and so does a run.
    let t = tls_shop(server.port(), "starttls", Some("ca.pem"));
    t.write("ca.pem", &pki.ca_pem);
    t.recart(&["check", "--smtp"])
        .expect_success()
        .expect_stdout_contains("connected");
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(server.recipients(), [ADA, GRACE]);
    assert!(server.tls_sessions() >= 2, "{}", server.tls_sessions());
}

#[test]
fn implicit_tls_trusts_the_ca_file_too() {
    let pki = Pki::new();
    let server = SmtpServer::start_tls(TlsMode::Implicit, pki.relay());
    let t = tls_shop(server.port(), "implicit", None);
    t.recart(&["check", "--smtp"])
        .expect_status(1)
        .expect_stderr_contains("UnknownIssuer");
    let t = tls_shop(server.port(), "implicit", Some("ca.pem"));
    t.write("ca.pem", &pki.ca_pem);
    t.recart(&["check", "--smtp"]).expect_success();
    assert!(server.tls_sessions() >= 1);
}

#[test]
fn a_relay_presenting_a_ca_certificate_is_named_as_such() {
    let pki = Pki::new();
    let server = SmtpServer::start_tls(TlsMode::Starttls, pki.ca_as_relay());
    let t = tls_shop(server.port(), "starttls", Some("ca.pem"));
    t.write("ca.pem", &pki.ca_pem);
    t.recart(&["check", "--smtp"])
        .expect_status(1)
        .expect_stderr_contains("CaUsedAsEndEntity")
        .expect_stderr_contains("presents a CA certificate as its own");
}

#[test]
fn a_self_signed_relay_certificate_with_ca_false_is_its_own_ca_file() {
    // As `openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE`
    // makes it.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    let cert = params.self_signed(&key).unwrap();
    let server = SmtpServer::start_tls(
        TlsMode::Starttls,
        Pki::config(vec![cert.der().clone()], &key),
    );
    let t = tls_shop(server.port(), "starttls", Some("relay.pem"));
    t.write("relay.pem", cert.pem());
    t.recart(&["check", "--smtp"])
        .expect_success()
        .expect_stdout_contains("connected");
    t.recart(&["run", "--now", NOW]).expect_success();
    assert_eq!(server.recipients(), [ADA, GRACE]);
}

#[test]
fn a_bad_ca_file_is_a_configuration_error_naming_the_key() {
    let t = tls_shop(25, "starttls", Some("missing.pem"));
    t.recart(&["check"])
        .expect_status(2)
        .expect_stderr_contains("transport.ca_file: cannot read");
    let t = tls_shop(25, "starttls", Some("ca.pem"));
    t.write("ca.pem", "not a certificate\n");
    t.recart(&["check"])
        .expect_status(2)
        .expect_stderr_contains("transport.ca_file:")
        .expect_stderr_contains("holds no PEM certificate");
    t.write(
        "ca.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    t.recart(&["check"])
        .expect_status(2)
        .expect_stderr_contains("not a usable CA certificate");
    let t = tls_shop(25, "none", Some("ca.pem"));
    t.write("ca.pem", Pki::new().ca_pem);
    t.recart(&["check"])
        .expect_status(2)
        .expect_stderr_contains("transport.ca_file: is set but transport.tls = \"none\"");
}
