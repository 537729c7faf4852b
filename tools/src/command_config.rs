//! `--command-config FILE`: the Kafka client properties a secured listener needs, read as
//! Kafka's shell tools read them, turned into what a [`Client`](crate::client::Client) connects
//! with ([`Security`]).
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
//! * A key this tool does not read is an error naming it: a typo in `ssl.truststore.location`
//!   must not quietly give a plaintext or unverified connection. Kafka client keys that tune what
//!   this one-connection client does not have (timeouts, retries, `client.id`, store passwords
//!   of PEM stores, ...) are accepted with a warning on stderr, so Kafka's files still work.
//! * `ssl.*` keys under a non-TLS protocol and `sasl.*` keys under a non-SASL one are ignored
//!   with a warning, as Kafka ignores them.
//! * No system trust store: SSL and SASL_SSL need a truststore (the security crate's rule).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use millrace_security::sasl::{login_credentials, LoginCredentials, Mechanism};
use millrace_security::tls::{client_config, ClientTlsSettings, KeySource, TrustSource};

use crate::error::ToolError;

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
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    fn uses_sasl(self) -> bool {
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

/// What every connection of a command is opened with.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslLogin>,
}

/// Reads `path`, prints its warnings on stderr and loads its stores.
pub fn load(path: &Path) -> Result<Security, ToolError> {
    let err = |reason: String| config_error(path, reason);
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let properties = parse_properties(&text).map_err(err)?;
    let config = CommandConfig::from_properties(&properties).map_err(err)?;
    for warning in &config.warnings {
        eprintln!(
            "millrace-tools: warning: --command-config {}: {warning}",
            path.display()
        );
    }
    let tls = match &config.tls {
        Some(settings) => Some(client_config(settings).map_err(|e| err(e.to_string()))?),
        None => None,
    };
    Ok(Security {
        tls,
        sasl: config.sasl,
    })
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
                    "unknown key {key} (this tool reads security.protocol, ssl.* store and \
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

fn config_error(path: &Path, reason: String) -> ToolError {
    ToolError::Config {
        path: path.display().to_string(),
        reason,
    }
}

/// Parses a Java properties file: a later key overrides an earlier one, as in
/// `java.util.Properties`. The only error is a malformed `\uXXXX` escape.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line = trim_blank_start(line);
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        // A line ending in an odd number of backslashes continues on the next one, whose
        // leading blanks are dropped.
        let mut logical = line.to_string();
        while ends_in_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(trim_blank_start(next)),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key).map_err(|e| format!("line {}: {e}", index + 1))?;
        let value = unescape(value).map_err(|e| format!("line {}: {e}", index + 1))?;
        out.insert(key, value);
    }
    Ok(out)
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn trim_blank_start(line: &str) -> &str {
    line.trim_start_matches(is_blank)
}

fn ends_in_odd_backslashes(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// The key ends at the first unescaped `=`, `:` or blank; blanks and one `=` or `:` follow it.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_blank(c) {
            end = i;
            break;
        }
    }
    let key = &line[..end];
    let mut rest = trim_blank_start(&line[end..]);
    if let Some(after) = rest.strip_prefix(['=', ':']) {
        rest = trim_blank_start(after);
    }
    (key, rest)
}

/// Java's escapes: `\t \n \r \f`, `\uXXXX`, and `\c` for any other `c`.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("malformed \\uxxxx escape \\u{hex}"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> BTreeMap<String, String> {
        parse_properties(text).unwrap()
    }

    fn config(text: &str) -> Result<CommandConfig, String> {
        CommandConfig::from_properties(&props(text))
    }

    #[test]
    fn java_properties_syntax() {
        let p = props(
            "# comment\n  ! another\n\
             a=1\n\
             b : 2\n\
             c 3\n\
             d\n\
             e = spaced value  \n\
             f=line one \\\n     and two\n\
             g=back\\\\slash\n\
             h=\\u0041\\t\\=x\n\
             key\\ with\\ blanks = v\n\
             a=override\n\
             \t  indented=yes\r\n",
        );
        let expected = [
            ("a", "override"),
            ("b", "2"),
            ("c", "3"),
            ("d", ""),
            ("e", "spaced value  "),
            ("f", "line one and two"),
            ("g", "back\\slash"),
            ("h", "A\t=x"),
            ("indented", "yes"),
            ("key with blanks", "v"),
        ];
        let got: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected);
        let err = parse_properties("ok=1\nbad=\\u12G4\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("\\u12G4"), "{err}");
        // A comment line ending in a backslash does not swallow the next line.
        assert_eq!(props("# c \\\nx=1")["x"], "1");
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

    #[test]
    fn load_reads_the_file_and_names_it_in_errors() {
        let dir = std::env::temp_dir().join(format!("millrace-cc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(&file, "security.protocol=SSL\n").unwrap();
        let err = load(&file).err().unwrap().to_string();
        assert!(
            err.contains("client.properties") && err.contains("needs a truststore"),
            "{err}"
        );
        let err = load(&dir.join("missing.properties"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing.properties"), "{err}");
        std::fs::write(&file, "security.protocol=PLAINTEXT\n").unwrap();
        let security = load(&file).unwrap();
        assert!(security.tls.is_none() && security.sasl.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
