//! Work that crosses shards: the mesh message types and their execution on the owning shard.
//!
//! A request touching partitions on several shards is split into one [`ShardRequest`] per
//! destination shard (never one per partition); each carries owned bytes and plain values
//! only, since it crosses threads.

use crate::controller::{ControllerReply, ControllerRequest};
use crate::errors::{code, storage_code};
use crate::metadata::MetadataImage;
use crate::node::Shard;
use bytes::{Bytes, BytesMut};
use millrace_storage::{ReadChunk, StorageError};
use millrace_wire::epoch::LeaderEpoch;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// A message on the mesh.
pub enum MeshMsg {
    /// Work for the receiving shard; the reply goes back to `from` with the same `id`.
    Request {
        /// Request id, unique per sending shard.
        id: u64,
        /// Sending shard.
        from: usize,
        /// The work.
        body: ShardRequest,
    },
    /// The answer to a request this shard sent.
    Reply {
        /// The request's id.
        id: u64,
        /// The answer.
        body: ShardReply,
    },
}

/// Work for one shard.
pub enum ShardRequest {
    /// Append to partitions owned by the shard; answer after the group commit (acks != 0).
    Produce {
        /// 0, 1 or -1.
        acks: i16,
        /// Partitions and their validated batches.
        items: Vec<ProduceItem>,
    },
    /// Read from partitions owned by the shard.
    Fetch(Vec<FetchItem>),
    /// Complete when any of these partitions has data past the offset, or after the wait.
    WaitForData {
        /// (topic, partition, fetch offset).
        items: Vec<(String, i32, i64)>,
        /// Longest wait.
        max_wait_ms: u64,
    },
    /// Offsets by timestamp or position.
    ListOffsets(Vec<ListOffsetsItem>),
    /// Move log start offsets (DeleteRecords).
    DeleteRecords(Vec<DeleteRecordsItem>),
    /// Metadata changes and producer ids (shard 0 only).
    Controller(ControllerRequest),
    /// A new metadata image from the writer; the reply comes once local logs match it.
    ApplyMetadata(Arc<MetadataImage>),
    /// A consumer-group operation for the group's coordinating shard.
    Group(crate::coordinator::GroupOp),
}

/// The answer from one shard.
pub enum ShardReply {
    /// Per-partition produce results.
    Produce(Vec<ProduceResult>),
    /// Per-partition fetch results.
    Fetch(Vec<FetchResult>),
    /// Data arrived or the wait ended.
    Ready,
    /// Per-partition offsets.
    ListOffsets(Vec<ListOffsetsResult>),
    /// Per-partition new log start offsets (in `offset`).
    DeleteRecords(Vec<ListOffsetsResult>),
    /// The controller's answer.
    Controller(ControllerReply),
    /// Metadata applied (or the error text).
    Applied(Result<(), String>),
    /// The coordinator's answer.
    Group(crate::coordinator::GroupAnswer),
    /// The shard could not be reached (shutting down).
    Unavailable,
}

/// One partition's batches to append.
pub struct ProduceItem {
    /// Position in the request, for putting the response back together.
    pub slot: usize,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// One or more validated batches.
    pub records: Bytes,
    /// The topic's `message.timestamp.type` is LogAppendTime (decided by the validating
    /// shard, from the same settings it validated with).
    pub log_append_time: bool,
}

/// One partition's produce outcome.
#[derive(Debug, Clone)]
pub struct ProduceResult {
    /// The item's slot.
    pub slot: usize,
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
}

/// One partition to read.
pub struct FetchItem {
    /// Position in the request.
    pub slot: usize,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset wanted.
    pub offset: i64,
    /// Partition byte limit.
    pub max_bytes: usize,
}

/// Where record bytes come from; `Send`, so it can cross the mesh.
#[derive(Debug, Clone)]
pub enum RecordPiece {
    /// Bytes in memory (batch cache).
    Memory(Bytes),
    /// A range of a segment file, sent with sendfile from a buffered descriptor.
    File {
        /// The segment file.
        path: PathBuf,
        /// Byte position.
        position: u64,
        /// Length.
        len: u32,
        /// The file's inode when it was read (0: unknown).
        inode: u64,
    },
}

impl millrace_wire::fetch::RecordSource for RecordPiece {
    fn len(&self) -> usize {
        match self {
            RecordPiece::Memory(b) => b.len(),
            RecordPiece::File { len, .. } => *len as usize,
        }
    }
}

/// One partition's read.
#[derive(Debug)]
pub struct FetchResult {
    /// The item's slot.
    pub slot: usize,
    /// Kafka error code.
    pub error_code: i16,
    /// High watermark.
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Record pieces in order.
    pub records: Vec<RecordPiece>,
    /// Their total length.
    pub bytes: usize,
}

/// One partition's offset lookup.
pub struct ListOffsetsItem {
    /// Position in the request.
    pub slot: usize,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// -1 latest, -2 earliest, -3 max timestamp, or a timestamp.
    pub timestamp: i64,
}

/// One partition's DeleteRecords target.
#[derive(Debug, Clone)]
pub struct DeleteRecordsItem {
    /// Position in the request.
    pub slot: usize,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// New log start offset; -1 for the high watermark.
    pub offset: i64,
}

/// One partition's offset answer.
#[derive(Debug, Clone)]
pub struct ListOffsetsResult {
    /// The item's slot.
    pub slot: usize,
    /// Kafka error code.
    pub error_code: i16,
    /// Timestamp found (-1 if none).
    pub timestamp: i64,
    /// Offset found (-1 if none).
    pub offset: i64,
}

/// Runs a request on this shard.
pub async fn execute(shard: &Rc<Shard>, request: ShardRequest) -> ShardReply {
    match request {
        ShardRequest::Produce { acks, items } => {
            ShardReply::Produce(produce(shard, acks, items).await)
        }
        ShardRequest::Fetch(items) => ShardReply::Fetch(fetch(shard, items).await),
        ShardRequest::WaitForData { items, max_wait_ms } => {
            wait_for_data(shard, &items, max_wait_ms).await;
            ShardReply::Ready
        }
        ShardRequest::ListOffsets(items) => {
            ShardReply::ListOffsets(list_offsets(shard, items).await)
        }
        ShardRequest::DeleteRecords(items) => {
            ShardReply::DeleteRecords(delete_records(shard, items).await)
        }
        ShardRequest::Controller(req) => {
            ShardReply::Controller(crate::controller::execute(shard, req).await)
        }
        ShardRequest::Group(op) => ShardReply::Group(crate::coordinator::execute(shard, op).await),
        ShardRequest::ApplyMetadata(image) => {
            ShardReply::Applied(shard.apply_metadata(image).await.map_err(|e| e.to_string()))
        }
    }
}

async fn produce(shard: &Rc<Shard>, acks: i16, items: Vec<ProduceItem>) -> Vec<ProduceResult> {
    let now = millrace_shard::time::now_ms();
    let mut results = Vec::with_capacity(items.len());
    let mut to_flush = Vec::new();
    for item in items {
        let Some(log) = shard.log(&item.topic, item.partition) else {
            results.push(produce_error(
                item.slot,
                code::UNKNOWN_TOPIC_OR_PARTITION,
                None,
            ));
            continue;
        };
        let log_append_time = item.log_append_time;
        let mut outcome = log.append(
            BytesMut::from(&item.records[..]),
            LeaderEpoch::INITIAL,
            now,
            log_append_time,
        );
        if let Err(StorageError::BufferFull { .. }) = outcome {
            // Too much waits for the disk: wait for the group commit, then retry once.
            if let Err(e) = log.flush().await {
                results.push(produce_error(
                    item.slot,
                    storage_code(&e),
                    Some(e.to_string()),
                ));
                continue;
            }
            outcome = log.append(
                BytesMut::from(&item.records[..]),
                LeaderEpoch::INITIAL,
                now,
                log_append_time,
            );
        }
        match outcome {
            Ok(o) => {
                results.push(ProduceResult {
                    slot: item.slot,
                    error_code: code::NONE,
                    error_message: None,
                    base_offset: o.base_offset,
                    log_append_time_ms: o.log_append_time_ms,
                    log_start_offset: log.log_start_offset(),
                });
                if !o.duplicate || log.durable_end() <= o.last_offset {
                    to_flush.push((results.len() - 1, log));
                }
            }
            Err(e) => {
                tracing::debug!(topic = %item.topic, partition = item.partition, error = %e, "append refused");
                results.push(produce_error(
                    item.slot,
                    storage_code(&e),
                    Some(e.to_string()),
                ));
            }
        }
    }
    // Group commit: every log touched is flushed concurrently; each flush covers every append
    // made before it on that log, from this request and any other.
    let flushes = to_flush
        .into_iter()
        .map(|(i, log)| async move { (i, log.flush().await) });
    let outcomes = join_all(flushes.collect()).await;
    let mut flushed_any = false;
    for (i, outcome) in outcomes {
        match outcome {
            Ok(()) => flushed_any = true,
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                if acks != 0 {
                    let r = &mut results[i];
                    r.error_code = storage_code(&e);
                    r.error_message = Some(e.to_string());
                    r.base_offset = -1;
                }
            }
        }
    }
    if flushed_any {
        shard.data_arrived.notify_all();
    }
    results
}

fn produce_error(slot: usize, error_code: i16, error_message: Option<String>) -> ProduceResult {
    ProduceResult {
        slot,
        error_code,
        error_message,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
    }
}

/// Sends one request per destination shard (built by `request` from that shard's items) and
/// waits for every reply: the one-hop-per-shard fan-out all partition APIs use.
pub async fn scatter<T: 'static>(
    shard: &Rc<Shard>,
    per_shard: std::collections::BTreeMap<usize, Vec<T>>,
    request: impl Fn(Vec<T>) -> ShardRequest,
) -> Vec<ShardReply> {
    let calls = per_shard.into_iter().map(|(owner, items)| {
        let shard = shard.clone();
        let body = request(items);
        async move { shard.call(owner, body).await }
    });
    join_all(calls.collect()).await
}

/// Runs futures on this shard concurrently and collects their outputs in order.
pub async fn join_all<F: std::future::Future + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(millrace_shard::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    out
}

async fn fetch(shard: &Rc<Shard>, items: Vec<FetchItem>) -> Vec<FetchResult> {
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        results.push(fetch_one(shard, item).await);
    }
    results
}

async fn fetch_one(shard: &Rc<Shard>, item: FetchItem) -> FetchResult {
    let mut result = FetchResult {
        slot: item.slot,
        error_code: code::NONE,
        high_watermark: -1,
        log_start_offset: -1,
        records: Vec::new(),
        bytes: 0,
    };
    let Some(log) = shard.log(&item.topic, item.partition) else {
        result.error_code = code::UNKNOWN_TOPIC_OR_PARTITION;
        return result;
    };
    result.high_watermark = log.durable_end();
    result.log_start_offset = log.log_start_offset();
    match log
        .read(item.offset, item.max_bytes, true, log.durable_end())
        .await
    {
        Ok(read) => {
            result.high_watermark = read.durable_end;
            result.log_start_offset = read.log_start_offset;
            result.bytes = read.bytes;
            result.records = read
                .chunks
                .into_iter()
                .map(|c| match c {
                    ReadChunk::Memory(b) => RecordPiece::Memory(b),
                    ReadChunk::File {
                        file,
                        position,
                        len,
                    } => RecordPiece::File {
                        path: millrace_storage::disk::DiskFile::path(&*file).to_path_buf(),
                        position,
                        len,
                        inode: millrace_storage::disk::DiskFile::identity(&*file),
                    },
                })
                .collect();
        }
        Err(e) => result.error_code = storage_code(&e),
    }
    result
}

async fn wait_for_data(shard: &Rc<Shard>, items: &[(String, i32, i64)], max_wait_ms: u64) {
    let deadline = std::time::Instant::now() + Duration::from_millis(max_wait_ms);
    loop {
        let seen = shard.data_arrived.generation();
        let ready = items.iter().any(|(t, p, offset)| {
            shard
                .log(t, *p)
                .is_none_or(|log| log.durable_end() > *offset || log.log_start_offset() > *offset)
        });
        if ready || shard.stopping.get() {
            return;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let changed =
            millrace_shard::time::timeout(left, shard.data_arrived.changed_since(seen)).await;
        if changed.is_none() {
            return;
        }
    }
}

async fn list_offsets(shard: &Rc<Shard>, items: Vec<ListOffsetsItem>) -> Vec<ListOffsetsResult> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut r = ListOffsetsResult {
            slot: item.slot,
            error_code: code::NONE,
            timestamp: -1,
            offset: -1,
        };
        match shard.log(&item.topic, item.partition) {
            None => r.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
            Some(log) => match item.timestamp {
                -1 => r.offset = log.durable_end(),
                -2 | -4 => r.offset = log.log_start_offset(),
                -3 => {
                    if let Some((ts, offset)) = log.max_timestamp() {
                        r.timestamp = ts;
                        r.offset = offset;
                    }
                }
                ts if ts >= 0 => match log.offset_for_timestamp(ts).await {
                    Ok(Some((offset, found_ts))) if offset < log.durable_end() => {
                        r.offset = offset;
                        r.timestamp = found_ts;
                    }
                    Ok(_) => {}
                    Err(e) => r.error_code = storage_code(&e),
                },
                _ => r.error_code = code::INVALID_REQUEST,
            },
        }
        out.push(r);
    }
    out
}

async fn delete_records(
    shard: &Rc<Shard>,
    items: Vec<DeleteRecordsItem>,
) -> Vec<ListOffsetsResult> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut r = ListOffsetsResult {
            slot: item.slot,
            error_code: code::NONE,
            timestamp: -1,
            offset: -1,
        };
        match shard.log(&item.topic, item.partition) {
            None => r.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
            Some(log) => match log.delete_records(item.offset, log.durable_end()).await {
                Ok(low) => {
                    r.offset = low;
                    tracing::info!(topic = %item.topic, partition = item.partition, log_start_offset = low, "records deleted");
                }
                Err(e) => r.error_code = storage_code(&e),
            },
        }
        out.push(r);
    }
    out
}
