//! The compiled options and how they apply to one attribute list or value.
//!
//! Order per key, as in the contrib processor: an ignored key passes untouched; a key that
//! is not allowed (unless `allow_all_keys`) is removed; a key matching
//! `blocked_key_patterns` has its whole value masked; any other value has the parts that
//! match `blocked_values` masked, unless the value matches `allowed_values`. Maps and lists
//! inside a value (structured log bodies, `kvlist` attributes, JSON documents) are walked
//! with the same rules, their keys treated like attribute keys.
//!
//! Everything is compiled once: keys are looked up in hash sets, `blocked_key_patterns`
//! and `allowed_values` are each one `RegexSet`, and `blocked_values` one `Regex` per
//! pattern (each keeps its own literal prefilter), so an attribute that matches nothing
//! costs a lookup and a scan, and allocates nothing. The rule of each key is remembered.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use foldhash::fast::RandomState;
use regex::{Regex, RegexSet};

use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};

use super::config::{RedactionConfig, Summary};
use super::error::RedactionError;
use super::masking::{MASK, Masker};
use super::summary::Tally;
use crate::aws::xray::METADATA_PREFIX;
use crate::model::json::any_to_json;

/// The memos' map: keys and values are short, and SipHash cost more than the regex scan
/// the key-rule memo saves; foldhash is seeded per map, so input cannot pick collisions.
type Memo<V> = HashMap<String, V, RandomState>;

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
    /// Empty when the option is not set.
    blocked_values: Vec<Regex>,
    /// No `blocked_values` pattern asserts a start or end (of the text or a line), so a
    /// match inside a quoted JSON string is a match in the whole JSON text too (see
    /// [`Rules::values_may_match_in`]).
    values_match_in_whole: bool,
    allowed_values: Option<RegexSet>,
    masker: Masker,
    /// The rule of each key seen, up to [`KEY_RULES_MAX`] keys (see [`Rules::key_rule`]);
    /// a mutex for the same reason as [`Tokens`].
    key_rules: Mutex<Memo<KeyRule>>,
    /// Tokens already computed in this batch (see [`Tokens`]).
    tokens: Tokens,
    summary: Summary,
}

/// Bounds the memory remembered key rules take: attribute keys are a small vocabulary,
/// and past this many distinct keys the rest are decided on each use.
const KEY_RULES_MAX: usize = 4096;

/// The tokens of the values hashed in the current batch: a service sends the same client
/// address, user agent and customer id many times, and an HMAC costs far more than a map
/// lookup. Same input, same token, so the output is unchanged. Cleared after every batch
/// (and when it grows past [`Tokens::MAX`]) so raw values are not kept in memory longer
/// than the batch that carried them. A mutex rather than a cell because the processor's
/// future holds `&Rules` across awaits and must be `Send`; it is never contended.
#[derive(Default)]
struct Tokens(Mutex<Memo<String>>);

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
    pub fn compile(config: &RedactionConfig) -> Result<Rules, RedactionError> {
        let blocked_values = config
            .blocked_values
            .iter()
            .map(|p| Regex::new(p).map_err(|e| bad_pattern("blocked_values", p, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let values_match_in_whole = config.blocked_values.iter().all(|p| {
            regex_syntax::parse(p).is_ok_and(|hir| !hir.properties().look_set().contains_anchor())
        });
        Ok(Rules {
            allow_all_keys: config.allow_all_keys,
            allowed_keys: config.allowed_keys.iter().cloned().collect(),
            ignored_keys: config.ignored_keys.iter().cloned().collect(),
            blocked_keys: set("blocked_key_patterns", &config.blocked_key_patterns)?,
            blocked_values,
            values_match_in_whole,
            allowed_values: set("allowed_values", &config.allowed_values)?,
            masker: Masker::from_config(config)?,
            key_rules: Mutex::default(),
            tokens: Tokens::default(),
            summary: config.summary,
        })
    }

    pub fn tally(&self) -> Tally {
        Tally::new(self.summary)
    }

    /// The rule for `key`. Keys repeat on every item, so the answer is remembered per
    /// key when it takes a regex scan (`blocked_key_patterns`); the hash set lookups alone
    /// are cheaper than the memo.
    pub fn key_rule(&self, key: &str) -> KeyRule {
        if self.blocked_keys.is_none() {
            return self.decide_key(key);
        }
        let mut known = self
            .key_rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(rule) = known.get(key) {
            return *rule;
        }
        let rule = self.decide_key(key);
        if known.len() < KEY_RULES_MAX {
            known.insert(key.to_owned(), rule);
        }
        rule
    }

    fn decide_key(&self, key: &str) -> KeyRule {
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

    /// Whether any string value can be changed by `blocked_values`.
    pub fn blocks_values(&self) -> bool {
        !self.blocked_values.is_empty()
    }

    /// Whether some string in `json_text` (a JSON document) can match `blocked_values`.
    /// One scan of the whole text per pattern answers for all its strings at once when no
    /// pattern is anchored and the text has no escapes: each string then lies verbatim in
    /// the text between quotes, and a quote is not a word character, so even `\b` sees the
    /// same edges. A match may also be in a key or outside any string: then the strings
    /// are checked one by one as before, so the answer only saves work, it changes nothing.
    pub fn values_may_match_in(&self, json_text: &str) -> bool {
        if !self.values_match_in_whole || json_text.contains('\\') {
            return self.blocks_values();
        }
        self.blocked_values.iter().any(|r| r.is_match(json_text))
    }

    /// `text` with every part matching `blocked_values` masked, or `None` when nothing
    /// needs to change (no match, or the value is exempt by `allowed_values`).
    pub fn mask_matches(&self, key: &str, text: &str, tally: &mut Tally) -> Option<String> {
        let regexes = &self.blocked_values;
        // `is_match` first: it allocates nothing, and most values match nothing. One regex
        // at a time rather than a `RegexSet`: alone, each keeps the literal its matches
        // must hold (`@` of an e-mail address, the leading digits of a card number) to skip
        // the value with `memchr`, which a set of several patterns cannot.
        let mut matching = regexes.iter().filter(|r| r.is_match(text)).peekable();
        matching.peek()?;
        if self
            .allowed_values
            .as_ref()
            .is_some_and(|a| a.is_match(text))
        {
            tally.allowed(key);
            return None;
        }
        let mut out = Cow::Borrowed(text);
        for regex in matching {
            if let Cow::Owned(replaced) =
                regex.replace_all(&out, |c: &regex::Captures<'_>| self.mask(&c[0]))
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

fn set(option: &'static str, patterns: &[String]) -> Result<Option<RegexSet>, RedactionError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    for p in patterns {
        Regex::new(p).map_err(|e| bad_pattern(option, p, e))?;
    }
    RegexSet::new(patterns)
        .map(Some)
        .map_err(|source| RedactionError::PatternSet { option, source })
}

fn bad_pattern(option: &'static str, pattern: &str, source: regex::Error) -> RedactionError {
    RedactionError::BadPattern {
        option,
        pattern: pattern.to_owned(),
        source,
    }
}
