//! Shard-local synchronisation: a one-shot reply slot, a change notifier, a bounded queue, a
//! turn and a byte budget. All are `!Send` and lock-free (Rc + Cell/RefCell); they never cross
//! shards.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    closed: bool,
}

/// The sending side of a one-shot.
pub struct OneshotSender<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

/// The receiving side of a one-shot: a future that yields the value, or None if the sender was
/// dropped without sending.
pub struct OneshotReceiver<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

/// A one-shot channel on the current shard.
pub fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let slot = Rc::new(RefCell::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (
        OneshotSender { slot: slot.clone() },
        OneshotReceiver { slot },
    )
}

impl<T> OneshotSender<T> {
    /// Delivers the value and wakes the receiver.
    pub fn send(self, value: T) {
        let waker = {
            let mut slot = self.slot.borrow_mut();
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.slot.borrow_mut();
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for OneshotReceiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.slot.borrow_mut();
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Wakes every waiter when something changed (a high watermark advanced). Waiters re-check
/// their condition after waking; a notification between the check and the wait is not lost
/// because waiting compares generations.
///
/// Each waiting [`Changed`] holds one registration: polled again it updates its waker in place,
/// and dropped (a long poll that timed out) it takes its waker back out. Registrations that
/// stayed behind kept their task's whole future alive until the next notification, which on an
/// idle shard with long-polling consumers could be never.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    next_id: Cell<u64>,
    waiters: RefCell<Vec<(u64, Waker)>>,
}

impl Notify {
    /// A notifier with no waiters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current generation; pass it to [`Notify::changed_since`].
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Wakes all waiters.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, w) in waiters {
            w.wake();
        }
    }

    /// Completes once the generation moved past `seen`.
    pub fn changed_since(&self, seen: u64) -> Changed<'_> {
        Changed {
            notify: self,
            seen,
            registered: None,
        }
    }

    fn deregister(&self, id: u64) {
        let mut waiters = self.waiters.borrow_mut();
        if let Some(i) = waiters.iter().position(|(w, _)| *w == id) {
            waiters.swap_remove(i);
        }
    }
}

/// Future returned by [`Notify::changed_since`].
pub struct Changed<'a> {
    notify: &'a Notify,
    seen: u64,
    /// This waiter's registration in `notify.waiters` (it is gone once notified).
    registered: Option<u64>,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            if let Some(id) = self.registered.take() {
                self.notify.deregister(id);
            }
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        if let Some(id) = self.registered {
            if let Some((_, w)) = waiters.iter_mut().find(|(w, _)| *w == id) {
                if !w.will_wake(cx.waker()) {
                    *w = cx.waker().clone();
                }
                return Poll::Pending;
            }
        }
        let id = self.notify.next_id.get();
        self.notify.next_id.set(id + 1);
        waiters.push((id, cx.waker().clone()));
        drop(waiters);
        self.registered = Some(id);
        Poll::Pending
    }
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.registered {
            self.notify.deregister(id);
        }
    }
}

/// A bounded FIFO between tasks of one shard: `push` waits while it is full, `pop` while it is
/// empty. Used to pipeline a connection's requests with a named bound on how many are in
/// flight.
pub struct LocalQueue<T> {
    items: RefCell<std::collections::VecDeque<T>>,
    capacity: usize,
    closed: Cell<bool>,
    changed: Notify,
}

impl<T> LocalQueue<T> {
    /// A queue of at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        LocalQueue {
            items: RefCell::new(std::collections::VecDeque::new()),
            capacity: capacity.max(1),
            closed: Cell::new(false),
            changed: Notify::new(),
        }
    }

    /// Appends, waiting for room. Returns the item back if the queue was closed.
    pub async fn push(&self, item: T) -> Result<(), T> {
        loop {
            if self.closed.get() {
                return Err(item);
            }
            let seen = self.changed.generation();
            if self.items.borrow().len() < self.capacity {
                self.items.borrow_mut().push_back(item);
                self.changed.notify_all();
                return Ok(());
            }
            self.changed.changed_since(seen).await;
        }
    }

    /// Takes the oldest item, waiting for one; None once closed and drained.
    pub async fn pop(&self) -> Option<T> {
        loop {
            let seen = self.changed.generation();
            let item = self.items.borrow_mut().pop_front();
            if let Some(item) = item {
                self.changed.notify_all();
                return Some(item);
            }
            if self.closed.get() {
                return None;
            }
            self.changed.changed_since(seen).await;
        }
    }

    /// Closes the queue: pushes fail, pops drain what is left.
    pub fn close(&self) {
        self.closed.set(true);
        self.changed.notify_all();
    }
}

/// Serialises async sections on one shard (metadata changes, applying an image): `lock`
/// waits while another task holds the turn. Shard-local; not a thread lock.
#[derive(Default)]
pub struct Turn {
    busy: Cell<bool>,
    changed: Notify,
}

/// Held while a task has the [`Turn`]; releases it when dropped.
pub struct TurnGuard<'a> {
    turn: &'a Turn,
}

impl Turn {
    /// A free turn.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the turn and takes it.
    pub async fn lock(&self) -> TurnGuard<'_> {
        loop {
            let seen = self.changed.generation();
            if !self.busy.get() {
                self.busy.set(true);
                return TurnGuard { turn: self };
            }
            self.changed.changed_since(seen).await;
        }
    }
}

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        self.turn.busy.set(false);
        self.turn.changed.notify_all();
    }
}

/// Bytes of requests a shard holds at once, shared by its connections (Kafka's
/// `queued.max.request.bytes`, split between the shards).
///
/// Like Kafka's non-strict memory pool, a request is let in whenever the budget is not used
/// up, even if its own size takes the total over: so a request bigger than the whole budget
/// is still served, and nobody waits behind a big request for room that small ones keep
/// taking. What is held stays below the budget plus the largest request.
pub struct ByteBudget {
    capacity: usize,
    used: Cell<usize>,
    freed: Notify,
}

/// Bytes taken from a [`ByteBudget`]; given back when dropped.
pub struct BudgetPermit {
    budget: Rc<ByteBudget>,
    bytes: usize,
}

impl ByteBudget {
    /// A budget of `capacity` bytes (at least 1).
    pub fn new(capacity: usize) -> Rc<Self> {
        Rc::new(Self {
            capacity: capacity.max(1),
            used: Cell::new(0),
            freed: Notify::new(),
        })
    }

    /// Bytes it holds before requests wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held by the permits alive now.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// Waits until the budget is not used up, then takes `bytes` from it.
    pub async fn take(self: &Rc<Self>, bytes: usize) -> BudgetPermit {
        loop {
            let seen = self.freed.generation();
            if self.used.get() < self.capacity {
                self.used.set(self.used.get() + bytes);
                return BudgetPermit {
                    budget: self.clone(),
                    bytes,
                };
            }
            self.freed.changed_since(seen).await;
        }
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        let budget = &self.budget;
        let was_full = budget.used.get() >= budget.capacity;
        budget.used.set(budget.used.get() - self.bytes);
        if was_full && budget.used.get() < budget.capacity {
            budget.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneshot_delivers_or_reports_a_dropped_sender() {
        let (tx, rx) = oneshot();
        tx.send(5);
        assert_eq!(futures_lite::future::block_on(rx), Some(5));
        let (tx, rx) = oneshot::<u8>();
        drop(tx);
        assert_eq!(futures_lite::future::block_on(rx), None);
    }

    #[test]
    fn turn_is_held_by_one_task_at_a_time() {
        let turn = Turn::new();
        let first = futures_lite::future::block_on(turn.lock());
        let mut second = Box::pin(turn.lock());
        let waker = futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            std::task::Poll::Ready(cx.waker().clone())
        }));
        let mut cx = Context::from_waker(&waker);
        assert!(second.as_mut().poll(&mut cx).is_pending());
        drop(first);
        assert!(second.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn notify_is_not_lost_between_check_and_wait() {
        let n = Notify::new();
        let seen = n.generation();
        n.notify_all();
        futures_lite::future::block_on(n.changed_since(seen));
    }

    #[test]
    fn a_waiter_holds_one_registration_and_takes_it_back_when_dropped() {
        let n = Notify::new();
        let waker = futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            std::task::Poll::Ready(cx.waker().clone())
        }));
        let mut cx = Context::from_waker(&waker);
        let mut waiting = Box::pin(n.changed_since(n.generation()));
        for _ in 0..100 {
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(n.waiters.borrow().len(), 1, "one registration per waiter");
        let mut other = Box::pin(n.changed_since(n.generation()));
        assert!(other.as_mut().poll(&mut cx).is_pending());
        drop(waiting); // a long poll that timed out
        assert_eq!(
            n.waiters.borrow().len(),
            1,
            "a dropped waiter left its waker behind"
        );
        n.notify_all();
        assert!(n.waiters.borrow().is_empty());
        assert!(other.as_mut().poll(&mut cx).is_ready());
        drop(other);
        assert!(n.waiters.borrow().is_empty());
    }
}
