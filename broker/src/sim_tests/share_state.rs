//! The share coordinator hosted by the broker (`crate::share_state`): the first request finds
//! no `__share_group_state` and has the controller create it; writes are answered once
//! committed and read back (through the API from either shard, and through the
//! ReadShareGroupState handler), summarised and initialized; stale epochs are fenced; FindCoordinator for a share key names
//! this broker; the state survives a crash (a reload replays snapshots and updates); a
//! partition led by another broker is NOT_COORDINATOR for the handlers and forgotten here,
//! then read back when it returns under a new epoch; a delete forgets the state.

use super::*;
use crate::errors::code;
use crate::share::record::{ShareStateKey, StateBatch};
use crate::share_state::{PersistedState, StateWriteRequest, SHARE_STATE_TOPIC};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::read_share_group_state_request::{PartitionData, ReadStateData};
use kafka_protocol::messages::{
    FindCoordinatorResponse, ReadShareGroupStateRequest, ReadShareGroupStateResponse,
};
use millrace_replication::metadata::PartitionChangeRecord;

/// The broker that leads the state partition while this one (node 0) follows.
const OTHER: i32 = 7;

fn share_config() -> Arc<Config> {
    let mut group = crate::config::groups::GroupKeys::default();
    group.share_state_topic_num_partitions = 3;
    group.share_snapshot_update_records_per_snapshot = 2;
    Arc::new(Config {
        group,
        ..(*config()).clone()
    })
}

/// [`boot_with`] plus the share coordinators, as `server.rs` starts them.
async fn boot_share(disk: &SimDisk) -> Vec<Rc<Shard>> {
    let shards = boot_with(disk, share_config()).await;
    for shard in &shards {
        crate::share_state::load(shard)
            .await
            .expect("share state replays after a crash");
        millrace_shard::spawn_detached(crate::share_state::watch(shard.clone()));
    }
    shards
}

fn key(shard: &Shard, group: &str, partition: i32) -> ShareStateKey {
    ShareStateKey {
        group_id: group.to_string(),
        topic_id: shard.image().topics[TOPIC].id,
        partition,
    }
}

fn batch(first: i64, last: i64, state: i8, count: i16) -> StateBatch {
    StateBatch {
        first_offset: first,
        last_offset: last,
        delivery_state: state,
        delivery_count: count,
    }
}

/// Retries what a share-partition leader retries: the topic being made, loaded, moved.
async fn retried<T>(mut attempt: impl AsyncFnMut() -> Result<T, i16>) -> Result<T, i16> {
    for _ in 0..100 {
        match attempt().await {
            Err(
                code::COORDINATOR_NOT_AVAILABLE
                | code::COORDINATOR_LOAD_IN_PROGRESS
                | code::NOT_COORDINATOR,
            ) => millrace_shard::time::sleep(Duration::from_millis(50)).await,
            other => return other,
        }
    }
    attempt().await
}

async fn write(shard: &Rc<Shard>, k: &ShareStateKey, req: StateWriteRequest) -> Result<(), i16> {
    retried(async || crate::share_state::write(shard, k, req.clone()).await).await
}

async fn read(
    shard: &Rc<Shard>,
    k: &ShareStateKey,
    epoch: i32,
) -> Result<Option<PersistedState>, i16> {
    retried(async || crate::share_state::read(shard, k, epoch).await).await
}

fn expected() -> PersistedState {
    PersistedState {
        state_epoch: 1,
        leader_epoch: 4,
        start_offset: 10,
        batches: vec![
            batch(10, 11, 2, 1),
            batch(12, 12, 0, 2),
            batch(13, 19, 2, 1),
            batch(20, 24, 4, 3),
        ],
    }
}

/// Five writes: a snapshot, two updates, a snapshot, an update.
async fn write_five(shard: &Rc<Shard>, k: &ShareStateKey) {
    let w = |leader_epoch, start_offset, batches: Vec<StateBatch>| StateWriteRequest {
        state_epoch: 1,
        leader_epoch,
        start_offset,
        batches,
    };
    let writes = [
        w(3, 0, vec![batch(0, 19, 0, 1)]),
        w(3, -1, vec![batch(0, 14, 2, 1)]),
        w(3, 10, vec![batch(12, 12, 0, 2)]),
        w(4, -1, vec![batch(15, 19, 2, 1), batch(20, 24, 4, 3)]),
        w(4, -1, vec![]),
    ];
    for req in writes {
        assert_eq!(write(shard, k, req).await, Ok(()));
    }
}

#[test]
fn share_state_is_created_on_demand_fenced_and_survives_a_crash() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(20);
    let shards = sim.block_on(boot_share(&disk));
    let k = key(&shards[0], "share-g", 1);
    sim.block_on(async {
        assert!(!shards[0].image().topics.contains_key(SHARE_STATE_TOPIC));
        // The first read makes the topic and waits for it (no retry by the caller).
        let first = crate::share_state::read(&shards[0], &k, 0).await;
        assert_eq!(first, Ok(None));
        assert_eq!(shards[1].image().topics[SHARE_STATE_TOPIC].partitions, 3);

        write_five(&shards[1], &k).await;
        assert_eq!(read(&shards[0], &k, 4).await, Ok(Some(expected())));
        assert_eq!(
            read(&shards[1], &k, 3).await,
            Err(code::FENCED_LEADER_EPOCH)
        );
        let older_state = StateWriteRequest {
            state_epoch: 0,
            leader_epoch: 4,
            start_offset: -1,
            batches: vec![],
        };
        let fenced = crate::share_state::write(&shards[0], &k, older_state).await;
        assert_eq!(fenced, Err(code::FENCED_STATE_EPOCH));
        let unknown = key(&shards[0], "share-g", PARTITIONS);
        let no_topic = crate::share_state::write(&shards[0], &unknown, expected_write()).await;
        assert_eq!(no_topic, Err(code::UNKNOWN_TOPIC_OR_PARTITION));

        let summary = retried(async || crate::share_state::summary(&shards[0], &k).await).await;
        let expected_summary = crate::share_state::StateSummary {
            state_epoch: 1,
            leader_epoch: 4,
            start_offset: 10,
        };
        assert_eq!(summary, Ok(expected_summary));
        let fresh = key(&shards[0], "initialized", 0);
        let init = async || crate::share_state::initialize(&shards[1], &fresh, 2, -1).await;
        assert_eq!(retried(init).await, Ok(()));
        let started = PersistedState {
            state_epoch: 2,
            leader_epoch: 0,
            start_offset: -1,
            batches: vec![],
        };
        assert_eq!(read(&shards[0], &fresh, 0).await, Ok(Some(started)));
        let stale = crate::share_state::initialize(&shards[0], &fresh, 1, 0).await;
        assert_eq!(stale, Err(code::FENCED_STATE_EPOCH));

        let (error, batches) = read_by_handler(&shards[1], &k, 4).await;
        assert_eq!(error, code::NONE);
        assert_eq!(batches, expected().batches);
        let other = key(&shards[0], "never-written", 0);
        assert_eq!(
            read_by_handler(&shards[0], &other, 0).await.0,
            code::INVALID_REQUEST
        );
        assert_eq!(
            find_share_coordinator(&shards[1], &k).await,
            (code::NONE, 0)
        );
    });
    drop(shards);
    sim.crash();
    disk.crash(20);

    let sim = Sim::new(21);
    let shards = sim.block_on(boot_share(&disk));
    sim.block_on(async {
        assert_eq!(read(&shards[1], &k, 4).await, Ok(Some(expected())));
        assert_eq!(
            crate::share_state::delete(&shards[0], std::slice::from_ref(&k)).await,
            Ok(())
        );
        assert_eq!(read(&shards[1], &k, 4).await, Ok(None));
        // Deleting what is gone is done already.
        assert_eq!(
            crate::share_state::delete(&shards[1], std::slice::from_ref(&k)).await,
            Ok(())
        );
    });
    drop(shards);
    sim.crash();
}

fn expected_write() -> StateWriteRequest {
    StateWriteRequest {
        state_epoch: 0,
        leader_epoch: 0,
        start_offset: 0,
        batches: vec![],
    }
}

#[test]
fn share_state_follows_the_leadership_of_its_state_partition() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(22);
    let shards = sim.block_on(boot_share(&disk));
    let k = key(&shards[0], "moving", 2);
    sim.block_on(async {
        write_five(&shards[0], &k).await;
        let image = shards[0].image();
        let topic_id = image.topics[SHARE_STATE_TOPIC].topic_id;
        let p = crate::share_state::state_partition(&k, 3);
        let change = |leader: i32, replicas: Vec<i32>| {
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id,
                partition_id: p,
                leader: Some(leader),
                isr: Some(replicas.clone()),
                replicas: Some(replicas),
                eligible_leader_replicas: None,
                last_known_elr: None,
            })
        };
        publish(&shards, &[change(OTHER, vec![0, OTHER])]).await;
        // The handlers answer only for this broker; the API goes to the leader, which this
        // simulation does not run (no address): unavailable.
        let (error, _) = read_by_handler(&shards[0], &k, 4).await;
        assert_eq!(error, code::NOT_COORDINATOR);
        let remote = crate::share_state::read(&shards[1], &k, 4).await;
        assert_eq!(remote, Err(code::COORDINATOR_NOT_AVAILABLE));

        publish(&shards, &[change(0, vec![0, OTHER])]).await;
        assert_eq!(read(&shards[1], &k, 4).await, Ok(Some(expected())));
    });
    drop(shards);
    sim.crash();
}

/// ReadShareGroupState v0 through the handler: (error, batches).
async fn read_by_handler(
    shard: &Rc<Shard>,
    k: &ShareStateKey,
    epoch: i32,
) -> (i16, Vec<StateBatch>) {
    let req = ReadShareGroupStateRequest::default()
        .with_group_id(StrBytes::from_string(k.group_id.clone()))
        .with_topics(vec![ReadStateData::default()
            .with_topic_id(k.topic_id)
            .with_partitions(vec![PartitionData::default()
                .with_partition(k.partition)
                .with_leader_epoch(epoch)])]);
    for _ in 0..100 {
        let resp: ReadShareGroupStateResponse =
            call(shard, ApiKey::ReadShareGroupState, 0, &req).await;
        let p = &resp.results[0].partitions[0];
        if p.error_code == code::COORDINATOR_LOAD_IN_PROGRESS {
            millrace_shard::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let batches = p
            .state_batches
            .iter()
            .map(|b| {
                batch(
                    b.first_offset,
                    b.last_offset,
                    b.delivery_state,
                    b.delivery_count,
                )
            })
            .collect();
        return (p.error_code, batches);
    }
    panic!("the state partition did not load");
}

/// FindCoordinator v6 for `k`'s share key: (error, node id).
async fn find_share_coordinator(shard: &Rc<Shard>, k: &ShareStateKey) -> (i16, i32) {
    let req = FindCoordinatorRequest::default()
        .with_key_type(2)
        .with_coordinator_keys(vec![StrBytes::from_string(
            crate::share_state::coordinator_key(k),
        )]);
    let resp: FindCoordinatorResponse = call(shard, ApiKey::FindCoordinator, 6, &req).await;
    let c = &resp.coordinators[0];
    (c.error_code, c.node_id.0)
}
