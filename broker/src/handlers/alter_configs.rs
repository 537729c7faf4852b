//! AlterConfigs (key 33): replaces a topic's or a group's whole set of config overrides (keys
//! not named return to their defaults), through the metadata writer, so the change is
//! persisted and applied on every shard before the answer. The shared resource handling
//! serves IncrementalAlterConfigs too.

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::controller::{AlterConfigs, ConfigChange, ConfigOps, ConfigResource};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: AlterConfigsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let resources = req
        .resources
        .iter()
        .map(|r| {
            let configs = r
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            (
                r.resource_type,
                r.resource_name.to_string(),
                ConfigOps::Replace(configs),
            )
        })
        .collect();
    let outcomes = alter(&ctx, resources, req.validate_only).await;
    let responses = req
        .resources
        .iter()
        .zip(outcomes)
        .map(|(r, (error_code, message))| {
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(error_code)
                .with_error_message(message.as_deref().map(str_bytes))
        })
        .collect();
    respond(
        &header,
        &AlterConfigsResponse::default().with_responses(responses),
    )
}

/// Applies config changes to resources and returns one (error code, message) per resource,
/// in order. Topic and group changes go to the metadata writer in one request; the broker's
/// own settings are static (server.properties), so changing them is refused.
pub async fn alter(
    ctx: &Context,
    resources: Vec<(i8, String, ConfigOps)>,
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let mut out: Vec<(i16, Option<String>)> = Vec::with_capacity(resources.len());
    let mut changes = Vec::new();
    let mut slots = Vec::new();
    for (kind, name, ops) in resources {
        let op = AclOperation::AlterConfigs;
        if let Some(refusal) = super::describe_configs::config_denied(ctx, kind, &name, op) {
            out.push((refusal, None));
            continue;
        }
        let resource = match kind {
            RESOURCE_TOPIC => Some(ConfigResource::Topic(name)),
            RESOURCE_GROUP => Some(ConfigResource::Group(name)),
            _ => None,
        };
        if let Some(resource) = resource {
            slots.push(out.len());
            out.push((code::NONE, None));
            changes.push(ConfigChange { resource, ops });
            continue;
        }
        match kind {
            RESOURCE_BROKER => out.push((
                code::INVALID_REQUEST,
                Some(
                    "broker configs are static on this broker: set them in server.properties \
                     and restart"
                        .into(),
                ),
            )),
            other => out.push((
                code::INVALID_REQUEST,
                Some(format!("unsupported resource type {other}")),
            )),
        }
    }
    if changes.is_empty() {
        return out;
    }
    let request = AlterConfigs {
        changes,
        validate_only,
    };
    let results = ctx
        .call(ctx.controller_shard(), request)
        .await
        .unwrap_or_default();
    for (i, slot) in slots.into_iter().enumerate() {
        out[slot] = results.get(i).cloned().unwrap_or((
            code::UNKNOWN_SERVER_ERROR,
            Some("the metadata writer did not answer".into()),
        ));
    }
    out
}
