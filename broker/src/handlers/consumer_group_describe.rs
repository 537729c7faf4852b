//! ConsumerGroupDescribe (key 69), versions 0-1: KIP-848 groups with their epochs, members,
//! current and target assignments (topic names resolved from the metadata image). A group id
//! that is not a consumer group answers GROUP_ID_NOT_FOUND, as Kafka does; one whose assignments
//! name a topic the principal may not describe answers TOPIC_AUTHORIZATION_FAILED, as Kafka's.

use super::Context;
use super::Response;
use super::{decode, group_call, respond, str_bytes};
use crate::consumer_group::Assignment;
use crate::coordinator::ConsumerDescribe;
use crate::metadata::MetadataImage;
use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

/// Kafka's `authorized_operations` when not asked for.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// Member type (v1): 1 = consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ConsumerGroupDescribeRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let image = ctx.image();
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for g in &req.group_ids {
        let out = DescribedGroup::default()
            .with_group_id(g.clone())
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        let op = ConsumerDescribe(g.0.to_string());
        let described = match group_call(&ctx, &g.0, AclOperation::Describe, op).await {
            Ok(Ok(view)) => {
                let members = view
                    .members
                    .into_iter()
                    .map(|m| {
                        Member::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_instance_id(m.instance_id.map(|s| str_bytes(&s)))
                            .with_rack_id(m.rack_id.map(|s| str_bytes(&s)))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names
                                    .iter()
                                    .map(|t| TopicName(str_bytes(t)))
                                    .collect(),
                            )
                            .with_subscribed_topic_regex(
                                m.subscribed_topic_regex.as_deref().map(str_bytes),
                            )
                            .with_assignment(wire_assignment(&image, &m.assignment))
                            .with_target_assignment(wire_assignment(&image, &m.target_assignment))
                            .with_member_type(if header.api_version >= 1 {
                                MEMBER_TYPE_CONSUMER
                            } else {
                                -1
                            })
                    })
                    .collect();
                out.with_group_state(str_bytes(view.state))
                    .with_group_epoch(view.group_epoch)
                    .with_assignment_epoch(view.assignment_epoch)
                    .with_assignor_name(str_bytes(&view.assignor_name))
                    .with_members(members)
            }
            Ok(Err(error)) => out
                .with_error_code(error)
                .with_error_message(Some(str_bytes(&format!(
                    "Group {} not found or not a consumer group.",
                    g.0
                )))),
            Err(error) => out.with_error_code(error),
        };
        // As Kafka (KAFKA-18813): a group whose assignments name a topic the principal may not
        // describe is not shown, so describing a group reveals no hidden topic.
        let hidden = described.members.iter().any(|m| {
            [&m.assignment, &m.target_assignment]
                .into_iter()
                .flat_map(|a| &a.topic_partitions)
                .map(|t| t.topic_name.0.as_str())
                // A topic deleted since is no longer named.
                .filter(|name| !name.is_empty())
                .any(|name| !ctx.allowed_quietly(AclOperation::Describe, ResourceType::Topic, name))
        });
        let described = if hidden {
            DescribedGroup::default()
                .with_group_id(g.clone())
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
                .with_error_code(crate::errors::code::TOPIC_AUTHORIZATION_FAILED)
                .with_error_message(Some(str_bytes(
                    "The group's assignments name topics the client is not authorized to \
                     describe.",
                )))
        } else {
            described
        };
        // Kafka fills it for each group the principal may describe, when asked.
        let described = if req.include_authorized_operations && described.error_code == 0 {
            let ops = ctx.authorized_operations(ResourceType::Group, &g.0);
            described.with_authorized_operations(ops)
        } else {
            described
        };
        groups.push(described);
    }
    respond(
        &header,
        &ConsumerGroupDescribeResponse::default().with_groups(groups),
    )
}

fn wire_assignment(image: &MetadataImage, a: &Assignment) -> WireAssignment {
    WireAssignment::default().with_topic_partitions(
        a.iter()
            .map(|(id, ps)| {
                let name = image
                    .topic_by_id(id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(str_bytes(&name)))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}
