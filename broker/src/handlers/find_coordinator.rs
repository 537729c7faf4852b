//! FindCoordinator (key 10): consumer groups and transactions are not served yet, so every key
//! gets COORDINATOR_NOT_AVAILABLE (clients retry; nothing is pretended).

use super::{decode, respond, str_bytes};
use crate::connection::Response;
use crate::errors::code;
use crate::node::Shard;
use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use millrace_wire::frame::RequestHeader;
use std::rc::Rc;

const MESSAGE: &str = "group and transaction coordinators are not available on this broker yet";

pub async fn handle(_shard: Rc<Shard>, header: RequestHeader, body: Bytes) -> Response {
    let req: FindCoordinatorRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let mut resp = FindCoordinatorResponse::default();
    if header.api_version < 4 {
        resp.error_code = code::COORDINATOR_NOT_AVAILABLE;
        resp.node_id = BrokerId(-1);
        resp.port = -1;
        if header.api_version >= 1 {
            resp.error_message = Some(str_bytes(MESSAGE));
        }
    } else {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
                    .with_error_message(Some(str_bytes(MESSAGE)))
            })
            .collect();
    }
    respond(&header, &resp)
}
