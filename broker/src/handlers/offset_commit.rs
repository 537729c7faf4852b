//! OffsetCommit (key 8), versions 2-9: checked against the group's generation and member
//! (generation -1 with no member: a simple consumer; v9: the member epoch of a KIP-848
//! consumer group, STALE_MEMBER_EPOCH if it is not the member's current one), appended to `__consumer_offsets` and
//! fsync'd before the answer.

use super::Context;
use super::Response;
use super::{decode, group_call, respond};
use crate::coordinator::{Commit, CommittedOffset};
use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: OffsetCommitRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let now = millrace_shard::time::now_ms();
    // Partitions of topics the principal may not read are refused, the others committed.
    let denied: Vec<bool> = req
        .topics
        .iter()
        .map(|t| !ctx.allowed(AclOperation::Read, ResourceType::Topic, &t.name.0))
        .collect();
    let offsets: Vec<(String, i32, CommittedOffset)> = req
        .topics
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| !**denied)
        .flat_map(|(t, _)| {
            t.partitions.iter().map(move |p| {
                let committed = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp: now,
                };
                (t.name.0.to_string(), p.partition_index, committed)
            })
        })
        .collect();
    let count = offsets.len();
    let group_id = req.group_id.0.to_string();
    let op = Commit {
        group_id: group_id.clone(),
        version: header.api_version,
        generation_id: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        offsets,
    };
    let (group_error, codes) = match group_call(&ctx, &group_id, AclOperation::Read, op).await {
        Ok(codes) => (None, codes),
        Err(error) => (Some(error), vec![error; count]),
    };
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .iter()
        .zip(denied)
        .map(|(t, denied)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let error = match (group_error, denied) {
                        (Some(error), true) => error,
                        (None, true) => crate::errors::code::TOPIC_AUTHORIZATION_FAILED,
                        (_, false) => codes
                            .next()
                            .unwrap_or(crate::errors::code::UNKNOWN_SERVER_ERROR),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &OffsetCommitResponse::default().with_topics(topics),
    )
}
