//! Options of the `awsemf` exporter.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use super::units::CLOUDWATCH_UNITS;
use crate::aws::cloudwatch_logs::request_builder::DEFAULT_MAX_EVENT_SIZE;
use crate::aws::cloudwatch_logs::request_builder::validate_event_size;
use crate::aws::cloudwatch_logs::routing::validate_routing;
use crate::aws::cloudwatch_logs::service::ClientSettings;
use crate::aws::cloudwatch_logs::template::DEFAULT_MAX_LOG_GROUPS;
use crate::component::validate::Invalid;
use crate::component::{RetryConfig, SendingQueueConfig};
pub use crate::output::OutputDestination;

/// ```yaml
/// exporters:
///   awsemf:
///     namespace: AuraStream/Application   # default: service.namespace/service.name
///     # A data point or resource attribute `aws.emf.namespace` overrides the namespace for
///     # that point (the seed's AuraStream/Business, /Customer, /Revenue metrics use it).
///     output_destination: cloudwatch      # cloudwatch | stdout (Lambda) | file
///     path: ./aurastream-data/emf.jsonl   # output_destination: file
///     region: us-east-1
///     endpoint: http://127.0.0.1:5000     # moto, a VPC endpoint
///     log_group_name: "/metrics/{ServiceName}"   # templates as in awscloudwatchlogs, over
///     log_stream_name: "{TaskId}"                #   resource attributes: {service.name} ...
///     max_log_groups: 200                 # distinct groups; beyond: the overflow group
///     log_retention: 30
///     tags: {team: platform}
///     # Extra dimension sets per metric, as in ADOT (its default too): the full label set,
///     # plus the metric without dimensions, plus one set per label.
///     dimension_rollup_option: ZeroAndSingleDimensionRollup  # | SingleDimensionRollup | NoDimensionRollup
///     long_dimension_values: truncate     # values over 1,024 characters: truncate | property
///     metric_declarations:                # when set, only matching metrics get a directive
///       - dimensions: [[Endpoint, CustomerId], [Endpoint]]
///         metric_name_selectors: ["^API"]
///         label_matchers: [{label_names: [Endpoint], regex: "^/api/", separator: ";"}]
///     metric_descriptors:                 # CloudWatch name spelling and unit overrides
///       - {metric_name: SentimentConfidence, unit: None}
///       - {metric_name: ProcessingTime, unit: Milliseconds, storage_resolution: 1}
///       - {metric_name: SentimentAnalysisCount}   # also takes `sentimentanalysiscount`
///     resource_to_telemetry_conversion: {enabled: false}  # resource attributes as dimensions
///     resource_attributes_as_properties: true   # else resource attributes are left out
///     initial_value: auto                 # first point of a cumulative series: auto | keep | drop
///     max_dimension_sets_per_metric: 1000 # per cardinality_interval; beyond: `_other`
///     cardinality_interval: 1h
///     max_event_size: 262144              # bytes per document incl. 26 bytes overhead (max 1 MiB)
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmfExporterConfig {
    pub namespace: String,
    pub output_destination: OutputDestination,
    pub path: Option<PathBuf>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub log_group_name: String,
    pub log_stream_name: String,
    /// Distinct log groups `log_group_name` may name before documents go to the overflow
    /// group (see `cloudwatch_logs/template.rs`).
    pub max_log_groups: usize,
    pub log_retention: u32,
    pub tags: BTreeMap<String, String>,
    pub dimension_rollup_option: DimensionRollup,
    pub long_dimension_values: LongDimensionValues,
    pub metric_declarations: Vec<MetricDeclarationConfig>,
    pub metric_descriptors: Vec<MetricDescriptor>,
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    pub resource_attributes_as_properties: bool,
    pub initial_value: InitialValue,
    pub max_dimension_sets_per_metric: usize,
    #[serde(with = "humantime_serde")]
    pub cardinality_interval: Duration,
    pub max_event_size: usize,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A marker event in every PutLogEvents request, so a batch replayed from the queue on
    /// disk is not stored twice. `None` = on when `sending_queue.storage` is set.
    pub delivery_markers: Option<bool>,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
}

impl Default for EmfExporterConfig {
    fn default() -> Self {
        EmfExporterConfig {
            namespace: String::new(),
            output_destination: OutputDestination::Api,
            path: None,
            region: None,
            endpoint: None,
            log_group_name: "/metrics/{ServiceName}".into(),
            log_stream_name: "otel-stream".into(),
            max_log_groups: DEFAULT_MAX_LOG_GROUPS,
            log_retention: 0,
            tags: BTreeMap::new(),
            dimension_rollup_option: DimensionRollup::default(),
            long_dimension_values: LongDimensionValues::default(),
            metric_declarations: Vec::new(),
            metric_descriptors: Vec::new(),
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            resource_attributes_as_properties: true,
            initial_value: InitialValue::default(),
            max_dimension_sets_per_metric: 1000,
            cardinality_interval: Duration::from_secs(3600),
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
            timeout: Duration::from_secs(30),
            delivery_markers: None,
            retry_on_failure: RetryConfig::default(),
            sending_queue: SendingQueueConfig::default(),
        }
    }
}

/// Extra dimension sets derived from a data point's labels, as in the Collector's awsemf.
/// Each dimension set is one CloudWatch metric per distinct combination of its values (see
/// the README for what each choice costs).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum DimensionRollup {
    /// Only the full label set (or the declared sets).
    NoDimensionRollup,
    /// Plus one set per label.
    SingleDimensionRollup,
    /// Plus one set per label and the empty set (the metric across all labels, which
    /// dashboards and alarms that name no dimension read). ADOT's default, and ours, so an
    /// ADOT configuration gives the same metrics here.
    #[default]
    ZeroAndSingleDimensionRollup,
}

/// What becomes of a dimension value over 1,024 characters, which CloudWatch refuses.
/// Either way the data point is sent and the action counted.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LongDimensionValues {
    /// Cut to 1,024 characters, the last of them a `...[truncated]` marker: the metric
    /// keeps the dimension (values sharing their first 1,010 characters become one).
    #[default]
    Truncate,
    /// Left out of the dimension sets and kept whole as a plain property of the document
    /// (searchable with Logs Insights): the metric is recorded without that dimension.
    Property,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceToTelemetry {
    pub enabled: bool,
}

/// What becomes of the first point of a cumulative series (the first the exporter sees),
/// as the OpenTelemetry Collector's `cumulativetodelta` processor's `initial_value`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InitialValue {
    /// `keep` when the point's start time is after the exporter was created (the series
    /// began while the collector was running, so the value is everything since it began,
    /// nothing of it sent before), else `drop`. A point without a start time is dropped.
    #[default]
    Auto,
    /// Send the first point's value as the first delta.
    Keep,
    /// The first point only sets the baseline: its value covers an unknown time span
    /// (maybe since the process started days ago, partly sent by an earlier collector).
    Drop,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricDeclarationConfig {
    pub dimensions: Vec<Vec<String>>,
    pub metric_name_selectors: Vec<String>,
    pub label_matchers: Vec<LabelMatcherConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelMatcherConfig {
    pub label_names: Vec<String>,
    pub regex: String,
    #[serde(default = "default_separator")]
    pub separator: String,
}

fn default_separator() -> String {
    ";".into()
}

/// Per-metric overrides. `metric_name` matches a received metric name ignoring case, and
/// its spelling is the name written to CloudWatch: OTLP clients that lower-case instrument
/// names (the Python SDK exports `SentimentAnalysisCount` as `sentimentanalysiscount`) still
/// feed the metrics that dashboards and alarms name in CamelCase.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricDescriptor {
    pub metric_name: String,
    /// A CloudWatch unit (`None` = explicitly no unit); absent = mapped from the OTLP unit.
    #[serde(default)]
    pub unit: Option<String>,
    /// 1 (high resolution) or 60.
    #[serde(default)]
    pub storage_resolution: Option<u32>,
}

impl EmfExporterConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.output_destination == OutputDestination::File && self.path.is_none() {
            return Err("path is required with output_destination: file".into());
        }
        if self.output_destination == OutputDestination::Api {
            if self.max_log_groups == 0 {
                return Err("max_log_groups must be at least 1".into());
            }
            validate_routing(
                &self.log_group_name,
                &self.log_stream_name,
                self.log_retention,
                &BTreeMap::new(),
            )?;
        }
        if self.max_dimension_sets_per_metric == 0 {
            return Err("max_dimension_sets_per_metric must be at least 1".into());
        }
        validate_event_size(self.max_event_size)?;
        if self.cardinality_interval.is_zero() {
            return Err("cardinality_interval must be positive".into());
        }
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, d) in self.metric_descriptors.iter().enumerate() {
            if d.metric_name.is_empty() {
                return Err(Invalid::value(
                    format!("metric_descriptors[{i}].metric_name"),
                    "",
                    "must not be empty",
                ));
            }
            if let Some(first) = names.insert(d.metric_name.to_lowercase(), i) {
                return Err(Invalid::Duplicate {
                    option: format!("metric_descriptors[{i}].metric_name"),
                    value: d.metric_name.clone(),
                    first: format!("metric_descriptors[{first}]"),
                });
            }
            if let Some(unit) = &d.unit
                && !CLOUDWATCH_UNITS.contains(&unit.as_str())
            {
                return Err(Invalid::OneOf {
                    option: format!("metric_descriptors[{i}].unit").into(),
                    value: unit.clone(),
                    allowed: &CLOUDWATCH_UNITS,
                });
            }
            if let Some(r) = d.storage_resolution
                && r != 1
                && r != 60
            {
                return Err(Invalid::OneOf {
                    option: format!("metric_descriptors[{i}].storage_resolution").into(),
                    value: r.to_string(),
                    allowed: &["1", "60"],
                });
            }
        }
        self.compile_declarations().map(|_| ())
    }

    pub fn client_settings(&self) -> ClientSettings {
        ClientSettings {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            timeout: self.timeout,
        }
    }

    /// The declarations with their regexes compiled.
    pub fn compile_declarations(&self) -> Result<Vec<MetricDeclaration>, Invalid> {
        self.metric_declarations
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let selectors = d
                    .metric_name_selectors
                    .iter()
                    .map(|s| {
                        Regex::new(s).map_err(|e| {
                            Invalid::unparsable(
                                format!("metric_declarations[{i}].metric_name_selectors"),
                                s,
                                e,
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if selectors.is_empty() {
                    return Err(Invalid::value(
                        format!("metric_declarations[{i}].metric_name_selectors"),
                        "[]",
                        "must name at least one metric regex",
                    ));
                }
                let label_matchers = d
                    .label_matchers
                    .iter()
                    .map(|m| {
                        if m.label_names.is_empty() {
                            return Err(Invalid::value(
                                format!("metric_declarations[{i}].label_matchers.label_names"),
                                "[]",
                                "must not be empty",
                            ));
                        }
                        Ok(LabelMatcher {
                            label_names: m.label_names.clone(),
                            separator: m.separator.clone(),
                            regex: Regex::new(&m.regex).map_err(|e| {
                                Invalid::unparsable(
                                    format!("metric_declarations[{i}].label_matchers.regex"),
                                    &m.regex,
                                    e,
                                )
                            })?,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut dimensions = Vec::new();
                for set in &d.dimensions {
                    let mut set = set.clone();
                    set.sort();
                    set.dedup();
                    if !dimensions.contains(&set) {
                        dimensions.push(set);
                    }
                }
                Ok(MetricDeclaration {
                    dimensions,
                    selectors,
                    label_matchers,
                })
            })
            .collect()
    }
}

/// A `metric_declarations` entry, compiled.
#[derive(Debug, Clone)]
pub struct MetricDeclaration {
    /// Each set sorted, so equal sets compare equal.
    pub dimensions: Vec<Vec<String>>,
    pub selectors: Vec<Regex>,
    pub label_matchers: Vec<LabelMatcher>,
}

#[derive(Debug, Clone)]
pub struct LabelMatcher {
    pub label_names: Vec<String>,
    pub separator: String,
    pub regex: Regex,
}

impl MetricDeclaration {
    /// Whether this declaration applies to a metric with these labels: the name matches a
    /// selector and (if there are label matchers) at least one matcher matches.
    pub fn matches(&self, metric_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.selectors.iter().any(|r| r.is_match(metric_name))
            && (self.label_matchers.is_empty()
                || self.label_matchers.iter().any(|m| {
                    let joined: Vec<&str> = m
                        .label_names
                        .iter()
                        .map(|n| labels.get(n).map(String::as_str).unwrap_or(""))
                        .collect();
                    m.regex.is_match(&joined.join(&m.separator))
                }))
    }

    /// The declared dimension sets whose every dimension is among the labels.
    pub fn dimension_sets(&self, labels: &BTreeMap<String, String>) -> Vec<Vec<String>> {
        self.dimensions
            .iter()
            .filter(|set| set.iter().all(|d| labels.contains_key(d)))
            .cloned()
            .collect()
    }
}

impl crate::component::factory::Registered for EmfExporterConfig {
    const TYPE: &'static str = "awsemf";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<EmfExporterConfig, String> {
        let c: EmfExporterConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse("{}").expect("valid");
        assert_eq!(
            c.dimension_rollup_option,
            DimensionRollup::ZeroAndSingleDimensionRollup
        );
        assert_eq!(c.long_dimension_values, LongDimensionValues::Truncate);
        assert_eq!(c.max_dimension_sets_per_metric, 1000);
        assert_eq!(c.initial_value, InitialValue::Auto);
        let c = parse("{initial_value: drop, long_dimension_values: property}").expect("valid");
        assert_eq!(c.initial_value, InitialValue::Drop);
        assert_eq!(c.long_dimension_values, LongDimensionValues::Property);
    }

    #[test]
    fn a_descriptor_may_only_spell_the_name() {
        let c =
            parse("metric_descriptors: [{metric_name: SentimentAnalysisCount}]").expect("valid");
        assert_eq!(
            c.metric_descriptors[0].metric_name,
            "SentimentAnalysisCount"
        );
        assert_eq!(c.metric_descriptors[0].unit, None);
    }

    #[test]
    fn declarations_compile_and_match() {
        let c = parse(
            r#"
metric_declarations:
  - dimensions: [[Endpoint, CustomerId], [Endpoint]]
    metric_name_selectors: ["^API"]
    label_matchers: [{label_names: [Endpoint, StatusCode], regex: "^/api/.*;5\\d\\d$"}]
"#,
        )
        .expect("valid");
        let decls = c.compile_declarations().expect("compiles");
        let labels: BTreeMap<String, String> = [
            ("Endpoint", "/api/sentiment"),
            ("StatusCode", "503"),
            ("CustomerId", "c1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert!(decls[0].matches("APIResponseTime", &labels));
        assert!(!decls[0].matches("CacheHitCount", &labels));
        assert_eq!(
            decls[0].dimension_sets(&labels),
            vec![
                vec!["CustomerId".to_string(), "Endpoint".to_string()],
                vec!["Endpoint".to_string()]
            ]
        );
        let mut ok = labels.clone();
        ok.insert("StatusCode".into(), "200".into());
        assert!(!decls[0].matches("APIResponseTime", &ok));
    }

    #[test]
    fn bad_options_are_rejected() {
        assert!(parse("output_destination: file").is_err());
        assert!(parse("log_retention: 2555").unwrap_err().contains("2557"));
        assert!(parse("metric_descriptors: [{metric_name: x, unit: Millis}]").is_err());
        let duplicate = parse(
            "metric_descriptors: [{metric_name: CacheHitRate}, {metric_name: cachehitrate, unit: None}]",
        )
        .unwrap_err();
        assert!(duplicate.contains("metric_descriptors[1]"), "{duplicate}");
        assert!(duplicate.contains("metric_descriptors[0]"), "{duplicate}");
        assert!(parse("metric_descriptors: [{metric_name: ''}]").is_err());
        assert!(parse("metric_declarations: [{metric_name_selectors: ['(']}]").is_err());
        assert!(parse("dimension_rollup_option: Everything").is_err());
        assert!(parse("initial_value: first").is_err());
        assert!(parse("long_dimension_values: cut").is_err());
        assert!(parse("namespaces: x").is_err());
    }
}
