//! Database URLs as recart takes them: a PostgreSQL URL (the store's and
//! a source's) in libpq's form, without a password (that comes from an
//! env var or a file), with TLS as its `sslmode` asks; and what MySQL's
//! URL shares with it (the options recart reads itself, the connection
//! error).
//!
//! `sslmode=require`, `verify-ca` and `verify-full` all mean TLS with the
//! server's certificate checked: its chain against Mozilla's roots and the
//! CA file `sslrootcert` names (`system`: those roots alone), its name
//! against the host's. (libpq's `require` checks nothing; recart does not
//! send a password to a server it has not recognised.) Without `sslmode`,
//! or with `disable`, `allow` or `prefer`, the connection is plain.

use std::path::Path;
use std::sync::Arc;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

/// What a URL says of a connection.
#[derive(Clone)]
pub struct PostgresUrl {
    pub config: Config,
    /// `Some`: TLS, the server's certificate checked against these roots.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresUrl")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl PostgresUrl {
    /// Reads `url`, refusing a password in it, and the CA file its
    /// `sslrootcert` names.
    pub fn parse(url: &str) -> Result<PostgresUrl, String> {
        let (rest, [sslmode, rootcert]) = take_query_options(url, ["sslmode", "sslrootcert"]);
        let mut config: Config = rest
            .parse()
            .map_err(|error| format!("{url:?} is not a PostgreSQL URL: {error}"))?;
        if config.get_password().is_some() {
            return Err("holds a password: give it in password_env or password_file".into());
        }
        let tls = match sslmode.as_deref() {
            None | Some("disable" | "allow" | "prefer") => {
                if rootcert.is_some() {
                    return Err("sslrootcert is for TLS: add sslmode=verify-full".into());
                }
                config.ssl_mode(SslMode::Disable);
                None
            }
            Some("require" | "verify-ca" | "verify-full") => {
                config.ssl_mode(SslMode::Require);
                // libpq's `sslrootcert=system`: the roots recart trusts anyway.
                let file = rootcert.as_deref().filter(|file| *file != "system");
                Some(Arc::new(client_config(file.map(Path::new))?))
            }
            Some(other) => {
                return Err(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, \
                     verify-full"
                ));
            }
        };
        Ok(PostgresUrl { config, tls })
    }

    /// Connects, over TLS if the URL asked for it. An error names what to
    /// do when the server's certificate was not recognised.
    pub fn connect(&self) -> Result<Client, String> {
        let connected = match &self.tls {
            None => self.config.connect(NoTls),
            Some(tls) => self
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    (**tls).clone(),
                )),
        };
        connected.map_err(|error| {
            // The driver's words then their causes: a TLS handshake's says
            // what was wrong with the certificate.
            let mut text = error.to_string();
            let mut cause = std::error::Error::source(&error);
            while let Some(inner) = cause {
                text = format!("{text}: {inner}");
                cause = inner.source();
            }
            cannot_connect(&text, self.tls.is_some().then_some("sslrootcert"))
        })
    }
}

/// A failed connection in the driver's words; over TLS (`ca_option`: the
/// URL's option naming a CA file), a certificate the server's was not
/// recognised by says how to give its CA.
pub(crate) fn cannot_connect(text: &str, ca_option: Option<&str>) -> String {
    match ca_option {
        Some(option) if text.contains("certificate") => format!(
            "cannot connect: {text} (the server's certificate: give the CA that signed it \
             with {option}=FILE in the URL)"
        ),
        _ => format!("cannot connect: {text}"),
    }
}

/// `url` without the query options `keys` (which the driver does not
/// take as recart does), and their values. Also MySQL's URL's.
pub(crate) fn take_query_options<const N: usize>(
    url: &str,
    keys: [&str; N],
) -> (String, [Option<String>; N]) {
    let mut values = [const { None }; N];
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_string(), values);
    };
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(
            |(key, value)| match keys.iter().position(|known| *known == key) {
                Some(index) => {
                    values[index] = Some(value.into_owned());
                    None
                }
                None => Some((key.into_owned(), value.into_owned())),
            },
        )
        .collect();
    if values.iter().all(Option::is_none) {
        // Nothing taken: the URL exactly as given.
        return (url.to_string(), values);
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    (parsed.to_string(), values)
}

/// Mozilla's roots, and the certificates of `rootcert` (PEM).
fn client_config(rootcert: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = rootcert {
        let named =
            |error: &dyn std::fmt::Display| format!("sslrootcert {}: {error}", path.display());
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|error| named(&error))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| named(&error))?;
        if certificates.is_empty() {
            return Err(named(&"holds no PEM certificate"));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|error| named(&error))?;
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_decides_tls_and_the_driver_sees_neither_option() {
        let plain = PostgresUrl::parse("postgres://u@h:5/db?application_name=x").unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.config.get_application_name(), Some("x"));
        let tls = PostgresUrl::parse("postgres://u@h/db?sslmode=require").unwrap();
        assert!(tls.tls.is_some());
        assert_eq!(tls.config.get_ssl_mode(), SslMode::Require);
        assert!(
            PostgresUrl::parse("postgres://u@h/db?sslmode=prefer")
                .unwrap()
                .tls
                .is_none()
        );
        let error = PostgresUrl::parse("postgres://u@h/db?sslmode=maybe").unwrap_err();
        assert!(error.starts_with("sslmode=maybe is not one of"), "{error}");
        let error = PostgresUrl::parse(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem",
        )
        .unwrap_err();
        assert!(
            error.starts_with("sslrootcert /nonexistent.pem: "),
            "{error}"
        );
        assert!(
            PostgresUrl::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=system")
                .unwrap()
                .tls
                .is_some()
        );
        let error = PostgresUrl::parse("postgres://u@h/db?sslrootcert=/ca.pem").unwrap_err();
        assert!(error.contains("add sslmode=verify-full"), "{error}");
        let error = PostgresUrl::parse("postgres://u:secret@h/db").unwrap_err();
        assert!(error.contains("password_env"), "{error}");
    }
}
