//! A blocking Kafka-protocol client: one connection, one request in flight.
//!
//! ```text
//! request  = size:i32 | header (v1, or v2 for flexible versions) | body
//! response = size:i32 | correlation_id:i32 | [header v1] tagged fields | body
//! ```
//!
//! On connect (over TCP or TLS, the security crate's `client::Stream`) the client asks for the broker's API versions
//! (ApiVersions v3, falling back to the version the broker names when it answers
//! UNSUPPORTED_VERSION in the v0 format), then, with a SASL login from `--command-config`,
//! authenticates: SaslHandshake v1 and SaslAuthenticate rounds driven by the security crate's
//! `LoginExchange`; a refusal carries the broker's error message. Every later request goes out at
//! the highest version both the broker and the calling command handle; a command that needs an
//! API the broker lacks gets [`ToolError::Unsupported`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use crate::command_config::{SaslLogin, Security};
use crate::error::ToolError;
use millrace_security::client::{LoginError, LoginExchange, Stream};
use millrace_wire::codes::{NONE, UNSUPPORTED_VERSION};

/// Largest response frame the client accepts; a larger size prefix is a broken peer.
const RESPONSE_BYTES_MAX: usize = 256 << 20;
const CLIENT_ID: &str = "millrace-tools";
/// ApiVersions versions this client speaks.
const API_VERSIONS_VERSIONS: RangeInclusive<i16> = 0..=3;
/// SaslHandshake v1: v0 would mean raw SASL tokens instead of SaslAuthenticate.
const SASL_HANDSHAKE_VERSIONS: RangeInclusive<i16> = 1..=1;
const SASL_AUTHENTICATE_VERSIONS: RangeInclusive<i16> = 0..=2;

/// One connection to a broker, with the API versions it advertised.
pub struct Client {
    stream: Stream,
    address: String,
    /// What this connection was opened with; connections to other brokers reuse it.
    security: Arc<Security>,
    correlation_id: i32,
    /// API key -> (min, max) as the broker advertised them.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Client {
    /// Connects to `address` (HOST:PORT) with `security` (TLS, then SASL after ApiVersions)
    /// and fetches the broker's API versions.
    pub fn connect(address: &str, security: &Arc<Security>) -> Result<Client, ToolError> {
        let stream =
            Stream::open(address, security.tls.as_ref()).map_err(|reason| ToolError::Connect {
                address: address.to_string(),
                reason,
            })?;
        let mut client = Client {
            stream,
            address: address.to_string(),
            security: security.clone(),
            correlation_id: 0,
            versions: BTreeMap::new(),
        };
        client.load_api_versions()?;
        if let Some(login) = &security.sasl {
            client.authenticate(login)?;
        }
        Ok(client)
    }

    /// A connection to another broker of the cluster, secured as this one.
    pub fn connect_to(&self, address: &str) -> Result<Client, ToolError> {
        Client::connect(address, &self.security)
    }

    /// What this connection was opened with.
    pub fn security(&self) -> &Arc<Security> {
        &self.security
    }

    /// The broker's advertised API versions: key -> (min, max).
    pub fn api_versions(&self) -> &BTreeMap<i16, (i16, i16)> {
        &self.versions
    }

    /// The highest version of `key` both the broker and `ours` support.
    pub fn version(&self, key: ApiKey, ours: RangeInclusive<i16>) -> Result<i16, ToolError> {
        let unsupported = || ToolError::Unsupported {
            api: format!("{key:?}"),
            detail: match self.versions.get(&(key as i16)) {
                None => "not in its ApiVersions".to_string(),
                Some((lo, hi)) => format!(
                    "it supports v{lo}-v{hi}, this tool v{}-v{}",
                    ours.start(),
                    ours.end()
                ),
            },
        };
        let (lo, hi) = *self.versions.get(&(key as i16)).ok_or_else(unsupported)?;
        let version = hi.min(*ours.end());
        if version < lo.max(*ours.start()) {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// True when the broker advertises `key` at all.
    pub fn supports(&self, key: ApiKey) -> bool {
        self.versions.contains_key(&(key as i16))
    }

    /// Sends `request` at the best version in `ours` and decodes the response.
    pub fn call<R: Request>(
        &mut self,
        request: &R,
        ours: RangeInclusive<i16>,
    ) -> Result<R::Response, ToolError> {
        let key = api_key(R::KEY);
        let version = self.version(key, ours)?;
        self.call_at(request, version)
    }

    /// Sends `request` at `version` and decodes the response.
    pub fn call_at<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ToolError> {
        let key = api_key(R::KEY);
        self.send(request, version)?;
        let body = self.receive(key, version)?;
        decode_body::<R::Response>(key, body, version)
    }

    /// Sends `request` at `version` without waiting for an answer (Produce with acks=0).
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<(), ToolError> {
        let key = api_key(R::KEY);
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0; 4]);
        let encode_err = |reason: String| ToolError::Encode {
            api: format!("{key:?}"),
            reason,
        };
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| encode_err(e.to_string()))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| encode_err(e.to_string()))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&buf)
            .map_err(|e| self.io_error("sending a request", e))
    }

    /// Reads one response frame and returns its body (after the response header).
    fn receive(&mut self, key: ApiKey, version: i16) -> Result<Bytes, ToolError> {
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .map_err(|e| self.io_error("reading a response", e))?;
        let size = i32::from_be_bytes(prefix);
        if size < 4 || size as usize > RESPONSE_BYTES_MAX {
            // A TLS record (alert 0x15 or handshake 0x16, version 3.x) read as a size prefix.
            let tls = matches!(prefix, [0x15 | 0x16, 3, _, _]) && self.security.tls.is_none();
            let hint = match tls {
                true => " (the broker speaks TLS: set security.protocol in --command-config)",
                false => "",
            };
            return Err(ToolError::Protocol(format!(
                "{key:?} response frame of {size} bytes from {}{hint}",
                self.address
            )));
        }
        let mut frame = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut frame)
            .map_err(|e| self.io_error("reading a response", e))?;
        let mut frame = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .map_err(|e| ToolError::Protocol(format!("{key:?} response header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(ToolError::Protocol(format!(
                "{key:?} response has correlation id {}, expected {}",
                header.correlation_id, self.correlation_id
            )));
        }
        Ok(frame)
    }

    fn load_api_versions(&mut self) -> Result<(), ToolError> {
        let mut request = ApiVersionsRequest::default();
        request.client_software_name = StrBytes::from_static_str(CLIENT_ID);
        request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let mut version = *API_VERSIONS_VERSIONS.end();
        self.send(&request, version)?;
        let body = self.receive(ApiKey::ApiVersions, version)?;
        // error_code is the first field in every version.
        let error_code = match body.get(..2) {
            Some(b) => i16::from_be_bytes([b[0], b[1]]),
            None => return Err(ToolError::Protocol("empty ApiVersions response".into())),
        };
        let response = if error_code == UNSUPPORTED_VERSION {
            // The broker answered in the v0 format with the versions it does speak.
            let response = decode_body::<ApiVersionsResponse>(ApiKey::ApiVersions, body, 0)?;
            let theirs = response
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                .map(|k| k.max_version)
                .unwrap_or(0);
            version = theirs.min(*API_VERSIONS_VERSIONS.end());
            self.send(&request, version)?;
            let body = self.receive(ApiKey::ApiVersions, version)?;
            decode_body::<ApiVersionsResponse>(ApiKey::ApiVersions, body, version)?
        } else {
            decode_body::<ApiVersionsResponse>(ApiKey::ApiVersions, body, version)?
        };
        if response.error_code != NONE {
            return Err(ToolError::Kafka {
                context: "ApiVersions".into(),
                code: response.error_code,
                message: None,
            });
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// SaslHandshake v1, then SaslAuthenticate rounds until the login is done. Before
    /// authentication a Kafka broker answers only ApiVersions and these two, so this runs
    /// right after ApiVersions.
    fn authenticate(&mut self, login: &SaslLogin) -> Result<(), ToolError> {
        let mut exchange = LoginExchange::new(login);
        let mut handshake = SaslHandshakeRequest::default();
        handshake.mechanism = StrBytes::from_static_str(exchange.mechanism());
        let response = self.call(&handshake, SASL_HANDSHAKE_VERSIONS)?;
        let enabled: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        let first = exchange.handshake_answered(response.error_code, &enabled);
        let mut token = first.map_err(|e| self.login_error(e))?;
        let version = self.version(ApiKey::SaslAuthenticate, SASL_AUTHENTICATE_VERSIONS)?;
        loop {
            let mut request = SaslAuthenticateRequest::default();
            request.auth_bytes = Bytes::from(token);
            let response = self.call_at(&request, version)?;
            let message = response.error_message.as_ref().map(|m| m.as_str());
            let next =
                exchange.authenticate_answered(response.error_code, message, &response.auth_bytes);
            match next.map_err(|e| self.login_error(e))? {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
    }

    /// A failed login in the tools' terms: the broker's error code and message, or the SASL
    /// client's refusal.
    fn login_error(&self, e: LoginError) -> ToolError {
        let address = &self.address;
        match e {
            LoginError::Handshake {
                mechanism,
                code,
                enabled,
            } => ToolError::Kafka {
                context: format!("SASL handshake for {mechanism} with {address}"),
                code,
                message: Some(format!("the listener enables [{}]", enabled.join(", "))),
            },
            LoginError::Refused {
                mechanism,
                user,
                code,
                message,
            } => ToolError::Kafka {
                context: format!("SASL {mechanism} authentication as {user} with {address}"),
                code,
                message,
            },
            LoginError::Client { mechanism, source } => ToolError::Auth {
                address: address.clone(),
                mechanism: mechanism.to_string(),
                reason: source.to_string(),
            },
        }
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> ToolError {
        let reason = match e.kind() {
            // A SASL listener closes the connection at the first request that is not part of
            // the handshake: the usual sign of a missing --command-config.
            std::io::ErrorKind::UnexpectedEof if self.security.sasl.is_none() => {
                "the broker closed the connection (a SASL listener needs --command-config)"
                    .to_string()
            }
            std::io::ErrorKind::UnexpectedEof => "the broker closed the connection".to_string(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "timed out".to_string()
            }
            _ => e.to_string(),
        };
        ToolError::Io(format!("{what} from {}: {reason}", self.address))
    }
}

/// Kafka's name for an API key, e.g. `Metadata`.
pub fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("Unknown({key})"),
    }
}

fn api_key(key: i16) -> ApiKey {
    ApiKey::try_from(key).expect("kafka-protocol request types carry known keys")
}

fn decode_body<M: Decodable>(key: ApiKey, mut body: Bytes, version: i16) -> Result<M, ToolError> {
    M::decode(&mut body, version)
        .map_err(|e| ToolError::Protocol(format!("cannot decode {key:?} v{version} response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use std::net::{TcpListener, TcpStream};

    /// Reads one request frame; returns (api_key, api_version, correlation_id).
    fn read_request(stream: &mut TcpStream) -> (i16, i16, i32) {
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix).unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
        stream.read_exact(&mut frame).unwrap();
        millrace_wire::frame::peek_fixed(&frame).unwrap()
    }

    fn answer(
        stream: &mut TcpStream,
        correlation_id: i32,
        keys: &[(i16, i16, i16)],
        version: i16,
        error: i16,
    ) {
        let mut response = ApiVersionsResponse::default();
        response.error_code = error;
        response.api_keys = keys
            .iter()
            .map(|&(key, lo, hi)| {
                let mut v = ApiVersion::default();
                v.api_key = key;
                v.min_version = lo;
                v.max_version = hi;
                v
            })
            .collect();
        let frame =
            millrace_wire::frame::encode_response(correlation_id, 0, &response, version).unwrap();
        stream.write_all(&frame).unwrap();
    }

    #[test]
    fn api_versions_retries_at_the_version_the_broker_names() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let (key, version, id) = read_request(&mut stream);
            assert_eq!((key, version), (18, 3));
            answer(&mut stream, id, &[(18, 0, 2)], 0, UNSUPPORTED_VERSION);
            let (key, version, id) = read_request(&mut stream);
            assert_eq!((key, version), (18, 2));
            answer(&mut stream, id, &[(18, 0, 2), (3, 1, 9)], 2, 0);
            stream
        });
        let client = Client::connect(&address, &Arc::default()).unwrap();
        let _stream = server.join().unwrap();
        assert_eq!(client.version(ApiKey::Metadata, 1..=12).unwrap(), 9);
        let err = client.version(ApiKey::Produce, 3..=11).unwrap_err();
        assert!(
            err.to_string()
                .contains("Produce is unsupported by this broker"),
            "{err}"
        );
        let err = client.version(ApiKey::Metadata, 10..=12).unwrap_err();
        assert!(err.to_string().contains("v1-v9"), "{err}");
    }

    #[test]
    fn a_response_to_another_request_is_a_protocol_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let (_, _, id) = read_request(&mut stream);
            answer(&mut stream, id + 1, &[(18, 0, 3)], 3, 0);
            stream
        });
        let err = Client::connect(&address, &Arc::default()).err().unwrap();
        let _stream = server.join().unwrap();
        assert!(err.to_string().contains("correlation id"), "{err}");
    }
}
