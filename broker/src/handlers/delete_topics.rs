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
    let mut refusals: Vec<Option<i16>> = wanted
        .iter()
        .map(|(name, _)| {
            let denied = name.as_deref().is_some_and(|n| {
                let op = match image.topics.contains_key(n) {
                    true => AclOperation::Delete,
                    false => AclOperation::Describe,
                };
                !ctx.allowed(op, ResourceType::Topic, n)
            });
            denied.then_some(code::TOPIC_AUTHORIZATION_FAILED)
        })
        .collect();
    // controller_mutation_rate: the partitions each deletion removes.
    let permits: Vec<f64> = wanted
        .iter()
        .zip(&refusals)
        .map(|((name, _), refusal)| match (refusal, name) {
            (None, Some(n)) => image.topics.get(n).map_or(0.0, |t| f64::from(t.partitions)),
            _ => 0.0,
        })
        .collect();
    let client_id = header.client_id.as_deref().unwrap_or("");
    let (over, throttle_ms) = ctx
        .take_mutations(client_id, &permits, header.api_version >= 5)
        .await;
    ctx.throttle(throttle_ms);
    for (refusal, over) in refusals.iter_mut().zip(over) {
        if over && refusal.is_none() {
            *refusal = Some(code::THROTTLING_QUOTA_EXCEEDED);
        }
    }
    let denied = refusals;
    let names: Vec<String> = wanted
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| denied.is_none())
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
                Some(name) if denied.is_some() => {
                    r.name = Some(TopicName(str_bytes(&name)));
                    r.error_code = denied.unwrap_or_default();
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
        &DeleteTopicsResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_ms.min(i32::MAX as u64) as i32),
    )
}
