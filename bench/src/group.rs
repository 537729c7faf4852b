//! `--group ID`: the consumers join a consumer group (Kafka's classic protocol) and read the
//! partitions the group assigns them, instead of a dealt-out assignment.
//!
//! ```text
//! member thread i:  FindCoordinator -> JoinGroup ("consumer", assignor "range") -> SyncGroup
//!                   (the leader range-assigns the topic over the members sorted by id)
//!                   then Heartbeat every 500 ms; REBALANCE_IN_PROGRESS -> join again
//! main thread:      waits until every member holds the same generation and the
//!                   assignments cover each partition exactly once, then runs the workload
//! end:              LeaveGroup
//! ```
//!
//! Group membership is on blocking sockets in one thread per member (it is not on the hot
//! path). Offsets are not committed: the bench measures, it does not resume. A rebalance during
//! the measured run is reported as an error rather than followed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    consumer_protocol_assignment::TopicPartition, join_group_request::JoinGroupRequestProtocol,
    leave_group_request::MemberIdentity, sync_group_request::SyncGroupRequestAssignment,
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::setup::{topic_name, SyncClient};
use crate::BenchError;
use millrace_security::client::ClientSecurity;
use millrace_wire::codes::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, ILLEGAL_GENERATION,
    MEMBER_ID_REQUIRED, NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};

const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What one member holds right now.
#[derive(Debug, Clone, Default)]
struct Held {
    generation: i32,
    partitions: Vec<i32>,
    stable: bool,
    failure: Option<String>,
}

/// The members of the bench's group, each kept alive by its own thread.
pub struct Group {
    stop: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    held: Vec<Arc<Mutex<Held>>>,
}

impl Group {
    /// Joins `members` consumers to `group` and waits for one generation that assigns every
    /// partition of `topic` exactly once. Returns the group and each member's partitions.
    pub fn join(
        bootstrap: &str,
        security: &Arc<ClientSecurity>,
        group: &str,
        topic: &str,
        partitions: usize,
        members: usize,
    ) -> Result<(Group, Vec<Vec<i32>>), BenchError> {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut held = Vec::new();
        for _ in 0..members {
            let state = Arc::new(Mutex::new(Held::default()));
            held.push(state.clone());
            let (bootstrap, group, topic) =
                (bootstrap.to_string(), group.to_string(), topic.to_string());
            let (stop, running) = (stop.clone(), running.clone());
            let security = security.clone();
            threads.push(std::thread::spawn(move || {
                let flags = (&*stop, &*running);
                if let Err(e) = member_loop(&bootstrap, &security, &group, &topic, flags, &state) {
                    lock(&state).failure = Some(e.to_string());
                }
            }));
        }
        let group = Group {
            stop,
            running,
            threads,
            held,
        };
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let snapshot: Vec<Held> = group.held.iter().map(|h| lock(h).clone()).collect();
            if let Some(f) = snapshot.iter().find_map(|h| h.failure.clone()) {
                return Err(BenchError::Protocol(format!("group member: {f}")));
            }
            if settled(&snapshot, partitions) {
                group.running.store(true, Ordering::Relaxed);
                return Ok((group, snapshot.into_iter().map(|h| h.partitions).collect()));
            }
            if Instant::now() > deadline {
                return Err(BenchError::Protocol(format!(
                    "group {} did not settle within {SETTLE_TIMEOUT:?}",
                    group_name(&snapshot)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Errors any member saw after the group settled (a rebalance during the run).
    pub fn leave(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.held
            .iter()
            .filter_map(|h| lock(h).failure.clone())
            .collect()
    }
}

fn group_name(snapshot: &[Held]) -> String {
    let generations: Vec<i32> = snapshot.iter().map(|h| h.generation).collect();
    format!("(generations {generations:?})")
}

fn lock(m: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when every member is stable in one generation and the partitions are covered once.
fn settled(members: &[Held], partitions: usize) -> bool {
    let Some(first) = members.first() else {
        return false;
    };
    if !members
        .iter()
        .all(|m| m.stable && m.generation == first.generation)
    {
        return false;
    }
    let mut all: Vec<i32> = members.iter().flat_map(|m| m.partitions.clone()).collect();
    all.sort_unstable();
    all == (0..partitions as i32).collect::<Vec<_>>()
}

fn member_loop(
    bootstrap: &str,
    security: &Arc<ClientSecurity>,
    group: &str,
    topic: &str,
    (stop, running): (&AtomicBool, &AtomicBool),
    state: &Mutex<Held>,
) -> Result<(), BenchError> {
    let mut bootstrap_client = SyncClient::connect(bootstrap, security)?;
    let coordinator = find_coordinator(&mut bootstrap_client, group)?;
    let mut client = SyncClient::connect(&coordinator, security)?;
    let mut member_id = String::new();
    let mut generation = -1;
    while !stop.load(Ordering::Relaxed) {
        if generation < 0 {
            if running.load(Ordering::Relaxed) {
                // A rebalance after the run started: say so (the run keeps its assignment).
                lock(state).failure = Some(format!("group {group} rebalanced during the run"));
            }
            let (g, id, partitions) = join_and_sync(&mut client, group, topic, &member_id)?;
            generation = g;
            member_id = id;
            let mut held = lock(state);
            held.generation = g;
            held.partitions = partitions;
            held.stable = false;
            continue;
        }
        std::thread::sleep(HEARTBEAT_INTERVAL);
        let mut request = HeartbeatRequest::default();
        request.group_id = GroupId(StrBytes::from_string(group.to_string()));
        request.generation_id = generation;
        request.member_id = StrBytes::from_string(member_id.clone());
        let response = client.call(&request, 0..=4)?;
        match response.error_code {
            NONE => lock(state).stable = true,
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => {
                if response.error_code != REBALANCE_IN_PROGRESS {
                    member_id.clear();
                }
                generation = -1;
            }
            code => return Err(BenchError::Kafka("Heartbeat".into(), code)),
        }
    }
    let mut identity = MemberIdentity::default();
    identity.member_id = StrBytes::from_string(member_id.clone());
    let mut request = LeaveGroupRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_string()));
    request.member_id = StrBytes::from_string(member_id);
    request.members = vec![identity];
    let _ = client.call(&request, 0..=5);
    Ok(())
}

fn find_coordinator(client: &mut SyncClient, group: &str) -> Result<String, BenchError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut request = FindCoordinatorRequest::default();
        request.key = StrBytes::from_string(group.to_string());
        request.key_type = 0;
        let response = client.call(&request, 1..=3)?;
        match response.error_code {
            NONE => return Ok(format!("{}:{}", response.host.as_str(), response.port)),
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(250));
            }
            code => return Err(BenchError::Kafka(format!("FindCoordinator {group}"), code)),
        }
    }
}

/// One JoinGroup + SyncGroup round; returns (generation, member id, partitions).
fn join_and_sync(
    client: &mut SyncClient,
    group: &str,
    topic: &str,
    member_id: &str,
) -> Result<(i32, String, Vec<i32>), BenchError> {
    let mut member_id = member_id.to_string();
    for _ in 0..20 {
        let mut protocol = JoinGroupRequestProtocol::default();
        protocol.name = StrBytes::from_static_str("range");
        protocol.metadata = subscription(topic);
        let mut join = JoinGroupRequest::default();
        join.group_id = GroupId(StrBytes::from_string(group.to_string()));
        join.session_timeout_ms = 10_000;
        join.rebalance_timeout_ms = 30_000;
        join.member_id = StrBytes::from_string(member_id.clone());
        join.protocol_type = StrBytes::from_static_str("consumer");
        join.protocols = vec![protocol];
        let response = client.call(&join, 2..=9)?;
        member_id = response.member_id.to_string();
        match response.error_code {
            NONE => {}
            MEMBER_ID_REQUIRED | REBALANCE_IN_PROGRESS => continue,
            code => return Err(BenchError::Kafka(format!("JoinGroup {group}"), code)),
        }
        let mut sync = SyncGroupRequest::default();
        sync.group_id = GroupId(StrBytes::from_string(group.to_string()));
        sync.generation_id = response.generation_id;
        sync.member_id = StrBytes::from_string(member_id.clone());
        sync.protocol_type = Some(StrBytes::from_static_str("consumer"));
        sync.protocol_name = Some(StrBytes::from_static_str("range"));
        if response.leader == response.member_id {
            let members: Vec<String> = response
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect();
            let partitions = partition_count(client, topic)?;
            sync.assignments = range_assign(&members, partitions)
                .into_iter()
                .map(|(member, parts)| {
                    let mut a = SyncGroupRequestAssignment::default();
                    a.member_id = StrBytes::from_string(member);
                    a.assignment = assignment(topic, &parts);
                    a
                })
                .collect();
        }
        let synced = client.call(&sync, 0..=5)?;
        match synced.error_code {
            NONE => {
                let parts = decode_assignment(synced.assignment, topic)?;
                return Ok((response.generation_id, member_id, parts));
            }
            REBALANCE_IN_PROGRESS => continue,
            code => return Err(BenchError::Kafka(format!("SyncGroup {group}"), code)),
        }
    }
    Err(BenchError::Protocol(format!(
        "could not join group {group} in 20 rounds"
    )))
}

fn partition_count(client: &mut SyncClient, topic: &str) -> Result<usize, BenchError> {
    Ok(client.route(topic)?.leaders.len())
}

/// The range assignor for one topic: members sorted by id; the first `partitions % members`
/// get one partition more; each gets a contiguous range.
pub fn range_assign(members: &[String], partitions: usize) -> BTreeMap<String, Vec<i32>> {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    let n = sorted.len().max(1);
    let (base, extra) = (partitions / n, partitions % n);
    let mut out = BTreeMap::new();
    let mut next = 0;
    for (i, m) in sorted.into_iter().enumerate() {
        let count = base + usize::from(i < extra);
        out.insert(m.clone(), (next..next + count).map(|p| p as i32).collect());
        next += count;
    }
    out
}

/// ConsumerProtocolSubscription v0 with its version prefix.
fn subscription(topic: &str) -> Bytes {
    let mut s = ConsumerProtocolSubscription::default();
    s.topics = vec![StrBytes::from_string(topic.to_string())];
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    s.encode(&mut buf, 0).expect("a subscription encodes");
    buf.freeze()
}

/// ConsumerProtocolAssignment v0 with its version prefix.
fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut tp = TopicPartition::default();
    tp.topic = topic_name(topic);
    tp.partitions = partitions.to_vec();
    let mut a = ConsumerProtocolAssignment::default();
    a.assigned_partitions = vec![tp];
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    a.encode(&mut buf, 0).expect("an assignment encodes");
    buf.freeze()
}

fn decode_assignment(mut bytes: Bytes, topic: &str) -> Result<Vec<i32>, BenchError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.len() < 2 {
        return Err(BenchError::Protocol(
            "assignment shorter than its version".into(),
        ));
    }
    let version = bytes.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut bytes, version)
        .map_err(|e| BenchError::Protocol(format!("assignment: {e}")))?;
    let mut parts: Vec<i32> = a
        .assigned_partitions
        .iter()
        .filter(|t| t.topic.as_str() == topic)
        .flat_map(|t| t.partitions.iter().copied())
        .collect();
    parts.sort_unstable();
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignor_gives_contiguous_ranges_in_member_order() {
        let members = vec!["c".to_string(), "a".to_string(), "b".to_string()];
        let a = range_assign(&members, 16);
        assert_eq!(a["a"], (0..6).collect::<Vec<_>>());
        assert_eq!(a["b"], (6..11).collect::<Vec<_>>());
        assert_eq!(a["c"], (11..16).collect::<Vec<_>>());
        let a = range_assign(&members, 2);
        assert_eq!((a["a"].len(), a["b"].len(), a["c"].len()), (1, 1, 0));
    }

    #[test]
    fn assignment_blob_round_trips_and_ignores_other_topics() {
        let blob = assignment("t", &[3, 1, 2]);
        assert_eq!(decode_assignment(blob.clone(), "t").unwrap(), vec![1, 2, 3]);
        assert_eq!(decode_assignment(blob, "other").unwrap(), Vec::<i32>::new());
        assert!(decode_assignment(Bytes::from_static(&[0]), "t").is_err());
        assert_eq!(
            decode_assignment(Bytes::new(), "t").unwrap(),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn settled_needs_one_generation_covering_each_partition_once() {
        let held = |generation, partitions: &[i32]| Held {
            generation,
            partitions: partitions.to_vec(),
            stable: true,
            failure: None,
        };
        assert!(settled(&[held(2, &[0, 1]), held(2, &[2, 3])], 4));
        assert!(!settled(&[held(1, &[0, 1]), held(2, &[2, 3])], 4));
        assert!(!settled(&[held(2, &[0, 1]), held(2, &[1, 2, 3])], 4));
        assert!(!settled(&[held(2, &[0, 1])], 4));
    }
}
