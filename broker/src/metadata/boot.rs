//! Start-up of the metadata on the controller's shard, before any shard opens a partition:
//! open and replay the metadata log, read `meta.properties` and the placement table, and
//! upgrade a data directory written before the log.
//!
//! Files in the data directory:
//! ```text
//! __cluster_metadata-0/          the metadata log (storage's partition log, record batches v2)
//!   <end offset>-<epoch>.checkpoint   metadata snapshots (the image up to end offset)
//! meta.properties                cluster.id=<id> / node.id=<n> / version=1   (Kafka's file)
//! shard-placement                partition → shard (see placement.rs)
//! __cluster_metadata/metadata    the pre-log image; renamed metadata.migrated once upgraded
//! ```
//!
//! # The upgrade, and why a crash at any point is safe
//!
//! 1. parse the old file and turn it into records (`from_legacy`);
//! 2. append the records the log does not hold yet and flush: the log must hold a prefix of
//!    them (nothing else writes it before the upgrade ends), so a torn or partial earlier
//!    attempt is completed, and an attempt that had finished step 2 appends nothing;
//! 3. write the placement table from the old shard lists (partitions stay on their shards);
//! 4. write `meta.properties` with the old cluster id (or check the one there);
//! 5. rename the old file to `metadata.migrated` and sync the directory.
//!
//! Until step 5 the old file is still there, so every restart redoes the upgrade, and steps
//! 2-4 are idempotent; after it, the log, the placement and the cluster id are all durable.
//! No step loses a topic: the old file goes last. A crash between 2 and 3 at worst loses the
//! placement, which start-up then recomputes (a partition's directory does not depend on its
//! shard).

use super::legacy::LegacyMetadata;
use super::Placement;
use millrace_replication::metadata::{
    from_legacy, snapshot_file, ClusterImage, MetadataLog, MetadataRecord, PartitionStore,
};
use millrace_replication::quorum::{Quorum, QuorumConfig};
use millrace_storage::disk::Disk;
use std::path::{Path, PathBuf};

/// The metadata log's directory, KRaft's name.
pub const LOG_DIR: &str = "__cluster_metadata-0";
/// How many bytes of encoded records the upgrade puts in one batch (a batch holds at most
/// `BATCH_BYTES_MAX`, 1 MiB; records carry some framing besides their values).
const UPGRADE_BATCH_VALUE_BYTES: usize = 512 << 10;

/// What start-up found.
pub struct Boot<D: Disk> {
    /// The opened log.
    pub log: MetadataLog<PartitionStore<D>>,
    /// The Raft node over it, opened from the log and its `quorum-state`; None on a
    /// broker-only node (an observer: its log holds only committed batches).
    pub quorum: Option<Quorum>,
    /// The image replayed from it: every committed batch (for a lone voter every durable
    /// batch, all of which its next election commits; for an observer every batch).
    pub cluster: ClusterImage,
    /// Bytes of records applied after the snapshot the image started from (all of them
    /// without one): what counts towards the next snapshot.
    pub bytes_since_snapshot: i64,
    /// The placement, reconciled with the image and the shard count.
    pub placement: Placement,
    /// True when `placement` differs from the stored table (it must be written).
    pub placement_dirty: bool,
    /// The cluster id.
    pub cluster_id: String,
}

/// The pre-log image file.
pub fn legacy_path(data_dir: &Path) -> PathBuf {
    data_dir.join("__cluster_metadata").join("metadata")
}

/// The node-local placement table.
pub fn placement_path(data_dir: &Path) -> PathBuf {
    data_dir.join("shard-placement")
}

/// Kafka's node-local identity file.
pub fn meta_properties_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta.properties")
}

/// Opens the metadata in `data_dir` for node `node_id` with `shards` shards, upgrading an
/// old data directory first. Refuses (with the reason) a log that does not replay, a
/// `meta.properties` of another node, or a log without `meta.properties`. An empty data
/// directory takes `new_cluster_id` (see `controller::new_cluster_id`). `quorum_config` is
/// None on a broker-only node, which refuses a data directory a voter wrote (its log may
/// hold batches that were never committed).
pub async fn load<D: Disk>(
    disk: &D,
    data_dir: &Path,
    node_id: i32,
    shards: usize,
    quorum_config: Option<&QuorumConfig>,
    now_ms: i64,
    new_cluster_id: String,
) -> Result<Boot<D>, String> {
    let dir = data_dir.join(LOG_DIR);
    let log = crate::partition::open_metadata_log(disk.clone(), dir.clone(), now_ms)
        .await
        .map_err(|e| format!("opening the metadata log {}: {e}", dir.display()))?;
    let mut props = read_meta_properties(disk, data_dir).await?;
    let legacy = legacy_path(data_dir);
    if let Some(bytes) = read(disk, &legacy).await? {
        props = Some(upgrade(disk, data_dir, &bytes, &log, node_id, props, now_ms).await?);
    }
    let (quorum, replay_end) = match quorum_config {
        Some(quorum_config) => {
            let quorum =
                millrace_replication::quorum::open(quorum_config, &log, log.store(), now_ms)
                    .await
                    .map_err(|e| {
                        format!("opening the controller quorum on {}: {e}", dir.display())
                    })?;
            let end = if quorum_config.voters == [quorum_config.node_id] {
                log.durable_end()
            } else {
                quorum.committed_end_offset()
            };
            (Some(quorum), end)
        }
        None => {
            use millrace_replication::quorum::QuorumStateStore;
            let state = log.store().read_quorum_state().await;
            if !matches!(state, Ok(None)) {
                return Err(format!(
                    "{} was a controller's (it has quorum-state): a broker-only node \
                     (process.roles=broker) cannot use it; give it an empty log.dirs",
                    dir.display()
                ));
            }
            // Finishes a leader's snapshot install a crash interrupted, before the image is
            // loaded from the log.
            millrace_replication::quorum::Observer::open(&log, now_ms)
                .await
                .map_err(|e| format!("opening the metadata log {}: {e}", dir.display()))?;
            (None, log.durable_end())
        }
    };
    // A snapshot covers committed, applied batches; it is used when the log still holds
    // them (a voter's durable commit index may lag it: what it covers is committed anyway).
    let (start, skipped) = snapshot_file::load_latest(log.store(), log.durable_end())
        .await
        .map_err(|e| format!("reading metadata snapshots in {}: {e}", dir.display()))?;
    for why in skipped {
        tracing::warn!(reason = %why, "skipping a metadata snapshot");
    }
    let log_start = log.log_start_offset();
    if log_start > 0 && start.as_ref().is_none_or(|s| s.id().end_offset < log_start) {
        return Err(format!(
            "{} starts at offset {log_start} (cut below a snapshot) but no readable snapshot \
             covers what was cut: wipe the directory to have this node fetch the active \
             controller's snapshot",
            dir.display()
        ));
    }
    if let Some(s) = &start {
        tracing::info!(
            end_offset = s.id().end_offset,
            epoch = s.id().epoch,
            "starting the metadata image from a snapshot"
        );
    }
    let (cluster, bytes_since_snapshot) =
        replay_from(&log, start.map(|s| s.image), replay_end).await?;
    let props = match props {
        Some(props) => props,
        None if cluster.last_applied_offset() >= 0 => {
            return Err(format!(
                "{} is missing but the metadata log has records: the cluster id cannot be \
                 made up for an existing log",
                meta_properties_path(data_dir).display()
            ))
        }
        None => {
            let props = MetaProperties {
                cluster_id: new_cluster_id,
                node_id,
            };
            write(disk, &meta_properties_path(data_dir), &props.encode()).await?;
            props
        }
    };
    if props.node_id != node_id {
        return Err(format!(
            "{} belongs to node.id={}, not node.id={node_id}",
            meta_properties_path(data_dir).display(),
            props.node_id
        ));
    }
    let stored = match read(disk, &placement_path(data_dir)).await? {
        Some(bytes) => Some(Placement::decode(&bytes).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut placement = stored.clone().unwrap_or_default();
    placement.reconcile(&cluster, shards, node_id);
    Ok(Boot {
        log,
        quorum,
        cluster,
        bytes_since_snapshot,
        placement_dirty: stored.as_ref() != Some(&placement),
        placement,
        cluster_id: props.cluster_id,
    })
}

/// The image `start` (a snapshot's; empty when None) and the log's records after it and
/// below `end` build, and the bytes of the records applied.
pub async fn replay_from<D: Disk>(
    log: &MetadataLog<PartitionStore<D>>,
    start: Option<ClusterImage>,
    end: i64,
) -> Result<(ClusterImage, i64), String> {
    let mut image = start.unwrap_or_default();
    let entries = log
        .replay(image.last_applied_offset() + 1)
        .await
        .map_err(|e| format!("replaying the metadata log: {e}"))?;
    let mut bytes = 0i64;
    for entry in entries.into_iter().take_while(|e| e.offset < end) {
        image.apply(&entry.record, entry.offset).map_err(|e| {
            format!(
                "metadata log record at offset {} does not apply: {e}",
                entry.offset
            )
        })?;
        bytes += entry.record.encode().len() as i64;
    }
    Ok((image, bytes))
}

/// Steps 1-5 of the module doc; returns the properties it wrote or checked.
async fn upgrade<D: Disk>(
    disk: &D,
    data_dir: &Path,
    old_file: &[u8],
    log: &MetadataLog<PartitionStore<D>>,
    node_id: i32,
    props: Option<MetaProperties>,
    now_ms: i64,
) -> Result<MetaProperties, String> {
    let legacy = legacy_path(data_dir);
    let old = LegacyMetadata::decode(old_file).map_err(|e| format!("{}: {e}", legacy.display()))?;
    let migration = from_legacy(&old.to_replication(), node_id)
        .map_err(|e| format!("{} cannot be upgraded: {e}", legacy.display()))?;
    let present = log
        .replay(0)
        .await
        .map_err(|e| format!("replaying the metadata log: {e}"))?;
    let is_prefix = present.len() <= migration.records.len()
        && present
            .iter()
            .zip(&migration.records)
            .all(|(entry, record)| &entry.record == record);
    if !is_prefix {
        return Err(format!(
            "{} and the metadata log disagree: the log is not an interrupted upgrade of it; \
             move one of them away",
            legacy.display()
        ));
    }
    let rest = &migration.records[present.len()..];
    for batch in batches(rest) {
        log.append(batch, crate::partition::SINGLE_VOTER_TERM, now_ms)
            .map_err(|e| format!("upgrading metadata: {e}"))?;
    }
    log.flush()
        .await
        .map_err(|e| format!("upgrading metadata: {e}"))?;
    let placement = old.placement();
    write(disk, &placement_path(data_dir), &placement.encode()).await?;
    let props = match props {
        Some(props) if props.cluster_id != migration.cluster_id => {
            return Err(format!(
                "{} says cluster.id={}, {} says {}",
                meta_properties_path(data_dir).display(),
                props.cluster_id,
                legacy.display(),
                migration.cluster_id
            ))
        }
        Some(props) => props,
        None => {
            let cluster_id = if migration.cluster_id.is_empty() {
                uuid::Uuid::new_v4().simple().to_string()
            } else {
                migration.cluster_id
            };
            let props = MetaProperties {
                cluster_id,
                node_id,
            };
            write(disk, &meta_properties_path(data_dir), &props.encode()).await?;
            props
        }
    };
    let migrated = legacy.with_file_name("metadata.migrated");
    disk.rename(&legacy, &migrated)
        .map_err(|e| format!("renaming {}: {e}", legacy.display()))?;
    let parent = legacy.parent().expect("the legacy file has a directory");
    disk.sync_dir(parent)
        .await
        .map_err(|e| format!("syncing {}: {e}", parent.display()))?;
    tracing::info!(
        topics = old.topics.len(),
        records = migration.records.len(),
        "upgraded the metadata file to the metadata log"
    );
    Ok(props)
}

/// Splits records into batches of about [`UPGRADE_BATCH_VALUE_BYTES`] of values each.
fn batches(records: &[MetadataRecord]) -> Vec<&[MetadataRecord]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, record) in records.iter().enumerate() {
        let size = record.encode().len();
        if i > start && bytes + size > UPGRADE_BATCH_VALUE_BYTES {
            out.push(&records[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// `meta.properties`, as Kafka writes it for a KRaft node (version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// The cluster this node's data belongs to; never changes.
    pub cluster_id: String,
    /// This node's id.
    pub node_id: i32,
}

impl MetaProperties {
    /// The file's text.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "#Written by millrace when the data directory was formatted.\n\
             cluster.id={}\nnode.id={}\nversion=1\n",
            self.cluster_id, self.node_id
        )
        .into_bytes()
    }

    /// Parses the file: `key=value` lines, `#` comments; `version=1`, `cluster.id` and
    /// `node.id` required, other keys (Kafka's `directory.id`) ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let (mut cluster_id, mut node_id, mut version) = (None, None, None);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line without '=': {line}"))?;
            match key.trim() {
                "cluster.id" => cluster_id = Some(value.trim().to_string()),
                "node.id" => {
                    node_id = Some(value.trim().parse::<i32>().map_err(|e| e.to_string())?)
                }
                "version" => version = Some(value.trim().to_string()),
                _ => {}
            }
        }
        if version.as_deref() != Some("1") {
            return Err(format!("version is {version:?}, expected 1"));
        }
        match (cluster_id, node_id) {
            (Some(cluster_id), Some(node_id)) if !cluster_id.is_empty() && node_id >= 0 => {
                Ok(MetaProperties {
                    cluster_id,
                    node_id,
                })
            }
            _ => Err("cluster.id or node.id missing or invalid".into()),
        }
    }
}

async fn read_meta_properties<D: Disk>(
    disk: &D,
    data_dir: &Path,
) -> Result<Option<MetaProperties>, String> {
    let path = meta_properties_path(data_dir);
    match read(disk, &path).await? {
        Some(bytes) => MetaProperties::decode(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        None => Ok(None),
    }
}

async fn read<D: Disk>(disk: &D, path: &Path) -> Result<Option<Vec<u8>>, String> {
    disk.read_file(path)
        .await
        .map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Writes a small node-local file atomically and durably through the shard's disk.
pub async fn write<D: Disk>(disk: &D, path: &Path, data: &[u8]) -> Result<(), String> {
    disk.write_file_atomic(path, data)
        .await
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
