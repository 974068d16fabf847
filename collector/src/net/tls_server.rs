//! TLS for a listener: the Collector's server-side `tls` block, certificates and the client
//! CA re-read from disk every `reload_interval` (checked on the next handshake, so a
//! rotated file is used without a restart), and client certificates required when
//! `client_ca_file` is set.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use serde::Deserialize;

use super::pem;
use super::tls_error::TlsError;
use crate::component::validate::Invalid;
use crate::telemetry::metrics::SelfMetrics;

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
    /// How often the certificate, key and client CA files are checked for a new version;
    /// off when unset.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Option<Duration>,
}

impl ServerTlsConfig {
    /// The options alone (files are read at start-up, in [`ServerTls::load`]).
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.cert_file.is_none() || self.key_file.is_none() {
            return Err(Invalid::cause("tls", TlsError::CertAndKeyRequired));
        }
        super::protocol_versions(self.min_version.as_deref(), self.max_version.as_deref())
            .map_err(|e| Invalid::within("tls", e))?;
        super::provider_with_suites(&self.cipher_suites).map_err(|e| Invalid::within("tls", e))?;
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
    ) -> Result<ServerTls, TlsError> {
        let provider = super::provider_with_suites(&config.cipher_suites)?;
        let versions =
            super::protocol_versions(config.min_version.as_deref(), config.max_version.as_deref())?;
        let (Some(cert_file), Some(key_file)) = (config.cert_file.clone(), config.key_file.clone())
        else {
            return Err(TlsError::CertAndKeyRequired);
        };
        let certificate = {
            let provider = provider.clone();
            let (cert, key) = (cert_file.clone(), key_file.clone());
            Reloading::new(
                "TLS certificate",
                vec![cert_file, key_file],
                config.reload_interval,
                Box::new(move || pem::certified_key(&cert, &key, &provider)),
                on_reload.clone(),
            )?
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?;
        let builder = match &config.client_ca_file {
            Some(path) => {
                let path = path.clone();
                let load = move || client_verifier(&path, &provider);
                let verifier: Arc<dyn ClientCertVerifier> = match config.reload_interval {
                    None => load()?,
                    Some(interval) => Arc::new(Reloading::new(
                        "TLS client CA",
                        vec![config.client_ca_file.clone().expect("matched")],
                        Some(interval),
                        Box::new(load),
                        on_reload,
                    )?),
                };
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_cert_resolver(Arc::new(certificate));
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            config: Arc::new(server),
        })
    }

    /// [`ServerTls::load`] for the listener `component`, its reloads counted on `/metrics`
    /// as `listener_events{event="tls_reloaded"|"tls_reload_failed"}`.
    pub fn load_counted(
        config: &ServerTlsConfig,
        component: &str,
        metrics: &SelfMetrics,
    ) -> Result<ServerTls, TlsError> {
        let reloaded = metrics.listener_event(component, "tls_reloaded");
        let failed = metrics.listener_event(component, "tls_reload_failed");
        ServerTls::load(
            config,
            Arc::new(move |ok| {
                if ok {
                    reloaded.inc()
                } else {
                    failed.inc()
                };
            }),
        )
    }
}

/// Clients must present a certificate signed by a CA in `path`.
fn client_verifier(
    path: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = pem::roots(path)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|source| TlsError::ClientCa {
            path: path.into(),
            source,
        })
}

/// Something made from files (a certificate and its key, a client CA bundle), made again
/// when one of the files changes: checked at most once per `interval`, on the next
/// handshake that needs it, so a rotated file is used without a restart.
struct Reloading<T> {
    what: &'static str,
    files: Vec<PathBuf>,
    interval: Option<Duration>,
    load: Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>,
    on_reload: Arc<dyn Fn(bool) + Send + Sync>,
    state: Mutex<Loaded<T>>,
}

struct Loaded<T> {
    value: T,
    modified: Vec<Option<SystemTime>>,
    next_check: Instant,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.what)
            .field("files", &self.files)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Reloading<T> {
    fn new(
        what: &'static str,
        files: Vec<PathBuf>,
        interval: Option<Duration>,
        load: Box<dyn Fn() -> Result<T, TlsError> + Send + Sync>,
        on_reload: Arc<dyn Fn(bool) + Send + Sync>,
    ) -> Result<Reloading<T>, TlsError> {
        let modified = files.iter().map(|f| modified(f)).collect();
        let value = load()?;
        Ok(Reloading {
            state: Mutex::new(Loaded {
                value,
                modified,
                next_check: Instant::now() + interval.unwrap_or_default(),
            }),
            what,
            files,
            interval,
            load,
            on_reload,
        })
    }

    /// The current value, made again first if the interval has passed and a file changed.
    /// A rotation caught half-written (a key that does not match yet, a truncated bundle)
    /// keeps the old value and is tried again on the next check.
    fn current(&self) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(interval) = self.interval else {
            return state.value.clone();
        };
        let now = Instant::now();
        if now < state.next_check {
            return state.value.clone();
        }
        state.next_check = now + interval;
        let seen: Vec<_> = self.files.iter().map(|f| modified(f)).collect();
        if seen == state.modified {
            return state.value.clone();
        }
        match (self.load)() {
            Ok(value) => {
                tracing::info!(file = %self.files[0].display(), "{} reloaded", self.what);
                state.value = value;
                state.modified = seen;
                (self.on_reload)(true);
            }
            Err(e) => {
                tracing::warn!(error = %e, "{} not reloaded; still using the previous one", self.what);
                (self.on_reload)(false);
            }
        }
        state.value.clone()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ResolvesServerCert for Reloading<Arc<CertifiedKey>> {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A client CA that can be rotated. The CA names hinted to clients in the handshake would
/// go stale after a rotation, so none are sent: clients offer their certificate whatever
/// the CA (what OpenSSL, Go and rustls clients do with a single client certificate).
impl ClientCertVerifier for Reloading<Arc<dyn ClientCertVerifier>> {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}
