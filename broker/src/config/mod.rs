//! Broker configuration: embedded defaults, a server.properties file, command-line overrides.
//!
//! Keys keep Kafka's spelling where they mean the same thing; Millrace-only keys start with
//! `millrace.`. An unknown key or an invalid value is a start-up error naming the key.

pub mod cluster;
pub mod groups;
pub mod security;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the broker reads at start-up, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `node.id` / `broker.id`.
    pub node_id: i32,
    /// Address every shard listens on for clients (SO_REUSEPORT): the client listener of
    /// `listeners`.
    pub listen: SocketAddr,
    /// Host and port given to clients in Metadata, from `advertised.listeners` (the client
    /// listener's entry; its `listeners` entry when absent).
    pub advertise: (String, u16),
    /// The cluster keys as given (`process.roles`, `controller.quorum.voters`, `listeners`,
    /// ...); checked against each other by [`Config::validate`].
    pub cluster_keys: cluster::ClusterKeys,
    /// The checked cluster settings ([`Config::validate`] sets them).
    pub cluster: cluster::Cluster,
    /// The `ssl.*`/`sasl.*` keys as given (listener-prefixed ones included).
    pub security_keys: security::SecurityKeys,
    /// Each client listener's security, in `cluster.client_listeners`' order.
    pub listener_security: Vec<security::ListenerSecurity>,
    /// The controller listener's security, on a controller.
    pub controller_security: Option<security::ListenerSecurity>,
    /// How this broker dials the other brokers' inter-broker listener (cluster brokers only).
    pub inter_broker_outbound: Option<security::OutboundKeys>,
    /// How this node dials the controllers' controller listener (cluster nodes only).
    pub controller_outbound: Option<security::OutboundKeys>,
    /// The ACL authorizer's settings; `None` without `authorizer.class.name` (nothing is
    /// checked).
    pub authorizer: Option<millrace_security::acl::AuthorizerSettings>,
    /// `log.dirs` / `log.dir` (one directory).
    pub data_dir: PathBuf,
    /// Shards (cores); `millrace.cores`, default every online CPU.
    pub cores: usize,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `log.segment.bytes`.
    pub log_segment_bytes: u64,
    /// `log.roll.ms` (or `log.roll.hours`).
    pub log_roll_ms: i64,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: u32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `message.max.bytes`: the largest record batch accepted.
    pub message_max_bytes: usize,
    /// `socket.request.max.bytes`: the largest request frame accepted.
    pub socket_request_max_bytes: usize,
    /// `millrace.fsync`: fdatasync before acknowledging acks=1/all (default true).
    pub fsync: bool,
    /// `millrace.batch.cache.bytes`: per-shard cache of recently written batches.
    pub batch_cache_bytes: usize,
    /// `millrace.log.prepare.ahead.bytes`: zeroes written ahead of each active segment's data
    /// (at most this much at a time; 0: none), so group commits overwrite written blocks.
    pub log_prepare_ahead_bytes: u64,
    /// `millrace.log.cache.written`: what each flush round wrote is read back into the page
    /// cache for readers of recent data.
    pub log_cache_written: bool,
    /// `millrace.log.pending.bytes.max`: appended bytes per partition waiting for a group
    /// commit before producers wait for it.
    pub log_pending_bytes_max: usize,
    /// True when `millrace.log.pending.bytes.max` was set explicitly (a device probe result
    /// then does not override it).
    pub log_pending_bytes_max_set: bool,
    /// `millrace.io.memory.bytes`: io_uring registered buffer memory per shard.
    pub io_memory_bytes: usize,
    /// `millrace.mesh.channel.capacity`: messages per cross-shard channel.
    pub mesh_channel_capacity: usize,
    /// `queued.max.requests`: requests in flight per connection before it stops reading.
    pub max_inflight_per_connection: usize,
    /// `queued.max.request.bytes`: bytes of requests the broker holds (read and not yet
    /// answered) before its connections stop reading; split evenly between the shards. None:
    /// no bound (Kafka's -1).
    pub queued_max_request_bytes: Option<u64>,
    /// `millrace.pin.cores`: pin each shard to its CPU.
    pub pin_cores: bool,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` (fixed once created).
    pub offsets_topic_partitions: i32,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state` (fixed once
    /// created).
    pub txn_topic_partitions: i32,
    /// `transaction.state.log.replication.factor`: its replication factor, capped at the
    /// brokers registered when it is created.
    pub txn_topic_replication_factor: i16,
    /// `transaction.state.log.min.isr`: its `min.insync.replicas`, capped at its replication
    /// factor.
    pub txn_topic_min_isr: i32,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub txn_max_timeout_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often coordinators
    /// abort transactions open past their timeout.
    pub txn_abort_interval_ms: i64,
    /// `transactional.id.expiration.ms`: a transactional id with no transaction open and no
    /// request for this long is forgotten by its coordinator (a later producer with it starts
    /// over with a new producer id).
    pub txn_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often coordinators
    /// look for such ids.
    pub txn_expire_interval_ms: i64,
    /// `millrace.transaction.version`: the level of Kafka's `transaction.version` feature this
    /// broker finalizes in ApiVersions (0-2; 2, Transactions V2, as a new Kafka 4 cluster).
    /// Clients choose their protocol from it; Kafka sets it with `kafka-features`.
    pub txn_version: i16,
    /// `add.partitions.to.txn.retry.backoff.max.ms`: how long a partition leader's implicit
    /// add (Transactions V2) waits for the producer's previous transaction to complete before
    /// answering it to retry.
    pub txn_add_wait_max_ms: i64,
    /// `metadata.log.max.record.bytes.between.snapshots`: record bytes applied since the last
    /// metadata snapshot that make this node write a new one (Kafka's 20 MiB).
    pub metadata_snapshot_bytes: i64,
    /// `metadata.log.max.snapshot.interval.ms`: a snapshot at least this often while records
    /// arrive; 0 turns the time trigger off (Kafka's 1 h).
    pub metadata_snapshot_interval_ms: i64,
    /// `metadata.max.retention.bytes`: once the metadata log holds more bytes than this, it
    /// is cut below the newest snapshot (Kafka's 100 MiB; -1: no limit by size).
    pub metadata_retention_bytes: i64,
    /// `metadata.max.retention.ms`: the metadata log is cut below the newest snapshot once
    /// its last cut (or the start) is this old (Kafka's 7 days; -1: no limit by time).
    pub metadata_retention_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.max.size`.
    pub group_max_size: usize,
    /// Defaults of the topic-level configs (`log.retention.ms`, `log.cleanup.policy`, ...).
    pub topic_defaults: crate::topic_config::BrokerDefaults,
    /// `log.retention.check.interval.ms`: how often each shard applies retention.
    pub log_retention_check_interval_ms: i64,
    /// `replica.high.watermark.checkpoint.interval.ms`: how often each shard persists the high
    /// watermarks of its partitions that moved.
    pub replica_high_watermark_checkpoint_interval_ms: i64,
    /// `log.cleaner.enable`: run the compaction cleaner.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: the cleaner's pause when no log needs cleaning.
    pub log_cleaner_backoff_ms: i64,
    /// `log.cleaner.io.max.bytes.per.second`: the cleaner's read+write budget per shard.
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// `millrace.log.cleaner.io.busy.max.bytes.per.second`: the cleaner's budget per shard while
    /// the broker syncs produces or reads segments for fetches (capped by the one above).
    pub log_cleaner_io_busy_max_bytes_per_second: f64,
    /// `log.cleaner.dedupe.buffer.size`: bound on one clean's key map (one clean at a time per
    /// shard).
    pub log_cleaner_dedupe_buffer_bytes: usize,
    /// The KIP-848 and KIP-932 group coordinator keys and the share coordinator's
    /// (`group.consumer.*session*`/`*heartbeat*`, `group.share.*`, `share.coordinator.*`).
    pub group: groups::GroupKeys,
    /// `group.consumer.max.size`: members per KIP-848 group.
    pub group_consumer_max_size: usize,
    /// `millrace.group.consumer.regex.refresh.min.interval.ms`: the least time between two
    /// resolutions of a KIP-848 group's subscription regexes after topics changed (Kafka's
    /// fixed 10 s).
    pub group_consumer_regex_refresh_min_interval_ms: i64,
    /// `millrace.topic.partitions.max`: partitions one topic may have (a bound on what one
    /// CreateTopics or CreatePartitions request can make the broker open).
    pub partitions_per_topic_max: i32,
    /// `millrace.sendfile.descriptors.max`: segment descriptors each shard keeps open for
    /// zero-copy sends (least recently used closed first).
    pub sendfile_descriptors_max: usize,
    /// `millrace.fetch.wait.max.ms`: the longest long-poll a Fetch may ask for; a larger
    /// `max_wait_ms` is cut to it.
    pub fetch_wait_max_ms: i32,
    /// `max.connections`: client connections the whole broker (all shards) holds at once; at
    /// the bound it stops accepting until one closes.
    pub max_connections: usize,
    /// `max.connections.per.ip`: connections one client address may hold (Kafka's default:
    /// unbounded); past it a new one is closed.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: `address:count` pairs overriding that bound.
    pub max_connections_per_ip_overrides: std::collections::HashMap<std::net::IpAddr, usize>,
    /// `quota.window.num`: samples a client quota's rate is measured over (Kafka: 11).
    pub quota_window_num: usize,
    /// `quota.window.size.seconds`: the length of one sample (Kafka: 1).
    pub quota_window_size_seconds: u64,
    /// `millrace.metrics.listen`: where `GET /metrics` is served (None: an empty value, off).
    pub metrics_listen: Option<SocketAddr>,
    /// `millrace.rest.listen`: where the REST proxy is served (None: an empty value, off).
    pub rest_listen: Option<SocketAddr>,
    /// `millrace.rest.bootstrap.servers`: the cluster the REST proxy is a client of, as
    /// `host:port[,host:port...]`; empty: this broker's own client listener.
    pub rest_bootstrap: Vec<(String, u16)>,
    /// `millrace.schema.registry.listen`: where the schema registry is served (None: off).
    pub schema_registry_listen: Option<SocketAddr>,
    /// `millrace.schema.registry.bootstrap.servers`: the cluster whose `_schemas` topic the
    /// registry keeps its schemas in; empty: this broker's own client listener.
    pub schema_registry_bootstrap: Vec<(String, u16)>,
    /// The REST proxy's consumer instance keys (`millrace.rest.consumer.*`).
    pub rest_consumer: RestConsumerKeys,
    /// The follower fetch and ISR keys (`replica.*`).
    pub replica: ReplicaKeys,
    /// `auto.leader.rebalance.enable`: the active controller moves leadership back to
    /// preferred replicas that are in sync.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: how often it looks.
    pub leader_imbalance_check_interval_s: i64,
}

/// The REST proxy's consumer instances: Confluent REST Proxy's keys, prefixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestConsumerKeys {
    /// `millrace.rest.consumer.instance.timeout.ms`: an instance no request touched for this
    /// long leaves its group and is removed (Confluent's `consumer.instance.timeout.ms`).
    pub instance_timeout_ms: i64,
    /// `millrace.rest.consumer.max.instances`: instances the proxy holds at once; past it a
    /// create is refused with 429.
    pub max_instances: usize,
    /// `millrace.rest.consumer.request.max.bytes`: the most record bytes one records request
    /// returns (Confluent's `consumer.request.max.bytes`); a request's `max_bytes` may lower it.
    pub request_max_bytes: i32,
}

impl Default for RestConsumerKeys {
    fn default() -> Self {
        RestConsumerKeys {
            instance_timeout_ms: 300_000,
            max_instances: 1000,
            request_max_bytes: 64 << 20,
        }
    }
}

/// Partition replication settings, Kafka's keys and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaKeys {
    /// `replica.lag.time.max.ms`: an ISR member not caught up for this long leaves the ISR.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`: a follower's fetch long-polls this long at most.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes`: bytes a follower's fetch waits for.
    pub fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes`: bytes per partition of one follower fetch (a larger first
    /// batch is still sent whole).
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: bytes of one follower fetch answer.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed follower fetch.
    pub fetch_backoff_ms: i64,
    /// `replica.socket.timeout.ms`: a follower fetch with no answer this long past its
    /// long-poll fails and its connection is closed.
    pub socket_timeout_ms: i64,
}

impl Default for ReplicaKeys {
    fn default() -> Self {
        ReplicaKeys {
            lag_time_max_ms: 30_000,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 1 << 20,
            fetch_response_max_bytes: 10 << 20,
            fetch_backoff_ms: 1_000,
            socket_timeout_ms: 30_000,
        }
    }
}

const DEFAULT_LISTEN: &str = "127.0.0.1:9092";

impl Default for Config {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Config {
            node_id: 0,
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            advertise: ("127.0.0.1".into(), 9092),
            cluster_keys: cluster::ClusterKeys::default(),
            security_keys: security::SecurityKeys::default(),
            listener_security: Vec::new(),
            controller_security: None,
            inter_broker_outbound: None,
            controller_outbound: None,
            authorizer: None,
            cluster: cluster::ClusterKeys::default()
                .resolve(0)
                .expect("the embedded cluster defaults are consistent"),
            data_dir: PathBuf::from("./millrace-data"),
            cores,
            num_partitions: 1,
            default_replication_factor: 1,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 7 * 24 * 3600 * 1000,
            log_index_interval_bytes: 4096,
            auto_create_topics: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 100 * 1024 * 1024,
            fsync: true,
            log_prepare_ahead_bytes: millrace_storage::PREPARE_AHEAD_DEFAULT,
            log_cache_written: false,
            batch_cache_bytes: 64 << 20,
            log_pending_bytes_max: 64 << 20,
            log_pending_bytes_max_set: false,
            io_memory_bytes: 2 << 20,
            mesh_channel_capacity: 1024,
            max_inflight_per_connection: 64,
            queued_max_request_bytes: Some(QUEUED_MAX_REQUEST_BYTES_DEFAULT),
            pin_cores: true,
            offsets_topic_partitions: 50,
            txn_topic_partitions: 50,
            txn_topic_replication_factor: 3,
            txn_topic_min_isr: 2,
            txn_max_timeout_ms: 900_000,
            txn_abort_interval_ms: 10_000,
            txn_id_expiration_ms: 604_800_000,
            txn_expire_interval_ms: 3_600_000,
            txn_version: 2,
            txn_add_wait_max_ms: 100,
            metadata_snapshot_bytes: 20 << 20,
            metadata_snapshot_interval_ms: 3_600_000,
            metadata_retention_bytes: 100 << 20,
            metadata_retention_ms: 604_800_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_max_size: 1_000,
            topic_defaults: crate::topic_config::BrokerDefaults::default(),
            log_retention_check_interval_ms: 300_000,
            replica_high_watermark_checkpoint_interval_ms: 5_000,
            log_cleaner_enable: true,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_s: 300,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_io_max_bytes_per_second: 100.0 * 1024.0 * 1024.0,
            log_cleaner_io_busy_max_bytes_per_second: 10.0 * 1024.0 * 1024.0,
            log_cleaner_dedupe_buffer_bytes: 128 << 20,
            group: groups::GroupKeys::default(),
            group_consumer_max_size: 1_000,
            group_consumer_regex_refresh_min_interval_ms: 10_000,
            partitions_per_topic_max: 10_000,
            sendfile_descriptors_max: 256,
            fetch_wait_max_ms: 30_000,
            max_connections: 4_096,
            max_connections_per_ip: i32::MAX as usize,
            max_connections_per_ip_overrides: Default::default(),
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9644))),
            rest_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8082))),
            schema_registry_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8081))),
            schema_registry_bootstrap: Vec::new(),
            rest_bootstrap: Vec::new(),
            rest_consumer: RestConsumerKeys::default(),
            replica: ReplicaKeys::default(),
        }
    }
}

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key Millrace does not know.
    #[error("unknown configuration key `{key}` (line {line})")]
    UnknownKey {
        /// The key.
        key: String,
        /// Line in the file (0 = command line).
        line: usize,
    },
    /// A value that does not parse or is out of range.
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A line that is not `key=value`.
    #[error("line {line} of {path}: expected key=value")]
    Syntax {
        /// The file.
        path: String,
        /// The line number.
        line: usize,
    },
}

/// Parses server.properties text into ordered (key, value, line) triples.
pub fn parse_properties(
    text: &str,
    path: &str,
) -> Result<Vec<(String, String, usize)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return Err(ConfigError::Syntax {
                path: path.into(),
                line: i + 1,
            });
        };
        out.push((key.trim().to_string(), value.trim().to_string(), i + 1));
    }
    Ok(out)
}

impl Config {
    /// Applies `key = value` pairs in order on top of `self`.
    pub fn apply(&mut self, pairs: &[(String, String, usize)]) -> Result<(), ConfigError> {
        // Kafka's precedence: log.retention.ms over .minutes over .hours, log.roll.ms over
        // .hours, whatever their order.
        let mut retention_rank = 0u8;
        let mut roll_rank = 0u8;
        for (key, value, line) in pairs {
            if self.cluster_keys.apply(key, value)?
                || self.group.apply(key, value)?
                || self.security_keys.apply(key, value)?
            {
                continue;
            }
            match key.as_str() {
                "log.dirs" | "log.dir" => self.data_dir = parse_log_dir(key, value)?,
                "node.id" | "broker.id" => {
                    self.node_id = parse_num(key, value, 0, i32::MAX as i64)? as i32
                }
                "millrace.cores" => self.cores = parse_num(key, value, 1, 1024)? as usize,
                "num.partitions" => {
                    self.num_partitions = parse_num(key, value, 1, 1_000_000)? as i32
                }
                "default.replication.factor" => {
                    self.default_replication_factor =
                        parse_num(key, value, 1, i16::MAX as i64)? as i16
                }
                "log.segment.bytes" => {
                    self.log_segment_bytes = parse_num(key, value, 1024, i32::MAX as i64)? as u64
                }
                "log.roll.ms" => {
                    self.log_roll_ms = parse_num(key, value, 1, i64::MAX)?;
                    roll_rank = 2;
                }
                "log.roll.hours" if roll_rank <= 1 => {
                    self.log_roll_ms = parse_num(key, value, 1, 1 << 40)? * 3_600_000;
                    roll_rank = 1;
                }
                "log.roll.hours" => {
                    parse_num(key, value, 1, 1 << 40)?;
                }
                "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => {
                    let (rank, unit) = match key.as_str() {
                        "log.retention.ms" => (3, 1),
                        "log.retention.minutes" => (2, 60_000),
                        _ => (1, 3_600_000),
                    };
                    let n = parse_num(key, value, -1, i64::MAX / unit)?;
                    if rank >= retention_rank {
                        retention_rank = rank;
                        let ms = if n < 0 { -1 } else { n * unit };
                        self.topic_defaults
                            .set("retention.ms", ms.to_string(), "log.retention.ms");
                    }
                }
                "log.retention.check.interval.ms" => {
                    self.log_retention_check_interval_ms = parse_num(key, value, 1, i64::MAX)?
                }
                "replica.high.watermark.checkpoint.interval.ms" => {
                    self.replica_high_watermark_checkpoint_interval_ms =
                        parse_num(key, value, 1, i64::MAX)?
                }
                "log.cleaner.enable" => self.log_cleaner_enable = parse_bool(key, value)?,
                "auto.leader.rebalance.enable" => {
                    self.auto_leader_rebalance_enable = parse_bool(key, value)?
                }
                "leader.imbalance.check.interval.seconds" => {
                    self.leader_imbalance_check_interval_s = parse_num(key, value, 1, 86_400 * 365)?
                }
                "log.cleaner.dedupe.buffer.size" => {
                    self.log_cleaner_dedupe_buffer_bytes =
                        parse_num(key, value, 1 << 20, 1 << 40)? as usize
                }
                "log.cleaner.backoff.ms" => {
                    self.log_cleaner_backoff_ms = parse_num(key, value, 0, i64::MAX)?
                }
                "log.cleaner.io.max.bytes.per.second" => {
                    self.log_cleaner_io_max_bytes_per_second = parse_rate(key, value)?
                }
                "millrace.log.cleaner.io.busy.max.bytes.per.second" => {
                    self.log_cleaner_io_busy_max_bytes_per_second = parse_rate(key, value)?
                }
                other
                    if crate::topic_config::by_broker_key(other).is_some_and(|d| {
                        !matches!(d.name, "segment.bytes" | "segment.ms" | "max.message.bytes")
                    }) =>
                {
                    let def = crate::topic_config::by_broker_key(other).expect("matched");
                    let checked = crate::topic_config::check_value(def.name, value)
                        .map_err(|why| invalid(key, value, why))?;
                    self.topic_defaults.set(def.name, checked, def.broker_key);
                }
                "log.index.interval.bytes" => {
                    self.log_index_interval_bytes =
                        parse_num(key, value, 0, i32::MAX as i64)? as u32
                }
                "auto.create.topics.enable" => self.auto_create_topics = parse_bool(key, value)?,
                "message.max.bytes" => {
                    self.message_max_bytes = parse_num(key, value, 0, i32::MAX as i64)? as usize
                }
                "socket.request.max.bytes" => {
                    self.socket_request_max_bytes =
                        parse_num(key, value, 1024, i32::MAX as i64)? as usize
                }
                "queued.max.requests" => {
                    self.max_inflight_per_connection = parse_num(key, value, 1, 100_000)? as usize
                }
                "queued.max.request.bytes" => {
                    let n = parse_num(key, value, -1, i64::MAX)?;
                    if n == 0 {
                        return Err(invalid(key, value, "must be -1 (no bound) or positive"));
                    }
                    self.queued_max_request_bytes = (n > 0).then_some(n as u64);
                }
                "millrace.fsync" => self.fsync = parse_bool(key, value)?,
                "millrace.log.prepare.ahead.bytes" => {
                    self.log_prepare_ahead_bytes = parse_num(key, value, 0, 1 << 30)? as u64
                }
                "millrace.log.cache.written" => self.log_cache_written = parse_bool(key, value)?,
                "millrace.batch.cache.bytes" => {
                    self.batch_cache_bytes = parse_num(key, value, 0, 1 << 40)? as usize
                }
                "millrace.log.pending.bytes.max" => {
                    self.log_pending_bytes_max = parse_num(key, value, 1 << 20, 1 << 34)? as usize;
                    self.log_pending_bytes_max_set = true;
                }
                "millrace.io.memory.bytes" => {
                    self.io_memory_bytes = parse_num(key, value, 64 << 10, 1 << 34)? as usize
                }
                "millrace.mesh.channel.capacity" => {
                    self.mesh_channel_capacity = parse_num(key, value, 1, 1 << 20)? as usize
                }
                "millrace.pin.cores" => self.pin_cores = parse_bool(key, value)?,
                "offsets.topic.num.partitions" => {
                    self.offsets_topic_partitions = parse_num(key, value, 1, 1_000)? as i32
                }
                "transaction.state.log.num.partitions" => {
                    self.txn_topic_partitions = parse_num(key, value, 1, 1_000)? as i32
                }
                "transaction.state.log.replication.factor" => {
                    self.txn_topic_replication_factor = parse_num(key, value, 1, 32_767)? as i16
                }
                "transaction.state.log.min.isr" => {
                    self.txn_topic_min_isr = parse_num(key, value, 1, 32_767)? as i32
                }
                "transaction.max.timeout.ms" => {
                    self.txn_max_timeout_ms = parse_num(key, value, 1, i64::from(i32::MAX))?
                }
                "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                    self.txn_abort_interval_ms = parse_num(key, value, 1, i64::from(i32::MAX))?
                }
                "transactional.id.expiration.ms" => {
                    self.txn_id_expiration_ms = parse_num(key, value, 1, i64::from(i32::MAX))?
                }
                "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                    self.txn_expire_interval_ms = parse_num(key, value, 1, i64::from(i32::MAX))?
                }
                "millrace.transaction.version" => {
                    self.txn_version = parse_num(key, value, 0, 2)? as i16
                }
                "add.partitions.to.txn.retry.backoff.max.ms" => {
                    self.txn_add_wait_max_ms = parse_num(key, value, 0, i64::from(i32::MAX))?
                }
                "metadata.log.max.record.bytes.between.snapshots" => {
                    self.metadata_snapshot_bytes = parse_num(key, value, 1, i64::MAX)?
                }
                "metadata.log.max.snapshot.interval.ms" => {
                    self.metadata_snapshot_interval_ms = parse_num(key, value, 0, i64::MAX)?
                }
                "metadata.max.retention.bytes" => {
                    self.metadata_retention_bytes = parse_num(key, value, -1, i64::MAX)?
                }
                "metadata.max.retention.ms" => {
                    self.metadata_retention_ms = parse_num(key, value, -1, i64::MAX)?
                }
                "group.min.session.timeout.ms" => {
                    self.group_min_session_timeout_ms =
                        parse_num(key, value, 1, i32::MAX as i64)? as i32
                }
                "group.max.session.timeout.ms" => {
                    self.group_max_session_timeout_ms =
                        parse_num(key, value, 1, i32::MAX as i64)? as i32
                }
                "group.initial.rebalance.delay.ms" => {
                    self.group_initial_rebalance_delay_ms =
                        parse_num(key, value, 0, i32::MAX as i64)?
                }
                "group.max.size" => {
                    self.group_max_size = parse_num(key, value, 1, 1_000_000)? as usize
                }
                "group.consumer.max.size" => {
                    self.group_consumer_max_size = parse_num(key, value, 1, 1_000_000)? as usize
                }
                "millrace.group.consumer.regex.refresh.min.interval.ms" => {
                    self.group_consumer_regex_refresh_min_interval_ms =
                        parse_num(key, value, 0, 3_600_000)?
                }
                "millrace.topic.partitions.max" => {
                    self.partitions_per_topic_max = parse_num(key, value, 1, 1_000_000)? as i32
                }
                "millrace.sendfile.descriptors.max" => {
                    self.sendfile_descriptors_max = parse_num(key, value, 1, 1 << 16)? as usize
                }
                "millrace.fetch.wait.max.ms" => {
                    self.fetch_wait_max_ms = parse_num(key, value, 0, i32::MAX as i64)? as i32
                }
                "max.connections" => {
                    self.max_connections = parse_num(key, value, 1, 1_000_000)? as usize
                }
                "max.connections.per.ip" => {
                    self.max_connections_per_ip =
                        parse_num(key, value, 0, i32::MAX as i64)? as usize
                }
                "max.connections.per.ip.overrides" => {
                    self.max_connections_per_ip_overrides = per_ip_overrides(key, value)?
                }
                "quota.window.num" => {
                    self.quota_window_num = parse_num(key, value, 1, 1000)? as usize
                }
                "quota.window.size.seconds" => {
                    self.quota_window_size_seconds = parse_num(key, value, 1, 3600)? as u64
                }
                "millrace.metrics.listen" => self.metrics_listen = http_listen(key, value)?,
                "millrace.rest.listen" => self.rest_listen = http_listen(key, value)?,
                "millrace.schema.registry.listen" => {
                    self.schema_registry_listen = http_listen(key, value)?
                }
                "millrace.schema.registry.bootstrap.servers" => {
                    self.schema_registry_bootstrap = bootstrap_servers(key, value)?
                }
                "millrace.rest.bootstrap.servers" => {
                    self.rest_bootstrap = bootstrap_servers(key, value)?
                }
                "millrace.rest.consumer.instance.timeout.ms" => {
                    self.rest_consumer.instance_timeout_ms =
                        parse_num(key, value, 1000, i64::MAX / 2)?
                }
                "millrace.rest.consumer.max.instances" => {
                    self.rest_consumer.max_instances = parse_num(key, value, 1, 1_000_000)? as usize
                }
                "millrace.rest.consumer.request.max.bytes" => {
                    self.rest_consumer.request_max_bytes =
                        parse_num(key, value, 1, i32::MAX as i64)? as i32
                }
                "replica.lag.time.max.ms" => {
                    self.replica.lag_time_max_ms = parse_num(key, value, 1, i64::MAX / 2)?
                }
                "replica.fetch.wait.max.ms" => {
                    self.replica.fetch_wait_max_ms = parse_num(key, value, 0, 600_000)? as i32
                }
                "replica.fetch.min.bytes" => {
                    self.replica.fetch_min_bytes = parse_num(key, value, 1, i32::MAX as i64)? as i32
                }
                "replica.fetch.max.bytes" => {
                    self.replica.fetch_max_bytes = parse_num(key, value, 0, i32::MAX as i64)? as i32
                }
                "replica.fetch.response.max.bytes" => {
                    self.replica.fetch_response_max_bytes =
                        parse_num(key, value, 0, i32::MAX as i64)? as i32
                }
                "replica.fetch.backoff.ms" => {
                    self.replica.fetch_backoff_ms = parse_num(key, value, 0, 3_600_000)?
                }
                "replica.socket.timeout.ms" => {
                    self.replica.socket_timeout_ms = parse_num(key, value, 1, 3_600_000)?
                }
                _ => {
                    return Err(ConfigError::UnknownKey {
                        key: key.clone(),
                        line: *line,
                    })
                }
            }
        }
        self.take_client_listener()?;
        // The three topic defaults with dedicated fields (used elsewhere at start-up) are
        // mirrored into the topic defaults, marked as set when their key appeared.
        for (name, value, keys) in [
            (
                "segment.bytes",
                self.log_segment_bytes.to_string(),
                &["log.segment.bytes"][..],
            ),
            (
                "segment.ms",
                self.log_roll_ms.to_string(),
                &["log.roll.ms", "log.roll.hours"][..],
            ),
            (
                "max.message.bytes",
                self.message_max_bytes.to_string(),
                &["message.max.bytes"][..],
            ),
        ] {
            if let Some((_, _, _)) = pairs.iter().find(|(k, _, _)| keys.contains(&k.as_str())) {
                let key = crate::topic_config::def(name).expect("known").broker_key;
                self.topic_defaults.set(name, value, key);
            }
        }
        Ok(())
    }

    /// Sets `listen` and `advertise` from the inter-broker listener once the cluster keys are
    /// resolved (before that, from the first client listener of `listeners`).
    fn take_client_listener(&mut self) -> Result<(), ConfigError> {
        let resolved = self
            .cluster
            .client_listeners
            .iter()
            .find(|l| l.name == self.cluster.client_listener_name)
            .map(|l| (l.host.clone(), l.port, l.advertised.clone()));
        let chosen = resolved.or_else(|| {
            let (l, advertised) = self.cluster_keys.client_listener()?;
            Some((l.host.clone(), l.port, advertised))
        });
        if let Some((host, port, advertised)) = chosen {
            self.listen = cluster::socket_addr("listeners", &host, port)?;
            self.advertise = advertised_host(&host, advertised);
        }
        Ok(())
    }

    /// The security of the listeners nodes of a cluster dial each other on: the controller
    /// listener (served by controllers, dialed by every node) and the inter-broker listener
    /// (dialed by brokers). A single node dials nobody.
    fn resolve_peer_security(&mut self) -> Result<(), ConfigError> {
        self.controller_security = None;
        self.inter_broker_outbound = None;
        self.controller_outbound = None;
        let Some(roles) = self.cluster.roles else {
            return Ok(());
        };
        let (Some(name), Some(protocol)) = (
            self.cluster.controller_listener_name.clone(),
            self.cluster.controller_protocol.clone(),
        ) else {
            return Ok(());
        };
        if roles.controller {
            let listener = cluster::ClientListener {
                name: name.clone(),
                host: String::new(),
                port: 0,
                protocol: protocol.clone(),
                advertised: (String::new(), 0),
            };
            self.controller_security = Some(self.security_keys.resolve_one(&listener)?);
        }
        self.controller_outbound = Some(self.security_keys.resolve_outbound(
            &name,
            &protocol,
            security::CONTROLLER_MECHANISM,
        )?);
        if roles.broker {
            let inter = self
                .cluster
                .client_listeners
                .iter()
                .find(|l| l.name == self.cluster.client_listener_name)
                .expect("the inter-broker listener is a client listener");
            self.inter_broker_outbound = Some(self.security_keys.resolve_outbound(
                &inter.name,
                &inter.protocol,
                security::INTER_BROKER_MECHANISM,
            )?);
        }
        Ok(())
    }

    /// Cross-key checks done once everything is applied; settles the cluster settings.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.cluster = self.cluster_keys.resolve(self.node_id)?;
        for l in &mut self.cluster.client_listeners {
            l.advertised = advertised_host(&l.host, l.advertised.clone());
            if l.advertised.0 == "0.0.0.0" || l.advertised.0 == "::" {
                return Err(ConfigError::Invalid {
                    key: "advertised.listeners".into(),
                    value: format!("{}://{}:{}", l.name, l.advertised.0, l.advertised.1),
                    reason: "clients cannot connect to a wildcard address; set --advertise".into(),
                });
            }
        }
        self.listener_security = self.security_keys.resolve(&self.cluster.client_listeners)?;
        self.resolve_peer_security()?;
        self.authorizer = self.security_keys.authorizer()?;

        self.take_client_listener()?;
        if self.message_max_bytes + 1024 > self.socket_request_max_bytes {
            return Err(ConfigError::Invalid {
                key: "message.max.bytes".into(),
                value: self.message_max_bytes.to_string(),
                reason: "must leave room for the request header under socket.request.max.bytes"
                    .into(),
            });
        }
        if let Some(bytes) = self.queued_max_request_bytes {
            if bytes < self.socket_request_max_bytes as u64 {
                return Err(ConfigError::Invalid {
                    key: "queued.max.request.bytes".into(),
                    value: bytes.to_string(),
                    reason: "must be -1 or at least socket.request.max.bytes".into(),
                });
            }
        }
        if self.log_pending_bytes_max < self.message_max_bytes {
            return Err(ConfigError::Invalid {
                key: "millrace.log.pending.bytes.max".into(),
                value: self.log_pending_bytes_max.to_string(),
                reason: "must hold at least one batch of message.max.bytes".into(),
            });
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(ConfigError::Invalid {
                key: "group.min.session.timeout.ms".into(),
                value: self.group_min_session_timeout_ms.to_string(),
                reason: "must not exceed group.max.session.timeout.ms".into(),
            });
        }
        self.group.validate()?;
        if self.num_partitions > self.partitions_per_topic_max {
            return Err(ConfigError::Invalid {
                key: "num.partitions".into(),
                value: self.num_partitions.to_string(),
                reason: "must not exceed millrace.topic.partitions.max".into(),
            });
        }
        if self.offsets_topic_partitions > self.partitions_per_topic_max {
            return Err(ConfigError::Invalid {
                key: "offsets.topic.num.partitions".into(),
                value: self.offsets_topic_partitions.to_string(),
                reason: "must not exceed millrace.topic.partitions.max".into(),
            });
        }
        if self.txn_topic_partitions > self.partitions_per_topic_max {
            return Err(ConfigError::Invalid {
                key: "transaction.state.log.num.partitions".into(),
                value: self.txn_topic_partitions.to_string(),
                reason: "must not exceed millrace.topic.partitions.max".into(),
            });
        }
        if self.group.share_state_topic_num_partitions > self.partitions_per_topic_max {
            return Err(ConfigError::Invalid {
                key: "share.coordinator.state.topic.num.partitions".into(),
                value: self.group.share_state_topic_num_partitions.to_string(),
                reason: "must not exceed millrace.topic.partitions.max".into(),
            });
        }
        if self.advertise.0 == "0.0.0.0" || self.advertise.0 == "::" {
            return Err(ConfigError::Invalid {
                key: "advertised.listeners".into(),
                value: self.advertise.0.clone(),
                reason: "clients cannot connect to a wildcard address; set --advertise".into(),
            });
        }
        Ok(())
    }

    /// Every effective setting as (Kafka key, value), for DescribeConfigs on the broker.
    pub fn describe(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        m.insert("node.id", self.node_id.to_string());
        m.insert("broker.id", self.node_id.to_string());
        let listeners: Vec<String> = self
            .cluster_keys
            .listeners
            .iter()
            .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
            .collect();
        m.insert("listeners", listeners.join(","));
        m.insert(
            "advertised.listeners",
            format!(
                "{}://{}:{}",
                self.cluster.client_listener_name, self.advertise.0, self.advertise.1
            ),
        );
        cluster::describe(&self.cluster_keys, &mut m);
        m.insert("log.dirs", self.data_dir.display().to_string());
        m.insert("num.partitions", self.num_partitions.to_string());
        m.insert(
            "default.replication.factor",
            self.default_replication_factor.to_string(),
        );
        m.insert("log.segment.bytes", self.log_segment_bytes.to_string());
        m.insert("log.roll.ms", self.log_roll_ms.to_string());
        m.insert(
            "log.index.interval.bytes",
            self.log_index_interval_bytes.to_string(),
        );
        m.insert(
            "auto.create.topics.enable",
            self.auto_create_topics.to_string(),
        );
        m.insert("message.max.bytes", self.message_max_bytes.to_string());
        m.insert(
            "socket.request.max.bytes",
            self.socket_request_max_bytes.to_string(),
        );
        m.insert(
            "queued.max.requests",
            self.max_inflight_per_connection.to_string(),
        );
        m.insert(
            "queued.max.request.bytes",
            self.queued_max_request_bytes
                .map_or("-1".to_string(), |b| b.to_string()),
        );
        m.insert("millrace.fsync", self.fsync.to_string());
        m.insert(
            "millrace.log.prepare.ahead.bytes",
            self.log_prepare_ahead_bytes.to_string(),
        );
        m.insert(
            "millrace.log.cache.written",
            self.log_cache_written.to_string(),
        );
        m.insert("millrace.cores", self.cores.to_string());
        m.insert(
            "millrace.batch.cache.bytes",
            self.batch_cache_bytes.to_string(),
        );
        m.insert("millrace.io.memory.bytes", self.io_memory_bytes.to_string());
        m.insert(
            "millrace.log.pending.bytes.max",
            self.log_pending_bytes_max.to_string(),
        );
        m.insert(
            "millrace.mesh.channel.capacity",
            self.mesh_channel_capacity.to_string(),
        );
        m.insert("millrace.pin.cores", self.pin_cores.to_string());
        m.insert(
            "millrace.topic.partitions.max",
            self.partitions_per_topic_max.to_string(),
        );
        m.insert(
            "millrace.sendfile.descriptors.max",
            self.sendfile_descriptors_max.to_string(),
        );
        m.insert(
            "millrace.fetch.wait.max.ms",
            self.fetch_wait_max_ms.to_string(),
        );
        m.insert("max.connections", self.max_connections.to_string());
        m.insert(
            "max.connections.per.ip",
            self.max_connections_per_ip.to_string(),
        );
        let mut overrides: Vec<String> = self
            .max_connections_per_ip_overrides
            .iter()
            .map(|(ip, n)| format!("{ip}:{n}"))
            .collect();
        overrides.sort();
        m.insert("max.connections.per.ip.overrides", overrides.join(","));
        m.insert("quota.window.num", self.quota_window_num.to_string());
        m.insert(
            "quota.window.size.seconds",
            self.quota_window_size_seconds.to_string(),
        );
        m.insert(
            "millrace.metrics.listen",
            self.metrics_listen
                .map(|a| a.to_string())
                .unwrap_or_default(),
        );
        m.insert(
            "millrace.rest.listen",
            self.rest_listen.map(|a| a.to_string()).unwrap_or_default(),
        );
        m.insert(
            "millrace.rest.bootstrap.servers",
            self.rest_bootstrap
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        m.insert(
            "millrace.schema.registry.listen",
            self.schema_registry_listen
                .map(|a| a.to_string())
                .unwrap_or_default(),
        );
        m.insert(
            "millrace.schema.registry.bootstrap.servers",
            self.schema_registry_bootstrap
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        let rc = &self.rest_consumer;
        m.insert(
            "millrace.rest.consumer.instance.timeout.ms",
            rc.instance_timeout_ms.to_string(),
        );
        m.insert(
            "millrace.rest.consumer.max.instances",
            rc.max_instances.to_string(),
        );
        m.insert(
            "millrace.rest.consumer.request.max.bytes",
            rc.request_max_bytes.to_string(),
        );
        let r = &self.replica;
        m.insert("replica.lag.time.max.ms", r.lag_time_max_ms.to_string());
        m.insert("replica.fetch.wait.max.ms", r.fetch_wait_max_ms.to_string());
        m.insert("replica.fetch.min.bytes", r.fetch_min_bytes.to_string());
        m.insert("replica.fetch.max.bytes", r.fetch_max_bytes.to_string());
        m.insert(
            "replica.fetch.response.max.bytes",
            r.fetch_response_max_bytes.to_string(),
        );
        m.insert("replica.fetch.backoff.ms", r.fetch_backoff_ms.to_string());
        m.insert("replica.socket.timeout.ms", r.socket_timeout_ms.to_string());
        m.insert(
            "offsets.topic.num.partitions",
            self.offsets_topic_partitions.to_string(),
        );
        m.insert(
            "transaction.state.log.num.partitions",
            self.txn_topic_partitions.to_string(),
        );
        m.insert(
            "transaction.state.log.replication.factor",
            self.txn_topic_replication_factor.to_string(),
        );
        m.insert(
            "transaction.state.log.min.isr",
            self.txn_topic_min_isr.to_string(),
        );
        m.insert(
            "transaction.max.timeout.ms",
            self.txn_max_timeout_ms.to_string(),
        );
        m.insert(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            self.txn_abort_interval_ms.to_string(),
        );
        m.insert(
            "transactional.id.expiration.ms",
            self.txn_id_expiration_ms.to_string(),
        );
        m.insert(
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            self.txn_expire_interval_ms.to_string(),
        );
        m.insert("millrace.transaction.version", self.txn_version.to_string());
        m.insert(
            "add.partitions.to.txn.retry.backoff.max.ms",
            self.txn_add_wait_max_ms.to_string(),
        );
        m.insert(
            "metadata.log.max.record.bytes.between.snapshots",
            self.metadata_snapshot_bytes.to_string(),
        );
        m.insert(
            "metadata.log.max.snapshot.interval.ms",
            self.metadata_snapshot_interval_ms.to_string(),
        );
        m.insert(
            "metadata.max.retention.bytes",
            self.metadata_retention_bytes.to_string(),
        );
        m.insert(
            "metadata.max.retention.ms",
            self.metadata_retention_ms.to_string(),
        );
        m.insert(
            "group.min.session.timeout.ms",
            self.group_min_session_timeout_ms.to_string(),
        );
        m.insert(
            "group.max.session.timeout.ms",
            self.group_max_session_timeout_ms.to_string(),
        );
        m.insert(
            "group.initial.rebalance.delay.ms",
            self.group_initial_rebalance_delay_ms.to_string(),
        );
        m.insert("group.max.size", self.group_max_size.to_string());
        for d in crate::topic_config::DEFS {
            m.insert(d.broker_key, self.topic_defaults.get(d.name).0.to_string());
        }
        m.insert(
            "log.retention.check.interval.ms",
            self.log_retention_check_interval_ms.to_string(),
        );
        m.insert(
            "replica.high.watermark.checkpoint.interval.ms",
            self.replica_high_watermark_checkpoint_interval_ms
                .to_string(),
        );
        m.insert("log.cleaner.enable", self.log_cleaner_enable.to_string());
        m.insert(
            "auto.leader.rebalance.enable",
            self.auto_leader_rebalance_enable.to_string(),
        );
        m.insert(
            "leader.imbalance.check.interval.seconds",
            self.leader_imbalance_check_interval_s.to_string(),
        );
        m.insert(
            "log.cleaner.dedupe.buffer.size",
            self.log_cleaner_dedupe_buffer_bytes.to_string(),
        );
        m.insert(
            "log.cleaner.backoff.ms",
            self.log_cleaner_backoff_ms.to_string(),
        );
        m.insert(
            "log.cleaner.io.max.bytes.per.second",
            self.log_cleaner_io_max_bytes_per_second.to_string(),
        );
        m.insert(
            "millrace.log.cleaner.io.busy.max.bytes.per.second",
            self.log_cleaner_io_busy_max_bytes_per_second.to_string(),
        );
        self.group.describe(&mut m);
        m.insert(
            "group.consumer.max.size",
            self.group_consumer_max_size.to_string(),
        );
        m.insert(
            "millrace.group.consumer.regex.refresh.min.interval.ms",
            self.group_consumer_regex_refresh_min_interval_ms
                .to_string(),
        );
        m
    }
}

/// Bounds for the write-behind sized from a device probe.
const WRITE_BEHIND_BYTES_MIN: usize = 4 << 20;
const WRITE_BEHIND_BYTES_MAX: usize = 256 << 20;

/// The write-behind (unflushed bytes a partition may hold while a commit is in flight) for a
/// device profile written by `millrace-tune probe`: twice what the device writes during a p99
/// fdatasync, within [4 MiB, 256 MiB] and never below one batch of `message.max.bytes`.
pub fn write_behind_from_probe(text: &str, message_max_bytes: usize) -> Result<usize, String> {
    let pairs = parse_properties(text, "probe profile").map_err(|e| e.to_string())?;
    let get = |key: &str| -> Result<f64, String> {
        let (_, v, _) = pairs
            .iter()
            .find(|(k, _, _)| k == key)
            .ok_or(format!("no {key}"))?;
        v.parse::<f64>()
            .map_err(|_| format!("{key}={v} is not a number"))
    };
    if get("probe.version")? != 1.0 {
        return Err("unknown probe.version".into());
    }
    let bandwidth = get("probe.write.bytes.per.second")?;
    let sync_us = get("probe.fdatasync.p99.us")?;
    if !(bandwidth > 0.0 && sync_us > 0.0) {
        return Err("bandwidth and fdatasync latency must be positive".into());
    }
    let during_sync = bandwidth * sync_us / 1e6;
    Ok(((during_sync * 2.0) as usize)
        .clamp(WRITE_BEHIND_BYTES_MIN, WRITE_BEHIND_BYTES_MAX)
        .max(message_max_bytes))
}

pub(crate) fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// `max.connections.per.ip.overrides`: comma-separated `address:count` (the last colon splits,
/// so IPv6 addresses work); host names are refused, since resolving them is left to the
/// operator.
fn per_ip_overrides(
    key: &str,
    value: &str,
) -> Result<std::collections::HashMap<std::net::IpAddr, usize>, ConfigError> {
    let mut out = std::collections::HashMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, format!("{entry}: expected address:count")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = host
            .parse()
            .map_err(|_| invalid(key, value, format!("{host} is not an IP address")))?;
        let count = parse_num(key, count, 0, i32::MAX as i64)? as usize;
        out.insert(ip, count);
    }
    Ok(out)
}

pub(crate) fn parse_num(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let n: i64 = value
        .parse()
        .map_err(|_| invalid(key, value, "not an integer"))?;
    if n < min || n > max {
        return Err(invalid(
            key,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(n)
}

/// Bytes per second: any positive number, as Kafka's throttle rates (a double) are.
fn parse_rate(key: &str, value: &str) -> Result<f64, ConfigError> {
    match value.parse::<f64>() {
        Ok(n) if n > 0.0 => Ok(n),
        _ => Err(invalid(key, value, "must be a positive number")),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "must be true or false")),
    }
}

/// What clients are told for a listener bound to `host`: an empty advertised host is
/// 0.0.0.0 (refused by `validate`), `localhost` is 127.0.0.1 when the listener binds it.
pub fn advertised_host(host: &str, advertised: (String, u16)) -> (String, u16) {
    match advertised.0.as_str() {
        "" => ("0.0.0.0".to_string(), advertised.1),
        "localhost" if host == "localhost" => ("127.0.0.1".to_string(), advertised.1),
        _ => advertised,
    }
}

/// An HTTP listener's `host:port` (an IP address or `localhost`; an empty host binds every
/// interface); an empty value turns the listener off.
fn http_listen(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, "expected host:port, or empty to turn it off"))?;
    let port: u16 = port.parse().map_err(|_| invalid(key, value, "bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    cluster::socket_addr(key, host, port).map(Some)
}

/// `host:port[,host:port...]` (a host name is resolved when used); empty: none.
fn bootstrap_servers(key: &str, value: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, port) = item
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, "expected host:port[,host:port...]"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| invalid(key, value, "bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid(key, value, "a host is needed"));
        }
        out.push((host.to_string(), port));
    }
    Ok(out)
}

fn parse_log_dir(key: &str, value: &str) -> Result<PathBuf, ConfigError> {
    let dirs: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match dirs.as_slice() {
        [one] => Ok(PathBuf::from(one)),
        [] => Err(invalid(key, value, "empty")),
        _ => Err(invalid(
            key,
            value,
            "one log directory per broker is supported",
        )),
    }
}

/// The default of `queued.max.request.bytes` (Kafka's is -1, no bound; here every resource
/// has one).
pub const QUEUED_MAX_REQUEST_BYTES_DEFAULT: u64 = 256 << 20;

impl Config {
    /// Bytes of requests each shard holds before its connections stop reading (None: no
    /// bound): `queued.max.request.bytes` split evenly between the shards.
    pub fn request_bytes_per_shard(&self, shards: usize) -> Option<usize> {
        self.queued_max_request_bytes
            .map(|b| (b / shards.max(1) as u64).max(1) as usize)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A configuration from properties text, applied and validated.
    pub(crate) fn apply(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        c.apply(&parse_properties(text, "test")?)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn kafka_keys_apply() {
        let c = apply(
            "# comment\nlisteners=PLAINTEXT://127.0.0.1:19092\nlog.dirs=/tmp/x\nnum.partitions=3\n\
             log.segment.bytes=1048576\nauto.create.topics.enable=false\nmillrace.fsync=false\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 19092);
        assert_eq!(c.advertise, ("127.0.0.1".into(), 19092));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!((c.num_partitions, c.log_segment_bytes), (3, 1 << 20));
        assert!(!c.auto_create_topics && !c.fsync);
        // Below Kafka's default minimums, so the minimums are lowered too, as on Kafka.
        let c = apply(
            "group.consumer.session.timeout.ms=3000\ngroup.consumer.heartbeat.interval.ms=500\n\
             group.consumer.min.session.timeout.ms=3000\n\
             group.consumer.min.heartbeat.interval.ms=500\ngroup.consumer.max.size=7\n\
             millrace.group.consumer.regex.refresh.min.interval.ms=250\n",
        )
        .unwrap();
        assert_eq!(c.group.consumer_session_timeout_ms, 3000);
        assert_eq!(c.group.consumer_heartbeat_interval_ms, 500);
        assert_eq!(c.group_consumer_max_size, 7);
        assert_eq!(c.group_consumer_regex_refresh_min_interval_ms, 250);
    }

    #[test]
    fn queued_request_bytes_are_bounded_unless_minus_one() {
        let c = apply("").unwrap();
        assert_eq!(
            c.queued_max_request_bytes,
            Some(QUEUED_MAX_REQUEST_BYTES_DEFAULT)
        );
        assert_eq!(c.request_bytes_per_shard(2), Some(128 << 20));
        let c = apply("queued.max.request.bytes=-1\n").unwrap();
        assert_eq!(c.request_bytes_per_shard(2), None);
        assert_eq!(c.describe()["queued.max.request.bytes"], "-1");
        let c =
            apply("socket.request.max.bytes=2000000\nqueued.max.request.bytes=2000000\n").unwrap();
        assert_eq!(c.request_bytes_per_shard(2), Some(1_000_000));
        for bad in ["0", "-2", "x", "1048576"] {
            let err = apply(&format!("queued.max.request.bytes={bad}\n")).unwrap_err();
            assert!(
                err.to_string().contains("queued.max.request.bytes"),
                "{err}"
            );
        }
    }

    #[test]
    fn reading_back_what_was_written_is_off_unless_asked() {
        let c = apply("").unwrap();
        assert!(!c.log_cache_written);
        assert_eq!(c.describe()["millrace.log.cache.written"], "false");
        let c = apply("millrace.log.cache.written=true\n").unwrap();
        assert!(c.log_cache_written);
        let err = apply("millrace.log.cache.written=sometimes\n").unwrap_err();
        assert!(
            err.to_string().contains("millrace.log.cache.written"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_names_itself() {
        let err = apply("num.partitions=2\nlog.retention.nonsense=5\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("log.retention.nonsense") && text.contains("line 2"),
            "{text}"
        );
    }

    #[test]
    fn http_listeners_parse_or_turn_off() {
        let c = apply("").unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9644".parse().unwrap()));
        let c = apply("millrace.metrics.listen=\n").unwrap();
        assert_eq!(c.metrics_listen, None);
        let c = apply("millrace.metrics.listen=:19644\n").unwrap();
        assert_eq!(c.metrics_listen, Some("0.0.0.0:19644".parse().unwrap()));
        let c = apply("millrace.metrics.listen=localhost:1\n").unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:1".parse().unwrap()));
        for bad in [
            "9644",
            "127.0.0.1:x",
            "127.0.0.1:70000",
            "metrics.example:9644",
        ] {
            let err = apply(&format!("millrace.metrics.listen={bad}\n")).unwrap_err();
            assert!(
                err.to_string().contains("millrace.metrics.listen"),
                "{bad}: {err}"
            );
        }
        let c = apply("millrace.rest.listen=\nmillrace.rest.bootstrap.servers=a:1, b:2\n").unwrap();
        assert_eq!(c.rest_listen, None);
        assert_eq!(c.rest_bootstrap, vec![("a".into(), 1), ("b".into(), 2)]);
        let c = apply("").unwrap();
        assert_eq!(c.rest_listen, Some("127.0.0.1:8082".parse().unwrap()));
        for bad in ["a", "a:0", ":9092", "a:x"] {
            let err = apply(&format!("millrace.rest.bootstrap.servers={bad}\n")).unwrap_err();
            assert!(
                err.to_string().contains("bootstrap.servers"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn invalid_values_name_the_key() {
        for bad in [
            "num.partitions=0",
            "num.partitions=abc",
            "auto.create.topics.enable=yes",
            "listeners=SSL://1.2.3.4",
            "log.dirs=/a,/b",
            "message.max.bytes=200000000",
            "group.consumer.session.timeout.ms=0",
            "group.consumer.heartbeat.interval.ms=-5",
            "group.consumer.max.size=0",
            "group.consumer.heartbeat.interval.ms=60000",
        ] {
            let err = apply(bad).unwrap_err().to_string();
            let key = bad.split('=').next().unwrap();
            assert!(err.contains(key), "{bad}: {err}");
        }
        assert!(matches!(
            apply("garbage line"),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn write_behind_follows_the_probe() {
        let probe = |bw: &str, us: &str| {
            format!("# x\nprobe.version=1\nprobe.write.bytes.per.second={bw}\nprobe.fdatasync.p99.us={us}\n")
        };
        // 2 GB/s x 8 ms = 16 MB during a sync; twice that.
        assert_eq!(
            write_behind_from_probe(&probe("2000000000", "8000"), 1 << 20).unwrap(),
            32_000_000
        );
        assert_eq!(
            write_behind_from_probe(&probe("1000", "10"), 1 << 20).unwrap(),
            4 << 20
        );
        assert_eq!(
            write_behind_from_probe(&probe("1e12", "1e6"), 1 << 20).unwrap(),
            256 << 20
        );
        assert_eq!(
            write_behind_from_probe(&probe("1000", "10"), 8 << 20).unwrap(),
            8 << 20
        );
        assert!(write_behind_from_probe(&probe("0", "10"), 1).is_err());
        assert!(write_behind_from_probe(&probe("x", "10"), 1).is_err());
        assert!(write_behind_from_probe("probe.version=2\n", 1).is_err());
    }

    #[test]
    fn per_ip_connection_bounds_take_addresses() {
        let c = apply(
            "max.connections.per.ip=5\nmax.connections.per.ip.overrides=10.0.0.1:0, [::1]:7\n",
        )
        .unwrap();
        assert_eq!(c.max_connections_per_ip, 5);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(c.max_connections_per_ip_overrides[&ip("10.0.0.1")], 0);
        assert_eq!(c.max_connections_per_ip_overrides[&ip("::1")], 7);
        for bad in [
            "max.connections.per.ip.overrides=broker.example.com:3",
            "max.connections.per.ip.overrides=10.0.0.1",
            "max.connections.per.ip.overrides=10.0.0.1:-1",
            "max.connections.per.ip=-1",
        ] {
            let e = apply(&format!("{bad}\n")).unwrap_err().to_string();
            assert!(e.contains("max.connections.per.ip"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_authorizer_keys_are_kafkas() {
        assert_eq!(apply("super.users=User:a\n").unwrap().authorizer, None);
        let c = apply(
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
             super.users=User:admin; User:broker\nallow.everyone.if.no.acl.found=TRUE\n",
        )
        .unwrap();
        let settings = c.authorizer.unwrap();
        assert_eq!(settings.super_users, ["User:admin", "User:broker"]);
        assert!(settings.allow_everyone_if_no_acl_found);
        let c = apply("authorizer.class.name=\n").unwrap();
        assert_eq!(c.authorizer, None, "empty: no authorizer, as in Kafka");
        for bad in [
            "authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
            "super.users=admin",
            "allow.everyone.if.no.acl.found=yes",
        ] {
            let e = apply(&format!("{bad}\n")).unwrap_err().to_string();
            assert!(e.contains(bad.split('=').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn topic_defaults_come_from_broker_keys_with_kafka_precedence() {
        let c = apply(
            "log.retention.ms=5000\nlog.retention.hours=1\nlog.cleanup.policy=compact, delete\n\
             log.retention.bytes=1048576\nlog.segment.bytes=2048\ncompression.type=zstd\n",
        )
        .unwrap();
        let d = &c.topic_defaults;
        assert_eq!(d.get("retention.ms"), ("5000", Some("log.retention.ms")));
        assert_eq!(
            d.get("cleanup.policy"),
            ("compact,delete", Some("log.cleanup.policy"))
        );
        assert_eq!(d.get("retention.bytes").0, "1048576");
        assert_eq!(d.get("segment.bytes"), ("2048", Some("log.segment.bytes")));
        assert_eq!(d.get("compression.type").0, "zstd");
        assert_eq!(d.get("delete.retention.ms"), ("86400000", None));
        let c = apply("log.retention.minutes=2\n").unwrap();
        assert_eq!(c.topic_defaults.get("retention.ms").0, "120000");
        let c = apply("log.retention.hours=-1\n").unwrap();
        assert_eq!(c.topic_defaults.get("retention.ms").0, "-1");
        for bad in [
            "log.retention.ms=-2",
            "log.cleanup.policy=shred",
            "log.cleaner.min.cleanable.ratio=2",
            "log.message.timestamp.type=Now",
            "log.cleaner.io.max.bytes.per.second=0",
            "millrace.log.cleaner.io.busy.max.bytes.per.second=-1",
            "millrace.log.cleaner.io.busy.max.bytes.per.second=fast",
        ] {
            let err = apply(bad).unwrap_err().to_string();
            assert!(err.contains(bad.split('=').next().unwrap()), "{bad}: {err}");
        }
    }

    #[test]
    fn bounds_are_keys_with_their_defaults() {
        let c = apply("").unwrap();
        assert_eq!(c.partitions_per_topic_max, 10_000);
        assert_eq!(c.sendfile_descriptors_max, 256);
        assert_eq!(c.fetch_wait_max_ms, 30_000);
        assert_eq!(c.max_connections, 4_096);
        let described = c.describe();
        for (key, value) in [
            ("millrace.topic.partitions.max", "10000"),
            ("millrace.sendfile.descriptors.max", "256"),
            ("millrace.fetch.wait.max.ms", "30000"),
            ("max.connections", "4096"),
        ] {
            assert_eq!(described.get(key).map(String::as_str), Some(value), "{key}");
        }
        let c = apply(
            "millrace.topic.partitions.max=64\nmillrace.sendfile.descriptors.max=8\n\
             millrace.fetch.wait.max.ms=0\nmax.connections=3\n",
        )
        .unwrap();
        assert_eq!(c.partitions_per_topic_max, 64);
        assert_eq!(c.sendfile_descriptors_max, 8);
        assert_eq!(c.fetch_wait_max_ms, 0);
        assert_eq!(c.max_connections, 3);
        for bad in [
            "millrace.topic.partitions.max=0",
            "millrace.topic.partitions.max=many",
            "millrace.sendfile.descriptors.max=0",
            "millrace.sendfile.descriptors.max=100000",
            "millrace.fetch.wait.max.ms=-1",
            "max.connections=0",
            "max.connections=-3",
        ] {
            let err = apply(bad).unwrap_err().to_string();
            assert!(err.contains(bad.split('=').next().unwrap()), "{bad}: {err}");
        }
        // A default topic larger than any topic may be is caught at start-up, not at the
        // first auto-created topic.
        let err = apply("millrace.topic.partitions.max=4\nnum.partitions=5\n").unwrap_err();
        assert!(err.to_string().contains("num.partitions"), "{err}");
        let err = apply("millrace.topic.partitions.max=40\n").unwrap_err();
        assert!(
            err.to_string().contains("offsets.topic.num.partitions"),
            "{err}"
        );
    }

    #[test]
    fn wildcard_listener_needs_an_advertised_address() {
        assert!(apply("listeners=PLAINTEXT://0.0.0.0:9092").is_err());
        let c = apply(
            "listeners=PLAINTEXT://0.0.0.0:9092\nadvertised.listeners=PLAINTEXT://broker1:9092",
        )
        .unwrap();
        assert_eq!(c.advertise, ("broker1".into(), 9092));
    }
}
