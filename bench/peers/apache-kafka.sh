#!/usr/bin/env bash
# Runs Apache Kafka (from Maven Central, fetched by scripts/install-test-deps.sh into .deps/kafka)
# as a single-node KRaft cluster (one process, combined broker + controller) in the foreground,
# so that a caller can stop it with SIGTERM or kill -9 it exactly like the millrace binary.
#
#   bench/peers/apache-kafka.sh [--port PORT] [--data-dir DIR] [--controller-port PORT]
#                               [--advertised-port APORT]
#
# PORT defaults to 9092, DIR to a new temporary directory. The first run on DIR writes
# DIR/server.properties and formats DIR/kafka-logs; a later run on the same DIR reuses both (and
# the controller port recorded there), which is what a restart-after-crash test needs.
# APORT (default PORT) is the port the broker gives clients in Metadata (advertised.listeners,
# host 127.0.0.1): a test with a proxy in front of the broker advertises the proxy's port, so that
# clients stay behind it after bootstrap.
# The broker's log goes to DIR/server.log; this script prints "kafka: ..." lines on stderr.
#
# Durability setting: by default Kafka does NOT fsync per write (log.flush.interval.messages is
# unbounded; data reaches disk when the OS flushes the page cache or a segment rolls). Set
# KAFKA_FSYNC=1 to set log.flush.interval.messages=1 (an fsync after every appended batch
# set), which is the setting to use when comparing with a broker that answers acks=all only after
# fdatasync. Say which one a measurement used.
#
# Feature levels: KAFKA_FORMAT_FEATURES, a space-separated list of FEATURE=LEVEL (e.g.
# "transaction.version=1"), each passed as --feature to the storage format step, so it only takes
# effect on the first run on DIR (a restart keeps the levels the directory was formatted with).
#
# KAFKA_EXTRA_PROPERTIES: more server.properties lines (KEY=VALUE), written after the ones above,
# so a later line overrides an earlier one. A value with a newline in it is taken one property per
# line (values may then hold spaces, as a sasl.jaas.config does); otherwise they are split on
# blanks.
#
# Other knobs: KAFKA_HEAP_OPTS (default "-Xms1g -Xmx1g"), JAVA (default "java").
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
deps="${KAFKA_DEPS_DIR:-$repo/.deps/kafka}"
port=9092
data_dir=""
controller_port=""
advertised_port=""

while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --controller-port) controller_port="$2"; shift 2 ;;
    --advertised-port) advertised_port="$2"; shift 2 ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "kafka: unknown argument $1" >&2; exit 2 ;;
  esac
done

if ! ls "$deps"/kafka_2.13-*.jar >/dev/null 2>&1; then
  echo "kafka: no Kafka jars in $deps; run scripts/install-test-deps.sh first" >&2
  exit 2
fi
[ -n "$data_dir" ] || data_dir="$(mktemp -d -t apache-kafka.XXXXXX)"
mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"
props="$data_dir/server.properties"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

if [ -z "$controller_port" ]; then
  if [ -f "$data_dir/controller.port" ]; then
    controller_port="$(cat "$data_dir/controller.port")"
  else
    controller_port="$(free_port)"
  fi
fi
echo "$controller_port" >"$data_dir/controller.port"

# The configuration is rewritten on every start (ports may be given anew); the formatted log
# directory is kept. Static controller.quorum.voters keeps the quorum valid across restarts.
{
  echo "process.roles=broker,controller"
  echo "node.id=1"
  echo "controller.quorum.voters=1@127.0.0.1:$controller_port"
  echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
  echo "advertised.listeners=PLAINTEXT://127.0.0.1:${advertised_port:-$port}"
  echo "controller.listener.names=CONTROLLER"
  echo "inter.broker.listener.name=PLAINTEXT"
  echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  echo "log.dirs=$data_dir/kafka-logs"
  echo "auto.create.topics.enable=true"
  echo "num.partitions=1"
  echo "default.replication.factor=1"
  echo "offsets.topic.replication.factor=1"
  echo "offsets.topic.num.partitions=1"
  echo "transaction.state.log.replication.factor=1"
  echo "transaction.state.log.min.isr=1"
  echo "share.coordinator.state.topic.replication.factor=1"
  echo "share.coordinator.state.topic.min.isr=1"
  echo "group.initial.rebalance.delay.ms=0"
  if [ "${KAFKA_FSYNC:-0}" = "1" ]; then
    echo "log.flush.interval.messages=1"
  fi
  if [[ "${KAFKA_EXTRA_PROPERTIES:-}" == *$'\n'* ]]; then
    printf '%s\n' "$KAFKA_EXTRA_PROPERTIES"
  else
    for line in ${KAFKA_EXTRA_PROPERTIES:-}; do
      echo "$line"
    done
  fi
} >"$props"

cat >"$data_dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $data_dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
EOF

java="${JAVA:-java}"
cp="$deps/*"
jvm_opts=(${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g} -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$data_dir/log4j2.properties" "-Dkafka.logs.dir=$data_dir")

if [ ! -f "$data_dir/kafka-logs/meta.properties" ]; then
  cluster_id="$("$java" -cp "$cp" "-Dlog4j2.configurationFile=$data_dir/log4j2.properties" \
    kafka.tools.StorageTool random-uuid)"
  features=()
  for feature in ${KAFKA_FORMAT_FEATURES:-}; do
    features+=(--feature "$feature")
  done
  with_features="${KAFKA_FORMAT_FEATURES:+, features $KAFKA_FORMAT_FEATURES}"
  echo "kafka: formatting $data_dir/kafka-logs (cluster $cluster_id)$with_features" >&2
  "$java" -cp "$cp" "-Dlog4j2.configurationFile=$data_dir/log4j2.properties" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$props" ${features[@]+"${features[@]}"} \
    >"$data_dir/format.log" 2>&1 \
    || { cat "$data_dir/format.log" >&2; exit 1; }
fi

echo "kafka: 127.0.0.1:$port (controller $controller_port), data $data_dir," \
  "fsync per write: $([ "${KAFKA_FSYNC:-0}" = 1 ] && echo yes || echo no)" >&2
exec "$java" -cp "$cp" "${jvm_opts[@]}" kafka.Kafka "$props"
