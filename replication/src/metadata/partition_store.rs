//! The metadata log's one door into the storage crate: [`PartitionStore`] implements
//! [`LogStore`] over `millrace_storage::PartitionLog`. Every storage call of the metadata log
//! is in this file.
//!
//! Reads are bounded by the durable end: the metadata log is its own single voter today, so
//! what is on disk is committed. Under Raft the bound becomes the commit index.

use super::LogStore;
use crate::quorum::{
    QuorumStateStore, QUORUM_STATE_FILE, QUORUM_STATE_MAGIC, QUORUM_STATE_VERSION,
};
use crate::LeaderEpoch;
use bytes::BytesMut;
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

    /// The bytes of batches the log holds.
    pub fn size_in_bytes(&self) -> u64 {
        self.log.size_in_bytes()
    }

    /// The partition log beneath (for the metadata snapshots beside its segments).
    pub(crate) fn log(&self) -> &PartitionLog<D> {
        &self.log
    }
}

/// The controller quorum's hard state lives beside the metadata log's segments, in the
/// storage crate's framed envelope (magic "MRQS"), replaced atomically and durably.
impl<D: Disk> QuorumStateStore for PartitionStore<D> {
    type Error = StorageError;

    async fn read_quorum_state(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.log
            .read_sealed_file(QUORUM_STATE_FILE, QUORUM_STATE_MAGIC, QUORUM_STATE_VERSION)
            .await
    }

    async fn write_quorum_state(&self, body: &[u8]) -> Result<(), StorageError> {
        self.log
            .write_sealed_file(
                QUORUM_STATE_FILE,
                QUORUM_STATE_MAGIC,
                QUORUM_STATE_VERSION,
                body,
            )
            .await
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
        self.log.durable_end()
    }

    fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    async fn truncate_to(&self, offset: i64, now_ms: i64) -> Result<i64, StorageError> {
        self.log.truncate_to(offset, now_ms).await
    }

    fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    async fn delete_before(&self, offset: i64) -> Result<i64, StorageError> {
        let durable = self.log.durable_end();
        self.log.delete_records(offset.min(durable), durable).await
    }

    async fn reset_to(&self, offset: i64, now_ms: i64) -> Result<(), StorageError> {
        self.log.reset_to(offset, now_ms).await
    }

    /// A cold read returns ranges of segment files: they are read here through `DiskFile`.
    async fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<u8>, StorageError> {
        let bound = self.log.durable_end();
        let result = self.log.read(offset, max_bytes, true, bound).await?;
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
