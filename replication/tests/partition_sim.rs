//! Deterministic simulation of one RF=3 partition: three brokers, each with the storage
//! crate's partition log on its own `SimDisk` and the replica state machine; a controller
//! deciding with `metadata::control` (registration, fencing, elections, AlterPartition) over
//! a `ClusterImage`; followers fetching by `millrace_replication::follow`'s rules; a producing
//! client with acks=all and unique values; a consumer reading up to the high watermark.
//!
//! Faults, chosen by the seed: crashes that lose what a broker had not synced, restarts,
//! pauses (a broker that does nothing and hears nothing, then resumes with its stale view),
//! network cuts between brokers and between a broker and the controller, metadata delivered
//! late and out of order, fetch answers applied late. `min.insync.replicas` = 2 and at most
//! two brokers are down or paused at once.
//!
//! Invariants, checked as the run goes and after a healing phase at its end:
//!
//! * at most one leader per leader epoch;
//! * a leader's high watermark never goes back while it leads, and whatever any leader ever
//!   exposed below its high watermark is the same record for every later leader (no
//!   committed record is lost or changed, so no consumer read is later truncated);
//! * every acknowledged value is read back at the offset its produce was given, once;
//! * a value refused before its append (NOT_ENOUGH_REPLICAS) is never in the log;
//! * after healing, the replicas' logs are identical batch for batch below the high
//!   watermark, and a new produce is acknowledged (the partition is available again).
//!
//! `PARTITION_SIM_SEEDS=n` runs seeds 0..n (default 300); `PARTITION_SIM_SEED=s` replays one.

use bytes::{Bytes, BytesMut};
use futures_lite::future::block_on;
use millrace_replication::follow::{self, FetchAnswer, FollowerPosition, FollowerStep};
use millrace_replication::metadata::control::{self, BrokerRegistrationRequest, IsrChange};
use millrace_replication::metadata::{BrokerEndpoint, ClusterImage, MetadataRecord, TopicId};
use millrace_replication::replica::{AcksState, Action, Assignment, Event, Replica, ReplicaConfig};
use millrace_replication::LeaderEpoch;
use millrace_storage::disk::DiskFile;
use millrace_storage::sim::SimDisk;
use millrace_storage::{BatchCache, LogConfig, PartitionLog, ReadChunk};
use millrace_wire::codes;
use millrace_wire::records::{decode_records, BatchBuilder, BatchIter, BatchStep, NewRecord};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

const BROKERS: [i32; 3] = [1, 2, 3];
const TOPIC: TopicId = TopicId([9; 16]);
const LAG_MS: i64 = 1_000;
const SESSION_MS: i64 = 1_500;
const MIN_ISR: usize = 2;
/// The controller keeps the ELR with the brokers' `min.insync.replicas`.
const ELR_MIN_ISR: control::MinIsr = control::MinIsr { default: MIN_ISR };

#[test]
fn acknowledged_writes_survive_crashes_pauses_and_cuts() {
    let seeds: Vec<u64> = match std::env::var("PARTITION_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("PARTITION_SIM_SEED")],
        Err(_) => {
            let n = std::env::var("PARTITION_SIM_SEEDS").map_or(300, |n| n.parse().unwrap());
            (0..n).collect()
        }
    };
    let mut totals = Totals::default();
    for seed in seeds {
        match catch_unwind(AssertUnwindSafe(|| Sim::new(seed).run())) {
            Ok(t) => totals.add(&t),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("seed {seed} failed (replay: PARTITION_SIM_SEED={seed}): {msg}");
            }
        }
    }
    println!("partition simulation totals: {totals:?}");
    // The run must exercise what it claims.
    assert!(totals.acked > 0 && totals.failovers > 0, "{totals:?}");
    assert!(totals.truncations > 0 && totals.crashes > 0, "{totals:?}");
    assert!(
        totals.isr_shrinks > 0 && totals.isr_expands > 0,
        "{totals:?}"
    );
    assert!(totals.refused > 0, "{totals:?}");
}

#[derive(Debug, Default, Clone)]
struct Totals {
    acked: u64,
    refused: u64,
    indeterminate: u64,
    failovers: u64,
    truncations: u64,
    crashes: u64,
    isr_shrinks: u64,
    isr_expands: u64,
    /// Leaders elected from the ELR (KIP-966) after the ISR emptied.
    elr_elections: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.acked += o.acked;
        self.refused += o.refused;
        self.indeterminate += o.indeterminate;
        self.failovers += o.failovers;
        self.truncations += o.truncations;
        self.crashes += o.crashes;
        self.isr_shrinks += o.isr_shrinks;
        self.isr_expands += o.isr_expands;
        self.elr_elections += o.elr_elections;
    }
}

/// xorshift: the run is a function of the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A running broker's replica.
struct Node {
    log: PartitionLog<SimDisk>,
    replica: Replica,
    broker_epoch: i64,
    /// The ISR change proposed and not yet sent.
    proposal: Option<(Vec<i32>, LeaderEpoch, i32)>,
    /// A fetch answer not applied yet: (leader epoch it was sent under, fetch offset, answer).
    inflight: Option<(LeaderEpoch, i64, FetchAnswer)>,
}

impl Node {
    /// Keeps the ISR change among `actions` for the sender (the broker's `isr.rs`).
    fn take_proposals(&mut self, actions: Vec<Action>) {
        for action in actions {
            if let Action::AlterIsr {
                isr,
                leader_epoch,
                partition_epoch,
            } = action
            {
                self.proposal = Some((isr, leader_epoch, partition_epoch));
            }
        }
    }
}

struct Broker {
    disk: SimDisk,
    node: Option<Node>,
    paused: bool,
}

/// An acks=all produce waiting for its answer.
struct Pending {
    broker: i32,
    epoch: LeaderEpoch,
    base: i64,
    values: Vec<u64>,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: i64,
    brokers: Vec<Broker>,
    image: ClusterImage,
    /// Metadata on its way: (deliver at, broker, assignment).
    deliveries: Vec<(i64, i32, Assignment)>,
    /// Cut links: (a, b) with a < b; 0 is the controller.
    cuts: BTreeSet<(i32, i32)>,
    /// When each broker was last heard by the controller.
    heard: HashMap<i32, i64>,
    next_value: u64,
    pending: Vec<Pending>,
    /// Every acknowledged value and its offset.
    acked: BTreeMap<u64, i64>,
    /// Values refused before their append.
    refused: BTreeSet<u64>,
    /// Records any leader ever exposed below its high watermark: offset → (value).
    committed: BTreeMap<i64, u64>,
    /// Leader epoch → the broker that led under it.
    leaders: BTreeMap<i32, i32>,
    /// (broker, leader epoch) → the last high watermark it had as leader.
    leader_hw: HashMap<(i32, i32), i64>,
    totals: Totals,
}

fn assignment_of(image: &ClusterImage) -> Assignment {
    let p = image.partition(&TOPIC, 0).expect("the partition exists");
    Assignment {
        leader_epoch: LeaderEpoch(p.leader_epoch),
        partition_epoch: p.partition_epoch,
        leader: (p.leader >= 0).then_some(p.leader),
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1_500,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut sim = Sim {
            seed,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            now: 1_000_000,
            brokers: BROKERS
                .iter()
                .map(|_| Broker {
                    disk: SimDisk::new(512),
                    node: None,
                    paused: false,
                })
                .collect(),
            image: ClusterImage::default(),
            deliveries: Vec::new(),
            cuts: BTreeSet::new(),
            heard: HashMap::new(),
            next_value: 0,
            pending: Vec::new(),
            acked: BTreeMap::new(),
            refused: BTreeSet::new(),
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            leader_hw: HashMap::new(),
            totals: Totals::default(),
        };
        for id in BROKERS {
            sim.register(id);
            sim.commit(control::unfence_broker(&sim.image, id, ELR_MIN_ISR).expect("unfence"));
        }
        let start = sim.rng.below(3) as usize;
        let records = control::create_topic(&sim.image, "t", TOPIC, 1, 3, start).expect("topic");
        sim.commit(records);
        for id in BROKERS {
            sim.start(id);
        }
        sim
    }

    fn run(mut self) -> Totals {
        for _ in 0..400 {
            self.now += self.rng.below(40) as i64;
            self.step();
            self.check_leaders();
        }
        self.heal();
        self.check_final();
        self.totals
    }

    // --- the controller -------------------------------------------------------------------

    fn commit(&mut self, records: Vec<MetadataRecord>) {
        if records.is_empty() {
            return;
        }
        let before = self
            .image
            .partition(&TOPIC, 0)
            .map(|p| (p.leader, p.leader_epoch, p.isr.clone()));
        let elr_before = self
            .image
            .partition(&TOPIC, 0)
            .map(|p| (p.leader, p.eligible_leader_replicas.clone()));
        for record in records {
            let offset = self.image.last_applied_offset() + 1;
            self.image
                .apply(&record, offset)
                .expect("a decided record applies");
        }
        let Some(p) = self.image.partition(&TOPIC, 0) else {
            return;
        };
        if let Some((leader, epoch, isr)) = before {
            if epoch != p.leader_epoch && leader >= 0 && p.leader >= 0 && leader != p.leader {
                self.totals.failovers += 1;
            }
            if let Some((-1, elr)) = &elr_before {
                if p.leader >= 0 && elr.contains(&p.leader) {
                    self.totals.elr_elections += 1;
                }
            }
            if p.isr.len() < isr.len() {
                self.totals.isr_shrinks += 1;
            } else if p.isr.len() > isr.len() {
                self.totals.isr_expands += 1;
            }
        }
        let assignment = assignment_of(&self.image);
        for id in BROKERS {
            let at = self.now + self.rng.below(150) as i64;
            self.deliveries.push((at, id, assignment.clone()));
        }
    }

    fn register(&mut self, id: i32) -> i64 {
        let mut incarnation = [0u8; 16];
        incarnation[..8].copy_from_slice(&self.rng.below(u64::MAX).to_be_bytes());
        let request = BrokerRegistrationRequest {
            broker_id: id,
            incarnation_id: incarnation,
            endpoints: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: format!("b{id}"),
                port: 9092,
                security_protocol: 0,
            }],
            rack: None,
        };
        let offset = self.image.last_applied_offset() + 1;
        let records = control::register_broker(&self.image, &request, offset, false, ELR_MIN_ISR)
            .expect("registration");
        self.commit(records);
        self.heard.insert(id, self.now);
        offset
    }

    fn linked(&self, a: i32, b: i32) -> bool {
        !self.cuts.contains(&(a.min(b), a.max(b)))
    }

    fn up(&self, id: i32) -> bool {
        let b = &self.brokers[(id - 1) as usize];
        b.node.is_some() && !b.paused
    }

    /// Heartbeats and session expiry: a running broker the controller reaches is heard; one
    /// not heard for the session timeout is fenced.
    fn controller_tick(&mut self) {
        for id in BROKERS {
            if self.up(id) && self.linked(0, id) {
                let registered = self
                    .image
                    .broker(id)
                    .is_some_and(|b| Some(b.broker_epoch) == self.node(id).map(|n| n.broker_epoch));
                if registered {
                    self.heard.insert(id, self.now);
                    if self.image.broker(id).is_some_and(|b| b.fenced) {
                        self.commit(
                            control::unfence_broker(&self.image, id, ELR_MIN_ISR).expect("unfence"),
                        );
                    }
                }
            }
            let silent = self.now - self.heard.get(&id).copied().unwrap_or(0) > SESSION_MS;
            if silent && self.image.broker(id).is_some_and(|b| !b.fenced) {
                self.commit(control::fence_broker(&self.image, id, ELR_MIN_ISR).expect("fence"));
            }
        }
    }

    // --- brokers --------------------------------------------------------------------------

    fn node(&self, id: i32) -> Option<&Node> {
        self.brokers[(id - 1) as usize].node.as_ref()
    }

    fn node_mut(&mut self, id: i32) -> Option<&mut Node> {
        self.brokers[(id - 1) as usize].node.as_mut()
    }

    fn dir(id: i32) -> PathBuf {
        PathBuf::from(format!("/b{id}/t-0"))
    }

    /// Opens broker `id`'s log (recovery) and its replica under the image's assignment.
    fn start(&mut self, id: i32) {
        let disk = self.brokers[(id - 1) as usize].disk.clone();
        let log = block_on(PartitionLog::open(
            disk,
            Self::dir(id),
            log_config(),
            BatchCache::new(if self.rng.chance(50) { 0 } else { 64 << 10 }),
            self.now,
        ))
        .expect("recovery");
        let broker_epoch = self.image.broker(id).expect("registered").broker_epoch;
        let (end, durable) = (log.log_end_offset(), log.durable_end());
        let mut replica =
            Replica::new(id, assignment_of(&self.image), end, durable, 0).started_at(self.now);
        replica.set_config(ReplicaConfig {
            min_insync_replicas: MIN_ISR,
            replica_lag_time_max_ms: LAG_MS,
        });
        self.brokers[(id - 1) as usize].node = Some(Node {
            log,
            replica,
            broker_epoch,
            proposal: None,
            inflight: None,
        });
    }

    fn feed(&mut self, id: i32, event: Event) {
        let Some(node) = self.node_mut(id) else {
            return;
        };
        let actions = node.replica.handle(event);
        node.take_proposals(actions);
        self.observe_leader(id);
    }

    fn step(&mut self) {
        let live: Vec<i32> = BROKERS.iter().copied().filter(|&b| self.up(b)).collect();
        let any = |sim: &mut Sim, set: &[i32]| set[sim.rng.below(set.len() as u64) as usize];
        let down = BROKERS.iter().filter(|&&b| !self.up(b)).count();
        match self.rng.below(100) {
            0..=19 => self.produce(),
            20..=29 => {
                if let Some(&b) = live.get(self.rng.below(live.len() as u64) as usize) {
                    self.flush(b);
                }
            }
            30..=49 => {
                if !live.is_empty() {
                    let b = any(self, &live);
                    self.fetch(b);
                }
            }
            50..=59 => {
                if !live.is_empty() {
                    let b = any(self, &live);
                    self.apply_inflight(b);
                }
            }
            60..=64 => self.settle_acks(),
            65..=69 => self.deliver(),
            70..=74 => {
                for b in live {
                    self.feed(b, Event::Tick(self.now));
                    self.send_proposal(b);
                }
            }
            75..=79 => self.controller_tick(),
            80..=81 if down < 2 => {
                let b = any(self, &BROKERS);
                self.crash(b);
            }
            82..=84 => {
                let crashed: Vec<i32> = BROKERS
                    .iter()
                    .copied()
                    .filter(|&b| self.node(b).is_none())
                    .collect();
                if !crashed.is_empty() {
                    let b = any(self, &crashed);
                    self.restart(b);
                }
            }
            85 if down < 2 => {
                let b = any(self, &BROKERS);
                self.brokers[(b - 1) as usize].paused = true;
            }
            86..=87 => {
                for b in &mut self.brokers {
                    b.paused = false;
                }
            }
            88..=89 => {
                let a = self.rng.below(4) as i32;
                let b = any(self, &BROKERS);
                if a != b {
                    self.cuts.insert((a.min(b), a.max(b)));
                }
            }
            90..=92 => {
                if let Some(&cut) = self.cuts.iter().next() {
                    self.cuts.remove(&cut);
                }
            }
            93..=94 => self.consume(),
            _ => self.now += self.rng.below(400) as i64,
        }
    }

    /// An acks=all produce of 1-3 unique values to the broker the client believes leads (the
    /// controller's image, as a client's metadata would say).
    fn produce(&mut self) {
        let Some(leader) = assignment_of(&self.image).leader else {
            return;
        };
        if !self.up(leader) {
            return;
        }
        let count = 1 + self.rng.below(3) as usize;
        let values: Vec<u64> = (0..count)
            .map(|_| {
                self.next_value += 1;
                self.next_value
            })
            .collect();
        let node = self.node(leader).expect("up");
        if !node.replica.is_leader() {
            return; // NOT_LEADER_OR_FOLLOWER: nothing appended, the client retries
        }
        if node.replica.check_acks_all().is_err() {
            self.totals.refused += values.len() as u64;
            self.refused.extend(values);
            return;
        }
        let records: Vec<NewRecord> = values
            .iter()
            .map(|v| NewRecord {
                timestamp: self.now,
                key: None,
                value: Some(v.to_be_bytes().to_vec()),
                headers: Vec::new(),
            })
            .collect();
        let batch = BatchBuilder::default().build(&records);
        let epoch = node.replica.leader_epoch();
        let appended = node
            .log
            .append(BytesMut::from(&batch[..]), epoch, self.now, false)
            .expect("append");
        let end = node.log.log_end_offset();
        self.feed(leader, Event::LogEnd(end));
        self.pending.push(Pending {
            broker: leader,
            epoch,
            base: appended.base_offset,
            values,
        });
    }

    fn flush(&mut self, id: i32) {
        let Some(node) = self.node(id) else { return };
        if block_on(node.log.flush()).is_err() {
            return; // cut by a truncation meanwhile: the next flush covers it
        }
        let durable = node.log.durable_end();
        self.feed(id, Event::Durable(durable));
    }

    /// Answers what can be answered: acknowledged once the high watermark passed it,
    /// indeterminate when its leader crashed or refused it after the append.
    fn settle_acks(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            let Some(node) = self.node(p.broker) else {
                self.totals.indeterminate += p.values.len() as u64;
                continue;
            };
            let end = p.base + p.values.len() as i64;
            match node.replica.acks_all_state(end, p.epoch) {
                AcksState::Done => {
                    for (i, v) in p.values.iter().enumerate() {
                        let offset = p.base + i as i64;
                        assert_eq!(
                            self.committed.get(&offset),
                            Some(v),
                            "acknowledged value {v} at {offset} is not what was committed there"
                        );
                        self.acked.insert(*v, offset);
                        self.totals.acked += 1;
                    }
                }
                AcksState::Failed(_) => self.totals.indeterminate += p.values.len() as u64,
                AcksState::Waiting => self.pending.push(p),
            }
        }
    }

    /// Metadata that is due reaches brokers that are running and not paused.
    fn deliver(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deliveries)
            .into_iter()
            .partition(|d| d.0 <= now);
        self.deliveries = later;
        for (_, id, assignment) in due {
            if self.brokers[(id - 1) as usize].paused {
                self.deliveries.push((now + 1, id, assignment));
                continue;
            }
            if self.node(id).is_some() {
                self.feed(id, Event::Assigned(assignment));
                // As a broker applying an image: fenced brokers may not join an ISR.
                let fenced: Vec<i32> = self
                    .image
                    .brokers()
                    .filter(|b| !b.is_active())
                    .map(|b| b.broker_id)
                    .collect();
                let node = self.node_mut(id).expect("running");
                let actions = node.replica.set_ineligible(fenced);
                node.take_proposals(actions);
            }
        }
    }

    /// A leader's proposal goes to the controller (unless cut off), which decides it.
    fn send_proposal(&mut self, id: i32) {
        if !self.linked(0, id) {
            return;
        }
        let Some(node) = self.node_mut(id) else {
            return;
        };
        let Some((isr, leader_epoch, partition_epoch)) = node.proposal.take() else {
            return;
        };
        let broker_epoch = node.broker_epoch;
        let change = IsrChange {
            topic_id: TOPIC,
            partition_id: 0,
            leader_epoch: leader_epoch.0,
            partition_epoch,
            new_isr: isr.iter().map(|&m| (m, None)).collect(),
        };
        match control::alter_partition(&self.image, id, broker_epoch, &[change], ELR_MIN_ISR) {
            Ok(decision) => {
                let accepted = decision.outcomes[0].is_ok() && !decision.records.is_empty();
                self.commit(decision.records);
                if !accepted {
                    self.feed(id, Event::AlterIsrFailed);
                }
            }
            Err(_) => self.feed(id, Event::AlterIsrFailed),
        }
    }

    /// Follower `id` fetches from the leader it knows; the leader answers at once (the answer
    /// is applied by a later step).
    fn fetch(&mut self, id: i32) {
        let Some(node) = self.node(id) else { return };
        if node.inflight.is_some() {
            return;
        }
        let Some(leader) = node.replica.assignment().leader.filter(|&l| l != id) else {
            return;
        };
        if !self.up(leader) || !self.linked(id, leader) {
            return;
        }
        let sent_epoch = node.replica.leader_epoch();
        let fetch_offset = node.log.log_end_offset();
        let last_epoch = follow::last_epoch(&node.log);
        let answer = self.serve(leader, id, sent_epoch, fetch_offset, last_epoch);
        self.node_mut(id).expect("up").inflight = Some((sent_epoch, fetch_offset, answer));
    }

    /// The leader's side of a follower fetch (the broker's fetch handler, in short).
    fn serve(
        &mut self,
        leader: i32,
        follower: i32,
        epoch: LeaderEpoch,
        fetch_offset: i64,
        last_epoch: i32,
    ) -> FetchAnswer {
        let node = self.node(leader).expect("up");
        let r = &node.replica;
        let refuse = |error_code| FetchAnswer {
            error_code,
            high_watermark: -1,
            log_start_offset: -1,
            diverging: None,
            records: Bytes::new(),
        };
        if !r.is_leader() || !r.assignment().replicas.contains(&follower) {
            return refuse(codes::NOT_LEADER_OR_FOLLOWER);
        }
        if r.leader_epoch() != epoch {
            return refuse(codes::FENCED_LEADER_EPOCH);
        }
        let mut answer = FetchAnswer {
            error_code: codes::NONE,
            high_watermark: r.high_watermark(),
            log_start_offset: node.log.log_start_offset(),
            diverging: None,
            records: Bytes::new(),
        };
        match follow::follower_position(&node.log, fetch_offset, last_epoch) {
            FollowerPosition::Diverging { epoch, end_offset } => {
                answer.diverging = Some((epoch, end_offset));
                return answer;
            }
            FollowerPosition::OutOfRange => {
                answer.error_code = codes::OFFSET_OUT_OF_RANGE;
                return answer;
            }
            FollowerPosition::Matches => {}
        }
        self.feed(
            leader,
            Event::FollowerFetch {
                replica: follower,
                durable_end: fetch_offset,
                now_ms: self.now,
            },
        );
        let max_bytes = [100, 500, 4096][self.rng.below(3) as usize];
        let node = self.node(leader).expect("up");
        answer.high_watermark = node.replica.high_watermark();
        let end = node.log.log_end_offset();
        answer.records = Bytes::from(read_bytes(&node.log, fetch_offset, max_bytes, end));
        answer
    }

    /// Follower `id` applies its fetch answer, if it still follows under the epoch it sent.
    fn apply_inflight(&mut self, id: i32) {
        let now = self.now;
        let Some(node) = self.node_mut(id) else {
            return;
        };
        let Some((epoch, fetch_offset, answer)) = node.inflight.take() else {
            return;
        };
        if node.replica.leader_epoch() != epoch || node.replica.is_leader() {
            return;
        }
        let step = follow::follower_step(&node.log, fetch_offset, answer);
        let mut events = Vec::new();
        let mut sync_then_hw = None;
        match step {
            FollowerStep::Truncate(offset) => {
                block_on(node.log.truncate_to(offset, now)).expect("truncate");
                events.push(Event::LogEnd(node.log.log_end_offset()));
                events.push(Event::Durable(node.log.durable_end()));
            }
            FollowerStep::Reset(offset) => {
                block_on(node.log.reset_to(offset, now)).expect("reset");
                events.push(Event::LogEnd(node.log.log_end_offset()));
                events.push(Event::Durable(node.log.durable_end()));
            }
            FollowerStep::Append {
                records,
                high_watermark,
            } => {
                if !records.is_empty() {
                    node.log
                        .append_as_follower(BytesMut::from(&records[..]), now)
                        .expect("the leader's batches append");
                    events.push(Event::LogEnd(node.log.log_end_offset()));
                }
                sync_then_hw = Some(high_watermark);
            }
            FollowerStep::Rest(_) => {}
        }
        if events.len() == 2 {
            self.totals.truncations += 1;
        }
        for event in events {
            self.feed(id, event);
        }
        if let Some(high_watermark) = sync_then_hw {
            // Followers sync before they fetch again: the next fetch offset is durable.
            self.flush(id);
            self.feed(id, Event::LeaderHighWatermark(high_watermark));
        }
    }

    fn crash(&mut self, id: i32) {
        let b = &mut self.brokers[(id - 1) as usize];
        if b.node.take().is_none() {
            return;
        }
        b.paused = false;
        let seed = self.rng.below(u64::MAX);
        self.brokers[(id - 1) as usize].disk.crash(seed);
        self.totals.crashes += 1;
    }

    /// A crashed broker starts again: recovery, a new registration, its replica.
    fn restart(&mut self, id: i32) {
        if self.node(id).is_some() || !self.linked(0, id) {
            return;
        }
        self.register(id);
        self.start(id);
    }

    /// A consumer reads the leader's committed records (up to its high watermark).
    fn consume(&mut self) {
        let Some(leader) = assignment_of(&self.image).leader else {
            return;
        };
        if !self.up(leader) {
            return;
        }
        let node = self.node(leader).expect("up");
        if !node.replica.is_leader() {
            return;
        }
        let hw = node.replica.high_watermark();
        let read = read_values(&node.log, hw);
        for (offset, value) in read {
            if let Some(&was) = self.committed.get(&offset) {
                assert_eq!(
                    was, value,
                    "a consumer read {value} at {offset}, committed was {was}"
                );
            }
        }
    }

    // --- invariants -----------------------------------------------------------------------

    /// At most one leader per epoch; a leader's watermark never goes back; what it exposes
    /// below it is what every leader exposed there.
    fn observe_leader(&mut self, id: i32) {
        let Some(node) = self.node(id) else { return };
        if !node.replica.is_leader() {
            return;
        }
        let epoch = node.replica.leader_epoch().0;
        let hw = node.replica.high_watermark();
        let exposed = read_values(&node.log, hw);
        let other = *self.leaders.entry(epoch).or_insert(id);
        assert_eq!(other, id, "two leaders ({other}, {id}) under epoch {epoch}");
        let last = self.leader_hw.entry((id, epoch)).or_insert(hw);
        assert!(
            hw >= *last,
            "leader {id}'s watermark went back from {last} to {hw}"
        );
        let grew = hw > *last || !self.committed.contains_key(&(hw - 1));
        *last = hw;
        if grew && hw > 0 {
            for (offset, value) in exposed {
                let was = *self.committed.entry(offset).or_insert(value);
                assert_eq!(
                    was, value,
                    "seed {}: leader {id} (epoch {epoch}) exposes {value} at {offset}, {was} was committed there",
                    self.seed
                );
            }
        }
    }

    fn check_leaders(&mut self) {
        for id in BROKERS {
            self.observe_leader(id);
        }
    }

    /// Ends the faults and lets the partition converge: every broker runs, every link works.
    fn heal(&mut self) {
        self.cuts.clear();
        for id in BROKERS {
            self.brokers[(id - 1) as usize].paused = false;
            self.restart(id);
        }
        for round in 0..400 {
            self.now += 20;
            self.controller_tick();
            self.deliver();
            for id in BROKERS {
                self.flush(id);
                self.feed(id, Event::Tick(self.now));
                self.send_proposal(id);
                self.fetch(id);
                self.apply_inflight(id);
            }
            self.check_leaders();
            self.settle_acks();
            let a = assignment_of(&self.image);
            if round > 50
                && a.isr.len() == 3
                && self.deliveries.is_empty()
                && self.pending.is_empty()
            {
                break;
            }
        }
        let a = assignment_of(&self.image);
        assert_eq!(
            a.isr.len(),
            3,
            "seed {}: healed, the ISR is {:?}",
            self.seed,
            a.isr
        );
        // Available again: a produce is acknowledged.
        let before = self.totals.acked;
        self.produce();
        for _ in 0..50 {
            self.now += 20;
            for id in BROKERS {
                self.flush(id);
                self.fetch(id);
                self.apply_inflight(id);
            }
            self.check_leaders();
            self.settle_acks();
        }
        assert!(
            self.totals.acked > before,
            "seed {}: healed, a produce was not acknowledged (pending {})",
            self.seed,
            self.pending.len()
        );
    }

    fn check_final(&mut self) {
        let leader = assignment_of(&self.image)
            .leader
            .expect("a leader after healing");
        let node = self.node(leader).expect("up");
        let hw = node.replica.high_watermark();
        let values = read_values(&node.log, node.log.log_end_offset());
        let mut at: BTreeMap<u64, i64> = BTreeMap::new();
        for &(offset, value) in &values {
            if let Some(first) = at.insert(value, offset) {
                panic!("seed {}: value {value} at {first} and {offset}", self.seed);
            }
        }
        for (value, offset) in &self.acked {
            assert_eq!(
                at.get(value),
                Some(offset),
                "seed {}: acknowledged {value} at {offset} is not there",
                self.seed
            );
        }
        for value in &self.refused {
            assert!(!at.contains_key(value), "refused {value} is in the log");
        }
        let reference = batches(&node.log, hw);
        for id in BROKERS {
            let node = self.node(id).expect("healed");
            assert_eq!(
                batches(&node.log, hw),
                reference,
                "seed {}: broker {id}'s log differs from leader {leader}'s below {hw}",
                self.seed
            );
        }
    }
}

/// The bytes of one read of `log` (whole batches from the one holding `offset`, within
/// `max_bytes`, below `bound`), from the cache or the files.
fn read_bytes(log: &PartitionLog<SimDisk>, offset: i64, max_bytes: usize, bound: i64) -> Vec<u8> {
    let read = block_on(log.read(offset, max_bytes, true, bound)).expect("read");
    let mut bytes = Vec::new();
    for chunk in read.chunks {
        match chunk {
            ReadChunk::Memory(b) => bytes.extend_from_slice(&b),
            ReadChunk::File {
                file,
                position,
                len,
            } => bytes
                .extend_from_slice(&block_on(file.read_at(position, len as usize)).expect("pread")),
        }
    }
    bytes
}

/// Every batch of `log` that starts below `bound`, as bytes (reads the files).
fn batches(log: &PartitionLog<SimDisk>, bound: i64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < bound {
        let bytes = read_bytes(log, offset, 1 << 20, bound);
        if bytes.is_empty() {
            break;
        }
        let mut next = offset;
        for step in BatchIter::new(&bytes) {
            match step {
                BatchStep::Batch { header, bytes, .. } => {
                    out.push(Bytes::copy_from_slice(bytes));
                    next = header.base_offset + i64::from(header.last_offset_delta) + 1;
                }
                BatchStep::Tail { reason, .. } => panic!("a torn batch in a read: {reason}"),
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    out
}

/// (offset, value) of every record below `bound`.
fn read_values(log: &PartitionLog<SimDisk>, bound: i64) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    for batch in batches(log, bound) {
        for r in decode_records(&batch, 1 << 20).expect("records decode") {
            if r.offset >= bound {
                continue;
            }
            let v = r.value.expect("values are set");
            out.push((
                r.offset,
                u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
            ));
        }
    }
    out
}
