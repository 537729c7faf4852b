//! OffsetFetch (key 9), versions 1-9 (one group before v8, several from v8; v7+ may ask for
//! stable offsets: UNSTABLE_OFFSET_COMMIT while a transactional commit is pending; v9 carries the
//! member id and epoch, checked against a KIP-848 consumer group). A partition with
//! no committed offset answers offset -1, as Kafka does.

use super::Context;
use super::Response;
use super::{decode, group_call, respond, str_bytes};
use crate::coordinator::{CommittedOffset, FetchOffsets};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;

type Rows = Vec<(String, i32, Option<CommittedOffset>, i16)>;
/// (partition, committed offset, error code).
type PartitionRow = (i32, Option<CommittedOffset>, i16);

async fn fetch_group(
    ctx: &Context,
    group_id: &str,
    partitions: Option<Vec<(String, i32)>>,
    member: Option<(String, i32)>,
    require_stable: bool,
) -> (i16, Rows) {
    let op = FetchOffsets {
        group_id: group_id.to_string(),
        partitions: partitions.clone(),
        member,
        require_stable,
    };
    match group_call(ctx, group_id, AclOperation::Describe, op).await {
        // Kafka leaves topics the principal may not describe out of an all-topics answer,
        // and refuses them (offset -1) when asked by name.
        Ok((error, rows)) => {
            let all = partitions.is_none();
            let mut seen: BTreeMap<String, bool> = BTreeMap::new();
            let mut describable = |topic: &str| {
                *seen.entry(topic.to_string()).or_insert_with(|| {
                    let (op, kind) = (AclOperation::Describe, ResourceType::Topic);
                    match all {
                        true => ctx.allowed_quietly(op, kind, topic),
                        false => ctx.allowed(op, kind, topic),
                    }
                })
            };
            let rows = rows
                .into_iter()
                .filter_map(|(t, p, o, e)| match describable(&t) {
                    true => Some((t, p, o, e)),
                    false if all => None,
                    false => Some((t, p, None, code::TOPIC_AUTHORIZATION_FAILED)),
                })
                .collect();
            (error, rows)
        }
        Err(error) => {
            let rows = partitions
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p)| (t, p, None, error))
                .collect();
            (error, rows)
        }
    }
}

/// Groups rows by topic, keeping first-seen order.
fn by_topic(rows: Rows) -> Vec<(String, Vec<PartitionRow>)> {
    let mut order: Vec<String> = Vec::new();
    let mut map: BTreeMap<String, Vec<PartitionRow>> = BTreeMap::new();
    for (t, p, o, e) in rows {
        if !map.contains_key(&t) {
            order.push(t.clone());
        }
        map.entry(t).or_default().push((p, o, e));
    }
    order
        .into_iter()
        .map(|t| {
            let v = map.remove(&t).unwrap_or_default();
            (t, v)
        })
        .collect()
}

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: OffsetFetchRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let v = header.api_version;
    if v >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let wanted = g.topics.as_ref().map(|ts| {
                requested(
                    ts.iter()
                        .map(|t| (t.name.0.as_str(), &t.partition_indexes[..])),
                )
            });
            let member = g
                .member_id
                .as_ref()
                .filter(|_| v >= 9)
                .map(|m| (m.to_string(), g.member_epoch));
            let (error, rows) =
                fetch_group(&ctx, &g.group_id.0, wanted, member, req.require_stable).await;
            let topics = by_topic(rows)
                .into_iter()
                .map(|(t, parts)| {
                    let partitions = parts
                        .into_iter()
                        .map(|(p, o, e)| {
                            let (offset, epoch, meta) = fields(o);
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(meta)
                                .with_error_code(e)
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(str_bytes(&t)))
                        .with_partitions(partitions)
                })
                .collect();
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(g.group_id.0.clone()))
                    .with_topics(topics)
                    .with_error_code(error),
            );
        }
        return respond(&header, &OffsetFetchResponse::default().with_groups(groups));
    }
    let wanted = req.topics.as_ref().map(|ts| {
        requested(
            ts.iter()
                .map(|t| (t.name.0.as_str(), &t.partition_indexes[..])),
        )
    });
    let stable = v >= 7 && req.require_stable;
    let (error, rows) = fetch_group(&ctx, &req.group_id.0, wanted, None, stable).await;
    let topics = by_topic(rows)
        .into_iter()
        .map(|(t, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, o, e)| {
                    let (offset, epoch, meta) = fields(o);
                    let mut r = OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_metadata(meta)
                        .with_error_code(e);
                    if v >= 5 {
                        r.committed_leader_epoch = epoch;
                    }
                    r
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(&t)))
                .with_partitions(partitions)
        })
        .collect();
    let mut resp = OffsetFetchResponse::default().with_topics(topics);
    if v >= 2 {
        resp.error_code = error;
    }
    respond(&header, &resp)
}

/// The (topic, partition) pairs a request asks for, from either version's topic type.
fn requested<'a>(topics: impl Iterator<Item = (&'a str, &'a [i32])>) -> Vec<(String, i32)> {
    topics
        .flat_map(|(name, partitions)| partitions.iter().map(move |p| (name.to_string(), *p)))
        .collect()
}

fn fields(o: Option<CommittedOffset>) -> (i64, i32, Option<kafka_protocol::protocol::StrBytes>) {
    match o {
        Some(o) => (
            o.offset,
            o.leader_epoch,
            Some(str_bytes(o.metadata.as_deref().unwrap_or(""))),
        ),
        None => (-1, -1, Some(str_bytes(""))),
    }
}
