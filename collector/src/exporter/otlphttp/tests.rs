//! The exporter against the repository's stand-in for AWS's OTLP endpoints
//! (`aurastream_e2e::otlp_peer`, a fake: no local peer serves them), which recomputes
//! every SigV4 signature with the test's credentials.

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use aurastream_e2e::otlp_peer::{Faults, OtlpPeer, PeerConfig};
use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use super::config::{Compression, Encoding, OtlpHttpExporterConfig};
use super::limits::{TOO_OLD, TRUNCATED_ATTRIBUTE};
use super::*;
use crate::aws::sigv4::Signer;
use crate::extension::sigv4auth::SigV4Authenticator;

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

fn spans_at(n: u64, start: u64) -> SignalData {
    SignalData::Traces(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: (0..n)
                .map(|i| Span {
                    trace_id: vec![7; 16],
                    span_id: (i + 1).to_be_bytes().to_vec(),
                    name: format!("span {i}"),
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 1_000,
                    attributes: vec![kv("order.id", &i.to_string())],
                    ..Span::default()
                })
                .collect(),
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }])
}

fn spans(n: u64) -> SignalData {
    spans_at(n, now_nanos() - 60_000_000_000)
}

/// A signer with the peer's credentials (or `secret`), for `region`/`service`.
fn signer(secret: &str, region: &str, service: &str) -> Arc<dyn ClientAuthenticator> {
    let sdk = SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", secret, None, None, "test",
        )))
        .build();
    Arc::new(SigV4Authenticator(
        Signer::new(Some(region.into()), Some(service.into()), None).with_sdk_config(sdk),
    ))
}

fn exporter(
    addr: SocketAddr,
    config: OtlpHttpExporterConfig,
    auth: Arc<dyn ClientAuthenticator>,
) -> OtlpHttpExporter {
    let config = OtlpHttpExporterConfig {
        endpoint: Some(format!("http://{addr}")),
        timeout: Duration::from_secs(10),
        ..config
    };
    OtlpHttpExporter::new(&config, Some(auth), None).unwrap()
}

fn xray(addr: SocketAddr) -> OtlpHttpExporter {
    exporter(
        addr,
        OtlpHttpExporterConfig {
            xray_limits: Some(true),
            ..OtlpHttpExporterConfig::default()
        },
        signer("testing", "us-east-1", "xray"),
    )
}

fn span_ids(peer: &OtlpPeer) -> Vec<Vec<u8>> {
    peer.resource_spans()
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.clone())
        .collect()
}

#[tokio::test]
async fn signed_spans_arrive_with_their_attributes_in_every_encoding() {
    let (peer, addr) = OtlpPeer::start(PeerConfig::default()).await;
    for (encoding, compression) in [
        (Encoding::Proto, Compression::Gzip),
        (Encoding::Proto, Compression::None),
        (Encoding::Json, Compression::Gzip),
        (Encoding::Json, Compression::None),
    ] {
        let e = exporter(
            addr,
            OtlpHttpExporterConfig {
                encoding,
                compression,
                ..OtlpHttpExporterConfig::default()
            },
            signer("testing", "us-east-1", "xray"),
        );
        assert_eq!(
            e.export(&spans(3)).await.unwrap(),
            ExportReport::delivered()
        );
    }
    assert!(peer.refusals().is_empty(), "{:?}", peer.refusals());
    let got = peer.resource_spans();
    let all: Vec<&Span> = got
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    assert_eq!(all.len(), 12);
    for s in all {
        let i: u64 = s.name.trim_start_matches("span ").parse().unwrap();
        assert_eq!(s.span_id, (i + 1).to_be_bytes());
        assert_eq!(s.trace_id, [7; 16]);
        assert_eq!(s.attributes, [kv("order.id", &i.to_string())]);
    }
}

#[tokio::test]
async fn a_bad_signature_config_fails_clearly_and_permanently() {
    let (peer, addr) = OtlpPeer::start(PeerConfig::default()).await;
    for (auth, want_reason, want_message) in [
        (
            signer("wrong-secret", "us-east-1", "xray"),
            "InvalidSignatureException",
            "does not match",
        ),
        (
            signer("testing", "eu-west-1", "xray"),
            "InvalidSignatureException",
            "scoped to a valid region",
        ),
        (
            signer("testing", "us-east-1", "logs"),
            "InvalidSignatureException",
            "got us-east-1/logs",
        ),
    ] {
        let err = exporter(addr, OtlpHttpExporterConfig::default(), auth)
            .export(&spans(1))
            .await
            .unwrap_err();
        assert!(matches!(err, ExportError::Permanent { .. }), "{err:?}");
        assert_eq!(err.reason(), want_reason);
        assert!(err.to_string().contains(want_message), "{err}");
        assert!(err.to_string().contains("HTTP 403"), "{err}");
    }
    assert!(span_ids(&peer).is_empty());
}

#[tokio::test]
async fn throttling_and_server_errors_are_left_to_the_driver() {
    let (peer, addr) = OtlpPeer::start(PeerConfig::default()).await;
    let e = xray(addr);
    peer.set_faults(Faults {
        throttle_percent: 100,
        server_error_percent: 0,
    });
    let err = e.export(&spans(2)).await.unwrap_err();
    let ExportError::Retryable {
        reason,
        retry_after,
        ..
    } = &err
    else {
        panic!("expected retryable, got {err:?}")
    };
    assert_eq!(reason, "ThrottlingException");
    assert_eq!(*retry_after, Some(Duration::ZERO));
    peer.set_faults(Faults {
        throttle_percent: 0,
        server_error_percent: 100,
    });
    let err = e.export(&spans(2)).await.unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
    assert_eq!(err.reason(), "ServiceUnavailableException");
    peer.set_faults(Faults::default());
    e.export(&spans(2)).await.unwrap();
    assert_eq!(span_ids(&peer).len(), 2);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = xray(addr).export(&spans(1)).await.unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
    assert_eq!(err.reason(), "connection");
}

#[tokio::test]
async fn more_spans_than_xray_takes_are_sent_in_requests_that_fit() {
    let (peer, addr) = OtlpPeer::start(PeerConfig::default()).await;
    let report = xray(addr).export(&spans(25_000)).await.unwrap();
    assert_eq!(report, ExportReport::delivered());
    assert!(peer.refusals().is_empty(), "{:?}", peer.refusals());
    assert_eq!(peer.request_sizes(), [10_000, 10_000, 5_000]);
    let want: Vec<Vec<u8>> = (1..=25_000u64).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(span_ids(&peer), want, "every span once, in order");
}

#[tokio::test]
async fn without_the_limits_the_peer_refuses_what_xray_would() {
    let (_peer, addr) = OtlpPeer::start(PeerConfig::default()).await;
    let e = exporter(
        addr,
        OtlpHttpExporterConfig {
            xray_limits: Some(false),
            ..OtlpHttpExporterConfig::default()
        },
        signer("testing", "us-east-1", "xray"),
    );
    let err = e.export(&spans(10_001)).await.unwrap_err();
    assert_eq!(err.reason(), "ValidationException");
    assert!(err.to_string().contains("at most 10000"), "{err}");
    // Spans too old are rejected by the peer in a partial success, counted by reason.
    let old = spans_at(2, now_nanos() - 20 * 24 * 3600 * 1_000_000_000);
    let report = e.export(&old).await.unwrap();
    assert_eq!(
        report.dropped,
        [(Reason::Named(REJECTED_BY_DESTINATION), 2)]
    );
}

#[tokio::test]
async fn a_span_over_200_kb_is_trimmed_and_marked_not_refused() {
    let (peer, addr) = OtlpPeer::start(PeerConfig::default()).await;
    let SignalData::Traces(mut r) = spans(2) else {
        unreachable!()
    };
    r[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("payload", &"x".repeat(300_000)));
    let report = xray(addr).export(&SignalData::Traces(r)).await.unwrap();
    assert_eq!(report, ExportReport::delivered());
    let got = peer.resource_spans();
    let stored = &got[0].scope_spans[0].spans;
    assert_eq!(stored.len(), 2);
    let keys: Vec<&str> = stored[0]
        .attributes
        .iter()
        .map(|a| a.key.as_str())
        .collect();
    assert_eq!(keys, ["order.id", TRUNCATED_ATTRIBUTE]);
    assert_eq!(stored[0].dropped_attributes_count, 1);
    assert_eq!(stored[1].attributes, [kv("order.id", "1")]);
}

#[tokio::test]
async fn spans_outside_the_window_are_counted_and_the_rest_sent() {
    let (peer, addr) = OtlpPeer::start(PeerConfig::default()).await;
    let mut batch = spans(3);
    batch.append(spans_at(2, now_nanos() - 15 * 24 * 3600 * 1_000_000_000));
    let report = xray(addr).export(&batch).await.unwrap();
    assert_eq!(report.dropped, [(Reason::Named(TOO_OLD), 2)]);
    assert_eq!(span_ids(&peer).len(), 3);
}

#[tokio::test]
async fn logs_go_with_their_group_and_stream_headers() {
    let (peer, addr) = OtlpPeer::start(PeerConfig {
        service: "logs".into(),
        ..PeerConfig::default()
    })
    .await;
    let e = exporter(
        addr,
        OtlpHttpExporterConfig {
            headers: [
                ("x-aws-log-group".to_string(), "/aws/app".to_string()),
                ("x-aws-log-stream".to_string(), "default".to_string()),
            ]
            .into(),
            ..OtlpHttpExporterConfig::default()
        },
        signer("testing", "us-east-1", "logs"),
    );
    let logs = SignalData::Logs(vec![ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: vec![LogRecord {
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("hello".into())),
                }),
                attributes: vec![kv("log.category", "audit")],
                ..LogRecord::default()
            }],
            ..ScopeLogs::default()
        }],
        ..ResourceLogs::default()
    }]);
    e.export(&logs).await.unwrap();
    let stored = peer.logs();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].group.as_str(), stored[0].stream.as_str()),
        ("/aws/app", "default")
    );
    let SignalData::Logs(sent) = logs else {
        unreachable!()
    };
    assert_eq!(stored[0].resource_logs, sent);
    // A signal without an endpoint of its own is refused, saying which option to set.
    let only_traces = OtlpHttpExporter::new(
        &OtlpHttpExporterConfig {
            traces_endpoint: Some(format!("http://{addr}/v1/traces")),
            ..OtlpHttpExporterConfig::default()
        },
        None,
        None,
    )
    .unwrap();
    let err = only_traces
        .export(&SignalData::Logs(sent))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "no_endpoint");
    assert!(err.to_string().contains("logs_endpoint"), "{err}");
}

#[test]
fn collector_option_names_parse_and_urls_follow_the_collector() {
    let c: OtlpHttpExporterConfig = serde_yaml_ng::from_str(
        "endpoint: https://gw.internal:4318/\nlogs_endpoint: https://logs.us-east-1.amazonaws.com/v1/logs\n\
         encoding: json\ncompression: none\nheaders: {x-aws-log-group: g}\ntimeout: 5s\n\
         auth: {authenticator: sigv4auth/logs}\nretry_on_failure: {enabled: true}\n\
         sending_queue: {num_consumers: 2}\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.url(Signal::Traces).unwrap(),
        "https://gw.internal:4318/v1/traces"
    );
    assert_eq!(
        c.url(Signal::Logs).unwrap(),
        "https://logs.us-east-1.amazonaws.com/v1/logs"
    );
    assert!(!c.xray_limits());
    let x: OtlpHttpExporterConfig = serde_yaml_ng::from_str(
        "traces_endpoint: https://xray.us-east-1.amazonaws.com/v1/traces\n",
    )
    .unwrap();
    assert!(x.xray_limits(), "on by default for X-Ray");
    assert!(x.url(Signal::Metrics).is_none());
    for (yaml, want) in [
        ("{}", "endpoint is required"),
        ("endpoint: gw:4318", "http:// or https://"),
        (
            "endpoint: http://gw\nheaders: {'bad header': x}",
            "not a valid header name",
        ),
        ("endpoint: http://gw\ntimeout: 0s", "timeout"),
        (
            "endpoint: http://gw\ntls: {ca_file: /etc/ca.crt}",
            "endpoint `http://gw` is http://; tls options apply to https:// endpoints",
        ),
        (
            "endpoint: https://gw\ntls: {insecure: true}",
            "contradicts an https:// endpoint",
        ),
        (
            "endpoint: https://gw\ntls: {cert_file: /c.crt}",
            "cert_file and key_file go together",
        ),
    ] {
        let c: OtlpHttpExporterConfig = serde_yaml_ng::from_str(yaml).unwrap();
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains(want), "{yaml}: {err}");
    }
    assert!(serde_yaml_ng::from_str::<OtlpHttpExporterConfig>("encoding: avro").is_err());
}

#[test]
fn a_tls_file_that_cannot_be_read_fails_the_build_naming_it() {
    let c: OtlpHttpExporterConfig = serde_yaml_ng::from_str(
        "endpoint: https://gw.internal:4318\ntls: {ca_file: /nonexistent/otlphttp-ca.crt}\n",
    )
    .unwrap();
    c.validate().unwrap();
    let err = OtlpHttpExporter::new(&c, None, None).err().unwrap();
    let BuildError::Unusable { option, source } = &err else {
        panic!("expected an unusable tls block, got {err}");
    };
    assert_eq!(option, "tls");
    assert!(
        source.downcast_ref::<TlsError>().is_some(),
        "the cause stays typed: {source:?}"
    );
    assert!(
        err.to_string().contains("/nonexistent/otlphttp-ca.crt"),
        "{err}"
    );
}
