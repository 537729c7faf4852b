//! Closing descriptors and removing files without stalling the shards.
//!
//! When the last descriptor of an unlinked file closes (or an unlink drops a file nobody has
//! open), the kernel frees the file's blocks right there, in the calling thread. On ext4
//! mounted with `discard` that includes waiting for the device to discard them: 20 to 75 ms per
//! 8 MiB segment on this project's virtio disks, measured with
//! `perf record -e sched:sched_switch -g` while the compaction cleaner swapped segments in
//! (stacks ending in `ext4_evict_inode` .. `blkdev_issue_discard`). Two costs follow:
//!
//! * On a shard's thread that stalls every request of every partition the shard owns. So the
//!   descriptors that can be the last one of a deleted file (segment files, the sendfile
//!   cache's descriptors) are closed, and files unlinked, off the shard's threads.
//! * On the device, a discard occupies the queue: a produce's direct write and flush waited
//!   behind them for as long (seen in the same trace as an io_uring worker blocked 22 ms in
//!   `__iomap_dio_rw`). So a deleted file is not freed at once: the reaper thread cuts it
//!   down [`STEP_BYTES`] at a time with `ftruncate`, resting after each cut as long as the cut
//!   took, which leaves the device to foreground I/O at least half of the time.
//!
//! Neither the reaper nor the executors' helper threads are pinned to a shard's CPU (threads
//! inherit the affinity of the thread that starts them): they run wherever the scheduler finds
//! room, instead of queueing behind the shard that happened to start them.
//!
//! Cutting a file down is only safe when nobody reads it any more, so every descriptor of a
//! segment this process opens is counted per inode ([`track`]); the reaper cuts only when the
//! descriptor it closes is the last one counted and the file has no name left. Renames stay
//! inline: a rename over a segment that is still open frees nothing until its last descriptor
//! closes.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bytes freed by one cut of a deleted file.
pub const STEP_BYTES: u64 = 256 * 1024;
/// Shortest rest between two cuts.
const MIN_REST: Duration = Duration::from_millis(1);
/// Past this many files waiting, the reaper stops resting: space and descriptors must not
/// pile up faster than they are given back.
const BACKLOG_FILES: usize = 64;

thread_local! {
    static ON_SHARD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as a shard's executor thread ([`crate::run_shards`] does it).
pub(crate) fn mark_shard_thread() {
    ON_SHARD.with(|on| on.set(true));
}

fn on_shard() -> bool {
    ON_SHARD.with(Cell::get)
}

/// Runs a blocking file-system call on the executor's helper thread (directly when the caller
/// is not a shard's executor, as in tests and tools).
pub async fn off_shard<R, F>(f: F) -> io::Result<R>
where
    F: FnOnce() -> io::Result<R> + Send + 'static,
    R: Send + 'static,
{
    if on_shard() {
        glommio::executor().spawn_blocking(f).await
    } else {
        f()
    }
}

/// A file's identity: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Inode(u64, u64);

fn open_counts() -> &'static Mutex<HashMap<Inode, usize>> {
    static COUNTS: OnceLock<Mutex<HashMap<Inode, usize>>> = OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

fn inode_of(fd: impl AsFd) -> Option<(Inode, libc::stat)> {
    // SAFETY: an all-zero stat is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the call and `st` is a live, writable stat.
    let rc = unsafe { libc::fstat(fd.as_fd().as_raw_fd(), &mut st) };
    (rc == 0).then_some((Inode(st.st_dev, st.st_ino), st))
}

/// Counts a newly opened descriptor of a file; pass the result to [`close_later`] with it.
pub fn track(fd: impl AsFd) -> Option<Inode> {
    let (inode, _) = inode_of(fd)?;
    *open_counts()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(inode)
        .or_insert(0) += 1;
    Some(inode)
}

/// Uncounts one descriptor; true when it was the last one counted.
fn untrack(inode: Inode) -> bool {
    let mut counts = open_counts().lock().unwrap_or_else(|p| p.into_inner());
    match counts.get_mut(&inode) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            counts.remove(&inode);
            true
        }
        None => true,
    }
}

/// Uncounts a descriptor that was closed some other way.
pub fn forget(inode: Option<Inode>) {
    if let Some(inode) = inode {
        untrack(inode);
    }
}

struct Job {
    fd: OwnedFd,
    inode: Option<Inode>,
}

static WAITING: AtomicUsize = AtomicUsize::new(0);

/// The CPUs the process may use, as [`crate::run_shards`] found them before pinning anything.
static PROCESS_CPUS: OnceLock<libc::cpu_set_t> = OnceLock::new();

/// The CPUs the calling thread may run on.
fn current_cpus() -> Option<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is the empty set, a valid value for the call to fill.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t of the size passed; 0 names the calling thread.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    (rc == 0).then_some(set)
}

/// Records the calling thread's CPU affinity as the process's (call before pinning threads).
pub(crate) fn remember_process_cpus() {
    if let Some(set) = current_cpus() {
        let _ = PROCESS_CPUS.set(set);
    }
}

/// Lets the calling thread run on every CPU the process may use (as remembered by
/// [`remember_process_cpus`]), whatever it inherited from the thread that started it.
fn unpin_current_thread() {
    if let Some(set) = PROCESS_CPUS.get() {
        // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 names the calling thread.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(set), set) };
    }
}

fn reaper() -> &'static Sender<Job> {
    static REAPER: OnceLock<Sender<Job>> = OnceLock::new();
    REAPER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("millrace-reaper".into())
            .spawn(move || {
                unpin_current_thread();
                for job in rx {
                    let waiting = WAITING.fetch_sub(1, Ordering::Relaxed) - 1;
                    finish(job, waiting < BACKLOG_FILES);
                }
            })
            .expect("starting the reaper thread");
        tx
    })
}

/// Closes a job's descriptor; if it was the last one of a deleted file, frees the file in
/// steps first (resting between them when `rest`).
fn finish(job: Job, rest: bool) {
    let last = job.inode.is_none_or(untrack);
    if last {
        cut_down(&job.fd, rest);
    }
    drop(job.fd);
}

/// Frees a deleted file's blocks [`STEP_BYTES`] at a time. Does nothing to a file that still
/// has a name. The descriptor may be read-only, so the cuts go through a writable descriptor
/// opened from /proc (which works for a deleted file).
fn cut_down(fd: &OwnedFd, rest: bool) {
    let Some((_, st)) = inode_of(fd) else { return };
    if st.st_nlink != 0 || (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
        return;
    }
    let mut len = st.st_size as u64;
    if len <= STEP_BYTES {
        return;
    }
    let Ok(writable) = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    else {
        return;
    };
    while len > STEP_BYTES {
        len = (len - 1) / STEP_BYTES * STEP_BYTES;
        let started = Instant::now();
        if writable.set_len(len).is_err() {
            return;
        }
        if rest {
            std::thread::sleep(started.elapsed().max(MIN_REST));
        }
    }
}

/// Closes `fd` (counted by [`track`] as `inode`) after `first` (a future that must finish
/// before, such as closing glommio's own descriptor of the same file) completes. Returns at
/// once. On a shard the close goes to the reaper thread; elsewhere (tests, tools) it happens
/// in place, without the stepwise freeing.
pub fn close_later(fd: OwnedFd, inode: Option<Inode>, first: impl Future<Output = ()> + 'static) {
    if !on_shard() {
        forget(inode);
        drop(fd);
        return;
    }
    crate::spawn_detached(async move {
        first.await;
        send(Job { fd, inode });
    });
}

fn send(job: Job) {
    WAITING.fetch_add(1, Ordering::Relaxed);
    let sent = reaper().send(job);
    if let Err(failed) = sent {
        // The reaper thread is gone (it only ends with the process): close here.
        WAITING.fetch_sub(1, Ordering::Relaxed);
        finish(failed.0, false);
    }
}

/// Unlinks a file so that its blocks are freed by the reaper, in steps, once the last
/// descriptor of it closes (the file is opened first, so the unlink itself frees nothing).
/// Runs on the helper thread; off a shard it is a plain unlink.
pub async fn remove_file(path: &Path) -> io::Result<()> {
    let path = path.to_path_buf();
    if !on_shard() {
        return std::fs::remove_file(path);
    }
    let held = off_shard(move || unlink_held(&path)).await?;
    if let Some(job) = held {
        send(job);
    }
    Ok(())
}

/// Opens `path` (if it is a regular file), unlinks it and returns the open descriptor.
fn unlink_held(path: &Path) -> io::Result<Option<Job>> {
    let held = std::fs::OpenOptions::new()
        .read(true)
        .open(path)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()));
    std::fs::remove_file(path)?;
    Ok(held.map(|file| {
        let fd = OwnedFd::from(file);
        let inode = track(&fd);
        Job { fd, inode }
    }))
}

/// Removes a directory tree; its files are freed as [`remove_file`] frees them.
pub async fn remove_dir_all(path: &Path) -> io::Result<()> {
    let path = path.to_path_buf();
    if !on_shard() {
        return std::fs::remove_dir_all(path);
    }
    let held = off_shard(move || {
        let mut held = Vec::new();
        unlink_tree(&path, &mut held)?;
        std::fs::remove_dir_all(&path)?;
        Ok(held)
    })
    .await?;
    for job in held {
        send(job);
    }
    Ok(())
}

fn unlink_tree(dir: &Path, held: &mut Vec<Job>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path: PathBuf = entry.path();
        if entry.file_type()?.is_dir() {
            unlink_tree(&path, held)?;
        } else if let Some(job) = unlink_held(&path)? {
            held.push(job);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn blocks(fd: &OwnedFd) -> i64 {
        inode_of(fd).unwrap().1.st_blocks
    }

    #[test]
    fn a_deleted_file_is_cut_down_only_by_its_last_descriptor() {
        let dir = std::env::temp_dir().join(format!("millrace-reap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seg.log");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&vec![7u8; 4 << 20]).unwrap();
        f.sync_all().unwrap();
        let reader = OwnedFd::from(std::fs::File::open(&path).unwrap());
        let writer = OwnedFd::from(f);
        let (r, w) = (track(&reader), track(&writer));
        assert_eq!(r, w, "two descriptors of one file share an inode");

        // A file that still has a name is never cut.
        let named = OwnedFd::from(std::fs::File::open(&path).unwrap());
        cut_down(&named, false);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4 << 20);

        std::fs::remove_file(&path).unwrap();
        // Not the last descriptor: the reader still sees every byte.
        finish(
            Job {
                fd: writer,
                inode: w,
            },
            false,
        );
        let mut buf = vec![0u8; 4 << 20];
        let n = nix_pread(&reader, &mut buf);
        assert_eq!(n, 4 << 20, "a reader of the deleted file lost bytes");
        assert!(blocks(&reader) > 0);

        // The last one: cut down to less than a step before the close frees the rest.
        let probe = OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .open(format!("/proc/self/fd/{}", reader.as_raw_fd()))
                .unwrap(),
        );
        finish(
            Job {
                fd: reader,
                inode: r,
            },
            false,
        );
        assert!(inode_of(&probe).unwrap().1.st_size as u64 <= STEP_BYTES);
        assert!(!open_counts().lock().unwrap().contains_key(&r.unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn nix_pread(fd: &OwnedFd, buf: &mut [u8]) -> usize {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::from(fd.try_clone().unwrap());
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], done as u64).unwrap() {
                0 => break,
                n => done += n,
            }
        }
        done
    }
}

#[cfg(test)]
mod placement_tests {
    /// How many CPUs the calling thread may run on.
    fn my_cpus() -> usize {
        let set = super::current_cpus().expect("sched_getaffinity");
        // SAFETY: `set` is a cpu_set_t the kernel filled.
        unsafe { libc::CPU_COUNT(&set) as usize }
    }

    #[test]
    fn helper_threads_are_not_pinned_beside_their_shard() {
        let all = my_cpus();
        let config = crate::ShardRuntimeConfig {
            shards: 1,
            io_memory_bytes: 1 << 20,
            ring_depth: 64,
            pin: true,
        };
        crate::run_shards(&config, move |_| async move {
            assert_eq!(my_cpus(), 1, "the shard itself is pinned");
            let helper = super::off_shard(|| Ok(my_cpus())).await?;
            assert_eq!(
                helper, all,
                "the helper thread runs on {helper} of {all} CPUs"
            );
            // What the reaper does first on its thread, tried on a thread the shard starts.
            let started = std::thread::spawn(|| {
                let inherited = my_cpus();
                super::unpin_current_thread();
                (inherited, my_cpus())
            })
            .join()
            .unwrap();
            assert_eq!(started, (1, all));
            Ok(())
        })
        .unwrap();
    }
}
