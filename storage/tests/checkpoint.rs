//! The replication checkpoint storage keeps for the partition replica: opaque bytes, written
//! atomically and durably, read back after a reopen and after a crash; a damaged file reads as
//! missing, never as other bytes.

mod common;

use futures_lite::future::block_on;
use millrace_storage::sim::SimDisk;
use millrace_storage::{LogConfig, REPLICATION_CHECKPOINT};

#[test]
fn the_checkpoint_survives_reopen_and_crash_and_a_damaged_one_reads_as_missing() {
    let disk = SimDisk::new(4096);
    let config = LogConfig::default();
    let log = common::open(&disk, &config, 1 << 20, 0);
    assert_eq!(block_on(log.read_replication_checkpoint()).unwrap(), None);
    block_on(log.write_replication_checkpoint(b"hw=41")).unwrap();
    block_on(log.write_replication_checkpoint(b"hw=42")).unwrap();
    drop(log);
    disk.crash(7);
    let log = common::open(&disk, &config, 1 << 20, 0);
    assert_eq!(
        block_on(log.read_replication_checkpoint()).unwrap(),
        Some(b"hw=42".to_vec()),
        "a written checkpoint is durable"
    );
    let path = common::dir().join(REPLICATION_CHECKPOINT);
    let mut bytes = disk.file_bytes(&path).expect("the checkpoint file exists");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    disk.put_file(&path, &bytes);
    assert_eq!(block_on(log.read_replication_checkpoint()).unwrap(), None);
}
