//! Millrace partition log.
#![forbid(unsafe_code)]
