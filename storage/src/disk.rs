//! The small I/O surface the partition log is written against.
//!
//! The shard crate implements it with direct-I/O files on io_uring; tests use an
//! in-memory disk that can lose unsynced writes and tear the last one at any byte, so recovery
//! is tested against the crashes it has to survive.
//!
//! Contract, for every implementation:
//! * `DiskFile::write_at` takes a position and a length that are multiples of
//!   [`DiskFile::alignment`] (direct I/O); the log keeps the partial last block in memory and
//!   rewrites it whole.
//! * Writes, syncs and truncations of one file take effect in the order they were started,
//!   even when the future of an earlier one was dropped before it completed; zeroes started
//!   with `DiskFile::start_zeroes` count as a write.
//! * Nothing written is durable until `sync_data` returns Ok. A crash may keep any prefix of the
//!   bytes written since the last sync, with the last kept block possibly torn.
//! * `read_at` takes any position and length and returns at most `len` bytes (fewer at the end
//!   of the file).
//! * Directory operations are rare (segment roll, topic creation, retention, cleaning).
//!   Those that can wait for the device (syncs, removals, renames) are asynchronous, so an
//!   implementation can keep them off the thread that serves requests.

use bytes::Bytes;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

/// A file system as the log sees it. Cheap to clone; lives on one shard.
pub trait Disk: Clone + 'static {
    /// An open file.
    type File: DiskFile;

    /// Opens `path` for reading and writing (direct I/O where the implementation has it),
    /// creating it when `create` is true.
    fn open(&self, path: &Path, create: bool) -> impl Future<Output = io::Result<Self::File>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries of a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Removes a file (it may free the file's blocks, which can wait for the device).
    fn remove_file(&self, path: &Path) -> impl Future<Output = io::Result<()>>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> impl Future<Output = io::Result<()>>;
    /// Renames atomically within a directory.
    /// Synchronous: it replaces names whose files the log still holds open, which frees no
    /// blocks, and the cleaner relies on no await between its last check and the rename.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> impl Future<Output = io::Result<()>>;
    /// Writes a small file atomically and durably: temporary file, sync, rename, sync dir.
    fn write_file_atomic(&self, path: &Path, data: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Reads a whole small file; `Ok(None)` when it does not exist.
    fn read_file(&self, path: &Path) -> impl Future<Output = io::Result<Option<Vec<u8>>>>;
}

/// An open file of a [`Disk`].
pub trait DiskFile: 'static {
    /// The block size writes must be aligned to.
    fn alignment(&self) -> usize;
    /// Writes `data` at `pos`; both multiples of [`DiskFile::alignment`].
    fn write_at(&self, pos: u64, data: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Starts writing `len` zero bytes at `pos` (both multiples of [`DiskFile::alignment`])
    /// and returns without waiting for them: the writes, syncs and truncations of the file
    /// started after the call wait for them. False when it did not start (an implementation
    /// may decline while another operation of the file is in progress). No failure is
    /// reported: zeroes are never data, only blocks prepared for it. Like any write, durable
    /// only after a later `sync_data`.
    fn start_zeroes(&self, pos: u64, len: u64) -> bool;
    /// Tells the system that `len` bytes at `pos`, just written, are about to be read: a file
    /// written around the page cache has them read back into it, so readers of the tail
    /// (sendfile of a catch-up) find them in memory. Only advice: nothing to wait for or fail.
    fn advise_written(&self, pos: u64, len: u64);
    /// Reads up to `len` bytes at `pos`.
    fn read_at(&self, pos: u64, len: usize) -> impl Future<Output = io::Result<Bytes>>;
    /// Makes every completed write durable (fdatasync).
    fn sync_data(&self) -> impl Future<Output = io::Result<()>>;
    /// Sets the file's length.
    fn truncate(&self, len: u64) -> impl Future<Output = io::Result<()>>;
    /// The file's current length.
    fn size(&self) -> impl Future<Output = io::Result<u64>>;
    /// The file's path.
    fn path(&self) -> &Path;
    /// What identifies the file itself rather than its name (the inode), so a reader opening
    /// the path later can tell whether the name still leads to this file (compaction swaps a
    /// segment's file under the same name). 0 when unknown: no check is made.
    fn identity(&self) -> u64 {
        0
    }
    /// Closes the file.
    fn close(self) -> impl Future<Output = io::Result<()>>;
}

/// A path helper shared by implementations: the temporary name used by `write_file_atomic`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}
