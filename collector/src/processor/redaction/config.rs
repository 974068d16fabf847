//! Options of the `redaction` processor, with the OpenTelemetry Collector contrib
//! `redactionprocessor`'s names and meaning, so a contrib config reads the same here.

use std::path::PathBuf;

use serde::Deserialize;

/// The shortest HMAC key taken: shorter keys can be found by trying them; 16 bytes is 128
/// bits when chosen at random.
pub const MIN_KEY_BYTES: usize = 16;

/// ```yaml
/// processors:
///   redaction:
///     allow_all_keys: false        # false: attributes not in allowed_keys are removed
///     allowed_keys: [http.route]   # kept (their values still checked)
///     ignored_keys: [trace.note]   # passed through untouched, never checked
///     blocked_key_patterns: ["^(client\\.address|enduser\\.id)$"]  # whole value masked
///     blocked_values: ["4[0-9]{12}(?:[0-9]{3})?"]  # matching text masked in any value
///     allowed_values: [".+@example\\.com"]        # values exempt from blocked_values
///     hash_function: hmac-sha256   # mask with a keyed hash instead of `****`
///     hmac_key_env: AURASTREAM_REDACTION_HMAC_KEY  # or hmac_key_file: /run/secrets/key
///     summary: info                # debug | info | silent
/// ```
///
/// The defaults are the contrib's: with neither `allow_all_keys` nor `allowed_keys` every
/// attribute is removed (the list fails closed).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    pub allow_all_keys: bool,
    pub allowed_keys: Vec<String>,
    pub ignored_keys: Vec<String>,
    pub blocked_key_patterns: Vec<String>,
    pub blocked_values: Vec<String>,
    pub allowed_values: Vec<String>,
    pub hash_function: Option<HashFunction>,
    /// A file holding the HMAC key (trailing line breaks are not part of it).
    pub hmac_key_file: Option<PathBuf>,
    /// The name of an environment variable holding the HMAC key. The key itself never
    /// appears in the configuration, so printing or committing a config cannot leak it.
    pub hmac_key_env: Option<String>,
    pub summary: Summary,
}

/// What replaces a blocked value: without one, the fixed mask `****`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum HashFunction {
    /// Hex SHA-256 of the value. Joins still work, but anyone can hash a guess (an IPv4
    /// address has only 2^32 values), so it hides little from a determined reader.
    #[serde(rename = "sha256")]
    Sha256,
    /// Hex HMAC-SHA-256 under a secret key: stable for one key, unguessable without it.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

/// How much the processor tells about what it did, as attributes on the item it changed.
/// Names of redacted keys can themselves be revealing, hence the levels.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Summary {
    /// Counts and the sorted, comma-separated key names.
    Debug,
    /// Counts only.
    #[default]
    Info,
    /// Nothing.
    Silent,
}

impl crate::component::factory::Registered for RedactionConfig {
    const TYPE: &'static str = "redaction";
}
