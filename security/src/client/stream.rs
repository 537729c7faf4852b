//! The byte stream under a blocking client (`millrace-tools`' client, `millrace-bench`'s set-up
//! client): a TCP connection, bare or inside TLS (rustls' `StreamOwned`, driven by the same
//! blocking socket), so that the request/response code reads and writes without knowing which.
//!
//! The TLS handshake is finished inside [`Stream::open`], so that a certificate or protocol
//! problem is reported as a connection failure naming the broker, not as an error of the first
//! request.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// How long to wait for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a response (above any long-poll wait the tools ask for).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A connected stream to one broker.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to `address` (HOST:PORT), trying each resolved address in turn, and with `tls`
    /// completes a TLS handshake for the name HOST. The error is the reason, for the caller to
    /// put beside the address.
    pub fn open(address: &str, tls: Option<&Arc<ClientConfig>>) -> Result<Stream, String> {
        let socket = tcp_connect(address)?;
        let Some(config) = tls else {
            return Ok(Stream::Plain(socket));
        };
        let host = server_name(address)?;
        let connection =
            ClientConnection::new(config.clone(), host).map_err(|e| format!("TLS: {e}"))?;
        let mut stream = StreamOwned::new(connection, socket);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("TLS handshake failed: {}", tls_reason(&e)))?;
        }
        Ok(Stream::Tls(Box::new(stream)))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

fn tcp_connect(address: &str) -> Result<TcpStream, String> {
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    let mut last = String::from("no address resolved");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(socket) => {
                socket
                    .set_read_timeout(Some(READ_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                socket.set_nodelay(true).map_err(|e| e.to_string())?;
                return Ok(socket);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// The name the broker's certificate must carry: HOST of HOST:PORT (an IP address or a DNS
/// name; `[v6]` loses its brackets).
pub fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("TLS: {host:?} is not a valid server name ({e})"))
}

/// rustls' error inside an `io::Error`, without the I/O wrapping.
fn tls_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "the broker closed the connection (is it a TLS \
                                              listener?)"
            .to_string(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_host_part() {
        assert_eq!(
            server_name("broker1.example.com:9093").unwrap(),
            ServerName::try_from("broker1.example.com").unwrap()
        );
        assert!(matches!(
            server_name("127.0.0.1:9093").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:9093").unwrap(),
            ServerName::IpAddress(_)
        ));
        let err = server_name("bad_name!:9093").unwrap_err();
        assert!(err.contains("not a valid server name"), "{err}");
    }
}
