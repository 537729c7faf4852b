//! DescribeAcls (key 29), versions 1-3: the stored bindings a filter matches, from this
//! broker's metadata image, grouped by resource pattern. Needs DESCRIBE on the cluster;
//! without an authorizer the answer is SECURITY_DISABLED, and a filter with UNKNOWN parts is
//! INVALID_REQUEST, as Kafka answers.

use super::acl_codes::{cluster_denied, filter_of};
use super::{decode, respond, str_bytes, Context, Response};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use millrace_security::acl::{AclOperation, ResourcePattern};
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeAclsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let refuse = |error: i16, message: &str| {
        respond(
            &header,
            &DescribeAclsResponse::default()
                .with_error_code(error)
                .with_error_message(Some(str_bytes(message))),
        )
    };
    let Some(authorizer) = ctx.authorizer() else {
        return refuse(
            code::SECURITY_DISABLED,
            "No Authorizer is configured on the broker",
        );
    };
    if !ctx.allowed_on_cluster(AclOperation::Describe) {
        return refuse(code::CLUSTER_AUTHORIZATION_FAILED, &cluster_denied(&ctx));
    }
    let filter = filter_of(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    );
    if filter.is_unknown() {
        return refuse(
            code::INVALID_REQUEST,
            "The filter contained UNKNOWN elements",
        );
    }
    let mut by_pattern: BTreeMap<&ResourcePattern, Vec<AclDescription>> = BTreeMap::new();
    for b in authorizer.acls(&filter) {
        by_pattern.entry(&b.pattern).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(&b.entry.principal))
                .with_host(str_bytes(&b.entry.host))
                .with_operation(b.entry.operation.code())
                .with_permission_type(b.entry.permission.code()),
        );
    }
    let resources = by_pattern
        .into_iter()
        .map(|(pattern, acls)| {
            DescribeAclsResource::default()
                .with_resource_type(pattern.resource_type.code())
                .with_resource_name(str_bytes(&pattern.name))
                .with_pattern_type(pattern.pattern_type.code())
                .with_acls(acls)
        })
        .collect();
    respond(
        &header,
        &DescribeAclsResponse::default().with_resources(resources),
    )
}
