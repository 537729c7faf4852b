#!/usr/bin/env bash
# Runs tests from librdkafka's own test suite (librdkafka/tests, "test-runner") against a broker:
# by default 0103 (transactions) and 0129 (a fetch of nothing but aborted messages).
#
#   scripts/librdkafka-tests.sh [--bootstrap HOST:PORT] [--rf-max N|auto] [--log FILE] [TEST...]
#   scripts/librdkafka-tests.sh --build-only     # fetch and build, run nothing
#   scripts/librdkafka-tests.sh --check          # exit 0 if built, 3 if not (builds nothing)
#   scripts/librdkafka-tests.sh --no-build ...   # run, but exit 3 instead of building
#
# TEST is a test number (0103); every test with a listed number runs, so 0103 runs both
# 0103_transactions_local (no broker needed) and 0103_transactions. SUBTESTS=text narrows a run
# to the sub-tests whose name contains text.
# The bootstrap may also come from LIBRDKAFKA_TEST_BOOTSTRAP. Exit status: 0 when every selected
# test passed, non-zero otherwise (the runner aborts with 134 after a failed test).
#
# Where librdkafka comes from: the rdkafka-sys crate on crates.io bundles librdkafka's source,
# suite included (folder librdkafka/). The .crate is downloaded once (its sha256 is pinned below),
# built with ./configure + make -j2 (no SSL, SASL, zstd, zlib or curl: the selected tests need
# none of them; LZ4 is librdkafka's built-in copy), and cached under .deps/librdkafka
# (LIBRDKAFKA_DEPS_DIR to move it). A stamp file records the version, flags and patch; while it
# matches, nothing is rebuilt.
#
# One patch to the suite's harness (tests/test.c, not to any test): TEST_REPLICATION_FACTOR_MAX
# caps the replication factor of the topics a test creates. 0103 creates its topics with
# replication factor 3, as librdkafka's own CI runs it on a three-broker cluster; against one
# broker (millrace or Kafka alike) CreateTopics then fails with INVALID_REPLICATION_FACTOR.
# --rf-max auto (the default) asks the broker how many brokers it has (kcat -L) and caps at that
# number when it is below 3; --rf-max 0 never caps.
#
# The runner is told the broker is Kafka TEST_KAFKA_VERSION (default 4.0.0): the suite defaults
# to 2.4.0, where 0103's KIP-360 sub-test is skipped. CI=true (as in CI) makes the runner add 2
# to its timeout multiplier; --timeout-multiplier sets test.timeout.multiplier on top of that.
# Environment such as SUBTESTS=... or TEST_DEBUG=... reaches the runner unchanged;
# LIBRDKAFKA_TEST_TIMEOUT_S (default 1200) bounds the whole run.
#
# Known: 0129 fails on Apache Kafka 4.x before it starts: it creates its topic with
# segment.bytes=20000, below the 1 MiB minimum of Kafka 4.0 (KIP-1030); Kafka 3.9 takes it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="${LIBRDKAFKA_DEPS_DIR:-$repo/.deps/librdkafka}"

# rdkafka-sys 4.10.0 bundles librdkafka 2.12.1 (the newest rdkafka-sys on crates.io).
crate_name="rdkafka-sys"
crate_version="4.10.0+2.12.1"
crate_sha256="e234cf318915c1059d4921ef7f75616b5219b10b46e9f3a511a15eb4b56a3f77"
crate_urls=(
  "https://static.crates.io/crates/$crate_name/$crate_name-${crate_version/+/%2B}.crate"
  "https://crates.io/api/v1/crates/$crate_name/${crate_version/+/%2B}/download"
)
configure_flags=(--disable-ssl --disable-gssapi --disable-zstd --disable-zlib --disable-curl
  --disable-lz4-ext)

src="$deps/$crate_name-$crate_version/librdkafka"
runner="$src/tests/test-runner"
stamp="$deps/.built"

log() { echo "librdkafka-tests: $*" >&2; }
die() { log "$*"; exit 1; }

# The harness patch (see above), inserted before test_admin_create_topic's NewTopic_new.
patch_marker="millrace patch: TEST_REPLICATION_FACTOR_MAX"
patch_perl='s{(\n        newt\[0\] =\n            rd_kafka_NewTopic_new\(topicname, partition_cnt, replication_factor,)}{
        /* millrace patch: TEST_REPLICATION_FACTOR_MAX caps the replication
         * factor, for runs against fewer than three brokers. */
        {
                const char *rf_max =
                    test_getenv("TEST_REPLICATION_FACTOR_MAX", NULL);
                if (rf_max && atoi(rf_max) > 0 &&
                    replication_factor > atoi(rf_max)) {
                        TEST_SAY("Replication factor %d capped to %d "
                                 "(TEST_REPLICATION_FACTOR_MAX)\\n",
                                 replication_factor, atoi(rf_max));
                        replication_factor = atoi(rf_max);
                }
        }
$1}'

want_stamp() {
  printf '%s %s %s\n' "$crate_version" "${configure_flags[*]}" \
    "$(printf '%s' "$patch_perl" | sha256sum | cut -c1-16)"
}

is_built() {
  [ -x "$runner" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$(want_stamp)" ]
}

fetch_crate() {
  local dest="$1" url
  for url in "${crate_urls[@]}"; do
    log "downloading $url"
    if curl -sSfL --retry 3 --connect-timeout 20 -m 300 -o "$dest.part" "$url"; then
      mv "$dest.part" "$dest"
      return 0
    fi
  done
  rm -f "$dest.part"
  # Last resort: cargo itself, through whatever registry set-up this machine's cargo has.
  log "direct download failed; asking cargo to fetch $crate_name =$crate_version"
  local proj
  proj="$(mktemp -d)"
  mkdir -p "$proj/src"
  printf '[package]\nname = "fetch-librdkafka"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\n%s = { version = "=%s", default-features = false }\n' \
    "$crate_name" "$crate_version" >"$proj/Cargo.toml"
  : >"$proj/src/lib.rs"
  if (cd "$proj" && cargo fetch -q); then
    local cached
    cached="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate_name-$crate_version.crate" \
      2>/dev/null | head -1 || true)"
    if [ -n "$cached" ]; then
      cp "$cached" "$dest"
      rm -rf "$proj"
      return 0
    fi
  fi
  rm -rf "$proj"
  die "could not download $crate_name $crate_version from crates.io"
}

build() {
  mkdir -p "$deps"
  local crate="$deps/$crate_name-$crate_version.crate"
  if [ ! -f "$crate" ] || ! echo "$crate_sha256  $crate" | sha256sum -c --status; then
    fetch_crate "$crate"
  fi
  echo "$crate_sha256  $crate" | sha256sum -c --status \
    || die "$crate does not have the pinned sha256 $crate_sha256"

  rm -rf "$deps/$crate_name-$crate_version" "$stamp"
  tar -xzf "$crate" -C "$deps" "$crate_name-$crate_version/librdkafka"
  [ -x "$src/configure" ] || die "no librdkafka/configure in $crate"

  perl -0pi -e "$patch_perl" "$src/tests/test.c"
  grep -q "$patch_marker" "$src/tests/test.c" \
    || die "could not patch $src/tests/test.c (test_admin_create_topic changed?)"

  local blog="$deps/build.log"
  log "building librdkafka $crate_version and its test-runner (log: $blog)"
  (
    cd "$src"
    ./configure "${configure_flags[@]}"
    make -j2 libs
    make -j2 -C tests test-runner
  ) >"$blog" 2>&1 || { tail -40 "$blog" >&2; die "build failed, see $blog"; }
  [ -x "$runner" ] || die "build finished but $runner is missing"
  want_stamp >"$stamp"
  log "built $runner"
}

ensure_built() {
  is_built && return 0
  mkdir -p "$deps"
  # One build at a time (a second caller waits, then finds it built).
  exec 9>"$deps/.lock"
  flock 9
  is_built || build
  flock -u 9
}

broker_count() {
  command -v kcat >/dev/null 2>&1 || return 0
  timeout 20 kcat -L -b "$1" -m 10 2>/dev/null | sed -n 's/^ *\([0-9][0-9]*\) brokers:$/\1/p' \
    | head -1 || true
}

mode=run
bootstrap="${LIBRDKAFKA_TEST_BOOTSTRAP:-}"
rf_max="${TEST_REPLICATION_FACTOR_MAX:-auto}"
raw_log=""
multiplier=""
tests=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) mode=build; shift ;;
    --check) mode=check; shift ;;
    --no-build) mode=run-no-build; shift ;;
    --bootstrap) bootstrap="$2"; shift 2 ;;
    --rf-max) rf_max="$2"; shift 2 ;;
    --log) raw_log="$2"; shift 2 ;;
    --timeout-multiplier) multiplier="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) tests+=("$1"); shift ;;
  esac
done
[ ${#tests[@]} -gt 0 ] || tests=(0103 0129)
[[ "$rf_max" =~ ^(auto|[0-9]+)$ ]] || die "--rf-max takes a number or auto, not '$rf_max'"

case "$mode" in
  check)
    if is_built; then echo "$runner"; exit 0; fi
    log "not built: run scripts/librdkafka-tests.sh --build-only (or scripts/install-test-deps.sh)"
    exit 3 ;;
  build) ensure_built; exit 0 ;;
  run-no-build)
    is_built || { log "not built: run scripts/librdkafka-tests.sh --build-only"; exit 3; } ;;
  run) ensure_built ;;
esac

[ -n "$bootstrap" ] || die "no broker: give --bootstrap HOST:PORT or set LIBRDKAFKA_TEST_BOOTSTRAP"

if [ "$rf_max" = auto ]; then
  n="$(broker_count "$bootstrap")"
  rf_max=0
  if [ -z "$n" ]; then
    log "could not count the brokers (kcat missing or no answer): replication factors uncapped"
  elif [ "$n" -lt 3 ]; then
    rf_max="$n"
  fi
fi

work="$(mktemp -d -t librdkafka-tests.XXXXXX)"
trap 'rm -rf "$work"' EXIT
conf="$work/test.conf"
{
  echo "metadata.broker.list=$bootstrap"
  [ -z "$multiplier" ] || echo "test.timeout.multiplier=$multiplier"
} >"$conf"
[ -n "$raw_log" ] || raw_log="$work/test-runner.log"

selected="$(IFS=,; echo "${tests[*]}")"
cap="$rf_max"
[ "$cap" -gt 0 ] || cap=none
log "tests $selected against $bootstrap (librdkafka ${crate_version#*+}," \
  "TEST_KAFKA_VERSION=${TEST_KAFKA_VERSION:-4.0.0}, replication factor cap: $cap)"

# The runner prints ANSI colours whatever its output is: keep them in the raw log only.
set +e
(
  cd "$src/tests"
  export LD_LIBRARY_PATH="$src/src:$src/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export RDKAFKA_TEST_CONF="$conf" TESTS="$selected"
  export TEST_KAFKA_VERSION="${TEST_KAFKA_VERSION:-4.0.0}"
  if [ "$rf_max" -gt 0 ]; then export TEST_REPLICATION_FACTOR_MAX="$rf_max"; else
    unset TEST_REPLICATION_FACTOR_MAX; fi
  # -p1: one test at a time (CI=true would otherwise run three at once). Not exec'd: the
  # runner ends with SIGABRT after a failure, and this shell turns that into exit status 134.
  status=0
  timeout -k 10 "${LIBRDKAFKA_TEST_TIMEOUT_S:-1200}" ./test-runner -p1 || status=$?
  exit "$status"
) 2>&1 | tee "$raw_log" | sed -u 's/\x1b\[[0-9;]*m//g; s/\x1b(B//g'
rc=${PIPESTATUS[0]}
set -e

passed="$(grep -a -c ': PASS (' "$raw_log" || true)"
skipped="$(grep -a -c ': SKIP: ' "$raw_log" || true)"
log "sub-tests passed: $passed, skipped: $skipped; test-runner exit status $rc"
exit "$rc"
