//! What a request handler sees of its shard.
//!
//! A handler runs on the shard that read the request. It may read the metadata image and the
//! configuration, and it reaches partitions, the controller and the group coordinators only by
//! a call to the shard that serves them (a call to the handler's own shard runs in place). It
//! holds no way to touch a partition's log or a subsystem's state directly, so a handler cannot
//! act on data another shard owns, and its imports stop at this type. The fields are private to
//! this module: the handler files are its siblings, not its children.

use super::Client;
use crate::config::Config;
use crate::mesh::{Call, Split, Unavailable};
use crate::metadata::{MetadataImage, TopicMeta};
use crate::shard::Shard;
use crate::share::record::ShareStateKey;
use crate::share_state::StateOp;
use crate::topic_config::TopicSettings;
use millrace_security::acl::{AclOperation, Authorizer, ResourceType, CLUSTER_NAME};
use millrace_security::quota::QuotaKey;
use std::rc::Rc;
use std::sync::Arc;

/// A broker as clients are told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Its `node.id`.
    pub id: i32,
    /// Host of its client listener.
    pub host: String,
    /// Port of its client listener.
    pub port: u16,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// One request's view of the broker.
#[derive(Clone)]
pub struct Context {
    shard: Rc<Shard>,
    client: Client,
}

impl Context {
    /// A request from `client` served on `shard`.
    pub fn new(shard: Rc<Shard>, client: Client) -> Self {
        Context { shard, client }
    }

    /// The same shard's view for a request of another client (an Envelope's inner request).
    pub fn for_client(&self, client: Client) -> Context {
        Context::new(self.shard.clone(), client)
    }

    /// Who sent the request.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The request's clock: waits on others are counted as its remote time.
    pub fn clock(&self) -> &Rc<crate::stats::RequestClock> {
        &self.client.clock
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.shard.image()
    }

    /// The broker's configuration.
    pub fn config(&self) -> &Config {
        &self.shard.config
    }

    /// Runs a transactional request on its coordinating shard (`crate::txn`).
    pub async fn txn(
        &self,
        txn_id: &str,
        op: crate::txn::TxnOp,
    ) -> Result<(i64, i16), crate::txn::TxnError> {
        crate::txn::on_coordinator(&self.shard, txn_id, op).await
    }

    /// KIP-890: asks the coordinator of `txn_id` whether `partition` is in the producer's
    /// ongoing transaction, or (`add`, Transactions V2) has it added (`crate::txn::verify`).
    pub async fn verify_txn(
        &self,
        txn_id: &str,
        producer: (i64, i16),
        partition: (String, i32),
        add: bool,
    ) -> Result<(), crate::txn::TxnError> {
        crate::txn::verify(&self.shard, txn_id, producer, partition, add).await
    }

    /// Runs share-state ops (Read/Write/Delete/InitializeShareGroupState and the summary)
    /// on the shards of this broker coordinating their share partitions; NOT_COORDINATOR for
    /// those coordinated elsewhere (`crate::share_state::on_this_broker`).
    pub async fn share_state(
        &self,
        items: Vec<(ShareStateKey, StateOp)>,
    ) -> Vec<crate::share_state::OpResult> {
        // Only brokers call these APIs: CLUSTER_ACTION, else every item is refused.
        if !self.allowed_on_cluster(AclOperation::ClusterAction) {
            return vec![Err(crate::errors::code::CLUSTER_AUTHORIZATION_FAILED); items.len()];
        }
        crate::share_state::on_this_broker(&self.shard, items).await
    }

    /// Has `__share_group_state` created if it does not exist yet; returns at once.
    pub fn ensure_share_state_topic(&self) {
        crate::share_state::ensure_topic(&self.shard)
    }

    /// Checks records' schema ids with this broker's schema registry (produce validation).
    pub async fn check_schema_ids(
        &self,
        checks: Vec<crate::registry::IdCheck>,
    ) -> Vec<Result<(), String>> {
        crate::registry::check_ids(&self.shard, checks).await
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shard.shards
    }

    /// The shard that runs the metadata writer (the controller).
    pub fn controller_shard(&self) -> usize {
        Shard::controller_shard()
    }

    /// A topic's typed settings: its own configs over the broker's defaults.
    pub fn topic_settings(&self, topic: &TopicMeta) -> TopicSettings {
        self.shard.topic_settings(topic)
    }

    /// Runs `f` on the connection's share sessions with whether a new one may open (fewer
    /// than `group.share.max.share.sessions` are open on this broker; each shard takes its
    /// share of the limit), and counts the sessions it opened or closed.
    pub fn share_sessions<R>(
        &self,
        f: impl FnOnce(&mut crate::share::session::ShareSessions, bool) -> R,
    ) -> R {
        let shares = crate::share_manager::shares_of(&self.shard);
        let limit = (self.shard.config.group.share_max_share_sessions.max(1) as usize)
            .div_ceil(self.shard.shards.max(1));
        let mut sessions = self.client.share_sessions.borrow_mut();
        let before = sessions.len();
        let r = f(&mut sessions, shares.sessions_open.get() < limit);
        let after = sessions.len();
        let open = shares.sessions_open.get() + after;
        shares.sessions_open.set(open.saturating_sub(before));
        r
    }

    /// A share partition's state epoch, leader epoch and start offset, fencing no one
    /// (`crate::share_state::summary`).
    pub async fn share_state_summary(
        &self,
        key: &crate::share::record::ShareStateKey,
    ) -> Result<crate::share_state::StateSummary, i16> {
        crate::share_state::summary(&self.shard, key).await
    }

    /// Resets a share partition's state to `start_offset` under `state_epoch`, nothing in
    /// flight (`crate::share_state::initialize`).
    pub async fn share_state_initialize(
        &self,
        key: &crate::share::record::ShareStateKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> Result<(), i16> {
        crate::share_state::initialize(&self.shard, key, state_epoch, start_offset).await
    }

    /// Deletes the share state of share partitions (`crate::share_state::delete`), and drops
    /// what this broker's shards hold of them in memory.
    pub async fn share_state_delete(
        &self,
        keys: &[crate::share::record::ShareStateKey],
    ) -> Result<(), i16> {
        self.share_state_forget(keys).await;
        crate::share_state::delete(&self.shard, keys).await
    }

    /// Drops what this broker's shards hold in memory of these share partitions: their next
    /// fetch reads the persisted state back.
    pub async fn share_state_forget(&self, keys: &[crate::share::record::ShareStateKey]) {
        let image = self.image();
        for k in keys {
            let Some(topic) = image.topic_by_id(&k.topic_id) else {
                continue;
            };
            if let Some(owner) = image.owner(&topic.name, k.partition) {
                let call = crate::share_manager::ShareForgetOnOwner {
                    group: k.group_id.clone(),
                    topic: topic.name.clone(),
                    partition: k.partition,
                };
                let _ = self.shard.call(owner, call).await;
            }
        }
    }

    /// The brokers clients are told about: the registered, unfenced ones, at their endpoint of
    /// the listener this request came in on, in id order; this node alone while the image has no
    /// registered broker (before its own registration commits).
    pub fn brokers(&self) -> Vec<BrokerAddress> {
        let image = self.image();
        let listener = &*self.client.endpoint;
        let live: Vec<BrokerAddress> = image
            .cluster
            .live_brokers()
            .filter_map(|b| {
                let endpoint = b.endpoint(listener)?;
                Some(BrokerAddress {
                    id: b.broker_id,
                    host: endpoint.host.clone(),
                    port: endpoint.port,
                    rack: b.rack.clone(),
                })
            })
            .collect();
        if !live.is_empty() {
            return live;
        }
        let c = self.config();
        vec![BrokerAddress {
            id: c.node_id,
            host: c.advertise.0.clone(),
            port: c.advertise.1,
            rack: c.cluster.rack.clone(),
        }]
    }

    /// The broker a client should use for partition `partition` of `topic`: its leader, if
    /// it has one and clients are told about it.
    pub fn leader_of(&self, topic: &TopicMeta, partition: i32) -> Option<BrokerAddress> {
        let image = self.image();
        let leader = image.cluster.partition(&topic.topic_id, partition)?.leader;
        self.brokers().into_iter().find(|b| b.id == leader)
    }

    /// The authorizer that judges this request: none without `authorizer.class.name`. On the
    /// controller listener a request is judged as the connection's principal (the node's own
    /// login, a super user in a secured cluster), and a request a broker forwards in an
    /// Envelope as its client.
    pub fn authorizer(&self) -> Option<Rc<Authorizer>> {
        crate::acls::authorizer(&self.shard)
    }

    /// Whether the request's principal may do `op` on the resource (always without an
    /// authorizer). A denial is logged.
    pub fn allowed(&self, op: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        self.judge(op, resource_type, name, false)
    }

    /// [`Context::allowed`] without logging a denial: for listings that only leave out what
    /// the principal may not see, as Kafka's Metadata and ListGroups do.
    pub fn allowed_quietly(
        &self,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.judge(op, resource_type, name, true)
    }

    /// Whether the request's principal may do `op` on the cluster.
    pub fn allowed_on_cluster(&self, op: AclOperation) -> bool {
        self.allowed(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether the principal may do `op` on at least one resource of the type (Kafka's
    /// `authorizeByResourceType`, e.g. an idempotent producer needs WRITE on some topic).
    pub fn allowed_on_any(&self, op: AclOperation, resource_type: ResourceType) -> bool {
        let Some(authorizer) = self.authorizer() else {
            return true;
        };
        let who = self.requester();
        authorizer.authorize_any(&who.principal, &who.host, op, resource_type)
    }

    /// Kafka's `authorized_operations` bit field for a resource: bit `code` set for each
    /// operation the resource type supports that the principal may do (all of them without
    /// an authorizer, as Kafka reports).
    pub fn authorized_operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        millrace_security::acl::supported_operations(resource_type)
            .iter()
            .filter(|op| self.allowed_quietly(**op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    fn judge(
        &self,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
        quiet: bool,
    ) -> bool {
        match self.authorizer() {
            None => true,
            Some(a) => crate::acls::allowed(&a, &self.requester(), op, resource_type, name, quiet),
        }
    }

    /// The request's principal and address.
    pub fn requester(&self) -> crate::acls::Requester {
        let host = self.client.host.trim_start_matches('/');
        crate::acls::Requester {
            principal: self.client.principal.clone(),
            host: Rc::from(host),
        }
    }

    /// The client quotas of this shard's image.
    pub fn quota_configs(&self) -> Rc<millrace_security::quota::QuotaConfigs> {
        crate::quotas::configs(&self.shard)
    }

    /// Records `value` against the quota for `key` that applies to this request's user and
    /// `client_id`; the throttle time in ms (0: within the quota, or none applies). A
    /// throttled request mutes its connection for that long ([`Context::throttle`]).
    pub async fn record_quota(&self, client_id: &str, key: QuotaKey, value: f64) -> u64 {
        let user = crate::quotas::user_of(&self.client.principal);
        crate::quotas::record(&self.shard, user, client_id, key, value).await
    }

    /// Takes back a recording of [`Context::record_quota`] (a throttled fetch sends no data).
    pub async fn unrecord_quota(&self, client_id: &str, key: QuotaKey, value: f64) {
        let user = crate::quotas::user_of(&self.client.principal);
        crate::quotas::unrecord(&self.shard, user, client_id, key, value).await
    }

    /// `controller_mutation_rate` for partitions created or deleted, one entry per topic:
    /// which topics the quota refuses and the throttle time. Strict (the newer request
    /// versions, Kafka's rule): a topic is refused THROTTLING_QUOTA_EXCEEDED once the token
    /// bucket is empty, and takes nothing; otherwise every topic proceeds and the mutations
    /// only make the client wait.
    pub async fn take_mutations(
        &self,
        client_id: &str,
        permits: &[f64],
        strict: bool,
    ) -> (Vec<bool>, u64) {
        let user = crate::quotas::user_of(&self.client.principal);
        let mut refused = vec![false; permits.len()];
        if self.quota_configs().is_empty() {
            return (refused, 0);
        }
        if !strict {
            let key = QuotaKey::ControllerMutationRate;
            let total = permits.iter().sum();
            let ms = crate::quotas::record(&self.shard, user, client_id, key, total).await;
            return (refused, ms);
        }
        let mut throttle_ms = 0;
        for (i, n) in permits.iter().enumerate() {
            let ms = crate::quotas::take_mutations(&self.shard, user, client_id, *n).await;
            refused[i] = ms > 0;
            throttle_ms = throttle_ms.max(ms);
        }
        (refused, throttle_ms)
    }

    /// Reads nothing more from this request's connection for `ms` (KIP-219): a client that
    /// ignores `throttle_time_ms` is held to its quota all the same.
    pub fn throttle(&self, ms: u64) {
        if ms == 0 {
            return;
        }
        let until = millrace_shard::time::monotonic_ms() + ms;
        if until > self.client.muted_until.get() {
            self.client.muted_until.set(until);
        }
    }

    /// Runs `call` on shard `target` and returns its reply.
    pub async fn call<C: Call<Shard>>(
        &self,
        target: usize,
        call: C,
    ) -> Result<C::Reply, Unavailable> {
        self.shard.call(target, call).await
    }

    /// [`Split::fan_out`] from this request's shard.
    pub async fn fan_out<I, R, C>(
        &self,
        split: Split<I>,
        results: &mut [R],
        make: impl Fn(Vec<(usize, I)>) -> C,
        unavailable: impl Fn() -> R,
    ) where
        I: Send + 'static,
        C: Call<Shard, Reply = Vec<(usize, R)>>,
        R: Send + 'static,
    {
        split.fan_out(&self.shard, results, make, unavailable).await
    }
}
