//! SASL/PLAIN (RFC 4616), server side, as Kafka's `PlainSaslServer` runs it, and the users a
//! `PlainLoginModule` JAAS line declares as `user_<name>="<password>"`.
//!
//! ```text
//! message = [authzid] NUL authcid NUL passwd      (UTF-8, one token, no challenge)
//! ```
//!
//! [`PlainUsers`] never keeps a password: it keeps HMAC-SHA-256 digests under a key drawn at
//! start-up, and compares digests in constant time, also for a user it does not know.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::jaas::{JaasConfig, PLAIN_LOGIN_MODULE};
use super::{Credentials, Mechanism, SaslError, ScramCredential, Step};

/// The PLAIN users of a JAAS configuration, with their passwords digested.
pub struct PlainUsers {
    key: [u8; 32],
    digests: HashMap<String, [u8; 32]>,
}

impl PlainUsers {
    /// The `user_<name>` options of a `PlainLoginModule` line; none for any other login module,
    /// as Kafka's `PlainServerCallbackHandler` only reads options of that module.
    pub fn from_jaas(config: &JaasConfig) -> Self {
        let mut users = Self::default();
        if config.login_module == PLAIN_LOGIN_MODULE {
            for (key, password) in &config.options {
                if let Some(user) = key.strip_prefix("user_") {
                    users.insert(user, password);
                }
            }
        }
        users
    }

    /// Adds or replaces one user.
    pub fn insert(&mut self, user: &str, password: &str) {
        let digest = self.digest(password);
        self.digests.insert(user.to_string(), digest);
    }

    /// True when `password` is `user`'s. Takes the same time for unknown users.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let presented = self.digest(password);
        // An unknown user is compared against a digest no password produces in practice, so the
        // comparison and its timing do not depend on whether the user exists.
        let (known, expected) = match self.digests.get(user) {
            Some(expected) => (1u8, *expected),
            None => (0u8, [0u8; 32]),
        };
        let same = presented.ct_eq(&expected);
        bool::from(same & subtle::Choice::from(known))
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl Default for PlainUsers {
    /// No users, and a fresh digest key from the thread-local CSPRNG.
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            key,
            digests: HashMap::new(),
        }
    }
}

impl Credentials for PlainUsers {
    fn check_plain(&self, user: &str, password: &str) -> bool {
        self.check(user, password)
    }

    fn scram(&self, _mech: Mechanism, _user: &str) -> Option<ScramCredential> {
        None
    }
}

impl fmt::Debug for PlainUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.digests.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("PlainUsers")
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

/// Runs the single PLAIN step.
pub(super) fn authenticate(input: &[u8], creds: &dyn Credentials) -> Result<Step, SaslError> {
    let message = std::str::from_utf8(input).map_err(|_| SaslError::MalformedPlain {
        reason: "not UTF-8".to_string(),
    })?;
    let tokens: Vec<&str> = message.split('\0').collect();
    let [authzid, user, password] = tokens[..] else {
        let reason = format!("expected 3 tokens, got {}", tokens.len());
        return Err(SaslError::MalformedPlain { reason });
    };
    if user.is_empty() {
        return Err(SaslError::PlainUsernameMissing);
    }
    if password.is_empty() {
        return Err(SaslError::PlainPasswordMissing);
    }
    // Kafka checks the password before the authorization id.
    if !creds.check_plain(user, password) {
        return Err(SaslError::InvalidUsernameOrPassword {
            user: user.to_string(),
        });
    }
    if !authzid.is_empty() && authzid != user {
        let (authzid, user) = (authzid.to_string(), user.to_string());
        return Err(SaslError::AuthorizationIdMismatch { authzid, user });
    }
    Ok(Step::Done {
        user: user.to_string(),
        response: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{parse_jaas, Authenticator};
    use super::*;

    fn users() -> PlainUsers {
        let jaas = parse_jaas(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="admin-secret"
               user_admin="admin-secret" user_alice="alice-secret";"#,
        )
        .unwrap();
        PlainUsers::from_jaas(&jaas)
    }

    fn plain(input: &[u8]) -> Result<Step, SaslError> {
        Authenticator::new(Mechanism::Plain).step(input, &users())
    }

    #[test]
    fn jaas_users_are_the_user_options_only() {
        let users = users();
        assert_eq!(
            users.len(),
            2,
            "username/password are the broker's own client login"
        );
        assert!(users.check("admin", "admin-secret"));
        assert!(users.check("alice", "alice-secret"));
        assert!(!users.check("alice", "admin-secret"));
        assert!(!users.check("alice", "alice-secret "));
        assert!(!users.check("bob", ""));
        assert!(!users.check("username", "admin"));
    }

    #[test]
    fn other_login_modules_declare_no_plain_users() {
        let jaas = parse_jaas(
            "org.apache.kafka.common.security.scram.ScramLoginModule required user_x=\"y\";",
        )
        .unwrap();
        let users = PlainUsers::from_jaas(&jaas);
        assert!(users.is_empty());
        assert!(!users.check("x", "y"));
    }

    #[test]
    fn right_password_authenticates_with_an_empty_response() {
        let done = Step::Done {
            user: "alice".into(),
            response: Vec::new(),
        };
        assert_eq!(plain(b"\0alice\0alice-secret"), Ok(done.clone()));
        assert_eq!(plain(b"alice\0alice\0alice-secret"), Ok(done));
    }

    #[test]
    fn wrong_or_unknown_credentials_get_kafkas_message() {
        for input in [&b"\0alice\0wrong"[..], b"\0mallory\0alice-secret"] {
            let err = plain(input).unwrap_err();
            assert!(matches!(err, SaslError::InvalidUsernameOrPassword { .. }));
            assert_eq!(
                err.client_message(Mechanism::Plain, false),
                "Authentication failed: Invalid username or password"
            );
            assert!(
                !err.to_string().contains("secret"),
                "no password in the log text"
            );
        }
    }

    #[test]
    fn authorization_id_must_be_the_user() {
        let err = plain(b"admin\0alice\0alice-secret").unwrap_err();
        assert_eq!(
            err,
            SaslError::AuthorizationIdMismatch {
                authzid: "admin".into(),
                user: "alice".into()
            }
        );
    }

    #[test]
    fn empty_fields_and_wrong_shapes_are_refused() {
        assert_eq!(plain(b"\0\0pw"), Err(SaslError::PlainUsernameMissing));
        assert_eq!(plain(b"\0alice\0"), Err(SaslError::PlainPasswordMissing));
        for (input, got) in [
            (&b""[..], 1),
            (b"alice", 1),
            (b"alice\0pw", 2),
            (b"\0a\0b\0c", 4),
        ] {
            let reason = format!("expected 3 tokens, got {got}");
            assert_eq!(plain(input), Err(SaslError::MalformedPlain { reason }));
        }
        let err = plain(b"\0alice\0\xff").unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn debug_lists_users_without_passwords() {
        let text = format!("{:?}", users());
        assert!(text.contains("alice") && text.contains("admin"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
