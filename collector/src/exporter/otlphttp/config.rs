//! Options of the `otlphttp` exporter.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::log_groups::LogGroupsConfig;
use crate::component::auth::AuthConfig;
use crate::component::validate::Invalid;
use crate::component::{RetryConfig, SendingQueueConfig};
use crate::model::Signal;
use crate::net::tls_client::ClientTlsConfig;

/// ```yaml
/// exporters:
///   otlphttp:
///     endpoint: https://collector.internal:4318   # each signal at endpoint + /v1/<signal>
///     traces_endpoint: https://xray.us-east-1.amazonaws.com/v1/traces   # used as is
///     logs_endpoint: https://logs.us-east-1.amazonaws.com/v1/logs
///     metrics_endpoint: https://monitoring.us-east-1.amazonaws.com/v1/metrics
///     encoding: proto                  # proto (default) | json
///     compression: gzip                # gzip (default) | none
///     headers: { x-aws-log-group: /aws/app, x-aws-log-stream: default }
///     timeout: 30s                     # per request, connecting included
///     tls:                             # for https:// endpoints; else the system trust store
///       ca_file: /etc/aurastream/tls/ca.crt
///       cert_file: /etc/aurastream/tls/client.crt   # mTLS
///       key_file: /etc/aurastream/tls/client.key
///     auth: { authenticator: sigv4auth }
///     xray_limits: true                # default: on when the traces endpoint is X-Ray's
///     log_groups:                      # logs: group/stream per record, created on first use
///       log_group_name: /aws/aurastream/application   # (as awscloudwatchlogs; see log_groups.rs)
///     retry_on_failure: { enabled: true, initial_interval: 1s, max_interval: 30s }
///     sending_queue: { num_consumers: 4, storage: /var/lib/aurastream/queue }
/// ```
///
/// The names are the OpenTelemetry Collector's `otlphttp` exporter's, so ADOT
/// configurations that send to AWS's OTLP endpoints load unchanged. The scheme of each
/// endpoint decides whether it is encrypted (as the Collector's `otlphttp`); `tls` options
/// therefore need `https://` endpoints, and without them an `https://` endpoint is verified
/// against the system's trust store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpHttpExporterConfig {
    pub endpoint: Option<String>,
    pub traces_endpoint: Option<String>,
    pub logs_endpoint: Option<String>,
    pub metrics_endpoint: Option<String>,
    pub encoding: Encoding,
    pub compression: Compression,
    pub headers: BTreeMap<String, String>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub auth: Option<AuthConfig>,
    pub tls: ClientTlsConfig,
    /// X-Ray's OTLP limits applied before sending (≤ 10,000 spans and 5 MB per request,
    /// spans trimmed to 200 KB, the timestamp window). `None`: on when the traces endpoint
    /// is an X-Ray host.
    pub xray_limits: Option<bool>,
    /// Logs to CloudWatch Logs' OTLP endpoint: the group and stream chosen per record and
    /// created on first use (see [`super::log_groups`]). Without it, the `headers` name them.
    pub log_groups: Option<LogGroupsConfig>,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
}

impl Default for OtlpHttpExporterConfig {
    fn default() -> Self {
        OtlpHttpExporterConfig {
            endpoint: None,
            traces_endpoint: None,
            logs_endpoint: None,
            metrics_endpoint: None,
            encoding: Encoding::Proto,
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            auth: None,
            tls: ClientTlsConfig::default(),
            xray_limits: None,
            log_groups: None,
            retry_on_failure: RetryConfig::default(),
            sending_queue: SendingQueueConfig::default(),
        }
    }
}

/// The request body's encoding (OTLP/HTTP's two).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Proto,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Request compression; gzip is the Collector's default.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

impl OtlpHttpExporterConfig {
    /// The URL `signal` is sent to: its own `*_endpoint`, else `endpoint` + `/v1/<signal>`.
    pub fn url(&self, signal: Signal) -> Option<String> {
        let own = match signal {
            Signal::Traces => &self.traces_endpoint,
            Signal::Logs => &self.logs_endpoint,
            Signal::Metrics => &self.metrics_endpoint,
        };
        own.clone().or_else(|| {
            self.endpoint
                .as_ref()
                .map(|base| format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str()))
        })
    }

    /// Whether X-Ray's limits apply to traces.
    pub fn xray_limits(&self) -> bool {
        self.xray_limits.unwrap_or_else(|| {
            self.url(Signal::Traces)
                .and_then(|u| u.parse::<http::Uri>().ok())
                .and_then(|u| u.host().map(|h| h.starts_with("xray.")))
                .unwrap_or(false)
        })
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if Signal::ALL.iter().all(|s| self.url(*s).is_none()) {
            return Err(
                "endpoint is required (or traces_endpoint, logs_endpoint, metrics_endpoint)".into(),
            );
        }
        for (name, url) in [
            ("endpoint", &self.endpoint),
            ("traces_endpoint", &self.traces_endpoint),
            ("logs_endpoint", &self.logs_endpoint),
            ("metrics_endpoint", &self.metrics_endpoint),
        ] {
            let Some(url) = url else { continue };
            let uri: http::Uri = url.parse().map_err(|e| Invalid::cause(name, e))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(Invalid::value(
                    name,
                    url,
                    "must be an http:// or https:// URL with a host",
                ));
            }
            let https = uri.scheme_str() == Some("https");
            self.tls.validate(https)?;
            if !https && self.tls.has_options() {
                return Err(Invalid::value(
                    name,
                    url,
                    "is http://; tls options apply to https:// endpoints",
                ));
            }
        }
        for (name, value) in &self.headers {
            http::HeaderName::try_from(name.as_str())
                .map_err(|_| Invalid::value("headers", name, "is not a valid header name"))?;
            // The error names the header, never its value: headers carry credentials.
            http::HeaderValue::try_from(value.as_str())
                .map_err(|e| Invalid::cause(format!("headers.{name}"), e))?;
        }
        if let Some(groups) = &self.log_groups {
            groups
                .validate()
                .map_err(|e| Invalid::within("log_groups", e))?;
            if self.headers.keys().any(|h| h.starts_with("x-aws-log-")) {
                return Err(
                    "log_groups chooses x-aws-log-group and x-aws-log-stream per \
                            record; remove them from headers"
                        .into(),
                );
            }
        }
        if self.timeout.is_zero() {
            return Err("timeout must be greater than 0".into());
        }
        crate::component::validate::check_duration("timeout", self.timeout)
    }
}

impl crate::component::factory::Registered for OtlpHttpExporterConfig {
    const TYPE: &'static str = "otlphttp";
}
