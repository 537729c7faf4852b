//! Millrace's Kafka wire codec. Pure: no I/O, no async, no runtime.
//!
//! * [`frame`]: the 4-byte size prefix, checked against `socket.request.max.bytes` before any
//!   allocation, and request/response headers (flexible and non-flexible).
//! * [`api`]: the API-version table type the broker's handler registry fills.
//! * [`records`]: record batch v2 view, CRC-32C, iteration, a builder; [`compression`] codecs.
//! * [`codes`]: Kafka's numeric error codes with Kafka's names, shared by broker and clients.
//! * [`epoch`]: leader epochs ([`epoch::LeaderEpoch`], [`epoch::EpochEntry`]), the batch
//!   header's `partition_leader_epoch` as a type, shared by storage and replication.
//! * [`fetch`]: a Fetch response encoder whose record bytes are separate chunks, so they can
//!   come straight from a segment file or the batch cache.
//!
//! Every decoder here takes untrusted bytes and returns [`WireError`]; none panics on input.
#![deny(unsafe_code)]

pub mod codes;
pub mod compression;
pub mod epoch;
mod error;
pub mod murmur2;
pub mod records;
pub mod varint;

pub use compression::Compression;
pub use error::WireError;
pub mod fetch;
pub mod frame;
pub mod guard;
