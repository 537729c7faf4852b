//! Sockets, and sending file ranges without copying through user space.
//!
//! Segment files are written with O_DIRECT; since Linux 6.5 splice/sendfile from an O_DIRECT
//! descriptor copies, so zero-copy sends use a separate buffered read-only descriptor of the
//! same file, kept in a small per-shard cache ([`SendFileCache`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub use glommio::net::{TcpListener, TcpStream};

/// Sends up to `len` bytes of `file` at `position` to a non-blocking socket with sendfile(2).
/// Returns the bytes sent; `Ok(0)` with `len > 0` means the socket buffer is full right now.
pub fn sendfile_some(
    socket: &impl AsRawFd,
    file: &std::fs::File,
    position: u64,
    len: usize,
) -> io::Result<usize> {
    let mut offset = position as libc::off_t;
    // SAFETY: both descriptors are open for the duration of the call (we hold references to
    // their owners); `offset` is a valid pointer to a local; the kernel writes only to it.
    let rc = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut offset, len) };
    if rc >= 0 {
        return Ok(rc as usize);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Ok(0)
    } else {
        Err(err)
    }
}

/// Buffered read-only descriptors of segment files, for sendfile and small reads, bounded.
pub struct SendFileCache {
    files: RefCell<HashMap<PathBuf, (Rc<std::fs::File>, u64)>>,
    tick: std::cell::Cell<u64>,
    capacity: usize,
}

impl SendFileCache {
    /// A cache holding at most `capacity` open descriptors.
    pub fn new(capacity: usize) -> Self {
        SendFileCache {
            files: RefCell::new(HashMap::new()),
            tick: std::cell::Cell::new(0),
            capacity: capacity.max(1),
        }
    }

    /// The descriptor for `path`, opened on first use; the least recently used one is closed
    /// when the cache is full.
    pub fn get(&self, path: &Path) -> io::Result<Rc<std::fs::File>> {
        let tick = self.tick.get() + 1;
        self.tick.set(tick);
        let mut files = self.files.borrow_mut();
        if let Some((file, used)) = files.get_mut(path) {
            *used = tick;
            return Ok(file.clone());
        }
        if files.len() >= self.capacity {
            if let Some(oldest) = files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, _)| p.clone())
            {
                files.remove(&oldest);
            }
        }
        let file = Rc::new(std::fs::File::open(path)?);
        files.insert(path.to_path_buf(), (file.clone(), tick));
        Ok(file)
    }

    /// Forgets a path (its file was deleted).
    pub fn forget(&self, path: &Path) {
        self.files.borrow_mut().remove(path);
    }
}

/// Reads `len` bytes at `position` with pread(2) on a buffered descriptor.
pub fn pread_exact(file: &std::fs::File, position: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, position)?;
    Ok(buf)
}

/// Splits a connection into a reading and a writing half, each owning its own descriptor (the
/// second is a dup of the first), so one task reads requests while another writes responses
/// without any lock between them.
pub fn split(stream: TcpStream) -> io::Result<(TcpStream, TcpStream)> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup returns a new descriptor we own or -1; the original stays owned by `stream`.
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly duplicated, open, non-blocking socket descriptor that nothing
    // else owns; the new TcpStream takes ownership and closes it on drop.
    let writer = unsafe { TcpStream::from_raw_fd(fd) };
    Ok((stream, writer))
}
