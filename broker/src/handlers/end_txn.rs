//! EndTxn (key 26): commits or aborts the producer's transaction on its coordinator
//! (`crate::txn`), which answers once PrepareCommit/PrepareAbort is durable and then writes
//! the markers. v5 is Transactions V2: the epoch is bumped and the answer carries the producer
//! id and epoch to go on with.

use super::Context;
use super::{decode, respond, Response};
use bytes::Bytes;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: EndTxnRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let op = crate::txn::TxnOp::End {
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        commit: req.committed,
        v2: header.api_version >= 5,
    };
    let mut resp = EndTxnResponse::default();
    let txn_id = req.transactional_id.0.as_str();
    if !ctx.allowed(AclOperation::Write, ResourceType::TransactionalId, txn_id) {
        resp.error_code = crate::errors::code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return respond(&header, &resp);
    }
    match ctx.txn(req.transactional_id.0.as_str(), op).await {
        Ok((id, epoch)) => {
            resp.producer_id = kafka_protocol::messages::ProducerId(id);
            resp.producer_epoch = epoch;
        }
        Err(e) => resp.error_code = e.code(header.api_version, 2),
    }
    respond(&header, &resp)
}
