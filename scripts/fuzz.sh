#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (the SASL, JAAS, principal-rule and TLS-handshake inputs of
# millrace-security) for FUZZ_SECONDS each (default 60), for a person to run and report. Not part
# of CI: `cargo test -p millrace-security` runs the same entry points on stable with seeded
# inputs (security/src/fuzzing/tests.rs).
#
#   scripts/fuzz.sh [TARGET...]          # default: every target of `cargo fuzz list`
#   FUZZ_SECONDS=600 scripts/fuzz.sh sasl_scram
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz with
# `cargo install cargo-fuzz` when it is missing. Each target starts from the committed seeds in
# fuzz/seeds/<target> and keeps what it finds in fuzz/corpus/<target> (not committed); a crash
# lands in fuzz/artifacts/<target>/ (replay it with `cargo +nightly fuzz run <target> <file>`)
# and the script goes on with the next target. Inputs slower than 10 s count as crashes.
# Prints one line per target (executions, corpus size, result) and exits 1 if any crashed.
# Runs at `nice -n ${FUZZ_NICE:-10}`; CARGO_TARGET_DIR is honoured.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
niceness="${FUZZ_NICE:-10}"
log() { echo "fuzz: $*" >&2; }

if ! rustup toolchain list | grep -q '^nightly'; then
  log "the nightly toolchain is missing: rustup toolchain install nightly"
  exit 2
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  nice -n "$niceness" cargo install cargo-fuzz
fi

cd "$repo"
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

log "building ${targets[*]}"
nice -n "$niceness" cargo +nightly fuzz build >&2

logs="$(mktemp -d -t millrace-fuzz.XXXXXX)"
trap 'rm -rf "$logs"' EXIT
summary=()
failed=0
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  log "$target for ${seconds}s"
  status=0
  nice -n "$niceness" cargo +nightly fuzz run "$target" "fuzz/corpus/$target" \
    "fuzz/seeds/$target" -- -max_total_time="$seconds" -timeout=10 -max_len=8192 \
    -print_final_stats=1 >"$logs/$target.log" 2>&1 || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -1)"
  corpus="$(find "fuzz/corpus/$target" -type f | wc -l)"
  if [ "$status" = 0 ]; then
    result="no crash"
  else
    failed=1
    artifact="$(sed -n 's/.*Test unit written to //p' "$logs/$target.log" | tail -1)"
    result="FAILED (exit $status) ${artifact:-see the log below}"
    tail -40 "$logs/$target.log" >&2
  fi
  summary+=("$(printf '%-22s %6ss %12s execs %6s corpus  %s' "$target" "$seconds" \
    "${execs:-?}" "$corpus" "$result")")
done

printf '%s\n' "${summary[@]}"
exit "$failed"
