//! AlterClientQuotas (key 49), versions 0-1: sets or removes client quotas (per user, client
//! id, both, or IP, named or default) in the cluster metadata through the metadata writer
//! ([`crate::controller::quotas`]); one result per entry, naming its entity as sent. Needs
//! ALTER_CONFIGS on the cluster. On a broker of a cluster the request is forwarded to the
//! active controller.

use super::{decode, respond, str_bytes, Context, Response};
use crate::controller::quotas::AlterQuotas;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: AlterClientQuotasRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let entries = req
        .entries
        .iter()
        .map(|e| {
            let entity = e
                .entity
                .iter()
                .map(|p| {
                    (
                        p.entity_type.to_string(),
                        p.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            let ops = e
                .ops
                .iter()
                .map(|o| (o.key.to_string(), (!o.remove).then_some(o.value)))
                .collect();
            (entity, ops)
        })
        .collect();
    let outcomes = if ctx.allowed_on_cluster(AclOperation::AlterConfigs) {
        let call = AlterQuotas {
            entries,
            validate_only: req.validate_only,
        };
        ctx.call(ctx.controller_shard(), call)
            .await
            .unwrap_or_default()
    } else {
        vec![(code::CLUSTER_AUTHORIZATION_FAILED, None); req.entries.len()]
    };
    let results = req
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (error, message) = outcomes.get(i).cloned().unwrap_or((
                code::UNKNOWN_SERVER_ERROR,
                Some("the metadata writer did not answer".into()),
            ));
            let entity = e
                .entity
                .iter()
                .map(|p| {
                    EntityData::default()
                        .with_entity_type(p.entity_type.clone())
                        .with_entity_name(p.entity_name.clone())
                })
                .collect();
            EntryData::default()
                .with_error_code(error)
                .with_error_message(message.as_deref().map(str_bytes))
                .with_entity(entity)
        })
        .collect();
    respond(
        &header,
        &AlterClientQuotasResponse::default().with_entries(results),
    )
}
