//! The durable form of one consumer group, written to `__consumer_offsets` whenever its state
//! changes and replayed at start-up. Everything but timers is kept: after a restart members get
//! a fresh session (and a fresh rebalance timeout for a pending revocation), so a member that
//! is still running keeps its epoch and partitions without a rebalance.
//!
//! Layout, version 1 (integers big-endian; `str` = u16 length + UTF-8; `opt` = u8 0/1 then the
//! value; `uuid` = 16 bytes; `assignment` = u32 topics x (uuid | u32 n | n x i32)):
//!
//! ```text
//! u8 version=1 | str group_id | i32 group_epoch | i32 assignment_epoch | str assignor
//! | u32 topics x (str name | uuid id | i32 partitions)
//! | u32 members x ( str member_id | opt str instance_id | opt str rack_id | str client_id
//!     | str client_host | u32 n x str subscribed | opt str subscribed_regex (v1)
//!     | opt str server_assignor
//!     | i32 rebalance_timeout_ms | u8 state (0 stable, 1 unrevoked, 2 unreleased)
//!     | i32 member_epoch | i32 previous_member_epoch | u8 left_static
//!     | assignment assigned | assignment pending_revocation | assignment target
//!     | str principal | u32 n x str regex_topic                                   (v2) )
//! | u32 regexes x (str regex | u32 n x str topic)                                  (v1)
//! ```
//!
//! Version 2 adds each member's principal and the regex matches it may describe (so a restart
//! keeps each member's view until its next heartbeat). Version 1 lacks them (its members' matches
//! are filtered again at their next heartbeat); version 0 (written before regex subscriptions)
//! also lacks the two fields marked v1 and is still read: its members have no regex. (A broker from before reads no version 1 record: after a
//! downgrade such a group's members rejoin, their offsets kept.) Kafka keeps the member's `SubscribedTopicRegex` in its
//! member record (a plain nullable field of ConsumerGroupMemberMetadataValue) and each regex's
//! resolved topics in a ConsumerGroupRegularExpression record; ours are the two v1 fields.
//!
//! Like the classic record it travels inside a `__consumer_offsets` batch whose CRC-32C covers
//! it; decoding checks every count against the bytes left and never panics.

use super::{Assignment, Group, Member, MemberState, TopicInfo};
use std::collections::{BTreeMap, BTreeSet};

const VERSION: u8 = 2;
/// The layout before members' principals.
const VERSION_1: u8 = 1;
/// The layout before regex subscriptions.
const VERSION_0: u8 = 0;

pub(super) fn encode(group_id: &str, g: &Group) -> Vec<u8> {
    let mut b = vec![VERSION];
    put_str(&mut b, group_id);
    b.extend_from_slice(&g.group_epoch.to_be_bytes());
    b.extend_from_slice(&g.assignment_epoch.to_be_bytes());
    put_str(&mut b, &g.assignor);
    put_topics(&mut b, &g.topics);
    put_u32(&mut b, g.members.len());
    for m in g.members.values() {
        put_str(&mut b, &m.member_id);
        put_opt_str(&mut b, m.instance_id.as_deref());
        put_opt_str(&mut b, m.rack_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        put_u32(&mut b, m.subscribed.len());
        for t in &m.subscribed {
            put_str(&mut b, t);
        }
        put_opt_str(&mut b, m.subscribed_regex.as_deref());
        put_opt_str(&mut b, m.server_assignor.as_deref());
        b.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        b.push(match m.state {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        });
        b.extend_from_slice(&m.member_epoch.to_be_bytes());
        b.extend_from_slice(&m.previous_member_epoch.to_be_bytes());
        b.push(u8::from(m.left_static));
        put_assignment(&mut b, &m.assigned);
        put_assignment(&mut b, &m.pending_revocation);
        put_assignment(
            &mut b,
            g.target.get(&m.member_id).unwrap_or(&Assignment::new()),
        );
        put_str(&mut b, &m.principal);
        put_u32(&mut b, m.regex_topics.len());
        for t in &m.regex_topics {
            put_str(&mut b, t);
        }
    }
    put_u32(&mut b, g.regexes.len());
    for (re, topics) in g.regexes.iter() {
        put_str(&mut b, re);
        put_u32(&mut b, topics.len());
        for t in topics {
            put_str(&mut b, t);
        }
    }
    b
}

/// The group id and group, timers set from `now_ms`; None if the bytes are not a record.
pub(super) fn decode(
    bytes: &[u8],
    now_ms: i64,
    session_timeout_ms: i32,
) -> Option<(String, Group)> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if ![VERSION, VERSION_1, VERSION_0].contains(&version) {
        return None;
    }
    let group_id = r.str()?;
    let mut g = Group {
        group_epoch: r.i32()?,
        assignment_epoch: r.i32()?,
        assignor: r.str()?,
        ..Group::default()
    };
    g.topics = r.topics()?;
    for _ in 0..r.count(MEMBER_BYTES_MIN)? {
        let (m, target) = member(&mut r, version, now_ms, session_timeout_ms)?;
        g.target.insert(m.member_id.clone(), target);
        g.members.insert(m.member_id.clone(), m);
    }
    if version != VERSION_0 {
        for _ in 0..r.count(2 + 4)? {
            let re = r.str()?;
            let mut topics = BTreeSet::new();
            for _ in 0..r.count(2)? {
                topics.insert(r.str()?);
            }
            if !g.regexes.restore(re, topics) {
                // Validated before it was written: only another regex engine could refuse it.
                // The member keeps the string and matches nothing until it sends it again.
                tracing::warn!(group = %group_id, "a stored subscription regex no longer compiles");
            }
        }
    }
    if version == VERSION_1 {
        // Before principals were kept, a member's topics were all its regex matched.
        for m in g.members.values_mut() {
            if let Some(topics) = m
                .subscribed_regex
                .as_deref()
                .and_then(|re| g.regexes.topics(re))
            {
                m.regex_topics = topics.clone();
            }
        }
    }
    r.0.is_empty().then_some((group_id, g))
}

/// Smallest member (version 0; version 1 adds a byte): five strings/optionals, empty lists, the
/// fixed fields.
const MEMBER_BYTES_MIN: usize = 2 + 1 + 1 + 2 + 2 + 4 + 1 + 4 + 1 + 4 + 4 + 1 + 4 + 4 + 4;

fn member(
    r: &mut Reader,
    version: u8,
    now_ms: i64,
    session_timeout_ms: i32,
) -> Option<(Member, Assignment)> {
    let member_id = r.str()?;
    let instance_id = r.opt_str()?;
    let rack_id = r.opt_str()?;
    let client_id = r.str()?;
    let client_host = r.str()?;
    let mut subscribed = BTreeSet::new();
    for _ in 0..r.count(2)? {
        subscribed.insert(r.str()?);
    }
    let subscribed_regex = match version {
        VERSION_0 => None,
        _ => r.opt_str()?,
    };
    if subscribed_regex.as_ref().is_some_and(|re| re.is_empty()) {
        return None;
    }
    let server_assignor = r.opt_str()?;
    let rebalance_timeout_ms = r.i32()?;
    let state = match r.u8()? {
        0 => MemberState::Stable,
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        _ => return None,
    };
    let member_epoch = r.i32()?;
    let previous_member_epoch = r.i32()?;
    let left_static = match r.u8()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let assigned = r.assignment()?;
    let pending_revocation = r.assignment()?;
    let target = r.assignment()?;
    let (principal, regex_topics, regex_filtered_at) = match version {
        VERSION_0 | VERSION_1 => (String::new(), BTreeSet::new(), None),
        _ => {
            let principal = r.str()?;
            let mut topics = BTreeSet::new();
            for _ in 0..r.count(2)? {
                topics.insert(r.str()?);
            }
            // Filtered again at the next refresh, with the ACLs of then.
            (principal, topics, None)
        }
    };
    let revocation_deadline_ms = (state == MemberState::UnrevokedPartitions)
        .then(|| now_ms.saturating_add(i64::from(rebalance_timeout_ms.max(0))));
    let m = Member {
        member_id,
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed,
        subscribed_regex,
        principal,
        regex_topics,
        regex_filtered_at,
        server_assignor,
        rebalance_timeout_ms,
        state,
        member_epoch,
        previous_member_epoch,
        assigned,
        pending_revocation,
        session_deadline_ms: now_ms.saturating_add(i64::from(session_timeout_ms)),
        revocation_deadline_ms,
        left_static,
    };
    Some((m, target))
}

pub(crate) fn put_u32(b: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("counts fit u32");
    b.extend_from_slice(&n.to_be_bytes());
}

pub(crate) fn put_str(b: &mut Vec<u8>, s: &str) {
    // Ids and names are bounded far below u16::MAX by the heartbeat checks.
    let n = u16::try_from(s.len()).expect("strings in a group record fit u16");
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_opt_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => b.push(0),
        Some(s) => {
            b.push(1);
            put_str(b, s);
        }
    }
}

/// `u32 n x (str name | uuid id | i32 partitions)`: a group's subscribed topics' metadata.
pub(crate) fn put_topics(b: &mut Vec<u8>, topics: &BTreeMap<String, TopicInfo>) {
    put_u32(b, topics.len());
    for (name, info) in topics {
        put_str(b, name);
        b.extend_from_slice(info.id.as_bytes());
        b.extend_from_slice(&info.partitions.to_be_bytes());
    }
}

pub(crate) fn put_assignment(b: &mut Vec<u8>, a: &Assignment) {
    put_u32(b, a.len());
    for (id, ps) in a {
        b.extend_from_slice(id.as_bytes());
        put_u32(b, ps.len());
        for p in ps {
            b.extend_from_slice(&p.to_be_bytes());
        }
    }
}

/// Reads what the `put_*` functions wrote; every read checks the bytes left (None when short).
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    /// A u32 count whose elements (at least `min_bytes` each) fit in what is left.
    pub(crate) fn count(&mut self, min_bytes: usize) -> Option<usize> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        (n.checked_mul(min_bytes)? <= self.0.len()).then_some(n)
    }
    pub(crate) fn str(&mut self) -> Option<String> {
        let n = u16::from_be_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    pub(crate) fn opt_str(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
    /// What [`put_topics`] wrote.
    pub(crate) fn topics(&mut self) -> Option<BTreeMap<String, TopicInfo>> {
        let mut topics = BTreeMap::new();
        for _ in 0..self.count(2 + 16 + 4)? {
            let name = self.str()?;
            let id = uuid::Uuid::from_slice(self.take(16)?).ok()?;
            let partitions = self.i32()?;
            topics.insert(name, TopicInfo { id, partitions });
        }
        Some(topics)
    }
    pub(crate) fn assignment(&mut self) -> Option<Assignment> {
        let mut a = BTreeMap::new();
        for _ in 0..self.count(16 + 4)? {
            let id = uuid::Uuid::from_slice(self.take(16)?).ok()?;
            let mut ps = BTreeSet::new();
            for _ in 0..self.count(4)? {
                ps.insert(self.i32()?);
            }
            a.insert(id, ps);
        }
        Some(a)
    }
}
