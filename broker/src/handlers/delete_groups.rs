//! DeleteGroups (key 42), versions 0-2: only groups with no members (NON_EMPTY_GROUP
//! otherwise); their offsets and state are deleted from `__consumer_offsets` durably.

use super::Context;
use super::Response;
use super::{decode, group_call, respond};
use crate::coordinator::DeleteGroup;
use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DeleteGroupsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in &req.groups_names {
        let error = match group_call(&ctx, &g.0, DeleteGroup(g.0.to_string())).await {
            Ok(error) | Err(error) => error,
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(error),
        );
    }
    respond(
        &header,
        &DeleteGroupsResponse::default().with_results(results),
    )
}
