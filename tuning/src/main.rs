//! `millrace-tune`: host checks (`check`), safe runtime tuning (`apply`) and a data-disk probe
//! (`probe`) for Millrace. The logic lives in the `millrace_tune` library; this file parses the
//! command line and maps results to exit codes: 0 all good, 1 a check failed or a change or
//! measurement could not be made, 2 a usage error (clap's own code for bad flags).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use millrace_tune::checks::{self, Context, Status};
use millrace_tune::config::{read_properties, Target};
use millrace_tune::host::Host;
use millrace_tune::{apply, probe, Error};

/// Millrace host checks and tuning.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Read /proc and /sys under this directory instead of / (tests; also $MILLRACE_TUNE_ROOT).
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report how the host suits Millrace: each finding with status, why, and fix.
    Check {
        #[command(flatten)]
        deployment: Deployment,
        /// Print JSON for scripts instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Make the safe runtime changes (THP, swappiness, NVMe scheduler, governor).
    Apply {
        #[command(flatten)]
        deployment: Deployment,
        /// Print what would change without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Measure the data directory's device; writes DIR/.millrace-probe.json.
    Probe {
        /// The data directory to measure (must exist).
        dir: PathBuf,
        /// Bound on the scratch file; the filesystem needs twice this free.
        #[arg(long, default_value_t = probe::SIZE_BYTES_DEFAULT)]
        size_bytes: u64,
        /// Bound on the whole measurement, in seconds.
        #[arg(long, default_value_t = probe::SECONDS_DEFAULT)]
        seconds: f64,
    },
}

/// The deployment the host is measured against, as the broker would be started.
#[derive(Args)]
struct Deployment {
    /// Shards (one per core); default: millrace.cores, else every online CPU.
    #[arg(long)]
    cores: Option<usize>,
    /// io_uring registered memory per shard; default: millrace.io.memory.bytes, else 2 MiB.
    #[arg(long)]
    io_memory_bytes: Option<u64>,
    /// The broker's server.properties (millrace.cores, millrace.io.memory.bytes, log.dirs).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data directory; default: log.dirs, else ./millrace-data (or its nearest existing parent).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let host = Host::from_flag_or_env(cli.root);
    match run(&host, cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("millrace-tune: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Help and version go out as clap writes them; a usage error becomes one line and exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        eprintln!("millrace-tune: a command is required: check, apply or probe (see --help)");
        return ExitCode::from(2);
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or("bad arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("millrace-tune: {first} (see millrace-tune --help)");
    ExitCode::from(2)
}

fn run(host: &Host, command: Command) -> Result<u8, Error> {
    match command {
        Command::Check { deployment, json } => {
            let target = deployment.resolve(host)?;
            let ctx = Context::gather(host, &target)?;
            let findings = checks::run_all(&ctx);
            if json {
                print!("{}", checks::to_json(&ctx, &findings).to_pretty());
            } else {
                print!("{}", checks::to_table(&findings));
            }
            Ok(u8::from(checks::worst(&findings) == Status::Fail))
        }
        Command::Apply {
            deployment,
            dry_run,
        } => {
            let target = deployment.resolve(host)?;
            let ctx = Context::gather(host, &target)?;
            let steps = apply::plan(&ctx);
            let (report, ok) = apply::run(host, &steps, dry_run);
            print!("{report}");
            if !ok {
                eprintln!("millrace-tune: some changes could not be made (see the error lines)");
            }
            Ok(u8::from(!ok))
        }
        Command::Probe {
            dir,
            size_bytes,
            seconds,
        } => {
            let opts = probe::Options {
                dir,
                size_bytes,
                seconds,
            };
            let report = probe::run(host, &opts)?;
            print!("{}", report.summary());
            Ok(0)
        }
    }
}

impl Deployment {
    fn resolve(self, host: &Host) -> Result<Target, Error> {
        let props = self.config.as_deref().map(read_properties).transpose()?;
        Target::resolve(
            host,
            self.cores,
            self.io_memory_bytes,
            self.data_dir,
            props.as_ref(),
        )
    }
}
