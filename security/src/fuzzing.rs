//! Fuzzing entry points for the inputs of this crate that a stranger or an operator controls:
//! SASL tokens (PLAIN, SCRAM-SHA-256/512) and TLS records from a client that has not
//! authenticated yet, and the `sasl.jaas.config` and `ssl.principal.mapping.rules` texts read at
//! start-up. Compiled for tests and with the `fuzzing` feature only.
//!
//! Thin targets, logic here: each cargo-fuzz target in `fuzz/` (nightly, libFuzzer) is one call
//! to a function below, and this module's tests call the same functions with seeded mutations of
//! valid inputs and random bytes on the stable toolchain, so the entry points keep compiling and
//! run in every `cargo test`. A function returns for any input; it panics only when the code
//! under test panics or when one of its oracles sees a wrong answer:
//!
//! - an exchange ends exactly once: after `Done` or an error every later token is refused with
//!   `IllegalState` and the authenticator never reports itself complete after an error;
//! - PLAIN is `Done` only for a listed user with exactly that user's password and an empty or
//!   equal authorization id;
//! - SCRAM challenges only a known user with enough iterations, and is `Done` only when the
//!   client-final message carries the nonce `client nonce + server nonce`, the GS2 header as
//!   channel binding and the proof this module computes itself from the user's password, and
//!   answers with the server signature for exactly that AuthMessage (see `scram.rs`);
//! - a parsed JAAS entry, written back out, parses to the same entry, and its `Debug` form does
//!   not depend on option values (they may be passwords);
//! - mapping rules print (`Display`) to a text that parses to the same rules and maps alike,
//!   and `DEFAULT` first maps every DN to itself;
//! - the TLS server never completes a handshake that required a client certificate without
//!   one, and a failed connection stays failed.
//!
//! Input layouts, chosen so that byte-level mutations stay meaningful (`FF` is a byte no UTF-8
//! text holds, so SASL tokens and rule texts are separated by it):
//!
//! ```text
//! sasl_plain            token (FF token)*               one SaslAuthenticate per token
//! sasl_scram            mode token (FF token)*          mode: see scram.rs
//! jaas                  the sasl.jaas.config value (UTF-8)
//! principal_rules       0x00 rules FF dn               (even first byte: UTF-8 texts)
//!                       0x01 certificate DER           (odd: subject DN, then DEFAULT)
//! tls_server_handshake  config chunk record-bytes...   config: index into TLS_LISTENERS,
//!                                                       chunk: bytes per read_tls (0 = all)
//! ```
//!
//! The TLS key material under `fuzzing/` is for tests only: an EC P-256 CA, a server certificate
//! for `localhost`/127.0.0.1 and a client certificate (`O=millrace, OU=fuzz, CN=fuzz-client`),
//! valid for 100 years, made with `openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256`, `openssl req -x509` and `openssl x509 -req`.
//!
//! Nothing here is tied to a shard.

mod scram;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::sync::{Arc, OnceLock};

use rustls::{ServerConfig, ServerConnection};

use crate::sasl::{
    parse_jaas, Authenticator, Credentials, JaasConfig, Mechanism, PlainUsers, SaslError,
    ScramCredential, Step,
};
use crate::tls::{self, ClientAuth, KeySource, PrincipalRules, ServerTlsSettings, TrustSource};

pub use scram::{client_final, sasl_scram, SALT, SERVER_NONCE, USERS as SCRAM_USERS};

/// Separates the tokens (and the texts) packed into one fuzz input.
pub const SEPARATOR: u8 = 0xff;

/// The users of the PLAIN target, as a broker would read them from its JAAS line.
pub const PLAIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
     username=\"admin\" password=\"admin-pw\" user_admin=\"admin-pw\" user_alice=\"alice-pw\" \
     user_empty=\"\" user_=\"nameless-pw\";";

/// The test CA (PEM) that signed [`SERVER_CERT`] and [`CLIENT_CERT`].
pub const CA_CERT: &str = include_str!("fuzzing/ca.pem");
/// The server certificate (CN=localhost, SAN localhost and 127.0.0.1) and its PKCS#8 key.
pub const SERVER_CERT: &str = include_str!("fuzzing/server.pem");
pub const SERVER_KEY: &str = include_str!("fuzzing/server.key");
/// A client certificate signed by [`CA_CERT`] and its PKCS#8 key.
pub const CLIENT_CERT: &str = include_str!("fuzzing/client.pem");
pub const CLIENT_KEY: &str = include_str!("fuzzing/client.key");

/// The listener set-ups the TLS target chooses from: (client auth, enabled protocols). A
/// TLS 1.2 listener that requires a certificate reads the client's certificate chain in the
/// clear, so mutations of it reach the certificate parser and the chain verifier.
pub const TLS_LISTENERS: [(ClientAuth, &str); 4] = [
    (ClientAuth::None, ""),
    (ClientAuth::Required, "TLSv1.2"),
    (ClientAuth::Requested, "TLSv1.3"),
    (ClientAuth::Required, ""),
];

/// One PLAIN exchange: every token is one SaslAuthenticate.
pub fn sasl_plain(data: &[u8]) {
    let users = users();
    let mut auth = Authenticator::new(Mechanism::Plain);
    let mut ended: Option<&'static str> = None;
    for token in data.split(|&b| b == SEPARATOR) {
        let outcome = auth.step(token, users);
        if let Some(state) = ended {
            assert_eq!(outcome, Err(SaslError::IllegalState { state }));
            continue;
        }
        match outcome {
            Ok(Step::Done { user, response }) => {
                assert!(response.is_empty(), "PLAIN answers with no bytes");
                assert!(
                    users.plain_accepts(token, &user),
                    "PLAIN accepted {token:?}"
                );
                ended = Some("COMPLETE");
            }
            Ok(Step::Challenge(_)) => panic!("PLAIN has no challenge"),
            Err(_) => ended = Some("FAILED"),
        }
        assert_eq!(auth.is_complete(), ended == Some("COMPLETE"));
    }
}

/// Parses a `sasl.jaas.config` value; what parses must survive being written back out.
pub fn jaas(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = parse_jaas(text) else {
        return;
    };
    let written = write_jaas(&config);
    match parse_jaas(&written) {
        Ok(again) => assert!(
            again == config,
            "{written:?} parses differently from {text:?}"
        ),
        Err(e) => panic!("{written:?} (from {text:?}) does not parse: {e}"),
    }
    let mut blanked = config.clone();
    blanked.options.values_mut().for_each(String::clear);
    assert_eq!(
        format!("{config:?}"),
        format!("{blanked:?}"),
        "Debug shows a value"
    );
}

/// Mapping rules and a DN, or a certificate whose subject DN is printed (see the module doc).
pub fn principal_rules(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        if let Ok(dn) = tls::certificate_dn(rest) {
            let default = PrincipalRules::parse("DEFAULT").expect("DEFAULT parses");
            assert_eq!(default.apply(&dn).ok().as_deref(), Some(dn.as_str()));
        }
        return;
    }
    let mut texts = rest.splitn(2, |&b| b == SEPARATOR);
    let rules = texts.next().unwrap_or_default();
    let dn = texts.next().unwrap_or_default();
    let (Ok(rules), Ok(dn)) = (std::str::from_utf8(rules), std::str::from_utf8(dn)) else {
        return;
    };
    if let Ok(parsed) = PrincipalRules::parse(rules) {
        let shown = parsed.to_string();
        let inner = &shown[1..shown.len() - 1];
        let again = PrincipalRules::parse(inner)
            .unwrap_or_else(|e| panic!("{shown} (from {rules:?}) does not parse: {e}"));
        assert_eq!(again.to_string(), shown, "rules from {rules:?}");
        let (first, second) = (parsed.apply(dn), again.apply(dn));
        assert_eq!(first.ok(), second.ok(), "rules {rules:?} on {dn:?}");
    }
    if let Ok(with_default) = PrincipalRules::parse(&format!("DEFAULT,{rules}")) {
        assert_eq!(with_default.apply(dn).ok().as_deref(), Some(dn));
    }
}

/// Client bytes into a TLS listener's server connection (see the module doc for the layout).
pub fn tls_server_handshake(data: &[u8]) {
    let Some((&[listener, chunk], bytes)) = data.split_first_chunk::<2>() else {
        return;
    };
    let index = usize::from(listener) % TLS_LISTENERS.len();
    let mut conn = ServerConnection::new(tls_configs()[index].clone()).expect("a fresh connection");
    let chunk = if chunk == 0 {
        bytes.len().max(1)
    } else {
        usize::from(chunk)
    };
    for mut piece in bytes.chunks(chunk) {
        while !piece.is_empty() {
            // An error here is a full buffer; the broker then stops reading for a while.
            if conn.read_tls(&mut piece).is_err() {
                break;
            }
            if let Err(first) = conn.process_new_packets() {
                drain(&mut conn);
                let again = conn
                    .process_new_packets()
                    .expect_err("a failed connection stays so");
                // By text: `rustls::Error::Other` compares its inner error by pointer.
                assert_eq!(format!("{again:?}"), format!("{first:?}"));
                return;
            }
            drain(&mut conn);
        }
    }
    if !conn.is_handshaking() && TLS_LISTENERS[index].0 == ClientAuth::Required {
        let certificates = conn
            .peer_certificates()
            .expect("a client certificate was required");
        let rules = PrincipalRules::parse("DEFAULT").expect("DEFAULT parses");
        tls::peer_principal_name(Some(certificates), &rules).expect("a verified certificate");
    }
}

/// The server configuration of `TLS_LISTENERS[index]`, built from the test key material.
pub fn tls_server_config(index: usize) -> Arc<ServerConfig> {
    tls_configs()[index].clone()
}

/// The users every SASL target runs against: PLAIN users from [`PLAIN_JAAS`], SCRAM users in
/// `scram::USERS`.
struct Users {
    plain: PlainUsers,
    plain_passwords: JaasConfig,
    scram: Vec<scram::Known>,
}

impl Users {
    /// True when a PLAIN token is `[authzid] NUL user NUL password` with `user`'s non-empty
    /// password and an authorization id that is empty or `user`.
    fn plain_accepts(&self, token: &[u8], user: &str) -> bool {
        let Ok(text) = std::str::from_utf8(token) else {
            return false;
        };
        let parts: Vec<&str> = text.split('\0').collect();
        let [authzid, name, password] = parts[..] else {
            return false;
        };
        let listed = self.plain_passwords.options.get(&format!("user_{user}"));
        name == user
            && !name.is_empty()
            && (authzid.is_empty() || authzid == user)
            && !password.is_empty()
            && listed.map(String::as_str) == Some(password)
    }
}

impl Credentials for Users {
    fn check_plain(&self, user: &str, password: &str) -> bool {
        self.plain.check(user, password)
    }

    fn scram(&self, mech: Mechanism, user: &str) -> Option<ScramCredential> {
        self.scram
            .iter()
            .find(|k| k.mech == mech && k.user == user)
            .map(|k| k.credential.clone())
    }
}

fn users() -> &'static Users {
    static USERS: OnceLock<Users> = OnceLock::new();
    USERS.get_or_init(|| {
        let jaas = parse_jaas(PLAIN_JAAS).expect("the PLAIN users' JAAS line parses");
        Users {
            plain: PlainUsers::from_jaas(&jaas),
            plain_passwords: jaas,
            scram: scram::known_users(),
        }
    })
}

fn tls_configs() -> &'static [Arc<ServerConfig>] {
    static CONFIGS: OnceLock<Vec<Arc<ServerConfig>>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        TLS_LISTENERS
            .iter()
            .map(|&(client_auth, protocol)| {
                let mut s = ServerTlsSettings::new(KeySource::Inline {
                    key_pem: SERVER_KEY.to_string(),
                    chain_pem: SERVER_CERT.to_string(),
                });
                s.truststore = Some(TrustSource::Inline {
                    pem: CA_CERT.to_string(),
                });
                s.client_auth = client_auth;
                s.enabled_protocols = protocol.split_terminator(',').map(Into::into).collect();
                tls::server_config(&s).expect("the test key material makes a listener")
            })
            .collect()
    })
}

/// Takes everything the server wants to send, and any plaintext it decrypted.
fn drain(conn: &mut ServerConnection) {
    let mut sink = Vec::new();
    while conn.wants_write() {
        if conn.write_tls(&mut sink).is_err() {
            break;
        }
    }
    let mut plaintext = [0u8; 4096];
    while let Ok(n) = conn.reader().read(&mut plaintext) {
        if n == 0 {
            break;
        }
    }
}

/// A JAAS entry as text: the login module, every key and every value double-quoted (Kafka's
/// tokenizer takes a quoted string wherever it takes a word), with the escapes it reads.
fn write_jaas(config: &JaasConfig) -> String {
    let mut out = format!("{} {}", quote(&config.login_module), config.flag.name());
    for (key, value) in &config.options {
        out.push_str(&format!(" {}={}", quote(key), quote(value)));
    }
    out.push(';');
    out
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
