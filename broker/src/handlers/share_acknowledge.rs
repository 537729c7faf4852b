//! ShareAcknowledge (key 79), versions 1-2 (v2's extra fields: `share_v2`): a share group member's acknowledgements without a
//! fetch (KIP-932). The connection's share session must exist and the epoch match (0 is
//! INVALID_SHARE_SESSION_EPOCH: only a ShareFetch opens a session); -1 acknowledges, then
//! closes the session and releases what the member still holds. Each partition is answered
//! once its acknowledgements are durable, with the partition's error otherwise
//! (INVALID_RECORD_STATE for offsets the member does not hold under a live lock, the whole
//! partition's acknowledgement refused, as Kafka does).

use super::share_fetch::{acknowledge, lock_duration_ms, release, resolve};
use super::{respond, str_bytes, Context, Response};
use crate::share::partition::AckBatch;
use crate::share::session::TopicIdPartition;
use bytes::Bytes;
use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{BrokerId, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::codes as code;
use millrace_wire::frame::RequestHeader;
use std::collections::{BTreeMap, BTreeSet};

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let version = header.api_version;
    let (req, _v2, header): (ShareAcknowledgeRequest, _, _) =
        match super::share_v2::decode(&header, &body, false) {
            Ok(r) => r,
            Err(close) => return close,
        };
    let lock_ms = lock_duration_ms(
        &ctx,
        &req.group_id
            .as_ref()
            .map(|g| g.0.to_string())
            .unwrap_or_default(),
    );
    let respond = |header: &RequestHeader, body: &ShareAcknowledgeResponse| match version {
        2 => super::share_v2::acknowledge_response_v2(respond(header, body), lock_ms),
        _ => respond(header, body),
    };
    let group = req
        .group_id
        .as_ref()
        .map(|g| g.0.to_string())
        .unwrap_or_default();
    let member = req
        .member_id
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let top = |error: i16, why: &str| {
        ShareAcknowledgeResponse::default()
            .with_error_code(error)
            .with_error_message(Some(str_bytes(why)))
    };
    if group.is_empty() || member.is_empty() {
        let why = "a share acknowledgement needs a group id and a member id";
        return respond(&header, &top(code::INVALID_REQUEST, why));
    }
    if !ctx.allowed(AclOperation::Read, ResourceType::Group, &group) {
        return respond(
            &header,
            &top(code::GROUP_AUTHORIZATION_FAILED, "not authorized"),
        );
    }
    let epoch = req.share_session_epoch;
    let closing = match ctx.share_sessions(|s, _| s.acknowledge(&group, &member, epoch)) {
        Ok(closing) => closing,
        Err(error) => {
            let why = match error {
                code::SHARE_SESSION_NOT_FOUND => {
                    "no share session of this member on this connection"
                }
                _ => "the share session epoch is not the expected one",
            };
            return respond(&header, &top(error, why));
        }
    };
    let mut acks: Vec<(TopicIdPartition, Vec<AckBatch>)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let batches = p
                .acknowledgement_batches
                .iter()
                .map(|b| AckBatch {
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                    acknowledge_types: b.acknowledge_types.clone(),
                })
                .collect();
            acks.push(((t.topic_id, p.partition_index), batches));
        }
    }
    let asked: Vec<TopicIdPartition> = acks.iter().map(|(p, _)| *p).collect();
    let results = acknowledge(&ctx, &group, &member, acks).await;
    if let Some(partitions) = closing {
        release(&ctx, &group, &member, &partitions).await;
        ctx.share_sessions(|s, _| s.close(&group, &member));
    }
    let hints: BTreeMap<TopicIdPartition, (i32, i32)> = resolve(&ctx, &asked)
        .into_iter()
        .filter_map(|w| Some((w.id, w.hint?)))
        .collect();
    let mut topics: BTreeMap<uuid::Uuid, Vec<PartitionData>> = BTreeMap::new();
    let mut leaders = BTreeSet::new();
    for (p, error) in results {
        let (leader_id, leader_epoch) = hints.get(&p).copied().unwrap_or((-1, -1));
        if error == code::NOT_LEADER_OR_FOLLOWER && leader_id >= 0 {
            leaders.insert(leader_id);
        }
        topics.entry(p.0).or_default().push(
            PartitionData::default()
                .with_partition_index(p.1)
                .with_error_code(error)
                .with_current_leader(
                    LeaderIdAndEpoch::default()
                        .with_leader_id(leader_id)
                        .with_leader_epoch(leader_epoch),
                ),
        );
    }
    let endpoints = ctx
        .brokers()
        .into_iter()
        .filter(|b| leaders.contains(&b.id))
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect();
    let response = ShareAcknowledgeResponse::default()
        .with_responses(
            topics
                .into_iter()
                .map(|(id, partitions)| {
                    ShareAcknowledgeTopicResponse::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_node_endpoints(endpoints);
    respond(&header, &response)
}
