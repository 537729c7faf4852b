//! The command line, in Kafka's conventions (`--bootstrap-server`, `--topic`, `--acks`,
//! `--compression-type`, `--batch-size`, `--linger-ms`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::keys::KeyDistribution;

/// Load generator for millrace and any Kafka-compatible broker: throughput and latency
/// (HDR percentiles, no coordinated omission) in the terminal, as JSON and as a picture.
#[derive(Parser, Debug)]
#[command(name = "millrace-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Produce records and measure acknowledgement latency and throughput.
    Produce(WorkloadArgs),
    /// Consume records: catch-up from the beginning (default) or tailing with --from end.
    Consume(WorkloadArgs),
    /// Produce and consume together; end-to-end latency from each record's intended send time
    /// (carried in its value) to its receipt by the consumer.
    E2e(WorkloadArgs),
    /// Compare JSON results side by side and draw latency percentiles and throughput over
    /// time as an SVG.
    Report(ReportArgs),
}

/// acks as Kafka spells them.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Acks {
    /// No acknowledgement: latency is the time until the request was written.
    #[value(name = "0")]
    None,
    /// The leader wrote it.
    #[value(name = "1")]
    Leader,
    /// All in-sync replicas have it (millrace: on disk).
    #[value(name = "all", alias = "-1")]
    All,
}

impl Acks {
    /// The wire value.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    /// Kafka's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// Where consumers start.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum From {
    /// The log start: catch-up, stops at the end offsets seen at start.
    Beginning,
    /// The log end: tailing, runs for the duration.
    End,
}

/// Options shared by produce, consume and e2e.
#[derive(Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// Broker to bootstrap from (HOST:PORT); the leaders come from its metadata.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// Kafka client properties for a secured listener, the same file Kafka's tools take:
    /// security.protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), ssl.truststore.* and
    /// ssl.keystore.* (PEM), ssl.key.password, ssl.endpoint.identification.algorithm,
    /// ssl.enabled.protocols, sasl.mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and
    /// sasl.jaas.config. Every connection (set-up and measured) uses it.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Topic to use.
    #[arg(long, default_value = "millrace-bench")]
    pub topic: String,
    /// Create the topic with this many partitions if it does not exist. Without it the topic
    /// must exist.
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// Bytes of each record's value (at least 8: the first 8 carry the intended send time).
    #[arg(long = "record-size", default_value_t = 1024, value_name = "BYTES")]
    pub record_size: usize,
    /// Keys: none (null keys, sticky partitioning), uniform:N, zipf:N[:EXPONENT] (default
    /// exponent 0.99); keyed records are partitioned by murmur2 as Kafka's clients do.
    #[arg(long, default_value = "none", value_name = "DIST")]
    pub keys: KeyDistribution,
    /// Producer tasks (each with its own connections and share of the rate).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub producers: usize,
    /// Consumer tasks; the partitions are dealt out among them.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub consumers: usize,
    /// Partitions the consumers read (comma-separated); default all, dealt out in turn.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "P,P,..",
        conflicts_with = "group"
    )]
    pub assign: Vec<i32>,
    /// Consumers join this consumer group (classic protocol, range assignor) and read what
    /// it assigns them; offsets are not committed.
    #[arg(long, value_name = "GROUP_ID")]
    pub group: Option<String>,
    /// Target records per second over all producers; 0 = as fast as possible.
    #[arg(
        long,
        alias = "throughput",
        default_value_t = 0.0,
        value_name = "RECORDS_PER_SEC"
    )]
    pub rate: f64,
    /// acks: 0, 1 or all.
    #[arg(long, value_enum, default_value = "all")]
    pub acks: Acks,
    /// Codec: none, gzip, snappy, lz4, zstd.
    #[arg(
        long = "compression-type",
        alias = "compression",
        default_value = "none"
    )]
    pub compression: String,
    /// Seal a partition's batch once it holds this many bytes.
    #[arg(long = "batch-size", default_value_t = 65536, value_name = "BYTES")]
    pub batch_size: usize,
    /// Seal a batch at the latest this long after its first record.
    #[arg(long = "linger-ms", default_value_t = 5, value_name = "MS")]
    pub linger_ms: u64,
    /// Unanswered Produce requests per connection (pipelining bound).
    #[arg(long = "max-in-flight", default_value_t = 5, value_name = "N")]
    pub max_in_flight: usize,
    /// Idempotent producer (InitProducerId, sequences); on by default with acks=all, as in
    /// Kafka 3.0 and later.
    #[arg(long, value_name = "true|false")]
    pub idempotence: Option<bool>,
    /// Where consumers start (consume only; e2e always tails).
    #[arg(long, value_enum, default_value = "beginning")]
    pub from: From,
    /// Warm-up before measuring (latency and totals leave it out), e.g. 2s, 500ms.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Measured time after the warm-up (consume catch-up: the limit), e.g. 10s, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long e2e consumers may keep reading after the producers stopped.
    #[arg(long = "drain-timeout", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Seed for keys, value bytes and partition choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Executors (threads) the producers and consumers are spread over.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub executors: usize,
    /// Do not pin executor i to CPU i.
    #[arg(long = "no-pin")]
    pub no_pin: bool,
    /// Fetch long-poll wait.
    #[arg(long = "fetch-max-wait-ms", default_value_t = 100, value_name = "MS")]
    pub fetch_max_wait_ms: i32,
    /// Fetch response bound.
    #[arg(
        long = "fetch-max-bytes",
        default_value_t = 52_428_800,
        value_name = "BYTES"
    )]
    pub fetch_max_bytes: i32,
    /// Fetch bound per partition.
    #[arg(
        long = "max-partition-fetch-bytes",
        default_value_t = 1_048_576,
        value_name = "BYTES"
    )]
    pub partition_max_bytes: i32,
    /// Check the CRC-32C of every fetched batch, as Kafka's consumers do by default
    /// (check.crcs). Off, the consumers still bounds-check every batch and record they walk.
    #[arg(
        long = "check-crcs",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "true|false"
    )]
    pub check_crcs: bool,
    /// Write the parameters, machine and results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// A name for this run in reports (default: the workload and broker name).
    #[arg(long)]
    pub label: Option<String>,
    /// The broker's name and version for the report, e.g. "millrace 0.1.0".
    #[arg(long = "broker-name", default_value = "unknown broker")]
    pub broker_name: String,
    /// No line per second.
    #[arg(long)]
    pub quiet: bool,
}

/// Options of `report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Result files written with --json.
    #[arg(required = true, value_name = "RESULT.json")]
    pub files: Vec<PathBuf>,
    /// Write the side-by-side table (Markdown) here as well as to stdout.
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// Write the SVG plot here.
    #[arg(long, default_value = "report.svg", value_name = "FILE")]
    pub svg: PathBuf,
}

/// Parses `10s`, `500ms`, `2m`, `1.5s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 10s, 500ms, 2m)"))?;
    if !(0.0..=86_400.0 * 7.0).contains(&(value * scale)) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_the_usual_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_documented_command_line_parses() {
        let cli = Cli::try_parse_from([
            "millrace-bench",
            "produce",
            "--bootstrap-server",
            "127.0.0.1:9092",
            "--topic",
            "T",
            "--partitions",
            "16",
            "--record-size",
            "1024",
            "--acks",
            "all",
            "--duration",
            "10s",
            "--json",
            "out.json",
            "--keys",
            "zipf:100",
        ])
        .unwrap();
        let Command::Produce(args) = cli.command else {
            panic!("not produce")
        };
        assert_eq!(args.partitions, Some(16));
        assert_eq!(args.acks, Acks::All);
        assert_eq!(args.keys, KeyDistribution::Zipf(100, 0.99));
        assert!(Cli::try_parse_from(["millrace-bench", "produce", "--acks", "2"]).is_err());
    }
}
