//! Metadata snapshots on disk: the applied image as of a committed batch, so a node starts
//! from it and replays only the log after it (Kafka's `__cluster_metadata-0/*.checkpoint`).
//!
//! One file per snapshot in the metadata log's directory, named as Kafka names them, by the
//! snapshot id (end offset = the offset after the last record it covers; epoch = the term of
//! the batch holding that record):
//!
//! ```text
//! 00000000000000001234-0000000003.checkpoint
//!   framed envelope (storage's: magic "MRSN", version 1, length, body, CRC-32C)
//!   body = raft index u64 | term u64 | end_offset i64 | image (MRCI, `snapshot.rs`)
//! ```
//!
//! Written atomically and durably (temporary file, sync, rename, directory sync) by the
//! storage crate's sealed-file writer, so a crash leaves the old set of files or the new one.
//! A file that fails its checks (envelope CRC, image CRC and invariants, an image not ending
//! at the named offset) is skipped for the next older one, and reported; the newest two are
//! kept, older ones removed after each write.

use super::image::ClusterImage;
use super::partition_store::PartitionStore;
use crate::error::ReplicationError;
use millrace_storage::disk::Disk;
use millrace_storage::StorageError;
use std::future::Future;

/// The file name suffix of a snapshot.
pub const SNAPSHOT_SUFFIX: &str = ".checkpoint";
/// The snapshot file's magic.
pub const SNAPSHOT_FILE_MAGIC: &[u8; 4] = b"MRSN";
/// The snapshot file's version.
pub const SNAPSHOT_FILE_VERSION: u16 = 1;
/// Snapshots kept after a new one is written (the new one included).
pub const SNAPSHOTS_KEPT: usize = 2;

/// A snapshot's id, as Kafka's: the offset after its last record and that record's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId {
    /// The offset after the last record the image includes.
    pub end_offset: i64,
    /// The term (leader epoch) of the batch holding that record.
    pub epoch: i32,
}

impl SnapshotId {
    /// Kafka's file name: `<end offset, 20 digits>-<epoch, 10 digits>.checkpoint`.
    pub fn file_name(&self) -> String {
        format!(
            "{:020}-{:010}{SNAPSHOT_SUFFIX}",
            self.end_offset, self.epoch
        )
    }

    /// The id a file name stands for; None for any other name.
    pub fn parse(name: &str) -> Option<SnapshotId> {
        let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
        let (offset, epoch) = stem.split_once('-')?;
        if offset.len() != 20 || epoch.len() != 10 {
            return None;
        }
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(offset) || !all_digits(epoch) {
            return None;
        }
        Some(SnapshotId {
            end_offset: offset.parse().ok()?,
            epoch: epoch.parse().ok()?,
        })
    }
}

/// One snapshot: the image after the batch of Raft index `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSnapshot {
    /// The Raft index of the last batch it includes (the batch count from the log start).
    pub index: u64,
    /// That batch's term.
    pub term: u64,
    /// The image, whose last applied offset is `id().end_offset - 1`.
    pub image: ClusterImage,
}

impl MetadataSnapshot {
    /// Its id.
    pub fn id(&self) -> SnapshotId {
        SnapshotId {
            end_offset: self.image.last_applied_offset() + 1,
            epoch: i32::try_from(self.term).unwrap_or(i32::MAX),
        }
    }

    /// The file body (see the module doc).
    pub fn encode(&self) -> Vec<u8> {
        let image = self.image.encode_snapshot();
        let mut out = Vec::with_capacity(24 + image.len());
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.term.to_be_bytes());
        out.extend_from_slice(&self.id().end_offset.to_be_bytes());
        out.extend_from_slice(&image);
        out
    }

    /// Decodes a body read from the file named `id`; refuses one that does not match it.
    pub fn decode(id: SnapshotId, body: &[u8]) -> Result<MetadataSnapshot, ReplicationError> {
        let snapshot = MetadataSnapshot::decode_body(body)?;
        if snapshot.id() != id {
            return Err(ReplicationError::BadSnapshot {
                reason: format!(
                    "file {} holds index {} term {}, an image ending at {}",
                    id.file_name(),
                    snapshot.index,
                    snapshot.term,
                    snapshot.id().end_offset
                ),
            });
        }
        Ok(snapshot)
    }

    /// Decodes a body from anywhere (a file, or a leader's message): the image's checks, an
    /// end offset matching the image's, a non-zero index.
    pub fn decode_body(body: &[u8]) -> Result<MetadataSnapshot, ReplicationError> {
        let bad = |reason: String| ReplicationError::BadSnapshot { reason };
        if body.len() < 24 {
            return Err(bad(format!(
                "{} bytes: shorter than its header",
                body.len()
            )));
        }
        let u64_at = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("8"));
        let (index, term, end_offset) = (u64_at(0), u64_at(8), u64_at(16) as i64);
        let image = ClusterImage::decode_snapshot(&body[24..])?;
        let snapshot = MetadataSnapshot { index, term, image };
        if end_offset != snapshot.id().end_offset || index == 0 {
            return Err(bad(format!(
                "index {index} term {term} end offset {end_offset}, an image ending at {}",
                snapshot.id().end_offset
            )));
        }
        Ok(snapshot)
    }
}

/// Where snapshots are kept: the metadata log's directory. Implemented by
/// [`PartitionStore`].
pub trait SnapshotStore {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The ids of the snapshot files present, oldest first.
    fn snapshot_ids(&self) -> Result<Vec<SnapshotId>, Self::Error>;
    /// The body of snapshot `id`; None when it is gone; an error when it is damaged.
    fn read_snapshot(
        &self,
        id: SnapshotId,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>>;
    /// Writes snapshot `id` atomically and durably.
    fn write_snapshot(
        &self,
        id: SnapshotId,
        body: &[u8],
    ) -> impl Future<Output = Result<(), Self::Error>>;
    /// Removes snapshot `id`.
    fn remove_snapshot(&self, id: SnapshotId) -> impl Future<Output = Result<(), Self::Error>>;
}

impl<D: Disk> SnapshotStore for PartitionStore<D> {
    type Error = StorageError;

    fn snapshot_ids(&self) -> Result<Vec<SnapshotId>, StorageError> {
        let mut ids: Vec<SnapshotId> = self
            .log()
            .sealed_file_names(SNAPSHOT_SUFFIX)?
            .iter()
            .filter_map(|n| SnapshotId::parse(n))
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn read_snapshot(&self, id: SnapshotId) -> Result<Option<Vec<u8>>, StorageError> {
        self.log()
            .read_sealed_file(&id.file_name(), SNAPSHOT_FILE_MAGIC, SNAPSHOT_FILE_VERSION)
            .await
    }

    async fn write_snapshot(&self, id: SnapshotId, body: &[u8]) -> Result<(), StorageError> {
        self.log()
            .write_sealed_file(
                &id.file_name(),
                SNAPSHOT_FILE_MAGIC,
                SNAPSHOT_FILE_VERSION,
                body,
            )
            .await
    }

    async fn remove_snapshot(&self, id: SnapshotId) -> Result<(), StorageError> {
        self.log().remove_sealed_file(&id.file_name()).await
    }
}

/// A snapshot read back, with the body it was decoded from (what a leader sends).
#[derive(Debug, Clone)]
pub struct LoadedSnapshot {
    /// The decoded snapshot.
    pub snapshot: MetadataSnapshot,
    /// The file's body.
    pub body: bytes::Bytes,
}

/// The newest snapshot that passes every check and ends at or below `log_end` (the log must
/// still hold what it covers), and what was wrong with newer ones (each skipped file's name
/// and reason, for the caller to report).
pub async fn load_latest<S: SnapshotStore>(
    store: &S,
    log_end: i64,
) -> Result<(Option<MetadataSnapshot>, Vec<String>), ReplicationError> {
    let (found, skipped) = load_newest(store, |id| id.end_offset <= log_end).await?;
    Ok((found.map(|l| l.snapshot), skipped))
}

/// The newest snapshot among the ids `wanted` accepts that passes every check, with its
/// body, and what was wrong with newer wanted ones.
pub async fn load_newest<S: SnapshotStore>(
    store: &S,
    wanted: impl Fn(SnapshotId) -> bool,
) -> Result<(Option<LoadedSnapshot>, Vec<String>), ReplicationError> {
    let mut skipped = Vec::new();
    let ids = store
        .snapshot_ids()
        .map_err(store_error("list snapshots"))?;
    for id in ids.into_iter().rev().filter(|&id| wanted(id)) {
        let body = match store.read_snapshot(id).await {
            Ok(Some(body)) => body,
            Ok(None) => continue,
            Err(e) => {
                skipped.push(format!("{}: {e}", id.file_name()));
                continue;
            }
        };
        match MetadataSnapshot::decode(id, &body) {
            Ok(snapshot) => {
                let body = body.into();
                return Ok((Some(LoadedSnapshot { snapshot, body }), skipped));
            }
            Err(e) => skipped.push(format!("{}: {e}", id.file_name())),
        }
    }
    Ok((None, skipped))
}

/// Writes `snapshot`, then removes all but the newest [`SNAPSHOTS_KEPT`] snapshots, except
/// one ending at `log_start` (the log's start, 0 when the log was never cut): the quorum's
/// base needs it (the term and index where the log begins). Returns the id and the body.
pub async fn write<S: SnapshotStore>(
    store: &S,
    snapshot: &MetadataSnapshot,
    log_start: i64,
) -> Result<(SnapshotId, bytes::Bytes), ReplicationError> {
    let id = snapshot.id();
    let body = snapshot.encode();
    write_body(store, id, &body, log_start).await?;
    Ok((id, body.into()))
}

/// [`write`] for a body already encoded (a leader's, being installed).
pub async fn write_body<S: SnapshotStore>(
    store: &S,
    id: SnapshotId,
    body: &[u8],
    log_start: i64,
) -> Result<(), ReplicationError> {
    store
        .write_snapshot(id, body)
        .await
        .map_err(store_error("write snapshot"))?;
    let ids = store
        .snapshot_ids()
        .map_err(store_error("list snapshots"))?;
    let old = ids.len().saturating_sub(SNAPSHOTS_KEPT);
    for stale in ids
        .into_iter()
        .take(old)
        .filter(|s| *s != id && (log_start == 0 || s.end_offset != log_start))
    {
        store
            .remove_snapshot(stale)
            .await
            .map_err(store_error("remove snapshot"))?;
    }
    Ok(())
}

fn store_error<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
) -> impl FnOnce(E) -> ReplicationError {
    super::log::store_error(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::record::{ConfigRecord, ConfigResourceType, MetadataRecord};

    fn image_at(records: usize) -> ClusterImage {
        let mut image = ClusterImage::default();
        for i in 0..records {
            let record = MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Broker,
                resource_name: String::new(),
                name: format!("k{i}"),
                value: Some("v".into()),
            });
            image.apply(&record, i as i64).unwrap();
        }
        image
    }

    #[test]
    fn file_names_are_kafkas_and_parse_back() {
        let id = SnapshotId {
            end_offset: 1234,
            epoch: 3,
        };
        assert_eq!(id.file_name(), "00000000000000001234-0000000003.checkpoint");
        assert_eq!(SnapshotId::parse(&id.file_name()), Some(id));
        for other in [
            "00000000000000001234-0000000003.checkpoint.tmp",
            "1234-3.checkpoint",
            "0000000000000000123x-0000000003.checkpoint",
            "00000000000000001234-0000000003.snapshot",
            "quorum-state",
        ] {
            assert_eq!(SnapshotId::parse(other), None, "{other}");
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_a_mismatched_or_damaged_body_is_refused() {
        let snapshot = MetadataSnapshot {
            index: 7,
            term: 2,
            image: image_at(5),
        };
        let id = snapshot.id();
        assert_eq!(
            id,
            SnapshotId {
                end_offset: 5,
                epoch: 2
            }
        );
        let body = snapshot.encode();
        assert_eq!(MetadataSnapshot::decode(id, &body).unwrap(), snapshot);
        let other = SnapshotId {
            end_offset: 6,
            epoch: 2,
        };
        assert!(
            MetadataSnapshot::decode(other, &body).is_err(),
            "another file's name"
        );
        for cut in [0, 10, 23, 24, body.len() - 1] {
            assert!(
                MetadataSnapshot::decode(id, &body[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut flipped = body.clone();
        flipped[30] ^= 1;
        assert!(MetadataSnapshot::decode(id, &flipped).is_err(), "image CRC");
        let mut zero_index = body;
        zero_index[..8].fill(0);
        assert!(
            MetadataSnapshot::decode(id, &zero_index).is_err(),
            "index 0"
        );
    }
}
