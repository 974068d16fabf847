//! Options of the `otlp` receiver, named as in the OpenTelemetry Collector.

use serde::Deserialize;

use crate::component::validate::present_or_default;

/// ```yaml
/// receivers:
///   otlp:
///     protocols:
///       grpc:
///         endpoint: 127.0.0.1:4317
///         max_recv_msg_size_mib: 4
///       http:
///         endpoint: 127.0.0.1:4318
///         max_request_body_size: 20971520
///     max_items_per_request: 100000
///     max_attributes_per_item: 1000
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiverConfig {
    pub protocols: Protocols,
    /// Spans, data points or log records one request may carry; more is refused whole
    /// (HTTP 413 / gRPC `RESOURCE_EXHAUSTED`) and counted `too_many_items`.
    pub max_items_per_request: usize,
    /// Attributes one item (or its resource, scope, span event or link) may have; more is
    /// refused whole (HTTP 400 / gRPC `INVALID_ARGUMENT`) and counted `too_many_attributes`.
    pub max_attributes_per_item: usize,
}

impl Default for OtlpReceiverConfig {
    fn default() -> Self {
        OtlpReceiverConfig {
            protocols: Protocols::default(),
            max_items_per_request: 100_000,
            max_attributes_per_item: 1_000,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// OTLP/gRPC; `grpc:` with no options enables it with defaults.
    #[serde(default, deserialize_with = "present_or_default")]
    pub grpc: Option<GrpcConfig>,
    /// OTLP/HTTP (protobuf and JSON); `http:` with no options enables it with defaults.
    #[serde(default, deserialize_with = "present_or_default")]
    pub http: Option<HttpConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Address to listen on. Loopback by default: exposing telemetry ingestion to the
    /// network is a decision to make explicitly (`0.0.0.0:4317`).
    pub endpoint: String,
    /// Largest message accepted, in MiB, measured after decompression.
    pub max_recv_msg_size_mib: u64,
}

impl GrpcConfig {
    /// `max_recv_msg_size_mib` in bytes: the limit the gRPC server enforces.
    pub fn max_recv_msg_bytes(&self) -> usize {
        usize::try_from(self.max_recv_msg_size_mib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024 * 1024)
    }
}

impl OtlpReceiverConfig {
    /// Checked at start-up; errors name the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.protocols.grpc.is_none() && self.protocols.http.is_none() {
            return Err("protocols: enable at least one protocol (`grpc:` and/or `http:`)".into());
        }
        if self.max_items_per_request == 0 {
            return Err("max_items_per_request must be at least 1".into());
        }
        if let Some(grpc) = &self.protocols.grpc {
            let mib = grpc.max_recv_msg_size_mib;
            if mib == 0 || mib > MAX_RECV_MSG_SIZE_MIB {
                return Err(format!(
                    "protocols.grpc.max_recv_msg_size_mib must be between 1 and \
                     {MAX_RECV_MSG_SIZE_MIB} (got {mib})"
                ));
            }
        }
        Ok(())
    }
}

/// Largest `max_recv_msg_size_mib`: 4 GiB, far above any sane message (the default is 4).
pub const MAX_RECV_MSG_SIZE_MIB: u64 = 4096;

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            endpoint: "127.0.0.1:4317".into(),
            max_recv_msg_size_mib: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub endpoint: String,
    /// Largest request body accepted, in bytes, measured after decompression.
    pub max_request_body_size: u64,
    /// Cross-origin requests from browsers; off unless origins are listed.
    pub cors: Option<CorsConfig>,
    pub traces_url_path: String,
    pub metrics_url_path: String,
    pub logs_url_path: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: "127.0.0.1:4318".into(),
            max_request_body_size: 20 * 1024 * 1024,
            cors: None,
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to send, e.g. `https://app.example.com`; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Extra request headers allowed beyond the CORS-safelisted ones.
    pub allowed_headers: Vec<String>,
    /// Seconds a browser may cache the preflight answer.
    pub max_age: Option<u64>,
}

impl crate::component::factory::Registered for OtlpReceiverConfig {
    const TYPE: &'static str = "otlp";
}
