//! TLS for outgoing gRPC connections (the `otlp` and `loadbalancing` exporters): the
//! Collector's client-side `tls` block and a connector tonic dials through.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::pem;
use super::tls_error::TlsError;
use crate::component::validate::Invalid;

/// ```yaml
/// tls:
///   insecure: false                     # TLS on (also implied by any option below)
///   ca_file: /etc/aurastream/tls/ca.crt # else the system's trust store
///   cert_file: /etc/aurastream/tls/client.crt   # mTLS
///   key_file: /etc/aurastream/tls/client.key
///   server_name_override: gateway.internal
/// ```
///
/// Plain text stays this build's default (`insecure` unset and no other option): the
/// sidecar → gateway hop of older configs keeps working; any TLS option, `insecure: false`
/// or an `https://` endpoint turns TLS on.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    pub insecure: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name_override: Option<String>,
    /// Accepts any server certificate: encryption without authentication of the peer.
    pub insecure_skip_verify: bool,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
}

impl ClientTlsConfig {
    /// Whether connections use TLS, given whether the endpoint said `https://`.
    pub fn enabled(&self, https: bool) -> bool {
        match self.insecure {
            Some(insecure) => !insecure,
            None => {
                https
                    || self.ca_file.is_some()
                    || self.cert_file.is_some()
                    || self.server_name_override.is_some()
                    || self.insecure_skip_verify
            }
        }
    }

    /// Whether any option beyond `insecure` is set (one that only means something with
    /// TLS on).
    pub fn has_options(&self) -> bool {
        self.ca_file.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
            || self.server_name_override.is_some()
            || self.insecure_skip_verify
            || self.min_version.is_some()
            || self.max_version.is_some()
    }

    pub fn validate(&self, https: bool) -> Result<(), Invalid> {
        if https && self.insecure == Some(true) {
            return Err("tls.insecure: true contradicts an https:// endpoint".into());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("tls: cert_file and key_file go together (client certificate)".into());
        }
        if self.insecure == Some(true)
            && (self.ca_file.is_some() || self.cert_file.is_some() || self.insecure_skip_verify)
        {
            return Err("tls.insecure: true turns TLS off; remove the other tls options".into());
        }
        super::protocol_versions(self.min_version.as_deref(), self.max_version.as_deref())
            .map_err(|e| Invalid::within("tls", e))?;
        Ok(())
    }

    /// Reads the files and builds the client configuration (failing start-up naming a bad
    /// file).
    pub fn load(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = Arc::new(super::crypto_provider());
        let versions =
            super::protocol_versions(self.min_version.as_deref(), self.max_version.as_deref())?;
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?;
        let builder = if self.insecure_skip_verify {
            tracing::warn!("tls.insecure_skip_verify: the server's certificate is not checked");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        } else {
            let roots = match &self.ca_file {
                Some(path) => pem::roots(path)?,
                None => system_roots()?,
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(pem::certificates(cert)?, pem::private_key(key)?)
                .map_err(|source| TlsError::KeyMismatch {
                    key_file: key.clone(),
                    cert_file: cert.clone(),
                    source,
                })?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

fn system_roots() -> Result<rustls::RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(store)
}

/// Dials TCP, then TLS, for tonic (`Endpoint::connect_with_connector_lazy`): tonic sees a
/// plain `http://` URI and this connector supplies the encryption.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl TlsConnector {
    pub fn new(
        config: Arc<rustls::ClientConfig>,
        server_name_override: Option<&str>,
    ) -> Result<TlsConnector, TlsError> {
        let server_name = server_name_override
            .map(|n| {
                ServerName::try_from(n.to_string()).map_err(|source| TlsError::ServerName {
                    name: n.into(),
                    source,
                })
            })
            .transpose()?;
        Ok(TlsConnector {
            config,
            server_name,
        })
    }
}

impl tower::Service<http::Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, std::io::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let name = self.server_name.clone();
        Box::pin(async move {
            let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
            let host = uri
                .host()
                .ok_or_else(|| invalid(format!("{uri}: no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = match name {
                Some(n) => n,
                None => ServerName::try_from(host.clone())
                    .map_err(|e| invalid(format!("{host}: {e}")))?,
            };
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            Ok(TokioIo::new(connector.connect(name, tcp).await?))
        })
    }
}

/// `insecure_skip_verify`: every certificate is accepted; signatures are still checked so
/// the handshake itself is sound.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
