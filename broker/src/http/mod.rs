//! HTTP/1.1 listeners on the shard runtime (`millrace.metrics.listen`, and the REST proxy and
//! schema registry as they come): hyper 1.x serving connections as tasks of the shard that
//! accepted them, with `!Send` handlers.
//!
//! hyper's own timers must be `Send`, which the shard's are not, so hyper gets none: its
//! header-read timeout is off, and this module keeps the deadlines itself. A connection that
//! neither reads nor writes for [`IDLE`] is dropped (a client that opens a socket and sends
//! half a header holds it no longer); at most [`CONNECTIONS_MAX`] are open per listener (more
//! wait to be accepted). Request bodies are read through [`read_body`], bounded.
//!
//! This module knows nothing of what it serves: a listener gets a [`Handler`].

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use http_body_util::{BodyExt, Full, Limited};
use millrace_shard::net::TcpStream;
use millrace_shard::time::Instant;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A connection silent this long (no byte read or written) is closed.
pub const IDLE: Duration = Duration::from_secs(30);

/// Open connections per listener.
pub const CONNECTIONS_MAX: usize = 64;

/// A request as handlers get it.
pub type Request = hyper::Request<hyper::body::Incoming>;

/// A complete response.
pub type Response = hyper::Response<Full<Bytes>>;

/// What a listener runs per request.
pub type Handler = Rc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response>>>>;

/// A response with a status, a content type and a body.
pub fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut resp = hyper::Response::new(Full::new(body.into()));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// The whole body of `req`, refused past `max` bytes (Err: too large, or the connection
/// failed while sending it).
pub async fn read_body(req: Request, max: usize) -> Result<Bytes, String> {
    match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(e.to_string()),
    }
}

/// Accepts connections on `addr` until `stopped` completes and serves each with `handler`, on
/// this shard. Binding happens now (an error is returned); serving runs as a task.
pub fn serve(
    what: &'static str,
    addr: SocketAddr,
    handler: Handler,
    stopped: impl std::future::Future<Output = ()> + 'static,
) -> io::Result<()> {
    let listener = millrace_shard::net::listen(addr)?;
    tracing::info!(%addr, "{what} listener ready");
    let open = Rc::new(Cell::new(0usize));
    millrace_shard::spawn_detached(async move {
        millrace_shard::net::accept_until_signal(listener, stopped, move |s| {
            let (handler, open) = (handler.clone(), open.clone());
            async move {
                while open.get() >= CONNECTIONS_MAX {
                    millrace_shard::time::sleep(Duration::from_millis(10)).await;
                }
                open.set(open.get() + 1);
                millrace_shard::spawn_detached(async move {
                    connection(s, handler).await;
                    open.set(open.get() - 1);
                });
            }
        })
        .await;
    });
    Ok(())
}

async fn connection(stream: TcpStream, handler: Handler) {
    let _ = stream.set_nodelay(true);
    let last = Rc::new(Cell::new(Instant::now()));
    let io = Io {
        stream,
        last: last.clone(),
    };
    let service = hyper::service::service_fn(move |req: Request| {
        let answer = handler(req);
        async move { Ok::<_, std::convert::Infallible>(answer.await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // No timer is given to hyper (see the module doc): a header timeout would panic.
    builder.header_read_timeout(None);
    builder.max_buf_size(64 * 1024);
    let serving = async {
        if let Err(e) = builder.serve_connection(io, service).await {
            tracing::debug!(error = %e, "http connection ended");
        }
    };
    let watchdog = async {
        loop {
            millrace_shard::time::sleep(Duration::from_secs(1)).await;
            if last.get().elapsed() >= IDLE {
                tracing::debug!("http connection idle: closing");
                return;
            }
        }
    };
    futures_lite::future::or(serving, watchdog).await;
}

/// A TCP stream as hyper's IO, noting when bytes last moved.
struct Io {
    stream: TcpStream,
    last: Rc<Cell<Instant>>,
}

impl hyper::rt::Read for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut scratch = [0u8; 8192];
        let want = buf.remaining().min(scratch.len());
        match Pin::new(&mut self.stream).poll_read(cx, &mut scratch[..want]) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&scratch[..n]);
                self.last.set(Instant::now());
                Poll::Ready(Ok(()))
            }
            other => other.map(|r| r.map(|_| ())),
        }
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.last.set(Instant::now());
            }
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}
