//! `millrace-tools`: the admin CLI for Millrace and any Kafka-protocol broker, and the offline
//! segment tools.
//!
//! * `topics`, `configs`, `cluster`: admin requests over the Kafka protocol (`admin.rs`).
//! * `produce`, `consume`: lines in, records out, through `wire`'s batch builder and decoder
//!   (`produce.rs`, `consume.rs`).
//! * `log dump`, `log check`: read partition directories on disk, no broker needed (`log.rs`).
//!
//! Flags are spelled as in Kafka's shell tools. Every protocol command takes
//! `--bootstrap-server HOST:PORT`. The client (`client.rs`) is blocking, one connection, one
//! request in flight: a CLI has nothing to overlap, and no runtime keeps it small. Versions
//! are negotiated with ApiVersions, so the same commands work against Apache Kafka.
//!
//! Exit status: 0 on success, 1 with one line on stderr for any failure (the broker's error
//! name included when it sent one), 2 for command-line syntax errors (clap's).
//!
//! Single-threaded, no shared state: nothing here lives on a broker shard.
#![forbid(unsafe_code)]

mod admin;
mod client;
mod consume;
mod error;
mod group;
mod log;
mod murmur2;
mod output;
mod produce;
mod route;

use clap::{Args, Parser, Subcommand};

use crate::error::ToolError;

/// Millrace admin CLI: topics, configs, cluster, produce/consume, offline log tools.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, describe, delete topics and add partitions.
    #[command(subcommand)]
    Topics(admin::TopicsCommand),
    /// Describe and alter topic or broker configs.
    #[command(subcommand)]
    Configs(admin::ConfigsCommand),
    /// Describe the cluster: brokers, controller, cluster id, API versions.
    #[command(subcommand)]
    Cluster(admin::ClusterCommand),
    /// Produce lines from stdin (or a file) as records.
    Produce(produce::ProduceArgs),
    /// Consume records and print them.
    Consume(consume::ConsumeArgs),
    /// Offline tools for partition directories: dump and check segments.
    #[command(subcommand)]
    Log(log::LogCommand),
}

/// The connection flag every protocol command takes.
#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// Broker to talk to.
    #[arg(
        long = "bootstrap-server",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_server: String,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Topics(cmd) => admin::topics(cmd),
        Command::Configs(cmd) => admin::configs(cmd),
        Command::Cluster(cmd) => admin::cluster(cmd),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Log(cmd) => log::run(cmd),
    };
    if let Err(e) = result {
        exit_with(&e);
    }
}

fn exit_with(e: &ToolError) -> ! {
    let line = e.to_string().replace('\n', " ");
    eprintln!("millrace-tools: {line}");
    std::process::exit(1);
}
