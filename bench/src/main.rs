//! `millrace-bench`: the load generator for millrace and any other Kafka-compatible broker.
//!
//! Workloads `produce`, `consume` and `e2e` run on the bench's own pinned executors (the
//! `shard` crate's runtime, one thread per executor, nothing shared but a few atomic totals);
//! `report` compares JSON results side by side and draws them. The client is written here on
//! top of `wire` for speed: batches are encoded in place, requests are pipelined up to
//! `--max-in-flight` per connection, consumers walk record varints without building records.
//!
//! Types in `conn`, `producer`, `consumer` and `run::Executor` live on one executor and never
//! cross threads; specs are built on the main thread and cloned into executors.
#![forbid(unsafe_code)]

mod batch;
mod cli;
mod conn;
mod consumer;
mod group;
mod keys;
mod output;
mod producer;
mod rate;
mod report;
mod run;
mod setup;
mod stats;
mod workload;

use clap::Parser;

/// Everything that can go wrong in a run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BenchError {
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
    /// Socket or file trouble.
    #[error("{0}")]
    Io(String),
    /// The broker answered something we cannot read.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The broker refused the SASL login (or the TLS handshake failed).
    #[error("{0}")]
    Auth(String),
    /// The broker answered with a Kafka error code.
    #[error("{0}: Kafka error code {1}")]
    Kafka(String, i16),
}

fn main() {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Produce(args) => workload::run(workload::Kind::Produce, args),
        cli::Command::Consume(args) => workload::run(workload::Kind::Consume, args),
        cli::Command::E2e(args) => workload::run(workload::Kind::E2e, args),
        cli::Command::Report(args) => report::run(args),
    };
    if let Err(e) = result {
        eprintln!("millrace-bench: {e}");
        std::process::exit(1);
    }
}
