//! AWS stand-ins for end-to-end tests: a moto server, reading back what the collector sent
//! to it, and the environment the collector needs to sign requests for it.
//!
//! Reading back goes straight to moto's HTTP API with reqwest (moto does not check
//! signatures), so the tests need no AWS SDK of their own.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{eventually, free_port, workspace_root};

/// Makes the collector processes this test starts find static test credentials and a
/// region through the standard AWS chain (they inherit the environment).
///
/// Call it first thing in each test, before starting a runtime or any thread of the test's
/// own: the variables are set once per test binary, and the `Once` makes every other test
/// of the binary wait until they are.
pub fn use_test_credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (key, value) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            // SAFETY: Rust's own environment accesses are serialized by std's lock; this
            // runs before the test starts any thread that could call C code reading the
            // environment (tests of this binary call it first and wait on the `Once`).
            unsafe { std::env::set_var(key, value) };
        }
        // SAFETY: as above.
        unsafe { std::env::remove_var("AWS_PROFILE") };
    });
}

/// What a collector AWS client built in a test signs with: static test credentials,
/// us-east-1, and `endpoint` (moto or a fake service) instead of AWS.
pub fn static_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_config::{BehaviorVersion, Region};
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// A moto server on a free loopback port, killed by its PID when dropped.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = workspace_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} not found: run scripts/test.sh, which creates the venv",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, port };
        eventually("moto_server listening", Duration::from_secs(60), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every message in one log stream, oldest first, without the collector's delivery
    /// markers (one per PutLogEvents request when `delivery_markers` is on; see
    /// [`Moto::delivery_markers`]).
    pub async fn log_messages(&self, group: &str, stream: &str) -> Vec<String> {
        self.stream_messages(group, stream)
            .await
            .into_iter()
            .filter(|m| marker_doc(m).is_none())
            .collect()
    }

    /// The delivery markers in one log stream, as JSON documents
    /// (`{"aurastream.delivery_marker": id, "events": n}`).
    pub async fn delivery_markers(&self, group: &str, stream: &str) -> Vec<serde_json::Value> {
        self.stream_messages(group, stream)
            .await
            .iter()
            .filter_map(|m| marker_doc(m))
            .collect()
    }

    /// Every message in one log stream, oldest first (`GetLogEvents`, all pages).
    async fn stream_messages(&self, group: &str, stream: &str) -> Vec<String> {
        let client = reqwest::Client::new();
        let mut messages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({
                "logGroupName": group,
                "logStreamName": stream,
                "startFromHead": true,
                "limit": 10000,
            });
            if let Some(t) = &token {
                body["nextToken"] = json!(t);
            }
            let page = logs_call(&client, &self.url(), "GetLogEvents", body).await;
            let Some(page) = page else {
                return messages;
            };
            let events = page["events"].as_array().cloned().unwrap_or_default();
            if events.is_empty() {
                return messages;
            }
            messages.extend(
                events
                    .iter()
                    .filter_map(|e| e["message"].as_str().map(str::to_owned)),
            );
            let next = page["nextForwardToken"].as_str().map(str::to_owned);
            if next.is_none() || next == token {
                return messages;
            }
            token = next;
        }
    }

    /// Every log group with its retention in days (`None`: never expire), from
    /// `DescribeLogGroups` (all pages).
    pub async fn log_groups(&self) -> BTreeMap<String, Option<i64>> {
        let client = reqwest::Client::new();
        let mut groups = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({});
            if let Some(t) = &token {
                body["nextToken"] = json!(t);
            }
            let Some(page) = logs_call(&client, &self.url(), "DescribeLogGroups", body).await
            else {
                return groups;
            };
            for g in page["logGroups"].as_array().into_iter().flatten() {
                if let Some(name) = g["logGroupName"].as_str() {
                    groups.insert(name.to_owned(), g["retentionInDays"].as_i64());
                }
            }
            token = page["nextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                return groups;
            }
        }
    }

    /// The names of the streams of one log group (`DescribeLogStreams`, all pages); empty
    /// when the group does not exist.
    pub async fn log_streams(&self, group: &str) -> Vec<String> {
        let client = reqwest::Client::new();
        let mut streams = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"logGroupName": group});
            if let Some(t) = &token {
                body["nextToken"] = json!(t);
            }
            let Some(page) = logs_call(&client, &self.url(), "DescribeLogStreams", body).await
            else {
                return streams;
            };
            streams.extend(
                page["logStreams"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["logStreamName"].as_str().map(str::to_owned)),
            );
            token = page["nextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                return streams;
            }
        }
    }

    /// Every message in every stream of one log group.
    pub async fn group_messages(&self, group: &str) -> Vec<String> {
        let mut messages = Vec::new();
        for stream in self.log_streams(group).await {
            messages.extend(self.log_messages(group, &stream).await);
        }
        messages
    }

    /// `GetTraceSummaries` for traces of the last day: one summary per trace (`Id`,
    /// `HasError`, `HasFault`, `HasThrottle`, ...).
    pub async fn xray_trace_summaries(&self) -> Vec<Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let summaries: Value = reqwest::Client::new()
            .post(format!("{}/TraceSummaries", self.url()))
            .header("authorization", authorization("xray"))
            .json(&json!({"StartTime": now - 86_400, "EndTime": now + 3_600}))
            .send()
            .await
            .expect("GetTraceSummaries")
            .json()
            .await
            .expect("GetTraceSummaries answer is JSON");
        summaries["TraceSummaries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every segment document X-Ray holds for traces started in the last day, as
    /// `(segment id, document)`; a segment stored twice appears twice.
    pub async fn xray_segments(&self) -> Vec<(String, Value)> {
        let client = reqwest::Client::new();
        let ids: Vec<String> = self
            .xray_trace_summaries()
            .await
            .iter()
            .filter_map(|s| s["Id"].as_str().map(str::to_owned))
            .collect();
        let mut segments = Vec::new();
        // BatchGetTraces takes at most 5 ids per call.
        for chunk in ids.chunks(5) {
            let traces: Value = client
                .post(format!("{}/Traces", self.url()))
                .header("authorization", authorization("xray"))
                .json(&json!({"TraceIds": chunk}))
                .send()
                .await
                .expect("BatchGetTraces")
                .json()
                .await
                .expect("BatchGetTraces answer is JSON");
            for trace in traces["Traces"].as_array().into_iter().flatten() {
                for seg in trace["Segments"].as_array().into_iter().flatten() {
                    let id = seg["Id"].as_str().unwrap_or_default().to_owned();
                    let doc = seg["Document"]
                        .as_str()
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or(Value::Null);
                    segments.push((id, doc));
                }
            }
        }
        segments
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto serves every service on one port and tells them apart by the credential scope of
/// the (unchecked) signature, so a request must name its service there.
fn authorization(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}

/// One CloudWatch Logs JSON-1.1 call; `None` when moto answers with an error (e.g. the
/// group does not exist yet).
async fn logs_call(client: &reqwest::Client, url: &str, op: &str, body: Value) -> Option<Value> {
    let r = client
        .post(url)
        .header("x-amz-target", format!("Logs_20140328.{op}"))
        .header("authorization", authorization("logs"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// How many times each key occurs: the exactly-once check in one structure.
pub fn occurrences<I: IntoIterator<Item = String>>(keys: I) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for k in keys {
        *out.entry(k).or_default() += 1;
    }
    out
}

/// The member naming a delivery marker (`MARKER_FIELD` in the collector's
/// `cloudwatch_logs/marker.rs`; the harness drives the binary and does not link the library).
const MARKER_FIELD: &str = "aurastream.delivery_marker";

/// The document of a delivery marker event, or `None` for any other message.
fn marker_doc(message: &str) -> Option<serde_json::Value> {
    if !message.contains(MARKER_FIELD) {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(message)
        .ok()
        .filter(|doc| doc.get(MARKER_FIELD).is_some())
}
