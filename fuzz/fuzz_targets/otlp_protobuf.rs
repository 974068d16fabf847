//! OTLP/HTTP protobuf export requests (traces, metrics, logs; plain or gzip), decoded,
//! validated and round-tripped as the receiver does.
//!
//! The harness is `aurastream_e2e::fuzzing::otlp_protobuf`, which the corpus replay test
//! (collector/tests/fuzz_corpus.rs) also runs on every file of fuzz/corpus/otlp_protobuf/.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aurastream_e2e::fuzzing::otlp_protobuf(data));
