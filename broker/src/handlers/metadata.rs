//! Metadata (key 3): brokers (this node), topics with their partitions, auto-creation.
//!
//! A topic asked for by name that does not exist is created when `auto.create.topics.enable`
//! is on and the request allows it (v4+; always before v4), with `num.partitions`. Creation is
//! synchronous, so the answer already carries the new partitions.

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::controller::{CreateTopics, NewTopic};
use crate::errors::code;
use crate::metadata::{valid_topic_name, TopicMeta};
use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use millrace_security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: MetadataRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let version = header.api_version;
    // v0: an empty list means every topic; v1+: null means every topic.
    let requested: Option<Vec<_>> = match req.topics {
        Some(t) if version == 0 && t.is_empty() => None,
        other => other,
    };
    let allow_create =
        ctx.config().auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let with_ops = version >= 8 && req.include_topic_authorized_operations;
    let mut topics = Vec::new();
    match requested {
        // Every topic the principal may describe; the others are left out without a word.
        None => {
            for t in ctx.image().topics.values() {
                if ctx.allowed_quietly(AclOperation::Describe, ResourceType::Topic, &t.name) {
                    topics.push(topic_entry(&ctx, t, with_ops));
                }
            }
        }
        Some(list) => {
            for wanted in list {
                let image = ctx.image();
                // A topic id, when given, wins over the name, as in Kafka: the Java client asks
                // for the topics of a KIP-848 assignment by id with the name left at its
                // default, "" (librdkafka sends null).
                let by_id = !wanted.topic_id.is_nil();
                let found = match &wanted.name {
                    Some(name) if !by_id => image.topics.get(name.0.as_str()).cloned(),
                    _ => image.topic_by_id(&wanted.topic_id).cloned(),
                };
                let describable =
                    |name: &str| ctx.allowed(AclOperation::Describe, ResourceType::Topic, name);
                let entry = match (found, wanted.name) {
                    // Kafka does not tell whether a topic the principal may not describe
                    // exists: the same refusal either way.
                    (Some(t), _) if !describable(&t.name) => denied_topic(&t.name, by_id),
                    (None, Some(name)) if !by_id && !describable(&name.0) => {
                        denied_topic(&name.0, false)
                    }
                    (Some(t), _) => topic_entry(&ctx, &t, with_ops),
                    (None, Some(name)) if !by_id => missing_topic(&ctx, name, allow_create).await,
                    (None, _) => MetadataResponseTopic::default()
                        .with_error_code(code::UNKNOWN_TOPIC_ID)
                        .with_topic_id(wanted.topic_id),
                };
                topics.push(entry);
            }
        }
    }
    let c = ctx.config();
    let brokers = ctx
        .brokers()
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(
                    (version >= 1)
                        .then_some(b.rack.as_deref().map(str_bytes))
                        .flatten(),
                )
        })
        .collect();
    let cluster_id = (version >= 2).then(|| str_bytes(&ctx.image().cluster_id));
    let controller = if version >= 1 { c.node_id } else { -1 };
    let topics = topics
        .into_iter()
        .map(|t| for_version(t, version))
        .collect();
    let resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(cluster_id)
        .with_controller_id(BrokerId(controller))
        .with_topics(topics)
        .with_cluster_authorized_operations(
            if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
                ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
            } else {
                i32::MIN
            },
        );
    respond(&header, &resp)
}

/// A topic the principal may not describe (or, asked by id, not see): TOPIC_AUTHORIZATION_FAILED
/// with the name it was asked by, or none when asked by id.
fn denied_topic(name: &str, by_id: bool) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
        .with_name((!by_id).then(|| TopicName(str_bytes(name))))
}

async fn missing_topic(
    ctx: &Context,
    name: TopicName,
    allow_create: bool,
) -> MetadataResponseTopic {
    let entry = MetadataResponseTopic::default().with_name(Some(name.clone()));
    if valid_topic_name(&name.0).is_err() {
        return entry.with_error_code(code::INVALID_TOPIC_EXCEPTION);
    }
    if !allow_create {
        return entry.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    // Auto-creation needs CREATE on the cluster or on the topic, as an explicit CreateTopics.
    if !ctx.allowed_quietly(AclOperation::Create, ResourceType::Cluster, CLUSTER_NAME)
        && !ctx.allowed(AclOperation::Create, ResourceType::Topic, &name.0)
    {
        return entry.with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
    }
    let new = NewTopic {
        name: name.0.to_string(),
        partitions: -1,
        replication_factor: -1,
        manual_assignment: false,
        configs: Vec::new(),
    };
    let request = CreateTopics {
        topics: vec![new],
        validate_only: false,
    };
    match ctx.call(ctx.controller_shard(), request).await {
        // Created, or created concurrently by another request: either way it exists now.
        Ok(o)
            if o.first().is_some_and(|o| {
                o.error_code == code::NONE || o.error_code == code::TOPIC_ALREADY_EXISTS
            }) =>
        {
            match ctx.image().topics.get(name.0.as_str()) {
                Some(t) => topic_entry(ctx, t, false),
                None => entry.with_error_code(code::LEADER_NOT_AVAILABLE),
            }
        }
        Ok(o) => entry.with_error_code(
            o.first()
                .map_or(code::UNKNOWN_SERVER_ERROR, |o| o.error_code),
        ),
        Err(_) => entry.with_error_code(code::LEADER_NOT_AVAILABLE),
    }
}

/// Clears fields the response version does not carry (the encoder refuses them).
fn for_version(mut t: MetadataResponseTopic, version: i16) -> MetadataResponseTopic {
    if version < 10 {
        t.topic_id = uuid::Uuid::nil();
    }
    if version < 1 {
        t.is_internal = false;
    }
    if version < 7 {
        for p in t.partitions.iter_mut() {
            p.leader_epoch = -1;
        }
    }
    if version < 5 {
        for p in t.partitions.iter_mut() {
            p.offline_replicas.clear();
        }
    }
    t
}

fn topic_entry(ctx: &Context, t: &TopicMeta, with_ops: bool) -> MetadataResponseTopic {
    let image = ctx.image();
    let brokers = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = (0..t.partitions)
        .map(|p| {
            let entry = MetadataResponsePartition::default().with_partition_index(p);
            let Some(state) = image.cluster.partition(&t.topic_id, p) else {
                return entry
                    .with_error_code(code::LEADER_NOT_AVAILABLE)
                    .with_leader_id(BrokerId(-1));
            };
            // A partition without a leader is reported as Kafka does: LEADER_NOT_AVAILABLE,
            // leader -1, its replicas and ISR as recorded.
            let error = if state.leader < 0 {
                code::LEADER_NOT_AVAILABLE
            } else {
                code::NONE
            };
            // Offline: replicas on brokers that are not live (fenced or unregistered), as
            // Kafka's metadata cache reports them; none before any broker registered (a
            // node's first start, when it answers as the only broker).
            let registered = image.cluster.brokers().next().is_some();
            let offline: Vec<i32> = state
                .replicas
                .iter()
                .copied()
                .filter(|&r| registered && !image.cluster.is_active_broker(r))
                .collect();
            entry
                .with_error_code(error)
                .with_leader_id(BrokerId(state.leader))
                .with_leader_epoch(state.leader_epoch)
                .with_replica_nodes(brokers(&state.replicas))
                .with_isr_nodes(brokers(&state.isr))
                .with_offline_replicas(brokers(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_is_internal(crate::metadata::is_internal(&t.name))
        .with_topic_id(t.id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(match with_ops {
            true => ctx.authorized_operations(ResourceType::Topic, &t.name),
            false => i32::MIN,
        })
}
