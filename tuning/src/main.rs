//! `millrace-tune`: host checks and tuning. Its commands arrive with the host-tuning issue; today it only
//! identifies itself so the workspace layout is complete.
#![forbid(unsafe_code)]
use clap::Parser;

/// Millrace host checks and tuning.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("millrace-tune: no commands yet (see the host-tuning issue)");
    std::process::exit(2);
}
