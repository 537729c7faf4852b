//! The security keys: Kafka's `ssl.*` and `sasl.*` keys, each either broker-wide or prefixed
//! by a listener (`listener.name.sasl_ssl.ssl.keystore.location`, the prefix's name in lower
//! case as Kafka writes it), the prefixed one winning for its listener. SASL's JAAS lines are
//! per listener and mechanism (`listener.name.<l>.<mechanism>.sasl.jaas.config`), as Kafka
//! requires them on brokers.
//!
//! Keys are collected as given while the file is read and resolved per client listener once
//! the listeners are known ([`SecurityKeys::resolve`]); every problem is a start-up error
//! naming the key. Values that hold secrets (passwords, inline keys, JAAS lines) are reported
//! as sensitive, never shown.

use super::cluster::ClientListener;
use super::{invalid, parse_num, ConfigError};
use millrace_security::acl::{
    parse_super_users, AuthorizerSettings, ALLOW_EVERYONE_IF_NO_ACL_IS_FOUND_CONFIG,
    SUPER_USERS_CONFIG,
};
use std::collections::BTreeMap;

/// One authorizer key's value on its own: the class Millrace has, a parseable super-user
/// list, a boolean.
fn check_authorizer_key(key: &str, value: &str) -> Result<(), ConfigError> {
    match key {
        "authorizer.class.name" => {
            let class = value.trim();
            if !class.is_empty() && class != STANDARD_AUTHORIZER {
                return Err(invalid(
                    key,
                    value,
                    format!("the only authorizer is {STANDARD_AUTHORIZER} (or empty for none)"),
                ));
            }
        }
        SUPER_USERS_CONFIG => {
            parse_super_users(value).map_err(|e| invalid(key, value, e.to_string()))?;
        }
        _ => {
            if !["true", "false"].contains(&value.trim().to_ascii_lowercase().as_str()) {
                return Err(invalid(key, value, "expected true or false"));
            }
        }
    }
    Ok(())
}

/// A listener's security protocol, with Kafka's ids (registration records carry them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Neither TLS nor SASL.
    Plaintext,
    /// TLS, optionally with client certificates.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL inside TLS.
    SaslSsl,
}

impl Protocol {
    /// From `listener.security.protocol.map`'s spelling.
    pub fn parse(name: &str) -> Option<Protocol> {
        Some(match name {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => return None,
        })
    }

    /// Kafka's `SecurityProtocol` id.
    pub fn id(self) -> i16 {
        match self {
            Protocol::Plaintext => 0,
            Protocol::Ssl => 1,
            Protocol::SaslPlaintext => 2,
            Protocol::SaslSsl => 3,
        }
    }

    /// True when connections start with a TLS handshake.
    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    /// True when clients must authenticate with SASL before any other request.
    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// The TLS keys of one listener, resolved (listener prefix first).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsKeys {
    /// `ssl.keystore.location`: a PEM file with the private key and the certificate chain.
    pub keystore_location: Option<String>,
    /// `ssl.keystore.key`: the private key inline (PEM).
    pub keystore_key: Option<String>,
    /// `ssl.keystore.certificate.chain`: the certificate chain inline (PEM).
    pub keystore_certificate_chain: Option<String>,
    /// `ssl.key.password`: decrypts an encrypted private key.
    pub key_password: Option<String>,
    /// `ssl.truststore.location`: CA certificates (PEM) that client certificates chain to.
    pub truststore_location: Option<String>,
    /// `ssl.truststore.certificates`: the same inline.
    pub truststore_certificates: Option<String>,
    /// `ssl.client.auth`: none, requested or required.
    pub client_auth: String,
    /// `ssl.enabled.protocols`.
    pub enabled_protocols: Vec<String>,
    /// `ssl.cipher.suites` (empty: the TLS library's defaults).
    pub cipher_suites: Vec<String>,
    /// `ssl.principal.mapping.rules`.
    pub principal_mapping_rules: String,
}

impl std::fmt::Debug for TlsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsKeys")
            .field("keystore_location", &self.keystore_location)
            .field(
                "keystore_key",
                &self.keystore_key.as_ref().map(|_| "[hidden]"),
            )
            .field(
                "key_password",
                &self.key_password.as_ref().map(|_| "[hidden]"),
            )
            .field("truststore_location", &self.truststore_location)
            .field("client_auth", &self.client_auth)
            .field("enabled_protocols", &self.enabled_protocols)
            .finish_non_exhaustive()
    }
}

/// The SASL keys of one listener, resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslKeys {
    /// `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<String>,
    /// `listener.name.<l>.<mechanism>.sasl.jaas.config` by mechanism (upper case).
    pub jaas: BTreeMap<String, String>,
    /// `connections.max.reauth.ms` (0: sessions do not expire).
    pub reauth_ms: i64,
    /// `sasl.server.max.receive.size`: the largest frame read before authentication.
    pub max_receive_bytes: usize,
}

impl std::fmt::Debug for SaslKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslKeys")
            .field("mechanisms", &self.mechanisms)
            .field("jaas", &self.jaas.keys().collect::<Vec<_>>())
            .field("reauth_ms", &self.reauth_ms)
            .field("max_receive_bytes", &self.max_receive_bytes)
            .finish()
    }
}

/// One client listener's security, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSecurity {
    /// The listener's name.
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// TLS settings when the protocol uses TLS.
    pub tls: Option<TlsKeys>,
    /// SASL settings when the protocol uses SASL.
    pub sasl: Option<SaslKeys>,
}

/// The client side of a peer listener's TLS, resolved (listener prefix first).
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundTls {
    /// `ssl.truststore.location`.
    pub truststore_location: Option<String>,
    /// `ssl.truststore.certificates`.
    pub truststore_certificates: Option<String>,
    /// `ssl.keystore.location`: the client certificate and key (for `ssl.client.auth`).
    pub keystore_location: Option<String>,
    /// `ssl.keystore.key`.
    pub keystore_key: Option<String>,
    /// `ssl.keystore.certificate.chain`.
    pub keystore_certificate_chain: Option<String>,
    /// `ssl.key.password`.
    pub key_password: Option<String>,
    /// `ssl.enabled.protocols`.
    pub enabled_protocols: Vec<String>,
    /// `ssl.endpoint.identification.algorithm` is `https` (the default), not empty.
    pub server_name_check: bool,
}

impl std::fmt::Debug for OutboundTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundTls")
            .field("truststore_location", &self.truststore_location)
            .field("keystore_location", &self.keystore_location)
            .field("enabled_protocols", &self.enabled_protocols)
            .field("server_name_check", &self.server_name_check)
            .finish_non_exhaustive()
    }
}

/// How this node dials a listener of its peers (the inter-broker or the controller listener).
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundKeys {
    /// The listener's name.
    pub listener: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The client side of its TLS.
    pub tls: Option<OutboundTls>,
    /// The SASL mechanism and the JAAS line with the `username` and `password` to log in with.
    pub sasl: Option<(String, String)>,
}

impl std::fmt::Debug for OutboundKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundKeys")
            .field("listener", &self.listener)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .field("sasl", &self.sasl.as_ref().map(|(m, _)| m))
            .finish()
    }
}

/// The security keys as given.
#[derive(Debug, Clone)]
pub struct SecurityKeys {
    given: BTreeMap<String, String>,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_authentication_delay_ms: i64,
}

impl Default for SecurityKeys {
    fn default() -> Self {
        SecurityKeys {
            given: BTreeMap::new(),
            // Kafka's default.
            failed_authentication_delay_ms: 100,
        }
    }
}

/// Keys read per listener (prefixed or not).
const LISTENER_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.protocol",
    "ssl.cipher.suites",
    "ssl.principal.mapping.rules",
    "sasl.enabled.mechanisms",
    "connections.max.reauth.ms",
    "sasl.server.max.receive.size",
    "ssl.endpoint.identification.algorithm",
];

/// The mechanism a broker logs in with on the inter-broker listener (Kafka's key).
pub const INTER_BROKER_MECHANISM: &str = "sasl.mechanism.inter.broker.protocol";
/// The mechanism a node logs in with on the controller listener (Kafka's key).
pub const CONTROLLER_MECHANISM: &str = "sasl.mechanism.controller.protocol";

/// Kafka's PASSWORD-typed keys among them: described as sensitive, value hidden.
const SENSITIVE: &[&str] = &[
    "ssl.keystore.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "sasl.jaas.config",
];

/// The SASL mechanisms this build serves.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Kafka's `sasl.server.max.receive.size` default.
const MAX_RECEIVE_BYTES_DEFAULT: i64 = 524_288;

/// The one `authorizer.class.name` Millrace accepts: Kafka's KRaft authorizer, whose
/// decisions `millrace_security::acl::Authorizer` makes.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The authorizer's keys, named as Kafka names them.
const AUTHORIZER_KEYS: &[&str] = &[
    "authorizer.class.name",
    SUPER_USERS_CONFIG,
    ALLOW_EVERYONE_IF_NO_ACL_IS_FOUND_CONFIG,
];

impl SecurityKeys {
    /// The authorizer's settings when `authorizer.class.name` names the standard authorizer,
    /// `None` when it is unset or empty (no ACLs are checked, as in Kafka).
    pub fn authorizer(&self) -> Result<Option<AuthorizerSettings>, ConfigError> {
        let class = self.given.get("authorizer.class.name").map(|c| c.trim());
        if class.is_none_or(str::is_empty) {
            return Ok(None);
        }
        let settings = AuthorizerSettings::from_config(
            self.given.get(SUPER_USERS_CONFIG).map(String::as_str),
            self.given
                .get(ALLOW_EVERYONE_IF_NO_ACL_IS_FOUND_CONFIG)
                .map(String::as_str),
        )
        .map_err(|e| {
            let value = self
                .given
                .get(SUPER_USERS_CONFIG)
                .cloned()
                .unwrap_or_default();
            invalid(SUPER_USERS_CONFIG, &value, e.to_string())
        })?;
        Ok(Some(settings))
    }

    /// Takes `key` if it is a security key; `Ok(false)` when it is not one.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        if AUTHORIZER_KEYS.contains(&key) {
            check_authorizer_key(key, value)?;
            self.given.insert(key.to_string(), value.to_string());
            return Ok(true);
        }
        if key == INTER_BROKER_MECHANISM || key == CONTROLLER_MECHANISM {
            let m = value.trim();
            if !MECHANISMS.contains(&m) {
                return Err(invalid(
                    key,
                    value,
                    format!("mechanism {m} is not served ({})", MECHANISMS.join(", ")),
                ));
            }
            self.given.insert(key.to_string(), m.to_string());
            return Ok(true);
        }
        if key == "connection.failed.authentication.delay.ms" {
            self.failed_authentication_delay_ms = parse_num(key, value, 0, 3_600_000)?;
            return Ok(true);
        }
        let bare = match key.strip_prefix("listener.name.") {
            Some(rest) => {
                let (listener, bare) = rest
                    .split_once('.')
                    .ok_or_else(|| invalid(key, value, "expected listener.name.<name>.<key>"))?;
                if listener.is_empty() || listener != listener.to_ascii_lowercase() {
                    return Err(invalid(
                        key,
                        value,
                        "the listener name in a prefix is written in lower case",
                    ));
                }
                if let Some(mechanism) = bare.strip_suffix(".sasl.jaas.config") {
                    check_jaas_mechanism(key, value, mechanism)?;
                    self.given.insert(key.to_string(), value.to_string());
                    return Ok(true);
                }
                bare
            }
            None => key,
        };
        if bare == "sasl.jaas.config" {
            return Err(invalid(
                key,
                "[hidden]",
                "a broker reads JAAS lines per listener and mechanism: \
                 listener.name.<listener>.<mechanism>.sasl.jaas.config",
            ));
        }
        if !LISTENER_KEYS.contains(&bare) {
            return Ok(false);
        }
        self.check_value(key, bare, value)?;
        self.given.insert(key.to_string(), value.to_string());
        Ok(true)
    }

    /// The value of `key` for `listener`: its `listener.name.<l>.` form first.
    pub fn get(&self, listener: &str, key: &str) -> Option<&str> {
        let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        self.given
            .get(&prefixed)
            .or_else(|| self.given.get(key))
            .map(String::as_str)
    }

    /// Each client listener's security, checked.
    pub fn resolve(
        &self,
        listeners: &[ClientListener],
    ) -> Result<Vec<ListenerSecurity>, ConfigError> {
        listeners.iter().map(|l| self.resolve_one(l)).collect()
    }

    /// The given keys for DescribeConfigs: (key, value, sensitive); sensitive values hidden.
    pub fn describe(&self) -> Vec<(String, Option<String>, bool)> {
        self.given
            .iter()
            .map(|(k, v)| {
                let sensitive = is_sensitive(k);
                (k.clone(), (!sensitive).then(|| v.clone()), sensitive)
            })
            .collect()
    }

    /// How this node dials `listener` (protocol `protocol`) of its peers: the inter-broker
    /// listener (`mechanism_key` = [`INTER_BROKER_MECHANISM`]) or the controller listener
    /// ([`CONTROLLER_MECHANISM`]). Kafka's brokers read their client side from the same
    /// listener-prefixed keys as the server side: the truststore checks the peer, the keystore
    /// (if any) is the client certificate, and the mechanism's JAAS line names the
    /// `username` and `password` this node logs in with.
    pub fn resolve_outbound(
        &self,
        listener: &str,
        protocol: &str,
        mechanism_key: &str,
    ) -> Result<OutboundKeys, ConfigError> {
        let protocol = Protocol::parse(protocol).ok_or_else(|| {
            invalid(
                "listener.security.protocol.map",
                protocol,
                "unknown security protocol",
            )
        })?;
        let lower = listener.to_ascii_lowercase();
        let get = |k: &str| self.get(listener, k).map(str::to_string);
        let tls = match protocol.tls() {
            false => None,
            true => {
                let truststore_location = get("ssl.truststore.location");
                let truststore_certificates = get("ssl.truststore.certificates");
                if truststore_location.is_none() && truststore_certificates.is_none() {
                    return Err(invalid(
                        &format!("listener.name.{lower}.ssl.truststore.location"),
                        "",
                        format!(
                            "this node dials listener {listener} of its peers over TLS and \
                             checks their certificates against this truststore (no system \
                             trust store is read)"
                        ),
                    ));
                }
                let keystore_location = get("ssl.keystore.location");
                let keystore_key = get("ssl.keystore.key");
                let keystore_certificate_chain = get("ssl.keystore.certificate.chain");
                if keystore_key.is_some() != keystore_certificate_chain.is_some()
                    || (keystore_location.is_some() && keystore_key.is_some())
                {
                    return Err(invalid(
                        &format!("listener.name.{lower}.ssl.keystore.location"),
                        "",
                        "set either ssl.keystore.location or both ssl.keystore.key and \
                         ssl.keystore.certificate.chain",
                    ));
                }
                Some(OutboundTls {
                    truststore_location,
                    truststore_certificates,
                    keystore_location,
                    keystore_key,
                    keystore_certificate_chain,
                    key_password: get("ssl.key.password"),
                    enabled_protocols: list(get("ssl.enabled.protocols"), "TLSv1.2,TLSv1.3"),
                    server_name_check: get("ssl.endpoint.identification.algorithm")
                        .is_none_or(|v| !v.trim().is_empty()),
                })
            }
        };
        let sasl = match protocol.sasl() {
            false => None,
            true => {
                let Some(mechanism) = self.given.get(mechanism_key) else {
                    return Err(invalid(
                        mechanism_key,
                        "",
                        format!(
                            "listener {listener} uses SASL: name the mechanism this node logs \
                             in with ({}); Kafka's default, GSSAPI, is not served",
                            MECHANISMS.join(", ")
                        ),
                    ));
                };
                let key = format!(
                    "listener.name.{lower}.{}.sasl.jaas.config",
                    mechanism.to_ascii_lowercase()
                );
                let Some(line) = self.given.get(&key) else {
                    return Err(invalid(
                        &key,
                        "",
                        format!(
                            "this node logs in to listener {listener} with {mechanism}: its \
                             JAAS line needs username and password"
                        ),
                    ));
                };
                if let Err(e) = millrace_security::sasl::login_credentials(line) {
                    return Err(invalid(&key, "[hidden]", e.to_string()));
                }
                Some((mechanism.clone(), line.clone()))
            }
        };
        Ok(OutboundKeys {
            listener: listener.to_string(),
            protocol,
            tls,
            sasl,
        })
    }

    /// One listener's server-side security, checked (client listeners and the controller
    /// listener alike).
    pub fn resolve_one(&self, l: &ClientListener) -> Result<ListenerSecurity, ConfigError> {
        let protocol = Protocol::parse(&l.protocol).ok_or_else(|| {
            invalid(
                "listener.security.protocol.map",
                &l.protocol,
                "unknown security protocol",
            )
        })?;
        let tls = protocol.tls().then(|| self.tls_keys(&l.name)).transpose()?;
        let sasl = protocol
            .sasl()
            .then(|| self.sasl_keys(&l.name))
            .transpose()?;
        Ok(ListenerSecurity {
            name: l.name.clone(),
            protocol,
            tls,
            sasl,
        })
    }

    fn tls_keys(&self, listener: &str) -> Result<TlsKeys, ConfigError> {
        let get = |k: &str| self.get(listener, k).map(str::to_string);
        let key_name = |k: &str| format!("listener.name.{}.{k}", listener.to_ascii_lowercase());
        for k in ["ssl.keystore.type", "ssl.truststore.type"] {
            if let Some(kind) = get(k) {
                if !kind.eq_ignore_ascii_case("PEM") {
                    return Err(invalid(
                        k,
                        &kind,
                        "only PEM stores are read (convert a JKS or PKCS12 store to PEM, e.g. \
                         with keytool -importkeystore and openssl pkcs12)",
                    ));
                }
            }
        }
        for k in ["ssl.keystore.password", "ssl.truststore.password"] {
            if get(k).is_some() {
                return Err(invalid(
                    k,
                    "[hidden]",
                    "a PEM store has no store password; only ssl.key.password (for an \
                     encrypted key) may be set, as Kafka requires",
                ));
            }
        }
        let keys = TlsKeys {
            keystore_location: get("ssl.keystore.location"),
            keystore_key: get("ssl.keystore.key"),
            keystore_certificate_chain: get("ssl.keystore.certificate.chain"),
            key_password: get("ssl.key.password"),
            truststore_location: get("ssl.truststore.location"),
            truststore_certificates: get("ssl.truststore.certificates"),
            client_auth: get("ssl.client.auth").unwrap_or_else(|| "none".into()),
            enabled_protocols: list(get("ssl.enabled.protocols"), "TLSv1.2,TLSv1.3"),
            cipher_suites: list(get("ssl.cipher.suites"), ""),
            principal_mapping_rules: get("ssl.principal.mapping.rules")
                .unwrap_or_else(|| "DEFAULT".into()),
        };
        let inline = (&keys.keystore_key, &keys.keystore_certificate_chain);
        match (&keys.keystore_location, inline) {
            (Some(_), (None, None)) | (None, (Some(_), Some(_))) => {}
            (None, (None, None)) => {
                return Err(invalid(
                    &key_name("ssl.keystore.location"),
                    "",
                    format!(
                        "listener {listener} uses TLS: set ssl.keystore.location (a PEM file \
                         with the key and the certificate chain) or ssl.keystore.key and \
                         ssl.keystore.certificate.chain"
                    ),
                ))
            }
            _ => {
                return Err(invalid(
                    &key_name("ssl.keystore.location"),
                    "",
                    "set either ssl.keystore.location or both ssl.keystore.key and \
                     ssl.keystore.certificate.chain",
                ))
            }
        }
        if keys.truststore_location.is_some() && keys.truststore_certificates.is_some() {
            return Err(invalid(
                "ssl.truststore.location",
                "",
                "set ssl.truststore.location or ssl.truststore.certificates, not both",
            ));
        }
        Ok(keys)
    }

    fn sasl_keys(&self, listener: &str) -> Result<SaslKeys, ConfigError> {
        let lower = listener.to_ascii_lowercase();
        let mechanisms = list(
            self.get(listener, "sasl.enabled.mechanisms")
                .map(Into::into),
            "",
        );
        if mechanisms.is_empty() {
            return Err(invalid(
                &format!("listener.name.{lower}.sasl.enabled.mechanisms"),
                "",
                format!(
                    "listener {listener} uses SASL: name its mechanisms ({}); Kafka's default, \
                     GSSAPI, is not served",
                    MECHANISMS.join(", ")
                ),
            ));
        }
        let mut jaas = BTreeMap::new();
        for m in &mechanisms {
            let key = format!(
                "listener.name.{lower}.{}.sasl.jaas.config",
                m.to_ascii_lowercase()
            );
            let Some(line) = self.given.get(&key) else {
                return Err(invalid(
                    &key,
                    "",
                    format!("mechanism {m} on listener {listener} needs its JAAS line"),
                ));
            };
            jaas.insert(m.clone(), line.clone());
        }
        let num = |k: &str, default: i64, min: i64, max: i64| match self.get(listener, k) {
            Some(v) => parse_num(k, v, min, max),
            None => Ok(default),
        };
        Ok(SaslKeys {
            mechanisms,
            jaas,
            reauth_ms: num("connections.max.reauth.ms", 0, 0, i64::MAX / 2)?,
            max_receive_bytes: num(
                "sasl.server.max.receive.size",
                MAX_RECEIVE_BYTES_DEFAULT,
                64,
                i64::from(i32::MAX),
            )? as usize,
        })
    }

    fn check_value(&self, key: &str, bare: &str, value: &str) -> Result<(), ConfigError> {
        match bare {
            "ssl.client.auth" if !["none", "requested", "required"].contains(&value.trim()) => {
                Err(invalid(key, value, "expected none, requested or required"))
            }
            "sasl.enabled.mechanisms" => {
                for m in list(Some(value.to_string()), "") {
                    if !MECHANISMS.contains(&m.as_str()) {
                        return Err(invalid(
                            key,
                            value,
                            format!("mechanism {m} is not served ({})", MECHANISMS.join(", ")),
                        ));
                    }
                }
                Ok(())
            }
            "ssl.endpoint.identification.algorithm"
                if !value.trim().is_empty() && !value.trim().eq_ignore_ascii_case("https") =>
            {
                Err(invalid(
                    key,
                    value,
                    "https (check the peer's name against its certificate) or empty (check \
                     only the chain)",
                ))
            }
            "ssl.protocol" if !["TLSv1.2", "TLSv1.3", "TLS"].contains(&value.trim()) => {
                Err(invalid(key, value, "TLSv1.2 and TLSv1.3 are served"))
            }
            _ => Ok(()),
        }
    }
}

/// True for keys whose values are secrets (Kafka's PASSWORD type), prefixed or not.
pub fn is_sensitive(key: &str) -> bool {
    SENSITIVE
        .iter()
        .any(|s| key == *s || key.ends_with(&format!(".{s}")))
}

fn check_jaas_mechanism(key: &str, value: &str, mechanism: &str) -> Result<(), ConfigError> {
    if MECHANISMS
        .iter()
        .any(|m| m.to_ascii_lowercase() == mechanism)
    {
        return Ok(());
    }
    let _ = value; // never echoed: it holds passwords
    Err(invalid(
        key,
        "[hidden]",
        format!(
            "no mechanism {mechanism} is served ({}; written in lower case in the key)",
            MECHANISMS.join(", ")
        ),
    ))
}

fn list(value: Option<String>, default: &str) -> Vec<String> {
    value
        .unwrap_or_else(|| default.to_string())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(lines: &[(&str, &str)]) -> Result<SecurityKeys, ConfigError> {
        let mut k = SecurityKeys::default();
        for (key, value) in lines {
            assert!(k.apply(key, value)?, "{key} not taken");
        }
        Ok(k)
    }

    fn listener(name: &str, protocol: &str) -> ClientListener {
        ClientListener {
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 9093,
            protocol: protocol.into(),
            advertised: ("127.0.0.1".into(), 9093),
        }
    }

    #[test]
    fn a_listener_prefix_wins_for_its_listener_only() {
        let k = keys(&[
            ("ssl.keystore.location", "/all.pem"),
            ("listener.name.external.ssl.keystore.location", "/ext.pem"),
        ])
        .unwrap();
        let resolved = k
            .resolve(&[listener("EXTERNAL", "SSL"), listener("INTERNAL", "SSL")])
            .unwrap();
        let tls = |i: usize| resolved[i].tls.clone().unwrap().keystore_location.unwrap();
        assert_eq!(tls(0), "/ext.pem");
        assert_eq!(tls(1), "/all.pem");
        assert!(resolved[0].sasl.is_none());
    }

    #[test]
    fn sasl_listeners_need_mechanisms_and_their_jaas_lines() {
        let k = keys(&[("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256")]).unwrap();
        let err = k
            .resolve(&[listener("SASL_PLAINTEXT", "SASL_PLAINTEXT")])
            .unwrap_err();
        assert!(err.to_string().contains("plain.sasl.jaas.config"), "{err}");
        let k = keys(&[
            ("sasl.enabled.mechanisms", "PLAIN"),
            (
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\";",
            ),
        ])
        .unwrap();
        let r = k
            .resolve(&[listener("SASL_PLAINTEXT", "SASL_PLAINTEXT")])
            .unwrap();
        let sasl = r[0].sasl.clone().unwrap();
        assert_eq!(sasl.mechanisms, vec!["PLAIN".to_string()]);
        assert_eq!(sasl.max_receive_bytes, 524_288);
        assert!(
            !format!("{sasl:?}").contains("user_a"),
            "secrets stay out of Debug"
        );
        let none = SecurityKeys::default();
        let err = none
            .resolve(&[listener("SASL_SSL", "SASL_SSL")])
            .unwrap_err();
        assert!(err.to_string().contains("ssl.keystore.location"), "{err}");
    }

    #[test]
    fn peers_are_dialed_with_the_listeners_keys() {
        const LOGIN: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                             username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\";";
        let k = keys(&[
            ("listener.name.internal.ssl.truststore.location", "/ca.pem"),
            ("listener.name.internal.plain.sasl.jaas.config", LOGIN),
            ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
            ("ssl.endpoint.identification.algorithm", ""),
        ])
        .unwrap();
        let out = k
            .resolve_outbound("INTERNAL", "SASL_SSL", INTER_BROKER_MECHANISM)
            .unwrap();
        let tls = out.tls.expect("TLS");
        assert_eq!(tls.truststore_location.as_deref(), Some("/ca.pem"));
        assert!(
            tls.keystore_location.is_none(),
            "a client certificate is optional"
        );
        assert!(!tls.server_name_check);
        assert_eq!(out.sasl.map(|(m, _)| m).as_deref(), Some("PLAIN"));
        // Plaintext peers need nothing.
        let plain = k
            .resolve_outbound("CONTROLLER", "PLAINTEXT", CONTROLLER_MECHANISM)
            .unwrap();
        assert!(plain.tls.is_none() && plain.sasl.is_none());
        // SASL without the mechanism key (Kafka's GSSAPI default is not served).
        let e = k
            .resolve_outbound("INTERNAL", "SASL_PLAINTEXT", CONTROLLER_MECHANISM)
            .unwrap_err();
        assert!(e.to_string().contains(CONTROLLER_MECHANISM), "{e}");
        // TLS without a truststore.
        let e = k
            .resolve_outbound("CONTROLLER", "SSL", CONTROLLER_MECHANISM)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("listener.name.controller.ssl.truststore.location"),
            "{e}"
        );
        // A JAAS line without username and password cannot log in.
        let k = keys(&[
            ("listener.name.internal.ssl.truststore.location", "/ca.pem"),
            (
                "listener.name.internal.scram-sha-256.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            ),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-256"),
        ])
        .unwrap();
        let e = k
            .resolve_outbound("INTERNAL", "SASL_SSL", INTER_BROKER_MECHANISM)
            .unwrap_err();
        assert!(
            e.to_string().contains("scram-sha-256.sasl.jaas.config"),
            "{e}"
        );
        assert!(e.to_string().contains("username"), "{e}");
        // Mechanisms must be served ones.
        assert!(keys(&[("sasl.mechanism.controller.protocol", "GSSAPI")]).is_err());
        assert!(keys(&[("ssl.endpoint.identification.algorithm", "ldap")]).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        for (key, value, says) in [
            ("sasl.enabled.mechanisms", "GSSAPI", "GSSAPI is not served"),
            (
                "ssl.client.auth",
                "sometimes",
                "none, requested or required",
            ),
            ("ssl.protocol", "TLSv1.1", "TLSv1.2 and TLSv1.3"),
            ("listener.name.X.ssl.client.auth", "none", "lower case"),
            ("sasl.jaas.config", "x", "per listener and mechanism"),
            (
                "listener.name.a.gssapi.sasl.jaas.config",
                "secret",
                "no mechanism gssapi",
            ),
        ] {
            let err = keys(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(says), "{key}={value}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
        // Refused when an SSL listener resolves them, not when read.
        for (key, value, says) in [
            ("ssl.keystore.type", "JKS", "only PEM"),
            ("ssl.keystore.password", "p", "no store password"),
        ] {
            let k = keys(&[(key, value), ("ssl.keystore.location", "/k")]).unwrap();
            let err = k
                .resolve(&[listener("SSL", "SSL")])
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{key}={value}: {err}");
        }
    }

    #[test]
    fn secrets_are_described_as_sensitive_without_values() {
        let k = keys(&[
            ("ssl.key.password", "hunter2"),
            ("listener.name.ssl.ssl.keystore.location", "/k.pem"),
        ])
        .unwrap();
        let described = k.describe();
        assert!(described.contains(&("ssl.key.password".into(), None, true)));
        assert!(described.contains(&(
            "listener.name.ssl.ssl.keystore.location".into(),
            Some("/k.pem".into()),
            false
        )));
    }
}
