//! `produce TOPIC`: one record per input line, batched per partition with `wire`'s
//! [`BatchBuilder`], many batches per Produce request.
//!
//! Partitioning follows Kafka's defaults: `--partition` if given, else murmur2 of the key, else
//! round-robin over the partitions. A batch is closed when its records reach `--batch-size`
//! bytes (before compression); a request is sent when the open batches together reach
//! `REQUEST_BYTES_MAX`, and at the end of input. The first partition error stops the run with
//! its Kafka error name.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::{
    produce_request::{PartitionProduceData, TopicProduceData},
    ApiKey, ProduceRequest,
};
use millrace_wire::records::{BatchBuilder, NewRecord};
use millrace_wire::Compression;

use crate::admin::{parse_pairs, topic_name};
use crate::error::{check, ToolError};
use crate::route::Route;
use crate::Connection;
use millrace_wire::murmur2::partition_for_key;

const PRODUCE_VERSIONS: std::ops::RangeInclusive<i16> = 3..=11;
/// Open batches are sent once their records add up to this many bytes.
const REQUEST_BYTES_MAX: usize = 4 << 20;
/// Fixed cost of a record in a batch, for the size estimate (length, attributes, deltas).
const RECORD_OVERHEAD_BYTES: usize = 16;
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// `produce` arguments.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to produce to.
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    file: Option<String>,
    /// Split each line into key and value at the first occurrence of SEP.
    #[arg(long = "key-separator", value_name = "SEP")]
    key_separator: Option<String>,
    /// A header k=v added to every record; repeatable.
    #[arg(long = "header", value_name = "K=V")]
    header: Vec<String>,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Acknowledgements: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    /// Compression codec.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Bytes of records per batch before compression.
    #[arg(long = "batch-size", default_value_t = 256 * 1024)]
    batch_size: usize,
    #[command(flatten)]
    conn: Connection,
}

/// Records waiting to be sent, per partition, and what has been sent so far.
struct Producer {
    /// Connections to the partitions' leaders.
    route: Route,
    topic: String,
    acks: i16,
    builder: BatchBuilder,
    batch_bytes_max: usize,
    /// Closed batches and the open one's records, per partition.
    closed: BTreeMap<i32, Vec<Vec<u8>>>,
    open: BTreeMap<i32, (Vec<NewRecord>, usize)>,
    pending_bytes: usize,
    /// partition -> (records, batches) sent.
    sent: BTreeMap<i32, (u64, u64)>,
}

/// Runs `produce`.
pub fn run(args: ProduceArgs) -> Result<(), ToolError> {
    let headers: Vec<(String, Option<Vec<u8>>)> = parse_pairs(&args.header, "--header")?
        .into_iter()
        .map(|(k, v)| (k, Some(v.into_bytes())))
        .collect();
    let compression = Compression::from_name(&args.compression)
        .ok_or_else(|| ToolError::Usage(format!("unknown codec {}", args.compression)))?;
    if args.key_separator.as_deref() == Some("") {
        return Err(ToolError::Usage("--key-separator must not be empty".into()));
    }
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(BufReader::new(std::fs::File::open(path).map_err(|e| {
            ToolError::File {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?)),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let mut client = args.conn.connect()?;
    let (route, _) = Route::load(&mut client, &args.topic, true)?;
    let partitions = route.partitions().len() as i32;
    if let Some(p) = args.partition {
        if !(0..partitions).contains(&p) {
            return Err(ToolError::Usage(format!(
                "partition {p} does not exist: topic {} has {partitions} partitions",
                args.topic
            )));
        }
    }
    let mut producer = Producer {
        route,
        topic: args.topic.clone(),
        acks: match args.acks.as_str() {
            "0" => 0,
            "1" => 1,
            _ => -1,
        },
        builder: BatchBuilder {
            compression,
            ..BatchBuilder::default()
        },
        batch_bytes_max: args.batch_size.max(1),
        closed: BTreeMap::new(),
        open: BTreeMap::new(),
        pending_bytes: 0,
        sent: BTreeMap::new(),
    };
    let mut round_robin = 0i32;
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| ToolError::File {
            path: args.file.clone().unwrap_or_else(|| "stdin".into()),
            reason: e.to_string(),
        })?;
        let (key, value) = split_line(&line, args.key_separator.as_deref(), n + 1)?;
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, partitions),
            (None, None) => {
                round_robin = (round_robin + 1) % partitions;
                round_robin
            }
        };
        let record = NewRecord {
            timestamp: now_ms(),
            key,
            value: Some(value),
            headers: headers.clone(),
        };
        producer.add(partition, record)?;
    }
    producer.flush()?;
    eprintln!("{}", producer.summary());
    Ok(())
}

impl Producer {
    fn add(&mut self, partition: i32, record: NewRecord) -> Result<(), ToolError> {
        let bytes = record_bytes(&record);
        let (records, open_bytes) = self.open.entry(partition).or_default();
        records.push(record);
        *open_bytes += bytes;
        self.pending_bytes += bytes;
        if *open_bytes >= self.batch_bytes_max {
            self.close_batch(partition);
        }
        if self.pending_bytes >= REQUEST_BYTES_MAX {
            self.flush()?;
        }
        Ok(())
    }

    fn close_batch(&mut self, partition: i32) {
        if let Some((records, _)) = self.open.remove(&partition) {
            if !records.is_empty() {
                let batch = self.builder.build(&records);
                self.closed.entry(partition).or_default().push(batch);
                let sent = self.sent.entry(partition).or_default();
                sent.0 += records.len() as u64;
            }
        }
    }

    /// Closes every open batch and sends everything in requests of one batch per partition
    /// (Kafka allows one record set per partition per request; several concatenated batches
    /// are accepted too, but one keeps the broker's per-batch checks simple to reason about).
    fn flush(&mut self) -> Result<(), ToolError> {
        let open: Vec<i32> = self.open.keys().copied().collect();
        for p in open {
            self.close_batch(p);
        }
        while !self.closed.is_empty() {
            let mut partition_data = Vec::new();
            for (&p, batches) in self.closed.iter_mut() {
                let mut data = PartitionProduceData::default();
                data.index = p;
                data.records = Some(Bytes::from(batches.remove(0)));
                partition_data.push(data);
                self.sent.entry(p).or_default().1 += 1;
            }
            self.closed.retain(|_, b| !b.is_empty());
            self.send(partition_data)?;
        }
        self.pending_bytes = 0;
        Ok(())
    }

    /// Sends `partition_data`, one request per leader.
    fn send(&mut self, partition_data: Vec<PartitionProduceData>) -> Result<(), ToolError> {
        let mut by_leader: BTreeMap<i32, Vec<PartitionProduceData>> = BTreeMap::new();
        for data in partition_data {
            by_leader
                .entry(self.route.leader(data.index))
                .or_default()
                .push(data);
        }
        for (leader, data) in by_leader {
            self.send_to(leader, data)?;
        }
        Ok(())
    }

    fn send_to(
        &mut self,
        leader: i32,
        partition_data: Vec<PartitionProduceData>,
    ) -> Result<(), ToolError> {
        let mut topic = TopicProduceData::default();
        topic.name = topic_name(&self.topic);
        topic.partition_data = partition_data;
        let mut request = ProduceRequest::default();
        request.acks = self.acks;
        request.timeout_ms = PRODUCE_TIMEOUT_MS;
        request.topic_data = vec![topic];
        let client = self.route.client(leader)?;
        let version = client.version(ApiKey::Produce, PRODUCE_VERSIONS)?;
        if self.acks == 0 {
            return client.send(&request, version);
        }
        let response = client.call_at(&request, version)?;
        for t in &response.responses {
            for p in &t.partition_responses {
                check(
                    p.error_code,
                    || format!("produce to {}-{}", self.topic, p.index),
                    p.error_message.as_ref().map(|m| m.as_str()),
                )?;
            }
        }
        Ok(())
    }

    fn summary(&self) -> String {
        let records: u64 = self.sent.values().map(|s| s.0).sum();
        let batches: u64 = self.sent.values().map(|s| s.1).sum();
        let per_partition: Vec<String> = self
            .sent
            .iter()
            .map(|(p, (r, _))| format!("{p}:{r}"))
            .collect();
        format!(
            "Produced {records} records in {batches} batches to {} partitions of {} \
             (partition:records {}){}",
            self.sent.len(),
            self.topic,
            per_partition.join(" "),
            if self.acks == 0 {
                "; acks=0: sent, not confirmed"
            } else {
                ""
            }
        )
    }
}

/// Splits a line into key and value at the first `separator`; without one the whole line is
/// the value and the key is null.
fn split_line(
    line: &str,
    separator: Option<&str>,
    line_number: usize,
) -> Result<(Option<Vec<u8>>, Vec<u8>), ToolError> {
    match separator {
        None => Ok((None, line.as_bytes().to_vec())),
        Some(sep) => match line.split_once(sep) {
            Some((k, v)) => Ok((Some(k.as_bytes().to_vec()), v.as_bytes().to_vec())),
            None => Err(ToolError::Usage(format!(
                "no key separator '{sep}' on line {line_number}"
            ))),
        },
    }
}

fn record_bytes(record: &NewRecord) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 2)
        .sum();
    RECORD_OVERHEAD_BYTES
        + record.key.as_ref().map_or(0, Vec::len)
        + record.value.as_ref().map_or(0, Vec::len)
        + headers
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(
            split_line("k:v:w", Some(":"), 1).unwrap(),
            (Some(b"k".to_vec()), b"v:w".to_vec())
        );
        assert_eq!(
            split_line("plain", None, 1).unwrap(),
            (None, b"plain".to_vec())
        );
        let e = split_line("plain", Some("::"), 7).unwrap_err();
        assert!(e.to_string().contains("line 7"), "{e}");
    }
}
