//! The consumer-group state machine on virtual time.

use super::*;
use std::cell::Cell;

const T: uuid::Uuid = uuid::Uuid::from_u128(7);
const U: uuid::Uuid = uuid::Uuid::from_u128(8);

/// Topics `t` (6 partitions) and `u` (2), at metadata version 1.
struct Topics;

impl TopicView for Topics {
    fn topic(&self, name: &str) -> Option<TopicInfo> {
        topics(name)
    }
    fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        f("t");
        f("u");
    }
    fn version(&self) -> u64 {
        1
    }
}

fn topics(name: &str) -> Option<TopicInfo> {
    match name {
        "t" => Some(TopicInfo {
            id: T,
            partitions: 6,
        }),
        "u" => Some(TopicInfo {
            id: U,
            partitions: 2,
        }),
        _ => None,
    }
}

fn config() -> ConsumerGroupConfig {
    ConsumerGroupConfig {
        session_timeout_ms: 10_000,
        heartbeat_interval_ms: 1_000,
        max_size: 4,
        regex_refresh_min_interval_ms: 1_000,
    }
}

fn join_req(member: &str, subs: &[&str]) -> Heartbeat {
    Heartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 5_000,
        subscribed_topic_names: Some(subs.iter().map(|s| s.to_string()).collect()),
        owned: Some(Assignment::new()),
        ..Heartbeat::default()
    }
}

fn beat_req(member: &str, epoch: i32, owned: Option<Assignment>) -> Heartbeat {
    Heartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned,
        ..Heartbeat::default()
    }
}

fn parts(a: &Assignment, id: uuid::Uuid) -> Vec<i32> {
    a.get(&id)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default()
}

/// A client that owns what it was last told (revoking and adding at once) and reports it.
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

impl Client {
    fn join(c: &mut ConsumerGroups, now: i64, id: &str, subs: &[&str]) -> Client {
        let r = c.heartbeat(now, 1, join_req(id, subs), &Topics);
        assert_eq!(r.error_code, code::NONE, "{r:?}");
        let mut me = Client {
            id: id.into(),
            epoch: r.member_epoch,
            owned: Assignment::new(),
        };
        me.owned = r.assignment.expect("a join gets an assignment");
        me
    }

    fn beat(&mut self, c: &mut ConsumerGroups, now: i64) -> HeartbeatResponse {
        let r = c.heartbeat(
            now,
            1,
            beat_req(&self.id, self.epoch, Some(self.owned.clone())),
            &Topics,
        );
        if r.error_code == code::NONE {
            self.epoch = r.member_epoch;
            if let Some(a) = &r.assignment {
                self.owned = a.clone();
            }
        }
        r
    }
}

fn assert_exclusive(c: &ConsumerGroups) {
    let g = &c.groups["g"];
    let mut seen = BTreeSet::new();
    for m in g.members.values() {
        for p in pairs(&m.assigned).chain(pairs(&m.pending_revocation)) {
            assert!(seen.insert(p), "{p:?} held twice: {:?}", g.members);
        }
    }
}

#[test]
fn first_member_gets_every_partition_at_epoch_one() {
    let mut c = ConsumerGroups::new(config());
    let a = Client::join(&mut c, 0, "a", &["t"]);
    assert_eq!(a.epoch, 1);
    assert_eq!(parts(&a.owned, T), vec![0, 1, 2, 3, 4, 5]);
    let d = c.describe("g").unwrap();
    assert_eq!(
        (d.state, d.group_epoch, d.assignment_epoch),
        ("Stable", 1, 1)
    );
    assert_eq!(d.assignor_name, "uniform");
}

#[test]
fn partitions_move_only_after_the_old_owner_revokes_them() {
    let mut c = ConsumerGroups::new(config());
    let mut a = Client::join(&mut c, 0, "a", &["t"]);
    let mut b = Client::join(&mut c, 10, "b", &["t"]);
    assert_eq!(b.epoch, 2);
    assert!(parts(&b.owned, T).is_empty(), "A still owns everything");
    assert_exclusive(&c);
    assert_eq!(c.describe("g").unwrap().state, "Reconciling");
    // A is told to keep half; its epoch stays until it has revoked the rest.
    let r = a.beat(&mut c, 20);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(parts(&a.owned, T).len(), 3);
    assert_exclusive(&c);
    // B still gets nothing: A has not confirmed.
    let r = b.beat(&mut c, 30);
    assert!(r.assignment.is_none());
    assert!(parts(&b.owned, T).is_empty());
    // A confirms (its owned set no longer has the revoked partitions): epoch 2.
    let r = a.beat(&mut c, 40);
    assert_eq!(r.member_epoch, 2);
    let r = b.beat(&mut c, 50);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(parts(&b.owned, T).len(), 3);
    let mut all: Vec<i32> = parts(&a.owned, T);
    all.extend(parts(&b.owned, T));
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(c.describe("g").unwrap().state, "Stable");
    assert_exclusive(&c);
}

#[test]
fn a_leaving_member_frees_its_partitions() {
    let mut c = ConsumerGroups::new(config());
    let mut a = Client::join(&mut c, 0, "a", &["t"]);
    let mut b = Client::join(&mut c, 0, "b", &["t"]);
    for now in 1..5 {
        a.beat(&mut c, now);
        b.beat(&mut c, now);
    }
    assert_eq!(parts(&b.owned, T).len(), 3);
    let r = c.heartbeat(10, 1, beat_req("b", -1, None), &Topics);
    assert_eq!((r.error_code, r.member_epoch), (code::NONE, -1));
    let r = a.beat(&mut c, 11);
    assert!(r.member_epoch > 2);
    assert_eq!(parts(&a.owned, T), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn an_expired_member_is_removed_and_a_slow_revoker_is_fenced() {
    let mut c = ConsumerGroups::new(config());
    let mut a = Client::join(&mut c, 0, "a", &["t"]);
    let _b = Client::join(&mut c, 0, "b", &["t"]);
    // b never heartbeats again; a keeps going.
    for now in (1_000..12_000).step_by(1_000) {
        a.beat(&mut c, now);
        c.tick(now, &Topics);
    }
    assert_eq!(c.describe("g").unwrap().members.len(), 1);
    a.beat(&mut c, 12_500);
    assert_eq!(parts(&a.owned, T).len(), 6);

    // A member that never confirms a revocation is removed after its rebalance timeout.
    let mut c = ConsumerGroups::new(config());
    let mut a = Client::join(&mut c, 0, "a", &["t"]);
    let mut b = Client::join(&mut c, 0, "b", &["t"]);
    let r = c.heartbeat(1, 1, beat_req("a", 1, None), &Topics);
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(c.next_deadline_ms(), Some(5_001));
    b.beat(&mut c, 2_000);
    c.tick(5_001, &Topics);
    assert_eq!(a.beat(&mut c, 5_002).error_code, code::UNKNOWN_MEMBER_ID);
    b.beat(&mut c, 5_003);
    assert_eq!(parts(&b.owned, T).len(), 6);
}

#[test]
fn epochs_are_checked_as_kafka_does() {
    let mut c = ConsumerGroups::new(config());
    let mut a = Client::join(&mut c, 0, "a", &["t"]);
    let r = c.heartbeat(1, 1, beat_req("a", 5, Some(a.owned.clone())), &Topics);
    assert_eq!(r.error_code, code::FENCED_MEMBER_EPOCH);
    let r = c.heartbeat(1, 1, beat_req("zzz", 1, None), &Topics);
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    let mut other = beat_req("a", 1, None);
    other.group_id = "nope".into();
    assert_eq!(
        c.heartbeat(1, 1, other, &Topics).error_code,
        code::UNKNOWN_MEMBER_ID
    );
    // A lost answer: the member retries with its previous epoch and a subset of its partitions.
    let _b = Client::join(&mut c, 2, "b", &["t"]);
    a.beat(&mut c, 3);
    let confirmed = a.beat(&mut c, 4);
    assert_eq!(confirmed.member_epoch, 2);
    let retry = c.heartbeat(5, 1, beat_req("a", 1, Some(a.owned.clone())), &Topics);
    assert_eq!(retry.error_code, code::NONE);
    assert_eq!(retry.member_epoch, 2);
    let stale = c.heartbeat(6, 1, beat_req("a", 1, None), &Topics);
    assert_eq!(stale.error_code, code::FENCED_MEMBER_EPOCH);
}

#[test]
fn invalid_requests_are_refused_with_kafka_codes() {
    let mut c = ConsumerGroups::new(config());
    let mut r = join_req("a", &["t"]);
    r.server_assignor = Some("sticky".into());
    assert_eq!(
        c.heartbeat(0, 1, r, &Topics).error_code,
        code::UNSUPPORTED_ASSIGNOR
    );
    // Neither names nor a regex on a join (Kafka 4.x takes either, even empty).
    let mut r = join_req("a", &[]);
    r.subscribed_topic_names = None;
    assert_eq!(
        c.heartbeat(0, 1, r, &Topics).error_code,
        code::INVALID_REQUEST
    );
    let mut r = join_req("a", &["t"]);
    r.subscribed_topic_regex = Some("t".repeat(SUBSCRIBED_TOPIC_REGEX_BYTES_MAX + 1));
    assert_eq!(
        c.heartbeat(0, 1, r, &Topics).error_code,
        code::INVALID_REQUEST
    );
    let mut r = join_req("a", &["t"]);
    r.subscribed_topic_regex = Some("t(".into());
    assert_eq!(
        c.heartbeat(0, 1, r, &Topics).error_code,
        code::INVALID_REGULAR_EXPRESSION
    );
    assert_eq!(
        c.heartbeat(0, 1, join_req("", &["t"]), &Topics).error_code,
        code::INVALID_REQUEST
    );
    let mut r = join_req("a", &["t"]);
    r.owned = Some(Assignment::from([(T, BTreeSet::from([1]))]));
    assert_eq!(
        c.heartbeat(0, 1, r, &Topics).error_code,
        code::INVALID_REQUEST
    );
    let mut r = join_req("a", &["t"]);
    r.rebalance_timeout_ms = -1;
    assert_eq!(
        c.heartbeat(0, 1, r, &Topics).error_code,
        code::INVALID_REQUEST
    );
    assert_eq!(
        c.heartbeat(0, 1, beat_req("a", -3, None), &Topics)
            .error_code,
        code::INVALID_REQUEST
    );
    assert_eq!(
        c.heartbeat(0, 1, beat_req("a", -2, None), &Topics)
            .error_code,
        code::INVALID_REQUEST
    );
    let mut r = join_req("a", &["t"]);
    r.member_id = "x".repeat(MEMBER_ID_BYTES_MAX + 1);
    assert_eq!(
        c.heartbeat(0, 1, r, &Topics).error_code,
        code::INVALID_REQUEST
    );
    assert!(!c.contains("g"), "refused requests create nothing");
    // v0: the coordinator makes the member id.
    let r = c.heartbeat(0, 0, join_req("", &["t"]), &Topics);
    assert_eq!(r.error_code, code::NONE);
    assert!(!r.member_id.unwrap().is_empty());
}

#[test]
fn group_size_is_bounded() {
    let mut c = ConsumerGroups::new(config());
    for i in 0..4 {
        Client::join(&mut c, 0, &format!("m{i}"), &["t"]);
    }
    let r = c.heartbeat(0, 1, join_req("m4", &["t"]), &Topics);
    assert_eq!(r.error_code, code::GROUP_MAX_SIZE_REACHED);
    assert_eq!(c.describe("g").unwrap().members.len(), 4);
}

#[test]
fn static_members_leave_temporarily_and_come_back_to_their_partitions() {
    let mut c = ConsumerGroups::new(config());
    let static_join = |id: &str| {
        let mut r = join_req(id, &["t"]);
        r.instance_id = Some("i1".into());
        r
    };
    let r = c.heartbeat(0, 1, static_join("a"), &Topics);
    let owned = r.assignment.unwrap();
    assert_eq!(
        c.heartbeat(1, 1, static_join("a2"), &Topics).error_code,
        code::UNRELEASED_INSTANCE_ID
    );
    let mut leave = beat_req("a", -2, None);
    leave.instance_id = Some("i1".into());
    let r = c.heartbeat(2, 1, leave, &Topics);
    assert_eq!((r.error_code, r.member_epoch), (code::NONE, -2));
    let r = c.heartbeat(3, 1, static_join("a2"), &Topics);
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(r.assignment.unwrap(), owned);
    assert_eq!(r.member_epoch, 1, "no rebalance for the returning instance");
    // The old member id is gone.
    assert_eq!(
        c.heartbeat(4, 1, beat_req("a", 1, None), &Topics)
            .error_code,
        code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn range_assignor_gives_contiguous_ranges() {
    let mut c = ConsumerGroups::new(config());
    let mut r = join_req("a", &["t"]);
    r.server_assignor = Some("range".into());
    c.heartbeat(0, 1, r, &Topics);
    let mut r = join_req("b", &["t"]);
    r.server_assignor = Some("range".into());
    c.heartbeat(0, 1, r, &Topics);
    let d = c.describe("g").unwrap();
    assert_eq!(d.assignor_name, "range");
    assert_eq!(parts(&d.members[0].target_assignment, T), vec![0, 1, 2]);
    assert_eq!(parts(&d.members[1].target_assignment, T), vec![3, 4, 5]);
}

#[test]
fn metadata_and_subscription_changes_bump_the_group_epoch() {
    let mut c = ConsumerGroups::new(config());
    let mut a = Client::join(&mut c, 0, "a", &["t"]);
    let mut change = beat_req("a", 1, Some(a.owned.clone()));
    change.subscribed_topic_names = Some(vec!["t".into(), "u".into()]);
    let r = c.heartbeat(1, 1, change, &Topics);
    assert_eq!(r.member_epoch, 2);
    a.owned = r.assignment.unwrap();
    assert_eq!(parts(&a.owned, U), vec![0, 1]);
    let mut grown = Catalog::default();
    grown.create_with_id("t", T, 7);
    grown.create_with_id("u", U, 2);
    let r = c.heartbeat(2, 1, beat_req("a", 2, Some(a.owned.clone())), &grown);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(parts(r.assignment.as_ref().unwrap(), T).len(), 7);
}

#[test]
fn offset_commits_and_fetches_check_the_member_epoch() {
    let mut c = ConsumerGroups::new(config());
    assert_eq!(
        c.validate_commit("g", 9, "", -1),
        OffsetCheck::NotConsumerGroup
    );
    let a = Client::join(&mut c, 0, "a", &["t"]);
    assert_eq!(c.validate_commit("g", 9, "a", a.epoch), OffsetCheck::Ok);
    assert_eq!(
        c.validate_commit("g", 9, "a", a.epoch + 1),
        OffsetCheck::Refused(code::STALE_MEMBER_EPOCH)
    );
    assert_eq!(
        c.validate_commit("g", 9, "x", 1),
        OffsetCheck::Refused(code::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        c.validate_commit("g", 8, "a", 1),
        OffsetCheck::Refused(code::UNSUPPORTED_VERSION)
    );
    assert_eq!(
        c.validate_commit("g", 9, "", -1),
        OffsetCheck::Refused(code::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(c.validate_fetch("g", Some("a"), 1), OffsetCheck::Ok);
    assert_eq!(c.validate_fetch("g", None, -1), OffsetCheck::Ok);
    assert_eq!(
        c.validate_fetch("g", Some("a"), 3),
        OffsetCheck::Refused(code::STALE_MEMBER_EPOCH)
    );
    c.heartbeat(1, 1, beat_req("a", -1, None), &Topics);
    assert_eq!(c.validate_commit("g", 9, "", -1), OffsetCheck::Ok);
    assert_eq!(c.describe("g").unwrap().state, "Empty");
    assert!(c.remove_if_empty("g"));
}

/// Seeded random joins, leaves, silences and heartbeats: no partition is ever held by two
/// members, and once everyone heartbeats for a while the group is stable with every
/// partition owned exactly once.
#[test]
fn random_operations_keep_partitions_exclusive_and_converge() {
    for seed in 0..200u64 {
        let mut rng = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut c = ConsumerGroups::new(config());
        let mut clients: Vec<Client> = Vec::new();
        let mut now = 0i64;
        let mut made = 0;
        for _ in 0..60 {
            now += 1 + next(3_000) as i64;
            match next(6) {
                0 if clients.len() < 4 => {
                    made += 1;
                    clients.push(Client::join(&mut c, now, &format!("m{made}"), &["t", "u"]));
                }
                1 if !clients.is_empty() => {
                    let gone = clients.remove(next(clients.len() as u64) as usize);
                    c.heartbeat(now, 1, beat_req(&gone.id, -1, None), &Topics);
                }
                _ => {
                    for cl in clients.iter_mut() {
                        if next(4) != 0 {
                            let r = cl.beat(&mut c, now);
                            if r.error_code != code::NONE {
                                *cl = Client::join(&mut c, now, &cl.id.clone(), &["t", "u"]);
                            }
                        }
                    }
                }
            }
            c.tick(now, &Topics);
            if c.contains("g") {
                assert_exclusive(&c);
                let bytes = c.record("g").unwrap();
                let mut copy = ConsumerGroups::new(config());
                assert!(copy.restore(now, &bytes), "seed {seed}");
                assert_eq!(copy.record("g").unwrap(), bytes, "seed {seed}");
            }
        }
        for _ in 0..6 {
            now += 500;
            for cl in clients.iter_mut() {
                let r = cl.beat(&mut c, now);
                if r.error_code != code::NONE {
                    *cl = Client::join(&mut c, now, &cl.id.clone(), &["t", "u"]);
                }
            }
            c.tick(now, &Topics);
            assert_exclusive(&c);
        }
        if clients.is_empty() {
            continue;
        }
        let d = c.describe("g").unwrap();
        assert_eq!(d.state, "Stable", "seed {seed}: {d:?}");
        let mut all: Vec<(uuid::Uuid, i32)> =
            clients.iter().flat_map(|cl| pairs(&cl.owned)).collect();
        all.sort();
        let expect: Vec<(uuid::Uuid, i32)> = (0..6)
            .map(|p| (T, p))
            .chain((0..2).map(|p| (U, p)))
            .collect();
        let mut expect = expect;
        expect.sort();
        assert_eq!(all, expect, "seed {seed}");
        let counts: Vec<usize> = clients.iter().map(|cl| pairs(&cl.owned).count()).collect();
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(hi - lo <= 1, "seed {seed}: unbalanced {counts:?}");
    }
}

#[test]
fn records_round_trip_and_reject_every_prefix() {
    let mut c = ConsumerGroups::new(config());
    let mut a = Client::join(&mut c, 0, "a", &["t", "u"]);
    let mut static_b = join_req("b", &["t"]);
    static_b.instance_id = Some("inst".into());
    static_b.rack_id = Some("rack-1".into());
    static_b.server_assignor = Some("range".into());
    c.heartbeat(1, 1, static_b, &Topics);
    a.beat(&mut c, 2); // a is now revoking: pending partitions and a revocation deadline
    let bytes = c.record("g").unwrap();
    let mut restored = ConsumerGroups::new(config());
    assert!(restored.restore(100, &bytes));
    assert_eq!(restored.record("g").unwrap(), bytes);
    assert_eq!(restored.describe("g"), c.describe("g"));
    // Timers restart from the restore time.
    assert_eq!(restored.next_deadline_ms(), Some(100 + 5_000));
    for cut in 0..bytes.len() {
        assert!(
            !ConsumerGroups::new(config()).restore(0, &bytes[..cut]),
            "prefix {cut}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(!restored.restore(0, &longer));
    // A huge declared count is refused without allocating for it.
    let mut huge = bytes[..1 + 2 + 1 + 4 + 4 + 2 + 7].to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(!restored.restore(0, &huge));
    // The restored member carries on with its epoch and partitions.
    let r = restored.heartbeat(
        200,
        1,
        beat_req("a", a.epoch, Some(a.owned.clone())),
        &Topics,
    );
    assert_eq!(r.error_code, code::NONE);
    restored.forget("g");
    assert!(restored.record("g").is_none());
}

/// A metadata view a test changes: topics by name, the version moving with every change, and
/// a count of the full scans regex resolution made.
#[derive(Default)]
struct Catalog {
    topics: BTreeMap<String, TopicInfo>,
    version: u64,
    scans: Cell<usize>,
    /// With an authorizer: the topics each principal may describe.
    rights: Option<BTreeMap<String, BTreeSet<String>>>,
    access: u64,
}

impl Catalog {
    fn with(names: &[(&str, i32)]) -> Catalog {
        let mut c = Catalog::default();
        for (name, partitions) in names {
            c.create(name, *partitions);
        }
        c
    }

    fn create(&mut self, name: &str, partitions: i32) -> uuid::Uuid {
        let id = uuid::Uuid::from_u128(1_000 + u128::from(self.version));
        self.create_with_id(name, id, partitions);
        id
    }

    fn create_with_id(&mut self, name: &str, id: uuid::Uuid, partitions: i32) {
        self.topics
            .insert(name.to_string(), TopicInfo { id, partitions });
        self.version += 1;
    }

    fn delete(&mut self, name: &str) {
        self.topics.remove(name).expect("the topic exists");
        self.version += 1;
    }

    /// Turns the authorizer on (if it was not) and lets `principal` describe `topic`.
    fn grant(&mut self, principal: &str, topic: &str) {
        let rights = self.rights.get_or_insert_with(BTreeMap::new);
        rights
            .entry(principal.to_string())
            .or_default()
            .insert(topic.to_string());
        self.access += 1;
    }

    fn revoke(&mut self, principal: &str, topic: &str) {
        if let Some(topics) = self.rights.as_mut().and_then(|r| r.get_mut(principal)) {
            topics.remove(topic);
        }
        self.access += 1;
    }

    fn id(&self, name: &str) -> uuid::Uuid {
        self.topics[name].id
    }

    /// Topic names in an assignment.
    fn names(&self, a: &Assignment) -> BTreeSet<String> {
        a.iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(id, _)| {
                let (name, _) = self.topics.iter().find(|(_, t)| t.id == *id).unwrap();
                name.clone()
            })
            .collect()
    }
}

impl TopicView for Catalog {
    fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.topics.get(name).copied()
    }
    fn for_each_name(&self, f: &mut dyn FnMut(&str)) {
        self.scans.set(self.scans.get() + 1);
        for name in self.topics.keys() {
            f(name);
        }
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn may_describe(&self, principal: &str, _host: &str, topic: &str) -> bool {
        self.rights.as_ref().is_none_or(|r| {
            r.get(principal)
                .is_some_and(|topics| topics.contains(topic))
        })
    }
    fn access_version(&self) -> u64 {
        self.access
    }
}

/// A Kafka 4.x Java client's join with a SubscriptionPattern: a regex and no names.
fn regex_join(member: &str, re: &str) -> Heartbeat {
    Heartbeat {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some(re.into()),
        ..join_req(member, &[])
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn internal_and_orders() -> Catalog {
    Catalog::with(&[
        ("orders", 2),
        ("orders-v2", 1),
        ("xorders", 1),
        ("order", 1),
        ("__consumer_offsets", 3),
        ("__transaction_state", 2),
        ("_schemas", 1),
        ("t", 6),
    ])
}

#[test]
fn a_regex_resolves_to_whole_topic_names_internal_ones_included() {
    let view = internal_and_orders();
    let mut c = ConsumerGroups::new(config());
    let r = c.heartbeat(0, 1, regex_join("a", "orders.*"), &view);
    assert_eq!(r.error_code, code::NONE, "{r:?}");
    // Whole names: not xorders (a search would match it), not order.
    assert_eq!(
        view.names(r.assignment.as_ref().unwrap()),
        set(&["orders", "orders-v2"])
    );
    assert_eq!(
        parts(r.assignment.as_ref().unwrap(), view.id("orders")),
        vec![0, 1]
    );
    let d = c.describe("g").unwrap();
    assert_eq!(
        d.members[0].subscribed_topic_regex.as_deref(),
        Some("orders.*")
    );
    assert!(d.members[0].subscribed_topic_names.is_empty());

    let mut c = ConsumerGroups::new(config());
    let r = c.heartbeat(0, 1, regex_join("a", "_.*"), &view);
    assert_eq!(
        view.names(r.assignment.as_ref().unwrap()),
        set(&["__consumer_offsets", "__transaction_state", "_schemas"])
    );
    // A literal name matches only itself; `^`/`$` inside are harmless.
    let mut c = ConsumerGroups::new(config());
    let r = c.heartbeat(0, 1, regex_join("a", "^order$"), &view);
    assert_eq!(view.names(r.assignment.as_ref().unwrap()), set(&["order"]));
}

#[test]
fn names_and_a_regex_in_one_heartbeat_combine() {
    let view = internal_and_orders();
    let mut c = ConsumerGroups::new(config());
    // The union of the names and what the regex matched (Kafka's TargetAssignmentBuilder).
    let mut r = join_req("a", &["t"]);
    r.subscribed_topic_regex = Some("_schemas|xorders".into());
    let r = c.heartbeat(0, 1, r, &view);
    assert_eq!(
        view.names(r.assignment.as_ref().unwrap()),
        set(&["t", "_schemas", "xorders"])
    );
    // librdkafka sends an empty regex with its names: no regex.
    let mut r = join_req("b", &["orders"]);
    r.subscribed_topic_regex = Some(String::new());
    assert_eq!(c.heartbeat(0, 1, r, &view).error_code, code::NONE);
    let d = c.describe("g").unwrap();
    assert_eq!(d.members[1].subscribed_topic_regex, None);
    assert_eq!(
        view.names(&d.members[1].target_assignment),
        set(&["orders"])
    );
    // Omitted (null) fields keep their value: a's next heartbeats still have names and regex.
    let epoch = d.group_epoch;
    let a = c.heartbeat(1, 1, beat_req("a", d.members[0].member_epoch, None), &view);
    assert_eq!(a.error_code, code::NONE);
    let d = c.describe("g").unwrap();
    assert_eq!(d.group_epoch, epoch, "nothing changed");
    assert_eq!(
        view.names(&d.members[0].target_assignment),
        set(&["t", "_schemas", "xorders"])
    );
    // An empty regex later drops the regex (and bumps the epoch); the names stay.
    let mut drop_regex = beat_req("a", d.members[0].member_epoch, None);
    drop_regex.subscribed_topic_regex = Some(String::new());
    assert_eq!(c.heartbeat(2, 1, drop_regex, &view).error_code, code::NONE);
    let d = c.describe("g").unwrap();
    assert_eq!(d.group_epoch, epoch + 1);
    assert_eq!(d.members[0].subscribed_topic_regex, None);
    assert_eq!(view.names(&d.members[0].target_assignment), set(&["t"]));
    assert_eq!(c.groups["g"].regexes.len(), 0, "an unused regex is dropped");
}

#[test]
fn an_invalid_regex_is_invalid_regular_expression() {
    let view = internal_and_orders();
    let mut c = ConsumerGroups::new(config());
    // `a)|(b` would parse once wrapped as ^(?:...)$; a trailing (?x) comment would swallow it.
    for bad in [
        "orders(",
        "[a-",
        "a)|(b",
        "(?x)orders # comment",
        "(a{1000}){1000}",
    ] {
        let r = c.heartbeat(0, 1, regex_join("a", bad), &view);
        assert_eq!(
            r.error_code,
            code::INVALID_REGULAR_EXPRESSION,
            "{bad}: {r:?}"
        );
        let message = r.error_message.unwrap();
        assert!(
            message.contains(bad) && message.contains("not a valid regular expression"),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
        assert!(!c.contains("g"), "refused joins create nothing");
    }
    // A member changing to a bad regex is refused and keeps its old one.
    let r = c.heartbeat(0, 1, regex_join("a", "orders"), &view);
    let mut change = beat_req("a", r.member_epoch, None);
    change.subscribed_topic_regex = Some("orders(".into());
    let bad = c.heartbeat(1, 1, change, &view);
    assert_eq!(bad.error_code, code::INVALID_REGULAR_EXPRESSION);
    let d = c.describe("g").unwrap();
    assert_eq!(
        d.members[0].subscribed_topic_regex.as_deref(),
        Some("orders")
    );
    assert_eq!((d.group_epoch, d.members[0].member_epoch), (1, 1));
    // An unknown member is told so before its regex is looked at (Kafka's order).
    let mut stranger = beat_req("zz", 1, None);
    stranger.subscribed_topic_regex = Some("orders(".into());
    assert_eq!(
        c.heartbeat(1, 1, stranger, &view).error_code,
        code::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn a_created_matching_topic_bumps_the_epoch_and_is_assigned_a_deleted_one_leaves() {
    let mut view = internal_and_orders();
    let mut c = ConsumerGroups::new(config());
    let mut a = Client {
        id: "a".into(),
        epoch: 0,
        owned: Assignment::new(),
    };
    let r = c.heartbeat(0, 1, regex_join("a", "orders.*"), &view);
    a.epoch = r.member_epoch;
    a.owned = r.assignment.unwrap();
    assert_eq!(a.epoch, 1);
    let beat = |c: &mut ConsumerGroups, a: &mut Client, now: i64, view: &Catalog| {
        let r = c.heartbeat(now, 1, beat_req("a", a.epoch, Some(a.owned.clone())), view);
        assert_eq!(r.error_code, code::NONE, "{r:?}");
        a.epoch = r.member_epoch;
        if let Some(owned) = r.assignment {
            a.owned = owned;
        }
    };
    let fresh = view.create("orders-eu", 3);
    view.create("shipments", 1);
    // Within the refresh interval of the join's resolution: not yet.
    beat(&mut c, &mut a, 999, &view);
    assert_eq!(a.epoch, 1);
    beat(&mut c, &mut a, 1_000, &view);
    assert_eq!(a.epoch, 2, "the new topic bumps the group epoch");
    assert_eq!(parts(&a.owned, fresh), vec![0, 1, 2]);
    assert_eq!(
        view.names(&a.owned),
        set(&["orders", "orders-eu", "orders-v2"])
    );
    // A second member with the same regex shares the partitions of all three topics.
    let r = c.heartbeat(1_001, 1, regex_join("b", "orders.*"), &view);
    assert_eq!(r.error_code, code::NONE);
    let d = c.describe("g").unwrap();
    let all: BTreeSet<String> = d
        .members
        .iter()
        .flat_map(|m| view.names(&m.target_assignment))
        .collect();
    assert_eq!(all, set(&["orders", "orders-eu", "orders-v2"]));
    // A deleted topic leaves the assignment (and the resolution) at the next refresh.
    view.delete("orders-v2");
    beat(&mut c, &mut a, 2_500, &view);
    let d = c.describe("g").unwrap();
    assert_eq!(d.group_epoch, 4);
    for m in &d.members {
        assert!(!view.names(&m.target_assignment).contains("orders-v2"));
    }
    assert_eq!(
        c.groups["g"].regexes.topics("orders.*"),
        Some(&set(&["orders", "orders-eu"]))
    );
}

#[test]
fn regexes_are_resolved_once_per_distinct_regex_not_per_heartbeat() {
    let mut view = internal_and_orders();
    let mut c = ConsumerGroups::new(config());
    let mut epochs = BTreeMap::new();
    for m in ["a", "b", "c"] {
        let r = c.heartbeat(0, 1, regex_join(m, "orders.*"), &view);
        epochs.insert(m, r.member_epoch);
    }
    assert_eq!(view.scans.get(), 1, "one resolution for the three members");
    assert_eq!(c.groups["g"].regexes.len(), 1);
    for now in 1..50 {
        for (m, epoch) in epochs.iter_mut() {
            let r = c.heartbeat(now * 100, 1, beat_req(m, *epoch, None), &view);
            assert_eq!(r.error_code, code::NONE, "{r:?}");
            *epoch = r.member_epoch;
        }
    }
    assert_eq!(view.scans.get(), 1, "no metadata change, no resolution");
    // A metadata change: one resolution per refresh interval, however many heartbeats.
    view.create("unrelated", 1);
    for now in 50..80 {
        for (m, epoch) in epochs.iter_mut() {
            let r = c.heartbeat(now * 100, 1, beat_req(m, *epoch, None), &view);
            assert_eq!(r.error_code, code::NONE, "{r:?}");
            *epoch = r.member_epoch;
        }
    }
    assert_eq!(view.scans.get(), 2);
    // A new regex is resolved alone, at once.
    c.heartbeat(8_000, 1, regex_join("d", "_.*"), &view);
    assert_eq!(view.scans.get(), 3);
    assert_eq!(c.groups["g"].regexes.len(), 2);
    for m in ["a", "b", "c", "d"] {
        c.heartbeat(8_001, 1, beat_req(m, -1, None), &view);
    }
    assert_eq!(
        c.groups["g"].regexes.len(),
        0,
        "gone with their last members"
    );
}

#[test]
fn a_restored_group_keeps_regexes_and_resolutions() {
    let mut view = internal_and_orders();
    let mut c = ConsumerGroups::new(config());
    let mut r = regex_join("a", "orders.*");
    r.subscribed_topic_names = Some(vec!["t".into()]);
    let a = c.heartbeat(0, 1, r, &view);
    c.heartbeat(1, 1, regex_join("b", "_.*"), &view);
    // a catches up with the epoch b's join made (its partitions do not change).
    let owned = a.assignment.unwrap();
    let a = c.heartbeat(
        2,
        1,
        beat_req("a", a.member_epoch, Some(owned.clone())),
        &view,
    );
    assert_eq!((a.error_code, a.member_epoch), (code::NONE, 2));
    let bytes = c.record("g").unwrap();
    assert_eq!(bytes[0], 2, "record version 2");
    let mut restored = ConsumerGroups::new(config());
    assert!(restored.restore(100, &bytes));
    assert_eq!(restored.record("g").unwrap(), bytes);
    assert_eq!(restored.describe("g"), c.describe("g"));
    let before = restored.describe("g").unwrap();
    assert_eq!(
        before.members[0].subscribed_topic_regex.as_deref(),
        Some("orders.*")
    );
    assert_eq!(before.members[0].assignment, owned);
    // The member carries on without resending its regex: same epoch, same partitions (the
    // restored group resolves its regexes again at once, to the same topics).
    let r = restored.heartbeat(200, 1, beat_req("a", 2, Some(owned)), &view);
    assert_eq!(
        (r.error_code, r.member_epoch, r.assignment),
        (code::NONE, 2, None)
    );
    assert_eq!(
        restored.describe("g").unwrap().group_epoch,
        before.group_epoch
    );
    // The restored regex still follows topic creation.
    view.create("orders-new", 1);
    restored.heartbeat(1_200, 1, beat_req("a", 2, None), &view);
    let d = restored.describe("g").unwrap();
    assert_eq!(d.group_epoch, before.group_epoch + 1);
    assert!(view
        .names(&d.members[0].target_assignment)
        .contains("orders-new"));
    for cut in 0..bytes.len() {
        assert!(
            !ConsumerGroups::new(config()).restore(0, &bytes[..cut]),
            "prefix {cut}"
        );
    }
}

/// A record of an older version laid out by hand: group "g" at epoch 3 whose member "a" owns
/// all of `t`, subscribed by name (version 0) or by the regex `t` (version 1).
fn old_record(version: u8) -> Vec<u8> {
    fn s(b: &mut Vec<u8>, v: &str) {
        b.extend_from_slice(&(v.len() as u16).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    let mut b = vec![version];
    s(&mut b, "g");
    b.extend_from_slice(&3i32.to_be_bytes()); // group epoch
    b.extend_from_slice(&3i32.to_be_bytes()); // assignment epoch
    s(&mut b, "uniform");
    b.extend_from_slice(&1u32.to_be_bytes());
    s(&mut b, "t");
    b.extend_from_slice(T.as_bytes());
    b.extend_from_slice(&6i32.to_be_bytes());
    b.extend_from_slice(&1u32.to_be_bytes()); // one member
    s(&mut b, "a");
    b.push(0); // instance id
    b.push(0); // rack id
    s(&mut b, "client");
    s(&mut b, "/127.0.0.1");
    if version == 0 {
        b.extend_from_slice(&1u32.to_be_bytes());
        s(&mut b, "t");
    } else {
        b.extend_from_slice(&0u32.to_be_bytes());
        b.push(1); // the regex
        s(&mut b, "t");
    }
    b.push(0); // server assignor
    b.extend_from_slice(&30_000i32.to_be_bytes());
    b.push(0); // stable
    b.extend_from_slice(&3i32.to_be_bytes());
    b.extend_from_slice(&2i32.to_be_bytes());
    b.push(0); // not left
    let all = |b: &mut Vec<u8>| {
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(T.as_bytes());
        b.extend_from_slice(&6u32.to_be_bytes());
        for p in 0..6i32 {
            b.extend_from_slice(&p.to_be_bytes());
        }
    };
    all(&mut b); // assigned
    b.extend_from_slice(&0u32.to_be_bytes()); // pending revocation
    all(&mut b); // target
    if version == 1 {
        b.extend_from_slice(&1u32.to_be_bytes()); // one regex, matching t
        s(&mut b, "t");
        b.extend_from_slice(&1u32.to_be_bytes());
        s(&mut b, "t");
    }
    b
}

/// Version 0 (before regex subscriptions) and 1 (before members' principals) records are still
/// read, and their members carry on at their epoch.
#[test]
fn version_0_and_1_records_are_still_read() {
    for version in [0u8, 1] {
        let mut c = ConsumerGroups::new(config());
        assert!(c.restore(0, &old_record(version)), "version {version}");
        let d = c.describe("g").unwrap();
        assert_eq!((d.state, d.group_epoch), ("Stable", 3));
        let regex = (version == 1).then(|| "t".to_string());
        assert_eq!(d.members[0].subscribed_topic_regex, regex);
        assert_eq!(parts(&d.members[0].assignment, T), vec![0, 1, 2, 3, 4, 5]);
        // Written back as version 2; the member carries on at its epoch (a version 1 member's
        // topics were all its regex matched, as before).
        assert_eq!(c.record("g").unwrap()[0], 2);
        let r = c.heartbeat(
            1,
            1,
            beat_req("a", 3, Some(d.members[0].assignment.clone())),
            &Topics,
        );
        assert_eq!(
            (r.error_code, r.member_epoch),
            (code::NONE, 3),
            "version {version}"
        );
        assert_eq!(c.describe("g").unwrap().group_epoch, 3, "version {version}");
    }
}

/// Joins `member` as `principal` with regex `re`.
fn regex_join_as(member: &str, principal: &str, re: &str) -> Heartbeat {
    Heartbeat {
        principal: principal.into(),
        ..regex_join(member, re)
    }
}

/// Heartbeats `member` (as `principal`) at its current epoch, owning nothing new.
fn beat_as(c: &mut ConsumerGroups, now: i64, member: &str, principal: &str, view: &Catalog) {
    let epoch = c.groups["g"].members[member].member_epoch;
    let mut r = beat_req(member, epoch, None);
    r.principal = principal.into();
    let resp = c.heartbeat(now, 1, r, view);
    assert_eq!(resp.error_code, code::NONE, "{resp:?}");
}

/// Topic names of each member's target, by member id.
fn targets(c: &ConsumerGroups, view: &Catalog) -> BTreeMap<String, BTreeSet<String>> {
    c.describe("g")
        .unwrap()
        .members
        .iter()
        .map(|m| (m.member_id.clone(), view.names(&m.target_assignment)))
        .collect()
}

#[test]
fn a_regex_gives_each_member_only_the_topics_its_principal_may_describe() {
    let mut view = internal_and_orders();
    view.grant("User:alice", "orders");
    view.grant("User:bob", "orders");
    view.grant("User:bob", "orders-v2");
    let mut c = ConsumerGroups::new(config());
    for (m, who) in [("a", "User:alice"), ("b", "User:bob")] {
        let r = c.heartbeat(0, 1, regex_join_as(m, who, "orders.*"), &view);
        assert_eq!(r.error_code, code::NONE, "{r:?}");
    }
    let t = targets(&c, &view);
    assert!(t["a"].is_subset(&set(&["orders"])), "{t:?}");
    assert!(t["b"].contains("orders-v2"), "{t:?}");
    // The group's resolution holds every match; only the members' views are filtered.
    assert_eq!(
        c.groups["g"].regexes.topics("orders.*"),
        Some(&set(&["orders", "orders-v2"]))
    );
    let epoch = c.describe("g").unwrap().group_epoch;
    // Heartbeats with the same ACLs change nothing.
    beat_as(&mut c, 10, "a", "User:alice", &view);
    beat_as(&mut c, 11, "b", "User:bob", &view);
    assert_eq!(c.describe("g").unwrap().group_epoch, epoch);
    // An ACL that changes nobody's view changes nothing either.
    view.grant("User:carol", "orders-v2");
    beat_as(&mut c, 20, "a", "User:alice", &view);
    assert_eq!(c.describe("g").unwrap().group_epoch, epoch);
    // Bob loses both topics: the next heartbeat (anyone's) moves everything to alice's side,
    // but alice may still see only `orders`.
    view.revoke("User:bob", "orders");
    view.revoke("User:bob", "orders-v2");
    beat_as(&mut c, 30, "a", "User:alice", &view);
    assert_eq!(c.describe("g").unwrap().group_epoch, epoch + 1);
    let t = targets(&c, &view);
    assert_eq!(t["a"], set(&["orders"]));
    assert_eq!(t["b"], set(&[]));
    // Alice is granted orders-v2: it is hers at the next heartbeat.
    view.grant("User:alice", "orders-v2");
    beat_as(&mut c, 40, "b", "User:bob", &view);
    assert_eq!(c.describe("g").unwrap().group_epoch, epoch + 2);
    assert_eq!(targets(&c, &view)["a"], set(&["orders", "orders-v2"]));
    // A new topic the regex matches goes only to those who may describe it (nobody here): the
    // resolution grows, the group epoch does not move.
    view.create("orders-secret", 4);
    beat_as(&mut c, 2_000, "a", "User:alice", &view);
    assert!(c.groups["g"]
        .regexes
        .topics("orders.*")
        .unwrap()
        .contains("orders-secret"));
    assert_eq!(c.describe("g").unwrap().group_epoch, epoch + 2);
    // The record keeps each member's principal and view: a restored group changes nothing
    // while the ACLs stay the same.
    let bytes = c.record("g").unwrap();
    let mut restored = ConsumerGroups::new(config());
    assert!(restored.restore(3_000, &bytes));
    assert_eq!(restored.record("g").unwrap(), bytes);
    beat_as(&mut restored, 3_001, "b", "User:bob", &view);
    assert_eq!(restored.describe("g").unwrap().group_epoch, epoch + 2);
    assert_eq!(targets(&restored, &view), targets(&c, &view));
    // A member that heartbeats as another principal is filtered by the new one's rights.
    beat_as(&mut restored, 3_002, "b", "User:alice", &view);
    assert_eq!(restored.describe("g").unwrap().group_epoch, epoch + 3);
    let t = targets(&restored, &view);
    assert_eq!(
        t.values().flatten().cloned().collect::<BTreeSet<_>>(),
        set(&["orders", "orders-v2"])
    );
}
