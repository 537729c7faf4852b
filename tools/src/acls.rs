//! `acls`: kafka-acls.sh's `--add`, `--list` and `--remove` over CreateAcls (key 30),
//! DescribeAcls (29) and DeleteAcls (31), with the security crate's ACL vocabulary (Kafka's
//! enums, names and the per-resource-type operation rule kafka-acls.sh applies).
//!
//! ```text
//! acls --add    --allow-principal User:alice [--allow-host H] --operation Read --topic T
//! acls --add    --producer --allow-principal User:app --topic T [--transactional-id X]
//!               [--idempotent]
//! acls --add    --consumer --allow-principal User:app --topic T --group G
//! acls --list   [--topic T | --group G | --cluster | --transactional-id X] [--principal P]
//!               [--json]
//! acls --remove --force --topic T [--allow-principal P] [--operation Read]
//! ```
//!
//! Decisions (where this differs from kafka-acls.sh, and why):
//!
//! * `--remove` needs `--force`: kafka-acls.sh asks for confirmation on stdin, and a tool run by
//!   scripts and CI has no one to answer. It prints the ACLs the broker removed.
//! * `--resource-pattern-type` defaults to `literal` for `--add` (as Kafka) but to `any` for
//!   `--list` and `--remove`, so that a prefixed ACL on the same name is shown and removed too;
//!   give `literal` to touch only literal patterns.
//! * Without `--operation`, `--add` grants `All` (as Kafka), while `--list` and `--remove` match
//!   any operation (Kafka's remove would match only `All` ACLs, which is rarely what is meant).
//!   Hosts likewise: `*` for `--add`, any host for `--remove` unless `--allow-host` or
//!   `--deny-host` narrows it.
//! * `--add` does not list the resource's ACLs afterwards: the broker applies the change
//!   through the metadata log, and an immediate DescribeAcls can still show the old set.
//! * Output: kafka-acls.sh's "Current ACLs for resource `ResourcePattern(...)`:" blocks, or one
//!   JSON array with `--json` (the other commands' output switch).
//!
//! Errors: every refused binding or filter is printed with the broker's error name and message
//! (SECURITY_DISABLED without an authorizer, CLUSTER_AUTHORIZATION_FAILED for a principal that
//! may not alter ACLs); the exit status is 1 if any was refused.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use clap::{ArgGroup, Args};
use kafka_protocol::messages::{
    create_acls_request::AclCreation, delete_acls_request::DeleteAclsFilter, CreateAclsRequest,
    DeleteAclsRequest, DescribeAclsRequest,
};
use kafka_protocol::protocol::StrBytes;
use millrace_security::acl::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, PatternType, PermissionType,
    ResourcePattern, ResourceType, CLUSTER_NAME, WILDCARD_HOST,
};

use crate::admin::Output;
use crate::client::Client;
use crate::error::{check, ToolError};
use crate::output::{outln, Json};
use crate::Connection;

const CREATE_ACLS_VERSIONS: RangeInclusive<i16> = 1..=3;
const DESCRIBE_ACLS_VERSIONS: RangeInclusive<i16> = 1..=3;
const DELETE_ACLS_VERSIONS: RangeInclusive<i16> = 1..=3;

/// `acls ...`, flag for flag kafka-acls.sh's where the meaning is the same.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["add", "list", "remove"])))]
pub struct AclsArgs {
    /// Create the ACLs the other flags describe.
    #[arg(long)]
    add: bool,
    /// List ACLs (of the given resources, or all), optionally of one principal.
    #[arg(long)]
    list: bool,
    /// Remove the ACLs the other flags match (needs --force).
    #[arg(long)]
    remove: bool,
    /// Principal (Type:name, e.g. User:alice or User:*) the ACLs allow; repeatable.
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    allow_principal: Vec<String>,
    /// Principal the ACLs deny; repeatable.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    deny_principal: Vec<String>,
    /// Host (IP, CIDR or *) of the allow ACLs; default * for --add.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_host: Vec<String>,
    /// Host of the deny ACLs; default * for --add.
    #[arg(long = "deny-host", value_name = "HOST")]
    deny_host: Vec<String>,
    /// Operation: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens, DescribeTokens,
    /// TwoPhaseCommit, All; repeatable. Default All for --add, any for --list/--remove.
    #[arg(long = "operation", value_name = "OPERATION", value_parser = parse_operation)]
    operation: Vec<AclOperation>,
    /// A topic resource; repeatable.
    #[arg(long, value_name = "TOPIC")]
    topic: Vec<String>,
    /// A consumer group resource; repeatable.
    #[arg(long, value_name = "GROUP")]
    group: Vec<String>,
    /// The cluster resource (kafka-cluster).
    #[arg(long)]
    cluster: bool,
    /// A transactional id resource; repeatable.
    #[arg(long = "transactional-id", value_name = "ID")]
    transactional_id: Vec<String>,
    /// literal or prefixed for --add (default literal); literal, prefixed, match or any for
    /// --list and --remove (default any).
    #[arg(long = "resource-pattern-type", value_name = "TYPE", value_parser = parse_pattern_type)]
    resource_pattern_type: Option<PatternType>,
    /// --list: only the ACLs of this principal; repeatable.
    #[arg(long, value_name = "PRINCIPAL")]
    principal: Vec<String>,
    /// Producer ACLs: Write, Describe, Create on --topic; Write, Describe on
    /// --transactional-id; IdempotentWrite on the cluster with --idempotent.
    #[arg(long)]
    producer: bool,
    /// Consumer ACLs: Read, Describe on --topic and Read on --group.
    #[arg(long)]
    consumer: bool,
    /// With --producer: IdempotentWrite on the cluster.
    #[arg(long)]
    idempotent: bool,
    /// Confirms --remove (there is no prompt).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    out: Output,
    #[command(flatten)]
    conn: Connection,
}

/// What the flags ask the broker to do.
#[derive(Debug, PartialEq)]
pub enum Plan {
    Add(Vec<AclBinding>),
    List(Vec<AclBindingFilter>),
    Remove(Vec<AclBindingFilter>),
}

/// Runs `acls`.
pub fn run(args: AclsArgs) -> Result<(), ToolError> {
    let plan = plan(&args)?;
    let mut client = args.conn.connect()?;
    match plan {
        Plan::Add(bindings) => add(&mut client, &bindings),
        Plan::List(filters) => list(&mut client, &filters, args.out.json),
        Plan::Remove(filters) => remove(&mut client, &filters),
    }
}

/// Checks the flags and turns them into requests, without a broker.
pub fn plan(args: &AclsArgs) -> Result<Plan, ToolError> {
    if args.out.json && !args.list {
        return Err(usage("--json is for --list"));
    }
    if !args.principal.is_empty() && !args.list {
        return Err(usage(
            "--principal is for --list; use --allow-principal or --deny-principal",
        ));
    }
    if (args.producer || args.consumer) && !args.operation.is_empty() {
        return Err(usage(
            "--operation cannot be combined with --producer or --consumer",
        ));
    }
    if args.idempotent && !args.producer {
        return Err(usage("--idempotent is for --producer"));
    }
    if args.allow_principal.is_empty() && !args.allow_host.is_empty() {
        return Err(usage("--allow-host needs --allow-principal"));
    }
    if args.deny_principal.is_empty() && !args.deny_host.is_empty() {
        return Err(usage("--deny-host needs --deny-principal"));
    }
    if args.add {
        plan_add(args).map(Plan::Add)
    } else if args.list {
        plan_list(args).map(Plan::List)
    } else {
        plan_remove(args).map(Plan::Remove)
    }
}

fn plan_add(args: &AclsArgs) -> Result<Vec<AclBinding>, ToolError> {
    let pattern_type = args.resource_pattern_type.unwrap_or(PatternType::Literal);
    if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return Err(usage(
            "--resource-pattern-type must be literal or prefixed with --add",
        ));
    }
    if args.allow_principal.is_empty() && args.deny_principal.is_empty() {
        return Err(usage("--add needs --allow-principal or --deny-principal"));
    }
    let mut bindings = Vec::new();
    for (resource_type, name, operations) in resource_operations(args)? {
        let pattern = ResourcePattern::new(resource_type, name, pattern_type);
        for (principal, host, permission) in principal_hosts(args, true) {
            for &operation in &operations {
                let entry = AccessControlEntry::new(
                    &principal,
                    host.as_deref().unwrap_or(WILDCARD_HOST),
                    operation,
                    permission,
                );
                let binding = AclBinding::new(pattern.clone(), entry);
                binding.validate().map_err(|e| usage(&e.to_string()))?;
                binding
                    .check_supported_operation()
                    .map_err(|e| usage(&e.to_string()))?;
                bindings.push(binding);
            }
        }
    }
    bindings.sort();
    bindings.dedup();
    Ok(bindings)
}

fn plan_list(args: &AclsArgs) -> Result<Vec<AclBindingFilter>, ToolError> {
    for (flag, given) in [
        ("--allow-principal", !args.allow_principal.is_empty()),
        ("--deny-principal", !args.deny_principal.is_empty()),
        ("--operation", !args.operation.is_empty()),
        ("--producer", args.producer),
        ("--consumer", args.consumer),
        ("--force", args.force),
    ] {
        if given {
            return Err(usage(&format!(
                "{flag} is not used with --list (filter with --principal and a resource)"
            )));
        }
    }
    let pattern_type = args.resource_pattern_type.unwrap_or(PatternType::Any);
    let mut resources: Vec<(ResourceType, Option<String>)> = resources(args)
        .into_iter()
        .map(|(t, n)| (t, Some(n)))
        .collect();
    if resources.is_empty() {
        resources.push((ResourceType::Any, None));
    }
    let principals: Vec<Option<String>> = match args.principal.is_empty() {
        true => vec![None],
        false => args.principal.iter().cloned().map(Some).collect(),
    };
    let mut filters = Vec::new();
    for (resource_type, name) in &resources {
        for principal in &principals {
            filters.push(AclBindingFilter {
                resource_type: *resource_type,
                name: name.clone(),
                pattern_type,
                principal: principal.clone(),
                ..AclBindingFilter::any()
            });
        }
    }
    Ok(filters)
}

fn plan_remove(args: &AclsArgs) -> Result<Vec<AclBindingFilter>, ToolError> {
    if !args.force {
        return Err(usage(
            "--remove needs --force (kafka-acls.sh asks for confirmation; this tool does not \
             prompt)",
        ));
    }
    let pattern_type = args.resource_pattern_type.unwrap_or(PatternType::Any);
    let mut filters = Vec::new();
    for (resource_type, name, operations) in resource_operations(args)? {
        let operations = match operations.is_empty() {
            true => vec![AclOperation::Any],
            false => operations,
        };
        let entries = match args.allow_principal.is_empty() && args.deny_principal.is_empty() {
            true => vec![(None, None, PermissionType::Any)],
            false => principal_hosts(args, false)
                .into_iter()
                .map(|(p, h, permission)| (Some(p), h, permission))
                .collect(),
        };
        for (principal, host, permission) in entries {
            for &operation in &operations {
                filters.push(AclBindingFilter {
                    resource_type,
                    name: Some(name.clone()),
                    pattern_type,
                    principal: principal.clone(),
                    host: host.clone(),
                    operation,
                    permission,
                });
            }
        }
    }
    Ok(filters)
}

/// The resources the flags name, with the operations for each: --producer/--consumer's sets,
/// else --operation's (for --add: All when none is given; otherwise empty meaning any).
fn resource_operations(
    args: &AclsArgs,
) -> Result<Vec<(ResourceType, String, Vec<AclOperation>)>, ToolError> {
    use AclOperation::*;
    if args.producer || args.consumer {
        if args.topic.is_empty() {
            return Err(usage("--producer and --consumer need --topic"));
        }
        if args.consumer && args.group.is_empty() {
            return Err(usage("--consumer needs --group"));
        }
    }
    if !(args.producer || args.consumer) {
        let resources = resources(args);
        if resources.is_empty() {
            return Err(usage(
                "name a resource: --topic, --group, --cluster or --transactional-id",
            ));
        }
        let operations = match (args.add, args.operation.is_empty()) {
            (true, true) => vec![All],
            _ => args.operation.clone(),
        };
        return Ok(resources
            .into_iter()
            .map(|(t, n)| (t, n, operations.clone()))
            .collect());
    }
    let mut out = Vec::new();
    for topic in &args.topic {
        let mut operations = Vec::new();
        if args.producer {
            operations.extend([Write, Describe, Create]);
        }
        if args.consumer {
            operations.extend([Read, Describe]);
        }
        operations.sort();
        operations.dedup();
        out.push((ResourceType::Topic, topic.clone(), operations));
    }
    if args.producer {
        for id in &args.transactional_id {
            out.push((
                ResourceType::TransactionalId,
                id.clone(),
                vec![Write, Describe],
            ));
        }
        if args.idempotent {
            out.push((
                ResourceType::Cluster,
                CLUSTER_NAME.to_string(),
                vec![IdempotentWrite],
            ));
        }
    }
    if args.consumer {
        for group in &args.group {
            out.push((ResourceType::Group, group.clone(), vec![Read]));
        }
    }
    Ok(out)
}

/// Every resource named by --topic, --group, --cluster and --transactional-id.
fn resources(args: &AclsArgs) -> Vec<(ResourceType, String)> {
    let named = |t: ResourceType, names: &[String]| {
        names
            .iter()
            .map(move |n| (t, n.clone()))
            .collect::<Vec<_>>()
    };
    let mut out = named(ResourceType::Topic, &args.topic);
    out.extend(named(ResourceType::Group, &args.group));
    if args.cluster {
        out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
    }
    out.extend(named(ResourceType::TransactionalId, &args.transactional_id));
    out
}

/// (principal, host, permission) for every allow and deny principal and each of its hosts;
/// without hosts, `*` when `add` and any host (None) otherwise.
fn principal_hosts(args: &AclsArgs, add: bool) -> Vec<(String, Option<String>, PermissionType)> {
    let default_host = add.then(|| WILDCARD_HOST.to_string());
    let mut out = Vec::new();
    for (principals, hosts, permission) in [
        (
            &args.allow_principal,
            &args.allow_host,
            PermissionType::Allow,
        ),
        (&args.deny_principal, &args.deny_host, PermissionType::Deny),
    ] {
        let hosts: Vec<Option<String>> = match hosts.is_empty() {
            true => vec![default_host.clone()],
            false => hosts.iter().cloned().map(Some).collect(),
        };
        for principal in principals {
            for host in &hosts {
                out.push((principal.clone(), host.clone(), permission));
            }
        }
    }
    out
}

fn add(client: &mut Client, bindings: &[AclBinding]) -> Result<(), ToolError> {
    for (pattern, entries) in group_by_pattern(bindings.iter().cloned()) {
        outln!("Adding ACLs for resource `{}`:", pattern_text(&pattern));
        for entry in entries {
            outln!(" \t{}", entry_text(&entry));
        }
        outln!();
    }
    let mut request = CreateAclsRequest::default();
    request.creations = bindings.iter().map(creation).collect();
    let response = client.call(&request, CREATE_ACLS_VERSIONS)?;
    if response.results.len() != bindings.len() {
        return Err(ToolError::Protocol(format!(
            "CreateAcls answered {} results for {} ACLs",
            response.results.len(),
            bindings.len()
        )));
    }
    let failures = bindings
        .iter()
        .zip(&response.results)
        .filter_map(|(b, r)| {
            check(
                r.error_code,
                || {
                    format!(
                        "create ACL {} on `{}`",
                        entry_text(&b.entry),
                        pattern_text(&b.pattern)
                    )
                },
                r.error_message.as_ref().map(|m| m.as_str()),
            )
            .err()
        })
        .collect();
    all_or_fail(failures)
}

fn list(client: &mut Client, filters: &[AclBindingFilter], json: bool) -> Result<(), ToolError> {
    let mut found = Vec::new();
    for filter in filters {
        let request = describe_request(filter);
        let response = client.call(&request, DESCRIBE_ACLS_VERSIONS)?;
        check(
            response.error_code,
            || "describe ACLs".to_string(),
            response.error_message.as_ref().map(|m| m.as_str()),
        )?;
        for resource in &response.resources {
            let pattern = ResourcePattern::new(
                ResourceType::from_i8(resource.resource_type),
                resource.resource_name.to_string(),
                PatternType::from_i8(resource.pattern_type),
            );
            for acl in &resource.acls {
                let entry = AccessControlEntry::new(
                    acl.principal.to_string(),
                    acl.host.to_string(),
                    AclOperation::from_i8(acl.operation),
                    PermissionType::from_i8(acl.permission_type),
                );
                found.push(AclBinding::new(pattern.clone(), entry));
            }
        }
    }
    let grouped = group_by_pattern(found);
    if json {
        outln!("{}", bindings_json(&grouped).render());
        return Ok(());
    }
    for (pattern, entries) in grouped {
        outln!("Current ACLs for resource `{}`:", pattern_text(&pattern));
        for entry in entries {
            outln!(" \t{}", entry_text(&entry));
        }
        outln!();
    }
    Ok(())
}

fn remove(client: &mut Client, filters: &[AclBindingFilter]) -> Result<(), ToolError> {
    let mut request = DeleteAclsRequest::default();
    request.filters = filters.iter().map(delete_filter).collect();
    let response = client.call(&request, DELETE_ACLS_VERSIONS)?;
    let mut failures = Vec::new();
    let mut removed = Vec::new();
    for result in &response.filter_results {
        if let Err(e) = check(
            result.error_code,
            || "remove ACLs".to_string(),
            result.error_message.as_ref().map(|m| m.as_str()),
        ) {
            failures.push(e);
            continue;
        }
        for m in &result.matching_acls {
            let pattern = ResourcePattern::new(
                ResourceType::from_i8(m.resource_type),
                m.resource_name.to_string(),
                PatternType::from_i8(m.pattern_type),
            );
            let entry = AccessControlEntry::new(
                m.principal.to_string(),
                m.host.to_string(),
                AclOperation::from_i8(m.operation),
                PermissionType::from_i8(m.permission_type),
            );
            let context = || {
                format!(
                    "remove ACL {} on `{}`",
                    entry_text(&entry),
                    pattern_text(&pattern)
                )
            };
            match check(
                m.error_code,
                context,
                m.error_message.as_ref().map(|s| s.as_str()),
            ) {
                Ok(()) => removed.push(AclBinding::new(pattern, entry)),
                Err(e) => failures.push(e),
            }
        }
    }
    let grouped = group_by_pattern(removed);
    if grouped.is_empty() && failures.is_empty() {
        outln!("No ACLs matched.");
    }
    for (pattern, entries) in grouped {
        outln!("Removed ACLs for resource `{}`:", pattern_text(&pattern));
        for entry in entries {
            outln!(" \t{}", entry_text(&entry));
        }
        outln!();
    }
    all_or_fail(failures)
}

/// Prints every failure but the last on stderr and returns the last (which `main` prints).
fn all_or_fail(mut failures: Vec<ToolError>) -> Result<(), ToolError> {
    let Some(last) = failures.pop() else {
        return Ok(());
    };
    for e in failures {
        eprintln!("millrace-tools: {e}");
    }
    Err(last)
}

fn group_by_pattern(
    bindings: impl IntoIterator<Item = AclBinding>,
) -> BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>> {
    let mut grouped: BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>> = BTreeMap::new();
    for b in bindings {
        grouped.entry(b.pattern).or_default().insert(b.entry);
    }
    grouped
}

/// Kafka's `ResourcePattern.toString()`, as kafka-acls.sh prints it.
fn pattern_text(p: &ResourcePattern) -> String {
    format!(
        "ResourcePattern(resourceType={}, name={}, patternType={})",
        p.resource_type, p.name, p.pattern_type
    )
}

/// Kafka's `AccessControlEntry.toString()`.
fn entry_text(e: &AccessControlEntry) -> String {
    format!(
        "(principal={}, host={}, operation={}, permissionType={})",
        e.principal, e.host, e.operation, e.permission
    )
}

fn bindings_json(grouped: &BTreeMap<ResourcePattern, BTreeSet<AccessControlEntry>>) -> Json {
    let mut items = Vec::new();
    for (p, entries) in grouped {
        for e in entries {
            items.push(Json::object(vec![
                ("resource_type", Json::Str(p.resource_type.name().into())),
                ("resource_name", Json::Str(p.name.clone())),
                ("pattern_type", Json::Str(p.pattern_type.name().into())),
                ("principal", Json::Str(e.principal.clone())),
                ("host", Json::Str(e.host.clone())),
                ("operation", Json::Str(e.operation.name().into())),
                ("permission_type", Json::Str(e.permission.name().into())),
            ]));
        }
    }
    Json::Array(items)
}

fn creation(b: &AclBinding) -> AclCreation {
    let mut c = AclCreation::default();
    c.resource_type = b.pattern.resource_type.code();
    c.resource_name = StrBytes::from_string(b.pattern.name.clone());
    c.resource_pattern_type = b.pattern.pattern_type.code();
    c.principal = StrBytes::from_string(b.entry.principal.clone());
    c.host = StrBytes::from_string(b.entry.host.clone());
    c.operation = b.entry.operation.code();
    c.permission_type = b.entry.permission.code();
    c
}

fn describe_request(f: &AclBindingFilter) -> DescribeAclsRequest {
    let text = |s: &Option<String>| s.clone().map(StrBytes::from_string);
    let mut r = DescribeAclsRequest::default();
    r.resource_type_filter = f.resource_type.code();
    r.resource_name_filter = text(&f.name);
    r.pattern_type_filter = f.pattern_type.code();
    r.principal_filter = text(&f.principal);
    r.host_filter = text(&f.host);
    r.operation = f.operation.code();
    r.permission_type = f.permission.code();
    r
}

fn delete_filter(f: &AclBindingFilter) -> DeleteAclsFilter {
    let text = |s: &Option<String>| s.clone().map(StrBytes::from_string);
    let mut d = DeleteAclsFilter::default();
    d.resource_type_filter = f.resource_type.code();
    d.resource_name_filter = text(&f.name);
    d.pattern_type_filter = f.pattern_type.code();
    d.principal_filter = text(&f.principal);
    d.host_filter = text(&f.host);
    d.operation = f.operation.code();
    d.permission_type = f.permission.code();
    d
}

fn parse_operation(text: &str) -> Result<AclOperation, String> {
    match text.parse::<AclOperation>() {
        Ok(AclOperation::Any | AclOperation::Unknown) | Err(_) => Err(format!(
            "unknown operation {text:?} (Read, Write, Create, Delete, Alter, Describe, \
             ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens, \
             DescribeTokens, TwoPhaseCommit, All)"
        )),
        Ok(op) => Ok(op),
    }
}

fn parse_pattern_type(text: &str) -> Result<PatternType, String> {
    match text.parse::<PatternType>() {
        Ok(PatternType::Unknown) | Err(_) => Err(format!(
            "unknown pattern type {text:?} (literal, prefixed, match or any)"
        )),
        Ok(t) => Ok(t),
    }
}

fn usage(message: &str) -> ToolError {
    ToolError::Usage(message.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        acls: AclsArgs,
    }

    fn plan_of(args: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from(std::iter::once("acls").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        plan(&cli.acls).map_err(|e| e.to_string())
    }

    fn binding(t: ResourceType, name: &str, principal: &str, op: AclOperation) -> AclBinding {
        AclBinding::new(
            ResourcePattern::literal(t, name),
            AccessControlEntry::new(principal, "*", op, PermissionType::Allow),
        )
    }

    #[test]
    fn add_crosses_principals_hosts_operations_and_resources() {
        let Plan::Add(bindings) = plan_of(&[
            "--add",
            "--allow-principal",
            "User:alice",
            "--deny-principal",
            "User:bob",
            "--deny-host",
            "10.0.0.1",
            "--operation",
            "Read",
            "--operation",
            "DESCRIBE",
            "--topic",
            "t",
            "--group",
            "g",
        ])
        .unwrap() else {
            panic!("an add plan");
        };
        assert_eq!(bindings.len(), 8, "{bindings:#?}");
        let deny = bindings
            .iter()
            .find(|b| {
                b.entry.principal == "User:bob" && b.pattern.resource_type == ResourceType::Group
            })
            .unwrap();
        assert_eq!(deny.entry.host, "10.0.0.1");
        assert_eq!(deny.entry.permission, PermissionType::Deny);
        assert!(bindings
            .iter()
            .all(|b| b.pattern.pattern_type == PatternType::Literal));
        let alice: Vec<_> = bindings
            .iter()
            .filter(|b| b.entry.principal == "User:alice")
            .collect();
        assert!(alice.iter().all(|b| b.entry.host == "*"));
        // Without --operation an add grants All.
        let Plan::Add(all) =
            plan_of(&["--add", "--allow-principal", "User:a", "--cluster"]).unwrap()
        else {
            panic!("an add plan");
        };
        assert_eq!(
            all,
            [binding(
                ResourceType::Cluster,
                "kafka-cluster",
                "User:a",
                AclOperation::All
            )]
        );
    }

    #[test]
    fn producer_and_consumer_convenience_sets() {
        let Plan::Add(bindings) = plan_of(&[
            "--add",
            "--producer",
            "--consumer",
            "--idempotent",
            "--allow-principal",
            "User:app",
            "--topic",
            "t",
            "--group",
            "g",
            "--transactional-id",
            "tx",
        ])
        .unwrap() else {
            panic!("an add plan");
        };
        use AclOperation::*;
        let mut expected = vec![
            binding(ResourceType::Topic, "t", "User:app", Write),
            binding(ResourceType::Topic, "t", "User:app", Describe),
            binding(ResourceType::Topic, "t", "User:app", Create),
            binding(ResourceType::Topic, "t", "User:app", Read),
            binding(ResourceType::TransactionalId, "tx", "User:app", Write),
            binding(ResourceType::TransactionalId, "tx", "User:app", Describe),
            binding(
                ResourceType::Cluster,
                "kafka-cluster",
                "User:app",
                IdempotentWrite,
            ),
            binding(ResourceType::Group, "g", "User:app", Read),
        ];
        expected.sort();
        assert_eq!(bindings, expected);
        let err = plan_of(&[
            "--add",
            "--consumer",
            "--allow-principal",
            "User:a",
            "--topic",
            "t",
        ])
        .unwrap_err();
        assert!(err.contains("--consumer needs --group"), "{err}");
    }

    #[test]
    fn list_and_remove_default_to_any_pattern_and_operation() {
        let Plan::List(filters) = plan_of(&["--list"]).unwrap() else {
            panic!("a list plan");
        };
        assert_eq!(filters, [AclBindingFilter::any()]);
        let Plan::List(filters) = plan_of(&[
            "--list",
            "--topic",
            "t",
            "--principal",
            "User:a",
            "--principal",
            "User:b",
        ])
        .unwrap() else {
            panic!("a list plan");
        };
        assert_eq!(filters.len(), 2);
        assert!(filters.iter().all(|f| f.pattern_type == PatternType::Any
            && f.resource_type == ResourceType::Topic
            && f.name.as_deref() == Some("t")));
        let Plan::Remove(filters) = plan_of(&[
            "--remove",
            "--force",
            "--topic",
            "t",
            "--resource-pattern-type",
            "prefixed",
        ])
        .unwrap() else {
            panic!("a remove plan");
        };
        assert_eq!(
            filters,
            [AclBindingFilter {
                resource_type: ResourceType::Topic,
                name: Some("t".into()),
                pattern_type: PatternType::Prefixed,
                ..AclBindingFilter::any()
            }]
        );
        let Plan::Remove(filters) = plan_of(&[
            "--remove",
            "--force",
            "--topic",
            "t",
            "--allow-principal",
            "User:a",
            "--operation",
            "Read",
        ])
        .unwrap() else {
            panic!("a remove plan");
        };
        assert_eq!(filters.len(), 1);
        assert_eq!(filters[0].principal.as_deref(), Some("User:a"));
        assert_eq!(filters[0].host, None, "any host unless narrowed");
        assert_eq!(filters[0].operation, AclOperation::Read);
        assert_eq!(filters[0].permission, PermissionType::Allow);
    }

    #[test]
    fn refusals_say_what_is_missing() {
        let cases: [(&[&str], &str); 14] = [
            (&["--topic", "t"], "required"),
            (&["--add", "--list", "--topic", "t"], "cannot be used with"),
            (&["--remove", "--topic", "t"], "--remove needs --force"),
            (&["--remove", "--force"], "name a resource"),
            (&["--add", "--topic", "t"], "--add needs --allow-principal"),
            (&["--add", "--allow-principal", "User:a"], "name a resource"),
            (
                &["--add", "--allow-principal", "alice", "--topic", "t"],
                "Could not parse principal",
            ),
            (
                &[
                    "--add",
                    "--allow-principal",
                    "User:a",
                    "--topic",
                    "t",
                    "--operation",
                    "Fly",
                ],
                "unknown operation",
            ),
            (
                &[
                    "--add",
                    "--allow-principal",
                    "User:a",
                    "--group",
                    "g",
                    "--operation",
                    "Write",
                ],
                "ResourceType Group only supports operations",
            ),
            (
                &[
                    "--add",
                    "--allow-principal",
                    "User:a",
                    "--topic",
                    "t",
                    "--resource-pattern-type",
                    "match",
                ],
                "must be literal or prefixed",
            ),
            (
                &["--list", "--operation", "Read"],
                "--operation is not used with --list",
            ),
            (
                &[
                    "--add",
                    "--allow-principal",
                    "User:a",
                    "--topic",
                    "t",
                    "--json",
                ],
                "--json is for --list",
            ),
            (
                &["--list", "--allow-host", "1.2.3.4"],
                "--allow-host needs --allow-principal",
            ),
            (
                &["--add", "--principal", "User:a", "--topic", "t"],
                "--principal is for --list",
            ),
        ];
        for (args, needle) in cases {
            let err = plan_of(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err} lacks {needle}");
        }
    }

    #[test]
    fn texts_are_kafkas() {
        let b = binding(
            ResourceType::TransactionalId,
            "tx",
            "User:a",
            AclOperation::Write,
        );
        assert_eq!(
            pattern_text(&b.pattern),
            "ResourcePattern(resourceType=TRANSACTIONAL_ID, name=tx, patternType=LITERAL)"
        );
        assert_eq!(
            entry_text(&b.entry),
            "(principal=User:a, host=*, operation=WRITE, permissionType=ALLOW)"
        );
        let json = bindings_json(&group_by_pattern([b])).render();
        assert_eq!(
            json,
            r#"[{"resource_type":"TRANSACTIONAL_ID","resource_name":"tx","pattern_type":"LITERAL","principal":"User:a","host":"*","operation":"WRITE","permission_type":"ALLOW"}]"#
        );
    }

    #[test]
    fn requests_carry_kafkas_codes() {
        let b = binding(ResourceType::Topic, "t", "User:a", AclOperation::Read);
        let c = creation(&b);
        assert_eq!(
            (
                c.resource_type,
                c.resource_pattern_type,
                c.operation,
                c.permission_type
            ),
            (2, 3, 3, 3)
        );
        let f = AclBindingFilter::any();
        let d = describe_request(&f);
        assert_eq!(
            (
                d.resource_type_filter,
                d.pattern_type_filter,
                d.operation,
                d.permission_type
            ),
            (1, 1, 1, 1)
        );
        assert!(d.resource_name_filter.is_none() && d.principal_filter.is_none());
        let del = delete_filter(&AclBindingFilter::exact(&b));
        assert_eq!(del.resource_name_filter.as_deref(), Some("t"));
        assert_eq!(del.host_filter.as_deref(), Some("*"));
    }
}
