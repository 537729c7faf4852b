//! WriteTxnMarkers (key 27, v1): a transaction coordinator (ours on another broker, or an
//! admin aborting a hanging transaction) asks this broker, as the leader of the partitions
//! named, to append COMMIT or ABORT markers. Each marker is appended on the partition's shard
//! and answered once committed (acks=all); the coordinator retries what failed.

use super::Context;
use super::{decode, respond, Response};
use crate::errors::code;
use crate::mesh::Split;
use crate::txn::{MarkerItem, MarkersOnOwner};
use bytes::Bytes;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use millrace_security::acl::AclOperation;
use millrace_wire::frame::RequestHeader;
use millrace_wire::records::TxnMarker;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: WriteTxnMarkersRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let image = ctx.image();
    let mut results: Vec<i16> = Vec::new();
    let mut split: Split<MarkerItem> = Split::default();
    // Only brokers write markers: CLUSTER_ACTION, else every partition is refused.
    let denied = !ctx.allowed_on_cluster(AclOperation::ClusterAction);
    for m in &req.markers {
        let marker = TxnMarker {
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        for t in &m.topics {
            for &p in &t.partition_indexes {
                let slot = results.len();
                let topic = t.name.0.as_str();
                if denied {
                    results.push(code::CLUSTER_AUTHORIZATION_FAILED);
                    continue;
                }
                results.push(image.not_here_code(topic, p));
                if let Some(owner) = image.owner(topic, p) {
                    let item = MarkerItem {
                        topic: topic.to_string(),
                        partition: p,
                        producer_id: m.producer_id.0,
                        producer_epoch: m.producer_epoch,
                        marker,
                    };
                    split.push(owner, slot, item);
                }
            }
        }
    }
    let unavailable = || code::NOT_LEADER_OR_FOLLOWER;
    ctx.fan_out(
        split,
        &mut results,
        |items| MarkersOnOwner { items },
        unavailable,
    )
    .await;
    let mut codes = results.into_iter();
    let markers = req
        .markers
        .iter()
        .map(|m| {
            let topics = m
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(p)
                                .with_error_code(codes.next().expect("one code per partition"))
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    respond(
        &header,
        &WriteTxnMarkersResponse::default().with_markers(markers),
    )
}
