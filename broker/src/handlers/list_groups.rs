//! ListGroups (key 16), versions 0-5: the groups this broker coordinates (every shard's, as
//! Kafka lists per broker; a group whose offsets partition another broker holds is not
//! listed), filtered by state (v4+) and by type (v5+: "classic" or "consumer",
//! case-insensitive as Kafka).

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::coordinator::{ListGroups, OnCoordinator};
use crate::mesh::join_all;
use bytes::Bytes;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use millrace_security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ListGroupsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let calls = (0..ctx.shards()).map(|target| {
        let ctx = ctx.clone();
        async move { ctx.call(target, OnCoordinator(ListGroups)).await }
    });
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut groups = Vec::new();
    // DESCRIBE on the cluster lists every group; otherwise those the principal may describe.
    let all = ctx.allowed_quietly(AclOperation::Describe, ResourceType::Cluster, CLUSTER_NAME);
    // A shard that is stopping lists nothing.
    let listed = join_all(calls.collect()).await.into_iter().flatten();
    for (group_id, protocol_type, state, group_type) in listed.flatten() {
        if !all && !ctx.allowed_quietly(AclOperation::Describe, ResourceType::Group, &group_id) {
            continue;
        }
        if !states.is_empty() && !states.contains(&state.to_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.contains(&group_type.to_string()) {
            continue;
        }
        let mut g = ListedGroup::default()
            .with_group_id(GroupId(str_bytes(&group_id)))
            .with_protocol_type(str_bytes(&protocol_type));
        if header.api_version >= 4 {
            g.group_state = str_bytes(state);
        }
        if header.api_version >= 5 {
            g.group_type = str_bytes(group_type);
        }
        groups.push(g);
    }
    respond(&header, &ListGroupsResponse::default().with_groups(groups))
}
