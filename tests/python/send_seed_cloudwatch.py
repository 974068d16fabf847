"""Send the monitoring guide's metrics and structured logs with the Python OpenTelemetry SDK.

Used by tests/tests/python_cloudwatch.rs, which points it at the collector exporting to a
moto CloudWatch Logs (`awsemf`, `awscloudwatchlogs`) and reads back what arrived.

The workload is fixed (the test knows the values to expect) and mirrors the guide's
`ApplicationMetrics`, `BusinessMetrics` and `StructuredLogger`: SentimentAnalysisCount,
SentimentConfidence and ProcessingTime by Sentiment; CacheHitCount, CacheMissCount and
CacheHitRate; APIRequestCount by Endpoint, CustomerId and StatusCode and APIResponseTime by
Endpoint and CustomerId in AuraStream/Application; CustomerActivity, Revenue and Usage in
AuraStream/Business (the namespace travels as the `aws.emf.namespace` attribute); one log
event per guide log category plus one with none.

The Python SDK lower-cases instrument names. With `--views`, the sentiment instruments get
a View whose `name` restores the guide's spelling (a View's name keeps its case); the other
instruments are left lower-cased for the collector's `metric_descriptors` to respell.

Usage: send_seed_cloudwatch.py --protocol grpc|http --endpoint URL --service NAME
           [--temporality delta|cumulative] [--rounds N] [--views]
Each round records the whole workload once, then exports (one OTLP request per signal).
Prints one JSON object: {"metric_names": [names as exported], "logs": [[category, body]]}
(category null for the event without one; body as a JSON object).
"""

import argparse
import json
import math
import sys
import time

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

APPLICATION = "AuraStream/Application"
BUSINESS = "AuraStream/Business"
NAMESPACE = "aws.emf.namespace"

# As in aurastream-sdk: 0..1 values and milliseconds need their own bucket bounds (the
# SDK's defaults would put every confidence score in one bucket).
RATIO_BOUNDS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
LATENCY_BOUNDS_MS = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                     1500.0, 2000.0, 3000.0, 5000.0, 10000.0, 30000.0]

# The guide's calls, once per round.
SENTIMENT_ANALYSES = [  # sentiment, confidence, processing time (ms)
    ("POSITIVE", 0.97, 80), ("POSITIVE", 0.91, 120), ("NEGATIVE", 0.88, 450),
    ("NEUTRAL", 0.61, 30), ("NEUTRAL", 0.55, 60), ("NEUTRAL", 0.72, 1200),
]
CACHE_LOOKUPS = [True] * 7 + [False] * 3
API_CALLS = [  # endpoint, customer, response time (ms), status code
    ("/api/v1/sentiment", "customer_123", 90, 200),
    ("/api/v1/sentiment", "customer_123", 1500, 500),
    ("/api/v1/sentiment", "customer_123", 140, 200),
    ("/api/v1/batch", "customer_456", 300, 200),
]


def exporters(protocol, endpoint, temporality):
    if temporality == "delta":
        preferred = {kind: AggregationTemporality.DELTA for kind in (Counter, Histogram)}
        preferred.update({kind: AggregationTemporality.CUMULATIVE for kind in (
            UpDownCounter, ObservableCounter, ObservableUpDownCounter)})
    else:
        preferred = None
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return (OTLPMetricExporter(endpoint=endpoint, insecure=True,
                                   preferred_temporality=preferred),
                OTLPLogExporter(endpoint=endpoint, insecure=True))
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return (OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics",
                               preferred_temporality=preferred),
            OTLPLogExporter(endpoint=f"{endpoint}/v1/logs"))


class RecordingExporter(MetricExporter):
    """Passes exports on, remembering the metric names the SDK actually exported."""

    def __init__(self, inner, names):
        super().__init__(preferred_temporality=inner._preferred_temporality,
                         preferred_aggregation=inner._preferred_aggregation)
        self._inner = inner
        self._names = names
        self.failures = 0

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                self._names.update(m.name for m in sm.metrics)
        result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        if result != MetricExportResult.SUCCESS:
            self.failures += 1
        return result

    def force_flush(self, timeout_millis=10_000):
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis=30_000, **kwargs):
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def views(rename):
    """Bucket bounds for every histogram; with `rename`, the guide's spelling for the
    sentiment instruments. One View per instrument: two matching Views would export the
    instrument twice."""
    def view(instrument, bounds=None, keep_case=False):
        kwargs = {"instrument_name": instrument}
        if bounds is not None:
            kwargs["aggregation"] = ExplicitBucketHistogramAggregation(boundaries=bounds)
        if keep_case:
            kwargs["name"] = instrument
        return View(**kwargs)

    out = [
        view("SentimentAnalysisCount", keep_case=rename),
        view("SentimentConfidence", RATIO_BOUNDS, keep_case=rename),
        view("ProcessingTime", LATENCY_BOUNDS_MS, keep_case=rename),
        view("CacheHitRate", RATIO_BOUNDS),
        view("APIResponseTime", LATENCY_BOUNDS_MS),
    ]
    return out


def record_round(meter_instruments):
    i = meter_instruments
    for sentiment, confidence, processing_time in SENTIMENT_ANALYSES:
        labels = {NAMESPACE: APPLICATION, "Sentiment": sentiment}
        i["SentimentAnalysisCount"].add(1, labels)
        i["SentimentConfidence"].record(confidence, labels)
        i["ProcessingTime"].record(processing_time, labels)
    for hit in CACHE_LOOKUPS:
        labels = {NAMESPACE: APPLICATION}
        (i["CacheHitCount"] if hit else i["CacheMissCount"]).add(1, labels)
        i["CacheHitRate"].record(1 if hit else 0, labels)
    for endpoint, customer, response_time, status in API_CALLS:
        labels = {NAMESPACE: APPLICATION, "Endpoint": endpoint, "CustomerId": customer}
        i["APIResponseTime"].record(response_time, labels)
        i["APIRequestCount"].add(1, {**labels, "StatusCode": str(status)})
    business = {NAMESPACE: BUSINESS, "CustomerId": "customer_123"}
    i["CustomerActivity"].add(4, {**business, "ActivityType": "analysis"})
    i["Revenue"].add(49.5, business)
    i["Usage"].add(12, business)


def structured_logs(request_prefix):
    """The StructuredLogger's events: (category or None, severity, body)."""
    def rid(n):
        return f"{request_prefix}-{n}"

    return [
        ("application", "INFO", json.dumps({
            "event_type": "api_request", "request_id": rid(1), "method": "POST",
            "path": "/api/v1/sentiment", "customer_id": "customer_123",
            "user_agent": "python-requests/2.32", "ip_address": "10.0.0.1"})),
        ("performance", "INFO", json.dumps({
            "event_type": "api_response", "request_id": rid(1), "status_code": 200,
            "response_time": 1500, "cache_hit": False})),
        ("application", "ERROR", json.dumps({
            "event_type": "error", "request_id": rid(2), "error_type": "ValidationError",
            "error_message": "text too long", "stack_trace": None})),
        # A structured (map) body rather than a JSON string: the same top-level fields.
        ("business", "INFO", {
            "event_type": "business_subscription", "request_id": rid(3),
            "customer_id": "customer_123", "data": {"plan": "pro", "seats": 5}}),
        ("security", "WARN", json.dumps({
            "event_type": "failed_authentication", "request_id": rid(4),
            "ip_address": "10.0.0.9"})),
        ("audit", "INFO", json.dumps({
            "event_type": "config_change", "request_id": rid(5), "actor": "admin"})),
        (None, "INFO", json.dumps({"event_type": "api_request", "request_id": rid(6)})),
    ]


SEVERITY = {"INFO": SeverityNumber.INFO, "WARN": SeverityNumber.WARN,
            "ERROR": SeverityNumber.ERROR}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--temporality", choices=["delta", "cumulative"], default="delta")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--views", action="store_true")
    args = parser.parse_args()

    resource = Resource.create({"service.name": args.service, "service.version": "1.2.3"})
    metric_exporter, log_exporter = exporters(args.protocol, args.endpoint, args.temporality)
    exported_names = set()
    recording = RecordingExporter(metric_exporter, exported_names)
    # No export timer: exactly one export per round, when this script asks for it.
    reader = PeriodicExportingMetricReader(recording, export_interval_millis=math.inf)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader],
                                   views=views(args.views))
    meter = meter_provider.get_meter("aurastream.e2e.python")
    instruments = {
        "SentimentAnalysisCount": meter.create_counter("SentimentAnalysisCount", unit="{count}"),
        "SentimentConfidence": meter.create_histogram("SentimentConfidence", unit="1"),
        "ProcessingTime": meter.create_histogram("ProcessingTime", unit="ms"),
        "CacheHitCount": meter.create_counter("CacheHitCount", unit="{count}"),
        "CacheMissCount": meter.create_counter("CacheMissCount", unit="{count}"),
        "CacheHitRate": meter.create_histogram("CacheHitRate", unit="1"),
        "APIRequestCount": meter.create_counter("APIRequestCount", unit="{count}"),
        "APIResponseTime": meter.create_histogram("APIResponseTime", unit="ms"),
        "CustomerActivity": meter.create_counter("CustomerActivity", unit="{count}"),
        "Revenue": meter.create_counter("Revenue", unit="1"),
        "Usage": meter.create_counter("Usage", unit="{count}"),
    }
    for _ in range(args.rounds):
        record_round(instruments)
        meter_provider.force_flush()
        if recording.failures:
            print("the OTLP metrics export failed", file=sys.stderr)
            return 1
        # Distinct timestamps per round, so no point of a later round looks stale.
        time.sleep(0.01)

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger = logger_provider.get_logger("aurastream.e2e.python")
    sent_logs = []
    for category, severity, body in structured_logs(args.service):
        logger.emit(LogRecord(
            timestamp=time.time_ns(), severity_text=severity,
            severity_number=SEVERITY[severity], body=body,
            attributes={"log.category": category} if category else {},
        ))
        sent_logs.append([category, body if isinstance(body, dict) else json.loads(body)])

    logger_provider.shutdown()
    meter_provider.shutdown()
    json.dump({"metric_names": sorted(exported_names), "logs": sent_logs}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
