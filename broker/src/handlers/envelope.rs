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
use crate::acls::{host_of, principal_of};
use crate::errors::code;
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{EnvelopeRequest, EnvelopeResponse};
use millrace_wire::frame::{parse_request_header, RequestHeader};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acls::{host_bytes, host_of, principal_bytes, principal_of};

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
