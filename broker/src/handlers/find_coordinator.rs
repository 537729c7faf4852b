//! FindCoordinator (key 10): this node coordinates every consumer group (the group's
//! `__consumer_offsets` partition decides which shard inside it). Transaction coordinators are
//! not served yet: COORDINATOR_NOT_AVAILABLE, so clients retry rather than fail.

use super::Response;
use super::{decode, respond, str_bytes};
use super::{BrokerAddress, Context};
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

/// The broker leading the `__consumer_offsets` partition of `group_id` (Kafka's coordinator
/// placement); this node while that topic or its leader is not known yet (the group call
/// then answers COORDINATOR_NOT_AVAILABLE and the client asks again).
fn coordinator_of(ctx: &Context, group_id: &str) -> BrokerAddress {
    let image = ctx.image();
    let leader = image
        .topics
        .get(crate::coordinator::OFFSETS_TOPIC)
        .and_then(|t| {
            let p = crate::coordinator::offsets_partition(group_id, t.partitions as usize);
            ctx.leader_of(t, p)
        });
    leader.unwrap_or_else(|| {
        let c = ctx.config();
        BrokerAddress {
            id: c.node_id,
            host: c.advertise.0.clone(),
            port: c.advertise.1,
            rack: None,
        }
    })
}

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: FindCoordinatorRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let where_is = |key: &str| {
        let b = coordinator_of(&ctx, key);
        (str_bytes(&b.host), i32::from(b.port), BrokerId(b.id))
    };
    let mut resp = FindCoordinatorResponse::default();
    if header.api_version < 4 {
        let (error, message) = lookup(&req.key, req.key_type);
        resp.error_code = error;
        if header.api_version >= 1 {
            resp.error_message = message.map(str_bytes);
        }
        if error == code::NONE {
            (resp.host, resp.port, resp.node_id) = where_is(&req.key);
        } else {
            (resp.node_id, resp.port) = (BrokerId(-1), -1);
        }
    } else {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (error, message) = lookup(k, req.key_type);
                let (host, port, node) = if error == code::NONE {
                    where_is(k)
                } else {
                    (StrBytes::default(), -1, BrokerId(-1))
                };
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(node)
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(error)
                    .with_error_message(message.map(str_bytes))
            })
            .collect();
    }
    respond(&header, &resp)
}
