//! A group coordinator follows the leadership of its `__consumer_offsets` partition, as
//! Kafka's does: when this broker stops leading the partition (it becomes a follower), the
//! groups of that partition are forgotten here, their waiting joins are answered
//! NOT_COORDINATOR and every group API answers NOT_COORDINATOR; when it leads the partition
//! again under a new leader epoch, the groups are read back from the log (what the follower
//! copied meanwhile included), and committed offsets are served and taken again.

use super::other_brokers::list_groups;
use super::*;
use crate::errors::code;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use millrace_replication::metadata::PartitionChangeRecord;

/// The broker that leads the offsets partition while this one (node 0) follows.
const OTHER: i32 = 7;

#[test]
fn a_coordinator_unloads_when_its_offsets_partition_moves_and_reloads_when_it_returns() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(11);
    let shards = sim.block_on(boot(&disk));
    sim.block_on(async {
        let offsets = crate::coordinator::OFFSETS_TOPIC;
        let image = shards[0].image();
        let topic_id = image.topics[offsets].topic_id;
        let n = image.topics[offsets].partitions as usize;
        let p = crate::coordinator::offsets_partition("g", n);
        assert_eq!(commit_offset(&shards[1], "g", 41).await, code::NONE);
        assert_eq!(fetch_offset(&shards[0], "g").await, (code::NONE, 41));

        // A member waits in the group's first rebalance (the initial delay).
        let member = join(&shards[0], "g", "").await;
        assert_eq!(member.error_code, code::MEMBER_ID_REQUIRED);
        let (tx, rx) = millrace_shard::sync::oneshot();
        let (joiner, member_id) = (shards[0].clone(), member.member_id.to_string());
        millrace_shard::spawn_detached(async move {
            tx.send(join(&joiner, "g", &member_id).await.error_code);
        });
        millrace_shard::time::sleep(Duration::from_millis(100)).await;

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
        let owner = shards
            .iter()
            .find(|s| s.partition(offsets, p).is_some())
            .expect("this broker still holds the partition, as a follower");
        assert!(!owner.partition(offsets, p).unwrap().is_leader());
        assert_eq!(rx.await, Some(code::NOT_COORDINATOR), "the waiting join");
        for shard in &shards {
            assert_eq!(fetch_offset(shard, "g").await.0, code::NOT_COORDINATOR);
            assert_eq!(commit_offset(shard, "g", 42).await, code::NOT_COORDINATOR);
            let listed = list_groups(shard).await;
            assert!(!listed.contains(&"g".to_string()), "{listed:?}");
        }

        // Leading again (a new leader epoch): the groups come back from the log.
        let before = owner.partition(offsets, p).unwrap().leader_epoch();
        publish(&shards, &[change(0, vec![0])]).await;
        let partition = owner.partition(offsets, p).unwrap();
        assert!(partition.is_leader() && partition.leader_epoch() > before);
        let served = async {
            loop {
                let (error, offset) = fetch_offset(&shards[0], "g").await;
                if error != code::COORDINATOR_LOAD_IN_PROGRESS {
                    return (error, offset);
                }
                millrace_shard::time::sleep(Duration::from_millis(10)).await;
            }
        };
        assert_eq!(served.await, (code::NONE, 41), "read back from the log");
        assert!(list_groups(&shards[1]).await.contains(&"g".to_string()));
        assert_eq!(commit_offset(&shards[1], "g", 43).await, code::NONE);
        assert_eq!(fetch_offset(&shards[0], "g").await, (code::NONE, 43));
    });
    drop(shards);
    sim.crash();
}

/// A simple consumer's commit of `offset` for partition 0 of the test topic: its code.
async fn commit_offset(shard: &Rc<Shard>, group: &str, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let resp: OffsetCommitResponse = call(shard, ApiKey::OffsetCommit, 8, &req).await;
    resp.topics[0].partitions[0].error_code
}

/// OffsetFetch v8 of partition 0 of the test topic: (group error, committed offset or -1).
async fn fetch_offset(shard: &Rc<Shard>, group: &str) -> (i16, i64) {
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_indexes(vec![0])]))]);
    let resp: OffsetFetchResponse = call(shard, ApiKey::OffsetFetch, 8, &req).await;
    let g = &resp.groups[0];
    let offset = g
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.committed_offset);
    (g.error_code, offset)
}

/// JoinGroup v9 of a consumer member.
async fn join(shard: &Rc<Shard>, group: &str, member_id: &str) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"\0"))]);
    call(shard, ApiKey::JoinGroup, 9, &req).await
}
