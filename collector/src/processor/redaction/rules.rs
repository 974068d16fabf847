//! The compiled options and how they apply to one attribute list or value.
//!
//! Order per key, as in the contrib processor: an ignored key passes untouched; a key that
//! is not allowed (unless `allow_all_keys`) is removed; a key matching
//! `blocked_key_patterns` has its whole value masked; any other value has the parts that
//! match `blocked_values` masked, unless the value matches `allowed_values`. Maps and lists
//! inside a value (structured log bodies, `kvlist` attributes, JSON documents) are walked
//! with the same rules, their keys treated like attribute keys.
//!
//! Everything is compiled once: keys are looked up in hash sets, and each pattern list is
//! one `RegexSet`, so an attribute that matches nothing costs a lookup and a scan, and
//! allocates nothing.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use regex::{Regex, RegexSet};

use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};

use super::config::{RedactionConfig, Summary};
use super::masking::{MASK, Masker};
use super::summary::Tally;
use crate::aws::xray::METADATA_PREFIX;
use crate::model::json::any_to_json;

/// What the options say about one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// `ignored_keys`: left as it is.
    Ignore,
    /// Not allowed: removed.
    Remove,
    /// `blocked_key_patterns`: the whole value masked.
    MaskWhole,
    /// Kept; its value checked against `blocked_values`.
    CheckValue,
}

#[derive(Debug)]
pub struct Rules {
    allow_all_keys: bool,
    allowed_keys: HashSet<String>,
    ignored_keys: HashSet<String>,
    blocked_keys: Option<RegexSet>,
    /// The set answers "does anything match"; the regexes find where, for the ones that do.
    blocked_values: Option<(RegexSet, Vec<Regex>)>,
    allowed_values: Option<RegexSet>,
    masker: Masker,
    /// Tokens already computed in this batch (see [`Tokens`]).
    tokens: Tokens,
    summary: Summary,
}

/// The tokens of the values hashed in the current batch: a service sends the same client
/// address, user agent and customer id many times, and an HMAC costs far more than a map
/// lookup. Same input, same token, so the output is unchanged. Cleared after every batch
/// (and when it grows past [`Tokens::MAX`]) so raw values are not kept in memory longer
/// than the batch that carried them. A mutex rather than a cell because the processor's
/// future holds `&Rules` across awaits and must be `Send`; it is never contended.
#[derive(Default)]
struct Tokens(Mutex<HashMap<String, String>>);

impl Tokens {
    /// Bounds the memory one batch of distinct values can take.
    const MAX: usize = 4096;

    pub(super) fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl std::fmt::Debug for Tokens {
    /// Never prints the cached raw values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

impl Rules {
    /// Compiles the options; an error names the option and the pattern.
    pub fn compile(config: &RedactionConfig) -> Result<Rules, String> {
        let blocked_values = match set("blocked_values", &config.blocked_values)? {
            Some(set) => {
                let regexes = config
                    .blocked_values
                    .iter()
                    .map(|p| Regex::new(p).map_err(|e| bad_pattern("blocked_values", p, &e)))
                    .collect::<Result<_, _>>()?;
                Some((set, regexes))
            }
            None => None,
        };
        Ok(Rules {
            allow_all_keys: config.allow_all_keys,
            allowed_keys: config.allowed_keys.iter().cloned().collect(),
            ignored_keys: config.ignored_keys.iter().cloned().collect(),
            blocked_keys: set("blocked_key_patterns", &config.blocked_key_patterns)?,
            blocked_values,
            allowed_values: set("allowed_values", &config.allowed_values)?,
            masker: Masker::from_config(config)?,
            tokens: Tokens::default(),
            summary: config.summary,
        })
    }

    pub fn tally(&self) -> Tally {
        Tally::new(self.summary)
    }

    pub fn key_rule(&self, key: &str) -> KeyRule {
        if self.ignored_keys.contains(key) {
            KeyRule::Ignore
        } else if !self.allow_all_keys && !self.allowed_keys.contains(key) {
            KeyRule::Remove
        } else if self.blocked_keys.as_ref().is_some_and(|s| s.is_match(key)) {
            KeyRule::MaskWhole
        } else {
            KeyRule::CheckValue
        }
    }

    /// The replacement for a whole value.
    pub fn mask(&self, value: &str) -> String {
        if matches!(self.masker, Masker::Fixed) {
            return MASK.to_owned();
        }
        let mut tokens = self.tokens.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = tokens.get(value) {
            return token.clone();
        }
        let token = self.masker.mask(value);
        if tokens.len() >= Tokens::MAX {
            tokens.clear();
        }
        tokens.insert(value.to_owned(), token.clone());
        token
    }

    /// Forgets the tokens of the batch just redacted.
    pub(super) fn end_batch(&self) {
        self.tokens.clear();
    }

    /// True when the rules leave the JSON object in `text` exactly as it is and count
    /// nothing: every key, at any depth, is kept and checked (not ignored, removed or
    /// masked whole) and no string value matches `blocked_values`. Checked with a borrowing
    /// scan that builds no tree, so a body the rules cannot touch is neither parsed into a
    /// map nor written back. Anything else (including text that is not a JSON object)
    /// answers false and takes the full path, so the result is the same either way.
    pub fn json_object_untouched(&self, text: &str) -> bool {
        let mut de = serde_json::Deserializer::from_str(text);
        serde::de::DeserializeSeed::deserialize(
            Scan {
                rules: self,
                top: true,
            },
            &mut de,
        )
        .is_ok()
            && de.end().is_ok()
    }

    /// `text` with every part matching `blocked_values` masked, or `None` when nothing
    /// needs to change (no match, or the value is exempt by `allowed_values`).
    pub fn mask_matches(&self, key: &str, text: &str, tally: &mut Tally) -> Option<String> {
        let (set, regexes) = self.blocked_values.as_ref()?;
        // `is_match` first: it allocates nothing, and most values match nothing.
        if !set.is_match(text) {
            return None;
        }
        if self
            .allowed_values
            .as_ref()
            .is_some_and(|a| a.is_match(text))
        {
            tally.allowed(key);
            return None;
        }
        let mut out = Cow::Borrowed(text);
        for i in set.matches(text).iter() {
            if let Cow::Owned(replaced) =
                regexes[i].replace_all(&out, |c: &regex::Captures<'_>| self.mask(&c[0]))
            {
                out = Cow::Owned(replaced);
            }
        }
        tally.masked(key);
        Some(out.into_owned())
    }

    /// Applies the rules to an attribute list (or the entries of a `kvlist`).
    pub fn redact_attributes(&self, attributes: &mut Vec<KeyValue>, tally: &mut Tally) {
        attributes.retain_mut(|kv| match self.key_rule(&kv.key) {
            KeyRule::Ignore => {
                tally.ignored();
                true
            }
            KeyRule::Remove => {
                tally.redacted(&kv.key);
                false
            }
            KeyRule::MaskWhole => {
                if let Some(value) = kv.value.as_mut() {
                    self.mask_whole(&mut value.value);
                }
                tally.masked(&kv.key);
                true
            }
            KeyRule::CheckValue => {
                if let Some(value) = kv.value.as_mut() {
                    self.redact_value(&kv.key, &mut value.value, tally);
                }
                true
            }
        });
    }

    /// Replaces any value with the mask of its text form (the string itself, a number's
    /// digits, a map or list as JSON), so a blocked key never keeps a readable value.
    pub fn mask_whole(&self, value: &mut Option<Value>) {
        let text = match value.as_ref() {
            None => String::new(),
            Some(Value::StringValue(s)) => {
                *value = Some(Value::StringValue(self.mask(s)));
                return;
            }
            Some(v) => any_to_json(v).to_string(),
        };
        *value = Some(Value::StringValue(self.mask(&text)));
    }

    /// Checks a kept value: strings against `blocked_values`, maps and lists entry by entry.
    /// The X-Ray receiver's metadata attributes hold a JSON document: redacted as one.
    pub fn redact_value(&self, key: &str, value: &mut Option<Value>, tally: &mut Tally) {
        match value {
            Some(Value::StringValue(s)) => {
                let masked = if key.starts_with(METADATA_PREFIX) {
                    self.redact_json_text(key, s, tally)
                } else {
                    self.mask_matches(key, s, tally)
                };
                if let Some(masked) = masked {
                    *s = masked;
                }
            }
            Some(Value::KvlistValue(list)) => self.redact_attributes(&mut list.values, tally),
            Some(Value::ArrayValue(array)) => {
                for AnyValue { value } in &mut array.values {
                    self.redact_value(key, value, tally);
                }
            }
            _ => {}
        }
    }

    /// The JSON text of an X-Ray metadata attribute (`aws.xray.metadata.ns`), redacted
    /// like the namespace in the document (text that is not JSON has `blocked_values`
    /// masked); `None` when nothing changed.
    fn redact_json_text(&self, key: &str, text: &str, tally: &mut Tally) -> Option<String> {
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) else {
            return self.mask_matches(key, text, tally);
        };
        self.redact_json_value(key, &mut value, tally)
            .then(|| value.to_string())
    }

    /// Applies the rules to a JSON object's entries, as to attributes. True if anything
    /// changed.
    pub fn redact_json_object(
        &self,
        object: &mut serde_json::Map<String, serde_json::Value>,
        tally: &mut Tally,
    ) -> bool {
        let mut changed = false;
        object.retain(|key, value| {
            let (keep, touched) = self.redact_json_entry(key, value, tally);
            changed |= touched;
            keep
        });
        changed
    }

    /// One JSON entry whose key stands for attribute `key`: (keep it, changed).
    pub fn redact_json_entry(
        &self,
        key: &str,
        value: &mut serde_json::Value,
        tally: &mut Tally,
    ) -> (bool, bool) {
        match self.key_rule(key) {
            KeyRule::Ignore => {
                tally.ignored();
                (true, false)
            }
            KeyRule::Remove => {
                tally.redacted(key);
                (false, true)
            }
            KeyRule::MaskWhole => {
                let masked = match &*value {
                    serde_json::Value::String(s) => self.mask(s),
                    other => self.mask(&other.to_string()),
                };
                *value = serde_json::Value::String(masked);
                tally.masked(key);
                (true, true)
            }
            KeyRule::CheckValue => (true, self.redact_json_value(key, value, tally)),
        }
    }

    /// A kept JSON value: strings against `blocked_values`, objects by their keys, arrays
    /// element by element. True if anything changed.
    pub fn redact_json_value(
        &self,
        key: &str,
        value: &mut serde_json::Value,
        tally: &mut Tally,
    ) -> bool {
        match value {
            serde_json::Value::String(s) => match self.mask_matches(key, s, tally) {
                Some(masked) => {
                    *s = masked;
                    true
                }
                None => false,
            },
            serde_json::Value::Object(object) => self.redact_json_object(object, tally),
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |changed, v| {
                self.redact_json_value(key, v, tally) | changed
            }),
            _ => false,
        }
    }
}

/// One JSON value in [`Rules::json_object_untouched`]'s scan; an error means "the rules
/// could touch this".
struct Scan<'r> {
    rules: &'r Rules,
    /// Only an object is a structured body; other top-level JSON takes the full path.
    top: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for Scan<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Scan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON the rules leave alone")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(rule) = map.next_key_seed(KeyScan(self.rules))? {
            if rule != KeyRule::CheckValue {
                return Err(serde::de::Error::custom("key rule applies"));
            }
            map.next_value_seed(Scan {
                rules: self.rules,
                top: false,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            return Err(serde::de::Error::custom("not an object"));
        }
        let item = || Scan {
            rules: self.rules,
            top: false,
        };
        while seq.next_element_seed(item())?.is_some() {}
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        let blocked = self
            .rules
            .blocked_values
            .as_ref()
            .is_some_and(|(set, _)| set.is_match(v));
        if self.top || blocked {
            return Err(E::custom("value rule applies"));
        }
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

impl Scan<'_> {
    fn scalar<E: serde::de::Error>(self) -> Result<(), E> {
        if self.top {
            return Err(E::custom("not an object"));
        }
        Ok(())
    }
}

/// A key in the scan, read without allocating: its [`KeyRule`].
struct KeyScan<'r>(&'r Rules);

impl<'de> serde::de::DeserializeSeed<'de> for KeyScan<'_> {
    type Value = KeyRule;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<KeyRule, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyScan<'_> {
    type Value = KeyRule;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyRule, E> {
        Ok(self.0.key_rule(v))
    }
}

fn set(option: &str, patterns: &[String]) -> Result<Option<RegexSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    for p in patterns {
        Regex::new(p).map_err(|e| bad_pattern(option, p, &e))?;
    }
    RegexSet::new(patterns)
        .map(Some)
        .map_err(|e| format!("`{option}`: {e}"))
}

fn bad_pattern(option: &str, pattern: &str, e: &regex::Error) -> String {
    format!("`{option}`: `{pattern}` is not a valid regular expression: {e}")
}
