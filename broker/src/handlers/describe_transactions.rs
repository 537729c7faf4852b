//! DescribeTransactions (key 65), version 0: each transactional id's state at its coordinator
//! (NOT_COORDINATOR for an id another broker coordinates, TRANSACTIONAL_ID_NOT_FOUND for one
//! never initialized here), with its producer, timeout, start time and partitions.

use super::Context;
use super::Response;
use super::{decode, respond, str_bytes};
use crate::errors::code;
use crate::txn::DescribeTxns;
use bytes::Bytes;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: DescribeTransactionsRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let image = ctx.image();
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in &req.transactional_ids {
        let mut state = TransactionState::default()
            .with_transactional_id(id.clone())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        let view = match crate::txn::coordinator_shard(&image, id) {
            _ if !ctx.allowed(AclOperation::Describe, ResourceType::TransactionalId, id) => {
                Err(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            }
            _ if !image.topics.contains_key(crate::txn::TXN_TOPIC) => {
                Err(code::COORDINATOR_NOT_AVAILABLE)
            }
            None => Err(code::NOT_COORDINATOR),
            Some((owner, _)) => match ctx.call(owner, DescribeTxns(vec![id.to_string()])).await {
                Ok(mut views) => views.pop().unwrap_or(Err(code::UNKNOWN_SERVER_ERROR)),
                Err(_) => Err(code::COORDINATOR_NOT_AVAILABLE),
            },
        };
        match view {
            Err(error) => state.error_code = error,
            Ok(v) => {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (topic, p) in v.partitions {
                    by_topic.entry(topic).or_default().push(p);
                }
                state = state
                    .with_transaction_state(str_bytes(v.state.name()))
                    .with_transaction_timeout_ms(v.timeout_ms)
                    .with_transaction_start_time_ms(v.start_ms)
                    .with_producer_id(ProducerId(v.producer_id))
                    .with_producer_epoch(v.producer_epoch)
                    .with_topics(
                        by_topic
                            .into_iter()
                            .map(|(t, partitions)| {
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(&t)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    );
            }
        }
        states.push(state);
    }
    respond(
        &header,
        &DescribeTransactionsResponse::default().with_transaction_states(states),
    )
}
