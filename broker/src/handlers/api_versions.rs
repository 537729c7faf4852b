//! ApiVersions (key 18): the versions in the registry. A version the broker does not know gets
//! UNSUPPORTED_VERSION in the v0 format with the list, and the client retries with one it has.
//! From v3 the answer also carries Kafka's feature levels: `transaction.version` supported
//! 0-2 and finalized at `millrace.transaction.version`, from which the Java 4.x producer
//! decides whether to speak Transactions V2 (KIP-890 part 2).

use super::Response;
use super::{decode, respond, ApiEntry};
use crate::errors::code;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
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
    let level = ctx.config().txn_version;
    let name = || super::str_bytes(TRANSACTION_VERSION);
    respond(
        &header,
        &ApiVersionsResponse::default()
            .with_api_keys(api_keys(ctx.client().listener.registry()))
            .with_supported_features(vec![SupportedFeatureKey::default()
                .with_name(name())
                .with_min_version(0)
                .with_max_version(MAX_TRANSACTION_VERSION)])
            .with_finalized_features_epoch(features_epoch())
            .with_finalized_features(vec![FinalizedFeatureKey::default()
                .with_name(name())
                .with_min_version_level(level)
                .with_max_version_level(level)]),
    )
}

/// Kafka's feature for the transaction protocol.
const TRANSACTION_VERSION: &str = "transaction.version";
/// Transactions V2: an epoch bump per transaction, partitions added by their leaders.
const MAX_TRANSACTION_VERSION: i16 = 2;

/// The epoch of the finalized features: they come from the configuration, fixed for the life
/// of the process, so the moment it started (a restart with other levels shows a later epoch,
/// which is what makes a client read them again).
fn features_epoch() -> i64 {
    static STARTED: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// The v0-format error response for an ApiVersions version the broker does not support. It
/// lists ApiVersions' own range only, as Kafka does: the client asks again at a version it
/// shares and learns everything (the feature levels included) from that answer. A client
/// given the whole list here may take it as the final answer and never see the features
/// (franz-go 1.22, which opens with v5, did: its first transaction ran on the classic
/// protocol).
pub fn unsupported_version(header: &RequestHeader, registry: &[ApiEntry]) -> Response {
    let keys: Vec<ApiVersion> = api_keys(registry)
        .into_iter()
        .filter(|k| k.api_key == ApiKey::ApiVersions as i16)
        .collect();
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
