"""Send traces covering every X-Ray mapping with the Python OpenTelemetry SDK, then print
exactly what was sent.

Used by tests/tests/xray_python.rs: the collector's `awsxray` exporter turns these spans into
segment documents, the test reads them back from moto and compares them, field by field,
with the manifest printed here. The spans are the seed's sentiment API:

- "POST /analyze" (SERVER, 200): new HTTP conventions, indexed and plain attributes, a user;
  children "DynamoDB.GetItem" (aws-api client), "SELECT sentiments" (PostgreSQL client) and
  "score" (internal);
- "GET /results/{id}" (SERVER, 404);
- "POST /batch" (SERVER, 200) with "GET comprehend" (HTTP client answered 429, with the
  recorded ThrottlingException);
- "POST /retrain" (SERVER, 503) with "train_model" (internal, failed with a ValueError raised
  two calls deep);
- "process feedback" (CONSUMER root) linked to the roots of the first two traces.

Usage: send_traces_for_xray.py --protocol grpc|http --endpoint URL --service NAME

Prints one JSON object: {"sdk_version", "resource": {...}, "spans": [{"name", "kind",
"trace_id", "span_id", "parent_span_id", "start_ns", "end_ns", "attributes", "status",
"events", "links"}, ...], "frames": {span name: [{"path", "line", "label"}, innermost
first]}}. Ids are lower-case hex; attribute values are as the SDK holds them.
"""

import argparse
import json
import logging
import sys
import traceback

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def span_exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")


def load_weights(model):
    raise ValueError(f"weights of {model} are corrupt")


def train(model):
    load_weights(model)


def frames_of(exc):
    """The raised traceback's frames, innermost first, as X-Ray orders them."""
    return [
        {"path": f.filename, "line": f.lineno, "label": f.name}
        for f in reversed(traceback.extract_tb(exc.__traceback__))
    ]


def send(tracer):
    frames = {}
    with tracer.start_as_current_span(
        "POST /analyze",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "POST",
            "url.scheme": "https",
            "server.address": "api.aurastream.example",
            "server.port": 8443,
            "url.path": "/analyze",
            "url.query": "lang=en",
            "http.response.status_code": 200,
            "user_agent.original": "sentiment-client/2.1",
            "client.address": "203.0.113.9",
            "enduser.id": "alice",
            "customer.id": "customer_42",
            "tier": "gold",
            "request.size": 512,
            "text.languages": ["en", "de"],
        },
    ) as analyze:
        with tracer.start_as_current_span(
            "DynamoDB.GetItem",
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "aws-api",
                "rpc.service": "DynamoDB",
                "rpc.method": "GetItem",
                "aws.dynamodb.table_names": ["sentiment-cache"],
                "aws.request_id": "V1G0RQ5NPS2ME7AF4PJ0KTBOBJVV4KQNSO5AEMVJF66Q9ASUAAJG",
                "http.response.status_code": 200,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "SELECT sentiments",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "postgresql",
                "db.name": "sentiments",
                "db.statement": "SELECT label, score FROM results WHERE text_hash = $1",
                "db.user": "reader",
                "server.address": "db.internal",
                "server.port": 5432,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "score", kind=SpanKind.INTERNAL, attributes={"model": "comprehend-v3"}
        ):
            pass
    analyze_ctx = analyze.get_span_context()

    with tracer.start_as_current_span(
        "GET /results/{id}",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "url.path": "/results/unknown",
            "http.route": "/results/{id}",
            "http.response.status_code": 404,
            "customer.id": "customer_7",
        },
    ) as results:
        pass
    results_ctx = results.get_span_context()

    with tracer.start_as_current_span(
        "POST /batch",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "url.path": "/batch",
                    "http.response.status_code": 200},
    ):
        with tracer.start_as_current_span(
            "GET comprehend",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "url.full": "https://comprehend.example/detect?lang=en",
                "http.response.status_code": 429,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as throttled:
            try:
                raise RuntimeError("ThrottlingException: Rate exceeded")
            except RuntimeError as e:
                throttled.record_exception(e)
                throttled.set_status(Status(StatusCode.ERROR, "throttled"))
                frames["GET comprehend"] = frames_of(e)

    with tracer.start_as_current_span(
        "POST /retrain",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "url.path": "/retrain",
                    "http.response.status_code": 503},
    ) as retrain:
        retrain.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span(
            "train_model",
            kind=SpanKind.INTERNAL,
            record_exception=False,
            set_status_on_exception=False,
        ) as training:
            try:
                train("comprehend-v4")
            except ValueError as e:
                training.record_exception(e)
                training.set_status(Status(StatusCode.ERROR, str(e)))
                frames["train_model"] = frames_of(e)

    with tracer.start_as_current_span(
        "process feedback",
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "aws_sqs", "messaging.operation": "process"},
        links=[
            Link(analyze_ctx, {"messaging.message.id": "m-1", "feedback.score": 5}),
            Link(results_ctx),
        ],
    ):
        pass
    return frames


def hex_id(value, digits):
    return format(value, f"0{digits}x")


def describe(span):
    ctx = span.get_span_context()
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": hex_id(ctx.trace_id, 32),
        "span_id": hex_id(ctx.span_id, 16),
        "parent_span_id": hex_id(span.parent.span_id, 16) if span.parent else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes),
        "status": {"code": span.status.status_code.name,
                   "description": span.status.description},
        "events": [{"name": e.name, "attributes": dict(e.attributes)} for e in span.events],
        "links": [
            {"trace_id": hex_id(link.context.trace_id, 32),
             "span_id": hex_id(link.context.span_id, 16),
             "attributes": dict(link.attributes or {})}
            for link in span.links
        ],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    args = parser.parse_args()

    resource = Resource.create({
        "service.name": args.service,
        "service.version": "2.0.1",
        "cloud.provider": "aws",
        "cloud.platform": "aws_ecs",
        "cloud.region": "us-east-1",
        "aws.ecs.launch_type": "fargate",
        "aws.ecs.cluster.arn": "arn:aws:ecs:us-east-1:123456789012:cluster/sentiment",
        "aws.ecs.task.arn": "arn:aws:ecs:us-east-1:123456789012:task/sentiment/0a1b2c3d",
        "aws.log.group.names": ["/ecs/sentiment-api"],
    })
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(span_exporter(args.protocol, args.endpoint)))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))

    frames = send(provider.get_tracer("e2e-xray"))
    if not provider.force_flush():
        print("the OTLP exporter did not flush", file=sys.stderr)
        return 1
    provider.shutdown()

    manifest = {
        "sdk_version": sdk_version,
        "resource": dict(resource.attributes),
        "spans": [describe(s) for s in memory.get_finished_spans()],
        "frames": frames,
    }
    json.dump(manifest, sys.stdout)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
