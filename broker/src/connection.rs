//! One client connection: a reader task that frames requests and starts their handlers, and a
//! writer that sends responses strictly in request order. At most `queued.max.requests`
//! requests are in flight per connection; past that the reader stops reading the socket.
//!
//! On a TLS listener the connection starts with the handshake ([`millrace_shard::tls`]); on a
//! SASL listener the reader runs the SASL exchange itself, one request at a time, before any
//! other request is started ([`crate::auth`]).

use crate::auth::{BrokerCredentials, ListenerRuntime, ListenerSetup, Outcome, SaslConn};
use crate::handlers::{Listener, RecordPiece, Response};
use crate::shard::Shard;
use crate::share::session::ShareSessions;
use crate::stats::RequestClock;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use millrace_security::sasl::{Mechanism, ScramCredential};
use millrace_shard::net::{pread_exact, sendfile_some, TcpStream};
use millrace_shard::sync::{LocalQueue, Notify};
use millrace_shard::time::Instant;
use millrace_shard::tls::{self, Reader, Writer};
use millrace_shard::Task;
use millrace_wire::fetch::FetchChunk;
use millrace_wire::frame::{frame_size, parse_request_header, peek_fixed, RequestHeader};
use std::cell::RefCell;
use std::rc::Rc;

/// A request frame up to this size is read into a buffer reserved whole at once, never
/// reallocated (Kafka's clients send produce requests of at most 1 MiB by default:
/// `max.request.size`). Only address space is reserved: its pages are touched as bytes arrive
/// ([`millrace_shard::tls::Reader::read_frame`]).
const FRAME_RESERVED_BYTES: usize = 1024 * 1024;

/// Largest piece copied into the write buffer rather than written on its own.
const COALESCE_BYTES_MAX: usize = 64 * 1024;

/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves a connection until the peer closes it or sends something unusable. `runtime` is the
/// client listener's security (None on the controller listener).
pub async fn serve(
    shard: Rc<Shard>,
    mut stream: TcpStream,
    listener: Listener,
    endpoint: Rc<str>,
    runtime: Option<Rc<ListenerRuntime>>,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let mut principal = crate::auth::ANONYMOUS.to_string();
    let session = match runtime.as_ref().and_then(|r| r.tls_config()) {
        None => None,
        Some(config) => match tls::accept_tls(&mut stream, config, TLS_HANDSHAKE_TIMEOUT).await {
            Ok(session) => Some(session),
            Err(e) => {
                tracing::warn!(%peer, listener = %endpoint, error = %e,
                        "closing connection: TLS handshake failed (a plaintext client on a TLS listener?)");
                return;
            }
        },
    };
    if let (Some(session), Some(runtime)) = (&session, &runtime) {
        match runtime.tls_principal(session) {
            Ok(p) => principal = p,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: no principal for the client certificate");
                return;
            }
        }
    }
    let sasl = runtime
        .as_ref()
        .filter(|r| r.setup.sasl.is_some())
        .map(|r| SaslConn::new(r.setup.clone()));
    tracing::debug!(%peer, %principal, "connection");
    let (reader, writer) = match tls::split(stream, session.map(Into::into)) {
        Ok(halves) => halves,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "splitting connection");
            return;
        }
    };
    let queue: Rc<LocalQueue<Task<Answer>>> =
        Rc::new(LocalQueue::new(shard.config.max_inflight_per_connection));
    let writer_task = millrace_shard::spawn(write_loop(
        shard.clone(),
        writer,
        queue.clone(),
        peer.clone(),
    ));
    let share_sessions = Rc::default();
    let on = On {
        listener,
        endpoint,
        share_sessions: &share_sessions,
        sasl,
        principal: Rc::from(principal.as_str()),
        muted_until: Rc::default(),
        answered: Rc::default(),
    };
    read_loop(&shard, reader, &queue, &peer, on).await;
    queue.close();
    writer_task.await;
    // Kafka ends a member's share sessions with its connection and releases its records.
    crate::handlers::share_fetch::connection_closed(&shard, &share_sessions).await;
}

/// What a connection's requests share: where they came in, the connection's share sessions,
/// its SASL exchange on a SASL listener.
struct On<'a> {
    listener: Listener,
    endpoint: Rc<str>,
    share_sessions: &'a Rc<RefCell<ShareSessions>>,
    sasl: Option<SaslConn>,
    principal: Rc<str>,
    /// Until when (monotonic ms) nothing more is read: set by a request a quota throttled.
    muted_until: Rc<std::cell::Cell<u64>>,
    /// Fired when a request of the connection has been handled (or dropped unhandled).
    answered: Rc<Notify>,
}

/// Fires the connection's `answered` when the request's task ends, however it ends.
struct Answered(Rc<Notify>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.notify_all();
    }
}

async fn read_loop(
    shard: &Rc<Shard>,
    mut reader: Reader,
    queue: &LocalQueue<Task<Answer>>,
    peer: &str,
    mut on: On<'_>,
) {
    // Kafka reports a client's host as "/address".
    let host: Rc<str> = match peer.rsplit_once(':') {
        Some((ip, _)) => format!("/{}", ip.trim_start_matches('[').trim_end_matches(']')).into(),
        None => format!("/{peer}").into(),
    };
    loop {
        // KIP-219: a throttled connection is not read until its throttle time has passed.
        wait_while_muted(&on.muted_until).await;
        let mut prefix = [0u8; 4];
        if reader.read_exact(&mut prefix).await.is_err() {
            return; // peer closed
        }
        let cap = shard.config.socket_request_max_bytes;
        let cap = on.sasl.as_ref().map_or(cap, |s| s.frame_cap(cap));
        let size = match frame_size(prefix, cap) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: request too large");
                return;
            }
        };
        let Ok(frame) = reader.read_frame(size, FRAME_RESERVED_BYTES).await else {
            tracing::debug!(%peer, "connection closed mid-request");
            return;
        };
        // queued.max.request.bytes: nothing more is read while the shard's connections hold
        // their share of request bytes; held until the request is answered. Counted once the
        // request has arrived (its buffer grows only as bytes come), not at its size prefix.
        let held = match &shard.request_budget {
            Some(budget) => Some(budget.take(size).await),
            None => None,
        };
        // The read above may have been waiting since before an earlier request was throttled:
        // the request that arrived meanwhile waits out the throttle too. (A client no quota
        // meters may pipeline; nothing throttles it.)
        wait_while_muted(&on.muted_until).await;
        if reader.tls_output_pending() {
            // An alert or key update for the peer: the writer sends it with its next write.
            let _ = queue.push(ready(Response::Nothing)).await;
        }
        if let Some(sasl) = on.sasl.as_mut().filter(|s| s.raw_tokens()) {
            let setup = sasl.setup();
            let scram = |m: Mechanism, u: &str| scram_of(shard, m, u);
            let creds = credentials(shard, &setup, &scram);
            let outcome = sasl.raw_token(&frame, &creds, Instant::now());
            if !answer_sasl(shard, queue, outcome).await {
                return;
            }
            continue;
        }
        let clock = Rc::new(RequestClock::new());
        let (header, body_at) = match parse_request_header(&frame) {
            Ok(parsed) => parsed,
            Err(e) => {
                let fixed = peek_fixed(&frame).ok();
                tracing::warn!(%peer, error = %e, ?fixed, "closing connection: unreadable request header");
                return;
            }
        };
        // A request's body keeps the frame's buffer allocated: handlers that hold on to slices
        // of it (Produce's, in the batch cache) charge its header as at most BODY_PREFIX_MAX.
        let body = if body_at > crate::handlers::BODY_PREFIX_MAX {
            Bytes::copy_from_slice(&frame[body_at..])
        } else {
            frame.slice(body_at..)
        };
        // Nothing but the body refers to the buffer now, so a handler may split it.
        drop(frame);
        if let Some(sasl) = on.sasl.as_mut() {
            match sasl_gate(shard, sasl, &header, &body, peer) {
                Gate::Pass => {}
                Gate::Answer(outcome) => {
                    if !answer_sasl(shard, queue, outcome).await {
                        return;
                    }
                    if let Some(p) = sasl.principal().filter(|p| **p != *on.principal) {
                        on.principal = Rc::from(p.as_str());
                    }
                    continue;
                }
                Gate::Close => return,
            }
        }
        let client = crate::handlers::Client {
            host: host.clone(),
            listener: on.listener,
            endpoint: on.endpoint.clone(),
            principal: on.principal.clone(),
            muted_until: on.muted_until.clone(),
            enveloped: false,
            clock,
            share_sessions: on.share_sessions.clone(),
        };
        // A metered client has one request in flight (quotas::meters): the next is read once
        // this one has recorded what it used, so its throttle, if any, holds the next.
        let one_at_a_time = crate::quotas::meters(
            shard,
            crate::quotas::user_of(&on.principal),
            header.client_id.as_deref().unwrap_or(""),
        );
        let seen = on.answered.generation();
        let answered = Answered(on.answered.clone());
        let handled = handle(shard.clone(), header, body, client);
        let task = millrace_shard::spawn(async move {
            let answer = handled.await;
            drop(held);
            drop(answered);
            answer
        });
        if queue.push(task).await.is_err() {
            return;
        }
        if one_at_a_time {
            on.answered.changed_since(seen).await;
        }
    }
}

/// Sleeps until the connection's throttle time (KIP-219) has passed.
async fn wait_while_muted(muted_until: &std::cell::Cell<u64>) {
    loop {
        let muted = muted_until.get();
        let now = millrace_shard::time::monotonic_ms();
        if muted <= now {
            return;
        }
        millrace_shard::time::sleep(std::time::Duration::from_millis(muted - now)).await;
    }
}

/// What the SASL exchange makes of a request.
enum Gate {
    /// Not the exchange's: serve it as usual.
    Pass,
    /// The exchange's answer.
    Answer(Outcome),
    /// Not allowed now: close the connection.
    Close,
}

/// On a SASL listener: SaslHandshake and SaslAuthenticate are the exchange's; before
/// authentication only ApiVersions passes besides them, and after the session expired
/// nothing does.
fn sasl_gate(
    shard: &Rc<Shard>,
    sasl: &mut SaslConn,
    header: &RequestHeader,
    body: &Bytes,
    peer: &str,
) -> Gate {
    let key = ApiKey::try_from(header.api_key).ok();
    match key {
        Some(ApiKey::SaslHandshake) => Gate::Answer(sasl.handshake(header, body)),
        Some(ApiKey::SaslAuthenticate) => {
            let setup = sasl.setup();
            let scram = |m: Mechanism, u: &str| scram_of(shard, m, u);
            let creds = credentials(shard, &setup, &scram);
            Gate::Answer(sasl.authenticate(header, body, &creds, Instant::now()))
        }
        Some(ApiKey::ApiVersions) if !sasl.authenticated() => Gate::Pass,
        _ if !sasl.authenticated() => {
            tracing::warn!(%peer, api_key = header.api_key,
                "closing connection: request before SASL authentication");
            Gate::Close
        }
        _ if sasl.expired(Instant::now()) => {
            tracing::warn!(%peer, "closing connection: SASL session expired (connections.max.reauth.ms) without re-authentication");
            Gate::Close
        }
        _ => Gate::Pass,
    }
}

/// The credentials a SASL step checks: the listener's PLAIN users, the cluster's SCRAM ones.
fn credentials<'a>(
    shard: &Rc<Shard>,
    setup: &'a ListenerSetup,
    scram: &'a dyn Fn(Mechanism, &str) -> Option<ScramCredential>,
) -> BrokerCredentials<'a> {
    let _ = shard;
    BrokerCredentials {
        plain: &setup.sasl.as_ref().expect("a SASL listener").plain,
        scram,
    }
}

/// The SCRAM credential of `user` for `mechanism` in this shard's metadata image.
fn scram_of(shard: &Shard, mechanism: Mechanism, user: &str) -> Option<ScramCredential> {
    let image = shard.image();
    let stored = image
        .cluster
        .scram_credential(user, mechanism.scram_type()?)?;
    Some(ScramCredential {
        salt: stored.salt.clone(),
        iterations: stored.iterations,
        stored_key: stored.stored_key.clone(),
        server_key: stored.server_key.clone(),
    })
}

/// Queues the exchange's answer; false when the connection is to close (after the failed-
/// authentication delay, as Kafka delays its answer).
async fn answer_sasl(shard: &Shard, queue: &LocalQueue<Task<Answer>>, outcome: Outcome) -> bool {
    match outcome {
        Outcome::Answer(response) => queue.push(ready(response)).await.is_ok(),
        Outcome::Refuse { answer, delay } => {
            if delay {
                let ms = shard.config.security_keys.failed_authentication_delay_ms;
                millrace_shard::time::sleep(std::time::Duration::from_millis(ms as u64)).await;
            }
            let _ = queue.push(ready(answer)).await;
            let _ = queue
                .push(ready(Response::Close("SASL authentication failed".into())))
                .await;
            false
        }
    }
}

/// A task whose answer is `response` at once.
fn ready(response: Response) -> Task<Answer> {
    let now = Instant::now();
    millrace_shard::spawn(async move {
        Answer {
            response,
            api_key: -1,
            clock: Rc::new(RequestClock::new()),
            started: now,
            answered: now,
        }
    })
}

/// A handler's response with what its clock needs once it is written.
struct Answer {
    response: Response,
    api_key: i16,
    clock: Rc<RequestClock>,
    started: Instant,
    answered: Instant,
}

async fn handle(
    shard: Rc<Shard>,
    header: RequestHeader,
    body: Bytes,
    client: crate::handlers::Client,
) -> Answer {
    let started = Instant::now();
    let clock = client.clock.clone();
    let (principal, muted_until) = (client.principal.clone(), client.muted_until.clone());
    let response = crate::handlers::dispatch(&shard, &header, body, client).await;
    // request_percentage: the handler's own time (not its waits on other shards or brokers)
    // as a share of one thread, as Kafka meters its request handler threads.
    let local = started.elapsed().saturating_sub(clock.remote_time());
    let client_id = header.client_id.as_deref().unwrap_or("");
    let user = crate::quotas::user_of(&principal);
    let share = millrace_security::quota::request_time_percentage(local.as_nanos() as u64);
    let key = millrace_security::quota::QuotaKey::RequestPercentage;
    let throttle_ms = crate::quotas::record(&shard, user, client_id, key, share).await;
    if throttle_ms > 0 {
        let until = millrace_shard::time::monotonic_ms() + throttle_ms;
        muted_until.set(muted_until.get().max(until));
    }
    Answer {
        response,
        api_key: header.api_key,
        clock,
        started,
        answered: Instant::now(),
    }
}

async fn write_loop(
    shard: Rc<Shard>,
    mut writer: Writer,
    queue: Rc<LocalQueue<Task<Answer>>>,
    peer: String,
) {
    while let Some(task) = queue.pop().await {
        let Answer {
            response,
            api_key,
            clock,
            started,
            answered,
        } = task.await;
        // The connection's own answers (SASL's, TLS flushes) are not requests' answers.
        let done = |closed| {
            if api_key >= 0 {
                clock.done(api_key, started, answered, closed)
            }
        };
        let result = match response {
            Response::Frame(bytes) => writer.write_all(&bytes).await,
            Response::Fetch(chunks) => write_fetch(&shard, &mut writer, chunks).await,
            Response::Nothing => writer.flush_tls().await,
            Response::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                done(true);
                break;
            }
        };
        done(false);
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "write failed; closing");
            break;
        }
    }
    queue.close();
    // Wakes the reader too: shutting down the socket makes its pending read return.
    writer.close().await;
}

async fn write_fetch(
    shard: &Shard,
    writer: &mut Writer,
    chunks: Vec<FetchChunk<RecordPiece>>,
) -> std::io::Result<()> {
    read_ahead(shard, &chunks);
    let mut pending = BytesMut::new();
    for chunk in chunks {
        match chunk {
            FetchChunk::Encoded(b) | FetchChunk::Records(RecordPiece::Memory(b))
                if b.len() <= COALESCE_BYTES_MAX =>
            {
                pending.extend_from_slice(&b)
            }
            FetchChunk::Encoded(b) | FetchChunk::Records(RecordPiece::Memory(b)) => {
                flush(writer, &mut pending).await?;
                writer.write_all(&b).await?;
            }
            FetchChunk::Records(RecordPiece::File {
                path,
                position,
                len,
                inode,
            }) => {
                flush(writer, &mut pending).await?;
                send_file(shard, writer, &path, inode, position, len as usize).await?;
            }
        }
    }
    flush(writer, &mut pending).await
}

/// Starts the device reads of every file range of a response, and of as much again after
/// each range, before the first is sent.
///
/// Segments are written with direct I/O, so a consumer that is catching up reads them cold.
/// Sent one range after another, each sendfile would wait for its own reads while the device
/// sat idle for the others. Advised up front, the reads of all the response's partitions go to
/// the device at once. The range after each one is what that consumer's next fetch of the
/// partition asks for when it reads in order, so those reads overlap this response's send.
/// Ranges the batch cache serves are in memory already and need nothing.
fn read_ahead(shard: &Shard, chunks: &[FetchChunk<RecordPiece>]) {
    for chunk in chunks {
        if let FetchChunk::Records(RecordPiece::File {
            path,
            position,
            len,
            inode,
        }) = chunk
        {
            if let Ok(file) = shard.sendfile.get(path, *inode) {
                let len = u64::from(*len);
                millrace_shard::net::advise_will_need(&file, *position, 2 * len);
            }
        }
    }
}

async fn flush(writer: &mut Writer, pending: &mut BytesMut) -> std::io::Result<()> {
    if !pending.is_empty() {
        writer.write_all(pending).await?;
        pending.clear();
    }
    Ok(())
}

/// Sends a file range: sendfile from a buffered descriptor while the socket takes it, then, if
/// the socket buffer fills, the rest through a read and an ordinary (waiting) write. Under TLS
/// the range is read and sent through the session.
async fn send_file(
    shard: &Shard,
    writer: &mut Writer,
    path: &std::path::Path,
    inode: u64,
    position: u64,
    len: usize,
) -> std::io::Result<()> {
    let file = shard.sendfile.get(path, inode)?;
    let Some(socket) = writer.plain_socket() else {
        return writer.send_file_range(&file, position, len).await;
    };
    let mut sent = 0;
    while sent < len {
        let n = sendfile_some(socket, &file, position + sent as u64, len - sent)?;
        if n == 0 {
            break;
        }
        sent += n;
    }
    if sent < len {
        let rest = pread_exact(&file, position + sent as u64, len - sent)?;
        writer.write_all(&rest).await?;
    }
    Ok(())
}
