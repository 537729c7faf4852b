//! Running a workload on the bench's own executors and collecting its windows.
//!
//! ```text
//!  main thread                      executor 0..E (pinned, one thread each)
//!  ───────────                      ───────────────────────────────────────
//!  plan ──(specs, cloned)──────────► producers i ≡ e (mod E), consumers j ≡ e (mod E)
//!                                   ticker: every second, hand the window over
//!  merge windows by second ◄─mpsc── Window{second, counts, histograms}
//!  print a line per second
//! ```
//!
//! Executors share nothing but a few atomic totals ([`Shared`]) that tell e2e consumers when
//! they have seen everything the producers had acknowledged.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use millrace_shard::ShardRuntimeConfig;

use crate::consumer::{self, ConsumerSpec};
use crate::producer::{self, ProducerSpec};
use crate::stats::Window;
use crate::BenchError;

/// The run's time base: ns since one start instant, shared by every executor (and carried in
/// each record's value, so e2e latency needs no clock agreement between hosts' wall clocks:
/// producer and consumer are this one process).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    wall_start_ms: i64,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Clock {
            start: Instant::now(),
            wall_start_ms: millrace_shard::time::now_ms(),
        }
    }

    /// ns since the start.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Wall-clock ms (Kafka timestamps) at `ns` since the start.
    pub fn wall_ms(&self, ns: u64) -> i64 {
        self.wall_start_ms + (ns / 1_000_000) as i64
    }
}

/// Totals every executor updates (relaxed atomics; read for stop conditions only).
#[derive(Debug, Default)]
pub struct Shared {
    /// Records acknowledged by the broker (acks=0: written), warm-up included.
    pub acked_records: AtomicU64,
    /// Records whose produce failed.
    pub produce_errors: AtomicU64,
    /// Records consumed, warm-up included.
    pub consumed_records: AtomicU64,
    /// When a consumer last received records, ns since start (catch-up's end).
    pub consume_last_ns: AtomicU64,
    /// Producers still running.
    pub producers_running: AtomicUsize,
    /// The first few error messages (error path only, never per record).
    pub errors: Mutex<Vec<String>>,
}

/// One executor's state; lives on its thread.
pub struct Executor {
    /// Time base.
    pub clock: Clock,
    /// The current one-second window.
    pub window: RefCell<Window>,
    /// Totals shared with other executors.
    pub shared: Arc<Shared>,
    /// Latency samples of records intended before this are warm-up and not recorded.
    pub measure_from_ns: u64,
}

impl Executor {
    /// Keeps an error message for the report (the first 20).
    pub fn note_error(&self, message: String) {
        let mut errors = self.shared.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 20 {
            errors.push(message);
        }
    }
}

/// A workload ready to run.
pub struct Plan {
    /// Executors (threads) to run producers and consumers on.
    pub executors: usize,
    /// Pin executor i to CPU i.
    pub pin: bool,
    /// Producers.
    pub producers: Vec<ProducerSpec>,
    /// Consumers.
    pub consumers: Vec<ConsumerSpec>,
    /// Time base.
    pub clock: Clock,
    /// End of warm-up, ns since start.
    pub measure_from_ns: u64,
    /// Print a line per second.
    pub live: bool,
}

/// What a run produced: merged windows by second and the totals.
pub struct Outcome {
    /// One merged window per second, in order.
    pub windows: Vec<Window>,
    /// Totals.
    pub shared: Arc<Shared>,
}

/// Runs the plan and returns its windows.
pub fn execute(plan: Plan) -> Result<Outcome, BenchError> {
    let executors = plan.executors.max(1);
    let config = ShardRuntimeConfig {
        shards: executors,
        io_memory_bytes: 512 << 10,
        ring_depth: 128,
        pin: plan.pin,
    };
    config.check().map_err(BenchError::Usage)?;
    let shared = Arc::new(Shared::default());
    shared
        .producers_running
        .store(plan.producers.len(), Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<Window>();
    let clock = plan.clock;
    let producers = Arc::new(plan.producers);
    let consumers = Arc::new(plan.consumers);
    let measure_from_ns = plan.measure_from_ns;
    let shared_in = shared.clone();
    let runner = std::thread::spawn(move || {
        millrace_shard::run_shards(&config, move |shard| {
            let exec = Rc::new(Executor {
                clock,
                window: RefCell::new(Window::new(clock.now_ns() / 1_000_000_000)),
                shared: shared_in.clone(),
                measure_from_ns,
            });
            let mine_p: Vec<ProducerSpec> = producers
                .iter()
                .filter(|p| p.index % executors == shard)
                .cloned()
                .collect();
            let mine_c: Vec<ConsumerSpec> = consumers
                .iter()
                .filter(|c| c.index % executors == shard)
                .cloned()
                .collect();
            executor_main(exec, mine_p, mine_c, tx.clone())
        })
    });
    let windows = collect(rx, executors, plan.live);
    runner
        .join()
        .map_err(|_| BenchError::Io("an executor thread panicked".into()))?
        .map_err(|e| BenchError::Io(format!("executors: {e}")))?;
    Ok(Outcome { windows, shared })
}

async fn executor_main(
    exec: Rc<Executor>,
    producers: Vec<ProducerSpec>,
    consumers: Vec<ConsumerSpec>,
    tx: mpsc::Sender<Window>,
) -> std::io::Result<()> {
    let done = Rc::new(Cell::new(false));
    let ticker = millrace_shard::spawn(ticker(exec.clone(), tx.clone(), done.clone()));
    let mut tasks = Vec::new();
    for spec in producers {
        let exec = exec.clone();
        tasks.push(millrace_shard::spawn(async move {
            if let Err(e) = producer::run(spec, exec.clone()).await {
                exec.note_error(format!("producer: {e}"));
            }
            exec.shared
                .producers_running
                .fetch_sub(1, Ordering::Relaxed);
        }));
    }
    for spec in consumers {
        let exec = exec.clone();
        tasks.push(millrace_shard::spawn(async move {
            if let Err(e) = consumer::run(spec, exec.clone()).await {
                exec.note_error(format!("consumer: {e}"));
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    done.set(true);
    ticker.await;
    let last = exec.window.replace(Window::new(0));
    let _ = tx.send(last);
    Ok(())
}

/// Hands the window over at every second boundary until `done`.
async fn ticker(exec: Rc<Executor>, tx: mpsc::Sender<Window>, done: Rc<Cell<bool>>) {
    while !done.get() {
        let now = exec.clock.now_ns();
        let next = (now / 1_000_000_000 + 1) * 1_000_000_000;
        let step = Duration::from_nanos(next - now).min(Duration::from_millis(50));
        millrace_shard::time::sleep(step).await;
        if exec.clock.now_ns() >= next {
            let fresh = Window::new(next / 1_000_000_000);
            let finished = exec.window.replace(fresh);
            let _ = tx.send(finished);
        }
    }
    // The final window carries the current second.
    let second = exec.clock.now_ns() / 1_000_000_000;
    exec.window.borrow_mut().second = second;
}

/// Merges windows by second; prints each second once every executor has reported it.
fn collect(rx: mpsc::Receiver<Window>, executors: usize, live: bool) -> Vec<Window> {
    let mut merged: BTreeMap<u64, (Window, usize)> = BTreeMap::new();
    for w in rx {
        let entry = merged
            .entry(w.second)
            .or_insert_with(|| (Window::new(w.second), 0));
        entry.0.merge(&w);
        entry.1 += 1;
        if live && entry.1 == executors {
            crate::output::print_second(&entry.0);
        }
    }
    merged.into_values().map(|(w, _)| w).collect()
}
