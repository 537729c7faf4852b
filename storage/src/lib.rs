//! Millrace partition log.
#![forbid(unsafe_code)]

pub mod disk;
