//! What the broker counts, recorded where it happens; `crate::metrics` gathers and serves it.
//!
//! Each shard is one executor thread, and its counters live in that thread's
//! [`ShardMetrics`] (a thread-local `RefCell`): recording is a plain add on memory no other
//! thread touches, with no atomic or lock on the produce and fetch paths. A scrape reads a copy
//! of each shard's counters on that shard ([`snapshot`]). The simulation tests run every shard
//! on one thread; their counts are merged, which nothing there reads.
//!
//! This module names no other module of the broker, so the storage, replication and request
//! paths can all record into it.

pub mod errors;
pub mod histogram;

use histogram::Histogram;
use millrace_shard::time::Instant;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The stages of a request's time, as Kafka's request metrics split it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// From the request read off the socket to its handler starting.
    Queue,
    /// The handler's own work (total handler time minus `Remote`).
    Local,
    /// Waiting on others: replication and the group commit for acks, a long poll, another
    /// broker or the active controller.
    Remote,
    /// From the handler's answer to its last byte written (waiting behind earlier responses
    /// of the connection, then the socket).
    Response,
    /// From read to written.
    Total,
}

impl Stage {
    /// Every stage, in label order.
    pub const ALL: [Stage; 5] = [
        Stage::Queue,
        Stage::Local,
        Stage::Remote,
        Stage::Response,
        Stage::Total,
    ];

    /// The `stage` label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::Local => "local",
            Stage::Remote => "remote",
            Stage::Response => "response",
            Stage::Total => "total",
        }
    }
}

/// One API's counts on one shard.
#[derive(Debug, Clone, Default)]
pub struct ApiStats {
    /// Requests answered (or closed on).
    pub requests: u64,
    /// Requests that closed the connection instead of an answer (malformed, unsupported).
    pub closed: u64,
    /// Time per stage, indexed like [`Stage::ALL`].
    pub stages: [Histogram; 5],
}

/// One topic's traffic on one shard.
#[derive(Debug, Clone, Default)]
pub struct TopicStats {
    /// Record-batch bytes appended as leader (produce).
    pub bytes_in: u64,
    /// Records appended as leader.
    pub messages_in: u64,
    /// Record bytes sent to consumers.
    pub bytes_out: u64,
    /// Record-batch bytes appended as a follower.
    pub replication_bytes_in: u64,
    /// Record bytes sent to followers.
    pub replication_bytes_out: u64,
    /// Produce requests' partition entries for this topic (Kafka's TotalProduceRequestsPerSec).
    pub produce_requests: u64,
    /// Fetch requests' partition entries from consumers.
    pub fetch_requests: u64,
}

/// A shard's counters. See the module doc for who writes and who reads them.
#[derive(Debug, Clone, Default)]
pub struct ShardMetrics {
    /// By Kafka API key (the Fetch of followers under [`FETCH_FOLLOWER`]).
    pub apis: BTreeMap<i16, ApiStats>,
    /// Error codes answered, by (API key, code), NONE not counted.
    pub errors: BTreeMap<(i16, i16), u64>,
    /// Traffic by topic.
    pub topics: HashMap<String, TopicStats>,
    /// Time of each fsync (`fdatasync`) of a log segment or index.
    pub fsync: Histogram,
    /// ISR shrinks of partitions led here (under one leader epoch).
    pub isr_shrinks: u64,
    /// ISR expansions of partitions led here.
    pub isr_expands: u64,
    /// Fetched record bytes served from the batch cache.
    pub fetch_cache_bytes: u64,
    /// Fetched record bytes served from segment files.
    pub fetch_disk_bytes: u64,
}

/// The pseudo API key under which followers' fetches are counted (Kafka's
/// `request="FetchFollower"`, next to `FetchConsumer`).
pub const FETCH_FOLLOWER: i16 = -2;

thread_local! {
    static LOCAL: RefCell<ShardMetrics> = RefCell::new(ShardMetrics::default());
}

/// Runs `f` on this shard's counters.
pub fn with<R>(f: impl FnOnce(&mut ShardMetrics) -> R) -> R {
    LOCAL.with(|m| f(&mut m.borrow_mut()))
}

/// A copy of this shard's counters (for a scrape).
pub fn snapshot() -> ShardMetrics {
    LOCAL.with(|m| m.borrow().clone())
}

fn topic<'a>(m: &'a mut ShardMetrics, name: &str) -> &'a mut TopicStats {
    if !m.topics.contains_key(name) {
        m.topics.insert(name.to_string(), TopicStats::default());
    }
    m.topics.get_mut(name).expect("inserted above")
}

/// A produce's partition entry appended `bytes` of batches holding `records` records.
pub fn produced(name: &str, bytes: usize, records: u64) {
    with(|m| {
        let t = topic(m, name);
        t.bytes_in += bytes as u64;
        t.messages_in += records;
        t.produce_requests += 1;
    });
}

/// A follower appended `bytes` of its leader's batches.
pub fn replicated_in(name: &str, bytes: usize) {
    with(|m| topic(m, name).replication_bytes_in += bytes as u64);
}

/// A fetch answered `bytes` of records of `name` to a consumer or a follower, `cached` of them
/// from the batch cache.
pub fn fetched(name: &str, follower: bool, bytes: usize, cached: usize) {
    with(|m| {
        m.fetch_cache_bytes += cached as u64;
        m.fetch_disk_bytes += (bytes - cached.min(bytes)) as u64;
        let t = topic(m, name);
        if follower {
            t.replication_bytes_out += bytes as u64;
        } else {
            t.bytes_out += bytes as u64;
            t.fetch_requests += 1;
        }
    });
}

/// An answer of API `api_key` carried `code` (counted when not NONE).
pub fn error(api_key: i16, code: i16) {
    if code != 0 {
        with(|m| *m.errors.entry((api_key, code)).or_default() += 1);
    }
}

/// One fsync took `d`.
pub fn fsync(d: Duration) {
    with(|m| m.fsync.observe(d));
}

/// A leader here changed its ISR: `shrink` when it dropped a replica, else took one back.
pub fn isr_changed(shrink: bool) {
    with(|m| {
        if shrink {
            m.isr_shrinks += 1
        } else {
            m.isr_expands += 1
        }
    });
}

/// The clock of one request, shared by the connection and the handler.
#[derive(Debug)]
pub struct RequestClock {
    /// When its last byte was read.
    pub received: Instant,
    /// Time its handler spent waiting on others.
    remote: std::cell::Cell<Duration>,
    /// A Fetch from a follower (counted under [`FETCH_FOLLOWER`]).
    follower: std::cell::Cell<bool>,
}

impl RequestClock {
    /// A request read now.
    pub fn new() -> Self {
        RequestClock {
            received: Instant::now(),
            remote: std::cell::Cell::new(Duration::ZERO),
            follower: std::cell::Cell::new(false),
        }
    }

    /// Awaits `wait`, counting its time as remote.
    pub async fn remote<F: std::future::Future>(&self, wait: F) -> F::Output {
        let t0 = Instant::now();
        let out = wait.await;
        self.add_remote(t0.elapsed());
        out
    }

    /// The time counted as remote so far.
    pub fn remote_time(&self) -> Duration {
        self.remote.get()
    }

    /// Counts `d` as remote time.
    pub fn add_remote(&self, d: Duration) {
        self.remote.set(self.remote.get() + d);
    }

    /// Marks the request as a follower's fetch.
    pub fn set_follower(&self) {
        self.follower.set(true);
    }

    /// Records the request as done: its handler ran from `started` to `answered`, its answer
    /// was written now (or it closed the connection).
    pub fn done(&self, api_key: i16, started: Instant, answered: Instant, closed: bool) {
        let now = Instant::now();
        let key = if self.follower.get() {
            FETCH_FOLLOWER
        } else {
            api_key
        };
        let handler = answered.saturating_duration_since(started);
        let remote = self.remote.get().min(handler);
        let times = [
            started.saturating_duration_since(self.received),
            handler - remote,
            remote,
            now.saturating_duration_since(answered),
            now.saturating_duration_since(self.received),
        ];
        with(|m| {
            let api = m.apis.entry(key).or_default();
            api.requests += 1;
            api.closed += u64::from(closed);
            for (h, t) in api.stages.iter_mut().zip(times) {
                h.observe(t);
            }
        });
    }
}

impl Default for RequestClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The `request` label of an API key (Kafka's request metric names).
pub fn request_name(api_key: i16) -> String {
    match api_key {
        FETCH_FOLLOWER => "FetchFollower".into(),
        1 => "FetchConsumer".into(),
        millrace_wire::frame::RAFT_API_KEY => "Raft".into(),
        k => match kafka_protocol::messages::ApiKey::try_from(k) {
            Ok(key) => format!("{key:?}"),
            Err(_) => format!("Unknown{k}"),
        },
    }
}
