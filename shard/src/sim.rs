//! The deterministic simulation backend: one thread, a seeded scheduler, a virtual clock.
//!
//! A [`Sim`] runs the same futures the broker runs on glommio, but every choice that glommio
//! leaves to the hardware is made by a seeded PRNG instead: which ready task runs next, and
//! therefore how tasks interleave. The same seed replays the same schedule exactly; another
//! seed explores another interleaving. Time is virtual: it stands still while tasks run and
//! jumps to the next timer when none is ready, so an hour of timeouts takes microseconds and
//! nothing ever sleeps for real.
//!
//! While a `Sim` runs (inside [`Sim::block_on`], [`Sim::run_for`] or [`Sim::enter`]) it is
//! installed on the thread, and the facade's `spawn*`, `Task`, and `time::*` route to it
//! instead of glommio; broker code does not change.
//!
//! Invariants:
//! * one task is polled at a time, on the thread that owns the `Sim` (everything is `Rc`);
//! * the clock never goes back, and moves only between polls, to the earliest pending timer
//!   (or to the end of a [`Sim::run_for`]);
//! * a dropped [`SimTask`] handle cancels its task: the future is dropped, never polled again;
//! * [`Sim::crash`] drops every task and timer without polling; destructors that touch the
//!   runtime (cancelling a task, removing a timer, waking) find it empty and do nothing, and
//!   the `Sim` stays usable for the restarted program.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// The virtual wall clock's start, in Unix milliseconds (2023-11-14), unless
/// [`Sim::starting_at_ms`] says otherwise.
pub const SIM_EPOCH_MS: i64 = 1_700_000_000_000;

/// When both background and foreground tasks are ready, a background task is picked about one
/// time in this many: glommio gives the background queue few shares, not none.
const BACKGROUND_ODDS: u64 = 16;

/// Default for [`Sim::set_livelock_polls`].
pub const LIVELOCK_POLLS_DEFAULT: u64 = 10_000_000;

/// The root future of [`Sim::block_on`] is scheduled like a task under this id.
const ROOT: u64 = 0;

/// A single-threaded deterministic executor with a virtual clock.
pub struct Sim {
    core: Rc<Core>,
}

/// Everything was waiting, nothing was ready and no timer was set: the simulated program can
/// never make progress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "simulation deadlock at virtual time {at_ms} ms (seed {seed}): {tasks} task(s) waiting, \
     none ready, no timer pending"
)]
pub struct Deadlock {
    /// The seed of the simulation, to replay it.
    pub seed: u64,
    /// Virtual wall-clock ms when it stalled.
    pub at_ms: i64,
    /// Tasks still alive (not counting the `block_on` future).
    pub tasks: usize,
}

impl Sim {
    /// A simulation whose schedule is drawn from `seed`, starting at [`SIM_EPOCH_MS`].
    pub fn new(seed: u64) -> Self {
        Self::starting_at_ms(seed, SIM_EPOCH_MS)
    }

    /// A simulation whose virtual wall clock starts at `epoch_ms` (e.g. [`SIM_EPOCH_MS`] plus a
    /// seeded offset, so that no test depends on a particular date).
    pub fn starting_at_ms(seed: u64, epoch_ms: i64) -> Self {
        Sim {
            core: Rc::new(Core {
                seed,
                rng: Cell::new(seed ^ 0x6d69_6c6c_7261_6365),
                epoch_ms,
                now_ns: Cell::new(0),
                next_id: Cell::new(ROOT + 1),
                tasks: RefCell::new(BTreeMap::new()),
                woken: Arc::new(Mutex::new(Vec::new())),
                ready: RefCell::new(Ready::default()),
                timers: RefCell::new(BTreeMap::new()),
                next_timer: Cell::new(0),
                digest: Cell::new(seed),
                polls: Cell::new(0),
                livelock_polls: Cell::new(LIVELOCK_POLLS_DEFAULT),
            }),
        }
    }

    /// The seed this simulation was created with.
    pub fn seed(&self) -> u64 {
        self.core.seed
    }

    /// Virtual wall-clock milliseconds since the Unix epoch (what `time::now_ms` returns inside).
    pub fn now_ms(&self) -> i64 {
        self.core.now_ms()
    }

    /// Virtual time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.core.now_ns.get())
    }

    /// Tasks alive (spawned, not finished, not cancelled).
    pub fn tasks(&self) -> usize {
        self.core.tasks.borrow().len()
    }

    /// Polls run so far.
    pub fn polls(&self) -> u64 {
        self.core.polls.get()
    }

    /// A fingerprint of the schedule so far: which task was polled at which virtual time, in
    /// order. Two runs with the same seed and program have the same digest.
    pub fn digest(&self) -> u64 {
        self.core.digest.get()
    }

    /// Polls at one virtual instant after which a run panics as livelocked: tasks keep waking
    /// each other (or yielding) and never wait for time, so no run could end.
    pub fn set_livelock_polls(&self, polls: u64) {
        self.core.livelock_polls.set(polls.max(1));
    }

    /// Spawns a task from outside the simulation (inside it, use `millrace_shard::spawn`).
    pub fn spawn<F>(&self, future: F) -> SimTask<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_on(&self.core, future, false)
    }

    /// Runs `f` with this simulation installed on the thread, so the facade routes to it
    /// (for constructing shard state outside `block_on`). Nothing runs.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let _installed = Installed::new(&self.core);
        f()
    }

    /// Runs the simulation until `future` completes and returns its output.
    ///
    /// # Panics
    /// On a [`Deadlock`] or a livelock, with the seed and the virtual time in the message.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.try_block_on(future).unwrap_or_else(|d| panic!("{d}"))
    }

    /// Runs the simulation until `future` completes; a [`Deadlock`] if it never can.
    pub fn try_block_on<F: Future>(&self, future: F) -> Result<F::Output, Deadlock> {
        let _installed = Installed::new(&self.core);
        let mut future = std::pin::pin!(future);
        let waker = Waker::from(Arc::new(TaskWaker {
            id: ROOT,
            woken: self.core.woken.clone(),
        }));
        let mut cx = Context::from_waker(&waker);
        let mut output = None;
        waker.wake_by_ref();
        let stop = self.core.run(
            |cx_root| match future.as_mut().poll(cx_root) {
                Poll::Ready(v) => {
                    output = Some(v);
                    true
                }
                Poll::Pending => false,
            },
            &mut cx,
            None,
        );
        match stop {
            Stop::RootDone => Ok(output.expect("the root future completed")),
            Stop::Stalled => Err(self.core.deadlock()),
            Stop::TimeUp => unreachable!("block_on has no time limit"),
        }
    }

    /// Runs every task for `duration` of virtual time; the clock ends exactly `duration` later
    /// (also when everything is waiting with no timer: that is idle, not a deadlock, here).
    ///
    /// # Panics
    /// On a livelock (see [`Sim::set_livelock_polls`]).
    pub fn run_for(&self, duration: Duration) {
        let _installed = Installed::new(&self.core);
        let end_ns = self.core.now_ns.get().saturating_add(nanos(duration));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        if self.core.run(|_| false, &mut cx, Some(end_ns)) == Stop::Stalled {
            self.core.now_ns.set(end_ns);
        }
    }

    /// Simulates a process crash: every task and timer is dropped without being polled again
    /// (also when called from one of its tasks, which stops after its current poll). The clock
    /// keeps its time and the `Sim` can run a restarted program.
    pub fn crash(&self) {
        self.core.drop_everything();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // Tasks hold Weak references to the core, so nothing keeps it alive; dropping them
        // here, while the core still exists, lets their destructors find it.
        self.core.drop_everything();
    }
}

/// A handle to a simulated task: a future of its output. Dropping it cancels the task;
/// [`SimTask::detach`] lets it run on.
pub struct SimTask<T> {
    id: u64,
    join: Rc<RefCell<Join<T>>>,
    core: Weak<Core>,
    detached: bool,
}

impl<T> SimTask<T> {
    /// Lets the task run to completion without this handle.
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Cancels the task at once (its future is dropped); its output if it had completed.
    pub fn cancel(self) -> Option<T> {
        let output = self.join.borrow_mut().output.take();
        drop(self);
        output
    }
}

impl<T> Future for SimTask<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut join = self.join.borrow_mut();
        if let Some(v) = join.output.take() {
            join.done = true;
            return Poll::Ready(v);
        }
        assert!(
            !join.done,
            "a simulated task was awaited after it completed"
        );
        let alive = self
            .core
            .upgrade()
            .is_some_and(|core| core.tasks.borrow().contains_key(&self.id));
        assert!(
            alive,
            "awaited a simulated task that was dropped by a crash"
        );
        join.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for SimTask<T> {
    fn drop(&mut self) {
        let finished = self.join.borrow().done || self.join.borrow().output.is_some();
        if self.detached || finished {
            return;
        }
        if let Some(core) = self.core.upgrade() {
            core.cancel(self.id);
        }
    }
}

/// Spawns onto `core`; `background` tasks run when no other task is ready (and now and then
/// otherwise).
pub(crate) fn spawn_on<F>(core: &Rc<Core>, future: F, background: bool) -> SimTask<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let id = core.next_id.get();
    core.next_id.set(id + 1);
    let join = Rc::new(RefCell::new(Join {
        output: None,
        done: false,
        waker: None,
    }));
    let done = join.clone();
    let task = async move {
        let v = future.await;
        let waker = {
            let mut join = done.borrow_mut();
            join.output = Some(v);
            join.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    };
    let waker = Waker::from(Arc::new(TaskWaker {
        id,
        woken: core.woken.clone(),
    }));
    waker.wake_by_ref();
    core.tasks.borrow_mut().insert(
        id,
        Slot {
            future: Some(Box::pin(task)),
            waker,
            background,
        },
    );
    SimTask {
        id,
        join,
        core: Rc::downgrade(core),
        detached: false,
    }
}

/// The simulation installed on this thread, if any.
pub(crate) fn current() -> Option<Rc<Core>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// True when a simulation is installed on this thread (the facade's one check per call).
pub(crate) fn is_current() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// A future that completes once the virtual clock reaches `now + duration`.
pub(crate) fn sleep(core: &Rc<Core>, duration: Duration) -> Sleep {
    Sleep {
        core: Rc::downgrade(core),
        deadline_ns: core.now_ns.get().saturating_add(nanos(duration)),
        key: None,
    }
}

/// A future that gives every other ready task a chance to be picked first, once.
pub(crate) fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Shared state of a simulation. Tasks and timers refer to it weakly.
pub(crate) struct Core {
    seed: u64,
    rng: Cell<u64>,
    epoch_ms: i64,
    now_ns: Cell<u64>,
    next_id: Cell<u64>,
    /// Live tasks by id; ordered so a crash drops them in a reproducible order.
    tasks: RefCell<BTreeMap<u64, Slot>>,
    /// Ids woken since the scheduler last looked, in wake order. Wakers are `Send + Sync` by
    /// contract, hence the Mutex; only this thread ever takes it.
    woken: Arc<Mutex<Vec<u64>>>,
    ready: RefCell<Ready>,
    /// Pending timers by (deadline, registration number).
    timers: RefCell<BTreeMap<(u64, u64), Waker>>,
    next_timer: Cell<u64>,
    digest: Cell<u64>,
    polls: Cell<u64>,
    livelock_polls: Cell<u64>,
}

struct Slot {
    /// None while the task is being polled.
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    waker: Waker,
    background: bool,
}

#[derive(Default)]
struct Ready {
    foreground: Vec<u64>,
    background: Vec<u64>,
    queued: HashSet<u64>,
}

struct Join<T> {
    output: Option<T>,
    done: bool,
    waker: Option<Waker>,
}

#[derive(Debug, PartialEq, Eq)]
enum Stop {
    RootDone,
    TimeUp,
    Stalled,
}

impl Core {
    pub(crate) fn now_ms(&self) -> i64 {
        self.epoch_ms + (self.now_ns.get() / 1_000_000) as i64
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.now_ns.get()
    }

    /// The scheduler loop: polls ready tasks in seeded random order, and when none is ready
    /// moves the clock to the next timer (not past `end_ns`).
    fn run(
        &self,
        mut poll_root: impl FnMut(&mut Context<'_>) -> bool,
        cx_root: &mut Context<'_>,
        end_ns: Option<u64>,
    ) -> Stop {
        let mut polls_now = 0u64;
        loop {
            if let Some(id) = self.pick() {
                polls_now += 1;
                assert!(
                    polls_now <= self.livelock_polls.get(),
                    "simulation livelock at virtual time {} ms (seed {}): {} polls without \
                     time moving on; tasks keep each other ready",
                    self.now_ms(),
                    self.seed,
                    self.livelock_polls.get()
                );
                self.record(id);
                if id == ROOT {
                    if poll_root(cx_root) {
                        return Stop::RootDone;
                    }
                } else {
                    self.poll_task(id);
                }
                continue;
            }
            let next = self.timers.borrow().keys().next().map(|&(at, _)| at);
            match next {
                Some(at) if end_ns.is_none_or(|end| at <= end) => {
                    polls_now = 0;
                    self.fire_timers(at);
                }
                Some(_) => {
                    self.now_ns.set(end_ns.expect("checked above"));
                    return Stop::TimeUp;
                }
                None => return Stop::Stalled,
            }
        }
    }

    /// Takes one ready task, chosen by the seeded PRNG.
    fn pick(&self) -> Option<u64> {
        let woken = std::mem::take(&mut *self.woken.lock().unwrap_or_else(|e| e.into_inner()));
        let mut ready = self.ready.borrow_mut();
        {
            let tasks = self.tasks.borrow();
            for id in woken {
                let background = match tasks.get(&id) {
                    Some(slot) => slot.background,
                    None if id == ROOT => false,
                    None => continue, // finished or cancelled since it was woken
                };
                if ready.queued.insert(id) {
                    if background {
                        ready.background.push(id);
                    } else {
                        ready.foreground.push(id);
                    }
                }
            }
        }
        let use_background = !ready.background.is_empty()
            && (ready.foreground.is_empty() || self.next_random().is_multiple_of(BACKGROUND_ODDS));
        let r = self.next_random();
        let queue = if use_background {
            &mut ready.background
        } else {
            &mut ready.foreground
        };
        if queue.is_empty() {
            return None;
        }
        let id = queue.swap_remove((r % queue.len() as u64) as usize);
        ready.queued.remove(&id);
        Some(id)
    }

    /// Polls task `id` once, with its future taken out of the table so that the task may spawn
    /// or cancel others (or be cancelled itself) while it runs.
    fn poll_task(&self, id: u64) {
        let taken = {
            let mut tasks = self.tasks.borrow_mut();
            tasks
                .get_mut(&id)
                .and_then(|slot| Some((slot.future.take()?, slot.waker.clone())))
        };
        let Some((mut future, waker)) = taken else {
            return; // cancelled after it was woken
        };
        let done = future
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        let leftover = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(&id) {
                Some(slot) if !done => {
                    slot.future = Some(future);
                    None
                }
                Some(_) => {
                    tasks.remove(&id);
                    Some(future)
                }
                None => Some(future), // it cancelled itself while running
            }
        };
        drop(leftover); // outside the borrow: destructors may cancel tasks or timers
    }

    /// Moves the clock to `at_ns` and wakes every timer due by then.
    fn fire_timers(&self, at_ns: u64) {
        debug_assert!(at_ns >= self.now_ns.get(), "the virtual clock went back");
        self.now_ns.set(at_ns.max(self.now_ns.get()));
        let due = {
            let mut timers = self.timers.borrow_mut();
            let later = timers.split_off(&(at_ns + 1, 0));
            std::mem::replace(&mut *timers, later)
        };
        for (_, waker) in due {
            waker.wake();
        }
    }

    fn cancel(&self, id: u64) {
        let slot = self.tasks.borrow_mut().remove(&id);
        drop(slot); // outside the borrow
    }

    /// Drops every task and timer unpolled. Tasks or timers that destructors create on the way
    /// (a `Drop` that spawns a clean-up) are dropped too: a crashed process runs nothing more.
    fn drop_everything(self: &Rc<Self>) {
        // Installed, so that a destructor's `spawn` lands here rather than on glommio.
        let _installed = (!is_current()).then(|| Installed::new(self));
        loop {
            let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
            let timers = std::mem::take(&mut *self.timers.borrow_mut());
            if tasks.is_empty() && timers.is_empty() {
                break;
            }
            drop(tasks);
            drop(timers);
        }
        *self.ready.borrow_mut() = Ready::default();
        // Destructors may have woken tasks that no longer exist.
        self.woken.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn deadlock(&self) -> Deadlock {
        Deadlock {
            seed: self.seed,
            at_ms: self.now_ms(),
            tasks: self.tasks.borrow().len(),
        }
    }

    fn record(&self, id: u64) {
        self.polls.set(self.polls.get() + 1);
        let d = self.digest.get() ^ id.rotate_left(32) ^ self.now_ns.get();
        self.digest.set(mix(d));
    }

    fn next_random(&self) -> u64 {
        // splitmix64: a full-period generator on a 64-bit counter.
        let s = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.rng.set(s);
        mix(s)
    }

    fn add_timer(&self, deadline_ns: u64, waker: Waker) -> (u64, u64) {
        let key = (deadline_ns, self.next_timer.get());
        self.next_timer.set(key.1 + 1);
        self.timers.borrow_mut().insert(key, waker);
        key
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Installs a simulation on the thread for its lifetime, and restores what was there.
struct Installed {
    previous: Option<Rc<Core>>,
}

impl Installed {
    fn new(core: &Rc<Core>) -> Self {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(core.clone()));
        if let Some(p) = &previous {
            assert!(
                !Rc::ptr_eq(p, core),
                "a simulation was run from inside itself (block_on or run_for in a task)"
            );
        }
        Installed { previous }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

struct TaskWaker {
    id: u64,
    woken: Arc<Mutex<Vec<u64>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.id);
    }
}

/// Future of [`sleep`]: registered in the timer table while pending, removed when dropped.
pub(crate) struct Sleep {
    core: Weak<Core>,
    deadline_ns: u64,
    key: Option<(u64, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(core) = self.core.upgrade() else {
            return Poll::Pending; // the simulation is gone; this task will be dropped
        };
        if core.now_ns.get() >= self.deadline_ns {
            if let Some(key) = self.key.take() {
                core.timers.borrow_mut().remove(&key);
            }
            return Poll::Ready(());
        }
        if let Some(key) = self.key {
            if let Some(w) = core.timers.borrow_mut().get_mut(&key) {
                if !w.will_wake(cx.waker()) {
                    *w = cx.waker().clone();
                }
                return Poll::Pending;
            }
        }
        self.key = Some(core.add_timer(self.deadline_ns, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let (Some(key), Some(core)) = (self.key, self.core.upgrade()) {
            let waker = core.timers.borrow_mut().remove(&key);
            drop(waker); // outside the borrow
        }
    }
}

/// Future of [`yield_now`].
pub(crate) struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
