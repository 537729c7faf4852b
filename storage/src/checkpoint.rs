//! The replication layer's checkpoint (`replication-offset-checkpoint` in the partition's
//! directory): storage keeps its bytes without reading them, framed like its own small files
//! (see `framed.rs`), so the partition replica can persist its high watermark where the
//! partition's data lives while storage still knows nothing of high watermarks.
//!
//! ```text
//! magic "MRRC" | version 1 | length | body (the replica's own layout) | CRC-32C
//! ```

use crate::disk::Disk;
use crate::error::io_err;
use crate::{framed, PartitionLog, StorageError};

/// The checkpoint's file name.
pub const REPLICATION_CHECKPOINT: &str = "replication-offset-checkpoint";
const MAGIC: &[u8; 4] = b"MRRC";
const VERSION: u16 = 1;

impl<D: Disk> PartitionLog<D> {
    /// Replaces the replication checkpoint with `body`, atomically and durably.
    pub async fn write_replication_checkpoint(&self, body: &[u8]) -> Result<(), StorageError> {
        let path = self.dir.join(REPLICATION_CHECKPOINT);
        self.write_small(&path, &framed::seal(MAGIC, VERSION, body))
            .await
    }

    /// The body last written by [`PartitionLog::write_replication_checkpoint`]; None when there
    /// is none or it fails its checks (a torn or foreign file counts as missing, as the log's
    /// other small files do).
    pub async fn read_replication_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.dir.join(REPLICATION_CHECKPOINT);
        let file = self
            .disk
            .read_file(&path)
            .await
            .map_err(io_err("read", &path))?;
        Ok(file.and_then(|bytes| match framed::open(MAGIC, VERSION, &bytes) {
            Ok(body) => Some(body.to_vec()),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring the replication checkpoint");
                None
            }
        }))
    }
}
