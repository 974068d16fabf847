//! The component sections (`receivers`, `processors`, `exporters`, `extensions`).
//!
//! Each section maps a component id (`type` or `type/name`, as in the OpenTelemetry
//! Collector) to that type's options. The type picks the options struct while the YAML is
//! still being read, so an unknown option or a bad value is reported with its path and line.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::component::{RetryConfig, SendingQueueConfig};
use crate::exporter::cloudwatch_logs::config::CloudWatchLogsExporterConfig;
use crate::exporter::debug::config::DebugExporterConfig;
use crate::exporter::emf::config::EmfExporterConfig;
use crate::exporter::file::config::FileExporterConfig;
use crate::exporter::loadbalancing::config::LoadBalancingExporterConfig;
use crate::exporter::otlp::config::OtlpExporterConfig;
use crate::exporter::xray::config::XrayExporterConfig;
use crate::extension::health_check::config::HealthCheckConfig;
use crate::model::Signal;
use crate::processor::batch::config::BatchConfig;
use crate::processor::xray_sampling::config::XRaySamplingConfig;
use crate::receiver::lambda::config::LambdaReceiverConfig;
use crate::receiver::otlp::config::OtlpReceiverConfig;
use crate::receiver::xray_udp::config::XrayReceiverConfig;

/// A section of components keyed by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Components<T>(pub BTreeMap<String, T>);

impl<T> Default for Components<T> {
    fn default() -> Self {
        Components(BTreeMap::new())
    }
}

/// A component kind whose concrete options depend on the type named in its id.
pub trait ComponentKind: Sized {
    /// `receiver`, `exporter`, ... for messages.
    const KIND: &'static str;
    /// Every type this build knows, for "did you mean" messages.
    const TYPES: &'static [&'static str];
    fn deserialize_typed<'de, A: MapAccess<'de>>(ty: &str, map: &mut A) -> Result<Self, A::Error>;
}

/// The type part of a component id: `file` for `file/traces`.
pub fn component_type(id: &str) -> &str {
    id.split_once('/').map(|(t, _)| t).unwrap_or(id)
}

/// Reads the options of one component; `name:` with nothing after it means all defaults.
pub fn next_options<'de, T, A>(map: &mut A) -> Result<T, A::Error>
where
    T: Deserialize<'de> + Default,
    A: MapAccess<'de>,
{
    Ok(map.next_value::<Option<T>>()?.unwrap_or_default())
}

impl<'de, T: ComponentKind> Deserialize<'de> for Components<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: ComponentKind> Visitor<'de> for V<T> {
            type Value = Components<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a map of {} ids to their options", T::KIND)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Components::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(id) = map.next_key::<String>()? {
                    let ty = component_type(&id);
                    if ty.is_empty() || id.ends_with('/') {
                        return Err(de::Error::custom(format!(
                            "`{id}` is not a valid {} id; use `type` or `type/name`",
                            T::KIND
                        )));
                    }
                    if !T::TYPES.contains(&ty) {
                        return Err(de::Error::custom(format!(
                            "unknown {} type `{ty}` (in `{id}`); this build knows: {}",
                            T::KIND,
                            T::TYPES.join(", ")
                        )));
                    }
                    let options = T::deserialize_typed(ty, &mut map)?;
                    if out.insert(id.clone(), options).is_some() {
                        return Err(de::Error::custom(format!(
                            "{} `{id}` is defined twice",
                            T::KIND
                        )));
                    }
                }
                Ok(Components(out))
            }
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

impl<T> Serialize for Components<T> {
    /// Only the ids are serialized: used to show the effective component list.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.keys())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverConfig {
    Otlp(OtlpReceiverConfig),
    AwsXray(XrayReceiverConfig),
    /// The Lambda Telemetry API; only runs in extension mode.
    Lambda(LambdaReceiverConfig),
}

impl ReceiverConfig {
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            ReceiverConfig::Otlp(_) | ReceiverConfig::Lambda(_) => &Signal::ALL,
            ReceiverConfig::AwsXray(_) => &[Signal::Traces],
        }
    }
}

impl ComponentKind for ReceiverConfig {
    const KIND: &'static str = "receiver";
    const TYPES: &'static [&'static str] = &["otlp", "awsxray", "lambda"];
    fn deserialize_typed<'de, A: MapAccess<'de>>(ty: &str, map: &mut A) -> Result<Self, A::Error> {
        match ty {
            "otlp" => Ok(ReceiverConfig::Otlp(next_options(map)?)),
            "awsxray" => Ok(ReceiverConfig::AwsXray(next_options(map)?)),
            "lambda" => Ok(ReceiverConfig::Lambda(next_options(map)?)),
            other => Err(de::Error::custom(format!(
                "unknown receiver type `{other}`"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProcessorConfig {
    Batch(BatchConfig),
    XRaySampling(XRaySamplingConfig),
}

impl ComponentKind for ProcessorConfig {
    const KIND: &'static str = "processor";
    const TYPES: &'static [&'static str] = &["batch", "xray_sampling"];
    fn deserialize_typed<'de, A: MapAccess<'de>>(ty: &str, map: &mut A) -> Result<Self, A::Error> {
        match ty {
            "batch" => Ok(ProcessorConfig::Batch(next_options(map)?)),
            "xray_sampling" => Ok(ProcessorConfig::XRaySampling(next_options(map)?)),
            other => Err(de::Error::custom(format!(
                "unknown processor type `{other}`"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    Debug(DebugExporterConfig),
    File(FileExporterConfig),
    AwsCloudWatchLogs(CloudWatchLogsExporterConfig),
    AwsEmf(EmfExporterConfig),
    AwsXray(XrayExporterConfig),
    Otlp(OtlpExporterConfig),
    LoadBalancing(LoadBalancingExporterConfig),
}

impl ExporterConfig {
    /// The signals this exporter type can take.
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            ExporterConfig::Debug(_) | ExporterConfig::File(_) => &Signal::ALL,
            ExporterConfig::AwsCloudWatchLogs(_) => &[Signal::Logs],
            ExporterConfig::AwsEmf(_) => &[Signal::Metrics],
            ExporterConfig::AwsXray(_) => &[Signal::Traces],
            ExporterConfig::Otlp(_) => &Signal::ALL,
            ExporterConfig::LoadBalancing(_) => &[Signal::Traces],
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.delivery()
            .0
            .validate()
            .map_err(|e| format!("retry_on_failure.{e}"))?;
        match self {
            ExporterConfig::Debug(_) => Ok(()),
            ExporterConfig::File(f) => f.validate(),
            ExporterConfig::AwsCloudWatchLogs(c) => c.validate(),
            ExporterConfig::AwsEmf(c) => c.validate(),
            ExporterConfig::AwsXray(c) => c.validate(),
            ExporterConfig::Otlp(c) => c.validate(),
            ExporterConfig::LoadBalancing(c) => c.validate(),
        }
    }

    /// The file this exporter writes to, when it writes to a file (for the start-up banner).
    pub fn output_file(&self) -> Option<&std::path::Path> {
        use crate::exporter::xray::config::OutputDestination as Xray;
        use crate::output::OutputDestination as Logs;
        match self {
            ExporterConfig::File(c) => Some(&c.path),
            ExporterConfig::AwsCloudWatchLogs(c) if c.output_destination == Logs::File => {
                c.path.as_deref()
            }
            ExporterConfig::AwsEmf(c) if c.output_destination == Logs::File => c.path.as_deref(),
            ExporterConfig::AwsXray(c) if c.output_destination == Xray::File => c.path.as_deref(),
            _ => None,
        }
    }

    /// Creates the exporter a configuration describes. `id` names it in messages and metrics.
    pub fn build(
        &self,
        id: &str,
        metrics: &std::sync::Arc<crate::telemetry::metrics::SelfMetrics>,
    ) -> Result<std::sync::Arc<dyn crate::component::Exporter>, String> {
        let _ = (id, metrics);
        Ok(match self {
            ExporterConfig::Debug(c) => {
                std::sync::Arc::new(crate::exporter::debug::DebugExporter::new(c))
            }
            ExporterConfig::File(c) => {
                std::sync::Arc::new(crate::exporter::file::FileExporter::new(c))
            }
            ExporterConfig::AwsCloudWatchLogs(c) => std::sync::Arc::new(
                crate::exporter::cloudwatch_logs::CloudWatchLogsExporter::new(id, c, metrics),
            ),
            ExporterConfig::AwsEmf(c) => {
                std::sync::Arc::new(crate::exporter::emf::EmfExporter::new(id, c, metrics)?)
            }
            ExporterConfig::AwsXray(c) => {
                std::sync::Arc::new(crate::exporter::xray::XrayExporter::new(id, c, metrics))
            }
            ExporterConfig::Otlp(c) => {
                std::sync::Arc::new(crate::exporter::otlp::OtlpExporter::new(c)?)
            }
            ExporterConfig::LoadBalancing(c) => std::sync::Arc::new(
                crate::exporter::loadbalancing::LoadBalancingExporter::new(id, c)?,
            ),
        })
    }

    /// Retry and queue settings shared by every exporter type.
    pub fn delivery(&self) -> (&RetryConfig, &SendingQueueConfig) {
        match self {
            ExporterConfig::Debug(c) => (&c.retry_on_failure, &c.sending_queue),
            ExporterConfig::File(c) => (&c.retry_on_failure, &c.sending_queue),
            ExporterConfig::AwsCloudWatchLogs(c) => (&c.retry_on_failure, &c.sending_queue),
            ExporterConfig::AwsEmf(c) => (&c.retry_on_failure, &c.sending_queue),
            ExporterConfig::AwsXray(c) => (&c.retry_on_failure, &c.sending_queue),
            ExporterConfig::Otlp(c) => (&c.retry_on_failure, &c.sending_queue),
            ExporterConfig::LoadBalancing(c) => (&c.retry_on_failure, &c.sending_queue),
        }
    }
}

impl ComponentKind for ExporterConfig {
    const KIND: &'static str = "exporter";
    const TYPES: &'static [&'static str] = &[
        "debug",
        "file",
        "awscloudwatchlogs",
        "awsemf",
        "awsxray",
        "otlp",
        "loadbalancing",
    ];
    fn deserialize_typed<'de, A: MapAccess<'de>>(ty: &str, map: &mut A) -> Result<Self, A::Error> {
        match ty {
            "debug" => Ok(ExporterConfig::Debug(next_options(map)?)),
            "file" => Ok(ExporterConfig::File(next_options(map)?)),
            "awscloudwatchlogs" => Ok(ExporterConfig::AwsCloudWatchLogs(next_options(map)?)),
            "awsemf" => Ok(ExporterConfig::AwsEmf(next_options(map)?)),
            "awsxray" => Ok(ExporterConfig::AwsXray(next_options(map)?)),
            "otlp" => Ok(ExporterConfig::Otlp(next_options(map)?)),
            "loadbalancing" => Ok(ExporterConfig::LoadBalancing(next_options(map)?)),
            other => Err(de::Error::custom(format!(
                "unknown exporter type `{other}`"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExtensionConfig {
    HealthCheck(HealthCheckConfig),
}

impl ComponentKind for ExtensionConfig {
    const KIND: &'static str = "extension";
    const TYPES: &'static [&'static str] = &["health_check"];
    fn deserialize_typed<'de, A: MapAccess<'de>>(ty: &str, map: &mut A) -> Result<Self, A::Error> {
        match ty {
            "health_check" => Ok(ExtensionConfig::HealthCheck(next_options(map)?)),
            other => Err(de::Error::custom(format!(
                "unknown extension type `{other}`"
            ))),
        }
    }
}
