//! DeleteRecords (key 21): moves each partition's log start offset up to the given offset
//! (-1: the high watermark) on its owning shard. The new start is durable before the answer;
//! whole segments below it are deleted. Internal topics are refused, as Kafka does.

use super::{decode, respond};
use crate::connection::Response;
use crate::errors::code;
use crate::node::Shard;
use crate::work::{scatter, DeleteRecordsItem, ListOffsetsResult, ShardReply, ShardRequest};
use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;
use std::rc::Rc;

pub async fn handle(shard: Rc<Shard>, header: RequestHeader, body: Bytes) -> Response {
    let req: DeleteRecordsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let image = shard.image();
    let mut results: Vec<ListOffsetsResult> = Vec::new();
    let mut per_shard: BTreeMap<usize, Vec<DeleteRecordsItem>> = BTreeMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            let slot = results.len();
            let mut r = ListOffsetsResult {
                slot,
                error_code: code::UNKNOWN_TOPIC_OR_PARTITION,
                timestamp: -1,
                offset: -1,
            };
            let owner = image
                .topics
                .get(t.name.0.as_str())
                .and_then(|m| m.shards.get(p.partition_index as usize).copied());
            if crate::metadata::is_internal(&t.name.0) {
                r.error_code = code::INVALID_TOPIC_EXCEPTION;
            } else if let Some(owner) = owner {
                per_shard.entry(owner).or_default().push(DeleteRecordsItem {
                    slot,
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.offset,
                });
            }
            results.push(r);
        }
    }
    for reply in scatter(&shard, per_shard, ShardRequest::DeleteRecords).await {
        if let ShardReply::DeleteRecords(rs) = reply {
            for r in rs {
                let slot = r.slot;
                results[slot] = r;
            }
        }
    }
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
