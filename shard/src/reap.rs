//! Closing descriptors and removing files off the shard's thread.
//!
//! When the last descriptor of an unlinked file closes (or an unlink drops a file nobody has
//! open), the kernel frees the file's blocks right there, in the calling thread. On ext4
//! mounted with `discard` that includes waiting for the device to discard them: one to fifteen
//! milliseconds per 8 MiB segment on this project's virtio disks, measured with
//! `perf record -e sched:sched_switch -g` while the compaction cleaner swapped segments in
//! (stacks ending in `ext4_evict_inode` .. `blkdev_issue_discard`). On a shard's thread that
//! stalls every request of every partition the shard owns, so the descriptors that can be the
//! last one of a deleted file (segment files, the sendfile cache's descriptors) and the unlinks
//! of segment files go to the executor's blocking helper thread instead. Renames stay inline:
//! a rename over a segment that is still open frees nothing until its last descriptor closes. Apache
//! Kafka avoids the same cost by deleting segments later from a scheduler thread.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;

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

/// Closes `fd` on the executor's helper thread, after `first` (a future that must finish
/// before, such as closing glommio's own descriptor of the same file) completes. Returns at
/// once; off a shard's thread it closes in place.
pub fn close_later(fd: OwnedFd, first: impl Future<Output = ()> + 'static) {
    if !on_shard() {
        drop(fd);
        return;
    }
    crate::spawn_detached(async move {
        first.await;
        let _ = off_shard(move || {
            drop(fd);
            Ok(())
        })
        .await;
    });
}
