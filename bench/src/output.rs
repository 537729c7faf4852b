//! What a run reports: the line per second, the summary, and the JSON document
//! (`--json FILE`) that `report` reads back.
//!
//! Units: MB = 10^6 bytes of record values (keys, headers and protocol overhead are not
//! counted, so runs with different batching compare fairly); latencies in µs in the JSON and
//! in ms in the terminal.

use serde::{Deserialize, Serialize};

use crate::stats::{LatencySummary, Window};

/// One run, as written with `--json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Always "millrace-bench".
    pub tool: String,
    /// The bench's version.
    pub tool_version: String,
    /// produce, consume or e2e.
    pub workload: String,
    /// Name of the run in reports.
    pub label: String,
    /// Broker under test.
    pub broker: BrokerInfo,
    /// Every option the run used.
    pub parameters: serde_json::Value,
    /// `git rev-parse HEAD` where the bench ran, or "unknown".
    pub git_revision: String,
    /// The machine.
    pub host: HostInfo,
    /// Wall-clock start, ms since the epoch.
    pub started_at_ms: i64,
    /// What was measured.
    pub results: Results,
}

/// The broker under test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Name and version as given with --broker-name.
    pub name: String,
    /// The bootstrap address.
    pub bootstrap_server: String,
}

/// The machine the bench ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// Online CPUs.
    pub cores: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release (uname -r).
    pub kernel: String,
}

/// Throughput over the measured period.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    /// Records.
    pub records: u64,
    /// Value bytes.
    pub bytes: u64,
    /// Seconds the rate is taken over.
    pub seconds: f64,
    /// records / seconds.
    pub records_per_sec: f64,
    /// bytes / seconds / 10^6.
    pub mb_per_sec: f64,
}

impl Throughput {
    /// Rates from counts over `seconds`.
    pub fn of(records: u64, bytes: u64, seconds: f64) -> Self {
        let s = seconds.max(1e-9);
        Throughput {
            records,
            bytes,
            seconds,
            records_per_sec: records as f64 / s,
            mb_per_sec: bytes as f64 / s / 1e6,
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    /// Seconds since the start.
    pub second: u64,
    /// Inside the warm-up.
    pub warmup: bool,
    /// Records acknowledged in this second.
    pub produced_records: u64,
    /// Value MB acknowledged in this second.
    pub produced_mb: f64,
    /// Records consumed in this second.
    pub consumed_records: u64,
    /// Value MB consumed in this second.
    pub consumed_mb: f64,
    /// p99 produce latency of this second (µs).
    pub produce_p99_us: u64,
    /// p99 end-to-end latency of this second (µs).
    pub e2e_p99_us: u64,
}

impl Second {
    /// The line of one merged window.
    pub fn of(w: &Window, warmup_s: u64) -> Self {
        Second {
            second: w.second,
            warmup: w.second < warmup_s,
            produced_records: w.acked_records,
            produced_mb: w.acked_bytes as f64 / 1e6,
            consumed_records: w.consumed_records,
            consumed_mb: w.consumed_bytes as f64 / 1e6,
            produce_p99_us: LatencySummary::of(&w.produce_latency).p99_us,
            e2e_p99_us: LatencySummary::of(&w.e2e_latency).p99_us,
        }
    }
}

/// The measured results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// Warm-up seconds left out.
    pub warmup_s: f64,
    /// Measured seconds.
    pub measured_s: f64,
    /// Produce throughput (acknowledged records) over the measured period.
    pub produce: Option<Throughput>,
    /// Consume throughput (catch-up: over the time to reach the end offsets).
    pub consume: Option<Throughput>,
    /// Produce acknowledgement latency from intended send time.
    pub produce_latency_us: Option<LatencySummary>,
    /// End-to-end latency from intended send time to receipt.
    pub e2e_latency_us: Option<LatencySummary>,
    /// Records acknowledged in the whole run, warm-up and drain included.
    pub acked_records_total: u64,
    /// Records consumed in the whole run.
    pub consumed_records_total: u64,
    /// Records whose produce failed.
    pub produce_errors: u64,
    /// Once a second.
    pub timeline: Vec<Second>,
    /// The first error messages, if any.
    pub errors: Vec<String>,
}

/// Prints one merged second.
pub fn print_second(w: &Window) {
    let s = Second::of(w, 0);
    let mut line = format!("{:>4}s", s.second);
    if w.acked_records > 0 || w.sent_records > 0 {
        line += &format!(
            "  produced {:>9} rec/s {:>8.1} MB/s  p99 {:>8.3} ms",
            s.produced_records,
            s.produced_mb,
            s.produce_p99_us as f64 / 1e3
        );
    }
    if w.consumed_records > 0 {
        line += &format!(
            "  consumed {:>9} rec/s {:>8.1} MB/s",
            s.consumed_records, s.consumed_mb
        );
        if s.e2e_p99_us > 0 {
            line += &format!("  e2e p99 {:>8.3} ms", s.e2e_p99_us as f64 / 1e3);
        }
    }
    if w.produce_errors > 0 {
        line += &format!("  errors {}", w.produce_errors);
    }
    eprintln!("{line}");
}

/// The readable summary.
pub fn summary(r: &RunResult) -> String {
    let res = &r.results;
    let mut out = format!(
        "== {} ({}) against {} at {}\n   warm-up {:.0} s, measured {:.1} s\n",
        r.label, r.workload, r.broker.name, r.broker.bootstrap_server, res.warmup_s, res.measured_s
    );
    let rate = |name: &str, t: &Throughput| {
        format!(
            "   {name:<8} {:>12.0} records/s {:>9.1} MB/s  ({} records, {:.1} MB in {:.2} s)\n",
            t.records_per_sec,
            t.mb_per_sec,
            t.records,
            t.bytes as f64 / 1e6,
            t.seconds
        )
    };
    if let Some(t) = &res.produce {
        out += &rate("produce", t);
    }
    if let Some(t) = &res.consume {
        out += &rate("consume", t);
    }
    let lat = |name: &str, l: &LatencySummary| {
        let ms = |us: u64| us as f64 / 1e3;
        format!(
            "   {name:<8} latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  \
             max {:.3}  ({} samples)\n",
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.p9999_us),
            ms(l.max_us),
            l.count
        )
    };
    if let Some(l) = &res.produce_latency_us {
        out += &lat("produce", l);
    }
    if let Some(l) = &res.e2e_latency_us {
        out += &lat("e2e", l);
    }
    out += &format!(
        "   totals: acknowledged {} records, consumed {}, produce errors {}\n",
        res.acked_records_total, res.consumed_records_total, res.produce_errors
    );
    for e in &res.errors {
        out += &format!("   error: {e}\n");
    }
    out
}

/// Facts about this machine for the JSON.
pub fn host_info() -> HostInfo {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
    HostInfo {
        hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
    }
}

/// The git revision of the working directory, or "unknown".
pub fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
