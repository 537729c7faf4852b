//! How much foreground work this process has sent to the device: the signal the compaction
//! cleaner slows down on.
//!
//! A produce's group-commit round makes several device requests one after another (the data
//! write, then the sync, which on ext4 writes the inode and flushes the device cache), and
//! every produce on the round waits for all of them; a fetch the batch cache cannot serve
//! reads segment files. Each cleaner request on the device can sit ahead of one of those. The
//! broker's cleaner budget reads [`foreground_io_started`] and uses its lower, busy rate while
//! the count keeps moving. The count is process-wide rather than per log or shard because the
//! shards' logs share the device.

use std::sync::atomic::{AtomicU64, Ordering};

static STARTED: AtomicU64 = AtomicU64::new(0);

/// Flush rounds plus reads from segment files started in this process so far, by any log.
pub fn foreground_io_started() -> u64 {
    STARTED.load(Ordering::Relaxed)
}

/// Counts a flush round, or a read past the batch cache, about to make device requests.
pub(crate) fn io_started() {
    STARTED.fetch_add(1, Ordering::Relaxed);
}
