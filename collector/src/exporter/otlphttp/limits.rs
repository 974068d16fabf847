//! X-Ray's OTLP limits, applied before sending so no request is refused as a whole for one
//! of them (https://docs.aws.amazon.com/xray/latest/devguide/xray-opentelemetry.html):
//!
//! - at most 10,000 spans and 5 MB (uncompressed) per request: batches are cut;
//! - at most 200 KB per span: larger spans are trimmed, largest attributes, events and
//!   links first, their `dropped_*_count` raised and `aurastream.truncated: true` added;
//! - timestamps no more than 14 days in the past or 2 hours in the future: other spans
//!   are refused, counted by reason (`timestamp_too_old`, `timestamp_in_future`);
//! - the spans of one request within 24 hours of each other: requests are cut by day.
//!
//! Most batches meet every limit; those are sent as they are, encoded straight from the
//! batch ([`Prepared::AsIs`]). Only a batch that needs cutting is copied.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use prost::encoding::message;

use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value};
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

use crate::component::Reason;
use crate::component::reason::named_counts;
use crate::model::SignalData;

pub const MAX_SPANS_PER_REQUEST: usize = 10_000;
/// "5 MB", read as decimal megabytes: the smaller reading, so a request always fits.
pub const MAX_REQUEST_BYTES: usize = 5_000_000;
/// "200 KB", read the same way.
pub const MAX_SPAN_BYTES: usize = 200_000;
pub const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
pub const MAX_AHEAD: Duration = Duration::from_secs(2 * 3600);
pub const MAX_SPREAD: Duration = Duration::from_secs(24 * 3600);
/// Marks a span whose attributes, events or links were removed to fit.
pub const TRUNCATED_ATTRIBUTE: &str = "aurastream.truncated";
pub const TOO_OLD: &str = "timestamp_too_old";
pub const IN_FUTURE: &str = "timestamp_in_future";
/// Longest name or status message kept in a span that is still too large without its
/// attributes, events and links.
const MAX_TEXT: usize = 1024;

/// What to send for a batch of spans.
#[derive(Debug)]
pub enum Prepared {
    /// The batch meets every limit: send it as it is.
    AsIs,
    /// The batch cut into requests that do, with the spans refused (by reason) and the
    /// number trimmed.
    Cut {
        requests: Vec<SignalData>,
        refused: Vec<(Reason, usize)>,
        trimmed: usize,
    },
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The window a span's timestamps must fall in, in Unix nanoseconds.
struct Window {
    oldest: u64,
    newest: u64,
}

impl Window {
    fn at(now: SystemTime) -> Window {
        let now = nanos(now);
        Window {
            oldest: now.saturating_sub(MAX_AGE.as_nanos() as u64),
            newest: now.saturating_add(MAX_AHEAD.as_nanos() as u64),
        }
    }

    fn refusal(&self, span: &Span) -> Option<&'static str> {
        if span.start_time_unix_nano < self.oldest || span.end_time_unix_nano < self.oldest {
            Some(TOO_OLD)
        } else if span.start_time_unix_nano > self.newest || span.end_time_unix_nano > self.newest {
            Some(IN_FUTURE)
        } else {
            None
        }
    }
}

/// Decides how `resources` is sent under X-Ray's limits at time `now`.
pub fn prepare(resources: &[ResourceSpans], now: SystemTime) -> Prepared {
    let window = Window::at(now);
    let spans = || {
        resources
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
    };
    let count = spans().count();
    let bytes: usize = resources.iter().map(|r| message::encoded_len(1, r)).sum();
    let (first, last) = spans().fold((u64::MAX, 0), |(lo, hi), s| {
        (
            lo.min(s.start_time_unix_nano),
            hi.max(s.start_time_unix_nano),
        )
    });
    let fits = count <= MAX_SPANS_PER_REQUEST
        && bytes <= MAX_REQUEST_BYTES
        && (count == 0 || last - first < MAX_SPREAD.as_nanos() as u64)
        && spans().all(|s| window.refusal(s).is_none())
        && (bytes <= MAX_SPAN_BYTES || spans().all(|s| s.encoded_len() <= MAX_SPAN_BYTES));
    if fits {
        return Prepared::AsIs;
    }
    cut(resources, &window)
}

/// Requests being filled for one day of start times.
#[derive(Default)]
struct Day {
    done: Vec<Vec<ResourceSpans>>,
    current: Vec<ResourceSpans>,
    spans: usize,
    bytes: usize,
    /// (resource, scope) indexes of the last span added to `current`.
    last: Option<(usize, usize)>,
}

impl Day {
    fn add(&mut self, at: (usize, usize), r: &ResourceSpans, s: &ScopeSpans, span: Span) {
        let span_bytes = message::encoded_len(2, &span);
        let new_resource = self.last.is_none_or(|(ri, _)| ri != at.0);
        let new_scope = new_resource || self.last != Some(at);
        // Headers of the groups a span opens: the resource or scope and their framing.
        let header = |new: bool, len: usize| if new { len + 10 } else { 0 };
        let resource_len = r.resource.as_ref().map_or(0, |x| x.encoded_len()) + r.schema_url.len();
        let scope_len = s.scope.as_ref().map_or(0, |x| x.encoded_len()) + s.schema_url.len();
        let need = span_bytes + header(new_resource, resource_len) + header(new_scope, scope_len);
        if self.spans > 0
            && (self.spans + 1 > MAX_SPANS_PER_REQUEST || self.bytes + need > MAX_REQUEST_BYTES)
        {
            self.done.push(std::mem::take(&mut self.current));
            self.spans = 0;
            self.bytes = 0;
            self.last = None;
            return self.add(at, r, s, span);
        }
        if new_resource {
            self.current.push(ResourceSpans {
                resource: r.resource.clone(),
                scope_spans: Vec::new(),
                schema_url: r.schema_url.clone(),
            });
        }
        let resource = self
            .current
            .last_mut()
            .expect("a resource was just ensured");
        if new_scope {
            resource.scope_spans.push(ScopeSpans {
                scope: s.scope.clone(),
                spans: Vec::new(),
                schema_url: s.schema_url.clone(),
            });
        }
        let scope = resource
            .scope_spans
            .last_mut()
            .expect("a scope was just ensured");
        scope.spans.push(span);
        self.spans += 1;
        self.bytes += need;
        self.last = Some(at);
    }
}

fn cut(resources: &[ResourceSpans], window: &Window) -> Prepared {
    let mut days: BTreeMap<u64, Day> = BTreeMap::new();
    let mut refused: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut trimmed = 0;
    let day = MAX_SPREAD.as_nanos() as u64;
    for (ri, r) in resources.iter().enumerate() {
        for (si, s) in r.scope_spans.iter().enumerate() {
            for span in &s.spans {
                if let Some(reason) = window.refusal(span) {
                    *refused.entry(reason).or_default() += 1;
                    continue;
                }
                let mut span = span.clone();
                if span.encoded_len() > MAX_SPAN_BYTES {
                    trim(&mut span, MAX_SPAN_BYTES);
                    trimmed += 1;
                }
                days.entry(span.start_time_unix_nano / day)
                    .or_default()
                    .add((ri, si), r, s, span);
            }
        }
    }
    let requests = days
        .into_values()
        .flat_map(|mut d| {
            d.done.push(d.current);
            d.done
        })
        .filter(|r| !r.is_empty())
        .map(SignalData::Traces)
        .collect();
    Prepared::Cut {
        requests,
        refused: named_counts(refused),
        trimmed,
    }
}

/// What can be removed from a span to make it fit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Attribute(usize),
    Event(usize),
    Link(usize),
}

/// Removes the largest attributes, events and links of `span` until it fits in `limit`
/// bytes, counting them in its `dropped_*_count` and marking it with
/// [`TRUNCATED_ATTRIBUTE`]; a span still too large has its name and status message cut.
pub fn trim(span: &mut Span, limit: usize) {
    let marker = KeyValue {
        key: TRUNCATED_ATTRIBUTE.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(true)),
        }),
        ..KeyValue::default()
    };
    let budget = limit.saturating_sub(message::encoded_len(9, &marker));
    let mut parts: Vec<(usize, Part)> = Vec::new();
    parts.extend(
        span.attributes
            .iter()
            .enumerate()
            .map(|(i, a)| (message::encoded_len(9, a), Part::Attribute(i))),
    );
    parts.extend(
        span.events
            .iter()
            .enumerate()
            .map(|(i, e)| (message::encoded_len(11, e), Part::Event(i))),
    );
    parts.extend(
        span.links
            .iter()
            .enumerate()
            .map(|(i, l)| (message::encoded_len(13, l), Part::Link(i))),
    );
    parts.sort_by_key(|p| std::cmp::Reverse(p.0));
    let mut size = span.encoded_len();
    let mut removed = Vec::new();
    for (len, part) in parts {
        if size <= budget {
            break;
        }
        size = size.saturating_sub(len);
        removed.push(part);
    }
    span.attributes = without(
        std::mem::take(&mut span.attributes),
        &removed,
        Part::Attribute,
    );
    span.events = without(std::mem::take(&mut span.events), &removed, Part::Event);
    span.links = without(std::mem::take(&mut span.links), &removed, Part::Link);
    let count = |kind: fn(&Part) -> bool| removed.iter().filter(|p| kind(p)).count() as u32;
    span.dropped_attributes_count += count(|p| matches!(p, Part::Attribute(_)));
    span.dropped_events_count += count(|p| matches!(p, Part::Event(_)));
    span.dropped_links_count += count(|p| matches!(p, Part::Link(_)));
    if span.encoded_len() > budget {
        truncate(&mut span.name, MAX_TEXT);
        if let Some(status) = &mut span.status {
            truncate(&mut status.message, MAX_TEXT);
        }
    }
    span.attributes.push(marker);
}

/// `items` without those `removed` names as `kind(index)`.
fn without<T>(items: Vec<T>, removed: &[Part], kind: fn(usize) -> Part) -> Vec<T> {
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(&kind(*i)))
        .map(|(_, x)| x)
        .collect()
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests;
