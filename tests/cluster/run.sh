#!/usr/bin/env bash
# Runs the cluster suite (three nodes on loopback) against millrace (default) or Apache Kafka
# (TEST_BROKER=kafka). Extra arguments go to pytest, e.g. tests/cluster/run.sh -k fenced -x
# Node logs of a failed test are copied to target/cluster-logs/<test>/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
if [ ! -x "$repo/.venv/bin/python" ]; then
  echo "no $repo/.venv: run scripts/install-test-deps.sh first" >&2
  exit 2
fi
# shellcheck disable=SC1091
source "$repo/.venv/bin/activate"
cd "$here"
exec python -m pytest -q "$@"
