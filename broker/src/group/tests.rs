//! Coordinator tests on virtual time: every `now_ms` is chosen by the test.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

const G: &str = "g";
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const DELAY_MS: i64 = 3_000;

fn coordinator() -> GroupCoordinator {
    GroupCoordinator::new(GroupConfig {
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms: DELAY_MS,
        max_size: 10,
        member_metadata_bytes_max: 1024,
    })
}

fn join_req(member_id: &str, protocols: &[(&str, &str)]) -> JoinRequest {
    JoinRequest {
        group_id: G.to_string(),
        member_id: member_id.to_string(),
        group_instance_id: None,
        protocol_type: "consumer".to_string(),
        protocols: protocols
            .iter()
            .map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m.as_bytes())))
            .collect(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        require_known_member_id: false,
        client_id: "c".to_string(),
        client_host: "/127.0.0.1".to_string(),
    }
}

fn range(meta: &str) -> JoinRequest {
    join_req("", &[("range", meta)])
}

fn sync_req(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: G.to_string(),
        generation_id,
        member_id: member_id.to_string(),
        group_instance_id: None,
        protocol_type: Some("consumer".to_string()),
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a.as_bytes())))
            .collect(),
    }
}

fn hb(member_id: &str, generation_id: i32) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: G.to_string(),
        generation_id,
        member_id: member_id.to_string(),
        group_instance_id: None,
    }
}

fn leave_req(member_id: &str) -> LeaveMember {
    LeaveMember {
        member_id: member_id.to_string(),
        group_instance_id: None,
    }
}

/// The only join answer in `out`, for `token`.
fn join_answer(out: &Outputs, token: Token) -> JoinResponse {
    let found: Vec<_> = out.joins.iter().filter(|(t, _)| *t == token).collect();
    assert_eq!(found.len(), 1, "token {token} answered once in {out:?}");
    found[0].1.clone()
}

fn sync_answer(out: &Outputs, token: Token) -> SyncResponse {
    let found: Vec<_> = out.syncs.iter().filter(|(t, _)| *t == token).collect();
    assert_eq!(found.len(), 1, "token {token} answered once in {out:?}");
    found[0].1.clone()
}

/// Three members join an empty group at t=0, 1000, 2000; returns (coordinator, responses).
fn three_joined() -> (GroupCoordinator, Vec<JoinResponse>) {
    let mut c = coordinator();
    for (i, t) in [0, 1_000, 2_000].into_iter().enumerate() {
        let out = c.join(t, range(&format!("meta{i}")), i as Token);
        assert!(out.joins.is_empty(), "held during the initial delay");
    }
    // Each newcomer extends the delay: 2000 + 3000.
    assert_eq!(c.next_deadline_ms(), Some(5_000));
    assert!(c.tick(4_999).joins.is_empty());
    let out = c.tick(5_000);
    let responses: Vec<_> = (0..3).map(|t| join_answer(&out, t)).collect();
    (c, responses)
}

fn leader_of(responses: &[JoinResponse]) -> &JoinResponse {
    let leaders: Vec<_> = responses
        .iter()
        .filter(|r| r.member_id == r.leader)
        .collect();
    assert_eq!(leaders.len(), 1);
    leaders[0]
}

/// Runs the sync round of a freshly completed rebalance; assignment of member m is "a-{m}".
fn sync_all(c: &mut GroupCoordinator, now: i64, responses: &[JoinResponse]) {
    let leader = leader_of(responses);
    let followers: Vec<_> = responses
        .iter()
        .filter(|r| r.member_id != r.leader)
        .collect();
    for (i, f) in followers.iter().enumerate() {
        let out = c.sync(
            now,
            sync_req(&f.member_id, f.generation_id, &[]),
            100 + i as Token,
        );
        assert!(
            out.syncs.is_empty(),
            "a follower's sync waits for the leader"
        );
    }
    let names: Vec<String> = responses
        .iter()
        .map(|r| format!("a-{}", r.member_id))
        .collect();
    let assignments: Vec<(&str, &str)> = responses
        .iter()
        .zip(&names)
        .map(|(r, a)| (r.member_id.as_str(), a.as_str()))
        .collect();
    let out = c.sync(
        now,
        sync_req(&leader.member_id, leader.generation_id, &assignments),
        99,
    );
    assert_eq!(out.changed_groups, vec![G.to_string()]);
    assert_eq!(
        sync_answer(&out, 99).assignment,
        format!("a-{}", leader.member_id)
    );
    for (i, f) in followers.iter().enumerate() {
        let answer = sync_answer(&out, 100 + i as Token);
        assert_eq!(answer.error_code, NONE);
        assert_eq!(answer.assignment, format!("a-{}", f.member_id));
    }
}

#[test]
fn three_members_join_sync_and_one_leaves() {
    let (mut c, responses) = three_joined();
    for r in &responses {
        assert_eq!(r.error_code, NONE);
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
    }
    let leader = leader_of(&responses);
    assert_eq!(
        leader.member_id, responses[0].member_id,
        "first to join leads"
    );
    let metas: Vec<_> = leader.members.iter().map(|m| m.metadata.clone()).collect();
    assert_eq!(metas, vec!["meta0", "meta1", "meta2"]);
    assert!(responses[1].members.is_empty() && responses[2].members.is_empty());
    assert_eq!(c.describe(G).unwrap().state, "CompletingRebalance");

    sync_all(&mut c, 5_100, &responses);
    let d = c.describe(G).unwrap();
    assert_eq!(d.state, "Stable");
    assert_eq!(d.protocol_name, "range");
    assert_eq!(
        d.members[2].assignment,
        format!("a-{}", responses[2].member_id)
    );

    let (codes, out) = c.leave(6_000, G, &[leave_req(&responses[1].member_id)]);
    assert_eq!(codes, vec![NONE]);
    assert!(out.joins.is_empty());
    assert_eq!(
        c.heartbeat(6_100, &hb(&responses[0].member_id, 1)),
        REBALANCE_IN_PROGRESS
    );
    let mut rejoin = range("meta0");
    rejoin.member_id = responses[0].member_id.clone();
    assert!(
        c.join(6_200, rejoin, 10).joins.is_empty(),
        "waits for the other member"
    );
    let mut rejoin = range("meta2");
    rejoin.member_id = responses[2].member_id.clone();
    let out = c.join(6_300, rejoin, 11);
    let (a, b) = (join_answer(&out, 10), join_answer(&out, 11));
    assert_eq!((a.generation_id, b.generation_id), (2, 2));
    assert_eq!(a.members.len(), 2);
    let (codes, _) = c.leave(6_400, G, &[leave_req(&responses[1].member_id)]);
    assert_eq!(codes, vec![UNKNOWN_MEMBER_ID]);
}

#[test]
fn silent_member_expires_and_the_rest_rebalance() {
    let (mut c, responses) = three_joined();
    sync_all(&mut c, 5_000, &responses);
    let [m0, m1, m2] = [0, 1, 2].map(|i| responses[i].member_id.clone());
    // m0 and m1 heartbeat every 3 s; m2 stays silent after its sync at 5000.
    let mut t = 5_000;
    while t < 15_000 {
        t += 3_000;
        assert_eq!(c.heartbeat(t, &hb(&m0, 1)), NONE);
        assert_eq!(c.heartbeat(t, &hb(&m1, 1)), NONE);
        let out = c.tick(t);
        assert!(out.joins.is_empty());
    }
    assert_eq!(
        c.describe(G).unwrap().state,
        "PreparingRebalance",
        "m2 expired at 15000"
    );
    assert_eq!(c.describe(G).unwrap().members.len(), 2);
    assert_eq!(c.heartbeat(t, &hb(&m2, 1)), UNKNOWN_MEMBER_ID);
    assert_eq!(c.heartbeat(t, &hb(&m1, 1)), REBALANCE_IN_PROGRESS);
    let mut r0 = range("meta0");
    r0.member_id = m0.clone();
    c.join(t, r0, 20);
    let mut r1 = range("meta1");
    r1.member_id = m1.clone();
    let out = c.join(t, r1, 21);
    assert_eq!(join_answer(&out, 20).generation_id, 2);
    assert_eq!(join_answer(&out, 21).leader, m0);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let (mut c, responses) = three_joined();
    sync_all(&mut c, 5_000, &responses);
    let mut r0 = range("new");
    r0.member_id = responses[0].member_id.clone();
    let out = c.join(6_000, r0, 30);
    assert!(out.joins.is_empty(), "the leader's join starts a rebalance");
    // Others keep heartbeating but never rejoin.
    for t in [8_000, 12_000, 16_000, 20_000, 24_000, 28_000, 32_000] {
        c.heartbeat(t, &hb(&responses[1].member_id, 1));
        assert!(c.tick(t).joins.is_empty());
    }
    assert_eq!(c.next_deadline_ms(), Some(36_000));
    let out = c.tick(36_000);
    let answer = join_answer(&out, 30);
    assert_eq!(answer.generation_id, 2);
    assert_eq!(answer.members.len(), 1);
}

#[test]
fn last_member_leaving_empties_the_group() {
    let (mut c, responses) = three_joined();
    sync_all(&mut c, 5_000, &responses);
    let all: Vec<_> = responses.iter().map(|r| leave_req(&r.member_id)).collect();
    let (codes, out) = c.leave(6_000, G, &all);
    assert_eq!(codes, vec![NONE; 3]);
    assert_eq!(out.changed_groups, vec![G.to_string()]);
    let d = c.describe(G).unwrap();
    assert_eq!((d.state, d.members.len()), ("Empty", 0));
    assert_eq!(c.record(G).unwrap().generation_id, 1);
    assert_eq!(
        c.list(),
        vec![(G.to_string(), "consumer".to_string(), "Empty")]
    );
    assert_eq!(c.delete(G), NONE);
    assert!(c.record(G).is_none());
    assert_eq!(c.delete(G), GROUP_ID_NOT_FOUND);
}

#[test]
fn delete_refuses_a_group_with_members() {
    let (mut c, _) = three_joined();
    assert_eq!(c.delete(G), NON_EMPTY_GROUP);
    assert_eq!(c.delete("nope"), GROUP_ID_NOT_FOUND);
}

#[test]
fn member_id_required_flow() {
    let mut c = coordinator();
    let mut req = range("m");
    req.require_known_member_id = true;
    let out = c.join(0, req.clone(), 1);
    let first = join_answer(&out, 1);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(first.member_id.starts_with("c-"));
    assert_eq!(c.next_deadline_ms(), Some(i64::from(SESSION_MS)));
    req.member_id = first.member_id.clone();
    assert!(c.join(100, req.clone(), 2).joins.is_empty());
    let out = c.tick(3_100);
    let second = join_answer(&out, 2);
    assert_eq!((second.error_code, second.generation_id), (NONE, 1));
    assert_eq!(second.member_id, first.member_id);

    // A pending id that never comes back expires; then it is unknown.
    let out = c.join(4_000, range_required(), 3);
    let pending = join_answer(&out, 3).member_id;
    c.heartbeat(10_000, &hb(&first.member_id, 1));
    c.tick(14_000);
    let mut late = range("m");
    late.member_id = pending;
    assert_eq!(
        join_answer(&c.join(14_000, late, 4), 4).error_code,
        UNKNOWN_MEMBER_ID
    );
}

fn range_required() -> JoinRequest {
    let mut req = range("m");
    req.require_known_member_id = true;
    req
}

#[test]
fn unknown_member_and_wrong_generation() {
    let (mut c, responses) = three_joined();
    let m1 = &responses[1].member_id;
    assert_eq!(c.heartbeat(5_000, &hb("ghost", 1)), UNKNOWN_MEMBER_ID);
    assert_eq!(c.heartbeat(5_000, &hb(m1, 7)), ILLEGAL_GENERATION);
    assert_eq!(
        c.heartbeat(5_000, &hb(m1, 1)),
        NONE,
        "heartbeats are fine while syncing"
    );
    let out = c.sync(5_000, sync_req("ghost", 1, &[]), 1);
    assert_eq!(sync_answer(&out, 1).error_code, UNKNOWN_MEMBER_ID);
    let out = c.sync(5_000, sync_req(m1, 0, &[]), 2);
    assert_eq!(sync_answer(&out, 2).error_code, ILLEGAL_GENERATION);
    let mut bad = sync_req(m1, 1, &[]);
    bad.protocol_name = Some("roundrobin".to_string());
    assert_eq!(
        sync_answer(&c.sync(5_000, bad, 3), 3).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let mut ghost = range("x");
    ghost.member_id = "ghost".to_string();
    assert_eq!(
        join_answer(&c.join(5_000, ghost, 4), 4).error_code,
        UNKNOWN_MEMBER_ID
    );
    let mut short = range("x");
    short.session_timeout_ms = 10;
    assert_eq!(
        join_answer(&c.join(5_000, short, 5), 5).error_code,
        INVALID_SESSION_TIMEOUT
    );
    assert_eq!(c.heartbeat(5_000, &hb("m", 1)), UNKNOWN_MEMBER_ID);
    let mut other_group = hb(m1, 1);
    other_group.group_id = "other".to_string();
    assert_eq!(c.heartbeat(5_000, &other_group), UNKNOWN_MEMBER_ID);
}

#[test]
fn rebalance_in_progress_on_heartbeat_and_sync() {
    let (mut c, responses) = three_joined();
    sync_all(&mut c, 5_000, &responses);
    // A new member arrives: rebalance.
    let out = c.join(6_000, range("meta3"), 40);
    assert!(out.joins.is_empty());
    let m1 = &responses[1].member_id;
    assert_eq!(c.heartbeat(6_100, &hb(m1, 1)), REBALANCE_IN_PROGRESS);
    let out = c.sync(6_100, sync_req(m1, 1, &[]), 41);
    assert_eq!(sync_answer(&out, 41).error_code, REBALANCE_IN_PROGRESS);
    assert_eq!(c.describe(G).unwrap().state, "PreparingRebalance");
}

#[test]
fn a_rebalance_during_sync_releases_held_syncs() {
    let (mut c, responses) = three_joined();
    let follower = responses.iter().find(|r| r.member_id != r.leader).unwrap();
    let out = c.sync(5_000, sync_req(&follower.member_id, 1, &[]), 50);
    assert!(out.syncs.is_empty());
    let out = c.join(5_100, range("meta3"), 51);
    assert_eq!(sync_answer(&out, 50).error_code, REBALANCE_IN_PROGRESS);
}

#[test]
fn leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let (mut c, responses) = three_joined();
    let followers: Vec<_> = responses
        .iter()
        .filter(|r| r.member_id != r.leader)
        .collect();
    for (i, f) in followers.iter().enumerate() {
        c.sync(5_000, sync_req(&f.member_id, 1, &[]), 60 + i as Token);
    }
    // The leader stays alive (heartbeats are accepted while syncing) but never syncs.
    for t in [12_000, 20_000, 28_000] {
        assert_eq!(c.heartbeat(t, &hb(&responses[0].member_id, 1)), NONE);
        assert!(c.tick(t).syncs.is_empty());
    }
    assert_eq!(c.next_deadline_ms(), Some(5_000 + i64::from(REBALANCE_MS)));
    let out = c.tick(35_000);
    assert_eq!(out.syncs.len(), 2);
    assert!(out
        .syncs
        .iter()
        .all(|(_, s)| s.error_code == REBALANCE_IN_PROGRESS));
    let d = c.describe(G).unwrap();
    assert_eq!((d.state, d.members.len()), ("PreparingRebalance", 2));
}

#[test]
fn a_leave_completes_the_rebalance_it_was_holding_up() {
    let (mut c, responses) = three_joined();
    sync_all(&mut c, 5_000, &responses);
    let mut r0 = range("meta0");
    r0.member_id = responses[0].member_id.clone();
    assert!(c.join(6_000, r0, 80).joins.is_empty());
    let mut r1 = range("meta1");
    r1.member_id = responses[1].member_id.clone();
    assert!(
        c.join(6_000, r1, 81).joins.is_empty(),
        "still waiting for the third"
    );
    let (codes, out) = c.leave(6_100, G, &[leave_req(&responses[2].member_id)]);
    assert_eq!(codes, vec![NONE]);
    assert_eq!(join_answer(&out, 80).generation_id, 2);
    assert_eq!(join_answer(&out, 81).generation_id, 2);
}

#[test]
fn an_oversized_assignment_is_refused_and_the_group_rebalances() {
    let (mut c, responses) = three_joined();
    let follower = &responses[1];
    assert!(c
        .sync(5_000, sync_req(&follower.member_id, 1, &[]), 90)
        .syncs
        .is_empty());
    let huge = "x".repeat(2_000);
    let leader = &responses[0];
    let out = c.sync(
        5_000,
        sync_req(&leader.member_id, 1, &[(&follower.member_id, &huge)]),
        91,
    );
    assert_eq!(
        sync_answer(&out, 91).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(sync_answer(&out, 90).error_code, REBALANCE_IN_PROGRESS);
    assert!(out.changed_groups.is_empty());
    assert_eq!(c.describe(G).unwrap().state, "PreparingRebalance");
}

#[test]
fn protocol_selection_votes_among_common_protocols() {
    let mut c = coordinator();
    c.join(0, join_req("", &[("sticky", "s"), ("range", "r0")]), 0);
    c.join(
        0,
        join_req("", &[("range", "r1"), ("sticky", "s1"), ("rr", "x")]),
        1,
    );
    c.join(0, join_req("", &[("range", "r2"), ("sticky", "s2")]), 2);
    let out = c.tick(DELAY_MS);
    let responses: Vec<_> = (0..3).map(|t| join_answer(&out, t)).collect();
    assert!(responses
        .iter()
        .all(|r| r.protocol_name.as_deref() == Some("range")));
    let leader = leader_of(&responses);
    let metas: Vec<_> = leader.members.iter().map(|m| m.metadata.clone()).collect();
    assert_eq!(metas, vec!["r0", "r1", "r2"]);
}

#[test]
fn inconsistent_protocols_are_refused() {
    let mut c = coordinator();
    c.join(0, join_req("", &[("range", "r")]), 0);
    let out = c.join(0, join_req("", &[("rr", "x")]), 1);
    assert_eq!(join_answer(&out, 1).error_code, INCONSISTENT_GROUP_PROTOCOL);
    let mut other_type = join_req("", &[("range", "r")]);
    other_type.protocol_type = "connect".to_string();
    assert_eq!(
        join_answer(&c.join(0, other_type, 2), 2).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let huge = "x".repeat(2_000);
    let out = c.join(0, join_req("", &[("range", &huge)]), 3);
    assert_eq!(join_answer(&out, 3).error_code, INCONSISTENT_GROUP_PROTOCOL);
    let out = c.join(0, join_req("", &[]), 4);
    assert_eq!(join_answer(&out, 4).error_code, INCONSISTENT_GROUP_PROTOCOL);
    let out = c.tick(DELAY_MS);
    assert_eq!(join_answer(&out, 0).members.len(), 1);
}

#[test]
fn group_max_size() {
    let mut c = coordinator();
    for t in 0..10 {
        assert!(c.join(0, range("m"), t).joins.is_empty());
    }
    assert_eq!(
        join_answer(&c.join(0, range("m"), 10), 10).error_code,
        GROUP_MAX_SIZE_REACHED
    );
}

fn static_join(instance: &str, member_id: &str, meta: &str) -> JoinRequest {
    let mut req = range(meta);
    req.member_id = member_id.to_string();
    req.group_instance_id = Some(instance.to_string());
    req
}

#[test]
fn static_member_rejoin_keeps_assignment_and_fences_the_old_id() {
    let mut c = coordinator();
    c.join(0, static_join("i0", "", "m0"), 0);
    c.join(0, static_join("i1", "", "m1"), 1);
    let out = c.tick(DELAY_MS);
    let responses: Vec<_> = (0..2).map(|t| join_answer(&out, t)).collect();
    sync_all(&mut c, DELAY_MS, &responses);
    let old = responses[1].member_id.clone();

    // The follower restarts: same instance id, no member id.
    let out = c.join(4_000, static_join("i1", "", "m1"), 70);
    let again = join_answer(&out, 70);
    assert_eq!(
        (again.error_code, again.generation_id),
        (NONE, 1),
        "no generation bump"
    );
    assert_ne!(again.member_id, old);
    assert!(again.members.is_empty());
    assert_eq!(c.describe(G).unwrap().state, "Stable");
    let out = c.sync(4_100, sync_req(&again.member_id, 1, &[]), 71);
    assert_eq!(sync_answer(&out, 71).assignment, format!("a-{old}"));

    let mut stale = hb(&old, 1);
    stale.group_instance_id = Some("i1".to_string());
    assert_eq!(c.heartbeat(4_200, &stale), FENCED_INSTANCE_ID);
    assert_eq!(c.heartbeat(4_200, &hb(&old, 1)), UNKNOWN_MEMBER_ID);
    let out = c.join(4_300, static_join("i1", &old, "m1"), 72);
    assert_eq!(join_answer(&out, 72).error_code, FENCED_INSTANCE_ID);
    assert_eq!(
        c.validate_commit(4_300, G, 1, &old, Some("i1")),
        FENCED_INSTANCE_ID
    );

    // The static leader restarts: it gets the member list and skip_assignment.
    let out = c.join(4_400, static_join("i0", "", "m0"), 73);
    let leader = join_answer(&out, 73);
    assert_eq!(
        (leader.generation_id, leader.leader.clone()),
        (1, leader.member_id.clone())
    );
    assert!(leader.skip_assignment);
    assert_eq!(leader.members.len(), 2);
    // Leaving by instance id.
    let by_instance = LeaveMember {
        member_id: String::new(),
        group_instance_id: Some("i0".into()),
    };
    let (codes, _) = c.leave(4_500, G, &[by_instance]);
    assert_eq!(codes, vec![NONE]);
    assert_eq!(c.describe(G).unwrap().members.len(), 1);
}

#[test]
fn static_rejoin_with_new_protocols_rebalances() {
    let mut c = coordinator();
    c.join(0, static_join("i0", "", "m0"), 0);
    c.join(0, static_join("i1", "", "m1"), 1);
    let out = c.tick(DELAY_MS);
    let responses: Vec<_> = (0..2).map(|t| join_answer(&out, t)).collect();
    sync_all(&mut c, DELAY_MS, &responses);
    let out = c.join(4_000, static_join("i1", "", "changed"), 2);
    assert!(
        out.joins.is_empty(),
        "a changed subscription waits for a rebalance"
    );
    assert_eq!(c.describe(G).unwrap().state, "PreparingRebalance");
    let mut r0 = static_join("i0", &responses[0].member_id, "m0");
    r0.group_instance_id = Some("i0".to_string());
    let out = c.join(4_100, r0, 3);
    assert_eq!(join_answer(&out, 2).generation_id, 2);
    assert_eq!(join_answer(&out, 3).members[1].metadata, "changed");
}

#[test]
fn initial_delay_is_capped_by_the_rebalance_timeout() {
    let mut c = coordinator();
    c.config.max_size = 100;
    let mut t = 0;
    let mut token = 0;
    while t <= 40_000 {
        let out = c.join(t, range("m"), token);
        token += 1;
        assert!(out.joins.is_empty(), "held until the delay ends");
        t += 2_000;
        let out = c.tick(t);
        if !out.joins.is_empty() {
            break;
        }
    }
    assert_eq!(
        t,
        i64::from(REBALANCE_MS),
        "newcomers every 2 s: completes at the cap"
    );
}

#[test]
fn expired_pending_id_of_a_never_formed_group_is_forgotten() {
    let mut c = coordinator();
    let out = c.join(0, range_required(), 1);
    assert_eq!(join_answer(&out, 1).error_code, MEMBER_ID_REQUIRED);
    assert_eq!(c.list().len(), 1);
    let out = c.tick(i64::from(SESSION_MS));
    assert_eq!(out.changed_groups, vec![G.to_string()]);
    assert!(c.list().is_empty() && c.next_deadline_ms().is_none());
}

#[test]
fn validate_commit_cases() {
    let mut c = coordinator();
    assert_eq!(c.validate_commit(0, "simple", -1, "", None), NONE);
    assert_eq!(
        c.validate_commit(0, "simple", 3, "m", None),
        ILLEGAL_GENERATION
    );
    let (mut c, responses) = three_joined();
    let m1 = responses[1].member_id.clone();
    assert_eq!(
        c.validate_commit(5_000, G, 1, &m1, None),
        REBALANCE_IN_PROGRESS
    );
    sync_all(&mut c, 5_000, &responses);
    assert_eq!(c.validate_commit(5_000, G, 1, &m1, None), NONE);
    assert_eq!(
        c.validate_commit(5_000, G, 0, &m1, None),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        c.validate_commit(5_000, G, 1, "ghost", None),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        c.validate_commit(5_000, G, -1, "", None),
        UNKNOWN_MEMBER_ID,
        "live group"
    );
    // Commits keep a member alive like heartbeats do.
    for t in (8_000..=30_000).step_by(4_000) {
        for r in &responses {
            assert_eq!(c.validate_commit(t, G, 1, &r.member_id, None), NONE);
        }
        assert!(c.tick(t).joins.is_empty());
    }
    assert_eq!(c.describe(G).unwrap().state, "Stable");
    let all: Vec<_> = responses.iter().map(|r| leave_req(&r.member_id)).collect();
    c.leave(31_000, G, &all);
    assert_eq!(
        c.validate_commit(31_000, G, -1, "", None),
        NONE,
        "empty group"
    );
    assert_eq!(
        c.validate_commit(31_000, G, 1, &m1, None),
        UNKNOWN_MEMBER_ID
    );
}

fn sample_record() -> GroupRecord {
    GroupRecord {
        group_id: "grp-é".to_string(),
        generation_id: 7,
        protocol_type: "consumer".to_string(),
        protocol_name: Some("range".to_string()),
        leader: Some("m1".to_string()),
        members: vec![
            MemberDescription {
                member_id: "m1".to_string(),
                group_instance_id: Some("i1".to_string()),
                client_id: "c1".to_string(),
                client_host: "/10.0.0.1".to_string(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
                metadata: Bytes::from_static(b"meta1"),
                assignment: Bytes::from_static(b"assign1"),
            },
            MemberDescription {
                member_id: "m2".to_string(),
                group_instance_id: None,
                client_id: "c2".to_string(),
                client_host: "/10.0.0.2".to_string(),
                session_timeout_ms: 6_000,
                rebalance_timeout_ms: 6_000,
                metadata: Bytes::new(),
                assignment: Bytes::from_static(b"\x00\x01"),
            },
        ],
    }
}

#[test]
fn record_round_trip_and_restore() {
    let record = sample_record();
    let bytes = record.encode();
    assert_eq!(bytes[0], 0, "version byte");
    assert_eq!(GroupRecord::decode(&bytes), Some(record.clone()));

    let mut c = coordinator();
    c.restore(1_000, record.clone());
    assert_eq!(c.record("grp-é"), Some(record.clone()));
    let d = c.describe("grp-é").unwrap();
    assert_eq!((d.state, d.protocol_name.as_str()), ("Stable", "range"));
    let mut beat = hb("m2", 7);
    beat.group_id = "grp-é".to_string();
    assert_eq!(c.heartbeat(2_000, &beat), NONE);
    // m1 never heartbeats: expires 10 s after the restore; m2 (6 s session) expires at 8000.
    assert_eq!(c.next_deadline_ms(), Some(8_000));
    c.tick(8_000);
    let d = c.describe("grp-é").unwrap();
    assert_eq!(d.members.len(), 1);
    let mut c2 = coordinator();
    let empty = GroupRecord {
        members: vec![],
        leader: None,
        protocol_name: None,
        ..record
    };
    c2.restore(0, empty.clone());
    assert_eq!(c2.describe("grp-é").unwrap().state, "Empty");
    assert_eq!(GroupRecord::decode(&empty.encode()), Some(empty));
}

#[test]
fn a_restored_leader_keeps_leading_through_a_rebalance() {
    let mut record = sample_record();
    record.group_id = G.to_string();
    record.leader = Some("m2".to_string());
    let mut c = coordinator();
    c.restore(0, record);
    let mut j1 = range("meta");
    j1.member_id = "m1".to_string();
    assert!(
        c.join(100, j1, 1).joins.is_empty(),
        "new metadata: rebalance"
    );
    let mut j2 = range("meta");
    j2.member_id = "m2".to_string();
    let out = c.join(200, j2, 2);
    let (a, b) = (join_answer(&out, 1), join_answer(&out, 2));
    assert_eq!((a.generation_id, a.leader.as_str()), (8, "m2"));
    assert_eq!(b.members.len(), 2);
    assert!(a.members.is_empty());
}

#[test]
fn decode_rejects_every_prefix_and_garbage() {
    let bytes = sample_record().encode();
    for len in 0..bytes.len() {
        assert_eq!(GroupRecord::decode(&bytes[..len]), None, "prefix of {len}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(GroupRecord::decode(&trailing), None);
    let mut wrong_version = bytes.clone();
    wrong_version[0] = 9;
    assert_eq!(GroupRecord::decode(&wrong_version), None);
    // A huge member count with nothing behind it must not allocate or panic.
    let mut huge = vec![0u8, 0, 1, b'g', 0, 0, 0, 1, 0, 0, 0, 0];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(GroupRecord::decode(&huge), None);
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..20_000 {
        let len = rng.random_range(0..64);
        let mut garbage: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) && !garbage.is_empty() {
            garbage[0] = 0;
        }
        let _ = GroupRecord::decode(&garbage);
        // Flipping one byte of a valid record: either rejected or a record that re-encodes.
        let mut flipped = bytes.clone();
        let i = rng.random_range(0..flipped.len());
        flipped[i] ^= rng.random_range(1..=255u8);
        if let Some(r) = GroupRecord::decode(&flipped) {
            assert_eq!(r.encode(), flipped);
        }
    }
}

/// One simulated client of the random test.
#[derive(Default, Clone)]
struct Client {
    member_id: String,
    generation: i32,
    is_leader: bool,
    known_members: Vec<String>,
}

struct Sim {
    c: GroupCoordinator,
    rng: SmallRng,
    now: i64,
    next_token: Token,
    clients: Vec<Client>,
    open_joins: BTreeMap<Token, usize>,
    open_syncs: BTreeMap<Token, usize>,
    last_generation: i32,
    leaders_by_generation: BTreeMap<i32, String>,
    /// Coverage: successful joins, successful syncs, Stable observations.
    seen: [usize; 3],
}

impl Sim {
    fn apply(&mut self, out: Outputs) {
        for (token, r) in out.joins {
            let client = self.open_joins.remove(&token).expect("join answered once");
            let cl = &mut self.clients[client];
            match r.error_code {
                NONE => {
                    self.seen[0] += 1;
                    let g = &self.c.groups[G];
                    assert_eq!(r.generation_id, g.generation_id);
                    let leader = self
                        .leaders_by_generation
                        .entry(r.generation_id)
                        .or_default();
                    if leader.is_empty() {
                        *leader = r.leader.clone();
                    }
                    if *leader != r.leader {
                        // Only a static leader's restart changes the leader's member id.
                        assert!(g.find(leader).is_none(), "one leader per generation");
                        *leader = r.leader.clone();
                    }
                    cl.member_id = r.member_id;
                    cl.generation = r.generation_id;
                    cl.is_leader = cl.member_id == r.leader;
                    cl.known_members = r.members.into_iter().map(|m| m.member_id).collect();
                }
                MEMBER_ID_REQUIRED => cl.member_id = r.member_id,
                UNKNOWN_MEMBER_ID | FENCED_INSTANCE_ID => cl.member_id.clear(),
                _ => {}
            }
        }
        for (token, r) in out.syncs {
            self.open_syncs.remove(&token).expect("sync answered once");
            if r.error_code == NONE {
                self.seen[1] += 1;
            }
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    fn step(&mut self) {
        let i = self.rng.random_range(0..self.clients.len());
        let cl = self.clients[i].clone();
        match self.rng.random_range(0..10) {
            0..=2 => {
                let mut req = range(if self.rng.random_bool(0.8) { "m" } else { "n" });
                if self.rng.random_bool(0.2) {
                    req.protocols.push(("rr".to_string(), Bytes::new()));
                }
                req.member_id = cl.member_id.clone();
                req.require_known_member_id = self.rng.random_bool(0.5);
                if i >= 3 {
                    req.group_instance_id = Some(format!("i{i}"));
                    if self.rng.random_bool(0.3) {
                        req.member_id.clear();
                    }
                }
                let t = self.token();
                self.open_joins.insert(t, i);
                let out = self.c.join(self.now, req, t);
                self.apply(out);
            }
            3..=4 => {
                let assignments: Vec<(String, String)> = if cl.is_leader {
                    cl.known_members
                        .iter()
                        .map(|m| (m.clone(), format!("a{m}")))
                        .collect()
                } else {
                    Vec::new()
                };
                let pairs: Vec<(&str, &str)> = assignments
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                let mut req = sync_req(&cl.member_id, cl.generation, &pairs);
                if i >= 3 {
                    req.group_instance_id = Some(format!("i{i}"));
                }
                let t = self.token();
                self.open_syncs.insert(t, i);
                let out = self.c.sync(self.now, req, t);
                self.apply(out);
            }
            5..=6 => {
                self.c
                    .heartbeat(self.now, &hb(&cl.member_id, cl.generation));
            }
            7 => {
                let (codes, out) = self.c.leave(self.now, G, &[leave_req(&cl.member_id)]);
                assert_eq!(codes.len(), 1);
                self.apply(out);
            }
            8 => {
                self.c
                    .validate_commit(self.now, G, cl.generation, &cl.member_id, None);
            }
            _ => {
                self.now += self.rng.random_range(0..8_000);
                let out = self.c.tick(self.now);
                self.apply(out);
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let Some(g) = self.c.groups.get(G) else {
            return;
        };
        assert!(
            g.generation_id >= self.last_generation,
            "generation never decreases"
        );
        self.last_generation = g.generation_id;
        if g.state == GroupState::Stable {
            self.seen[2] += 1;
            assert!(g
                .members
                .iter()
                .all(|m| m.assignment_generation == g.generation_id));
        }
        if !g.members.is_empty() {
            let leader = g
                .leader
                .as_deref()
                .expect("a group with members has a leader");
            assert_eq!(
                g.members.iter().filter(|m| m.member_id == leader).count(),
                1
            );
        } else {
            assert_eq!(
                g.state,
                GroupState::Empty,
                "a group without members is Empty"
            );
        }
        let ids: BTreeSet<_> = g.members.iter().map(|m| &m.member_id).collect();
        assert_eq!(ids.len(), g.members.len(), "member ids are unique");
        let held: usize = g
            .members
            .iter()
            .map(|m| m.join_token.is_some() as usize + m.sync_token.is_some() as usize)
            .sum();
        assert_eq!(
            held,
            self.open_joins.len() + self.open_syncs.len(),
            "held = open"
        );
    }
}

#[test]
fn random_operations_keep_the_invariants() {
    let mut seen = [0; 3];
    for seed in 0..300 {
        let mut sim = Sim {
            c: coordinator(),
            rng: SmallRng::seed_from_u64(seed),
            now: 0,
            next_token: 0,
            clients: vec![Client::default(); 5],
            open_joins: BTreeMap::new(),
            open_syncs: BTreeMap::new(),
            last_generation: 0,
            leaders_by_generation: BTreeMap::new(),
            seen: [0; 3],
        };
        for _ in 0..400 {
            sim.step();
        }
        // Nobody speaks any more: ticking at each deadline answers everything.
        let mut rounds = 0;
        while let Some(deadline) = sim.c.next_deadline_ms() {
            assert!(
                deadline >= sim.now || rounds == 0,
                "seed {seed}: deadline went backwards"
            );
            sim.now = sim.now.max(deadline);
            let out = sim.c.tick(sim.now);
            sim.apply(out);
            sim.check();
            rounds += 1;
            assert!(rounds < 100, "seed {seed}: ticking does not converge");
        }
        assert!(sim.open_joins.is_empty(), "seed {seed}: unanswered joins");
        assert!(sim.open_syncs.is_empty(), "seed {seed}: unanswered syncs");
        for (total, n) in seen.iter_mut().zip(sim.seen) {
            *total += n;
        }
    }
    println!("joins ok, syncs ok, stable steps: {seen:?}");
    assert!(
        seen.iter().all(|n| *n > 1_000),
        "the random walk reaches every phase: {seen:?}"
    );
}
