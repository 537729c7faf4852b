//! A client's SASL login as Kafka's clients run it, without I/O: SaslHandshake v1 names the
//! mechanism, then SaslAuthenticate rounds carry [`SaslClient`] tokens until it is done.
//!
//! ```text
//! client                                   broker
//!   SaslHandshake{mechanism}          ─►
//!                                     ◄─   error_code, enabled mechanisms
//!   SaslAuthenticate{initial token}   ─►
//!                                     ◄─   error_code, error_message, auth_bytes
//!   SaslAuthenticate{next token}      ─►   ... until the SaslClient says Done
//! ```
//!
//! The caller owns the connection and the codec: it sends the handshake naming
//! [`LoginExchange::mechanism`], hands the answer's fields to
//! [`LoginExchange::handshake_answered`], and then each SaslAuthenticate answer's fields to
//! [`LoginExchange::authenticate_answered`], sending every token it gets back. Before
//! authentication a Kafka broker answers only ApiVersions and these two requests. A non-zero
//! error code ends the exchange with a [`LoginError`] carrying it, for the caller to name.

use super::SaslLogin;
use crate::sasl::{ClientStep, SaslClient, SaslError};

/// Why a login failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// SaslHandshake answered an error (usually UNSUPPORTED_SASL_MECHANISM).
    #[error("SaslHandshake for {mechanism} answered error code {code} (the listener enables [{}])", enabled.join(", "))]
    Handshake {
        mechanism: &'static str,
        code: i16,
        enabled: Vec<String>,
    },
    /// SaslAuthenticate answered an error (usually SASL_AUTHENTICATION_FAILED).
    #[error("SASL {mechanism} authentication as {user} answered error code {code}: {}", message.as_deref().unwrap_or(""))]
    Refused {
        mechanism: &'static str,
        user: String,
        code: i16,
        message: Option<String>,
    },
    /// The client side refused the exchange (a bad server token, a malformed username).
    #[error("SASL {mechanism}: {source}")]
    Client {
        mechanism: &'static str,
        source: SaslError,
    },
}

/// One login in progress.
pub struct LoginExchange {
    mechanism: &'static str,
    user: String,
    client: SaslClient,
}

impl LoginExchange {
    /// A login with `login`'s mechanism and credentials.
    pub fn new(login: &SaslLogin) -> Self {
        let credentials = &login.credentials;
        Self {
            mechanism: login.mechanism.name(),
            user: credentials.username.clone(),
            client: SaslClient::new(
                login.mechanism,
                &credentials.username,
                &credentials.password,
            ),
        }
    }

    /// The mechanism name the SaslHandshake request carries.
    pub fn mechanism(&self) -> &'static str {
        self.mechanism
    }

    /// The user logging in.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Takes the SaslHandshake answer; returns the first SaslAuthenticate token.
    pub fn handshake_answered(
        &mut self,
        error_code: i16,
        enabled: &[&str],
    ) -> Result<Vec<u8>, LoginError> {
        if error_code != 0 {
            return Err(LoginError::Handshake {
                mechanism: self.mechanism,
                code: error_code,
                enabled: enabled.iter().map(|m| m.to_string()).collect(),
            });
        }
        self.client
            .initial_response()
            .map_err(|e| self.client_error(e))
    }

    /// Takes a SaslAuthenticate answer; returns the next token to send, or `None` when the
    /// login is complete.
    pub fn authenticate_answered(
        &mut self,
        error_code: i16,
        error_message: Option<&str>,
        auth_bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, LoginError> {
        if error_code != 0 {
            return Err(LoginError::Refused {
                mechanism: self.mechanism,
                user: self.user.clone(),
                code: error_code,
                message: error_message.filter(|m| !m.is_empty()).map(str::to_string),
            });
        }
        match self
            .client
            .step(auth_bytes)
            .map_err(|e| self.client_error(e))?
        {
            ClientStep::Respond(next) => Ok(Some(next)),
            ClientStep::Done => Ok(None),
        }
    }

    fn client_error(&self, source: SaslError) -> LoginError {
        LoginError::Client {
            mechanism: self.mechanism,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{login_credentials, Mechanism};

    fn login(mechanism: Mechanism) -> SaslLogin {
        let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    username=\"alice\" password=\"alice-secret\";";
        SaslLogin {
            mechanism,
            credentials: login_credentials(jaas).unwrap(),
        }
    }

    #[test]
    fn plain_sends_one_token_and_is_done_on_a_clean_answer() {
        let mut exchange = LoginExchange::new(&login(Mechanism::Plain));
        assert_eq!(exchange.mechanism(), "PLAIN");
        let token = exchange.handshake_answered(0, &["PLAIN"]).unwrap();
        assert_eq!(token, b"\0alice\0alice-secret");
        assert_eq!(exchange.authenticate_answered(0, None, b"").unwrap(), None);
    }

    #[test]
    fn error_codes_end_the_exchange_with_what_the_broker_said() {
        let mut exchange = LoginExchange::new(&login(Mechanism::ScramSha256));
        let err = exchange
            .handshake_answered(33, &["PLAIN", "SCRAM-SHA-512"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "SaslHandshake for SCRAM-SHA-256 answered error code 33 (the listener enables \
             [PLAIN, SCRAM-SHA-512])"
        );
        let mut exchange = LoginExchange::new(&login(Mechanism::Plain));
        exchange.handshake_answered(0, &[]).unwrap();
        let err = exchange
            .authenticate_answered(58, Some("Invalid username or password"), b"")
            .unwrap_err();
        assert!(
            matches!(err, LoginError::Refused { code: 58, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("as alice") && err.to_string().contains("Invalid"));
    }

    #[test]
    fn a_bad_server_token_is_a_client_error() {
        let mut exchange = LoginExchange::new(&login(Mechanism::ScramSha512));
        let first = exchange.handshake_answered(0, &[]).unwrap();
        assert!(first.starts_with(b"n,,n=alice,r="));
        let err = exchange
            .authenticate_answered(0, None, b"r=not-our-nonce,s=c2FsdA==,i=4096")
            .unwrap_err();
        assert!(matches!(err, LoginError::Client { .. }), "{err:?}");
    }
}
