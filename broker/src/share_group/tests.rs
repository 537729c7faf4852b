use super::*;
use std::cell::RefCell;

const T1: uuid::Uuid = uuid::Uuid::from_u128(1);
const T2: uuid::Uuid = uuid::Uuid::from_u128(2);

/// A metadata view the tests can change between heartbeats.
struct Meta(RefCell<BTreeMap<String, TopicInfo>>);

impl Meta {
    fn new(topics: &[(&str, uuid::Uuid, i32)]) -> Meta {
        let m = Meta(RefCell::new(BTreeMap::new()));
        for (name, id, partitions) in topics {
            m.set(name, *id, *partitions);
        }
        m
    }
    fn set(&self, name: &str, id: uuid::Uuid, partitions: i32) {
        self.0
            .borrow_mut()
            .insert(name.to_string(), TopicInfo { id, partitions });
    }
    fn lookup(&self) -> impl Fn(&str) -> Option<TopicInfo> + '_ {
        move |name| self.0.borrow().get(name).copied()
    }
}

fn beat(member: &str, epoch: i32, topics: Option<&[&str]>) -> ShareHeartbeat {
    ShareHeartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rack_id: None,
        subscribed_topic_names: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
    }
}

fn partitions(a: &Assignment, topic: uuid::Uuid) -> Vec<i32> {
    a.get(&topic)
        .map(|p| p.iter().copied().collect())
        .unwrap_or_default()
}

#[test]
fn members_join_and_share_out_the_partitions() {
    let meta = Meta::new(&[("t", T1, 4)]);
    let mut g = ShareGroups::new(ShareGroupConfig::default());
    let a = g.heartbeat(0, beat("a", 0, Some(&["t"])), &meta.lookup());
    assert_eq!(a.error_code, code::NONE);
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.heartbeat_interval_ms, 5_000);
    assert_eq!(partitions(a.assignment.as_ref().unwrap(), T1), [0, 1, 2, 3]);

    let b = g.heartbeat(10, beat("b", 0, Some(&["t"])), &meta.lookup());
    assert_eq!(b.member_epoch, 2);
    let b_parts = partitions(b.assignment.as_ref().unwrap(), T1);
    assert_eq!(b_parts.len(), 2);
    // No revocation step: a's next heartbeat moves it to epoch 2 with the other half.
    let a2 = g.heartbeat(20, beat("a", 1, None), &meta.lookup());
    assert_eq!(a2.member_epoch, 2);
    let a_parts = partitions(a2.assignment.as_ref().unwrap(), T1);
    let mut all = [a_parts, b_parts].concat();
    all.sort();
    assert_eq!(all, [0, 1, 2, 3]);
    // Unchanged: no assignment in the answer.
    let a3 = g.heartbeat(30, beat("a", 2, None), &meta.lookup());
    assert_eq!((a3.member_epoch, a3.assignment), (2, None));
}

#[test]
fn more_members_than_partitions_share_each_partition() {
    let meta = Meta::new(&[("t", T1, 2)]);
    let mut g = ShareGroups::new(ShareGroupConfig::default());
    for m in ["a", "b", "c", "d", "e"] {
        g.heartbeat(0, beat(m, 0, Some(&["t"])), &meta.lookup());
    }
    let view = g.describe("g").unwrap();
    // Everyone reconciles at its next heartbeat.
    for m in &view.members {
        g.heartbeat(1, beat(&m.member_id, m.member_epoch, None), &meta.lookup());
    }
    let view = g.describe("g").unwrap();
    let mut covered = BTreeSet::new();
    for m in &view.members {
        let mine = partitions(&m.assignment, T1);
        assert_eq!(mine.len(), 1, "{m:?}");
        covered.extend(mine);
    }
    assert_eq!(covered, BTreeSet::from([0, 1]));
    assert_eq!(view.state, "Stable");
}

#[test]
fn bad_heartbeats_are_refused_with_kafkas_codes() {
    let meta = Meta::new(&[("t", T1, 1)]);
    let mut g = ShareGroups::new(ShareGroupConfig::default());
    let lookup = meta.lookup();
    let refused = |g: &mut ShareGroups, hb: ShareHeartbeat| g.heartbeat(0, hb, &lookup).error_code;
    assert_eq!(
        refused(&mut g, beat("", 0, Some(&["t"]))),
        code::INVALID_REQUEST
    );
    assert_eq!(refused(&mut g, beat("a", 0, None)), code::INVALID_REQUEST);
    assert_eq!(
        refused(&mut g, beat("a", 0, Some(&[]))),
        code::INVALID_REQUEST
    );
    assert_eq!(refused(&mut g, beat("a", -2, None)), code::INVALID_REQUEST);
    let mut racked = beat("a", 0, Some(&["t"]));
    racked.rack_id = Some(String::new());
    assert_eq!(refused(&mut g, racked), code::INVALID_REQUEST);
    let mut nameless = beat("a", 0, Some(&["t"]));
    nameless.group_id.clear();
    assert_eq!(refused(&mut g, nameless), code::INVALID_REQUEST);
    assert_eq!(refused(&mut g, beat("a", 3, None)), code::UNKNOWN_MEMBER_ID);
    assert!(!g.contains("g"), "a refused heartbeat made a group");
    assert_eq!(refused(&mut g, beat("a", 0, Some(&["t"]))), code::NONE);
    assert_eq!(
        refused(&mut g, beat("a", 7, None)),
        code::FENCED_MEMBER_EPOCH
    );
    assert_eq!(refused(&mut g, beat("z", 1, None)), code::UNKNOWN_MEMBER_ID);
    assert_eq!(
        refused(&mut g, beat("z", LEAVE_EPOCH, None)),
        code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn a_full_group_refuses_new_members_but_not_its_own() {
    let meta = Meta::new(&[("t", T1, 1)]);
    let config = ShareGroupConfig {
        max_size: 2,
        ..ShareGroupConfig::default()
    };
    let mut g = ShareGroups::new(config);
    for m in ["a", "b"] {
        assert_eq!(
            g.heartbeat(0, beat(m, 0, Some(&["t"])), &meta.lookup())
                .error_code,
            0
        );
    }
    let c = g.heartbeat(0, beat("c", 0, Some(&["t"])), &meta.lookup());
    assert_eq!(c.error_code, code::GROUP_MAX_SIZE_REACHED);
    let a = g.heartbeat(0, beat("a", 0, Some(&["t"])), &meta.lookup());
    assert_eq!(
        a.error_code,
        code::NONE,
        "a member rejoining is not a new member"
    );
}

#[test]
fn leaving_and_expiring_hand_partitions_to_the_others() {
    let meta = Meta::new(&[("t", T1, 2)]);
    let mut g = ShareGroups::new(ShareGroupConfig::default());
    g.heartbeat(0, beat("a", 0, Some(&["t"])), &meta.lookup());
    g.heartbeat(0, beat("b", 0, Some(&["t"])), &meta.lookup());
    g.heartbeat(0, beat("c", 0, Some(&["t"])), &meta.lookup());
    let left = g.heartbeat(5, beat("c", 3, None), &meta.lookup());
    assert_eq!(left.error_code, code::NONE);
    let left = g.heartbeat(6, beat("c", LEAVE_EPOCH, None), &meta.lookup());
    assert_eq!(
        (left.error_code, left.member_epoch),
        (code::NONE, LEAVE_EPOCH)
    );
    assert_eq!(g.describe("g").unwrap().group_epoch, 4);

    // b keeps heartbeating, a goes silent and expires.
    let b = g.heartbeat(40_000, beat("b", 2, None), &meta.lookup());
    assert_eq!(b.member_epoch, 4);
    assert_eq!(g.next_deadline_ms(), Some(45_000));
    assert!(g.tick(44_999, &meta.lookup()).is_empty());
    let expired = g.tick(45_000, &meta.lookup());
    assert_eq!(expired, [("g".to_string(), vec!["a".to_string()])]);
    let b = g.heartbeat(45_001, beat("b", 4, None), &meta.lookup());
    assert_eq!(partitions(b.assignment.as_ref().unwrap(), T1), [0, 1]);
    let ids: Vec<String> = g
        .describe("g")
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    assert_eq!(ids, ["b"]);
    assert!(!g.remove_if_empty("g"));
    g.heartbeat(45_002, beat("b", 5, None), &meta.lookup());
    g.heartbeat(
        45_003,
        beat("b", 5, None).with_epoch(LEAVE_EPOCH),
        &meta.lookup(),
    );
    assert_eq!(g.describe("g").unwrap().state, "Empty");
    assert!(g.remove_if_empty("g"));
}

impl ShareHeartbeat {
    fn with_epoch(mut self, epoch: i32) -> Self {
        self.member_epoch = epoch;
        self
    }
}

#[test]
fn metadata_changes_bump_the_epoch_and_reach_the_assignment() {
    let meta = Meta::new(&[("t", T1, 1)]);
    let mut g = ShareGroups::new(ShareGroupConfig::default());
    let a = g.heartbeat(0, beat("a", 0, Some(&["t", "later"])), &meta.lookup());
    assert_eq!(a.member_epoch, 1);
    meta.set("later", T2, 3);
    let a = g.heartbeat(1, beat("a", 1, None), &meta.lookup());
    assert_eq!(a.member_epoch, 2);
    let got = a.assignment.unwrap();
    assert_eq!(
        (partitions(&got, T1), partitions(&got, T2)),
        (vec![0], vec![0, 1, 2])
    );
    meta.set("t", T1, 2);
    let a = g.heartbeat(2, beat("a", 2, None), &meta.lookup());
    assert_eq!(partitions(a.assignment.as_ref().unwrap(), T1), [0, 1]);
    meta.0.borrow_mut().remove("later");
    let a = g.heartbeat(3, beat("a", 3, None), &meta.lookup());
    assert_eq!(a.member_epoch, 4);
    assert!(!a.assignment.unwrap().contains_key(&T2));
}

#[test]
fn records_round_trip_and_truncated_ones_are_refused() {
    let meta = Meta::new(&[("t", T1, 3), ("u", T2, 1)]);
    let mut g = ShareGroups::new(ShareGroupConfig::default());
    let mut racked = beat("a", 0, Some(&["t", "u"]));
    racked.rack_id = Some("r1".into());
    g.heartbeat(0, racked, &meta.lookup());
    g.heartbeat(0, beat("b", 0, Some(&["t"])), &meta.lookup());
    let bytes = g.record("g").unwrap();
    let mut back = ShareGroups::new(ShareGroupConfig::default());
    assert!(back.restore(100, &bytes));
    assert_eq!(back.describe("g"), g.describe("g"));
    assert_eq!(back.record("g").unwrap(), bytes);
    assert_eq!(back.next_deadline_ms(), Some(45_100));
    for cut in 0..bytes.len() {
        assert!(!ShareGroups::new(ShareGroupConfig::default()).restore(0, &bytes[..cut]));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(!back.restore(0, &longer));
    // Garbage never panics.
    let mut x = 0x9e37_79b9_u32;
    for _ in 0..2_000 {
        let junk: Vec<u8> = (0..(x % 64))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = back.restore(0, &junk);
        x = x.wrapping_add(1);
    }
    back.forget("g");
    assert!(!back.contains("g"));
}

/// Every subscribed partition has a member, every member with something to consume has a
/// partition, and nobody gets a topic it did not subscribe to, over many random groups.
#[test]
fn the_assignor_covers_everything_it_should() {
    let mut x = 0x1234_5678_u64;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let names = ["a", "b", "c", "d"];
    for _ in 0..500 {
        let mut topics: BTreeMap<String, TopicInfo> = BTreeMap::new();
        for (i, n) in names.iter().enumerate() {
            if next(4) != 0 {
                let info = TopicInfo {
                    id: uuid::Uuid::from_u128(i as u128 + 1),
                    partitions: next(6) as i32,
                };
                topics.insert(n.to_string(), info);
            }
        }
        let subs: Vec<(String, BTreeSet<String>)> = (0..1 + next(8))
            .map(|m| {
                let s = names
                    .iter()
                    .filter(|_| next(2) == 0)
                    .map(|n| n.to_string())
                    .collect();
                (format!("m{m}"), s)
            })
            .collect();
        let subscriptions: BTreeMap<&str, &BTreeSet<String>> =
            subs.iter().map(|(m, s)| (m.as_str(), s)).collect();
        let out = assignor::assign(&subscriptions, &topics);
        for (name, info) in &topics {
            let subscribers: Vec<&str> = subscriptions
                .iter()
                .filter(|(_, s)| s.contains(name))
                .map(|(m, _)| *m)
                .collect();
            for p in 0..info.partitions {
                let holders = out
                    .values()
                    .filter(|a| a.get(&info.id).is_some_and(|ps| ps.contains(&p)))
                    .count();
                assert!(
                    subscribers.is_empty() || holders >= 1,
                    "{name}-{p} unassigned"
                );
            }
        }
        for (member, subscribed) in &subscriptions {
            let mine = &out[*member];
            let reachable = subscribed
                .iter()
                .any(|t| topics.get(t).is_some_and(|i| i.partitions > 0));
            assert_eq!(!mine.is_empty(), reachable, "{member}: {mine:?}");
            for id in mine.keys() {
                let name = topics.iter().find(|(_, i)| i.id == *id).unwrap().0;
                assert!(subscribed.contains(name));
            }
        }
    }
}
