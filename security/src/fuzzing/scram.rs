//! The SCRAM target: a multi-step exchange driven by fuzz input, checked by a SCRAM client
//! computation of its own (PBKDF2, HMAC and hash called directly, not through the server code).
//!
//! ```text
//! input = mode token (FF token)*
//! mode  bit 0     0: SCRAM-SHA-256, 1: SCRAM-SHA-512
//!       bits 1-2  0 or 3: every token as given
//!                 1: the second token is a client-final message without proof; the harness
//!                    appends `,p=` and the right proof for the AuthMessage it makes
//!                 2: the same with a wrong proof
//! ```
//!
//! Modes 1 and 2 let the fuzzer reach the proof check with changed nonces, channel bindings and
//! extensions, which random bytes never would; mode 1 with a well-formed message must succeed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::{users, SEPARATOR};
use crate::sasl::{
    Authenticator, Mechanism, SaslError, ScramCredential, Step, SCRAM_ITERATIONS_MIN,
};

/// The fixed server nonce, so that an input replays the same exchange.
pub const SERVER_NONCE: &str = "fuzz-server-nonce";
/// The salt of every SCRAM user of the target.
pub const SALT: &[u8] = b"millrace-fuzz-salt";

/// (mechanism, user, password, iterations). `a,b=c` needs saslname escapes; `bob` has only a
/// SHA-512 credential; `weak` is stored with fewer iterations than Kafka accepts.
pub const USERS: [(Mechanism, &str, &str, i32); 5] = [
    (Mechanism::ScramSha256, "alice", "alice-pw", 4096),
    (Mechanism::ScramSha512, "alice", "alice-pw", 4096),
    (Mechanism::ScramSha256, "a,b=c", "comma-pw", 4096),
    (Mechanism::ScramSha512, "bob", "bob-pw", 8192),
    (Mechanism::ScramSha256, "weak", "weak-pw", 1000),
];

/// One stored user with what a client derives from the password.
pub(super) struct Known {
    pub mech: Mechanism,
    pub user: &'static str,
    pub credential: ScramCredential,
    salted_password: Vec<u8>,
}

/// How the second token's proof is made (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proof {
    Given,
    Right,
    Wrong,
}

/// One SCRAM exchange (see the module doc for the layout).
pub fn sasl_scram(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mech = if mode & 1 == 0 {
        Mechanism::ScramSha256
    } else {
        Mechanism::ScramSha512
    };
    let proof = match (mode >> 1) & 3 {
        1 => Proof::Right,
        2 => Proof::Wrong,
        _ => Proof::Given,
    };
    let users = users();
    let mut auth = Authenticator::with_nonce(mech, SERVER_NONCE);
    let mut session: Option<Session> = None;
    let mut ended: Option<&'static str> = None;
    for (i, raw) in rest.split(|&b| b == SEPARATOR).enumerate() {
        let token = match &session {
            Some(s) if ended.is_none() && proof != Proof::Given => s.with_proof(raw, proof),
            _ => raw.to_vec(),
        };
        let outcome = auth.step(&token, users);
        if let Some(state) = ended {
            assert_eq!(outcome, Err(SaslError::IllegalState { state }));
            continue;
        }
        match outcome {
            Ok(Step::Challenge(server_first)) => {
                assert_eq!(i, 0, "a challenge after the first token");
                session = Some(Session::challenged(mech, &token, server_first));
            }
            Ok(Step::Done { user, response }) => {
                let s = session.as_ref().expect("Done without a challenge first");
                s.check_done(&token, &user, &response);
                ended = Some("COMPLETE");
            }
            Err(e) => {
                if let (Some(s), Proof::Right) = (&session, proof) {
                    assert!(!s.is_well_formed(raw), "refused a right proof: {e}");
                }
                ended = Some("FAILED");
            }
        }
        assert_eq!(auth.is_complete(), ended == Some("COMPLETE"));
    }
}

/// The SCRAM users, derived once per process.
pub(super) fn known_users() -> Vec<Known> {
    USERS
        .iter()
        .map(|&(mech, user, password, iterations)| {
            let rounds = u32::try_from(iterations).expect("positive");
            let salted_password = pbkdf2(mech, password.as_bytes(), rounds);
            let limit = iterations.max(SCRAM_ITERATIONS_MIN);
            let mut credential =
                ScramCredential::from_salted_password(mech, SALT, &salted_password, limit)
                    .expect("a valid credential");
            // The count is only carried to the client; the keys come from `salted_password`.
            credential.iterations = iterations;
            let client_key = hmac(mech, &salted_password, b"Client Key");
            assert_eq!(credential.stored_key, hash(mech, &client_key));
            Known {
                mech,
                user,
                credential,
                salted_password,
            }
        })
        .collect()
}

/// The client-final message a correct client sends after `server_first`, for seeds.
pub fn client_final(
    mech: Mechanism,
    client_first: &str,
    server_first: &str,
    without_proof: &str,
) -> String {
    let s = Session::challenged(
        mech,
        client_first.as_bytes(),
        server_first.as_bytes().to_vec(),
    );
    String::from_utf8(s.with_proof(without_proof.as_bytes(), Proof::Right)).expect("UTF-8")
}

/// What the harness knows after the server's challenge.
struct Session {
    known: &'static Known,
    gs2_header: String,
    bare: String,
    client_nonce: String,
    server_first: String,
}

impl Session {
    /// Checks the challenge against the client-first message, parsed here independently.
    fn challenged(mech: Mechanism, client_first: &[u8], server_first: Vec<u8>) -> Self {
        let text = std::str::from_utf8(client_first).expect("challenged non-UTF-8");
        let first = parse_first(text).expect("challenged a malformed client-first message");
        assert_eq!(
            first.flag, "n",
            "challenged channel binding flag {}",
            first.flag
        );
        let known = users()
            .scram
            .iter()
            .find(|k| k.mech == mech && k.user == first.user)
            .unwrap_or_else(|| panic!("challenged unknown user {:?}", first.user));
        assert!(first.authzid.as_deref().is_none_or(|a| a == first.user));
        assert!(!first.token_auth, "challenged a delegation token login");
        assert!(known.credential.iterations >= SCRAM_ITERATIONS_MIN);
        let expected = format!(
            "r={}{SERVER_NONCE},s={},i={}",
            first.nonce,
            BASE64.encode(SALT),
            known.credential.iterations
        );
        let server_first = String::from_utf8(server_first).expect("server-first is UTF-8");
        assert_eq!(server_first, expected);
        Session {
            known,
            gs2_header: first.gs2_header.to_string(),
            bare: first.bare.to_string(),
            client_nonce: first.nonce.to_string(),
            server_first,
        }
    }

    /// `without_proof` + `,p=` + the proof for its AuthMessage (flipped for `Proof::Wrong`).
    fn with_proof(&self, without_proof: &[u8], proof: Proof) -> Vec<u8> {
        let Ok(text) = std::str::from_utf8(without_proof) else {
            return without_proof.to_vec();
        };
        let mut p = self.proof(text);
        if proof == Proof::Wrong {
            p[0] ^= 1;
        }
        format!("{text},p={}", BASE64.encode(p)).into_bytes()
    }

    /// True for `c=<GS2 header>,r=<nonce>` exactly: what every client sends.
    fn is_well_formed(&self, without_proof: &[u8]) -> bool {
        let c = BASE64.encode(&self.gs2_header);
        let expected = format!("c={c},r={}{SERVER_NONCE}", self.client_nonce);
        without_proof == expected.as_bytes()
    }

    /// The server said Done for `last`: only right if a client knowing the password sent it.
    fn check_done(&self, last: &[u8], user: &str, response: &[u8]) {
        let text = std::str::from_utf8(last).expect("Done for a non-UTF-8 message");
        let (without_proof, proof) = text.rsplit_once(",p=").expect("Done without a proof");
        let mut attributes = without_proof.split(',');
        let binding = attributes.next().and_then(|a| a.strip_prefix("c="));
        let binding = binding.map(|b| BASE64.decode(b).expect("Done with a bad binding"));
        assert_eq!(binding.as_deref(), Some(self.gs2_header.as_bytes()));
        let nonce = attributes.next().and_then(|a| a.strip_prefix("r="));
        let expected_nonce = format!("{}{SERVER_NONCE}", self.client_nonce);
        assert_eq!(nonce, Some(expected_nonce.as_str()), "CVE-2024-56128");
        assert_eq!(user, self.known.user);
        let proof = BASE64.decode(proof).expect("Done with a bad proof");
        assert_eq!(proof, self.proof(without_proof), "Done with a wrong proof");
        let auth_message = self.auth_message(without_proof);
        let mech = self.known.mech;
        let server_key = hmac(mech, &self.known.salted_password, b"Server Key");
        let signature = hmac(mech, &server_key, auth_message.as_bytes());
        let expected = format!("v={}", BASE64.encode(signature));
        assert_eq!(response, expected.as_bytes());
    }

    fn auth_message(&self, without_proof: &str) -> String {
        format!("{},{},{without_proof}", self.bare, self.server_first)
    }

    /// ClientKey XOR HMAC(StoredKey, AuthMessage).
    fn proof(&self, without_proof: &str) -> Vec<u8> {
        let mech = self.known.mech;
        let client_key = hmac(mech, &self.known.salted_password, b"Client Key");
        let stored_key = hash(mech, &client_key);
        let auth_message = self.auth_message(without_proof);
        let signature = hmac(mech, &stored_key, auth_message.as_bytes());
        client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect()
    }
}

/// A client-first message, split as RFC 5802 writes it; `None` when it is not that shape.
struct First<'a> {
    flag: &'a str,
    authzid: Option<String>,
    gs2_header: &'a str,
    bare: &'a str,
    user: String,
    nonce: &'a str,
    token_auth: bool,
}

fn parse_first(msg: &str) -> Option<First<'_>> {
    let (flag, rest) = msg.split_once(',')?;
    let (authzid, bare) = rest.split_once(',')?;
    let authzid = match authzid {
        "" => None,
        a => Some(saslname(a.strip_prefix("a=")?)?),
    };
    let mut attributes = bare.split(',');
    let user = saslname(attributes.next()?.strip_prefix("n=")?)?;
    let nonce = attributes.next()?.strip_prefix("r=")?;
    let token_auth = attributes.any(|a| {
        a.split_once('=')
            .is_some_and(|(k, v)| k == "tokenauth" && v.eq_ignore_ascii_case("true"))
    });
    Some(First {
        flag,
        authzid,
        gs2_header: &msg[..msg.len() - bare.len()],
        bare,
        user,
        nonce,
        token_auth,
    })
}

/// RFC 5802's saslname: `=2C` is `,`, `=3D` is `=`, any other `=` is malformed.
fn saslname(encoded: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = encoded;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        out.push(match tail.get(..3)? {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &tail[3..];
    }
    out.push_str(rest);
    Some(out)
}

fn hmac(mech: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    match mech {
        Mechanism::ScramSha512 => run::<Hmac<Sha512>>(key, data),
        _ => run::<Hmac<Sha256>>(key, data),
    }
}

fn hash(mech: Mechanism, data: &[u8]) -> Vec<u8> {
    match mech {
        Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

fn pbkdf2(mech: Mechanism, password: &[u8], rounds: u32) -> Vec<u8> {
    match mech {
        Mechanism::ScramSha512 => {
            let mut out = vec![0u8; 64];
            pbkdf2::pbkdf2_hmac::<Sha512>(password, SALT, rounds, &mut out);
            out
        }
        _ => {
            let mut out = vec![0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password, SALT, rounds, &mut out);
            out
        }
    }
}
