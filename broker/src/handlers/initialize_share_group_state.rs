//! InitializeShareGroupState (key 83, v0): starts (or resets) share partitions' delivery
//! state: a snapshot with the given state epoch and start offset (-1: none yet) and no
//! batches (`crate::share_state`). Kafka's group coordinator sends it when a share group first
//! takes a partition, and again with a new state epoch when its offsets are altered. Errors
//! per partition: FENCED_STATE_EPOCH (below the stored state epoch), INVALID_REQUEST (a
//! negative partition or state epoch), NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
//! COORDINATOR_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION. An empty group id gets an empty
//! answer, as from Kafka.

use super::Context;
use super::{decode, respond, Response};
use crate::share::record::ShareStateKey;
use crate::share_state::StateOp;
use bytes::Bytes;
use kafka_protocol::messages::initialize_share_group_state_response::{
    InitializeStateResult, PartitionResult,
};
use kafka_protocol::messages::{
    InitializeShareGroupStateRequest, InitializeShareGroupStateResponse,
};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: InitializeShareGroupStateRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.to_string();
    if group_id.is_empty() {
        return respond(&header, &InitializeShareGroupStateResponse::default());
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
            let op = StateOp::Initialize {
                state_epoch: p.state_epoch,
                start_offset: p.start_offset,
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
                .map(|p| {
                    let answer = answers.next().expect("one answer each");
                    PartitionResult::default()
                        .with_partition(p.partition)
                        .with_error_code(answer.err().unwrap_or_default())
                })
                .collect();
            InitializeStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &InitializeShareGroupStateResponse::default().with_results(results),
    )
}
