//! Admin commands: `topics`, `configs`, `cluster`. Each builds kafka-protocol requests, sends
//! them through [`Client`], checks every error code the answer carries, and prints a table or,
//! with `--json`, one JSON document on stdout.

use clap::{Args, Subcommand};
use kafka_protocol::messages::{
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_topics_request::DeleteTopicState,
    describe_configs_request::DescribeConfigsResource,
    describe_configs_response::DescribeConfigsResourceResult,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
    ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{api_name, Client};
use crate::error::{check, ToolError};
use crate::output::{out, outln};
use crate::output::{Json, Table};
use crate::route::Route;
use crate::Connection;
use millrace_wire::codes::NONE;

const METADATA_VERSIONS: std::ops::RangeInclusive<i16> = 1..=12;
const CREATE_TOPICS_VERSIONS: std::ops::RangeInclusive<i16> = 2..=7;
const DELETE_TOPICS_VERSIONS: std::ops::RangeInclusive<i16> = 1..=6;
const CREATE_PARTITIONS_VERSIONS: std::ops::RangeInclusive<i16> = 0..=3;
const DESCRIBE_CONFIGS_VERSIONS: std::ops::RangeInclusive<i16> = 1..=4;
const ALTER_CONFIGS_VERSIONS: std::ops::RangeInclusive<i16> = 0..=1;
const DESCRIBE_CLUSTER_VERSIONS: std::ops::RangeInclusive<i16> = 0..=1;
/// ListOffsets versions this tool speaks (shared with `consume`).
pub const LIST_OFFSETS_VERSIONS: std::ops::RangeInclusive<i16> = 1..=8;
/// How long the broker may take over a topic change.
const ADMIN_TIMEOUT_MS: i32 = 30_000;
/// ListOffsets timestamps that mean "earliest" and "latest".
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// See [`EARLIEST_TIMESTAMP`].
pub const LATEST_TIMESTAMP: i64 = -1;
/// DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// `topics ...`
#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Partition count (default: the broker's num.partitions).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long = "replication-factor")]
        replication_factor: Option<i16>,
        /// A topic config as key=value; repeat for more.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List topics.
    List {
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        conn: Connection,
    },
    /// Describe a topic: partitions, leaders, replicas, configs, log start and end offsets.
    /// With a filter, list only the matching partitions (of the topic, or of every topic
    /// when no name is given), as kafka-topics does.
    Describe {
        /// Topic name (optional with a filter).
        name: Option<String>,
        #[command(flatten)]
        filter: PartitionFilter,
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Raise a topic's partition count to N.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total partition count.
        #[arg(long)]
        partitions: i32,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `configs ...`
#[derive(Subcommand)]
pub enum ConfigsCommand {
    /// Show a topic's or a broker's configs.
    Describe {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change configs with IncrementalAlterConfigs.
    Alter {
        #[command(flatten)]
        target: Target,
        /// Configs to set: k=v[,k=v]; repeatable.
        #[arg(long = "add-config", value_name = "K=V[,K=V]")]
        add_config: Vec<String>,
        /// Config keys to remove (back to the default): k[,k]; repeatable.
        #[arg(long = "delete-config", value_name = "K[,K]")]
        delete_config: Vec<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `cluster ...`
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Brokers, controller, cluster id and the broker's API versions.
    Describe {
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Partition filters of `topics describe`.
#[derive(Args, Clone, Debug, Default)]
#[group(multiple = false)]
pub struct PartitionFilter {
    /// Only partitions whose ISR is smaller than their replica set.
    #[arg(long)]
    under_replicated_partitions: bool,
    /// Only partitions whose ISR is smaller than min.insync.replicas (capped at the replica
    /// count, as the broker applies it).
    #[arg(long)]
    under_min_isr_partitions: bool,
    /// Only partitions whose ISR is exactly min.insync.replicas (capped likewise).
    #[arg(long)]
    at_min_isr_partitions: bool,
    /// Only partitions with no leader, or a leader the cluster does not list as live.
    #[arg(long)]
    unavailable_partitions: bool,
}

impl PartitionFilter {
    fn any(&self) -> bool {
        self.under_replicated_partitions
            || self.under_min_isr_partitions
            || self.at_min_isr_partitions
            || self.unavailable_partitions
    }

    fn needs_min_isr(&self) -> bool {
        self.under_min_isr_partitions || self.at_min_isr_partitions
    }

    /// Whether a partition matches, given the live brokers and the topic's min ISR.
    fn matches(&self, r: &PartitionRow, live: &[i32], min_isr: usize) -> bool {
        let min_isr = min_isr.min(r.replicas.len()).max(1);
        (self.under_replicated_partitions && r.isr.len() < r.replicas.len())
            || (self.under_min_isr_partitions && r.isr.len() < min_isr)
            || (self.at_min_isr_partitions && r.isr.len() == min_isr)
            || (self.unavailable_partitions && (r.leader < 0 || !live.contains(&r.leader)))
    }
}

/// `--json`
#[derive(Args, Clone, Debug)]
pub struct Output {
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Which config resource.
#[derive(Args, Clone, Debug)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A topic.
    #[arg(long)]
    topic: Option<String>,
    /// A broker id.
    #[arg(long)]
    broker: Option<i32>,
}

impl Target {
    fn resource(&self) -> (i8, String) {
        match (&self.topic, self.broker) {
            (Some(t), _) => (RESOURCE_TOPIC, t.clone()),
            (None, Some(b)) => (RESOURCE_BROKER, b.to_string()),
            (None, None) => unreachable!("clap requires --topic or --broker"),
        }
    }
}

/// Runs a `topics` subcommand.
pub fn topics(cmd: TopicsCommand) -> Result<(), ToolError> {
    match cmd {
        TopicsCommand::Create {
            name,
            partitions,
            replication_factor,
            config,
            conn,
        } => {
            let configs = parse_pairs(&config, "--config")?;
            let mut client = conn.connect()?;
            create_topic(&mut client, &name, partitions, replication_factor, &configs)?;
            outln!("Created topic {name}.");
            Ok(())
        }
        TopicsCommand::List { out, conn } => {
            let mut client = conn.connect()?;
            list_topics(&mut client, out.json)
        }
        TopicsCommand::Describe {
            name,
            filter,
            out,
            conn,
        } => {
            let mut client = conn.connect()?;
            match name {
                _ if filter.any() => describe_filtered(&mut client, name, &filter, out.json),
                Some(name) => describe_topic(&mut client, &name, out.json),
                None => Err(ToolError::Usage(
                    "topics describe needs a topic name, or a partition filter".into(),
                )),
            }
        }
        TopicsCommand::Delete { name, conn } => {
            let mut client = conn.connect()?;
            delete_topic(&mut client, &name)?;
            outln!("Deleted topic {name}.");
            Ok(())
        }
        TopicsCommand::AddPartitions {
            name,
            partitions,
            conn,
        } => {
            let mut client = conn.connect()?;
            add_partitions(&mut client, &name, partitions)?;
            outln!("Topic {name} now has {partitions} partitions.");
            Ok(())
        }
    }
}

/// Runs a `configs` subcommand.
pub fn configs(cmd: ConfigsCommand) -> Result<(), ToolError> {
    match cmd {
        ConfigsCommand::Describe { target, out, conn } => {
            let (kind, name) = target.resource();
            let mut client = conn.connect()?;
            let configs = describe_configs(&mut client, kind, &name)?;
            if out.json {
                outln!("{}", configs_json(&configs).render());
            } else {
                out!("{}", configs_table(&configs).render());
            }
            Ok(())
        }
        ConfigsCommand::Alter {
            target,
            add_config,
            delete_config,
            conn,
        } => {
            let split = |v: &[String]| -> Vec<String> {
                v.iter()
                    .flat_map(|s| s.split(','))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let set = parse_pairs(&split(&add_config), "--add-config")?;
            let delete = split(&delete_config);
            if set.is_empty() && delete.is_empty() {
                return Err(ToolError::Usage(
                    "configs alter needs --add-config or --delete-config".into(),
                ));
            }
            let (kind, name) = target.resource();
            let mut client = conn.connect()?;
            alter_configs(&mut client, kind, &name, &set, &delete)?;
            outln!("Completed updating config for {name}.");
            Ok(())
        }
    }
}

/// Runs a `cluster` subcommand.
pub fn cluster(cmd: ClusterCommand) -> Result<(), ToolError> {
    match cmd {
        ClusterCommand::Describe { out, conn } => {
            let mut client = conn.connect()?;
            describe_cluster(&mut client, out.json)
        }
    }
}

/// Splits `key=value` arguments; anything else is a one-line usage error naming the flag.
pub fn parse_pairs(args: &[String], flag: &str) -> Result<Vec<(String, String)>, ToolError> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(ToolError::Usage(format!(
                "malformed {flag} argument '{arg}': expected KEY=VALUE"
            ))),
        })
        .collect()
}

/// Metadata for `topics` (None: every topic).
pub fn metadata(
    client: &mut Client,
    topics: Option<&[String]>,
    auto_create: bool,
) -> Result<MetadataResponse, ToolError> {
    let mut request = MetadataRequest::default();
    request.topics = topics.map(|names| {
        names
            .iter()
            .map(|n| {
                let mut t = MetadataRequestTopic::default();
                t.name = Some(topic_name(n));
                t
            })
            .collect()
    });
    request.allow_auto_topic_creation = auto_create;
    client.call(&request, METADATA_VERSIONS)
}

/// Offsets for `timestamp` (or [`EARLIEST_TIMESTAMP`] / [`LATEST_TIMESTAMP`]) per partition.
pub fn list_offsets(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<(i32, i64)>, ToolError> {
    let mut t = ListOffsetsTopic::default();
    t.name = topic_name(topic);
    t.partitions = partitions
        .iter()
        .map(|&p| {
            let mut lp = ListOffsetsPartition::default();
            lp.partition_index = p;
            lp.current_leader_epoch = -1;
            lp.timestamp = timestamp;
            lp
        })
        .collect();
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.topics = vec![t];
    let response = client.call(&request, LIST_OFFSETS_VERSIONS)?;
    let mut out = Vec::new();
    for t in response.topics {
        for p in t.partitions {
            check(
                p.error_code,
                || format!("list offsets of {topic}-{}", p.partition_index),
                None,
            )?;
            out.push((p.partition_index, p.offset));
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn create_topic(
    client: &mut Client,
    name: &str,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: &[(String, String)],
) -> Result<(), ToolError> {
    let mut topic = CreatableTopic::default();
    topic.name = topic_name(name);
    topic.num_partitions = partitions.unwrap_or(-1);
    topic.replication_factor = replication_factor.unwrap_or(-1);
    topic.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = StrBytes::from_string(k.clone());
            c.value = Some(StrBytes::from_string(v.clone()));
            c
        })
        .collect();
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = ADMIN_TIMEOUT_MS;
    let response = client.call(&request, CREATE_TOPICS_VERSIONS)?;
    for t in &response.topics {
        check(
            t.error_code,
            || format!("create topic {name}"),
            t.error_message.as_ref().map(|m| m.as_str()),
        )?;
    }
    Ok(())
}

fn delete_topic(client: &mut Client, name: &str) -> Result<(), ToolError> {
    let version = client.version(ApiKey::DeleteTopics, DELETE_TOPICS_VERSIONS)?;
    let mut request = DeleteTopicsRequest::default();
    if version >= 6 {
        let mut state = DeleteTopicState::default();
        state.name = Some(topic_name(name));
        request.topics = vec![state];
    } else {
        request.topic_names = vec![topic_name(name)];
    }
    request.timeout_ms = ADMIN_TIMEOUT_MS;
    let response = client.call_at(&request, version)?;
    for r in &response.responses {
        check(
            r.error_code,
            || format!("delete topic {name}"),
            r.error_message.as_ref().map(|m| m.as_str()),
        )?;
    }
    Ok(())
}

fn add_partitions(client: &mut Client, name: &str, count: i32) -> Result<(), ToolError> {
    let mut topic = CreatePartitionsTopic::default();
    topic.name = topic_name(name);
    topic.count = count;
    topic.assignments = None;
    let mut request = CreatePartitionsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = ADMIN_TIMEOUT_MS;
    let response = client.call(&request, CREATE_PARTITIONS_VERSIONS)?;
    for r in &response.results {
        check(
            r.error_code,
            || format!("add partitions to {name}"),
            r.error_message.as_ref().map(|m| m.as_str()),
        )?;
    }
    Ok(())
}

fn list_topics(client: &mut Client, json: bool) -> Result<(), ToolError> {
    let response = metadata(client, None, false)?;
    let mut topics: Vec<(String, usize, usize)> = response
        .topics
        .iter()
        .filter(|t| t.error_code == NONE)
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            let rf = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
            (name, t.partitions.len(), rf)
        })
        .collect();
    topics.sort();
    if json {
        let items = topics
            .iter()
            .map(|(name, partitions, rf)| {
                Json::object(vec![
                    ("name", Json::Str(name.clone())),
                    ("partitions", Json::Int(*partitions as i64)),
                    ("replication_factor", Json::Int(*rf as i64)),
                ])
            })
            .collect();
        outln!("{}", Json::Array(items).render());
        return Ok(());
    }
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]);
    for (name, partitions, rf) in topics {
        table.row(vec![name, partitions.to_string(), rf.to_string()]);
    }
    out!("{}", table.render());
    Ok(())
}

struct PartitionRow {
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    log_start_offset: i64,
    log_end_offset: i64,
}

fn describe_topic(client: &mut Client, name: &str, json: bool) -> Result<(), ToolError> {
    let (mut route, topic) = Route::load(client, name, false)?;
    let ids = route.partitions();
    let starts = route.list_offsets(&ids, EARLIEST_TIMESTAMP)?;
    let ends = route.list_offsets(&ids, LATEST_TIMESTAMP)?;
    let offset_of =
        |list: &[(i32, i64)], p: i32| list.iter().find(|(q, _)| *q == p).map_or(-1, |(_, o)| *o);
    let mut rows: Vec<PartitionRow> = topic
        .partitions
        .iter()
        .map(|p| PartitionRow {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            log_start_offset: offset_of(&starts, p.partition_index),
            log_end_offset: offset_of(&ends, p.partition_index),
        })
        .collect();
    rows.sort_by_key(|r| r.partition);
    let configs = describe_configs(client, RESOURCE_TOPIC, name)?;
    let rf = rows.first().map_or(0, |r| r.replicas.len());
    let topic_id = topic.topic_id.to_string();
    if json {
        let partitions = rows.iter().map(partition_json).collect();
        let doc = Json::object(vec![
            ("name", Json::Str(name.to_string())),
            ("topic_id", Json::Str(topic_id)),
            ("partition_count", Json::Int(rows.len() as i64)),
            ("replication_factor", Json::Int(rf as i64)),
            ("partitions", Json::Array(partitions)),
            ("configs", configs_json(&configs)),
        ]);
        outln!("{}", doc.render());
        return Ok(());
    }
    outln!(
        "Topic: {name}  TopicId: {topic_id}  PartitionCount: {}  ReplicationFactor: {rf}",
        rows.len()
    );
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "LOG-START-OFFSET",
        "LOG-END-OFFSET",
    ]);
    for r in &rows {
        table.row(vec![
            r.partition.to_string(),
            r.leader.to_string(),
            join_ids(&r.replicas),
            join_ids(&r.isr),
            r.log_start_offset.to_string(),
            r.log_end_offset.to_string(),
        ]);
    }
    out!("{}", table.render());
    outln!();
    outln!("Configs:");
    out!("{}", configs_table(&configs).render());
    Ok(())
}

/// `topics describe --<filter> [name]`: the matching partitions of one topic or of all.
fn describe_filtered(
    client: &mut Client,
    name: Option<String>,
    filter: &PartitionFilter,
    json: bool,
) -> Result<(), ToolError> {
    let topics = name.map(|n| vec![n]);
    let response = metadata(client, topics.as_deref(), false)?;
    let live: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
    let mut matching: Vec<(String, PartitionRow)> = Vec::new();
    let mut named: Vec<_> = response
        .topics
        .iter()
        .filter(|t| t.error_code == NONE)
        .collect();
    named.sort_by(|a, b| a.name.cmp(&b.name));
    for t in named {
        let topic = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        let min_isr = if filter.needs_min_isr() {
            describe_configs(client, RESOURCE_TOPIC, &topic)?
                .iter()
                .find(|c| c.name.as_str() == "min.insync.replicas")
                .and_then(|c| c.value.as_ref().and_then(|v| v.as_str().parse().ok()))
                .unwrap_or(1)
        } else {
            1
        };
        for p in &t.partitions {
            let row = PartitionRow {
                partition: p.partition_index,
                leader: p.leader_id.0,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                log_start_offset: -1,
                log_end_offset: -1,
            };
            if filter.matches(&row, &live, min_isr) {
                matching.push((topic.clone(), row));
            }
        }
    }
    matching.sort_by(|a, b| (&a.0, a.1.partition).cmp(&(&b.0, b.1.partition)));
    if json {
        let ids = |v: &[i32]| Json::Array(v.iter().map(|&i| Json::Int(i64::from(i))).collect());
        let items = matching
            .iter()
            .map(|(topic, r)| {
                Json::object(vec![
                    ("topic", Json::Str(topic.clone())),
                    ("partition", Json::Int(i64::from(r.partition))),
                    ("leader", Json::Int(i64::from(r.leader))),
                    ("replicas", ids(&r.replicas)),
                    ("isr", ids(&r.isr)),
                ])
            })
            .collect();
        outln!("{}", Json::Array(items).render());
        return Ok(());
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"]);
    for (topic, r) in &matching {
        table.row(vec![
            topic.clone(),
            r.partition.to_string(),
            r.leader.to_string(),
            join_ids(&r.replicas),
            join_ids(&r.isr),
        ]);
    }
    out!("{}", table.render());
    Ok(())
}

fn partition_json(r: &PartitionRow) -> Json {
    let ids = |v: &[i32]| Json::Array(v.iter().map(|&i| Json::Int(i64::from(i))).collect());
    Json::object(vec![
        ("partition", Json::Int(i64::from(r.partition))),
        ("leader", Json::Int(i64::from(r.leader))),
        ("replicas", ids(&r.replicas)),
        ("isr", ids(&r.isr)),
        ("log_start_offset", Json::Int(r.log_start_offset)),
        ("log_end_offset", Json::Int(r.log_end_offset)),
    ])
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn describe_configs(
    client: &mut Client,
    resource_type: i8,
    name: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, ToolError> {
    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = resource_type;
    resource.resource_name = StrBytes::from_string(name.to_string());
    resource.configuration_keys = None;
    let mut request = DescribeConfigsRequest::default();
    request.resources = vec![resource];
    let response = client.call(&request, DESCRIBE_CONFIGS_VERSIONS)?;
    let mut configs = Vec::new();
    for r in response.results {
        check(
            r.error_code,
            || {
                format!(
                    "describe configs of {}",
                    resource_label(resource_type, name)
                )
            },
            r.error_message.as_ref().map(|m| m.as_str()),
        )?;
        configs.extend(r.configs);
    }
    configs.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    Ok(configs)
}

fn configs_table(configs: &[DescribeConfigsResourceResult]) -> Table {
    let mut table = Table::new(&["NAME", "VALUE", "SOURCE", "READ-ONLY", "SENSITIVE"]);
    for c in configs {
        let value = if c.is_sensitive {
            "<sensitive>".to_string()
        } else {
            c.value
                .as_ref()
                .map_or("null".to_string(), |v| v.to_string())
        };
        table.row(vec![
            c.name.to_string(),
            value,
            config_source(c.config_source).to_string(),
            c.read_only.to_string(),
            c.is_sensitive.to_string(),
        ]);
    }
    table
}

fn configs_json(configs: &[DescribeConfigsResourceResult]) -> Json {
    Json::Array(
        configs
            .iter()
            .map(|c| {
                Json::object(vec![
                    ("name", Json::Str(c.name.to_string())),
                    ("value", Json::opt_str(c.value.as_ref().map(|v| v.as_str()))),
                    ("source", Json::Str(config_source(c.config_source).into())),
                    ("read_only", Json::Bool(c.read_only)),
                    ("sensitive", Json::Bool(c.is_sensitive)),
                ])
            })
            .collect(),
    )
}

/// Kafka's names for DescribeConfigs sources (v1+).
fn config_source(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

fn resource_label(resource_type: i8, name: &str) -> String {
    match resource_type {
        RESOURCE_TOPIC => format!("topic {name}"),
        RESOURCE_BROKER => format!("broker {name}"),
        _ => name.to_string(),
    }
}

fn alter_configs(
    client: &mut Client,
    resource_type: i8,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), ToolError> {
    let op = |key: &str, operation: i8, value: Option<&str>| {
        let mut c = AlterableConfig::default();
        c.name = StrBytes::from_string(key.to_string());
        c.config_operation = operation;
        c.value = value.map(|v| StrBytes::from_string(v.to_string()));
        c
    };
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = resource_type;
    resource.resource_name = StrBytes::from_string(name.to_string());
    resource.configs = set
        .iter()
        .map(|(k, v)| op(k, OP_SET, Some(v)))
        .chain(delete.iter().map(|k| op(k, OP_DELETE, None)))
        .collect();
    let mut request = IncrementalAlterConfigsRequest::default();
    request.resources = vec![resource];
    let response = client.call(&request, ALTER_CONFIGS_VERSIONS)?;
    for r in &response.responses {
        check(
            r.error_code,
            || format!("alter configs of {}", resource_label(resource_type, name)),
            r.error_message.as_ref().map(|m| m.as_str()),
        )?;
    }
    Ok(())
}

struct ClusterInfo {
    cluster_id: Option<String>,
    controller_id: i32,
    brokers: Vec<(i32, String, i32, Option<String>)>,
}

fn cluster_info(client: &mut Client) -> Result<ClusterInfo, ToolError> {
    if client.supports(ApiKey::DescribeCluster) {
        let response = client.call(
            &DescribeClusterRequest::default(),
            DESCRIBE_CLUSTER_VERSIONS,
        )?;
        check(
            response.error_code,
            || "describe cluster".into(),
            response.error_message.as_ref().map(|m| m.as_str()),
        )?;
        return Ok(ClusterInfo {
            cluster_id: Some(response.cluster_id.to_string()),
            controller_id: response.controller_id.0,
            brokers: response
                .brokers
                .iter()
                .map(|b| {
                    let rack = b.rack.as_ref().map(|r| r.to_string());
                    (b.broker_id.0, b.host.to_string(), b.port, rack)
                })
                .collect(),
        });
    }
    let response = metadata(client, Some(&[]), false)?;
    Ok(ClusterInfo {
        cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
        controller_id: response.controller_id.0,
        brokers: response
            .brokers
            .iter()
            .map(|b| {
                let rack = b.rack.as_ref().map(|r| r.to_string());
                (b.node_id.0, b.host.to_string(), b.port, rack)
            })
            .collect(),
    })
}

fn describe_cluster(client: &mut Client, json: bool) -> Result<(), ToolError> {
    let mut info = cluster_info(client)?;
    info.brokers.sort();
    let apis: Vec<(i16, String, i16, i16)> = client
        .api_versions()
        .iter()
        .map(|(&key, &(lo, hi))| (key, api_name(key), lo, hi))
        .collect();
    if json {
        let brokers = info.brokers.iter().map(|(id, host, port, rack)| {
            Json::object(vec![
                ("id", Json::Int(i64::from(*id))),
                ("host", Json::Str(host.clone())),
                ("port", Json::Int(i64::from(*port))),
                ("rack", Json::opt_str(rack.as_deref())),
            ])
        });
        let apis = apis.iter().map(|(key, name, lo, hi)| {
            Json::object(vec![
                ("api", Json::Str(name.clone())),
                ("key", Json::Int(i64::from(*key))),
                ("min_version", Json::Int(i64::from(*lo))),
                ("max_version", Json::Int(i64::from(*hi))),
            ])
        });
        let doc = Json::object(vec![
            ("cluster_id", Json::opt_str(info.cluster_id.as_deref())),
            ("controller_id", Json::Int(i64::from(info.controller_id))),
            ("brokers", Json::Array(brokers.collect())),
            ("api_versions", Json::Array(apis.collect())),
        ]);
        outln!("{}", doc.render());
        return Ok(());
    }
    outln!(
        "Cluster id: {}",
        info.cluster_id.as_deref().unwrap_or("(none)")
    );
    outln!("Controller: {}", info.controller_id);
    outln!();
    let mut table = Table::new(&["BROKER", "HOST", "PORT", "RACK"]);
    for (id, host, port, rack) in &info.brokers {
        let rack = rack.clone().unwrap_or_else(|| "-".into());
        table.row(vec![id.to_string(), host.clone(), port.to_string(), rack]);
    }
    out!("{}", table.render());
    outln!();
    let mut table = Table::new(&["API", "KEY", "MIN-VERSION", "MAX-VERSION"]);
    for (key, name, lo, hi) in apis {
        table.row(vec![name, key.to_string(), lo.to_string(), hi.to_string()]);
    }
    out!("{}", table.render());
    Ok(())
}

/// A topic name for kafka-protocol.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_need_an_equals_sign_and_a_key() {
        let ok = parse_pairs(&["a=1".into(), "b=x=y".into(), "c=".into()], "--config").unwrap();
        assert_eq!(ok[1], ("b".into(), "x=y".into()));
        assert_eq!(ok[2], ("c".into(), String::new()));
        for bad in ["novalue", "=1", ""] {
            let e = parse_pairs(&[bad.into()], "--config").unwrap_err();
            assert!(e.to_string().contains("malformed --config argument"), "{e}");
        }
    }
}
