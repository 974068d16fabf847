//! The accept loop and TLS loading against real sockets and real certificates (rcgen).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::limits::Limits;
use super::server::{Listener, serve};
use super::tls_error::TlsError;
use super::tls_server::{ServerTls, ServerTlsConfig};
use crate::telemetry::metrics::SelfMetrics;

fn write_pair(
    dir: &Path,
    name: &str,
    not_after_year: i32,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn tls_config(cert: &Path, key: &Path) -> ServerTlsConfig {
    ServerTlsConfig {
        cert_file: Some(cert.into()),
        key_file: Some(key.into()),
        ..Default::default()
    }
}

#[test]
fn unusable_pem_files_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let quiet: Arc<dyn Fn(bool) + Send + Sync> = Arc::new(|_| {});
    let (cert, key) = write_pair(dir.path(), "good", 2100);
    ServerTls::load(&tls_config(&cert, &key), quiet.clone()).unwrap();

    let missing = dir.path().join("missing.crt");
    let e = ServerTls::load(&tls_config(&missing, &key), quiet.clone())
        .err()
        .unwrap();
    assert!(
        matches!(&e, TlsError::Read { path, .. } if *path == missing),
        "{e:?}"
    );
    assert!(e.to_string().contains("missing.crt: cannot read"), "{e}");

    let (_, other_key) = write_pair(dir.path(), "other", 2100);
    let e = ServerTls::load(&tls_config(&cert, &other_key), quiet.clone())
        .err()
        .unwrap();
    assert!(
        matches!(&e, TlsError::KeyMismatch { key_file, cert_file, .. }
            if *key_file == other_key && *cert_file == cert),
        "{e:?}"
    );
    assert!(e.to_string().contains("other.key does not match"), "{e}");

    let (old_cert, old_key) = write_pair(dir.path(), "old", 2001);
    let e = ServerTls::load(&tls_config(&old_cert, &old_key), quiet.clone())
        .err()
        .unwrap();
    assert!(
        matches!(&e, TlsError::Expired { path, .. } if *path == old_cert),
        "{e:?}"
    );
    assert!(e.to_string().contains("old.crt: certificate"), "{e}");

    std::fs::write(dir.path().join("junk.key"), "not a key").unwrap();
    let e = ServerTls::load(&tls_config(&cert, &dir.path().join("junk.key")), quiet)
        .err()
        .unwrap();
    assert!(
        matches!(&e, TlsError::NoPrivateKey { path, .. } if path.ends_with("junk.key")),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("junk.key: no usable private key"),
        "{e}"
    );
}

#[test]
fn versions_and_suites_are_checked() {
    assert!(matches!(
        super::protocol_versions(Some("1.1"), None),
        Err(TlsError::InsecureVersion {
            option: "min_version",
            ..
        })
    ));
    assert!(matches!(
        super::protocol_versions(None, Some("2")),
        Err(TlsError::UnknownVersion {
            option: "max_version",
            ..
        })
    ));
    assert_eq!(
        super::protocol_versions(Some("1.3"), None).unwrap().len(),
        1
    );
    assert!(matches!(
        super::protocol_versions(Some("1.3"), Some("1.2")),
        Err(TlsError::VersionsInverted)
    ));
    let p =
        super::provider_with_suites(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into()]).unwrap();
    assert!(p.cipher_suites.iter().any(|s| s.tls13().is_some()));
    assert_eq!(
        p.cipher_suites
            .iter()
            .filter(|s| s.tls13().is_none())
            .count(),
        1
    );
    let e = super::provider_with_suites(&["TLS_RSA_WITH_RC4_128_SHA".into()]).unwrap_err();
    assert!(
        matches!(&e, TlsError::UnknownCipherSuite { wanted, supported }
            if wanted == "TLS_RSA_WITH_RC4_128_SHA" && !supported.is_empty()),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("is not supported; supported: TLS_"),
        "{e}"
    );
}

#[test]
fn loopback_addresses() {
    assert!(super::is_loopback("127.0.0.1:4317"));
    assert!(super::is_loopback("[::1]:4317"));
    assert!(super::is_loopback("localhost:4317"));
    assert!(!super::is_loopback("0.0.0.0:4317"));
    assert!(!super::is_loopback("collector.internal:4317"));
}

async fn start(
    limits: Limits,
) -> (
    std::net::SocketAddr,
    Arc<SelfMetrics>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(SelfMetrics::new());
    let stop = CancellationToken::new();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let spec = Listener {
        component: "receiver/test/http".into(),
        tls: None,
        limits,
    };
    let task = serve(listener, spec, app, metrics.clone(), stop.clone());
    (addr, metrics, stop, task)
}

fn event(metrics: &SelfMetrics, event: &str) -> u64 {
    metrics.listener_event("receiver/test/http", event).get()
}

async fn get(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// A client sending its headers one byte at a time is cut off by `read_header_timeout`,
/// counted, and others are served meanwhile.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    let limits = Limits::http(16, Duration::from_millis(300), None, None, None);
    let (addr, metrics, stop, task) = start(limits).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut closed = false;
    for b in request.iter().cycle() {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {}
            Err(_) => assert!(get(addr).await.ends_with("ok")),
        }
    }
    assert!(closed);
    assert_eq!(event(&metrics, "read_header_timeout"), 1);
    stop.cancel();
    task.await.unwrap();
}

/// Past `max_connections`, new connections are closed at once and counted; idle ones are
/// closed after `idle_timeout`, which frees their slots.
#[tokio::test]
async fn connection_cap_and_idle_timeout() {
    let limits = Limits::http(
        2,
        Duration::from_secs(10),
        None,
        None,
        Some(Duration::from_millis(200)),
    );
    let (addr, metrics, stop, task) = start(limits).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // The two slots are taken once both are accepted.
    while metrics.listener_connections("receiver/test/http").get() < 2 {
        tokio::task::yield_now().await;
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(third.read(&mut buf).await.unwrap_or(0), 0, "closed at once");
    assert_eq!(event(&metrics, "refused_max_connections"), 1);
    for mut c in idle {
        assert_eq!(c.read(&mut buf).await.unwrap_or(0), 0, "closed when idle");
    }
    assert_eq!(event(&metrics, "idle_timeout"), 2);
    assert!(get(addr).await.ends_with("ok"));
    stop.cancel();
    task.await.unwrap();
}

/// A connection stuck mid-request does not hold up shutdown.
#[tokio::test]
async fn shutdown_does_not_wait_for_stuck_connections() {
    let limits = Limits::http(16, Duration::from_secs(3600), None, None, None);
    let (addr, metrics, stop, task) = start(limits).await;
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck.write_all(b"GET / HT").await.unwrap();
    while metrics.listener_connections("receiver/test/http").get() < 1 {
        tokio::task::yield_now().await;
    }
    stop.cancel();
    task.await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(stuck.read(&mut buf).await.unwrap_or(0), 0);
}
