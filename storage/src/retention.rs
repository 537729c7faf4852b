//! The delete policy: retention by time and size, DeleteRecords, and the log-start-offset
//! checkpoint.
//!
//! Kafka's rules: whole segments are deleted, oldest first, never the active one and never one
//! holding data at or above the caller's `delete_below_limit` (the high watermark, which
//! storage does not know; on a single node the durable end) nor above the durable end,
//! whatever the limit. A segment goes when its newest record is older than
//! `retention_ms`, when the log stays at least `retention_bytes` big without it, or when it
//! lies wholly below the log start offset (DeleteRecords). When the active segment itself is
//! due (by any of the three), it is rolled first so that it can go and the log keeps an empty
//! active segment; an
//! active segment older than `segment_ms` is rolled here too, so a quiet log still rolls.
//!
//! `log-start-offset-checkpoint` (in the [`crate::framed`] envelope, big-endian):
//!
//! ```text
//! magic "MLSO" v1: log_start_offset i64
//! ```
//!
//! Written (atomically, durably) by DeleteRecords before it answers, because its log start may
//! lie inside a segment; recovery takes max(first segment's base, checkpoint). Retention needs
//! no checkpoint: its log start is the first remaining segment's base.

use crate::disk::Disk;
use crate::error::io_err;
use crate::framed;
use crate::log::{LogConfig, PartitionLog, State};
use crate::segment::{file_name, Segment};
use crate::StorageError;
use std::path::Path;
use std::rc::Rc;

/// The checkpoint's file name in the partition directory.
pub(crate) const LOG_START_FILE: &str = "log-start-offset-checkpoint";
const MAGIC: &[u8; 4] = b"MLSO";
const VERSION: u16 = 1;

/// What [`PartitionLog::enforce_retention`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Their logical bytes.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

impl<D: Disk> PartitionLog<D> {
    /// Applies `retention_ms`, `retention_bytes` and the log start offset (only with
    /// `cleanup_delete`): deletes whole segments as Kafka does, rolling the active segment
    /// first when it is due itself or older than `segment_ms`. Only segments ending at or
    /// below `delete_below_limit` (the high watermark) and the durable end may go.
    pub async fn enforce_retention(
        &self,
        now_ms: i64,
        delete_below_limit: i64,
    ) -> Result<RetentionOutcome, StorageError> {
        let _lock = self.maintenance.lock().await;
        let config = self.config();
        let mut outcome = RetentionOutcome {
            segments_deleted: 0,
            bytes_deleted: 0,
            log_start_offset: self.log_start_offset(),
        };
        if self.state.borrow().closed {
            return Err(StorageError::Closed);
        }
        if !config.cleanup_delete {
            return Ok(outcome);
        }
        {
            let mut st = self.state.borrow_mut();
            if active_due(&st, &config, now_ms, delete_below_limit) {
                self.roll(&mut st, now_ms);
            }
        }
        // Every segment that stays must exist on disk before older ones go, or a restart
        // would find no segment at the log end and reuse offsets. The roll's producer
        // snapshot too, or a restart would lose the producers of the deleted segments.
        // A full disk must not stop retention, which is what frees it: a snapshot that cannot
        // be written costs the deleted segments' producers after a crash, nothing more.
        self.create_missing_files().await?;
        if let Err(e) = self.write_metadata().await {
            tracing::warn!(dir = %self.dir.display(), error = %e, "retention: producer snapshot not written");
        }
        let (segments_deleted, bytes_deleted, gone) = {
            let mut st = self.state.borrow_mut();
            let n = deletable(&st, &config, now_ms, false, delete_below_limit);
            self.remove_segments(&mut st, n)
        };
        self.remove_segment_files(&gone).await?;
        if segments_deleted > 0 {
            self.disk
                .sync_dir(&self.dir)
                .await
                .map_err(io_err("sync dir", &self.dir))?;
        }
        outcome.segments_deleted = segments_deleted;
        outcome.bytes_deleted = bytes_deleted;
        outcome.log_start_offset = self.log_start_offset();
        Ok(outcome)
    }

    /// Kafka's DeleteRecords: moves the log start offset to `offset` (-1: the limit),
    /// persists it, and deletes the segments wholly below it. `delete_below_limit` is how far
    /// the caller lets it go (the high watermark; on a single node the durable end); a limit
    /// above the durable end counts as the durable end. Returns the new log start offset (the
    /// low watermark). An offset above the limit, or negative other than -1, is
    /// `OffsetOutOfRange`; one at or below the current start changes nothing.
    pub async fn delete_records(
        &self,
        offset: i64,
        delete_below_limit: i64,
    ) -> Result<i64, StorageError> {
        let _lock = self.maintenance.lock().await;
        let (limit, log_start_offset, closed) = {
            let st = self.state.borrow();
            (
                delete_below_limit.min(st.durable_end),
                st.log_start_offset,
                st.closed,
            )
        };
        if closed {
            return Err(StorageError::Closed);
        }
        let target = if offset == -1 { limit } else { offset };
        if target < 0 || target > limit {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                upper_bound: limit,
            });
        }
        if target <= log_start_offset {
            return Ok(log_start_offset);
        }
        self.write_small(&self.dir.join(LOG_START_FILE), &encode(target))
            .await?;
        // Segment files and producer snapshots first (see enforce_retention).
        self.create_missing_files().await?;
        self.write_metadata().await?;
        let (deleted, _, gone) = {
            let mut st = self.state.borrow_mut();
            st.advance_log_start(target);
            // Below the new start, which the limit bounds.
            let n = deletable(&st, &self.config.borrow(), i64::MIN, true, target);
            self.remove_segments(&mut st, n)
        };
        self.remove_segment_files(&gone).await?;
        if deleted > 0 {
            self.disk
                .sync_dir(&self.dir)
                .await
                .map_err(io_err("sync dir", &self.dir))?;
        }
        tracing::debug!(dir = %self.dir.display(), target, deleted, "records deleted");
        Ok(self.log_start_offset())
    }

    /// Creates the files of segments that have none yet (the flush creates them only once
    /// they have data), so the log on disk always reaches the active segment.
    async fn create_missing_files(&self) -> Result<(), StorageError> {
        let missing: Vec<i64> = {
            let st = self.state.borrow();
            let segments = st.segments.iter();
            segments
                .filter(|s| s.file.is_none())
                .map(|s| s.base_offset)
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        for base in missing {
            let path = file_name(&self.dir, base, ".log");
            let file = self
                .disk
                .open(&path, true)
                .await
                .map_err(io_err("create", &path))?;
            let mut st = self.state.borrow_mut();
            if let Ok(i) = st.segments.binary_search_by_key(&base, |s| s.base_offset) {
                let seg = &mut st.segments[i];
                if seg.file.is_none() {
                    seg.file = Some(Rc::new(file));
                }
            }
        }
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(io_err("sync dir", &self.dir))
    }

    /// Takes the first `n` segments (never the active one) out of the log's state, without
    /// awaiting, so no task sees a segment the state no longer has. Returns (segments, bytes,
    /// their base offsets) for [`PartitionLog::remove_segment_files`].
    pub(crate) fn remove_segments(
        &self,
        st: &mut State<D::File>,
        n: usize,
    ) -> (usize, u64, Vec<i64>) {
        let n = n.min(st.segments.len() - 1);
        if n == 0 {
            return (0, 0, Vec::new());
        }
        let gone: Vec<Segment<D::File>> = st.segments.drain(..n).collect();
        let first = st.segments[0].base_offset;
        st.advance_log_start(first);
        st.aborted.retain(|e| e.last_offset >= first);
        st.recompute_max_timestamps();
        self.cache.forget_below(self.cache_id, first);
        let bytes = gone.iter().map(|s| s.index.size).sum();
        (n, bytes, gone.iter().map(|s| s.base_offset).collect())
    }

    /// Removes the files of segments [`PartitionLog::remove_segments`] took out of the state.
    /// No new segment can take their names: new segments start at the log end, above the log
    /// start those segments were below.
    pub(crate) async fn remove_segment_files(&self, bases: &[i64]) -> Result<(), StorageError> {
        for &base in bases {
            tracing::debug!(dir = %self.dir.display(), base_offset = base, "segment deleted");
            for suffix in [".log", ".index", ".timeindex", ".txnindex"] {
                remove_if_present(&self.disk, &file_name(&self.dir, base, suffix)).await?;
            }
        }
        Ok(())
    }
}

impl<F> State<F> {
    /// The active segment's base offset.
    pub(crate) fn active_base(&self) -> i64 {
        self.segments
            .last()
            .expect("a log has a segment")
            .base_offset
    }

    /// Moves the log start up to `offset` (never down), with what depends on it: the
    /// cleaner's progress and the leader-epoch entries (the checkpoint is rewritten at the
    /// next metadata write).
    pub(crate) fn advance_log_start(&mut self, offset: i64) {
        self.log_start_offset = self.log_start_offset.max(offset);
        self.first_dirty_offset = self.first_dirty_offset.max(self.log_start_offset);
        if self.epochs.truncate_before(self.log_start_offset) {
            self.epochs_version += 1;
        }
    }

    /// The largest timestamps after segments were deleted or rewritten: closed segments from
    /// their indexes, the active one from what was known before.
    pub(crate) fn recompute_max_timestamps(&mut self) {
        let active_base = self.active_base();
        let closed = self
            .segments
            .iter()
            .filter(|s| s.base_offset < active_base && s.index.max_timestamp >= 0)
            .map(|s| (s.index.max_timestamp, s.index.max_timestamp_offset))
            .max_by_key(|m| m.0);
        let keep = |m: Option<(i64, i64)>| m.filter(|m| m.1 >= active_base);
        let pick = |a: Option<(i64, i64)>, b: Option<(i64, i64)>| match (a, b) {
            (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        self.durable_max_timestamp = pick(closed, keep(self.durable_max_timestamp));
        self.appended_max_timestamp = pick(closed, keep(self.appended_max_timestamp));
    }
}

/// The active segment must roll now: it has data, and it is older than `segment_ms`, or it is
/// wholly below the limit (and durable) and due for deletion along with every segment before it.
fn active_due<F>(st: &State<F>, config: &LogConfig, now_ms: i64, limit: i64) -> bool {
    let active = st.segments.last().expect("a log has a segment");
    if active.index.size == 0 {
        return false;
    }
    let aged = active
        .first_append_ms
        .is_some_and(|t| now_ms.saturating_sub(t) >= config.segment_ms);
    aged || deletable_with_active(st, config, now_ms, limit) == st.segments.len()
}

/// How many leading segments may go (the active one excluded), none ending above `limit`.
fn deletable<F>(
    st: &State<F>,
    config: &LogConfig,
    now_ms: i64,
    start_only: bool,
    limit: i64,
) -> usize {
    let segments = st.segments.len() - 1;
    count_deletable(st, config, now_ms, start_only, segments, limit)
}

/// The same count, letting the active segment be judged by time and size like the others.
fn deletable_with_active<F>(st: &State<F>, config: &LogConfig, now_ms: i64, limit: i64) -> usize {
    count_deletable(st, config, now_ms, false, st.segments.len(), limit)
}

fn count_deletable<F>(
    st: &State<F>,
    config: &LogConfig,
    now_ms: i64,
    start_only: bool,
    segments: usize,
    delete_below_limit: i64,
) -> usize {
    // Never past the durable end, whatever the caller allows: a segment with unflushed data
    // must stay for the flush that writes it.
    let limit = delete_below_limit.min(st.durable_end);
    let mut remaining: u64 = st.segments.iter().map(|s| s.index.size).sum();
    let mut n = 0;
    for seg in st.segments.iter().take(segments) {
        let end = seg.index.next_offset;
        if end > limit || seg.index.size == 0 {
            break;
        }
        let below_start = end <= st.log_start_offset;
        let by_time = !start_only
            && config.retention_ms >= 0
            && seg.index.max_timestamp >= 0
            && now_ms.saturating_sub(seg.index.max_timestamp) > config.retention_ms;
        let by_size = !start_only
            && config.retention_bytes >= 0
            && remaining - seg.index.size >= config.retention_bytes as u64;
        if !(below_start || by_time || by_size) {
            break;
        }
        remaining -= seg.index.size;
        n += 1;
    }
    n
}

pub(crate) fn encode(log_start_offset: i64) -> Vec<u8> {
    framed::seal(MAGIC, VERSION, &log_start_offset.to_be_bytes())
}

pub(crate) fn decode(file: &[u8]) -> Result<i64, String> {
    let mut r = framed::Reader::new(framed::open(MAGIC, VERSION, file)?);
    let offset = r.i64()?;
    r.finish()?;
    if offset < 0 {
        return Err(format!("negative log start offset {offset}"));
    }
    Ok(offset)
}

pub(crate) async fn remove_if_present<D: Disk>(disk: &D, path: &Path) -> Result<(), StorageError> {
    match disk.remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_rejects_damage() {
        let file = encode(4211);
        assert_eq!(decode(&file), Ok(4211));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        assert!(decode(&encode(-5)).is_err());
    }
}
