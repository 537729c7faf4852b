//! SaslAuthenticate (key 36), versions 0–2, when it reaches the registry: on a SASL listener
//! the connection runs the exchange itself ([`crate::auth`]), so here it came on a listener
//! without SASL. Kafka answers ILLEGAL_SASL_STATE.

use super::{decode, respond, str_bytes, Context, Response};
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use millrace_wire::codes as code;
use millrace_wire::frame::RequestHeader;

pub async fn handle(_ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let _: SaslAuthenticateRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    respond(
        &header,
        &SaslAuthenticateResponse::default()
            .with_error_code(code::ILLEGAL_SASL_STATE)
            .with_error_message(Some(str_bytes(
                "SaslAuthenticate request received on a listener without SASL",
            ))),
    )
}
