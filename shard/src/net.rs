//! Sockets, and sending file ranges without copying through user space.
//!
//! Segment files are written with O_DIRECT; since Linux 6.5 splice/sendfile from an O_DIRECT
//! descriptor copies, so zero-copy sends use a separate buffered read-only descriptor of the
//! same file, kept in a small per-shard cache ([`SendFileCache`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub use glommio::net::{TcpListener, TcpStream};

/// The sending end of a [`cross_thread_wake`]: any thread may ring it, as often as it likes.
pub struct WakeSender(std::os::unix::net::UnixStream);

impl WakeSender {
    /// Wakes the receiver. Never blocks: a full socket already holds a wake.
    pub fn wake(&self) {
        use std::io::Write;
        let _ = (&self.0).write(&[1]);
    }
}

/// The shard's end of a [`cross_thread_wake`].
pub struct WakeReceiver(glommio::net::UnixStream);

impl WakeReceiver {
    /// Completes once the sender rang; an error once it was dropped (`UnexpectedEof`). The
    /// wait is a receive pending in the shard's ring, so a shard that waits here does not wake
    /// until then.
    pub async fn wait(&mut self) -> io::Result<()> {
        use futures_lite::AsyncReadExt;
        let mut byte = [0u8; 1];
        match self.0.read(&mut byte).await? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(()),
        }
    }
}

/// A wake that another thread (one that is no shard: a signal handler's) sends to this shard
/// without the shard polling for it: a Unix socket pair whose receiving end waits in the
/// shard's ring. Call it on the shard that waits.
pub fn cross_thread_wake() -> io::Result<(WakeSender, WakeReceiver)> {
    use std::os::fd::IntoRawFd;
    use std::os::unix::io::FromRawFd;
    let (sender, receiver) = std::os::unix::net::UnixStream::pair()?;
    sender.set_nonblocking(true)?;
    let fd = receiver.into_raw_fd();
    // SAFETY: `fd` is an open socket that nothing else owns: into_raw_fd gave up ownership.
    let receiver = unsafe { glommio::net::UnixStream::from_raw_fd(fd) };
    Ok((WakeSender(sender), WakeReceiver(receiver)))
}

/// A listening socket on `addr` for the current shard, with SO_REUSEPORT (every shard listens
/// on the same port; the kernel spreads connections) and SO_REUSEADDR (a restarted broker can
/// bind while connections it closed are still in FIN-WAIT-2 or TIME-WAIT; glommio's own bind
/// sets only SO_REUSEPORT, which made a restart fail for up to a minute).
pub fn listen(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    let domain = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let raw = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nothing else owns; OwnedFd closes it on error paths.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        set_int_option(&fd, libc::SOL_SOCKET, option, 1)?;
    }
    bind_and_listen(&fd, addr)?;
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` is a bound, listening TCP socket we own; the listener takes ownership.
    Ok(unsafe { TcpListener::from_raw_fd(raw) })
}

/// Opens a TCP connection to `addr` from the current shard, giving up after `timeout` (on the
/// shard's timer, [`crate::time`]), with TCP_NODELAY set: peers exchange small
/// request/response frames whose latency matters more than packet count.
///
/// A timeout is `io::ErrorKind::TimedOut`. Glommio only: inside a simulation (which has no
/// sockets) the answer is `io::ErrorKind::Unsupported`, never a hang.
pub async fn connect(
    addr: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> io::Result<TcpStream> {
    if crate::sim::is_current() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "sockets are not simulated",
        ));
    }
    let stream = crate::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connecting to {addr}: no answer within {} ms",
                    timeout.as_millis()
                ),
            )
        })?
        .map_err(io::Error::from)?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    Ok(stream)
}

/// Accepts connections on `listener`, handing each to `serve`, until `stop()` returns true
/// (checked every `check_every`); then stops accepting and returns.
///
/// The next accept waits for the future `serve` returns, so `serve` can hold accepting back
/// (the broker waits there for a connection slot under `max.connections`); a `serve` that
/// spawns the connection's task and returns a ready future accepts without pause.
///
/// The accepts run in a task of their own that nothing else wakes. glommio's accept keeps a
/// clone of the polling task's waker for every poll until a connection arrives, and a task's
/// reference count is 16 bits: an accept raced against a stop timer in one task, as the broker
/// first did, was polled again on every timer tick and aborted the process after about 32 000
/// ticks (27 minutes of an idle listener at 50 ms, "Panic while calling waker").
pub async fn accept_until<F>(
    listener: TcpListener,
    check_every: std::time::Duration,
    stop: impl Fn() -> bool,
    serve: impl FnMut(TcpStream) -> F + 'static,
) where
    F: std::future::Future<Output = ()> + 'static,
{
    let polled = async {
        while !stop() {
            crate::time::sleep(check_every).await;
        }
    };
    accept_until_signal(listener, polled, serve).await;
}

/// [`accept_until`] with the stop given as a future that completes when the accepting is to
/// end, for callers that share one stop signal between listeners rather than poll each.
pub async fn accept_until_signal<F>(
    listener: TcpListener,
    stopped: impl std::future::Future<Output = ()>,
    mut serve: impl FnMut(TcpStream) -> F + 'static,
) where
    F: std::future::Future<Output = ()> + 'static,
{
    let accepts = crate::spawn(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => serve(stream).await,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was accepted: say so
                    // and back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    crate::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
    stopped.await;
    accepts.cancel().await;
}

fn set_int_option(fd: &impl AsRawFd, level: i32, option: i32, value: i32) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live local i32.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            &value as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn bind_and_listen(fd: &impl AsRawFd, addr: std::net::SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes for the socket's family.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &storage as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: listen(2) on a bound socket we own.
    if unsafe { libc::listen(fd.as_raw_fd(), 1024) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sockaddr(addr: std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

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

/// A cached descriptor, its file's inode and when it was last used.
type CachedFile = (Rc<SegmentFd>, u64, u64);

/// A buffered read descriptor of a segment file. It can be the last descriptor of a segment
/// that retention or the cleaner removed, so it is closed off the shard's thread
/// ([`crate::reap`]).
pub struct SegmentFd(Option<std::fs::File>, Option<crate::reap::Inode>);

impl std::ops::Deref for SegmentFd {
    type Target = std::fs::File;

    fn deref(&self) -> &std::fs::File {
        self.0.as_ref().expect("open until dropped")
    }
}

impl Drop for SegmentFd {
    fn drop(&mut self) {
        if let Some(file) = self.0.take() {
            crate::reap::close_later(file.into(), self.1, async {});
        }
    }
}

/// Buffered read-only descriptors of segment files, for sendfile and small reads, bounded.
pub struct SendFileCache {
    files: RefCell<HashMap<PathBuf, CachedFile>>,
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
    /// when the cache is full. `inode` (non-zero) is the file the caller read positions from:
    /// a cached descriptor of another file under the same name (a compacted segment swapped
    /// in, a topic re-created) is replaced, and if the name no longer leads to that file at
    /// all the answer is an error rather than bytes of another file.
    pub fn get(&self, path: &Path, inode: u64) -> io::Result<Rc<SegmentFd>> {
        use std::os::unix::fs::MetadataExt;
        let tick = self.tick.get() + 1;
        self.tick.set(tick);
        let mut files = self.files.borrow_mut();
        if let Some((file, cached_inode, used)) = files.get_mut(path) {
            if inode == 0 || *cached_inode == inode {
                *used = tick;
                return Ok(file.clone());
            }
        }
        files.remove(path);
        if files.len() >= self.capacity {
            if let Some(oldest) = files
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(p, _)| p.clone())
            {
                files.remove(&oldest);
            }
        }
        let file = std::fs::File::open(path)?;
        let opened = file.metadata()?.ino();
        if inode != 0 && opened != inode {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} was replaced after it was read", path.display()),
            ));
        }
        let inode = crate::reap::track(&file);
        let file = Rc::new(SegmentFd(Some(file), inode));
        files.insert(path.to_path_buf(), (file.clone(), opened, tick));
        Ok(file)
    }

    /// Forgets a path (its file was deleted).
    pub fn forget(&self, path: &Path) {
        self.files.borrow_mut().remove(path);
    }
}

/// Asks the kernel to start reading `len` bytes of `file` at `position` into the page cache
/// (posix_fadvise WILLNEED) and returns without waiting for the device. Advice only: an
/// error changes nothing a later read does, so it is not reported.
pub fn advise_will_need(file: &std::fs::File, position: u64, len: u64) {
    will_need(file.as_fd(), position, len);
}

/// posix_fadvise(WILLNEED) of `len` bytes at `position` of `fd`'s file: read-ahead into the
/// file's page cache, whatever the descriptor's flags (O_DIRECT included).
pub(crate) fn will_need(fd: std::os::fd::BorrowedFd<'_>, position: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(position), libc::off_t::try_from(len))
    else {
        return;
    };
    // SAFETY: the descriptor is open for the call (it is borrowed from its owner); the call
    // takes no pointers.
    unsafe { libc::posix_fadvise(fd.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED) };
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

#[cfg(test)]
mod sendfile_cache_tests {
    use super::SendFileCache;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_file_replaced_under_its_name_is_reopened_or_refused() {
        let dir = std::env::temp_dir().join(format!("millrace-sfc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seg.log");
        std::fs::write(&path, b"old").unwrap();
        let old_inode = std::fs::metadata(&path).unwrap().ino();
        let cache = SendFileCache::new(4);
        let mut s = String::new();
        let file = cache.get(&path, old_inode).unwrap();
        (&**file).read_to_string(&mut s).unwrap();
        assert_eq!(s, "old");
        // Swap a new file in under the same name, as a compaction does.
        let tmp = dir.join("seg.log.cleaned");
        std::fs::write(&tmp, b"new").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let new_inode = std::fs::metadata(&path).unwrap().ino();
        assert_ne!(old_inode, new_inode);
        let mut s = String::new();
        let file = cache.get(&path, new_inode).unwrap();
        (&**file).read_to_string(&mut s).unwrap();
        assert_eq!(s, "new", "served the replaced file");
        // A reader holding positions of the old file must not get the new one's bytes.
        assert!(cache.get(&path, old_inode).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Counts the live clones of the waker it wraps.
    struct Counted(std::task::Waker);

    impl std::task::Wake for Counted {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.wake_by_ref();
        }
    }

    /// An idle listener whose stop flag is checked thousands of times keeps no clone of the
    /// waiting task's waker per check. It did while the accept and the stop timer shared a
    /// task: glommio keeps every waker an accept was polled with until a connection arrives,
    /// and after 32 767 checks (27 idle minutes at 50 ms) the task's 16-bit reference count
    /// overflowed and the broker died ("Panic while calling waker"). A connection made while
    /// idle is still served, and the call returns once the flag turns.
    #[test]
    fn an_idle_listener_keeps_no_waker_per_stop_check() {
        use super::{accept_until, listen};
        use std::cell::{Cell, RefCell};
        use std::future::Future;
        use std::rc::Rc;
        use std::sync::Arc;
        use std::task::{Context, Poll, Waker};
        const CHECKS: u32 = 3000;
        let config = crate::ShardRuntimeConfig {
            shards: 1,
            io_memory_bytes: 1 << 20,
            ring_depth: 64,
            pin: false,
        };
        crate::run_shards(&config, |_| async {
            let listener = listen("127.0.0.1:0".parse().unwrap())?;
            let addr = listener.local_addr()?;
            let checks = Cell::new(0u32);
            let client = RefCell::new(None);
            let served = Rc::new(Cell::new(0u32));
            let counter = served.clone();
            let mut serving = std::pin::pin!(accept_until(
                listener,
                std::time::Duration::from_micros(20),
                || {
                    checks.set(checks.get() + 1);
                    if checks.get() == CHECKS / 2 {
                        *client.borrow_mut() = Some(std::net::TcpStream::connect(addr).unwrap());
                    }
                    checks.get() >= CHECKS
                },
                move |_stream| {
                    counter.set(counter.get() + 1);
                    std::future::ready(())
                },
            ));
            let mut counted: Option<Arc<Counted>> = None;
            let mut most_held = 0;
            std::future::poll_fn(|cx| {
                let c = counted.get_or_insert_with(|| Arc::new(Counted(cx.waker().clone())));
                let waker = Waker::from(c.clone());
                let polled = serving.as_mut().poll(&mut Context::from_waker(&waker));
                drop(waker);
                most_held = most_held.max(Arc::strong_count(c) - 1);
                match polled {
                    Poll::Ready(()) => Poll::Ready(()),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            assert_eq!(checks.get(), CHECKS);
            assert_eq!(
                served.get(),
                1,
                "the connection made while idle was not accepted"
            );
            assert!(
                most_held <= 8,
                "{most_held} wakers held after {CHECKS} stop checks"
            );
            Ok(())
        })
        .unwrap();
    }
}

#[cfg(test)]
mod connect_tests {
    /// `connect` reaches a listener with TCP_NODELAY set, reports a refused port as an error,
    /// and gives up on an address that never answers (a non-routable one) with `TimedOut`.
    #[test]
    fn connect_sets_nodelay_and_times_out() {
        let config = crate::ShardRuntimeConfig {
            shards: 1,
            io_memory_bytes: 1 << 20,
            ring_depth: 64,
            pin: false,
        };
        crate::run_shards(&config, |_| async {
            let listener = super::listen("127.0.0.1:0".parse().unwrap())?;
            let addr = listener.local_addr()?;
            let stream = super::connect(addr, std::time::Duration::from_secs(10)).await?;
            assert!(stream.nodelay()?);
            drop(listener);
            let refused = super::connect(addr, std::time::Duration::from_secs(10)).await;
            assert!(refused.is_err());
            // TEST-NET-1 (RFC 5737) is never routed; the SYN goes unanswered or the route is
            // refused at once. Either way connect returns, and a timeout says so.
            let blackhole = "192.0.2.1:9".parse().unwrap();
            match super::connect(blackhole, std::time::Duration::from_millis(200)).await {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {} // no route on this host: also not a hang
                Ok(_) => panic!("connected to a TEST-NET-1 address"),
            }
            Ok(())
        })
        .unwrap();
    }
}
