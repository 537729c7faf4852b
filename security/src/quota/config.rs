//! The quota configs of every entity: altered as Kafka's controller alters them, described with
//! Kafka's DescribeClientQuotas filter, and resolved for a connection with Kafka's precedence.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{EntityName, QuotaEntity, QuotaError, QuotaKey, CLIENT_ID, IP, USER};

/// A DescribeClientQuotas match type (the request's `MatchType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    /// 0: the component's name equals the given name.
    Exact,
    /// 1: the component is the default (`<default>`).
    Default,
    /// 2: Kafka's MATCH_TYPE_SPECIFIED, the entity has the component, with any name
    /// (the default included, as Kafka's metadata image matches it).
    Specified,
}

impl MatchType {
    /// The match type of a wire value.
    pub fn from_i8(value: i8) -> Result<MatchType, QuotaError> {
        match value {
            0 => Ok(MatchType::Exact),
            1 => Ok(MatchType::Default),
            2 => Ok(MatchType::Specified),
            other => Err(QuotaError::UnknownMatchType { match_type: other }),
        }
    }
}

/// One component of a DescribeClientQuotas filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaFilterComponent {
    /// `"user"`, `"client-id"` or `"ip"`.
    pub entity_type: String,
    pub match_type: MatchType,
    /// The name to match (only with [`MatchType::Exact`]).
    pub name: Option<String>,
}

/// The quota that applies to a connection, the entity whose config supplied it, and the
/// sensor that measures it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedQuota {
    /// The quota value (always `> 0`).
    pub quota: f64,
    /// The config entity that supplied the value (may hold `<default>` names).
    pub source: QuotaEntity,
    /// The sensor's key, Kafka's metric tags: only named components, and the clients that
    /// share it share one rate. A default quota still meters each user (or client id)
    /// apart; a `/users/<user>` quota meters all the user's client ids together.
    pub sensor: QuotaEntity,
}

/// One entity of a DescribeClientQuotas answer with its (key name, value) pairs.
pub type DescribedQuotas = (QuotaEntity, Vec<(String, f64)>);

/// The quota configs of all entities: entity → key → value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuotaConfigs {
    entities: BTreeMap<QuotaEntity, BTreeMap<QuotaKey, f64>>,
}

impl QuotaConfigs {
    /// No quotas.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (`Some`) or removes (`None`) one key of an entity, checked as [`Self::alter`].
    pub fn set(
        &mut self,
        entity: &QuotaEntity,
        key: QuotaKey,
        value: Option<f64>,
    ) -> Result<(), QuotaError> {
        self.alter(entity, &[(key.name(), value)], false)
    }

    /// One entity of AlterClientQuotas, as Kafka's controller applies it: no key twice, a valid
    /// entity, every set key valid for the entity's type with a valid value; then all the
    /// changes apply, or none when one is refused (or when `validate_only`). Removing a key
    /// the entity lacks, even an unknown key, does nothing (Kafka checks only set values).
    pub fn alter<K: AsRef<str>>(
        &mut self,
        entity: &QuotaEntity,
        ops: &[(K, Option<f64>)],
        validate_only: bool,
    ) -> Result<(), QuotaError> {
        for (i, (key, _)) in ops.iter().enumerate() {
            if ops[..i].iter().any(|(k, _)| k.as_ref() == key.as_ref()) {
                let (key, entity) = (key.as_ref().to_owned(), entity.to_string());
                return Err(QuotaError::DuplicateKey { key, entity });
            }
        }
        entity.validate()?;
        let mut changes = Vec::with_capacity(ops.len());
        for (name, value) in ops {
            let name = name.as_ref();
            let key = QuotaKey::from_name(name);
            match (key, value) {
                (Some(key), None) => changes.push((key, None)),
                (None, None) => {}
                (Some(key), Some(v)) if key.is_ip_key() == entity.is_ip() => {
                    key.validate_value(*v)?;
                    changes.push((key, Some(*v)));
                }
                (_, Some(_)) => {
                    return Err(QuotaError::InvalidKey {
                        key: name.to_owned(),
                    })
                }
            }
        }
        if !validate_only {
            self.apply(entity, changes);
        }
        Ok(())
    }

    /// The value of one key of one entity.
    pub fn get(&self, entity: &QuotaEntity, key: QuotaKey) -> Option<f64> {
        self.entities.get(entity)?.get(&key).copied()
    }

    /// Every entity with its keys, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<QuotaKey, f64>)> {
        self.entities.iter()
    }

    /// Whether no entity has a quota.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The quota of a (user, client id) connection for `key`, by Kafka's precedence
    /// (ClientQuotaManager's default callback), first found wins:
    /// `/users/<user>/clients/<client-id>`, `/users/<user>/clients/<default>`, `/users/<user>`,
    /// `/users/<default>/clients/<client-id>`, `/users/<default>/clients/<default>`,
    /// `/users/<default>`, `/clients/<client-id>`, `/clients/<default>`.
    ///
    /// An empty user (or client id) has no levels that name it: an empty client id gets only
    /// the `/users/...` levels without a client id, which is where Kafka's metric tags lead.
    /// `connection_creation_rate` is an IP quota: see [`Self::resolve_ip`].
    pub fn resolve(&self, user: &str, client_id: &str, key: QuotaKey) -> Option<ResolvedQuota> {
        if key.is_ip_key() {
            return None;
        }
        let (u, c) = (EntityName::named(user), EntityName::named(client_id));
        let d = || Some(EntityName::Default);
        // (config user, config client id, metered by user, metered by client id)
        let levels = [
            (Some(u.clone()), Some(c.clone()), true, true),
            (Some(u.clone()), d(), true, true),
            (Some(u.clone()), None, true, false),
            (d(), Some(c.clone()), true, true),
            (d(), d(), true, true),
            (d(), None, true, false),
            (None, Some(c), false, true),
            (None, d(), false, true),
        ];
        levels.into_iter().find_map(|(cu, cc, by_user, by_client)| {
            let needs_user = cu.is_some();
            let needs_client = cc.is_some();
            if (needs_user && user.is_empty()) || (needs_client && client_id.is_empty()) {
                return None;
            }
            let source = QuotaEntity {
                user: cu,
                client_id: cc,
                ip: None,
            };
            let quota = self.get(&source, key)?;
            let sensor = QuotaEntity {
                user: by_user.then(|| EntityName::named(user)),
                client_id: by_client.then(|| EntityName::named(client_id)),
                ip: None,
            };
            Some(ResolvedQuota {
                quota,
                source,
                sensor,
            })
        })
    }

    /// The `connection_creation_rate` of a client IP: `/ips/<ip>`, else `/ips/<default>`.
    /// Names are compared as addresses (`::1` is `0:0:0:0:0:0:0:1`), as Kafka parses them.
    /// The sensor is the IP itself.
    pub fn resolve_ip(&self, ip: IpAddr) -> Option<ResolvedQuota> {
        let key = QuotaKey::ConnectionCreationRate;
        let canonical = QuotaEntity::ip(EntityName::named(ip.to_string()));
        let sensor = canonical.clone();
        if let Some(quota) = self.get(&canonical, key) {
            return Some(ResolvedQuota {
                quota,
                source: canonical,
                sensor,
            });
        }
        // IP entities sort first (no user, no client id); a name written otherwise than
        // `IpAddr`'s display is found by parsing.
        let named = self
            .entities
            .iter()
            .take_while(|(e, _)| e.user.is_none() && e.client_id.is_none())
            .filter(|(e, _)| match &e.ip {
                Some(EntityName::Named(n)) => n.parse::<IpAddr>().ok() == Some(ip),
                _ => false,
            })
            .find_map(|(e, keys)| keys.get(&key).map(|q| (e.clone(), *q)));
        let (source, quota) = named.or_else(|| {
            let default = QuotaEntity::ip(EntityName::Default);
            self.get(&default, key).map(|q| (default, q))
        })?;
        Some(ResolvedQuota {
            quota,
            source,
            sensor,
        })
    }

    /// DescribeClientQuotas: the entities matching every filter component, with their
    /// quotas. With `strict`, an entity must also have no component beyond the filter's; an
    /// empty filter matches every entity, or none when strict. Kafka's checks of the filter
    /// come first (see [`QuotaError`]).
    pub fn describe(
        &self,
        filter: &[QuotaFilterComponent],
        strict: bool,
    ) -> Result<Vec<DescribedQuotas>, QuotaError> {
        check_filter(filter)?;
        if filter.is_empty() && strict {
            return Ok(Vec::new());
        }
        let matches = |entity: &QuotaEntity| {
            filter.iter().all(|c| component_matches(entity, c))
                && (!strict || entity.components().len() == filter.len())
        };
        Ok(self
            .entities
            .iter()
            .filter(|(entity, _)| matches(entity))
            .map(|(entity, keys)| {
                let values = keys
                    .iter()
                    .map(|(k, v)| (k.name().to_owned(), *v))
                    .collect();
                (entity.clone(), values)
            })
            .collect())
    }

    fn apply(&mut self, entity: &QuotaEntity, changes: Vec<(QuotaKey, Option<f64>)>) {
        let keys = self.entities.entry(entity.clone()).or_default();
        for (key, value) in changes {
            match value {
                Some(v) => keys.insert(key, v),
                None => keys.remove(&key),
            };
        }
        if keys.is_empty() {
            self.entities.remove(entity);
        }
    }
}

/// Kafka's checks of a DescribeClientQuotas filter, in Kafka's order.
fn check_filter(filter: &[QuotaFilterComponent]) -> Result<(), QuotaError> {
    for (i, c) in filter.iter().enumerate() {
        let entity_type = c.entity_type.as_str();
        if entity_type.is_empty() {
            return Err(QuotaError::EmptyFilterType);
        }
        if filter[..i].iter().any(|p| p.entity_type == entity_type) {
            return Err(QuotaError::DuplicateFilterType {
                entity_type: entity_type.into(),
            });
        }
        if ![USER, CLIENT_ID, IP].contains(&entity_type) {
            return Err(QuotaError::UnsupportedFilterType {
                entity_type: entity_type.into(),
            });
        }
        match (c.match_type, &c.name) {
            (MatchType::Exact, None) => return Err(QuotaError::ExactWithoutMatch),
            (MatchType::Default, Some(_)) => return Err(QuotaError::DefaultWithMatch),
            (MatchType::Specified, Some(_)) => return Err(QuotaError::SpecifiedWithMatch),
            _ => {}
        }
    }
    let has = |t: &str| filter.iter().any(|c| c.entity_type == t);
    if has(IP) && (has(USER) || has(CLIENT_ID)) {
        return Err(QuotaError::IpFilterCombined);
    }
    Ok(())
}

fn component_matches(entity: &QuotaEntity, c: &QuotaFilterComponent) -> bool {
    let Some(name) = entity.component(&c.entity_type) else {
        return false;
    };
    match c.match_type {
        MatchType::Exact => name.as_wire() == c.name.as_deref(),
        MatchType::Default => *name == EntityName::Default,
        MatchType::Specified => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str) -> EntityName {
        EntityName::named(n)
    }

    fn def() -> EntityName {
        EntityName::Default
    }

    const P: QuotaKey = QuotaKey::ProducerByteRate;

    /// The 8 levels, most specific first, with the value each is given in the table test.
    fn levels() -> Vec<QuotaEntity> {
        vec![
            QuotaEntity::user_client(named("alice"), named("app")),
            QuotaEntity::user_client(named("alice"), def()),
            QuotaEntity::user(named("alice")),
            QuotaEntity::user_client(def(), named("app")),
            QuotaEntity::user_client(def(), def()),
            QuotaEntity::user(def()),
            QuotaEntity::client_id(named("app")),
            QuotaEntity::client_id(def()),
        ]
    }

    #[test]
    fn precedence_walks_all_eight_levels() {
        let mut configs = QuotaConfigs::new();
        for (i, entity) in levels().iter().enumerate() {
            configs
                .set(entity, P, Some(1000.0 * (i as f64 + 1.0)))
                .unwrap();
        }
        // Expected sensor per level: (metered by user, metered by client id).
        let sensors = [
            (true, true),
            (true, true),
            (true, false),
            (true, true),
            (true, true),
            (true, false),
            (false, true),
            (false, true),
        ];
        for (i, entity) in levels().iter().enumerate() {
            let r = configs.resolve("alice", "app", P).expect("a level is left");
            assert_eq!(r.source, *entity, "level {}", i + 1);
            assert_eq!(r.quota, 1000.0 * (i as f64 + 1.0));
            let (by_user, by_client) = sensors[i];
            assert_eq!(
                r.sensor.user,
                by_user.then(|| named("alice")),
                "level {}",
                i + 1
            );
            assert_eq!(
                r.sensor.client_id,
                by_client.then(|| named("app")),
                "level {}",
                i + 1
            );
            configs.set(entity, P, None).unwrap();
        }
        assert_eq!(configs.resolve("alice", "app", P), None);
        assert!(configs.is_empty());
    }

    #[test]
    fn precedence_ignores_other_users_clients_and_keys() {
        let mut configs = QuotaConfigs::new();
        configs
            .set(&QuotaEntity::user(named("bob")), P, Some(1.0))
            .unwrap();
        let app = QuotaEntity::client_id(named("app"));
        configs
            .set(&app, QuotaKey::ConsumerByteRate, Some(2.0))
            .unwrap();
        assert_eq!(configs.resolve("alice", "app", P), None);
        let r = configs
            .resolve("alice", "app", QuotaKey::ConsumerByteRate)
            .unwrap();
        assert_eq!((r.quota, r.source), (2.0, app));
        assert_eq!(r.sensor, QuotaEntity::client_id(named("app")));
    }

    #[test]
    fn empty_client_id_gets_only_user_levels() {
        let mut configs = QuotaConfigs::new();
        configs
            .set(&QuotaEntity::client_id(def()), P, Some(1.0))
            .unwrap();
        configs
            .set(&QuotaEntity::user_client(def(), def()), P, Some(2.0))
            .unwrap();
        assert_eq!(configs.resolve("alice", "", P), None);
        configs
            .set(&QuotaEntity::user(def()), P, Some(3.0))
            .unwrap();
        let r = configs.resolve("alice", "", P).unwrap();
        assert_eq!(
            (r.quota, r.sensor),
            (3.0, QuotaEntity::user(named("alice")))
        );
        assert_eq!(configs.resolve("", "app", P).map(|r| r.quota), Some(1.0));
    }

    #[test]
    fn ip_quota_precedence() {
        let mut configs = QuotaConfigs::new();
        let c = QuotaKey::ConnectionCreationRate;
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(configs.resolve_ip(ip), None);
        configs.set(&QuotaEntity::ip(def()), c, Some(5.0)).unwrap();
        let r = configs.resolve_ip(ip).unwrap();
        assert_eq!((r.quota, r.source), (5.0, QuotaEntity::ip(def())));
        assert_eq!(r.sensor, QuotaEntity::ip(named("10.0.0.1")));
        configs
            .set(&QuotaEntity::ip(named("10.0.0.1")), c, Some(7.0))
            .unwrap();
        assert_eq!(configs.resolve_ip(ip).map(|r| r.quota), Some(7.0));
        // A name written in a longer form is the same address.
        configs
            .set(&QuotaEntity::ip(named("0:0:0:0:0:0:0:1")), c, Some(9.0))
            .unwrap();
        let r = configs.resolve_ip("::1".parse().unwrap()).unwrap();
        assert_eq!((r.quota, r.sensor), (9.0, QuotaEntity::ip(named("::1"))));
        assert_eq!(configs.resolve("u", "c", c), None);
    }

    #[test]
    fn alter_checks_keys_for_the_entity_type() {
        let mut configs = QuotaConfigs::new();
        let user = QuotaEntity::user(named("alice"));
        let ip = QuotaEntity::ip(named("10.0.0.1"));
        let invalid = |k: &str| Err(QuotaError::InvalidKey { key: k.into() });
        let c = QuotaKey::ConnectionCreationRate;
        assert_eq!(
            configs.set(&user, c, Some(5.0)),
            invalid("connection_creation_rate")
        );
        assert_eq!(
            configs.set(&ip, P, Some(5.0)),
            invalid("producer_byte_rate")
        );
        assert_eq!(
            configs.alter(&user, &[("foobar", Some(1.0))], false),
            invalid("foobar")
        );
        assert_eq!(configs.set(&ip, c, Some(5.0)), Ok(()));
        for key in [P, QuotaKey::ConsumerByteRate, QuotaKey::RequestPercentage] {
            assert_eq!(configs.set(&user, key, Some(50.0)), Ok(()));
        }
        assert_eq!(
            configs.set(&user, QuotaKey::ControllerMutationRate, Some(0.5)),
            Ok(())
        );
        assert_eq!(configs.get(&user, QuotaKey::RequestPercentage), Some(50.0));
        assert_eq!(configs.get(&ip, c), Some(5.0));
    }

    #[test]
    fn alter_is_all_or_nothing() {
        let mut configs = QuotaConfigs::new();
        let user = QuotaEntity::user(named("alice"));
        let ops = [
            ("producer_byte_rate", Some(1000.0)),
            ("consumer_byte_rate", Some(1.5)),
        ];
        let refused = configs.alter(&user, &ops, false);
        assert_eq!(
            refused,
            Err(QuotaError::Fractional {
                key: "consumer_byte_rate"
            })
        );
        assert!(configs.is_empty());
        let dup = [
            ("producer_byte_rate", Some(1.0)),
            ("producer_byte_rate", None),
        ];
        assert!(matches!(
            configs.alter(&user, &dup, false),
            Err(QuotaError::DuplicateKey { .. })
        ));
        assert_eq!(configs.alter(&user, &ops[..1], true), Ok(()));
        assert!(configs.is_empty(), "validate_only changes nothing");
        assert_eq!(configs.alter(&user, &ops[..1], false), Ok(()));
        // Removing an absent or unknown key is a no-op, as in Kafka.
        let removals = [("consumer_byte_rate", None), ("foobar", None)];
        assert_eq!(configs.alter(&user, &removals, false), Ok(()));
        assert_eq!(configs.get(&user, P), Some(1000.0));
        let empty = QuotaEntity {
            user: None,
            client_id: None,
            ip: None,
        };
        assert_eq!(
            configs.alter(&empty, &ops[..1], false),
            Err(QuotaError::EmptyEntity)
        );
    }

    fn describe_fixture() -> QuotaConfigs {
        let mut configs = QuotaConfigs::new();
        let c = QuotaKey::ConnectionCreationRate;
        let user_entities = [
            QuotaEntity::user(named("alice")),
            QuotaEntity::user_client(named("alice"), named("app")),
            QuotaEntity::user(def()),
            QuotaEntity::client_id(named("app")),
            QuotaEntity::client_id(def()),
        ];
        for (i, e) in user_entities.iter().enumerate() {
            configs.set(e, P, Some(100.0 + i as f64)).unwrap();
        }
        configs
            .set(&QuotaEntity::ip(named("10.0.0.1")), c, Some(5.0))
            .unwrap();
        configs.set(&QuotaEntity::ip(def()), c, Some(6.0)).unwrap();
        configs
    }

    fn comp(t: &str, m: MatchType, name: Option<&str>) -> QuotaFilterComponent {
        QuotaFilterComponent {
            entity_type: t.into(),
            match_type: m,
            name: name.map(Into::into),
        }
    }

    fn described(filter: &[QuotaFilterComponent], strict: bool) -> Vec<QuotaEntity> {
        let found = describe_fixture().describe(filter, strict).unwrap();
        found.into_iter().map(|(e, _)| e).collect()
    }

    #[test]
    fn describe_exact_default_and_specified() {
        use MatchType::*;
        let alice = QuotaEntity::user(named("alice"));
        let alice_app = QuotaEntity::user_client(named("alice"), named("app"));
        let exact_alice = [comp(USER, Exact, Some("alice"))];
        assert_eq!(
            described(&exact_alice, false),
            vec![alice.clone(), alice_app.clone()]
        );
        assert_eq!(described(&exact_alice, true), vec![alice.clone()]);
        let default_user = [comp(USER, Default, None)];
        assert_eq!(
            described(&default_user, true),
            vec![QuotaEntity::user(def())]
        );
        let any_user = [comp(USER, Specified, None)];
        assert_eq!(described(&any_user, false).len(), 3);
        assert_eq!(
            described(&any_user, true),
            vec![alice.clone(), QuotaEntity::user(def())]
        );
        let both = [
            comp(USER, Exact, Some("alice")),
            comp(CLIENT_ID, Specified, None),
        ];
        assert_eq!(described(&both, true), vec![alice_app.clone()]);
        let any_client = [comp(CLIENT_ID, Specified, None)];
        let clients = described(&any_client, true);
        assert_eq!(
            clients,
            vec![
                QuotaEntity::client_id(named("app")),
                QuotaEntity::client_id(def())
            ]
        );
        let exact_ip = [comp(IP, Exact, Some("10.0.0.1"))];
        assert_eq!(
            described(&exact_ip, true),
            vec![QuotaEntity::ip(named("10.0.0.1"))]
        );
        assert_eq!(described(&[comp(IP, Specified, None)], false).len(), 2);
        assert_eq!(described(&[], false).len(), 7);
        assert!(described(&[], true).is_empty());
        assert!(described(&[comp(USER, Exact, Some("nobody"))], false).is_empty());
    }

    #[test]
    fn describe_returns_values_by_key_name() {
        let filter = [comp(IP, MatchType::Default, None)];
        let found = describe_fixture().describe(&filter, true).unwrap();
        let expected = vec![("connection_creation_rate".to_owned(), 6.0)];
        assert_eq!(found, vec![(QuotaEntity::ip(def()), expected)]);
    }

    #[test]
    fn describe_refuses_bad_filters() {
        use MatchType::*;
        let configs = describe_fixture();
        let err = |f: &[QuotaFilterComponent]| configs.describe(f, false).unwrap_err();
        assert_eq!(
            err(&[comp(USER, Exact, None)]),
            QuotaError::ExactWithoutMatch
        );
        assert_eq!(
            err(&[comp(USER, Default, Some("a"))]),
            QuotaError::DefaultWithMatch
        );
        assert_eq!(
            err(&[comp(USER, Specified, Some("a"))]),
            QuotaError::SpecifiedWithMatch
        );
        assert_eq!(
            err(&[comp("", Specified, None)]),
            QuotaError::EmptyFilterType
        );
        let dup = [comp(USER, Specified, None), comp(USER, Default, None)];
        assert_eq!(
            err(&dup),
            QuotaError::DuplicateFilterType {
                entity_type: USER.into()
            }
        );
        let group = err(&[comp("group", Specified, None)]);
        assert_eq!(group.error_code(), 35);
        let mixed = [comp(IP, Specified, None), comp(CLIENT_ID, Default, None)];
        assert_eq!(err(&mixed), QuotaError::IpFilterCombined);
        assert_eq!(MatchType::from_i8(2), Ok(Specified));
        assert_eq!(
            MatchType::from_i8(3),
            Err(QuotaError::UnknownMatchType { match_type: 3 })
        );
    }
}
