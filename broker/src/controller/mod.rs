//! The metadata writer, on [`Shard::controller_shard`]: creates, deletes and grows topics,
//! changes their configs and hands out producer ids. Changes are serialised. Each change:
//!
//! 1. is worked out as records in a [`Draft`] (applied to a copy of the image as they are
//!    made, so later checks of the same request see them); a `validate_only` request or one
//!    that changes nothing stops here;
//! 2. is proposed to the controller quorum as one batch (`crate::quorum`, raft-rs over the
//!    metadata log) and waits until Raft commits it: on a lone voter once it is durable
//!    (appended and fsynced), with peers once a majority holds it;
//! 3. is applied, like every committed batch, by [`Controller::apply`]: the records become
//!    the controller's view, new partitions get a shard (the least loaded), the placement
//!    table is written if it changed;
//! 4. is published to every shard ([`ApplyMetadata`]); the request is answered once each
//!    has opened or deleted its logs, so a client that sees success can use the topic at once.
//!
//! The view changes only by applying committed batches, in log order, whoever proposed them.
//! If persisting fails the metadata log is in an unknown state: the quorum's driver stops and
//! every later change is refused until the broker restarts (a later flush would otherwise
//! make an unapplied tail durable behind the view's back). At restart, recovery keeps the
//! whole batches that reached the disk and the quorum commits them again, so a change
//! answered with this error may be there after a restart, as after a Kafka request timeout.
//! If step 3's placement write or step 4 fails, the records are committed: the view
//! advances, the answer is an error saying so.
//!
//! Each operation is a typed [`Call`] ([`CreateTopics`], [`DeleteTopics`],
//! [`CreatePartitions`], [`AlterConfigs`]) that handlers send to the controller's shard with
//! [`Shard::call`]. Only the active controller decides, and only once it has applied every
//! batch committed before its term ([`Controller::ready_to_lead`]); any other node answers
//! NOT_CONTROLLER (the client listener forwards changes to the active controller first,
//! [`lifecycle::Forward`]). The broker side of the cluster (registration, heartbeats,
//! producer-id blocks) is in [`lifecycle`], the controller's answers to it in [`brokers`].

pub mod acls;
pub mod brokers;
pub mod elections;
pub mod lifecycle;
pub mod observer;
pub mod quotas;
pub mod scram;
mod snapshots;

pub use lifecycle::AllocateProducerId;

use crate::errors::code;
use crate::mesh::Call;
use crate::metadata::boot;
use crate::metadata::Placement;
use crate::metadata::{
    config_records, partition_records, topic_id_of, topic_records, valid_topic_name, Draft,
    MetadataImage, SHARE_STATE_TOPIC,
};
use crate::quorum::{raft_id, Driver, ProposeError};
use crate::raft_transport::{LinkTiming, RaftTransport};
use crate::shard::{ApplyMetadata, Shard};
use millrace_replication::metadata::control;
use millrace_replication::metadata::placement;
use millrace_replication::metadata::{
    ClusterImage, ConfigResourceType, MetadataRecord, MetadataSnapshot, RemoveTopicRecord, TopicId,
};
use millrace_replication::quorum::{CommittedBatch, QuorumConfig};
use millrace_shard::sync::Turn;
use observer::{Member, ObserverMember};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// The writer's own state. Lives on the controller's shard.
pub struct Controller {
    turn: Turn,
    /// The Raft node that commits the records, or on a broker-only node the observer that
    /// fetches them.
    driver: Member,
    /// The view as of the last applied batch (shards get copies of it).
    current: RefCell<Arc<MetadataImage>>,
    /// The term of the last batch applied to `current`.
    applied_term: Cell<i32>,
    /// Broker sessions (meaningful while this node is the active controller).
    sessions: brokers::Sessions,
    /// This node is the only voter.
    lone: bool,
    /// When to write the next metadata snapshot.
    snapshots: snapshots::Snapshots,
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
    /// One change per topic or group.
    pub changes: Vec<ConfigChange>,
    /// Check only.
    pub validate_only: bool,
}

/// The quorum's state on this node, for DescribeQuorum; `None` before start-up ends.
pub struct DescribeQuorum;

impl Call<Shard> for DescribeQuorum {
    type Reply = Option<crate::quorum::QuorumStatus>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let controller = shard.subsystems.get::<Controller>()?;
        Some(controller.driver.status())
    }
}

/// A Raft message from another controller, for this node's quorum. Ignored where no quorum
/// runs (before start-up ends).
pub struct StepRaft(pub millrace_replication::quorum::Message);

impl Call<Shard> for StepRaft {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>) {
        if let Some(controller) = shard.subsystems.get::<Controller>() {
            controller.driver.step(self.0);
        }
    }
}

impl Call<Shard> for CreateTopics {
    type Reply = Vec<TopicOutcome>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft| {
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
        let change = |draft: &mut Draft| self.0.iter().map(|n| delete_topic(draft, n)).collect();
        change_metadata(&shard, change, failed_topics).await
    }
}

impl Call<Shard> for CreatePartitions {
    type Reply = Vec<TopicOutcome>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let change = |draft: &mut Draft| {
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
        let change = |draft: &mut Draft| {
            let changes = self.changes.iter();
            changes
                .map(
                    |c| match alter_configs(draft, &shard.config, c, self.validate_only) {
                        Ok(()) => (code::NONE, None),
                        Err((code, message)) => (code, Some(message)),
                    },
                )
                .collect()
        };
        let failed = |mut results: Self::Reply, error_code: i16, error: &str| {
            for r in results.iter_mut().filter(|r| r.0 == code::NONE) {
                *r = (error_code, Some(failure_message(error_code, error)));
            }
            results
        };
        change_metadata(&shard, change, failed).await
    }
}

/// The config changes of one resource.
#[derive(Debug, Clone)]
pub struct ConfigChange {
    /// Whose configs.
    pub resource: ConfigResource,
    /// What to do.
    pub ops: ConfigOps,
}

/// A resource whose configs clients change (the broker's own are static).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    /// A topic, by name; it must exist.
    Topic(String),
    /// A consumer, share or streams group, by id; it need not exist (Kafka's GROUP).
    Group(String),
}

/// AlterConfigs replaces a resource's whole set of overrides; IncrementalAlterConfigs edits it.
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

    /// The metadata log this node holds (simulation tests read its snapshots).
    #[cfg(test)]
    pub fn log_for_tests(&self) -> Rc<crate::quorum::MetaLog> {
        self.driver.log()
    }

    /// True when this node is the active controller and has applied every batch committed
    /// before its term (its term's first batch is applied): only then may it decide. A
    /// decision over an older view could undo a committed change or hand out a producer-id
    /// block twice.
    pub fn ready_to_lead(&self) -> bool {
        self.driver
            .leading_term()
            .is_some_and(|term| u64::try_from(self.applied_term.get()) == Ok(term))
    }

    /// Step 2 of the module doc: proposes the draft's records and waits until they are
    /// committed and applied ([`Controller::apply`] has then published them).
    async fn commit(&self, draft: Draft) -> Result<(), ProposeError> {
        self.driver.propose(draft.records).await.map(|_| ())
    }

    /// Steps 3-4 of the module doc for one committed batch: the records become the view,
    /// new partitions get a shard, the placement table is written if it changed, every shard
    /// opens or deletes its logs. A batch the view already holds (replayed at start) is
    /// skipped. A committed record that does not apply is a damaged or foreign log: an error.
    async fn apply(&self, shard: &Rc<Shard>, batch: &CommittedBatch) -> Result<(), String> {
        self.applied_term.set(batch.term);
        let current = self.current();
        if batch.base_offset <= current.cluster.last_applied_offset() {
            return Ok(());
        }
        let mut cluster = (*current.cluster).clone();
        let mut placement = (*current.placement).clone();
        for entry in batch.log_entries() {
            cluster.apply(&entry.record, entry.offset).map_err(|e| {
                format!(
                    "committed record at offset {} does not apply: {e}",
                    entry.offset
                )
            })?;
            placement.follow(&entry.record, shard.shards, shard.config.node_id);
        }
        let placement_changed = placement != *current.placement;
        self.publish_view(shard, cluster, placement, placement_changed)
            .await?;
        let image = self.current().cluster.clone();
        let log = self.driver.log();
        if let Some(written) = self.snapshots.after_apply(&log, batch, &image).await {
            self.driver.after_snapshot(written).await;
        }
        Ok(())
    }

    /// A leader's snapshot replaced this node's metadata log (it was behind the leader's log
    /// start): its image becomes the view, as a rebuild from the log would.
    pub(crate) async fn install_snapshot(
        &self,
        shard: &Rc<Shard>,
        snapshot: MetadataSnapshot,
    ) -> Result<(), String> {
        tracing::info!(
            end_offset = snapshot.id().end_offset,
            index = snapshot.index,
            "installed the active controller's metadata snapshot"
        );
        self.applied_term
            .set(i32::try_from(snapshot.term).unwrap_or(i32::MAX));
        let mut placement = (*self.current().placement).clone();
        placement.reconcile(&snapshot.image, shard.shards, shard.config.node_id);
        self.publish_view(shard, snapshot.image, placement, true)
            .await
    }

    /// Makes a new view current, writes the placement table when `write_placement`, and
    /// publishes the view to every shard.
    async fn publish_view(
        &self,
        shard: &Rc<Shard>,
        cluster: ClusterImage,
        placement: Placement,
        write_placement: bool,
    ) -> Result<(), String> {
        let current = self.current();
        let image = Arc::new(MetadataImage::new(
            current.version + 1,
            current.cluster_id.clone(),
            Arc::new(cluster),
            Arc::new(placement),
        ));
        *self.current.borrow_mut() = image.clone();
        if write_placement {
            let path = boot::placement_path(&shard.config.data_dir);
            boot::write(&shard.disk, &path, &image.placement.encode())
                .await
                .map_err(|e| format!("committed, but {e}"))?;
        }
        publish(shard, image)
            .await
            .map_err(|e| format!("committed, but {e}"))
    }
}

/// The quorum settings of this node: its voters from `controller.quorum.voters` (itself
/// alone without `process.roles`), timeouts in 20 ms ticks (500 ms for a lone voter).
pub fn quorum_config(config: &crate::config::Config) -> QuorumConfig {
    let c = &config.cluster;
    let voters: Vec<u64> = c.voters.iter().map(|v| raft_id(v.id)).collect();
    let node = raft_id(config.node_id);
    let mut q = QuorumConfig::new(node, &voters);
    // 20 ms ticks: a follower notices a lost leader within a tick of its fetch timeout, and
    // the randomised election timers of two followers (spread over the election timeout) fall
    // on one of fifty ticks rather than ten, so they rarely start an election together.
    // A lone voter campaigns at start and has nobody to hear from or to beat in an election
    // (the voters are fixed): its ticks time nothing, and at 20 ms they were the largest
    // source of an idle broker's wake-ups (docs/BENCHMARKS.md).
    let tick_ms = if voters == [node] { 500 } else { 20u64 };
    q.tick_ms = tick_ms;
    // The leader's heartbeat every 100 ms, as before.
    q.heartbeat_tick = 5;
    // Kafka's fetch timeout is how long a follower waits for its leader before it stands for
    // election; its election timeout bounds the random extra a candidate waits.
    let ticks = |ms: i64| (u64::try_from(ms).unwrap_or(0) / tick_ms).max(1) as usize;
    q.election_tick = ticks(c.timings.fetch_timeout_ms).max(q.heartbeat_tick + 1);
    q.max_election_tick = q.election_tick + ticks(c.timings.election_timeout_ms);
    q
}

fn ms(ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The cluster id an empty data directory takes. A lone voter makes one up. Several voters
/// must agree without a format step, so theirs is derived from the quorum they were given
/// (`controller.quorum.voters`, ids and addresses, sorted): every node of one cluster,
/// and a node that rejoins with a wiped directory, gets the same id, and a data directory
/// from a cluster with other voters is refused as another cluster's. Kafka's
/// `kafka-storage format --cluster-id` has the same effect, by hand.
fn new_cluster_id(config: &crate::config::Config) -> String {
    let voters = &config.cluster.voters;
    if voters.len() == 1 && voters[0].id == config.node_id {
        return uuid::Uuid::new_v4().simple().to_string();
    }
    let mut sorted: Vec<String> = voters
        .iter()
        .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
        .collect();
    sorted.sort();
    let name = format!("millrace-cluster:{}", sorted.join(","));
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes())
        .simple()
        .to_string()
}

/// Every voter's controller listener by Raft id, this node's included (host names resolved
/// once, at start).
fn voter_addresses(
    config: &crate::config::Config,
) -> Result<Vec<(u64, std::net::SocketAddr)>, String> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for v in &config.cluster.voters {
        if v.id == config.node_id {
            // This node's own listener: known without a lookup (a lone voter may have none).
            if let Some(addr) = config.cluster.controller_listen {
                out.push((raft_id(v.id), addr));
            }
            continue;
        }
        let addr = (v.host.as_str(), v.port)
            .to_socket_addrs()
            .map_err(|e| format!("controller.quorum.voters: resolving {}: {e}", v.host))?
            .next()
            .ok_or_else(|| format!("controller.quorum.voters: {} has no address", v.host))?;
        crate::dial::name_address(addr, &v.host);
        out.push((raft_id(v.id), addr));
    }
    Ok(out)
}

/// Start-up on the controller's shard: opens the metadata and its quorum (upgrading an old
/// data directory), starts the quorum's driver and publishes the first view to every shard,
/// which opens their partitions. A lone voter then leads at once: it registers its broker in
/// process and creates `__consumer_offsets` if missing (as records) before start-up ends.
/// Among several voters the broker registers with whichever controller is elected
/// ([`lifecycle::run`]), and the active controller creates the offsets topic
/// ([`brokers::watch`]).
pub async fn start(shard: &Rc<Shard>) -> Result<(), String> {
    assert_eq!(shard.id, Shard::controller_shard());
    let config = &shard.config;
    let now_ms = millrace_shard::time::now_ms();
    let quorum_config = quorum_config(config);
    let voter = quorum_config.voters.contains(&quorum_config.node_id);
    let boot = boot::load(
        &shard.disk,
        &config.data_dir,
        config.node_id,
        shard.shards,
        voter.then_some(&quorum_config),
        now_ms,
        new_cluster_id(config),
    )
    .await?;
    let view = MetadataImage::new(
        0,
        boot.cluster_id,
        Arc::new(ClusterImage::default()),
        Arc::new(Placement::default()),
    );
    let lone = quorum_config.voters == [quorum_config.node_id];
    let (member, driver) = match boot.quorum {
        Some(quorum) => {
            let driver = Driver::new(
                quorum,
                Rc::new(boot.log),
                std::time::Duration::from_millis(quorum_config.tick_ms),
            );
            (Member::voter(driver.clone()), Some(driver))
        }
        None => (
            Member::Observer(ObserverMember::open(boot.log, now_ms).await?),
            None,
        ),
    };
    let observer = match &member {
        Member::Observer(o) => Some(o.clone()),
        Member::Voter(..) => None,
    };
    let controller = Controller {
        turn: Turn::new(),
        driver: member,
        current: RefCell::new(Arc::new(view)),
        applied_term: Cell::new(0),
        sessions: brokers::Sessions::default(),
        lone,
        snapshots: snapshots::Snapshots::new(config, boot.bytes_since_snapshot, now_ms),
    };
    let Ok(controller) = shard.subsystems.install(controller) else {
        return Err("the controller was started twice".into());
    };
    let voters = voter_addresses(config)?;
    let Ok(lifecycle) = shard.subsystems.install(lifecycle::Lifecycle::new(
        shard,
        voters
            .iter()
            .map(|(id, addr)| (crate::quorum::node_id_of(*id), *addr))
            .collect(),
    )) else {
        return Err("the controller was started twice".into());
    };
    let turn = controller.turn.lock().await;
    controller
        .publish_view(shard, boot.cluster, boot.placement, boot.placement_dirty)
        .await?;
    let stopping = {
        let shard = shard.clone();
        move || shard.stopping.get()
    };
    let Some(driver) = driver else {
        // A broker-only node: fetch the metadata, register as a broker.
        drop(turn);
        let observer = observer.expect("no driver: an observer");
        let voters = voters
            .iter()
            .map(|(id, a)| (crate::quorum::node_id_of(*id), *a));
        millrace_shard::spawn_detached(observer::run(
            shard.clone(),
            controller.clone(),
            observer,
            voters.collect(),
        ));
        millrace_shard::spawn_detached(lifecycle::run(
            shard.clone(),
            controller.clone(),
            lifecycle,
        ));
        return Ok(());
    };
    millrace_shard::spawn_detached(driver.clone().run_ticks(stopping.clone()));
    {
        let shard = shard.clone();
        let controller = controller.clone();
        let (shard2, controller2) = (shard.clone(), controller.clone());
        let install = async move |snapshot: MetadataSnapshot| {
            controller2.install_snapshot(&shard2, snapshot).await
        };
        let apply = async move |batch: &CommittedBatch| controller.apply(&shard, batch).await;
        let transport = RaftTransport::start(
            quorum_config.node_id,
            &voters,
            LinkTiming {
                connect_timeout: ms(config.cluster.timings.request_timeout_ms),
                backoff: ms(config.cluster.timings.retry_backoff_ms),
            },
            stopping.clone(),
        );
        millrace_shard::spawn_detached(driver.clone().run(
            move |messages| transport.send(messages),
            install,
            apply,
            stopping,
        ));
    }
    if !lone || !config.cluster.is_broker() {
        drop(turn);
        if config.cluster.is_broker() {
            millrace_shard::spawn_detached(lifecycle::run(
                shard.clone(),
                controller.clone(),
                lifecycle,
            ));
        }
        millrace_shard::spawn_detached(brokers::watch(shard.clone(), controller.clone()));
        if lone {
            // A lone controller-only voter: it leads at once; brokers register with it.
            driver.campaign();
        }
        return Ok(());
    }
    driver.campaign();
    let epoch = register_local_broker(shard, &controller, lifecycle.incarnation()).await?;
    lifecycle.set_epoch(epoch);
    commit_offsets_topic(shard, &controller).await
}

/// Registers this node's broker with its own controller, then unfences it: on a lone voter,
/// Kafka's BrokerRegistration and the first heartbeat that finds the broker caught up (its
/// controller is itself). A registration starts fenced and moves leadership off the
/// broker's partitions; unfencing gives it back under a newer epoch, as after a Kafka broker
/// restart. The broker epoch is the offset of its registration record; it is returned.
async fn register_local_broker(
    shard: &Rc<Shard>,
    controller: &Controller,
    incarnation: [u8; 16],
) -> Result<i64, String> {
    let config = &shard.config;
    let request = lifecycle::registration(shard, incarnation);
    let current = controller.current();
    let offset = controller
        .driver
        .next_offset()
        .max(current.cluster.last_applied_offset() + 1);
    let records =
        control::register_broker(&current.cluster, &request, offset, false, min_isr(shard))
            .map_err(|e| format!("registering broker {}: {e}", config.node_id))?;
    let mut draft = Draft::new(&current, shard.shards, config.node_id);
    draft.push_all(records).map_err(|e| e.to_string())?;
    controller.commit(draft).await.map_err(|e| e.to_string())?;
    let current = controller.current();
    let records = control::unfence_broker(&current.cluster, config.node_id, min_isr(shard))
        .map_err(|e| format!("unfencing broker {}: {e}", config.node_id))?;
    if !records.is_empty() {
        let mut draft = Draft::new(&current, shard.shards, config.node_id);
        draft.push_all(records).map_err(|e| e.to_string())?;
        controller.commit(draft).await.map_err(|e| e.to_string())?;
    }
    Ok(offset)
}

/// The `min.insync.replicas` this controller keeps ELRs with: the broker default of its
/// server.properties, overridden by a topic's or the cluster-level setting (KIP-966).
pub(crate) fn min_isr(shard: &Shard) -> control::MinIsr {
    let defaults = shard.config.topic_defaults.settings(&BTreeMap::new());
    control::MinIsr {
        default: defaults.min_insync_replicas,
    }
}

/// Creates `__consumer_offsets` if the view lacks it, or adds the internal configs an older
/// view lacks, committing the records (none if nothing is missing). The caller holds the turn.
async fn commit_offsets_topic(shard: &Rc<Shard>, controller: &Controller) -> Result<(), String> {
    let mut draft = Draft::new(&controller.current(), shard.shards, shard.config.node_id);
    let shape = (
        shard.config.offsets_topic_partitions,
        shard
            .config
            .cluster
            .timings
            .offsets_topic_replication_factor,
    );
    ensure_offsets_topic(&mut draft, shape)?;
    let c = &shard.config;
    let txn_shape = (c.txn_topic_partitions, c.txn_topic_replication_factor);
    ensure_txn_topic(&mut draft, txn_shape, c.txn_topic_min_isr)?;
    if draft.records.is_empty() {
        return Ok(());
    }
    controller.commit(draft).await.map_err(|e| e.to_string())
}

/// Creates the offsets topic if the image lacks it, and adds the internal configs an older
/// image lacks (settings an operator altered since are kept). Its replication factor is
/// `offsets.topic.replication.factor` capped at the brokers able to take a replica, so a
/// cluster started with fewer brokers still gets its group coordinators (Kafka refuses to
/// create it until enough brokers registered; the issue asks for min(factor, brokers)).
fn ensure_offsets_topic(
    draft: &mut Draft,
    (partitions, replication_factor): (i32, i16),
) -> Result<(), String> {
    let name = crate::coordinator::OFFSETS_TOPIC;
    let wanted = crate::metadata::internal_topic_configs();
    let records = match draft.cluster.topic(name) {
        None => {
            let id = topic_id_of(&uuid::Uuid::new_v4());
            let usable = placement::usable_brokers(&draft.cluster).len();
            let rf = usable.clamp(1, usize::from(replication_factor.max(1) as u16)) as i16;
            new_topic_records(draft, name, id, (partitions, rf), &wanted)?
        }
        Some(t) => {
            let mut configs = t.configs.clone();
            for (k, v) in wanted {
                configs.entry(k).or_insert(v);
            }
            config_records(ConfigResourceType::Topic, name, &t.configs, &configs)
        }
    };
    draft
        .push_all(records)
        .map_err(|e| format!("creating {name}: {e}"))
}

/// Creates `__transaction_state` if the view lacks it, as the offsets topic (its replication
/// factor capped at the usable brokers), with `min.insync.replicas` set to
/// `transaction.state.log.min.isr` capped at that factor: Kafka keeps 2 and refuses
/// transactions on a single broker until an operator lowers it; here one broker works as is.
/// Kafka creates the topic at the first transactional FindCoordinator; here it is created
/// with the offsets topic, so no client waits for it.
fn ensure_txn_topic(
    draft: &mut Draft,
    (partitions, replication_factor): (i32, i16),
    min_isr: i32,
) -> Result<(), String> {
    let name = crate::metadata::TXN_TOPIC;
    if draft.cluster.topic(name).is_some() {
        return Ok(());
    }
    let id = topic_id_of(&uuid::Uuid::new_v4());
    let usable = placement::usable_brokers(&draft.cluster).len();
    let rf = usable.clamp(1, usize::from(replication_factor.max(1) as u16)) as i16;
    let mut configs = crate::metadata::internal_topic_configs();
    configs.insert(
        "min.insync.replicas".into(),
        min_isr.clamp(1, i32::from(rf)).to_string(),
    );
    let records = new_topic_records(draft, name, id, (partitions, rf), &configs)?;
    draft
        .push_all(records)
        .map_err(|e| format!("creating {name}: {e}"))
}

/// The CreateTopics version [`EnsureShareStateTopic`] forwards.
const CREATE_TOPICS_VERSION: i16 = 7;

/// Creates `__share_group_state` if the cluster lacks it; Ok once it exists. The share
/// coordinator asks on first need (a share partition's state read or written, a share
/// FindCoordinator), as Kafka creates the topic at the first share FindCoordinator, instead of
/// at start-up: its 50 partitions would otherwise be on every cluster, share groups or not. The
/// active (or lone) controller makes the change here; any other node sends it there as a
/// CreateTopics request ([`lifecycle::Forward`]), which creates this name with the internal
/// shape whatever the request asks ([`create_share_state_topic`]).
pub struct EnsureShareStateTopic;

impl Call<Shard> for EnsureShareStateTopic {
    type Reply = Result<(), String>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        if shard.image().topics.contains_key(SHARE_STATE_TOPIC) {
            return Ok(());
        }
        let forward = lifecycle::Forward {
            api_key: kafka_protocol::messages::ApiKey::CreateTopics as i16,
            api_version: CREATE_TOPICS_VERSION,
            body: create_share_state_topic_request()?,
            client_id: None,
            // The broker's own request: sent bare, as the cluster's internal traffic is.
            principal: String::new(),
            host: String::new(),
        };
        let (error_code, message) = match forward.run(shard.clone()).await {
            lifecycle::Forwarded::Answered(body) => first_topic_result(body)?,
            lifecycle::Forwarded::HandleHere => {
                let request = CreateTopics {
                    topics: vec![NewTopic {
                        name: SHARE_STATE_TOPIC.to_string(),
                        partitions: -1,
                        replication_factor: -1,
                        manual_assignment: false,
                        configs: Vec::new(),
                    }],
                    validate_only: false,
                };
                let outcome = request.run(shard.clone()).await.into_iter().next();
                outcome.map_or((code::UNKNOWN_SERVER_ERROR, None), |o| {
                    (o.error_code, o.error_message)
                })
            }
        };
        match error_code {
            code::NONE | code::TOPIC_ALREADY_EXISTS => Ok(()),
            _ => Err(format!(
                "creating {SHARE_STATE_TOPIC}: error {error_code} ({})",
                message.unwrap_or_default()
            )),
        }
    }
}

/// The CreateTopics body asking for `__share_group_state` (its shape is the controller's).
fn create_share_state_topic_request() -> Result<bytes::Bytes, String> {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(SHARE_STATE_TOPIC)))
            .with_num_partitions(-1)
            .with_replication_factor(-1)]);
    let mut body = bytes::BytesMut::new();
    request
        .encode(&mut body, CREATE_TOPICS_VERSION)
        .map_err(|e| format!("encoding CreateTopics: {e}"))?;
    Ok(body.freeze())
}

/// The error code and message of the first topic of a CreateTopics response body.
fn first_topic_result(mut body: bytes::Bytes) -> Result<(i16, Option<String>), String> {
    use kafka_protocol::messages::CreateTopicsResponse;
    use kafka_protocol::protocol::Decodable;
    let response = CreateTopicsResponse::decode(&mut body, CREATE_TOPICS_VERSION)
        .map_err(|e| format!("decoding the controller's CreateTopics answer: {e}"))?;
    let topic = response
        .topics
        .first()
        .ok_or("the controller answered CreateTopics without a topic")?;
    let message = topic.error_message.as_ref().map(|m| m.to_string());
    Ok((topic.error_code, message))
}

/// `__share_group_state` with the share coordinator's shape, whatever the request asked:
/// `share.coordinator.state.topic.num.partitions` partitions, its replication factor capped at
/// the usable brokers and `min.insync.replicas` capped at that factor, as for
/// `__transaction_state` (Kafka refuses to create it with fewer brokers than the factor).
fn create_share_state_topic(shard: &Shard, draft: &mut Draft, validate_only: bool) -> TopicOutcome {
    let keys = &shard.config.group;
    let partitions = keys.share_state_topic_num_partitions;
    let usable = placement::usable_brokers(&draft.cluster).len();
    let wanted_rf = usize::try_from(keys.share_state_topic_replication_factor.max(1)).unwrap_or(1);
    let rf = usable.clamp(1, wanted_rf) as i16;
    let mut configs = crate::metadata::share_state_topic_configs();
    let min_isr = keys.share_state_topic_min_isr.clamp(1, i32::from(rf));
    configs.insert("min.insync.replicas".into(), min_isr.to_string());
    let id = uuid::Uuid::new_v4();
    if !validate_only {
        let shape = (partitions, rf);
        let records =
            match new_topic_records(draft, SHARE_STATE_TOPIC, topic_id_of(&id), shape, &configs) {
                Ok(records) => records,
                Err(e) => {
                    return outcome(SHARE_STATE_TOPIC, code::INVALID_REPLICATION_FACTOR, Some(e))
                }
            };
        if let Err(e) = draft.push_all(records) {
            let message = Some(e.to_string());
            return outcome(SHARE_STATE_TOPIC, code::UNKNOWN_SERVER_ERROR, message);
        }
        tracing::info!(topic = SHARE_STATE_TOPIC, partitions, rf, "created topic");
    }
    TopicOutcome {
        id,
        error_code: code::NONE,
        error_message: None,
        partitions,
        replication_factor: rf,
        configs,
    }
}

/// The error code and message a failed commit answers: NOT_CONTROLLER (retriable) when
/// leadership moved, UNKNOWN_SERVER_ERROR when the log could not take the change.
fn commit_error(e: ProposeError) -> brokers::Refusal {
    let error_code = match e {
        ProposeError::NotLeader(_) | ProposeError::Lost | ProposeError::Abandoned => {
            code::NOT_CONTROLLER
        }
        ProposeError::Stopped(_) | ProposeError::Refused(_) => code::UNKNOWN_SERVER_ERROR,
    };
    (error_code, e.to_string())
}

fn failure_message(error_code: i16, error: &str) -> String {
    if error_code == code::NOT_CONTROLLER {
        error.to_string()
    } else {
        format!("metadata could not be stored: {error}")
    }
}

/// Runs one change on the writer: works `change` out as records over the current view and,
/// if there are any, commits and publishes them before answering; if that fails, `failed`
/// turns the answer into errors (with the error code). Only the active controller decides:
/// anywhere else (or before start-up) every answer fails with NOT_CONTROLLER.
async fn change_metadata<R>(
    shard: &Rc<Shard>,
    change: impl FnOnce(&mut Draft) -> R,
    failed: impl FnOnce(R, i16, &str) -> R,
) -> R {
    let node_id = shard.config.node_id;
    let writer = shard.subsystems.get::<Controller>();
    let _turn = match &writer {
        Some(c) => Some(c.turn.lock().await),
        None => None,
    };
    let Some(controller) = writer.as_ref().filter(|c| c.ready_to_lead()) else {
        let mut draft = Draft::new(&shard.image(), shard.shards, node_id);
        let reply = change(&mut draft);
        return failed(
            reply,
            code::NOT_CONTROLLER,
            "this node is not the active controller",
        );
    };
    let mut draft = Draft::new(&controller.current(), shard.shards, node_id);
    let reply = change(&mut draft);
    if draft.records.is_empty() {
        return reply;
    }
    if let Err(e) = controller.commit(draft).await {
        tracing::warn!(error = %e, "committing metadata failed");
        let (error_code, message) = commit_error(e);
        return failed(reply, error_code, &message);
    }
    reply
}

fn failed_topics(mut topics: Vec<TopicOutcome>, error_code: i16, error: &str) -> Vec<TopicOutcome> {
    for t in topics.iter_mut().filter(|t| t.error_code == code::NONE) {
        t.error_code = error_code;
        t.error_message = Some(failure_message(error_code, error));
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
    if t.name == SHARE_STATE_TOPIC && draft.cluster.topic(&t.name).is_none() {
        return create_share_state_topic(shard, draft, validate_only);
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
    let usable = placement::usable_brokers(&draft.cluster).len().max(1);
    if rf < 1 || rf as usize > usable {
        return outcome(
            &t.name,
            code::INVALID_REPLICATION_FACTOR,
            Some(format!(
                "Replication factor: {rf} larger than available brokers: {usable}."
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
        replication_factor: rf,
        configs: configs.clone(),
    };
    if !validate_only {
        let placed = (partitions, rf);
        let records = match new_topic_records(draft, &t.name, topic_id_of(&id), placed, &configs) {
            Ok(records) => records,
            Err(e) => return outcome(&t.name, code::INVALID_REPLICATION_FACTOR, Some(e)),
        };
        if let Err(e) = draft.push_all(records) {
            return outcome(&t.name, code::UNKNOWN_SERVER_ERROR, Some(e.to_string()));
        }
        tracing::info!(topic = %t.name, partitions, "created topic");
    }
    result
}

/// Where the striped placement of a new topic's partitions starts: taken from its random id,
/// as Kafka starts from a random broker, so leaders of many topics spread.
fn start_index(topic_id: &TopicId) -> usize {
    usize::from(topic_id.0[0])
}

/// A new topic's records: its partitions placed over the usable (registered, unfenced)
/// brokers with `control::create_topic`, or on this node alone while none is registered (the
/// first start, before the broker's registration commits), then its configs.
fn new_topic_records(
    draft: &Draft,
    name: &str,
    topic_id: TopicId,
    (partitions, replication_factor): (i32, i16),
    configs: &BTreeMap<String, String>,
) -> Result<Vec<MetadataRecord>, String> {
    if placement::usable_brokers(&draft.cluster).is_empty() {
        return Ok(topic_records(
            name,
            topic_id,
            partitions,
            configs,
            draft.node_id,
        ));
    }
    let mut records = control::create_topic(
        &draft.cluster,
        name,
        topic_id,
        partitions,
        replication_factor,
        start_index(&topic_id),
    )
    .map_err(|e| e.to_string())?;
    records.extend(config_records(
        ConfigResourceType::Topic,
        name,
        &BTreeMap::new(),
        configs,
    ));
    Ok(records)
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
        let start = start_index(&topic_id);
        let records = if placement::usable_brokers(&draft.cluster).is_empty() {
            partition_records(topic_id, current..count, draft.node_id).collect()
        } else {
            match control::create_partitions(&draft.cluster, topic_id, count, start) {
                Ok(records) => records,
                Err(e) => {
                    return outcome(name, code::INVALID_REPLICATION_FACTOR, Some(e.to_string()))
                }
            }
        };
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

/// Adds one resource's config change to `draft` (unless `validate_only`). All or nothing:
/// the overrides change only if every operation and the result are valid.
fn alter_configs(
    draft: &mut Draft,
    config: &crate::config::Config,
    change: &ConfigChange,
    validate_only: bool,
) -> Result<(), (i16, String)> {
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
    let (resource_type, name, old, new) = match &change.resource {
        ConfigResource::Topic(topic) => {
            let Some(image) = draft.cluster.topic(topic) else {
                return Err((
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic {topic} does not exist."),
                ));
            };
            let new = topic_configs(&image.configs, &change.ops)?;
            (ConfigResourceType::Topic, topic, image.configs.clone(), new)
        }
        ConfigResource::Group(group) => {
            let old = draft.cluster.group_configs(group).cloned();
            let old = old.unwrap_or_default();
            let new = group_configs(group, &old, &change.ops, config)?;
            (ConfigResourceType::Group, group, old, new)
        }
    };
    let records = config_records(resource_type, name, &old, &new);
    if !validate_only && !records.is_empty() {
        draft
            .push_all(records)
            .map_err(|e| (code::UNKNOWN_SERVER_ERROR, e.to_string()))?;
        tracing::info!(resource = ?change.resource, "configs changed");
    }
    Ok(())
}

/// A group's overrides after `ops` (Kafka's GROUP resource): checked as a whole against the
/// broker's bounds (`crate::group_config::validate`). None of the group keys is a list, so
/// APPEND and SUBTRACT are refused, as Kafka refuses them.
fn group_configs(
    group: &str,
    old: &BTreeMap<String, String>,
    ops: &ConfigOps,
    config: &crate::config::Config,
) -> Result<BTreeMap<String, String>, (i16, String)> {
    if group.is_empty() {
        return Err((
            code::INVALID_REQUEST,
            "Default group resources are not allowed.".into(),
        ));
    }
    let null = |key: &str| {
        (
            code::INVALID_CONFIG,
            format!("Null value not supported for group config: {key}"),
        )
    };
    let mut configs = BTreeMap::new();
    match ops {
        ConfigOps::Replace(new) => {
            for (key, value) in new {
                let value = value.as_ref().ok_or_else(|| null(key))?;
                configs.insert(key.clone(), value.clone());
            }
        }
        ConfigOps::Incremental(ops) => {
            configs.clone_from(old);
            for (key, op, value) in ops {
                match *op {
                    OP_SET => {
                        let value = value.as_ref().ok_or_else(|| null(key))?;
                        configs.insert(key.clone(), value.clone());
                    }
                    OP_DELETE => {
                        configs.remove(key);
                    }
                    OP_APPEND | OP_SUBTRACT => {
                        let verb = if *op == OP_APPEND {
                            "APPEND"
                        } else {
                            "SUBTRACT"
                        };
                        return Err((
                            code::INVALID_CONFIG,
                            format!("Can't {verb} to key {key} because its type is not LIST."),
                        ));
                    }
                    other => {
                        return Err((
                            code::INVALID_REQUEST,
                            format!("unknown config operation {other} for {key}"),
                        ))
                    }
                }
            }
        }
    }
    crate::group_config::validate(&configs, config).map_err(|m| (code::INVALID_CONFIG, m))
}

/// A topic's overrides after `ops`, checked.
fn topic_configs(
    current: &BTreeMap<String, String>,
    ops: &ConfigOps,
) -> Result<BTreeMap<String, String>, (i16, String)> {
    use crate::topic_config::{check_combination, check_value, def, Kind};
    let invalid = |m: String| (code::INVALID_CONFIG, m);
    let configs = match ops {
        ConfigOps::Replace(new) => crate::topic_config::validate(new).map_err(invalid)?,
        ConfigOps::Incremental(ops) => {
            let mut configs = current.clone();
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
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::BrokerDisk;
    use millrace_replication::metadata::TopicId;
    use millrace_shard::Sim;
    use millrace_storage::sim::SimDisk;
    use std::path::Path;

    /// A quorum node with `config` over the metadata log on `disk`, and the image it replayed.
    fn open_driver(sim: &Sim, disk: &SimDisk, config: QuorumConfig) -> (Rc<Driver>, ClusterImage) {
        let disk = BrokerDisk::Sim(disk.clone());
        let boot = sim
            .block_on(boot::load(
                &disk,
                Path::new("/data"),
                0,
                2,
                Some(&config),
                0,
                "c".into(),
            ))
            .unwrap();
        let tick = std::time::Duration::from_millis(100);
        (
            Driver::new(boot.quorum.expect("a voter"), Rc::new(boot.log), tick),
            boot.cluster,
        )
    }

    /// A lone voter's quorum over the metadata log on `disk`, driven on `sim`; its committed
    /// batches are applied to the returned image.
    fn start(sim: &Sim, disk: &SimDisk) -> (Rc<Driver>, Rc<RefCell<ClusterImage>>) {
        let (driver, image) = open_driver(sim, disk, QuorumConfig::new(1, &[1]));
        let image = Rc::new(RefCell::new(image));
        let applied = image.clone();
        let apply = async move |batch: &CommittedBatch| {
            let mut image = applied.borrow_mut();
            if batch.base_offset <= image.last_applied_offset() {
                return Ok(());
            }
            for e in batch.log_entries() {
                image
                    .apply(&e.record, e.offset)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        };
        sim.spawn(driver.clone().run(
            |_| panic!("a lone voter sends nothing"),
            async |_| Err("a lone voter installs no snapshot".to_string()),
            apply,
            || false,
        ))
        .detach();
        driver.campaign();
        (driver, image)
    }

    /// Three voters in one simulation, their messages routed in memory; a voter in `cut`
    /// neither sends nor receives.
    fn three_voters(sim: &Sim, cut: Rc<RefCell<Vec<u64>>>) -> Vec<Rc<Driver>> {
        let drivers: Rc<RefCell<Vec<Rc<Driver>>>> = Rc::default();
        for id in 1..=3u64 {
            let config = QuorumConfig::new(id, &[1, 2, 3]).deterministic();
            let (driver, _) = open_driver(sim, &SimDisk::new(4096), config);
            let (net, cut) = (drivers.clone(), cut.clone());
            let send = move |messages: Vec<millrace_replication::quorum::Message>| {
                for m in messages {
                    let cut = cut.borrow();
                    if cut.contains(&m.from) || cut.contains(&m.to) {
                        continue;
                    }
                    let target = net.borrow()[(m.to - 1) as usize].clone();
                    target.step(m);
                }
            };
            sim.spawn(driver.clone().run(
                send,
                async |_| Ok(()),
                async |_: &CommittedBatch| Ok(()),
                || false,
            ))
            .detach();
            sim.spawn(driver.clone().run_ticks(|| false)).detach();
            drivers.borrow_mut().push(driver);
        }
        let out = drivers.borrow().clone();
        out
    }

    #[test]
    fn a_leader_that_loses_its_majority_answers_its_waiting_proposal() {
        let sim = Sim::new(3);
        let cut = Rc::new(RefCell::new(Vec::new()));
        let drivers = three_voters(&sim, cut.clone());
        drivers[0].campaign();
        sim.run_for(std::time::Duration::from_secs(2));
        assert!(drivers[0].leading_term().is_some(), "node 1 leads");
        sim.block_on(drivers[0].propose(new_topic("a", 1))).unwrap();
        // The two followers go away: the change cannot commit, and the leader, which checks
        // that a majority still follows it, steps down and answers instead of waiting forever.
        cut.borrow_mut().extend([2, 3]);
        let answer = sim.block_on(millrace_shard::time::timeout(
            std::time::Duration::from_secs(60),
            drivers[0].propose(new_topic("b", 2)),
        ));
        assert_eq!(
            answer,
            Some(Err(crate::quorum::ProposeError::Abandoned)),
            "answered (None: still waiting after a minute)"
        );
        assert!(drivers[0].leading_term().is_none());
    }

    fn new_topic(name: &str, id: u8) -> Vec<MetadataRecord> {
        topic_records(name, TopicId([id; 16]), 3, &BTreeMap::new(), 0)
    }

    #[test]
    fn a_committed_change_is_applied_and_there_after_a_crash() {
        let sim = Sim::new(1);
        let disk = SimDisk::new(4096);
        let (driver, image) = start(&sim, &disk);
        let batch = sim.block_on(driver.propose(new_topic("a", 1))).unwrap();
        assert_eq!(
            batch.records.len(),
            4,
            "the topic record and three partitions"
        );
        assert!(
            image.borrow().topic("a").is_some(),
            "applied before the answer"
        );
        sim.crash();
        disk.crash(11);
        let sim = Sim::new(2);
        let (driver, image) = start(&sim, &disk);
        let a = image.borrow().topic("a").cloned().expect("replayed");
        assert_eq!(a.id, TopicId([1; 16]));
        // The next change lands after the replayed records and the new leader's entry.
        let batch = sim.block_on(driver.propose(new_topic("b", 2))).unwrap();
        assert!(batch.base_offset > 4, "{batch:?}");
        assert!(image.borrow().topic("b").is_some());
    }

    #[test]
    fn a_failed_flush_stops_the_quorum_and_a_restart_sees_all_or_nothing() {
        for seed in 0..8 {
            let sim = Sim::new(seed);
            let disk = SimDisk::new(4096);
            let (driver, image) = start(&sim, &disk);
            sim.block_on(driver.propose(vec![MetadataRecord::NoOp]))
                .unwrap();
            disk.fail_next_syncs(1);
            let failed = sim.block_on(driver.propose(new_topic("a", 1)));
            assert!(
                matches!(failed, Err(crate::quorum::ProposeError::Stopped(_))),
                "seed {seed}: {failed:?}"
            );
            assert!(image.borrow().topic("a").is_none(), "not applied");
            let later = sim.block_on(driver.propose(vec![MetadataRecord::NoOp]));
            assert!(matches!(
                later,
                Err(crate::quorum::ProposeError::Stopped(_))
            ));
            sim.crash();
            disk.crash(seed);
            let sim = Sim::new(seed + 100);
            let (driver, image) = start(&sim, &disk);
            sim.block_on(driver.propose(vec![MetadataRecord::NoOp]))
                .unwrap();
            let image = image.borrow();
            assert!(
                image
                    .topic("a")
                    .is_none_or(|a| image.partition(&a.id, 2).is_some()),
                "seed {seed}: a batch is never half applied"
            );
        }
    }

    #[test]
    fn a_lone_voter_ticks_slowly_and_a_quorum_of_three_every_20_ms() {
        let lone = crate::config::tests::apply("").unwrap();
        let q = quorum_config(&lone);
        assert_eq!(q.voters, [q.node_id]);
        assert_eq!(q.tick_ms, 500);
        q.validate().unwrap();
        let three = crate::config::tests::apply(
            "process.roles=broker,controller\nnode.id=1\n\
             controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093\n\
             listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:19092\n\
             controller.listener.names=CONTROLLER\n",
        )
        .unwrap();
        let q = quorum_config(&three);
        assert_eq!(q.voters.len(), 3);
        assert_eq!(q.tick_ms, 20);
        // Kafka's default fetch timeout (2 s) in ticks.
        assert_eq!(q.election_tick, 100);
        q.validate().unwrap();
    }

    #[test]
    fn group_config_operations_are_kafkas() {
        let config = crate::config::Config::default();
        let set = |k: &str, v: &str| (k.to_string(), OP_SET, Some(v.to_string()));
        let old = BTreeMap::from([(
            "share.auto.offset.reset".to_string(),
            "earliest".to_string(),
        )]);
        let ops = ConfigOps::Incremental(vec![
            set("share.record.lock.duration.ms", "20000"),
            ("share.auto.offset.reset".into(), OP_DELETE, None),
            // Deleting a key Kafka does not know is accepted, as on Kafka.
            ("no.such.key".into(), OP_DELETE, None),
        ]);
        let new = group_configs("g", &old, &ops, &config).unwrap();
        assert_eq!(
            new,
            BTreeMap::from([(
                "share.record.lock.duration.ms".to_string(),
                "20000".to_string()
            )])
        );
        for op in [OP_APPEND, OP_SUBTRACT] {
            let ops = ConfigOps::Incremental(vec![(
                "share.auto.offset.reset".into(),
                op,
                Some("earliest".into()),
            )]);
            let (code, message) = group_configs("g", &old, &ops, &config).unwrap_err();
            assert_eq!(code, code::INVALID_CONFIG);
            assert!(message.contains("its type is not LIST"), "{message}");
        }
        let unknown = ConfigOps::Incremental(vec![set("no.such.key", "1")]);
        let (code, message) = group_configs("g", &old, &unknown, &config).unwrap_err();
        assert_eq!(
            (code, message.as_str()),
            (
                code::INVALID_CONFIG,
                "Unknown group config name: no.such.key"
            )
        );
        let null = ConfigOps::Incremental(vec![("share.isolation.level".into(), OP_SET, None)]);
        assert_eq!(
            group_configs("g", &old, &null, &config).unwrap_err().0,
            code::INVALID_CONFIG
        );
        let empty = group_configs("", &old, &ConfigOps::Replace(vec![]), &config);
        assert_eq!(empty.unwrap_err().0, code::INVALID_REQUEST);
        // AlterConfigs replaces the whole set: keys not named go back to their defaults.
        let replace = ConfigOps::Replace(vec![(
            "share.isolation.level".into(),
            Some("read_committed".into()),
        )]);
        let new = group_configs("g", &old, &replace, &config).unwrap();
        assert_eq!(new.keys().collect::<Vec<_>>(), ["share.isolation.level"]);
    }
}
