//! How many foreground flush rounds this process has started: the signal the compaction
//! cleaner slows down on.
//!
//! A produce's group-commit round makes several device requests one after another (the data
//! write, then the sync, which on ext4 writes the inode and flushes the device cache), and
//! every produce on the round waits for all of them. Each cleaner request on the device can
//! sit ahead of one of them. The broker's cleaner budget reads [`foreground_rounds_started`]
//! and uses its lower, busy rate while the count keeps moving. The count is process-wide
//! rather than per log or shard because the shards' logs share the device.

use std::sync::atomic::{AtomicU64, Ordering};

static STARTED: AtomicU64 = AtomicU64::new(0);

/// Flush rounds started in this process so far, by any log.
pub fn foreground_rounds_started() -> u64 {
    STARTED.load(Ordering::Relaxed)
}

/// Counts a round that is about to make device requests.
pub(crate) fn round_started() {
    STARTED.fetch_add(1, Ordering::Relaxed);
}
