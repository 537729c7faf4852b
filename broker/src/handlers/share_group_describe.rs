//! ShareGroupDescribe (key 77), version 1: share groups with their epochs, members and
//! assignments (topic names resolved from the metadata image). A group id that is not a share
//! group answers GROUP_ID_NOT_FOUND, as Kafka does.

use super::Context;
use super::Response;
use super::{decode, group_call, respond, str_bytes};
use crate::consumer_group::Assignment;
use crate::coordinator::ShareDescribe;
use crate::metadata::MetadataImage;
use bytes::Bytes;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

/// Kafka's `authorized_operations` when not asked for.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ShareGroupDescribeRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let image = ctx.image();
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for g in &req.group_ids {
        let out = DescribedGroup::default()
            .with_group_id(g.clone())
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        let described = match group_call(
            &ctx,
            &g.0,
            AclOperation::Describe,
            ShareDescribe(g.0.to_string()),
        )
        .await
        {
            Ok(Ok(view)) => {
                let members = view
                    .members
                    .into_iter()
                    .map(|m| {
                        Member::default()
                            .with_member_id(str_bytes(&m.member_id))
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
                            .with_assignment(wire_assignment(&image, &m.assignment))
                    })
                    .collect();
                out.with_group_state(str_bytes(view.state))
                    .with_group_epoch(view.group_epoch)
                    .with_assignment_epoch(view.assignment_epoch)
                    .with_assignor_name(str_bytes(crate::share_group::ASSIGNOR))
                    .with_members(members)
            }
            Ok(Err(error)) => out
                .with_error_code(error)
                .with_error_message(Some(str_bytes(&format!(
                    "Group {} not found or not a share group.",
                    g.0
                )))),
            Err(error) => out.with_error_code(error),
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
        &ShareGroupDescribeResponse::default().with_groups(groups),
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
