//! DeleteGroups (key 42), versions 0-2: only groups with no members (NON_EMPTY_GROUP
//! otherwise); their offsets and state are deleted from `__consumer_offsets` durably, and a
//! share group's share-partition state from its share coordinators.

use super::Context;
use super::Response;
use super::{decode, group_call, respond};
use crate::coordinator::{DeleteGroup, ShareDescribe};
use crate::share::record::ShareStateKey;
use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DeleteGroupsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in &req.groups_names {
        let share = match group_call(
            &ctx,
            &g.0,
            AclOperation::Delete,
            ShareDescribe(g.0.to_string()),
        )
        .await
        {
            Ok(Ok(view)) => view.initialized,
            _ => Default::default(),
        };
        let mut error = match group_call(
            &ctx,
            &g.0,
            AclOperation::Delete,
            DeleteGroup(g.0.to_string()),
        )
        .await
        {
            Ok(error) | Err(error) => error,
        };
        if error == millrace_wire::codes::NONE && !share.is_empty() {
            let keys: Vec<ShareStateKey> = share
                .iter()
                .flat_map(|(topic_id, ps)| {
                    ps.iter().map(|&partition| ShareStateKey {
                        group_id: g.0.to_string(),
                        topic_id: *topic_id,
                        partition,
                    })
                })
                .collect();
            if let Err(e) = ctx.share_state_delete(&keys).await {
                error = e;
            }
        }
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
