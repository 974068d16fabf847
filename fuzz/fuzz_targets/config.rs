//! YAML configuration files (split on `#8<---` lines into several merged files)
//! through parsing, `${env:...}` substitution, merging and validation.
//!
//! The harness is `aurastream_e2e::fuzzing::config`, which the corpus replay test
//! (collector/tests/fuzz_corpus.rs) also runs on every file of fuzz/corpus/config/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aurastream_e2e::fuzzing::config(data));
