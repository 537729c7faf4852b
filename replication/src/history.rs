//! A history checker for partition replication: did the cluster keep what it acknowledged, and
//! only that, in the order it was sent?
//!
//! A *history* is what the clients of a test saw, per (topic, partition):
//!
//! * [`Produce`]: a unique value sent by one producer, with its send sequence and its
//!   [`Outcome`]: acknowledged at an offset, failed definitely (the broker refused it), or
//!   unknown (a timeout, a lost connection, a client that gave up after retries);
//! * [`Read`]: a consumer saw a value at an offset while the test ran;
//! * [`FinalRead`] (optional, one per partition): a full read after the test, from the log start
//!   offset to the high watermark, taken as the partition's committed log.
//!
//! [`check`] compares them and returns a [`Report`] of [`Anomaly`]s in these [`Category`]s:
//!
//! | category | error or warning | meaning |
//! |---|---|---|
//! | `lost` | error | an acknowledged value is not in the final read (without one: never read) |
//! | `offset_mismatch` | error | an acknowledged value is in the log, but not at its acked offset |
//! | `duplicated` | error | a value sits at two or more offsets of the committed log |
//! | `reordered` | error | two values of one producer are in the log in the other order than sent |
//! | `read_uncommitted` | error | a consumer read a value at an offset where the final read holds another value or nothing (a read of data later truncated, or above the high watermark); without a final read, two reads of one offset that disagree |
//! | `refused_but_present` | error | a value the broker refused *before appending* (see [`REFUSED_BEFORE_APPEND`]) was read |
//! | `unexpected_value` | error | a value read that no produce in the history sent to that partition |
//! | `failed_but_present` | warning | a value that failed with another code was read anyway |
//!
//! The *committed log* of a partition is its final read, plus consumer reads below the final
//! read's log start (retention removed those offsets, so the consumers' word is all there is);
//! without a final read it is the union of the consumer reads. Consumer reads that contradict
//! the final read are reported as `read_uncommitted` and are not part of it.
//!
//! # Definite and indeterminate failures
//!
//! A produce that fails may still be in the log: a broker that timed out waiting for its
//! followers (REQUEST_TIMED_OUT, 7) or whose ISR shrank after the write
//! (NOT_ENOUGH_REPLICAS_AFTER_APPEND, 20) has appended the batch to the leader's log, and it
//! survives if that leader keeps leading. Only a refusal *before the append* is definite:
//! NOT_ENOUGH_REPLICAS (19) is checked before the leader writes anything, so such a value must
//! never be read. [`REFUSED_BEFORE_APPEND`] lists the codes treated so; a `failed` value with
//! one of them that is read anyway is an error, with any other code a warning.
//!
//! A refusal is definite only for the attempt it answers. The recorder writes `failed` only for
//! a value's single attempt (a raw request), or when every attempt was refused before the
//! append; a client that retried after a timeout (librdkafka, the Java producer) and then
//! reports an error must be recorded as `unknown`. Likewise `acked` is for acknowledgements that
//! promise the value is committed (acks=all); record acks=1 answers as `unknown`.
//!
//! # The JSON-lines format
//!
//! One JSON object per line, flat: keys are strings, values are strings, integers or `null`
//! (no floats, booleans, arrays or nested objects). Blank lines are skipped; an unknown key, a
//! missing one, a duplicate key or a value of the wrong type is an error naming the line.
//!
//! ```text
//! {"op":"produce","topic":"t","partition":0,"producer":"p1","seq":0,"value":"p1-0","outcome":"acked","offset":41}
//! {"op":"produce","topic":"t","partition":0,"producer":"p1","seq":1,"value":"p1-1","outcome":"failed","error":19}
//! {"op":"produce","topic":"t","partition":0,"producer":"p1","seq":2,"value":"p1-2","outcome":"unknown","error":-192}
//! {"op":"read","topic":"t","partition":0,"offset":41,"value":"p1-0","reader":"c1"}
//! {"op":"final","topic":"t","partition":0,"log_start_offset":0,"high_watermark":42}
//! {"op":"final_read","topic":"t","partition":0,"offset":41,"value":"p1-0"}
//! {"op":"note","text":"kill -9 node 2"}
//! ```
//!
//! * `produce`: `producer` names one producer (any string), `seq` is its send order for this
//!   partition (unique per producer and partition; gaps allowed). `value` is unique in the whole
//!   history (a recorder of binary values hex-encodes them). `outcome` is `acked` (with `offset`,
//!   an integer or `null`/absent when the client did not say), `failed` (with `error`, the Kafka
//!   error code) or `unknown` (with an optional `error`, e.g. librdkafka's negative local codes).
//! * `read`: a consumer's observation; `reader` is optional.
//! * `final` and `final_read`: the final read of one partition, its range and each record; the
//!   `final` line may come before or after its records, there is at most one per partition, and
//!   records are in increasing offsets within `[log_start_offset, high_watermark)`.
//! * `note`: free text for the people reading the file (faults injected, phases); ignored.
//!
//! # Why this file stands alone
//!
//! No I/O: text in, a [`History`], a [`Report`] and text out, so the deterministic simulation
//! calls [`check`] directly and the process rig (Python) writes the JSON lines that
//! `millrace-tools history check` reads. The tools crate may depend only on `wire` (the crate
//! map), so it compiles this very file as a module of its own (`#[path]`): it uses `std` only,
//! nothing else from this crate, and its error type is its own rather than a
//! `ReplicationError` variant. Plain values; nothing here lives on a shard.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fmt::Write as _;

/// Produce error codes a Kafka broker answers before appending anything to the leader's log,
/// so a value refused with one of them (on its only attempt) must never be read.
pub const REFUSED_BEFORE_APPEND: [(i16, &str); 11] = [
    (2, "CORRUPT_MESSAGE"),
    (3, "UNKNOWN_TOPIC_OR_PARTITION"),
    (6, "NOT_LEADER_OR_FOLLOWER"),
    (10, "MESSAGE_TOO_LARGE"),
    (18, "RECORD_LIST_TOO_LARGE"),
    (19, "NOT_ENOUGH_REPLICAS"),
    (21, "INVALID_REQUIRED_ACKS"),
    (45, "OUT_OF_ORDER_SEQUENCE_NUMBER"),
    (47, "INVALID_PRODUCER_EPOCH"),
    (87, "INVALID_RECORD"),
    (90, "PRODUCER_FENCED"),
];

/// Whether a produce error code means the broker wrote nothing (see the module doc).
pub fn refused_before_append(error_code: i16) -> bool {
    REFUSED_BEFORE_APPEND.iter().any(|(c, _)| *c == error_code)
}

/// A partition of a topic, printed as Kafka's tools do: `topic-partition`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`, `partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What the producer learned about one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged as committed (acks=all), at `offset` when the client reported it.
    Acked {
        /// The value's offset in the partition.
        offset: Option<i64>,
    },
    /// Definitely failed: the broker's answer to the value's only attempt.
    Failed {
        /// Kafka error code.
        error_code: i16,
    },
    /// Indeterminate: may or may not be in the log.
    Unknown {
        /// The error the client reported, if any (informational).
        error_code: Option<i16>,
    },
}

/// One value sent by one producer to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produce {
    /// Where it was sent.
    pub tp: TopicPartition,
    /// Which producer sent it.
    pub producer: String,
    /// Its place in that producer's send order for this partition.
    pub seq: u64,
    /// The value, unique in the history.
    pub value: String,
    /// What the producer learned.
    pub outcome: Outcome,
}

/// A consumer saw `value` at `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Where.
    pub tp: TopicPartition,
    /// The record's offset.
    pub offset: i64,
    /// The record's value.
    pub value: String,
    /// Which consumer (for the report only; may be empty).
    pub reader: String,
}

/// A full read of one partition after the test, taken as its committed log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalRead {
    /// Which partition.
    pub tp: TopicPartition,
    /// The first offset read.
    pub log_start_offset: i64,
    /// The read ended here (exclusive).
    pub high_watermark: i64,
    /// `(offset, value)` in increasing offsets; offsets without a record are gaps (compaction,
    /// control records).
    pub records: Vec<(i64, String)>,
}

/// A whole history; the order of the operations in each list does not matter to [`check`]
/// except that the first of two contradicting consumer reads (without a final read) is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Every value sent.
    pub produces: Vec<Produce>,
    /// Consumer observations during the test.
    pub reads: Vec<Read>,
    /// At most one per partition.
    pub final_reads: Vec<FinalRead>,
    /// Free text kept with the history (`note` lines), ignored by [`check`].
    pub notes: Vec<String>,
}

/// A kind of anomaly; see the module doc's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// An acknowledged value is not in the committed log.
    Lost,
    /// An acknowledged value is in the log at another offset than acknowledged.
    OffsetMismatch,
    /// A value at two or more offsets.
    Duplicated,
    /// One producer's values in the log out of send order.
    Reordered,
    /// A consumer read something the committed log does not hold there.
    ReadUncommitted,
    /// A value refused before the append was read.
    RefusedButPresent,
    /// A value read that was never sent to that partition.
    UnexpectedValue,
    /// A value that failed with a code other than a pre-append refusal was read (warning).
    FailedButPresent,
}

impl Category {
    /// Every category, errors first.
    pub const ALL: [Category; 8] = [
        Category::Lost,
        Category::OffsetMismatch,
        Category::Duplicated,
        Category::Reordered,
        Category::ReadUncommitted,
        Category::RefusedButPresent,
        Category::UnexpectedValue,
        Category::FailedButPresent,
    ];

    /// The category's name in reports (snake case).
    pub fn name(self) -> &'static str {
        match self {
            Category::Lost => "lost",
            Category::OffsetMismatch => "offset_mismatch",
            Category::Duplicated => "duplicated",
            Category::Reordered => "reordered",
            Category::ReadUncommitted => "read_uncommitted",
            Category::RefusedButPresent => "refused_but_present",
            Category::UnexpectedValue => "unexpected_value",
            Category::FailedButPresent => "failed_but_present",
        }
    }

    /// Errors break a guarantee; warnings are worth a look but may be legal.
    pub fn is_error(self) -> bool {
        self != Category::FailedButPresent
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// What kind.
    pub category: Category,
    /// Where.
    pub tp: TopicPartition,
    /// The value concerned.
    pub value: String,
    /// What was seen, in words, with offsets.
    pub detail: String,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} value {}: {}",
            self.category.name(),
            self.tp,
            quoted(&self.value),
            self.detail
        )
    }
}

/// Counts of what the history held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Partitions with any operation.
    pub partitions: usize,
    /// Produce operations.
    pub produced: usize,
    /// ... acknowledged.
    pub acked: usize,
    /// ... failed definitely.
    pub failed: usize,
    /// ... with an unknown outcome.
    pub unknown: usize,
    /// Unknown outcomes whose value was read (they made it).
    pub unknown_present: usize,
    /// Acknowledged values that could not be verified: their offset is below the final read's
    /// log start (retention), so their absence proves nothing.
    pub acked_unverifiable: usize,
    /// Consumer reads.
    pub reads: usize,
    /// Partitions with a final read.
    pub final_reads: usize,
    /// Records in all final reads.
    pub final_records: usize,
}

/// The result of [`check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every anomaly, by partition, then category, then value (deterministic).
    pub anomalies: Vec<Anomaly>,
    /// Counts.
    pub stats: Stats,
}

impl Report {
    /// Anomalies of one category.
    pub fn count(&self, category: Category) -> usize {
        self.anomalies
            .iter()
            .filter(|a| a.category == category)
            .count()
    }

    /// Anomalies that are errors.
    pub fn errors(&self) -> usize {
        self.anomalies
            .iter()
            .filter(|a| a.category.is_error())
            .count()
    }

    /// Anomalies that are warnings.
    pub fn warnings(&self) -> usize {
        self.anomalies.len() - self.errors()
    }

    /// No errors (warnings allowed).
    pub fn is_clean(&self) -> bool {
        self.errors() == 0
    }

    /// A summary for people: the counts, one line per category, then the first
    /// `anomalies_max` anomalies.
    pub fn summary(&self, anomalies_max: usize) -> String {
        let s = &self.stats;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "history: {} partitions, {} produced ({} acked, {} failed, {} unknown of which {} \
             present), {} acked unverifiable, {} reads, {} final reads with {} records",
            s.partitions,
            s.produced,
            s.acked,
            s.failed,
            s.unknown,
            s.unknown_present,
            s.acked_unverifiable,
            s.reads,
            s.final_reads,
            s.final_records
        );
        for category in Category::ALL {
            let kind = if category.is_error() {
                ""
            } else {
                " (warning)"
            };
            let _ = writeln!(out, "{}{kind}: {}", category.name(), self.count(category));
        }
        let _ = writeln!(
            out,
            "anomalies: {} errors, {} warnings",
            self.errors(),
            self.warnings()
        );
        for anomaly in self.anomalies.iter().take(anomalies_max) {
            let _ = writeln!(out, "  {anomaly}");
        }
        if self.anomalies.len() > anomalies_max {
            let more = self.anomalies.len() - anomalies_max;
            let _ = writeln!(out, "  ... and {more} more");
        }
        out
    }
}

/// A history that cannot be checked: unreadable, or inconsistent in itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A JSON line that is not in the format.
    #[error("line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The same value produced twice (values identify produces).
    #[error("value {} produced twice (to {first} and {second})", quoted(value))]
    DuplicateValue {
        /// The value.
        value: String,
        /// Where the first produce sent it.
        first: TopicPartition,
        /// Where the second did.
        second: TopicPartition,
    },
    /// Two produces with the same producer, partition and sequence.
    #[error("{tp}: producer {} used seq {seq} twice", quoted(producer))]
    DuplicateSequence {
        /// Where.
        tp: TopicPartition,
        /// Which producer.
        producer: String,
        /// The sequence.
        seq: u64,
    },
    /// Two final reads of one partition.
    #[error("{tp}: more than one final read")]
    DuplicateFinalRead {
        /// Where.
        tp: TopicPartition,
    },
    /// Final-read records without the `final` line giving their range.
    #[error("{tp}: final_read records without a final line")]
    FinalRecordsWithoutRange {
        /// Where.
        tp: TopicPartition,
    },
    /// A negative offset, a high watermark below the log start, or a final-read record outside
    /// its range or not after the previous one.
    #[error("{tp}: bad offset {offset}: {reason}")]
    BadOffset {
        /// Where.
        tp: TopicPartition,
        /// The offset.
        offset: i64,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

/// Checks a history; `Err` only when the history itself is inconsistent (see
/// [`HistoryError`]), anomalies of the cluster are in the [`Report`].
///
/// ```
/// use millrace_replication::history::{check, Category, History, Outcome, Produce, TopicPartition};
///
/// let tp = TopicPartition::new("t", 0);
/// let mut h = History::default();
/// h.produces.push(Produce {
///     tp: tp.clone(),
///     producer: "p".into(),
///     seq: 0,
///     value: "v0".into(),
///     outcome: Outcome::Acked { offset: Some(0) },
/// });
/// // Never read: lost.
/// let report = check(&h).unwrap();
/// assert_eq!(report.count(Category::Lost), 1);
/// assert!(!report.is_clean());
/// ```
pub fn check(history: &History) -> Result<Report, HistoryError> {
    let index = Index::build(history)?;
    let mut report = Report::default();
    count_stats(history, &index, &mut report.stats);
    for (tp, ops) in &index.partitions {
        let mut found = Vec::new();
        let view = committed_view(tp, ops, &mut found);
        check_duplicates(tp, &view, &mut found);
        check_unexpected(tp, &view, &index.produced, &mut found);
        check_outcomes(tp, ops, &view, &mut found, &mut report.stats);
        check_order(tp, ops, &view, &mut found);
        found.sort_by(|a, b| (a.category, &a.value).cmp(&(b.category, &b.value)));
        report.anomalies.extend(found);
    }
    Ok(report)
}

impl History {
    /// Parses the JSON-lines format (see the module doc).
    pub fn from_jsonl(text: &str) -> Result<History, HistoryError> {
        let mut history = History::default();
        let mut ranges: BTreeMap<TopicPartition, (usize, i64, i64)> = BTreeMap::new();
        let mut records: BTreeMap<TopicPartition, Vec<(i64, String)>> = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let syntax = |reason: String| HistoryError::Syntax { line, reason };
            let mut f = Fields::new(parse_flat_object(raw).map_err(syntax)?).map_err(syntax)?;
            let op = f.string("op").map_err(syntax)?;
            match op.as_str() {
                "produce" => history.produces.push(f.produce().map_err(syntax)?),
                "read" => history.reads.push(f.read().map_err(syntax)?),
                "final" => {
                    let (tp, start, hw) = f.final_range().map_err(syntax)?;
                    if ranges.insert(tp.clone(), (line, start, hw)).is_some() {
                        return Err(HistoryError::DuplicateFinalRead { tp });
                    }
                }
                "final_read" => {
                    let (tp, offset, value) = f.final_record().map_err(syntax)?;
                    records.entry(tp).or_default().push((offset, value));
                }
                "note" => history.notes.push(f.string("text").map_err(syntax)?),
                other => return Err(syntax(format!("unknown op {}", quoted(other)))),
            }
            f.finish().map_err(syntax)?;
        }
        if let Some(tp) = records.keys().find(|tp| !ranges.contains_key(*tp)) {
            return Err(HistoryError::FinalRecordsWithoutRange { tp: tp.clone() });
        }
        let mut finals: Vec<_> = ranges.into_iter().collect();
        finals.sort_by_key(|(_, (line, _, _))| *line);
        for (tp, (_, log_start_offset, high_watermark)) in finals {
            let records = records.remove(&tp).unwrap_or_default();
            history.final_reads.push(FinalRead {
                tp,
                log_start_offset,
                high_watermark,
                records,
            });
        }
        Ok(history)
    }

    /// The history in the JSON-lines format: notes, produces, reads, final reads.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for note in &self.notes {
            let _ = writeln!(out, "{{\"op\":\"note\",\"text\":{}}}", quoted(note));
        }
        for p in &self.produces {
            out.push_str(&p.to_json_line());
            out.push('\n');
        }
        for r in &self.reads {
            out.push_str(&r.to_json_line());
            out.push('\n');
        }
        for f in &self.final_reads {
            out.push_str(&f.to_json_lines());
        }
        out
    }
}

impl Produce {
    /// One line of the format, without the newline.
    pub fn to_json_line(&self) -> String {
        let mut line = format!(
            "{{\"op\":\"produce\",{},\"producer\":{},\"seq\":{},\"value\":{}",
            tp_fields(&self.tp),
            quoted(&self.producer),
            self.seq,
            quoted(&self.value)
        );
        match self.outcome {
            Outcome::Acked { offset } => {
                let offset = offset.map_or("null".to_string(), |o| o.to_string());
                let _ = write!(line, ",\"outcome\":\"acked\",\"offset\":{offset}}}");
            }
            Outcome::Failed { error_code } => {
                let _ = write!(line, ",\"outcome\":\"failed\",\"error\":{error_code}}}");
            }
            Outcome::Unknown { error_code } => {
                let error = error_code.map_or("null".to_string(), |c| c.to_string());
                let _ = write!(line, ",\"outcome\":\"unknown\",\"error\":{error}}}");
            }
        }
        line
    }
}

impl Read {
    /// One line of the format, without the newline.
    pub fn to_json_line(&self) -> String {
        format!(
            "{{\"op\":\"read\",{},\"offset\":{},\"value\":{},\"reader\":{}}}",
            tp_fields(&self.tp),
            self.offset,
            quoted(&self.value),
            quoted(&self.reader)
        )
    }
}

impl FinalRead {
    /// The `final` line and one `final_read` line per record, each ending in a newline.
    pub fn to_json_lines(&self) -> String {
        let tp = tp_fields(&self.tp);
        let mut out = format!(
            "{{\"op\":\"final\",{tp},\"log_start_offset\":{},\"high_watermark\":{}}}\n",
            self.log_start_offset, self.high_watermark
        );
        for (offset, value) in &self.records {
            let _ = writeln!(
                out,
                "{{\"op\":\"final_read\",{tp},\"offset\":{offset},\"value\":{}}}",
                quoted(value)
            );
        }
        out
    }
}

// --- the checks ----------------------------------------------------------------------------------

/// The operations of one partition.
#[derive(Default)]
struct PartitionOps<'h> {
    produces: Vec<&'h Produce>,
    reads: Vec<&'h Read>,
    final_read: Option<&'h FinalRead>,
}

/// The history indexed and validated.
struct Index<'h> {
    /// Every produced value and its produce.
    produced: HashMap<&'h str, &'h Produce>,
    partitions: BTreeMap<&'h TopicPartition, PartitionOps<'h>>,
}

impl<'h> Index<'h> {
    fn build(history: &'h History) -> Result<Index<'h>, HistoryError> {
        let mut produced: HashMap<&str, &Produce> = HashMap::new();
        let mut partitions: BTreeMap<&TopicPartition, PartitionOps> = BTreeMap::new();
        let mut seqs = BTreeSet::new();
        for p in &history.produces {
            if let Some(first) = produced.insert(&p.value, p) {
                return Err(HistoryError::DuplicateValue {
                    value: p.value.clone(),
                    first: first.tp.clone(),
                    second: p.tp.clone(),
                });
            }
            if !seqs.insert((&p.tp, &p.producer, p.seq)) {
                return Err(HistoryError::DuplicateSequence {
                    tp: p.tp.clone(),
                    producer: p.producer.clone(),
                    seq: p.seq,
                });
            }
            if let Outcome::Acked { offset: Some(o) } = p.outcome {
                non_negative(&p.tp, o)?;
            }
            partitions.entry(&p.tp).or_default().produces.push(p);
        }
        for r in &history.reads {
            non_negative(&r.tp, r.offset)?;
            partitions.entry(&r.tp).or_default().reads.push(r);
        }
        for f in &history.final_reads {
            validate_final_read(f)?;
            let ops = partitions.entry(&f.tp).or_default();
            if ops.final_read.replace(f).is_some() {
                return Err(HistoryError::DuplicateFinalRead { tp: f.tp.clone() });
            }
        }
        Ok(Index {
            produced,
            partitions,
        })
    }
}

fn non_negative(tp: &TopicPartition, offset: i64) -> Result<(), HistoryError> {
    if offset < 0 {
        return Err(HistoryError::BadOffset {
            tp: tp.clone(),
            offset,
            reason: "negative",
        });
    }
    Ok(())
}

fn validate_final_read(f: &FinalRead) -> Result<(), HistoryError> {
    let bad = |offset, reason| HistoryError::BadOffset {
        tp: f.tp.clone(),
        offset,
        reason,
    };
    non_negative(&f.tp, f.log_start_offset)?;
    if f.high_watermark < f.log_start_offset {
        return Err(bad(f.high_watermark, "high watermark below the log start"));
    }
    let mut previous = None;
    for (offset, _) in &f.records {
        if *offset < f.log_start_offset || *offset >= f.high_watermark {
            return Err(bad(
                *offset,
                "final read record outside [log start, high watermark)",
            ));
        }
        if previous.is_some_and(|p| *offset <= p) {
            return Err(bad(*offset, "final read records not in increasing offsets"));
        }
        previous = Some(*offset);
    }
    Ok(())
}

fn count_stats(history: &History, index: &Index, stats: &mut Stats) {
    stats.partitions = index.partitions.len();
    stats.produced = history.produces.len();
    for p in &history.produces {
        match p.outcome {
            Outcome::Acked { .. } => stats.acked += 1,
            Outcome::Failed { .. } => stats.failed += 1,
            Outcome::Unknown { .. } => stats.unknown += 1,
        }
    }
    stats.reads = history.reads.len();
    stats.final_reads = history.final_reads.len();
    stats.final_records = history.final_reads.iter().map(|f| f.records.len()).sum();
}

/// A partition's committed log as far as the history shows it, and every value observed.
struct View<'h> {
    by_offset: BTreeMap<i64, &'h str>,
    by_value: BTreeMap<&'h str, BTreeSet<i64>>,
    /// Every value read, by a consumer or the final read, including contradicted reads.
    seen: BTreeSet<&'h str>,
    final_read: Option<&'h FinalRead>,
}

impl View<'_> {
    /// Whether the absence of a value acknowledged at `offset` proves it lost: not when the
    /// final read starts above it (retention removed it).
    fn covers(&self, offset: Option<i64>) -> bool {
        match (self.final_read, offset) {
            (None, _) => true,
            (Some(f), Some(o)) => o >= f.log_start_offset,
            (Some(f), None) => f.log_start_offset == 0,
        }
    }

    /// What the committed log holds at `offset`, in words.
    fn describe(&self, offset: i64) -> String {
        match (self.by_offset.get(&offset), self.final_read) {
            (Some(v), _) => format!("offset {offset} holds {}", quoted(v)),
            (None, Some(f)) if offset >= f.high_watermark => {
                format!(
                    "offset {offset} is at or above the final high watermark {}",
                    f.high_watermark
                )
            }
            (None, Some(_)) => format!("the final read has no record at offset {offset}"),
            (None, None) => format!("nothing was read at offset {offset}"),
        }
    }
}

fn committed_view<'h>(
    tp: &TopicPartition,
    ops: &PartitionOps<'h>,
    found: &mut Vec<Anomaly>,
) -> View<'h> {
    let mut by_offset: BTreeMap<i64, &str> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    if let Some(f) = ops.final_read {
        for (offset, value) in &f.records {
            by_offset.insert(*offset, value);
            seen.insert(value.as_str());
        }
    }
    let mut reported = BTreeSet::new();
    for r in &ops.reads {
        seen.insert(r.value.as_str());
        let covered = ops.final_read.filter(|f| r.offset >= f.log_start_offset);
        let contradiction = match (covered, by_offset.get(&r.offset)) {
            (_, Some(v)) if *v == r.value => None,
            (Some(_), Some(v)) => Some(format!("the final read holds {} there", quoted(v))),
            (Some(f), None) if r.offset >= f.high_watermark => Some(format!(
                "at or above the final high watermark {}",
                f.high_watermark
            )),
            (Some(_), None) => Some("the final read has no record there".to_string()),
            (None, Some(v)) => Some(format!("another read saw {} there", quoted(v))),
            (None, None) => {
                by_offset.insert(r.offset, &r.value);
                None
            }
        };
        if let Some(why) = contradiction {
            if reported.insert((r.offset, r.value.as_str())) {
                found.push(Anomaly {
                    category: Category::ReadUncommitted,
                    tp: tp.clone(),
                    value: r.value.clone(),
                    detail: format!("{} read it at offset {}; {why}", reader(r), r.offset),
                });
            }
        }
    }
    let mut by_value: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for (offset, value) in &by_offset {
        by_value.entry(value).or_default().insert(*offset);
    }
    View {
        by_offset,
        by_value,
        seen,
        final_read: ops.final_read,
    }
}

fn reader(r: &Read) -> String {
    if r.reader.is_empty() {
        "a consumer".to_string()
    } else {
        format!("reader {}", quoted(&r.reader))
    }
}

fn check_duplicates(tp: &TopicPartition, view: &View, found: &mut Vec<Anomaly>) {
    for (value, offsets) in &view.by_value {
        if offsets.len() > 1 {
            found.push(Anomaly {
                category: Category::Duplicated,
                tp: tp.clone(),
                value: value.to_string(),
                detail: format!("at offsets {}", offset_list(offsets)),
            });
        }
    }
}

fn check_unexpected(
    tp: &TopicPartition,
    view: &View,
    produced: &HashMap<&str, &Produce>,
    found: &mut Vec<Anomaly>,
) {
    for value in &view.seen {
        let detail = match produced.get(value) {
            None => "read, but no produce in the history sent it".to_string(),
            Some(p) if p.tp != *tp => format!("read here, but it was produced to {}", p.tp),
            Some(_) => continue,
        };
        found.push(Anomaly {
            category: Category::UnexpectedValue,
            tp: tp.clone(),
            value: value.to_string(),
            detail,
        });
    }
}

fn check_outcomes(
    tp: &TopicPartition,
    ops: &PartitionOps,
    view: &View,
    found: &mut Vec<Anomaly>,
    stats: &mut Stats,
) {
    for p in &ops.produces {
        let at = view.by_value.get(p.value.as_str());
        let (category, detail) = match (&p.outcome, at) {
            (Outcome::Acked { offset }, None) if view.covers(*offset) => {
                let detail = match offset {
                    Some(o) => {
                        format!("acked at offset {o}, not in the log; {}", view.describe(*o))
                    }
                    None => "acked, not in the log".to_string(),
                };
                (Category::Lost, detail)
            }
            (Outcome::Acked { .. }, None) => {
                stats.acked_unverifiable += 1;
                continue;
            }
            (Outcome::Acked { offset: Some(o) }, Some(offsets)) if !offsets.contains(o) => {
                let detail = format!(
                    "acked at offset {o}, in the log at {}; {}",
                    offset_list(offsets),
                    view.describe(*o)
                );
                (Category::OffsetMismatch, detail)
            }
            (Outcome::Failed { error_code }, _) if view.seen.contains(p.value.as_str()) => {
                let category = if refused_before_append(*error_code) {
                    Category::RefusedButPresent
                } else {
                    Category::FailedButPresent
                };
                (
                    category,
                    format!("failed with error {error_code}, but read"),
                )
            }
            (Outcome::Unknown { .. }, _) => {
                if view.seen.contains(p.value.as_str()) {
                    stats.unknown_present += 1;
                }
                continue;
            }
            _ => continue,
        };
        found.push(Anomaly {
            category,
            tp: tp.clone(),
            value: p.value.clone(),
            detail,
        });
    }
}

fn check_order(tp: &TopicPartition, ops: &PartitionOps, view: &View, found: &mut Vec<Anomaly>) {
    let mut sent: BTreeMap<&str, Vec<(u64, i64, &str)>> = BTreeMap::new();
    for p in &ops.produces {
        if let Some(offsets) = view.by_value.get(p.value.as_str()) {
            let first = *offsets.first().expect("by_value holds non-empty sets");
            sent.entry(&p.producer)
                .or_default()
                .push((p.seq, first, &p.value));
        }
    }
    for (producer, mut values) in sent {
        values.sort_unstable();
        for pair in values.windows(2) {
            let ((seq_a, offset_a, value_a), (seq_b, offset_b, value_b)) = (pair[0], pair[1]);
            if offset_b < offset_a {
                found.push(Anomaly {
                    category: Category::Reordered,
                    tp: tp.clone(),
                    value: value_b.to_string(),
                    detail: format!(
                        "producer {} sent it (seq {seq_b}) after {} (seq {seq_a}), but it is at \
                         offset {offset_b}, before offset {offset_a}",
                        quoted(producer),
                        quoted(value_a)
                    ),
                });
            }
        }
    }
}

/// `[3, 7, 9]`, at most ten offsets.
fn offset_list(offsets: &BTreeSet<i64>) -> String {
    const SHOWN_MAX: usize = 10;
    let shown: Vec<String> = offsets.iter().take(SHOWN_MAX).map(i64::to_string).collect();
    let more = if offsets.len() > SHOWN_MAX {
        ", ..."
    } else {
        ""
    };
    format!("[{}{more}]", shown.join(", "))
}

// --- JSON lines ----------------------------------------------------------------------------------

/// A JSON string literal for `s`: `"` and `\` escaped, control characters as `\u00XX`, the rest
/// as UTF-8.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn tp_fields(tp: &TopicPartition) -> String {
    format!(
        "\"topic\":{},\"partition\":{}",
        quoted(&tp.topic),
        tp.partition
    )
}

/// A value in the flat objects of the format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scalar {
    Str(String),
    Int(i128),
    Null,
}

/// The fields of one line, taken one by one; whatever is left at the end is unknown.
struct Fields {
    map: BTreeMap<String, Scalar>,
}

impl Fields {
    fn new(pairs: Vec<(String, Scalar)>) -> Result<Fields, String> {
        let mut map = BTreeMap::new();
        for (key, value) in pairs {
            if map.contains_key(&key) {
                return Err(format!("duplicate key {}", quoted(&key)));
            }
            map.insert(key, value);
        }
        Ok(Fields { map })
    }

    fn string(&mut self, key: &str) -> Result<String, String> {
        self.opt_string(key)?
            .ok_or_else(|| format!("missing key {}", quoted(key)))
    }

    fn opt_string(&mut self, key: &str) -> Result<Option<String>, String> {
        match self.map.remove(key) {
            None | Some(Scalar::Null) => Ok(None),
            Some(Scalar::Str(s)) => Ok(Some(s)),
            Some(Scalar::Int(_)) => Err(format!("{} must be a string", quoted(key))),
        }
    }

    fn int<T: TryFrom<i128>>(&mut self, key: &str) -> Result<T, String> {
        self.opt_int(key)?
            .ok_or_else(|| format!("missing key {}", quoted(key)))
    }

    fn opt_int<T: TryFrom<i128>>(&mut self, key: &str) -> Result<Option<T>, String> {
        match self.map.remove(key) {
            None | Some(Scalar::Null) => Ok(None),
            Some(Scalar::Int(i)) => T::try_from(i)
                .map(Some)
                .map_err(|_| format!("{} = {i} is out of range", quoted(key))),
            Some(Scalar::Str(_)) => Err(format!("{} must be an integer", quoted(key))),
        }
    }

    fn tp(&mut self) -> Result<TopicPartition, String> {
        Ok(TopicPartition {
            topic: self.string("topic")?,
            partition: self.int("partition")?,
        })
    }

    fn finish(self) -> Result<(), String> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(format!("unknown key {}", quoted(key))),
        }
    }

    fn produce(&mut self) -> Result<Produce, String> {
        let tp = self.tp()?;
        let producer = self.string("producer")?;
        let seq = self.int("seq")?;
        let value = self.string("value")?;
        let outcome = match self.string("outcome")?.as_str() {
            "acked" => Outcome::Acked {
                offset: self.opt_int("offset")?,
            },
            "failed" => Outcome::Failed {
                error_code: self.int("error")?,
            },
            "unknown" => Outcome::Unknown {
                error_code: self.opt_int("error")?,
            },
            other => {
                return Err(format!(
                    "outcome {} is not acked, failed or unknown",
                    quoted(other)
                ))
            }
        };
        Ok(Produce {
            tp,
            producer,
            seq,
            value,
            outcome,
        })
    }

    fn read(&mut self) -> Result<Read, String> {
        Ok(Read {
            tp: self.tp()?,
            offset: self.int("offset")?,
            value: self.string("value")?,
            reader: self.opt_string("reader")?.unwrap_or_default(),
        })
    }

    fn final_range(&mut self) -> Result<(TopicPartition, i64, i64), String> {
        Ok((
            self.tp()?,
            self.int("log_start_offset")?,
            self.int("high_watermark")?,
        ))
    }

    fn final_record(&mut self) -> Result<(TopicPartition, i64, String), String> {
        Ok((self.tp()?, self.int("offset")?, self.string("value")?))
    }
}

/// Parses one flat JSON object: string keys; string, integer or null values.
fn parse_flat_object(line: &str) -> Result<Vec<(String, Scalar)>, String> {
    let mut c = Cursor {
        bytes: line.as_bytes(),
        at: 0,
    };
    c.skip_space();
    c.expect(b'{')?;
    let mut pairs = Vec::new();
    c.skip_space();
    if c.peek() == Some(b'}') {
        c.at += 1;
    } else {
        loop {
            c.skip_space();
            c.expect(b'"')?;
            let key = c.string()?;
            c.skip_space();
            c.expect(b':')?;
            c.skip_space();
            pairs.push((key, c.scalar()?));
            c.skip_space();
            match c.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(format!("expected ',' or '}}' at column {}", c.at)),
            }
        }
    }
    c.skip_space();
    if c.at != c.bytes.len() {
        return Err(format!("trailing characters at column {}", c.at + 1));
    }
    Ok(pairs)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        if b.is_some() {
            self.at += 1;
        }
        b
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), String> {
        match self.next() {
            Some(b) if b == want => Ok(()),
            Some(b) => Err(format!(
                "expected '{}' at column {}, found '{}'",
                want as char, self.at, b as char
            )),
            None => Err(format!(
                "expected '{}', found the end of the line",
                want as char
            )),
        }
    }

    fn scalar(&mut self) -> Result<Scalar, String> {
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                self.string().map(Scalar::Str)
            }
            Some(b'n') if self.bytes[self.at..].starts_with(b"null") => {
                self.at += 4;
                Ok(Scalar::Null)
            }
            Some(b'-' | b'0'..=b'9') => self.integer().map(Scalar::Int),
            _ => Err(format!(
                "column {}: only strings, integers and null are allowed",
                self.at + 1
            )),
        }
    }

    fn integer(&mut self) -> Result<i128, String> {
        /// Enough for any i64 or u64; more is out of range for every field anyway.
        const DIGITS_MAX: usize = 20;
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let count = self.at - digits;
        if count == 0 || count > DIGITS_MAX {
            return Err(format!("column {}: bad integer", start + 1));
        }
        if count > 1 && self.bytes[digits] == b'0' {
            return Err(format!("column {}: leading zero", start + 1));
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(format!("column {}: not an integer", start + 1));
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).expect("ASCII digits");
        text.parse::<i128>()
            .map_err(|e| format!("column {}: {e}", start + 1))
    }

    /// The rest of a string whose opening quote is consumed.
    fn string(&mut self) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let start = self.at;
            while !matches!(self.peek(), None | Some(b'"' | b'\\' | 0..=0x1f)) {
                self.at += 1;
            }
            // The line is a &str and the run stops only at ASCII bytes: valid UTF-8.
            out.push_str(std::str::from_utf8(&self.bytes[start..self.at]).expect("UTF-8 run"));
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => out.push(self.escape()?),
                Some(_) => {
                    return Err(format!("column {}: control character in a string", self.at))
                }
                None => return Err("unterminated string".to_string()),
            }
        }
    }

    fn escape(&mut self) -> Result<char, String> {
        let c = match self.next() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(),
            _ => return Err(format!("column {}: bad escape", self.at)),
        };
        Ok(c)
    }

    /// `\uXXXX`, or a surrogate pair `\uD8XX\uDCXX` (what Python's json writes for characters
    /// outside the basic plane).
    fn unicode_escape(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                return Err(format!("column {}: unpaired surrogate", self.at));
            }
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(format!("column {}: unpaired surrogate", self.at));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| format!("column {}: unpaired surrogate", self.at))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let end = self.at + 4;
        let hex = self
            .bytes
            .get(self.at..end)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("column {}: bad \\u escape", self.at + 1))?;
        self.at = end;
        Ok(u32::from_str_radix(hex, 16).expect("four hex digits"))
    }
}
