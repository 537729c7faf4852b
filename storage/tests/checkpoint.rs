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

#[test]
fn a_sealed_file_survives_reopen_and_crash_and_a_damaged_one_is_an_error() {
    let disk = SimDisk::new(4096);
    let config = LogConfig::default();
    let log = common::open(&disk, &config, 1 << 20, 0);
    let read = |log: &millrace_storage::PartitionLog<SimDisk>| {
        block_on(log.read_sealed_file("quorum-state", b"TEST", 1))
    };
    assert_eq!(read(&log).unwrap(), None);
    block_on(log.write_sealed_file("quorum-state", b"TEST", 1, b"term=3")).unwrap();
    drop(log);
    disk.crash(3);
    let log = common::open(&disk, &config, 1 << 20, 0);
    assert_eq!(read(&log).unwrap(), Some(b"term=3".to_vec()));
    assert!(
        block_on(log.read_sealed_file("quorum-state", b"TEST", 2)).is_err(),
        "another version is not this file"
    );
    let path = common::dir().join("quorum-state");
    let mut bytes = disk.file_bytes(&path).expect("the file exists");
    bytes[12] ^= 1;
    disk.put_file(&path, &bytes);
    assert!(matches!(
        read(&log),
        Err(millrace_storage::StorageError::Corrupt { .. })
    ));
}

#[test]
#[should_panic(expected = "not a name the replication layer may own")]
fn a_sealed_file_may_not_take_a_name_storage_owns() {
    let disk = SimDisk::new(4096);
    let log = common::open(&disk, &LogConfig::default(), 1 << 20, 0);
    let _ = block_on(log.write_sealed_file("leader-epoch-checkpoint", b"TEST", 1, b""));
}
