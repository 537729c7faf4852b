//! A connection's byte stream: plain TCP, or TLS (rustls, in user space) over it; the server
//! side of the broker's client connections, the client side of its own connections to its
//! peers (inter-broker and controller listeners), and the bench's hot-path connections.
//!
//! A connection is served by a reader task and a writer task over two descriptors of one socket
//! ([`crate::net::split`]). Under TLS both hold the one `rustls::Connection` in an
//! `Rc<RefCell<_>>`: each borrow is synchronous and short (decrypt what arrived, or encrypt what
//! is to be sent), never held across an await, so the halves need no lock. Only the writer puts
//! TLS records on the socket; the reader, when decrypting left something the peer must be sent
//! (an alert, a key update), says so ([`Reader::tls_output_pending`]) and the connection wakes
//! the writer, which sends it with its next write. So records never interleave on the wire.
//!
//! TLS answers cannot use sendfile (the kernel would send the file's bytes unencrypted): file
//! ranges are read and written through the session ([`Writer::send_file_range`]), as Kafka
//! does under SSL.

use crate::net::TcpStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use rustls::{ClientConnection, Connection, ServerConnection};
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// TLS bytes read from the socket at a time.
const RAW_READ_BYTES: usize = 32 * 1024;
/// The least a frame's buffer is zeroed ahead of what has arrived ([`Reader::read_frame`]).
const FRAME_STEP_BYTES: usize = 64 * 1024;
/// A file range sent under TLS is read this much at a time.
const FILE_CHUNK_BYTES: usize = 256 * 1024;

/// The receiving half.
pub enum Reader {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS: the socket, the shared session, and TLS bytes read but not yet given to it.
    Tls {
        sock: TcpStream,
        session: Rc<RefCell<Connection>>,
        raw: Box<[u8]>,
        raw_at: usize,
        raw_end: usize,
    },
}

/// The sending half.
pub enum Writer {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS: the socket, the shared session and a buffer for the records to send.
    Tls {
        sock: TcpStream,
        session: Rc<RefCell<Connection>>,
        out: Vec<u8>,
    },
}

/// Runs the server side of a TLS handshake on `stream` within `timeout`. Application data the
/// client sent right behind its Finished stays in the session for the reader.
pub async fn accept_tls(
    stream: &mut TcpStream,
    config: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> io::Result<ServerConnection> {
    let session = ServerConnection::new(config).map_err(io::Error::other)?;
    match handshake(stream, session.into(), timeout, "client").await? {
        Connection::Server(session) => Ok(session),
        Connection::Client(_) => unreachable!("a server handshake stays a server session"),
    }
}

/// Runs the client side of a TLS handshake with the server at the other end of `stream`,
/// checking its certificate against `name` (when the configuration checks names).
pub async fn connect_tls(
    stream: &mut TcpStream,
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    timeout: Duration,
) -> io::Result<ClientConnection> {
    let session = ClientConnection::new(config, name).map_err(io::Error::other)?;
    match handshake(stream, session.into(), timeout, "server").await? {
        Connection::Client(session) => Ok(session),
        Connection::Server(_) => unreachable!("a client handshake stays a client session"),
    }
}

/// Drives `session`'s handshake over `stream` within `timeout`; `peer` names the other side in
/// errors.
async fn handshake(
    stream: &mut TcpStream,
    mut session: Connection,
    timeout: Duration,
    peer: &'static str,
) -> io::Result<Connection> {
    let handshake = async {
        let mut raw = vec![0u8; RAW_READ_BYTES];
        let mut out = Vec::new();
        while session.is_handshaking() {
            send_pending(&mut session, stream, &mut out).await?;
            if !session.wants_read() {
                continue;
            }
            let n = stream.read(&mut raw).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("closed by the {peer} during the TLS handshake"),
                ));
            }
            let mut arrived = &raw[..n];
            while !arrived.is_empty() {
                session.read_tls(&mut arrived)?;
                if let Err(e) = session.process_new_packets() {
                    // Tell the peer why (the alert is queued), then give up.
                    let _ = send_pending(&mut session, stream, &mut out).await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
        send_pending(&mut session, stream, &mut out).await?;
        Ok(session)
    };
    crate::time::timeout(timeout, handshake)
        .await
        .unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no TLS handshake within {} ms", timeout.as_millis()),
            ))
        })
}

/// The two halves of `stream`, with `session` when the connection uses TLS.
pub fn split(stream: TcpStream, session: Option<Connection>) -> io::Result<(Reader, Writer)> {
    let (reader, writer) = crate::net::split(stream)?;
    Ok(match session {
        None => (Reader::Plain(reader), Writer::Plain(writer)),
        Some(session) => {
            let session = Rc::new(RefCell::new(session));
            (
                Reader::Tls {
                    sock: reader,
                    session: session.clone(),
                    raw: vec![0u8; RAW_READ_BYTES].into_boxed_slice(),
                    raw_at: 0,
                    raw_end: 0,
                },
                Writer::Tls {
                    sock: writer,
                    session,
                    out: Vec::new(),
                },
            )
        }
    })
}

impl Reader {
    /// Reads what is available into `buf`; 0 when the peer closed.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Reader::Plain(sock) => sock.read(buf).await,
            Reader::Tls {
                sock,
                session,
                raw,
                raw_at,
                raw_end,
            } => loop {
                match session.borrow_mut().reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if *raw_at == *raw_end {
                    let n = sock.read(raw).await?;
                    if n == 0 {
                        return Ok(0);
                    }
                    (*raw_at, *raw_end) = (0, n);
                }
                let mut s = session.borrow_mut();
                let mut arrived = &raw[*raw_at..*raw_end];
                let taken = s.read_tls(&mut arrived)?;
                *raw_at += taken;
                s.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            },
        }
    }

    /// Fills `buf`; an error if the peer closes first.
    pub async fn read_exact(&mut self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read(buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Reads a frame body of exactly `size` bytes into one buffer of exactly that capacity;
    /// an error if the peer closes first.
    ///
    /// Up to `reserved` bytes of it are reserved at once, so a frame of at most that size is
    /// never reallocated (each reallocation copies everything read so far). Reserving only
    /// maps address space: bytes are written (and so made resident) only as they arrive, the
    /// buffer's filled part at most doubling per read. So a peer that declares a large frame
    /// and sends little holds little memory. A frame above `reserved` grows by doubling.
    ///
    /// On a plain socket, bytes that have already arrived are received straight into the
    /// buffer's unwritten capacity; only a read that has to wait zeroes its part of the buffer
    /// first (the read takes initialized memory). Zeroing each frame before receiving it was 7 %
    /// of the broker's samples at full produce once frames stayed in the batch cache, since a
    /// new frame's memory is then rarely in the CPU's caches.
    pub async fn read_frame(&mut self, size: usize, reserved: usize) -> io::Result<bytes::Bytes> {
        let mut frame: Vec<u8> = Vec::with_capacity(size.min(reserved));
        while frame.len() < size {
            let start = frame.len();
            let chunk = (size - start).min(FRAME_STEP_BYTES.max(start));
            frame.reserve_exact(chunk);
            if self.receive_arrived(&mut frame, start + chunk)? {
                continue;
            }
            frame.resize(start + chunk, 0);
            let n = self.read(&mut frame[start..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            frame.truncate(start + n);
        }
        Ok(bytes::Bytes::from(frame))
    }

    /// On a plain socket, receives what has arrived, up to `end` bytes of `frame` in all, into
    /// its capacity after its length, without waiting: true if anything was received. False
    /// when nothing has arrived yet, and under TLS (records are decrypted into initialized
    /// memory only).
    fn receive_arrived(&mut self, frame: &mut Vec<u8>, end: usize) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let Reader::Plain(sock) = self else {
            return Ok(false);
        };
        let room = end - frame.len();
        let spare = &mut frame.spare_capacity_mut()[..room];
        // glommio's non-buffered TcpStream holds no bytes of its own, so none are skipped; its
        // pending readiness poll, if any, stays valid (a read finding nothing waits for more).
        // SAFETY: recv writes at most `room` bytes into `spare`, capacity the Vec owns and no
        // one else refers to, and reads none of it.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                room,
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => {
                // SAFETY: the kernel wrote the first `n` (at most `room`) bytes of the spare
                // capacity.
                unsafe { frame.set_len(frame.len() + n as usize) };
                Ok(true)
            }
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(false),
                    _ => Err(e),
                }
            }
        }
    }

    /// True when the session has records for the peer that no answer will carry (an alert, a
    /// key update): the writer must be woken to send them.
    pub fn tls_output_pending(&self) -> bool {
        match self {
            Reader::Plain(_) => false,
            Reader::Tls { session, .. } => session.borrow().wants_write(),
        }
    }
}

impl Writer {
    /// Writes all of `data` (encrypted under TLS).
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        match self {
            Writer::Plain(sock) => sock.write_all(data).await,
            Writer::Tls { sock, session, out } => {
                while !data.is_empty() {
                    // The session takes up to its buffer limit; what it took is sent first.
                    let taken = session.borrow_mut().writer().write(data)?;
                    data = &data[taken..];
                    flush_session(session, sock, out).await?;
                }
                Ok(())
            }
        }
    }

    /// Sends whatever the session has queued (TLS only; nothing for plain TCP).
    pub async fn flush_tls(&mut self) -> io::Result<()> {
        match self {
            Writer::Plain(_) => Ok(()),
            Writer::Tls { sock, session, out } => flush_session(session, sock, out).await,
        }
    }

    /// The socket when the connection is plain TCP (sendfile can use it).
    pub fn plain_socket(&self) -> Option<&TcpStream> {
        match self {
            Writer::Plain(sock) => Some(sock),
            Writer::Tls { .. } => None,
        }
    }

    /// Sends `len` bytes of `file` from `position` through the session, a chunk at a time.
    pub async fn send_file_range(
        &mut self,
        file: &std::fs::File,
        position: u64,
        len: usize,
    ) -> io::Result<()> {
        let mut sent = 0;
        while sent < len {
            let chunk = (len - sent).min(FILE_CHUNK_BYTES);
            let bytes = crate::net::pread_exact(file, position + sent as u64, chunk)?;
            self.write_all(&bytes).await?;
            sent += chunk;
        }
        Ok(())
    }

    /// Ends the connection: a TLS close_notify first, then the socket is shut down both ways,
    /// which also wakes the reader's pending read.
    pub async fn close(&mut self) {
        let sock = match self {
            Writer::Plain(sock) => sock,
            Writer::Tls { sock, session, out } => {
                session.borrow_mut().send_close_notify();
                let _ = flush_session(session, sock, out).await;
                sock
            }
        };
        let _ = sock.close().await;
        let _ = sock.shutdown(std::net::Shutdown::Both).await;
    }
}

/// Sends every record `session` has queued.
async fn flush_session(
    session: &RefCell<Connection>,
    sock: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        out.clear();
        {
            let mut s = session.borrow_mut();
            while s.wants_write() {
                s.write_tls(out)?;
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        sock.write_all(out).await?;
    }
}

/// The handshake's variant of [`flush_session`], before the session is shared.
async fn send_pending(
    session: &mut Connection,
    sock: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    out.clear();
    while session.wants_write() {
        session.write_tls(out)?;
    }
    if !out.is_empty() {
        sock.write_all(out).await?;
    }
    Ok(())
}
