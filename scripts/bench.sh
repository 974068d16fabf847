#!/usr/bin/env bash
# End-to-end throughput and memory of the release collector, driven by aurastream-loadgen.
#
#   scripts/bench.sh [seconds]
#
# The collector runs pinned to core 0 (taskset -c 0) with the file exporter writing OTLP/JSON
# lines to a temp dir; the load generator runs on core 1. Prints one line per scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
cargo build --release -p aurastream-collector -p aurastream-loadgen >/dev/null 2>&1
bin=target/release/aurastream-collector
gen=target/release/aurastream-loadgen
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT

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
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [file/traces] }
    logs: { receivers: [otlp], processors: [batch], exporters: [file/logs] }
YAML

metric() { curl -s http://127.0.0.1:14133/metrics | awk -v m="$1" -v l="$2" '$1 ~ "^"m && index($1, l) {s+=$2} END {printf "%d", s}'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$pid/status; }
cpu_ticks() { awk '{print $14+$15}' /proc/$pid/stat; }

start_collector() {
    taskset -c 0 "$bin" --config "$work/bench.yaml" --log-level warn >/dev/null 2>"$work/err" &
    pid=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:14133/health >/dev/null && return; sleep 0.1; done
    echo "collector did not start"; cat "$work/err"; exit 1
}

scenario() { # name protocol endpoint signal rate connections batch
    local name=$1 proto=$2 ep=$3 signal=$4 rate=$5 conns=$6 batch=$7
    start_collector
    local sent0 t0 c0
    sent0=$(metric aurastream_exporter_sent_items_total "signal=\"$signal\"")
    t0=$(date +%s.%N); c0=$(cpu_ticks)
    local summary
    summary=$(taskset -c 1 "$gen" --protocol "$proto" --endpoint "$ep" --signal "$signal" \
        --rate "$rate" --connections "$conns" --batch "$batch" --duration "${secs}s")
    local rss; rss=$(rss_mb)
    sleep 1
    local t1 c1 sent1
    t1=$(date +%s.%N); c1=$(cpu_ticks)
    sent1=$(metric aurastream_exporter_sent_items_total "signal=\"$signal\"")
    local hz; hz=$(getconf CLK_TCK)
    awk -v n="$name" -v s="$summary" -v a="$sent0" -v b="$sent1" -v t0="$t0" -v t1="$t1" \
        -v c0="$c0" -v c1="$c1" -v hz="$hz" -v rss="$rss" 'BEGIN {
        el = t1 - t0; printf "%-34s exported %8.0f items/s  cpu %5.1f %%  rss %6s MB  loadgen %s\n",
        n, (b - a) / el, 100 * (c1 - c0) / hz / el, rss, s }'
    kill -TERM $pid; wait $pid 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "binary: $(stat -c %s "$bin" | awk '{printf "%.1f MB", $1/1048576}') (stripped release)"
start_collector; sleep 1; echo "idle rss: $(rss_mb) MB"; kill -TERM $pid; wait $pid 2>/dev/null || true
scenario "traces grpc max (1 core)" grpc http://127.0.0.1:14317 traces 0 8 500
scenario "traces http max (1 core)" http http://127.0.0.1:14318 traces 0 8 500
scenario "logs grpc max (1 core)" grpc http://127.0.0.1:14317 logs 0 8 500
scenario "traces grpc at 10k spans/s" grpc http://127.0.0.1:14317 traces 10000 4 100
