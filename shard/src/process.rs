//! What the process uses (CPU, memory, descriptors), read from `/proc/self` for the broker's
//! `process_*` metrics.

/// What `/proc/self` says now; `None` fields could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_bytes: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The descriptor limit (RLIMIT_NOFILE, soft).
    pub max_fds: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
}

/// Reads them.
pub fn read() -> ProcessStats {
    let mut out = ProcessStats::default();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        let parsed = parse_stat(&stat);
        if let (Some((utime, stime, threads, start_ticks, vsize, rss_pages)), true) =
            (parsed, ticks > 0 && page > 0)
        {
            let ticks = ticks as f64;
            out.cpu_seconds = Some((utime + stime) as f64 / ticks);
            out.threads = Some(threads);
            out.virtual_bytes = Some(vsize);
            out.resident_bytes = Some(rss_pages * page as u64);
            out.start_time_seconds = boot_time().map(|boot| boot + start_ticks as f64 / ticks);
        }
    }
    out.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        out.max_fds = Some(limit.rlim_cur);
    }
    out
}

/// From `/proc/self/stat`: (utime, stime, threads, starttime in ticks, vsize, rss pages).
/// Fields are counted after the command name's closing parenthesis (the name may hold spaces).
fn parse_stat(stat: &str) -> Option<(u64, u64, u64, u64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((
        field(14)?,
        field(15)?,
        field(20)?,
        field(22)?,
        field(23)?,
        field(24)?,
    ))
}

/// The kernel's boot time (`btime` of /proc/stat), seconds since the Unix epoch.
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("btime "))?;
    line[6..].trim().parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        // A command name with spaces and a parenthesis, as the kernel prints it.
        let stat = "4242 (mill (race) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 7 0 12345 1048576 300 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((250, 50, 7, 12345, 1_048_576, 300)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_reads() {
        let s = read();
        assert!(s.cpu_seconds.is_some() && s.resident_bytes.unwrap() > 0);
        assert!(s.open_fds.unwrap() > 0 && s.max_fds.unwrap() > 0);
        assert!(s.start_time_seconds.unwrap() > 1.6e9);
    }
}
