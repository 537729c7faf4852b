//! Small files the replication layer keeps in a partition's directory, framed like storage's
//! own small files (see `framed.rs`) while storage still knows nothing of what they mean:
//!
//! * `replication-offset-checkpoint`: the partition replica's high watermark; a damaged one
//!   reads as missing (the replica rebuilds it).
//! * any other name the replication layer picks ([`PartitionLog::write_sealed_file`]), such as
//!   the controller quorum's `quorum-state`; a damaged one is an error, because the caller
//!   cannot rebuild it (a Raft vote that reads as missing could be cast twice).
//!
//! ```text
//! magic (caller's) | version | length | body (the caller's own layout) | CRC-32C
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
        self.write_sealed_file(REPLICATION_CHECKPOINT, MAGIC, VERSION, body)
            .await
    }

    /// The body last written by [`PartitionLog::write_replication_checkpoint`]; None when there
    /// is none or it fails its checks (a torn or foreign file counts as missing, as the log's
    /// other small files do).
    pub async fn read_replication_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        match self
            .read_sealed_file(REPLICATION_CHECKPOINT, MAGIC, VERSION)
            .await
        {
            Err(StorageError::Corrupt { path, reason, .. }) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring the replication checkpoint");
                Ok(None)
            }
            other => other,
        }
    }

    /// Replaces the small file `name` in the log's directory with `body` in the framed
    /// envelope (`magic`, `version`, length, CRC-32C), atomically and durably (temporary file,
    /// sync, rename, directory sync, through the [`Disk`]). For the replication layer's own
    /// files: `name` must be a plain file name that is none of the log's own (segments,
    /// indexes, snapshots, temporary files, checkpoints storage reads); a caller passing one
    /// is a bug, and asserts.
    pub async fn write_sealed_file(
        &self,
        name: &str,
        magic: &[u8; 4],
        version: u16,
        body: &[u8],
    ) -> Result<(), StorageError> {
        assert_owned_name(name);
        let path = self.dir.join(name);
        self.write_small(&path, &framed::seal(magic, version, body))
            .await
    }

    /// The body of the small file `name` written by [`PartitionLog::write_sealed_file`]; None
    /// when the file does not exist, [`StorageError::Corrupt`] when it fails the envelope's
    /// checks (wrong magic or version, bad length, CRC mismatch).
    pub async fn read_sealed_file(
        &self,
        name: &str,
        magic: &[u8; 4],
        version: u16,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        assert_owned_name(name);
        let path = self.dir.join(name);
        let file = self
            .disk
            .read_file(&path)
            .await
            .map_err(io_err("read", &path))?;
        let Some(bytes) = file else {
            return Ok(None);
        };
        match framed::open(magic, version, &bytes) {
            Ok(body) => Ok(Some(body.to_vec())),
            Err(reason) => Err(StorageError::Corrupt {
                path,
                position: 0,
                reason,
            }),
        }
    }
}

impl<D: Disk> PartitionLog<D> {
    /// The names of the files in the log's directory that end with `suffix` (the replication
    /// layer's own sealed files, such as metadata snapshots), sorted.
    pub fn sealed_file_names(&self, suffix: &str) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self
            .disk
            .list_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .into_iter()
            .filter(|n| n.ends_with(suffix) && !n.contains('/'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Removes the sealed file `name` (nothing when it is gone) and syncs the directory.
    pub async fn remove_sealed_file(&self, name: &str) -> Result<(), StorageError> {
        assert_owned_name(name);
        let path = self.dir.join(name);
        crate::retention::remove_if_present(&self.disk, &path).await?;
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(io_err("sync", &self.dir))
    }
}

/// Names storage owns or cleans up: a sealed file must not collide with them.
fn assert_owned_name(name: &str) {
    const SUFFIXES: [&str; 7] = [
        ".log",
        ".index",
        ".timeindex",
        ".txnindex",
        ".snapshot",
        ".tmp",
        ".cleaned",
    ];
    const RESERVED: [&str; 5] = [
        "leader-epoch-checkpoint",
        "log-start-offset-checkpoint",
        "truncation-pending",
        "reset-pending",
        "clean-shutdown",
    ];
    assert!(
        !name.is_empty()
            && !name.contains('/')
            && !SUFFIXES.iter().any(|s| name.ends_with(s))
            && !RESERVED.contains(&name),
        "{name:?} is not a name the replication layer may own"
    );
}
