//! Who is sending: the OpenTelemetry resource (service, host, cloud platform).
//!
//! The AWS detectors from `opentelemetry-aws` run only where their platform's marker is
//! present, because off-platform they make blocking HTTP calls (1 s timeout each) to
//! metadata endpoints that do not answer: a laptop or CI run must not stall at start-up.
//!
//! | platform | marker                                         | detector        |
//! |----------|------------------------------------------------|-----------------|
//! | Lambda   | `AWS_LAMBDA_FUNCTION_NAME`                     | env only        |
//! | ECS      | `ECS_CONTAINER_METADATA_URI_V4`                | task metadata   |
//! | EKS      | `KUBERNETES_SERVICE_HOST`                      | IMDS + k8s files|
//! | EC2      | opt-in: `TelemetryBuilder::detect_ec2(true)`   | IMDSv2          |
//!
//! Precedence, lowest first: SDK defaults (`unknown_service:<exe>`), platform detectors,
//! the builder's service name/version, log groups and attributes, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_SERVICE_NAME`. The environment wins so operators can rename a service or tag a
//! deployment without a rebuild.
//!
//! `aws.log.group.names` (semantic conventions: the log groups the application writes to)
//! lists the groups the service's logs land in, so the collector's X-Ray exporter puts them
//! in every segment's `aws.cloudwatch_logs` and the X-Ray console shows a trace's logs.

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_aws::detector::{
    Ec2ResourceDetector, EcsResourceDetector, EksResourceDetector, LambdaResourceDetector,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{
    EnvResourceDetector, ResourceDetector, SdkProvidedResourceDetector, TelemetryResourceDetector,
};

/// AWS platforms whose detector should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Lambda,
    Ecs,
    Eks,
    Ec2,
}

/// Which detectors to run given the environment (`env` looks a variable up) and whether EC2
/// detection was asked for. ECS and Lambda exclude EC2/EKS: their detectors already report
/// what the platform exposes, and IMDS is unreachable from Lambda and Fargate.
pub fn platforms(env: impl Fn(&str) -> Option<String>, detect_ec2: bool) -> Vec<Platform> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if set("AWS_LAMBDA_FUNCTION_NAME") {
        return vec![Platform::Lambda];
    }
    if set("ECS_CONTAINER_METADATA_URI_V4") {
        return vec![Platform::Ecs];
    }
    if set("KUBERNETES_SERVICE_HOST") {
        return vec![Platform::Eks];
    }
    if detect_ec2 {
        return vec![Platform::Ec2];
    }
    Vec::new()
}

/// What the builder contributes to the resource.
pub(crate) struct ResourceOptions<'a> {
    pub service_name: Option<&'a str>,
    pub service_version: Option<&'a str>,
    pub attributes: &'a [KeyValue],
    /// `aws.log.group.names`; empty: not set.
    pub log_group_names: &'a [String],
    pub detect_ec2: bool,
}

/// The semantic-convention key of the log groups a service writes to.
pub const LOG_GROUP_NAMES: &str = "aws.log.group.names";

/// Builds the resource in the documented precedence order from the process environment.
pub(crate) fn build(options: &ResourceOptions<'_>) -> Resource {
    let detectors: Vec<Box<dyn ResourceDetector>> =
        platforms(|name| std::env::var(name).ok(), options.detect_ec2)
            .into_iter()
            .map(|p| -> Box<dyn ResourceDetector> {
                match p {
                    Platform::Lambda => Box::new(LambdaResourceDetector),
                    Platform::Ecs => Box::new(EcsResourceDetector),
                    Platform::Eks => Box::new(EksResourceDetector),
                    Platform::Ec2 => Box::new(Ec2ResourceDetector),
                }
            })
            .collect();
    let mut builder = Resource::builder_empty()
        .with_detector(Box::new(SdkProvidedResourceDetector))
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_detectors(&detectors);
    if let Some(name) = options.service_name {
        builder = builder.with_service_name(name.to_owned());
    }
    if let Some(version) = options.service_version {
        builder = builder.with_attribute(KeyValue::new("service.version", version.to_owned()));
    }
    if !options.log_group_names.is_empty() {
        let names = options
            .log_group_names
            .iter()
            .map(|n| StringValue::from(n.clone()))
            .collect();
        builder = builder.with_attribute(KeyValue::new(
            LOG_GROUP_NAMES,
            Value::Array(Array::String(names)),
        ));
    }
    builder = builder
        .with_attributes(options.attributes.iter().cloned())
        .with_detector(Box::new(EnvResourceDetector::new()));
    if let Some(name) = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
    {
        builder = builder.with_service_name(name);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_marker_means_no_network_detector() {
        assert!(platforms(env(&[]), false).is_empty());
        assert_eq!(platforms(env(&[]), true), [Platform::Ec2]);
    }

    #[test]
    fn lambda_and_ecs_markers_pick_their_detector() {
        assert_eq!(
            platforms(env(&[("AWS_LAMBDA_FUNCTION_NAME", "analyze")]), true),
            [Platform::Lambda]
        );
        assert_eq!(
            platforms(
                env(&[("ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2/v4/x")]),
                false
            ),
            [Platform::Ecs]
        );
        assert_eq!(
            platforms(env(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]), false),
            [Platform::Eks]
        );
        assert!(platforms(env(&[("AWS_LAMBDA_FUNCTION_NAME", "")]), false).is_empty());
    }

    #[test]
    fn builder_name_and_version_land_on_the_resource() {
        // Runs off-platform (no marker variables in the test environment), so no detector
        // makes a network call; OTEL_SERVICE_NAME is not set by the test harness.
        let attrs = [KeyValue::new("deployment.environment.name", "test")];
        let resource = build(&ResourceOptions {
            service_name: Some("sentiment-api"),
            service_version: Some("1.2.3"),
            attributes: &attrs,
            log_group_names: &["/aws/aurastream/application".to_owned()],
            detect_ec2: false,
        });
        let get = |k: &'static str| resource.get(&opentelemetry::Key::from_static_str(k));
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            assert_eq!(
                get("service.name").map(|v| v.to_string()).as_deref(),
                Some("sentiment-api")
            );
        }
        assert_eq!(
            get("service.version").map(|v| v.to_string()).as_deref(),
            Some("1.2.3")
        );
        assert_eq!(
            get("deployment.environment.name")
                .map(|v| v.to_string())
                .as_deref(),
            Some("test")
        );
        assert!(get("telemetry.sdk.name").is_some());
        if std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_err() {
            assert_eq!(
                get(LOG_GROUP_NAMES),
                Some(Value::Array(Array::String(vec![
                    "/aws/aurastream/application".into()
                ])))
            );
        }
    }
}
