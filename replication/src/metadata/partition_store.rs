//! The metadata log's one door into the storage crate: [`PartitionStore`] implements
//! [`LogStore`] over `millrace_storage::PartitionLog`. Every storage call of the metadata log
//! is in this file.
//!
//! Not yet compiled into the library: storage still depends on this crate (for `LeaderEpoch`),
//! so a normal dependency back would be a cycle. Until the epoch types move to `wire::epoch`,
//! `tests/metadata_log.rs` includes this file by path (storage is a dev-dependency, which may
//! form a cycle). At that merge: move `millrace-storage` to `[dependencies]`, declare
//! `mod partition_store;` in `metadata/mod.rs` and re-export `PartitionStore`, take
//! `LeaderEpoch` from `millrace_wire::epoch`, rename `high_watermark()` to `durable_end()`, and
//! give `read` its `upper_bound` (the durable end today, the Raft commit index later).

use bytes::BytesMut;
use millrace_replication::metadata::LogStore;
use millrace_replication::LeaderEpoch;
use millrace_storage::disk::{Disk, DiskFile};
use millrace_storage::{PartitionLog, ReadChunk, StorageError};

/// The metadata log's store: a storage partition log (`__cluster_metadata-0`).
pub struct PartitionStore<D: Disk> {
    log: PartitionLog<D>,
}

impl<D: Disk> PartitionStore<D> {
    /// Wraps an opened (recovered) partition log.
    pub fn new(log: PartitionLog<D>) -> Self {
        PartitionStore { log }
    }
}

impl<D: Disk> LogStore for PartitionStore<D> {
    type Error = StorageError;

    fn append(&self, batch: Vec<u8>, leader_epoch: i32, now_ms: i64) -> Result<i64, StorageError> {
        let batch = BytesMut::from(&batch[..]);
        let outcome = self
            .log
            .append(batch, LeaderEpoch(leader_epoch), now_ms, false)?;
        Ok(outcome.base_offset)
    }

    async fn flush(&self) -> Result<(), StorageError> {
        self.log.flush().await
    }

    fn durable_end(&self) -> i64 {
        self.log.high_watermark()
    }

    fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// A cold read returns ranges of segment files: they are read here through `DiskFile`.
    async fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<u8>, StorageError> {
        let result = self.log.read(offset, max_bytes, true).await?;
        let mut out = Vec::with_capacity(result.bytes);
        for chunk in result.chunks {
            match chunk {
                ReadChunk::Memory(bytes) => out.extend_from_slice(&bytes),
                ReadChunk::File {
                    file,
                    position,
                    len,
                } => {
                    let bytes = file
                        .read_at(position, len as usize)
                        .await
                        .map_err(|source| StorageError::Io {
                            op: "read",
                            path: file.path().to_path_buf(),
                            source,
                        })?;
                    out.extend_from_slice(&bytes);
                }
            }
        }
        Ok(out)
    }
}
