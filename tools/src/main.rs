//! `millrace-tools`: the admin CLI. Its commands arrive with the admin-CLI issue; today it only
//! identifies itself so the workspace layout is complete.
#![forbid(unsafe_code)]
use clap::Parser;

/// Millrace admin CLI (topics, groups, configs, produce/consume, offline log tools).
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("millrace-tools: no commands yet (see the admin CLI issue)");
    std::process::exit(2);
}
