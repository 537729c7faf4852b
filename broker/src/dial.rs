//! The node's own connections to its peers: brokers to the other brokers' inter-broker
//! listener (replica fetches, transaction markers, share state, metrics), every node to the
//! controllers' controller listener (registration, heartbeats, forwarding, Raft).
//!
//! Each such connection is dialed with the security of the listener it reaches, read from
//! Kafka's keys for that listener ([`crate::config::security::SecurityKeys::resolve_outbound`]):
//! TCP, then the TLS handshake (rustls, the listener's truststore checks the peer, its keystore
//! is the client certificate), then SaslHandshake v1 and SaslAuthenticate v2 with the mechanism
//! of `sasl.mechanism.inter.broker.protocol` / `sasl.mechanism.controller.protocol` and the
//! `username`/`password` of that mechanism's JAAS line. A server that limits the session
//! (`connections.max.reauth.ms`) is answered by [`Dialed::reauth_at`]: the caller opens a new
//! connection before then, as a Kafka client re-authenticates.
//!
//! What to dial with is built once, at start-up ([`install`]); TLS client configurations are
//! rebuilt when their files change (checked at most every [`tls::RELOAD_CHECK`],
//! on a dial). Peers are checked by the host name their address was resolved from
//! ([`name_address`]), else by the address itself (an IP SAN).

use crate::config::security::{OutboundKeys, OutboundTls};
use crate::config::Config;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use millrace_security::client::{LoginError, LoginExchange, SaslLogin};
use millrace_security::sasl::{login_credentials, Mechanism};
use millrace_security::tls::{self, ClientTlsSettings, KeySource, TrustSource};
use millrace_shard::time::Instant;
use millrace_shard::tls::{Reader, Writer};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Which listener of the peer a connection reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// No security whatever the configuration (tests, and clients of other clusters).
    Plain,
    /// The inter-broker listener of another broker.
    InterBroker,
    /// The controller listener of a controller.
    Controller,
}

/// The largest SASL answer read back.
const SASL_ANSWER_BYTES_MAX: usize = 1 << 20;

/// Share of a SASL session's lifetime after which the connection is replaced (Kafka's
/// clients re-authenticate between 85% and 95% of it).
const REAUTH_SHARE: f64 = 0.85;

/// How one route is dialed.
struct Outbound {
    listener: String,
    tls: Option<TlsClient>,
    sasl: Option<SaslLogin>,
}

/// A TLS client configuration, rebuilt when its files change.
struct TlsClient {
    settings: ClientTlsSettings,
    /// (fingerprint of the files, configuration, last check).
    now: Mutex<(u64, Arc<rustls::ClientConfig>, std::time::Instant)>,
}

/// The routes' set-up, once per process.
#[derive(Default)]
struct Outbounds {
    inter_broker: Option<Outbound>,
    controller: Option<Outbound>,
}

static OUTBOUNDS: OnceLock<Outbounds> = OnceLock::new();

/// Host names addresses were resolved from, so TLS checks the name the peer advertised.
static NAMES: OnceLock<Mutex<HashMap<SocketAddr, String>>> = OnceLock::new();

/// Builds what the node dials its peers with from `config`: the TLS client configurations
/// (a bad file stops start-up here, naming the listener) and the SASL logins. Later calls
/// keep the first set-up (one per process).
pub fn install(config: &Config) -> Result<(), String> {
    let outbounds = Outbounds {
        inter_broker: config
            .inter_broker_outbound
            .as_ref()
            .map(build)
            .transpose()?,
        controller: config.controller_outbound.as_ref().map(build).transpose()?,
    };
    let _ = OUTBOUNDS.set(outbounds);
    Ok(())
}

fn build(keys: &OutboundKeys) -> Result<Outbound, String> {
    let named = |e: &dyn std::fmt::Display| format!("dialing listener {}: {e}", keys.listener);
    let tls = match &keys.tls {
        None => None,
        Some(t) => {
            let settings = client_settings(t);
            let config = tls::client_config(&settings).map_err(|e| named(&e))?;
            let print = tls::fingerprint(&tls::client_watched_files(&settings));
            Some(TlsClient {
                settings,
                now: Mutex::new((print, config, std::time::Instant::now())),
            })
        }
    };
    let sasl = match &keys.sasl {
        None => None,
        Some((name, jaas)) => {
            let mechanism = Mechanism::from_name(name)
                .ok_or_else(|| named(&format!("mechanism {name} is not served")))?;
            let credentials = login_credentials(jaas).map_err(|e| named(&e))?;
            Some(SaslLogin {
                mechanism,
                credentials,
            })
        }
    };
    Ok(Outbound {
        listener: keys.listener.clone(),
        tls,
        sasl,
    })
}

fn client_settings(t: &OutboundTls) -> ClientTlsSettings {
    let truststore = match (&t.truststore_location, &t.truststore_certificates) {
        (Some(path), _) => Some(TrustSource::File { path: path.into() }),
        (None, Some(pem)) => Some(TrustSource::Inline { pem: pem.clone() }),
        (None, None) => None,
    };
    let keystore = match (&t.keystore_location, &t.keystore_key) {
        (Some(path), _) => Some(KeySource::File { path: path.into() }),
        (None, Some(key)) => Some(KeySource::Inline {
            key_pem: key.clone(),
            chain_pem: t.keystore_certificate_chain.clone().unwrap_or_default(),
        }),
        (None, None) => None,
    };
    ClientTlsSettings {
        truststore,
        keystore: keystore.map(|k| (k, t.key_password.clone())),
        enabled_protocols: t.enabled_protocols.clone(),
        server_name_check: t.server_name_check,
    }
}

impl TlsClient {
    /// The configuration for a new connection, rebuilt first if its files changed (a rebuild
    /// that fails keeps the previous one and says why).
    fn config(&self, listener: &str) -> Arc<rustls::ClientConfig> {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if now.2.elapsed() >= tls::RELOAD_CHECK {
            now.2 = std::time::Instant::now();
            let print = tls::fingerprint(&tls::client_watched_files(&self.settings));
            if print != now.0 {
                match tls::client_config(&self.settings) {
                    Ok(config) => {
                        tracing::info!(%listener, "reloaded the TLS client certificates");
                        now.0 = print;
                        now.1 = config;
                    }
                    Err(e) => {
                        tracing::warn!(%listener, error = %e,
                            "keeping the previous TLS client configuration: the new files do not load");
                        now.0 = print;
                    }
                }
            }
        }
        now.1.clone()
    }
}

/// Remembers that `addr` was resolved from `host`: a TLS connection to it checks the peer's
/// certificate against that name.
pub fn name_address(addr: SocketAddr, host: &str) {
    let names = NAMES.get_or_init(Default::default);
    let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
    if names.get(&addr).is_none_or(|h| h != host) {
        names.insert(addr, host.to_string());
    }
}

fn server_name(addr: SocketAddr) -> rustls::pki_types::ServerName<'static> {
    let host = NAMES
        .get()
        .and_then(|n| n.lock().ok().and_then(|n| n.get(&addr).cloned()));
    host.and_then(|h| rustls::pki_types::ServerName::try_from(h).ok())
        .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(addr.ip().into()))
}

/// A connection to a peer, ready for requests.
pub struct Dialed {
    /// The receiving half.
    pub reader: Reader,
    /// The sending half.
    pub writer: Writer,
    /// When the server's SASL session ends, less a margin: open a new connection before.
    pub reauth_at: Option<Instant>,
}

fn outbound(route: Route) -> Option<&'static Outbound> {
    let o = OUTBOUNDS.get()?;
    match route {
        Route::Plain => None,
        Route::InterBroker => o.inter_broker.as_ref(),
        Route::Controller => o.controller.as_ref(),
    }
}

/// Connects to `addr` over `route`: TCP within `timeout`, then TLS and SASL as the route's
/// listener asks, each within `timeout` too. `client_id` goes in the SASL requests' headers.
pub async fn dial(
    addr: SocketAddr,
    timeout: Duration,
    route: Route,
    client_id: &str,
) -> io::Result<Dialed> {
    let mut stream = millrace_shard::net::connect(addr, timeout).await?;
    let Some(out) = outbound(route) else {
        let (reader, writer) = millrace_shard::tls::split(stream, None)?;
        return Ok(Dialed {
            reader,
            writer,
            reauth_at: None,
        });
    };
    let session = match &out.tls {
        None => None,
        Some(client) => {
            let config = client.config(&out.listener);
            let session =
                millrace_shard::tls::connect_tls(&mut stream, config, server_name(addr), timeout)
                    .await
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("TLS with listener {} at {addr}: {e}", out.listener),
                        )
                    })?;
            Some(session.into())
        }
    };
    let (mut reader, mut writer) = millrace_shard::tls::split(stream, session)?;
    let mut reauth_at = None;
    if let Some(login) = &out.sasl {
        let exchange = authenticate(&mut reader, &mut writer, login, client_id);
        let lifetime_ms = match millrace_shard::time::timeout(timeout, exchange).await {
            Some(Ok(ms)) => ms,
            Some(Err(e)) => {
                tracing::warn!(peer = %addr, listener = %out.listener, mechanism = login.mechanism.name(),
                    user = %login.credentials.username, error = %e, "authentication with a peer failed");
                return Err(e);
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no SASL answer from {addr} within {} ms",
                        timeout.as_millis()
                    ),
                ))
            }
        };
        if lifetime_ms > 0 {
            let margin = Duration::from_millis((lifetime_ms as f64 * REAUTH_SHARE) as u64);
            reauth_at = Some(Instant::now() + margin);
        }
    }
    Ok(Dialed {
        reader,
        writer,
        reauth_at,
    })
}

/// SaslHandshake v1 and SaslAuthenticate v2 rounds until the login is done (the steps are
/// the security crate's [`LoginExchange`], as the tools' and the bench's); the server's
/// session lifetime in ms (0: unlimited).
async fn authenticate(
    reader: &mut Reader,
    writer: &mut Writer,
    login: &SaslLogin,
    client_id: &str,
) -> io::Result<i64> {
    let refused = |e: LoginError| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string());
    let mut exchange = LoginExchange::new(login);
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_static_str(exchange.mechanism());
    let answer: SaslHandshakeResponse =
        call(reader, writer, 17, 1, 0, client_id, &handshake).await?;
    let enabled: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
    let mut token = exchange
        .handshake_answered(answer.error_code, &enabled)
        .map_err(refused)?;
    let mut correlation_id = 1;
    loop {
        let mut request = SaslAuthenticateRequest::default();
        request.auth_bytes = Bytes::from(token);
        let answer: SaslAuthenticateResponse =
            call(reader, writer, 36, 2, correlation_id, client_id, &request).await?;
        correlation_id += 1;
        let message = answer.error_message.as_ref().map(|m| m.as_str());
        match exchange
            .authenticate_answered(answer.error_code, message, &answer.auth_bytes)
            .map_err(refused)?
        {
            Some(next) => token = next,
            None => return Ok(answer.session_lifetime_ms.max(0)),
        }
    }
}

/// One request and its answer, on a connection nothing else uses yet.
async fn call<Req, Resp>(
    reader: &mut Reader,
    writer: &mut Writer,
    key: i16,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    request: &Req,
) -> io::Result<Resp>
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    let header = RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut frame = BytesMut::from(&[0u8; 4][..]);
    header
        .encode(&mut frame, Req::header_version(version))
        .and_then(|()| request.encode(&mut frame, version))
        .map_err(io::Error::other)?;
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    writer.write_all(&frame).await?;
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix).await?;
    let size = i32::from_be_bytes(prefix);
    let size = usize::try_from(size)
        .ok()
        .filter(|s| (4..=SASL_ANSWER_BYTES_MAX).contains(s))
        .ok_or_else(|| io::Error::other(format!("a SASL answer of {size} bytes")))?;
    let mut body = vec![0u8; size];
    reader.read_exact(&mut body).await?;
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, Resp::header_version(version))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if header.correlation_id != correlation_id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "answer to correlation id {} where {correlation_id} was asked",
                header.correlation_id
            ),
        ));
    }
    let answer = Resp::decode(&mut body, version)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if body.has_remaining() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes after a SASL answer", body.remaining()),
        ));
    }
    Ok(answer)
}
