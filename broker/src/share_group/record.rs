//! The durable form of one share group, written to `__consumer_offsets` whenever its state
//! changes and replayed at start-up. Everything but session timers is kept, so a member still
//! running after a broker restart keeps its epoch and assignment.
//!
//! Layout, version 0 (integers big-endian; `str` = u16 length + UTF-8; `opt` = u8 0/1 then the
//! value; `uuid` = 16 bytes; `assignment` = u32 topics x (uuid | u32 n | n x i32); the encoding
//! helpers are the consumer group record's):
//!
//! ```text
//! u8 version=0 | str group_id | i32 group_epoch | i32 assignment_epoch
//! | u32 topics x (str name | uuid id | i32 partitions)
//! | u32 members x ( str member_id | i32 member_epoch | opt str rack_id | str client_id
//!     | str client_host | u32 n x str subscribed | assignment assigned | assignment target )
//! ```
//!
//! Version 1 appends `assignment initialized` (the partitions with share state); a version 0
//! record reads as none.
//!
//! It travels inside a `__consumer_offsets` batch whose CRC-32C covers it; decoding checks
//! every count against the bytes left and never panics.

use super::{Group, Member};
use crate::consumer_group::record::{
    put_assignment, put_opt_str, put_str, put_topics, put_u32, Reader,
};
use std::collections::{BTreeMap, BTreeSet};

const VERSION: u8 = 1;

pub(super) fn encode(group_id: &str, g: &Group) -> Vec<u8> {
    let mut b = vec![VERSION];
    put_str(&mut b, group_id);
    b.extend_from_slice(&g.group_epoch.to_be_bytes());
    b.extend_from_slice(&g.assignment_epoch.to_be_bytes());
    put_topics(&mut b, &g.topics);
    put_u32(&mut b, g.members.len());
    for m in g.members.values() {
        put_str(&mut b, &m.member_id);
        b.extend_from_slice(&m.member_epoch.to_be_bytes());
        put_opt_str(&mut b, m.rack_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        put_u32(&mut b, m.subscribed.len());
        for t in &m.subscribed {
            put_str(&mut b, t);
        }
        put_assignment(&mut b, &m.assigned);
        put_assignment(
            &mut b,
            g.target.get(&m.member_id).unwrap_or(&BTreeMap::new()),
        );
    }
    put_assignment(&mut b, &g.initialized);
    b
}

/// The group a record describes; members' sessions start at `now_ms`. None if the bytes are
/// not a whole, valid record.
pub(super) fn decode(
    bytes: &[u8],
    now_ms: i64,
    session_timeout_ms: i32,
) -> Option<(String, Group)> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version > VERSION {
        return None;
    }
    let group_id = r.str()?;
    let mut g = Group {
        group_epoch: r.i32()?,
        assignment_epoch: r.i32()?,
        ..Group::default()
    };
    g.topics = r.topics()?;
    for _ in 0..r.count(2 + 4 + 1 + 2 + 2 + 4 + 4 + 4)? {
        let member_id = r.str()?;
        let member_epoch = r.i32()?;
        let rack_id = r.opt_str()?;
        let client_id = r.str()?;
        let client_host = r.str()?;
        let mut subscribed = BTreeSet::new();
        for _ in 0..r.count(2)? {
            subscribed.insert(r.str()?);
        }
        let assigned = r.assignment()?;
        let target = r.assignment()?;
        g.target.insert(member_id.clone(), target);
        let member = Member {
            member_id: member_id.clone(),
            member_epoch,
            rack_id,
            client_id,
            client_host,
            subscribed,
            assigned,
            session_deadline_ms: now_ms.saturating_add(i64::from(session_timeout_ms)),
        };
        g.members.insert(member_id, member);
    }
    if version >= 1 {
        g.initialized = r.assignment()?;
    }
    r.0.is_empty().then_some((group_id, g))
}
