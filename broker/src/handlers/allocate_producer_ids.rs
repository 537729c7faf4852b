//! AllocateProducerIds (key 67, controller listener): a block of producer ids for a broker,
//! committed by the active controller before it is answered, so no id is handed out twice.
//! The broker epoch is checked (STALE_BROKER_EPOCH). See `crate::controller::brokers`.

use super::{decode, respond, Context, Response};
use crate::controller::brokers::AllocateProducerIds;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, ProducerId,
};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: AllocateProducerIdsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let call = AllocateProducerIds {
        broker_id: req.broker_id.0,
        broker_epoch: req.broker_epoch,
    };
    let refused = |error_code| {
        AllocateProducerIdsResponse::default()
            .with_error_code(error_code)
            .with_producer_id_start(ProducerId(-1))
    };
    let resp = match ctx.call(ctx.controller_shard(), call).await {
        Ok(Ok((start, len))) => AllocateProducerIdsResponse::default()
            .with_producer_id_start(ProducerId(start))
            .with_producer_id_len(len),
        Ok(Err((error_code, _))) => refused(error_code),
        Err(_) => refused(code::NOT_CONTROLLER),
    };
    respond(&header, &resp)
}
