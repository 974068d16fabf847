//! `deploy/`: the CloudFormation templates lint clean, and every metric an alarm or a
//! dashboard reads is one the collector really writes with the deploy configs.
//!
//! The consistency test runs the real binary twice, on `deploy/config/sidecar.yaml` and on
//! `deploy/config/lambda.yaml`, each layered with a small overlay (free loopback ports,
//! moto as CloudWatch Logs, X-Ray segments to a file). It sends the monitoring guide's
//! metrics and log records exactly as the SDK records them (OTLP/JSON, cumulative counters
//! and histograms, `aws.emf.namespace` per point), then reads back what was written:
//!
//! - EMF documents (from moto for the sidecar's PutLogEvents, from stdout in Lambda), as
//!   (namespace, metric, dimension set) triples;
//! - the log groups the collector created in moto, with their retention.
//!
//! The templates are decoded with cfn-lint's own loader (it understands `!Sub`, `!Ref`,
//! `!GetAtt`), and `${Parameter}` is replaced by the parameter's default.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aurastream_e2e::aws::Moto;
use aurastream_e2e::{Ports, http_get, metric_sum, python, workspace_bin, workspace_root};
use serde_json::{Value, json};

/// Namespaces written by AWS services themselves (API Gateway, Lambda), not by our exporters.
const AWS_NAMESPACE_PREFIX: &str = "AWS/";
/// The collector's own Prometheus counters, shipped by the CloudWatch agent in the ECS task.
const SELF_METRICS_NAMESPACE: &str = "AuraStream/Collector";

fn venv_bin(name: &str) -> PathBuf {
    let p = workspace_root().join(".venv/bin").join(name);
    assert!(
        p.exists(),
        "{} not found: run scripts/test.sh, which creates .venv from tests/python/requirements.txt",
        p.display()
    );
    p
}

/// Every CloudFormation template under deploy/ (YAML files with `Resources:`, which the
/// collector configs next to them do not have).
fn templates() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                if text.lines().any(|l| l.starts_with("Resources:")) {
                    out.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&workspace_root().join("deploy"), &mut out);
    out.sort();
    assert!(
        !out.is_empty(),
        "no CloudFormation templates found under deploy/"
    );
    out
}

#[test]
fn cfn_lint_reports_nothing_on_any_template() {
    let templates = templates();
    let out = Command::new(venv_bin("cfn-lint"))
        .args(&templates)
        .current_dir(workspace_root())
        .output()
        .expect("run cfn-lint");
    assert!(
        out.status.success(),
        "cfn-lint {:?} exited with {} (2 = errors, 4 = warnings, 8 = informational):\n{}{}",
        templates,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------------------------------------
// What the templates refer to.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MetricKey {
    namespace: String,
    name: String,
    dimensions: BTreeSet<String>,
}

impl std::fmt::Display for MetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?}", self.namespace, self.name, self.dimensions)
    }
}

#[derive(Debug, Default)]
struct TemplateFacts {
    /// (where, metric) for every alarm metric and dashboard metric row.
    metrics: Vec<(String, MetricKey)>,
    /// Log group name => retention in days (None: never expires).
    log_groups: BTreeMap<String, Option<u64>>,
    /// (where, log group) read by dashboard log widgets.
    log_sources: Vec<(String, String)>,
    /// The CloudWatch agent's EMF declarations for the self-metrics: (namespace, selectors,
    /// dimension sets).
    agent_declarations: Vec<(String, Vec<String>, Vec<BTreeSet<String>>)>,
    /// The Prometheus scrape configs given to the CloudWatch agent.
    scrape_configs: Vec<String>,
}

/// All templates, decoded by cfn-lint's loader into plain JSON.
fn decoded_templates() -> BTreeMap<String, Value> {
    const DECODE: &str = r#"
import json, sys
from cfnlint.decode import decode
out = {}
for path in sys.argv[1:]:
    template, matches = decode(path)
    if matches or template is None:
        sys.exit("cannot decode %s: %s" % (path, [str(m) for m in matches]))
    out[path] = template
print(json.dumps(out, default=str))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(DECODE)
        .args(templates())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "decoding templates failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("decoded templates are JSON")
}

/// Resolves `${...}` in a `Fn::Sub` string: parameters by their defaults, pseudo
/// parameters by fixed test values, anything else (`${Res.Attr}`) as `UNRESOLVED`.
fn substitute(
    s: &str,
    params: &BTreeMap<String, String>,
    vars: &BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else {
            let value = vars
                .get(name)
                .or_else(|| params.get(name))
                .cloned()
                .unwrap_or_else(|| match name {
                    "AWS::Region" => "us-east-1".into(),
                    "AWS::AccountId" => "123456789012".into(),
                    "AWS::Partition" => "aws".into(),
                    "AWS::StackName" => "aurastream".into(),
                    _ => "UNRESOLVED".into(),
                });
            out.push_str(&value);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A property value as a string: literal, `Ref` to a parameter, or `Fn::Sub`.
fn resolve(v: &Value, params: &BTreeMap<String, String>) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("Ref") {
                return params.get(r).cloned();
            }
            match o.get("Fn::Sub")? {
                Value::String(s) => Some(substitute(s, params, &BTreeMap::new())),
                Value::Array(a) => {
                    let s = a.first()?.as_str()?;
                    let vars = a
                        .get(1)
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((k.clone(), resolve(v, params)?)))
                                .collect()
                        })
                        .unwrap_or_default();
                    Some(substitute(s, params, &vars))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn dimension_names(dims: Option<&Value>) -> BTreeSet<String> {
    dims.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|d| d["Name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The metric rows of a dashboard metric widget: `[ns, name, dim, value, ..., {options}]`
/// with `"."` meaning "as in the row above"; expression rows (`[{"expression": ...}]`) have
/// no metric of their own.
fn widget_metrics(rows: &[Value]) -> Vec<MetricKey> {
    let mut out = Vec::new();
    let mut previous: Vec<String> = Vec::new();
    for row in rows {
        let Some(row) = row.as_array() else { continue };
        let fields: Vec<String> = row
            .iter()
            .take_while(|v| v.is_string())
            .enumerate()
            .map(|(i, v)| {
                let s = v.as_str().unwrap_or_default();
                if s == "." {
                    previous.get(i).cloned().unwrap_or_default()
                } else {
                    s.to_string()
                }
            })
            .collect();
        if fields.len() < 2 {
            continue;
        }
        out.push(MetricKey {
            namespace: fields[0].clone(),
            name: fields[1].clone(),
            dimensions: fields[2..].chunks(2).map(|kv| kv[0].clone()).collect(),
        });
        previous = fields;
    }
    out
}

fn template_facts() -> TemplateFacts {
    let mut facts = TemplateFacts::default();
    for (path, template) in decoded_templates() {
        let params: BTreeMap<String, String> = template["Parameters"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        Some((k.clone(), resolve(&v["Default"], &BTreeMap::new())?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let file = Path::new(&path)
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or(&path)
            .to_string();
        let Some(resources) = template["Resources"].as_object() else {
            continue;
        };
        for (id, resource) in resources {
            let here = format!("{file}: {id}");
            let props = &resource["Properties"];
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::CloudWatch::Alarm" => {
                    if let Some(name) = resolve(&props["MetricName"], &params) {
                        facts.metrics.push((
                            here.clone(),
                            MetricKey {
                                namespace: resolve(&props["Namespace"], &params)
                                    .unwrap_or_default(),
                                name,
                                dimensions: dimension_names(props.get("Dimensions")),
                            },
                        ));
                    }
                    for m in props["Metrics"].as_array().into_iter().flatten() {
                        let metric = &m["MetricStat"]["Metric"];
                        if metric.is_object() {
                            facts.metrics.push((
                                here.clone(),
                                MetricKey {
                                    namespace: resolve(&metric["Namespace"], &params)
                                        .unwrap_or_default(),
                                    name: resolve(&metric["MetricName"], &params)
                                        .unwrap_or_default(),
                                    dimensions: dimension_names(metric.get("Dimensions")),
                                },
                            ));
                        }
                    }
                }
                "AWS::CloudWatch::Dashboard" => {
                    let body = resolve(&props["DashboardBody"], &params).unwrap_or_else(|| {
                        panic!("{here}: DashboardBody is not a string or Fn::Sub")
                    });
                    let body: Value = serde_json::from_str(&body)
                        .unwrap_or_else(|e| panic!("{here}: DashboardBody is not JSON: {e}"));
                    for (i, w) in body["widgets"].as_array().into_iter().flatten().enumerate() {
                        let title = w["properties"]["title"].as_str().unwrap_or_default();
                        let at = format!("{here} widget {i} ({title})");
                        match w["type"].as_str() {
                            Some("metric") => {
                                let rows = w["properties"]["metrics"]
                                    .as_array()
                                    .cloned()
                                    .unwrap_or_default();
                                for m in widget_metrics(&rows) {
                                    facts.metrics.push((at.clone(), m));
                                }
                            }
                            Some("log") => {
                                let query = w["properties"]["query"].as_str().unwrap_or_default();
                                for part in query.split("SOURCE '").skip(1) {
                                    let group = part.split('\'').next().unwrap_or_default();
                                    facts.log_sources.push((at.clone(), group.to_string()));
                                }
                            }
                            _ => {}
                        }
                    }
                }
                "AWS::Logs::LogGroup" => {
                    let name = resolve(&props["LogGroupName"], &params).unwrap_or_else(|| {
                        panic!("{here}: give the log group an explicit LogGroupName")
                    });
                    facts
                        .log_groups
                        .insert(name, props["RetentionInDays"].as_u64());
                }
                "AWS::ECS::TaskDefinition" => {
                    for c in props["ContainerDefinitions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        for env in c["Environment"].as_array().into_iter().flatten() {
                            let value = resolve(&env["Value"], &params).unwrap_or_default();
                            match env["Name"].as_str() {
                                Some("CW_CONFIG_CONTENT") => {
                                    let config: Value = serde_json::from_str(&value)
                                        .unwrap_or_else(|e| {
                                            panic!("{here}: CW_CONFIG_CONTENT is not JSON: {e}")
                                        });
                                    let emf = &config["logs"]["metrics_collected"]["prometheus"]["emf_processor"];
                                    let namespace =
                                        emf["metric_namespace"].as_str().unwrap_or_default();
                                    for d in
                                        emf["metric_declaration"].as_array().into_iter().flatten()
                                    {
                                        let strings = |v: &Value| -> Vec<String> {
                                            v.as_array()
                                                .into_iter()
                                                .flatten()
                                                .filter_map(|s| s.as_str().map(str::to_string))
                                                .collect()
                                        };
                                        facts.agent_declarations.push((
                                            namespace.to_string(),
                                            strings(&d["metric_selectors"]),
                                            d["dimensions"]
                                                .as_array()
                                                .into_iter()
                                                .flatten()
                                                .map(|set| strings(set).into_iter().collect())
                                                .collect(),
                                        ));
                                    }
                                }
                                Some("PROMETHEUS_CONFIG_CONTENT") => {
                                    facts.scrape_configs.push(value)
                                }
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    facts
}

// ------------------------------------------------------------------------------------------
// What the collector writes.
// ------------------------------------------------------------------------------------------

/// Every log group in the moto server at `url` with its retention and the messages of all
/// its events (read with boto3's paginators: `FilterLogEvents` across every stream).
fn dump(url: &str) -> BTreeMap<String, (Option<u64>, Vec<String>)> {
    const DUMP: &str = r#"
import json, sys, boto3
logs = boto3.client("logs", endpoint_url=sys.argv[1], region_name="us-east-1",
                    aws_access_key_id="testing", aws_secret_access_key="testing")
out = {}
for page in logs.get_paginator("describe_log_groups").paginate():
    for group in page["logGroups"]:
        name = group["logGroupName"]
        messages = []
        for events in logs.get_paginator("filter_log_events").paginate(logGroupName=name):
            messages += [e["message"] for e in events["events"]]
        out[name] = [group.get("retentionInDays"), messages]
print(json.dumps(out))
"#;
    let out = Command::new(python())
        .args(["-c", DUMP, url])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "reading moto failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("moto dump is JSON")
}

/// The real collector on a deploy config plus an overlay, stdout captured in a file.
struct Deployed {
    child: Child,
    ports: Ports,
    dir: tempfile::TempDir,
}

impl Deployed {
    fn start(config: &str, overlay: impl FnOnce(&Ports, &Path) -> String) -> Deployed {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = Ports::free();
        let overlay_path = dir.path().join("overlay.yaml");
        std::fs::write(&overlay_path, overlay(&ports, dir.path())).expect("write overlay");
        let child = Command::new(workspace_bin("aurastream-collector"))
            .arg("--config")
            .arg(workspace_root().join("deploy/config").join(config))
            .arg("--config")
            .arg(&overlay_path)
            .args(["--log-level", "info"])
            .current_dir(dir.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AURASTREAM_LOG_GROUP_PREFIX")
            // The deployed configs hash personal data with this key (SECURITY.md).
            .env(
                "AURASTREAM_REDACTION_HMAC_KEY",
                "deploy-test-key-0123456789",
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).expect("stdout file"))
            .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr file"))
            .spawn()
            .expect("spawn aurastream-collector");
        let mut d = Deployed { child, ports, dir };
        let url = format!("http://127.0.0.1:{}/health", d.ports.health);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = d.child.try_wait().expect("poll collector") {
                panic!(
                    "collector on {config} exited with {status}:\n{}",
                    d.stderr()
                );
            }
            if http_get(&url).is_ok_and(|b| b.contains("\"overall_status\"")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "collector on {config} not serving /health:\n{}",
                d.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.ports.health)).unwrap_or_default()
    }

    /// Waits until every item that entered the `signal` pipeline was sent, withheld (a
    /// cumulative series' first point, the EMF delta baseline) or given up on.
    fn wait_accounted(&self, signal: &str, exporter: &str, at_least: f64) {
        let pipeline = format!("pipeline=\"{signal}\"");
        let exporter = format!("exporter=\"{exporter}\"");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.metrics();
            let accepted = metric_sum(&m, "aurastream_pipeline_accepted_items_total", &[&pipeline]);
            let done = metric_sum(&m, "aurastream_exporter_sent_items_total", &[&exporter])
                + metric_sum(&m, "aurastream_exporter_withheld_items_total", &[&exporter])
                + metric_sum(&m, "aurastream_exporter_failed_items_total", &[&exporter]);
            if accepted >= at_least && done >= accepted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{signal}: accepted {accepted}, exported, withheld or failed {done}\n{m}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn post(&self, path: &str, body: &Value) {
        let url = format!("{}{path}", self.ports.http_url());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let status = rt.block_on(async {
            reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map(|r| r.status())
        });
        match status {
            Ok(s) if s.is_success() => {}
            other => panic!("POST {url}: {other:?}\n{}", self.stderr()),
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------------------------------
// The monitoring guide's traffic, as the SDK (sdk/src/metrics.rs, sdk/src/logs.rs) sends it.
// ------------------------------------------------------------------------------------------

fn attr(k: &str, v: &str) -> Value {
    json!({"key": k, "value": {"stringValue": v}})
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// One point of a metric, with its namespace and dimension attributes.
struct SeedPoint {
    name: &'static str,
    unit: &'static str,
    histogram: bool,
    namespace: &'static str,
    dims: Vec<(&'static str, String)>,
    /// Recorded values (histograms) or the increment (counters).
    values: Vec<f64>,
}

fn seed_points() -> Vec<SeedPoint> {
    let p = |name, unit, histogram, namespace, dims: &[(&'static str, &str)], values: &[f64]| {
        SeedPoint {
            name,
            unit,
            histogram,
            namespace,
            dims: dims.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            values: values.to_vec(),
        }
    };
    let (app, business, customer, revenue) = (
        "AuraStream/Application",
        "AuraStream/Business",
        "AuraStream/Customer",
        "AuraStream/Revenue",
    );
    let mut points = Vec::new();
    for sentiment in ["POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED"] {
        let dims = [("Sentiment", sentiment)];
        points.push(p(
            "SentimentAnalysisCount",
            "{count}",
            false,
            app,
            &dims,
            &[1.0],
        ));
        points.push(p(
            "SentimentConfidence",
            "1",
            true,
            app,
            &dims,
            &[0.93, 0.71],
        ));
        points.push(p("ProcessingTime", "ms", true, app, &dims, &[42.0, 380.0]));
    }
    points.push(p("CacheHitCount", "{count}", false, app, &[], &[2.0]));
    points.push(p("CacheMissCount", "{count}", false, app, &[], &[1.0]));
    points.push(p("CacheHitRate", "1", true, app, &[], &[1.0, 1.0, 0.0]));
    let api = [("Endpoint", "/analyze"), ("CustomerId", "customer_123")];
    points.push(p("APIResponseTime", "ms", true, app, &api, &[120.0]));
    points.push(p(
        "APIRequestCount",
        "{count}",
        false,
        app,
        &[
            ("Endpoint", "/analyze"),
            ("CustomerId", "customer_123"),
            ("StatusCode", "200"),
        ],
        &[1.0],
    ));
    points.push(p(
        "CustomerActivity",
        "{count}",
        false,
        business,
        &[("CustomerId", "customer_123"), ("ActivityType", "analysis")],
        &[2.0],
    ));
    for ns in [business, revenue] {
        points.push(p(
            "Revenue",
            "1",
            false,
            ns,
            &[("CustomerId", "customer_123")],
            &[9.5],
        ));
        points.push(p(
            "Usage",
            "{count}",
            false,
            ns,
            &[("CustomerId", "customer_123")],
            &[3.0],
        ));
    }
    points.push(p(
        "CustomerUsage",
        "{count}",
        false,
        customer,
        &[("CustomerId", "customer_123"), ("UsageType", "characters")],
        &[1200.0],
    ));
    points
}

/// The guide's metrics as an OTLP/JSON export request: cumulative, as the SDK's default
/// reader sends them; `round` (1, 2, ...) scales the running totals.
fn seed_metrics_request(resource: &[Value], start: u128, round: u32) -> Value {
    let now = now_nanos().to_string();
    let metrics: Vec<Value> = seed_points()
        .into_iter()
        .map(|sp| {
            let mut attributes = vec![attr("aws.emf.namespace", sp.namespace)];
            attributes.extend(sp.dims.iter().map(|(k, v)| attr(k, v)));
            let r = f64::from(round);
            if sp.histogram {
                let bounds = [0.5, 1.0, 100.0, 1000.0];
                let mut buckets = [0u64; 5];
                for v in &sp.values {
                    buckets[bounds.iter().position(|b| v <= b).unwrap_or(bounds.len())] +=
                        u64::from(round);
                }
                json!({"name": sp.name, "unit": sp.unit, "histogram": {
                "aggregationTemporality": 2,
                "dataPoints": [{
                    "attributes": attributes,
                    "startTimeUnixNano": start.to_string(), "timeUnixNano": now,
                    "count": (sp.values.len() as u64 * u64::from(round)).to_string(),
                    "sum": sp.values.iter().sum::<f64>() * r,
                    "min": sp.values.iter().cloned().fold(f64::INFINITY, f64::min),
                    "max": sp.values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    "explicitBounds": bounds,
                    "bucketCounts": buckets.iter().map(u64::to_string).collect::<Vec<_>>()
                }]}})
            } else {
                json!({"name": sp.name, "unit": sp.unit, "sum": {
                "aggregationTemporality": 2, "isMonotonic": true,
                "dataPoints": [{
                    "attributes": attributes,
                    "startTimeUnixNano": start.to_string(), "timeUnixNano": now,
                    "asDouble": sp.values[0] * r
                }]}})
            }
        })
        .collect();
    json!({"resourceMetrics": [{
        "resource": {"attributes": resource},
        "scopeMetrics": [{"scope": {"name": "aurastream-sdk"}, "metrics": metrics}]
    }]})
}

/// One log record per category of the guide, plus one with no category.
fn seed_logs_request(resource: &[Value]) -> Value {
    let now = now_nanos().to_string();
    let record = |category: Option<&str>, event_type: &str| {
        let mut attributes = vec![attr("event_type", event_type)];
        if let Some(c) = category {
            attributes.push(attr("log.category", c));
        }
        let body =
            json!({"event_type": event_type, "request_id": "req-1", "customer_id": "customer_123"});
        json!({"timeUnixNano": now, "severityText": "INFO", "severityNumber": 9,
               "body": {"stringValue": body.to_string()}, "attributes": attributes})
    };
    let records = vec![
        record(Some("security"), "failed_authentication"),
        record(Some("audit"), "config_change"),
        record(Some("application"), "api_request"),
        record(Some("performance"), "api_response"),
        record(Some("business"), "business_analysis"),
        record(None, "uncategorised"),
    ];
    json!({"resourceLogs": [{
        "resource": {"attributes": resource},
        "scopeLogs": [{"scope": {"name": "aurastream-sdk"}, "logRecords": records}]
    }]})
}

fn traces_request(resource: &[Value]) -> Value {
    let end = now_nanos();
    let span = |trace_id: &str, span_id: &str| {
        json!({"traceId": trace_id, "spanId": span_id, "name": "POST /analyze", "kind": 2,
               "startTimeUnixNano": (end - 5_000_000).to_string(), "endTimeUnixNano": end.to_string(),
               "attributes": [attr("http.request.method", "POST"), attr("url.path", "/analyze/text")]})
    };
    json!({"resourceSpans": [{
        "resource": {"attributes": resource},
        "scopeSpans": [{"scope": {"name": "aurastream-sdk"}, "spans": [
            span("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8"),
            span("00000000000000000000000000000000", "53995c3f42cd8ad9")
        ]}]
    }]})
}

/// (namespace, metric, dimension set) of every metric directive in EMF documents.
fn emf_metrics(documents: impl IntoIterator<Item = String>) -> BTreeSet<MetricKey> {
    let mut out = BTreeSet::new();
    for doc in documents {
        let Ok(v) = serde_json::from_str::<Value>(&doc) else {
            continue;
        };
        for directive in v["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let namespace = directive["Namespace"].as_str().unwrap_or_default();
            for metric in directive["Metrics"].as_array().into_iter().flatten() {
                for set in directive["Dimensions"].as_array().into_iter().flatten() {
                    out.insert(MetricKey {
                        namespace: namespace.to_string(),
                        name: metric["Name"].as_str().unwrap_or_default().to_string(),
                        dimensions: set
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|d| d.as_str().map(str::to_string))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

struct Written {
    metrics: BTreeSet<MetricKey>,
    /// Log group => retention the collector gave it.
    log_groups: BTreeMap<String, Option<u64>>,
    /// The collector's /metrics after the run.
    self_metrics: String,
}

/// Runs the guide's traffic through the collector on `config`.
fn run_deployed(config: &str, moto: &Moto, emf_in_moto: bool) -> Written {
    let endpoint = moto.url();
    // The services were running before this collector started (their series' start time
    // is earlier): with `initial_value: auto` the first point of each cumulative series
    // only sets the EMF exporter's baseline, as after a collector restart.
    let start = now_nanos();
    let d = Deployed::start(config, |ports, dir| {
        let emf = if emf_in_moto {
            format!("  awsemf: {{ endpoint: \"{endpoint}\", region: us-east-1 }}\n")
        } else {
            String::new()
        };
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc: {{ endpoint: 127.0.0.1:{} }}\n      http: {{ endpoint: 127.0.0.1:{} }}\n\
             extensions:\n  health_check: {{ endpoint: 127.0.0.1:{} }}\n\
             exporters:\n{emf}  awscloudwatchlogs: {{ endpoint: \"{endpoint}\", region: us-east-1 }}\n  \
             awsxray: {{ output_destination: file, path: {}/xray.jsonl }}\n",
            ports.grpc,
            ports.http,
            ports.health,
            dir.display()
        )
    });
    // The template's default ServiceName; ECS and Lambda resource attributes fill the
    // {TaskId} / {FunctionName} stream placeholders.
    let resource = [
        attr("service.name", "aurastream-api"),
        attr("deployment.environment", "dev"),
        attr(
            "aws.ecs.task.arn",
            "arn:aws:ecs:us-east-1:123456789012:task/aurastream/0123456789abcdef",
        ),
        attr("faas.name", "aurastream-api-dev-otel-example"),
    ];
    let points = seed_points().len() as f64;
    // Two rounds: the first point of a cumulative series only sets the EMF exporter's
    // baseline (counted as withheld); the second becomes a delta.
    d.post("/v1/metrics", &seed_metrics_request(&resource, start, 1));
    d.wait_accounted("metrics", "awsemf", points);
    let second = seed_metrics_request(&resource, start, 2);
    d.post("/v1/metrics", &second);
    d.wait_accounted("metrics", "awsemf", 2.0 * points);
    // The second round again, as a client retrying after a timeout would send it: its points
    // are stale, counted as failed with a reason the scrape config drops (no page), which
    // also gives the export-failure alarm's metric a series on /metrics.
    d.post("/v1/metrics", &second);
    d.post("/v1/logs", &seed_logs_request(&resource));
    // One good span and one with an all-zero (invalid) trace id, which the receiver refuses
    // through OTLP partial success: every self-metric the alarms read now has a series.
    d.post("/v1/traces", &traces_request(&resource));
    d.wait_accounted("metrics", "awsemf", 3.0 * points);
    d.wait_accounted("logs", "awscloudwatchlogs", 6.0);
    let self_metrics = d.metrics();
    let stdout = d.stdout();
    d.stop();

    let dump = dump(&moto.url());
    let mut documents: Vec<String> = stdout.lines().map(str::to_string).collect();
    documents.extend(dump.values().flat_map(|(_, m)| m.iter().cloned()));
    Written {
        metrics: emf_metrics(documents),
        log_groups: dump.into_iter().map(|(g, (r, _))| (g, r)).collect(),
        self_metrics,
    }
}

#[test]
fn every_alarm_and_dashboard_metric_is_one_the_collector_writes() {
    let facts = template_facts();
    assert!(
        facts.metrics.len() >= 20,
        "expected the guide's alarms and dashboards in the templates, found {} metric references",
        facts.metrics.len()
    );

    let moto = Moto::start();
    let sidecar = run_deployed("sidecar.yaml", &moto, true);
    let lambda = run_deployed("lambda.yaml", &moto, false);

    // Both deployments must write what the dashboards and alarms read: a dashboard is
    // shared by services on ECS and on Lambda.
    let mut problems = Vec::new();
    for (deployment, written) in [("sidecar.yaml", &sidecar), ("lambda.yaml", &lambda)] {
        assert!(
            written
                .metrics
                .iter()
                .any(|m| m.namespace == "AuraStream/Business"),
            "{deployment}: no EMF metric directives were written at all: {:?}",
            written.metrics
        );
        for (at, m) in &facts.metrics {
            if m.namespace.starts_with(AWS_NAMESPACE_PREFIX)
                || m.namespace == SELF_METRICS_NAMESPACE
            {
                continue;
            }
            if !written.metrics.contains(m) {
                problems.push(format!(
                    "{at}: {m} is not written by the collector with deploy/config/{deployment}"
                ));
            }
        }
    }

    // Self-metrics: the names exist on /metrics, and the CloudWatch agent declaration
    // selects them into that namespace with exactly the alarm's dimension set.
    for (at, m) in facts
        .metrics
        .iter()
        .filter(|(_, m)| m.namespace == SELF_METRICS_NAMESPACE)
    {
        let exposed = sidecar.self_metrics.lines().any(|l| {
            l.strip_prefix(m.name.as_str())
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        });
        if !exposed {
            problems.push(format!(
                "{at}: the collector's /metrics has no {} series",
                m.name
            ));
        }
        let declared = facts
            .agent_declarations
            .iter()
            .any(|(ns, selectors, sets)| {
                ns == &m.namespace
                    && selectors
                        .iter()
                        .any(|s| s.trim_start_matches('^').trim_end_matches('$') == m.name)
                    && sets.contains(&m.dimensions)
            });
        if !declared {
            problems.push(format!(
                "{at}: no CloudWatch agent metric_declaration produces {m}"
            ));
        }
        for dim in &m.dimensions {
            if !facts
                .scrape_configs
                .iter()
                .any(|c| c.contains(&format!("{dim}:")))
            {
                problems.push(format!(
                    "{at}: dimension {dim} is not a static scrape label"
                ));
            }
        }
    }
    // A cumulative series' first point only sets the EMF delta baseline: it is withheld,
    // never a failure. Any benign failure reason the seed traffic produces must be dropped
    // by the scrape config, or it would trip the export-failure alarm.
    for written in [&sidecar, &lambda] {
        for line in written
            .self_metrics
            .lines()
            .filter(|l| l.starts_with("aurastream_exporter_failed_items_total{"))
        {
            let reason = line
                .split("reason=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default();
            if !facts.scrape_configs.iter().all(|c| c.contains(reason)) {
                problems.push(format!(
                    "the seed traffic made the collector report `{line}`, which the CollectorExportFailuresAlarm would page on"
                ));
            }
        }
        let baselines = metric_sum(
            &written.self_metrics,
            "aurastream_exporter_withheld_items_total",
            &["reason=\"initial_cumulative_point\""],
        );
        if baselines == 0.0 {
            problems.push(
                "the seed's cumulative series set no baseline counted as withheld".to_string(),
            );
        }
    }

    // Every log group the collector wrote to is declared, with the same retention.
    for (deployment, written) in [("sidecar.yaml", &sidecar), ("lambda.yaml", &lambda)] {
        for (group, retention) in &written.log_groups {
            match facts.log_groups.get(group) {
                None => problems.push(format!("{deployment}: the collector writes to {group}, which no template declares")),
                Some(declared) if declared != retention => problems.push(format!(
                    "{deployment}: {group} is declared with retention {declared:?} days but the collector creates it with {retention:?}"
                )),
                Some(_) => {}
            }
        }
    }
    for category in [
        "security",
        "audit",
        "application",
        "performance",
        "business",
    ] {
        let group = format!("/aws/aurastream/{category}");
        if !sidecar.log_groups.contains_key(&group) {
            problems.push(format!("sidecar.yaml: nothing was written to {group}"));
        }
    }
    for (at, group) in &facts.log_sources {
        if !facts.log_groups.contains_key(group) {
            problems.push(format!("{at}: queries {group}, which no template declares"));
        }
    }

    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n\nwritten by the sidecar: {:#?}\nlog groups: {:?}",
        problems.len(),
        problems.join("\n  "),
        sidecar.metrics,
        sidecar.log_groups
    );
}
