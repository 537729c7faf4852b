//! What the proxy's consumer instances ask of the cluster: the group coordinator (FindCoordinator,
//! remembered until an answer says it moved), KIP-848 heartbeats, committed offsets (OffsetFetch)
//! and commits as a member or as an admin (OffsetCommit), ListOffsets for `auto.offset.reset`
//! and seeks, and one Fetch per leader for the partitions an instance reads.

use super::{
    coordinator_moved, fetched, topic_name, ClientError, Fetched, KafkaClient, DELIVERY_TIMEOUT,
    RETRY_BACKOFF,
};
use crate::peer::PeerClient;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, FetchRequest,
    FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ListOffsetsRequest,
    ListOffsetsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use millrace_shard::time::Instant;
use millrace_wire::codes as code;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// A partition: (topic, partition).
pub type Tp = (String, i32);

/// An offset to commit: partition, offset, metadata.
pub type CommitOffset = (Tp, i64, Option<String>);

/// A committed offset as OffsetFetch answers it: partition, offset (-1: none), metadata.
pub type Committed = (Tp, i64, Option<String>);

impl KafkaClient {
    /// The coordinator of `group`: the remembered one, or asked with FindCoordinator v4.
    pub async fn coordinator(&self, group: &str) -> Result<Rc<PeerClient>, ClientError> {
        if let Some(peer) = self.coordinators.borrow().get(group) {
            return Ok(peer.clone());
        }
        let _ = self.metadata(Some(&[]), false).await?;
        let find = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
        let found: FindCoordinatorResponse = self
            .any_broker()?
            .send(10, 4, &find)
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let c = found
            .coordinators
            .first()
            .ok_or_else(|| ClientError::Unreachable("no coordinator in the answer".into()))?;
        if c.error_code != code::NONE {
            return Err(ClientError::Kafka(c.error_code, "FindCoordinator".into()));
        }
        let peer = self
            .peer(&c.host, c.port as u16)
            .map_err(ClientError::Unreachable)?;
        self.coordinators
            .borrow_mut()
            .insert(group.to_string(), peer.clone());
        Ok(peer)
    }

    /// Forgets `group`'s coordinator (an answer said it moved, or it did not answer).
    pub fn coordinator_lost(&self, group: &str) {
        self.coordinators.borrow_mut().remove(group);
    }

    /// One ConsumerGroupHeartbeat (v1: the member brings its own id) to `group`'s coordinator.
    /// A moved coordinator comes back as the answer's error, and is forgotten.
    pub async fn heartbeat(
        &self,
        group: &str,
        req: &ConsumerGroupHeartbeatRequest,
    ) -> Result<ConsumerGroupHeartbeatResponse, ClientError> {
        let peer = self.coordinator(group).await?;
        let sent: Result<ConsumerGroupHeartbeatResponse, _> = peer.send(68, 1, req).await;
        match sent {
            Ok(resp) => {
                if coordinator_moved(resp.error_code) {
                    self.coordinator_lost(group);
                }
                Ok(resp)
            }
            Err(e) => {
                self.coordinator_lost(group);
                Err(ClientError::Unreachable(e.to_string()))
            }
        }
    }

    /// Commits `offsets` for `group` as an admin does (no member, generation -1: accepted while
    /// the group has no active members). Per-partition codes.
    pub async fn commit(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<Vec<(String, i32, i16)>, ClientError> {
        let offsets: Vec<CommitOffset> = offsets
            .iter()
            .map(|(t, p, o)| ((t.clone(), *p), *o, None))
            .collect();
        self.commit_as(group, None, &offsets).await
    }

    /// Commits `offsets` for `group`, as the member (id, epoch) when given (OffsetCommit v9, the
    /// version KIP-848 members must use), else as an admin (v8, generation -1). Retried while
    /// the coordinator moves, up to the delivery timeout. Per-partition codes.
    pub async fn commit_as(
        &self,
        group: &str,
        member: Option<(&str, i32)>,
        offsets: &[CommitOffset],
    ) -> Result<Vec<(String, i32, i16)>, ClientError> {
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let outcome = self.commit_once(group, member, offsets).await;
            let retry = match &outcome {
                Ok(codes) => codes.iter().any(|(_, _, c)| coordinator_moved(*c)),
                Err(ClientError::Kafka(c, _)) => coordinator_moved(*c),
                Err(ClientError::Unreachable(_)) => true,
                Err(_) => false,
            };
            if !retry || Instant::now() >= deadline {
                return outcome;
            }
            self.coordinator_lost(group);
            millrace_shard::time::sleep(RETRY_BACKOFF).await;
        }
    }

    async fn commit_once(
        &self,
        group: &str,
        member: Option<(&str, i32)>,
        offsets: &[CommitOffset],
    ) -> Result<Vec<(String, i32, i16)>, ClientError> {
        let peer = self.coordinator(group).await?;
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), o, metadata) in offsets {
            topics.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(
                        metadata.as_ref().map(|m| StrBytes::from_string(m.clone())),
                    ),
            );
        }
        let (member_id, epoch, version) = match member {
            Some((id, epoch)) => (id.to_string(), epoch, 9),
            None => (String::new(), -1, 8),
        };
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_member_id(StrBytes::from_string(member_id))
            .with_generation_id_or_member_epoch(epoch)
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(parts)
                    })
                    .collect(),
            );
        let resp: OffsetCommitResponse = peer.send(8, version, &req).await.map_err(|e| {
            self.coordinator_lost(group);
            ClientError::Unreachable(e.to_string())
        })?;
        Ok(resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect())
    }

    /// `group`'s committed offsets for `partitions` (OffsetFetch v8, stable offsets only, as a
    /// consumer with `isolation.level=read_committed` asks; a partition with a pending
    /// transactional commit answers UNSTABLE_OFFSET_COMMIT and is asked again).
    pub async fn committed(
        &self,
        group: &str,
        partitions: &[Tp],
    ) -> Result<Vec<Committed>, ClientError> {
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let outcome = self.committed_once(group, partitions).await;
            let retry = match &outcome {
                Err(ClientError::Kafka(c, _)) => {
                    coordinator_moved(*c) || *c == code::UNSTABLE_OFFSET_COMMIT
                }
                Err(ClientError::Unreachable(_)) => true,
                _ => false,
            };
            if !retry || Instant::now() >= deadline {
                return outcome;
            }
            self.coordinator_lost(group);
            millrace_shard::time::sleep(RETRY_BACKOFF).await;
        }
    }

    async fn committed_once(
        &self,
        group: &str,
        partitions: &[Tp],
    ) -> Result<Vec<Committed>, ClientError> {
        let peer = self.coordinator(group).await?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t).or_default().push(*p);
        }
        let req = OffsetFetchRequest::default()
            .with_require_stable(true)
            .with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_member_id(None)
                .with_member_epoch(-1)
                .with_topics(Some(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(topic_name(t))
                                .with_partition_indexes(ps)
                        })
                        .collect(),
                ))]);
        let resp: OffsetFetchResponse = peer.send(9, 8, &req).await.map_err(|e| {
            self.coordinator_lost(group);
            ClientError::Unreachable(e.to_string())
        })?;
        let g = resp
            .groups
            .first()
            .ok_or_else(|| ClientError::Unreachable("no group in the answer".into()))?;
        if g.error_code != code::NONE {
            return Err(ClientError::Kafka(g.error_code, "OffsetFetch".into()));
        }
        let mut out = Vec::new();
        for t in &g.topics {
            for p in &t.partitions {
                if p.error_code != code::NONE {
                    return Err(ClientError::Kafka(p.error_code, "OffsetFetch".into()));
                }
                out.push((
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                    p.metadata.as_ref().map(|m| m.to_string()),
                ));
            }
        }
        Ok(out)
    }

    /// The offset ListOffsets answers for `timestamp` (-2 earliest, -1 latest) in each of
    /// `partitions`, asked of each partition's leader (read_uncommitted).
    pub async fn list_offsets(
        &self,
        partitions: &[Tp],
        timestamp: i64,
    ) -> Result<Vec<(Tp, i64)>, ClientError> {
        let mut out = Vec::new();
        for (leader, parts) in self.by_leader(partitions).await? {
            let peer = self.broker(leader)?;
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &parts {
                topics.entry(t).or_default().push(*p);
            }
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_current_leader_epoch(-1)
                                                .with_timestamp(timestamp)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let resp: ListOffsetsResponse = peer
                .send(2, 5, &req)
                .await
                .map_err(|e| ClientError::Unreachable(e.to_string()))?;
            for t in &resp.topics {
                for p in &t.partitions {
                    let topic = t.name.0.to_string();
                    if p.error_code != code::NONE {
                        self.forget(&topic);
                        return Err(ClientError::Kafka(p.error_code, "ListOffsets".into()));
                    }
                    out.push(((topic, p.partition_index), p.offset));
                }
            }
        }
        Ok(out)
    }

    /// `partitions` grouped by their leader; a partition without one is an error.
    async fn by_leader(&self, partitions: &[Tp]) -> Result<BTreeMap<i32, Vec<Tp>>, ClientError> {
        let mut out: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
        for (t, p) in partitions {
            let meta = self.topic_metadata(t, false).await?;
            let info = meta.topics.get(t).ok_or(ClientError::UnknownTopic)?;
            let leader = info
                .partitions
                .iter()
                .find(|x| x.id == *p)
                .ok_or(ClientError::UnknownPartition)?
                .leader;
            if leader < 0 {
                self.forget(t);
                return Err(ClientError::Kafka(
                    code::LEADER_NOT_AVAILABLE,
                    "no leader".into(),
                ));
            }
            out.entry(leader).or_default().push((t.clone(), *p));
        }
        Ok(out)
    }

    /// Reads `positions` (partition, offset): one Fetch v12 per leader, all at once, each
    /// waiting up to `max_wait` for `min_bytes`; at most `max_bytes` per leader's answer.
    /// Each partition's records or error; a leader that did not answer fails its partitions.
    pub async fn fetch_many(
        self: &Rc<Self>,
        positions: &[(Tp, i64)],
        max_bytes: i32,
        min_bytes: i32,
        max_wait: Duration,
    ) -> Result<Vec<(Tp, Result<Fetched, ClientError>)>, ClientError> {
        let tps: Vec<Tp> = positions.iter().map(|(tp, _)| tp.clone()).collect();
        let leaders = self.by_leader(&tps).await?;
        let offset_of: BTreeMap<Tp, i64> = positions.iter().cloned().collect();
        let asks = leaders.into_iter().map(|(leader, parts)| {
            let client = self.clone();
            let wanted: Vec<(Tp, i64)> = parts
                .into_iter()
                .map(|tp| {
                    let o = offset_of[&tp];
                    (tp, o)
                })
                .collect();
            async move {
                let outcome = client
                    .fetch_from(leader, &wanted, max_bytes, min_bytes, max_wait)
                    .await;
                match outcome {
                    Ok(each) => each,
                    Err(e) => wanted
                        .into_iter()
                        .map(|(tp, _)| (tp, Err(e.clone())))
                        .collect(),
                }
            }
        });
        let answers = crate::mesh::join_all(asks.collect()).await;
        Ok(answers.into_iter().flatten().collect())
    }

    async fn fetch_from(
        &self,
        leader: i32,
        wanted: &[(Tp, i64)],
        max_bytes: i32,
        min_bytes: i32,
        max_wait: Duration,
    ) -> Result<Vec<(Tp, Result<Fetched, ClientError>)>, ClientError> {
        let peer = self.broker(leader)?;
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for ((t, p), offset) in wanted {
            topics.entry(t).or_default().push(
                FetchPartition::default()
                    .with_partition(*p)
                    .with_fetch_offset(*offset)
                    .with_partition_max_bytes(max_bytes)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1),
            );
        }
        let wait_ms = max_wait.as_millis().min(i32::MAX as u128) as i32;
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(wait_ms)
            .with_min_bytes(min_bytes.max(1))
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        FetchTopic::default()
                            .with_topic(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp: FetchResponse = peer
            .send_within(1, 12, &req, max_wait + Duration::from_secs(10))
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let mut out = Vec::new();
        for t in &resp.responses {
            let topic = t.topic.0.to_string();
            for p in &t.partitions {
                let tp = (topic.clone(), p.partition_index);
                let Some(offset) = wanted.iter().find(|(w, _)| *w == tp).map(|(_, o)| *o) else {
                    continue;
                };
                if p.error_code != code::NONE {
                    self.forget(&topic);
                }
                out.push((tp, fetched(p, offset)));
            }
        }
        Ok(out)
    }
}
