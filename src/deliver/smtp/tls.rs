//! TLS to the relay: which CAs its certificate is checked against, and
//! what to tell the operator when the check fails.

use lettre::transport::smtp::client::TlsParameters;

use crate::config::SmtpSettings;

/// The TLS parameters for the relay: the public roots, and the private CA
/// of `transport.ca_file` if given.
pub(super) fn tls_parameters(
    settings: &SmtpSettings,
) -> std::result::Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(ca) = &settings.ca {
        builder = builder.add_root_certificate(ca.certificate.clone());
    }
    builder.build_rustls().map_err(|error| error.to_string())
}

/// What to do about a certificate the relay's TLS handshake refused, in
/// words; None for other failures.
pub(super) fn certificate_hint(error: &str, settings: &SmtpSettings) -> Option<String> {
    let trusted = match &settings.ca {
        Some(ca) => format!("Mozilla's public CAs and {}", ca.path.display()),
        None => "Mozilla's public CAs only".to_string(),
    };
    let hint = if error.contains("UnknownIssuer") {
        format!(
            "the relay's certificate is not signed by a CA recart trusts ({trusted}); \
             for a private CA, set transport.ca_file to its certificate (PEM)"
        )
    } else if error.contains("CaUsedAsEndEntity") {
        "the relay presents a CA certificate as its own (a self-signed certificate with \
         CA:TRUE, as `openssl req -x509` makes by default), which is never accepted; give \
         the relay a certificate made with CA:FALSE (`openssl req -x509 ... -addext \
         basicConstraints=critical,CA:FALSE`) and set transport.ca_file to it, or one \
         issued by a CA and set transport.ca_file to the CA's"
            .to_string()
    } else if error.contains("NotValidForName") {
        format!(
            "the relay's certificate is not for {:?}; set transport.host to a name it holds",
            settings.host
        )
    } else if error.contains("Expired") {
        "the relay's certificate has expired".to_string()
    } else if error.contains("NotValidYet") {
        "the relay's certificate is not valid yet (or this machine's clock is behind)".to_string()
    } else {
        return None;
    };
    Some(hint)
}
