//! Fetch (key 1) on the CONTROLLER listener: observers (broker-only nodes) fetching the
//! metadata log `__cluster_metadata-0` from the active controller, Kafka's KRaft shape
//! (KIP-595): fetch offset and last fetched epoch in, committed batches, the high watermark,
//! a diverging epoch, the snapshot to fetch (below the leader's log start) or the current
//! leader out. See `crate::controller::observer`.
//!
//! Checked, as Kafka's raft client checks them: the request names exactly the metadata
//! partition (by topic id from v13, by name before), else UNKNOWN_TOPIC_ID /
//! UNKNOWN_TOPIC_OR_PARTITION; a cluster id that is not this cluster's is
//! INCONSISTENT_CLUSTER_ID; the fetching replica must be a non-negative node id
//! (a consumer's -1 is INVALID_REQUEST here); a broker epoch older than the
//! broker's registration is STALE_BROKER_EPOCH.

use super::{decode, foreign_cluster, respond, str_bytes, Context, Response};
use crate::controller::observer::{FetchAnswer, MetadataFetch, FETCH_MAX_BYTES, METADATA_TOPIC_ID};
use crate::errors::code;
use crate::handlers::describe_quorum::METADATA_TOPIC;
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData, SnapshotId,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use millrace_wire::frame::RequestHeader;
use std::time::Duration;

/// The longest long poll honoured (a client's larger max_wait_ms is cut to it).
const MAX_WAIT_MS: i32 = 5_000;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: FetchRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let version = header.api_version;
    let top = |error_code| {
        respond(
            &header,
            &FetchResponse::default().with_error_code(error_code),
        )
    };
    if foreign_cluster(&ctx, req.cluster_id.as_ref()) {
        return top(code::INCONSISTENT_CLUSTER_ID);
    }
    let (replica_id, replica_epoch) = if version >= 15 {
        (
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id.0, -1)
    };
    if replica_id < 0 {
        return top(code::INVALID_REQUEST);
    }
    let names_the_log = |t: &kafka_protocol::messages::fetch_request::FetchTopic| {
        if version >= 13 {
            t.topic_id == METADATA_TOPIC_ID
        } else {
            t.topic.0.as_str() == METADATA_TOPIC
        }
    };
    let partition = match req.topics.as_slice() {
        [t] if names_the_log(t) => match t.partitions.as_slice() {
            [p] if p.partition == 0 => p,
            _ => return top(code::UNKNOWN_TOPIC_OR_PARTITION),
        },
        _ if version >= 13 => return top(code::UNKNOWN_TOPIC_ID),
        _ => return top(code::UNKNOWN_TOPIC_OR_PARTITION),
    };
    let max_bytes = usize::try_from(partition.partition_max_bytes.min(req.max_bytes))
        .unwrap_or(0)
        .clamp(1, FETCH_MAX_BYTES);
    let call = MetadataFetch {
        replica_id,
        replica_epoch,
        fetch_offset: partition.fetch_offset,
        last_fetched_epoch: partition.last_fetched_epoch,
        max_wait: Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_MS) as u64),
        max_bytes,
    };
    let answer = match ctx.call(ctx.controller_shard(), call).await {
        Ok(answer) => answer,
        Err(_) => return top(code::NOT_LEADER_OR_FOLLOWER),
    };
    let leader_epoch = |term: u64| i32::try_from(term).unwrap_or(i32::MAX);
    let mut data = PartitionData::default()
        .with_partition_index(0)
        .with_log_start_offset(0);
    // What the leader says with every answer it serves: the high watermark and itself.
    let served = |data: PartitionData, high_watermark: i64, term: u64| {
        data.with_high_watermark(high_watermark)
            .with_last_stable_offset(high_watermark)
            .with_current_leader(leader(ctx.config().node_id, leader_epoch(term)))
    };
    match answer {
        FetchAnswer::Records {
            bytes,
            high_watermark,
            term,
        } => data = served(data, high_watermark, term).with_records(Some(Bytes::from(bytes))),
        FetchAnswer::Diverging {
            epoch,
            end_offset,
            high_watermark,
            term,
        } => {
            data = served(data, high_watermark, term).with_diverging_epoch(
                EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset),
            )
        }
        FetchAnswer::Snapshot {
            id,
            log_start_offset,
            high_watermark,
            term,
        } => {
            data = served(data, high_watermark, term)
                .with_log_start_offset(log_start_offset)
                .with_snapshot_id(
                    SnapshotId::default()
                        .with_end_offset(id.end_offset)
                        .with_epoch(id.epoch),
                )
        }
        FetchAnswer::NotLeader { leader: l, term } => {
            data = data
                .with_error_code(code::NOT_LEADER_OR_FOLLOWER)
                .with_current_leader(leader(l.unwrap_or(-1), leader_epoch(term)));
        }
        FetchAnswer::StaleBrokerEpoch => return top(code::STALE_BROKER_EPOCH),
        FetchAnswer::Failed(why) => {
            tracing::warn!(error = %why, "serving a metadata fetch");
            data = data.with_error_code(code::UNKNOWN_SERVER_ERROR);
        }
    }
    let mut topic = FetchableTopicResponse::default().with_partitions(vec![data]);
    if version >= 13 {
        topic = topic.with_topic_id(METADATA_TOPIC_ID);
    } else {
        topic = topic.with_topic(TopicName(str_bytes(METADATA_TOPIC)));
    }
    respond(
        &header,
        &FetchResponse::default().with_responses(vec![topic]),
    )
}

fn leader(id: i32, epoch: i32) -> LeaderIdAndEpoch {
    LeaderIdAndEpoch::default()
        .with_leader_id(BrokerId(id))
        .with_leader_epoch(epoch)
}
