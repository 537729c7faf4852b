//! Fetch (key 1), versions 4-16. Partitions are read on their owning shards (one hop per
//! shard); if fewer than `min_bytes` came back and `max_wait_ms` allows, the owners are asked
//! to wake this request when any of its partitions gets data, then it reads again. Whole
//! batches are returned; the first partition with data may exceed `max_bytes` (KIP-74), later
//! ones are left out once the total would. No fetch sessions: `session_id` 0 tells clients to
//! keep sending full requests.
//!
//! Two kinds of fetcher, told apart by the replica id (`replica_id` up to v14,
//! `replica_state` from v15; -1 for consumers):
//!
//! * **Consumers** read committed data, up to the high watermark, from the leader only.
//! * **Followers** (another broker's replica of the partition) read everything appended, up
//!   to the log end. First their position is checked (Kafka's rules, with the epoch of their
//!   last batch from v12): a log that diverges gets `diverging_epoch` and no records; an offset
//!   outside the log gets OFFSET_OUT_OF_RANGE with the log start. A matching fetch counts as
//!   the follower's report that everything below its fetch offset is on its disk (followers
//!   here fetch only after syncing), which moves the high watermark and the ISR. A follower's
//!   long poll also wakes when the high watermark passes the one it was sent, so followers
//!   learn it without waiting for new records.
//!
//! Both check `current_leader_epoch` when given: older than the leader's is
//! FENCED_LEADER_EPOCH, newer is UNKNOWN_LEADER_EPOCH (this broker's metadata lags). Those
//! and NOT_LEADER_OR_FOLLOWER carry the leader this broker knows in `current_leader` (v12+,
//! KIP-951).
//!
//! The owner's side is here too: [`ReadOnOwner`] reads through each [`Partition`],
//! [`WaitOnOwner`] waits for data past the fetch offsets and is cancelled as soon as another
//! owner has answered.
//!
//! [`Partition`]: crate::partition::Partition

use super::Context;
use super::{decode, RecordPiece, Response};
use crate::errors::{code, storage_code};
use crate::mesh::{Call, Split};
use crate::partition::Reader;
use crate::shard::{Partition, Shard};
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchRequest};
use millrace_replication::follow::FollowerPosition;
use millrace_replication::replica::BrokerId;
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_security::quota::QuotaKey;
use millrace_storage::disk::DiskFile;
use millrace_storage::ReadChunk;
use millrace_wire::fetch::{
    encode_fetch_response, EpochEnd, LeaderHint, NodeEndpoint, PartitionData, TopicData, TopicKey,
};
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

struct Wanted {
    key: TopicKey,
    topic: Option<String>,
    partition: i32,
    spec: ReadSpec,
    owner: Option<usize>,
    /// The error when no shard here holds the partition.
    absent: i16,
    /// The leader the image names, for an answer that sends the client elsewhere.
    hint: Option<LeaderHint>,
}

/// What one partition's read asks for.
#[derive(Debug, Clone, Copy)]
pub struct ReadSpec {
    /// The fetch offset.
    offset: i64,
    /// The partition's byte limit.
    max_bytes: usize,
    /// The leader epoch the fetcher knows (-1: not checked).
    current_leader_epoch: i32,
    /// A follower's epoch of its last batch (-1: none or not sent).
    last_fetched_epoch: i32,
    /// A follower's broker id and broker epoch; None for a consumer.
    replica: Option<(BrokerId, i64)>,
    /// A consumer's isolation level is read_committed (v4+ `isolation_level` 1).
    read_committed: bool,
}

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: FetchRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let wanted = resolve(&ctx, &req, header.api_version);
    if wanted.iter().any(|w| w.spec.replica.is_some()) {
        ctx.clock().set_follower();
    }
    let mut results = read_all(&ctx, &wanted).await;
    let total: usize = results.iter().flatten().map(|r| r.bytes).sum();
    let max_wait = req.max_wait_ms.clamp(0, ctx.config().fetch_wait_max_ms) as u64;
    // A diverging log or an error is worth answering at once.
    let urgent = results
        .iter()
        .flatten()
        .any(|r| r.diverging_epoch.is_some() || r.error_code != code::NONE);
    if total < req.min_bytes.max(1) as usize && max_wait > 0 && !wanted.is_empty() && !urgent {
        ctx.clock()
            .clone()
            .remote(wait_for_any(&ctx, &wanted, &results, max_wait))
            .await;
        results = read_all(&ctx, &wanted).await;
    }
    // consumer_byte_rate (consumers only, as Kafka): over the quota, the answer carries no
    // records, only the throttle time, and its bytes are taken back (Kafka's throttled fetch).
    if wanted.iter().all(|w| w.spec.replica.is_none()) {
        let bytes: usize = results.iter().flatten().map(|r| r.bytes).sum();
        let client_id = header.client_id.as_deref().unwrap_or("");
        let key = QuotaKey::ConsumerByteRate;
        let throttle_ms = ctx.record_quota(client_id, key, bytes as f64).await;
        if throttle_ms > 0 {
            ctx.unrecord_quota(client_id, key, bytes as f64).await;
            ctx.throttle(throttle_ms);
            return encode(&ctx, &header, &[], Vec::new(), 0, throttle_ms);
        }
    }
    encode(
        &ctx,
        &header,
        &wanted,
        results,
        req.max_bytes.max(0) as usize,
        0,
    )
}

fn resolve(ctx: &Context, req: &FetchRequest, version: i16) -> Vec<Wanted> {
    let image = ctx.image();
    let replica = if version >= 15 {
        (
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id.0, -1)
    };
    let replica = (replica.0 >= 0).then_some(replica);
    // A follower needs CLUSTER_ACTION, a consumer READ on each topic (Kafka answers both
    // refusals as TOPIC_AUTHORIZATION_FAILED per partition).
    let follower_denied = replica.is_some() && !ctx.allowed_on_cluster(AclOperation::ClusterAction);
    let mut out = Vec::new();
    for t in &req.topics {
        let meta = if version >= 13 {
            image.topic_by_id(&t.topic_id)
        } else {
            image.topics.get(t.topic.0.as_str())
        };
        let name = meta.map_or(t.topic.0.as_str(), |m| m.name.as_str());
        let denied = follower_denied
            || (replica.is_none()
                && (meta.is_some() || version < 13)
                && !ctx.allowed(AclOperation::Read, ResourceType::Topic, name));
        let key = if version >= 13 {
            TopicKey::Id(t.topic_id)
        } else {
            TopicKey::Name(t.topic.0.to_string())
        };
        for p in &t.partitions {
            let state = meta.and_then(|m| image.cluster.partition(&m.topic_id, p.partition));
            out.push(Wanted {
                key: key.clone(),
                topic: meta.map(|m| m.name.clone()),
                partition: p.partition,
                spec: ReadSpec {
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as usize,
                    current_leader_epoch: if version >= 9 {
                        p.current_leader_epoch
                    } else {
                        -1
                    },
                    last_fetched_epoch: if version >= 12 {
                        p.last_fetched_epoch
                    } else {
                        -1
                    },
                    replica,
                    read_committed: replica.is_none() && req.isolation_level == 1,
                },
                owner: meta
                    .filter(|_| !denied)
                    .and_then(|m| image.owner(&m.name, p.partition)),
                absent: match meta {
                    _ if denied => code::TOPIC_AUTHORIZATION_FAILED,
                    None => code::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(m) => image.not_here_code(&m.name, p.partition),
                },
                hint: state.map(|s| LeaderHint {
                    leader_id: s.leader,
                    leader_epoch: s.leader_epoch,
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
            let item = (topic.clone(), w.partition, w.spec);
            split.push(owner, slot, item);
        }
    }
    let mut results: Vec<Option<FetchResult>> = (0..wanted.len()).map(|_| None).collect();
    ctx.fan_out(split, &mut results, |items| ReadOnOwner { items }, || None)
        .await;
    results
}

/// Waits until any owner reports data past a fetch offset (for a follower, also a high
/// watermark past the one of its first read), or `max_wait_ms` passes. The owners that did
/// not answer first are cancelled.
async fn wait_for_any(
    ctx: &Context,
    wanted: &[Wanted],
    first: &[Option<FetchResult>],
    max_wait_ms: u64,
) {
    let mut per_shard: BTreeMap<usize, Vec<WaitItem>> = BTreeMap::new();
    for (w, r) in wanted.iter().zip(first) {
        if let (Some(owner), Some(topic)) = (w.owner, &w.topic) {
            let sent_hw = w
                .spec
                .replica
                .map(|_| r.as_ref().map_or(-1, |r| r.high_watermark));
            per_shard.entry(owner).or_default().push(WaitItem {
                topic: topic.clone(),
                partition: w.partition,
                offset: w.spec.offset,
                sent_hw,
                read_committed: w.spec.read_committed,
            });
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

/// One partition to read: (topic, partition, what to read).
type FetchItem = (String, i32, ReadSpec);

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
    /// read_committed: the aborted transactions overlapping the records.
    aborted_transactions: Option<Vec<(i64, i64)>>,
    /// Record pieces in order.
    records: Vec<RecordPiece>,
    /// Their total length.
    bytes: usize,
    /// For a follower whose log diverges.
    diverging_epoch: Option<EpochEnd>,
    /// The leader as the owner knows it, with an error that sends the fetcher there.
    current_leader: Option<LeaderHint>,
}

impl FetchResult {
    /// No data, with an error code.
    fn error(error_code: i16) -> Self {
        FetchResult {
            error_code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: None,
            records: Vec::new(),
            bytes: 0,
            diverging_epoch: None,
            current_leader: None,
        }
    }

    /// No data, with an error code and the leader this replica knows of.
    fn redirect(error_code: i16, partition: &Partition) -> Self {
        let assignment = partition.assignment();
        FetchResult {
            current_leader: Some(LeaderHint {
                leader_id: assignment.leader.unwrap_or(-1),
                leader_epoch: assignment.leader_epoch.0,
            }),
            ..FetchResult::error(error_code)
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

/// An owner's read of one partition, from its leader only: as a consumer, or as a
/// follower after its position is checked (module doc).
async fn read_one(partition: &Partition, spec: ReadSpec) -> FetchResult {
    if !partition.is_leader() {
        return FetchResult::redirect(code::NOT_LEADER_OR_FOLLOWER, partition);
    }
    let epoch = partition.leader_epoch().0;
    if spec.current_leader_epoch >= 0 && spec.current_leader_epoch != epoch {
        let error = if spec.current_leader_epoch < epoch {
            code::FENCED_LEADER_EPOCH
        } else {
            code::UNKNOWN_LEADER_EPOCH
        };
        return FetchResult::redirect(error, partition);
    }
    let mut result = FetchResult {
        high_watermark: partition.high_watermark(),
        last_stable_offset: partition.last_stable_offset(),
        log_start_offset: partition.log_start_offset(),
        ..FetchResult::error(code::NONE)
    };
    let reader = match spec.replica {
        None if spec.read_committed => Reader::Committed,
        None => Reader::Consumer,
        Some((replica, _)) if !partition.assignment().replicas.contains(&replica) => {
            return FetchResult::redirect(code::NOT_LEADER_OR_FOLLOWER, partition);
        }
        Some((replica, broker_epoch)) => {
            match partition.check_follower(spec.offset, spec.last_fetched_epoch) {
                FollowerPosition::Diverging { epoch, end_offset } => {
                    result.diverging_epoch = Some(EpochEnd { epoch, end_offset });
                    return result;
                }
                FollowerPosition::OutOfRange => {
                    result.error_code = code::OFFSET_OUT_OF_RANGE;
                    return result;
                }
                FollowerPosition::Matches => {
                    partition.follower_fetched(replica, broker_epoch, spec.offset);
                    result.high_watermark = partition.high_watermark();
                    result.last_stable_offset = partition.last_stable_offset();
                    Reader::Replica
                }
            }
        }
    };
    match partition
        .read(spec.offset, spec.max_bytes, true, reader)
        .await
    {
        Ok((read, bound)) => {
            match reader {
                Reader::Consumer => {
                    result.high_watermark = bound;
                    result.last_stable_offset = partition.last_stable_offset();
                }
                Reader::Committed => {
                    result.high_watermark = partition.high_watermark();
                    result.last_stable_offset = bound;
                    let aborted = partition.aborted_transactions(spec.offset, read.next_offset);
                    result.aborted_transactions = Some(aborted);
                }
                Reader::Replica => {}
            }
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

/// One partition a long poll waits on.
#[derive(Debug, Clone)]
pub struct WaitItem {
    /// The topic.
    pub(crate) topic: String,
    /// The partition.
    pub(crate) partition: i32,
    /// The fetch offset.
    pub(crate) offset: i64,
    /// For a follower: the high watermark its first read was given.
    pub(crate) sent_hw: Option<i64>,
    /// A read_committed consumer: waits for stable data.
    pub(crate) read_committed: bool,
}

/// Completes when any of these partitions on the target shard has data past its offset, or
/// after `max_wait_ms`. Cancelled when the fetch stops waiting.
pub struct WaitOnOwner {
    pub(crate) items: Vec<WaitItem>,
    pub(crate) max_wait_ms: u64,
}

impl Call<Shard> for WaitOnOwner {
    type Reply = ();
    const CANCELLABLE: bool = true;

    async fn run(self, shard: Rc<Shard>) {
        // A follower's poll also ends when a new image is applied here: it may make the
        // follower follow more partitions of this leader, which its next fetch then carries.
        let follower = self.items.iter().any(|w| w.sent_hw.is_some());
        let version = shard.applied_version();
        let wait = async {
            loop {
                let seen = shard.data_arrived.generation();
                if follower && shard.applied_version() != version {
                    return;
                }
                let ready = self.items.iter().any(|w| {
                    shard
                        .partition(&w.topic, w.partition)
                        .is_none_or(|partition| match w.sent_hw {
                            None if w.read_committed => partition.has_stable_data_past(w.offset),
                            None => partition.has_data_past(w.offset),
                            Some(hw) => partition.has_replica_data_past(w.offset, hw),
                        })
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

/// One partition's answer in the broker's counters: its error, its bytes by topic and by
/// where they came from.
fn count_partition(w: &Wanted, data: &PartitionData<RecordPiece>) {
    let follower = w.spec.replica.is_some();
    let key = if follower {
        crate::stats::FETCH_FOLLOWER
    } else {
        ApiKey::Fetch as i16
    };
    crate::stats::error(key, data.error_code);
    let Some(topic) = &w.topic else { return };
    let (mut bytes, mut cached) = (0, 0);
    for piece in &data.records {
        match piece {
            RecordPiece::Memory(b) => {
                bytes += b.len();
                cached += b.len();
            }
            RecordPiece::File { len, .. } => bytes += *len as usize,
        }
    }
    crate::stats::fetched(topic, follower, bytes, cached);
}

fn encode(
    ctx: &Context,
    header: &RequestHeader,
    wanted: &[Wanted],
    results: Vec<Option<FetchResult>>,
    max_bytes: usize,
    throttle_ms: u64,
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
            aborted_transactions: None,
            records: Vec::new(),
            diverging_epoch: None,
            current_leader: (w.absent == code::NOT_LEADER_OR_FOLLOWER)
                .then_some(w.hint)
                .flatten(),
        };
        if w.topic.is_none() && header.api_version >= 13 {
            data.error_code = code::UNKNOWN_TOPIC_ID;
        }
        if let Some(r) = r {
            data.error_code = r.error_code;
            data.high_watermark = r.high_watermark;
            data.last_stable_offset = r.last_stable_offset;
            data.log_start_offset = r.log_start_offset;
            data.aborted_transactions = r.aborted_transactions;
            data.diverging_epoch = r.diverging_epoch;
            data.current_leader = r.current_leader;
            if total == 0 || total + r.bytes <= max_bytes {
                total += r.bytes;
                data.records = r.records;
            }
        }
        count_partition(w, &data);
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
    // KIP-951: the endpoints of the leaders hinted above.
    let hinted: Vec<i32> = topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.current_leader.map(|l| l.leader_id))
        .filter(|&id| id >= 0)
        .collect();
    let node_endpoints: Vec<NodeEndpoint> = if hinted.is_empty() {
        Vec::new()
    } else {
        ctx.brokers()
            .into_iter()
            .filter(|b| hinted.contains(&b.id))
            .map(|b| NodeEndpoint {
                node_id: b.id,
                host: b.host.clone(),
                port: i32::from(b.port),
                rack: b.rack.clone(),
            })
            .collect()
    };
    let (chunks, _) = encode_fetch_response(
        header.correlation_id,
        header.api_version,
        (throttle_ms.min(i32::MAX as u64) as i32, code::NONE, 0),
        topics,
        &node_endpoints,
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
