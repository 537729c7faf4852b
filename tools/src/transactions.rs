//! `transactions list | describe | describe-producers | abort`: transactions as an administrator
//! sees them, the view of Kafka's `kafka-transactions.sh`.
//!
//! ```text
//! list                Metadata -> every broker; ListTransactions to each (a broker lists only
//!                     the transactions it coordinates); union, sorted by transactional id
//! describe ID         FindCoordinator(ID, key type 1 = transaction) -> DescribeTransactions(ID)
//!                     at the coordinator
//! describe-producers  Metadata -> the partition's leader (or --broker-id);
//!                     DescribeProducers(T, P) there
//! abort               Metadata -> the partition's leader; DescribeProducers(T, P) -> the producer
//!                     whose open transaction starts at --start-offset (or the producer named by
//!                     --producer-id/--producer-epoch/--coordinator-epoch);
//!                     WriteTxnMarkers(ABORT, that producer, [T [P]]) at the leader
//! ```
//!
//! Decisions:
//!
//! * ListTransactions goes out at v1 (v0 to a broker whose maximum is 0) and at v2 only when
//!   `--transactional-id-pattern` asks for it, as Kafka's admin client builds it: v0 cannot carry
//!   `--duration-filter` and v1 cannot carry a pattern, so either against a broker too old for
//!   it is refused rather than silently dropped. An empty pattern is no pattern.
//! * The Coordinator column is the id of the broker that listed the transaction: every broker
//!   answers for the transactions whose state it owns.
//! * `abort` writes the marker the coordinator would have written, to the partition's leader, as
//!   Kafka's `Admin.abortTransaction` does: WriteTxnMarkers v1 (the only version millrace serves
//!   and the only one kafka-protocol encodes), transaction_result false. The coordinator epoch is
//!   the producer's from DescribeProducers (a marker with a lower one would be fenced); a
//!   producer that has never had a marker reports -1, and like Kafka's tool the abort then sends
//!   0, the lowest epoch a marker carries, which nothing stored for that producer can fence. The
//!   explicit form maps a negative `--coordinator-epoch` to 0 the same way.
//! * The coordinator is not told about an abort written this way: it is the repair for a
//!   partition whose coordinator has forgotten the transaction (a hanging transaction). Against a
//!   coordinator that still tracks it, its own timeout ends the transaction later as usual.
//! * Tables use Kafka's column names and its "None" for an absent start offset or start time, so
//!   that runbooks written for `kafka-transactions.sh` read the same; `--json` prints the same
//!   data for scripts.
//!
//! Single-threaded, no shared state: nothing here lives on a broker shard.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Args, Subcommand};
use kafka_protocol::messages::{
    describe_producers_request::TopicRequest,
    describe_producers_response::ProducerState,
    describe_transactions_response::TransactionState,
    write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic},
    ApiKey, DescribeProducersRequest, DescribeTransactionsRequest, FindCoordinatorRequest,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::{metadata, topic_name, Output};
use crate::client::Client;
use crate::error::{check, error_name, ToolError};
use crate::output::{out, outln, Json, Table};
use crate::route::Route;
use crate::Connection;
use millrace_wire::codes::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NONE, TRANSACTIONAL_ID_NOT_FOUND,
};

/// ListTransactions without a transactional id pattern: v1 carries the duration filter.
const LIST_TRANSACTIONS_VERSIONS: RangeInclusive<i16> = 0..=1;
/// ListTransactions with a pattern: v2 is the first version that carries one.
const LIST_TRANSACTIONS_PATTERN_VERSIONS: RangeInclusive<i16> = 2..=2;
const DESCRIBE_TRANSACTIONS_VERSIONS: RangeInclusive<i16> = 0..=0;
const DESCRIBE_PRODUCERS_VERSIONS: RangeInclusive<i16> = 0..=0;
/// v0 is gone from Kafka 4 and from kafka-protocol; v1 is flexible.
const WRITE_TXN_MARKERS_VERSIONS: RangeInclusive<i16> = 1..=1;
/// v1 adds key_type; v4 batches keys, not needed for one id.
const FIND_COORDINATOR_VERSIONS: RangeInclusive<i16> = 1..=3;
/// FindCoordinator key type of a transactional id (0 is a group).
const KEY_TYPE_TRANSACTION: i8 = 1;
/// How long to wait for a coordinator that is loading, and how often to ask.
const COORDINATOR_WAIT: Duration = Duration::from_secs(30);
const RETRY_BACKOFF: Duration = Duration::from_millis(250);
/// What the tables print for an absent value, as Kafka's tool does.
const NONE_TEXT: &str = "None";

/// `transactions ...`
#[derive(Subcommand)]
pub enum TransactionsCommand {
    /// List the transactions every broker coordinates: id, coordinator, producer id, state.
    List(ListArgs),
    /// One transactional id at its coordinator: producer, epoch, state, timeout, start time,
    /// partitions.
    Describe {
        /// Transactional id.
        #[arg(long, value_name = "ID")]
        transactional_id: String,
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        conn: Connection,
    },
    /// The producers a partition's leader keeps state for, and where their open transactions
    /// start.
    DescribeProducers {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partition.
        #[arg(long)]
        partition: i32,
        /// Ask this replica instead of the leader.
        #[arg(long, value_name = "ID")]
        broker_id: Option<i32>,
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        conn: Connection,
    },
    /// Abort a hanging transaction on one partition: write an ABORT marker at its leader.
    Abort(AbortArgs),
}

/// `transactions list [filters]`
#[derive(Args)]
pub struct ListArgs {
    /// Only transactions in this state (repeatable): Empty, Ongoing, PrepareCommit,
    /// PrepareAbort, CompleteCommit, CompleteAbort, PrepareEpochFence, Dead.
    #[arg(long = "state", value_name = "STATE")]
    states: Vec<String>,
    /// Only this producer id (repeatable).
    #[arg(long = "producer-id", value_name = "ID")]
    producer_ids: Vec<i64>,
    /// Only transactions running longer than this many milliseconds (negative: all).
    #[arg(long, value_name = "MS", allow_hyphen_values = true)]
    duration_filter: Option<i64>,
    /// Only transactional ids matching this regular expression (needs ListTransactions v2).
    #[arg(long, value_name = "REGEX")]
    transactional_id_pattern: Option<String>,
    #[command(flatten)]
    out: Output,
    #[command(flatten)]
    conn: Connection,
}

/// `transactions abort --topic T --partition P (--start-offset O | --producer-id ...)`
#[derive(Args)]
#[command(group(ArgGroup::new("transaction").required(true).multiple(false).args(
    ["start_offset", "producer_id"]
)))]
pub struct AbortArgs {
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Partition.
    #[arg(long)]
    partition: i32,
    /// Offset of the first record of the transaction to abort (describe-producers'
    /// CurrentTransactionStartOffset).
    #[arg(long, value_name = "OFFSET")]
    start_offset: Option<i64>,
    /// Instead of --start-offset: the producer whose transaction to abort, with
    /// --producer-epoch and --coordinator-epoch.
    #[arg(long, value_name = "ID", requires_all = ["producer_epoch", "coordinator_epoch"])]
    producer_id: Option<i64>,
    /// The producer's epoch (with --producer-id).
    #[arg(long, value_name = "EPOCH", requires = "producer_id")]
    producer_epoch: Option<i16>,
    /// The coordinator epoch of the producer's last marker (with --producer-id; negative: 0).
    #[arg(
        long,
        value_name = "EPOCH",
        requires = "producer_id",
        allow_hyphen_values = true
    )]
    coordinator_epoch: Option<i32>,
    #[command(flatten)]
    conn: Connection,
}

/// Runs a `transactions` subcommand.
pub fn run(cmd: TransactionsCommand) -> Result<(), ToolError> {
    match cmd {
        TransactionsCommand::List(args) => list_transactions(&args),
        TransactionsCommand::Describe {
            transactional_id,
            out,
            conn,
        } => {
            let mut bootstrap = conn.connect()?;
            describe_transaction(&mut bootstrap, &transactional_id, out.json)
        }
        TransactionsCommand::DescribeProducers {
            topic,
            partition,
            broker_id,
            out,
            conn,
        } => {
            let mut bootstrap = conn.connect()?;
            let (mut route, leader) = partition_route(&mut bootstrap, &topic, partition)?;
            let broker = broker_id.unwrap_or(leader);
            if !route.has_broker(broker) {
                return Err(ToolError::Usage(format!(
                    "broker {broker} is not in the cluster metadata"
                )));
            }
            let producers = describe_producers(route.client(broker)?, &topic, partition)?;
            print_producers(&producers, out.json);
            Ok(())
        }
        TransactionsCommand::Abort(args) => abort_transaction(&args),
    }
}

/// One row of `list`.
#[derive(Debug, Clone, PartialEq)]
struct Listing {
    transactional_id: String,
    coordinator: i32,
    producer_id: i64,
    state: String,
}

/// The transaction `abort` ends: which producer, on which partition, with which epochs.
#[derive(Debug, Clone, PartialEq)]
struct AbortSpec {
    topic: String,
    partition: i32,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
}

fn list_transactions(args: &ListArgs) -> Result<(), ToolError> {
    let mut bootstrap = args.conn.connect()?;
    let brokers: Vec<(i32, String)> = metadata(&mut bootstrap, Some(&[]), false)?
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let pattern = args
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty());
    let mut listings = Vec::new();
    let mut unknown_states = BTreeSet::new();
    for (id, address) in brokers {
        let mut broker = bootstrap.connect_to(&address)?;
        let ours = if pattern.is_some() {
            LIST_TRANSACTIONS_PATTERN_VERSIONS
        } else {
            LIST_TRANSACTIONS_VERSIONS
        };
        let version = broker.version(ApiKey::ListTransactions, ours)?;
        let request = list_request(args, pattern, version)?;
        let response: ListTransactionsResponse = broker.call_at(&request, version)?;
        check(
            response.error_code,
            || format!("list transactions at broker {id} ({address})"),
            None,
        )?;
        unknown_states.extend(response.unknown_state_filters.iter().map(|s| s.to_string()));
        listings.extend(response.transaction_states.iter().map(|t| Listing {
            transactional_id: t.transactional_id.to_string(),
            coordinator: id,
            producer_id: t.producer_id.0,
            state: t.transaction_state.to_string(),
        }));
    }
    listings.sort_by(|a, b| {
        (&a.transactional_id, a.coordinator).cmp(&(&b.transactional_id, b.coordinator))
    });
    if !unknown_states.is_empty() {
        let names: Vec<String> = unknown_states.into_iter().collect();
        eprintln!(
            "millrace-tools: the brokers do not know the state(s) {}; nothing matched them",
            names.join(", ")
        );
    }
    print_listings(&listings, args.out.json);
    Ok(())
}

/// The ListTransactions request for `args` at `version`; a filter the version cannot carry is
/// an error, not a filter dropped.
fn list_request(
    args: &ListArgs,
    pattern: Option<&str>,
    version: i16,
) -> Result<ListTransactionsRequest, ToolError> {
    let mut request = ListTransactionsRequest::default();
    request.state_filters = args
        .states
        .iter()
        .map(|s| StrBytes::from_string(s.clone()))
        .collect();
    request.producer_id_filters = args.producer_ids.iter().map(|&p| ProducerId(p)).collect();
    request.duration_filter = -1;
    if let Some(ms) = args.duration_filter.filter(|&ms| ms >= 0) {
        if version < 1 {
            return Err(ToolError::Unsupported {
                api: "ListTransactions with --duration-filter".into(),
                detail: "it needs v1, the broker speaks v0".into(),
            });
        }
        request.duration_filter = ms;
    }
    if let Some(p) = pattern {
        assert!(version >= 2, "a pattern is only sent at v2");
        request.transactional_id_pattern = Some(StrBytes::from_string(p.to_string()));
    }
    Ok(request)
}

fn print_listings(listings: &[Listing], json: bool) {
    if json {
        let items = listings
            .iter()
            .map(|l| {
                Json::object(vec![
                    ("transactional_id", Json::Str(l.transactional_id.clone())),
                    ("coordinator", Json::Int(i64::from(l.coordinator))),
                    ("producer_id", Json::Int(l.producer_id)),
                    ("state", Json::Str(l.state.clone())),
                ])
            })
            .collect();
        outln!("{}", Json::Array(items).render());
        return;
    }
    let mut table = Table::new(&[
        "TransactionalId",
        "Coordinator",
        "ProducerId",
        "TransactionState",
    ]);
    for l in listings {
        table.row(vec![
            l.transactional_id.clone(),
            l.coordinator.to_string(),
            l.producer_id.to_string(),
            l.state.clone(),
        ]);
    }
    out!("{}", table.render());
}

fn describe_transaction(bootstrap: &mut Client, id: &str, json: bool) -> Result<(), ToolError> {
    let (coordinator_id, mut coordinator) = find_transaction_coordinator(bootstrap, id)?;
    let mut request = DescribeTransactionsRequest::default();
    request.transactional_ids = vec![TransactionalId(StrBytes::from_string(id.to_string()))];
    let response = coordinator.call(&request, DESCRIBE_TRANSACTIONS_VERSIONS)?;
    let state = response
        .transaction_states
        .into_iter()
        .find(|s| s.transactional_id.as_str() == id)
        .ok_or_else(|| {
            ToolError::Protocol(format!("DescribeTransactions omits transactional id {id}"))
        })?;
    let not_found = format!("its coordinator, broker {coordinator_id}, has no such id");
    let message = (state.error_code == TRANSACTIONAL_ID_NOT_FOUND).then_some(not_found.as_str());
    check(
        state.error_code,
        || format!("describe transactional id {id}"),
        message,
    )?;
    print_transaction(coordinator_id, &state, now_ms(), json);
    Ok(())
}

fn print_transaction(coordinator_id: i32, t: &TransactionState, now_ms: i64, json: bool) {
    let start_ms = (t.transaction_start_time_ms >= 0).then_some(t.transaction_start_time_ms);
    let duration_ms = start_ms.map(|s| now_ms - s);
    let partitions = transaction_partitions(t);
    if json {
        let doc = transaction_json(coordinator_id, t, (start_ms, duration_ms), &partitions);
        outln!("{}", doc.render());
        return;
    }
    let mut table = Table::new(&[
        "CoordinatorId",
        "TransactionalId",
        "ProducerId",
        "ProducerEpoch",
        "TransactionState",
        "TransactionTimeoutMs",
        "CurrentTransactionStartTimeMs",
        "TransactionDurationMs",
        "TopicPartitions",
    ]);
    let text = |v: Option<i64>| v.map_or(NONE_TEXT.to_string(), |v| v.to_string());
    let partitions: Vec<String> = partitions.iter().map(|(t, p)| format!("{t}-{p}")).collect();
    table.row(vec![
        coordinator_id.to_string(),
        t.transactional_id.to_string(),
        t.producer_id.0.to_string(),
        t.producer_epoch.to_string(),
        t.transaction_state.to_string(),
        t.transaction_timeout_ms.to_string(),
        text(start_ms),
        text(duration_ms),
        partitions.join(","),
    ]);
    out!("{}", table.render());
}

/// `describe --json`; `times` is (start time, duration) in ms, when a transaction is open.
fn transaction_json(
    coordinator_id: i32,
    t: &TransactionState,
    times: (Option<i64>, Option<i64>),
    partitions: &BTreeSet<(String, i32)>,
) -> Json {
    let parts = partitions
        .iter()
        .map(|(topic, p)| {
            Json::object(vec![
                ("topic", Json::Str(topic.clone())),
                ("partition", Json::Int(i64::from(*p))),
            ])
        })
        .collect();
    let opt = |v: Option<i64>| v.map_or(Json::Null, Json::Int);
    Json::object(vec![
        ("coordinator_id", Json::Int(i64::from(coordinator_id))),
        (
            "transactional_id",
            Json::Str(t.transactional_id.to_string()),
        ),
        ("producer_id", Json::Int(t.producer_id.0)),
        ("producer_epoch", Json::Int(i64::from(t.producer_epoch))),
        ("state", Json::Str(t.transaction_state.to_string())),
        (
            "transaction_timeout_ms",
            Json::Int(i64::from(t.transaction_timeout_ms)),
        ),
        ("transaction_start_time_ms", opt(times.0)),
        ("transaction_duration_ms", opt(times.1)),
        ("topic_partitions", Json::Array(parts)),
    ])
}

/// The partitions in a transaction, sorted.
fn transaction_partitions(t: &TransactionState) -> BTreeSet<(String, i32)> {
    t.topics
        .iter()
        .flat_map(|td| td.partitions.iter().map(|&p| (td.topic.to_string(), p)))
        .collect()
}

/// Finds the coordinator of transactional id `id` through `bootstrap`; returns its broker id and
/// a connection to it. Waits while the coordinator is loading (a new cluster creates its
/// transaction log on first use).
fn find_transaction_coordinator(
    bootstrap: &mut Client,
    id: &str,
) -> Result<(i32, Client), ToolError> {
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(id.to_string());
    request.key_type = KEY_TYPE_TRANSACTION;
    let deadline = Instant::now() + COORDINATOR_WAIT;
    let response = loop {
        let response = bootstrap.call(&request, FIND_COORDINATOR_VERSIONS)?;
        let retriable = matches!(
            response.error_code,
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE
        );
        if !retriable || Instant::now() > deadline {
            break response;
        }
        std::thread::sleep(RETRY_BACKOFF);
    };
    if response.error_code != NONE {
        return Err(ToolError::Usage(format!(
            "transactional id {id}: no coordinator ({})",
            error_name(response.error_code)
        )));
    }
    let address = format!("{}:{}", response.host.as_str(), response.port);
    Ok((response.node_id.0, bootstrap.connect_to(&address)?))
}

/// The topic's route and the leader of `partition`, which must exist.
fn partition_route(
    bootstrap: &mut Client,
    topic: &str,
    partition: i32,
) -> Result<(Route, i32), ToolError> {
    let (route, _) = Route::load(bootstrap, topic, false)?;
    let partitions = route.partitions();
    if !partitions.contains(&partition) {
        return Err(ToolError::Usage(format!(
            "topic {topic} has no partition {partition} (it has {})",
            partitions.len()
        )));
    }
    let leader = route.leader(partition);
    Ok((route, leader))
}

/// DescribeProducers for one partition at `broker`: the producers it keeps state for.
fn describe_producers(
    broker: &mut Client,
    topic: &str,
    partition: i32,
) -> Result<Vec<ProducerState>, ToolError> {
    let mut t = TopicRequest::default();
    t.name = topic_name(topic);
    t.partition_indexes = vec![partition];
    let mut request = DescribeProducersRequest::default();
    request.topics = vec![t];
    let response = broker.call(&request, DESCRIBE_PRODUCERS_VERSIONS)?;
    let answer = response
        .topics
        .into_iter()
        .filter(|t| t.name.as_str() == topic)
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| {
            ToolError::Protocol(format!("DescribeProducers omits {topic}-{partition}"))
        })?;
    check(
        answer.error_code,
        || format!("describe producers of {topic}-{partition}"),
        answer.error_message.as_ref().map(|m| m.as_str()),
    )?;
    let mut producers = answer.active_producers;
    producers.sort_by_key(|p| p.producer_id.0);
    Ok(producers)
}

fn print_producers(producers: &[ProducerState], json: bool) {
    let start =
        |p: &ProducerState| (p.current_txn_start_offset >= 0).then_some(p.current_txn_start_offset);
    // Kafka's tool shows any negative coordinator epoch (none yet) as -1.
    let coordinator_epoch = |p: &ProducerState| p.coordinator_epoch.max(-1);
    if json {
        let items = producers
            .iter()
            .map(|p| {
                Json::object(vec![
                    ("producer_id", Json::Int(p.producer_id.0)),
                    ("producer_epoch", Json::Int(i64::from(p.producer_epoch))),
                    (
                        "latest_coordinator_epoch",
                        Json::Int(i64::from(coordinator_epoch(p))),
                    ),
                    ("last_sequence", Json::Int(i64::from(p.last_sequence))),
                    ("last_timestamp", Json::Int(p.last_timestamp)),
                    (
                        "current_transaction_start_offset",
                        start(p).map_or(Json::Null, Json::Int),
                    ),
                ])
            })
            .collect();
        outln!("{}", Json::Array(items).render());
        return;
    }
    let mut table = Table::new(&[
        "ProducerId",
        "ProducerEpoch",
        "LatestCoordinatorEpoch",
        "LastSequence",
        "LastTimestamp",
        "CurrentTransactionStartOffset",
    ]);
    for p in producers {
        table.row(vec![
            p.producer_id.0.to_string(),
            p.producer_epoch.to_string(),
            coordinator_epoch(p).to_string(),
            p.last_sequence.to_string(),
            p.last_timestamp.to_string(),
            start(p).map_or(NONE_TEXT.to_string(), |o| o.to_string()),
        ]);
    }
    out!("{}", table.render());
}

fn abort_transaction(args: &AbortArgs) -> Result<(), ToolError> {
    let mut bootstrap = args.conn.connect()?;
    let (topic, partition) = (args.topic.as_str(), args.partition);
    let (mut route, leader) = partition_route(&mut bootstrap, topic, partition)?;
    let leader_client = route.client(leader)?;
    let spec = match (args.start_offset, args.producer_id) {
        (Some(offset), _) => {
            let producers = describe_producers(leader_client, topic, partition)?;
            spec_for_start_offset(&producers, topic, partition, offset)?
        }
        (None, Some(producer_id)) => AbortSpec {
            topic: topic.to_string(),
            partition,
            producer_id,
            producer_epoch: args.producer_epoch.expect("clap requires --producer-epoch"),
            coordinator_epoch: args
                .coordinator_epoch
                .expect("clap requires --coordinator-epoch")
                .max(0),
        },
        (None, None) => unreachable!("clap requires --start-offset or --producer-id"),
    };
    let response = leader_client.call(&abort_request(&spec), WRITE_TXN_MARKERS_VERSIONS)?;
    check_abort_response(&response, &spec)?;
    let at = args
        .start_offset
        .map(|o| format!(", started at offset {o}"))
        .unwrap_or_default();
    outln!(
        "Aborted the transaction of producer {} (epoch {}, coordinator epoch {}) on \
         {topic}-{partition}{at}: leader {leader} wrote the ABORT marker.",
        spec.producer_id,
        spec.producer_epoch,
        spec.coordinator_epoch
    );
    Ok(())
}

/// The abort of the open transaction that starts at `offset`, from the leader's producers.
fn spec_for_start_offset(
    producers: &[ProducerState],
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<AbortSpec, ToolError> {
    let p = producers
        .iter()
        .find(|p| p.current_txn_start_offset >= 0 && p.current_txn_start_offset == offset)
        .ok_or_else(|| {
            ToolError::Usage(format!(
                "no open transaction starts at offset {offset} on {topic}-{partition} \
                 (describe-producers lists the open ones)"
            ))
        })?;
    let producer_epoch = i16::try_from(p.producer_epoch).map_err(|_| {
        ToolError::Protocol(format!(
            "DescribeProducers reports producer epoch {} for producer {}",
            p.producer_epoch, p.producer_id.0
        ))
    })?;
    Ok(AbortSpec {
        topic: topic.to_string(),
        partition,
        producer_id: p.producer_id.0,
        producer_epoch,
        coordinator_epoch: p.coordinator_epoch.max(0),
    })
}

fn abort_request(spec: &AbortSpec) -> WriteTxnMarkersRequest {
    let mut topic = WritableTxnMarkerTopic::default();
    topic.name = topic_name(&spec.topic);
    topic.partition_indexes = vec![spec.partition];
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(spec.producer_id);
    marker.producer_epoch = spec.producer_epoch;
    marker.transaction_result = false;
    marker.topics = vec![topic];
    marker.coordinator_epoch = spec.coordinator_epoch;
    let mut request = WriteTxnMarkersRequest::default();
    request.markers = vec![marker];
    request
}

/// The answer must be about exactly this producer and partition, without an error.
fn check_abort_response(
    response: &WriteTxnMarkersResponse,
    spec: &AbortSpec,
) -> Result<(), ToolError> {
    let name = format!("{}-{}", spec.topic, spec.partition);
    let results: BTreeMap<(i64, String, i32), i16> = response
        .markers
        .iter()
        .flat_map(|m| {
            m.topics.iter().flat_map(move |t| {
                t.partitions.iter().map(move |p| {
                    (
                        (m.producer_id.0, t.name.to_string(), p.partition_index),
                        p.error_code,
                    )
                })
            })
        })
        .collect();
    let key = (spec.producer_id, spec.topic.clone(), spec.partition);
    let code = match (results.len(), results.get(&key)) {
        (1, Some(&code)) => code,
        _ => {
            return Err(ToolError::Protocol(format!(
                "WriteTxnMarkers answer does not match the request for producer {} on {name}: {} \
                 results",
                spec.producer_id,
                results.len()
            )))
        }
    };
    check(
        code,
        || {
            format!(
                "abort the transaction of producer {} (epoch {}, coordinator epoch {}) on {name}",
                spec.producer_id, spec.producer_epoch, spec.coordinator_epoch
            )
        },
        None,
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };
    use millrace_wire::codes::INVALID_PRODUCER_EPOCH;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: TransactionsCommand,
    }

    fn parse(args: &[&str]) -> Result<TransactionsCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|c| c.command)
    }

    fn list_args(args: &[&str]) -> ListArgs {
        match parse(&[&["list"], args].concat()).unwrap() {
            TransactionsCommand::List(a) => a,
            _ => panic!("not list"),
        }
    }

    fn producer(id: i64, epoch: i32, coordinator_epoch: i32, start: i64) -> ProducerState {
        let mut p = ProducerState::default();
        p.producer_id = ProducerId(id);
        p.producer_epoch = epoch;
        p.coordinator_epoch = coordinator_epoch;
        p.current_txn_start_offset = start;
        p
    }

    #[test]
    fn list_requests_carry_only_what_the_version_can() {
        let args = list_args(&["--state", "Ongoing", "--producer-id", "7"]);
        let r = list_request(&args, None, 1).unwrap();
        assert_eq!(r.state_filters, vec![StrBytes::from_static_str("Ongoing")]);
        assert_eq!(r.producer_id_filters, vec![ProducerId(7)]);
        assert_eq!((r.duration_filter, r.transactional_id_pattern), (-1, None));

        let args = list_args(&["--duration-filter", "60000"]);
        assert_eq!(
            list_request(&args, None, 1).unwrap().duration_filter,
            60_000
        );
        let err = list_request(&args, None, 0).unwrap_err();
        assert!(err.to_string().contains("needs v1"), "{err}");
        // A negative filter means "all", which v0 can express by omission.
        let args = list_args(&["--duration-filter", "-1"]);
        assert_eq!(list_request(&args, None, 0).unwrap().duration_filter, -1);

        let args = list_args(&["--transactional-id-pattern", "pay.*"]);
        let r = list_request(&args, Some("pay.*"), 2).unwrap();
        assert_eq!(
            r.transactional_id_pattern,
            Some(StrBytes::from_static_str("pay.*"))
        );
    }

    #[test]
    fn abort_takes_the_producer_whose_transaction_starts_there() {
        let producers = [
            producer(5, 0, 3, -1),
            producer(6, 2, -1, 40),
            producer(7, 1, 4, 12),
        ];
        let spec = spec_for_start_offset(&producers, "t", 0, 40).unwrap();
        // No marker yet (-1): coordinator epoch 0, as Kafka's tool sends.
        assert_eq!(
            (
                spec.producer_id,
                spec.producer_epoch,
                spec.coordinator_epoch
            ),
            (6, 2, 0)
        );
        let spec = spec_for_start_offset(&producers, "t", 0, 12).unwrap();
        assert_eq!((spec.producer_id, spec.coordinator_epoch), (7, 4));
        let err = spec_for_start_offset(&producers, "t", 0, 13).unwrap_err();
        assert!(
            err.to_string()
                .contains("no open transaction starts at offset 13"),
            "{err}"
        );
        // -1 means "no open transaction", never a start offset.
        assert!(spec_for_start_offset(&producers, "t", 0, -1).is_err());
        let err = spec_for_start_offset(&[producer(8, 70_000, 0, 1)], "t", 0, 1).unwrap_err();
        assert!(err.to_string().contains("producer epoch 70000"), "{err}");
    }

    #[test]
    fn abort_forms_are_exclusive_and_complete() {
        assert!(parse(&["abort", "--topic", "t", "--partition", "0"]).is_err());
        assert!(parse(&[
            "abort",
            "--topic",
            "t",
            "--partition",
            "0",
            "--start-offset",
            "3",
            "--producer-id",
            "1",
            "--producer-epoch",
            "0",
            "--coordinator-epoch",
            "0",
        ])
        .is_err());
        assert!(parse(&[
            "abort",
            "--topic",
            "t",
            "--partition",
            "0",
            "--producer-id",
            "1"
        ])
        .is_err());
        let ok = parse(&[
            "abort",
            "--topic",
            "t",
            "--partition",
            "0",
            "--producer-id",
            "1",
            "--producer-epoch",
            "2",
            "--coordinator-epoch",
            "-1",
        ]);
        assert!(matches!(
            ok,
            Ok(TransactionsCommand::Abort(AbortArgs {
                producer_id: Some(1),
                producer_epoch: Some(2),
                coordinator_epoch: Some(-1),
                ..
            }))
        ));
    }

    #[test]
    fn abort_request_is_one_abort_marker_for_one_partition() {
        let spec = AbortSpec {
            topic: "t".into(),
            partition: 3,
            producer_id: 9,
            producer_epoch: 1,
            coordinator_epoch: 0,
        };
        let r = abort_request(&spec);
        assert_eq!(r.markers.len(), 1);
        let m = &r.markers[0];
        assert_eq!(
            (
                m.producer_id.0,
                m.producer_epoch,
                m.transaction_result,
                m.coordinator_epoch
            ),
            (9, 1, false, 0)
        );
        assert_eq!(m.topics.len(), 1);
        assert_eq!(
            (
                m.topics[0].name.as_str(),
                &m.topics[0].partition_indexes[..]
            ),
            ("t", &[3][..])
        );
    }

    fn marker_response(
        producer_id: i64,
        topic: &str,
        partition: i32,
        code: i16,
    ) -> WriteTxnMarkersResponse {
        let mut p = WritableTxnMarkerPartitionResult::default();
        p.partition_index = partition;
        p.error_code = code;
        let mut t = WritableTxnMarkerTopicResult::default();
        t.name = topic_name(topic);
        t.partitions = vec![p];
        let mut m = WritableTxnMarkerResult::default();
        m.producer_id = ProducerId(producer_id);
        m.topics = vec![t];
        let mut r = WriteTxnMarkersResponse::default();
        r.markers = vec![m];
        r
    }

    #[test]
    fn abort_answers_are_checked_for_shape_and_error() {
        let spec = AbortSpec {
            topic: "t".into(),
            partition: 0,
            producer_id: 9,
            producer_epoch: 1,
            coordinator_epoch: 0,
        };
        assert!(check_abort_response(&marker_response(9, "t", 0, NONE), &spec).is_ok());
        let err = check_abort_response(&marker_response(9, "t", 0, INVALID_PRODUCER_EPOCH), &spec)
            .unwrap_err();
        assert!(err.to_string().contains("INVALID_PRODUCER_EPOCH"), "{err}");
        for wrong in [
            marker_response(8, "t", 0, NONE),
            marker_response(9, "u", 0, NONE),
            marker_response(9, "t", 1, NONE),
            WriteTxnMarkersResponse::default(),
        ] {
            let err = check_abort_response(&wrong, &spec).unwrap_err();
            assert!(err.to_string().contains("does not match"), "{err}");
        }
    }

    #[test]
    fn transaction_partitions_are_sorted_topic_partition_pairs() {
        use kafka_protocol::messages::describe_transactions_response::TopicData;
        let mut a = TopicData::default();
        a.topic = topic_name("b");
        a.partitions = vec![1, 0];
        let mut b = TopicData::default();
        b.topic = topic_name("a");
        b.partitions = vec![2];
        let mut t = TransactionState::default();
        t.topics = vec![a, b];
        let got: Vec<_> = transaction_partitions(&t).into_iter().collect();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), 2),
                ("b".to_string(), 0),
                ("b".to_string(), 1)
            ]
        );
    }
}
