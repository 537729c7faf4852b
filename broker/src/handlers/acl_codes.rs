//! What the three ACL handlers share: Kafka's wire fields to `millrace_security::acl` values
//! and the texts of their refusals.

use super::Context;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::protocol::StrBytes;
use millrace_security::acl::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, PatternType, PermissionType,
    ResourcePattern, ResourceType,
};

/// Kafka's message when ACL requests reach a broker without an authorizer.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// The message of a request refused for lack of a cluster permission.
pub fn cluster_denied(ctx: &Context) -> String {
    format!(
        "Principal {} is not authorized to access the cluster",
        ctx.client().principal
    )
}

/// A creation's binding, its codes kept as sent (the writer refuses the bad ones).
pub fn binding_of_creation(c: &AclCreation) -> AclBinding {
    AclBinding::new(
        ResourcePattern::new(
            ResourceType::from_i8(c.resource_type),
            c.resource_name.to_string(),
            PatternType::from_i8(c.resource_pattern_type),
        ),
        AccessControlEntry::new(
            c.principal.to_string(),
            c.host.to_string(),
            AclOperation::from_i8(c.operation),
            PermissionType::from_i8(c.permission_type),
        ),
    )
}

/// A DescribeAcls or DeleteAcls filter from its wire fields.
pub fn filter_of(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_i8(resource_type),
        name: name.map(|n| n.to_string()),
        pattern_type: PatternType::from_i8(pattern_type),
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: AclOperation::from_i8(operation),
        permission: PermissionType::from_i8(permission),
    }
}
