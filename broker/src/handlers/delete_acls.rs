//! DeleteAcls (key 31), versions 1-3: removes the stored bindings each filter matches through
//! the metadata writer ([`crate::controller::acls`]); per filter, its error or the bindings it
//! removed. Needs ALTER on the cluster; without an authorizer every filter is
//! SECURITY_DISABLED. On a broker of a cluster the request is forwarded to the active
//! controller.

use super::acl_codes::{cluster_denied, filter_of, NO_AUTHORIZER};
use super::{decode, respond, str_bytes, Context, Response};
use crate::controller::acls::DeleteAcls;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use millrace_security::acl::{AclBinding, AclOperation};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DeleteAclsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let refuse = |error: i16, message: &str| {
        let result = DeleteAclsFilterResult::default()
            .with_error_code(error)
            .with_error_message(Some(str_bytes(message)));
        respond(
            &header,
            &DeleteAclsResponse::default().with_filter_results(vec![result; req.filters.len()]),
        )
    };
    if ctx.authorizer().is_none() {
        return refuse(code::SECURITY_DISABLED, NO_AUTHORIZER);
    }
    if !ctx.allowed_on_cluster(AclOperation::Alter) {
        return refuse(code::CLUSTER_AUTHORIZATION_FAILED, &cluster_denied(&ctx));
    }
    let filters = req
        .filters
        .iter()
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let replies = ctx
        .call(ctx.controller_shard(), DeleteAcls { filters })
        .await
        .unwrap_or_default();
    let results = (0..req.filters.len())
        .map(|i| match replies.get(i) {
            Some(Ok(removed)) => DeleteAclsFilterResult::default()
                .with_matching_acls(removed.iter().map(matching).collect()),
            Some(Err((error, message))) => DeleteAclsFilterResult::default()
                .with_error_code(*error)
                .with_error_message(message.as_deref().map(str_bytes)),
            None => DeleteAclsFilterResult::default()
                .with_error_code(code::UNKNOWN_SERVER_ERROR)
                .with_error_message(Some(str_bytes("the metadata writer did not answer"))),
        })
        .collect();
    respond(
        &header,
        &DeleteAclsResponse::default().with_filter_results(results),
    )
}

fn matching(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.pattern.resource_type.code())
        .with_resource_name(str_bytes(&b.pattern.name))
        .with_pattern_type(b.pattern.pattern_type.code())
        .with_principal(str_bytes(&b.entry.principal))
        .with_host(str_bytes(&b.entry.host))
        .with_operation(b.entry.operation.code())
        .with_permission_type(b.entry.permission.code())
}
