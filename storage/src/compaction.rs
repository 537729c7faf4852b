//! Log compaction (Kafka's log cleaner) for one partition.
//!
//! A clean covers the *cleanable* segments: the closed segments from the log start, synced,
//! below the durable end, with their indexes written, whose newest record is older than
//! `min_compaction_lag_ms`; it stops at the first one that is not (the active segment never
//! is). It runs in two passes over them:
//!
//! 1. **Key map**: every keyed record's key and the latest offset it has in the range. The
//!    map is bounded by `cleaner_dedupe_buffer_bytes` (key bytes plus [`MAP_ENTRY_BYTES`] per
//!    key); when it fills, the clean covers only the segments scanned completely.
//! 2. **Rewrite**, one segment at a time: a record is kept unless a later record in the map
//!    has its key, it has no key (Kafka drops those too), or it is a tombstone whose segment's
//!    newest timestamp is older than `delete_retention_ms` (our *delete horizon*: a tombstone
//!    stays readable for at least that long after it, and every record around it, was
//!    written; Kafka's KIP-534 horizon counts from the first clean instead, a difference
//!    only in how long tombstones linger). Batches keep their offsets, timestamps, leader
//!    epoch, producer fields and codec ([`millrace_wire::records::filter_records`]). A batch
//!    left empty is dropped, except when it is the last batch of the segment (so a segment
//!    still ends where the next begins, which recovery checks) or the last batch of a known
//!    idempotent producer (so its sequence survives a restart, as in Kafka). Control batches
//!    (transaction markers) are kept as they are.
//!
//! Transactions: a clean never reaches a segment holding the start of an open transaction
//! (the cleanable segments end at or below the first open offset, as Kafka's end at the last
//! stable offset), so every transactional batch it sees is committed or aborted. Records of
//! aborted transactions take no part in the key map (they never supersede a committed record)
//! and are all dropped. Markers stay (Kafka removes them once their transaction's data is
//! gone and `delete.retention.ms` has passed; keeping them costs a few bytes each).
//!
//! Offsets are therefore no longer dense inside a cleaned segment; reads, index lookups and
//! recovery accept gaps (a fetch inside a gap gets the next batch).
//!
//! # The swap, crash-safe
//!
//! 1. Write `<base>.log.cleaned` through the [`Disk`] (aligned direct I/O), `sync_data` it.
//! 2. Remove `<base>.index`/`.timeindex`, `sync_dir`; then (checking without an await that
//!    the segment was not deleted meanwhile) rename `.log.cleaned` over `<base>.log`
//!    (atomic), `sync_dir`.
//! 3. Open the new file, swap it and its index into the segment, forget the log's cached
//!    batches below the segment's end, write the new index files.
//!
//! A crash before the rename leaves the old `.log` (perhaps without its index, which recovery
//! rebuilds by scanning) and a `.cleaned` file that recovery removes; after it, the new
//! `.log`, rescanned if its index is not there yet. Either the old or the new content of a
//! segment survives, whole. Each segment is swapped on its own (one file for one file), so no
//! `.swap` stage is needed.

use crate::disk::{Disk, DiskFile};
use crate::error::io_err;
use crate::log::{corrupt, LogConfig, PartitionLog};
use crate::retention::remove_if_present;
use crate::segment::{file_name, SegmentIndex};
use crate::StorageError;
use bytes::{Bytes, BytesMut};
use millrace_wire::records::{
    decode_records, filter_records, BatchHeader, BatchIter, BatchStep, Record,
};
use millrace_wire::WireError;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::rc::Rc;

/// Fixed cost counted per key in the cleaner's map, on top of the key's bytes.
pub const MAP_ENTRY_BYTES: usize = 48;
/// The largest read or write the cleaner asks of the disk. A request in flight delays every
/// foreground write and flush queued behind it on the device for as long as it takes, so the
/// cleaner keeps one small request in flight rather than a batch-sized one: a 1 MiB direct
/// read took about 1 ms on our test disk, a 64 KiB one 0.15 ms (docs/BENCHMARKS.md, "Cleaner
/// request size").
pub const IO_BYTES: usize = 64 * 1024;
/// Suffix of a cleaned segment before its swap.
pub(crate) const CLEANED_SUFFIX: &str = ".log.cleaned";

/// Batch bytes the cleaner decodes between two [`Throttle::pause`]s.
const SLICE_BYTES: usize = 64 * 1024;

/// Paces the cleaner: the log awaits `pace(n)` before each request of `n` bytes (at most
/// [`IO_BYTES`]) it reads or writes, and `pause()` after each [`SLICE_BYTES`] of batches it
/// decodes. The broker implements it with a token bucket and its timers.
pub trait Throttle {
    /// Returns once `bytes` more may be done.
    fn pace(&self, bytes: usize) -> impl Future<Output = ()>;

    /// Lets foreground work run before the next slice of decoding.
    fn pause(&self) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}

/// Counts decoded batch bytes and pauses the throttle after every [`SLICE_BYTES`].
#[derive(Default)]
struct Slices(usize);

impl Slices {
    async fn decoded<T: Throttle>(&mut self, bytes: usize, throttle: &T) {
        self.0 += bytes;
        if self.0 >= SLICE_BYTES {
            self.0 = 0;
            throttle.pause().await;
        }
    }
}

/// A [`Throttle`] that never waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoThrottle;

impl Throttle for NoThrottle {
    fn pace(&self, _bytes: usize) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}

/// What [`PartitionLog::clean`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// True when at least one segment was rewritten.
    pub cleaned: bool,
    /// Bytes of segments read (both passes).
    pub bytes_read: u64,
    /// Bytes of cleaned segments written.
    pub bytes_written: u64,
    /// Records dropped.
    pub records_removed: u64,
    /// The end of the range this clean covered (offsets below it are clean); the log start
    /// offset when nothing was cleanable.
    pub cleaned_end_offset: i64,
}

/// A segment the clean covers.
struct Source<F> {
    base: i64,
    next_offset: i64,
    size: u64,
    max_timestamp: i64,
    first_timestamp: i64,
    file: Rc<F>,
}

impl<D: Disk> PartitionLog<D> {
    /// The share of the closed, durable segments' bytes not cleaned since the log was opened
    /// (0 when there are none). Ignores `min_compaction_lag_ms`, which [`PartitionLog::clean`]
    /// applies itself. After a restart every segment counts as dirty until the first clean.
    pub fn dirty_ratio(&self) -> f64 {
        let (sources, first_dirty) = self.cleanable(None);
        ratio(&sources, first_dirty)
    }

    /// The cleaner's backlog for the metrics: (dirty bytes, bytes of the closed durable
    /// segments), None when the log is not compacted.
    pub fn cleaner_backlog(&self) -> Option<(u64, u64)> {
        if !self.config().cleanup_compact {
            return None;
        }
        let (sources, first_dirty) = self.cleanable(None);
        let total = sources.iter().map(|s| s.size).sum();
        let dirty = sources
            .iter()
            .filter(|s| s.next_offset > first_dirty)
            .map(|s| s.size)
            .sum();
        Some((dirty, total))
    }

    /// Compacts the cleanable segments (only with `cleanup_compact`), unless the dirty ratio is
    /// below `min_cleanable_dirty_ratio` and no dirty segment is older than
    /// `max_compaction_lag_ms`. See the module documentation for the rules. A second call
    /// while one runs returns at once with `cleaned: false`.
    pub async fn clean<T: Throttle>(
        &self,
        now_ms: i64,
        throttle: &T,
    ) -> Result<CleanOutcome, StorageError> {
        let config = self.config();
        let mut outcome = CleanOutcome {
            cleaned_end_offset: self.log_start_offset(),
            ..CleanOutcome::default()
        };
        if self.state.borrow().closed {
            return Err(StorageError::Closed);
        }
        if !config.cleanup_compact {
            return Ok(outcome);
        }
        let Some(_cleaning) = self.cleaning.try_lock() else {
            return Ok(outcome);
        };
        let (mut sources, first_dirty) = self.cleanable(Some((now_ms, &config)));
        let aborted = self.aborted_ranges();
        let forced = sources.iter().any(|s| {
            s.next_offset > first_dirty
                && s.first_timestamp >= 0
                && now_ms.saturating_sub(s.first_timestamp) >= config.max_compaction_lag_ms
        });
        if sources.is_empty()
            || (!forced && ratio(&sources, first_dirty) < config.min_cleanable_dirty_ratio)
        {
            return Ok(outcome);
        }
        let map = build_key_map(&mut sources, &config, &aborted, throttle, &mut outcome).await?;
        if sources.is_empty() {
            tracing::warn!(dir = %self.dir.display(), "cleaner: the first segment's keys do not fit the dedupe buffer");
            return Ok(outcome);
        }
        let keep_batches: HashSet<i64> = {
            let st = self.state.borrow();
            let producers = st.producers.producers.values();
            producers
                .filter_map(|p| p.batches.back().map(|b| b.base_offset))
                .collect()
        };
        let rules = Rules {
            map: &map,
            aborted: &aborted,
            keep_batches: &keep_batches,
            now_ms,
            config: &config,
        };
        for src in &sources {
            self.clean_segment(src, &rules, throttle, &mut outcome)
                .await?;
        }
        let end = sources.last().expect("not empty").next_offset;
        {
            let mut st = self.state.borrow_mut();
            st.first_dirty_offset = st.first_dirty_offset.max(end);
        }
        outcome.cleaned_end_offset = end;
        if let Err(e) = self.write_metadata().await {
            tracing::warn!(dir = %self.dir.display(), error = %e, "writing cleaned segment indexes failed");
        }
        Ok(outcome)
    }

    /// Each producer's aborted transactions: (first offset, marker offset).
    fn aborted_ranges(&self) -> AbortedRanges {
        let mut out = AbortedRanges::new();
        for e in &self.state.borrow().aborted {
            out.entry(e.producer_id)
                .or_default()
                .push((e.first_offset, e.last_offset));
        }
        out
    }

    /// The cleanable segments (with `Some((now, config))`, only those past the minimum
    /// compaction lag) and the first dirty offset.
    fn cleanable(&self, lag: Option<(i64, &LogConfig)>) -> (Vec<Source<D::File>>, i64) {
        let st = self.state.borrow();
        // Never into an open transaction: whether its records count is not known yet.
        let bound = st
            .durable_end
            .min(st.producers.first_open_offset().unwrap_or(i64::MAX));
        let closed = &st.segments[..st.segments.len() - 1];
        let mut out = Vec::new();
        for seg in closed {
            let ready = seg.rolled
                && seg.index_written
                && seg.data_synced()
                && seg.flushed_size == seg.index.size
                && seg.index.next_offset <= bound;
            let young = lag.is_some_and(|(now_ms, c)| {
                c.min_compaction_lag_ms > 0
                    && seg.index.max_timestamp > now_ms.saturating_sub(c.min_compaction_lag_ms)
            });
            let Some(file) = seg.file.clone().filter(|_| ready && !young) else {
                break;
            };
            out.push(Source {
                base: seg.base_offset,
                next_offset: seg.index.next_offset,
                size: seg.index.size,
                max_timestamp: seg.index.max_timestamp,
                first_timestamp: seg.index.first_timestamp,
                file,
            });
        }
        (out, st.first_dirty_offset)
    }

    /// Rewrites one segment and swaps it in (see the module documentation).
    async fn clean_segment<T: Throttle>(
        &self,
        src: &Source<D::File>,
        rules: &Rules<'_>,
        throttle: &T,
        outcome: &mut CleanOutcome,
    ) -> Result<(), StorageError> {
        let cleaned_path = file_name(&self.dir, src.base, CLEANED_SUFFIX);
        remove_if_present(&self.disk, &cleaned_path).await?;
        let out_file = self
            .disk
            .open(&cleaned_path, true)
            .await
            .map_err(io_err("create", &cleaned_path))?;
        let interval = u64::from(self.config.borrow().index_interval_bytes);
        let mut writer = AlignedWriter::new(&out_file);
        let mut index = SegmentIndex::empty(src.base);
        let mut removed = 0u64;
        let mut reader = BatchReader::new(&*src.file, src.size);
        let mut slices = Slices::default();
        while let Some(batches) = reader.next(throttle, outcome).await? {
            for bytes in batches {
                slices.decoded(bytes.len(), throttle).await;
                let Some(kept) = rules.rewrite(&bytes, src, &mut removed, src.file.path())? else {
                    continue;
                };
                let h = BatchHeader::parse(&kept).expect("rewritten batch has a header");
                index.add_batch(src.base, &h, interval);
                writer.push(&kept, throttle).await?;
            }
        }
        if removed == 0 {
            drop(out_file);
            return remove_if_present(&self.disk, &cleaned_path).await;
        }
        outcome.bytes_written += writer.finish(throttle).await?;
        out_file
            .sync_data()
            .await
            .map_err(io_err("sync", &cleaned_path))?;
        drop(out_file);
        debug_assert_eq!(index.next_offset, src.next_offset);
        if !self.swap_in(src, &cleaned_path).await? {
            return Ok(());
        }
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(io_err("sync dir", &self.dir))?;
        let log_path = file_name(&self.dir, src.base, ".log");
        let file = match self.disk.open(&log_path, false).await {
            Ok(file) => file,
            // Deleted by retention or DeleteRecords after the rename: nothing left to swap.
            Err(_) if !self.still_closed(src.base) => return Ok(()),
            Err(e) => return Err(io_err("open", &log_path)(e)),
        };
        let mut st = self.state.borrow_mut();
        if let Ok(i) = st
            .segments
            .binary_search_by_key(&src.base, |s| s.base_offset)
        {
            let seg = &mut st.segments[i];
            let align = file.alignment() as u64;
            seg.file = Some(Rc::new(file));
            seg.flushed_size = index.size;
            seg.synced_size = index.size;
            seg.tail = Vec::new();
            seg.tail_position = index.size - index.size % align;
            seg.index = index;
            seg.index_written = false;
            st.recompute_max_timestamps();
        }
        self.cache.forget_below(self.cache_id, src.next_offset);
        outcome.cleaned = true;
        outcome.records_removed += removed;
        Ok(())
    }

    /// Step 2 of the swap: false (and the cleaned file removed) when the segment went
    /// meanwhile (retention, DeleteRecords). The old indexes are removed durably before the
    /// rename, so no crash can pair the new file with the old index.
    async fn swap_in(
        &self,
        src: &Source<D::File>,
        cleaned_path: &Path,
    ) -> Result<bool, StorageError> {
        if !self.still_closed(src.base) {
            remove_if_present(&self.disk, cleaned_path).await?;
            return Ok(false);
        }
        for suffix in [".index", ".timeindex"] {
            remove_if_present(&self.disk, &file_name(&self.dir, src.base, suffix)).await?;
        }
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(io_err("sync dir", &self.dir))?;
        // Checked again after the await, and no await between the check and the rename.
        if !self.still_closed(src.base) {
            remove_if_present(&self.disk, cleaned_path).await?;
            return Ok(false);
        }
        let log_path = file_name(&self.dir, src.base, ".log");
        self.disk
            .rename(cleaned_path, &log_path)
            .map_err(io_err("rename", cleaned_path))?;
        tracing::debug!(dir = %self.dir.display(), base_offset = src.base, "cleaned segment swapped in");
        Ok(true)
    }

    /// The segment with this base still exists and is not the active one.
    fn still_closed(&self, base: i64) -> bool {
        let st = self.state.borrow();
        st.find_segment(base)
            .is_some_and(|i| i + 1 < st.segments.len())
    }
}

/// Each producer's aborted transactions: (first offset, marker offset).
type AbortedRanges = HashMap<i64, Vec<(i64, i64)>>;

/// True for a data batch of an aborted transaction.
fn in_aborted_txn(aborted: &AbortedRanges, h: &BatchHeader) -> bool {
    h.is_transactional()
        && !h.is_control()
        && aborted.get(&h.producer_id).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|&(first, marker)| first <= h.base_offset && h.base_offset < marker)
        })
}

/// What decides a record's and a batch's fate.
struct Rules<'a> {
    map: &'a HashMap<Vec<u8>, i64>,
    aborted: &'a AbortedRanges,
    keep_batches: &'a HashSet<i64>,
    now_ms: i64,
    config: &'a LogConfig,
}

impl Rules<'_> {
    /// The batch as the cleaned segment holds it, or None when it goes entirely.
    fn rewrite<F>(
        &self,
        batch: &Bytes,
        src: &Source<F>,
        removed: &mut u64,
        path: &std::path::Path,
    ) -> Result<Option<Bytes>, StorageError> {
        let h = BatchHeader::parse(batch).map_err(|e| corrupt(path, 0, &e.to_string()))?;
        if h.is_control() {
            return Ok(Some(batch.clone()));
        }
        let horizon_passed = src.max_timestamp >= 0
            && self.now_ms.saturating_sub(src.max_timestamp) > self.config.delete_retention_ms;
        let aborted = in_aborted_txn(self.aborted, &h);
        let mut dropped = 0u64;
        let filtered = filter_records(batch, self.config.decode_bytes_max, |r| {
            let keep = !aborted && self.keep(r, horizon_passed);
            dropped += u64::from(!keep);
            keep
        })
        .map_err(|e| undecodable(path, h.base_offset, e))?;
        *removed += dropped;
        let Some(rebuilt) = filtered else {
            return Ok(Some(batch.clone()));
        };
        let empty = BatchHeader::parse(&rebuilt).map_or(true, |r| r.record_count == 0);
        let last_of_segment = h.next_offset() == src.next_offset;
        if empty && !last_of_segment && !self.keep_batches.contains(&h.base_offset) {
            return Ok(None);
        }
        Ok(Some(Bytes::from(rebuilt)))
    }

    fn keep(&self, r: &Record, horizon_passed: bool) -> bool {
        let Some(key) = &r.key else {
            return false;
        };
        if self
            .map
            .get(key.as_ref())
            .is_some_and(|&latest| latest > r.offset)
        {
            return false;
        }
        !(r.value.is_none() && horizon_passed)
    }
}

/// Pass 1: the latest offset of every key in `sources`, within the configured bound; cuts
/// `sources` to the segments scanned completely.
async fn build_key_map<F: DiskFile, T: Throttle>(
    sources: &mut Vec<Source<F>>,
    config: &LogConfig,
    aborted: &AbortedRanges,
    throttle: &T,
    outcome: &mut CleanOutcome,
) -> Result<HashMap<Vec<u8>, i64>, StorageError> {
    let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut map_bytes = 0usize;
    for (covered, src) in sources.iter().enumerate() {
        let mut reader = BatchReader::new(&*src.file, src.size);
        let mut slices = Slices::default();
        while let Some(batches) = reader.next(throttle, outcome).await? {
            for batch in batches {
                slices.decoded(batch.len(), throttle).await;
                let h = BatchHeader::parse(&batch)
                    .map_err(|e| corrupt(src.file.path(), 0, &e.to_string()))?;
                if h.is_control() || in_aborted_txn(aborted, &h) {
                    continue;
                }
                let records = decode_records(&batch, config.decode_bytes_max)
                    .map_err(|e| undecodable(src.file.path(), h.base_offset, e))?;
                for r in records {
                    let Some(key) = r.key else { continue };
                    if let Some(latest) = map.get_mut(key.as_ref()) {
                        *latest = (*latest).max(r.offset);
                        continue;
                    }
                    let cost = key.len() + MAP_ENTRY_BYTES;
                    if map_bytes + cost > config.cleaner_dedupe_buffer_bytes {
                        // Entries from this partial segment stay: each names a later record
                        // that exists, which is all a drop needs.
                        sources.truncate(covered);
                        return Ok(map);
                    }
                    map_bytes += cost;
                    map.insert(key.to_vec(), r.offset);
                }
            }
        }
    }
    Ok(map)
}

/// The dirty share of the sources' bytes.
fn ratio<F>(sources: &[Source<F>], first_dirty: i64) -> f64 {
    let total: u64 = sources.iter().map(|s| s.size).sum();
    let dirty: u64 = sources
        .iter()
        .filter(|s| s.next_offset > first_dirty)
        .map(|s| s.size)
        .sum();
    if total == 0 {
        0.0
    } else {
        dirty as f64 / total as f64
    }
}

/// Reads a segment's batches front to back in requests of at most [`IO_BYTES`], each paced
/// by the throttle before it is made, and never reads a byte twice: a batch larger than one
/// request is assembled from several.
struct BatchReader<'a, F> {
    file: &'a F,
    /// The segment's logical size.
    end: u64,
    /// File position of the end of `buf`.
    read: u64,
    /// Bytes read and not yet returned; they start with a batch.
    buf: BytesMut,
}

impl<'a, F: DiskFile> BatchReader<'a, F> {
    fn new(file: &'a F, end: u64) -> Self {
        BatchReader {
            file,
            end,
            read: 0,
            buf: BytesMut::new(),
        }
    }

    /// File position of the first byte not returned yet.
    fn position(&self) -> u64 {
        self.read - self.buf.len() as u64
    }

    /// The next whole batches (at least one), or None at the segment's end.
    async fn next<T: Throttle>(
        &mut self,
        throttle: &T,
        outcome: &mut CleanOutcome,
    ) -> Result<Option<Vec<Bytes>>, StorageError> {
        loop {
            if self.position() >= self.end {
                return Ok(None);
            }
            let mut ends = Vec::new();
            let mut short = None;
            for step in BatchIter::new(&self.buf) {
                match step {
                    BatchStep::Batch {
                        position, bytes, ..
                    } => ends.push(position + bytes.len()),
                    BatchStep::Tail { reason, .. } => {
                        short = Some(reason);
                        break;
                    }
                }
            }
            if let Some(&consumed) = ends.last() {
                let taken = self.buf.split_to(consumed).freeze();
                let mut start = 0;
                let batches = ends
                    .into_iter()
                    .map(|end| {
                        let batch = taken.slice(start..end);
                        start = end;
                        batch
                    })
                    .collect();
                return Ok(Some(batches));
            }
            let at = self.position();
            let cut_short = || corrupt(self.file.path(), at, "batch cut short in a synced segment");
            match short {
                // Nothing buffered yet, or the batch continues past what is buffered.
                None => {}
                Some(WireError::Truncated { needed, .. }) if at + needed as u64 <= self.end => {}
                Some(_) => return Err(cut_short()),
            }
            self.read_more(throttle, outcome).await?;
        }
    }

    /// Appends one request's worth, ending on an [`IO_BYTES`] boundary or the segment's end.
    async fn read_more<T: Throttle>(
        &mut self,
        throttle: &T,
        outcome: &mut CleanOutcome,
    ) -> Result<(), StorageError> {
        let step = IO_BYTES as u64;
        let len = (step - self.read % step).min(self.end - self.read) as usize;
        throttle.pace(len).await;
        let mut data = self
            .file
            .read_at(self.read, len)
            .await
            .map_err(io_err("read", self.file.path()))?;
        if data.len() < len {
            return Err(corrupt(
                self.file.path(),
                self.read + data.len() as u64,
                "segment file shorter than its index says",
            ));
        }
        data.truncate(len);
        if self.buf.is_empty() {
            // Nothing carried over: keep the read's own buffer instead of copying it.
            self.buf = data
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        } else {
            self.buf.extend_from_slice(&data);
        }
        self.read += len as u64;
        outcome.bytes_read += len as u64;
        Ok(())
    }
}

fn undecodable(path: &std::path::Path, offset: i64, e: WireError) -> StorageError {
    corrupt(
        path,
        0,
        &format!("cleaner cannot decode the batch at offset {offset}: {e}"),
    )
}

/// Buffers a cleaned segment and writes it in aligned chunks; the last block zero-padded.
struct AlignedWriter<'a, F> {
    file: &'a F,
    buf: Vec<u8>,
    position: u64,
    logical: u64,
}

impl<'a, F: DiskFile> AlignedWriter<'a, F> {
    fn new(file: &'a F) -> Self {
        AlignedWriter {
            file,
            buf: Vec::new(),
            position: 0,
            logical: 0,
        }
    }

    async fn push<T: Throttle>(&mut self, bytes: &[u8], throttle: &T) -> Result<(), StorageError> {
        self.buf.extend_from_slice(bytes);
        self.logical += bytes.len() as u64;
        self.write_pieces(throttle).await
    }

    /// Writes the rest, padded; returns the logical bytes written in all.
    async fn finish<T: Throttle>(mut self, throttle: &T) -> Result<u64, StorageError> {
        let align = self.file.alignment();
        let padded = self.buf.len().div_ceil(align) * align;
        self.buf.resize(padded, 0);
        self.write_pieces(throttle).await?;
        if !self.buf.is_empty() {
            let n = self.buf.len();
            self.write_range(0, n, throttle).await?;
            self.buf.clear();
        }
        Ok(self.logical)
    }

    /// Writes every whole piece buffered (each [`IO_BYTES`], or the alignment if larger).
    async fn write_pieces<T: Throttle>(&mut self, throttle: &T) -> Result<(), StorageError> {
        let piece = IO_BYTES.max(self.file.alignment());
        let mut done = 0;
        while self.buf.len() - done >= piece {
            self.write_range(done, piece, throttle).await?;
            done += piece;
        }
        self.buf.drain(..done);
        Ok(())
    }

    /// Writes `buf[start..start + n]` at the next file position.
    async fn write_range<T: Throttle>(
        &mut self,
        start: usize,
        n: usize,
        throttle: &T,
    ) -> Result<(), StorageError> {
        throttle.pace(n).await;
        self.file
            .write_at(self.position, &self.buf[start..start + n])
            .await
            .map_err(io_err("write", self.file.path()))?;
        self.position += n as u64;
        Ok(())
    }
}
