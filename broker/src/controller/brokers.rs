//! The active controller's side of the broker lifecycle, as Kafka's `ClusterControlManager`
//! and `BrokerHeartbeatManager` do it: BrokerRegistration, BrokerHeartbeat (sessions,
//! fencing, unfencing) and AllocateProducerIds, each a [`Call`] the controller listener's
//! handlers send to the controller's shard.
//!
//! * **Registration** commits a RegisterBrokerRecord at the next log offset, which becomes the
//!   broker epoch; the broker starts fenced. A second process with the same `node.id` is
//!   refused (DUPLICATE_BROKER_REGISTRATION) while the first one's session lives.
//! * **Heartbeats** carry the broker epoch (anything else is STALE_BROKER_EPOCH) and the
//!   offset of the last metadata the broker applied. Each one renews the broker's session
//!   (`broker.session.timeout.ms`). A fenced broker whose metadata reached its own
//!   registration is caught up: the controller unfences it, which gives its partitions back
//!   their leader.
//! * **Sessions** live only in the active controller's memory. A broker whose session expires
//!   is fenced (its partitions lose their leader, Kafka's offline partitions). A controller
//!   that starts leading a new term gives every registered broker a full session from then,
//!   as Kafka's new active controller does, so an election alone fences nobody.
//! * **Producer ids** come in blocks of [`PRODUCER_ID_BLOCK`], each a committed
//!   ProducerIdsRecord that moves the cluster's next id past it, so no id is handed out twice,
//!   across controllers and restarts.
//!
//! Every decision is taken under the controller's turn and only once the node is ready to
//! lead ([`Controller::ready_to_lead`]); otherwise the answer is NOT_CONTROLLER and the
//! broker asks the controller it learns of next.

use super::{commit_error, Controller};
use crate::errors::code;
use crate::mesh::Call;
use crate::metadata::{Draft, PRODUCER_ID_BLOCK};
use crate::shard::Shard;
use millrace_replication::metadata::control::{self, BrokerRegistrationRequest};
use millrace_replication::metadata::{ClusterImage, MetadataRecord, ProducerIdsRecord};
use millrace_replication::ReplicationError;
use millrace_shard::sync::TurnGuard;
use millrace_shard::time::Instant;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// An error code and its message.
pub type Refusal = (i16, String);

/// The sessions the active controller tracks: broker id → when its session ends.
#[derive(Default)]
pub struct Sessions {
    /// The term the table was built for (0: none yet).
    term: Cell<u64>,
    deadlines: RefCell<HashMap<i32, Instant>>,
}

impl Sessions {
    /// True if `broker_id` holds a session that has not ended at `now`.
    fn live(&self, broker_id: i32, now: Instant) -> bool {
        self.deadlines
            .borrow()
            .get(&broker_id)
            .is_some_and(|d| *d > now)
    }

    /// Renews `broker_id`'s session until `deadline`.
    fn renew(&self, broker_id: i32, deadline: Instant) {
        self.deadlines.borrow_mut().insert(broker_id, deadline);
    }

    /// Gives every registered broker a session until `deadline` when `term` is new to the
    /// table (this node just started leading it).
    fn begin_term(&self, term: u64, image: &ClusterImage, deadline: Instant) {
        if self.term.get() == term {
            return;
        }
        self.term.set(term);
        let mut deadlines = self.deadlines.borrow_mut();
        deadlines.clear();
        for b in image.brokers() {
            deadlines.insert(b.broker_id, deadline);
        }
    }

    /// The unfenced brokers whose session ended by `now`.
    fn expired(&self, image: &ClusterImage, now: Instant) -> Vec<i32> {
        let deadlines = self.deadlines.borrow();
        image
            .brokers()
            .filter(|b| !b.fenced)
            .filter(|b| deadlines.get(&b.broker_id).is_none_or(|d| *d <= now))
            .map(|b| b.broker_id)
            .collect()
    }
}

/// BrokerRegistration: registers a broker; answers its new broker epoch.
pub struct RegisterBroker {
    /// The cluster the broker believes it joins.
    pub cluster_id: String,
    /// What the broker sent.
    pub request: BrokerRegistrationRequest,
}

/// BrokerHeartbeat.
pub struct Heartbeat {
    /// The broker.
    pub broker_id: i32,
    /// Its registration's epoch, as it knows it.
    pub broker_epoch: i64,
    /// The last metadata offset it applied.
    pub metadata_offset: i64,
    /// It asks to be fenced.
    pub want_fence: bool,
    /// It is shutting down.
    pub want_shut_down: bool,
}

/// The answer to a [`Heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// Its metadata reached its registration.
    pub is_caught_up: bool,
    /// It is fenced (after this heartbeat's change, if any).
    pub is_fenced: bool,
    /// It may stop now.
    pub should_shut_down: bool,
}

/// AllocateProducerIds: a block of producer ids for a broker; answers (first id, count).
pub struct AllocateProducerIds {
    /// The broker.
    pub broker_id: i32,
    /// Its registration's epoch, as it knows it.
    pub broker_epoch: i64,
}

fn not_controller() -> Refusal {
    (
        code::NOT_CONTROLLER,
        "this node is not the active controller".into(),
    )
}

/// The controller, if it is ready to lead; NOT_CONTROLLER otherwise.
fn leading(shard: &Shard) -> Result<Rc<Controller>, Refusal> {
    let controller = shard
        .subsystems
        .get::<Controller>()
        .ok_or_else(not_controller)?;
    if !controller.ready_to_lead() {
        return Err(not_controller());
    }
    Ok(controller)
}

/// The controller's turn, once it is free, if the controller still leads then.
async fn take_turn(controller: &Controller) -> Result<TurnGuard<'_>, Refusal> {
    let turn = controller.turn.lock().await;
    if !controller.ready_to_lead() {
        return Err(not_controller());
    }
    Ok(turn)
}

fn session_timeout(shard: &Shard) -> Duration {
    super::ms(shard.config.cluster.timings.session_timeout_ms)
}

/// Commits `records` as one change of `controller`'s view.
pub(super) async fn commit(
    shard: &Rc<Shard>,
    controller: &Controller,
    records: Vec<MetadataRecord>,
) -> Result<(), Refusal> {
    if records.is_empty() {
        return Ok(());
    }
    let mut draft = Draft::new(&controller.current(), shard.shards, shard.config.node_id);
    draft
        .push_all(records)
        .map_err(|e| (code::UNKNOWN_SERVER_ERROR, e.to_string()))?;
    controller.commit(draft).await.map_err(commit_error)
}

/// The broker's registration, if `broker_epoch` is its current one.
fn current_broker(
    image: &ClusterImage,
    broker_id: i32,
    broker_epoch: i64,
) -> Result<&millrace_replication::metadata::BrokerImage, Refusal> {
    let Some(broker) = image.broker(broker_id) else {
        return Err((
            code::BROKER_ID_NOT_REGISTERED,
            format!("broker {broker_id} is not registered"),
        ));
    };
    if broker.broker_epoch != broker_epoch {
        return Err((
            code::STALE_BROKER_EPOCH,
            format!(
                "broker {broker_id}'s epoch is {}, not {broker_epoch}",
                broker.broker_epoch
            ),
        ));
    }
    Ok(broker)
}

impl Call<Shard> for RegisterBroker {
    type Reply = Result<i64, Refusal>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let controller = leading(&shard)?;
        let _turn = take_turn(&controller).await?;
        let current = controller.current();
        if self.cluster_id != current.cluster_id {
            return Err((
                code::INCONSISTENT_CLUSTER_ID,
                format!(
                    "cluster id {} is not this cluster's ({})",
                    self.cluster_id, current.cluster_id
                ),
            ));
        }
        let broker_id = self.request.broker_id;
        let now = Instant::now();
        let live = controller.sessions.live(broker_id, now);
        let offset = controller
            .driver
            .next_offset()
            .max(current.cluster.last_applied_offset() + 1);
        let records = control::register_broker(
            &current.cluster,
            &self.request,
            offset,
            live,
            super::min_isr(&shard),
        )
        .map_err(|e| match e {
            ReplicationError::DuplicateBrokerRegistration { .. } => (
                code::DUPLICATE_BROKER_REGISTRATION,
                format!(
                    "another process holds broker {broker_id}'s registration; \
                         retry after its session ends"
                ),
            ),
            other => (code::INVALID_REQUEST, other.to_string()),
        })?;
        commit(&shard, &controller, records).await?;
        controller
            .sessions
            .renew(broker_id, Instant::now() + session_timeout(&shard));
        tracing::info!(broker = broker_id, epoch = offset, "broker registered");
        Ok(offset)
    }
}

impl Call<Shard> for Heartbeat {
    type Reply = Result<HeartbeatReply, Refusal>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let controller = leading(&shard)?;
        let _turn = take_turn(&controller).await?;
        let current = controller.current();
        let broker = current_broker(&current.cluster, self.broker_id, self.broker_epoch)?;
        controller
            .sessions
            .renew(self.broker_id, Instant::now() + session_timeout(&shard));
        let is_caught_up = self.metadata_offset >= broker.broker_epoch;
        let fence = self.want_fence || self.want_shut_down;
        let records = if broker.fenced && is_caught_up && !fence {
            tracing::info!(broker = self.broker_id, "broker caught up: unfencing");
            control::unfence_broker(&current.cluster, self.broker_id, super::min_isr(&shard))
        } else if !broker.fenced && fence {
            tracing::info!(broker = self.broker_id, "broker asked to be fenced");
            control::fence_broker(&current.cluster, self.broker_id, super::min_isr(&shard))
        } else {
            Ok(Vec::new())
        }
        .map_err(|e| (code::UNKNOWN_SERVER_ERROR, e.to_string()))?;
        commit(&shard, &controller, records).await?;
        let after = controller.current();
        let is_fenced = after
            .cluster
            .broker(self.broker_id)
            .is_none_or(|b| b.fenced);
        Ok(HeartbeatReply {
            is_caught_up,
            is_fenced,
            should_shut_down: self.want_shut_down && is_fenced,
        })
    }
}

impl Call<Shard> for AllocateProducerIds {
    type Reply = Result<(i64, i32), Refusal>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let controller = leading(&shard)?;
        let _turn = take_turn(&controller).await?;
        let current = controller.current();
        current_broker(&current.cluster, self.broker_id, self.broker_epoch)?;
        let start = current.cluster.next_producer_id();
        let block = MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: self.broker_id,
            broker_epoch: self.broker_epoch,
            next_producer_id: start + PRODUCER_ID_BLOCK,
        });
        commit(&shard, &controller, vec![block]).await?;
        let len = i32::try_from(PRODUCER_ID_BLOCK).expect("a block fits an i32");
        Ok((start, len))
    }
}

/// AlterPartition from a partition leader: ISR changes, decided by
/// `control::alter_partition` and committed as one batch. Answers the whole request's
/// refusal, or one outcome per change in request order.
pub struct AlterPartition {
    /// The leader's broker id.
    pub broker_id: i32,
    /// Its registration's epoch, as it knows it.
    pub broker_epoch: i64,
    /// The changes.
    pub changes: Vec<control::IsrChange>,
}

impl Call<Shard> for AlterPartition {
    type Reply = Result<Vec<Result<control::IsrState, control::IsrRefusal>>, Refusal>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        let controller = leading(&shard)?;
        let _turn = take_turn(&controller).await?;
        let current = controller.current();
        current_broker(&current.cluster, self.broker_id, self.broker_epoch)?;
        let decision = control::alter_partition(
            &current.cluster,
            self.broker_id,
            self.broker_epoch,
            &self.changes,
            super::min_isr(&shard),
        )
        .map_err(|e| (code::STALE_BROKER_EPOCH, e.to_string()))?;
        if !decision.records.is_empty() {
            tracing::info!(
                broker = self.broker_id,
                changes = decision.records.len(),
                "ISR changed at the leader's request"
            );
        }
        commit(&shard, &controller, decision.records).await?;
        Ok(decision.outcomes)
    }
}

/// The active controller's watch, every tick while the broker runs: starts a term's sessions,
/// fences the brokers whose session ended, runs the periodic leader elections
/// ([`super::elections::Rounds`]), and creates `__consumer_offsets` once the brokers
/// have registered (all voters' brokers, or any after one session timeout of leading, so a
/// cluster started with a node down still gets its group coordinators).
pub async fn watch(shard: Rc<Shard>, controller: Rc<Controller>) {
    let tick = super::ms(
        shard
            .config
            .cluster
            .timings
            .heartbeat_interval_ms
            .clamp(50, 500),
    );
    let voters = shard.config.cluster.voters.len();
    let mut leading_since: Option<(u64, Instant)> = None;
    let mut elections = super::elections::Rounds::new();
    while !shard.stopping.get() {
        millrace_shard::time::sleep(tick).await;
        if !controller.ready_to_lead() {
            leading_since = None;
            elections.reset();
            continue;
        }
        let now = Instant::now();
        let term = controller.driver.status().term;
        let since = match leading_since {
            Some((t, since)) if t == term => since,
            _ => {
                leading_since = Some((term, now));
                now
            }
        };
        let timeout = session_timeout(&shard);
        let current = controller.current();
        controller
            .sessions
            .begin_term(term, &current.cluster, now + timeout);
        for broker_id in controller.sessions.expired(&current.cluster, now) {
            let _turn = controller.turn.lock().await;
            let current = controller.current();
            if !controller.ready_to_lead()
                || !controller
                    .sessions
                    .expired(&current.cluster, Instant::now())
                    .contains(&broker_id)
            {
                continue;
            }
            tracing::warn!(broker = broker_id, "broker session expired: fencing");
            let records =
                match control::fence_broker(&current.cluster, broker_id, super::min_isr(&shard)) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(broker = broker_id, error = %e, "fencing");
                        continue;
                    }
                };
            if let Err((_, e)) = commit(&shard, &controller, records).await {
                tracing::warn!(broker = broker_id, error = %e, "fencing not committed");
            }
        }
        {
            let _turn = controller.turn.lock().await;
            if controller.ready_to_lead() {
                elections.run(&shard, &controller, Instant::now()).await;
            }
        }
        let live = current.cluster.live_brokers().count();
        let waited = now.saturating_duration_since(since) >= timeout;
        if live > 0 && (live >= voters || waited) {
            let _turn = controller.turn.lock().await;
            if controller.ready_to_lead() {
                if let Err(e) = super::commit_offsets_topic(&shard, &controller).await {
                    tracing::warn!(error = %e, "creating the offsets topic");
                }
            }
        }
    }
}
