//! DeleteRecords (key 21): moves each partition's log start offset up to the given offset
//! (-1: the high watermark) on its owning shard. The new start is durable before the answer;
//! whole segments below it are deleted. Internal topics are refused, as Kafka does.

use super::list_offsets::ListOffsetsResult;
use super::Context;
use super::{decode, respond, Response};
use crate::errors::{code, storage_code};
use crate::mesh::{Call, Split};
use crate::shard::{Partition, Shard};
use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;
use std::rc::Rc;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DeleteRecordsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let image = ctx.image();
    let mut results: Vec<ListOffsetsResult> = Vec::new();
    let mut split: Split<(String, i32, i64)> = Split::default();
    for t in &req.topics {
        let denied = !ctx.allowed(AclOperation::Delete, ResourceType::Topic, &t.name.0);
        for p in &t.partitions {
            let slot = results.len();
            let owner = image.owner(&t.name.0, p.partition_index);
            if denied {
                results.push(ListOffsetsResult::error(code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            if crate::metadata::is_internal(&t.name.0) {
                results.push(ListOffsetsResult::error(code::INVALID_TOPIC_EXCEPTION));
                continue;
            }
            let absent = image.not_here_code(&t.name.0, p.partition_index);
            results.push(ListOffsetsResult::error(absent));
            if let Some(owner) = owner {
                split.push(
                    owner,
                    slot,
                    (t.name.0.to_string(), p.partition_index, p.offset),
                );
            }
        }
    }
    let unavailable = || ListOffsetsResult::error(code::LEADER_NOT_AVAILABLE);
    ctx.fan_out(
        split,
        &mut results,
        |items| DeleteOnOwner { items },
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
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(r.offset)
                        .with_error_code(r.error_code)
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &DeleteRecordsResponse::default().with_topics(topics),
    )
}

/// Moves log start offsets of partitions the target shard owns: (topic, partition, new log
/// start offset or -1 for the high watermark).
pub struct DeleteOnOwner {
    items: Vec<(usize, (String, i32, i64))>,
}

impl Call<Shard> for DeleteOnOwner {
    type Reply = Vec<(usize, ListOffsetsResult)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let missing = || ListOffsetsResult::error(code::UNKNOWN_TOPIC_OR_PARTITION);
        shard
            .on_each_partition(self.items, missing, delete_on_leader)
            .await
    }
}

/// Moves one partition's log start, on its leader only (as Kafka: a follower's log start
/// follows the leader's).
async fn delete_on_leader(partition: &Partition, offset: i64) -> ListOffsetsResult {
    if !partition.is_leader() {
        return ListOffsetsResult::error(code::NOT_LEADER_OR_FOLLOWER);
    }
    match partition.delete_records(offset).await {
        Ok(low) => {
            tracing::info!(topic = %partition.topic(), partition = partition.index(),
            log_start_offset = low, "records deleted");
            ListOffsetsResult {
                offset: low,
                ..ListOffsetsResult::error(code::NONE)
            }
        }
        Err(e) => ListOffsetsResult::error(storage_code(&e)),
    }
}
