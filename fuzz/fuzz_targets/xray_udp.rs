//! X-Ray daemon UDP datagrams (header line + segment document) through the `awsxray`
//! receiver's parser; the spans it makes must pass OTLP validation.
//!
//! The harness is `aurastream_e2e::fuzzing::xray_udp`, which the corpus replay test
//! (collector/tests/fuzz_corpus.rs) also runs on every file of fuzz/corpus/xray_udp/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aurastream_e2e::fuzzing::xray_udp(data));
