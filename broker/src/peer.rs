//! An outbound Kafka-protocol client to one peer: broker → controller and controller →
//! controller traffic on the CONTROLLER listener.
//!
//! A [`PeerClient`] owns at most one TCP connection to one address and lives on the shard that
//! created it (`Rc`/`RefCell`, not `Send`). Requests are Kafka frames and are pipelined: each
//! gets the next correlation id, is queued for the connection's writer task and waits for the
//! response with that id, which the connection's reader task hands over.
//!
//! ```text
//! request  = size:i32 | header v1/v2 (key, version, correlation_id, client_id[, tags]) | body
//! response = size:i32 | correlation_id:i32 | [header v1] tags | body
//! ```
//!
//! Header versions come from kafka-protocol's tables for Kafka's own messages; a key
//! kafka-protocol does not know (the private Raft key) uses request header v2 and response
//! header v1, see [`header_versions`].
//!
//! Failure handling, as Kafka's NetworkClient does it:
//!
//! * A request that gets no answer within its timeout fails with [`PeerError::Timeout`] and
//!   closes the connection: the peer or the path is stuck, and later requests would queue
//!   behind the lost one. Other requests in flight on it fail with `Disconnected`.
//! * A connection that breaks fails every request in flight with `Disconnected`; nothing is
//!   resent (requests need not be idempotent; retrying is the caller's policy).
//! * The next request reconnects, after a capped exponential backoff when connections keep
//!   failing before answering anything (`reconnect_backoff` doubling up to
//!   `reconnect_backoff_max`); at once after a connection that had answered.
//! * A response frame larger than `response_bytes_max` fails its request with
//!   [`PeerError::ResponseTooLarge`] before anything is allocated for it, and closes the
//!   connection (its bytes would have to be read to find the next frame).
//! * A response that does not decode fails only its own request ([`PeerError::Malformed`]);
//!   the framing is intact, so the connection stays.
//!
//! Dropping the client cancels the reader and writer tasks and closes the socket. No `RefCell`
//! borrow is held across an `.await`; connects are serialised by a shard-local [`Turn`].
//!
//! Responses are decoded by kafka-protocol without a guard (the request guard covers requests
//! only): peers on the controller listener are trusted to send well-formed counts.
// Used by the controller listener and the broker lifecycle, which come next.
#![cfg_attr(not(test), allow(dead_code))]

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use millrace_shard::sync::{oneshot, LocalQueue, Notify, OneshotSender, Turn};
use millrace_shard::time::Instant;
use millrace_shard::tls::{Reader, Writer};
use millrace_shard::Task;
use millrace_wire::frame::{request_header_version, response_header_version, SIZE_PREFIX_BYTES};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// Request header version for API keys kafka-protocol does not know (private keys).
pub const PRIVATE_REQUEST_HEADER_VERSION: i16 = 2;
/// Response header version for API keys kafka-protocol does not know (private keys).
pub const PRIVATE_RESPONSE_HEADER_VERSION: i16 = 1;

/// Settings of one [`PeerClient`]. Defaults follow Kafka's client defaults where one exists.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Sent as the request header's client id.
    pub client_id: String,
    /// Default time a request may take from the call to its response, connecting included
    /// (`request.timeout.ms`, 30 s).
    pub request_timeout: Duration,
    /// Longest wait for a TCP connect (`socket.connection.setup.timeout.ms`, 10 s).
    pub connect_timeout: Duration,
    /// Wait before reconnecting after the first connection that failed before answering
    /// (`reconnect.backoff.ms`, 50 ms); doubles per further failure.
    pub reconnect_backoff: Duration,
    /// Cap of the reconnect wait (`reconnect.backoff.max.ms`, 1 s).
    pub reconnect_backoff_max: Duration,
    /// Largest response frame accepted, correlation id and header included (100 MiB, as
    /// `socket.request.max.bytes`).
    pub response_bytes_max: usize,
    /// Most requests awaiting a response on the connection; more wait for a slot.
    pub in_flight_max: usize,
    /// Which listener of the peer this reaches, so its TLS and SASL apply ([`crate::dial`]).
    pub route: crate::dial::Route,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            client_id: "millrace".to_string(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            response_bytes_max: 100 << 20,
            in_flight_max: 32,
            route: crate::dial::Route::Plain,
        }
    }
}

/// Clients of other brokers by broker id, each made anew (with `config`) when the broker's
/// address changed. Lives on one shard.
pub struct PeerPool {
    config: PeerConfig,
    peers: RefCell<HashMap<i32, (SocketAddr, Rc<PeerClient>)>>,
}

impl PeerPool {
    /// An empty pool whose clients get `config`.
    pub fn new(config: PeerConfig) -> Self {
        PeerPool {
            config,
            peers: RefCell::new(HashMap::new()),
        }
    }

    /// The client of broker `broker` at `addr`.
    pub fn get(&self, broker: i32, addr: SocketAddr) -> Rc<PeerClient> {
        let mut peers = self.peers.borrow_mut();
        if let Some((known, client)) = peers.get(&broker) {
            if *known == addr {
                return client.clone();
            }
        }
        let client = Rc::new(PeerClient::new(addr, self.config.clone()));
        peers.insert(broker, (addr, client.clone()));
        client
    }
}

/// Why a request to a peer failed. Cloneable: one connection failure fails every request in
/// flight on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The TCP connect failed or timed out (the reason says which).
    #[error("connecting to {addr}: {reason}")]
    Connect {
        /// The peer.
        addr: SocketAddr,
        /// The I/O error.
        reason: String,
    },
    /// The connection closed or failed before the response arrived, or is waiting out its
    /// reconnect backoff longer than the request may wait.
    #[error("connection to {addr} lost: {reason}")]
    Disconnected {
        /// The peer.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// No response within the request's timeout; the connection was closed.
    #[error("no response from {addr} to api_key {api_key} within {timeout_ms} ms")]
    Timeout {
        /// The peer.
        addr: SocketAddr,
        /// The request's API key.
        api_key: i16,
        /// The timeout that passed.
        timeout_ms: u64,
    },
    /// The response frame declared more bytes than `response_bytes_max`.
    #[error("response of {size} bytes from {addr} exceeds the limit of {limit}")]
    ResponseTooLarge {
        /// The peer.
        addr: SocketAddr,
        /// The declared frame size.
        size: i64,
        /// `response_bytes_max`.
        limit: usize,
    },
    /// The response (or the response stream) does not parse.
    #[error("malformed response from {addr}: {reason}")]
    Malformed {
        /// The peer.
        addr: SocketAddr,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be encoded at this version; nothing was sent.
    #[error("encoding api_key {api_key} v{api_version}: {reason}")]
    Encode {
        /// The request's API key.
        api_key: i16,
        /// The requested version.
        api_version: i16,
        /// kafka-protocol's message.
        reason: String,
    },
}

/// The (request, response) header versions for `api_key` at `api_version`: kafka-protocol's
/// for Kafka's keys, v1/v0 for the Raft key (`millrace_wire::frame::RAFT_API_KEY`, as the
/// controller listener parses it), [`PRIVATE_REQUEST_HEADER_VERSION`] and
/// [`PRIVATE_RESPONSE_HEADER_VERSION`] for other keys it does not know.
pub fn header_versions(api_key: i16, api_version: i16) -> (i16, i16) {
    if api_key == millrace_wire::frame::RAFT_API_KEY {
        return (1, 0);
    }
    match ApiKey::try_from(api_key) {
        Ok(key) => (
            request_header_version(key, api_version),
            response_header_version(key, api_version),
        ),
        Err(_) => (
            PRIVATE_REQUEST_HEADER_VERSION,
            PRIVATE_RESPONSE_HEADER_VERSION,
        ),
    }
}

/// A request/response client to one peer address. Lives on one shard.
pub struct PeerClient {
    addr: SocketAddr,
    config: PeerConfig,
    client_id: StrBytes,
    next_correlation_id: Cell<i32>,
    /// The current connection, if any (it may have broken since; checked on use).
    link: RefCell<Option<Rc<Conn>>>,
    /// Connections that failed in a row before answering anything.
    failures: Cell<u32>,
    /// No connect before this (reconnect backoff).
    retry_at: Cell<Option<Instant>>,
    /// Serialises connecting, so concurrent requests share one new connection.
    connecting: Turn,
}

impl PeerClient {
    /// A client for `addr`; it connects on the first request.
    pub fn new(addr: SocketAddr, config: PeerConfig) -> Self {
        PeerClient {
            addr,
            client_id: StrBytes::from_string(config.client_id.clone()),
            config,
            next_correlation_id: Cell::new(0),
            link: RefCell::new(None),
            failures: Cell::new(0),
            retry_at: Cell::new(None),
            connecting: Turn::new(),
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` as `api_key` at `version` and decodes the response as `Resp`, within the
    /// configured request timeout. Header versions come from the message types.
    pub async fn send<Req, Resp>(
        &self,
        api_key: i16,
        version: i16,
        req: &Req,
    ) -> Result<Resp, PeerError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.send_within(api_key, version, req, self.config.request_timeout)
            .await
    }

    /// [`PeerClient::send`] with its own timeout (a long-poll Fetch needs more than its
    /// `max_wait_ms`).
    pub async fn send_within<Req, Resp>(
        &self,
        api_key: i16,
        version: i16,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let mut body = BytesMut::new();
        req.encode(&mut body, version)
            .map_err(|e| PeerError::Encode {
                api_key,
                api_version: version,
                reason: e.to_string(),
            })?;
        let headers = (Req::header_version(version), Resp::header_version(version));
        let mut response = self
            .exchange(api_key, version, headers, &body, timeout)
            .await?;
        let decoded = Resp::decode(&mut response, version).map_err(|e| self.malformed(e))?;
        if response.has_remaining() {
            return Err(self.malformed(format!(
                "{} bytes after the api_key {api_key} v{version} response",
                response.remaining()
            )));
        }
        Ok(decoded)
    }

    /// Sends a Kafka request whose type names its key and response type.
    pub async fn request<R: Request>(
        &self,
        version: i16,
        req: &R,
    ) -> Result<R::Response, PeerError> {
        self.send::<R, R::Response>(R::KEY, version, req).await
    }

    /// Sends pre-encoded `body` under `api_key` (possibly private) at `version` and returns
    /// the response body (the bytes after the response header), within the configured
    /// request timeout. Header versions as [`header_versions`].
    pub async fn send_raw(
        &self,
        api_key: i16,
        version: i16,
        body: &[u8],
    ) -> Result<Bytes, PeerError> {
        self.send_raw_within(api_key, version, body, self.config.request_timeout)
            .await
    }

    /// [`PeerClient::send_raw`] with its own timeout.
    pub async fn send_raw_within(
        &self,
        api_key: i16,
        version: i16,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        let headers = header_versions(api_key, version);
        self.exchange(api_key, version, headers, body, timeout)
            .await
    }

    /// Frames and sends one request, then waits for its response body, all within `timeout`.
    async fn exchange(
        &self,
        api_key: i16,
        version: i16,
        (request_header, response_header): (i16, i16),
        body: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, PeerError> {
        let deadline = Instant::now() + timeout;
        let timed_out = PeerError::Timeout {
            addr: self.addr,
            api_key,
            timeout_ms: timeout.as_millis() as u64,
        };
        let shared = self.connection(deadline, &timed_out).await?;
        shared
            .wait_for_slot(self.config.in_flight_max, deadline, &timed_out)
            .await?;
        let correlation_id = self.next_correlation_id();
        let frame = self.frame(api_key, version, correlation_id, request_header, body)?;
        let (tx, rx) = oneshot();
        shared
            .pending
            .borrow_mut()
            .insert(correlation_id, Waiter::Live(tx));
        let pending = PendingGuard {
            shared: &shared,
            correlation_id,
        };
        match millrace_shard::time::timeout(remaining(deadline), shared.outbox.push(frame)).await {
            Some(Ok(())) => {}
            Some(Err(_)) => return Err(shared.failure()),
            None => return Err(timed_out),
        }
        let answer = millrace_shard::time::timeout(remaining(deadline), rx).await;
        drop(pending);
        match answer {
            Some(Some(Ok(response))) => self.strip_header(response, response_header),
            Some(Some(Err(e))) => Err(e),
            Some(None) => Err(shared.failure()),
            None => {
                shared.fail(PeerError::Disconnected {
                    addr: self.addr,
                    reason: format!(
                        "closed after correlation id {correlation_id} (api_key {api_key}) \
                         timed out"
                    ),
                });
                Err(timed_out)
            }
        }
    }

    /// The live connection, connecting (after any backoff) if there is none.
    async fn connection(
        &self,
        deadline: Instant,
        timed_out: &PeerError,
    ) -> Result<Rc<Shared>, PeerError> {
        if let Some(shared) = self.live() {
            return Ok(shared);
        }
        let turn = millrace_shard::time::timeout(remaining(deadline), self.connecting.lock())
            .await
            .ok_or_else(|| timed_out.clone())?;
        // Another request may have connected while this one waited for the turn.
        if let Some(shared) = self.live() {
            return Ok(shared);
        }
        if let Some(at) = self.retry_at.get() {
            if at > deadline {
                return Err(PeerError::Disconnected {
                    addr: self.addr,
                    reason: format!(
                        "reconnecting in {} ms, after {} failed connections",
                        at.saturating_duration_since(Instant::now()).as_millis(),
                        self.failures.get()
                    ),
                });
            }
            millrace_shard::time::sleep(at.saturating_duration_since(Instant::now())).await;
        }
        let connect_timeout = self.config.connect_timeout.min(remaining(deadline));
        if connect_timeout.is_zero() {
            return Err(timed_out.clone());
        }
        let connected = crate::dial::dial(
            self.addr,
            connect_timeout,
            self.config.route,
            &self.config.client_id,
        )
        .await;
        drop(turn);
        match connected.map(|dialed| Conn::start(self.addr, dialed, &self.config)) {
            Ok(conn) => {
                let shared = conn.shared.clone();
                *self.link.borrow_mut() = Some(Rc::new(conn));
                Ok(shared)
            }
            Err(e) => {
                self.note_failure(false);
                Err(PeerError::Connect {
                    addr: self.addr,
                    reason: e.to_string(),
                })
            }
        }
    }

    /// The current connection if it still works; a broken one is retired and its failure
    /// counted for the backoff.
    fn live(&self) -> Option<Rc<Shared>> {
        let answered = {
            let link = self.link.borrow();
            let conn = link.as_ref()?;
            let shared = &conn.shared;
            let expiring = conn.reauth_at.is_some_and(|at| Instant::now() >= at);
            if expiring && shared.broken.borrow().is_none() {
                // The server's SASL session ends soon: new requests go to a new connection;
                // this one finishes what it carries, then closes.
                drop(link);
                self.retire_expiring();
                return None;
            }
            if shared.broken.borrow().is_none() {
                return Some(shared.clone());
            }
            shared.answered.get()
        };
        // Dropping the connection cancels its tasks and closes the socket.
        let retired = self.link.borrow_mut().take();
        drop(retired);
        self.note_failure(answered);
        None
    }

    /// Moves the current connection aside to drain: it closes once nothing is in flight.
    fn retire_expiring(&self) {
        let Some(conn) = self.link.borrow_mut().take() else {
            return;
        };
        tracing::debug!(peer = %self.addr, "SASL session ends: replacing the connection");
        millrace_shard::spawn_detached(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let seen = conn.shared.freed.generation();
                if conn.shared.pending.borrow().is_empty() || conn.shared.broken.borrow().is_some()
                {
                    break;
                }
                let wait = remaining(deadline);
                if wait.is_zero() {
                    break;
                }
                millrace_shard::time::timeout(wait, conn.shared.freed.changed_since(seen)).await;
            }
            conn.shared.outbox.close();
            drop(conn);
        });
    }

    fn note_failure(&self, answered: bool) {
        if answered {
            self.failures.set(0);
            self.retry_at.set(None);
            return;
        }
        let failures = self.failures.get().saturating_add(1);
        self.failures.set(failures);
        let wait = backoff(
            self.config.reconnect_backoff,
            self.config.reconnect_backoff_max,
            failures,
        );
        self.retry_at.set(Some(Instant::now() + wait));
    }

    fn next_correlation_id(&self) -> i32 {
        let id = self.next_correlation_id.get();
        // Non-negative, wrapping: some peers log negative ids as errors.
        self.next_correlation_id.set(id.wrapping_add(1) & i32::MAX);
        id
    }

    fn frame(
        &self,
        api_key: i16,
        version: i16,
        correlation_id: i32,
        header_version: i16,
        body: &[u8],
    ) -> Result<Bytes, PeerError> {
        let header = RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::with_capacity(SIZE_PREFIX_BYTES + 32 + body.len());
        frame.extend_from_slice(&[0; SIZE_PREFIX_BYTES]);
        header
            .encode(&mut frame, header_version)
            .map_err(|e| PeerError::Encode {
                api_key,
                api_version: version,
                reason: format!("request header v{header_version}: {e}"),
            })?;
        frame.extend_from_slice(body);
        let size =
            i32::try_from(frame.len() - SIZE_PREFIX_BYTES).map_err(|_| PeerError::Encode {
                api_key,
                api_version: version,
                reason: format!("{} bytes do not fit a frame", frame.len()),
            })?;
        frame[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
        Ok(frame.freeze())
    }

    /// Skips the rest of the response header (the correlation id is already gone): the
    /// tagged-field section of header v1.
    fn strip_header(&self, mut response: Bytes, header_version: i16) -> Result<Bytes, PeerError> {
        if header_version >= 1 {
            let n = millrace_wire::frame::skip_tagged_fields(&response, 4)
                .map_err(|e| self.malformed(format!("response header: {e}")))?;
            response.advance(n);
        }
        Ok(response)
    }

    fn malformed(&self, reason: impl std::fmt::Display) -> PeerError {
        PeerError::Malformed {
            addr: self.addr,
            reason: reason.to_string(),
        }
    }
}

/// The reconnect wait after `failures` (at least 1) failed connections in a row: `base`
/// doubling per failure, at most `max`.
fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << doublings).min(max)
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// One connection: its state shared with its reader and writer tasks, and the tasks, which
/// are cancelled (closing both halves of the socket) when this is dropped.
struct Conn {
    shared: Rc<Shared>,
    /// When the server's SASL session ends (less a margin); `None` if it does not.
    reauth_at: Option<Instant>,
    _reader: Task<()>,
    _writer: Task<()>,
}

impl Conn {
    fn start(addr: SocketAddr, dialed: crate::dial::Dialed, config: &PeerConfig) -> Conn {
        let crate::dial::Dialed {
            reader,
            writer,
            reauth_at,
        } = dialed;
        let shared = Rc::new(Shared {
            addr,
            pending: RefCell::new(HashMap::new()),
            outbox: LocalQueue::new(config.in_flight_max),
            broken: RefCell::new(None),
            answered: Cell::new(false),
            freed: Notify::new(),
        });
        let limit = config.response_bytes_max;
        Conn {
            _reader: millrace_shard::spawn(read_loop(shared.clone(), reader, limit)),
            _writer: millrace_shard::spawn(write_loop(shared.clone(), writer)),
            shared,
            reauth_at,
        }
    }
}

/// A request waiting for its response, or one whose caller stopped waiting (its response is
/// read and dropped; until then it holds its in-flight slot).
enum Waiter {
    Live(OneshotSender<Result<Bytes, PeerError>>),
    Abandoned,
}

/// What the client, the reader task and the writer task of one connection share.
struct Shared {
    addr: SocketAddr,
    pending: RefCell<HashMap<i32, Waiter>>,
    /// Request frames for the writer, in send order.
    outbox: LocalQueue<Bytes>,
    /// Set once, when the connection fails; what every later request on it is told.
    broken: RefCell<Option<PeerError>>,
    /// At least one response arrived on this connection.
    answered: Cell<bool>,
    /// A pending entry went away (an in-flight slot is free) or the connection broke.
    freed: Notify,
}

impl Shared {
    /// Waits until fewer than `in_flight_max` requests await responses.
    async fn wait_for_slot(
        &self,
        in_flight_max: usize,
        deadline: Instant,
        timed_out: &PeerError,
    ) -> Result<(), PeerError> {
        loop {
            if self.broken.borrow().is_some() {
                return Err(self.failure());
            }
            let seen = self.freed.generation();
            if self.pending.borrow().len() < in_flight_max {
                return Ok(());
            }
            millrace_shard::time::timeout(remaining(deadline), self.freed.changed_since(seen))
                .await
                .ok_or_else(|| timed_out.clone())?;
        }
    }

    /// The error that broke the connection (or a generic one if it has not broken).
    fn failure(&self) -> PeerError {
        self.broken
            .borrow()
            .clone()
            .unwrap_or_else(|| PeerError::Disconnected {
                addr: self.addr,
                reason: "connection closed".to_string(),
            })
    }

    /// Breaks the connection: every waiting request gets `error`, the writer stops (and shuts
    /// the socket down, which ends the reader). Only the first failure counts.
    fn fail(&self, error: PeerError) {
        if self.broken.borrow().is_some() {
            return;
        }
        *self.broken.borrow_mut() = Some(error.clone());
        let waiting = std::mem::take(&mut *self.pending.borrow_mut());
        for waiter in waiting.into_values() {
            if let Waiter::Live(tx) = waiter {
                tx.send(Err(error.clone()));
            }
        }
        self.outbox.close();
        self.freed.notify_all();
    }

    /// Hands a response to the request with `correlation_id`. An id that was never sent (or
    /// was already answered) means the stream is out of step: an error that breaks it.
    fn deliver(
        &self,
        correlation_id: i32,
        result: Result<Bytes, PeerError>,
    ) -> Result<(), PeerError> {
        let waiter = self.pending.borrow_mut().remove(&correlation_id);
        self.freed.notify_all();
        match waiter {
            Some(Waiter::Live(tx)) => {
                self.answered.set(true);
                tx.send(result);
                Ok(())
            }
            Some(Waiter::Abandoned) => {
                self.answered.set(true);
                Ok(())
            }
            None => Err(PeerError::Malformed {
                addr: self.addr,
                reason: format!("response with unknown correlation id {correlation_id}"),
            }),
        }
    }
}

/// Marks the request abandoned if its caller stops waiting before the response arrives.
struct PendingGuard<'a> {
    shared: &'a Shared,
    correlation_id: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut pending = self.shared.pending.borrow_mut();
        if let Some(waiter) = pending.get_mut(&self.correlation_id) {
            *waiter = Waiter::Abandoned;
        }
    }
}

/// Reads response frames and hands them to their requests until the connection fails.
async fn read_loop(shared: Rc<Shared>, mut reader: Reader, limit: usize) {
    let error = loop {
        let (correlation_id, result) = match read_response(&mut reader, shared.addr, limit).await {
            Ok(response) => response,
            Err(e) => break e,
        };
        let too_large = result.is_err();
        if let Err(e) = shared.deliver(correlation_id, result) {
            break e;
        }
        if too_large {
            break PeerError::Disconnected {
                addr: shared.addr,
                reason: "closed after a response over the size limit".to_string(),
            };
        }
    };
    shared.fail(error);
}

/// One response frame: its correlation id and the bytes after it, or `ResponseTooLarge` for
/// that correlation id (the frame is not read). `Err` when the stream itself fails.
async fn read_response(
    reader: &mut Reader,
    addr: SocketAddr,
    limit: usize,
) -> Result<(i32, Result<Bytes, PeerError>), PeerError> {
    let lost = |reason: String| PeerError::Disconnected { addr, reason };
    let mut head = [0u8; 8];
    reader
        .read_exact(&mut head[..4])
        .await
        .map_err(|e| lost(format!("reading a response: {e}")))?;
    let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if size < 4 {
        return Err(PeerError::Malformed {
            addr,
            reason: format!("response frame size {size} leaves no room for a correlation id"),
        });
    }
    reader
        .read_exact(&mut head[4..])
        .await
        .map_err(|e| lost(format!("reading a response header: {e}")))?;
    let correlation_id = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if size as usize > limit {
        let error = PeerError::ResponseTooLarge {
            addr,
            size: i64::from(size),
            limit,
        };
        return Ok((correlation_id, Err(error)));
    }
    let rest = reader
        .read_frame(size as usize - 4, RESPONSE_RESERVED_BYTES)
        .await
        .map_err(|e| lost(format!("reading a response body: {e}")))?;
    Ok((correlation_id, Ok(rest)))
}

/// A response up to this size is read into a buffer reserved whole at once, never reallocated
/// (a follower's fetch answers are at most `replica.fetch.response.max.bytes`, 10 MiB by
/// default). Only address space is reserved ([`millrace_shard::tls::Reader::read_frame`]).
const RESPONSE_RESERVED_BYTES: usize = 10 * 1024 * 1024;

/// Writes queued request frames in order until the queue closes or a write fails, then shuts
/// the socket down so the reader's pending read returns.
async fn write_loop(shared: Rc<Shared>, mut writer: Writer) {
    while let Some(frame) = shared.outbox.pop().await {
        if shared.broken.borrow().is_some() {
            break; // requests queued behind the failure have already been failed
        }
        if let Err(e) = writer.write_all(&frame).await {
            shared.fail(PeerError::Disconnected {
                addr: shared.addr,
                reason: format!("writing a request: {e}"),
            });
            break;
        }
    }
    writer.close().await;
}

#[cfg(test)]
mod tests;
