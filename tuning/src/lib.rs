//! `millrace-tune`: checks and tunes a host for Millrace, and measures its data disk.
//!
//! Millrace runs one pinned shard per core, each with its own io_uring ring whose registered
//! buffers count against RLIMIT_MEMLOCK, writing direct-I/O segment files with one fdatasync per
//! group commit. Whether that performs as designed depends on the host: the kernel must allow
//! io_uring, the memlock limit must cover every shard, the data directory should sit on a local
//! filesystem on a device with a sensible queue, and interrupts should not all land on one core.
//!
//! * [`checks`] reads `/proc` and `/sys` and reports each finding with the why and the fix.
//! * [`apply`] makes the runtime changes that are safe to make (never reboot-level ones).
//! * [`probe`] measures what the data directory's device sustains and records it in a
//!   versioned JSON file the broker can use to size its group-commit window.
//!
//! Invariants: checks never write; `apply --dry-run` never writes; the probe touches only its
//! own scratch file and result file in the target directory and removes the scratch file on
//! every exit path it controls. Every kernel path goes through [`host::Host`], so tests run
//! against a fake tree. Nothing here runs on a shard: this is an operator's tool, single
//! process, and it shares no types with the broker.
#![forbid(unsafe_code)]

pub mod apply;
pub mod checks;
pub mod config;
pub mod host;
pub mod json;
pub mod probe;
pub mod storage;

use std::path::PathBuf;

/// Everything that stops a command, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument or configuration value.
    #[error("{message}")]
    Usage { message: String },
    /// A path that had to be a directory is something else.
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
    /// Not enough free space for the probe's bound.
    #[error(
        "{path}: only {free_bytes} bytes free, the probe needs {needed_bytes} (2 x --size-bytes); \
         use a smaller --size-bytes or free some space"
    )]
    NoSpace {
        path: PathBuf,
        free_bytes: u64,
        needed_bytes: u64,
    },
    /// An I/O failure, naming what was being done.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// 2 for usage errors (bad flags, values or paths), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage { .. } | Error::NotADirectory { .. } => 2,
            Error::NoSpace { .. } | Error::Io { .. } => 1,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
