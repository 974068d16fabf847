"""Send spans with the Python OpenTelemetry OTLP exporter over TLS / mTLS with an optional
bearer token, and probe the same endpoint with a raw call to read the exact refusal.

Used by tests/tests/tls_auth.rs. Prints one JSON object:
{"result": "SUCCESS"|"FAILURE", "status": <HTTP status or gRPC code name>, "spans": [span ids]}.
"""

import argparse
import json
import logging
import os

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TRACES_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def exporter(args, headers):
    if args.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        if args.plaintext:
            return OTLPSpanExporter(endpoint=args.endpoint, insecure=True, headers=headers, timeout=5)
        creds = grpc.ssl_channel_credentials(read(args.ca), read(args.key), read(args.cert))
        return OTLPSpanExporter(endpoint=args.endpoint, credentials=creds, headers=headers, timeout=5)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=f"{args.endpoint}/v1/traces",
        certificate_file=args.ca or True,
        client_certificate_file=args.cert,
        client_key_file=args.key,
        headers=headers,
        timeout=5,
    )


def probe(args, headers):
    """One raw export of an empty request: the status the collector answers with."""
    if args.protocol == "grpc":
        import grpc

        target = args.endpoint.split("://", 1)[-1]
        if args.plaintext:
            channel = grpc.insecure_channel(target)
        else:
            creds = grpc.ssl_channel_credentials(read(args.ca), read(args.key), read(args.cert))
            channel = grpc.secure_channel(target, creds)
        call = channel.unary_unary(TRACES_PATH)
        try:
            call(b"", metadata=list(headers.items()), timeout=5)
            return "OK"
        except grpc.RpcError as e:
            return e.code().name
        finally:
            channel.close()
    import requests

    cert = (args.cert, args.key) if args.cert else None
    try:
        r = requests.post(
            f"{args.endpoint}/v1/traces",
            data=b"",
            headers={"content-type": "application/x-protobuf", **headers},
            verify=args.ca or True,
            cert=cert,
            timeout=5,
        )
        return r.status_code
    except requests.exceptions.RequestException as e:
        return type(e).__name__


def main():
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--token")
    parser.add_argument("--plaintext", action="store_true")
    parser.add_argument("--spans", type=int, default=10)
    args = parser.parse_args()
    headers = {"authorization": f"Bearer {args.token}"} if args.token else {}
    if args.ca:
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment override a
        # session's CA file; make the test's CA the one it finds.
        os.environ["REQUESTS_CA_BUNDLE"] = args.ca

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": args.service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e-tls")
    for i in range(args.spans):
        with tracer.start_as_current_span(f"tls span {i}"):
            pass
    spans = memory.get_finished_spans()
    result = exporter(args, headers).export(spans)
    print(json.dumps({
        "result": result.name,
        "status": probe(args, headers),
        "spans": [format(s.context.span_id, "016x") for s in spans],
    }))


if __name__ == "__main__":
    main()
