//! Share-state requests for a state partition another broker leads: Kafka's inter-broker
//! messages (Read/Write/Delete/InitializeShareGroupState, ReadShareGroupStateSummary, v0) to
//! that broker's client listener, one share partition per request. Its partition-level error
//! is the answer; a broker out of reach is COORDINATOR_NOT_AVAILABLE. A read of a share
//! partition with no state is answered INVALID_REQUEST, as Kafka's coordinator answers it;
//! the request was checked here first, so that code means "no state".
//!
//! Lives on the calling shard (its clients are in [`super::ShardShareStates`]).

use super::{states_of, OpResult, PersistedState, StateOp, StateWriteRequest};
use crate::errors::code;
use crate::peer::{PeerClient, PeerError};
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
    let answer = match op {
        StateOp::Read { leader_epoch } => read(&client, key, leader_epoch).await,
        StateOp::Write(w) => write(&client, key, &w).await,
        StateOp::Initialize {
            state_epoch,
            start_offset,
        } => initialize(&client, key, state_epoch, start_offset).await,
        StateOp::Delete => delete(&client, key).await,
        StateOp::Summary => summary(&client, key).await,
    };
    answer.map_err(|e| match e {
        Failure::Code(code) => code,
        Failure::Peer(e) => {
            tracing::debug!(broker, error = %e, "share-state request not answered");
            code::COORDINATOR_NOT_AVAILABLE
        }
    })
}

/// Why a request to another broker got no usable answer.
enum Failure {
    /// Its answer for the partition (or a response without one: UNKNOWN_SERVER_ERROR).
    Code(i16),
    /// No answer.
    Peer(PeerError),
}

impl From<PeerError> for Failure {
    fn from(e: PeerError) -> Self {
        Failure::Peer(e)
    }
}

type Answer = Result<Option<PersistedState>, Failure>;

fn group(key: &ShareStateKey) -> StrBytes {
    StrBytes::from_string(key.group_id.clone())
}

/// The one partition result of a response with one topic and one partition.
fn only<T>(partitions: impl IntoIterator<Item = T>) -> Result<T, Failure> {
    partitions
        .into_iter()
        .next()
        .ok_or(Failure::Code(code::UNKNOWN_SERVER_ERROR))
}

/// Ok(None) for an answer without error.
fn done(error_code: i16) -> Answer {
    match error_code {
        code::NONE => Ok(None),
        e => Err(Failure::Code(e)),
    }
}

async fn read(client: &PeerClient, key: &ShareStateKey, leader_epoch: i32) -> Answer {
    let partition = read_req::PartitionData::default()
        .with_partition(key.partition)
        .with_leader_epoch(leader_epoch);
    let req = ReadShareGroupStateRequest::default()
        .with_group_id(group(key))
        .with_topics(vec![read_req::ReadStateData::default()
            .with_topic_id(key.topic_id)
            .with_partitions(vec![partition])]);
    let resp = client.request(VERSION, &req).await?;
    let p = only(resp.results.into_iter().flat_map(|t| t.partitions))?;
    match p.error_code {
        code::NONE => {}
        code::INVALID_REQUEST => return Ok(None),
        e => return Err(Failure::Code(e)),
    }
    let batches = p
        .state_batches
        .iter()
        .map(|b| StateBatch {
            first_offset: b.first_offset,
            last_offset: b.last_offset,
            delivery_state: b.delivery_state,
            delivery_count: b.delivery_count,
        })
        .collect();
    Ok(Some(PersistedState {
        state_epoch: p.state_epoch,
        leader_epoch,
        start_offset: p.start_offset,
        batches,
    }))
}

async fn write(client: &PeerClient, key: &ShareStateKey, w: &StateWriteRequest) -> Answer {
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
        .with_group_id(group(key))
        .with_topics(vec![write_req::WriteStateData::default()
            .with_topic_id(key.topic_id)
            .with_partitions(vec![partition])]);
    let resp = client.request(VERSION, &req).await?;
    done(only(resp.results.into_iter().flat_map(|t| t.partitions))?.error_code)
}

async fn initialize(
    client: &PeerClient,
    key: &ShareStateKey,
    state_epoch: i32,
    start_offset: i64,
) -> Answer {
    let partition = init_req::PartitionData::default()
        .with_partition(key.partition)
        .with_state_epoch(state_epoch)
        .with_start_offset(start_offset);
    let req = InitializeShareGroupStateRequest::default()
        .with_group_id(group(key))
        .with_topics(vec![init_req::InitializeStateData::default()
            .with_topic_id(key.topic_id)
            .with_partitions(vec![partition])]);
    let resp = client.request(VERSION, &req).await?;
    done(only(resp.results.into_iter().flat_map(|t| t.partitions))?.error_code)
}

async fn delete(client: &PeerClient, key: &ShareStateKey) -> Answer {
    let partition = delete_req::PartitionData::default().with_partition(key.partition);
    let req = DeleteShareGroupStateRequest::default()
        .with_group_id(group(key))
        .with_topics(vec![delete_req::DeleteStateData::default()
            .with_topic_id(key.topic_id)
            .with_partitions(vec![partition])]);
    let resp = client.request(VERSION, &req).await?;
    done(only(resp.results.into_iter().flat_map(|t| t.partitions))?.error_code)
}

/// The summary as a state without batches (its defaults when the share partition has none).
async fn summary(client: &PeerClient, key: &ShareStateKey) -> Answer {
    let partition = summary_req::PartitionData::default()
        .with_partition(key.partition)
        .with_leader_epoch(-1);
    let req = ReadShareGroupStateSummaryRequest::default()
        .with_group_id(group(key))
        .with_topics(vec![summary_req::ReadStateSummaryData::default()
            .with_topic_id(key.topic_id)
            .with_partitions(vec![partition])]);
    let resp = client.request(VERSION, &req).await?;
    let p = only(resp.results.into_iter().flat_map(|t| t.partitions))?;
    done(p.error_code)?;
    Ok(Some(PersistedState {
        state_epoch: p.state_epoch,
        leader_epoch: p.leader_epoch,
        start_offset: p.start_offset,
        batches: Vec::new(),
    }))
}

/// The client of broker `broker`'s client listener.
fn client(shard: &Shard, broker: i32) -> Result<Rc<PeerClient>, i16> {
    let addr = crate::follower::leader_address(shard, broker).map_err(|e| {
        tracing::debug!(broker, error = %e, "no address for the share coordinator");
        code::COORDINATOR_NOT_AVAILABLE
    })?;
    Ok(states_of(shard).peers.get(broker, addr))
}
