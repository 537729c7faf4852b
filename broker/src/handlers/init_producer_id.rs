//! InitProducerId (key 22) for idempotent producers: a fresh producer id from the metadata
//! writer (ids are handed out in persisted blocks, never twice), or, when the producer sends
//! its current id and epoch (KIP-360, v3+), the same id with the epoch bumped. Transactional
//! ids need the transaction coordinator, which is not served yet.

use super::Context;
use super::Response;
use super::{decode, respond};
use crate::controller::AllocateProducerId;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: InitProducerIdRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return respond(
            &header,
            &resp.with_error_code(code::COORDINATOR_NOT_AVAILABLE),
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
