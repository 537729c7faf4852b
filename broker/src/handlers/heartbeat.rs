//! Heartbeat (key 12), versions 0-4.

use super::Context;
use super::Response;
use super::{decode, group_call, respond};
use bytes::Bytes;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: HeartbeatRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let hb = crate::group::HeartbeatRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
    };
    let error = match group_call(&ctx, &hb.group_id.clone(), AclOperation::Read, hb).await {
        Ok(code) => code,
        Err(code) => code,
    };
    respond(
        &header,
        &HeartbeatResponse::default().with_error_code(error),
    )
}
