//! The metadata writer, on [`Shard::controller_shard`]: creates, deletes and grows topics and
//! hands out producer ids. Each change is applied to a copy of the image, persisted (atomic
//! rename, fsync'd), then sent to every shard; the request is answered once every shard has
//! opened or deleted its logs, so a client that sees success can use the topic at once.
//! Changes are serialised.
//!
//! Each operation is a typed [`Call`] ([`CreateTopics`], [`DeleteTopics`],
//! [`CreatePartitions`], [`AlterConfigs`], [`AllocateProducerId`]) that handlers send to the
//! controller's shard with [`Shard::call`].

use crate::errors::code;
use crate::mesh::Call;
use crate::metadata::{
    least_loaded, valid_topic_name, MetadataImage, TopicMeta, PRODUCER_ID_BLOCK,
};
use crate::shard::{ApplyMetadata, Shard};
use millrace_shard::sync::Turn;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// The writer's own state.
pub struct Controller {
    turn: Turn,
    next_producer_id: Cell<i64>,
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

impl Call for CreateTopics {
    type Reply = Vec<TopicOutcome>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |image: &mut MetadataImage, _: &Controller| {
            let topics = self.topics.iter();
            topics
                .map(|t| create_topic(&shard, image, t, self.validate_only))
                .collect()
        };
        change_metadata(&shard, change, failed_topics).await
    }
}

impl Call for DeleteTopics {
    type Reply = Vec<TopicOutcome>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |image: &mut MetadataImage, _: &Controller| {
            self.0.iter().map(|n| delete_topic(image, n)).collect()
        };
        change_metadata(&shard, change, failed_topics).await
    }
}

impl Call for CreatePartitions {
    type Reply = Vec<TopicOutcome>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |image: &mut MetadataImage, _: &Controller| {
            let topics = self.topics.iter();
            topics
                .map(|(n, count)| create_partitions(&shard, image, n, *count, self.validate_only))
                .collect()
        };
        change_metadata(&shard, change, failed_topics).await
    }
}

impl Call for AlterConfigs {
    type Reply = Vec<(i16, Option<String>)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |image: &mut MetadataImage, _: &Controller| {
            let changes = self.changes.iter();
            changes
                .map(|c| match alter_configs(image, c, self.validate_only) {
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

impl Call for AllocateProducerId {
    type Reply = Result<i64, String>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |image: &mut MetadataImage, controller: &Controller| {
            let id = controller.next_producer_id.get();
            controller.next_producer_id.set(id + 1);
            if id >= image.producer_id_block_end {
                image.producer_id_block_end = id + PRODUCER_ID_BLOCK;
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
    /// The writer for a broker starting with `image`. Ids below the persisted block end may
    /// have been handed out before a crash, so allocation starts there.
    pub fn new(image: &MetadataImage) -> Self {
        Controller {
            turn: Turn::new(),
            next_producer_id: Cell::new(image.producer_id_block_end),
        }
    }
}

/// Runs one change on the writer: applies `change` to a copy of the image and, if the image
/// changed, persists and publishes it before answering; if that fails, `failed` turns the
/// answer into errors. Only the controller's shard has a writer; anywhere else every answer
/// fails.
async fn change_metadata<R>(
    shard: &Rc<Shard>,
    change: impl FnOnce(&mut MetadataImage, &Controller) -> R,
    failed: impl FnOnce(R, &str) -> R,
) -> R {
    let Some(controller) = shard.controller.as_ref() else {
        let mut image = (*shard.image()).clone();
        let stand_in = Controller::new(&image);
        let reply = change(&mut image, &stand_in);
        return failed(reply, "not the metadata writer");
    };
    let _turn = controller.turn.lock().await;
    let mut image = (*shard.image()).clone();
    let reply = change(&mut image, controller);
    if image != **shard.metadata.borrow() {
        image.version += 1;
        if let Err(e) = publish(shard, image).await {
            tracing::error!(error = %e, "publishing metadata failed");
            return failed(reply, &e);
        }
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

/// Persists `image` and has every shard apply it.
async fn publish(shard: &Rc<Shard>, image: MetadataImage) -> Result<(), String> {
    let path = crate::server::metadata_path(&shard.config.data_dir);
    crate::server::write_atomic(&path, &image.encode())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    let image = Arc::new(image);
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
    image: &mut MetadataImage,
    t: &NewTopic,
    validate_only: bool,
) -> TopicOutcome {
    if let Err(why) = valid_topic_name(&t.name) {
        return outcome(&t.name, code::INVALID_TOPIC_EXCEPTION, Some(why.into()));
    }
    if image.topics.contains_key(&t.name) || crate::metadata::is_internal(&t.name) {
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
    let mut load = image.load_per_shard(shard.shards);
    let mut shards = Vec::with_capacity(partitions as usize);
    for _ in 0..partitions {
        let s = least_loaded(&load);
        load[s] += 1;
        shards.push(s);
    }
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
        let meta = TopicMeta {
            name: t.name.clone(),
            id,
            shards,
            configs,
        };
        image.topics.insert(t.name.clone(), Arc::new(meta));
        tracing::info!(topic = %t.name, partitions, "created topic");
    }
    result
}

fn delete_topic(image: &mut MetadataImage, name: &str) -> TopicOutcome {
    if crate::metadata::is_internal(name) {
        return outcome(
            name,
            code::INVALID_TOPIC_EXCEPTION,
            Some(format!("internal topic {name} cannot be deleted")),
        );
    }
    match image.topics.remove(name) {
        Some(t) => {
            let mut o = outcome(name, code::NONE, None);
            o.id = t.id;
            tracing::info!(topic = %name, "deleted topic");
            o
        }
        None => outcome(
            name,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            Some("This server does not host this topic.".into()),
        ),
    }
}

fn create_partitions(
    shard: &Shard,
    image: &mut MetadataImage,
    name: &str,
    count: i32,
    validate_only: bool,
) -> TopicOutcome {
    let mut load = image.load_per_shard(shard.shards);
    let Some(topic) = image.topics.get_mut(name) else {
        return outcome(
            name,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            Some("This server does not host this topic.".into()),
        );
    };
    let current = topic.shards.len() as i32;
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
        let t = Arc::make_mut(topic);
        for _ in current..count {
            let s = least_loaded(&load);
            load[s] += 1;
            t.shards.push(s);
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

/// Applies one topic's config change to `image` (unless `validate_only`). All or nothing: the
/// topic's overrides change only if every operation and the result are valid.
fn alter_configs(
    image: &mut MetadataImage,
    change: &TopicConfigChange,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    use crate::topic_config::{check_combination, check_value, def, Kind};
    let invalid = |m: String| (code::INVALID_CONFIG, m);
    let Some(topic) = image.topics.get_mut(&change.topic) else {
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
    if !validate_only && configs != topic.configs {
        Arc::make_mut(topic).configs = configs;
        tracing::info!(topic = %change.topic, "topic configs changed");
    }
    Ok(())
}
