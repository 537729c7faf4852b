//! The cross-shard mesh: one bounded channel per ordered pair of shards.
//!
//! A sender whose peer's inbox is full waits (back-pressure); nothing queues without bound.
//! Messages must be `Send`: they carry owned bytes (`bytes::Bytes`) and plain values, never
//! shard-local handles.
//!
//! Two kinds of mesh behind one API: [`MeshSpec::join`] builds glommio's cross-thread mesh, one
//! shard per executor thread; [`Mesh::local_full`] builds every shard's ends at once for shards
//! that share one thread (the deterministic simulation), over shard-local channels with the
//! same bound and the same back-pressure. The broker's `Shard` holds either as a `Mesh<T>`.

use crate::sync::Notify;
use glommio::channels::channel_mesh::{MeshBuilder, Receivers, Senders};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

/// Built once before the shards start, cloned into each of them.
pub struct MeshSpec<T: Send + 'static> {
    builder: MeshBuilder<T, glommio::channels::channel_mesh::Full>,
}

impl<T: Send + 'static> Clone for MeshSpec<T> {
    fn clone(&self) -> Self {
        MeshSpec {
            builder: self.builder.clone(),
        }
    }
}

impl<T: Send + 'static> MeshSpec<T> {
    /// A full mesh of `shards` peers with `capacity` messages per channel.
    pub fn new(shards: usize, capacity: usize) -> Self {
        MeshSpec {
            builder: MeshBuilder::full(shards, capacity),
        }
    }

    /// Joins the mesh from the current shard; completes when every shard has joined.
    pub async fn join(self) -> std::io::Result<Mesh<T>> {
        let (senders, receivers) = self
            .builder
            .join()
            .await
            .map_err(|_| std::io::Error::other("joining the shard mesh failed"))?;
        Ok(Mesh(MeshKind::Glommio { senders, receivers }))
    }
}

/// This shard's ends of the mesh.
pub struct Mesh<T: Send + 'static>(MeshKind<T>);

enum MeshKind<T: Send + 'static> {
    Glommio {
        senders: Senders<T>,
        receivers: Receivers<T>,
    },
    Local(LocalEnds<T>),
}

impl<T: Send + 'static> Mesh<T> {
    /// Every shard's ends of a full mesh of `shards` peers with `capacity` messages per
    /// channel, for shards that all live on the current thread (a simulation): element `i` is
    /// shard `i`'s. Sends wait while the peer's inbox is full, as across threads; a send fails
    /// once the receiving [`Inbox`] is dropped, and an inbox ends once its sender's [`Mesh`]
    /// is closed or dropped.
    pub fn local_full(shards: usize, capacity: usize) -> Vec<Mesh<T>> {
        assert!(
            shards >= 1 && capacity >= 1,
            "a mesh needs a shard and room"
        );
        // channels[from][to]; the diagonal is unused, as a shard never sends to itself.
        let channels: Vec<Vec<Rc<LocalChannel<T>>>> = (0..shards)
            .map(|_| {
                (0..shards)
                    .map(|_| Rc::new(LocalChannel::new(capacity)))
                    .collect()
            })
            .collect();
        (0..shards)
            .map(|me| {
                Mesh(MeshKind::Local(LocalEnds {
                    shard_id: me,
                    outgoing: channels[me].clone(),
                    incoming: RefCell::new(
                        (0..shards)
                            .filter(|&peer| peer != me)
                            .map(|peer| (peer, channels[peer][me].clone()))
                            .collect(),
                    ),
                }))
            })
            .collect()
    }

    /// This shard's id in the mesh.
    pub fn shard_id(&self) -> usize {
        match &self.0 {
            MeshKind::Glommio { senders, .. } => senders.peer_id(),
            MeshKind::Local(ends) => ends.shard_id,
        }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        match &self.0 {
            MeshKind::Glommio { senders, .. } => senders.nr_consumers(),
            MeshKind::Local(ends) => ends.outgoing.len(),
        }
    }

    /// Sends to `shard`, waiting while its inbox is full. Fails when the peer has gone
    /// (shutdown) or `shard` is this shard or out of range.
    pub async fn send_to(&self, shard: usize, msg: T) -> Result<(), MeshClosed> {
        match &self.0 {
            MeshKind::Glommio { senders, .. } => senders
                .send_to(shard, msg)
                .await
                .map_err(|_| MeshClosed { shard }),
            MeshKind::Local(ends) => {
                let channel = ends
                    .outgoing
                    .get(shard)
                    .filter(|_| shard != ends.shard_id)
                    .ok_or(MeshClosed { shard })?;
                channel.send(msg).await.map_err(|_| MeshClosed { shard })
            }
        }
    }

    /// Takes the receiving ends, one per peer (not self), for the shard's inbox tasks.
    pub fn take_inboxes(&mut self) -> Vec<(usize, Inbox<T>)> {
        match &mut self.0 {
            MeshKind::Glommio { receivers, .. } => receivers
                .streams()
                .into_iter()
                .map(|(peer, rx)| (peer, Inbox(InboxKind::Glommio(rx))))
                .collect(),
            MeshKind::Local(ends) => std::mem::take(&mut *ends.incoming.borrow_mut())
                .into_iter()
                .map(|(peer, channel)| (peer, Inbox(InboxKind::Local(channel))))
                .collect(),
        }
    }

    /// Closes this shard's sending ends, so peers' inbox loops end.
    pub fn close(&self) {
        match &self.0 {
            MeshKind::Glommio { senders, .. } => senders.close(),
            MeshKind::Local(ends) => ends.close(),
        }
    }
}

/// One peer's channel into this shard.
pub struct Inbox<T: Send + 'static>(InboxKind<T>);

enum InboxKind<T: Send + 'static> {
    Glommio(glommio::channels::shared_channel::ConnectedReceiver<T>),
    Local(Rc<LocalChannel<T>>),
}

impl<T: Send + 'static> Inbox<T> {
    /// The next message, or None once the peer closed.
    pub async fn recv(&self) -> Option<T> {
        match &self.0 {
            InboxKind::Glommio(rx) => rx.recv().await,
            InboxKind::Local(channel) => channel.recv().await,
        }
    }
}

impl<T: Send + 'static> Drop for Inbox<T> {
    fn drop(&mut self) {
        if let InboxKind::Local(channel) = &self.0 {
            channel.receiver_gone.set(true);
            channel.changed.notify_all();
        }
    }
}

/// A send to a shard that is gone or does not exist.
#[derive(Debug, thiserror::Error)]
#[error("shard {shard} is not reachable over the mesh")]
pub struct MeshClosed {
    /// The destination.
    pub shard: usize,
}

/// A shard's ends of a [`Mesh::local_full`] mesh.
struct LocalEnds<T> {
    shard_id: usize,
    /// Indexed by destination; the entry for this shard is never used.
    outgoing: Vec<Rc<LocalChannel<T>>>,
    /// (peer, channel from peer to this shard) until [`Mesh::take_inboxes`].
    incoming: RefCell<Vec<(usize, Rc<LocalChannel<T>>)>>,
}

impl<T> LocalEnds<T> {
    fn close(&self) {
        for channel in &self.outgoing {
            channel.sender_closed.set(true);
            channel.changed.notify_all();
        }
    }
}

impl<T> Drop for LocalEnds<T> {
    fn drop(&mut self) {
        // As a glommio shard that stops: peers' inboxes end, and sends to us fail.
        self.close();
        for (_, channel) in self.incoming.get_mut().drain(..) {
            channel.receiver_gone.set(true);
            channel.changed.notify_all();
        }
    }
}

/// One direction between two shards on one thread: a bounded FIFO.
struct LocalChannel<T> {
    items: RefCell<VecDeque<T>>,
    capacity: usize,
    sender_closed: Cell<bool>,
    receiver_gone: Cell<bool>,
    /// Wakes both sides: senders waiting for room and the receiver waiting for a message.
    changed: Notify,
}

impl<T> LocalChannel<T> {
    fn new(capacity: usize) -> Self {
        LocalChannel {
            items: RefCell::new(VecDeque::with_capacity(capacity)),
            capacity,
            sender_closed: Cell::new(false),
            receiver_gone: Cell::new(false),
            changed: Notify::new(),
        }
    }

    async fn send(&self, msg: T) -> Result<(), T> {
        loop {
            if self.sender_closed.get() || self.receiver_gone.get() {
                return Err(msg);
            }
            let seen = self.changed.generation();
            if self.items.borrow().len() < self.capacity {
                self.items.borrow_mut().push_back(msg);
                self.changed.notify_all();
                return Ok(());
            }
            self.changed.changed_since(seen).await;
        }
    }

    async fn recv(&self) -> Option<T> {
        loop {
            let seen = self.changed.generation();
            let msg = self.items.borrow_mut().pop_front();
            if let Some(msg) = msg {
                self.changed.notify_all();
                return Some(msg);
            }
            if self.sender_closed.get() {
                return None;
            }
            self.changed.changed_since(seen).await;
        }
    }
}
