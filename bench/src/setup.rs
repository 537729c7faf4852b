//! The blocking side of the client: everything that happens before or beside the measured
//! traffic (API versions, metadata, topic creation, list offsets, producer ids, the consumer
//! group's join/sync/heartbeat). None of it is on the hot path, so it uses blocking sockets
//! (the security crate's `Stream`: TCP or TLS) on the main thread (or the group's heartbeat
//! thread), one request at a time. With a SASL login from `--command-config` it authenticates
//! right after ApiVersions (SaslHandshake v1, SaslAuthenticate rounds).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic, list_offsets_request::ListOffsetsPartition,
    list_offsets_request::ListOffsetsTopic, metadata_request::MetadataRequestTopic, ApiKey,
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest, InitProducerIdRequest,
    ListOffsetsRequest, MetadataRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use crate::BenchError;
use millrace_security::client::{ClientSecurity, LoginError, LoginExchange, Stream};
use millrace_wire::codes::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, FENCED_LEADER_EPOCH,
    LEADER_NOT_AVAILABLE, NONE, NOT_COORDINATOR, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT,
    TOPIC_ALREADY_EXISTS, UNKNOWN_LEADER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION, UNSUPPORTED_VERSION,
};

/// One partition's offset from ListOffsets, or its error code.
type PartitionOffset = Result<i64, i16>;

/// Errors of a partition whose leader is moving or has not yet learnt it leads: worth asking
/// again after a new look at the leaders.
fn leader_may_move(code: i16) -> bool {
    matches!(
        code,
        NOT_LEADER_OR_FOLLOWER
            | LEADER_NOT_AVAILABLE
            | UNKNOWN_TOPIC_OR_PARTITION
            | FENCED_LEADER_EPOCH
            | UNKNOWN_LEADER_EPOCH
            | REQUEST_TIMED_OUT
    )
}

/// Largest response frame accepted from a broker.
pub const RESPONSE_BYTES_MAX: usize = 256 << 20;
/// The client id every bench connection sends.
pub const CLIENT_ID: &str = "millrace-bench";
const LEADER_WAIT: Duration = Duration::from_secs(15);
/// ListOffsets timestamp meaning "the log start".
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp meaning "the log end".
pub const LATEST: i64 = -1;

/// One blocking connection with the versions its broker advertised.
pub struct SyncClient {
    stream: Stream,
    address: String,
    /// What this connection was opened with; connections to other brokers reuse it.
    security: Arc<ClientSecurity>,
    correlation_id: i32,
    versions: BTreeMap<i16, (i16, i16)>,
}

/// Where a topic's partitions live.
#[derive(Debug, Clone)]
pub struct TopicRoute {
    /// partition -> leader broker id.
    pub leaders: BTreeMap<i32, i32>,
    /// broker id -> HOST:PORT.
    pub addresses: BTreeMap<i32, String>,
}

impl TopicRoute {
    /// The address of `partition`'s leader.
    pub fn leader_address(&self, partition: i32) -> Result<String, BenchError> {
        let leader = self.leaders.get(&partition).copied().unwrap_or(-1);
        self.addresses.get(&leader).cloned().ok_or_else(|| {
            BenchError::Protocol(format!(
                "partition {partition} has no known leader ({leader})"
            ))
        })
    }
}

impl SyncClient {
    /// Connects (TCP, or TLS with `security.tls`), loads the broker's API versions and logs
    /// in with `security.sasl`.
    pub fn connect(
        address: &str,
        security: &Arc<ClientSecurity>,
    ) -> Result<SyncClient, BenchError> {
        let stream = Stream::open(address, security.tls.as_ref())
            .map_err(|e| BenchError::Io(format!("connecting to {address}: {e}")))?;
        let mut client = SyncClient {
            stream,
            address: address.to_string(),
            security: security.clone(),
            correlation_id: 0,
            versions: BTreeMap::new(),
        };
        client.load_versions()?;
        if let Some(login) = &security.sasl {
            client.authenticate(LoginExchange::new(login))?;
        }
        Ok(client)
    }

    /// What this connection was opened with.
    pub fn security(&self) -> &Arc<ClientSecurity> {
        &self.security
    }

    /// SaslHandshake v1, then SaslAuthenticate rounds until `exchange` is done.
    fn authenticate(&mut self, mut exchange: LoginExchange) -> Result<(), BenchError> {
        let mut handshake = SaslHandshakeRequest::default();
        handshake.mechanism = StrBytes::from_static_str(exchange.mechanism());
        let response = self.call(&handshake, 1..=1)?;
        let enabled: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        let first = exchange.handshake_answered(response.error_code, &enabled);
        let mut token = first.map_err(|e| login_error(&self.address, e))?;
        let version = self.version(ApiKey::SaslAuthenticate, 0..=2)?;
        loop {
            let mut request = SaslAuthenticateRequest::default();
            request.auth_bytes = Bytes::from(token);
            let response = self.call_at(&request, version)?;
            let message = response.error_message.as_ref().map(|m| m.as_str());
            let next =
                exchange.authenticate_answered(response.error_code, message, &response.auth_bytes);
            match next.map_err(|e| login_error(&self.address, e))? {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
    }

    /// The highest version of `key` in `ours` the broker supports.
    pub fn version(&self, key: ApiKey, ours: RangeInclusive<i16>) -> Result<i16, BenchError> {
        let (lo, hi) = self.versions.get(&(key as i16)).copied().ok_or_else(|| {
            BenchError::Protocol(format!("{} does not support {key:?}", self.address))
        })?;
        let version = hi.min(*ours.end());
        if version < lo.max(*ours.start()) {
            return Err(BenchError::Protocol(format!(
                "{} supports {key:?} v{lo}-v{hi}; millrace-bench needs v{}-v{}",
                self.address,
                ours.start(),
                ours.end()
            )));
        }
        Ok(version)
    }

    /// Sends `request` at the best version in `ours`; returns the decoded response.
    pub fn call<R: Request>(
        &mut self,
        request: &R,
        ours: RangeInclusive<i16>,
    ) -> Result<R::Response, BenchError> {
        let key = api_key(R::KEY);
        let version = self.version(key, ours)?;
        self.call_at(request, version)
    }

    fn call_at<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, BenchError> {
        let key = api_key(R::KEY);
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, self.correlation_id)?;
        self.stream
            .write_all(&frame)
            .map_err(|e| BenchError::Io(format!("sending to {}: {e}", self.address)))?;
        let mut body = self.receive()?;
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| BenchError::Protocol(format!("{key:?} response header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(BenchError::Protocol(format!(
                "{key:?}: correlation id {} (expected {})",
                header.correlation_id, self.correlation_id
            )));
        }
        R::Response::decode(&mut body, version)
            .map_err(|e| BenchError::Protocol(format!("{key:?} v{version} response: {e}")))
    }

    fn receive(&mut self) -> Result<Bytes, BenchError> {
        let io = |e: std::io::Error| BenchError::Io(format!("reading a response: {e}"));
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix).map_err(io)?;
        let size = i32::from_be_bytes(prefix);
        if size < 4 || size as usize > RESPONSE_BYTES_MAX {
            return Err(BenchError::Protocol(format!(
                "response frame of {size} bytes"
            )));
        }
        let mut frame = vec![0u8; size as usize];
        self.stream.read_exact(&mut frame).map_err(io)?;
        Ok(Bytes::from(frame))
    }

    fn load_versions(&mut self) -> Result<(), BenchError> {
        let mut request = ApiVersionsRequest::default();
        request.client_software_name = StrBytes::from_static_str(CLIENT_ID);
        request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let mut version = 3;
        loop {
            self.correlation_id += 1;
            let frame = encode_request(&request, version, self.correlation_id)?;
            self.stream
                .write_all(&frame)
                .map_err(|e| BenchError::Io(format!("sending ApiVersions: {e}")))?;
            let mut body = self.receive()?;
            // ApiVersions responses always use header v0: the correlation id only.
            let _ = ResponseHeader::decode(&mut body, 0)
                .map_err(|e| BenchError::Protocol(format!("ApiVersions header: {e}")))?;
            let error = body.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
            let decode_at = if error == Some(UNSUPPORTED_VERSION) {
                0
            } else {
                version
            };
            let response = ApiVersionsResponse::decode(&mut body, decode_at)
                .map_err(|e| BenchError::Protocol(format!("ApiVersions: {e}")))?;
            if response.error_code == UNSUPPORTED_VERSION && version > 0 {
                let theirs = response
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |k| k.max_version);
                version = theirs.min(version - 1);
                continue;
            }
            if response.error_code != NONE {
                return Err(BenchError::Kafka("ApiVersions".into(), response.error_code));
            }
            self.versions = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            return Ok(());
        }
    }

    /// Creates `topic` with `partitions` partitions unless it exists already.
    pub fn create_topic(&mut self, topic: &str, partitions: i32) -> Result<bool, BenchError> {
        let mut t = CreatableTopic::default();
        t.name = topic_name(topic);
        t.num_partitions = partitions;
        t.replication_factor = -1;
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![t];
        request.timeout_ms = 30_000;
        let response = self.call(&request, 2..=7)?;
        let code = response.topics.first().map_or(NONE, |t| t.error_code);
        match code {
            NONE => Ok(true),
            TOPIC_ALREADY_EXISTS => Ok(false),
            c => Err(BenchError::Kafka(format!("creating topic {topic}"), c)),
        }
    }

    /// The topic's leaders, waiting a little for a topic that is being created.
    pub fn route(&mut self, topic: &str) -> Result<TopicRoute, BenchError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let mut t = MetadataRequestTopic::default();
            t.name = Some(topic_name(topic));
            let mut request = MetadataRequest::default();
            request.topics = Some(vec![t]);
            request.allow_auto_topic_creation = false;
            let response = self.call(&request, 1..=12)?;
            let found = response
                .topics
                .iter()
                .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic));
            let ready = found.is_some_and(|t| {
                t.error_code == NONE
                    && !t.partitions.is_empty()
                    && t.partitions.iter().all(|p| p.leader_id.0 >= 0)
            });
            if ready {
                let found = found.expect("checked");
                return Ok(TopicRoute {
                    leaders: found
                        .partitions
                        .iter()
                        .map(|p| (p.partition_index, p.leader_id.0))
                        .collect(),
                    addresses: response
                        .brokers
                        .iter()
                        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
                        .collect(),
                });
            }
            if Instant::now() >= deadline {
                let code = found.map_or(3, |t| t.error_code);
                return Err(BenchError::Kafka(
                    format!("topic {topic} (create it with --partitions N)"),
                    code,
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// ListOffsets for `partitions` of `topic` at `timestamp` (EARLIEST or LATEST), each
    /// asked of its leader: a broker answers only for the partitions it leads. An error that
    /// says the leader moved or has not yet learnt it leads (a topic just created on a
    /// cluster) looks the leaders up again and asks again, for up to `LEADER_WAIT`, as a Kafka
    /// client retries it.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>, BenchError> {
        let deadline = Instant::now() + LEADER_WAIT;
        let mut out = BTreeMap::new();
        let mut others: BTreeMap<String, SyncClient> = BTreeMap::new();
        loop {
            let route = self.route(topic)?;
            let mut by_leader: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for &p in partitions.iter().filter(|p| !out.contains_key(*p)) {
                by_leader
                    .entry(route.leader_address(p)?)
                    .or_default()
                    .push(p);
            }
            let mut last_error = None;
            for (address, asked) in by_leader {
                let client = if address == self.address {
                    &mut *self
                } else {
                    if !others.contains_key(&address) {
                        let client = SyncClient::connect(&address, &self.security)?;
                        others.insert(address.clone(), client);
                    }
                    others.get_mut(&address).expect("inserted")
                };
                for (p, answer) in client.list_offsets_here(topic, &asked, timestamp)? {
                    match answer {
                        Ok(offset) => {
                            out.insert(p, offset);
                        }
                        Err(code) if leader_may_move(code) => last_error = Some((p, code)),
                        Err(code) => {
                            return Err(BenchError::Kafka(format!("ListOffsets {topic}-{p}"), code))
                        }
                    }
                }
            }
            match last_error {
                None => return Ok(out),
                Some((p, code)) if Instant::now() >= deadline => {
                    return Err(BenchError::Kafka(format!("ListOffsets {topic}-{p}"), code))
                }
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// ListOffsets for `partitions` of `topic` on this connection's broker: each partition's
    /// offset or error code.
    fn list_offsets_here(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<Vec<(i32, PartitionOffset)>, BenchError> {
        let mut t = ListOffsetsTopic::default();
        t.name = topic_name(topic);
        t.partitions = partitions
            .iter()
            .map(|&p| {
                let mut lp = ListOffsetsPartition::default();
                lp.partition_index = p;
                lp.current_leader_epoch = -1;
                lp.timestamp = timestamp;
                lp
            })
            .collect();
        let mut request = ListOffsetsRequest::default();
        request.replica_id = BrokerId(-1);
        request.topics = vec![t];
        let response = self.call(&request, 1..=8)?;
        Ok(response
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .map(|p| {
                let answer = if p.error_code == NONE {
                    Ok(p.offset)
                } else {
                    Err(p.error_code)
                };
                (p.partition_index, answer)
            })
            .collect())
    }

    /// A new idempotent producer id and epoch.
    pub fn init_producer_id(&mut self) -> Result<(i64, i16), BenchError> {
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = None;
        request.transaction_timeout_ms = -1;
        request.producer_id = kafka_protocol::messages::ProducerId(-1);
        request.producer_epoch = -1;
        let deadline = Instant::now() + LEADER_WAIT;
        let mut response = self.call(&request, 0..=5)?;
        // Retriable while the broker's producer-id state is still loading.
        while [
            COORDINATOR_LOAD_IN_PROGRESS,
            COORDINATOR_NOT_AVAILABLE,
            NOT_COORDINATOR,
        ]
        .contains(&response.error_code)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(200));
            response = self.call(&request, 0..=5)?;
        }
        if response.error_code != NONE {
            return Err(BenchError::Kafka(
                "InitProducerId".into(),
                response.error_code,
            ));
        }
        Ok((response.producer_id.0, response.producer_epoch))
    }
}

/// Encodes a whole request frame (size prefix, header, body).
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<BytesMut, BenchError> {
    let key = api_key(R::KEY);
    let mut header = RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
    let mut buf = BytesMut::with_capacity(128);
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(&mut buf, key.request_header_version(version))
        .map_err(|e| BenchError::Protocol(format!("encoding {key:?} header: {e}")))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| BenchError::Protocol(format!("encoding {key:?}: {e}")))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// A failed SASL login with `address`, with the Kafka error's name when the broker refused.
pub fn login_error(address: &str, e: LoginError) -> BenchError {
    let name = match &e {
        LoginError::Handshake { code, .. } | LoginError::Refused { code, .. } => {
            format!(" ({})", millrace_wire::codes::name(*code))
        }
        LoginError::Client { .. } => String::new(),
    };
    BenchError::Auth(format!("logging in to {address}: {e}{name}"))
}

/// A topic name as kafka-protocol wants it.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The key of a kafka-protocol request type.
pub fn api_key(key: i16) -> ApiKey {
    ApiKey::try_from(key).expect("kafka-protocol request types carry known keys")
}
