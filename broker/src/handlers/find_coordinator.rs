//! FindCoordinator (key 10): a consumer group's coordinator is the broker leading the group's
//! `__consumer_offsets` partition, a transactional id's (key type 1) the broker leading its
//! `__transaction_state` partition (and inside it, the shard holding that partition), a share
//! partition's (key type 2, key `groupId:topicId:partition`) the broker leading its
//! `__share_group_state` partition, which the first such lookup has created, as Kafka does
//! (`crate::share_state`). A share key that does not parse and other key types are
//! INVALID_REQUEST, as in Kafka.

use super::Response;
use super::{decode, respond, str_bytes};
use super::{BrokerAddress, Context};
use crate::errors::code;
use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use millrace_security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use millrace_wire::frame::RequestHeader;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
const KEY_TYPE_SHARE: i8 = 2;

/// (error code, message) for one key.
fn lookup(key: &str, key_type: i8) -> (i16, Option<&'static str>) {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() || key.len() > crate::coordinator::GROUP_ID_BYTES_MAX => {
            (code::INVALID_GROUP_ID, Some("invalid group id"))
        }
        KEY_TYPE_TRANSACTION if key.is_empty() || key.len() > crate::txn::TXN_ID_BYTES_MAX => {
            (code::INVALID_REQUEST, Some("invalid transactional id"))
        }
        KEY_TYPE_SHARE if crate::share_state::parse_coordinator_key(key).is_none() => {
            (code::INVALID_REQUEST, Some("invalid share partition key"))
        }
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION | KEY_TYPE_SHARE => (code::NONE, None),
        _ => (code::INVALID_REQUEST, Some("unknown coordinator key type")),
    }
}

/// The broker leading the key's partition of `__consumer_offsets` (groups),
/// `__transaction_state` (transactional ids) or `__share_group_state` (share partitions),
/// Kafka's coordinator placement; None while that topic does not exist yet (a share lookup
/// has it created) or the partition has no live leader (its broker is fenced): the answer is
/// then COORDINATOR_NOT_AVAILABLE and the client asks again, as Kafka answers.
fn coordinator_of(ctx: &Context, key: &str, key_type: i8) -> Option<BrokerAddress> {
    let image = ctx.image();
    if key_type == KEY_TYPE_SHARE {
        let share_key = crate::share_state::parse_coordinator_key(key)?;
        let Some(t) = image.topics.get(crate::share_state::SHARE_STATE_TOPIC) else {
            ctx.ensure_share_state_topic();
            return None;
        };
        let p = crate::share_state::state_partition(&share_key, t.partitions as usize);
        return ctx.leader_of(t, p);
    }
    let topic = match key_type {
        KEY_TYPE_TRANSACTION => crate::txn::TXN_TOPIC,
        _ => crate::coordinator::OFFSETS_TOPIC,
    };
    let t = image.topics.get(topic)?;
    let p = crate::coordinator::offsets_partition(key, t.partitions as usize);
    ctx.leader_of(t, p)
}

const NO_COORDINATOR: &str =
    "the coordinator is not available (its internal topic partition has no leader)";

/// Kafka's checks: DESCRIBE on the group or transactional id, CLUSTER_ACTION for a share
/// coordinator key (only brokers ask for those).
fn denied(ctx: &Context, key: &str, key_type: i8) -> Option<i16> {
    let (op, kind, name, refusal) = match key_type {
        0 => (
            AclOperation::Describe,
            ResourceType::Group,
            key,
            code::GROUP_AUTHORIZATION_FAILED,
        ),
        1 => (
            AclOperation::Describe,
            ResourceType::TransactionalId,
            key,
            code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        ),
        _ => (
            AclOperation::ClusterAction,
            ResourceType::Cluster,
            CLUSTER_NAME,
            code::CLUSTER_AUTHORIZATION_FAILED,
        ),
    };
    (!ctx.allowed(op, kind, name)).then_some(refusal)
}

pub async fn handle(ctx: Context, header: RequestHeader, body: Bytes) -> Response {
    let req: FindCoordinatorRequest = match decode(&header, &body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    // (error, message, host, port, node) for one key.
    let answer = |key: &str| {
        let (mut error, mut message) = lookup(key, req.key_type);
        if error == code::NONE {
            if let Some(refusal) = denied(&ctx, key, req.key_type) {
                (error, message) = (refusal, None);
            }
        }
        if error != code::NONE {
            return (error, message, StrBytes::default(), -1, BrokerId(-1));
        }
        match coordinator_of(&ctx, key, req.key_type) {
            Some(b) => (
                code::NONE,
                None,
                str_bytes(&b.host),
                i32::from(b.port),
                BrokerId(b.id),
            ),
            None => (
                code::COORDINATOR_NOT_AVAILABLE,
                Some(NO_COORDINATOR),
                StrBytes::default(),
                -1,
                BrokerId(-1),
            ),
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if header.api_version < 4 {
        let (error, message, host, port, node) = answer(&req.key);
        resp.error_code = error;
        if header.api_version >= 1 {
            resp.error_message = message.map(str_bytes);
        }
        (resp.host, resp.port, resp.node_id) = (host, port, node);
    } else {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (error, message, host, port, node) = answer(k);
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(node)
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(error)
                    .with_error_message(message.map(str_bytes))
            })
            .collect();
    }
    respond(&header, &resp)
}
