//! Options of the `health_check` extension, which serves `/health` and `/metrics`.

use serde::Deserialize;

use crate::net::tls_server::ServerTlsConfig;

/// ```yaml
/// extensions:
///   health_check:
///     endpoint: 127.0.0.1:13133
///     path: /health
///     tls:                      # optional: HTTPS, mTLS with client_ca_file
///       cert_file: /etc/aurastream/tls/server.crt
///       key_file: /etc/aurastream/tls/server.key
/// service:
///   extensions: [health_check]
/// ```
///
/// The same listener serves the Prometheus self-metrics at `/metrics`: component names,
/// queue depths and error counts, worth TLS when the port is reachable beyond the host.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub endpoint: String,
    pub path: String,
    pub tls: Option<ServerTlsConfig>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: "127.0.0.1:13133".into(),
            path: "/health".into(),
            tls: None,
        }
    }
}

impl crate::component::factory::Registered for HealthCheckConfig {
    const TYPE: &'static str = "health_check";
}
