"""Replays the collector's EMF documents as CloudWatch metrics in moto, for the README demo.

CloudWatch extracts metrics from EMF log events on ingestion; moto stores the events but
extracts nothing, so `aurastream kpis` against moto would see no metrics. This reads every
EMF document of a log group back from moto and sends its metrics with PutMetricData
(one datum per metric, dimension set and document, with the document's timestamp),
which is what CloudWatch does with them.

Usage: python replay_emf.py ENDPOINT LOG_GROUP
"""
import json
import sys
from datetime import datetime, timezone

import boto3

endpoint, group = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
logs = boto3.client("logs", **kw)
cw = boto3.client("cloudwatch", **kw)

replayed = 0
for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group):
    for event in page["events"]:
        doc = json.loads(event["message"])
        meta = doc.get("_aws")
        if not meta:
            continue
        at = datetime.fromtimestamp(meta["Timestamp"] / 1000, tz=timezone.utc)
        for directive in meta["CloudWatchMetrics"]:
            for dims in directive["Dimensions"]:
                dimensions = [{"Name": d, "Value": str(doc[d])} for d in dims]
                for metric in directive["Metrics"]:
                    value = doc.get(metric["Name"])
                    datum = {"MetricName": metric["Name"], "Dimensions": dimensions,
                             "Timestamp": at, "Unit": metric.get("Unit", "None")}
                    if isinstance(value, dict):
                        datum["Values"] = value["Values"]
                        datum["Counts"] = value["Counts"]
                    elif isinstance(value, (int, float)):
                        datum["Value"] = value
                    else:
                        continue
                    cw.put_metric_data(Namespace=directive["Namespace"], MetricData=[datum])
                    replayed += 1
print(f"replayed {replayed} metric data from {group}")
