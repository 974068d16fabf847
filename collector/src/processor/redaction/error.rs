//! Why the redaction options cannot be used. Every variant names the option to fix, and
//! none holds key material: a key is only ever described by its length.

use std::path::PathBuf;

use super::config::MIN_KEY_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum RedactionError {
    #[error("`{option}`: `{pattern}` is not a valid regular expression: {source}")]
    BadPattern {
        option: &'static str,
        pattern: String,
        source: regex::Error,
    },
    /// Every pattern compiles alone but not as one set (too large together).
    #[error("`{option}`: {source}")]
    PatternSet {
        option: &'static str,
        source: regex::Error,
    },
    #[error(
        "set one of `hmac_key_file` and `hmac_key_env`, not both: the key must have one source"
    )]
    TwoKeySources,
    #[error("`hmac_key_file`: cannot read {}: {source}", path.display())]
    KeyFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`hmac_key_env`: the environment variable {name} is not set; set it to a secret of at \
         least {MIN_KEY_BYTES} bytes"
    )]
    KeyEnvUnset { name: String },
    #[error(
        "`{option}`: the HMAC key is {bytes} bytes; use at least {MIN_KEY_BYTES} (e.g. `openssl \
         rand -hex 32`)"
    )]
    KeyTooShort { option: &'static str, bytes: usize },
    #[error("`hmac_key`: {0}")]
    KeyRejected(hmac::digest::InvalidLength),
    #[error("`hash_function: hmac-sha256` needs a key: set `hmac_key_file` or `hmac_key_env`")]
    KeyMissing,
    #[error("`{option}` is set but only `hash_function: hmac-sha256` uses a key")]
    KeyUnused { option: &'static str },
}
