//! The leader side of ISR changes, per shard: ticks the leaders' replicas so that a follower
//! behind for `replica.lag.time.max.ms` is proposed out, and sends proposed changes to the
//! active controller (Kafka's AlterPartition manager).
//!
//! Proposals of all partitions on the shard that are waiting when the sender wakes go in one
//! AlterPartition request (through the controller's shard, which holds the controller client
//! and the broker epoch). A partition has at most one change in flight (the replica state
//! machine's rule). The change ends when the metadata image applies it (the next assignment
//! clears it); if the partition's epochs have not moved [`settle_wait`] after the answer, or
//! the controller refused or did not answer, the replica is told the change failed and may
//! propose again.

use crate::controller::lifecycle::ProposeIsr;
use crate::partition::IsrProposal;
use crate::shard::{Partition, Shard};
use millrace_replication::metadata::control::IsrChange;
use std::rc::Rc;
use std::time::Duration;

/// Ticks and sends until the broker stops.
pub async fn run(shard: Rc<Shard>) {
    let tick = tick_interval(shard.config.replica.lag_time_max_ms);
    while !shard.stopping.get() {
        let seen = shard.isr_proposed.generation();
        let now = millrace_shard::time::now_ms();
        let partitions = shard.partitions();
        for p in &partitions {
            p.tick(now);
        }
        let proposals: Vec<(Rc<Partition>, IsrProposal)> = partitions
            .into_iter()
            .filter_map(|p| p.take_isr_proposal().map(|proposal| (p, proposal)))
            .collect();
        if !proposals.is_empty() {
            send(&shard, proposals).await;
        }
        let proposed = shard.isr_proposed.changed_since(seen);
        let _ = millrace_shard::time::timeout(tick, proposed).await;
    }
}

/// How often leaders check their followers: a quarter of the lag time, within 10 ms – 1 s
/// (Kafka checks every half lag time; a shorter period drops a stuck follower closer to the
/// configured time).
fn tick_interval(lag_time_max_ms: i64) -> Duration {
    Duration::from_millis((lag_time_max_ms / 4).clamp(10, 1_000) as u64)
}

/// How long after its answer a change may take to arrive in this shard's image before it
/// counts as failed.
fn settle_wait(shard: &Shard) -> Duration {
    tick_interval(shard.config.replica.lag_time_max_ms) * 4
}

async fn send(shard: &Rc<Shard>, proposals: Vec<(Rc<Partition>, IsrProposal)>) {
    let image = shard.image();
    let mut changes = Vec::with_capacity(proposals.len());
    let mut sent = Vec::with_capacity(proposals.len());
    for (partition, proposal) in proposals {
        let Some(topic) = image.topics.get(partition.topic()) else {
            partition.isr_change_failed();
            continue;
        };
        changes.push(IsrChange {
            topic_id: topic.topic_id,
            partition_id: partition.index(),
            leader_epoch: proposal.leader_epoch.0,
            partition_epoch: proposal.partition_epoch,
            new_isr: proposal
                .isr
                .iter()
                .map(|&(id, epoch)| (id, (epoch >= 0).then_some(epoch)))
                .collect(),
        });
        sent.push((partition, proposal));
    }
    if changes.is_empty() {
        return;
    }
    let answer = shard
        .call(Shard::controller_shard(), ProposeIsr { changes })
        .await;
    match answer {
        Ok(Ok(outcomes)) => {
            for ((partition, _), outcome) in sent.iter().zip(outcomes) {
                if let Err(error_code) = outcome {
                    tracing::info!(
                        topic = partition.topic(),
                        partition = partition.index(),
                        error_code,
                        "the controller refused the ISR change"
                    );
                }
            }
        }
        Ok(Err(why)) => tracing::info!(error = %why, "AlterPartition failed"),
        Err(_) => tracing::info!("AlterPartition: the controller's shard is unavailable"),
    }
    // Whatever the answer: a change not in the image by then is over (refused, lost, or
    // applied and overtaken), and the replica may propose again.
    let wait = settle_wait(shard);
    millrace_shard::spawn_detached(async move {
        millrace_shard::time::sleep(wait).await;
        for (partition, proposal) in sent {
            let assignment = partition.assignment();
            let unchanged = assignment.leader_epoch == proposal.leader_epoch
                && assignment.partition_epoch == proposal.partition_epoch;
            if unchanged && partition.is_leader() {
                partition.isr_change_failed();
            }
        }
    });
}
