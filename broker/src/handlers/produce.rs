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
use millrace_storage::{SharedBuffer, StorageError};
use millrace_wire::frame::RequestHeader;
use millrace_wire::records::{decode_records, BatchHeader, BatchIter, BatchStep};
use std::rc::Rc;
use validate::{validate_records, Refused, Target, DECOMPRESSED_BYTES_MAX};

mod validate;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let mut req: ProduceRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let body_len = body.len();
    let mut results: Vec<ProduceResult> = Vec::new();
    let mut split: Split<ProduceItem> = Split::default();
    // The partitions to append, their records still slices of the request: (owner, result
    // slot, the item without its records, the records, schema checks).
    let mut accepted: Vec<(usize, usize, ProduceItem, Bytes, Vec<IdCheck>)> = Vec::new();
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
                        records: BytesMut::new(),
                        shared_bytes: None,
                        log_append_time: settings.as_ref().is_some_and(|s| s.log_append_time),
                        producer_id,
                        txn,
                    };
                    accepted.push((owner, slot, item, records, checks));
                }
                (Err(refused), _) => results[slot] = refused.into(),
                (Ok(_), None) => unreachable!("owner checked above"),
            }
        }
    }
    // The owners stamp the records where they are: the request's buffer is split among them
    // rather than copied, once nothing else refers to it.
    release_body(&mut req);
    let slices = accepted
        .iter_mut()
        .map(|a| std::mem::take(&mut a.3))
        .collect();
    let owned = take_records(body, slices);
    for ((owner, slot, mut item, _, checks), (records, shared_bytes)) in
        accepted.into_iter().zip(owned)
    {
        item.records = records;
        item.shared_bytes = shared_bytes;
        if checks.is_empty() {
            split.push(owner, slot, item)
        } else {
            held.push((owner, slot, item, checks))
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
        .record_quota(client_id, QuotaKey::ProducerByteRate, body_len as f64)
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

/// Makes `req` refer to nothing of the request's buffer (its records were taken; names are
/// copied, unknown tagged fields dropped), so that the buffer can be split among the owners.
fn release_body(req: &mut ProduceRequest) {
    use kafka_protocol::messages::{TopicName, TransactionalId};
    if let Some(id) = req.transactional_id.as_mut() {
        *id = TransactionalId(str_bytes(id.0.as_str()));
    }
    req.unknown_tagged_fields.clear();
    for t in &mut req.topic_data {
        t.name = TopicName(str_bytes(t.name.0.as_str()));
        t.unknown_tagged_fields.clear();
        for p in &mut t.partition_data {
            p.records = None;
            p.unknown_tagged_fields.clear();
        }
    }
}

/// Where `slice` lies in `body`, if it is a slice of it.
fn offset_in(body: &Bytes, slice: &Bytes) -> Option<usize> {
    let start = (slice.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    (start + slice.len() <= body.len()).then_some(start)
}

/// The accepted partitions' records as buffers their owners may stamp in place, each with the
/// size of the buffer it shares with the others (`None`: a buffer of its own).
///
/// When the accepted records are slices of `body` making up at least half of it, and nothing
/// else refers to `body` any more (the connection and `release_body` let go of it), `body`
/// is split among them: no copy. Each owner's cache then charges the whole request buffer
/// (its header included, [`super::BODY_PREFIX_MAX`]) for as long as any of these
/// batches is cached, since any slice keeps all of it allocated. Otherwise, when refused
/// partitions would make most of what stays allocated, each partition's records are copied
/// into a buffer of their own, as records rebuilt by the validation already are.
fn take_records(body: Bytes, slices: Vec<Bytes>) -> Vec<(BytesMut, Option<usize>)> {
    let own = |b: Bytes| b.try_into_mut().unwrap_or_else(|b| BytesMut::from(&b[..]));
    let at: Vec<Option<usize>> = slices
        .iter()
        .map(|s| offset_in(&body, s).filter(|_| !s.is_empty()))
        .collect();
    let sliced: usize = slices
        .iter()
        .zip(&at)
        .filter(|(_, at)| at.is_some())
        .map(|(s, _)| s.len())
        .sum();
    // The decoder hands out the records in request order: ascending, never overlapping.
    let mut end = 0;
    let ordered = slices.iter().zip(&at).all(|(s, at)| match at {
        Some(start) if *start < end => false,
        Some(start) => {
            end = start + s.len();
            true
        }
        None => true,
    });
    if sliced == 0 || sliced * 2 < body.len() || !ordered {
        return slices.into_iter().map(|s| (own(s), None)).collect();
    }
    let lens: Vec<usize> = slices.iter().map(Bytes::len).collect();
    // Rebuilt records (not slices of the body) are their own buffers; the slices let go.
    let mut out: Vec<Option<(BytesMut, Option<usize>)>> = slices
        .into_iter()
        .zip(&at)
        .map(|(s, at)| at.is_none().then(|| (own(s), None)))
        .collect();
    let shared = Some(body.len() + super::BODY_PREFIX_MAX);
    match body.try_into_mut() {
        Ok(mut whole) => {
            let mut cursor = 0;
            for ((slot, at), len) in out.iter_mut().zip(&at).zip(&lens) {
                if let Some(start) = at {
                    bytes::Buf::advance(&mut whole, start - cursor);
                    *slot = Some((whole.split_to(*len), shared));
                    cursor = start + len;
                }
            }
        }
        Err(body) => {
            for ((slot, at), len) in out.iter_mut().zip(&at).zip(&lens) {
                if let Some(start) = at {
                    *slot = Some((BytesMut::from(&body[*start..start + len]), None));
                }
            }
        }
    }
    out.into_iter()
        .map(|o| o.expect("every partition's records taken"))
        .collect()
}

/// One partition's validated batches, for its owning shard.
pub struct ProduceItem {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// One or more validated batches, stamped in place by the owner and taken by its log.
    pub records: BytesMut,
    /// When `records` is a slice of the request's buffer that other partitions' records are
    /// slices of too: that buffer's size, which the owner's cache charges whole.
    pub shared_bytes: Option<usize>,
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
    records: &[u8],
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
        // Every item of one call comes from one request: at most one buffer they share.
        let shared = self
            .items
            .iter()
            .find_map(|(_, item)| item.shared_bytes)
            .map(SharedBuffer::new);
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
        for ((slot, mut item), ticket) in self.items.into_iter().zip(tickets) {
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
            let shared = item.shared_bytes.and(shared.as_ref());
            let records_len = item.records.len();
            match append(&partition, &mut item, shared, now).await {
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
                        crate::stats::produced(&item.topic, records_len, records as u64);
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
    item: &mut ProduceItem,
    shared: Option<&Rc<SharedBuffer>>,
    now: i64,
) -> Result<millrace_storage::AppendOutcome, StorageError> {
    partition
        .append_in_order(&mut item.records, shared, now, item.log_append_time)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body: a 20-byte head, then three partitions' records of 100 bytes each.
    fn request() -> (Bytes, Vec<Bytes>) {
        let body: Vec<u8> = (0..320u32).map(|i| i as u8).collect();
        let body = Bytes::from(body);
        let slices = (0..3)
            .map(|i| body.slice(20 + i * 100..120 + i * 100))
            .collect();
        (body, slices)
    }

    fn in_buffer(piece: &BytesMut, start: *const u8, len: usize) -> bool {
        let at = piece.as_ptr() as usize;
        at >= start as usize && at + piece.len() <= start as usize + len
    }

    #[test]
    fn a_request_buffer_nothing_else_holds_is_split_among_its_partitions() {
        let (body, slices) = request();
        let (start, len) = (body.as_ptr(), body.len());
        let out = take_records(body, slices);
        assert_eq!(out.len(), 3);
        for (i, (piece, shared)) in out.iter().enumerate() {
            let expect: Vec<u8> = (20 + i * 100..120 + i * 100).map(|b| b as u8).collect();
            assert_eq!(&piece[..], &expect[..]);
            assert!(in_buffer(piece, start, len), "partition {i} was copied");
            assert_eq!(*shared, Some(320 + crate::handlers::BODY_PREFIX_MAX));
        }
    }

    #[test]
    fn records_are_copied_when_the_buffer_is_held_elsewhere_or_mostly_refused() {
        // Someone else holds the buffer: nothing may be written into it.
        let (body, slices) = request();
        let held = body.clone();
        for (piece, shared) in take_records(body, slices) {
            assert!(!in_buffer(&piece, held.as_ptr(), held.len()));
            assert_eq!(shared, None);
        }
        // Only one partition of three accepted: a third of the buffer would pin all of it.
        let (body, mut slices) = request();
        slices.truncate(1);
        let (start, len) = (body.as_ptr(), body.len());
        let out = take_records(body, slices);
        assert!(!in_buffer(&out[0].0, start, len));
        assert_eq!(out[0].1, None);
        assert_eq!(out[0].0[0], 20);
    }

    #[test]
    fn rebuilt_records_keep_their_own_buffer_beside_split_ones() {
        let (body, mut slices) = request();
        let rebuilt = Bytes::from(vec![7u8; 50]);
        slices[1] = rebuilt;
        let (start, len) = (body.as_ptr(), body.len());
        let out = take_records(body, slices);
        assert!(in_buffer(&out[0].0, start, len) && in_buffer(&out[2].0, start, len));
        assert_eq!((&out[1].0[..], out[1].1), (&[7u8; 50][..], None));
        assert_eq!((out[0].0[0], out[2].0[0]), (20, 220));
    }
}
