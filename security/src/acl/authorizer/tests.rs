//! One test per decision rule of `StandardAuthorizerData` and `authorizeByResourceType`.

use super::*;
use crate::acl::types::{AccessControlEntry, ResourcePattern};
use AclOperation as Op;
use PermissionType::{Allow, Deny};
use ResourceType::{Group, Topic};

const ALICE: &str = "User:alice";
const BOB: &str = "User:bob";
const IP: &str = "10.0.0.1";

fn acl(
    rt: ResourceType,
    name: &str,
    pt: PatternType,
    principal: &str,
    host: &str,
    op: Op,
    perm: PermissionType,
) -> AclBinding {
    AclBinding::new(
        ResourcePattern::new(rt, name, pt),
        AccessControlEntry::new(principal, host, op, perm),
    )
}

fn lit(name: &str, principal: &str, op: Op, perm: PermissionType) -> AclBinding {
    acl(Topic, name, PatternType::Literal, principal, "*", op, perm)
}

fn pre(name: &str, principal: &str, op: Op, perm: PermissionType) -> AclBinding {
    acl(Topic, name, PatternType::Prefixed, principal, "*", op, perm)
}

fn authz(bindings: Vec<AclBinding>) -> Authorizer {
    Authorizer::new(bindings, AuthorizerSettings::default())
}

fn allow_everyone(bindings: Vec<AclBinding>) -> Authorizer {
    let settings = AuthorizerSettings {
        allow_everyone_if_no_acl_found: true,
        ..Default::default()
    };
    Authorizer::new(bindings, settings)
}

fn can(a: &Authorizer, principal: &str, op: Op, topic: &str) -> bool {
    a.authorize(principal, IP, op, Topic, topic)
}

#[test]
fn super_users_are_allowed_whatever_the_acls() {
    let settings = AuthorizerSettings {
        super_users: vec!["User:admin".into()],
        ..Default::default()
    };
    let a = Authorizer::new(vec![lit("t", "User:*", Op::All, Deny)], settings);
    assert!(can(&a, "User:admin", Op::Write, "t"));
    assert!(can(&a, "User:admin", Op::Read, "no-acls-here"));
    assert!(a.authorize(
        "User:admin",
        IP,
        Op::ClusterAction,
        ResourceType::Cluster,
        "kafka-cluster"
    ));
    // The principal text must match exactly.
    assert!(!can(&a, "User:Admin", Op::Write, "no-acls-here"));
    assert!(!can(&a, ALICE, Op::Write, "t"));
}

#[test]
fn literal_acls_cover_their_name_only() {
    let a = authz(vec![lit("orders", ALICE, Op::Read, Allow)]);
    assert!(can(&a, ALICE, Op::Read, "orders"));
    assert!(!can(&a, ALICE, Op::Read, "orders2"));
    assert!(!can(&a, ALICE, Op::Read, "order"));
    assert!(!a.authorize(ALICE, IP, Op::Read, Group, "orders"));
}

#[test]
fn literal_wildcard_covers_every_name_of_its_type() {
    let a = authz(vec![lit("*", ALICE, Op::Read, Allow)]);
    assert!(can(&a, ALICE, Op::Read, "orders"));
    assert!(can(&a, ALICE, Op::Read, "*"));
    assert!(!a.authorize(ALICE, IP, Op::Read, Group, "orders"));
    // A prefixed "*" is just the prefix "*".
    let p = authz(vec![pre("*", ALICE, Op::Read, Allow)]);
    assert!(!can(&p, ALICE, Op::Read, "orders"));
    assert!(can(&p, ALICE, Op::Read, "*orders"));
}

#[test]
fn prefixed_acls_cover_names_starting_with_them() {
    let a = authz(vec![pre("ord", ALICE, Op::Read, Allow)]);
    assert!(can(&a, ALICE, Op::Read, "ord"));
    assert!(can(&a, ALICE, Op::Read, "orders"));
    assert!(!can(&a, ALICE, Op::Read, "or"));
    assert!(!can(&a, ALICE, Op::Read, "xorders"));
}

#[test]
fn prefix_search_finds_every_prefix_and_nothing_else() {
    let names = [
        "a", "ab", "abc", "abd", "abcde", "b", "aa", "abca", "", "é", "éa",
    ];
    let bindings: Vec<_> = names
        .iter()
        .map(|n| pre(n, ALICE, Op::Read, Allow))
        .collect();
    let a = authz(bindings);
    let index = &a.by_type[slot(Topic)];
    for query in [
        "abcd", "abcdef", "abcde", "ab", "b", "c", "", "aab", "abca", "éab", "ébc",
    ] {
        let mut seen = Vec::new();
        let _ = for_each_prefix_of(&index.prefixed, query, &mut |ids: &[u32]| {
            seen.extend(ids.iter().map(|&id| names[id as usize]));
            ControlFlow::Continue(())
        });
        let mut want: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| query.starts_with(n))
            .collect();
        want.sort_by_key(|n| std::cmp::Reverse(n.len()));
        assert_eq!(seen, want, "query {query:?}");
    }
}

#[test]
fn principal_must_be_the_callers_or_the_wildcard() {
    let a = authz(vec![
        lit("t", ALICE, Op::Read, Allow),
        lit("u", "User:*", Op::Read, Allow),
    ]);
    assert!(can(&a, ALICE, Op::Read, "t"));
    assert!(!can(&a, BOB, Op::Read, "t"));
    assert!(can(&a, BOB, Op::Read, "u"));
    // The wildcard is User:* only; other types are not matched by it.
    assert!(can(&a, "Group:ops", Op::Read, "u"));
    let group_star = authz(vec![lit("t", "Group:*", Op::Read, Allow)]);
    assert!(!can(&group_star, "Group:ops", Op::Read, "t"));
}

#[test]
fn host_must_be_star_the_address_or_a_block_holding_it() {
    let a = authz(vec![
        acl(
            Topic,
            "exact",
            PatternType::Literal,
            ALICE,
            IP,
            Op::Read,
            Allow,
        ),
        acl(
            Topic,
            "any",
            PatternType::Literal,
            ALICE,
            "*",
            Op::Read,
            Allow,
        ),
        acl(
            Topic,
            "block",
            PatternType::Literal,
            ALICE,
            "10.0.0.0/30",
            Op::Read,
            Allow,
        ),
        acl(
            Topic,
            "v6",
            PatternType::Literal,
            ALICE,
            "2001:db8::/64",
            Op::Read,
            Allow,
        ),
    ]);
    let from = |host: &str, topic: &str| a.authorize(ALICE, host, Op::Read, Topic, topic);
    assert!(from(IP, "exact") && !from("10.0.0.2", "exact"));
    assert!(from("192.168.1.1", "any"));
    assert!(from("10.0.0.3", "block") && !from("10.0.0.4", "block"));
    assert!(from("2001:db8:0:0:1:2:3:4", "v6") && !from("2001:db8:1:0:0:0:0:1", "v6"));
}

#[test]
fn deny_wins_over_allow() {
    let a = authz(vec![
        lit("t", ALICE, Op::Write, Allow),
        pre("t", "User:*", Op::Write, Deny),
        lit("u", ALICE, Op::All, Allow),
        lit("*", ALICE, Op::Write, Deny),
    ]);
    assert!(!can(&a, ALICE, Op::Write, "t"));
    assert!(!can(&a, ALICE, Op::Write, "u"));
    assert!(can(&a, ALICE, Op::Read, "u"));
    // A DENY for someone else or from another host does not apply.
    let b = authz(vec![
        lit("t", ALICE, Op::Write, Allow),
        lit("t", BOB, Op::Write, Deny),
        acl(
            Topic,
            "t",
            PatternType::Literal,
            ALICE,
            "10.9.9.9",
            Op::Write,
            Deny,
        ),
    ]);
    assert!(can(&b, ALICE, Op::Write, "t"));
}

#[test]
fn all_allows_and_denies_every_operation() {
    let allow_all = authz(vec![lit("t", ALICE, Op::All, Allow)]);
    for &op in Op::VALUES
        .iter()
        .filter(|op| !matches!(op, Op::Unknown | Op::Any))
    {
        assert!(can(&allow_all, ALICE, op, "t"), "{op}");
    }
    let deny_all = authz(vec![
        lit("t", ALICE, Op::All, Deny),
        lit("t", ALICE, Op::Read, Allow),
    ]);
    for &op in Op::VALUES
        .iter()
        .filter(|op| !matches!(op, Op::Unknown | Op::Any))
    {
        assert!(!can(&deny_all, ALICE, op, "t"), "{op}");
    }
}

#[test]
fn allows_imply_describe_and_describe_configs() {
    for granted in [Op::Read, Op::Write, Op::Delete, Op::Alter, Op::Describe] {
        let a = authz(vec![lit("t", ALICE, granted, Allow)]);
        assert!(can(&a, ALICE, Op::Describe, "t"), "{granted}");
    }
    for granted in [
        Op::Create,
        Op::AlterConfigs,
        Op::DescribeConfigs,
        Op::ClusterAction,
    ] {
        let a = authz(vec![lit("t", ALICE, granted, Allow)]);
        assert!(!can(&a, ALICE, Op::Describe, "t"), "{granted}");
    }
    let alter_configs = authz(vec![lit("t", ALICE, Op::AlterConfigs, Allow)]);
    assert!(can(&alter_configs, ALICE, Op::DescribeConfigs, "t"));
    let alter = authz(vec![lit("t", ALICE, Op::Alter, Allow)]);
    assert!(!can(&alter, ALICE, Op::DescribeConfigs, "t"));
    // Implication goes one way only.
    let describe = authz(vec![lit("t", ALICE, Op::Describe, Allow)]);
    assert!(!can(&describe, ALICE, Op::Read, "t"));
    let describe_configs = authz(vec![lit("t", ALICE, Op::DescribeConfigs, Allow)]);
    assert!(!can(&describe_configs, ALICE, Op::AlterConfigs, "t"));
}

#[test]
fn denies_imply_nothing() {
    let deny_read = authz(vec![
        lit("t", ALICE, Op::Read, Deny),
        lit("t", ALICE, Op::Write, Allow),
    ]);
    assert!(can(&deny_read, ALICE, Op::Describe, "t"));
    assert!(!can(&deny_read, ALICE, Op::Read, "t"));
    let deny_describe = authz(vec![
        lit("t", ALICE, Op::Describe, Deny),
        lit("t", ALICE, Op::Read, Allow),
    ]);
    assert!(can(&deny_describe, ALICE, Op::Read, "t"));
    assert!(!can(&deny_describe, ALICE, Op::Describe, "t"));
    let deny_alter_configs = authz(vec![
        lit("t", ALICE, Op::AlterConfigs, Deny),
        lit("t", ALICE, Op::DescribeConfigs, Allow),
    ]);
    assert!(can(&deny_alter_configs, ALICE, Op::DescribeConfigs, "t"));
}

#[test]
fn default_applies_only_to_resources_no_pattern_covers() {
    let bindings = vec![
        lit("t", BOB, Op::Write, Allow),
        pre("p-", BOB, Op::Read, Allow),
    ];
    let open = allow_everyone(bindings.clone());
    let closed = authz(bindings);
    // No pattern covers "free": the setting decides.
    assert!(can(&open, ALICE, Op::Read, "free"));
    assert!(!can(&closed, ALICE, Op::Read, "free"));
    // Covered for another principal, operation or host: denied even when open.
    assert!(!can(&open, ALICE, Op::Write, "t"));
    assert!(!can(&open, BOB, Op::Read, "t"));
    assert!(!can(&open, ALICE, Op::Read, "p-1"));
    let other_host = allow_everyone(vec![acl(
        Topic,
        "h",
        PatternType::Literal,
        ALICE,
        "10.9.9.9",
        Op::Read,
        Allow,
    )]);
    assert!(!can(&other_host, ALICE, Op::Read, "h"));
    // A pattern on another resource type does not cover this one.
    assert!(open.authorize(ALICE, IP, Op::Read, Group, "t"));
    assert!(allow_everyone(Vec::new()).authorize(ALICE, IP, Op::Alter, ResourceType::Cluster, "x"));
}

#[test]
fn bindings_with_filter_only_enums_decide_nothing_but_are_kept() {
    let odd = vec![
        acl(Topic, "t", PatternType::Match, ALICE, "*", Op::Read, Allow),
        acl(Topic, "t", PatternType::Literal, ALICE, "*", Op::Any, Deny),
        acl(
            Topic,
            "t",
            PatternType::Literal,
            ALICE,
            "*",
            Op::Read,
            PermissionType::Unknown,
        ),
        acl(
            ResourceType::Any,
            "t",
            PatternType::Literal,
            ALICE,
            "*",
            Op::Read,
            Deny,
        ),
    ];
    let a = allow_everyone(odd.clone());
    assert!(can(&a, ALICE, Op::Read, "t"));
    assert_eq!(a.bindings().cloned().collect::<Vec<_>>(), odd);
    assert_eq!(a.len(), 4);
}

#[test]
fn describe_filter_over_the_snapshot() {
    let bindings = vec![
        lit("t", ALICE, Op::Read, Allow),
        pre("t", BOB, Op::Write, Deny),
        lit("u", BOB, Op::Read, Allow),
    ];
    let a = authz(bindings.clone());
    let filter = AclBindingFilter {
        resource_type: Topic,
        name: Some("tx".into()),
        pattern_type: PatternType::Match,
        ..AclBindingFilter::any()
    };
    assert_eq!(a.acls(&filter).collect::<Vec<_>>(), vec![&bindings[1]]);
    assert_eq!(a.acls(&AclBindingFilter::any()).count(), 3);
}

#[test]
fn super_users_parse_like_kafka() {
    assert_eq!(
        parse_super_users(" User:admin ;User:broker;;User:admin; "),
        Ok(vec!["User:admin".to_string(), "User:broker".to_string()])
    );
    assert_eq!(parse_super_users(""), Ok(Vec::new()));
    assert_eq!(parse_super_users("User:"), Ok(vec!["User:".to_string()]));
    assert_eq!(
        parse_super_users("User:admin;broker")
            .unwrap_err()
            .to_string(),
        "expected a string in format principalType:principalName but got broker"
    );
    let settings = AuthorizerSettings::from_config(Some("User:a"), Some(" TRUE ")).unwrap();
    assert_eq!(settings.super_users, vec!["User:a".to_string()]);
    assert!(settings.allow_everyone_if_no_acl_found);
    let settings = AuthorizerSettings::from_config(None, Some("yes")).unwrap();
    assert!(!settings.allow_everyone_if_no_acl_found && settings.super_users.is_empty());
    assert!(AuthorizerSettings::from_config(Some("nocolon"), None).is_err());
}

fn any_write(a: &Authorizer, principal: &str) -> bool {
    a.authorize_any(principal, IP, Op::Write, Topic)
}

#[test]
fn authorize_any_wildcards() {
    assert!(any_write(
        &authz(vec![lit("*", ALICE, Op::Write, Allow)]),
        ALICE
    ));
    let both = authz(vec![
        lit("*", ALICE, Op::Write, Allow),
        lit("*", "User:*", Op::All, Deny),
    ]);
    assert!(!any_write(&both, ALICE));
    // A wildcard DENY denies even when a literal ALLOW exists elsewhere.
    let deny_star = authz(vec![
        lit("t", ALICE, Op::Write, Allow),
        lit("*", ALICE, Op::Write, Deny),
    ]);
    assert!(!any_write(&deny_star, ALICE));
}

#[test]
fn authorize_any_literal_and_prefixed_dominance() {
    assert!(any_write(
        &authz(vec![lit("t", ALICE, Op::Write, Allow)]),
        ALICE
    ));
    let same_literal = authz(vec![
        lit("t", ALICE, Op::Write, Allow),
        lit("t", ALICE, Op::All, Deny),
    ]);
    assert!(!any_write(&same_literal, ALICE));
    let covered = authz(vec![
        lit("tx", ALICE, Op::Write, Allow),
        pre("t", ALICE, Op::Write, Deny),
    ]);
    assert!(!any_write(&covered, ALICE));
    let narrower_deny = authz(vec![
        pre("t", ALICE, Op::Write, Allow),
        pre("tx", ALICE, Op::Write, Deny),
    ]);
    assert!(any_write(&narrower_deny, ALICE));
    let same_prefix = authz(vec![
        pre("t", ALICE, Op::Write, Allow),
        pre("t", ALICE, Op::Write, Deny),
    ]);
    assert!(!any_write(&same_prefix, ALICE));
    // A literal DENY does not dominate a prefixed ALLOW of the same name.
    let literal_deny = authz(vec![
        pre("t", ALICE, Op::Write, Allow),
        lit("t", ALICE, Op::Write, Deny),
    ]);
    assert!(any_write(&literal_deny, ALICE));
    // One undominated ALLOW is enough.
    let mixed = authz(vec![
        lit("a", ALICE, Op::Write, Allow),
        pre("a", ALICE, Op::Write, Deny),
        lit("b", "User:*", Op::All, Allow),
    ]);
    assert!(any_write(&mixed, ALICE));
}

#[test]
fn authorize_any_filters_principal_host_and_operation_without_implication() {
    let a = authz(vec![
        lit("t", BOB, Op::Write, Allow),
        acl(
            Topic,
            "h",
            PatternType::Literal,
            ALICE,
            "10.9.9.9",
            Op::Write,
            Allow,
        ),
        lit("r", ALICE, Op::Read, Allow),
    ]);
    assert!(!any_write(&a, ALICE));
    assert!(any_write(&a, BOB));
    assert!(a.authorize_any(ALICE, "10.9.9.9", Op::Write, Topic));
    // READ on a named topic gives no DESCRIBE "on some topic" here (no implication) ...
    assert!(!a.authorize_any(ALICE, IP, Op::Describe, Topic));
    // ... but READ on "*" does, through the `hardcode` resource check.
    let star_read = authz(vec![lit("*", ALICE, Op::Read, Allow)]);
    assert!(star_read.authorize_any(ALICE, IP, Op::Describe, Topic));
}

#[test]
fn authorize_any_super_users_default_and_refused_arguments() {
    let settings = AuthorizerSettings {
        super_users: vec!["User:admin".into()],
        ..Default::default()
    };
    let a = Authorizer::new(vec![lit("*", "User:*", Op::All, Deny)], settings);
    assert!(a.authorize_any("User:admin", IP, Op::Write, Topic));
    assert!(!a.authorize_any(ALICE, IP, Op::Write, Topic));
    // Allow-everyone counts when no ACL covers the resource "hardcode".
    let open = allow_everyone(vec![lit("t", BOB, Op::Write, Allow)]);
    assert!(open.authorize_any(ALICE, IP, Op::IdempotentWrite, ResourceType::Cluster));
    assert!(open.authorize_any(ALICE, IP, Op::Write, Topic));
    let covered = allow_everyone(vec![pre("h", BOB, Op::Write, Allow)]);
    assert!(!covered.authorize_any(ALICE, IP, Op::Write, Topic));
    // Kafka throws for these; here they are refused.
    assert!(!open.authorize_any(ALICE, IP, Op::Any, Topic));
    assert!(!open.authorize_any(ALICE, IP, Op::Write, ResourceType::Any));
    assert!(!open.authorize_any("User:admin", IP, Op::Unknown, Topic));
}
