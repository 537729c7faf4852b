//! TxnOffsetCommit (key 28), versions 0-5: a transactional producer commits its consumer's
//! offsets inside its transaction (`crate::coordinator`'s transactional offsets). Before the
//! group's coordinator appends them, the transaction's coordinator confirms that the group's
//! offsets partition is in the transaction (KIP-890: AddOffsetsToTxn came first), so no
//! offsets wait for a marker that will never come; from v5 (Transactions V2, the client sends
//! no AddOffsetsToTxn) it adds the partition instead. v3+ carries the consumer's generation
//! (or KIP-848 member epoch), member id and static id (KIP-447): a consumer fenced by a
//! rebalance cannot commit.

use super::Context;
use super::Response;
use super::{decode, group_call, respond};
use crate::coordinator::{CommittedOffset, TxnCommit, OFFSETS_TOPIC};
use crate::errors::code;
use crate::txn::TxnError;
use bytes::Bytes;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::frame::RequestHeader;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: TxnOffsetCommitRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let now = millrace_shard::time::now_ms();
    let denied: Vec<bool> = req
        .topics
        .iter()
        .map(|t| !ctx.allowed(AclOperation::Read, ResourceType::Topic, &t.name.0))
        .collect();
    let offsets: Vec<(String, i32, CommittedOffset)> = req
        .topics
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| !**denied)
        .flat_map(|(t, _)| {
            t.partitions.iter().map(move |p| {
                let committed = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp: now,
                };
                (t.name.0.to_string(), p.partition_index, committed)
            })
        })
        .collect();
    let count = offsets.len();
    let group_id = req.group_id.0.to_string();
    let mut whole = None;
    let codes = match verified(&ctx, &req, &group_id, header.api_version).await {
        Err(error) => {
            whole = Some(error);
            vec![error; count]
        }
        Ok(()) => {
            let op = TxnCommit {
                group_id: group_id.clone(),
                producer_id: req.producer_id.0,
                producer_epoch: req.producer_epoch,
                generation_id: req.generation_id,
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
                offsets,
            };
            match group_call(&ctx, &group_id, AclOperation::Read, op).await {
                Ok(codes) => codes,
                Err(error) => vec![error; count],
            }
        }
    };
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .iter()
        .zip(denied)
        .map(|(t, denied)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let error = match (whole, denied) {
                        (Some(error), true) => error,
                        (None, true) => code::TOPIC_AUTHORIZATION_FAILED,
                        (_, false) => codes.next().unwrap_or(code::UNKNOWN_SERVER_ERROR),
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    respond(
        &header,
        &TxnOffsetCommitResponse::default().with_topics(topics),
    )
}

/// Asks the transaction's coordinator whether the group's offsets partition is in the
/// producer's transaction, or from v5 has it added. Err is the code every offset answers, as
/// Kafka's group coordinator maps a failed verification: INVALID_PRODUCER_EPOCH for a fenced
/// producer; for a partition not in the transaction (AddOffsetsToTxn not sent)
/// TRANSACTION_ABORTABLE from v4, INVALID_TXN_STATE before; COORDINATOR_NOT_AVAILABLE for a
/// transaction coordinator busy or out of reach (retried).
async fn verified(
    ctx: &Context,
    req: &TxnOffsetCommitRequest,
    group_id: &str,
    version: i16,
) -> Result<(), i16> {
    let txn_id = req.transactional_id.0.as_str();
    if !ctx.allowed(AclOperation::Write, ResourceType::TransactionalId, txn_id) {
        return Err(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    if !ctx.allowed(AclOperation::Read, ResourceType::Group, group_id) {
        return Err(code::GROUP_AUTHORIZATION_FAILED);
    }
    if group_id.is_empty() || group_id.len() > crate::coordinator::GROUP_ID_BYTES_MAX {
        return Err(code::INVALID_GROUP_ID);
    }
    let image = ctx.image();
    let Some(offsets) = image.topics.get(OFFSETS_TOPIC) else {
        return Err(code::COORDINATOR_NOT_AVAILABLE);
    };
    let p = crate::coordinator::offsets_partition(group_id, offsets.partitions as usize);
    let producer = (req.producer_id.0, req.producer_epoch);
    let add = version >= 5;
    let verified = ctx
        .verify_txn(txn_id, producer, (OFFSETS_TOPIC.to_string(), p), add)
        .await;
    verified.map_err(|e| match e {
        TxnError::Fenced => code::INVALID_PRODUCER_EPOCH,
        TxnError::Code(code::TRANSACTION_ABORTABLE) if version < 4 => code::INVALID_TXN_STATE,
        TxnError::Code(
            code::CONCURRENT_TRANSACTIONS
            | code::NOT_COORDINATOR
            | code::COORDINATOR_LOAD_IN_PROGRESS
            | code::NOT_ENOUGH_REPLICAS
            | code::REQUEST_TIMED_OUT,
        ) => code::COORDINATOR_NOT_AVAILABLE,
        TxnError::Code(c) => c,
    })
}
