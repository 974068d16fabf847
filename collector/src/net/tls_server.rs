//! TLS for a listener: the Collector's server-side `tls` block, certificates re-read from
//! disk every `reload_interval` (checked on the next handshake, so a rotated certificate is
//! used without a restart), and client certificates required when `client_ca_file` is set.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

use super::pem;

/// ```yaml
/// tls:
///   cert_file: /etc/aurastream/tls/server.crt
///   key_file: /etc/aurastream/tls/server.key
///   client_ca_file: /etc/aurastream/tls/clients-ca.crt   # mTLS: clients must present one
///   min_version: "1.2"
///   reload_interval: 1m
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accepted for Collector configs; a server verifies clients with `client_ca_file`.
    pub ca_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Vec<String>,
    /// How often the certificate files are checked for a new version; off when unset.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Option<Duration>,
}

impl ServerTlsConfig {
    /// The options alone (files are read at start-up, in [`ServerTls::load`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.cert_file.is_none() || self.key_file.is_none() {
            return Err("tls: cert_file and key_file are both required".into());
        }
        super::protocol_versions(self.min_version.as_deref(), self.max_version.as_deref())
            .map_err(|e| format!("tls.{e}"))?;
        super::provider_with_suites(&self.cipher_suites).map_err(|e| format!("tls.{e}"))?;
        if self.reload_interval.is_some_and(|d| d.is_zero()) {
            return Err(
                "tls.reload_interval must be greater than 0 (leave it out for none)".into(),
            );
        }
        Ok(())
    }
}

/// A loaded server TLS configuration, ready for handshakes.
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// Reads every file now, so that a missing, unreadable, mismatched or expired one fails
    /// start-up with its name. `on_reload` is told of each reload (`true`) or failed
    /// reload (`false`).
    pub fn load(
        config: &ServerTlsConfig,
        on_reload: Arc<dyn Fn(bool) + Send + Sync>,
    ) -> Result<ServerTls, String> {
        config.validate()?;
        let provider = super::provider_with_suites(&config.cipher_suites)?;
        let versions =
            super::protocol_versions(config.min_version.as_deref(), config.max_version.as_deref())?;
        let cert_file = config.cert_file.clone().expect("validated");
        let key_file = config.key_file.clone().expect("validated");
        let resolver = ReloadingCert::new(
            cert_file,
            key_file,
            config.reload_interval,
            provider.clone(),
            on_reload,
        )?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match &config.client_ca_file {
            Some(path) => {
                let roots = pem::roots(path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_cert_resolver(Arc::new(resolver));
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            config: Arc::new(server),
        })
    }
}

/// The certificate presented in handshakes, re-read when its files change.
struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    interval: Option<Duration>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    on_reload: Arc<dyn Fn(bool) + Send + Sync>,
    state: Mutex<Loaded>,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    modified: (Option<SystemTime>, Option<SystemTime>),
    next_check: Instant,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_file", &self.cert_file)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    fn new(
        cert_file: PathBuf,
        key_file: PathBuf,
        interval: Option<Duration>,
        provider: Arc<rustls::crypto::CryptoProvider>,
        on_reload: Arc<dyn Fn(bool) + Send + Sync>,
    ) -> Result<ReloadingCert, String> {
        let modified = (modified(&cert_file), modified(&key_file));
        let key = pem::certified_key(&cert_file, &key_file, &provider)?;
        Ok(ReloadingCert {
            state: Mutex::new(Loaded {
                key,
                modified,
                next_check: Instant::now() + interval.unwrap_or_default(),
            }),
            cert_file,
            key_file,
            interval,
            provider,
            on_reload,
        })
    }

    /// The current key, re-read first if the interval has passed and a file changed. A
    /// rotation caught half-written (a key that does not match yet) keeps the old pair and
    /// is tried again on the next check.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(interval) = self.interval else {
            return state.key.clone();
        };
        let now = Instant::now();
        if now < state.next_check {
            return state.key.clone();
        }
        state.next_check = now + interval;
        let seen = (modified(&self.cert_file), modified(&self.key_file));
        if seen == state.modified {
            return state.key.clone();
        }
        match pem::certified_key(&self.cert_file, &self.key_file, &self.provider) {
            Ok(key) => {
                tracing::info!(cert_file = %self.cert_file.display(), "TLS certificate reloaded");
                state.key = key;
                state.modified = seen;
                (self.on_reload)(true);
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate not reloaded; still using the previous one");
                (self.on_reload)(false);
            }
        }
        state.key.clone()
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
