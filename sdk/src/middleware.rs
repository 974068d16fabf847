//! HTTP middleware: one SERVER span, the guide's API metrics and request/response logs per
//! request, as a tower [`Layer`] that works with axum, hyper and tonic services.
//!
//! Per request it:
//!
//! 1. takes the request id from `x-request-id` or makes one, and puts it in the request
//!    extensions ([`RequestId`]) and on the response;
//! 2. continues the caller's trace from `X-Amzn-Trace-Id` or `traceparent`;
//! 3. opens a `tracing` span exported as an OpenTelemetry SERVER span with the stable HTTP
//!    semantic conventions (`http.request.method`, `url.path`, `http.route`,
//!    `http.response.status_code`, `user_agent.original`, `client.address`,
//!    `server.address`); handlers' `#[tracing::instrument]` spans become its children;
//! 4. logs `api_request` and `api_response` (category `application`) inside that span, so
//!    they carry its trace id;
//! 5. records `APIRequestCount` and `APIResponseTime` with `Endpoint` = the route template
//!    (axum's `MatchedPath`), `CustomerId` and `StatusCode`;
//! 6. writes the span's context back as `X-Amzn-Trace-Id` and `traceparent` response
//!    headers, so a client can look its request up in X-Ray.
//!
//! ## Headers the client controls
//!
//! `X-Forwarded-For` and `x-customer-id` are written by whoever sends the request, so by
//! default the layer believes neither: `client.address` is the TCP peer (axum's
//! `ConnectInfo`) and `CustomerId` is `anonymous`. A service behind load balancers opts in
//! with [`TelemetryLayer::trusted_proxy_hops`]: each trusted proxy appends the address it
//! received the request from, so the client is the entry that many places from the
//! right, and whatever a client wrote further left is ignored. A service whose gateway
//! authenticates callers and sets `x-customer-id` itself opts in with
//! [`TelemetryLayer::trust_customer_id_header`].
//!
//! Handlers tell the layer about cache hits by inserting [`CacheHit`] into the response
//! extensions. Latency is measured until the response head is ready (not the body
//! streaming), which is what the guide's `response_time` means for JSON APIs.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath};
use http::header::{HOST, HeaderValue, USER_AGENT};
use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation::{extract_context, inject_context};
use crate::telemetry::Telemetry;

/// The request id header, read from the request and written on the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The header naming the customer for the `CustomerId` dimension and logs (read only with
/// [`TelemetryLayer::trust_customer_id_header`]).
pub const CUSTOMER_ID_HEADER: &str = "x-customer-id";
/// The header proxies append the client address to (read only with
/// [`TelemetryLayer::trusted_proxy_hops`]).
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";
/// `CustomerId` when the request names no customer.
pub const ANONYMOUS_CUSTOMER: &str = "anonymous";
/// `Endpoint` for requests that matched no route: raw paths from scanners would otherwise
/// become unbounded (and billed) metric dimensions.
pub const UNMATCHED_ENDPOINT: &str = "UNMATCHED";

/// Longest accepted `x-request-id` / `x-customer-id`; longer ones are replaced (a new id,
/// `anonymous`).
pub const MAX_ID_LEN: usize = 128;

/// The request id, available to handlers as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Insert into a response's extensions to report whether it came from a cache; it lands in
/// the `api_response` log's `cache_hit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHit(pub bool);

impl Telemetry {
    /// The tower layer that traces, measures and logs every HTTP request. It trusts no
    /// client-written header until told to (see [`TelemetryLayer`]).
    pub fn http_layer(&self) -> TelemetryLayer {
        TelemetryLayer::new(self.clone())
    }
}

/// Wraps a service with [`TelemetryService`]. Build it with [`Telemetry::http_layer`].
#[derive(Clone)]
pub struct TelemetryLayer {
    telemetry: Telemetry,
    trust: HeaderTrust,
}

/// Which client-controlled request headers the layer believes.
#[derive(Debug, Clone, Copy, Default)]
struct HeaderTrust {
    /// Proxies in front of the service that append to `X-Forwarded-For`; 0 = read the peer.
    proxy_hops: usize,
    /// Whether `x-customer-id` names the customer.
    customer_id_header: bool,
}

impl TelemetryLayer {
    /// A layer that reads the client address from the TCP peer and reports every caller
    /// as `anonymous`.
    pub fn new(telemetry: Telemetry) -> TelemetryLayer {
        TelemetryLayer {
            telemetry,
            trust: HeaderTrust::default(),
        }
    }

    /// The service runs behind `hops` proxies (load balancers, ingress) that each append
    /// the address they received the request from to `X-Forwarded-For`. The client
    /// address is then the `hops`-th entry from the right (the leftmost one when the list
    /// is shorter); entries further left were written by the client and are ignored. An
    /// entry that is not an IP address (optionally with a port) falls back to the peer
    /// address. Default 0: `X-Forwarded-For` is ignored.
    ///
    /// Behind one ALB, use 1. Count only proxies that always append; one that passes the
    /// header through untouched lets clients choose their address.
    pub fn trusted_proxy_hops(mut self, hops: usize) -> TelemetryLayer {
        self.trust.proxy_hops = hops;
        self
    }

    /// Whether the `x-customer-id` request header names the customer for the
    /// `CustomerId` dimension and the logs' `customer_id` (default `false`: `anonymous`).
    /// Turn it on only when a gateway in front authenticates callers and sets the header
    /// itself: otherwise any client can pose as any customer and mint new (billed)
    /// metric dimensions.
    pub fn trust_customer_id_header(mut self, trust: bool) -> TelemetryLayer {
        self.trust.customer_id_header = trust;
        self
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = TelemetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TelemetryService {
            inner,
            telemetry: self.telemetry.clone(),
            trust: self.trust,
        }
    }
}

/// The service made by [`TelemetryLayer`].
#[derive(Clone)]
pub struct TelemetryService<S> {
    inner: S,
    telemetry: Telemetry,
    trust: HeaderTrust,
}

/// What the layer learned from the request, kept for the response side.
struct RequestInfo {
    request_id: String,
    customer_id: String,
    /// The route template when the router reports one (axum's `MatchedPath`).
    route: Option<String>,
    path: String,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TelemetryService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let (span, info) = start_request(&self.telemetry, self.trust, &mut req);
        let future = span.in_scope(|| self.inner.call(req));
        let telemetry = self.telemetry.clone();
        Box::pin(async move {
            let result = future.instrument(span.clone()).await;
            let elapsed = start.elapsed();
            let _entered = span.enter();
            match result {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    span.record("http.response.status_code", i64::from(status));
                    if status >= 500 {
                        span.record("otel.status_code", "error");
                    }
                    let cache_hit = response.extensions().get::<CacheHit>().is_some_and(|c| c.0);
                    finish(&telemetry, &info, status, elapsed, cache_hit);
                    let headers = response.headers_mut();
                    inject_context(&span.context(), headers);
                    if let Ok(value) = HeaderValue::from_str(&info.request_id) {
                        headers.insert(REQUEST_ID_HEADER, value);
                    }
                    Ok(response)
                }
                Err(error) => {
                    // The inner service failed without a response; the server will answer
                    // 500, so count and log it as such.
                    span.record("http.response.status_code", 500_i64);
                    span.record("otel.status_code", "error");
                    let message = error.to_string();
                    telemetry
                        .logs()
                        .log_error(&info.request_id, "ServiceError", &message, None);
                    finish(&telemetry, &info, 500, elapsed, false);
                    Err(error)
                }
            }
        })
    }
}

/// Reads the request, opens the SERVER span under the caller's context and logs
/// `api_request` inside it.
fn start_request<B>(
    telemetry: &Telemetry,
    trust: HeaderTrust,
    req: &mut Request<B>,
) -> (tracing::Span, RequestInfo) {
    let headers = req.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    // Both come from the client: overlong values are not copied into every log line and
    // metric dimension (CloudWatch caps dimension values at 1024 characters).
    let request_id = header(REQUEST_ID_HEADER)
        .filter(|v| v.len() <= MAX_ID_LEN)
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let customer_id = header(CUSTOMER_ID_HEADER)
        .filter(|_| trust.customer_id_header)
        .filter(|v| v.len() <= MAX_ID_LEN)
        .unwrap_or(ANONYMOUS_CUSTOMER)
        .to_owned();
    let user_agent = header(USER_AGENT.as_str()).unwrap_or("").to_owned();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = req.headers().get_all(FORWARDED_FOR_HEADER);
    let client_address = forwarded_client(forwarded.iter(), trust.proxy_hops)
        .or(peer)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let authority = header(HOST.as_str())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .or_else(|| req.uri().authority().cloned());
    let server_address = authority.as_ref().map(|a| a.host().to_owned());
    // Without the port, a URL rebuilt from these attributes (X-Ray's http.request.url)
    // would point at the wrong service on any non-default port.
    let server_port = authority.as_ref().and_then(|a| a.port_u16()).map(i64::from);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let parent = extract_context(req.headers());

    let span_name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %span_name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        url.path = %path,
        http.route = route.as_deref(),
        http.response.status_code = Empty,
        user_agent.original = (!user_agent.is_empty()).then_some(user_agent.as_str()),
        client.address = (!client_address.is_empty()).then_some(client_address.as_str()),
        server.address = server_address.as_deref(),
        server.port = server_port,
        http.request.id = %request_id,
    );
    // Fails only if the span was already started, which it cannot have been here.
    let _ = span.set_parent(parent);

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    req.extensions_mut().insert(RequestId(request_id.clone()));

    span.in_scope(|| {
        telemetry.logs().log_request(
            &request_id,
            &method,
            &path,
            &customer_id,
            &user_agent,
            &client_address,
        )
    });
    let info = RequestInfo {
        request_id,
        customer_id,
        route,
        path,
    };
    (span, info)
}

/// Records the API metrics and the `api_response` log (inside the entered request span).
fn finish(
    telemetry: &Telemetry,
    info: &RequestInfo,
    status: u16,
    elapsed: std::time::Duration,
    cache_hit: bool,
) {
    let endpoint = endpoint(info.route.as_deref(), &info.path, status);
    telemetry
        .metrics()
        .record_api_usage(endpoint, &info.customer_id, elapsed, status);
    telemetry
        .logs()
        .log_response(&info.request_id, status, elapsed, cache_hit);
}

/// The `Endpoint` dimension: the route template; without a router that reports one, the
/// path, except for 404s (see [`UNMATCHED_ENDPOINT`]).
fn endpoint<'a>(route: Option<&'a str>, path: &'a str, status: u16) -> &'a str {
    match route {
        Some(route) => route,
        None if status == 404 => UNMATCHED_ENDPOINT,
        None => path,
    }
}

/// The client address from `X-Forwarded-For` behind `hops` trusted proxies: the `hops`-th
/// entry from the right (the leftmost when there are fewer), over all the header's
/// occurrences in order. `None` with no trusted hops, no header, or an entry that is not an
/// IP address.
fn forwarded_client<'a>(
    values: impl DoubleEndedIterator<Item = &'a HeaderValue>,
    hops: usize,
) -> Option<IpAddr> {
    if hops == 0 {
        return None;
    }
    let chosen = values
        .rev()
        .flat_map(|v| v.to_str().ok().into_iter().flat_map(|s| s.rsplit(',')))
        .map(str::trim)
        .take(hops)
        .last()?;
    parse_forwarded_ip(chosen)
}

/// An `X-Forwarded-For` entry: `203.0.113.7`, `2001:db8::1`, `203.0.113.7:4711` or
/// `[2001:db8::1]:4711`.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// 16 random bytes as 32 hex digits, like an X-Ray or W3C trace id.
fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use opentelemetry::Value;
    use opentelemetry::logs::{AnyValue, LoggerProvider as _};
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::trace::{SpanKind, TracerProvider as _};
    use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt as _;

    const XRAY_IN: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    #[tokio::test]
    async fn server_span_metrics_logs_and_response_headers() {
        opentelemetry::global::set_text_map_propagator(crate::propagation::composite_propagator());
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let metrics = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_periodic_exporter(metrics.clone())
            .build();
        let logs = InMemoryLogExporter::default();
        let logger_provider = SdkLoggerProvider::builder()
            .with_simple_exporter(logs.clone())
            .build();
        let telemetry = Telemetry::new(
            &meter_provider.meter("test"),
            logger_provider.logger("test"),
            true,
        );
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("test")));
        let _tracing = crate::test_tracing::install(subscriber);

        let app = Router::new()
            .route(
                "/items/{id}",
                post(|| async {
                    let mut response = "ok".into_response();
                    response.extensions_mut().insert(CacheHit(true));
                    response
                }),
            )
            .route_layer(
                TelemetryLayer::new(telemetry)
                    .trusted_proxy_hops(2)
                    .trust_customer_id_header(true),
            );
        let request = Request::post("/items/42")
            .header("host", "api.example.com:8443")
            .header("user-agent", "test-agent/1.0")
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .header("x-customer-id", "c1")
            .header("x-request-id", "req-abc")
            .header("x-amzn-trace-id", XRAY_IN)
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("infallible");

        assert_eq!(response.status(), 200);
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("x-request-id"), "req-abc");
        assert!(
            header("x-amzn-trace-id")
                .starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;Parent="),
            "{}",
            header("x-amzn-trace-id")
        );
        assert!(header("traceparent").starts_with("00-5759e988bd862e3fe1be46a994272793-"));

        let finished = spans.get_finished_spans().expect("spans");
        assert_eq!(finished.len(), 1, "{finished:#?}");
        let span = &finished[0];
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(span.name, "POST /items/{id}");
        assert_eq!(
            format!("{:032x}", span.span_context.trace_id()),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(format!("{:016x}", span.parent_span_id), "53995c3f42cd8ad8");
        let attr = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.clone())
        };
        assert_eq!(attr("http.request.method"), Some(Value::from("POST")));
        assert_eq!(attr("url.path"), Some(Value::from("/items/42")));
        assert_eq!(attr("http.route"), Some(Value::from("/items/{id}")));
        assert_eq!(attr("http.response.status_code"), Some(Value::I64(200)));
        assert_eq!(
            attr("user_agent.original"),
            Some(Value::from("test-agent/1.0"))
        );
        assert_eq!(attr("client.address"), Some(Value::from("203.0.113.7")));
        assert_eq!(attr("server.address"), Some(Value::from("api.example.com")));
        let response_span_id = format!("{:016x}", span.span_context.span_id());
        assert!(header("x-amzn-trace-id").contains(&format!("Parent={response_span_id}")));

        meter_provider.force_flush().expect("flush metrics");
        let mut request_count = None;
        for rm in metrics.get_finished_metrics().expect("metrics") {
            for sm in rm.scope_metrics() {
                for m in sm.metrics() {
                    if m.name() == "APIRequestCount"
                        && let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data()
                    {
                        let dp = sum.data_points().next().expect("one point");
                        let mut attrs: Vec<(String, String)> = dp
                            .attributes()
                            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                            .collect();
                        attrs.sort();
                        request_count = Some((dp.value(), attrs));
                    }
                }
            }
        }
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            request_count,
            Some((
                1,
                vec![
                    kv("CustomerId", "c1"),
                    kv("Endpoint", "/items/{id}"),
                    kv("StatusCode", "200"),
                    kv("aws.emf.namespace", "AuraStream/Application"),
                ]
            ))
        );

        let emitted = logs.get_emitted_logs().expect("logs");
        assert_eq!(emitted.len(), 2);
        for log in &emitted {
            let trace = log
                .record
                .trace_context()
                .expect("trace context on the log");
            assert_eq!(trace.trace_id, span.span_context.trace_id());
            assert_eq!(trace.span_id, span.span_context.span_id());
        }
        let body = |i: usize| -> serde_json::Value {
            match emitted[i].record.body() {
                Some(AnyValue::String(s)) => serde_json::from_str(s.as_str()).expect("json"),
                other => panic!("unexpected body {other:?}"),
            }
        };
        assert_eq!(body(0)["event_type"], "api_request");
        assert_eq!(body(0)["ip_address"], "203.0.113.7");
        assert_eq!(body(0)["customer_id"], "c1");
        assert_eq!(body(1)["event_type"], "api_response");
        assert_eq!(body(1)["cache_hit"], true);
        assert_eq!(body(1)["request_id"], "req-abc");
    }

    #[tokio::test]
    async fn plain_tower_service_5xx_marks_the_span_as_error() {
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let meter_provider = SdkMeterProvider::builder().build();
        let logger_provider = SdkLoggerProvider::builder().build();
        let telemetry = Telemetry::new(
            &meter_provider.meter("test"),
            logger_provider.logger("test"),
            true,
        );
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("test")));
        let _tracing = crate::test_tracing::install(subscriber);

        let svc =
            TelemetryLayer::new(telemetry).layer(tower::service_fn(|_req: Request<Body>| async {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = http::StatusCode::BAD_GATEWAY;
                Ok::<_, std::convert::Infallible>(response)
            }));
        let response = svc
            .oneshot(
                Request::get("/upstream")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status(), 502);
        assert!(response.headers().contains_key("x-request-id"));

        let finished = spans.get_finished_spans().expect("spans");
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].name, "GET");
        assert_eq!(finished[0].status, opentelemetry::trace::Status::error(""));
        assert!(finished[0].attributes.iter().any(|kv| kv.key.as_str()
            == "http.response.status_code"
            && kv.value == Value::I64(502)));
    }

    #[test]
    fn endpoint_prefers_the_route_and_bounds_unmatched_paths() {
        assert_eq!(
            endpoint(Some("/items/{id}"), "/items/1", 200),
            "/items/{id}"
        );
        assert_eq!(endpoint(None, "/analyze", 200), "/analyze");
        assert_eq!(endpoint(None, "/wp-admin.php", 404), UNMATCHED_ENDPOINT);
    }

    #[test]
    fn generated_request_ids_are_32_hex_digits() {
        let meter_provider = SdkMeterProvider::builder().build();
        let logger_provider = SdkLoggerProvider::builder().build();
        let telemetry = Telemetry::new(
            &meter_provider.meter("test"),
            logger_provider.logger("test"),
            true,
        );
        let mut req = Request::get("/")
            .header("x-request-id", "x".repeat(MAX_ID_LEN + 1))
            .body(())
            .expect("request");
        let (_span, info) = start_request(&telemetry, HeaderTrust::default(), &mut req);
        assert_eq!(info.request_id.len(), 32, "overlong id replaced");
        assert_eq!(
            req.extensions().get::<RequestId>(),
            Some(&RequestId(info.request_id))
        );
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// The `api_request` log body and the span's `client.address` for one request through
    /// `layer(telemetry)`, the request coming from `peer`.
    async fn client_view(
        layer: impl FnOnce(Telemetry) -> TelemetryLayer,
        peer: &str,
        headers: &[(&str, &str)],
    ) -> (serde_json::Value, Option<Value>) {
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let meter_provider = SdkMeterProvider::builder().build();
        let logs = InMemoryLogExporter::default();
        let logger_provider = SdkLoggerProvider::builder()
            .with_simple_exporter(logs.clone())
            .build();
        let telemetry = Telemetry::new(
            &meter_provider.meter("test"),
            logger_provider.logger("test"),
            true,
        );
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("test")));
        let _tracing = crate::test_tracing::install(subscriber);

        let svc = layer(telemetry).layer(tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        }));
        let mut request = Request::get("/whoami");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Body::empty()).expect("request");
        let peer: SocketAddr = peer.parse().expect("peer address");
        request.extensions_mut().insert(ConnectInfo(peer));
        svc.oneshot(request).await.expect("infallible");

        let emitted = logs.get_emitted_logs().expect("logs");
        let body = match emitted.first().and_then(|l| l.record.body()) {
            Some(AnyValue::String(s)) => serde_json::from_str(s.as_str()).expect("json"),
            other => panic!("no api_request log: {other:?}"),
        };
        let finished = spans.get_finished_spans().expect("spans");
        let address = finished.first().and_then(|span| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "client.address")
                .map(|kv| kv.value.clone())
        });
        (body, address)
    }

    #[tokio::test]
    async fn client_headers_are_ignored_by_default() {
        let (body, address) = client_view(
            TelemetryLayer::new,
            "198.51.100.20:50000",
            &[
                ("x-forwarded-for", "203.0.113.66"),
                ("x-customer-id", "someone_else"),
            ],
        )
        .await;
        assert_eq!(body["event_type"], "api_request");
        assert_eq!(
            body["ip_address"], "198.51.100.20",
            "the peer, not the header"
        );
        assert_eq!(address, Some(Value::from("198.51.100.20")));
        assert_eq!(body["customer_id"], ANONYMOUS_CUSTOMER);
    }

    #[tokio::test]
    async fn trusted_hops_pick_the_client_from_the_right() {
        // client 203.0.113.7 wrote a spoofed entry; the outer proxy (trusted) appended the
        // client's address, the inner proxy appended the outer one's; the peer is the
        // inner proxy.
        let headers = [
            ("x-forwarded-for", "192.0.2.99, 203.0.113.7"),
            ("x-forwarded-for", "10.0.0.5"),
            ("x-customer-id", "customer_42"),
        ];
        let two_hops = |t: Telemetry| TelemetryLayer::new(t).trusted_proxy_hops(2);
        let (body, address) = client_view(two_hops, "10.0.0.9:443", &headers).await;
        assert_eq!(body["ip_address"], "203.0.113.7");
        assert_eq!(address, Some(Value::from("203.0.113.7")));
        assert_eq!(body["customer_id"], ANONYMOUS_CUSTOMER, "not opted in");

        let one_hop = |t: Telemetry| {
            TelemetryLayer::new(t)
                .trusted_proxy_hops(1)
                .trust_customer_id_header(true)
        };
        let (body, _) = client_view(one_hop, "10.0.0.9:443", &headers).await;
        assert_eq!(body["ip_address"], "10.0.0.5");
        assert_eq!(body["customer_id"], "customer_42", "opted in");

        let garbage = [("x-forwarded-for", "<script>, not-an-ip")];
        let (body, _) = client_view(one_hop, "10.0.0.9:443", &garbage).await;
        assert_eq!(
            body["ip_address"], "10.0.0.9",
            "a bad entry falls back to the peer"
        );
    }

    #[test]
    fn forwarded_for_entries_are_counted_from_the_right() {
        let values = [
            HeaderValue::from_static("192.0.2.99, 203.0.113.7:4711"),
            HeaderValue::from_static("[2001:db8::1]:443,10.0.0.5"),
        ];
        let pick = |hops| forwarded_client(values.iter(), hops).map(|ip| ip.to_string());
        assert_eq!(pick(0), None);
        assert_eq!(pick(1).as_deref(), Some("10.0.0.5"));
        assert_eq!(pick(2).as_deref(), Some("2001:db8::1"));
        assert_eq!(pick(3).as_deref(), Some("203.0.113.7"));
        assert_eq!(pick(4).as_deref(), Some("192.0.2.99"));
        assert_eq!(
            pick(9).as_deref(),
            Some("192.0.2.99"),
            "fewer entries: the leftmost"
        );
        assert_eq!(
            forwarded_client(std::iter::empty::<&HeaderValue>(), 1),
            None
        );
    }
}
