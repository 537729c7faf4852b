//! The handler registry: the only place an API is added. ApiVersions and
//! docs/PROTOCOL.md are generated from [`REGISTRY`].
//!
//! Every request body passes the wire guard (a schema walk that checks every declared length
//! against the bytes received) before kafka-protocol decodes it, because kafka-protocol sizes
//! arrays from the declared count.

mod acl_codes;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod allocate_producer_ids;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition;
mod alter_share_group_offsets;
mod alter_user_scram_credentials;
mod api_versions;
mod broker_heartbeat;
mod broker_registration;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod context;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_share_group_offsets;
mod delete_share_group_state;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_producers;
mod describe_quorum;
mod describe_share_group_offsets;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod envelope;
pub mod fetch;
mod fetch_snapshot;
mod find_coordinator;
mod forward;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod initialize_share_group_state;
mod join_group;
mod leave_group;
mod list_groups;
pub mod list_offsets;
mod list_transactions;
mod metadata;
mod metadata_fetch;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod produce;
mod raft;
mod read_share_group_state;
mod read_share_group_state_summary;
mod sasl_authenticate;
mod sasl_handshake;
mod share_acknowledge;
pub mod share_fetch;
mod share_group_describe;
mod share_group_heartbeat;
mod share_v2;
mod sync_group;
mod txn_offset_commit;
mod write_share_group_state;
mod write_txn_markers;

use crate::shard::Shard;
use bytes::Bytes;
pub use context::{BrokerAddress, Context};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use millrace_wire::fetch::FetchChunk;
use millrace_wire::frame::{encode_response, RequestHeader};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

/// What a handler produced.
pub enum Response {
    /// A complete frame.
    Frame(Bytes),
    /// A Fetch response, written chunk by chunk.
    Fetch(Vec<FetchChunk<RecordPiece>>),
    /// Nothing to send (acks=0 produce).
    Nothing,
    /// Close the connection (malformed or unsupported request).
    Close(String),
}

/// Where a Fetch response's record bytes come from; `Send`, so it can cross the mesh.
#[derive(Debug, Clone)]
pub enum RecordPiece {
    /// Bytes in memory (batch cache).
    Memory(Bytes),
    /// A range of a segment file, sent with sendfile from a buffered descriptor.
    File {
        /// The segment file.
        path: PathBuf,
        /// Byte position.
        position: u64,
        /// Length.
        len: u32,
        /// The file's inode when it was read (0: unknown).
        inode: u64,
    },
}

impl millrace_wire::fetch::RecordSource for RecordPiece {
    fn len(&self) -> usize {
        match self {
            RecordPiece::Memory(b) => b.len(),
            RecordPiece::File { len, .. } => *len as usize,
        }
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Response>>>;
type Handler = fn(Context, RequestHeader, Bytes) -> HandlerFuture;

/// Who sent a request, for the few APIs that record it (JoinGroup's client host).
#[derive(Debug, Clone)]
pub struct Client {
    /// The peer's address as Kafka reports it (`/127.0.0.1`).
    pub host: Rc<str>,
    /// The listener the request came in on.
    pub listener: Listener,
    /// Name of that listener (a client listener's, or the inter-broker one for the controller
    /// listener): Metadata and the other answers naming brokers give their endpoints of it.
    pub endpoint: Rc<str>,
    /// Who the client is: `User:<name>` from SASL or the TLS certificate, else
    /// `User:ANONYMOUS`: what the authorizer checks.
    pub principal: Rc<str>,
    /// Until when (monotonic ms) the connection reads no more requests: a quota throttled it.
    /// Shared by every request of the connection.
    pub muted_until: Rc<std::cell::Cell<u64>>,
    /// True for a request a broker forwarded in an Envelope: `principal` and `host` are the
    /// original client's, and the controller listener judges it like a client listener.
    pub enveloped: bool,
    /// The request's clock (its stages are recorded when its answer is written).
    pub clock: Rc<crate::stats::RequestClock>,
    /// The connection's share sessions (KIP-932), which end with it.
    pub share_sessions: Rc<std::cell::RefCell<crate::share::session::ShareSessions>>,
}

/// Which listener a connection came in on; each serves its own registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The client listener ([`REGISTRY`]).
    Client,
    /// The controller listener ([`CONTROLLER_REGISTRY`] and the private Raft key).
    Controller,
}

impl Listener {
    /// The APIs served on this listener.
    pub fn registry(self) -> &'static [ApiEntry] {
        match self {
            Listener::Client => REGISTRY,
            Listener::Controller => CONTROLLER_REGISTRY,
        }
    }
}

/// One API the broker serves, at the versions it implements.
pub struct ApiEntry {
    /// The API.
    pub key: ApiKey,
    /// Lowest version advertised.
    pub min: i16,
    /// Highest version advertised.
    pub max: i16,
    /// Lowest version actually decoded (Produce advertises from 0 for librdkafka, KAFKA-18659).
    pub min_handled: i16,
    handler: Handler,
}

macro_rules! entry {
    ($key:ident, $min:expr, $max:expr, $module:ident) => {
        entry!($key, $min, $min, $max, $module)
    };
    ($key:ident, $min:expr, $min_handled:expr, $max:expr, $module:ident) => {
        ApiEntry {
            key: ApiKey::$key,
            min: $min,
            max: $max,
            min_handled: $min_handled,
            handler: |ctx, header, body| Box::pin($module::handle(ctx, header, body)),
        }
    };
}

/// Every API served. Versions are those the handlers implement and the guard has schemas for.
pub static REGISTRY: &[ApiEntry] = &[
    entry!(Produce, 0, 3, 12, produce),
    entry!(Fetch, 4, 16, fetch),
    entry!(ListOffsets, 1, 8, list_offsets),
    entry!(Metadata, 0, 12, metadata),
    entry!(FindCoordinator, 0, 6, find_coordinator),
    entry!(ApiVersions, 0, 3, api_versions),
    entry!(SaslHandshake, 0, 1, sasl_handshake),
    entry!(SaslAuthenticate, 0, 2, sasl_authenticate),
    entry!(
        DescribeUserScramCredentials,
        0,
        0,
        describe_user_scram_credentials
    ),
    entry!(
        AlterUserScramCredentials,
        0,
        0,
        alter_user_scram_credentials
    ),
    entry!(CreateTopics, 2, 7, create_topics),
    entry!(DeleteTopics, 1, 6, delete_topics),
    entry!(InitProducerId, 0, 4, init_producer_id),
    entry!(DescribeConfigs, 1, 4, describe_configs),
    entry!(CreatePartitions, 0, 3, create_partitions),
    entry!(DescribeCluster, 0, 1, describe_cluster),
    entry!(OffsetCommit, 2, 9, offset_commit),
    entry!(OffsetFetch, 1, 9, offset_fetch),
    entry!(JoinGroup, 0, 9, join_group),
    entry!(Heartbeat, 0, 4, heartbeat),
    entry!(LeaveGroup, 0, 5, leave_group),
    entry!(SyncGroup, 0, 5, sync_group),
    entry!(DescribeGroups, 0, 5, describe_groups),
    entry!(ListGroups, 0, 5, list_groups),
    entry!(DeleteGroups, 0, 2, delete_groups),
    entry!(OffsetDelete, 0, 0, offset_delete),
    entry!(AlterConfigs, 0, 2, alter_configs),
    entry!(IncrementalAlterConfigs, 0, 1, incremental_alter_configs),
    entry!(DeleteRecords, 0, 2, delete_records),
    entry!(ConsumerGroupHeartbeat, 0, 1, consumer_group_heartbeat),
    entry!(ConsumerGroupDescribe, 0, 1, consumer_group_describe),
    entry!(ShareGroupHeartbeat, 1, 1, share_group_heartbeat),
    entry!(ShareGroupDescribe, 1, 1, share_group_describe),
    entry!(ShareFetch, 1, 2, share_fetch),
    entry!(ShareAcknowledge, 1, 2, share_acknowledge),
    entry!(
        DescribeShareGroupOffsets,
        0,
        0,
        describe_share_group_offsets
    ),
    entry!(AlterShareGroupOffsets, 0, 0, alter_share_group_offsets),
    entry!(DeleteShareGroupOffsets, 0, 0, delete_share_group_offsets),
    entry!(
        InitializeShareGroupState,
        0,
        0,
        initialize_share_group_state
    ),
    entry!(ReadShareGroupState, 0, 0, read_share_group_state),
    entry!(WriteShareGroupState, 0, 0, write_share_group_state),
    entry!(DeleteShareGroupState, 0, 0, delete_share_group_state),
    entry!(
        ReadShareGroupStateSummary,
        0,
        0,
        read_share_group_state_summary
    ),
    entry!(DescribeQuorum, 0, 2, describe_quorum),
    entry!(ElectLeaders, 0, 2, elect_leaders),
    entry!(AddPartitionsToTxn, 0, 5, add_partitions_to_txn),
    entry!(AddOffsetsToTxn, 0, 4, add_offsets_to_txn),
    entry!(EndTxn, 0, 5, end_txn),
    entry!(WriteTxnMarkers, 1, 1, write_txn_markers),
    entry!(TxnOffsetCommit, 0, 5, txn_offset_commit),
    entry!(DescribeProducers, 0, 0, describe_producers),
    entry!(DescribeAcls, 1, 3, describe_acls),
    entry!(CreateAcls, 1, 3, create_acls),
    entry!(DeleteAcls, 1, 3, delete_acls),
    entry!(DescribeClientQuotas, 0, 1, describe_client_quotas),
    entry!(AlterClientQuotas, 0, 1, alter_client_quotas),
    entry!(DescribeTransactions, 0, 0, describe_transactions),
    entry!(ListTransactions, 0, 2, list_transactions),
];

/// What the controller listener serves besides the private Raft key
/// (`millrace_wire::frame::RAFT_API_KEY`, which no ApiVersions lists). Fetch here is the
/// observers' fetch of the metadata log (`metadata_fetch`), not the client listener's.
pub static CONTROLLER_REGISTRY: &[ApiEntry] = &[
    entry!(CreateTopics, 2, 7, create_topics),
    entry!(DeleteTopics, 1, 6, delete_topics),
    entry!(ApiVersions, 0, 3, api_versions),
    entry!(CreatePartitions, 0, 3, create_partitions),
    entry!(DescribeCluster, 1, 1, describe_cluster),
    entry!(AlterConfigs, 0, 2, alter_configs),
    entry!(IncrementalAlterConfigs, 0, 1, incremental_alter_configs),
    entry!(DescribeQuorum, 0, 2, describe_quorum),
    entry!(BrokerRegistration, 0, 4, broker_registration),
    entry!(BrokerHeartbeat, 0, 1, broker_heartbeat),
    entry!(AllocateProducerIds, 0, 0, allocate_producer_ids),
    entry!(Fetch, 12, 16, metadata_fetch),
    entry!(FetchSnapshot, 0, 1, fetch_snapshot),
    entry!(AlterPartition, 2, 3, alter_partition),
    entry!(ElectLeaders, 0, 2, elect_leaders),
    entry!(
        AlterUserScramCredentials,
        0,
        0,
        alter_user_scram_credentials
    ),
    entry!(DescribeAcls, 1, 3, describe_acls),
    entry!(CreateAcls, 1, 3, create_acls),
    entry!(DeleteAcls, 1, 3, delete_acls),
    entry!(DescribeClientQuotas, 0, 1, describe_client_quotas),
    entry!(AlterClientQuotas, 0, 1, alter_client_quotas),
    entry!(Envelope, 0, 0, envelope),
];

/// The most header bytes a request body's buffer holds before the body: the connection copies
/// the body of a request with a longer header (a long client id, large tagged fields) to a
/// buffer of its own. A handler that keeps slices of the body (Produce's batches, in the batch
/// cache) can so count the whole buffer.
pub const BODY_PREFIX_MAX: usize = 1024;

/// Finds the handler and runs it; unknown keys and unsupported versions close the connection
/// as Kafka does, except ApiVersions, which answers UNSUPPORTED_VERSION in the v0 format.
pub async fn dispatch(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    body: Bytes,
    client: Client,
) -> Response {
    if client.listener == Listener::Controller
        && !client.enveloped
        && inter_node(header.api_key)
        && crate::acls::authorizer(shard).is_some()
    {
        let ctx = Context::new(shard.clone(), client.clone());
        if !ctx.allowed_on_cluster(millrace_security::acl::AclOperation::ClusterAction) {
            return Response::Close(format!(
                "{} may not CLUSTER_ACTION on the cluster, which api key {} on the controller \
                 listener needs (add the node's principal to super.users)",
                client.principal, header.api_key
            ));
        }
    }
    if header.api_key == millrace_wire::frame::RAFT_API_KEY
        && client.listener == Listener::Controller
    {
        return raft::handle(Context::new(shard.clone(), client), header.clone(), body).await;
    }
    let registry = client.listener.registry();
    let Some(entry) = registry.iter().find(|e| e.key as i16 == header.api_key) else {
        return Response::Close(format!("unsupported api key {}", header.api_key));
    };
    let version = header.api_version;
    if entry.key == ApiKey::ApiVersions && (version < entry.min || version > entry.max) {
        return api_versions::unsupported_version(header, registry);
    }
    if version < entry.min_handled || version > entry.max {
        return Response::Close(format!("unsupported version {version} of {:?}", entry.key));
    }
    let ctx = Context::new(shard.clone(), client);
    let forwarded = ctx
        .clock()
        .clone()
        .remote(forward::to_active_controller(
            &ctx, entry.key, header, &body,
        ))
        .await;
    if let Some(answer) = forwarded {
        return answer;
    }
    (entry.handler)(ctx, header.clone(), body).await
}

/// The controller listener's keys only nodes send (Raft, registration, heartbeats, replica
/// state, forwarding): with an authorizer the connection's principal needs CLUSTER_ACTION on
/// the cluster for them, as Kafka's controllers require (a super user has it).
fn inter_node(api_key: i16) -> bool {
    api_key == millrace_wire::frame::RAFT_API_KEY
        || [
            ApiKey::BrokerRegistration,
            ApiKey::BrokerHeartbeat,
            ApiKey::AllocateProducerIds,
            ApiKey::Fetch,
            ApiKey::FetchSnapshot,
            ApiKey::AlterPartition,
            ApiKey::Envelope,
        ]
        .iter()
        .any(|k| *k as i16 == api_key)
}

/// True when a controller-listener request names a cluster id that is not this cluster's
/// (INCONSISTENT_CLUSTER_ID); a request without one is not checked.
fn foreign_cluster(ctx: &Context, cluster_id: Option<&kafka_protocol::protocol::StrBytes>) -> bool {
    cluster_id.is_some_and(|id| id.as_str() != ctx.image().cluster_id)
}

/// Checks the body against the wire guard, then decodes it.
///
/// Bytes after a complete body are tolerated, as Kafka's own parser does: librdkafka 2.16 sends
/// Metadata v12 requests with three extra bytes, and Kafka accepts them. Every length inside
/// the body has still been checked by then.
pub fn decode<T: Decodable>(header: &RequestHeader, body: &Bytes) -> Result<T, Response> {
    let checked =
        millrace_wire::guard::check_request_body(header.api_key, header.api_version, body);
    if let Err(e) = checked.or_else(|e| match e {
        millrace_wire::guard::GuardError::TrailingBytes { .. } => Ok(()),
        other => Err(other),
    }) {
        let head = &body[..body.len().min(64)];
        tracing::debug!(api_key = header.api_key, api_version = header.api_version, body = ?head, "guard refused body");
        return Err(Response::Close(format!(
            "malformed request (api {} v{}): {e}",
            header.api_key, header.api_version
        )));
    }
    let mut buf = body.clone();
    T::decode(&mut buf, header.api_version).map_err(|e| {
        Response::Close(format!(
            "undecodable request (api {} v{}): {e}",
            header.api_key, header.api_version
        ))
    })
}

/// Runs a group operation on the group's coordinating shard, once the principal may do
/// `acl` to the group (GROUP_AUTHORIZATION_FAILED otherwise, before anything else, as Kafka
/// checks). Err carries the error code for a group id that is empty or too long (INVALID_GROUP_ID), a group another broker coordinates
/// (NOT_COORDINATOR), a coordinator still reading its groups back
/// (COORDINATOR_LOAD_IN_PROGRESS) or one that is not available (no `__consumer_offsets`, or
/// the shard is stopping).
pub async fn group_call<O: crate::coordinator::GroupOperation>(
    ctx: &Context,
    group_id: &str,
    acl: millrace_security::acl::AclOperation,
    op: O,
) -> Result<O::Answer, i16> {
    use crate::errors::code;
    use millrace_security::acl::ResourceType;
    if !ctx.allowed(acl, ResourceType::Group, group_id) {
        return Err(code::GROUP_AUTHORIZATION_FAILED);
    }
    if group_id.is_empty() || group_id.len() > crate::coordinator::GROUP_ID_BYTES_MAX {
        return Err(code::INVALID_GROUP_ID);
    }
    let image = ctx.image();
    let Some(target) = crate::coordinator::coordinator_shard(&image, group_id) else {
        // Another broker leads the group's offsets partition: the client finds it again.
        if image.topics.contains_key(crate::coordinator::OFFSETS_TOPIC) {
            return Err(code::NOT_COORDINATOR);
        }
        return Err(code::COORDINATOR_NOT_AVAILABLE);
    };
    let call = crate::coordinator::ForGroup {
        group_id: group_id.to_string(),
        op,
    };
    ctx.call(target, call)
        .await
        .map_err(|_| code::COORDINATOR_NOT_AVAILABLE)?
}

/// Encodes a response frame for the request `header` answers.
pub fn respond<T: Encodable + 'static>(header: &RequestHeader, body: &T) -> Response {
    let key = ApiKey::try_from(header.api_key).expect("dispatched keys are known");
    crate::stats::errors::tally(header.api_key, body, &mut |code| {
        crate::stats::error(header.api_key, code)
    });
    let header_version = key.response_header_version(header.api_version);
    match encode_response(
        header.correlation_id,
        header_version,
        body,
        header.api_version,
    ) {
        Ok(frame) => Response::Frame(frame),
        Err(e) => Response::Close(format!("encoding response: {e}")),
    }
}

/// A string for kafka-protocol.
pub fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}

/// The protocol-support table in Markdown, generated from the registry.
pub fn protocol_table() -> String {
    let mut out = String::from("| API | key | versions |\n|---|---|---|\n");
    for e in REGISTRY {
        let versions = if e.min_handled != e.min {
            format!("{}-{} (advertised from {})", e.min_handled, e.max, e.min)
        } else {
            format!("{}-{}", e.min, e.max)
        };
        out.push_str(&format!(
            "| {:?} | {} | {} |\n",
            e.key, e.key as i16, versions
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_version_has_a_guard_schema_and_a_codec() {
        for e in REGISTRY {
            let range = e.key.valid_versions();
            for v in e.min_handled..=e.max {
                assert!(
                    millrace_wire::guard::has_schema(e.key as i16, v),
                    "{:?} v{v} has no guard schema",
                    e.key
                );
                // Versions past kafka-protocol's are served through an adapter to one it has.
                let bridged = share_v2::BRIDGED.contains(&(e.key as i16, v));
                assert!(
                    bridged || (range.min <= v && v <= range.max),
                    "{:?} v{v} outside kafka-protocol",
                    e.key
                );
            }
        }
    }

    #[test]
    fn registry_has_each_key_once() {
        let mut keys: Vec<i16> = REGISTRY.iter().map(|e| e.key as i16).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), REGISTRY.len());
    }
}

#[cfg(test)]
mod doc_tests {
    #[test]
    fn protocol_doc_matches_the_registry() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
        let doc = std::fs::read_to_string(path).expect("docs/PROTOCOL.md exists");
        assert!(
            doc.contains(&super::protocol_table()),
            "docs/PROTOCOL.md is stale: regenerate with `millrace --print-protocol-table`"
        );
    }
}
