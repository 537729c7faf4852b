//! The metadata writer, on [`Shard::controller_shard`]: creates, deletes and grows topics,
//! changes their configs and hands out producer ids. Changes are serialised. Each change:
//!
//! 1. is worked out as records in a [`Draft`] (applied to a copy of the image as they are
//!    made, so later checks of the same request see them); a `validate_only` request or one
//!    that changes nothing stops here;
//! 2. is appended to the metadata log as one batch and flushed (the commit point: on a single
//!    voter, durable = committed); under Raft only who commits a record changes;
//! 3. is applied: the draft's image and its placement (new partitions on the least loaded
//!    shard) become the controller's view; the placement table is written if it changed;
//! 4. is published to every shard ([`ApplyMetadata`]); the request is answered once each
//!    has opened or deleted its logs, so a client that sees success can use the topic at once.
//!
//! If step 2 fails the request gets an error and the view is unchanged. The log may then hold
//! an unflushed tail the image never applied, and the device has just refused a write or a
//! sync, after which what reached it is unknown: the controller **fences itself** and refuses
//! every later change until the broker restarts (a later flush would otherwise make that tail
//! durable behind the image's back). At restart, recovery keeps the whole batches that did
//! reach the disk and replay applies them, so a change answered with this error may be there
//! after a restart, as after a Kafka request timeout. If step 3's placement write or step 4
//! fails, the records are committed: the view advances, the answer is an error saying so.
//!
//! Each operation is a typed [`Call`] ([`CreateTopics`], [`DeleteTopics`],
//! [`CreatePartitions`], [`AlterConfigs`], [`AllocateProducerId`]) that handlers send to the
//! controller's shard with [`Shard::call`].

use crate::disk::BrokerDisk;
use crate::errors::code;
use crate::mesh::Call;
use crate::metadata::boot;
use crate::metadata::{
    config_records, partition_records, topic_id_of, topic_records, valid_topic_name, Draft,
    MetadataImage, PRODUCER_ID_BLOCK,
};
use crate::shard::{ApplyMetadata, Shard};
use millrace_replication::metadata::{
    MetadataLog, MetadataRecord, PartitionStore, ProducerIdsRecord, RemoveTopicRecord,
};
use millrace_shard::sync::Turn;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// The writer's own state. Lives on the controller's shard.
pub struct Controller {
    turn: Turn,
    log: MetadataLog<PartitionStore<BrokerDisk>>,
    /// The view as of the last committed change (shards get copies of it).
    current: RefCell<Arc<MetadataImage>>,
    next_producer_id: Cell<i64>,
    /// Why the controller stopped accepting changes (a failed append or flush), if it did.
    fenced: RefCell<Option<String>>,
}

/// CreateTopics: one outcome per topic, in request order.
pub struct CreateTopics {
    /// The topics.
    pub topics: Vec<NewTopic>,
    /// Check only.
    pub validate_only: bool,
}

/// DeleteTopics by name: one outcome per topic, in request order.
pub struct DeleteTopics(pub Vec<String>);

/// CreatePartitions: grow topics to a new partition count.
pub struct CreatePartitions {
    /// (topic, new total count).
    pub topics: Vec<(String, i32)>,
    /// Check only.
    pub validate_only: bool,
}

/// AlterConfigs and IncrementalAlterConfigs: one (error code, message) per change, in order.
pub struct AlterConfigs {
    /// One change per topic.
    pub changes: Vec<TopicConfigChange>,
    /// Check only.
    pub validate_only: bool,
}

/// A fresh producer id.
pub struct AllocateProducerId;

impl Call<Shard> for CreateTopics {
    type Reply = Vec<TopicOutcome>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft, _: &Cell<i64>| {
            let topics = self.topics.iter();
            topics
                .map(|t| create_topic(&shard, draft, t, self.validate_only))
                .collect()
        };
        change_metadata(&shard, change, failed_topics).await
    }
}

impl Call<Shard> for DeleteTopics {
    type Reply = Vec<TopicOutcome>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft, _: &Cell<i64>| {
            self.0.iter().map(|n| delete_topic(draft, n)).collect()
        };
        change_metadata(&shard, change, failed_topics).await
    }
}

impl Call<Shard> for CreatePartitions {
    type Reply = Vec<TopicOutcome>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft, _: &Cell<i64>| {
            let topics = self.topics.iter();
            topics
                .map(|(n, count)| create_partitions(&shard, draft, n, *count, self.validate_only))
                .collect()
        };
        change_metadata(&shard, change, failed_topics).await
    }
}

impl Call<Shard> for AlterConfigs {
    type Reply = Vec<(i16, Option<String>)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft, _: &Cell<i64>| {
            let changes = self.changes.iter();
            changes
                .map(|c| match alter_configs(draft, c, self.validate_only) {
                    Ok(()) => (code::NONE, None),
                    Err((code, message)) => (code, Some(message)),
                })
                .collect()
        };
        let failed = |mut results: Self::Reply, error: &str| {
            for r in results.iter_mut().filter(|r| r.0 == code::NONE) {
                *r = (
                    code::UNKNOWN_SERVER_ERROR,
                    Some(format!("metadata could not be stored: {error}")),
                );
            }
            results
        };
        change_metadata(&shard, change, failed).await
    }
}

impl Call<Shard> for AllocateProducerId {
    type Reply = Result<i64, String>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft, next_producer_id: &Cell<i64>| {
            let id = next_producer_id.get();
            next_producer_id.set(id + 1);
            if id >= draft.cluster.next_producer_id() {
                let block = MetadataRecord::ProducerIds(ProducerIdsRecord {
                    broker_id: draft.node_id,
                    broker_epoch: -1, // no broker registration yet: no broker epoch
                    next_producer_id: id + PRODUCER_ID_BLOCK,
                });
                draft.push_all(vec![block]).map_err(|e| e.to_string())?;
            }
            Ok(id)
        };
        change_metadata(&shard, change, |_, error| Err(error.to_string())).await
    }
}

/// The config changes of one topic.
#[derive(Debug, Clone)]
pub struct TopicConfigChange {
    /// The topic.
    pub topic: String,
    /// What to do.
    pub ops: ConfigOps,
}

/// AlterConfigs replaces a topic's whole set of overrides; IncrementalAlterConfigs edits it.
#[derive(Debug, Clone)]
pub enum ConfigOps {
    /// The new overrides; every key not named returns to its default.
    Replace(Vec<(String, Option<String>)>),
    /// (key, operation, value): 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT.
    Incremental(Vec<(String, i8, Option<String>)>),
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions, -1 for `num.partitions`.
    pub partitions: i32,
    /// Replication factor, -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// The request carried a manual replica assignment.
    pub manual_assignment: bool,
    /// Topic configs.
    pub configs: Vec<(String, Option<String>)>,
}

/// One topic's outcome.
#[derive(Debug, Clone)]
pub struct TopicOutcome {
    /// Id (nil when not created).
    pub id: uuid::Uuid,
    /// Kafka error code.
    pub error_code: i16,
    /// Error text.
    pub error_message: Option<String>,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Configs as stored.
    pub configs: BTreeMap<String, String>,
}

impl Controller {
    /// The view as of the last committed change.
    pub fn current(&self) -> Arc<MetadataImage> {
        self.current.borrow().clone()
    }

    /// Steps 2-4 of the module doc for `draft`; `placement_dirty` forces the placement
    /// table to be written (start-up found it stale). Publishes even when the draft is empty.
    async fn commit(
        &self,
        shard: &Rc<Shard>,
        draft: Draft,
        placement_dirty: bool,
    ) -> Result<(), String> {
        if let Some(why) = self.fenced.borrow().as_ref() {
            return Err(format!("the metadata log is fenced until restart: {why}"));
        }
        let current = self.current();
        if !draft.records.is_empty() {
            self.append_and_flush(&draft.records, current.cluster.last_applied_offset() + 1)
                .await?;
        }
        let placement_changed = placement_dirty || draft.placement != *current.placement;
        let image = Arc::new(MetadataImage::new(
            current.version + 1,
            current.cluster_id.clone(),
            Arc::new(draft.cluster),
            Arc::new(draft.placement),
        ));
        *self.current.borrow_mut() = image.clone();
        if placement_changed {
            let path = boot::placement_path(&shard.config.data_dir);
            boot::write(&shard.disk, &path, &image.placement.encode())
                .await
                .map_err(|e| format!("committed, but {e}"))?;
        }
        publish(shard, image)
            .await
            .map_err(|e| format!("committed, but {e}"))
    }

    /// Appends `records` as one batch, expected at offset `expected`, and flushes. Fences the
    /// controller if the log may now hold records the image does not.
    async fn append_and_flush(
        &self,
        records: &[MetadataRecord],
        expected: i64,
    ) -> Result<(), String> {
        let end_before = self.log.log_end_offset();
        let now_ms = millrace_shard::time::now_ms();
        let appended = self
            .log
            .append(records, crate::partition::SINGLE_VOTER_TERM, now_ms);
        let failure = match appended {
            Ok(base) if base == expected => match self.log.flush().await {
                Ok(()) => return Ok(()),
                Err(e) => format!("flushing the metadata log: {e}"),
            },
            Ok(base) => format!("metadata batch landed at offset {base}, expected {expected}"),
            Err(e) if self.log.log_end_offset() == end_before => {
                return Err(format!("appending to the metadata log: {e}"))
            }
            Err(e) => format!("appending to the metadata log: {e}"),
        };
        tracing::error!(error = %failure, "metadata log failed; refusing metadata changes until restart");
        *self.fenced.borrow_mut() = Some(failure.clone());
        Err(failure)
    }
}

/// Start-up on the controller's shard: opens the metadata (upgrading an old data directory),
/// creates `__consumer_offsets` if missing (as records), writes the placement if it changed,
/// and publishes the first view to every shard, which opens their partitions.
pub async fn start(shard: &Rc<Shard>) -> Result<(), String> {
    assert_eq!(shard.id, Shard::controller_shard());
    let config = &shard.config;
    let now_ms = millrace_shard::time::now_ms();
    let boot = boot::load(
        &shard.disk,
        &config.data_dir,
        config.node_id,
        shard.shards,
        now_ms,
    )
    .await?;
    let view = MetadataImage::new(
        0,
        boot.cluster_id,
        Arc::new(boot.cluster),
        Arc::new(boot.placement),
    );
    let mut draft = Draft::new(&view, shard.shards, config.node_id);
    ensure_offsets_topic(&mut draft, config.offsets_topic_partitions)?;
    let controller = Controller {
        turn: Turn::new(),
        log: boot.log,
        next_producer_id: Cell::new(view.cluster.next_producer_id()),
        current: RefCell::new(Arc::new(view)),
        fenced: RefCell::new(None),
    };
    let Ok(controller) = shard.subsystems.install(controller) else {
        return Err("the controller was started twice".into());
    };
    let _turn = controller.turn.lock().await;
    controller.commit(shard, draft, boot.placement_dirty).await
}

/// Creates the offsets topic if the image lacks it, and adds the internal configs an older
/// image lacks (settings an operator altered since are kept).
fn ensure_offsets_topic(draft: &mut Draft, partitions: i32) -> Result<(), String> {
    let name = crate::coordinator::OFFSETS_TOPIC;
    let wanted = crate::metadata::internal_topic_configs();
    let records = match draft.cluster.topic(name) {
        None => {
            let id = topic_id_of(&uuid::Uuid::new_v4());
            topic_records(name, id, partitions, &wanted, draft.node_id)
        }
        Some(t) => {
            let mut configs = t.configs.clone();
            for (k, v) in wanted {
                configs.entry(k).or_insert(v);
            }
            config_records(name, &t.configs, &configs)
        }
    };
    draft
        .push_all(records)
        .map_err(|e| format!("creating {name}: {e}"))
}

/// Runs one change on the writer: works `change` out as records over the current view and,
/// if there are any, commits and publishes them before answering; if that fails, `failed`
/// turns the answer into errors. Only the controller's shard has a writer; anywhere else
/// (or before start-up) every answer fails.
async fn change_metadata<R>(
    shard: &Rc<Shard>,
    change: impl FnOnce(&mut Draft, &Cell<i64>) -> R,
    failed: impl FnOnce(R, &str) -> R,
) -> R {
    let node_id = shard.config.node_id;
    let Some(controller) = shard.subsystems.get::<Controller>() else {
        let mut draft = Draft::new(&shard.image(), shard.shards, node_id);
        let reply = change(&mut draft, &Cell::new(0));
        return failed(reply, "not the metadata writer");
    };
    let _turn = controller.turn.lock().await;
    let mut draft = Draft::new(&controller.current(), shard.shards, node_id);
    let reply = change(&mut draft, &controller.next_producer_id);
    if draft.records.is_empty() {
        return reply;
    }
    if let Err(e) = controller.commit(shard, draft, false).await {
        tracing::error!(error = %e, "committing metadata failed");
        return failed(reply, &e);
    }
    reply
}

fn failed_topics(mut topics: Vec<TopicOutcome>, error: &str) -> Vec<TopicOutcome> {
    for t in topics.iter_mut().filter(|t| t.error_code == code::NONE) {
        t.error_code = code::UNKNOWN_SERVER_ERROR;
        t.error_message = Some(format!("metadata could not be stored: {error}"));
    }
    topics
}

/// Has every shard apply `image`.
async fn publish(shard: &Rc<Shard>, image: Arc<MetadataImage>) -> Result<(), String> {
    for target in 0..shard.shards {
        match shard.call(target, ApplyMetadata(image.clone())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("shard {target}: {e}")),
            Err(_) => return Err(format!("shard {target} unavailable")),
        }
    }
    Ok(())
}

fn outcome(_name: &str, error_code: i16, message: Option<String>) -> TopicOutcome {
    TopicOutcome {
        id: uuid::Uuid::nil(),
        error_code,
        error_message: message,
        partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
    }
}

fn create_topic(
    shard: &Shard,
    draft: &mut Draft,
    t: &NewTopic,
    validate_only: bool,
) -> TopicOutcome {
    if let Err(why) = valid_topic_name(&t.name) {
        return outcome(&t.name, code::INVALID_TOPIC_EXCEPTION, Some(why.into()));
    }
    if crate::metadata::is_reserved(&t.name) {
        return outcome(
            &t.name,
            code::INVALID_TOPIC_EXCEPTION,
            Some(format!("'{}' is reserved for the metadata log", t.name)),
        );
    }
    if draft.cluster.topic(&t.name).is_some() || crate::metadata::is_internal(&t.name) {
        return outcome(
            &t.name,
            code::TOPIC_ALREADY_EXISTS,
            Some(format!("Topic '{}' already exists.", t.name)),
        );
    }
    if t.manual_assignment {
        return outcome(
            &t.name,
            code::INVALID_REPLICA_ASSIGNMENT,
            Some("manual replica assignment is not supported on a single node".into()),
        );
    }
    let partitions = if t.partitions == -1 {
        shard.config.num_partitions
    } else {
        t.partitions
    };
    let partitions_max = shard.config.partitions_per_topic_max;
    if !(1..=partitions_max).contains(&partitions) {
        return outcome(
            &t.name,
            code::INVALID_PARTITIONS,
            Some(format!("partitions must be between 1 and {partitions_max}")),
        );
    }
    let rf = if t.replication_factor == -1 {
        shard.config.default_replication_factor
    } else {
        t.replication_factor
    };
    if rf != 1 {
        return outcome(
            &t.name,
            code::INVALID_REPLICATION_FACTOR,
            Some(format!(
                "Replication factor: {rf} larger than available brokers: 1."
            )),
        );
    }
    let configs = match crate::topic_config::validate(&t.configs) {
        Ok(c) => c,
        Err(msg) => return outcome(&t.name, code::INVALID_CONFIG, Some(msg)),
    };
    let id = uuid::Uuid::new_v4();
    let result = TopicOutcome {
        id,
        error_code: code::NONE,
        error_message: None,
        partitions,
        replication_factor: 1,
        configs: configs.clone(),
    };
    if !validate_only {
        let records = topic_records(
            &t.name,
            topic_id_of(&id),
            partitions,
            &configs,
            draft.node_id,
        );
        if let Err(e) = draft.push_all(records) {
            return outcome(&t.name, code::UNKNOWN_SERVER_ERROR, Some(e.to_string()));
        }
        tracing::info!(topic = %t.name, partitions, "created topic");
    }
    result
}

fn delete_topic(draft: &mut Draft, name: &str) -> TopicOutcome {
    if crate::metadata::is_internal(name) {
        return outcome(
            name,
            code::INVALID_TOPIC_EXCEPTION,
            Some(format!("internal topic {name} cannot be deleted")),
        );
    }
    let Some(topic_id) = draft.cluster.topic(name).map(|t| t.id) else {
        return outcome(
            name,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            Some("This server does not host this topic.".into()),
        );
    };
    let remove = MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id });
    if let Err(e) = draft.push_all(vec![remove]) {
        return outcome(name, code::UNKNOWN_SERVER_ERROR, Some(e.to_string()));
    }
    let mut o = outcome(name, code::NONE, None);
    o.id = crate::metadata::uuid_of(topic_id);
    tracing::info!(topic = %name, "deleted topic");
    o
}

fn create_partitions(
    shard: &Shard,
    draft: &mut Draft,
    name: &str,
    count: i32,
    validate_only: bool,
) -> TopicOutcome {
    let Some(topic) = draft.cluster.topic(name) else {
        return outcome(
            name,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            Some("This server does not host this topic.".into()),
        );
    };
    let (topic_id, current) = (topic.id, topic.partitions.len() as i32);
    if count <= current {
        return outcome(name, code::INVALID_PARTITIONS, Some(format!("Topic currently has {current} partitions, which is higher than or equal to the requested {count}.")));
    }
    let partitions_max = shard.config.partitions_per_topic_max;
    if count > partitions_max {
        return outcome(
            name,
            code::INVALID_PARTITIONS,
            Some(format!("at most {partitions_max} partitions per topic")),
        );
    }
    if !validate_only {
        let records = partition_records(topic_id, current..count, draft.node_id).collect();
        if let Err(e) = draft.push_all(records) {
            return outcome(name, code::UNKNOWN_SERVER_ERROR, Some(e.to_string()));
        }
    }
    let mut o = outcome(name, code::NONE, None);
    o.partitions = count;
    o
}

/// Config operations of IncrementalAlterConfigs.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Adds one topic's config change to `draft` (unless `validate_only`). All or nothing: the
/// topic's overrides change only if every operation and the result are valid.
fn alter_configs(
    draft: &mut Draft,
    change: &TopicConfigChange,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    use crate::topic_config::{check_combination, check_value, def, Kind};
    let invalid = |m: String| (code::INVALID_CONFIG, m);
    let Some(topic) = draft.cluster.topic(&change.topic) else {
        return Err((
            code::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Topic {} does not exist.", change.topic),
        ));
    };
    let mut names: Vec<&str> = match &change.ops {
        ConfigOps::Replace(c) => c.iter().map(|(k, _)| k.as_str()).collect(),
        ConfigOps::Incremental(c) => c.iter().map(|(k, _, _)| k.as_str()).collect(),
    };
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err((
            code::INVALID_REQUEST,
            "Error due to duplicate config keys".into(),
        ));
    }
    let configs = match &change.ops {
        ConfigOps::Replace(new) => crate::topic_config::validate(new).map_err(invalid)?,
        ConfigOps::Incremental(ops) => {
            let mut configs = topic.configs.clone();
            for (key, op, value) in ops {
                let Some(d) = def(key) else {
                    return Err(invalid(format!(
                        "Unknown or unsupported topic config: {key}"
                    )));
                };
                match *op {
                    OP_DELETE => {
                        configs.remove(key);
                    }
                    OP_SET | OP_APPEND | OP_SUBTRACT => {
                        let Some(value) = value else {
                            return Err(invalid(format!(
                                "Null value not supported for topic config: {key}"
                            )));
                        };
                        let new = if *op == OP_SET {
                            value.clone()
                        } else if d.kind != Kind::List {
                            return Err(invalid(format!(
                                "Config value append or subtract is not allowed for config key {key}: it is not a list"
                            )));
                        } else {
                            let current = configs
                                .get(key)
                                .cloned()
                                .unwrap_or_else(|| d.default.to_string());
                            let mut items: Vec<String> =
                                current.split(',').map(|s| s.trim().to_string()).collect();
                            for item in value.split(',').map(str::trim) {
                                if *op == OP_APPEND {
                                    if !items.iter().any(|i| i == item) {
                                        items.push(item.to_string());
                                    }
                                } else {
                                    items.retain(|i| i != item);
                                }
                            }
                            items.retain(|i| !i.is_empty());
                            items.join(",")
                        };
                        configs.insert(key.clone(), check_value(key, &new).map_err(invalid)?);
                    }
                    other => {
                        return Err((
                            code::INVALID_REQUEST,
                            format!("unknown config operation {other} for {key}"),
                        ))
                    }
                }
            }
            check_combination(&configs).map_err(invalid)?;
            configs
        }
    };
    let records = config_records(&change.topic, &topic.configs, &configs);
    if !validate_only && !records.is_empty() {
        draft
            .push_all(records)
            .map_err(|e| (code::UNKNOWN_SERVER_ERROR, e.to_string()))?;
        tracing::info!(topic = %change.topic, "topic configs changed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use millrace_replication::metadata::TopicId;
    use millrace_storage::sim::SimDisk;
    use std::path::Path;

    fn controller(disk: &SimDisk) -> Controller {
        let disk = BrokerDisk::Sim(disk.clone());
        let boot = block_on(boot::load(&disk, Path::new("/data"), 0, 2, 0)).unwrap();
        let view = MetadataImage::new(
            1,
            boot.cluster_id,
            Arc::new(boot.cluster),
            Arc::new(boot.placement),
        );
        Controller {
            turn: Turn::new(),
            log: boot.log,
            next_producer_id: Cell::new(0),
            current: RefCell::new(Arc::new(view)),
            fenced: RefCell::new(None),
        }
    }

    fn new_topic(c: &Controller, name: &str, id: u8) -> Draft {
        let mut draft = Draft::new(&c.current(), 2, 0);
        let records = topic_records(name, TopicId([id; 16]), 3, &BTreeMap::new(), 0);
        draft.push_all(records).unwrap();
        draft
    }

    #[test]
    fn a_flushed_change_is_there_after_a_crash() {
        let disk = SimDisk::new(4096);
        let c = controller(&disk);
        let draft = new_topic(&c, "a", 1);
        block_on(c.append_and_flush(&draft.records, 0)).unwrap();
        assert!(c.fenced.borrow().is_none());
        drop(c);
        disk.crash(11);
        let c = controller(&disk);
        let a = c.current().topics["a"].clone();
        assert_eq!((a.partitions, a.topic_id), (3, TopicId([1; 16])));
        // The next change lands right after the replayed records.
        let expected = c.current().cluster.last_applied_offset() + 1;
        let draft = new_topic(&c, "b", 2);
        block_on(c.append_and_flush(&draft.records, expected)).unwrap();
    }

    #[test]
    fn a_failed_flush_fences_the_controller_and_a_restart_sees_all_or_nothing() {
        for seed in 0..8 {
            let disk = SimDisk::new(4096);
            let c = controller(&disk);
            let draft = new_topic(&c, "a", 1);
            disk.fail_next_syncs(1);
            assert!(block_on(c.append_and_flush(&draft.records, 0)).is_err());
            assert!(c.fenced.borrow().is_some(), "seed {seed}");
            assert!(c.current().topics.is_empty(), "the view did not change");
            drop(c);
            disk.crash(seed);
            let c = controller(&disk);
            let topics = &c.current().topics;
            assert!(
                topics.is_empty() || topics["a"].partitions == 3,
                "seed {seed}: a batch is never half applied"
            );
        }
    }
}
