//! Envelope (key 58), version 0, on the controller listener: a request a broker forwards to
//! the active controller for one of its clients, with that client's principal and address, so
//! the controller authorizes it as the client (Kafka's KIP-590 forwarding). The inner request
//! runs through the controller listener's own handler for it; its response (header and body)
//! goes back inside an EnvelopeResponse.
//!
//! Brokers wrap forwarded requests only when an authorizer is configured
//! ([`crate::controller::lifecycle::Forward`]); without one the principal decides nothing and
//! the bare request keeps working with nodes that predate Envelope.

use super::{decode, respond, Client, Context, Listener, Response, CONTROLLER_REGISTRY};
use crate::errors::code;
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{DefaultPrincipalData, EnvelopeRequest, EnvelopeResponse};
use kafka_protocol::protocol::{Decodable, Encodable};
use millrace_wire::frame::{parse_request_header, RequestHeader};
use std::net::IpAddr;
use std::rc::Rc;

/// Kafka's PRINCIPAL_DESERIALIZATION_FAILURE.
const PRINCIPAL_DESERIALIZATION_FAILURE: i16 = 97;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: EnvelopeRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let answer = |error: i16, data: Option<Bytes>| {
        respond(
            &header,
            &EnvelopeResponse::default()
                .with_error_code(error)
                .with_response_data(data),
        )
    };
    let (Some(principal), Some(host)) = (
        req.request_principal.as_ref().and_then(principal_of),
        host_of(&req.client_host_address),
    ) else {
        return answer(PRINCIPAL_DESERIALIZATION_FAILURE, None);
    };
    let Ok((inner, start)) = parse_request_header(&req.request_data) else {
        return answer(code::INVALID_REQUEST, None);
    };
    let forwardable = super::forward::FORWARDED
        .iter()
        .any(|k| *k as i16 == inner.api_key);
    let entry = CONTROLLER_REGISTRY
        .iter()
        .find(|e| e.key as i16 == inner.api_key);
    let Some(entry) =
        entry.filter(|e| forwardable && (e.min_handled..=e.max).contains(&inner.api_version))
    else {
        return answer(code::INVALID_REQUEST, None);
    };
    let client = Client {
        host: Rc::from(format!("/{host}").as_str()),
        listener: Listener::Controller,
        endpoint: ctx.client().endpoint.clone(),
        principal: Rc::from(principal.as_str()),
        muted_until: Rc::default(),
        enveloped: true,
        clock: ctx.client().clock.clone(),
        share_sessions: ctx.client().share_sessions.clone(),
    };
    let inner_body = req.request_data.slice(start..);
    let inner_ctx = ctx.for_client(client);
    match (entry.handler)(inner_ctx, inner.clone(), inner_body).await {
        // The inner frame without its size prefix: the response header and body.
        Response::Frame(mut frame) => {
            frame.advance(4);
            answer(code::NONE, Some(frame))
        }
        Response::Close(reason) => {
            tracing::warn!(api_key = inner.api_key, %reason, "refusing an enveloped request");
            answer(code::INVALID_REQUEST, None)
        }
        Response::Fetch(_) | Response::Nothing => answer(code::INVALID_REQUEST, None),
    }
}

/// `Type:name` from Kafka's version-prefixed DefaultPrincipalData.
fn principal_of(bytes: &Bytes) -> Option<String> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    let data = DefaultPrincipalData::decode(&mut buf, version).ok()?;
    Some(format!("{}:{}", data._type, data.name))
}

/// The client's address from its 4 or 16 bytes.
fn host_of(bytes: &Bytes) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(&bytes[..]).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(&bytes[..]).ok()?)),
        _ => None,
    }
}

/// Kafka's version-prefixed DefaultPrincipalData for `principal` (`Type:name`).
pub fn principal_bytes(principal: &str) -> Bytes {
    let (kind, name) = principal.split_once(':').unwrap_or(("User", principal));
    let data = DefaultPrincipalData::default()
        .with_type(super::str_bytes(kind))
        .with_name(super::str_bytes(name))
        .with_token_authenticated(false);
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    data.encode(&mut out, 0).expect("a principal encodes");
    out.freeze()
}

/// The address bytes Kafka's Envelope carries for a client host (`/1.2.3.4` or `1.2.3.4`).
pub fn host_bytes(host: &str) -> Bytes {
    match host.trim_start_matches('/').parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Bytes::copy_from_slice(&a.octets()),
        Ok(IpAddr::V6(a)) => Bytes::copy_from_slice(&a.octets()),
        Err(_) => Bytes::copy_from_slice(&[0, 0, 0, 0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_and_hosts_round_trip_in_kafkas_forms() {
        let bytes = principal_bytes("User:alice:x");
        assert_eq!(&bytes[..2], &[0, 0], "version prefix");
        assert_eq!(principal_of(&bytes).as_deref(), Some("User:alice:x"));
        assert_eq!(principal_of(&Bytes::from_static(&[0])), None);
        assert_eq!(principal_of(&Bytes::from_static(&[0, 0, 9])), None);
        assert_eq!(
            host_of(&host_bytes("/10.1.2.3")).unwrap().to_string(),
            "10.1.2.3"
        );
        assert_eq!(host_of(&host_bytes("::1")).unwrap().to_string(), "::1");
        assert_eq!(host_of(&Bytes::from_static(&[1, 2, 3])), None);
    }
}
