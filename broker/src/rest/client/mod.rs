//! The REST proxy's Kafka client: it reaches the cluster over the Kafka protocol, as any client
//! does (`millrace.rest.bootstrap.servers`, by default this broker's own listener), so what
//! the cluster applies to clients applies to it, and it can front another Kafka cluster.
//!
//! Metadata is asked per REST request (one round trip on the broker's own host); produce is an
//! idempotent producer (InitProducerId, a sequence per partition, one batch per partition per
//! REST request, acks=all) that retries what Kafka's producer retries with the same sequence,
//! so a retry is never written twice.

mod admin;
pub mod group;

use crate::dial::Route;
use crate::peer::{PeerClient, PeerConfig, PeerError};
use bytes::Bytes;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, DescribeConfigsRequest, DescribeConfigsResponse, FetchRequest, FetchResponse,
    InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use millrace_shard::sync::Turn;
use millrace_shard::time::Instant;
use millrace_wire::codes as code;
use millrace_wire::records::{BatchBuilder, BatchIter, BatchStep, NewRecord, Record};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

/// How long a produce keeps retrying retriable errors (Kafka's `delivery.timeout.ms` is two
/// minutes; an HTTP caller waits less).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Between retries.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// How long a topic's metadata is used before it is asked again (any error that may mean a
/// moved leader forgets it at once).
const METADATA_MAX_AGE: Duration = Duration::from_secs(10);
/// How long a request naming a topic waits for it to show in the metadata.
const TOPIC_WAIT: Duration = Duration::from_secs(3);
/// The largest fetch response accepted.
const FETCH_RESPONSE_MAX: usize = 64 << 20;

/// Why a client call failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The topic does not exist.
    UnknownTopic,
    /// The partition does not exist.
    UnknownPartition,
    /// A Kafka error code for the whole call.
    Kafka(i16, String),
    /// The cluster could not be reached.
    Unreachable(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::UnknownTopic => write!(f, "topic not found"),
            ClientError::UnknownPartition => write!(f, "partition not found"),
            ClientError::Kafka(c, m) => write!(f, "{} ({c}): {m}", code::name(*c)),
            ClientError::Unreachable(m) => write!(f, "cluster unreachable: {m}"),
        }
    }
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    /// Partition id.
    pub id: i32,
    /// Leader broker, -1 for none.
    pub leader: i32,
    /// Replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// One topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    /// The topic's id.
    pub id: uuid::Uuid,
    /// Internal (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Its partitions, by id.
    pub partitions: Vec<PartitionInfo>,
}

/// A Metadata answer.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// The cluster id.
    pub cluster_id: String,
    /// Topics that exist, by name.
    pub topics: BTreeMap<String, TopicInfo>,
}

/// A record to produce.
#[derive(Debug, Clone, Default)]
pub struct OutRecord {
    /// The partition asked for, if any.
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Where one produced record went: (partition, offset) or a Kafka error code with its text.
pub type Delivery = Result<(i32, i64, i64), (i32, i16, String)>;

/// What a fetch read.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// Records at or after the fetch offset.
    pub records: Vec<Record>,
    /// Where the next fetch starts: past the last whole batch returned (compaction leaves
    /// gaps, and a batch may hold only control records), or the fetch offset when none was.
    pub next_offset: i64,
}

/// The client. Lives on one shard.
pub struct KafkaClient {
    /// Group coordinators by group id, until an answer says one moved.
    coordinators: RefCell<HashMap<String, Rc<PeerClient>>>,
    bootstrap: Vec<(String, u16)>,
    client_id: String,
    brokers: RefCell<BTreeMap<i32, (String, u16)>>,
    peers: RefCell<HashMap<SocketAddr, Rc<PeerClient>>>,
    /// The idempotent producer: (id, epoch).
    producer: RefCell<Option<(i64, i16)>>,
    /// One producer initialisation at a time.
    init: Turn,
    /// Next sequence by (topic, partition), for `producer`.
    sequences: RefCell<HashMap<(String, i32), i32>>,
    /// One batch in flight per partition (sequences stay in order).
    turns: RefCell<HashMap<(String, i32), Rc<Turn>>>,
    /// Round-robin of the partition for records without key or partition.
    sticky: Cell<usize>,
    /// Topics' metadata with when it was asked, and the cluster id.
    cache: RefCell<HashMap<String, (Instant, TopicInfo)>>,
    cluster_id: RefCell<String>,
    /// How brokers are dialed.
    route: Route,
}

impl KafkaClient {
    /// A client of the cluster at `bootstrap`.
    /// `route` says whether the bootstrap servers are this cluster's inter-broker listener
    /// (dialed with its security) or another cluster's (dialed in plaintext).
    pub fn new(bootstrap: Vec<(String, u16)>, client_id: String, route: Route) -> Self {
        KafkaClient {
            route,
            coordinators: RefCell::new(HashMap::new()),
            bootstrap,
            client_id,
            brokers: RefCell::new(BTreeMap::new()),
            peers: RefCell::new(HashMap::new()),
            producer: RefCell::new(None),
            init: Turn::new(),
            sequences: RefCell::new(HashMap::new()),
            turns: RefCell::new(HashMap::new()),
            sticky: Cell::new(0),
            cache: RefCell::new(HashMap::new()),
            cluster_id: RefCell::new(String::new()),
        }
    }

    fn peer(&self, host: &str, port: u16) -> Result<Rc<PeerClient>, String> {
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {host}:{port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}:{port} resolves to nothing"))?;
        crate::dial::name_address(addr, host);
        let mut peers = self.peers.borrow_mut();
        let client = peers.entry(addr).or_insert_with(|| {
            Rc::new(PeerClient::new(
                addr,
                PeerConfig {
                    client_id: self.client_id.clone(),
                    request_timeout: DELIVERY_TIMEOUT,
                    response_bytes_max: FETCH_RESPONSE_MAX,
                    route: self.route,
                    ..PeerConfig::default()
                },
            ))
        });
        Ok(client.clone())
    }

    fn broker(&self, id: i32) -> Result<Rc<PeerClient>, ClientError> {
        let known = self.brokers.borrow().get(&id).cloned();
        let (host, port) =
            known.ok_or_else(|| ClientError::Unreachable(format!("broker {id} unknown")))?;
        self.peer(&host, port).map_err(ClientError::Unreachable)
    }

    /// Metadata for `topics` (None: every topic), from the first bootstrap server or known
    /// broker that answers. `create` lets the cluster auto-create the topics (a producer's
    /// request, as Kafka's producer sends it).
    pub async fn metadata(
        &self,
        topics: Option<&[&str]>,
        create: bool,
    ) -> Result<Metadata, ClientError> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(create);
        let mut targets: Vec<(String, u16)> = self.brokers.borrow().values().cloned().collect();
        targets.extend(self.bootstrap.iter().cloned());
        let mut last = String::from("no bootstrap server");
        for (host, port) in targets {
            let peer = match self.peer(&host, port) {
                Ok(p) => p,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match peer.send::<_, MetadataResponse>(3, 12, &req).await {
                Ok(resp) => return Ok(self.learn(resp)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(ClientError::Unreachable(last))
    }

    /// Metadata for one topic, asked again for up to [`TOPIC_WAIT`] while the topic is missing
    /// or a partition has no leader: a topic created a moment ago reaches every broker's
    /// metadata a little later (Kafka's producer likewise waits for it, up to `max.block.ms`).
    pub async fn topic_metadata(&self, topic: &str, create: bool) -> Result<Metadata, ClientError> {
        let cached = self.cache.borrow().get(topic).cloned();
        if let Some((_, info)) = cached.filter(|(at, _)| at.elapsed() < METADATA_MAX_AGE) {
            return Ok(Metadata {
                cluster_id: self.cluster_id.borrow().clone(),
                topics: BTreeMap::from([(topic.to_string(), info)]),
            });
        }
        let deadline = Instant::now() + TOPIC_WAIT;
        loop {
            let meta = self.metadata(Some(&[topic]), create).await?;
            let ready = meta
                .topics
                .get(topic)
                .is_some_and(|t| t.partitions.iter().all(|p| p.leader >= 0));
            if ready {
                let info = meta.topics.get(topic).cloned().expect("ready");
                self.cache
                    .borrow_mut()
                    .insert(topic.to_string(), (Instant::now(), info));
            }
            if ready || Instant::now() >= deadline {
                return Ok(meta);
            }
            millrace_shard::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// Drops what is cached of `topic` (its leader may have moved).
    pub fn forget(&self, topic: &str) {
        self.cache.borrow_mut().remove(topic);
    }

    fn learn(&self, resp: MetadataResponse) -> Metadata {
        let brokers: BTreeMap<i32, (String, u16)> = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, (b.host.to_string(), b.port as u16)))
            .collect();
        *self.brokers.borrow_mut() = brokers;
        let mut topics = BTreeMap::new();
        for t in resp.topics {
            let Some(name) = t.name else { continue };
            if t.error_code != code::NONE {
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    id: p.partition_index,
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.id);
            topics.insert(
                name.0.to_string(),
                TopicInfo {
                    id: t.topic_id,
                    internal: t.is_internal,
                    partitions,
                },
            );
        }
        let cluster_id = resp.cluster_id.map(|c| c.to_string()).unwrap_or_default();
        *self.cluster_id.borrow_mut() = cluster_id.clone();
        Metadata { cluster_id, topics }
    }

    /// Produces `records` to `topic` with acks=all; one delivery per record, in order.
    pub async fn produce(
        self: &Rc<Self>,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Delivery>, ClientError> {
        let meta = self.topic_metadata(topic, true).await?;
        let Some(info) = meta.topics.get(topic) else {
            return Err(ClientError::UnknownTopic);
        };
        let n = info.partitions.len() as i32;
        if records
            .iter()
            .any(|r| r.partition.is_some_and(|p| p < 0 || p >= n))
        {
            return Err(ClientError::UnknownPartition);
        }
        // Kafka's default partitioner: the asked partition, else murmur2 of the key, else one
        // partition for the request's keyless records (the sticky partitioner's choice).
        let sticky = (self.sticky.get() % n as usize) as i32;
        self.sticky.set(self.sticky.get().wrapping_add(1));
        let mut by_partition: BTreeMap<i32, Vec<(usize, NewRecord)>> = BTreeMap::new();
        let now = millrace_shard::time::now_ms();
        for (i, r) in records.into_iter().enumerate() {
            let p = match (r.partition, &r.key) {
                (Some(p), _) => p,
                (None, Some(k)) => millrace_wire::murmur2::partition_for_key(k, n),
                (None, None) => sticky,
            };
            let record = NewRecord {
                timestamp: now,
                key: r.key,
                value: r.value,
                headers: r.headers,
            };
            by_partition.entry(p).or_default().push((i, record));
        }
        let total: usize = by_partition.values().map(Vec::len).sum();
        let sends = by_partition.into_iter().map(|(p, batch)| {
            let (client, topic) = (self.clone(), topic.to_string());
            async move { (p, client.produce_batch(&topic, p, batch).await) }
        });
        let mut out: Vec<Option<Delivery>> = (0..total).map(|_| None).collect();
        for (p, (slots, result)) in crate::mesh::join_all(sends.collect()).await {
            for (k, slot) in slots.into_iter().enumerate() {
                out[slot] = Some(match &result {
                    Ok((base, time)) => Ok((p, base + k as i64, *time)),
                    Err((c, m)) => Err((p, *c, m.clone())),
                });
            }
        }
        Ok(out.into_iter().map(|d| d.expect("every slot")).collect())
    }

    /// One partition's records as one batch: (their slots, Ok(base offset, timestamp) or the
    /// error code and text).
    async fn produce_batch(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(usize, NewRecord)>,
    ) -> (Vec<usize>, Result<(i64, i64), (i16, String)>) {
        let (slots, records): (Vec<usize>, Vec<NewRecord>) = records.into_iter().unzip();
        let key = (topic.to_string(), partition);
        let turn = self
            .turns
            .borrow_mut()
            .entry(key.clone())
            .or_insert_with(|| Rc::new(Turn::new()))
            .clone();
        let _turn = turn.lock().await;
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let mut reset_once = false;
        loop {
            let (producer_id, epoch) = match self.producer_id().await {
                Ok(p) => p,
                Err(e) => return (slots, Err(error_of(&e))),
            };
            let sequence = *self.sequences.borrow().get(&key).unwrap_or(&0);
            let batch = BatchBuilder {
                producer_id,
                producer_epoch: epoch,
                base_sequence: sequence,
                ..BatchBuilder::default()
            }
            .build(&records);
            let outcome = self.send_batch(topic, partition, Bytes::from(batch)).await;
            let retriable = match outcome {
                Ok(base) => {
                    let next = sequence.wrapping_add(records.len() as i32) & i32::MAX;
                    self.sequences.borrow_mut().insert(key, next);
                    return (slots, Ok((base, records[0].timestamp)));
                }
                Err(SendError::Code(c, _))
                    if matches!(
                        c,
                        code::OUT_OF_ORDER_SEQUENCE_NUMBER
                            | code::UNKNOWN_PRODUCER_ID
                            | code::INVALID_PRODUCER_EPOCH
                    ) && !reset_once =>
                {
                    // The broker lost or fenced this producer's state: start a new producer.
                    reset_once = true;
                    self.producer.borrow_mut().take();
                    self.sequences.borrow_mut().clear();
                    continue;
                }
                Err(SendError::Code(c, m)) if !retriable_code(c) => {
                    return (slots, Err((c, m)));
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let (c, m) = match retriable {
                    SendError::Code(c, m) => (c, m),
                    SendError::Network(m) => (code::REQUEST_TIMED_OUT, m),
                };
                return (slots, Err((c, m)));
            }
            millrace_shard::time::sleep(RETRY_BACKOFF).await;
            // A moved leader: learn the new one before the retry.
            self.forget(topic);
        }
    }

    async fn send_batch(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
    ) -> Result<i64, SendError> {
        let meta = self
            .topic_metadata(topic, false)
            .await
            .map_err(|e| SendError::Network(e.to_string()))?;
        let leader = meta
            .topics
            .get(topic)
            .and_then(|t| t.partitions.iter().find(|p| p.id == partition))
            .map_or(-1, |p| p.leader);
        if leader < 0 {
            return Err(SendError::Code(
                code::LEADER_NOT_AVAILABLE,
                "no leader".into(),
            ));
        }
        let peer = self
            .broker(leader)
            .map_err(|e| SendError::Network(e.to_string()))?;
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(DELIVERY_TIMEOUT.as_millis() as i32)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let resp: ProduceResponse = peer
            .send(0, 9, &req)
            .await
            .map_err(|e: PeerError| SendError::Network(e.to_string()))?;
        let p = resp
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == partition)
            .ok_or_else(|| SendError::Network("the partition is missing from the answer".into()))?;
        if p.error_code != code::NONE {
            let text = p
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| code::name(p.error_code).to_string());
            return Err(SendError::Code(p.error_code, text));
        }
        Ok(p.base_offset)
    }

    async fn producer_id(&self) -> Result<(i64, i16), ClientError> {
        if let Some(p) = *self.producer.borrow() {
            return Ok(p);
        }
        let _init = self.init.lock().await;
        if let Some(p) = *self.producer.borrow() {
            return Ok(p);
        }
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1);
            let answer: Result<InitProducerIdResponse, ClientError> = match self.any_broker() {
                Ok(peer) => peer
                    .send(22, 4, &req)
                    .await
                    .map_err(|e| ClientError::Unreachable(e.to_string())),
                Err(e) => Err(e),
            };
            match answer {
                Ok(r) if r.error_code == code::NONE => {
                    let p = (r.producer_id.0, r.producer_epoch);
                    *self.producer.borrow_mut() = Some(p);
                    return Ok(p);
                }
                Ok(r) if !retriable_code(r.error_code) || Instant::now() >= deadline => {
                    return Err(ClientError::Kafka(r.error_code, "InitProducerId".into()));
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                _ => {
                    millrace_shard::time::sleep(RETRY_BACKOFF).await;
                    let _ = self.metadata(Some(&[]), false).await;
                }
            }
        }
    }

    fn any_broker(&self) -> Result<Rc<PeerClient>, ClientError> {
        let first = self.brokers.borrow().keys().next().copied();
        match first {
            Some(id) => self.broker(id),
            None => {
                let (host, port) = self
                    .bootstrap
                    .first()
                    .cloned()
                    .ok_or_else(|| ClientError::Unreachable("no bootstrap server".into()))?;
                self.peer(&host, port).map_err(ClientError::Unreachable)
            }
        }
    }

    /// Reads `topic`/`partition` from `offset`: whole batches up to `max_bytes`, waiting up to
    /// `max_wait_ms` for data, records before `offset` (in the first batch) dropped.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<Fetched, ClientError> {
        let meta = self.topic_metadata(topic, false).await?;
        let info = meta.topics.get(topic).ok_or(ClientError::UnknownTopic)?;
        let leader = info
            .partitions
            .iter()
            .find(|p| p.id == partition)
            .ok_or(ClientError::UnknownPartition)?
            .leader;
        if leader < 0 {
            return Err(ClientError::Kafka(
                code::LEADER_NOT_AVAILABLE,
                "no leader".into(),
            ));
        }
        let peer = self.broker(leader)?;
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)])]);
        let wait = Duration::from_millis(max_wait_ms.max(0) as u64) + Duration::from_secs(10);
        let resp: FetchResponse = peer
            .send_within(1, 12, &req, wait)
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let p = resp
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| ClientError::Unreachable("no partition in the answer".into()))?;
        if p.error_code != code::NONE {
            self.forget(topic);
        }
        fetched(p, offset)
    }
}

impl KafkaClient {
    /// A topic's configs (DescribeConfigs to the topic's first partition's leader, which is
    /// any broker): name → value, sensitive ones left out.
    pub async fn topic_configs(
        &self,
        topic: &str,
    ) -> Result<BTreeMap<String, String>, ClientError> {
        let _ = self.metadata(Some(&[]), false).await?;
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configuration_keys(None),
        ]);
        let resp: DescribeConfigsResponse = self
            .any_broker()?
            .send(32, 4, &req)
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let r = resp
            .results
            .first()
            .ok_or_else(|| ClientError::Unreachable("no result in the answer".into()))?;
        match r.error_code {
            code::NONE => {}
            code::UNKNOWN_TOPIC_OR_PARTITION => return Err(ClientError::UnknownTopic),
            c => return Err(ClientError::Kafka(c, "DescribeConfigs".into())),
        }
        Ok(r.configs
            .iter()
            .filter(|c| !c.is_sensitive)
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect())
    }
}

/// One partition of a Fetch answer: its records at or after `offset`, control batches and a
/// partial last batch left out, or its error.
fn fetched(p: &PartitionData, offset: i64) -> Result<Fetched, ClientError> {
    if p.error_code != code::NONE {
        return Err(ClientError::Kafka(
            p.error_code,
            code::name(p.error_code).into(),
        ));
    }
    let mut records = Vec::new();
    let mut next_offset = offset;
    if let Some(bytes) = &p.records {
        for step in BatchIter::new(bytes) {
            let BatchStep::Batch { bytes, header, .. } = step else {
                break; // a partial last batch: the next fetch gets it whole
            };
            let end = header.base_offset + header.last_offset_delta as i64 + 1;
            next_offset = next_offset.max(end);
            if header.is_control() {
                continue;
            }
            let decoded = millrace_wire::records::decode_records(bytes, FETCH_RESPONSE_MAX)
                .map_err(|e| ClientError::Unreachable(format!("undecodable batch: {e}")))?;
            records.extend(decoded.into_iter().filter(|r| r.offset >= offset));
        }
    }
    Ok(Fetched {
        high_watermark: p.high_watermark,
        records,
        next_offset,
    })
}

enum SendError {
    Code(i16, String),
    Network(String),
}

fn error_of(e: &ClientError) -> (i16, String) {
    match e {
        ClientError::Kafka(c, m) => (*c, m.clone()),
        other => (code::UNKNOWN_SERVER_ERROR, other.to_string()),
    }
}

/// Errors Kafka's producer retries.
fn retriable_code(c: i16) -> bool {
    matches!(
        c,
        code::NOT_LEADER_OR_FOLLOWER
            | code::LEADER_NOT_AVAILABLE
            | code::REQUEST_TIMED_OUT
            | code::NOT_ENOUGH_REPLICAS
            | code::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            | code::UNKNOWN_TOPIC_OR_PARTITION
            | code::KAFKA_STORAGE_ERROR
            | code::COORDINATOR_LOAD_IN_PROGRESS
            | code::COORDINATOR_NOT_AVAILABLE
            | code::NOT_COORDINATOR
            | code::CONCURRENT_TRANSACTIONS
            | code::FENCED_LEADER_EPOCH
            | code::UNKNOWN_LEADER_EPOCH
    )
}

pub(crate) fn coordinator_moved(c: i16) -> bool {
    matches!(
        c,
        code::COORDINATOR_LOAD_IN_PROGRESS
            | code::COORDINATOR_NOT_AVAILABLE
            | code::NOT_COORDINATOR
    )
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
