//! CreateTopics (key 19), through the metadata writer on shard 0.

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::controller::{CreateTopics, NewTopic};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use millrace_security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: CreateTopicsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    // CREATE on the cluster covers every topic; otherwise each needs CREATE on itself.
    let on_cluster = ctx.allowed_quietly(AclOperation::Create, ResourceType::Cluster, CLUSTER_NAME);
    let mut refusals: Vec<Option<i16>> = req
        .topics
        .iter()
        .map(|t| {
            let allowed =
                on_cluster || ctx.allowed(AclOperation::Create, ResourceType::Topic, &t.name.0);
            (!allowed).then_some(code::TOPIC_AUTHORIZATION_FAILED)
        })
        .collect();
    // controller_mutation_rate: the partitions each topic creates (a dry run takes none).
    let mut throttle_ms = 0;
    if !req.validate_only {
        let default = ctx.config().num_partitions;
        let permits: Vec<f64> = req
            .topics
            .iter()
            .zip(&refusals)
            .map(|(t, refusal)| match (refusal, t.num_partitions) {
                (Some(_), _) => 0.0,
                (None, -1) => f64::from(default),
                (None, n) => f64::from(n.max(0)),
            })
            .collect();
        let client_id = header.client_id.as_deref().unwrap_or("");
        let (over, ms) = ctx
            .take_mutations(client_id, &permits, header.api_version >= 6)
            .await;
        for (refusal, over) in refusals.iter_mut().zip(over) {
            if over && refusal.is_none() {
                *refusal = Some(code::THROTTLING_QUOTA_EXCEEDED);
            }
        }
        throttle_ms = ms;
        ctx.throttle(ms);
    }
    let denied: Vec<Option<i16>> = refusals;
    let topics: Vec<NewTopic> = req
        .topics
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| denied.is_none())
        .map(|(t, _)| NewTopic {
            name: t.name.0.to_string(),
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            manual_assignment: !t.assignments.is_empty(),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let names: Vec<String> = req.topics.iter().map(|t| t.name.0.to_string()).collect();
    let request = CreateTopics {
        topics,
        validate_only: req.validate_only,
    };
    let outcomes = ctx
        .call(ctx.controller_shard(), request)
        .await
        .unwrap_or_default();
    let version = header.api_version;
    let mut outcomes = outcomes.iter();
    let results = names
        .iter()
        .zip(denied)
        .map(|(name, denied)| {
            let mut r = CreatableTopicResult::default().with_name(TopicName(str_bytes(name)));
            if let Some(refusal) = denied {
                r.error_code = refusal;
                return r;
            }
            match outcomes.next() {
                Some(o) => {
                    r.error_code = o.error_code;
                    r.error_message = o.error_message.as_deref().map(str_bytes);
                    if version >= 7 {
                        r.topic_id = o.id;
                    }
                    if version >= 5 {
                        r.num_partitions = o.partitions;
                        r.replication_factor = o.replication_factor;
                    }
                    // Kafka shows the new topic's configs only to a principal that may
                    // DESCRIBE_CONFIGS it; others get the tagged config error instead.
                    let describable = o.error_code == code::NONE
                        && version >= 5
                        && ctx.allowed_quietly(
                            AclOperation::DescribeConfigs,
                            ResourceType::Topic,
                            name,
                        );
                    if o.error_code == code::NONE && version >= 5 && !describable {
                        r.topic_config_error_code = code::TOPIC_AUTHORIZATION_FAILED;
                    }
                    if describable {
                        let entries = super::describe_configs::topic_entries(&ctx, &o.configs);
                        r.configs = Some(
                            entries
                                .iter()
                                .map(|e| {
                                    CreatableTopicConfigs::default()
                                        .with_name(str_bytes(&e.name))
                                        .with_value(Some(str_bytes(&e.value)))
                                        .with_config_source(e.source)
                                })
                                .collect(),
                        );
                    }
                }
                None => r.error_code = code::LEADER_NOT_AVAILABLE,
            }
            r
        })
        .collect();
    respond(
        &header,
        &CreateTopicsResponse::default()
            .with_topics(results)
            .with_throttle_time_ms(throttle_ms.min(i32::MAX as u64) as i32),
    )
}
