use serde_json::json;

use super::*;
use crate::model::ids::hex;
use aurastream_proto::otlp::trace::Span;

fn translator() -> Translator {
    Translator::new(
        &FunctionInfo {
            name: "sync-handler".into(),
            version: "7".into(),
            region: "eu-west-1".into(),
        },
        "AuraStream/Lambda",
    )
}

fn event(time: &str, kind: &str, record: serde_json::Value) -> TelemetryEvent {
    TelemetryEvent {
        time: time.into(),
        kind: kind.into(),
        record,
    }
}

fn start(id: &str, time: &str) -> TelemetryEvent {
    event(
        time,
        "platform.start",
        json!({"requestId": id, "version": "7", "tracing": {"type": "X-Amzn-Trace-Id",
            "value": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}),
    )
}

fn done(id: &str, time: &str, status: &str) -> TelemetryEvent {
    event(
        time,
        "platform.runtimeDone",
        json!({"requestId": id, "status": status, "errorType": "Runtime.Unknown",
            "metrics": {"durationMs": 20.0, "producedBytes": 10}}),
    )
}

fn spans(t: &Translated) -> Vec<Span> {
    match &t.traces {
        Some(SignalData::Traces(rs)) => rs
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect(),
        _ => Vec::new(),
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

#[test]
fn start_and_runtime_done_make_one_server_span_in_the_xray_trace() {
    let mut t = translator();
    let out = t.translate(vec![
        start("r-1", "2026-11-27T10:00:00.000Z"),
        done("r-1", "2026-11-27T10:00:00.250Z", "success"),
    ]);
    assert_eq!(out.runtime_done, vec!["r-1".to_string()]);
    let s = spans(&out);
    assert_eq!(s.len(), 1);
    let span = &s[0];
    assert_eq!(span.name, "sync-handler");
    assert_eq!(span.kind, span::SpanKind::Server as i32);
    assert_eq!(
        hex(&span.trace_id),
        "5759e988bd862e3fe1be46a994272793",
        "X-Ray Root without the version and dashes"
    );
    assert_eq!(hex(&span.parent_span_id), "53995c3f42cd8ad8");
    assert_eq!(span.span_id.len(), 8);
    assert_eq!(
        span.end_time_unix_nano - span.start_time_unix_nano,
        250_000_000
    );
    assert_eq!(
        attr(&span.attributes, "faas.invocation_id"),
        Some(&any_value::Value::StringValue("r-1".into()))
    );
    assert_eq!(
        attr(&span.attributes, "faas.coldstart"),
        Some(&any_value::Value::BoolValue(true))
    );
    assert_eq!(span.status.as_ref().unwrap().code, 0);

    let SignalData::Traces(rs) = out.traces.unwrap() else {
        unreachable!()
    };
    let res = rs[0].resource.as_ref().unwrap();
    for (k, v) in [
        ("service.name", "sync-handler"),
        ("faas.name", "sync-handler"),
        ("faas.version", "7"),
        ("cloud.region", "eu-west-1"),
    ] {
        assert_eq!(
            attr(&res.attributes, k),
            Some(&any_value::Value::StringValue(v.into())),
            "{k}"
        );
    }
}

#[test]
fn a_failed_invocation_is_an_error_span_and_the_second_is_warm() {
    let mut t = translator();
    t.translate(vec![
        start("r-1", "2026-11-27T10:00:00Z"),
        done("r-1", "2026-11-27T10:00:01Z", "success"),
    ]);
    let out = t.translate(vec![
        start("r-2", "2026-11-27T10:00:02Z"),
        done("r-2", "2026-11-27T10:00:03Z", "error"),
    ]);
    let span = &spans(&out)[0];
    let status = span.status.as_ref().unwrap();
    assert_eq!(status.code, status::StatusCode::Error as i32);
    assert_eq!(status.message, "Runtime.Unknown");
    assert_eq!(
        attr(&span.attributes, "faas.coldstart"),
        Some(&any_value::Value::BoolValue(false))
    );
}

#[test]
fn without_start_or_trace_header_the_span_still_has_a_random_trace_and_its_duration() {
    let mut t = translator();
    let out = t.translate(vec![done("r-9", "2026-11-27T10:00:01Z", "success")]);
    let span = &spans(&out)[0];
    assert_eq!(span.trace_id.len(), 16);
    assert!(span.trace_id.iter().any(|b| *b != 0));
    assert!(span.parent_span_id.is_empty());
    assert_eq!(
        span.end_time_unix_nano - span.start_time_unix_nano,
        20_000_000
    );
}

#[test]
fn xray_header_parsing_refuses_malformed_roots() {
    assert!(XrayHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793").is_some());
    for bad in [
        "Root=2-5759e988-bd862e3fe1be46a994272793",
        "Root=1-5759e98-bd862e3fe1be46a994272793",
        "Root=1-5759e988-bd862e3fe1be46a99427279z",
        "Parent=53995c3f42cd8ad8",
        "garbage",
    ] {
        assert!(XrayHeader::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn report_becomes_the_lambda_metrics_with_namespace_and_units() {
    let mut t = translator();
    let out = t.translate(vec![event(
        "2026-11-27T10:00:05Z",
        "platform.report",
        json!({"requestId": "r-1", "status": "success", "metrics": {
            "durationMs": 101.5, "billedDurationMs": 102, "memorySizeMB": 512,
            "maxMemoryUsedMB": 33, "initDurationMs": 116.7}}),
    )]);
    let Some(SignalData::Metrics(rm)) = out.metrics else {
        panic!("metrics expected")
    };
    let metrics = &rm[0].scope_metrics[0].metrics;
    let by_name: HashMap<&str, &Metric> = metrics.iter().map(|m| (m.name.as_str(), m)).collect();
    let value = |name: &str| match &by_name[name].data {
        Some(metric::Data::Gauge(g)) => match g.data_points[0].value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            _ => f64::NAN,
        },
        Some(metric::Data::Sum(s)) => match s.data_points[0].value {
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            _ => f64::NAN,
        },
        _ => f64::NAN,
    };
    assert_eq!(value("Duration"), 101.5);
    assert_eq!(value("BilledDuration"), 102.0);
    assert_eq!(value("MemorySize"), 512.0);
    assert_eq!(value("MaxMemoryUsed"), 33.0);
    assert_eq!(value("InitDuration"), 116.7);
    assert_eq!(value("Invocations"), 1.0);
    assert_eq!(value("Errors"), 0.0);
    assert_eq!(by_name["Duration"].unit, "ms");
    assert_eq!(by_name["MaxMemoryUsed"].unit, "MB");
    let Some(metric::Data::Gauge(g)) = &by_name["Duration"].data else {
        unreachable!()
    };
    assert_eq!(
        attr(&g.data_points[0].attributes, "aws.emf.namespace"),
        Some(&any_value::Value::StringValue("AuraStream/Lambda".into()))
    );

    // Warm invocations carry no InitDuration.
    let out = t.translate(vec![event(
        "2026-11-27T10:00:06Z",
        "platform.report",
        json!({"requestId": "r-2", "status": "timeout", "metrics": {
            "durationMs": 3000, "billedDurationMs": 3000, "memorySizeMB": 512,
            "maxMemoryUsedMB": 40}}),
    )]);
    let Some(SignalData::Metrics(rm)) = out.metrics else {
        panic!()
    };
    let names: Vec<&str> = rm[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert!(!names.contains(&"InitDuration"));
    assert_eq!(out.traces, None);
}

#[test]
fn function_lines_become_log_records_of_the_current_invocation() {
    let mut t = translator();
    let out = t.translate(vec![
        start("r-1", "2026-11-27T10:00:00Z"),
        event(
            "2026-11-27T10:00:00.010Z",
            "function",
            json!("hello from the handler\n"),
        ),
        event(
            "2026-11-27T10:00:00.020Z",
            "function",
            json!({"level": "ERROR", "message": "boom", "requestId": "r-1", "extra": 1}),
        ),
    ]);
    let Some(SignalData::Logs(rl)) = out.logs else {
        panic!("logs expected")
    };
    let records = &rl[0].scope_logs[0].log_records;
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0].body.as_ref().unwrap().value,
        Some(any_value::Value::StringValue(
            "hello from the handler".into()
        ))
    );
    assert_eq!(
        attr(&records[0].attributes, "faas.invocation_id"),
        Some(&any_value::Value::StringValue("r-1".into()))
    );
    assert_eq!(records[1].severity_number, SeverityNumber::Error as i32);
    assert_eq!(records[1].severity_text, "ERROR");
    assert_eq!(
        records[1].body.as_ref().unwrap().value,
        Some(any_value::Value::StringValue("boom".into()))
    );
}

#[test]
fn unknown_and_malformed_events_are_skipped() {
    let mut t = translator();
    let out = t.translate(vec![
        event("2026-11-27T10:00:00Z", "platform.initStart", json!({})),
        event(
            "2026-11-27T10:00:00Z",
            "platform.runtimeDone",
            json!({"no": "id"}),
        ),
        event("not a time", "platform.brandNew", json!(null)),
    ]);
    assert!(out.traces.is_none() && out.metrics.is_none() && out.logs.is_none());
    assert!(out.runtime_done.is_empty());
}
