//! ConsumerGroupHeartbeat (key 68), versions 0-1: the KIP-848 consumer group protocol. The
//! group's coordinating shard answers at once (see `crate::consumer_group`); v0 members may
//! leave their id empty to have one made, v1 members (Kafka 4.x clients) bring their own and may
//! subscribe by regular expression (resolved by the coordinator against the metadata image,
//! each member keeping the matches its principal may describe).

use super::Context;
use super::Response;
use super::{decode, group_call, respond, str_bytes};
use crate::consumer_group::{Assignment, Heartbeat};
use crate::coordinator::ConsumerHeartbeat;
use bytes::Bytes;
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ConsumerGroupHeartbeatRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    // Kafka refuses a subscription to topics the principal may not describe, after the
    // group's own check.
    if ctx.allowed(AclOperation::Read, ResourceType::Group, &req.group_id.0) {
        let hidden: Vec<&str> = req
            .subscribed_topic_names
            .iter()
            .flatten()
            .map(|t| t.0.as_str())
            .filter(|t| !ctx.allowed(AclOperation::Describe, ResourceType::Topic, t))
            .collect();
        if !hidden.is_empty() {
            let why =
                format!("The group has subscribed to topics that are not authorized: {hidden:?}");
            let resp = ConsumerGroupHeartbeatResponse::default()
                .with_error_code(crate::errors::code::TOPIC_AUTHORIZATION_FAILED)
                .with_error_message(Some(str_bytes(&why)))
                .with_member_epoch(-1);
            return respond(&header, &resp);
        }
    }
    let heartbeat = Heartbeat {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned: req.topic_partitions.as_ref().map(|ts| {
            let mut a = Assignment::new();
            for t in ts {
                a.entry(t.topic_id)
                    .or_default()
                    .extend(t.partitions.iter().copied());
            }
            a
        }),
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: ctx.client().host.to_string(),
        principal: ctx.requester().principal.to_string(),
    };
    let group_id = heartbeat.group_id.clone();
    let op = ConsumerHeartbeat {
        version: header.api_version,
        request: Box::new(heartbeat),
    };
    let resp = match group_call(&ctx, &group_id, AclOperation::Read, op).await {
        Ok(r) => r,
        Err(error) => {
            let resp = ConsumerGroupHeartbeatResponse::default()
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
    let out = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(resp.error_code)
        .with_error_message(resp.error_message.map(|m| str_bytes(&m)))
        .with_member_id(resp.member_id.map(|m| str_bytes(&m)))
        .with_member_epoch(resp.member_epoch)
        .with_heartbeat_interval_ms(resp.heartbeat_interval_ms)
        .with_assignment(assignment);
    respond(&header, &out)
}
