//! Security without I/O: the SASL mechanisms (server and client side), TLS server and client
//! configuration from Kafka's `ssl.*` keys, ACL decisions and client quotas. The broker owns the
//! sockets, the metadata and the clocks; everything here is given its inputs and is tested,
//! fuzzed and simulated on its own. One exception, for clients: [`client`] reads a Kafka
//! client's `--command-config` and opens a blocking TCP or TLS stream with it.

#![forbid(unsafe_code)]

pub mod acl;
pub mod client;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod quota;
pub mod sasl;
pub mod tls;
