//! Reading span and resource attributes, and remembering which ones became segment fields.
//!
//! A value that X-Ray shows as a field (`http.request.method` → `http.request.method`) is
//! not repeated under `metadata`, so every lookup that succeeds marks its key as used.

use std::cell::RefCell;
use std::collections::BTreeSet;

use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};

pub(crate) struct Attrs<'a> {
    span: &'a [KeyValue],
    resource: &'a [KeyValue],
    used: RefCell<BTreeSet<&'a str>>,
}

fn find<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    list.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn as_str(v: &Value) -> Option<&str> {
    match v {
        Value::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::IntValue(i) => Some(*i),
        Value::DoubleValue(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(span: &'a [KeyValue], resource: &'a [KeyValue]) -> Attrs<'a> {
        Attrs {
            span,
            resource,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    fn take(&self, key: &'a str) -> Option<&'a Value> {
        let kv = self.span.iter().find(|kv| kv.key == key)?;
        let v = kv.value.as_ref()?.value.as_ref()?;
        self.used.borrow_mut().insert(kv.key.as_str());
        Some(v)
    }

    /// A non-empty string span attribute.
    pub(crate) fn str(&self, key: &'static str) -> Option<&'a str> {
        let kv = self.span.iter().find(|kv| kv.key == key)?;
        let s = as_str(kv.value.as_ref()?.value.as_ref()?)?;
        self.used.borrow_mut().insert(kv.key.as_str());
        Some(s)
    }

    /// The first of `keys` that is set: newer semantic-convention names go first.
    pub(crate) fn first_str(&self, keys: &[&'static str]) -> Option<&'a str> {
        keys.iter().find_map(|k| self.str(k))
    }

    /// An integer span attribute, also accepted as a whole double or a numeric string.
    pub(crate) fn int(&self, key: &'static str) -> Option<i64> {
        let kv = self.span.iter().find(|kv| kv.key == key)?;
        let i = as_int(kv.value.as_ref()?.value.as_ref()?)?;
        self.used.borrow_mut().insert(kv.key.as_str());
        Some(i)
    }

    pub(crate) fn first_int(&self, keys: &[&'static str]) -> Option<i64> {
        keys.iter().find_map(|k| self.int(k))
    }

    /// A list of strings (an array attribute, or a single string as a list of one).
    pub(crate) fn str_list(&self, key: &'static str) -> Vec<String> {
        match self.take(key) {
            Some(Value::ArrayValue(a)) => a
                .values
                .iter()
                .filter_map(|v| v.value.as_ref().and_then(as_str))
                .map(str::to_owned)
                .collect(),
            Some(Value::StringValue(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// A string span attribute without marking it used: for decisions, not fields.
    pub(crate) fn peek(&self, key: &str) -> Option<&'a str> {
        find(self.span, key).and_then(as_str)
    }

    /// A non-empty string resource attribute (resource attributes always go to metadata).
    pub(crate) fn res(&self, key: &str) -> Option<&'a str> {
        find(self.resource, key).and_then(as_str)
    }

    pub(crate) fn res_int(&self, key: &str) -> Option<i64> {
        find(self.resource, key).and_then(as_int)
    }

    pub(crate) fn res_list(&self, key: &str) -> Vec<String> {
        match find(self.resource, key) {
            Some(Value::ArrayValue(a)) => a
                .values
                .iter()
                .filter_map(|v| v.value.as_ref().and_then(as_str))
                .map(str::to_owned)
                .collect(),
            Some(Value::StringValue(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    pub(crate) fn is_used(&self, key: &str) -> bool {
        self.used.borrow().contains(key)
    }

    pub(crate) fn span_attributes(&self) -> &'a [KeyValue] {
        self.span
    }

    pub(crate) fn resource_attributes(&self) -> &'a [KeyValue] {
        self.resource
    }
}

/// An attribute value as JSON, for metadata. Bytes become hex; non-finite doubles become
/// strings, because JSON has no NaN and X-Ray would reject the document.
pub(crate) fn to_json(value: Option<&AnyValue>) -> serde_json::Value {
    use serde_json::Value as J;
    let Some(v) = value.and_then(|v| v.value.as_ref()) else {
        return J::Null;
    };
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or_else(|| J::String(d.to_string())),
        Value::ArrayValue(a) => J::Array(a.values.iter().map(|v| to_json(Some(v))).collect()),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), to_json(kv.value.as_ref())))
                .collect(),
        ),
        Value::BytesValue(b) => J::String(super::ids::hex(b)),
        Value::StringValueStrindex(_) => J::Null,
    }
}

/// Attributes as a JSON object (event attributes in metadata, link attributes).
pub(crate) fn to_json_object(list: &[KeyValue]) -> serde_json::Map<String, serde_json::Value> {
    list.iter()
        .map(|kv| (kv.key.clone(), to_json(kv.value.as_ref())))
        .collect()
}
