//! Millrace's Kafka wire codec. Pure: no I/O, no async, no runtime.
#![deny(unsafe_code)]
pub mod guard;
