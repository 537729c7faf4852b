//! WriteShareGroupState (key 85, v0): a share-partition leader writes the delivery state that
//! changed (`crate::share_state`); each partition is answered once its record is committed on
//! the state partition (acks=all). Kafka's errors per partition: FENCED_LEADER_EPOCH,
//! FENCED_STATE_EPOCH, INVALID_REQUEST (a negative partition or epoch, batches that are not
//! ranges), NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
//! UNKNOWN_TOPIC_OR_PARTITION. Unlike Kafka 4.4, a share partition with no state yet is started
//! by the write (Kafka answers INVALID_REQUEST until InitializeShareGroupState). An empty group
//! id gets an empty answer, as from Kafka.

use super::Context;
use super::{decode, respond, Response};
use crate::share::record::{ShareStateKey, StateBatch};
use crate::share_state::{StateOp, StateWriteRequest};
use bytes::Bytes;
use kafka_protocol::messages::write_share_group_state_response::{
    PartitionResult, WriteStateResult,
};
use kafka_protocol::messages::{WriteShareGroupStateRequest, WriteShareGroupStateResponse};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: WriteShareGroupStateRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.to_string();
    if group_id.is_empty() {
        return respond(&header, &WriteShareGroupStateResponse::default());
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
            let batches = p
                .state_batches
                .iter()
                .map(|b| StateBatch {
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                    delivery_state: b.delivery_state,
                    delivery_count: b.delivery_count,
                })
                .collect();
            let write = StateWriteRequest {
                state_epoch: p.state_epoch,
                leader_epoch: p.leader_epoch,
                start_offset: p.start_offset,
                batches,
            };
            (key, StateOp::Write(write))
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
            WriteStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &WriteShareGroupStateResponse::default().with_results(results),
    )
}
