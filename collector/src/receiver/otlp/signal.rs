//! What differs between the three OTLP services: message types, paths, and which items a
//! request may carry that we refuse (reported back through OTLP partial success).

use aurastream_proto::otlp::logs_service::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use aurastream_proto::otlp::metrics_service::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use aurastream_proto::otlp::trace_service::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use aurastream_proto::otlp::metrics::metric::Data;

use crate::model::{Signal, SignalData, metric_point_count};

/// Items refused from an otherwise accepted request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rejected {
    pub items: usize,
    pub message: String,
}

impl Rejected {
    pub fn note(&mut self, n: usize, why: &str) {
        if n == 0 {
            return;
        }
        if self.items == 0 {
            self.message = why.to_string();
        }
        self.items += n;
    }
}

pub trait OtlpSignal: Send + Sync + 'static {
    type Request: prost::Message + serde::de::DeserializeOwned + Default + Send + 'static;
    type Response: prost::Message + serde::Serialize + Default + Send + 'static;
    const SIGNAL: Signal;
    /// The gRPC method path.
    const GRPC_PATH: &'static str;
    /// Name of the request message, for error messages.
    const REQUEST_NAME: &'static str;

    /// Removes items we refuse (reported through partial success) and returns the rest.
    fn accept(request: Self::Request) -> (SignalData, Rejected);
    fn response(rejected: &Rejected) -> Self::Response;
}

pub struct Traces;
pub struct Metrics;
pub struct Logs;

fn valid_trace_id(id: &[u8]) -> bool {
    id.len() == 16 && id.iter().any(|b| *b != 0)
}

fn valid_span_id(id: &[u8]) -> bool {
    id.len() == 8 && id.iter().any(|b| *b != 0)
}

impl OtlpSignal for Traces {
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    const SIGNAL: Signal = Signal::Traces;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const REQUEST_NAME: &'static str = "ExportTraceServiceRequest";

    fn accept(mut request: Self::Request) -> (SignalData, Rejected) {
        let mut rejected = Rejected::default();
        for rs in &mut request.resource_spans {
            for ss in &mut rs.scope_spans {
                let before = ss.spans.len();
                ss.spans.retain(|s| {
                    valid_trace_id(&s.trace_id)
                        && valid_span_id(&s.span_id)
                        && (s.parent_span_id.is_empty() || s.parent_span_id.len() == 8)
                });
                rejected.note(
                    before - ss.spans.len(),
                    "spans need a 16-byte non-zero trace_id, an 8-byte non-zero span_id and \
                     an empty or 8-byte parent_span_id",
                );
            }
        }
        (SignalData::Traces(request.resource_spans), rejected)
    }

    fn response(rejected: &Rejected) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected.items > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected.items as i64,
                error_message: rejected.message.clone(),
            }),
        }
    }
}

impl OtlpSignal for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    const SIGNAL: Signal = Signal::Metrics;
    const GRPC_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const REQUEST_NAME: &'static str = "ExportMetricsServiceRequest";

    fn accept(mut request: Self::Request) -> (SignalData, Rejected) {
        let mut rejected = Rejected::default();
        for rm in &mut request.resource_metrics {
            for sm in &mut rm.scope_metrics {
                let mut nameless = 0;
                sm.metrics.retain(|m| {
                    let keep = !m.name.trim().is_empty();
                    if !keep {
                        nameless += metric_point_count(m);
                    }
                    keep
                });
                rejected.note(nameless, "metrics need a non-empty name");
                let mut valueless = 0;
                for m in &mut sm.metrics {
                    let points = match &mut m.data {
                        Some(Data::Gauge(g)) => &mut g.data_points,
                        Some(Data::Sum(s)) => &mut s.data_points,
                        _ => continue,
                    };
                    let before = points.len();
                    points.retain(|p| p.value.is_some());
                    valueless += before - points.len();
                }
                rejected.note(
                    valueless,
                    "number data points need a value (asDouble or asInt); in OTLP/JSON, \
                     NaN and infinities are not accepted as strings: send them over protobuf",
                );
            }
        }
        (SignalData::Metrics(request.resource_metrics), rejected)
    }

    fn response(rejected: &Rejected) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected.items > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected.items as i64,
                error_message: rejected.message.clone(),
            }),
        }
    }
}

impl OtlpSignal for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    const SIGNAL: Signal = Signal::Logs;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const REQUEST_NAME: &'static str = "ExportLogsServiceRequest";

    fn accept(mut request: Self::Request) -> (SignalData, Rejected) {
        let mut rejected = Rejected::default();
        for rl in &mut request.resource_logs {
            for sl in &mut rl.scope_logs {
                let before = sl.log_records.len();
                sl.log_records.retain(|l| {
                    (l.trace_id.is_empty() || l.trace_id.len() == 16)
                        && (l.span_id.is_empty() || l.span_id.len() == 8)
                });
                rejected.note(
                    before - sl.log_records.len(),
                    "log records may only carry a 16-byte trace_id and an 8-byte span_id",
                );
            }
        }
        (SignalData::Logs(request.resource_logs), rejected)
    }

    fn response(rejected: &Rejected) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected.items > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected.items as i64,
                error_message: rejected.message.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn spans_with_bad_ids_are_rejected_and_reported() {
        let good = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let short = Span {
            trace_id: vec![1; 15],
            ..good.clone()
        };
        let zero = Span {
            trace_id: vec![0; 16],
            ..good.clone()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![good, short, zero],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (data, rejected) = Traces::accept(req);
        assert_eq!(data.item_count(), 1);
        assert_eq!(rejected.items, 2);
        let resp = Traces::response(&rejected);
        let ps = resp.partial_success.unwrap();
        assert_eq!(ps.rejected_spans, 2);
        assert!(ps.error_message.contains("16-byte"));
        assert!(
            Traces::response(&Rejected::default())
                .partial_success
                .is_none()
        );
    }
}
