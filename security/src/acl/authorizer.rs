//! Kafka's `StandardAuthorizer` decisions over an immutable index of ACL bindings.
//!
//! Per resource type the index keeps a hash map of literal names, the list of literal `*`
//! bindings, a table of prefixes sorted by bytes (searched as Kafka's `checkSection` walks its
//! reverse-sorted set: take the greatest prefix not above the name, and either report it or
//! jump back to where it diverges from the name), and the bindings by principal for
//! `authorize_any`. Each pattern's bindings are sorted by principal, so a decision touches only
//! the caller's and `User:*`'s, however many other principals have ACLs on the same pattern.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;

use super::host::{HostPattern, HostQuery};
use super::types::{
    AclBinding, AclOperation, PatternType, PermissionType, ResourceType, WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
};
use super::{AclBindingFilter, AclError};

/// Kafka's key for the semicolon-separated super users.
pub const SUPER_USERS_CONFIG: &str = "super.users";
/// Kafka's key for the decision on resources without ACLs.
pub const ALLOW_EVERYONE_IF_NO_ACL_IS_FOUND_CONFIG: &str = "allow.everyone.if.no.acl.found";

/// The authorizer's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerSettings {
    /// Principals (`User:admin`) allowed everything, whatever the ACLs say.
    pub super_users: Vec<String>,
    /// The decision for a resource no ACL pattern covers (default: deny).
    pub allow_everyone_if_no_acl_found: bool,
}

/// An immutable snapshot of the ACLs with the settings, answering authorization questions.
#[derive(Debug)]
pub struct Authorizer {
    bindings: Vec<AclBinding>,
    /// Each binding's host, parsed once; same positions as `bindings`.
    hosts: Vec<HostPattern>,
    /// By resource type code.
    by_type: [TypeIndex; RESOURCE_TYPES],
    super_users: HashSet<String>,
    settings: AuthorizerSettings,
}

/// Splits a `super.users` value (`User:admin;User:broker`) as Kafka does: entries are trimmed,
/// empty ones skipped, and each must be `Type:name`. Duplicates are dropped.
pub fn parse_super_users(value: &str) -> Result<Vec<String>, AclError> {
    let mut users: Vec<String> = Vec::new();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        if !entry.contains(':') {
            return Err(AclError::InvalidSuperUser {
                value: entry.to_string(),
            });
        }
        if !users.iter().any(|u| u == entry) {
            users.push(entry.to_string());
        }
    }
    Ok(users)
}

impl AuthorizerSettings {
    /// The settings from the two config values as Kafka reads them; `None` is an absent key.
    /// Only a (trimmed, any case) `true` turns allow-everyone on, as Java's `parseBoolean`.
    pub fn from_config(
        super_users: Option<&str>,
        allow_everyone_if_no_acl_found: Option<&str>,
    ) -> Result<Self, AclError> {
        Ok(AuthorizerSettings {
            super_users: super_users
                .map(parse_super_users)
                .transpose()?
                .unwrap_or_default(),
            allow_everyone_if_no_acl_found: allow_everyone_if_no_acl_found
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        })
    }
}

impl Authorizer {
    /// Indexes the bindings. Bindings with filter-only or UNKNOWN enums stay in `bindings()`
    /// but decide nothing (the controller never stores them).
    pub fn new(
        bindings: impl IntoIterator<Item = AclBinding>,
        settings: AuthorizerSettings,
    ) -> Self {
        let bindings: Vec<AclBinding> = bindings.into_iter().collect();
        assert!(
            u32::try_from(bindings.len()).is_ok(),
            "more ACL bindings than u32 ids"
        );
        let hosts = bindings
            .iter()
            .map(|b| HostPattern::compile(&b.entry.host))
            .collect();
        let by_type = build_index(&bindings);
        let super_users = settings.super_users.iter().cloned().collect();
        Authorizer {
            bindings,
            hosts,
            by_type,
            super_users,
            settings,
        }
    }

    /// Whether `principal` (`Type:name`) connecting from `host` (the text
    /// [`super::host_address`] prints) may do `op` on the resource `name` of `resource_type`.
    ///
    /// `StandardAuthorizerData.findAclRule` (Kafka 4.4): super users are allowed. Otherwise the
    /// ACLs whose pattern covers the resource are considered: literal `name`, literal `*`, and
    /// prefixes of `name`. One of them applies when its principal is `principal` or `User:*`,
    /// its host is `*`, `host`, or a CIDR block holding `host`, and its operation is ALL or
    /// `op`; an ALLOW also applies to DESCRIBE when its operation is READ, WRITE, DELETE or
    /// ALTER, and to DESCRIBE_CONFIGS when it is ALTER_CONFIGS (a DENY implies nothing: a
    /// DENY of READ leaves DESCRIBE alone, but a DENY of ALL denies everything). Any applying
    /// DENY denies; else any applying ALLOW allows.
    ///
    /// When nothing applies, `allow.everyone.if.no.acl.found` decides only if no ACL pattern
    /// covers the resource at all: `MatchingRuleBuilder.hasResourceAcls` is set by every ACL
    /// the name scan reaches, before its principal, host, operation and permission are looked
    /// at. So one ACL on a topic for anybody, for any operation, makes the topic deny-by-default
    /// for everyone else; the same rule as the ZooKeeper-era `AclAuthorizer`.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(principal) {
            return true;
        }
        let index = &self.by_type[slot(resource_type)];
        let query = Query {
            principal,
            host: HostQuery::new(host),
            op,
        };
        let mut found = Found::default();
        let mut visit = |ids: &[u32]| self.visit(ids, &query, &mut found);
        let denied = index
            .literal
            .get(name)
            .is_some_and(|ids| visit(ids).is_break())
            || visit(&index.wildcard).is_break()
            || for_each_prefix_of(&index.prefixed, name, &mut visit).is_break();
        if denied {
            false
        } else if found.allowed {
            true
        } else if found.resource_acls {
            false
        } else {
            self.settings.allow_everyone_if_no_acl_found
        }
    }

    /// Kafka's default `Authorizer.authorizeByResourceType`: whether `principal` may do `op` on
    /// at least one resource of `resource_type`. True when `authorize` allows a resource
    /// named `hardcode` (this is how super users and allow-everyone get through, as in Kafka);
    /// otherwise from the applying ACLs with operation `op` or ALL (no implication here): a
    /// literal `*` DENY denies, a literal `*` ALLOW allows, and else some literal ALLOW with no
    /// literal DENY of the same name, or some prefixed ALLOW, must have no prefixed DENY on any
    /// non-empty prefix of its name. UNKNOWN or ANY `op` or `resource_type` (Kafka throws)
    /// are refused.
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if matches!(resource_type, ResourceType::Unknown | ResourceType::Any)
            || matches!(op, AclOperation::Unknown | AclOperation::Any)
        {
            return false;
        }
        if self.authorize(principal, host, op, resource_type, PROBE_RESOURCE) {
            return true;
        }
        let index = &self.by_type[slot(resource_type)];
        let own = index.by_principal.get(principal);
        let everyone = (principal != WILDCARD_PRINCIPAL)
            .then(|| index.by_principal.get(WILDCARD_PRINCIPAL))
            .flatten();
        let query = HostQuery::new(host);
        let mut grants = Grants::default();
        for &id in own.into_iter().chain(everyone).flatten() {
            let id = id as usize;
            let binding = &self.bindings[id];
            let entry = &binding.entry;
            if !self.hosts[id].matches(&entry.host, &query)
                || (entry.operation != op && entry.operation != AclOperation::All)
            {
                continue;
            }
            if grants.add(binding).is_break() {
                return false;
            }
        }
        grants.any_allowed()
    }

    /// Every binding given to [`Authorizer::new`], in that order.
    pub fn bindings(&self) -> impl Iterator<Item = &AclBinding> {
        self.bindings.iter()
    }

    /// The bindings a DescribeAcls filter selects (a scan: describing is not the hot path).
    pub fn acls<'a>(
        &'a self,
        filter: &'a AclBindingFilter,
    ) -> impl Iterator<Item = &'a AclBinding> + 'a {
        self.bindings.iter().filter(move |b| filter.matches(b))
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    pub fn settings(&self) -> &AuthorizerSettings {
        &self.settings
    }

    /// Applies the ACLs `ids` (sorted by principal), all of whose patterns cover the resource:
    /// only those of the query's principal and of `User:*` can apply. Breaks on a DENY.
    fn visit(&self, ids: &[u32], query: &Query<'_>, found: &mut Found) -> ControlFlow<()> {
        found.resource_acls |= !ids.is_empty();
        let own = self.with_principal(ids, query.principal);
        let everyone = match query.principal {
            WILDCARD_PRINCIPAL => &[][..],
            _ => self.with_principal(ids, WILDCARD_PRINCIPAL),
        };
        for &id in own.iter().chain(everyone) {
            match self.applies(id as usize, query) {
                Some(PermissionType::Deny) => return ControlFlow::Break(()),
                Some(_) => found.allowed = true,
                None => {}
            }
        }
        ControlFlow::Continue(())
    }

    /// The run of `ids` (sorted by principal) whose principal is `principal`.
    fn with_principal<'a>(&self, ids: &'a [u32], principal: &str) -> &'a [u32] {
        let principal_of = |id: &u32| self.bindings[*id as usize].entry.principal.as_str();
        let start = ids.partition_point(|id| principal_of(id) < principal);
        let len = ids[start..].partition_point(|id| principal_of(id) == principal);
        &ids[start..start + len]
    }

    /// `StandardAuthorizerData.findResult` for an ACL of the query's principal or `User:*`:
    /// its permission if it applies to the host and operation of the query.
    fn applies(&self, id: usize, query: &Query<'_>) -> Option<PermissionType> {
        let entry = &self.bindings[id].entry;
        if !self.hosts[id].matches(&entry.host, &query.host) {
            return None;
        }
        let allow = entry.permission == PermissionType::Allow;
        let op_applies = entry.operation == AclOperation::All
            || entry.operation == query.op
            || (allow && implied_by(query.op, entry.operation));
        op_applies.then_some(entry.permission)
    }
}

/// The resource name Kafka's `authorizeByResourceType` authorizes first, which lets super users
/// through whatever DENY ACLs exist; ACLs that happen to cover this name count like any others.
const PROBE_RESOURCE: &str = "hardcode";

/// Resource type codes are 0..=7.
const RESOURCE_TYPES: usize = 8;

#[derive(Debug, Default)]
struct TypeIndex {
    /// Literal names other than `*`.
    literal: HashMap<Box<str>, Vec<u32>>,
    /// Literal `*`.
    wildcard: Vec<u32>,
    /// Prefixes, sorted by bytes, each once.
    prefixed: Vec<(Box<str>, Vec<u32>)>,
    /// Every binding of the type by its principal text.
    by_principal: HashMap<Box<str>, Vec<u32>>,
}

struct Query<'a> {
    principal: &'a str,
    host: HostQuery<'a>,
    op: AclOperation,
}

#[derive(Default)]
struct Found {
    /// Some ACL's pattern covers the resource (Kafka's `hasResourceAcls`).
    resource_acls: bool,
    allowed: bool,
}

/// `authorizeByResourceType`'s view of the applying ACLs of one resource type.
#[derive(Default)]
struct Grants<'a> {
    wildcard_allow: bool,
    allow_literal: Vec<&'a str>,
    allow_prefixed: Vec<&'a str>,
    deny_literal: HashSet<&'a str>,
    deny_prefixed: HashSet<&'a str>,
}

impl<'a> Grants<'a> {
    /// Records an applying ACL; breaks on a DENY of the literal `*`, which denies outright.
    fn add(&mut self, binding: &'a AclBinding) -> ControlFlow<()> {
        let name = binding.pattern.name.as_str();
        let literal = binding.pattern.pattern_type == PatternType::Literal;
        match binding.entry.permission {
            PermissionType::Deny if literal && name == WILDCARD_RESOURCE => {
                return ControlFlow::Break(());
            }
            PermissionType::Deny if literal => {
                self.deny_literal.insert(name);
            }
            PermissionType::Deny => {
                self.deny_prefixed.insert(name);
            }
            _ if literal && name == WILDCARD_RESOURCE => self.wildcard_allow = true,
            _ if literal => self.allow_literal.push(name),
            _ => self.allow_prefixed.push(name),
        }
        ControlFlow::Continue(())
    }

    fn any_allowed(&self) -> bool {
        let undominated = |name: &&str| {
            !name
                .char_indices()
                .any(|(at, c)| self.deny_prefixed.contains(&name[..at + c.len_utf8()]))
        };
        self.wildcard_allow
            || self
                .allow_literal
                .iter()
                .filter(|name| !self.deny_literal.contains(*name))
                .any(undominated)
            || self.allow_prefixed.iter().any(undominated)
    }
}

/// The per-type index of the bindings with concrete enums. Every id list is sorted by
/// principal (stable, so equal principals keep their order) for [`Authorizer::with_principal`].
fn build_index(bindings: &[AclBinding]) -> [TypeIndex; RESOURCE_TYPES] {
    let mut by_type: [TypeIndex; RESOURCE_TYPES] = Default::default();
    let mut prefixes: [BTreeMap<&str, Vec<u32>>; RESOURCE_TYPES] = Default::default();
    for (id, binding) in (0u32..).zip(bindings) {
        if !binding.is_concrete() {
            continue;
        }
        let slot = slot(binding.pattern.resource_type);
        let index = &mut by_type[slot];
        let name = binding.pattern.name.as_str();
        match binding.pattern.pattern_type {
            PatternType::Literal if name == WILDCARD_RESOURCE => index.wildcard.push(id),
            PatternType::Literal => index.literal.entry(name.into()).or_default().push(id),
            _ => prefixes[slot].entry(name).or_default().push(id),
        }
        let principal = binding.entry.principal.as_str();
        index
            .by_principal
            .entry(principal.into())
            .or_default()
            .push(id);
    }
    for (index, sorted) in by_type.iter_mut().zip(prefixes) {
        index.prefixed = sorted
            .into_iter()
            .map(|(name, ids)| (name.into(), ids))
            .collect();
    }
    let principal_of = |id: &u32| bindings[*id as usize].entry.principal.as_str();
    for index in &mut by_type {
        let prefixed = index.prefixed.iter_mut().map(|(_, ids)| ids);
        for ids in index
            .literal
            .values_mut()
            .chain([&mut index.wildcard])
            .chain(prefixed)
        {
            ids.sort_by_key(principal_of);
        }
    }
    by_type
}

fn slot(resource_type: ResourceType) -> usize {
    resource_type.code() as usize
}

/// The operations an ALLOW of `granted` implies besides itself.
fn implied_by(requested: AclOperation, granted: AclOperation) -> bool {
    use AclOperation::*;
    match requested {
        Describe => matches!(granted, Read | Write | Delete | Alter),
        DescribeConfigs => granted == AlterConfigs,
        _ => false,
    }
}

/// Calls `visit` with the ids of every prefix in `prefixes` (sorted by bytes, distinct) that
/// `name` starts with, longest first, until it breaks.
///
/// The greatest entry not above the current query either is a prefix of it (report it; the
/// shorter prefixes are all below it) or diverges from it after `k` bytes, and then no prefix
/// of the query longer than `k` is in the table (it would sit between that entry and the
/// query), so the search goes on with the query cut to `k`. The query shrinks every round.
fn for_each_prefix_of(
    prefixes: &[(Box<str>, Vec<u32>)],
    name: &str,
    visit: &mut impl FnMut(&[u32]) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let mut query = name.as_bytes();
    let mut end = prefixes.len();
    loop {
        let below = prefixes[..end].partition_point(|(p, _)| p.as_bytes() <= query);
        if below == 0 {
            return ControlFlow::Continue(());
        }
        let (prefix, ids) = &prefixes[below - 1];
        let prefix = prefix.as_bytes();
        end = below - 1;
        if query.starts_with(prefix) {
            visit(ids)?;
            match prefix.len() {
                0 => return ControlFlow::Continue(()),
                len => query = &query[..len - 1],
            }
        } else {
            let common = prefix.iter().zip(query).take_while(|(a, b)| a == b).count();
            query = &query[..common];
        }
    }
}

#[cfg(test)]
mod tests;
