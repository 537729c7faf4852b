//! Leader elections the active controller runs besides failover: ElectLeaders from admin
//! clients (preferred or unclean, Kafka's key 43), and the periodic rounds of
//! `auto.leader.rebalance.enable` (leadership back to in-sync preferred replicas) and of
//! `unclean.leader.election.enable` (a leaderless partition of a topic that allows it takes
//! any live replica). The decisions are `control::elect_leader` and its siblings; this module
//! turns them into committed records and answers.

use super::{change_metadata, failure_message, Controller};
use crate::errors::code;
use crate::mesh::Call;
use crate::metadata::Draft;
use crate::shard::Shard;
use millrace_replication::metadata::control::{self, ElectionOutcome, ElectionType};
use millrace_shard::time::Instant;
use std::rc::Rc;
use std::time::Duration;

/// Kafka's bound on the preferred elections of one automatic round
/// (`maxElectionsPerImbalance`); the next round takes the rest.
const MAX_ELECTIONS_PER_ROUND: usize = 1_000;

/// ElectLeaders: the election type and the partitions by topic name (None: every partition,
/// and then partitions that need no election are left out of the answer, as Kafka does).
pub struct ElectLeaders {
    /// Preferred or unclean.
    pub election: ElectionType,
    /// (topic, partitions) as the request listed them.
    pub partitions: Option<Vec<(String, Vec<i32>)>>,
}

/// Per topic, per partition: (partition, error code, message).
pub type ElectionResults = Vec<(String, Vec<(i32, i16, Option<String>)>)>;

impl Call<Shard> for ElectLeaders {
    type Reply = ElectionResults;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let rules = (self.election, super::min_isr(&shard));
        let change = |draft: &mut Draft| elect(draft, rules, self.partitions.as_deref());
        let failed = |mut results: ElectionResults, error_code: i16, error: &str| {
            for (_, partitions) in results.iter_mut() {
                for r in partitions.iter_mut().filter(|r| r.1 == code::NONE) {
                    *r = (r.0, error_code, Some(failure_message(error_code, error)));
                }
            }
            results
        };
        change_metadata(&shard, change, failed).await
    }
}

/// Works out the elections over `draft`, pushing the records of those that elect.
fn elect(
    draft: &mut Draft,
    (election, min_isr): (ElectionType, control::MinIsr),
    asked: Option<&[(String, Vec<i32>)]>,
) -> ElectionResults {
    let every: Vec<(String, Vec<i32>)>;
    let (targets, all) = match asked {
        Some(list) => (list, false),
        None => {
            every = draft
                .cluster
                .topics()
                .map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect()))
                .collect();
            (&every[..], true)
        }
    };
    let mut out = Vec::with_capacity(targets.len());
    for (topic, partitions) in targets {
        let id = draft.cluster.topic(topic).map(|t| t.id);
        let mut results = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let outcome = match id {
                Some(id) => control::elect_leader(&draft.cluster, id, p, election, min_isr),
                None => ElectionOutcome::Unknown,
            };
            let result = match outcome {
                ElectionOutcome::Elected(record) => match draft.push_all(vec![record]) {
                    Ok(()) => (code::NONE, None),
                    Err(e) => (code::UNKNOWN_SERVER_ERROR, Some(e.to_string())),
                },
                ElectionOutcome::NotNeeded if all => continue,
                ElectionOutcome::NotNeeded => (code::ELECTION_NOT_NEEDED, None),
                ElectionOutcome::NotAvailable => match election {
                    ElectionType::Preferred => (
                        code::PREFERRED_LEADER_NOT_AVAILABLE,
                        Some(format!(
                            "the preferred replica of {topic}-{p} is not in sync or not active"
                        )),
                    ),
                    ElectionType::Unclean => (
                        code::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                        Some(format!("no replica of {topic}-{p} is on an active broker")),
                    ),
                },
                ElectionOutcome::Unknown => (
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(format!("no partition {topic}-{p}")),
                ),
            };
            results.push((p, result.0, result.1));
        }
        out.push((topic.clone(), results));
    }
    out
}

/// The active controller's periodic elections, run from its watch: a preferred-leader round
/// every `leader.imbalance.check.interval.seconds` when `auto.leader.rebalance.enable`, and
/// unclean elections for leaderless partitions of topics with
/// `unclean.leader.election.enable` on every call.
pub struct Rounds {
    next_balance: Option<Instant>,
}

impl Rounds {
    /// No round run yet: the first preferred round waits one interval after leading starts.
    pub fn new() -> Self {
        Rounds { next_balance: None }
    }

    /// Forgets the schedule (leadership was lost).
    pub fn reset(&mut self) {
        self.next_balance = None;
    }

    /// Runs what is due at `now`. The caller holds the controller's turn.
    pub async fn run(&mut self, shard: &Rc<Shard>, controller: &Controller, now: Instant) {
        let config = &shard.config;
        let current = controller.current();
        let unclean_allowed = |id: &millrace_replication::metadata::TopicId| {
            current
                .cluster
                .topic_by_id(id)
                .and_then(|t| current.topics.get(&t.name))
                .is_some_and(|t| shard.topic_settings(t).unclean_leader_election)
        };
        let mut records = control::elect_unclean_leaders(
            &current.cluster,
            &unclean_allowed,
            super::min_isr(shard),
        );
        if !records.is_empty() {
            tracing::warn!(
                partitions = records.len(),
                "unclean leader elections (unclean.leader.election.enable): records acknowledged \
                 by the lost replicas may be gone"
            );
        }
        let interval = Duration::from_secs(config.leader_imbalance_check_interval_s as u64);
        let due = *self.next_balance.get_or_insert(now + interval);
        if config.auto_leader_rebalance_enable && now >= due {
            self.next_balance = Some(now + interval);
            let balanced = control::balance_leaders(&current.cluster, MAX_ELECTIONS_PER_ROUND);
            if !balanced.is_empty() {
                tracing::info!(
                    partitions = balanced.len(),
                    "moving leadership back to preferred replicas"
                );
                // Unclean elections touch leaderless partitions only, balancing led ones:
                // the two never change the same partition.
                records.extend(balanced);
            }
        }
        if records.is_empty() {
            return;
        }
        if let Err((_, e)) = super::brokers::commit(shard, controller, records).await {
            tracing::warn!(error = %e, "leader elections not committed");
        }
    }
}
