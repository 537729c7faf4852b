//! Who a connection is: each client listener's TLS and SASL set-up, and a connection's SASL
//! exchange (SaslHandshake v0–1, SaslAuthenticate v0–2, re-authentication, KIP-368).
//!
//! [`Listeners::build`] turns the resolved `ssl.*`/`sasl.*` keys into rustls configurations and
//! SASL user tables once, at start-up (a bad key file stops the broker with the key named);
//! every shard then holds a [`ListenerRuntime`] per listener, which rebuilds its TLS
//! configuration when the key or trust files change (checked at most every
//! [`TLS_RELOAD_CHECK`], on a new connection).
//!
//! On a SASL listener a connection may send only ApiVersions, SaslHandshake and
//! SaslAuthenticate until it has authenticated, in frames of at most
//! `sasl.server.max.receive.size`; anything else closes it, as Kafka does. A failed
//! authentication is answered SASL_AUTHENTICATION_FAILED after
//! `connection.failed.authentication.delay.ms`, and the connection is closed. With
//! `connections.max.reauth.ms` the session lasts that long: the client re-authenticates on
//! the same connection (same mechanism, same user), and a request after expiry closes it.
//!
//! Lives on each shard; a connection's [`SaslConn`] on the connection's reader task.

use crate::config::security::ListenerSecurity;
use crate::config::Config;
use crate::handlers::{respond, str_bytes, Response};
use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use millrace_security::sasl::{self, Authenticator, Credentials, Mechanism, PlainUsers, Step};
use millrace_security::tls::{self, PrincipalRules, ServerTlsSettings};
use millrace_shard::time::Instant;
use millrace_wire::codes as code;
use millrace_wire::frame::RequestHeader;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

/// How often a listener looks at its key and trust files for changes.
pub const TLS_RELOAD_CHECK: Duration = tls::RELOAD_CHECK;

/// Kafka's principal of a connection nobody authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// One client listener's security as built at start-up (shared by the shards).
pub struct ListenerSetup {
    /// The listener's name.
    pub name: String,
    /// TLS: the settings (to rebuild from) and the first configuration.
    pub tls: Option<(ServerTlsSettings, Arc<rustls::ServerConfig>, PrincipalRules)>,
    /// SASL: mechanisms, PLAIN users, session lifetime, pre-authentication frame cap.
    pub sasl: Option<SaslSetup>,
}

/// A SASL listener's settings.
pub struct SaslSetup {
    /// `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN's users from the listener's PLAIN JAAS line.
    pub plain: PlainUsers,
    /// `connections.max.reauth.ms` (0: no expiry).
    pub reauth_ms: i64,
    /// `sasl.server.max.receive.size`.
    pub max_receive_bytes: usize,
}

/// Every client listener's set-up, in `cluster.client_listeners`' order, and the controller
/// listener's on a controller whose listener is secured.
pub struct Listeners(pub Vec<Arc<ListenerSetup>>, pub Option<Arc<ListenerSetup>>);

impl Listeners {
    /// Builds each listener's TLS configuration and SASL tables; an error names the key.
    pub fn build(config: &Config) -> Result<Listeners, String> {
        let mut out = Vec::new();
        for l in &config.listener_security {
            out.push(Arc::new(build_one(l)?));
        }
        let controller = match &config.controller_security {
            Some(l) if l.tls.is_some() || l.sasl.is_some() => Some(Arc::new(build_one(l)?)),
            _ => None,
        };
        Ok(Listeners(out, controller))
    }
}

fn build_one(l: &ListenerSecurity) -> Result<ListenerSetup, String> {
    let named = |e: &dyn std::fmt::Display| format!("listener {}: {e}", l.name);
    let tls = match &l.tls {
        None => None,
        Some(keys) => {
            let settings = tls_settings(keys).map_err(|e| named(&e))?;
            let built = tls::server_config(&settings).map_err(|e| named(&e))?;
            let rules =
                PrincipalRules::parse(&settings.principal_mapping_rules).map_err(|e| named(&e))?;
            Some((settings, built, rules))
        }
    };
    let sasl = match &l.sasl {
        None => None,
        Some(keys) => {
            let mut mechanisms = Vec::new();
            let mut plain = PlainUsers::default();
            for name in &keys.mechanisms {
                let m = Mechanism::from_name(name)
                    .ok_or_else(|| named(&format!("mechanism {name} is not served")))?;
                let line = &keys.jaas[name];
                let jaas = sasl::parse_jaas(line).map_err(|e| {
                    named(&format!(
                        "listener.name.{}.{}.sasl.jaas.config: {e}",
                        l.name.to_ascii_lowercase(),
                        name.to_ascii_lowercase()
                    ))
                })?;
                let module = match m {
                    Mechanism::Plain => sasl::PLAIN_LOGIN_MODULE,
                    _ => sasl::SCRAM_LOGIN_MODULE,
                };
                if jaas.login_module != module {
                    return Err(named(&format!(
                        "the {name} JAAS line names {}, expected {module}",
                        jaas.login_module
                    )));
                }
                if m == Mechanism::Plain {
                    plain = PlainUsers::from_jaas(&jaas);
                }
                mechanisms.push(m);
            }
            Some(SaslSetup {
                mechanisms,
                plain,
                reauth_ms: keys.reauth_ms,
                max_receive_bytes: keys.max_receive_bytes,
            })
        }
    };
    Ok(ListenerSetup {
        name: l.name.clone(),
        tls,
        sasl,
    })
}

fn tls_settings(
    keys: &crate::config::security::TlsKeys,
) -> Result<ServerTlsSettings, tls::TlsError> {
    let keystore = match (&keys.keystore_location, &keys.keystore_key) {
        (Some(path), _) => tls::KeySource::File { path: path.into() },
        (None, Some(key)) => tls::KeySource::Inline {
            key_pem: key.clone(),
            chain_pem: keys.keystore_certificate_chain.clone().unwrap_or_default(),
        },
        (None, None) => unreachable!("checked when the keys were resolved"),
    };
    let truststore = match (&keys.truststore_location, &keys.truststore_certificates) {
        (Some(path), _) => Some(tls::TrustSource::File { path: path.into() }),
        (None, Some(pem)) => Some(tls::TrustSource::Inline { pem: pem.clone() }),
        (None, None) => None,
    };
    let mut s = ServerTlsSettings::new(keystore);
    s.key_password = keys.key_password.clone();
    s.truststore = truststore;
    s.client_auth = tls::ClientAuth::parse(&keys.client_auth)?;
    s.enabled_protocols = keys.enabled_protocols.clone();
    s.cipher_suites = keys.cipher_suites.clone();
    s.principal_mapping_rules = keys.principal_mapping_rules.clone();
    Ok(s)
}

/// A listener on one shard: its set-up and the TLS configuration now in use.
pub struct ListenerRuntime {
    /// What start-up built.
    pub setup: Arc<ListenerSetup>,
    tls_now: RefCell<Option<(u64, Arc<rustls::ServerConfig>)>>,
    last_check: Cell<Option<Instant>>,
}

impl ListenerRuntime {
    /// This shard's runtime of `setup`.
    pub fn new(setup: Arc<ListenerSetup>) -> ListenerRuntime {
        let tls_now = setup.tls.as_ref().map(|(settings, config, _)| {
            (
                tls::fingerprint(&tls::watched_files(settings)),
                config.clone(),
            )
        });
        ListenerRuntime {
            setup,
            tls_now: RefCell::new(tls_now),
            last_check: Cell::new(None),
        }
    }

    /// The TLS configuration for a new connection, rebuilt first if the files changed (a
    /// rebuild that fails keeps the previous one and says why).
    pub fn tls_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        let (settings, _, _) = self.setup.tls.as_ref()?;
        let now = Instant::now();
        let due = self
            .last_check
            .get()
            .is_none_or(|at| now.saturating_duration_since(at) >= TLS_RELOAD_CHECK);
        if due {
            self.last_check.set(Some(now));
            let files = tls::watched_files(settings);
            let print = tls::fingerprint(&files);
            let changed = self
                .tls_now
                .borrow()
                .as_ref()
                .is_some_and(|(p, _)| *p != print);
            if changed {
                match tls::server_config(settings) {
                    Ok(config) => {
                        tracing::info!(listener = %self.setup.name, "TLS key or trust files changed: reloaded");
                        *self.tls_now.borrow_mut() = Some((print, config));
                    }
                    Err(e) => {
                        tracing::warn!(listener = %self.setup.name, error = %e, "TLS files changed but do not load; keeping the previous ones");
                    }
                }
            }
        }
        self.tls_now.borrow().as_ref().map(|(_, c)| c.clone())
    }

    /// The principal of a TLS connection: its client certificate's DN through
    /// `ssl.principal.mapping.rules`, or ANONYMOUS without a certificate.
    pub fn tls_principal(&self, session: &rustls::ServerConnection) -> Result<String, String> {
        let Some((_, _, rules)) = self.setup.tls.as_ref() else {
            return Ok(ANONYMOUS.to_string());
        };
        tls::peer_principal_name(session.peer_certificates(), rules)
            .map(|name| format!("User:{name}"))
            .map_err(|e| e.to_string())
    }
}

/// The credentials a SASL exchange checks against: the listener's PLAIN users and the
/// cluster's SCRAM credentials.
pub struct BrokerCredentials<'a> {
    /// PLAIN's users.
    pub plain: &'a PlainUsers,
    /// SCRAM credentials by (mechanism, user).
    pub scram: &'a dyn Fn(Mechanism, &str) -> Option<sasl::ScramCredential>,
}

impl Credentials for BrokerCredentials<'_> {
    fn check_plain(&self, user: &str, password: &str) -> bool {
        self.plain.check(user, password)
    }

    fn scram(&self, mech: Mechanism, user: &str) -> Option<sasl::ScramCredential> {
        (self.scram)(mech, user)
    }
}

/// Where a connection's SASL exchange stands.
enum State {
    /// Nothing yet: ApiVersions or SaslHandshake.
    Start,
    /// After SaslHandshake: tokens (framed in SaslAuthenticate, or raw after v0); `reauth`
    /// holds the user of the session being renewed.
    Exchanging {
        auth: Authenticator,
        raw: bool,
        reauth: Option<String>,
    },
    /// Authenticated as `user` until `expires`.
    Done {
        user: String,
        mechanism: Mechanism,
        expires: Option<Instant>,
    },
}

/// What the connection does with an answer of the SASL exchange.
pub enum Outcome {
    /// Send it and go on.
    Answer(Response),
    /// Send it, then close the connection (after the failed-authentication delay when
    /// `delay` is set).
    Refuse { answer: Response, delay: bool },
}

/// One connection's SASL exchange.
pub struct SaslConn {
    setup: Arc<ListenerSetup>,
    state: State,
}

impl SaslConn {
    /// A new connection on a SASL listener.
    pub fn new(setup: Arc<ListenerSetup>) -> SaslConn {
        assert!(setup.sasl.is_some(), "a SASL connection on a SASL listener");
        SaslConn {
            setup,
            state: State::Start,
        }
    }

    /// The listener's set-up (its PLAIN users among it).
    pub fn setup(&self) -> Arc<ListenerSetup> {
        self.setup.clone()
    }

    fn settings(&self) -> &SaslSetup {
        self.setup.sasl.as_ref().expect("checked in new")
    }

    /// True once authenticated (also while a re-authentication runs).
    pub fn authenticated(&self) -> bool {
        match &self.state {
            State::Done { .. } => true,
            State::Exchanging { reauth, .. } => reauth.is_some(),
            State::Start => false,
        }
    }

    /// The principal, once authenticated.
    pub fn principal(&self) -> Option<String> {
        match &self.state {
            State::Done { user, .. } => Some(format!("User:{user}")),
            _ => None,
        }
    }

    /// True after a v0 SaslHandshake: the next frames are the mechanism's bytes, unframed.
    pub fn raw_tokens(&self) -> bool {
        matches!(self.state, State::Exchanging { raw: true, .. })
    }

    /// Largest frame accepted now: `sasl.server.max.receive.size` until authenticated.
    pub fn frame_cap(&self, otherwise: usize) -> usize {
        if self.authenticated() {
            otherwise
        } else {
            self.settings().max_receive_bytes.min(otherwise)
        }
    }

    /// True when the session has expired (`connections.max.reauth.ms`) and only a
    /// re-authentication may follow.
    pub fn expired(&self, now: Instant) -> bool {
        matches!(&self.state, State::Done { expires: Some(at), .. } if now.saturating_duration_since(*at) > Duration::ZERO)
    }

    /// SaslHandshake: picks the mechanism.
    pub fn handshake(&mut self, header: &RequestHeader, body: &Bytes) -> Outcome {
        let req: SaslHandshakeRequest = match crate::handlers::decode(header, body) {
            Ok(r) => r,
            Err(close) => {
                return Outcome::Refuse {
                    answer: close,
                    delay: false,
                }
            }
        };
        let enabled: Vec<_> = self
            .settings()
            .mechanisms
            .iter()
            .map(|m| str_bytes(m.name()))
            .collect();
        let answer = |error| {
            respond(
                header,
                &SaslHandshakeResponse::default()
                    .with_error_code(error)
                    .with_mechanisms(enabled.clone()),
            )
        };
        let wanted = Mechanism::from_name(req.mechanism.as_str())
            .filter(|m| self.settings().mechanisms.contains(m));
        let Some(mechanism) = wanted else {
            tracing::warn!(mechanism = %req.mechanism.as_str(), "closing connection: SASL mechanism not enabled");
            return Outcome::Refuse {
                answer: answer(code::UNSUPPORTED_SASL_MECHANISM),
                delay: false,
            };
        };
        let reauth = match &self.state {
            State::Start => None,
            State::Done {
                mechanism: was,
                user,
                ..
            } if *was == mechanism && header.api_version >= 1 => Some(user.clone()),
            State::Done { .. } => {
                tracing::warn!("closing connection: re-authentication changed the mechanism");
                return Outcome::Refuse {
                    answer: answer(code::ILLEGAL_SASL_STATE),
                    delay: false,
                };
            }
            State::Exchanging { .. } => {
                return Outcome::Refuse {
                    answer: answer(code::ILLEGAL_SASL_STATE),
                    delay: false,
                }
            }
        };
        self.state = State::Exchanging {
            auth: Authenticator::new(mechanism),
            raw: header.api_version == 0,
            reauth,
        };
        Outcome::Answer(answer(code::NONE))
    }

    /// SaslAuthenticate: one step of the mechanism.
    pub fn authenticate(
        &mut self,
        header: &RequestHeader,
        body: &Bytes,
        creds: &dyn Credentials,
        now: Instant,
    ) -> Outcome {
        let req: SaslAuthenticateRequest = match crate::handlers::decode(header, body) {
            Ok(r) => r,
            Err(close) => {
                return Outcome::Refuse {
                    answer: close,
                    delay: false,
                }
            }
        };
        let answer = |error: i16, message: Option<String>, bytes: Bytes, lifetime_ms: i64| {
            respond(
                header,
                &SaslAuthenticateResponse::default()
                    .with_error_code(error)
                    .with_error_message(message.map(|m| str_bytes(&m)))
                    .with_auth_bytes(bytes)
                    .with_session_lifetime_ms(lifetime_ms),
            )
        };
        if !matches!(self.state, State::Exchanging { raw: false, .. }) {
            tracing::warn!(
                "closing connection: SaslAuthenticate without a SaslHandshake v1 before it"
            );
            let message = "SaslAuthenticate is expected after a SaslHandshake v1 only".to_string();
            return Outcome::Refuse {
                answer: answer(code::ILLEGAL_SASL_STATE, Some(message), Bytes::new(), 0),
                delay: false,
            };
        }
        match self.step(&req.auth_bytes, creds, now) {
            Ok((bytes, lifetime_ms)) => {
                Outcome::Answer(answer(code::NONE, None, Bytes::from(bytes), lifetime_ms))
            }
            Err((error, message)) => Outcome::Refuse {
                answer: answer(error, Some(message), Bytes::new(), 0),
                delay: error == code::SASL_AUTHENTICATION_FAILED,
            },
        }
    }

    /// A raw token after a v0 SaslHandshake: the answer is the mechanism's bytes with a size
    /// prefix; a failure closes the connection with no answer, as Kafka does.
    pub fn raw_token(&mut self, token: &[u8], creds: &dyn Credentials, now: Instant) -> Outcome {
        match self.step(token, creds, now) {
            Ok((bytes, _)) => {
                let mut frame = Vec::with_capacity(4 + bytes.len());
                frame.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                frame.extend_from_slice(&bytes);
                Outcome::Answer(Response::Frame(Bytes::from(frame)))
            }
            Err((_, message)) => Outcome::Refuse {
                answer: Response::Close(message),
                delay: true,
            },
        }
    }

    /// Runs the mechanism on `input`: the bytes to answer and, when done, the session
    /// lifetime; or the error code and the client's message.
    fn step(
        &mut self,
        input: &[u8],
        creds: &dyn Credentials,
        now: Instant,
    ) -> Result<(Vec<u8>, i64), (i16, String)> {
        let State::Exchanging { auth, reauth, .. } = &mut self.state else {
            return Err((
                code::ILLEGAL_SASL_STATE,
                "no SASL exchange is running".into(),
            ));
        };
        let mechanism = auth.mechanism();
        let renewing = reauth.is_some();
        let (user, response) = match auth.step(input, creds) {
            Ok(Step::Challenge(bytes)) => return Ok((bytes, 0)),
            Ok(Step::Done { user, response }) => (user, response),
            Err(e) => {
                tracing::warn!(error = %e, %mechanism, "SASL authentication failed");
                let error = match e {
                    sasl::SaslError::IllegalState { .. } => code::ILLEGAL_SASL_STATE,
                    _ => code::SASL_AUTHENTICATION_FAILED,
                };
                return Err((error, e.client_message(mechanism, renewing)));
            }
        };
        if let Some(was) = reauth.as_ref().filter(|was| **was != user) {
            tracing::warn!(was = %was, now = %user, "closing connection: re-authentication changed the user");
            return Err((
                code::SASL_AUTHENTICATION_FAILED,
                "Cannot change principals during re-authentication".into(),
            ));
        }
        let lifetime_ms = self.settings().reauth_ms;
        let expires = (lifetime_ms > 0).then(|| now + Duration::from_millis(lifetime_ms as u64));
        tracing::debug!(%user, %mechanism, "SASL authenticated");
        self.state = State::Done {
            user,
            mechanism,
            expires,
        };
        Ok((response, lifetime_ms))
    }
}
