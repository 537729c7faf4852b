//! The broker in the deterministic simulation: crash it anywhere, lose nothing acknowledged.
//!
//! One broker with two shards runs on the shard crate's simulated runtime (one thread, a seeded
//! scheduler, virtual time) over the storage crate's `SimDisk`, which keeps only what was synced
//! when it crashes (plus a random, possibly torn, part of the rest). Clients are tasks that call
//! the real request handlers with encoded Kafka requests: producers (acks=1 and acks=all) and
//! committers of consumer-group offsets. At a seeded moment the process "dies": every task is
//! dropped and the disk crashes. The broker then restarts on what the disk kept, and every
//! produce and offset commit that was acknowledged before the crash must read back exactly.
//! Each seed lives through several crashes.
//!
//! `MILLRACE_SIM_SEEDS=N` runs N seeds (default 100); `MILLRACE_SIM_SEED=S` replays one; a
//! failure names its seed.

use crate::config::Config;
use crate::disk::BrokerDisk;
use crate::handlers::{dispatch, Client, RecordPiece, Response};
use crate::mesh::MeshMsg;
use crate::metadata::MetadataImage;
use crate::shard::Shard;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, GroupId,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use millrace_replication::metadata::MetadataRecord;
use millrace_shard::Sim;
use millrace_storage::sim::SimDisk;
use millrace_wire::fetch::FetchChunk;
use millrace_wire::frame::RequestHeader;
use millrace_wire::records::{decode_records, BatchBuilder, BatchIter, BatchStep, NewRecord};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

mod acls;
mod alter_partition;
mod coordinator_moves;
mod elections;
mod other_brokers;
mod scram;
mod share_state;
mod snapshots;
mod transactions;

const TOPIC: &str = "sim";
const PARTITIONS: i32 = 3;
const GROUP: &str = "sim-group";
const SHARDS: usize = 2;
const LIVES: u64 = 3;
const PRODUCERS: usize = 3;

/// What clients were told was done, to be read back after every crash.
#[derive(Default)]
struct Acknowledged {
    /// Partition → offset → value of every record whose produce was acknowledged.
    records: BTreeMap<i32, BTreeMap<i64, Vec<u8>>>,
    /// Partition → (highest acknowledged commit, highest attempted commit).
    commits: BTreeMap<i32, (i64, i64)>,
    /// Requests answered, to keep a run from passing while doing nothing.
    produced: usize,
    /// Produce requests sent (some die with the broker unanswered).
    attempted: usize,
}

#[test]
fn acknowledged_writes_survive_crashes_at_any_point() {
    let answered = over_seeds(run_seed);
    assert!(answered > 0, "no produce was acknowledged in any seed");
}

/// Runs `run` for each seed (`MILLRACE_SIM_SEED=S` for one, else `MILLRACE_SIM_SEEDS=N`,
/// default 100), naming the failing seed and how to replay it; sums what the runs return.
fn over_seeds(run: fn(u64) -> usize) -> usize {
    let seeds: Vec<u64> = match std::env::var("MILLRACE_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("MILLRACE_SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("MILLRACE_SIM_SEEDS")
                .map_or(100, |s| s.parse().expect("MILLRACE_SIM_SEEDS is a number"));
            (0..n).collect()
        }
    };
    let mut total = 0;
    for seed in seeds {
        match std::panic::catch_unwind(|| run(seed)) {
            Ok(n) => total += n,
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("seed {seed} failed (replay: MILLRACE_SIM_SEED={seed}): {why}");
            }
        }
    }
    total
}

/// A long poll on another shard stops as soon as its caller stops waiting, not at its deadline
/// (the owner would otherwise hold a task per abandoned Fetch for up to `max_wait_ms`).
#[test]
fn an_abandoned_long_poll_is_cancelled_on_its_owner() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(7);
    let shards = sim.block_on(boot(&disk));
    let (caller, owner) = (&shards[0], &shards[1]);
    let (topic, partition) = (0..PARTITIONS)
        .find(|p| caller.image().owner(TOPIC, *p) == Some(owner.id))
        .map(|p| (TOPIC.to_string(), p))
        .expect("a partition on the second shard");
    let wait = crate::handlers::fetch::WaitOnOwner {
        items: vec![crate::handlers::fetch::WaitItem {
            topic,
            partition,
            offset: 0,
            sent_hw: None,
            read_committed: false,
        }],
        max_wait_ms: 30_000,
    };
    let started = sim.now_ms();
    let waited = sim.block_on(millrace_shard::time::timeout(
        Duration::from_millis(10),
        caller.call(owner.id, wait),
    ));
    assert!(waited.is_none(), "the wait ended without data");
    assert_eq!(
        crate::mesh::Node::calls(&**owner).running(),
        1,
        "the owner runs the wait"
    );
    sim.run_for(Duration::from_millis(1));
    assert_eq!(
        crate::mesh::Node::calls(&**owner).running(),
        0,
        "the owner still waits after the caller left (at +{} ms)",
        sim.now_ms() - started
    );
    drop(shards);
    sim.crash();
}

/// A clean shutdown leaves each partition's high watermark in its replication checkpoint, and
/// the periodic task writes one that moved.
#[test]
fn the_high_watermark_is_checkpointed_periodically_and_at_close() {
    let disk = SimDisk::new(4096);
    let sim = Rc::new(Sim::new(11));
    let shards = sim.block_on(boot(&disk));
    let acked = Rc::new(RefCell::new(Acknowledged::default()));
    let plan = Rc::new(CrashPlan {
        sim: sim.clone(),
        after_send: usize::MAX,
        turns: 0,
    });
    let client = SmallRng::seed_from_u64(1);
    let producer = produce_loop(shards.clone(), acked.clone(), plan, 0, 0, client);
    let producing = sim.spawn(producer);
    sim.run_for(Duration::from_millis(200));
    let checkpoint = |partition: i32| {
        let path = PathBuf::from(format!("/sim/{TOPIC}-{partition}"))
            .join(millrace_storage::REPLICATION_CHECKPOINT);
        disk.file_bytes(&path)
    };
    assert!(checkpoint(0).is_none(), "no checkpoint before its interval");
    let interval = config().replica_high_watermark_checkpoint_interval_ms as u64;
    sim.run_for(Duration::from_millis(interval));
    assert!(
        checkpoint(0).is_some(),
        "the periodic task wrote no checkpoint"
    );
    // More records after the periodic checkpoint: only the one at close covers them.
    sim.run_for(Duration::from_millis(100));
    drop(producing);
    for shard in &shards {
        sim.block_on(shard.close_partitions());
    }
    let produced: usize = acked.borrow().records.values().map(|m| m.len()).sum();
    assert!(produced > 0, "nothing was produced");
    for (partition, records) in &acked.borrow().records {
        let bytes = checkpoint(*partition).expect("a checkpoint after close");
        // The framed body ends with `high_watermark i64 | leader_epoch i32` and the CRC.
        let body = &bytes[bytes.len() - 16..bytes.len() - 4];
        let hw = i64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
        let end = records.keys().max().expect("records") + 1;
        assert_eq!(hw, end, "{TOPIC}-{partition}: checkpoint at close");
    }
    drop(shards);
    sim.crash();
}

/// Partitions take leadership from the metadata image: with the leader taken away, produce,
/// fetch, ListOffsets and DeleteRecords get NOT_LEADER_OR_FOLLOWER and Metadata reports
/// LEADER_NOT_AVAILABLE with leader -1; given back under a newer epoch, writes resume under
/// that epoch.
#[test]
fn partitions_follow_the_leadership_the_image_records() {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
    use millrace_replication::metadata::PartitionChangeRecord;
    let disk = SimDisk::new(4096);
    let sim = Sim::new(5);
    let shards = sim.block_on(boot(&disk));
    let change = |leader: i32| {
        let shards = shards.clone();
        async move {
            let topic_id = shards[0].image().topics[TOPIC].topic_id;
            let record = MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id,
                partition_id: 0,
                leader: Some(leader),
                isr: None,
                replicas: None,
                eligible_leader_replicas: None,
                last_known_elr: None,
            });
            publish(&shards, &[record]).await;
        }
    };
    let produce = produce_one;
    let list = |shard: Rc<Shard>| async move {
        let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
        let resp: ListOffsetsResponse = call(&shard, ApiKey::ListOffsets, 7, &req).await;
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.leader_epoch)
    };
    let metadata = |shard: Rc<Shard>| async move {
        let req = kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC)))),
        ]));
        let resp: kafka_protocol::messages::MetadataResponse =
            call(&shard, ApiKey::Metadata, 9, &req).await;
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.leader_id.0, p.leader_epoch)
    };
    sim.block_on(async {
        assert_eq!(produce(shards[1].clone()).await, 0);
        assert_eq!(metadata(shards[1].clone()).await, (0, 0, 0));
        change(-1).await;
        assert_eq!(
            produce(shards[1].clone()).await,
            6,
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(list(shards[0].clone()).await.0, 6);
        assert_eq!(delete_records(&shards[1], TOPIC, &[0]).await, [6]);
        assert_eq!(
            metadata(shards[0].clone()).await,
            (5, -1, 1),
            "LEADER_NOT_AVAILABLE"
        );
        let fetched = call_fetch(&shards[1], &disk, &fetch_partition_0()).await;
        assert_eq!(fetched.responses[0].partitions[0].error_code, 6);
        change(0).await;
        assert_eq!(metadata(shards[1].clone()).await, (0, 0, 2));
        assert_eq!(produce(shards[0].clone()).await, 0);
        assert_eq!(delete_records(&shards[0], TOPIC, &[0]).await, [0]);
        assert_eq!(
            list(shards[1].clone()).await,
            (0, 2),
            "the new epoch stamps the log"
        );
    });
    drop(shards);
    sim.crash();
}

/// Runs one seed through [`LIVES`] crashes; returns how many produces were acknowledged.
fn run_seed(seed: u64) -> usize {
    let disk = SimDisk::new(4096);
    // Every disk operation is a scheduling point, so other tasks run while one is in flight.
    disk.set_yield(true);
    let acked = Rc::new(RefCell::new(Acknowledged::default()));
    let mut rng = SmallRng::seed_from_u64(seed);
    for life in 0..LIVES {
        let sim = Rc::new(Sim::new(seed.wrapping_mul(31).wrapping_add(life)));
        let shards = sim.block_on(boot(&disk));
        sim.block_on(verify(&shards, &disk, &acked.borrow()));
        // The crash comes at a seeded moment inside the traffic: a seeded number of scheduling
        // turns after a seeded produce request was sent, so it lands inside requests (between
        // a write and its fdatasync, between an append and its answer) as well as between them.
        let plan = Rc::new(CrashPlan {
            sim: sim.clone(),
            after_send: acked.borrow().attempted + rng.random_range(0..600),
            turns: rng.random_range(0..80),
        });
        for p in 0..PRODUCERS {
            let client = clients_rng(&mut rng);
            let producer =
                produce_loop(shards.clone(), acked.clone(), plan.clone(), p, life, client);
            sim.spawn(producer).detach();
        }
        for partition in 0..PARTITIONS {
            let client = clients_rng(&mut rng);
            sim.spawn(commit_loop(
                shards.clone(),
                acked.clone(),
                partition,
                client,
            ))
            .detach();
        }
        sim.run_for(Duration::from_secs(2));
        drop(shards);
        sim.crash();
        disk.crash(rng.random());
    }
    let sim = Sim::new(seed.wrapping_mul(31).wrapping_add(LIVES));
    let shards = sim.block_on(boot(&disk));
    sim.block_on(verify(&shards, &disk, &acked.borrow()));
    drop(shards);
    sim.crash();
    let produced = acked.borrow().produced;
    if std::env::var("MILLRACE_SIM_TRACE").is_ok() {
        let a = acked.borrow();
        let records: usize = a.records.values().map(|m| m.len()).sum();
        eprintln!(
            "seed {seed}: {produced} of {} produces acknowledged ({records} records), commits \
             (acknowledged, attempted) {:?}",
            a.attempted, a.commits
        );
    }
    produced
}

fn clients_rng(rng: &mut SmallRng) -> SmallRng {
    SmallRng::seed_from_u64(rng.random())
}

/// Applies `records` to the current image, the placement following them as this broker
/// (node 0) does, and publishes the result to every shard as the controller would.
async fn publish(shards: &[Rc<Shard>], records: &[MetadataRecord]) {
    let current = shards[0].image();
    let mut cluster = (*current.cluster).clone();
    let mut placement = (*current.placement).clone();
    for record in records {
        let offset = cluster.last_applied_offset() + 1;
        cluster.apply(record, offset).expect("the record applies");
        placement.follow(record, SHARDS, config().node_id);
    }
    let image = Arc::new(MetadataImage::new(
        current.version + 1,
        current.cluster_id.clone(),
        Arc::new(cluster),
        Arc::new(placement),
    ));
    for shard in shards {
        let published = shards[0].call(shard.id, crate::shard::ApplyMetadata(image.clone()));
        published.await.unwrap().unwrap();
    }
}

/// Produces one record (acks=all) to partition 0 of the test topic; the partition's error code.
async fn produce_one(shard: Rc<Shard>) -> i16 {
    produce_to(&shard, TOPIC, 0).await
}

/// Produces one record (acks=all) to `topic`-`partition`; the partition's error code.
async fn produce_to(shard: &Rc<Shard>, topic: &str, partition: i32) -> i16 {
    produce_v(shard, topic, partition, 9).await.responses[0].partition_responses[0].error_code
}

/// One acks=all record to `partition` of `topic` with Produce `version`: the response.
async fn produce_v(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    version: i16,
) -> ProduceResponse {
    let batch = BatchBuilder::default().build(&[NewRecord {
        timestamp: 1,
        key: None,
        value: Some(b"v".to_vec()),
        headers: Vec::new(),
    }]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch)))])]);
    call(shard, ApiKey::Produce, version, &req).await
}

/// ListOffsets (latest) for `partitions` of `topic`: their error codes.
async fn list_offsets(shard: &Rc<Shard>, topic: &str, partitions: &[i32]) -> Vec<i16> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
    let partitions = partitions.iter().map(|p| {
        ListOffsetsPartition::default()
            .with_partition_index(*p)
            .with_timestamp(-1)
    });
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(partitions.collect())]);
    let resp: ListOffsetsResponse = call(shard, ApiKey::ListOffsets, 7, &req).await;
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// DeleteRecords up to offset 0 for `partitions` of `topic`: their error codes.
async fn delete_records(shard: &Rc<Shard>, topic: &str, partitions: &[i32]) -> Vec<i16> {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
    let partitions = partitions.iter().map(|p| {
        DeleteRecordsPartition::default()
            .with_partition_index(*p)
            .with_offset(0)
    });
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(partitions.collect())]);
    let resp: DeleteRecordsResponse = call(shard, ApiKey::DeleteRecords, 2, &req).await;
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// A Fetch of partition 0 of the test topic from offset 0 that does not wait.
fn fetch_partition_0() -> FetchRequest {
    fetch_from_start(TOPIC, 0)
}

/// A Fetch of `topic`-`partition` from offset 0 that does not wait.
fn fetch_from_start(topic: &str, partition: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

fn config() -> Arc<Config> {
    Arc::new(Config {
        cores: SHARDS,
        data_dir: PathBuf::from("/sim"),
        offsets_topic_partitions: 2,
        // Its token bucket reads the real clock; compaction has its own model test.
        log_cleaner_enable: false,
        ..Config::default()
    })
}

/// Starts the broker's shards on the simulated runtime as `server.rs` does on the device: the
/// controller's shard loads the metadata log (creating it on a fresh disk) and publishes the
/// image, every shard opens (recovers) its partitions and rebuilds its group coordinators.
/// Then the test topic is created through CreateTopics if the metadata log does not have it.
async fn boot(disk: &SimDisk) -> Vec<Rc<Shard>> {
    boot_with(disk, config()).await
}

/// [`boot`] with another configuration.
async fn boot_with(disk: &SimDisk, config: Arc<Config>) -> Vec<Rc<Shard>> {
    let meshes = millrace_shard::mesh::Mesh::<MeshMsg<Shard>>::local_full(SHARDS, 64);
    let mut shards = Vec::new();
    for mut mesh in meshes {
        let inboxes = mesh.take_inboxes();
        let disk = BrokerDisk::Sim(disk.clone());
        let empty = Arc::new(MetadataImage::default());
        let shard = Shard::new(config.clone(), disk, mesh, empty);
        for (peer, inbox) in inboxes {
            millrace_shard::spawn_detached(crate::mesh::inbox_loop(shard.clone(), peer, inbox));
        }
        shards.push(shard);
    }
    crate::controller::start(&shards[Shard::controller_shard()])
        .await
        .expect("the metadata log loads after a crash");
    for shard in &shards {
        assert!(
            shard.applied_version() > 0,
            "shard {} has no image",
            shard.id
        );
        crate::coordinator::load(shard)
            .await
            .expect("group state replays after a crash");
        millrace_shard::spawn_detached(crate::coordinator::tick_loop(shard.clone()));
        millrace_shard::spawn_detached(crate::coordinator::watch(shard.clone()));
        crate::maintenance::start(shard).expect("maintenance starts");
    }
    create_topic(&shards[0]).await;
    shards
}

/// CreateTopics for the test topic; an existing one (a later life) is fine.
async fn create_topic(shard: &Rc<Shard>) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = call(shard, ApiKey::CreateTopics, 5, &req).await;
    let code = resp.topics[0].error_code;
    assert!(
        code == 0 || code == crate::errors::code::TOPIC_ALREADY_EXISTS,
        "CreateTopics answered {code}"
    );
}

/// When the process dies: `turns` scheduling turns after produce request number `after_send`.
struct CrashPlan {
    sim: Rc<Sim>,
    after_send: usize,
    turns: u32,
}

impl CrashPlan {
    /// Called as a produce request is sent; arms the crash on the planned one.
    fn sent(self: &Rc<Self>, acked: &Rc<RefCell<Acknowledged>>) {
        if acked.borrow().attempted != self.after_send {
            return;
        }
        let (plan, acked) = (self.clone(), acked.clone());
        millrace_shard::spawn_detached(async move {
            for _ in 0..plan.turns {
                millrace_shard::time::yield_if_needed().await;
            }
            if std::env::var("MILLRACE_SIM_TRACE").is_ok() {
                let a = acked.borrow();
                let in_flight = a.attempted - a.produced;
                eprintln!("crash: {in_flight} produce requests in flight");
            }
            plan.sim.crash();
        });
    }
}

async fn produce_loop(
    shards: Vec<Rc<Shard>>,
    acked: Rc<RefCell<Acknowledged>>,
    plan: Rc<CrashPlan>,
    producer: usize,
    life: u64,
    mut rng: SmallRng,
) {
    for n in 0u32.. {
        let partition = rng.random_range(0..PARTITIONS);
        let acks = if rng.random_bool(0.5) { -1 } else { 1 };
        let count = rng.random_range(1..4);
        let values: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("life{life}-p{producer}-n{n}-r{i}").into_bytes())
            .collect();
        let records: Vec<NewRecord> = values
            .iter()
            .map(|v| NewRecord {
                timestamp: millrace_shard::time::now_ms(),
                key: None,
                value: Some(v.clone()),
                headers: Vec::new(),
            })
            .collect();
        let batch = Bytes::from(BatchBuilder::default().build(&records));
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let shard = &shards[rng.random_range(0..shards.len())];
        acked.borrow_mut().attempted += 1;
        plan.sent(&acked);
        let resp: ProduceResponse = call(shard, ApiKey::Produce, 9, &req).await;
        let p = &resp.responses[0].partition_responses[0];
        if p.error_code == 0 {
            let mut acked = acked.borrow_mut();
            acked.produced += 1;
            let log = acked.records.entry(partition).or_default();
            for (i, v) in values.into_iter().enumerate() {
                log.insert(p.base_offset + i as i64, v);
            }
        }
        if rng.random_bool(0.3) {
            millrace_shard::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
        }
    }
}

async fn commit_loop(
    shards: Vec<Rc<Shard>>,
    acked: Rc<RefCell<Acknowledged>>,
    partition: i32,
    mut rng: SmallRng,
) {
    loop {
        let offset = {
            let mut a = acked.borrow_mut();
            let entry = a.commits.entry(partition).or_insert((-1, -1));
            entry.1 += 1;
            entry.1
        };
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)])]);
        let shard = &shards[rng.random_range(0..shards.len())];
        let resp: OffsetCommitResponse = call(shard, ApiKey::OffsetCommit, 8, &req).await;
        if resp.topics[0].partitions[0].error_code == 0 {
            let mut a = acked.borrow_mut();
            let entry = a.commits.get_mut(&partition).expect("inserted above");
            entry.0 = entry.0.max(offset);
        }
        if rng.random_bool(0.5) {
            millrace_shard::time::sleep(Duration::from_millis(rng.random_range(0..4))).await;
        }
    }
}

/// Reads every partition from its start and the group's offsets, and checks them against what
/// was acknowledged.
async fn verify(shards: &[Rc<Shard>], disk: &SimDisk, acked: &Acknowledged) {
    let shard = &shards[0];
    for partition in 0..PARTITIONS {
        let read = read_all(shard, disk, partition).await;
        let Some(expected) = acked.records.get(&partition) else {
            continue;
        };
        for (offset, value) in expected {
            match read.get(offset) {
                Some(v) if v == value => {}
                Some(v) => panic!(
                    "{TOPIC}-{partition} offset {offset}: acknowledged {:?}, read {:?}",
                    String::from_utf8_lossy(value),
                    String::from_utf8_lossy(v)
                ),
                None => panic!(
                    "{TOPIC}-{partition} offset {offset}: acknowledged {:?}, lost",
                    String::from_utf8_lossy(value)
                ),
            }
        }
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_indexes((0..PARTITIONS).collect())]));
    let resp: OffsetFetchResponse = call(shard, ApiKey::OffsetFetch, 7, &req).await;
    assert_eq!(resp.error_code, 0, "OffsetFetch failed");
    let topics = resp.topics;
    for p in topics.iter().flat_map(|t| t.partitions.iter()) {
        let (acknowledged, attempted) = acked
            .commits
            .get(&p.partition_index)
            .copied()
            .unwrap_or((-1, -1));
        assert!(
            p.committed_offset >= acknowledged && p.committed_offset <= attempted,
            "{GROUP} {TOPIC}-{}: committed {} after the crash, acknowledged {acknowledged}, \
             attempted {attempted}",
            p.partition_index,
            p.committed_offset
        );
    }
}

/// Offset → value of every record in a partition below its high watermark.
async fn read_all(shard: &Rc<Shard>, disk: &SimDisk, partition: i32) -> BTreeMap<i64, Vec<u8>> {
    let mut out = BTreeMap::new();
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
        assert_eq!(
            p.error_code, 0,
            "fetch of {TOPIC}-{partition} at {offset} failed"
        );
        let records = p.records.clone().unwrap_or_default();
        let before = offset;
        for step in BatchIter::new(&records) {
            let BatchStep::Batch { header, bytes, .. } = step else {
                break;
            };
            for r in decode_records(bytes, 1 << 24).expect("stored batches decode") {
                if r.offset >= offset {
                    out.insert(r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default());
                }
            }
            offset = offset.max(header.next_offset());
        }
        if offset >= p.high_watermark || offset == before {
            return out;
        }
    }
}

async fn call<Req: Encodable, Resp: Decodable>(
    shard: &Rc<Shard>,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    match request(shard, key, version, req).await {
        Response::Frame(frame) => decode_frame(key, version, frame),
        Response::Fetch(_) | Response::Nothing => panic!("{key:?} answered without a frame"),
        Response::Close(why) => panic!("{key:?} closed the connection: {why}"),
    }
}

/// A Fetch, its file ranges read back from the simulated disk (the connection would send
/// them with sendfile).
async fn call_fetch(shard: &Rc<Shard>, disk: &SimDisk, req: &FetchRequest) -> FetchResponse {
    let version = 12;
    let Response::Fetch(chunks) = request(shard, ApiKey::Fetch, version, req).await else {
        panic!("Fetch answered without chunks");
    };
    let mut frame = BytesMut::new();
    for chunk in chunks {
        match chunk {
            FetchChunk::Encoded(b) | FetchChunk::Records(RecordPiece::Memory(b)) => {
                frame.extend_from_slice(&b)
            }
            FetchChunk::Records(RecordPiece::File {
                path,
                position,
                len,
                ..
            }) => {
                let file = disk.file_bytes(&path).expect("a fetched segment exists");
                let at = position as usize;
                frame.extend_from_slice(&file[at..at + len as usize]);
            }
        }
    }
    decode_frame(ApiKey::Fetch, version, frame.freeze())
}

thread_local! {
    /// The principal the simulated client's requests carry (ACL tests change it).
    static PRINCIPAL: std::cell::RefCell<Rc<str>> =
        std::cell::RefCell::new(Rc::from(crate::auth::ANONYMOUS));
}

/// Makes the following requests on this thread come from `principal`.
fn act_as(principal: &str) {
    PRINCIPAL.with(|p| *p.borrow_mut() = Rc::from(principal));
}

async fn request<Req: Encodable>(
    shard: &Rc<Shard>,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Response {
    request_on(shard, crate::handlers::Listener::Client, key, version, req).await
}

/// A request as it arrives on `listener`.
async fn request_on<Req: Encodable>(
    shard: &Rc<Shard>,
    listener: crate::handlers::Listener,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Response {
    let mut body = BytesMut::new();
    req.encode(&mut body, version).expect("request encodes");
    let header = RequestHeader {
        api_key: key as i16,
        api_version: version,
        correlation_id: 1,
        client_id: Some("sim".into()),
        header_version: key.request_header_version(version),
    };
    let client = Client {
        host: Rc::from("/127.0.0.1"),
        listener,
        endpoint: Rc::from(shard.config.cluster.client_listener_name.as_str()),
        principal: PRINCIPAL.with(|p| p.borrow().clone()),
        muted_until: Rc::default(),
        enveloped: false,
        clock: Rc::new(crate::stats::RequestClock::new()),
        share_sessions: Rc::default(),
    };
    dispatch(shard, &header, body.freeze(), client).await
}

fn decode_frame<Resp: Decodable>(key: ApiKey, version: i16, frame: Bytes) -> Resp {
    // Size, correlation id, and the tagged fields of a flexible response header.
    let mut skip = 8;
    if key.response_header_version(version) >= 1 {
        skip += 1;
    }
    let mut body = frame.slice(skip..);
    Resp::decode(&mut body, version).expect("response decodes")
}
