//! Options of the `otlp` exporter.

use std::time::Duration;

use serde::Deserialize;

use crate::component::{RetryConfig, SendingQueueConfig};

/// ```yaml
/// exporters:
///   otlp:
///     endpoint: gateway.internal:4317   # host:port or http://host:port
///     compression: gzip                 # gzip (default) | none
///     timeout: 5s                       # per export call, connecting included
///     tls:
///       insecure: true                  # the only mode this build has, see below
///     retry_on_failure: { enabled: true, initial_interval: 1s, max_interval: 30s }
///     sending_queue: { num_consumers: 4 }
/// ```
///
/// The names are the OpenTelemetry Collector's `otlp` exporter's, so its configs carry
/// over. This build speaks plain-text gRPC only (collector-to-collector traffic inside a
/// VPC or a pod); `https://` endpoints and `tls.insecure: false` are refused at start-up
/// rather than silently sent in clear text.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpExporterConfig {
    pub endpoint: String,
    pub compression: Compression,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub tls: TlsConfig,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
}

impl Default for OtlpExporterConfig {
    fn default() -> Self {
        OtlpExporterConfig {
            endpoint: String::new(),
            compression: Compression::Gzip,
            timeout: Duration::from_secs(5),
            tls: TlsConfig::default(),
            retry_on_failure: RetryConfig::default(),
            sending_queue: SendingQueueConfig::default(),
        }
    }
}

/// Request compression. gzip is the Collector's default: span batches shrink ~5-10x, which
/// matters more than the CPU on cross-AZ links that are billed per byte.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// `tls`: accepted so that Collector configs saying `insecure: true` validate unchanged.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub insecure: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig { insecure: true }
    }
}

/// The transport options shared by the `otlp` exporter and each `loadbalancing` backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    pub compression: Compression,
    pub timeout: Duration,
}

impl Transport {
    pub fn validate(&self, tls: &TlsConfig) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("timeout must be greater than 0".into());
        }
        if !tls.insecure {
            return Err(
                "tls.insecure: false is not supported: this build speaks plain-text gRPC only; \
                 terminate TLS in front of the receiving collector or set tls.insecure: true"
                    .into(),
            );
        }
        Ok(())
    }
}

impl OtlpExporterConfig {
    pub fn transport(&self) -> Transport {
        Transport {
            compression: self.compression,
            timeout: self.timeout,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.endpoint.trim().is_empty() {
            return Err("endpoint is required (host:port of the receiving collector)".into());
        }
        endpoint_uri(&self.endpoint)?;
        self.transport().validate(&self.tls)
    }
}

/// `host:port` or `http://host:port` as the URI tonic connects to.
pub fn endpoint_uri(endpoint: &str) -> Result<String, String> {
    let endpoint = endpoint.trim();
    if endpoint.starts_with("https://") {
        return Err(format!(
            "endpoint `{endpoint}`: https is not supported by this build (plain-text gRPC \
             only); use http://"
        ));
    }
    let uri = if endpoint.starts_with("http://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    uri.parse::<http::Uri>()
        .map_err(|e| format!("endpoint `{endpoint}` is not a valid address: {e}"))?;
    Ok(uri)
}

impl crate::component::factory::Registered for OtlpExporterConfig {
    const TYPE: &'static str = "otlp";
}

impl crate::component::factory::ExporterFactory for OtlpExporterConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &crate::model::Signal::ALL
    }

    fn validate(&self) -> Result<(), String> {
        OtlpExporterConfig::validate(self)
    }

    fn delivery(
        &self,
    ) -> (
        &crate::component::RetryConfig,
        &crate::component::SendingQueueConfig,
    ) {
        (&self.retry_on_failure, &self.sending_queue)
    }

    fn build(
        &self,
        _ctx: &crate::component::factory::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::component::Exporter>, crate::component::factory::BuildError>
    {
        Ok(std::sync::Arc::new(super::OtlpExporter::new(self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_a_scheme_or_not_but_never_https() {
        assert_eq!(endpoint_uri("gw:4317").unwrap(), "http://gw:4317");
        assert_eq!(
            endpoint_uri("http://10.0.0.1:4317").unwrap(),
            "http://10.0.0.1:4317"
        );
        assert!(
            endpoint_uri("https://gw:4317")
                .unwrap_err()
                .contains("https")
        );
        assert!(endpoint_uri("gw with space:1").is_err());
    }

    #[test]
    fn collector_style_config_parses_and_validates() {
        let c: OtlpExporterConfig = serde_yaml_ng::from_str(
            "endpoint: gw:4317\ncompression: none\ntimeout: 2s\ntls: { insecure: true }\n\
             retry_on_failure: { enabled: false }\nsending_queue: { num_consumers: 2 }\n",
        )
        .unwrap();
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.timeout, Duration::from_secs(2));
        c.validate().unwrap();
        assert!(
            OtlpExporterConfig::default().validate().is_err(),
            "endpoint required"
        );
        let secure = OtlpExporterConfig {
            endpoint: "gw:4317".into(),
            tls: TlsConfig { insecure: false },
            ..OtlpExporterConfig::default()
        };
        assert!(secure.validate().unwrap_err().contains("tls.insecure"));
        assert!(serde_yaml_ng::from_str::<OtlpExporterConfig>("compression: zstd").is_err());
    }
}
