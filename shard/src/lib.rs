//! Millrace's thread-per-core runtime: the only crate that names `glommio`.
//!
//! The broker reaches its runtime only through this facade, which has two backends:
//!
//! * **glommio** (production): one executor per core, pinned, each with its own io_uring ring
//!   and `io_memory` sized to fit RLIMIT_MEMLOCK; [`runtime::run_shards`] starts them and joins.
//! * **the deterministic simulation** ([`sim::Sim`], tests): every shard on one thread, a seeded
//!   scheduler choosing which ready task runs next, and a virtual clock that jumps to the next
//!   timer. The same seed replays the same interleaving; a deadlock is reported, not hung.
//!
//! Routing: while a `Sim` runs on the thread (inside `block_on`, `run_for` or `enter`), the
//! facade's [`spawn`], [`spawn_detached`], [`spawn_background`], [`Task`] and [`time`] use it;
//! otherwise glommio. [`mesh::Mesh`] has a glommio form ([`mesh::MeshSpec::join`], one thread
//! per shard) and a same-thread form ([`mesh::Mesh::local_full`]) with the same bound and
//! back-pressure. [`sync`] is runtime-agnostic (plain wakers) and works under both.
//!
//! * [`runtime`]: executor start-up and placement (glommio only).
//! * [`mesh`]: the bounded full mesh of cross-shard channels. Senders wait when a peer's inbox
//!   is full (back-pressure), never grow a queue.
//! * [`disk`]: [`disk::DmaDisk`], the storage crate's `Disk` over glommio `DmaFile`s (direct
//!   I/O; files always opened read-write, since a write-only `DmaFile` breaks glommio's iopoll
//!   probe) with a buffered read descriptor beside each segment for sendfile. Glommio only; a
//!   simulation uses the storage crate's `SimDisk`.
//! * [`net`]: sockets and zero-copy sends (glommio only).
//! * [`tls`]: a socket's reader and writer halves, plain or sharing one rustls session; the
//!   broker's connections and the bench's hot-path connections (glommio only).
//! * [`time`]: timers, the wall clock (`now_ms`), a monotonic [`time::Instant`] and cooperative
//!   yielding; virtual under a simulation.
//! * [`reap`]: closes and unlinks that can free a file's blocks, done off the shard's thread
//!   (glommio only).
//! * [`sim`]: the simulation backend.
//!
//! Everything here lives on the shard that created it; only glommio mesh messages cross
//! threads. A `Sim` and everything spawned on it live on the thread that owns the `Sim`.
//! Replacing glommio with another io_uring runtime means rewriting this crate only.

pub mod disk;
pub mod mesh;
pub mod net;
pub mod process;
pub mod reap;
pub mod runtime;
pub mod sim;
pub mod sync;
pub mod time;
pub mod tls;

pub use runtime::{run_shards, ShardId, ShardRuntimeConfig};
pub use sim::Sim;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Spawns a task on the current shard's executor; it runs even if the handle is dropped.
pub fn spawn_detached<F>(future: F)
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn(future).detach();
}

/// A handle to a task on the current shard: a future of the task's output. Dropping it
/// cancels the task (it is never polled again); [`Task::detach`] lets it run on.
pub struct Task<T>(TaskKind<T>);

enum TaskKind<T> {
    Glommio(glommio::Task<T>),
    Sim(sim::SimTask<T>),
}

impl<T> Task<T> {
    /// Lets the task run to completion without this handle.
    pub fn detach(self) {
        match self.0 {
            TaskKind::Glommio(task) => {
                task.detach();
            }
            TaskKind::Sim(task) => task.detach(),
        }
    }

    /// Cancels the task and waits until it has stopped; its output if it had completed.
    pub async fn cancel(self) -> Option<T> {
        match self.0 {
            TaskKind::Glommio(task) => task.cancel().await,
            TaskKind::Sim(task) => task.cancel(),
        }
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.get_mut().0 {
            TaskKind::Glommio(task) => Pin::new(task).poll(cx),
            TaskKind::Sim(task) => Pin::new(task).poll(cx),
        }
    }
}

/// Spawns a task on the current shard and returns its handle.
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match sim::current() {
        Some(core) => Task(TaskKind::Sim(sim::spawn_on(&core, future, false))),
        None => Task(TaskKind::Glommio(glommio::spawn_local(future))),
    }
}

/// CPU shares of the background task queue, against the default queue's 1000: maintenance
/// (retention, compaction) gets about 1% of the core while requests are waiting.
const BACKGROUND_SHARES: usize = 10;

/// Spawns a low-priority task on the current shard: it runs in a task queue with few shares
/// and no latency requirement, so request handling goes first whenever both have work. (In a
/// simulation it is picked when no other task is ready, and now and then otherwise.)
pub fn spawn_background<F>(name: &str, future: F) -> Result<(), String>
where
    F: Future + 'static,
    F::Output: 'static,
{
    if let Some(core) = sim::current() {
        sim::spawn_on(&core, future, true).detach();
        return Ok(());
    }
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::Static(BACKGROUND_SHARES),
        glommio::Latency::NotImportant,
        name,
    );
    glommio::spawn_local_into(future, queue)
        .map(|task| {
            task.detach();
        })
        .map_err(|e| format!("spawning background task {name}: {e}"))
}
