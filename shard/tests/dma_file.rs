//! The device file's ordering promise (storage's `DiskFile` contract) on a real direct-I/O
//! file: zeroes started ahead of the data, and a write whose future was dropped, land before
//! the writes started after them.

use millrace_shard::disk::{DmaDisk, DmaDiskFile};
use millrace_shard::{run_shards, ShardRuntimeConfig};
use millrace_storage::disk::{Disk, DiskFile};
use std::future::Future;
use std::io;
use std::path::PathBuf;

/// Runs `test` on one shard with a new device file in a directory of its own named `name`,
/// and closes the file after it.
fn with_new_file<Fut>(name: &str, test: fn(DmaDiskFile, PathBuf) -> Fut)
where
    Fut: Future<Output = io::Result<DmaDiskFile>> + 'static,
{
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = ShardRuntimeConfig {
        shards: 1,
        io_memory_bytes: 512 << 10,
        ring_depth: 64,
        pin: false,
    };
    run_shards(&config, move |_| {
        let dir = dir.clone();
        async move {
            DmaDisk::probe_device(&dir, 0).await?;
            let path = dir.join("f");
            let file = DmaDisk.open(&path, true).await?;
            test(file, path).await?.close().await
        }
    })
    .unwrap();
}

#[test]
fn writes_started_after_zeroes_land_after_them() {
    with_new_file("zeroes_then_data", |file, path| async move {
        let align = file.alignment();
        let step = 2u64 << 20;
        assert!(file.start_zeroes(0, step), "nothing else of the file runs");
        // The zeroes are still being written: a second step is declined, not queued.
        assert!(!file.start_zeroes(step, step));
        // Not waited for: this write of the zeroed range must land after the zeroes.
        file.write_at(align as u64, &vec![7u8; align]).await?;
        file.sync_data().await?;
        let back = file.read_at(0, 2 * align).await?;
        assert!(back[..align].iter().all(|&b| b == 0));
        assert!(
            back[align..].iter().all(|&b| b == 7),
            "zeroes landed over data written after them"
        );
        assert_eq!(std::fs::metadata(&path)?.len(), step);
        Ok(file)
    });
}

#[test]
fn a_dropped_write_lands_before_the_next_one() {
    with_new_file("dropped_write", |file, _| async move {
        let align = file.alignment();
        for round in 0..20u8 {
            let old = vec![round.wrapping_mul(2).wrapping_add(1); 64 * align];
            let new = vec![round.wrapping_mul(2).wrapping_add(2); 64 * align];
            let dropped = file.write_at(0, &old);
            futures_lite::future::poll_once(Box::pin(dropped)).await;
            file.write_at(0, &new).await?;
            file.sync_data().await?;
            let back = file.read_at(0, new.len()).await?;
            assert!(back == new, "round {round}: an older write landed last");
        }
        Ok(file)
    });
}
