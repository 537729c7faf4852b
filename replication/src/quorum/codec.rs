//! A bounded binary codec for raft-rs's `eraftpb::Message`, field by field, written here so
//! that protobuf never parses bytes from the network (protobuf 2.x, which raft-rs 0.7 depends
//! on, overflows its stack on crafted unknown fields: RUSTSEC-2024-0437).
//!
//! ```text
//! message (big-endian, version 0):
//!   version u8 = 0 | msg_type u8
//!   to u64 | from u64 | term u64 | log_term u64 | index u64 | commit u64 | commit_term u64
//!   request_snapshot u64 | reject u8 (0|1) | reject_hint u64 | priority i64
//!   context: len u32 | bytes                         (len <= CONTEXT_BYTES_MAX)
//!   entries: count u32 | entry * count               (count <= ENTRIES_PER_MESSAGE_MAX)
//!   snapshot (MsgSnapshot only):
//!     index u64 | term u64 | voters: count u32 | u64 * count   (count <= VOTERS_MAX)
//!     data: len u32 | bytes                          (len <= SNAPSHOT_BYTES_MAX)
//! entry:
//!   term u64 | index u64 | data: len u32 | bytes     (len <= BATCH_BYTES_MAX)
//! ```
//!
//! Everything is bounded: a whole message by [`MESSAGE_BYTES_MAX`] (a snapshot message by
//! that plus [`SNAPSHOT_BYTES_MAX`]; checked before anything is read), every count and
//! length against the bytes present and its own bound, so nothing is allocated from a
//! declared size. Only what this quorum uses travels: the message types peers exchange (no
//! local types, no read-index), `EntryNormal` entries without a context, snapshots as whole
//! metadata snapshot files (their image is checked by the quorum before raft-rs sees it), no
//! deprecated priority. [`encode_message`] refuses anything else with an error, and
//! [`decode_message`] refuses it too: garbage returns an error, never a panic.

use crate::error::ReplicationError;
use crate::metadata::codec::{Reader, Writer};
use crate::metadata::log::BATCH_BYTES_MAX;
use raft::eraftpb::SnapshotMetadata;
use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType, Snapshot};

/// The largest encoded message. raft-rs packs appends up to `max_size_per_msg` bytes of
/// entries, plus one entry that may be a whole batch (1 MiB): 4 MiB is far above both.
pub const MESSAGE_BYTES_MAX: usize = 4 << 20;

/// The most entries one message may carry.
pub const ENTRIES_PER_MESSAGE_MAX: usize = 65_536;

/// The largest snapshot a message carries: a metadata image of well over a hundred thousand
/// partitions. A larger one is not sent (the follower stays behind, and says so in the log).
pub const SNAPSHOT_BYTES_MAX: usize = 16 << 20;

/// The most voters a snapshot's configuration names.
pub const VOTERS_MAX: usize = 64;

/// The largest message context (raft-rs puts a 16-byte marker in leader-transfer votes).
pub const CONTEXT_BYTES_MAX: usize = 256;

const VERSION: u8 = 0;
/// Bytes of an entry with empty data: the least an entry costs.
const ENTRY_MIN_BYTES: usize = 8 + 8 + 4;

/// Encodes `message`; refuses a message this codec does not carry (see the module docs).
pub fn encode_message(message: &Message) -> Result<Vec<u8>, ReplicationError> {
    let msg_type = wire_type(message.get_msg_type())?;
    let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
    if !is_snapshot && message.snapshot.is_some() && message.get_snapshot() != &Default::default() {
        return Err(refused("a snapshot outside a snapshot message"));
    }
    if is_snapshot {
        check_snapshot(message.get_snapshot())?;
    }
    if message.deprecated_priority != 0 {
        return Err(refused("deprecated priority is not carried"));
    }
    if message.context.len() > CONTEXT_BYTES_MAX {
        return Err(refused("context too long"));
    }
    if message.entries.len() > ENTRIES_PER_MESSAGE_MAX {
        return Err(refused("too many entries"));
    }
    let data_bytes: usize = message.entries.iter().map(|e| e.data.len()).sum();
    let mut out = Vec::with_capacity(96 + message.entries.len() * ENTRY_MIN_BYTES + data_bytes);
    let mut w = Writer(&mut out);
    w.u8(VERSION);
    w.u8(msg_type);
    for v in [
        message.to,
        message.from,
        message.term,
        message.log_term,
        message.index,
        message.commit,
        message.commit_term,
        message.request_snapshot,
    ] {
        w.u64(v);
    }
    w.u8(u8::from(message.reject));
    w.u64(message.reject_hint);
    w.i64(message.priority);
    w.u32(message.context.len() as u32);
    w.raw(&message.context);
    w.u32(message.entries.len() as u32);
    for entry in message.entries.iter() {
        check_entry(entry)?;
        w.u64(entry.term);
        w.u64(entry.index);
        w.u32(entry.data.len() as u32);
        w.raw(&entry.data);
    }
    if is_snapshot {
        let snapshot = message.get_snapshot();
        let metadata = snapshot.get_metadata();
        w.u64(metadata.index);
        w.u64(metadata.term);
        let voters = &metadata.get_conf_state().voters;
        w.u32(voters.len() as u32);
        for &v in voters {
            w.u64(v);
        }
        w.u32(snapshot.data.len() as u32);
        w.raw(&snapshot.data);
    }
    if out.len() > message_bytes_max(is_snapshot) {
        return Err(refused("message too large"));
    }
    Ok(out)
}

fn message_bytes_max(is_snapshot: bool) -> usize {
    match is_snapshot {
        true => MESSAGE_BYTES_MAX + SNAPSHOT_BYTES_MAX,
        false => MESSAGE_BYTES_MAX,
    }
}

/// Refuses a snapshot this quorum never sends: one with learners or joint configurations
/// (voters are static), too many voters, data over [`SNAPSHOT_BYTES_MAX`].
fn check_snapshot(snapshot: &Snapshot) -> Result<(), ReplicationError> {
    let conf = snapshot.get_metadata().get_conf_state();
    if !conf.learners.is_empty()
        || !conf.voters_outgoing.is_empty()
        || !conf.learners_next.is_empty()
        || conf.auto_leave
    {
        return Err(refused("snapshot configuration beyond static voters"));
    }
    if conf.voters.len() > VOTERS_MAX {
        return Err(refused("snapshot names too many voters"));
    }
    if snapshot.data.len() > SNAPSHOT_BYTES_MAX {
        return Err(refused("snapshot larger than SNAPSHOT_BYTES_MAX"));
    }
    Ok(())
}

/// Decodes one message from all of `bytes` (untrusted).
pub fn decode_message(bytes: &[u8]) -> Result<Message, ReplicationError> {
    let is_snapshot = bytes.get(1) == Some(&(MessageType::MsgSnapshot as u8));
    if bytes.len() > message_bytes_max(is_snapshot) {
        return Err(refused("message too large"));
    }
    let mut r = Reader::new(bytes, "raft message");
    let at = r.pos();
    if r.u8()? != VERSION {
        return Err(malformed(at, "unknown version"));
    }
    let at = r.pos();
    let msg_type = message_type(r.u8()?).ok_or(malformed(at, "unknown or refused type"))?;
    let mut m = Message::default();
    m.set_msg_type(msg_type);
    m.to = r.u64()?;
    m.from = r.u64()?;
    m.term = r.u64()?;
    m.log_term = r.u64()?;
    m.index = r.u64()?;
    m.commit = r.u64()?;
    m.commit_term = r.u64()?;
    m.request_snapshot = r.u64()?;
    let at = r.pos();
    m.reject = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(malformed(at, "reject is not 0 or 1")),
    };
    m.reject_hint = r.u64()?;
    m.priority = r.i64()?;
    let context = bounded_bytes(&mut r, CONTEXT_BYTES_MAX)?;
    m.context = bytes::Bytes::copy_from_slice(context);
    let at = r.pos();
    let count = r.count(ENTRY_MIN_BYTES)?;
    if count > ENTRIES_PER_MESSAGE_MAX {
        return Err(ReplicationError::BadLength {
            what: "raft message",
            at,
            declared: count as i64,
            available: r.remaining(),
        });
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let mut e = Entry {
            term: r.u64()?,
            index: r.u64()?,
            ..Default::default()
        };
        e.data = bytes::Bytes::copy_from_slice(bounded_bytes(&mut r, BATCH_BYTES_MAX)?);
        entries.push(e);
    }
    m.entries = entries.into();
    if msg_type == MessageType::MsgSnapshot {
        let index = r.u64()?;
        let term = r.u64()?;
        let at = r.pos();
        let count = r.count(8)?;
        if count > VOTERS_MAX {
            return Err(malformed(at, "too many voters"));
        }
        let voters = (0..count).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
        let data = bounded_bytes(&mut r, SNAPSHOT_BYTES_MAX)?;
        let metadata = SnapshotMetadata {
            conf_state: Some(ConfState {
                voters,
                ..Default::default()
            })
            .into(),
            index,
            term,
            ..Default::default()
        };
        m.snapshot = Some(Snapshot {
            data: bytes::Bytes::copy_from_slice(data),
            metadata: Some(metadata).into(),
            ..Default::default()
        })
        .into();
    }
    r.finish()?;
    Ok(m)
}

/// Refuses an entry this quorum never writes: a conf change (voters are static), a context
/// or the deprecated sync flag (neither is stored in the metadata log), oversized data.
pub(crate) fn check_entry(entry: &Entry) -> Result<(), ReplicationError> {
    if entry.get_entry_type() != EntryType::EntryNormal {
        return Err(refused("conf-change entries are not used (static voters)"));
    }
    if !entry.context.is_empty() || entry.sync_log {
        return Err(refused("entry context and sync_log are not stored"));
    }
    if entry.data.len() > BATCH_BYTES_MAX {
        return Err(refused("entry data larger than a metadata batch"));
    }
    Ok(())
}

/// The wire number of a type peers exchange.
fn wire_type(t: MessageType) -> Result<u8, ReplicationError> {
    let n = t as u8;
    match message_type(n) {
        Some(back) if back == t => Ok(n),
        _ => Err(refused("message type not carried between peers")),
    }
}

/// The peer-to-peer message types this quorum uses, by their protobuf number.
fn message_type(n: u8) -> Option<MessageType> {
    use MessageType::*;
    Some(match n {
        3 => MsgAppend,
        4 => MsgAppendResponse,
        5 => MsgRequestVote,
        6 => MsgRequestVoteResponse,
        7 => MsgSnapshot,
        8 => MsgHeartbeat,
        9 => MsgHeartbeatResponse,
        13 => MsgTransferLeader,
        14 => MsgTimeoutNow,
        17 => MsgRequestPreVote,
        18 => MsgRequestPreVoteResponse,
        _ => return None,
    })
}

fn bounded_bytes<'a>(r: &mut Reader<'a>, max: usize) -> Result<&'a [u8], ReplicationError> {
    let at = r.pos();
    let len = r.u32()? as usize;
    if len > max || len > r.remaining() {
        return Err(ReplicationError::BadLength {
            what: "raft message",
            at,
            declared: len as i64,
            available: r.remaining(),
        });
    }
    r.raw(len)
}

fn refused(reason: &'static str) -> ReplicationError {
    ReplicationError::QuorumMessage { reason }
}

fn malformed(at: usize, reason: &'static str) -> ReplicationError {
    ReplicationError::Malformed {
        what: "raft message",
        at,
        reason,
    }
}

#[cfg(test)]
mod tests;
