//! What operators see of the transaction coordinators (Kafka's `kafka-transactions.sh`):
//! DescribeTransactions (one id, at its coordinator) and ListTransactions (every id a broker
//! coordinates, filtered). Both read the coordinating shard's state as the last durable write
//! left it; an id whose state change is in flight is shown in the state it is leaving.

use super::{txn_partition, txns_of, TxnState, TXN_TOPIC};
use crate::errors::code;
use crate::mesh::Call;
use crate::shard::Shard;
use std::rc::Rc;

impl TxnState {
    /// Kafka's name of the state (what DescribeTransactions and ListTransactions carry).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state Kafka calls `name`; None for a name it does not know. Kafka's "Dead" and
    /// "PrepareEpochFence" are known names no transaction here is ever in.
    pub fn from_name(name: &str) -> Option<Option<Self>> {
        Some(Some(match name {
            "Empty" => TxnState::Empty,
            "Ongoing" => TxnState::Ongoing,
            "PrepareCommit" => TxnState::PrepareCommit,
            "PrepareAbort" => TxnState::PrepareAbort,
            "CompleteCommit" => TxnState::CompleteCommit,
            "CompleteAbort" => TxnState::CompleteAbort,
            "Dead" | "PrepareEpochFence" => return Some(None),
            _ => return None,
        }))
    }
}

/// One transactional id as DescribeTransactions shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnView {
    pub state: TxnState,
    pub timeout_ms: i32,
    /// When the open transaction began, -1 when none.
    pub start_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<(String, i32)>,
}

/// DescribeTransactions for ids the target shard coordinates: per id, its view or the code
/// (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, TRANSACTIONAL_ID_NOT_FOUND).
pub struct DescribeTxns(pub Vec<String>);

impl Call<Shard> for DescribeTxns {
    type Reply = Vec<Result<TxnView, i16>>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let partitions = shard
            .image()
            .topics
            .get(TXN_TOPIC)
            .map(|t| t.partitions as usize);
        let txns = txns_of(&shard);
        self.0
            .iter()
            .map(|id| {
                let n = partitions.ok_or(code::COORDINATOR_NOT_AVAILABLE)?;
                let p = txn_partition(id, n);
                txns.host.serving(&shard, TXN_TOPIC, p)?;
                let map = txns.txns.borrow();
                let e = map.get(id).ok_or(code::TRANSACTIONAL_ID_NOT_FOUND)?;
                Ok(TxnView {
                    state: e.meta.state,
                    timeout_ms: e.meta.timeout_ms,
                    start_ms: e.meta.start_ms,
                    producer_id: e.meta.producer_id,
                    producer_epoch: e.meta.producer_epoch,
                    partitions: e.meta.partitions.iter().cloned().collect(),
                })
            })
            .collect()
    }
}

/// ListTransactions' filters; an empty list filters nothing.
#[derive(Debug, Clone, Default)]
pub struct TxnFilter {
    pub states: Vec<TxnState>,
    /// A state filter naming only states no transaction is in ("Dead"): nothing matches.
    pub matches_nothing: bool,
    pub producer_ids: Vec<i64>,
    /// Only transactions running longer than this (ms), when >= 0.
    pub min_duration_ms: i64,
    /// Only ids matching this regular expression as a whole.
    pub pattern: Option<regex::Regex>,
}

impl TxnFilter {
    fn admits(&self, id: &str, view: &TxnView, now: i64) -> bool {
        if self.matches_nothing {
            return false;
        }
        if !self.states.is_empty() && !self.states.contains(&view.state) {
            return false;
        }
        if !self.producer_ids.is_empty() && !self.producer_ids.contains(&view.producer_id) {
            return false;
        }
        // Kafka compares the time since the transaction's start, which is -1 (the epoch,
        // long ago) for an id with no transaction open: such ids pass any duration.
        if self.min_duration_ms >= 0 && now - view.start_ms <= self.min_duration_ms {
            return false;
        }
        self.pattern.as_ref().is_none_or(|re| re.is_match(id))
    }
}

/// ListTransactions on one shard: (id, producer id, state) of the ids it coordinates now
/// that pass the filter.
pub struct ListTxns(pub TxnFilter);

impl Call<Shard> for ListTxns {
    type Reply = Vec<(String, i64, TxnState)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let now = millrace_shard::time::now_ms();
        let txns = txns_of(&shard);
        let map = txns.txns.borrow();
        let mut out: Vec<(String, i64, TxnState)> = map
            .iter()
            .filter(|(_, e)| txns.host.serving(&shard, TXN_TOPIC, e.partition).is_ok())
            .filter_map(|(id, e)| {
                let view = TxnView {
                    state: e.meta.state,
                    timeout_ms: e.meta.timeout_ms,
                    start_ms: e.meta.start_ms,
                    producer_id: e.meta.producer_id,
                    producer_epoch: e.meta.producer_epoch,
                    partitions: Vec::new(),
                };
                self.0
                    .admits(id, &view, now)
                    .then(|| (id.clone(), view.producer_id, view.state))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: TxnState, producer_id: i64, start_ms: i64) -> TxnView {
        TxnView {
            state,
            timeout_ms: 60_000,
            start_ms,
            producer_id,
            producer_epoch: 0,
            partitions: Vec::new(),
        }
    }

    #[test]
    fn filters_combine_as_kafka_applies_them() {
        let ongoing = view(TxnState::Ongoing, 7, 1_000);
        let empty = view(TxnState::Empty, 8, -1);
        let all = TxnFilter {
            min_duration_ms: -1,
            ..TxnFilter::default()
        };
        assert!(all.admits("a", &ongoing, 5_000) && all.admits("b", &empty, 5_000));
        let by_state = TxnFilter {
            states: vec![TxnState::Ongoing],
            ..all.clone()
        };
        assert!(by_state.admits("a", &ongoing, 5_000));
        assert!(!by_state.admits("b", &empty, 5_000));
        let by_pid = TxnFilter {
            producer_ids: vec![8],
            ..all.clone()
        };
        assert!(!by_pid.admits("a", &ongoing, 5_000) && by_pid.admits("b", &empty, 5_000));
        let long = TxnFilter {
            min_duration_ms: 4_000,
            ..all.clone()
        };
        assert!(
            !long.admits("a", &ongoing, 5_000),
            "running 4 s, not longer"
        );
        assert!(long.admits("a", &ongoing, 5_001));
        assert!(
            long.admits("b", &empty, 5_000),
            "no start time passes, as in Kafka"
        );
        let pattern = TxnFilter {
            pattern: Some(regex::Regex::new("^(?:app-.*)$").expect("valid")),
            ..all.clone()
        };
        assert!(pattern.admits("app-1", &ongoing, 0) && !pattern.admits("x-app-1", &ongoing, 0));
        let dead = TxnFilter {
            matches_nothing: true,
            ..all
        };
        assert!(!dead.admits("a", &ongoing, 5_000));
    }

    #[test]
    fn state_names_are_kafkas() {
        for s in [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ] {
            assert_eq!(TxnState::from_name(s.name()), Some(Some(s)));
        }
        assert_eq!(TxnState::from_name("Dead"), Some(None));
        assert_eq!(TxnState::from_name("ongoing"), None);
    }
}
