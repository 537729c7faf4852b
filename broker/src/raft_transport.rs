//! Raft messages to the other controllers, over their controller listeners.
//!
//! One link per remote voter, each a task on the controller's shard with a queue of encoded
//! frames (the private key `millrace_wire::frame::RAFT_API_KEY`, request header v1). A link
//! connects (with `controller.quorum.request.timeout.ms`), writes its queue in order, reads
//! and drops the empty answers, and on any error closes, waits (from
//! `controller.quorum.retry.backoff.ms`, doubling up to one second) and connects again.
//! Raft tolerates lost messages (it resends what matters), so a link whose peer is down keeps
//! only the newest [`QUEUE_BYTES_MAX`] bytes and drops the oldest: a dead voter costs bounded
//! memory, and a returning one gets fresh heartbeats rather than a backlog. The newest frame
//! is always kept, so one snapshot message (up to `SNAPSHOT_BYTES_MAX`) fits whatever its size.

use bytes::{BufMut, Bytes, BytesMut};
use millrace_replication::quorum::{encode_message, Message};
use millrace_shard::sync::Notify;
use millrace_wire::frame::RAFT_API_KEY;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// Bytes of frames one link holds for a peer it cannot reach.
pub const QUEUE_BYTES_MAX: usize = 8 << 20;

/// Longest answer frame read back (answers are empty; anything big is a confused peer).
const ANSWER_BYTES_MAX: usize = 1 << 16;

/// The links to the other voters, by Raft id.
pub struct RaftTransport {
    links: BTreeMap<u64, Rc<Link>>,
}

struct Link {
    peer: SocketAddr,
    queue: RefCell<VecDeque<Bytes>>,
    queued_bytes: Cell<usize>,
    wake: Notify,
    client_id: String,
    next_correlation_id: Cell<i32>,
}

/// How a link behaves: timeouts and backoff from the quorum keys.
#[derive(Debug, Clone, Copy)]
pub struct LinkTiming {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// First wait after a failure.
    pub backoff: Duration,
}

impl RaftTransport {
    /// Links from `self_raft_id` to every other voter in `peers` (Raft id → address), each
    /// run by a task that ends once `stop()` says so.
    pub fn start(
        self_raft_id: u64,
        peers: &[(u64, SocketAddr)],
        timing: LinkTiming,
        stop: impl Fn() -> bool + Clone + 'static,
    ) -> Rc<Self> {
        let mut links = BTreeMap::new();
        for &(id, peer) in peers.iter().filter(|(id, _)| *id != self_raft_id) {
            let link = Rc::new(Link {
                peer,
                queue: RefCell::new(VecDeque::new()),
                queued_bytes: Cell::new(0),
                wake: Notify::new(),
                client_id: format!("millrace-controller-{self_raft_id}"),
                next_correlation_id: Cell::new(0),
            });
            millrace_shard::spawn_detached(link.clone().run(timing, stop.clone()));
            links.insert(id, link);
        }
        Rc::new(RaftTransport { links })
    }

    /// Queues each message on the link to its target; messages for unknown targets, or that
    /// do not encode (never expected: raft-rs made them), are dropped with a log line.
    pub fn send(&self, messages: Vec<Message>) {
        for message in messages {
            let Some(link) = self.links.get(&message.to) else {
                tracing::warn!(
                    to = message.to,
                    "raft message for a node that is not a voter"
                );
                continue;
            };
            match encode_message(&message) {
                Ok(body) => link.push(&body),
                Err(e) => tracing::error!(error = %e, "raft message does not encode"),
            }
        }
    }
}

impl Link {
    fn push(&self, body: &[u8]) {
        let correlation_id = self.next_correlation_id.get().wrapping_add(1);
        self.next_correlation_id.set(correlation_id);
        let client = self.client_id.as_bytes();
        let size = 2 + 2 + 4 + 2 + client.len() + body.len();
        let mut frame = BytesMut::with_capacity(4 + size);
        frame.put_i32(size as i32);
        frame.put_i16(RAFT_API_KEY);
        frame.put_i16(0);
        frame.put_i32(correlation_id);
        frame.put_i16(client.len() as i16);
        frame.put_slice(client);
        frame.put_slice(body);
        let frame = frame.freeze();
        let mut queue = self.queue.borrow_mut();
        self.queued_bytes.set(self.queued_bytes.get() + frame.len());
        queue.push_back(frame);
        // The newest frame always stays, so a snapshot larger than the bound still goes.
        while self.queued_bytes.get() > QUEUE_BYTES_MAX && queue.len() > 1 {
            let Some(old) = queue.pop_front() else { break };
            self.queued_bytes.set(self.queued_bytes.get() - old.len());
        }
        drop(queue);
        self.wake.notify_all();
    }

    fn pop(&self) -> Option<Bytes> {
        let frame = self.queue.borrow_mut().pop_front()?;
        self.queued_bytes.set(self.queued_bytes.get() - frame.len());
        Some(frame)
    }

    async fn run(self: Rc<Self>, timing: LinkTiming, stop: impl Fn() -> bool) {
        let mut backoff = timing.backoff;
        while !stop() {
            let dialed = crate::dial::dial(
                self.peer,
                timing.connect_timeout,
                crate::dial::Route::Controller,
                &self.client_id,
            )
            .await;
            let dialed = match dialed {
                Ok(dialed) => dialed,
                Err(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "controller link: connect failed");
                    millrace_shard::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = timing.backoff;
            tracing::info!(peer = %self.peer, "controller link up");
            if let Err(e) = self.serve(dialed, &stop).await {
                tracing::info!(peer = %self.peer, error = %e, "controller link down");
                millrace_shard::time::sleep(backoff).await;
            }
        }
    }

    /// Writes queued frames until an error, `stop()` or the end of the server's SASL session
    /// (then a new connection logs in again); a reader task drains the answers.
    async fn serve(
        &self,
        dialed: crate::dial::Dialed,
        stop: &impl Fn() -> bool,
    ) -> std::io::Result<()> {
        let crate::dial::Dialed {
            reader,
            mut writer,
            reauth_at,
        } = dialed;
        let alive = Rc::new(Cell::new(true));
        let reading = {
            let alive = alive.clone();
            millrace_shard::spawn(async move {
                let result = drain_answers(reader).await;
                alive.set(false);
                result
            })
        };
        let expired = || reauth_at.is_some_and(|at| millrace_shard::time::Instant::now() >= at);
        while !stop() && alive.get() && !expired() {
            let seen = self.wake.generation();
            match self.pop() {
                Some(frame) => writer.write_all(&frame).await?,
                None => {
                    // Wake on new frames, and now and then to notice a dead reader.
                    let changed = self.wake.changed_since(seen);
                    millrace_shard::time::timeout(Duration::from_millis(200), changed).await;
                }
            }
        }
        writer.close().await;
        if alive.get() {
            return Ok(());
        }
        match reading.await {
            Ok(()) => Err(std::io::Error::other("the peer closed the connection")),
            Err(e) => Err(e),
        }
    }
}

async fn drain_answers(mut reader: millrace_shard::tls::Reader) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1024];
    loop {
        let mut prefix = [0u8; 4];
        reader.read_exact(&mut prefix).await?;
        let size = i32::from_be_bytes(prefix);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= ANSWER_BYTES_MAX)
            .ok_or_else(|| std::io::Error::other(format!("answer of {size} bytes")))?;
        buf.resize(size, 0);
        reader.read_exact(&mut buf[..size]).await?;
    }
}

#[cfg(test)]
mod tests {
    //! Three controllers, each on its own executor thread with its own `SimDisk`, joined
    //! only by this transport over loopback TCP: they elect a leader, commit on all three,
    //! and when the leader dies the other two elect another and go on committing.

    use super::*;
    use crate::disk::BrokerDisk;
    use crate::quorum::Driver;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use millrace_replication::metadata::{MetadataRecord, ProducerIdsRecord};
    use millrace_replication::quorum::{self, CommittedBatch, QuorumConfig, QuorumRole};
    use millrace_shard::{run_shards, ShardRuntimeConfig};
    use millrace_storage::sim::SimDisk;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Shared {
        /// Per node: the producer-id values of the batches it applied, in order.
        applied: [Vec<i64>; 3],
        /// Per node: leads right now.
        leading: [bool; 3],
        /// Per node: told to die.
        dead: [bool; 3],
        /// Proposals that committed, in order.
        accepted: Vec<i64>,
        /// The leader that was made to die.
        killed: Option<usize>,
    }

    fn record(value: i64) -> MetadataRecord {
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 0,
            broker_epoch: -1,
            next_producer_id: value,
        })
    }

    #[test]
    fn three_controllers_elect_commit_and_fail_over_over_loopback() {
        let ports: Vec<u16> = (0..3)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            })
            .collect();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let config = ShardRuntimeConfig {
            shards: 3,
            io_memory_bytes: 256 << 10,
            ring_depth: 64,
            pin: false,
        };
        let s = shared.clone();
        run_shards(&config, move |i| node(i, ports.clone(), s.clone())).unwrap();
        let shared = shared.lock().unwrap();
        let first_leader = shared.killed.expect("a leader died");
        assert!(shared.accepted.len() >= 10, "{:?}", shared.accepted);
        for (i, applied) in shared.applied.iter().enumerate() {
            let expected: Vec<i64> = if i == first_leader {
                shared.accepted[..5].to_vec()
            } else {
                shared.accepted.clone()
            };
            let mine: Vec<i64> = applied.iter().copied().take(expected.len()).collect();
            assert_eq!(
                mine, expected,
                "node {i} applies the committed values in order"
            );
        }
    }

    async fn node(i: usize, ports: Vec<u16>, shared: Arc<Mutex<Shared>>) -> std::io::Result<()> {
        let me = i as u64 + 1;
        let disk = BrokerDisk::Sim(SimDisk::new(4096));
        let log = crate::partition::open_metadata_log(disk, "/data/meta".into(), 0)
            .await
            .map_err(std::io::Error::other)?;
        let config = QuorumConfig::new(me, &[1, 2, 3]);
        let quorum = quorum::open(&config, &log, log.store(), 0)
            .await
            .map_err(std::io::Error::other)?;
        let driver = Driver::new(quorum, Rc::new(log), Duration::from_millis(20));
        let dead = {
            let shared = shared.clone();
            move || shared.lock().unwrap().dead[i]
        };
        let addr: SocketAddr = ([127, 0, 0, 1], ports[i]).into();
        let listener = millrace_shard::net::listen(addr)?;
        {
            let (driver, dead) = (driver.clone(), dead.clone());
            millrace_shard::spawn_detached(millrace_shard::net::accept_until(
                listener,
                Duration::from_millis(20),
                dead.clone(),
                move |stream| {
                    let (driver, dead) = (driver.clone(), dead.clone());
                    async move { millrace_shard::spawn_detached(serve(stream, driver, dead)) }
                },
            ));
        }
        let peers: Vec<(u64, SocketAddr)> = (0..3)
            .map(|j| (j as u64 + 1, ([127, 0, 0, 1], ports[j]).into()))
            .collect();
        let timing = LinkTiming {
            connect_timeout: Duration::from_millis(500),
            backoff: Duration::from_millis(20),
        };
        let transport = RaftTransport::start(me, &peers, timing, dead.clone());
        millrace_shard::spawn_detached(driver.clone().run_ticks(dead.clone()));
        let applied = {
            let shared = shared.clone();
            async move |batch: &CommittedBatch| {
                for r in &batch.records {
                    if let MetadataRecord::ProducerIds(p) = r {
                        shared.lock().unwrap().applied[i].push(p.next_producer_id);
                    }
                }
                Ok(())
            }
        };
        millrace_shard::spawn_detached(driver.clone().run(
            move |m| transport.send(m),
            async |_| Err("this test cuts no log: no snapshot to install".to_string()),
            applied,
            dead.clone(),
        ));
        // Whoever leads proposes; the first leader dies after five commits.
        let deadline = millrace_shard::time::Instant::now();
        let mut next = 1_000 * me as i64;
        loop {
            if deadline.elapsed() > Duration::from_secs(60) {
                return Err(std::io::Error::other("no progress within a minute"));
            }
            let done = {
                let s = shared.lock().unwrap();
                s.accepted.len() >= 10 || s.dead[i]
            };
            if done {
                break;
            }
            let leading = driver.role() == QuorumRole::Leader;
            shared.lock().unwrap().leading[i] = leading;
            if !leading {
                millrace_shard::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            next += 1;
            if driver.propose(vec![record(next)]).await.is_ok() {
                let mut s = shared.lock().unwrap();
                s.accepted.push(next);
                if s.accepted.len() == 5 && s.killed.is_none() {
                    s.dead[i] = true;
                    s.killed = Some(i);
                }
            }
        }
        // The survivors stay up until everyone has applied everything accepted.
        while !dead() {
            let finished = {
                let s = shared.lock().unwrap();
                let caught_up = (0..3)
                    .filter(|j| !s.dead[*j])
                    .all(|j| s.applied[j].len() >= s.accepted.len());
                s.accepted.len() >= 10 && caught_up
            };
            if finished {
                break;
            }
            millrace_shard::time::sleep(Duration::from_millis(10)).await;
        }
        // Let the last messages drain, then end this executor.
        millrace_shard::time::sleep(Duration::from_millis(100)).await;
        shared.lock().unwrap().dead[i] = true;
        Ok(())
    }

    /// The receiving side, as `handlers/raft.rs` does it: frame, header, decode, step, answer.
    async fn serve(
        mut stream: millrace_shard::net::TcpStream,
        driver: Rc<Driver>,
        dead: impl Fn() -> bool,
    ) {
        loop {
            let mut prefix = [0u8; 4];
            if stream.read_exact(&mut prefix).await.is_err() || dead() {
                return;
            }
            let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
            if stream.read_exact(&mut frame).await.is_err() || dead() {
                return;
            }
            let (header, body) = millrace_wire::frame::parse_request_header(&frame).unwrap();
            assert_eq!(header.api_key, RAFT_API_KEY);
            driver.step(quorum::decode_message(&frame[body..]).unwrap());
            let answer = millrace_wire::frame::encode_raw_response(header.correlation_id, &[]);
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
    }
}
