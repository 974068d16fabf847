//! Options of the `loadbalancing` exporter.

use std::time::Duration;

use serde::Deserialize;

use crate::component::validate::Invalid;
use crate::component::{RetryConfig, SendingQueueConfig};
use std::collections::BTreeMap;

use crate::component::auth::AuthConfig;
use crate::exporter::otlp::config::{Compression, Transport};
use crate::net::tls_client::ClientTlsConfig;

/// ```yaml
/// exporters:
///   loadbalancing:
///     routing_key: traceID          # the only key: tail sampling needs whole traces
///     protocol:
///       otlp:                       # how each backend is reached
///         compression: gzip
///         timeout: 5s
///     resolver:                     # exactly one of:
///       static:
///         hostnames: [gw-1:4317, gw-2:4317]
///       dns:
///         hostname: gateways.internal   # every A/AAAA record is a backend
///         port: 4317
///         interval: 5s                  # re-resolved this often
///         timeout: 1s
///     retry_on_failure: { enabled: true }   # retries re-route what a backend refused
///     sending_queue: { num_consumers: 4 }
/// ```
///
/// The shape is the OpenTelemetry Collector contrib `loadbalancingexporter`'s, so a gateway
/// tier configured for it carries over. Two differences, both refused at start-up rather
/// than silently ignored: `protocol.otlp` takes no `endpoint` (the resolver supplies one per
/// backend) and no `retry_on_failure`/`sending_queue` of its own (retries happen once, at
/// this exporter, so a retried span is routed again against the current backends rather
/// than pinned to one that went away).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LoadBalancingExporterConfig {
    pub routing_key: RoutingKey,
    pub protocol: ProtocolConfig,
    pub resolver: ResolverConfig,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: SendingQueueConfig,
}

/// What decides the backend of a span. Only the trace id: it is what keeps a trace's spans
/// together for tail sampling, and the other keys of the contrib exporter (`service`,
/// `metric`, ...) serve other signals.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum RoutingKey {
    #[default]
    #[serde(rename = "traceID")]
    TraceId,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolConfig {
    pub otlp: OtlpProtocolConfig,
}

/// The `otlp` exporter's transport options, applied to every backend.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpProtocolConfig {
    pub compression: Compression,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub tls: ClientTlsConfig,
    pub headers: BTreeMap<String, String>,
    pub auth: Option<AuthConfig>,
}

impl Default for OtlpProtocolConfig {
    fn default() -> Self {
        OtlpProtocolConfig {
            compression: Compression::Gzip,
            timeout: Duration::from_secs(5),
            tls: ClientTlsConfig::default(),
            headers: BTreeMap::new(),
            auth: None,
        }
    }
}

impl OtlpProtocolConfig {
    pub fn transport(&self) -> Transport {
        Transport {
            compression: self.compression,
            timeout: self.timeout,
            tls: self.tls.clone(),
            headers: self.headers.clone(),
            auth: self.auth.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    #[serde(default, rename = "static")]
    pub static_: Option<StaticResolverConfig>,
    #[serde(default)]
    pub dns: Option<DnsResolverConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct StaticResolverConfig {
    /// `host:port` (or `host`, meaning port 4317) of each backend.
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsResolverConfig {
    pub hostname: String,
    pub port: u16,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DnsResolverConfig {
    fn default() -> Self {
        DnsResolverConfig {
            hostname: String::new(),
            port: 4317,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        }
    }
}

/// The default OTLP/gRPC port, for static hostnames written without one.
pub const DEFAULT_PORT: u16 = 4317;

impl LoadBalancingExporterConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        let p = &self.protocol.otlp;
        p.transport()
            .validate(false)
            .map_err(|e| Invalid::within("protocol.otlp", e))?;
        match (&self.resolver.static_, &self.resolver.dns) {
            (Some(_), Some(_)) => Err("resolver: set either `static` or `dns`, not both".into()),
            (None, None) => Err("resolver: set `static: { hostnames: [...] }` or \
                                 `dns: { hostname: ... }`"
                .into()),
            (Some(s), None) => {
                if s.hostnames.is_empty() {
                    return Err("resolver.static.hostnames: list at least one backend".into());
                }
                for h in &s.hostnames {
                    static_endpoint(h)?;
                }
                Ok(())
            }
            (None, Some(d)) => {
                if d.hostname.trim().is_empty() {
                    return Err("resolver.dns.hostname is required".into());
                }
                if d.interval.is_zero() || d.timeout.is_zero() {
                    return Err("resolver.dns: interval and timeout must be greater than 0".into());
                }
                Ok(())
            }
        }
    }
}

impl crate::component::factory::Registered for LoadBalancingExporterConfig {
    const TYPE: &'static str = "loadbalancing";
}

/// `host:port`, `host` or `http://host:port` as the endpoint URI of a backend.
pub fn static_endpoint(hostname: &str) -> Result<String, Invalid> {
    let not_host_port =
        || Invalid::value("resolver.static.hostnames", hostname, "is not host:port");
    let trimmed = hostname.trim();
    let bare = trimmed.strip_prefix("http://").unwrap_or(trimmed);
    let authority: http::uri::Authority = bare.parse().map_err(|_| not_host_port())?;
    if bare.contains('/') || authority.as_str() != bare {
        return Err(not_host_port());
    }
    Ok(match authority.port_u16() {
        Some(_) => format!("http://{authority}"),
        None => format!("http://{authority}:{DEFAULT_PORT}"),
    })
}
