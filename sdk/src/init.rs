//! One call to instrument a service: resource, OTLP exporters, X-Ray ids and propagation,
//! the `tracing` bridge, and a guard that flushes on the way out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{
    LogExporter, MetricExporter, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::error::SdkError;
use crate::http_client::RuntimeHttpClient;
use crate::logs::DefaultCategory;
use crate::resource::{self, ResourceOptions};
use crate::telemetry::Telemetry;
use crate::tls::{ClientTls, TlsOptions};

/// The instrumentation scope name on everything the SDK emits.
pub const SCOPE: &str = "aurastream-sdk";

/// Crates on the export path. Their own `tracing` output must not be exported, or every
/// export would produce spans and logs that need exporting.
const EXPORT_PATH_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "hyper_rustls",
    "rustls",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry-otlp",
    "ureq",
];

/// The per-signal endpoint variables, each falling back to `OTEL_EXPORTER_OTLP_ENDPOINT`.
const SIGNAL_ENDPOINT_VARS: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
];

/// OTLP transport to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC, port 4317 (the default): one long-lived HTTP/2 connection.
    Grpc,
    /// OTLP/HTTP with protobuf bodies, port 4318: for proxies that do not pass gRPC.
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies, port 4318: readable on the wire, about twice the bytes
    /// and CPU of protobuf; for proxies and tools that only handle JSON.
    HttpJson,
}

impl Protocol {
    /// Reads `OTEL_EXPORTER_OTLP_PROTOCOL`; unset means gRPC.
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Protocol, SdkError> {
        match env("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref().map(str::trim) {
            None | Some("grpc") => Ok(Protocol::Grpc),
            Some("http/protobuf") => Ok(Protocol::HttpProtobuf),
            Some("http/json") => Ok(Protocol::HttpJson),
            Some(other) => Err(SdkError::UnsupportedProtocol(other.to_owned())),
        }
    }
}

/// A set, non-blank environment variable.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Starts configuring telemetry for `service_name` (overridden by `OTEL_SERVICE_NAME`).
///
/// ```no_run
/// # async fn run() -> Result<(), aurastream_sdk::SdkError> {
/// let guard = aurastream_sdk::init("sentiment-api")
///     .service_version(env!("CARGO_PKG_VERSION"))
///     .install()?;
/// let telemetry = guard.telemetry().clone();
/// // ... serve, using telemetry.http_layer() and telemetry.metrics() ...
/// guard.shutdown().await?;
/// # Ok(()) }
/// ```
pub fn init(service_name: impl Into<String>) -> TelemetryBuilder {
    TelemetryBuilder {
        service_name: Some(service_name.into()),
        service_version: None,
        resource_attributes: Vec::new(),
        endpoint: None,
        protocol: None,
        ca_file: None,
        client_certificate: None,
        bearer_token: None,
        customer_id_dimension: true,
        install_tracing_subscriber: true,
        console_output: true,
        metric_export_interval: None,
        metrics_temporality: Temporality::Delta,
        detect_ec2: false,
    }
}

/// Options for [`init`]. Everything has a default that works against a local collector.
#[derive(Debug, Clone)]
pub struct TelemetryBuilder {
    service_name: Option<String>,
    service_version: Option<String>,
    resource_attributes: Vec<KeyValue>,
    endpoint: Option<String>,
    protocol: Option<Protocol>,
    ca_file: Option<PathBuf>,
    client_certificate: Option<(PathBuf, PathBuf)>,
    bearer_token: Option<BearerToken>,
    customer_id_dimension: bool,
    install_tracing_subscriber: bool,
    console_output: bool,
    metric_export_interval: Option<Duration>,
    metrics_temporality: Temporality,
    detect_ec2: bool,
}

impl TelemetryBuilder {
    /// `service.version` on the resource.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// An extra resource attribute (`OTEL_RESOURCE_ATTRIBUTES` still wins).
    pub fn resource_attribute(mut self, attribute: KeyValue) -> Self {
        self.resource_attributes.push(attribute);
        self
    }

    /// The collector's base URL, e.g. `http://127.0.0.1:4317` (gRPC) or
    /// `http://127.0.0.1:4318` (HTTP; `/v1/traces` etc. are appended). Without it the
    /// standard `OTEL_EXPORTER_OTLP_[TRACES_|METRICS_|LOGS_]ENDPOINT` variables apply, then
    /// `localhost:4317`/`4318`.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The transport; without it `OTEL_EXPORTER_OTLP_PROTOCOL` applies (`grpc` default).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Trust the certificate authorities in this PEM file, instead of the system's, when
    /// an endpoint is `https://`. Without it `OTEL_EXPORTER_OTLP_CERTIFICATE` applies, then
    /// the system trust store. The file is read at `install()`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Present this certificate (PEM, chain allowed) and private key (PEM) when the
    /// collector asks for one (mTLS). Without it `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`
    /// and `OTEL_EXPORTER_OTLP_CLIENT_KEY` apply (both or neither).
    pub fn client_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_certificate = Some((certificate.into(), key.into()));
        self
    }

    /// Send `Authorization: Bearer <token>` with every export (the collector's
    /// `bearertokenauth`). Use an `https://` endpoint: over plain text anyone on the path
    /// reads the token. A header of the same name in `OTEL_EXPORTER_OTLP_HEADERS` wins.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(BearerToken(token.into()));
        self
    }

    /// Whether `CustomerId` is a metric dimension (default `true`, as in the guide). Each
    /// customer multiplies the number of billed CloudWatch metrics: see [`crate::metrics`].
    pub fn customer_id_dimension(mut self, enabled: bool) -> Self {
        self.customer_id_dimension = enabled;
        self
    }

    /// Whether `install` sets the global `tracing` subscriber (default `true`). Turn it off
    /// when the application builds its own and adds [`TelemetryGuard::tracing_layers`].
    pub fn install_tracing_subscriber(mut self, install: bool) -> Self {
        self.install_tracing_subscriber = install;
        self
    }

    /// Whether `tracing` events are also printed to stderr (default `true`).
    pub fn console_output(mut self, enabled: bool) -> Self {
        self.console_output = enabled;
        self
    }

    /// How often metrics are exported; default `OTEL_METRIC_EXPORT_INTERVAL` or 60 s
    /// (CloudWatch's standard resolution, so shorter only costs more).
    pub fn metric_export_interval(mut self, interval: Duration) -> Self {
        self.metric_export_interval = Some(interval);
        self
    }

    /// Aggregation temporality for sums and histograms. Default delta: each EMF document
    /// then holds what happened in its period, which is what CloudWatch statistics sum up.
    pub fn metrics_temporality(mut self, temporality: Temporality) -> Self {
        self.metrics_temporality = temporality;
        self
    }

    /// Query EC2 instance metadata (IMDSv2) for host and cloud attributes. Off by default:
    /// off EC2 it stalls start-up by the request timeout.
    pub fn detect_ec2(mut self, enabled: bool) -> Self {
        self.detect_ec2 = enabled;
        self
    }

    /// Builds the providers, installs the X-Ray + W3C propagator and the global tracer and
    /// meter providers, and (unless turned off) the global `tracing` subscriber.
    ///
    /// Must run inside a tokio runtime: both transports send from it (tonic's connection
    /// task, the HTTP client's requests), and it must outlive the guard.
    pub fn install(self) -> Result<TelemetryGuard, SdkError> {
        let transport = self.transport(&process_env)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SdkError::NoTokioRuntime);
        }
        let resource = resource::build(&ResourceOptions {
            service_name: self.service_name.as_deref(),
            service_version: self.service_version.as_deref(),
            attributes: &self.resource_attributes,
            detect_ec2: self.detect_ec2,
        });
        let exporters = Exporters::build(&transport, self.metrics_temporality)?;

        let tracer_provider = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_id_generator(XrayIdGenerator::default())
            .with_batch_exporter(exporters.spans)
            .build();
        let mut reader = PeriodicReader::builder(exporters.metrics);
        if let Some(interval) = self.metric_export_interval {
            reader = reader.with_interval(interval);
        }
        let meter_provider = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(reader.build())
            .build();
        let logger_provider = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(DefaultCategory)
            .with_batch_exporter(exporters.logs)
            .build();

        opentelemetry::global::set_text_map_propagator(crate::propagation::composite_propagator());
        opentelemetry::global::set_tracer_provider(tracer_provider.clone());
        opentelemetry::global::set_meter_provider(meter_provider.clone());

        let telemetry = Telemetry::new(
            &meter_provider.meter(SCOPE),
            logger_provider.logger(SCOPE),
            self.customer_id_dimension,
        );
        let guard = TelemetryGuard {
            tracer_provider,
            meter_provider,
            logger_provider,
            telemetry,
            shut_down: false,
        };
        if self.install_tracing_subscriber {
            let console = self.console_output.then(|| {
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(env_filter(&[]))
            });
            tracing_subscriber::registry()
                .with(guard.tracing_layers())
                .with(console)
                .try_init()
                .map_err(|e| SdkError::SubscriberAlreadySet(e.to_string()))?;
        }
        Ok(guard)
    }
}

impl TelemetryBuilder {
    /// The builder's transport options merged with the `OTEL_EXPORTER_OTLP_*` variables
    /// (read through `env`), the TLS files loaded when they are named or an endpoint is
    /// `https://`.
    fn transport(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Transport, SdkError> {
        let protocol = match self.protocol {
            Some(p) => p,
            None => Protocol::from_env(env)?,
        };
        let client_identity = match &self.client_certificate {
            Some(files) => Some(files.clone()),
            None => client_identity_from_env(env)?,
        };
        let options = TlsOptions {
            ca_file: self
                .ca_file
                .clone()
                .or_else(|| env("OTEL_EXPORTER_OTLP_CERTIFICATE").map(PathBuf::from)),
            client_identity,
        };
        let https = SIGNAL_ENDPOINT_VARS.iter().any(|var| {
            self.endpoint
                .clone()
                .or_else(|| env(var))
                .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
                .is_some_and(|url| url.trim().to_ascii_lowercase().starts_with("https://"))
        });
        let tls = if https || options.names_files() {
            Some(ClientTls::load(&options)?)
        } else {
            None
        };
        let authorization = self
            .bearer_token
            .as_ref()
            .map(BearerToken::header_value)
            .transpose()?;
        Ok(Transport {
            protocol,
            endpoint: self.endpoint.clone(),
            tls,
            authorization,
        })
    }
}

/// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` + `OTEL_EXPORTER_OTLP_CLIENT_KEY`: both or none.
fn client_identity_from_env(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(PathBuf, PathBuf)>, SdkError> {
    const CERT: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
    const KEY: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";
    match (env(CERT), env(KEY)) {
        (Some(cert), Some(key)) => Ok(Some((cert.into(), key.into()))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(SdkError::IncompleteClientCertificate {
            set: CERT,
            missing: KEY,
        }),
        (None, Some(_)) => Err(SdkError::IncompleteClientCertificate {
            set: KEY,
            missing: CERT,
        }),
    }
}

/// A bearer token; `Debug` does not show it, so the builder can be logged.
#[derive(Clone)]
struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// `Bearer <token>`, once the token is checked against RFC 6750's `b64token`
    /// (letters, digits, `-._~+/`, trailing `=`): anything else cannot travel in the
    /// header unchanged (opentelemetry-otlp would also percent-decode a `%`).
    fn header_value(&self) -> Result<http::HeaderValue, SdkError> {
        let token = self.0.trim();
        let body = token.trim_end_matches('=');
        let valid = !body.is_empty()
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        if !valid {
            return Err(SdkError::InvalidBearerToken);
        }
        let mut value = http::HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| SdkError::InvalidBearerToken)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// How the exporters reach the collector, resolved from the builder and the environment.
#[derive(Debug)]
struct Transport {
    protocol: Protocol,
    /// The builder's endpoint; `None` leaves the `OTEL_*` variables to opentelemetry-otlp.
    endpoint: Option<String>,
    /// Loaded when an endpoint is `https://` or a TLS file is named.
    tls: Option<ClientTls>,
    /// `Authorization: Bearer ...`.
    authorization: Option<http::HeaderValue>,
}

/// `RUST_LOG` (default `info`) with `off` for each of `silenced`.
fn env_filter(silenced: &[&str]) -> EnvFilter {
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "info".to_owned());
    let mut filter = EnvFilter::new(base);
    for target in silenced {
        if let Ok(directive) = format!("{target}=off").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

struct Exporters {
    spans: SpanExporter,
    metrics: MetricExporter,
    logs: LogExporter,
}

impl Exporters {
    fn build(transport: &Transport, temporality: Temporality) -> Result<Exporters, SdkError> {
        let err = |signal: &'static str| move |source| SdkError::Exporter { signal, source };
        let endpoint = transport.endpoint.as_deref();
        match transport.protocol {
            Protocol::Grpc => {
                let mut spans = SpanExporter::builder().with_tonic();
                let mut metrics = MetricExporter::builder()
                    .with_tonic()
                    .with_temporality(temporality);
                let mut logs = LogExporter::builder().with_tonic();
                // tonic uses TLS only for `https://` URIs, so this is safe for plain ones.
                if let Some(tls) = &transport.tls {
                    spans = spans.with_tls_config(tls.tonic_config());
                    metrics = metrics.with_tls_config(tls.tonic_config());
                    logs = logs.with_tls_config(tls.tonic_config());
                }
                if let Some(value) = &transport.authorization {
                    let mut headers = http::HeaderMap::new();
                    headers.insert(http::header::AUTHORIZATION, value.clone());
                    let metadata = MetadataMap::from_headers(headers);
                    spans = spans.with_metadata(metadata.clone());
                    metrics = metrics.with_metadata(metadata.clone());
                    logs = logs.with_metadata(metadata);
                }
                if let Some(ep) = endpoint {
                    spans = spans.with_endpoint(ep);
                    metrics = metrics.with_endpoint(ep);
                    logs = logs.with_endpoint(ep);
                }
                Ok(Exporters {
                    spans: spans.build().map_err(err("trace"))?,
                    metrics: metrics.build().map_err(err("metric"))?,
                    logs: logs.build().map_err(err("log"))?,
                })
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let runtime =
                    tokio::runtime::Handle::try_current().map_err(|_| SdkError::NoTokioRuntime)?;
                let tls = match &transport.tls {
                    Some(tls) => tls.rustls_config(),
                    None => ClientTls::plaintext_only()?.rustls_config(),
                };
                let client = std::sync::Arc::new(RuntimeHttpClient::new(runtime, tls));
                let proto = match transport.protocol {
                    Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
                    _ => opentelemetry_otlp::Protocol::HttpBinary,
                };
                let headers: HashMap<String, String> = transport
                    .authorization
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(|v| (http::header::AUTHORIZATION.to_string(), v.to_owned()))
                    .collect();
                let mut spans = SpanExporter::builder()
                    .with_http()
                    .with_protocol(proto)
                    .with_headers(headers.clone())
                    .with_shared_http_client(client.clone());
                let mut metrics = MetricExporter::builder()
                    .with_http()
                    .with_protocol(proto)
                    .with_headers(headers.clone())
                    .with_shared_http_client(client.clone())
                    .with_temporality(temporality);
                let mut logs = LogExporter::builder()
                    .with_http()
                    .with_protocol(proto)
                    .with_headers(headers)
                    .with_shared_http_client(client);
                if let Some(ep) = endpoint {
                    let base = ep.trim_end_matches('/');
                    spans = spans.with_endpoint(format!("{base}/v1/traces"));
                    metrics = metrics.with_endpoint(format!("{base}/v1/metrics"));
                    logs = logs.with_endpoint(format!("{base}/v1/logs"));
                }
                Ok(Exporters {
                    spans: spans.build().map_err(err("trace"))?,
                    metrics: metrics.build().map_err(err("metric"))?,
                    logs: logs.build().map_err(err("log"))?,
                })
            }
        }
    }
}

/// Owns the providers. Dropping it flushes and shuts everything down (blocking); in async
/// code prefer `guard.shutdown().await`, which does the blocking part off the runtime's
/// worker threads.
///
/// In AWS Lambda the execution environment is frozen between invocations, so batched data
/// would sit unsent: call [`TelemetryGuard::flush`] at the end of every invocation.
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    logger_provider: SdkLoggerProvider,
    telemetry: Telemetry,
    shut_down: bool,
}

impl TelemetryGuard {
    /// The handle for metrics, logs and the HTTP layer.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The tracer provider (for code that uses the OpenTelemetry API directly).
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The `tracing` layers that export spans (tracing-opentelemetry) and events as OTLP
    /// logs (opentelemetry-appender-tracing), filtered by `RUST_LOG` (default `info`) and
    /// with the export path's own crates silenced. `install` adds these to the global
    /// subscriber; add them yourself when you build the subscriber.
    pub fn tracing_layers<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        // Thread ids, busy/idle timings and the tracing target are not semantic conventions
        // and only add bytes to every X-Ray segment; code locations stay.
        let spans = tracing_opentelemetry::layer()
            .with_tracer(self.tracer_provider.tracer(SCOPE))
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_filter(env_filter(EXPORT_PATH_TARGETS));
        let events = OpenTelemetryTracingBridge::new(&self.logger_provider)
            .with_filter(env_filter(EXPORT_PATH_TARGETS));
        spans.and_then(events)
    }

    /// Exports everything buffered now (spans, metrics, logs) and waits for it. Call it at
    /// the end of each Lambda invocation. Runs the blocking flush on tokio's blocking pool
    /// so the runtime can keep driving the gRPC connection meanwhile.
    pub async fn flush(&self) -> Result<(), SdkError> {
        let providers = self.providers();
        run_blocking(move || providers.flush()).await
    }

    /// [`TelemetryGuard::flush`] for synchronous code (not on a current-thread runtime).
    pub fn flush_blocking(&self) -> Result<(), SdkError> {
        self.providers().flush()
    }

    /// Flushes and shuts the providers down; later telemetry is dropped.
    pub async fn shutdown(mut self) -> Result<(), SdkError> {
        self.shut_down = true;
        let providers = self.providers();
        run_blocking(move || providers.shutdown()).await
    }

    fn providers(&self) -> Providers {
        Providers {
            tracer: self.tracer_provider.clone(),
            meter: self.meter_provider.clone(),
            logger: self.logger_provider.clone(),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if self.shut_down {
            return;
        }
        let providers = self.providers();
        let result = match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| providers.shutdown())
            }
            _ => providers.shutdown(),
        };
        if let Err(e) = result {
            // Nothing left to report to but stderr: the exporters are what failed.
            eprintln!("aurastream-sdk: telemetry shutdown: {e}");
        }
    }
}

/// Runs `f` on the blocking pool when inside a tokio runtime, inline otherwise.
async fn run_blocking(
    f: impl FnOnce() -> Result<(), SdkError> + Send + 'static,
) -> Result<(), SdkError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| SdkError::Join(e.to_string()))?
    } else {
        f()
    }
}

/// Clones of the three providers, so flushing can move to another thread.
struct Providers {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    logger: SdkLoggerProvider,
}

impl Providers {
    /// Flushes all three even if one fails, then reports the first failure.
    fn flush(&self) -> Result<(), SdkError> {
        let results = [
            self.tracer
                .force_flush()
                .map_err(provider("trace", "flush")),
            self.meter
                .force_flush()
                .map_err(provider("metric", "flush")),
            self.logger.force_flush().map_err(provider("log", "flush")),
        ];
        results.into_iter().collect()
    }

    /// Shuts all three down (each flushes first), then reports the first failure.
    fn shutdown(&self) -> Result<(), SdkError> {
        let results = [
            self.tracer
                .shutdown()
                .map_err(provider("trace", "shutdown")),
            self.meter
                .shutdown()
                .map_err(provider("metric", "shutdown")),
            self.logger.shutdown().map_err(provider("log", "shutdown")),
        ];
        results.into_iter().collect()
    }
}

fn provider(
    signal: &'static str,
    operation: &'static str,
) -> impl Fn(opentelemetry_sdk::error::OTelSdkError) -> SdkError {
    move |source| SdkError::Provider {
        signal,
        operation,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake environment: the variables in `vars`, nothing else.
    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn ca_file(dir: &std::path::Path) -> PathBuf {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let path = dir.join("ca.pem");
        std::fs::write(&path, params.self_signed(&key).expect("ca").pem()).expect("write");
        path
    }

    #[test]
    fn protocol_comes_from_the_builder_then_the_environment() {
        let t = init("svc").transport(&env_of(&[])).expect("defaults");
        assert_eq!(t.protocol, Protocol::Grpc);
        assert!(t.tls.is_none() && t.authorization.is_none());
        let json = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        assert_eq!(
            init("svc").transport(&json).expect("json").protocol,
            Protocol::HttpJson
        );
        let built = init("svc").protocol(Protocol::HttpProtobuf);
        assert_eq!(
            built.transport(&json).expect("builder wins").protocol,
            Protocol::HttpProtobuf
        );
        let bad = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")]);
        assert!(matches!(
            init("svc").transport(&bad),
            Err(SdkError::UnsupportedProtocol(p)) if p == "http/xml"
        ));
    }

    #[test]
    fn tls_is_loaded_for_https_endpoints_and_named_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ca_file(dir.path());
        let ca_text = ca.display().to_string();

        // Plain endpoints and no files: nothing to load.
        let plain = env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
        assert!(init("svc").transport(&plain).expect("plain").tls.is_none());

        // One signal over https with the CA from the environment.
        let https = env_of(&[
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "HTTPS://collector:4318/v1/logs",
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_text),
        ]);
        assert!(init("svc").transport(&https).expect("https").tls.is_some());

        // A named file is checked even for a plain endpoint, so a typo fails start-up.
        let typo = init("svc")
            .endpoint("http://127.0.0.1:4317")
            .ca_file(dir.path().join("nope.pem"));
        let err = typo.transport(&env_of(&[])).expect_err("missing CA file");
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }

    #[test]
    fn client_certificate_variables_come_in_pairs() {
        let only_cert = env_of(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem")]);
        assert!(matches!(
            init("svc").transport(&only_cert),
            Err(SdkError::IncompleteClientCertificate {
                missing: "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                ..
            })
        ));
        let both = env_of(&[
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem"),
        ]);
        let err = init("svc")
            .transport(&both)
            .expect_err("files do not exist");
        assert!(err.to_string().contains("/c.pem"), "{err}");
    }

    #[test]
    fn bearer_tokens_are_checked_and_never_shown() {
        let header = |token: &str| BearerToken(token.to_owned()).header_value();
        let value = header("abc.DEF-123_~+/==").expect("valid token");
        assert_eq!(value.to_str().ok(), Some("Bearer abc.DEF-123_~+/=="));
        assert!(value.is_sensitive());
        for bad in ["", "==", "two words", "quo\"ted", "per%41cent", "tab\tbed"] {
            let err = header(bad).expect_err(bad);
            assert!(matches!(err, SdkError::InvalidBearerToken));
            assert!(bad.len() < 3 || !err.to_string().contains(bad), "{err}");
        }
        let builder = init("svc").bearer_token("s3cr3t-token");
        assert!(!format!("{builder:?}").contains("s3cr3t"));
        let t = builder.transport(&env_of(&[])).expect("transport");
        assert_eq!(
            t.authorization
                .and_then(|v| v.to_str().ok().map(str::to_owned)),
            Some("Bearer s3cr3t-token".to_owned())
        );
    }
}
