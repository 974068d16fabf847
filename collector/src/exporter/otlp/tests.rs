use std::time::Duration;

use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

use super::config::{Compression, OtlpExporterConfig};
use super::test_server::{Answer, FakeGateway};
use super::*;

fn spans(n: u8) -> SignalData {
    SignalData::Traces(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: (0..n)
                .map(|i| Span {
                    trace_id: vec![i; 16],
                    span_id: vec![i; 8],
                    name: format!("span {i}"),
                    ..Span::default()
                })
                .collect(),
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }])
}

fn exporter(endpoint: String, compression: Compression) -> OtlpExporter {
    OtlpExporter::new(
        &OtlpExporterConfig {
            endpoint,
            compression,
            timeout: Duration::from_millis(500),
            ..OtlpExporterConfig::default()
        },
        &Default::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn delivers_spans_with_and_without_gzip() {
    let (fake, addr) = FakeGateway::start().await;
    for compression in [Compression::Gzip, Compression::None] {
        let e = exporter(addr.to_string(), compression);
        assert_eq!(
            e.export(&spans(3)).await.unwrap(),
            ExportReport::delivered()
        );
    }
    assert_eq!(fake.span_ids().len(), 6);
}

#[tokio::test]
async fn partial_success_counts_the_rejected_spans_as_dropped() {
    let (fake, addr) = FakeGateway::start().await;
    fake.answer(Answer::PartiallyReject(2));
    let report = exporter(addr.to_string(), Compression::Gzip)
        .export(&spans(5))
        .await
        .unwrap();
    assert_eq!(
        report.dropped,
        vec![(Reason::Named(REJECTED_BY_DESTINATION), 2)]
    );
}

#[tokio::test]
async fn refusals_map_to_retryable_or_permanent() {
    let (fake, addr) = FakeGateway::start().await;
    let e = exporter(addr.to_string(), Compression::Gzip);
    fake.answer(Answer::Reject(tonic::Code::Unavailable));
    let err = e.export(&spans(1)).await.unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
    assert_eq!(err.reason(), "unavailable");
    fake.answer(Answer::Reject(tonic::Code::InvalidArgument));
    let err = e.export(&spans(1)).await.unwrap_err();
    assert!(matches!(err, ExportError::Permanent { .. }), "{err:?}");
    assert_eq!(err.reason(), "invalid_argument");
}

#[tokio::test]
async fn a_slow_peer_times_out_as_retryable() {
    let (fake, addr) = FakeGateway::start().await;
    fake.answer(Answer::Stall(Duration::from_secs(5)));
    let err = exporter(addr.to_string(), Compression::Gzip)
        .export(&spans(1))
        .await
        .unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_peer_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = exporter(addr.to_string(), Compression::Gzip)
        .export(&spans(1))
        .await
        .unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");
}

/// 6,000 spans of 1 KiB: about 6 MiB, over the 4 MiB every gRPC server takes by default.
fn six_mebibytes() -> SignalData {
    SignalData::Traces(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: (0..6000u32)
                .map(|i| Span {
                    trace_id: vec![1; 16],
                    span_id: (u64::from(i) + 1).to_be_bytes().to_vec(),
                    name: "n".repeat(1024),
                    ..Span::default()
                })
                .collect(),
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }])
}

#[tokio::test]
async fn a_batch_over_the_message_limit_arrives_in_several_requests() {
    let (fake, addr) = FakeGateway::start().await;
    let report = exporter(addr.to_string(), Compression::None)
        .export(&six_mebibytes())
        .await
        .unwrap();
    assert_eq!(report, ExportReport::delivered());
    assert_eq!(fake.span_ids().len(), 6000);
    assert!(*fake.calls.lock().unwrap() >= 2);
}

#[tokio::test]
async fn when_a_later_request_fails_only_the_undelivered_part_is_retried() {
    let (fake, addr) = FakeGateway::start().await;
    fake.answer(Answer::RejectAfter(1, tonic::Code::Unavailable));
    let err = exporter(addr.to_string(), Compression::None)
        .export(&six_mebibytes())
        .await
        .unwrap_err();
    let ExportError::Retry {
        reason,
        pending,
        report,
        ..
    } = err
    else {
        panic!("expected a partial retry, got {err:?}");
    };
    assert_eq!(reason, "unavailable");
    assert_eq!(report, ExportReport::delivered());
    let delivered = fake.span_ids().len();
    let left = pending.item_count();
    assert!(delivered > 0 && left > 0);
    assert_eq!(delivered + left, 6000);
    // The requests left go as they were built, and only they.
    fake.answer(Answer::Accept);
    pending.send().await.unwrap();
    assert_eq!(fake.span_ids().len(), 6000, "every span once");
}
