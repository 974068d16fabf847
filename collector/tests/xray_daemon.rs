//! The `awsxray` receiver end to end: the Python `aws-xray-sdk` runs the monitoring
//! guide's `xray_recorder` code path (tests/python/xray_sdk_app.py) against the real
//! collector binary, which receives the segments over UDP, carries them through a traces
//! pipeline and sends them with the `awsxray` exporter to moto; the documents are read back
//! with `BatchGetTraces` and compared field by field. The same binary's sampling proxy is
//! checked against an in-test fake X-Ray (moto has no sampling API) that requires SigV4.
//!
//! moto and the SDK come from the repository's Python venv (`.venv`, set up by the
//! README's test command). Without it the test is skipped on a laptop, and fails in CI.

use std::collections::BTreeMap;
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aurastream_e2e::free_port;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_xray::config::{Credentials, SharedCredentialsProvider};
use serde_json::{Value as J, json};

/// A child process killed (by its PID) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn venv() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin");
    if venv.join("moto_server").exists() && venv.join("python").exists() {
        return Some(venv);
    }
    let why = format!(
        "{} has no moto_server; create the venv with `python3 -m venv .venv && \
         .venv/bin/pip install -r tests/python/requirements.txt`",
        venv.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{why}");
    }
    eprintln!("SKIPPED xray_daemon: {why}");
    None
}

fn wait_for_tcp(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_moto(venv: &Path) -> (Running, u16) {
    let port = free_port();
    let child = Command::new(venv.join("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Running(child);
    wait_for_tcp(port, "moto_server");
    (moto, port)
}

/// What the fake X-Ray saw: the `Authorization` header of each sampling call.
type Seen = Arc<Mutex<Vec<String>>>;

const RULES: &str = r#"{"SamplingRuleRecords":[{"SamplingRule":{"RuleName":"Critical endpoints","RuleARN":"arn:aws:xray:us-east-1:123456789012:sampling-rule/Critical","ResourceARN":"*","Priority":10,"FixedRate":0.5,"ReservoirSize":5,"ServiceName":"aurastream-api","ServiceType":"*","Host":"*","HTTPMethod":"*","URLPath":"/analyze/*","Version":1,"Attributes":{}},"CreatedAt":1.7e9,"ModifiedAt":1.7e9}]}"#;

/// X-Ray's sampling API as far as the SDKs use it, refusing unsigned calls.
async fn fake_xray_sampling(seen: Seen) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/GetSamplingRules",
        axum::routing::post(move |headers: axum::http::HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            seen.lock().unwrap().push(auth.clone());
            if auth.starts_with("AWS4-HMAC-SHA256 ") {
                (axum::http::StatusCode::OK, RULES)
            } else {
                (axum::http::StatusCode::FORBIDDEN, "{}")
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "static",
        )))
        .build()
}

/// Runs the SDK app against the receiver; the trace and segment ids it reports.
fn run_sdk_app(venv: &Path, udp_port: u16, streaming_threshold: u32) -> (String, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/xray_sdk_app.py");
    let out = Command::new(venv.join("python"))
        .arg(&script)
        .arg(udp_port.to_string())
        .arg(streaming_threshold.to_string())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "xray_sdk_app.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: J = serde_json::from_slice(&out.stdout).expect("ids printed as JSON");
    (
        ids["trace_id"].as_str().unwrap().to_owned(),
        ids["segment_id"].as_str().unwrap().to_owned(),
    )
}

/// The documents moto holds for `trace`, by id, once there are `want` of them.
async fn stored(client: &aws_sdk_xray::Client, trace: &str, want: usize) -> BTreeMap<String, J> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = client
            .batch_get_traces()
            .trace_ids(trace)
            .send()
            .await
            .expect("BatchGetTraces");
        let docs: BTreeMap<String, J> = out
            .traces()
            .iter()
            .flat_map(|t| t.segments())
            .map(|s| {
                (
                    s.id().unwrap_or_default().to_owned(),
                    serde_json::from_str(s.document().unwrap_or("null")).unwrap(),
                )
            })
            .collect();
        if docs.len() >= want || Instant::now() > deadline {
            assert_eq!(docs.len(), want, "documents of {trace}: {docs:#?}");
            return docs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Field-by-field comparison of one trace with what xray_sdk_app.py recorded.
fn check_trace(docs: &BTreeMap<String, J>, trace: &str, segment_id: &str) {
    let root = &docs[segment_id];
    assert_eq!(root["name"], "aurastream-api");
    assert_eq!(root["trace_id"], trace);
    assert_eq!(root.get("type"), None, "the segment is a segment");
    assert_eq!(root.get("parent_id"), None);
    assert_eq!(
        root.get("subsegments"),
        None,
        "subsegments are documents of their own"
    );
    assert_eq!(root["user"], "user-42");
    assert_eq!(
        root["http"],
        json!({"request": {"method": "POST",
                           "url": "https://api.aurastream.example/analyze/sentiment"},
               "response": {"status": 200}})
    );
    assert_eq!(root["annotations"], json!({"customer_tier": "premium"}));
    assert_eq!(
        root["metadata"]["default"],
        json!({"text_length": 36, "has_options": false,
               "cache_error": "AuraStream-SentimentCache is throttled"})
    );
    assert_eq!(root["aws"]["xray"]["sdk"], "X-Ray for Python");
    assert_eq!(root["service"]["runtime"], "CPython");
    assert_eq!(root.get("fault"), None, "the cache failure was handled");
    assert!(root["end_time"].as_f64() >= root["start_time"].as_f64());

    let children: BTreeMap<&str, &J> = docs
        .values()
        .filter(|d| d["parent_id"] == segment_id)
        .map(|d| (d["name"].as_str().unwrap(), d))
        .collect();
    assert_eq!(
        children.keys().copied().collect::<Vec<_>>(),
        ["cache_operation", "comprehend_api"],
        "the subsegment tree"
    );
    for sub in children.values() {
        assert_eq!(sub["type"], "subsegment");
        assert_eq!(sub["trace_id"], trace);
        assert_eq!(sub["namespace"], "local");
        let (start, end) = (sub["start_time"].as_f64(), sub["end_time"].as_f64());
        assert!(start >= root["start_time"].as_f64() && end <= root["end_time"].as_f64());
    }
    let comprehend = children["comprehend_api"];
    assert_eq!(comprehend["annotations"], json!({"sentiment": "POSITIVE"}));
    assert_eq!(
        comprehend["metadata"]["default"],
        json!({"sentiment": "POSITIVE", "confidence": {"Positive": 0.98, "Negative": 0.01}})
    );
    assert_eq!(comprehend.get("fault"), None);
    assert_eq!(comprehend.get("cause"), None);

    let cache = children["cache_operation"];
    assert_eq!(cache["fault"], true);
    assert_eq!(
        cache["metadata"]["default"],
        json!({"cache_key": "sha256:3f2a"})
    );
    let exception = &cache["cause"]["exceptions"][0];
    assert_eq!(exception["type"], "CacheUnavailable");
    assert_eq!(
        exception["message"],
        "AuraStream-SentimentCache is throttled"
    );
    assert_eq!(exception["remote"], false);
    let labels: Vec<&str> = exception["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["analyze_sentiment", "check_cache"]);
    assert!(
        exception["stack"][1]["path"]
            .as_str()
            .unwrap()
            .ends_with("xray_sdk_app.py")
    );
}

/// `GET /metrics` of the collector's health extension.
async fn self_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// `POST /GetSamplingRules` as an X-Ray SDK sends it to the daemon: unsigned.
async fn get_sampling_rules(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = "{}";
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST /GetSamplingRules HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_xray_sdk_segments_reach_xray_through_the_collector() {
    let Some(venv) = venv() else {
        return;
    };
    let (_moto, moto_port) = start_moto(&venv);
    let seen = Seen::default();
    let fake_port = fake_xray_sampling(seen.clone()).await;
    let (udp_port, proxy_port, health_port) = (free_port(), free_port(), free_port());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:\n  awsxray:\n    endpoint: 127.0.0.1:{udp_port}\n    transport: udp\n    \
             proxy_server:\n      endpoint: 127.0.0.1:{proxy_port}\n      region: us-east-1\n      \
             aws_endpoint: http://127.0.0.1:{fake_port}\n\
             exporters:\n  awsxray:\n    region: us-east-1\n    endpoint: http://127.0.0.1:{moto_port}\n\
             extensions:\n  health_check:\n    endpoint: 127.0.0.1:{health_port}\n\
             service:\n  extensions: [health_check]\n  pipelines:\n    traces:\n      \
             receivers: [awsxray]\n      exporters: [awsxray]\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("collector.log")).unwrap();
    let collector = Running(
        Command::new(env!("CARGO_BIN_EXE_aurastream-collector"))
            .arg("--config")
            .arg(&config)
            .arg("--log-level")
            .arg("debug")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the collector starts"),
    );
    wait_for_tcp(health_port, "the collector");
    let collector_log = || std::fs::read_to_string(dir.path().join("collector.log")).unwrap();

    // Whole segment in one datagram (the SDK's default), then each subsegment streamed
    // as its own datagram (streaming_threshold 0).
    let (nested_trace, nested_segment) = run_sdk_app(&venv, udp_port, 30);
    let (streamed_trace, streamed_segment) = run_sdk_app(&venv, udp_port, 0);
    let client = aws_sdk_xray::Client::from_conf(
        aws_sdk_xray::config::Builder::from(&sdk_config())
            .endpoint_url(format!("http://127.0.0.1:{moto_port}"))
            .build(),
    );
    for (trace, segment) in [
        (&nested_trace, &nested_segment),
        (&streamed_trace, &streamed_segment),
    ] {
        let docs = stored(&client, trace, 3).await;
        check_trace(&docs, trace, segment);
    }

    // A bad datagram is counted and the receiver keeps serving.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(b"{\"name\":\"no header\"}", ("127.0.0.1", udp_port))
        .unwrap();
    let (after_trace, after_segment) = run_sdk_app(&venv, udp_port, 30);
    check_trace(
        &stored(&client, &after_trace, 3).await,
        &after_trace,
        &after_segment,
    );
    let metrics = self_metrics(health_port).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("aurastream_receiver_refused_items_total")
                && l.contains("reason=\"no_header\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(
            |l| l.starts_with("aurastream_receiver_accepted_items_total")
                && l.contains("receiver=\"awsxray\"")
                && l.ends_with(" 9")
        ),
        "{metrics}"
    );

    // The sampling proxy signs what the SDK sent unsigned.
    let response = get_sampling_rules(proxy_port).await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "{response}\n{}",
        collector_log()
    );
    assert!(response.ends_with(RULES), "{response}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with("AWS4-HMAC-SHA256 Credential=test/")
            && seen[0].contains("/us-east-1/xray/aws4_request"),
        "{seen:?}"
    );
    drop(collector);
}
