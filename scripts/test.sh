#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (kcat, a Python venv
# with the Kafka clients, the Java client and Apache Kafka from Maven Central), then checks
# formatting and lints, runs every Rust test (unit, model-based storage, guard and batch
# fuzzing), builds the release broker and drives it with real Kafka clients, alone and as a
# three-node cluster.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }

step "installing test dependencies"
bash scripts/install-test-deps.sh

step "rustfmt and clippy"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The release broker first: the tools' CLI tests and the client suite both drive it (and
# millrace-bench, which test_bench_security.py runs over secured listeners).
step "release build"
cargo build --release --locked -p millrace -p millrace-tools -p millrace-bench

step "Rust tests (unit, doc, model-based storage, fuzzing, CLI against the broker)"
cargo test --workspace --locked

step "real-client integration suite against target/release/millrace"
tests/clients/run.sh

# Three millrace nodes on loopback (static controller quorum): bootstrap, admin through every
# node, placement, producer ids, controller failover, minority and majority loss, fencing,
# full restart, a wiped node rejoining, coordinator loss. About a minute.
step "cluster suite: three nodes on loopback"
tests/cluster/run.sh
