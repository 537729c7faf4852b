//! An in-memory [`Disk`] that loses what a real disk may lose, for tests (here and in the broker).
//!
//! Each file keeps two images: the *durable* bytes (what survives a crash for sure) and the
//! *volatile* bytes (what reads see), plus the ordered list of operations (writes, truncations)
//! applied to the volatile image since the last `sync_data`. [`SimDisk::crash`] keeps a random
//! prefix of those operations per file and may tear the last kept write inside its last block at
//! a random byte, as the [`crate::disk`] contract allows.
//!
//! Simplifications, on purpose:
//! * Directory operations (create, remove, rename, `write_file_atomic`) are durable at once;
//!   `sync_dir` only counts. A real file system needs `sync_dir`; the log calls it anyway.
//! * A newly created file exists durably at once, empty.
//! * Faults: [`SimDisk::set_disk_full`] makes every `write_at` (and `write_file_atomic`) fail with
//!   ENOSPC without touching the file; [`SimDisk::fail_next_writes`] / [`SimDisk::fail_next_syncs`]
//!   make the next n calls fail with EIO (a failed sync keeps the operations unsynced).
//! * [`SimDisk::set_yield`] makes every async operation return `Pending` once before it runs,
//!   so concurrent callers interleave under a simple executor.
//!
//! Everything is `Rc`/`RefCell`: one shard, one thread.

use crate::disk::{Disk, DiskFile};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// Counters of what the log asked the disk to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// `write_at` calls that succeeded.
    pub writes: u64,
    /// Bytes those calls wrote.
    pub bytes_written: u64,
    /// `sync_data` calls that succeeded.
    pub syncs: u64,
    /// `sync_dir` calls.
    pub dir_syncs: u64,
    /// `read_at` calls.
    pub reads: u64,
    /// Bytes those calls returned.
    pub bytes_read: u64,
    /// The longest `read_at` asked for, in bytes.
    pub largest_read: u64,
    /// The longest successful `write_at`, in bytes.
    pub largest_write: u64,
}

/// The in-memory disk. Clones share the same files.
#[derive(Clone)]
pub struct SimDisk {
    state: Rc<RefCell<SimState>>,
}

/// An open file of a [`SimDisk`].
pub struct SimFile {
    path: PathBuf,
    data: Rc<RefCell<FileImage>>,
    state: Rc<RefCell<SimState>>,
}

struct SimState {
    alignment: usize,
    files: BTreeMap<PathBuf, Rc<RefCell<FileImage>>>,
    dirs: BTreeSet<PathBuf>,
    disk_full: bool,
    failing_writes: u32,
    failing_syncs: u32,
    yield_once: bool,
    stats: SimStats,
}

#[derive(Default)]
struct FileImage {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    unsynced: Vec<Op>,
}

#[derive(Clone)]
enum Op {
    Write { pos: u64, data: Vec<u8> },
    Truncate { len: u64 },
}

impl Default for SimDisk {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl SimDisk {
    /// An empty disk whose files want writes aligned to `alignment` bytes.
    pub fn new(alignment: usize) -> Self {
        assert!(
            alignment.is_power_of_two(),
            "alignment must be a power of two"
        );
        SimDisk {
            state: Rc::new(RefCell::new(SimState {
                alignment,
                files: BTreeMap::new(),
                dirs: BTreeSet::from([PathBuf::from("/")]),
                disk_full: false,
                failing_writes: 0,
                failing_syncs: 0,
                yield_once: false,
                stats: SimStats::default(),
            })),
        }
    }

    /// Simulates power loss: every file keeps its durable bytes plus a random prefix of its
    /// unsynced operations, the last kept write possibly torn inside its last block. Open
    /// handles must not be used afterwards (drop the log first, as a crashed process would).
    pub fn crash(&self, seed: u64) {
        let mut rng = SplitMix64(seed);
        let state = self.state.borrow();
        for image in state.files.values() {
            let mut image = image.borrow_mut();
            let ops = std::mem::take(&mut image.unsynced);
            let mut bytes = std::mem::take(&mut image.durable);
            let kept = rng.below(ops.len() as u64 + 1) as usize;
            for (i, op) in ops[..kept].iter().enumerate() {
                let tear = i + 1 == kept && rng.below(2) == 0;
                match op {
                    Op::Write { pos, data } if tear => {
                        let block_start = data.len() - data.len().min(state.alignment);
                        let span = (data.len() - block_start) as u64 + 1;
                        let cut = block_start + rng.below(span) as usize;
                        apply_write(&mut bytes, *pos, &data[..cut]);
                    }
                    Op::Write { pos, data } => apply_write(&mut bytes, *pos, data),
                    Op::Truncate { len } => bytes.resize(*len as usize, 0),
                }
            }
            image.volatile = bytes.clone();
            image.durable = bytes;
        }
    }

    /// While `full`, writes fail with ENOSPC and change nothing.
    pub fn set_disk_full(&self, full: bool) {
        self.state.borrow_mut().disk_full = full;
    }

    /// The next `n` `write_at` calls fail with EIO and change nothing.
    pub fn fail_next_writes(&self, n: u32) {
        self.state.borrow_mut().failing_writes = n;
    }

    /// The next `n` `sync_data` calls fail with EIO; the data stays unsynced.
    pub fn fail_next_syncs(&self, n: u32) {
        self.state.borrow_mut().failing_syncs = n;
    }

    /// When true, every async operation is `Pending` once before it runs.
    pub fn set_yield(&self, yield_once: bool) {
        self.state.borrow_mut().yield_once = yield_once;
    }

    /// Zeroes the counters, to look at what one operation does.
    pub fn reset_stats(&self) {
        self.state.borrow_mut().stats = SimStats::default();
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.state.borrow().stats
    }

    /// The bytes a read would see now, or None if the file does not exist.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.borrow();
        let image = state.files.get(path)?;
        let bytes = image.borrow().volatile.clone();
        Some(bytes)
    }

    /// Replaces a file's content durably (creating it), as a test's "bit rot" or stray file.
    pub fn put_file(&self, path: &Path, data: &[u8]) {
        let mut state = self.state.borrow_mut();
        let image = state.files.entry(path.to_path_buf()).or_default();
        let mut image = image.borrow_mut();
        image.durable = data.to_vec();
        image.volatile = data.to_vec();
        image.unsynced.clear();
    }

    /// Every file's path, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.state.borrow().files.keys().cloned().collect()
    }

    fn pause(&self) -> YieldOnce {
        YieldOnce(!self.state.borrow().yield_once)
    }

    fn parent_exists(&self, path: &Path) -> bool {
        let parent = path.parent().unwrap_or(Path::new("/"));
        parent.as_os_str().is_empty() || self.state.borrow().dirs.contains(parent)
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        self.pause().await;
        if !self.parent_exists(path) {
            return Err(not_found(path));
        }
        let mut state = self.state.borrow_mut();
        let data = match state.files.get(path) {
            Some(data) => data.clone(),
            None if create => state.files.entry(path.to_path_buf()).or_default().clone(),
            None => return Err(not_found(path)),
        };
        Ok(SimFile {
            path: path.to_path_buf(),
            data,
            state: self.state.clone(),
        })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        for dir in path.ancestors() {
            if !dir.as_os_str().is_empty() {
                state.dirs.insert(dir.to_path_buf());
            }
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.state.borrow();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        let files = state.files.keys().map(PathBuf::as_path);
        let dirs = state.dirs.iter().map(PathBuf::as_path);
        Ok(files
            .chain(dirs)
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self.state.borrow_mut().files.remove(path) {
            Some(_) => Ok(()),
            None => Err(not_found(path)),
        }
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        state.files.retain(|p, _| !p.starts_with(path));
        state.dirs.retain(|p| !p.starts_with(path));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        let data = state.files.remove(from).ok_or_else(|| not_found(from))?;
        state.files.insert(to.to_path_buf(), data);
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.pause().await;
        let mut state = self.state.borrow_mut();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        state.stats.dir_syncs += 1;
        Ok(())
    }

    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.pause().await;
        if !self.parent_exists(path) {
            return Err(not_found(path));
        }
        if self.state.borrow().disk_full {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        // Durable at once: the temporary file, its sync and the rename collapse into one step.
        self.put_file(path, data);
        Ok(())
    }

    async fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        self.pause().await;
        Ok(self.file_bytes(path))
    }
}

/// Linux's errno for "no space left on device".
pub const ENOSPC: i32 = 28;
const EIO: i32 = 5;

impl SimFile {
    fn pause(&self) -> YieldOnce {
        YieldOnce(!self.state.borrow().yield_once)
    }
}

impl DiskFile for SimFile {
    fn alignment(&self) -> usize {
        self.state.borrow().alignment
    }

    async fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        self.pause().await;
        let mut state = self.state.borrow_mut();
        let align = state.alignment as u64;
        assert!(
            (pos | data.len() as u64) & (align - 1) == 0,
            "unaligned write to {}: pos {pos}, len {}",
            self.path.display(),
            data.len()
        );
        if state.disk_full {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        if state.failing_writes > 0 {
            state.failing_writes -= 1;
            return Err(io::Error::from_raw_os_error(EIO));
        }
        state.stats.writes += 1;
        state.stats.bytes_written += data.len() as u64;
        state.stats.largest_write = state.stats.largest_write.max(data.len() as u64);
        let mut image = self.data.borrow_mut();
        apply_write(&mut image.volatile, pos, data);
        image.unsynced.push(Op::Write {
            pos,
            data: data.to_vec(),
        });
        Ok(())
    }

    fn advise_written(&self, _pos: u64, _len: u64) {
        // A simulated disk has no page cache.
    }

    fn start_zeroes(&self, pos: u64, len: u64) -> bool {
        // Done at once: as if it completed before any later operation started.
        let mut state = self.state.borrow_mut();
        let align = state.alignment as u64;
        assert!((pos | len) & (align - 1) == 0, "unaligned zeroes");
        if state.disk_full || state.failing_writes > 0 {
            return false;
        }
        state.stats.writes += 1;
        state.stats.bytes_written += len;
        let data = vec![0u8; len as usize];
        let mut image = self.data.borrow_mut();
        apply_write(&mut image.volatile, pos, &data);
        image.unsynced.push(Op::Write { pos, data });
        true
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.pause().await;
        let image = self.data.borrow();
        let start = (pos as usize).min(image.volatile.len());
        let end = start.saturating_add(len).min(image.volatile.len());
        let mut state = self.state.borrow_mut();
        state.stats.reads += 1;
        state.stats.bytes_read += (end - start) as u64;
        state.stats.largest_read = state.stats.largest_read.max(len as u64);
        Ok(Bytes::copy_from_slice(&image.volatile[start..end]))
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.pause().await;
        let mut state = self.state.borrow_mut();
        if state.failing_syncs > 0 {
            state.failing_syncs -= 1;
            return Err(io::Error::from_raw_os_error(EIO));
        }
        state.stats.syncs += 1;
        let mut image = self.data.borrow_mut();
        image.durable = image.volatile.clone();
        image.unsynced.clear();
        Ok(())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.pause().await;
        let mut image = self.data.borrow_mut();
        image.volatile.resize(len as usize, 0);
        image.unsynced.push(Op::Truncate { len });
        Ok(())
    }

    async fn size(&self) -> io::Result<u64> {
        self.pause().await;
        Ok(self.data.borrow().volatile.len() as u64)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    async fn close(self) -> io::Result<()> {
        Ok(())
    }
}

fn apply_write(bytes: &mut Vec<u8>, pos: u64, data: &[u8]) {
    let pos = pos as usize;
    if bytes.len() < pos + data.len() {
        bytes.resize(pos + data.len(), 0);
    }
    bytes[pos..pos + data.len()].copy_from_slice(data);
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

/// A small deterministic generator (SplitMix64): the sim needs no dependency for its crashes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for tests (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Pending once (waking itself) unless created ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn crash_keeps_synced_bytes_and_a_prefix_of_the_rest() {
        for seed in 0..200 {
            let disk = SimDisk::new(16);
            disk.create_dir_all(Path::new("/d")).unwrap();
            let file = block_on(disk.open(Path::new("/d/f"), true)).unwrap();
            block_on(file.write_at(0, &[1; 32])).unwrap();
            block_on(file.sync_data()).unwrap();
            block_on(file.write_at(32, &[2; 32])).unwrap();
            block_on(file.write_at(64, &[3; 16])).unwrap();
            drop(file);
            disk.crash(seed);
            let bytes = disk.file_bytes(Path::new("/d/f")).unwrap();
            assert!(bytes.len() >= 32 && bytes[..32] == [1; 32], "seed {seed}");
            let rest = &bytes[32..];
            let expected: Vec<u8> = [[2u8; 32].as_slice(), &[3; 16]].concat();
            assert_eq!(rest, &expected[..rest.len()], "seed {seed}: not a prefix");
        }
    }

    #[test]
    fn disk_full_writes_fail_without_effect() {
        let disk = SimDisk::new(16);
        disk.create_dir_all(Path::new("/d")).unwrap();
        let file = block_on(disk.open(Path::new("/d/f"), true)).unwrap();
        disk.set_disk_full(true);
        let err = block_on(file.write_at(0, &[1; 16])).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ENOSPC));
        assert_eq!(block_on(file.size()).unwrap(), 0);
        disk.set_disk_full(false);
        block_on(file.write_at(0, &[1; 16])).unwrap();
        assert_eq!(block_on(file.size()).unwrap(), 16);
    }
}
