//! Kafka's SASL mechanisms PLAIN (RFC 4616) and SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802,
//! RFC 7677), server side ([`Authenticator`]) and client side ([`SaslClient`], for the tools),
//! and the syntax of Kafka's `sasl.jaas.config`.
//!
//! Sans-I/O: the broker owns the socket and the stored credentials. After a SaslHandshake picks
//! a [`Mechanism`], it creates one [`Authenticator`] for the exchange and hands it every
//! SaslAuthenticate token together with its view of the users ([`Credentials`]); what comes back
//! is either a challenge to send, the authenticated user with the final token, or a
//! [`SaslError`] that ends the exchange.
//!
//! ```text
//! PLAIN  client: [authzid] NUL user NUL password
//!        server: Done(empty)
//! SCRAM  client: n,[a=authzid],n=user,r=cnonce[,ext]
//!        server: Challenge(r=cnonce+snonce,s=base64(salt),i=iterations)
//!        client: c=base64(gs2 header),r=cnonce+snonce[,ext],p=base64(proof)
//!        server: Done(v=base64(server signature))
//! ```
//!
//! Invariants:
//! - an exchange ends exactly once: after `Done` or after any error, [`Authenticator::step`]
//!   answers [`SaslError::IllegalState`] (Kafka's ILLEGAL_SASL_STATE);
//! - the SCRAM nonce of the client-final message must equal client nonce + server nonce exactly
//!   (CVE-2024-56128 was Kafka accepting other nonces), and its channel binding must be the GS2
//!   header of the client-first message;
//! - passwords are never stored (PLAIN keeps keyed digests, SCRAM keeps StoredKey/ServerKey),
//!   never shown by `Debug` and never put in an error; secrets are compared in constant time;
//! - any input, however malformed, yields an error and never a panic.
//!
//! Nothing here is tied to a shard: an `Authenticator` lives with the connection it serves.

mod client;
mod jaas;
mod plain;
mod scram;

use std::fmt;

pub use client::{login_credentials, ClientStep, LoginCredentials, SaslClient};
pub use jaas::{parse_jaas, ControlFlag, JaasConfig, PLAIN_LOGIN_MODULE, SCRAM_LOGIN_MODULE};
pub use plain::PlainUsers;
pub use scram::{salted_password, ScramCredential, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN};

/// The SASL mechanisms this broker serves, by Kafka's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    /// Every mechanism, in the order a SaslHandshake response may list them.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    /// The name on the wire (SaslHandshake, `sasl.enabled.mechanisms`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism with exactly this name: Kafka compares mechanism names case-sensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism` type as carried by Describe/AlterUserScramCredentials
    /// (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512); `None` for PLAIN.
    pub fn scram_type(self) -> Option<i8> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha256 => Some(1),
            Mechanism::ScramSha512 => Some(2),
        }
    }

    /// The SCRAM mechanism of a `ScramMechanism` type; `None` for 0 (UNKNOWN) and anything else.
    pub fn from_scram_type(t: i8) -> Option<Self> {
        match t {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The broker's view of its users, consulted by each step of an exchange.
pub trait Credentials {
    /// PLAIN: true when `password` is this user's. Implementations compare in constant time.
    fn check_plain(&self, user: &str, password: &str) -> bool;
    /// The stored SCRAM credential of `user` for `mech`, if the user has one.
    fn scram(&self, mech: Mechanism, user: &str) -> Option<ScramCredential>;
}

/// What one step of an exchange produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes as the SaslAuthenticate `auth_bytes` and wait for the next token.
    Challenge(Vec<u8>),
    /// The client is authenticated as `user`; send `response` as the final `auth_bytes`.
    Done { user: String, response: Vec<u8> },
}

/// Which SCRAM message a parse error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScramMessage {
    ClientFirst,
    ClientFinal,
    /// What a client ([`SaslClient`]) received first: nonce, salt, iterations.
    ServerFirst,
    /// What a client received last: the server signature or an error.
    ServerFinal,
}

impl fmt::Display for ScramMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScramMessage::ClientFirst => "client-first message",
            ScramMessage::ClientFinal => "client-final message",
            ScramMessage::ServerFirst => "server-first message",
            ScramMessage::ServerFinal => "server-final message",
        })
    }
}

/// Why an exchange, a credential or a JAAS configuration was refused. The `Display` text is for
/// the broker's log (it may name the user, never a secret); [`SaslError::client_message`] is the
/// text Kafka lets the client see.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("Invalid SASL/PLAIN response: {reason}")]
    MalformedPlain { reason: String },
    #[error("Authentication failed: username not specified")]
    PlainUsernameMissing,
    #[error("Authentication failed: password not specified")]
    PlainPasswordMissing,
    #[error("Authentication failed: Invalid username or password (user `{user}`)")]
    InvalidUsernameOrPassword { user: String },
    #[error(
        "Authentication failed: Client requested an authorization id that is different from \
         username (authorization id `{authzid}`, user `{user}`)"
    )]
    AuthorizationIdMismatch { authzid: String, user: String },
    #[error("Invalid SCRAM {message}: {reason}")]
    MalformedScram {
        message: ScramMessage,
        reason: String,
    },
    #[error("SCRAM channel binding flag `{flag}` is not supported: only `n` (no binding) is")]
    ChannelBindingNotSupported { flag: String },
    #[error("SCRAM mandatory extension `{extension}` is not supported")]
    MandatoryExtensionNotSupported { extension: String },
    #[error("SCRAM delegation token authentication (`tokenauth=true`) is not supported")]
    DelegationTokenNotSupported,
    #[error(
        "Authentication failed: Invalid user credentials (no {mechanism} credential for `{user}`)"
    )]
    UnknownUser { mechanism: Mechanism, user: String },
    #[error("Iterations {iterations} is less than the minimum {minimum} for {mechanism}")]
    StoredIterationsTooFew {
        mechanism: Mechanism,
        iterations: i32,
        minimum: i32,
    },
    #[error("Invalid client nonce in the final client message.")]
    NonceMismatch,
    #[error("SCRAM channel binding does not match the GS2 header `{gs2_header}` sent first")]
    ChannelBindingMismatch { gs2_header: String },
    #[error("Invalid client credentials (wrong SCRAM proof for user `{user}`)")]
    InvalidProof { user: String },
    #[error("Too few iterations: {iterations} is below {SCRAM_ITERATIONS_MIN}")]
    TooFewIterations { iterations: i32 },
    #[error("Too many iterations: {iterations} is above {SCRAM_ITERATIONS_MAX}")]
    TooManyIterations { iterations: i32 },
    #[error("{mechanism} is not a SCRAM mechanism")]
    NotScram { mechanism: Mechanism },
    #[error("Unexpected challenge in Sasl server state {state}")]
    IllegalState { state: &'static str },
    #[error("Invalid JAAS config at byte {offset}: {reason}")]
    Jaas { offset: usize, reason: String },
    #[error("Invalid server nonce: does not start with the client nonce")]
    ServerNonceMismatch,
    #[error("Invalid server signature in the SCRAM server-final message")]
    ServerSignatureMismatch,
    #[error("SCRAM authentication failed with the server's error: {message}")]
    ServerError { message: String },
    #[error(
        "sasl.jaas.config: login module {module} cannot be used here (only {PLAIN_LOGIN_MODULE} \
         and {SCRAM_LOGIN_MODULE} carry a username and password)"
    )]
    UnsupportedLoginModule { module: String },
    #[error("sasl.jaas.config: the {module} entry has no `{option}` option")]
    JaasOptionMissing {
        module: String,
        option: &'static str,
    },
}

impl SaslError {
    /// The `error_message` Kafka sends in the SaslAuthenticate (or AlterUserScramCredentials)
    /// response. Kafka passes on only the texts its mechanisms mark as safe for an
    /// unauthenticated client; every other failure gets one generic sentence, so that the client
    /// learns neither whether the user exists nor which check failed.
    pub fn client_message(&self, mechanism: Mechanism, reauthentication: bool) -> String {
        match self {
            SaslError::InvalidUsernameOrPassword { .. } => {
                "Authentication failed: Invalid username or password".to_string()
            }
            SaslError::AuthorizationIdMismatch { .. } => "Authentication failed: Client requested \
                 an authorization id that is different from username"
                .to_string(),
            SaslError::DelegationTokenNotSupported => {
                "Authentication failed: delegation tokens are not supported".to_string()
            }
            SaslError::TooFewIterations { .. } => "Too few iterations".to_string(),
            SaslError::TooManyIterations { .. } => "Too many iterations".to_string(),
            SaslError::IllegalState { .. }
            | SaslError::NotScram { .. }
            | SaslError::Jaas { .. } => self.to_string(),
            _ => {
                let phase = if reauthentication {
                    "re-authentication"
                } else {
                    "authentication"
                };
                format!(
                    "Authentication failed during {phase} due to invalid credentials with SASL \
                     mechanism {mechanism}"
                )
            }
        }
    }
}

/// One authentication exchange, from the first SaslAuthenticate token to `Done` or an error.
pub struct Authenticator {
    mechanism: Mechanism,
    /// SCRAM's server nonce: printable ASCII without `,`; empty for PLAIN.
    server_nonce: String,
    state: State,
}

enum State {
    Initial,
    ScramFinal(Box<scram::Pending>),
    Complete,
    Failed,
}

impl Authenticator {
    /// An exchange for `mech`; a SCRAM exchange draws its server nonce from the thread-local
    /// CSPRNG.
    pub fn new(mech: Mechanism) -> Self {
        let server_nonce = match mech {
            Mechanism::Plain => String::new(),
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => scram::random_nonce(),
        };
        Self {
            mechanism: mech,
            server_nonce,
            state: State::Initial,
        }
    }

    /// An exchange with a chosen server nonce, for test vectors. A nonce outside printable ASCII
    /// or with a `,` is a bug in the caller and panics.
    pub fn with_nonce(mech: Mechanism, nonce: &str) -> Self {
        assert!(
            scram::is_valid_nonce(nonce),
            "a SCRAM nonce is printable ASCII without ','"
        );
        Self {
            mechanism: mech,
            server_nonce: nonce.to_string(),
            state: State::Initial,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// True once a step returned `Done`.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Consumes one client token. Any error ends the exchange: later steps are refused.
    pub fn step(&mut self, input: &[u8], creds: &dyn Credentials) -> Result<Step, SaslError> {
        // Failed until proven otherwise, so that every early return leaves the exchange ended.
        let state = std::mem::replace(&mut self.state, State::Failed);
        let (step, next) = match state {
            State::Initial => self.first_step(input, creds)?,
            State::ScramFinal(pending) => (pending.client_final(input)?, State::Complete),
            State::Complete => {
                // A stray token does not undo a finished exchange: it stays complete.
                self.state = State::Complete;
                return Err(SaslError::IllegalState { state: "COMPLETE" });
            }
            State::Failed => return Err(SaslError::IllegalState { state: "FAILED" }),
        };
        self.state = next;
        Ok(step)
    }

    fn first_step(
        &self,
        input: &[u8],
        creds: &dyn Credentials,
    ) -> Result<(Step, State), SaslError> {
        if self.mechanism == Mechanism::Plain {
            return Ok((plain::authenticate(input, creds)?, State::Complete));
        }
        let (server_first, pending) =
            scram::Pending::client_first(self.mechanism, &self.server_nonce, input, creds)?;
        Ok((
            Step::Challenge(server_first),
            State::ScramFinal(Box::new(pending)),
        ))
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Initial => "Initial",
            State::ScramFinal(_) => "ScramFinal",
            State::Complete => "Complete",
            State::Failed => "Failed",
        };
        f.debug_struct("Authenticator")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nobody;

    impl Credentials for Nobody {
        fn check_plain(&self, _: &str, _: &str) -> bool {
            false
        }
        fn scram(&self, _: Mechanism, _: &str) -> Option<ScramCredential> {
            None
        }
    }

    #[test]
    fn mechanism_names_are_kafkas_and_case_sensitive() {
        for mech in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(mech.name()), Some(mech));
            assert_eq!(mech.to_string(), mech.name());
        }
        assert_eq!(
            Mechanism::from_name("SCRAM-SHA-256"),
            Some(Mechanism::ScramSha256)
        );
        assert_eq!(Mechanism::from_name("plain"), None);
        assert_eq!(Mechanism::from_name("scram-sha-512"), None);
        assert_eq!(Mechanism::from_name("GSSAPI"), None);
    }

    #[test]
    fn scram_types_follow_kafkas_scram_mechanism() {
        assert_eq!(Mechanism::ScramSha256.scram_type(), Some(1));
        assert_eq!(Mechanism::ScramSha512.scram_type(), Some(2));
        assert_eq!(Mechanism::Plain.scram_type(), None);
        for mech in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            assert_eq!(
                Mechanism::from_scram_type(mech.scram_type().unwrap()),
                Some(mech)
            );
        }
        assert_eq!(Mechanism::from_scram_type(0), None);
        assert_eq!(Mechanism::from_scram_type(3), None);
        assert_eq!(Mechanism::from_scram_type(-1), None);
    }

    #[test]
    fn client_messages_hide_everything_kafka_hides() {
        let unknown = SaslError::UnknownUser {
            mechanism: Mechanism::ScramSha256,
            user: "x".into(),
        };
        assert_eq!(
            unknown.client_message(Mechanism::ScramSha256, false),
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism SCRAM-SHA-256"
        );
        assert_eq!(
            SaslError::NonceMismatch.client_message(Mechanism::ScramSha512, true),
            "Authentication failed during re-authentication due to invalid credentials with SASL \
             mechanism SCRAM-SHA-512"
        );
        let wrong = SaslError::InvalidUsernameOrPassword {
            user: "alice".into(),
        };
        assert_eq!(
            wrong.client_message(Mechanism::Plain, false),
            "Authentication failed: Invalid username or password"
        );
        assert!(
            wrong.to_string().contains("alice"),
            "the log text names the user"
        );
        let state = SaslError::IllegalState { state: "COMPLETE" };
        assert_eq!(
            state.client_message(Mechanism::Plain, false),
            "Unexpected challenge in Sasl server state COMPLETE"
        );
    }

    #[test]
    fn a_failed_exchange_refuses_further_steps() {
        let mut auth = Authenticator::new(Mechanism::Plain);
        let err = auth.step(b"\0alice\0secret", &Nobody).unwrap_err();
        assert!(
            matches!(err, SaslError::InvalidUsernameOrPassword { .. }),
            "{err}"
        );
        assert!(!auth.is_complete());
        assert_eq!(
            auth.step(b"\0alice\0secret", &Nobody),
            Err(SaslError::IllegalState { state: "FAILED" })
        );
    }

    /// Found by the `sasl_plain` fuzz target: a second stray token after `Done` was answered
    /// FAILED and `is_complete` turned false, as the first stray token had replaced the state.
    #[test]
    fn a_complete_exchange_stays_complete_after_stray_tokens() {
        let users = PlainUsers::from_jaas(
            &parse_jaas(
                "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 user_alice=\"alice-pw\";",
            )
            .unwrap(),
        );
        let mut auth = Authenticator::new(Mechanism::Plain);
        assert!(matches!(
            auth.step(b"\0alice\0alice-pw", &users),
            Ok(Step::Done { .. })
        ));
        for _ in 0..3 {
            assert_eq!(
                auth.step(b"\0alice\0alice-pw", &users),
                Err(SaslError::IllegalState { state: "COMPLETE" })
            );
            assert!(auth.is_complete());
        }
    }

    #[test]
    fn scram_nonces_are_fresh_and_printable() {
        let a = Authenticator::new(Mechanism::ScramSha256);
        let b = Authenticator::new(Mechanism::ScramSha256);
        assert!(scram::is_valid_nonce(&a.server_nonce));
        assert!(a.server_nonce.len() >= 24);
        assert_ne!(a.server_nonce, b.server_nonce);
        assert!(Authenticator::new(Mechanism::Plain).server_nonce.is_empty());
    }

    #[test]
    #[should_panic(expected = "printable ASCII")]
    fn with_nonce_refuses_a_comma() {
        Authenticator::with_nonce(Mechanism::ScramSha256, "a,b");
    }

    #[test]
    fn debug_shows_state_not_secrets() {
        let auth = Authenticator::with_nonce(Mechanism::ScramSha512, "secret-nonce");
        let text = format!("{auth:?}");
        assert!(
            text.contains("ScramSha512") && text.contains("Initial"),
            "{text}"
        );
        assert!(!text.contains("secret-nonce"), "{text}");
    }
}
