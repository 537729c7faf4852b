//! ReadShareGroupState (key 84, v0): a share-partition leader reads the delivery state of its
//! share partitions from their share coordinator (`crate::share_state`), which records the
//! reader's leader epoch when it is newer (so an older leader is fenced afterwards). Kafka's
//! errors per partition: INVALID_REQUEST for a share partition never initialized (nor
//! written) and for a negative partition or leader epoch, FENCED_LEADER_EPOCH, NOT_COORDINATOR,
//! COORDINATOR_LOAD_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION. An empty group id gets an empty
//! answer, as from Kafka.

use super::Context;
use super::{decode, respond, str_bytes, Response};
use crate::errors::code;
use crate::share::record::ShareStateKey;
use crate::share_state::{OpResult, StateOp};
use bytes::Bytes;
use kafka_protocol::messages::read_share_group_state_response::{
    PartitionResult, ReadStateResult, StateBatch,
};
use kafka_protocol::messages::{ReadShareGroupStateRequest, ReadShareGroupStateResponse};
use millrace_wire::frame::RequestHeader;

const UNINITIALIZED: &str = "the share partition's state is not initialized";

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ReadShareGroupStateRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.to_string();
    if group_id.is_empty() {
        return respond(&header, &ReadShareGroupStateResponse::default());
    }
    let items = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, p)))
        .map(|(topic_id, p)| {
            let key = ShareStateKey {
                group_id: group_id.clone(),
                topic_id,
                partition: p.partition,
            };
            let op = StateOp::Read {
                leader_epoch: p.leader_epoch,
            };
            (key, op)
        })
        .collect();
    let mut answers = ctx.share_state(items).await.into_iter();
    let results = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| result(p.partition, answers.next().expect("one answer each")))
                .collect();
            ReadStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &ReadShareGroupStateResponse::default().with_results(results),
    )
}

fn result(partition: i32, answer: OpResult) -> PartitionResult {
    let out = PartitionResult::default().with_partition(partition);
    match answer {
        Ok(Some(state)) => out
            .with_state_epoch(state.state_epoch)
            .with_start_offset(state.start_offset)
            .with_state_batches(
                state
                    .batches
                    .iter()
                    .map(|b| {
                        StateBatch::default()
                            .with_first_offset(b.first_offset)
                            .with_last_offset(b.last_offset)
                            .with_delivery_state(b.delivery_state)
                            .with_delivery_count(b.delivery_count)
                    })
                    .collect(),
            ),
        Ok(None) => out
            .with_error_code(code::INVALID_REQUEST)
            .with_error_message(Some(str_bytes(UNINITIALIZED))),
        Err(error) => out.with_error_code(error),
    }
}
