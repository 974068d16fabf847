#!/usr/bin/env bash
# End-to-end throughput and memory of the release collector, driven by aurastream-loadgen.
#
#   scripts/bench.sh [seconds] [suite...]
#   scripts/bench.sh compare OTHER-BINARY [seconds] [suite...]
#
# `compare` runs every scenario four times, alternating this tree's release build and
# OTHER-BINARY (another build of the collector, e.g. from `git worktree add` of an older
# commit: it must take `--config FILE`), and prints each run, the mean exported rate of
# each binary and their ratio (ours / other). Alternating on the same machine at the same
# time cancels most of the drift of a shared machine; compare ratios, not absolute rates.
#
# Suites (default: otlp xray):
#   otlp  the file exporter writing OTLP/JSON lines (the receive path);
#   redaction  the otlp path without and with the shipped redaction rules (the
#         `redaction` processor of deploy/config/sidecar.yaml, HMAC-SHA-256), alternating;
#   xray  the awsxray exporter: to a file (translation + write), to aurastream-xray-sink (a
#         PutTraceSegments stand-in that accepts everything: translation, batching, SigV4,
#         HTTP) and to moto (.venv, made by scripts/test.sh; moto's Python is the limit);
#   overload  the awsxray exporter to aurastream-xray-sink with 100-span requests from 4
#         connections, then from 64 (the collector cannot keep up with either: the second
#         measures what refusing the surplus costs; the exported rate should hold);
#   otlphttp  the otlphttp exporter with sigv4auth (X-Ray's OTLP endpoint, no translation)
#         to aurastream-xray-sink's /v1/traces, gzip (the default) and uncompressed,
#         next to the same load through awsxray (PutTraceSegments) for comparison.
#
# The collector runs pinned to core 0 (taskset -c 0); the load generator (and the sink or
# moto) run on core 1. Prints one line per scenario, with the 1-minute load average before
# and after the load (the benchmark itself accounts for about 2 on this 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
other=
if [ "${1:-}" = compare ]; then
    other=$(realpath "${2:?compare needs the other collector binary}")
    [ -x "$other" ] || { echo "$other is not an executable"; exit 2; }
    shift 2
fi
secs=${1:-20}
shift || true
suites=${*:-otlp xray}
cargo build --release -p aurastream-collector -p aurastream-loadgen >/dev/null 2>&1
ours=target/release/aurastream-collector
bin=$ours
gen=target/release/aurastream-loadgen
sink=target/release/aurastream-xray-sink
work=$(mktemp -d)
pid=; peer=
trap 'kill $pid $peer 2>/dev/null || true; rm -rf "$work"' EXIT

# MEMORY_LIMITER="limit_mib: 1024, spike_limit_mib: 256" turns the memory budget on for
# the otlp suite (to measure what it costs: run once with, once without).
limiter=${MEMORY_LIMITER:+  memory_limiter: { $MEMORY_LIMITER \}}
cat > "$work/bench.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:14317 }
      http: { endpoint: 127.0.0.1:14318 }
processors:
  batch: { send_batch_size: 8192, timeout: 200ms }
exporters:
  file/traces: { path: $work/traces.jsonl, rotation: { max_megabytes: 256, max_backups: 2 } }
  file/logs: { path: $work/logs.jsonl, rotation: { max_megabytes: 256, max_backups: 2 } }
extensions:
  health_check: { endpoint: 127.0.0.1:14133 }
service:
  extensions: [health_check]
${limiter}
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [file/traces] }
    logs: { receivers: [otlp], processors: [batch], exporters: [file/logs] }
YAML

# traces_config NAME EXPORTER-TYPE EXPORTER-OPTIONS [EXTENSION]: the same receivers and
# batch, traces to one exporter (and one more extension, e.g. sigv4auth, beside the health
# check).
traces_config() {
    local ext=${4:+, ${4%%:*}}
    cat > "$work/$1.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:14317 }
      http: { endpoint: 127.0.0.1:14318 }
processors:
  batch: { send_batch_size: 8192, timeout: 200ms }
exporters:
  $2: $3
extensions:
  health_check: { endpoint: 127.0.0.1:14133 }
  ${4:-}
service:
  extensions: [health_check$ext]
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [$2] }
YAML
}

# xray_config NAME EXPORTER-OPTIONS: traces to awsxray.
xray_config() { traces_config "$1" awsxray "$2"; }

metric() { curl -s http://127.0.0.1:14133/metrics | awk -v m="$1" -v l="$2" '$1 ~ "^"m && index($1, l) {s+=$2} END {printf "%d", s}'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$pid/status; }
peak_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$pid/status; }
cpu_ticks() { awk '{print $14+$15}' /proc/$pid/stat; }

load() { cut -d' ' -f1-3 /proc/loadavg; }

start_collector() { # [config]
    # Test credentials for the X-Ray endpoints (the sink and moto check no signature).
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
        AWS_EC2_METADATA_DISABLED=true AURASTREAM_REDACTION_HMAC_KEY=bench-redaction-key-0123456789 \
        taskset -c 0 "$bin" --config "${1:-$work/bench.yaml}" --log-level warn \
        >/dev/null 2>"$work/err" &
    pid=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:14133/health >/dev/null && return; sleep 0.1; done
    echo "collector did not start"; cat "$work/err"; exit 1
}

# scenario NAME PROTOCOL ENDPOINT SIGNAL RATE CONNECTIONS BATCH [CONFIG]: one run with $bin,
# or, in compare mode, four runs alternating our binary and the other one.
scenario() {
    if [ -z "$other" ]; then
        run "$@"
        return
    fi
    local rates_ours=() rates_other=()
    for _ in 1 2; do
        bin=$ours; run "ours  $1" "${@:2}"; rates_ours+=("$rate")
        bin=$other; run "other $1" "${@:2}"; rates_other+=("$rate")
    done
    bin=$ours
    awk -v n="$1" -v a="${rates_ours[*]}" -v b="${rates_other[*]}" 'BEGIN {
        split(a, x, " "); split(b, y, " "); ma = (x[1] + x[2]) / 2; mb = (y[1] + y[2]) / 2
        printf "%-34s ours %8.0f/s  other %8.0f/s  ratio %.2f\n", n, ma, mb, (mb > 0 ? ma / mb : 0) }'
}

# The exported rate of the last run (read by `scenario` in compare mode).
rate=0
run() { # name protocol endpoint signal rate connections batch [config]
    local name=$1 proto=$2 ep=$3 signal=$4 target=$5 conns=$6 batch=$7 config=${8:-}
    local load0; load0=$(load)
    start_collector $config
    local sent0 t0 c0
    sent0=$(metric aurastream_exporter_sent_items_total "signal=\"$signal\"")
    t0=$(date +%s.%N); c0=$(cpu_ticks)
    local summary
    summary=$(taskset -c 1 "$gen" --protocol "$proto" --endpoint "$ep" --signal "$signal" \
        --rate "$target" --connections "$conns" --batch "$batch" --duration "${secs}s")
    local rss; rss="$(rss_mb) (peak $(peak_mb))"
    local load1; load1=$(load)
    sleep 1
    local t1 c1 sent1
    t1=$(date +%s.%N); c1=$(cpu_ticks)
    sent1=$(metric aurastream_exporter_sent_items_total "signal=\"$signal\"")
    local hz; hz=$(getconf CLK_TCK)
    rate=$(awk -v a="$sent0" -v b="$sent1" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }')
    awk -v n="$name" -v s="$summary" -v r="$rate" -v t0="$t0" -v t1="$t1" \
        -v c0="$c0" -v c1="$c1" -v hz="$hz" -v rss="$rss" -v l0="$load0" -v l1="$load1" 'BEGIN {
        el = t1 - t0; split(l0, a0, " "); split(l1, a1, " ")
        printf "%-34s exported %8.0f items/s  cpu %5.1f %%  rss %6s MB  load %s->%s  loadgen %s\n",
        n, r, 100 * (c1 - c0) / hz / el, rss, a0[1], a1[1], s }'
    kill -TERM $pid; wait $pid 2>/dev/null || true
    rm -f "$work"/*.jsonl*
}

# start_peer COMMAND...: the X-Ray stand-in on core 1, waited for on 127.0.0.1:14500.
start_peer() {
    taskset -c 1 "$@" >"$work/peer.out" 2>&1 &
    peer=$!
    for _ in $(seq 300); do
        curl -s -o /dev/null http://127.0.0.1:14500/ && return
        sleep 0.1
    done
    echo "$1 did not start"; cat "$work/peer.out"; exit 1
}

stop_peer() {
    kill -TERM $peer; wait $peer 2>/dev/null || true; peer=
}

otlp_suite() {
    for b in $ours $other; do
        bin=$b; start_collector; sleep 1; echo "idle rss ($b): $(rss_mb) MB"
        kill -TERM $pid; wait $pid 2>/dev/null || true
    done
    bin=$ours
    scenario "traces grpc max (1 core)" grpc http://127.0.0.1:14317 traces 0 8 500
    scenario "traces http max (1 core)" http http://127.0.0.1:14318 traces 0 8 500
    scenario "logs grpc max (1 core)" grpc http://127.0.0.1:14317 logs 0 8 500
    scenario "traces grpc at 10k spans/s" grpc http://127.0.0.1:14317 traces 10000 4 100
}

# The otlp suite's config with the shipped `redaction` processor before the batch.
redaction_config() {
    {
        echo "processors:"
        awk '/^  redaction:$/ { p = 1; print; next } p && /^  [^ ]/ { p = 0 } p' deploy/config/sidecar.yaml
        sed -n '/^processors:/,$p' "$work/bench.yaml" | tail -n +2 \
            | sed 's/processors: \[batch\]/processors: [redaction, batch]/'
    } > "$work/redaction.body"
    sed -n '1,/^processors:/p' "$work/bench.yaml" | head -n -1 > "$work/redaction.yaml"
    cat "$work/redaction.body" >> "$work/redaction.yaml"
}

redaction_suite() {
    redaction_config
    for _ in 1 2; do
        scenario "traces http max, no redaction" http http://127.0.0.1:14318 traces 0 8 500
        scenario "traces http max, shipped redaction" http http://127.0.0.1:14318 traces 0 8 500 "$work/redaction.yaml"
        scenario "logs grpc max, no redaction" grpc http://127.0.0.1:14317 logs 0 8 500
        scenario "logs grpc max, shipped redaction" grpc http://127.0.0.1:14317 logs 0 8 500 "$work/redaction.yaml"
    done
}

xray_suite() {
    local http=http://127.0.0.1:14318
    xray_config xray-file "{ output_destination: file, path: $work/xray.jsonl }"
    scenario "xray file, http max (1 core)" http $http traces 0 8 500 "$work/xray-file.yaml"
    xray_config xray-sink "{ endpoint: 'http://127.0.0.1:14500', region: us-east-1 }"
    start_peer "$sink" --listen 127.0.0.1:14500
    scenario "xray sink, http max (1 core)" http $http traces 0 8 500 "$work/xray-sink.yaml"
    scenario "xray sink, http at 10k spans/s" http $http traces 10000 4 100 "$work/xray-sink.yaml"
    # Defaults send one batch at a time (sending_queue.num_consumers: 1): translating a
    # batch and sending it take turns. Four consumers overlap them.
    xray_config xray-sink4 "{ endpoint: 'http://127.0.0.1:14500', region: us-east-1, sending_queue: { num_consumers: 4 } }"
    scenario "xray sink 4 consumers, http max" http $http traces 0 8 500 "$work/xray-sink4.yaml"
    stop_peer
    echo "sink received: $(cat "$work/peer.out")"
    if [ -x .venv/bin/moto_server ]; then
        start_peer .venv/bin/moto_server -H 127.0.0.1 -p 14500
        scenario "xray moto, http max (1 core)" http $http traces 0 8 500 "$work/xray-sink.yaml"
        stop_peer
    else
        echo "xray moto: skipped, no .venv/bin/moto_server (run scripts/test.sh)"
    fi
}

overload_suite() {
    local http=http://127.0.0.1:14318 grpc=http://127.0.0.1:14317
    xray_config xray-sink "{ endpoint: 'http://127.0.0.1:14500', region: us-east-1 }"
    start_peer "$sink" --listen 127.0.0.1:14500
    scenario "xray sink, http 4 conns x 100" http $http traces 0 4 100 "$work/xray-sink.yaml"
    scenario "xray sink, http 64 conns x 100" http $http traces 0 64 100 "$work/xray-sink.yaml"
    scenario "xray sink, grpc 64 conns x 100" grpc $grpc traces 0 64 100 "$work/xray-sink.yaml"
    stop_peer
}

# otlphttp_config NAME EXPORTER-OPTIONS: traces to otlphttp signed by sigv4auth (service
# xray), as ADOT's configuration for Transaction Search.
otlphttp_config() {
    traces_config "$1" otlphttp "$2" "sigv4auth: { region: us-east-1, service: xray }"
}

otlphttp_suite() {
    local http=http://127.0.0.1:14318 grpc=http://127.0.0.1:14317
    local sigv4="auth: { authenticator: sigv4auth }"
    otlphttp_config otlphttp-gzip "{ endpoint: 'http://127.0.0.1:14500', $sigv4 }"
    otlphttp_config otlphttp-none "{ endpoint: 'http://127.0.0.1:14500', compression: none, $sigv4 }"
    otlphttp_config otlphttp-none4 "{ endpoint: 'http://127.0.0.1:14500', compression: none, $sigv4, sending_queue: { num_consumers: 4 } }"
    xray_config xray-sink "{ endpoint: 'http://127.0.0.1:14500', region: us-east-1 }"
    start_peer "$sink" --listen 127.0.0.1:14500
    scenario "otlphttp gzip, http max (1 core)" http $http traces 0 8 500 "$work/otlphttp-gzip.yaml"
    scenario "otlphttp none, http max (1 core)" http $http traces 0 8 500 "$work/otlphttp-none.yaml"
    scenario "otlphttp none, grpc max (1 core)" grpc $grpc traces 0 8 500 "$work/otlphttp-none.yaml"
    scenario "otlphttp none 4 consumers, http max" http $http traces 0 8 500 "$work/otlphttp-none4.yaml"
    scenario "otlphttp gzip, http at 10k spans/s" http $http traces 10000 4 100 "$work/otlphttp-gzip.yaml"
    scenario "xray sink, http max (1 core)" http $http traces 0 8 500 "$work/xray-sink.yaml"
    stop_peer
    echo "sink received: $(cat "$work/peer.out")"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
for b in $ours $other; do
    echo "binary $b: $(stat -c %s "$b" | awk '{printf "%.1f MB", $1/1048576}')"
done
for suite in $suites; do
    case $suite in
        otlp) otlp_suite ;;
        xray) xray_suite ;;
        redaction) redaction_suite ;;
        otlphttp) otlphttp_suite ;;
        overload) overload_suite ;;
        *) echo "unknown suite $suite (otlp, otlphttp, overload, redaction, xray)"; exit 2 ;;
    esac
done
