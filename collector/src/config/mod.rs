//! Configuration: YAML in the OpenTelemetry Collector layout.
//!
//! ```yaml
//! receivers:  { otlp: { protocols: { grpc: , http: } } }
//! processors: { batch: }
//! exporters:  { file/traces: { path: ./aurastream-data/traces.jsonl } }
//! extensions: { health_check: }
//! service:
//!   extensions: [health_check]
//!   pipelines:
//!     traces: { receivers: [otlp], processors: [batch], exporters: [file/traces] }
//! ```
//!
//! Parsing is strict: an unknown option or a bad value stops start-up with the file, the
//! option's path and its line. Several files may be given; later ones override earlier ones
//! key by key (lists are replaced whole). With no file, [`DEFAULT_CONFIG`] is used.

pub(crate) mod components;
pub(crate) mod env;
pub mod memory_limiter;
mod service;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use components::{
    Components, ExporterConfig, ExtensionConfig, FEATURE_GATED, ProcessorConfig, ReceiverConfig,
    component_type,
};
pub use service::{LogEncoding, PipelineConfig, ServiceConfig};

use crate::component::validate::{Invalid, check_duration};
use crate::model::Signal;

/// The configuration used when none is given: OTLP in on loopback, sampled, batched, and
/// written under `./aurastream-data/` as it would be sent to AWS, health and metrics on
/// 127.0.0.1:13133 (the lean build's is [`LEAN_DEFAULT_CONFIG`]).
#[cfg(all(
    feature = "awsxray",
    feature = "awscloudwatchlogs",
    feature = "tail-sampling"
))]
pub const DEFAULT_CONFIG: &str = include_str!("default.yaml");
#[cfg(not(all(
    feature = "awsxray",
    feature = "awscloudwatchlogs",
    feature = "tail-sampling"
)))]
pub const DEFAULT_CONFIG: &str = LEAN_DEFAULT_CONFIG;

/// The default of a build without the `awsxray`, `awscloudwatchlogs` and `tail-sampling`
/// features (the lean Lambda layer's binary): traces and logs as OTLP/JSON lines.
pub const LEAN_DEFAULT_CONFIG: &str = include_str!("default-lean.yaml");

/// The configuration of the Lambda extension when `$AURASTREAM_CONFIG` names no file: the
/// function sends OTLP to loopback, platform telemetry comes from the Telemetry API,
/// metrics and logs go to stdout and traces to X-Ray (the lean build's is
/// [`LAMBDA_LEAN_DEFAULT_CONFIG`]).
#[cfg(all(feature = "awsxray", feature = "awscloudwatchlogs"))]
pub const LAMBDA_DEFAULT_CONFIG: &str = include_str!("lambda-default.yaml");
#[cfg(not(all(feature = "awsxray", feature = "awscloudwatchlogs")))]
pub const LAMBDA_DEFAULT_CONFIG: &str = LAMBDA_LEAN_DEFAULT_CONFIG;

/// The Lambda default of the lean layer: traces and logs to AWS's OTLP endpoints, SigV4.
pub const LAMBDA_LEAN_DEFAULT_CONFIG: &str = include_str!("lambda-default-lean.yaml");

/// The whole configuration after parsing and validation.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub receivers: Components<ReceiverConfig>,
    #[serde(default)]
    pub processors: Components<ProcessorConfig>,
    #[serde(default)]
    pub exporters: Components<ExporterConfig>,
    #[serde(default)]
    pub extensions: Components<ExtensionConfig>,
    #[serde(default)]
    pub service: ServiceConfig,
}

/// What is wrong with a configuration, said so that the operator can fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name}: {message}")]
    Env {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: at `{path}`: {message}")]
    Parse {
        source_name: String,
        path: String,
        message: String,
    },
    #[error("{source_name}: at `{path}`: {problem}")]
    Invalid {
        source_name: String,
        path: String,
        problem: Box<Invalid>,
    },
}

/// One configuration document and where it came from (a path, or `built-in default`).
pub struct ConfigSource {
    pub name: String,
    pub text: String,
}

impl ConfigSource {
    pub fn default_config() -> ConfigSource {
        ConfigSource {
            name: "built-in default".into(),
            text: DEFAULT_CONFIG.into(),
        }
    }

    pub fn lambda_default_config() -> ConfigSource {
        ConfigSource {
            name: "built-in Lambda default".into(),
            text: LAMBDA_DEFAULT_CONFIG.into(),
        }
    }

    pub fn read(path: &Path) -> Result<ConfigSource, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(ConfigSource {
            name: path.display().to_string(),
            text,
        })
    }
}

/// Loads the given files (or the built-in default when there are none) with the process
/// environment for `${env:VAR}`.
pub fn load(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    let sources = if paths.is_empty() {
        vec![ConfigSource::default_config()]
    } else {
        paths
            .iter()
            .map(|p| ConfigSource::read(p))
            .collect::<Result<Vec<_>, _>>()?
    };
    load_sources(&sources, |name| std::env::var(name).ok())
}

/// Loads the Lambda extension's configuration: the given files, else the file named by
/// `$AURASTREAM_CONFIG`, else [`LAMBDA_DEFAULT_CONFIG`].
pub fn load_lambda(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    if !paths.is_empty() {
        return load(paths);
    }
    match std::env::var_os("AURASTREAM_CONFIG").filter(|v| !v.is_empty()) {
        Some(path) => load(&[PathBuf::from(path)]),
        None => load_sources(&[ConfigSource::lambda_default_config()], |name| {
            std::env::var(name).ok()
        }),
    }
}

/// Parses, merges and validates configuration documents; later documents win.
pub fn load_sources(
    sources: &[ConfigSource],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut merged: Option<serde_yaml_ng::Value> = None;
    let mut last_name = String::new();
    let mut single: Option<Config> = None;
    for source in sources {
        let text = env::substitute(&source.text, &lookup).map_err(|e| ConfigError::Env {
            source_name: source.name.clone(),
            message: e.to_string(),
        })?;
        // Each document is checked on its own first, so a typo is reported against the file
        // and line where it was written.
        let typed: Config = parse_typed(&source.name, &text)?;
        let value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Parse {
                source_name: source.name.clone(),
                path: ".".into(),
                message: e.to_string(),
            })?;
        merged = Some(match merged {
            None => value,
            Some(base) => merge(base, value),
        });
        last_name = source.name.clone();
        single = Some(typed);
    }
    let config = if sources.len() == 1 {
        single.unwrap_or_default()
    } else {
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        last_name = names.join(" + ");
        // The merged document goes through the same text deserializer as each file: one
        // instantiation of every options struct's `Deserialize` instead of a second one for
        // `serde_yaml_ng::Value` (about 0.2 MB of the lean Lambda layer's binary). Each file
        // was checked on its own above, so an error here is one of the combination.
        let value = merged.unwrap_or(serde_yaml_ng::Value::Null);
        let text = serde_yaml_ng::to_string(&value).map_err(|e| ConfigError::Parse {
            source_name: last_name.clone(),
            path: ".".into(),
            message: e.to_string(),
        })?;
        parse_typed(&last_name, &text)?
    };
    config
        .validate()
        .map_err(|(path, problem)| ConfigError::Invalid {
            source_name: last_name,
            path,
            problem: Box::new(problem),
        })?;
    #[cfg(all(feature = "awsxray", feature = "awscloudwatchlogs"))]
    let config = {
        let mut config = config;
        link_xray_log_groups(&mut config);
        config
    };
    Ok(config)
}

/// Gives every `awsxray` exporter without `aws_log_groups` the log groups of the
/// `awscloudwatchlogs` exporters in use (their default and category groups, as templates),
/// so segments name the groups their service's logs go to and the X-Ray console shows a
/// trace's log lines. A span whose resource has `aws.log.group.names` keeps those.
#[cfg(all(feature = "awsxray", feature = "awscloudwatchlogs"))]
fn link_xray_log_groups(config: &mut Config) {
    let used: std::collections::BTreeSet<&String> = config
        .service
        .pipelines
        .values()
        .flat_map(|p| &p.exporters)
        .collect();
    let mut routed: Vec<String> = config
        .exporters
        .0
        .iter()
        .filter(|(id, _)| used.contains(id))
        .filter_map(|(_, e)| match e {
            ExporterConfig::AwsCloudWatchLogs(c) => Some(c.log_group_names()),
            _ => None,
        })
        .flatten()
        .collect();
    routed.sort();
    routed.dedup();
    for exporter in config.exporters.0.values_mut() {
        if let ExporterConfig::AwsXray(x) = exporter
            && x.aws_log_groups.is_empty()
        {
            x.aws_log_groups = routed.clone();
        }
    }
}

fn parse_typed<T: DeserializeOwned>(name: &str, text: &str) -> Result<T, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Parse {
        source_name: name.into(),
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

/// Deep-merges `over` into `base`: maps key by key, anything else replaced.
fn merge(base: serde_yaml_ng::Value, over: serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    match (base, over) {
        (Value::Mapping(mut b), Value::Mapping(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(existing) => merge(existing, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Mapping(b)
        }
        (base, Value::Null) => base,
        (_, over) => over,
    }
}

impl Config {
    /// Cross-references and values that a single section cannot check on its own.
    /// Errors are the path of the section and what is wrong there.
    pub fn validate(&self) -> Result<(), (String, Invalid)> {
        let mut singletons = std::collections::BTreeSet::new();
        for (id, r) in &self.receivers.0 {
            let factory = r.factory();
            factory
                .validate()
                .map_err(|m| (format!("receivers.{id}"), m))?;
            if let Some(why) = factory.one_per_collector()
                && !singletons.insert(component_type(id))
            {
                return Err((format!("receivers.{id}"), Invalid::Rule(why)));
            }
        }
        for (id, p) in &self.processors.0 {
            p.factory()
                .validate()
                .map_err(|m| (format!("processors.{id}"), m))?;
        }
        for (id, e) in &self.exporters.0 {
            let factory = e.factory();
            factory.delivery().0.validate().map_err(|m| {
                (
                    format!("exporters.{id}"),
                    Invalid::within("retry_on_failure", m),
                )
            })?;
            factory
                .validate()
                .map_err(|m| (format!("exporters.{id}"), m))?;
        }
        for (id, x) in &self.extensions.0 {
            x.factory()
                .validate()
                .map_err(|m| (format!("extensions.{id}"), m))?;
        }
        if self.service.pipelines.is_empty() {
            return Err((
                "service.pipelines".into(),
                Invalid::Rule("define at least one pipeline (traces, metrics or logs)"),
            ));
        }
        for (name, p) in &self.service.pipelines {
            let at = format!("service.pipelines.{name}");
            let Some(signal) = Signal::parse(component_type(name)) else {
                return Err((
                    at,
                    Invalid::value(
                        "pipeline",
                        name,
                        "must be named `traces`, `metrics` or `logs` (optionally `/suffix`)",
                    ),
                ));
            };
            if p.receivers.is_empty() {
                return Err((
                    format!("{at}.receivers"),
                    Invalid::Rule("list at least one receiver"),
                ));
            }
            if p.exporters.is_empty() {
                return Err((
                    format!("{at}.exporters"),
                    Invalid::Rule("list at least one exporter"),
                ));
            }
            for (i, id) in p.receivers.iter().enumerate() {
                let Some(r) = self.receivers.0.get(id) else {
                    return Err((
                        format!("{at}.receivers[{i}]"),
                        Invalid::Undefined {
                            kind: "receiver",
                            id: id.clone(),
                            section: "receivers",
                        },
                    ));
                };
                if !r.factory().signals().contains(&signal) {
                    return Err((
                        format!("{at}.receivers[{i}]"),
                        Invalid::WrongSignal {
                            kind: "receiver",
                            id: id.clone(),
                            verb: "receive",
                            signal,
                        },
                    ));
                }
            }
            for (i, id) in p.processors.iter().enumerate() {
                let Some(processor) = self.processors.0.get(id) else {
                    return Err((
                        format!("{at}.processors[{i}]"),
                        Invalid::Undefined {
                            kind: "processor",
                            id: id.clone(),
                            section: "processors",
                        },
                    ));
                };
                if !processor.factory().signals().contains(&signal) {
                    return Err((
                        format!("{at}.processors[{i}]"),
                        Invalid::WrongSignal {
                            kind: "processor",
                            id: id.clone(),
                            verb: "process",
                            signal,
                        },
                    ));
                }
            }
            for (i, id) in p.exporters.iter().enumerate() {
                let Some(e) = self.exporters.0.get(id) else {
                    return Err((
                        format!("{at}.exporters[{i}]"),
                        Invalid::Undefined {
                            kind: "exporter",
                            id: id.clone(),
                            section: "exporters",
                        },
                    ));
                };
                if !e.factory().signals().contains(&signal) {
                    return Err((
                        format!("{at}.exporters[{i}]"),
                        Invalid::WrongSignal {
                            kind: "exporter",
                            id: id.clone(),
                            verb: "export",
                            signal,
                        },
                    ));
                }
            }
            if p.queue_size == 0 {
                return Err((
                    format!("{at}.queue_size"),
                    Invalid::Rule("must be at least 1"),
                ));
            }
        }
        if let Some(m) = &self.service.memory_limiter {
            m.validate()
                .map_err(|e| ("service.memory_limiter".to_string(), e))?;
        }
        check_duration("shutdown_timeout", self.service.shutdown_timeout)
            .map_err(|e| ("service".to_string(), e))?;
        for (i, id) in self.service.extensions.iter().enumerate() {
            if !self.extensions.0.contains_key(id) {
                return Err((
                    format!("service.extensions[{i}]"),
                    Invalid::Undefined {
                        kind: "extension",
                        id: id.clone(),
                        section: "extensions",
                    },
                ));
            }
        }
        let receivers = self
            .receivers
            .0
            .iter()
            .map(|(id, r)| (format!("receivers.{id}"), r.factory().authenticators()));
        let exporters = self
            .exporters
            .0
            .iter()
            .map(|(id, e)| (format!("exporters.{id}"), e.factory().authenticators()));
        for (at, named) in receivers.chain(exporters) {
            for (option, id) in named {
                if !self.service.extensions.contains(&id) {
                    let defined = if self.extensions.0.contains_key(&id) {
                        "is defined but not listed under `service.extensions`"
                    } else {
                        "is not defined under `extensions` (e.g. a `bearertokenauth` extension)"
                    };
                    return Err((
                        format!("{at}.{option}"),
                        Invalid::value("authenticator", id, defined),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What is valid but probably a mistake: receivers reachable from the network with
    /// neither TLS nor authentication. `validate` prints these; start-up logs them.
    pub fn warnings(&self) -> Vec<String> {
        self.receivers
            .0
            .iter()
            .flat_map(|(id, r)| {
                r.factory()
                    .exposure_warnings()
                    .into_iter()
                    .map(move |w| format!("receivers.{id}: {w}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
