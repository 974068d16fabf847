//! Options of the `otlp` receiver, named as in the OpenTelemetry Collector.

use serde::Deserialize;

use std::time::Duration;

use crate::component::auth::AuthConfig;
use crate::component::validate::Invalid;
use crate::component::validate::present_or_default;
use crate::net::limits::{self, KeepaliveConfig, Limits};
use crate::net::tls_server::ServerTlsConfig;

/// ```yaml
/// receivers:
///   otlp:
///     protocols:
///       grpc:
///         endpoint: 127.0.0.1:4317
///         max_recv_msg_size_mib: 4
///         tls: { cert_file: server.crt, key_file: server.key, client_ca_file: ca.crt }
///         auth: { authenticator: bearertokenauth }
///         max_concurrent_streams: 100
///         max_connections: 4096
///         keepalive:
///           server_parameters: { max_connection_idle: 5m, max_connection_age: 1h }
///       http:
///         endpoint: 127.0.0.1:4318
///         max_request_body_size: 20971520
///         read_header_timeout: 10s
///         read_timeout: 30s
///         write_timeout: 30s
///         idle_timeout: 60s
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
    /// Which callers may write log records into sensitive categories; off when absent.
    pub authorization: Option<super::authorization::AuthorizationConfig>,
}

impl Default for OtlpReceiverConfig {
    fn default() -> Self {
        OtlpReceiverConfig {
            protocols: Protocols::default(),
            max_items_per_request: 100_000,
            max_attributes_per_item: 1_000,
            authorization: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// OTLP/gRPC; `grpc:` with no options enables it with defaults. Boxed, as is `http`:
    /// with their TLS and connection options they would make every receiver's config as
    /// large as this one.
    #[serde(default, deserialize_with = "present_or_default")]
    pub grpc: Option<Box<GrpcConfig>>,
    /// OTLP/HTTP (protobuf and JSON); `http:` with no options enables it with defaults.
    #[serde(default, deserialize_with = "present_or_default")]
    pub http: Option<Box<HttpConfig>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Address to listen on. Loopback by default: exposing telemetry ingestion to the
    /// network is a decision to make explicitly (`0.0.0.0:4317`).
    pub endpoint: String,
    /// Largest message accepted, in MiB, measured after decompression.
    pub max_recv_msg_size_mib: u64,
    pub tls: Option<ServerTlsConfig>,
    pub auth: Option<AuthConfig>,
    /// Concurrent calls per connection.
    pub max_concurrent_streams: u32,
    /// Connections held open at once; more are closed on accept.
    pub max_connections: usize,
    pub keepalive: KeepaliveConfig,
}

impl GrpcConfig {
    pub fn limits(&self) -> Limits {
        Limits::grpc(
            self.max_connections,
            self.max_concurrent_streams,
            &self.keepalive.server_parameters,
        )
    }

    /// `max_recv_msg_size_mib` in bytes: the limit the gRPC server enforces.
    pub fn max_recv_msg_bytes(&self) -> usize {
        usize::try_from(self.max_recv_msg_size_mib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024 * 1024)
    }
}

impl OtlpReceiverConfig {
    /// Checked at start-up; errors name the option.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.protocols.grpc.is_none() && self.protocols.http.is_none() {
            return Err("protocols: enable at least one protocol (`grpc:` and/or `http:`)".into());
        }
        if self.max_items_per_request == 0 {
            return Err("max_items_per_request must be at least 1".into());
        }
        if let Some(a) = &self.authorization {
            a.validate()
                .map_err(|e| Invalid::within("authorization", e))?;
        }
        if let Some(grpc) = &self.protocols.grpc {
            let mib = grpc.max_recv_msg_size_mib;
            if mib == 0 || mib > MAX_RECV_MSG_SIZE_MIB {
                return Err(Invalid::out_of_range(
                    "protocols.grpc.max_recv_msg_size_mib",
                    1.0,
                    MAX_RECV_MSG_SIZE_MIB as f64,
                    mib as f64,
                ));
            }
            grpc.limits()
                .validate()
                .map_err(|e| Invalid::within("protocols.grpc", e))?;
            if let Some(tls) = &grpc.tls {
                tls.validate()
                    .map_err(|e| Invalid::within("protocols.grpc", e))?;
            }
        }
        if let Some(http) = &self.protocols.http {
            http.limits()
                .validate()
                .map_err(|e| Invalid::within("protocols.http", e))?;
            if let Some(tls) = &http.tls {
                tls.validate()
                    .map_err(|e| Invalid::within("protocols.http", e))?;
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
            tls: None,
            auth: None,
            max_concurrent_streams: limits::DEFAULT_MAX_CONCURRENT_STREAMS,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            keepalive: KeepaliveConfig::default(),
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
    pub tls: Option<ServerTlsConfig>,
    pub auth: Option<AuthConfig>,
    /// Time for a client to send its request headers (and finish the TLS handshake).
    #[serde(with = "humantime_serde")]
    pub read_header_timeout: Duration,
    /// Time for a client to send a whole request body.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Time from a request's headers to its response.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// A connection with no request for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections held open at once; more are closed on accept.
    pub max_connections: usize,
}

impl HttpConfig {
    pub fn limits(&self) -> Limits {
        Limits::http(
            self.max_connections,
            self.read_header_timeout,
            Some(self.read_timeout),
            Some(self.write_timeout),
            Some(self.idle_timeout),
        )
    }
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
            tls: None,
            auth: None,
            read_header_timeout: limits::DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: limits::DEFAULT_READ_TIMEOUT,
            write_timeout: limits::DEFAULT_WRITE_TIMEOUT,
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
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
