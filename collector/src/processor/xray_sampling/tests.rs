//! Rule documents, matching, the sampling statistics and the tail buffer run as a task.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aurastream_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use prometheus_client::metrics::gauge::Gauge;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::rules::{DEFAULT_RULES, RuleSet};
use super::sampler::{RuleCounters, Sampler, trace_draw};
use super::tail::RULE_ATTRIBUTE;
use super::trace_view::TraceView;
use super::*;
use crate::model::ItemBudget;
use crate::model::SignalData;

// ---------------------------------------------------------------------------------------
// Building traces

fn trace_id(n: u64) -> Vec<u8> {
    let mut id = vec![0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    id[0] = 0x5f;
    id
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// A span of trace `trace`; `parent` 0 makes it a root.
fn span(trace: &[u8], id: u64, parent: u64, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            parent.to_be_bytes().to_vec()
        },
        name: format!("span-{id}"),
        attributes,
        ..Default::default()
    }
}

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "test".into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// A one-span trace: a request to `service` with `method` and `path`, and extra attributes.
fn request(n: u64, service: &str, method: &str, path: &str, extra: Vec<KeyValue>) -> ResourceSpans {
    let mut attributes = vec![kv("http.request.method", method), kv("url.path", path)];
    attributes.extend(extra);
    resource_spans(service, vec![span(&trace_id(n), 1, 0, attributes)])
}

fn counters() -> impl Fn(&str) -> RuleCounters {
    |_: &str| RuleCounters::default()
}

fn rule_names(set: &RuleSet) -> Vec<&str> {
    set.rules.iter().map(|r| r.name.as_str()).collect()
}

// ---------------------------------------------------------------------------------------
// Rule documents

/// The monitoring guide's `SAMPLING_RULES`, as written there.
const SEED_DOCUMENT: &str = r#"{
    "version": 2,
    "rules": [
        {
            "description": "Default sampling rule",
            "service_name": "*",
            "http_method": "*",
            "url_path": "*",
            "fixed_target": 1,
            "rate": 0.1
        },
        {
            "description": "High priority for errors",
            "service_name": "*",
            "http_method": "*",
            "url_path": "*",
            "fixed_target": 10,
            "rate": 1.0,
            "attributes": {
                "http.status_code": "4*"
            }
        },
        {
            "description": "Critical endpoints",
            "service_name": "aurastream-api",
            "http_method": "*",
            "url_path": "/analyze/*",
            "fixed_target": 5,
            "rate": 0.5
        }
    ]
}"#;

#[test]
fn builtin_rules_are_the_seed_document_with_its_default_last() {
    let as_json = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    assert_eq!(as_json(DEFAULT_RULES), as_json(SEED_DOCUMENT));
    let set = RuleSet::builtin();
    assert_eq!(
        rule_names(&set),
        [
            "High priority for errors",
            "Critical endpoints",
            "Default sampling rule"
        ]
    );
    let errors = &set.rules[0];
    assert_eq!((errors.fixed_target, errors.rate), (10, 1.0));
    assert_eq!(errors.attributes.len(), 1);
    let critical = &set.rules[1];
    assert_eq!((critical.fixed_target, critical.rate), (5, 0.5));
    assert!(set.rules[2].is_catch_all());
}

#[test]
fn xray_sdk_local_files_parse_in_both_versions() {
    let v2 = RuleSet::parse(
        r#"{"version": 2, "rules": [
            {"description": "Player moves", "host": "*.example.com", "http_method": "POST",
             "url_path": "/api/move/*", "fixed_target": 0, "rate": 0.05}],
            "default": {"fixed_target": 1, "rate": 0.1}}"#,
    )
    .unwrap();
    assert_eq!(rule_names(&v2), ["Player moves", "Default"]);
    assert!(v2.rules[0].host.matches("game.example.com"));
    assert!(v2.rules[1].is_catch_all());
    let v1 = RuleSet::parse(
        r#"{"version": 1, "rules": [
            {"service_name": "api", "http_method": "*", "url_path": "/health",
             "fixed_target": 0, "rate": 0.0}],
            "default": {"fixed_target": 1, "rate": 0.05}}"#,
    )
    .unwrap();
    assert_eq!(rule_names(&v1), ["rule-1", "Default"]);
}

const CENTRALIZED_RULE: &str = r#"{"RuleName": "NAME", "RuleARN":
    "arn:aws:xray:us-east-1:123456789012:sampling-rule/NAME", "ResourceARN": "*",
    "Priority": PRIO, "FixedRate": 0.05, "ReservoirSize": 1, "ServiceName": "SERVICE",
    "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*", "Version": 1,
    "Attributes": {}}"#;

fn centralized(name: &str, priority: u32, service: &str) -> String {
    CENTRALIZED_RULE
        .replace("NAME", name)
        .replace("PRIO", &priority.to_string())
        .replace("SERVICE", service)
}

#[test]
fn centralized_rules_parse_from_records_and_lists_in_priority_order() {
    let rules = [
        centralized("Default", 10000, "*"),
        centralized("api", 20, "api"),
        centralized("b-checkout", 10, "checkout"),
        centralized("a-checkout", 10, "checkout-v2"),
    ];
    let records: Vec<String> = rules
        .iter()
        .map(|r| format!(r#"{{"SamplingRule": {r}, "CreatedAt": 1.5e9, "ModifiedAt": 1.6e9}}"#))
        .collect();
    let from_records = RuleSet::parse(&format!(
        r#"{{"SamplingRuleRecords": [{}], "NextToken": null}}"#,
        records.join(",")
    ))
    .unwrap();
    let from_list = RuleSet::parse(&format!("[{}]", rules.join(","))).unwrap();
    for set in [from_records, from_list] {
        assert_eq!(
            rule_names(&set),
            ["a-checkout", "b-checkout", "api", "Default"]
        );
    }
}

#[test]
fn invalid_rule_documents_say_what_is_wrong() {
    let local = |rule: &str| format!(r#"{{"version": 2, "rules": [{rule}]}}"#);
    let cases: Vec<(String, &str)> = vec![
        (
            local(r#"{"description": "r", "fixed_target": 1, "rate": 1.5}"#),
            "rule `r`: rate 1.5 is outside [0, 1]",
        ),
        (
            local(r#"{"description": "r", "fixed_target": 1, "rate": -0.1}"#),
            "rate -0.1 is outside [0, 1]",
        ),
        (
            local(r#"{"description": "r", "fixed_target": -1, "rate": 0.1}"#),
            "rule `r`: fixed target -1 is negative",
        ),
        (
            r#"{"version": 3, "rules": [{"fixed_target": 1, "rate": 0.1}]}"#.into(),
            "unsupported local rules version 3",
        ),
        (
            local(r#"{"fixed_target": 1}"#),
            "missing field `rate` at line 1",
        ),
        (
            local(r#"{"fixed_target": 1, "rate": 0.1, "url": "/x"}"#),
            "unknown field `url`",
        ),
        (
            local(
                r#"{"description": "a", "fixed_target": 1, "rate": 0.1},
                   {"description": "a", "fixed_target": 1, "rate": 0.1}"#,
            ),
            "two rules are named `a`",
        ),
        (r#"{"version": 2, "rules": []}"#.into(), "holds no rules"),
        (r#"{"rulez": []}"#.into(), "not a sampling rule document"),
        ("{\"version\": 2,".into(), "not valid JSON"),
        (
            format!("[{}]", centralized("x", 0, "*")),
            "rule `x`: priority 0 is outside",
        ),
        (
            format!(
                "[{}]",
                centralized("x", 1, "*").replace("\"Version\": 1", "\"Version\": 2")
            ),
            "unsupported X-Ray SamplingRule version 2",
        ),
        (
            format!("[{}]", centralized("x", 1, "*").replace("0.05", "2")),
            "rule `x`: rate 2 is outside [0, 1]",
        ),
    ];
    for (text, expected) in cases {
        let err = RuleSet::parse(&text).expect_err(&text).to_string();
        assert!(
            err.contains(expected),
            "{text}\n  gave: {err}\n  wanted: {expected}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Matching

/// Which rule of `rules` decides `trace`, with every rule keeping all it matches.
fn matching_rule(rules: &str, trace: &[ResourceSpans]) -> Option<String> {
    let set = RuleSet::parse(rules).unwrap();
    let view = TraceView::new(trace);
    set.rules
        .iter()
        .find(|r| view.matches(r))
        .map(|r| r.name.clone())
}

#[test]
fn request_fields_come_from_the_root_span_under_old_and_new_conventions() {
    let rule = |field: &str, pattern: &str| {
        format!(
            r#"{{"version": 2, "rules": [{{"description": "r", "{field}": "{pattern}",
                "fixed_target": 0, "rate": 1}}]}}"#
        )
    };
    let root =
        |attrs: Vec<KeyValue>| vec![resource_spans("svc", vec![span(&trace_id(1), 1, 0, attrs)])];
    let cases: Vec<(&str, &str, Vec<KeyValue>, bool)> = vec![
        (
            "http_method",
            "GET",
            vec![kv("http.request.method", "get")],
            true,
        ),
        ("http_method", "GET", vec![kv("http.method", "GET")], true),
        ("http_method", "POST", vec![kv("http.method", "GET")], false),
        ("http_method", "GET", vec![], false),
        ("http_method", "*", vec![], true),
        (
            "url_path",
            "/analyze/*",
            vec![kv("url.path", "/analyze/text")],
            true,
        ),
        (
            "url_path",
            "/analyze/*",
            vec![kv("http.target", "/analyze/t?x=1")],
            true,
        ),
        (
            "url_path",
            "/analyze/t",
            vec![kv("http.target", "/analyze/t?x=1")],
            true,
        ),
        (
            "url_path",
            "/analyze/*",
            vec![kv("url.full", "https://api.example.com/analyze/x?q=1")],
            true,
        ),
        (
            "url_path",
            "/analyze/*",
            vec![kv("http.url", "http://h/other")],
            false,
        ),
        ("url_path", "/a?c", vec![kv("url.path", "/abc")], true),
        ("url_path", "/a?c", vec![kv("url.path", "/abbc")], false),
        (
            "host",
            "*.example.com",
            vec![kv("server.address", "api.example.com")],
            true,
        ),
        (
            "host",
            "api.example.com",
            vec![kv("http.host", "API.example.com:8443")],
            true,
        ),
        (
            "host",
            "api.example.com",
            vec![kv("net.host.name", "api.example.com")],
            true,
        ),
        (
            "host",
            "api.example.com",
            vec![kv("url.full", "https://api.example.com:443/x")],
            true,
        ),
        (
            "host",
            "api.example.com",
            vec![kv("server.address", "other")],
            false,
        ),
        ("service_name", "svc", vec![], true),
        ("service_name", "SV?", vec![], true),
        ("service_name", "aurastream-api", vec![], false),
    ];
    for (field, pattern, attrs, expected) in cases {
        let got = matching_rule(&rule(field, pattern), &root(attrs.clone())).is_some();
        assert_eq!(got, expected, "{field}={pattern} against {attrs:?}");
    }
}

#[test]
fn attribute_rules_look_at_every_span_and_both_status_code_names() {
    let seed = DEFAULT_RULES;
    let trace = |status: KeyValue| {
        let id = trace_id(7);
        vec![resource_spans(
            "aurastream-api",
            vec![
                span(
                    &id,
                    1,
                    0,
                    vec![kv("http.request.method", "POST"), kv("url.path", "/x")],
                ),
                span(&id, 2, 1, vec![status]),
            ],
        )]
    };
    let cases = [
        (
            kv_int("http.response.status_code", 404),
            "High priority for errors",
        ),
        (kv_int("http.status_code", 429), "High priority for errors"),
        (kv("http.status_code", "403"), "High priority for errors"),
        (
            kv_int("http.response.status_code", 500),
            "Default sampling rule",
        ),
        (
            kv_int("http.response.status_code", 200),
            "Default sampling rule",
        ),
        (kv_int("rpc.grpc.status_code", 4), "Default sampling rule"),
    ];
    for (status, expected) in cases {
        let label = format!("{status:?}");
        assert_eq!(
            matching_rule(seed, &trace(status)).as_deref(),
            Some(expected),
            "{label}"
        );
    }
    // Every attribute of a rule must match, each on some span.
    let both = r#"{"version": 2, "rules": [{"description": "both", "fixed_target": 0,
        "rate": 1, "attributes": {"http.status_code": "4*", "tenant": "gold"}}]}"#;
    let id = trace_id(8);
    let spans = |tenant: &str| {
        vec![resource_spans(
            "s",
            vec![
                span(&id, 1, 0, vec![kv("tenant", tenant)]),
                span(&id, 2, 1, vec![kv_int("http.response.status_code", 404)]),
            ],
        )]
    };
    assert_eq!(matching_rule(both, &spans("gold")).as_deref(), Some("both"));
    assert_eq!(matching_rule(both, &spans("silver")), None);
}

#[test]
fn seed_rules_pick_critical_endpoints_by_service_and_path() {
    let cases = [
        ("aurastream-api", "/analyze/sentiment", "Critical endpoints"),
        ("AuraStream-API", "/Analyze/sentiment", "Critical endpoints"),
        ("aurastream-api", "/health", "Default sampling rule"),
        (
            "aurastream-worker",
            "/analyze/sentiment",
            "Default sampling rule",
        ),
    ];
    for (service, path, expected) in cases {
        let trace = vec![request(1, service, "GET", path, vec![])];
        assert_eq!(
            matching_rule(DEFAULT_RULES, &trace).as_deref(),
            Some(expected),
            "{service} {path}"
        );
    }
}

#[test]
fn a_catch_all_is_evaluated_last_wherever_it_is_written() {
    let rules = r#"{"version": 2, "rules": [
        {"description": "everything", "service_name": "*", "fixed_target": 0, "rate": 0},
        {"description": "api", "service_name": "api", "fixed_target": 0, "rate": 1}]}"#;
    let api = vec![request(1, "api", "GET", "/", vec![])];
    let other = vec![request(2, "other", "GET", "/", vec![])];
    assert_eq!(matching_rule(rules, &api).as_deref(), Some("api"));
    assert_eq!(matching_rule(rules, &other).as_deref(), Some("everything"));
}

#[test]
fn centralized_rules_match_service_type_and_resource_arn() {
    let rule = centralized("lambda", 1, "*").replace(
        "\"ServiceType\": \"*\"",
        "\"ServiceType\": \"AWS::Lambda::Function\"",
    );
    let rules = format!("[{rule}, {}]", centralized("Default", 10000, "*"));
    let mut lambda = request(1, "fn", "GET", "/", vec![]);
    if let Some(r) = lambda.resource.as_mut() {
        r.attributes.push(kv("cloud.platform", "aws_lambda"));
    }
    let ec2 = request(2, "svc", "GET", "/", vec![]);
    assert_eq!(matching_rule(&rules, &[lambda]).as_deref(), Some("lambda"));
    assert_eq!(matching_rule(&rules, &[ec2]).as_deref(), Some("Default"));
}

// ---------------------------------------------------------------------------------------
// Decisions

#[test]
fn the_first_matching_rule_decides_but_attribute_rules_get_a_second_turn() {
    // A cheap rule ahead of the error rule: errors still kept, other traffic not.
    let rules = format!(
        "[{}, {}, {}]",
        centralized("cheap-api", 1, "api")
            .replace("\"FixedRate\": 0.05", "\"FixedRate\": 0")
            .replace("\"ReservoirSize\": 1", "\"ReservoirSize\": 0"),
        centralized("errors", 5, "*")
            .replace("\"FixedRate\": 0.05", "\"FixedRate\": 1")
            .replace("\"ReservoirSize\": 1", "\"ReservoirSize\": 0")
            .replace(
                "\"Attributes\": {}",
                "\"Attributes\": {\"http.status_code\": \"5*\"}"
            ),
        centralized("Default", 10000, "*").replace("\"FixedRate\": 0.05", "\"FixedRate\": 1"),
    );
    let mut sampler = Sampler::new(RuleSet::parse(&rules).unwrap(), &counters());
    let names = |s: &Sampler, i: Option<usize>| i.and_then(|i| s.rule(i)).map(|r| r.name.clone());
    let ok = vec![request(
        1,
        "api",
        "GET",
        "/",
        vec![kv_int("http.response.status_code", 200)],
    )];
    let failed = vec![request(
        2,
        "api",
        "GET",
        "/",
        vec![kv_int("http.response.status_code", 503)],
    )];
    let d = sampler.decide(&TraceView::new(&ok), &trace_id(1), 0);
    assert_eq!(
        (d.keep, names(&sampler, d.rule).as_deref()),
        (false, Some("cheap-api"))
    );
    let d = sampler.decide(&TraceView::new(&failed), &trace_id(2), 0);
    assert_eq!(
        (d.keep, names(&sampler, d.rule).as_deref()),
        (true, Some("errors"))
    );
    // The catch-all (rate 1) never gets a second turn: ordinary traffic stays at its rule.
    let d = sampler.decide(&TraceView::new(&ok), &trace_id(3), 0);
    assert!(!d.keep);
}

#[test]
fn the_rate_draw_is_a_uniform_function_of_the_trace_id() {
    let mut rng = StdRng::seed_from_u64(7);
    let draws: Vec<f64> = (0..20_000)
        .map(|_| {
            let id: [u8; 16] = rng.random();
            trace_draw(&id)
        })
        .collect();
    assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    let below_tenth = draws.iter().filter(|d| **d < 0.1).count();
    assert!((1_800..2_200).contains(&below_tenth), "{below_tenth}");
    // Same id, same draw: two collectors seeing parts of one trace agree.
    assert_eq!(trace_draw(&trace_id(42)), trace_draw(&trace_id(42)));
    // Ids differing only in the X-Ray timestamp part still draw differently.
    let mut a = trace_id(42);
    a[1] = 1;
    assert_ne!(trace_draw(&a), trace_draw(&trace_id(42)));
}

#[test]
fn rate_only_rules_give_the_same_decision_in_every_instance() {
    let rules =
        r#"{"version": 2, "rules": [{"description": "r", "fixed_target": 0, "rate": 0.3}]}"#;
    let mut a = Sampler::new(RuleSet::parse(rules).unwrap(), &counters());
    let mut b = Sampler::new(RuleSet::parse(rules).unwrap(), &counters());
    let mut kept = 0;
    for n in 0..2_000 {
        let trace = vec![request(n, "s", "GET", "/", vec![])];
        let view = TraceView::new(&trace);
        let da = a.decide(&view, &trace_id(n), n / 10);
        let db = b.decide(&view, &trace_id(n), n / 3);
        assert_eq!(da.keep, db.keep, "trace {n}");
        kept += usize::from(da.keep);
    }
    assert!((540..660).contains(&kept), "{kept}");
}

/// `fixed_target` a second, then `rate` of the rest, per rule, over ten simulated minutes
/// of traffic with a seeded generator.
#[test]
fn seed_rules_keep_fixed_target_per_second_plus_rate_of_the_rest() {
    let seconds: u64 = 600;
    let per_second = [("critical", 20u64), ("other", 30), ("errors", 10)];
    let registry: std::sync::Mutex<BTreeMap<String, RuleCounters>> = Default::default();
    let make = |name: &str| {
        let c = RuleCounters::default();
        registry.lock().unwrap().insert(name.to_string(), c.clone());
        c
    };
    let mut sampler = Sampler::new(RuleSet::builtin(), &make);
    let mut rng = StdRng::seed_from_u64(20261127);
    let mut errors_kept = 0;
    for second in 0..seconds {
        for (kind, count) in per_second {
            for _ in 0..count {
                let id: [u8; 16] = rng.random();
                let n: u64 = rng.random();
                let trace = match kind {
                    "critical" => request(n, "aurastream-api", "POST", "/analyze/text", vec![]),
                    "other" => request(n, "aurastream-api", "GET", "/health", vec![]),
                    _ => request(
                        n,
                        "aurastream-api",
                        "POST",
                        "/analyze/text",
                        vec![kv_int("http.response.status_code", 404)],
                    ),
                };
                let trace = [trace];
                let d = sampler.decide(&TraceView::new(&trace), &id, second);
                if kind == "errors" {
                    assert!(d.keep, "a 4xx trace was dropped");
                    errors_kept += 1;
                }
            }
        }
    }
    assert_eq!(errors_kept, 10 * seconds);
    let registry = registry.lock().unwrap();
    let get = |name: &str| {
        let c = &registry[name];
        (c.kept.get(), c.borrowed.get(), c.dropped.get())
    };
    let check = |name: &str, matched: u64, fixed: u64, rate: f64| {
        let (kept, borrowed, dropped) = get(name);
        assert_eq!(
            kept + dropped,
            matched * seconds,
            "{name}: every trace decided once"
        );
        assert_eq!(
            borrowed,
            fixed * seconds,
            "{name}: the reservoir fills every second"
        );
        let rest = ((matched - fixed) * seconds) as f64;
        let expected = (fixed * seconds) as f64 + rate * rest;
        // Four standard deviations of the binomial part.
        let tolerance = 4.0 * (rest * rate * (1.0 - rate)).sqrt();
        assert!(
            (kept as f64 - expected).abs() <= tolerance,
            "{name}: kept {kept}, expected {expected} ± {tolerance}"
        );
    };
    check("High priority for errors", 10, 10, 1.0);
    check("Critical endpoints", 20, 5, 0.5);
    check("Default sampling rule", 30, 1, 0.1);
}

#[test]
fn the_reservoir_refills_each_second() {
    let rules = r#"{"version": 2, "rules": [{"description": "r", "fixed_target": 3, "rate": 0}]}"#;
    let mut sampler = Sampler::new(RuleSet::parse(rules).unwrap(), &counters());
    let trace = vec![request(1, "s", "GET", "/", vec![])];
    let view = TraceView::new(&trace);
    let kept_in = |sampler: &mut Sampler, second: u64| {
        (0..10)
            .filter(|n| sampler.decide(&view, &trace_id(*n), second).keep)
            .count()
    };
    assert_eq!(kept_in(&mut sampler, 0), 3);
    assert_eq!(kept_in(&mut sampler, 0), 0);
    assert_eq!(kept_in(&mut sampler, 1), 3);
    assert_eq!(kept_in(&mut sampler, 5), 3);
}

// ---------------------------------------------------------------------------------------
// The processor as a task

const KEEP_ALL: &str =
    r#"{"version": 2, "rules": [{"description": "all", "fixed_target": 0, "rate": 1}]}"#;
const DROP_ALL: &str =
    r#"{"version": 2, "rules": [{"description": "none", "fixed_target": 0, "rate": 0}]}"#;

struct Harness {
    tx: mpsc::Sender<Batch>,
    rx: mpsc::Receiver<Batch>,
    budget: ItemBudget,
    metrics: Arc<SelfMetrics>,
}

impl Harness {
    fn start(config: XRaySamplingConfig, rules: &str) -> Harness {
        Harness::with_budget(config, rules, 100_000)
    }

    /// A processor in a pipeline whose item budget is `capacity`.
    fn with_budget(config: XRaySamplingConfig, rules: &str, capacity: usize) -> Harness {
        let metrics = Arc::new(SelfMetrics::new());
        let rules = RuleSet::parse(rules).unwrap();
        let stamp = config.rules_file.as_deref().and_then(stamp);
        let p = XRaySamplingProcessor::with_rules(
            "xray_sampling",
            "traces",
            config,
            rules,
            stamp,
            metrics.clone(),
        );
        let (tx, in_rx) = mpsc::channel(64);
        let (out_tx, rx) = mpsc::channel(1024);
        tokio::spawn(Box::new(p).run(in_rx, out_tx));
        Harness {
            tx,
            rx,
            budget: ItemBudget::new(capacity, Gauge::default(), Gauge::default()),
            metrics,
        }
    }

    async fn send(&self, data: Vec<ResourceSpans>) {
        let data = SignalData::Traces(data);
        let n = data.item_count();
        let ticket = self.budget.try_admit(n).unwrap_or_else(|e| {
            panic!(
                "the pipeline refused {n} spans ({e:?}) with {} held",
                self.budget.held()
            )
        });
        self.tx.send(Batch { data, ticket }).await.unwrap();
        settle().await;
    }

    /// Every span released so far, with their tickets dropped (as an exporter would).
    fn take(&mut self) -> Vec<Span> {
        let mut spans = Vec::new();
        while let Ok(batch) = self.rx.try_recv() {
            assert_eq!(
                batch.ticket.items(),
                batch.item_count(),
                "spans travel with their ticket"
            );
            if let SignalData::Traces(rs) = batch.data {
                spans.extend(
                    rs.into_iter()
                        .flat_map(|r| r.scope_spans)
                        .flat_map(|s| s.spans),
                );
            }
        }
        spans
    }

    fn dropped(&self, reason: &str) -> u64 {
        self.metrics
            .pipeline_dropped("traces", "xray_sampling", reason)
            .get()
    }

    fn rule(&self, rule: &str, decision: RuleDecision) -> u64 {
        self.metrics
            .sampling_rule("xray_sampling", rule, decision)
            .get()
    }

    fn event(&self, event: &str) -> u64 {
        self.metrics
            .component_event("xray_sampling", Signal::Traces, event)
            .get()
    }
}

/// Lets the processor task take in what was sent, without moving the clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn config() -> XRaySamplingConfig {
    XRaySamplingConfig {
        decision_wait: Duration::from_secs(5),
        max_wait: Duration::from_secs(30),
        ..XRaySamplingConfig::default()
    }
}

fn rule_of(span: &Span) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == RULE_ATTRIBUTE)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

#[tokio::test(start_paused = true)]
async fn out_of_order_spans_wait_for_the_root_plus_decision_wait() {
    let mut h = Harness::start(config(), DEFAULT_RULES);
    let id = trace_id(1);
    let error = vec![kv_int("http.response.status_code", 404)];
    // Grandchild first, then child, then (3 s later) the root.
    h.send(vec![resource_spans(
        "aurastream-api",
        vec![span(&id, 3, 2, error)],
    )])
    .await;
    tokio::time::advance(Duration::from_secs(2)).await;
    h.send(vec![resource_spans(
        "aurastream-worker",
        vec![span(&id, 2, 1, vec![])],
    )])
    .await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let root = vec![
        kv("http.request.method", "POST"),
        kv("url.path", "/analyze/x"),
    ];
    h.send(vec![resource_spans(
        "aurastream-api",
        vec![span(&id, 1, 0, root)],
    )])
    .await;
    tokio::time::advance(Duration::from_millis(4_900)).await;
    settle().await;
    assert!(
        h.take().is_empty(),
        "held until decision_wait after the root"
    );
    tokio::time::advance(Duration::from_millis(200)).await;
    settle().await;
    let spans = h.take();
    assert_eq!(spans.len(), 3, "the whole trace leaves together");
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1);
    assert_eq!(
        rule_of(roots[0]).as_deref(),
        Some("High priority for errors")
    );
    assert!(
        spans
            .iter()
            .filter(|s| !s.parent_span_id.is_empty())
            .all(|s| rule_of(s).is_none())
    );
    assert_eq!(h.rule("High priority for errors", RuleDecision::Kept), 1);
    assert_eq!(
        h.rule("High priority for errors", RuleDecision::Borrowed),
        1
    );
    assert_eq!(h.budget.held(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_trace_without_root_is_decided_at_max_wait() {
    let mut h = Harness::start(config(), KEEP_ALL);
    let id = trace_id(2);
    h.send(vec![resource_spans("s", vec![span(&id, 2, 1, vec![])])])
        .await;
    tokio::time::advance(Duration::from_secs(29)).await;
    settle().await;
    assert!(h.take().is_empty());
    assert_eq!(
        h.budget.held(),
        1,
        "held spans count against the pipeline's budget"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(h.take().len(), 1);
    // Kept by rule, but there is no root span to record the rule on.
    assert_eq!(h.rule("all", RuleDecision::Kept), 1);
}

#[tokio::test(start_paused = true)]
async fn late_spans_follow_the_cached_decision() {
    let rules = r#"{"version": 2, "rules": [
        {"description": "keep-a", "service_name": "a", "fixed_target": 0, "rate": 1},
        {"description": "drop-rest", "fixed_target": 0, "rate": 0}]}"#;
    let mut h = Harness::start(config(), rules);
    let (kept, dropped) = (trace_id(10), trace_id(11));
    h.send(vec![
        resource_spans("a", vec![span(&kept, 1, 0, vec![])]),
        resource_spans(
            "b",
            vec![span(&dropped, 1, 0, vec![]), span(&dropped, 2, 1, vec![])],
        ),
    ])
    .await;
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(h.take().len(), 1);
    assert_eq!(h.dropped("not_sampled"), 2);
    // Late children: forwarded at once, or dropped at once; nothing waits.
    h.send(vec![
        resource_spans("a", vec![span(&kept, 5, 1, vec![])]),
        resource_spans("b", vec![span(&dropped, 6, 1, vec![])]),
    ])
    .await;
    let late = h.take();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].trace_id, kept);
    assert_eq!(h.dropped("not_sampled"), 3);
    assert_eq!(h.rule("keep-a", RuleDecision::Kept), 1);
    assert_eq!(h.rule("drop-rest", RuleDecision::Dropped), 1);
    assert_eq!(h.budget.held(), 0);
}

#[tokio::test(start_paused = true)]
async fn eviction_decides_the_oldest_trace_early_and_counts_it() {
    let cfg = XRaySamplingConfig {
        num_traces: 3,
        ..config()
    };
    let rules = r#"{"version": 2, "rules": [
        {"description": "keep-even", "service_name": "even", "fixed_target": 0, "rate": 1},
        {"description": "drop-rest", "fixed_target": 0, "rate": 0}]}"#;
    let mut h = Harness::start(cfg, rules);
    for n in 0..10u64 {
        let service = if n % 2 == 0 { "even" } else { "odd" };
        // Two spans per trace, no root yet: they would wait for max_wait.
        let id = trace_id(100 + n);
        h.send(vec![resource_spans(
            service,
            vec![span(&id, 2, 1, vec![]), span(&id, 3, 1, vec![])],
        )])
        .await;
    }
    // 10 traces into room for 3: the 7 oldest were decided at once.
    assert_eq!(h.event("traces_evicted"), 7);
    let early = h.take();
    // Evicted: 0..=6, of which 0, 2, 4, 6 are kept.
    assert_eq!(early.len(), 4 * 2);
    assert_eq!(h.dropped("evicted"), 3 * 2);
    assert_eq!(h.budget.held(), 3 * 2, "the three newest still wait");
    tokio::time::advance(Duration::from_secs(30)).await;
    settle().await;
    assert_eq!(h.take().len(), 2, "trace 8 kept at max_wait");
    assert_eq!(h.dropped("not_sampled"), 2 * 2);
    assert_eq!(h.budget.held(), 0);
}

#[tokio::test(start_paused = true)]
async fn every_span_is_accounted_for() {
    let cfg = XRaySamplingConfig {
        num_traces: 50,
        ..config()
    };
    let mut h = Harness::start(cfg, DEFAULT_RULES);
    let mut rng = StdRng::seed_from_u64(99);
    let mut sent = 0u64;
    let mut released = 0u64;
    for _round in 0..40 {
        let mut data = Vec::new();
        for _ in 0..10 {
            let n = rng.random_range(0..300u64);
            let id = trace_id(n);
            let span_id = rng.random_range(1..6u64);
            let parent = if span_id == 1 { 0 } else { 1 };
            let mut attrs = vec![kv("url.path", "/analyze/x")];
            if rng.random_bool(0.1) {
                attrs.push(kv_int("http.response.status_code", 404));
            }
            data.push(resource_spans(
                "aurastream-api",
                vec![span(&id, span_id, parent, attrs)],
            ));
            sent += 1;
        }
        h.send(data).await;
        released += h.take().len() as u64;
        tokio::time::advance(Duration::from_millis(rng.random_range(0..1500))).await;
        settle().await;
    }
    let Harness {
        tx,
        mut rx,
        budget,
        metrics,
    } = h;
    drop(tx);
    while let Some(batch) = rx.recv().await {
        released += batch.item_count() as u64;
    }
    let dropped = ["not_sampled", "evicted", "shutdown"]
        .iter()
        .map(|r| metrics.pipeline_dropped("traces", "xray_sampling", r).get())
        .sum::<u64>();
    assert_eq!(
        released + dropped,
        sent,
        "kept {released} + dropped {dropped}"
    );
    assert!(released > 0 && dropped > 0);
    assert_eq!(budget.held(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_sampled_root_is_kept_when_configured() {
    let cfg = XRaySamplingConfig {
        honor_upstream_sampled: true,
        ..config()
    };
    let mut h = Harness::start(cfg, DROP_ALL);
    let (sampled, unsampled) = (trace_id(1), trace_id(2));
    let mut root = span(&sampled, 1, 0, vec![]);
    root.flags = 0x301;
    let mut other = span(&unsampled, 1, 0, vec![]);
    other.flags = 0x300;
    h.send(vec![resource_spans("s", vec![root, other])]).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    let spans = h.take();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].trace_id, sampled);
    assert_eq!(h.event("upstream_sampled"), 1);
    assert_eq!(h.dropped("not_sampled"), 1);
}

#[tokio::test(start_paused = true)]
async fn closing_the_input_decides_what_is_waiting() {
    let mut h = Harness::start(config(), KEEP_ALL);
    h.send(vec![resource_spans(
        "s",
        vec![span(&trace_id(1), 2, 1, vec![])],
    )])
    .await;
    let Harness { tx, ref mut rx, .. } = h;
    drop(tx);
    assert_eq!(rx.recv().await.map(|b| b.item_count()), Some(1));
    assert!(rx.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_rules_file_is_reloaded_on_change_and_a_bad_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.json");
    std::fs::write(&path, DROP_ALL).unwrap();
    let cfg = XRaySamplingConfig {
        rules_file: Some(path.clone()),
        rules_poll_interval: Duration::from_secs(1),
        decision_wait: Duration::ZERO,
        ..config()
    };
    let mut h = Harness::start(cfg, DROP_ALL);
    let root = |n: u64| vec![resource_spans("s", vec![span(&trace_id(n), 1, 0, vec![])])];
    h.send(root(1)).await;
    tokio::time::advance(Duration::from_millis(10)).await;
    settle().await;
    assert!(h.take().is_empty());

    std::fs::write(&path, format!("{KEEP_ALL}\n")).unwrap();
    tokio::time::advance(Duration::from_millis(1_100)).await;
    settle().await;
    assert_eq!(h.event("rules_reloaded"), 1);
    h.send(root(2)).await;
    tokio::time::advance(Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(h.take().len(), 1, "new rules in force");

    std::fs::write(
        &path,
        r#"{"version": 2, "rules": [{"fixed_target": 1, "rate": 7}]}"#,
    )
    .unwrap();
    tokio::time::advance(Duration::from_millis(1_100)).await;
    settle().await;
    assert_eq!(h.event("rules_rejected"), 1);
    tokio::time::advance(Duration::from_millis(3_000)).await;
    settle().await;
    assert_eq!(h.event("rules_rejected"), 1, "a bad file is reported once");
    h.send(root(3)).await;
    tokio::time::advance(Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(h.take().len(), 1, "the previous rules stay in force");
}

/// Real time: the signal arrives through tokio's signal driver.
#[cfg(unix)]
#[tokio::test]
async fn sighup_rereads_the_rules_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.json");
    std::fs::write(&path, KEEP_ALL).unwrap();
    let cfg = XRaySamplingConfig {
        rules_file: Some(path.clone()),
        rules_poll_interval: Duration::from_secs(3600),
        decision_wait: Duration::ZERO,
        ..config()
    };
    // Started with other rules than the file's, but with the file's stamp: polling sees
    // no change, so only the signal can bring the file's rules in.
    let mut h = Harness::start(cfg, DROP_ALL);
    settle().await;
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -HUP {}", std::process::id())])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..500 {
        if h.event("rules_reloaded") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.event("rules_reloaded"), 1);
    h.send(vec![resource_spans(
        "s",
        vec![span(&trace_id(1), 1, 0, vec![])],
    )])
    .await;
    let batch = tokio::time::timeout(Duration::from_secs(5), h.rx.recv()).await;
    assert_eq!(batch.ok().flatten().map(|b| b.item_count()), Some(1));
}

// ---------------------------------------------------------------------------------------
// Configuration

fn load(yaml: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
    crate::config::load_sources(
        &[crate::config::ConfigSource {
            name: "test.yaml".into(),
            text: yaml.into(),
        }],
        |_| None,
    )
}

const PIPELINES: &str = r#"
receivers: { otlp: { protocols: { grpc: } } }
exporters: { debug: }
service:
  pipelines:
    traces: { receivers: [otlp], processors: [xray_sampling], exporters: [debug] }
"#;

#[test]
fn per_trace_limits_default_and_must_be_positive() {
    let defaults = XRaySamplingConfig::default();
    assert_eq!(
        (defaults.max_spans_per_trace, defaults.max_bytes_per_trace),
        (10_000, 8 * 1024 * 1024)
    );
    let err = load(&format!(
        "processors: {{ xray_sampling: {{ max_spans_per_trace: 0 }} }}\n{PIPELINES}"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("max_spans_per_trace"), "{err}");
    let config = load(&format!(
        "processors: {{ xray_sampling: {{ max_spans_per_trace: 500, max_bytes_per_trace: 65536 }} }}\n{PIPELINES}"
    ))
    .unwrap();
    let crate::config::ProcessorConfig::XRaySampling(c) = &config.processors.0["xray_sampling"]
    else {
        panic!("not an xray_sampling config");
    };
    assert_eq!(
        (c.max_spans_per_trace, c.max_bytes_per_trace),
        (500, 65_536)
    );
}

#[test]
fn config_defaults_and_validation() {
    let config = load(&format!("processors: {{ xray_sampling: }}\n{PIPELINES}")).unwrap();
    assert_eq!(
        config.processors.0["xray_sampling"],
        crate::config::ProcessorConfig::XRaySampling(XRaySamplingConfig::default())
    );
    let logs = PIPELINES.replace("traces:", "logs:");
    let err = load(&format!("processors: {{ xray_sampling: }}\n{logs}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not process logs"), "{err}");
    let err = load(&format!(
        "processors: {{ xray_sampling: {{ num_traces: 0 }} }}\n{PIPELINES}"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("processors.xray_sampling") && err.contains("num_traces"),
        "{err}"
    );
    let err = load(&format!(
        "processors: {{ xray_sampling: {{ rules_file: /nonexistent/rules.json }} }}\n{PIPELINES}"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("cannot read sampling rules file /nonexistent/rules.json"),
        "{err}"
    );
}

#[test]
fn rule_counters_appear_on_metrics() {
    let metrics = Arc::new(SelfMetrics::new());
    let p = XRaySamplingProcessor::new("xray_sampling", "traces", config(), metrics.clone());
    assert!(p.is_ok());
    let text = metrics.encode();
    for rule in [
        "High priority for errors",
        "Critical endpoints",
        "Default sampling rule",
    ] {
        for what in ["kept", "dropped", "borrowed", "boosted"] {
            let needle = format!("rule=\"{rule}\",decision=\"{what}\"");
            assert!(text.contains(&needle), "{needle} missing from\n{text}");
        }
    }
}

/// The whole pipeline, built from YAML: spans in through a receiver's consumer, sampled,
/// and written by the file exporter with the deciding rule on the root span.
#[tokio::test]
async fn a_built_pipeline_samples_with_the_seed_rules() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("traces.jsonl");
    let yaml = format!(
        r#"
receivers: {{ otlp: {{ protocols: {{ grpc: }} }} }}
processors: {{ xray_sampling: {{ decision_wait: 0s }} }}
exporters: {{ file: {{ path: "{}" }} }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [xray_sampling], exporters: [file] }}
"#,
        out.display()
    );
    let config = load(&yaml).unwrap();
    let metrics = Arc::new(SelfMetrics::new());
    let health = crate::telemetry::health::HealthRegistry::default();
    let mut pipelines = crate::topology::build::build(
        &config,
        &metrics,
        &health,
        &crate::component::auth::Authenticators::default(),
    )
    .unwrap();
    let consumer = pipelines
        .consumers
        .remove(&("otlp".to_string(), Signal::Traces))
        .unwrap();
    let id = trace_id(77);
    let spans = vec![
        span(
            &id,
            1,
            0,
            vec![
                kv("http.request.method", "GET"),
                kv("url.path", "/analyze/x"),
            ],
        ),
        span(&id, 2, 1, vec![kv_int("http.response.status_code", 404)]),
    ];
    consumer
        .try_consume(SignalData::Traces(vec![resource_spans(
            "aurastream-api",
            spans,
        )]))
        .unwrap();
    drop(consumer);
    drop(pipelines.consumers);
    while pipelines.tasks.join_next().await.is_some() {}
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains(RULE_ATTRIBUTE), "{written}");
    assert!(written.contains("High priority for errors"), "{written}");
    let kept = metrics.sampling_rule(
        "xray_sampling",
        "High priority for errors",
        RuleDecision::Kept,
    );
    assert_eq!(kept.get(), 1);
}

// ---------------------------------------------------------------------------------------
// Memory: one resource per request, bytes held

/// The request of issue 14: a large resource attribute and spans on thousands of traces.
fn amplifying_request(attribute_bytes: usize, traces: u64) -> ResourceSpans {
    let mut rs = resource_spans(
        "aurastream-api",
        (0..traces)
            .map(|n| span(&trace_id(1_000_000 + n), 1, 0, vec![]))
            .collect(),
    );
    if let Some(r) = rs.resource.as_mut() {
        r.attributes.push(kv("big", &"x".repeat(attribute_bytes)));
    }
    rs
}

fn tail_buffer(limits: tail::TailLimits, rules: &str) -> (tail::TailBuffer, tail::TailCounters) {
    let tail_counters = tail::TailCounters::default();
    let sampler = Sampler::new(RuleSet::parse(rules).unwrap(), &counters());
    let buffer = tail::TailBuffer::new(
        limits,
        sampler,
        tail_counters.clone(),
        tokio::time::Instant::now(),
    );
    (buffer, tail_counters)
}

fn limits() -> tail::TailLimits {
    let c = config();
    tail::TailLimits {
        decision_wait: c.decision_wait,
        max_wait: c.max_wait,
        num_traces: c.num_traces,
        decision_cache_size: c.decision_cache_size,
        honor_upstream_sampled: false,
        max_spans_per_trace: c.max_spans_per_trace,
        max_bytes_per_trace: c.max_bytes_per_trace,
    }
}

/// Issue 14's amplification: a 0.5 MiB resource attribute and 2,000 spans on distinct
/// traces used to be copied once per trace (1 GB held for a 0.6 MiB request). The buffer
/// now holds the resource once and says so in `held_bytes`; what it releases carries one
/// copy of the resource per batch, not one per trace.
#[tokio::test(start_paused = true)]
async fn one_request_holds_its_resource_once_however_many_traces_it_feeds() {
    const ATTRIBUTE: usize = 512 * 1024;
    const TRACES: u64 = 2_000;
    let request = amplifying_request(ATTRIBUTE, TRACES);
    let wire = prost::Message::encoded_len(&request);
    let (mut buffer, counters) = tail_buffer(limits(), KEEP_ALL);
    let budget = ItemBudget::new(100_000, Gauge::default(), Gauge::default());
    let data = SignalData::Traces(vec![request]);
    let ticket = budget.try_admit(data.item_count()).unwrap();
    let mut out = tail::Released::default();
    let now = tokio::time::Instant::now();
    assert!(buffer.ingest(Batch { data, ticket }, now, &mut out).is_ok());
    assert!(out.into_batch().is_none(), "everything waits");
    let held = buffer.held_bytes();
    assert_eq!(buffer.held_spans(), TRACES as usize);
    // Once the resource plus a bounded amount per trace (a copy per trace was 1 GB).
    assert!(
        held > ATTRIBUTE && held < ATTRIBUTE + TRACES as usize * 1_024,
        "{held} bytes held for a request of {wire} bytes on the wire"
    );
    assert_eq!(
        counters.held_bytes.get() as usize,
        held,
        "the gauge is the account"
    );

    let mut out = tail::Released::default();
    buffer.expire(now + Duration::from_secs(5), &mut out);
    let batch = out.into_batch().expect("every trace is kept");
    let SignalData::Traces(rs) = &batch.data else {
        panic!("not traces");
    };
    assert_eq!(
        rs.len(),
        1,
        "one resource for the 2,000 traces of one request"
    );
    assert_eq!(batch.item_count(), TRACES as usize);
    let big = rs[0]
        .resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "big"));
    assert!(big.is_some(), "the resource travels with its spans");
    let after = buffer.held_bytes();
    assert!(
        after < TRACES as usize * 200,
        "only the remembered decisions are left: {after} bytes"
    );
}

/// Spans read back from the buffer are the spans that went in, field for field.
#[tokio::test(start_paused = true)]
async fn buffered_spans_come_back_unchanged() {
    let mut h = Harness::start(config(), KEEP_ALL);
    let id = trace_id(5);
    let mut child = span(
        &id,
        2,
        1,
        vec![kv("db.system", "postgresql"), kv_int("n", 7)],
    );
    child
        .events
        .push(aurastream_proto::otlp::trace::span::Event {
            name: "retry".into(),
            time_unix_nano: 42,
            ..Default::default()
        });
    child.status = Some(aurastream_proto::otlp::trace::Status {
        message: "boom".into(),
        code: 2,
    });
    let root = span(&id, 1, 0, vec![kv("url.path", "/x")]);
    h.send(vec![resource_spans("s", vec![child.clone()])]).await;
    h.send(vec![resource_spans("s", vec![root])]).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    let spans = h.take();
    assert_eq!(spans.len(), 2);
    assert_eq!(
        spans.iter().find(|s| s.span_id == child.span_id),
        Some(&child)
    );
}

/// A span nested deeper than protobuf decoding allows (possible through OTLP/JSON, whose
/// parser allows more nesting) cannot be read back from the buffer: it is dropped with
/// reason `unreadable`, not lost silently, and the rest of its trace is decided as usual.
#[tokio::test(start_paused = true)]
async fn a_span_that_cannot_be_read_back_is_counted_as_unreadable() {
    let mut h = Harness::start(config(), KEEP_ALL);
    let id = trace_id(8);
    let mut value = AnyValue {
        value: Some(any_value::Value::IntValue(1)),
    };
    for _ in 0..120 {
        value = AnyValue {
            value: Some(any_value::Value::KvlistValue(
                aurastream_proto::otlp::common::KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(value),
                        ..Default::default()
                    }],
                },
            )),
        };
    }
    let deep = KeyValue {
        key: "deep".into(),
        value: Some(value),
        ..Default::default()
    };
    h.send(vec![
        resource_spans("s", vec![span(&id, 2, 1, vec![deep])]),
        resource_spans("t", vec![span(&id, 1, 0, vec![])]),
    ])
    .await;
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    let spans = h.take();
    assert_eq!(spans.len(), 1, "the readable root is kept");
    assert_eq!(h.dropped("unreadable"), 1);
    assert_eq!(h.budget.held(), 0);
}

// ---------------------------------------------------------------------------------------
// Fairness: per-trace limits

/// Issue 14's fairness case: one root-less trace of 200,000 spans sent alongside ordinary
/// traffic into a pipeline that holds 20,000 items. Without a per-trace limit it would hold
/// the whole budget until `max_wait` and every sender would be refused; with the default
/// limit it is decided at 10,000 spans, its later spans follow that decision at once, and
/// the ordinary traces keep being admitted, decided and released.
#[tokio::test(start_paused = true)]
async fn a_rootless_trace_at_its_span_limit_is_decided_and_the_pipeline_keeps_serving() {
    let rules = r#"{"version": 2, "rules": [
        {"description": "keep-normal", "service_name": "normal", "fixed_target": 0, "rate": 1},
        {"description": "drop-rest", "fixed_target": 0, "rate": 0}]}"#;
    let mut h = Harness::with_budget(config(), rules, 20_000);
    let big = trace_id(999_999);
    let mut kept = 0;
    for request in 0..200u64 {
        let spans = (0..1_000u64)
            .map(|n| span(&big, 2 + request * 1_000 + n, 1, vec![]))
            .collect();
        let normal = span(&trace_id(request), 1, 0, vec![kv("url.path", "/x")]);
        h.send(vec![
            resource_spans("big", spans),
            resource_spans("normal", vec![normal]),
        ])
        .await;
        tokio::time::advance(Duration::from_millis(100)).await;
        settle().await;
        kept += h.take().len();
        assert!(
            h.budget.held() <= 10_000 + 1_000 + 60,
            "request {request}: {} items held",
            h.budget.held()
        );
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    kept += h.take().len();
    assert_eq!(kept, 200, "every ordinary trace was decided and released");
    assert_eq!(h.event("traces_limited/spans"), 1);
    assert_eq!(
        h.dropped("trace_limit"),
        10_000,
        "dropped when decided at its limit"
    );
    assert_eq!(
        h.dropped("not_sampled"),
        190_000,
        "the rest followed the decision"
    );
    assert_eq!(h.budget.held(), 0);
}

/// A trace kept at its limit forwards its later spans at once instead of holding them.
#[tokio::test(start_paused = true)]
async fn a_kept_trace_at_its_byte_limit_forwards_later_spans_at_once() {
    let cfg = XRaySamplingConfig {
        max_bytes_per_trace: 4_096,
        ..config()
    };
    let mut h = Harness::start(cfg, KEEP_ALL);
    let id = trace_id(3);
    let large = |n: u64| span(&id, n, 1, vec![kv("sql", &"s".repeat(1_000))]);
    h.send(vec![resource_spans("s", vec![large(2), large(3)])])
        .await;
    assert!(h.take().is_empty(), "under the limit: waits");
    h.send(vec![resource_spans(
        "s",
        vec![large(4), large(5), large(6)],
    )])
    .await;
    assert_eq!(h.take().len(), 5, "decided at the limit, kept");
    assert_eq!(h.event("traces_limited/bytes"), 1);
    h.send(vec![resource_spans("s", vec![large(7)])]).await;
    assert_eq!(h.take().len(), 1, "a later span follows at once");
    assert_eq!(h.budget.held(), 0);
}

// ---------------------------------------------------------------------------------------
// Adaptive sampling

const BOOSTED: &str = r#"{"version": 2, "rules": [{"description": "api", "fixed_target": 0,
    "rate": 0.1, "sampling_rate_boost": {"max_rate": 0.6, "cooldown_window_minutes": 5}}]}"#;

/// A one-span trace of the `api` rule, failed (500) or not.
fn status_trace(n: u64, status: i64) -> ResourceSpans {
    resource_spans(
        "aurastream-api",
        vec![span(
            &trace_id(n),
            1,
            0,
            vec![kv_int("http.response.status_code", status)],
        )],
    )
}

/// Sends `per_second` traces each second for `seconds` seconds (every `fault_every`-th
/// failed, 0 = none), numbered from `*next`; lets the last ones be decided. The trace ids
/// sent and the trace ids released.
async fn traffic(
    h: &mut Harness,
    next: &mut u64,
    seconds: u64,
    per_second: u64,
    fault_every: u64,
) -> (Vec<Vec<u8>>, BTreeSet<Vec<u8>>) {
    let mut sent = Vec::new();
    let mut kept = BTreeSet::new();
    for _ in 0..seconds {
        let mut data = Vec::new();
        for _ in 0..per_second {
            let failed = fault_every > 0 && next.is_multiple_of(fault_every);
            data.push(status_trace(*next, if failed { 503 } else { 200 }));
            sent.push(trace_id(*next));
            *next += 1;
        }
        h.send(data).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        kept.extend(h.take().into_iter().map(|s| s.trace_id));
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    kept.extend(h.take().into_iter().map(|s| s.trace_id));
    (sent, kept)
}

/// The traces a rate keeps, by the trace-id draw.
fn kept_at(rate: f64, sent: &[Vec<u8>]) -> BTreeSet<Vec<u8>> {
    sent.iter()
        .filter(|id| trace_draw(id) < rate)
        .cloned()
        .collect()
}

/// Issue 18's adaptive sampling in the tail sampler, on tokio's paused clock: a burst of 5xx
/// traces raises the rule's kept share to its `MaxRate` for a minute, faults that go on
/// within the cooldown do not raise it again, and after the cooldown a new burst does.
#[tokio::test(start_paused = true)]
async fn a_burst_of_faults_boosts_the_rule_to_max_rate_until_the_boost_ends() {
    let cfg = XRaySamplingConfig {
        decision_wait: Duration::from_secs(1),
        max_wait: Duration::from_secs(30),
        ..XRaySamplingConfig::default()
    };
    let mut h = Harness::start(cfg, BOOSTED);
    let mut next = 0;
    // A minute of healthy traffic: the base rate.
    let (sent, kept) = traffic(&mut h, &mut next, 60, 20, 0).await;
    assert_eq!(kept, kept_at(0.1, &sent), "healthy: the base rate");
    assert_eq!(h.rule("api", RuleDecision::Boosted), 0);
    // Faults start: half of the traces fail. The fifth failure of the window is a spike.
    let (_, _) = traffic(&mut h, &mut next, 1, 20, 2).await;
    assert_eq!(
        h.rule("api", RuleDecision::Boosted),
        1,
        "the burst boosts the rule"
    );
    // Boosted: every trace of the rule, failed or not, is kept at MaxRate.
    let (sent, kept) = traffic(&mut h, &mut next, 40, 20, 2).await;
    assert_eq!(kept, kept_at(0.6, &sent), "boosted: MaxRate");
    let share = kept.len() as f64 / sent.len() as f64;
    assert!((0.5..0.7).contains(&share), "kept share {share}");
    // The boost lasts a minute; the faults go on, but within the cooldown nothing boosts.
    tokio::time::advance(Duration::from_secs(20)).await;
    settle().await;
    h.take();
    let (sent, kept) = traffic(&mut h, &mut next, 60, 20, 2).await;
    assert_eq!(kept, kept_at(0.1, &sent), "after the boost: the base rate");
    assert_eq!(
        h.rule("api", RuleDecision::Boosted),
        1,
        "no second boost within the cooldown"
    );
    // Healthy again until the cooldown (5 minutes from the boost) is long over.
    let (sent, kept) = traffic(&mut h, &mut next, 200, 5, 0).await;
    assert_eq!(kept, kept_at(0.1, &sent));
    // A new burst after the cooldown boosts again.
    traffic(&mut h, &mut next, 2, 20, 2).await;
    assert_eq!(
        h.rule("api", RuleDecision::Boosted),
        2,
        "a new burst after the cooldown"
    );
    let (sent, kept) = traffic(&mut h, &mut next, 20, 20, 2).await;
    assert_eq!(kept, kept_at(0.6, &sent));
}

/// Steady faults are the rule's usual share, not a spike: no boost.
#[tokio::test(start_paused = true)]
async fn a_steady_fault_share_does_not_boost() {
    let cfg = XRaySamplingConfig {
        decision_wait: Duration::from_secs(1),
        ..config()
    };
    let mut h = Harness::start(cfg, BOOSTED);
    let mut next = 1;
    // One failure in ten from the start: the first window (no history yet) may boost once,
    // after which the same share is the usual one.
    traffic(&mut h, &mut next, 400, 10, 10).await;
    assert!(h.rule("api", RuleDecision::Boosted) <= 1);
    let before = h.rule("api", RuleDecision::Boosted);
    let (sent, kept) = traffic(&mut h, &mut next, 400, 10, 10).await;
    assert_eq!(
        h.rule("api", RuleDecision::Boosted),
        before,
        "a steady share is no spike"
    );
    assert_eq!(kept, kept_at(0.1, &sent));
}

#[test]
fn sampling_rate_boost_is_read_from_both_rule_shapes_and_checked() {
    let set = RuleSet::parse(BOOSTED).unwrap();
    assert_eq!(
        set.rules[0].boost,
        Some(rules::Boost {
            max_rate: 0.6,
            cooldown_seconds: 300
        })
    );
    let xray = r#"[{"RuleName": "api", "Priority": 1, "ReservoirSize": 0, "FixedRate": 0.05,
        "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": "*",
        "URLPath": "*", "ResourceARN": "*", "Version": 1,
        "SamplingRateBoost": {"MaxRate": 0.25, "CooldownWindowMinutes": 1}}]"#;
    let set = RuleSet::parse(xray).unwrap();
    assert_eq!(set.rules[0].boost.map(|b| b.cooldown_seconds), Some(60));
    let err = RuleSet::parse(&BOOSTED.replace("0.6", "1.5"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("MaxRate 1.5"), "{err}");
    let err = RuleSet::parse(&BOOSTED.replace(
        "\"cooldown_window_minutes\": 5",
        "\"cooldown_window_minutes\": -1",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("CooldownWindowMinutes -1"), "{err}");
}
