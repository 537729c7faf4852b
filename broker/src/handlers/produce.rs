//! Produce (key 0). The connection's shard validates every batch (magic, lengths, CRC-32C,
//! record counts, `message.max.bytes`), then sends one request per owning shard. The owner
//! checks producer sequences, assigns offsets and answers after the group commit that covers
//! the append (acks=1/all; acks=0 gets no response, but the append is still flushed).

use super::Context;
use super::{decode, respond, str_bytes, Response};
use crate::errors::{code, storage_code};
use crate::mesh::{join_all, Call, Split};
use crate::partition::{Acks, CommitError};
use crate::registry::IdCheck;
use crate::shard::Shard;
use crate::topic_config::TopicSettings;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use millrace_replication::replica::AcksRefusal;
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_security::quota::QuotaKey;
use millrace_storage::StorageError;
use millrace_wire::frame::RequestHeader;
use millrace_wire::records::{decode_records, BatchHeader, BatchIter, BatchStep};
use std::rc::Rc;
use validate::{validate_records, Refused, Target, DECOMPRESSED_BYTES_MAX};

mod validate;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: ProduceRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let mut results: Vec<ProduceResult> = Vec::new();
    let mut split: Split<ProduceItem> = Split::default();
    // Partitions of topics with schema validation: held until the registry has answered.
    let mut held: Vec<(usize, usize, ProduceItem, Vec<IdCheck>)> = Vec::new();
    let acks = Acks::from_request(req.acks);
    let image = ctx.image();
    let now = millrace_shard::time::now_ms();
    // Kafka's order: the transactional id, then each topic, before anything else is looked at.
    let txn_denied = req
        .transactional_id
        .as_ref()
        .is_some_and(|id| !ctx.allowed(AclOperation::Write, ResourceType::TransactionalId, id));
    for t in &req.topic_data {
        let topic = image.topics.get(t.name.0.as_str());
        // Parsed once per topic, not per partition: this is the produce hot path.
        let settings = topic.map(|m| ctx.topic_settings(m));
        let denied = if txn_denied {
            Some(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        } else if !ctx.allowed(AclOperation::Write, ResourceType::Topic, &t.name.0) {
            Some(code::TOPIC_AUTHORIZATION_FAILED)
        } else {
            None
        };
        for p in &t.partition_data {
            let slot = results.len();
            results.push(error(code::NONE, None));
            let owner = image.owner(&t.name.0, p.index);
            let check = if let Some(denied) = denied {
                Err(Refused::whole(denied, "not authorized"))
            } else if crate::metadata::is_internal(&t.name.0) {
                Err(Refused::whole(
                    code::INVALID_TOPIC_EXCEPTION,
                    "clients cannot write to internal topics",
                ))
            } else if acks.is_none() {
                Err(Refused::whole(
                    code::INVALID_REQUIRED_ACKS,
                    format!("acks must be -1, 0 or 1, not {}", req.acks),
                ))
            } else if owner.is_none() {
                Err(Refused::whole(
                    image.not_here_code(&t.name.0, p.index),
                    "This server does not host this topic-partition.",
                ))
            } else {
                let settings = settings.as_ref().expect("owner implies topic");
                let target = Target {
                    topic: &t.name.0,
                    partition: p.index,
                    now_ms: now,
                };
                validate_records(p.records.as_ref(), settings, &target)
            };
            match (check, owner) {
                (Ok(rebuilt), Some(owner)) => {
                    let records = rebuilt.unwrap_or_else(|| p.records.clone().unwrap_or_default());
                    let (producer_id, txn) = producer_of(req.transactional_id.as_ref(), &records);
                    let checks = settings
                        .as_ref()
                        .map(|s| schema_checks(&t.name.0, &records, s))
                        .unwrap_or_default();
                    let item = ProduceItem {
                        topic: t.name.0.to_string(),
                        partition: p.index,
                        records,
                        log_append_time: settings.as_ref().is_some_and(|s| s.log_append_time),
                        producer_id,
                        txn,
                    };
                    if checks.is_empty() {
                        split.push(owner, slot, item)
                    } else {
                        held.push((owner, slot, item, checks))
                    }
                }
                (Err(refused), _) => results[slot] = refused.into(),
                (Ok(_), None) => unreachable!("owner checked above"),
            }
        }
    }
    if !held.is_empty() {
        let all: Vec<IdCheck> = held.iter().flat_map(|(_, _, _, c)| c.clone()).collect();
        let mut answers = ctx.check_schema_ids(all).await.into_iter();
        for (owner, slot, item, checks) in held {
            let mine: Vec<Result<(), String>> = answers.by_ref().take(checks.len()).collect();
            // Every record at fault is named (KIP-467); a record whose key and value both
            // fail is named once, for the first.
            let mut record_errors: Vec<(i32, String)> = Vec::new();
            for (check, answer) in checks.iter().zip(mine) {
                if let Err(why) = answer {
                    if record_errors.last().map(|(i, _)| *i) != Some(check.index as i32) {
                        let why = format!("schema validation failed on the broker: {why}");
                        record_errors.push((check.index as i32, why));
                    }
                }
            }
            if record_errors.is_empty() {
                split.push(owner, slot, item);
            } else {
                let message = format!(
                    "{} records failed schema validation on the broker (record {}: {})",
                    record_errors.len(),
                    record_errors[0].0,
                    record_errors[0].1
                );
                results[slot] = Refused {
                    code: code::INVALID_RECORD,
                    message,
                    record_errors,
                }
                .into();
            }
        }
    }
    if let Some(acks) = acks {
        // acks=all waits at most the request's timeout_ms for replication, then answers
        // REQUEST_TIMED_OUT (the write may still commit later), as Kafka does.
        let timeout_ms = req.timeout_ms.max(0) as u64;
        let version = header.api_version;
        let make = |items| AppendOnOwner {
            acks,
            timeout_ms,
            version,
            items,
        };
        let unavailable = || error(code::LEADER_NOT_AVAILABLE, Some("shard stopping".into()));
        ctx.fan_out(split, &mut results, make, unavailable).await;
        // The partitions committed concurrently: the request waited as long as the slowest.
        let waited = results.iter().map(|r| r.waited).max().unwrap_or_default();
        ctx.clock().add_remote(waited);
    }
    // producer_byte_rate: the request's bytes, as Kafka records them; acks=0 gets no answer
    // to carry the time, so only the muting holds it back.
    let client_id = header.client_id.as_deref().unwrap_or("");
    let throttle_ms = ctx
        .record_quota(client_id, QuotaKey::ProducerByteRate, body.len() as f64)
        .await;
    ctx.throttle(throttle_ms);
    if req.acks == 0 {
        return Response::Nothing;
    }
    let mut response = build_response(&ctx, &req, results, header.api_version);
    if header.api_version >= 1 {
        response.throttle_time_ms = throttle_ms.min(i32::MAX as u64) as i32;
    }
    respond(&header, &response)
}

/// One partition's validated batches, for its owning shard.
pub struct ProduceItem {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// One or more validated batches.
    pub records: Bytes,
    /// The topic's `message.timestamp.type` is LogAppendTime (decided by the validating
    /// shard, from the same settings it validated with).
    pub log_append_time: bool,
    /// The first batch's producer id, -1 when it has none (not idempotent).
    pub producer_id: i64,
    /// Transactional batches: (transactional id, producer id, epoch), verified with the
    /// coordinator before the producer's first append in a transaction here (KIP-890).
    pub txn: Option<(String, i64, i16)>,
}

/// The producer of a partition's batches (the first batch's), and the transaction they belong
/// to: the request's transactional id with that producer, when the batch is transactional.
/// One header parse per item on the produce path.
fn producer_of(
    txn_id: Option<&kafka_protocol::messages::TransactionalId>,
    records: &Bytes,
) -> (i64, Option<(String, i64, i16)>) {
    let Ok(h) = BatchHeader::parse(records) else {
        return (-1, None);
    };
    let txn = txn_id
        .filter(|_| h.is_transactional() && h.producer_id >= 0)
        .map(|id| (id.0.to_string(), h.producer_id, h.producer_epoch));
    (h.producer_id.max(-1), txn)
}

/// A failed KIP-890 verification (or implicit add, from v12) as Produce answers it (Kafka's
/// mapping): a fenced producer is INVALID_PRODUCER_EPOCH; a partition not in the transaction
/// TRANSACTION_ABORTABLE from v11, INVALID_TXN_STATE before; a coordinator busy
/// (CONCURRENT_TRANSACTIONS, which v12 clients get as it is) or out of reach
/// NOT_ENOUGH_REPLICAS, so old clients retry without refreshing metadata.
fn verification_code(e: crate::txn::TxnError, version: i16) -> i16 {
    use crate::txn::TxnError;
    match e {
        TxnError::Fenced => code::INVALID_PRODUCER_EPOCH,
        TxnError::Code(code::TRANSACTION_ABORTABLE) if version < 11 => code::INVALID_TXN_STATE,
        TxnError::Code(code::CONCURRENT_TRANSACTIONS) if version >= 12 => {
            code::CONCURRENT_TRANSACTIONS
        }
        TxnError::Code(
            code::CONCURRENT_TRANSACTIONS
            | code::NOT_COORDINATOR
            | code::COORDINATOR_NOT_AVAILABLE
            | code::COORDINATOR_LOAD_IN_PROGRESS,
        ) => code::NOT_ENOUGH_REPLICAS,
        TxnError::Code(c) => c,
    }
}

/// The message of a failed verification or implicit add.
fn verification_message(e: crate::txn::TxnError) -> String {
    use crate::txn::TxnError;
    match e {
        TxnError::Fenced => "the producer was fenced by a newer epoch".into(),
        TxnError::Code(code::TRANSACTION_ABORTABLE | code::INVALID_TXN_STATE) => {
            "the partition is not in the producer's transaction".into()
        }
        TxnError::Code(c) => format!(
            "the transaction's coordinator could not take the partition yet: {}",
            millrace_wire::codes::name(c)
        ),
    }
}

/// One partition's produce outcome.
#[derive(Debug, Clone)]
pub struct ProduceResult {
    /// Kafka error code.
    pub error_code: i16,
    /// Error text, if any.
    pub error_message: Option<String>,
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Broker append time, or -1.
    pub log_append_time_ms: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// How long the owner waited for the write to commit (replication and the group commit).
    pub waited: std::time::Duration,
    /// KIP-467: the records at fault (index among the partition's records, why).
    pub record_errors: Vec<(i32, String)>,
}

impl From<Refused> for ProduceResult {
    fn from(r: Refused) -> ProduceResult {
        ProduceResult {
            record_errors: r.record_errors,
            ..error(r.code, Some(r.message))
        }
    }
}

/// Appends to partitions the target shard owns and answers once `acks` is met for each.
pub struct AppendOnOwner {
    acks: Acks,
    /// The request's `timeout_ms`: the longest an acks=all write waits for replication.
    timeout_ms: u64,
    /// The request's version (which transaction error codes it knows).
    version: i16,
    items: Vec<(usize, ProduceItem)>,
}

impl Call<Shard> for AppendOnOwner {
    type Reply = Vec<(usize, ProduceResult)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let now = millrace_shard::time::now_ms();
        let mut results = Vec::with_capacity(self.items.len());
        let mut waits = Vec::new();
        // Stage zero, before any wait: every idempotent or transactional batch takes its place
        // in its producer's queue on its partition, in arrival order. Stage one may wait
        // before an append (verification, a full buffer, an earlier item of this request on
        // another partition); the tickets keep a later request's batch of the same producer
        // from overtaking this one meanwhile.
        let tickets: Vec<_> = self
            .items
            .iter()
            .map(|(_, item)| {
                let partition = shard.partition(&item.topic, item.partition)?;
                (item.producer_id >= 0).then(|| partition.append_ticket(item.producer_id))
            })
            .collect();
        // Stage one, in request order: offsets are assigned and the batches are in the logs.
        for ((slot, item), ticket) in self.items.into_iter().zip(tickets) {
            let Some(partition) = shard.partition(&item.topic, item.partition) else {
                results.push((slot, error(code::UNKNOWN_TOPIC_OR_PARTITION, None)));
                continue;
            };
            if !partition.is_leader() {
                results.push((slot, error(code::NOT_LEADER_OR_FOLLOWER, None)));
                continue;
            }
            if self.acks == Acks::All {
                if let Err(refusal) = partition.check_acks_all() {
                    results.push((slot, refused(refusal)));
                    continue;
                }
            }
            if let Some(ticket) = &ticket {
                // Held until this batch is in the log (the end of this iteration).
                ticket.turn().await;
                if !partition.is_leader() {
                    results.push((slot, error(code::NOT_LEADER_OR_FOLLOWER, None)));
                    continue;
                }
            }
            if let Some((txn_id, pid, epoch)) = &item.txn {
                if partition
                    .producer_epoch(*pid)
                    .is_some_and(|seen| seen > *epoch)
                {
                    // A batch of a producer this partition has seen fenced (by a newer epoch
                    // or, under Transactions V2, the marker of the transaction it belongs
                    // to): no need to ask the coordinator.
                    let message = "the producer's epoch is older than this partition's";
                    let code = code::INVALID_PRODUCER_EPOCH;
                    results.push((slot, error(code, Some(message.into()))));
                    continue;
                }
                if !partition.has_open_transaction(*pid, *epoch) {
                    let at = (item.topic.clone(), item.partition);
                    // From v12 (Transactions V2) the leader adds the partition itself.
                    let add = self.version >= 12;
                    let producer = (*pid, *epoch);
                    let verified = crate::txn::verify(&shard, txn_id, producer, at, add).await;
                    if let Err(e) = verified {
                        let code = verification_code(e, self.version);
                        results.push((slot, error(code, Some(verification_message(e)))));
                        continue;
                    }
                    if !partition.is_leader() {
                        results.push((slot, error(code::NOT_LEADER_OR_FOLLOWER, None)));
                        continue;
                    }
                }
            }
            match append(&partition, &item, now).await {
                Ok(o) => {
                    let epoch = partition.leader_epoch();
                    results.push((
                        slot,
                        ProduceResult {
                            error_code: code::NONE,
                            error_message: None,
                            base_offset: o.base_offset,
                            log_append_time_ms: o.log_append_time_ms,
                            log_start_offset: partition.log_start_offset(),
                            waited: std::time::Duration::ZERO,
                            record_errors: Vec::new(),
                        },
                    ));
                    if !o.duplicate {
                        let records = o.last_offset - o.base_offset + 1;
                        crate::stats::produced(&item.topic, item.records.len(), records as u64);
                    }
                    if !o.duplicate || !partition.is_committed(o.last_offset) {
                        waits.push((results.len() - 1, partition, o.last_offset, epoch));
                    }
                }
                Err(e) => {
                    tracing::debug!(topic = %item.topic, partition = item.partition, error = %e, "append refused");
                    results.push((slot, error(storage_code(&e), Some(e.to_string()))));
                }
            }
        }
        // Stage two: every partition touched commits concurrently; one group commit per log
        // covers every append made before it, from this request and any other.
        let acks = self.acks;
        let timeout = std::time::Duration::from_millis(self.timeout_ms);
        let waits = waits
            .into_iter()
            .map(|(i, partition, last, epoch)| async move {
                let t0 = millrace_shard::time::Instant::now();
                let outcome = partition.committed(last, epoch, acks, timeout).await;
                (i, outcome, t0.elapsed())
            });
        for (i, outcome, waited) in join_all(waits.collect()).await {
            results[i].1.waited = waited;
            let Err(e) = outcome else { continue };
            let error_code = match &e {
                CommitError::Storage(s) => {
                    tracing::error!(error = %e, "group commit failed");
                    storage_code(s)
                }
                CommitError::Refused(refusal) => refused(*refusal).error_code,
                CommitError::TimedOut => code::REQUEST_TIMED_OUT,
            };
            if acks != Acks::None {
                let r = &mut results[i].1;
                r.error_code = error_code;
                r.error_message = Some(e.to_string());
                r.base_offset = -1;
            }
        }
        results
    }
}

/// The answer to an acks=all write the replication rules refused.
fn refused(refusal: AcksRefusal) -> ProduceResult {
    let (code, message) = match refusal {
        AcksRefusal::NotEnoughReplicas => (
            code::NOT_ENOUGH_REPLICAS,
            "fewer in-sync replicas than min.insync.replicas",
        ),
        AcksRefusal::NotEnoughReplicasAfterAppend => (
            code::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            "the in-sync replicas fell below min.insync.replicas after the append",
        ),
        AcksRefusal::NotLeader => (
            code::NOT_LEADER_OR_FOLLOWER,
            "leadership moved before the write committed",
        ),
    };
    error(code, Some(message.to_string()))
}

/// Stage one for one partition; when too much waits for the disk, waits for the group commit
/// and tries once more.
async fn append(
    partition: &crate::shard::Partition,
    item: &ProduceItem,
    now: i64,
) -> Result<millrace_storage::AppendOutcome, StorageError> {
    let records = || BytesMut::from(&item.records[..]);
    partition
        .append_in_order(records, now, item.log_append_time)
        .await
}

fn error(error_code: i16, message: Option<String>) -> ProduceResult {
    ProduceResult {
        error_code,
        error_message: message,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
        waited: std::time::Duration::ZERO,
        record_errors: Vec::new(),
    }
}

/// The schema-id checks a topic with `confluent.{key,value}.schema.validation` asks of its
/// records (null keys and values are not checked: a tombstone carries no schema).
fn schema_checks(topic: &str, records: &Bytes, settings: &TopicSettings) -> Vec<IdCheck> {
    if settings.key_schema.is_none() && settings.value_schema.is_none() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut index = 0;
    for step in BatchIter::new(records) {
        let BatchStep::Batch { bytes, .. } = step else {
            break;
        };
        let Ok(decoded) = decode_records(bytes, DECOMPRESSED_BYTES_MAX) else {
            // Validated already; a batch that cannot be decoded carries no valid id.
            out.push(IdCheck {
                topic: topic.to_string(),
                key: false,
                strategy: settings
                    .value_schema
                    .or(settings.key_schema)
                    .expect("one is set"),
                id: None,
                index,
            });
            continue;
        };
        for r in decoded {
            for (key, strategy, data) in [
                (true, settings.key_schema, &r.key),
                (false, settings.value_schema, &r.value),
            ] {
                if let (Some(strategy), Some(data)) = (strategy, data) {
                    out.push(IdCheck {
                        topic: topic.to_string(),
                        key,
                        strategy,
                        id: crate::registry::schema_id(data),
                        index,
                    });
                }
            }
            index += 1;
        }
    }
    out
}

/// The response; from v10, a partition answered NOT_LEADER_OR_FOLLOWER names the leader
/// this broker knows (`current_leader`) and the response carries that leader's endpoint
/// (`node_endpoints`), so a client retries there without a metadata round trip (KIP-951).
fn build_response(
    ctx: &Context,
    req: &ProduceRequest,
    results: Vec<ProduceResult>,
    version: i16,
) -> ProduceResponse {
    let image = ctx.image();
    let mut hinted: Vec<i32> = Vec::new();
    let mut hint = |topic: &str, partition: i32| -> Option<LeaderIdAndEpoch> {
        let meta = image.topics.get(topic)?;
        let state = image.cluster.partition(&meta.topic_id, partition)?;
        if state.leader >= 0 && !hinted.contains(&state.leader) {
            hinted.push(state.leader);
        }
        Some(
            LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(state.leader))
                .with_leader_epoch(state.leader_epoch),
        )
    };
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
                    let leader = (version >= 10 && r.error_code == code::NOT_LEADER_OR_FOLLOWER)
                        .then(|| hint(t.name.as_str(), p.index))
                        .flatten()
                        .unwrap_or_default();
                    PartitionProduceResponse::default()
                        .with_current_leader(leader)
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
                        .with_record_errors(if version >= 8 {
                            record_errors(r.record_errors)
                        } else {
                            Vec::new()
                        })
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(partition_responses)
        })
        .collect();
    let node_endpoints = ctx
        .brokers()
        .into_iter()
        .filter(|b| hinted.contains(&b.id))
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect();
    ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(node_endpoints)
}

/// KIP-467's list of the records at fault, as Produce v8+ carries it.
fn record_errors(errors: Vec<(i32, String)>) -> Vec<BatchIndexAndErrorMessage> {
    errors
        .into_iter()
        .map(|(index, why)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(index)
                .with_batch_index_error_message(Some(str_bytes(&why)))
        })
        .collect()
}
