//! One segment: its file, its logical size, its sparse indexes, and (for the active segment)
//! the tail of bytes not yet written whole.
//!
//! Index files (both in the [`crate::framed`] envelope, big-endian):
//!
//! ```text
//! .index     magic "MLOI" v1: base_offset i64, size u64 (logical bytes), next_offset i64,
//!            max_timestamp i64, max_timestamp_offset i64, first_timestamp i64,
//!            count u32, count × (relative_offset u32, position u32)
//! .timeindex magic "MLTI" v1: base_offset i64, count u32,
//!            count × (max_timestamp_so_far i64, relative_offset u32)
//! ```
//!
//! The `.index` carries the segment's logical size because direct I/O pads the file to the
//! block size: the file's length is not where the data ends.

use crate::framed;
use bytes::Bytes;
use millrace_wire::records::{BatchHeader, BatchIter, BatchStep};
use millrace_wire::WireError;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const OFFSET_INDEX_MAGIC: &[u8; 4] = b"MLOI";
const TIME_INDEX_MAGIC: &[u8; 4] = b"MLTI";
const INDEX_VERSION: u16 = 1;
/// How much of a segment a scan reads at once.
const SCAN_WINDOW_BYTES: usize = 256 * 1024;

/// What is known about a segment's content, whether it came from an index file or a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    /// Logical bytes of whole batches.
    pub size: u64,
    /// The offset after the last batch.
    pub next_offset: i64,
    /// Largest batch max_timestamp, -1 when none.
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp`.
    pub max_timestamp_offset: i64,
    /// Max timestamp of the first batch (-1 when empty), the age of the segment for roll.
    pub first_timestamp: i64,
    /// Sparse offset index: (offset - base, position of the batch starting there).
    pub offsets: Vec<(u32, u32)>,
    /// Sparse time index: (max timestamp of the segment so far, offset - base of a batch).
    pub times: Vec<(i64, u32)>,
    bytes_since_entry: u64,
}

impl SegmentIndex {
    pub(crate) fn empty(base_offset: i64) -> Self {
        SegmentIndex {
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            max_timestamp_offset: -1,
            first_timestamp: -1,
            offsets: Vec::new(),
            times: Vec::new(),
            bytes_since_entry: 0,
        }
    }

    /// Accounts for a batch placed at `self.size`. Adds index entries every
    /// `interval_bytes` (Kafka's `index.interval.bytes`).
    pub(crate) fn add_batch(
        &mut self,
        base_offset: i64,
        header: &BatchHeader,
        interval_bytes: u64,
    ) {
        let position = self.size;
        let relative = relative_offset(base_offset, header.base_offset);
        if self.size == 0 {
            self.first_timestamp = header.max_timestamp;
        }
        if self.bytes_since_entry >= interval_bytes {
            self.offsets.push((relative, position as u32));
            let last_time = self.times.last().map_or(i64::MIN, |t| t.0);
            if self.max_timestamp > last_time && self.max_timestamp >= 0 {
                self.times.push((self.max_timestamp, relative));
            }
            self.bytes_since_entry = 0;
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_offset = header.last_offset();
        }
        let total = header.total_bytes() as u64;
        self.size += total;
        self.bytes_since_entry += total;
        self.next_offset = header.next_offset();
    }

    /// Position to start scanning from to find the batch holding `offset`.
    pub(crate) fn position_for_offset(&self, base_offset: i64, offset: i64) -> u64 {
        let relative = (offset - base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let i = self.offsets.partition_point(|e| e.0 <= relative);
        if i == 0 {
            0
        } else {
            u64::from(self.offsets[i - 1].1)
        }
    }

    /// The last indexed batch position at or before `position` (0 when none).
    pub(crate) fn entry_at_or_before(&self, position: u64) -> u64 {
        let i = self.offsets.partition_point(|e| u64::from(e.1) <= position);
        if i == 0 {
            0
        } else {
            u64::from(self.offsets[i - 1].1)
        }
    }

    /// Position to start scanning from to find the first batch whose max timestamp is at
    /// least `timestamp`: every batch before it has a smaller one.
    pub(crate) fn position_for_timestamp(&self, base_offset: i64, timestamp: i64) -> u64 {
        let i = self.times.partition_point(|e| e.0 < timestamp);
        if i == 0 {
            0
        } else {
            let relative = self.times[i - 1].1;
            self.position_for_offset(base_offset, base_offset + i64::from(relative))
        }
    }

    pub(crate) fn encode_offset_index(&self, base_offset: i64) -> Vec<u8> {
        let mut body = Vec::with_capacity(52 + self.offsets.len() * 8);
        body.extend_from_slice(&base_offset.to_be_bytes());
        body.extend_from_slice(&self.size.to_be_bytes());
        body.extend_from_slice(&self.next_offset.to_be_bytes());
        body.extend_from_slice(&self.max_timestamp.to_be_bytes());
        body.extend_from_slice(&self.max_timestamp_offset.to_be_bytes());
        body.extend_from_slice(&self.first_timestamp.to_be_bytes());
        body.extend_from_slice(&(self.offsets.len() as u32).to_be_bytes());
        for (relative, position) in &self.offsets {
            body.extend_from_slice(&relative.to_be_bytes());
            body.extend_from_slice(&position.to_be_bytes());
        }
        framed::seal(OFFSET_INDEX_MAGIC, INDEX_VERSION, &body)
    }

    pub(crate) fn encode_time_index(&self, base_offset: i64) -> Vec<u8> {
        let mut body = Vec::with_capacity(12 + self.times.len() * 12);
        body.extend_from_slice(&base_offset.to_be_bytes());
        body.extend_from_slice(&(self.times.len() as u32).to_be_bytes());
        for (timestamp, relative) in &self.times {
            body.extend_from_slice(&timestamp.to_be_bytes());
            body.extend_from_slice(&relative.to_be_bytes());
        }
        framed::seal(TIME_INDEX_MAGIC, INDEX_VERSION, &body)
    }

    /// Decodes a closed segment's two index files and checks them against each other and
    /// against what the directory says (`base_offset`, the file's length).
    pub(crate) fn decode(
        base_offset: i64,
        offset_file: &[u8],
        time_file: &[u8],
        file_bytes: u64,
    ) -> Result<Self, String> {
        let mut r = framed::Reader::new(framed::open(
            OFFSET_INDEX_MAGIC,
            INDEX_VERSION,
            offset_file,
        )?);
        if r.i64()? != base_offset {
            return Err("base offset differs from the file name".into());
        }
        let mut index = SegmentIndex::empty(base_offset);
        index.size = r.u64()?;
        index.next_offset = r.i64()?;
        index.max_timestamp = r.i64()?;
        index.max_timestamp_offset = r.i64()?;
        index.first_timestamp = r.i64()?;
        let n = r.count(8)?;
        index.offsets = (0..n)
            .map(|_| Ok((r.u32()?, r.u32()?)))
            .collect::<Result<_, String>>()?;
        r.finish()?;
        let mut r = framed::Reader::new(framed::open(TIME_INDEX_MAGIC, INDEX_VERSION, time_file)?);
        if r.i64()? != base_offset {
            return Err("time index base offset differs from the file name".into());
        }
        let n = r.count(12)?;
        index.times = (0..n)
            .map(|_| Ok((r.i64()?, r.u32()?)))
            .collect::<Result<_, String>>()?;
        r.finish()?;
        if index.size > file_bytes || index.next_offset < base_offset {
            return Err(format!(
                "index says {} bytes, file has {file_bytes}",
                index.size
            ));
        }
        let sorted_offsets = index
            .offsets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        let sorted_times = index
            .times
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        let in_bounds = index.offsets.iter().all(|e| u64::from(e.1) < index.size);
        if !(sorted_offsets && sorted_times && in_bounds) {
            return Err("index entries out of order or out of bounds".into());
        }
        index.bytes_since_entry = index.size - index.offsets.last().map_or(0, |e| u64::from(e.1));
        Ok(index)
    }
}

/// A segment of a partition log. `F` is the disk's file type.
pub(crate) struct Segment<F> {
    pub base_offset: i64,
    /// Opened lazily by the first flush that writes to it (append cannot await).
    pub file: Option<Rc<F>>,
    pub index: SegmentIndex,
    /// Logical bytes written by completed flushes (durable with fsync on).
    pub flushed_size: u64,
    /// The offset after the last flushed batch.
    pub flushed_next_offset: i64,
    /// Bytes from `tail_position` (block-aligned) to `index.size`, not yet all written.
    pub tail: Vec<u8>,
    pub tail_position: u64,
    /// Broker time of the first append, for `log.roll.ms`; None while empty.
    pub first_append_ms: Option<i64>,
    /// Logical bytes known synced (tracked for rolled segments, whose indexes wait for it).
    pub synced_size: u64,
    /// No more appends go here.
    pub rolled: bool,
    /// Index files reflect the final content (only for rolled segments).
    pub index_written: bool,
    /// Where the file's written blocks end as far as this log knows: data, padding, or the
    /// zeroes flush rounds write ahead of the data ([`crate::LogConfig::prepare_ahead_bytes`]).
    /// Only a hint for the next zeroing: the file may be longer (a zeroing whose round
    /// failed), and a rolled segment's file is cut by its actual length.
    pub prepared_end: u64,
}

impl<F> Segment<F> {
    pub(crate) fn new(base_offset: i64) -> Self {
        Segment {
            base_offset,
            file: None,
            index: SegmentIndex::empty(base_offset),
            flushed_size: 0,
            flushed_next_offset: base_offset,
            tail: Vec::new(),
            tail_position: 0,
            first_append_ms: None,
            synced_size: 0,
            rolled: false,
            index_written: false,
            prepared_end: 0,
        }
    }

    /// Bytes appended and not yet covered by a completed write.
    pub(crate) fn unwritten_bytes(&self) -> u64 {
        self.index.size - self.flushed_size
    }

    /// Every byte of the segment is synced.
    pub(crate) fn data_synced(&self) -> bool {
        self.synced_size == self.index.size
    }

    /// Appends one batch's bytes (already stamped) to the tail.
    pub(crate) fn append_batch(
        &mut self,
        header: &BatchHeader,
        bytes: &[u8],
        interval: u64,
        now_ms: i64,
    ) {
        debug_assert_eq!(self.tail_position + self.tail.len() as u64, self.index.size);
        self.first_append_ms.get_or_insert(now_ms);
        self.index.add_batch(self.base_offset, header, interval);
        self.tail.extend_from_slice(bytes);
    }
}

/// Kafka's file name for a segment's files: base offset as 20 digits plus a suffix.
pub(crate) fn file_name(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// `offset - base` as the u32 the indexes store. Segments roll before this can overflow.
pub(crate) fn relative_offset(base_offset: i64, offset: i64) -> u32 {
    let relative = offset - base_offset;
    assert!(
        (0..=i64::from(u32::MAX)).contains(&relative),
        "relative offset {relative} out of range"
    );
    relative as u32
}

/// Where a scan stopped.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// Position after the last batch the visitor accepted.
    pub position: u64,
    /// Why the scan stopped before `end`, if it did.
    pub reason: Option<String>,
}

/// Reads batches from `start` to `end` in windows and hands each to `visit`, which may stop the
/// scan with a reason. Reads bounded windows: memory stays O(window + largest batch).
pub(crate) async fn scan<F: crate::disk::DiskFile>(
    file: &F,
    start: u64,
    end: u64,
    mut visit: impl FnMut(u64, &BatchHeader, &[u8]) -> Result<(), String>,
) -> io::Result<ScanEnd> {
    let mut pos = start;
    let mut want = SCAN_WINDOW_BYTES;
    while pos < end {
        let len = want.min((end - pos) as usize);
        let data: Bytes = file.read_at(pos, len).await?;
        let more_in_file = pos + (data.len() as u64) < end && data.len() == len;
        let mut consumed = 0usize;
        want = SCAN_WINDOW_BYTES;
        for step in BatchIter::new(&data) {
            match step {
                BatchStep::Batch {
                    position,
                    header,
                    bytes,
                } => {
                    if let Err(reason) = visit(pos + position as u64, &header, bytes) {
                        return Ok(ScanEnd {
                            position: pos + position as u64,
                            reason: Some(reason),
                        });
                    }
                    consumed = position + bytes.len();
                }
                BatchStep::Tail { position, reason } => {
                    if let (true, WireError::Truncated { needed, .. }) = (more_in_file, &reason) {
                        if position == 0 {
                            want = (*needed).max(SCAN_WINDOW_BYTES);
                        }
                        break;
                    }
                    let at = pos + position as u64;
                    return Ok(ScanEnd {
                        position: at,
                        reason: Some(reason.to_string()),
                    });
                }
            }
        }
        if data.is_empty() {
            return Ok(ScanEnd {
                position: pos,
                reason: Some("file ends early".into()),
            });
        }
        pos += consumed as u64;
    }
    Ok(ScanEnd {
        position: pos,
        reason: None,
    })
}
