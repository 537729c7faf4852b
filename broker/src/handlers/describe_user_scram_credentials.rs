//! DescribeUserScramCredentials (key 50), version 0: which SCRAM mechanisms each user has a
//! credential for, and their iterations (never the salt or keys), from the metadata image.
//! Null or empty `users`: every user with a credential. A named user without one is
//! RESOURCE_NOT_FOUND, a user named twice DUPLICATE_RESOURCE, with Kafka's messages.

use super::{decode, respond, str_bytes, Context, Response};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult as UserResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeUserScramCredentialsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    if !ctx.allowed_on_cluster(AclOperation::Describe) {
        return respond(
            &header,
            &DescribeUserScramCredentialsResponse::default()
                .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED),
        );
    }
    let image = ctx.image();
    let mut stored: BTreeMap<&str, Vec<CredentialInfo>> = BTreeMap::new();
    for (user, mechanism, c) in image.cluster.scram_credentials() {
        stored.entry(user).or_default().push(
            CredentialInfo::default()
                .with_mechanism(mechanism)
                .with_iterations(c.iterations),
        );
    }
    let named: Vec<String> = req
        .users
        .unwrap_or_default()
        .iter()
        .map(|u| u.name.to_string())
        .collect();
    let results = if named.is_empty() {
        stored
            .into_iter()
            .map(|(user, infos)| {
                UserResult::default()
                    .with_user(str_bytes(user))
                    .with_credential_infos(infos)
            })
            .collect()
    } else {
        named
            .iter()
            .map(|user| {
                let result = UserResult::default().with_user(str_bytes(user));
                if named.iter().filter(|u| *u == user).count() > 1 {
                    let why = format!(
                        "Cannot describe SCRAM credentials for the same user twice in a single \
                         request: {user}"
                    );
                    return result
                        .with_error_code(code::DUPLICATE_RESOURCE)
                        .with_error_message(Some(str_bytes(&why)));
                }
                match stored.get(user.as_str()) {
                    Some(infos) => result.with_credential_infos(infos.clone()),
                    None => {
                        let why = format!(
                            "Attempt to describe a user credential that does not exist: {user}"
                        );
                        result
                            .with_error_code(code::RESOURCE_NOT_FOUND)
                            .with_error_message(Some(str_bytes(&why)))
                    }
                }
            })
            .collect()
    };
    respond(
        &header,
        &DescribeUserScramCredentialsResponse::default().with_results(results),
    )
}
