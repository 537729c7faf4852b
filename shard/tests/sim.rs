//! The deterministic simulation behind the runtime facade: the broker's calls
//! (`millrace_shard::spawn*`, `Task`, `time::*`, `mesh`, `sync`) run on a seeded scheduler and a
//! virtual clock when a `Sim` is installed.

use millrace_shard::mesh::{Inbox, Mesh};
use millrace_shard::sim::{Deadlock, Sim, SIM_EPOCH_MS};
use millrace_shard::sync::{oneshot, ByteBudget, LocalQueue, Notify, Turn};
use millrace_shard::time::{now_ms, sleep, timeout, yield_if_needed};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

type Trace = Rc<RefCell<Vec<String>>>;

fn note(trace: &Trace, event: String) {
    trace
        .borrow_mut()
        .push(format!("{} {event}", now_ms() - SIM_EPOCH_MS));
}

/// Workers that yield and sleep, and three shards sending over a small mesh: enough choice
/// points for schedules to differ between seeds.
fn busy_program(seed: u64) -> (Vec<String>, u64) {
    let sim = Sim::new(seed);
    let trace: Trace = Rc::default();
    let t = trace.clone();
    sim.block_on(async move {
        let mut meshes = Mesh::<u32>::local_full(3, 2);
        let mut tasks = Vec::new();
        for (shard, mesh) in meshes.iter_mut().enumerate() {
            for (peer, inbox) in mesh.take_inboxes() {
                tasks.push(millrace_shard::spawn(receive_all(
                    t.clone(),
                    shard,
                    peer,
                    inbox,
                )));
            }
        }
        for (shard, mesh) in meshes.into_iter().enumerate() {
            let t = t.clone();
            tasks.push(millrace_shard::spawn(async move {
                for k in 0..4u32 {
                    let to = (shard + 1 + k as usize % 2) % 3;
                    mesh.send_to(to, k).await.unwrap();
                    note(&t, format!("s{shard} sent {k} to {to}"));
                    yield_if_needed().await;
                }
                mesh.close();
            }));
        }
        for w in 0..4u64 {
            let t = t.clone();
            tasks.push(millrace_shard::spawn(async move {
                for k in 0..3 {
                    note(&t, format!("w{w} step {k}"));
                    if k % 2 == 0 {
                        yield_if_needed().await;
                    } else {
                        sleep(Duration::from_millis(w % 2 + 1)).await;
                    }
                }
            }));
        }
        for task in tasks {
            task.await;
        }
    });
    let events = trace.borrow().clone();
    (events, sim.digest())
}

async fn receive_all(trace: Trace, shard: usize, peer: usize, inbox: Inbox<u32>) {
    while let Some(k) = inbox.recv().await {
        note(&trace, format!("s{shard} got {k} from {peer}"));
    }
    note(&trace, format!("s{shard} inbox from {peer} ended"));
}

#[test]
fn the_same_seed_replays_the_same_trace_and_other_seeds_explore_others() {
    let (first, digest) = busy_program(7);
    assert_eq!(
        first.len(),
        3 * 4 * 2 + 6 + 4 * 3,
        "every event happened: {first:?}"
    );
    for _ in 0..3 {
        assert_eq!(
            busy_program(7),
            (first.clone(), digest),
            "seed 7 did not replay"
        );
    }
    let traces: BTreeSet<Vec<String>> = (0..8).map(|seed| busy_program(seed).0).collect();
    assert!(
        traces.len() >= 3,
        "8 seeds gave only {} interleavings",
        traces.len()
    );
}

#[test]
fn timers_fire_in_virtual_time_order_and_the_clock_only_jumps() {
    let sim = Sim::new(1);
    let real_start = std::time::Instant::now();
    let fired: Rc<RefCell<Vec<(u64, i64)>>> = Rc::default();
    for ms in [50u64, 10, 3_600_000, 30, 10, 0] {
        let fired = fired.clone();
        sim.spawn(async move {
            let before = now_ms();
            sleep(Duration::from_millis(ms)).await;
            fired.borrow_mut().push((ms, now_ms() - before));
        })
        .detach();
    }
    sim.run_for(Duration::from_secs(2));
    let got = fired.borrow().clone();
    assert_eq!(
        got.iter().map(|f| f.0).collect::<Vec<_>>(),
        [0, 10, 10, 30, 50],
        "timers fire in deadline order; the hour-long one is still pending"
    );
    for (ms, slept) in &got {
        assert_eq!(*slept, *ms as i64, "a timer woke exactly at its deadline");
    }
    assert_eq!(
        sim.elapsed(),
        Duration::from_secs(2),
        "run_for ends at its end"
    );
    assert_eq!(sim.now_ms(), SIM_EPOCH_MS + 2_000);
    assert_eq!(sim.tasks(), 1, "the hour-long sleeper is alive");
    sim.run_for(Duration::from_secs(3_600));
    assert_eq!(fired.borrow().last(), Some(&(3_600_000, 3_600_000)));
    assert!(
        real_start.elapsed() < Duration::from_secs(5),
        "an hour of virtual time took {:?} of real time",
        real_start.elapsed()
    );
}

#[test]
fn time_stands_still_while_tasks_run() {
    let sim = Sim::starting_at_ms(3, SIM_EPOCH_MS + 12_345);
    let (before, after, instant) = sim.block_on(async {
        let before = now_ms();
        let instant = millrace_shard::time::Instant::now();
        for _ in 0..1000 {
            yield_if_needed().await;
        }
        std::thread::sleep(Duration::from_millis(5));
        (before, now_ms(), instant.elapsed())
    });
    assert_eq!(before, SIM_EPOCH_MS + 12_345);
    assert_eq!(
        after, before,
        "yields and real sleeps do not move the virtual clock"
    );
    assert_eq!(
        instant,
        Duration::ZERO,
        "the monotonic clock is virtual too"
    );
    let waited = sim.block_on(async {
        let start = millrace_shard::time::Instant::now();
        sleep(Duration::from_micros(1_500)).await;
        start.elapsed()
    });
    assert_eq!(waited, Duration::from_micros(1_500));
}

#[test]
fn timeout_returns_none_when_the_timer_wins() {
    let sim = Sim::new(2);
    let lost = sim.block_on(timeout(
        Duration::from_millis(10),
        sleep(Duration::from_millis(20)),
    ));
    assert_eq!(lost, None);
    assert_eq!(sim.elapsed(), Duration::from_millis(10));
    let won = sim.block_on(timeout(Duration::from_secs(3_600), async {
        sleep(Duration::from_millis(5)).await;
        7
    }));
    assert_eq!(won, Some(7));
    assert_eq!(sim.elapsed(), Duration::from_millis(15));
    // The hour-long timer that lost was removed with its future: nothing is left to wait for.
    let (_tx, rx) = oneshot::<()>();
    let stalled = sim.try_block_on(rx).unwrap_err();
    assert_eq!(
        stalled.at_ms,
        SIM_EPOCH_MS + 15,
        "the clock jumped to a dead timer"
    );
}

struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn dropping_a_task_cancels_it_and_detaching_lets_it_run() {
    let sim = Sim::new(4);
    let ran = Rc::new(Cell::new(0));
    let dropped = Rc::new(Cell::new(false));
    let (r, d) = (ran.clone(), dropped.clone());
    let outcome = sim.block_on(async move {
        let guard = DropFlag(d);
        let r2 = r.clone();
        let cancelled = millrace_shard::spawn(async move {
            let _guard = guard;
            sleep(Duration::from_millis(10)).await;
            r.set(r.get() + 100);
        });
        millrace_shard::spawn(async move {
            sleep(Duration::from_millis(10)).await;
            r2.set(r2.get() + 1);
        })
        .detach();
        let finished = millrace_shard::spawn(async { 5 });
        sleep(Duration::from_millis(1)).await;
        drop(cancelled);
        let output = finished.cancel().await;
        sleep(Duration::from_millis(20)).await;
        output
    });
    assert!(dropped.get(), "the cancelled task's future was dropped");
    assert_eq!(
        ran.get(),
        1,
        "the cancelled task never finished; the detached one did"
    );
    assert_eq!(
        outcome,
        Some(5),
        "cancel returns the output of a finished task"
    );
    assert_eq!(sim.tasks(), 0);
}

#[test]
fn notify_and_oneshot_wake_tasks_under_the_sim() {
    for seed in 0..4 {
        let sim = Sim::new(seed);
        let woke = sim.block_on(async {
            let notify = Rc::new(Notify::new());
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let notify = notify.clone();
                    let seen = notify.generation();
                    millrace_shard::spawn(async move {
                        notify.changed_since(seen).await;
                        now_ms() - SIM_EPOCH_MS
                    })
                })
                .collect();
            let (tx, rx) = oneshot();
            let (dropped_tx, dropped_rx) = oneshot::<u8>();
            millrace_shard::spawn_detached(async move {
                sleep(Duration::from_millis(5)).await;
                notify.notify_all();
                tx.send("done");
                drop(dropped_tx);
            });
            let mut woke = Vec::new();
            for w in waiters {
                woke.push(w.await);
            }
            assert_eq!(rx.await, Some("done"));
            assert_eq!(dropped_rx.await, None);
            woke
        });
        assert_eq!(woke, [5, 5, 5], "seed {seed}");
    }
}

#[test]
fn turn_and_local_queue_keep_their_bounds_under_every_seed() {
    for seed in 0..8 {
        let sim = Sim::new(seed);
        let (held_max, popped, depth_max) = sim.block_on(async {
            let turn = Rc::new(Turn::new());
            let holders = Rc::new(Cell::new(0));
            let held_max = Rc::new(Cell::new(0));
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let (turn, holders, held_max) = (turn.clone(), holders.clone(), held_max.clone());
                tasks.push(millrace_shard::spawn(async move {
                    let _guard = turn.lock().await;
                    holders.set(holders.get() + 1);
                    held_max.set(held_max.get().max(holders.get()));
                    sleep(Duration::from_millis(1)).await;
                    holders.set(holders.get() - 1);
                }));
            }
            let queue = Rc::new(LocalQueue::new(2));
            let depth = Rc::new(Cell::new(0i32));
            let depth_max = Rc::new(Cell::new(0));
            let (q, d, m) = (queue.clone(), depth.clone(), depth_max.clone());
            let producer = millrace_shard::spawn(async move {
                for i in 0..10 {
                    q.push(i).await.unwrap();
                    d.set(d.get() + 1);
                    m.set(m.get().max(d.get()));
                    yield_if_needed().await;
                }
                q.close();
            });
            let mut popped = Vec::new();
            while let Some(i) = queue.pop().await {
                depth.set(depth.get() - 1);
                popped.push(i);
                sleep(Duration::from_micros(100)).await;
            }
            producer.await;
            for t in tasks {
                t.await;
            }
            (held_max.get(), popped, depth_max.get())
        });
        assert_eq!(held_max, 1, "seed {seed}: two tasks held the turn");
        assert_eq!(popped, (0..10).collect::<Vec<_>>(), "seed {seed}");
        assert!(depth_max <= 2, "seed {seed}: queue of 2 held {depth_max}");
    }
}

#[test]
fn the_local_mesh_pushes_back_at_capacity() {
    let sim = Sim::new(5);
    let sent = Rc::new(Cell::new(0));
    let mut meshes = Mesh::<u32>::local_full(2, 3);
    let mut one = meshes.pop().unwrap();
    let zero = Rc::new(meshes.pop().unwrap());
    assert_eq!((zero.shard_id(), one.shard_id(), one.shards()), (0, 1, 2));
    let (z, s) = (zero.clone(), sent.clone());
    sim.spawn(async move {
        for k in 0..10 {
            z.send_to(1, k).await.unwrap();
            s.set(s.get() + 1);
        }
    })
    .detach();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sent.get(), 3, "the sender went past a full inbox");
    let inboxes = one.take_inboxes();
    assert_eq!(inboxes.len(), 1);
    assert!(one.take_inboxes().is_empty(), "inboxes are taken once");
    let (peer, inbox) = inboxes.into_iter().next().unwrap();
    assert_eq!(peer, 0);
    let got = sim.block_on(async {
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(inbox.recv().await.unwrap());
        }
        got
    });
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    let z = zero.clone();
    let refused = sim.block_on(async move {
        (
            z.send_to(0, 1).await.is_err(),
            z.send_to(2, 1).await.is_err(),
        )
    });
    assert_eq!(refused, (true, true), "sends to self and out of range fail");
    drop(inbox);
    let z = zero.clone();
    assert!(
        sim.block_on(async move { z.send_to(1, 1).await }).is_err(),
        "a send to a dropped inbox fails"
    );
    let mut zero = Rc::try_unwrap(zero)
        .ok()
        .expect("the senders' clones are gone");
    let (_, back) = zero.take_inboxes().pop().unwrap();
    sim.block_on(async move {
        one.send_to(0, 42).await.unwrap();
        one.close();
        assert_eq!(
            back.recv().await,
            Some(42),
            "messages sent before close arrive"
        );
        assert_eq!(
            back.recv().await,
            None,
            "the inbox ends after its sender closed"
        );
        assert!(
            one.send_to(0, 43).await.is_err(),
            "a closed mesh does not send"
        );
    });
}

#[test]
fn a_deadlock_is_reported_with_its_seed_and_time() {
    let sim = Sim::new(6);
    let (_tx, rx) = oneshot::<()>();
    let notify = Rc::new(Notify::new());
    let n = notify.clone();
    sim.spawn(async move { n.changed_since(n.generation()).await })
        .detach();
    let err = sim
        .try_block_on(async {
            sleep(Duration::from_millis(3)).await;
            rx.await
        })
        .unwrap_err();
    assert_eq!(
        err,
        Deadlock {
            seed: 6,
            at_ms: SIM_EPOCH_MS + 3,
            tasks: 1
        }
    );
    assert!(err.to_string().contains("deadlock"), "{err}");
}

#[test]
#[should_panic(expected = "simulation deadlock at virtual time")]
fn block_on_panics_on_a_deadlock() {
    let sim = Sim::new(7);
    let (_tx, rx) = oneshot::<()>();
    sim.block_on(rx);
}

/// A shard-like program: a ticker, a worker holding a task handle, two shards on a mesh.
fn start_program(ticks: Rc<Cell<u32>>, dropped: Rc<Cell<u32>>) {
    millrace_shard::spawn_detached(async move {
        loop {
            sleep(Duration::from_millis(10)).await;
            ticks.set(ticks.get() + 1);
        }
    });
    let mut meshes = Mesh::<u32>::local_full(2, 1);
    for mesh in &mut meshes {
        for (_, inbox) in mesh.take_inboxes() {
            let guard = DropCount(dropped.clone());
            millrace_shard::spawn_detached(async move {
                let _guard = guard;
                while inbox.recv().await.is_some() {}
            });
        }
    }
    let guard = DropCount(dropped);
    millrace_shard::spawn_detached(async move {
        let _guard = guard;
        let child = millrace_shard::spawn(sleep(Duration::from_secs(3_600)));
        for (k, mesh) in meshes.iter().enumerate() {
            mesh.send_to(1 - k, 1).await.unwrap();
        }
        child.await;
    });
}

struct DropCount(Rc<Cell<u32>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn a_crash_drops_every_task_and_the_sim_runs_the_restarted_program() {
    let sim = Sim::new(8);
    let ticks = Rc::new(Cell::new(0));
    let dropped = Rc::new(Cell::new(0));
    sim.enter(|| start_program(ticks.clone(), dropped.clone()));
    let cleanups = Rc::new(Cell::new(0));
    let guard = SpawnsOnDrop(cleanups.clone());
    sim.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    })
    .detach();
    sim.run_for(Duration::from_millis(105));
    assert_eq!(ticks.get(), 10);
    assert!(sim.tasks() >= 4, "{} tasks", sim.tasks());
    sim.crash();
    assert_eq!(sim.tasks(), 0, "a destructor's spawn outlived the crash");
    assert_eq!(cleanups.get(), 0);
    assert_eq!(dropped.get(), 3, "every task's future was dropped");
    sim.run_for(Duration::from_secs(10));
    assert_eq!(ticks.get(), 10, "nothing ran after the crash");
    let crashed_at = sim.now_ms();

    let restarted = Rc::new(Cell::new(0));
    sim.enter(|| start_program(restarted.clone(), Rc::default()));
    sim.run_for(Duration::from_millis(50));
    assert_eq!(restarted.get(), 5, "the restarted program runs");
    assert_eq!(sim.now_ms(), crashed_at + 50, "the clock carried on");
    assert_eq!(ticks.get(), 10);
}

#[test]
fn background_tasks_run_when_the_foreground_is_busy_or_idle() {
    for seed in 0..4 {
        let sim = Sim::new(seed);
        let background = Rc::new(Cell::new(0));
        let b = background.clone();
        let foreground_steps = sim.block_on(async move {
            millrace_shard::spawn_background("cleaner", async move {
                loop {
                    b.set(b.get() + 1);
                    yield_if_needed().await;
                }
            })
            .unwrap();
            let mut steps = 0;
            while steps < 1_000 {
                steps += 1;
                yield_if_needed().await;
            }
            steps
        });
        let seen = background.get();
        assert_eq!(foreground_steps, 1_000);
        assert!(
            (1..500).contains(&seen),
            "seed {seed}: background ran {seen} times beside 1000 foreground steps"
        );
        // It only yields, so no run would ever end with it alive: stop it.
        sim.crash();
    }
}

/// Spawns a clean-up task when dropped, as a destructor might.
struct SpawnsOnDrop(Rc<Cell<u32>>);

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let ran = self.0.clone();
        millrace_shard::spawn_detached(async move { ran.set(ran.get() + 1) });
    }
}

#[test]
fn a_crash_from_inside_a_task_stops_everything_and_runs_no_clean_up() {
    let sim = Sim::new(9);
    let cleanups = Rc::new(Cell::new(0));
    let after = Rc::new(Cell::new(false));
    let ticks = Rc::new(Cell::new(0));
    let (c, a, t) = (cleanups.clone(), after.clone(), ticks.clone());
    sim.enter(|| {
        millrace_shard::spawn_detached(async move {
            let _guard = SpawnsOnDrop(c);
            loop {
                sleep(Duration::from_millis(1)).await;
                t.set(t.get() + 1);
            }
        });
    });
    let sim = Rc::new(sim);
    let s = sim.clone();
    sim.spawn(async move {
        sleep(Duration::from_micros(5_500)).await;
        s.crash();
        a.set(true); // the rest of this poll still runs, as a process's last instructions
        sleep(Duration::ZERO).await;
        yield_if_needed().await;
        unreachable!("polled after the crash");
    })
    .detach();
    sim.run_for(Duration::from_millis(20));
    assert_eq!(ticks.get(), 5);
    assert!(after.get());
    assert_eq!(
        cleanups.get(),
        0,
        "a task spawned by a destructor during a crash ran"
    );
    assert_eq!(sim.tasks(), 0);
}

#[test]
#[should_panic(expected = "simulation livelock at virtual time")]
fn a_livelock_is_reported_not_hung() {
    let sim = Sim::new(10);
    sim.set_livelock_polls(10_000);
    sim.spawn(async {
        loop {
            yield_if_needed().await;
        }
    })
    .detach();
    sim.run_for(Duration::from_millis(1));
}

/// A simulation has no sockets: `net::connect` says so instead of reaching for glommio's
/// reactor (which is not there) or waiting forever.
#[test]
fn connect_under_a_simulation_is_unsupported() {
    let sim = Sim::new(7);
    let result = sim.block_on(millrace_shard::net::connect(
        "127.0.0.1:9".parse().unwrap(),
        Duration::from_secs(1),
    ));
    assert_eq!(
        result.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::Unsupported)
    );
}

#[test]
fn a_byte_budget_lets_requests_in_until_it_is_used_up_and_one_bigger_than_it_still_passes() {
    let sim = Sim::new(7);
    let log = sim.block_on(async {
        let budget = ByteBudget::new(100);
        let log: Trace = Rc::default();
        // 60 + 60: the second is let in because 60 < 100, and takes the total to 120.
        let first = budget.take(60).await;
        let second = budget.take(60).await;
        assert_eq!(budget.used(), 120);
        // Used up: the next two wait, whatever their size.
        let waiting: Vec<_> = [("big", 500), ("other", 300)]
            .into_iter()
            .map(|(name, bytes)| {
                let (budget, log) = (budget.clone(), log.clone());
                millrace_shard::spawn(async move {
                    let permit = budget.take(bytes).await;
                    note(&log, format!("{name} in at {}", budget.used()));
                    sleep(Duration::from_millis(10)).await;
                    drop(permit);
                })
            })
            .collect();
        sleep(Duration::from_millis(5)).await;
        assert!(
            log.borrow().is_empty(),
            "let in while the budget was used up"
        );
        drop(first);
        // 60 < 100 again: the first waiter in takes it over again (to 560 or 360), the other
        // waits on.
        sleep(Duration::from_millis(1)).await;
        assert_eq!(log.borrow().len(), 1);
        drop(second);
        for task in waiting {
            task.await;
        }
        assert_eq!(budget.used(), 0);
        let out = log.borrow().clone();
        out
    });
    assert_eq!(log.len(), 2);
    assert!(
        log[0].ends_with("in at 560") || log[0].ends_with("in at 360"),
        "{log:?}"
    );
}
