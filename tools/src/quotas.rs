//! `quotas`: client quotas as kafka-configs.sh shows and changes them, over
//! DescribeClientQuotas (key 48) and AlterClientQuotas (49).
//!
//! ```text
//! quotas --describe [--entity-type users|clients|ips [--entity-name N | --entity-default]]...
//!                    [--json]
//! quotas --alter     --entity-type users --entity-name alice
//!                    [--entity-type clients --entity-default]
//!                    [--add-config producer_byte_rate=1048576,request_percentage=200]
//!                    [--delete-config consumer_byte_rate] [--dry-run]
//! ```
//!
//! Entities are built as kafka-configs.sh builds them: the n-th `--entity-type` pairs with the
//! n-th of the `--entity-name` / `--entity-default` flags in command-line order, so `users` and
//! `clients` together name a (user, client-id) entity. For `--describe` a type without a name
//! matches any entity that has that type (with any name or the default), and the filter is
//! strict (kafka-configs.sh's `containsOnly`): `--entity-type users --entity-name alice` shows
//! alice's own quotas, not those of (alice, some client). `--describe` with no entity type shows
//! every entity (kafka-configs.sh insists on a type; this is the one extension).
//!
//! ```text
//! filter component = entity_type ("user" | "client-id" | "ip"), match_type, match
//!   --entity-name N   -> match_type 0 (exact), match N
//!   --entity-default  -> match_type 1 (default), match null
//!   (type only)       -> match_type 2 (specified: any name or the default), match null
//! ```
//!
//! Keys and values are checked by the broker (it knows which keys each entity type takes);
//! here a value only has to be a number. `--dry-run` sends `validate_only`.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use clap::{ArgAction, ArgGroup, ArgMatches, Args, ValueEnum};
use kafka_protocol::messages::{
    alter_client_quotas_request::{EntityData, EntryData, OpData},
    describe_client_quotas_request::ComponentData,
    AlterClientQuotasRequest, DescribeClientQuotasRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::Output;
use crate::client::Client;
use crate::error::{check, ToolError};
use crate::output::{outln, Json};
use crate::Connection;

const DESCRIBE_CLIENT_QUOTAS_VERSIONS: RangeInclusive<i16> = 0..=1;
const ALTER_CLIENT_QUOTAS_VERSIONS: RangeInclusive<i16> = 0..=1;
/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;
/// clap ids of the two flags whose order pairs names with types.
const ENTITY_NAME_ID: &str = "entity_name";
const ENTITY_DEFAULT_ID: &str = "entity_default";

/// `quotas ...`
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["describe", "alter"])))]
pub struct QuotasArgs {
    /// Show quotas of the entities the other flags match.
    #[arg(long)]
    describe: bool,
    /// Add, change or delete quotas of one entity.
    #[arg(long)]
    alter: bool,
    /// users, clients or ips; repeat for a (user, client) entity.
    #[arg(long = "entity-type", value_enum, value_name = "TYPE")]
    entity_type: Vec<EntityType>,
    /// The name of the entity of the matching --entity-type.
    #[arg(long = "entity-name", value_name = "NAME")]
    entity_name: Vec<String>,
    /// The default entity of the matching --entity-type.
    // Each occurrence is a value so that clap records where each one was: a counting flag
    // keeps one position only, and the order pairs names with types.
    #[arg(
        long = "entity-default",
        action = ArgAction::Append,
        num_args = 0,
        default_missing_value = "true",
        value_parser = clap::value_parser!(bool)
    )]
    entity_default: Vec<bool>,
    /// Quotas to set: key=value[,key=value]; repeatable.
    #[arg(long = "add-config", value_name = "K=V[,K=V]")]
    add_config: Vec<String>,
    /// Quotas to remove: key[,key]; repeatable.
    #[arg(long = "delete-config", value_name = "K[,K]")]
    delete_config: Vec<String>,
    /// --alter: let the broker validate the change without applying it.
    #[arg(long = "dry-run")]
    dry_run: bool,
    #[command(flatten)]
    out: Output,
    #[command(flatten)]
    conn: Connection,
    /// --entity-name values and --entity-default flags (None) in command-line order; set by
    /// [`QuotasArgs::with_order`] from the parsed matches, which alone know the order.
    #[arg(skip)]
    names_in_order: Vec<Option<String>>,
}

/// kafka-configs.sh's entity types for client quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum EntityType {
    Users,
    Clients,
    Ips,
}

impl EntityType {
    /// The entity type on the wire (Kafka's `ClientQuotaEntity` constants).
    fn wire(self) -> &'static str {
        match self {
            EntityType::Users => "user",
            EntityType::Clients => "client-id",
            EntityType::Ips => "ip",
        }
    }
}

/// One component of an entity: a type and a name, `None` for the default entity.
type Component = (EntityType, Option<String>);
/// A described entity (wire type -> name, `None` for the default) and its quotas (key ->
/// value), both sorted for output.
type Described = (BTreeMap<String, Option<String>>, BTreeMap<String, f64>);

/// What the flags ask the broker to do.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Filter components (type, match type, match) and whether the filter is strict.
    Describe(Vec<(EntityType, i8, Option<String>)>, bool),
    /// The entity, the keys to set and the keys to remove.
    Alter(Vec<Component>, Vec<(String, f64)>, Vec<String>),
}

impl QuotasArgs {
    /// Records the command-line order of `--entity-name` and `--entity-default` from the
    /// matches of the `quotas` subcommand.
    pub fn with_order(mut self, matches: &ArgMatches) -> Self {
        let mut ordered: Vec<(usize, Option<String>)> = Vec::new();
        if let (Some(indices), Some(names)) = (
            matches.indices_of(ENTITY_NAME_ID),
            matches.get_many::<String>(ENTITY_NAME_ID),
        ) {
            ordered.extend(indices.zip(names.cloned().map(Some)));
        }
        if let Some(indices) = matches.indices_of(ENTITY_DEFAULT_ID) {
            ordered.extend(indices.map(|i| (i, None)));
        }
        ordered.sort_by_key(|(index, _)| *index);
        self.names_in_order = ordered.into_iter().map(|(_, name)| name).collect();
        self
    }
}

/// Runs `quotas`.
pub fn run(args: QuotasArgs) -> Result<(), ToolError> {
    let plan = plan(&args)?;
    let mut client = args.conn.connect()?;
    match plan {
        Plan::Describe(components, strict) => {
            describe(&mut client, &components, strict, args.out.json)
        }
        Plan::Alter(entity, set, delete) => {
            alter(&mut client, &entity, &set, &delete, args.dry_run)
        }
    }
}

/// Checks the flags and turns them into a request, without a broker.
pub fn plan(args: &QuotasArgs) -> Result<Plan, ToolError> {
    assert_eq!(
        args.names_in_order.len(),
        args.entity_name.len() + args.entity_default.len(),
        "QuotasArgs::with_order ran"
    );
    let names = &args.names_in_order;
    if names.len() > args.entity_type.len() {
        return Err(usage(
            "more --entity-name/--entity-default than --entity-type",
        ));
    }
    let mut types = args.entity_type.clone();
    types.sort();
    if types.windows(2).any(|w| w[0] == w[1]) {
        return Err(usage("each --entity-type may be given once"));
    }
    if types.contains(&EntityType::Ips) && types.len() > 1 {
        return Err(usage("ips cannot be combined with users or clients"));
    }
    if args.describe {
        for (flag, given) in [
            ("--add-config", !args.add_config.is_empty()),
            ("--delete-config", !args.delete_config.is_empty()),
            ("--dry-run", args.dry_run),
        ] {
            if given {
                return Err(usage(&format!("{flag} is for --alter")));
            }
        }
        let components = args
            .entity_type
            .iter()
            .enumerate()
            .map(|(i, &t)| match names.get(i) {
                Some(Some(name)) => (t, MATCH_EXACT, Some(name.clone())),
                Some(None) => (t, MATCH_DEFAULT, None),
                None => (t, MATCH_SPECIFIED, None),
            })
            .collect::<Vec<_>>();
        let strict = !components.is_empty();
        return Ok(Plan::Describe(components, strict));
    }
    if args.out.json {
        return Err(usage("--json is for --describe"));
    }
    plan_alter(args)
}

fn plan_alter(args: &QuotasArgs) -> Result<Plan, ToolError> {
    if args.entity_type.is_empty() || args.names_in_order.len() != args.entity_type.len() {
        return Err(usage(
            "--alter needs --entity-type with --entity-name or --entity-default for each",
        ));
    }
    let entity: Vec<Component> = args
        .entity_type
        .iter()
        .copied()
        .zip(args.names_in_order.iter().cloned())
        .collect();
    let split = |values: &[String]| -> Vec<String> {
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut set = Vec::new();
    for pair in split(&args.add_config) {
        let (key, value) = pair
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| {
                usage(&format!(
                    "malformed --add-config entry '{pair}': expected KEY=VALUE"
                ))
            })?;
        let number: f64 = value.trim().parse().map_err(|_| {
            usage(&format!(
                "--add-config {key}={value}: the value is not a number"
            ))
        })?;
        set.push((key.trim().to_string(), number));
    }
    let delete = split(&args.delete_config);
    if set.is_empty() && delete.is_empty() {
        return Err(usage("--alter needs --add-config or --delete-config"));
    }
    if let Some((key, _)) = set.iter().find(|(k, _)| delete.contains(k)) {
        return Err(usage(&format!("{key} is both added and deleted")));
    }
    Ok(Plan::Alter(entity, set, delete))
}

fn describe(
    client: &mut Client,
    components: &[(EntityType, i8, Option<String>)],
    strict: bool,
    json: bool,
) -> Result<(), ToolError> {
    let mut request = DescribeClientQuotasRequest::default();
    request.components = components
        .iter()
        .map(|(t, match_type, name)| {
            let mut c = ComponentData::default();
            c.entity_type = StrBytes::from_static_str(t.wire());
            c.match_type = *match_type;
            c._match = name.clone().map(StrBytes::from_string);
            c
        })
        .collect();
    request.strict = strict;
    let response = client.call(&request, DESCRIBE_CLIENT_QUOTAS_VERSIONS)?;
    check(
        response.error_code,
        || "describe client quotas".to_string(),
        response.error_message.as_ref().map(|m| m.as_str()),
    )?;
    let mut entries: Vec<Described> = response
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let entity = e
                .entity
                .iter()
                .map(|c| {
                    (
                        c.entity_type.to_string(),
                        c.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            let values = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            (entity, values)
        })
        .collect();
    entries.sort_by_cached_key(|(entity, _)| components_in_order(entity));
    if json {
        outln!("{}", quotas_json(&entries).render());
        return Ok(());
    }
    for (entity, values) in &entries {
        let values: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        outln!(
            "Quota configs for {} are {}",
            entity_text(entity),
            values.join(", ")
        );
    }
    Ok(())
}

fn alter(
    client: &mut Client,
    entity: &[Component],
    set: &[(String, f64)],
    delete: &[String],
    dry_run: bool,
) -> Result<(), ToolError> {
    let op = |key: &str, value: f64, remove: bool| {
        let mut o = OpData::default();
        o.key = StrBytes::from_string(key.to_string());
        o.value = value;
        o.remove = remove;
        o
    };
    let mut entry = EntryData::default();
    entry.entity = entity
        .iter()
        .map(|(t, name)| {
            let mut e = EntityData::default();
            e.entity_type = StrBytes::from_static_str(t.wire());
            e.entity_name = name.clone().map(StrBytes::from_string);
            e
        })
        .collect();
    entry.ops = set
        .iter()
        .map(|(k, v)| op(k, *v, false))
        .chain(delete.iter().map(|k| op(k, 0.0, true)))
        .collect();
    let mut request = AlterClientQuotasRequest::default();
    request.entries = vec![entry];
    request.validate_only = dry_run;
    let response = client.call(&request, ALTER_CLIENT_QUOTAS_VERSIONS)?;
    let wire: BTreeMap<String, Option<String>> = entity
        .iter()
        .map(|(t, n)| (t.wire().to_string(), n.clone()))
        .collect();
    let label = entity_text(&wire);
    for e in &response.entries {
        check(
            e.error_code,
            || format!("alter client quotas of {label}"),
            e.error_message.as_ref().map(|m| m.as_str()),
        )?;
    }
    if dry_run {
        outln!("Validated the quota change for {label} (dry run: nothing changed).");
    } else {
        outln!("Completed updating quotas for {label}.");
    }
    Ok(())
}

/// kafka-configs.sh's words for an entity: `user-principal 'alice', client-id 'app'`, `the
/// default user-principal`.
fn entity_text(entity: &BTreeMap<String, Option<String>>) -> String {
    let label = |wire: &str| match wire {
        "user" => "user-principal".to_string(),
        other => other.to_string(),
    };
    components_in_order(entity)
        .into_iter()
        .map(|(_, t, name)| match name {
            Some(name) => format!("{} '{name}'", label(&t)),
            None => format!("the default {}", label(&t)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An entity's components user, then client-id, then ip (kafka-configs.sh's order), each with
/// its rank; also the sort key of described entities: users before clients before IPs, a
/// default before named ones, a user alone before the user with a client id.
fn components_in_order(
    entity: &BTreeMap<String, Option<String>>,
) -> Vec<(u8, String, Option<String>)> {
    let rank = |wire: &str| match wire {
        "user" => 0,
        "client-id" => 1,
        _ => 2,
    };
    let mut parts: Vec<(u8, String, Option<String>)> = entity
        .iter()
        .map(|(t, name)| (rank(t), t.clone(), name.clone()))
        .collect();
    parts.sort();
    parts
}

/// `[{"entity": {"user": "alice", "client-id": null}, "quotas": {"producer_byte_rate": 1024}}]`;
/// a null name is the default entity.
fn quotas_json(entries: &[Described]) -> Json {
    Json::Array(
        entries
            .iter()
            .map(|(entity, values)| {
                let entity = entity
                    .iter()
                    .map(|(t, n)| (t.clone(), Json::opt_str(n.as_deref())))
                    .collect();
                let values = values
                    .iter()
                    .map(|(k, v)| (k.clone(), Json::Float(*v)))
                    .collect();
                Json::object(vec![
                    ("entity", Json::Object(entity)),
                    ("quotas", Json::Object(values)),
                ])
            })
            .collect(),
    )
}

fn usage(message: &str) -> ToolError {
    ToolError::Usage(message.to_string())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        quotas: QuotasArgs,
    }

    fn plan_of(args: &[&str]) -> Result<Plan, String> {
        let matches = Cli::command()
            .try_get_matches_from(std::iter::once("quotas").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        plan(&cli.quotas.with_order(&matches)).map_err(|e| e.to_string())
    }

    #[test]
    fn names_pair_with_types_in_command_line_order() {
        let plan = plan_of(&[
            "--alter",
            "--entity-type",
            "users",
            "--entity-default",
            "--entity-type",
            "clients",
            "--entity-name",
            "app",
            "--add-config",
            "producer_byte_rate=1048576,request_percentage=200",
            "--add-config",
            "controller_mutation_rate=10",
            "--delete-config",
            "consumer_byte_rate",
        ])
        .unwrap();
        assert_eq!(
            plan,
            Plan::Alter(
                vec![
                    (EntityType::Users, None),
                    (EntityType::Clients, Some("app".into()))
                ],
                vec![
                    ("producer_byte_rate".into(), 1048576.0),
                    ("request_percentage".into(), 200.0),
                    ("controller_mutation_rate".into(), 10.0),
                ],
                vec!["consumer_byte_rate".into()],
            )
        );
        // The same flags the other way round: the name now belongs to users.
        let Plan::Alter(entity, _, _) = plan_of(&[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--entity-type",
            "clients",
            "--entity-default",
            "--delete-config",
            "producer_byte_rate",
        ])
        .unwrap() else {
            panic!("an alter plan");
        };
        assert_eq!(
            entity,
            [
                (EntityType::Users, Some("alice".into())),
                (EntityType::Clients, None)
            ]
        );
    }

    #[test]
    fn describe_filters_are_exact_default_or_specified_and_strict() {
        assert_eq!(
            plan_of(&[
                "--describe",
                "--entity-type",
                "users",
                "--entity-name",
                "alice"
            ])
            .unwrap(),
            Plan::Describe(
                vec![(EntityType::Users, MATCH_EXACT, Some("alice".into()))],
                true
            )
        );
        assert_eq!(
            plan_of(&[
                "--describe",
                "--entity-type",
                "clients",
                "--entity-default",
                "--entity-type",
                "users"
            ])
            .unwrap(),
            Plan::Describe(
                vec![
                    (EntityType::Clients, MATCH_DEFAULT, None),
                    (EntityType::Users, MATCH_SPECIFIED, None)
                ],
                true
            )
        );
        assert_eq!(
            plan_of(&["--describe"]).unwrap(),
            Plan::Describe(vec![], false)
        );
        assert_eq!(
            plan_of(&[
                "--describe",
                "--entity-type",
                "users",
                "--entity-default",
                "--entity-type",
                "clients",
                "--entity-default",
            ])
            .unwrap(),
            Plan::Describe(
                vec![
                    (EntityType::Users, MATCH_DEFAULT, None),
                    (EntityType::Clients, MATCH_DEFAULT, None)
                ],
                true
            )
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases: [(&[&str], &str); 11] = [
            (&["--entity-type", "users"], "required"),
            (
                &["--describe", "--entity-type", "groups"],
                "invalid value 'groups'",
            ),
            (&["--describe", "--entity-name", "a"], "more --entity-name"),
            (
                &[
                    "--describe",
                    "--entity-type",
                    "users",
                    "--entity-type",
                    "users",
                ],
                "once",
            ),
            (
                &[
                    "--describe",
                    "--entity-type",
                    "ips",
                    "--entity-type",
                    "users",
                ],
                "ips cannot be combined",
            ),
            (
                &["--describe", "--add-config", "a=1"],
                "--add-config is for --alter",
            ),
            (
                &["--alter", "--entity-type", "users", "--add-config", "a=1"],
                "--entity-name or --entity-default for each",
            ),
            (
                &["--alter", "--entity-type", "users", "--entity-name", "a"],
                "needs --add-config or --delete-config",
            ),
            (
                &[
                    "--alter",
                    "--entity-type",
                    "users",
                    "--entity-name",
                    "a",
                    "--add-config",
                    "producer_byte_rate=fast",
                ],
                "not a number",
            ),
            (
                &[
                    "--alter",
                    "--entity-type",
                    "users",
                    "--entity-name",
                    "a",
                    "--add-config",
                    "=1",
                ],
                "malformed --add-config",
            ),
            (
                &[
                    "--alter",
                    "--entity-type",
                    "ips",
                    "--entity-default",
                    "--add-config",
                    "a=1",
                    "--delete-config",
                    "a",
                ],
                "both added and deleted",
            ),
        ];
        for (args, needle) in cases {
            let err = plan_of(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err} lacks {needle}");
        }
    }

    #[test]
    fn entities_print_as_kafka_configs_does() {
        let entity: BTreeMap<String, Option<String>> = [
            ("client-id".to_string(), Some("app".to_string())),
            ("user".to_string(), None),
        ]
        .into();
        assert_eq!(
            entity_text(&entity),
            "the default user-principal, client-id 'app'"
        );
        let json = quotas_json(&[(entity, [("producer_byte_rate".to_string(), 1024.0)].into())]);
        assert_eq!(
            json.render(),
            r#"[{"entity":{"client-id":"app","user":null},"quotas":{"producer_byte_rate":1024}}]"#
        );
    }
}
