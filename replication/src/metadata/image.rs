//! The cluster image: what the metadata log says, as of one offset.
//!
//! [`ClusterImage::apply`] is the only way an image changes. It is deterministic (no clock, no
//! randomness, ordered maps only), so every node that applies the same records at the same
//! offsets holds equal images, and an image restored from a snapshot (`snapshot.rs`) and then
//! fed the rest of the log equals one fed the whole log. A record that does not fit (a partition
//! of an unknown topic, a duplicate topic name, an ISR outside the replicas, ...) is refused with
//! an error and leaves the image exactly as it was: every check runs before the first change.
//!
//! Invariants, held after every apply and checked again when a snapshot is decoded:
//! * topic names and ids are unique; names are valid Kafka topic names; no id is zero;
//! * a topic's partitions are numbered 0..n without gaps;
//! * each partition's replicas are distinct non-negative broker ids; ISR and ELR are distinct
//!   subsets of the replicas and do not overlap; the leader is -1 or in the ISR; epochs are
//!   non-negative;
//! * `last_applied_offset` only grows; `next_producer_id` only grows;
//! * each registered broker has a non-negative id and epoch, distinct non-empty listener names
//!   with known security protocols, and no empty rack; a broker's epoch only grows;
//! * broker and group config entries are never empty (deleting a resource's last key removes
//!   the entry); a group config's group id is not empty. A group's configs may exist before
//!   and after the group: the image does not track groups themselves.
//! * ACL binding ids are unique; each binding has Kafka's storable enum codes (no ANY/UNKNOWN,
//!   no MATCH pattern); a client-quota entity has distinct known types in type order and no
//!   empty key map (removing an entity's last key removes the entity).
//!
//! # Broker records
//!
//! As Kafka's `ClusterControlManager` replays them:
//! * **RegisterBroker** adds the broker, or replaces its registration (a restarted process, a
//!   new incarnation id, or the same one registering again) with a new epoch, starting outside
//!   controlled shutdown; an epoch not above the current one is refused
//!   ([`ReplicationError::StaleBrokerEpoch`]). The controller sets the epoch to the record's
//!   offset (`control::register_broker`); apply only requires it to grow, since the image does
//!   not know which offsets other records took.
//! * **FenceBroker / UnfenceBroker / UnregisterBroker / BrokerRegistrationChange** name the
//!   broker's current epoch; an unknown broker or any other epoch is refused, so a decision made
//!   about an old registration cannot touch a new one. Fencing a fenced broker (or unfencing an
//!   unfenced one) is accepted and changes nothing, as in Kafka.
//! * A broker leaves controlled shutdown only by registering again; a change that clears the
//!   flag is refused.
//!
//! Broker records do not touch partitions: the controller writes the PartitionChangeRecords that
//! move leadership and shrink ISRs next to them (`control.rs`), and the image does not require a
//! partition's replicas to be registered (a single node never registers itself).
//!
//! Not here: which shard of this node holds a partition. Placement is node-local and lives in
//! the broker's own table; two nodes with different core counts hold equal images.

use super::record::{
    security_protocol, AccessControlEntryRecord, BrokerEndpoint, BrokerRegistrationChangeRecord,
    ClientQuotaRecord, ConfigRecord, ConfigResourceType, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, ProducerIdsRecord, QuotaEntityPart, QuotaValue, RegisterBrokerRecord, TopicId,
    TopicRecord,
};
use crate::error::ReplicationError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Configs of one resource: key → value.
pub type Configs = BTreeMap<String, String>;

/// One partition as the image sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// Broker ids of the replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// Eligible leader replicas (KIP-966).
    pub eligible_leader_replicas: Vec<i32>,
    /// Last known ELR (KIP-966).
    pub last_known_elr: Vec<i32>,
    /// The leader, or -1.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch.
    pub partition_epoch: i32,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    /// Name.
    pub name: String,
    /// Id.
    pub id: TopicId,
    /// Partitions, indexed by partition id.
    pub partitions: Vec<PartitionImage>,
    /// Topic-level configs.
    pub configs: Configs,
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    /// Broker id.
    pub broker_id: i32,
    /// The process that registered (a new one per start).
    pub incarnation_id: [u8; 16],
    /// The registration's epoch: the offset of its RegisterBrokerRecord.
    pub broker_epoch: i64,
    /// Listeners, as registered.
    pub endpoints: Vec<BrokerEndpoint>,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Fenced: may not lead partitions or join ISRs (a new registration starts fenced).
    pub fenced: bool,
    /// In controlled shutdown: moving its leaderships away before it stops.
    pub in_controlled_shutdown: bool,
}

impl BrokerImage {
    /// The endpoint of the listener called `listener`.
    pub fn endpoint(&self, listener: &str) -> Option<&BrokerEndpoint> {
        self.endpoints.iter().find(|e| e.name == listener)
    }

    /// Unfenced and not in controlled shutdown: may lead partitions and receive new replicas
    /// (Kafka's `isActive`).
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }

    pub(super) fn from_record(r: &RegisterBrokerRecord) -> Self {
        BrokerImage {
            broker_id: r.broker_id,
            incarnation_id: r.incarnation_id,
            broker_epoch: r.broker_epoch,
            endpoints: r.endpoints.clone(),
            rack: r.rack.clone(),
            fenced: r.fenced,
            in_controlled_shutdown: false,
        }
    }

    /// The registration as the record that made it (controlled shutdown is not part of it).
    pub(super) fn to_record(&self) -> RegisterBrokerRecord {
        RegisterBrokerRecord {
            broker_id: self.broker_id,
            incarnation_id: self.incarnation_id,
            broker_epoch: self.broker_epoch,
            endpoints: self.endpoints.clone(),
            rack: self.rack.clone(),
            fenced: self.fenced,
        }
    }
}

/// The cluster's metadata, as of `last_applied_offset`. Lives on the controller's shard (today
/// shard 0); other shards get read-only copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterImage {
    pub(super) topics: BTreeMap<TopicId, TopicImage>,
    pub(super) topic_ids: BTreeMap<String, TopicId>,
    pub(super) broker_configs: BTreeMap<String, Configs>,
    pub(super) group_configs: BTreeMap<String, Configs>,
    pub(super) brokers: BTreeMap<i32, BrokerImage>,
    /// SCRAM credentials by (user, Kafka's mechanism type).
    pub(super) scram: BTreeMap<(String, i8), ScramImage>,
    /// ACL bindings by id. Shared between copies of the image until an ACL changes, so a
    /// reader can tell cheaply whether the ACLs changed ([`ClusterImage::acls`]).
    pub(super) acls: AclImages,
    /// Client quotas: each entity's keys and values.
    pub(super) quotas: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
    pub(super) next_producer_id: i64,
    pub(super) last_applied_offset: i64,
}

impl Default for ClusterImage {
    /// The image before the first record.
    fn default() -> Self {
        ClusterImage {
            topics: BTreeMap::new(),
            topic_ids: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
            group_configs: BTreeMap::new(),
            brokers: BTreeMap::new(),
            scram: BTreeMap::new(),
            acls: AclImages::default(),
            quotas: BTreeMap::new(),
            next_producer_id: 0,
            last_applied_offset: -1,
        }
    }
}

/// One stored SCRAM credential: salted, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramImage {
    /// The salt.
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

impl std::fmt::Debug for ScramImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramImage")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// A client-quota entity: its parts sorted by entity type.
pub type QuotaEntity = Vec<QuotaEntityPart>;

/// The ACL bindings by id, behind one `Arc` that an ACL change replaces.
pub type AclImages = Arc<BTreeMap<[u8; 16], AccessControlEntryRecord>>;

impl ClusterImage {
    /// The ACL bindings by id. The same `Arc` as long as no ACL changed (`Arc::ptr_eq` tells a
    /// reader whether to rebuild what it derives from them).
    pub fn acls(&self) -> &AclImages {
        &self.acls
    }

    /// Every entity with a client quota, with its keys and values.
    pub fn client_quotas(&self) -> &BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>> {
        &self.quotas
    }

    /// The SCRAM credential of `user` for Kafka's mechanism type `mechanism`.
    pub fn scram_credential(&self, user: &str, mechanism: i8) -> Option<&ScramImage> {
        self.scram.get(&(user.to_string(), mechanism))
    }

    /// Every stored SCRAM credential: (user, mechanism type, credential), by user.
    pub fn scram_credentials(&self) -> impl Iterator<Item = (&str, i8, &ScramImage)> {
        self.scram.iter().map(|((u, m), c)| (u.as_str(), *m, c))
    }

    /// The topic with this name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    /// The topic with this id (Fetch v13+ and Metadata v10+ name topics by id).
    pub fn topic_by_id(&self, id: &TopicId) -> Option<&TopicImage> {
        self.topics.get(id)
    }

    /// Topics in name order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topic_ids.values().map(|id| &self.topics[id])
    }

    /// Number of topics.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// One partition.
    pub fn partition(&self, id: &TopicId, partition_id: i32) -> Option<&PartitionImage> {
        let index = usize::try_from(partition_id).ok()?;
        self.topics.get(id)?.partitions.get(index)
    }

    /// Broker configs of `resource_name` (a broker id, or "" for the cluster default).
    pub fn broker_configs(&self, resource_name: &str) -> Option<&Configs> {
        self.broker_configs.get(resource_name)
    }

    /// Config overrides of the group `group_id` (a consumer, share or streams group, which
    /// need not exist: Kafka lets a group's configs be set before its first member joins).
    pub fn group_configs(&self, group_id: &str) -> Option<&Configs> {
        self.group_configs.get(group_id)
    }

    /// Every group with config overrides, in group-id order.
    pub fn groups_with_configs(&self) -> impl Iterator<Item = (&str, &Configs)> {
        self.group_configs.iter().map(|(g, c)| (g.as_str(), c))
    }

    /// The registered broker with this id.
    pub fn broker(&self, broker_id: i32) -> Option<&BrokerImage> {
        self.brokers.get(&broker_id)
    }

    /// Registered brokers in id order, fenced or not.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values()
    }

    /// Unfenced brokers in id order (including those in controlled shutdown, which still
    /// serve until they stop).
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether `broker_id` is registered, unfenced and not in controlled shutdown.
    pub fn is_active_broker(&self, broker_id: i32) -> bool {
        self.brokers
            .get(&broker_id)
            .is_some_and(BrokerImage::is_active)
    }

    /// Where `broker_id` listens on `listener` (Metadata and FindCoordinator answer with the
    /// endpoint of the listener the client connected to).
    pub fn broker_endpoint(&self, broker_id: i32, listener: &str) -> Option<&BrokerEndpoint> {
        self.brokers.get(&broker_id)?.endpoint(listener)
    }

    /// The rack of `broker_id`, if it is registered and has one.
    pub fn broker_rack(&self, broker_id: i32) -> Option<&str> {
        self.brokers.get(&broker_id)?.rack.as_deref()
    }

    /// The end of the last producer-id block: ids below it may have been handed out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Offset of the last applied record, -1 before the first.
    pub fn last_applied_offset(&self) -> i64 {
        self.last_applied_offset
    }

    /// Applies the record at `offset`. On error nothing changed.
    pub fn apply(&mut self, record: &MetadataRecord, offset: i64) -> Result<(), ReplicationError> {
        if offset <= self.last_applied_offset {
            return Err(ReplicationError::OffsetNotAfter {
                offset,
                last_applied: self.last_applied_offset,
            });
        }
        match record {
            MetadataRecord::Topic(r) => self.apply_topic(r)?,
            MetadataRecord::Partition(r) => self.apply_partition(r)?,
            MetadataRecord::PartitionChange(r) => self.apply_partition_change(r)?,
            MetadataRecord::Config(r) => self.apply_config(r)?,
            MetadataRecord::RemoveTopic(r) => {
                let topic =
                    self.topics
                        .remove(&r.topic_id)
                        .ok_or(ReplicationError::UnknownTopicId {
                            topic_id: r.topic_id,
                        })?;
                self.topic_ids.remove(&topic.name);
            }
            MetadataRecord::ProducerIds(r) => self.apply_producer_ids(r)?,
            MetadataRecord::NoOp => {}
            MetadataRecord::RegisterBroker(r) => self.apply_register_broker(r)?,
            MetadataRecord::UnregisterBroker(r) => {
                self.registered_mut(r.broker_id, r.broker_epoch)?;
                self.brokers.remove(&r.broker_id);
            }
            MetadataRecord::FenceBroker(r) => self.registered_mut(r.id, r.epoch)?.fenced = true,
            MetadataRecord::UnfenceBroker(r) => self.registered_mut(r.id, r.epoch)?.fenced = false,
            MetadataRecord::BrokerRegistrationChange(r) => self.apply_registration_change(r)?,
            MetadataRecord::UserScramCredential(r) => {
                check_scram(&r.name, r.mechanism, r.iterations)?;
                let credential = ScramImage {
                    salt: r.salt.clone(),
                    stored_key: r.stored_key.clone(),
                    server_key: r.server_key.clone(),
                    iterations: r.iterations,
                };
                self.scram.insert((r.name.clone(), r.mechanism), credential);
            }
            MetadataRecord::RemoveUserScramCredential(r) => {
                if self.scram.remove(&(r.name.clone(), r.mechanism)).is_none() {
                    return Err(invalid("removing a SCRAM credential that does not exist"));
                }
            }
            MetadataRecord::ClientQuota(r) => self.apply_client_quota(r)?,
            MetadataRecord::AccessControlEntry(r) => {
                check_acl(r)?;
                if self.acls.contains_key(&r.id) {
                    return Err(invalid("an ACL binding id used twice"));
                }
                Arc::make_mut(&mut self.acls).insert(r.id, r.clone());
            }
            MetadataRecord::RemoveAccessControlEntry(r) => {
                if !self.acls.contains_key(&r.id) {
                    return Err(invalid("removing an ACL binding that does not exist"));
                }
                Arc::make_mut(&mut self.acls).remove(&r.id);
            }
        }
        self.last_applied_offset = offset;
        Ok(())
    }

    fn apply_client_quota(&mut self, r: &ClientQuotaRecord) -> Result<(), ReplicationError> {
        check_quota(&r.entity, &r.key, r.value)?;
        if r.remove {
            if let Some(keys) = self.quotas.get_mut(&r.entity) {
                keys.remove(&r.key);
                if keys.is_empty() {
                    self.quotas.remove(&r.entity);
                }
            }
        } else {
            self.quotas
                .entry(r.entity.clone())
                .or_default()
                .insert(r.key.clone(), r.value);
        }
        Ok(())
    }

    fn apply_topic(&mut self, r: &TopicRecord) -> Result<(), ReplicationError> {
        self.check_new_topic(&r.name, r.topic_id)?;
        self.topic_ids.insert(r.name.clone(), r.topic_id);
        let topic = TopicImage {
            name: r.name.clone(),
            id: r.topic_id,
            partitions: Vec::new(),
            configs: Configs::new(),
        };
        self.topics.insert(r.topic_id, topic);
        Ok(())
    }

    /// Refuses a topic that cannot join the image.
    pub(super) fn check_new_topic(&self, name: &str, id: TopicId) -> Result<(), ReplicationError> {
        check_topic_name(name)?;
        if id == TopicId::ZERO {
            return Err(invalid("topic id is zero"));
        }
        if self.topic_ids.contains_key(name) {
            return Err(ReplicationError::TopicNameExists { name: name.into() });
        }
        if self.topics.contains_key(&id) {
            return Err(ReplicationError::TopicIdExists { topic_id: id });
        }
        Ok(())
    }

    fn apply_partition(&mut self, r: &PartitionRecord) -> Result<(), ReplicationError> {
        let topic = topic_mut(&mut self.topics, r.topic_id)?;
        let expected = topic.partitions.len() as i32;
        if r.partition_id != expected {
            return Err(ReplicationError::PartitionOutOfOrder {
                topic_id: r.topic_id,
                partition_id: r.partition_id,
                expected,
            });
        }
        check_partition(&r.state)?;
        topic.partitions.push(r.state.clone());
        Ok(())
    }

    fn apply_partition_change(
        &mut self,
        r: &PartitionChangeRecord,
    ) -> Result<(), ReplicationError> {
        let topic = topic_mut(&mut self.topics, r.topic_id)?;
        let unknown = ReplicationError::UnknownPartition {
            topic_id: r.topic_id,
            partition_id: r.partition_id,
        };
        let index = usize::try_from(r.partition_id).map_err(|_| invalid("negative partition"))?;
        let current = topic.partitions.get_mut(index).ok_or(unknown)?;
        let mut next = current.clone();
        if let Some(leader) = r.leader {
            next.leader = leader;
            next.leader_epoch = bump(next.leader_epoch, "leader epoch overflows")?;
        }
        let lists = [
            (&r.replicas, &mut next.replicas),
            (&r.isr, &mut next.isr),
            (
                &r.eligible_leader_replicas,
                &mut next.eligible_leader_replicas,
            ),
            (&r.last_known_elr, &mut next.last_known_elr),
        ];
        for (change, field) in lists {
            if let Some(list) = change {
                field.clone_from(list);
            }
        }
        next.partition_epoch = bump(next.partition_epoch, "partition epoch overflows")?;
        check_partition(&next)?;
        *current = next;
        Ok(())
    }

    fn apply_config(&mut self, r: &ConfigRecord) -> Result<(), ReplicationError> {
        if r.name.is_empty() {
            return Err(invalid("config name is empty"));
        }
        let configs = match r.resource_type {
            ConfigResourceType::Topic => {
                let id = self.topic_ids.get(&r.resource_name).ok_or_else(|| {
                    ReplicationError::UnknownTopicName {
                        name: r.resource_name.clone(),
                    }
                })?;
                &mut topic_mut(&mut self.topics, *id)?.configs
            }
            ConfigResourceType::Broker => {
                check_broker_resource(&r.resource_name)?;
                self.broker_configs
                    .entry(r.resource_name.clone())
                    .or_default()
            }
            ConfigResourceType::Group => {
                check_group_resource(&r.resource_name)?;
                self.group_configs
                    .entry(r.resource_name.clone())
                    .or_default()
            }
        };
        match &r.value {
            Some(value) => {
                configs.insert(r.name.clone(), value.clone());
            }
            None => {
                configs.remove(&r.name);
            }
        }
        if configs.is_empty() {
            // An empty entry and no entry are the same image (a topic keeps its entry).
            match r.resource_type {
                ConfigResourceType::Broker => self.broker_configs.remove(&r.resource_name),
                ConfigResourceType::Group => self.group_configs.remove(&r.resource_name),
                ConfigResourceType::Topic => None,
            };
        }
        Ok(())
    }

    fn apply_producer_ids(&mut self, r: &ProducerIdsRecord) -> Result<(), ReplicationError> {
        if r.broker_id < 0 {
            return Err(invalid("producer-id block for a negative broker id"));
        }
        if r.next_producer_id <= self.next_producer_id {
            return Err(ReplicationError::ProducerIdNotAdvancing {
                next_producer_id: r.next_producer_id,
                current: self.next_producer_id,
            });
        }
        self.next_producer_id = r.next_producer_id;
        Ok(())
    }
}

impl ClusterImage {
    fn apply_register_broker(&mut self, r: &RegisterBrokerRecord) -> Result<(), ReplicationError> {
        let broker = BrokerImage::from_record(r);
        check_broker(&broker)?;
        if let Some(current) = self.brokers.get(&r.broker_id) {
            if r.broker_epoch <= current.broker_epoch {
                return Err(ReplicationError::StaleBrokerEpoch {
                    broker_id: r.broker_id,
                    epoch: r.broker_epoch,
                    current: current.broker_epoch,
                });
            }
        }
        self.brokers.insert(r.broker_id, broker);
        Ok(())
    }

    fn apply_registration_change(
        &mut self,
        r: &BrokerRegistrationChangeRecord,
    ) -> Result<(), ReplicationError> {
        if r.in_controlled_shutdown == Some(false) {
            return Err(invalid(
                "a broker leaves controlled shutdown only by registering again",
            ));
        }
        let broker = self.registered_mut(r.broker_id, r.broker_epoch)?;
        if let Some(fenced) = r.fenced {
            broker.fenced = fenced;
        }
        if let Some(shutting_down) = r.in_controlled_shutdown {
            broker.in_controlled_shutdown = shutting_down;
        }
        Ok(())
    }

    /// The registration of `broker_id` if its epoch is `epoch`.
    fn registered_mut(
        &mut self,
        broker_id: i32,
        epoch: i64,
    ) -> Result<&mut BrokerImage, ReplicationError> {
        let broker = self
            .brokers
            .get_mut(&broker_id)
            .ok_or(ReplicationError::UnknownBroker { broker_id })?;
        if broker.broker_epoch != epoch {
            return Err(ReplicationError::StaleBrokerEpoch {
                broker_id,
                epoch,
                current: broker.broker_epoch,
            });
        }
        Ok(broker)
    }
}

/// The broker invariants in the module doc, for one registration.
pub(super) fn check_broker(b: &BrokerImage) -> Result<(), ReplicationError> {
    if b.broker_id < 0 || b.broker_epoch < 0 {
        return Err(invalid("negative broker id or broker epoch"));
    }
    let known = security_protocol::PLAINTEXT..=security_protocol::SASL_SSL;
    let mut names = BTreeSet::new();
    for e in &b.endpoints {
        if e.name.is_empty() {
            return Err(invalid("endpoint without a listener name"));
        }
        if !known.contains(&e.security_protocol) {
            return Err(invalid("endpoint with an unknown security protocol"));
        }
        if !names.insert(e.name.as_str()) {
            return Err(invalid("two endpoints with one listener name"));
        }
    }
    if b.rack.as_deref() == Some("") {
        return Err(invalid("rack is the empty string (no rack is None)"));
    }
    Ok(())
}

fn topic_mut(
    topics: &mut BTreeMap<TopicId, TopicImage>,
    topic_id: TopicId,
) -> Result<&mut TopicImage, ReplicationError> {
    topics
        .get_mut(&topic_id)
        .ok_or(ReplicationError::UnknownTopicId { topic_id })
}

fn invalid(reason: &'static str) -> ReplicationError {
    ReplicationError::InvalidRecord { reason }
}

fn bump(epoch: i32, overflow: &'static str) -> Result<i32, ReplicationError> {
    epoch.checked_add(1).ok_or(invalid(overflow))
}

/// Kafka's rule: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not "." or "..".
pub(super) fn check_topic_name(name: &str) -> Result<(), ReplicationError> {
    let legal = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > 249 || name == "." || name == ".." {
        return Err(invalid("topic name is empty, too long, \".\" or \"..\""));
    }
    if !name.bytes().all(legal) {
        return Err(invalid("topic name has a character outside [a-zA-Z0-9._-]"));
    }
    Ok(())
}

/// A broker config belongs to a broker id or to "" (the cluster-wide default).
pub(super) fn check_broker_resource(name: &str) -> Result<(), ReplicationError> {
    if name.is_empty()
        || name
            .parse::<i32>()
            .is_ok_and(|id| id >= 0 && id.to_string() == name)
    {
        Ok(())
    } else {
        Err(invalid(
            "broker config resource is neither \"\" nor a broker id",
        ))
    }
}

/// A group config belongs to a group id, which is never empty (Kafka refuses the "default
/// group" resource).
pub(super) fn check_group_resource(name: &str) -> Result<(), ReplicationError> {
    if name.is_empty() {
        Err(invalid("group config resource has an empty group id"))
    } else {
        Ok(())
    }
}

/// The partition invariants in the module doc.
pub(super) fn check_partition(p: &PartitionImage) -> Result<(), ReplicationError> {
    if p.replicas.is_empty() {
        return Err(invalid("partition has no replicas"));
    }
    if p.replicas.iter().any(|&r| r < 0) {
        return Err(invalid("replica id is negative"));
    }
    let lists = [
        (&p.replicas, "replicas repeat a broker"),
        (&p.isr, "ISR repeats a broker"),
        (&p.eligible_leader_replicas, "ELR repeats a broker"),
        (&p.last_known_elr, "last known ELR repeats a broker"),
    ];
    for (list, reason) in lists {
        if has_duplicates(list) {
            return Err(invalid(reason));
        }
    }
    let in_replicas = |list: &[i32]| list.iter().all(|b| p.replicas.contains(b));
    if !in_replicas(&p.isr) || !in_replicas(&p.eligible_leader_replicas) {
        return Err(invalid("ISR or ELR names a broker outside the replicas"));
    }
    if p.eligible_leader_replicas.iter().any(|b| p.isr.contains(b)) {
        return Err(invalid("a broker is both in the ISR and in the ELR"));
    }
    if p.leader != -1 && !p.isr.contains(&p.leader) {
        return Err(invalid("leader is neither -1 nor in the ISR"));
    }
    if p.leader_epoch < 0 || p.partition_epoch < 0 {
        return Err(invalid("negative epoch"));
    }
    Ok(())
}

fn has_duplicates(list: &[i32]) -> bool {
    let mut sorted = list.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests;

/// An ACL binding as the image holds it: a resource type from topic (2) to user (7), a
/// literal (3) or prefixed (4) pattern over a non-empty name, a `Type:name` principal, a
/// non-empty host, an operation from ALL (2) to TWO_PHASE_COMMIT (15), DENY (2) or ALLOW (3).
/// The controller checks Kafka's finer rules before writing one.
pub(super) fn check_acl(r: &AccessControlEntryRecord) -> Result<(), ReplicationError> {
    let valid = (2..=7).contains(&r.resource_type)
        && (3..=4).contains(&r.pattern_type)
        && !r.resource_name.is_empty()
        && r.principal.contains(':')
        && !r.host.is_empty()
        && (2..=15).contains(&r.operation)
        && (2..=3).contains(&r.permission_type);
    if !valid {
        return Err(invalid("an ACL binding with an invalid field"));
    }
    Ok(())
}

/// A client quota as the image holds it: one to three parts of distinct known entity types in
/// type order, a non-empty key, a finite value.
pub(super) fn check_quota(
    entity: &[QuotaEntityPart],
    key: &str,
    value: QuotaValue,
) -> Result<(), ReplicationError> {
    let known = |t: &str| matches!(t, "user" | "client-id" | "ip");
    let valid = !entity.is_empty()
        && entity.len() <= 3
        && entity.iter().all(|p| known(&p.entity_type))
        && entity
            .windows(2)
            .all(|w| w[0].entity_type < w[1].entity_type)
        && !key.is_empty()
        && value.0.is_finite();
    if !valid {
        return Err(invalid(
            "a client quota with an invalid entity, key or value",
        ));
    }
    Ok(())
}

/// A SCRAM credential's user and mechanism as the image holds them: a non-empty user, Kafka's
/// types 1 (SHA-256) or 2 (SHA-512), positive iterations.
pub(super) fn check_scram(
    user: &str,
    mechanism: i8,
    iterations: i32,
) -> Result<(), ReplicationError> {
    if user.is_empty() || !(1..=2).contains(&mechanism) || iterations <= 0 {
        return Err(invalid(
            "SCRAM credential with an empty user, unknown mechanism or no iterations",
        ));
    }
    Ok(())
}
