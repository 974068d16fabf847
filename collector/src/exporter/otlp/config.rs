//! Options of the `otlp` exporter.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::component::auth::AuthConfig;
use crate::component::validate::Invalid;
use crate::component::{RetryConfig, SendingQueueConfig};
use crate::net::tls_client::ClientTlsConfig;

/// ```yaml
/// exporters:
///   otlp:
///     endpoint: gateway.internal:4317   # host:port or http://host:port
///     compression: gzip                 # gzip (default) | none
///     timeout: 5s                       # per export call, connecting included
///     tls:                              # see ClientTlsConfig; plain text without it
///       ca_file: /etc/aurastream/tls/ca.crt
///       cert_file: /etc/aurastream/tls/client.crt
///       key_file: /etc/aurastream/tls/client.key
///     auth: { authenticator: bearertokenauth }
///     headers: { x-tenant: checkout }
///     retry_on_failure: { enabled: true, initial_interval: 1s, max_interval: 30s }
///     sending_queue: { num_consumers: 4 }
/// ```
///
/// The names are the OpenTelemetry Collector's `otlp` exporter's, so its configs carry
/// over. One difference: without any `tls` option (or an `https://` endpoint) the
/// connection is plain text, as it was before this build had TLS, so existing sidecar
/// configs keep working; `tls.insecure: false` or any TLS option turns TLS on.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpExporterConfig {
    pub endpoint: String,
    pub compression: Compression,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub tls: ClientTlsConfig,
    /// Sent with every request (as gRPC metadata).
    pub headers: BTreeMap<String, String>,
    pub auth: Option<AuthConfig>,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
}

impl Default for OtlpExporterConfig {
    fn default() -> Self {
        OtlpExporterConfig {
            endpoint: String::new(),
            compression: Compression::Gzip,
            timeout: Duration::from_secs(5),
            tls: ClientTlsConfig::default(),
            headers: BTreeMap::new(),
            auth: None,
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

/// The transport options shared by the `otlp` exporter and each `loadbalancing` backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    pub compression: Compression,
    pub timeout: Duration,
    pub tls: ClientTlsConfig,
    pub headers: BTreeMap<String, String>,
    pub auth: Option<AuthConfig>,
}

impl Transport {
    /// `https`: whether the endpoint said so.
    pub fn validate(&self, https: bool) -> Result<(), Invalid> {
        if self.timeout.is_zero() {
            return Err("timeout must be greater than 0".into());
        }
        self.tls.validate(https)?;
        for (name, value) in &self.headers {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Invalid::value("headers", name, "is not a valid header name"))?;
            // The error names the header, never its value: headers carry credentials.
            http::HeaderValue::from_str(value)
                .map_err(|e| Invalid::cause(format!("headers.{name}"), e))?;
        }
        Ok(())
    }
}

impl OtlpExporterConfig {
    pub fn transport(&self) -> Transport {
        Transport {
            compression: self.compression,
            timeout: self.timeout,
            tls: self.tls.clone(),
            headers: self.headers.clone(),
            auth: self.auth.clone(),
        }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if self.endpoint.trim().is_empty() {
            return Err("endpoint is required (host:port of the receiving collector)".into());
        }
        endpoint_uri(&self.endpoint)?;
        self.transport().validate(is_https(&self.endpoint))
    }
}

/// Whether the endpoint asks for TLS by its scheme.
pub fn is_https(endpoint: &str) -> bool {
    endpoint.trim().starts_with("https://")
}

/// `host:port`, `http://host:port` or `https://host:port` as the URI tonic connects to:
/// always `http://`, since TLS, when on, is the connector's business.
pub fn endpoint_uri(endpoint: &str) -> Result<String, Invalid> {
    let endpoint = endpoint.trim();
    let address = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint);
    let uri = format!("http://{address}");
    if uri.parse::<http::Uri>().is_err() {
        return Err(Invalid::value(
            "endpoint",
            endpoint,
            "is not a valid address (host:port)",
        ));
    }
    Ok(uri)
}

impl crate::component::factory::Registered for OtlpExporterConfig {
    const TYPE: &'static str = "otlp";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_a_scheme_or_not() {
        assert_eq!(endpoint_uri("gw:4317").unwrap(), "http://gw:4317");
        assert_eq!(
            endpoint_uri("http://10.0.0.1:4317").unwrap(),
            "http://10.0.0.1:4317"
        );
        assert_eq!(endpoint_uri("https://gw:4317").unwrap(), "http://gw:4317");
        assert!(is_https("https://gw:4317"));
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
        let contradiction = OtlpExporterConfig {
            endpoint: "https://gw:4317".into(),
            tls: ClientTlsConfig {
                insecure: Some(true),
                ..Default::default()
            },
            ..OtlpExporterConfig::default()
        };
        assert!(
            contradiction
                .validate()
                .unwrap_err()
                .to_string()
                .contains("tls.insecure")
        );
        assert!(!c.tls.enabled(false), "insecure: true is plain text");
        assert!(serde_yaml_ng::from_str::<OtlpExporterConfig>("compression: zstd").is_err());
    }
}
