use super::*;
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::span::Event;

const HOUR: u64 = 3600 * 1_000_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_760_000_000)
}

fn span(id: u64, start: u64) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: id.to_be_bytes().to_vec(),
        name: format!("span {id}"),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        ..Span::default()
    }
}

fn resources(spans: Vec<Span>) -> Vec<ResourceSpans> {
    vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", "checkout")],
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }]
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

fn ids(requests: &[SignalData]) -> Vec<Vec<u8>> {
    requests
        .iter()
        .flat_map(|r| match r {
            SignalData::Traces(r) => r.clone(),
            _ => Vec::new(),
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .map(|s| s.span_id)
        .collect()
}

fn cut_parts(p: Prepared) -> (Vec<SignalData>, Vec<(Reason, usize)>, usize) {
    match p {
        Prepared::Cut {
            requests,
            refused,
            trimmed,
        } => (requests, refused, trimmed),
        Prepared::AsIs => panic!("expected the batch to be cut"),
    }
}

#[test]
fn a_batch_within_every_limit_is_sent_as_it_is() {
    let t = nanos(now()) - HOUR;
    let r = resources((0..100).map(|i| span(i, t)).collect());
    assert!(matches!(prepare(&r, now()), Prepared::AsIs));
}

#[test]
fn more_than_ten_thousand_spans_are_cut_in_order() {
    let t = nanos(now()) - HOUR;
    let r = resources((0..25_000).map(|i| span(i, t)).collect());
    let (requests, refused, _) = cut_parts(prepare(&r, now()));
    assert!(refused.is_empty());
    let counts: Vec<usize> = requests.iter().map(SignalData::item_count).collect();
    assert_eq!(counts, [10_000, 10_000, 5_000]);
    let want: Vec<Vec<u8>> = (0..25_000u64).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(ids(&requests), want, "every span once, in order");
    let SignalData::Traces(first) = &requests[0] else {
        panic!()
    };
    assert_eq!(first[0].resource, r[0].resource, "resource kept");
}

#[test]
fn requests_over_five_megabytes_are_cut_to_fit() {
    let t = nanos(now()) - HOUR;
    let spans = (0..120)
        .map(|i| Span {
            attributes: vec![kv("payload", &"x".repeat(100_000))],
            ..span(i, t)
        })
        .collect();
    let (requests, _, trimmed) = cut_parts(prepare(&resources(spans), now()));
    assert_eq!(trimmed, 0);
    assert!(requests.len() >= 3);
    for r in &requests {
        assert!(super::super::encode::proto_len(r) <= MAX_REQUEST_BYTES);
    }
    assert_eq!(ids(&requests).len(), 120);
}

#[test]
fn spans_outside_the_window_are_refused_by_reason() {
    let n = nanos(now());
    let spans = vec![
        span(1, n - HOUR),
        span(2, n - 15 * 24 * HOUR),
        span(3, n + 3 * HOUR),
        span(4, n - 2 * HOUR),
    ];
    let (requests, refused, _) = cut_parts(prepare(&resources(spans), now()));
    assert_eq!(
        refused,
        [(Reason::Named(IN_FUTURE), 1), (Reason::Named(TOO_OLD), 1)]
    );
    assert_eq!(
        ids(&requests),
        [1u64.to_be_bytes(), 4u64.to_be_bytes()].map(|b| b.to_vec())
    );
}

#[test]
fn spans_more_than_a_day_apart_go_in_separate_requests() {
    let n = nanos(now());
    let spans = vec![
        span(1, n - HOUR),
        span(2, n - 10 * 24 * HOUR),
        span(3, n - 2 * HOUR),
    ];
    let (requests, refused, _) = cut_parts(prepare(&resources(spans), now()));
    assert!(refused.is_empty());
    for r in &requests {
        let SignalData::Traces(r) = r else { panic!() };
        let starts: Vec<u64> = r
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.start_time_unix_nano)
            .collect();
        let spread = starts.iter().max().unwrap() - starts.iter().min().unwrap();
        assert!(spread < 24 * HOUR, "{starts:?}");
    }
    assert_eq!(ids(&requests).len(), 3);
}

#[test]
fn a_span_over_200_kb_is_trimmed_largest_parts_first() {
    let t = nanos(now()) - HOUR;
    let big = Span {
        attributes: vec![
            kv("small", "s"),
            kv("huge", &"h".repeat(150_000)),
            kv("medium", &"m".repeat(90_000)),
        ],
        events: vec![Event {
            name: "exception".into(),
            attributes: vec![kv("stack", &"e".repeat(130_000))],
            ..Event::default()
        }],
        ..span(7, t)
    };
    let (requests, refused, trimmed) = cut_parts(prepare(&resources(vec![big]), now()));
    assert!(refused.is_empty());
    assert_eq!(trimmed, 1);
    let SignalData::Traces(r) = &requests[0] else {
        panic!()
    };
    let s = &r[0].scope_spans[0].spans[0];
    assert!(s.encoded_len() <= MAX_SPAN_BYTES, "{}", s.encoded_len());
    let keys: Vec<&str> = s.attributes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        keys,
        ["small", "medium", TRUNCATED_ATTRIBUTE],
        "the largest went first"
    );
    assert_eq!(s.dropped_attributes_count, 1);
    assert!(s.events.is_empty());
    assert_eq!(s.dropped_events_count, 1);
}

#[test]
fn a_span_too_large_without_its_parts_has_its_name_cut() {
    let mut s = Span {
        name: "n".repeat(300_000),
        attributes: vec![kv("a", "b")],
        ..span(1, 0)
    };
    trim(&mut s, MAX_SPAN_BYTES);
    assert!(s.encoded_len() <= MAX_SPAN_BYTES);
    assert_eq!(s.name.len(), MAX_TEXT);
    assert_eq!(s.attributes.last().unwrap().key, TRUNCATED_ATTRIBUTE);
}
