//! FetchSnapshot (key 59) on the CONTROLLER listener: an observer whose fetch offset is below
//! the active controller's metadata log start was told which snapshot to take (the Fetch
//! answer's `snapshot_id`); it reads the snapshot file in chunks from a position (KIP-630's
//! shape). The bytes are the metadata snapshot file body of
//! `millrace_replication::metadata::snapshot_file`, which only Millrace nodes read: Kafka's
//! snapshots hold records, this one an encoded image.
//!
//! Checked: the cluster id (INCONSISTENT_CLUSTER_ID), a non-negative replica id
//! (INVALID_REQUEST), exactly `__cluster_metadata` partition 0 (UNKNOWN_TOPIC_OR_PARTITION).
//! Answered per partition: NOT_LEADER_OR_FOLLOWER with the leader this node knows,
//! SNAPSHOT_NOT_FOUND (a newer snapshot replaced it: fetch again), POSITION_OUT_OF_RANGE.

use super::{decode, foreign_cluster, respond, str_bytes, Context, Response};
use crate::controller::observer::{ReadSnapshot, SnapshotChunk, FETCH_MAX_BYTES};
use crate::errors::code;
use crate::handlers::describe_quorum::METADATA_TOPIC;
use bytes::Bytes;
use kafka_protocol::messages::fetch_snapshot_response::{
    LeaderIdAndEpoch, PartitionSnapshot, SnapshotId, TopicSnapshot,
};
use kafka_protocol::messages::{BrokerId, FetchSnapshotRequest, FetchSnapshotResponse, TopicName};
use millrace_replication::metadata;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: FetchSnapshotRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let top = |error_code| {
        respond(
            &header,
            &FetchSnapshotResponse::default().with_error_code(error_code),
        )
    };
    if foreign_cluster(&ctx, req.cluster_id.as_ref()) {
        return top(code::INCONSISTENT_CLUSTER_ID);
    }
    if req.replica_id.0 < 0 {
        return top(code::INVALID_REQUEST);
    }
    let partition = match req.topics.as_slice() {
        [t] if t.name.0.as_str() == METADATA_TOPIC => match t.partitions.as_slice() {
            [p] if p.partition == 0 => p,
            _ => return top(code::UNKNOWN_TOPIC_OR_PARTITION),
        },
        _ => return top(code::UNKNOWN_TOPIC_OR_PARTITION),
    };
    let id = metadata::SnapshotId {
        end_offset: partition.snapshot_id.end_offset,
        epoch: partition.snapshot_id.epoch,
    };
    let call = ReadSnapshot {
        id,
        position: partition.position,
        max_bytes: usize::try_from(req.max_bytes)
            .unwrap_or(0)
            .clamp(1, FETCH_MAX_BYTES),
    };
    let epoch = |term: u64| i32::try_from(term).unwrap_or(i32::MAX);
    let mut data = PartitionSnapshot::default()
        .with_index(0)
        .with_snapshot_id(
            SnapshotId::default()
                .with_end_offset(id.end_offset)
                .with_epoch(id.epoch),
        )
        .with_position(partition.position);
    match ctx.call(ctx.controller_shard(), call).await {
        Ok(SnapshotChunk::Chunk { size, bytes, term }) => {
            data = data
                .with_size(size)
                .with_unaligned_records(bytes)
                .with_current_leader(leader(ctx.config().node_id, epoch(term)));
        }
        Ok(SnapshotChunk::NotLeader { leader: l, term }) => {
            data = data
                .with_error_code(code::NOT_LEADER_OR_FOLLOWER)
                .with_current_leader(leader(l.unwrap_or(-1), epoch(term)));
        }
        Ok(SnapshotChunk::NotFound) => data = data.with_error_code(code::SNAPSHOT_NOT_FOUND),
        Ok(SnapshotChunk::PositionOutOfRange) => {
            data = data.with_error_code(code::POSITION_OUT_OF_RANGE)
        }
        Ok(SnapshotChunk::Failed(why)) => {
            tracing::warn!(error = %why, "serving a metadata snapshot");
            data = data.with_error_code(code::UNKNOWN_SERVER_ERROR);
        }
        Err(_) => data = data.with_error_code(code::NOT_LEADER_OR_FOLLOWER),
    }
    respond(
        &header,
        &FetchSnapshotResponse::default().with_topics(vec![TopicSnapshot::default()
            .with_name(TopicName(str_bytes(METADATA_TOPIC)))
            .with_partitions(vec![data])]),
    )
}

fn leader(id: i32, epoch: i32) -> LeaderIdAndEpoch {
    LeaderIdAndEpoch::default()
        .with_leader_id(BrokerId(id))
        .with_leader_epoch(epoch)
}
