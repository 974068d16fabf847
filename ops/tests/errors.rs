//! Errors an operator meets, from real peers: moto checking credentials (its
//! `INITIAL_NO_AUTH_ACTION_COUNT=0` mode) refuses keys it does not know, and the fault
//! proxy of the e2e harness throttles X-Ray; the first is explained, the second retried.
//! (moto words the refusal `<Errors><Error>`, which the awsQuery client cannot read a
//! code from: the 403 status is what says "access denied" there.)

mod support;

use aurastream_e2e::fault_proxy::{FaultProxy, Faults};
use std::time::Duration;
use support::{PatchedMoto, aurastream, json, now_secs, stderr};

#[test]
fn refused_credentials_are_reported_as_access_denied() {
    let moto = PatchedMoto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let out = aurastream(&moto.url(), &["kpis"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("error: access denied to cloudwatch:ListMetrics (")
            && err.contains("the caller needs the IAM permission cloudwatch:ListMetrics"),
        "{err}"
    );
}

#[test]
fn throttled_calls_are_retried() {
    let moto = PatchedMoto::start();
    let rt = aurastream_e2e::test_runtime();
    let t0 = (now_secs() - 60) as f64;
    let segment = serde_json::json!({"name": "api", "id": "c000000000000001",
        "trace_id": "1-6750a000-0000000000000000000000c1", "start_time": t0, "end_time": t0 + 0.1});
    rt.block_on(async {
        let config = support::sdk_config(&moto.url()).await;
        aws_sdk_xray::Client::new(&config)
            .put_trace_segments()
            .trace_segment_documents(segment.to_string())
            .send()
            .await
            .expect("PutTraceSegments");
    });
    // Half of the calls fail (throttled or 500) before reaching moto; the proxy's fault
    // pattern is a fixed pseudo-random sequence, so this run is the same every time.
    let proxy = rt.block_on(FaultProxy::start(
        &moto.url(),
        Faults {
            fault_percent: 50,
            max_latency: Duration::ZERO,
        },
    ));
    let out = aurastream(
        &proxy.url(),
        &["traces", "--since", "15m", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["summarised"], 1);
    let stats = proxy.stats();
    assert!(stats.throttled + stats.server_errors > 0, "{stats:?}");
    assert!(stats.forwarded >= 2, "{stats:?}");
}
