//! When this node writes a metadata snapshot (Kafka's triggers): after applying a batch, once
//! `metadata.log.max.record.bytes.between.snapshots` bytes of records were applied since the
//! last snapshot, or `metadata.log.max.snapshot.interval.ms` passed since it while records
//! arrive. Every node snapshots its own applied image (voters and observers alike), at a
//! committed batch, as Kafka's controllers and brokers do; the file format and loading are in
//! `millrace_replication::metadata::snapshot_file`, the use at start-up in
//! `crate::metadata::boot`.
//!
//! The write happens in the apply path (the image is encoded in memory, then one small file is
//! written and synced): it delays the next apply by that write, once per 20 MiB of records by
//! default. A failed write is reported and retried after the next batch; nothing depends on
//! it but the next start's speed.

use crate::quorum::MetaLog;
use millrace_replication::metadata::snapshot_file::{self, MetadataSnapshot};
use millrace_replication::metadata::ClusterImage;
use millrace_replication::quorum::CommittedBatch;
use std::cell::Cell;

/// The trigger's state. Lives with the controller.
pub struct Snapshots {
    bytes_since: Cell<i64>,
    last_ms: Cell<i64>,
    max_bytes: i64,
    interval_ms: i64,
}

impl Snapshots {
    /// The trigger of `config`, `bytes_since` record bytes after the snapshot the image
    /// started from, at `now_ms`.
    pub fn new(config: &crate::config::Config, bytes_since: i64, now_ms: i64) -> Self {
        Snapshots {
            bytes_since: Cell::new(bytes_since),
            last_ms: Cell::new(now_ms),
            max_bytes: config.metadata_snapshot_bytes,
            interval_ms: config.metadata_snapshot_interval_ms,
        }
    }

    /// `batch` was applied and `image` is the result: writes a snapshot if one is due.
    pub async fn after_apply(&self, log: &MetaLog, batch: &CommittedBatch, image: &ClusterImage) {
        let bytes: i64 = batch.records.iter().map(|r| r.encode().len() as i64).sum();
        self.bytes_since.set(self.bytes_since.get() + bytes);
        let now = millrace_shard::time::now_ms();
        let by_time = self.interval_ms > 0 && now - self.last_ms.get() >= self.interval_ms;
        if self.bytes_since.get() < self.max_bytes && !by_time {
            return;
        }
        let snapshot = MetadataSnapshot {
            index: batch.index,
            term: u64::try_from(batch.term).unwrap_or(0),
            image: image.clone(),
        };
        match snapshot_file::write(log.store(), &snapshot).await {
            Ok(id) => {
                tracing::info!(
                    end_offset = id.end_offset,
                    epoch = id.epoch,
                    bytes_since = self.bytes_since.get(),
                    "wrote a metadata snapshot"
                );
                self.bytes_since.set(0);
                self.last_ms.set(now);
            }
            Err(e) => tracing::warn!(error = %e, "writing a metadata snapshot (retried later)"),
        }
    }
}
