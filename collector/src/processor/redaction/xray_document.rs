//! Redacting the X-Ray documents that arrived through the `awsxray` receiver.
//!
//! The receiver keeps each document as JSON text on its span and the `awsxray` exporter
//! sends that text unchanged, so redacting the span's attributes alone would leave the raw
//! values in what reaches X-Ray. Here the document's fields are redacted under the
//! attribute names the receiver maps them to (`http.request.client_ip` is
//! `client.address`, `user` is `enduser.id`, an annotation is its own key, metadata
//! namespace `ns` is `aws.xray.metadata.ns`), so one set of rules covers both forms. Every
//! other string in the document has `blocked_values` masked, except the fields that
//! identify the segment (`id`, `trace_id`, `parent_id`, `name`, ...), which X-Ray needs
//! intact and which the exporter checks against the span.

use serde_json::{Map, Value};

use super::rules::Rules;
use super::summary::Tally;
use crate::aws::xray::METADATA_PREFIX;

/// Fields that identify the document and its place in the trace: never masked.
const STRUCTURAL: &[&str] = &[
    "id",
    "trace_id",
    "parent_id",
    "type",
    "name",
    "start_time",
    "end_time",
    "in_progress",
    "precursor_ids",
    "origin",
    "namespace",
];

/// `http.request` / `http.response` fields and the attributes the receiver maps them to.
const HTTP_FIELDS: &[(&str, &str, &str)] = &[
    ("request", "method", "http.request.method"),
    ("request", "url", "url.full"),
    ("request", "user_agent", "user_agent.original"),
    ("request", "client_ip", "client.address"),
    ("response", "status", "http.response.status_code"),
    ("response", "content_length", "http.response.body.size"),
];

/// `sql` fields and their attributes.
const SQL_FIELDS: &[(&str, &str)] = &[
    ("sanitized_query", "db.query.text"),
    ("database_type", "db.system.name"),
    ("user", "db.user"),
];

/// Redacts the document in `text`, rewriting it only if something changed. Text that is
/// not a JSON object is left alone: the exporter will not send it as a document either.
pub fn redact(rules: &Rules, text: &mut String, tally: &mut Tally) {
    let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if redact_document(rules, &mut doc, tally) {
        *text = Value::Object(doc).to_string();
    }
}

fn redact_document(rules: &Rules, doc: &mut Map<String, Value>, tally: &mut Tally) -> bool {
    let mut changed = false;
    doc.retain(|field, value| {
        if STRUCTURAL.contains(&field.as_str()) {
            return true;
        }
        let (keep, touched) = match field.as_str() {
            "annotations" => (true, redact_entries(rules, value, "", tally)),
            "metadata" => (true, redact_entries(rules, value, METADATA_PREFIX, tally)),
            "http" => (true, redact_http(rules, value, tally)),
            "sql" => (true, redact_sql(rules, value, tally)),
            "user" => rules.redact_json_entry("enduser.id", value, tally),
            "cause" => (true, redact_cause(rules, value, tally)),
            other => (true, mask_strings(rules, other, value, tally)),
        };
        changed |= touched;
        keep
    });
    changed
}

/// Annotations (keys are attribute keys) and metadata namespaces (`prefix` + namespace).
fn redact_entries(rules: &Rules, value: &mut Value, prefix: &str, tally: &mut Tally) -> bool {
    let Value::Object(entries) = value else {
        return mask_strings(rules, prefix, value, tally);
    };
    let mut changed = false;
    entries.retain(|key, value| {
        let attribute = if prefix.is_empty() {
            std::borrow::Cow::Borrowed(key.as_str())
        } else {
            std::borrow::Cow::Owned(format!("{prefix}{key}"))
        };
        let (keep, touched) = rules.redact_json_entry(&attribute, value, tally);
        changed |= touched;
        keep
    });
    changed
}

fn redact_http(rules: &Rules, http: &mut Value, tally: &mut Tally) -> bool {
    let Value::Object(parts) = http else {
        return mask_strings(rules, "http", http, tally);
    };
    let mut changed = false;
    for (part, fields) in parts.iter_mut() {
        let Value::Object(fields) = fields else {
            changed |= mask_strings(rules, part, fields, tally);
            continue;
        };
        fields.retain(|field, value| {
            let mapped = HTTP_FIELDS
                .iter()
                .find(|(p, f, _)| p == part && f == field)
                .map(|(_, _, attribute)| *attribute);
            let (keep, touched) = match mapped {
                Some(attribute) => rules.redact_json_entry(attribute, value, tally),
                None => (true, mask_strings(rules, field, value, tally)),
            };
            changed |= touched;
            keep
        });
    }
    changed
}

fn redact_sql(rules: &Rules, sql: &mut Value, tally: &mut Tally) -> bool {
    let Value::Object(fields) = sql else {
        return mask_strings(rules, "sql", sql, tally);
    };
    let mut changed = false;
    fields.retain(|field, value| {
        let mapped = SQL_FIELDS
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, attribute)| *attribute);
        let (keep, touched) = match mapped {
            Some(attribute) => rules.redact_json_entry(attribute, value, tally),
            None => (true, mask_strings(rules, field, value, tally)),
        };
        changed |= touched;
        keep
    });
    changed
}

/// `cause.exceptions[].message` is the events' `exception.message`; the rest is checked
/// for blocked values.
fn redact_cause(rules: &Rules, cause: &mut Value, tally: &mut Tally) -> bool {
    let Some(Value::Array(exceptions)) = cause.get_mut("exceptions") else {
        return mask_strings(rules, "cause", cause, tally);
    };
    let mut changed = false;
    for exception in exceptions.iter_mut() {
        let Value::Object(fields) = exception else {
            changed |= mask_strings(rules, "cause", exception, tally);
            continue;
        };
        fields.retain(|field, value| {
            let (keep, touched) = match field.as_str() {
                "id" => (true, false),
                "message" => rules.redact_json_entry("exception.message", value, tally),
                "type" => rules.redact_json_entry("exception.type", value, tally),
                other => (true, mask_strings(rules, other, value, tally)),
            };
            changed |= touched;
            keep
        });
    }
    changed
}

/// A field with no attribute of its own: every string in it has `blocked_values` masked
/// (key rules do not apply, since no attribute list would name it).
fn mask_strings(rules: &Rules, key: &str, value: &mut Value, tally: &mut Tally) -> bool {
    match value {
        Value::String(s) => match rules.mask_matches(key, s, tally) {
            Some(masked) => {
                *s = masked;
                true
            }
            None => false,
        },
        Value::Object(fields) => fields.iter_mut().fold(false, |changed, (k, v)| {
            mask_strings(rules, k, v, tally) | changed
        }),
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| {
            mask_strings(rules, key, v, tally) | changed
        }),
        _ => false,
    }
}
