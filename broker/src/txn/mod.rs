//! Transaction coordination (KIP-98) on the shard owning the transactional id's
//! `__transaction_state` partition.
//!
//! A transactional id lives on partition `abs(java_hash(id)) % transaction.state.log.num.partitions`
//! of `__transaction_state` (Kafka's placement, the groups' scheme); the broker leading that
//! partition is the id's coordinator and the partition's leader epoch is the coordinator epoch
//! markers carry. The partitions are served by `crate::state_log`, as the group coordinator's:
//! read back when this broker starts leading them, forgotten when it stops. Every state change
//! is appended (acks=all, fsync) before the request is answered.
//!
//! States and moves (Kafka's `TransactionState`):
//!
//! ```text
//! Empty / CompleteCommit / CompleteAbort --AddPartitions--> Ongoing --EndTxn--> PrepareCommit
//!                                                                   \--------> PrepareAbort
//! Prepare* --markers written to every partition--> Complete*
//! InitProducerId: Empty/Complete* -> Empty with the epoch bumped;
//!                 Ongoing -> PrepareAbort with the epoch bumped (the old producer is fenced by
//!                 the markers), answered CONCURRENT_TRANSACTIONS until the abort completes
//! an Ongoing transaction past its timeout: the same fencing abort, by the coordinator
//! ```
//!
//! Transactions V2 (KIP-890 part 2; EndTxn v5, what the Java 4.x producer speaks when the
//! broker finalizes `transaction.version` 2): every EndTxn bumps the producer epoch. Prepare*
//! carries epoch + 1, the markers are written with it (so a delayed request of the ended
//! transaction is fenced at every partition and here), and the answer gives the producer its
//! new epoch; from epoch 32766 the bump moves to a new producer id instead (the markers still
//! carry the old id at 32767). A retried EndTxn is recognised by the epoch it ended with
//! (`last_producer_*` with `ended_v2`), and an abort with nothing added (a producer that sent
//! but whose partitions were never added) just bumps the epoch. Partition leaders add their
//! partition to the transaction themselves (Produce v12, TxnOffsetCommit v5: an implicit
//! [`TxnOp::Add`]) instead of only verifying it; such an add waits for the producer's
//! previous transaction to complete, up to `add.partitions.to.txn.retry.backoff.max.ms`.
//!
//! Markers go to each partition's leader: through the mesh to the owning shard when this
//! broker leads it, else as WriteTxnMarkers v1 to the leader's client listener, retried until
//! written. A coordinator that starts leading a partition completes the Prepare* transactions
//! it reads back, so a crash between EndTxn and the markers ends the way EndTxn said.
//!
//! Records in `__transaction_state` (our own versioned layout):
//! ```text
//! key   = version:u8 (1) | transactional_id: u16 len + bytes
//! value = version:u8 (2) | producer_id:i64 | last_producer_id:i64 | producer_epoch:i16
//!         | last_producer_epoch:i16 | timeout_ms:i32 | state:u8 | start_ms:i64
//!         | update_ms:i64 | partitions: u32 count × (topic: u16 len + bytes, partition:i32)
//!         | next_producer_id:i64 | flags:u8 (bit 0: ended_v2)
//! ```
//! Version 1 (written before Transactions V2) ends after the partitions and still loads.

use crate::coordinator::offsets_partition;
use crate::errors::{code, storage_code};
use crate::mesh::Call;
use crate::partition::{Acks, CommitError};
use crate::peer::{PeerClient, PeerConfig, PeerPool};
use crate::shard::Shard;
use crate::state_log::{Host, Replayed, StateMachine};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use millrace_replication::replica::AcksRefusal;
use millrace_wire::records::{NewRecord, TxnMarker};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;

pub use crate::metadata::TXN_TOPIC;

mod admin;
pub use admin::{DescribeTxns, ListTxns, TxnFilter};

const KEY_VERSION: u8 = 1;
const VALUE_VERSION: u8 = 2;
/// The value layout before Transactions V2 (no next producer id, no flags).
const VALUE_VERSION_V1: u8 = 1;
/// `flags` bit: the last EndTxn spoke Transactions V2.
const ENDED_V2: u8 = 1;
/// How long a state change waits for its record to be replicated.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a marker waits for replication before the coordinator retries it.
const MARKER_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between rounds of markers that did not all land.
const MARKER_RETRY: Duration = Duration::from_millis(100);
/// Longest transactional id accepted.
pub const TXN_ID_BYTES_MAX: usize = 32_767;

/// Kafka's transaction states (their numbers are Kafka's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
}

impl TxnState {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            _ => return None,
        })
    }
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    /// The producer id and epoch before the last InitProducerId (a retry of it is answered
    /// with the current ones).
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// When the last transaction began (its first AddPartitions), kept once it completed (as
    /// Kafka shows it), -1 after InitProducerId.
    pub start_ms: i64,
    pub update_ms: i64,
    pub partitions: BTreeSet<(String, i32)>,
    /// Transactions V2: the producer id the producer moves to once this transaction completes
    /// (its epoch ran out), -1 when none.
    pub next_producer_id: i64,
    /// The last EndTxn spoke Transactions V2: it bumped the epoch from `last_producer_epoch`
    /// (of `last_producer_id`), which is what a retry of it carries.
    pub ended_v2: bool,
}

impl TxnMeta {
    /// A transactional id's state before its first transaction.
    fn new(producer_id: i64, producer_epoch: i16, timeout_ms: i32, now: i64) -> Self {
        TxnMeta {
            producer_id,
            last_producer_id: -1,
            producer_epoch,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            start_ms: -1,
            update_ms: now,
            partitions: BTreeSet::new(),
            next_producer_id: -1,
            ended_v2: false,
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn key_of(txn_id: &str) -> Vec<u8> {
    let mut k = vec![KEY_VERSION];
    put_str(&mut k, txn_id);
    k
}

fn encode_value(m: &TxnMeta) -> Vec<u8> {
    let mut v = vec![VALUE_VERSION];
    v.extend_from_slice(&m.producer_id.to_be_bytes());
    v.extend_from_slice(&m.last_producer_id.to_be_bytes());
    v.extend_from_slice(&m.producer_epoch.to_be_bytes());
    v.extend_from_slice(&m.last_producer_epoch.to_be_bytes());
    v.extend_from_slice(&m.timeout_ms.to_be_bytes());
    v.push(m.state as u8);
    v.extend_from_slice(&m.start_ms.to_be_bytes());
    v.extend_from_slice(&m.update_ms.to_be_bytes());
    v.extend_from_slice(&(m.partitions.len() as u32).to_be_bytes());
    for (topic, p) in &m.partitions {
        put_str(&mut v, topic);
        v.extend_from_slice(&p.to_be_bytes());
    }
    v.extend_from_slice(&m.next_producer_id.to_be_bytes());
    v.push(if m.ended_v2 { ENDED_V2 } else { 0 });
    v
}

/// A cursor over a record's bytes; None past the end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        (self.0.len() >= n).then(|| {
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            head
        })
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes(b.try_into().expect("4")))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .map(|b| i64::from_be_bytes(b.try_into().expect("8")))
    }
    fn str(&mut self) -> Option<String> {
        let n = u16::from_be_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode_key(key: &[u8]) -> Option<String> {
    let mut c = Cursor(key);
    (c.u8()? == KEY_VERSION).then_some(())?;
    let id = c.str()?;
    c.0.is_empty().then_some(id)
}

fn decode_value(value: &[u8]) -> Option<TxnMeta> {
    let mut c = Cursor(value);
    let version = c.u8()?;
    matches!(version, VALUE_VERSION | VALUE_VERSION_V1).then_some(())?;
    let mut m = TxnMeta {
        producer_id: c.i64()?,
        last_producer_id: c.i64()?,
        producer_epoch: c.i16()?,
        last_producer_epoch: c.i16()?,
        timeout_ms: c.i32()?,
        state: TxnState::from_u8(c.u8()?)?,
        start_ms: c.i64()?,
        update_ms: c.i64()?,
        partitions: BTreeSet::new(),
        next_producer_id: -1,
        ended_v2: false,
    };
    let n = c.i32()? as u32 as usize;
    if n > c.0.len() / 6 {
        return None;
    }
    for _ in 0..n {
        m.partitions.insert((c.str()?, c.i32()?));
    }
    if version == VALUE_VERSION {
        m.next_producer_id = c.i64()?;
        let flags = c.u8()?;
        (flags & !ENDED_V2 == 0).then_some(())?;
        m.ended_v2 = flags & ENDED_V2 != 0;
    }
    c.0.is_empty().then_some(m)
}

/// The `__transaction_state` partition of a transactional id.
pub fn txn_partition(txn_id: &str, partitions: usize) -> i32 {
    offsets_partition(txn_id, partitions)
}

/// The shard coordinating `txn_id` and its partition, if `__transaction_state` exists.
pub fn coordinator_shard(
    image: &crate::metadata::MetadataImage,
    txn_id: &str,
) -> Option<(usize, i32)> {
    let topic = image.topics.get(TXN_TOPIC)?;
    let p = txn_partition(txn_id, topic.partitions as usize);
    Some((image.placement.owner(&topic.topic_id, p)?, p))
}

struct Entry {
    partition: i32,
    meta: TxnMeta,
    /// A write or a completion is in flight: other requests get CONCURRENT_TRANSACTIONS.
    busy: bool,
}

/// The transactions coordinated on one shard.
pub struct ShardTxns {
    host: Host,
    txns: RefCell<HashMap<String, Entry>>,
    /// Clients of other brokers' listeners, for markers.
    peers: PeerPool,
    /// Notified whenever an entry's state is written or it stops being busy: what an
    /// implicit add waiting for a transaction to complete waits on.
    settled: millrace_shard::sync::Notify,
}

/// The transaction state of `shard` (installed on first use).
pub fn txns_of(shard: &Shard) -> Rc<ShardTxns> {
    shard.subsystems.get_or_install(|| ShardTxns {
        host: Host::default(),
        txns: RefCell::new(HashMap::new()),
        peers: PeerPool::new(PeerConfig {
            client_id: format!("millrace-txn-{}", shard.config.node_id),
            request_timeout: MARKER_TIMEOUT + Duration::from_secs(1),
            route: crate::dial::Route::InterBroker,
            ..PeerConfig::default()
        }),
        settled: millrace_shard::sync::Notify::new(),
    })
}

impl StateMachine for ShardTxns {
    fn topic(&self) -> &'static str {
        TXN_TOPIC
    }

    fn what(&self) -> &'static str {
        "transactions"
    }

    fn replay(&self, partition: i32, _now: i64, record: Replayed<'_>) -> bool {
        let Some(id) = record.key.and_then(decode_key) else {
            return false;
        };
        let mut txns = self.txns.borrow_mut();
        match record.value {
            None => {
                txns.remove(&id);
                true
            }
            Some(v) => match decode_value(v) {
                Some(meta) => {
                    txns.insert(
                        id,
                        Entry {
                            partition,
                            meta,
                            busy: false,
                        },
                    );
                    true
                }
                None => false,
            },
        }
    }

    fn unload(&self, partition: i32, _partitions: usize) -> usize {
        let mut txns = self.txns.borrow_mut();
        let before = txns.len();
        txns.retain(|_, e| e.partition != partition);
        before - txns.len()
    }
}

/// Loads the partitions this shard leads and completes the transactions they left prepared.
pub async fn load(shard: &Rc<Shard>) -> std::io::Result<()> {
    let txns = txns_of(shard);
    txns.host.load(shard, &*txns).await?;
    let prepared: Vec<String> = txns
        .txns
        .borrow()
        .iter()
        .filter(|(_, e)| {
            !e.busy
                && matches!(
                    e.meta.state,
                    TxnState::PrepareCommit | TxnState::PrepareAbort
                )
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in prepared {
        if let Some(e) = txns.txns.borrow_mut().get_mut(&id) {
            e.busy = true;
        }
        millrace_shard::spawn_detached(complete(shard.clone(), id));
    }
    Ok(())
}

/// Re-loads after every image, aborts transactions open past their timeout and forgets ids
/// idle past `transactional.id.expiration.ms`, until the broker stops.
pub async fn watch(shard: Rc<Shard>) {
    let sweeper = shard.clone();
    millrace_shard::spawn_detached(async move {
        let interval = Duration::from_millis(sweeper.config.txn_abort_interval_ms as u64);
        while !sweeper.stopping.get() {
            millrace_shard::time::sleep(interval).await;
            abort_timed_out(&sweeper).await;
        }
    });
    let expirer = shard.clone();
    millrace_shard::spawn_detached(async move {
        let interval = Duration::from_millis(expirer.config.txn_expire_interval_ms as u64);
        while !expirer.stopping.get() {
            millrace_shard::time::sleep(interval).await;
            expire_idle(&expirer).await;
        }
    });
    let again = shard.clone();
    crate::state_log::watch(shard, "transactions", async || load(&again).await).await;
}

/// Why a transactional request is refused; the handler picks the code its version knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnError {
    /// A newer producer has the id: PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for versions
    /// before it.
    Fenced,
    /// Any other code.
    Code(i16),
}

impl TxnError {
    /// The code for a request version: `fenced_from` is the first version knowing
    /// PRODUCER_FENCED.
    pub fn code(self, version: i16, fenced_from: i16) -> i16 {
        match self {
            TxnError::Fenced if version >= fenced_from => code::PRODUCER_FENCED,
            TxnError::Fenced => code::INVALID_PRODUCER_EPOCH,
            TxnError::Code(c) => c,
        }
    }
}

/// A transactional request, run on the coordinating shard.
#[derive(Debug, Clone)]
pub enum TxnOp {
    /// InitProducerId with a transactional id; (producer id, epoch) of a KIP-360 retry, or -1.
    Init {
        timeout_ms: i32,
        producer_id: i64,
        producer_epoch: i16,
    },
    /// AddPartitionsToTxn, and AddOffsetsToTxn (the group's offsets partition). `implicit`:
    /// a partition leader adds it for the producer (Transactions V2: Produce v12,
    /// TxnOffsetCommit v5), and waits a moment for a previous transaction to complete.
    Add {
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
        implicit: bool,
    },
    /// EndTxn; `v2` from v5 (Transactions V2: the epoch is bumped).
    End {
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        v2: bool,
    },
    /// KIP-890: is this partition in the producer's ongoing transaction? (A partition leader
    /// asks before the first transactional append of a producer there.)
    Verify {
        producer_id: i64,
        producer_epoch: i16,
        partition: (String, i32),
    },
}

/// Carries a [`TxnOp`] on `txn_id` to its coordinating shard. The reply is the producer id
/// and epoch (for Init; unchanged otherwise), or why not.
pub struct ForTxn {
    pub txn_id: String,
    pub op: TxnOp,
}

impl Call<Shard> for ForTxn {
    type Reply = Result<(i64, i16), TxnError>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let image = shard.image();
        let topic = image
            .topics
            .get(TXN_TOPIC)
            .ok_or(TxnError::Code(code::COORDINATOR_NOT_AVAILABLE))?;
        let p = txn_partition(&self.txn_id, topic.partitions as usize);
        let txns = txns_of(&shard);
        txns.host
            .serving(&shard, TXN_TOPIC, p)
            .map_err(TxnError::Code)?;
        let now = millrace_shard::time::now_ms();
        match self.op {
            TxnOp::Init {
                timeout_ms,
                producer_id,
                producer_epoch,
            } => {
                init(
                    &shard,
                    &txns,
                    &self.txn_id,
                    p,
                    now,
                    timeout_ms,
                    (producer_id, producer_epoch),
                )
                .await
            }
            TxnOp::Add {
                producer_id,
                producer_epoch,
                partitions,
                implicit,
            } => {
                let wait_ms = if implicit {
                    shard.config.txn_add_wait_max_ms as u64
                } else {
                    0
                };
                add(
                    &shard,
                    &txns,
                    &self.txn_id,
                    (producer_id, producer_epoch),
                    partitions,
                    Duration::from_millis(wait_ms),
                )
                .await
            }
            TxnOp::End {
                producer_id,
                producer_epoch,
                commit,
                v2,
            } => {
                end(
                    &shard,
                    &txns,
                    &self.txn_id,
                    now,
                    (producer_id, producer_epoch),
                    commit,
                    v2,
                )
                .await
            }
            TxnOp::Verify {
                producer_id,
                producer_epoch,
                partition,
            } => verify_here(
                &txns,
                &self.txn_id,
                (producer_id, producer_epoch),
                &partition,
            ),
        }
    }
}

/// The coordinator's side of [`TxnOp::Verify`].
fn verify_here(
    txns: &ShardTxns,
    txn_id: &str,
    producer: (i64, i16),
    partition: &(String, i32),
) -> Result<(i64, i16), TxnError> {
    let m = match checked(txns, txn_id, producer) {
        // A write in flight (an AddPartitions, say): the state before it is what the client
        // was answered on.
        Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS)) => txns
            .txns
            .borrow()
            .get(txn_id)
            .map(|e| e.meta.clone())
            .expect("checked found it"),
        other => other?.1,
    };
    match m.state {
        TxnState::Ongoing if m.partitions.contains(partition) => Ok(producer),
        TxnState::PrepareCommit | TxnState::PrepareAbort => {
            Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS))
        }
        _ => Err(TxnError::Code(code::TRANSACTION_ABORTABLE)),
    }
}

/// Runs `op` on `txn_id`'s coordinating shard, from any shard of this broker: NOT_COORDINATOR
/// when no shard here holds its `__transaction_state` partition, COORDINATOR_NOT_AVAILABLE
/// while that topic does not exist or the shard is stopping.
pub async fn on_coordinator(
    shard: &Rc<Shard>,
    txn_id: &str,
    op: TxnOp,
) -> Result<(i64, i16), TxnError> {
    let image = shard.image();
    if !image.topics.contains_key(TXN_TOPIC) {
        return Err(TxnError::Code(code::COORDINATOR_NOT_AVAILABLE));
    }
    let Some((owner, _)) = coordinator_shard(&image, txn_id) else {
        return Err(TxnError::Code(code::NOT_COORDINATOR));
    };
    let call = ForTxn {
        txn_id: txn_id.to_string(),
        op,
    };
    shard
        .call(owner, call)
        .await
        .unwrap_or(Err(TxnError::Code(code::COORDINATOR_NOT_AVAILABLE)))
}

/// KIP-890 on a partition's leader, before a producer's first transactional write there:
/// asks the coordinator of `txn_id` whether `partition` is in the producer's ongoing
/// transaction (part 1, `add` false), or has it added (Transactions V2, `add` true), on this
/// broker over the mesh or on the coordinator's broker with AddPartitionsToTxn v5 (its
/// `verify_only` form for part 1). The error is the coordinator's; a coordinator out of reach
/// is COORDINATOR_NOT_AVAILABLE.
pub async fn verify(
    shard: &Rc<Shard>,
    txn_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    partition: (String, i32),
    add: bool,
) -> Result<(), TxnError> {
    let image = shard.image();
    let unavailable = TxnError::Code(code::COORDINATOR_NOT_AVAILABLE);
    let topic = image.topics.get(TXN_TOPIC).ok_or(unavailable)?;
    let p = txn_partition(txn_id, topic.partitions as usize);
    let leader = image
        .cluster
        .partition(&topic.topic_id, p)
        .map_or(-1, |s| s.leader);
    if leader == shard.config.node_id {
        let op = if add {
            TxnOp::Add {
                producer_id,
                producer_epoch,
                partitions: vec![partition],
                implicit: true,
            }
        } else {
            TxnOp::Verify {
                producer_id,
                producer_epoch,
                partition,
            }
        };
        return on_coordinator(shard, txn_id, op).await.map(|_| ());
    }
    if leader < 0 {
        return Err(unavailable);
    }
    let txns = txns_of(shard);
    let client = peer(shard, &txns, leader).map_err(|_| unavailable)?;
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    use kafka_protocol::messages::{AddPartitionsToTxnRequest, TransactionalId};
    let (topic_name, index) = partition;
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(
                kafka_protocol::protocol::StrBytes::from_string(txn_id.to_string()),
            ))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_verify_only(!add)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_string(
                    topic_name,
                )))
                .with_partitions(vec![index])]),
    ]);
    let resp = client.request(5, &req).await.map_err(|_| unavailable)?;
    if resp.error_code != code::NONE {
        return Err(TxnError::Code(resp.error_code));
    }
    let error = resp
        .results_by_transaction
        .iter()
        .flat_map(|t| &t.topic_results)
        .flat_map(|t| &t.results_by_partition)
        .map(|p| p.partition_error_code)
        .find(|&e| e != code::NONE);
    match error {
        None => Ok(()),
        Some(code::PRODUCER_FENCED) => Err(TxnError::Fenced),
        Some(e) => Err(TxnError::Code(e)),
    }
}

/// The client of broker `broker`'s client listener.
fn peer(shard: &Shard, txns: &ShardTxns, broker: i32) -> Result<Rc<PeerClient>, String> {
    let addr = crate::follower::leader_address(shard, broker)?;
    Ok(txns.peers.get(broker, addr))
}

/// The entry of `txn_id`, checked against the producer a request names: no entry or another
/// producer id is INVALID_PRODUCER_ID_MAPPING, another epoch is fenced, a write in flight is
/// CONCURRENT_TRANSACTIONS.
fn checked(
    txns: &ShardTxns,
    txn_id: &str,
    (pid, epoch): (i64, i16),
) -> Result<(i32, TxnMeta), TxnError> {
    let map = txns.txns.borrow();
    let e = map
        .get(txn_id)
        .ok_or(TxnError::Code(code::INVALID_PRODUCER_ID_MAPPING))?;
    if e.meta.producer_id != pid {
        return Err(TxnError::Code(code::INVALID_PRODUCER_ID_MAPPING));
    }
    if e.meta.producer_epoch != epoch {
        return Err(TxnError::Fenced);
    }
    if e.busy {
        return Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS));
    }
    Ok((e.partition, e.meta.clone()))
}

/// Appends `meta` for `txn_id` and, once it is committed, makes it the state. The entry is
/// busy meanwhile (unless `keep_busy`, it is free again afterwards, also on failure).
async fn persist(
    shard: &Shard,
    txns: &ShardTxns,
    txn_id: &str,
    partition: i32,
    meta: TxnMeta,
    keep_busy: bool,
) -> Result<(), TxnError> {
    {
        let mut map = txns.txns.borrow_mut();
        if let Some(e) = map.get_mut(txn_id) {
            e.busy = true;
        }
    }
    let record = NewRecord {
        timestamp: meta.update_ms,
        key: Some(key_of(txn_id)),
        value: Some(encode_value(&meta)),
        headers: Vec::new(),
    };
    let written = txns
        .host
        .append(shard, (TXN_TOPIC, partition), &[record], WRITE_TIMEOUT)
        .await;
    let Err(error) = written else {
        let entry = Entry {
            partition,
            meta,
            busy: keep_busy,
        };
        txns.txns.borrow_mut().insert(txn_id.to_string(), entry);
        txns.settled.notify_all();
        return Ok(());
    };
    release(txns, txn_id);
    Err(TxnError::Code(error))
}

async fn init(
    shard: &Rc<Shard>,
    txns: &Rc<ShardTxns>,
    txn_id: &str,
    partition: i32,
    now: i64,
    timeout_ms: i32,
    (req_pid, req_epoch): (i64, i16),
) -> Result<(i64, i16), TxnError> {
    if timeout_ms <= 0 || i64::from(timeout_ms) > shard.config.txn_max_timeout_ms {
        return Err(TxnError::Code(code::INVALID_TRANSACTION_TIMEOUT));
    }
    let current = {
        let map = txns.txns.borrow();
        match map.get(txn_id) {
            Some(e) if e.busy => return Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS)),
            Some(e) => Some(e.meta.clone()),
            None => None,
        }
    };
    let Some(m) = current else {
        let producer_id = new_producer_id(shard).await?;
        let meta = TxnMeta::new(producer_id, 0, timeout_ms, now);
        persist(shard, txns, txn_id, partition, meta, false).await?;
        return Ok((producer_id, 0));
    };
    if req_pid >= 0 {
        // KIP-360: the producer says who it was; a retry of the last init gets its answer.
        let current = (m.producer_id, m.producer_epoch);
        let previous = (m.last_producer_id, m.last_producer_epoch);
        if (req_pid, req_epoch) != current && (req_pid, req_epoch) != previous {
            return Err(TxnError::Fenced);
        }
        if (req_pid, req_epoch) == previous && m.state == TxnState::Empty {
            return Ok(current);
        }
    }
    match m.state {
        TxnState::PrepareCommit | TxnState::PrepareAbort => {
            Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS))
        }
        TxnState::Ongoing => {
            // Fence the old producer: abort its transaction under a bumped epoch; the client
            // retries and finds the abort complete.
            fence_and_abort(shard, txns, txn_id, partition, m, now).await?;
            Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS))
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let (producer_id, producer_epoch) = if m.producer_epoch >= i16::MAX - 1 {
                (new_producer_id(shard).await?, 0)
            } else {
                (m.producer_id, m.producer_epoch + 1)
            };
            let meta = TxnMeta {
                last_producer_id: m.producer_id,
                last_producer_epoch: m.producer_epoch,
                ..TxnMeta::new(producer_id, producer_epoch, timeout_ms, now)
            };
            persist(shard, txns, txn_id, partition, meta, false).await?;
            Ok((producer_id, producer_epoch))
        }
    }
}

/// A producer id no one has had, from this broker's block (the controller hands blocks out).
async fn new_producer_id(shard: &Rc<Shard>) -> Result<i64, TxnError> {
    let controller = Shard::controller_shard();
    match shard
        .call(controller, crate::controller::AllocateProducerId)
        .await
    {
        Ok(Ok(id)) => Ok(id),
        _ => Err(TxnError::Code(code::COORDINATOR_NOT_AVAILABLE)),
    }
}

/// Moves an Ongoing transaction to PrepareAbort under a bumped epoch and starts its markers.
async fn fence_and_abort(
    shard: &Rc<Shard>,
    txns: &Rc<ShardTxns>,
    txn_id: &str,
    partition: i32,
    m: TxnMeta,
    now: i64,
) -> Result<(), TxnError> {
    // Not an EndTxn of the producer: a retry of its own EndTxn must not match this bump.
    let meta = TxnMeta {
        last_producer_id: m.producer_id,
        last_producer_epoch: m.producer_epoch,
        producer_epoch: m.producer_epoch.saturating_add(1),
        state: TxnState::PrepareAbort,
        update_ms: now,
        ended_v2: false,
        ..m
    };
    persist(shard, txns, txn_id, partition, meta, true).await?;
    millrace_shard::spawn_detached(complete(shard.clone(), txn_id.to_string()));
    Ok(())
}

/// AddPartitionsToTxn on the coordinator. An implicit add (`wait` > 0) that finds the
/// producer's previous transaction still completing waits for it, up to `wait`, instead of
/// answering CONCURRENT_TRANSACTIONS at once: under Transactions V2 the producer starts its
/// next transaction as soon as EndTxn answers, while the markers are still being written.
async fn add(
    shard: &Rc<Shard>,
    txns: &Rc<ShardTxns>,
    txn_id: &str,
    producer: (i64, i16),
    partitions: Vec<(String, i32)>,
    wait: Duration,
) -> Result<(i64, i16), TxnError> {
    let deadline = millrace_shard::time::Instant::now() + wait;
    loop {
        let seen = txns.settled.generation();
        let now = millrace_shard::time::now_ms();
        match add_once(shard, txns, txn_id, now, producer, &partitions).await {
            Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS)) => {
                let left = deadline.saturating_duration_since(millrace_shard::time::Instant::now());
                if left.is_zero() {
                    return Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS));
                }
                millrace_shard::time::timeout(left, txns.settled.changed_since(seen)).await;
            }
            other => return other,
        }
    }
}

async fn add_once(
    shard: &Rc<Shard>,
    txns: &Rc<ShardTxns>,
    txn_id: &str,
    now: i64,
    producer: (i64, i16),
    partitions: &[(String, i32)],
) -> Result<(i64, i16), TxnError> {
    let (partition, m) = checked(txns, txn_id, producer)?;
    if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
        return Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS));
    }
    let ongoing = m.state == TxnState::Ongoing;
    if ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
        return Ok(producer);
    }
    let mut meta = m;
    meta.partitions.extend(partitions.iter().cloned());
    if !ongoing {
        meta.start_ms = now;
    }
    meta.state = TxnState::Ongoing;
    meta.update_ms = now;
    meta.ended_v2 = false;
    persist(shard, txns, txn_id, partition, meta, false).await?;
    Ok(producer)
}

/// EndTxn on the coordinator: the producer id and epoch the producer goes on with (under
/// Transactions V1 the ones it sent).
async fn end(
    shard: &Rc<Shard>,
    txns: &Rc<ShardTxns>,
    txn_id: &str,
    now: i64,
    (pid, epoch): (i64, i16),
    commit: bool,
    v2: bool,
) -> Result<(i64, i16), TxnError> {
    let (partition, m, busy) = {
        let map = txns.txns.borrow();
        let e = map
            .get(txn_id)
            .ok_or(TxnError::Code(code::INVALID_PRODUCER_ID_MAPPING))?;
        (e.partition, e.meta.clone(), e.busy)
    };
    let ending = matches!(
        m.state,
        TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort
    );
    // Under V2 a retry carries the epoch the ended transaction had, one below the current
    // one (or the old id, when the bump moved to a new one).
    if m.ended_v2 && ending && (m.last_producer_id, m.last_producer_epoch) == (pid, epoch) {
        return match (m.state, commit) {
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok((m.producer_id, m.producer_epoch))
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS))
            }
            _ => Err(TxnError::Code(code::INVALID_TXN_STATE)),
        };
    }
    if m.producer_id != pid {
        return Err(TxnError::Code(code::INVALID_PRODUCER_ID_MAPPING));
    }
    if m.producer_epoch != epoch {
        return Err(TxnError::Fenced);
    }
    // A V1 EndTxn retried while its markers are being written finds the entry busy:
    // CONCURRENT_TRANSACTIONS, and the client retries.
    if busy {
        return Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS));
    }
    match (m.state, commit) {
        (TxnState::Ongoing, _) => {
            let mut meta = TxnMeta {
                state: if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                },
                update_ms: now,
                ended_v2: v2,
                ..m
            };
            if v2 {
                bump_for_end(shard, &mut meta).await?;
            }
            let answer = next_producer(&meta);
            persist(shard, txns, txn_id, partition, meta, true).await?;
            millrace_shard::spawn_detached(complete(shard.clone(), txn_id.to_string()));
            Ok(answer)
        }
        // An abort with nothing added: under V2 the producer may have sent records whose
        // partitions were never added (their Produce failed), and it aborts to go on. The
        // epoch is bumped all the same, so that a delayed request of it is fenced; there is
        // nothing to mark.
        (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false) if v2 => {
            let mut meta = TxnMeta {
                state: TxnState::CompleteAbort,
                partitions: BTreeSet::new(),
                update_ms: now,
                ended_v2: true,
                ..m
            };
            bump_for_end(shard, &mut meta).await?;
            rotate(&mut meta);
            let answer = (meta.producer_id, meta.producer_epoch);
            persist(shard, txns, txn_id, partition, meta, false).await?;
            Ok(answer)
        }
        // The V1 retry of an EndTxn that completed.
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if !v2 => {
            Ok((pid, epoch))
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(TxnError::Code(code::CONCURRENT_TRANSACTIONS))
        }
        _ => Err(TxnError::Code(code::INVALID_TXN_STATE)),
    }
}

/// The V2 epoch bump of an EndTxn, on `meta` (which still has the producer's id and epoch):
/// epoch + 1, and from epoch 32766 a new producer id to move to once the markers are
/// written (they carry the old id at 32767).
async fn bump_for_end(shard: &Rc<Shard>, meta: &mut TxnMeta) -> Result<(), TxnError> {
    meta.last_producer_id = meta.producer_id;
    meta.last_producer_epoch = meta.producer_epoch;
    if meta.producer_epoch >= i16::MAX - 1 {
        meta.next_producer_id = new_producer_id(shard).await?;
    }
    meta.producer_epoch = meta
        .producer_epoch
        .checked_add(1)
        .ok_or(TxnError::Code(code::INVALID_TXN_STATE))?;
    Ok(())
}

/// Where the producer goes on once `meta`'s transaction completes.
fn next_producer(meta: &TxnMeta) -> (i64, i16) {
    if meta.next_producer_id >= 0 {
        (meta.next_producer_id, 0)
    } else {
        (meta.producer_id, meta.producer_epoch)
    }
}

/// Moves a completing transaction's producer to its next id, if it has one.
fn rotate(meta: &mut TxnMeta) {
    (meta.producer_id, meta.producer_epoch) = next_producer(meta);
    meta.next_producer_id = -1;
}

/// Writes the markers of a prepared transaction to every partition in it, then records it
/// complete. Runs while the entry is busy; stops (leaving it to the next coordinator) when
/// this shard no longer serves its partition.
async fn complete(shard: Rc<Shard>, txn_id: String) {
    let txns = txns_of(&shard);
    loop {
        let Some((partition, m)) = txns
            .txns
            .borrow()
            .get(&txn_id)
            .map(|e| (e.partition, e.meta.clone()))
        else {
            return;
        };
        let commit = match m.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => {
                release(&txns, &txn_id);
                return;
            }
        };
        if txns.host.serving(&shard, TXN_TOPIC, partition).is_err() || shard.stopping.get() {
            return;
        }
        let Some(coordinator_epoch) = shard
            .partition(TXN_TOPIC, partition)
            .map(|p| p.leader_epoch().0)
        else {
            return;
        };
        let marker = TxnMarker {
            commit,
            coordinator_epoch,
        };
        let mut left: BTreeSet<(String, i32)> = m.partitions.clone();
        while !left.is_empty() {
            if txns.host.serving(&shard, TXN_TOPIC, partition).is_err() || shard.stopping.get() {
                return;
            }
            let failed = write_markers(
                &shard,
                &txns,
                m.producer_id,
                m.producer_epoch,
                marker,
                &left,
            )
            .await;
            left = failed;
            if !left.is_empty() {
                millrace_shard::time::sleep(MARKER_RETRY).await;
            }
        }
        let now = millrace_shard::time::now_ms();
        let mut meta = TxnMeta {
            state: if commit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            },
            partitions: BTreeSet::new(),
            update_ms: now,
            ..m
        };
        rotate(&mut meta);
        match persist(&shard, &txns, &txn_id, partition, meta, false).await {
            Ok(()) => {
                tracing::debug!(txn_id, commit, "transaction complete");
                return;
            }
            Err(e) => {
                tracing::warn!(txn_id, ?e, "recording a completed transaction; retrying");
                if let Some(entry) = txns.txns.borrow_mut().get_mut(&txn_id) {
                    entry.busy = true;
                }
                millrace_shard::time::sleep(MARKER_RETRY).await;
            }
        }
    }
}

fn release(txns: &ShardTxns, txn_id: &str) {
    if let Some(e) = txns.txns.borrow_mut().get_mut(txn_id) {
        e.busy = false;
    }
    txns.settled.notify_all();
}

/// One round of markers: returns the partitions whose marker did not land (a deleted topic
/// or partition counts as done: there is nothing left to mark).
async fn write_markers(
    shard: &Rc<Shard>,
    txns: &ShardTxns,
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
    partitions: &BTreeSet<(String, i32)>,
) -> BTreeSet<(String, i32)> {
    let image = shard.image();
    let me = shard.config.node_id;
    let mut local: BTreeMap<usize, Vec<(usize, MarkerItem)>> = BTreeMap::new();
    let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    let mut failed = BTreeSet::new();
    for (slot, (topic, p)) in partitions.iter().enumerate() {
        let Some(meta) = image.topics.get(topic.as_str()) else {
            continue;
        };
        if *p >= meta.partitions {
            continue;
        }
        let leader = image
            .cluster
            .partition(&meta.topic_id, *p)
            .map_or(-1, |s| s.leader);
        if leader < 0 {
            failed.insert((topic.clone(), *p));
        } else if leader == me {
            match image.owner(topic, *p) {
                Some(owner) => local.entry(owner).or_default().push((
                    slot,
                    MarkerItem {
                        topic: topic.clone(),
                        partition: *p,
                        producer_id,
                        producer_epoch,
                        marker,
                    },
                )),
                None => {
                    failed.insert((topic.clone(), *p));
                }
            }
        } else {
            remote.entry(leader).or_default().push((topic.clone(), *p));
        }
    }
    for (owner, items) in local {
        let names: Vec<(String, i32)> = items
            .iter()
            .map(|(_, i)| (i.topic.clone(), i.partition))
            .collect();
        match shard.call(owner, MarkersOnOwner { items }).await {
            Ok(codes) => {
                for ((topic, p), (_, error)) in names.into_iter().zip(codes) {
                    if error != code::NONE {
                        tracing::debug!(topic, partition = p, error, "marker not written");
                        failed.insert((topic, p));
                    }
                }
            }
            Err(_) => failed.extend(names),
        }
    }
    for (broker, parts) in remote {
        match send_markers(
            shard,
            txns,
            broker,
            producer_id,
            producer_epoch,
            marker,
            &parts,
        )
        .await
        {
            Ok(not_written) => failed.extend(not_written),
            Err(e) => {
                tracing::debug!(broker, error = %e, "markers not delivered");
                failed.extend(parts);
            }
        }
    }
    failed
}

/// WriteTxnMarkers v1 to broker `broker`: the partitions whose marker it did not write.
async fn send_markers(
    shard: &Shard,
    txns: &ShardTxns,
    broker: i32,
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
    parts: &[(String, i32)],
) -> Result<Vec<(String, i32)>, String> {
    let client = peer(shard, txns, broker)?;
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        topics.entry(t.as_str()).or_default().push(*p);
    }
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_transaction_result(marker.commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_string(
                            t.to_string(),
                        )))
                        .with_partition_indexes(ps)
                })
                .collect(),
        )]);
    let resp = client.request(1, &req).await.map_err(|e| e.to_string())?;
    let mut failed = Vec::new();
    for m in &resp.markers {
        for t in &m.topics {
            for p in &t.partitions {
                if p.error_code != code::NONE {
                    failed.push((t.name.0.to_string(), p.partition_index));
                }
            }
        }
    }
    Ok(failed)
}

/// Sets the producer epoch of `txn_id` (coordinated on `shard`), durably: lets a test reach the
/// end of the epoch range without 32,000 InitProducerIds.
#[cfg(test)]
pub async fn force_epoch(shard: &Rc<Shard>, txn_id: &str, epoch: i16) {
    let txns = txns_of(shard);
    let (partition, mut meta) = {
        let map = txns.txns.borrow();
        let e = map.get(txn_id).expect("an initialized transactional id");
        (e.partition, e.meta.clone())
    };
    meta.producer_epoch = epoch;
    persist(shard, &txns, txn_id, partition, meta, false)
        .await
        .expect("written");
}

/// Aborts, under a bumped epoch, every transaction of this shard open past its timeout.
async fn abort_timed_out(shard: &Rc<Shard>) {
    let txns = txns_of(shard);
    let now = millrace_shard::time::now_ms();
    let expired: Vec<(String, i32, TxnMeta)> = txns
        .txns
        .borrow()
        .iter()
        .filter(|(_, e)| {
            !e.busy
                && e.meta.state == TxnState::Ongoing
                && e.meta.start_ms >= 0
                && now - e.meta.start_ms > i64::from(e.meta.timeout_ms)
        })
        .map(|(id, e)| (id.clone(), e.partition, e.meta.clone()))
        .collect();
    for (id, partition, meta) in expired {
        if txns.host.serving(shard, TXN_TOPIC, partition).is_err() {
            continue;
        }
        tracing::info!(
            txn_id = id,
            producer_id = meta.producer_id,
            "aborting a transaction open past its timeout"
        );
        if let Err(e) = fence_and_abort(shard, &txns, &id, partition, meta, now).await {
            tracing::warn!(txn_id = id, ?e, "aborting a timed-out transaction");
        }
    }
}

/// Whether an id may be forgotten at `now`: no transaction open or completing, nothing in
/// flight, no request for longer than `expiration_ms` (Kafka's rule).
fn expirable(e: &Entry, now: i64, expiration_ms: i64) -> bool {
    let settled = matches!(
        e.meta.state,
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
    );
    settled && !e.busy && now - e.meta.update_ms > expiration_ms
}

/// Forgets the ids of this shard idle past `transactional.id.expiration.ms`: a tombstone in
/// `__transaction_state` (durable before the id leaves memory, so a reload agrees), as Kafka's
/// coordinator expires them.
async fn expire_idle(shard: &Rc<Shard>) {
    let txns = txns_of(shard);
    let now = millrace_shard::time::now_ms();
    let expiration = shard.config.txn_id_expiration_ms;
    let idle: Vec<(String, i32, i64)> = txns
        .txns
        .borrow()
        .iter()
        .filter(|(_, e)| expirable(e, now, expiration))
        .map(|(id, e)| (id.clone(), e.partition, e.meta.update_ms))
        .collect();
    for (id, partition, updated) in idle {
        if txns.host.serving(shard, TXN_TOPIC, partition).is_err() {
            continue;
        }
        {
            let mut map = txns.txns.borrow_mut();
            // Rechecked: a request may have come in while earlier ids were written.
            match map.get_mut(&id) {
                Some(e) if expirable(e, now, expiration) => e.busy = true,
                _ => continue,
            }
        }
        let tombstone = NewRecord {
            timestamp: now,
            key: Some(key_of(&id)),
            value: None,
            headers: Vec::new(),
        };
        let place = (TXN_TOPIC, partition);
        match txns
            .host
            .append(shard, place, &[tombstone], WRITE_TIMEOUT)
            .await
        {
            Ok(_) => {
                let mut map = txns.txns.borrow_mut();
                // A state written meanwhile (after the tombstone) stays.
                if map.get(&id).is_some_and(|e| e.meta.update_ms == updated) {
                    map.remove(&id);
                    tracing::info!(txn_id = id, "transactional id expired");
                }
            }
            Err(error) => {
                release(&txns, &id);
                tracing::warn!(txn_id = id, error, "expiring a transactional id");
            }
        }
    }
}

/// One marker for a partition the target shard owns.
#[derive(Debug, Clone)]
pub struct MarkerItem {
    pub topic: String,
    pub partition: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub marker: TxnMarker,
}

/// Writes markers to partitions the target shard leads, each committed (acks=all) before it
/// is answered: one code per item, in order.
pub struct MarkersOnOwner {
    pub items: Vec<(usize, MarkerItem)>,
}

impl Call<Shard> for MarkersOnOwner {
    type Reply = Vec<(usize, i16)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let now = millrace_shard::time::now_ms();
        let mut waits = Vec::new();
        let mut out = Vec::new();
        for (slot, m) in self.items {
            let Some(partition) = shard.partition(&m.topic, m.partition) else {
                out.push((slot, code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if !partition.is_leader() {
                out.push((slot, code::NOT_LEADER_OR_FOLLOWER));
                continue;
            }
            if let Err(refusal) = partition.check_acks_all() {
                out.push((slot, refusal_code(refusal)));
                continue;
            }
            let epoch = partition.leader_epoch();
            match partition.append_marker(m.producer_id, m.producer_epoch, m.marker, now) {
                Ok(appended) => waits.push((slot, partition, appended.last_offset, epoch, m)),
                Err(e) => out.push((slot, storage_code(&e))),
            }
        }
        for (slot, partition, last, epoch, m) in waits {
            let committed = partition
                .committed(last, epoch, Acks::All, MARKER_TIMEOUT)
                .await;
            let error = match committed {
                Ok(()) => {
                    if m.topic == crate::coordinator::OFFSETS_TOPIC {
                        // The group coordinator's transactional offsets settle with it.
                        let commit = m.marker.commit;
                        crate::coordinator::on_marker(&shard, m.partition, m.producer_id, commit);
                    }
                    code::NONE
                }
                Err(CommitError::Refused(r)) => refusal_code(r),
                Err(CommitError::TimedOut) => code::REQUEST_TIMED_OUT,
                Err(CommitError::Storage(e)) => storage_code(&e),
            };
            out.push((slot, error));
        }
        out.sort_by_key(|(slot, _)| *slot);
        out
    }
}

fn refusal_code(r: AcksRefusal) -> i16 {
    match r {
        AcksRefusal::NotLeader => code::NOT_LEADER_OR_FOLLOWER,
        _ => code::NOT_ENOUGH_REPLICAS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let meta = TxnMeta {
            producer_id: 7,
            last_producer_id: 6,
            producer_epoch: 3,
            last_producer_epoch: 2,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            start_ms: 10,
            update_ms: 20,
            partitions: [("a".to_string(), 0), ("b".to_string(), 3)].into(),
            next_producer_id: 9,
            ended_v2: true,
        };
        let v = encode_value(&meta);
        assert_eq!(decode_value(&v), Some(meta.clone()));
        assert_eq!(decode_key(&key_of("tx-1")).as_deref(), Some("tx-1"));
        for cut in 0..v.len() {
            assert_eq!(decode_value(&v[..cut]), None, "cut at {cut}");
        }
        // The layout before Transactions V2 still loads: no next producer id, not ended by V2.
        let mut v1 = v[..v.len() - 9].to_vec();
        v1[0] = VALUE_VERSION_V1;
        let old = TxnMeta {
            next_producer_id: -1,
            ended_v2: false,
            ..meta.clone()
        };
        assert_eq!(decode_value(&v1), Some(old));
        let mut bad_flags = v.clone();
        *bad_flags.last_mut().unwrap() = 2;
        assert_eq!(decode_value(&bad_flags), None);
        let mut bad_state = v.clone();
        bad_state[1 + 8 + 8 + 2 + 2 + 4] = 9;
        assert_eq!(decode_value(&bad_state), None);
        assert_eq!(decode_key(&[2, 0, 1, b'x']), None);
    }

    #[test]
    fn fenced_codes_follow_the_request_version() {
        assert_eq!(TxnError::Fenced.code(3, 4), code::INVALID_PRODUCER_EPOCH);
        assert_eq!(TxnError::Fenced.code(4, 4), code::PRODUCER_FENCED);
        assert_eq!(
            TxnError::Code(code::CONCURRENT_TRANSACTIONS).code(0, 2),
            code::CONCURRENT_TRANSACTIONS
        );
    }
}
