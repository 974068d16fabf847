//! Outage: the destination (moto behind the fault proxy) stops listening for a while in
//! the middle of a load, then comes back. Senders must be pushed back (HTTP 503, gRPC
//! UNAVAILABLE) instead of the collector growing without bound, and once the destination is
//! back every acknowledged item must reach it, nothing may be given up on, and memory
//! stays under a bound.
//!
//! Going down cuts the calls in flight. A cut call may already have been applied by the
//! destination, so its resend can store items twice: the exporters count those items as
//! `possibly_duplicated`, and the copies found must not exceed that count (X-Ray keeps one
//! segment per id, so there the copies are moto's, not AWS's; CloudWatch Logs keeps them).
//!
//! `DURABILITY_OUTAGE_SECS` sets the outage (default 10 s; the full run is 60 s, see
//! RELIABILITY.md) and `DURABILITY_ITEMS` the spans and log records sent (default 10,000).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::durability::{
    RssSampler, Sizes, assert_delivered, aws_config, read_back, send_load, size_from_env,
    wait_settled,
};
use aurastream_e2e::fault_proxy::{FaultProxy, Faults};
use aurastream_e2e::load::{SendStats, spans};
use aurastream_e2e::{Collector, eventually, test_runtime};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

/// Items each pipeline may hold: small, so an outage fills it quickly.
const QUEUE: usize = 2_000;
/// The collector's resident memory must stay below this while the destination is down.
/// With every pipeline full (3 x 2,000 small items) the collector needs a few tens of MB;
/// unbounded buffering of the load would pass this quickly.
const MEMORY_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

#[test]
fn outage_pushes_back_and_loses_nothing() {
    use_test_credentials();
    let items = size_from_env("DURABILITY_ITEMS", 10_000);
    let outage = Duration::from_secs(size_from_env("DURABILITY_OUTAGE_SECS", 10));
    let sizes = Sizes {
        spans: items,
        logs: items,
        metrics: (items / 5).max(1),
    };
    let rt = test_runtime();
    rt.block_on(async {
        let moto = Moto::start();
        let proxy = FaultProxy::start(
            &moto.url(),
            Faults {
                fault_percent: 0,
                max_latency: Duration::from_millis(5),
            },
        )
        .await;
        let endpoint = proxy.url();
        let collector = Collector::start(|ports, _| aws_config(ports, &endpoint, QUEUE));
        let rss = RssSampler::start(collector.ports.health);
        let stats = Arc::new(SendStats::default());
        let load = tokio::spawn({
            let (url, stats) = (collector.ports.http_url(), stats.clone());
            async move { send_load(&url, sizes, stats).await }
        });

        // Let some data through, then take the destination away.
        while proxy.stats().forwarded < 10 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        proxy.set_down();
        let outage_started = tokio::time::Instant::now();
        // Backpressure reaches the senders while the destination is down.
        while stats.refused.load(Ordering::Relaxed) == 0 {
            assert!(!load.is_finished(), "the whole load fit in the queues; send more");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The traces pipeline in particular is full (it stays full while nothing drains).
        tokio::task::block_in_place(|| {
            eventually("a refused span request", Duration::from_secs(600), || {
                collector.metric("aurastream_receiver_refused_items_total", &["signal=\"traces\""]) > 0.0
            })
        });
        let (req, _) = spans(50_000_000, 10, 7);
        let req = ExportTraceServiceRequest::decode(req.as_slice()).expect("own request");
        let mut grpc = TraceServiceClient::connect(collector.ports.grpc_url())
            .await
            .expect("gRPC connect");
        let err = grpc
            .export(req)
            .await
            .expect_err("a full traces pipeline refuses gRPC too");
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
        tokio::time::sleep_until(outage_started + outage).await;
        let refused_during_outage = stats.refused.load(Ordering::Relaxed);
        proxy.set_up();

        let acked = load.await.expect("load");
        let (traces, logs, metrics) =
            tokio::task::block_in_place(|| wait_settled(&collector, &acked));
        let peak_rss = rss.finish();
        let (spans_at, logs_at, metrics_at) = read_back(&moto, &acked).await;
        eprintln!(
            "DURABILITY outage {outage:?}: sizes {sizes:?}; proxy {:?}; refused requests \
             {refused_during_outage} during the outage, {} in all; peak RSS {peak_rss} B\n  \
             spans {spans_at:?} {traces:?}\n  logs {logs_at:?} {logs:?}\n  metrics {metrics_at:?} {metrics:?}",
            proxy.stats(),
            stats.refused.load(Ordering::Relaxed),
        );
        assert!(
            peak_rss > 0 && peak_rss < MEMORY_LIMIT_BYTES,
            "peak RSS {peak_rss} B (limit {MEMORY_LIMIT_BYTES})"
        );
        assert_delivered(
            &collector,
            [
                ("spans", &spans_at, &traces),
                ("logs", &logs_at, &logs),
                ("metrics", &metrics_at, &metrics),
            ],
        );
    });
}
