//! Cutting the log's tail: [`PartitionLog::truncate_to`], what a follower does when its log
//! diverges from its leader's (KIP-101), crash-safe through a marker file.
//!
//! `truncation-pending` (in the [`crate::framed`] envelope, big-endian):
//!
//! ```text
//! magic "MLTR" v1: end_offset i64
//! ```
//!
//! The steps, with the log's flush rounds, appends, retention, DeleteRecords and compaction
//! held off:
//!
//! 1. Flush, so the files hold the whole log and the cut is a matter of files alone.
//! 2. Find the cut: the first batch ending at or after the requested offset (a batch is never
//!    split, so the log may end below the offset asked for).
//! 3. Write the marker, atomically and durably. This is the commit point: before it the log
//!    keeps its old end, after it the log ends at the cut, whatever happens next. A write
//!    that fails may have left the marker in place (renamed, the directory not synced): it is
//!    removed again, durably, and the call fails with the log unchanged; if that fails too, or
//!    the call is dropped while writing the marker, the log closes and the next open follows
//!    whatever marker is there.
//! 4. Run recovery ([`crate::recovery`]) on the directory: with a marker it removes the
//!    segments above the cut, scans the segment holding it up to the cut, truncates and syncs
//!    that file, and rebuilds indexes, leader epochs and producer state as of the cut. The
//!    rebuilt state replaces the log's.
//! 5. Write the leader-epoch checkpoint, then remove the marker and sync the directory.
//!
//! A crash anywhere after step 3 leaves the marker, and opening the log runs step 4 and 5:
//! the same code, so the log ends at the cut, never at a mix of the two ends. A failure after
//! step 3 closes the log: reopening it completes the truncation.
//!
//! # Reset
//!
//! [`PartitionLog::reset_to`] empties the log and starts it at any offset (Kafka's
//! `truncateFullyAndStartAt`: a follower that installs its leader's snapshot, or finds its log
//! wholly below the leader's start). The same shape and the same guards, with its own marker:
//!
//! ```text
//! reset-pending   magic "MLRS" v1: offset i64
//! ```
//!
//! 1. Write the marker (step 3 above, failures handled the same way): the commit point. No
//!    flush first: what was not written goes with the rest, and flushes waiting for it fail
//!    with [`crate::StorageError::Truncated`], whatever offset the log starts at now.
//! 2. Make the in-memory state the empty log at `offset` and forget the cached batches, so
//!    that reads from here on see the log as the reset leaves it.
//! 3. Run recovery: with the marker it removes every file of the log's own (`.log`, `.index`,
//!    `.timeindex`, `.snapshot`, `leader-epoch-checkpoint`, `truncation-pending`; a name it
//!    does not know, such as a sealed file of the layer above, stays), writes the log-start
//!    checkpoint `offset`, syncs the directory, and rebuilds the empty log there. The rebuilt
//!    state replaces the log's.
//! 4. Write the (empty) leader-epoch checkpoint, then remove the marker and sync the
//!    directory.
//!
//! A crash before step 1 leaves the old log whole; after it, every open runs steps 3 and 4
//! until the marker is gone. Once it is, the log-start checkpoint keeps the start at `offset`
//! across restarts until the first append brings a segment there.

use crate::disk::{Disk, DiskFile};
use crate::error::io_err;
use crate::framed;
use crate::log::{corrupt, walk_headers, PartitionLog};
use crate::recovery::recover_state;
use crate::retention::remove_if_present;
use crate::StorageError;
use std::cell::Cell;
use std::path::Path;

/// The marker's file name in the partition directory.
pub(crate) const FILE_NAME: &str = "truncation-pending";
const MAGIC: &[u8; 4] = b"MLTR";
const VERSION: u16 = 1;
/// The reset's marker.
pub(crate) const RESET_FILE_NAME: &str = "reset-pending";
const RESET_MAGIC: &[u8; 4] = b"MLRS";

impl<D: Disk> PartitionLog<D> {
    /// Removes everything at and above `offset`: later segments, the tail of the segment
    /// holding it, their index entries, leader-epoch entries from there on, producer state
    /// (rebuilt as of the new end, replayed batches stamped `now_ms`) and cached batches.
    /// Returns the new log end offset: `offset`, or below it when `offset` falls inside a
    /// batch (the whole batch goes) or in a gap compaction left (the log ends after the last
    /// batch below it).
    ///
    /// Crash-safe: after a crash at any point the reopened log ends at the new end or at the
    /// old one (the durable part of it), never at a mix. Appends made while it runs fail with
    /// [`StorageError::TruncationInProgress`]; flushes waiting for data it removed fail with
    /// [`StorageError::Truncated`]. Read chunks handed out earlier may name bytes it cut.
    ///
    /// Refused with [`StorageError::TruncateOutOfRange`] when `offset` is below the log start
    /// or above the log end, or when the log would end below its start (DeleteRecords moved
    /// the start inside the batch holding `offset`, or inside a gap before it). An I/O error
    /// after the commit point, or the call dropped from its marker write on, closes the log
    /// ([`StorageError::Closed`] afterwards); reopening it completes the truncation.
    pub async fn truncate_to(&self, offset: i64, now_ms: i64) -> Result<i64, StorageError> {
        let (_alone, log_start_offset, log_end_offset) = self.alone().await?;
        let out_of_range = StorageError::TruncateOutOfRange {
            offset,
            log_start_offset,
            log_end_offset,
        };
        if offset < log_start_offset || offset > log_end_offset {
            return Err(out_of_range);
        }
        if offset == log_end_offset {
            return Ok(log_end_offset);
        }
        // Appends are refused and no other round runs: this reaches the log end.
        while self.durable_end() < log_end_offset {
            self.flush_round().await?;
        }
        assert_eq!(self.durable_end(), self.log_end_offset());
        let cut = self.cut_point(offset).await?;
        if cut.new_end < log_start_offset {
            return Err(out_of_range);
        }
        let mut committed = self.commit(FILE_NAME, &encode(cut.offset)).await?;
        tracing::info!(dir = %self.dir.display(), offset, cut = cut.offset,
            new_end = cut.new_end, old_end = log_end_offset, "truncating the log");
        if let Err(e) = self.apply_truncation(&cut, now_ms).await {
            tracing::error!(dir = %self.dir.display(), error = %e, cut = cut.offset,
                "truncation failed after its commit point: the log is closed; reopening it completes the truncation");
            return Err(e);
        }
        committed.done = true;
        let end = self.log_end_offset();
        assert_eq!(end, cut.new_end, "recovery and the cut point disagree");
        Ok(end)
    }

    /// Empties the log and starts it at `offset` (below, at or past its end; not negative):
    /// afterwards its start, end and durable end are `offset` and the next append gets it.
    /// Every batch, index, producer state and leader epoch goes; cached batches too. Sealed
    /// files of the layer above stay.
    ///
    /// Crash-safe (module doc): after a crash at any point the log is the old one whole or
    /// the empty one at `offset`. Appends made while it runs fail with
    /// [`StorageError::TruncationInProgress`], flushes waiting behind it with
    /// [`StorageError::Truncated`]; reads see the old log before the commit point and the
    /// empty one from then on.
    ///
    /// Refused with [`StorageError::TruncateOutOfRange`] when `offset` is negative. An I/O
    /// error after the commit point, or the call dropped from its marker write on, closes the
    /// log ([`StorageError::Closed`] afterwards); reopening it completes the reset.
    pub async fn reset_to(&self, offset: i64, now_ms: i64) -> Result<(), StorageError> {
        let (_alone, log_start_offset, log_end_offset) = self.alone().await?;
        if offset < 0 {
            return Err(StorageError::TruncateOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let marker = framed::seal(RESET_MAGIC, VERSION, &offset.to_be_bytes());
        let mut committed = self.commit(RESET_FILE_NAME, &marker).await?;
        tracing::info!(dir = %self.dir.display(), offset, old_start = log_start_offset,
            old_end = log_end_offset, "resetting the log");
        if let Err(e) = self.apply_reset(offset, now_ms).await {
            tracing::error!(dir = %self.dir.display(), error = %e, offset,
                "reset failed after its commit point: the log is closed; reopening it completes the reset");
            return Err(e);
        }
        committed.done = true;
        Ok(())
    }

    /// Holds off flush rounds, appends, retention, DeleteRecords and compaction for as long as
    /// the guard lives; with the log's start and end then. A closed log is an error.
    async fn alone(&self) -> Result<(Alone<'_>, i64, i64), StorageError> {
        let alone = Alone {
            _maintenance: self.maintenance.lock().await,
            _cleaning: self.cleaning.lock().await,
            _round: self.gate.hold().await,
            _truncating: Flag::raise(&self.truncating),
        };
        let st = self.state.borrow();
        if st.closed {
            return Err(StorageError::Closed);
        }
        Ok((alone, st.log_start_offset, st.log_end_offset()))
    }

    /// Writes the marker `name`, the commit point, and returns a guard that closes the log
    /// unless marked done: past this point a failure, or the caller's future being dropped,
    /// must not let the log go on while the marker asks the next open to finish the work.
    /// A write that fails may have put the marker in place all the same (renamed, the
    /// directory not synced): it is taken back, durably, and the log goes on unchanged; when
    /// that fails too, the log closes and the next open does what the marker says. Dropped
    /// while writing or taking it back, the log closes as well (where the marker is, is
    /// unknown).
    async fn commit(
        &self,
        name: &str,
        marker: &[u8],
    ) -> Result<ClosesUnlessDone<'_, D::File>, StorageError> {
        let mut closes = ClosesUnlessDone {
            closed: &self.state,
            done: false,
        };
        let Err(e) = self.write_small(&self.dir.join(name), marker).await else {
            return Ok(closes);
        };
        match remove_marker(&self.disk, &self.dir, name).await {
            Ok(()) => closes.done = true,
            Err(undo) => {
                tracing::error!(dir = %self.dir.display(), marker = name, error = %undo,
                    "a failed marker write could not be taken back: the log is closed; reopening it does what the marker says");
            }
        }
        Err(e)
    }

    async fn apply_reset(&self, offset: i64, now_ms: i64) -> Result<(), StorageError> {
        self.state.borrow_mut().empty_for_reset(offset);
        self.cache.forget_from(self.cache_id, i64::MIN);
        // Flushes waiting behind the reset lose what they waited for, even when the log now
        // starts above it.
        self.resets.set(self.resets.get() + 1);
        let config = self.config();
        let recovered = recover_state(&self.disk, &self.dir, &config, now_ms).await?;
        assert_eq!(
            recovered.reset_to,
            Some(offset),
            "the marker was just written"
        );
        assert_eq!(recovered.state.log_start_offset, offset);
        assert_eq!(recovered.state.log_end_offset(), offset);
        *self.state.borrow_mut() = recovered.state;
        self.finish_recovery(None, Some(offset)).await
    }

    /// Where a truncation to `offset` cuts: the first batch ending at or after it. Needs the
    /// log flushed.
    async fn cut_point(&self, offset: i64) -> Result<Cut, StorageError> {
        let (file, base, from, end) = {
            let st = self.state.borrow();
            let seg = &st.segments[st.segment_for_offset(offset)];
            let file = seg
                .file
                .clone()
                .expect("a flushed segment with data has a file");
            // An index entry before the one leading to `offset`: every batch from there to
            // that entry ends below `offset`, so the walk sees the batch before the cut.
            let entry = seg.index.position_for_offset(seg.base_offset, offset);
            let from = seg.index.entry_at_or_before(entry.saturating_sub(1));
            (file, seg.base_offset, from.min(entry), seg.flushed_size)
        };
        let mut new_end = base;
        let found = walk_headers(&*file, from, end, |_, h| {
            let reached = h.last_offset() >= offset;
            if !reached {
                new_end = h.next_offset();
            }
            reached
        })
        .await?;
        match found {
            Some((position, h)) => Ok(Cut {
                offset: h.base_offset,
                position,
                new_end,
            }),
            None => Err(corrupt(
                file.path(),
                end,
                "batch holding a flushed offset not found",
            )),
        }
    }

    /// Steps 4 and 5 of the module documentation, after the commit point.
    async fn apply_truncation(&self, cut: &Cut, now_ms: i64) -> Result<(), StorageError> {
        self.state.borrow_mut().trim_for_truncation(cut);
        let config = self.config();
        let recovered = recover_state(&self.disk, &self.dir, &config, now_ms).await?;
        let marker = recovered.truncated_to;
        assert_eq!(marker, Some(cut.offset), "the marker was just written");
        {
            let mut st = self.state.borrow_mut();
            let mut state = recovered.state;
            assert_eq!(
                state.log_start_offset, st.log_start_offset,
                "truncation above the log start moved it"
            );
            state.first_dirty_offset = st
                .first_dirty_offset
                .min(state.log_end_offset())
                .max(state.log_start_offset);
            *st = state;
        }
        self.cache.forget_from(self.cache_id, cut.new_end);
        self.finish_recovery(marker, None).await
    }
}

impl<F> crate::log::State<F> {
    /// Makes the in-memory state end at the cut before the files change, so that reads and
    /// time lookups running meanwhile never reach bytes being removed. Recovery replaces it
    /// whole.
    fn trim_for_truncation(&mut self, cut: &Cut) {
        let (position, new_end) = (cut.position, cut.new_end);
        let k = self.segment_for_offset(cut.offset);
        self.segments.truncate(k + 1);
        let seg = &mut self.segments[k];
        let base = seg.base_offset;
        seg.index.offsets.retain(|e| u64::from(e.1) < position);
        seg.index.times.retain(|e| base + i64::from(e.1) < new_end);
        seg.index.size = position;
        seg.index.next_offset = new_end;
        seg.flushed_size = position;
        seg.flushed_next_offset = new_end;
        seg.synced_size = seg.synced_size.min(position);
        seg.tail = Vec::new();
        seg.tail_position = position;
        self.durable_end = new_end;
        self.epochs.truncate_from(new_end);
        let below = |m: Option<(i64, i64)>| m.filter(|m| m.1 < new_end);
        self.appended_max_timestamp = below(self.appended_max_timestamp);
        self.durable_max_timestamp = below(self.durable_max_timestamp);
        self.pending_snapshots.retain(|s| s.0 <= new_end);
        self.aborted.retain(|e| e.last_offset < new_end);
    }

    /// Makes the in-memory state the empty log at `offset` before the files go, so that reads
    /// and lookups running meanwhile see what the reset leaves: never bytes being removed,
    /// never a start above the end. Recovery then replaces it with the same, rebuilt.
    fn empty_for_reset(&mut self, offset: i64) {
        self.segments = vec![crate::segment::Segment::new(offset)];
        self.log_start_offset = offset;
        self.durable_end = offset;
        self.producers = crate::producer::ProducerState::default();
        self.aborted.clear();
        self.epochs = crate::epoch::EpochCache::default();
        self.pending_snapshots.clear();
        self.appended_max_timestamp = None;
        self.durable_max_timestamp = None;
        self.unwritten_bytes = 0;
        self.first_dirty_offset = offset;
    }
}

/// Where a truncation cuts the log.
struct Cut {
    /// The first offset of the first batch removed (what the marker records).
    offset: i64,
    /// That batch's position in its segment.
    position: u64,
    /// The log end afterwards: the end of the batch before it (its segment's base when it is
    /// the segment's first), at most `offset`, lower across a gap compaction left.
    new_end: i64,
}

/// The pending truncation's end offset, if a marker is there (a damaged one is ignored: it
/// was written atomically, so only the medium could damage it).
pub(crate) async fn load_marker<D: Disk>(disk: &D, dir: &Path) -> Option<i64> {
    let path = dir.join(FILE_NAME);
    match disk.read_file(&path).await {
        Ok(Some(bytes)) => decode(&bytes)
            .map_err(|reason| {
                tracing::warn!(path = %path.display(), %reason, "truncation marker invalid: ignoring it");
            })
            .ok(),
        _ => None,
    }
}

/// The pending reset's offset, if its marker is there (a damaged one is ignored, as the
/// truncation marker is).
pub(crate) async fn load_reset_marker<D: Disk>(disk: &D, dir: &Path) -> Option<i64> {
    let path = dir.join(RESET_FILE_NAME);
    match disk.read_file(&path).await {
        Ok(Some(bytes)) => decode_with(RESET_MAGIC, &bytes)
            .map_err(|reason| {
                tracing::warn!(path = %path.display(), %reason, "reset marker invalid: ignoring it");
            })
            .ok(),
        _ => None,
    }
}

/// Removes the marker `name` ([`FILE_NAME`] or [`RESET_FILE_NAME`]) durably: once appends
/// follow the cut or the reset, a marker coming back would cut them too, or empty the log
/// again.
pub(crate) async fn remove_marker<D: Disk>(
    disk: &D,
    dir: &Path,
    name: &str,
) -> Result<(), StorageError> {
    remove_if_present(disk, &dir.join(name)).await?;
    disk.sync_dir(dir).await.map_err(io_err("sync dir", dir))
}

fn encode(end_offset: i64) -> Vec<u8> {
    framed::seal(MAGIC, VERSION, &end_offset.to_be_bytes())
}

fn decode(file: &[u8]) -> Result<i64, String> {
    decode_with(MAGIC, file)
}

fn decode_with(magic: &[u8; 4], file: &[u8]) -> Result<i64, String> {
    let mut r = framed::Reader::new(framed::open(magic, VERSION, file)?);
    let offset = r.i64()?;
    r.finish()?;
    if offset < 0 {
        return Err(format!("negative end offset {offset}"));
    }
    Ok(offset)
}

/// Closes the log when dropped before `done`.
struct ClosesUnlessDone<'a, F> {
    closed: &'a std::cell::RefCell<crate::log::State<F>>,
    done: bool,
}

impl<F> Drop for ClosesUnlessDone<'_, F> {
    fn drop(&mut self) {
        if !self.done {
            self.closed.borrow_mut().closed = true;
        }
    }
}

/// What [`PartitionLog::truncate_to`] and [`PartitionLog::reset_to`] hold while they run.
struct Alone<'a> {
    _maintenance: crate::log::AsyncLockGuard<'a>,
    _cleaning: crate::log::AsyncLockGuard<'a>,
    _round: crate::log::RoundGuard<'a>,
    _truncating: Flag<'a>,
}

/// Raises a flag for as long as it lives (also when its future is dropped).
struct Flag<'a>(&'a Cell<bool>);

impl<'a> Flag<'a> {
    fn raise(flag: &'a Cell<bool>) -> Self {
        flag.set(true);
        Flag(flag)
    }
}

impl Drop for Flag<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_rejects_damage() {
        let file = encode(4211);
        assert_eq!(decode(&file), Ok(4211));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x04;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        assert!(decode(&encode(-1)).is_err());
        let reset = framed::seal(RESET_MAGIC, VERSION, &77i64.to_be_bytes());
        assert_eq!(decode_with(RESET_MAGIC, &reset), Ok(77));
        assert!(decode(&reset).is_err(), "one marker is not the other");
        for i in 0..reset.len() {
            let mut bad = reset.clone();
            bad[i] ^= 0x10;
            assert!(decode_with(RESET_MAGIC, &bad).is_err(), "flip at {i}");
        }
    }
}
