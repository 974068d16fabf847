//! The CloudWatch *entity* of a PutLogEvents request: which service the events come from.
//!
//! CloudWatch uses it to relate telemetry ("Explore related", Application Signals): logs
//! sent with the entity `{Type: Service, Name: sentiment-api, Environment: prod}` show up
//! next to that service's metrics and traces. The fields follow CloudWatch's "How to add
//! related information to custom telemetry" and the PutLogEvents `Entity` type:
//!
//! - `keyAttributes`: `Type` = `Service`, `Name` = `service.name`, `Environment` =
//!   `deployment.environment.name` (or the older `deployment.environment`), else the
//!   platform default Application Signals uses (`ec2:default`, `ecs:<cluster>`,
//!   `eks:<cluster>/<namespace>`, `lambda:default`, `generic:default`);
//! - `attributes` (at most 10): `PlatformType` (`AWS::EC2`, `AWS::ECS`, `AWS::EKS`,
//!   `AWS::Lambda`, `K8s`, `Generic`) and what the resource says about where the service
//!   runs (`EC2.InstanceId`, `EKS.Cluster`, `K8s.Cluster`, `K8s.Namespace`,
//!   `K8s.Workload`, `K8s.Node`, `K8s.Pod`, `Host`), plus `AWS.ServiceNameSource` =
//!   `Instrumentation` (the name comes from the application's own OpenTelemetry resource).
//!
//! One request carries one entity, so events are batched per entity (it is part of the
//! [`LogTarget`](super::target::LogTarget)). A resource without `service.name` has no
//! entity: there is nothing to relate the events to.

use std::collections::BTreeMap;

use aurastream_proto::otlp::common::KeyValue;
use aurastream_proto::otlp::common::any_value::Value as AnyValueKind;

/// CloudWatch's limit on an entity attribute value (PutLogEvents), in bytes.
const MAX_VALUE_BYTES: usize = 512;
/// CloudWatch's limit on the number of entity attributes.
const MAX_ATTRIBUTES: usize = 10;

/// The entity sent with a PutLogEvents request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogEntity {
    pub key_attributes: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
}

impl LogEntity {
    /// The entity of a resource, or `None` when it has no `service.name`.
    pub fn of_resource(resource: &[KeyValue]) -> Option<LogEntity> {
        let get = |key: &str| string(resource, key);
        let name = get("service.name")?;
        let platform = get("cloud.platform");
        let k8s_cluster = get("k8s.cluster.name");
        let namespace = get("k8s.namespace.name");
        let (platform_type, default_environment) = match platform {
            Some("aws_ec2") => ("AWS::EC2", "ec2:default".to_string()),
            Some("aws_ecs") => (
                "AWS::ECS",
                match get("aws.ecs.cluster.arn").or(get("aws.ecs.cluster.name")) {
                    Some(c) => format!("ecs:{}", c.rsplit('/').next().unwrap_or(c)),
                    None => "ecs:default".to_string(),
                },
            ),
            Some("aws_eks") => (
                "AWS::EKS",
                format!(
                    "eks:{}/{}",
                    k8s_cluster.unwrap_or("default"),
                    namespace.unwrap_or("default")
                ),
            ),
            Some("aws_lambda") => ("AWS::Lambda", "lambda:default".to_string()),
            _ if k8s_cluster.is_some() => (
                "K8s",
                format!(
                    "k8s:{}/{}",
                    k8s_cluster.unwrap_or("default"),
                    namespace.unwrap_or("default")
                ),
            ),
            _ => ("Generic", "generic:default".to_string()),
        };
        let environment = get("deployment.environment.name")
            .or_else(|| get("deployment.environment"))
            .map(str::to_string)
            .unwrap_or(default_environment);
        let key_attributes = BTreeMap::from([
            ("Type".to_string(), "Service".to_string()),
            ("Name".to_string(), clip(name)),
            ("Environment".to_string(), clip(&environment)),
        ]);
        let workload = [
            "k8s.deployment.name",
            "k8s.statefulset.name",
            "k8s.daemonset.name",
            "k8s.replicaset.name",
            "k8s.cronjob.name",
            "k8s.job.name",
        ]
        .into_iter()
        .find_map(get);
        let is_eks = platform == Some("aws_eks");
        let candidates: [(&str, Option<&str>); 9] = [
            ("PlatformType", Some(platform_type)),
            (
                "EC2.InstanceId",
                get("host.id").filter(|_| platform == Some("aws_ec2")),
            ),
            ("EKS.Cluster", k8s_cluster.filter(|_| is_eks)),
            ("K8s.Cluster", k8s_cluster.filter(|_| !is_eks)),
            ("K8s.Namespace", namespace),
            ("K8s.Workload", workload),
            ("K8s.Node", get("k8s.node.name")),
            ("K8s.Pod", get("k8s.pod.name")),
            ("Host", get("host.name")),
        ];
        let mut attributes: BTreeMap<String, String> = candidates
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), clip(v?))))
            .take(MAX_ATTRIBUTES - 1)
            .collect();
        attributes.insert(
            "AWS.ServiceNameSource".to_string(),
            "Instrumentation".to_string(),
        );
        Some(LogEntity {
            key_attributes,
            attributes,
        })
    }

    /// The entity as the PutLogEvents JSON shows it, for the `file`/`stdout` destinations.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "keyAttributes": self.key_attributes,
            "attributes": self.attributes,
        })
    }
}

fn string<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match list
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        AnyValueKind::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `value` cut to CloudWatch's 512 bytes, at a character boundary.
fn clip(value: &str) -> String {
    let mut end = value.len().min(MAX_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::common::AnyValue;

    fn kvs(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
        pairs
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: Some(AnyValue {
                    value: Some(AnyValueKind::StringValue(v.to_string())),
                }),
                ..Default::default()
            })
            .collect()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_service_name_no_entity() {
        assert_eq!(LogEntity::of_resource(&kvs(&[("host.name", "h")])), None);
    }

    #[test]
    fn ecs_service_with_environment() {
        let e = LogEntity::of_resource(&kvs(&[
            ("service.name", "sentiment-api"),
            ("deployment.environment.name", "prod"),
            ("cloud.platform", "aws_ecs"),
            (
                "aws.ecs.cluster.arn",
                "arn:aws:ecs:us-east-1:1:cluster/main",
            ),
            ("host.name", "ip-10-0-0-1"),
        ]))
        .expect("entity");
        assert_eq!(
            e.key_attributes,
            map(&[
                ("Type", "Service"),
                ("Name", "sentiment-api"),
                ("Environment", "prod")
            ])
        );
        assert_eq!(
            e.attributes,
            map(&[
                ("PlatformType", "AWS::ECS"),
                ("Host", "ip-10-0-0-1"),
                ("AWS.ServiceNameSource", "Instrumentation"),
            ])
        );
    }

    #[test]
    fn platform_defaults_for_the_environment() {
        let env = |pairs: &[(&str, &str)]| {
            LogEntity::of_resource(&kvs(pairs))
                .expect("entity")
                .key_attributes["Environment"]
                .clone()
        };
        assert_eq!(env(&[("service.name", "s")]), "generic:default");
        assert_eq!(
            env(&[("service.name", "s"), ("deployment.environment", "staging")]),
            "staging"
        );
        assert_eq!(
            env(&[("service.name", "s"), ("cloud.platform", "aws_ec2")]),
            "ec2:default"
        );
        assert_eq!(
            env(&[
                ("service.name", "s"),
                ("cloud.platform", "aws_ecs"),
                (
                    "aws.ecs.cluster.arn",
                    "arn:aws:ecs:us-east-1:1:cluster/main"
                )
            ]),
            "ecs:main"
        );
        assert_eq!(
            env(&[("service.name", "s"), ("cloud.platform", "aws_lambda")]),
            "lambda:default"
        );
    }

    #[test]
    fn eks_attributes_come_from_the_k8s_resource() {
        let e = LogEntity::of_resource(&kvs(&[
            ("service.name", "api"),
            ("cloud.platform", "aws_eks"),
            ("k8s.cluster.name", "prod-eks"),
            ("k8s.namespace.name", "shop"),
            ("k8s.deployment.name", "api-deploy"),
            ("k8s.node.name", "node-1"),
            ("k8s.pod.name", "api-123"),
        ]))
        .expect("entity");
        assert_eq!(e.key_attributes["Environment"], "eks:prod-eks/shop");
        assert_eq!(
            e.attributes,
            map(&[
                ("PlatformType", "AWS::EKS"),
                ("EKS.Cluster", "prod-eks"),
                ("K8s.Namespace", "shop"),
                ("K8s.Workload", "api-deploy"),
                ("K8s.Node", "node-1"),
                ("K8s.Pod", "api-123"),
                ("AWS.ServiceNameSource", "Instrumentation"),
            ])
        );
        let long = "n".repeat(700);
        let e = LogEntity::of_resource(&kvs(&[("service.name", &long)])).expect("entity");
        assert_eq!(e.key_attributes["Name"].len(), MAX_VALUE_BYTES);
    }
}
