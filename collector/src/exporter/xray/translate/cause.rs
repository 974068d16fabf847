//! The `cause` block: exceptions recorded on a span as `exception` events.

use aurastream_proto::otlp::common::any_value::Value;
use aurastream_proto::otlp::trace::{Span, span::Event};
use aurastream_proto::xray::{CauseData, ExceptionData};

use super::{ids, stack};

/// The OpenTelemetry event name for a recorded exception.
pub(crate) const EXCEPTION_EVENT: &str = "exception";

fn event_str<'a>(event: &'a Event, key: &str) -> Option<&'a str> {
    event
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .and_then(|v| match v {
            Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        })
}

/// Exceptions from the span's `exception` events; when there are none but the span failed
/// with a status message, that message is the cause. `remote` marks exceptions a client
/// span received from the service it called. `language` picks the stack-trace parser.
pub(crate) fn cause(
    span: &Span,
    failed: bool,
    remote: bool,
    language: Option<&str>,
) -> Option<CauseData> {
    let seed = span
        .span_id
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut exceptions: Vec<ExceptionData> = span
        .events
        .iter()
        .filter(|e| e.name == EXCEPTION_EVENT)
        .enumerate()
        .map(|(i, event)| {
            let mut stack = event_str(event, "exception.stacktrace")
                .map(|text| stack::parse(text, language))
                .unwrap_or_default();
            let truncated = stack.len().saturating_sub(stack::MAX_FRAMES);
            stack.truncate(stack::MAX_FRAMES);
            ExceptionData {
                id: ids::derived_id(seed ^ (i as u64 + 1)),
                kind: event_str(event, "exception.type").map(str::to_owned),
                message: event_str(event, "exception.message").map(str::to_owned),
                remote,
                truncated: (truncated > 0).then(|| u32::try_from(truncated).unwrap_or(u32::MAX)),
                stack,
            }
        })
        .collect();
    if exceptions.is_empty()
        && failed
        && let Some(status) = &span.status
        && !status.message.is_empty()
    {
        exceptions.push(ExceptionData {
            id: ids::derived_id(seed),
            message: Some(status.message.clone()),
            remote,
            ..Default::default()
        });
    }
    (!exceptions.is_empty()).then_some(CauseData {
        working_directory: None,
        exceptions,
    })
}
