//! Executors: one per core, pinned.

use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use std::future::Future;
use std::io;

/// A shard's index, 0..shards. Stable across restarts for the same `--cores` value.
pub type ShardId = usize;

/// How the executors are started.
#[derive(Debug, Clone)]
pub struct ShardRuntimeConfig {
    /// Number of shards; shard `i` is pinned to the i-th online CPU.
    pub shards: usize,
    /// Registered I/O buffer memory per executor (counts against RLIMIT_MEMLOCK).
    pub io_memory_bytes: usize,
    /// io_uring submission queue depth.
    pub ring_depth: usize,
    /// Pin each executor to a CPU (off in tests that start several brokers on one host).
    pub pin: bool,
}

impl ShardRuntimeConfig {
    /// Checks the configuration against the host: CPU count and the locked-memory limit, which
    /// io_uring's registered buffers count against (glommio silently falls back to slower
    /// unregistered buffers when it is exceeded, so we refuse to start instead).
    pub fn check(&self) -> Result<(), String> {
        let cpus = online_cpus();
        if self.shards == 0 {
            return Err("cores must be at least 1".into());
        }
        if self.pin && self.shards > cpus.len() {
            return Err(format!(
                "cores = {} but this host has {} online CPUs",
                self.shards,
                cpus.len()
            ));
        }
        let limit = memlock_limit_bytes();
        let needed = self.io_memory_bytes.saturating_mul(self.shards);
        if let Some(limit) = limit {
            if needed as u64 > limit {
                return Err(format!(
                    "{} shards x io_memory {} bytes = {} bytes exceeds RLIMIT_MEMLOCK ({} bytes); \
                     lower millrace.io.memory.bytes or raise the limit (ulimit -l)",
                    self.shards, self.io_memory_bytes, needed, limit
                ));
            }
        }
        Ok(())
    }
}

/// The CPUs this process may run on, in order.
pub fn online_cpus() -> Vec<usize> {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (0..n).collect()
}

/// RLIMIT_MEMLOCK's soft limit, None when unlimited.
pub fn memlock_limit_bytes() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        None
    } else {
        Some(lim.rlim_cur)
    }
}

/// Starts one executor per shard, each running `shard_main(shard_id)`, and waits for all of
/// them to finish. Returns the first error any of them returned.
pub fn run_shards<F, Fut>(config: &ShardRuntimeConfig, shard_main: F) -> io::Result<()>
where
    F: Fn(ShardId) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    crate::reap::remember_process_cpus();
    let cpus = online_cpus();
    let mut handles = Vec::with_capacity(config.shards);
    for shard in 0..config.shards {
        let placement = if config.pin {
            Placement::Fixed(cpus[shard % cpus.len()])
        } else {
            Placement::Unbound
        };
        let main = shard_main.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{shard}"))
            .io_memory(config.io_memory_bytes)
            .ring_depth(config.ring_depth)
            // The helper thread (unlinks, closes, directory fsyncs, small atomic writes) is
            // not pinned beside its shard: it would take CPU from that shard and from the
            // io_uring workers carrying the shard's writes, while another core may be idle.
            .blocking_thread_pool_placement(PoolPlacement::Unbound(1))
            .spawn(move || {
                crate::reap::mark_shard_thread();
                main(shard)
            })
            .map_err(|e| io::Error::other(format!("starting shard {shard}: {e}")))?;
        handles.push(handle);
    }
    let mut first_error = None;
    for (shard, handle) in handles.into_iter().enumerate() {
        let result = handle
            .join()
            .map_err(|e| io::Error::other(format!("shard {shard} failed: {e}")))
            .and_then(|r| r);
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
