//! `millrace-tune probe DIR`: what the data directory's device sustains, measured the way the
//! broker writes: direct I/O from 4 KiB-aligned buffers, and one write plus one fdatasync per
//! group commit.
//!
//! Queue depth N is N threads, each with one I/O in flight (the probe uses no io_uring, so it
//! needs no unsafe code); they take block numbers from one counter, so a pass is sequential.
//! Time and space are bounded: the scratch file never exceeds `--size-bytes`, the phases share
//! `--seconds`, and the probe refuses to start unless the filesystem has twice the size bound
//! free. It touches only `DIR/.millrace-probe.scratch` (removed on every exit path it
//! controls; a run killed by a signal leaves it for the next run to replace) and
//! `DIR/.millrace-probe.json` (replaced atomically).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::host::{human_bytes, Host};
use crate::json::Json;
use crate::{storage, Error};

/// The result file, read by the broker to size its group-commit window.
pub const RESULT_FILE: &str = ".millrace-probe.json";
/// The only file the probe writes data to.
pub const SCRATCH_FILE: &str = ".millrace-probe.scratch";
/// `format` field of the result file.
pub const FORMAT: &str = "millrace-probe";
/// `version` of the result file; bump when a field changes meaning or goes away.
pub const VERSION: u64 = 1;
pub const SIZE_BYTES_DEFAULT: u64 = 256 << 20;
/// The largest block written must fit at least once.
pub const SIZE_BYTES_MIN: u64 = 1 << 20;
pub const SECONDS_DEFAULT: f64 = 10.0;
pub const SECONDS_MAX: f64 = 3600.0;
/// Sequential write block sizes.
pub const BLOCK_SIZES: [usize; 3] = [64 << 10, 256 << 10, 1 << 20];
/// Block size of the first, appending pass.
pub const FILL_BLOCK_BYTES: usize = 1 << 20;
/// Queue depths (threads) for sequential writes and random reads.
pub const QUEUE_DEPTHS: [usize; 2] = [1, 4];
/// Direct-I/O alignment of buffers, offsets and lengths; also the small write and read size.
pub const ALIGN: usize = 4096;
/// fdatasync samples at most (also bounded by time and by `--size-bytes`).
pub const FSYNC_SAMPLES_MAX: u64 = 10_000;
/// Free space required, as a multiple of `--size-bytes`.
pub const FREE_SPACE_FACTOR: u64 = 2;

/// What to probe and within which bounds.
#[derive(Clone, Debug)]
pub struct Options {
    pub dir: PathBuf,
    pub size_bytes: u64,
    pub seconds: f64,
}

/// One sequential write pass.
#[derive(Clone, Debug)]
pub struct WritePass {
    pub block_bytes: usize,
    pub queue_depth: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// One random read pass.
#[derive(Clone, Debug)]
pub struct ReadPass {
    pub queue_depth: usize,
    pub ios: u64,
    pub seconds: f64,
}

/// Latencies of small write + fdatasync pairs, in microseconds.
#[derive(Clone, Debug)]
pub struct SyncLatency {
    pub samples: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Everything one probe measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub dir: PathBuf,
    pub filesystem: Option<String>,
    pub device: Option<String>,
    pub options: Options,
    /// The first pass: appending to the empty scratch file, 1 MiB blocks, depth 1.
    pub append: WritePass,
    /// Overwrites of the appended region at each block size and depth.
    pub writes: Vec<WritePass>,
    pub sync: SyncLatency,
    pub reads: Vec<ReadPass>,
    pub elapsed_seconds: f64,
}

/// Checks the arguments and the free space; nothing is written.
pub fn validate(opts: &Options) -> Result<PathBuf, Error> {
    if !opts.dir.exists() {
        return Err(Error::usage(format!(
            "{}: does not exist",
            opts.dir.display()
        )));
    }
    if !opts.dir.is_dir() {
        return Err(Error::NotADirectory {
            path: opts.dir.clone(),
        });
    }
    if opts.size_bytes < SIZE_BYTES_MIN {
        return Err(Error::usage(format!(
            "--size-bytes {} is below the minimum {SIZE_BYTES_MIN} (the largest block is 1 MiB)",
            opts.size_bytes
        )));
    }
    if !(opts.seconds > 0.0 && opts.seconds <= SECONDS_MAX) {
        return Err(Error::usage(format!(
            "--seconds {} must be above 0 and at most {SECONDS_MAX}",
            opts.seconds
        )));
    }
    let dir = opts
        .dir
        .canonicalize()
        .map_err(|e| Error::io(opts.dir.display().to_string(), e))?;
    let st = nix::sys::statvfs::statvfs(&dir).map_err(|e| {
        Error::io(
            format!("statvfs {}", dir.display()),
            std::io::Error::from(e),
        )
    })?;
    let free_bytes = st.blocks_available() as u64 * st.fragment_size() as u64;
    let needed_bytes = opts.size_bytes.saturating_mul(FREE_SPACE_FACTOR);
    if free_bytes < needed_bytes {
        return Err(Error::NoSpace {
            path: dir,
            free_bytes,
            needed_bytes,
        });
    }
    Ok(dir)
}

/// Validates, measures, writes `DIR/.millrace-probe.json` and returns the report.
pub fn run(host: &Host, opts: &Options) -> Result<Report, Error> {
    let dir = validate(opts)?;
    let (mount, device) = storage::locate(host, &dir);
    let size_bytes = opts.size_bytes / ALIGN as u64 * ALIGN as u64;
    let started = Instant::now();
    let budget = Duration::from_secs_f64(opts.seconds);
    let scratch = Scratch::create(&dir)?;
    let file = &scratch.file;
    // Fill first (appending, as segments grow), then overwrite that region at each block size
    // and depth until each pass's time is up: overwrites measure the device rather than one
    // file's extent allocation, which serialises concurrent appends to a single file.
    let fill_blocks = size_bytes / FILL_BLOCK_BYTES as u64;
    let append = write_pass(
        file,
        FILL_BLOCK_BYTES,
        1,
        fill_blocks,
        budget.mul_f64(0.15),
        true,
    )
    .map_err(|e| scratch.error("sequential append", e))?;
    let filled = append.bytes;
    let pass_time = budget.mul_f64(0.45 / (BLOCK_SIZES.len() * QUEUE_DEPTHS.len()) as f64);
    let mut writes = Vec::new();
    for &block_bytes in &BLOCK_SIZES {
        for &queue_depth in &QUEUE_DEPTHS {
            let blocks = filled / block_bytes as u64;
            let pass = write_pass(file, block_bytes, queue_depth, blocks, pass_time, false)
                .map_err(|e| scratch.error("sequential write", e))?;
            writes.push(pass);
        }
    }
    let read_time = budget.mul_f64(0.2 / QUEUE_DEPTHS.len() as f64);
    let mut reads = Vec::new();
    for &queue_depth in &QUEUE_DEPTHS {
        let pass = read_pass(file, filled / ALIGN as u64, queue_depth, read_time)
            .map_err(|e| scratch.error("random read", e))?;
        reads.push(pass);
    }
    let sync_samples = FSYNC_SAMPLES_MAX.min(size_bytes / ALIGN as u64);
    let sync = sync_latency(file, sync_samples, budget.mul_f64(0.2))
        .map_err(|e| scratch.error("write + fdatasync", e))?;
    drop(scratch);
    let report = Report {
        dir: dir.clone(),
        filesystem: mount.map(|m| m.fs_type),
        device: device.map(|d| d.name),
        options: Options {
            dir,
            size_bytes,
            seconds: opts.seconds,
        },
        append,
        writes,
        sync,
        reads,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    write_result(&report)?;
    Ok(report)
}

impl Report {
    /// The result file's document (fields described in docs/OPERATIONS.md).
    pub fn to_json(&self) -> Json {
        let created_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let opt = |v: &Option<String>| v.as_ref().map_or(Json::Null, Json::str);
        let pass = |w: &WritePass| {
            Json::obj([
                ("block_bytes", Json::from(w.block_bytes as u64)),
                ("queue_depth", Json::from(w.queue_depth as u64)),
                ("bytes", Json::from(w.bytes)),
                ("seconds", Json::from(round6(w.seconds))),
                (
                    "bytes_per_second",
                    Json::from(per_second(w.bytes, w.seconds)),
                ),
            ])
        };
        let reads = self.reads.iter().map(|r| {
            Json::obj([
                ("block_bytes", Json::from(ALIGN as u64)),
                ("queue_depth", Json::from(r.queue_depth as u64)),
                ("ios", Json::from(r.ios)),
                ("seconds", Json::from(round6(r.seconds))),
                ("iops", Json::from(per_second(r.ios, r.seconds))),
            ])
        });
        Json::obj([
            ("format", Json::str(FORMAT)),
            ("version", Json::from(VERSION)),
            ("created_unix_ms", Json::from(created_unix_ms)),
            ("dir", Json::str(self.dir.display().to_string())),
            ("filesystem", opt(&self.filesystem)),
            ("device", opt(&self.device)),
            ("method", Json::str(self.method())),
            ("size_bytes_max", Json::from(self.options.size_bytes)),
            ("seconds_max", Json::from(self.options.seconds)),
            ("elapsed_seconds", Json::from(round6(self.elapsed_seconds))),
            ("sequential_append", pass(&self.append)),
            (
                "sequential_write",
                Json::Arr(self.writes.iter().map(pass).collect()),
            ),
            (
                "fdatasync",
                Json::obj([
                    ("write_bytes", Json::from(ALIGN as u64)),
                    ("samples", Json::from(self.sync.samples)),
                    ("p50_us", Json::from(self.sync.p50_us)),
                    ("p90_us", Json::from(self.sync.p90_us)),
                    ("p99_us", Json::from(self.sync.p99_us)),
                    ("max_us", Json::from(self.sync.max_us)),
                ]),
            ),
            ("random_read", Json::Arr(reads.collect())),
        ])
    }

    /// A few lines for the operator.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "probe of {} ({} on {}), within {} and {} s; took {:.1} s\n{}\n",
            self.dir.display(),
            self.filesystem.as_deref().unwrap_or("unknown filesystem"),
            self.device.as_deref().unwrap_or("unknown device"),
            human_bytes(self.options.size_bytes),
            self.options.seconds,
            self.elapsed_seconds,
            self.method()
        );
        out.push_str("sequential write   block  depth      MB/s\n");
        for w in std::iter::once(&self.append).chain(&self.writes) {
            let mbps = per_second(w.bytes, w.seconds) as f64 / 1e6;
            let block = human_bytes(w.block_bytes as u64);
            let kind = if std::ptr::eq(w, &self.append) {
                "  (append)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "                 {block:>7}  {:>5}  {mbps:>8.1}{kind}",
                w.queue_depth
            );
        }
        let s = &self.sync;
        let _ = writeln!(
            out,
            "4 KiB write + fdatasync, {} samples: p50 {} us, p90 {} us, p99 {} us, max {} us",
            s.samples, s.p50_us, s.p90_us, s.p99_us, s.max_us
        );
        let reads: Vec<String> = self
            .reads
            .iter()
            .map(|r| {
                format!(
                    "depth {}: {} IOPS",
                    r.queue_depth,
                    per_second(r.ios, r.seconds)
                )
            })
            .collect();
        let _ = writeln!(out, "random 4 KiB direct read: {}", reads.join(", "));
        let _ = writeln!(out, "wrote {}", self.dir.join(RESULT_FILE).display());
        let _ = writeln!(
            out,
            "wrote {} (read by millrace at start)",
            self.dir.join(PROFILE_FILE).display()
        );
        out
    }

    fn method(&self) -> String {
        format!(
            "O_DIRECT pwrite/pread from {ALIGN}-byte aligned buffers; queue depth N = N threads \
             with one I/O each; the first pass appends, the others overwrite what it wrote; \
             each write pass ends with fdatasync and includes it"
        )
    }
}

/// The scratch file; dropping it removes it, so every early return cleans up.
struct Scratch {
    path: PathBuf,
    file: File,
}

impl Scratch {
    fn create(dir: &Path) -> Result<Scratch, Error> {
        let path = dir.join(SCRATCH_FILE);
        // A scratch file left by a killed run is ours; remove_file removes a link, not its target.
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("remove stale {}", path.display()), e));
            }
            _ => {}
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .map_err(|e| {
                let what = if e.raw_os_error() == Some(libc::EINVAL) {
                    format!("{}: the filesystem refuses O_DIRECT", path.display())
                } else {
                    format!("create {}", path.display())
                };
                Error::io(what, e)
            })?;
        Ok(Scratch { path, file })
    }

    fn error(&self, phase: &str, e: std::io::Error) -> Error {
        Error::io(format!("{phase} on {}", self.path.display()), e)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A buffer whose slice starts on an [`ALIGN`] boundary, filled with incompressible bytes.
struct AlignedBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize, seed: u64) -> AlignedBuf {
        assert!(
            len > 0 && len.is_multiple_of(ALIGN),
            "direct I/O length must be aligned"
        );
        let mut storage = vec![0u8; len + ALIGN];
        let offset = (ALIGN - storage.as_ptr() as usize % ALIGN) % ALIGN;
        let mut rng = Rng::new(seed);
        for chunk in storage[offset..offset + len].chunks_mut(8) {
            let bytes = rng.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let buf = AlignedBuf {
            storage,
            offset,
            len,
        };
        assert_eq!(buf.bytes().as_ptr() as usize % ALIGN, 0);
        buf
    }

    fn bytes(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

/// xorshift64*: fills buffers and picks read offsets; not for anything secret.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
}

/// Writes blocks in order from `depth` threads, then fdatasyncs. With `append` the file is
/// emptied first and the pass ends after blocks `0..blocks` or when the time runs out;
/// otherwise it overwrites blocks `0..blocks` again and again until the time runs out. The
/// first `depth` blocks are always written, so a pass never reports zero, and an appending
/// pass leaves a written prefix of the file.
fn write_pass(
    file: &File,
    block_bytes: usize,
    depth: usize,
    blocks: u64,
    limit: Duration,
    append: bool,
) -> std::io::Result<WritePass> {
    assert!(blocks > 0, "a pass writes at least one block");
    if append {
        file.set_len(0)?;
        file.sync_all()?;
    }
    let next = AtomicU64::new(0);
    let started = Instant::now();
    let results: Vec<std::io::Result<u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..depth)
            .map(|t| {
                let next = &next;
                s.spawn(move || {
                    let buf = AlignedBuf::new(block_bytes, seed() ^ t as u64);
                    let mut bytes = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let late = i >= depth as u64 && started.elapsed() >= limit;
                        if (append && i >= blocks) || late {
                            return Ok(bytes);
                        }
                        file.write_all_at(buf.bytes(), (i % blocks) * block_bytes as u64)?;
                        bytes += block_bytes as u64;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("probe writer panicked"))
            .collect()
    });
    let mut bytes = 0;
    for r in results {
        bytes += r?;
    }
    file.sync_data()?;
    Ok(WritePass {
        block_bytes,
        queue_depth: depth,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Random aligned 4 KiB reads over the first `blocks` blocks (all written) from `depth` threads.
fn read_pass(file: &File, blocks: u64, depth: usize, limit: Duration) -> std::io::Result<ReadPass> {
    assert!(blocks > 0, "the write passes leave at least one block");
    let started = Instant::now();
    let results: Vec<std::io::Result<u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..depth)
            .map(|t| {
                s.spawn(move || {
                    let mut buf = AlignedBuf::new(ALIGN, 1);
                    let mut rng = Rng::new(seed() ^ ((t as u64 + 1) << 32));
                    let mut ios = 0;
                    while ios == 0 || started.elapsed() < limit {
                        let block = rng.next() % blocks;
                        file.read_exact_at(buf.bytes_mut(), block * ALIGN as u64)?;
                        ios += 1;
                    }
                    Ok(ios)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("probe reader panicked"))
            .collect()
    });
    let mut ios = 0;
    for r in results {
        ios += r?;
    }
    Ok(ReadPass {
        queue_depth: depth,
        ios,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Appends 4 KiB and fdatasyncs, as a group commit does, timing each pair.
fn sync_latency(file: &File, samples_max: u64, limit: Duration) -> std::io::Result<SyncLatency> {
    file.set_len(0)?;
    file.sync_all()?;
    let buf = AlignedBuf::new(ALIGN, seed());
    let started = Instant::now();
    let mut us = Vec::new();
    let mut i = 0;
    while i < samples_max.max(1) && (i == 0 || started.elapsed() < limit) {
        let t0 = Instant::now();
        file.write_all_at(buf.bytes(), i * ALIGN as u64)?;
        file.sync_data()?;
        us.push(t0.elapsed().as_micros() as u64);
        i += 1;
    }
    Ok(latency_summary(&mut us))
}

/// Nearest-rank percentiles of `us` (not empty).
fn latency_summary(us: &mut [u64]) -> SyncLatency {
    assert!(!us.is_empty());
    us.sort_unstable();
    let rank = |q: f64| us[((q * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1];
    SyncLatency {
        samples: us.len() as u64,
        p50_us: rank(0.50),
        p90_us: rank(0.90),
        p99_us: rank(0.99),
        max_us: us[us.len() - 1],
    }
}

fn write_result(report: &Report) -> Result<(), Error> {
    let json = report.to_json();
    write_atomically(&report.dir, RESULT_FILE, &json.to_pretty())?;
    let profile =
        profile_of(&json).map_err(|e| Error::io(e, std::io::Error::other("incomplete probe")))?;
    write_atomically(&report.dir, PROFILE_FILE, &profile.to_properties())
}

/// The file the broker reads at start (server.properties syntax, which its config parser
/// already reads; the broker does not parse JSON).
pub const PROFILE_FILE: &str = ".millrace-probe.properties";

impl DeviceProfile {
    /// The profile in server.properties syntax, as written to [`PROFILE_FILE`].
    pub fn to_properties(&self) -> String {
        format!(
            "# written by millrace-tune probe; read by millrace at start to size its write-behind\n\
             probe.version={VERSION}\n\
             probe.write.bytes.per.second={:.0}\n\
             probe.fdatasync.p99.us={:.0}\n",
            self.write_bytes_per_second, self.fdatasync_p99_us
        )
    }
}

fn write_atomically(dir: &Path, name: &str, text: &str) -> Result<(), Error> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("write {}", path.display()), e)
    })
}

fn per_second(count: u64, seconds: f64) -> u64 {
    if seconds > 0.0 {
        (count as f64 / seconds) as u64
    } else {
        0
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("millrace-probe-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn opts(dir: &Path, size_bytes: u64, seconds: f64) -> Options {
        Options {
            dir: dir.to_path_buf(),
            size_bytes,
            seconds,
        }
    }

    #[test]
    fn refuses_bad_arguments_and_writes_nothing() {
        let dir = temp_dir("args");
        let file = dir.join("plain");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(
            validate(&opts(&file, 8 << 20, 1.0)),
            Err(Error::NotADirectory { .. })
        ));
        let missing = dir.join("missing");
        assert_eq!(
            validate(&opts(&missing, 8 << 20, 1.0))
                .unwrap_err()
                .exit_code(),
            2
        );
        assert!(validate(&opts(&dir, 4096, 1.0)).is_err());
        assert!(validate(&opts(&dir, 8 << 20, 0.0)).is_err());
        assert!(validate(&opts(&dir, 8 << 20, f64::NAN)).is_err());
        let err = validate(&opts(&dir, u64::MAX / 4, 1.0)).unwrap_err();
        assert!(matches!(err, Error::NoSpace { .. }), "{err}");
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("2 x --size-bytes"));
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["plain"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut us: Vec<u64> = (1..=100).rev().collect();
        let s = latency_summary(&mut us);
        assert_eq!(
            (s.samples, s.p50_us, s.p90_us, s.p99_us, s.max_us),
            (100, 50, 90, 99, 100)
        );
        let s = latency_summary(&mut [7]);
        assert_eq!((s.p50_us, s.p99_us, s.max_us), (7, 7, 7));
    }

    #[test]
    fn buffers_are_aligned_and_not_constant() {
        for len in [ALIGN, 64 << 10] {
            let buf = AlignedBuf::new(len, 42);
            assert_eq!(buf.bytes().as_ptr() as usize % ALIGN, 0);
            assert_eq!(buf.bytes().len(), len);
            assert!(buf.bytes().iter().any(|&b| b != buf.bytes()[0]));
        }
    }

    #[test]
    fn scratch_is_removed_on_drop_and_a_planted_link_is_not_followed() {
        let dir = temp_dir("scratch");
        let kept = dir.join("segment.log");
        fs::write(&kept, b"keep me").unwrap();
        std::os::unix::fs::symlink(&kept, dir.join(SCRATCH_FILE)).unwrap();
        let scratch = Scratch::create(&dir).unwrap();
        assert!(!fs::symlink_metadata(&scratch.path)
            .unwrap()
            .file_type()
            .is_symlink());
        let err = scratch.error("phase", std::io::Error::other("boom"));
        drop(scratch);
        assert!(err.to_string().starts_with("phase on "));
        assert!(!dir.join(SCRATCH_FILE).exists());
        assert_eq!(fs::read(&kept).unwrap(), b"keep me");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_small_probe_measures_and_cleans_up() {
        let dir = temp_dir("run");
        let report = run(&Host::real(), &opts(&dir, 2 << 20, 0.5)).unwrap();
        assert_eq!(report.writes.len(), BLOCK_SIZES.len() * QUEUE_DEPTHS.len());
        assert!(report
            .writes
            .iter()
            .all(|w| w.bytes >= w.block_bytes as u64 && w.seconds > 0.0));
        assert!(report.append.bytes >= 1 << 20 && report.append.bytes <= 2 << 20);
        assert!(report.sync.samples >= 1 && report.sync.max_us >= report.sync.p50_us);
        assert!(report.reads.iter().all(|r| r.ios >= 1));
        assert!(!dir.join(SCRATCH_FILE).exists());
        let doc = crate::json::parse(&fs::read_to_string(dir.join(RESULT_FILE)).unwrap()).unwrap();
        assert_eq!(
            doc.get("version").and_then(Json::as_f64),
            Some(VERSION as f64)
        );
        assert_eq!(doc.get("format").and_then(Json::as_str), Some(FORMAT));
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// What the broker takes from a probe result: the device's sustained sequential write
/// bandwidth (best measured pass) and the cost of one small write + fdatasync at p99.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceProfile {
    /// Best sequential direct-I/O write bandwidth, bytes per second.
    pub write_bytes_per_second: f64,
    /// p99 of one 4 KiB write + fdatasync, microseconds.
    pub fdatasync_p99_us: f64,
}

/// Reads `DIR/.millrace-probe.json`. `Ok(None)` when there is no file; an error for a file that
/// is not a probe result of a version this code knows, or lacks the fields it needs.
pub fn read_profile(dir: &std::path::Path) -> Result<Option<DeviceProfile>, String> {
    let path = dir.join(RESULT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let json = crate::json::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    profile_of(&json)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The profile in a probe result document.
fn profile_of(json: &Json) -> Result<DeviceProfile, String> {
    let bad = |what: &str| what.to_string();
    if json.get("format").and_then(Json::as_str) != Some(FORMAT) {
        return Err(bad("not a millrace probe result"));
    }
    let version = json.get("version").and_then(Json::as_f64);
    if version != Some(VERSION as f64) {
        return Err(bad(&format!("unknown version {version:?}")));
    }
    let write_bytes_per_second = json
        .get("sequential_write")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .chain(json.get("sequential_append"))
        .filter_map(|pass| pass.get("bytes_per_second").and_then(Json::as_f64))
        .fold(0.0f64, f64::max);
    let fdatasync_p99_us = json
        .get("fdatasync")
        .and_then(|f| f.get("p99_us"))
        .and_then(Json::as_f64)
        .ok_or_else(|| bad("no fdatasync.p99_us"))?;
    if write_bytes_per_second <= 0.0 || fdatasync_p99_us <= 0.0 {
        return Err(bad("no positive bandwidth or fdatasync latency"));
    }
    Ok(DeviceProfile {
        write_bytes_per_second,
        fdatasync_p99_us,
    })
}

#[cfg(test)]
mod profile_tests {
    use super::*;

    fn write(dir: &std::path::Path, text: &str) {
        std::fs::write(dir.join(RESULT_FILE), text).unwrap();
    }

    #[test]
    fn profile_is_read_and_bad_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("mt-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_profile(&dir).unwrap(), None);
        write(
            &dir,
            r#"{"format":"millrace-probe","version":1,
            "sequential_append":{"bytes_per_second":1000.0},
            "sequential_write":[{"bytes_per_second":3000.0},{"bytes_per_second":2000.0}],
            "fdatasync":{"p99_us":8000.0}}"#,
        );
        let p = read_profile(&dir).unwrap().unwrap();
        assert_eq!(
            (p.write_bytes_per_second, p.fdatasync_p99_us),
            (3000.0, 8000.0)
        );
        write(
            &dir,
            r#"{"format":"millrace-probe","version":2,"fdatasync":{"p99_us":1.0}}"#,
        );
        assert!(read_profile(&dir).unwrap_err().contains("version"));
        write(&dir, "not json");
        assert!(read_profile(&dir).is_err());
        write(
            &dir,
            r#"{"format":"millrace-probe","version":1,"fdatasync":{"p99_us":5.0}}"#,
        );
        assert!(read_profile(&dir).is_err(), "no bandwidth must be refused");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
