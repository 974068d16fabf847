//! The component sections (`receivers`, `processors`, `exporters`, `extensions`), and the
//! registration list: the one place that names every component type this build has.
//!
//! Each section maps a component id (`type` or `type/name`, as in the OpenTelemetry
//! Collector) to that type's options. The type picks the options struct while the YAML is
//! still being read, so an unknown option or a bad value is reported with its path and line.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::component::factory::{
    ExporterFactory, ExtensionFactory, ProcessorFactory, ReceiverFactory, Registered,
};

/// Component types behind a cargo feature (kind, type, feature), all on by default; the lean
/// Lambda layer (`--no-default-features --features ring`) leaves them out. A config naming
/// one that this build lacks is told which feature has it rather than "unknown type".
pub const FEATURE_GATED: &[(&str, &str, &str)] = &[
    ("receiver", "awsxray", "awsxray"),
    ("exporter", "awsxray", "awsxray"),
    ("exporter", "awscloudwatchlogs", "awscloudwatchlogs"),
    ("exporter", "otlp", "grpc-exporters"),
    ("exporter", "loadbalancing", "grpc-exporters"),
    ("processor", "xray_sampling", "tail-sampling"),
];

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
                    if let Some((_, _, feature)) = FEATURE_GATED
                        .iter()
                        .find(|(k, t, _)| *k == T::KIND && *t == ty && !T::TYPES.contains(t))
                    {
                        return Err(de::Error::custom(format!(
                            "{} type `{ty}` (in `{id}`) is not in this build: it was built \
                             without the `{feature}` cargo feature (the lean Lambda layer \
                             leaves it out); use the full build",
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

/// Declares one section's typed options enum from its registration list: the enum, the
/// type names it knows (from each options struct's [`Registered::TYPE`]), the typed
/// deserialization, and `factory()`, which hands the options to the section's factory
/// trait. Nothing else in the collector matches on component types.
macro_rules! section {
    ($(#[$meta:meta])* $enum:ident, $kind:literal, $factory:ident {
        $($(#[$cfg:meta])* $variant:ident($config:ty),)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $enum {
            $($(#[$cfg])* $variant($config),)+
        }

        impl ComponentKind for $enum {
            const KIND: &'static str = $kind;
            const TYPES: &'static [&'static str] =
                &[$($(#[$cfg])* <$config as Registered>::TYPE,)+];
            fn deserialize_typed<'de, A: MapAccess<'de>>(
                ty: &str,
                map: &mut A,
            ) -> Result<Self, A::Error> {
                $($(#[$cfg])* if ty == <$config as Registered>::TYPE {
                    return Ok($enum::$variant(next_options(map)?));
                })+
                Err(de::Error::custom(format!("unknown {} type `{ty}`", $kind)))
            }
        }

        impl $enum {
            /// The default options of the type named `ty`, if this build has it.
            pub fn defaults_of(ty: &str) -> Option<Self> {
                $($(#[$cfg])* if ty == <$config as Registered>::TYPE {
                    return Some($enum::$variant(<$config>::default()));
                })+
                None
            }

            /// These options as their component's factory.
            pub fn factory(&self) -> &dyn $factory {
                match self {
                    $($(#[$cfg])* $enum::$variant(c) => c,)+
                }
            }
        }
    };
}

section! {
    /// A receiver's options, by type.
    ReceiverConfig, "receiver", ReceiverFactory {
        Otlp(crate::receiver::otlp::config::OtlpReceiverConfig),
        #[cfg(feature = "awsxray")]
        AwsXray(crate::receiver::xray_udp::config::XrayReceiverConfig),
        Lambda(crate::receiver::lambda::config::LambdaReceiverConfig),
    }
}

section! {
    /// A processor's options, by type.
    ProcessorConfig, "processor", ProcessorFactory {
        Batch(crate::processor::batch::config::BatchConfig),
        #[cfg(feature = "tail-sampling")]
        XRaySampling(crate::processor::xray_sampling::config::XRaySamplingConfig),
        Redaction(crate::processor::redaction::config::RedactionConfig),
    }
}

section! {
    /// An exporter's options, by type.
    ExporterConfig, "exporter", ExporterFactory {
        Debug(crate::exporter::debug::config::DebugExporterConfig),
        File(crate::exporter::file::config::FileExporterConfig),
        #[cfg(feature = "awscloudwatchlogs")]
        AwsCloudWatchLogs(crate::exporter::cloudwatch_logs::config::CloudWatchLogsExporterConfig),
        AwsEmf(crate::exporter::emf::config::EmfExporterConfig),
        #[cfg(feature = "awsxray")]
        AwsXray(crate::exporter::xray::config::XrayExporterConfig),
        #[cfg(feature = "grpc-exporters")]
        Otlp(crate::exporter::otlp::config::OtlpExporterConfig),
        OtlpHttp(crate::exporter::otlphttp::config::OtlpHttpExporterConfig),
        #[cfg(feature = "grpc-exporters")]
        LoadBalancing(crate::exporter::loadbalancing::config::LoadBalancingExporterConfig),
    }
}

section! {
    /// An extension's options, by type.
    ExtensionConfig, "extension", ExtensionFactory {
        HealthCheck(crate::extension::health_check::config::HealthCheckConfig),
        BearerTokenAuth(crate::extension::bearertokenauth::config::BearerTokenAuthConfig),
        SigV4Auth(crate::extension::sigv4auth::config::SigV4AuthConfig),
    }
}
