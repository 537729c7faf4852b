//! Typed calls between shards, and the split-by-owner fan-out every partition API uses.
//!
//! Each kind of cross-shard work is a type implementing [`Call`] with its own `Reply` type,
//! defined next to the code that serves it (a handler file, the controller, the group
//! coordinator). [`Shard::call`] runs a call on its target shard and returns exactly that reply
//! type, so a caller cannot receive the wrong answer and has no catch-all arm to write; the only
//! failure is [`Unavailable`] (the target shard is stopping).
//!
//! On the mesh a call travels type-erased ([`MeshMsg`]), one message per destination shard,
//! and its reply comes back the same way; the erasure is undone only where the caller that
//! created the call waits for it, so the downcast cannot fail. Calls whose answer may stop
//! mattering ([`Call::CANCELLABLE`]: long-poll waits) are cancelled on the target when the
//! caller drops them, instead of running to their deadline.
//!
//! Lives on every shard: [`Calls`] is per shard, messages cross threads (`Send`).
//!
//! This module does not know what a shard holds: calls run against any [`Node`] (the broker's
//! is `crate::shard::Shard`), so the shard can own its mesh ends without an import circle.

use millrace_shard::mesh::{Inbox, Mesh};
use millrace_shard::sync::{oneshot, OneshotSender};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// One shard's side of the mesh: what calls run against.
pub trait Node: Sized + 'static {
    /// This shard's id.
    fn id(&self) -> usize;
    /// Senders to every shard.
    fn mesh(&self) -> &Mesh<MeshMsg<Self>>;
    /// This shard's calls in flight.
    fn calls(&self) -> &Calls;
}

/// Work that runs on a chosen shard `N` and answers with `Reply`.
pub trait Call<N>: Send + 'static {
    /// The answer.
    type Reply: Send + 'static;
    /// True when the caller may stop waiting and the work should then stop too.
    const CANCELLABLE: bool = false;
    /// Runs on the target shard.
    fn run(self, shard: Rc<N>) -> impl Future<Output = Self::Reply>;
}

/// The target shard could not be reached (it is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;
type AnyReply = Box<dyn Any + Send>;

/// A call with its type erased for the trip over the mesh.
pub trait ErasedCall<N>: Send {
    /// Runs it and boxes the reply.
    fn run_erased(self: Box<Self>, shard: Rc<N>) -> LocalFuture<AnyReply>;
    /// [`Call::CANCELLABLE`].
    fn cancellable(&self) -> bool;
}

impl<N: 'static, C: Call<N>> ErasedCall<N> for C {
    fn run_erased(self: Box<Self>, shard: Rc<N>) -> LocalFuture<AnyReply> {
        Box::pin(async move { Box::new((*self).run(shard).await) as AnyReply })
    }

    fn cancellable(&self) -> bool {
        C::CANCELLABLE
    }
}

/// A message on the mesh between shards of type `N`.
pub enum MeshMsg<N> {
    /// Work for the receiving shard; the reply goes back to `from` with the same `id`.
    Request {
        /// Request id, unique per sending shard.
        id: u64,
        /// Sending shard.
        from: usize,
        /// The work.
        body: Box<dyn ErasedCall<N>>,
    },
    /// The answer to a request this shard sent.
    Reply {
        /// The request's id.
        id: u64,
        /// The answer, of the request's `Reply` type.
        body: AnyReply,
    },
    /// The sender no longer wants the answer to its cancellable request `id`.
    Cancel {
        /// The request's id.
        id: u64,
    },
}

/// One shard's bookkeeping of calls: replies it waits for, cancellable work it runs for peers.
#[derive(Default)]
pub struct Calls {
    pending: RefCell<HashMap<u64, OneshotSender<AnyReply>>>,
    next_id: Cell<u64>,
    /// Cancellable work running here for a peer: (peer, id) → its stop signal.
    running: RefCell<HashMap<(usize, u64), OneshotSender<()>>>,
}

impl Calls {
    /// Cancellable calls this shard is running for peers right now.
    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.running.borrow().len()
    }
}

/// Runs `call` on `target` (directly if that is `node` itself) and returns its reply.
pub async fn call<N: Node, C: Call<N>>(
    node: &Rc<N>,
    target: usize,
    call: C,
) -> Result<C::Reply, Unavailable> {
    {
        if target == node.id() {
            return Ok(call.run(node.clone()).await);
        }
        let calls = node.calls();
        let id = calls.next_id.get() + 1;
        calls.next_id.set(id);
        let (tx, rx) = oneshot();
        calls.pending.borrow_mut().insert(id, tx);
        let mut guard = CancelOnDrop {
            shard: node.clone(),
            target,
            id,
            armed: C::CANCELLABLE,
        };
        let msg = MeshMsg::Request {
            id,
            from: node.id(),
            body: Box::new(call),
        };
        if node.mesh().send_to(target, msg).await.is_err() {
            guard.armed = false;
            calls.pending.borrow_mut().remove(&id);
            return Err(Unavailable);
        }
        let reply = rx.await;
        guard.armed = false;
        let reply = reply.ok_or(Unavailable)?;
        Ok(*reply
            .downcast::<C::Reply>()
            .expect("a reply has the type its call declares"))
    }
}

/// Forgets a pending call and tells its target to stop, if the caller goes away first.
struct CancelOnDrop<N: Node> {
    shard: Rc<N>,
    target: usize,
    id: u64,
    armed: bool,
}

impl<N: Node> Drop for CancelOnDrop<N> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.shard.calls().pending.borrow_mut().remove(&self.id);
        let (shard, target, id) = (self.shard.clone(), self.target, self.id);
        millrace_shard::spawn_detached(async move {
            let _ = shard.mesh().send_to(target, MeshMsg::Cancel { id }).await;
        });
    }
}

/// Serves one peer's channel into this shard until the peer closes it.
pub async fn inbox_loop<N: Node>(shard: Rc<N>, peer: usize, inbox: Inbox<MeshMsg<N>>) {
    while let Some(msg) = inbox.recv().await {
        match msg {
            MeshMsg::Reply { id, body } => {
                if let Some(tx) = shard.calls().pending.borrow_mut().remove(&id) {
                    tx.send(body);
                }
            }
            MeshMsg::Cancel { id } => {
                if let Some(stop) = shard.calls().running.borrow_mut().remove(&(peer, id)) {
                    stop.send(());
                }
            }
            MeshMsg::Request { id, from, body } => {
                millrace_shard::spawn_detached(serve(shard.clone(), from, id, body));
            }
        }
    }
    tracing::debug!(shard = shard.id(), peer, "inbox closed");
}

async fn serve<N: Node>(shard: Rc<N>, from: usize, id: u64, body: Box<dyn ErasedCall<N>>) {
    let reply = if body.cancellable() {
        let (stop_tx, stop_rx) = oneshot();
        shard
            .calls()
            .running
            .borrow_mut()
            .insert((from, id), stop_tx);
        let work = body.run_erased(shard.clone());
        let outcome = futures_lite::future::or(async { Some(work.await) }, async {
            let _ = stop_rx.await;
            None
        })
        .await;
        shard.calls().running.borrow_mut().remove(&(from, id));
        match outcome {
            Some(reply) => reply,
            None => return,
        }
    } else {
        body.run_erased(shard.clone()).await
    };
    if shard
        .mesh()
        .send_to(from, MeshMsg::Reply { id, body: reply })
        .await
        .is_err()
    {
        tracing::debug!(peer = from, "reply to a stopped shard dropped");
    }
}

/// Items of one request, grouped by owning shard, each with its slot in the response.
pub struct Split<I> {
    per_shard: BTreeMap<usize, Vec<(usize, I)>>,
}

impl<I> Default for Split<I> {
    fn default() -> Self {
        Split {
            per_shard: BTreeMap::new(),
        }
    }
}

impl<I: Send + 'static> Split<I> {
    /// Adds `item` for `owner`, answered into `slot`.
    pub fn push(&mut self, owner: usize, slot: usize, item: I) {
        self.per_shard.entry(owner).or_default().push((slot, item));
    }

    /// Sends one call per owning shard (built by `make` from that shard's items), all at once,
    /// and puts each answer into `results` at its slot. The slots of a shard that could not be
    /// reached get `unavailable()`.
    pub async fn fan_out<N: Node, R, C>(
        self,
        shard: &Rc<N>,
        results: &mut [R],
        make: impl Fn(Vec<(usize, I)>) -> C,
        unavailable: impl Fn() -> R,
    ) where
        C: Call<N, Reply = Vec<(usize, R)>>,
        R: Send + 'static,
    {
        let calls: Vec<_> = self
            .per_shard
            .into_iter()
            .map(|(owner, items)| {
                let slots: Vec<usize> = items.iter().map(|(slot, _)| *slot).collect();
                let shard = shard.clone();
                let call = make(items);
                let task =
                    millrace_shard::spawn(async move { self::call(&shard, owner, call).await });
                (slots, task)
            })
            .collect();
        for (slots, task) in calls {
            match task.await {
                Ok(answers) => {
                    for (slot, r) in answers {
                        results[slot] = r;
                    }
                }
                Err(Unavailable) => {
                    for slot in slots {
                        results[slot] = unavailable();
                    }
                }
            }
        }
    }
}

/// Runs futures on this shard concurrently and collects their outputs in order.
pub async fn join_all<F: Future + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(millrace_shard::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    out
}
