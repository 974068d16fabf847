//! The throttling storm of `durability_throttling.rs`, several times over at a smaller
//! size, looking for the stall RELIABILITY.md once reported: items the collector accepted
//! that end neither as sent nor as failed (with a reason) on `/metrics`.
//!
//! Each round starts a fresh moto, fault proxy (half of all calls throttled or failed,
//! latency up to 20 ms) and collector, sends spans, log records and metric points, and
//! waits for every pipeline to settle: accepted = sent + failed. A round that does not
//! settle within `SETTLE` fails the test with what is unaccounted for, per signal; a round
//! that settles must also have delivered every acknowledged item (read back from moto).
//!
//! Size: `SOAK_ROUNDS` rounds (default 3) of `SOAK_ITEMS` spans and log records (default
//! 1,000) and a fifth as many metric points: under a minute on two cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aurastream_e2e::aws::{Moto, use_test_credentials};
use aurastream_e2e::durability::{
    Accounting, Sizes, assert_delivered, aws_config, read_back, send_load, size_from_env,
};
use aurastream_e2e::fault_proxy::{FaultProxy, Faults};
use aurastream_e2e::load::SendStats;
use aurastream_e2e::{Collector, test_runtime};

/// Far longer than a storm of this size takes to drain (the retry budget is 10 minutes,
/// backoff at most 2 s): waiting longer would only hide a stall.
const SETTLE: Duration = Duration::from_secs(45);

#[test]
fn every_accepted_item_is_sent_or_counted_in_every_round() {
    use_test_credentials();
    let rounds = size_from_env("SOAK_ROUNDS", 3);
    let items = size_from_env("SOAK_ITEMS", 1_000);
    let sizes = Sizes {
        spans: items,
        logs: items,
        metrics: (items / 5).max(1),
    };
    let rt = test_runtime();
    for round in 1..=rounds {
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
            let stats = Arc::new(SendStats::default());
            let acked = send_load(&collector.ports.http_url(), sizes, stats).await;
            let expected = [
                ("traces", "awsxray", acked.spans.len()),
                ("logs", "awscloudwatchlogs", acked.logs.len()),
                ("metrics", "awsemf", acked.metrics.len()),
            ];
            let started = Instant::now();
            let accounts = loop {
                let m = collector.metrics();
                let accounts: Vec<Accounting> = expected
                    .iter()
                    .map(|(pipeline, exporter, _)| Accounting::read(&m, pipeline, exporter))
                    .collect();
                if accounts
                    .iter()
                    .zip(&expected)
                    .all(|(a, (_, _, n))| a.settled(*n as u64))
                {
                    break accounts;
                }
                if started.elapsed() > SETTLE {
                    let unaccounted: Vec<String> = accounts
                        .iter()
                        .zip(&expected)
                        .map(|(a, (pipeline, _, _))| {
                            format!(
                                "{pipeline}: {} accepted, {} sent, {} failed ({:?}): {} neither",
                                a.accepted,
                                a.sent,
                                a.dropped(),
                                a.failed,
                                a.accepted - a.sent - a.dropped()
                            )
                        })
                        .collect();
                    panic!(
                        "round {round}: stalled, items neither delivered nor counted after \
                         {SETTLE:?}:\n  {}\nproxy {:?}\n{}",
                        unaccounted.join("\n  "),
                        proxy.stats(),
                        collector.stderr()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let (spans_at, logs_at, metrics_at) = read_back(&moto, &acked).await;
            eprintln!(
                "SOAK throttling round {round}/{rounds}: settled in {:?}; proxy {:?}",
                started.elapsed(),
                proxy.stats()
            );
            assert_delivered(
                &collector,
                [
                    ("spans", &spans_at, &accounts[0]),
                    ("logs", &logs_at, &accounts[1]),
                    ("metrics", &metrics_at, &accounts[2]),
                ],
            );
        });
    }
}
