//! ApiVersions (key 18): the versions in the registry. A version the broker does not know gets
//! UNSUPPORTED_VERSION in the v0 format with the list, and the client retries with one it has.

use super::Response;
use super::{decode, respond, ApiEntry};
use crate::errors::code;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use millrace_wire::frame::RequestHeader;

fn api_keys(registry: &[ApiEntry]) -> Vec<ApiVersion> {
    registry
        .iter()
        .map(|e| {
            ApiVersion::default()
                .with_api_key(e.key as i16)
                .with_min_version(e.min)
                .with_max_version(e.max)
        })
        .collect()
}

pub async fn handle(ctx: super::Context, header: RequestHeader, body: Bytes) -> Response {
    if let Err(close) = decode::<ApiVersionsRequest>(&header, &body) {
        return close;
    }
    respond(
        &header,
        &ApiVersionsResponse::default().with_api_keys(api_keys(ctx.client().listener.registry())),
    )
}

/// The v0-format error response for an ApiVersions version the broker does not support.
pub fn unsupported_version(header: &RequestHeader, registry: &[ApiEntry]) -> Response {
    let keys = api_keys(registry);
    let mut buf = BytesMut::with_capacity(16 + keys.len() * 6);
    buf.put_i32(0);
    buf.put_i32(header.correlation_id);
    buf.put_i16(code::UNSUPPORTED_VERSION);
    buf.put_i32(keys.len() as i32);
    for k in &keys {
        buf.put_i16(k.api_key);
        buf.put_i16(k.min_version);
        buf.put_i16(k.max_version);
    }
    let size = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Response::Frame(buf.freeze())
}
