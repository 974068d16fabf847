//! Where events go: log group and stream names (with placeholders filled from resource
//! attributes) and the retention a group is created with.

use std::collections::BTreeMap;

use aurastream_proto::otlp::common::any_value::Value as AnyValueKind;
use aurastream_proto::otlp::resource::Resource;

/// The retention periods (days) CloudWatch Logs accepts; anything else is rejected by
/// PutRetentionPolicy. 0 in our configuration means "never expire" (no policy is set).
pub const ALLOWED_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Checks a retention value, naming the nearest allowed one when it is not allowed. (The
/// monitoring guide's `2555` days for "7 years" is such a value: CloudWatch wants 2557.)
pub fn validate_retention(days: u32) -> Result<(), String> {
    if days == 0 || ALLOWED_RETENTION_DAYS.contains(&days) {
        return Ok(());
    }
    let nearest = ALLOWED_RETENTION_DAYS
        .iter()
        .copied()
        .min_by_key(|d| d.abs_diff(days))
        .unwrap_or(1);
    Err(format!(
        "retention of {days} days is not accepted by CloudWatch Logs; the nearest allowed value is {nearest} (allowed: 0 = never expire, {})",
        ALLOWED_RETENTION_DAYS.map(|d| d.to_string()).join(", ")
    ))
}

/// A log group and stream, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogTarget {
    pub group: String,
    pub stream: String,
    /// Days, applied when the exporter creates the group; 0 = never expire.
    pub retention_days: u32,
}

/// The placeholders a group or stream name may contain and the resource attributes that
/// fill them (first one present wins), as in the OpenTelemetry Collector's AWS exporters.
const PLACEHOLDERS: [(&str, &[&str]); 8] = [
    ("{ServiceName}", &["service.name"]),
    ("{ServiceNamespace}", &["service.namespace"]),
    ("{TaskId}", &["aws.ecs.task.id", "aws.ecs.task.arn"]),
    ("{TaskDefinitionFamily}", &["aws.ecs.task.family"]),
    (
        "{ClusterName}",
        &["aws.ecs.cluster.name", "aws.ecs.cluster.arn"],
    ),
    (
        "{ContainerInstanceId}",
        &["aws.ecs.container.instance.id", "aws.ecs.container.arn"],
    ),
    ("{FunctionName}", &["faas.name", "aws.lambda.function.name"]),
    ("{InstanceId}", &["host.id"]),
];

/// Fills `{ServiceName}`-style placeholders from resource attributes. A placeholder whose
/// attribute is missing becomes `undefined` (as in the Collector), so events still land
/// somewhere predictable instead of being dropped; a warning names it once per template.
pub fn fill_placeholders(template: &str, resource: Option<&Resource>) -> String {
    if !template.contains('{') {
        return template.to_string();
    }
    let attrs = resource_strings(resource);
    let mut out = template.to_string();
    for (placeholder, keys) in PLACEHOLDERS {
        if !out.contains(placeholder) {
            continue;
        }
        let value = keys
            .iter()
            .find_map(|k| attrs.get(*k))
            // ARNs: the id is the part after the last `/`.
            .map(|v| v.rsplit('/').next().unwrap_or(v).to_string());
        let value = value.unwrap_or_else(|| {
            tracing::debug!(
                template,
                placeholder,
                "placeholder attribute missing; using `undefined`"
            );
            "undefined".to_string()
        });
        out = out.replace(placeholder, &value);
    }
    out
}

/// The string-valued attributes of a resource.
pub fn resource_strings(resource: Option<&Resource>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(r) = resource {
        for kv in &r.attributes {
            if let Some(AnyValueKind::StringValue(s)) =
                kv.value.as_ref().and_then(|v| v.value.as_ref())
            {
                out.insert(kv.key.clone(), s.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::common::{AnyValue, KeyValue};

    fn resource(pairs: &[(&str, &str)]) -> Resource {
        Resource {
            attributes: pairs
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.to_string(),
                    value: Some(AnyValue {
                        value: Some(AnyValueKind::StringValue(v.to_string())),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn allowed_retention_values_pass() {
        for d in ALLOWED_RETENTION_DAYS {
            assert_eq!(validate_retention(d), Ok(()));
        }
        assert_eq!(validate_retention(0), Ok(()));
    }

    #[test]
    fn seed_retention_2555_is_rejected_naming_2557() {
        let err = validate_retention(2555).expect_err("2555 is not allowed");
        assert!(err.contains("nearest allowed value is 2557"), "{err}");
        let err = validate_retention(31).expect_err("31 is not allowed");
        assert!(err.contains("nearest allowed value is 30"), "{err}");
    }

    #[test]
    fn placeholders_come_from_resource_attributes() {
        let r = resource(&[
            ("service.name", "sentiment-api"),
            (
                "aws.ecs.task.arn",
                "arn:aws:ecs:us-east-1:1:task/cluster/abc123",
            ),
            ("aws.ecs.cluster.name", "prod"),
        ]);
        assert_eq!(
            fill_placeholders("/aws/ecs/{ClusterName}/{ServiceName}", Some(&r)),
            "/aws/ecs/prod/sentiment-api"
        );
        assert_eq!(fill_placeholders("{TaskId}", Some(&r)), "abc123");
        assert_eq!(
            fill_placeholders("{FunctionName}-x", Some(&r)),
            "undefined-x"
        );
        assert_eq!(fill_placeholders("plain", None), "plain");
    }
}
