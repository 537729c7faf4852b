//! The controller's decisions as pure functions: given the image (and the request), the records
//! to commit. The controller proposes them as one batch through the metadata quorum and answers
//! the request once they are committed and applied; nothing here changes an image or does I/O,
//! so the simulator and the real controller decide alike.
//!
//! Rules, as Kafka's `ClusterControlManager` and `ReplicationControlManager` apply them:
//!
//! * **Registration** ([`register_broker`]): a new registration starts fenced, with the broker
//!   epoch set to the offset its record will take. A broker id whose current registration still
//!   holds a session may register again only from the same process (same incarnation id);
//!   another process gets [`ReplicationError::DuplicateBrokerRegistration`]. Since the new
//!   registration is fenced, partitions the broker still leads or holds in their ISR change as
//!   on fencing (after the RegisterBrokerRecord); this also covers partitions of a node that
//!   led them before it ever registered (a single node joining a cluster).
//! * **Fencing** ([`fence_broker`], after a session expired) and **unregistration**
//!   ([`unregister_broker`]): for every partition whose ISR holds the broker, the broker leaves
//!   the ISR. If it led the partition, the first replica in replica order that is in the
//!   remaining ISR and active (registered, unfenced, not in controlled shutdown) leads; with
//!   none, the leader is -1 and the partition is offline (RF=1 always goes this way). The
//!   PartitionChangeRecords come first, then the FenceBrokerRecord (or
//!   UnregisterBrokerRecord), in Kafka's order.
//! * **Eligible leader replicas** (KIP-966, as Kafka 4.1+ keeps them on new clusters): every
//!   change of the ISR recomputes the ELR: empty while the ISR holds at least the topic's
//!   `min.insync.replicas` ([`MinIsr`]); below it, the replicas leaving the ISR join the ELR
//!   (the high watermark needs that many in-sync replicas to move, so they hold every
//!   committed record), and one back in the ISR leaves it. The ISR may become empty: its last
//!   members are then the ELR (this replaces KIP-841's "the last member stays in the ISR").
//! * **Unfencing** ([`unfence_broker`], once it caught up): the UnfenceBrokerRecord, then an
//!   election for every leaderless partition, with the unfenced broker acceptable: an RF=1
//!   partition kept its broker in the ISR, so it gets its leader back.
//! * **Elections** pick, in order: the current leader if still in the ISR and acceptable; the
//!   first acceptable ISR member in replica order; with an empty ISR, the first acceptable ELR
//!   member (it becomes the ISR, KIP-966); with an empty ISR and ELR, the only replica of an
//!   RF=1 partition (no other copy exists that could be more complete). Never an unclean
//!   election. A new leader (or -1) bumps the leader epoch; every change bumps the partition
//!   epoch (the image's apply does both); a partition that would not change gets no record.
//! * **Topics** ([`create_topic`], [`create_partitions`]): replicas from
//!   [`placement`](super::placement), ISR = replicas (all usable), leader = the first replica,
//!   epochs 0.
//!
//! * **ISR changes from leaders** ([`alter_partition`], Kafka's AlterPartition): the
//!   request's broker epoch must be the leader's registration's (else STALE_BROKER_EPOCH for
//!   the whole request); per partition, in Kafka's order: the topic and partition exist, the
//!   leader epoch is the current one (FENCED_LEADER_EPOCH), the sender leads
//!   (NOT_LEADER_OR_FOLLOWER), the partition epoch is the current one (INVALID_UPDATE_VERSION:
//!   the leader's view is stale), the new ISR holds the leader, only replicas, no duplicates
//!   (INVALID_REQUEST), and every member it adds is an active broker whose epoch, when given
//!   (v3), is its registration's (INELIGIBLE_REPLICA). An accepted change is one
//!   PartitionChangeRecord (none when the ISR is already that); the answer is the state after
//!   it.
//!
//! * **Elections on request** ([`elect_leader`], Kafka's ElectLeaders; [`balance_leaders`],
//!   `auto.leader.rebalance.enable`; [`elect_unclean_leaders`],
//!   `unclean.leader.election.enable`): a preferred election moves leadership to the first
//!   replica when it is in the ISR and active (ELECTION_NOT_NEEDED when it leads already,
//!   PREFERRED_LEADER_NOT_AVAILABLE otherwise); an unclean one applies only to a leaderless
//!   partition, tries the clean candidates first, then takes the first active replica in
//!   replica order as leader and sole ISR member and clears the ELR (KIP-966).
//!
//! Not here: reassignment; KIP-966's unclean-shutdown detection (a broker that lost its
//! unsynced data leaves the ELR): with `millrace.fsync=true` every offset a follower reports
//! was synced, so a crash does not take committed records from an ELR member; with
//! `millrace.fsync=false` (Kafka's behaviour) a power loss can, and a broker whose disk was
//! wiped can lead from the ELR as the last ISR member could before ELR.

use super::image::{check_broker, BrokerImage, ClusterImage, PartitionImage};
use super::placement::place_replicas;
use super::record::{
    BrokerEndpoint, FenceBrokerRecord, MetadataRecord, PartitionChangeRecord, PartitionRecord,
    RegisterBrokerRecord, TopicId, TopicRecord, UnfenceBrokerRecord, UnregisterBrokerRecord,
};
use crate::error::ReplicationError;

/// What a BrokerRegistration request carries that the metadata keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistrationRequest {
    /// Broker id (`node.id`).
    pub broker_id: i32,
    /// The registering process's incarnation id.
    pub incarnation_id: [u8; 16],
    /// Its listeners.
    pub endpoints: Vec<BrokerEndpoint>,
    /// `broker.rack`; an empty rack is treated as none.
    pub rack: Option<String>,
}

/// The `min.insync.replicas` the controller keeps the ELR with (KIP-966): a topic's own
/// setting, else the cluster-level one (broker config resource ""), else `default` (the
/// controller's `min.insync.replicas`), capped at the partition's replica count as brokers
/// cap it. It must not exceed what the brokers enforce: a replica leaves the ISR into the ELR
/// only when the high watermark could not pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinIsr {
    /// The default for topics that do not set it.
    pub default: usize,
}

impl MinIsr {
    /// The effective value for a partition of `topic_id` with `replicas` replicas.
    pub fn of(&self, image: &ClusterImage, topic_id: &TopicId, replicas: usize) -> usize {
        const KEY: &str = "min.insync.replicas";
        let parse = |v: Option<&String>| v.and_then(|v| v.trim().parse::<usize>().ok());
        let topic = image.topic_by_id(topic_id).and_then(|t| t.configs.get(KEY));
        let cluster = image.broker_configs("").and_then(|c| c.get(KEY));
        parse(topic)
            .or_else(|| parse(cluster))
            .unwrap_or(self.default)
            .clamp(1, replicas.max(1))
    }
}

/// The records that register `request`'s broker, the RegisterBrokerRecord going to `offset`
/// (which becomes the broker epoch). `has_live_session` says whether the controller's
/// heartbeat tracker holds an unexpired session for the broker's current registration.
pub fn register_broker(
    image: &ClusterImage,
    request: &BrokerRegistrationRequest,
    offset: i64,
    has_live_session: bool,
    min_isr: MinIsr,
) -> Result<Vec<MetadataRecord>, ReplicationError> {
    if offset <= image.last_applied_offset() {
        return Err(ReplicationError::OffsetNotAfter {
            offset,
            last_applied: image.last_applied_offset(),
        });
    }
    if let Some(current) = image.broker(request.broker_id) {
        if has_live_session && current.incarnation_id != request.incarnation_id {
            return Err(ReplicationError::DuplicateBrokerRegistration {
                broker_id: request.broker_id,
            });
        }
    }
    let record = RegisterBrokerRecord {
        broker_id: request.broker_id,
        incarnation_id: request.incarnation_id,
        broker_epoch: offset,
        endpoints: request.endpoints.clone(),
        rack: request.rack.clone().filter(|r| !r.is_empty()),
        fenced: true,
    };
    check_broker(&BrokerImage {
        broker_id: record.broker_id,
        incarnation_id: record.incarnation_id,
        broker_epoch: record.broker_epoch,
        endpoints: record.endpoints.clone(),
        rack: record.rack.clone(),
        fenced: true,
        in_controlled_shutdown: false,
    })?;
    // The new registration is fenced: leadership and ISR membership move off the broker as
    // when fencing (nothing moves if the old registration was fenced already). These records
    // come after the registration, which must take `offset`.
    let mut records = vec![MetadataRecord::RegisterBroker(record)];
    records.extend(leave_partitions(image, request.broker_id, min_isr));
    Ok(records)
}

/// The records that fence `broker_id` (its session expired): leadership and ISR changes for
/// its partitions, then the FenceBrokerRecord (none if it is fenced already).
pub fn fence_broker(
    image: &ClusterImage,
    broker_id: i32,
    min_isr: MinIsr,
) -> Result<Vec<MetadataRecord>, ReplicationError> {
    let broker = registered(image, broker_id)?;
    let mut records = leave_partitions(image, broker_id, min_isr);
    if !broker.fenced {
        records.push(MetadataRecord::FenceBroker(FenceBrokerRecord {
            id: broker_id,
            epoch: broker.broker_epoch,
        }));
    }
    Ok(records)
}

/// The records that remove `broker_id`'s registration: the same partition changes as
/// fencing, then the UnregisterBrokerRecord.
pub fn unregister_broker(
    image: &ClusterImage,
    broker_id: i32,
    min_isr: MinIsr,
) -> Result<Vec<MetadataRecord>, ReplicationError> {
    let broker = registered(image, broker_id)?;
    let mut records = leave_partitions(image, broker_id, min_isr);
    records.push(MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
        broker_id,
        broker_epoch: broker.broker_epoch,
    }));
    Ok(records)
}

/// The records that unfence `broker_id` (it caught up): the UnfenceBrokerRecord (none if it is
/// unfenced already), then an election for every leaderless partition.
pub fn unfence_broker(
    image: &ClusterImage,
    broker_id: i32,
    min_isr: MinIsr,
) -> Result<Vec<MetadataRecord>, ReplicationError> {
    let broker = registered(image, broker_id)?;
    let mut records = Vec::new();
    if broker.fenced {
        records.push(MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
            id: broker_id,
            epoch: broker.broker_epoch,
        }));
    }
    let acceptable = |r: i32| r == broker_id || image.is_active_broker(r);
    for (topic_id, partition_id, p) in partitions(image) {
        if p.leader != -1 {
            continue;
        }
        let mut isr = p.isr.clone();
        let sole_replica = p.replicas == [broker_id];
        if isr.is_empty() && p.eligible_leader_replicas.is_empty() && sole_replica {
            isr.clone_from(&p.replicas);
        }
        let target = Target {
            isr,
            acceptable: &acceptable,
        };
        records.extend(change(image, min_isr, (topic_id, partition_id, p), target));
    }
    Ok(records)
}

/// The records that create topic `name` with `partitions` partitions of `replication_factor`
/// replicas each, placed from position `start` (see [`placement`](super::placement)).
pub fn create_topic(
    image: &ClusterImage,
    name: &str,
    topic_id: TopicId,
    partitions: i32,
    replication_factor: i16,
    start: usize,
) -> Result<Vec<MetadataRecord>, ReplicationError> {
    image.check_new_topic(name, topic_id)?;
    let assignment = place_replicas(image, start, partitions, replication_factor)?;
    let mut records = Vec::with_capacity(assignment.len() + 1);
    records.push(MetadataRecord::Topic(TopicRecord {
        name: name.to_string(),
        topic_id,
    }));
    records.extend(new_partitions(topic_id, 0, assignment));
    Ok(records)
}

/// The records that grow topic `topic_id` to `total` partitions, the new ones with the
/// replication factor of its partition 0 (as Kafka's CreatePartitions), placed from `start`.
pub fn create_partitions(
    image: &ClusterImage,
    topic_id: TopicId,
    total: i32,
    start: usize,
) -> Result<Vec<MetadataRecord>, ReplicationError> {
    let topic = image
        .topic_by_id(&topic_id)
        .ok_or(ReplicationError::UnknownTopicId { topic_id })?;
    let current = topic.partitions.len() as i32;
    let first = topic.partitions.first();
    let rf = first.map_or(0, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX));
    if total <= current || first.is_none() {
        return Err(ReplicationError::InvalidPartitions { partitions: total });
    }
    let assignment = place_replicas(image, start, total - current, rf)?;
    Ok(new_partitions(topic_id, current, assignment).collect())
}

/// One partition of an AlterPartition request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    /// The topic.
    pub topic_id: TopicId,
    /// The partition.
    pub partition_id: i32,
    /// The leader epoch the leader holds.
    pub leader_epoch: i32,
    /// The partition epoch its proposal is based on.
    pub partition_epoch: i32,
    /// The proposed ISR: each member with its broker epoch when the request names it (v3).
    pub new_isr: Vec<(i32, Option<i64>)>,
}

/// Why one partition's ISR change was refused (each maps to a Kafka error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrRefusal {
    /// UNKNOWN_TOPIC_ID.
    UnknownTopicId,
    /// UNKNOWN_TOPIC_OR_PARTITION.
    UnknownTopicOrPartition,
    /// FENCED_LEADER_EPOCH: the sender's leader epoch is not the current one.
    FencedLeaderEpoch,
    /// NOT_LEADER_OR_FOLLOWER: the sender does not lead the partition.
    NotLeaderOrFollower,
    /// INVALID_UPDATE_VERSION: the change is based on an older partition epoch.
    InvalidUpdateVersion,
    /// INVALID_REQUEST: the ISR lacks the leader, names a non-replica or a replica twice.
    InvalidRequest,
    /// INELIGIBLE_REPLICA: an added member is fenced, shutting down or of a stale epoch.
    IneligibleReplica,
}

/// A partition's state after an accepted ISR change, as AlterPartition answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrState {
    /// The leader.
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The ISR.
    pub isr: Vec<i32>,
    /// The partition epoch.
    pub partition_epoch: i32,
}

/// What an AlterPartition request decides: the records to commit, and one outcome per change
/// in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrDecision {
    /// The PartitionChangeRecords of the accepted changes.
    pub records: Vec<MetadataRecord>,
    /// Per change: the state after it, or why it was refused.
    pub outcomes: Vec<Result<IsrState, IsrRefusal>>,
}

/// The records for an AlterPartition request from `broker_id` under `broker_epoch`, and one
/// outcome per change in request order (see the module doc). The whole request is refused
/// with [`ReplicationError::StaleBrokerEpoch`] when the epoch is not the broker's current
/// registration's, or when it is not registered.
pub fn alter_partition(
    image: &ClusterImage,
    broker_id: i32,
    broker_epoch: i64,
    changes: &[IsrChange],
    min_isr: MinIsr,
) -> Result<IsrDecision, ReplicationError> {
    match image.broker(broker_id) {
        Some(b) if b.broker_epoch == broker_epoch => {}
        b => {
            return Err(ReplicationError::StaleBrokerEpoch {
                broker_id,
                epoch: broker_epoch,
                current: b.map_or(-1, |b| b.broker_epoch),
            })
        }
    }
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(changes.len());
    for change in changes {
        let outcome = check_isr_change(image, broker_id, change);
        if let Ok(state) = &outcome {
            let p = &image
                .topic_by_id(&change.topic_id)
                .expect("checked")
                .partitions[change.partition_id as usize];
            if state.isr != p.isr {
                let min = min_isr.of(image, &change.topic_id, p.replicas.len());
                let elr = eligible_leaders(p, &state.isr, min);
                records.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id: change.topic_id,
                    partition_id: change.partition_id,
                    leader: None,
                    isr: Some(state.isr.clone()),
                    replicas: None,
                    eligible_leader_replicas: (elr != p.eligible_leader_replicas).then_some(elr),
                    last_known_elr: None,
                }));
            }
        }
        outcomes.push(outcome);
    }
    Ok(IsrDecision { records, outcomes })
}

fn check_isr_change(
    image: &ClusterImage,
    broker_id: i32,
    change: &IsrChange,
) -> Result<IsrState, IsrRefusal> {
    let topic = image
        .topic_by_id(&change.topic_id)
        .ok_or(IsrRefusal::UnknownTopicId)?;
    let p = usize::try_from(change.partition_id)
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .ok_or(IsrRefusal::UnknownTopicOrPartition)?;
    if change.leader_epoch != p.leader_epoch {
        return Err(IsrRefusal::FencedLeaderEpoch);
    }
    if p.leader != broker_id {
        return Err(IsrRefusal::NotLeaderOrFollower);
    }
    if change.partition_epoch != p.partition_epoch {
        return Err(IsrRefusal::InvalidUpdateVersion);
    }
    let isr: Vec<i32> = change.new_isr.iter().map(|&(id, _)| id).collect();
    let mut sorted = isr.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if !isr.contains(&broker_id)
        || sorted.len() != isr.len()
        || !isr.iter().all(|r| p.replicas.contains(r))
    {
        return Err(IsrRefusal::InvalidRequest);
    }
    for &(member, epoch) in &change.new_isr {
        if p.isr.contains(&member) {
            continue;
        }
        let eligible = image
            .broker(member)
            .is_some_and(|b| b.is_active() && epoch.is_none_or(|e| e == b.broker_epoch));
        if !eligible {
            return Err(IsrRefusal::IneligibleReplica);
        }
    }
    let changed = isr != p.isr;
    Ok(IsrState {
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch + i32::from(changed),
        isr,
    })
}

fn registered(image: &ClusterImage, broker_id: i32) -> Result<&BrokerImage, ReplicationError> {
    image
        .broker(broker_id)
        .ok_or(ReplicationError::UnknownBroker { broker_id })
}

/// PartitionRecords numbered from `first`, leader = first replica, ISR = replicas.
fn new_partitions(
    topic_id: TopicId,
    first: i32,
    assignment: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> {
    assignment
        .into_iter()
        .zip(first..)
        .map(move |(replicas, partition_id)| {
            MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition_id,
                state: PartitionImage {
                    leader: replicas[0],
                    isr: replicas.clone(),
                    replicas,
                    eligible_leader_replicas: Vec::new(),
                    last_known_elr: Vec::new(),
                    leader_epoch: 0,
                    partition_epoch: 0,
                },
            })
        })
}

/// The kinds of election ElectLeaders asks for (its `election_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica (the preferred leader) when it is in the ISR and
    /// active (0).
    Preferred,
    /// Give a leaderless partition a leader: from the ISR or the ELR if one is active, else
    /// any active replica, which may lose committed records (1).
    Unclean,
}

impl ElectionType {
    /// From the wire value; None for an unknown type.
    pub fn from_wire(value: i8) -> Option<Self> {
        match value {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// What an election decided for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionOutcome {
    /// This change elects the new leader.
    Elected(MetadataRecord),
    /// Preferred: the preferred replica leads already; unclean: the partition has a leader
    /// (ELECTION_NOT_NEEDED).
    NotNeeded,
    /// No replica may lead (PREFERRED_LEADER_NOT_AVAILABLE for a preferred election,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE for an unclean one).
    NotAvailable,
    /// No such topic or partition.
    Unknown,
}

/// One election on partition `partition_id` of `topic_id`, as Kafka's controller decides
/// an ElectLeaders request (see the module doc for the order of candidates).
pub fn elect_leader(
    image: &ClusterImage,
    topic_id: TopicId,
    partition_id: i32,
    election: ElectionType,
    min_isr: MinIsr,
) -> ElectionOutcome {
    let Some(p) = image.partition(&topic_id, partition_id) else {
        return ElectionOutcome::Unknown;
    };
    let active = |r: i32| image.is_active_broker(r);
    match election {
        ElectionType::Preferred => {
            let Some(&preferred) = p.replicas.first() else {
                return ElectionOutcome::NotAvailable;
            };
            if p.leader == preferred {
                return ElectionOutcome::NotNeeded;
            }
            if !p.isr.contains(&preferred) || !active(preferred) {
                return ElectionOutcome::NotAvailable;
            }
            ElectionOutcome::Elected(MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id,
                partition_id,
                leader: Some(preferred),
                isr: None,
                replicas: None,
                eligible_leader_replicas: None,
                last_known_elr: None,
            }))
        }
        ElectionType::Unclean => {
            if p.leader != -1 {
                return ElectionOutcome::NotNeeded;
            }
            // A clean election first (an ISR or ELR member that came back).
            let target = Target {
                isr: p.isr.clone(),
                acceptable: &active,
            };
            if let Some(record) = change(image, min_isr, (topic_id, partition_id, p), target) {
                if matches!(&record, MetadataRecord::PartitionChange(c) if c.leader.is_some()) {
                    return ElectionOutcome::Elected(record);
                }
            }
            match p.replicas.iter().copied().find(|&r| active(r)) {
                None => ElectionOutcome::NotAvailable,
                Some(leader) => {
                    // The unclean leader is the whole ISR, and the ELR is void (KIP-966).
                    let clear = |set: &Vec<i32>| (!set.is_empty()).then(Vec::new);
                    let record = PartitionChangeRecord {
                        topic_id,
                        partition_id,
                        leader: Some(leader),
                        isr: Some(vec![leader]),
                        replicas: None,
                        eligible_leader_replicas: clear(&p.eligible_leader_replicas),
                        last_known_elr: clear(&p.last_known_elr),
                    };
                    ElectionOutcome::Elected(MetadataRecord::PartitionChange(record))
                }
            }
        }
    }
}

/// Preferred-leader elections for every partition whose preferred replica is in the ISR and
/// active but does not lead (Kafka's `auto.leader.rebalance.enable` round), at most `max`.
pub fn balance_leaders(image: &ClusterImage, max: usize) -> Vec<MetadataRecord> {
    // A preferred election changes only the leader: the ELR is not consulted.
    let unused = MinIsr { default: 1 };
    partitions(image)
        .filter_map(|(topic_id, partition_id, _)| {
            match elect_leader(
                image,
                topic_id,
                partition_id,
                ElectionType::Preferred,
                unused,
            ) {
                ElectionOutcome::Elected(record) => Some(record),
                _ => None,
            }
        })
        .take(max)
        .collect()
}

/// Unclean elections for the leaderless partitions of the topics `allowed` names (those with
/// `unclean.leader.election.enable=true`) that have no ISR or ELR member to elect.
pub fn elect_unclean_leaders(
    image: &ClusterImage,
    allowed: &dyn Fn(&TopicId) -> bool,
    min_isr: MinIsr,
) -> Vec<MetadataRecord> {
    partitions(image)
        .filter(|(topic_id, _, p)| p.leader == -1 && allowed(topic_id))
        .filter_map(|(topic_id, partition_id, _)| {
            match elect_leader(
                image,
                topic_id,
                partition_id,
                ElectionType::Unclean,
                min_isr,
            ) {
                ElectionOutcome::Elected(record) => Some(record),
                _ => None,
            }
        })
        .collect()
}

/// Every partition of the image: (topic id, partition id, state), topics in name order.
fn partitions(image: &ClusterImage) -> impl Iterator<Item = (TopicId, i32, &PartitionImage)> {
    image.topics().flat_map(|t| {
        let ids = 0..;
        t.partitions.iter().zip(ids).map(move |(p, i)| (t.id, i, p))
    })
}

/// Changes moving leadership and ISR membership off `removed`, for fencing or unregistering.
fn leave_partitions(image: &ClusterImage, removed: i32, min_isr: MinIsr) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| r != removed && image.is_active_broker(r);
    let mut records = Vec::new();
    for (topic_id, partition_id, p) in partitions(image) {
        if !p.isr.contains(&removed) && p.leader != removed {
            continue;
        }
        let isr: Vec<i32> = p.isr.iter().copied().filter(|&r| r != removed).collect();
        let target = Target {
            isr,
            acceptable: &acceptable,
        };
        records.extend(change(image, min_isr, (topic_id, partition_id, p), target));
    }
    records
}

/// Where a change takes a partition: its target ISR, and who may lead.
struct Target<'a> {
    isr: Vec<i32>,
    acceptable: &'a dyn Fn(i32) -> bool,
}

/// The ELR of `p` once its ISR becomes `isr` (KIP-966): empty while the ISR holds at least
/// `min` members; below that, the members leaving the ISR join the ELR (the high watermark
/// cannot have passed them: it needs `min` in-sync replicas to move), and a replica back in
/// the ISR leaves it. Replica order.
fn eligible_leaders(p: &PartitionImage, isr: &[i32], min: usize) -> Vec<i32> {
    if isr.len() >= min {
        return Vec::new();
    }
    p.replicas
        .iter()
        .copied()
        .filter(|r| !isr.contains(r))
        .filter(|r| p.eligible_leader_replicas.contains(r) || p.isr.contains(r))
        .collect()
}

/// The change taking `p` to `target` with an election among its acceptable brokers, the ELR
/// kept as [`eligible_leaders`] says, or `None` if nothing would change. The ISR may become
/// empty (KIP-966; its last members are in the ELR then); an ELR member elected becomes the
/// ISR.
fn change(
    image: &ClusterImage,
    min_isr: MinIsr,
    (topic_id, partition_id, p): (TopicId, i32, &PartitionImage),
    target: Target<'_>,
) -> Option<MetadataRecord> {
    let Target {
        mut isr,
        acceptable,
    } = target;
    let min = min_isr.of(image, &topic_id, p.replicas.len());
    let mut elr = eligible_leaders(p, &isr, min);
    let leader = elect(p, &isr, &elr, acceptable);
    if isr.is_empty() && elr.contains(&leader) {
        isr = vec![leader];
        elr.retain(|&r| r != leader);
    }
    let record = PartitionChangeRecord {
        topic_id,
        partition_id,
        leader: (leader != p.leader).then_some(leader),
        isr: (isr != p.isr).then_some(isr),
        replicas: None,
        eligible_leader_replicas: (elr != p.eligible_leader_replicas).then_some(elr),
        last_known_elr: None,
    };
    let changes = record.leader.is_some()
        || record.isr.is_some()
        || record.eligible_leader_replicas.is_some();
    changes.then_some(MetadataRecord::PartitionChange(record))
}

/// The leader of `p` given the target ISR and ELR (the order in the module doc), or -1.
fn elect(p: &PartitionImage, isr: &[i32], elr: &[i32], acceptable: &dyn Fn(i32) -> bool) -> i32 {
    if p.leader != -1 && isr.contains(&p.leader) && acceptable(p.leader) {
        return p.leader;
    }
    let first_in = |set: &[i32]| {
        p.replicas
            .iter()
            .copied()
            .find(|&r| set.contains(&r) && acceptable(r))
    };
    let from_isr = first_in(isr);
    let from_elr = || isr.is_empty().then(|| first_in(elr)).flatten();
    from_isr.or_else(from_elr).unwrap_or(-1)
}

#[cfg(test)]
mod tests;
