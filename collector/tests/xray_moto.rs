//! The `awsxray` exporter against a real moto server: documents go in through
//! `PutTraceSegments` and are read back with `BatchGetTraces` and `GetTraceSummaries`.
//!
//! moto comes from the repository's Python venv (`.venv`, set up by the README's test
//! command), started by the end-to-end harness (`aurastream_e2e::aws::Moto`).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_xray::config::{Credentials, SharedCredentialsProvider};
use serde_json::{Value as J, json};

use aurastream_collector::component::Exporter;
use aurastream_collector::exporter::xray::XrayExporter;
use aurastream_collector::exporter::xray::config::{OutputDestination, XrayExporterConfig};
use aurastream_collector::model::SignalData;
use aurastream_collector::telemetry::metrics::SelfMetrics;
use aurastream_e2e::aws::Moto;
use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{
    ResourceSpans, ScopeSpans, Span, Status,
    span::{Event, SpanKind},
    status::StatusCode,
};

fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "static",
        )))
        .build()
}

fn s(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn i(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A trace id that starts with the current epoch second, unique per call.
fn trace_id(salt: u8) -> Vec<u8> {
    let secs = (now_nanos() / 1_000_000_000) as u32;
    let mut id = secs.to_be_bytes().to_vec();
    let nanos = now_nanos().to_be_bytes();
    id.extend_from_slice(&nanos);
    id.extend_from_slice(&[salt, 0xa1, 0xb2, 0xc3]);
    id
}

fn span(
    trace: &[u8],
    id: u8,
    parent: Option<u8>,
    kind: SpanKind,
    name: &str,
    attrs: Vec<KeyValue>,
) -> Span {
    let start = now_nanos() - 2_000_000_000 + u64::from(id) * 1_000_000;
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![0x10, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: parent
            .map(|p| vec![0x10, 0, 0, 0, 0, 0, 0, p])
            .unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 500_000_000,
        attributes: attrs,
        ..Default::default()
    }
}

fn batch(spans: Vec<Span>) -> SignalData {
    SignalData::Traces(vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                s("service.name", "checkout"),
                s("cloud.platform", "aws_ecs"),
                s("aws.ecs.launch_type", "fargate"),
                s("cloud.region", "us-east-1"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        schema_url: String::new(),
    }])
}

fn exporter(moto: &Moto) -> XrayExporter {
    let config: XrayExporterConfig = serde_yaml_ng::from_str(&format!(
        "region: us-east-1\nendpoint: {}\nindexed_attributes: [order.id]\n",
        moto.url()
    ))
    .unwrap();
    config.validate().unwrap();
    XrayExporter::new("awsxray", &config, &SelfMetrics::new()).with_sdk_config(sdk_config())
}

async fn client(moto: &Moto) -> aws_sdk_xray::Client {
    let conf = aws_sdk_xray::config::Builder::from(&sdk_config())
        .endpoint_url(moto.url())
        .build();
    aws_sdk_xray::Client::from_conf(conf)
}

fn xray_id(trace: &[u8]) -> String {
    let hex: String = trace.iter().map(|b| format!("{b:02x}")).collect();
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// The documents moto holds for a trace, by segment id.
async fn stored(client: &aws_sdk_xray::Client, trace: &str) -> HashMap<String, J> {
    let out = client
        .batch_get_traces()
        .trace_ids(trace)
        .send()
        .await
        .unwrap();
    assert_eq!(out.traces().len(), 1, "trace {trace} stored");
    out.traces()[0]
        .segments()
        .iter()
        .map(|seg| {
            let doc: J = serde_json::from_str(seg.document().unwrap()).unwrap();
            (seg.id().unwrap().to_owned(), doc)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_round_trip_through_moto() {
    let moto = Moto::start();
    let exporter = exporter(&moto);
    let trace = trace_id(1);
    let mut root = span(
        &trace,
        1,
        None,
        SpanKind::Server,
        "GET /orders",
        vec![
            s("http.request.method", "GET"),
            s("url.path", "/orders"),
            s("server.address", "shop.example.com"),
            i("http.response.status_code", 200),
            s("order.id", "o-17"),
            s("enduser.id", "alice"),
        ],
    );
    root.name = "GET /orders".into();
    let mut payment = span(
        &trace,
        2,
        Some(1),
        SpanKind::Client,
        "POST",
        vec![
            s("http.method", "POST"),
            s("http.url", "http://payments:8080/charge"),
            i("http.status_code", 503),
        ],
    );
    payment.events = vec![Event {
        name: "exception".into(),
        attributes: vec![
            s("exception.type", "ConnectionError"),
            s("exception.message", "upstream down"),
            s(
                "exception.stacktrace",
                "Traceback (most recent call last):\n  File \"/app/pay.py\", line 9, in charge\n",
            ),
        ],
        ..Default::default()
    }];
    let dynamo = span(
        &trace,
        3,
        Some(1),
        SpanKind::Client,
        "DynamoDB.GetItem",
        vec![
            s("rpc.system", "aws-api"),
            s("rpc.service", "DynamoDB"),
            s("rpc.method", "GetItem"),
            s("aws.dynamodb.table_names", "orders"),
            i("http.status_code", 429),
        ],
    );
    let mut internal = span(
        &trace,
        4,
        Some(1),
        SpanKind::Internal,
        "render",
        vec![s("template", "order.html")],
    );
    internal.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "template missing".into(),
    });
    // An oversize span: trimmed to fit, still stored.
    let big = span(
        &trace,
        5,
        Some(1),
        SpanKind::Internal,
        "bulk",
        (0..100)
            .map(|n| s(&format!("blob.{n}"), &"b".repeat(1000)))
            .collect(),
    );

    let spans = batch(vec![root, payment, dynamo, internal, big]);
    let report = exporter.export(&spans).await.expect("exported");
    assert_eq!(report.dropped_items(), 0, "{report:?}");

    // The `file` destination writes exactly the documents that were sent.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segments.jsonl");
    let file_config = XrayExporterConfig {
        output_destination: OutputDestination::File,
        path: Some(path.clone()),
        indexed_attributes: vec!["order.id".into()],
        ..Default::default()
    };
    XrayExporter::new("awsxray/file", &file_config, &SelfMetrics::new())
        .export(&spans)
        .await
        .expect("written");
    let written: HashMap<String, J> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let doc: J = serde_json::from_str(l).unwrap();
            (doc["id"].as_str().unwrap().to_owned(), doc)
        })
        .collect();

    let client = client(&moto).await;
    let docs = stored(&client, &xray_id(&trace)).await;
    assert_eq!(docs.len(), 5, "{docs:#?}");
    assert_eq!(docs, written, "moto holds what the file destination writes");
    let root_id = "1000000000000001";
    let get = |id: &str| {
        docs.get(id)
            .unwrap_or_else(|| panic!("segment {id} in {docs:#?}"))
    };

    let root = get(root_id);
    assert_eq!(root["name"], "checkout");
    assert_eq!(root["trace_id"], xray_id(&trace));
    assert_eq!(root.get("type"), None);
    assert_eq!(root.get("parent_id"), None);
    assert_eq!(root["origin"], "AWS::ECS::Fargate");
    assert_eq!(root["user"], "alice");
    assert_eq!(root["http"]["request"]["method"], "GET");
    assert_eq!(
        root["http"]["request"]["url"],
        "http://shop.example.com/orders"
    );
    assert_eq!(root["http"]["response"]["status"], 200);
    assert_eq!(root["annotations"], json!({"order_id": "o-17"}));
    assert_eq!(
        root["metadata"]["default"]["otel.resource.service.name"],
        "checkout"
    );

    for id in [
        "1000000000000002",
        "1000000000000003",
        "1000000000000004",
        "1000000000000005",
    ] {
        let sub = get(id);
        assert_eq!(sub["type"], "subsegment", "{id}");
        assert_eq!(sub["parent_id"], root_id, "{id}");
        assert_eq!(sub["trace_id"], xray_id(&trace), "{id}");
        let start = sub["start_time"].as_f64().unwrap();
        assert!(sub["end_time"].as_f64().unwrap() - start > 0.49, "{id}");
    }
    let payment = get("1000000000000002");
    assert_eq!(payment["name"], "payments");
    assert_eq!(payment["namespace"], "remote");
    assert_eq!(payment["fault"], true);
    assert_eq!(payment.get("error"), None);
    assert_eq!(payment["http"]["response"]["status"], 503);
    let exception = &payment["cause"]["exceptions"][0];
    assert_eq!(exception["type"], "ConnectionError");
    assert_eq!(exception["message"], "upstream down");
    assert_eq!(exception["remote"], true);
    assert_eq!(
        exception["stack"],
        json!([{"path": "/app/pay.py", "line": 9, "label": "charge"}])
    );

    let dynamo = get("1000000000000003");
    assert_eq!(dynamo["name"], "DynamoDB");
    assert_eq!(dynamo["namespace"], "aws");
    assert_eq!(dynamo["aws"]["operation"], "GetItem");
    assert_eq!(dynamo["aws"]["table_name"], "orders");
    assert_eq!(dynamo["aws"]["region"], "us-east-1");
    assert_eq!(
        (dynamo["error"].clone(), dynamo["throttle"].clone()),
        (json!(true), json!(true))
    );

    let internal = get("1000000000000004");
    assert_eq!(internal["fault"], true);
    assert_eq!(
        internal["cause"]["exceptions"][0]["message"],
        "template missing"
    );
    assert_eq!(internal["metadata"]["default"]["template"], "order.html");

    let big = serde_json::to_string(get("1000000000000005")).unwrap();
    assert!(big.len() <= 64 * 1024, "trimmed: {} bytes", big.len());

    // Read with plain HTTP: moto answers GetTraceSummaries with `"Users": {}` where the API
    // has a list, which the Rust SDK rightly refuses to deserialize.
    let summaries = moto.xray_trace_summaries().await;
    let summary = summaries
        .iter()
        .find(|t| t["Id"] == xray_id(&trace))
        .expect("trace summarized");
    assert_eq!(summary["HasError"], true);
    assert_eq!(summary["HasFault"], true);
    assert_eq!(summary["HasThrottle"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_arrive_complete() {
    let moto = Moto::start();
    let exporter = exporter(&moto);
    let trace = trace_id(2);
    let spans: Vec<Span> = (0..120u8)
        .map(|n| {
            let mut sp = span(
                &trace,
                n + 1,
                Some(0),
                SpanKind::Internal,
                "step",
                vec![i("n", i64::from(n))],
            );
            sp.span_id = vec![0x20, 0, 0, 0, 0, 0, 0, n + 1];
            sp.parent_span_id = vec![0x30, 0, 0, 0, 0, 0, 0, 1];
            sp
        })
        .collect();
    let report = exporter.export(&batch(spans)).await.expect("exported");
    assert_eq!(report.dropped_items(), 0);
    let docs = stored(&client(&moto).await, &xray_id(&trace)).await;
    assert_eq!(docs.len(), 120);
    for n in 1..=120u8 {
        let id = format!("20000000000000{n:02x}");
        let doc = &docs[&id];
        assert_eq!(doc["metadata"]["default"]["n"], i64::from(n) - 1, "{id}");
        assert_eq!(doc["parent_id"], "3000000000000001");
    }
}
