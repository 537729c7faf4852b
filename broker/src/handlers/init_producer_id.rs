//! InitProducerId (key 22). Idempotent producers get a fresh producer id from the metadata
//! writer (ids are handed out in persisted blocks, never twice), or, when the producer sends
//! its current id and epoch (KIP-360, v3+), the same id with the epoch bumped. A
//! transactional id goes to its coordinator (`crate::txn`), which checks
//! `transaction.timeout.ms` against `transaction.max.timeout.ms`, bumps the epoch (fencing the
//! previous producer, PRODUCER_FENCED from v4) and aborts a transaction left open.

use super::Context;
use super::Response;
use super::{decode, respond};
use crate::controller::AllocateProducerId;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: InitProducerIdRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(txn_id) = &req.transactional_id {
        if txn_id.0.is_empty() {
            return respond(&header, &resp.with_error_code(code::INVALID_REQUEST));
        }
        if !ctx.allowed(
            AclOperation::Write,
            ResourceType::TransactionalId,
            &txn_id.0,
        ) {
            let refused = resp.with_error_code(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            return respond(&header, &refused);
        }
        let op = crate::txn::TxnOp::Init {
            timeout_ms: req.transaction_timeout_ms,
            producer_id: if header.api_version >= 3 {
                req.producer_id.0
            } else {
                -1
            },
            producer_epoch: if header.api_version >= 3 {
                req.producer_epoch
            } else {
                -1
            },
        };
        let resp = match ctx.txn(txn_id.0.as_str(), op).await {
            Ok((id, epoch)) => resp
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(e) => resp.with_error_code(e.code(header.api_version, 4)),
        };
        return respond(&header, &resp);
    }
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic
    // (KIP-679), as Kafka checks.
    if !ctx.allowed_on_cluster(AclOperation::IdempotentWrite)
        && !ctx.allowed_on_any(AclOperation::Write, ResourceType::Topic)
    {
        return respond(
            &header,
            &resp.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED),
        );
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        let bumped = resp
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
        return respond(&header, &bumped);
    }
    let allocated = ctx.call(ctx.controller_shard(), AllocateProducerId);
    match allocated.await {
        Ok(Ok(id)) => respond(
            &header,
            &resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        ),
        Ok(Err(_)) | Err(_) => respond(
            &header,
            &resp.with_error_code(code::COORDINATOR_NOT_AVAILABLE),
        ),
    }
}
