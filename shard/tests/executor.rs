//! The facade on its production backend: glommio executors, one thread per shard. The same
//! calls as the simulation tests, with no `Sim` installed.

use millrace_shard::mesh::MeshSpec;
use millrace_shard::time::{now_ms, sleep, timeout};
use millrace_shard::{run_shards, ShardRuntimeConfig};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn tasks_timers_and_the_mesh_run_on_glommio() {
    let config = ShardRuntimeConfig {
        shards: 2,
        io_memory_bytes: 512 << 10,
        ring_depth: 64,
        pin: false,
    };
    let mesh = MeshSpec::<u64>::new(2, 4);
    run_shards(&config, move |_| shard_main(mesh.clone())).unwrap();
}

async fn shard_main(mesh: MeshSpec<u64>) -> std::io::Result<()> {
    let mut mesh = mesh.join().await?;
    let me = mesh.shard_id();
    assert_eq!(mesh.shards(), 2);
    let (peer, inbox) = mesh.take_inboxes().pop().expect("one peer");
    assert_eq!(peer, 1 - me);

    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now_ms() - wall).abs() < 1_000,
        "now_ms is the real clock here"
    );

    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let cancelled = millrace_shard::spawn(async move {
        sleep(Duration::from_millis(20)).await;
        r.set(true);
    });
    let answer = millrace_shard::spawn(async { 6 * 7 });
    assert_eq!(answer.await, 42);
    drop(cancelled);
    let start = std::time::Instant::now();
    let late = timeout(Duration::from_millis(5), sleep(Duration::from_secs(10))).await;
    assert_eq!(late, None);
    assert!(start.elapsed() < Duration::from_secs(5));
    sleep(Duration::from_millis(40)).await;
    assert!(!ran.get(), "a dropped task ran on");

    // Beyond the channel's capacity of 4: the sender waits for the peer's reads.
    let sender = millrace_shard::spawn(async move {
        for k in 0..20 {
            mesh.send_to(1 - me, k).await.unwrap();
        }
        mesh
    });
    for k in 0..20 {
        assert_eq!(inbox.recv().await, Some(k));
    }
    let mesh = sender.await;
    mesh.close();
    assert_eq!(inbox.recv().await, None, "the peer closed");
    Ok(())
}

/// A wake rung from a plain thread completes the shard's wait; a wait with no ring stays
/// pending; a dropped sender ends the wait with an error instead of completing it forever.
#[test]
fn a_wake_from_another_thread_reaches_the_shard() {
    let config = ShardRuntimeConfig {
        shards: 1,
        io_memory_bytes: 512 << 10,
        ring_depth: 64,
        pin: false,
    };
    run_shards(&config, |_| async {
        let (sender, mut receiver) = millrace_shard::net::cross_thread_wake()?;
        let quiet = timeout(Duration::from_millis(50), receiver.wait()).await;
        assert!(quiet.is_none(), "no ring, no wake");
        let ringer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            sender.wake();
            sender
        });
        let rung = timeout(Duration::from_secs(10), receiver.wait()).await;
        assert!(matches!(rung, Some(Ok(()))), "the ring arrives: {rung:?}");
        let sender = ringer.join().unwrap();
        // Rings while nobody waits are kept, many at once are fine.
        sender.wake();
        sender.wake();
        assert!(matches!(receiver.wait().await, Ok(())));
        drop(sender);
        assert!(
            matches!(receiver.wait().await, Ok(())),
            "the second ring was kept"
        );
        let gone = timeout(Duration::from_secs(10), receiver.wait()).await;
        assert_eq!(
            gone.map(|r| r.map_err(|e| e.kind())),
            Some(Err(std::io::ErrorKind::UnexpectedEof))
        );
        Ok(())
    })
    .unwrap();
}
