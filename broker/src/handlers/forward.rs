//! Forwarding: a metadata change (or DescribeQuorum) that reaches a broker's client listener
//! is sent, as the client encoded it, to the active controller's CONTROLLER listener, and the
//! controller's answer goes back to the client under the client's correlation id. Kafka's
//! brokers forward the same requests to their active controller. The controller listener
//! never forwards: a controller that no longer leads answers NOT_CONTROLLER, which clients
//! retry after refreshing their metadata.

use super::{Context, Listener, Response};
use crate::controller::lifecycle::{Forward, Forwarded};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use millrace_wire::frame::RequestHeader;

/// The APIs forwarded to the active controller.
pub const FORWARDED: &[ApiKey] = &[
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DescribeQuorum,
    ApiKey::ElectLeaders,
    ApiKey::AlterUserScramCredentials,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::AlterClientQuotas,
];

/// The active controller's response to a forwarded request, or None to handle it here (this
/// node is the active controller, it is the only voter, or none answered in time).
pub async fn to_active_controller(
    ctx: &Context,
    key: ApiKey,
    header: &RequestHeader,
    body: &Bytes,
) -> Option<Response> {
    if ctx.client().listener != Listener::Client || !FORWARDED.contains(&key) {
        return None;
    }
    let forward = Forward {
        api_key: header.api_key,
        api_version: header.api_version,
        body: body.clone(),
        client_id: header.client_id.clone(),
        principal: ctx.client().principal.to_string(),
        host: ctx.client().host.to_string(),
    };
    match ctx.call(ctx.controller_shard(), forward).await {
        Ok(Forwarded::Answered(response)) => Some(Response::Frame(frame(
            header.correlation_id,
            key.response_header_version(header.api_version),
            &response,
        ))),
        Ok(Forwarded::HandleHere) | Err(_) => None,
    }
}

/// A response frame: size, correlation id, an empty tagged-field section for header v1, body.
fn frame(correlation_id: i32, header_version: i16, body: &[u8]) -> Bytes {
    let tags = usize::from(header_version >= 1);
    let mut buf = BytesMut::with_capacity(8 + tags + body.len());
    buf.put_i32((4 + tags + body.len()) as i32);
    buf.put_i32(correlation_id);
    if tags == 1 {
        buf.put_u8(0);
    }
    buf.put_slice(body);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_answer_keeps_the_clients_correlation_id_and_header() {
        let f = frame(7, 1, b"xyz");
        assert_eq!(&f[..], &[0, 0, 0, 8, 0, 0, 0, 7, 0, b'x', b'y', b'z']);
        let f = frame(7, 0, b"xyz");
        assert_eq!(&f[..], &[0, 0, 0, 7, 0, 0, 0, 7, b'x', b'y', b'z']);
    }
}
