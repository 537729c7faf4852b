//! BrokerHeartbeat (key 63, controller listener): renews a broker's session and reports
//! whether it is caught up and fenced; the active controller unfences a broker that caught
//! up. A stale broker epoch is refused (STALE_BROKER_EPOCH). See
//! `crate::controller::brokers`.

use super::{decode, respond, Context, Response};
use crate::controller::brokers::Heartbeat;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerHeartbeatResponse};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: BrokerHeartbeatRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let call = Heartbeat {
        broker_id: req.broker_id.0,
        broker_epoch: req.broker_epoch,
        metadata_offset: req.current_metadata_offset,
        want_fence: req.want_fence,
        want_shut_down: req.want_shut_down,
    };
    let answer = ctx.call(ctx.controller_shard(), call).await;
    let resp = match answer {
        Ok(Ok(r)) => BrokerHeartbeatResponse::default()
            .with_is_caught_up(r.is_caught_up)
            .with_is_fenced(r.is_fenced)
            .with_should_shut_down(r.should_shut_down),
        Ok(Err((error_code, _))) => BrokerHeartbeatResponse::default()
            .with_error_code(error_code)
            .with_is_fenced(true),
        Err(_) => BrokerHeartbeatResponse::default()
            .with_error_code(code::NOT_CONTROLLER)
            .with_is_fenced(true),
    };
    respond(&header, &resp)
}
