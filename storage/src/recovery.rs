//! Opening a partition log: segments, truncation of torn tails, index rebuild, leader epochs
//! and producer state.

use crate::cache::BatchCache;
use crate::compaction::CLEANED_SUFFIX;
use crate::disk::{Disk, DiskFile};
use crate::epoch::{self, EpochCache};
use crate::error::io_err;
use crate::log::{
    corrupt, parse_name, walk_headers, AsyncLock, FlushGate, LogConfig, PartitionLog, State,
};
use crate::producer::ProducerState;
use crate::retention::{self, LOG_START_FILE};
use crate::segment::{file_name, scan, Segment, SegmentIndex};
use crate::truncate::remove_marker;
use crate::txn_index::{self, AbortedTxn};
use crate::StorageError;
use millrace_wire::epoch::LeaderEpoch;
use millrace_wire::records::{txn_marker, validate_stored_batch};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Written by `close`, removed by `open`: its presence means the last run shut down cleanly,
/// so the active segment's index files can be trusted instead of scanning it.
pub(crate) const CLEAN_SHUTDOWN: &str = "clean-shutdown";

impl<D: Disk> PartitionLog<D> {
    /// Opens (creating if missing) the log in `dir` and recovers it: closed segments with a
    /// valid index are trusted; the active segment and any segment without a valid index are
    /// scanned batch by batch (CRC included) and the log is truncated at the first bad batch,
    /// dropping every later segment. A truncation that `truncate_to` committed (its marker
    /// file exists) is completed first.
    pub async fn open(
        disk: D,
        dir: PathBuf,
        config: LogConfig,
        cache: Rc<BatchCache>,
        now_ms: i64,
    ) -> Result<Self, StorageError> {
        config.validate()?;
        disk.create_dir_all(&dir)
            .map_err(io_err("create dir", &dir))?;
        let recovered = recover_state(&disk, &dir, &config, now_ms).await?;
        let cache_id = cache.register();
        let log = PartitionLog {
            disk,
            dir,
            config: RefCell::new(config),
            cache,
            cache_id,
            state: RefCell::new(recovered.state),
            gate: FlushGate::default(),
            maintenance: AsyncLock::default(),
            cleaning: AsyncLock::default(),
            truncating: Cell::new(false),
            resets: Cell::new(0),
        };
        log.finish_recovery(recovered.truncated_to, recovered.reset_to)
            .await?;
        Ok(log)
    }

    /// Writes what recovery rebuilt. After a truncation the leader-epoch checkpoint must be
    /// current before the truncation marker goes: once it is gone, appends may bring epochs
    /// that a stale checkpoint entry above the cut would hide at the next open. After a reset
    /// likewise (its checkpoint is empty), then the reset marker goes.
    pub(crate) async fn finish_recovery(
        &self,
        truncated_to: Option<i64>,
        reset_to: Option<i64>,
    ) -> Result<(), StorageError> {
        let written = self.write_metadata().await;
        if reset_to.is_some() {
            written?;
            remove_marker(&self.disk, &self.dir, crate::truncate::FILE_NAME).await?;
            return remove_marker(&self.disk, &self.dir, crate::truncate::RESET_FILE_NAME).await;
        }
        match (truncated_to, written) {
            (None, Err(e)) => {
                // Rebuilt indexes and the checkpoint are an optimisation of the next open.
                tracing::warn!(dir = %self.dir.display(), error = %e, "writing recovered metadata failed");
                Ok(())
            }
            (None, Ok(())) => Ok(()),
            (Some(_), written) => {
                written?;
                remove_marker(&self.disk, &self.dir, crate::truncate::FILE_NAME).await
            }
        }
    }
}

/// A log's state as rebuilt from its directory, and the truncation that was completed on
/// the way (its marker is still on disk until [`PartitionLog::finish_recovery`]).
pub(crate) struct Recovered<F> {
    pub state: State<F>,
    pub truncated_to: Option<i64>,
    /// A reset (`PartitionLog::reset_to`) that was completed: its marker is still on disk.
    pub reset_to: Option<i64>,
}

/// Rebuilds a log's state from its files: at open, and by `truncate_to` once its marker is
/// written (the same code cuts the log in both cases, so a crash at any point of a truncation
/// ends the way the truncation itself does).
pub(crate) async fn recover_state<D: Disk>(
    disk: &D,
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Recovered<D::File>, StorageError> {
    let names = disk.list_dir(dir).map_err(io_err("list", dir))?;
    let shut_down_cleanly = names.iter().any(|n| n == CLEAN_SHUTDOWN);
    // Temporary files, and cleaned segments whose swap did not happen (the old segment
    // is still there, whole).
    for stray in names
        .iter()
        .filter(|n| n.ends_with(".tmp") || n.ends_with(CLEANED_SUFFIX))
    {
        remove_if_present(disk, &dir.join(stray)).await?;
    }
    let reset_to = crate::truncate::load_reset_marker(disk, dir).await;
    let names = match reset_to {
        Some(offset) => empty_for_reset(disk, dir, &names, offset).await?,
        None => names,
    };
    let truncated_to = match reset_to {
        Some(_) => None,
        None => crate::truncate::load_marker(disk, dir).await,
    };
    // A pending truncation changes the last segment: its index cannot be trusted.
    let clean = shut_down_cleanly && truncated_to.is_none();
    let checkpoint = load_log_start(disk, dir).await;
    let mut bases: Vec<i64> = names.iter().filter_map(|n| parse_name(n, ".log")).collect();
    bases.sort_unstable();
    if let Some(cut) = truncated_to {
        cut_segment_files(disk, dir, &mut bases, cut).await?;
    }
    let mut seen_epochs = Vec::new();
    let scan = SegmentScan {
        clean,
        end_offset: truncated_to,
    };
    let mut segments = recover_segments(disk, dir, config, &bases, scan, &mut seen_epochs).await?;
    if segments.is_empty() {
        segments.push(Segment::new(checkpoint.or(truncated_to).unwrap_or(0)));
    }
    // Whether the active segment's index was trusted (a clean shutdown): its aborted
    // transactions can be too. prepare_active forgets it.
    let active_trusted = segments.last().is_some_and(|s| s.index_written);
    prepare_active(
        segments.last_mut().expect("one segment at least"),
        clean,
        truncated_to.is_some(),
        now_ms,
    )
    .await?;
    let log_end_offset = segments.last().expect("one segment").index.next_offset;
    let log_start_offset = segments[0]
        .base_offset
        .max(checkpoint.unwrap_or(0))
        .min(log_end_offset);
    remove_below_start(disk, dir, &mut segments, log_start_offset).await?;
    let mut aborted = load_aborted(disk, dir, &segments, active_trusted).await;
    remove_stale_indexes(disk, dir, &names, &segments).await?;
    let (mut epochs, mut epochs_changed) =
        load_epochs(disk, dir, log_end_offset, &seen_epochs).await;
    epochs_changed |= epochs.truncate_before(log_start_offset);
    let producers = load_producers(disk, dir, &names, &segments, &mut aborted, now_ms).await?;
    let aborted = aborted.into_iter().flatten().flatten().collect();
    if shut_down_cleanly || truncated_to.is_some() {
        remove_if_present(disk, &dir.join(CLEAN_SHUTDOWN)).await?;
        disk.sync_dir(dir).await.map_err(io_err("sync dir", dir))?;
    }
    let durable_max_timestamp = segments
        .iter()
        .filter(|s| s.index.max_timestamp >= 0)
        .max_by_key(|s| s.index.max_timestamp)
        .map(|s| (s.index.max_timestamp, s.index.max_timestamp_offset));
    let state = State {
        segments,
        log_start_offset,
        durable_end: log_end_offset,
        producers,
        aborted,
        epochs,
        epochs_version: u64::from(epochs_changed),
        epochs_written: 0,
        pending_snapshots: Vec::new(),
        appended_max_timestamp: durable_max_timestamp,
        durable_max_timestamp,
        unwritten_bytes: 0,
        spare_tails: Vec::new(),
        first_dirty_offset: log_start_offset,
        closed: false,
    };
    Ok(Recovered {
        state,
        truncated_to,
        reset_to,
    })
}

/// A committed reset to `offset`: removes every file of the log's own (segments, indexes,
/// producer snapshots, the leader-epoch checkpoint, a truncation marker), then makes the log
/// start checkpoint `offset`, durably. Files it does not know (sealed files of the layer
/// above) stay. Returns the directory's names afterwards. Idempotent: a crash anywhere in it
/// leaves the marker, and the next open runs it again.
async fn empty_for_reset<D: Disk>(
    disk: &D,
    dir: &Path,
    names: &[String],
    offset: i64,
) -> Result<Vec<String>, StorageError> {
    for name in names {
        let owned = [".log", ".index", ".timeindex", ".txnindex", ".snapshot"]
            .iter()
            .any(|suffix| parse_name(name, suffix).is_some())
            || name == epoch::FILE_NAME
            || name == crate::truncate::FILE_NAME;
        if owned {
            remove_if_present(disk, &dir.join(name)).await?;
        }
    }
    let path = dir.join(LOG_START_FILE);
    disk.write_file_atomic(&path, &retention::encode(offset))
        .await
        .map_err(io_err("write", &path))?;
    disk.sync_dir(dir).await.map_err(io_err("sync dir", dir))?;
    disk.list_dir(dir).map_err(io_err("list", dir))
}

/// How [`recover_segments`] treats segments: whether the last run closed the log cleanly (its
/// last segment's index can be trusted), and where a pending truncation cuts the log.
#[derive(Clone, Copy)]
struct SegmentScan {
    clean: bool,
    end_offset: Option<i64>,
}

/// A pending truncation at `cut`: removes the files of every segment starting above it (the
/// one holding `cut` is scanned up to it, and a segment starting exactly there is emptied).
async fn cut_segment_files<D: Disk>(
    disk: &D,
    dir: &Path,
    bases: &mut Vec<i64>,
    cut: i64,
) -> Result<(), StorageError> {
    let keep = bases.partition_point(|&b| b <= cut).max(1).min(bases.len());
    for &base in bases[keep..].iter().rev() {
        for suffix in [".log", ".index", ".timeindex", ".txnindex"] {
            remove_if_present(disk, &file_name(dir, base, suffix)).await?;
        }
    }
    bases.truncate(keep);
    disk.sync_dir(dir).await.map_err(io_err("sync dir", dir))
}

/// Opens every segment, trusting valid indexes of closed segments and scanning the rest.
/// Stops at the first segment that does not end where the next one begins, removing the later
/// ones (Kafka's behaviour: nothing after a hole is kept).
async fn recover_segments<D: Disk>(
    disk: &D,
    dir: &Path,
    config: &LogConfig,
    bases: &[i64],
    scan: SegmentScan,
    seen_epochs: &mut Vec<(i32, i64)>,
) -> Result<Vec<Segment<D::File>>, StorageError> {
    let mut segments = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let path = file_name(dir, base, ".log");
        let file = disk
            .open(&path, false)
            .await
            .map_err(io_err("open", &path))?;
        let file_bytes = file.size().await.map_err(io_err("size", &path))?;
        let trusted = match next_base.is_some() || scan.clean {
            true => load_index(disk, dir, base, file_bytes, next_base).await,
            false => None,
        };
        let index_written = trusted.is_some();
        let index = match trusted {
            Some(index) => index,
            None => {
                let end_offset = scan.end_offset.filter(|_| next_base.is_none());
                scan_segment(&file, base, file_bytes, config, end_offset, seen_epochs).await?
            }
        };
        let complete = next_base.is_none_or(|n| index.next_offset == n);
        let mut seg = Segment::new(base);
        seg.flushed_size = index.size;
        seg.synced_size = index.size;
        seg.flushed_next_offset = index.next_offset;
        seg.index = index;
        seg.file = Some(Rc::new(file));
        seg.prepared_end = file_bytes;
        seg.rolled = true;
        seg.index_written = index_written;
        let next_offset = seg.index.next_offset;
        segments.push(seg);
        if !complete {
            let dropped = &bases[i + 1..];
            tracing::warn!(dir = %dir.display(), base, next_offset, ?dropped,
                "segment ends before the next one starts: truncating the log here");
            for &later in dropped {
                for suffix in [".log", ".index", ".timeindex", ".txnindex"] {
                    remove_if_present(disk, &file_name(dir, later, suffix)).await?;
                }
            }
            break;
        }
    }
    Ok(segments)
}

/// Reads and checks a segment's index files; None (rebuild) when missing or wrong.
async fn load_index<D: Disk>(
    disk: &D,
    dir: &Path,
    base: i64,
    file_bytes: u64,
    next_base: Option<i64>,
) -> Option<SegmentIndex> {
    let offsets = disk.read_file(&file_name(dir, base, ".index")).await;
    let times = disk.read_file(&file_name(dir, base, ".timeindex")).await;
    let (Ok(Some(offsets)), Ok(Some(times))) = (offsets, times) else {
        tracing::info!(dir = %dir.display(), base, "segment index missing: rebuilding it");
        return None;
    };
    let index =
        SegmentIndex::decode(base, &offsets, &times, file_bytes).and_then(
            |index| match next_base {
                Some(n) if index.next_offset != n => Err(format!(
                    "ends at {}, next segment at {n}",
                    index.next_offset
                )),
                _ => Ok(index),
            },
        );
    match index {
        Ok(index) => Some(index),
        Err(reason) => {
            tracing::warn!(dir = %dir.display(), base, %reason, "segment index invalid: rebuilding it");
            None
        }
    }
}

/// Validates every batch of a segment (CRC, increasing offsets; gaps are allowed, compaction
/// leaves them) and rebuilds its index, stopping at the first batch that is torn, corrupt or
/// out of place, or that reaches `end_offset` (a pending truncation).
async fn scan_segment<F: DiskFile>(
    file: &F,
    base: i64,
    file_bytes: u64,
    config: &LogConfig,
    end_offset: Option<i64>,
    seen_epochs: &mut Vec<(i32, i64)>,
) -> Result<SegmentIndex, StorageError> {
    let interval = u64::from(config.index_interval_bytes);
    let mut index = SegmentIndex::empty(base);
    let end = scan(file, 0, file_bytes, |_, _, bytes| {
        let h = validate_stored_batch(bytes).map_err(|e| e.to_string())?;
        if end_offset.is_some_and(|cut| h.last_offset() >= cut) {
            return Err("truncation point".into());
        }
        if h.base_offset < index.next_offset {
            return Err(format!(
                "batch at offset {}, expected {}",
                h.base_offset, index.next_offset
            ));
        }
        if h.last_offset() - base > i64::from(i32::MAX)
            || index.size + bytes.len() as u64 > u64::from(u32::MAX)
        {
            return Err("segment exceeds 32-bit relative offsets or positions".into());
        }
        index.add_batch(base, &h, interval);
        if seen_epochs
            .last()
            .is_none_or(|e| e.0 < h.partition_leader_epoch)
        {
            seen_epochs.push((h.partition_leader_epoch, h.base_offset));
        }
        Ok(())
    })
    .await
    .map_err(io_err("read", file.path()))?;
    if let Some(reason) = end.reason {
        tracing::debug!(path = %file.path().display(), position = end.position, %reason, "segment scan stopped");
    }
    Ok(index)
}

/// Makes the last segment the active one: cuts the file to the logical end (removing padding,
/// zeroes written ahead and any torn tail) and loads the partial last block the next flush
/// rewrites.
async fn prepare_active<F: DiskFile>(
    seg: &mut Segment<F>,
    clean: bool,
    truncating: bool,
    now_ms: i64,
) -> Result<(), StorageError> {
    seg.rolled = false;
    seg.index_written = false;
    let size = seg.index.size;
    if size > 0 {
        let first = seg.index.first_timestamp;
        seg.first_append_ms = Some(if first >= 0 { first } else { now_ms });
    }
    let Some(file) = &seg.file else { return Ok(()) };
    let path = file.path().to_path_buf();
    let file_bytes = file.size().await.map_err(io_err("size", &path))?;
    let align = file.alignment() as u64;
    if file_bytes > size {
        if file_bytes - size >= align && !clean {
            tracing::warn!(path = %path.display(), from = file_bytes, to = size, next_offset = seg.index.next_offset,
                "recovery cut the active segment after its last whole batch (zeroes written ahead, or a torn or unacknowledged tail)");
        }
        file.truncate(size)
            .await
            .map_err(io_err("truncate", &path))?;
        if truncating {
            // Durable before the truncation's marker goes (a torn tail needs no sync: a
            // crash brings it back and recovery cuts it again).
            file.sync_data().await.map_err(io_err("sync", &path))?;
        }
    }
    // Zeroes written ahead of the data go with the cut: the next rounds write them again.
    seg.prepared_end = size;
    seg.tail_position = size - size % align;
    let want = (size - seg.tail_position) as usize;
    let tail = file
        .read_at(seg.tail_position, want)
        .await
        .map_err(io_err("read", &path))?;
    if tail.len() != want {
        return Err(corrupt(
            &path,
            seg.tail_position,
            "segment shorter than its index says",
        ));
    }
    seg.tail = tail.to_vec();
    Ok(())
}

/// Index files of segments that are gone, and of the active segment (stale once it grows).
async fn remove_stale_indexes<D: Disk, F>(
    disk: &D,
    dir: &Path,
    names: &[String],
    segments: &[Segment<F>],
) -> Result<(), StorageError> {
    let active = segments.last().expect("one segment").base_offset;
    for name in names {
        let Some(base) = [".index", ".timeindex", ".txnindex"]
            .iter()
            .find_map(|suffix| parse_name(name, suffix))
        else {
            continue;
        };
        let kept = segments
            .binary_search_by_key(&base, |s| s.base_offset)
            .is_ok();
        if !kept || base == active {
            remove_if_present(disk, &dir.join(name)).await?;
        }
    }
    Ok(())
}

/// The checkpoint, cut at the log end and completed with the epochs seen while scanning.
/// Returns it and whether it differs from the file.
async fn load_epochs<D: Disk>(
    disk: &D,
    dir: &Path,
    log_end_offset: i64,
    seen: &[(i32, i64)],
) -> (EpochCache, bool) {
    let path = dir.join(epoch::FILE_NAME);
    let loaded = match disk.read_file(&path).await {
        Ok(Some(bytes)) => EpochCache::decode(&bytes).map_err(|reason| {
            tracing::warn!(path = %path.display(), %reason, "leader-epoch checkpoint invalid: rebuilding it");
        }),
        _ => Err(()),
    };
    let mut cache = loaded.clone().unwrap_or_default();
    cache.truncate_from(log_end_offset);
    for &(epoch, offset) in seen {
        if offset < log_end_offset {
            cache.assign(LeaderEpoch(epoch), offset);
        }
    }
    let changed = loaded.as_ref() != Ok(&cache);
    (cache, changed)
}

/// Each segment's aborted transactions from its `.txnindex` (see `txn_index.rs`), or None
/// where they must be rebuilt by replaying the producer state over it.
async fn load_aborted<D: Disk>(
    disk: &D,
    dir: &Path,
    segments: &[Segment<D::File>],
    active_trusted: bool,
) -> Vec<Option<Vec<AbortedTxn>>> {
    let mut out = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let active = i + 1 == segments.len();
        let index_trusted = if active {
            active_trusted
        } else {
            seg.index_written
        };
        if active && !active_trusted {
            out.push(None);
            continue;
        }
        let path = file_name(dir, seg.base_offset, ".txnindex");
        let loaded = match disk.read_file(&path).await {
            Ok(Some(bytes)) => {
                txn_index::decode(seg.base_offset, seg.index.next_offset, &bytes).map_err(
                    |reason| tracing::warn!(path = %path.display(), %reason, "aborted-transaction index invalid: rebuilding it"),
                ).ok()
            }
            Ok(None) if index_trusted => Some(Vec::new()),
            _ => None,
        };
        out.push(loaded);
    }
    out
}

/// The newest valid snapshot at or below the log end, then every batch after it replayed.
/// Segments whose aborted transactions must be rebuilt (`aborted[i]` is None) get them from
/// that replay when they lie after the snapshot; those before it from a second replay, from
/// the newest snapshot at or below the first of them (or from the first segment), whose
/// producer state is thrown away: the newest snapshot's is the better one (it still holds the
/// producers of segments retention deleted or compaction emptied). Snapshots beyond the log
/// end (the log was truncated) are removed; invalid ones too.
async fn load_producers<D: Disk>(
    disk: &D,
    dir: &Path,
    names: &[String],
    segments: &[Segment<D::File>],
    aborted: &mut [Option<Vec<AbortedTxn>>],
    now_ms: i64,
) -> Result<ProducerState, StorageError> {
    let log_end_offset = segments.last().expect("one segment").index.next_offset;
    let mut offsets: Vec<i64> = names
        .iter()
        .filter_map(|n| parse_name(n, ".snapshot"))
        .collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    // Valid snapshots, newest first.
    let mut snapshots: Vec<(i64, ProducerState)> = Vec::new();
    for offset in offsets {
        let path = file_name(dir, offset, ".snapshot");
        // A snapshot below the log start still holds the producers of deleted segments.
        if offset > log_end_offset {
            remove_if_present(disk, &path).await?;
            continue;
        }
        let bytes = disk.read_file(&path).await.map_err(io_err("read", &path))?;
        match bytes.map(|b| ProducerState::decode_snapshot(&b)) {
            Some(Ok((at, state))) if at == offset => snapshots.push((offset, state)),
            Some(Ok(_)) | Some(Err(_)) | None => {
                tracing::warn!(path = %path.display(), "producer snapshot invalid: ignoring it");
                remove_if_present(disk, &path).await?;
            }
        }
    }
    // Without a snapshot, replay every batch still on disk, also those below a log start
    // that DeleteRecords moved inside the first segment: producers outlive their records.
    let first_base = segments[0].base_offset;
    let starting_at = |limit: i64, snapshots: &[(i64, ProducerState)]| {
        snapshots
            .iter()
            .find(|(at, _)| *at <= limit)
            .cloned()
            .unwrap_or((first_base, ProducerState::default()))
    };
    let (from, mut state) = starting_at(log_end_offset, &snapshots);
    replay(segments, aborted, from, &mut state, now_ms).await?;
    let unbuilt = segments
        .iter()
        .zip(aborted.iter())
        .find(|(_, a)| a.is_none())
        .map(|(s, _)| s.base_offset);
    if let Some(base) = unbuilt {
        let (from, mut scratch) = starting_at(base, &snapshots);
        replay(segments, aborted, from, &mut scratch, now_ms).await?;
    }
    Ok(state)
}

/// Replays every batch from offset `from` into `state`, and fills in the aborted transactions
/// of each segment whose list is None and which the replay covers whole (starts at or after
/// `from`).
async fn replay<F: DiskFile>(
    segments: &[Segment<F>],
    aborted: &mut [Option<Vec<AbortedTxn>>],
    from: i64,
    state: &mut ProducerState,
    now_ms: i64,
) -> Result<(), StorageError> {
    for (seg, aborted) in segments.iter().zip(aborted.iter_mut()) {
        let covered = seg.base_offset >= from;
        let mut rebuilt = (aborted.is_none() && covered).then(Vec::new);
        if seg.index.next_offset <= from || seg.index.size == 0 {
            if rebuilt.is_some() {
                *aborted = rebuilt;
            }
            continue;
        }
        let file = seg.file.as_ref().expect("a segment with data has a file");
        let mut pos = seg.index.position_for_offset(seg.base_offset, from);
        // Data batches are replayed from their headers; the walk stops at each control batch,
        // whose record says commit or abort.
        loop {
            let stop = walk_headers(&**file, pos, seg.index.size, |_, h| {
                if h.base_offset < from {
                    return false;
                }
                if h.is_control() {
                    return true;
                }
                state.record(h, None, now_ms);
                false
            })
            .await?;
            let Some((at, h)) = stop else { break };
            let bytes = file
                .read_at(at, h.total_bytes())
                .await
                .map_err(io_err("read", file.path()))?;
            let marker = txn_marker(&bytes).ok().flatten();
            let done = state.record(&h, marker, now_ms);
            if let (Some(done), Some(list)) = (done, rebuilt.as_mut()) {
                if !done.commit {
                    let stable = state.first_open_offset();
                    list.push(AbortedTxn {
                        producer_id: done.producer_id,
                        first_offset: done.first_offset,
                        last_offset: done.last_offset,
                        last_stable_offset: stable.unwrap_or(done.last_offset + 1),
                    });
                }
            }
            pos = at + h.total_bytes() as u64;
        }
        if rebuilt.is_some() {
            *aborted = rebuilt;
        }
    }
    Ok(())
}

use retention::remove_if_present;

/// The DeleteRecords checkpoint, None when missing or damaged (then the first segment's base
/// is the log start: DeleteRecords writes the checkpoint before it deletes anything, so a
/// damaged one only loses a start inside the first segment).
async fn load_log_start<D: Disk>(disk: &D, dir: &Path) -> Option<i64> {
    let path = dir.join(LOG_START_FILE);
    match disk.read_file(&path).await {
        Ok(Some(bytes)) => retention::decode(&bytes)
            .map_err(|reason| {
                tracing::warn!(path = %path.display(), %reason, "log start checkpoint invalid: ignoring it");
            })
            .ok(),
        _ => None,
    }
}

/// Segments wholly below the log start that a crash left behind (DeleteRecords persists the
/// start before deleting them). The active segment stays.
async fn remove_below_start<D: Disk>(
    disk: &D,
    dir: &Path,
    segments: &mut Vec<Segment<D::File>>,
    log_start_offset: i64,
) -> Result<(), StorageError> {
    while segments.len() > 1 && segments[0].index.next_offset <= log_start_offset {
        let seg = segments.remove(0);
        for suffix in [".log", ".index", ".timeindex", ".txnindex"] {
            remove_if_present(disk, &file_name(dir, seg.base_offset, suffix)).await?;
        }
    }
    Ok(())
}
