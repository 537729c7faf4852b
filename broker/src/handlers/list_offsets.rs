//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), or the first offset
//! whose timestamp is at or after a given time (through the time index), grouped by shard.
//! With `isolation_level` 1 (read_committed, v2+) the end is the last stable offset.

use super::Context;
use super::{decode, respond, Response};
use crate::errors::{code, storage_code};
use crate::mesh::{Call, Split};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;
use std::rc::Rc;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ListOffsetsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let version = header.api_version;
    let image = ctx.image();
    let mut results: Vec<ListOffsetsResult> = Vec::new();
    let mut split: Split<ListItem> = Split::default();
    let committed = version >= 2 && req.isolation_level == 1;
    for t in &req.topics {
        let denied = !ctx.allowed(AclOperation::Describe, ResourceType::Topic, &t.name.0);
        for p in &t.partitions {
            let slot = results.len();
            if denied {
                results.push(ListOffsetsResult::error(code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            let absent = image.not_here_code(&t.name.0, p.partition_index);
            results.push(ListOffsetsResult::error(absent));
            if let Some(owner) = image.owner(&t.name.0, p.partition_index) {
                let item = (
                    t.name.0.to_string(),
                    p.partition_index,
                    (p.timestamp, committed),
                );
                split.push(owner, slot, item);
            }
        }
    }
    let unavailable = || ListOffsetsResult::error(code::LEADER_NOT_AVAILABLE);
    ctx.fan_out(
        split,
        &mut results,
        |items| ListOnOwner { items },
        unavailable,
    )
    .await;
    let mut results = results.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = results.next().expect("one result per partition");
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(r.error_code)
                        .with_timestamp(r.timestamp)
                        .with_offset(r.offset)
                        .with_leader_epoch(if version >= 4 { r.leader_epoch } else { -1 })
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(&header, &ListOffsetsResponse::default().with_topics(topics))
}

/// One partition's offset answer (also DeleteRecords' new log start, in `offset`).
#[derive(Debug, Clone)]
pub struct ListOffsetsResult {
    /// Kafka error code.
    pub error_code: i16,
    /// Timestamp found (-1 if none).
    pub timestamp: i64,
    /// Offset found (-1 if none).
    pub offset: i64,
    /// The leader epoch the offset answer was made under (-1 with no offset).
    pub leader_epoch: i32,
}

impl ListOffsetsResult {
    /// No offset, with an error code.
    pub fn error(error_code: i16) -> Self {
        ListOffsetsResult {
            error_code,
            timestamp: -1,
            offset: -1,
            leader_epoch: -1,
        }
    }
}

/// Looks offsets up in partitions the target shard owns: (topic, partition, (timestamp,
/// read_committed)) with -1 latest, -2 earliest, -3 max timestamp, or a time.
pub struct ListOnOwner {
    items: Vec<(usize, ListItem)>,
}

/// One partition to look up: (topic, partition, (timestamp, read_committed)).
type ListItem = (String, i32, (i64, bool));

impl Call<Shard> for ListOnOwner {
    type Reply = Vec<(usize, ListOffsetsResult)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let missing = || ListOffsetsResult::error(code::UNKNOWN_TOPIC_OR_PARTITION);
        shard
            .on_each_partition(
                self.items,
                missing,
                async |partition, (timestamp, committed)| {
                    if !partition.is_leader() {
                        return ListOffsetsResult::error(code::NOT_LEADER_OR_FOLLOWER);
                    }
                    match partition.list_offset(timestamp, committed).await {
                        Ok(Some((offset, timestamp))) => ListOffsetsResult {
                            error_code: code::NONE,
                            timestamp,
                            offset,
                            leader_epoch: if offset >= 0 {
                                partition.leader_epoch().0
                            } else {
                                -1
                            },
                        },
                        Ok(None) => ListOffsetsResult::error(code::INVALID_REQUEST),
                        Err(e) => ListOffsetsResult::error(storage_code(&e)),
                    }
                },
            )
            .await
    }
}
