//! Share groups (KIP-932) on the coordinating shard: ShareGroupHeartbeat and
//! ShareGroupDescribe run the sans-I/O [`crate::share_group::ShareGroups`] of the shard that owns
//! the group's `__consumer_offsets` partition, and its record is appended (and fsynced) before a
//! heartbeat that changed it is answered, as for KIP-848 groups. A group id is one kind of
//! group: a share heartbeat for a classic or consumer group (or an id known only by committed
//! offsets) is GROUP_ID_NOT_FOUND, as Kafka answers "not a share group".

use super::{
    append_durably, groups_of, offsets_partition_of, persist_records, share_group_key, tombstone,
    GroupOperation, ImageTopics,
};
use crate::consumer_group::{Assignment, TopicView};
use crate::errors::code;
use crate::shard::Shard;
use crate::share_group::{ShareGroupView, ShareHeartbeat, ShareHeartbeatResponse};
use std::rc::Rc;

/// ShareGroupHeartbeat for one group.
pub struct ShareHeartbeatOp(pub Box<ShareHeartbeat>);

/// ShareGroupDescribe for one group: Err(GROUP_ID_NOT_FOUND) if not a share group here.
pub struct ShareDescribe(pub String);

/// AlterShareGroupOffsets, the group's side: records the partitions as having share state
/// (creating the empty share group if needed). NON_EMPTY_GROUP while it has members,
/// GROUP_ID_NOT_FOUND for a group of another kind.
pub struct ShareInitialize(pub String, pub Assignment);

/// DeleteShareGroupOffsets, the group's side: forgets the topics' share state and returns the
/// partitions that had some (their state is the caller's to delete).
pub struct ShareUninitialize(pub String, pub Vec<uuid::Uuid>);

impl GroupOperation for ShareInitialize {
    type Answer = Result<(), i16>;

    async fn execute(self, shard: Rc<Shard>, _now: i64) -> Self::Answer {
        let groups = groups_of(&shard);
        if other_kind(&shard, &self.0) {
            return Err(code::GROUP_ID_NOT_FOUND);
        }
        let changed = {
            let mut share = groups.share.borrow_mut();
            let before = share.record(&self.0);
            share.initialize(&self.0, &self.1)?;
            share.record(&self.0) != before
        };
        if changed {
            persist(&shard, std::slice::from_ref(&self.0)).await;
        }
        Ok(())
    }
}

impl GroupOperation for ShareUninitialize {
    type Answer = Result<Assignment, i16>;

    async fn execute(self, shard: Rc<Shard>, _now: i64) -> Self::Answer {
        let groups = groups_of(&shard);
        let gone = groups.share.borrow_mut().uninitialize(&self.0, &self.1)?;
        if !gone.is_empty() {
            persist(&shard, std::slice::from_ref(&self.0)).await;
        }
        Ok(gone)
    }
}

/// Whether `group_id` is a group of another kind (classic, consumer, or offsets only).
fn other_kind(shard: &Shard, group_id: &str) -> bool {
    let groups = groups_of(shard);
    let other = groups.consumer.borrow().contains(group_id)
        || groups.machine.borrow().describe(group_id).is_some()
        || groups.offsets.borrow().contains_key(group_id);
    other && !groups.share.borrow().contains(group_id)
}

impl GroupOperation for ShareHeartbeatOp {
    type Answer = ShareHeartbeatResponse;

    async fn execute(self, shard: Rc<Shard>, now: i64) -> ShareHeartbeatResponse {
        heartbeat(&shard, now, *self.0).await
    }
}

impl GroupOperation for ShareDescribe {
    type Answer = Result<ShareGroupView, i16>;

    async fn execute(self, shard: Rc<Shard>, _now: i64) -> Self::Answer {
        let described = groups_of(&shard).share.borrow().describe(&self.0);
        described.ok_or(code::GROUP_ID_NOT_FOUND)
    }
}

async fn heartbeat(shard: &Rc<Shard>, now: i64, req: ShareHeartbeat) -> ShareHeartbeatResponse {
    let group_id = req.group_id.clone();
    let groups = groups_of(shard);
    if other_kind(shard, &group_id) {
        return ShareHeartbeatResponse::error(
            code::GROUP_ID_NOT_FOUND,
            format!("Group {group_id} is not a share group."),
        );
    }
    let image = shard.image();
    let view = ImageTopics::new(shard, &image);
    let lookup = |name: &str| view.topic(name);
    let before = groups.share.borrow().record(&group_id);
    let resp = groups.share.borrow_mut().heartbeat(now, req, &lookup);
    if resp.error_code != code::NONE {
        tracing::debug!(group = %group_id, error = resp.error_code, message = ?resp.error_message,
            "share group heartbeat refused");
    }
    if groups.share.borrow().record(&group_id) != before {
        // Durable before answered, as for consumer groups.
        persist(shard, std::slice::from_ref(&group_id)).await;
    }
    resp
}

/// Expires members whose session ran out and persists the groups that changed.
pub(super) async fn tick(shard: &Rc<Shard>, now: i64) {
    let groups = groups_of(shard);
    let due = groups
        .share
        .borrow()
        .next_deadline_ms()
        .is_some_and(|d| d <= now);
    if !due {
        return;
    }
    let image = shard.image();
    let view = ImageTopics::new(shard, &image);
    let lookup = |name: &str| view.topic(name);
    let changed: Vec<String> = groups
        .share
        .borrow_mut()
        .tick(now, &lookup)
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    persist(shard, &changed).await;
}

/// DeleteGroups of a share group: refused while it has members; otherwise its record goes.
pub(super) async fn delete(shard: &Rc<Shard>, group_id: &str) -> i16 {
    if !groups_of(shard)
        .share
        .borrow_mut()
        .remove_if_empty(group_id)
    {
        return code::NON_EMPTY_GROUP;
    }
    let partition = offsets_partition_of(shard, group_id);
    match append_durably(shard, partition, &[tombstone(share_group_key(group_id))]).await {
        Ok(_) => code::NONE,
        Err(error) => error,
    }
}

async fn persist(shard: &Rc<Shard>, group_ids: &[String]) {
    let value = |g: &str| groups_of(shard).share.borrow().record(g);
    persist_records(shard, group_ids, share_group_key, &value).await;
}
