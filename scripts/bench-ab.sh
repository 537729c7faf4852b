#!/usr/bin/env bash
# Alternates two broker builds on the same produce and catch-up workloads and prints one line per
# run, so a change's effect can be told from the run-to-run noise of this machine.
#
#   scripts/bench-ab.sh BASE_BROKER NEW_BROKER [ROUNDS]
#
# Each round starts each broker on an empty data directory (in the order A, B in odd rounds and
# B, A in even ones), produces 1 KiB records with acks=all to 16 partitions for 10 s, then reads
# the whole topic back from the beginning (consumer catch-up; the segments were written with
# direct I/O, so mostly from the device), with the
# millrace-bench built from this checkout (target/release/millrace-bench). Besides the rates it
# prints the broker's CPU seconds (user + system, /proc/PID/stat) per GB of record values
# acknowledged over the whole produce command (warm-up and drain included): the steady figure
# on a noisy VM.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base=${1:?usage: bench-ab.sh BASE_BROKER NEW_BROKER [ROUNDS]}
new=${2:?usage: bench-ab.sh BASE_BROKER NEW_BROKER [ROUNDS]}
rounds=${3:-3}
bench=target/release/millrace-bench
port=29500
work=$(mktemp -d /tmp/bench-ab.XXXXXX)
trap 'pkill -f "millrace --listen 127.0.0.1:$port" 2>/dev/null || true; rm -rf "$work"' EXIT

# no_metrics BROKER: sets `off` to the arguments that turn BROKER's HTTP metrics listener off
# (millrace.metrics.listen, by default 127.0.0.1:9644: one port for the whole host, which another
# broker here may hold); empty for a build older than the listener (no --override flag).
no_metrics() {
  off=()
  case "$("$1" --help 2>/dev/null || true)" in
    *--override*) off=(--override millrace.metrics.listen= --override millrace.rest.listen=) ;;
  esac
  if grep -qa millrace.schema.registry.listen "$1"; then
    off+=(--override millrace.schema.registry.listen=)
  fi
}

mbps() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; \
print('%.1f' % r[sys.argv[2]]['mb_per_sec'])" "$1" "$2"; }

# cpu_s PID: the process's user + system CPU seconds so far.
cpu_s() { python3 -c "import os,sys; f=open('/proc/%s/stat' % sys.argv[1]).read(); \
f=f[f.rindex(')')+2:].split(); print(sum(int(x) for x in f[11:13]) / os.sysconf('SC_CLK_TCK'))" "$1"; }

# per_gb JSON CPU0 CPU1: CPU seconds per GB of the 1 KiB records the run acknowledged.
per_gb() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; \
gb=r['acked_records_total']*1024/1e9; print('%.2f' % ((float(sys.argv[3])-float(sys.argv[2]))/gb))" \
  "$1" "$2" "$3"; }

one() {
  local label=$1 broker=$2 round=$3 dir="$work/data"
  rm -rf "$dir"
  no_metrics "$broker"
  "$broker" --listen 127.0.0.1:$port --data-dir "$dir" ${off[@]+"${off[@]}"} \
    >"$work/broker.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
  done
  local cpu0 cpu1
  cpu0=$(cpu_s "$pid")
  "$bench" produce --bootstrap-server 127.0.0.1:$port --topic p16 --partitions 16 \
    --record-size 1024 --acks all --warmup 2s --duration 10s --json "$work/p.json" >/dev/null
  cpu1=$(cpu_s "$pid")
  "$bench" consume --bootstrap-server 127.0.0.1:$port --topic p16 --from beginning \
    --consumers 4 --executors 2 --duration 8s --json "$work/c.json" >/dev/null
  printf '%s round=%s produce_MBps=%s produce_cpu_s_per_GB=%s catchup_MBps=%s\n' "$label" \
    "$round" "$(mbps "$work/p.json" produce)" "$(per_gb "$work/p.json" "$cpu0" "$cpu1")" \
    "$(mbps "$work/c.json" consume)"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then
    one A "$base" "$round"
    one B "$new" "$round"
  else
    one B "$new" "$round"
    one A "$base" "$round"
  fi
done
