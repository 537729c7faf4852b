use super::*;

/// The controller's `min.insync.replicas` in these tests (the broker default).
const MIN: MinIsr = MinIsr { default: 2 };
use crate::metadata::record::security_protocol;
use crate::metadata::sample::RecordSource;

/// A controller's view in a test: the image and the log offset the next record takes.
struct Cluster {
    image: ClusterImage,
}

impl Cluster {
    fn new() -> Self {
        Cluster {
            image: ClusterImage::default(),
        }
    }

    fn next_offset(&self) -> i64 {
        self.image.last_applied_offset() + 1
    }

    /// Applies `records` at consecutive offsets, as one committed batch would be.
    fn commit(&mut self, records: &[MetadataRecord]) {
        for record in records {
            let offset = self.next_offset();
            self.image
                .apply(record, offset)
                .unwrap_or_else(|e| panic!("{record:?} refused: {e}"));
        }
    }

    /// Registers `broker_id` (fresh process, no live session) and unfences it.
    fn join(&mut self, broker_id: i32, rack: Option<&str>, incarnation: u8) {
        let request = request(broker_id, rack, incarnation);
        let records =
            register_broker(&self.image, &request, self.next_offset(), false, MIN).unwrap();
        self.commit(&records);
        let records = unfence_broker(&self.image, broker_id, MIN).unwrap();
        self.commit(&records);
    }

    fn partition(&self, topic: &str, partition: usize) -> &PartitionImage {
        &self.image.topic(topic).unwrap().partitions[partition]
    }

    fn topic(&self, name: &str) -> &[PartitionImage] {
        &self.image.topic(name).unwrap().partitions
    }
}

fn request(broker_id: i32, rack: Option<&str>, incarnation: u8) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest {
        broker_id,
        incarnation_id: [incarnation; 16],
        endpoints: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: format!("b{broker_id}"),
            port: 9092,
            security_protocol: security_protocol::PLAINTEXT,
        }],
        rack: rack.map(str::to_string),
    }
}

fn topic_id(n: u8) -> TopicId {
    TopicId([n; 16])
}

fn changes(records: &[MetadataRecord]) -> Vec<&PartitionChangeRecord> {
    records
        .iter()
        .filter_map(|r| match r {
            MetadataRecord::PartitionChange(c) => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn registration_takes_its_offset_as_epoch_and_starts_fenced() {
    let mut c = Cluster::new();
    c.commit(&[MetadataRecord::NoOp, MetadataRecord::NoOp]);
    let records = register_broker(&c.image, &request(1, Some(""), 0xa), 2, false, MIN).unwrap();
    let [MetadataRecord::RegisterBroker(r)] = records.as_slice() else {
        panic!("{records:?}")
    };
    assert_eq!(
        (r.broker_epoch, r.fenced, r.rack.as_deref()),
        (2, true, None)
    );
    c.commit(&records);
    assert_eq!(c.image.broker(1).unwrap().broker_epoch, 2);
    assert!(c.image.broker(1).unwrap().fenced);
    // An offset the log has passed cannot be an epoch.
    assert!(matches!(
        register_broker(&c.image, &request(2, None, 0xb), 2, false, MIN),
        Err(ReplicationError::OffsetNotAfter { .. })
    ));
    let mut bad = request(2, None, 0xb);
    bad.endpoints[0].security_protocol = 9;
    assert!(matches!(
        register_broker(&c.image, &bad, 3, false, MIN),
        Err(ReplicationError::InvalidRecord { .. })
    ));
}

#[test]
fn another_process_cannot_take_a_live_registration() {
    let mut c = Cluster::new();
    c.join(1, None, 0xa);
    let stranger = request(1, None, 0xb);
    assert!(matches!(
        register_broker(&c.image, &stranger, c.next_offset(), true, MIN),
        Err(ReplicationError::DuplicateBrokerRegistration { broker_id: 1 })
    ));
    // The same process registering again (a retry) is fine, and so is a new process once the
    // old session expired; either way a new epoch, fenced.
    let again =
        register_broker(&c.image, &request(1, None, 0xa), c.next_offset(), true, MIN).unwrap();
    c.commit(&again);
    let epoch = c.image.broker(1).unwrap().broker_epoch;
    let records = register_broker(&c.image, &stranger, c.next_offset(), false, MIN).unwrap();
    c.commit(&records);
    let b = c.image.broker(1).unwrap();
    assert!(b.broker_epoch > epoch && b.fenced && b.incarnation_id == [0xb; 16]);
}

#[test]
fn rf_1_partitions_go_offline_with_their_broker_and_come_back() {
    let mut c = Cluster::new();
    for id in 0..3 {
        c.join(id, None, id as u8);
    }
    let records = create_topic(&c.image, "t", topic_id(1), 6, 1, 0).unwrap();
    assert_eq!(records.len(), 7);
    c.commit(&records);
    let led_by_1: Vec<usize> = (0..6)
        .filter(|&p| c.partition("t", p).leader == 1)
        .collect();
    assert_eq!(led_by_1.len(), 2);

    let records = fence_broker(&c.image, 1, MIN).unwrap();
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(matches!(records.last(), Some(MetadataRecord::FenceBroker(f)) if f.id == 1));
    for change in changes(&records) {
        // Offline with an empty ISR; the broker is its eligible leader (KIP-966).
        assert_eq!(
            (change.leader, change.isr.as_deref()),
            (Some(-1), Some(&[][..]))
        );
        assert_eq!(change.eligible_leader_replicas.as_deref(), Some(&[1][..]));
    }
    let before = c.image.clone();
    c.commit(&records);
    assert!(c.image.broker(1).unwrap().fenced);
    for p in 0..6 {
        let (now, was) = (
            c.partition("t", p),
            &before.topic("t").unwrap().partitions[p],
        );
        if led_by_1.contains(&p) {
            // Offline (NO_LEADER); the broker, the last in-sync replica, is in the ELR.
            assert_eq!((now.leader, now.isr.as_slice()), (-1, &[][..]));
            assert_eq!(now.eligible_leader_replicas, [1]);
            assert_eq!((now.leader_epoch, now.partition_epoch), (1, 1));
        } else {
            assert_eq!(now, was);
        }
    }
    // Fencing it again changes nothing.
    assert!(fence_broker(&c.image, 1, MIN).unwrap().is_empty());

    // The broker restarts: registers (fenced, new epoch), catches up, is unfenced.
    let records = register_broker(
        &c.image,
        &request(1, None, 0x77),
        c.next_offset(),
        false,
        MIN,
    );
    c.commit(&records.unwrap());
    let records = unfence_broker(&c.image, 1, MIN).unwrap();
    assert!(
        matches!(records.first(), Some(MetadataRecord::UnfenceBroker(u))
        if u.id == 1 && u.epoch == c.image.broker(1).unwrap().broker_epoch)
    );
    assert_eq!(changes(&records).len(), 2);
    c.commit(&records);
    for &p in &led_by_1 {
        let now = c.partition("t", p);
        assert_eq!((now.leader, now.isr.as_slice()), (1, &[1][..]));
        assert_eq!((now.leader_epoch, now.partition_epoch), (2, 2));
    }
    assert!(unfence_broker(&c.image, 1, MIN).unwrap().is_empty());
}

#[test]
fn rf_3_leadership_moves_to_another_isr_member_and_the_isr_shrinks() {
    let mut c = Cluster::new();
    for id in 0..4 {
        c.join(id, Some(["a", "b"][id as usize % 2]), id as u8);
    }
    c.commit(&create_topic(&c.image, "t", topic_id(1), 8, 3, 0).unwrap());
    let before = c.image.clone();
    let records = fence_broker(&c.image, 2, MIN).unwrap();
    c.commit(&records);
    let (mut moved, mut shrunk) = (0, 0);
    for (p, was) in before.topic("t").unwrap().partitions.iter().enumerate() {
        let now = c.partition("t", p);
        if !was.replicas.contains(&2) {
            assert_eq!(now, was);
            continue;
        }
        let expected_isr: Vec<i32> = was.isr.iter().copied().filter(|&r| r != 2).collect();
        assert_eq!(now.isr, expected_isr);
        assert_eq!(now.partition_epoch, 1);
        if was.leader == 2 {
            // The first other replica in replica order leads, in a new leader epoch.
            assert_eq!(now.leader, was.replicas[1]);
            assert_eq!(now.leader_epoch, 1);
            moved += 1;
        } else {
            assert_eq!((now.leader, now.leader_epoch), (was.leader, 0));
            shrunk += 1;
        }
    }
    assert_eq!((moved, shrunk), (2, 4));
    // Fence two more: every partition without broker 1 goes offline with an empty ISR, its
    // last in-sync members (fenced) in the ELR; the others are led by broker 1, whose
    // replicas that left below min.insync.replicas are eligible.
    c.commit(&fence_broker(&c.image, 0, MIN).unwrap());
    c.commit(&fence_broker(&c.image, 3, MIN).unwrap());
    for p in c.topic("t") {
        assert!(p.leader == -1 || p.leader == 1, "{p:?}");
        if p.leader == -1 {
            assert!(p.isr.is_empty(), "{p:?}");
            assert!(!p.eligible_leader_replicas.is_empty(), "{p:?}");
            for r in &p.eligible_leader_replicas {
                assert!(c.image.broker(*r).unwrap().fenced, "{p:?}");
            }
        }
        if p.replicas.contains(&1) {
            assert_eq!((p.leader, p.isr.as_slice()), (1, &[1][..]), "{p:?}");
        }
    }
    // Broker 3 comes back: partitions it kept as last ISR member are led again.
    let offline: Vec<usize> = (0..8)
        .filter(|&p| c.partition("t", p).leader == -1)
        .collect();
    assert!(!offline.is_empty());
    c.commit(&unfence_broker(&c.image, 3, MIN).unwrap());
    for p in offline {
        let now = c.partition("t", p);
        assert_eq!((now.leader, now.isr.as_slice()), (3, &[3][..]));
    }
}

#[test]
fn registering_again_while_leading_moves_leadership_off_the_new_fenced_registration() {
    let mut c = Cluster::new();
    for id in 0..2 {
        c.join(id, None, id as u8);
    }
    c.commit(&create_topic(&c.image, "t", topic_id(1), 2, 2, 0).unwrap());
    assert_eq!(c.partition("t", 0).leader, 0);
    let offset = c.next_offset();
    let records = register_broker(&c.image, &request(0, None, 0), offset, true, MIN).unwrap();
    assert!(matches!(&records[0], MetadataRecord::RegisterBroker(r) if r.broker_epoch == offset));
    assert_eq!(changes(&records).len(), 2);
    c.commit(&records);
    for p in c.topic("t") {
        assert_eq!((p.leader, p.isr.as_slice()), (1, &[1][..]), "{p:?}");
    }
}

#[test]
fn unregistering_moves_leadership_then_removes_the_broker() {
    let mut c = Cluster::new();
    for id in 0..3 {
        c.join(id, None, id as u8);
    }
    c.commit(&create_topic(&c.image, "t", topic_id(1), 3, 2, 0).unwrap());
    let records = unregister_broker(&c.image, 0, MIN).unwrap();
    assert!(
        matches!(records.last(), Some(MetadataRecord::UnregisterBroker(u)) if u.broker_id == 0)
    );
    c.commit(&records);
    assert!(c.image.broker(0).is_none());
    for p in c.topic("t") {
        assert_ne!(p.leader, 0);
        assert!(!p.isr.contains(&0));
    }
    assert!(matches!(
        unregister_broker(&c.image, 0, MIN),
        Err(ReplicationError::UnknownBroker { broker_id: 0 })
    ));
    assert!(fence_broker(&c.image, 9, MIN).is_err() && unfence_broker(&c.image, 9, MIN).is_err());
}

#[test]
fn topics_and_partitions_are_placed_over_usable_brokers() {
    let mut c = Cluster::new();
    for id in 0..3 {
        c.join(id, None, id as u8);
    }
    let records = create_topic(&c.image, "t", topic_id(1), 4, 2, 1).unwrap();
    c.commit(&records);
    let leaders: Vec<i32> = c.topic("t").iter().map(|p| p.leader).collect();
    assert_eq!(leaders, [1, 2, 0, 1]);
    for p in c.topic("t") {
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
    }
    assert!(matches!(
        create_topic(&c.image, "t", topic_id(2), 1, 1, 0),
        Err(ReplicationError::TopicNameExists { .. })
    ));
    assert!(matches!(
        create_topic(&c.image, "u", topic_id(2), 1, 4, 0),
        Err(ReplicationError::InvalidReplicationFactor {
            replication_factor: 4,
            usable_brokers: 3
        })
    ));
    let more = create_partitions(&c.image, topic_id(1), 7, 0).unwrap();
    assert_eq!(more.len(), 3);
    c.commit(&more);
    assert!(c.topic("t").iter().all(|p| p.replicas.len() == 2));
    assert!(matches!(
        create_partitions(&c.image, topic_id(1), 7, 0),
        Err(ReplicationError::InvalidPartitions { partitions: 7 })
    ));
    // With every broker fenced, nothing can be placed.
    for id in 0..3 {
        c.commit(&fence_broker(&c.image, id, MIN).unwrap());
    }
    assert!(matches!(
        create_topic(&c.image, "u", topic_id(2), 1, 1, 0),
        Err(ReplicationError::InvalidReplicationFactor {
            usable_brokers: 0,
            ..
        })
    ));
    assert!(c.topic("t").iter().all(|p| p.leader == -1));
}

/// Random clusters under random fencing, unfencing, restarts and topic creation: every
/// decision applies cleanly, a fenced broker leads nothing and is alone in any ISR it is in,
/// and a leaderless partition has no active ISR member.
#[test]
fn random_lifecycles_keep_leaders_live() {
    for seed in 0..200 {
        let mut source = RecordSource::new(seed);
        let mut c = Cluster::new();
        let brokers = 2 + source.below(5) as i32;
        for id in 0..brokers {
            c.join(
                id,
                Some(["a", "b", "c"][source.below(3) as usize]),
                id as u8,
            );
        }
        let mut topics = 0u8;
        for step in 0..40 {
            let id = source.below(brokers as u64) as i32;
            let records = match source.below(5) {
                0 => fence_broker(&c.image, id, MIN).unwrap(),
                1 => unfence_broker(&c.image, id, MIN).unwrap(),
                2 => {
                    let request = request(id, None, source.below(256) as u8);
                    let offset = c.next_offset();
                    register_broker(&c.image, &request, offset, false, MIN).unwrap()
                }
                _ => {
                    topics += 1;
                    let rf = 1 + source.below(3) as i16;
                    let name = format!("t{topics}");
                    let start = source.below(100) as usize;
                    create_topic(&c.image, &name, topic_id(topics), 3, rf, start)
                        .unwrap_or_default()
                }
            };
            c.commit(&records);
            check_leaders(&c.image, seed, step);
        }
    }
}

fn check_leaders(image: &ClusterImage, seed: u64, step: usize) {
    for topic in image.topics() {
        for p in &topic.partitions {
            if p.leader == -1 {
                assert!(
                    !p.isr.iter().any(|&r| image.is_active_broker(r)),
                    "seed {seed} step {step}: {p:?} leaderless with an active ISR member"
                );
            } else {
                assert!(
                    image.is_active_broker(p.leader),
                    "seed {seed} step {step}: {p:?} led by an inactive broker"
                );
            }
            for &r in &p.isr {
                if !image.is_active_broker(r) {
                    assert_eq!(p.isr, [r], "seed {seed} step {step}: {p:?}");
                }
            }
        }
    }
}

#[test]
fn alter_partition_changes_the_isr_of_a_leader_with_current_epochs_only() {
    let mut c = Cluster::new();
    for id in 0..4 {
        c.join(id, None, id as u8);
    }
    c.commit(&create_topic(&c.image, "t", topic_id(1), 1, 3, 0).unwrap());
    let p = c.partition("t", 0).clone();
    let (leader, follower) = (p.leader, p.replicas[1]);
    let epoch_of = |c: &Cluster, b: i32| c.image.broker(b).unwrap().broker_epoch;
    let shrink: Vec<(i32, Option<i64>)> = p
        .isr
        .iter()
        .filter(|&&r| r != follower)
        .map(|&r| (r, None))
        .collect();
    let change = |isr: Vec<(i32, Option<i64>)>, le: i32, pe: i32| IsrChange {
        topic_id: topic_id(1),
        partition_id: 0,
        leader_epoch: le,
        partition_epoch: pe,
        new_isr: isr,
    };
    // A stale broker epoch refuses the whole request.
    let stale = epoch_of(&c, leader) - 1;
    assert!(matches!(
        alter_partition(
            &c.image,
            leader,
            stale,
            &[change(shrink.clone(), 0, 0)],
            MIN
        ),
        Err(ReplicationError::StaleBrokerEpoch { .. })
    ));
    let epoch = epoch_of(&c, leader);
    let unknown_partition = IsrChange {
        partition_id: 5,
        ..change(shrink.clone(), 0, 0)
    };
    let unknown_topic = IsrChange {
        topic_id: topic_id(9),
        ..change(shrink.clone(), 0, 0)
    };
    let with_dup = vec![(leader, None), (leader, None)];
    let without_leader: Vec<_> = p
        .isr
        .iter()
        .filter(|&&r| r != leader)
        .map(|&r| (r, None))
        .collect();
    let outsider = *[0, 1, 2, 3]
        .iter()
        .find(|b| !p.replicas.contains(b))
        .unwrap();
    let requests = [
        change(shrink.clone(), 1, 0),
        change(shrink.clone(), 0, 1),
        change(with_dup, 0, 0),
        change(without_leader, 0, 0),
        change(vec![(leader, None), (outsider, None)], 0, 0),
        unknown_partition,
        unknown_topic,
    ];
    let IsrDecision { records, outcomes } =
        alter_partition(&c.image, leader, epoch, &requests, MIN).unwrap();
    assert!(records.is_empty());
    assert_eq!(
        outcomes
            .iter()
            .map(|o| o.clone().unwrap_err())
            .collect::<Vec<_>>(),
        [
            IsrRefusal::FencedLeaderEpoch,
            IsrRefusal::InvalidUpdateVersion,
            IsrRefusal::InvalidRequest,
            IsrRefusal::InvalidRequest,
            IsrRefusal::InvalidRequest,
            IsrRefusal::UnknownTopicOrPartition,
            IsrRefusal::UnknownTopicId,
        ]
    );
    // Only the leader may change it.
    let IsrDecision { outcomes, .. } = alter_partition(
        &c.image,
        follower,
        epoch_of(&c, follower),
        &[change(shrink.clone(), 0, 0)],
        MIN,
    )
    .unwrap();
    assert_eq!(outcomes, [Err(IsrRefusal::NotLeaderOrFollower)]);
    // The shrink is accepted: one record, the answer is the state after it.
    let IsrDecision { records, outcomes } = alter_partition(
        &c.image,
        leader,
        epoch,
        &[change(shrink.clone(), 0, 0)],
        MIN,
    )
    .unwrap();
    c.commit(&records);
    let now = c.partition("t", 0).clone();
    let expected = IsrState {
        leader,
        leader_epoch: 0,
        isr: shrink.iter().map(|&(r, _)| r).collect(),
        partition_epoch: 1,
    };
    assert_eq!(outcomes, [Ok(expected.clone())]);
    assert_eq!((now.isr.clone(), now.partition_epoch), (expected.isr, 1));
    // Proposing the ISR in force again changes nothing and answers it.
    let IsrDecision { records, outcomes } = alter_partition(
        &c.image,
        leader,
        epoch,
        &[change(shrink.clone(), 0, 1)],
        MIN,
    )
    .unwrap();
    assert!(records.is_empty());
    assert_eq!(outcomes[0].as_ref().unwrap().partition_epoch, 1);
    // Adding the follower back: refused while it is fenced or with a stale epoch, accepted
    // with its current one.
    let mut grow = shrink.clone();
    grow.push((follower, Some(epoch_of(&c, follower))));
    c.commit(&fence_broker(&c.image, follower, MIN).unwrap());
    let pe = c.partition("t", 0).partition_epoch;
    let IsrDecision {
        records: _,
        outcomes,
    } = alter_partition(&c.image, leader, epoch, &[change(grow.clone(), 0, pe)], MIN).unwrap();
    assert_eq!(outcomes, [Err(IsrRefusal::IneligibleReplica)]);
    c.commit(&unfence_broker(&c.image, follower, MIN).unwrap());
    let mut stale_member = shrink.clone();
    stale_member.push((follower, Some(epoch_of(&c, follower) - 1)));
    let IsrDecision {
        records: _,
        outcomes,
    } = alter_partition(&c.image, leader, epoch, &[change(stale_member, 0, pe)], MIN).unwrap();
    assert_eq!(outcomes, [Err(IsrRefusal::IneligibleReplica)]);
    let IsrDecision { records, outcomes } =
        alter_partition(&c.image, leader, epoch, &[change(grow.clone(), 0, pe)], MIN).unwrap();
    c.commit(&records);
    assert!(outcomes[0].is_ok());
    let isr: Vec<i32> = grow.iter().map(|&(r, _)| r).collect();
    assert_eq!(c.partition("t", 0).isr, isr);
    assert_eq!(c.partition("t", 0).partition_epoch, pe + 1);
}

#[test]
fn preferred_elections_move_leadership_back_to_the_first_replica_once_it_is_in_sync() {
    let mut c = Cluster::new();
    for id in 0..3 {
        c.join(id, None, id as u8);
    }
    let t = topic_id(4);
    c.commit(&create_topic(&c.image, "t", t, 3, 3, 0).unwrap());
    let preferred = c.partition("t", 0).replicas[0];
    assert_eq!(c.partition("t", 0).leader, preferred);
    let preferred_of =
        |c: &Cluster, p: i32| elect_leader(&c.image, t, p, ElectionType::Preferred, MIN);
    assert_eq!(preferred_of(&c, 0), ElectionOutcome::NotNeeded);
    assert_eq!(preferred_of(&c, 3), ElectionOutcome::Unknown);
    assert_eq!(
        elect_leader(&c.image, topic_id(9), 0, ElectionType::Preferred, MIN),
        ElectionOutcome::Unknown
    );

    // The preferred replica's broker is fenced: leadership moves away; it cannot come back
    // while fenced, nor once unfenced until it is in the ISR again.
    c.commit(&fence_broker(&c.image, preferred, MIN).unwrap());
    assert_ne!(c.partition("t", 0).leader, preferred);
    assert_eq!(preferred_of(&c, 0), ElectionOutcome::NotAvailable);
    c.commit(&unfence_broker(&c.image, preferred, MIN).unwrap());
    assert_eq!(preferred_of(&c, 0), ElectionOutcome::NotAvailable);
    assert!(balance_leaders(&c.image, 100).is_empty());
    let rejoin = |c: &Cluster, p: usize| {
        let now = c.partition("t", p);
        let mut isr = now.isr.clone();
        isr.push(preferred);
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: t,
            partition_id: p as i32,
            leader: None,
            isr: Some(isr),
            replicas: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
        })
    };
    let moved: Vec<usize> = (0..3)
        .filter(|&p| !c.partition("t", p).isr.contains(&preferred))
        .collect();
    for &p in &moved {
        let record = rejoin(&c, p);
        c.commit(&[record]);
    }
    let before = c.partition("t", 0).leader_epoch;
    let ElectionOutcome::Elected(record) = preferred_of(&c, 0) else {
        panic!("the preferred replica is in sync and active");
    };
    c.commit(&[record]);
    let now = c.partition("t", 0);
    assert_eq!(now.leader, preferred);
    assert_eq!(now.leader_epoch, before + 1);
    assert_eq!(preferred_of(&c, 0), ElectionOutcome::NotNeeded);

    // The automatic round elects every other imbalanced partition, bounded by `max`.
    let imbalanced = (0..3)
        .filter(|&p| c.partition("t", p).leader != c.partition("t", p).replicas[0])
        .count();
    assert_eq!(balance_leaders(&c.image, 0).len(), 0);
    let records = balance_leaders(&c.image, 100);
    assert_eq!(records.len(), imbalanced);
    c.commit(&records);
    for p in c.topic("t") {
        assert_eq!(p.leader, p.replicas[0], "{p:?}");
    }
    assert!(balance_leaders(&c.image, 100).is_empty());
}

#[test]
fn unclean_elections_take_any_active_replica_of_a_leaderless_partition_only() {
    let mut c = Cluster::new();
    for id in 0..3 {
        c.join(id, None, id as u8);
    }
    let t = topic_id(5);
    c.commit(&create_topic(&c.image, "t", t, 1, 3, 0).unwrap());
    let unclean = |c: &Cluster| elect_leader(&c.image, t, 0, ElectionType::Unclean, MIN);
    assert_eq!(unclean(&c), ElectionOutcome::NotNeeded, "it has a leader");
    let replicas = c.partition("t", 0).replicas.clone();
    // Fence the replicas in order: the ISR empties, the two that left it below
    // min.insync.replicas (2) are eligible, the first is not (it left with two in sync).
    for &r in &replicas {
        c.commit(&fence_broker(&c.image, r, MIN).unwrap());
    }
    let p = c.partition("t", 0);
    assert_eq!((p.leader, p.isr.as_slice()), (-1, &[][..]));
    assert_eq!(p.eligible_leader_replicas, replicas[1..]);
    assert_eq!(
        unclean(&c),
        ElectionOutcome::NotAvailable,
        "no active replica"
    );
    assert!(elect_unclean_leaders(&c.image, &|_| true, MIN).is_empty());
    // A replica that was not in sync comes back: only an unclean election gives it the lead.
    c.commit(&unfence_broker(&c.image, replicas[0], MIN).unwrap());
    assert_eq!(c.partition("t", 0).leader, -1, "no clean leader");
    assert!(elect_unclean_leaders(&c.image, &|_| false, MIN).is_empty());
    let records = elect_unclean_leaders(&c.image, &|id| *id == t, MIN);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records,
        vec![match unclean(&c) {
            ElectionOutcome::Elected(r) => r,
            other => panic!("{other:?}"),
        }]
    );
    c.commit(&records);
    let p = c.partition("t", 0);
    assert_eq!(
        (p.leader, p.isr.as_slice()),
        (replicas[0], &[replicas[0]][..])
    );
    assert!(p.eligible_leader_replicas.is_empty());
    assert_eq!(unclean(&c), ElectionOutcome::NotNeeded);
    assert_eq!(ElectionType::from_wire(0), Some(ElectionType::Preferred));
    assert_eq!(ElectionType::from_wire(1), Some(ElectionType::Unclean));
    assert_eq!(ElectionType::from_wire(2), None);
}

#[test]
fn replicas_that_leave_the_isr_below_min_insync_replicas_stay_eligible_to_lead() {
    use crate::metadata::record::{ConfigRecord, ConfigResourceType};
    let mut c = Cluster::new();
    for id in 0..3 {
        c.join(id, None, id as u8);
    }
    let t = topic_id(6);
    c.commit(&create_topic(&c.image, "t", t, 1, 3, 0).unwrap());
    let r = c.partition("t", 0).replicas.clone();
    // One out: two left in sync (= min.insync.replicas), nobody is eligible outside it.
    c.commit(&fence_broker(&c.image, r[0], MIN).unwrap());
    assert!(c.partition("t", 0).eligible_leader_replicas.is_empty());
    // Below the minimum: the high watermark stops, so the one leaving keeps every committed
    // record and may lead once the ISR is empty.
    c.commit(&fence_broker(&c.image, r[1], MIN).unwrap());
    let p = c.partition("t", 0);
    assert_eq!(
        (p.isr.as_slice(), p.eligible_leader_replicas.as_slice()),
        (&[r[2]][..], &[r[1]][..])
    );
    c.commit(&fence_broker(&c.image, r[2], MIN).unwrap());
    let p = c.partition("t", 0);
    assert_eq!((p.leader, p.isr.as_slice()), (-1, &[][..]));
    assert_eq!(p.eligible_leader_replicas, r[1..]);
    // The first to come back: not eligible (it left with two in sync), the partition stays
    // offline; the next one is, and leads with an ISR of itself.
    c.commit(&unfence_broker(&c.image, r[0], MIN).unwrap());
    assert_eq!(c.partition("t", 0).leader, -1);
    c.commit(&unfence_broker(&c.image, r[1], MIN).unwrap());
    let p = c.partition("t", 0);
    assert_eq!((p.leader, p.isr.as_slice()), (r[1], &[r[1]][..]));
    assert_eq!(p.eligible_leader_replicas, [r[2]]);
    // The leader's AlterPartition back to min.insync.replicas clears the ELR.
    let epoch = c.image.broker(r[1]).unwrap().broker_epoch;
    let grow = IsrChange {
        topic_id: t,
        partition_id: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: vec![(r[1], None), (r[0], None)],
    };
    let decision = alter_partition(&c.image, r[1], epoch, &[grow], MIN).unwrap();
    c.commit(&decision.records);
    let p = c.partition("t", 0);
    assert_eq!(p.isr, [r[1], r[0]]);
    assert!(p.eligible_leader_replicas.is_empty());
    // A shrink below the minimum by the leader makes the follower eligible.
    let shrink = IsrChange {
        topic_id: t,
        partition_id: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: vec![(r[1], None)],
    };
    let decision = alter_partition(&c.image, r[1], epoch, &[shrink], MIN).unwrap();
    c.commit(&decision.records);
    assert_eq!(c.partition("t", 0).eligible_leader_replicas, [r[0]]);

    // A topic whose min.insync.replicas is 1: the high watermark moves with one in sync, so
    // nobody leaving the ISR is eligible (only the last member, when it empties).
    c.commit(&unfence_broker(&c.image, r[2], MIN).unwrap());
    let u = topic_id(7);
    c.commit(&create_topic(&c.image, "u", u, 1, 3, 0).unwrap());
    c.commit(&[MetadataRecord::Config(ConfigRecord {
        resource_type: ConfigResourceType::Topic,
        resource_name: "u".into(),
        name: "min.insync.replicas".into(),
        value: Some("1".into()),
    })]);
    assert_eq!(MIN.of(&c.image, &u, 3), 1);
    assert_eq!(MIN.of(&c.image, &t, 3), 2);
    assert_eq!(
        MinIsr { default: 5 }.of(&c.image, &t, 3),
        3,
        "capped at the replicas"
    );
    let ru = c.partition("u", 0).replicas.clone();
    let live: Vec<i32> = ru
        .iter()
        .copied()
        .filter(|b| !c.image.broker(*b).unwrap().fenced)
        .collect();
    for b in &live[..live.len() - 1] {
        c.commit(&fence_broker(&c.image, *b, MIN).unwrap());
        assert!(c.partition("u", 0).eligible_leader_replicas.is_empty());
    }
}
