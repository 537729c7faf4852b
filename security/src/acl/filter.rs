//! The filters DescribeAcls and DeleteAcls carry, with Kafka's matching rules
//! (`ResourcePatternFilter.matches`, `AccessControlEntryFilter.matches`).

use super::types::{
    AccessControlEntry, AclBinding, AclOperation, PatternType, PermissionType, ResourcePattern,
    ResourceType, WILDCARD_RESOURCE,
};
use super::AclError;

/// Selects bindings. `None` strings and `Any` enums match everything. The pattern type is
/// `Any` (any pattern of exactly this name), `Match` (every pattern that would match a resource
/// of this name: the literal name, the literal `*`, and prefixes of it), or `Literal` /
/// `Prefixed` (that pattern type and exactly this name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

impl AclBindingFilter {
    /// The filter that matches every binding.
    pub fn any() -> Self {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: PermissionType::Any,
        }
    }

    /// The filter that matches exactly this binding (Kafka's `AclBinding.toFilter`).
    pub fn exact(binding: &AclBinding) -> Self {
        AclBindingFilter {
            resource_type: binding.pattern.resource_type,
            name: Some(binding.pattern.name.clone()),
            pattern_type: binding.pattern.pattern_type,
            principal: Some(binding.entry.principal.clone()),
            host: Some(binding.entry.host.clone()),
            operation: binding.entry.operation,
            permission: binding.entry.permission,
        }
    }

    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(&binding.pattern) && self.matches_entry(&binding.entry)
    }

    /// `ResourcePatternFilter.matches`.
    pub fn matches_pattern(&self, pattern: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != pattern.resource_type {
            return false;
        }
        let filter_type = self.pattern_type;
        let open_type = matches!(filter_type, PatternType::Any | PatternType::Match);
        if !open_type && filter_type != pattern.pattern_type {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if filter_type == PatternType::Any || filter_type == pattern.pattern_type {
            return *name == pattern.name;
        }
        // MATCH: the patterns that would apply to a resource called `name`. Kafka throws for
        // a binding with a filter-only pattern type; such a binding matches nothing here.
        match pattern.pattern_type {
            PatternType::Literal => *name == pattern.name || pattern.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(pattern.name.as_str()),
            _ => false,
        }
    }

    /// `AccessControlEntryFilter.matches`: exact equality for each field that is set.
    pub fn matches_entry(&self, entry: &AccessControlEntry) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|p| *p == entry.principal)
            && self.host.as_ref().is_none_or(|h| *h == entry.host)
            && (self.operation == AclOperation::Any || self.operation == entry.operation)
            && (self.permission == PermissionType::Any || self.permission == entry.permission)
    }

    /// Whether any part is UNKNOWN (Kafka's `AclBindingFilter.isUnknown`).
    pub fn is_unknown(&self) -> bool {
        self.resource_type == ResourceType::Unknown
            || self.pattern_type == PatternType::Unknown
            || self.operation == AclOperation::Unknown
            || self.permission == PermissionType::Unknown
    }

    /// What DeleteAcls refuses (`AclControlManager.validateFilter`).
    pub fn validate(&self) -> Result<(), AclError> {
        if self.resource_type == ResourceType::Unknown || self.pattern_type == PatternType::Unknown
        {
            return Err(AclError::UnknownPatternFilter);
        }
        if self.operation == AclOperation::Unknown || self.permission == PermissionType::Unknown {
            return Err(AclError::UnknownEntryFilter);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(rt: ResourceType, name: &str, pt: PatternType) -> AclBinding {
        AclBinding::new(
            ResourcePattern::new(rt, name, pt),
            AccessControlEntry::new("User:alice", "*", AclOperation::Read, PermissionType::Allow),
        )
    }

    fn pattern_filter(rt: ResourceType, name: Option<&str>, pt: PatternType) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: rt,
            name: name.map(str::to_string),
            pattern_type: pt,
            ..AclBindingFilter::any()
        }
    }

    fn sample() -> Vec<AclBinding> {
        use PatternType::*;
        use ResourceType::*;
        vec![
            b(Topic, "foo", Literal),     // 0
            b(Topic, "*", Literal),       // 1
            b(Topic, "fo", Prefixed),     // 2
            b(Topic, "foo", Prefixed),    // 3
            b(Topic, "foobar", Prefixed), // 4
            b(Topic, "bar", Literal),     // 5
            b(Group, "foo", Literal),     // 6
            b(Topic, "*", Prefixed),      // 7
        ]
    }

    fn matching(filter: &AclBindingFilter) -> Vec<usize> {
        sample()
            .iter()
            .enumerate()
            .filter(|(_, x)| filter.matches(x))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn any_filter_matches_everything() {
        assert_eq!(
            matching(&AclBindingFilter::any()),
            (0..8).collect::<Vec<_>>()
        );
        let topics = pattern_filter(ResourceType::Topic, None, PatternType::Any);
        assert_eq!(matching(&topics), vec![0, 1, 2, 3, 4, 5, 7]);
    }

    #[test]
    fn any_pattern_type_with_a_name_is_exact_name_of_any_type() {
        let f = pattern_filter(ResourceType::Any, Some("foo"), PatternType::Any);
        assert_eq!(matching(&f), vec![0, 3, 6]);
        // A "*" name under ANY means the patterns named "*", not every pattern.
        let star = pattern_filter(ResourceType::Topic, Some("*"), PatternType::Any);
        assert_eq!(matching(&star), vec![1, 7]);
    }

    #[test]
    fn literal_and_prefixed_filters_need_that_type_and_name() {
        let lit = pattern_filter(ResourceType::Topic, Some("foo"), PatternType::Literal);
        assert_eq!(matching(&lit), vec![0]);
        let pre = pattern_filter(ResourceType::Topic, Some("foo"), PatternType::Prefixed);
        assert_eq!(matching(&pre), vec![3]);
        let all_prefixed = pattern_filter(ResourceType::Any, None, PatternType::Prefixed);
        assert_eq!(matching(&all_prefixed), vec![2, 3, 4, 7]);
    }

    #[test]
    fn match_filter_finds_what_applies_to_the_resource() {
        let f = pattern_filter(ResourceType::Topic, Some("foo"), PatternType::Match);
        // literal foo, literal *, prefixes "fo" and "foo"; not "foobar", "bar", the group,
        // nor the prefixed "*".
        assert_eq!(matching(&f), vec![0, 1, 2, 3]);
        let any_type = pattern_filter(ResourceType::Any, Some("foobar"), PatternType::Match);
        assert_eq!(matching(&any_type), vec![1, 2, 3, 4]);
        let no_name = pattern_filter(ResourceType::Topic, None, PatternType::Match);
        assert_eq!(matching(&no_name), vec![0, 1, 2, 3, 4, 5, 7]);
    }

    #[test]
    fn entry_filter_fields() {
        let binding = AclBinding::new(
            ResourcePattern::literal(ResourceType::Topic, "t"),
            AccessControlEntry::new(
                "User:alice",
                "10.0.0.1",
                AclOperation::Write,
                PermissionType::Deny,
            ),
        );
        let any = AclBindingFilter::any();
        assert!(any.matches(&binding));
        let set = |f: fn(&mut AclBindingFilter)| {
            let mut filter = AclBindingFilter::any();
            f(&mut filter);
            filter.matches(&binding)
        };
        assert!(set(|f| f.principal = Some("User:alice".into())));
        assert!(!set(|f| f.principal = Some("User:*".into())));
        assert!(set(|f| f.host = Some("10.0.0.1".into())));
        assert!(!set(|f| f.host = Some("*".into())));
        assert!(set(|f| f.operation = AclOperation::Write));
        // No implication in filters: ALL and DESCRIBE are just other values.
        assert!(!set(|f| f.operation = AclOperation::All));
        assert!(!set(|f| f.operation = AclOperation::Describe));
        assert!(set(|f| f.permission = PermissionType::Deny));
        assert!(!set(|f| f.permission = PermissionType::Allow));
        assert!(AclBindingFilter::exact(&binding).matches(&binding));
        let mut other = binding.clone();
        other.entry.host = "*".into();
        assert!(!AclBindingFilter::exact(&binding).matches(&other));
    }

    #[test]
    fn delete_filter_validation() {
        assert!(AclBindingFilter::any().validate().is_ok());
        let mut f = AclBindingFilter::any();
        f.pattern_type = PatternType::Unknown;
        assert!(f.is_unknown());
        assert_eq!(
            f.validate().unwrap_err().to_string(),
            "Unknown patternFilter."
        );
        let mut f = AclBindingFilter::any();
        f.resource_type = ResourceType::Unknown;
        assert_eq!(f.validate(), Err(AclError::UnknownPatternFilter));
        let mut f = AclBindingFilter::any();
        f.permission = PermissionType::Unknown;
        assert_eq!(
            f.validate().unwrap_err().to_string(),
            "Unknown entryFilter."
        );
        let mut f = AclBindingFilter::any();
        f.operation = AclOperation::Unknown;
        assert_eq!(f.validate(), Err(AclError::UnknownEntryFilter));
    }
}
