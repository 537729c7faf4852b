//! JoinGroup (key 11), versions 0-9, answered by the group's coordinating shard when the
//! rebalance completes.

use super::Context;
use super::Response;
use super::{decode, group_call, respond, str_bytes};
use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: JoinGroupRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let v = header.api_version;
    let join = crate::group::JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if v >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        require_known_member_id: v >= 4,
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: ctx.client().host.to_string(),
    };
    let out = match group_call(&ctx, &join.group_id.clone(), AclOperation::Read, join).await {
        Ok(r) => r,
        Err(error) => {
            let resp = JoinGroupResponse::default()
                .with_error_code(error)
                .with_generation_id(-1);
            return respond(&header, &resp);
        }
    };
    let members = out
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_group_instance_id(
                    m.group_instance_id
                        .filter(|_| v >= 5)
                        .map(|s| str_bytes(&s)),
                )
                .with_metadata(m.metadata)
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(out.error_code)
        .with_generation_id(out.generation_id)
        .with_protocol_name(out.protocol_name.map(|s| str_bytes(&s)))
        .with_leader(str_bytes(&out.leader))
        .with_member_id(str_bytes(&out.member_id))
        .with_members(members);
    if v >= 7 {
        resp.protocol_type = out.protocol_type.map(|s| str_bytes(&s));
    }
    if v >= 9 {
        resp.skip_assignment = out.skip_assignment;
    }
    if v < 7 && resp.protocol_name.is_none() {
        resp.protocol_name = Some(str_bytes(""));
    }
    respond(&header, &resp)
}
