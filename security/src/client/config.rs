//! `--command-config FILE`: the Kafka client properties a secured listener needs, read as
//! Kafka's shell tools read them, turned into what a client connects with ([`ClientSecurity`]).
//! `millrace-tools` and `millrace-bench` both read their `--command-config` here.
//!
//! ```text
//! security.protocol=SASL_SSL                   PLAINTEXT (default) | SSL | SASL_PLAINTEXT |
//!                                                SASL_SSL
//! ssl.truststore.type=PEM                      only PEM stores (no JKS / PKCS12); unset: PEM
//! ssl.truststore.location=/etc/kafka/ca.pem    or ssl.truststore.certificates=<PEM text>
//! ssl.keystore.type=PEM                        mTLS: key + chain in one file, or
//! ssl.keystore.location=/etc/kafka/me.pem        ssl.keystore.key + ssl.keystore.certificate.chain
//! ssl.key.password=...                         for an ENCRYPTED PRIVATE KEY
//! ssl.endpoint.identification.algorithm=https  default; empty: check the chain, not the name
//! ssl.enabled.protocols=TLSv1.3,TLSv1.2
//! sasl.mechanism=SCRAM-SHA-512                 PLAIN (default) | SCRAM-SHA-256 | SCRAM-SHA-512
//! sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
//!     username="alice" password="alice-secret";
//! ```
//!
//! Decisions:
//!
//! * The file is a Java properties file (`#`/`!` comments, `=`/`:`/blank separators,
//!   backslash continuations and `\uXXXX` escapes), so a file made for `kafka-topics.sh
//!   --command-config` works unchanged.
//! * A key this module does not read is an error naming it: a typo in `ssl.truststore.location`
//!   must not quietly give a plaintext or unverified connection. Kafka client keys that tune what
//!   these clients do not have (timeouts, retries, `client.id`, store passwords
//!   of PEM stores, ...) are accepted with a warning on stderr, so Kafka's files still work.
//! * `ssl.*` keys under a non-TLS protocol and `sasl.*` keys under a non-SASL one are ignored
//!   with a warning, as Kafka ignores them.
//! * No system trust store: SSL and SASL_SSL need a truststore (the security crate's rule).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::parse_properties;
use crate::sasl::{login_credentials, LoginCredentials, Mechanism};
use crate::tls::{client_config, ClientTlsSettings, KeySource, TrustSource};

/// Kafka client keys that mean nothing to this client; accepted with a warning.
const IGNORED_KEYS: [&str; 26] = [
    "client.id",
    "client.dns.lookup",
    "connections.max.idle.ms",
    "default.api.timeout.ms",
    "metadata.max.age.ms",
    "receive.buffer.bytes",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "request.timeout.ms",
    "retries",
    "retry.backoff.max.ms",
    "retry.backoff.ms",
    "sasl.kerberos.service.name",
    "sasl.login.connect.timeout.ms",
    "sasl.login.read.timeout.ms",
    "security.providers",
    "send.buffer.bytes",
    "socket.connection.setup.timeout.max.ms",
    "socket.connection.setup.timeout.ms",
    "ssl.cipher.suites",
    "ssl.keymanager.algorithm",
    "ssl.keystore.password",
    "ssl.protocol",
    "ssl.secure.random.implementation",
    "ssl.trustmanager.algorithm",
    "ssl.truststore.password",
];

/// `security.protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's names, in any case (Kafka upper-cases the value before looking it up).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// The SASL login of a connection.
#[derive(Clone, Debug)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub credentials: LoginCredentials,
}

/// A command config, parsed and checked but with its stores not read yet.
#[derive(Debug)]
pub struct CommandConfig {
    /// Set for SSL and SASL_SSL.
    pub tls: Option<ClientTlsSettings>,
    /// Set for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslLogin>,
    /// One line per key that was accepted but has no effect.
    pub warnings: Vec<String>,
}

/// What every connection of a client is opened with.
#[derive(Clone, Debug, Default)]
pub struct ClientSecurity {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslLogin>,
}

/// Reads the properties file at `path` and loads its stores: what to connect with, and one line
/// per key that was accepted but has no effect (for the caller to print). The error names the
/// key or the store at fault, not the file (the caller knows it).
pub fn load(path: &Path) -> Result<(ClientSecurity, Vec<String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let properties = parse_properties(&text)?;
    let config = CommandConfig::from_properties(&properties)?;
    let tls = match &config.tls {
        Some(settings) => Some(client_config(settings).map_err(|e| e.to_string())?),
        None => None,
    };
    let security = ClientSecurity {
        tls,
        sasl: config.sasl,
    };
    Ok((security, config.warnings))
}

impl CommandConfig {
    /// Checks the keys and values of a properties file (see the module doc for the rules).
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self, String> {
        let protocol = match properties.get("security.protocol") {
            None => SecurityProtocol::Plaintext,
            Some(value) => SecurityProtocol::parse(value).ok_or_else(|| {
                format!(
                    "security.protocol: unknown protocol {value:?} (expected PLAINTEXT, SSL, \
                     SASL_PLAINTEXT or SASL_SSL)"
                )
            })?,
        };
        let mut warnings = Vec::new();
        for key in properties.keys() {
            if IGNORED_KEYS.contains(&key.as_str()) {
                warnings.push(format!(
                    "{key} is ignored (it tunes nothing in this client)"
                ));
            } else if !is_read(key) {
                return Err(format!(
                    "unknown key {key} (these clients read security.protocol, ssl.* store and \
                     endpoint keys, sasl.mechanism and sasl.jaas.config)"
                ));
            } else if (key.starts_with("ssl.") && !protocol.uses_tls())
                || (key.starts_with("sasl.") && !protocol.uses_sasl())
            {
                warnings.push(format!(
                    "{key} is ignored with security.protocol={}",
                    protocol.name()
                ));
            }
        }
        let tls = match protocol.uses_tls() {
            true => Some(tls_settings(properties)?),
            false => None,
        };
        let sasl = match protocol.uses_sasl() {
            true => Some(sasl_login(properties, protocol)?),
            false => None,
        };
        Ok(Self {
            tls,
            sasl,
            warnings,
        })
    }
}

/// The keys [`CommandConfig::from_properties`] acts on.
fn is_read(key: &str) -> bool {
    matches!(
        key,
        "security.protocol"
            | "ssl.truststore.type"
            | "ssl.truststore.location"
            | "ssl.truststore.certificates"
            | "ssl.keystore.type"
            | "ssl.keystore.location"
            | "ssl.keystore.key"
            | "ssl.keystore.certificate.chain"
            | "ssl.key.password"
            | "ssl.endpoint.identification.algorithm"
            | "ssl.enabled.protocols"
            | "sasl.mechanism"
            | "sasl.jaas.config"
    )
}

fn tls_settings(p: &BTreeMap<String, String>) -> Result<ClientTlsSettings, String> {
    for key in ["ssl.truststore.type", "ssl.keystore.type"] {
        if let Some(kind) = p.get(key).filter(|t| !t.trim().eq_ignore_ascii_case("PEM")) {
            return Err(format!(
                "{key}={kind} is not supported: only PEM stores are (convert a JKS or PKCS12 \
                 store with keytool -importkeystore and openssl pkcs12 -nodes)"
            ));
        }
    }
    let truststore = match (
        p.get("ssl.truststore.location"),
        p.get("ssl.truststore.certificates"),
    ) {
        (Some(_), Some(_)) => {
            return Err(
                "set ssl.truststore.location or ssl.truststore.certificates, not both".into(),
            )
        }
        (Some(path), None) => Some(TrustSource::File {
            path: PathBuf::from(path),
        }),
        (None, Some(pem)) => Some(TrustSource::Inline { pem: pem.clone() }),
        // client_config names the missing truststore in its own words.
        (None, None) => None,
    };
    let keystore = match (
        p.get("ssl.keystore.location"),
        p.get("ssl.keystore.key"),
        p.get("ssl.keystore.certificate.chain"),
    ) {
        (None, None, None) => None,
        (Some(path), None, None) => Some(KeySource::File {
            path: PathBuf::from(path),
        }),
        (None, Some(key), Some(chain)) => Some(KeySource::Inline {
            key_pem: key.clone(),
            chain_pem: chain.clone(),
        }),
        _ => {
            return Err("set ssl.keystore.location, or both ssl.keystore.key and \
                        ssl.keystore.certificate.chain"
                .into())
        }
    };
    let key_password = p.get("ssl.key.password").cloned();
    let server_name_check = match p.get("ssl.endpoint.identification.algorithm") {
        None => true,
        Some(v) if v.trim().eq_ignore_ascii_case("https") => true,
        Some(v) if v.trim().is_empty() => false,
        Some(v) => {
            return Err(format!(
                "ssl.endpoint.identification.algorithm: unknown value {v:?} (https, or empty to \
                 skip the host name check)"
            ))
        }
    };
    let enabled_protocols = p
        .get("ssl.enabled.protocols")
        .map(|v| split_list(v))
        .unwrap_or_default();
    Ok(ClientTlsSettings {
        truststore,
        keystore: keystore.map(|k| (k, key_password)),
        enabled_protocols,
        server_name_check,
    })
}

fn sasl_login(
    p: &BTreeMap<String, String>,
    protocol: SecurityProtocol,
) -> Result<SaslLogin, String> {
    let mechanism = match p.get("sasl.mechanism").map(|m| m.trim()) {
        None | Some("") => Mechanism::Plain,
        Some(name) => Mechanism::from_name(name).ok_or_else(|| {
            format!(
                "sasl.mechanism: {name} is not supported (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, \
                 in capitals)"
            )
        })?,
    };
    let jaas = p.get("sasl.jaas.config").ok_or_else(|| {
        format!(
            "security.protocol={} needs sasl.jaas.config with a username and a password",
            protocol.name()
        )
    })?;
    let credentials = login_credentials(jaas).map_err(|e| e.to_string())?;
    Ok(SaslLogin {
        mechanism,
        credentials,
    })
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::parse_properties;

    fn props(text: &str) -> BTreeMap<String, String> {
        parse_properties(text).unwrap()
    }

    fn config(text: &str) -> Result<CommandConfig, String> {
        CommandConfig::from_properties(&props(text))
    }

    #[test]
    fn an_empty_file_is_plaintext() {
        let c = config("").unwrap();
        assert!(c.tls.is_none() && c.sasl.is_none() && c.warnings.is_empty());
    }

    #[test]
    fn sasl_ssl_with_scram_and_a_pem_truststore() {
        let c = config(
            "security.protocol=sasl_ssl\n\
             ssl.truststore.type=PEM\n\
             ssl.truststore.location=/etc/ca.pem\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n\
             \x20   username=\"alice\" password=\"alice-secret\";\n",
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(
            tls.truststore,
            Some(TrustSource::File {
                path: "/etc/ca.pem".into()
            })
        );
        assert!(tls.server_name_check && tls.keystore.is_none());
        let sasl = c.sasl.unwrap();
        assert_eq!(sasl.mechanism, Mechanism::ScramSha512);
        assert_eq!(sasl.credentials.username, "alice");
        assert_eq!(sasl.credentials.password, "alice-secret");
    }

    #[test]
    fn mtls_keystore_endpoint_check_and_protocols() {
        let c = config(
            "security.protocol=SSL\n\
             ssl.truststore.certificates=-----BEGIN CERTIFICATE-----\\nxyz\n\
             ssl.keystore.type=pem\n\
             ssl.keystore.location=/etc/me.pem\n\
             ssl.key.password=pw\n\
             ssl.endpoint.identification.algorithm=\n\
             ssl.enabled.protocols=TLSv1.3, TLSv1.2\n",
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert!(
            matches!(tls.truststore, Some(TrustSource::Inline { ref pem }) if pem.contains('\n'))
        );
        let (source, password) = tls.keystore.unwrap();
        assert_eq!(
            source,
            KeySource::File {
                path: "/etc/me.pem".into()
            }
        );
        assert_eq!(password.as_deref(), Some("pw"));
        assert!(!tls.server_name_check);
        assert_eq!(tls.enabled_protocols, ["TLSv1.3", "TLSv1.2"]);
        assert!(c.sasl.is_none());
    }

    #[test]
    fn refusals_name_the_key() {
        let cases = [
            (
                "security.protocol=TLS",
                "security.protocol: unknown protocol",
            ),
            (
                "ssl.truststore.locaton=/x",
                "unknown key ssl.truststore.locaton",
            ),
            ("bootstrap.servers=x:1", "unknown key bootstrap.servers"),
            (
                "security.protocol=SSL\nssl.truststore.type=JKS",
                "ssl.truststore.type=JKS is not supported",
            ),
            (
                "security.protocol=SSL\nssl.truststore.location=a\nssl.truststore.certificates=b",
                "not both",
            ),
            (
                "security.protocol=SSL\nssl.keystore.key=k",
                "both ssl.keystore.key and ssl.keystore.certificate.chain",
            ),
            (
                "security.protocol=SSL\nssl.endpoint.identification.algorithm=ldap",
                "ssl.endpoint.identification.algorithm: unknown value",
            ),
            ("security.protocol=SASL_PLAINTEXT", "needs sasl.jaas.config"),
            (
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.jaas.config=x",
                "sasl.mechanism: GSSAPI is not supported",
            ),
            (
                "security.protocol=SASL_PLAINTEXT\nsasl.jaas.config=\
                 org.apache.kafka.common.security.plain.PlainLoginModule required username=a;",
                "no `password` option",
            ),
        ];
        for (text, needle) in cases {
            let err = config(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err} lacks {needle}");
        }
    }

    #[test]
    fn known_kafka_keys_and_misplaced_keys_only_warn() {
        let c = config(
            "client.id=x\nrequest.timeout.ms=5\nssl.truststore.location=/ca.pem\n\
             sasl.mechanism=PLAIN\n",
        )
        .unwrap();
        assert!(c.tls.is_none() && c.sasl.is_none());
        let warnings = c.warnings.join("\n");
        for needle in [
            "client.id is ignored",
            "request.timeout.ms is ignored",
            "ssl.truststore.location is ignored with security.protocol=PLAINTEXT",
            "sasl.mechanism is ignored with security.protocol=PLAINTEXT",
        ] {
            assert!(warnings.contains(needle), "{warnings} lacks {needle}");
        }
        // PLAIN is the default mechanism.
        let c = config(
            "security.protocol=SASL_PLAINTEXT\nsasl.jaas.config=\
             org.apache.kafka.common.security.plain.PlainLoginModule required username=a \
             password=b;",
        )
        .unwrap();
        assert_eq!(c.sasl.unwrap().mechanism, Mechanism::Plain);
    }
}
