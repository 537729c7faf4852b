//! The cluster keys: roles, the controller quorum, listeners and the broker's place in the
//! cluster, spelled as Kafka's KRaft keys so an operator who runs Kafka already knows them.
//!
//! A node with no `process.roles` is the single-node broker it always was: one PLAINTEXT
//! listener and a one-voter quorum of itself. With `process.roles` it is part of a cluster and
//! the keys below must agree with each other; every disagreement is a start-up error naming
//! the key (Kafka's own checks where Kafka has one).

use super::{invalid, parse_num, ConfigError};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// What a node does (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves clients and holds partitions.
    pub broker: bool,
    /// Votes in the metadata quorum.
    pub controller: bool,
}

/// One member of `controller.quorum.voters`: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// Its `node.id`.
    pub id: i32,
    /// Host of its controller listener.
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

/// One entry of `listeners` or `advertised.listeners`: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name (`PLAINTEXT`, `CONTROLLER`, ...); `PLAINTEXT` when the entry has none.
    pub name: String,
    /// Host as written (empty: every interface).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Timings of the quorum and of broker sessions, and the offsets topic's replication
/// factor: the same in the keys as given and once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: i64,
    /// `controller.quorum.fetch.timeout.ms`.
    pub fetch_timeout_ms: i64,
    /// `controller.quorum.request.timeout.ms`.
    pub request_timeout_ms: i64,
    /// `controller.quorum.retry.backoff.ms`.
    pub retry_backoff_ms: i64,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i64,
    /// `broker.session.timeout.ms`.
    pub session_timeout_ms: i64,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            election_timeout_ms: 1_000,
            fetch_timeout_ms: 2_000,
            request_timeout_ms: 2_000,
            retry_backoff_ms: 20,
            heartbeat_interval_ms: 2_000,
            session_timeout_ms: 9_000,
            // Kafka's default; the controller caps it at the live brokers when it creates the
            // topic (a single node gets one replica).
            offsets_topic_replication_factor: 3,
        }
    }
}

/// The cluster keys as given, before they are checked against each other.
#[derive(Debug, Clone)]
pub struct ClusterKeys {
    /// `process.roles`; `None` for the single-node broker.
    pub roles: Option<Roles>,
    /// `controller.quorum.voters`.
    pub voters: Vec<Voter>,
    /// `listeners`.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners`.
    pub advertised: Vec<Listener>,
    /// `controller.listener.names`.
    pub controller_listener_names: Vec<String>,
    /// `listener.security.protocol.map`, when set.
    pub protocol_map: Option<BTreeMap<String, String>>,
    /// `inter.broker.listener.name`, when set.
    pub inter_broker_listener_name: Option<String>,
    /// `security.inter.broker.protocol`, when set.
    pub inter_broker_protocol: Option<String>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// The quorum's and the brokers' timings.
    pub timings: Timings,
}

impl Default for ClusterKeys {
    fn default() -> Self {
        ClusterKeys {
            roles: None,
            voters: Vec::new(),
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            advertised: Vec::new(),
            controller_listener_names: Vec::new(),
            protocol_map: None,
            inter_broker_listener_name: None,
            inter_broker_protocol: None,
            rack: None,
            timings: Timings::default(),
        }
    }
}

/// One client listener once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientListener {
    /// Its name (`PLAINTEXT`, `SASL_SSL`, `INTERNAL`, ...).
    pub name: String,
    /// Host and port it binds (empty host: every interface).
    pub host: String,
    /// Port it binds.
    pub port: u16,
    /// Its security protocol from `listener.security.protocol.map` (or its name).
    pub protocol: String,
    /// Host and port clients are told (`advertised.listeners`' entry of the same name, else
    /// the bound ones).
    pub advertised: (String, u16),
}

/// The cluster settings once checked: what the rest of the broker reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `process.roles`; `None` for the single-node broker.
    pub roles: Option<Roles>,
    /// The voters (for a single node: itself, with no address to dial).
    pub voters: Vec<Voter>,
    /// Address of this node's controller listener, when it is a controller in a cluster.
    pub controller_listen: Option<SocketAddr>,
    /// Name of the listener controllers are reached on (`controller.listener.names`' first).
    pub controller_listener_name: Option<String>,
    /// The controller listener's security protocol (`listener.security.protocol.map`).
    pub controller_protocol: Option<String>,
    /// Name of the inter-broker listener (`inter.broker.listener.name`, or the listener named
    /// after `security.inter.broker.protocol`, or the only client listener): the endpoint
    /// brokers dial each other on and register first.
    pub client_listener_name: String,
    /// Every listener clients may use (all of `listeners` but the controller's), each with its
    /// security protocol and advertised address, in the order `listeners` gives them.
    pub client_listeners: Vec<ClientListener>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// The quorum's and the brokers' timings.
    pub timings: Timings,
}

impl Cluster {
    /// True when this node is a broker (serves clients, registers, holds partitions): the
    /// single node and `process.roles` with `broker`. A controller-only node is not.
    pub fn is_broker(&self) -> bool {
        self.roles.is_none_or(|r| r.broker)
    }
}

/// The cluster part of [`super::Config::describe`].
pub fn describe(keys: &ClusterKeys, out: &mut BTreeMap<&'static str, String>) {
    let roles = match keys.roles {
        None => String::new(),
        Some(r) => [("broker", r.broker), ("controller", r.controller)]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(","),
    };
    out.insert("process.roles", roles);
    let voters: Vec<String> = keys
        .voters
        .iter()
        .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
        .collect();
    out.insert("controller.quorum.voters", voters.join(","));
    out.insert(
        "controller.listener.names",
        keys.controller_listener_names.join(","),
    );
    out.insert("broker.rack", keys.rack.clone().unwrap_or_default());
    for (k, v) in [
        (
            "controller.quorum.election.timeout.ms",
            keys.timings.election_timeout_ms,
        ),
        (
            "controller.quorum.fetch.timeout.ms",
            keys.timings.fetch_timeout_ms,
        ),
        (
            "controller.quorum.request.timeout.ms",
            keys.timings.request_timeout_ms,
        ),
        (
            "controller.quorum.retry.backoff.ms",
            keys.timings.retry_backoff_ms,
        ),
        (
            "broker.heartbeat.interval.ms",
            keys.timings.heartbeat_interval_ms,
        ),
        ("broker.session.timeout.ms", keys.timings.session_timeout_ms),
        (
            "offsets.topic.replication.factor",
            i64::from(keys.timings.offsets_topic_replication_factor),
        ),
    ] {
        out.insert(k, v.to_string());
    }
}

impl ClusterKeys {
    /// Applies one key if it is a cluster key; `Ok(false)` when it is not one.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "process.roles" => self.roles = Some(parse_roles(key, value)?),
            "controller.quorum.voters" => self.voters = parse_voters(key, value)?,
            "controller.quorum.bootstrap.servers" => {
                return Err(invalid(
                    key,
                    value,
                    "dynamic quorums (KIP-853) are not supported; list the voters in \
                     controller.quorum.voters",
                ))
            }
            "listeners" => self.listeners = parse_listeners(key, value)?,
            "advertised.listeners" => self.advertised = parse_listeners(key, value)?,
            "controller.listener.names" => self.controller_listener_names = names(key, value)?,
            "listener.security.protocol.map" => {
                let mut map = BTreeMap::new();
                for pair in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (name, proto) = pair
                        .split_once(':')
                        .ok_or_else(|| invalid(key, value, "expected NAME:PROTOCOL pairs"))?;
                    let proto = proto.trim().to_ascii_uppercase();
                    if !KNOWN_PROTOCOLS.contains(&proto.as_str()) {
                        return Err(invalid(
                            key,
                            value,
                            format!("unknown security protocol {proto}"),
                        ));
                    }
                    if map.insert(name.trim().to_string(), proto).is_some() {
                        return Err(invalid(key, value, format!("{name} is mapped twice")));
                    }
                }
                self.protocol_map = Some(map);
            }
            "inter.broker.listener.name" => {
                self.inter_broker_listener_name = Some(one_name(key, value)?)
            }
            "security.inter.broker.protocol" => {
                self.inter_broker_protocol = Some(value.trim().to_ascii_uppercase())
            }
            "broker.rack" => {
                let rack = value.trim();
                if rack.is_empty() || rack.len() > 255 {
                    return Err(invalid(key, value, "must be 1 to 255 characters"));
                }
                self.rack = Some(rack.to_string());
            }
            "controller.quorum.election.timeout.ms" => {
                self.timings.election_timeout_ms = parse_num(key, value, 10, 3_600_000)?
            }
            "controller.quorum.fetch.timeout.ms" => {
                self.timings.fetch_timeout_ms = parse_num(key, value, 10, 3_600_000)?
            }
            "controller.quorum.request.timeout.ms" => {
                self.timings.request_timeout_ms = parse_num(key, value, 10, 3_600_000)?
            }
            "controller.quorum.retry.backoff.ms" => {
                self.timings.retry_backoff_ms = parse_num(key, value, 1, 3_600_000)?
            }
            "broker.heartbeat.interval.ms" => {
                self.timings.heartbeat_interval_ms = parse_num(key, value, 10, 3_600_000)?
            }
            "broker.session.timeout.ms" => {
                self.timings.session_timeout_ms = parse_num(key, value, 10, 3_600_000)?
            }
            "offsets.topic.replication.factor" => {
                self.timings.offsets_topic_replication_factor =
                    parse_num(key, value, 1, i64::from(i16::MAX))? as i16
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the keys against each other and against `node_id`.
    pub fn resolve(&self, node_id: i32) -> Result<Cluster, ConfigError> {
        let err = |key: &str, value: String, reason: String| ConfigError::Invalid {
            key: key.into(),
            value,
            reason,
        };
        let listeners_text = render(&self.listeners);
        let mut ports = BTreeMap::new();
        let mut seen_names = BTreeMap::new();
        for l in &self.listeners {
            if seen_names.insert(l.name.clone(), ()).is_some() {
                return Err(err(
                    "listeners",
                    listeners_text,
                    format!("listener name {} appears twice", l.name),
                ));
            }
            if l.port != 0 {
                if let Some(other) = ports.insert(l.port, l.name.clone()) {
                    return Err(err(
                        "listeners",
                        listeners_text,
                        format!("{other} and {} both use port {}", l.name, l.port),
                    ));
                }
            }
        }
        if self.timings.election_timeout_ms < 1
            || self.timings.heartbeat_interval_ms >= self.timings.session_timeout_ms
        {
            return Err(err(
                "broker.heartbeat.interval.ms",
                self.timings.heartbeat_interval_ms.to_string(),
                "must be less than broker.session.timeout.ms".into(),
            ));
        }
        let Some(roles) = self.roles else {
            return self.resolve_single(node_id);
        };
        if self.voters.is_empty() {
            return Err(err(
                "controller.quorum.voters",
                String::new(),
                "a node with process.roles needs the voters (id@host:port,...)".into(),
            ));
        }
        let voters_text = self
            .voters
            .iter()
            .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
            .collect::<Vec<_>>()
            .join(",");
        let in_voters = self.voters.iter().any(|v| v.id == node_id);
        if roles.controller && !in_voters {
            return Err(err(
                "controller.quorum.voters",
                voters_text,
                format!("node.id {node_id} is a controller but not among the voters"),
            ));
        }
        if !roles.controller && in_voters {
            return Err(err(
                "controller.quorum.voters",
                voters_text,
                format!("node.id {node_id} is a voter but process.roles has no controller"),
            ));
        }
        let Some(controller_name) = self.controller_listener_names.first().cloned() else {
            return Err(err(
                "controller.listener.names",
                String::new(),
                "a node with process.roles must name its controller listener".into(),
            ));
        };
        let controller_listener = self.listeners.iter().find(|l| l.name == controller_name);
        if roles.controller && controller_listener.is_none() {
            return Err(err(
                "listeners",
                listeners_text,
                format!("a controller needs its controller listener {controller_name} here"),
            ));
        }
        if !roles.controller && controller_listener.is_some() {
            return Err(err(
                "listeners",
                listeners_text,
                format!(
                    "{controller_name} is a controller listener but this node is no controller"
                ),
            ));
        }
        let controller_protocol = self.protocol_of(&controller_name)?;
        let clients: Vec<&Listener> = self
            .listeners
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
            .collect();
        if roles.broker && clients.is_empty() {
            return Err(err(
                "listeners",
                listeners_text,
                "a broker needs a listener for clients".into(),
            ));
        }
        if !roles.broker && !clients.is_empty() {
            return Err(err(
                "listeners",
                listeners_text,
                "a controller-only node listens on its controller listener only".into(),
            ));
        }
        for a in &self.advertised {
            if self.controller_listener_names.contains(&a.name) && roles.broker {
                return Err(err(
                    "advertised.listeners",
                    render(&self.advertised),
                    format!(
                        "controller listener {} is not advertised to clients",
                        a.name
                    ),
                ));
            }
        }
        let client_listeners = self.client_listeners(&clients)?;
        let client_name = if roles.broker {
            self.inter_broker_name(&client_listeners)?
        } else {
            String::new()
        };
        let controller_listen = match controller_listener {
            Some(l) => Some(socket_addr("listeners", &l.host, l.port)?),
            None => None,
        };
        Ok(Cluster {
            roles: Some(roles),
            voters: self.voters.clone(),
            controller_listen,
            controller_listener_name: Some(controller_name),
            controller_protocol: Some(controller_protocol),
            client_listener_name: client_name,
            client_listeners,
            rack: self.rack.clone(),
            timings: self.timings,
        })
    }

    /// No `process.roles`: the single-node broker, one PLAINTEXT listener, no quorum keys.
    fn resolve_single(&self, node_id: i32) -> Result<Cluster, ConfigError> {
        for (key, set) in [
            ("controller.quorum.voters", !self.voters.is_empty()),
            (
                "controller.listener.names",
                !self.controller_listener_names.is_empty(),
            ),
        ] {
            if set {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    value: String::new(),
                    reason: "needs process.roles (broker, controller or broker,controller)".into(),
                });
            }
        }
        let clients: Vec<&Listener> = self.listeners.iter().collect();
        let client_listeners = self.client_listeners(&clients)?;
        let client_name = self.inter_broker_name(&client_listeners)?;
        Ok(Cluster {
            roles: None,
            voters: vec![Voter {
                id: node_id,
                host: String::new(),
                port: 0,
            }],
            controller_listen: None,
            controller_listener_name: None,
            controller_protocol: None,
            client_listener_name: client_name,
            client_listeners,
            rack: self.rack.clone(),
            timings: self.timings,
        })
    }

    /// The security protocol of listener `name`: `listener.security.protocol.map`'s entry, or,
    /// with no map, the name itself when it is a protocol's (Kafka maps unmapped controller
    /// listeners to PLAINTEXT when the map is unset).
    fn protocol_of(&self, name: &str) -> Result<String, ConfigError> {
        let explicit = self.protocol_map.as_ref();
        let found = match explicit {
            Some(map) => map.get(name).cloned(),
            None if KNOWN_PROTOCOLS.contains(&name) => Some(name.to_string()),
            None if self.controller_listener_names.iter().any(|c| c == name) => {
                Some("PLAINTEXT".to_string())
            }
            None => None,
        };
        found.ok_or_else(|| ConfigError::Invalid {
            key: "listener.security.protocol.map".into(),
            value: explicit.map(render_map).unwrap_or_default(),
            reason: format!("no security protocol for listener {name}"),
        })
    }

    /// The client listeners with their protocols and advertised addresses; every
    /// `advertised.listeners` entry must name one of them.
    fn client_listeners(&self, clients: &[&Listener]) -> Result<Vec<ClientListener>, ConfigError> {
        for a in &self.advertised {
            if !clients.iter().any(|l| l.name == a.name) {
                return Err(invalid(
                    "advertised.listeners",
                    &render(&self.advertised),
                    format!("{} is not a client listener in listeners", a.name),
                ));
            }
        }
        clients
            .iter()
            .map(|l| {
                let advertised = self
                    .advertised
                    .iter()
                    .find(|a| a.name == l.name)
                    .map(|a| (a.host.clone(), a.port))
                    .unwrap_or_else(|| (l.host.clone(), l.port));
                Ok(ClientListener {
                    name: l.name.clone(),
                    host: l.host.clone(),
                    port: l.port,
                    protocol: self.protocol_of(&l.name)?,
                    advertised,
                })
            })
            .collect()
    }

    /// The inter-broker listener: `inter.broker.listener.name`, else the listener named after
    /// `security.inter.broker.protocol` (default PLAINTEXT, as Kafka), else the only client
    /// listener. Brokers dial each other there, with its protocol.
    fn inter_broker_name(&self, clients: &[ClientListener]) -> Result<String, ConfigError> {
        if let (Some(name), Some(_)) = (
            &self.inter_broker_listener_name,
            &self.inter_broker_protocol,
        ) {
            return Err(invalid(
                "inter.broker.listener.name",
                name,
                "set it or security.inter.broker.protocol, not both",
            ));
        }
        let (key, wanted) = match (
            &self.inter_broker_listener_name,
            &self.inter_broker_protocol,
        ) {
            (Some(name), _) => ("inter.broker.listener.name", Some(name.clone())),
            (None, Some(p)) => ("security.inter.broker.protocol", Some(p.clone())),
            (None, None) => ("security.inter.broker.protocol", None),
        };
        let chosen = match (&wanted, clients) {
            (Some(name), _) => clients.iter().find(|l| &l.name == name),
            (None, [one]) => Some(one),
            (None, _) => clients.iter().find(|l| l.name == "PLAINTEXT"),
        };
        let Some(chosen) = chosen else {
            let names: Vec<&str> = clients.iter().map(|l| l.name.as_str()).collect();
            return Err(invalid(
                key,
                wanted.as_deref().unwrap_or("PLAINTEXT"),
                format!(
                    "names no client listener ({}); set inter.broker.listener.name",
                    names.join(", ")
                ),
            ));
        };
        Ok(chosen.name.clone())
    }

    /// The client listener and its advertised host and port (for the single node, the one
    /// listener).
    pub fn client_listener(&self) -> Option<(&Listener, (String, u16))> {
        let listener = self
            .listeners
            .iter()
            .find(|l| !self.controller_listener_names.contains(&l.name))?;
        let advertised = self
            .advertised
            .iter()
            .find(|a| a.name == listener.name)
            .map(|a| (a.host.clone(), a.port))
            .unwrap_or_else(|| (listener.host.clone(), listener.port));
        Some((listener, advertised))
    }
}

const KNOWN_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

fn parse_roles(key: &str, value: &str) -> Result<Roles, ConfigError> {
    let mut roles = Roles {
        broker: false,
        controller: false,
    };
    for role in value.split(',').map(str::trim) {
        let slot = match role {
            "broker" => &mut roles.broker,
            "controller" => &mut roles.controller,
            _ => {
                return Err(invalid(
                    key,
                    value,
                    "expected broker, controller or broker,controller",
                ))
            }
        };
        if *slot {
            return Err(invalid(key, value, format!("{role} is listed twice")));
        }
        *slot = true;
    }
    Ok(roles)
}

fn parse_voters(key: &str, value: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut voters: Vec<Voter> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| invalid(key, value, "expected id@host:port entries"))?;
        let id = parse_num(key, id.trim(), 0, i64::from(i32::MAX))? as i32;
        let (host, port) = host_port(key, value, addr)?;
        if port == 0 || host.is_empty() {
            return Err(invalid(
                key,
                value,
                format!("voter {id} needs a host and a port"),
            ));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(invalid(key, value, format!("voter {id} appears twice")));
        }
        voters.push(Voter { id, host, port });
    }
    if voters.is_empty() {
        return Err(invalid(key, value, "no voters"));
    }
    Ok(voters)
}

fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out = Vec::new();
    for spec in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = match spec.split_once("://") {
            Some((name, rest)) => (name.trim().to_string(), rest),
            None => ("PLAINTEXT".to_string(), spec),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(key, value, format!("bad listener name `{name}`")));
        }
        let (host, port) = host_port(key, value, rest)?;
        out.push(Listener { name, host, port });
    }
    if out.is_empty() {
        return Err(invalid(key, value, "no listener"));
    }
    Ok(out)
}

fn host_port(key: &str, value: &str, text: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, "expected host:port"))?;
    let port: u16 = port.parse().map_err(|_| invalid(key, value, "bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), port))
}

/// `host`/`port` as a socket address to bind (empty host: every interface).
pub fn socket_addr(key: &str, host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let host = match host {
        "" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        h => h,
    };
    let text = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    text.parse()
        .map_err(|_| invalid(key, &text, "expected an IP address and port"))
}

fn names(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let out: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if out.is_empty() {
        return Err(invalid(key, value, "empty"));
    }
    Ok(out)
}

fn one_name(key: &str, value: &str) -> Result<String, ConfigError> {
    match names(key, value)?.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(invalid(key, value, "one listener name")),
    }
}

fn render(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
        .collect::<Vec<_>>()
        .join(",")
}

fn render_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::super::tests::apply as load;

    const NODE1: &str = "process.roles=broker,controller\nnode.id=1\n\
        controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093\n\
        listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n\
        advertised.listeners=PLAINTEXT://127.0.0.1:19092\n\
        controller.listener.names=CONTROLLER\nlog.dirs=/tmp/m1\nbroker.rack=a\n";

    #[test]
    fn the_issue_example_forms_a_combined_node() {
        let c = load(NODE1).unwrap();
        let roles = c.cluster.roles.unwrap();
        assert!(roles.broker && roles.controller);
        assert_eq!(c.cluster.voters.len(), 3);
        assert_eq!(c.cluster.voters[1].port, 29093);
        assert_eq!(
            c.cluster.controller_listen,
            Some("127.0.0.1:19093".parse().unwrap())
        );
        assert_eq!(c.listen, "127.0.0.1:19092".parse().unwrap());
        assert_eq!(c.advertise, ("127.0.0.1".to_string(), 19092));
        assert_eq!(c.cluster.rack.as_deref(), Some("a"));
        assert_eq!(c.cluster.client_listener_name, "PLAINTEXT");
        let described = c.describe();
        assert_eq!(described["process.roles"], "broker,controller");
        assert_eq!(described["broker.rack"], "a");
    }

    #[test]
    fn a_node_without_roles_is_a_one_voter_quorum_of_itself() {
        let c = load("node.id=4\nlisteners=PLAINTEXT://127.0.0.1:9999\n").unwrap();
        assert_eq!(c.cluster.roles, None);
        assert_eq!(c.cluster.voters.len(), 1);
        assert_eq!(c.cluster.voters[0].id, 4);
        assert_eq!(c.cluster.controller_listen, None);
        assert_eq!(c.listen.port(), 9999);
    }

    #[test]
    fn kafka_cluster_keys_are_accepted() {
        let text = format!(
            "{NODE1}listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             inter.broker.listener.name=PLAINTEXT\ncontroller.quorum.election.timeout.ms=500\n\
             controller.quorum.fetch.timeout.ms=800\ncontroller.quorum.request.timeout.ms=900\n\
             controller.quorum.retry.backoff.ms=15\nbroker.heartbeat.interval.ms=300\n\
             broker.session.timeout.ms=1500\ndefault.replication.factor=1\n\
             offsets.topic.replication.factor=1\n"
        );
        let c = load(&text).unwrap();
        assert_eq!(
            (
                c.cluster.timings.election_timeout_ms,
                c.cluster.timings.fetch_timeout_ms
            ),
            (500, 800)
        );
        assert_eq!(c.cluster.timings.request_timeout_ms, 900);
        assert_eq!(c.cluster.timings.retry_backoff_ms, 15);
        assert_eq!(
            (
                c.cluster.timings.heartbeat_interval_ms,
                c.cluster.timings.session_timeout_ms
            ),
            (300, 1500)
        );
    }

    #[test]
    fn broker_only_and_controller_only_nodes() {
        let broker = "process.roles=broker\nnode.id=4\n\
            controller.quorum.voters=1@127.0.0.1:19093\nlisteners=PLAINTEXT://127.0.0.1:49092\n\
            controller.listener.names=CONTROLLER\n";
        let c = load(broker).unwrap();
        assert!(c.cluster.roles.unwrap().broker && !c.cluster.roles.unwrap().controller);
        assert_eq!(c.cluster.controller_listen, None);
        let controller = "process.roles=controller\nnode.id=1\n\
            controller.quorum.voters=1@127.0.0.1:19093\nlisteners=CONTROLLER://127.0.0.1:19093\n\
            controller.listener.names=CONTROLLER\n";
        let c = load(controller).unwrap();
        assert!(!c.cluster.roles.unwrap().broker);
        assert_eq!(c.cluster.client_listener_name, "");
    }

    /// Each bad setting, and the key its error must name.
    #[test]
    fn inconsistent_cluster_keys_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("process.roles=broker,controller", "process.roles=leader", "process.roles"),
            ("process.roles=broker,controller", "process.roles=broker,broker", "process.roles"),
            ("node.id=1", "node.id=7", "controller.quorum.voters"),
            (
                "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093",
                "controller.quorum.voters=1@127.0.0.1",
                "controller.quorum.voters",
            ),
            (
                "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093",
                "controller.quorum.voters=1@127.0.0.1:19093,1@127.0.0.1:29093",
                "controller.quorum.voters",
            ),
            (
                "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093",
                "controller.quorum.bootstrap.servers=127.0.0.1:19093",
                "controller.quorum.bootstrap.servers",
            ),
            (
                "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
                "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19092",
                "listeners",
            ),
            (
                "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
                "listeners=PLAINTEXT://127.0.0.1:19092",
                "listeners",
            ),
            (
                "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
                "listeners=PLAINTEXT://127.0.0.1:19092,OTHER://127.0.0.1:19094,CONTROLLER://127.0.0.1:19093",
                "listener.security.protocol.map",
            ),
            (
                "controller.listener.names=CONTROLLER",
                "controller.listener.names=",
                "controller.listener.names",
            ),
            (
                "advertised.listeners=PLAINTEXT://127.0.0.1:19092",
                "advertised.listeners=CONTROLLER://127.0.0.1:19093",
                "advertised.listeners",
            ),
            ("broker.rack=a", "broker.rack=", "broker.rack"),
            (
                "broker.rack=a",
                "inter.broker.listener.name=CONTROLLER",
                "inter.broker.listener.name",
            ),
            (
                "broker.rack=a",
                "broker.heartbeat.interval.ms=10000",
                "broker.heartbeat.interval.ms",
            ),
            (
                "broker.rack=a",
                "offsets.topic.replication.factor=0",
                "offsets.topic.replication.factor",
            ),
        ];
        for (good, bad, key) in cases {
            assert!(NODE1.contains(good), "{good}");
            let text = NODE1.replace(good, bad);
            let err = load(&text).expect_err(bad).to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
        let lone_voters = "controller.quorum.voters=1@127.0.0.1:19093\n";
        assert!(load(lone_voters)
            .unwrap_err()
            .to_string()
            .contains("controller.quorum.voters"));
        let broker_voter = NODE1.replace("process.roles=broker,controller", "process.roles=broker");
        let err = load(&broker_voter).unwrap_err().to_string();
        assert!(err.contains("controller.quorum.voters"), "{err}");
    }
}
