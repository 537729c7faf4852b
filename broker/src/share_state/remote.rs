//! Share-state requests for a state partition another broker leads: Kafka's inter-broker
//! messages (Read/Write/Delete/InitializeShareGroupState, ReadShareGroupStateSummary, v0) to
//! that broker's client listener, one share partition per request. Its partition-level error
//! is the answer; a broker out of reach is COORDINATOR_NOT_AVAILABLE. A read of a share
//! partition with no state is answered INVALID_REQUEST, as Kafka's coordinator answers it;
//! the request was checked here first, so that code means "no state".
//!
//! Lives on the calling shard (its clients are in [`super::ShardShareStates`]).

use super::{states_of, OpResult, PersistedState, StateOp};
use crate::errors::code;
use crate::peer::PeerClient;
use crate::shard::Shard;
use crate::share::record::{ShareStateKey, StateBatch};
use kafka_protocol::messages::{
    delete_share_group_state_request as delete_req,
    initialize_share_group_state_request as init_req, read_share_group_state_request as read_req,
    read_share_group_state_summary_request as summary_req,
    write_share_group_state_request as write_req,
};
use kafka_protocol::messages::{
    DeleteShareGroupStateRequest, InitializeShareGroupStateRequest, ReadShareGroupStateRequest,
    ReadShareGroupStateSummaryRequest, WriteShareGroupStateRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;

/// The version of every share-state request sent.
const VERSION: i16 = 0;

/// Runs `op` for `key` on broker `broker`.
pub(super) async fn send(
    shard: &Rc<Shard>,
    broker: i32,
    key: &ShareStateKey,
    op: StateOp,
) -> OpResult {
    let client = client(shard, broker)?;
    let group = || StrBytes::from_string(key.group_id.clone());
    let unreachable = |e: crate::peer::PeerError| {
        tracing::debug!(broker, error = %e, "share-state request not answered");
        code::COORDINATOR_NOT_AVAILABLE
    };
    match op {
        StateOp::Read { leader_epoch } => {
            let partition = read_req::PartitionData::default()
                .with_partition(key.partition)
                .with_leader_epoch(leader_epoch);
            let req = ReadShareGroupStateRequest::default()
                .with_group_id(group())
                .with_topics(vec![read_req::ReadStateData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![partition])]);
            let resp = client.request(VERSION, &req).await.map_err(unreachable)?;
            let p = resp
                .results
                .into_iter()
                .flat_map(|t| t.partitions)
                .next()
                .ok_or(code::UNKNOWN_SERVER_ERROR)?;
            match p.error_code {
                code::NONE => Ok(Some(PersistedState {
                    state_epoch: p.state_epoch,
                    leader_epoch,
                    start_offset: p.start_offset,
                    batches: p
                        .state_batches
                        .iter()
                        .map(|b| StateBatch {
                            first_offset: b.first_offset,
                            last_offset: b.last_offset,
                            delivery_state: b.delivery_state,
                            delivery_count: b.delivery_count,
                        })
                        .collect(),
                })),
                code::INVALID_REQUEST => Ok(None),
                e => Err(e),
            }
        }
        StateOp::Write(w) => {
            let batches = w
                .batches
                .iter()
                .map(|b| {
                    write_req::StateBatch::default()
                        .with_first_offset(b.first_offset)
                        .with_last_offset(b.last_offset)
                        .with_delivery_state(b.delivery_state)
                        .with_delivery_count(b.delivery_count)
                })
                .collect();
            let partition = write_req::PartitionData::default()
                .with_partition(key.partition)
                .with_state_epoch(w.state_epoch)
                .with_leader_epoch(w.leader_epoch)
                .with_start_offset(w.start_offset)
                .with_state_batches(batches);
            let req = WriteShareGroupStateRequest::default()
                .with_group_id(group())
                .with_topics(vec![write_req::WriteStateData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![partition])]);
            let resp = client.request(VERSION, &req).await.map_err(unreachable)?;
            let error = resp
                .results
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code);
            done(error.into_iter().next())
        }
        StateOp::Initialize {
            state_epoch,
            start_offset,
        } => {
            let partition = init_req::PartitionData::default()
                .with_partition(key.partition)
                .with_state_epoch(state_epoch)
                .with_start_offset(start_offset);
            let req = InitializeShareGroupStateRequest::default()
                .with_group_id(group())
                .with_topics(vec![init_req::InitializeStateData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![partition])]);
            let resp = client.request(VERSION, &req).await.map_err(unreachable)?;
            let error = resp
                .results
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code);
            done(error.into_iter().next())
        }
        StateOp::Delete => {
            let partition = delete_req::PartitionData::default().with_partition(key.partition);
            let req = DeleteShareGroupStateRequest::default()
                .with_group_id(group())
                .with_topics(vec![delete_req::DeleteStateData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![partition])]);
            let resp = client.request(VERSION, &req).await.map_err(unreachable)?;
            let error = resp
                .results
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code);
            done(error.into_iter().next())
        }
        StateOp::Summary => {
            let partition = summary_req::PartitionData::default()
                .with_partition(key.partition)
                .with_leader_epoch(-1);
            let req = ReadShareGroupStateSummaryRequest::default()
                .with_group_id(group())
                .with_topics(vec![summary_req::ReadStateSummaryData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![partition])]);
            let resp = client.request(VERSION, &req).await.map_err(unreachable)?;
            let p = resp
                .results
                .into_iter()
                .flat_map(|t| t.partitions)
                .next()
                .ok_or(code::UNKNOWN_SERVER_ERROR)?;
            if p.error_code != code::NONE {
                return Err(p.error_code);
            }
            Ok(Some(PersistedState {
                state_epoch: p.state_epoch,
                leader_epoch: p.leader_epoch,
                start_offset: p.start_offset,
                batches: Vec::new(),
            }))
        }
    }
}

/// Ok for an answer without error; a response without the partition is a broken peer.
fn done(error: Option<i16>) -> OpResult {
    match error {
        Some(code::NONE) => Ok(None),
        Some(e) => Err(e),
        None => Err(code::UNKNOWN_SERVER_ERROR),
    }
}

/// The client of broker `broker`'s client listener.
fn client(shard: &Shard, broker: i32) -> Result<Rc<PeerClient>, i16> {
    let addr = crate::follower::leader_address(shard, broker).map_err(|e| {
        tracing::debug!(broker, error = %e, "no address for the share coordinator");
        code::COORDINATOR_NOT_AVAILABLE
    })?;
    Ok(states_of(shard).peers.get(broker, addr))
}
