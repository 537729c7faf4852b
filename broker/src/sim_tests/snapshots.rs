//! Metadata snapshots under crashes: with a snapshot after every applied batch, each cutting
//! the metadata log below it (`metadata.max.retention.bytes=0`), the process is killed at a
//! seeded point of a start-up (registration, unfencing, their snapshot writes and log cuts are
//! in flight then) and the disk loses what was not synced. The next start must load the
//! newest intact snapshot (or the log) and hold the same metadata as before.

use super::*;
use millrace_replication::metadata::snapshot_file;
use millrace_replication::metadata::SnapshotStore;

fn snapshot_every_batch() -> Arc<Config> {
    Arc::new(Config {
        metadata_snapshot_bytes: 1,
        metadata_retention_bytes: 0,
        ..(*config()).clone()
    })
}

/// Snapshot ids in the metadata log's directory, as the next start sees them.
fn snapshot_files(disk: &SimDisk) -> usize {
    let dir = PathBuf::from("/sim").join(crate::metadata::boot::LOG_DIR);
    millrace_storage::disk::Disk::list_dir(disk, &dir)
        .unwrap_or_default()
        .iter()
        .filter(|n| snapshot_file::SnapshotId::parse(n).is_some())
        .count()
}

#[test]
fn a_crash_while_writing_metadata_snapshots_loses_no_metadata() {
    let seeds = std::env::var("MILLRACE_SIM_SEEDS").map_or(40, |n| n.parse().unwrap());
    let mut with_snapshots_at_crash = 0;
    let (mut inside_start, mut after_start) = (0, 0);
    for seed in 0..seeds {
        let disk = SimDisk::new(4096);
        disk.set_yield(true);
        let mut rng = SmallRng::seed_from_u64(seed);
        // Life 1: a fresh broker creates the test topic; snapshots follow every batch.
        let sim = Sim::new(seed);
        let shards = sim.block_on(boot_with(&disk, snapshot_every_batch()));
        let before = shards[0].image();
        let topic = before.cluster.topic(TOPIC).expect("created").clone();
        drop(shards);
        sim.crash();
        disk.crash(rng.random());
        // Life 2: killed somewhere inside its start-up.
        let sim = Rc::new(Sim::new(seed + 1_000));
        let turns: u32 = rng.random_range(0..400);
        let started = Rc::new(std::cell::Cell::new(false));
        {
            let (disk, started) = (disk.clone(), started.clone());
            sim.spawn(async move {
                let _shards = boot_with(&disk, snapshot_every_batch()).await;
                started.set(true);
                std::future::pending::<()>().await;
            })
            .detach();
        }
        let killer = sim.clone();
        sim.spawn(async move {
            for _ in 0..turns {
                millrace_shard::time::yield_if_needed().await;
            }
            killer.crash();
        })
        .detach();
        sim.run_for(Duration::from_secs(2));
        if started.get() {
            after_start += 1;
        } else {
            inside_start += 1;
        }
        sim.crash();
        disk.crash(rng.random());
        if snapshot_files(&disk) > 0 {
            with_snapshots_at_crash += 1;
        }
        // Life 3: the metadata is all there.
        let sim = Sim::new(seed + 2_000);
        let shards = sim.block_on(boot_with(&disk, snapshot_every_batch()));
        let after = shards[0].image();
        // The same topic; each start's re-registration moves leadership off and back, so
        // leader epochs only grow.
        let now = after.cluster.topic(TOPIC).unwrap_or_else(|| {
            panic!("seed {seed}: the topic is gone after a crash {turns} turns into a start")
        });
        assert_eq!(
            (now.id, now.partitions.len()),
            (topic.id, topic.partitions.len())
        );
        for (p, (a, b)) in now.partitions.iter().zip(&topic.partitions).enumerate() {
            assert_eq!(a.replicas, b.replicas, "seed {seed}: partition {p}");
            assert!(
                a.leader_epoch >= b.leader_epoch,
                "seed {seed}: partition {p}"
            );
        }
        assert!(
            after.cluster.last_applied_offset() >= before.cluster.last_applied_offset(),
            "seed {seed}: the image went back"
        );
        let store_ok = sim.block_on(async {
            let log = shards[0]
                .subsystems
                .get::<crate::controller::Controller>()
                .expect("started")
                .log_for_tests();
            let ids = log.store().snapshot_ids().expect("listed");
            let (latest, _) = snapshot_file::load_latest(log.store(), log.durable_end())
                .await
                .expect("read");
            let start = log.log_start_offset();
            let covered = latest.as_ref().is_some_and(|s| s.id().end_offset >= start);
            !ids.is_empty() && covered && start > 0
        });
        assert!(
            store_ok,
            "seed {seed}: after a start the log is not cut below a usable snapshot"
        );
        drop(shards);
        sim.crash();
    }
    assert!(
        with_snapshots_at_crash > 0 && inside_start > 0 && after_start > 0,
        "crashes with snapshots on disk {with_snapshots_at_crash}, inside a start \
         {inside_start}, after it {after_start}: the test must hit each"
    );
}

/// A CreateTopics for `name` (one partition).
async fn create(shard: &Rc<Shard>, name: &'static str) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = call(shard, ApiKey::CreateTopics, 5, &req).await;
    assert_eq!(resp.topics[0].error_code, 0, "CreateTopics {name}");
}

/// `metadata.log.max.snapshot.interval.ms`: with the byte trigger out of reach, a change
/// applied once the interval has passed is snapshotted; with the interval 0 (off), never.
#[test]
fn the_time_trigger_snapshots_a_change_after_the_interval_and_zero_turns_it_off() {
    for (interval_ms, expect) in [(1_000, true), (0, false)] {
        let disk = SimDisk::new(4096);
        let config = Arc::new(Config {
            metadata_snapshot_bytes: i64::MAX,
            metadata_snapshot_interval_ms: interval_ms,
            ..(*config()).clone()
        });
        let sim = Sim::new(3);
        let shards = sim.block_on(boot_with(&disk, config));
        assert_eq!(snapshot_files(&disk), 0, "nothing due at start");
        sim.block_on(create(&shards[0], "before-the-interval"));
        assert_eq!(snapshot_files(&disk), 0, "the interval has not passed");
        sim.run_for(Duration::from_millis(1_500));
        sim.block_on(create(&shards[0], "after-the-interval"));
        assert_eq!(
            snapshot_files(&disk) > 0,
            expect,
            "interval {interval_ms} ms"
        );
        drop(shards);
        sim.crash();
    }
}
