//! Produce (key 0). The connection's shard validates every batch (magic, lengths, CRC-32C,
//! record counts, `message.max.bytes`), then sends one request per owning shard. The owner
//! checks producer sequences, assigns offsets and answers after the group commit that covers
//! the append (acks=1/all; acks=0 gets no response, but the append is still flushed).

use super::{decode, respond, str_bytes};
use crate::connection::Response;
use crate::errors::{code, wire_code};
use crate::node::Shard;
use crate::work::{scatter, ProduceItem, ProduceResult, ShardReply, ShardRequest};
use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use millrace_wire::frame::RequestHeader;
use millrace_wire::records::{validate_batch, BatchIter, BatchStep};
use std::collections::BTreeMap;
use std::rc::Rc;

pub async fn handle(shard: Rc<Shard>, header: RequestHeader, body: Bytes) -> Response {
    let req: ProduceRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let mut results: Vec<ProduceResult> = Vec::new();
    let mut per_shard: BTreeMap<usize, Vec<ProduceItem>> = BTreeMap::new();
    let acks_valid = matches!(req.acks, -1..=1);
    let image = shard.image();
    for t in &req.topic_data {
        let topic = image.topics.get(t.name.0.as_str());
        for p in &t.partition_data {
            let slot = results.len();
            results.push(error(slot, code::NONE, None));
            let owner = topic.and_then(|m| m.shards.get(p.index as usize).copied());
            let check = if crate::metadata::is_internal(&t.name.0) {
                Err((
                    code::INVALID_TOPIC_EXCEPTION,
                    "clients cannot write to internal topics".to_string(),
                ))
            } else if req.transactional_id.is_some() {
                Err((
                    code::INVALID_REQUEST,
                    "transactions are not supported yet".to_string(),
                ))
            } else if !acks_valid {
                Err((
                    code::INVALID_REQUIRED_ACKS,
                    format!("acks must be -1, 0 or 1, not {}", req.acks),
                ))
            } else if owner.is_none() {
                Err((
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    "This server does not host this topic-partition.".into(),
                ))
            } else {
                let limit = topic
                    .and_then(|m| m.configs.get("max.message.bytes"))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(shard.config.message_max_bytes);
                validate_records(p.records.as_ref(), limit)
            };
            match (check, owner) {
                (Ok(()), Some(owner)) => per_shard.entry(owner).or_default().push(ProduceItem {
                    slot,
                    topic: t.name.0.to_string(),
                    partition: p.index,
                    records: p.records.clone().unwrap_or_default(),
                }),
                (Err((error_code, message)), _) => {
                    results[slot] = error(slot, error_code, Some(message))
                }
                (Ok(()), None) => unreachable!("owner checked above"),
            }
        }
    }
    let acks = req.acks;
    let request = |items| ShardRequest::Produce { acks, items };
    for reply in scatter(&shard, per_shard, request).await {
        match reply {
            ShardReply::Produce(rs) => {
                for r in rs {
                    let slot = r.slot;
                    results[slot] = r;
                }
            }
            _ => tracing::warn!("a shard did not answer a produce request"),
        }
    }
    if req.acks == 0 {
        return Response::Nothing;
    }
    respond(&header, &build_response(&req, results, header.api_version))
}

fn error(slot: usize, error_code: i16, message: Option<String>) -> ProduceResult {
    ProduceResult {
        slot,
        error_code,
        error_message: message,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
    }
}

/// Checks every batch in a partition's records: whole v2 batches, valid CRCs, sizes in bounds.
fn validate_records(records: Option<&Bytes>, max_batch_bytes: usize) -> Result<(), (i16, String)> {
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err((
            code::CORRUPT_MESSAGE,
            "no record batch in the request".into(),
        ));
    };
    for step in BatchIter::new(records) {
        match step {
            BatchStep::Batch { bytes, .. } => {
                if bytes.len() > max_batch_bytes {
                    return Err((
                        code::MESSAGE_TOO_LARGE,
                        format!(
                            "record batch of {} bytes exceeds the limit of {max_batch_bytes}",
                            bytes.len()
                        ),
                    ));
                }
                validate_batch(bytes).map_err(|e| (wire_code(&e), e.to_string()))?;
            }
            BatchStep::Tail { reason, .. } => return Err((wire_code(&reason), reason.to_string())),
        }
    }
    Ok(())
}

fn build_response(
    req: &ProduceRequest,
    results: Vec<ProduceResult>,
    version: i16,
) -> ProduceResponse {
    let mut results = results.into_iter();
    let responses = req
        .topic_data
        .iter()
        .map(|t| {
            let partition_responses = t
                .partition_data
                .iter()
                .map(|p| {
                    let r = results.next().expect("one result per partition");
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(r.error_code)
                        .with_error_message(
                            r.error_message
                                .as_deref()
                                .filter(|_| version >= 8)
                                .map(str_bytes),
                        )
                        .with_base_offset(r.base_offset)
                        .with_log_append_time_ms(r.log_append_time_ms)
                        .with_log_start_offset(if version >= 5 { r.log_start_offset } else { -1 })
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_wire::records::{BatchBuilder, NewRecord};

    fn batch(n: usize) -> Vec<u8> {
        let records: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                timestamp: i as i64,
                value: Some(vec![1; 100]),
                ..Default::default()
            })
            .collect();
        BatchBuilder::default().build(&records)
    }

    #[test]
    fn corrupt_oversized_and_torn_records_are_refused() {
        let good = batch(3);
        assert!(validate_records(Some(&Bytes::from(good.clone())), 1 << 20).is_ok());
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            validate_records(Some(&Bytes::from(bad)), 1 << 20)
                .unwrap_err()
                .0,
            code::CORRUPT_MESSAGE
        );
        assert_eq!(
            validate_records(Some(&Bytes::from(good.clone())), 100)
                .unwrap_err()
                .0,
            code::MESSAGE_TOO_LARGE
        );
        let torn = Bytes::from(good[..good.len() - 1].to_vec());
        assert_eq!(
            validate_records(Some(&torn), 1 << 20).unwrap_err().0,
            code::CORRUPT_MESSAGE
        );
        assert!(validate_records(None, 1 << 20).is_err());
    }
}
