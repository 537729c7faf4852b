//! Fetch (key 1), versions 4-16. Partitions are read on their owning shards (one hop per
//! shard); if fewer than `min_bytes` came back and `max_wait_ms` allows, the owners are asked
//! to wake this request when any of its partitions gets data, then it reads again. Whole
//! batches are returned; the first partition with data may exceed `max_bytes` (KIP-74), later
//! ones are left out once the total would. No fetch sessions: `session_id` 0 tells clients to
//! keep sending full requests.
//!
//! The owner's side is here too: [`ReadOnOwner`] reads through each [`Partition`] (up to the
//! high watermark, as a consumer), [`WaitOnOwner`] waits for a high watermark to pass the
//! fetch offset and is cancelled as soon as another owner has answered.
//!
//! [`Partition`]: crate::partition::Partition

use super::Context;
use super::{decode, RecordPiece, Response};
use crate::errors::{code, storage_code};
use crate::mesh::{Call, Split};
use crate::partition::Reader;
use crate::shard::{Partition, Shard};
use bytes::Bytes;
use kafka_protocol::messages::FetchRequest;
use millrace_storage::disk::DiskFile;
use millrace_storage::ReadChunk;
use millrace_wire::fetch::{encode_fetch_response, PartitionData, TopicData, TopicKey};
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

struct Wanted {
    key: TopicKey,
    topic: Option<String>,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    owner: Option<usize>,
    /// The error when no shard here holds the partition.
    absent: i16,
}

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: FetchRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let wanted = resolve(&ctx, &req, header.api_version);
    let mut results = read_all(&ctx, &wanted).await;
    let total: usize = results.iter().flatten().map(|r| r.bytes).sum();
    let max_wait = req.max_wait_ms.clamp(0, ctx.config().fetch_wait_max_ms) as u64;
    if total < req.min_bytes.max(1) as usize && max_wait > 0 && !wanted.is_empty() {
        wait_for_any(&ctx, &wanted, max_wait).await;
        results = read_all(&ctx, &wanted).await;
    }
    encode(&header, &wanted, results, req.max_bytes.max(0) as usize)
}

fn resolve(ctx: &Context, req: &FetchRequest, version: i16) -> Vec<Wanted> {
    let image = ctx.image();
    let mut out = Vec::new();
    for t in &req.topics {
        let meta = if version >= 13 {
            image.topic_by_id(&t.topic_id)
        } else {
            image.topics.get(t.topic.0.as_str())
        };
        let key = if version >= 13 {
            TopicKey::Id(t.topic_id)
        } else {
            TopicKey::Name(t.topic.0.to_string())
        };
        for p in &t.partitions {
            out.push(Wanted {
                key: key.clone(),
                topic: meta.map(|m| m.name.clone()),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                owner: meta.and_then(|m| image.owner(&m.name, p.partition)),
                absent: meta.map_or(code::UNKNOWN_TOPIC_OR_PARTITION, |m| {
                    image.not_here_code(&m.name, p.partition)
                }),
            });
        }
    }
    out
}

async fn read_all(ctx: &Context, wanted: &[Wanted]) -> Vec<Option<FetchResult>> {
    let mut split: Split<FetchItem> = Split::default();
    for (slot, w) in wanted.iter().enumerate() {
        if let (Some(owner), Some(topic)) = (w.owner, &w.topic) {
            let item = (topic.clone(), w.partition, (w.offset, w.max_bytes));
            split.push(owner, slot, item);
        }
    }
    let mut results: Vec<Option<FetchResult>> = (0..wanted.len()).map(|_| None).collect();
    ctx.fan_out(split, &mut results, |items| ReadOnOwner { items }, || None)
        .await;
    results
}

/// Waits until any owner reports data past a fetch offset, or `max_wait_ms` passes. The
/// owners that did not answer first are cancelled.
async fn wait_for_any(ctx: &Context, wanted: &[Wanted], max_wait_ms: u64) {
    let mut per_shard: BTreeMap<usize, Vec<(String, i32, i64)>> = BTreeMap::new();
    for w in wanted {
        if let (Some(owner), Some(topic)) = (w.owner, &w.topic) {
            per_shard
                .entry(owner)
                .or_default()
                .push((topic.clone(), w.partition, w.offset));
        }
    }
    if per_shard.is_empty() {
        return;
    }
    let mut waits: Vec<_> = per_shard
        .into_iter()
        .map(|(owner, items)| {
            let ctx = ctx.clone();
            Box::pin(async move {
                let _ = ctx.call(owner, WaitOnOwner { items, max_wait_ms }).await;
            })
        })
        .collect();
    // Dropping the other waits when the first completes cancels them on their owners.
    futures_lite::future::poll_fn(|cx| {
        for w in waits.iter_mut() {
            if w.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await;
}

/// One partition to read: (topic, partition, (fetch offset, partition byte limit)).
type FetchItem = (String, i32, (i64, usize));

/// One partition's read.
#[derive(Debug)]
pub struct FetchResult {
    /// Kafka error code.
    error_code: i16,
    /// High watermark.
    high_watermark: i64,
    /// Last stable offset.
    last_stable_offset: i64,
    /// Log start offset.
    log_start_offset: i64,
    /// Record pieces in order.
    records: Vec<RecordPiece>,
    /// Their total length.
    bytes: usize,
}

impl FetchResult {
    /// No data, with an error code.
    fn error(error_code: i16) -> Self {
        FetchResult {
            error_code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Vec::new(),
            bytes: 0,
        }
    }
}

/// Reads partitions the target shard owns, one after another.
pub struct ReadOnOwner {
    items: Vec<(usize, FetchItem)>,
}

impl Call<Shard> for ReadOnOwner {
    type Reply = Vec<(usize, Option<FetchResult>)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let missing = || Some(FetchResult::error(code::UNKNOWN_TOPIC_OR_PARTITION));
        let read = async |partition: &Partition, item| Some(read_one(partition, item).await);
        shard.on_each_partition(self.items, missing, read).await
    }
}

/// An owner's read of one partition, as a consumer (only from its leader).
async fn read_one(partition: &Partition, (offset, max_bytes): (i64, usize)) -> FetchResult {
    if !partition.is_leader() {
        return FetchResult::error(code::NOT_LEADER_OR_FOLLOWER);
    }
    let mut result = FetchResult {
        high_watermark: partition.high_watermark(),
        last_stable_offset: partition.last_stable_offset(),
        log_start_offset: partition.log_start_offset(),
        ..FetchResult::error(code::NONE)
    };
    match partition
        .read(offset, max_bytes, true, Reader::Consumer)
        .await
    {
        Ok((read, high_watermark)) => {
            result.high_watermark = high_watermark;
            result.last_stable_offset = partition.last_stable_offset();
            result.log_start_offset = read.log_start_offset;
            result.bytes = read.bytes;
            result.records = read.chunks.into_iter().map(record_piece).collect();
        }
        Err(e) => result.error_code = storage_code(&e),
    }
    result
}

/// A read chunk as something that can cross to the connection's shard: cached bytes, or the
/// file range by path (the connection's shard sends it from a buffered descriptor).
fn record_piece<F: DiskFile>(chunk: ReadChunk<F>) -> RecordPiece {
    match chunk {
        ReadChunk::Memory(b) => RecordPiece::Memory(b),
        ReadChunk::File {
            file,
            position,
            len,
        } => RecordPiece::File {
            path: file.path().to_path_buf(),
            position,
            len,
            inode: file.identity(),
        },
    }
}

/// Completes when any of these partitions (topic, partition, fetch offset) on the target shard
/// has data past its offset, or after `max_wait_ms`. Cancelled when the fetch stops waiting.
pub struct WaitOnOwner {
    pub(crate) items: Vec<(String, i32, i64)>,
    pub(crate) max_wait_ms: u64,
}

impl Call<Shard> for WaitOnOwner {
    type Reply = ();
    const CANCELLABLE: bool = true;

    async fn run(self, shard: Rc<Shard>) {
        let wait = async {
            loop {
                let seen = shard.data_arrived.generation();
                let ready = self.items.iter().any(|(t, p, offset)| {
                    shard
                        .partition(t, *p)
                        .is_none_or(|partition| partition.has_data_past(*offset))
                });
                if ready || shard.stopping.get() {
                    return;
                }
                shard.data_arrived.changed_since(seen).await;
            }
        };
        // Timers only, no clock reads: the deterministic simulation runs this on virtual time.
        let max_wait = Duration::from_millis(self.max_wait_ms);
        let _ = millrace_shard::time::timeout(max_wait, wait).await;
    }
}

fn encode(
    header: &RequestHeader,
    wanted: &[Wanted],
    results: Vec<Option<FetchResult>>,
    max_bytes: usize,
) -> Response {
    let mut topics: Vec<TopicData<RecordPiece>> = Vec::new();
    let mut total = 0usize;
    for (w, r) in wanted.iter().zip(results) {
        let mut data = PartitionData {
            partition_index: w.partition,
            error_code: w.absent,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Vec::new(),
        };
        if w.topic.is_none() && header.api_version >= 13 {
            data.error_code = code::UNKNOWN_TOPIC_ID;
        }
        if let Some(r) = r {
            data.error_code = r.error_code;
            data.high_watermark = r.high_watermark;
            data.last_stable_offset = r.last_stable_offset;
            data.log_start_offset = r.log_start_offset;
            if total == 0 || total + r.bytes <= max_bytes {
                total += r.bytes;
                data.records = r.records;
            }
        }
        let same_topic = topics
            .last()
            .is_some_and(|t: &TopicData<_>| same_key(&t.topic, &w.key));
        if !same_topic {
            topics.push(TopicData {
                topic: w.key.clone(),
                partitions: Vec::new(),
            });
        }
        topics
            .last_mut()
            .expect("pushed above")
            .partitions
            .push(data);
    }
    let (chunks, _) = encode_fetch_response(
        header.correlation_id,
        header.api_version,
        0,
        code::NONE,
        0,
        topics,
    );
    Response::Fetch(chunks)
}

fn same_key(a: &TopicKey, b: &TopicKey) -> bool {
    match (a, b) {
        (TopicKey::Name(x), TopicKey::Name(y)) => x == y,
        (TopicKey::Id(x), TopicKey::Id(y)) => x == y,
        _ => false,
    }
}
