//! The rules of a follower fetch, on both ends, over the storage crate's partition log: the
//! leader's check of a follower's position, and what a follower does with each answer. The
//! broker's fetch handler and fetch loops call these, and so does the partition simulation
//! (`tests/partition_sim.rs`), so the simulated protocol is the shipped one.
//!
//! Leader ([`follower_position`], Kafka's rules with the epoch of the follower's last batch):
//! the largest epoch here at or below `last_fetched_epoch` and where it ends; the log
//! diverges when that epoch is older or ends before the fetch offset. An epoch newer than the
//! last one here is answered with the last one and the log end (Kafka gets the same answer by
//! writing a new leader's epoch into its cache at election). Then an offset outside
//! `[log start, log end]` is out of range.
//!
//! Follower ([`follower_step`]):
//!
//! | answer | step |
//! |---|---|
//! | diverging epoch `(e, end)` | truncate to min(local end of `e` or the largest epoch below, `end`) |
//! | OFFSET_OUT_OF_RANGE, fetch offset below the leader's log start | reset the log to start there |
//! | OFFSET_OUT_OF_RANGE otherwise | truncate to min(leader's high watermark, log end) |
//! | records | append those from the log end on, then sync and take the high watermark |
//! | another error | rest (leave the partition out for a backoff) |

use crate::LeaderEpoch;
use bytes::Bytes;
use millrace_storage::disk::Disk;
use millrace_storage::PartitionLog;
use millrace_wire::codes;

/// Where a follower's fetch stands against the leader's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerPosition {
    /// Its log matches up to its fetch offset: serve from there.
    Matches,
    /// Its log diverges: it must truncate using this epoch and end offset (Kafka's
    /// `diverging_epoch`); nothing is served.
    Diverging {
        /// The largest epoch here at or below its last fetched epoch.
        epoch: i32,
        /// Where that epoch ends here.
        end_offset: i64,
    },
    /// Its fetch offset is below this log's start or past its end (OFFSET_OUT_OF_RANGE).
    OutOfRange,
}

/// The epoch of the last batch in `log` (a follower's `last_fetched_epoch`), -1 when empty.
pub fn last_epoch<D: Disk>(log: &PartitionLog<D>) -> i32 {
    log.last_epoch_entry().map_or(-1, |e| e.epoch.0)
}

/// Leader: where a follower fetching at `fetch_offset`, whose last batch has
/// `last_fetched_epoch` (-1: none, or not sent), stands against `log` (module doc).
pub fn follower_position<D: Disk>(
    log: &PartitionLog<D>,
    fetch_offset: i64,
    last_fetched_epoch: i32,
) -> FollowerPosition {
    let latest = last_epoch(log);
    if last_fetched_epoch >= 0 && latest >= 0 {
        let (epoch, end_offset) = log
            .last_offset_for_epoch(LeaderEpoch(last_fetched_epoch))
            .map(|(e, end)| (e.0, end))
            .unwrap_or_else(|| (latest, log.log_end_offset()));
        if epoch < last_fetched_epoch || end_offset < fetch_offset {
            return FollowerPosition::Diverging { epoch, end_offset };
        }
    }
    if fetch_offset < log.log_start_offset() || fetch_offset > log.log_end_offset() {
        return FollowerPosition::OutOfRange;
    }
    FollowerPosition::Matches
}

/// One partition of a fetch answer, as a follower reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchAnswer {
    /// Kafka error code.
    pub error_code: i16,
    /// The leader's high watermark.
    pub high_watermark: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// `diverging_epoch` when present (epoch ≥ 0).
    pub diverging: Option<(i32, i64)>,
    /// The record batches.
    pub records: Bytes,
}

/// What a follower does with one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerStep {
    /// Cut the log to end at this offset (nothing else this round).
    Truncate(i64),
    /// Empty the log and start it at this offset (nothing else this round).
    Reset(i64),
    /// Append these batches (possibly none), sync, then take this high watermark.
    Append {
        /// Batches from the log end on.
        records: Bytes,
        /// The leader's high watermark.
        high_watermark: i64,
    },
    /// Leave the partition out for a backoff, for this reason.
    Rest(String),
}

/// Follower: the step for `answer` to a fetch sent at `fetch_offset` (module doc).
pub fn follower_step<D: Disk>(
    log: &PartitionLog<D>,
    fetch_offset: i64,
    answer: FetchAnswer,
) -> FollowerStep {
    let end = log.log_end_offset();
    match answer.error_code {
        codes::NONE => {}
        codes::OFFSET_OUT_OF_RANGE if fetch_offset < answer.log_start_offset => {
            return FollowerStep::Reset(answer.log_start_offset);
        }
        codes::OFFSET_OUT_OF_RANGE => {
            let target = answer.high_watermark.min(end);
            if target < 0 || target >= fetch_offset || target < log.log_start_offset() {
                return FollowerStep::Rest(format!(
                    "offset {fetch_offset} out of range at the leader (high watermark {})",
                    answer.high_watermark
                ));
            }
            return FollowerStep::Truncate(target);
        }
        other => return FollowerStep::Rest(format!("error {other}")),
    }
    if let Some((epoch, end_offset)) = answer.diverging {
        let local = log
            .last_offset_for_epoch(LeaderEpoch(epoch))
            .map_or(end, |(_, local_end)| local_end);
        let target = local.min(end_offset).min(end);
        if target >= end {
            return FollowerStep::Rest(format!(
                "the leader reports a divergence at epoch {epoch} ending {end_offset}, \
                 but this log agrees up to its end {end}"
            ));
        }
        if target < log.log_start_offset() {
            // Everything this log holds diverges: start again where the leader's log ends
            // for that epoch (the next fetch may still move it to the leader's start).
            return FollowerStep::Reset(target.max(0));
        }
        return FollowerStep::Truncate(target);
    }
    match skip_held_batches(answer.records, end) {
        Ok(records) => FollowerStep::Append {
            records,
            high_watermark: answer.high_watermark,
        },
        Err(why) => FollowerStep::Rest(why),
    }
}

/// The batches of `records` from the first one ending at or after `log_end` (the leader sends
/// the batch holding the fetch offset, which starts there when both logs agree). A batch
/// that starts below `log_end` and ends past it means the logs disagree on batch bounds.
pub fn skip_held_batches(records: Bytes, log_end: i64) -> Result<Bytes, String> {
    const HEADER: usize = 61;
    let mut at = 0usize;
    while records.len() >= at + HEADER {
        let field = |from: usize, n: usize| &records[at + from..at + from + n];
        let base = i64::from_be_bytes(field(0, 8).try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(field(8, 4).try_into().expect("4 bytes"));
        let delta = i32::from_be_bytes(field(23, 4).try_into().expect("4 bytes"));
        let total = 12 + usize::try_from(len).map_err(|_| "negative batch length")?;
        let last = base + i64::from(delta);
        if last >= log_end {
            if base < log_end {
                return Err(format!(
                    "the leader's batch {base}..={last} straddles this log's end {log_end}"
                ));
            }
            return Ok(records.slice(at..));
        }
        at += total;
    }
    Ok(records.slice(records.len().min(at)..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, records: i32) -> Vec<u8> {
        let mut b = vec![0u8; 61];
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&49i32.to_be_bytes());
        b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
        b
    }

    #[test]
    fn batches_the_log_holds_already_are_skipped_and_a_straddling_one_is_refused() {
        let all = Bytes::from([batch(0, 5), batch(5, 3), batch(8, 2)].concat());
        assert_eq!(skip_held_batches(all.clone(), 0).unwrap().len(), 183);
        assert_eq!(skip_held_batches(all.clone(), 5).unwrap().len(), 122);
        assert_eq!(
            skip_held_batches(all.clone(), 8).unwrap()[..8],
            8i64.to_be_bytes()
        );
        assert!(skip_held_batches(all.clone(), 10).unwrap().is_empty());
        assert!(skip_held_batches(all, 6).is_err());
    }
}
