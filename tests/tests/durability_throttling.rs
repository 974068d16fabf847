//! Throttling storm: the real collector exports spans, log records and metric points to
//! moto through a proxy that throttles or fails half of all calls and adds latency. Every
//! acknowledged item must reach moto exactly once (nothing may be dropped: the retry budget
//! outlasts the storm).
//!
//! Size: `DURABILITY_ITEMS` spans and log records (default 10,000; the full run is
//! 100,000, see RELIABILITY.md) and a fifth as many metric points, since every point is its
//! own EMF document.

use std::sync::Arc;
use std::time::Duration;

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::durability::{
    RssSampler, Sizes, assert_delivered, aws_config, read_back, send_load, size_from_env,
    wait_settled,
};
use aurastream_e2e::fault_proxy::{FaultProxy, Faults};
use aurastream_e2e::load::SendStats;
use aurastream_e2e::{Collector, test_runtime};

#[test]
fn throttling_storm_delivers_every_item_exactly_once() {
    use_test_credentials();
    let items = size_from_env("DURABILITY_ITEMS", 10_000);
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
                fault_percent: 50,
                max_latency: Duration::from_millis(20),
            },
        )
        .await;
        let endpoint = proxy.url();
        let collector = Collector::start(|ports, _| aws_config(ports, &endpoint, 20_000));
        let rss = RssSampler::start(collector.ports.health);
        let stats = Arc::new(SendStats::default());
        let acked = send_load(&collector.ports.http_url(), sizes, stats.clone()).await;

        let (traces, logs, metrics) =
            tokio::task::block_in_place(|| wait_settled(&collector, &acked));
        let peak_rss = rss.finish();
        let (spans_at, logs_at, metrics_at) = read_back(&moto, &acked).await;
        let proxy_stats = proxy.stats();
        eprintln!(
            "DURABILITY throttling: sizes {sizes:?}; proxy {proxy_stats:?}; refused requests {}; \
             peak RSS {peak_rss} B\n  spans {spans_at:?} {traces:?}\n  logs {logs_at:?} {logs:?}\n  \
             metrics {metrics_at:?} {metrics:?}",
            stats.refused.load(std::sync::atomic::Ordering::Relaxed),
        );
        assert!(
            proxy_stats.throttled > 0 && proxy_stats.server_errors > 0,
            "the storm happened: {proxy_stats:?}"
        );
        // Injected faults are answered without forwarding and latency stays far below the
        // call timeout, so no failure was ambiguous: delivery must be exactly once.
        for acct in [&traces, &logs, &metrics] {
            assert_eq!(acct.possibly_duplicated, 0.0, "{acct:?}");
        }
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
