//! ACLs on the request path: each shard keeps an [`Authorizer`] index of the ACL bindings in
//! the metadata image it holds, rebuilt only when the image's ACLs changed (the image keeps
//! them behind one `Arc`, so comparing pointers tells). Decisions are
//! `millrace_security::acl`'s (Kafka's `StandardAuthorizer`); this module only turns records
//! into bindings and picks the index.
//!
//! Without `authorizer.class.name` nothing is checked, as in Kafka. On the controller listener
//! a request is judged as the connection's principal (the node's own login; the inter-node
//! keys need CLUSTER_ACTION), and one a broker forwards in an Envelope as its client (see
//! docs/ARCHITECTURE.md "ACLs").

use crate::shard::Shard;
use bytes::{Buf, Bytes};
use kafka_protocol::messages::DefaultPrincipalData;
use kafka_protocol::protocol::{Decodable, Encodable};
use millrace_replication::metadata::{AccessControlEntryRecord, AclImages};
use millrace_security::acl::{
    AccessControlEntry, AclBinding, AclOperation, Authorizer, PatternType, PermissionType,
    ResourcePattern, ResourceType,
};
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

/// The shard's index and the ACL map it was built from.
#[derive(Default)]
struct AclIndex {
    built: RefCell<Option<(AclImages, Rc<Authorizer>)>>,
    /// Counts the rebuilds: changes whenever the shard's decisions may have changed.
    generation: Cell<u64>,
}

/// The shard's authorizer for its current image; `None` when no authorizer is configured.
pub fn authorizer(shard: &Shard) -> Option<Rc<Authorizer>> {
    let settings = shard.config.authorizer.as_ref()?;
    let index = shard.subsystems.get_or_install(AclIndex::default);
    let image = shard.image();
    let acls = image.cluster.acls();
    let mut built = index.built.borrow_mut();
    if let Some((from, authorizer)) = &*built {
        if Arc::ptr_eq(from, acls) {
            return Some(authorizer.clone());
        }
    }
    let authorizer = Rc::new(Authorizer::new(
        acls.values().map(binding_of),
        settings.clone(),
    ));
    *built = Some((acls.clone(), authorizer.clone()));
    index.generation.set(index.generation.get() + 1);
    Some(authorizer)
}

/// The shard's authorizer with its generation, a number that changes whenever the ACLs it
/// judges by changed (for state derived from decisions, such as a consumer group's regex
/// topics); `None` when no authorizer is configured.
pub fn authorizer_with_generation(shard: &Shard) -> Option<(Rc<Authorizer>, u64)> {
    let authorizer = authorizer(shard)?;
    let index = shard.subsystems.get_or_install(AclIndex::default);
    let generation = index.generation.get();
    Some((authorizer, generation))
}

/// The binding a stored record holds.
pub fn binding_of(r: &AccessControlEntryRecord) -> AclBinding {
    AclBinding::new(
        ResourcePattern::new(
            ResourceType::from_i8(r.resource_type),
            r.resource_name.clone(),
            PatternType::from_i8(r.pattern_type),
        ),
        AccessControlEntry::new(
            r.principal.clone(),
            r.host.clone(),
            AclOperation::from_i8(r.operation),
            PermissionType::from_i8(r.permission_type),
        ),
    )
}

/// The record that stores `binding` under `id`.
pub fn record_of(id: [u8; 16], binding: &AclBinding) -> AccessControlEntryRecord {
    AccessControlEntryRecord {
        id,
        resource_type: binding.pattern.resource_type.code(),
        resource_name: binding.pattern.name.clone(),
        pattern_type: binding.pattern.pattern_type.code(),
        principal: binding.entry.principal.clone(),
        host: binding.entry.host.clone(),
        operation: binding.entry.operation.code(),
        permission_type: binding.entry.permission.code(),
    }
}

/// A request's principal and address as the authorizer takes them.
#[derive(Debug, Clone)]
pub struct Requester {
    /// `User:alice`.
    pub principal: Rc<str>,
    /// The client's address without Kafka's leading `/`.
    pub host: Rc<str>,
}

/// What a handler asks: may the requester do `op` on the resource? Denials are logged (as
/// Kafka's authorizer logger does) unless `quiet` (listings that only filter what they show).
pub fn allowed(
    authorizer: &Authorizer,
    who: &Requester,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
    quiet: bool,
) -> bool {
    let ok = authorizer.authorize(&who.principal, &who.host, op, resource_type, name);
    if !ok && !quiet {
        tracing::info!(
            principal = %who.principal, host = %who.host, operation = %op.pascal_name(),
            resource = %format!("{}:{name}", resource_type.pascal_name()),
            "authorization denied"
        );
    }
    ok
}

// Envelope's principal and address (KIP-590), shared by the broker that wraps a forwarded
// request and the controller that unwraps it.

/// `Type:name` from Kafka's version-prefixed DefaultPrincipalData.
pub fn principal_of(bytes: &Bytes) -> Option<String> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    let data = DefaultPrincipalData::decode(&mut buf, version).ok()?;
    Some(format!("{}:{}", data._type, data.name))
}

/// The client's address from its 4 or 16 bytes.
pub fn host_of(bytes: &Bytes) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(&bytes[..]).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(&bytes[..]).ok()?)),
        _ => None,
    }
}

/// Kafka's version-prefixed DefaultPrincipalData for `principal` (`Type:name`).
pub fn principal_bytes(principal: &str) -> Bytes {
    let (kind, name) = principal.split_once(':').unwrap_or(("User", principal));
    let data = DefaultPrincipalData::default()
        .with_type(kafka_protocol::protocol::StrBytes::from_string(
            kind.to_string(),
        ))
        .with_name(kafka_protocol::protocol::StrBytes::from_string(
            name.to_string(),
        ))
        .with_token_authenticated(false);
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    data.encode(&mut out, 0).expect("a principal encodes");
    out.freeze()
}

/// The address bytes Kafka's Envelope carries for a client host (`/1.2.3.4` or `1.2.3.4`).
pub fn host_bytes(host: &str) -> Bytes {
    match host.trim_start_matches('/').parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Bytes::copy_from_slice(&a.octets()),
        Ok(IpAddr::V6(a)) => Bytes::copy_from_slice(&a.octets()),
        Err(_) => Bytes::copy_from_slice(&[0, 0, 0, 0]),
    }
}
