//! `millrace`: a Kafka-wire-compatible, thread-per-core message broker.
//!
//! One io_uring executor per core owns a set of partitions and their direct-I/O segment files;
//! every executor accepts connections on the shared port and forwards work for partitions it
//! does not own over a bounded cross-shard mesh. See docs/ARCHITECTURE.md.
//!
//! Types live on the shard that created them (`Rc`, `RefCell`); only mesh messages and the
//! immutable metadata image (`Arc`) cross threads.
#![forbid(unsafe_code)]

mod acls;
mod auth;
mod config;
mod connection;
mod connection_limit;
mod consumer_group;
mod controller;
mod coordinator;
mod dial;
mod disk;
mod errors;
mod follower;
mod group;
mod group_config;
mod handlers;
mod http;
mod isr;
mod maintenance;
mod mesh;
mod metadata;
mod metrics;
mod partition;
mod peer;
mod quorum;
mod quotas;
mod raft_transport;
mod registry;
mod rest;
mod server;
mod shard;
mod share;
mod share_group;
mod share_manager;
mod share_state;
#[cfg(test)]
mod sim_tests;
mod state_log;
mod stats;
mod stop;
mod topic_config;
mod txn;

use clap::Parser;
use config::{parse_properties, Config};
use std::path::PathBuf;

/// Command line; every flag overrides the matching server.properties key.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Millrace: a Kafka-wire-compatible, thread-per-core message broker"
)]
struct Cli {
    /// Address to listen on (`listeners`), e.g. 127.0.0.1:9092.
    #[arg(long)]
    listen: Option<String>,
    /// Host:port given to clients (`advertised.listeners`); defaults to the listen address.
    #[arg(long)]
    advertise: Option<String>,
    /// Data directory (`log.dirs`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of shards, one per core (`millrace.cores`); default: every online CPU.
    #[arg(long)]
    cores: Option<usize>,
    /// This broker's id (`node.id`).
    #[arg(long)]
    node_id: Option<i32>,
    /// A server.properties file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Sets a server.properties key, over the file and the other flags (repeatable), as
    /// Kafka's `--override`: `--override millrace.metrics.listen=` turns the metrics off.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Print the protocol-support table (Markdown) generated from the handler registry and exit.
    #[arg(long, hide = true)]
    print_protocol_table: bool,
}

fn main() {
    let cli = Cli::parse();
    if cli.print_protocol_table {
        print!("{}", handlers::protocol_table());
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MILLRACE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match build_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("millrace: configuration error: {e}");
            std::process::exit(2);
        }
    };
    // As long as the controller would take to fence a broker that stopped heartbeating.
    let shutdown_wait =
        std::time::Duration::from_millis(config.cluster.timings.session_timeout_ms as u64);
    install_signal_handler(shutdown_wait);
    if let Err(e) = server::run(config) {
        eprintln!("millrace: {e}");
        std::process::exit(1);
    }
    tracing::info!("millrace stopped cleanly");
}

fn build_config(cli: &Cli) -> Result<Config, String> {
    let mut config = Config::default();
    if let Some(path) = &cli.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let pairs =
            parse_properties(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
        config
            .apply(&pairs)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut overrides = Vec::new();
    let mut push = |k: &str, v: String| overrides.push((k.to_string(), v, 0));
    if let Some(v) = &cli.listen {
        // --listen replaces the client listener; the controller listeners the file names
        // stay (a node's controller listener is its address in the voters).
        let keys = &config.cluster_keys;
        let mut listeners = vec![v.clone()];
        listeners.extend(
            keys.listeners
                .iter()
                .filter(|l| keys.controller_listener_names.contains(&l.name))
                .map(|l| format!("{}://{}:{}", l.name, l.host, l.port)),
        );
        push("listeners", listeners.join(","));
    }
    if let Some(v) = &cli.advertise {
        push("advertised.listeners", v.clone());
    }
    if let Some(v) = &cli.data_dir {
        push("log.dirs", v.display().to_string());
    }
    if let Some(v) = cli.cores {
        push("millrace.cores", v.to_string());
    }
    if let Some(v) = cli.node_id {
        push("node.id", v.to_string());
    }
    for pair in &cli.overrides {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--override {pair}: expected KEY=VALUE"))?;
        push(k.trim(), v.trim().to_string());
    }
    config.apply(&overrides).map_err(|e| e.to_string())?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// SIGINT/SIGTERM stop the broker: a broker of a cluster first asks the controller to move
/// its leaderships away (controlled shutdown, waiting at most `shutdown_wait`), then shards
/// stop accepting, flush and close their logs. A second signal exits at once (acknowledged
/// data is already on disk).
fn install_signal_handler(shutdown_wait: std::time::Duration) {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = match signal_hook::iterator::Signals::new([
                signal_hook::consts::SIGINT,
                signal_hook::consts::SIGTERM,
            ]) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot install signal handlers");
                    return;
                }
            };
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                tracing::info!(signal, "stopping");
                if seen > 1 {
                    std::process::exit(130);
                }
                // The next signal still arrives while this waits: a second one exits.
                let wait = shutdown_wait;
                std::thread::spawn(move || stop::stop_after_controlled_shutdown(wait));
            }
        })
        .expect("spawning the signal thread");
}
