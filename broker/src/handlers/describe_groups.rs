//! DescribeGroups (key 15), versions 0-5. An unknown group is reported in state "Dead" with no
//! error, as Kafka does; a KIP-848 consumer group answers GROUP_ID_NOT_FOUND (it is not a
//! classic group; clients describe it with ConsumerGroupDescribe).

use super::Context;
use super::Response;
use super::{decode, group_call, respond, str_bytes};
use crate::coordinator::DescribeGroup;
use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeGroupsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in &req.groups {
        let described = DescribedGroup::default().with_group_id(g.clone());
        let entry = match group_call(
            &ctx,
            &g.0,
            AclOperation::Describe,
            DescribeGroup(g.0.to_string()),
        )
        .await
        {
            Ok(Ok(Some(d))) => {
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_group_instance_id(
                                m.group_instance_id
                                    .filter(|_| header.api_version >= 4)
                                    .map(|s| str_bytes(&s)),
                            )
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment)
                    })
                    .collect();
                described
                    .with_group_state(str_bytes(d.state))
                    .with_protocol_type(str_bytes(&d.protocol_type))
                    .with_protocol_data(str_bytes(&d.protocol_name))
                    .with_members(members)
            }
            Ok(Ok(None)) => described.with_group_state(str_bytes("Dead")),
            Ok(Err(error)) => described
                .with_error_code(error)
                .with_group_state(str_bytes("Dead")),
            Err(error) => described.with_error_code(error),
        };
        // v3+: what the principal may do to each group it may describe, when asked.
        let entry = if req.include_authorized_operations && entry.error_code == 0 {
            let ops = ctx.authorized_operations(ResourceType::Group, &g.0);
            entry.with_authorized_operations(ops)
        } else {
            entry
        };
        groups.push(entry);
    }
    respond(
        &header,
        &DescribeGroupsResponse::default().with_groups(groups),
    )
}
