//! `history check FILE`: runs the replication history checker over a JSON-lines history that a
//! test recorded (the cluster rig's `tests/cluster/history.py`), prints a summary and exits 1
//! on any error-category anomaly.
//!
//! The checker is `replication/src/history.rs`, the same file the deterministic simulation
//! calls. The crate map lets tools depend on `wire` only, so the file is compiled here as a
//! module of its own (`#[path]`); it is written to need nothing but `std` and `thiserror`.
//! Its module doc defines the format and the categories.
//!
//! Output: the summary (counts of the history, one `category: count` line per category, then
//! the first `--max` anomalies), or with `--json` one JSON object for scripts:
//!
//! ```text
//! {"clean":true,"errors":0,"warnings":0,
//!  "counts":{"lost":0,...,"failed_but_present":0},
//!  "stats":{"partitions":3,"produced":...},
//!  "anomalies":[{"category":"lost","topic":"t","partition":0,"value":"v","detail":"..."}]}
//! ```
//!
//! Exit status: 0 when no error-category anomaly was found (warnings allowed, unless
//! `--strict`), 1 otherwise or when the file cannot be read or parsed.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::ToolError;
use crate::output::{outln, Json};

// The simulation uses parts of the checker's API (building histories, writing JSON lines) that
// the CLI does not.
#[allow(dead_code)]
#[path = "../../replication/src/history.rs"]
mod checker;

use checker::{check, Category, History, Report};

/// `history ...`
#[derive(Subcommand)]
pub enum HistoryCommand {
    /// Check a recorded history (JSON lines) for lost, duplicated, reordered and
    /// read-uncommitted values; exit 1 on any.
    Check(CheckArgs),
}

/// `history check`
#[derive(Args)]
pub struct CheckArgs {
    /// The history file (JSON lines, see replication/src/history.rs).
    file: PathBuf,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// How many anomalies to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max: usize,
    /// Fail on warnings (failed_but_present) too.
    #[arg(long)]
    strict: bool,
}

/// Runs a `history` subcommand.
pub fn run(cmd: HistoryCommand) -> Result<(), ToolError> {
    match cmd {
        HistoryCommand::Check(args) => check_file(&args),
    }
}

fn check_file(args: &CheckArgs) -> Result<(), ToolError> {
    let file_error = |reason: String| ToolError::File {
        path: args.file.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&args.file).map_err(|e| file_error(e.to_string()))?;
    let history = History::from_jsonl(&text).map_err(|e| file_error(e.to_string()))?;
    let report = check(&history).map_err(|e| file_error(e.to_string()))?;
    if args.json {
        outln!("{}", report_json(&report, args.max).render());
    } else {
        outln!("{}", report.summary(args.max).trim_end());
    }
    let failing = report.errors() + if args.strict { report.warnings() } else { 0 };
    if failing > 0 {
        return Err(ToolError::Anomalies(format!(
            "{}: {} errors, {} warnings",
            args.file.display(),
            report.errors(),
            report.warnings()
        )));
    }
    Ok(())
}

fn report_json(report: &Report, anomalies_max: usize) -> Json {
    let count = |n: usize| Json::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let counts = Category::ALL
        .iter()
        .map(|c| (c.name().to_string(), count(report.count(*c))))
        .collect();
    let s = &report.stats;
    let stats = Json::object(vec![
        ("partitions", count(s.partitions)),
        ("produced", count(s.produced)),
        ("acked", count(s.acked)),
        ("failed", count(s.failed)),
        ("unknown", count(s.unknown)),
        ("unknown_present", count(s.unknown_present)),
        ("acked_unverifiable", count(s.acked_unverifiable)),
        ("reads", count(s.reads)),
        ("final_reads", count(s.final_reads)),
        ("final_records", count(s.final_records)),
    ]);
    let anomalies = report
        .anomalies
        .iter()
        .take(anomalies_max)
        .map(|a| {
            Json::object(vec![
                ("category", Json::Str(a.category.name().to_string())),
                ("topic", Json::Str(a.tp.topic.clone())),
                ("partition", Json::Int(a.tp.partition.into())),
                ("value", Json::Str(a.value.clone())),
                ("detail", Json::Str(a.detail.clone())),
            ])
        })
        .collect();
    Json::object(vec![
        ("clean", Json::Bool(report.is_clean())),
        ("errors", count(report.errors())),
        ("warnings", count(report.warnings())),
        ("counts", Json::Object(counts)),
        ("stats", stats),
        ("anomalies", Json::Array(anomalies)),
    ])
}
