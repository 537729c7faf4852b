//! One consumer: per leader, a task that long-polls Fetch for its partitions, checks every
//! batch's CRC-32C (unless `--check-crcs false`), counts records and value bytes, and (for
//! e2e) measures each record's latency from the intended send time stamped in its value.
//!
//! Brokers return whole batches, so records below the fetch position are skipped, as Kafka's
//! consumers do. One Fetch is in flight per connection: the next position depends on the
//! answer.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::protocol::Decodable;
use millrace_wire::records::{validate_stored_batch, BatchIter, BatchStep, BATCH_HEADER_BYTES};
use millrace_wire::varint::Cursor;
use millrace_wire::Compression;

use crate::batch::STAMP_BYTES;
use crate::conn::Conn;
use crate::run::Executor;
use crate::stats::record_ns;
use crate::BenchError;
use millrace_security::client::ClientSecurity;
use millrace_wire::codes::NONE;

/// Largest decompressed batch a consumer accepts.
const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// When a consumer stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// When every partition reached its end offset (catch-up), or at the deadline.
    EndOffsets,
    /// At the deadline (tailing).
    Deadline,
    /// Once the producers are done and everything they had acknowledged was consumed, or at
    /// the deadline plus the drain timeout.
    ProducersDrained,
}

/// Everything a consumer needs.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Consumer number.
    pub index: usize,
    /// Topic.
    pub topic: String,
    /// (partition, leader address, start offset, end offset for catch-up).
    pub partitions: Vec<(i32, String, i64, i64)>,
    /// TLS and SASL for the connections (`--command-config`).
    pub security: Arc<ClientSecurity>,
    /// Fetch request version.
    pub fetch_version: i16,
    /// Long-poll wait.
    pub max_wait_ms: i32,
    /// Response size bound.
    pub fetch_max_bytes: i32,
    /// Per-partition bound.
    pub partition_max_bytes: i32,
    /// Check each batch's CRC-32C.
    pub check_crcs: bool,
    /// Stop condition.
    pub stop: StopAt,
    /// Deadline, ns since start.
    pub end_ns: u64,
    /// Extra time after the deadline for ProducersDrained.
    pub drain_ns: u64,
    /// Measure end-to-end latency from the values' stamps.
    pub e2e: bool,
}

/// Runs the consumer: one fetch task per leader.
pub async fn run(spec: ConsumerSpec, exec: Rc<Executor>) -> Result<(), BenchError> {
    let mut by_leader: BTreeMap<String, Vec<(i32, i64, i64)>> = BTreeMap::new();
    for (p, leader, start, end) in &spec.partitions {
        by_leader
            .entry(leader.clone())
            .or_default()
            .push((*p, *start, *end));
    }
    let mut tasks = Vec::new();
    for (leader, parts) in by_leader {
        let spec = spec.clone();
        let exec = exec.clone();
        tasks.push(millrace_shard::spawn(async move {
            fetch_loop(&spec, &exec, &leader, parts).await
        }));
    }
    let mut result = Ok(());
    for t in tasks {
        if let Err(e) = t.await {
            result = Err(e);
        }
    }
    result
}

struct Position {
    partition: i32,
    offset: i64,
    end: i64,
}

async fn fetch_loop(
    spec: &ConsumerSpec,
    exec: &Rc<Executor>,
    leader: &str,
    parts: Vec<(i32, i64, i64)>,
) -> Result<(), BenchError> {
    let mut conn = Conn::connect(leader, 1, &spec.security).await?;
    let mut positions: Vec<Position> = parts
        .into_iter()
        .map(|(partition, offset, end)| Position {
            partition,
            offset,
            end,
        })
        .collect();
    let slot: Rc<std::cell::RefCell<Option<Result<Bytes, BenchError>>>> = Rc::default();
    while !should_stop(spec, exec, &positions) {
        let request = fetch_request(spec, &positions);
        let put = slot.clone();
        conn.send(
            &request,
            spec.fetch_version,
            Some(Box::new(move |r| {
                *put.borrow_mut() = Some(r);
            })),
        )
        .await?;
        conn.drain().await?;
        let body = slot
            .borrow_mut()
            .take()
            .ok_or_else(|| BenchError::Io(format!("{leader}: no Fetch response")))??;
        handle_response(spec, exec, body, &mut positions)?;
    }
    Ok(())
}

fn should_stop(spec: &ConsumerSpec, exec: &Executor, positions: &[Position]) -> bool {
    let now = exec.clock.now_ns();
    match spec.stop {
        StopAt::EndOffsets => now >= spec.end_ns || positions.iter().all(|p| p.offset >= p.end),
        StopAt::Deadline => now >= spec.end_ns,
        StopAt::ProducersDrained => {
            if now >= spec.end_ns + spec.drain_ns {
                return true;
            }
            let shared = &exec.shared;
            shared.producers_running.load(Ordering::Acquire) == 0
                && shared.consumed_records.load(Ordering::Relaxed)
                    >= shared.acked_records.load(Ordering::Relaxed)
        }
    }
}

fn fetch_request(spec: &ConsumerSpec, positions: &[Position]) -> FetchRequest {
    let mut topic = FetchTopic::default();
    topic.topic = crate::setup::topic_name(&spec.topic);
    topic.partitions = positions
        .iter()
        .filter(|p| spec.stop != StopAt::EndOffsets || p.offset < p.end)
        .map(|p| {
            let mut fp = FetchPartition::default();
            fp.partition = p.partition;
            fp.current_leader_epoch = -1;
            fp.fetch_offset = p.offset;
            fp.last_fetched_epoch = -1;
            fp.log_start_offset = -1;
            fp.partition_max_bytes = spec.partition_max_bytes;
            fp
        })
        .collect();
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = spec.max_wait_ms;
    request.min_bytes = 1;
    request.max_bytes = spec.fetch_max_bytes;
    request.isolation_level = 0;
    request.session_id = 0;
    request.session_epoch = -1;
    request.topics = vec![topic];
    request
}

fn handle_response(
    spec: &ConsumerSpec,
    exec: &Executor,
    mut body: Bytes,
    positions: &mut [Position],
) -> Result<(), BenchError> {
    let response = FetchResponse::decode(&mut body, spec.fetch_version).map_err(|e| {
        BenchError::Protocol(format!("Fetch v{} response: {e}", spec.fetch_version))
    })?;
    if response.error_code != NONE {
        return Err(BenchError::Kafka("Fetch".into(), response.error_code));
    }
    let now = exec.clock.now_ns();
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut w = exec.window.borrow_mut();
    for t in &response.responses {
        for p in &t.partitions {
            if p.error_code != NONE {
                return Err(BenchError::Kafka(
                    format!("Fetch {}-{}", spec.topic, p.partition_index),
                    p.error_code,
                ));
            }
            let Some(pos) = positions
                .iter_mut()
                .find(|x| x.partition == p.partition_index)
            else {
                continue;
            };
            let Some(data) = &p.records else { continue };
            let (r, b) = consume_batches(data, pos, spec, now, exec.measure_from_ns, &mut w)?;
            records += r;
            bytes += b;
        }
    }
    w.consumed_records += records;
    w.consumed_bytes += bytes;
    exec.shared
        .consumed_records
        .fetch_add(records, Ordering::Relaxed);
    if records > 0 {
        exec.shared
            .consume_last_ns
            .fetch_max(now, Ordering::Relaxed);
    }
    Ok(())
}

/// Walks the batches of one partition's records, from the position on. Returns (records,
/// value bytes) and advances the position past the last whole batch.
fn consume_batches(
    data: &[u8],
    pos: &mut Position,
    spec: &ConsumerSpec,
    now: u64,
    measure_from: u64,
    w: &mut crate::stats::Window,
) -> Result<(u64, u64), BenchError> {
    let mut records = 0;
    let mut bytes = 0;
    for step in BatchIter::new(data) {
        let BatchStep::Batch {
            bytes: batch,
            header,
            ..
        } = step
        else {
            break; // a partial batch at the end of the response: fetched again next time
        };
        if header.last_offset() < pos.offset {
            continue;
        }
        // A compacted log holds batches with offsets missing, so the stored-batch rules apply.
        if spec.check_crcs {
            validate_stored_batch(batch).map_err(|e| {
                BenchError::Protocol(format!(
                    "partition {} batch at {}: {e}",
                    pos.partition, header.base_offset
                ))
            })?;
        }
        let from = pos.offset;
        let e2e = spec.e2e;
        for_each_value(batch, header.base_offset, |offset, value| {
            if offset < from {
                return;
            }
            records += 1;
            bytes += value.len() as u64;
            if e2e && value.len() >= STAMP_BYTES {
                let stamp = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
                if stamp >= measure_from {
                    record_ns(&mut w.e2e_latency, now.saturating_sub(stamp));
                }
            }
        })?;
        pos.offset = header.next_offset();
    }
    Ok((records, bytes))
}

/// Calls `f(offset, value)` for every record of a validated batch, decompressing if needed;
/// walks the varints in place instead of building records.
pub fn for_each_value(
    batch: &[u8],
    base_offset: i64,
    mut f: impl FnMut(i64, &[u8]),
) -> Result<(), BenchError> {
    let header = millrace_wire::records::BatchHeader::parse(batch)
        .map_err(|e| BenchError::Protocol(e.to_string()))?;
    let codec = header
        .compression()
        .map_err(|e| BenchError::Protocol(e.to_string()))?;
    let payload = &batch[BATCH_HEADER_BYTES..];
    let owned;
    let data: &[u8] = match codec {
        Compression::None => payload,
        c => {
            owned = c
                .decompress(payload, DECOMPRESSED_BYTES_MAX)
                .map_err(|e| BenchError::Protocol(e.to_string()))?;
            &owned
        }
    };
    let bad = |e: millrace_wire::WireError| BenchError::Protocol(format!("record: {e}"));
    let mut cursor = Cursor::new(data);
    for _ in 0..header.record_count.max(0) {
        let length = cursor.varint().map_err(bad)?;
        let start = cursor.position();
        if length < 0 || length as usize > cursor.remaining() {
            return Err(BenchError::Protocol(
                "record length beyond the batch".into(),
            ));
        }
        cursor.i8().map_err(bad)?;
        cursor.varlong().map_err(bad)?;
        let delta = cursor.varint().map_err(bad)?;
        let key_len = cursor.varint().map_err(bad)?;
        if key_len > 0 {
            cursor.skip(key_len as usize).map_err(bad)?;
        }
        let value_len = cursor.varint().map_err(bad)?;
        let at = cursor.position();
        let value_len = value_len.max(0) as usize;
        cursor.skip(value_len).map_err(bad)?;
        f(base_offset + i64::from(delta), &data[at..at + value_len]);
        let consumed = cursor.position() - start;
        cursor
            .skip((length as usize).saturating_sub(consumed))
            .map_err(bad)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{consume_batches, ConsumerSpec, Position, StopAt};
    use crate::stats::Window;
    use millrace_wire::records::{filter_records, set_base_offset, BatchBuilder, NewRecord};

    fn spec(check_crcs: bool) -> ConsumerSpec {
        ConsumerSpec {
            index: 0,
            topic: "t".into(),
            partitions: Vec::new(),
            security: Default::default(),
            fetch_version: 12,
            max_wait_ms: 100,
            fetch_max_bytes: 1 << 20,
            partition_max_bytes: 1 << 20,
            check_crcs,
            stop: StopAt::Deadline,
            end_ns: 0,
            drain_ns: 0,
            e2e: false,
        }
    }

    /// Two batches at offsets 0..10 and 10..20; the first compacted down to its odd offsets.
    fn fetched() -> Vec<u8> {
        let records = |from: usize| -> Vec<NewRecord> {
            (from..from + 10)
                .map(|i| NewRecord {
                    timestamp: 1_000 + i as i64,
                    key: Some(format!("k{i}").into_bytes()),
                    value: Some(vec![7u8; 100 + i]),
                    headers: Vec::new(),
                })
                .collect()
        };
        let mut first = BatchBuilder::default().build(&records(0));
        let mut n = 0;
        first = filter_records(&first, 1 << 20, |_| {
            n += 1;
            n % 2 == 0
        })
        .unwrap()
        .unwrap();
        let mut second = BatchBuilder::default().build(&records(10));
        set_base_offset(&mut second, 10);
        first.extend_from_slice(&second);
        first
    }

    fn consume(data: &[u8], check_crcs: bool, from: i64) -> Result<(u64, u64, i64), String> {
        let mut pos = Position {
            partition: 0,
            offset: from,
            end: i64::MAX,
        };
        let mut w = Window::new(0);
        consume_batches(data, &mut pos, &spec(check_crcs), 0, 0, &mut w)
            .map(|(r, b)| (r, b, pos.offset))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn compacted_batches_count_their_records_and_skip_below_the_position() {
        let data = fetched();
        let odd_values: u64 = (1..10).step_by(2).map(|i| 100 + i as u64).sum();
        let second_values: u64 = (10..20).map(|i| 100 + i as u64).sum();
        for check in [true, false] {
            assert_eq!(
                consume(&data, check, 0),
                Ok((15, odd_values + second_values, 20))
            );
            // From offset 4: records 5, 7, 9 and the second batch.
            assert_eq!(
                consume(&data, check, 4).map(|(r, _, at)| (r, at)),
                Ok((13, 20))
            );
        }
    }

    #[test]
    fn a_corrupt_batch_fails_the_consumer_only_when_crcs_are_checked() {
        let mut data = fetched();
        let last = data.len() - 1;
        data[last] ^= 0x01; // a byte of the second batch's last value
        let failed = consume(&data, true, 0).unwrap_err();
        assert!(failed.contains("partition 0 batch at 10"), "{failed}");
        assert!(failed.to_lowercase().contains("crc"), "{failed}");
        assert_eq!(consume(&data, false, 0).map(|(r, _, _)| r), Ok(15));
    }
}
