//! The cross-shard mesh: one bounded channel per ordered pair of shards.
//!
//! A sender whose peer's inbox is full waits (back-pressure); nothing queues without bound.
//! Messages must be `Send`: they carry owned bytes (`bytes::Bytes`) and plain values, never
//! shard-local handles.

use glommio::channels::channel_mesh::{MeshBuilder, Receivers, Senders};

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
        Ok(Mesh { senders, receivers })
    }
}

/// This shard's ends of the mesh.
pub struct Mesh<T: Send + 'static> {
    senders: Senders<T>,
    receivers: Receivers<T>,
}

impl<T: Send + 'static> Mesh<T> {
    /// This shard's id in the mesh.
    pub fn shard_id(&self) -> usize {
        self.senders.peer_id()
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.senders.nr_consumers()
    }

    /// Sends to `shard`, waiting while its inbox is full. Fails when the peer has gone
    /// (shutdown) or `shard` is this shard or out of range.
    pub async fn send_to(&self, shard: usize, msg: T) -> Result<(), MeshClosed> {
        self.senders
            .send_to(shard, msg)
            .await
            .map_err(|_| MeshClosed { shard })
    }

    /// Takes the receiving ends, one per peer (not self), for the shard's inbox tasks.
    pub fn take_inboxes(&mut self) -> Vec<(usize, Inbox<T>)> {
        self.receivers
            .streams()
            .into_iter()
            .map(|(peer, rx)| (peer, Inbox { rx }))
            .collect()
    }

    /// Closes this shard's sending ends, so peers' inbox loops end.
    pub fn close(&self) {
        self.senders.close();
    }
}

/// One peer's channel into this shard.
pub struct Inbox<T: Send + 'static> {
    rx: glommio::channels::shared_channel::ConnectedReceiver<T>,
}

impl<T: Send + 'static> Inbox<T> {
    /// The next message, or None once the peer closed.
    pub async fn recv(&self) -> Option<T> {
        self.rx.recv().await
    }
}

/// A send to a shard that is gone or does not exist.
#[derive(Debug, thiserror::Error)]
#[error("shard {shard} is not reachable over the mesh")]
pub struct MeshClosed {
    /// The destination.
    pub shard: usize,
}
