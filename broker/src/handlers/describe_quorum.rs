//! DescribeQuorum (key 55): the metadata quorum's leader, epoch, high watermark, voters and
//! observers (broker-only nodes that fetched from the leader since it took over),
//! as `kafka-metadata-quorum describe --status` and the Admin client's
//! `describeMetadataQuorum` show them. Served on both listeners (Kafka's brokers answer it
//! too); the answer comes from this node's controller. As in Kafka, a request that does not
//! name exactly `__cluster_metadata` partition 0 gets UNKNOWN_TOPIC_OR_PARTITION at the top,
//! and a node that does not lead answers NOT_LEADER_OR_FOLLOWER for the partition.

use super::{decode, respond, str_bytes, Context, Response};
use crate::controller::DescribeQuorum;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub use crate::controller::observer::METADATA_TOPIC;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeQuorumRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    if !ctx.allowed_on_cluster(AclOperation::Describe) {
        return respond(
            &header,
            &DescribeQuorumResponse::default().with_error_code(code::CLUSTER_AUTHORIZATION_FAILED),
        );
    }
    let names_the_log = matches!(
        req.topics.as_slice(),
        [t] if t.topic_name.0.as_str() == METADATA_TOPIC
            && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0)
    );
    if !names_the_log {
        return respond(
            &header,
            &DescribeQuorumResponse::default().with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
        );
    }
    let status = match ctx.call(ctx.controller_shard(), DescribeQuorum).await {
        Ok(Some(status)) => status,
        _ => {
            return respond(
                &header,
                &DescribeQuorumResponse::default().with_error_code(code::COORDINATOR_NOT_AVAILABLE),
            )
        }
    };
    let mut partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(status.leader.unwrap_or(-1)))
        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
        .with_high_watermark(status.high_watermark);
    if status.leading {
        partition = partition.with_current_voters(
            status
                .voters
                .iter()
                .map(|&(id, end)| {
                    ReplicaState::default()
                        .with_replica_id(BrokerId(id))
                        .with_log_end_offset(end)
                        .with_last_fetch_timestamp(-1)
                        .with_last_caught_up_timestamp(-1)
                })
                .collect(),
        );
        // Observers (broker-only nodes) as the leader saw their last fetch: the offset they
        // fetched from is the end of their log.
        partition = partition.with_observers(
            status
                .observers
                .iter()
                .map(|&(id, end, at)| {
                    ReplicaState::default()
                        .with_replica_id(BrokerId(id))
                        .with_log_end_offset(end)
                        .with_last_fetch_timestamp(at)
                        .with_last_caught_up_timestamp(if end >= status.high_watermark {
                            at
                        } else {
                            -1
                        })
                })
                .collect(),
        );
    } else {
        partition = partition.with_error_code(code::NOT_LEADER_OR_FOLLOWER);
    }
    let cluster = &ctx.config().cluster;
    // The voters' endpoints exist from v2 on (KIP-853).
    let nodes = match &cluster.controller_listener_name {
        Some(name) if header.api_version >= 2 => cluster
            .voters
            .iter()
            .map(|v| {
                Node::default()
                    .with_node_id(BrokerId(v.id))
                    .with_listeners(vec![Listener::default()
                        .with_name(str_bytes(name))
                        .with_host(str_bytes(&v.host))
                        .with_port(v.port)])
            })
            .collect(),
        _ => Vec::new(),
    };
    respond(
        &header,
        &DescribeQuorumResponse::default()
            .with_topics(vec![TopicData::default()
                .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
                .with_partitions(vec![partition])])
            .with_nodes(nodes),
    )
}
