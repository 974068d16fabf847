"""The monitoring guide's X-Ray code path, run against a daemon address.

Used by collector/tests/xray_daemon.rs: the Python aws-xray-sdk (`xray_recorder`, as in
seed/monitoring-guide.md "Distributed Tracing") sends its segments over UDP to the
collector's `awsxray` receiver instead of the AWS X-Ray daemon. The guide's boto3 calls
(Comprehend, DynamoDB) are replaced by stand-ins so the script needs no AWS; the segment
structure is the guide's: `comprehend_api` and `cache_operation` subsegments with
metadata, an annotation, and a cache failure recorded as an exception.

Usage: xray_sdk_app.py PORT [STREAMING_THRESHOLD]
Prints one JSON line: {"trace_id": ..., "segment_id": ...}.
"""

import json
import logging
import sys

from aws_xray_sdk.core import xray_recorder


class CacheUnavailable(Exception):
    """Raised by the cache stand-in, like a DynamoDB ProvisionedThroughputExceeded."""


def call_comprehend(text):
    """Stand-in for comprehend.detect_sentiment."""
    return {"Sentiment": "POSITIVE", "SentimentScore": {"Positive": 0.98, "Negative": 0.01}}


def check_cache(text):
    """Stand-in for the guide's DynamoDB cache lookup, failing like a throttled table."""
    raise CacheUnavailable("AuraStream-SentimentCache is throttled")


def analyze_sentiment(text):
    xray_recorder.put_metadata("text_length", len(text))
    xray_recorder.put_metadata("has_options", False)
    with xray_recorder.capture("comprehend_api"):
        result = call_comprehend(text)
        xray_recorder.put_metadata("sentiment", result["Sentiment"])
        xray_recorder.put_metadata("confidence", result["SentimentScore"])
        xray_recorder.put_annotation("sentiment", result["Sentiment"])
    try:
        with xray_recorder.capture("cache_operation"):
            xray_recorder.put_metadata("cache_key", "sha256:3f2a")
            check_cache(text)
    except CacheUnavailable as e:
        xray_recorder.put_metadata("cache_error", str(e))
    return result


def main():
    port = int(sys.argv[1])
    streaming_threshold = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    logging.basicConfig(level=logging.WARNING)
    xray_recorder.configure(
        daemon_address="127.0.0.1:%d" % port,
        sampling=False,
        context_missing="LOG_ERROR",
        service="aurastream-api",
        streaming_threshold=streaming_threshold,
    )
    segment = xray_recorder.begin_segment("aurastream-api")
    segment.put_http_meta("method", "POST")
    segment.put_http_meta("url", "https://api.aurastream.example/analyze/sentiment")
    segment.put_annotation("customer_tier", "premium")
    segment.set_user("user-42")
    analyze_sentiment("AuraStream makes monitoring pleasant")
    segment.put_http_meta("status", 200)
    xray_recorder.end_segment()
    print(json.dumps({"trace_id": segment.trace_id, "segment_id": segment.id}))


if __name__ == "__main__":
    main()
