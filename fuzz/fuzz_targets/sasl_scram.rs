//! `sasl_scram`: see millrace-security's `fuzzing` module for the input layout and the oracles.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| millrace_security::fuzzing::sasl_scram(data));
