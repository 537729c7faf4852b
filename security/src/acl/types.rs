//! The ACL vocabulary: Kafka's four enums with their wire codes and names, a resource pattern,
//! an access control entry, and the binding of the two with the checks CreateAcls applies.

use std::fmt;
use std::str::FromStr;

use super::host;
use super::AclError;

/// The resource name a LITERAL pattern uses to match every resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// The principal an entry uses to match every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host an entry uses to match every client address.
pub const WILDCARD_HOST: &str = "*";
/// The one name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Defines one of Kafka's ACL enums: `#[repr(i8)]` with the wire code, `from_i8` (unknown codes
/// become `Unknown`, as Kafka's `fromCode` does), the enum name (`TRANSACTIONAL_ID`, shown by
/// `Display`) and the Pascal-case name kafka-acls.sh prints (`TransactionalId`). Parsing accepts
/// either name in any case, the union of what `fromString` and `SecurityUtils` accept.
macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal,
     { $($variant:ident = $code:literal, $kafka:literal, $pascal:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i8)]
        pub enum $name {
            $($variant = $code,)*
        }

        impl $name {
            /// Every value, in code order.
            pub const VALUES: &'static [$name] = &[$($name::$variant,)*];

            /// The value for a wire code; codes Kafka does not define are `Unknown`.
            pub fn from_i8(code: i8) -> Self {
                match code {
                    $($code => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }

            /// The wire code.
            pub fn code(self) -> i8 {
                self as i8
            }

            /// Kafka's enum name, e.g. `TRANSACTIONAL_ID`.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $kafka,)*
                }
            }

            /// The Pascal-case name kafka-acls.sh prints, e.g. `TransactionalId`.
            pub fn pascal_name(self) -> &'static str {
                match self {
                    $($name::$variant => $pascal,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = AclError;

            fn from_str(text: &str) -> Result<Self, AclError> {
                let text = text.trim();
                Self::VALUES
                    .iter()
                    .copied()
                    .find(|v| {
                        v.name().eq_ignore_ascii_case(text)
                            || v.pascal_name().eq_ignore_ascii_case(text)
                    })
                    .ok_or_else(|| AclError::UnknownName { kind: $kind, name: text.to_string() })
            }
        }
    };
}

kafka_enum!(
    /// The kind of resource an ACL protects. `Any` is for filters only.
    ResourceType, "resource type", {
        Unknown = 0, "UNKNOWN", "Unknown";
        Any = 1, "ANY", "Any";
        Topic = 2, "TOPIC", "Topic";
        Group = 3, "GROUP", "Group";
        Cluster = 4, "CLUSTER", "Cluster";
        TransactionalId = 5, "TRANSACTIONAL_ID", "TransactionalId";
        DelegationToken = 6, "DELEGATION_TOKEN", "DelegationToken";
        User = 7, "USER", "User";
    }
);

kafka_enum!(
    /// How a pattern's name matches resource names. `Any` and `Match` are for filters only.
    PatternType, "pattern type", {
        Unknown = 0, "UNKNOWN", "Unknown";
        Any = 1, "ANY", "Any";
        Match = 2, "MATCH", "Match";
        Literal = 3, "LITERAL", "Literal";
        Prefixed = 4, "PREFIXED", "Prefixed";
    }
);

kafka_enum!(
    /// What an ACL allows or denies. `Any` is for filters only.
    AclOperation, "operation", {
        Unknown = 0, "UNKNOWN", "Unknown";
        Any = 1, "ANY", "Any";
        All = 2, "ALL", "All";
        Read = 3, "READ", "Read";
        Write = 4, "WRITE", "Write";
        Create = 5, "CREATE", "Create";
        Delete = 6, "DELETE", "Delete";
        Alter = 7, "ALTER", "Alter";
        Describe = 8, "DESCRIBE", "Describe";
        ClusterAction = 9, "CLUSTER_ACTION", "ClusterAction";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS", "DescribeConfigs";
        AlterConfigs = 11, "ALTER_CONFIGS", "AlterConfigs";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE", "IdempotentWrite";
        CreateTokens = 13, "CREATE_TOKENS", "CreateTokens";
        DescribeTokens = 14, "DESCRIBE_TOKENS", "DescribeTokens";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT", "TwoPhaseCommit";
    }
);

kafka_enum!(
    /// Whether an ACL allows or denies. `Any` is for filters only.
    PermissionType, "permission type", {
        Unknown = 0, "UNKNOWN", "Unknown";
        Any = 1, "ANY", "Any";
        Deny = 2, "DENY", "Deny";
        Allow = 3, "ALLOW", "Allow";
    }
);

/// A resource type, a name and how the name matches. Bindings use LITERAL or PREFIXED only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

/// Who (principal `Type:name` or `User:*`), from where (`*`, an IP, or a CIDR block), may or
/// may not do what.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessControlEntry {
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

/// One ACL: an entry applied to the resources a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessControlEntry,
}

/// The operations kafka-acls.sh accepts for a resource type besides ALL (Kafka 4.4's
/// `AclEntry.supportedOperations`); empty for UNKNOWN and ANY.
pub fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
        ResourceType::Unknown | ResourceType::Any => &[],
    }
}

impl ResourcePattern {
    pub fn new(resource_type: ResourceType, name: impl Into<String>, pattern: PatternType) -> Self {
        ResourcePattern {
            resource_type,
            name: name.into(),
            pattern_type: pattern,
        }
    }

    pub fn literal(resource_type: ResourceType, name: impl Into<String>) -> Self {
        Self::new(resource_type, name, PatternType::Literal)
    }

    pub fn prefixed(resource_type: ResourceType, name: impl Into<String>) -> Self {
        Self::new(resource_type, name, PatternType::Prefixed)
    }

    /// Whether this pattern covers the resource: same type, and a LITERAL pattern of the same
    /// name or of `*`, or a PREFIXED pattern the name starts with. Filter-only pattern types
    /// cover nothing.
    pub fn matches(&self, resource_type: ResourceType, name: &str) -> bool {
        if self.resource_type != resource_type {
            return false;
        }
        match self.pattern_type {
            PatternType::Literal => self.name == name || self.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(self.name.as_str()),
            _ => false,
        }
    }
}

impl AccessControlEntry {
    pub fn new(
        principal: impl Into<String>,
        host: impl Into<String>,
        operation: AclOperation,
        permission: PermissionType,
    ) -> Self {
        AccessControlEntry {
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }
}

impl AclBinding {
    pub fn new(pattern: ResourcePattern, entry: AccessControlEntry) -> Self {
        AclBinding { pattern, entry }
    }

    /// What CreateAcls refuses, with CIDR hosts allowed (metadata version 4.4-IV1 and later).
    pub fn validate(&self) -> Result<(), AclError> {
        self.validate_with(true)
    }

    /// What CreateAcls refuses, in the order a Kafka 4.4 cluster finds it: the enum values
    /// (request parsing and the controller), then the broker's CLUSTER-name and empty-name
    /// checks, then the controller's principal and host checks. `cidr_hosts_supported` is
    /// false below metadata version 4.4-IV1, where a host with `/` is UNSUPPORTED_VERSION.
    /// Operations a resource type has no use for are accepted, as Kafka's broker accepts them;
    /// [`AclBinding::check_supported_operation`] is kafka-acls.sh's stricter rule.
    pub fn validate_with(&self, cidr_hosts_supported: bool) -> Result<(), AclError> {
        self.validate_enums()?;
        let pattern = &self.pattern;
        if pattern.resource_type == ResourceType::Cluster && pattern.name != CLUSTER_NAME {
            return Err(AclError::InvalidClusterName {
                name: pattern.name.clone(),
            });
        }
        if pattern.name.is_empty() {
            return Err(AclError::EmptyResourceName);
        }
        if !self.entry.principal.contains(':') {
            return Err(AclError::InvalidPrincipal {
                principal: self.entry.principal.clone(),
            });
        }
        validate_host(&self.entry.host, cidr_hosts_supported)
    }

    /// kafka-acls.sh's rule: the operation is ALL or one the resource type supports.
    pub fn check_supported_operation(&self) -> Result<(), AclError> {
        let resource_type = self.pattern.resource_type;
        if matches!(resource_type, ResourceType::Unknown | ResourceType::Any) {
            return Err(AclError::InvalidResourceType(resource_type));
        }
        let operation = self.entry.operation;
        if operation == AclOperation::All
            || supported_operations(resource_type).contains(&operation)
        {
            return Ok(());
        }
        Err(AclError::UnsupportedOperation {
            resource_type,
            operation,
        })
    }

    /// Whether any of the four enums is UNKNOWN (a value this side cannot interpret).
    pub fn is_unknown(&self) -> bool {
        self.pattern.resource_type == ResourceType::Unknown
            || self.pattern.pattern_type == PatternType::Unknown
            || self.entry.operation == AclOperation::Unknown
            || self.entry.permission == PermissionType::Unknown
    }

    /// Whether the enums are those of a storable binding (what `validate_enums` accepts).
    pub(crate) fn is_concrete(&self) -> bool {
        self.validate_enums().is_ok()
    }

    fn validate_enums(&self) -> Result<(), AclError> {
        let (pattern, entry) = (&self.pattern, &self.entry);
        if matches!(
            pattern.resource_type,
            ResourceType::Unknown | ResourceType::Any
        ) {
            return Err(AclError::InvalidResourceType(pattern.resource_type));
        }
        if !matches!(
            pattern.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(AclError::InvalidPatternType(pattern.pattern_type));
        }
        if matches!(entry.operation, AclOperation::Unknown | AclOperation::Any) {
            return Err(AclError::InvalidOperation(entry.operation));
        }
        if !matches!(
            entry.permission,
            PermissionType::Allow | PermissionType::Deny
        ) {
            return Err(AclError::InvalidPermissionType(entry.permission));
        }
        Ok(())
    }
}

/// Kafka's `ResourcePattern.toString`.
impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            self.resource_type, self.name, self.pattern_type
        )
    }
}

/// Kafka's `AccessControlEntry.toString`.
impl fmt::Display for AccessControlEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal, self.host, self.operation, self.permission
        )
    }
}

/// Kafka's `AclBinding.toString`.
impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(pattern={}, entry={})", self.pattern, self.entry)
    }
}

/// The list kafka-acls.sh prints after "only supports operations".
pub(super) fn supported_operation_names(resource_type: ResourceType) -> String {
    let mut names: Vec<&str> = supported_operations(resource_type)
        .iter()
        .map(|op| op.pascal_name())
        .collect();
    names.push(AclOperation::All.pascal_name());
    names.join(", ")
}

/// `AclControlManager.validateHostPattern`: any non-empty host is accepted (it is compared as
/// a string), except that one with `/` must be a CIDR block the metadata version allows.
fn validate_host(text: &str, cidr_hosts_supported: bool) -> Result<(), AclError> {
    if text.is_empty() {
        return Err(AclError::EmptyHost);
    }
    if text == WILDCARD_HOST || !text.contains('/') {
        return Ok(());
    }
    if !cidr_hosts_supported {
        return Err(AclError::CidrHostUnsupported {
            host: text.to_string(),
        });
    }
    host::Cidr::parse(text)
        .map(|_| ())
        .map_err(|reason| AclError::InvalidCidr {
            host: text.to_string(),
            reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(rt: ResourceType, name: &str, pt: PatternType) -> AclBinding {
        AclBinding::new(
            ResourcePattern::new(rt, name, pt),
            AccessControlEntry::new("User:alice", "*", AclOperation::Read, PermissionType::Allow),
        )
    }

    fn with_entry(
        principal: &str,
        host: &str,
        op: AclOperation,
        perm: PermissionType,
    ) -> AclBinding {
        AclBinding::new(
            ResourcePattern::literal(ResourceType::Topic, "t"),
            AccessControlEntry::new(principal, host, op, perm),
        )
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_become_unknown() {
        for &rt in ResourceType::VALUES {
            assert_eq!(ResourceType::from_i8(rt.code()), rt);
        }
        for &op in AclOperation::VALUES {
            assert_eq!(AclOperation::from_i8(op.code()), op);
        }
        for &pt in PatternType::VALUES {
            assert_eq!(PatternType::from_i8(pt.code()), pt);
        }
        for &perm in PermissionType::VALUES {
            assert_eq!(PermissionType::from_i8(perm.code()), perm);
        }
        assert_eq!(AclOperation::TwoPhaseCommit.code(), 15);
        assert_eq!(ResourceType::User.code(), 7);
        assert_eq!(AclOperation::from_i8(16), AclOperation::Unknown);
        assert_eq!(ResourceType::from_i8(-1), ResourceType::Unknown);
        assert_eq!(PatternType::from_i8(5), PatternType::Unknown);
        assert_eq!(PermissionType::from_i8(4), PermissionType::Unknown);
    }

    #[test]
    fn names_display_and_parse_like_kafka_acls() {
        assert_eq!(
            ResourceType::TransactionalId.to_string(),
            "TRANSACTIONAL_ID"
        );
        assert_eq!(
            ResourceType::TransactionalId.pascal_name(),
            "TransactionalId"
        );
        assert_eq!(PatternType::Literal.to_string(), "LITERAL");
        assert_eq!(AclOperation::Read.to_string(), "READ");
        assert_eq!(PermissionType::Allow.to_string(), "ALLOW");
        for text in [
            "IdempotentWrite",
            "IDEMPOTENTWRITE",
            "idempotent_write",
            " Idempotent_Write ",
        ] {
            assert_eq!(
                text.parse::<AclOperation>(),
                Ok(AclOperation::IdempotentWrite),
                "{text}"
            );
        }
        assert_eq!(
            "transactionalid".parse::<ResourceType>(),
            Ok(ResourceType::TransactionalId)
        );
        assert_eq!("prefixed".parse::<PatternType>(), Ok(PatternType::Prefixed));
        assert_eq!("Deny".parse::<PermissionType>(), Ok(PermissionType::Deny));
        assert_eq!(
            "Reed".parse::<AclOperation>(),
            Err(AclError::UnknownName {
                kind: "operation",
                name: "Reed".into()
            })
        );
        assert!("idempotent write".parse::<AclOperation>().is_err());
    }

    #[test]
    fn display_follows_kafka_to_string() {
        let b = AclBinding::new(
            ResourcePattern::prefixed(ResourceType::Topic, "orders-"),
            AccessControlEntry::new("User:alice", "*", AclOperation::Write, PermissionType::Deny),
        );
        assert_eq!(
            b.to_string(),
            "(pattern=ResourcePattern(resourceType=TOPIC, name=orders-, patternType=PREFIXED), \
             entry=(principal=User:alice, host=*, operation=WRITE, permissionType=DENY))"
        );
    }

    #[test]
    fn pattern_matching_rules() {
        let lit = ResourcePattern::literal(ResourceType::Topic, "foo");
        assert!(lit.matches(ResourceType::Topic, "foo"));
        assert!(!lit.matches(ResourceType::Topic, "foobar"));
        assert!(!lit.matches(ResourceType::Group, "foo"));
        let wild = ResourcePattern::literal(ResourceType::Group, "*");
        assert!(wild.matches(ResourceType::Group, "anything"));
        assert!(!wild.matches(ResourceType::Topic, "anything"));
        let pre = ResourcePattern::prefixed(ResourceType::Topic, "fo");
        assert!(pre.matches(ResourceType::Topic, "fo") && pre.matches(ResourceType::Topic, "foo"));
        assert!(!pre.matches(ResourceType::Topic, "f"));
        // A PREFIXED "*" is an ordinary prefix, not a wildcard.
        let star = ResourcePattern::prefixed(ResourceType::Topic, "*");
        assert!(
            !star.matches(ResourceType::Topic, "foo") && star.matches(ResourceType::Topic, "*x")
        );
        let any = ResourcePattern::new(ResourceType::Topic, "foo", PatternType::Any);
        assert!(!any.matches(ResourceType::Topic, "foo"));
    }

    #[test]
    fn validate_refuses_filter_and_unknown_enums_with_controller_texts() {
        use PatternType as P;
        use ResourceType as R;
        let cases = [
            (binding(R::Any, "t", P::Literal), "Invalid resourceType ANY"),
            (
                binding(R::Unknown, "t", P::Literal),
                "Invalid resourceType UNKNOWN",
            ),
            (
                binding(R::Topic, "t", P::Match),
                "Invalid patternType MATCH",
            ),
            (binding(R::Topic, "t", P::Any), "Invalid patternType ANY"),
            (
                binding(R::Topic, "t", P::Unknown),
                "Invalid patternType UNKNOWN",
            ),
        ];
        for (b, text) in cases {
            assert_eq!(b.validate().unwrap_err().to_string(), text);
        }
        let op_any = with_entry("User:a", "*", AclOperation::Any, PermissionType::Allow);
        assert_eq!(
            op_any.validate(),
            Err(AclError::InvalidOperation(AclOperation::Any))
        );
        let op_unknown = with_entry("User:a", "*", AclOperation::Unknown, PermissionType::Allow);
        assert_eq!(
            op_unknown.validate().unwrap_err().to_string(),
            "Invalid operation UNKNOWN"
        );
        let perm_any = with_entry("User:a", "*", AclOperation::Read, PermissionType::Any);
        assert_eq!(
            perm_any.validate().unwrap_err().to_string(),
            "Invalid permissionType ANY"
        );
        assert!(binding(R::Topic, "t", P::Literal).validate().is_ok());
        assert!(binding(R::Topic, "t", P::Prefixed).validate().is_ok());
    }

    #[test]
    fn validate_broker_checks_cluster_name_and_empty_name() {
        let cluster = binding(ResourceType::Cluster, "my-cluster", PatternType::Literal);
        assert_eq!(
            cluster.validate().unwrap_err().to_string(),
            "The only valid name for the CLUSTER resource is kafka-cluster"
        );
        assert!(
            binding(ResourceType::Cluster, "kafka-cluster", PatternType::Literal)
                .validate()
                .is_ok()
        );
        let empty = binding(ResourceType::Topic, "", PatternType::Prefixed);
        assert_eq!(empty.validate(), Err(AclError::EmptyResourceName));
        assert_eq!(
            empty.validate().unwrap_err().to_string(),
            "Invalid empty resource name"
        );
        // The broker checks the CLUSTER name before emptiness.
        let empty_cluster = binding(ResourceType::Cluster, "", PatternType::Literal);
        assert!(matches!(
            empty_cluster.validate(),
            Err(AclError::InvalidClusterName { .. })
        ));
    }

    #[test]
    fn validate_principal_needs_a_colon_only() {
        let bad = with_entry("alice", "*", AclOperation::Read, PermissionType::Allow);
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "Could not parse principal from `alice` (no colon is present separating the \
             principal type from the principal name)"
        );
        for ok in ["User:alice", "User:*", "Group:ops", "User:CN=a,O=b:c"] {
            let b = with_entry(ok, "*", AclOperation::Read, PermissionType::Allow);
            assert!(b.validate().is_ok(), "{ok}");
        }
    }

    #[test]
    fn validate_hosts_and_cidr_blocks() {
        let host = |h: &str| with_entry("User:a", h, AclOperation::Read, PermissionType::Allow);
        assert_eq!(host("").validate(), Err(AclError::EmptyHost));
        for ok in [
            "*",
            "10.0.0.1",
            "::1",
            "not-even-an-ip",
            "10.0.0.0/8",
            "2001:db8::/32",
        ] {
            assert!(host(ok).validate().is_ok(), "{ok}");
        }
        assert_eq!(
            host("10.0.0.0/8")
                .validate_with(false)
                .unwrap_err()
                .to_string(),
            "CIDR-based ACL host patterns require metadata version 4.4-IV1 or higher."
        );
        assert!(host("10.0.0.1").validate_with(false).is_ok());
        assert_eq!(
            host("10.0.0.0/33").validate().unwrap_err().to_string(),
            "Invalid CIDR notation '10.0.0.0/33': Value [33] not in range [0,32]"
        );
        assert_eq!(
            host("10.0.0/8").validate().unwrap_err().to_string(),
            "Invalid CIDR notation '10.0.0/8': Could not parse [10.0.0/8]"
        );
        assert!(host("2001:db8::/129").validate().is_err());
    }

    #[test]
    fn supported_operations_follow_kafka_acls() {
        let b = |rt, op| {
            AclBinding::new(
                ResourcePattern::literal(rt, "x"),
                AccessControlEntry::new("User:a", "*", op, PermissionType::Allow),
            )
        };
        assert!(b(ResourceType::Topic, AclOperation::Read)
            .check_supported_operation()
            .is_ok());
        assert!(b(ResourceType::Topic, AclOperation::All)
            .check_supported_operation()
            .is_ok());
        assert!(
            b(ResourceType::TransactionalId, AclOperation::TwoPhaseCommit)
                .check_supported_operation()
                .is_ok()
        );
        assert!(b(ResourceType::Group, AclOperation::AlterConfigs)
            .check_supported_operation()
            .is_ok());
        let refused = b(ResourceType::Group, AclOperation::Write);
        assert_eq!(
            refused.check_supported_operation().unwrap_err().to_string(),
            "ResourceType Group only supports operations Read, Describe, Delete, \
             DescribeConfigs, AlterConfigs, All"
        );
        // The broker itself stores such a binding.
        assert!(refused.validate().is_ok());
        assert!(b(ResourceType::Cluster, AclOperation::Read)
            .check_supported_operation()
            .is_err());
    }
}
