//! `consume TOPIC`: Fetch from assigned partitions (one or all), decode every batch with
//! `wire` (any codec), print each record.
//!
//! Start positions come from ListOffsets (`--from-beginning`, `--timestamp`, default: the end)
//! or `--offset`. Fetch returns whole batches, possibly starting before the fetch offset and
//! possibly cut at the end; records below the position are skipped, a cut batch is fetched
//! again next time. Control batches (transaction markers) are skipped. With `--group` the
//! partitions come from the group's coordinator instead (`group.rs`), and positions are
//! committed as the run goes and at the end.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use kafka_protocol::messages::{
    fetch_request::{FetchPartition, FetchTopic},
    BrokerId, FetchRequest,
};
use millrace_wire::records::{decode_records, validate_batch, BatchIter, BatchStep, Record};

use crate::admin::{topic_name, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::error::{check, ToolError};
use crate::group::GroupMember;
use crate::output::Json;
use crate::route::Route;
use crate::Connection;

const FETCH_VERSIONS: std::ops::RangeInclusive<i16> = 4..=12;
const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_MAX_BYTES: i32 = 50 << 20;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
/// Bound on one batch's decompressed records (a batch is untrusted input).
const DECOMPRESSED_BYTES_MAX: usize = 256 << 20;

/// How records are printed.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// The value only.
    Value,
    /// Key, a tab, then the value.
    KeyValue,
    /// One JSON object per record.
    Json,
}

/// `consume` arguments.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to consume.
    topic: String,
    /// Start at the log start offset.
    #[arg(long = "from-beginning", conflicts_with_all = ["offset", "timestamp"])]
    from_beginning: bool,
    /// Start at this offset (in every consumed partition).
    #[arg(long, conflicts_with_all = ["timestamp", "group"])]
    offset: Option<i64>,
    /// Start at the first record with a timestamp at or after MS (epoch milliseconds).
    #[arg(long, value_name = "MS", conflicts_with = "group")]
    timestamp: Option<i64>,
    /// Consume only this partition (default: all).
    #[arg(long, conflicts_with = "group")]
    partition: Option<i32>,
    /// Stop after this many records.
    #[arg(long = "max-messages")]
    max_messages: Option<u64>,
    /// Exit when no record arrived for this long.
    #[arg(long = "timeout-ms")]
    timeout_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "value")]
    format: Format,
    /// Consume as a member of this consumer group: partitions assigned by the group, start
    /// at its committed offsets (else the end, or the beginning with --from-beginning).
    #[arg(long)]
    group: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

/// Runs `consume`.
pub fn run(args: ConsumeArgs) -> Result<(), ToolError> {
    let mut client = args.conn.connect()?;
    let (mut route, _) = Route::load(&mut client, &args.topic, false)?;
    let all = route.partitions();
    let (positions, group) = match &args.group {
        Some(group) => {
            let mut member = GroupMember::connect(&mut client, group, &args.topic)?;
            let committed = member.join(all.len() as i32)?;
            let positions = resolve_committed(&mut route, committed, args.from_beginning)?;
            (
                positions,
                Some((member, all.len() as i32, args.from_beginning)),
            )
        }
        None => {
            let partitions = match args.partition {
                Some(p) if !all.contains(&p) => {
                    return Err(ToolError::Usage(format!(
                        "partition {p} does not exist: topic {} has {} partitions",
                        args.topic,
                        all.len()
                    )))
                }
                Some(p) => vec![p],
                None => all,
            };
            (start_positions(&mut route, &args, &partitions)?, None)
        }
    };
    let mut consumer = Consumer {
        route,
        topic: args.topic.clone(),
        positions,
        format: args.format,
        printed: 0,
        max_messages: args.max_messages,
        group,
    };
    consumer.run(args.timeout_ms.map(Duration::from_millis))?;
    if let Some((member, _, _)) = consumer.group.take() {
        member.leave(&consumer.positions)?;
    }
    eprintln!("Processed a total of {} messages", consumer.printed);
    Ok(())
}

fn start_positions(
    route: &mut Route,
    args: &ConsumeArgs,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, ToolError> {
    if let Some(offset) = args.offset {
        return Ok(partitions.iter().map(|&p| (p, offset)).collect());
    }
    let timestamp = match (args.from_beginning, args.timestamp) {
        (true, _) => EARLIEST_TIMESTAMP,
        (false, Some(ts)) => ts,
        (false, None) => LATEST_TIMESTAMP,
    };
    let found: BTreeMap<i32, i64> = route
        .list_offsets(partitions, timestamp)?
        .into_iter()
        .collect();
    // No record at or after the timestamp: start at the end, as Kafka's consumer does.
    resolve_committed(route, found, false)
}

/// Offsets with "none" (-1: nothing committed, or no record after a timestamp) replaced by
/// the reset position: the log start with `from_beginning`, else the end (Kafka's
/// `auto.offset.reset`).
fn resolve_committed(
    route: &mut Route,
    committed: BTreeMap<i32, i64>,
    from_beginning: bool,
) -> Result<BTreeMap<i32, i64>, ToolError> {
    let missing: Vec<i32> = committed
        .iter()
        .filter(|(_, &o)| o < 0)
        .map(|(&p, _)| p)
        .collect();
    let mut positions = committed;
    if !missing.is_empty() {
        let reset = if from_beginning {
            EARLIEST_TIMESTAMP
        } else {
            LATEST_TIMESTAMP
        };
        positions.extend(route.list_offsets(&missing, reset)?);
    }
    Ok(positions)
}

struct Consumer {
    /// Connections to the partitions' leaders.
    route: Route,
    topic: String,
    /// partition -> next offset to print.
    positions: BTreeMap<i32, i64>,
    format: Format,
    printed: u64,
    max_messages: Option<u64>,
    /// With `--group`: the membership, the topic's partition count, `--from-beginning`.
    group: Option<(GroupMember, i32, bool)>,
}

impl Consumer {
    fn run(&mut self, idle: Option<Duration>) -> Result<(), ToolError> {
        let mut last_record = Instant::now();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        while !self.done() {
            let before = self.printed;
            self.group_tick()?;
            if self.positions.is_empty() {
                // A group member with no partitions waits for a rebalance.
                std::thread::sleep(Duration::from_millis(FETCH_MAX_WAIT_MS as u64));
            } else {
                self.fetch_once(&mut out)?;
            }
            out.flush().map_err(stdout_error)?;
            if self.printed > before {
                last_record = Instant::now();
            } else if idle.is_some_and(|t| last_record.elapsed() >= t) {
                break;
            }
        }
        Ok(())
    }

    /// Heartbeats and commits for a group member; rejoins when the group rebalances.
    fn group_tick(&mut self) -> Result<(), ToolError> {
        let Some((member, partitions, from_beginning)) = self.group.as_mut() else {
            return Ok(());
        };
        if member.tick(&self.positions)? {
            let committed = member.join(*partitions)?;
            self.positions = resolve_committed(&mut self.route, committed, *from_beginning)?;
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.max_messages.is_some_and(|m| self.printed >= m)
    }

    /// One Fetch per leader; the long-poll wait is shared among them.
    fn fetch_once(&mut self, out: &mut impl Write) -> Result<(), ToolError> {
        let by_leader = self.route.by_leader(self.positions.keys().copied());
        let max_wait_ms = (FETCH_MAX_WAIT_MS / by_leader.len().max(1) as i32).max(10);
        for (leader, partitions) in by_leader {
            self.fetch_from(leader, &partitions, max_wait_ms, out)?;
            if self.done() {
                break;
            }
        }
        Ok(())
    }

    fn fetch_from(
        &mut self,
        leader: i32,
        partitions: &[i32],
        max_wait_ms: i32,
        out: &mut impl Write,
    ) -> Result<(), ToolError> {
        let mut topic = FetchTopic::default();
        topic.topic = topic_name(&self.topic);
        topic.partitions = partitions
            .iter()
            .map(|&p| (p, self.positions[&p]))
            .map(|(p, offset)| {
                let mut fp = FetchPartition::default();
                fp.partition = p;
                fp.current_leader_epoch = -1;
                fp.fetch_offset = offset;
                fp.last_fetched_epoch = -1;
                fp.log_start_offset = -1;
                fp.partition_max_bytes = PARTITION_MAX_BYTES;
                fp
            })
            .collect();
        let mut request = FetchRequest::default();
        request.replica_id = BrokerId(-1);
        request.max_wait_ms = max_wait_ms;
        request.min_bytes = 1;
        request.max_bytes = FETCH_MAX_BYTES;
        request.isolation_level = 0;
        request.session_id = 0;
        request.session_epoch = -1;
        request.topics = vec![topic];
        let response = self.route.client(leader)?.call(&request, FETCH_VERSIONS)?;
        check(
            response.error_code,
            || format!("fetch from {}", self.topic),
            None,
        )?;
        for t in response.responses {
            for p in t.partitions {
                let partition = p.partition_index;
                check(
                    p.error_code,
                    || format!("fetch from {}-{partition}", self.topic),
                    None,
                )?;
                if let Some(records) = p.records {
                    self.print_records(partition, &records, out)?;
                }
            }
        }
        Ok(())
    }

    fn print_records(
        &mut self,
        partition: i32,
        bytes: &[u8],
        out: &mut impl Write,
    ) -> Result<(), ToolError> {
        for step in BatchIter::new(bytes) {
            // A Tail is a batch cut by the size limit; it comes whole next time.
            let BatchStep::Batch { header, bytes, .. } = step else {
                break;
            };
            let position = self.positions[&partition];
            if header.last_offset() < position {
                continue;
            }
            let corrupt = |e: millrace_wire::WireError| {
                ToolError::Protocol(format!(
                    "corrupt batch at offset {} of {}-{partition}: {e}",
                    header.base_offset, self.topic
                ))
            };
            validate_batch(bytes).map_err(corrupt)?;
            if !header.is_control() {
                for record in decode_records(bytes, DECOMPRESSED_BYTES_MAX).map_err(corrupt)? {
                    if record.offset < position || self.done() {
                        continue;
                    }
                    let line = format_record(self.format, &self.topic, partition, &record);
                    writeln!(out, "{line}").map_err(stdout_error)?;
                    self.printed += 1;
                    // Committed offsets mean "next to read", record by record.
                    self.positions.insert(partition, record.offset + 1);
                }
            }
            if self.done() {
                return Ok(());
            }
            self.positions.insert(partition, header.next_offset());
        }
        Ok(())
    }
}

/// One record as a line in `format`.
pub fn format_record(format: Format, topic: &str, partition: i32, record: &Record) -> String {
    let text =
        |b: &Option<bytes::Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    match format {
        Format::Value => text(&record.value).unwrap_or_else(|| "null".into()),
        Format::KeyValue => format!(
            "{}\t{}",
            text(&record.key).unwrap_or_else(|| "null".into()),
            text(&record.value).unwrap_or_else(|| "null".into())
        ),
        Format::Json => {
            let headers = record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Json::opt_str(text(v).as_deref())))
                .collect();
            Json::object(vec![
                ("topic", Json::Str(topic.to_string())),
                ("partition", Json::Int(i64::from(partition))),
                ("offset", Json::Int(record.offset)),
                ("timestamp", Json::Int(record.timestamp)),
                ("key", Json::opt_str(text(&record.key).as_deref())),
                ("value", Json::opt_str(text(&record.value).as_deref())),
                ("headers", Json::Object(headers)),
            ])
            .render()
        }
    }
}

fn stdout_error(e: std::io::Error) -> ToolError {
    crate::output::exit_on_stdout_error(&e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn json_has_every_field() {
        let record = Record {
            offset: 5,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
        };
        assert_eq!(
            format_record(Format::Json, "t", 2, &record),
            r#"{"topic":"t","partition":2,"offset":5,"timestamp":1700000000000,"key":"k","value":null,"headers":{"h":"v"}}"#
        );
        assert_eq!(format_record(Format::KeyValue, "t", 2, &record), "k\tnull");
    }
}
