//! Redacting a JSON object held as text (a structured log body) where it lies.
//!
//! The guide's request logs carry `customer_id` and `user_agent` in JSON text bodies, so
//! most of them need a value hashed. Parsing such a body into a map and writing it back
//! cost more than the rest of the OTLP → file path for the same records; instead the text
//! is scanned once without building a tree (values borrowed as [`RawValue`] slices of the
//! text), each value the rules change is noted as a byte range and its replacement, and
//! only those ranges are rewritten. Everything else, key order and spacing included,
//! stays as the sender wrote it.
//!
//! Removing a key (`allowed_keys` without `allow_all_keys`) would also need the separator
//! around the entry; such a body, like text that is not one valid JSON object, is left to
//! the map path in `signals.rs` (the caller's fallback), so the result is the same rules
//! either way.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeSeed, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::rules::{KeyRule, Rules};
use super::summary::Tally;

/// What [`Rules::redact_json_text_in_place`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum InPlace {
    /// The rules change nothing in the text (they may still have counted ignored keys).
    Unchanged,
    /// The text with every change applied.
    Changed(String),
    /// Not one JSON object, or a key must be removed: take the map path.
    NeedsTree,
}

impl Rules {
    /// Applies the rules to the JSON object in `text` without parsing it into a map. The
    /// counts go to `tally` only when the answer is not [`InPlace::NeedsTree`], so the
    /// fallback does not count twice.
    pub fn redact_json_text_in_place(&self, text: &str, tally: &mut Tally) -> InPlace {
        if !text.trim_start().starts_with('{') {
            return InPlace::NeedsTree;
        }
        let mut walk = Walk {
            rules: self,
            text,
            edits: Vec::new(),
            tally: self.tally(),
            check_values: self.values_may_match_in(text),
        };
        let mut de = serde_json::Deserializer::from_str(text);
        if ObjectSeed(&mut walk).deserialize(&mut de).is_err() || de.end().is_err() {
            return InPlace::NeedsTree;
        }
        tally.absorb(walk.tally);
        if walk.edits.is_empty() {
            return InPlace::Unchanged;
        }
        InPlace::Changed(apply(text, &walk.edits))
    }
}

/// The walk's state: the whole text (edits are ranges of it), the edits so far in text
/// order, the counts, and whether string values need checking at all (no
/// `blocked_values` match anywhere in the text means none in any of its strings).
struct Walk<'r, 't> {
    rules: &'r Rules,
    text: &'t str,
    edits: Vec<(Range<usize>, String)>,
    tally: Tally,
    check_values: bool,
}

impl<'t> Walk<'_, 't> {
    /// Where `raw` (a slice of the text) lies in it.
    fn range_of(&self, raw: &RawValue) -> Range<usize> {
        let start = raw.get().as_ptr() as usize - self.text.as_ptr() as usize;
        start..start + raw.get().len()
    }

    /// One entry of an object: `key`'s rule applied to `raw`.
    fn entry(&mut self, key: &str, raw: &'t RawValue) -> Result<(), serde_json::Error> {
        match self.rules.key_rule(key) {
            KeyRule::Ignore => self.tally.ignored(),
            KeyRule::Remove => return Err(serde_json::Error::custom("a key to remove")),
            KeyRule::MaskWhole => {
                let masked = match string(raw)? {
                    Some(s) => self.rules.mask(&s),
                    None => self
                        .rules
                        .mask(&serde_json::from_str::<serde_json::Value>(raw.get())?.to_string()),
                };
                self.edits.push((self.range_of(raw), quoted_token(&masked)));
                self.tally.masked(key);
            }
            KeyRule::CheckValue => self.value(key, raw)?,
        }
        Ok(())
    }

    /// A kept value: strings against `blocked_values`, objects by their keys, arrays
    /// element by element (as `Rules::redact_json_value`).
    fn value(&mut self, key: &str, raw: &'t RawValue) -> Result<(), serde_json::Error> {
        match raw.get().as_bytes().first() {
            Some(b'"') if self.check_values => {
                let text = string(raw)?.unwrap_or_default();
                if let Some(masked) = self.rules.mask_matches(key, &text, &mut self.tally) {
                    self.edits
                        .push((self.range_of(raw), serde_json::to_string(&masked)?));
                }
            }
            Some(b'{') => {
                ObjectSeed(self).deserialize(&mut serde_json::Deserializer::from_str(raw.get()))?
            }
            Some(b'[') => {
                for item in serde_json::from_str::<Vec<&'t RawValue>>(raw.get())? {
                    self.value(key, item)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The string a raw JSON value holds (borrowed unless it has escapes), `None` for any
/// other kind of value.
fn string(raw: &RawValue) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
    if !raw.get().starts_with('"') {
        return Ok(None);
    }
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(s) => Ok(Some(Cow::Borrowed(s))),
        Err(_) => serde_json::from_str::<String>(raw.get()).map(|s| Some(Cow::Owned(s))),
    }
}

/// A mask or hash token as a JSON string: tokens are `****` or hex digits, which need no
/// escaping.
fn quoted_token(token: &str) -> String {
    debug_assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'*')
    );
    let mut quoted = String::with_capacity(token.len() + 2);
    quoted.push('"');
    quoted.push_str(token);
    quoted.push('"');
    quoted
}

/// `text` with each range replaced; the ranges are in order and do not overlap (the walk
/// visits the text front to back and never edits inside an edited value).
fn apply(text: &str, edits: &[(Range<usize>, String)]) -> String {
    let grown: usize = edits.iter().map(|(_, s)| s.len()).sum();
    let mut out = String::with_capacity(text.len() + grown);
    let mut at = 0;
    for (range, replacement) in edits {
        out.push_str(&text[at..range.start]);
        out.push_str(replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Deserializes one JSON object, walking its entries.
struct ObjectSeed<'w, 'r, 't>(&'w mut Walk<'r, 't>);

impl<'t> DeserializeSeed<'t> for ObjectSeed<'_, '_, 't> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'t>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'t> Visitor<'t> for ObjectSeed<'_, '_, 't> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'t>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let raw: &'t RawValue = map.next_value()?;
            self.0.entry(&key, raw).map_err(A::Error::custom)?;
        }
        Ok(())
    }
}

/// A key, borrowed from the text unless it has escapes.
struct KeySeed;

impl<'t> DeserializeSeed<'t> for KeySeed {
    type Value = Cow<'t, str>;

    fn deserialize<D: serde::Deserializer<'t>>(self, d: D) -> Result<Cow<'t, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'t> Visitor<'t> for KeySeed {
    type Value = Cow<'t, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'t str) -> Result<Cow<'t, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Cow<'t, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}
