#!/usr/bin/env bash
# Runs Tansu (a Kafka-compatible broker in Rust, from crates.io) on loopback in the
# foreground, for side-by-side runs with bench/suite:
#
#   bench/peers/tansu.sh [--port PORT] [--storage URL]
#
# PORT defaults to 9092; the storage engine defaults to memory://tansu/ (Tansu's in-memory
# "dynostore" engine: nothing reaches disk, so acks=all there is not durable; say so next to
# any number measured this way). The binary is `tansu` on PATH or in ~/.cargo/bin; when absent
# it is installed with `cargo install tansu --features dynostore` (a long build on 2 cores;
# TANSU_VERSION pins a version). Tansu does not create topics on Metadata, so run the bench
# with --partitions N (it creates the topic with CreateTopics). Tansu refuses librdkafka <= 2.12
# and Debian's kcat at ApiVersions; millrace-bench speaks ApiVersions v3 and is accepted.
#
# Example:
#   bench/peers/tansu.sh --port 29092 &
#   bench/suite --bootstrap-server 127.0.0.1:29092 --broker-name "tansu $(tansu --version)"
set -euo pipefail
port=9092
storage="memory://tansu/"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --storage) storage="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "tansu: unknown argument $1" >&2; exit 2 ;;
  esac
done
tansu="$(command -v tansu || true)"
[ -n "$tansu" ] || [ ! -x "$HOME/.cargo/bin/tansu" ] || tansu="$HOME/.cargo/bin/tansu"
if [ -z "$tansu" ]; then
  echo "tansu: installing from crates.io (cargo install tansu --features dynostore)" >&2
  version_arg=()
  [ -z "${TANSU_VERSION:-}" ] || version_arg=(--version "$TANSU_VERSION")
  cargo install tansu --locked --features dynostore ${version_arg[@]+"${version_arg[@]}"}
  tansu="$HOME/.cargo/bin/tansu"
fi
echo "tansu: $("$tansu" --version 2>/dev/null || echo tansu) on 127.0.0.1:$port, storage $storage" >&2
exec "$tansu" broker \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine "$storage"
