use super::*;
use crate::metadata::record::{
    BrokerRegistrationChangeRecord, MetadataRecord, RegisterBrokerRecord, UnfenceBrokerRecord,
};
use crate::metadata::sample::RecordSource;
use std::collections::{BTreeMap, BTreeSet};

const RACKS: [&str; 4] = ["east", "north", "south", "west"];

/// A random cluster: 1 to 12 brokers with distinct ids, no racks, some racks, or mixed.
fn cluster(source: &mut RecordSource) -> Vec<UsableBroker<'static>> {
    let n = 1 + source.below(12) as usize;
    let rack_count = source.below(5) as usize; // 0: no racks
    let mixed = source.below(4) == 0;
    let mut ids = BTreeSet::new();
    while ids.len() < n {
        ids.insert(source.below(100) as i32);
    }
    ids.into_iter()
        .map(|id| {
            let rack = if rack_count == 0 || (mixed && source.below(3) == 0) {
                None
            } else {
                Some(RACKS[source.below(rack_count as u64) as usize])
            };
            UsableBroker { id, rack }
        })
        .collect()
}

fn rack_of(brokers: &[UsableBroker<'_>], id: i32) -> Option<&'static str> {
    let rack = brokers.iter().find(|b| b.id == id).unwrap().rack;
    rack.map(|r| *RACKS.iter().find(|&&k| k == r).unwrap())
}

#[test]
fn random_clusters_get_distinct_brokers_spread_racks_and_balanced_leaders() {
    for seed in 0..1000 {
        let mut source = RecordSource::new(seed);
        let brokers = cluster(&mut source);
        let n = brokers.len();
        let rf = 1 + source.below(n.min(4) as u64) as i16;
        let partitions = 1 + source.below(60) as i32;
        let start = source.next_u64() as usize;
        let placed = place(&brokers, start, partitions, rf).unwrap();
        assert_eq!(placed.len(), partitions as usize);
        let rack_groups: BTreeSet<Option<&str>> = brokers.iter().map(|b| b.rack).collect();
        let mut leaders: BTreeMap<i32, usize> = brokers.iter().map(|b| (b.id, 0)).collect();
        for replicas in &placed {
            assert_eq!(replicas.len(), rf as usize, "seed {seed}");
            let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
            assert_eq!(distinct.len(), replicas.len(), "seed {seed}: {replicas:?}");
            let racks: BTreeSet<Option<&str>> =
                replicas.iter().map(|&id| rack_of(&brokers, id)).collect();
            assert_eq!(
                racks.len(),
                (rf as usize).min(rack_groups.len()),
                "seed {seed}: {replicas:?} over {brokers:?}"
            );
            *leaders.get_mut(&replicas[0]).expect("a usable broker") += 1;
        }
        let (min, max) = (leaders.values().min(), leaders.values().max());
        assert!(
            max.unwrap() - min.unwrap() <= 1,
            "seed {seed}: leaders {leaders:?}"
        );
        // Deterministic, whatever order the brokers come in.
        let mut shuffled = brokers.clone();
        shuffled.reverse();
        shuffled.rotate_left(source.below(n as u64) as usize);
        assert_eq!(place(&shuffled, start, partitions, rf).unwrap(), placed);
    }
}

#[test]
fn rf_1_leaders_go_round_robin_from_the_start_index() {
    let brokers: Vec<UsableBroker<'_>> = (0..4).map(|id| UsableBroker { id, rack: None }).collect();
    let leaders = |start| -> Vec<i32> {
        let placed = place(&brokers, start, 6, 1).unwrap();
        placed.into_iter().map(|r| r[0]).collect()
    };
    assert_eq!(leaders(0), [0, 1, 2, 3, 0, 1]);
    assert_eq!(leaders(2), [2, 3, 0, 1, 2, 3]);
    assert_eq!(leaders(usize::MAX), leaders(usize::MAX % 12));
}

#[test]
fn racks_alternate_in_the_striped_order() {
    let brokers = [
        UsableBroker {
            id: 1,
            rack: Some("a"),
        },
        UsableBroker {
            id: 2,
            rack: Some("a"),
        },
        UsableBroker {
            id: 3,
            rack: Some("a"),
        },
        UsableBroker {
            id: 4,
            rack: Some("b"),
        },
        UsableBroker {
            id: 5,
            rack: Some("b"),
        },
        UsableBroker {
            id: 6,
            rack: Some("c"),
        },
    ];
    let leaders: Vec<i32> = place(&brokers, 0, 6, 1)
        .unwrap()
        .into_iter()
        .map(|r| r[0])
        .collect();
    assert_eq!(leaders, [1, 4, 6, 2, 5, 3]);
    // RF=3: always one replica per rack.
    for replicas in place(&brokers, 5, 30, 3).unwrap() {
        let mut racks: Vec<&str> = replicas
            .iter()
            .map(|&id| brokers.iter().find(|b| b.id == id).unwrap().rack.unwrap())
            .collect();
        racks.sort_unstable();
        assert_eq!(racks, ["a", "b", "c"], "{replicas:?}");
    }
}

#[test]
fn without_racks_replicas_spread_evenly_and_pairs_do_not_repeat() {
    for n in 2..8 {
        let brokers: Vec<UsableBroker<'_>> =
            (0..n).map(|id| UsableBroker { id, rack: None }).collect();
        // n × (n - 1) partitions at RF=2: every ordered pair of brokers exactly once.
        let count = n * (n - 1);
        let pairs: BTreeSet<Vec<i32>> = place(&brokers, 0, count, 2).unwrap().into_iter().collect();
        assert_eq!(pairs.len(), count as usize, "n {n}");
        // Whole rounds: every broker holds the same number of replicas.
        for rf in 1..=n.min(3) {
            let placed = place(&brokers, n as usize * 3, 4 * n, rf as i16).unwrap();
            let mut held = vec![0; n as usize];
            for id in placed.iter().flatten() {
                held[*id as usize] += 1;
            }
            assert!(held.iter().all(|&h| h == 4 * rf), "n {n} rf {rf}: {held:?}");
        }
    }
}

#[test]
fn impossible_requests_get_kafkas_errors() {
    let brokers: Vec<UsableBroker<'_>> = (0..3).map(|id| UsableBroker { id, rack: None }).collect();
    for rf in [0, -1, 4, i16::MAX] {
        assert!(
            matches!(
                place(&brokers, 0, 1, rf),
                Err(ReplicationError::InvalidReplicationFactor {
                    usable_brokers: 3,
                    ..
                })
            ),
            "rf {rf}"
        );
    }
    for partitions in [0, -1, i32::MIN] {
        assert!(matches!(
            place(&brokers, 0, partitions, 1),
            Err(ReplicationError::InvalidPartitions { .. })
        ));
    }
    assert!(matches!(
        place(&[], 0, 1, 1),
        Err(ReplicationError::InvalidReplicationFactor {
            replication_factor: 1,
            usable_brokers: 0
        })
    ));
}

#[test]
fn only_unfenced_brokers_outside_controlled_shutdown_get_replicas() {
    let mut image = ClusterImage::default();
    let apply = |image: &mut ClusterImage, record: MetadataRecord| {
        let offset = image.last_applied_offset() + 1;
        image.apply(&record, offset).unwrap();
    };
    for id in 0..5 {
        let epoch = image.last_applied_offset() + 1;
        apply(
            &mut image,
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: id,
                incarnation_id: [id as u8; 16],
                broker_epoch: epoch,
                endpoints: vec![],
                rack: Some(RACKS[id as usize % 2].into()),
                fenced: true,
            }),
        );
        if id != 1 {
            apply(
                &mut image,
                MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id, epoch }),
            );
        }
        if id == 3 {
            apply(
                &mut image,
                MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                    broker_id: id,
                    broker_epoch: epoch,
                    fenced: None,
                    in_controlled_shutdown: Some(true),
                }),
            );
        }
    }
    let usable: Vec<i32> = usable_brokers(&image).iter().map(|b| b.id).collect();
    assert_eq!(usable, [0, 2, 4]);
    let placed = place_replicas(&image, 7, 20, 3).unwrap();
    assert!(placed.iter().flatten().all(|id| usable.contains(id)));
    assert!(matches!(
        place_replicas(&image, 0, 1, 4),
        Err(ReplicationError::InvalidReplicationFactor {
            usable_brokers: 3,
            ..
        })
    ));
    assert_eq!(place_replicas(&image, 7, 20, 3).unwrap(), placed);
}
