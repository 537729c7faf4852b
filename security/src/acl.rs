//! Kafka's ACL model and the decisions of its `StandardAuthorizer`, without I/O.
//!
//! The broker keeps ACL bindings in its replicated metadata (the controller is the one writer,
//! after [`AclBinding::validate`]); from them it builds an immutable [`Authorizer`] per shard and
//! asks [`Authorizer::authorize`] on the hot path. Building is O(n log n); a decision finds the
//! patterns covering the resource (a hash lookup for the literal name and for `*`, and a walk
//! down a sorted table of prefixes of at most name-length binary searches), and within each
//! pattern only the ACLs of the caller's principal and of `User:*` (by binary search), without
//! allocating. Nothing scans all bindings except [`Authorizer::acls`] (DescribeAcls), which has
//! to.
//!
//! Semantics follow Kafka 4.4 as read in `StandardAuthorizerData` (metadata module), the
//! default `Authorizer.authorizeByResourceType` (clients), `AclControlManager.validateNewAcl`
//! and the broker's `AclApis.handleCreateAcls`, and the ACL classes of kafka-clients
//! (`ResourcePatternFilter`, `AccessControlEntryFilter`, `SecurityUtils`, `CidrUtils`).
//! Invariants of a snapshot: it never changes after [`Authorizer::new`]; bindings that could not
//! pass the controller's enum checks (an UNKNOWN or ANY resource type, a pattern type other than
//! LITERAL/PREFIXED, an UNKNOWN/ANY operation or permission) are kept for [`Authorizer::bindings`]
//! but take no part in decisions, because Kafka never stores them.

mod authorizer;
mod filter;
mod host;
mod types;

#[cfg(test)]
mod model_tests;

pub use authorizer::{
    parse_super_users, Authorizer, AuthorizerSettings, ALLOW_EVERYONE_IF_NO_ACL_IS_FOUND_CONFIG,
    SUPER_USERS_CONFIG,
};
pub use filter::AclBindingFilter;
pub use host::host_address;
pub use types::{
    supported_operations, AccessControlEntry, AclBinding, AclOperation, PatternType,
    PermissionType, ResourcePattern, ResourceType, CLUSTER_NAME, WILDCARD_HOST, WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
};

/// Why an ACL binding, filter, name or setting was refused. The texts are Kafka's where Kafka
/// has one, so they can go back to clients as the error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// INVALID_REQUEST (controller): UNKNOWN or ANY resource type in a binding.
    #[error("Invalid resourceType {0}")]
    InvalidResourceType(ResourceType),
    /// INVALID_REQUEST (controller): a pattern type other than LITERAL or PREFIXED.
    #[error("Invalid patternType {0}")]
    InvalidPatternType(PatternType),
    /// INVALID_REQUEST (controller): UNKNOWN or ANY operation in a binding.
    #[error("Invalid operation {0}")]
    InvalidOperation(AclOperation),
    /// INVALID_REQUEST (controller): a permission other than ALLOW or DENY.
    #[error("Invalid permissionType {0}")]
    InvalidPermissionType(PermissionType),
    /// INVALID_REQUEST (broker): a CLUSTER binding not named `kafka-cluster`.
    #[error("The only valid name for the CLUSTER resource is kafka-cluster")]
    InvalidClusterName { name: String },
    /// INVALID_REQUEST (broker): an empty resource name.
    #[error("Invalid empty resource name")]
    EmptyResourceName,
    /// INVALID_REQUEST (controller): a principal without the `Type:name` colon.
    #[error(
        "Could not parse principal from `{principal}` (no colon is present separating the \
         principal type from the principal name)"
    )]
    InvalidPrincipal { principal: String },
    /// INVALID_REQUEST (controller): an empty host.
    #[error("Host pattern cannot be null or empty")]
    EmptyHost,
    /// UNSUPPORTED_VERSION (controller): a CIDR host before metadata version 4.4-IV1.
    #[error("CIDR-based ACL host patterns require metadata version 4.4-IV1 or higher.")]
    CidrHostUnsupported { host: String },
    /// INVALID_REQUEST (controller): a host with `/` that is not a valid CIDR block.
    #[error("Invalid CIDR notation '{host}': {reason}")]
    InvalidCidr { host: String, reason: String },
    /// kafka-acls.sh's refusal of an operation the resource type has no use for (the broker
    /// itself accepts such bindings).
    #[error(
        "ResourceType {} only supports operations {}",
        resource_type.pascal_name(),
        types::supported_operation_names(*resource_type)
    )]
    UnsupportedOperation {
        resource_type: ResourceType,
        operation: AclOperation,
    },
    /// INVALID_REQUEST (DeleteAcls): the filter's resource or pattern type is UNKNOWN.
    #[error("Unknown patternFilter.")]
    UnknownPatternFilter,
    /// INVALID_REQUEST (DeleteAcls): the filter's operation or permission is UNKNOWN.
    #[error("Unknown entryFilter.")]
    UnknownEntryFilter,
    /// `super.users` holds an entry that is not `Type:name`.
    #[error("expected a string in format principalType:principalName but got {value}")]
    InvalidSuperUser { value: String },
    /// A name that is none of the enum's values (kafka-acls.sh and config parsing).
    #[error("Unknown {kind} name: {name}")]
    UnknownName { kind: &'static str, name: String },
}
