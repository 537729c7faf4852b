//! CreateAcls (key 30), versions 1-3: stores ACL bindings in the cluster metadata through the
//! metadata writer ([`crate::controller::acls`]); one result per creation, in order. Needs
//! ALTER on the cluster; without an authorizer every creation is SECURITY_DISABLED, as Kafka
//! answers. On a broker of a cluster the request is forwarded to the active controller.

use super::acl_codes::{binding_of_creation, cluster_denied, NO_AUTHORIZER};
use super::{decode, respond, str_bytes, Context, Response};
use crate::controller::acls::CreateAcls;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: CreateAclsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let refuse = |error: i16, message: &str| {
        let result = AclCreationResult::default()
            .with_error_code(error)
            .with_error_message(Some(str_bytes(message)));
        respond(
            &header,
            &CreateAclsResponse::default().with_results(vec![result; req.creations.len()]),
        )
    };
    if ctx.authorizer().is_none() {
        return refuse(code::SECURITY_DISABLED, NO_AUTHORIZER);
    }
    if !ctx.allowed_on_cluster(AclOperation::Alter) {
        return refuse(code::CLUSTER_AUTHORIZATION_FAILED, &cluster_denied(&ctx));
    }
    let bindings = req.creations.iter().map(binding_of_creation).collect();
    let outcomes = ctx
        .call(ctx.controller_shard(), CreateAcls { bindings })
        .await
        .unwrap_or_default();
    let results = (0..req.creations.len())
        .map(|i| {
            let (error, message) = outcomes.get(i).cloned().unwrap_or((
                code::UNKNOWN_SERVER_ERROR,
                Some("the metadata writer did not answer".into()),
            ));
            AclCreationResult::default()
                .with_error_code(error)
                .with_error_message(message.as_deref().map(str_bytes))
        })
        .collect();
    respond(
        &header,
        &CreateAclsResponse::default().with_results(results),
    )
}
