//! The storage crate's [`Disk`] over glommio's direct-I/O files.

use crate::reap::{close_later, off_shard, track, Inode};
use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::sync::Semaphore;
use millrace_storage::disk::{temp_path, Disk, DiskFile};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Direct-I/O disk access on the current shard's io_uring ring.
#[derive(Clone, Debug, Default)]
pub struct DmaDisk;

/// A segment or index file opened with O_DIRECT, read-write. Dropping it closes it off the
/// shard's thread ([`crate::reap`]): it may be the last descriptor of a deleted segment.
///
/// Writes are not cancelled with the future that awaits them. io_uring cannot take back a
/// write it has started, so a flush round dropped midway (its produce request's connection
/// closed) could leave a write that lands after the next round's write of the same blocks,
/// and put older bytes, or zeroes written ahead, over acknowledged data. So each write runs
/// in a task of its own, and every write, sync and truncation of the file waits in `order`
/// until the ones before it have completed.
pub struct DmaDiskFile {
    /// None only once closed or dropped.
    file: Option<Rc<DmaFile>>,
    path: PathBuf,
    /// Counted open with [`track`], so the reaper knows when the last descriptor goes.
    inode: Option<Inode>,
    /// One permit: held by the write, sync or truncation in progress.
    order: Rc<Semaphore>,
}

impl DmaDiskFile {
    fn file(&self) -> &Rc<DmaFile> {
        self.file.as_ref().expect("DmaDiskFile used after close")
    }

    /// Waits for the writes, syncs and truncations before this one to complete.
    async fn in_order(&self) -> io::Result<glommio::sync::StaticPermit> {
        self.order
            .acquire_static_permit(1)
            .await
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Runs `write` to completion in a task of its own, holding `permit` until it is done.
    async fn write_detached<W>(
        &self,
        permit: glommio::sync::StaticPermit,
        write: W,
    ) -> io::Result<()>
    where
        W: std::future::Future<Output = io::Result<()>> + 'static,
    {
        let task = glommio::spawn_local(async move {
            let result = write.await;
            drop(permit);
            result
        })
        .detach();
        task.await
            .unwrap_or_else(|| Err(io::Error::other("write task stopped before it completed")))
    }
}

/// Bytes of the largest zero buffer [`DiskFile::start_zeroes`] writes from.
const ZERO_BUFFER_BYTES: usize = 1 << 20;

thread_local! {
    /// Buffers of zeroes per shard, one for each power-of-two length up to
    /// [`ZERO_BUFFER_BYTES`] that a write of zeroes had, shared by every later write of that
    /// length (at most twice the largest in all; never registered with the ring, where they
    /// would hold a share of the shard's registered memory for good). The log zeroes ahead in
    /// power-of-two lengths, so after the first of each length none is filled again.
    static ZEROES: RefCell<HashMap<usize, Rc<DmaBuffer>>> = RefCell::new(HashMap::new());
}

/// A buffer of `len` zeroes: a shared one for a power-of-two length up to
/// [`ZERO_BUFFER_BYTES`], else a new one.
fn zeroes(file: &DmaFile, len: usize) -> DmaSource {
    if !len.is_power_of_two() || len > ZERO_BUFFER_BYTES {
        let mut buf = file.alloc_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        return DmaSource::Owned(buf);
    }
    ZEROES.with(|zeroes| {
        let buf = zeroes
            .borrow_mut()
            .entry(len)
            .or_insert_with(|| {
                let mut buf = glommio::allocate_dma_buffer_global(len);
                buf.as_bytes_mut().fill(0);
                Rc::new(buf)
            })
            .clone();
        DmaSource::Shared(buf)
    })
}

/// Writes `buf` whole at `pos`.
async fn write_whole(file: &DmaFile, buf: DmaSource, pos: u64) -> io::Result<()> {
    let (written, len) = match buf {
        DmaSource::Owned(b) => {
            let len = b.len();
            (file.write_at(b, pos).await, len)
        }
        DmaSource::Shared(b) => {
            let len = b.len();
            (file.write_rc_at(b, pos).await, len)
        }
    };
    if written.map_err(to_io)? < len {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short direct write",
        ));
    }
    Ok(())
}

/// What [`write_whole`] writes.
enum DmaSource {
    Owned(DmaBuffer),
    Shared(Rc<DmaBuffer>),
}

impl Drop for DmaDiskFile {
    fn drop(&mut self) {
        let Some(file) = self.file.take() else {
            return;
        };
        match last_descriptor(&file, self.inode) {
            Some(dup) => {
                let order = self.order.clone();
                close_later(dup, self.inode, async move {
                    // After the writes still running: they hold the file too.
                    let _ = order.acquire_permit(1).await;
                    let _ = file.close_rc().await;
                })
            }
            None => drop(file),
        }
    }
}

/// glommio closes its descriptor on its ring, inside io_uring_enter on the shard's thread; a
/// duplicate held until that close is done makes the reaper's close the last one. Without a
/// duplicate (dup failed) glommio's close is the last, and the count is dropped here.
fn last_descriptor(file: &DmaFile, inode: Option<Inode>) -> Option<OwnedFd> {
    let dup = duplicate(file);
    if dup.is_none() {
        crate::reap::forget(inode);
    }
    dup
}

/// fsync of a directory, on the calling thread.
fn sync_dir_now(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A second descriptor of `file`'s open file.
fn duplicate(file: &DmaFile) -> Option<OwnedFd> {
    // SAFETY: the descriptor belongs to `file`, which is open for the whole call.
    let fd = unsafe { BorrowedFd::borrow_raw(file.as_raw_fd()) };
    fd.try_clone_to_owned().ok()
}

fn to_io(e: glommio::GlommioError<()>) -> io::Error {
    match e {
        glommio::GlommioError::IoError(e) => e,
        glommio::GlommioError::EnhancedIoError { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}

/// Name of the scratch file used by [`DmaDisk::probe_device`].
const PROBE_FILE: &str = ".millrace-iopoll-probe";

impl DmaDisk {
    /// Settles glommio's per-device iopoll probe before any segment is opened.
    ///
    /// glommio decides whether a device supports polled I/O by reading the first block of the
    /// first DMA file opened on it, and caches the answer for the device. If that file is
    /// empty (a new segment), the read ends at EOF without reaching the device and "succeeds",
    /// so a device without iopoll (virtio-blk, most cloud disks) is marked pollable and every
    /// later read fails with EOPNOTSUPP. Opening a one-block file first makes the probe real.
    /// glommio keeps that cache per thread, so every shard calls this for itself.
    pub async fn probe_device(dir: &Path, shard: usize) -> io::Result<()> {
        let path = dir.join(format!("{PROBE_FILE}-{shard}"));
        {
            let mut f = std::fs::File::create(&path)?;
            f.write_all(&[0u8; 4096])?;
            f.sync_all()?;
        }
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(to_io);
        let result = match opened {
            Ok(file) => {
                let read = file.read_at(0, 4096).await.map(|_| ()).map_err(to_io);
                let _ = file.close().await;
                read
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&path);
        result
    }
}

impl Disk for DmaDisk {
    type File = DmaDiskFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<DmaDiskFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(path)
            .await
            .map_err(to_io)?;
        // SAFETY: the descriptor belongs to `file`, which is open for the call.
        let inode = track(unsafe { BorrowedFd::borrow_raw(file.as_raw_fd()) });
        Ok(DmaDiskFile {
            file: Some(Rc::new(file)),
            path: path.to_path_buf(),
            inode,
            order: Rc::new(Semaphore::new(1)),
        })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        crate::reap::remove_file(path).await
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        crate::reap::remove_dir_all(path).await
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        off_shard(move || sync_dir_now(&path)).await
    }

    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let path = path.to_path_buf();
        let data = data.to_vec();
        off_shard(move || {
            let tmp = temp_path(&path);
            {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&data)?;
                f.sync_data()?;
            }
            std::fs::rename(&tmp, &path)?;
            match path.parent() {
                Some(dir) => sync_dir_now(dir),
                None => Ok(()),
            }
        })
        .await
    }

    async fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let path = path.to_path_buf();
        off_shard(move || match std::fs::read(path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }
}

impl DiskFile for DmaDiskFile {
    fn alignment(&self) -> usize {
        self.file().alignment() as usize
    }

    async fn write_at(&self, pos: u64, data: &[u8]) -> io::Result<()> {
        let align = self.alignment();
        assert!(
            (pos as usize).is_multiple_of(align) && data.len().is_multiple_of(align),
            "unaligned direct write"
        );
        let permit = self.in_order().await?;
        let mut buf = self.file().alloc_dma_buffer(data.len());
        buf.as_bytes_mut().copy_from_slice(data);
        let file = self.file().clone();
        self.write_detached(permit, async move {
            write_whole(&file, DmaSource::Owned(buf), pos).await
        })
        .await
    }

    fn advise_written(&self, pos: u64, len: u64) {
        // SAFETY: the descriptor belongs to the open file this holds, for the whole call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.file().as_raw_fd()) };
        crate::net::will_need(fd, pos, len);
    }

    fn start_zeroes(&self, pos: u64, len: u64) -> bool {
        let align = self.alignment() as u64;
        assert!(
            pos.is_multiple_of(align) && len.is_multiple_of(align),
            "unaligned direct write"
        );
        // Only when nothing else of the file is in progress or waiting: the permit is taken
        // now, so every write, sync or truncation started after this call comes after the
        // zeroes. (A permit the task took later could come after such a write, and put zeroes
        // over its data.)
        let Ok(permit) = self.order.try_acquire_static_permit(1) else {
            return false;
        };
        let file = self.file().clone();
        let path = self.path.clone();
        glommio::spawn_local(async move {
            let mut at = pos;
            let end = pos + len;
            while at < end {
                let n = (end - at).min(ZERO_BUFFER_BYTES as u64);
                if let Err(e) = write_whole(&file, zeroes(&file, n as usize), at).await {
                    tracing::debug!(path = %path.display(), error = %e, "writing zeroes ahead failed");
                    break;
                }
                at += n;
            }
            drop(permit);
        })
        .detach();
        true
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let read = self.file().read_at(pos, len).await.map_err(to_io)?;
        Ok(Bytes::copy_from_slice(&read[..]))
    }

    async fn sync_data(&self) -> io::Result<()> {
        let _permit = self.in_order().await?;
        self.file().fdatasync().await.map_err(to_io)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        let _permit = self.in_order().await?;
        self.file().truncate(len).await.map_err(to_io)
    }

    async fn size(&self) -> io::Result<u64> {
        self.file().file_size().await.map_err(to_io)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn identity(&self) -> u64 {
        self.file().inode()
    }

    async fn close(self) -> io::Result<()> {
        let mut this = self;
        let Some(file) = this.file.take() else {
            return Ok(());
        };
        let dup = last_descriptor(&file, this.inode);
        let _permit = this.order.acquire_permit(1).await;
        let closed = file.close_rc().await.map(|_| ()).map_err(to_io);
        if let Some(dup) = dup {
            close_later(dup, this.inode, async {});
        }
        closed
    }
}
