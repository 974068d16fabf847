//! The Python OpenTelemetry SDK (`opentelemetry-exporter-otlp`, gRPC and HTTP/protobuf)
//! sends traces to the real collector, whose `awsxray` exporter puts them into moto with
//! `PutTraceSegments`. The test reads them back with `GetTraceSummaries` and
//! `BatchGetTraces` and compares every segment document, field by field, with the manifest
//! `tests/python/send_traces_for_xray.py` prints of what it sent: the segment tree (ids,
//! parents, trace-id format, times), names, the `http`, `aws` and `sql` blocks, the
//! error / throttle / fault flags, the `cause` of recorded exceptions (with the Python stack
//! frames), annotations against metadata, resource context, and span links.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aurastream_e2e::aws::{Moto, occurrences, use_test_credentials};
use aurastream_e2e::{Collector, Ports, base_config, python_client, test_runtime};
use serde_json::{Value as J, json};

/// Span attributes the exporter is told to index.
const INDEXED: &str = "[customer.id, tier]";

fn config(ports: &Ports, endpoint: &str) -> String {
    format!(
        r#"{base}
processors:
  batch: {{ send_batch_size: 100, timeout: 100ms }}
exporters:
  awsxray:
    output_destination: cloudwatch
    endpoint: {endpoint}
    region: us-east-1
    indexed_attributes: {INDEXED}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 1s }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [awsxray] }}
"#,
        base = base_config(ports)
    )
}

/// What the Python script reports it sent.
struct Sent {
    manifest: J,
    service: String,
}

impl Sent {
    fn spans(&self) -> &[J] {
        self.manifest["spans"]
            .as_array()
            .expect("spans in manifest")
    }

    fn span(&self, name: &str) -> &J {
        self.spans()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("span {name:?} in the manifest"))
    }

    fn attr(&self, span: &str, key: &str) -> J {
        let v = self.span(span)["attributes"][key].clone();
        assert!(!v.is_null(), "{span} was sent with {key}");
        v
    }

    fn resource(&self, key: &str) -> J {
        let v = self.manifest["resource"][key].clone();
        assert!(!v.is_null(), "resource attribute {key} in the manifest");
        v
    }

    /// The one `exception` event the span recorded, as the SDK recorded it.
    fn exception(&self, span: &str) -> &J {
        let events: Vec<&J> = self.span(span)["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["name"] == "exception")
            .collect();
        assert_eq!(events.len(), 1, "{span} recorded one exception");
        &events[0]["attributes"]
    }
}

fn str_of(v: &J) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is a string"))
}

/// `1-{first 8 hex}-{last 24 hex}` of a 32-hex-digit OTLP trace id.
fn xray_trace_id(hex: &str) -> String {
    assert_eq!(hex.len(), 32, "trace id {hex}");
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn run_script(protocol: &str, endpoint: &str, service: &str) -> J {
    let out = python_client("send_traces_for_xray.py", protocol, endpoint, service)
        .output()
        .expect("run send_traces_for_xray.py");
    assert!(
        out.status.success(),
        "send_traces_for_xray.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("manifest JSON on stdout")
}

/// Checks `(json pointer, expected)` pairs on `doc`; `J::Null` means "absent".
fn expect(what: &str, doc: &J, checks: &[(&str, J)]) {
    for (pointer, want) in checks {
        let got = doc.pointer(pointer).cloned().unwrap_or(J::Null);
        assert_eq!(&got, want, "{what}: {pointer} in {doc:#}");
    }
}

/// Times are epoch seconds with microseconds: exactly the sent nanoseconds, cut to µs.
fn assert_time(what: &str, got: &J, sent_ns: &J) {
    let ns = sent_ns.as_u64().expect("nanoseconds in the manifest");
    let want = (ns / 1_000) as f64 / 1e6;
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is a number"));
    assert!(
        (got - want).abs() < 0.5e-6,
        "{what}: {got} is not {want} (sent {ns} ns)"
    );
}

/// The rules every document must follow, and its place in the tree.
fn check_tree_and_ids(sent: &Sent, span: &J, doc: &J) {
    let name = str_of(&span["name"]);
    expect(
        name,
        doc,
        &[
            ("/id", span["span_id"].clone()),
            ("/trace_id", json!(xray_trace_id(str_of(&span["trace_id"])))),
            ("/in_progress", J::Null),
        ],
    );
    let trace_id = str_of(&doc["trace_id"]);
    let parts: Vec<&str> = trace_id.split('-').collect();
    assert!(
        parts.len() == 3 && parts[0] == "1" && is_hex(parts[1], 8) && is_hex(parts[2], 24),
        "{name}: trace id {trace_id}"
    );
    assert!(is_hex(str_of(&doc["id"]), 16), "{name}: id");
    assert_time(name, &doc["start_time"], &span["start_ns"]);
    assert_time(name, &doc["end_time"], &span["end_ns"]);

    let is_segment = span["parent_span_id"].is_null() || span["kind"] == "SERVER";
    if is_segment {
        // A segment: the service's own work, named after the service, with the resource's
        // AWS context.
        let sdk = format!(
            "{} for {}",
            str_of(&sent.resource("telemetry.sdk.name")),
            str_of(&sent.resource("telemetry.sdk.language"))
        );
        expect(
            name,
            doc,
            &[
                ("/type", J::Null),
                ("/parent_id", span["parent_span_id"].clone()),
                ("/name", json!(sent.service)),
                ("/origin", json!("AWS::ECS::Fargate")),
                ("/service/version", sent.resource("service.version")),
                ("/aws/ecs/cluster", sent.resource("aws.ecs.cluster.arn")),
                ("/aws/ecs/task_arn", sent.resource("aws.ecs.task.arn")),
                ("/aws/ecs/launch_type", sent.resource("aws.ecs.launch_type")),
                (
                    "/aws/cloudwatch_logs",
                    json!([{"log_group": sent.resource("aws.log.group.names")[0]}]),
                ),
                ("/aws/xray/sdk", json!(sdk)),
                (
                    "/aws/xray/sdk_version",
                    sent.manifest["sdk_version"].clone(),
                ),
                (
                    "/metadata/default/otel.resource.service.name",
                    json!(sent.service),
                ),
                (
                    "/metadata/default/otel.resource.cloud.region",
                    sent.resource("cloud.region"),
                ),
            ],
        );
    } else {
        expect(
            name,
            doc,
            &[
                ("/type", json!("subsegment")),
                ("/parent_id", span["parent_span_id"].clone()),
                ("/origin", J::Null),
                ("/metadata/default/otel.resource.service.name", J::Null),
            ],
        );
    }
}

/// What each span's document must hold beyond its place in the tree; values come from the
/// manifest wherever the exporter copies them.
fn field_checks(sent: &Sent, name: &str) -> Vec<(&'static str, J)> {
    let a = |key: &str| sent.attr(name, key);
    let none = J::Null;
    match name {
        "POST /analyze" => vec![
            ("/http/request/method", a("http.request.method")),
            (
                "/http/request/url",
                json!(format!(
                    "{}://{}:{}{}?{}",
                    str_of(&a("url.scheme")),
                    str_of(&a("server.address")),
                    a("server.port"),
                    str_of(&a("url.path")),
                    str_of(&a("url.query"))
                )),
            ),
            ("/http/request/user_agent", a("user_agent.original")),
            ("/http/request/client_ip", a("client.address")),
            ("/http/response/status", a("http.response.status_code")),
            ("/user", a("enduser.id")),
            ("/error", none.clone()),
            ("/throttle", none.clone()),
            ("/fault", none.clone()),
            ("/cause", none.clone()),
            ("/links", none.clone()),
            // Indexed attributes are annotations (keys sanitized), and only there.
            (
                "/annotations",
                json!({"customer_id": a("customer.id"), "tier": a("tier")}),
            ),
            ("/metadata/default/customer.id", none.clone()),
            ("/metadata/default/tier", none.clone()),
            // The rest is metadata, with its JSON type kept.
            ("/metadata/default/request.size", a("request.size")),
            ("/metadata/default/text.languages", a("text.languages")),
            // Attributes shown as fields are not repeated in metadata.
            ("/metadata/default/http.request.method", none.clone()),
            ("/metadata/default/enduser.id", none.clone()),
        ],
        "DynamoDB.GetItem" => vec![
            ("/name", a("rpc.service")),
            ("/namespace", json!("aws")),
            ("/aws/operation", a("rpc.method")),
            ("/aws/table_name", a("aws.dynamodb.table_names")[0].clone()),
            ("/aws/request_id", a("aws.request_id")),
            ("/aws/region", sent.resource("cloud.region")),
            ("/http/response/status", a("http.response.status_code")),
            ("/sql", none.clone()),
            ("/error", none.clone()),
            ("/fault", none.clone()),
            ("/annotations", none.clone()),
            ("/metadata/default/rpc.method", none.clone()),
            ("/metadata/default/aws.request_id", none.clone()),
        ],
        "SELECT sentiments" => vec![
            (
                "/name",
                json!(format!(
                    "{}@{}",
                    str_of(&a("db.name")),
                    str_of(&a("server.address"))
                )),
            ),
            ("/namespace", json!("remote")),
            (
                "/sql/url",
                json!(format!(
                    "{}:{}/{}",
                    str_of(&a("server.address")),
                    a("server.port"),
                    str_of(&a("db.name"))
                )),
            ),
            ("/sql/sanitized_query", a("db.statement")),
            ("/sql/database_type", a("db.system")),
            ("/sql/user", a("db.user")),
            ("/aws", none.clone()),
            ("/http", none.clone()),
            ("/fault", none.clone()),
            ("/metadata", none.clone()),
        ],
        "score" => vec![
            ("/name", json!("score")),
            ("/namespace", none.clone()),
            ("/metadata/default/model", a("model")),
            ("/http", none.clone()),
            ("/fault", none.clone()),
        ],
        "GET /results/{id}" => vec![
            ("/http/request/method", a("http.request.method")),
            ("/http/request/url", a("url.path")),
            ("/http/response/status", a("http.response.status_code")),
            ("/error", json!(true)),
            ("/throttle", none.clone()),
            ("/fault", none.clone()),
            ("/annotations", json!({"customer_id": a("customer.id")})),
            ("/metadata/default/http.route", a("http.route")),
        ],
        "POST /batch" => vec![
            ("/http/response/status", a("http.response.status_code")),
            ("/error", none.clone()),
            ("/fault", none.clone()),
        ],
        "GET comprehend" => {
            let e = sent.exception(name);
            vec![
                ("/name", json!("comprehend.example")),
                ("/namespace", json!("remote")),
                ("/http/request/method", a("http.request.method")),
                ("/http/request/url", a("url.full")),
                ("/http/response/status", a("http.response.status_code")),
                ("/error", json!(true)),
                ("/throttle", json!(true)),
                ("/fault", none.clone()),
                ("/cause/exceptions/0/type", e["exception.type"].clone()),
                (
                    "/cause/exceptions/0/message",
                    e["exception.message"].clone(),
                ),
                // A client span's exception came from the service it called.
                ("/cause/exceptions/0/remote", json!(true)),
                (
                    "/cause/exceptions/0/stack",
                    sent.manifest["frames"][name].clone(),
                ),
                ("/cause/exceptions/1", none.clone()),
                // Exceptions are the cause, not metadata events.
                ("/metadata/default/otel.events", none.clone()),
            ]
        }
        "POST /retrain" => vec![
            ("/http/response/status", a("http.response.status_code")),
            ("/fault", json!(true)),
            ("/error", none.clone()),
            ("/throttle", none.clone()),
            ("/cause", none.clone()),
        ],
        "train_model" => {
            let e = sent.exception(name);
            vec![
                ("/name", json!("train_model")),
                ("/http", none.clone()),
                // Failed without an HTTP status: nothing says the caller was to blame.
                ("/fault", json!(true)),
                ("/error", none.clone()),
                ("/cause/exceptions/0/type", e["exception.type"].clone()),
                (
                    "/cause/exceptions/0/message",
                    e["exception.message"].clone(),
                ),
                ("/cause/exceptions/0/remote", none.clone()),
                (
                    "/cause/exceptions/0/stack",
                    sent.manifest["frames"][name].clone(),
                ),
                ("/cause/exceptions/1", none.clone()),
            ]
        }
        "process feedback" => {
            let links: Vec<J> = sent.span(name)["links"]
                .as_array()
                .expect("links")
                .iter()
                .map(|l| {
                    let mut link = json!({
                        "trace_id": xray_trace_id(str_of(&l["trace_id"])),
                        "id": l["span_id"],
                    });
                    if l["attributes"].as_object().is_some_and(|a| !a.is_empty()) {
                        link["attributes"] = l["attributes"].clone();
                    }
                    link
                })
                .collect();
            vec![
                ("/links", J::Array(links)),
                ("/metadata/default/otel.links", none.clone()),
                ("/metadata/default/messaging.system", a("messaging.system")),
            ]
        }
        other => panic!("no checks for span {other:?}: the script and the test disagree"),
    }
}

fn check(protocol: &str) {
    use_test_credentials();
    let rt = test_runtime();
    rt.block_on(async {
        let moto = Moto::start();
        let moto_url = moto.url();
        let mut collector = Collector::start(|ports, _| config(ports, &moto_url));
        let endpoint = match protocol {
            "grpc" => collector.ports.grpc_url(),
            _ => collector.ports.http_url(),
        };
        let service = format!("sentiment-api-{protocol}");
        let manifest = tokio::task::block_in_place(|| run_script(protocol, &endpoint, &service));
        let sent = Sent { manifest, service };

        // The script's links point at the roots of the first two traces.
        let feedback_links = &sent.span("process feedback")["links"];
        for (i, target) in ["POST /analyze", "GET /results/{id}"].iter().enumerate() {
            assert_eq!(feedback_links[i]["span_id"], sent.span(target)["span_id"]);
        }

        let want: BTreeMap<String, &J> = sent
            .spans()
            .iter()
            .map(|s| (str_of(&s["span_id"]).to_owned(), s))
            .collect();
        assert_eq!(want.len(), 10, "the script sends ten spans");

        // Wait until moto holds every span's document.
        let deadline = Instant::now() + Duration::from_secs(60);
        let stored = loop {
            let stored = moto.xray_segments().await;
            if want
                .keys()
                .all(|id| stored.iter().any(|(stored_id, _)| stored_id == id))
            {
                break stored;
            }
            assert!(
                Instant::now() < deadline,
                "moto holds {} of {} documents after 60 s:\n{}",
                stored.len(),
                want.len(),
                collector.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            tokio::task::block_in_place(|| collector.stop()),
            0,
            "clean exit on SIGTERM:\n{}",
            collector.stderr()
        );

        // Exactly once: every span one document, nothing else.
        let counts = occurrences(stored.iter().map(|(id, _)| id.clone()));
        assert_eq!(
            counts.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "moto holds the sent spans and nothing else"
        );
        assert!(counts.values().all(|n| *n == 1), "{counts:?}");
        let docs: BTreeMap<String, J> = stored.into_iter().collect();

        for (id, span) in &want {
            let doc = &docs[id];
            check_tree_and_ids(&sent, span, doc);
            let name = str_of(&span["name"]);
            expect(name, doc, &field_checks(&sent, name));
        }

        // GetTraceSummaries: one per trace, with the trace's flags.
        let trace_of = |name: &str| xray_trace_id(str_of(&sent.span(name)["trace_id"]));
        let want_flags: BTreeMap<String, (bool, bool, bool)> = [
            ("POST /analyze", (false, false, false)),
            ("GET /results/{id}", (true, false, false)),
            ("POST /batch", (true, false, true)),
            ("POST /retrain", (false, true, false)),
            ("process feedback", (false, false, false)),
        ]
        .into_iter()
        .map(|(root, flags)| (trace_of(root), flags))
        .collect();
        let got_flags: BTreeMap<String, (bool, bool, bool)> = moto
            .xray_trace_summaries()
            .await
            .iter()
            .map(|s| {
                (
                    str_of(&s["Id"]).to_owned(),
                    (
                        s["HasError"] == true,
                        s["HasFault"] == true,
                        s["HasThrottle"] == true,
                    ),
                )
            })
            .collect();
        assert_eq!(
            got_flags, want_flags,
            "trace summaries: (error, fault, throttle) per trace"
        );
    });
}

#[test]
fn python_grpc_traces_reach_xray_field_by_field() {
    check("grpc");
}

#[test]
fn python_http_traces_reach_xray_field_by_field() {
    check("http");
}
