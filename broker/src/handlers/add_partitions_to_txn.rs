//! AddPartitionsToTxn (key 24). The client form (v0-3) adds partitions to the producer's
//! transaction on its coordinator (`crate::txn`): every partition gets the same answer; a
//! partition of a topic this cluster does not have is UNKNOWN_TOPIC_OR_PARTITION and the rest
//! OPERATION_NOT_ATTEMPTED, as Kafka answers. The brokers' batched form (v4-5) carries
//! KIP-890's verification: with `verify_only` each partition is answered whether it is in the
//! transaction (a partition leader asks before a producer's first transactional append);
//! without it the leader adds its partition to the transaction (Transactions V2).

use super::Context;
use super::{decode, respond, Response};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

/// Kafka's OPERATION_NOT_ATTEMPTED: another partition of the request failed first.
const OPERATION_NOT_ATTEMPTED: i16 = 55;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: AddPartitionsToTxnRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let version = header.api_version;
    // v4+ comes from brokers verifying for their partitions: CLUSTER_ACTION.
    if version >= 4 && !ctx.allowed_on_cluster(AclOperation::ClusterAction) {
        return respond(
            &header,
            &AddPartitionsToTxnResponse::default()
                .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED),
        );
    }
    if version >= 4 {
        let mut results = Vec::new();
        for t in &req.transactions {
            let txn_id = t.transactional_id.0.as_str();
            let producer = (t.producer_id.0, t.producer_epoch);
            let mut topics = Vec::new();
            if t.verify_only {
                for topic in &t.topics {
                    let mut codes = Vec::new();
                    for &p in &topic.partitions {
                        let op = crate::txn::TxnOp::Verify {
                            producer_id: producer.0,
                            producer_epoch: producer.1,
                            partition: (topic.name.0.to_string(), p),
                        };
                        codes.push(match ctx.txn(txn_id, op).await {
                            Ok(_) => code::NONE,
                            // v5 is the first to know TRANSACTION_ABORTABLE.
                            Err(e) => match e.code(version, 2) {
                                code::TRANSACTION_ABORTABLE if version < 5 => {
                                    code::INVALID_TXN_STATE
                                }
                                c => c,
                            },
                        });
                    }
                    let mut codes = codes.into_iter();
                    let name = topic.name.0.as_str();
                    topics.push(result_topic(name, &topic.partitions, |_| {
                        codes.next().expect("one code per partition")
                    }));
                }
            } else {
                let partitions = t
                    .topics
                    .iter()
                    .flat_map(|x| x.partitions.iter().map(|p| (x.name.0.to_string(), *p)))
                    .collect();
                // A partition leader adding its partition for the producer (Transactions
                // V2): it waits a moment for a previous transaction to complete.
                let op = crate::txn::TxnOp::Add {
                    implicit: true,
                    producer_id: producer.0,
                    producer_epoch: producer.1,
                    partitions,
                };
                let error = match ctx.txn(txn_id, op).await {
                    Ok(_) => code::NONE,
                    Err(e) => e.code(version, 2),
                };
                for topic in &t.topics {
                    let name = topic.name.0.as_str();
                    topics.push(result_topic(name, &topic.partitions, |_| error));
                }
            }
            results.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(t.transactional_id.clone())
                    .with_topic_results(topics),
            );
        }
        return respond(
            &header,
            &AddPartitionsToTxnResponse::default().with_results_by_transaction(results),
        );
    }
    let image = ctx.image();
    // A client needs WRITE on the transactional id (else every partition is refused) and on
    // each topic (else its partitions are refused and the others not attempted).
    let txn_id = req.v3_and_below_transactional_id.0.as_str();
    let txn_denied = !ctx.allowed(AclOperation::Write, ResourceType::TransactionalId, txn_id);
    let topic_denied: Vec<bool> = req
        .v3_and_below_topics
        .iter()
        .map(|t| !ctx.allowed(AclOperation::Write, ResourceType::Topic, &t.name.0))
        .collect();
    if txn_denied || topic_denied.contains(&true) {
        let topics = req
            .v3_and_below_topics
            .iter()
            .zip(topic_denied)
            .map(|(t, denied)| {
                let error = match (txn_denied, denied) {
                    (true, _) => code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    (false, true) => code::TOPIC_AUTHORIZATION_FAILED,
                    (false, false) => OPERATION_NOT_ATTEMPTED,
                };
                result_topic(&t.name.0, &t.partitions, |_| error)
            })
            .collect();
        return respond(
            &header,
            &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics),
        );
    }
    let known = |topic: &str, p: i32| {
        image
            .topics
            .get(topic)
            .is_some_and(|t| (0..t.partitions).contains(&p) && !crate::metadata::is_internal(topic))
    };
    let all_known = req
        .v3_and_below_topics
        .iter()
        .all(|t| t.partitions.iter().all(|p| known(t.name.0.as_str(), *p)));
    // The whole request's answer when every partition exists (None: per partition).
    let whole = if all_known {
        let partitions = req
            .v3_and_below_topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
            .collect();
        let op = crate::txn::TxnOp::Add {
            implicit: false,
            producer_id: req.v3_and_below_producer_id.0,
            producer_epoch: req.v3_and_below_producer_epoch,
            partitions,
        };
        let txn_id = req.v3_and_below_transactional_id.0.as_str();
        Some(match ctx.txn(txn_id, op).await {
            Ok(_) => code::NONE,
            Err(e) => e.code(version, 2),
        })
    } else {
        None
    };
    let error_for = |t: &str, p: i32| match whole {
        Some(error) => error,
        None if known(t, p) => OPERATION_NOT_ATTEMPTED,
        None => code::UNKNOWN_TOPIC_OR_PARTITION,
    };
    let topics = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            result_topic(name, &t.partitions, |p| error_for(name, p))
        })
        .collect();
    respond(
        &header,
        &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics),
    )
}

fn result_topic(
    name: &str,
    partitions: &[i32],
    mut error: impl FnMut(i32) -> i16,
) -> AddPartitionsToTxnTopicResult {
    AddPartitionsToTxnTopicResult::default()
        .with_name(kafka_protocol::messages::TopicName(super::str_bytes(name)))
        .with_results_by_partition(
            partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(error(*p))
                })
                .collect(),
        )
}
