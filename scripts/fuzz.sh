#!/usr/bin/env bash
# Coverage-guided fuzzing of the collector's input parsers with cargo-fuzz (libFuzzer), on
# stable Rust. Builds every target in fuzz/, runs each for a bounded time on its corpus in
# fuzz/corpus/<target>/, minimizes the corpus again (cargo fuzz cmin) and prints executions
# per second, total executions and coverage per target.
#
# Usage: scripts/fuzz.sh [seconds per target, default 60] [target ...]   (default: all)
#        FUZZ_JOBS=2 scripts/fuzz.sh 300    # two targets at a time (one per core)
#
# Why this works on stable: cargo-fuzz's default AddressSanitizer needs `-Zsanitizer`, a
# nightly-only flag. With `--sanitizer none` cargo-fuzz passes only stable rustc flags (the
# SanitizerCoverage instrumentation libFuzzer needs: `-Cpasses=sancov-module` and
# `-Cllvm-args=-sanitizer-coverage-*`; `--cfg fuzzing`; `-Cdebug-assertions
# -Coverflow-checks`), and libfuzzer-sys builds libFuzzer itself with the system C++
# compiler. No RUSTC_BOOTSTRAP, no nightly. ASan would only add checks for unsafe code, and
# the collector has none of its own; overflow checks and debug assertions stay on (do not
# pass -O: in cargo-fuzz it turns them off).
#
# A crash, hang (>10 s per input) or runaway allocation (>2 GiB) stops that target with its
# input in fuzz/artifacts/<target>/; the script goes on with the other targets and exits 1.
# Reproduce with `cargo fuzz run --sanitizer none <target> fuzz/artifacts/<target>/<file>`,
# fix, add a regression test next to the broken code and the input to
# fuzz/regressions/<target>/ under a name that says what it broke. `cargo test --workspace`
# replays every file of fuzz/corpus/ and fuzz/regressions/ (tests/tests/fuzz_corpus.rs),
# so commit fuzz/corpus/ after a run
# (it is minimized to at most FUZZ_CORPUS_MAX_FILES inputs per target, default 300).
#
# The build goes to fuzz/target/ (git-ignored, ~2-4 GB; a first build takes 15-20 minutes on
# 2 cores). It is wiped and rebuilt if it grows past FUZZ_TARGET_MAX_GB (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
jobs=${FUZZ_JOBS:-1}
max_gb=${FUZZ_TARGET_MAX_GB:-8}
max_files=${FUZZ_CORPUS_MAX_FILES:-300}
flags=(--sanitizer none)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version '^0.13'
fi

if [ -d fuzz/target ]; then
    size_gb=$(du -s --block-size=1G fuzz/target | cut -f1)
    if [ "$size_gb" -gt "$max_gb" ]; then
        echo "==> fuzz/target is ${size_gb} GB (> ${max_gb} GB): removing it before the build"
        rm -rf fuzz/target
    fi
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "==> building ${targets[*]}"
for t in "${targets[@]}"; do
    cargo fuzz build "${flags[@]}" "$t"
done

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

run_one() {
    local t=$1 log="$logs/$1.log"
    mkdir -p "fuzz/corpus/$t"
    local status=0 extra=()
    [ -f "fuzz/dict/$t.dict" ] && extra+=(-dict="fuzz/dict/$t.dict")
    # Inputs that once crashed are read as seeds too (new inputs go to the first directory).
    local dirs=("fuzz/corpus/$t")
    [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
    cargo fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1 || status=$?
    echo "$status" >"$logs/$t.status"
    if [ "$status" -eq 0 ]; then
        # Keep the corpus small: cmin keeps the inputs that add coverage (edges only, not
        # hit counts), then fuzz/minimize.py keeps a greedy cover of at most
        # FUZZ_CORPUS_MAX_FILES of them.
        if cargo fuzz cmin "${flags[@]}" "$t" "fuzz/corpus/$t" -- -use_counters=0 \
            -merge_control_file="$logs/$t.merge" >"$logs/$t.cmin.log" 2>&1; then
            python3 fuzz/minimize.py "$logs/$t.merge" "fuzz/corpus/$t" "$max_files" \
                >"$logs/$t.minimize.log"
        else
            echo "$t: cargo fuzz cmin failed:" >&2
            tail -5 "$logs/$t.cmin.log" >&2
        fi
    fi
}

echo "==> fuzzing ${#targets[@]} target(s) for ${seconds} s each, ${jobs} at a time"
running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

failed=0
printf '\n%-15s %8s %12s %10s %8s %8s  %s\n' target seconds execs "exec/s" cov corpus result
for t in "${targets[@]}"; do
    log="$logs/$t.log"
    stat() { grep -o "stat::$1: *[0-9]*" "$log" | tail -1 | grep -o '[0-9]*$' || echo '?'; }
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    files=$(find "fuzz/corpus/$t" -type f | wc -l)
    if [ "$(cat "$logs/$t.status")" -eq 0 ]; then
        result=ok
    else
        result="FAILED: $(ls -t fuzz/artifacts/"$t"/* 2>/dev/null | head -1)"
        failed=1
        echo "---- $t ----" >&2
        grep -E -A15 "panicked|ERROR: libFuzzer|SUMMARY" "$log" | head -40 >&2 || tail -40 "$log" >&2
    fi
    printf '%-15s %8s %12s %10s %8s %8s  %s\n' "$t" "$seconds" "$(stat number_of_executed_units)" \
        "$(stat average_exec_per_sec)" "${cov:-?}" "$files" "$result"
done
cat "$logs"/*.minimize.log 2>/dev/null || true
echo "fuzz/corpus: $(find fuzz/corpus -type f | wc -l) files, $(cat fuzz/corpus/*/* | wc -c) bytes;" \
    "fuzz/target: $(du -sh fuzz/target | cut -f1)"
exit "$failed"
