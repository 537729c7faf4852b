//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), or the first offset
//! whose timestamp is at or after a given time (through the time index), grouped by shard.

use super::{decode, respond};
use crate::connection::Response;
use crate::errors::code;
use crate::node::Shard;
use crate::work::{scatter, ListOffsetsItem, ListOffsetsResult, ShardReply, ShardRequest};
use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;
use std::rc::Rc;

pub async fn handle(shard: Rc<Shard>, header: RequestHeader, body: Bytes) -> Response {
    let req: ListOffsetsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let version = header.api_version;
    let image = shard.image();
    let mut results: Vec<ListOffsetsResult> = Vec::new();
    let mut per_shard: BTreeMap<usize, Vec<ListOffsetsItem>> = BTreeMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            let slot = results.len();
            results.push(ListOffsetsResult {
                slot,
                error_code: code::UNKNOWN_TOPIC_OR_PARTITION,
                timestamp: -1,
                offset: -1,
            });
            let owner = image
                .topics
                .get(t.name.0.as_str())
                .and_then(|m| m.shards.get(p.partition_index as usize).copied());
            if let Some(owner) = owner {
                per_shard.entry(owner).or_default().push(ListOffsetsItem {
                    slot,
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    timestamp: p.timestamp,
                });
            }
        }
    }
    for reply in scatter(&shard, per_shard, ShardRequest::ListOffsets).await {
        if let ShardReply::ListOffsets(rs) = reply {
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
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(r.error_code)
                        .with_timestamp(r.timestamp)
                        .with_offset(r.offset)
                        .with_leader_epoch(if r.offset >= 0 && version >= 4 { 0 } else { -1 })
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(&header, &ListOffsetsResponse::default().with_topics(topics))
}
