//! AlterUserScramCredentials (key 51), version 0: what `kafka-configs.sh --alter
//! --add-config 'SCRAM-SHA-256=[password=...]' --entity-type users` and the admin clients
//! send (KIP-554: the client salts, the broker stores salt, StoredKey, ServerKey and
//! iterations, never the password). Written by the metadata writer
//! ([`crate::controller::scram`]); one result per user, in the order the request first
//! names them. On a broker of a cluster the request is forwarded to the active controller.

use super::{decode, respond, str_bytes, Context, Response};
use crate::controller::scram::{AlterScram, ScramChange};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult as UserResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: AlterUserScramCredentialsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let mut users: Vec<(String, Vec<ScramChange>)> = Vec::new();
    let mut add = |user: &str, change: ScramChange| match users.iter_mut().find(|u| u.0 == user) {
        Some((_, changes)) => changes.push(change),
        None => users.push((user.to_string(), vec![change])),
    };
    for d in &req.deletions {
        add(
            d.name.as_str(),
            ScramChange::Delete {
                mechanism: d.mechanism,
            },
        );
    }
    for u in &req.upsertions {
        add(
            u.name.as_str(),
            ScramChange::Upsert {
                mechanism: u.mechanism,
                iterations: u.iterations,
                salt: u.salt.to_vec(),
                salted_password: u.salted_password.to_vec(),
            },
        );
    }
    let names: Vec<String> = users.iter().map(|u| u.0.clone()).collect();
    let outcomes = if ctx.allowed_on_cluster(AclOperation::Alter) {
        ctx.call(ctx.controller_shard(), AlterScram { users })
            .await
            .unwrap_or_default()
    } else {
        vec![(code::CLUSTER_AUTHORIZATION_FAILED, None); names.len()]
    };
    let results = names
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let (error, message) = outcomes.get(i).cloned().unwrap_or((
                code::UNKNOWN_SERVER_ERROR,
                Some("the metadata writer did not answer".into()),
            ));
            UserResult::default()
                .with_user(str_bytes(user))
                .with_error_code(error)
                .with_error_message(message.as_deref().map(str_bytes))
        })
        .collect();
    respond(
        &header,
        &AlterUserScramCredentialsResponse::default().with_results(results),
    )
}
