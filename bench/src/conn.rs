//! The hot-path connection: pipelined requests on one TCP socket of the current executor, bare
//! or under TLS (the shard crate's [`millrace_shard::tls`] halves, sharing one rustls session).
//!
//! ```text
//!   sender task ──frame──► socket (write half)        reader task ◄── socket (read half)
//!        │                                                 ▲
//!        └── Pending{correlation_id, reply} ──► in_flight ─┘   (bounded: max.in.flight)
//! ```
//!
//! One task sends (it owns the write half, so frames go out in correlation-id order); a reader
//! task takes the oldest pending entry, reads the next response, checks its correlation id and
//! hands the body to the entry's reply callback. Pushing a pending entry waits while
//! `max_in_flight` requests are unanswered: that is the pipelining bound. Requests that get no
//! response (Produce with acks=0) are written without an entry.
//!
//! With `--command-config` the connection is secured before the tasks start: the TLS handshake
//! for the dialed host's name, then the SASL login (SaslHandshake v1, SaslAuthenticate v2 rounds
//! of the security crate's `LoginExchange`), one request at a time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use millrace_security::client::{server_name, ClientSecurity, LoginExchange};
use millrace_shard::net::TcpStream;
use millrace_shard::sync::Notify;
use millrace_shard::tls::{Reader, Writer};

use crate::setup::{api_key, encode_request, login_error, RESPONSE_BYTES_MAX};
use crate::BenchError;

/// How long the TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What to do with a response body (after its header), or with the connection's failure.
pub type Reply = Box<dyn FnOnce(Result<Bytes, BenchError>)>;

struct Pending {
    correlation_id: i32,
    header_version: i16,
    reply: Reply,
}

/// State shared by the sender and the reader task (same executor; borrows never span an
/// await).
struct Shared {
    /// Unanswered requests, oldest first; the reader removes an entry only after its response
    /// was read, so the length is the true number in flight.
    pending: RefCell<VecDeque<Pending>>,
    changed: Notify,
    failure: RefCell<Option<BenchError>>,
    closed: std::cell::Cell<bool>,
    /// Bytes of receive buffer zeroed before a read (growth only; reused bytes are not).
    zeroed: std::cell::Cell<u64>,
}

/// A pipelined connection. Lives on the executor that opened it; one task sends on it.
pub struct Conn {
    writer: Writer,
    shared: Rc<Shared>,
    max_in_flight: usize,
    correlation_id: i32,
    address: String,
}

impl Conn {
    /// Connects to `address`, secures the connection as `security` says (TLS, then SASL) and
    /// starts the reader task on the current executor.
    pub async fn connect(
        address: &str,
        max_in_flight: usize,
        security: &ClientSecurity,
    ) -> Result<Conn, BenchError> {
        let fail = |e: std::io::Error| BenchError::Io(format!("connecting to {address}: {e}"));
        let mut stream = TcpStream::connect(address)
            .await
            .map_err(|e| BenchError::Io(format!("connecting to {address}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::Io(format!("connecting to {address}: {e}")))?;
        let session = match &security.tls {
            None => None,
            Some(config) => {
                let name =
                    server_name(address).map_err(|e| BenchError::Io(format!("{address}: {e}")))?;
                let session = millrace_shard::tls::connect_tls(
                    &mut stream,
                    config.clone(),
                    name,
                    TLS_HANDSHAKE_TIMEOUT,
                )
                .await
                .map_err(|e| BenchError::Auth(format!("TLS handshake with {address}: {e}")))?;
                Some(session.into())
            }
        };
        let (mut reader, mut writer) = millrace_shard::tls::split(stream, session).map_err(fail)?;
        if let Some(login) = &security.sasl {
            let exchange = LoginExchange::new(login);
            authenticate(&mut reader, &mut writer, exchange, address).await?;
        }
        let shared = Rc::new(Shared {
            pending: RefCell::new(VecDeque::new()),
            changed: Notify::new(),
            failure: RefCell::new(None),
            closed: std::cell::Cell::new(false),
            zeroed: std::cell::Cell::new(0),
        });
        millrace_shard::spawn_detached(read_loop(reader, shared.clone()));
        Ok(Conn {
            writer,
            shared,
            max_in_flight: max_in_flight.max(1),
            correlation_id: 0,
            address: address.to_string(),
        })
    }

    /// Sends `request` at `version`. With a `reply`, waits first for an in-flight slot; the
    /// reply runs on the reader task when the response arrives.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        reply: Option<Reply>,
    ) -> Result<(), BenchError> {
        if let Some(reply) = reply {
            self.wait_until(|n| n < self.max_in_flight).await?;
            self.correlation_id = self.correlation_id.wrapping_add(1);
            self.shared.pending.borrow_mut().push_back(Pending {
                correlation_id: self.correlation_id,
                header_version: api_key(R::KEY).response_header_version(version),
                reply,
            });
            self.shared.changed.notify_all();
        } else {
            self.check()?;
            self.correlation_id = self.correlation_id.wrapping_add(1);
        }
        let frame = encode_request(request, version, self.correlation_id)?;
        self.writer
            .write_all(&frame)
            .await
            .map_err(|e| BenchError::Io(format!("writing to {}: {e}", self.address)))
    }

    /// Receive-buffer bytes zeroed so far: the growth of the buffer, not its reuse.
    #[cfg(test)]
    pub fn bytes_zeroed(&self) -> u64 {
        self.shared.zeroed.get()
    }

    /// Waits until every request sent so far has been answered.
    pub async fn drain(&self) -> Result<(), BenchError> {
        self.wait_until(|n| n == 0).await
    }

    fn check(&self) -> Result<(), BenchError> {
        match self.shared.failure.borrow().as_ref() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    async fn wait_until(&self, ok: impl Fn(usize) -> bool) -> Result<(), BenchError> {
        loop {
            self.check()?;
            let seen = self.shared.changed.generation();
            if ok(self.shared.pending.borrow().len()) {
                return Ok(());
            }
            self.shared.changed.changed_since(seen).await;
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.closed.set(true);
        self.shared.changed.notify_all();
    }
}

async fn read_loop(mut reader: Reader, shared: Rc<Shared>) {
    let mut buf = BytesMut::new();
    // The previous response's whole frame; once its reply has dropped every view of it, its
    // allocation (already written, so needing no zeroing) receives the next response.
    let mut last: Option<Bytes> = None;
    loop {
        let seen = shared.changed.generation();
        let front = shared
            .pending
            .borrow()
            .front()
            .map(|p| (p.correlation_id, p.header_version));
        let Some((correlation_id, header_version)) = front else {
            if shared.closed.get() {
                return;
            }
            shared.changed.changed_since(seen).await;
            continue;
        };
        if let Some(frame) = last.take() {
            // `buf` still shares the frame's allocation (it is the empty rest of it).
            drop(std::mem::take(&mut buf));
            if let Ok(reusable) = frame.try_into_mut() {
                buf = reusable;
            }
        }
        let result = read_response(&mut reader, &mut buf, correlation_id, header_version, |n| {
            shared.zeroed.set(shared.zeroed.get() + n as u64)
        })
        .await
        .map(|(frame, body)| {
            last = Some(frame);
            body
        });
        let failed = result.as_ref().err().cloned();
        let pending = shared.pending.borrow_mut().pop_front();
        if let Some(p) = pending {
            (p.reply)(result);
        }
        if let Some(e) = failed {
            *shared.failure.borrow_mut() = Some(e.clone());
            let rest: Vec<Pending> = shared.pending.borrow_mut().drain(..).collect();
            for p in rest {
                (p.reply)(Err(e.clone()));
            }
            shared.changed.notify_all();
            return;
        }
        shared.changed.notify_all();
    }
}

/// SaslHandshake v1, then SaslAuthenticate v2 rounds until `exchange` is done, one request at
/// a time on a connection nothing else uses yet. Login failures carry the broker's words
/// ([`login_error`]).
async fn authenticate(
    reader: &mut Reader,
    writer: &mut Writer,
    mut exchange: LoginExchange,
    address: &str,
) -> Result<(), BenchError> {
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_static_str(exchange.mechanism());
    let answer: SaslHandshakeResponse = call(reader, writer, &handshake, 1, 1, address).await?;
    let enabled: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
    let first = exchange.handshake_answered(answer.error_code, &enabled);
    let mut token = first.map_err(|e| login_error(address, e))?;
    let mut correlation_id = 1;
    loop {
        correlation_id += 1;
        let mut request = SaslAuthenticateRequest::default();
        request.auth_bytes = Bytes::from(token);
        let answer: SaslAuthenticateResponse =
            call(reader, writer, &request, 2, correlation_id, address).await?;
        let message = answer.error_message.as_ref().map(|m| m.as_str());
        let next = exchange.authenticate_answered(answer.error_code, message, &answer.auth_bytes);
        match next.map_err(|e| login_error(address, e))? {
            Some(next) => token = next,
            None => return Ok(()),
        }
    }
}

/// One request to `address` and its decoded answer.
async fn call<R: Request>(
    reader: &mut Reader,
    writer: &mut Writer,
    request: &R,
    version: i16,
    correlation_id: i32,
    address: &str,
) -> Result<R::Response, BenchError> {
    let key = api_key(R::KEY);
    let frame = encode_request(request, version, correlation_id)?;
    let io = |e: std::io::Error| BenchError::Io(format!("logging in to {address}: {e}"));
    writer.write_all(&frame).await.map_err(io)?;
    let mut buf = BytesMut::new();
    let header_version = key.response_header_version(version);
    let (_, mut body) =
        read_response(reader, &mut buf, correlation_id, header_version, |_| {}).await?;
    R::Response::decode(&mut body, version)
        .map_err(|e| BenchError::Protocol(format!("{key:?} v{version} response: {e}")))
}

/// Reads one response into `buf`, whose bytes up to its length are already initialised and are
/// overwritten without zeroing. Returns the whole buffer and the response's body (after its
/// header).
async fn read_response(
    reader: &mut Reader,
    buf: &mut BytesMut,
    correlation_id: i32,
    header_version: i16,
    zeroing: impl FnOnce(usize),
) -> Result<(Bytes, Bytes), BenchError> {
    let io = |e: std::io::Error| BenchError::Io(format!("reading a response: {e}"));
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix).await.map_err(io)?;
    let size = i32::from_be_bytes(prefix);
    let header_bytes = if header_version >= 1 { 5 } else { 4 };
    if size < header_bytes || size as usize > RESPONSE_BYTES_MAX {
        return Err(BenchError::Protocol(format!(
            "response frame of {size} bytes"
        )));
    }
    let size = size as usize;
    if buf.len() < size {
        // Only the part beyond what earlier responses wrote is zeroed.
        zeroing(size - buf.len());
        buf.resize(size, 0);
    }
    reader.read_exact(&mut buf[..size]).await.map_err(io)?;
    // The whole buffer goes out with the frame, so that its written length (a high-water mark
    // over the responses read so far) comes back with it.
    let whole = buf.split().freeze();
    let frame = whole.slice(..size);
    let got = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    if got != correlation_id {
        return Err(BenchError::Protocol(format!(
            "response correlation id {got}, expected {correlation_id}"
        )));
    }
    let mut skip = 4;
    if header_version >= 1 {
        skip += millrace_wire::frame::skip_tagged_fields(&frame[4..], 4)
            .map_err(|e| BenchError::Protocol(format!("response header: {e}")))?;
    }
    Ok((whole, frame.slice(skip..)))
}

#[cfg(test)]
mod tests {
    use super::Conn;
    use bytes::Bytes;
    use kafka_protocol::messages::ApiVersionsRequest;
    use std::cell::RefCell;
    use std::io::{Read, Write};
    use std::rc::Rc;

    /// Answers each request with its correlation id and `payloads[i]`.
    fn serve(listener: std::net::TcpListener, payloads: Vec<Vec<u8>>) {
        let (mut s, _) = listener.accept().unwrap();
        for payload in payloads {
            let mut size = [0u8; 4];
            s.read_exact(&mut size).unwrap();
            let mut request = vec![0u8; i32::from_be_bytes(size) as usize];
            s.read_exact(&mut request).unwrap();
            let mut frame = ((payload.len() + 4) as i32).to_be_bytes().to_vec();
            frame.extend_from_slice(&request[4..8]);
            frame.extend_from_slice(&payload);
            s.write_all(&frame).unwrap();
        }
    }

    #[test]
    fn a_response_reuses_the_last_ones_buffer_and_holds_only_its_own_bytes() {
        let payloads = vec![vec![0xaa; 3000], vec![0xbb; 1000], vec![0xcc; 5000]];
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let expected = payloads.clone();
        let server = std::thread::spawn(move || serve(listener, payloads));
        let config = millrace_shard::ShardRuntimeConfig {
            shards: 1,
            io_memory_bytes: 1 << 20,
            ring_depth: 64,
            pin: false,
        };
        millrace_shard::run_shards(&config, move |_| {
            let address = address.clone();
            let expected = expected.clone();
            async move {
                let mut conn = Conn::connect(&address, 1, &Default::default())
                    .await
                    .unwrap();
                let mut starts = Vec::new();
                for want in &expected {
                    let got: Rc<RefCell<Option<Bytes>>> = Rc::default();
                    let put = got.clone();
                    let reply = Box::new(move |r: Result<Bytes, _>| {
                        *put.borrow_mut() = Some(r.unwrap());
                    });
                    conn.send(&ApiVersionsRequest::default(), 0, Some(reply))
                        .await
                        .unwrap();
                    conn.drain().await.unwrap();
                    let body = got.borrow_mut().take().unwrap();
                    assert_eq!(&body[..], &want[..], "a body of {} bytes", want.len());
                    starts.push(body.as_ptr() as usize);
                }
                // The shorter second response landed where the first was, unzeroed; the
                // longer third zeroed only its growth. Each frame is 4 bytes of header more.
                assert_eq!(
                    starts[0], starts[1],
                    "the second response got a fresh buffer"
                );
                assert_eq!(
                    conn.bytes_zeroed(),
                    5004,
                    "bytes zeroed for frames of 3004, 1004, 5004"
                );
                Ok(())
            }
        })
        .unwrap();
        server.join().unwrap();
    }
}
