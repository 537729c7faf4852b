//! LeaveGroup (key 13): one member (v0-2) or a batch (v3+, KIP-345).

use super::Context;
use super::Response;
use super::{decode, group_call, respond};
use crate::coordinator::Leave;
use crate::errors::code;
use crate::group::LeaveMember;
use bytes::Bytes;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: LeaveGroupRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let batched = header.api_version >= 3;
    let members: Vec<LeaveMember> = if batched {
        req.members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let group_id = req.group_id.0.to_string();
    let op = Leave {
        group_id: group_id.clone(),
        members: members.clone(),
    };
    let codes = group_call(&ctx, &group_id, AclOperation::Read, op).await;
    let mut resp = LeaveGroupResponse::default();
    match codes {
        Err(error) => resp.error_code = error,
        Ok(codes) if batched => {
            resp.members = req
                .members
                .iter()
                .zip(codes)
                .map(|(m, error)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id.clone())
                        .with_group_instance_id(m.group_instance_id.clone())
                        .with_error_code(error)
                })
                .collect();
        }
        Ok(codes) => resp.error_code = codes.first().copied().unwrap_or(code::NONE),
    }
    respond(&header, &resp)
}
