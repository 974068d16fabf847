//! CloudWatch Embedded Metric Format (EMF) documents.
//!
//! An EMF document is one JSON log event: an `_aws` member that tells CloudWatch which
//! top-level members are metrics (and in which namespace, with which dimensions), and the
//! metric values and dimension values themselves as top-level members. CloudWatch Logs
//! extracts the metrics when the event lands in a log group; anything else in the document
//! stays searchable with Logs Insights.
//!
//! The limits below are CloudWatch's: a document that breaks them is rejected or silently
//! not turned into metrics, so the exporter splits documents to stay within them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// At most this many metric definitions per `CloudWatchMetrics` directive.
pub const MAX_METRICS_PER_DIRECTIVE: usize = 100;
/// At most this many dimension keys per dimension set.
pub const MAX_DIMENSIONS_PER_SET: usize = 30;
/// At most this many values in one metric's value array (`Values` / `Counts`).
pub const MAX_VALUES_PER_METRIC: usize = 100;
/// At most this many characters in a dimension value.
pub const MAX_DIMENSION_VALUE_CHARS: usize = 1024;

/// One EMF log event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmfDocument {
    #[serde(rename = "_aws")]
    pub aws: EmfMetadata,
    /// Dimension values, metric values and any other properties, as top-level members.
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// The `_aws` member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmfMetadata {
    /// Milliseconds since the Unix epoch: the time the metric values belong to.
    #[serde(rename = "Timestamp")]
    pub timestamp: i64,
    #[serde(rename = "CloudWatchMetrics")]
    pub cloudwatch_metrics: Vec<MetricDirective>,
}

/// Which top-level members are metrics, in which namespace and with which dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDirective {
    #[serde(rename = "Namespace")]
    pub namespace: String,
    /// Each inner list is one dimension set: CloudWatch records every metric once per set.
    #[serde(rename = "Dimensions")]
    pub dimensions: Vec<Vec<String>>,
    #[serde(rename = "Metrics")]
    pub metrics: Vec<MetricDefinition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDefinition {
    #[serde(rename = "Name")]
    pub name: String,
    /// A CloudWatch unit name (`Milliseconds`, `Count`, `Bytes/Second`, ...).
    #[serde(rename = "Unit", default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// 60 (standard) or 1 (high resolution).
    #[serde(
        rename = "StorageResolution",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub storage_resolution: Option<u32>,
}

/// A metric's value as it appears at the top level of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmfValue {
    /// A distribution: `Values[i]` was observed `Counts[i]` times. CloudWatch computes
    /// percentiles from this form, which is why histograms are sent this way.
    Distribution(Distribution),
    /// A statistic set without a distribution (summaries).
    StatisticSet(StatisticSet),
    Single(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    #[serde(rename = "Values")]
    pub values: Vec<f64>,
    #[serde(rename = "Counts")]
    pub counts: Vec<f64>,
    #[serde(rename = "Max")]
    pub max: f64,
    #[serde(rename = "Min")]
    pub min: f64,
    #[serde(rename = "Count")]
    pub count: f64,
    #[serde(rename = "Sum")]
    pub sum: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatisticSet {
    #[serde(rename = "Max")]
    pub max: f64,
    #[serde(rename = "Min")]
    pub min: f64,
    #[serde(rename = "Count")]
    pub count: f64,
    #[serde(rename = "Sum")]
    pub sum: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_serializes_with_aws_member_and_top_level_values() {
        let mut fields = BTreeMap::new();
        fields.insert("Sentiment".to_string(), serde_json::json!("POSITIVE"));
        fields.insert(
            "ProcessingTime".to_string(),
            serde_json::to_value(EmfValue::Single(120.0)).expect("number"),
        );
        let doc = EmfDocument {
            aws: EmfMetadata {
                timestamp: 1_700_000_000_000,
                cloudwatch_metrics: vec![MetricDirective {
                    namespace: "AuraStream/Application".into(),
                    dimensions: vec![vec!["Sentiment".into()]],
                    metrics: vec![MetricDefinition {
                        name: "ProcessingTime".into(),
                        unit: Some("Milliseconds".into()),
                        storage_resolution: Some(60),
                    }],
                }],
            },
            fields,
        };
        let json = serde_json::to_value(&doc).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "_aws": {"Timestamp": 1_700_000_000_000i64, "CloudWatchMetrics": [{
                    "Namespace": "AuraStream/Application",
                    "Dimensions": [["Sentiment"]],
                    "Metrics": [{"Name": "ProcessingTime", "Unit": "Milliseconds", "StorageResolution": 60}]
                }]},
                "Sentiment": "POSITIVE",
                "ProcessingTime": 120.0
            })
        );
        let back: EmfDocument = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, doc);
    }

    #[test]
    fn distribution_uses_cloudwatch_member_names() {
        let v = EmfValue::Distribution(Distribution {
            values: vec![5.0, 15.0],
            counts: vec![2.0, 1.0],
            max: 18.0,
            min: 1.0,
            count: 3.0,
            sum: 25.0,
        });
        assert_eq!(
            serde_json::to_value(&v).expect("serializes"),
            serde_json::json!({"Values": [5.0, 15.0], "Counts": [2.0, 1.0], "Max": 18.0, "Min": 1.0, "Count": 3.0, "Sum": 25.0})
        );
    }
}
