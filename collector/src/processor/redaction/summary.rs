//! What one item's redaction did, and the contrib's summary attributes that report it.

use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};

use super::config::Summary;

pub const REDACTED_KEYS: &str = "redaction.redacted.keys";
pub const REDACTED_COUNT: &str = "redaction.redacted.count";
pub const MASKED_KEYS: &str = "redaction.masked.keys";
pub const MASKED_COUNT: &str = "redaction.masked.count";
pub const ALLOWED_KEYS: &str = "redaction.allowed.keys";
pub const ALLOWED_COUNT: &str = "redaction.allowed.count";
pub const IGNORED_COUNT: &str = "redaction.ignored.count";

/// Counts (and, at `debug`, key names) for one span, log record, data point or resource.
/// Nothing is allocated unless something was redacted.
#[derive(Debug)]
pub struct Tally {
    level: Summary,
    /// Keys removed because they are not allowed.
    redacted: Outcome,
    /// Keys whose value was masked or hashed (whole or in part).
    masked: Outcome,
    /// Keys whose value matched `blocked_values` but was let through by `allowed_values`.
    allowed: Outcome,
    ignored: i64,
}

#[derive(Debug, Default)]
struct Outcome {
    count: i64,
    keys: Vec<String>,
}

impl Outcome {
    fn add(&mut self, key: &str, names: bool) {
        self.count += 1;
        if names {
            self.keys.push(key.to_owned());
        }
    }
}

impl Tally {
    pub fn new(level: Summary) -> Tally {
        Tally {
            level,
            redacted: Outcome::default(),
            masked: Outcome::default(),
            allowed: Outcome::default(),
            ignored: 0,
        }
    }

    pub fn redacted(&mut self, key: &str) {
        self.redacted.add(key, self.level == Summary::Debug);
    }

    pub fn masked(&mut self, key: &str) {
        self.masked.add(key, self.level == Summary::Debug);
    }

    pub fn allowed(&mut self, key: &str) {
        self.allowed.add(key, self.level == Summary::Debug);
    }

    pub fn ignored(&mut self) {
        self.ignored += 1;
    }

    /// Adds what `other` counted (a walk that counted on its own until it knew it would
    /// not be redone another way).
    pub fn absorb(&mut self, other: Tally) {
        for (mine, theirs) in [
            (&mut self.redacted, other.redacted),
            (&mut self.masked, other.masked),
            (&mut self.allowed, other.allowed),
        ] {
            mine.count += theirs.count;
            mine.keys.extend(theirs.keys);
        }
        self.ignored += other.ignored;
    }

    /// Adds the summary attributes to `attributes`, adding to counts and key lists already
    /// there (a second redaction processor, or an earlier stage, may have written them).
    pub fn write(mut self, attributes: &mut Vec<KeyValue>) {
        if self.level == Summary::Silent {
            return;
        }
        let names = self.level == Summary::Debug;
        for (outcome, keys, count) in [
            (&mut self.redacted, REDACTED_KEYS, REDACTED_COUNT),
            (&mut self.masked, MASKED_KEYS, MASKED_COUNT),
            (&mut self.allowed, ALLOWED_KEYS, ALLOWED_COUNT),
        ] {
            if outcome.count == 0 {
                continue;
            }
            add_count(attributes, count, outcome.count);
            if names {
                outcome.keys.sort_unstable();
                add_keys(attributes, keys, &outcome.keys.join(","));
            }
        }
        if self.ignored > 0 {
            add_count(attributes, IGNORED_COUNT, self.ignored);
        }
    }
}

fn add_count(attributes: &mut Vec<KeyValue>, key: &str, n: i64) {
    match find(attributes, key) {
        Some(Value::IntValue(existing)) => *existing += n,
        Some(other) => *other = Value::IntValue(n),
        None => attributes.push(attribute(key, Value::IntValue(n))),
    }
}

fn add_keys(attributes: &mut Vec<KeyValue>, key: &str, list: &str) {
    match find(attributes, key) {
        Some(Value::StringValue(existing)) if !existing.is_empty() => {
            existing.push(',');
            existing.push_str(list);
        }
        Some(other) => *other = Value::StringValue(list.to_owned()),
        None => attributes.push(attribute(key, Value::StringValue(list.to_owned()))),
    }
}

fn find<'a>(attributes: &'a mut [KeyValue], key: &str) -> Option<&'a mut Value> {
    let kv = attributes.iter_mut().find(|kv| kv.key == key)?;
    Some(
        kv.value
            .get_or_insert_with(AnyValue::default)
            .value
            .get_or_insert(Value::IntValue(0)),
    )
}

fn attribute(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
