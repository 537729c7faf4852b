//! The schema registry on `millrace.schema.registry.listen` (default 127.0.0.1:8081):
//! Confluent Schema Registry's API (subjects, versions, schemas by id, references,
//! compatibility per subject and global, modes, soft and hard deletes) for Avro, JSON Schema
//! and Protobuf, the rules coming from the `millrace-schema` crate.
//!
//! State lives in the single-partition compacted `_schemas` topic in Confluent's record format
//! (`store.rs`), written and read through the Kafka protocol like the REST proxy's, so every
//! broker serves the same registry and it survives restarts and leader changes. Every request
//! first reads the topic up to its end, so an answer reflects every write acknowledged before
//! the request arrived, whichever broker took it. Writes are appended with acks=all; ids and
//! versions are taken from the fold and a write that lost a race with another broker's is
//! tried again (see `store.rs`).

mod store;

use crate::http::{reply, Request, Response};
use crate::mesh::Call;
use crate::rest::client::{ClientError, KafkaClient, OutRecord};
use crate::rest::{path_segments, query_pairs};
use crate::shard::Shard;
use crate::topic_config::SubjectStrategy;
use bytes::Bytes;
use millrace_schema::{Dependency, Schema, SchemaType};
use millrace_shard::sync::Turn;
use serde_json::{json, Map, Value};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use store::{Entry, Level, Mode, Reference, Store, Stored};

/// The topic the registry keeps its state in (Confluent's `kafkastore.topic` default).
pub const TOPIC: &str = "_schemas";
/// The registry's content type.
const CT: &str = "application/vnd.schemaregistry.v1+json";
/// How many times a write that lost a race is tried again (each after a random pause that
/// grows with the tries, so racing writers spread out rather than collide again).
const WRITE_TRIES: u32 = 24;
/// How long reading `_schemas` retries errors that mean its leader is moving or not known yet
/// (a topic created a moment ago, a broker killed).
const READ_RETRY: std::time::Duration = std::time::Duration::from_secs(15);
/// The most bytes one read of `_schemas` asks for.
const READ_BYTES: i32 = 8 << 20;

/// The registry's state on its shard.
pub struct Registry {
    client: Rc<KafkaClient>,
    body_max: usize,
    store: RefCell<Store>,
    /// `_schemas` is known to exist.
    ready: Cell<bool>,
    /// One reader of the topic at a time.
    reading: Turn,
    /// One writer at a time on this broker (other brokers' writers race through the log).
    writing: Turn,
}

impl Registry {
    /// A registry keeping its schemas in the cluster at `bootstrap`.
    pub fn new(
        bootstrap: Vec<(String, u16)>,
        client_id: String,
        body_max: usize,
        route: crate::dial::Route,
    ) -> Self {
        Registry {
            client: Rc::new(KafkaClient::new(bootstrap, client_id, route)),
            body_max,
            store: RefCell::new(Store::default()),
            ready: Cell::new(false),
            reading: Turn::new(),
            writing: Turn::new(),
        }
    }
}

/// An error answer: Confluent's body, the HTTP status being the code's first three digits.
fn error(error_code: u32, message: impl Into<String>) -> Response {
    let status = if error_code >= 1000 {
        (error_code / 100) as u16
    } else {
        error_code as u16
    };
    let body = json!({"error_code": error_code, "message": message.into()});
    reply(status, CT, body.to_string())
}

fn ok(body: Value) -> Response {
    reply(200, CT, body.to_string())
}

fn backend(e: ClientError) -> Response {
    error(50001, format!("Error in the backend data store: {e}"))
}

fn subject_not_found(subject: &str) -> Response {
    error(40401, format!("Subject '{subject}' not found."))
}

fn version_not_found(version: &str) -> Response {
    error(40402, format!("Version {version} not found."))
}

fn schema_not_found() -> Response {
    error(40403, "Schema not found")
}

fn query_flag(query: &str, name: &str) -> bool {
    query_value(query, name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query_pairs(query).remove(name)
}

/// Answers one request.
pub async fn handle(reg: Rc<Registry>, req: Request) -> Response {
    let method = req.method().clone();
    let path = path_segments(&req);
    let query = req.uri().query().unwrap_or("").to_string();
    let body = if method == hyper::Method::POST || method == hyper::Method::PUT {
        match crate::http::read_body(req, reg.body_max).await {
            Ok(b) => b,
            Err(e) => {
                return error(
                    413,
                    format!("Request body larger than {} bytes: {e}", reg.body_max),
                )
            }
        }
    } else {
        Bytes::new()
    };
    // Every answer reflects what was written before the request came.
    if let Err(e) = catch_up(&reg).await {
        return e;
    }
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let (get, post, put, delete) = (
        method == hyper::Method::GET,
        method == hyper::Method::POST,
        method == hyper::Method::PUT,
        method == hyper::Method::DELETE,
    );
    match segments.as_slice() {
        [] if get => ok(json!({})),
        ["schemas", "types"] if get => ok(json!(["JSON", "PROTOBUF", "AVRO"])),
        ["schemas", "ids", id, rest @ ..] if get => match id.parse::<i32>() {
            Ok(id) => schema_by_id(&reg, id, rest, &query),
            Err(_) => schema_not_found(),
        },
        ["subjects"] if get => list_subjects(&reg, &query),
        ["subjects", s] if post => lookup(&reg, s, &body, &query),
        ["subjects", s] if delete => delete_subject(&reg, s, &query).await,
        ["subjects", s, "versions"] if get => list_versions(&reg, s, &query),
        ["subjects", s, "versions"] if post => register(&reg, s, &body, &query).await,
        ["subjects", s, "versions", v, rest @ ..] if get => get_version(&reg, s, v, rest, &query),
        ["subjects", s, "versions", v] if delete => delete_version(&reg, s, v, &query).await,
        ["compatibility", "subjects", s, "versions", rest @ ..] if post && rest.len() <= 1 => {
            compatibility(&reg, s, rest.first().copied(), &body, &query)
        }
        ["config"] if get => ok(json!({"compatibilityLevel": global_level(&reg).as_str()})),
        ["config"] if put => put_config(&reg, None, &body).await,
        ["config"] if delete => delete_config(&reg, None).await,
        ["config", s] if get => get_config(&reg, s, &query),
        ["config", s] if put => put_config(&reg, Some(s), &body).await,
        ["config", s] if delete => delete_config(&reg, Some(s)).await,
        ["mode"] if get => ok(json!({"mode": reg.store.borrow().mode(None).as_str()})),
        ["mode"] if put => put_mode(&reg, None, &body).await,
        ["mode", s] if get => ok(json!({"mode": reg.store.borrow().mode(Some(s)).as_str()})),
        ["mode", s] if put => put_mode(&reg, Some(s), &body).await,
        ["mode", s] if delete => delete_mode(&reg, s).await,
        _ => error(404, "HTTP 404 Not Found"),
    }
}

fn global_level(reg: &Registry) -> Level {
    reg.store
        .borrow()
        .configs
        .get(&None)
        .copied()
        .unwrap_or(Level::Backward)
}

/// Creates `_schemas` when it does not exist yet: one partition, compacted, replicated to up
/// to three brokers (Confluent's `kafkastore.topic.replication.factor` is 3).
async fn ensure_topic(reg: &Registry) -> Result<(), Response> {
    if reg.ready.get() {
        return Ok(());
    }
    let meta = reg
        .client
        .metadata(Some(&[TOPIC]), false)
        .await
        .map_err(backend)?;
    if !meta.topics.contains_key(TOPIC) {
        let brokers = reg.client.broker_count().await.map_err(backend)?;
        let rf = brokers.clamp(1, 3) as i16;
        reg.client
            .create_topic(TOPIC, 1, rf, &[("cleanup.policy", "compact")])
            .await
            .map_err(backend)?;
    }
    let meta = reg
        .client
        .topic_metadata(TOPIC, false)
        .await
        .map_err(backend)?;
    if !meta.topics.contains_key(TOPIC) {
        return Err(error(
            50002,
            format!("The {TOPIC} topic is not available yet"),
        ));
    }
    reg.ready.set(true);
    Ok(())
}

/// Folds `_schemas` up to its end.
async fn catch_up(reg: &Registry) -> Result<(), Response> {
    let _turn = reg.reading.lock().await;
    ensure_topic(reg).await?;
    let deadline = millrace_shard::time::Instant::now() + READ_RETRY;
    loop {
        let from = reg.store.borrow().next_offset;
        let fetched = match reg.client.fetch(TOPIC, 0, from, READ_BYTES, 0).await {
            Ok(f) => f,
            Err(e) if moving(&e) && millrace_shard::time::Instant::now() < deadline => {
                millrace_shard::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(backend(e)),
        };
        let mut store = reg.store.borrow_mut();
        for r in &fetched.records {
            store.apply(r.offset, r.key.as_deref(), r.value.as_deref());
        }
        store.next_offset = store.next_offset.max(fetched.next_offset);
        if store.next_offset >= fetched.high_watermark || store.next_offset <= from {
            return Ok(());
        }
    }
}

/// Errors that mean `_schemas`' leader is moving or not known yet: the read is tried again.
fn moving(e: &ClientError) -> bool {
    use millrace_wire::codes as code;
    match e {
        ClientError::Unreachable(_) | ClientError::UnknownTopic | ClientError::UnknownPartition => {
            true
        }
        ClientError::Kafka(c, _) => matches!(
            *c,
            code::NOT_LEADER_OR_FOLLOWER
                | code::UNKNOWN_TOPIC_OR_PARTITION
                | code::LEADER_NOT_AVAILABLE
                | code::FENCED_LEADER_EPOCH
                | code::UNKNOWN_LEADER_EPOCH
                | code::REQUEST_TIMED_OUT
                | code::KAFKA_STORAGE_ERROR
        ),
    }
}

/// A random number below `n` (a writer's pause after losing a race).
fn rand_below(n: u64) -> u64 {
    let x = uuid::Uuid::new_v4().as_u128() as u64;
    x % n.max(1)
}

/// Appends `entries` (acks=all) and folds the log past them.
async fn append(reg: &Registry, entries: Vec<Entry>) -> Result<(), Response> {
    let records = entries
        .into_iter()
        .map(|(k, v)| OutRecord {
            partition: Some(0),
            key: Some(k.into_bytes()),
            value: v.map(String::into_bytes),
            headers: Vec::new(),
        })
        .collect();
    let deliveries = reg.client.produce(TOPIC, records).await.map_err(backend)?;
    let mut last = -1;
    for d in deliveries {
        match d {
            Ok((_, offset, _)) => last = last.max(offset),
            Err((_, code, message)) => {
                return Err(error(
                    50001,
                    format!(
                        "Error in the backend data store: {} {message}",
                        millrace_wire::codes::name(code)
                    ),
                ))
            }
        }
    }
    while reg.store.borrow().next_offset <= last {
        let before = reg.store.borrow().next_offset;
        catch_up(reg).await?;
        if reg.store.borrow().next_offset == before {
            millrace_shard::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

fn read_only(reg: &Registry, subject: Option<&str>) -> Option<Response> {
    (reg.store.borrow().mode(subject) == Mode::ReadOnly).then(|| {
        error(
            42205,
            format!(
                "Subject {} is in read-only mode",
                subject.unwrap_or("(global)")
            ),
        )
    })
}

/// A parsed request body with a schema: `{"schema", "schemaType", "references"}`.
struct Submitted {
    kind: SchemaType,
    text: String,
    references: Vec<Reference>,
    id: Option<i32>,
    version: Option<i32>,
}

fn submitted(body: &[u8]) -> Result<Submitted, Response> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| error(400, format!("Unrecognized JSON body: {e}")))?;
    let Some(text) = doc.get("schema").and_then(Value::as_str) else {
        return Err(error(
            42201,
            "Invalid schema: the body needs a \"schema\" string",
        ));
    };
    let kind = match doc.get("schemaType") {
        None | Some(Value::Null) => SchemaType::Avro,
        Some(Value::String(t)) => {
            SchemaType::parse(t).ok_or_else(|| error(42201, format!("Invalid schema type {t}")))?
        }
        Some(other) => return Err(error(42201, format!("Invalid schema type {other}"))),
    };
    let references = store::references_from(doc.get("references"))
        .ok_or_else(|| error(42201, "Invalid schema: bad references"))?;
    let int = |k: &str| {
        doc.get(k)
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .filter(|v| *v > 0)
    };
    Ok(Submitted {
        kind,
        text: text.to_string(),
        references,
        id: int("id"),
        version: int("version"),
    })
}

/// Every schema `refs` reach, dependencies first, as the rules crate takes them.
fn dependencies(store: &Store, refs: &[Reference]) -> Result<Vec<Dependency>, String> {
    fn walk(
        store: &Store,
        refs: &[Reference],
        seen: &mut BTreeSet<String>,
        out: &mut Vec<Dependency>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 64 {
            return Err("references nested too deeply".into());
        }
        for r in refs {
            if seen.contains(&r.name) {
                continue;
            }
            let versions = store.versions(&r.subject, true);
            let version = if r.version == -1 {
                versions.iter().rev().find(|(_, v)| !v.deleted)
            } else {
                versions.iter().find(|(n, _)| *n == r.version)
            };
            let Some((_, v)) = version else {
                return Err(format!(
                    "reference {} to subject {} version {} not found",
                    r.name, r.subject, r.version
                ));
            };
            let stored = store
                .schemas
                .get(&v.id)
                .ok_or_else(|| format!("reference {}: schema missing", r.name))?;
            seen.insert(r.name.clone());
            walk(store, &stored.references, seen, out, depth + 1)?;
            out.push(Dependency {
                name: r.name.clone(),
                schema: stored.text.clone(),
            });
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(store, refs, &mut BTreeSet::new(), &mut out, 0)?;
    Ok(out)
}

/// Parses a stored or submitted schema with its references.
fn parse(
    store: &Store,
    kind: SchemaType,
    text: &str,
    refs: &[Reference],
) -> Result<Schema, String> {
    let deps = dependencies(store, refs)?;
    millrace_schema::parse(kind, text, &deps)
}

/// The submitted schema parsed, and as it would be stored.
fn prepare(store: &Store, s: &Submitted, normalize: bool) -> Result<(Schema, Stored), Response> {
    let schema = parse(store, s.kind, &s.text, &s.references)
        .map_err(|e| error(42201, format!("Invalid schema {e}")))?;
    let stored = Stored {
        kind: s.kind,
        text: schema.canonical(normalize),
        references: s.references.clone(),
    };
    Ok((schema, stored))
}

/// What `new` breaks at `level` against each of `olds` (version, stored).
fn incompatibilities(
    store: &Store,
    new: &Schema,
    level: Level,
    olds: &[(i32, Stored)],
    verbose: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (version, old) in olds {
        let old_schema = match parse(store, old.kind, &old.text, &old.references) {
            Ok(s) => s,
            Err(e) => {
                out.push(format!(
                    "{{oldSchemaVersion: {version}}} cannot be read: {e}"
                ));
                continue;
            }
        };
        let mut found = Vec::new();
        if level.backward() {
            found.extend(millrace_schema::can_read(new, &old_schema));
        }
        if level.forward() {
            found.extend(millrace_schema::can_read(&old_schema, new));
        }
        if !found.is_empty() {
            out.extend(found);
            if verbose {
                out.push(format!("{{oldSchemaVersion: {version}}}"));
                out.push(format!("{{oldSchema: '{}'}}", old.text));
                out.push(format!("{{compatibility: '{}'}}", level.as_str()));
            }
        }
    }
    out
}

/// The live versions a new schema of `subject` is checked against at `level`, newest first.
fn checked_against(store: &Store, subject: &str, level: Level) -> Vec<(i32, Stored)> {
    let mut live: Vec<(i32, Stored)> = store
        .versions(subject, false)
        .into_iter()
        .rev()
        .filter_map(|(n, v)| Some((n, store.schemas.get(&v.id)?.clone())))
        .collect();
    if !level.transitive() {
        live.truncate(1);
    }
    live
}

async fn register(reg: &Registry, subject: &str, body: &[u8], query: &str) -> Response {
    let normalize = query_flag(query, "normalize");
    let sub = match submitted(body) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let _turn = reg.writing.lock().await;
    for attempt in 0..WRITE_TRIES {
        if attempt > 0 {
            let cap_ms = (5u64 << attempt.min(6)).min(250);
            let pause = rand_below(cap_ms + 1);
            millrace_shard::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        if let Err(e) = catch_up(reg).await {
            return e;
        }
        if let Some(e) = read_only(reg, Some(subject)) {
            return e;
        }
        let (entry, id, version) = {
            let store = reg.store.borrow();
            let (schema, stored) = match prepare(&store, &sub, normalize) {
                Ok(p) => p,
                Err(e) => return e,
            };
            let import = store.mode(Some(subject)) == Mode::Import;
            // Registered already under this subject: its id.
            if let Some((_, v)) = store
                .versions(subject, false)
                .into_iter()
                .find(|(_, v)| store.schemas.get(&v.id) == Some(&stored))
            {
                return ok(json!({"id": v.id}));
            }
            let level = store.level(subject);
            if level != Level::None && !import {
                let olds = checked_against(&store, subject, level);
                let problems = incompatibilities(&store, &schema, level, &olds, true);
                if !problems.is_empty() {
                    return error(
                        409,
                        format!(
                            "Schema being registered is incompatible with an earlier schema for \
                             subject \"{subject}\", details: [{}]",
                            problems.join(", ")
                        ),
                    );
                }
            }
            let (id, version) = if import {
                let (Some(id), version) = (sub.id, sub.version) else {
                    return error(
                        42205,
                        "Registering in IMPORT mode needs the schema's id (and may give its version)",
                    );
                };
                if store.schemas.get(&id).is_some_and(|s| *s != stored) {
                    return error(
                        42207,
                        format!("Overwrite new schema with id {id} is not permitted."),
                    );
                }
                (id, version.unwrap_or_else(|| store.next_version(subject)))
            } else {
                if sub.id.is_some() {
                    return error(42205, "A schema id can be given only in IMPORT mode");
                }
                (
                    store.id_of(&stored).unwrap_or_else(|| store.next_id()),
                    store.next_version(subject),
                )
            };
            (
                store::schema_entry(subject, version, id, &stored, false),
                id,
                version,
            )
        };
        if let Err(e) = append(reg, vec![entry]).await {
            return e;
        }
        let won = reg
            .store
            .borrow()
            .subjects
            .get(subject)
            .and_then(|vs| vs.get(&version))
            .is_some_and(|v| v.id == id);
        if won {
            return ok(json!({"id": id}));
        }
        // Another broker's writer took this version or id first: decide again.
    }
    error(
        50001,
        format!(
            "Error in the backend data store: {WRITE_TRIES} writes of {subject} lost to others"
        ),
    )
}

/// A version's answer: subject, version, id, type and references when not the defaults.
fn version_json(subject: &str, version: i32, id: i32, stored: &Stored) -> Value {
    let mut m = Map::new();
    m.insert("subject".into(), json!(subject));
    m.insert("version".into(), json!(version));
    m.insert("id".into(), json!(id));
    if stored.kind != SchemaType::Avro {
        m.insert("schemaType".into(), json!(stored.kind.as_str()));
    }
    if !stored.references.is_empty() {
        m.insert(
            "references".into(),
            store::references_json(&stored.references),
        );
    }
    m.insert("schema".into(), json!(stored.text));
    Value::Object(m)
}

fn lookup(reg: &Registry, subject: &str, body: &[u8], query: &str) -> Response {
    let sub = match submitted(body) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let store = reg.store.borrow();
    let deleted = query_flag(query, "deleted");
    let versions = store.versions(subject, deleted);
    if versions.is_empty() {
        return subject_not_found(subject);
    }
    let (_, stored) = match prepare(&store, &sub, query_flag(query, "normalize")) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match versions
        .iter()
        .find(|(_, v)| store.schemas.get(&v.id) == Some(&stored))
    {
        Some((n, v)) => ok(version_json(subject, *n, v.id, &stored)),
        None => schema_not_found(),
    }
}

fn schema_by_id(reg: &Registry, id: i32, rest: &[&str], query: &str) -> Response {
    let store = reg.store.borrow();
    let Some(stored) = store.schemas.get(&id) else {
        return schema_not_found();
    };
    let users = || {
        store.subjects.iter().flat_map(move |(s, vs)| {
            vs.iter()
                .filter(move |(_, v)| v.id == id && !v.deleted)
                .map(move |(n, _)| (s.clone(), *n))
        })
    };
    match rest {
        [] => {
            let mut m = Map::new();
            let text = if query_value(query, "format").as_deref() == Some("serialized")
                && stored.kind == SchemaType::Protobuf
            {
                match parse(&store, stored.kind, &stored.text, &stored.references) {
                    Ok(Schema::Protobuf(p)) => p.serialized(),
                    _ => stored.text.clone(),
                }
            } else {
                stored.text.clone()
            };
            if stored.kind != SchemaType::Avro {
                m.insert("schemaType".into(), json!(stored.kind.as_str()));
            }
            m.insert("schema".into(), json!(text));
            if !stored.references.is_empty() {
                m.insert(
                    "references".into(),
                    store::references_json(&stored.references),
                );
            }
            ok(Value::Object(m))
        }
        ["schema"] => reply(200, CT, stored.text.clone()),
        ["subjects"] => {
            let names: BTreeSet<String> = users().map(|(s, _)| s).collect();
            ok(json!(names))
        }
        ["versions"] => ok(Value::Array(
            users()
                .map(|(s, n)| json!({"subject": s, "version": n}))
                .collect(),
        )),
        _ => error(404, "HTTP 404 Not Found"),
    }
}

fn list_subjects(reg: &Registry, query: &str) -> Response {
    let store = reg.store.borrow();
    let deleted = query_flag(query, "deleted");
    let prefix = query_value(query, "subjectPrefix").unwrap_or_default();
    let names: Vec<&String> = store
        .subjects
        .iter()
        .filter(|(s, vs)| s.starts_with(&prefix) && vs.values().any(|v| deleted || !v.deleted))
        .map(|(s, _)| s)
        .collect();
    ok(json!(names))
}

fn list_versions(reg: &Registry, subject: &str, query: &str) -> Response {
    let store = reg.store.borrow();
    let versions = store.versions(subject, query_flag(query, "deleted"));
    if versions.is_empty() {
        return subject_not_found(subject);
    }
    ok(json!(versions.iter().map(|(n, _)| n).collect::<Vec<_>>()))
}

/// A version the path names: a number, or `latest` / -1 (the newest live one).
fn find_version(
    store: &Store,
    subject: &str,
    version: &str,
    deleted: bool,
) -> Result<(i32, store::Version), Response> {
    let all = store.versions(subject, true);
    if all.is_empty() {
        return Err(subject_not_found(subject));
    }
    if version == "latest" || version == "-1" {
        return store
            .versions(subject, false)
            .last()
            .copied()
            .ok_or_else(|| version_not_found(version));
    }
    let n: i32 = match version.parse() {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(error(
                42202,
                format!(
                    "The specified version '{version}' is not a valid version id. Allowed values \
                     are between [1, 2^31-1] and the string \"latest\""
                ),
            ))
        }
    };
    all.into_iter()
        .find(|(m, v)| *m == n && (deleted || !v.deleted))
        .ok_or_else(|| version_not_found(version))
}

fn get_version(
    reg: &Registry,
    subject: &str,
    version: &str,
    rest: &[&str],
    query: &str,
) -> Response {
    let store = reg.store.borrow();
    let (n, v) = match find_version(&store, subject, version, query_flag(query, "deleted")) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let Some(stored) = store.schemas.get(&v.id) else {
        return schema_not_found();
    };
    match rest {
        [] => ok(version_json(subject, n, v.id, stored)),
        ["schema"] => reply(200, CT, stored.text.clone()),
        ["referencedby"] => ok(json!(store.referenced_by(subject, n))),
        _ => error(404, "HTTP 404 Not Found"),
    }
}

async fn delete_subject(reg: &Registry, subject: &str, query: &str) -> Response {
    let permanent = query_flag(query, "permanent");
    let _turn = reg.writing.lock().await;
    if let Some(e) = read_only(reg, Some(subject)) {
        return e;
    }
    let entries: Vec<Entry>;
    let answer: Vec<i32>;
    {
        let store = reg.store.borrow();
        let all = store.versions(subject, true);
        if all.is_empty() {
            return subject_not_found(subject);
        }
        let live: Vec<(i32, store::Version)> =
            all.iter().filter(|(_, v)| !v.deleted).copied().collect();
        if permanent {
            if !live.is_empty() {
                return error(
                    40405,
                    format!(
                        "Subject '{subject}' was not deleted first before being permanently \
                         deleted"
                    ),
                );
            }
            answer = all.iter().map(|(n, _)| *n).collect();
            entries = all
                .iter()
                .map(|(n, _)| store::schema_tombstone(subject, *n))
                .collect();
        } else {
            if live.is_empty() {
                return subject_not_found(subject);
            }
            if let Some(r) = live
                .iter()
                .map(|(n, _)| store.referenced_by(subject, *n))
                .find(|r| !r.is_empty())
            {
                return error(
                    42206,
                    format!("One or more references exist to the schema {{subject={subject}}}: ids {r:?}"),
                );
            }
            answer = live.iter().map(|(n, _)| *n).collect();
            entries = live
                .iter()
                .filter_map(|(n, v)| {
                    let stored = store.schemas.get(&v.id)?;
                    Some(store::schema_entry(subject, *n, v.id, stored, true))
                })
                .collect();
        }
    }
    match append(reg, entries).await {
        Ok(()) => ok(json!(answer)),
        Err(e) => e,
    }
}

async fn delete_version(reg: &Registry, subject: &str, version: &str, query: &str) -> Response {
    let permanent = query_flag(query, "permanent");
    let _turn = reg.writing.lock().await;
    if let Some(e) = read_only(reg, Some(subject)) {
        return e;
    }
    let entry = {
        let store = reg.store.borrow();
        let (n, v) = match find_version(&store, subject, version, permanent) {
            Ok(x) => x,
            Err(e) => return e,
        };
        if permanent {
            if !v.deleted {
                return error(
                    40407,
                    format!(
                        "Subject '{subject}' Version {n} was not deleted first before being \
                         permanently deleted"
                    ),
                );
            }
            (n, store::schema_tombstone(subject, n))
        } else {
            let users = store.referenced_by(subject, n);
            if !users.is_empty() {
                return error(
                    42206,
                    format!(
                        "One or more references exist to the schema {{subject={subject}, \
                         version={n}}}: ids {users:?}"
                    ),
                );
            }
            let Some(stored) = store.schemas.get(&v.id) else {
                return schema_not_found();
            };
            (n, store::schema_entry(subject, n, v.id, stored, true))
        }
    };
    match append(reg, vec![entry.1]).await {
        Ok(()) => ok(json!(entry.0)),
        Err(e) => e,
    }
}

fn compatibility(
    reg: &Registry,
    subject: &str,
    version: Option<&str>,
    body: &[u8],
    query: &str,
) -> Response {
    let verbose = query_flag(query, "verbose");
    let sub = match submitted(body) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let store = reg.store.borrow();
    let (schema, _) = match prepare(&store, &sub, query_flag(query, "normalize")) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let level = store.level(subject);
    let olds: Vec<(i32, Stored)> = match version {
        None => checked_against(&store, subject, level),
        Some(v) => {
            if store.versions(subject, true).is_empty() {
                Vec::new()
            } else {
                match find_version(&store, subject, v, false) {
                    Ok((n, ver)) => store
                        .schemas
                        .get(&ver.id)
                        .map(|s| vec![(n, s.clone())])
                        .unwrap_or_default(),
                    Err(e) => return e,
                }
            }
        }
    };
    let problems = if level == Level::None {
        Vec::new()
    } else {
        incompatibilities(&store, &schema, level, &olds, verbose)
    };
    let mut m = Map::new();
    m.insert("is_compatible".into(), json!(problems.is_empty()));
    if verbose {
        m.insert("messages".into(), json!(problems));
    }
    ok(Value::Object(m))
}

fn get_config(reg: &Registry, subject: &str, query: &str) -> Response {
    let store = reg.store.borrow();
    match store.configs.get(&Some(subject.to_string())) {
        Some(l) => ok(json!({"compatibilityLevel": l.as_str()})),
        None if query_flag(query, "defaultToGlobal") => {
            ok(json!({"compatibilityLevel": store.level(subject).as_str()}))
        }
        None => error(
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        ),
    }
}

async fn put_config(reg: &Registry, subject: Option<&str>, body: &[u8]) -> Response {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => return error(400, format!("Unrecognized JSON body: {e}")),
    };
    let Some(level) = doc
        .get("compatibility")
        .or_else(|| doc.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .and_then(Level::parse)
    else {
        return error(
            42203,
            "Invalid compatibility level. Valid values are none, backward, forward, full, \
             backward_transitive, forward_transitive, and full_transitive",
        );
    };
    let _turn = reg.writing.lock().await;
    if let Some(e) = read_only(reg, subject) {
        return e;
    }
    match append(reg, vec![store::config_entry(subject, Some(level))]).await {
        Ok(()) => ok(json!({"compatibility": level.as_str()})),
        Err(e) => e,
    }
}

async fn delete_config(reg: &Registry, subject: Option<&str>) -> Response {
    let _turn = reg.writing.lock().await;
    if let Some(e) = read_only(reg, subject) {
        return e;
    }
    let previous = reg
        .store
        .borrow()
        .configs
        .get(&subject.map(String::from))
        .copied();
    let previous = match (previous, subject) {
        (Some(l), _) => l,
        (None, None) => Level::Backward,
        (None, Some(s)) => {
            return error(
                40408,
                format!("Subject '{s}' does not have subject-level compatibility configured"),
            )
        }
    };
    match append(reg, vec![store::config_entry(subject, None)]).await {
        Ok(()) => ok(json!({"compatibilityLevel": previous.as_str()})),
        Err(e) => e,
    }
}

async fn put_mode(reg: &Registry, subject: Option<&str>, body: &[u8]) -> Response {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => return error(400, format!("Unrecognized JSON body: {e}")),
    };
    let Some(mode) = doc
        .get("mode")
        .and_then(Value::as_str)
        .and_then(Mode::parse)
    else {
        return error(
            42204,
            "Invalid mode. Valid values are READWRITE, READONLY and IMPORT",
        );
    };
    let _turn = reg.writing.lock().await;
    match append(reg, vec![store::mode_entry(subject, Some(mode))]).await {
        Ok(()) => ok(json!({"mode": mode.as_str()})),
        Err(e) => e,
    }
}

async fn delete_mode(reg: &Registry, subject: &str) -> Response {
    let _turn = reg.writing.lock().await;
    let previous = reg.store.borrow().mode(Some(subject));
    match append(reg, vec![store::mode_entry(Some(subject), None)]).await {
        Ok(()) => ok(json!({"mode": previous.as_str()})),
        Err(e) => e,
    }
}

thread_local! {
    /// This broker's registry, on the shard it lives on (see [`install`]).
    static LOCAL: RefCell<Option<Rc<Registry>>> = const { RefCell::new(None) };
}

/// Makes `reg` the one produce validation asks (on the controller's shard).
pub fn install(reg: Rc<Registry>) {
    LOCAL.with(|l| *l.borrow_mut() = Some(reg));
}

/// One record's schema id to check: the topic, key (true) or value, the subject strategy and
/// the id the record carries (None: it does not start with Confluent's magic byte and an id).
#[derive(Debug, Clone)]
pub struct IdCheck {
    pub topic: String,
    pub key: bool,
    pub strategy: SubjectStrategy,
    pub id: Option<i32>,
    /// The record's index in its partition's data (for the error message).
    pub index: usize,
}

/// Checks schema ids for produce on the registry's shard: one answer per check, Err with why
/// the record is refused.
pub struct CheckIds(pub Vec<IdCheck>);

impl Call<Shard> for CheckIds {
    type Reply = Vec<Result<(), String>>;

    async fn run(self, _shard: Rc<Shard>) -> Self::Reply {
        let Some(reg) = LOCAL.with(|l| l.borrow().clone()) else {
            return self
                .0
                .iter()
                .map(|_| Err("this broker has no schema registry".to_string()))
                .collect();
        };
        if catch_up(&reg).await.is_err() {
            return self
                .0
                .iter()
                .map(|_| Err(format!("the schema registry could not read {TOPIC}")))
                .collect();
        }
        let store = reg.store.borrow();
        self.0.iter().map(|c| check_id(&store, c)).collect()
    }
}

/// Whether the id a record carries is registered under the subject its strategy names.
fn check_id(store: &Store, c: &IdCheck) -> Result<(), String> {
    let which = if c.key { "key" } else { "value" };
    let Some(id) = c.id else {
        return Err(format!(
            "the record's {which} does not start with a schema id (magic byte 0 and 4 bytes)"
        ));
    };
    let Some(stored) = store.schemas.get(&id) else {
        return Err(format!("the record's {which} schema id {id} is unknown"));
    };
    let subject = match c.strategy {
        SubjectStrategy::Topic => format!("{}-{which}", c.topic),
        SubjectStrategy::Record | SubjectStrategy::TopicRecord => {
            let name = parse(store, stored.kind, &stored.text, &stored.references)
                .ok()
                .and_then(|s| s.record_name())
                .ok_or_else(|| format!("the record's {which} schema id {id} has no record name"))?;
            if c.strategy == SubjectStrategy::Record {
                name
            } else {
                format!("{}-{name}", c.topic)
            }
        }
    };
    let registered = store
        .versions(&subject, false)
        .iter()
        .any(|(_, v)| v.id == id);
    if registered {
        Ok(())
    } else {
        Err(format!(
            "the record's {which} schema id {id} is not registered under subject {subject}"
        ))
    }
}

/// The schema id a serialized key or value carries (Confluent's wire format: magic byte 0,
/// then the id as a big-endian 32-bit integer).
pub fn schema_id(bytes: &[u8]) -> Option<i32> {
    match bytes {
        [0, a, b, c, d, ..] => Some(i32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Checks `checks` with this broker's registry (on the controller's shard).
pub async fn check_ids(shard: &Rc<Shard>, checks: Vec<IdCheck>) -> Vec<Result<(), String>> {
    let n = checks.len();
    match shard
        .call(Shard::controller_shard(), CheckIds(checks))
        .await
    {
        Ok(answers) => answers,
        Err(_) => vec![Err("the schema registry's shard is stopping".to_string()); n],
    }
}
