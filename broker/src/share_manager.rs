//! The share partitions of one shard: the [`SharePartition`]s of the topic-partitions this
//! shard leads, one per share group that fetched from them, with their I/O: loading from and
//! writing to the share coordinator (`crate::share_state`), reading records from the log, the
//! lock timer, and the calls ShareFetch and ShareAcknowledge make on the partition's shard.
//!
//! An entry is loaded on the first fetch of its group under the partition's current leader
//! epoch: its persisted state is read back (or, for a partition the group never read,
//! initialized at `share.auto.offset.reset` and written before anything is acquired). An entry
//! whose partition this shard stops leading, or leads under another epoch, is dropped and its
//! locks with it (the new leader's state starts from what was written). Writes of one entry go
//! one at a time, in order, under its turn; an acknowledgement is answered once the write
//! carrying it is committed on the state topic. A write that fails drops the entry: its memory
//! may hold changes that are not durable, so the next fetch reads the durable state back.
//!
//! [`SharePartition`]: crate::share::partition::SharePartition

use crate::errors::code;
use crate::group_config::{ShareAutoOffsetReset, ShareIsolationLevel};
use crate::mesh::Call;
use crate::partition::Reader;
use crate::shard::{Partition, Shard};
use crate::share::partition::{AckBatch, AcquiredRecords, SharePartition};
use crate::share::record::{ShareSnapshotValue, ShareStateKey, StateRecord};
use crate::share::ShareConfig;
use crate::share_state;
use bytes::{Bytes, BytesMut};
use millrace_shard::sync::{Notify, Turn};
use millrace_storage::disk::DiskFile;
use millrace_storage::ReadChunk;
use millrace_wire::records::{txn_marker, BatchIter, BatchStep};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;

/// How often the lock timer looks for expired locks and partitions no longer led here.
const TICK: Duration = Duration::from_millis(100);

/// (group, topic, partition).
type EntryKey = (String, String, i32);

/// One (share group, topic-partition) on the shard leading the partition.
struct Entry {
    key: ShareStateKey,
    /// Loading and writes, one at a time.
    turn: Turn,
    loaded: RefCell<Option<Loaded>>,
    /// The last write known committed.
    durable: Cell<u64>,
}

struct Loaded {
    sp: SharePartition,
    /// The partition's leader epoch the state was loaded under.
    leader_epoch: i32,
    isolation: ShareIsolationLevel,
}

/// The share partitions of one shard.
#[derive(Default)]
pub struct ShardShares {
    entries: RefCell<HashMap<EntryKey, Rc<Entry>>>,
    /// Fires when records may have become available without new data in the log (released,
    /// expired, an entry dropped): share fetches waiting for records wait on it too.
    pub released: Notify,
    /// Share sessions open on connections of this shard (`group.share.max.share.sessions`).
    pub sessions_open: Cell<usize>,
    /// Fires when an entry is added (the lock timer sleeps while there is none).
    added: Notify,
}

/// The share state of `shard` (installed on first use).
pub fn shares_of(shard: &Shard) -> Rc<ShardShares> {
    shard.subsystems.get_or_install(ShardShares::default)
}

/// What one partition's share fetch returned.
#[derive(Debug, Default)]
pub struct ShareFetched {
    /// Fetch error code.
    pub error_code: i16,
    /// The leader's (id, epoch) as this shard knows them, with NOT_LEADER_OR_FOLLOWER.
    pub leader: Option<(i32, i32)>,
    /// Whole batches holding the acquired records.
    pub records: Option<Bytes>,
    /// The acquired ranges.
    pub acquired: Vec<AcquiredRecords>,
}

impl ShareFetched {
    fn error(error_code: i16) -> Self {
        ShareFetched {
            error_code,
            ..ShareFetched::default()
        }
    }

    fn redirect(error_code: i16, partition: &Partition) -> Self {
        let a = partition.assignment();
        ShareFetched {
            error_code,
            leader: Some((a.leader.unwrap_or(-1), a.leader_epoch.0)),
            ..ShareFetched::default()
        }
    }

    /// How many records were acquired.
    pub fn acquired_count(&self) -> u64 {
        self.acquired
            .iter()
            .map(|a| (a.last_offset - a.first_offset + 1) as u64)
            .sum()
    }
}

/// One partition of a share fetch: (topic, partition, (topic id, byte limit)).
pub type FetchItem = (String, i32, (uuid::Uuid, usize));

/// Acquires records for a member from partitions this shard leads (one call per shard).
pub struct ShareFetchOnOwner {
    /// Share group.
    pub group: String,
    /// Member.
    pub member: String,
    /// Soft limit of records acquired by this call.
    pub max_records: u32,
    /// The partitions, by slot.
    pub items: Vec<(usize, FetchItem)>,
}

impl Call<Shard> for ShareFetchOnOwner {
    type Reply = Vec<(usize, ShareFetched)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let shares = shares_of(&shard);
        let mut budget = self.max_records;
        let mut out = Vec::with_capacity(self.items.len());
        for (slot, (topic, index, (topic_id, max_bytes))) in self.items {
            let fetched = match shard.partition(&topic, index) {
                None => ShareFetched::error(code::NOT_LEADER_OR_FOLLOWER),
                Some(partition) if budget == 0 => {
                    // Nothing more to take; the partition's errors still count.
                    match partition.is_leader() {
                        true => ShareFetched::default(),
                        false => ShareFetched::redirect(code::NOT_LEADER_OR_FOLLOWER, &partition),
                    }
                }
                Some(partition) => {
                    let key = (self.group.clone(), topic, index);
                    let at = (&partition, topic_id, max_bytes);
                    fetch_one(&shard, &shares, key, at, &self.member, budget).await
                }
            };
            budget = budget.saturating_sub(fetched.acquired_count() as u32);
            out.push((slot, fetched));
        }
        out
    }
}

async fn fetch_one(
    shard: &Rc<Shard>,
    shares: &Rc<ShardShares>,
    key: EntryKey,
    (partition, topic_id, max_bytes): (&Rc<Partition>, uuid::Uuid, usize),
    member: &str,
    max_records: u32,
) -> ShareFetched {
    if !partition.is_leader() {
        return ShareFetched::redirect(code::NOT_LEADER_OR_FOLLOWER, partition);
    }
    let entry = match loaded_entry(shard, shares, key, partition, topic_id).await {
        Ok(e) => e,
        // The share coordinator is not there yet (its topic being made, its partition
        // loading or moving): nothing to deliver now, as Kafka answers while a share
        // partition initializes; the client fetches again.
        Err(
            code::COORDINATOR_NOT_AVAILABLE
            | code::COORDINATOR_LOAD_IN_PROGRESS
            | code::NOT_COORDINATOR
            | code::REQUEST_TIMED_OUT,
        ) => return ShareFetched::default(),
        Err(error) => return ShareFetched::error(error),
    };
    let (from, reader) = {
        let mut l = entry.loaded.borrow_mut();
        let Some(l) = l.as_mut() else {
            return ShareFetched::error(code::NOT_LEADER_OR_FOLLOWER);
        };
        l.sp.log_start_advanced(partition.log_start_offset());
        l.sp.expire(millrace_shard::time::now_ms());
        if !l.sp.can_acquire() {
            return ShareFetched::default();
        }
        let reader = match l.isolation {
            ShareIsolationLevel::ReadCommitted => Reader::Committed,
            ShareIsolationLevel::ReadUncommitted => Reader::Consumer,
        };
        (l.sp.next_fetch_offset(), reader)
    };
    let read = match partition.read(from, max_bytes, true, reader).await {
        Ok((read, _)) => read,
        Err(e) => return ShareFetched::error(crate::errors::storage_code(&e)),
    };
    if read.bytes == 0 {
        return ShareFetched::default();
    }
    let aborted = match reader {
        Reader::Committed => partition.aborted_transactions(from, read.next_offset),
        _ => Vec::new(),
    };
    let mut bytes = Vec::with_capacity(read.chunks.len());
    for chunk in read.chunks {
        match materialize(chunk).await {
            Ok(b) => bytes.push(b),
            Err(_) => return ShareFetched::error(code::KAFKA_STORAGE_ERROR),
        }
    }
    let batches = batches_of(&bytes, &aborted);
    let ranges: Vec<(i64, i64)> = batches.iter().map(|b| (b.first, b.last)).collect();
    let acquired = {
        let mut l = entry.loaded.borrow_mut();
        let Some(l) = l.as_mut() else {
            return ShareFetched::error(code::NOT_LEADER_OR_FOLLOWER);
        };
        let now = millrace_shard::time::now_ms();
        l.sp.acquire(member, from, &ranges, max_records, now)
    };
    // Offsets archived on the way (gone from the log) or a moved start are written in the
    // background; nothing waits on them.
    if entry
        .loaded
        .borrow()
        .as_ref()
        .is_some_and(|l| l.sp.write_pending())
    {
        let (shard, shares, entry) = (shard.clone(), shares.clone(), entry.clone());
        millrace_shard::spawn_detached(async move {
            let _ = flush(&shard, &shares, &entry, u64::MAX).await;
        });
    }
    let mut records = BytesMut::new();
    for b in batches.iter().filter(|b| b.delivered) {
        if acquired
            .iter()
            .any(|a| a.first_offset <= b.last && a.last_offset >= b.first)
        {
            records.extend_from_slice(&bytes[b.chunk][b.start..b.end]);
        }
    }
    ShareFetched {
        records: (!records.is_empty()).then(|| records.freeze()),
        acquired,
        ..ShareFetched::default()
    }
}

/// A batch of a read: its offsets, where its bytes are, and whether the member gets its
/// records (an aborted transaction's batch, read_committed, is acquired but not delivered:
/// the consumer acknowledges its offsets as gaps, which archives them).
struct ReadBatch {
    first: i64,
    last: i64,
    chunk: usize,
    start: usize,
    end: usize,
    delivered: bool,
}

/// The batches of a read, in order; `aborted` are (producer id, first offset) of aborted
/// transactions overlapping it, as a read_committed fetch gets them.
fn batches_of(chunks: &[Bytes], aborted: &[(i64, i64)]) -> Vec<ReadBatch> {
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    pending.sort_by_key(|&(_, first)| first);
    let mut pending = pending.into_iter().peekable();
    let mut aborting: BTreeSet<i64> = BTreeSet::new();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        for step in BatchIter::new(chunk) {
            let BatchStep::Batch {
                position,
                header,
                bytes,
            } = step
            else {
                break;
            };
            while let Some(&(pid, first)) = pending.peek() {
                if first > header.last_offset() {
                    break;
                }
                aborting.insert(pid);
                pending.next();
            }
            let mut delivered = true;
            if header.is_control() {
                if let Ok(Some(_)) = txn_marker(bytes) {
                    aborting.remove(&header.producer_id);
                }
            } else if header.is_transactional() && aborting.contains(&header.producer_id) {
                delivered = false;
            }
            out.push(ReadBatch {
                first: header.base_offset,
                last: header.last_offset(),
                chunk: i,
                start: position,
                end: position + bytes.len(),
                delivered,
            });
        }
    }
    out
}

async fn materialize<F: DiskFile>(chunk: ReadChunk<F>) -> std::io::Result<Bytes> {
    match chunk {
        ReadChunk::Memory(b) => Ok(b),
        ReadChunk::File {
            file,
            position,
            len,
        } => file.read_at(position, len as usize).await,
    }
}

/// The entry of `key`, loaded under the partition's current leader epoch.
async fn loaded_entry(
    shard: &Rc<Shard>,
    shares: &Rc<ShardShares>,
    key: EntryKey,
    partition: &Rc<Partition>,
    topic_id: uuid::Uuid,
) -> Result<Rc<Entry>, i16> {
    let known = shares.entries.borrow().get(&key).cloned();
    let entry = match known {
        // A topic recreated under the same name has another id, and another state.
        Some(e) if e.key.topic_id == topic_id => e,
        stale => {
            if let Some(e) = stale {
                drop_entry(shares, &key, &e);
            }
            let e = Rc::new(Entry {
                key: ShareStateKey {
                    group_id: key.0.clone(),
                    topic_id,
                    partition: key.2,
                },
                turn: Turn::new(),
                loaded: RefCell::new(None),
                durable: Cell::new(0),
            });
            shares.entries.borrow_mut().insert(key.clone(), e.clone());
            shares.added.notify_all();
            e
        }
    };
    let current = |entry: &Entry| {
        let epoch = partition.leader_epoch().0;
        entry
            .loaded
            .borrow()
            .as_ref()
            .is_some_and(|l| l.leader_epoch == epoch)
    };
    if current(&entry) {
        return Ok(entry);
    }
    let guard = entry.clone();
    let _turn = guard.turn.lock().await;
    if current(&entry) {
        return Ok(entry);
    }
    *entry.loaded.borrow_mut() = None;
    let loaded = load(shard, &entry.key, partition).await;
    let loaded = match loaded {
        Ok(l) => l,
        Err(error) => {
            drop_entry(shares, &key, &entry);
            return Err(error);
        }
    };
    if !partition.is_leader() || partition.leader_epoch().0 != loaded.leader_epoch {
        drop_entry(shares, &key, &entry);
        return Err(code::NOT_LEADER_OR_FOLLOWER);
    }
    *entry.loaded.borrow_mut() = Some(loaded);
    entry.durable.set(0);
    Ok(entry)
}

/// Reads the state of `key` back from the share coordinator, or initializes it.
async fn load(
    shard: &Rc<Shard>,
    key: &ShareStateKey,
    partition: &Rc<Partition>,
) -> Result<Loaded, i16> {
    let image = shard.image();
    let settings =
        crate::group_config::group_settings(&image.cluster, &shard.config, &key.group_id).share;
    let config = ShareConfig {
        record_lock_duration_ms: i64::from(settings.record_lock_duration_ms),
        delivery_count_limit: settings.delivery_count_limit.clamp(1, i32::from(u16::MAX)) as u16,
        partition_max_record_locks: settings.partition_max_record_locks.max(1) as u32,
        snapshot_update_records_per_snapshot: shard
            .config
            .group
            .share_snapshot_update_records_per_snapshot
            .max(0) as u32,
    };
    let leader_epoch = partition.leader_epoch().0;
    let committed = settings.isolation_level == ShareIsolationLevel::ReadCommitted;
    let stored = share_state::read(shard, key, leader_epoch).await?;
    let (state_epoch, start, batches, fresh) = match stored {
        Some(state) if state.start_offset >= 0 => {
            (state.state_epoch, state.start_offset, state.batches, false)
        }
        // Never read, or initialized without a start offset: `share.auto.offset.reset`.
        other => {
            let start = start_offset(partition, settings.auto_offset_reset, committed).await?;
            (other.map_or(0, |s| s.state_epoch), start, Vec::new(), true)
        }
    };
    let snapshot = ShareSnapshotValue {
        snapshot_epoch: 0,
        state_epoch,
        leader_epoch,
        start_offset: start,
        create_timestamp: 0,
        write_timestamp: 0,
        state_batches: batches,
        unknown_tagged_fields: Vec::new(),
    };
    let mut sp = SharePartition::recover(config, leader_epoch, &snapshot, &[]).map_err(|e| {
        tracing::warn!(group = %key.group_id, partition = key.partition, "{e}");
        code::UNKNOWN_SERVER_ERROR
    })?;
    if fresh {
        // The start is written before anything is acquired, as Kafka initializes a share
        // partition's state before assigning it.
        let write = share_state::StateWriteRequest {
            state_epoch,
            leader_epoch,
            start_offset: start,
            batches: Vec::new(),
        };
        share_state::write(shard, key, write).await?;
    }
    sp.log_start_advanced(partition.log_start_offset());
    Ok(Loaded {
        sp,
        leader_epoch,
        isolation: settings.isolation_level,
    })
}

/// Where a group that never read `partition` starts (`share.auto.offset.reset`).
async fn start_offset(
    partition: &Partition,
    reset: ShareAutoOffsetReset,
    committed: bool,
) -> Result<i64, i16> {
    let end = match committed {
        true => partition.last_stable_offset(),
        false => partition.high_watermark(),
    };
    Ok(match reset {
        ShareAutoOffsetReset::Latest => end,
        ShareAutoOffsetReset::Earliest => partition.log_start_offset(),
        ShareAutoOffsetReset::ByDuration(ms) => {
            let ts = millrace_shard::time::now_ms().saturating_sub(ms).max(0);
            match partition.list_offset(ts, committed).await {
                Ok(Some((offset, _))) if offset >= 0 => offset,
                Ok(_) => end,
                Err(e) => return Err(crate::errors::storage_code(&e)),
            }
        }
    })
}

/// The share coordinator's write for one of the partition's state records.
fn write_request(record: &StateRecord, state_epoch: i32) -> share_state::StateWriteRequest {
    match record {
        StateRecord::Snapshot(s) => share_state::StateWriteRequest {
            state_epoch: s.state_epoch,
            leader_epoch: s.leader_epoch,
            start_offset: s.start_offset,
            batches: s.state_batches.clone(),
        },
        StateRecord::Update(u) => share_state::StateWriteRequest {
            state_epoch,
            leader_epoch: u.leader_epoch,
            start_offset: u.start_offset,
            batches: u.state_batches.clone(),
        },
    }
}

fn drop_entry(shares: &ShardShares, key: &EntryKey, entry: &Rc<Entry>) {
    *entry.loaded.borrow_mut() = None;
    let mut entries = shares.entries.borrow_mut();
    if entries.get(key).is_some_and(|e| Rc::ptr_eq(e, entry)) {
        entries.remove(key);
    }
    shares.released.notify_all();
}

/// Writes the entry's pending changes until write `upto` is committed. A failed write drops
/// the entry (see the module doc) and is returned.
async fn flush(
    shard: &Rc<Shard>,
    shares: &ShardShares,
    entry: &Rc<Entry>,
    upto: u64,
) -> Result<(), i16> {
    let _turn = entry.turn.lock().await;
    loop {
        if entry.durable.get() >= upto {
            return Ok(());
        }
        let taken = {
            let mut l = entry.loaded.borrow_mut();
            let Some(l) = l.as_mut() else {
                // Dropped meanwhile: whatever was not written is gone with it.
                return Err(code::NOT_LEADER_OR_FOLLOWER);
            };
            let epoch = l.sp.state_epoch();
            l.sp.take_write(millrace_shard::time::now_ms())
                .map(|w| (w.seq.0, write_request(&w.record, epoch)))
        };
        let Some((seq, req)) = taken else {
            // Nothing left to write: every change is in a committed write.
            return Ok(());
        };
        match share_state::write(shard, &entry.key, req).await {
            Ok(()) => entry.durable.set(seq),
            Err(error) => {
                tracing::warn!(
                    group = %entry.key.group_id,
                    partition = entry.key.partition,
                    error,
                    "share state write failed; the share partition is read back at its next fetch"
                );
                let key = find_key(shares, entry);
                if let Some(key) = key {
                    drop_entry(shares, &key, entry);
                } else {
                    *entry.loaded.borrow_mut() = None;
                }
                return Err(error);
            }
        }
    }
}

fn find_key(shares: &ShardShares, entry: &Rc<Entry>) -> Option<EntryKey> {
    shares
        .entries
        .borrow()
        .iter()
        .find(|(_, e)| Rc::ptr_eq(e, entry))
        .map(|(k, _)| k.clone())
}

/// One partition's acknowledgements: (topic, partition, batches).
pub type AckItem = (String, i32, Vec<AckBatch>);

/// Applies a member's acknowledgements on partitions this shard leads and answers once they
/// are durable: an error code per slot.
pub struct ShareAckOnOwner {
    /// Share group.
    pub group: String,
    /// Member.
    pub member: String,
    /// The partitions, by slot.
    pub items: Vec<(usize, AckItem)>,
}

impl Call<Shard> for ShareAckOnOwner {
    type Reply = Vec<(usize, i16)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let shares = shares_of(&shard);
        let now = millrace_shard::time::now_ms();
        let mut applied = Vec::with_capacity(self.items.len());
        for (slot, (topic, index, batches)) in self.items {
            let key = (self.group.clone(), topic.clone(), index);
            let entry = shares.entries.borrow().get(&key).cloned();
            let result = match (shard.partition(&topic, index), entry) {
                (Some(p), Some(entry)) if p.is_leader() => {
                    let epoch = p.leader_epoch().0;
                    let mut l = entry.loaded.borrow_mut();
                    match l.as_mut() {
                        Some(l) if l.leader_epoch == epoch => {
                            l.sp.acknowledge(&self.member, &batches, now)
                                .map(|seq| (entry.clone(), seq.0))
                                .map_err(|e| e.code())
                        }
                        _ => Err(code::INVALID_RECORD_STATE),
                    }
                }
                (Some(p), _) if !p.is_leader() => Err(code::NOT_LEADER_OR_FOLLOWER),
                (None, _) => Err(code::NOT_LEADER_OR_FOLLOWER),
                // Nothing was ever acquired here by this group (or the state was dropped):
                // no lock can be held.
                _ => Err(code::INVALID_RECORD_STATE),
            };
            applied.push((slot, result));
        }
        shares.released.notify_all();
        let mut out = Vec::with_capacity(applied.len());
        for (slot, result) in applied {
            let error = match result {
                Ok((entry, seq)) => match flush(&shard, &shares, &entry, seq).await {
                    Ok(()) => code::NONE,
                    Err(e) => e,
                },
                Err(e) => e,
            };
            out.push((slot, error));
        }
        out
    }
}

/// Releases what a member holds on partitions this shard leads (its share session ended or its
/// connection closed) and writes the new delivery state.
pub struct ShareReleaseOnOwner {
    /// Share group.
    pub group: String,
    /// Member.
    pub member: String,
    /// (topic, partition).
    pub partitions: Vec<(String, i32)>,
}

impl Call<Shard> for ShareReleaseOnOwner {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>) {
        let shares = shares_of(&shard);
        let mut touched = Vec::new();
        for (topic, index) in self.partitions {
            let key = (self.group.clone(), topic, index);
            let Some(entry) = shares.entries.borrow().get(&key).cloned() else {
                continue;
            };
            let released = match entry.loaded.borrow_mut().as_mut() {
                Some(l) => l.sp.release_member(&self.member),
                None => 0,
            };
            if released > 0 {
                touched.push(entry);
            }
        }
        if touched.is_empty() {
            return;
        }
        shares.released.notify_all();
        for entry in touched {
            let _ = flush(&shard, &shares, &entry, u64::MAX).await;
        }
    }
}

/// Drops a share partition's state from memory (its persisted state was replaced or deleted
/// by the share-group offsets APIs): its next fetch reads it back.
pub struct ShareForgetOnOwner {
    /// Share group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
}

impl Call<Shard> for ShareForgetOnOwner {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>) {
        let shares = shares_of(&shard);
        let key = (self.group, self.topic, self.partition);
        let entry = shares.entries.borrow().get(&key).cloned();
        if let Some(entry) = entry {
            // After any write in flight, so nothing written from the old state follows.
            let _turn = entry.turn.lock().await;
            drop_entry(&shares, &key, &entry);
        }
    }
}

/// Waits until one of these partitions may have records for the group (new data past where
/// its next read starts, records released), or `max_wait_ms` passes. Cancelled when the fetch
/// stops waiting.
pub struct ShareWaitOnOwner {
    /// Share group.
    pub group: String,
    /// (topic, partition).
    pub partitions: Vec<(String, i32)>,
    /// Longest wait.
    pub max_wait_ms: u64,
}

impl Call<Shard> for ShareWaitOnOwner {
    type Reply = ();
    const CANCELLABLE: bool = true;

    async fn run(self, shard: Rc<Shard>) {
        let shares = shares_of(&shard);
        let wait = async {
            loop {
                let seen_data = shard.data_arrived.generation();
                let seen_released = shares.released.generation();
                let ready = self.partitions.iter().any(|(topic, index)| {
                    let Some(p) = shard.partition(topic, *index) else {
                        return true;
                    };
                    let key = (self.group.clone(), topic.clone(), *index);
                    // Not loaded (its share coordinator was not reachable): waiting is
                    // better than a client fetching again at once.
                    let Some(entry) = shares.entries.borrow().get(&key).cloned() else {
                        return false;
                    };
                    let l = entry.loaded.borrow();
                    let Some(l) = l.as_ref() else {
                        return false;
                    };
                    if !l.sp.can_acquire() {
                        return false;
                    }
                    let next = l.sp.next_fetch_offset();
                    match l.isolation {
                        ShareIsolationLevel::ReadCommitted => p.has_stable_data_past(next),
                        ShareIsolationLevel::ReadUncommitted => p.has_data_past(next),
                    }
                });
                if ready || shard.stopping.get() {
                    return;
                }
                futures_lite::future::or(
                    shard.data_arrived.changed_since(seen_data),
                    shares.released.changed_since(seen_released),
                )
                .await;
            }
        };
        let max_wait = Duration::from_millis(self.max_wait_ms);
        let _ = millrace_shard::time::timeout(max_wait, wait).await;
    }
}

/// The lock timer of one shard: releases expired locks (and writes their delivery counts),
/// and drops entries of partitions this shard no longer leads under their epoch. While the
/// shard has no entries (no share group has fetched here) it sleeps until one is added, so an
/// idle broker does not wake for it.
pub async fn tick_loop(shard: Rc<Shard>) {
    let shares = shares_of(&shard);
    while !shard.stopping.get() {
        let seen = shares.added.generation();
        if shares.entries.borrow().is_empty() {
            futures_lite::future::or(
                shares.added.changed_since(seen),
                shard.stopped.changed_since(shard.stopped.generation()),
            )
            .await;
            continue;
        }
        millrace_shard::time::sleep(TICK).await;
        let now = millrace_shard::time::now_ms();
        let entries: Vec<(EntryKey, Rc<Entry>)> = shares
            .entries
            .borrow()
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for (key, entry) in entries {
            let led = shard
                .partition(&key.1, key.2)
                .filter(|p| p.is_leader())
                .map(|p| (p.leader_epoch().0, p.log_start_offset()));
            let (stale, expired) = {
                let mut l = entry.loaded.borrow_mut();
                match (l.as_mut(), led) {
                    (Some(l), Some((epoch, _))) if l.leader_epoch != epoch => (true, false),
                    (Some(l), Some((_, log_start))) => {
                        l.sp.log_start_advanced(log_start);
                        let due = l.sp.next_deadline_ms().is_some_and(|d| d <= now);
                        let released = due && l.sp.expire(now) > 0;
                        (false, released || l.sp.write_pending())
                    }
                    (Some(_), None) => (true, false),
                    // Loading (its turn is held) or about to be dropped.
                    (None, _) => (false, false),
                }
            };
            if stale {
                drop_entry(&shares, &key, &entry);
            } else if expired {
                shares.released.notify_all();
                let (shard, shares, entry) = (shard.clone(), shares.clone(), entry.clone());
                millrace_shard::spawn_detached(async move {
                    let _ = flush(&shard, &shares, &entry, u64::MAX).await;
                });
            }
        }
    }
}
