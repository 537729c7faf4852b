//! Model tests: the indexed [`Authorizer`] against a plain scan of every binding, written from
//! Kafka's rules, on seeded random ACL sets and queries. `ACL_MODEL_SEED=s` replays one seed,
//! `ACL_MODEL_SEEDS=n` runs more of them; a failure names its seed and query.

use std::collections::HashSet;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::host::host_matches;
use super::*;

/// How random worlds are drawn.
struct Shape {
    bindings: usize,
    queries: usize,
    /// Every this many queries also ask `authorize_any`.
    any_every: usize,
    alphabet: &'static [u8],
    /// Super user `User:u0` and allow-everyone always on (else each is a coin toss per world).
    open_settings: bool,
    literal_len: (usize, usize),
    prefix_len: (usize, usize),
    principals: usize,
}

/// What the reference decided, to show the test reaches every outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    SuperUser,
    Allowed,
    Denied,
    /// Covered by some pattern, but no ACL applies.
    NothingApplies,
    /// No pattern covers the resource.
    Default(bool),
    /// What `authorize_any` answered.
    Any(bool),
}

struct World {
    bindings: Vec<AclBinding>,
    settings: AuthorizerSettings,
    principals: Vec<String>,
    /// Gets no literal `*` bindings, so that some of its resources are covered by nothing.
    no_wildcard: ResourceType,
}

struct Query {
    principal: String,
    host: &'static str,
    op: AclOperation,
    resource_type: ResourceType,
    name: String,
}

const ACL_HOSTS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.0/31",
    "0:0:0:0:0:0:0:1",
    "::/127",
    "10.0.0.0/40",
];
const CLIENT_HOSTS: &[&str] = &["10.0.0.1", "10.0.0.2", "10.0.0.3", "0:0:0:0:0:0:0:1"];
const TYPES: &[ResourceType] = &[
    ResourceType::Topic,
    ResourceType::Topic,
    ResourceType::Topic,
    ResourceType::Group,
    ResourceType::Group,
    ResourceType::Cluster,
    ResourceType::TransactionalId,
    ResourceType::DelegationToken,
    ResourceType::User,
];

#[test]
fn index_decides_like_a_scan_of_all_bindings() {
    let shape = Shape {
        bindings: 300,
        queries: 100,
        any_every: 2,
        alphabet: b"ab",
        open_settings: false,
        literal_len: (1, 4),
        prefix_len: (1, 3),
        principals: 4,
    };
    let mut seen = HashSet::new();
    for seed in seeds(20) {
        check_world(seed, &shape, &mut seen);
    }
    assert_every_outcome(&seen);
}

#[test]
fn hundred_thousand_bindings_decide_like_a_scan() {
    let shape = Shape {
        bindings: 100_000,
        queries: 2_000,
        any_every: 20,
        alphabet: b"abcdefgh",
        open_settings: true,
        literal_len: (2, 8),
        prefix_len: (3, 6),
        principals: 200,
    };
    let mut seen = HashSet::new();
    for seed in seeds(1) {
        check_world(seed, &shape, &mut seen);
    }
    seen.insert(Outcome::Default(false));
    assert_every_outcome(&seen);
}

/// `ACL_MODEL_SEED` alone, else `0..ACL_MODEL_SEEDS` (default `count`).
fn seeds(count: u64) -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match var("ACL_MODEL_SEED") {
        Some(seed) => vec![seed],
        None => (0..var("ACL_MODEL_SEEDS").unwrap_or(count)).collect(),
    }
}

fn assert_every_outcome(seen: &HashSet<Outcome>) {
    use Outcome::*;
    let all = [
        SuperUser,
        Allowed,
        Denied,
        NothingApplies,
        Default(true),
        Default(false),
    ];
    for outcome in all.into_iter().chain([Any(true), Any(false)]) {
        assert!(
            seen.contains(&outcome),
            "no query ended {outcome:?}: the generator is too narrow"
        );
    }
}

fn check_world(seed: u64, shape: &Shape, seen: &mut HashSet<Outcome>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let world = World::random(&mut rng, shape);
    let authorizer = Authorizer::new(world.bindings.clone(), world.settings.clone());
    for case in 0..shape.queries {
        let q = world.query(&mut rng, shape);
        let want =
            reference_authorize(&world, &q.principal, q.host, q.op, q.resource_type, &q.name);
        seen.insert(want);
        let got = authorizer.authorize(&q.principal, q.host, q.op, q.resource_type, &q.name);
        if got != allowed(want) {
            fail(
                seed,
                case,
                &world,
                &q,
                &format!("authorize: index {got}, reference {want:?}"),
            );
        }
        if case % shape.any_every != 0 {
            continue;
        }
        let want = reference_authorize_any(&world, &q.principal, q.host, q.op, q.resource_type);
        let got = authorizer.authorize_any(&q.principal, q.host, q.op, q.resource_type);
        if got != want {
            fail(
                seed,
                case,
                &world,
                &q,
                &format!("authorize_any: index {got}, reference {want}"),
            );
        }
        seen.insert(Outcome::Any(want));
    }
}

fn allowed(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::SuperUser | Outcome::Allowed | Outcome::Default(true)
    )
}

fn fail(seed: u64, case: usize, world: &World, q: &Query, what: &str) -> ! {
    let covering: Vec<String> = world
        .bindings
        .iter()
        .filter(|b| b.pattern.resource_type == q.resource_type)
        .filter(|b| b.entry.principal == q.principal || b.entry.principal == WILDCARD_PRINCIPAL)
        .map(|b| b.to_string())
        .take(40)
        .collect();
    panic!(
        "seed {seed} (rerun with ACL_MODEL_SEED={seed}), case {case}: {what}\n\
         query: {} from {} {} {} {:?}\nsettings: {:?}\nbindings of that type for the \
         principal or User:* (first 40):\n{}",
        q.principal,
        q.host,
        q.op,
        q.resource_type,
        q.name,
        world.settings,
        covering.join("\n")
    );
}

/// Kafka's `StandardAuthorizerData.authorize`, as a scan.
fn reference_authorize(
    world: &World,
    principal: &str,
    host: &str,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> Outcome {
    if world.settings.super_users.iter().any(|u| u == principal) {
        return Outcome::SuperUser;
    }
    let (mut covered, mut allow, mut deny) = (false, false, false);
    for b in world.bindings.iter().filter(|b| b.is_concrete()) {
        if !b.pattern.matches(resource_type, name) {
            continue;
        }
        covered = true;
        let e = &b.entry;
        let principal_ok = e.principal == principal || e.principal == "User:*";
        if !principal_ok || !host_matches(&e.host, host) || !grants(e, op) {
            continue;
        }
        match e.permission {
            PermissionType::Deny => deny = true,
            _ => allow = true,
        }
    }
    match (deny, allow, covered) {
        (true, _, _) => Outcome::Denied,
        (false, true, _) => Outcome::Allowed,
        (false, false, true) => Outcome::NothingApplies,
        (false, false, false) => Outcome::Default(world.settings.allow_everyone_if_no_acl_found),
    }
}

/// Whether the entry's operation covers `op`: ALL, the same, or (ALLOW only) an operation
/// that implies DESCRIBE or DESCRIBE_CONFIGS.
fn grants(e: &AccessControlEntry, op: AclOperation) -> bool {
    use AclOperation::*;
    let implied: &[AclOperation] = match (e.permission, op) {
        (PermissionType::Allow, Describe) => &[Read, Write, Delete, Alter],
        (PermissionType::Allow, DescribeConfigs) => &[AlterConfigs],
        _ => &[],
    };
    e.operation == All || e.operation == op || implied.contains(&e.operation)
}

/// Kafka's default `Authorizer.authorizeByResourceType`, as written there.
fn reference_authorize_any(
    world: &World,
    principal: &str,
    host: &str,
    op: AclOperation,
    resource_type: ResourceType,
) -> bool {
    if allowed(reference_authorize(
        world,
        principal,
        host,
        op,
        resource_type,
        "hardcode",
    )) {
        return true;
    }
    let mut deny_literal: HashSet<String> = HashSet::new();
    let mut deny_prefixed: HashSet<String> = HashSet::new();
    let mut allows: Vec<(PatternType, &str)> = Vec::new();
    let mut wildcard_allow = false;
    for b in world.bindings.iter().filter(|b| b.is_concrete()) {
        let (p, e) = (&b.pattern, &b.entry);
        if p.resource_type != resource_type
            || !host_matches(&e.host, host)
            || (e.principal != principal && e.principal != "User:*")
            || (e.operation != op && e.operation != AclOperation::All)
        {
            continue;
        }
        let star = p.name == "*";
        match (e.permission, p.pattern_type) {
            (PermissionType::Deny, PatternType::Literal) if star => return false,
            (PermissionType::Deny, PatternType::Literal) => {
                deny_literal.insert(p.name.clone());
            }
            (PermissionType::Deny, _) => {
                deny_prefixed.insert(p.name.clone());
            }
            (_, PatternType::Literal) if star => wildcard_allow = true,
            (_, pattern_type) => allows.push((pattern_type, &p.name)),
        }
    }
    if wildcard_allow {
        return true;
    }
    allows.iter().any(|&(pattern_type, name)| {
        if pattern_type == PatternType::Literal && deny_literal.contains(name) {
            return false;
        }
        let mut prefix = String::new();
        !name.chars().any(|c| {
            prefix.push(c);
            deny_prefixed.contains(&prefix)
        })
    })
}

impl World {
    fn random(rng: &mut SmallRng, shape: &Shape) -> World {
        let mut principals: Vec<String> = (0..shape.principals)
            .map(|i| format!("User:u{i}"))
            .collect();
        principals.push("Group:u0".into());
        let super_users = if shape.open_settings || rng.random_bool(0.5) {
            vec!["User:u0".to_string()]
        } else {
            Vec::new()
        };
        let settings = AuthorizerSettings {
            super_users,
            allow_everyone_if_no_acl_found: shape.open_settings || rng.random_bool(0.5),
        };
        let no_wildcard = pick(rng, TYPES);
        let mut world = World {
            bindings: Vec::new(),
            settings,
            principals,
            no_wildcard,
        };
        world.bindings = (0..shape.bindings)
            .map(|_| world.random_binding(rng, shape))
            .collect();
        world
    }

    fn random_binding(&self, rng: &mut SmallRng, shape: &Shape) -> AclBinding {
        let resource_type = pick(rng, TYPES);
        let pattern = match rng.random_range(0..100) {
            0..3 if resource_type != self.no_wildcard => {
                ResourcePattern::literal(resource_type, "*")
            }
            0..55 => ResourcePattern::literal(resource_type, word(rng, shape, shape.literal_len)),
            _ => ResourcePattern::prefixed(resource_type, word(rng, shape, shape.prefix_len)),
        };
        let principal = if rng.random_bool(0.08) {
            WILDCARD_PRINCIPAL.to_string()
        } else {
            self.principals[rng.random_range(0..self.principals.len())].clone()
        };
        let host = if rng.random_bool(0.5) {
            "*"
        } else {
            pick(rng, ACL_HOSTS)
        };
        let operation = if rng.random_bool(0.1) {
            AclOperation::All
        } else {
            random_op(rng)
        };
        let permission = if rng.random_bool(0.25) {
            PermissionType::Deny
        } else {
            PermissionType::Allow
        };
        AclBinding::new(
            pattern,
            AccessControlEntry::new(principal, host, operation, permission),
        )
    }

    fn query(&self, rng: &mut SmallRng, shape: &Shape) -> Query {
        let principal = match rng.random_range(0..20) {
            0 => "User:outsider".to_string(),
            1 => WILDCARD_PRINCIPAL.to_string(),
            _ => self.principals[rng.random_range(0..self.principals.len())].clone(),
        };
        let (resource_type, name) = match rng.random_range(0..10) {
            // A name some binding was made for, perhaps longer, so prefixes get exercised.
            0..6 => {
                let b = &self.bindings[rng.random_range(0..self.bindings.len())];
                let mut name = b.pattern.name.replace('*', "");
                if rng.random_bool(0.5) {
                    name.push_str(&word(rng, shape, (1, 3)));
                }
                (b.pattern.resource_type, name)
            }
            // Likely covered by nothing: starts outside the alphabet.
            6 => (pick(rng, TYPES), format!("z{}", word(rng, shape, (0, 3)))),
            _ => (pick(rng, TYPES), word(rng, shape, shape.literal_len)),
        };
        let op = if rng.random_bool(0.02) {
            AclOperation::All
        } else {
            random_op(rng)
        };
        Query {
            principal,
            host: pick(rng, CLIENT_HOSTS),
            op,
            resource_type,
            name,
        }
    }
}

fn pick<T: Copy>(rng: &mut SmallRng, from: &[T]) -> T {
    from[rng.random_range(0..from.len())]
}

fn word(rng: &mut SmallRng, shape: &Shape, (min, max): (usize, usize)) -> String {
    let len = rng.random_range(min..=max);
    (0..len)
        .map(|_| char::from(pick(rng, shape.alphabet)))
        .collect()
}

/// A concrete operation other than ALL (callers add it), with DESCRIBE and DESCRIBE_CONFIGS
/// weighted up so that implication is exercised often.
fn random_op(rng: &mut SmallRng) -> AclOperation {
    match rng.random_range(0..4) {
        0 => AclOperation::Describe,
        1 => AclOperation::DescribeConfigs,
        _ => AclOperation::from_i8(rng.random_range(3..=15)),
    }
}
