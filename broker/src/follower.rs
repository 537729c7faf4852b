//! Follower replicas: copying the leaders' logs (Kafka's replica fetcher threads).
//!
//! Each shard runs one fetch loop per leader broker its partitions follow, so a broker has
//! one fetch stream per (leader broker, destination shard), carrying every partition of that
//! pair, never one per partition. A loop stops when no partition on its shard follows its
//! leader any more; [`run`] starts loops as metadata images make partitions follow new
//! leaders.
//!
//! One round of a loop:
//!
//! ```text
//! Fetch v16 to the leader's broker listener
//!   replica_state = (node.id, broker epoch)
//!   per partition: fetch_offset = log end (= durable end: see below),
//!                  last_fetched_epoch = epoch of the last local batch,
//!                  current_leader_epoch = the assignment's
//! per partition of the answer:
//!   diverging_epoch      -> truncate to min(local end of that epoch, leader's end of it)
//!   OFFSET_OUT_OF_RANGE  -> below the leader's log start: reset the log to start there
//!   records              -> append them as they are (offsets, epochs, timestamps)
//!   leader-side errors   -> leave the partition out for replica.fetch.backoff.ms, or until
//!                           its leader epoch changes
//! flush every log that grew (one fsync each), then take the leader's high watermark
//! ```
//!
//! Syncing before the next fetch is what makes a fetch offset a *durable* end: the leader
//! counts a follower in the high watermark only for what the follower has on disk (the
//! deliberate strengthening over Kafka; see `millrace_replication::replica`). The cost is one
//! fsync per round on the follower, overlapping the leader's own.

use crate::controller::lifecycle::LocalBrokerEpoch;
use crate::errors::code;
use crate::peer::{PeerClient, PeerConfig};
use crate::shard::{Partition, PartitionKey, Shard};
use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use millrace_replication::follow::{FetchAnswer, FollowerStep};
use millrace_replication::replica::BrokerId as ReplicaId;
use millrace_shard::time::Instant;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

/// How soon a partition refused for a metadata disagreement ([`leadership_refusal`]) is
/// fetched again.
const LEADERSHIP_RETRY: Duration = Duration::from_millis(50);

/// The Fetch version followers send (replica state with the broker epoch, topic ids).
const FETCH_VERSION: i16 = 16;
/// How often a fetch loop asks for this broker's registration epoch again.
const BROKER_EPOCH_REFRESH: Duration = Duration::from_secs(1);

/// Starts a fetch loop for every leader this shard's partitions follow, as images arrive,
/// until the broker stops.
pub async fn run(shard: Rc<Shard>) {
    let running: Rc<RefCell<BTreeSet<ReplicaId>>> = Rc::default();
    while !shard.stopping.get() {
        let seen = shard.metadata_applied.generation();
        let leaders: BTreeSet<ReplicaId> = shard
            .partitions()
            .iter()
            .filter_map(|p| p.following())
            .collect();
        for leader in leaders {
            if running.borrow_mut().insert(leader) {
                tracing::info!(shard = shard.id, leader, "following partitions of a leader");
                millrace_shard::spawn_detached(fetch_loop(shard.clone(), leader, running.clone()));
            }
        }
        let changed = shard.metadata_applied.changed_since(seen);
        let _ = millrace_shard::time::timeout(Duration::from_millis(500), changed).await;
    }
}

/// Per-loop state that outlives one round.
struct Loop {
    shard: Rc<Shard>,
    leader: ReplicaId,
    client: Option<(SocketAddr, Rc<PeerClient>)>,
    /// Partitions left out after an error: until when, and under which leader epoch.
    resting: HashMap<PartitionKey, (i32, Instant)>,
    /// This broker's registration epoch and when it was last asked for.
    broker_epoch: (i64, Option<Instant>),
}

/// Why a partition is left out of the next fetches.
struct Resting {
    why: String,
    /// Only briefly: a metadata disagreement, not a failure.
    soon: bool,
}

impl Resting {
    /// After a local failure (storage): the full backoff.
    fn after(e: impl std::fmt::Display) -> Self {
        Resting {
            why: e.to_string(),
            soon: false,
        }
    }
}

/// One partition of a request, as sent.
struct Sent {
    partition: Rc<Partition>,
    fetch_offset: i64,
    leader_epoch: i32,
}

async fn fetch_loop(shard: Rc<Shard>, leader: ReplicaId, running: Rc<RefCell<BTreeSet<i32>>>) {
    let mut state = Loop {
        shard: shard.clone(),
        leader,
        client: None,
        resting: HashMap::new(),
        broker_epoch: (-1, None),
    };
    let backoff = Duration::from_millis(shard.config.replica.fetch_backoff_ms as u64);
    while !shard.stopping.get() {
        let following: Vec<Rc<Partition>> = shard
            .partitions()
            .into_iter()
            .filter(|p| p.following() == Some(leader))
            .collect();
        if following.is_empty() {
            break;
        }
        let now = Instant::now();
        state.resting.retain(|key, (epoch, until)| {
            *until > now
                && following.iter().any(|p| {
                    (p.topic(), p.index()) == (key.0.as_str(), key.1)
                        && p.leader_epoch().0 == *epoch
                })
        });
        let eligible: Vec<Rc<Partition>> = following
            .into_iter()
            .filter(|p| {
                !state
                    .resting
                    .contains_key(&(p.topic().to_string(), p.index()))
            })
            .collect();
        if eligible.is_empty() {
            millrace_shard::time::sleep(Duration::from_millis(50).min(backoff)).await;
            continue;
        }
        if let Err(why) = state.round(eligible).await {
            tracing::debug!(shard = shard.id, leader, error = %why, "replica fetch");
            millrace_shard::time::sleep(backoff).await;
        }
    }
    running.borrow_mut().remove(&leader);
    tracing::info!(
        shard = shard.id,
        leader,
        "no partition here follows the leader any more"
    );
}

impl Loop {
    /// One fetch and what follows from its answer.
    async fn round(&mut self, partitions: Vec<Rc<Partition>>) -> Result<(), String> {
        let client = self.client()?;
        let broker_epoch = self.broker_epoch().await;
        let image = self.shard.image();
        let shard = self.shard.clone();
        let replica = &shard.config.replica;
        let mut sent = Vec::new();
        let mut topics: Vec<FetchTopic> = Vec::new();
        for partition in partitions {
            let Some(meta) = image.topics.get(partition.topic()) else {
                continue;
            };
            // The fetch offset is the durable end: anything appended and not yet synced (a
            // sync that failed) is synced first, or the partition rests.
            if partition.durable_end() < partition.log_end_offset() {
                if let Err(e) = partition.flush().await {
                    tracing::warn!(topic = partition.topic(), partition = partition.index(),
                        error = %e, "follower sync failed: the partition rests");
                    self.rest(&partition, false);
                    continue;
                }
            }
            let fetch_offset = partition.log_end_offset();
            let leader_epoch = partition.leader_epoch().0;
            let request = FetchPartition::default()
                .with_partition(partition.index())
                .with_current_leader_epoch(leader_epoch)
                .with_fetch_offset(fetch_offset)
                .with_last_fetched_epoch(partition.last_epoch())
                .with_log_start_offset(partition.log_start_offset())
                .with_partition_max_bytes(replica.fetch_max_bytes);
            match topics.iter_mut().find(|t| t.topic_id == meta.id) {
                Some(t) => t.partitions.push(request),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic_id(meta.id)
                        .with_partitions(vec![request]),
                ),
            }
            sent.push(Sent {
                partition,
                fetch_offset,
                leader_epoch,
            });
        }
        if sent.is_empty() {
            return Err("no partition of the image to fetch".into());
        }
        let request = FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(BrokerId(self.shard.config.node_id))
                    .with_replica_epoch(broker_epoch),
            )
            .with_max_wait_ms(replica.fetch_wait_max_ms)
            .with_min_bytes(replica.fetch_min_bytes)
            .with_max_bytes(replica.fetch_response_max_bytes)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics);
        let timeout = Duration::from_millis(
            replica.socket_timeout_ms as u64 + replica.fetch_wait_max_ms as u64,
        );
        // A partition that starts following this leader while the fetch long-polls would wait
        // for the poll to end (up to replica.fetch.wait.max.ms) and could be dropped from a
        // new leader's ISR meanwhile: the fetch is abandoned and the next round includes it.
        let sent_keys: Vec<(String, i32)> = sent
            .iter()
            .map(|s| (s.partition.topic().to_string(), s.partition.index()))
            .collect();
        let fetch = async {
            Some(
                client
                    .send_within::<_, FetchResponse>(1, FETCH_VERSION, &request, timeout)
                    .await,
            )
        };
        let joined = async {
            loop {
                let seen = self.shard.metadata_applied.generation();
                self.shard.metadata_applied.changed_since(seen).await;
                let new = self.shard.partitions().iter().any(|p| {
                    p.following() == Some(self.leader)
                        && !sent_keys.contains(&(p.topic().to_string(), p.index()))
                });
                if new {
                    return None;
                }
            }
        };
        let Some(response) = futures_lite::future::or(fetch, joined).await else {
            return Ok(());
        };
        let response = response.map_err(|e| e.to_string())?;
        if response.error_code != code::NONE {
            return Err(format!("fetch refused: error {}", response.error_code));
        }
        let mut answers: HashMap<(uuid::Uuid, i32), PartitionData> = HashMap::new();
        for t in response.responses {
            for p in t.partitions {
                answers.insert((t.topic_id, p.partition_index), p);
            }
        }
        let mut grown = Vec::new();
        for s in sent {
            let Some(meta) = image.topics.get(s.partition.topic()) else {
                continue;
            };
            let Some(answer) = answers.remove(&(meta.id, s.partition.index())) else {
                continue;
            };
            // The image may have moved the partition while the fetch was out.
            if s.partition.following() != Some(self.leader)
                || s.partition.leader_epoch().0 != s.leader_epoch
            {
                continue;
            }
            let leader_start = answer.log_start_offset;
            match self.take(&s, answer).await {
                Ok(Some(high_watermark)) => grown.push((s.partition, high_watermark, leader_start)),
                Ok(None) => {}
                Err(Resting { why, soon }) => {
                    tracing::debug!(topic = s.partition.topic(), partition = s.partition.index(),
                        leader = self.leader, error = %why, "replica fetch: partition rests");
                    self.rest(&s.partition, soon);
                }
            }
        }
        for (partition, high_watermark, leader_start) in grown {
            if let Err(e) = partition.flush().await {
                tracing::warn!(topic = partition.topic(), partition = partition.index(),
                    error = %e, "follower flush");
                continue;
            }
            partition.leader_high_watermark(high_watermark);
            // The leader's log start moved (retention, DeleteRecords): so does this copy's,
            // within what is committed here, so a later leader exposes no deleted record.
            let start = leader_start.min(partition.high_watermark());
            if start > partition.log_start_offset() {
                if let Err(e) = partition.delete_records(start).await {
                    tracing::warn!(topic = partition.topic(), partition = partition.index(),
                        error = %e, "following the leader's log start");
                }
            }
        }
        Ok(())
    }

    /// Applies one partition's answer (`millrace_replication::follow`). Ok(Some(leader's
    /// high watermark)) when the log is to be synced and the watermark taken; Ok(None) when
    /// nothing more is to be done this round; Err when the partition should rest.
    async fn take(&self, s: &Sent, answer: PartitionData) -> Result<Option<i64>, Resting> {
        let p = &s.partition;
        let error_code = answer.error_code;
        let diverging = &answer.diverging_epoch;
        let answer = FetchAnswer {
            error_code: answer.error_code,
            high_watermark: answer.high_watermark,
            log_start_offset: answer.log_start_offset,
            diverging: (diverging.epoch >= 0).then_some((diverging.epoch, diverging.end_offset)),
            records: answer.records.unwrap_or_default(),
        };
        match p.follower_step(s.fetch_offset, answer) {
            FollowerStep::Truncate(offset) => {
                tracing::info!(
                    topic = p.topic(),
                    partition = p.index(),
                    leader = self.leader,
                    from = p.log_end_offset(),
                    to = offset,
                    "the log diverges from the leader's: truncating"
                );
                p.truncate_to(offset).await.map_err(Resting::after)?;
                Ok(None)
            }
            FollowerStep::Reset(offset) => {
                tracing::info!(
                    topic = p.topic(),
                    partition = p.index(),
                    leader = self.leader,
                    offset,
                    "behind the leader's log start: starting the log there"
                );
                p.reset_to(offset).await.map_err(Resting::after)?;
                Ok(None)
            }
            FollowerStep::Append {
                records,
                high_watermark,
            } => {
                if !records.is_empty() {
                    let now = millrace_shard::time::now_ms();
                    p.append_as_follower(BytesMut::from(&records[..]), now)
                        .map_err(Resting::after)?;
                    crate::stats::replicated_in(p.topic(), records.len());
                }
                Ok(Some(high_watermark))
            }
            FollowerStep::Rest(why) => Err(Resting {
                why,
                soon: leadership_refusal(error_code),
            }),
        }
    }

    /// Leaves `partition` out of the fetches for `replica.fetch.backoff.ms`, or only
    /// [`LEADERSHIP_RETRY`] when `soon` (the leader's metadata and this broker's disagree for
    /// the moment; they converge within milliseconds), or until its leader epoch changes.
    fn rest(&mut self, partition: &Partition, soon: bool) {
        let configured = Duration::from_millis(self.shard.config.replica.fetch_backoff_ms as u64);
        let backoff = if soon {
            configured.min(LEADERSHIP_RETRY)
        } else {
            configured
        };
        let key = (partition.topic().to_string(), partition.index());
        let until = Instant::now() + backoff;
        self.resting
            .insert(key, (partition.leader_epoch().0, until));
    }

    /// The client of the leader's broker listener, made anew when its address changed.
    fn client(&mut self) -> Result<Rc<PeerClient>, String> {
        let addr = leader_address(&self.shard, self.leader)?;
        match &self.client {
            Some((known, client)) if *known == addr => return Ok(client.clone()),
            _ => {}
        }
        let replica = &self.shard.config.replica;
        let timeout = Duration::from_millis(replica.socket_timeout_ms as u64);
        let backoff = Duration::from_millis(replica.fetch_backoff_ms as u64);
        let client = Rc::new(PeerClient::new(
            addr,
            PeerConfig {
                client_id: format!("millrace-replica-{}", self.shard.config.node_id),
                request_timeout: timeout,
                connect_timeout: timeout,
                reconnect_backoff: backoff.min(Duration::from_millis(50)),
                reconnect_backoff_max: backoff,
                route: crate::dial::Route::InterBroker,
                ..PeerConfig::default()
            },
        ));
        self.client = Some((addr, client.clone()));
        Ok(client)
    }

    /// This broker's registration epoch (-1 until registered), asked for again each second.
    async fn broker_epoch(&mut self) -> i64 {
        let (epoch, asked) = self.broker_epoch;
        if asked.is_some_and(|at| at.elapsed() < BROKER_EPOCH_REFRESH) && epoch >= 0 {
            return epoch;
        }
        let target = Shard::controller_shard();
        let known = self
            .shard
            .call(target, LocalBrokerEpoch)
            .await
            .ok()
            .flatten();
        self.broker_epoch = (known.unwrap_or(-1), Some(Instant::now()));
        self.broker_epoch.0
    }
}

/// Where broker `leader` listens for clients (and replicas), from its registration.
pub(crate) fn leader_address(shard: &Shard, leader: ReplicaId) -> Result<SocketAddr, String> {
    let image = shard.image();
    let broker = image
        .cluster
        .broker(leader)
        .ok_or_else(|| format!("broker {leader} is not registered"))?;
    let listener = &shard.config.cluster.client_listener_name;
    let endpoint = broker
        .endpoint(listener)
        .or_else(|| broker.endpoints.first())
        .ok_or_else(|| format!("broker {leader} has no endpoint"))?;
    let addr = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {}:{}: {e}", endpoint.host, endpoint.port))?
        .next()
        .ok_or_else(|| format!("{}:{} resolves to nothing", endpoint.host, endpoint.port))?;
    crate::dial::name_address(addr, &endpoint.host);
    Ok(addr)
}

/// Refusals that mean the leader's metadata and this broker's disagree for the moment
/// (leadership, epochs, or a partition the leader has not opened yet).
fn leadership_refusal(error_code: i16) -> bool {
    matches!(
        error_code,
        code::NOT_LEADER_OR_FOLLOWER
            | code::FENCED_LEADER_EPOCH
            | code::UNKNOWN_LEADER_EPOCH
            | code::UNKNOWN_TOPIC_OR_PARTITION
            | code::UNKNOWN_TOPIC_ID
    )
}
