//! Helpers shared by the CLI test binaries.

pub mod secure;
pub mod txn;

use std::net::TcpListener;

/// A free port below the kernel's ephemeral range (32768 and up). A port inside it can be taken
/// by any outgoing connection, and a connect to it while nothing listens can even succeed by
/// TCP self-connection, which would make `wait_ready` believe the broker is up.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = std::process::id() ^ clock.map_or(0, |d| d.subsec_nanos());
    for _ in 0..2000 {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + ((seed.wrapping_mul(7919).wrapping_add(n * 104_729)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}
