//! Temporary stand-in for `crate::share_state` (being written on a branch): same signatures.
#![allow(dead_code, unused_variables)]
use crate::shard::Shard;
use crate::share::record::{ShareStateKey, StateBatch};
use std::rc::Rc;

pub struct PersistedState {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub batches: Vec<StateBatch>,
}

pub struct StateWriteRequest {
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub batches: Vec<StateBatch>,
}

pub async fn read(
    shard: &Rc<Shard>,
    key: &ShareStateKey,
    leader_epoch: i32,
) -> Result<Option<PersistedState>, i16> {
    Ok(None)
}

pub async fn write(
    shard: &Rc<Shard>,
    key: &ShareStateKey,
    req: StateWriteRequest,
) -> Result<(), i16> {
    Ok(())
}

pub async fn delete(shard: &Rc<Shard>, keys: &[ShareStateKey]) -> Result<(), i16> {
    Ok(())
}
