//! `max.connections`: the broker-wide bound on client connections, and
//! `max.connections.per.ip` (with `max.connections.per.ip.overrides`): the bound per client
//! address, past which a new connection is closed at once, as Kafka closes it.
//!
//! Connections land on shards through SO_REUSEPORT, so the count is one `AtomicUsize` shared by
//! every shard (an `Arc`, cloned into each). It is touched once when a connection is admitted
//! and once when it ends, never per request, so the data-path rules do not apply to it.
//!
//! A shard's accept loop takes a [`Slot`] after each accept and before accepting the next
//! connection, as Kafka's acceptor does. At the bound the slot is not there: the accepted
//! connection waits unserved (its client gets no answer) and the loop accepts nothing more, so
//! new clients queue in the kernel's listen backlog. Each shard holds at most one such waiting
//! connection, which is why the waiting happens after the accept rather than before it: a shard
//! that took a freed slot first and then waited for a client would keep that slot from the
//! client queued on another shard's listener.
//!
//! The wait polls, because the connection that frees a slot may end on another shard and
//! nothing on this shard would wake. It polls only while the broker is at the bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a shard at the bound looks for a freed slot.
const SLOT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The broker's connection count and its bound; clones share the count.
#[derive(Clone, Debug)]
pub struct ConnectionLimit {
    open: Arc<AtomicUsize>,
    max: usize,
    /// Connections open per client address (only addresses with one open).
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
    overrides: Arc<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it (when the connection's task ends) frees the slot.
#[derive(Debug)]
pub struct Slot {
    open: Arc<AtomicUsize>,
}

/// A connection counted against its address's bound; dropping it uncounts it.
#[derive(Debug)]
pub struct IpSlot {
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ConnectionLimit {
    /// A limit of `max` connections (at least one), none open, no bound per address.
    #[cfg(test)]
    pub fn new(max: usize) -> Self {
        Self::with_per_ip(max, usize::MAX, HashMap::new())
    }

    /// With `max.connections.per.ip` and its overrides (an override of 0 refuses the address).
    pub fn with_per_ip(max: usize, max_per_ip: usize, overrides: HashMap<IpAddr, usize>) -> Self {
        assert!(max >= 1, "max.connections is validated to be at least 1");
        ConnectionLimit {
            open: Arc::new(AtomicUsize::new(0)),
            max,
            per_ip: Arc::default(),
            max_per_ip,
            overrides: Arc::new(overrides),
        }
    }

    /// Counts a connection from `ip`, or `None` when the address is at its bound (the
    /// connection is to be closed).
    pub fn try_ip(&self, ip: IpAddr) -> Option<IpSlot> {
        let bound = self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip);
        let mut counts = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= bound {
            if *n == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: self.per_ip.clone(),
            ip,
        })
    }

    /// Client connections open now (on every shard).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A slot if fewer than `max` connections are open.
    pub fn try_acquire(&self) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot {
                open: self.open.clone(),
            })
    }

    /// A slot, waiting until one is free.
    pub async fn acquire(&self) -> Slot {
        if let Some(slot) = self.try_acquire() {
            return slot;
        }
        tracing::warn!(
            max_connections = self.max,
            "max.connections reached: a new connection waits until one closes"
        );
        loop {
            millrace_shard::time::sleep(SLOT_POLL_INTERVAL).await;
            if let Some(slot) = self.try_acquire() {
                return slot;
            }
        }
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.get_mut(&self.ip).expect("a counted address");
        *n -= 1;
        if *n == 0 {
            counts.remove(&self.ip);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let before = self.open.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a connection slot was freed twice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_shared_by_clones_and_freed_on_drop() {
        let limit = ConnectionLimit::new(2);
        let other_shard = limit.clone();
        let a = limit.try_acquire().expect("first");
        let b = other_shard
            .try_acquire()
            .expect("second, counted broker-wide");
        assert!(limit.try_acquire().is_none());
        assert!(other_shard.try_acquire().is_none());
        assert_eq!(limit.open(), 2);
        drop(a);
        assert_eq!(other_shard.open(), 1);
        let c = other_shard.try_acquire().expect("freed by the drop");
        assert!(limit.try_acquire().is_none());
        drop((b, c));
        assert_eq!(limit.open(), 0);
    }

    #[test]
    fn each_address_is_bounded_with_its_override() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let limit = ConnectionLimit::with_per_ip(100, 2, HashMap::from([(b, 3), (c, 0)]));
        let other_shard = limit.clone();
        let a1 = limit.try_ip(a).expect("first");
        let a2 = other_shard.try_ip(a).expect("second, counted broker-wide");
        assert!(limit.try_ip(a).is_none(), "the third from one address");
        let bs: Vec<_> = (0..3).filter_map(|_| limit.try_ip(b)).collect();
        assert_eq!(bs.len(), 3, "the override raises the bound");
        assert!(limit.try_ip(b).is_none());
        assert!(
            limit.try_ip(c).is_none(),
            "an override of 0 refuses the address"
        );
        drop(a1);
        let a3 = limit.try_ip(a).expect("freed by the drop");
        drop((a2, a3, bs));
        assert!(
            limit.per_ip.lock().unwrap().is_empty(),
            "no count left behind"
        );
    }

    #[test]
    fn concurrent_acquires_never_exceed_the_bound() {
        let limit = ConnectionLimit::new(5);
        let held: Vec<Vec<Slot>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let limit = limit.clone();
                    s.spawn(move || (0..100).filter_map(|_| limit.try_acquire()).collect())
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(held.iter().map(Vec::len).sum::<usize>(), 5);
        assert_eq!(limit.open(), 5);
        drop(held);
        assert_eq!(limit.open(), 0);
    }
}
