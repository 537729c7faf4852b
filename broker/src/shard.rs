//! One shard of the broker: its partitions, its copy of the metadata, its ends of the mesh.
//!
//! Every `Shard` lives on its own executor thread. Work for a partition runs only on the shard
//! that owns it ([`Shard::call`], in `mesh.rs`, sends it there, one message per destination
//! shard), and only through its [`Partition`]. One shard is also the metadata writer
//! (`crate::controller`, found with [`Shard::controller_shard`]).
//!
//! The shard does not know the subsystems built on it: the controller and the group
//! coordinator keep their per-shard state in the shard's [`Subsystems`] slots, found by type,
//! so they import the shard and not the other way round. Request handlers see less still:
//! `crate::handlers::Context`.

use crate::config::Config;
use crate::disk::BrokerDisk;
use crate::mesh::{Call, Calls, MeshMsg, Node, Unavailable};
use crate::metadata::{MetadataImage, TopicMeta};
use millrace_replication::replica::ReplicaConfig;
use millrace_shard::mesh::Mesh;
use millrace_shard::net::SendFileCache;
use millrace_shard::sync::{ByteBudget, Notify, Turn};
use millrace_storage::{BatchCache, LogConfig};
use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

pub use crate::metadata::PartitionKey;

/// A partition replica on this shard's disk.
pub type Partition = crate::partition::Partition<BrokerDisk>;

/// Per-shard state of the subsystems built on a shard, one value per type.
#[derive(Default)]
pub struct Subsystems {
    slots: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
}

impl Subsystems {
    /// The state of type `T`, if it was installed.
    pub fn get<T: 'static>(&self) -> Option<Rc<T>> {
        let slot = self.slots.borrow().get(&TypeId::of::<T>()).cloned()?;
        Some(slot.downcast::<T>().expect("slots are keyed by their type"))
    }

    /// Installs `state`; Err(state) if a `T` is already there.
    pub fn install<T: 'static>(&self, state: T) -> Result<Rc<T>, T> {
        let mut slots = self.slots.borrow_mut();
        if slots.contains_key(&TypeId::of::<T>()) {
            return Err(state);
        }
        let state = Rc::new(state);
        slots.insert(TypeId::of::<T>(), state.clone());
        Ok(state)
    }

    /// The state of type `T`, installed from `make` on first use.
    pub fn get_or_install<T: 'static>(&self, make: impl FnOnce() -> T) -> Rc<T> {
        if let Some(state) = self.get::<T>() {
            return state;
        }
        let state = Rc::new(make());
        self.slots
            .borrow_mut()
            .insert(TypeId::of::<T>(), state.clone());
        state
    }
}

/// Has the receiving shard bring its partitions in line with a new metadata image; answers
/// once it has opened or deleted them (or with the error text).
pub struct ApplyMetadata(pub Arc<MetadataImage>);

impl Call<Shard> for ApplyMetadata {
    type Reply = Result<(), String>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        shard
            .apply_metadata(self.0)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Per-shard broker state. Lives on one executor; shared by its tasks through `Rc`.
pub struct Shard {
    /// This shard's id.
    pub id: usize,
    /// Number of shards.
    pub shards: usize,
    /// Start-up configuration.
    pub config: Arc<Config>,
    /// Where this shard's partitions live.
    pub disk: BrokerDisk,
    /// Mesh senders.
    mesh: Mesh<MeshMsg<Shard>>,
    /// This shard's copy of the metadata.
    pub metadata: RefCell<Arc<MetadataImage>>,
    /// Version of the last image whose logs this shard has opened (0: none yet).
    applied_version: Cell<u64>,
    /// One image applied at a time: two overlapping applies could open one partition twice.
    applying: Turn,
    /// The partitions this shard owns.
    partitions: RefCell<HashMap<PartitionKey, Rc<Partition>>>,
    /// Recently written batches, for tailing readers.
    pub cache: Rc<BatchCache>,
    /// Buffered descriptors for sendfile.
    pub sendfile: SendFileCache,
    /// Bytes of requests this shard's connections hold (`queued.max.request.bytes`), if
    /// bounded.
    pub request_budget: Option<Rc<ByteBudget>>,
    /// Fires whenever a local high watermark advances, a leader with followers appends, or
    /// an assignment changes (long-poll fetches wait on it).
    pub data_arrived: Rc<Notify>,
    /// Fires when a leader here proposes an ISR change (the ISR sender waits on it).
    pub isr_proposed: Rc<Notify>,
    /// Fires when this shard applied a new metadata image (the follower fetchers wait on it).
    pub metadata_applied: Rc<Notify>,
    /// Calls in flight to and from other shards.
    calls: Calls,
    /// Set when the broker is stopping.
    pub stopping: Cell<bool>,
    /// Fires when `stopping` is set (loops that park until there is work wait on it too).
    pub stopped: Notify,
    /// State of the subsystems built on this shard (controller, group coordinator).
    pub subsystems: Subsystems,
}

impl Node for Shard {
    fn id(&self) -> usize {
        self.id
    }

    fn mesh(&self) -> &Mesh<MeshMsg<Self>> {
        &self.mesh
    }

    fn calls(&self) -> &Calls {
        &self.calls
    }
}

impl Shard {
    /// Builds the shard's state around `image`, which it holds but has not opened yet
    /// ([`Shard::apply_metadata`] opens it). A broker starts every shard with the empty
    /// image; the controller's shard then publishes the real one (`controller::start`).
    pub fn new(
        config: Arc<Config>,
        disk: BrokerDisk,
        mesh: Mesh<MeshMsg<Shard>>,
        image: Arc<MetadataImage>,
    ) -> Rc<Self> {
        let id = mesh.shard_id();
        let shards = mesh.shards();
        Rc::new(Shard {
            id,
            shards,
            cache: BatchCache::new(config.batch_cache_bytes),
            disk,
            mesh,
            metadata: RefCell::new(image),
            applied_version: Cell::new(0),
            applying: Turn::new(),
            partitions: RefCell::new(HashMap::new()),
            sendfile: SendFileCache::new(config.sendfile_descriptors_max),
            request_budget: config.request_bytes_per_shard(shards).map(ByteBudget::new),
            data_arrived: Rc::new(Notify::new()),
            isr_proposed: Rc::new(Notify::new()),
            metadata_applied: Rc::new(Notify::new()),
            calls: Calls::default(),
            stopping: Cell::new(false),
            stopped: Notify::new(),
            subsystems: Subsystems::default(),
            config,
        })
    }

    /// Runs `call` on shard `target` (directly if that is this one) and returns its reply.
    pub async fn call<C: Call<Shard>>(
        self: &Rc<Self>,
        target: usize,
        call: C,
    ) -> Result<C::Reply, Unavailable> {
        crate::mesh::call(self, target, call).await
    }

    /// Owner side of a partition API: runs `op` on each item's partition on this shard, one
    /// after another, answering by slot; an item whose partition is not here gets `missing()`.
    pub async fn on_each_partition<I, R>(
        &self,
        items: Vec<(usize, (String, i32, I))>,
        missing: impl Fn() -> R,
        op: impl AsyncFn(&Partition, I) -> R,
    ) -> Vec<(usize, R)> {
        let mut out = Vec::with_capacity(items.len());
        for (slot, (topic, index, item)) in items {
            let r = match self.partition(&topic, index) {
                Some(partition) => op(&partition, item).await,
                None => missing(),
            };
            out.push((slot, r));
        }
        out
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.metadata.borrow().clone()
    }

    /// Version of the last image whose logs this shard has opened (0: none yet).
    pub fn applied_version(&self) -> u64 {
        self.applied_version.get()
    }

    /// The shard that runs the metadata writer (the controller).
    pub fn controller_shard() -> usize {
        0
    }

    /// A partition this shard owns.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Every partition this shard owns, in (topic, partition) order.
    pub fn partitions(&self) -> Vec<Rc<Partition>> {
        let mut all: Vec<(PartitionKey, Rc<Partition>)> = self
            .partitions
            .borrow()
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.into_iter().map(|(_, p)| p).collect()
    }

    /// The typed settings of a topic: its own configs over the broker's defaults.
    pub fn topic_settings(&self, topic: &TopicMeta) -> crate::topic_config::TopicSettings {
        self.config.topic_defaults.settings(&topic.configs)
    }

    /// The log settings for a topic: broker defaults overridden by the topic's configs.
    pub fn log_config(&self, topic: &TopicMeta) -> LogConfig {
        let c = &self.config;
        let s = self.topic_settings(topic);
        LogConfig {
            segment_bytes: s.segment_bytes,
            segment_ms: s.segment_ms,
            index_interval_bytes: c.log_index_interval_bytes,
            fsync: c.fsync,
            pending_bytes_max: c.log_pending_bytes_max,
            retention_ms: s.retention_ms,
            retention_bytes: s.retention_bytes,
            cleanup_delete: s.cleanup_delete,
            cleanup_compact: s.cleanup_compact,
            min_compaction_lag_ms: s.min_compaction_lag_ms,
            max_compaction_lag_ms: s.max_compaction_lag_ms,
            delete_retention_ms: s.delete_retention_ms,
            min_cleanable_dirty_ratio: s.min_cleanable_dirty_ratio,
            cleaner_dedupe_buffer_bytes: c.log_cleaner_dedupe_buffer_bytes,
            prepare_ahead_bytes: c.log_prepare_ahead_bytes,
            cache_written: c.log_cache_written,
            ..LogConfig::default()
        }
    }

    /// Brings this shard's open logs in line with `image`: opens partitions it now owns,
    /// deletes the logs of topics that are gone. Ignores an image that is not newer.
    pub async fn apply_metadata(self: &Rc<Self>, image: Arc<MetadataImage>) -> std::io::Result<()> {
        let _turn = self.applying.lock().await;
        if image.version <= self.applied_version.get() {
            return Ok(());
        }
        let previous = std::mem::replace(&mut *self.metadata.borrow_mut(), image.clone());
        let wanted = image.owned_by(self.id);
        let gone: Vec<PartitionKey> = self
            .partitions
            .borrow()
            .keys()
            .filter(|k| image.owner(&k.0, k.1) != Some(self.id))
            .cloned()
            .collect();
        for key in gone {
            let partition = self.partitions.borrow_mut().remove(&key);
            if let Some(partition) = partition {
                self.delete_partition(&key, partition).await;
            }
        }
        for (key, topic) in wanted {
            let Some(state) = image.cluster.partition(&topic.topic_id, key.1) else {
                continue; // placed but not in the image: cannot happen, the placement follows it
            };
            let open = self.partitions.borrow().get(&key).cloned();
            if let Some(partition) = open {
                let before = previous.cluster.partition(&topic.topic_id, key.1);
                if before != Some(state) {
                    partition.assign(crate::partition::assignment_of(state));
                }
                // Configs changed: the log applies them at its next decision (roll,
                // retention, clean); produce-time settings are read from the image anyway.
                let changed = previous
                    .topics
                    .get(&key.0)
                    .is_none_or(|old| old.configs != topic.configs);
                if changed {
                    if let Err(e) = partition.set_config(self.log_config(&topic)) {
                        tracing::error!(topic = %key.0, partition = key.1, error = %e, "applying topic configs");
                    }
                    partition.set_replica_config(self.replica_config(&topic));
                }
                continue;
            }
            let assignment = crate::partition::assignment_of(state);
            let partition = self.open_partition(&key, &topic, assignment).await?;
            partition.set_replica_config(self.replica_config(&topic));
            self.partitions.borrow_mut().insert(key, Rc::new(partition));
        }
        let ineligible = ineligible_brokers(&image);
        for partition in self.partitions.borrow().values() {
            partition.set_ineligible(ineligible.clone());
        }
        self.applied_version.set(image.version);
        self.metadata_applied.notify_all();
        self.data_arrived.notify_all();
        Ok(())
    }

    /// A topic's replication settings: its `min.insync.replicas` over the broker's, and the
    /// broker's `replica.lag.time.max.ms`.
    pub fn replica_config(&self, topic: &TopicMeta) -> ReplicaConfig {
        ReplicaConfig {
            min_insync_replicas: self.topic_settings(topic).min_insync_replicas,
            replica_lag_time_max_ms: self.config.replica.lag_time_max_ms,
        }
    }

    /// Opens a partition's log as this broker's replica under `assignment`.
    async fn open_partition(
        &self,
        key: &PartitionKey,
        topic: &TopicMeta,
        assignment: millrace_replication::replica::Assignment,
    ) -> std::io::Result<Partition> {
        let dir = self.config.data_dir.join(format!("{}-{}", key.0, key.1));
        Partition::open(
            key.clone(),
            self.disk.clone(),
            dir,
            (self.log_config(topic), self.cache.clone()),
            (self.config.node_id, assignment),
            (self.data_arrived.clone(), self.isr_proposed.clone()),
        )
        .await
        .map_err(|e| std::io::Error::other(format!("opening {}-{}: {e}", key.0, key.1)))
    }

    async fn delete_partition(&self, key: &PartitionKey, partition: Rc<Partition>) {
        let dir = self.config.data_dir.join(format!("{}-{}", key.0, key.1));
        match Rc::try_unwrap(partition) {
            Ok(partition) => {
                if let Err(e) = partition.delete().await {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "deleting log");
                }
            }
            Err(_) => {
                // Still in use by an in-flight request: remove the files; the open handles
                // keep working until they are dropped.
                let removed = millrace_shard::reap::remove_dir_all(&dir);
                if let Err(e) = removed.await {
                    tracing::warn!(topic = %key.0, partition = key.1, error = %e, "deleting log dir");
                }
            }
        }
        tracing::info!(topic = %key.0, partition = key.1, "deleted partition");
    }

    /// Flushes and closes every partition's log (clean shutdown).
    pub async fn close_partitions(&self) {
        let all: Vec<(PartitionKey, Rc<Partition>)> =
            self.partitions.borrow_mut().drain().collect();
        for (key, partition) in all {
            if let Err(e) = partition.close().await {
                tracing::error!(topic = %key.0, partition = key.1, error = %e, "closing log");
            }
        }
    }
}

/// Brokers of the image's replica sets that may not join an ISR: fenced, in controlled
/// shutdown, or not registered (the controller refuses them with INELIGIBLE_REPLICA).
fn ineligible_brokers(image: &MetadataImage) -> Vec<i32> {
    let mut out: Vec<i32> = image
        .cluster
        .brokers()
        .filter(|b| !b.is_active())
        .map(|b| b.broker_id)
        .collect();
    for t in image.cluster.topics() {
        for p in &t.partitions {
            for &r in &p.replicas {
                if image.cluster.broker(r).is_none() && !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}
