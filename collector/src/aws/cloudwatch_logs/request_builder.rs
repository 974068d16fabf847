//! Log events into PutLogEvents-sized batches.
//!
//! CloudWatch Logs rejects a whole request that breaks one of its rules, and moto (our test
//! stand-in) enforces none of them, so they are enforced here, before anything is sent:
//!
//! - events sorted by timestamp (stable, so the parts of a split event stay in order);
//! - at most 10,000 events per request;
//! - at most 1,048,576 bytes per request, counting each message's UTF-8 bytes plus 26;
//! - the events of one request span less than 24 hours;
//! - each event at most `max_event_size` bytes (message + 26): longer plain text is split
//!   into several events, longer JSON documents are trimmed to a smaller *valid* document
//!   carrying `"aurastream.truncated": true` — never cut in the middle of the JSON.

use serde_json::{Map, Value};

use crate::component::validate::Invalid;

/// Per-event overhead CloudWatch adds to every message when it measures a request.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Most events in one PutLogEvents request.
pub const MAX_EVENTS_PER_BATCH: usize = 10_000;
/// Most bytes (messages + 26 per event) in one PutLogEvents request.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// The events of one request must span less than this (24 hours, in milliseconds).
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// Default and largest per-event size (message + 26 bytes): 256 KiB, the long-standing
/// CloudWatch quota; the service's hard limit is 1 MiB.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 256 * 1024;
/// Hard upper bound of `max_event_size`.
pub const HARD_MAX_EVENT_SIZE: usize = MAX_BATCH_BYTES;
/// Smallest `max_event_size` that still leaves room for a trimmed document and its marker.
pub const MIN_EVENT_SIZE: usize = 1024;
/// Member added to JSON documents that had to be trimmed to fit.
pub const TRUNCATED_MARKER: &str = "aurastream.truncated";

/// One log event, ready to send. `origin` says which input item it came from, so that the
/// exporter can account for items (a split record yields several events with one origin).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    pub timestamp_ms: i64,
    pub message: String,
    pub origin: usize,
}

impl LogEvent {
    /// The size CloudWatch counts against the request and event limits.
    pub fn billed_size(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD_BYTES
    }
}

/// Cuts `events` into requests that CloudWatch accepts. Each event must already fit the
/// per-event limit (see [`fit_event`]).
pub fn build_batches(events: Vec<LogEvent>) -> Vec<Vec<LogEvent>> {
    build_batches_with_room(events, 0)
}

/// As [`build_batches`], leaving room in every request for one more event of up to
/// `extra_bytes` billed bytes (a delivery marker; `0` = none).
pub fn build_batches_with_room(
    mut events: Vec<LogEvent>,
    extra_bytes: usize,
) -> Vec<Vec<LogEvent>> {
    let (max_events, max_bytes) = if extra_bytes > 0 {
        (MAX_EVENTS_PER_BATCH - 1, MAX_BATCH_BYTES - extra_bytes)
    } else {
        (MAX_EVENTS_PER_BATCH, MAX_BATCH_BYTES)
    };
    events.sort_by_key(|e| e.timestamp_ms);
    let mut batches = Vec::new();
    let mut current: Vec<LogEvent> = Vec::new();
    let mut bytes = 0usize;
    for event in events {
        let size = event.billed_size();
        let starts_new = match current.first() {
            None => false,
            Some(first) => {
                current.len() >= max_events
                    || bytes + size > max_bytes
                    || event.timestamp_ms - first.timestamp_ms >= MAX_BATCH_SPAN_MS
            }
        };
        if starts_new {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(event);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// How an over-size event was made to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fitted {
    AsIs,
    /// Plain text cut into this many events.
    Split(usize),
    /// A JSON document trimmed (with the marker member).
    Trimmed,
}

/// Makes one message fit `max_event_size` (message bytes + 26): JSON objects are trimmed to
/// a valid smaller document, anything else is split at character boundaries.
pub fn fit_event(
    timestamp_ms: i64,
    message: String,
    origin: usize,
    max_event_size: usize,
) -> (Vec<LogEvent>, Fitted) {
    let limit = max_event_size.saturating_sub(EVENT_OVERHEAD_BYTES).max(1);
    if message.len() <= limit {
        return (
            vec![LogEvent {
                timestamp_ms,
                message,
                origin,
            }],
            Fitted::AsIs,
        );
    }
    if let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&message) {
        let trimmed = trim_json_object(doc, limit);
        return (
            vec![LogEvent {
                timestamp_ms,
                message: trimmed,
                origin,
            }],
            Fitted::Trimmed,
        );
    }
    let parts: Vec<LogEvent> = split_text(&message, limit)
        .into_iter()
        .map(|part| LogEvent {
            timestamp_ms,
            message: part.to_string(),
            origin,
        })
        .collect();
    let n = parts.len();
    (parts, Fitted::Split(n))
}

/// Splits text into pieces of at most `limit` bytes without cutting a UTF-8 character.
pub fn split_text(text: &str, limit: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(limit.max(4));
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts
}

/// Shrinks a JSON object until its serialization fits `limit` bytes, keeping it valid.
///
/// Long strings are shortened first (the usual culprit: a stack trace or a payload echo),
/// then whole members are removed, largest first. The result always carries
/// `"aurastream.truncated": true` so a Logs Insights query can find trimmed events.
pub fn trim_json_object(mut doc: Map<String, Value>, limit: usize) -> String {
    doc.insert(TRUNCATED_MARKER.to_string(), Value::Bool(true));
    loop {
        let text = Value::Object(doc.clone()).to_string();
        if text.len() <= limit {
            return text;
        }
        let excess = text.len() - limit;
        if !shorten_longest_string(&mut doc, excess) && !remove_largest_members(&mut doc, excess) {
            // Only the marker is left; it is far below any allowed limit.
            return Value::Object(doc).to_string();
        }
    }
}

/// Shortens the longest string (anywhere in the document) by at least `excess` bytes plus
/// room for the `…` suffix. Returns false when no string is worth shortening.
fn shorten_longest_string(doc: &mut Map<String, Value>, excess: usize) -> bool {
    fn longest<'a>(v: &'a mut Value, best: &mut Option<&'a mut String>) {
        match v {
            Value::String(s) if best.as_ref().is_none_or(|b| s.len() > b.len()) => {
                *best = Some(s);
            }
            Value::Array(items) => items.iter_mut().for_each(|i| longest(i, best)),
            Value::Object(map) => map.values_mut().for_each(|i| longest(i, best)),
            _ => {}
        }
    }
    let mut best: Option<&mut String> = None;
    for v in doc.values_mut() {
        longest(v, &mut best);
    }
    let Some(s) = best else { return false };
    // Escaped characters take more room in JSON than in the string; cutting the raw
    // string by the JSON excess may not be enough, which the caller's loop handles.
    if s.len() < 32 {
        return false;
    }
    let keep = s.len().saturating_sub(excess + 3).min(s.len() - 16);
    let mut cut = keep;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push('…');
    true
}

/// Removes the largest members (never the marker) until about `excess` bytes are gone, in
/// one pass: removing one member per round would re-serialize a large document once per
/// member.
fn remove_largest_members(doc: &mut Map<String, Value>, excess: usize) -> bool {
    let mut sizes: Vec<(usize, String)> = doc
        .iter()
        .filter(|(k, _)| k.as_str() != TRUNCATED_MARKER)
        // `"key":value,` — quotes, colon and comma are 4 bytes.
        .map(|(k, v)| (k.len() + v.to_string().len() + 4, k.clone()))
        .collect();
    if sizes.is_empty() {
        return false;
    }
    sizes.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    let mut removed = 0;
    for (size, key) in sizes {
        doc.remove(&key);
        removed += size;
        if removed >= excess {
            break;
        }
    }
    true
}

/// `max_event_size` within what CloudWatch accepts (its hard limit is the upper bound).
pub fn validate_event_size(size: usize) -> Result<(), Invalid> {
    if !(MIN_EVENT_SIZE..=HARD_MAX_EVENT_SIZE).contains(&size) {
        return Err(Invalid::out_of_range(
            "max_event_size",
            MIN_EVENT_SIZE as f64,
            HARD_MAX_EVENT_SIZE as f64,
            size as f64,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, len: usize) -> LogEvent {
        LogEvent {
            timestamp_ms: ts,
            message: "x".repeat(len),
            origin: 0,
        }
    }

    #[test]
    fn sorts_by_timestamp_keeping_equal_timestamps_in_order() {
        let mut events = vec![ev(30, 1), ev(10, 1), ev(20, 1)];
        events.push(LogEvent {
            timestamp_ms: 10,
            message: "second".into(),
            origin: 7,
        });
        let batches = build_batches(events);
        assert_eq!(batches.len(), 1);
        let ts: Vec<i64> = batches[0].iter().map(|e| e.timestamp_ms).collect();
        assert_eq!(ts, vec![10, 10, 20, 30]);
        assert_eq!(batches[0][1].message, "second");
    }

    #[test]
    fn at_most_10000_events_per_batch() {
        let events: Vec<LogEvent> = (0..20_001).map(|i| ev(i, 1)).collect();
        let batches = build_batches(events);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10_000, 10_000, 1]);
    }

    #[test]
    fn batch_bytes_count_the_26_byte_overhead() {
        // 1024 events of 998 bytes = 1024 * 1024 = exactly 1 MiB with overhead: fits.
        let events: Vec<LogEvent> = (0..1024).map(|i| ev(i, 998)).collect();
        assert_eq!(build_batches(events).len(), 1);
        // One byte more per event does not: without the 26-byte overhead it would fit.
        let events: Vec<LogEvent> = (0..1024).map(|i| ev(i, 999)).collect();
        let batches = build_batches(events);
        assert_eq!(batches.len(), 2);
        for b in &batches {
            let bytes: usize = b.iter().map(LogEvent::billed_size).sum();
            assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
        }
        assert_eq!(batches[0].len(), 1023);
    }

    #[test]
    fn batch_spans_less_than_24_hours() {
        let day = MAX_BATCH_SPAN_MS;
        let batches = build_batches(vec![ev(0, 1), ev(day - 1, 1), ev(day, 1), ev(2 * day, 1)]);
        let ts: Vec<Vec<i64>> = batches
            .iter()
            .map(|b| b.iter().map(|e| e.timestamp_ms).collect())
            .collect();
        assert_eq!(ts, vec![vec![0, day - 1], vec![day], vec![2 * day]]);
    }

    #[test]
    fn small_event_is_kept_as_is() {
        let (events, how) = fit_event(5, "hello".into(), 3, DEFAULT_MAX_EVENT_SIZE);
        assert_eq!(how, Fitted::AsIs);
        assert_eq!(events[0].message, "hello");
        assert_eq!(events[0].origin, 3);
    }

    #[test]
    fn oversize_text_is_split_at_char_boundaries() {
        let text = "é".repeat(1500); // 3000 bytes
        let (events, how) = fit_event(5, text.clone(), 0, 1024);
        assert_eq!(how, Fitted::Split(4)); // 998-byte pieces: 3 of 499 chars + 3 chars
        for e in &events {
            assert!(e.billed_size() <= 1024);
            assert_eq!(e.timestamp_ms, 5);
        }
        let joined: String = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn oversize_json_is_trimmed_to_a_valid_document_with_marker() {
        let doc = serde_json::json!({
            "event_type": "error",
            "request_id": "req-1",
            "stack_trace": "frame\n\"quoted\"\n".repeat(5000),
            "data": {"blob": "y".repeat(3000)},
        });
        let (events, how) = fit_event(1, doc.to_string(), 0, 2048);
        assert_eq!(how, Fitted::Trimmed);
        assert_eq!(events.len(), 1);
        assert!(
            events[0].billed_size() <= 2048,
            "{}",
            events[0].billed_size()
        );
        let back: Value = serde_json::from_str(&events[0].message).expect("valid JSON");
        assert_eq!(back["aurastream.truncated"], Value::Bool(true));
        assert_eq!(back["event_type"], "error");
        assert_eq!(back["request_id"], "req-1");
    }

    #[test]
    fn json_with_many_small_members_drops_members_until_it_fits() {
        let mut map = Map::new();
        for i in 0..500 {
            map.insert(format!("field_{i}"), Value::from(i));
        }
        let text = trim_json_object(map, 1000);
        assert!(text.len() <= 1000);
        // Only as many members as needed went: the result is close to the limit.
        assert!(text.len() > 900, "{}", text.len());
        let back: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back[TRUNCATED_MARKER], Value::Bool(true));
    }

    #[test]
    fn huge_documents_with_many_members_are_trimmed_to_a_valid_document() {
        let mut map = Map::new();
        for i in 0..60_000 {
            map.insert(format!("attribute_{i:05}"), Value::from(i));
        }
        let text = trim_json_object(map, DEFAULT_MAX_EVENT_SIZE - EVENT_OVERHEAD_BYTES);
        assert!(text.len() <= DEFAULT_MAX_EVENT_SIZE - EVENT_OVERHEAD_BYTES);
        let back: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back[TRUNCATED_MARKER], Value::Bool(true));
    }
}
