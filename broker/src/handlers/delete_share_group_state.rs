//! DeleteShareGroupState (key 86, v0): deletes share partitions' delivery state (a tombstone
//! in `__share_group_state`, `crate::share_state`), for DeleteGroups and
//! DeleteShareGroupOffsets; a share partition with no state is answered without error, as by
//! Kafka. Errors per partition: INVALID_REQUEST (a negative partition), NOT_COORDINATOR,
//! COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION (a
//! topic or partition that does not exist and has no state). An empty group id gets an empty
//! answer, as from Kafka.

use super::Context;
use super::{decode, respond, Response};
use crate::share::record::ShareStateKey;
use crate::share_state::StateOp;
use bytes::Bytes;
use kafka_protocol::messages::delete_share_group_state_response::{
    DeleteStateResult, PartitionResult,
};
use kafka_protocol::messages::{DeleteShareGroupStateRequest, DeleteShareGroupStateResponse};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DeleteShareGroupStateRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.to_string();
    if group_id.is_empty() {
        return respond(&header, &DeleteShareGroupStateResponse::default());
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
            (key, StateOp::Delete)
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
            DeleteStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &DeleteShareGroupStateResponse::default().with_results(results),
    )
}
