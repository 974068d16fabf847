#!/usr/bin/env bash
# Longer fuzz-style runs of the property tests in collector/tests/fuzz_inputs.rs (stable
# Rust: cargo-fuzz needs nightly). Usage: scripts/fuzz.sh [cases per target, default 100000]
#
# A failing input is saved by proptest in collector/tests/fuzz_inputs.proptest-regressions
# and replayed first on every later run (also in the normal test suite): commit that file.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${1:-100000}"
exec cargo test --release -p aurastream-collector --test fuzz_inputs -- --nocapture
