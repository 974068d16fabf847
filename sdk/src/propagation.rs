//! Trace context on the wire: `X-Amzn-Trace-Id` (AWS X-Ray) and W3C `traceparent`.
//!
//! Services behind an ALB, API Gateway or Lambda receive the X-Ray header; services called
//! by other OpenTelemetry code receive `traceparent`. The composite propagator reads both
//! (the first one that holds a valid context wins) and writes both, so a trace stays one
//! trace whichever hop started it.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapCompositePropagator};
use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry_aws::trace::XrayPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The AWS X-Ray trace header.
pub const XRAY_HEADER: &str = "x-amzn-trace-id";
/// The W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The variable Lambda sets to the invocation's `X-Amzn-Trace-Id` value.
pub const LAMBDA_TRACE_ENV: &str = "_X_AMZN_TRACE_ID";

/// The propagator `init` installs globally: X-Ray first, then W3C tracecontext.
///
/// Extraction tries each in turn and keeps the first valid context; injection writes both.
pub fn composite_propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(XrayPropagator::default()),
        Box::new(TraceContextPropagator::new()),
    ])
}

/// Reads the remote parent from request headers with the globally installed propagator.
pub fn extract_context(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Writes `cx` into outgoing headers (`X-Amzn-Trace-Id` and `traceparent` with the default
/// propagator) so the next service continues the same trace.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// aurastream_sdk::inject_context(&aurastream_sdk::current_context(), &mut headers);
/// ```
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(cx, &mut HeaderInjector(headers))
    });
}

/// Injects the context of the current `tracing` span (or, outside any span, the current
/// OpenTelemetry context) into an outgoing request's headers.
pub fn inject_current_context(headers: &mut HeaderMap) {
    inject_context(&current_context(), headers);
}

/// The OpenTelemetry context of the current `tracing` span, falling back to
/// [`Context::current`] when that span is not recorded by OpenTelemetry.
pub fn current_context() -> Context {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        cx
    } else {
        Context::current()
    }
}

/// The parent context of a Lambda invocation, from `_X_AMZN_TRACE_ID` (set by the Lambda
/// runtime per invocation when active tracing is on).
pub fn lambda_invocation_context() -> Option<Context> {
    xray_header_context(&std::env::var(LAMBDA_TRACE_ENV).ok()?)
}

/// The remote parent described by an `X-Amzn-Trace-Id` value, if it is valid.
pub fn xray_header_context(value: &str) -> Option<Context> {
    let span_context = opentelemetry_aws::trace::xray_propagator::span_context_from_str(value)?;
    Some(Context::new().with_remote_span_context(span_context))
}

/// Formats an OpenTelemetry trace id as an X-Ray trace id: `1-<8 hex epoch>-<24 hex>`.
///
/// Only ids made by the X-Ray id generator (installed by `init`) carry a real timestamp in
/// their first 8 hex digits; X-Ray rejects segments whose timestamp is older than 30 days.
pub fn xray_trace_id(trace_id: TraceId) -> String {
    let hex = format!("{trace_id:032x}");
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// Reads `http::HeaderMap` for propagators.
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes into `http::HeaderMap` for propagators. Values that are not valid header text are
/// skipped rather than corrupting the request, and so are empty ones (an empty
/// `tracestate`, which W3C says not to send).
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    use opentelemetry_aws::trace::XrayIdGenerator;
    use opentelemetry_sdk::trace::IdGenerator;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn remote(trace_id: TraceId, span_id: SpanId) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
    }

    #[test]
    fn xray_header_round_trips_through_the_composite_propagator() {
        let propagator = composite_propagator();
        let trace_id = XrayIdGenerator::default().new_trace_id();
        let span_id = SpanId::from_hex("53995c3f42cd8ad8").expect("valid hex");
        let mut headers = HeaderMap::new();
        propagator.inject_context(
            &remote(trace_id, span_id),
            &mut HeaderInjector(&mut headers),
        );

        let xray = headers
            .get(XRAY_HEADER)
            .and_then(|v| v.to_str().ok())
            .expect("X-Amzn-Trace-Id written");
        assert_eq!(
            xray,
            format!(
                "Root={};Parent=53995c3f42cd8ad8;Sampled=1",
                xray_trace_id(trace_id)
            )
        );
        assert!(headers.contains_key(TRACEPARENT_HEADER));
        assert!(
            !headers.contains_key("tracestate"),
            "empty tracestate is not sent"
        );

        // Only the X-Ray header on the way in (as from an ALB): the same context comes out.
        let mut incoming = HeaderMap::new();
        incoming.insert(XRAY_HEADER, HeaderValue::from_str(xray).expect("ascii"));
        let cx = propagator.extract(&HeaderExtractor(&incoming));
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id(), trace_id);
        assert_eq!(sc.span_id(), span_id);
        assert!(sc.is_sampled());
        assert!(sc.is_remote());
    }

    #[test]
    fn amazon_example_header_is_understood() {
        let mut incoming = HeaderMap::new();
        incoming.insert(
            XRAY_HEADER,
            HeaderValue::from_static(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            ),
        );
        let cx = composite_propagator().extract(&HeaderExtractor(&incoming));
        let sc = cx.span().span_context().clone();
        assert_eq!(
            format!("{:032x}", sc.trace_id()),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(
            xray_trace_id(sc.trace_id()),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
    }

    #[test]
    fn traceparent_alone_is_understood() {
        let mut incoming = HeaderMap::new();
        incoming.insert(
            TRACEPARENT_HEADER,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let cx = composite_propagator().extract(&HeaderExtractor(&incoming));
        assert_eq!(
            format!("{:032x}", cx.span().span_context().trace_id()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn generated_ids_convert_to_xray_format_with_a_recent_epoch() {
        let trace_id = XrayIdGenerator::default().new_trace_id();
        let xray = xray_trace_id(trace_id);
        let parts: Vec<&str> = xray.split('-').collect();
        assert_eq!(parts.len(), 3, "{xray}");
        assert_eq!(parts[0], "1");
        assert_eq!(parts[1].len(), 8);
        assert_eq!(parts[2].len(), 24);
        assert!(
            parts[1..]
                .iter()
                .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
        );
        let epoch = u64::from_str_radix(parts[1], 16).expect("hex epoch");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        assert!(now.abs_diff(epoch) <= 5, "epoch {epoch} vs now {now}");
    }

    #[test]
    fn outgoing_headers_carry_the_current_tracing_span() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;

        opentelemetry::global::set_text_map_propagator(composite_propagator());
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_id_generator(XrayIdGenerator::default())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _tracing = crate::test_tracing::install(subscriber);

        let span = tracing::info_span!("call_downstream");
        let mut headers = HeaderMap::new();
        let trace_id = span.in_scope(|| {
            inject_current_context(&mut headers);
            current_context().span().span_context().trace_id()
        });
        assert_ne!(trace_id, TraceId::INVALID);
        let xray = headers
            .get(XRAY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            xray.starts_with(&format!("Root={};", xray_trace_id(trace_id))),
            "{xray}"
        );
        let traceparent = headers
            .get(TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            traceparent.contains(&format!("{trace_id:032x}")),
            "{traceparent}"
        );
    }

    #[test]
    fn lambda_style_trace_value_becomes_a_remote_parent() {
        let cx = xray_header_context(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0",
        )
        .expect("valid header");
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(format!("{:016x}", sc.span_id()), "53995c3f42cd8ad8");
        assert!(xray_header_context("Root=garbage").is_none());
    }
}
