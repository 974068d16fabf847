//! `awsemf` and `awscloudwatchlogs` in a whole collector configuration: they parse with the
//! OpenTelemetry Collector option names, build, and bad values fail at start-up with the
//! path of the option.

use std::sync::Arc;

use aurastream_collector::component::factory::ExporterContext;
use aurastream_collector::config::{ConfigSource, ExporterConfig, load_sources};
use aurastream_collector::model::Signal;
use aurastream_collector::telemetry::metrics::SelfMetrics;

fn load(text: &str) -> Result<aurastream_collector::config::Config, String> {
    load_sources(
        &[ConfigSource {
            name: "test.yaml".into(),
            text: text.into(),
        }],
        |_| None,
    )
    .map_err(|e| e.to_string())
}

const CONFIG: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  awsemf:
    namespace: AuraStream/Application
    output_destination: file
    path: /tmp/aurastream-emf-config-test.jsonl
    dimension_rollup_option: NoDimensionRollup
    metric_declarations:
      - dimensions: [[Endpoint, CustomerId]]
        metric_name_selectors: ["^API"]
    metric_descriptors:
      - {metric_name: SentimentConfidence, unit: None}
    resource_to_telemetry_conversion: {enabled: false}
  awscloudwatchlogs:
    region: us-east-1
    endpoint: http://127.0.0.1:5000
    log_group_name: /aws/aurastream/application
    log_stream_name: "{ServiceName}"
    categories:
      security: {log_group_name: /aws/aurastream/security, retention_in_days: 2557}
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [awsemf]
    logs:
      receivers: [otlp]
      exporters: [awscloudwatchlogs]
"#;

#[test]
fn both_exporters_parse_and_build() {
    let config = load(CONFIG).expect("valid config");
    let metrics = Arc::new(SelfMetrics::new());
    let emf = &config.exporters.0["awsemf"];
    assert!(matches!(emf, ExporterConfig::AwsEmf(_)));
    assert_eq!(emf.factory().signals(), &[Signal::Metrics]);
    let logs = &config.exporters.0["awscloudwatchlogs"];
    assert!(matches!(logs, ExporterConfig::AwsCloudWatchLogs(_)));
    assert_eq!(logs.factory().signals(), &[Signal::Logs]);
    for (id, c) in &config.exporters.0 {
        let built = c
            .factory()
            .build(&ExporterContext {
                id,
                metrics: &metrics,
                auth: &Default::default(),
            })
            .expect("builds");
        assert_eq!(built.signals(), c.factory().signals());
    }
}

#[test]
fn seed_retention_2555_fails_at_start_up_naming_2557() {
    let text = CONFIG.replace("retention_in_days: 2557", "retention_in_days: 2555");
    let err = load(&text).expect_err("2555 is not a CloudWatch retention");
    assert!(err.contains("awscloudwatchlogs"), "{err}");
    assert!(err.contains("nearest allowed value is 2557"), "{err}");
}

#[test]
fn unknown_options_and_wrong_signals_fail() {
    let err = load(&CONFIG.replace("namespace: AuraStream", "name_space: AuraStream"))
        .expect_err("unknown option");
    assert!(err.contains("name_space"), "{err}");
    let err = load(&CONFIG.replace(
        "    logs:\n      receivers: [otlp]\n      exporters: [awscloudwatchlogs]",
        "    logs:\n      receivers: [otlp]\n      exporters: [awsemf]",
    ))
    .expect_err("awsemf takes metrics only");
    assert!(err.contains("does not export logs"), "{err}");
}
