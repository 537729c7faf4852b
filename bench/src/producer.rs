//! One producer: a task on an executor that generates records on schedule, batches them per
//! partition (batch size and linger, as Kafka's producer does), and sends each leader's ready
//! batches in one Produce request over a pipelined connection.
//!
//! The generator and the sender are the same task: when `max_in_flight` requests are
//! unanswered the send waits, and so does generation. At a fixed rate the schedule keeps
//! running meanwhile (see [`crate::rate`]), so the stall shows up in the latency of the
//! records that were due during it.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::Decodable;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::batch::{OpenBatch, SealedBatch, STAMP_BYTES};
use crate::conn::Conn;
use crate::keys::{key_bytes, partition_for_key, KeyDistribution, KeySource, Sticky};
use crate::rate::Schedule;
use crate::run::{Clock, Executor};
use crate::stats::record_ns;
use crate::BenchError;
use millrace_security::client::ClientSecurity;

/// Everything a producer needs; built on the main thread, sent to an executor.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    /// Producer number (for seeds and ids).
    pub index: usize,
    /// Topic.
    pub topic: String,
    /// Leader address of each partition (index = partition).
    pub leaders: Vec<String>,
    /// TLS and SASL for the connections (`--command-config`).
    pub security: Arc<ClientSecurity>,
    /// Bytes of each record's value (at least the 8-byte stamp).
    pub record_size: usize,
    /// Key distribution.
    pub keys: KeyDistribution,
    /// This producer's records per second; None = unlimited.
    pub rate: Option<f64>,
    /// acks: 0, 1 or -1 (all).
    pub acks: i16,
    /// Codec.
    pub compression: millrace_wire::Compression,
    /// Seal a partition's batch at this many bytes.
    pub batch_size: usize,
    /// Seal a batch this long after its first record.
    pub linger_ns: u64,
    /// Unanswered requests per connection.
    pub max_in_flight: usize,
    /// Produce request version.
    pub produce_version: i16,
    /// Idempotent producer id and epoch.
    pub idempotent: Option<(i64, i16)>,
    /// Base seed; the producer's own is derived from it and `index`.
    pub seed: u64,
    /// Stop generating at this time (ns since start).
    pub end_ns: u64,
}

/// Records generated between two looks at linger deadlines and ready batches.
const GENERATE_BURST: usize = 512;

struct PartitionState {
    batch: OpenBatch,
    next_sequence: i32,
}

/// Runs one producer until `spec.end_ns`, then sends what is batched and waits for answers.
pub async fn run(spec: ProducerSpec, exec: Rc<Executor>) -> Result<(), BenchError> {
    let mut rng = SmallRng::seed_from_u64(spec.seed ^ (spec.index as u64).wrapping_mul(0x9e37));
    let filler = filler(&mut rng, spec.record_size.saturating_sub(STAMP_BYTES));
    let keys = KeySource::new(spec.keys.clone());
    let mut conns: BTreeMap<String, Conn> = BTreeMap::new();
    for address in &spec.leaders {
        if !conns.contains_key(address) {
            conns.insert(
                address.clone(),
                Conn::connect(address, spec.max_in_flight, &spec.security).await?,
            );
        }
    }
    let partitions = spec.leaders.len() as i32;
    let mut state: Vec<PartitionState> = (0..partitions)
        .map(|_| PartitionState {
            batch: OpenBatch::default(),
            next_sequence: 0,
        })
        .collect();
    let clock = exec.clock;
    let mut schedule = Schedule::new(clock.now_ns(), spec.rate);
    let mut sticky = Sticky::new(spec.index as i32, partitions, spec.batch_size);
    let mut ready: Vec<SealedBatch> = Vec::new();
    let mut key = Vec::with_capacity(24);
    loop {
        let now = clock.now_ns();
        if now >= spec.end_ns {
            break;
        }
        let wall_ms = clock.wall_ms(now);
        for _ in 0..GENERATE_BURST {
            let Some(intended) = schedule.take_due(now) else {
                break;
            };
            let partition = match keys.next_rank(&mut rng) {
                Some(rank) => {
                    key_bytes(rank, &mut key);
                    partition_for_key(&key, partitions)
                }
                None => sticky.partition(),
            };
            let key = (spec.keys != KeyDistribution::None).then_some(&key[..]);
            let filler_at = rng.random_range(0..=filler.len() / 2);
            let value = &filler[filler_at..filler_at + spec.record_size - STAMP_BYTES];
            let p = &mut state[partition as usize];
            let before = p.batch.size_bytes();
            p.batch.append(key, value, intended, now, wall_ms);
            let added = p.batch.size_bytes() - before;
            let full = p.batch.size_bytes() >= spec.batch_size;
            if full {
                ready.push(seal(&spec, partition, p));
            }
            if key.is_none() {
                sticky.appended(added, full);
            }
        }
        for (partition, p) in state.iter_mut().enumerate() {
            if !p.batch.is_empty() && p.batch.opened_ns + spec.linger_ns <= now {
                ready.push(seal(&spec, partition as i32, p));
            }
        }
        if !ready.is_empty() {
            // Everything sealed goes out before more is generated: the in-flight bound is
            // then the only queue, and a slow broker slows the generator down.
            while !ready.is_empty() {
                send_ready(&spec, &exec, &mut conns, &mut ready).await?;
            }
        } else {
            idle_wait(&spec, &clock, &schedule, &state).await;
        }
        millrace_shard::time::yield_if_needed().await;
    }
    for (partition, p) in state.iter_mut().enumerate() {
        if !p.batch.is_empty() {
            ready.push(seal(&spec, partition as i32, p));
        }
    }
    while !ready.is_empty() {
        send_ready(&spec, &exec, &mut conns, &mut ready).await?;
    }
    for conn in conns.values() {
        conn.drain().await?;
    }
    Ok(())
}

/// Random printable bytes to slice values from (twice the value size, so slices vary).
fn filler(rng: &mut SmallRng, value_bytes: usize) -> Vec<u8> {
    (0..value_bytes * 2 + 1)
        .map(|_| rng.random_range(b'A'..=b'Z'))
        .collect()
}

fn seal(spec: &ProducerSpec, partition: i32, p: &mut PartitionState) -> SealedBatch {
    let count = p.batch.len() as i32;
    let (pid, epoch, sequence) = match spec.idempotent {
        Some((pid, epoch)) => (pid, epoch, p.next_sequence),
        None => (-1, -1, -1),
    };
    p.next_sequence = p.next_sequence.wrapping_add(count) & i32::MAX;
    p.batch
        .seal(partition, spec.compression, pid, epoch, sequence)
}

/// Sleeps until the next record is due or the oldest batch's linger ends (never past the end).
async fn idle_wait(
    spec: &ProducerSpec,
    clock: &Clock,
    schedule: &Schedule,
    state: &[PartitionState],
) {
    let now = clock.now_ns();
    let mut wake = spec.end_ns;
    if schedule.is_fixed() {
        wake = wake.min(schedule.next_due_ns(now));
    }
    for p in state.iter().filter(|p| !p.batch.is_empty()) {
        wake = wake.min(p.batch.opened_ns + spec.linger_ns);
    }
    if wake > now {
        millrace_shard::time::sleep(std::time::Duration::from_nanos(wake - now)).await;
    }
}

/// Sends the ready batches: per leader one request with at most one batch per partition
/// (idempotent producers must not put two batches of a partition in one request); batches
/// left over go in the next round.
async fn send_ready(
    spec: &ProducerSpec,
    exec: &Rc<Executor>,
    conns: &mut BTreeMap<String, Conn>,
    ready: &mut Vec<SealedBatch>,
) -> Result<(), BenchError> {
    let mut by_leader: BTreeMap<&str, Vec<SealedBatch>> = BTreeMap::new();
    let mut later = Vec::new();
    for batch in ready.drain(..) {
        let leader = spec.leaders[batch.partition as usize].as_str();
        let group = by_leader.entry(leader).or_default();
        if group.iter().any(|b| b.partition == batch.partition) {
            later.push(batch);
        } else {
            group.push(batch);
        }
    }
    for (leader, batches) in by_leader {
        let conn = conns.get_mut(leader).expect("a connection per leader");
        send_request(spec, exec, conn, batches).await?;
    }
    *ready = later;
    Ok(())
}

async fn send_request(
    spec: &ProducerSpec,
    exec: &Rc<Executor>,
    conn: &mut Conn,
    batches: Vec<SealedBatch>,
) -> Result<(), BenchError> {
    let mut topic = TopicProduceData::default();
    topic.name = crate::setup::topic_name(&spec.topic);
    topic.partition_data = batches
        .iter()
        .map(|b| {
            let mut data = PartitionProduceData::default();
            data.index = b.partition;
            data.records = Some(b.bytes.clone());
            data
        })
        .collect();
    let mut request = ProduceRequest::default();
    request.acks = spec.acks;
    request.timeout_ms = 30_000;
    request.topic_data = vec![topic];
    let sent: u64 = batches.iter().map(|b| b.intended_ns.len() as u64).sum();
    exec.window.borrow_mut().sent_records += sent;
    if spec.acks == 0 {
        conn.send(&request, spec.produce_version, None).await?;
        let now = exec.clock.now_ns();
        for b in &batches {
            acknowledge(exec, b, now, true);
        }
        return Ok(());
    }
    let version = spec.produce_version;
    let exec_reply = exec.clone();
    let reply = Box::new(move |result: Result<Bytes, BenchError>| {
        let now = exec_reply.clock.now_ns();
        let codes = result.and_then(|body| partition_errors(body, version));
        for b in &batches {
            let ok = match &codes {
                Ok(codes) => codes.get(&b.partition) == Some(&0),
                Err(_) => false,
            };
            if !ok {
                let code = codes
                    .as_ref()
                    .ok()
                    .and_then(|c| c.get(&b.partition).copied());
                exec_reply.note_error(format!(
                    "produce to partition {}: {}",
                    b.partition,
                    match (&codes, code) {
                        (Err(e), _) => e.to_string(),
                        (_, Some(c)) => format!("error code {c}"),
                        (_, None) => "missing from the response".into(),
                    }
                ));
            }
            acknowledge(&exec_reply, b, now, ok);
        }
    });
    conn.send(&request, version, Some(reply)).await
}

fn acknowledge(exec: &Executor, batch: &SealedBatch, now: u64, ok: bool) {
    let records = batch.intended_ns.len() as u64;
    let mut w = exec.window.borrow_mut();
    if ok {
        w.acked_records += records;
        w.acked_bytes += batch.value_bytes;
        let measure_from = exec.measure_from_ns;
        for &intended in &batch.intended_ns {
            if intended >= measure_from {
                record_ns(&mut w.produce_latency, now.saturating_sub(intended));
            }
        }
        exec.shared
            .acked_records
            .fetch_add(records, Ordering::Relaxed);
    } else {
        w.produce_errors += records;
        exec.shared
            .produce_errors
            .fetch_add(records, Ordering::Relaxed);
    }
}

/// partition -> error code from a Produce response (one topic).
fn partition_errors(mut body: Bytes, version: i16) -> Result<BTreeMap<i32, i16>, BenchError> {
    let response = ProduceResponse::decode(&mut body, version)
        .map_err(|e| BenchError::Protocol(format!("Produce v{version} response: {e}")))?;
    Ok(response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| (p.index, p.error_code))
        .collect())
}
