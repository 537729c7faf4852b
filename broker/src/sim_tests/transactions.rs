//! Transactions in the deterministic simulation: transactional producers (InitProducerId,
//! AddPartitionsToTxn, transactional Produce, EndTxn with commit or abort, through the real
//! handlers, the coordinator and the markers) run until the process dies at a seeded moment
//! and the disk keeps only what was synced. After each restart every producer initializes
//! again (which aborts what it left open) and the log is read back with its markers. Every
//! transaction must have one fate for all its records: committed whole when its EndTxn commit
//! was acknowledged, aborted whole when it was aborted or never asked to commit, either when the
//! commit was in flight at the crash. And no transaction stays open: the last stable offset of
//! every partition reaches its high watermark.
//!
//! Each producer speaks, per life, Transactions V1 (AddPartitionsToTxn, EndTxn v3, one epoch)
//! or V2 (partitions added by Produce v12 at the leader, EndTxn v5 bumping the epoch every
//! transaction, retried EndTxns recognised by their old epoch).
//!
//! `MILLRACE_SIM_SEEDS=N` runs N seeds (default 100, shared with the other seeded simulation);
//! `MILLRACE_SIM_SEED=S` replays one.

use super::*;
use crate::errors::code;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProducerId, TransactionalId,
};
use millrace_wire::records::txn_marker;
use std::collections::{BTreeSet, HashMap};

const TXN_PRODUCERS: usize = 2;
/// Codes after which a transactional request is simply sent again.
const RETRIABLE: &[i16] = &[
    code::CONCURRENT_TRANSACTIONS,
    code::COORDINATOR_LOAD_IN_PROGRESS,
    code::COORDINATOR_NOT_AVAILABLE,
    code::NOT_COORDINATOR,
    code::NOT_ENOUGH_REPLICAS,
];

/// What happened to one transaction, from its producer's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// No EndTxn commit was sent (the producer aborted it, or died first).
    NotCommitted,
    /// EndTxn commit sent, no answer (the process died).
    CommitInFlight,
    /// EndTxn commit acknowledged.
    Committed,
}

#[derive(Default)]
struct History {
    /// Transaction (its value prefix) → what its producer asked.
    txns: BTreeMap<String, Asked>,
    /// Transaction → the (partition, offset) of its acknowledged records.
    written: BTreeMap<String, Vec<(i32, i64)>>,
    /// Requests the producers sent, over all lives.
    sent: usize,
    /// Commits acknowledged to V2 producers (whose epoch moved with each).
    v2_commits: usize,
    /// When the current life ends.
    crash: Option<Rc<TxnCrash>>,
}

/// The process dies `turns` scheduling turns after request number `after` is sent, so the
/// crash lands inside requests (between a write and its fsync, an EndTxn and its markers),
/// not only while every producer sleeps.
struct TxnCrash {
    sim: Rc<Sim>,
    after: usize,
    turns: u32,
}

/// Counts a request about to be sent; arms the crash on the planned one.
fn sending(history: &Rc<RefCell<History>>) {
    let plan = {
        let mut h = history.borrow_mut();
        h.sent += 1;
        match &h.crash {
            Some(plan) if plan.after == h.sent => plan.clone(),
            _ => return,
        }
    };
    millrace_shard::spawn_detached(async move {
        for _ in 0..plan.turns {
            millrace_shard::time::yield_if_needed().await;
        }
        if std::env::var("MILLRACE_SIM_TRACE").is_ok() {
            eprintln!("crash after request {}", plan.after);
        }
        plan.sim.crash();
    });
}

#[test]
fn every_transaction_has_one_fate_through_crashes() {
    let committed = over_seeds(run_txn_seed);
    assert!(committed > 0, "no transaction committed in any seed");
}

fn txn_config() -> Arc<Config> {
    Arc::new(Config {
        cores: SHARDS,
        data_dir: PathBuf::from("/sim"),
        offsets_topic_partitions: 2,
        txn_topic_partitions: 2,
        log_cleaner_enable: false,
        ..Config::default()
    })
}

/// [`boot_with`] plus the transaction coordinators, as `server.rs` starts them.
async fn boot_txn(disk: &SimDisk) -> Vec<Rc<Shard>> {
    let shards = boot_with(disk, txn_config()).await;
    for shard in &shards {
        crate::txn::load(shard)
            .await
            .expect("transaction state replays after a crash");
        millrace_shard::spawn_detached(crate::txn::watch(shard.clone()));
    }
    shards
}

/// Runs one seed through [`LIVES`] crashes; returns how many commits were acknowledged.
fn run_txn_seed(seed: u64) -> usize {
    let disk = SimDisk::new(4096);
    disk.set_yield(true);
    let history = Rc::new(RefCell::new(History::default()));
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x7458_6e5f);
    for life in 0..LIVES {
        let sim = Rc::new(Sim::new(seed.wrapping_mul(37).wrapping_add(life)));
        let shards = sim.block_on(boot_txn(&disk));
        sim.block_on(settle_and_check(&shards, &disk, &history.borrow()));
        let plan = TxnCrash {
            sim: sim.clone(),
            after: history.borrow().sent + rng.random_range(1..1_500),
            turns: rng.random_range(0..80),
        };
        history.borrow_mut().crash = Some(Rc::new(plan));
        for p in 0..TXN_PRODUCERS {
            let client = clients_rng(&mut rng);
            let producer = txn_producer(shards.clone(), history.clone(), p, life, client);
            sim.spawn(producer).detach();
        }
        sim.run_for(Duration::from_secs(3));
        history.borrow_mut().crash = None;
        drop(shards);
        sim.crash();
        disk.crash(rng.random());
    }
    let sim = Sim::new(seed.wrapping_mul(37).wrapping_add(LIVES));
    let shards = sim.block_on(boot_txn(&disk));
    sim.block_on(settle_and_check(&shards, &disk, &history.borrow()));
    drop(shards);
    sim.crash();
    let h = history.borrow();
    let count = |asked: Asked| h.txns.values().filter(|a| **a == asked).count();
    if std::env::var("MILLRACE_SIM_TRACE").is_ok() {
        let records: usize = h.written.values().map(Vec::len).sum();
        eprintln!(
            "seed {seed}: {} committed ({} by V2 producers), {} not committed, {} commits in \
             flight at a crash, {records} records acknowledged",
            count(Asked::Committed),
            h.v2_commits,
            count(Asked::NotCommitted),
            count(Asked::CommitInFlight)
        );
    }
    count(Asked::Committed)
}

fn txn_id(producer: usize) -> String {
    format!("sim-tx-{producer}")
}

/// InitProducerId until it is answered without a retriable error.
async fn init(shard: &Rc<Shard>, producer: usize) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(txn_id(
            producer,
        )))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    loop {
        let resp: InitProducerIdResponse = call(shard, ApiKey::InitProducerId, 3, &req).await;
        if resp.error_code == code::NONE {
            return (resp.producer_id.0, resp.producer_epoch);
        }
        assert!(
            RETRIABLE.contains(&resp.error_code),
            "InitProducerId answered {}",
            resp.error_code
        );
        millrace_shard::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn add_partitions(
    shard: &Rc<Shard>,
    producer: usize,
    (pid, epoch): (i64, i16),
    partitions: &[i32],
) -> i16 {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(txn_id(
            producer,
        ))))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(partitions.to_vec())]);
    loop {
        let resp: AddPartitionsToTxnResponse =
            call(shard, ApiKey::AddPartitionsToTxn, 3, &req).await;
        let error = resp
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| &t.results_by_partition)
            .map(|p| p.partition_error_code)
            .find(|&e| e != code::NONE)
            .unwrap_or(code::NONE);
        if !RETRIABLE.contains(&error) {
            return error;
        }
        millrace_shard::time::sleep(Duration::from_millis(5)).await;
    }
}

/// EndTxn until answered without a retriable error: the code, and under V2 the producer id
/// and epoch to go on with.
async fn end_txn(
    shard: &Rc<Shard>,
    producer: usize,
    (pid, epoch): (i64, i16),
    commit: bool,
    v2: bool,
) -> (i16, (i64, i16)) {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id(producer))))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let version = if v2 { 5 } else { 3 };
    loop {
        let resp: EndTxnResponse = call(shard, ApiKey::EndTxn, version, &req).await;
        if !RETRIABLE.contains(&resp.error_code) {
            let next = if v2 {
                (resp.producer_id.0, resp.producer_epoch)
            } else {
                (pid, epoch)
            };
            return (resp.error_code, next);
        }
        millrace_shard::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One transactional producer for one life: transactions of one to three batches over one or
/// two partitions, committed or (30%) aborted, until the process dies; V1 or V2 (half the
/// lives each).
async fn txn_producer(
    shards: Vec<Rc<Shard>>,
    history: Rc<RefCell<History>>,
    producer: usize,
    life: u64,
    mut rng: SmallRng,
) {
    let pick = |rng: &mut SmallRng| shards[rng.random_range(0..shards.len())].clone();
    let v2 = rng.random_bool(0.5);
    sending(&history);
    let mut ids = init(&pick(&mut rng), producer).await;
    let mut sequences: HashMap<i32, i32> = HashMap::new();
    for t in 0u32.. {
        let name = format!("p{producer}-l{life}-t{t}");
        history
            .borrow_mut()
            .txns
            .insert(name.clone(), Asked::NotCommitted);
        let first = rng.random_range(0..PARTITIONS);
        let partitions: Vec<i32> = if rng.random_bool(0.5) {
            vec![first]
        } else {
            vec![first, (first + 1) % PARTITIONS]
        };
        let mut ok = v2 || {
            sending(&history);
            add_partitions(&pick(&mut rng), producer, ids, &partitions).await == code::NONE
        };
        let batches = if ok { rng.random_range(1..4) } else { 0 };
        for b in 0..batches {
            let partition = partitions[b % partitions.len()];
            let seq = sequences.entry(partition).or_insert(0);
            let values: Vec<Vec<u8>> = (0..rng.random_range(1..3))
                .map(|i| format!("{name}-b{b}-r{i}").into_bytes())
                .collect();
            sending(&history);
            let version = if v2 { 12 } else { 9 };
            let shard = pick(&mut rng);
            let error = produce_txn(&shard, producer, ids, partition, *seq, &values, version).await;
            match error {
                Ok(base) => {
                    *seq += values.len() as i32;
                    let mut h = history.borrow_mut();
                    let written = h.written.entry(name.clone()).or_default();
                    written.extend((0..values.len() as i64).map(|i| (partition, base + i)));
                }
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        let commit = ok && rng.random_bool(0.7);
        if commit {
            history
                .borrow_mut()
                .txns
                .insert(name.clone(), Asked::CommitInFlight);
        }
        sending(&history);
        let (ended, next) = end_txn(&pick(&mut rng), producer, ids, commit, v2).await;
        if ended == code::NONE && next != ids {
            // V2: a new epoch (or producer id) per transaction, its sequences from 0.
            assert!(v2, "EndTxn v3 changed the producer: {ids:?} -> {next:?}");
            assert!(
                next.0 != ids.0 || next.1 == ids.1 + 1,
                "EndTxn v5 moved {ids:?} to {next:?}"
            );
            ids = next;
            sequences.clear();
        }
        match (ended, commit) {
            (code::NONE, true) => {
                let mut h = history.borrow_mut();
                h.txns.insert(name, Asked::Committed);
                h.v2_commits += usize::from(v2);
            }
            (code::NONE, false) => {}
            (_, _) => {
                // Not committed as far as this producer knows: start over, which aborts it
                // unless the commit went through before the error.
                if commit {
                    history
                        .borrow_mut()
                        .txns
                        .insert(name, Asked::CommitInFlight);
                }
                sending(&history);
                ids = init(&pick(&mut rng), producer).await;
                sequences.clear();
            }
        }
        if rng.random_bool(0.3) {
            millrace_shard::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
        }
    }
}

/// A transactional Produce of `values` to `partition` at `version` (12: the leader adds the
/// partition to the transaction): Ok(base offset) or Err(code).
async fn produce_txn(
    shard: &Rc<Shard>,
    producer: usize,
    (pid, epoch): (i64, i16),
    partition: i32,
    sequence: i32,
    values: &[Vec<u8>],
    version: i16,
) -> Result<i64, i16> {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            timestamp: millrace_shard::time::now_ms(),
            key: None,
            value: Some(v.clone()),
            headers: Vec::new(),
        })
        .collect();
    let batch = BatchBuilder {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: sequence,
        transactional: true,
        ..BatchBuilder::default()
    }
    .build(&records);
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(txn_id(
            producer,
        )))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch)))])]);
    let resp: ProduceResponse = call(shard, ApiKey::Produce, version, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    if p.error_code == code::NONE {
        Ok(p.base_offset)
    } else {
        Err(p.error_code)
    }
}

/// After a (re)start: every producer initializes again (aborting what it left open), the
/// markers are given time to land, then the log must agree with [`History`].
async fn settle_and_check(shards: &[Rc<Shard>], disk: &SimDisk, history: &History) {
    for p in 0..TXN_PRODUCERS {
        if history
            .txns
            .keys()
            .any(|t| t.starts_with(&format!("p{p}-")))
        {
            init(&shards[p % shards.len()], p).await;
        }
    }
    millrace_shard::time::sleep(Duration::from_millis(500)).await;
    // The fate of every transactional record in the log, from its producer's markers.
    let mut fate: BTreeMap<(i32, i64), bool> = BTreeMap::new();
    let mut names: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let (batches, hw) = read_batches(&shards[0], disk, partition).await;
        let mut open: HashMap<i64, Vec<i64>> = HashMap::new();
        for b in batches {
            match b {
                Read::Marker {
                    producer_id,
                    commit,
                    ..
                } => {
                    for offset in open.remove(&producer_id).unwrap_or_default() {
                        fate.insert((partition, offset), commit);
                    }
                }
                Read::Records {
                    producer_id,
                    transactional,
                    records,
                } => {
                    for (offset, value) in records {
                        let name = String::from_utf8_lossy(&value).to_string();
                        let txn = name.split("-b").next().unwrap_or_default().to_string();
                        names.insert((partition, offset), txn);
                        if transactional {
                            open.entry(producer_id).or_default().push(offset);
                        }
                    }
                }
            }
        }
        assert!(
            open.values().all(|o| o.is_empty()),
            "{TOPIC}-{partition}: transactions still open after every producer restarted: \
             {open:?}"
        );
        let lso = committed_end(&shards[1], partition).await;
        assert_eq!(
            lso, hw,
            "{TOPIC}-{partition}: last stable offset behind the high watermark"
        );
    }
    let mut fates_by_txn: BTreeMap<&str, BTreeSet<bool>> = BTreeMap::new();
    for (at, txn) in &names {
        let f = fate
            .get(at)
            .copied()
            .expect("every transactional record has a marker");
        fates_by_txn.entry(txn.as_str()).or_default().insert(f);
    }
    for (txn, fates) in &fates_by_txn {
        assert_eq!(
            fates.len(),
            1,
            "transaction {txn}: part committed, part aborted"
        );
        let committed = fates.contains(&true);
        match history.txns.get(*txn) {
            Some(Asked::Committed) => assert!(committed, "transaction {txn}: committed, then lost"),
            Some(Asked::NotCommitted) => {
                assert!(
                    !committed,
                    "transaction {txn}: never asked to commit, yet committed"
                )
            }
            Some(Asked::CommitInFlight) | None => {}
        }
    }
    for (txn, written) in &history.written {
        if history.txns.get(txn) == Some(&Asked::Committed) {
            for at in written {
                assert_eq!(
                    fate.get(at),
                    Some(&true),
                    "transaction {txn}: acknowledged record at {at:?} not committed"
                );
            }
        }
    }
}

enum Read {
    Marker {
        producer_id: i64,
        epoch: i16,
        commit: bool,
    },
    Records {
        producer_id: i64,
        transactional: bool,
        records: Vec<(i64, Vec<u8>)>,
    },
}

/// Every batch of a partition below its high watermark (read_uncommitted), and the high
/// watermark.
async fn read_batches(shard: &Rc<Shard>, disk: &SimDisk, partition: i32) -> (Vec<Read>, i64) {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let req = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let resp: FetchResponse = call_fetch(shard, disk, &req).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch of {TOPIC}-{partition} at {offset}");
        let bytes = p.records.clone().unwrap_or_default();
        let before = offset;
        for step in BatchIter::new(&bytes) {
            let BatchStep::Batch { header, bytes, .. } = step else {
                break;
            };
            if header.next_offset() <= offset {
                continue;
            }
            offset = header.next_offset();
            if header.is_control() {
                if let Ok(Some(m)) = txn_marker(bytes) {
                    out.push(Read::Marker {
                        producer_id: header.producer_id,
                        epoch: header.producer_epoch,
                        commit: m.commit,
                    });
                }
                continue;
            }
            let records = decode_records(bytes, 1 << 24)
                .expect("stored batches decode")
                .into_iter()
                .map(|r| (r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()))
                .collect();
            out.push(Read::Records {
                producer_id: header.producer_id,
                transactional: header.is_transactional(),
                records,
            });
        }
        if offset >= p.high_watermark || offset == before {
            return (out, p.high_watermark);
        }
    }
}

/// ListOffsets latest under read_committed: the last stable offset.
async fn committed_end(shard: &Rc<Shard>, partition: i32) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_isolation_level(1)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1)])]);
    let resp: ListOffsetsResponse = call(shard, ApiKey::ListOffsets, 4, &req).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets of {TOPIC}-{partition}");
    p.offset
}

/// A producer's batches keep their order on a partition while an earlier one waits: request A
/// carries the first transactional batches for two partitions, each waiting for KIP-890
/// verification over the mesh in turn; request B, sent right after, carries the next batch for
/// the second partition. B must not be appended before A's batch there (its sequence would be
/// out of order, which fails the transaction).
#[test]
fn a_later_batch_does_not_overtake_one_waiting_for_verification() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(5);
    let shards = sim.block_on(boot_txn(&disk));
    sim.block_on(async {
        let topic = "order";
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(topic)))
                .with_num_partitions(8)
                .with_replication_factor(1)]);
        let resp: CreateTopicsResponse = call(&shards[0], ApiKey::CreateTopics, 5, &req).await;
        assert_eq!(resp.topics[0].error_code, code::NONE);
        let image = shards[0].image();
        let (coordinator, _) =
            crate::txn::coordinator_shard(&image, &txn_id(0)).expect("a coordinator");
        let other = (coordinator + 1) % SHARDS;
        // Two partitions whose leader is the shard the coordinator is not on.
        let far: Vec<i32> = (0..8)
            .filter(|p| image.owner(topic, *p) == Some(other))
            .take(2)
            .collect();
        assert_eq!(far.len(), 2, "partitions on shard {other}");
        let ids = init(&shards[0], 0).await;
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(txn_id(0))))
            .with_v3_and_below_producer_id(ProducerId(ids.0))
            .with_v3_and_below_producer_epoch(ids.1)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(far.clone())]);
        let added: AddPartitionsToTxnResponse =
            call(&shards[0], ApiKey::AddPartitionsToTxn, 3, &req).await;
        assert!(added
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| &t.results_by_partition)
            .all(|p| p.partition_error_code == code::NONE));
        let batch = |seq: i32| {
            let record = NewRecord {
                timestamp: 0,
                key: None,
                value: Some(format!("s{seq}").into_bytes()),
                headers: Vec::new(),
            };
            let builder = BatchBuilder {
                producer_id: ids.0,
                producer_epoch: ids.1,
                base_sequence: seq,
                transactional: true,
                ..BatchBuilder::default()
            };
            Bytes::from(builder.build(&[record]))
        };
        let produce = |parts: Vec<(i32, i32)>| {
            let data = parts
                .into_iter()
                .map(|(p, seq)| {
                    PartitionProduceData::default()
                        .with_index(p)
                        .with_records(Some(batch(seq)))
                })
                .collect();
            ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_string(txn_id(0)))))
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str(topic)))
                    .with_partition_data(data)])
        };
        let (a, b) = (
            produce(vec![(far[0], 0), (far[1], 0)]),
            produce(vec![(far[1], 1)]),
        );
        let shard = shards[other].clone();
        let first = millrace_shard::spawn({
            let shard = shard.clone();
            async move {
                let resp: ProduceResponse = call(&shard, ApiKey::Produce, 9, &a).await;
                resp
            }
        });
        let second = millrace_shard::spawn(async move {
            let resp: ProduceResponse = call(&shard, ApiKey::Produce, 9, &b).await;
            resp
        });
        let (a, b) = (first.await, second.await);
        let codes = |r: &ProduceResponse| -> Vec<i16> {
            r.responses[0]
                .partition_responses
                .iter()
                .map(|p| p.error_code)
                .collect()
        };
        assert_eq!(codes(&a), vec![code::NONE, code::NONE], "request A");
        assert_eq!(codes(&b), vec![code::NONE], "request B");
        let second_base = b.responses[0].partition_responses[0].base_offset;
        let first_base = a.responses[0].partition_responses[1].base_offset;
        assert!(first_base < second_base, "A's batch is before B's");
    });
    drop(shards);
    sim.crash();
}

/// Transactions V2 at the end of the epoch range: EndTxn v5 bumps the epoch per transaction
/// (the markers carry the bumped one), moves the producer to a new id once 32766 is used
/// (markers of that last transaction at 32767 under the old id), answers a retry of that
/// EndTxn with the new id, fences a delayed Produce of an ended transaction, and lets a
/// producer abort a transaction in which nothing was added.
#[test]
fn transactions_v2_bump_the_epoch_and_move_to_a_new_id_at_its_end() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(11);
    let shards = sim.block_on(boot_txn(&disk));
    sim.block_on(async {
        let shard = &shards[0];
        let image = shard.image();
        let (coordinator, _) =
            crate::txn::coordinator_shard(&image, &txn_id(0)).expect("a coordinator");
        let (pid, _) = init(shard, 0).await;
        crate::txn::force_epoch(&shards[coordinator], &txn_id(0), i16::MAX - 2).await;
        let mut ids = (pid, i16::MAX - 2);
        let produce = |ids: (i64, i16), seq: i32, value: &'static str| {
            let values = vec![value.as_bytes().to_vec()];
            async move { produce_txn(shard, 0, ids, 0, seq, &values, 12).await }
        };
        let end = |ids: (i64, i16), commit: bool| async move {
            let req = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id(0))))
                .with_producer_id(ProducerId(ids.0))
                .with_producer_epoch(ids.1)
                .with_committed(commit);
            let resp: EndTxnResponse = call(shard, ApiKey::EndTxn, 5, &req).await;
            (resp.error_code, (resp.producer_id.0, resp.producer_epoch))
        };
        let settled_end = |ids: (i64, i16), commit: bool| async move {
            loop {
                let (error, next) = end(ids, commit).await;
                if error != code::CONCURRENT_TRANSACTIONS {
                    return (error, next);
                }
                millrace_shard::time::sleep(Duration::from_millis(5)).await;
            }
        };

        // A: the last ordinary bump.
        assert_eq!(produce(ids, 0, "a").await.map(|_| ()), Ok(()));
        let (error, next) = end(ids, true).await;
        assert_eq!(
            (error, next),
            (code::NONE, (pid, i16::MAX - 1)),
            "EndTxn of A"
        );
        ids = next;

        // B, at 32766: the bump moves to a new producer id.
        assert_eq!(produce(ids, 0, "b0").await.map(|_| ()), Ok(()));
        assert_eq!(produce(ids, 1, "b1").await.map(|_| ()), Ok(()));
        let (error, next) = end(ids, true).await;
        assert_eq!(error, code::NONE, "EndTxn of B");
        assert!(next.0 != pid && next.0 >= 0, "a new producer id: {next:?}");
        assert_eq!(next.1, 0);
        // A retry of B's EndTxn (the answer was lost) gets the same answer once complete; an
        // abort in its place is refused.
        assert_eq!(
            settled_end(ids, true).await,
            (code::NONE, next),
            "retried EndTxn"
        );
        assert_eq!(end(ids, false).await.0, code::INVALID_TXN_STATE);
        let old = ids;
        ids = next;

        // C under the new id, aborted.
        assert_eq!(produce(ids, 0, "c").await.map(|_| ()), Ok(()));
        assert_eq!(
            settled_end(ids, false).await,
            (code::NONE, (ids.0, 1)),
            "abort of C"
        );
        ids = (ids.0, 1);

        // B's second batch again, as if delayed in the network: fenced by B's marker.
        assert_eq!(
            produce(old, 1, "b1").await,
            Err(code::INVALID_PRODUCER_EPOCH),
            "a delayed Produce of B"
        );
        // An abort with nothing added only bumps the epoch; a commit with nothing added is
        // refused.
        assert_eq!(end(ids, true).await.0, code::INVALID_TXN_STATE);
        assert_eq!(end(ids, false).await, (code::NONE, (ids.0, 2)));

        let (batches, hw) = read_batches(shard, &disk, 0).await;
        let markers: Vec<(i64, i16, bool)> = batches
            .iter()
            .filter_map(|b| match b {
                Read::Marker {
                    producer_id,
                    epoch,
                    commit,
                } => Some((*producer_id, *epoch, *commit)),
                Read::Records { .. } => None,
            })
            .collect();
        assert_eq!(
            markers,
            vec![
                (pid, i16::MAX - 1, true),
                (pid, i16::MAX, true),
                (ids.0, 1, false)
            ]
        );
        assert_eq!(committed_end(shard, 0).await, hw, "nothing left open");
    });
    drop(shards);
    sim.crash();
}
