//! The SDK's TLS client: OTLP over `https://` with a CA file, mTLS, and a bearer token.
//!
//! The collector has no TLS receiver yet, so the peer here is NOT the collector but a small
//! OTLP server written in this test: rustls (tokio-rustls) under axum for OTLP/HTTP, and
//! tonic's rustls server for OTLP/gRPC, with certificates made by rcgen. It records every
//! request (path, `authorization`, the decoded spans) and every refused handshake, so the
//! tests compare what arrived with what was sent. Once the collector's receivers speak TLS,
//! the same assertions belong against the real binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aurastream_proto::otlp::trace_service::trace_service_server::{
    TraceService, TraceServiceServer,
};
use aurastream_proto::otlp::trace_service::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use aurastream_sdk::{Protocol, TelemetryGuard};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use prost::Message as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const TOKEN: &str = "tls-test-token.v1";

/// Two certificate authorities (the collector's and an unrelated one), a server
/// certificate for 127.0.0.1 and a client certificate, all from the collector's CA.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
}

impl Pki {
    fn new() -> anyhow::Result<Pki> {
        let dir = tempfile::tempdir()?;
        let (ca, ca_pem) = authority("collector test CA")?;
        let (_, other_ca_pem) = authority("some other CA")?;
        let (server_cert_pem, server_key_pem) =
            leaf(&ca, "127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth)?;
        let (client_cert_pem, client_key_pem) =
            leaf(&ca, "sdk-client", ExtendedKeyUsagePurpose::ClientAuth)?;
        for (name, text) in [
            ("ca.pem", &ca_pem),
            ("other-ca.pem", &other_ca_pem),
            ("client.pem", &client_cert_pem),
            ("client.key", &client_key_pem),
        ] {
            std::fs::write(dir.path().join(name), text)?;
        }
        Ok(Pki {
            dir,
            ca_pem,
            server_cert_pem,
            server_key_pem,
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn rustls_server(&self, require_client_cert: bool) -> anyhow::Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes())?)?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let chain = vec![CertificateDer::from_pem_slice(
            self.server_cert_pem.as_bytes(),
        )?];
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())?;
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn authority(name: &str) -> anyhow::Result<(Issuer<'static, KeyPair>, String)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate()?;
    let pem = params.self_signed(&key)?.pem();
    Ok((Issuer::new(params, key), pem))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<(String, String)> {
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// One request the test server accepted.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: Option<String>,
    authorization: Option<String>,
    span_names: Vec<String>,
}

/// What the test server saw: accepted requests and refused TLS handshakes.
#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<Received>>>,
    refused_handshakes: Arc<Mutex<Vec<String>>>,
}

impl Seen {
    fn requests(&self) -> Vec<Received> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn refused_handshakes(&self) -> Vec<String> {
        self.refused_handshakes
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Records a request; the body is an `ExportTraceServiceRequest` in protobuf or, with
    /// a JSON content type, OTLP/JSON (other signals decode to no spans).
    fn record(
        &self,
        path: String,
        content_type: Option<String>,
        authorization: Option<String>,
        body: &[u8],
    ) {
        let request = if content_type.as_deref() == Some("application/json") {
            serde_json::from_slice::<ExportTraceServiceRequest>(body).ok()
        } else {
            ExportTraceServiceRequest::decode(body).ok()
        };
        let span_names = request
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| s.name.clone())
            .collect();
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(Received {
                path,
                content_type,
                authorization,
                span_names,
            });
        }
    }
}

/// TCP accept + TLS handshake for axum; refused handshakes are recorded, not served.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    seen: Seen,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, peer),
                Err(e) => {
                    if let Ok(mut refused) = self.seen.refused_handshakes.lock() {
                        refused.push(e.to_string());
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

async fn record_http(State(seen): State<Seen>, uri: Uri, headers: HeaderMap, body: Bytes) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    seen.record(
        uri.path().to_owned(),
        header("content-type"),
        header("authorization"),
        &body,
    );
}

/// An OTLP/HTTP server over TLS on a free loopback port; stops with the test's runtime.
async fn https_server(pki: &Pki, require_client_cert: bool) -> anyhow::Result<(String, Seen)> {
    let seen = Seen::default();
    let listener = TlsListener {
        tcp: TcpListener::bind("127.0.0.1:0").await?,
        acceptor: TlsAcceptor::from(Arc::new(pki.rustls_server(require_client_cert)?)),
        seen: seen.clone(),
    };
    let port = listener.tcp.local_addr()?.port();
    let app = axum::Router::new()
        .fallback(axum::routing::post(record_http))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("https://127.0.0.1:{port}"), seen))
}

struct GrpcRecorder(Seen);

#[tonic::async_trait]
impl TraceService for GrpcRecorder {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = request.into_inner().encode_to_vec();
        self.0
            .record("TraceService/Export".to_owned(), None, authorization, &body);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC trace server over TLS (tonic's rustls server) on a free loopback port.
async fn grpc_tls_server(pki: &Pki) -> anyhow::Result<(String, Seen)> {
    // tonic's server asks rustls for the process-wide provider; with both ring and aws-lc-rs
    // compiled into the test binary rustls cannot choose, so pick the one the SDK uses.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let seen = Seen::default();
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let port = tcp.local_addr()?.port();
    let identity = tonic::transport::Identity::from_pem(&pki.server_cert_pem, &pki.server_key_pem);
    let server = tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?
        .add_service(TraceServiceServer::new(GrpcRecorder(seen.clone())));
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(tcp);
    tokio::spawn(server.serve_with_incoming(incoming));
    Ok((format!("https://127.0.0.1:{port}"), seen))
}

/// Ends one span named `name` and flushes: the flush result says whether export worked.
async fn send_span(
    guard: &TelemetryGuard,
    name: &'static str,
) -> Result<(), aurastream_sdk::SdkError> {
    let tracer = guard.tracer_provider().tracer("tls-test");
    tracer.start(name).end();
    guard.flush().await
}

fn install(builder: aurastream_sdk::TelemetryBuilder) -> anyhow::Result<TelemetryGuard> {
    Ok(builder
        .install_tracing_subscriber(false)
        .metric_export_interval(std::time::Duration::from_secs(3600))
        .install()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_ca_file_delivers_spans_and_the_bearer_token() -> anyhow::Result<()> {
    let pki = Pki::new()?;
    let (endpoint, seen) = https_server(&pki, false).await?;
    for protocol in [Protocol::HttpProtobuf, Protocol::HttpJson] {
        let guard = install(
            aurastream_sdk::init("sdk-tls")
                .endpoint(&endpoint)
                .protocol(protocol)
                .ca_file(pki.file("ca.pem"))
                .bearer_token(TOKEN),
        )?;
        send_span(&guard, "over-tls").await?;
        guard.shutdown().await?;
    }
    let traces: Vec<Received> = seen
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/traces")
        .collect();
    assert_eq!(traces.len(), 2, "one per protocol: {traces:#?}");
    let content_types: Vec<Option<&str>> =
        traces.iter().map(|r| r.content_type.as_deref()).collect();
    assert_eq!(
        content_types,
        [Some("application/x-protobuf"), Some("application/json")]
    );
    for received in &traces {
        assert_eq!(
            received.authorization.as_deref(),
            Some("Bearer tls-test-token.v1")
        );
        assert_eq!(received.span_names, vec!["over-tls".to_owned()]);
    }
    assert!(
        seen.refused_handshakes().is_empty(),
        "{:?}",
        seen.refused_handshakes()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() -> anyhow::Result<()> {
    let pki = Pki::new()?;
    let (endpoint, seen) = https_server(&pki, false).await?;
    let guard = install(
        aurastream_sdk::init("sdk-tls-wrong-ca")
            .endpoint(&endpoint)
            .protocol(Protocol::HttpProtobuf)
            .ca_file(pki.file("other-ca.pem"))
            .bearer_token(TOKEN),
    )?;
    let result = send_span(&guard, "must-not-arrive").await;
    guard.shutdown().await.ok();
    assert!(result.is_err(), "export to an untrusted server succeeded");
    assert!(seen.requests().is_empty(), "{:#?}", seen.requests());
    let refused = seen.refused_handshakes();
    assert!(
        refused.iter().any(|e| e.contains("UnknownCA")),
        "the client should abort the handshake with unknown_ca: {refused:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_presents_the_client_certificate() -> anyhow::Result<()> {
    let pki = Pki::new()?;
    let (endpoint, seen) = https_server(&pki, true).await?;

    let without = install(
        aurastream_sdk::init("sdk-mtls-none")
            .endpoint(&endpoint)
            .protocol(Protocol::HttpProtobuf)
            .ca_file(pki.file("ca.pem")),
    )?;
    let refused = send_span(&without, "no-client-cert").await;
    without.shutdown().await.ok();
    assert!(
        refused.is_err(),
        "a server requiring a client certificate accepted none"
    );
    assert!(seen.requests().is_empty(), "{:#?}", seen.requests());
    assert!(!seen.refused_handshakes().is_empty());

    let with = install(
        aurastream_sdk::init("sdk-mtls")
            .endpoint(&endpoint)
            .protocol(Protocol::HttpProtobuf)
            .ca_file(pki.file("ca.pem"))
            .client_certificate(pki.file("client.pem"), pki.file("client.key")),
    )?;
    send_span(&with, "with-client-cert").await?;
    with.shutdown().await?;
    let names: Vec<String> = seen
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/traces")
        .flat_map(|r| r.span_names)
        .collect();
    assert_eq!(names, vec!["with-client-cert".to_owned()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_delivers_spans_and_the_bearer_token() -> anyhow::Result<()> {
    let pki = Pki::new()?;
    let (endpoint, seen) = grpc_tls_server(&pki).await?;

    let wrong = install(
        aurastream_sdk::init("sdk-grpc-wrong-ca")
            .endpoint(&endpoint)
            .protocol(Protocol::Grpc)
            .ca_file(pki.file("other-ca.pem")),
    )?;
    let refused = send_span(&wrong, "must-not-arrive").await;
    wrong.shutdown().await.ok();
    assert!(
        refused.is_err(),
        "gRPC export to an untrusted server succeeded"
    );
    assert!(seen.requests().is_empty(), "{:#?}", seen.requests());

    let guard = install(
        aurastream_sdk::init("sdk-grpc-tls")
            .endpoint(&endpoint)
            .protocol(Protocol::Grpc)
            .ca_file(pki.file("ca.pem"))
            .bearer_token(TOKEN),
    )?;
    send_span(&guard, "grpc-over-tls").await?;
    guard.shutdown().await?;
    let received = seen.requests();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(
        received[0].authorization.as_deref(),
        Some("Bearer tls-test-token.v1")
    );
    assert_eq!(received[0].span_names, vec!["grpc-over-tls".to_owned()]);
    Ok(())
}

/// Set in the child process of [`otel_environment_variables_configure_tls_protocol_and_headers`].
const CHILD_MARKER: &str = "AURASTREAM_TLS_ENV_CHILD";

/// The standard variables alone (no builder options) choose the endpoint, protocol, CA and
/// headers. They are process-wide, so the SDK runs in a child process (this test binary
/// again, running only this test) with its environment set, and the parent serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_environment_variables_configure_tls_protocol_and_headers() -> anyhow::Result<()> {
    if std::env::var_os(CHILD_MARKER).is_some() {
        let guard = install(aurastream_sdk::init("sdk-tls-env"))?;
        send_span(&guard, "configured-by-env").await?;
        guard.shutdown().await?;
        return Ok(());
    }
    let pki = Pki::new()?;
    let (endpoint, seen) = https_server(&pki, false).await?;
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "otel_environment_variables_configure_tls_protocol_and_headers",
            "--nocapture",
        ])
        .env(CHILD_MARKER, "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.file("ca.pem"))
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20from-env",
        )
        .env_remove("OTEL_SERVICE_NAME")
        .output()
        .await?;
    assert!(
        output.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let traces: Vec<Received> = seen
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/traces")
        .collect();
    assert_eq!(traces.len(), 1, "{traces:#?}");
    assert_eq!(traces[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(traces[0].authorization.as_deref(), Some("Bearer from-env"));
    assert_eq!(traces[0].span_names, vec!["configured-by-env".to_owned()]);
    Ok(())
}
