//! FindCoordinator (key 10): this node coordinates every consumer group (the group's
//! `__consumer_offsets` partition decides which shard inside it). Transaction coordinators are
//! not served yet: COORDINATOR_NOT_AVAILABLE, so clients retry rather than fail.

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use millrace_wire::frame::RequestHeader;

const KEY_TYPE_GROUP: i8 = 0;
const NO_TRANSACTIONS: &str = "the transaction coordinator is not available on this broker yet";

/// (error code, message) for one key.
fn lookup(key: &str, key_type: i8) -> (i16, Option<&'static str>) {
    if key_type != KEY_TYPE_GROUP {
        return (code::COORDINATOR_NOT_AVAILABLE, Some(NO_TRANSACTIONS));
    }
    if key.is_empty() || key.len() > crate::coordinator::GROUP_ID_BYTES_MAX {
        return (code::INVALID_GROUP_ID, Some("invalid group id"));
    }
    (code::NONE, None)
}

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: FindCoordinatorRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let c = ctx.config();
    let (host, port, node) = (
        str_bytes(&c.advertise.0),
        i32::from(c.advertise.1),
        BrokerId(c.node_id),
    );
    let mut resp = FindCoordinatorResponse::default();
    if header.api_version < 4 {
        let (error, message) = lookup(&req.key, req.key_type);
        resp.error_code = error;
        if header.api_version >= 1 {
            resp.error_message = message.map(str_bytes);
        }
        if error == code::NONE {
            (resp.node_id, resp.host, resp.port) = (node, host, port);
        } else {
            (resp.node_id, resp.port) = (BrokerId(-1), -1);
        }
    } else {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (error, message) = lookup(k, req.key_type);
                let found = error == code::NONE;
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(if found { node } else { BrokerId(-1) })
                    .with_host(if found {
                        host.clone()
                    } else {
                        StrBytes::default()
                    })
                    .with_port(if found { port } else { -1 })
                    .with_error_code(error)
                    .with_error_message(message.map(str_bytes))
            })
            .collect();
    }
    respond(&header, &resp)
}
