"""Send all three OTLP signals with the Python OpenTelemetry SDK, then print what was sent.

Used by tests/tests/python_clients.rs as a real, independent OTLP client. The data is the
seed's vocabulary (sentiment API spans, SentimentAnalysisCount / ProcessingTime metrics,
StructuredLogger JSON logs), so the same script also feeds the AWS exporters' tests.

Usage: send_otlp.py --protocol grpc|http --endpoint URL --service NAME
Prints one JSON object: {"spans": [[name, trace_id, span_id], ...], "logs": [...], ...}.
"""

import argparse
import json
import logging
import sys

from opentelemetry import metrics, trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def exporters(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return (
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            OTLPMetricExporter(endpoint=endpoint, insecure=True),
            OTLPLogExporter(endpoint=endpoint, insecure=True),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return (
        OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
        OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"),
        OTLPLogExporter(endpoint=f"{endpoint}/v1/logs"),
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--traces", type=int, default=20)
    args = parser.parse_args()

    resource = Resource.create({"service.name": args.service, "service.version": "1.2.3"})
    span_exporter, metric_exporter, log_exporter = exporters(args.protocol, args.endpoint)

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))

    tracer = tracer_provider.get_tracer("e2e-python")
    sent = {"spans": [], "logs": [], "trace_id_of_logs": None}
    for i in range(args.traces):
        status = 429 if i % 4 == 0 else 200
        with tracer.start_as_current_span(
            f"POST /analyze/{i}",
            kind=SpanKind.SERVER,
            attributes={"http.method": "POST", "http.target": f"/analyze/{i}",
                        "http.status_code": status, "customer.id": f"customer_{i % 3}"},
        ) as root:
            with tracer.start_as_current_span(
                "comprehend_api", kind=SpanKind.CLIENT,
                attributes={"rpc.system": "aws-api", "rpc.service": "Comprehend",
                            "rpc.method": "DetectSentiment"},
            ) as child:
                if i % 4 == 0:
                    child.record_exception(RuntimeError("ThrottlingException: Rate exceeded"))
                    child.set_status(Status(StatusCode.ERROR, "throttled"))
                child_ctx = child.get_span_context()
            root_ctx = root.get_span_context()
        trace_id = format(root_ctx.trace_id, "032x")
        sent["spans"].append([f"POST /analyze/{i}", trace_id, format(root_ctx.span_id, "016x")])
        sent["spans"].append(["comprehend_api", trace_id, format(child_ctx.span_id, "016x")])
        sent["trace_id_of_logs"] = trace_id

    meter = meter_provider.get_meter("e2e-python")
    count = meter.create_counter("SentimentAnalysisCount", unit="{count}")
    confidence = meter.create_histogram("SentimentConfidence", unit="1")
    processing = meter.create_histogram("ProcessingTime", unit="ms")
    for sentiment, n in (("POSITIVE", 4), ("NEUTRAL", 1)):
        for _ in range(n):
            count.add(1, {"Sentiment": sentiment})
            confidence.record(0.9, {"Sentiment": sentiment})
            processing.record(250, {"Sentiment": sentiment})

    logger = logger_provider.get_logger("e2e-python")
    trace_id_int = int(sent["trace_id_of_logs"], 16)
    for i in range(8):
        body = json.dumps({"event_type": "api_request", "request_id": f"req-{i}",
                           "method": "POST", "path": "/analyze", "customer_id": "customer_1"})
        logger.emit(LogRecord(
            timestamp=1_700_000_000_000_000_000 + i, trace_id=trace_id_int, span_id=42,
            trace_flags=trace.TraceFlags(1), severity_text="INFO",
            severity_number=SeverityNumber.INFO, body=body,
            attributes={"log.category": "application"},
        ))
        sent["logs"].append(f"req-{i}")

    tracer_provider.force_flush()
    meter_provider.force_flush()
    logger_provider.force_flush()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()
    json.dump(sent, sys.stdout)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
