//! AlterPartition (key 56, v2-3, controller listener): a partition leader asks the active
//! controller to change its ISR. Decided by `millrace_replication::metadata::control::
//! alter_partition` (Kafka's checks, in Kafka's order) and committed through the metadata
//! quorum before the answer; each partition's answer is its state after the change or the
//! refusal's code. A stale or unknown broker epoch refuses the whole request
//! (STALE_BROKER_EPOCH, BROKER_ID_NOT_REGISTERED); a node that does not lead the quorum
//! answers NOT_CONTROLLER.

use super::{decode, respond, Context, Response};
use crate::controller::brokers::AlterPartition;
use crate::errors::{code, isr_refusal_code};
use bytes::Bytes;
use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, BrokerId};
use millrace_replication::metadata::control::IsrChange;
use millrace_replication::metadata::TopicId;
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: AlterPartitionRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let v3 = header.api_version >= 3;
    let mut changes = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let new_isr = if v3 {
                p.new_isr_with_epochs
                    .iter()
                    // -1: the leader knows no epoch for the member (not checked).
                    .map(|b| {
                        (
                            b.broker_id.0,
                            (b.broker_epoch >= 0).then_some(b.broker_epoch),
                        )
                    })
                    .collect()
            } else {
                p.new_isr.iter().map(|b| (b.0, None)).collect()
            };
            changes.push(IsrChange {
                topic_id: TopicId(*t.topic_id.as_bytes()),
                partition_id: p.partition_index,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr,
            });
        }
    }
    let call = AlterPartition {
        broker_id: req.broker_id.0,
        broker_epoch: req.broker_epoch,
        changes,
    };
    let outcomes = match ctx.call(ctx.controller_shard(), call).await {
        Ok(Ok(outcomes)) => outcomes,
        Ok(Err((error_code, _))) => return top(&header, error_code),
        Err(_) => return top(&header, code::NOT_CONTROLLER),
    };
    let mut outcomes = outcomes.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let data = PartitionData::default().with_partition_index(p.partition_index);
                    match outcomes.next().expect("one outcome per change") {
                        Ok(state) => data
                            .with_leader_id(BrokerId(state.leader))
                            .with_leader_epoch(state.leader_epoch)
                            .with_isr(state.isr.into_iter().map(BrokerId).collect())
                            .with_partition_epoch(state.partition_epoch),
                        Err(refusal) => data.with_error_code(isr_refusal_code(refusal)),
                    }
                })
                .collect();
            TopicData::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &AlterPartitionResponse::default().with_topics(topics),
    )
}

fn top(header: &RequestHeader, error_code: i16) -> Response {
    respond(
        header,
        &AlterPartitionResponse::default().with_error_code(error_code),
    )
}
