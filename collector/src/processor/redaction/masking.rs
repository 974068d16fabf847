//! What a blocked value becomes: the fixed mask, or a hash of it.
//!
//! Hashes are hex, deterministic for one input (and one key), so the same customer id in a
//! span, a log record and a metric dimension becomes the same token, and joins across
//! signals and across restarts still work without the raw value leaving the collector.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::config::{HashFunction, MIN_KEY_BYTES, RedactionConfig};
use super::error::RedactionError;
use crate::model::ids::hex;

/// The mask the contrib processor writes when no hash function is set.
pub const MASK: &str = "****";

/// Replaces one blocked value.
#[derive(Clone)]
pub enum Masker {
    Fixed,
    Sha256,
    /// The keyed state is computed once; each value starts from a copy of it.
    Hmac(Box<Hmac<Sha256>>),
}

impl std::fmt::Debug for Masker {
    /// Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Masker::Fixed => "Fixed",
            Masker::Sha256 => "Sha256",
            Masker::Hmac(_) => "Hmac",
        })
    }
}

impl Masker {
    /// The masker the options ask for, reading the HMAC key; errors name the option.
    pub fn from_config(config: &RedactionConfig) -> Result<Masker, RedactionError> {
        let key_source = match (&config.hmac_key_file, &config.hmac_key_env) {
            (Some(_), Some(_)) => return Err(RedactionError::TwoKeySources),
            (file, env) => file
                .as_deref()
                .map(KeySource::File)
                .or(env.as_deref().map(KeySource::Env)),
        };
        match (config.hash_function, key_source) {
            (None, None) => Ok(Masker::Fixed),
            (Some(HashFunction::Sha256), None) => Ok(Masker::Sha256),
            (Some(HashFunction::HmacSha256), Some(source)) => {
                let key = source.read()?;
                let mac =
                    Hmac::<Sha256>::new_from_slice(&key).map_err(RedactionError::KeyRejected)?;
                Ok(Masker::Hmac(Box::new(mac)))
            }
            (Some(HashFunction::HmacSha256), None) => Err(RedactionError::KeyMissing),
            (_, Some(source)) => Err(RedactionError::KeyUnused {
                option: source.option(),
            }),
        }
    }

    /// The replacement for `value` (the whole value, or one match inside it).
    pub fn mask(&self, value: &str) -> String {
        match self {
            Masker::Fixed => MASK.to_owned(),
            Masker::Sha256 => hex(&Sha256::digest(value.as_bytes())),
            Masker::Hmac(keyed) => {
                let mut mac = keyed.as_ref().clone();
                mac.update(value.as_bytes());
                hex(&mac.finalize().into_bytes())
            }
        }
    }
}

enum KeySource<'a> {
    File(&'a Path),
    Env(&'a str),
}

impl KeySource<'_> {
    fn option(&self) -> &'static str {
        match self {
            KeySource::File(_) => "hmac_key_file",
            KeySource::Env(_) => "hmac_key_env",
        }
    }

    fn read(&self) -> Result<Vec<u8>, RedactionError> {
        let mut key = match self {
            KeySource::File(path) => {
                std::fs::read(path).map_err(|source| RedactionError::KeyFileUnreadable {
                    path: path.to_path_buf(),
                    source,
                })?
            }
            KeySource::Env(name) => match std::env::var_os(name) {
                Some(v) => v.into_encoded_bytes(),
                None => {
                    return Err(RedactionError::KeyEnvUnset {
                        name: (*name).to_owned(),
                    });
                }
            },
        };
        while key.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
            key.pop();
        }
        if key.len() < MIN_KEY_BYTES {
            return Err(RedactionError::KeyTooShort {
                option: self.option(),
                bytes: key.len(),
            });
        }
        Ok(key)
    }
}
