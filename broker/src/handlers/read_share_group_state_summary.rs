//! ReadShareGroupStateSummary (key 87, v0): a share partition's state epoch, leader epoch and
//! start offset, for DescribeShareGroupOffsets; fences no one (the request's leader epoch is
//! not looked at, as in Kafka). A share partition with no state is answered without error as
//! Kafka answers it: start offset -1, epochs 0. Errors per partition: INVALID_REQUEST (a
//! negative partition), NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
//! COORDINATOR_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION. An empty group id gets an empty
//! answer, as from Kafka.

use super::Context;
use super::{decode, respond, Response};
use crate::share::record::ShareStateKey;
use crate::share_state::{StateOp, StateSummary};
use bytes::Bytes;
use kafka_protocol::messages::read_share_group_state_summary_response::{
    PartitionResult, ReadStateSummaryResult,
};
use kafka_protocol::messages::{
    ReadShareGroupStateSummaryRequest, ReadShareGroupStateSummaryResponse,
};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ReadShareGroupStateSummaryRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let group_id = req.group_id.to_string();
    if group_id.is_empty() {
        return respond(&header, &ReadShareGroupStateSummaryResponse::default());
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
            (key, StateOp::Summary)
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
                    let out = PartitionResult::default().with_partition(p.partition);
                    match answers.next().expect("one answer each") {
                        Ok(state) => {
                            let s = StateSummary::of(state.as_ref());
                            out.with_state_epoch(s.state_epoch)
                                .with_leader_epoch(s.leader_epoch)
                                .with_start_offset(s.start_offset)
                        }
                        Err(error) => out.with_error_code(error),
                    }
                })
                .collect();
            ReadStateSummaryResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &ReadShareGroupStateSummaryResponse::default().with_results(results),
    )
}
