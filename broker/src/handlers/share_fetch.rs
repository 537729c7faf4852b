//! ShareFetch (key 78), versions 1-2 (v2's extra fields: `share_v2`): a share group member's fetch (KIP-932). In order:
//!
//! 1. the share session checks of the connection (`crate::share::session`): epoch 0 opens a
//!    session, n continues it, -1 closes it after the acknowledgements;
//! 2. the acknowledgements it carries, applied on the partitions' shards and answered once
//!    durable (per partition `acknowledge_error_code`);
//! 3. records acquired for the member from every partition of its session, on the shards
//!    leading them (`crate::share_manager`), at most `max_records` (soft, whole batches) and
//!    `max_bytes` per partition (at least one batch); when nothing could be acquired and
//!    `max_wait_ms` allows, the shards are asked to wake the request when a partition may
//!    have records (new data, released or expired locks), then it acquires once more.
//!
//! A partition this broker does not lead is answered NOT_LEADER_OR_FOLLOWER with the leader
//! the image names and its endpoint (KIP-951's shape). The response names a partition when it
//! has records, an error, or acknowledgements in this request, and every partition a new
//! session asked for, as Kafka's share fetch contexts do.
//!
//! The connection's side of share sessions is here too: [`connection_closed`] releases what
//! the members of its sessions hold, as Kafka does when a share consumer's connection closes.

use super::{respond, str_bytes, Context, Response};
use crate::shard::Shard;
use crate::share::partition::AckBatch;
use crate::share::session::{FetchScope, SessionRequest, ShareSessions, TopicIdPartition};
use crate::share_manager::{
    AckItem, FetchItem, ShareAckOnOwner, ShareFetchOnOwner, ShareFetched, ShareReleaseOnOwner,
    ShareWaitOnOwner,
};
use bytes::Bytes;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, NodeEndpoint, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{BrokerId, ShareFetchRequest, ShareFetchResponse};
use millrace_security::acl::{AclOperation, ResourceType};
use millrace_wire::codes as code;
use millrace_wire::frame::RequestHeader;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::rc::Rc;

/// `max_records` when a request sends none (v0 had no such field; Kafka's
/// `max.poll.records` default).
const DEFAULT_MAX_RECORDS: u32 = 500;

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let (req, _v2, header): (ShareFetchRequest, _, _) =
        match super::share_v2::decode(&header, &body, true) {
            Ok(r) => r,
            Err(close) => return close,
        };
    let group = req
        .group_id
        .as_ref()
        .map(|g| g.0.to_string())
        .unwrap_or_default();
    let member = req
        .member_id
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let lock_ms = lock_duration_ms(&ctx, &group);
    if group.is_empty() || member.is_empty() {
        let why = "a share fetch needs a group id and a member id";
        return respond(&header, &top_error(code::INVALID_REQUEST, why, lock_ms));
    }
    if !ctx.allowed(AclOperation::Read, ResourceType::Group, &group) {
        let refused = top_error(code::GROUP_AUTHORIZATION_FAILED, "not authorized", lock_ms);
        return respond(&header, &refused);
    }
    let mut requested: Vec<TopicIdPartition> = Vec::new();
    let mut acks: Vec<(TopicIdPartition, Vec<AckBatch>)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            requested.push((t.topic_id, p.partition_index));
            if !p.acknowledgement_batches.is_empty() {
                let batches = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| AckBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        acknowledge_types: b.acknowledge_types.clone(),
                    })
                    .collect();
                acks.push(((t.topic_id, p.partition_index), batches));
            }
        }
    }
    let forgotten: Vec<TopicIdPartition> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let session = SessionRequest {
        group_id: &group,
        member_id: &member,
        epoch: req.share_session_epoch,
        requested: &requested,
        forgotten: &forgotten,
        has_acknowledgements: !acks.is_empty(),
    };
    let scope = match ctx.share_sessions(|s, room| s.fetch(&session, room)) {
        Ok(scope) => scope,
        Err(error) => {
            let why = session_error_message(error);
            return respond(&header, &top_error(error, why, lock_ms));
        }
    };
    let mut answer = Answer::default();
    for p in &requested {
        answer.named.insert(*p);
    }
    for (p, error) in acknowledge(&ctx, &group, &member, acks).await {
        answer.named.insert(p);
        answer.partition(p).acknowledge_error_code = error;
    }
    let partitions = match scope {
        FetchScope::Final(partitions) => {
            release(&ctx, &group, &member, &partitions).await;
            ctx.share_sessions(|s, _| s.close(&group, &member));
            return respond(&header, &answer.into_response(&ctx, lock_ms));
        }
        FetchScope::Fetch(partitions) => partitions,
    };
    let denied = unreadable(&ctx, partitions.iter().map(|p| p.0));
    let partitions: Vec<TopicIdPartition> = partitions
        .into_iter()
        .filter(|p| {
            let refused = denied.contains(&p.0);
            if refused {
                answer.named.insert(*p);
                answer.partition(*p).error_code = code::TOPIC_AUTHORIZATION_FAILED;
            }
            !refused
        })
        .collect();
    let max_records = match req.max_records {
        n if n > 0 => n as u32,
        _ => DEFAULT_MAX_RECORDS,
    };
    let max_bytes = req.max_bytes.max(1) as usize;
    let wanted = resolve(&ctx, &partitions);
    let mut fetched = fetch_all(&ctx, (&group, &member), &wanted, max_records, max_bytes).await;
    let acquired: u64 = fetched.iter().map(|(_, f)| f.acquired_count()).sum();
    let max_wait = req.max_wait_ms.clamp(0, ctx.config().fetch_wait_max_ms) as u64;
    let urgent = fetched
        .iter()
        .any(|(_, f)| f.error_code != code::NONE && f.error_code != code::NOT_LEADER_OR_FOLLOWER);
    if acquired == 0 && max_wait > 0 && !urgent && !wanted.is_empty() {
        ctx.clock()
            .clone()
            .remote(wait_for_any(&ctx, &group, &wanted, max_wait))
            .await;
        fetched = fetch_all(&ctx, (&group, &member), &wanted, max_records, max_bytes).await;
    }
    for (p, f) in fetched {
        if f.error_code != code::NONE || !f.acquired.is_empty() {
            answer.named.insert(p);
        }
        let out = answer.partition(p);
        out.error_code = f.error_code;
        out.leader = f.leader;
        out.records = f.records;
        out.acquired = f.acquired;
    }
    for w in &wanted {
        if let Some(error) = w.absent {
            answer.named.insert(w.id);
            let out = answer.partition(w.id);
            out.error_code = error;
            out.leader = w.hint;
        }
    }
    respond(&header, &answer.into_response(&ctx, lock_ms))
}

/// `share.record.lock.duration.ms` of `group`, as the response reports it.
pub(super) fn lock_duration_ms(ctx: &Context, group: &str) -> i32 {
    let image = ctx.image();
    crate::group_config::group_settings(&image.cluster, ctx.config(), group)
        .share
        .record_lock_duration_ms
}

fn session_error_message(error: i16) -> &'static str {
    match error {
        code::SHARE_SESSION_NOT_FOUND => "no share session of this member on this connection",
        code::INVALID_SHARE_SESSION_EPOCH => "the share session epoch is not the expected one",
        code::SHARE_SESSION_LIMIT_REACHED => "group.share.max.share.sessions is reached",
        _ => {
            "acknowledgements in a request opening a share session, or a final request that fetches"
        }
    }
}

fn top_error(error: i16, why: &str, lock_ms: i32) -> ShareFetchResponse {
    ShareFetchResponse::default()
        .with_error_code(error)
        .with_error_message(Some(str_bytes(why)))
        .with_acquisition_lock_timeout_ms(lock_ms)
}

/// One partition of the answer.
#[derive(Default)]
struct Out {
    error_code: i16,
    acknowledge_error_code: i16,
    leader: Option<(i32, i32)>,
    records: Option<Bytes>,
    acquired: Vec<crate::share::partition::AcquiredRecords>,
}

#[derive(Default)]
struct Answer {
    parts: BTreeMap<TopicIdPartition, Out>,
    /// The partitions the response names.
    named: BTreeSet<TopicIdPartition>,
}

impl Answer {
    fn partition(&mut self, p: TopicIdPartition) -> &mut Out {
        self.parts.entry(p).or_default()
    }

    fn into_response(mut self, ctx: &Context, lock_ms: i32) -> ShareFetchResponse {
        let mut topics: BTreeMap<uuid::Uuid, Vec<PartitionData>> = BTreeMap::new();
        let mut leaders = BTreeSet::new();
        for p in &self.named {
            let out = self.parts.remove(p).unwrap_or_default();
            let (leader_id, leader_epoch) = out.leader.unwrap_or((-1, -1));
            if out.error_code == code::NOT_LEADER_OR_FOLLOWER && leader_id >= 0 {
                leaders.insert(leader_id);
            }
            let acquired = out
                .acquired
                .iter()
                .map(|a| {
                    AcquiredRecords::default()
                        .with_first_offset(a.first_offset)
                        .with_last_offset(a.last_offset)
                        .with_delivery_count(a.delivery_count)
                })
                .collect();
            topics.entry(p.0).or_default().push(
                PartitionData::default()
                    .with_partition_index(p.1)
                    .with_error_code(out.error_code)
                    .with_acknowledge_error_code(out.acknowledge_error_code)
                    .with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(leader_id)
                            .with_leader_epoch(leader_epoch),
                    )
                    .with_records(Some(out.records.unwrap_or_default()))
                    .with_acquired_records(acquired),
            );
        }
        let responses = topics
            .into_iter()
            .map(|(id, partitions)| {
                ShareFetchableTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(partitions)
            })
            .collect();
        let endpoints = ctx
            .brokers()
            .into_iter()
            .filter(|b| leaders.contains(&b.id))
            .map(|b| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(str_bytes(&b.host))
                    .with_port(i32::from(b.port))
                    .with_rack(b.rack.as_deref().map(str_bytes))
            })
            .collect();
        ShareFetchResponse::default()
            .with_acquisition_lock_timeout_ms(lock_ms)
            .with_responses(responses)
            .with_node_endpoints(endpoints)
    }
}

/// A session partition resolved against the image.
pub(super) struct Wanted {
    pub(super) id: TopicIdPartition,
    /// (topic name, owning shard here) when this broker holds it.
    pub(super) at: Option<(String, usize)>,
    /// Why not, when it does not.
    pub(super) absent: Option<i16>,
    /// The leader the image names.
    pub(super) hint: Option<(i32, i32)>,
}

pub(super) fn resolve(ctx: &Context, partitions: &[TopicIdPartition]) -> Vec<Wanted> {
    let image = ctx.image();
    partitions
        .iter()
        .map(|&(id, index)| {
            let Some(topic) = image
                .topic_by_id(&id)
                .filter(|t| index >= 0 && index < t.partitions)
            else {
                let error = match image.topic_by_id(&id) {
                    Some(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
                    None => code::UNKNOWN_TOPIC_ID,
                };
                return Wanted {
                    id: (id, index),
                    at: None,
                    absent: Some(error),
                    hint: None,
                };
            };
            let hint = image
                .cluster
                .partition(&topic.topic_id, index)
                .map(|s| (s.leader, s.leader_epoch));
            match image.owner(&topic.name, index) {
                Some(owner) => Wanted {
                    id: (id, index),
                    at: Some((topic.name.clone(), owner)),
                    absent: None,
                    hint,
                },
                None => Wanted {
                    id: (id, index),
                    at: None,
                    absent: Some(code::NOT_LEADER_OR_FOLLOWER),
                    hint,
                },
            }
        })
        .collect()
}

async fn fetch_all(
    ctx: &Context,
    (group, member): (&str, &str),
    wanted: &[Wanted],
    max_records: u32,
    max_bytes: usize,
) -> Vec<(TopicIdPartition, ShareFetched)> {
    let mut per_shard: BTreeMap<usize, Vec<(usize, FetchItem)>> = BTreeMap::new();
    for (slot, w) in wanted.iter().enumerate() {
        if let Some((topic, owner)) = &w.at {
            let item = (topic.clone(), w.id.1, (w.id.0, max_bytes));
            per_shard.entry(*owner).or_default().push((slot, item));
        }
    }
    let calls = per_shard.into_iter().map(|(owner, items)| {
        let call = ShareFetchOnOwner {
            group: group.to_string(),
            member: member.to_string(),
            max_records,
            items,
        };
        let ctx = ctx.clone();
        async move { ctx.call(owner, call).await.unwrap_or_default() }
    });
    let mut out = Vec::new();
    for replies in crate::mesh::join_all(calls.collect()).await {
        for (slot, fetched) in replies {
            out.push((wanted[slot].id, fetched));
        }
    }
    out
}

/// Waits until any shard reports a partition that may have records for the group, or
/// `max_wait_ms` passes; the other shards' waits are cancelled.
async fn wait_for_any(ctx: &Context, group: &str, wanted: &[Wanted], max_wait_ms: u64) {
    let mut per_shard: BTreeMap<usize, Vec<(String, i32)>> = BTreeMap::new();
    for w in wanted {
        if let Some((topic, owner)) = &w.at {
            per_shard
                .entry(*owner)
                .or_default()
                .push((topic.clone(), w.id.1));
        }
    }
    let mut waits: Vec<_> = per_shard
        .into_iter()
        .map(|(owner, partitions)| {
            let ctx = ctx.clone();
            let call = ShareWaitOnOwner {
                group: group.to_string(),
                partitions,
                max_wait_ms,
            };
            Box::pin(async move {
                let _ = ctx.call(owner, call).await;
            })
        })
        .collect();
    if waits.is_empty() {
        return;
    }
    futures_lite::future::poll_fn(|cx| {
        for w in waits.iter_mut() {
            if w.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await;
}

/// The topics among `ids` the request's principal may not READ (unknown ids are left to the
/// usual UNKNOWN_TOPIC_ID answer).
pub(super) fn unreadable(
    ctx: &Context,
    ids: impl Iterator<Item = uuid::Uuid>,
) -> BTreeSet<uuid::Uuid> {
    if ctx.authorizer().is_none() {
        return BTreeSet::new();
    }
    let image = ctx.image();
    ids.filter(|id| {
        image
            .topic_by_id(id)
            .is_some_and(|t| !ctx.allowed(AclOperation::Read, ResourceType::Topic, &t.name))
    })
    .collect()
}

/// Applies acknowledgements on the partitions' shards: an error code per partition.
pub(super) async fn acknowledge(
    ctx: &Context,
    group: &str,
    member: &str,
    acks: Vec<(TopicIdPartition, Vec<AckBatch>)>,
) -> Vec<(TopicIdPartition, i16)> {
    if acks.is_empty() {
        return Vec::new();
    }
    // Kafka checks READ on each topic too: an acknowledgement for a topic the principal may
    // not read is refused on its own.
    let denied = unreadable(ctx, acks.iter().map(|((id, _), _)| *id));
    let mut out = Vec::with_capacity(acks.len());
    let acks: Vec<_> = acks
        .into_iter()
        .filter(|(p, _)| {
            let refused = denied.contains(&p.0);
            if refused {
                out.push((*p, code::TOPIC_AUTHORIZATION_FAILED));
            }
            !refused
        })
        .collect();
    let ids: Vec<TopicIdPartition> = acks.iter().map(|(p, _)| *p).collect();
    let wanted = resolve(ctx, &ids);
    let mut per_shard: BTreeMap<usize, Vec<(usize, AckItem)>> = BTreeMap::new();
    for (slot, ((id, batches), w)) in acks.into_iter().zip(&wanted).enumerate() {
        match &w.at {
            Some((topic, owner)) => per_shard
                .entry(*owner)
                .or_default()
                .push((slot, (topic.clone(), id.1, batches))),
            None => out.push((id, w.absent.unwrap_or(code::NOT_LEADER_OR_FOLLOWER))),
        }
    }
    let calls = per_shard.into_iter().map(|(owner, items)| {
        let slots: Vec<usize> = items.iter().map(|(s, _)| *s).collect();
        let call = ShareAckOnOwner {
            group: group.to_string(),
            member: member.to_string(),
            items,
        };
        let ctx = ctx.clone();
        async move {
            match ctx.call(owner, call).await {
                Ok(replies) => replies,
                Err(_) => slots
                    .into_iter()
                    .map(|s| (s, code::NOT_LEADER_OR_FOLLOWER))
                    .collect(),
            }
        }
    });
    for replies in crate::mesh::join_all(calls.collect()).await {
        for (slot, error) in replies {
            out.push((wanted[slot].id, error));
        }
    }
    out
}

/// Releases what `member` holds on `partitions` (its session closed).
pub(super) async fn release(
    ctx: &Context,
    group: &str,
    member: &str,
    partitions: &[TopicIdPartition],
) {
    let wanted = resolve(ctx, partitions);
    let mut per_shard: BTreeMap<usize, Vec<(String, i32)>> = BTreeMap::new();
    for w in &wanted {
        if let Some((topic, owner)) = &w.at {
            per_shard
                .entry(*owner)
                .or_default()
                .push((topic.clone(), w.id.1));
        }
    }
    let calls = per_shard.into_iter().map(|(owner, partitions)| {
        let call = ShareReleaseOnOwner {
            group: group.to_string(),
            member: member.to_string(),
            partitions,
        };
        let ctx = ctx.clone();
        async move {
            let _ = ctx.call(owner, call).await;
        }
    });
    crate::mesh::join_all(calls.collect()).await;
}

/// A connection closed: its share sessions end and their members' records are released on
/// the shards leading their partitions.
pub async fn connection_closed(shard: &Rc<Shard>, sessions: &Rc<RefCell<ShareSessions>>) {
    let closed = sessions.borrow_mut().close_all();
    if closed.is_empty() {
        return;
    }
    let shares = crate::share_manager::shares_of(shard);
    shares
        .sessions_open
        .set(shares.sessions_open.get().saturating_sub(closed.len()));
    let image = shard.image();
    for (group, member, partitions) in closed {
        let mut per_shard: BTreeMap<usize, Vec<(String, i32)>> = BTreeMap::new();
        for (id, index) in partitions {
            let Some(topic) = image.topic_by_id(&id) else {
                continue;
            };
            if let Some(owner) = image.owner(&topic.name, index) {
                per_shard
                    .entry(owner)
                    .or_default()
                    .push((topic.name.clone(), index));
            }
        }
        for (owner, partitions) in per_shard {
            let call = ShareReleaseOnOwner {
                group: group.clone(),
                member: member.clone(),
                partitions,
            };
            let _ = shard.call(owner, call).await;
        }
    }
}
