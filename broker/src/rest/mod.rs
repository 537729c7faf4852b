//! The REST proxy on `millrace.rest.listen` (default 127.0.0.1:8082): Confluent REST Proxy v2
//! produce and topic metadata, Redpanda's v2 partition read, v3 produce, and the simple
//! `/api/v1/...` forms, answered with Confluent's content types and error bodies
//! (`{"error_code": 40401, "message": ...}`).
//!
//! It is a Kafka client of the cluster (`client.rs`), so every write is an ordinary acks=all
//! idempotent produce and every read an ordinary fetch. Request bodies are bounded by
//! `socket.request.max.bytes`, as Kafka requests are.

pub mod client;
mod consumers;

use crate::http::{reply, Request, Response};
use base64::Engine;
use bytes::Bytes;
use client::{ClientError, Delivery, KafkaClient, OutRecord};
use millrace_wire::codes as code;
use serde_json::{json, Map, Value};
use std::rc::Rc;

/// v2's content type for answers without embedded data.
const V2: &str = "application/vnd.kafka.v2+json";
/// Plain JSON (v3 and `/api/v1`).
const JSON: &str = "application/json";
/// The most records one `/api/v1` read returns.
const READ_LIMIT_MAX: usize = 10_000;

/// The proxy's state on its shard.
pub struct Rest {
    client: Rc<KafkaClient>,
    consumers: Rc<consumers::Consumers>,
    body_max: usize,
}

impl Rest {
    /// A proxy for the cluster at `bootstrap`, refusing bodies past `body_max` bytes, with
    /// consumer instances bounded by `keys`.
    pub fn new(
        bootstrap: Vec<(String, u16)>,
        client_id: String,
        body_max: usize,
        keys: crate::config::RestConsumerKeys,
        route: crate::dial::Route,
    ) -> Self {
        let client = Rc::new(KafkaClient::new(bootstrap, client_id, route));
        Rest {
            consumers: Rc::new(consumers::Consumers::new(client.clone(), keys)),
            client,
            body_max,
        }
    }
}

/// An error answer: Confluent's body with the HTTP status its code starts with.
fn error(status: u16, error_code: u32, message: impl Into<String>) -> Response {
    let body = json!({"error_code": error_code, "message": message.into()});
    reply(status, JSON, body.to_string())
}

fn ok(content_type: &str, body: Value) -> Response {
    reply(200, content_type, body.to_string())
}

fn client_error(e: ClientError, topic: &str) -> Response {
    match e {
        ClientError::UnknownTopic => error(404, 40401, format!("Topic {topic} not found.")),
        ClientError::UnknownPartition => error(404, 40402, "Partition not found."),
        ClientError::Kafka(code::OFFSET_OUT_OF_RANGE, _) => error(
            422,
            42202,
            "Request includes an invalid offset or partition.",
        ),
        ClientError::Kafka(c, m) if c == code::UNKNOWN_TOPIC_OR_PARTITION => {
            error(404, 40402, format!("Partition not found: {m}"))
        }
        ClientError::Kafka(c, m) => {
            error(500, 50002, format!("Kafka error {}: {m}", code::name(c)))
        }
        ClientError::Unreachable(m) => error(500, 50002, format!("Kafka error: {m}")),
    }
}

/// Answers one request.
pub async fn handle(rest: Rc<Rest>, req: Request) -> Response {
    let method = req.method().clone();
    let path = path_segments(&req);
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = header(&req, hyper::header::CONTENT_TYPE);
    let accept = header(&req, hyper::header::ACCEPT);
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let get = method == hyper::Method::GET;
    let post = method == hyper::Method::POST;
    match segments.as_slice() {
        ["topics"] if get => list_topics(&rest).await,
        ["topics", topic] if get => describe_topic(&rest, topic).await,
        ["topics", topic] if post => {
            let body = match body(&rest, req).await {
                Ok(b) => b,
                Err(e) => return e,
            };
            produce_v2(&rest, topic, None, &content_type, &body).await
        }
        ["topics", topic, "partitions"] if get => partitions(&rest, topic, None).await,
        ["topics", topic, "partitions", p] if get => match p.parse::<i32>() {
            Ok(p) => partitions(&rest, topic, Some(p)).await,
            Err(_) => error(404, 40402, "Partition not found."),
        },
        ["topics", topic, "partitions", p] if post => {
            let Ok(p) = p.parse::<i32>() else {
                return error(404, 40402, "Partition not found.");
            };
            let body = match body(&rest, req).await {
                Ok(b) => b,
                Err(e) => return e,
            };
            produce_v2(&rest, topic, Some(p), &content_type, &body).await
        }
        ["topics", topic, "partitions", p, "records"] if get => match p.parse::<i32>() {
            Ok(p) => read_v2(&rest, topic, p, &query, &accept).await,
            Err(_) => error(404, 40402, "Partition not found."),
        },
        ["v3", "clusters"] if get => clusters(&rest).await,
        ["v3", "clusters", cluster, "topics", topic, "records"] if post => {
            let body = match body(&rest, req).await {
                Ok(b) => b,
                Err(e) => return e,
            };
            produce_v3(&rest, cluster, topic, &body).await
        }
        ["api", "v1", "topics", topic, "messages"] if post => {
            let body = match body(&rest, req).await {
                Ok(b) => b,
                Err(e) => return e,
            };
            produce_simple(&rest, topic, &body).await
        }
        ["api", "v1", "topics", topic, "partitions", p, "messages"] if get => {
            match p.parse::<i32>() {
                Ok(p) => read_simple(&rest, topic, p, &query).await,
                Err(_) => error(404, 40402, "Partition not found."),
            }
        }
        ["consumers", group] if post => {
            let host = header(&req, hyper::header::HOST);
            let body = match body(&rest, req).await {
                Ok(b) => b,
                Err(e) => return e,
            };
            let host = if host.is_empty() {
                "localhost".to_string()
            } else {
                host
            };
            rest.consumers.create(group, &body, &host)
        }
        ["consumers", group, "instances", name] if method == hyper::Method::DELETE => {
            rest.consumers.delete(group, name).await
        }
        ["consumers", group, "instances", name, "subscription"] if get => {
            rest.consumers.subscription(group, name)
        }
        ["consumers", group, "instances", name, "subscription"]
            if method == hyper::Method::DELETE =>
        {
            rest.consumers.unsubscribe(group, name).await
        }
        ["consumers", group, "instances", name, "assignments"] if get => {
            rest.consumers.assignments(group, name)
        }
        ["consumers", group, "instances", name, "records"] if get => {
            rest.consumers.records(group, name, &query, &accept).await
        }
        ["consumers", group, "instances", name, what @ ..] if post || get => {
            let body = match body(&rest, req).await {
                Ok(b) => b,
                Err(e) => return e,
            };
            let c = &rest.consumers;
            match (what, post) {
                (["subscription"], true) => c.subscribe(group, name, &body).await,
                (["assignments"], true) => c.assign(group, name, &body).await,
                (["offsets"], true) => c.commit(group, name, &body).await,
                (["offsets"], false) => c.committed(group, name, &body).await,
                (["positions"], true) => c.seek(group, name, consumers::Seek::Offsets, &body).await,
                (["positions", "beginning"], true) => {
                    c.seek(group, name, consumers::Seek::Beginning, &body).await
                }
                (["positions", "end"], true) => {
                    c.seek(group, name, consumers::Seek::End, &body).await
                }
                _ if known_path(&segments) => {
                    error(405, 405, format!("HTTP 405 Method {method} Not Allowed"))
                }
                _ => error(404, 404, "HTTP 404 Not Found"),
            }
        }
        ["api", "v1", "consumer-groups", group, "offsets"] if post => {
            let body = match body(&rest, req).await {
                Ok(b) => b,
                Err(e) => return e,
            };
            commit_simple(&rest, group, &body).await
        }
        _ if known_path(&segments) => {
            error(405, 405, format!("HTTP 405 Method {method} Not Allowed"))
        }
        _ => error(404, 404, "HTTP 404 Not Found"),
    }
}

/// Paths some other method serves (405 rather than 404).
fn known_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["topics"]
            | ["topics", _]
            | ["topics", _, "partitions"]
            | ["topics", _, "partitions", _]
            | ["topics", _, "partitions", _, "records"]
            | ["v3", "clusters"]
            | ["v3", "clusters", _, "topics", _, "records"]
            | ["api", "v1", "topics", _, "messages"]
            | ["api", "v1", "topics", _, "partitions", _, "messages"]
            | ["api", "v1", "consumer-groups", _, "offsets"]
            | ["consumers", _]
            | ["consumers", _, "instances", _]
            | ["consumers", _, "instances", _, "subscription"]
            | ["consumers", _, "instances", _, "assignments"]
            | ["consumers", _, "instances", _, "records"]
            | ["consumers", _, "instances", _, "offsets"]
            | ["consumers", _, "instances", _, "positions"]
            | [
                "consumers",
                _,
                "instances",
                _,
                "positions",
                "beginning" | "end"
            ]
    )
}

fn header(req: &Request, name: hyper::header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

async fn body(rest: &Rest, req: Request) -> Result<Bytes, Response> {
    crate::http::read_body(req, rest.body_max)
        .await
        .map_err(|e| {
            error(
                413,
                413,
                format!(
                    "Request body larger than {} bytes, or cut short: {e}",
                    rest.body_max
                ),
            )
        })
}

fn parse_json(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| error(400, 400, format!("Bad Request: {e}")))
}

/// The non-empty array `field` of the JSON object in `body` (of `items`, for the message).
fn json_list(body: &[u8], field: &str, items: &str) -> Result<Vec<Value>, Response> {
    let doc = parse_json(body)?;
    match doc.get(field) {
        Some(Value::Array(list)) if !list.is_empty() => Ok(list.clone()),
        Some(Value::Array(_)) => Err(unprocessable(format!("The \"{field}\" array is empty."))),
        _ => Err(unprocessable(format!(
            "The body needs a \"{field}\" array of {items}."
        ))),
    }
}

/// An optional partition field: absent or null is None, an integer in range is Some, anything
/// else is Err.
fn optional_partition(v: Option<&Value>) -> Result<Option<i32>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .map(Some)
            .ok_or(()),
    }
}

fn unprocessable(message: impl Into<String>) -> Response {
    error(422, 422, message)
}

async fn list_topics(rest: &Rest) -> Response {
    match rest.client.metadata(None, false).await {
        Ok(meta) => {
            let names: Vec<&String> = meta
                .topics
                .iter()
                .filter(|(_, t)| !t.internal)
                .map(|(n, _)| n)
                .collect();
            ok(V2, json!(names))
        }
        Err(e) => client_error(e, ""),
    }
}

fn partition_json(p: &client::PartitionInfo) -> Value {
    let replicas: Vec<Value> = p
        .replicas
        .iter()
        .map(|b| json!({"broker": b, "leader": *b == p.leader, "in_sync": p.isr.contains(b)}))
        .collect();
    json!({"partition": p.id, "leader": p.leader, "replicas": replicas})
}

async fn describe_topic(rest: &Rest, topic: &str) -> Response {
    let meta = match rest.client.topic_metadata(topic, false).await {
        Ok(m) => m,
        Err(e) => return client_error(e, topic),
    };
    let Some(info) = meta.topics.get(topic) else {
        return client_error(ClientError::UnknownTopic, topic);
    };
    let configs = match rest.client.topic_configs(topic).await {
        Ok(c) => c,
        Err(e) => return client_error(e, topic),
    };
    let partitions: Vec<Value> = info.partitions.iter().map(partition_json).collect();
    ok(
        V2,
        json!({"name": topic, "configs": configs, "partitions": partitions}),
    )
}

async fn partitions(rest: &Rest, topic: &str, one: Option<i32>) -> Response {
    let meta = match rest.client.topic_metadata(topic, false).await {
        Ok(m) => m,
        Err(e) => return client_error(e, topic),
    };
    let Some(info) = meta.topics.get(topic) else {
        return client_error(ClientError::UnknownTopic, topic);
    };
    match one {
        None => ok(
            V2,
            Value::Array(info.partitions.iter().map(partition_json).collect()),
        ),
        Some(p) => match info.partitions.iter().find(|x| x.id == p) {
            Some(x) => ok(V2, partition_json(x)),
            None => client_error(ClientError::UnknownPartition, topic),
        },
    }
}

/// v2's embedded formats this proxy takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Embedded {
    Json,
    Binary,
}

/// The embedded format a v2 content type names; Err: the 415 answer.
fn embedded(content_type: &str) -> Result<Embedded, Response> {
    let base = content_type.split(';').next().unwrap_or("").trim();
    match base {
        "application/vnd.kafka.json.v2+json" => Ok(Embedded::Json),
        "application/vnd.kafka.binary.v2+json" => Ok(Embedded::Binary),
        "application/vnd.kafka.avro.v2+json"
        | "application/vnd.kafka.jsonschema.v2+json"
        | "application/vnd.kafka.protobuf.v2+json" => Err(error(
            415,
            415,
            "Schema-based embedded formats need the schema registry, which this proxy does not \
             serve yet; use json or binary.",
        )),
        other => Err(error(
            415,
            415,
            format!(
                "HTTP 415 Unsupported Media Type: {other:?}; produce with \
                 application/vnd.kafka.json.v2+json or application/vnd.kafka.binary.v2+json"
            ),
        )),
    }
}

/// A v2 record's key or value in `format`: JSON as its text, binary from base64; null stays
/// null.
fn embedded_bytes(
    v: Option<&Value>,
    format: Embedded,
    what: &str,
) -> Result<Option<Vec<u8>>, String> {
    match (v, format) {
        (None | Some(Value::Null), _) => Ok(None),
        (Some(v), Embedded::Json) => Ok(Some(v.to_string().into_bytes())),
        (Some(Value::String(s)), Embedded::Binary) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Some)
            .map_err(|e| format!("{what} is not valid base64: {e}")),
        (Some(_), Embedded::Binary) => Err(format!("{what} must be a base64 string")),
    }
}

async fn produce_v2(
    rest: &Rest,
    topic: &str,
    partition: Option<i32>,
    content_type: &str,
    body: &[u8],
) -> Response {
    let format = match embedded(content_type) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let records = match json_list(body, "records", "{key, value, partition}") {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let Some(obj) = r.as_object() else {
            return unprocessable(format!("records[{i}] is not an object"));
        };
        if let Some(bad) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "key" | "value" | "partition"))
        {
            return unprocessable(format!("Unrecognized field: {bad}"));
        }
        let Ok(record_partition) = optional_partition(obj.get("partition")) else {
            return unprocessable(format!("records[{i}].partition is not an integer"));
        };
        let key = embedded_bytes(obj.get("key"), format, &format!("records[{i}].key"));
        let value = embedded_bytes(obj.get("value"), format, &format!("records[{i}].value"));
        let (key, value) = match (key, value) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) => return unprocessable(e),
        };
        out.push(OutRecord {
            partition: partition.or(record_partition),
            key,
            value,
            headers: Vec::new(),
        });
    }
    match rest.client.produce(topic, out).await {
        Ok(deliveries) => {
            let offsets: Vec<Value> = deliveries.iter().map(v2_offset).collect();
            ok(
                V2,
                json!({"key_schema_id": null, "value_schema_id": null, "offsets": offsets}),
            )
        }
        Err(e) => client_error(e, topic),
    }
}

/// One record's entry in a v2 produce answer: error_code 1 for an error Kafka's producer does
/// not retry, 2 for one it would have (Confluent's convention).
fn v2_offset(d: &Delivery) -> Value {
    match d {
        Ok((p, offset, _)) => {
            json!({"partition": p, "offset": offset, "error_code": null, "error": null})
        }
        Err((p, c, m)) => {
            let retriable = matches!(
                *c,
                code::REQUEST_TIMED_OUT
                    | code::NOT_ENOUGH_REPLICAS
                    | code::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                    | code::NOT_LEADER_OR_FOLLOWER
                    | code::LEADER_NOT_AVAILABLE
            );
            json!({"partition": p, "offset": null, "error_code": if retriable { 2 } else { 1 },
                   "error": format!("{}: {m}", code::name(*c))})
        }
    }
}

/// `GET /topics/{t}/partitions/{p}/records?offset=&timeout=&max_bytes=` (Redpanda's): the
/// records from `offset`, key and value in the embedded format the Accept header names.
async fn read_v2(rest: &Rest, topic: &str, partition: i32, query: &str, accept: &str) -> Response {
    let format = if accept.contains("application/vnd.kafka.binary.v2+json") {
        Embedded::Binary
    } else if accept.contains("application/vnd.kafka.json.v2+json") {
        Embedded::Json
    } else {
        return error(
            406,
            406,
            "HTTP 406 Not Acceptable: ask for application/vnd.kafka.binary.v2+json or \
             application/vnd.kafka.json.v2+json",
        );
    };
    let q = query_pairs(query);
    let Some(offset) = q.get("offset").and_then(|v| v.parse::<i64>().ok()) else {
        return unprocessable("The offset query parameter (an integer) is required.");
    };
    let timeout = q
        .get("timeout")
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(1000);
    let max_bytes = q
        .get("max_bytes")
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(1 << 20)
        .clamp(1, 64 << 20);
    let fetched = match rest
        .client
        .fetch(
            topic,
            partition,
            offset,
            max_bytes,
            timeout.clamp(0, 30_000),
        )
        .await
    {
        Ok(f) => f,
        Err(e) => return client_error(e, topic),
    };
    let mut out = Vec::with_capacity(fetched.records.len());
    for r in &fetched.records {
        let render = |b: &Option<Bytes>| -> Result<Value, ()> {
            match (b, format) {
                (None, _) => Ok(Value::Null),
                (Some(b), Embedded::Binary) => Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(b),
                )),
                (Some(b), Embedded::Json) => serde_json::from_slice(b).map_err(|_| ()),
            }
        };
        let (Ok(key), Ok(value)) = (render(&r.key), render(&r.value)) else {
            return error(
                422,
                42205,
                format!(
                    "The record at offset {} is not JSON; read it as binary.",
                    r.offset
                ),
            );
        };
        out.push(
            json!({"topic": topic, "key": key, "value": value, "partition": partition,
                        "offset": r.offset}),
        );
    }
    let content_type = match format {
        Embedded::Binary => "application/vnd.kafka.binary.v2+json",
        Embedded::Json => "application/vnd.kafka.json.v2+json",
    };
    ok(content_type, Value::Array(out))
}

async fn clusters(rest: &Rest) -> Response {
    match rest.client.metadata(Some(&[]), false).await {
        Ok(meta) => ok(
            JSON,
            json!({"kind": "KafkaClusterList", "data": [{"kind": "KafkaCluster",
                   "cluster_id": meta.cluster_id}]}),
        ),
        Err(e) => client_error(e, ""),
    }
}

/// A v3 key or value: `{"type": "BINARY"|"JSON"|"STRING", "data": ...}` (no type: JSON).
fn v3_data(v: Option<&Value>, what: &str) -> Result<Option<(Vec<u8>, &'static str)>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(obj) = v.as_object() else {
        return Err(format!("{what} must be an object with type and data"));
    };
    let data = obj.get("data");
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("JSON");
    match (kind, data) {
        (_, None | Some(Value::Null)) => Ok(None),
        ("BINARY", Some(Value::String(s))) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| Some((b, "BINARY")))
            .map_err(|e| format!("{what}.data is not valid base64: {e}")),
        ("STRING", Some(Value::String(s))) => Ok(Some((s.clone().into_bytes(), "STRING"))),
        ("JSON", Some(d)) => Ok(Some((d.to_string().into_bytes(), "JSON"))),
        ("BINARY" | "STRING", Some(_)) => Err(format!("{what}.data must be a string")),
        (other, _) => Err(format!(
            "{what}.type {other:?} is not one of BINARY, JSON, STRING (schema types need the \
             schema registry)"
        )),
    }
}

async fn produce_v3(rest: &Rest, cluster: &str, topic: &str, body: &[u8]) -> Response {
    let meta = match rest.client.metadata(Some(&[]), false).await {
        Ok(m) => m,
        Err(e) => return client_error(e, topic),
    };
    if meta.cluster_id != cluster {
        return error(404, 404, format!("Cluster {cluster} not found."));
    }
    // One record, or a stream of records one after another (one answer line each).
    let mut docs = Vec::new();
    for doc in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        match doc {
            Ok(d) => docs.push(d),
            Err(e) => return error(400, 400, format!("Bad Request: {e}")),
        }
    }
    if docs.is_empty() {
        return error(400, 400, "Bad Request: no record in the body");
    }
    let mut lines = Vec::with_capacity(docs.len());
    let mut last_status = 200;
    for doc in &docs {
        let (status, line) = produce_v3_one(rest, &meta.cluster_id, topic, doc).await;
        last_status = status;
        lines.push(line.to_string());
    }
    if docs.len() == 1 {
        return reply(last_status, JSON, lines.remove(0));
    }
    reply(200, JSON, lines.join("\n"))
}

async fn produce_v3_one(rest: &Rest, cluster: &str, topic: &str, doc: &Value) -> (u16, Value) {
    let fail =
        |status: u16, message: String| (status, json!({"error_code": status, "message": message}));
    let Some(obj) = doc.as_object() else {
        return fail(400, "a record must be a JSON object".into());
    };
    let Ok(partition) = optional_partition(obj.get("partition_id")) else {
        return fail(400, "partition_id must be an integer".into());
    };
    let key = v3_data(obj.get("key"), "key");
    let value = v3_data(obj.get("value"), "value");
    let (key, value) = match (key, value) {
        (Ok(k), Ok(v)) => (k, v),
        (Err(e), _) | (_, Err(e)) => return fail(400, e),
    };
    let mut headers = Vec::new();
    if let Some(list) = obj.get("headers").and_then(Value::as_array) {
        for h in list {
            let Some(name) = h.get("name").and_then(Value::as_str) else {
                return fail(400, "a header needs a name".into());
            };
            let value = match h.get("value") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => match base64::engine::general_purpose::STANDARD.decode(s)
                {
                    Ok(b) => Some(b),
                    Err(e) => return fail(400, format!("header {name}: not base64: {e}")),
                },
                Some(_) => return fail(400, format!("header {name}: value must be base64")),
            };
            headers.push((name.to_string(), value));
        }
    }
    let sizes = (
        key.as_ref().map(|(k, t)| (k.len(), *t)),
        value.as_ref().map(|(v, t)| (v.len(), *t)),
    );
    let record = OutRecord {
        partition,
        key: key.map(|(k, _)| k),
        value: value.map(|(v, _)| v),
        headers,
    };
    match rest.client.produce(topic, vec![record]).await {
        Ok(mut d) => match d.remove(0) {
            Ok((p, offset, ts)) => {
                let data = |s: Option<(usize, &str)>| {
                    s.map_or(Value::Null, |(size, t)| json!({"type": t, "size": size}))
                };
                (
                    200,
                    json!({"error_code": 200, "cluster_id": cluster, "topic_name": topic,
                           "partition_id": p, "offset": offset, "timestamp": rfc3339(ts),
                           "key": data(sizes.0), "value": data(sizes.1)}),
                )
            }
            Err((_, c, m)) => fail(500, format!("{}: {m}", code::name(c))),
        },
        Err(ClientError::UnknownTopic) => fail(404, format!("Topic {topic} not found.")),
        Err(ClientError::UnknownPartition) => fail(404, "Partition not found.".into()),
        Err(e) => fail(500, e.to_string()),
    }
}

/// `/api/v1` key or value: a string as its UTF-8 bytes, any other JSON as its text.
fn simple_bytes(v: Option<&Value>) -> Option<Vec<u8>> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone().into_bytes()),
        Some(other) => Some(other.to_string().into_bytes()),
    }
}

async fn produce_simple(rest: &Rest, topic: &str, body: &[u8]) -> Response {
    let doc = match parse_json(body) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(obj) = doc.as_object() else {
        return unprocessable("The body must be an object: {\"key\", \"value\", \"headers\"}.");
    };
    if let Some(bad) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "key" | "value" | "headers" | "partition"))
    {
        return unprocessable(format!("Unrecognized field: {bad}"));
    }
    let mut headers = Vec::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                headers.push((k.clone(), simple_bytes(Some(v))));
            }
        }
        Some(_) => return unprocessable("headers must be an object of name: value"),
    }
    let Ok(partition) = optional_partition(obj.get("partition")) else {
        return unprocessable("partition must be an integer");
    };
    let record = OutRecord {
        partition,
        key: simple_bytes(obj.get("key")),
        value: simple_bytes(obj.get("value")),
        headers,
    };
    match rest.client.produce(topic, vec![record]).await {
        Ok(mut d) => match d.remove(0) {
            Ok((p, offset, ts)) => ok(
                JSON,
                json!({"partition": p, "offset": offset, "timestamp": ts}),
            ),
            Err((_, c, m)) => error(500, 50002, format!("Kafka error {}: {m}", code::name(c))),
        },
        Err(e) => client_error(e, topic),
    }
}

/// A key or value read back: UTF-8 text, or base64 (`encoding=base64`, or bytes that are not
/// UTF-8, which then mark the message `"encoding": "base64"`).
fn simple_text(b: &Option<Bytes>, base64_all: bool) -> (Value, bool) {
    match b {
        None => (Value::Null, false),
        Some(b) if !base64_all => match std::str::from_utf8(b) {
            Ok(s) => (Value::String(s.to_string()), false),
            Err(_) => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
                true,
            ),
        },
        Some(b) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            true,
        ),
    }
}

async fn read_simple(rest: &Rest, topic: &str, partition: i32, query: &str) -> Response {
    let q = query_pairs(query);
    let offset = match q.get("offset").map(|v| v.parse::<i64>()) {
        None => 0,
        Some(Ok(o)) if o >= 0 => o,
        Some(_) => return unprocessable("offset must be a non-negative integer"),
    };
    let limit = match q.get("limit").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=READ_LIMIT_MAX).contains(&l) => l,
        Some(_) => return unprocessable(format!("limit must be 1 to {READ_LIMIT_MAX}")),
    };
    let base64_all = match q.get("encoding").map(String::as_str) {
        None | Some("utf8") => false,
        Some("base64") => true,
        Some(_) => return unprocessable("encoding must be utf8 or base64"),
    };
    let mut messages = Vec::new();
    let mut at = offset;
    let mut high_watermark;
    loop {
        let fetched = match rest.client.fetch(topic, partition, at, 1 << 20, 0).await {
            Ok(f) => f,
            Err(e) => return client_error(e, topic),
        };
        high_watermark = fetched.high_watermark;
        let got = fetched.records.len();
        for r in fetched.records {
            if messages.len() == limit {
                break;
            }
            at = r.offset + 1;
            let (key, kb) = simple_text(&r.key, base64_all);
            let (value, vb) = simple_text(&r.value, base64_all);
            let mut headers = Map::new();
            let mut hb = false;
            for (name, v) in &r.headers {
                let (text, b) = simple_text(v, base64_all);
                hb |= b;
                headers.insert(name.clone(), text);
            }
            let encoding = if kb || vb || hb { "base64" } else { "utf8" };
            messages.push(
                json!({"offset": r.offset, "timestamp": r.timestamp, "key": key,
                                 "value": value, "headers": headers, "encoding": encoding}),
            );
        }
        if messages.len() == limit || got == 0 || at >= high_watermark {
            break;
        }
    }
    ok(
        JSON,
        json!({"messages": messages, "high_watermark": high_watermark}),
    )
}

async fn commit_simple(rest: &Rest, group: &str, body: &[u8]) -> Response {
    let list = match json_list(body, "offsets", "{topic, partition, offset}") {
        Ok(l) => l,
        Err(e) => return e,
    };
    let mut offsets = Vec::with_capacity(list.len());
    for (i, o) in list.iter().enumerate() {
        let topic = o.get("topic").and_then(Value::as_str);
        let partition = o
            .get("partition")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok());
        let offset = o.get("offset").and_then(Value::as_i64);
        match (topic, partition, offset) {
            (Some(t), Some(p), Some(off)) if off >= 0 => offsets.push((t.to_string(), p, off)),
            _ => {
                return unprocessable(format!(
                    "offsets[{i}] needs topic (string), partition and offset (integers >= 0)"
                ))
            }
        }
    }
    match rest.client.commit(group, &offsets).await {
        Ok(codes) => {
            let failed = codes.iter().any(|(_, _, c)| *c != code::NONE);
            let rows: Vec<Value> = codes
                .iter()
                .map(|(t, p, c)| {
                    let error = (*c != code::NONE).then(|| code::name(*c));
                    json!({"topic": t, "partition": p, "error_code": c, "error": error})
                })
                .collect();
            reply(
                if failed { 409 } else { 200 },
                JSON,
                json!({"offsets": rows}).to_string(),
            )
        }
        Err(e) => client_error(e, ""),
    }
}

/// A request path's non-empty segments, percent-decoded.
pub(crate) fn path_segments(req: &Request) -> Vec<String> {
    req.uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

pub(crate) fn query_pairs(query: &str) -> std::collections::HashMap<String, String> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `s` as a URL path segment: unreserved characters as they are, the rest `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` and `+` decoded (invalid escapes kept as they are).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Milliseconds since the epoch as an RFC 3339 UTC time (`2026-12-06T09:55:00.123Z`).
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_escapes() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_549_566_887), "2026-12-06T09:32:46.887Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(percent_decode("a%20b+c%2Fd"), "a b c/d");
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
        let q = query_pairs("offset=5&limit=&x");
        assert_eq!(q["offset"], "5");
        assert_eq!(q["limit"], "");
        assert_eq!(q["x"], "");
    }

    #[test]
    fn embedded_formats() {
        assert!(embedded("application/vnd.kafka.json.v2+json; charset=utf-8").is_ok());
        assert!(embedded("application/json").is_err());
        let v = json!({"a": 1});
        assert_eq!(
            embedded_bytes(Some(&v), Embedded::Json, "x").unwrap(),
            Some(b"{\"a\":1}".to_vec())
        );
        assert_eq!(
            embedded_bytes(Some(&json!("aGk=")), Embedded::Binary, "x").unwrap(),
            Some(b"hi".to_vec())
        );
        assert!(embedded_bytes(Some(&json!("!!")), Embedded::Binary, "x").is_err());
        assert!(embedded_bytes(Some(&json!(5)), Embedded::Binary, "x").is_err());
        assert_eq!(
            embedded_bytes(Some(&Value::Null), Embedded::Json, "x").unwrap(),
            None
        );
        assert_eq!(
            v3_data(Some(&json!({"type": "STRING", "data": "s"})), "k").unwrap(),
            Some((b"s".to_vec(), "STRING"))
        );
        assert!(v3_data(Some(&json!({"type": "AVRO", "data": "s"})), "k").is_err());
    }
}
