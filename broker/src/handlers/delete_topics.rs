//! DeleteTopics (key 20), by name (v1-5) or by name or id (v6).

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::controller::DeleteTopics;
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DeleteTopicsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let image = ctx.image();
    // (name to delete, id asked for): a v6 entry naming an unknown id resolves to no name.
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if header.api_version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => (Some(n.0.to_string()), t.topic_id),
                None => (
                    image.topic_by_id(&t.topic_id).map(|t| t.name.clone()),
                    t.topic_id,
                ),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    // Kafka's rule: a topic that exists needs DELETE; one that does not needs DESCRIBE to be
    // told so (UNKNOWN_TOPIC_OR_PARTITION), else the answer does not reveal it.
    let denied: Vec<bool> = wanted
        .iter()
        .map(|(name, _)| {
            name.as_deref().is_some_and(|n| {
                let op = match image.topics.contains_key(n) {
                    true => AclOperation::Delete,
                    false => AclOperation::Describe,
                };
                !ctx.allowed(op, ResourceType::Topic, n)
            })
        })
        .collect();
    let names: Vec<String> = wanted
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| !**denied)
        .filter_map(|((n, _), _)| n.clone())
        .collect();
    let outcomes = ctx
        .call(ctx.controller_shard(), DeleteTopics(names))
        .await
        .unwrap_or_default();
    let mut outcomes = outcomes.into_iter();
    let responses = wanted
        .into_iter()
        .zip(denied)
        .map(|((name, id), denied)| {
            let mut r = DeletableTopicResult::default().with_topic_id(id);
            match name {
                None => r.error_code = code::UNKNOWN_TOPIC_ID,
                Some(name) if denied => {
                    r.name = Some(TopicName(str_bytes(&name)));
                    r.error_code = code::TOPIC_AUTHORIZATION_FAILED;
                }
                Some(name) => {
                    r.name = Some(TopicName(str_bytes(&name)));
                    match outcomes.next() {
                        Some(o) => {
                            r.error_code = o.error_code;
                            if header.api_version >= 5 {
                                r.error_message = o.error_message.as_deref().map(str_bytes);
                            }
                            if !o.id.is_nil() && header.api_version >= 6 {
                                r.topic_id = o.id;
                            }
                        }
                        None => r.error_code = code::LEADER_NOT_AVAILABLE,
                    }
                }
            }
            r
        })
        .collect();
    respond(
        &header,
        &DeleteTopicsResponse::default().with_responses(responses),
    )
}
