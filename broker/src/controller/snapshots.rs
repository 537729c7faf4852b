//! When this node writes a metadata snapshot (Kafka's triggers), and when it cuts its metadata
//! log below one.
//!
//! A snapshot is written after applying a batch, once
//! `metadata.log.max.record.bytes.between.snapshots` bytes of records were applied since the
//! last snapshot, or `metadata.log.max.snapshot.interval.ms` passed since it while records
//! arrive. Every node snapshots its own applied image (voters and observers alike), at a
//! committed batch, as Kafka's controllers and brokers do; the file format and loading are in
//! `millrace_replication::metadata::snapshot_file`, the use at start-up in
//! `crate::metadata::boot`.
//!
//! Right after a snapshot is written the log may be cut below it: when the log holds more
//! than `metadata.max.retention.bytes` (100 MiB), or when its last cut (or this process's
//! start) is `metadata.max.retention.ms` (7 days) old; -1 turns either off. Kafka deletes the
//! oldest snapshots and the log below the oldest one it keeps under the same two limits; here
//! the cut goes to the newest snapshot, so one cut frees everything a snapshot covers, and
//! the snapshot there is kept for as long as the log starts at it. A voter offers every new
//! snapshot to raft-rs, which sends it to a follower behind the log start; an observer behind
//! it fetches it with FetchSnapshot (`crate::controller::observer`).
//!
//! The write happens in the apply path (the image is encoded in memory, then one small file is
//! written and synced): it delays the next apply by that write, once per 20 MiB of records by
//! default. A failed write is reported and retried after the next batch; nothing depends on
//! it but the next start's speed and the log's size.

use crate::quorum::MetaLog;
use bytes::Bytes;
use millrace_replication::metadata::snapshot_file::{self, MetadataSnapshot};
use millrace_replication::metadata::ClusterImage;
use millrace_replication::quorum::{CommittedBatch, LogBase};
use std::cell::Cell;

/// The trigger's state. Lives with the controller.
pub struct Snapshots {
    bytes_since: Cell<i64>,
    last_ms: Cell<i64>,
    last_cut_ms: Cell<i64>,
    max_bytes: i64,
    interval_ms: i64,
    retention_bytes: i64,
    retention_ms: i64,
}

/// A snapshot just written.
pub struct Written {
    /// The last batch it covers.
    pub point: LogBase,
    /// The file's body.
    pub body: Bytes,
    /// Cut the log below it (the retention limits say so).
    pub cut: bool,
}

impl Snapshots {
    /// The trigger of `config`, `bytes_since` record bytes after the snapshot the image
    /// started from, at `now_ms`.
    pub fn new(config: &crate::config::Config, bytes_since: i64, now_ms: i64) -> Self {
        Snapshots {
            bytes_since: Cell::new(bytes_since),
            last_ms: Cell::new(now_ms),
            last_cut_ms: Cell::new(now_ms),
            max_bytes: config.metadata_snapshot_bytes,
            interval_ms: config.metadata_snapshot_interval_ms,
            retention_bytes: config.metadata_retention_bytes,
            retention_ms: config.metadata_retention_ms,
        }
    }

    /// `batch` was applied and `image` is the result: writes a snapshot if one is due.
    pub async fn after_apply(
        &self,
        log: &MetaLog,
        batch: &CommittedBatch,
        image: &ClusterImage,
    ) -> Option<Written> {
        let bytes: i64 = batch.records.iter().map(|r| r.encode().len() as i64).sum();
        self.bytes_since.set(self.bytes_since.get() + bytes);
        let now = millrace_shard::time::now_ms();
        let by_time = self.interval_ms > 0 && now - self.last_ms.get() >= self.interval_ms;
        if self.bytes_since.get() < self.max_bytes && !by_time {
            return None;
        }
        let term = u64::try_from(batch.term).unwrap_or(0);
        let snapshot = MetadataSnapshot {
            index: batch.index,
            term,
            image: image.clone(),
        };
        match snapshot_file::write(log.store(), &snapshot, log.log_start_offset()).await {
            Ok((id, body)) => {
                tracing::info!(
                    end_offset = id.end_offset,
                    epoch = id.epoch,
                    bytes_since = self.bytes_since.get(),
                    "wrote a metadata snapshot"
                );
                self.bytes_since.set(0);
                self.last_ms.set(now);
                let size = i64::try_from(log.store().size_in_bytes()).unwrap_or(i64::MAX);
                let cut = (self.retention_bytes >= 0 && size > self.retention_bytes)
                    || (self.retention_ms >= 0
                        && now - self.last_cut_ms.get() >= self.retention_ms);
                if cut {
                    self.last_cut_ms.set(now);
                }
                let point = LogBase {
                    index: batch.index,
                    term,
                    offset: id.end_offset,
                };
                Some(Written { point, body, cut })
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing a metadata snapshot (retried later)");
                None
            }
        }
    }
}

/// Cuts `log` below `point` (a snapshot's) when the log holds it durably: deletes whole
/// segments below it and moves the log start there. Returns whether it did.
pub async fn cut_log(log: &MetaLog, point: LogBase) -> bool {
    if point.offset > log.durable_end() || point.offset <= log.log_start_offset() {
        return false;
    }
    match log.delete_before(point.offset).await {
        Ok(start) => {
            tracing::info!(
                log_start_offset = start,
                bytes = log.store().size_in_bytes(),
                "cut the metadata log below the snapshot"
            );
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cutting the metadata log (retried at the next snapshot)");
            false
        }
    }
}
