//! What the broker will be asked to run: shard count and io_uring memory per shard, from flags
//! or from the broker's `server.properties`, with the broker's defaults.

use std::path::{Path, PathBuf};

use crate::host::{parse_cpu_list, Host};
use crate::Error;

/// `millrace.io.memory.bytes` default: 2 MiB of registered buffers per shard.
pub const IO_MEMORY_BYTES_DEFAULT: u64 = 2 << 20;
/// The broker's bounds on `millrace.io.memory.bytes` (64 KiB .. 16 GiB).
pub const IO_MEMORY_BYTES_MIN: u64 = 64 << 10;
pub const IO_MEMORY_BYTES_MAX: u64 = 1 << 34;
/// The broker's default data directory, relative to where it starts.
pub const DATA_DIR_DEFAULT: &str = "./millrace-data";

/// The deployment the checks measure the host against.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Shards, one per core.
    pub cores: usize,
    /// Registered io_uring memory per shard.
    pub io_memory_bytes: u64,
    /// The data directory as given (it may not exist yet).
    pub data_dir: PathBuf,
    /// `millrace.pin.cores`: shards are pinned to CPUs (default true).
    pub pin_cores: bool,
}

/// Values read from a server.properties file; `None` when the key is absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties {
    pub cores: Option<usize>,
    pub io_memory_bytes: Option<u64>,
    pub data_dir: Option<PathBuf>,
    pub pin_cores: Option<bool>,
}

impl Target {
    /// Flags override the file; the file overrides defaults (cores = online CPUs).
    pub fn resolve(
        host: &Host,
        cores: Option<usize>,
        io_memory_bytes: Option<u64>,
        data_dir: Option<PathBuf>,
        properties: Option<&Properties>,
    ) -> Result<Target, Error> {
        let file = properties.cloned().unwrap_or_default();
        let cores = match cores.or(file.cores) {
            Some(n) => n,
            None => online_cpus(host).map(|c| c.len()).unwrap_or(1).max(1),
        };
        if cores == 0 {
            return Err(Error::usage("--cores must be at least 1"));
        }
        let io_memory_bytes = io_memory_bytes
            .or(file.io_memory_bytes)
            .unwrap_or(IO_MEMORY_BYTES_DEFAULT);
        check_io_memory(io_memory_bytes)?;
        let data_dir = data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
        Ok(Target {
            cores,
            io_memory_bytes,
            data_dir,
            pin_cores: file.pin_cores.unwrap_or(true),
        })
    }

    /// Memory every shard's ring registers together.
    pub fn memlock_needed_bytes(&self) -> u64 {
        self.cores as u64 * self.io_memory_bytes
    }
}

/// Reads the keys this tool cares about from a server.properties file.
pub fn read_properties(path: &Path) -> Result<Properties, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("--config {}: {e}", path.display())))?;
    parse_properties(&text).map_err(|m| Error::usage(format!("{}: {m}", path.display())))
}

/// Parses Java-properties text (`key=value` or `key: value`, `#`/`!` comments); unknown keys
/// are the broker's business and are skipped here.
pub fn parse_properties(text: &str) -> Result<Properties, String> {
    let mut props = Properties::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        // As the broker splits: at the first '=', else at the first ':'.
        let (key, value) = line
            .split_once('=')
            .or_else(|| line.split_once(':'))
            .ok_or_else(|| format!("line {}: expected key=value, found {line:?}", n + 1))?;
        let (key, value) = (key.trim(), value.trim());
        let bad = |what: &str| format!("line {}: {key}={value:?} is not {what}", n + 1);
        match key {
            "millrace.cores" => {
                let cores: usize = value.parse().map_err(|_| bad("a core count"))?;
                if cores == 0 {
                    return Err(bad("a core count of at least 1"));
                }
                props.cores = Some(cores);
            }
            "millrace.io.memory.bytes" => {
                let bytes: u64 = value.parse().map_err(|_| bad("a byte count"))?;
                check_io_memory(bytes).map_err(|e| format!("line {}: {e}", n + 1))?;
                props.io_memory_bytes = Some(bytes);
            }
            "millrace.pin.cores" => {
                props.pin_cores = Some(match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("true or false")),
                });
            }
            "log.dirs" | "log.dir" => {
                let first = value.split(',').next().unwrap_or("").trim();
                if !first.is_empty() {
                    props.data_dir = Some(PathBuf::from(first));
                }
            }
            _ => {}
        }
    }
    Ok(props)
}

/// Online CPUs from `/sys/devices/system/cpu/online`.
pub fn online_cpus(host: &Host) -> Option<Vec<usize>> {
    parse_cpu_list(&host.read("/sys/devices/system/cpu/online")?)
}

fn check_io_memory(bytes: u64) -> Result<(), Error> {
    if !(IO_MEMORY_BYTES_MIN..=IO_MEMORY_BYTES_MAX).contains(&bytes) {
        return Err(Error::usage(format!(
            "millrace.io.memory.bytes {bytes} is outside {IO_MEMORY_BYTES_MIN}..={IO_MEMORY_BYTES_MAX}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_give_cores_memory_and_dir() {
        let text = "# broker\nmillrace.cores=4\nmillrace.io.memory.bytes : 4194304\n\
                    log.dirs=/var/lib/millrace,/other\nbroker.id=1\nmillrace.pin.cores=false\n";
        let props = parse_properties(text).unwrap();
        assert_eq!(props.cores, Some(4));
        assert_eq!(props.io_memory_bytes, Some(4 << 20));
        assert_eq!(props.data_dir, Some(PathBuf::from("/var/lib/millrace")));
        assert_eq!(props.pin_cores, Some(false));
        assert!(parse_properties("millrace.pin.cores=yes").is_err());
    }

    #[test]
    fn bad_properties_name_the_line() {
        assert!(parse_properties("millrace.cores=zero")
            .unwrap_err()
            .starts_with("line 1:"));
        assert!(parse_properties("\nmillrace.cores=0")
            .unwrap_err()
            .starts_with("line 2:"));
        assert!(parse_properties("millrace.io.memory.bytes=1").is_err());
        assert!(parse_properties("justaword").is_err());
    }

    #[test]
    fn flags_override_file_and_defaults_follow_the_broker() {
        let dir = std::env::temp_dir().join(format!("millrace-tune-cfg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sys/devices/system/cpu")).unwrap();
        std::fs::write(dir.join("sys/devices/system/cpu/online"), "0-5\n").unwrap();
        let host = Host::under(&dir);
        let t = Target::resolve(&host, None, None, None, None).unwrap();
        assert_eq!((t.cores, t.io_memory_bytes), (6, IO_MEMORY_BYTES_DEFAULT));
        assert_eq!(t.data_dir, PathBuf::from(DATA_DIR_DEFAULT));
        assert_eq!(t.memlock_needed_bytes(), 12 << 20);
        let file = Properties {
            cores: Some(2),
            io_memory_bytes: Some(1 << 20),
            data_dir: None,
            pin_cores: None,
        };
        let t = Target::resolve(&host, Some(3), None, None, Some(&file)).unwrap();
        assert_eq!((t.cores, t.io_memory_bytes), (3, 1 << 20));
        assert!(Target::resolve(&host, Some(0), None, None, None).is_err());
        assert!(Target::resolve(&host, None, Some(5), None, None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
