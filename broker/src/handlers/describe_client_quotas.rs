//! DescribeClientQuotas (key 48), versions 0-1: the stored client quotas matching a filter
//! (components matched exactly, as the default, or as present; `strict` for no other
//! components), from this broker's metadata image, with Kafka's filter refusals. Needs
//! DESCRIBE_CONFIGS on the cluster.

use super::{decode, respond, str_bytes, Context, Response};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use millrace_security::acl::AclOperation;
use millrace_security::quota::{MatchType, QuotaFilterComponent};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeClientQuotasRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let refuse = |error: i16, message: Option<String>| {
        respond(
            &header,
            &DescribeClientQuotasResponse::default()
                .with_error_code(error)
                .with_error_message(message.as_deref().map(str_bytes))
                .with_entries(None),
        )
    };
    if !ctx.allowed_on_cluster(AclOperation::DescribeConfigs) {
        return refuse(code::CLUSTER_AUTHORIZATION_FAILED, None);
    }
    let mut filter = Vec::with_capacity(req.components.len());
    for c in &req.components {
        match MatchType::from_i8(c.match_type) {
            Ok(match_type) => filter.push(QuotaFilterComponent {
                entity_type: c.entity_type.to_string(),
                match_type,
                name: c._match.as_ref().map(|m| m.to_string()),
            }),
            Err(e) => return refuse(e.error_code(), Some(e.to_string())),
        }
    }
    let described = match ctx.quota_configs().describe(&filter, req.strict) {
        Ok(d) => d,
        Err(e) => return refuse(e.error_code(), Some(e.to_string())),
    };
    let entries = described
        .into_iter()
        .map(|(entity, values)| {
            let entity = entity
                .components()
                .into_iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(str_bytes(t))
                        .with_entity_name(n.as_wire().map(str_bytes))
                })
                .collect();
            let values = values
                .into_iter()
                .map(|(k, v)| ValueData::default().with_key(str_bytes(&k)).with_value(v))
                .collect();
            EntryData::default().with_entity(entity).with_values(values)
        })
        .collect();
    respond(
        &header,
        &DescribeClientQuotasResponse::default().with_entries(Some(entries)),
    )
}
