//! One client connection: a reader task that frames requests and starts their handlers, and a
//! writer that sends responses strictly in request order. At most `queued.max.requests`
//! requests are in flight per connection; past that the reader stops reading the socket.

use crate::handlers::{Listener, RecordPiece, Response};
use crate::shard::Shard;
use crate::share::session::ShareSessions;
use crate::stats::RequestClock;
use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use millrace_shard::net::{pread_exact, sendfile_some, split, TcpStream};
use millrace_shard::sync::LocalQueue;
use millrace_shard::time::Instant;
use millrace_shard::Task;
use millrace_wire::fetch::FetchChunk;
use millrace_wire::frame::{frame_size, parse_request_header, peek_fixed, RequestHeader};
use std::cell::RefCell;
use std::rc::Rc;

/// Frame bytes allocated ahead of what has arrived; the buffer at most doubles per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Largest piece copied into the write buffer rather than written on its own.
const COALESCE_BYTES_MAX: usize = 64 * 1024;

/// Serves a connection until the peer closes it or sends something unusable.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, listener: Listener, endpoint: Rc<str>) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (reader, writer) = match split(stream) {
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
    };
    read_loop(&shard, reader, &queue, &peer, on).await;
    queue.close();
    writer_task.await;
    // Kafka ends a member's share sessions with its connection and releases its records.
    crate::handlers::share_fetch::connection_closed(&shard, &share_sessions).await;
}

/// What a connection's requests share: where they came in, the connection's share sessions.
struct On<'a> {
    listener: Listener,
    endpoint: Rc<str>,
    share_sessions: &'a Rc<RefCell<ShareSessions>>,
}

async fn read_loop(
    shard: &Rc<Shard>,
    mut reader: TcpStream,
    queue: &LocalQueue<Task<Answer>>,
    peer: &str,
    on: On<'_>,
) {
    // Kafka reports a client's host as "/address".
    let host: Rc<str> = match peer.rsplit_once(':') {
        Some((ip, _)) => format!("/{}", ip.trim_start_matches('[').trim_end_matches(']')).into(),
        None => format!("/{peer}").into(),
    };
    loop {
        let mut prefix = [0u8; 4];
        if reader.read_exact(&mut prefix).await.is_err() {
            return; // peer closed
        }
        let size = match frame_size(prefix, shard.config.socket_request_max_bytes) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: request too large");
                return;
            }
        };
        let Some(frame) = read_frame(&mut reader, size).await else {
            tracing::debug!(%peer, "connection closed mid-request");
            return;
        };
        let clock = Rc::new(RequestClock::new());
        let (header, body_at) = match parse_request_header(&frame) {
            Ok(parsed) => parsed,
            Err(e) => {
                let fixed = peek_fixed(&frame).ok();
                tracing::warn!(%peer, error = %e, ?fixed, "closing connection: unreadable request header");
                return;
            }
        };
        let body = frame.slice(body_at..);
        let client = crate::handlers::Client {
            host: host.clone(),
            listener: on.listener,
            endpoint: on.endpoint.clone(),
            clock,
            share_sessions: on.share_sessions.clone(),
        };
        let task = millrace_shard::spawn(handle(shard.clone(), header, body, client));
        if queue.push(task).await.is_err() {
            return;
        }
    }
}

/// Reads a frame body of `size` bytes, growing the buffer only as bytes arrive, so a client
/// that declares a large frame and sends little holds little memory.
async fn read_frame(reader: &mut TcpStream, size: usize) -> Option<Bytes> {
    let mut frame = BytesMut::with_capacity(size.min(READ_CHUNK_BYTES));
    while frame.len() < size {
        let start = frame.len();
        let chunk = (size - start).min(READ_CHUNK_BYTES.max(start));
        frame.resize(start + chunk, 0);
        let n = reader.read(&mut frame[start..]).await.ok()?;
        if n == 0 {
            return None;
        }
        frame.truncate(start + n);
    }
    Some(frame.freeze())
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
    let response = crate::handlers::dispatch(&shard, &header, body, client).await;
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
    mut writer: TcpStream,
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
        let done = |closed| clock.done(api_key, started, answered, closed);
        let result = match response {
            Response::Frame(bytes) => writer.write_all(&bytes).await,
            Response::Fetch(chunks) => write_fetch(&shard, &mut writer, chunks).await,
            Response::Nothing => Ok(()),
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
    let _ = writer.close().await;
    // Wake the reader: shutting down the socket makes its pending read return.
    let _ = writer.shutdown(std::net::Shutdown::Both).await;
}

async fn write_fetch(
    shard: &Shard,
    writer: &mut TcpStream,
    chunks: Vec<FetchChunk<RecordPiece>>,
) -> std::io::Result<()> {
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

async fn flush(writer: &mut TcpStream, pending: &mut BytesMut) -> std::io::Result<()> {
    if !pending.is_empty() {
        writer.write_all(pending).await?;
        pending.clear();
    }
    Ok(())
}

/// Sends a file range: sendfile from a buffered descriptor while the socket takes it, then, if
/// the socket buffer fills, the rest through a read and an ordinary (waiting) write.
async fn send_file(
    shard: &Shard,
    writer: &mut TcpStream,
    path: &std::path::Path,
    inode: u64,
    position: u64,
    len: usize,
) -> std::io::Result<()> {
    let file = shard.sendfile.get(path, inode)?;
    let mut sent = 0;
    while sent < len {
        let n = sendfile_some(writer, &file, position + sent as u64, len - sent)?;
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
