//! DescribeConfigs (key 32): topic configs (set at creation, else the broker default) and the
//! broker's effective settings.

use super::{decode, respond, str_bytes};
use crate::connection::Response;
use crate::errors::code;
use crate::node::Shard;
use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use millrace_wire::frame::RequestHeader;
use std::rc::Rc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(shard: Rc<Shard>, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeConfigsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let results = req
        .resources
        .iter()
        .map(|r| {
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries = match r.resource_type {
                RESOURCE_TOPIC => topic_configs(&shard, &r.resource_name),
                RESOURCE_BROKER
                    if r.resource_name.is_empty()
                        || r.resource_name.parse() == Ok(shard.config.node_id) =>
                {
                    Some(
                        shard
                            .config
                            .describe()
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v, SOURCE_STATIC_BROKER))
                            .collect(),
                    )
                }
                RESOURCE_BROKER => {
                    return result
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(str_bytes("unknown broker id")))
                }
                _ => {
                    return result
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(str_bytes("unsupported resource type")))
                }
            };
            let Some(entries) = entries else {
                return result
                    .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                    .with_error_message(Some(str_bytes("This server does not host this topic.")));
            };
            let configs = entries
                .into_iter()
                .filter(|(k, _, _)| keys.as_ref().is_none_or(|keys| keys.contains(k)))
                .map(|(k, v, source)| {
                    DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(&k))
                        .with_value(Some(str_bytes(&v)))
                        .with_read_only(source != SOURCE_TOPIC)
                        .with_config_source(source)
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    respond(
        &header,
        &DescribeConfigsResponse::default().with_results(results),
    )
}

fn topic_configs(shard: &Shard, name: &str) -> Option<Vec<(String, String, i8)>> {
    let image = shard.image();
    let topic = image.topics.get(name)?;
    let c = &shard.config;
    let defaults = [
        ("max.message.bytes", c.message_max_bytes.to_string()),
        ("message.timestamp.type", "CreateTime".to_string()),
        ("segment.bytes", c.log_segment_bytes.to_string()),
        ("segment.ms", c.log_roll_ms.to_string()),
        ("cleanup.policy", "delete".to_string()),
        // Nothing is deleted by time or size yet: -1 ("no limit") is the truthful value.
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
    ];
    debug_assert!(defaults
        .iter()
        .all(|(k, _)| crate::topic_config::supported_keys().any(|s| s == *k)));
    Some(
        defaults
            .into_iter()
            .map(|(k, default)| match topic.configs.get(k) {
                Some(v) => (k.to_string(), v.clone(), SOURCE_TOPIC),
                None => (k.to_string(), default, SOURCE_DEFAULT),
            })
            .collect(),
    )
}
