//! TLS for Kafka listeners and for the broker's own outgoing connections: rustls server and
//! client configurations built from the values of Kafka's `ssl.*` keys (PEM keystores and
//! truststores, as files or inline values), and the principal of a client certificate as Kafka
//! derives it (the subject DN printed the way Java's `X500Principal.getName()` prints it, then
//! `ssl.principal.mapping.rules`).
//!
//! The broker resolves the keys (including listener-prefixed variants) and hands their values
//! here; this module only turns values into configurations.
//!
//! Invariants:
//! - every configuration carries the *ring* provider explicitly; nothing relies on a
//!   process-wide default provider;
//! - errors name the Kafka key at fault and a file path (or "the configured value"), never key
//!   material nor passwords;
//! - no sockets: the only I/O is reading the keystore and truststore files the settings name
//!   (and the files given to [`fingerprint`]).

mod material;
mod params;
mod pbe;
mod principal;
mod verifier;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};

pub use principal::{certificate_dn, peer_principal_name, PrincipalRules, ANONYMOUS};

/// `ssl.enabled.protocols` when the key is unset or empty (Kafka's default).
pub const DEFAULT_ENABLED_PROTOCOLS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];
/// `ssl.principal.mapping.rules` when the key is unset.
pub const DEFAULT_PRINCIPAL_MAPPING_RULES: &str = "DEFAULT";

/// `ssl.client.auth`: whether a listener asks clients for a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    #[default]
    None,
    /// Ask for a certificate, accept clients without one (they become `ANONYMOUS`).
    Requested,
    /// Refuse clients without a certificate signed by the truststore.
    Required,
}

/// Where the broker's (or a client's) private key and certificate chain come from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `ssl.keystore.location`: one PEM file holding the private key and the certificate chain
    /// (Kafka's `ssl.keystore.type=PEM` file form).
    File { path: PathBuf },
    /// `ssl.keystore.key` and `ssl.keystore.certificate.chain`: PEM text in the configuration.
    Inline { key_pem: String, chain_pem: String },
}

/// Where trusted CA certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustSource {
    /// `ssl.truststore.location`: a PEM file of CA certificates.
    File { path: PathBuf },
    /// `ssl.truststore.certificates`: PEM text in the configuration.
    Inline { pem: String },
}

/// The resolved `ssl.*` values of one TLS listener.
#[derive(Clone)]
pub struct ServerTlsSettings {
    pub keystore: KeySource,
    /// `ssl.key.password`: needed when the key is an `ENCRYPTED PRIVATE KEY`; ignored otherwise.
    pub key_password: Option<String>,
    pub truststore: Option<TrustSource>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`; empty means [`DEFAULT_ENABLED_PROTOCOLS`], as in Kafka.
    pub enabled_protocols: Vec<String>,
    /// `ssl.cipher.suites` in Java/IANA names; empty means the provider's defaults.
    pub cipher_suites: Vec<String>,
    /// `ssl.principal.mapping.rules`.
    pub principal_mapping_rules: String,
}

/// The resolved `ssl.*` values for the broker's outgoing connections (inter-broker,
/// controller, tools).
#[derive(Clone)]
pub struct ClientTlsSettings {
    /// Required: no system trust store is consulted.
    pub truststore: Option<TrustSource>,
    /// The client certificate for mTLS, with its `ssl.key.password`.
    pub keystore: Option<(KeySource, Option<String>)>,
    /// `ssl.enabled.protocols`; empty means [`DEFAULT_ENABLED_PROTOCOLS`].
    pub enabled_protocols: Vec<String>,
    /// `ssl.endpoint.identification.algorithm`: `https` (the default) checks the server's name
    /// against its certificate, an empty value only checks the chain.
    pub server_name_check: bool,
}

/// Why a TLS configuration (or a principal) could not be built. Messages name the Kafka key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {}: {source}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: malformed PEM in {place}: {reason}")]
    Pem {
        key: &'static str,
        place: String,
        reason: &'static str,
    },
    #[error("{key}: no certificate in {place}")]
    NoCertificate { key: &'static str, place: String },
    #[error("{key}: certificate {index} in {place} is not a valid X.509 certificate")]
    BadCertificate {
        key: &'static str,
        place: String,
        index: usize,
    },
    #[error("{key}: certificate {index} in {place} cannot be a trust anchor: {reason}")]
    BadTrustAnchor {
        key: &'static str,
        place: String,
        index: usize,
        reason: String,
    },
    #[error("{key}: no private key in {place}")]
    NoPrivateKey { key: &'static str, place: String },
    #[error("{key}: more than one private key in {place}")]
    MultiplePrivateKeys { key: &'static str, place: String },
    #[error(
        "ssl.key.password: the private key in {place} is encrypted but ssl.key.password is not set"
    )]
    KeyPasswordMissing { place: String },
    #[error("ssl.key.password: cannot decrypt the private key in {place} (wrong password?)")]
    WrongKeyPassword { place: String },
    #[error(
        "{key}: the private key in {place} is encrypted with {scheme}, which is not supported"
    )]
    UnsupportedKeyEncryption {
        key: &'static str,
        place: String,
        scheme: String,
    },
    #[error("{key}: invalid private key in {place}: {reason}")]
    InvalidKey {
        key: &'static str,
        place: String,
        reason: String,
    },
    #[error("{key}: the private key in {place} does not match the certificate")]
    KeyMismatch { key: &'static str, place: String },
    #[error(
        "ssl.client.auth={client_auth} needs a truststore: set ssl.truststore.location or \
         ssl.truststore.certificates"
    )]
    TruststoreRequired { client_auth: &'static str },
    #[error(
        "ssl.truststore.location: a TLS client needs a truststore (ssl.truststore.location or \
         ssl.truststore.certificates); no system trust store is used"
    )]
    ClientTruststoreRequired,
    #[error("ssl.client.auth: unknown value {value:?} (expected required, requested or none)")]
    UnknownClientAuth { value: String },
    #[error("ssl.enabled.protocols: {name} is not supported (only TLSv1.2 and TLSv1.3 are)")]
    UnsupportedProtocol { name: String },
    #[error("ssl.enabled.protocols: unknown protocol {name:?}")]
    UnknownProtocol { name: String },
    #[error("ssl.cipher.suites: {name} is not supported (supported: {supported})")]
    UnsupportedCipherSuite { name: String, supported: String },
    #[error("ssl.cipher.suites: unknown cipher suite {name:?}")]
    UnknownCipherSuite { name: String },
    #[error("ssl.cipher.suites: no listed suite can be used with ssl.enabled.protocols")]
    NoUsableCipherSuite,
    #[error("{key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("ssl.principal.mapping.rules: invalid rule `{rule}`: {reason}")]
    InvalidRule { rule: String, reason: String },
    #[error("ssl.principal.mapping.rules: no rule applies to {dn}")]
    NoMatchingRule { dn: String },
    #[error("peer certificate: {reason}")]
    PeerCertificate { reason: String },
}

impl ClientAuth {
    /// Parses an `ssl.client.auth` value, case-insensitively as Kafka does.
    pub fn parse(value: &str) -> Result<Self, TlsError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "requested" => Ok(Self::Requested),
            "required" => Ok(Self::Required),
            _ => Err(TlsError::UnknownClientAuth {
                value: value.to_string(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Requested => "requested",
            Self::Required => "required",
        }
    }
}

impl ServerTlsSettings {
    /// Settings with Kafka's defaults for everything but the keystore.
    pub fn new(keystore: KeySource) -> Self {
        Self {
            keystore,
            key_password: None,
            truststore: None,
            client_auth: ClientAuth::None,
            enabled_protocols: Vec::new(),
            cipher_suites: Vec::new(),
            principal_mapping_rules: DEFAULT_PRINCIPAL_MAPPING_RULES.to_string(),
        }
    }
}

impl Default for ClientTlsSettings {
    fn default() -> Self {
        Self {
            truststore: None,
            keystore: None,
            enabled_protocols: Vec::new(),
            server_name_check: true,
        }
    }
}

/// Builds a listener's rustls configuration. The principal mapping rules are checked here too
/// so that a bad value fails at startup rather than at the first client.
pub fn server_config(s: &ServerTlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    PrincipalRules::parse(&s.principal_mapping_rules)?;
    let versions = params::protocol_versions(&s.enabled_protocols)?;
    let provider = params::provider(&s.cipher_suites, &versions)?;
    let keystore = material::load_keystore(&s.keystore, s.key_password.as_deref())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| config_error(params::ENABLED_PROTOCOLS, e))?;
    let builder = match client_verifier(s, &provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(keystore.chain, keystore.key)
        .map_err(|e| material::certified_key_error(e, &keystore.key_origin))?;
    Ok(Arc::new(config))
}

/// Builds the configuration of the broker's outgoing TLS connections. The caller still gives
/// `ClientConnection::new` a server name; with `server_name_check` off it is not compared with
/// the certificate.
pub fn client_config(s: &ClientTlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let versions = params::protocol_versions(&s.enabled_protocols)?;
    let provider = params::provider(&[], &versions)?;
    let trust = s
        .truststore
        .as_ref()
        .ok_or(TlsError::ClientTruststoreRequired)?;
    let roots = Arc::new(material::load_truststore(trust)?);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| config_error(params::ENABLED_PROTOCOLS, e))?;
    let builder = if s.server_name_check {
        builder.with_root_certificates(roots)
    } else {
        let verifier = verifier::ChainOnly::new(roots, provider, material::trust_key(trust))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };
    let config = match &s.keystore {
        Some((source, password)) => {
            let keystore = material::load_keystore(source, password.as_deref())?;
            builder
                .with_client_auth_cert(keystore.chain, keystore.key)
                .map_err(|e| material::certified_key_error(e, &keystore.key_origin))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// How often the broker looks at a TLS configuration's files for changes (listeners on a new
/// connection, its own outgoing connections on a dial).
pub const RELOAD_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// The files a listener's configuration was built from, for the broker to poll with
/// [`fingerprint`] and rebuild when they change.
pub fn watched_files(s: &ServerTlsSettings) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let KeySource::File { path } = &s.keystore {
        files.push(path.clone());
    }
    if let Some(TrustSource::File { path }) = &s.truststore {
        if !files.contains(path) {
            files.push(path.clone());
        }
    }
    files
}

/// The files a client configuration was built from (see [`watched_files`]).
pub fn client_watched_files(s: &ClientTlsSettings) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some((KeySource::File { path }, _)) = &s.keystore {
        files.push(path.clone());
    }
    if let Some(TrustSource::File { path }) = &s.truststore {
        if !files.contains(path) {
            files.push(path.clone());
        }
    }
    files
}

/// A value that changes when any of the files' content (or presence) changes. It hashes the
/// content rather than trusting mtimes, whose granularity can hide a quick rewrite; keystores
/// are small, so reading them on every poll is cheap.
pub fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut hasher = Sha256::new();
    for path in paths {
        let name = path.as_os_str().as_encoded_bytes();
        hasher.update((name.len() as u64).to_be_bytes());
        hasher.update(name);
        match std::fs::read(path) {
            Ok(content) => {
                hasher.update([1]);
                hasher.update((content.len() as u64).to_be_bytes());
                hasher.update(&content);
            }
            Err(e) => {
                hasher.update([0]);
                hasher.update(format!("{:?}", e.kind()).as_bytes());
            }
        }
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

impl fmt::Debug for KeySource {
    // The inline key is secret: show only that it is there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path } => f.debug_struct("File").field("path", path).finish(),
            Self::Inline { chain_pem, .. } => f
                .debug_struct("Inline")
                .field("key_pem", &"<hidden>")
                .field("chain_pem", chain_pem)
                .finish(),
        }
    }
}

impl fmt::Debug for ServerTlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsSettings")
            .field("keystore", &self.keystore)
            .field(
                "key_password",
                &self.key_password.as_ref().map(|_| "<hidden>"),
            )
            .field("truststore", &self.truststore)
            .field("client_auth", &self.client_auth)
            .field("enabled_protocols", &self.enabled_protocols)
            .field("cipher_suites", &self.cipher_suites)
            .field("principal_mapping_rules", &self.principal_mapping_rules)
            .finish()
    }
}

impl fmt::Debug for ClientTlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keystore = self
            .keystore
            .as_ref()
            .map(|(source, password)| (source, password.as_ref().map(|_| "<hidden>")));
        f.debug_struct("ClientTlsSettings")
            .field("truststore", &self.truststore)
            .field("keystore", &keystore)
            .field("enabled_protocols", &self.enabled_protocols)
            .field("server_name_check", &self.server_name_check)
            .finish()
    }
}

/// The client-certificate verifier `ssl.client.auth` asks for, if any.
fn client_verifier(
    s: &ServerTlsSettings,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, TlsError> {
    if s.client_auth == ClientAuth::None {
        return Ok(None);
    }
    // Java would fall back to the JDK's cacerts; there is no such store here, and client
    // certificates are almost always issued by a private CA anyway.
    let trust = s.truststore.as_ref().ok_or(TlsError::TruststoreRequired {
        client_auth: s.client_auth.as_str(),
    })?;
    let roots: Arc<RootCertStore> = Arc::new(material::load_truststore(trust)?);
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if s.client_auth == ClientAuth::Requested {
        builder = builder.allow_unauthenticated();
    }
    let verifier = builder.build().map_err(|e| TlsError::Config {
        key: material::trust_key(trust),
        reason: e.to_string(),
    })?;
    Ok(Some(verifier))
}

fn config_error(key: &'static str, e: rustls::Error) -> TlsError {
    TlsError::Config {
        key,
        reason: e.to_string(),
    }
}
