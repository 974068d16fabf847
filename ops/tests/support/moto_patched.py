"""moto_server with three gaps filled, for the `aurastream` tests.

moto (5.x) stores CloudWatch data points and serves GetMetricData, but
  * answers percentile statistics (`p99`) with nothing,
  * evaluates a metric-math expression only when it is a bare query id, and
  * answers X-Ray GetTraceSummaries with `"Users": {}` where the API has a list, which
    the Rust SDK (rightly) refuses to parse as soon as there is one trace.
This starts the real moto server with exactly those functions replaced; storage, the
awsQuery protocol, ListMetrics, alarms, Logs and the rest of X-Ray stay moto's own.

The stand-ins follow CloudWatch's documented semantics for what `aurastream kpis` uses:
  * pNN over the period's raw values (nearest rank, as CloudWatch does for small samples);
  * expressions: numbers, query ids, + - * /, SUM([..]) and MAX([..]) across series per
    timestamp (missing points skipped), FILL(series, value) over every timestamp any
    query returned, arithmetic on two series only where both have a point, division by
    zero giving no point; expressions may refer to earlier expressions.

Usage: python moto_metric_math.py HOST PORT
"""
import ast
import math
import sys

from moto.cloudwatch import models


def percentile(self, stat):
    if isinstance(stat, str) and stat.startswith("p"):
        try:
            q = float(stat[1:])
        except ValueError:
            return None
        values = sorted(self.metric_single_values_list)
        if not values:
            return None
        rank = max(1, math.ceil(q / 100.0 * len(values)))
        return values[min(rank, len(values)) - 1]
    return ORIGINAL_STAT(self, stat)


ORIGINAL_STAT = models.Statistics.get_statistics_for_type
models.Statistics.get_statistics_for_type = percentile


class Evaluator:
    def __init__(self, results):
        self.series = {r["id"]: dict(zip(r["timestamps"], r["values"])) for r in results}
        self.all_times = sorted({t for s in self.series.values() for t in s})

    def eval(self, node):
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name):
            return dict(self.series.get(node.id, {}))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self.binop(0.0, self.eval(node.operand), ast.Sub())
        if isinstance(node, ast.BinOp):
            return self.binop(self.eval(node.left), self.eval(node.right), node.op)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id.upper()
            if name in ("SUM", "MAX") and len(node.args) == 1 and isinstance(node.args[0], ast.List):
                parts = [self.eval(e) for e in node.args[0].elts]
                out = {}
                for part in parts:
                    for t, v in part.items():
                        out[t] = v if t not in out else (out[t] + v if name == "SUM" else max(out[t], v))
                return out
            if name == "FILL" and len(node.args) == 2:
                s = self.eval(node.args[0])
                fill = self.eval(node.args[1])
                return {t: s.get(t, fill) for t in self.all_times}
        raise ValueError("unsupported metric math: " + ast.dump(node))

    @staticmethod
    def binop(a, b, op):
        def apply(x, y):
            if isinstance(op, ast.Add):
                return x + y
            if isinstance(op, ast.Sub):
                return x - y
            if isinstance(op, ast.Mult):
                return x * y
            if isinstance(op, ast.Div):
                return None if y == 0 else x / y
            raise ValueError("unsupported operator")

        if isinstance(a, float) and isinstance(b, float):
            return apply(a, b)
        if isinstance(a, float):
            pairs = {t: (a, v) for t, v in b.items()}
        elif isinstance(b, float):
            pairs = {t: (v, b) for t, v in a.items()}
        else:
            pairs = {t: (a[t], b[t]) for t in a if t in b}
        out = {}
        for t, (x, y) in pairs.items():
            v = apply(x, y)
            if v is not None:
                out[t] = v
        return out


def parse_expression(expression, results):
    value = Evaluator(results).eval(ast.parse(expression, mode="eval"))
    if isinstance(value, float):
        return [], []
    times = sorted(value)
    return [value[t] for t in times], times


ORIGINAL_GET = models.CloudWatchBackend.get_metric_data


def get_metric_data(self, queries, start_time, end_time, scan_by="TimestampAscending"):
    """Expressions may use earlier expressions: evaluate them in order, each seeing the
    metric results and the expressions before it."""
    stats = [q for q in queries if "MetricStat" in q]
    exprs = [q for q in queries if "Expression" in q]
    hidden = [dict(q, ReturnData=True) for q in stats]
    results = ORIGINAL_GET(self, hidden, start_time, end_time, scan_by)
    pool = list(results)
    out = [r for r, q in zip(results, stats) if q.get("ReturnData", True) not in (False, "false")]
    for q in exprs:
        values, times = parse_expression(q["Expression"], pool)
        r = {
            "id": q["Id"],
            "label": q.get("Label") or q["Id"],
            "values": values,
            "timestamps": times,
            "status_code": "Complete",
        }
        pool.append(r)
        if q.get("ReturnData", True) not in (False, "false"):
            out.append(r)
    return out


models.CloudWatchBackend.get_metric_data = get_metric_data

from moto.xray import models as xray_models  # noqa: E402

ORIGINAL_SUMMARY = xray_models.SegmentCollection.summary


def summary(self, *args, **kwargs):
    result = ORIGINAL_SUMMARY(self, *args, **kwargs)
    for s in result.get("TraceSummaries", []):
        s["Users"] = []
    return result


xray_models.SegmentCollection.summary = summary

if __name__ == "__main__":
    from moto.server import main

    main(["-H", sys.argv[1], "-p", sys.argv[2]])
