//! What a Kafka client needs to connect to a secured listener: the `--command-config` properties
//! ([`config`], [`properties`]), a blocking byte stream, plain or TLS ([`stream`]), and the SASL
//! login's request sequence ([`login`]). `millrace-tools` and `millrace-bench` both connect with
//! these; the bench's hot-path connections drive TLS with the shard crate's async stream and
//! only take [`stream::server_name`] and [`login::LoginExchange`] from here.
//!
//! The one place in this crate with sockets: [`stream::Stream::open`] dials and finishes the TLS
//! handshake (std's blocking `TcpStream`, no runtime).

pub mod config;
pub mod login;
pub mod properties;
pub mod stream;

pub use config::{load, ClientSecurity, CommandConfig, SaslLogin, SecurityProtocol};
pub use login::{LoginError, LoginExchange};
pub use properties::parse_properties;
pub use stream::{server_name, Stream};
