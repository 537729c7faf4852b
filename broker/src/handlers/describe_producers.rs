//! DescribeProducers (key 61), version 0: the producers a partition's leader keeps state for
//! (idempotence and transactions): epoch, last sequence and timestamp, the coordinator epoch of
//! its last marker, and where its open transaction starts. What `kafka-transactions.sh
//! describe-producers` shows, and how an operator finds a hanging transaction to abort.

use super::Context;
use super::{decode, respond, Response};
use crate::errors::code;
use crate::mesh::{Call, Split};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_storage::ProducerInfo;
use millrace_wire::frame::RequestHeader;
use std::rc::Rc;

type Answer = Result<Vec<ProducerInfo>, i16>;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeProducersRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let image = ctx.image();
    let mut results: Vec<Answer> = Vec::new();
    let mut split: Split<(String, i32, ())> = Split::default();
    for t in &req.topics {
        let denied = !ctx.allowed(AclOperation::Read, ResourceType::Topic, &t.name.0);
        for &p in &t.partition_indexes {
            let slot = results.len();
            if denied {
                results.push(Err(code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            results.push(Err(image.not_here_code(&t.name.0, p)));
            if let Some(owner) = image.owner(&t.name.0, p) {
                split.push(owner, slot, (t.name.0.to_string(), p, ()));
            }
        }
    }
    let unavailable = || Err(code::LEADER_NOT_AVAILABLE);
    ctx.fan_out(
        split,
        &mut results,
        |items| ProducersOnOwner { items },
        unavailable,
    )
    .await;
    let mut results = results.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let answer = results.next().unwrap_or(Err(code::UNKNOWN_SERVER_ERROR));
                    let mut out = PartitionResponse::default().with_partition_index(p);
                    match answer {
                        Err(error) => out.error_code = error,
                        Ok(producers) => {
                            out.active_producers = producers.iter().map(state).collect();
                        }
                    }
                    out
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &DescribeProducersResponse::default().with_topics(topics),
    )
}

fn state(p: &ProducerInfo) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(i32::from(p.producer_epoch))
        .with_last_sequence(p.last_sequence)
        .with_last_timestamp(p.last_timestamp)
        .with_coordinator_epoch(p.coordinator_epoch)
        .with_current_txn_start_offset(p.current_txn_start_offset)
}

/// Reads the producer state of partitions the target shard owns (led here, or
/// NOT_LEADER_OR_FOLLOWER as Kafka answers from a follower).
pub struct ProducersOnOwner {
    items: Vec<(usize, (String, i32, ()))>,
}

impl Call<Shard> for ProducersOnOwner {
    type Reply = Vec<(usize, Answer)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let missing = || Err(code::UNKNOWN_TOPIC_OR_PARTITION);
        shard
            .on_each_partition(self.items, missing, async |partition, ()| {
                if !partition.is_leader() {
                    return Err(code::NOT_LEADER_OR_FOLLOWER);
                }
                Ok(partition.producers())
            })
            .await
    }
}
