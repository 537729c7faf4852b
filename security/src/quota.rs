//! Kafka's client quotas as a pure library: the quota entities and their configs
//! (AlterClientQuotas / DescribeClientQuotas), which config applies to a connection, the
//! windowed rate Kafka measures and the throttle time it answers with.
//!
//! The broker owns the metadata and the clock: it replays quota records into [`QuotaConfigs`],
//! resolves the quota of each request with [`QuotaConfigs::resolve`] (or
//! [`QuotaConfigs::resolve_ip`] for a new connection) and records the request in a
//! [`QuotaTracker`], passing a monotonic `now_ms`. Nothing here reads a clock.
//!
//! What `record` is given, per key (Kafka's units):
//!
//! | key | recorded value | quota unit |
//! | --- | --- | --- |
//! | `producer_byte_rate` | bytes of the produce request | bytes/s |
//! | `consumer_byte_rate` | bytes of the fetch response | bytes/s |
//! | `request_percentage` | [`request_time_percentage`] of the thread nanos | % of one thread |
//! | `controller_mutation_rate` | partitions created or deleted | partitions/s (token bucket) |
//! | `connection_creation_rate` | 1 per accepted connection of the IP | connections/s |
//!
//! Invariants: every value stored in [`QuotaConfigs`] passed Kafka's controller validation
//! (positive, integral for LONG and INT keys, a key that applies to the entity's type), so a
//! resolved quota is always `> 0`; every stored entity is valid ([`QuotaEntity::validate`]).
//! Entity names are kept as the client sent them (Kafka's metadata keeps them unsanitized).

mod config;
mod rate;
mod tracker;

use std::fmt;
use std::net::IpAddr;

pub use config::{DescribedQuotas, MatchType, QuotaConfigs, QuotaFilterComponent, ResolvedQuota};
pub use rate::{
    bounded_throttle_time_ms, request_time_percentage, throttle_time_ms,
    token_bucket_throttle_time_ms, TokenBucket, WindowedRate, MAX_THROTTLE_TIME_MS,
};
pub use tracker::{QuotaTracker, QuotaWindowConfig, INACTIVE_SENSOR_EXPIRATION_MS};

/// Kafka's entity type of a user (`ClientQuotaEntity.USER`).
pub const USER: &str = "user";
/// Kafka's entity type of a client id (`ClientQuotaEntity.CLIENT_ID`).
pub const CLIENT_ID: &str = "client-id";
/// Kafka's entity type of a client IP (`ClientQuotaEntity.IP`).
pub const IP: &str = "ip";

/// Kafka's error code INVALID_REQUEST.
const INVALID_REQUEST: i16 = 42;
/// Kafka's error code UNSUPPORTED_VERSION (answered for an unknown entity type in a filter).
const UNSUPPORTED_VERSION: i16 = 35;

/// A quota config key, spelled as Kafka spells it in [`QuotaKey::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKey {
    /// `producer_byte_rate`: bytes/s of produce requests (a LONG config).
    ProducerByteRate,
    /// `consumer_byte_rate`: bytes/s of fetch responses (a LONG config).
    ConsumerByteRate,
    /// `request_percentage`: % of one request-handling thread (a DOUBLE config).
    RequestPercentage,
    /// `controller_mutation_rate`: partitions created/deleted per second (a DOUBLE config).
    ControllerMutationRate,
    /// `connection_creation_rate`: new connections per second of one IP (an INT config).
    ConnectionCreationRate,
}

/// The type Kafka's `QuotaConfig` defines for a key; it decides the value checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConfigType {
    Int,
    Long,
    Double,
}

impl QuotaKey {
    /// Every key, user/client-id keys first.
    pub const ALL: [QuotaKey; 5] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
        QuotaKey::ConnectionCreationRate,
    ];

    /// Kafka's config name.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
            QuotaKey::ConnectionCreationRate => "connection_creation_rate",
        }
    }

    /// The key of a config name, if Kafka knows it.
    pub fn from_name(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the key belongs to IP entities (only `connection_creation_rate` does; the
    /// others belong to user and client-id entities).
    pub fn is_ip_key(self) -> bool {
        self == QuotaKey::ConnectionCreationRate
    }

    fn config_type(self) -> ConfigType {
        match self {
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate => ConfigType::Long,
            QuotaKey::RequestPercentage | QuotaKey::ControllerMutationRate => ConfigType::Double,
            QuotaKey::ConnectionCreationRate => ConfigType::Int,
        }
    }

    /// Kafka's controller checks of a value (`ClientQuotaControlManager.validateQuotaKeyValue`),
    /// plus a NaN check Kafka lacks (a NaN would pass its `value <= 0` test and then poison
    /// every comparison of the rate).
    fn validate_value(self, value: f64) -> Result<(), QuotaError> {
        let key = self.name();
        if value.is_nan() {
            return Err(QuotaError::NotANumber { key });
        }
        if value <= 0.0 {
            return Err(QuotaError::NotPositive { key, value });
        }
        let type_name = match self.config_type() {
            ConfigType::Double => return Ok(()),
            ConfigType::Int if value > f64::from(i32::MAX) => "an INT",
            ConfigType::Long if value > i64::MAX as f64 => "a LONG",
            ConfigType::Int | ConfigType::Long => {
                // Kafka's tolerance: the remainder, not the distance to the nearest integer.
                return if (value % 1.0).abs() > 1e-6 {
                    Err(QuotaError::Fractional { key })
                } else {
                    Ok(())
                };
            }
        };
        Err(QuotaError::TooLarge { key, type_name })
    }
}

impl fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of one entity component: a name, or the component's default
/// (`<default>`, a null name on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityName {
    Named(String),
    Default,
}

impl EntityName {
    /// A named component.
    pub fn named(name: impl Into<String>) -> Self {
        EntityName::Named(name.into())
    }

    /// The wire form: `None` for the default.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Named(n) => Some(n),
            EntityName::Default => None,
        }
    }

    /// From the wire form (`None` is the default).
    pub fn from_wire(name: Option<&str>) -> Self {
        name.map_or(EntityName::Default, EntityName::named)
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_wire().unwrap_or("<default>"))
    }
}

/// A quota entity: a user, a client id, both, or an IP alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// `/users/<user>` (or `/users/<default>`).
    pub fn user(user: EntityName) -> Self {
        QuotaEntity {
            user: Some(user),
            client_id: None,
            ip: None,
        }
    }

    /// `/clients/<client-id>` (or `/clients/<default>`).
    pub fn client_id(client_id: EntityName) -> Self {
        QuotaEntity {
            user: None,
            client_id: Some(client_id),
            ip: None,
        }
    }

    /// `/users/<user>/clients/<client-id>`.
    pub fn user_client(user: EntityName, client_id: EntityName) -> Self {
        QuotaEntity {
            user: Some(user),
            client_id: Some(client_id),
            ip: None,
        }
    }

    /// `/ips/<ip>` (or `/ips/<default>`).
    pub fn ip(ip: EntityName) -> Self {
        QuotaEntity {
            user: None,
            client_id: None,
            ip: Some(ip),
        }
    }

    /// An entity from the wire's (entity type, entity name) pairs, checked as Kafka's
    /// controller checks an AlterClientQuotas entity.
    pub fn from_components<S: AsRef<str>>(
        components: &[(S, Option<S>)],
    ) -> Result<QuotaEntity, QuotaError> {
        let mut entity = QuotaEntity {
            user: None,
            client_id: None,
            ip: None,
        };
        for (entity_type, name) in components {
            let entity_type = entity_type.as_ref();
            let slot = match entity_type {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                IP => &mut entity.ip,
                _ => {
                    return Err(QuotaError::UnknownEntityType {
                        entity_type: entity_type.into(),
                    })
                }
            };
            if slot.is_some() {
                return Err(QuotaError::DuplicateEntityType {
                    entity_type: entity_type.into(),
                });
            }
            *slot = Some(EntityName::from_wire(name.as_ref().map(AsRef::as_ref)));
        }
        entity.validate()?;
        Ok(entity)
    }

    /// The (entity type, name) pairs present, in the order user, client-id, ip.
    pub fn components(&self) -> Vec<(&'static str, &EntityName)> {
        [
            (USER, &self.user),
            (CLIENT_ID, &self.client_id),
            (IP, &self.ip),
        ]
        .into_iter()
        .filter_map(|(t, n)| n.as_ref().map(|n| (t, n)))
        .collect()
    }

    /// The component of one entity type (`"user"`, `"client-id"`, `"ip"`).
    pub fn component(&self, entity_type: &str) -> Option<&EntityName> {
        match entity_type {
            USER => self.user.as_ref(),
            CLIENT_ID => self.client_id.as_ref(),
            IP => self.ip.as_ref(),
            _ => None,
        }
    }

    /// Kafka's rules on an entity: not empty, no empty name, an IP alone and a valid IP
    /// address. Kafka also accepts a host name it can resolve; resolving is I/O, so here only
    /// IP literals are valid (the broker may resolve a name and pass the address).
    pub fn validate(&self) -> Result<(), QuotaError> {
        let components = self.components();
        if components.is_empty() {
            return Err(QuotaError::EmptyEntity);
        }
        if let Some((entity_type, _)) = components.iter().find(|(_, n)| n.as_wire() == Some("")) {
            return Err(QuotaError::EmptyName { entity_type });
        }
        if let Some(ip) = &self.ip {
            if self.user.is_some() || self.client_id.is_some() {
                return Err(QuotaError::IpCombined);
            }
            if let EntityName::Named(name) = ip {
                if name.parse::<IpAddr>().is_err() {
                    return Err(QuotaError::InvalidIp { name: name.clone() });
                }
            }
        }
        Ok(())
    }

    /// Whether this is an IP entity (which takes only `connection_creation_rate`).
    pub fn is_ip(&self) -> bool {
        self.ip.is_some()
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .components()
            .iter()
            .map(|(t, n)| format!("{t}={n}"))
            .collect();
        write!(f, "ClientQuotaEntity({})", parts.join(", "))
    }
}

/// Why a quota entity, config or filter is refused. The texts are Kafka's, so clients show
/// what a Kafka broker would show; [`QuotaError::error_code`] gives the code to answer with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaError {
    #[error("Invalid empty client quota entity")]
    EmptyEntity,
    #[error("Empty {entity_type} not supported")]
    EmptyName { entity_type: &'static str },
    #[error("Unhandled client quota entity type: {entity_type}")]
    UnknownEntityType { entity_type: String },
    #[error("Invalid client quota entity, duplicate entity entry {entity_type}")]
    DuplicateEntityType { entity_type: String },
    #[error(
        "Invalid quota entity combination, IP entity should not be combined with User or ClientId"
    )]
    IpCombined,
    #[error("{name} is not a valid IP or resolvable host.")]
    InvalidIp { name: String },
    /// A key twice in one entity's ops. (Kafka then overwrites this answer with
    /// [`QuotaError::DuplicateEntity`]'s text; this one says what is wrong.)
    #[error("Duplicate quota key {key} not updating quota for this entity {entity}")]
    DuplicateKey { key: String, entity: String },
    /// An entity twice in one AlterClientQuotas request: for the broker, which sees the
    /// whole request.
    #[error("Ignoring duplicate entity {entity}")]
    DuplicateEntity { entity: String },
    /// An unknown key, or a key of another entity type (Kafka answers both alike).
    #[error("Invalid configuration key {key}")]
    InvalidKey { key: String },
    #[error("Quota {key} must be greater than 0")]
    NotPositive { key: &'static str, value: f64 },
    #[error("Quota {key} must be a number")]
    NotANumber { key: &'static str },
    #[error("Proposed value for {key} is too large for {type_name}.")]
    TooLarge {
        key: &'static str,
        type_name: &'static str,
    },
    #[error("{key} cannot be a fractional value.")]
    Fractional { key: &'static str },
    #[error("Invalid empty entity type.")]
    EmptyFilterType,
    #[error("Entity type {entity_type} cannot appear more than once in the filter.")]
    DuplicateFilterType { entity_type: String },
    #[error("Unsupported entity type {entity_type}")]
    UnsupportedFilterType { entity_type: String },
    #[error("Unknown match type {match_type}")]
    UnknownMatchType { match_type: i8 },
    #[error("Request specified MATCH_TYPE_EXACT, but set match string to null.")]
    ExactWithoutMatch,
    #[error("Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")]
    DefaultWithMatch,
    #[error("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")]
    SpecifiedWithMatch,
    #[error(
        "Invalid entity filter component combination. IP filter component should not be used \
         with user or clientId filter component."
    )]
    IpFilterCombined,
}

impl QuotaError {
    /// Kafka's error code for this refusal: UNSUPPORTED_VERSION for an unknown entity type in
    /// a DescribeClientQuotas filter (Kafka throws UnsupportedVersionException there),
    /// INVALID_REQUEST otherwise.
    pub fn error_code(&self) -> i16 {
        match self {
            QuotaError::UnsupportedFilterType { .. } => UNSUPPORTED_VERSION,
            _ => INVALID_REQUEST,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str) -> EntityName {
        EntityName::named(n)
    }

    #[test]
    fn key_names_round_trip_and_ip_keys_are_only_connection_rate() {
        for key in QuotaKey::ALL {
            assert_eq!(QuotaKey::from_name(key.name()), Some(key));
            assert_eq!(key.is_ip_key(), key == QuotaKey::ConnectionCreationRate);
        }
        assert_eq!(QuotaKey::from_name("producer-byte-rate"), None);
    }

    #[test]
    fn value_checks_follow_kafkas_controller() {
        let p = QuotaKey::ProducerByteRate;
        assert_eq!(p.validate_value(1024.0), Ok(()));
        assert_eq!(p.validate_value(1_235.000_000_1), Ok(()));
        assert_eq!(
            p.validate_value(2.245),
            Err(QuotaError::Fractional { key: p.name() })
        );
        // Kafka's remainder test also refuses a value just below an integer.
        assert!(p.validate_value(1_234.999_999_9).is_err());
        assert_eq!(
            p.validate_value(0.0),
            Err(QuotaError::NotPositive {
                key: p.name(),
                value: 0.0
            })
        );
        assert!(matches!(
            p.validate_value(-2.0),
            Err(QuotaError::NotPositive { .. })
        ));
        assert_eq!(
            p.validate_value(3.7e19),
            Err(QuotaError::TooLarge {
                key: p.name(),
                type_name: "a LONG"
            })
        );
        assert_eq!(
            p.validate_value(f64::NAN),
            Err(QuotaError::NotANumber { key: p.name() })
        );
        let c = QuotaKey::ConnectionCreationRate;
        assert!(matches!(
            c.validate_value(3e9),
            Err(QuotaError::TooLarge {
                type_name: "an INT",
                ..
            })
        ));
        assert_eq!(
            QuotaKey::RequestPercentage.validate_value(56.623_67),
            Ok(())
        );
        assert_eq!(QuotaKey::ControllerMutationRate.validate_value(0.5), Ok(()));
    }

    #[test]
    fn entity_rules() {
        assert_eq!(QuotaEntity::user(named("alice")).validate(), Ok(()));
        assert_eq!(
            QuotaEntity::user_client(EntityName::Default, named("app")).validate(),
            Ok(())
        );
        assert_eq!(QuotaEntity::ip(named("10.0.0.1")).validate(), Ok(()));
        assert_eq!(QuotaEntity::ip(named("::1")).validate(), Ok(()));
        assert_eq!(QuotaEntity::ip(EntityName::Default).validate(), Ok(()));
        let empty = QuotaEntity {
            user: None,
            client_id: None,
            ip: None,
        };
        assert_eq!(empty.validate(), Err(QuotaError::EmptyEntity));
        assert_eq!(
            QuotaEntity::client_id(named("")).validate(),
            Err(QuotaError::EmptyName {
                entity_type: CLIENT_ID
            })
        );
        let mixed = QuotaEntity {
            ip: Some(named("10.0.0.1")),
            ..QuotaEntity::user(named("a"))
        };
        assert_eq!(mixed.validate(), Err(QuotaError::IpCombined));
        assert_eq!(
            QuotaEntity::ip(named("example.invalid")).validate(),
            Err(QuotaError::InvalidIp {
                name: "example.invalid".into()
            })
        );
    }

    #[test]
    fn entity_from_wire_components() {
        let e = QuotaEntity::from_components(&[("user", Some("alice")), ("client-id", None)]);
        assert_eq!(
            e,
            Ok(QuotaEntity::user_client(
                named("alice"),
                EntityName::Default
            ))
        );
        assert_eq!(
            QuotaEntity::from_components(&[("user", Some("a")), ("user", Some("b"))]),
            Err(QuotaError::DuplicateEntityType {
                entity_type: "user".into()
            })
        );
        assert_eq!(
            QuotaEntity::from_components(&[("group", Some("g"))]),
            Err(QuotaError::UnknownEntityType {
                entity_type: "group".into()
            })
        );
        assert_eq!(
            QuotaEntity::from_components::<&str>(&[]),
            Err(QuotaError::EmptyEntity)
        );
        let e = QuotaEntity::user_client(named("alice"), EntityName::Default);
        assert_eq!(
            e.to_string(),
            "ClientQuotaEntity(user=alice, client-id=<default>)"
        );
        assert_eq!(
            e.components(),
            vec![(USER, &named("alice")), (CLIENT_ID, &EntityName::Default)]
        );
    }

    #[test]
    fn error_codes() {
        assert_eq!(QuotaError::EmptyEntity.error_code(), 42);
        let unsupported = QuotaError::UnsupportedFilterType {
            entity_type: "group".into(),
        };
        assert_eq!(unsupported.error_code(), 35);
    }

    #[test]
    fn error_texts_are_kafkas() {
        let zero = QuotaError::NotPositive {
            key: "producer_byte_rate",
            value: 0.0,
        };
        assert_eq!(
            zero.to_string(),
            "Quota producer_byte_rate must be greater than 0"
        );
        let fractional = QuotaError::Fractional {
            key: "consumer_byte_rate",
        };
        assert_eq!(
            fractional.to_string(),
            "consumer_byte_rate cannot be a fractional value."
        );
        let expected = concat!(
            "Invalid entity filter component combination. IP filter component should not be ",
            "used with user or clientId filter component."
        );
        assert_eq!(QuotaError::IpFilterCombined.to_string(), expected);
        let ip = QuotaError::InvalidIp {
            name: "example.invalid".into(),
        };
        assert_eq!(
            ip.to_string(),
            "example.invalid is not a valid IP or resolvable host."
        );
    }
}
