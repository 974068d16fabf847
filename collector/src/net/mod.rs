//! Network code shared by every listener and every outgoing connection: TLS (server and
//! client, with the OpenTelemetry Collector's configtls names), the one accept loop that
//! serves both OTLP/HTTP and OTLP/gRPC (connection limits, timeouts, keepalive, accept
//! backoff, shutdown), and authentication of incoming requests at the door.
//!
//! A layer below the components: receivers and exporters configure it, nothing here knows
//! about OTLP.

pub(crate) mod authenticate;
pub(crate) mod limits;
pub(crate) mod pem;
pub(crate) mod server;
#[cfg(test)]
mod tests;
pub mod tls_client;
pub(crate) mod tls_error;
pub(crate) mod tls_server;

use std::sync::Arc;

use tls_error::TlsError;

/// Whether a listen address (`host:port`) is reachable from this host only. A name other
/// than `localhost` counts as reachable: it may resolve to any interface.
pub fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .rsplit_once(':')
        .map_or(endpoint, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error with its causes (`client error (Connect): tcp connect error: Connection
/// refused`), so the reason is not hidden behind a client's generic message.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// The one TLS provider of the build: aws-lc-rs (the AWS SDK's, with post-quantum key
/// exchange), or ring in the lean Lambda layer (the `ring` feature without `aws-lc`).
/// Every TLS configuration names it instead of relying on rustls's process default.
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "aws-lc")]
    return rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc"))]
    return rustls::crypto::ring::default_provider();
}

#[cfg(not(any(feature = "aws-lc", feature = "ring")))]
compile_error!("choose rustls's crypto provider: the `aws-lc` feature (default) or `ring`");

/// Protocol versions from the Collector's `min_version` / `max_version` ("1.2", "1.3").
/// rustls has no TLS 1.0 or 1.1, so asking for them is an error rather than a silent upgrade.
pub fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    fn rank(v: &str, option: &'static str) -> Result<u8, TlsError> {
        match v.trim() {
            "1.2" => Ok(2),
            "1.3" => Ok(3),
            version @ ("1.0" | "1.1") => Err(TlsError::InsecureVersion {
                option,
                version: version.into(),
            }),
            other => Err(TlsError::UnknownVersion {
                option,
                version: other.into(),
            }),
        }
    }
    let lo = min
        .map(|v| rank(v, "min_version"))
        .transpose()?
        .unwrap_or(2);
    let hi = max
        .map(|v| rank(v, "max_version"))
        .transpose()?
        .unwrap_or(3);
    if lo > hi {
        return Err(TlsError::VersionsInverted);
    }
    let mut versions = Vec::new();
    if hi >= 3 {
        versions.push(&rustls::version::TLS13);
    }
    if lo <= 2 {
        versions.push(&rustls::version::TLS12);
    }
    Ok(versions)
}

/// The provider with only the listed cipher suites (Go's names, e.g.
/// `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`; TLS 1.3 suites as `TLS_AES_128_GCM_SHA256`).
/// As in Go, TLS 1.3 suites stay enabled unless some are listed.
pub fn provider_with_suites(
    suites: &[String],
) -> Result<Arc<rustls::crypto::CryptoProvider>, TlsError> {
    let mut provider = crypto_provider();
    if suites.is_empty() {
        return Ok(Arc::new(provider));
    }
    let name_of =
        |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite()).replace("TLS13_", "TLS_");
    for wanted in suites {
        if !provider.cipher_suites.iter().any(|s| &name_of(s) == wanted) {
            return Err(TlsError::UnknownCipherSuite {
                wanted: wanted.clone(),
                supported: provider.cipher_suites.iter().map(name_of).collect(),
            });
        }
    }
    let lists_tls13 = provider
        .cipher_suites
        .iter()
        .any(|s| s.tls13().is_some() && suites.contains(&name_of(s)));
    provider
        .cipher_suites
        .retain(|s| suites.contains(&name_of(s)) || (s.tls13().is_some() && !lists_tls13));
    Ok(Arc::new(provider))
}
