//! Fetch (key 1), versions 4-16. Partitions are read on their owning shards (one hop per
//! shard); if fewer than `min_bytes` came back and `max_wait_ms` allows, the owners are asked
//! to wake this request when any of its partitions gets data, then it reads again. Whole
//! batches are returned; the first partition with data may exceed `max_bytes` (KIP-74), later
//! ones are left out once the total would. No fetch sessions: `session_id` 0 tells clients to
//! keep sending full requests.

use super::decode;
use crate::connection::Response;
use crate::errors::code;
use crate::node::Shard;
use crate::work::{scatter, FetchItem, FetchResult, ShardReply, ShardRequest};
use bytes::Bytes;
use kafka_protocol::messages::FetchRequest;
use millrace_wire::fetch::{encode_fetch_response, PartitionData, TopicData, TopicKey};
use millrace_wire::frame::RequestHeader;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

struct Wanted {
    key: TopicKey,
    topic: Option<String>,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    owner: Option<usize>,
}

pub async fn handle(shard: Rc<Shard>, header: RequestHeader, body: Bytes) -> Response {
    let req: FetchRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let wanted = resolve(&shard, &req, header.api_version);
    let mut results = read_all(&shard, &wanted).await;
    let total: usize = results.iter().flatten().map(|r| r.bytes).sum();
    let max_wait = req.max_wait_ms.clamp(0, shard.config.fetch_wait_max_ms) as u64;
    if total < req.min_bytes.max(1) as usize && max_wait > 0 && !wanted.is_empty() {
        wait_for_any(&shard, &wanted, max_wait).await;
        results = read_all(&shard, &wanted).await;
    }
    encode(&header, &wanted, results, req.max_bytes.max(0) as usize)
}

fn resolve(shard: &Shard, req: &FetchRequest, version: i16) -> Vec<Wanted> {
    let image = shard.image();
    let mut out = Vec::new();
    for t in &req.topics {
        let meta = if version >= 13 {
            image.topic_by_id(&t.topic_id)
        } else {
            image.topics.get(t.topic.0.as_str())
        };
        let key = if version >= 13 {
            TopicKey::Id(t.topic_id)
        } else {
            TopicKey::Name(t.topic.0.to_string())
        };
        for p in &t.partitions {
            out.push(Wanted {
                key: key.clone(),
                topic: meta.map(|m| m.name.clone()),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                owner: meta.and_then(|m| m.shards.get(p.partition as usize).copied()),
            });
        }
    }
    out
}

async fn read_all(shard: &Rc<Shard>, wanted: &[Wanted]) -> Vec<Option<FetchResult>> {
    let mut per_shard: BTreeMap<usize, Vec<FetchItem>> = BTreeMap::new();
    for (slot, w) in wanted.iter().enumerate() {
        if let (Some(owner), Some(topic)) = (w.owner, &w.topic) {
            per_shard.entry(owner).or_default().push(FetchItem {
                slot,
                topic: topic.clone(),
                partition: w.partition,
                offset: w.offset,
                max_bytes: w.max_bytes,
            });
        }
    }
    let mut results: Vec<Option<FetchResult>> = (0..wanted.len()).map(|_| None).collect();
    for reply in scatter(shard, per_shard, ShardRequest::Fetch).await {
        if let ShardReply::Fetch(rs) = reply {
            for r in rs {
                let slot = r.slot;
                results[slot] = Some(r);
            }
        }
    }
    results
}

async fn wait_for_any(shard: &Rc<Shard>, wanted: &[Wanted], max_wait_ms: u64) {
    let mut per_shard: BTreeMap<usize, Vec<(String, i32, i64)>> = BTreeMap::new();
    for w in wanted {
        if let (Some(owner), Some(topic)) = (w.owner, &w.topic) {
            per_shard
                .entry(owner)
                .or_default()
                .push((topic.clone(), w.partition, w.offset));
        }
    }
    if per_shard.is_empty() {
        return;
    }
    // Any shard reporting data ends the wait; the others time out on their own.
    let waits: Vec<_> = per_shard
        .into_iter()
        .map(|(owner, items)| {
            let shard = shard.clone();
            millrace_shard::spawn(async move {
                shard
                    .call(owner, ShardRequest::WaitForData { items, max_wait_ms })
                    .await
            })
        })
        .collect();
    race(waits).await;
}

/// Completes when the first of `tasks` does; the rest keep running to their own deadline.
async fn race(tasks: Vec<millrace_shard::Task<ShardReply>>) {
    let mut tasks: Vec<_> = tasks.into_iter().map(Box::pin).collect();
    futures_lite::future::poll_fn(|cx| {
        for t in tasks.iter_mut() {
            if t.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await;
    for t in tasks {
        // Dropping a shard task cancels it; detach instead so each ends at its deadline.
        std::pin::Pin::into_inner(t).detach();
    }
}

fn encode(
    header: &RequestHeader,
    wanted: &[Wanted],
    results: Vec<Option<FetchResult>>,
    max_bytes: usize,
) -> Response {
    let mut topics: Vec<TopicData<crate::work::RecordPiece>> = Vec::new();
    let mut total = 0usize;
    for (w, r) in wanted.iter().zip(results) {
        let mut data = PartitionData {
            partition_index: w.partition,
            error_code: code::UNKNOWN_TOPIC_OR_PARTITION,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: Vec::new(),
        };
        if w.topic.is_none() && header.api_version >= 13 {
            data.error_code = code::UNKNOWN_TOPIC_ID;
        }
        if let Some(r) = r {
            data.error_code = r.error_code;
            data.high_watermark = r.high_watermark;
            data.last_stable_offset = r.high_watermark;
            data.log_start_offset = r.log_start_offset;
            if total == 0 || total + r.bytes <= max_bytes {
                total += r.bytes;
                data.records = r.records;
            }
        }
        let same_topic = topics
            .last()
            .is_some_and(|t: &TopicData<_>| same_key(&t.topic, &w.key));
        if !same_topic {
            topics.push(TopicData {
                topic: w.key.clone(),
                partitions: Vec::new(),
            });
        }
        topics
            .last_mut()
            .expect("pushed above")
            .partitions
            .push(data);
    }
    let (chunks, _) = encode_fetch_response(
        header.correlation_id,
        header.api_version,
        0,
        code::NONE,
        0,
        topics,
    );
    Response::Fetch(chunks)
}

fn same_key(a: &TopicKey, b: &TopicKey) -> bool {
    match (a, b) {
        (TopicKey::Name(x), TopicKey::Name(y)) => x == y,
        (TopicKey::Id(x), TopicKey::Id(y)) => x == y,
        _ => false,
    }
}
