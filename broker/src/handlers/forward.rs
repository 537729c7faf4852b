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
        Ok(Forwarded::Answered(response)) => {
            // The controller metered the client (controller_mutation_rate, request_percentage)
            // but cannot mute its connection: this broker does, for the time the answer
            // gives, as Kafka's brokers do with a forwarded answer's throttle time.
            ctx.throttle(throttle_time_ms(key, header.api_version, &response));
            Some(Response::Frame(frame(
                header.correlation_id,
                key.response_header_version(header.api_version),
                &response,
            )))
        }
        Ok(Forwarded::HandleHere) | Err(_) => None,
    }
}

/// The `throttle_time_ms` of a forwarded request's response body: its first field in every
/// forwarded response that has one (CreateTopics from v2, DeleteTopics from v1, the others in
/// every version but DescribeQuorum, which has none). 0 when absent or negative.
fn throttle_time_ms(key: ApiKey, version: i16, body: &[u8]) -> u64 {
    let present = match key {
        ApiKey::CreateTopics => version >= 2,
        ApiKey::DeleteTopics => version >= 1,
        ApiKey::DescribeQuorum => false,
        _ => true,
    };
    match body.get(..4) {
        Some(first) if present => {
            let ms = i32::from_be_bytes(first.try_into().expect("four bytes"));
            u64::try_from(ms).unwrap_or(0)
        }
        _ => 0,
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
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, Message};

    /// Every version of a response with throttle time 1234, encoded by the protocol crate.
    fn encoded<M: Encodable + Message + Default>(with: impl Fn(M) -> M) -> Vec<(i16, Bytes)> {
        (M::VERSIONS.min..=M::VERSIONS.max)
            .map(|v| {
                let mut out = BytesMut::new();
                with(M::default())
                    .encode(&mut out, v)
                    .expect("a default response encodes");
                (v, out.freeze())
            })
            .collect()
    }

    /// The throttle time is read where each forwarded response puts it (checked against the
    /// protocol crate's encoders for every version), and never from one that has none.
    #[test]
    fn a_forwarded_answers_throttle_time_is_found_in_every_version() {
        let mut seen = Vec::new();
        let mut check = |key: ApiKey, answers: Vec<(i16, Bytes)>, first_with: i16| {
            for (v, body) in answers {
                let want = if v >= first_with { 1234 } else { 0 };
                assert_eq!(throttle_time_ms(key, v, &body), want, "{key:?} v{v}");
            }
            seen.push(key);
        };
        check(
            ApiKey::CreateTopics,
            encoded(|r: CreateTopicsResponse| r.with_throttle_time_ms(1234)),
            2,
        );
        check(
            ApiKey::DeleteTopics,
            encoded(|r: DeleteTopicsResponse| r.with_throttle_time_ms(1234)),
            1,
        );
        check(
            ApiKey::CreatePartitions,
            encoded(|r: CreatePartitionsResponse| r.with_throttle_time_ms(1234)),
            0,
        );
        check(
            ApiKey::AlterConfigs,
            encoded(|r: AlterConfigsResponse| r.with_throttle_time_ms(1234)),
            0,
        );
        check(
            ApiKey::IncrementalAlterConfigs,
            encoded(|r: IncrementalAlterConfigsResponse| r.with_throttle_time_ms(1234)),
            0,
        );
        check(
            ApiKey::ElectLeaders,
            encoded(|r: ElectLeadersResponse| r.with_throttle_time_ms(1234)),
            0,
        );
        check(
            ApiKey::AlterUserScramCredentials,
            encoded(|r: AlterUserScramCredentialsResponse| r.with_throttle_time_ms(1234)),
            0,
        );
        check(
            ApiKey::CreateAcls,
            encoded(|r: CreateAclsResponse| r.with_throttle_time_ms(1234)),
            0,
        );
        check(
            ApiKey::DeleteAcls,
            encoded(|r: DeleteAclsResponse| r.with_throttle_time_ms(1234)),
            0,
        );
        check(
            ApiKey::AlterClientQuotas,
            encoded(|r: AlterClientQuotasResponse| r.with_throttle_time_ms(1234)),
            0,
        );
        // DescribeQuorum starts with its error code: a non-zero one is no throttle time.
        check(
            ApiKey::DescribeQuorum,
            encoded(|r: DescribeQuorumResponse| r.with_error_code(1234)),
            i16::MAX,
        );
        let mut forwarded = FORWARDED.to_vec();
        forwarded.sort_by_key(|k| *k as i16);
        seen.sort_by_key(|k| *k as i16);
        assert_eq!(seen, forwarded, "every forwarded API is covered");
        assert_eq!(
            throttle_time_ms(ApiKey::CreateAcls, 3, &[0, 0]),
            0,
            "short body"
        );
        let negative = (-5i32).to_be_bytes();
        assert_eq!(throttle_time_ms(ApiKey::CreateAcls, 3, &negative), 0);
    }

    #[test]
    fn a_forwarded_answer_keeps_the_clients_correlation_id_and_header() {
        let f = frame(7, 1, b"xyz");
        assert_eq!(&f[..], &[0, 0, 0, 8, 0, 0, 0, 7, 0, b'x', b'y', b'z']);
        let f = frame(7, 0, b"xyz");
        assert_eq!(&f[..], &[0, 0, 0, 7, 0, 0, 0, 7, b'x', b'y', b'z']);
    }
}
