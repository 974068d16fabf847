//! AWS X-Ray segment documents, as sent with `PutTraceSegments`.
//!
//! One struct covers both kinds of document: a *segment* (the work one service did for a
//! request) and an independently sent *subsegment* (`type: "subsegment"` plus `parent_id`
//! and `trace_id`). Optional parts are skipped when empty so a document only carries what
//! X-Ray will show, which also keeps it under the 64 KB document limit more often.
//!
//! Field names follow the X-Ray segment document reference
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html>).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest document X-Ray accepts, in bytes of JSON.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// `type` of a subsegment sent as its own document.
pub const SUBSEGMENT_TYPE: &str = "subsegment";

/// A segment or independent subsegment document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentDocument {
    /// Logical name of the service (segments) or of the downstream call (subsegments).
    pub name: String,
    /// 64-bit id as 16 hex digits.
    pub id: String,
    /// `1-{8 hex epoch seconds}-{24 hex}`.
    pub trace_id: String,
    /// Epoch seconds with microsecond precision.
    pub start_time: f64,
    pub end_time: f64,
    /// `subsegment` for independently sent subsegments, absent for segments.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Spans this one is causally related to without being their child (OTLP span links:
    /// the messages a batch consumer processed, the request that scheduled a job), in the
    /// shape the OpenTelemetry Collector's `awsxray` exporter writes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<SpanLink>,
    /// `aws` for AWS SDK calls, `remote` for other downstream calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The kind of AWS resource running the application, e.g. `AWS::EC2::Instance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlData>,
    /// Client error (4xx).
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    /// Throttled (429); always together with `error`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub throttle: bool,
    /// Server error (5xx) or failure without a status code.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fault: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<CauseData>,
    /// Indexed key/value pairs usable in filter expressions. Keys: alphanumerics and `_`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, AnnotationValue>,
    /// Namespace → key → any JSON value; not indexed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A link to another span, in this trace or another one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    /// The linked span's trace, `1-{8 hex}-{24 hex}` like [`SegmentDocument::trace_id`].
    pub trace_id: String,
    /// The linked span's id (its segment or subsegment id), 16 hex digits.
    pub id: String,
    /// The link's own attributes, as JSON values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// An annotation value: X-Ray indexes only strings, numbers and booleans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnnotationValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// `client_ip` was read from an `X-Forwarded-For` header and is not verified.
    #[serde(default, skip_serializing_if = "is_false")]
    pub x_forwarded_for: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<i64>,
}

/// The `aws` block: the AWS call a subsegment made, or the AWS resource a segment ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AwsData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_names: Vec<String>,
    /// ARN of the Lambda function a segment ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2: Option<Ec2Data>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eks: Option<EksData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elastic_beanstalk: Option<BeanstalkData>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloudwatch_logs: Vec<LogGroupData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xray: Option<XrayData>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ec2Data {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EcsData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The container instance's ARN (`aws.ecs.container.arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EksData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BeanstalkData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<i64>,
}

/// A CloudWatch Logs group holding the application's logs, so the console can link them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogGroupData {
    pub log_group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct XrayData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_instrumentation: bool,
}

/// The `sql` block of a subsegment calling an SQL database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SqlData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanitized_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Why a segment failed: the exceptions that were recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CauseData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionData>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExceptionData {
    /// 64-bit id as 16 hex digits, unique within the document.
    pub id: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The exception was raised by a downstream service (client spans).
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote: bool,
    /// Stack frames left out of `stack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u32>,
    /// Innermost frame first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<StackFrame>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_parts_are_left_out() {
        let doc = SegmentDocument {
            name: "checkout".into(),
            id: "53995c3f42cd8ad8".into(),
            trace_id: "1-581cf771-a006649127e371903a2de979".into(),
            start_time: 1.5,
            end_time: 2.25,
            ..Default::default()
        };
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(
            json,
            r#"{"name":"checkout","id":"53995c3f42cd8ad8","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.5,"end_time":2.25}"#
        );
    }

    #[test]
    fn subsegment_and_annotations_round_trip() {
        let mut doc = SegmentDocument {
            name: "DynamoDB".into(),
            kind: Some(SUBSEGMENT_TYPE.into()),
            parent_id: Some("0123456789abcdef".into()),
            error: true,
            throttle: true,
            ..Default::default()
        };
        doc.annotations.insert("n".into(), AnnotationValue::Int(3));
        doc.annotations
            .insert("ok".into(), AnnotationValue::Bool(true));
        doc.annotations
            .insert("s".into(), AnnotationValue::String("x".into()));
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["type"], "subsegment");
        assert_eq!(json["throttle"], true);
        assert_eq!(json["annotations"]["n"], 3);
        let back: SegmentDocument = serde_json::from_value(json).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn links_have_xrays_shape() {
        let doc = SegmentDocument {
            links: vec![
                SpanLink {
                    trace_id: "1-581cf771-a006649127e371903a2de979".into(),
                    id: "defdae912c340b4a".into(),
                    attributes: BTreeMap::from([("kind".into(), serde_json::json!("batch"))]),
                },
                SpanLink {
                    trace_id: "1-5759e988-bd862e3fe1be46a994272793".into(),
                    id: "53995c3f42cd8ad8".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            json["links"],
            serde_json::json!([
                {"trace_id": "1-581cf771-a006649127e371903a2de979", "id": "defdae912c340b4a",
                 "attributes": {"kind": "batch"}},
                {"trace_id": "1-5759e988-bd862e3fe1be46a994272793", "id": "53995c3f42cd8ad8"},
            ])
        );
        let back: SegmentDocument = serde_json::from_value(json).unwrap();
        assert_eq!(back, doc);
        let none = serde_json::to_value(SegmentDocument::default()).unwrap();
        assert_eq!(none.get("links"), None, "no links, no field");
    }
}
