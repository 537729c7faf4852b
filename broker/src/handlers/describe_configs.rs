//! DescribeConfigs (key 32): every topic config with its effective value and where it comes
//! from (the topic, a server.properties key, or the built-in default), with synonyms,
//! types and documentation when asked; likewise every group config of a group (the group's
//! override, the broker key that is its synonym, or Kafka's default; any group id, existing
//! or not); and the broker's own settings.

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use millrace_security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;

/// Resource types (shared with the AlterConfigs handlers).
pub const RESOURCE_TOPIC: i8 = 2;
/// The broker resource.
pub const RESOURCE_BROKER: i8 = 4;
/// A consumer, share or streams group (Kafka's ConfigResource.Type.GROUP).
pub const RESOURCE_GROUP: i8 = 32;
/// Config sources as Kafka numbers them.
pub const SOURCE_TOPIC: i8 = 1;
/// A group's own setting (DYNAMIC_GROUP_CONFIG).
const SOURCE_GROUP: i8 = 8;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// DescribeConfigs' type for a string (broker settings are reported as strings).
const TYPE_STRING: i8 = 2;
/// Kafka's PASSWORD config type.
const TYPE_PASSWORD: i8 = 9;

/// One described config.
pub struct Entry {
    /// Name.
    pub name: String,
    /// Effective value.
    pub value: String,
    /// Where it comes from.
    pub source: i8,
    /// (name, value, source), most specific first.
    pub synonyms: Vec<(String, String, i8)>,
    /// Type code.
    pub kind: i8,
    /// One line of documentation.
    pub doc: &'static str,
    /// A secret (Kafka's PASSWORD type): described with no value, as Kafka does.
    pub sensitive: bool,
}

/// Every topic config of a topic with `overrides`.
pub fn topic_entries(ctx: &Context, overrides: &BTreeMap<String, String>) -> Vec<Entry> {
    let defaults = &ctx.config().topic_defaults;
    crate::topic_config::DEFS
        .iter()
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push((d.name.to_string(), v.clone(), SOURCE_TOPIC));
            }
            let (broker_value, set_by) = defaults.get(d.name);
            if let Some(key) = set_by {
                synonyms.push((
                    key.to_string(),
                    broker_value.to_string(),
                    SOURCE_STATIC_BROKER,
                ));
            }
            synonyms.push((
                d.broker_key.to_string(),
                d.default.to_string(),
                SOURCE_DEFAULT,
            ));
            from_synonyms(d.name, synonyms, d.kind as i8, d.doc)
        })
        .collect()
}

/// An entry whose value and source are its first (most specific) synonym's.
fn from_synonyms(
    name: &str,
    synonyms: Vec<(String, String, i8)>,
    kind: i8,
    doc: &'static str,
) -> Entry {
    let (value, source) = (synonyms[0].1.clone(), synonyms[0].2);
    Entry {
        name: name.to_string(),
        value,
        source,
        synonyms,
        kind,
        doc,
        sensitive: false,
    }
}

/// Every described group config of a group with `overrides` (Kafka's internal group keys are
/// accepted by AlterConfigs but not listed, as on Kafka).
pub fn group_entries(ctx: &Context, overrides: Option<&BTreeMap<String, String>>) -> Vec<Entry> {
    crate::group_config::DEFS
        .iter()
        .filter(|d| !d.internal)
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.and_then(|o| o.get(d.name)) {
                synonyms.push((d.name.to_string(), v.clone(), SOURCE_GROUP));
            }
            let (broker_value, set) = crate::group_config::broker_value(d, ctx.config());
            let synonym = d.broker_key.unwrap_or(d.name).to_string();
            if set {
                synonyms.push((synonym.clone(), broker_value, SOURCE_STATIC_BROKER));
            }
            synonyms.push((synonym, d.default.to_string(), SOURCE_DEFAULT));
            from_synonyms(d.name, synonyms, d.kind as i8, d.doc)
        })
        .collect()
}

/// The refusal for a config resource the principal may not `op` (DESCRIBE_CONFIGS or
/// ALTER_CONFIGS): a topic's and a group's on themselves, a broker's on the cluster, with
/// Kafka's error codes.
pub fn config_denied(
    ctx: &Context,
    resource_type: i8,
    name: &str,
    op: AclOperation,
) -> Option<i16> {
    let (kind, name, refusal) = match resource_type {
        RESOURCE_TOPIC => (ResourceType::Topic, name, code::TOPIC_AUTHORIZATION_FAILED),
        RESOURCE_GROUP => (ResourceType::Group, name, code::GROUP_AUTHORIZATION_FAILED),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => (
            ResourceType::Cluster,
            CLUSTER_NAME,
            code::CLUSTER_AUTHORIZATION_FAILED,
        ),
        _ => return None,
    };
    (!ctx.allowed(op, kind, name)).then_some(refusal)
}

/// Kafka's ConfigResource.Type.BROKER_LOGGER.
const RESOURCE_BROKER_LOGGER: i8 = 8;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeConfigsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let version = header.api_version;
    let image = ctx.image();
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
            let op = AclOperation::DescribeConfigs;
            if let Some(refusal) = config_denied(&ctx, r.resource_type, &r.resource_name, op) {
                return result.with_error_code(refusal);
            }
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match image.topics.get(r.resource_name.as_str()) {
                    Some(t) => topic_entries(&ctx, &t.configs),
                    None => {
                        return result
                            .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(str_bytes(
                                "This server does not host this topic.",
                            )))
                    }
                },
                RESOURCE_BROKER
                    if r.resource_name.is_empty()
                        || r.resource_name.parse() == Ok(ctx.config().node_id) =>
                {
                    broker_entries(&ctx)
                }
                RESOURCE_BROKER => {
                    return result
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(str_bytes("unknown broker id")))
                }
                RESOURCE_GROUP if r.resource_name.is_empty() => {
                    return result
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(str_bytes("Group name must not be empty")))
                }
                RESOURCE_GROUP => {
                    group_entries(&ctx, image.cluster.group_configs(&r.resource_name))
                }
                _ => {
                    return result
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(str_bytes("unsupported resource type")))
                }
            };
            let read_only = r.resource_type == RESOURCE_BROKER;
            let configs = entries
                .into_iter()
                .filter(|e| keys.as_ref().is_none_or(|keys| keys.contains(&e.name)))
                .map(|e| {
                    let value = (!e.sensitive).then(|| str_bytes(&e.value));
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(&e.name))
                        .with_value(value.clone())
                        .with_read_only(read_only)
                        .with_is_sensitive(e.sensitive)
                        .with_config_source(e.source);
                    if req.include_synonyms {
                        c.synonyms = e
                            .synonyms
                            .iter()
                            .map(|(n, v, s)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(str_bytes(n))
                                    .with_value((!e.sensitive).then(|| str_bytes(v)))
                                    .with_source(*s)
                            })
                            .collect();
                    }
                    if version >= 3 {
                        c.config_type = e.kind;
                        if req.include_documentation {
                            c.documentation = Some(str_bytes(e.doc));
                        }
                    }
                    c
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

fn broker_entries(ctx: &Context) -> Vec<Entry> {
    ctx.config()
        .describe()
        .into_iter()
        .map(|(k, v)| Entry {
            name: k.to_string(),
            synonyms: vec![(k.to_string(), v.clone(), SOURCE_STATIC_BROKER)],
            value: v,
            source: SOURCE_STATIC_BROKER,
            kind: TYPE_STRING,
            doc: "",
            sensitive: false,
        })
        .chain(
            ctx.config()
                .security_keys
                .describe()
                .into_iter()
                .map(|(name, value, sensitive)| Entry {
                    synonyms: vec![(
                        name.clone(),
                        value.clone().unwrap_or_default(),
                        SOURCE_STATIC_BROKER,
                    )],
                    name,
                    value: value.unwrap_or_default(),
                    source: SOURCE_STATIC_BROKER,
                    kind: if sensitive {
                        TYPE_PASSWORD
                    } else {
                        TYPE_STRING
                    },
                    doc: "",
                    sensitive,
                }),
        )
        .collect()
}
