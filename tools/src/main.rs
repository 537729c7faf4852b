//! `millrace-tools`: the admin CLI for Millrace and any Kafka-protocol broker, and the offline
//! segment tools.
//!
//! * `topics`, `configs`, `cluster`: admin requests over the Kafka protocol (`admin.rs`).
//! * `produce`, `consume`: lines in, records out, through `wire`'s batch builder and decoder
//!   (`produce.rs`, `consume.rs`).
//! * `groups list | describe | reset-offsets | delete`: consumer groups as
//!   `kafka-consumer-groups.sh` shows them (`groups.rs`).
//! * `transactions list | describe | describe-producers | abort`: transactions and the
//!   producers of a partition as `kafka-transactions.sh` shows them, and the abort of a hanging
//!   transaction (`transactions.rs`).
//! * `acls --add | --list | --remove`: ACLs as `kafka-acls.sh` manages them (`acls.rs`).
//! * `quotas --describe | --alter`: client quotas as `kafka-configs.sh` manages them
//!   (`quotas.rs`).
//! * `log dump`, `log check`: read partition directories on disk, no broker needed (`log.rs`).
//! * `history check`: the replication history checker over a history a test recorded, no
//!   broker needed (`history.rs`).
//!
//! Flags are spelled as in Kafka's shell tools. Every protocol command takes
//! `--bootstrap-server HOST:PORT` and `--command-config FILE`, Kafka's client properties for
//! TLS and SASL listeners (`command_config.rs`, over the security crate's `client` module). The client
//! (`client.rs`) is blocking, one connection, one request in flight: a CLI has nothing to
//! overlap, and no runtime keeps it small. Versions are negotiated with ApiVersions, so the
//! same commands work against Apache Kafka.
//!
//! Exit status: 0 on success, 1 with one line on stderr for any failure (the broker's error
//! name included when it sent one), 2 for command-line syntax errors (clap's).
//!
//! Decisions:
//!
//! * Produce, Fetch and ListOffsets go to each partition's leader (`route.rs`); admin requests
//!   go to the bootstrap broker, which forwards them to the controller as Kafka's do.
//! * Keyed records are partitioned with Kafka's murmur2 (same partition as the Java client and
//!   librdkafka's `murmur2_random`); unkeyed ones round-robin.
//! * `consume --group` speaks the classic group protocol with the range assignor
//!   (`group.rs`). A broker that does not advertise JoinGroup is refused at once with one
//!   line.
//! * Responses are decoded by kafka-protocol, which sizes arrays from declared counts; the
//!   response frame is bounded (256 MiB) but a hostile broker could still make the CLI
//!   allocate too much. The wire guard covers requests only; the tools trust their broker.
//!
//! Single-threaded, no shared state: nothing here lives on a broker shard.
#![forbid(unsafe_code)]

mod acls;
mod admin;
mod client;
mod command_config;
mod consume;
mod error;
mod group;
mod groups;
mod history;
mod log;
mod output;
mod produce;
mod quotas;
mod route;
mod transactions;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::ToolError;

/// Millrace admin CLI: topics, configs, cluster, produce/consume, groups, transactions, ACLs,
/// quotas, offline log tools, history checks.
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
    /// Consumer groups: list, describe (offsets, lag, members), reset offsets, delete.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Transactions: list, describe, a partition's producers, abort a hanging one.
    #[command(subcommand)]
    Transactions(transactions::TransactionsCommand),
    /// ACLs as kafka-acls.sh manages them: --add, --list, --remove.
    Acls(acls::AclsArgs),
    /// Client quotas as kafka-configs.sh manages them: --describe, --alter.
    Quotas(quotas::QuotasArgs),
    /// Offline tools for partition directories: dump and check segments.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Check a recorded client history (JSON lines) for lost, duplicated or reordered values.
    #[command(subcommand)]
    History(history::HistoryCommand),
}

/// The connection flags every protocol command takes.
#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// Broker to talk to.
    #[arg(
        long = "bootstrap-server",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_server: String,
    /// Kafka client properties for a secured listener: security.protocol, ssl.truststore.*,
    /// ssl.keystore.*, ssl.endpoint.identification.algorithm, sasl.mechanism, sasl.jaas.config.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

impl Connection {
    /// Connects to the bootstrap broker, secured as the command config says.
    pub fn connect(&self) -> Result<client::Client, ToolError> {
        let security = match &self.command_config {
            Some(path) => Arc::new(command_config::load(path)?),
            None => Arc::default(),
        };
        client::Client::connect(&self.bootstrap_server, &security)
    }
}

fn main() {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Topics(cmd) => admin::topics(cmd),
        Command::Configs(cmd) => admin::configs(cmd),
        Command::Cluster(cmd) => admin::cluster(cmd),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Groups(cmd) => groups::run(cmd),
        Command::Transactions(cmd) => transactions::run(cmd),
        Command::Acls(args) => acls::run(args),
        Command::Quotas(args) => {
            let sub = matches
                .subcommand_matches("quotas")
                .expect("clap matched quotas");
            quotas::run(args.with_order(sub))
        }
        Command::Log(cmd) => log::run(cmd),
        Command::History(cmd) => history::run(cmd),
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
