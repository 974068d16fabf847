use std::collections::BTreeSet;

use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

use super::config::LoadBalancingExporterConfig;
use super::*;
use crate::exporter::otlp::test_server::{Answer, FakeGateway};

/// `traces` traces of three spans each; span ids are (trace, n).
fn batch(traces: u8) -> SignalData {
    SignalData::Traces(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: (0..traces)
                .flat_map(|t| {
                    (0..3u8).map(move |n| Span {
                        trace_id: vec![t; 16],
                        span_id: vec![t, n, 0, 0, 0, 0, 0, 0],
                        ..Span::default()
                    })
                })
                .collect(),
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }])
}

fn exporter(addrs: &[std::net::SocketAddr]) -> LoadBalancingExporter {
    let hostnames: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let yaml = format!(
        "routing_key: traceID\nprotocol:\n  otlp:\n    timeout: 1s\n    compression: gzip\n\
         resolver:\n  static:\n    hostnames: {hostnames:?}\n"
    );
    let config: LoadBalancingExporterConfig = serde_yaml_ng::from_str(&yaml).unwrap();
    config.validate().unwrap();
    LoadBalancingExporter::new("loadbalancing", &config, &Default::default()).unwrap()
}

/// Trace ids (first byte) each gateway received.
fn traces(g: &FakeGateway) -> BTreeSet<u8> {
    g.span_ids().iter().map(|id| id[0]).collect()
}

#[tokio::test]
async fn each_trace_goes_whole_to_one_gateway() {
    let (a, addr_a) = FakeGateway::start().await;
    let (b, addr_b) = FakeGateway::start().await;
    let lb = exporter(&[addr_a, addr_b]);
    assert_eq!(
        lb.export(&batch(50)).await.unwrap(),
        ExportReport::delivered()
    );
    let (ta, tb) = (traces(&a), traces(&b));
    assert!(!ta.is_empty() && !tb.is_empty(), "both gateways get traces");
    assert!(ta.is_disjoint(&tb), "no trace is split");
    assert_eq!(ta.len() + tb.len(), 50);
    assert_eq!(
        a.span_ids().len() + b.span_ids().len(),
        150,
        "every span once"
    );
    // A second sidecar with the list in another order routes identically.
    let (a2, addr_a2) = (a.clone(), addr_a);
    let other = exporter(&[addr_b, addr_a2]);
    other.export(&batch(50)).await.unwrap();
    assert_eq!(traces(&a2), ta);
}

#[tokio::test]
async fn a_failing_gateway_gives_back_only_its_own_spans() {
    let (a, addr_a) = FakeGateway::start().await;
    let (b, addr_b) = FakeGateway::start().await;
    let lb = exporter(&[addr_a, addr_b]);
    b.answer(Answer::Reject(tonic::Code::Unavailable));
    let err = lb.export(&batch(50)).await.unwrap_err();
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
    let delivered = a.span_ids().len();
    let left = pending.item_count();
    assert_eq!(delivered + left, 150);
    // The retry goes back to the same gateway once it recovers.
    b.answer(Answer::Accept);
    pending.send().await.unwrap();
    assert_eq!(
        a.span_ids().len(),
        delivered,
        "nothing resent to the healthy gateway"
    );
    assert_eq!(b.span_ids().len(), left);
}

#[tokio::test]
async fn all_gateways_down_is_a_plain_retry_and_refusals_are_counted() {
    let (a, addr_a) = FakeGateway::start().await;
    let (b, addr_b) = FakeGateway::start().await;
    let lb = exporter(&[addr_a, addr_b]);
    a.answer(Answer::Reject(tonic::Code::Unavailable));
    b.answer(Answer::Reject(tonic::Code::Unavailable));
    let err = lb.export(&batch(20)).await.unwrap_err();
    assert!(matches!(err, ExportError::Retryable { .. }), "{err:?}");

    a.answer(Answer::Accept);
    b.answer(Answer::Reject(tonic::Code::InvalidArgument));
    let report = lb.export(&batch(20)).await.unwrap();
    assert_eq!(report.dropped.len(), 1);
    assert_eq!(report.dropped[0].0, "invalid_argument");
    assert_eq!(report.dropped_items() + a.span_ids().len(), 60);
}

#[tokio::test]
async fn partial_success_from_a_gateway_is_reported() {
    let (a, addr_a) = FakeGateway::start().await;
    a.answer(Answer::PartiallyReject(4));
    let report = exporter(&[addr_a]).export(&batch(5)).await.unwrap();
    assert_eq!(report.dropped_items(), 4);
}

#[test]
fn options_outside_the_contrib_shape_are_refused() {
    let parse = serde_yaml_ng::from_str::<LoadBalancingExporterConfig>;
    assert!(parse("routing_key: service\nresolver: { static: { hostnames: [a] } }").is_err());
    assert!(parse("protocol: { otlp: { endpoint: x:1 } }").is_err());
    assert!(parse("resolver: { k8s: { service: x } }").is_err());
    let both = parse("resolver: { static: { hostnames: [a] }, dns: { hostname: b } }").unwrap();
    assert!(
        both.validate()
            .unwrap_err()
            .to_string()
            .contains("not both")
    );
    assert!(
        parse("{}").unwrap().validate().is_err(),
        "a resolver is required"
    );
    let dns =
        parse("resolver: { dns: { hostname: gw.internal, port: 4317, interval: 10s } }").unwrap();
    dns.validate().unwrap();
}

#[tokio::test]
async fn a_changed_backend_set_keeps_the_exporters_that_stay() {
    let (a, addr_a) = FakeGateway::start().await;
    let (b, addr_b) = FakeGateway::start().await;
    let lb = exporter(&[addr_a]);
    lb.export(&batch(20)).await.unwrap();
    assert_eq!(traces(&a).len(), 20, "one backend takes every trace");
    let (uri_a, uri_b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));
    let before = lb.current().backends[0].clone();

    let mut both = vec![uri_a.clone(), uri_b.clone()];
    both.sort();
    lb.update(both.clone());
    let routing = lb.current();
    assert_eq!(routing.ring.backends(), both.as_slice());
    let kept = routing.backends.iter().find(|e| e.uri() == uri_a).unwrap();
    assert!(
        Arc::ptr_eq(kept, &before),
        "the existing backend's connection is reused"
    );

    lb.export(&batch(20)).await.unwrap();
    assert!(!traces(&b).is_empty(), "the new backend takes a share");
    lb.update(both);
    assert!(
        Arc::ptr_eq(&routing, &lb.current()),
        "an unchanged set is not rebuilt"
    );
}
