//! ShareGroupHeartbeat (key 76), version 1: share-group membership (KIP-932). The group's
//! coordinating shard answers at once (see `crate::share_group`); members bring their own ids.

use super::Context;
use super::Response;
use super::{decode, group_call, respond, str_bytes};
use crate::coordinator::ShareHeartbeatOp;
use crate::share_group::ShareHeartbeat;
use bytes::Bytes;
use kafka_protocol::messages::share_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ShareGroupHeartbeatRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    if req.member_epoch == 0 {
        // The members' share partitions keep their state in __share_group_state: have it
        // made now rather than at the first ShareFetch (Kafka makes it when the group
        // coordinator initializes the assigned partitions' state).
        ctx.ensure_share_state_topic();
    }
    let heartbeat = ShareHeartbeat {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: ctx.client().host.to_string(),
    };
    let group_id = heartbeat.group_id.clone();
    let resp = match group_call(
        &ctx,
        &group_id,
        AclOperation::Read,
        ShareHeartbeatOp(Box::new(heartbeat)),
    )
    .await
    {
        Ok(r) => r,
        Err(error) => {
            let resp = ShareGroupHeartbeatResponse::default()
                .with_error_code(error)
                .with_member_epoch(-1);
            return respond(&header, &resp);
        }
    };
    let assignment = resp.assignment.map(|a| {
        WireAssignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    });
    let out = ShareGroupHeartbeatResponse::default()
        .with_error_code(resp.error_code)
        .with_error_message(resp.error_message.map(|m| str_bytes(&m)))
        .with_member_id(resp.member_id.map(|m| str_bytes(&m)))
        .with_member_epoch(resp.member_epoch)
        .with_heartbeat_interval_ms(resp.heartbeat_interval_ms)
        .with_assignment(assignment);
    respond(&header, &out)
}
