//! The `transactions` checks that cli.rs runs against millrace and kafka.rs against Apache
//! Kafka, and what they need: a transactional producer on the raw Kafka protocol that leaves a
//! transaction open (what `describe-producers` and `abort` are for), and the offsets and the
//! read_committed view that show whether it still holds readers back.
//!
//! ```text
//! FindCoordinator(id, key type 1) -> InitProducerId(id) -> AddPartitionsToTxn(id, [T [P]])
//!   -> Produce(id, one transactional batch, sequence 0) ... and no EndTxn
//! ```
//!
//! Fixed versions that millrace and Kafka 4 both serve (Produce v9, the last before topic ids;
//! AddPartitionsToTxn v3, the last a client sends; Fetch v11; ListOffsets v5), and for the
//! Transactions V2 check Produce v12, EndTxn v5 and TxnOffsetCommit v4/v5. Single-node
//! clusters only: the partition's leader is the bootstrap broker. Any unexpected answer panics:
//! this is test code.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    add_partitions_to_txn_request::AddPartitionsToTxnTopic,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    produce_request::{PartitionProduceData, TopicProduceData},
    txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic},
    AddPartitionsToTxnRequest, ApiKey, ApiVersionsRequest, BrokerId, EndTxnRequest, FetchRequest,
    FindCoordinatorRequest, GroupId, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest,
    ProducerId, RequestHeader, ResponseHeader, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use millrace_wire::codes::{
    CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
    INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, LEADER_NOT_AVAILABLE, NONE, NOT_COORDINATOR,
    NOT_ENOUGH_REPLICAS, NOT_LEADER_OR_FOLLOWER, TRANSACTION_ABORTABLE, UNKNOWN_TOPIC_OR_PARTITION,
};
use millrace_wire::records::{
    txn_marker, BatchBuilder, BatchIter, BatchStep, NewRecord, TxnMarker,
};

/// Long enough that no coordinator ends the transaction while a test looks at it.
const TRANSACTION_TIMEOUT_MS: i32 = 300_000;
/// How long to retry answers that mean "not yet" (a coordinator loading, a transaction log
/// being created on first use).
const RETRY_FOR: Duration = Duration::from_secs(60);
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
const LATEST_TIMESTAMP: i64 = -1;
const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;
const TOOLS: &str = env!("CARGO_BIN_EXE_millrace-tools");
/// An ABORT marker as the tool writes it for a producer without earlier markers.
const ABORT_MARKER: TxnMarker = TxnMarker {
    commit: false,
    coordinator_epoch: 0,
};

/// The `transactions` commands end to end against the broker at `bootstrap`, on a new
/// single-partition topic: two transactions left open show up in `list`, `describe` and
/// `describe-producers`, and each form of `abort` moves the last stable offset past one and
/// makes read_committed readers skip it.
pub fn check_transactions_commands(bootstrap: &str, topic: &str) {
    let run = |args: &[&str]| {
        Command::new(TOOLS)
            .args(args)
            .args(["--bootstrap-server", bootstrap])
            .output()
            .unwrap()
    };
    ok(run(&["topics", "create", topic, "--partitions", "1"]));
    // Plain records first, so that the transaction does not start at offset 0.
    let plain: Vec<NewRecord> = (0..3).map(|i| record(&format!("plain{i}"))).collect();
    let plain = BatchBuilder::default().build(&plain);
    assert_eq!(produce(bootstrap, None, topic, 0, plain), 0);
    let a = open_transaction(bootstrap, "txn-a", topic, 0, &["a0", "a1"]);
    assert_eq!(a.start_offset, 3);
    assert_eq!(high_watermark(bootstrap, topic, 0), 5);
    assert_eq!(last_stable_offset(bootstrap, topic, 0), 3);

    // One broker: it coordinates the transaction and leads the partition.
    let broker = check_list(&run, &a);
    check_describe(&run, &a, topic, &broker);
    check_describe_producers(&run, &a, topic, &broker);
    check_abort_at_start_offset(&run, bootstrap, &a, topic);
    check_abort_of_producer(&run, bootstrap, &a, topic);
}

/// `describe-producers` at the leader and at a named broker, with transaction `a` open.
fn check_describe_producers(
    run: &dyn Fn(&[&str]) -> Output,
    a: &OpenTransaction,
    topic: &str,
    broker: &str,
) {
    let describe = [
        "transactions",
        "describe-producers",
        "--topic",
        topic,
        "--partition",
        "0",
    ];
    let producers = ok(run(&describe));
    let row = row_of(&producers, &a.producer_id.to_string());
    // Epoch, last sequence (two records from 0), start offset.
    assert_eq!(
        (row[1].as_str(), row[3].as_str(), row[5].as_str()),
        (a.producer_epoch.to_string().as_str(), "1", "3"),
        "{producers}"
    );
    let at = |broker: &str| run(&[&describe[..], &["--broker-id", broker]].concat());
    assert_eq!(ok(at(broker)), producers);
    fails_with(at("99"), "broker 99 is not in the cluster metadata");
}

/// `abort --start-offset`: a wrong offset is refused; the right one ends transaction `a`.
fn check_abort_at_start_offset(
    run: &dyn Fn(&[&str]) -> Output,
    bootstrap: &str,
    a: &OpenTransaction,
    topic: &str,
) {
    let abort = [
        "transactions",
        "abort",
        "--topic",
        topic,
        "--partition",
        "0",
    ];
    fails_with(
        run(&[&abort[..], &["--start-offset", "4"]].concat()),
        "no open transaction starts at offset 4",
    );
    let done = ok(run(&[&abort[..], &["--start-offset", "3"]].concat()));
    assert!(
        done.contains(&format!("producer {} (epoch", a.producer_id)),
        "{done}"
    );
    // The ABORT marker takes offset 5; nothing is left unstable, and read_committed readers
    // are told to skip the transaction.
    assert_eq!(high_watermark(bootstrap, topic, 0), 6);
    assert_eq!(last_stable_offset(bootstrap, topic, 0), 6);
    assert_eq!(
        committed_view(bootstrap, topic, 0),
        CommittedView {
            aborted: vec![(a.producer_id, 3)],
            markers: vec![(5, ABORT_MARKER)],
        }
    );
    let producers = ok(run(&[
        "transactions",
        "describe-producers",
        "--topic",
        topic,
        "--partition",
        "0",
        "--json",
    ]));
    assert!(
        producers.contains(&format!(
            "\"producer_id\":{},\"producer_epoch\":{}",
            a.producer_id, a.producer_epoch
        )) && !producers.contains("\"current_transaction_start_offset\":3"),
        "{producers}"
    );
}

/// `abort --producer-id --producer-epoch --coordinator-epoch` of a second transaction, with
/// the -1 a producer without markers reports.
fn check_abort_of_producer(
    run: &dyn Fn(&[&str]) -> Output,
    bootstrap: &str,
    a: &OpenTransaction,
    topic: &str,
) {
    let b = open_transaction(bootstrap, "txn-b", topic, 0, &["b0"]);
    let lso = last_stable_offset(bootstrap, topic, 0);
    assert_eq!((b.start_offset, lso), (6, 6));
    let producers = ok(run(&[
        "transactions",
        "describe-producers",
        "--topic",
        topic,
        "--partition",
        "0",
    ]));
    let row = row_of(&producers, &b.producer_id.to_string());
    assert_eq!(
        (row[2].as_str(), row[5].as_str()),
        ("-1", "6"),
        "{producers}"
    );
    let (id, epoch) = (b.producer_id.to_string(), b.producer_epoch.to_string());
    ok(run(&[
        "transactions",
        "abort",
        "--topic",
        topic,
        "--partition",
        "0",
        "--producer-id",
        &id,
        "--producer-epoch",
        &epoch,
        "--coordinator-epoch",
        "-1",
    ]));
    assert_eq!(high_watermark(bootstrap, topic, 0), 8);
    assert_eq!(last_stable_offset(bootstrap, topic, 0), 8);
    let mut aborted = vec![(a.producer_id, 3), (b.producer_id, 6)];
    aborted.sort_unstable();
    assert_eq!(
        committed_view(bootstrap, topic, 0),
        CommittedView {
            aborted,
            markers: vec![(5, ABORT_MARKER), (7, ABORT_MARKER)],
        }
    );
}

/// `list` and its filters, with transaction `a` open; returns its Coordinator column.
fn check_list(run: &dyn Fn(&[&str]) -> Output, a: &OpenTransaction) -> String {
    let list = |filters: &[&str]| ok(run(&[&["transactions", "list"], filters].concat()));
    let all = list(&[]);
    assert_eq!(
        all.lines()
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec![
            "TransactionalId",
            "Coordinator",
            "ProducerId",
            "TransactionState"
        ]),
        "{all}"
    );
    let row = row_of(&all, "txn-a");
    assert_eq!(
        (row[2].as_str(), row[3].as_str()),
        (a.producer_id.to_string().as_str(), "Ongoing"),
        "{all}"
    );
    let pid = a.producer_id.to_string();
    let other_pid = (a.producer_id + 1).to_string();
    for (filters, listed) in [
        (&["--state", "Ongoing"][..], true),
        (
            &["--state", "CompleteCommit", "--state", "Empty"][..],
            false,
        ),
        (&["--producer-id", pid.as_str()][..], true),
        (&["--producer-id", other_pid.as_str()][..], false),
        (&["--duration-filter", "-1"][..], true),
        (&["--duration-filter", "3600000"][..], false),
        (&["--transactional-id-pattern", "txn-.*"][..], true),
        (&["--transactional-id-pattern", "other-.*"][..], false),
    ] {
        let out = list(filters);
        assert_eq!(
            out.lines().any(|l| l.starts_with("txn-a ")),
            listed,
            "{filters:?}: {out}"
        );
    }
    let json = list(&["--json"]);
    assert!(
        json.contains(&format!(
            "{{\"transactional_id\":\"txn-a\",\"coordinator\":{},\"producer_id\":{pid},\
             \"state\":\"Ongoing\"}}",
            row[1]
        )),
        "{json}"
    );
    row[1].clone()
}

/// `describe` of transaction `a`, and of an id nobody uses.
fn check_describe(
    run: &dyn Fn(&[&str]) -> Output,
    a: &OpenTransaction,
    topic: &str,
    coordinator: &str,
) {
    let describe = ok(run(&[
        "transactions",
        "describe",
        "--transactional-id",
        "txn-a",
    ]));
    let lines: Vec<&str> = describe.lines().collect();
    assert_eq!(lines.len(), 2, "{describe}");
    assert!(
        lines[0].starts_with("CoordinatorId  TransactionalId  "),
        "{describe}"
    );
    let row: Vec<String> = lines[1].split_whitespace().map(str::to_string).collect();
    assert_eq!(row.len(), 9, "{describe}");
    assert_eq!(
        (row[0].as_str(), row[1].as_str()),
        (coordinator, "txn-a"),
        "{describe}"
    );
    assert_eq!(
        &row[2..6],
        &[
            a.producer_id.to_string(),
            a.producer_epoch.to_string(),
            "Ongoing".to_string(),
            TRANSACTION_TIMEOUT_MS.to_string()
        ],
        "{describe}"
    );
    let start_ms: i64 = row[6].parse().expect("a start time");
    let duration_ms: i64 = row[7].parse().expect("a duration");
    assert!(
        (now_ms() - start_ms - duration_ms).abs() < 60_000 && duration_ms >= 0,
        "{describe}"
    );
    assert_eq!(row[8], format!("{topic}-0"), "{describe}");
    let json = ok(run(&[
        "transactions",
        "describe",
        "--transactional-id",
        "txn-a",
        "--json",
    ]));
    let expected = format!(
        "{{\"coordinator_id\":{coordinator},\"transactional_id\":\"txn-a\",\"producer_id\":{},\
         \"producer_epoch\":{},\"state\":\"Ongoing\",\"transaction_timeout_ms\":{},\
         \"transaction_start_time_ms\":{start_ms},",
        a.producer_id, a.producer_epoch, TRANSACTION_TIMEOUT_MS
    );
    assert!(json.starts_with(&expected), "{json}");
    let partitions = format!("\"topic_partitions\":[{{\"topic\":\"{topic}\",\"partition\":0}}]}}");
    assert!(json.trim_end().ends_with(&partitions), "{json}");
    fails_with(
        run(&["transactions", "describe", "--transactional-id", "txn-none"]),
        "describe transactional id txn-none: TRANSACTIONAL_ID_NOT_FOUND",
    );
}

/// A transaction left open on one partition.
#[derive(Debug, Clone, Copy)]
pub struct OpenTransaction {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Offset of its first record.
    pub start_offset: i64,
}

/// Begins transaction `transactional_id`, writes `values` to `topic`/`partition` in it and
/// leaves it open.
pub fn open_transaction(
    bootstrap: &str,
    transactional_id: &str,
    topic: &str,
    partition: i32,
    values: &[&str],
) -> OpenTransaction {
    let id = TransactionalId(StrBytes::from_string(transactional_id.to_string()));
    let mut coordinator = Conn::connect(&find_coordinator(bootstrap, transactional_id));
    let (producer_id, producer_epoch) = init_producer(&mut coordinator, &id);

    let mut t = AddPartitionsToTxnTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![partition];
    let mut add = AddPartitionsToTxnRequest::default();
    add.v3_and_below_transactional_id = id.clone();
    add.v3_and_below_producer_id = ProducerId(producer_id);
    add.v3_and_below_producer_epoch = producer_epoch;
    add.v3_and_below_topics = vec![t];
    retry("AddPartitionsToTxn", || {
        let r = coordinator.call(&add, 3);
        let codes: Vec<i16> = r
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            })
            .collect();
        assert_eq!(codes.len(), 1, "AddPartitionsToTxn answered {codes:?}");
        (codes[0], ())
    });

    let batch = BatchBuilder {
        producer_id,
        producer_epoch,
        base_sequence: 0,
        transactional: true,
        ..BatchBuilder::default()
    };
    let records: Vec<NewRecord> = values.iter().map(|v| record(v)).collect();
    let start_offset = produce(bootstrap, Some(id), topic, partition, batch.build(&records));
    OpenTransaction {
        producer_id,
        producer_epoch,
        start_offset,
    }
}

/// InitProducerId for a new producer of `id` on its coordinator: its id and epoch.
fn init_producer(coordinator: &mut Conn, id: &TransactionalId) -> (i64, i16) {
    let mut init = InitProducerIdRequest::default();
    init.transactional_id = Some(id.clone());
    init.transaction_timeout_ms = TRANSACTION_TIMEOUT_MS;
    init.producer_id = ProducerId(-1);
    init.producer_epoch = -1;
    let init = retry("InitProducerId", || {
        let r = coordinator.call(&init, 3);
        (r.error_code, r)
    });
    (init.producer_id.0, init.producer_epoch)
}

/// Transactions V2 (KIP-890 part 2) on the raw protocol, on a new single-partition topic: the
/// broker finalizes `transaction.version` 2; EndTxn v5 with nothing added refuses a commit and
/// answers an abort with the epoch bumped; Produce v12 and TxnOffsetCommit v5 add their
/// partitions without AddPartitionsToTxn/AddOffsetsToTxn (v4 without it is
/// TRANSACTION_ABORTABLE); the commit bumps the epoch again, its retry gets the same answer,
/// and a delayed Produce of the ended transaction is fenced.
pub fn check_transactions_v2(bootstrap: &str, topic: &str) {
    // Kafka refuses an ApiVersions v3 without a valid client software name and version.
    let mut request = ApiVersionsRequest::default();
    request.client_software_name = StrBytes::from_static_str("millrace-tools-test");
    request.client_software_version = StrBytes::from_static_str("1");
    let versions = Conn::connect(bootstrap).call(&request, 3);
    assert_eq!(versions.error_code, NONE);
    let level = versions
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .map(|f| f.max_version_level);
    assert_eq!(
        level,
        Some(2),
        "finalized features: {:?}",
        versions.finalized_features
    );
    assert!(versions.finalized_features_epoch >= 0);
    let max = |key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map_or(-1, |k| k.max_version)
    };
    assert!(max(ApiKey::Produce) >= 12);
    assert!(max(ApiKey::EndTxn) >= 5);
    assert!(max(ApiKey::TxnOffsetCommit) >= 5);

    let created = Command::new(TOOLS)
        .args(["topics", "create", topic, "--partitions", "1"])
        .args(["--bootstrap-server", bootstrap])
        .output()
        .unwrap();
    ok(created);
    let txn_id = format!("{topic}-v2");
    let id = TransactionalId(StrBytes::from_string(txn_id.clone()));
    let mut coordinator = Conn::connect(&find_coordinator(bootstrap, &txn_id));
    let (pid, epoch) = init_producer(&mut coordinator, &id);
    let mut end = |ids: (i64, i16), commit: bool| {
        let mut request = EndTxnRequest::default();
        request.transactional_id = id.clone();
        request.producer_id = ProducerId(ids.0);
        request.producer_epoch = ids.1;
        request.committed = commit;
        let r = coordinator.call(&request, 5);
        (r.error_code, (r.producer_id.0, r.producer_epoch))
    };

    // Nothing added: a commit is refused, an abort bumps the epoch (a V2 producer that sent
    // records whose partitions were never added aborts to go on).
    assert_eq!(end((pid, epoch), true).0, INVALID_TXN_STATE);
    let first = retry("EndTxn abort", || end((pid, epoch), false));
    assert_eq!(first, (pid, epoch + 1), "the abort bumps the epoch");

    // Produce v12: the leader adds the partition.
    let batch = |ids: (i64, i16), seq: i32, values: &[&str]| {
        let builder = BatchBuilder {
            producer_id: ids.0,
            producer_epoch: ids.1,
            base_sequence: seq,
            transactional: true,
            ..BatchBuilder::default()
        };
        builder.build(&values.iter().map(|v| record(v)).collect::<Vec<_>>())
    };
    let produced = produce_at(
        bootstrap,
        Some(id.clone()),
        topic,
        0,
        batch(first, 0, &["v0", "v1"]),
        12,
    );
    assert_eq!(produced, 0);

    // TxnOffsetCommit: v4 needs AddOffsetsToTxn first (v4 knows TRANSACTION_ABORTABLE), v5
    // adds the group's offsets partition itself.
    let group = format!("{topic}-group");
    let commit_offsets = |version: i16| {
        let mut p = TxnOffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = 2;
        p.committed_leader_epoch = -1;
        let mut t = TxnOffsetCommitRequestTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partitions = vec![p];
        let mut request = TxnOffsetCommitRequest::default();
        request.transactional_id = id.clone();
        request.group_id = GroupId(StrBytes::from_string(group.clone()));
        request.producer_id = ProducerId(first.0);
        request.producer_epoch = first.1;
        request.generation_id = -1;
        request.topics = vec![t];
        let group_coordinator = find_group_coordinator(bootstrap, &group);
        retry(&format!("TxnOffsetCommit v{version}"), || {
            let r = Conn::connect(&group_coordinator).call(&request, version);
            let code = r.topics[0].partitions[0].error_code;
            // The refusal is the answer this step wants: end the retries with it.
            (
                if code == TRANSACTION_ABORTABLE {
                    NONE
                } else {
                    code
                },
                code,
            )
        })
    };
    assert_eq!(commit_offsets(4), TRANSACTION_ABORTABLE);
    assert_eq!(commit_offsets(5), NONE);

    // The commit bumps the epoch again; its retry (the answer lost) is answered the same.
    let second = retry("EndTxn commit", || end(first, true));
    assert_eq!(second, (pid, epoch + 2));
    assert_eq!(retry("EndTxn commit again", || end(first, true)), second);

    // A delayed Produce of the committed transaction is fenced, wherever it would land.
    let late = produce_answer(
        bootstrap,
        Some(id.clone()),
        topic,
        0,
        batch(first, 2, &["late"]),
        12,
    );
    assert_eq!(late, INVALID_PRODUCER_EPOCH);

    // The offsets committed with it made the group: an empty group holding them, as a plain
    // commit by a consumer without group management does.
    let deadline = Instant::now() + RETRY_FOR;
    let listed = format!(r#"{{"group":"{group}","protocol_type":"","state":"Empty"}}"#);
    loop {
        let list = Command::new(TOOLS)
            .args(["groups", "list", "--json", "--bootstrap-server", bootstrap])
            .output()
            .unwrap();
        let list = ok(list);
        if list.contains(&listed) {
            break;
        }
        assert!(Instant::now() < deadline, "{group} not listed: {list}");
        std::thread::sleep(RETRY_BACKOFF);
    }

    // Committed whole, nothing left open: two records and the marker.
    let view = committed_view(bootstrap, topic, 0);
    assert_eq!(view.markers.len(), 1, "{view:?}");
    assert!(view.markers[0].1.commit, "{view:?}");
    assert!(view.aborted.is_empty(), "{view:?}");
    assert_eq!(high_watermark(bootstrap, topic, 0), 3);
    assert_eq!(last_stable_offset(bootstrap, topic, 0), 3);
}

/// The last stable offset: where a read_committed consumer stops.
pub fn last_stable_offset(bootstrap: &str, topic: &str, partition: i32) -> i64 {
    latest_offset(bootstrap, topic, partition, READ_COMMITTED)
}

/// The high watermark: where a read_uncommitted consumer stops.
pub fn high_watermark(bootstrap: &str, topic: &str, partition: i32) -> i64 {
    latest_offset(bootstrap, topic, partition, READ_UNCOMMITTED)
}

fn latest_offset(bootstrap: &str, topic: &str, partition: i32, isolation_level: i8) -> i64 {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.current_leader_epoch = -1;
    p.timestamp = LATEST_TIMESTAMP;
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![p];
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.isolation_level = isolation_level;
    request.topics = vec![t];
    let response = Conn::connect(bootstrap).call(&request, 5);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, NONE, "ListOffsets {topic}-{partition}");
    p.offset
}

/// What a read_committed consumer is told about a partition.
#[derive(Debug, PartialEq)]
pub struct CommittedView {
    /// The aborted transactions: (producer id, first offset), sorted.
    pub aborted: Vec<(i64, i64)>,
    /// The transaction markers: (offset, marker).
    pub markers: Vec<(i64, TxnMarker)>,
}

/// A read_committed Fetch of the partition from offset 0.
pub fn committed_view(bootstrap: &str, topic: &str, partition: i32) -> CommittedView {
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.current_leader_epoch = -1;
    p.fetch_offset = 0;
    p.log_start_offset = -1;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![p];
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = 0;
    request.min_bytes = 1;
    request.max_bytes = 1 << 20;
    request.isolation_level = READ_COMMITTED;
    request.session_epoch = -1;
    request.topics = vec![t];
    let response = Conn::connect(bootstrap).call(&request, 11);
    assert_eq!(response.error_code, NONE, "Fetch");
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, NONE, "Fetch {topic}-{partition}");
    let mut aborted: Vec<(i64, i64)> = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    aborted.sort_unstable();
    let mut markers = Vec::new();
    for step in BatchIter::new(p.records.as_deref().unwrap_or_default()) {
        let BatchStep::Batch { header, bytes, .. } = step else {
            panic!("Fetch {topic}-{partition}: a torn batch: {step:?}");
        };
        if let Some(marker) = txn_marker(bytes).unwrap() {
            markers.push((header.base_offset, marker));
        }
    }
    CommittedView { aborted, markers }
}

/// One connection, one request in flight.
pub struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    pub fn connect(address: &str) -> Conn {
        let stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Conn {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends `request` at `version` and decodes the answer.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let key = ApiKey::try_from(R::KEY).unwrap();
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("millrace-tools-test"));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        request.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).unwrap();
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix).unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
        self.stream.read_exact(&mut frame).unwrap();
        let mut frame = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .unwrap_or_else(|e| panic!("{key:?} v{version} response header: {e}"));
        assert_eq!(header.correlation_id, self.correlation_id, "{key:?}");
        R::Response::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version} response: {e}"))
    }
}

/// The coordinator of a group, HOST:PORT.
fn find_group_coordinator(bootstrap: &str, group: &str) -> String {
    coordinator_of(bootstrap, group, 0)
}

/// The coordinator of a transactional id, HOST:PORT.
fn find_coordinator(bootstrap: &str, transactional_id: &str) -> String {
    coordinator_of(bootstrap, transactional_id, 1)
}

/// FindCoordinator v3 for `key` of `key_type` (0 group, 1 transactional id), retried while
/// the coordinator is not ready.
fn coordinator_of(bootstrap: &str, key: &str, key_type: i8) -> String {
    let mut conn = Conn::connect(bootstrap);
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(key.to_string());
    request.key_type = key_type;
    let r = retry("FindCoordinator", || {
        let r = conn.call(&request, 3);
        (r.error_code, r)
    });
    format!("{}:{}", r.host.as_str(), r.port)
}

/// Produce at acks=all; returns the batch's base offset.
fn produce(
    bootstrap: &str,
    transactional_id: Option<TransactionalId>,
    topic: &str,
    partition: i32,
    batch: Vec<u8>,
) -> i64 {
    produce_at(bootstrap, transactional_id, topic, partition, batch, 9)
}

/// One Produce at `version` and acks=all, not retried: the partition's error code.
fn produce_answer(
    bootstrap: &str,
    transactional_id: Option<TransactionalId>,
    topic: &str,
    partition: i32,
    batch: Vec<u8>,
    version: i16,
) -> i16 {
    let request = produce_request(transactional_id, topic, partition, batch);
    let response = Conn::connect(bootstrap).call(&request, version);
    response.responses[0].partition_responses[0].error_code
}

fn produce_request(
    transactional_id: Option<TransactionalId>,
    topic: &str,
    partition: i32,
    batch: Vec<u8>,
) -> ProduceRequest {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(Bytes::from(batch));
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partition_data = vec![p];
    let mut request = ProduceRequest::default();
    request.transactional_id = transactional_id;
    request.acks = -1;
    request.timeout_ms = 30_000;
    request.topic_data = vec![t];
    request
}

/// Produce at `version` and acks=all, retried while the answer means "not yet"; returns the
/// batch's base offset.
fn produce_at(
    bootstrap: &str,
    transactional_id: Option<TransactionalId>,
    topic: &str,
    partition: i32,
    batch: Vec<u8>,
    version: i16,
) -> i64 {
    let request = produce_request(transactional_id, topic, partition, batch);
    let mut conn = Conn::connect(bootstrap);
    // Kafka answers NOT_LEADER_OR_FOLLOWER for a moment after CreateTopics returned, until the
    // new partition's leadership reaches the broker; nothing was written then, so the same
    // batch (same sequence) may go again.
    let answer = retry(&format!("Produce to {topic}-{partition}"), || {
        let response = conn.call(&request, version);
        let p = response.responses[0].partition_responses[0].clone();
        (p.error_code, p)
    });
    answer.base_offset
}

/// Calls `f` until its error code is 0, retrying the codes that mean "not yet".
fn retry<T>(what: &str, mut f: impl FnMut() -> (i16, T)) -> T {
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        let (code, value) = f();
        if code == NONE {
            return value;
        }
        // Kafka answers NOT_COORDINATOR for a moment after creating its transaction log, until
        // the partition is loaded; on one node the coordinator does not move, so asking it
        // again is right.
        let not_yet = matches!(
            code,
            COORDINATOR_LOAD_IN_PROGRESS
                | COORDINATOR_NOT_AVAILABLE
                | NOT_COORDINATOR
                | CONCURRENT_TRANSACTIONS
                | NOT_LEADER_OR_FOLLOWER
                | LEADER_NOT_AVAILABLE
                | UNKNOWN_TOPIC_OR_PARTITION
                // A transactional batch whose partition could not be verified or added yet
                // (the coordinator busy completing the previous transaction), as Kafka
                // answers it: nothing was written.
                | NOT_ENOUGH_REPLICAS
        );
        assert!(
            not_yet && Instant::now() < deadline,
            "{what} failed with error code {code}"
        );
        std::thread::sleep(RETRY_BACKOFF);
    }
}

fn record(value: &str) -> NewRecord {
    NewRecord {
        timestamp: now_ms(),
        value: Some(value.as_bytes().to_vec()),
        ..NewRecord::default()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The cells of the table row whose first cell is `first`.
fn row_of(table: &str, first: &str) -> Vec<String> {
    let mut rows = table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|cells| cells.first().map(String::as_str) == Some(first));
    let row = rows
        .next()
        .unwrap_or_else(|| panic!("no row {first} in\n{table}"));
    assert!(rows.next().is_none(), "two rows {first} in\n{table}");
    row
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn fails_with(out: Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "{stderr}");
}
