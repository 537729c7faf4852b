//! Millrace thread-per-core runtime facade.
