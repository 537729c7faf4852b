//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT on a topic's config
//! overrides (APPEND/SUBTRACT only on list configs such as `cleanup.policy`); all operations
//! of a resource apply together or not at all.

use super::alter_configs::alter;
use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::controller::ConfigOps;
use bytes::Bytes;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: IncrementalAlterConfigsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let resources = req
        .resources
        .iter()
        .map(|r| {
            let ops = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect();
            (
                r.resource_type,
                r.resource_name.to_string(),
                ConfigOps::Incremental(ops),
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
        &IncrementalAlterConfigsResponse::default().with_responses(responses),
    )
}
