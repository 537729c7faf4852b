//! `GET /metrics` on `millrace.metrics.listen`: the Prometheus text of this broker.
//!
//! A scrape, served on one shard, asks every shard for a [`ShardReport`] over the mesh (a copy
//! of its counters from `crate::stats`, the state of its partitions, the groups it
//! coordinates), merges them and writes the families. It costs one mesh hop per shard and one
//! pass over the partitions and groups, each shard between two of its other tasks; nothing a
//! produce or fetch waits for is held. Consumer lag needs the end offset of every partition a
//! group coordinated here has committed: from this broker's own replica when it has one, else
//! from the partition's leader with one ListOffsets per leader broker.
//!
//! # Names
//!
//! Native `millrace_*` families where Kafka's exporters have no name for the thing, the
//! JMX-exporter names of Kafka's broker MBeans as Kafka dashboards and alerts spell them
//! (`kafka_server_replicamanager_underreplicatedpartitions`,
//! `kafka_controller_kafkacontroller_offlinepartitionscount`, ...), kafka_exporter's
//! consumer-group families (`kafka_consumergroup_lag`, ...) and the standard `process_*`
//! families. docs/OPERATIONS.md lists them all.

pub mod text;

use crate::coordinator::GroupStat;
use crate::mesh::Call;
use crate::peer::{PeerClient, PeerConfig, PeerPool};
use crate::shard::Shard;
use crate::stats::{ShardMetrics, Stage};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use millrace_shard::time::Instant;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;
use text::{Kind, Text};

/// How long a scrape waits for another broker's end offsets (the lag of those partitions is
/// left out past it).
const REMOTE_END_OFFSETS_TIMEOUT: Duration = Duration::from_secs(2);

/// One partition replica on a shard, as a scrape sees it.
#[derive(Debug, Clone)]
pub struct PartitionReport {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// This replica leads.
    pub leader: bool,
    /// Replicas assigned.
    pub replicas: usize,
    /// In-sync replicas.
    pub isr: usize,
    /// The topic's `min.insync.replicas` as it applies (at most the replica count).
    pub min_isr: usize,
    /// Bytes of its segments on disk.
    pub size_bytes: u64,
    /// Log start offset.
    pub log_start: i64,
    /// Log end offset.
    pub log_end: i64,
    /// High watermark.
    pub high_watermark: i64,
    /// A compacted log's cleaner backlog: (dirty bytes, closed segment bytes).
    pub cleaner_backlog: Option<(u64, u64)>,
}

/// What one shard tells a scrape.
#[derive(Debug, Clone, Default)]
pub struct ShardReport {
    /// Its counters.
    pub stats: ShardMetrics,
    /// Its partitions.
    pub partitions: Vec<PartitionReport>,
    /// The groups it coordinates.
    pub groups: Vec<GroupStat>,
    /// It runs the active controller.
    pub active_controller: bool,
    /// Bytes of requests its connections hold now, and its share of
    /// `queued.max.request.bytes` (None: no bound).
    pub request_bytes: (usize, Option<usize>),
}

/// Asks a shard for its [`ShardReport`].
pub struct Gather;

impl Call<Shard> for Gather {
    type Reply = ShardReport;

    async fn run(self, shard: Rc<Shard>) -> ShardReport {
        let image = shard.image();
        let partitions = shard
            .partitions()
            .iter()
            .map(|p| {
                let assignment = p.assignment();
                // As the replica applies it: capped at the replica count.
                let min_isr = image
                    .topics
                    .get(p.topic())
                    .map_or(1, |t| shard.topic_settings(t).min_insync_replicas)
                    .min(assignment.replicas.len().max(1));
                PartitionReport {
                    topic: p.topic().to_string(),
                    partition: p.index(),
                    leader: p.is_leader(),
                    replicas: assignment.replicas.len(),
                    isr: assignment.isr.len(),
                    min_isr,
                    size_bytes: p.size_in_bytes(),
                    log_start: p.log_start_offset(),
                    log_end: p.log_end_offset(),
                    high_watermark: p.high_watermark(),
                    cleaner_backlog: p.cleaner_backlog(),
                }
            })
            .collect();
        let active_controller = shard
            .subsystems
            .get::<crate::controller::Controller>()
            .is_some_and(|c| c.ready_to_lead());
        ShardReport {
            stats: crate::stats::snapshot(),
            partitions,
            groups: crate::coordinator::group_stats(&shard),
            active_controller,
            request_bytes: shard
                .request_budget
                .as_ref()
                .map_or((0, None), |b| (b.used(), Some(b.capacity()))),
        }
    }
}

/// The serving shard's clients of other brokers (for their end offsets).
struct Peers(PeerPool);

/// Answers one HTTP request to the metrics listener.
/// `connections`: client connections open now (on every shard).
pub async fn handle(
    shard: Rc<Shard>,
    req: crate::http::Request,
    connections: usize,
) -> crate::http::Response {
    let path = req.uri().path();
    if path != "/metrics" {
        return crate::http::reply(
            404,
            "text/plain",
            "not found: the metrics are at /metrics\n",
        );
    }
    let head = req.method() == hyper::Method::HEAD;
    if req.method() != hyper::Method::GET && !head {
        let mut resp = crate::http::reply(405, "text/plain", "only GET /metrics\n");
        resp.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return resp;
    }
    let body = scrape(&shard, connections).await;
    crate::http::reply(
        200,
        text::CONTENT_TYPE,
        if head { String::new() } else { body },
    )
}

/// Gathers every shard's report and writes the text.
pub async fn scrape(shard: &Rc<Shard>, connections: usize) -> String {
    let started = Instant::now();
    let mut reports = Vec::with_capacity(shard.shards);
    for target in 0..shard.shards {
        if let Ok(r) = shard.call(target, Gather).await {
            reports.push(r);
        }
    }
    let mut stats = ShardMetrics::default();
    for r in &reports {
        merge(&mut stats, &r.stats);
    }
    let image = shard.image();
    // Topics deleted since: their counters go (Kafka removes a deleted topic's metrics).
    stats.topics.retain(|t, _| image.topics.contains_key(t));
    let mut partitions: Vec<&PartitionReport> =
        reports.iter().flat_map(|r| &r.partitions).collect();
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let mut groups: Vec<&GroupStat> = reports.iter().flat_map(|r| &r.groups).collect();
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let active = reports.iter().any(|r| r.active_controller);
    let ends = end_offsets(shard, &partitions, &groups).await;
    let gathered = started.elapsed();

    let mut t = Text::default();
    let name = "millrace_kafka_connections";
    t.family(name, Kind::Gauge, "Client connections open now.");
    let listener = shard.config.cluster.client_listener_name.as_str();
    t.sample(name, &[("listener", listener)], connections as f64);
    requests(&mut t, &stats);
    request_memory(&mut t, &reports);
    topics(&mut t, &stats);
    replicas(&mut t, &stats, &partitions);
    controller(&mut t, shard, active);
    consumer_groups(&mut t, &groups, &ends);
    storage(&mut t, &stats);
    process(&mut t);
    t.family(
        "millrace_metrics_gather_seconds",
        Kind::Gauge,
        "Time this scrape took to gather the shards' reports and end offsets.",
    );
    t.sample(
        "millrace_metrics_gather_seconds",
        &[],
        gathered.as_secs_f64(),
    );
    t.finish()
}

fn merge(into: &mut ShardMetrics, from: &ShardMetrics) {
    for (key, api) in &from.apis {
        let a = into.apis.entry(*key).or_default();
        a.requests += api.requests;
        a.closed += api.closed;
        for (h, o) in a.stages.iter_mut().zip(api.stages.iter()) {
            h.merge(o);
        }
    }
    for (k, n) in &from.errors {
        *into.errors.entry(*k).or_default() += n;
    }
    for (name, s) in &from.topics {
        let t = into.topics.entry(name.clone()).or_default();
        t.bytes_in += s.bytes_in;
        t.messages_in += s.messages_in;
        t.bytes_out += s.bytes_out;
        t.replication_bytes_in += s.replication_bytes_in;
        t.replication_bytes_out += s.replication_bytes_out;
        t.produce_requests += s.produce_requests;
        t.fetch_requests += s.fetch_requests;
    }
    into.fsync.merge(&from.fsync);
    into.isr_shrinks += from.isr_shrinks;
    into.isr_expands += from.isr_expands;
    into.fetch_cache_bytes += from.fetch_cache_bytes;
    into.fetch_disk_bytes += from.fetch_disk_bytes;
}

fn requests(t: &mut Text, stats: &ShardMetrics) {
    let names: BTreeMap<i16, String> = stats
        .apis
        .keys()
        .chain(stats.errors.keys().map(|(k, _)| k))
        .map(|&k| (k, crate::stats::request_name(k)))
        .collect();
    let name = "millrace_kafka_requests_total";
    t.family(name, Kind::Counter, "Kafka requests handled, by API.");
    for (key, api) in &stats.apis {
        t.sample(name, &[("request", &names[key])], api.requests as f64);
    }
    let name = "millrace_kafka_requests_closed_total";
    t.family(
        name,
        Kind::Counter,
        "Kafka requests answered by closing the connection (malformed, unsupported version).",
    );
    for (key, api) in &stats.apis {
        t.sample(name, &[("request", &names[key])], api.closed as f64);
    }
    let name = "millrace_kafka_request_errors_total";
    t.family(
        name,
        Kind::Counter,
        "Error codes in Kafka responses (one per partition, topic or group that carried one).",
    );
    for ((key, code), n) in &stats.errors {
        let error = millrace_wire::codes::name(*code);
        t.sample(
            name,
            &[("request", &names[key]), ("error", error)],
            *n as f64,
        );
    }
    let name = "millrace_kafka_request_latency_seconds";
    t.family(
        name,
        Kind::Histogram,
        "Kafka request time by stage: queue (read to handler), local, remote (replication, \
         long poll, other brokers), response (answer to written), total.",
    );
    for (key, api) in &stats.apis {
        for (stage, h) in Stage::ALL.iter().zip(api.stages.iter()) {
            t.histogram(
                name,
                &[("request", &names[key]), ("stage", stage.label())],
                h,
            );
        }
    }
}

fn topics(t: &mut Text, stats: &ShardMetrics) {
    let mut sorted: Vec<(&String, &crate::stats::TopicStats)> = stats.topics.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    type Field = fn(&crate::stats::TopicStats) -> u64;
    let families: [(&str, &str, Field); 7] = [
        (
            "kafka_server_brokertopicmetrics_bytesin_total",
            "Record-batch bytes produced to partitions led here.",
            |s| s.bytes_in,
        ),
        (
            "kafka_server_brokertopicmetrics_messagesin_total",
            "Records produced to partitions led here.",
            |s| s.messages_in,
        ),
        (
            "kafka_server_brokertopicmetrics_bytesout_total",
            "Record bytes fetched by consumers.",
            |s| s.bytes_out,
        ),
        (
            "kafka_server_brokertopicmetrics_replicationbytesin_total",
            "Record-batch bytes appended here as a follower.",
            |s| s.replication_bytes_in,
        ),
        (
            "kafka_server_brokertopicmetrics_replicationbytesout_total",
            "Record bytes fetched by followers.",
            |s| s.replication_bytes_out,
        ),
        (
            "kafka_server_brokertopicmetrics_totalproducerequests_total",
            "Partition entries of produce requests.",
            |s| s.produce_requests,
        ),
        (
            "kafka_server_brokertopicmetrics_totalfetchrequests_total",
            "Partition entries of consumer fetch requests.",
            |s| s.fetch_requests,
        ),
    ];
    for (name, help, field) in families {
        t.family(name, Kind::Counter, help);
        for (topic, s) in &sorted {
            t.sample(name, &[("topic", topic)], field(s) as f64);
        }
    }
}

fn replicas(t: &mut Text, stats: &ShardMetrics, partitions: &[&PartitionReport]) {
    let led: Vec<&&PartitionReport> = partitions.iter().filter(|p| p.leader).collect();
    let under = |p: &PartitionReport| p.isr < p.replicas;
    let gauges: [(&str, &str, usize); 5] = [
        (
            "kafka_server_replicamanager_partitioncount",
            "Partition replicas on this broker.",
            partitions.len(),
        ),
        (
            "kafka_server_replicamanager_leadercount",
            "Partitions this broker leads.",
            led.len(),
        ),
        (
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions led here whose ISR is smaller than their replica set.",
            led.iter().filter(|p| under(p)).count(),
        ),
        (
            "kafka_server_replicamanager_underminisrpartitioncount",
            "Partitions led here with fewer in-sync replicas than min.insync.replicas \
             (acks=all writes to them fail).",
            led.iter().filter(|p| p.isr < p.min_isr).count(),
        ),
        (
            "kafka_server_replicamanager_atminisrpartitioncount",
            "Partitions led here with exactly min.insync.replicas in sync.",
            led.iter().filter(|p| p.isr == p.min_isr).count(),
        ),
    ];
    for (name, help, n) in gauges {
        t.family(name, Kind::Gauge, help);
        t.sample(name, &[], n as f64);
    }
    for (name, help, n) in [
        (
            "kafka_server_replicamanager_isrshrinks_total",
            "ISR shrinks of partitions led here.",
            stats.isr_shrinks,
        ),
        (
            "kafka_server_replicamanager_isrexpands_total",
            "ISR expansions of partitions led here.",
            stats.isr_expands,
        ),
    ] {
        t.family(name, Kind::Counter, help);
        t.sample(name, &[], n as f64);
    }
    let name = "kafka_cluster_partition_underreplicated";
    t.family(
        name,
        Kind::Gauge,
        "1 for a partition led here whose ISR is smaller than its replica set, else 0.",
    );
    for p in &led {
        let part = p.partition.to_string();
        let labels = [("topic", p.topic.as_str()), ("partition", part.as_str())];
        t.sample(name, &labels, f64::from(u8::from(under(p))));
    }
    type Field = fn(&PartitionReport) -> f64;
    let per_replica: [(&str, &str, Field); 3] = [
        (
            "kafka_log_log_size",
            "Bytes of a partition's log on this broker.",
            |p| p.size_bytes as f64,
        ),
        (
            "kafka_log_log_logstartoffset",
            "A partition's log start offset on this broker.",
            |p| p.log_start as f64,
        ),
        (
            "kafka_log_log_logendoffset",
            "A partition's log end offset on this broker.",
            |p| p.log_end as f64,
        ),
    ];
    for (name, help, field) in per_replica {
        t.family(name, Kind::Gauge, help);
        for p in partitions {
            let part = p.partition.to_string();
            let labels = [("topic", p.topic.as_str()), ("partition", part.as_str())];
            t.sample(name, &labels, field(p));
        }
    }
    // The log cleaner's backlog: Kafka's LogCleanerManager max-dirty-percent, and the dirty
    // bytes of each compacted log.
    let compacted: Vec<(&PartitionReport, (u64, u64))> = partitions
        .iter()
        .filter_map(|p| Some((*p, p.cleaner_backlog?)))
        .collect();
    let name = "kafka_log_logcleanermanager_max_dirty_percent";
    t.family(
        name,
        Kind::Gauge,
        "The largest share (percent) of a compacted log's closed segments not yet cleaned.",
    );
    let max_dirty = compacted
        .iter()
        .filter(|(_, (_, total))| *total > 0)
        .map(|(_, (dirty, total))| *dirty as f64 * 100.0 / *total as f64)
        .fold(0.0, f64::max);
    t.sample(name, &[], max_dirty.round());
    let name = "millrace_log_cleaner_dirty_bytes";
    t.family(
        name,
        Kind::Gauge,
        "Bytes of a compacted log's closed segments the cleaner has not cleaned yet.",
    );
    for (p, (dirty, _)) in &compacted {
        let part = p.partition.to_string();
        let labels = [("topic", p.topic.as_str()), ("partition", part.as_str())];
        t.sample(name, &labels, *dirty as f64);
    }
    // kafka_exporter's per-partition offsets, from the leaders.
    for (name, help, field) in [
        (
            "kafka_topic_partition_current_offset",
            "High watermark of a partition led here.",
            (|p| p.high_watermark as f64) as Field,
        ),
        (
            "kafka_topic_partition_oldest_offset",
            "Log start offset of a partition led here.",
            (|p| p.log_start as f64) as Field,
        ),
    ] {
        t.family(name, Kind::Gauge, help);
        for p in &led {
            let part = p.partition.to_string();
            let labels = [("topic", p.topic.as_str()), ("partition", part.as_str())];
            t.sample(name, &labels, field(p));
        }
    }
}

fn controller(t: &mut Text, shard: &Shard, active: bool) {
    let image = shard.image();
    let cluster = &image.cluster;
    // As Kafka: the cluster-wide counts come from the active controller, 0 elsewhere, so a sum
    // over brokers is the cluster's value.
    let (mut partitions, mut offline) = (0usize, 0usize);
    if active {
        for topic in cluster.topics() {
            partitions += topic.partitions.len();
            offline += topic.partitions.iter().filter(|p| p.leader < 0).count();
        }
    }
    let topics = if active { cluster.topic_count() } else { 0 };
    let (mut fenced, mut unfenced) = (0usize, 0usize);
    if active {
        for b in cluster.brokers() {
            if b.fenced {
                fenced += 1
            } else {
                unfenced += 1
            }
        }
    }
    for (name, help, n) in [
        (
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the node that is the active controller, else 0.",
            usize::from(active),
        ),
        (
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader (active controller only).",
            offline,
        ),
        (
            "kafka_controller_kafkacontroller_globalpartitioncount",
            "Partitions in the cluster (active controller only).",
            partitions,
        ),
        (
            "kafka_controller_kafkacontroller_globaltopiccount",
            "Topics in the cluster (active controller only).",
            topics,
        ),
        (
            "kafka_controller_kafkacontroller_activebrokercount",
            "Registered unfenced brokers (active controller only).",
            unfenced,
        ),
        (
            "kafka_controller_kafkacontroller_fencedbrokercount",
            "Registered fenced brokers (active controller only).",
            fenced,
        ),
    ] {
        t.family(name, Kind::Gauge, help);
        t.sample(name, &[], n as f64);
    }
}

fn consumer_groups(t: &mut Text, groups: &[&GroupStat], ends: &HashMap<(String, i32), i64>) {
    let name = "kafka_consumergroup_members";
    t.family(name, Kind::Gauge, "Members of a group coordinated here.");
    for g in groups {
        t.sample(name, &[("consumergroup", &g.group_id)], g.members as f64);
    }
    let name = "millrace_consumergroup_state";
    t.family(
        name,
        Kind::Gauge,
        "1 for the state a group coordinated here is in (labels: state as ListGroups names it, \
         type classic or consumer).",
    );
    for g in groups {
        let labels = [
            ("consumergroup", g.group_id.as_str()),
            ("state", g.state),
            ("type", g.group_type),
        ];
        t.sample(name, &labels, 1.0);
    }
    let name = "kafka_consumergroup_current_offset";
    t.family(
        name,
        Kind::Gauge,
        "A group's committed offset of a partition.",
    );
    for g in groups {
        for (topic, partition, offset) in &g.offsets {
            let part = partition.to_string();
            let labels = [
                ("consumergroup", g.group_id.as_str()),
                ("topic", topic.as_str()),
                ("partition", part.as_str()),
            ];
            t.sample(name, &labels, *offset as f64);
        }
    }
    // Lag = the partition's high watermark minus the committed offset (never below 0),
    // for the partitions whose end offset could be learnt.
    let mut lags: Vec<(&str, &str, i32, i64)> = Vec::new();
    for g in groups {
        for (topic, partition, offset) in &g.offsets {
            if let Some(end) = ends.get(&(topic.clone(), *partition)) {
                lags.push((&g.group_id, topic, *partition, (end - offset).max(0)));
            }
        }
    }
    let name = "kafka_consumergroup_lag";
    t.family(
        name,
        Kind::Gauge,
        "A group's lag on a partition: high watermark minus committed offset.",
    );
    for (group, topic, partition, lag) in &lags {
        let part = partition.to_string();
        let labels = [
            ("consumergroup", *group),
            ("topic", *topic),
            ("partition", part.as_str()),
        ];
        t.sample(name, &labels, *lag as f64);
    }
    let mut sums: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut max: BTreeMap<&str, i64> = BTreeMap::new();
    for (group, topic, _, lag) in &lags {
        *sums.entry((group, topic)).or_default() += lag;
        let m = max.entry(group).or_default();
        *m = (*m).max(*lag);
    }
    let name = "millrace_consumergroup_topic_lag";
    t.family(
        name,
        Kind::Gauge,
        "A group's lag summed over a topic's partitions.",
    );
    for ((group, topic), sum) in &sums {
        t.sample(
            name,
            &[("consumergroup", group), ("topic", topic)],
            *sum as f64,
        );
    }
    let name = "millrace_consumergroup_lag_max";
    t.family(
        name,
        Kind::Gauge,
        "A group's largest lag on any one partition.",
    );
    for (group, m) in &max {
        t.sample(name, &[("consumergroup", group)], *m as f64);
    }
}

/// Kafka's SocketServer MemoryPoolUsed and MemoryPoolAvailable: the bytes of requests held
/// (read, not yet answered) against `queued.max.request.bytes`. Available is absent when
/// there is no bound, and negative while a shard holds more than its share (a request is let
/// in whenever the share is not used up).
fn request_memory(t: &mut Text, reports: &[ShardReport]) {
    let used: usize = reports.iter().map(|r| r.request_bytes.0).sum();
    let name = "kafka_network_socketserver_memorypoolused";
    t.family(
        name,
        Kind::Gauge,
        "Bytes of requests read and not yet answered (counted against queued.max.request.bytes).",
    );
    t.sample(name, &[], used as f64);
    let caps: Option<usize> = reports.iter().map(|r| r.request_bytes.1).sum();
    if let Some(cap) = caps {
        let name = "kafka_network_socketserver_memorypoolavailable";
        t.family(
            name,
            Kind::Gauge,
            "Bytes of queued.max.request.bytes not held by requests now.",
        );
        t.sample(name, &[], cap as f64 - used as f64);
    }
}

fn storage(t: &mut Text, stats: &ShardMetrics) {
    let name = "millrace_storage_fsync_seconds";
    t.family(
        name,
        Kind::Histogram,
        "Time of each fdatasync of a log segment or index (one per group commit per file).",
    );
    t.histogram(name, &[], &stats.fsync);
    let name = "millrace_fetch_read_bytes_total";
    t.family(
        name,
        Kind::Counter,
        "Fetched record bytes by where they came from: the batch cache or the segment files \
         (the cache hit ratio is cache over both).",
    );
    t.sample(name, &[("source", "cache")], stats.fetch_cache_bytes as f64);
    t.sample(name, &[("source", "disk")], stats.fetch_disk_bytes as f64);
}

fn process(t: &mut Text) {
    let p = millrace_shard::process::read();
    let name = "millrace_build_info";
    t.family(
        name,
        Kind::Gauge,
        "1, with the broker's version as a label.",
    );
    t.sample(name, &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    let values: [(&str, Kind, &str, Option<f64>); 6] = [
        (
            "process_cpu_seconds_total",
            Kind::Counter,
            "User and system CPU time spent, in seconds.",
            p.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size in bytes.",
            p.resident_bytes.map(|v| v as f64),
        ),
        (
            "process_virtual_memory_bytes",
            Kind::Gauge,
            "Virtual memory size in bytes.",
            p.virtual_bytes.map(|v| v as f64),
        ),
        (
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process since the Unix epoch, in seconds.",
            p.start_time_seconds,
        ),
        (
            "process_open_fds",
            Kind::Gauge,
            "Open file descriptors.",
            p.open_fds.map(|v| v as f64),
        ),
        (
            "process_max_fds",
            Kind::Gauge,
            "Maximum number of open file descriptors.",
            p.max_fds.map(|v| v as f64),
        ),
    ];
    for (name, kind, help, value) in values {
        if let Some(v) = value {
            t.family(name, kind, help);
            t.sample(name, &[], v);
        }
    }
}

/// The high watermark of every partition a group here has committed to: this broker's own
/// replica's when it has one (a follower's trails its leader's by at most a fetch), else the
/// leader's, asked with ListOffsets.
async fn end_offsets(
    shard: &Rc<Shard>,
    partitions: &[&PartitionReport],
    groups: &[&GroupStat],
) -> HashMap<(String, i32), i64> {
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for p in partitions {
        let key = (p.topic.clone(), p.partition);
        if p.leader || !ends.contains_key(&key) {
            ends.insert(key, p.high_watermark);
        }
    }
    let image = shard.image();
    let mut remote: BTreeMap<i32, BTreeSet<(String, i32)>> = BTreeMap::new();
    for g in groups {
        for (topic, partition, _) in &g.offsets {
            let key = (topic.clone(), *partition);
            if ends.contains_key(&key) {
                continue;
            }
            let leader = image
                .topics
                .get(topic)
                .and_then(|m| image.cluster.partition(&m.topic_id, *partition))
                .map(|s| s.leader);
            if let Some(leader) = leader.filter(|&l| l >= 0 && l != shard.config.node_id) {
                remote.entry(leader).or_default().insert(key);
            }
        }
    }
    let asks = remote
        .into_iter()
        .map(|(leader, wanted)| ask_leader(shard.clone(), leader, wanted));
    for answer in crate::mesh::join_all(asks.collect()).await {
        ends.extend(answer);
    }
    ends
}

/// ListOffsets (latest) to broker `leader` for `wanted`; what it answered without error.
async fn ask_leader(
    shard: Rc<Shard>,
    leader: i32,
    wanted: BTreeSet<(String, i32)>,
) -> Vec<((String, i32), i64)> {
    let client = match peer(&shard, leader) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(broker = leader, error = %e, "metrics: no client for end offsets");
            return Vec::new();
        }
    };
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &wanted {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, parts)| {
            ListOffsetsTopic::default()
                .with_name(TopicName(crate::handlers::str_bytes(topic)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let sent = client.send::<_, ListOffsetsResponse>(2, 5, &req);
    let resp = match millrace_shard::time::timeout(REMOTE_END_OFFSETS_TIMEOUT, sent).await {
        Some(Ok(resp)) => resp,
        Some(Err(e)) => {
            tracing::debug!(broker = leader, error = %e, "metrics: end offsets not answered");
            return Vec::new();
        }
        None => return Vec::new(),
    };
    let mut out = Vec::new();
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code == 0 && p.offset >= 0 {
                out.push(((t.name.0.to_string(), p.partition_index), p.offset));
            }
        }
    }
    out
}

/// The client of broker `broker`'s client listener.
fn peer(shard: &Shard, broker: i32) -> Result<Rc<PeerClient>, String> {
    let addr = crate::follower::leader_address(shard, broker)?;
    let pool = shard.subsystems.get_or_install(|| {
        Peers(PeerPool::new(PeerConfig {
            client_id: format!("millrace-metrics-{}", shard.config.node_id),
            request_timeout: REMOTE_END_OFFSETS_TIMEOUT,
            route: crate::dial::Route::InterBroker,
            ..PeerConfig::default()
        }))
    });
    Ok(pool.0.get(broker, addr))
}
