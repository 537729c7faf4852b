//! Confluent REST Proxy v2 consumer instances (`/consumers/{group}/...`): each one a real member
//! of its group, so Kafka clients in the same group share partitions with it and
//! `kafka-consumer-groups --describe` shows it.
//!
//! A subscribed instance is a KIP-848 member (ConsumerGroupHeartbeat): a task per instance
//! heartbeats at the interval the coordinator gives, takes the partitions the coordinator
//! assigns and gives back the ones it takes away (committing their positions first when
//! `auto.commit.enable` is on), as Kafka's consumer does. Topic patterns are matched here
//! against the cluster's topic list (whole name, internal topics left out) and the matches
//! subscribed by name. An instance with `assignments` reads its partitions without joining.
//!
//! Reads keep no buffer between requests: a records request fetches from each assigned
//! partition's position (one Fetch per leader, `max_bytes` bounding the answer) and moves a
//! position only past the records it returns. Committing with offsets commits `offset + 1`
//! (the next record to read) as Confluent's proxy does; committing with no body commits the
//! positions. An instance no request touches for `millrace.rest.consumer.instance.timeout.ms`
//! leaves its group and is removed; at most `millrace.rest.consumer.max.instances` exist.

use super::client::group::{CommitOffset, Tp};
use super::client::{ClientError, KafkaClient};
use super::{error, ok, parse_json, V2};
use crate::config::RestConsumerKeys;
use crate::http::{reply, Response};
use base64::Engine;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use millrace_shard::sync::{Notify, Turn};
use millrace_shard::time::Instant;
use millrace_wire::codes as code;
use millrace_wire::records::Record;
use serde_json::{json, Map, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;
use uuid::Uuid;

/// The records request's wait when it names none (Confluent's `consumer.request.timeout.ms`).
const READ_TIMEOUT_DEFAULT: Duration = Duration::from_millis(1000);
/// The longest a records request waits: the heartbeat task keeps the membership alive
/// meanwhile, but an HTTP caller should not hang longer than this.
const READ_TIMEOUT_MAX: Duration = Duration::from_secs(30);
/// Kafka's consumer default `auto.commit.interval.ms`.
const AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// Between heartbeats after an error (coordinator moving, unreachable).
const HEARTBEAT_BACKOFF: Duration = Duration::from_millis(500);
/// How often a topic pattern is matched again against the cluster's topics.
const PATTERN_REFRESH: Duration = Duration::from_secs(5);
/// The rebalance timeout a member declares: how long the coordinator waits for it to give
/// partitions back (Kafka's consumer sends `max.poll.interval.ms`, five minutes).
const REBALANCE_TIMEOUT_MS: i32 = 300_000;

const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
const BINARY_V2: &str = "application/vnd.kafka.binary.v2+json";

/// An instance's embedded format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Binary,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Binary => BINARY_V2,
            Format::Json => JSON_V2,
        }
    }
}

/// `auto.offset.reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    Earliest,
    Latest,
    None,
}

/// What an instance reads.
#[derive(Clone, Debug)]
enum Subscription {
    Nothing,
    Topics(Vec<String>),
    Pattern(regex::Regex),
    Manual,
}

impl Subscription {
    fn is_group(&self) -> bool {
        matches!(self, Subscription::Topics(_) | Subscription::Pattern(_))
    }
}

struct State {
    subscription: Subscription,
    /// Bumped by every subscribe and unsubscribe: a heartbeat task of an older one stops,
    /// and an answer to an older one's heartbeat is dropped.
    session: u64,
    /// The member epoch; 0 joins (or joins again) with the next heartbeat.
    epoch: i32,
    /// The coordinator's latest assignment, by topic id.
    target: Vec<(Uuid, Vec<i32>)>,
    /// The partitions this instance holds and reads.
    owned: BTreeSet<Tp>,
    /// `owned` changed since a heartbeat told the coordinator.
    report: bool,
    /// Next offset to read, by partition (absent: from the committed offset or the reset).
    positions: HashMap<Tp, i64>,
    /// Topic ids to names.
    names: HashMap<Uuid, String>,
    /// The topic names the coordinator last heard as the subscription.
    sent_topics: Option<Vec<String>>,
    /// A pattern's matches and when they were taken.
    matched: Option<(Instant, Vec<String>)>,
    interval: Duration,
    last_auto_commit: Instant,
    /// A group error the next request reports.
    failure: Option<String>,
}

/// One consumer instance.
pub struct Instance {
    group: String,
    name: String,
    member_id: String,
    format: Format,
    reset: Reset,
    auto_commit: bool,
    min_bytes: i32,
    read_timeout: Duration,
    state: RefCell<State>,
    /// One request at a time per instance.
    turn: Turn,
    used: Cell<Instant>,
    closed: Cell<bool>,
    wake: Notify,
}

/// The proxy's consumer instances, on the proxy's shard.
pub struct Consumers {
    client: Rc<KafkaClient>,
    keys: RestConsumerKeys,
    instances: RefCell<BTreeMap<(String, String), Rc<Instance>>>,
}

fn illegal_state(message: impl std::fmt::Display) -> Response {
    error(409, 40903, format!("Illegal state: {message}"))
}

fn not_found() -> Response {
    error(404, 40403, "Consumer instance not found.")
}

fn kafka_error(e: &ClientError) -> Response {
    match e {
        ClientError::UnknownTopic => error(404, 40401, "Topic not found."),
        ClientError::UnknownPartition => error(404, 40402, "Partition not found."),
        ClientError::Kafka(c, m) => {
            error(500, 50002, format!("Kafka error: {} ({m})", code::name(*c)))
        }
        ClientError::Unreachable(m) => error(500, 50003, format!("Retriable Kafka error: {m}")),
    }
}

fn no_content() -> Response {
    reply(204, V2, "")
}

/// A config value as the create body gives it: a string or a number.
fn config_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A `[{"topic", "partition"}]` list under `field` of `doc`.
fn partitions_of(doc: &Value, field: &str) -> Result<Vec<Tp>, Response> {
    let Some(Value::Array(list)) = doc.get(field) else {
        return Err(error(
            422,
            422,
            format!("The body needs a \"{field}\" array of {{topic, partition}}."),
        ));
    };
    list.iter()
        .map(|p| {
            let topic = p.get("topic").and_then(Value::as_str);
            let partition = p
                .get("partition")
                .and_then(Value::as_i64)
                .and_then(|x| i32::try_from(x).ok());
            match (topic, partition) {
                (Some(t), Some(n)) if n >= 0 => Ok((t.to_string(), n)),
                _ => Err(error(
                    422,
                    422,
                    format!("Each of \"{field}\" needs a topic and a partition: {p}"),
                )),
            }
        })
        .collect()
}

/// A `[{"topic", "partition", "offset"[, "metadata"]}]` list under `field` of `doc`.
fn offsets_of(doc: &Value, field: &str) -> Result<Vec<CommitOffset>, Response> {
    let Some(Value::Array(list)) = doc.get(field) else {
        return Err(error(
            422,
            422,
            format!("The body needs a \"{field}\" array of {{topic, partition, offset}}."),
        ));
    };
    list.iter()
        .map(|o| {
            let topic = o.get("topic").and_then(Value::as_str);
            let partition = o
                .get("partition")
                .and_then(Value::as_i64)
                .and_then(|x| i32::try_from(x).ok());
            let offset = o.get("offset").and_then(Value::as_i64);
            let metadata = o.get("metadata").and_then(Value::as_str).map(String::from);
            match (topic, partition, offset) {
                (Some(t), Some(p), Some(off)) if p >= 0 && off >= 0 => {
                    Ok(((t.to_string(), p), off, metadata))
                }
                _ => Err(error(
                    422,
                    422,
                    format!("Each of \"{field}\" needs a topic, a partition and an offset: {o}"),
                )),
            }
        })
        .collect()
}

fn tp_json(tp: &Tp) -> Value {
    json!({"topic": tp.0, "partition": tp.1})
}

impl Consumers {
    /// No instances yet; they reach the cluster through `client`.
    pub fn new(client: Rc<KafkaClient>, keys: RestConsumerKeys) -> Self {
        Consumers {
            client,
            keys,
            instances: RefCell::new(BTreeMap::new()),
        }
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.keys.instance_timeout_ms.max(0) as u64)
    }

    /// The instance, touched (its idle clock restarts).
    fn instance(&self, group: &str, name: &str) -> Option<Rc<Instance>> {
        self.sweep();
        let inst = self
            .instances
            .borrow()
            .get(&(group.to_string(), name.to_string()))
            .cloned()?;
        inst.used.set(Instant::now());
        Some(inst)
    }

    /// Closes instances idle past the timeout (the ones with a heartbeat task close themselves
    /// too; this catches those without one).
    fn sweep(self: &Consumers) {
        let timeout = self.idle_timeout();
        let idle: Vec<Rc<Instance>> = self
            .instances
            .borrow()
            .values()
            .filter(|i| i.used.get().elapsed() >= timeout)
            .cloned()
            .collect();
        for inst in idle {
            self.instances
                .borrow_mut()
                .remove(&(inst.group.clone(), inst.name.clone()));
            let client = self.client.clone();
            millrace_shard::spawn_detached(async move {
                tracing::info!(group = %inst.group, instance = %inst.name, "REST consumer instance expired");
                close(&client, &inst).await;
            });
        }
    }

    /// `POST /consumers/{group}`.
    pub fn create(&self, group: &str, body: &[u8], host: &str) -> Response {
        self.sweep();
        let doc = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            match parse_json(body) {
                Ok(d) => d,
                Err(e) => return e,
            }
        };
        let Some(fields) = doc.as_object() else {
            return error(422, 422, "The body must be a JSON object.");
        };
        let invalid = |m: String| error(422, 42204, format!("Invalid consumer configuration: {m}"));
        let mut name = None;
        let mut format = Format::Binary;
        let mut reset = Reset::Latest;
        let mut auto_commit = true;
        let mut min_bytes = 1;
        let mut read_timeout = READ_TIMEOUT_DEFAULT;
        for (key, value) in fields {
            if value.is_null() {
                continue;
            }
            let Some(text) = config_text(value) else {
                return invalid(format!("{key} must be a string or a number"));
            };
            match key.as_str() {
                "name" | "id" => name = Some(text),
                "format" => {
                    format = match text.to_ascii_lowercase().as_str() {
                        "binary" => Format::Binary,
                        "json" => Format::Json,
                        "avro" | "jsonschema" | "protobuf" => {
                            return invalid(format!(
                                "format {text} needs the schema registry; this proxy reads \
                                 binary and json"
                            ))
                        }
                        _ => return invalid(format!("unknown format {text}")),
                    }
                }
                "auto.offset.reset" => {
                    reset = match text.as_str() {
                        "earliest" | "smallest" => Reset::Earliest,
                        "latest" | "largest" => Reset::Latest,
                        "none" => Reset::None,
                        _ => return invalid(format!("auto.offset.reset={text}")),
                    }
                }
                "auto.commit.enable" => {
                    auto_commit = match text.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return invalid(format!("auto.commit.enable={text}")),
                    }
                }
                "fetch.min.bytes" => match text.parse::<i32>() {
                    Ok(n) if n >= -1 => min_bytes = n.max(1),
                    _ => return invalid(format!("fetch.min.bytes={text}")),
                },
                "consumer.request.timeout.ms" => match text.parse::<u64>() {
                    Ok(ms) => read_timeout = Duration::from_millis(ms).min(READ_TIMEOUT_MAX),
                    _ => return invalid(format!("consumer.request.timeout.ms={text}")),
                },
                other => return invalid(format!("unknown setting {other}")),
            }
        }
        let name = name.unwrap_or_else(|| format!("rest-consumer-{}", Uuid::new_v4()));
        if name.is_empty() || name.contains('/') {
            return invalid(format!("instance name {name:?}"));
        }
        let key = (group.to_string(), name.clone());
        if self.instances.borrow().contains_key(&key) {
            return error(
                409,
                40902,
                "Consumer with specified consumer ID already exists in the specified consumer \
                 group.",
            );
        }
        if self.instances.borrow().len() >= self.keys.max_instances {
            return error(
                429,
                42901,
                format!(
                    "This proxy holds {} consumer instances \
                     (millrace.rest.consumer.max.instances); delete one first.",
                    self.keys.max_instances
                ),
            );
        }
        let now = Instant::now();
        let inst = Rc::new(Instance {
            group: group.to_string(),
            name: name.clone(),
            member_id: base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Uuid::new_v4().as_bytes()),
            format,
            reset,
            auto_commit,
            min_bytes,
            read_timeout,
            state: RefCell::new(State {
                subscription: Subscription::Nothing,
                session: 0,
                epoch: 0,
                target: Vec::new(),
                owned: BTreeSet::new(),
                report: false,
                positions: HashMap::new(),
                names: HashMap::new(),
                sent_topics: None,
                matched: None,
                interval: Duration::from_secs(5),
                last_auto_commit: now,
                failure: None,
            }),
            turn: Turn::new(),
            used: Cell::new(now),
            closed: Cell::new(false),
            wake: Notify::new(),
        });
        self.instances.borrow_mut().insert(key, inst);
        let base_uri = format!(
            "http://{host}/consumers/{}/instances/{}",
            super::percent_encode(group),
            super::percent_encode(&name)
        );
        ok(V2, json!({"instance_id": name, "base_uri": base_uri}))
    }

    /// `DELETE /consumers/{group}/instances/{name}`.
    pub async fn delete(&self, group: &str, name: &str) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        self.instances
            .borrow_mut()
            .remove(&(group.to_string(), name.to_string()));
        let _turn = inst.turn.lock().await;
        close(&self.client, &inst).await;
        no_content()
    }

    /// `POST .../subscription`: `{"topics": [...]}` or `{"topic_pattern": "..."}`.
    pub async fn subscribe(self: &Rc<Self>, group: &str, name: &str, body: &[u8]) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        let doc = match parse_json(body) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let subscription = match (doc.get("topics"), doc.get("topic_pattern")) {
            (Some(Value::Array(list)), None | Some(Value::Null)) if !list.is_empty() => {
                let mut topics = Vec::new();
                for t in list {
                    match t.as_str() {
                        Some(t) if !t.is_empty() => topics.push(t.to_string()),
                        _ => return error(422, 422, format!("A topic name must be a string: {t}")),
                    }
                }
                topics.sort();
                topics.dedup();
                Subscription::Topics(topics)
            }
            (None | Some(Value::Null), Some(Value::String(p))) => {
                match regex::Regex::new(&format!("^(?:{p})$")) {
                    Ok(re) => Subscription::Pattern(re),
                    Err(e) => return error(422, 422, format!("Invalid topic_pattern: {e}")),
                }
            }
            _ => {
                return error(
                    422,
                    422,
                    "The body needs a non-empty \"topics\" array or a \"topic_pattern\", not both.",
                )
            }
        };
        let _turn = inst.turn.lock().await;
        {
            let mut st = inst.state.borrow_mut();
            if matches!(st.subscription, Subscription::Manual) {
                return illegal_state(
                    "Subscription to topics, partitions and pattern are mutually exclusive",
                );
            }
            let running = st.subscription.is_group();
            st.subscription = subscription;
            st.matched = None;
            if running {
                // The task sends the new subscription with its next heartbeat, now.
                inst.wake.notify_all();
                return no_content();
            }
            st.session += 1;
            st.epoch = 0;
        }
        let client = self.client.clone();
        let consumers = self.clone();
        let inst2 = inst.clone();
        millrace_shard::spawn_detached(async move { membership(consumers, client, inst2).await });
        no_content()
    }

    /// `GET .../subscription`.
    pub fn subscription(&self, group: &str, name: &str) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        let st = inst.state.borrow();
        let topics: Vec<String> = match &st.subscription {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(_) => st
                .matched
                .as_ref()
                .map(|(_, m)| m.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        ok(V2, json!({"topics": topics}))
    }

    /// `DELETE .../subscription`: leaves the group; the instance stays.
    pub async fn unsubscribe(&self, group: &str, name: &str) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        let _turn = inst.turn.lock().await;
        give_up(&self.client, &inst).await;
        no_content()
    }

    /// `POST .../assignments`: reads these partitions without joining the group.
    pub async fn assign(&self, group: &str, name: &str, body: &[u8]) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        let doc = match parse_json(body) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let parts = match partitions_of(&doc, "partitions") {
            Ok(p) => p,
            Err(e) => return e,
        };
        let _turn = inst.turn.lock().await;
        let mut st = inst.state.borrow_mut();
        if st.subscription.is_group() {
            return illegal_state(
                "Subscription to topics, partitions and pattern are mutually exclusive",
            );
        }
        let owned: BTreeSet<Tp> = parts.iter().cloned().collect();
        st.positions.retain(|tp, _| owned.contains(tp));
        st.owned = owned;
        st.subscription = if parts.is_empty() {
            Subscription::Nothing
        } else {
            Subscription::Manual
        };
        no_content()
    }

    /// `GET .../assignments`.
    pub fn assignments(&self, group: &str, name: &str) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        let st = inst.state.borrow();
        let parts: Vec<Value> = st.owned.iter().map(tp_json).collect();
        ok(V2, json!({"partitions": parts}))
    }

    /// `POST .../offsets`: commits `offset + 1` for each offset given, or every position when
    /// the body is empty.
    pub async fn commit(&self, group: &str, name: &str, body: &[u8]) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        let given = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            let doc = match parse_json(body) {
                Ok(d) => d,
                Err(e) => return e,
            };
            match offsets_of(&doc, "offsets") {
                Ok(o) => Some(o),
                Err(e) => return e,
            }
        };
        let _turn = inst.turn.lock().await;
        let offsets: Vec<CommitOffset> = match given {
            Some(list) => list
                .into_iter()
                .map(|(tp, o, m)| (tp, o.saturating_add(1), m))
                .collect(),
            None => positions_to_commit(&inst, None),
        };
        if offsets.is_empty() {
            return ok(V2, json!({}));
        }
        match commit_offsets(&self.client, &inst, &offsets).await {
            Ok(()) => ok(V2, json!({})),
            Err(e) => kafka_error(&e),
        }
    }

    /// `GET .../offsets` with `{"partitions": [...]}`: the group's committed offsets.
    pub async fn committed(&self, group: &str, name: &str, body: &[u8]) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        let doc = match parse_json(body) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let parts = match partitions_of(&doc, "partitions") {
            Ok(p) => p,
            Err(e) => return e,
        };
        if parts.is_empty() {
            return ok(V2, json!({"offsets": []}));
        }
        match self.client.committed(&inst.group, &parts).await {
            Ok(list) => {
                let offsets: Vec<Value> = list
                    .into_iter()
                    .filter(|(_, o, _)| *o >= 0)
                    .map(|((t, p), o, m)| {
                        json!({"topic": t, "partition": p, "offset": o,
                               "metadata": m.unwrap_or_default()})
                    })
                    .collect();
                ok(V2, json!({"offsets": offsets}))
            }
            Err(e) => kafka_error(&e),
        }
    }

    /// `POST .../positions` (offsets), `.../positions/beginning` and `.../positions/end`
    /// (partitions): where the next records request reads from.
    pub async fn seek(&self, group: &str, name: &str, to: Seek, body: &[u8]) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        let doc = match parse_json(body) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let wanted: Vec<(Tp, Option<i64>)> = match to {
            Seek::Offsets => match offsets_of(&doc, "offsets") {
                Ok(list) => list.into_iter().map(|(tp, o, _)| (tp, Some(o))).collect(),
                Err(e) => return e,
            },
            Seek::Beginning | Seek::End => match partitions_of(&doc, "partitions") {
                Ok(list) => list.into_iter().map(|tp| (tp, None)).collect(),
                Err(e) => return e,
            },
        };
        let _turn = inst.turn.lock().await;
        if let Some((tp, _)) = wanted
            .iter()
            .find(|(tp, _)| !inst.state.borrow().owned.contains(tp))
        {
            return illegal_state(format!(
                "No current assignment for partition {}-{}",
                tp.0, tp.1
            ));
        }
        let looked_up: Vec<(Tp, i64)> = match to {
            Seek::Offsets => wanted
                .into_iter()
                .map(|(tp, o)| (tp, o.unwrap_or(0)))
                .collect(),
            Seek::Beginning | Seek::End => {
                let tps: Vec<Tp> = wanted.into_iter().map(|(tp, _)| tp).collect();
                let ts = if to == Seek::Beginning { -2 } else { -1 };
                match self.client.list_offsets(&tps, ts).await {
                    Ok(list) => list,
                    Err(e) => return kafka_error(&e),
                }
            }
        };
        let mut st = inst.state.borrow_mut();
        for (tp, o) in looked_up {
            if st.owned.contains(&tp) {
                st.positions.insert(tp, o);
            }
        }
        no_content()
    }

    /// `GET .../records?timeout=&max_bytes=`.
    pub async fn records(&self, group: &str, name: &str, query: &str, accept: &str) -> Response {
        let Some(inst) = self.instance(group, name) else {
            return not_found();
        };
        if !accepts(accept, inst.format) {
            return error(
                406,
                40601,
                "The requested embedded data format does not match the deserializer for this \
                 consumer instance",
            );
        }
        let mut timeout = inst.read_timeout;
        let mut max_bytes = self.keys.request_max_bytes;
        for (k, v) in super::query_pairs(query) {
            match k.as_str() {
                "timeout" => match v.parse::<u64>() {
                    Ok(ms) => timeout = Duration::from_millis(ms).min(READ_TIMEOUT_MAX),
                    Err(_) => return error(400, 400, format!("Bad timeout {v:?}")),
                },
                "max_bytes" => match v.parse::<i64>() {
                    Ok(n) if n > 0 => max_bytes = max_bytes.min(n.min(i32::MAX as i64) as i32),
                    _ => return error(400, 400, format!("Bad max_bytes {v:?}")),
                },
                _ => {}
            }
        }
        let _turn = inst.turn.lock().await;
        let deadline = Instant::now() + timeout;
        let out = read(&self.client, &inst, deadline, max_bytes).await;
        inst.used.set(Instant::now());
        if inst.auto_commit {
            let due = inst.state.borrow().last_auto_commit.elapsed() >= AUTO_COMMIT_INTERVAL;
            if due {
                inst.state.borrow_mut().last_auto_commit = Instant::now();
                let offsets = positions_to_commit(&inst, None);
                if !offsets.is_empty() {
                    if let Err(e) = commit_offsets(&self.client, &inst, &offsets).await {
                        tracing::debug!(group = %inst.group, error = %e, "REST consumer auto-commit failed");
                    }
                }
            }
        }
        out
    }
}

/// Where a seek goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    Offsets,
    Beginning,
    End,
}

/// Whether an `Accept` header takes `format` (absent or a wildcard takes the instance's own).
fn accepts(accept: &str, format: Format) -> bool {
    if accept.is_empty() {
        return true;
    }
    accept.split(',').any(|a| {
        let a = a.split(';').next().unwrap_or("").trim();
        a == "*/*"
            || a == "application/*"
            || a == format.content_type()
            || (a == "application/json" || a == V2) && format == Format::Json
    })
}

/// The positions of `only` (or of every partition held) as offsets to commit.
fn positions_to_commit(inst: &Instance, only: Option<&BTreeSet<Tp>>) -> Vec<CommitOffset> {
    let st = inst.state.borrow();
    st.positions
        .iter()
        .filter(|(tp, _)| st.owned.contains(*tp) && only.is_none_or(|o| o.contains(*tp)))
        .map(|(tp, o)| (tp.clone(), *o, None))
        .collect()
}

/// Commits as the member while the instance is one, else as an admin.
async fn commit_offsets(
    client: &KafkaClient,
    inst: &Instance,
    offsets: &[CommitOffset],
) -> Result<(), ClientError> {
    let member = {
        let st = inst.state.borrow();
        st.subscription.is_group().then_some(st.epoch)
    };
    let codes = match member {
        Some(epoch) => {
            client
                .commit_as(&inst.group, Some((&inst.member_id, epoch)), offsets)
                .await?
        }
        None => client.commit_as(&inst.group, None, offsets).await?,
    };
    match codes.iter().find(|(_, _, c)| *c != code::NONE) {
        Some((t, p, c)) => Err(ClientError::Kafka(*c, format!("committing {t}-{p}"))),
        None => Ok(()),
    }
}

/// Leaves the group (committing first when auto-commit is on) and forgets what it held.
async fn give_up(client: &KafkaClient, inst: &Instance) {
    let (was_member, epoch) = {
        let st = inst.state.borrow();
        (st.subscription.is_group(), st.epoch)
    };
    if inst.auto_commit {
        let offsets = positions_to_commit(inst, None);
        if !offsets.is_empty() {
            if let Err(e) = commit_offsets(client, inst, &offsets).await {
                tracing::debug!(group = %inst.group, error = %e, "REST consumer commit on leave failed");
            }
        }
    }
    {
        let mut st = inst.state.borrow_mut();
        st.subscription = Subscription::Nothing;
        st.session += 1;
        st.owned.clear();
        st.positions.clear();
        st.target.clear();
        st.report = false;
        st.sent_topics = None;
        st.matched = None;
        st.epoch = 0;
        st.failure = None;
    }
    inst.wake.notify_all();
    if was_member && epoch > 0 {
        let leave = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(inst.group.clone())))
            .with_member_id(StrBytes::from_string(inst.member_id.clone()))
            .with_member_epoch(-1);
        if let Err(e) = client.heartbeat(&inst.group, &leave).await {
            tracing::debug!(group = %inst.group, error = %e, "REST consumer leave not answered");
        }
    }
}

/// Ends an instance: leaves its group, stops its task.
async fn close(client: &KafkaClient, inst: &Instance) {
    if inst.closed.replace(true) {
        return;
    }
    give_up(client, inst).await;
}

/// The heartbeat task of one subscription of `inst` (it ends when the subscription does).
async fn membership(consumers: Rc<Consumers>, client: Rc<KafkaClient>, inst: Rc<Instance>) {
    let session = inst.state.borrow().session;
    let live = |inst: &Instance| !inst.closed.get() && inst.state.borrow().session == session;
    while live(&inst) {
        if inst.used.get().elapsed() >= consumers.idle_timeout() {
            consumers
                .instances
                .borrow_mut()
                .remove(&(inst.group.clone(), inst.name.clone()));
            tracing::info!(group = %inst.group, instance = %inst.name, "REST consumer instance expired");
            let _turn = inst.turn.lock().await;
            close(&client, &inst).await;
            return;
        }
        let seen = inst.wake.generation();
        let topics = match subscribed_topics(&client, &inst).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(group = %inst.group, error = %e, "REST consumer: topic list");
                millrace_shard::time::sleep(HEARTBEAT_BACKOFF).await;
                continue;
            }
        };
        if !live(&inst) {
            return;
        }
        let req = {
            let st = inst.state.borrow();
            let join = st.epoch == 0;
            let names_changed = st.sent_topics.as_ref() != Some(&topics);
            let owned = owned_by_id(&st);
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(inst.group.clone())))
                .with_member_id(StrBytes::from_string(inst.member_id.clone()))
                .with_member_epoch(st.epoch)
                .with_rebalance_timeout_ms(if join { REBALANCE_TIMEOUT_MS } else { -1 })
                .with_subscribed_topic_names((join || names_changed).then(|| {
                    topics
                        .iter()
                        .map(|t| TopicName(StrBytes::from_string(t.clone())))
                        .collect()
                }))
                .with_topic_partitions((join || st.report).then_some(owned))
        };
        let sent_names = req.subscribed_topic_names.is_some();
        let sent_owned = req.topic_partitions.is_some();
        let answer = client.heartbeat(&inst.group, &req).await;
        if !live(&inst) {
            return;
        }
        let mut pause = HEARTBEAT_BACKOFF;
        match answer {
            Err(e) => {
                tracing::debug!(group = %inst.group, error = %e, "REST consumer heartbeat failed");
            }
            Ok(resp) => match resp.error_code {
                code::NONE => {
                    let assignment = {
                        let mut st = inst.state.borrow_mut();
                        st.epoch = resp.member_epoch;
                        st.failure = None;
                        if resp.heartbeat_interval_ms > 0 {
                            st.interval = Duration::from_millis(resp.heartbeat_interval_ms as u64);
                        }
                        if sent_names {
                            st.sent_topics = Some(topics.clone());
                        }
                        if sent_owned {
                            st.report = false;
                        }
                        pause = st.interval;
                        resp.assignment
                    };
                    if let Some(a) = assignment {
                        inst.state.borrow_mut().target = a
                            .topic_partitions
                            .iter()
                            .map(|t| (t.topic_id, t.partitions.clone()))
                            .collect();
                    }
                    reconcile(&client, &inst).await;
                    if inst.state.borrow().report {
                        pause = Duration::ZERO;
                    }
                }
                code::FENCED_MEMBER_EPOCH | code::UNKNOWN_MEMBER_ID => {
                    // Its partitions may already be someone else's: drop them uncommitted and
                    // join again.
                    let mut st = inst.state.borrow_mut();
                    st.epoch = 0;
                    st.owned.clear();
                    st.positions.clear();
                    st.target.clear();
                    st.sent_topics = None;
                    pause = Duration::ZERO;
                }
                c if super::client::coordinator_moved(c) => {}
                c => {
                    let message = resp
                        .error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    tracing::info!(group = %inst.group, error = code::name(c), %message, "REST consumer heartbeat refused");
                    inst.state.borrow_mut().failure = Some(format!("{} {message}", code::name(c)));
                    pause = Duration::from_secs(5);
                }
            },
        }
        if pause > Duration::ZERO {
            let _ = millrace_shard::time::timeout(pause, inst.wake.changed_since(seen)).await;
        }
    }
}

/// The topic names the subscription stands for now (a pattern matched again every few seconds).
async fn subscribed_topics(
    client: &KafkaClient,
    inst: &Instance,
) -> Result<Vec<String>, ClientError> {
    let (pattern, cached) = {
        let st = inst.state.borrow();
        match &st.subscription {
            Subscription::Topics(t) => return Ok(t.clone()),
            Subscription::Pattern(re) => (
                re.clone(),
                st.matched
                    .as_ref()
                    .filter(|(at, _)| at.elapsed() < PATTERN_REFRESH)
                    .map(|(_, m)| m.clone()),
            ),
            _ => return Ok(Vec::new()),
        }
    };
    if let Some(m) = cached {
        return Ok(m);
    }
    let meta = client.metadata(None, false).await?;
    let matched: Vec<String> = meta
        .topics
        .iter()
        .filter(|(name, info)| !info.internal && pattern.is_match(name))
        .map(|(name, _)| name.clone())
        .collect();
    let mut st = inst.state.borrow_mut();
    for (name, info) in &meta.topics {
        st.names.insert(info.id, name.clone());
    }
    st.matched = Some((Instant::now(), matched.clone()));
    Ok(matched)
}

/// The partitions held, by topic id, as a heartbeat reports them.
fn owned_by_id(st: &State) -> Vec<TopicPartitions> {
    let ids: HashMap<&String, Uuid> = st.names.iter().map(|(id, n)| (n, *id)).collect();
    let mut by: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in &st.owned {
        if let Some(id) = ids.get(t) {
            by.entry(*id).or_default().push(*p);
        }
    }
    by.into_iter()
        .map(|(id, ps)| {
            TopicPartitions::default()
                .with_topic_id(id)
                .with_partitions(ps)
        })
        .collect()
}

/// Moves what the instance holds to the coordinator's assignment: partitions taken away are
/// given up (their positions committed first with auto-commit), new ones taken.
async fn reconcile(client: &KafkaClient, inst: &Instance) {
    let unknown = {
        let st = inst.state.borrow();
        st.target.iter().any(|(id, _)| !st.names.contains_key(id))
    };
    if unknown {
        match client.metadata(None, false).await {
            Ok(meta) => {
                let mut st = inst.state.borrow_mut();
                for (name, info) in &meta.topics {
                    st.names.insert(info.id, name.clone());
                }
            }
            Err(e) => tracing::debug!(group = %inst.group, error = %e, "REST consumer: topic ids"),
        }
    }
    let (wanted, revoked) = {
        let st = inst.state.borrow();
        let wanted: BTreeSet<Tp> = st
            .target
            .iter()
            .filter_map(|(id, ps)| Some((st.names.get(id)?, ps)))
            .flat_map(|(name, ps)| ps.iter().map(move |p| (name.clone(), *p)))
            .collect();
        let revoked: BTreeSet<Tp> = st.owned.difference(&wanted).cloned().collect();
        (wanted, revoked)
    };
    if !revoked.is_empty() && inst.auto_commit {
        let offsets = positions_to_commit(inst, Some(&revoked));
        if !offsets.is_empty() {
            if let Err(e) = commit_offsets(client, inst, &offsets).await {
                tracing::debug!(group = %inst.group, error = %e, "REST consumer commit on revoke failed");
            }
        }
    }
    let mut st = inst.state.borrow_mut();
    if st.owned != wanted {
        st.positions.retain(|tp, _| wanted.contains(tp));
        st.owned = wanted;
        st.report = true;
    }
}

/// Positions for held partitions that have none: the committed offset, else the reset.
async fn initialise(client: &KafkaClient, inst: &Instance) -> Result<(), Response> {
    let missing: Vec<Tp> = {
        let st = inst.state.borrow();
        st.owned
            .iter()
            .filter(|tp| !st.positions.contains_key(*tp))
            .cloned()
            .collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    let committed = client
        .committed(&inst.group, &missing)
        .await
        .map_err(|e| kafka_error(&e))?;
    let mut found: HashMap<Tp, i64> = committed
        .into_iter()
        .filter(|(_, o, _)| *o >= 0)
        .map(|(tp, o, _)| (tp, o))
        .collect();
    let unset: Vec<Tp> = missing
        .iter()
        .filter(|tp| !found.contains_key(*tp))
        .cloned()
        .collect();
    if !unset.is_empty() {
        found.extend(reset_positions(client, inst, &unset).await?);
    }
    let mut st = inst.state.borrow_mut();
    for (tp, o) in found {
        if st.owned.contains(&tp) {
            st.positions.entry(tp).or_insert(o);
        }
    }
    Ok(())
}

/// Where `auto.offset.reset` puts `tps`.
async fn reset_positions(
    client: &KafkaClient,
    inst: &Instance,
    tps: &[Tp],
) -> Result<Vec<(Tp, i64)>, Response> {
    let ts = match inst.reset {
        Reset::Earliest => -2,
        Reset::Latest => -1,
        Reset::None => {
            let names: Vec<String> = tps.iter().map(|(t, p)| format!("{t}-{p}")).collect();
            return Err(illegal_state(format!(
                "Undefined offset with no reset policy for partitions: {}",
                names.join(", ")
            )));
        }
    };
    client
        .list_offsets(tps, ts)
        .await
        .map_err(|e| kafka_error(&e))
}

/// One records request: waits until `deadline` for partitions and data, returns what was read.
async fn read(
    client: &Rc<KafkaClient>,
    inst: &Instance,
    deadline: Instant,
    max_bytes: i32,
) -> Response {
    {
        let st = inst.state.borrow();
        if let Some(f) = &st.failure {
            return error(
                500,
                50002,
                format!("Kafka error: the group refused this member: {f}"),
            );
        }
        if matches!(st.subscription, Subscription::Nothing) {
            return illegal_state(
                "Consumer is not subscribed to any topics or assigned any partitions",
            );
        }
    }
    loop {
        let now = Instant::now();
        if inst.state.borrow().owned.is_empty() {
            // Still joining: wait for partitions, as Kafka's poll does.
            if now >= deadline {
                return ok(inst.format.content_type(), json!([]));
            }
            let seen = inst.wake.generation();
            let wait = deadline
                .saturating_duration_since(now)
                .min(Duration::from_millis(50));
            let _ = millrace_shard::time::timeout(wait, inst.wake.changed_since(seen)).await;
            continue;
        }
        if let Err(e) = initialise(client, inst).await {
            return e;
        }
        let positions: Vec<(Tp, i64)> = {
            let st = inst.state.borrow();
            st.owned
                .iter()
                .filter_map(|tp| Some((tp.clone(), *st.positions.get(tp)?)))
                .collect()
        };
        let mut answers = match client
            .fetch_many(&positions, max_bytes, inst.min_bytes, Duration::ZERO)
            .await
        {
            Ok(a) => a,
            Err(e) => return kafka_error(&e),
        };
        let empty = answers
            .iter()
            .all(|(_, r)| r.as_ref().map(|f| f.records.is_empty()).unwrap_or(true));
        let now = Instant::now();
        if empty && now < deadline {
            answers = match client
                .fetch_many(
                    &positions,
                    max_bytes,
                    inst.min_bytes,
                    deadline.saturating_duration_since(now),
                )
                .await
            {
                Ok(a) => a,
                Err(e) => return kafka_error(&e),
            };
        }
        let mut out_of_range = Vec::new();
        let mut batch: Vec<(Tp, Vec<Record>)> = Vec::new();
        for (tp, answer) in answers {
            match answer {
                Ok(f) => batch.push((tp, f.records)),
                Err(ClientError::Kafka(code::OFFSET_OUT_OF_RANGE, _)) => out_of_range.push(tp),
                Err(e) => {
                    tracing::debug!(group = %inst.group, topic = %tp.0, partition = tp.1, error = %e, "REST consumer fetch");
                }
            }
        }
        if !out_of_range.is_empty() {
            let reset = match reset_positions(client, inst, &out_of_range).await {
                Ok(r) => r,
                Err(e) => return e,
            };
            let mut st = inst.state.borrow_mut();
            for (tp, o) in reset {
                if st.owned.contains(&tp) {
                    st.positions.insert(tp, o);
                }
            }
        }
        let rendered = match render(inst, &positions, batch, max_bytes) {
            Ok(r) => r,
            Err(e) => return e,
        };
        if !rendered.is_empty() || Instant::now() >= deadline {
            return ok(inst.format.content_type(), Value::Array(rendered));
        }
    }
}

/// The records as the instance's format shows them, up to `max_bytes` of keys and values
/// (at least one record), moving each partition's position past what is returned; records of
/// partitions no longer held, or whose position moved meanwhile, are left out.
fn render(
    inst: &Instance,
    asked: &[(Tp, i64)],
    batch: Vec<(Tp, Vec<Record>)>,
    max_bytes: i32,
) -> Result<Vec<Value>, Response> {
    let mut st = inst.state.borrow_mut();
    let mut out = Vec::new();
    let mut bytes: usize = 0;
    let b64 = base64::engine::general_purpose::STANDARD;
    'partitions: for (tp, records) in batch {
        let from = asked.iter().find(|(a, _)| *a == tp).map(|(_, o)| *o);
        if !st.owned.contains(&tp) || st.positions.get(&tp).copied() != from {
            continue;
        }
        for r in records {
            let size =
                r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len());
            if !out.is_empty() && bytes + size > max_bytes as usize {
                break 'partitions;
            }
            let (key, value) = match inst.format {
                Format::Binary => (
                    r.key
                        .as_ref()
                        .map_or(Value::Null, |k| Value::String(b64.encode(k))),
                    r.value
                        .as_ref()
                        .map_or(Value::Null, |v| Value::String(b64.encode(v))),
                ),
                Format::Json => {
                    let parse = |b: &Option<bytes::Bytes>, what: &str| -> Result<Value, Response> {
                        match b {
                            None => Ok(Value::Null),
                            Some(b) => serde_json::from_slice(b).map_err(|e| {
                                error(
                                    500,
                                    50002,
                                    format!(
                                        "Kafka error: the {what} of {}-{} offset {} is not JSON: {e}",
                                        tp.0, tp.1, r.offset
                                    ),
                                )
                            }),
                        }
                    };
                    let key = parse(&r.key, "key");
                    let value = parse(&r.value, "value");
                    match (key, value) {
                        (Ok(k), Ok(v)) => (k, v),
                        (Err(e), _) | (_, Err(e)) => {
                            if out.is_empty() {
                                return Err(e);
                            }
                            break 'partitions;
                        }
                    }
                }
            };
            let mut rec = Map::new();
            rec.insert("topic".into(), Value::String(tp.0.clone()));
            rec.insert("key".into(), key);
            rec.insert("value".into(), value);
            rec.insert("partition".into(), json!(tp.1));
            rec.insert("offset".into(), json!(r.offset));
            out.push(Value::Object(rec));
            bytes += size;
            st.positions.insert(tp.clone(), r.offset + 1);
        }
    }
    Ok(out)
}
