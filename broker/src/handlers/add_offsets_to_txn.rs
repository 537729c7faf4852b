//! AddOffsetsToTxn (key 25): adds the group's `__consumer_offsets` partition to the
//! producer's transaction, so its commit or abort marker reaches the group's offsets.

use super::Context;
use super::{decode, respond, Response};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: AddOffsetsToTxnRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group = req.group_id.0.as_str();
    let image = ctx.image();
    let txn_id = req.transactional_id.0.as_str();
    let error = match image.topics.get(crate::coordinator::OFFSETS_TOPIC) {
        _ if !ctx.allowed(AclOperation::Write, ResourceType::TransactionalId, txn_id) => {
            code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        }
        _ if !ctx.allowed(AclOperation::Read, ResourceType::Group, group) => {
            code::GROUP_AUTHORIZATION_FAILED
        }
        _ if group.is_empty() || group.len() > crate::coordinator::GROUP_ID_BYTES_MAX => {
            code::INVALID_GROUP_ID
        }
        None => code::COORDINATOR_NOT_AVAILABLE,
        Some(t) => {
            let p = crate::coordinator::offsets_partition(group, t.partitions as usize);
            let op = crate::txn::TxnOp::Add {
                implicit: false,
                producer_id: req.producer_id.0,
                producer_epoch: req.producer_epoch,
                partitions: vec![(crate::coordinator::OFFSETS_TOPIC.to_string(), p)],
            };
            match ctx.txn(req.transactional_id.0.as_str(), op).await {
                Ok(_) => code::NONE,
                Err(e) => e.code(header.api_version, 2),
            }
        }
    };
    respond(
        &header,
        &AddOffsetsToTxnResponse::default().with_error_code(error),
    )
}
