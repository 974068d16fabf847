//! Cost of the telemetry layer per request: the same tower service with and without it.
//!
//! The instrumented variant does everything the layer does in production (SERVER span
//! through tracing-opentelemetry, propagation in and out, two metric recordings, two JSON
//! log records) with batch processors whose exporters discard, so the figure is the
//! in-process cost a request pays, not the network.
//!
//! `cargo bench -p aurastream-sdk --bench middleware`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use aurastream_sdk::Telemetry;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tower::{Layer, Service, ServiceExt, service_fn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Accepts and forgets spans and logs.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

impl LogExporter for Discard {
    async fn export(&self, _batch: LogBatch<'_>) -> OTelSdkResult {
        Ok(())
    }
}

async fn handler(_req: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new("{\"sentiment\":\"POSITIVE\"}".to_owned()))
}

fn request() -> Request<String> {
    Request::post("/analyze")
        .header("host", "127.0.0.1:8080")
        .header("user-agent", "bench/1.0")
        .header("x-customer-id", "customer_123")
        .header(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .body("{\"text\":\"great\"}".to_owned())
        .unwrap_or_default()
}

/// One request through `svc`, the way a server drives a tower service.
async fn call<S>(mut svc: S) -> Result<Response<String>, Infallible>
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
{
    svc.ready().await?;
    svc.call(request()).await
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_periodic_exporter(InMemoryMetricExporter::default())
        .build();
    let logger_provider = SdkLoggerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    opentelemetry::global::set_text_map_propagator(
        aurastream_sdk::propagation::composite_propagator(),
    );
    let telemetry = Telemetry::new(
        &meter_provider.meter("bench"),
        logger_provider.logger("bench"),
        true,
    );
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("bench")));
    let _default = tracing::subscriber::set_default(subscriber);

    let mut group = c.benchmark_group("middleware");
    group.bench_function("bare_service", |b| {
        let svc = service_fn(handler);
        b.iter(|| black_box(rt.block_on(call(svc))))
    });
    group.bench_function("with_telemetry_layer", |b| {
        let svc = telemetry
            .http_layer()
            .trust_customer_id_header(true)
            .layer(service_fn(handler));
        b.iter(|| black_box(rt.block_on(call(svc.clone()))))
    });
    group.finish();

    // Where the layer's time goes: each part alone, with the same providers.
    let mut parts = c.benchmark_group("middleware_parts");
    parts.bench_function("server_span_with_propagation", |b| {
        let headers = request().headers().clone();
        b.iter(|| {
            let span = tracing::info_span!("HTTP request", otel.kind = "server");
            let _ = span.set_parent(aurastream_sdk::propagation::extract_context(&headers));
            let mut out = http::HeaderMap::new();
            aurastream_sdk::inject_context(&span.context(), &mut out);
            black_box(out)
        })
    });
    parts.bench_function("api_usage_metrics", |b| {
        b.iter(|| {
            telemetry.metrics().record_api_usage(
                black_box("/analyze"),
                black_box("customer_123"),
                Duration::from_micros(1500),
                200,
            )
        })
    });
    parts.bench_function("request_and_response_logs", |b| {
        b.iter(|| {
            let logs = telemetry.logs();
            logs.log_request(
                "req-1",
                "POST",
                "/analyze",
                "customer_123",
                "bench/1.0",
                "10.0.0.1",
            );
            logs.log_response("req-1", 200, Duration::from_micros(1500), false);
        })
    });
    parts.finish();

    let _ = tracer_provider.shutdown();
    let _ = meter_provider.shutdown();
    let _ = logger_provider.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
