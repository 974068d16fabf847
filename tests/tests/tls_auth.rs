//! TLS, mTLS and bearer tokens on the OTLP receiver, end to end: certificates are made in
//! the test (rcgen), real clients (the Python OTLP exporters and a raw gRPC / HTTP call of
//! the same libraries, the collector's own OTLP exporter between two collectors) send, and
//! what arrived is read back from the file exporter. Each refusal is checked for its
//! status and the collector keeps serving after it.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aurastream_e2e::otlp_json;
use aurastream_e2e::{Collector, eventually, python_client, read_jsonl};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::Value;

const TOKEN: &str = "e2e-token-7f3a";

/// A CA, and leaf certificates it signs, written as PEM files into a directory.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    ca_file: PathBuf,
    dir: PathBuf,
}

impl Authority {
    fn new(dir: &Path, name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let ca_file = dir.join(format!("{name}.crt"));
        std::fs::write(&ca_file, params.self_signed(&key).unwrap().pem()).unwrap();
        Authority {
            issuer: Issuer::new(params, key),
            ca_file,
            dir: dir.to_path_buf(),
        }
    }

    /// `(cert_file, key_file)` for `name`; `expired` dates it in the past.
    fn leaf(
        &self,
        name: &str,
        usage: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = self.dir.join(format!("{name}.crt"));
        let key_file = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

/// Certificates shared by a test: the collector's CA and server certificate, a client
/// certificate from the same CA, one from another CA, and an expired one.
struct Pki {
    _dir: tempfile::TempDir,
    ca: Authority,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
    stranger: (PathBuf, PathBuf),
    expired: (PathBuf, PathBuf),
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::new(dir.path(), "e2e-ca");
        let other = Authority::new(dir.path(), "other-ca");
        Pki {
            server: ca.leaf("collector", ExtendedKeyUsagePurpose::ServerAuth, false),
            client: ca.leaf("sidecar-a", ExtendedKeyUsagePurpose::ClientAuth, false),
            stranger: other.leaf("stranger", ExtendedKeyUsagePurpose::ClientAuth, false),
            expired: ca.leaf("expired", ExtendedKeyUsagePurpose::ClientAuth, true),
            ca,
            _dir: dir,
        }
    }
}

fn tls_block(pki: &Pki, extra: &str) -> String {
    format!(
        "{{ cert_file: {}, key_file: {}, client_ca_file: {}{extra} }}",
        pki.server.0.display(),
        pki.server.1.display(),
        pki.ca.ca_file.display()
    )
}

/// A collector whose gRPC and HTTP receivers require mTLS and the bearer token, writing
/// spans to `traces.jsonl`.
fn gateway_config(pki: &Pki, ports: &aurastream_e2e::Ports, dir: &Path) -> String {
    let tls = tls_block(pki, "");
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
        tls: {tls}
        auth: {{ authenticator: bearertokenauth }}
      http:
        endpoint: 127.0.0.1:{http}
        tls: {tls}
        auth: {{ authenticator: bearertokenauth }}
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
  bearertokenauth: {{ token: {TOKEN} }}
exporters:
  file: {{ path: {dir}/traces.jsonl }}
service:
  extensions: [health_check, bearertokenauth]
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"#,
        grpc = ports.grpc,
        http = ports.http,
        health = ports.health,
        dir = dir.display(),
    )
}

#[derive(Default)]
struct Send<'a> {
    cert: Option<&'a (PathBuf, PathBuf)>,
    token: Option<&'a str>,
    plaintext: bool,
}

/// Runs the Python client; returns its JSON answer.
fn python_send(c: &Collector, pki: &Pki, protocol: &str, how: Send<'_>) -> Value {
    let port = if protocol == "grpc" {
        c.ports.grpc
    } else {
        c.ports.http
    };
    let scheme = if how.plaintext && protocol == "http" {
        "http"
    } else {
        "https"
    };
    let endpoint = format!("{scheme}://localhost:{port}");
    let mut command = python_client("send_tls.py", protocol, &endpoint, "tls-e2e");
    command.arg("--ca").arg(&pki.ca.ca_file);
    if let Some((cert, key)) = how.cert {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    if let Some(token) = how.token {
        command.args(["--token", token]);
    }
    if how.plaintext {
        command.arg("--plaintext");
    }
    let out = command.output().expect("run send_tls.py");
    assert!(
        out.status.success(),
        "send_tls.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    answer["log"] = String::from_utf8_lossy(&out.stderr).into();
    answer
}

fn span_ids(c: &Collector) -> BTreeSet<String> {
    otlp_json::spans(&read_jsonl(&c.path("traces.jsonl")))
        .into_iter()
        .map(|s| s.span_id)
        .collect()
}

fn sent_ids(answer: &Value) -> BTreeSet<String> {
    answer["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn listener_event(c: &Collector, transport: &str, event: &str) -> f64 {
    c.metric(
        "aurastream_listener_events_total",
        &[
            &format!("component=\"receiver/otlp/{transport}\""),
            &format!("event=\"{event}\""),
        ],
    )
}

#[test]
fn python_clients_over_mtls_with_a_bearer_token_deliver_and_every_bad_client_is_refused() {
    let pki = Pki::new();
    let mut c = Collector::start(|ports, dir| gateway_config(&pki, ports, dir));
    let mut delivered = BTreeSet::new();
    for protocol in ["grpc", "http"] {
        let good = || Send {
            cert: Some(&pki.client),
            token: Some(TOKEN),
            ..Send::default()
        };
        let answer = python_send(&c, &pki, protocol, good());
        assert_eq!(answer["result"], "SUCCESS", "{protocol}: {answer}");
        delivered.extend(sent_ids(&answer));

        let refusals: Vec<(&str, Send<'_>, Value)> = vec![
            (
                "missing token",
                Send {
                    cert: Some(&pki.client),
                    ..Send::default()
                },
                if protocol == "grpc" {
                    "UNAUTHENTICATED".into()
                } else {
                    401.into()
                },
            ),
            (
                "wrong token",
                Send {
                    cert: Some(&pki.client),
                    token: Some("e2e-token-7f3b"),
                    ..Send::default()
                },
                if protocol == "grpc" {
                    "UNAUTHENTICATED".into()
                } else {
                    401.into()
                },
            ),
        ];
        for (what, how, status) in refusals {
            let answer = python_send(&c, &pki, protocol, how);
            assert_eq!(answer["result"], "FAILURE", "{protocol} {what}: {answer}");
            assert_eq!(answer["status"], status, "{protocol} {what}: {answer}");
        }
        // No handshake: no client certificate, one from another CA, an expired one, and
        // plain text to the TLS port.
        let handshakes_before = listener_event(&c, protocol, "tls_handshake_failed");
        for (what, how) in [
            (
                "no client certificate",
                Send {
                    token: Some(TOKEN),
                    ..Send::default()
                },
            ),
            (
                "another CA",
                Send {
                    cert: Some(&pki.stranger),
                    token: Some(TOKEN),
                    ..Send::default()
                },
            ),
            (
                "expired",
                Send {
                    cert: Some(&pki.expired),
                    token: Some(TOKEN),
                    ..Send::default()
                },
            ),
            (
                "plain text",
                Send {
                    token: Some(TOKEN),
                    plaintext: true,
                    ..Send::default()
                },
            ),
        ] {
            let answer = python_send(&c, &pki, protocol, how);
            assert_eq!(answer["result"], "FAILURE", "{protocol} {what}: {answer}");
            let status = &answer["status"];
            let refused = if protocol == "grpc" {
                status == "UNAVAILABLE"
            } else {
                status.is_string() && status != "OK"
            };
            assert!(refused, "{protocol} {what}: {answer}");
        }
        assert!(
            listener_event(&c, protocol, "tls_handshake_failed") >= handshakes_before + 4.0,
            "{protocol}: every refused handshake counted"
        );
        assert!(listener_event(&c, protocol, "unauthenticated") >= 4.0);

        // Still serving.
        let answer = python_send(&c, &pki, protocol, good());
        assert_eq!(
            answer["result"], "SUCCESS",
            "{protocol} after refusals: {answer}"
        );
        delivered.extend(sent_ids(&answer));
    }
    eventually(
        "every delivered span in the file",
        Duration::from_secs(20),
        || span_ids(&c) == delivered,
    );
    let stderr = c.stderr();
    assert!(!stderr.contains(TOKEN), "the token is never logged");
    assert_eq!(c.stop(), 0);
}

/// The sidecar → gateway hop: the collector's `otlp` exporter over mTLS with the bearer
/// token, every span the Python client sent to the sidecar arrives at the gateway.
#[test]
fn sidecar_to_gateway_over_mtls_with_a_bearer_token_delivers_every_span() {
    sidecar_to_gateway_delivers_every_span(|gateway| {
        format!("otlp:\n    endpoint: https://localhost:{}", gateway.grpc)
    });
}

/// The same hop over OTLP/HTTP: the `otlphttp` exporter's `tls` block (CA, client
/// certificate) against the gateway's HTTP receiver, which requires both.
#[test]
fn otlphttp_sidecar_to_gateway_over_mtls_with_a_bearer_token_delivers_every_span() {
    sidecar_to_gateway_delivers_every_span(|gateway| {
        format!(
            "otlphttp:\n    endpoint: https://localhost:{}",
            gateway.http
        )
    });
}

/// A sidecar collector whose exporter (`exporter(gateway ports)`: the type and endpoint
/// lines) sends over mTLS with the bearer token to a gateway that requires both; every span
/// a Python client sent to the sidecar is read back from the gateway's file.
fn sidecar_to_gateway_delivers_every_span(exporter: impl Fn(&aurastream_e2e::Ports) -> String) {
    let pki = Pki::new();
    let mut gateway = Collector::start(|ports, dir| gateway_config(&pki, ports, dir));
    let exporter = exporter(&gateway.ports);
    let exporter_type = exporter.split(':').next().unwrap().to_string();
    let mut sidecar = Collector::start(|ports, _| {
        format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
  bearertokenauth: {{ token: {TOKEN} }}
exporters:
  {exporter}
    tls: {{ ca_file: {ca}, cert_file: {cert}, key_file: {key} }}
    auth: {{ authenticator: bearertokenauth }}
    headers: {{ x-hop: sidecar }}
service:
  extensions: [health_check, bearertokenauth]
  pipelines:
    traces: {{ receivers: [otlp], exporters: [{exporter_type}] }}
"#,
            grpc = ports.grpc,
            health = ports.health,
            ca = pki.ca.ca_file.display(),
            cert = pki.client.0.display(),
            key = pki.client.1.display(),
        )
    });
    let out = python_client(
        "send_tls.py",
        "grpc",
        &format!("http://127.0.0.1:{}", sidecar.ports.grpc),
        "sidecar-app",
    )
    .args(["--plaintext", "--spans", "200"])
    .output()
    .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["result"], "SUCCESS", "{answer}");
    let sent = sent_ids(&answer);
    assert_eq!(sent.len(), 200);
    eventually(
        "all 200 spans at the gateway",
        Duration::from_secs(30),
        || span_ids(&gateway) == sent,
    );
    assert_eq!(sidecar.stop(), 0);
    assert_eq!(gateway.stop(), 0);
}

/// The certificate presented in a handshake, as its DER bytes.
fn presented_certificate(port: u16, ca_file: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = "localhost".try_into().unwrap();
    let mut tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).unwrap();
    }
    let cert = tls.peer_certificates().unwrap()[0].as_ref().to_vec();
    let _ = tcp.flush();
    let _ = tcp.read(&mut [0u8; 0]);
    cert
}

/// A certificate replaced on disk is presented after `reload_interval`, without a restart,
/// and data keeps flowing over the new one.
#[test]
fn a_certificate_replaced_on_disk_is_used_after_reload_interval() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("live.crt"), dir.path().join("live.key"));
    std::fs::copy(&pki.server.0, &cert).unwrap();
    std::fs::copy(&pki.server.1, &key).unwrap();
    let mut c = Collector::start(|ports, out| {
        format!(
            r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{http}
        tls: {{ cert_file: {cert}, key_file: {key}, reload_interval: 200ms }}
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
exporters:
  file: {{ path: {out}/traces.jsonl }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"#,
            http = ports.http,
            health = ports.health,
            cert = cert.display(),
            key = key.display(),
            out = out.display(),
        )
    });
    let first = presented_certificate(c.ports.http, &pki.ca.ca_file);
    let (new_cert, new_key) = pki.ca.leaf(
        "collector-rotated",
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    // Key first, then certificate, each by rename (as secret managers rotate files); a
    // check between the two renames sees a mismatch and keeps the old pair.
    std::fs::copy(&new_key, dir.path().join("next.key")).unwrap();
    std::fs::rename(dir.path().join("next.key"), &key).unwrap();
    std::fs::copy(&new_cert, dir.path().join("next.crt")).unwrap();
    std::fs::rename(dir.path().join("next.crt"), &cert).unwrap();
    let rotated = std::fs::read_to_string(&new_cert).unwrap();
    let rotated_der = rustls::pki_types::pem::PemObject::from_pem_slice(rotated.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'_>| c.as_ref().to_vec())
        .unwrap();
    assert_ne!(first, rotated_der);
    eventually(
        "the rotated certificate is presented",
        Duration::from_secs(20),
        || presented_certificate(c.ports.http, &pki.ca.ca_file) == rotated_der,
    );
    let answer = python_send(&c, &pki, "http", Send::default());
    assert_eq!(answer["result"], "SUCCESS", "{answer}");
    let sent = sent_ids(&answer);
    eventually(
        "spans sent over the new certificate",
        Duration::from_secs(20),
        || span_ids(&c) == sent,
    );
    assert!(listener_event(&c, "http", "tls_reloaded") >= 1.0);
    assert_eq!(c.stop(), 0);
}

/// `GET path` over TLS to `port` trusting `ca_file`, with `client` as the client
/// certificate when given; the whole answer, or why there is none.
fn https_get(
    port: u16,
    path: &str,
    ca_file: &Path,
    client: Option<&(PathBuf, PathBuf)>,
) -> std::io::Result<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tls =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut stream = rustls::StreamOwned::new(tls, tcp);
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Whether `aurastream-collector healthcheck` (the container's health check) gets an
/// answer from `port` with `args`.
fn healthcheck(port: u16, args: &[&std::ffi::OsStr]) -> bool {
    std::process::Command::new(aurastream_e2e::workspace_bin("aurastream-collector"))
        .arg("healthcheck")
        .arg(format!("localhost:{port}"))
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run healthcheck")
        .success()
}

/// The `healthcheck` options for a client certificate `(cert, key)` and the server's CA.
fn mtls_args<'a>(
    ca_file: &'a Path,
    (cert, key): &'a (PathBuf, PathBuf),
) -> Vec<&'a std::ffi::OsStr> {
    vec![
        "--ca-file".as_ref(),
        ca_file.as_os_str(),
        "--cert-file".as_ref(),
        cert.as_os_str(),
        "--key-file".as_ref(),
        key.as_os_str(),
    ]
}

/// `/health` and `/metrics` behind mTLS: only a client certificate from the configured
/// client CA gets in, through the `healthcheck` subcommand and a raw TLS client alike; a
/// client CA replaced on disk is used after `reload_interval`, without a restart.
#[test]
fn health_check_over_mtls_follows_a_rotated_client_ca() {
    let pki = Pki::new();
    let other = Authority::new(pki.ca.dir.as_path(), "next-client-ca");
    let next_client = other.leaf("sidecar-b", ExtendedKeyUsagePurpose::ClientAuth, false);
    let dir = tempfile::tempdir().unwrap();
    let client_ca = dir.path().join("clients-ca.crt");
    std::fs::copy(&pki.ca.ca_file, &client_ca).unwrap();
    let ca = pki.ca.ca_file.as_os_str();
    let with = |client| mtls_args(&pki.ca.ca_file, client);
    let mut c = Collector::start_ready_when(
        |ports, out| {
            format!(
                r#"
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
extensions:
  health_check:
    endpoint: 127.0.0.1:{health}
    tls:
      cert_file: {cert}
      key_file: {key}
      client_ca_file: {client_ca}
      reload_interval: 200ms
exporters:
  file: {{ path: {out}/traces.jsonl }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"#,
                http = ports.http,
                health = ports.health,
                cert = pki.server.0.display(),
                key = pki.server.1.display(),
                client_ca = client_ca.display(),
                out = out.display(),
            )
        },
        |c| healthcheck(c.ports.health, &with(&pki.client)),
    );
    let port = c.ports.health;
    let health = https_get(port, "/health", &pki.ca.ca_file, Some(&pki.client)).unwrap();
    assert!(
        health.starts_with("HTTP/1.0 200") && health.contains("\"overall_status\":\"healthy\""),
        "{health}"
    );
    assert!(
        https_get(port, "/health", &pki.ca.ca_file, None).is_err(),
        "no client certificate"
    );
    assert!(!healthcheck(port, &with(&pki.stranger)), "another CA");
    assert!(!healthcheck(port, &with(&pki.expired)), "expired");
    assert!(!healthcheck(port, &[]), "plain text to a TLS port");
    assert!(
        !healthcheck(port, &["--ca-file".as_ref(), ca]),
        "no client certificate"
    );

    // Rotate the client CA by rename, as secret managers do.
    std::fs::copy(&other.ca_file, dir.path().join("next.crt")).unwrap();
    std::fs::rename(dir.path().join("next.crt"), &client_ca).unwrap();
    eventually(
        "a client of the new CA is let in",
        Duration::from_secs(20),
        || healthcheck(port, &with(&next_client)),
    );
    assert!(!healthcheck(port, &with(&pki.client)), "the old CA is out");
    let metrics = https_get(port, "/metrics", &pki.ca.ca_file, Some(&next_client)).unwrap();
    let reloads = aurastream_e2e::metric_sum(
        &metrics,
        "aurastream_listener_events_total",
        &[
            "component=\"extension/health_check\"",
            "event=\"tls_reloaded\"",
        ],
    );
    assert!(reloads >= 1.0, "{metrics}");
    assert_eq!(c.stop(), 0);
}

/// A client sending one header byte per second is cut off by `read_header_timeout`, and
/// 1,000 idle connections do not keep a normal client out.
#[test]
fn slowloris_is_cut_off_and_idle_connections_do_not_block_clients() {
    let mut c = Collector::start(|ports, dir| {
        aurastream_e2e::file_config(ports, dir).replace(
            &format!("endpoint: 127.0.0.1:{}\n", ports.http),
            &format!(
                "endpoint: 127.0.0.1:{}\n        read_header_timeout: 2s\n",
                ports.http
            ),
        )
    });
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(("127.0.0.1", c.ports.http)).unwrap())
        .collect();
    let mut slow = TcpStream::connect(("127.0.0.1", c.ports.http)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let request = b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n";
    let mut cut = false;
    for b in request.iter().cycle().take(120) {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        match slow.read(&mut [0u8; 512]) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Closed, reset, or answered (the request can never be complete): cut off.
            _ => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut, "the slow client was never cut off");
    assert!(listener_event(&c, "http", "read_header_timeout") >= 1.0);
    let answer = python_client("send_otlp.py", "http", &c.ports.http_url(), "normal")
        .output()
        .unwrap();
    assert!(
        answer.status.success(),
        "{}",
        String::from_utf8_lossy(&answer.stderr)
    );
    let sent: Value = serde_json::from_slice(&answer.stdout).unwrap();
    let expected = sent["spans"].as_array().unwrap().len();
    eventually("the normal client's spans", Duration::from_secs(20), || {
        otlp_json::spans(&read_jsonl(&c.path("traces.jsonl"))).len() == expected
    });
    drop(idle);
    assert_eq!(c.stop(), 0);
}

/// Log records are written into sensitive categories only by the client certificates
/// allowed them: the collector's own OTLP exporter (a Rust OTLP/gRPC client) sends over
/// mTLS as two clients; what the other may not write is refused through OTLP partial
/// success, counted, and absent from the file.
#[test]
fn sensitive_log_categories_only_from_allowed_certificate_subjects() {
    use aurastream_collector::component::{Exporter, Reason};
    use aurastream_collector::exporter::otlp::OtlpExporter;
    use aurastream_collector::exporter::otlp::config::OtlpExporterConfig;
    use aurastream_collector::model::SignalData;
    use aurastream_collector::net::tls_client::ClientTlsConfig;
    use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value};
    use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};

    let pki = Pki::new();
    let other_client = pki
        .ca
        .leaf("other-client", ExtendedKeyUsagePurpose::ClientAuth, false);
    let c = Collector::start(|ports, dir| {
        format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
        tls: {tls}
    authorization:
      allow: {{ "CN=sidecar-a": [audit] }}
      on_denied: refuse
extensions:
  health_check: {{ endpoint: 127.0.0.1:{health} }}
exporters:
  file: {{ path: {dir}/logs.jsonl }}
service:
  extensions: [health_check]
  pipelines:
    logs: {{ receivers: [otlp], exporters: [file] }}
"#,
            grpc = ports.grpc,
            health = ports.health,
            tls = tls_block(&pki, ""),
            dir = dir.display(),
        )
    });
    let record = |who: &str, category: &str| LogRecord {
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!("{who} {category}"))),
        }),
        attributes: vec![KeyValue {
            key: "log.category".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(category.into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let batch = |who: &str| {
        SignalData::Logs(vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: ["application", "audit", "security"]
                    .map(|c| record(who, c))
                    .to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }])
    };
    let runtime = aurastream_e2e::test_runtime();
    let mut refused = Vec::new();
    for (who, (cert, key)) in [("sidecar-a", &pki.client), ("other-client", &other_client)] {
        let config = OtlpExporterConfig {
            endpoint: format!("https://localhost:{}", c.ports.grpc),
            tls: ClientTlsConfig {
                ca_file: Some(pki.ca.ca_file.clone()),
                cert_file: Some(cert.clone()),
                key_file: Some(key.clone()),
                ..Default::default()
            },
            ..OtlpExporterConfig::default()
        };
        let exporter = OtlpExporter::new(&config, &Default::default()).unwrap();
        let report = runtime.block_on(exporter.export(&batch(who))).unwrap();
        refused.push((who, report.dropped));
    }
    assert_eq!(
        refused,
        [
            (
                "sidecar-a",
                vec![(Reason::Named("rejected_by_destination"), 1)]
            ),
            (
                "other-client",
                vec![(Reason::Named("rejected_by_destination"), 2)]
            ),
        ]
    );
    let expected: BTreeSet<String> = [
        "sidecar-a application",
        "sidecar-a audit",
        "other-client application",
    ]
    .map(String::from)
    .into();
    eventually(
        "the allowed records in the file",
        Duration::from_secs(20),
        || {
            let bodies: BTreeSet<String> = otlp_json::logs(&read_jsonl(&c.path("logs.jsonl")))
                .into_iter()
                .map(|l| l.body.as_str().unwrap_or_default().to_string())
                .collect();
            bodies == expected
        },
    );
    assert_eq!(
        c.metric(
            "aurastream_receiver_refused_items_total",
            &["reason=\"unauthorized\""]
        ),
        3.0
    );
}
