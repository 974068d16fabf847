//! TLS to the collector: which certificate authorities the exporters trust, and the
//! client certificate they present when the collector asks for one (mTLS).
//!
//! Both transports get the same material: tonic (gRPC) as PEM in a `ClientTlsConfig`,
//! hyper-rustls (OTLP/HTTP) as a rustls `ClientConfig`. The crypto is always rustls with
//! aws-lc-rs, chosen here explicitly rather than through rustls' process-wide default,
//! which is ambiguous (and panics) when another crate in the build enables `ring`.
//!
//! Files are read and parsed once, at `install()`, so that a missing or malformed file
//! fails start-up with its path instead of failing every export later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the TLS material comes from, after the builder and `OTEL_*` variables are merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// PEM file of the certificate authorities to trust instead of the system's.
    pub(crate) ca_file: Option<PathBuf>,
    /// PEM files of the client certificate (chain) and its private key, for mTLS.
    pub(crate) client_identity: Option<(PathBuf, PathBuf)>,
}

impl TlsOptions {
    /// Whether any file is configured (then it is loaded even for `http://` endpoints,
    /// so a typo fails start-up instead of going unnoticed).
    pub(crate) fn names_files(&self) -> bool {
        self.ca_file.is_some() || self.client_identity.is_some()
    }
}

/// Why the TLS settings cannot be used; each names the file or setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured PEM file cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A configured PEM file holds nothing usable of the expected kind.
    #[error("{what} {path} holds no PEM {expected}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },
    /// A certificate in the CA file is not a valid X.509 trust anchor.
    #[error("CA file {path}: {source}")]
    CaCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    /// The client certificate and key do not form a usable identity (e.g. they do not
    /// match).
    #[error("client certificate {cert} / key {key}: {source}")]
    ClientIdentity {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    /// The system trust store is empty or unreadable and no CA file was given.
    #[error(
        "no system CA certificates found ({0}); install the ca-certificates package, set \
         SSL_CERT_FILE, or name a CA file with .ca_file() / OTEL_EXPORTER_OTLP_CERTIFICATE"
    )]
    NoSystemRoots(String),
    /// rustls refused the protocol versions (cannot happen with the default provider,
    /// reported rather than unwrapped).
    #[error("TLS client configuration: {0}")]
    Config(rustls::Error),
}

/// The loaded material, ready to be handed to either transport.
#[derive(Debug, Clone)]
pub(crate) struct ClientTls {
    /// The CA file's PEM, or `None` for the system roots.
    ca_pem: Option<Vec<u8>>,
    /// Certificate chain and key PEM for mTLS.
    identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    rustls: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// Reads and checks every configured file; without a CA file, loads the system roots.
    pub(crate) fn load(options: &TlsOptions) -> Result<ClientTls, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let ca_pem = match &options.ca_file {
            Some(path) => {
                let pem = read("CA file", path)?;
                for cert in certificates("CA file", path, &pem)? {
                    roots.add(cert).map_err(|source| TlsError::CaCertificate {
                        path: path.clone(),
                        source,
                    })?;
                }
                Some(pem)
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                    return Err(TlsError::NoSystemRoots(if errors.is_empty() {
                        "the store is empty".to_owned()
                    } else {
                        errors.join("; ")
                    }));
                }
                None
            }
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_root_certificates(roots);
        let (config, identity_pem) = match &options.client_identity {
            Some((cert_path, key_path)) => {
                let cert_pem = read("client certificate", cert_path)?;
                let key_pem = read("client key", key_path)?;
                let chain = certificates("client certificate", cert_path, &cert_pem)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
                    what: "client key",
                    path: key_path.clone(),
                    expected: "private key",
                    reason: e.to_string(),
                })?;
                let config = builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsError::ClientIdentity {
                        cert: cert_path.clone(),
                        key: key_path.clone(),
                        source,
                    })?;
                (config, Some((cert_pem, key_pem)))
            }
            None => (builder.with_no_client_auth(), None),
        };
        Ok(ClientTls {
            ca_pem,
            identity_pem,
            rustls: Arc::new(config),
        })
    }

    /// A configuration for a client that only ever talks to `http://` endpoints: the HTTP
    /// client needs one, and loading the system roots there would fail on hosts without them for
    /// nothing. It trusts no certificate authority, so it can complete no handshake.
    pub(crate) fn plaintext_only() -> Result<ClientTls, TlsError> {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        Ok(ClientTls {
            ca_pem: None,
            identity_pem: None,
            rustls: Arc::new(config),
        })
    }

    /// The rustls configuration for the OTLP/HTTP client.
    pub(crate) fn rustls_config(&self) -> rustls::ClientConfig {
        self.rustls.as_ref().clone()
    }

    /// The same trust and identity for tonic (gRPC).
    pub(crate) fn tonic_config(&self) -> ClientTlsConfig {
        let config = match &self.ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        match &self.identity_pem {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in `pem`; none at all is an error (a key file given as the
/// certificate, say).
fn certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |reason: String| TlsError::Pem {
        what,
        path: path.to_owned(),
        expected: "certificate",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE section".to_owned()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    fn ca_and_leaf() -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        (ca_cert.pem(), leaf.pem(), leaf_key.serialize_pem())
    }

    #[test]
    fn files_are_checked_and_named_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, leaf, key) = ca_and_leaf();
        let ca_path = write(dir.path(), "ca.pem", &ca);
        let leaf_path = write(dir.path(), "client.pem", &leaf);
        let key_path = write(dir.path(), "client.key", &key);
        let other_key = rcgen::KeyPair::generate().expect("key").serialize_pem();
        let other_key_path = write(dir.path(), "other.key", &other_key);

        let good = TlsOptions {
            ca_file: Some(ca_path.clone()),
            client_identity: Some((leaf_path.clone(), key_path.clone())),
        };
        let tls = ClientTls::load(&good).expect("valid files load");
        assert_eq!(tls.ca_pem.as_deref(), Some(ca.as_bytes()));

        let missing = dir.path().join("missing.pem");
        let err = ClientTls::load(&TlsOptions {
            ca_file: Some(missing.clone()),
            client_identity: None,
        })
        .expect_err("missing CA file");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        let err = ClientTls::load(&TlsOptions {
            ca_file: Some(key_path.clone()),
            client_identity: None,
        })
        .expect_err("a key is not a CA certificate");
        assert!(
            err.to_string()
                .contains(&format!("{} holds no PEM certificate", key_path.display())),
            "{err}"
        );

        let err = ClientTls::load(&TlsOptions {
            ca_file: Some(ca_path),
            client_identity: Some((leaf_path.clone(), other_key_path.clone())),
        })
        .expect_err("certificate and key do not match");
        assert!(
            matches!(&err, TlsError::ClientIdentity { key, .. } if *key == other_key_path),
            "{err}"
        );
    }
}
