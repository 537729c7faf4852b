#!/usr/bin/env bash
# Runs ONE node of a multi-node Apache Kafka KRaft cluster with a static controller quorum
# (combined broker + controller, `controller.quorum.voters`), in the foreground, so that a test
# can SIGTERM, SIGSTOP or kill -9 it exactly like a millrace node. The jars come from
# scripts/install-test-deps.sh (.deps/kafka). bench/peers/apache-kafka.sh stays the single-node
# peer; this is the cluster reference the tests/cluster rig is validated against.
#
#   bench/peers/apache-kafka-cluster.sh --node-id N --voters 1@127.0.0.1:P1,2@...:P2,3@...:P3 \
#       --port PORT --controller-port CPORT --data-dir DIR --cluster-id ID \
#       [--rack RACK] [--prop key=value]...
#
# Every node of one cluster gets the same --voters and --cluster-id (a 22-character base64 UUID,
# e.g. from `java -cp '.deps/kafka/*' kafka.tools.StorageTool random-uuid`). The first run on DIR
# formats DIR/kafka-logs with that cluster id (StorageTool format, static voters: no
# --standalone / --initial-controllers); a later run reuses the formatted directory, so a restart
# after kill -9 is a real restart. Deleting DIR/kafka-logs and starting again is "a wiped node
# re-formatted by its operator with the cluster's id".
#
# DIR/server.properties is rewritten on every start: test-friendly defaults (short broker
# session and quorum timeouts, RF=1 internal topics, few threads), then each --prop in order
# (a later key wins, as in java.util.Properties). The log goes to DIR/server.log.
#
# Knobs: KAFKA_HEAP_OPTS (default "-Xms128m -Xmx512m"), KAFKA_JVM_OPTS (default: serial GC and
# the C1 compiler only, so three JVMs start quickly on two cores), JAVA (default "java").
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
deps="${KAFKA_DEPS_DIR:-$repo/.deps/kafka}"
node_id="" voters="" port="" controller_port="" data_dir="" cluster_id="" rack=""
props_extra=()

while [ $# -gt 0 ]; do
  case "$1" in
    --node-id) node_id="$2"; shift 2 ;;
    --voters) voters="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --controller-port) controller_port="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --cluster-id) cluster_id="$2"; shift 2 ;;
    --rack) rack="$2"; shift 2 ;;
    --prop) props_extra+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "kafka-cluster: unknown argument $1" >&2; exit 2 ;;
  esac
done

for v in node_id voters port controller_port data_dir cluster_id; do
  if [ -z "${!v}" ]; then
    echo "kafka-cluster: --${v//_/-} is required (see --help)" >&2
    exit 2
  fi
done
if ! ls "$deps"/kafka_2.13-*.jar >/dev/null 2>&1; then
  echo "kafka-cluster: no Kafka jars in $deps; run scripts/install-test-deps.sh first" >&2
  exit 2
fi
mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"
props="$data_dir/server.properties"

{
  echo "process.roles=broker,controller"
  echo "node.id=$node_id"
  echo "controller.quorum.voters=$voters"
  echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
  echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
  echo "controller.listener.names=CONTROLLER"
  echo "inter.broker.listener.name=PLAINTEXT"
  echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  echo "log.dirs=$data_dir/kafka-logs"
  [ -z "$rack" ] || echo "broker.rack=$rack"
  # Failure detection fast enough for tests (Kafka's defaults: 2000 / 9000 / 1000 / 2000).
  echo "broker.heartbeat.interval.ms=500"
  echo "broker.session.timeout.ms=3000"
  echo "controller.quorum.election.timeout.ms=1000"
  echo "controller.quorum.fetch.timeout.ms=2000"
  echo "controller.quorum.request.timeout.ms=2000"
  echo "controller.quorum.retry.backoff.ms=20"
  # One replica per partition everywhere by default (what Millrace serves in this issue).
  echo "auto.create.topics.enable=false"
  echo "num.partitions=1"
  echo "default.replication.factor=1"
  echo "offsets.topic.replication.factor=1"
  echo "offsets.topic.num.partitions=6"
  echo "transaction.state.log.replication.factor=1"
  echo "transaction.state.log.min.isr=1"
  echo "transaction.state.log.num.partitions=3"
  echo "share.coordinator.state.topic.replication.factor=1"
  echo "share.coordinator.state.topic.min.isr=1"
  echo "group.initial.rebalance.delay.ms=0"
  # Few threads: three JVMs share two cores.
  echo "num.network.threads=2"
  echo "num.io.threads=2"
  echo "background.threads=2"
  echo "num.recovery.threads.per.data.dir=1"
  echo "num.replica.fetchers=1"
  echo "log.cleaner.threads=1"
  for kv in ${props_extra[@]+"${props_extra[@]}"}; do
    echo "$kv"
  done
} >"$props"

cat >"$data_dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $data_dir/server.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
EOF

java="${JAVA:-java}"
cp="$deps/*"
log4j="-Dlog4j2.configurationFile=$data_dir/log4j2.properties"
# shellcheck disable=SC2206
jvm_opts=(${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}
  ${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k}
  -Djava.awt.headless=true "$log4j" "-Dkafka.logs.dir=$data_dir")

if [ ! -f "$data_dir/kafka-logs/meta.properties" ]; then
  echo "kafka-cluster: node $node_id formatting $data_dir/kafka-logs (cluster $cluster_id)" >&2
  "$java" -cp "$cp" -XX:TieredStopAtLevel=1 "$log4j" kafka.tools.StorageTool format \
    --cluster-id "$cluster_id" --config "$props" >"$data_dir/format.log" 2>&1 \
    || { cat "$data_dir/format.log" >&2; exit 1; }
fi

echo "kafka-cluster: node $node_id on 127.0.0.1:$port (controller $controller_port)," \
  "voters $voters, data $data_dir" >&2
exec "$java" -cp "$cp" "${jvm_opts[@]}" kafka.Kafka "$props"
