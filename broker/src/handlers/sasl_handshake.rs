//! SaslHandshake (key 17), versions 0–1, when it reaches the registry: on a SASL listener the
//! connection runs the exchange itself ([`crate::auth`]) and this is never called, so here it
//! came on a listener without SASL, or after authentication finished. Kafka answers
//! ILLEGAL_SASL_STATE with no mechanisms in both cases.

use super::{decode, respond, Context, Response};
use bytes::Bytes;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use millrace_wire::codes as code;
use millrace_wire::frame::RequestHeader;

pub async fn handle(_ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let _: SaslHandshakeRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    respond(
        &header,
        &SaslHandshakeResponse::default().with_error_code(code::ILLEGAL_SASL_STATE),
    )
}
