//! Where the checks look: the real `/proc` and `/sys`, or a fake tree under a root prefix.
//!
//! Every kernel file this crate reads or writes goes through [`Host`], so tests build a
//! small tree of real-looking files in a temporary directory and point a `Host` at it. The
//! data directory and the probe's target are never prefixed: they are the operator's paths.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Environment variable that prefixes every `/proc` and `/sys` path (tests, dry runs on a copy).
pub const ROOT_ENV: &str = "MILLRACE_TUNE_ROOT";

/// A view of the kernel's files, rooted at `/` or at a fake tree.
#[derive(Clone, Debug)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    /// The running kernel's files.
    pub fn real() -> Host {
        Host::under("/")
    }

    /// Kernel files under `root` (a fake tree: `root/proc/...`, `root/sys/...`).
    pub fn under(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    /// `flag` if given, else `$MILLRACE_TUNE_ROOT` if set and non-empty, else `/`.
    pub fn from_flag_or_env(flag: Option<PathBuf>) -> Host {
        if let Some(root) = flag {
            return Host::under(root);
        }
        match std::env::var_os(ROOT_ENV) {
            Some(root) if !root.is_empty() => Host::under(root),
            _ => Host::real(),
        }
    }

    /// True when this host reads a fake tree rather than `/`.
    pub fn is_fake(&self) -> bool {
        self.root != Path::new("/")
    }

    /// The on-disk path of an absolute kernel path such as `/proc/sys/vm/swappiness`.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.root.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    /// A file's contents without the trailing newline, or `None` if it cannot be read.
    pub fn read(&self, abs: impl AsRef<Path>) -> Option<String> {
        let text = fs::read_to_string(self.path(abs)).ok()?;
        Some(text.trim_end_matches('\n').to_string())
    }

    /// Whether the kernel path exists.
    pub fn exists(&self, abs: impl AsRef<Path>) -> bool {
        self.path(abs).exists()
    }

    /// Entry names of a directory, sorted; empty if it cannot be read.
    pub fn list(&self, abs: impl AsRef<Path>) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.path(abs)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The target of a symbolic link, as written in the link.
    pub fn read_link(&self, abs: impl AsRef<Path>) -> Option<PathBuf> {
        fs::read_link(self.path(abs)).ok()
    }

    /// Resolves links and returns the absolute kernel path (without the fake root).
    pub fn canonical(&self, abs: impl AsRef<Path>) -> Option<PathBuf> {
        let real = fs::canonicalize(self.path(abs)).ok()?;
        let root = fs::canonicalize(&self.root).ok()?;
        let rel = real.strip_prefix(&root).ok()?;
        Some(Path::new("/").join(rel))
    }

    /// Writes `value` to a kernel file that already exists (never creates one), as
    /// `echo value > file` does: the kernel ignores the truncation, a fake tree needs it.
    pub fn write(&self, abs: impl AsRef<Path>, value: &str) -> io::Result<()> {
        use std::io::Write as _;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path(abs))?;
        file.write_all(value.as_bytes())
    }
}

/// Parses a kernel CPU list such as `0-3,8,10-11` into CPU numbers; `None` if malformed.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// Formats CPU numbers back into the kernel's list form.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(if start == sorted[i] {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    parts.join(",")
}

/// `[madvise]`-style selection: the bracketed word of a sysfs choice file, or the whole
/// value when the file holds a single word (as a fake tree or a just-written file may).
pub fn selected_choice(text: &str) -> Option<String> {
    if let Some(open) = text.find('[') {
        let close = open + text[open..].find(']')?;
        return Some(text[open + 1..close].to_string());
    }
    let word = text.trim();
    (!word.is_empty() && !word.contains(' ')).then(|| word.to_string())
}

/// Human-readable byte count: `2 MiB`, `512 KiB`, `70.3 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 || unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_round_trip() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
    }

    #[test]
    fn choices_and_sizes() {
        assert_eq!(
            selected_choice("always [madvise] never").as_deref(),
            Some("madvise")
        );
        assert_eq!(selected_choice("none").as_deref(), Some("none"));
        assert_eq!(selected_choice("a b"), None);
        assert_eq!(human_bytes(2 << 20), "2 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10), "10 B");
    }

    #[test]
    fn paths_are_prefixed() {
        let host = Host::under("/tmp/fake");
        assert_eq!(
            host.path("/proc/sys/vm/swappiness"),
            Path::new("/tmp/fake/proc/sys/vm/swappiness")
        );
        assert!(host.is_fake());
        assert!(!Host::real().is_fake());
    }
}
