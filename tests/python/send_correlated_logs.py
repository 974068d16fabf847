"""Send log records and spans from the same requests with the Python OpenTelemetry SDK, then
print what was sent.

Used by tests/tests/logs_traces.rs. For each service in --services and each category in
--categories, one request: a SERVER span "POST /analyze" and, while it is current, one
record through the standard `logging` module (OpenTelemetry's LoggingHandler puts the span's
trace and span ids on the record) carrying the attribute `log.category`. Each service has
its own resource (`service.name`, `deployment.environment.name`).

Usage: send_correlated_logs.py --protocol grpc|http --endpoint URL --service ENV
       --services a,b --categories application,security

(`--service` names the deployment environment here: the harness passes the same arguments to
every script.) Prints one JSON object: {"records": [{"service", "category", "trace_id",
"span_id", "message"}, ...]}; ids are lower-case hex.
"""

import argparse
import json
import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind


def exporters(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return (OTLPSpanExporter(endpoint=endpoint, insecure=True),
                OTLPLogExporter(endpoint=endpoint, insecure=True))
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return (OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
            OTLPLogExporter(endpoint=f"{endpoint}/v1/logs"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--services", required=True)
    parser.add_argument("--categories", required=True)
    args = parser.parse_args()

    sent = []
    for service in args.services.split(","):
        resource = Resource.create({
            "service.name": service,
            "deployment.environment.name": args.service,
        })
        span_exporter, log_exporter = exporters(args.protocol, args.endpoint)
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        logger = logging.getLogger(f"aurastream.e2e.{service}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
        logger.addHandler(handler)
        tracer = tracer_provider.get_tracer("aurastream.e2e.python")
        for category in args.categories.split(","):
            with tracer.start_as_current_span(
                "POST /analyze",
                kind=SpanKind.SERVER,
                attributes={"http.request.method": "POST", "url.path": "/analyze",
                            "http.response.status_code": 200},
            ) as span:
                ctx = span.get_span_context()
                message = json.dumps({"event_type": "api_request", "service": service,
                                      "category": category})
                logger.info(message, extra={"log.category": category})
                sent.append({
                    "service": service,
                    "category": category,
                    "trace_id": format(ctx.trace_id, "032x"),
                    "span_id": format(ctx.span_id, "016x"),
                    "message": message,
                })
        logger.removeHandler(handler)
        logger_provider.shutdown()
        tracer_provider.shutdown()
    json.dump({"records": sent}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
