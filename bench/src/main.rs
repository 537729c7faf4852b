//! `millrace-bench`: the load generator. Its commands arrive with the load-generator issue; today it only
//! identifies itself so the workspace layout is complete.
#![forbid(unsafe_code)]
use clap::Parser;

/// Millrace load generator.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("millrace-bench: no commands yet (see the load-generator issue)");
    std::process::exit(2);
}
