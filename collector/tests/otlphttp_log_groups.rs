//! `otlphttp` with `log_groups` to CloudWatch Logs' OTLP endpoint: each record's group and
//! stream chosen as `awscloudwatchlogs` chooses them, created on first use through the
//! CloudWatch Logs API (moto), and named in each request's headers at the endpoint
//! (`aurastream_e2e::otlp_peer`, a fake: no local peer serves CloudWatch Logs' OTLP
//! endpoint).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};

use aurastream_collector::aws::cloudwatch_logs::service::LogsService;
use aurastream_collector::aws::sigv4::Signer;
use aurastream_collector::component::Exporter;
use aurastream_collector::exporter::otlphttp::OtlpHttpExporter;
use aurastream_collector::exporter::otlphttp::config::OtlpHttpExporterConfig;
use aurastream_collector::exporter::otlphttp::log_groups::{LogGroups, LogGroupsConfig};
use aurastream_collector::extension::sigv4auth::SigV4Authenticator;
use aurastream_collector::model::SignalData;
use aurastream_collector::telemetry::metrics::SelfMetrics;
use aurastream_e2e::aws::{Moto, static_sdk_config};
use aurastream_e2e::otlp_peer::{OtlpPeer, PeerConfig};
use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value as AnyValueKind};
use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use aurastream_proto::otlp::resource::Resource;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn record(body: &str, category: Option<&str>) -> LogRecord {
    LogRecord {
        body: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(body.into())),
        }),
        attributes: category
            .map(|c| kv("log.category", c))
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

fn service(name: &str, records: Vec<LogRecord>) -> ResourceLogs {
    ResourceLogs {
        resource: Some(Resource {
            attributes: vec![kv("service.name", name)],
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn moto_client(moto: &Moto) -> Client {
    Client::from_conf(
        aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .endpoint_url(moto.url())
            .build(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_to_their_category_group_created_with_the_seed_retention() {
    let moto = Moto::start();
    let (peer, addr) = OtlpPeer::start(PeerConfig {
        service: "logs".into(),
        ..PeerConfig::default()
    })
    .await;
    let config = OtlpHttpExporterConfig {
        logs_endpoint: Some(format!("http://{addr}/v1/logs")),
        log_groups: Some(LogGroupsConfig::default()),
        ..OtlpHttpExporterConfig::default()
    };
    config.validate().unwrap();
    let metrics = SelfMetrics::new();
    let groups = LogGroups::with_service(
        config.log_groups.as_ref().unwrap(),
        "otlphttp",
        &metrics,
        LogsService::with_sdk_config(static_sdk_config(&moto.url()), Default::default()),
    );
    let sdk = SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .build();
    let auth = Arc::new(SigV4Authenticator(
        Signer::new(Some("us-east-1".into()), Some("logs".into()), None).with_sdk_config(sdk),
    ));
    let exporter = OtlpHttpExporter::new(&config, Some(auth), Some(groups)).unwrap();

    let batch = SignalData::Logs(vec![
        service(
            "checkout",
            vec![
                record("login failed", Some("security")),
                record("order 1", Some("business")),
                record("hello", None),
                record("order 2", Some("business")),
            ],
        ),
        service("payments", vec![record("refund", Some("AUDIT"))]),
    ]);
    let report = exporter.export(&batch).await.unwrap();
    assert!(report.dropped.is_empty(), "{report:?}");
    // A second batch to a group that exists now: no new creation needed, still delivered.
    exporter
        .export(&SignalData::Logs(vec![service(
            "checkout",
            vec![record("order 3", Some("business"))],
        )]))
        .await
        .unwrap();

    let mut at_peer: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for stored in peer.logs() {
        let bodies = at_peer.entry((stored.group, stored.stream)).or_default();
        for r in stored.resource_logs {
            for s in r.scope_logs {
                for l in s.log_records {
                    let Some(AnyValueKind::StringValue(b)) = l.body.and_then(|b| b.value) else {
                        panic!("string body")
                    };
                    bodies.push(b);
                }
            }
        }
    }
    let key = |g: &str, s: &str| (g.to_string(), s.to_string());
    assert_eq!(
        at_peer,
        BTreeMap::from([
            (
                key("/aws/aurastream/application", "checkout"),
                vec!["hello".to_string()]
            ),
            (
                key("/aws/aurastream/business", "checkout"),
                vec!["order 1".into(), "order 2".into(), "order 3".into()]
            ),
            (
                key("/aws/aurastream/security", "checkout"),
                vec!["login failed".into()]
            ),
            (
                key("/aws/aurastream/audit", "payments"),
                vec!["refund".into()]
            ),
        ]),
        "each record once, in its category's group and its service's stream"
    );
    assert!(peer.refusals().is_empty(), "{:?}", peer.refusals());

    let client = moto_client(&moto);
    let groups = client.describe_log_groups().send().await.unwrap();
    let retention: BTreeMap<String, Option<i32>> = groups
        .log_groups()
        .iter()
        .map(|g| {
            (
                g.log_group_name().unwrap_or_default().to_string(),
                g.retention_in_days(),
            )
        })
        .collect();
    assert_eq!(
        retention,
        BTreeMap::from([
            ("/aws/aurastream/application".to_string(), Some(30)),
            ("/aws/aurastream/audit".to_string(), Some(2557)),
            ("/aws/aurastream/business".to_string(), Some(365)),
            ("/aws/aurastream/security".to_string(), Some(2557)),
        ])
    );
    let streams = client
        .describe_log_streams()
        .log_group_name("/aws/aurastream/business")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = streams
        .log_streams()
        .iter()
        .filter_map(|s| s.log_stream_name())
        .collect();
    assert_eq!(names, ["checkout"]);
}
