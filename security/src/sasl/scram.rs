//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side, as Kafka's
//! `ScramSaslServer` runs them: GS2 flag `n` only, no channel binding, `tokenauth` the only
//! extension with a meaning, and an immediate failure for a user without a credential.
//!
//! ```text
//! SaltedPassword  = PBKDF2-HMAC-H(password, salt, iterations)
//! ClientKey       = HMAC(SaltedPassword, "Client Key")     StoredKey = H(ClientKey)
//! ServerKey       = HMAC(SaltedPassword, "Server Key")
//! AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
//! ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
//! ServerSignature = HMAC(ServerKey, AuthMessage)
//! ```
//!
//! The AuthMessage is made of the bytes the client actually sent (RFC 5802), not of a
//! re-serialisation, so extensions and attribute order need no canonical form.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::distr::Alphanumeric;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::{Credentials, Mechanism, SaslError, ScramMessage, Step};

/// Kafka's lower bound on SCRAM iterations (`ScramMechanism.minIterations`), enforced when a
/// credential is created and again when one is used.
pub const SCRAM_ITERATIONS_MIN: i32 = 4096;
/// Kafka's upper bound on SCRAM iterations for AlterUserScramCredentials.
pub const SCRAM_ITERATIONS_MAX: i32 = 16384;

/// What the broker stores per (user, SCRAM mechanism): never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: i32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// From what AlterUserScramCredentials carries (KIP-554: salt, SaltedPassword, iterations).
    pub fn from_salted_password(
        mech: Mechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> Result<Self, SaslError> {
        let hash = ScramHash::of(mech)?;
        check_iterations(iterations)?;
        let client_key = hash.hmac(salted_password, b"Client Key");
        Ok(Self {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.digest(&client_key),
            server_key: hash.hmac(salted_password, b"Server Key"),
        })
    }

    /// From a clear password (tests, tools, bootstrap users): a random 32-byte salt, then PBKDF2.
    pub fn from_password(
        mech: Mechanism,
        password: &str,
        iterations: i32,
    ) -> Result<Self, SaslError> {
        let mut salt = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        let salted = salted_password(mech, password, &salt, iterations)?;
        Self::from_salted_password(mech, &salt, &salted, iterations)
    }
}

/// SCRAM's SaltedPassword, what a client of AlterUserScramCredentials computes and sends. Like
/// Kafka, the password is taken as its UTF-8 bytes without SASLprep.
pub fn salted_password(
    mech: Mechanism,
    password: &str,
    salt: &[u8],
    iterations: i32,
) -> Result<Vec<u8>, SaslError> {
    let hash = ScramHash::of(mech)?;
    check_iterations(iterations)?;
    let rounds = u32::try_from(iterations).expect("checked to be within the positive bounds");
    Ok(hash.pbkdf2(password.as_bytes(), salt, rounds))
}

impl fmt::Debug for ScramCredential {
    // The salt and the iteration count are sent to every client that asks; the keys are not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt", &BASE64.encode(&self.salt))
            .field("iterations", &self.iterations)
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

/// True for a nonce RFC 5802 allows: printable ASCII (0x21..=0x7E) except `,`, not empty.
pub(super) fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A fresh server nonce: 32 alphanumerics (about 190 bits) from the thread-local CSPRNG.
pub(super) fn random_nonce() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// What the server remembers between its server-first message and the client-final message.
pub(super) struct Pending {
    hash: ScramHash,
    user: String,
    /// `n,,` or `n,a=<authzid>,` exactly as received: the channel binding must repeat it.
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// Client nonce + server nonce: the only `r=` the client-final message may carry.
    nonce: String,
    credential: ScramCredential,
}

impl Pending {
    /// Handles the client-first message; returns the server-first message.
    pub(super) fn client_first(
        mech: Mechanism,
        server_nonce: &str,
        input: &[u8],
        creds: &dyn Credentials,
    ) -> Result<(Vec<u8>, Pending), SaslError> {
        let hash = ScramHash::of(mech)?;
        let first = ClientFirst::parse(utf8(input, ScramMessage::ClientFirst)?)?;
        if first.token_auth {
            return Err(SaslError::DelegationTokenNotSupported);
        }
        // Kafka's order: the credential lookup, then the authorization id, then the iterations.
        let credential = creds
            .scram(mech, &first.user)
            .ok_or_else(|| SaslError::UnknownUser {
                mechanism: mech,
                user: first.user.clone(),
            })?;
        if let Some(authzid) = first.authzid.filter(|a| *a != first.user) {
            return Err(SaslError::AuthorizationIdMismatch {
                authzid,
                user: first.user,
            });
        }
        if credential.iterations < SCRAM_ITERATIONS_MIN {
            return Err(SaslError::StoredIterationsTooFew {
                mechanism: mech,
                iterations: credential.iterations,
                minimum: SCRAM_ITERATIONS_MIN,
            });
        }
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let pending = Pending {
            hash,
            user: first.user,
            gs2_header: first.gs2_header.to_string(),
            client_first_bare: first.bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            credential,
        };
        Ok((server_first.into_bytes(), pending))
    }

    /// Handles the client-final message: checks nonce, channel binding and proof.
    pub(super) fn client_final(&self, input: &[u8]) -> Result<Step, SaslError> {
        let last = ClientFinal::parse(utf8(input, ScramMessage::ClientFinal)?)?;
        if last.nonce != self.nonce {
            return Err(SaslError::NonceMismatch);
        }
        if last.channel_binding != self.gs2_header.as_bytes() {
            return Err(SaslError::ChannelBindingMismatch {
                gs2_header: self.gs2_header.clone(),
            });
        }
        if last.proof.len() != self.hash.len() {
            return Err(malformed(
                ScramMessage::ClientFinal,
                format!(
                    "the proof has {} bytes, not {}",
                    last.proof.len(),
                    self.hash.len()
                ),
            ));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, last.without_proof
        );
        let client_signature = self
            .hash
            .hmac(&self.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = last
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let stored_key = self.hash.digest(&client_key);
        if !bool::from(stored_key.ct_eq(&self.credential.stored_key)) {
            return Err(SaslError::InvalidProof {
                user: self.user.clone(),
            });
        }
        let server_signature = self
            .hash
            .hmac(&self.credential.server_key, auth_message.as_bytes());
        let response = format!("v={}", BASE64.encode(server_signature)).into_bytes();
        Ok(Step::Done {
            user: self.user.clone(),
            response,
        })
    }
}

/// The hash behind a SCRAM mechanism (shared with the client side in `client.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    pub(super) fn of(mech: Mechanism) -> Result<Self, SaslError> {
        match mech {
            Mechanism::ScramSha256 => Ok(ScramHash::Sha256),
            Mechanism::ScramSha512 => Ok(ScramHash::Sha512),
            Mechanism::Plain => Err(SaslError::NotScram { mechanism: mech }),
        }
    }

    pub(super) fn len(self) -> usize {
        match self {
            ScramHash::Sha256 => 32,
            ScramHash::Sha512 => 64,
        }
    }

    pub(super) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub(super) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => mac::<Hmac<Sha256>>(key, data),
            ScramHash::Sha512 => mac::<Hmac<Sha512>>(key, data),
        }
    }

    pub(super) fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.len()];
        match self {
            ScramHash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, rounds, &mut out),
            ScramHash::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, rounds, &mut out),
        }
        out
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn check_iterations(iterations: i32) -> Result<(), SaslError> {
    if iterations < SCRAM_ITERATIONS_MIN {
        return Err(SaslError::TooFewIterations { iterations });
    }
    if iterations > SCRAM_ITERATIONS_MAX {
        return Err(SaslError::TooManyIterations { iterations });
    }
    Ok(())
}

/// `gs2-header client-first-message-bare`, parsed.
struct ClientFirst<'a> {
    gs2_header: &'a str,
    bare: &'a str,
    authzid: Option<String>,
    user: String,
    nonce: &'a str,
    token_auth: bool,
}

impl<'a> ClientFirst<'a> {
    fn parse(msg: &'a str) -> Result<Self, SaslError> {
        const WHICH: ScramMessage = ScramMessage::ClientFirst;
        let (flag, rest) = msg
            .split_once(',')
            .ok_or_else(|| malformed(WHICH, "no GS2 header".into()))?;
        match flag {
            "n" => {}
            "" => return Err(malformed(WHICH, "empty GS2 channel binding flag".into())),
            _ => {
                return Err(SaslError::ChannelBindingNotSupported {
                    flag: flag.to_string(),
                })
            }
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed(WHICH, "GS2 header not ended by a comma".into()))?;
        let authzid = match authzid {
            "" => None,
            a => {
                let name = a.strip_prefix("a=").ok_or_else(|| {
                    malformed(
                        WHICH,
                        "the GS2 authorization id must start with `a=`".into(),
                    )
                })?;
                Some(decode_saslname(name, "authorization id")?)
            }
        };
        let gs2_header = &msg[..msg.len() - bare.len()];
        let mut attributes = bare.split(',');
        let user = attributes.next().unwrap_or_default();
        if let Some(extension) = user.strip_prefix("m=") {
            let extension = extension.to_string();
            return Err(SaslError::MandatoryExtensionNotSupported { extension });
        }
        let user = user
            .strip_prefix("n=")
            .ok_or_else(|| malformed(WHICH, "expected `n=<user>` after the GS2 header".into()))?;
        let user = decode_saslname(user, "user name")?;
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| malformed(WHICH, "expected `r=<nonce>` after the user".into()))?;
        if !is_valid_nonce(nonce) {
            let reason = "the nonce must be printable ASCII without `,`".into();
            return Err(malformed(WHICH, reason));
        }
        let mut token_auth = false;
        for attribute in attributes {
            let (key, value) = parse_extension(attribute, WHICH)?;
            // Kafka reads the value with Boolean.parseBoolean: "true" in any case.
            token_auth |= key == "tokenauth" && value.eq_ignore_ascii_case("true");
        }
        Ok(Self {
            gs2_header,
            bare,
            authzid,
            user,
            nonce,
            token_auth,
        })
    }
}

/// `c=<channel binding>,r=<nonce>[,extensions],p=<proof>`, parsed.
struct ClientFinal<'a> {
    channel_binding: Vec<u8>,
    nonce: &'a str,
    without_proof: &'a str,
    proof: Vec<u8>,
}

impl<'a> ClientFinal<'a> {
    fn parse(msg: &'a str) -> Result<Self, SaslError> {
        const WHICH: ScramMessage = ScramMessage::ClientFinal;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or_else(|| malformed(WHICH, "no `p=<proof>` at the end".into()))?;
        let mut attributes = without_proof.split(',');
        let channel_binding = attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or_else(|| malformed(WHICH, "expected `c=<channel binding>` first".into()))?;
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| malformed(WHICH, "expected `r=<nonce>` second".into()))?;
        for attribute in attributes {
            parse_extension(attribute, WHICH)?;
        }
        Ok(Self {
            channel_binding: decode_base64(channel_binding, "channel binding")?,
            nonce,
            without_proof,
            proof: decode_base64(proof, "proof")?,
        })
    }
}

fn malformed(message: ScramMessage, reason: String) -> SaslError {
    SaslError::MalformedScram { message, reason }
}

fn utf8(input: &[u8], message: ScramMessage) -> Result<&str, SaslError> {
    std::str::from_utf8(input).map_err(|e| malformed(message, format!("not UTF-8 ({e})")))
}

fn decode_base64(value: &str, what: &str) -> Result<Vec<u8>, SaslError> {
    BASE64.decode(value).map_err(|e| {
        malformed(
            ScramMessage::ClientFinal,
            format!("the {what} is not base64: {e}"),
        )
    })
}

/// RFC 5802 `saslname`: UTF-8 without NUL, where `,` is written `=2C` and `=` is written `=3D`.
fn decode_saslname(encoded: &str, what: &str) -> Result<String, SaslError> {
    let bad = |reason: &str| malformed(ScramMessage::ClientFirst, format!("the {what} {reason}"));
    if encoded.is_empty() {
        return Err(bad("is empty"));
    }
    let mut decoded = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find(['=', '\0']) {
        decoded.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("=2C") {
            decoded.push(',');
        } else if tail.starts_with("=3D") {
            decoded.push('=');
        } else if tail.starts_with('\0') {
            return Err(bad("contains NUL"));
        } else {
            return Err(bad("has a `=` that is neither `=2C` nor `=3D`"));
        }
        rest = &tail[3..];
    }
    decoded.push_str(rest);
    Ok(decoded)
}

/// An optional extension `<letters>=<value>`. A one-letter name is one of RFC 5802's own
/// attributes, which has no business in extension position (a second `p=` would otherwise slip
/// into the AuthMessage).
fn parse_extension(attribute: &str, message: ScramMessage) -> Result<(&str, &str), SaslError> {
    let (key, value) = attribute
        .split_once('=')
        .ok_or_else(|| malformed(message, format!("attribute `{attribute}` has no `=`")))?;
    if key.len() < 2 || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(malformed(message, format!("unexpected attribute `{key}`")));
    }
    if value.is_empty() || value.contains('\0') {
        return Err(malformed(
            message,
            format!("extension `{key}` has an empty or NUL value"),
        ));
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::super::{Authenticator, PlainUsers};
    use super::*;

    /// RFC 7677 section 3.
    const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC_COMBINED_NONCE: &str = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC_SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";

    /// A broker's user table for the tests.
    #[derive(Default)]
    struct Users(HashMap<(Mechanism, String), ScramCredential>);

    impl Users {
        fn with(mut self, mech: Mechanism, user: &str, credential: ScramCredential) -> Self {
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

    /// A SCRAM client written from RFC 5802 for the tests, sharing no code with the server.
    struct Client {
        mech: Mechanism,
        password: String,
        gs2_header: String,
        bare: String,
    }

    type TestHmac = fn(&[u8], &[u8]) -> Vec<u8>;
    type TestHash = fn(&[u8]) -> Vec<u8>;

    fn primitives(mech: Mechanism) -> (usize, TestHmac, TestHash) {
        fn h256(k: &[u8], d: &[u8]) -> Vec<u8> {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(k).unwrap();
            m.update(d);
            m.finalize().into_bytes().to_vec()
        }
        fn h512(k: &[u8], d: &[u8]) -> Vec<u8> {
            let mut m = <Hmac<Sha512> as Mac>::new_from_slice(k).unwrap();
            m.update(d);
            m.finalize().into_bytes().to_vec()
        }
        match mech {
            Mechanism::ScramSha256 => (32, h256, |d| Sha256::digest(d).to_vec()),
            Mechanism::ScramSha512 => (64, h512, |d| Sha512::digest(d).to_vec()),
            Mechanism::Plain => panic!("not SCRAM"),
        }
    }

    impl Client {
        fn new(mech: Mechanism, user: &str, password: &str, nonce: &str) -> Self {
            let name = user.replace('=', "=3D").replace(',', "=2C");
            Self {
                mech,
                password: password.into(),
                gs2_header: "n,,".into(),
                bare: format!("n={name},r={nonce}"),
            }
        }

        fn first(&self) -> Vec<u8> {
            format!("{}{}", self.gs2_header, self.bare).into_bytes()
        }

        /// The client-final message for `server_first`, with `nonce` and `cbind` as given
        /// (a well-behaved client passes the server's nonce and its own GS2 header), and the
        /// server signature it expects.
        fn last_with(&self, server_first: &[u8], nonce: &str, cbind: &[u8]) -> (Vec<u8>, String) {
            let server_first = std::str::from_utf8(server_first).unwrap();
            let fields: HashMap<&str, &str> = server_first
                .split(',')
                .map(|f| f.split_once('=').unwrap())
                .collect();
            let salt = BASE64.decode(fields["s"]).unwrap();
            let rounds: u32 = fields["i"].parse().unwrap();
            let (len, hmac, hash) = primitives(self.mech);
            let mut salted = vec![0u8; len];
            match self.mech {
                Mechanism::ScramSha256 => pbkdf2::pbkdf2_hmac::<Sha256>(
                    self.password.as_bytes(),
                    &salt,
                    rounds,
                    &mut salted,
                ),
                _ => pbkdf2::pbkdf2_hmac::<Sha512>(
                    self.password.as_bytes(),
                    &salt,
                    rounds,
                    &mut salted,
                ),
            }
            let without_proof = format!("c={},r={nonce}", BASE64.encode(cbind));
            let auth = format!("{},{server_first},{without_proof}", self.bare);
            let client_key = hmac(&salted, b"Client Key");
            let signature = hmac(&hash(&client_key), auth.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(a, b)| a ^ b)
                .collect();
            let server_key = hmac(&salted, b"Server Key");
            let expected = format!("v={}", BASE64.encode(hmac(&server_key, auth.as_bytes())));
            let last = format!("{without_proof},p={}", BASE64.encode(proof));
            (last.into_bytes(), expected)
        }

        fn last(&self, server_first: &[u8]) -> (Vec<u8>, String) {
            let sf = std::str::from_utf8(server_first).unwrap();
            let nonce = sf
                .strip_prefix("r=")
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string();
            self.last_with(server_first, &nonce, self.gs2_header.clone().as_bytes())
        }
    }

    fn challenge(step: Step) -> Vec<u8> {
        match step {
            Step::Challenge(bytes) => bytes,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    fn rfc7677_users() -> Users {
        let salt = BASE64.decode(RFC_SALT_B64).unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"pencil", &salt, 4096, &mut salted);
        let credential =
            ScramCredential::from_salted_password(Mechanism::ScramSha256, &salt, &salted, 4096)
                .unwrap();
        Users::default().with(Mechanism::ScramSha256, "user", credential)
    }

    fn rfc7677_authenticator() -> Authenticator {
        let server_nonce = RFC_COMBINED_NONCE.strip_prefix(RFC_CLIENT_NONCE).unwrap();
        Authenticator::with_nonce(Mechanism::ScramSha256, server_nonce)
    }

    #[test]
    fn rfc7677_test_vector() {
        let users = rfc7677_users();
        let mut auth = rfc7677_authenticator();
        let first = auth
            .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &users)
            .unwrap();
        assert_eq!(
            first,
            Step::Challenge(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        let last = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                     p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            auth.step(last, &users).unwrap(),
            Step::Done {
                user: "user".into(),
                response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            }
        );
        assert!(auth.is_complete());
        assert_eq!(
            auth.step(last, &users),
            Err(SaslError::IllegalState { state: "COMPLETE" })
        );
    }

    #[test]
    fn test_client_agrees_with_rfc7677() {
        // Guards the test-side client itself, so that the round trips below prove something.
        let client = Client::new(Mechanism::ScramSha256, "user", "pencil", RFC_CLIENT_NONCE);
        let server_first = format!("r={RFC_COMBINED_NONCE},s={RFC_SALT_B64},i=4096");
        let (last, expected) = client.last(server_first.as_bytes());
        assert_eq!(
            String::from_utf8(last).unwrap(),
            format!("c=biws,r={RFC_COMBINED_NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        );
        assert_eq!(expected, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    fn round_trip(
        mech: Mechanism,
        user: &str,
        stored: &str,
        typed: &str,
    ) -> Result<Step, SaslError> {
        let credential = ScramCredential::from_password(mech, stored, 4096).unwrap();
        let users = Users::default().with(mech, user, credential);
        let client = Client::new(mech, user, typed, "fyko+d2lbbFgONRv9qkxdawL");
        let mut auth = Authenticator::new(mech);
        let server_first = challenge(auth.step(&client.first(), &users)?);
        let (last, expected) = client.last(&server_first);
        let step = auth.step(&last, &users)?;
        assert_eq!(
            step,
            Step::Done {
                user: user.into(),
                response: expected.into_bytes()
            }
        );
        Ok(step)
    }

    #[test]
    fn sha512_and_sha256_round_trips_with_the_test_client() {
        round_trip(
            Mechanism::ScramSha512,
            "alice",
            "alice-secret",
            "alice-secret",
        )
        .unwrap();
        round_trip(Mechanism::ScramSha256, "bob", "bob-secret", "bob-secret").unwrap();
    }

    #[test]
    fn wrong_password_is_an_invalid_proof() {
        let err = round_trip(Mechanism::ScramSha512, "alice", "alice-secret", "guess").unwrap_err();
        assert_eq!(
            err,
            SaslError::InvalidProof {
                user: "alice".into()
            }
        );
    }

    #[test]
    fn saslname_escaping_round_trips() {
        round_trip(Mechanism::ScramSha256, "a,b=c", "pw-1", "pw-1").unwrap();
        let users = Users::default().with(
            Mechanism::ScramSha256,
            "x=2Cy",
            ScramCredential::from_password(Mechanism::ScramSha256, "p", 4096).unwrap(),
        );
        // `=3D2C` is `=` then `2C`, not a comma.
        let mut auth = Authenticator::new(Mechanism::ScramSha256);
        challenge(auth.step(b"n,,n=x=3D2Cy,r=abc", &users).unwrap());
        for bad in [
            "n,,n=a=b,r=abc",
            "n,,n=a=2c,r=abc",
            "n,,n=a=,r=abc",
            "n,,n=,r=abc",
        ] {
            let mut auth = Authenticator::new(Mechanism::ScramSha256);
            let err = auth.step(bad.as_bytes(), &users).unwrap_err();
            assert!(
                matches!(err, SaslError::MalformedScram { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn unknown_user_fails_at_once_with_kafkas_generic_message() {
        let mut auth = Authenticator::new(Mechanism::ScramSha256);
        let err = auth
            .step(b"n,,n=mallory,r=abc", &rfc7677_users())
            .unwrap_err();
        assert_eq!(
            err,
            SaslError::UnknownUser {
                mechanism: Mechanism::ScramSha256,
                user: "mallory".into()
            }
        );
        assert_eq!(
            err.client_message(Mechanism::ScramSha256, false),
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism SCRAM-SHA-256"
        );
        // A SCRAM-SHA-256 credential is no SCRAM-SHA-512 credential.
        let mut auth = Authenticator::new(Mechanism::ScramSha512);
        let err = auth.step(b"n,,n=user,r=abc", &rfc7677_users()).unwrap_err();
        assert!(matches!(err, SaslError::UnknownUser { .. }), "{err}");
    }

    /// CVE-2024-56128: the proof is valid for the AuthMessage the client built, but the nonce in
    /// it is not the one the server issued.
    #[test]
    fn tampered_nonce_with_a_valid_proof_is_refused() {
        let users = rfc7677_users();
        let client = Client::new(Mechanism::ScramSha256, "user", "pencil", RFC_CLIENT_NONCE);
        let tampered = [
            format!("{RFC_COMBINED_NONCE}x"),
            format!("X{}", &RFC_COMBINED_NONCE[1..]),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_string(),
            RFC_CLIENT_NONCE.to_string(),
        ];
        for nonce in tampered {
            let mut auth = rfc7677_authenticator();
            let server_first = challenge(auth.step(&client.first(), &users).unwrap());
            let (last, _) = client.last_with(&server_first, &nonce, b"n,,");
            assert_eq!(
                auth.step(&last, &users),
                Err(SaslError::NonceMismatch),
                "{nonce}"
            );
            assert!(!auth.is_complete());
        }
        // The same exchange with the right nonce passes: the refusal above is the nonce's doing.
        let mut auth = rfc7677_authenticator();
        let server_first = challenge(auth.step(&client.first(), &users).unwrap());
        let (last, _) = client.last_with(&server_first, RFC_COMBINED_NONCE, b"n,,");
        assert!(matches!(auth.step(&last, &users), Ok(Step::Done { .. })));
    }

    #[test]
    fn channel_binding_must_repeat_the_gs2_header() {
        let users = rfc7677_users();
        let client = Client::new(Mechanism::ScramSha256, "user", "pencil", RFC_CLIENT_NONCE);
        for cbind in [&b"y,,"[..], b"n,a=user,", b"", b"p=tls-unique,,xyz"] {
            let mut auth = rfc7677_authenticator();
            let server_first = challenge(auth.step(&client.first(), &users).unwrap());
            let (last, _) = client.last_with(&server_first, RFC_COMBINED_NONCE, cbind);
            let err = auth.step(&last, &users).unwrap_err();
            assert_eq!(
                err,
                SaslError::ChannelBindingMismatch {
                    gs2_header: "n,,".into()
                }
            );
        }
        // With an authorization id the binding is that header, `n,a=user,`.
        let mut client = client;
        client.gs2_header = "n,a=user,".into();
        let mut auth = rfc7677_authenticator();
        let server_first = challenge(auth.step(&client.first(), &users).unwrap());
        let (last, _) = client.last(&server_first);
        assert!(matches!(auth.step(&last, &users), Ok(Step::Done { .. })));
    }

    #[test]
    fn gs2_flags_other_than_n_are_refused() {
        for first in [
            "y,,n=user,r=abc",
            "p=tls-unique,,n=user,r=abc",
            "q,,n=user,r=abc",
        ] {
            let mut auth = Authenticator::new(Mechanism::ScramSha256);
            let err = auth.step(first.as_bytes(), &rfc7677_users()).unwrap_err();
            assert!(
                matches!(err, SaslError::ChannelBindingNotSupported { .. }),
                "{first}: {err}"
            );
        }
    }

    #[test]
    fn authorization_id_must_be_the_user() {
        let mut auth = Authenticator::new(Mechanism::ScramSha256);
        let err = auth
            .step(b"n,a=admin,n=user,r=abc", &rfc7677_users())
            .unwrap_err();
        assert_eq!(
            err,
            SaslError::AuthorizationIdMismatch {
                authzid: "admin".into(),
                user: "user".into()
            }
        );
        assert_eq!(
            err.client_message(Mechanism::ScramSha256, false),
            "Authentication failed: Client requested an authorization id that is different from \
             username"
        );
        let mut auth = Authenticator::new(Mechanism::ScramSha256);
        challenge(
            auth.step(b"n,a=user,n=user,r=abc", &rfc7677_users())
                .unwrap(),
        );
    }

    #[test]
    fn extensions_tokenauth_and_mandatory_extensions() {
        let users = rfc7677_users();
        let mut auth = Authenticator::new(Mechanism::ScramSha256);
        let err = auth
            .step(b"n,,n=user,r=abc,tokenauth=TRUE", &users)
            .unwrap_err();
        assert_eq!(err, SaslError::DelegationTokenNotSupported);
        let mut auth = Authenticator::new(Mechanism::ScramSha256);
        let err = auth.step(b"n,,m=ext,n=user,r=abc", &users).unwrap_err();
        assert!(
            matches!(err, SaslError::MandatoryExtensionNotSupported { .. }),
            "{err}"
        );
        // Unknown extensions and `tokenauth=false` are ignored, as Kafka does.
        let mut auth = Authenticator::new(Mechanism::ScramSha256);
        challenge(
            auth.step(b"n,,n=user,r=abc,tokenauth=false,foo=bar", &users)
                .unwrap(),
        );
    }

    #[test]
    fn iterations_are_bounded_at_creation_and_checked_at_use() {
        for (iterations, ok) in [(4095, false), (4096, true), (16384, true), (16385, false)] {
            let made = ScramCredential::from_salted_password(
                Mechanism::ScramSha256,
                b"salt",
                b"salted",
                iterations,
            );
            assert_eq!(made.is_ok(), ok, "{iterations}");
        }
        let too_few = ScramCredential::from_salted_password(Mechanism::ScramSha512, b"s", b"p", 1);
        assert_eq!(too_few, Err(SaslError::TooFewIterations { iterations: 1 }));
        assert_eq!(
            too_few
                .unwrap_err()
                .client_message(Mechanism::ScramSha512, false),
            "Too few iterations"
        );
        let plain = ScramCredential::from_password(Mechanism::Plain, "p", 4096).unwrap_err();
        assert_eq!(
            plain,
            SaslError::NotScram {
                mechanism: Mechanism::Plain
            }
        );
        // A credential built by hand below the minimum is refused when used.
        let mut weak = ScramCredential::from_password(Mechanism::ScramSha256, "p", 4096).unwrap();
        weak.iterations = 1000;
        let users = Users::default().with(Mechanism::ScramSha256, "u", weak);
        let mut auth = Authenticator::new(Mechanism::ScramSha256);
        let err = auth.step(b"n,,n=u,r=abc", &users).unwrap_err();
        assert!(matches!(
            err,
            SaslError::StoredIterationsTooFew {
                iterations: 1000,
                ..
            }
        ));
    }

    #[test]
    fn credentials_from_salted_password_match_from_password() {
        let a = ScramCredential::from_password(Mechanism::ScramSha512, "pw", 4096).unwrap();
        let salted = salted_password(Mechanism::ScramSha512, "pw", &a.salt, 4096).unwrap();
        let b =
            ScramCredential::from_salted_password(Mechanism::ScramSha512, &a.salt, &salted, 4096)
                .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.stored_key.len(), 64);
        let c = ScramCredential::from_password(Mechanism::ScramSha512, "pw", 4096).unwrap();
        assert_ne!(a.salt, c.salt, "salts are random");
    }

    #[test]
    fn debug_redacts_the_keys() {
        let credential =
            ScramCredential::from_password(Mechanism::ScramSha256, "pw", 4096).unwrap();
        let text = format!("{credential:?}");
        assert!(
            text.contains("<redacted>") && text.contains("4096"),
            "{text}"
        );
        assert!(
            !text.contains(&BASE64.encode(&credential.stored_key)),
            "{text}"
        );
        assert!(
            !text.contains(&format!("{:?}", credential.server_key)),
            "{text}"
        );
    }

    #[test]
    fn malformed_messages_name_what_is_wrong() {
        let users = rfc7677_users();
        let cases: [(&[u8], &str); 5] = [
            (b"n,,r=abc,n=user", "expected `n=<user>`"),
            (b"n,,n=user", "expected `r=<nonce>`"),
            (b"n,,n=user,r=a\x7fb", "printable ASCII"),
            (b"n,,n=user,r=abc,x=1", "unexpected attribute `x`"),
            (b"n,,n=\xffuser,r=abc", "not UTF-8"),
        ];
        for (input, needle) in cases {
            let mut auth = Authenticator::new(Mechanism::ScramSha256);
            let err = auth.step(input, &users).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
        let finals: [(&str, &str); 4] = [
            ("r=N,c=biws,p=AAAA", "expected `c=<channel binding>` first"),
            ("c=biws,r=N", "no `p=<proof>`"),
            ("c=biws,r=N,p=###", "proof is not base64"),
            ("c=biws,r=N,p=AAAA,p=AAAA", "unexpected attribute `p`"),
        ];
        for (input, needle) in finals {
            let mut auth = rfc7677_authenticator();
            auth.step(b"n,,n=user,r=abc", &users).unwrap();
            let err = auth.step(input.as_bytes(), &users).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
        let mut auth = rfc7677_authenticator();
        auth.step(b"n,,n=user,r=abc", &users).unwrap();
        let nonce = format!("abc{}", &RFC_COMBINED_NONCE[RFC_CLIENT_NONCE.len()..]);
        let short = format!("c=biws,r={nonce},p=AAAA");
        let err = auth.step(short.as_bytes(), &users).unwrap_err().to_string();
        assert!(err.contains("the proof has 3 bytes, not 32"), "{err}");
    }

    /// Runs `input` as the client-first message (`stage` 0) or, after a valid client-first
    /// message, as the client-final message (`stage` 1). Must return, never panic.
    fn feed(stage: usize, input: &[u8], users: &Users, first: &[u8]) -> Result<Step, SaslError> {
        let mut auth = rfc7677_authenticator();
        if stage == 1 {
            auth.step(first, users)
                .expect("the valid client-first message");
        }
        auth.step(input, users)
    }

    #[test]
    fn no_prefix_or_mutation_of_valid_messages_panics_or_passes() {
        let users = rfc7677_users().with(
            Mechanism::ScramSha256,
            "a,b",
            rfc7677_users().0.into_values().next().unwrap(),
        );
        let client = Client::new(Mechanism::ScramSha256, "user", "pencil", RFC_CLIENT_NONCE);
        let first = client.first();
        let server_first = format!("r={RFC_COMBINED_NONCE},s={RFC_SALT_B64},i=4096");
        let (last, _) = client.last(server_first.as_bytes());
        let valid = [first.clone(), last];
        for (stage, message) in valid.iter().enumerate() {
            for end in 0..message.len() {
                let outcome = feed(stage, &message[..end], &users, &first);
                assert!(
                    matches!(outcome, Err(_) | Ok(Step::Challenge(_))),
                    "prefix {end}"
                );
                assert!(
                    stage == 0 || outcome.is_err(),
                    "a truncated final message passed"
                );
            }
        }
        let mut rng = StdRng::seed_from_u64(0x5a51);
        for round in 0..4000 {
            let stage = round % 2;
            let mut input = valid[stage].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..input.len());
                match rng.random_range(0..3) {
                    0 => input[at] = rng.random(),
                    1 => input.truncate(at),
                    _ => input.insert(at, *b",=\0\xff".get(rng.random_range(0..4)).unwrap()),
                }
                if input.is_empty() {
                    break;
                }
            }
            let outcome = feed(stage, &input, &users, &first);
            // A mutated final message only passes if the mutation was a no-op.
            if stage == 1 && outcome.is_ok() {
                assert_eq!(input, valid[1], "a changed client-final message passed");
            }
        }
        for _ in 0..2000 {
            let len = rng.random_range(0..64);
            let input: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            assert!(feed(1, &input, &users, &first).is_err());
            let _ = feed(0, &input, &users, &first);
        }
    }

    #[test]
    fn plain_users_have_no_scram_credentials() {
        let users = PlainUsers::default();
        let mut auth = Authenticator::new(Mechanism::ScramSha256);
        let err = auth.step(b"n,,n=admin,r=abc", &users).unwrap_err();
        assert!(matches!(err, SaslError::UnknownUser { .. }), "{err}");
    }
}
