"""Send metrics that test the edges of CloudWatch's Embedded Metric Format with the Python
OpenTelemetry SDK (its default cumulative temporality unless told otherwise).

Used by tests/tests/python_emf_limits.rs, which points it at the collector exporting to a
moto CloudWatch Logs (`awsemf`) and reads back what arrived. The workload, per round:

- `WideHistogram` {Route=/wide}: a histogram with 120 buckets (bounds 1, 2, ..., 119), every
  bucket hit: value `b + 0.5` recorded `b % 3 + 1` times for bucket b (EMF takes at most 100
  values per metric, so it must arrive spread over several documents);
- `RequestLatency` {Shard=k}: shard k starts recording in round k (a series that begins
  while the collector is running) and then records the same three latencies every round;
- `LongDimensionCount` {Payload=<2,000 characters>}: +1 (CloudWatch refuses dimension
  values over 1,024 characters).

Usage: send_emf_limits.py --protocol grpc|http --endpoint URL --service NAME
           [--temporality delta|cumulative] [--rounds N]
Each round records its part of the workload, then exports (one OTLP request).
Prints one JSON object: {"histograms": {name: {"Dim=value": {"count", "sum", "min", "max",
"buckets": [count per bucket], "first_export_count"}}}, "long_value": the 2,000-character
value, "long_count": its counter's total}.
"""

import argparse
import json
import math
import sys
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from send_seed_cloudwatch import LATENCY_BOUNDS_MS, RecordingExporter, exporters

WIDE_BOUNDS = [float(b) for b in range(1, 120)]
LATENCIES_MS = [20.0, 200.0, 2000.0]
LONG_VALUE = ("payload-" + "0123456789" * 200)[:2000]


class Recorded:
    """What one series recorded, and how much of it its first export carried."""

    def __init__(self, buckets):
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.buckets = [0] * buckets
        self.first_export_count = None

    def record(self, value, bucket):
        self.count += 1
        self.sum += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.buckets[bucket] += 1

    def as_json(self):
        return {"count": self.count, "sum": self.sum, "min": self.min, "max": self.max,
                "buckets": self.buckets, "first_export_count": self.first_export_count}


def bucket_of(value, bounds):
    """The explicit bucket a value falls in: (bounds[i-1], bounds[i]]."""
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--temporality", choices=["delta", "cumulative"],
                        default="cumulative")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    resource = Resource.create({"service.name": args.service})
    metric_exporter, _ = exporters(args.protocol, args.endpoint, args.temporality)
    recording = RecordingExporter(metric_exporter, set())
    # No export timer: exactly one export per round, when this script asks for it.
    reader = PeriodicExportingMetricReader(recording, export_interval_millis=math.inf)
    views = [
        View(instrument_name="WideHistogram", name="WideHistogram",
             aggregation=ExplicitBucketHistogramAggregation(boundaries=WIDE_BOUNDS)),
        View(instrument_name="RequestLatency", name="RequestLatency",
             aggregation=ExplicitBucketHistogramAggregation(boundaries=LATENCY_BOUNDS_MS)),
        View(instrument_name="LongDimensionCount", name="LongDimensionCount"),
    ]
    provider = MeterProvider(resource=resource, metric_readers=[reader], views=views)
    meter = provider.get_meter("aurastream.e2e.emf_limits")
    wide = meter.create_histogram("WideHistogram", unit="ms")
    latency = meter.create_histogram("RequestLatency", unit="ms")
    long_count = meter.create_counter("LongDimensionCount", unit="{count}")

    recorded = {"WideHistogram": {}, "RequestLatency": {}}
    for round_ in range(args.rounds):
        series = recorded["WideHistogram"].setdefault(
            "Route=/wide", Recorded(len(WIDE_BOUNDS) + 1))
        for bucket in range(len(WIDE_BOUNDS) + 1):
            for _ in range(bucket % 3 + 1):
                wide.record(bucket + 0.5, {"Route": "/wide"})
                series.record(bucket + 0.5, bucket)
        for shard in range(round_ + 1):
            series = recorded["RequestLatency"].setdefault(
                f"Shard={shard}", Recorded(len(LATENCY_BOUNDS_MS) + 1))
            for value in LATENCIES_MS:
                latency.record(value, {"Shard": str(shard)})
                series.record(value, bucket_of(value, LATENCY_BOUNDS_MS))
        long_count.add(1, {"Payload": LONG_VALUE})
        provider.force_flush()
        if recording.failures:
            print("the OTLP metrics export failed", file=sys.stderr)
            return 1
        for by_series in recorded.values():
            for s in by_series.values():
                if s.first_export_count is None:
                    s.first_export_count = s.count
        # Distinct timestamps per round, so no point of a later round looks stale.
        time.sleep(0.01)

    provider.shutdown()
    json.dump({
        "histograms": {name: {key: s.as_json() for key, s in by_series.items()}
                       for name, by_series in recorded.items()},
        "long_value": LONG_VALUE,
        "long_count": args.rounds,
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
