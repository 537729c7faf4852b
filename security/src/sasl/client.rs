//! The client side of PLAIN and SCRAM-SHA-256 / SCRAM-SHA-512, as Kafka's `PlainSaslClient` and
//! `ScramSaslClient` run them, and the username and password of a client's `sasl.jaas.config`.
//!
//! Sans-I/O like the server side: the caller sends [`SaslClient::initial_response`] as the first
//! SaslAuthenticate `auth_bytes`, then feeds every answer to [`SaslClient::step`] until it says
//! [`ClientStep::Done`]. The broker's error code (SASL_AUTHENTICATION_FAILED and its message)
//! ends the exchange before that; it is the caller's to report.
//!
//! ```text
//! PLAIN  initial: NUL user NUL password           server: (empty)          -> Done
//! SCRAM  initial: n,,n=saslname(user),r=cnonce
//!        server:  r=cnonce+snonce,s=salt,i=iterations
//!        client:  c=biws,r=cnonce+snonce,p=base64(ClientKey XOR HMAC(StoredKey, AuthMessage))
//!        server:  v=base64(HMAC(ServerKey, AuthMessage))  (or e=<error>)      -> Done
//! ```
//!
//! Invariants:
//! - the server nonce must strictly extend the client nonce, or the exchange stops before any
//!   proof is sent;
//! - `Done` for SCRAM only after the server proved it knows the ServerKey: its signature is
//!   compared in constant time, and a missing or wrong one is an error;
//! - iterations outside Kafka's 4096..=16384 are refused, so a hostile server can neither
//!   weaken the proof nor make the client spin for minutes;
//! - the password is never shown by `Debug` nor put in an error; any server input yields an
//!   error, never a panic.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::jaas::{parse_jaas, PLAIN_LOGIN_MODULE, SCRAM_LOGIN_MODULE};
use super::scram::{is_valid_nonce, random_nonce, salted_password, ScramHash};
use super::{Mechanism, SaslError, ScramMessage};

/// The GS2 header of a client without channel binding or authorization id, and its base64
/// form, which is what the client-final message's `c=` carries.
const GS2_HEADER: &str = "n,,";
const GS2_HEADER_BASE64: &str = "biws";

/// What the client does after a server token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Send these bytes as the next SaslAuthenticate `auth_bytes`.
    Respond(Vec<u8>),
    /// The exchange is complete (for SCRAM: the server signature checked out).
    Done,
}

/// One client-side authentication exchange.
pub struct SaslClient {
    mechanism: Mechanism,
    username: String,
    password: String,
    /// SCRAM's client nonce; empty for PLAIN.
    nonce: String,
    state: State,
}

enum State {
    Initial,
    PlainSent,
    /// The client-first message went out; `bare` is it without the GS2 header.
    ScramFirstSent {
        bare: String,
    },
    /// The client-final message went out; the signature the server must answer with.
    ScramFinalSent {
        server_signature: Vec<u8>,
    },
    Complete,
    Failed,
}

/// The username and password of a client's `sasl.jaas.config`.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginCredentials {
    pub username: String,
    pub password: String,
}

/// The credentials of a client's `sasl.jaas.config` with `PlainLoginModule` or
/// `ScramLoginModule`, e.g.
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username="alice"
/// password="alice-secret";`. As in Kafka, either module serves either mechanism: the module
/// only carries the two options. `tokenauth=true` (delegation tokens) is refused.
pub fn login_credentials(jaas_config: &str) -> Result<LoginCredentials, SaslError> {
    let config = parse_jaas(jaas_config)?;
    let module = config.login_module.as_str();
    if module != PLAIN_LOGIN_MODULE && module != SCRAM_LOGIN_MODULE {
        return Err(SaslError::UnsupportedLoginModule {
            module: module.to_string(),
        });
    }
    let option = |name: &'static str| {
        config
            .options
            .get(name)
            .cloned()
            .ok_or_else(|| SaslError::JaasOptionMissing {
                module: module.to_string(),
                option: name,
            })
    };
    let token_auth = config.options.get("tokenauth");
    if token_auth.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(SaslError::DelegationTokenNotSupported);
    }
    Ok(LoginCredentials {
        username: option("username")?,
        password: option("password")?,
    })
}

impl SaslClient {
    /// An exchange for `mechanism`; SCRAM draws its client nonce from the thread-local CSPRNG.
    pub fn new(mechanism: Mechanism, username: &str, password: &str) -> Self {
        let nonce = match mechanism {
            Mechanism::Plain => String::new(),
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => random_nonce(),
        };
        Self::build(mechanism, username, password, nonce)
    }

    /// An exchange with a chosen client nonce, for test vectors. A nonce outside printable
    /// ASCII or with a `,` is a bug in the caller and panics.
    pub fn with_nonce(mechanism: Mechanism, username: &str, password: &str, nonce: &str) -> Self {
        assert!(
            is_valid_nonce(nonce),
            "a SCRAM nonce is printable ASCII without ','"
        );
        Self::build(mechanism, username, password, nonce.to_string())
    }

    fn build(mechanism: Mechanism, username: &str, password: &str, nonce: String) -> Self {
        Self {
            mechanism,
            username: username.to_string(),
            password: password.to_string(),
            nonce,
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

    /// The first token: PLAIN's whole message or SCRAM's client-first message. Only once.
    pub fn initial_response(&mut self) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, State::Initial) {
            return Err(SaslError::IllegalState {
                state: self.state_name(),
            });
        }
        self.state = State::Failed;
        if self.mechanism == Mechanism::Plain {
            // NUL separates the fields, so neither may hold one (Kafka's server refuses it too).
            if self.username.contains('\0') || self.password.contains('\0') {
                return Err(SaslError::MalformedPlain {
                    reason: "the username or password contains NUL".to_string(),
                });
            }
            self.state = State::PlainSent;
            return Ok(format!("\0{}\0{}", self.username, self.password).into_bytes());
        }
        if self.username.is_empty() || self.username.contains('\0') {
            let reason = "the username is empty or contains NUL".to_string();
            return Err(malformed(ScramMessage::ClientFirst, reason));
        }
        let bare = format!("n={},r={}", encode_saslname(&self.username), self.nonce);
        let first = format!("{GS2_HEADER}{bare}");
        self.state = State::ScramFirstSent { bare };
        Ok(first.into_bytes())
    }

    /// Consumes one server token. Any error ends the exchange: later steps are refused.
    pub fn step(&mut self, server_token: &[u8]) -> Result<ClientStep, SaslError> {
        // Failed until proven otherwise, so that every early return leaves the exchange ended.
        let state = std::mem::replace(&mut self.state, State::Failed);
        let (step, next) = match state {
            // PLAIN has nothing to check: the broker's error code says whether it passed.
            State::PlainSent => (ClientStep::Done, State::Complete),
            State::ScramFirstSent { bare } => {
                let (last, server_signature) = self.client_final(&bare, server_token)?;
                (
                    ClientStep::Respond(last),
                    State::ScramFinalSent { server_signature },
                )
            }
            State::ScramFinalSent { server_signature } => {
                check_server_final(server_token, &server_signature)?;
                (ClientStep::Done, State::Complete)
            }
            State::Initial => return Err(SaslError::IllegalState { state: "INITIAL" }),
            State::Complete => return Err(SaslError::IllegalState { state: "COMPLETE" }),
            State::Failed => return Err(SaslError::IllegalState { state: "FAILED" }),
        };
        self.state = next;
        Ok(step)
    }

    /// Handles the server-first message: returns the client-final message and the server
    /// signature to expect.
    fn client_final(
        &self,
        bare: &str,
        server_first: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), SaslError> {
        let hash = ScramHash::of(self.mechanism)?;
        let first = ServerFirst::parse(utf8(server_first, ScramMessage::ServerFirst)?)?;
        if first.nonce.len() <= self.nonce.len() || !first.nonce.starts_with(&self.nonce) {
            return Err(SaslError::ServerNonceMismatch);
        }
        // Checks the iteration bounds before the expensive PBKDF2.
        let salted = salted_password(
            self.mechanism,
            &self.password,
            &first.salt,
            first.iterations,
        )?;
        let without_proof = format!("c={GS2_HEADER_BASE64},r={}", first.nonce);
        let auth_message = format!("{bare},{},{without_proof}", first.message);
        let client_key = hash.hmac(&salted, b"Client Key");
        let client_signature = hash.hmac(&hash.digest(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hash.hmac(&salted, b"Server Key");
        let server_signature = hash.hmac(&server_key, auth_message.as_bytes());
        let last = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok((last.into_bytes(), server_signature))
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Initial => "INITIAL",
            State::PlainSent | State::ScramFirstSent { .. } | State::ScramFinalSent { .. } => {
                "RECEIVE_SERVER_MESSAGE"
            }
            State::Complete => "COMPLETE",
            State::Failed => "FAILED",
        }
    }
}

impl fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslClient")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("state", &self.state_name())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LoginCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `[m=ext,]r=nonce,s=salt,i=iterations[,ext]`, parsed.
struct ServerFirst<'a> {
    message: &'a str,
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: i32,
}

impl<'a> ServerFirst<'a> {
    fn parse(message: &'a str) -> Result<Self, SaslError> {
        const WHICH: ScramMessage = ScramMessage::ServerFirst;
        if let Some(error) = message.strip_prefix("e=") {
            return Err(SaslError::ServerError {
                message: error.to_string(),
            });
        }
        let mut attributes = message.split(',');
        let mut next = |name: &str| {
            let attribute = attributes.next().unwrap_or_default();
            if let Some(extension) = attribute.strip_prefix("m=") {
                return Err(SaslError::MandatoryExtensionNotSupported {
                    extension: extension.to_string(),
                });
            }
            attribute
                .strip_prefix(name)
                .ok_or_else(|| malformed(WHICH, format!("expected `{name}` in `{message}`")))
        };
        let nonce = next("r=")?;
        let salt = next("s=")?;
        let iterations = next("i=")?;
        if !is_valid_nonce(nonce) {
            let reason = "the nonce must be printable ASCII without `,`".to_string();
            return Err(malformed(WHICH, reason));
        }
        let salt = BASE64
            .decode(salt)
            .map_err(|e| malformed(WHICH, format!("the salt is not base64: {e}")))?;
        if salt.is_empty() {
            return Err(malformed(WHICH, "the salt is empty".to_string()));
        }
        let iterations = iterations.parse().map_err(|_| {
            malformed(
                WHICH,
                format!("the iteration count `{iterations}` is not a number"),
            )
        })?;
        Ok(Self {
            message,
            nonce,
            salt,
            iterations,
        })
    }
}

/// `v=<signature>[,ext]` must carry `expected`; `e=<error>` is the server's refusal.
fn check_server_final(token: &[u8], expected: &[u8]) -> Result<(), SaslError> {
    const WHICH: ScramMessage = ScramMessage::ServerFinal;
    let message = utf8(token, WHICH)?;
    let first = message.split(',').next().unwrap_or_default();
    if let Some(error) = first.strip_prefix("e=") {
        return Err(SaslError::ServerError {
            message: error.to_string(),
        });
    }
    let signature = first
        .strip_prefix("v=")
        .ok_or_else(|| malformed(WHICH, "expected `v=<server signature>`".to_string()))?;
    let signature = BASE64
        .decode(signature)
        .map_err(|e| malformed(WHICH, format!("the server signature is not base64: {e}")))?;
    // ct_eq is false for slices of different lengths, in time independent of the content.
    if !bool::from(signature.ct_eq(expected)) {
        return Err(SaslError::ServerSignatureMismatch);
    }
    Ok(())
}

/// RFC 5802 `saslname`: `,` is written `=2C` and `=` is written `=3D`.
fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn malformed(message: ScramMessage, reason: String) -> SaslError {
    SaslError::MalformedScram { message, reason }
}

fn utf8(input: &[u8], message: ScramMessage) -> Result<&str, SaslError> {
    std::str::from_utf8(input).map_err(|e| malformed(message, format!("not UTF-8 ({e})")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::super::{Authenticator, Credentials, PlainUsers, ScramCredential, Step};
    use super::*;

    /// RFC 7677 section 3.
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                    p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    /// A broker's SCRAM users for the tests.
    #[derive(Default)]
    struct Users(HashMap<(Mechanism, String), ScramCredential>);

    impl Users {
        fn with(mut self, mech: Mechanism, user: &str, password: &str) -> Self {
            let credential = ScramCredential::from_password(mech, password, 4096).unwrap();
            self.0.insert((mech, user.to_string()), credential);
            self
        }
    }

    impl Credentials for Users {
        fn check_plain(&self, _: &str, _: &str) -> bool {
            false
        }
        fn scram(&self, mech: Mechanism, user: &str) -> Option<ScramCredential> {
            self.0.get(&(mech, user.to_string())).cloned()
        }
    }

    fn respond(step: ClientStep) -> Vec<u8> {
        match step {
            ClientStep::Respond(bytes) => bytes,
            ClientStep::Done => panic!("expected a response, the exchange ended"),
        }
    }

    fn challenge(step: Step) -> Vec<u8> {
        match step {
            Step::Challenge(bytes) => bytes,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    /// Runs a whole exchange between this client and the crate's server; returns the user the
    /// server authenticated.
    fn exchange(client: &mut SaslClient, creds: &dyn Credentials) -> Result<String, SaslError> {
        let mut server = Authenticator::new(client.mechanism());
        let mut token = client.initial_response()?;
        loop {
            match server.step(&token, creds)? {
                Step::Challenge(bytes) => token = respond(client.step(&bytes)?),
                Step::Done { user, response } => {
                    assert_eq!(client.step(&response)?, ClientStep::Done);
                    assert!(client.is_complete());
                    return Ok(user);
                }
            }
        }
    }

    #[test]
    fn rfc7677_vector_with_a_fixed_nonce() {
        let mut client =
            SaslClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", RFC_CLIENT_NONCE);
        assert_eq!(
            client.initial_response().unwrap(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let last = respond(client.step(RFC_SERVER_FIRST.as_bytes()).unwrap());
        assert_eq!(String::from_utf8(last).unwrap(), RFC_CLIENT_FINAL);
        assert_eq!(
            client.step(RFC_SERVER_FINAL.as_bytes()).unwrap(),
            ClientStep::Done
        );
        assert!(client.is_complete());
        assert_eq!(
            client.step(RFC_SERVER_FINAL.as_bytes()),
            Err(SaslError::IllegalState { state: "COMPLETE" })
        );
    }

    #[test]
    fn full_exchanges_with_the_server_for_both_scram_mechanisms() {
        for mech in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            // A name with both characters saslname escapes, to prove the escaping agrees.
            let users = Users::default().with(mech, "al=i,ce", "alice-secret");
            let mut client = SaslClient::new(mech, "al=i,ce", "alice-secret");
            assert_eq!(exchange(&mut client, &users).unwrap(), "al=i,ce", "{mech}");

            let mut wrong = SaslClient::new(mech, "al=i,ce", "guess");
            let err = exchange(&mut wrong, &users).unwrap_err();
            assert!(
                matches!(err, SaslError::InvalidProof { .. }),
                "{mech}: {err}"
            );
            assert!(!wrong.is_complete());
        }
    }

    #[test]
    fn full_plain_exchange_with_the_server() {
        let mut users = PlainUsers::default();
        users.insert("alice", "alice-secret");
        let mut client = SaslClient::new(Mechanism::Plain, "alice", "alice-secret");
        assert_eq!(exchange(&mut client, &users).unwrap(), "alice");
        let mut wrong = SaslClient::new(Mechanism::Plain, "alice", "guess");
        let err = exchange(&mut wrong, &users).unwrap_err();
        assert!(
            matches!(err, SaslError::InvalidUsernameOrPassword { .. }),
            "{err}"
        );
        let mut nul = SaslClient::new(Mechanism::Plain, "al\0ice", "x");
        assert!(matches!(
            nul.initial_response(),
            Err(SaslError::MalformedPlain { .. })
        ));
    }

    #[test]
    fn client_nonces_are_fresh_and_printable() {
        let mut a = SaslClient::new(Mechanism::ScramSha512, "u", "p");
        let mut b = SaslClient::new(Mechanism::ScramSha512, "u", "p");
        let (a, b) = (a.initial_response().unwrap(), b.initial_response().unwrap());
        assert_ne!(a, b);
        let nonce = std::str::from_utf8(&a)
            .unwrap()
            .rsplit_once("r=")
            .unwrap()
            .1;
        assert!(nonce.len() >= 24 && is_valid_nonce(nonce), "{nonce}");
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let users = Users::default().with(Mechanism::ScramSha256, "alice", "alice-secret");
        let mut server = Authenticator::new(Mechanism::ScramSha256);
        let mut client = SaslClient::new(Mechanism::ScramSha256, "alice", "alice-secret");
        let first = challenge(
            server
                .step(&client.initial_response().unwrap(), &users)
                .unwrap(),
        );
        let last = respond(client.step(&first).unwrap());
        let Step::Done { response, .. } = server.step(&last, &users).unwrap() else {
            panic!("the server accepts the proof");
        };
        let good = std::str::from_utf8(&response).unwrap();
        let mut signature = BASE64.decode(&good[2..]).unwrap();
        signature[7] ^= 1;
        let forged = format!("v={}", BASE64.encode(&signature));
        let short = format!("v={}", BASE64.encode(&signature[..31]));
        for bad in [forged.as_str(), short.as_str(), "v=", "x=abc", "v=###"] {
            let mut replay = SaslClient::with_nonce(
                Mechanism::ScramSha256,
                "alice",
                "alice-secret",
                &client.nonce,
            );
            replay.initial_response().unwrap();
            replay.step(&first).unwrap();
            let err = replay.step(bad.as_bytes()).unwrap_err();
            let expected = bad == forged || bad == short || bad == "v=";
            assert_eq!(
                err == SaslError::ServerSignatureMismatch,
                expected,
                "{bad}: {err}"
            );
            assert!(!replay.is_complete());
            assert_eq!(
                replay.step(good.as_bytes()),
                Err(SaslError::IllegalState { state: "FAILED" })
            );
        }
        // The untouched signature passes: the refusals above are the tampering's doing.
        assert_eq!(client.step(&response).unwrap(), ClientStep::Done);
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_ours_is_refused() {
        let rest = "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        for nonce in [
            RFC_CLIENT_NONCE.to_string(),
            format!("X{RFC_CLIENT_NONCE}abc"),
            format!("{}abc", &RFC_CLIENT_NONCE[1..]),
            "abc".to_string(),
        ] {
            let mut client =
                SaslClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", RFC_CLIENT_NONCE);
            client.initial_response().unwrap();
            let err = client
                .step(format!("r={nonce},{rest}").as_bytes())
                .unwrap_err();
            assert_eq!(err, SaslError::ServerNonceMismatch, "{nonce}");
        }
    }

    #[test]
    fn server_errors_and_bad_iterations_are_named() {
        let cases: [(&str, &str); 8] = [
            ("e=unknown-user", "server's error: unknown-user"),
            ("m=ext,r=x", "mandatory extension `ext`"),
            ("s=abc,r=abc,i=4096", "expected `r=`"),
            ("r=rOprNGfwEbeRWgbNEkqOx,i=4096", "expected `s=`"),
            ("r=rOprNGfwEbeRWgbNEkqOx,s=###,i=4096", "salt is not base64"),
            ("r=rOprNGfwEbeRWgbNEkqOx,s=AAAA,i=many", "is not a number"),
            (
                "r=rOprNGfwEbeRWgbNEkqOx,s=AAAA,i=1000",
                "Too few iterations",
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOx,s=AAAA,i=99999999",
                "Too many iterations",
            ),
        ];
        for (server_first, needle) in cases {
            let mut client =
                SaslClient::with_nonce(Mechanism::ScramSha512, "user", "pencil", RFC_CLIENT_NONCE);
            client.initial_response().unwrap();
            let err = client
                .step(server_first.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{server_first}: {err} lacks {needle}");
        }
        let mut client =
            SaslClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", RFC_CLIENT_NONCE);
        client.initial_response().unwrap();
        client.step(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            client.step(b"e=invalid-proof"),
            Err(SaslError::ServerError {
                message: "invalid-proof".into()
            })
        );
    }

    #[test]
    fn steps_out_of_order_are_illegal() {
        let mut client = SaslClient::new(Mechanism::ScramSha256, "u", "p");
        assert_eq!(
            client.step(b"r=x"),
            Err(SaslError::IllegalState { state: "INITIAL" })
        );
        let mut client = SaslClient::new(Mechanism::Plain, "u", "p");
        client.initial_response().unwrap();
        assert!(matches!(
            client.initial_response(),
            Err(SaslError::IllegalState { .. })
        ));
    }

    #[test]
    fn random_server_tokens_never_panic_and_never_complete() {
        let mut rng = StdRng::seed_from_u64(0x5c11);
        let valid = RFC_SERVER_FIRST.as_bytes();
        for round in 0..2000 {
            let mut token = valid.to_vec();
            if round % 2 == 0 {
                let len = rng.random_range(0..96);
                token = (0..len).map(|_| rng.random()).collect();
            } else {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..token.len());
                    token[at] = *b",=\0\xffri".get(rng.random_range(0..6)).unwrap();
                }
            }
            let mut client =
                SaslClient::with_nonce(Mechanism::ScramSha256, "user", "pencil", RFC_CLIENT_NONCE);
            client.initial_response().unwrap();
            if client.step(&token).is_ok() {
                // Whatever came back, only the real signature of this exchange may finish it.
                assert!(client.step(RFC_SERVER_FINAL.as_bytes()).is_err() || token == valid);
            }
            assert!(!client.is_complete() || token == valid);
        }
    }

    #[test]
    fn login_credentials_from_kafkas_client_jaas_lines() {
        let plain = login_credentials(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"alice\" password=\"x\";",
        )
        .unwrap();
        assert_eq!(
            (plain.username.as_str(), plain.password.as_str()),
            ("alice", "x")
        );
        let scram = login_credentials(
            "org.apache.kafka.common.security.scram.ScramLoginModule required \
             username='carol' password=\"c\\\"s\";",
        )
        .unwrap();
        assert_eq!(
            (scram.username.as_str(), scram.password.as_str()),
            ("carol", "c\"s")
        );
        assert!(!format!("{scram:?}").contains("c\\\"s"));

        let missing = login_credentials(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\";",
        )
        .unwrap_err();
        assert!(
            missing.to_string().contains("no `password` option"),
            "{missing}"
        );
        let other = login_credentials("com.sun.security.auth.module.Krb5LoginModule required;")
            .unwrap_err();
        assert!(
            matches!(other, SaslError::UnsupportedLoginModule { .. }),
            "{other}"
        );
        let token = login_credentials(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"t\" \
             password=\"h\" tokenauth=\"true\";",
        )
        .unwrap_err();
        assert_eq!(token, SaslError::DelegationTokenNotSupported);
        assert!(matches!(
            login_credentials("no semicolon here"),
            Err(SaslError::Jaas { .. })
        ));
    }

    #[test]
    fn debug_hides_the_password() {
        let client = SaslClient::new(Mechanism::ScramSha256, "alice", "hunter2");
        let text = format!("{client:?}");
        assert!(
            text.contains("alice") && !text.contains("hunter2"),
            "{text}"
        );
    }
}
