#!/usr/bin/env bash
# Installs what the client integration suite (tests/clients) and the Apache Kafka peer
# (bench/peers/apache-kafka.sh) need. Idempotent and non-interactive; fast when all is present.
#
#   - kcat and openssl from Debian (apt-get; runs `apt-get update` only if not installable yet)
#   - <repo>/.venv with the pinned Python clients of tests/clients/requirements.txt
#   - <repo>/.venv/bin/promtool: only that binary out of Debian's prometheus package (apt-get
#     download, not installed: the package would set up a service)
#   - <repo>/.deps/java: org.apache.kafka:kafka-clients and its runtime jars (Maven Central)
#   - <repo>/.deps/kafka: org.apache.kafka:kafka_2.13 (the broker) and its runtime jars
#   - <repo>/.deps/librdkafka: librdkafka 2.12 and its own test-runner, built from the rdkafka-sys
#     crate's source (crates.io) by scripts/librdkafka-tests.sh (about 3 minutes on 2 cores, once)
#   - the Go module cache: tests/clients/go's dependencies (franz-go, pinned by its go.sum) from
#     the Go module proxy, and a first build of it (about 30 s on 2 cores, once); skipped without
#     go 1.26+, and test_franz_go.py and test_franz_go_suite.py then skip
#
# Needs: python3 (with venv), java 17 + javac, mvn, gcc + g++ + make, curl; go is optional. Run
# as root (or with sudo available) for apt.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive
# pinned: Maven 3.8 would otherwise pick its old built-in default (2.8)
dep_plugin=3.8.1
log() { echo "install-test-deps: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

install_apt() {  # $1: command to look for, $2: Debian package
  if command -v "$1" >/dev/null 2>&1; then
    return
  fi
  log "installing $2 (apt)"
  if ! as_root apt-get install -y -q "$2" >/dev/null 2>&1; then
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q "$2" >/dev/null
  fi
}

install_kcat() {
  install_apt kcat kcat
  # The security tests make their certificates with the openssl CLI.
  install_apt openssl openssl
}

install_venv() {
  local req="$repo/tests/clients/requirements.txt"
  local stamp="$repo/.venv/.requirements.sha256"
  local want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$repo/.venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  log "creating/updating $repo/.venv"
  [ -x "$repo/.venv/bin/python" ] || python3 -m venv "$repo/.venv"
  "$repo/.venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
}

# promtool (`promtool check metrics` for the broker's /metrics) from Debian's prometheus
# package, unpacked in a temporary directory; runs `apt-get update` only if the download fails.
install_promtool() {
  local dest="$repo/.venv/bin/promtool"
  if [ -x "$dest" ] && "$dest" --version >/dev/null 2>&1; then
    return
  fi
  log "installing promtool into $dest (Debian's prometheus package, the binary only)"
  (
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    cd "$tmp"
    if ! apt-get download -q prometheus >/dev/null 2>&1; then
      as_root apt-get update -q >/dev/null
      apt-get download -q prometheus >/dev/null
    fi
    dpkg-deb -x prometheus_*.deb root
    install -m 0755 root/usr/bin/promtool "$dest"
  )
  "$dest" --version >/dev/null
}

# copy_deps POM DEST: resolve POM's runtime dependencies into DEST, unless DEST already holds
# exactly what this POM resolved last time.
copy_deps() {
  local pom="$1" dest="$2"
  local stamp="$dest/.pom.sha256"
  local want
  want="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [ -d "$dest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  log "resolving $(basename "$(dirname "$pom")") jars into $dest (Maven Central)"
  rm -rf "$dest"
  mkdir -p "$dest"
  mvn -q -B -f "$pom" \
    "org.apache.maven.plugins:maven-dependency-plugin:$dep_plugin:copy-dependencies" \
    -DincludeScope=runtime \
    -DoutputDirectory="$dest" >"$dest/.mvn.log" 2>&1 || { cat "$dest/.mvn.log" >&2; exit 1; }
  echo "$want" >"$stamp"
}

# The Go module of tests/clients/go: its go.sum pins every module. Present when an offline
# `go mod download` (GOPROXY=off) finds them all in the module cache; otherwise they are fetched
# from the proxy and the program is built once, so that test_franz_go.py's offline build finds
# the build cache warm too.
go_modules="Go modules"
install_go_modules() {
  local go
  go="$(command -v go || echo /usr/local/go/bin/go)"
  if [ ! -x "$go" ]; then
    log "no go toolchain: skipping tests/clients/go (test_franz_go.py and test_franz_go_suite.py will skip)"
    go_modules="no Go"
    return
  fi
  local need have
  need="$(sed -n 's/^go //p' "$repo/tests/clients/go/go.mod")"
  have="$(GOTOOLCHAIN=local "$go" env GOVERSION)"
  have="${have#go}"
  if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
    log "go $have is older than the $need tests/clients/go needs: skipping it" \
      "(test_franz_go.py and test_franz_go_suite.py will skip)"
    go_modules="no Go"
    return
  fi
  (
    cd "$repo/tests/clients/go"
    export GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local GOWORK=off
    if GOPROXY=off "$go" mod download >/dev/null 2>&1; then
      exit 0
    fi
    log "downloading tests/clients/go's modules (Go module proxy) and building it"
    "$go" mod download
    "$go" build -o /dev/null ./...
  )
}

check_tools() {
  local missing=()
  for t in python3 java javac mvn gcc g++ make curl perl flock; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "missing tools: ${missing[*]}"
    exit 1
  fi
}

check_tools
install_kcat
install_venv
install_promtool
copy_deps "$repo/tests/clients/java/pom.xml" "$repo/.deps/java"
copy_deps "$repo/bench/peers/apache-kafka/pom.xml" "$repo/.deps/kafka"
# Cached: rebuilt only when the pinned version, flags or harness patch change; fails loudly.
bash "$repo/scripts/librdkafka-tests.sh" --build-only
install_go_modules
log "ok: kcat $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\).*/\1/p'), .venv, promtool" \
  "$("$repo/.venv/bin/promtool" --version 2>&1 | sed -n 's/^promtool, version \([^ ]*\).*/\1/p')," \
  ".deps/java, .deps/kafka, .deps/librdkafka, $go_modules"
