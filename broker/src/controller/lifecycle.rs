//! This node's broker as the active controller sees it, Kafka's `BrokerLifecycleManager` and
//! `RPCProducerIdManager`: registration and heartbeats, producer-id blocks, and forwarding of
//! metadata changes that reach a node that is not the active controller.
//!
//! With several voters every request goes over the CONTROLLER listener to the active
//! controller (the quorum leader this node knows of), itself included, so one path serves
//! every node. A lone voter is its own active controller: it registers in process at start-up
//! and takes its producer-id blocks in process; it has no peer to lose touch with, so it
//! sends no heartbeats.
//!
//! The heartbeat loop, on the controller's shard:
//!
//! ```text
//! no epoch  ── BrokerRegistration ──> epoch (fenced)
//! epoch     ── BrokerHeartbeat(epoch, applied metadata offset) ──> caught up / fenced
//!              STALE_BROKER_EPOCH, BROKER_ID_NOT_REGISTERED: register again
//!              NOT_CONTROLLER, no answer: ask the controller learned of next
//! ```
//!
//! A fenced broker heartbeats every `controller.quorum.retry.backoff.ms` so that it is
//! unfenced as soon as it catches up; an unfenced one every `broker.heartbeat.interval.ms`.

use super::brokers;
use super::Controller;
use crate::errors::code;
use crate::mesh::Call;
use crate::peer::{PeerClient, PeerConfig};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::alter_partition_request;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AlterPartitionRequest, BrokerHeartbeatRequest, BrokerId,
    BrokerRegistrationRequest,
};
use millrace_replication::metadata::control;
use millrace_shard::sync::Turn;
use millrace_shard::time::Instant;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// BrokerRegistration version this broker sends.
const REGISTRATION_VERSION: i16 = 3;
/// BrokerHeartbeat version this broker sends.
const HEARTBEAT_VERSION: i16 = 1;

/// The broker side's state. Lives on the controller's shard.
pub struct Lifecycle {
    /// This process's incarnation (new at every start).
    incarnation: [u8; 16],
    /// The broker epoch of this process's registration, once registered.
    epoch: Cell<Option<i64>>,
    /// The voters' controller listeners by `node.id`.
    voters: HashMap<i32, SocketAddr>,
    /// One client per voter, made on first use.
    clients: RefCell<HashMap<i32, Rc<PeerClient>>>,
    request_timeout: Duration,
    backoff: Duration,
    /// How long a forwarded request waits for an active controller: one election (the fetch
    /// timeout that detects a lost leader, the election timeout that spreads candidates) plus
    /// one request timeout.
    forward_wait: Duration,
    /// The producer ids left in this broker's block: [next, end).
    block: Cell<(i64, i64)>,
    /// One block request at a time.
    block_turn: Turn,
}

impl Lifecycle {
    /// The state for `shard`'s node, its voters at `voters`.
    pub fn new(shard: &Shard, voters: HashMap<i32, SocketAddr>) -> Self {
        let t = &shard.config.cluster.timings;
        Lifecycle {
            incarnation: *uuid::Uuid::new_v4().as_bytes(),
            epoch: Cell::new(None),
            voters,
            clients: RefCell::new(HashMap::new()),
            request_timeout: super::ms(t.request_timeout_ms),
            backoff: super::ms(t.retry_backoff_ms).max(Duration::from_millis(10)),
            forward_wait: super::ms(
                t.fetch_timeout_ms + t.election_timeout_ms + t.request_timeout_ms,
            ),
            block: Cell::new((0, 0)),
            block_turn: Turn::new(),
        }
    }

    /// This process's incarnation id.
    pub fn incarnation(&self) -> [u8; 16] {
        self.incarnation
    }

    /// The broker epoch of this process's registration, once registered.
    pub fn epoch(&self) -> Option<i64> {
        self.epoch.get()
    }

    /// Records the broker epoch of a registration made in process (a lone voter).
    pub fn set_epoch(&self, epoch: i64) {
        self.epoch.set(Some(epoch));
    }

    /// The client for voter `node_id`'s controller listener.
    fn client(&self, node_id: i32) -> Option<Rc<PeerClient>> {
        let addr = *self.voters.get(&node_id)?;
        let mut clients = self.clients.borrow_mut();
        let client = clients.entry(node_id).or_insert_with(|| {
            Rc::new(PeerClient::new(
                addr,
                PeerConfig {
                    client_id: "millrace-broker".into(),
                    request_timeout: self.request_timeout,
                    connect_timeout: self.request_timeout,
                    reconnect_backoff: self.backoff,
                    // A dead controller's client doubles its wait up to this; Kafka's 1 s
                    // default kept a forwarded request waiting out a whole second after a new
                    // controller was elected (the wait sits inside the send).
                    reconnect_backoff_max: (self.backoff * 10)
                        .clamp(Duration::from_millis(50), Duration::from_secs(1)),
                    route: crate::dial::Route::Controller,
                    ..PeerConfig::default()
                },
            ))
        });
        Some(client.clone())
    }
}

/// The client of the active controller, if one is known (and is not this lone voter).
fn active(controller: &Controller, lifecycle: &Lifecycle) -> Option<Rc<PeerClient>> {
    let leader = controller.driver.status().leader?;
    lifecycle.client(leader)
}

/// The registration this node's broker sends.
pub fn registration(shard: &Shard, incarnation: [u8; 16]) -> control::BrokerRegistrationRequest {
    let config = &shard.config;
    control::BrokerRegistrationRequest {
        broker_id: config.node_id,
        incarnation_id: incarnation,
        endpoints: endpoints(config),
        rack: config.cluster.rack.clone(),
    }
}

/// Every client listener's advertised endpoint, the inter-broker one first (Kafka lists
/// `advertised.listeners` in order; peers look theirs up by name).
fn endpoints(
    config: &crate::config::Config,
) -> Vec<millrace_replication::metadata::BrokerEndpoint> {
    let mut listeners: Vec<_> = config.cluster.client_listeners.iter().collect();
    listeners.sort_by_key(|l| l.name != config.cluster.client_listener_name);
    listeners
        .into_iter()
        .map(|l| millrace_replication::metadata::BrokerEndpoint {
            name: l.name.clone(),
            host: l.advertised.0.clone(),
            port: l.advertised.1,
            security_protocol: crate::config::security::Protocol::parse(&l.protocol)
                .map_or(0, |p| p.id()),
        })
        .collect()
}

/// The heartbeat loop of the module doc, for a node among several voters. Once a stop is
/// requested (SIGTERM), heartbeats carry `want_shut_down`: the controller fences the broker,
/// which moves its leaderships to other in-sync replicas, and answers `should_shut_down`;
/// then the broker stops (controlled shutdown).
pub async fn run(shard: Rc<Shard>, controller: Rc<Controller>, lifecycle: Rc<Lifecycle>) {
    use crate::stop::{CONTROLLED_SHUTDOWN, SHUTDOWN_ALLOWED, SHUTDOWN_REQUESTED};
    use std::sync::atomic::Ordering;
    let interval = super::ms(shard.config.cluster.timings.heartbeat_interval_ms);
    let mut fenced = true;
    CONTROLLED_SHUTDOWN.store(true, Ordering::Relaxed);
    while !shard.stopping.get() {
        let leaving = SHUTDOWN_REQUESTED.load(Ordering::Relaxed);
        if leaving && lifecycle.epoch.get().is_none() {
            // Never registered: nothing leads here.
            SHUTDOWN_ALLOWED.store(true, Ordering::Relaxed);
            return;
        }
        if leaving {
            match shut_down_beat(&shard, &controller, &lifecycle).await {
                Ok(true) => {
                    tracing::info!(
                        "controlled shutdown: the controller moved this broker's leaderships"
                    );
                    SHUTDOWN_ALLOWED.store(true, Ordering::Relaxed);
                    return;
                }
                Ok(false) => {}
                Err(why) => tracing::debug!(error = %why, "controlled shutdown heartbeat"),
            }
            millrace_shard::time::sleep(lifecycle.backoff).await;
            continue;
        }
        let wait = match beat(&shard, &controller, &lifecycle).await {
            Ok(is_fenced) => {
                if is_fenced != fenced {
                    tracing::info!(fenced = is_fenced, "broker state from the controller");
                    fenced = is_fenced;
                }
                if is_fenced {
                    lifecycle.backoff
                } else {
                    interval
                }
            }
            Err(why) => {
                tracing::debug!(error = %why, "broker heartbeat");
                lifecycle.backoff
            }
        };
        millrace_shard::time::sleep(wait).await;
    }
}

/// One step of the loop: registers if needed, else heartbeats. Ok(fenced) on an answer.
async fn beat(
    shard: &Shard,
    controller: &Controller,
    lifecycle: &Lifecycle,
) -> Result<bool, String> {
    let client = active(controller, lifecycle).ok_or("no active controller is known")?;
    let Some(epoch) = lifecycle.epoch.get() else {
        let r = registration(shard, lifecycle.incarnation);
        let request = BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(r.broker_id))
            .with_cluster_id(str_bytes(&controller.current().cluster_id))
            .with_incarnation_id(uuid::Uuid::from_bytes(r.incarnation_id))
            .with_listeners(
                r.endpoints
                    .iter()
                    .map(|e| {
                        Listener::default()
                            .with_name(str_bytes(&e.name))
                            .with_host(str_bytes(&e.host))
                            .with_port(e.port)
                            .with_security_protocol(e.security_protocol)
                    })
                    .collect(),
            )
            .with_rack(r.rack.as_deref().map(str_bytes))
            .with_previous_broker_epoch(-1);
        let resp = client
            .request(REGISTRATION_VERSION, &request)
            .await
            .map_err(|e| e.to_string())?;
        if resp.error_code != code::NONE {
            return Err(format!("registration refused: error {}", resp.error_code));
        }
        tracing::info!(
            epoch = resp.broker_epoch,
            "registered with the active controller"
        );
        lifecycle.epoch.set(Some(resp.broker_epoch));
        return Ok(true);
    };
    let request = heartbeat(shard, controller, epoch, false);
    let resp = client
        .request(HEARTBEAT_VERSION, &request)
        .await
        .map_err(|e| e.to_string())?;
    match resp.error_code {
        code::NONE => Ok(resp.is_fenced),
        code::STALE_BROKER_EPOCH | code::BROKER_ID_NOT_REGISTERED => {
            tracing::warn!(
                epoch,
                "the controller no longer knows this registration: registering again"
            );
            lifecycle.epoch.set(None);
            Err(format!("heartbeat refused: error {}", resp.error_code))
        }
        other => Err(format!("heartbeat refused: error {other}")),
    }
}

/// This broker's heartbeat under registration `epoch`.
fn heartbeat(
    shard: &Shard,
    controller: &Controller,
    epoch: i64,
    want_shut_down: bool,
) -> BrokerHeartbeatRequest {
    BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(shard.config.node_id))
        .with_broker_epoch(epoch)
        .with_current_metadata_offset(controller.current().cluster.last_applied_offset())
        .with_want_shut_down(want_shut_down)
}

/// A heartbeat asking to shut down; Ok(true) when the controller allows it.
async fn shut_down_beat(
    shard: &Shard,
    controller: &Controller,
    lifecycle: &Lifecycle,
) -> Result<bool, String> {
    let client = active(controller, lifecycle).ok_or("no active controller is known")?;
    let epoch = lifecycle.epoch.get().ok_or("not registered")?;
    let request = heartbeat(shard, controller, epoch, true);
    let resp = client
        .request(HEARTBEAT_VERSION, &request)
        .await
        .map_err(|e| e.to_string())?;
    match resp.error_code {
        code::NONE => Ok(resp.should_shut_down),
        // The controller no longer knows this registration: nothing leads here for it.
        code::STALE_BROKER_EPOCH | code::BROKER_ID_NOT_REGISTERED => Ok(true),
        other => Err(format!("heartbeat refused: error {other}")),
    }
}

/// A fresh producer id, unique in the cluster: the next of this broker's block, taking a new
/// block from the active controller when it is used up.
pub struct AllocateProducerId;

impl Call<Shard> for AllocateProducerId {
    type Reply = Result<i64, String>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let (controller, lifecycle) = started(&shard)?;
        let _turn = lifecycle.block_turn.lock().await;
        let (next, end) = lifecycle.block.get();
        if next < end {
            lifecycle.block.set((next + 1, end));
            return Ok(next);
        }
        let epoch = lifecycle
            .epoch
            .get()
            .ok_or("this broker has not registered yet")?;
        let (start, len) = if controller.lone {
            let request = brokers::AllocateProducerIds {
                broker_id: shard.config.node_id,
                broker_epoch: epoch,
            };
            request.run(shard.clone()).await.map_err(|(_, e)| e)?
        } else {
            let client = active(&controller, &lifecycle).ok_or("no active controller is known")?;
            let request = AllocateProducerIdsRequest::default()
                .with_broker_id(BrokerId(shard.config.node_id))
                .with_broker_epoch(epoch);
            let resp = client
                .request(0, &request)
                .await
                .map_err(|e| e.to_string())?;
            if resp.error_code != code::NONE {
                return Err(format!(
                    "producer id block refused: error {}",
                    resp.error_code
                ));
            }
            (resp.producer_id_start.0, resp.producer_id_len)
        };
        if len < 1 {
            return Err(format!(
                "the controller sent an empty producer id block at {start}"
            ));
        }
        lifecycle.block.set((start + 1, start + i64::from(len)));
        Ok(start)
    }
}

/// The controller and this node's broker side, once the controller started.
fn started(shard: &Shard) -> Result<(Rc<Controller>, Rc<Lifecycle>), String> {
    let missing = || "the controller has not started".to_string();
    let controller = shard.subsystems.get::<Controller>().ok_or_else(missing)?;
    let lifecycle = shard.subsystems.get::<Lifecycle>().ok_or_else(missing)?;
    Ok((controller, lifecycle))
}

/// This broker's registration epoch, once registered (replica fetches carry it, KIP-903).
pub struct LocalBrokerEpoch;

impl Call<Shard> for LocalBrokerEpoch {
    type Reply = Option<i64>;

    async fn run(self, shard: Rc<Shard>) -> Option<i64> {
        shard.subsystems.get::<Lifecycle>()?.epoch()
    }
}

/// Sends partition leaders' ISR changes to the active controller as one AlterPartition
/// (v3, with the broker epochs followers' fetches carried; -1 where none is known), or
/// decides them in process on a lone voter. Answers one outcome per change, in order: the
/// state after it, or the error code; Err for the whole request.
pub struct ProposeIsr {
    /// The changes.
    pub changes: Vec<control::IsrChange>,
}

/// The AlterPartition version leaders send (v3: broker epochs of the new ISR's members).
const ALTER_PARTITION_VERSION: i16 = 3;

impl Call<Shard> for ProposeIsr {
    type Reply = Result<Vec<Result<control::IsrState, i16>>, String>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let (controller, lifecycle) = started(&shard)?;
        let epoch = lifecycle
            .epoch
            .get()
            .ok_or("this broker has not registered yet")?;
        let broker_id = shard.config.node_id;
        if controller.lone {
            let call = brokers::AlterPartition {
                broker_id,
                broker_epoch: epoch,
                changes: self.changes,
            };
            let outcomes = call
                .run(shard.clone())
                .await
                .map_err(|(c, e)| format!("error {c}: {e}"))?;
            return Ok(outcomes
                .into_iter()
                .map(|o| o.map_err(crate::errors::isr_refusal_code))
                .collect());
        }
        let client = active(&controller, &lifecycle).ok_or("no active controller is known")?;
        let request = alter_partition_request(broker_id, epoch, &self.changes);
        let resp = client
            .request(ALTER_PARTITION_VERSION, &request)
            .await
            .map_err(|e| e.to_string())?;
        if resp.error_code != code::NONE {
            return Err(format!("AlterPartition refused: error {}", resp.error_code));
        }
        let mut answers = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                let outcome = if p.error_code == code::NONE {
                    Ok(control::IsrState {
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        isr: p.isr.iter().map(|b| b.0).collect(),
                        partition_epoch: p.partition_epoch,
                    })
                } else {
                    Err(p.error_code)
                };
                answers.insert((*t.topic_id.as_bytes(), p.partition_index), outcome);
            }
        }
        Ok(self
            .changes
            .iter()
            .map(|c| {
                answers
                    .remove(&(c.topic_id.0, c.partition_id))
                    .unwrap_or(Err(code::UNKNOWN_SERVER_ERROR))
            })
            .collect())
    }
}

fn alter_partition_request(
    broker_id: i32,
    broker_epoch: i64,
    changes: &[control::IsrChange],
) -> AlterPartitionRequest {
    let mut topics: Vec<alter_partition_request::TopicData> = Vec::new();
    for c in changes {
        let topic_id = uuid::Uuid::from_bytes(c.topic_id.0);
        let partition = alter_partition_request::PartitionData::default()
            .with_partition_index(c.partition_id)
            .with_leader_epoch(c.leader_epoch)
            .with_partition_epoch(c.partition_epoch)
            .with_new_isr_with_epochs(
                c.new_isr
                    .iter()
                    .map(|&(id, epoch)| {
                        alter_partition_request::BrokerState::default()
                            .with_broker_id(BrokerId(id))
                            .with_broker_epoch(epoch.unwrap_or(-1))
                    })
                    .collect(),
            );
        match topics.iter_mut().find(|t| t.topic_id == topic_id) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                alter_partition_request::TopicData::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    AlterPartitionRequest::default()
        .with_broker_id(BrokerId(broker_id))
        .with_broker_epoch(broker_epoch)
        .with_topics(topics)
}

/// How a request that changes metadata reaches the active controller (see [`Forward`]).
pub enum Forwarded {
    /// This node is the active controller, or none could be reached in time: handle the
    /// request here (a node that does not lead then answers NOT_CONTROLLER, which clients
    /// retry).
    HandleHere,
    /// The active controller's response body.
    Answered(Bytes),
}

/// Sends a client's request (its key, version and body as the client sent them) to the active
/// controller's CONTROLLER listener and returns its answer, as Kafka's brokers forward
/// metadata changes. Holds the request through an election: waits up to
/// `controller.quorum.fetch.timeout.ms` + `election.timeout.ms` + `request.timeout.ms`
/// (5 s by Kafka's defaults) for a controller to be known and to answer. Kafka's brokers hold
/// it up to 60 s; a bounded answer lets a client with a short timeout see a retriable error.
///
/// With an authorizer configured or client quotas stored, the request goes inside an Envelope
/// carrying the client's principal, address and client id, so the controller judges and
/// meters it as the client; otherwise it goes bare (nothing to judge), which nodes from
/// before Envelope understand.
pub struct Forward {
    /// The request's API key.
    pub api_key: i16,
    /// Its version.
    pub api_version: i16,
    /// Its body.
    pub body: Bytes,
    /// The client's id, kept in the enveloped request's header.
    pub client_id: Option<String>,
    /// The client's principal (`User:alice`); empty for the broker's own requests, which go
    /// bare.
    pub principal: String,
    /// The client's address as Kafka prints it (`/127.0.0.1`).
    pub host: String,
}

impl Forward {
    /// What goes to the controller: (key, version, body) of the bare or enveloped request.
    fn wire(&self, enveloped: bool) -> (i16, i16, Bytes) {
        if !enveloped {
            return (self.api_key, self.api_version, self.body.clone());
        }
        let envelope = kafka_protocol::messages::EnvelopeRequest::default()
            .with_request_data(self.inner_frame())
            .with_request_principal(Some(crate::acls::principal_bytes(&self.principal)))
            .with_client_host_address(crate::acls::host_bytes(&self.host));
        let mut out = bytes::BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&envelope, &mut out, 0)
            .expect("an envelope encodes");
        (
            kafka_protocol::messages::ApiKey::Envelope as i16,
            0,
            out.freeze(),
        )
    }

    /// The forwarded request's header and body, as Envelope's `request_data` holds them.
    fn inner_frame(&self) -> Bytes {
        use bytes::BufMut;
        let header_version = kafka_protocol::messages::ApiKey::try_from(self.api_key)
            .map(|k| k.request_header_version(self.api_version))
            .unwrap_or(1);
        let mut out = bytes::BytesMut::with_capacity(16 + self.body.len());
        out.put_i16(self.api_key);
        out.put_i16(self.api_version);
        out.put_i32(0);
        match &self.client_id {
            Some(id) => {
                let id = &id.as_bytes()[..id.len().min(i16::MAX as usize)];
                out.put_i16(id.len() as i16);
                out.put_slice(id);
            }
            None => out.put_i16(-1),
        }
        if header_version >= 2 {
            out.put_u8(0); // no tagged fields
        }
        out.put_slice(&self.body);
        out.freeze()
    }
}

/// The forwarded request's response body out of an EnvelopeResponse (whose data holds the
/// inner response's header and body).
fn unwrap_envelope(response: &Bytes, api_key: i16, api_version: i16) -> Result<Bytes, String> {
    let mut buf = response.clone();
    let envelope = <kafka_protocol::messages::EnvelopeResponse as kafka_protocol::protocol::Decodable>::decode(&mut buf, 0)
        .map_err(|e| format!("undecodable envelope response: {e}"))?;
    if envelope.error_code != 0 {
        return Err(format!(
            "envelope refused with error {}",
            envelope.error_code
        ));
    }
    let data = envelope
        .response_data
        .ok_or("an envelope response without data")?;
    let header_version = kafka_protocol::messages::ApiKey::try_from(api_key)
        .map(|k| k.response_header_version(api_version))
        .unwrap_or(0);
    let mut start = 4;
    if header_version >= 1 && data.len() > start {
        start += millrace_wire::frame::skip_tagged_fields(&data[start..], start)
            .map_err(|e| e.to_string())?;
    }
    if data.len() < start {
        return Err("a truncated enveloped response".into());
    }
    Ok(data.slice(start..))
}

impl Call<Shard> for Forward {
    type Reply = Forwarded;

    async fn run(self, shard: Rc<Shard>) -> Forwarded {
        let (Some(controller), Some(lifecycle)) = (
            shard.subsystems.get::<Controller>(),
            shard.subsystems.get::<Lifecycle>(),
        ) else {
            return Forwarded::HandleHere;
        };
        if controller.lone {
            return Forwarded::HandleHere;
        }
        let deadline = Instant::now() + lifecycle.forward_wait;
        loop {
            let status = controller.driver.status();
            if status.leading {
                return Forwarded::HandleHere;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(client) = status.leader.and_then(|l| lifecycle.client(l)) {
                // The controller judges and meters the request as the client: its principal
                // for ACLs, its user and client id for quotas.
                let judged = shard.config.authorizer.is_some()
                    || !shard.image().cluster.client_quotas().is_empty();
                let enveloped = judged && !self.principal.is_empty();
                let (key, version, body) = self.wire(enveloped);
                let sent = client.send_raw_within(key, version, &body, left).await;
                let answer = sent
                    .map_err(|e| e.to_string())
                    .and_then(|body| match enveloped {
                        true => unwrap_envelope(&body, self.api_key, self.api_version),
                        false => Ok(body),
                    });
                match answer {
                    Ok(body) => return Forwarded::Answered(body),
                    Err(e) => tracing::debug!(error = %e, "forwarding to the active controller"),
                }
            }
            if Instant::now() + lifecycle.backoff >= deadline {
                return Forwarded::HandleHere;
            }
            millrace_shard::time::sleep(lifecycle.backoff).await;
        }
    }
}

fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}
