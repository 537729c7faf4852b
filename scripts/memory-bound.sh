#!/usr/bin/env bash
# Tries to push a broker's memory past its configured bounds: many producers, each with many
# large requests in flight, acks=all with fsync, against one broker on loopback. Prints the
# broker's peak resident memory (VmHWM) and the bench's result for each setting given.
#
#   scripts/memory-bound.sh [SECONDS] [-- BROKER_OVERRIDE...]
#   e.g. scripts/memory-bound.sh 20 queued.max.request.bytes=-1
#        scripts/memory-bound.sh 20 queued.max.request.bytes=33554432
#
# Uses target/release/millrace and millrace-bench (cargo build --release first).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
shift || true
port=${PORT:-19392}
dir=$(mktemp -d "${TMPDIR:-/tmp}/millrace-mem.XXXXXX")
trap 'kill "$broker" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
overrides=()
for kv in "$@"; do overrides+=(--override "$kv"); done
target/release/millrace --listen "127.0.0.1:$port" --data-dir "$dir/data" \
    --override millrace.metrics.listen= --override millrace.rest.listen= \
    --override millrace.schema.registry.listen= \
    --override socket.request.max.bytes=8388608 "${overrides[@]}" >"$dir/broker.log" 2>&1 &
broker=$!
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
peak=0
(
    target/release/millrace-bench produce --bootstrap-server "127.0.0.1:$port" --topic mem \
        --partitions 16 --record-size 1024 --producers 32 --max-in-flight 32 \
        --batch-size 1000000 --linger-ms 20 --acks all --warmup 2s --duration "${secs}s" \
        --json "$dir/bench.json" >/dev/null 2>&1
) &
bench=$!
while kill -0 "$bench" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$broker/status")
    ((rss > peak)) && peak=$rss
    sleep 0.2
done
wait "$bench" || true
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$broker/status")
mbs=$(python3 -c "import json; r=json.load(open('$dir/bench.json'))['results']['produce']; print(round(r.get('mb_per_sec', 0), 1))" 2>/dev/null || echo '?')
echo "settings: ${*:-defaults}  peak RSS sampled: $((peak / 1024)) MiB  VmHWM: $((hwm / 1024)) MiB  produce MB/s: $mbs"
