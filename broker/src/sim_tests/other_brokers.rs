//! A broker of a cluster holds only the partitions whose replica list names it: a partition of
//! another broker is never opened here, and requests for one are answered as Kafka's brokers
//! answer for partitions they do not host, so that clients refresh their metadata and go
//! there: NOT_LEADER_OR_FOLLOWER for data, NOT_COORDINATOR for a group whose offsets partition
//! another broker holds. What does not exist at all keeps UNKNOWN_TOPIC_OR_PARTITION, and a
//! missing offsets topic COORDINATOR_NOT_AVAILABLE.

use super::*;
use crate::errors::code;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use millrace_replication::metadata::{PartitionChangeRecord, RemoveTopicRecord, TopicId};

/// The broker that holds what this one (node 0) does not.
const OTHER: i32 = 7;

/// A topic whose only replica is another broker: the image has it, this node's placement
/// records every partition as not here, no shard opens a log for it, and data requests for
/// it answer NOT_LEADER_OR_FOLLOWER on every shard.
#[test]
fn a_partition_whose_only_replica_is_another_broker_is_never_opened_here() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(7);
    let shards = sim.block_on(boot(&disk));
    sim.block_on(async {
        let id = TopicId([7; 16]);
        let load = shards[0].image().placement.load_per_shard(SHARDS);
        let records = crate::metadata::topic_records("elsewhere", id, 2, &BTreeMap::new(), OTHER);
        publish(&shards, &records).await;
        let image = shards[0].image();
        assert_eq!(image.topics["elsewhere"].partitions, 2, "in the image");
        assert_eq!(image.placement.shards_of(&id), Some(&[None, None][..]));
        assert_eq!(image.placement.load_per_shard(SHARDS), load);
        for p in 0..2 {
            assert!(shards.iter().all(|s| s.partition("elsewhere", p).is_none()));
        }
        let paths: Vec<String> = disk
            .paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with(&format!("/sim/{TOPIC}-0/"))),
            "a partition held here has files: {paths:?}"
        );
        assert!(
            !paths.iter().any(|p| p.starts_with("/sim/elsewhere-")),
            "nothing of another broker's partitions is on this disk: {paths:?}"
        );
        for shard in &shards {
            let produced = produce_to(shard, "elsewhere", 1).await;
            assert_eq!(produced, code::NOT_LEADER_OR_FOLLOWER);
            // From v10 the answer names the leader (KIP-951).
            let answer = produce_v(shard, "elsewhere", 1, 11).await;
            let hint = &answer.responses[0].partition_responses[0].current_leader;
            assert_eq!((hint.leader_id.0, hint.leader_epoch), (OTHER, 0));
            let fetched = call_fetch(shard, &disk, &fetch_from_start("elsewhere", 0)).await;
            let fetched = fetched.responses[0].partitions[0].error_code;
            assert_eq!(fetched, code::NOT_LEADER_OR_FOLLOWER);
            let listed = list_offsets(shard, "elsewhere", &[0, 1, 2]).await;
            let (here, absent) = (
                code::NOT_LEADER_OR_FOLLOWER,
                code::UNKNOWN_TOPIC_OR_PARTITION,
            );
            assert_eq!(listed, [here, here, absent]);
            let deleted = delete_records(shard, "elsewhere", &[1, 2]).await;
            assert_eq!(deleted, [here, absent]);
        }
        // What does not exist at all is still unknown.
        let unknown = code::UNKNOWN_TOPIC_OR_PARTITION;
        assert_eq!(produce_to(&shards[0], "elsewhere", 2).await, unknown);
        assert_eq!(produce_to(&shards[0], "nowhere", 0).await, unknown);
        assert_eq!(list_offsets(&shards[0], "nowhere", &[0]).await, [unknown]);
        // The partition of this node beside it is served as before.
        assert_eq!(produce_one(shards[0].clone()).await, code::NONE);
    });
    drop(shards);
    sim.crash();
}

/// A cluster moves partitions to another broker: this node closes them, and requests for
/// them are answered as Kafka's brokers answer for partitions they do not host:
/// NOT_LEADER_OR_FOLLOWER for data; for groups whose offsets partition moved, every group API
/// answers NOT_COORDINATOR and ListGroups no longer lists them. With the offsets topic gone,
/// group APIs answer COORDINATOR_NOT_AVAILABLE.
#[test]
fn partitions_of_another_broker_are_not_served_here() {
    let disk = SimDisk::new(4096);
    let sim = Sim::new(6);
    let shards = sim.block_on(boot(&disk));
    sim.block_on(async {
        assert_eq!(commit_one(&shards[1], "g").await, code::NONE);
        assert_eq!(list_groups(&shards[0]).await, ["g"], "coordinated here");
        let current = shards[0].image();
        let moved = |topic: &str, p: i32| {
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id: current.topics[topic].topic_id,
                partition_id: p,
                leader: Some(OTHER),
                isr: Some(vec![OTHER]),
                replicas: Some(vec![OTHER]),
                eligible_leader_replicas: None,
                last_known_elr: None,
            })
        };
        let offsets = crate::coordinator::OFFSETS_TOPIC;
        let mut records = vec![moved(TOPIC, 0)];
        records.extend((0..current.topics[offsets].partitions).map(|p| moved(offsets, p)));
        publish(&shards, &records).await;
        assert!(
            shards.iter().all(|s| s.partition(TOPIC, 0).is_none()),
            "closed here"
        );
        let listed = list_offsets(&shards[1], TOPIC, &[0, 999]).await;
        assert_eq!(
            listed,
            [
                code::NOT_LEADER_OR_FOLLOWER,
                code::UNKNOWN_TOPIC_OR_PARTITION
            ]
        );
        let fetched = call_fetch(&shards[0], &disk, &fetch_partition_0()).await;
        let fetched = fetched.responses[0].partitions[0].error_code;
        assert_eq!(fetched, code::NOT_LEADER_OR_FOLLOWER);
        assert_eq!(
            produce_one(shards[1].clone()).await,
            code::NOT_LEADER_OR_FOLLOWER
        );
        for shard in &shards {
            assert!(
                list_groups(shard).await.is_empty(),
                "another broker lists g"
            );
            for (api, error) in group_codes(shard, "g").await {
                assert_eq!(error, code::NOT_COORDINATOR, "{api}");
            }
        }
        let removed = MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: current.topics[offsets].topic_id,
        });
        publish(&shards, &[removed]).await;
        for (api, error) in group_codes(&shards[0], "g").await {
            assert_eq!(error, code::COORDINATOR_NOT_AVAILABLE, "{api}");
        }
    });
    drop(shards);
    sim.crash();
}

/// A simple consumer's commit of offset 0 for partition 0 of the test topic: its code.
async fn commit_one(shard: &Rc<Shard>, group: &str) -> i16 {
    let resp: OffsetCommitResponse = call(shard, ApiKey::OffsetCommit, 8, &commit(group)).await;
    resp.topics[0].partitions[0].error_code
}

fn commit(group: &str) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])])
}

/// ListGroups: the ids of the groups listed.
pub(super) async fn list_groups(shard: &Rc<Shard>) -> Vec<String> {
    let req = ListGroupsRequest::default();
    let resp: ListGroupsResponse = call(shard, ApiKey::ListGroups, 4, &req).await;
    assert_eq!(resp.error_code, code::NONE);
    resp.groups
        .iter()
        .map(|g| g.group_id.0.to_string())
        .collect()
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// The error code of every API that reaches `group`'s coordinator, by name, each read where
/// its response carries the group's error (top level, per group or per partition).
async fn group_codes(shard: &Rc<Shard>, group: &str) -> Vec<(&'static str, i16)> {
    let g = group_id(group);
    let member = StrBytes::from_static_str("m");
    let mut codes = vec![("OffsetCommit", commit_one(shard, group).await)];
    let req = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default().with_group_id(g.clone())
    ]);
    let resp: OffsetFetchResponse = call(shard, ApiKey::OffsetFetch, 8, &req).await;
    codes.push(("OffsetFetch v8", resp.groups[0].error_code));
    let req = OffsetFetchRequest::default().with_group_id(g.clone());
    let resp: OffsetFetchResponse = call(shard, ApiKey::OffsetFetch, 7, &req).await;
    codes.push(("OffsetFetch v7", resp.error_code));
    let req = JoinGroupRequest::default()
        .with_group_id(g.clone())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"));
    let resp: JoinGroupResponse = call(shard, ApiKey::JoinGroup, 9, &req).await;
    codes.push(("JoinGroup", resp.error_code));
    let req = SyncGroupRequest::default()
        .with_group_id(g.clone())
        .with_generation_id(1)
        .with_member_id(member.clone());
    let resp: SyncGroupResponse = call(shard, ApiKey::SyncGroup, 5, &req).await;
    codes.push(("SyncGroup", resp.error_code));
    let req = HeartbeatRequest::default()
        .with_group_id(g.clone())
        .with_generation_id(1)
        .with_member_id(member.clone());
    let resp: HeartbeatResponse = call(shard, ApiKey::Heartbeat, 4, &req).await;
    codes.push(("Heartbeat", resp.error_code));
    let req = LeaveGroupRequest::default()
        .with_group_id(g.clone())
        .with_member_id(member.clone());
    let resp: LeaveGroupResponse = call(shard, ApiKey::LeaveGroup, 2, &req).await;
    codes.push(("LeaveGroup", resp.error_code));
    let req = DescribeGroupsRequest::default().with_groups(vec![g.clone()]);
    let resp: DescribeGroupsResponse = call(shard, ApiKey::DescribeGroups, 5, &req).await;
    codes.push(("DescribeGroups", resp.groups[0].error_code));
    let req = DeleteGroupsRequest::default().with_groups_names(vec![g.clone()]);
    let resp: DeleteGroupsResponse = call(shard, ApiKey::DeleteGroups, 2, &req).await;
    codes.push(("DeleteGroups", resp.results[0].error_code));
    let req = OffsetDeleteRequest::default()
        .with_group_id(g.clone())
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let resp: OffsetDeleteResponse = call(shard, ApiKey::OffsetDelete, 0, &req).await;
    codes.push(("OffsetDelete", resp.error_code));
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(g.clone())
        .with_member_id(member)
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str(TOPIC))]))
        .with_topic_partitions(Some(Vec::new()));
    let resp: ConsumerGroupHeartbeatResponse =
        call(shard, ApiKey::ConsumerGroupHeartbeat, 0, &req).await;
    codes.push(("ConsumerGroupHeartbeat", resp.error_code));
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![g]);
    let resp: ConsumerGroupDescribeResponse =
        call(shard, ApiKey::ConsumerGroupDescribe, 0, &req).await;
    codes.push(("ConsumerGroupDescribe", resp.groups[0].error_code));
    codes
}
