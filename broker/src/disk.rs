//! The disk a broker's partitions live on: the device (direct I/O on the shard's io_uring
//! ring) or, in the deterministic simulation, the storage crate's in-memory `SimDisk`, which
//! loses unsynced writes and tears the last block at a crash.
//!
//! One enum rather than a broker generic over `Disk`: every handler would otherwise carry the
//! type parameter. The price is one match per file operation, next to a device request.
//! Values live on the shard that opened them.

use bytes::Bytes;
use millrace_shard::disk::{DmaDisk, DmaDiskFile};
use millrace_storage::disk::{Disk, DiskFile};
use millrace_storage::sim::{SimDisk, SimFile};
use std::io;
use std::path::Path;

/// Where a broker keeps its partitions.
#[derive(Clone)]
pub enum BrokerDisk {
    /// The device, through the shard runtime.
    Device(DmaDisk),
    /// The simulation's in-memory disk (only the simulation tests build one).
    #[cfg_attr(not(test), allow(dead_code))]
    Sim(SimDisk),
}

/// A file of a [`BrokerDisk`].
pub enum BrokerFile {
    /// On the device.
    Device(DmaDiskFile),
    /// In the simulation.
    Sim(SimFile),
}

macro_rules! both {
    ($value:expr, $inner:ident => $body:expr) => {
        match $value {
            BrokerDisk::Device($inner) => $body,
            BrokerDisk::Sim($inner) => $body,
        }
    };
}

macro_rules! both_files {
    ($value:expr, $inner:ident => $body:expr) => {
        match $value {
            BrokerFile::Device($inner) => $body,
            BrokerFile::Sim($inner) => $body,
        }
    };
}

impl Disk for BrokerDisk {
    type File = BrokerFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<BrokerFile> {
        match self {
            BrokerDisk::Device(d) => d.open(path, create).await.map(BrokerFile::Device),
            BrokerDisk::Sim(d) => d.open(path, create).await.map(BrokerFile::Sim),
        }
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        both!(self, d => d.create_dir_all(path))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        both!(self, d => d.list_dir(path))
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        both!(self, d => d.remove_file(path).await)
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        both!(self, d => d.remove_dir_all(path).await)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        both!(self, d => d.rename(from, to))
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        both!(self, d => d.sync_dir(path).await)
    }

    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        both!(self, d => d.write_file_atomic(path, data).await)
    }

    async fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        both!(self, d => d.read_file(path).await)
    }
}

impl DiskFile for BrokerFile {
    fn alignment(&self) -> usize {
        both_files!(self, f => f.alignment())
    }

    async fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        both_files!(self, f => f.write_at(pos, data).await)
    }

    fn start_zeroes(&self, pos: u64, len: u64) -> bool {
        both_files!(self, f => f.start_zeroes(pos, len))
    }

    fn advise_written(&self, pos: u64, len: u64) {
        both_files!(self, f => f.advise_written(pos, len))
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        both_files!(self, f => f.read_at(pos, len).await)
    }

    async fn sync_data(&self) -> io::Result<()> {
        match self {
            BrokerFile::Device(f) => {
                let t0 = millrace_shard::time::Instant::now();
                let synced = f.sync_data().await;
                crate::stats::fsync(t0.elapsed());
                synced
            }
            BrokerFile::Sim(f) => f.sync_data().await,
        }
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        both_files!(self, f => f.truncate(len).await)
    }

    async fn size(&self) -> io::Result<u64> {
        both_files!(self, f => f.size().await)
    }

    fn path(&self) -> &Path {
        both_files!(self, f => f.path())
    }

    fn identity(&self) -> u64 {
        both_files!(self, f => f.identity())
    }

    async fn close(self) -> io::Result<()> {
        both_files!(self, f => f.close().await)
    }
}
