//! SyncGroup (key 14), versions 0-5: the leader's assignment in, each member's share out.

use super::Context;
use super::Response;
use super::{decode, group_call, respond, str_bytes};
use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: SyncGroupRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let sync = crate::group::SyncRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let resp = match group_call(&ctx, &sync.group_id.clone(), AclOperation::Read, sync).await {
        Ok(out) => {
            let mut resp = SyncGroupResponse::default()
                .with_error_code(out.error_code)
                .with_assignment(out.assignment);
            if header.api_version >= 5 {
                resp.protocol_type = out.protocol_type.map(|s| str_bytes(&s));
                resp.protocol_name = out.protocol_name.map(|s| str_bytes(&s));
            }
            resp
        }
        Err(error) => SyncGroupResponse::default().with_error_code(error),
    };
    respond(&header, &resp)
}
