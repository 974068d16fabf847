//! OTLP values in their natural JSON form, as the CloudWatch formats write them.

use serde_json::{Map, Number, Value};

use aurastream_proto::otlp::common::any_value::Value as AnyValueKind;
use aurastream_proto::otlp::common::{AnyValue, KeyValue};

use super::ids::hex;

pub fn kvs_to_map(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            let v = kv
                .value
                .as_ref()
                .and_then(|v| v.value.as_ref())
                .map(any_to_json)
                .unwrap_or(Value::Null);
            (kv.key.clone(), v)
        })
        .collect()
}

/// The natural JSON form of an OTLP value. Bytes become lowercase hex; non-finite doubles
/// (which JSON cannot hold) become strings.
pub fn any_to_json(v: &AnyValueKind) -> Value {
    match v {
        AnyValueKind::StringValue(s) => Value::String(s.clone()),
        AnyValueKind::BoolValue(b) => Value::Bool(*b),
        AnyValueKind::IntValue(i) => Value::Number((*i).into()),
        AnyValueKind::DoubleValue(d) => Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(d.to_string())),
        AnyValueKind::ArrayValue(a) => Value::Array(
            a.values
                .iter()
                .map(|v: &AnyValue| v.value.as_ref().map(any_to_json).unwrap_or(Value::Null))
                .collect(),
        ),
        AnyValueKind::KvlistValue(l) => Value::Object(kvs_to_map(&l.values)),
        AnyValueKind::BytesValue(b) => Value::String(hex(b)),
        // An index into a profile's string table: logs carry no table to resolve it with.
        AnyValueKind::StringValueStrindex(_) => Value::Null,
    }
}
