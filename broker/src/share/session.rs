//! Share sessions (KIP-932): which partitions a share consumer fetches from this broker, and the
//! epoch its next ShareFetch or ShareAcknowledge must carry, like a fetch session for share
//! groups. Sans-I/O; one `ShareSessions` per client connection, because Kafka ends a member's
//! session when its connection closes (and releases the records it held, which the caller does
//! with what [`ShareSessions::close_all`] returns).
//!
//! Epochs, as Kafka's `ShareRequestMetadata`:
//!
//! ```text
//!  ShareFetch  epoch 0   a new session with the request's partitions (an old one of the same
//!                        group and member is dropped); acknowledgements in it: INVALID_REQUEST
//!              epoch n   the session's epoch must be n (INVALID_SHARE_SESSION_EPOCH; none:
//!                        SHARE_SESSION_NOT_FOUND); partitions added and forgotten; epoch n+1
//!              epoch -1  acknowledge, then close the session and release what the member
//!                        holds; asking for records too: INVALID_REQUEST
//!  ShareAcknowledge epoch 0 INVALID_SHARE_SESSION_EPOCH; n as above (epoch n+1); -1 closes
//! ```
//!
//! Epochs count 1, 2, ... and wrap from i32::MAX back to 1.

use millrace_wire::codes as code;
use std::collections::{BTreeMap, BTreeSet};

/// A share partition as requests name it: (topic id, partition).
pub type TopicIdPartition = (uuid::Uuid, i32);

/// Epoch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;
/// Epoch that closes a session.
pub const FINAL_EPOCH: i32 = -1;

/// What a ShareFetch may do, once its session checks passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchScope {
    /// Acknowledge and fetch from these partitions (the whole session).
    Fetch(Vec<TopicIdPartition>),
    /// Acknowledge only, then [`ShareSessions::close`] the session and release the member's
    /// records on these partitions.
    Final(Vec<TopicIdPartition>),
}

/// The session fields of a ShareFetch.
#[derive(Debug, Clone, Copy)]
pub struct SessionRequest<'a> {
    /// Group id.
    pub group_id: &'a str,
    /// Member id.
    pub member_id: &'a str,
    /// ShareSessionEpoch.
    pub epoch: i32,
    /// Partitions asked for (added to the session).
    pub requested: &'a [TopicIdPartition],
    /// ForgottenTopicsData (removed from the session).
    pub forgotten: &'a [TopicIdPartition],
    /// The request carries acknowledgement batches.
    pub has_acknowledgements: bool,
}

/// The share sessions of one connection, by (group id, member id).
#[derive(Debug, Default)]
pub struct ShareSessions {
    sessions: BTreeMap<(String, String), Session>,
}

#[derive(Debug, Clone)]
struct Session {
    /// The epoch the next request must carry.
    epoch: i32,
    partitions: BTreeSet<TopicIdPartition>,
}

impl ShareSessions {
    /// How many sessions this connection holds.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// The checks and session changes of one ShareFetch. `room` says whether a new session
    /// may be made (the broker's `group.share.max.share.sessions` is not reached):
    /// SHARE_SESSION_LIMIT_REACHED otherwise.
    pub fn fetch(&mut self, req: &SessionRequest<'_>, room: bool) -> Result<FetchScope, i16> {
        let SessionRequest {
            group_id,
            member_id,
            epoch,
            requested,
            forgotten,
            has_acknowledgements,
        } = *req;
        let key = (group_id.to_string(), member_id.to_string());
        match epoch {
            FINAL_EPOCH => {
                if !requested.is_empty() {
                    return Err(code::INVALID_REQUEST);
                }
                let s = self
                    .sessions
                    .get(&key)
                    .ok_or(code::SHARE_SESSION_NOT_FOUND)?;
                Ok(FetchScope::Final(s.partitions.iter().copied().collect()))
            }
            INITIAL_EPOCH => {
                if has_acknowledgements {
                    return Err(code::INVALID_REQUEST);
                }
                let replacing = self.sessions.remove(&key).is_some();
                if !replacing && !room {
                    return Err(code::SHARE_SESSION_LIMIT_REACHED);
                }
                let partitions: BTreeSet<TopicIdPartition> = requested.iter().copied().collect();
                let scope = partitions.iter().copied().collect();
                let session = Session {
                    epoch: next_epoch(INITIAL_EPOCH),
                    partitions,
                };
                self.sessions.insert(key, session);
                Ok(FetchScope::Fetch(scope))
            }
            e if e < FINAL_EPOCH => Err(code::INVALID_SHARE_SESSION_EPOCH),
            e => {
                let s = self
                    .sessions
                    .get_mut(&key)
                    .ok_or(code::SHARE_SESSION_NOT_FOUND)?;
                if s.epoch != e {
                    return Err(code::INVALID_SHARE_SESSION_EPOCH);
                }
                s.partitions.extend(requested.iter().copied());
                for p in forgotten {
                    s.partitions.remove(p);
                }
                s.epoch = next_epoch(s.epoch);
                Ok(FetchScope::Fetch(s.partitions.iter().copied().collect()))
            }
        }
    }

    /// The checks of one ShareAcknowledge. Ok(Some(partitions)) for the final epoch: after the
    /// acknowledgements, [`ShareSessions::close`] and release the member's records there.
    pub fn acknowledge(
        &mut self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<Option<Vec<TopicIdPartition>>, i16> {
        if epoch == INITIAL_EPOCH || epoch < FINAL_EPOCH {
            return Err(code::INVALID_SHARE_SESSION_EPOCH);
        }
        let key = (group_id.to_string(), member_id.to_string());
        let s = self
            .sessions
            .get_mut(&key)
            .ok_or(code::SHARE_SESSION_NOT_FOUND)?;
        if epoch == FINAL_EPOCH {
            return Ok(Some(s.partitions.iter().copied().collect()));
        }
        if s.epoch != epoch {
            return Err(code::INVALID_SHARE_SESSION_EPOCH);
        }
        s.epoch = next_epoch(s.epoch);
        Ok(None)
    }

    /// Ends one session (final epoch handled); returns its partitions.
    pub fn close(&mut self, group_id: &str, member_id: &str) -> Vec<TopicIdPartition> {
        let key = (group_id.to_string(), member_id.to_string());
        self.sessions
            .remove(&key)
            .map(|s| s.partitions.into_iter().collect())
            .unwrap_or_default()
    }

    /// Ends every session (the connection closed): (group, member, partitions) for each, whose
    /// records the caller releases.
    pub fn close_all(&mut self) -> Vec<(String, String, Vec<TopicIdPartition>)> {
        std::mem::take(&mut self.sessions)
            .into_iter()
            .map(|((g, m), s)| (g, m, s.partitions.into_iter().collect()))
            .collect()
    }
}

/// Kafka's `ShareRequestMetadata.nextEpoch`: +1, wrapping from i32::MAX to 1.
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: uuid::Uuid = uuid::Uuid::from_u128(7);

    fn fetch(
        s: &mut ShareSessions,
        epoch: i32,
        requested: &[i32],
        forgotten: &[i32],
    ) -> Result<FetchScope, i16> {
        let r: Vec<TopicIdPartition> = requested.iter().map(|p| (T, *p)).collect();
        let f: Vec<TopicIdPartition> = forgotten.iter().map(|p| (T, *p)).collect();
        s.fetch(&req("g", "m", epoch, &r, &f, false), true)
    }

    fn req<'a>(
        group_id: &'a str,
        member_id: &'a str,
        epoch: i32,
        requested: &'a [TopicIdPartition],
        forgotten: &'a [TopicIdPartition],
        has_acknowledgements: bool,
    ) -> SessionRequest<'a> {
        SessionRequest {
            group_id,
            member_id,
            epoch,
            requested,
            forgotten,
            has_acknowledgements,
        }
    }

    fn parts(scope: FetchScope) -> Vec<i32> {
        match scope {
            FetchScope::Fetch(p) | FetchScope::Final(p) => p.into_iter().map(|(_, p)| p).collect(),
        }
    }

    #[test]
    fn epochs_advance_and_partitions_are_added_and_forgotten() {
        let mut s = ShareSessions::default();
        assert_eq!(
            fetch(&mut s, 1, &[0], &[]),
            Err(code::SHARE_SESSION_NOT_FOUND)
        );
        assert_eq!(parts(fetch(&mut s, 0, &[0, 1], &[]).unwrap()), [0, 1]);
        assert_eq!(
            fetch(&mut s, 2, &[], &[]),
            Err(code::INVALID_SHARE_SESSION_EPOCH)
        );
        assert_eq!(parts(fetch(&mut s, 1, &[2], &[0]).unwrap()), [1, 2]);
        assert_eq!(s.acknowledge("g", "m", 2), Ok(None));
        assert_eq!(parts(fetch(&mut s, 3, &[], &[]).unwrap()), [1, 2]);
        assert_eq!(
            s.acknowledge("g", "m", 3),
            Err(code::INVALID_SHARE_SESSION_EPOCH)
        );
        assert_eq!(
            s.acknowledge("g", "m", 0),
            Err(code::INVALID_SHARE_SESSION_EPOCH)
        );
        assert_eq!(
            s.acknowledge("g", "x", 4),
            Err(code::SHARE_SESSION_NOT_FOUND)
        );
        assert_eq!(
            fetch(&mut s, -5, &[], &[]),
            Err(code::INVALID_SHARE_SESSION_EPOCH)
        );
    }

    #[test]
    fn the_final_epoch_acknowledges_then_closes() {
        let mut s = ShareSessions::default();
        assert_eq!(
            fetch(&mut s, -1, &[], &[]),
            Err(code::SHARE_SESSION_NOT_FOUND)
        );
        fetch(&mut s, 0, &[0, 3], &[]).unwrap();
        assert_eq!(fetch(&mut s, -1, &[1], &[]), Err(code::INVALID_REQUEST));
        assert_eq!(
            fetch(&mut s, -1, &[], &[]),
            Ok(FetchScope::Final(vec![(T, 0), (T, 3)]))
        );
        assert_eq!(s.acknowledge("g", "m", -1), Ok(Some(vec![(T, 0), (T, 3)])));
        assert_eq!(s.close("g", "m"), vec![(T, 0), (T, 3)]);
        assert_eq!(s.len(), 0);
        assert_eq!(
            s.acknowledge("g", "m", -1),
            Err(code::SHARE_SESSION_NOT_FOUND)
        );
    }

    #[test]
    fn a_new_session_replaces_the_old_and_respects_the_limit() {
        let mut s = ShareSessions::default();
        let acks = s.fetch(&req("g", "m", 0, &[(T, 0)], &[], true), true);
        assert_eq!(
            acks,
            Err(code::INVALID_REQUEST),
            "acknowledgements in an initial fetch"
        );
        assert_eq!(
            s.fetch(&req("g", "m", 0, &[(T, 0)], &[], false), false),
            Err(code::SHARE_SESSION_LIMIT_REACHED)
        );
        fetch(&mut s, 0, &[0], &[]).unwrap();
        fetch(&mut s, 1, &[], &[]).unwrap();
        // Replacing needs no room and restarts the epochs.
        let again = s.fetch(&req("g", "m", 0, &[(T, 5)], &[], false), false);
        assert_eq!(again.map(parts), Ok(vec![5]));
        assert_eq!(
            fetch(&mut s, 2, &[], &[]),
            Err(code::INVALID_SHARE_SESSION_EPOCH)
        );
        assert!(fetch(&mut s, 1, &[], &[]).is_ok());
        s.fetch(&req("h", "n", 0, &[(T, 9)], &[], false), true)
            .unwrap();
        let mut all = s.close_all();
        all.sort();
        assert_eq!(
            all,
            vec![
                ("g".into(), "m".into(), vec![(T, 5)]),
                ("h".into(), "n".into(), vec![(T, 9)])
            ]
        );
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(41), 42);
    }
}
