//! What one connection may cost: the OpenTelemetry Collector's HTTP and gRPC server options
//! turned into the [`Limits`] the accept loop enforces, with safe defaults (a listener is
//! reachable by whoever can reach its port; none of these is unlimited by default).

use std::time::Duration;

use crate::component::validate::Invalid;
use serde::Deserialize;

/// Connections one listener holds open at most; more are accepted and closed at once
/// (counted as `refused_max_connections`), so the kernel's queue never hides them.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Time for a client to send its request headers (and for the TLS handshake).
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a client to send a whole request body (20 MiB at 1 MiB/s fits).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time from a request's headers to its answer (admission waits for pipeline room).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// An HTTP connection with no request for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent gRPC streams per connection (tonic's own default is unlimited).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// A gRPC connection with no call for this long is closed (GOAWAY).
pub const DEFAULT_MAX_CONNECTION_IDLE: Duration = Duration::from_secs(300);
/// gRPC keepalive pings after this long without activity (the Collector's default).
pub const DEFAULT_KEEPALIVE_TIME: Duration = Duration::from_secs(2 * 3600);
/// A keepalive ping not answered within this closes the connection.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Calls still running when a connection is closed for its age get this long to finish.
pub const DEFAULT_MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(10);

/// `keepalive:` of a gRPC receiver.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveConfig {
    pub server_parameters: ServerParameters,
}

/// `keepalive.server_parameters`, as grpc-go names them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerParameters {
    #[serde(with = "humantime_serde")]
    pub max_connection_idle: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub max_connection_age: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub max_connection_age_grace: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub time: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl Default for ServerParameters {
    fn default() -> Self {
        ServerParameters {
            max_connection_idle: Some(DEFAULT_MAX_CONNECTION_IDLE),
            max_connection_age: None,
            max_connection_age_grace: Some(DEFAULT_MAX_CONNECTION_AGE_GRACE),
            time: Some(DEFAULT_KEEPALIVE_TIME),
            timeout: Some(DEFAULT_KEEPALIVE_TIMEOUT),
        }
    }
}

/// What the accept loop enforces on one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    /// TLS handshake and HTTP/1 request headers.
    pub read_header_timeout: Duration,
    /// The request body, from its headers on.
    pub read_timeout: Option<Duration>,
    /// From the request's headers to the response's.
    pub write_timeout: Option<Duration>,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Option<Duration>,
    pub max_connection_age: Option<Duration>,
    pub max_connection_age_grace: Duration,
    pub keepalive_time: Option<Duration>,
    pub keepalive_timeout: Duration,
    pub max_concurrent_streams: u32,
    /// gRPC: HTTP/2 only (prior knowledge or ALPN `h2`).
    pub http2_only: bool,
}

impl Limits {
    /// An OTLP/HTTP listener: HTTP/1.1 and HTTP/2 (each stream one request).
    pub fn http(
        max_connections: usize,
        read_header_timeout: Duration,
        read_timeout: Option<Duration>,
        write_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Limits {
        Limits {
            max_connections,
            read_header_timeout,
            read_timeout,
            write_timeout,
            idle_timeout,
            max_connection_age: None,
            max_connection_age_grace: DEFAULT_MAX_CONNECTION_AGE_GRACE,
            keepalive_time: None,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            http2_only: false,
        }
    }

    /// A small HTTP listener with no options of its own (`/health`, the X-Ray sampling
    /// proxy): the defaults above, and at most `max_connections` at once.
    pub fn http_defaults(max_connections: usize) -> Limits {
        Limits::http(
            max_connections,
            DEFAULT_READ_HEADER_TIMEOUT,
            Some(DEFAULT_READ_TIMEOUT),
            Some(DEFAULT_WRITE_TIMEOUT),
            Some(DEFAULT_IDLE_TIMEOUT),
        )
    }

    /// An OTLP/gRPC listener.
    pub fn grpc(
        max_connections: usize,
        max_concurrent_streams: u32,
        keepalive: &ServerParameters,
    ) -> Limits {
        Limits {
            max_connections,
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: None,
            write_timeout: None,
            idle_timeout: keepalive.max_connection_idle,
            max_connection_age: keepalive.max_connection_age,
            max_connection_age_grace: keepalive
                .max_connection_age_grace
                .unwrap_or(DEFAULT_MAX_CONNECTION_AGE_GRACE),
            keepalive_time: keepalive.time,
            keepalive_timeout: keepalive.timeout.unwrap_or(DEFAULT_KEEPALIVE_TIMEOUT),
            max_concurrent_streams,
            http2_only: true,
        }
    }

    /// Zero is never meant: `max_connections: 0` would refuse everyone, a zero timeout
    /// would cut every connection. Errors name the option.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if self.max_concurrent_streams == 0 {
            return Err("max_concurrent_streams must be at least 1".into());
        }
        let zero = |d: Option<Duration>| d.is_some_and(|d| d.is_zero());
        for (name, d) in [
            ("read_header_timeout", Some(self.read_header_timeout)),
            ("read_timeout", self.read_timeout),
            ("write_timeout", self.write_timeout),
            (
                "idle_timeout / keepalive.server_parameters.max_connection_idle",
                self.idle_timeout,
            ),
            (
                "keepalive.server_parameters.max_connection_age",
                self.max_connection_age,
            ),
            ("keepalive.server_parameters.time", self.keepalive_time),
        ] {
            if zero(d) {
                return Err(Invalid::value(
                    name,
                    "0s",
                    "must be greater than 0 (leave it out for the default)",
                ));
            }
        }
        Ok(())
    }
}
