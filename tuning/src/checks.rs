//! `millrace-tune check`: reads the host and reports each finding with its status, what was
//! observed, why it matters to Millrace and the command that fixes it.
//!
//! Checks only read. Each is a function from the host (and the deployment it is measured
//! against) to one [`Finding`], so each can be tested against a fake `/proc` and `/sys`.

use std::path::{Path, PathBuf};

use crate::config::{online_cpus, Target};
use crate::host::{format_cpu_list, human_bytes, parse_cpu_list, selected_choice, Host};
use crate::json::Json;
use crate::storage::{self, BlockDevice, Mount};
use crate::Error;

/// Version of the `check --json` document.
pub const CHECK_JSON_VERSION: u64 = 1;

/// Every check's name, in report order.
pub const CHECK_NAMES: [&str; 18] = [
    "io_uring",
    "seccomp",
    "memlock",
    "cpu_count",
    "cpu_isolation",
    "cpu_governor",
    "transparent_hugepages",
    "swappiness",
    "data_dir_filesystem",
    "data_dir_mount_options",
    "block_scheduler",
    "block_nr_requests",
    "block_write_cache",
    "nic_irq_affinity",
    "nic_rss",
    "nofile",
    "aio_max_nr",
    "nr_open",
];

/// RLIMIT_NOFILE below this warns: segments, indexes, 256 sendfile descriptors per shard and
/// every client connection each hold a descriptor.
pub const NOFILE_WANTED: u64 = 1 << 16;
/// The value the fixes suggest for RLIMIT_NOFILE and `fs.nr_open`.
pub const NOFILE_SUGGESTED: u64 = 1 << 20;
/// `vm.swappiness` above this warns.
pub const SWAPPINESS_MAX: u64 = 10;
/// `nr_requests` below this warns: group commits from every shard queue behind each other.
pub const NR_REQUESTS_MIN: u64 = 64;
/// `fs.aio-max-nr` below the kernel default warns.
pub const AIO_MAX_NR_MIN: u64 = 65536;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Unknown,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Unknown => "unknown",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub name: &'static str,
    pub status: Status,
    pub observed: String,
    pub why: String,
    pub fix: String,
}

impl Finding {
    fn new(name: &'static str, status: Status, observed: impl Into<String>) -> Finding {
        Finding {
            name,
            status,
            observed: observed.into(),
            why: String::new(),
            fix: String::new(),
        }
    }

    fn why(mut self, why: impl Into<String>) -> Finding {
        self.why = why.into();
        self
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }

    pub fn to_json(&self) -> Json {
        Json::obj([
            ("name", Json::str(self.name)),
            ("status", Json::str(self.status.as_str())),
            ("observed", Json::str(&self.observed)),
            ("why", Json::str(&self.why)),
            ("fix", Json::str(&self.fix)),
        ])
    }
}

/// What the checks know about the host and the deployment, gathered once.
pub struct Context<'a> {
    pub host: &'a Host,
    pub target: &'a Target,
    /// The data directory or its nearest existing parent, canonical.
    pub dir: PathBuf,
    pub mount: Option<Mount>,
    pub device: Option<BlockDevice>,
    pub online: Option<Vec<usize>>,
}

impl<'a> Context<'a> {
    pub fn gather(host: &'a Host, target: &'a Target) -> Result<Context<'a>, Error> {
        let dir = storage::existing_dir(&target.data_dir)?;
        let (mount, device) = storage::locate(host, &dir);
        Ok(Context {
            host,
            target,
            dir,
            mount,
            device,
            online: online_cpus(host),
        })
    }
}

/// Runs every check in [`CHECK_NAMES`] order.
pub fn run_all(ctx: &Context) -> Vec<Finding> {
    let findings = vec![
        io_uring(ctx.host),
        seccomp(ctx.host),
        memlock(ctx.host, ctx.target),
        cpu_count(ctx),
        cpu_isolation(ctx),
        cpu_governor(ctx.host),
        transparent_hugepages(ctx.host),
        swappiness(ctx.host),
        data_dir_filesystem(ctx),
        data_dir_mount_options(ctx),
        block_scheduler(ctx),
        block_nr_requests(ctx),
        block_write_cache(ctx),
        nic::irq_affinity(ctx),
        nic::rss(ctx),
        nofile(ctx.host),
        aio_max_nr(ctx.host),
        nr_open(ctx.host),
    ];
    debug_assert!(findings.iter().map(|f| f.name).eq(CHECK_NAMES));
    findings
}

/// The `--json` document.
pub fn to_json(ctx: &Context, findings: &[Finding]) -> Json {
    Json::obj([
        ("version", Json::from(CHECK_JSON_VERSION)),
        ("data_dir", Json::str(ctx.dir.display().to_string())),
        ("cores", Json::from(ctx.target.cores as u64)),
        ("io_memory_bytes", Json::from(ctx.target.io_memory_bytes)),
        ("pin_cores", Json::from(ctx.target.pin_cores)),
        (
            "checks",
            Json::Arr(findings.iter().map(Finding::to_json).collect()),
        ),
    ])
}

/// The aligned table: one row per check, with why and fix under each that is not ok.
pub fn to_table(findings: &[Finding]) -> String {
    use std::fmt::Write as _;
    let name_w = findings
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let status_w = 7;
    let mut out = format!("{:name_w$}  {:status_w$}  OBSERVED\n", "CHECK", "STATUS");
    let indent = " ".repeat(name_w + status_w + 4);
    for f in findings {
        let _ = writeln!(
            out,
            "{:name_w$}  {:status_w$}  {}",
            f.name,
            f.status.as_str(),
            f.observed
        );
        if f.status != Status::Ok {
            let _ = writeln!(out, "{indent}why: {}", f.why);
            let _ = writeln!(out, "{indent}fix: {}", f.fix);
        }
    }
    out
}

/// The worst status: the exit code is 1 when it is `Fail`.
pub fn worst(findings: &[Finding]) -> Status {
    findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Ok)
}

pub fn io_uring(host: &Host) -> Finding {
    let path = "/proc/sys/kernel/io_uring_disabled";
    let why = "every shard submits its disk and network I/O through its own io_uring ring; \
               without io_uring the broker cannot start its shards";
    let fix = "sysctl -w kernel.io_uring_disabled=0 (persist in /etc/sysctl.d/90-millrace.conf)";
    let finding = match host.read(path).as_deref().map(str::trim) {
        Some("0") => Finding::new(
            "io_uring",
            Status::Ok,
            "enabled (kernel.io_uring_disabled=0)",
        ),
        Some("1") => Finding::new(
            "io_uring",
            Status::Warn,
            "restricted to kernel.io_uring_group (kernel.io_uring_disabled=1)",
        )
        .fix(format!(
            "run the broker with the group in /proc/sys/kernel/io_uring_group, or {fix}"
        )),
        Some("2") => Finding::new(
            "io_uring",
            Status::Fail,
            "disabled (kernel.io_uring_disabled=2)",
        ),
        Some(other) => Finding::new("io_uring", Status::Unknown, format!("{path} = {other:?}")),
        None => Finding::new(
            "io_uring",
            Status::Unknown,
            "kernel.io_uring_disabled not present (kernel before 6.6?); cannot tell",
        )
        .fix("check that the kernel is built with CONFIG_IO_URING=y (5.19 or newer recommended)"),
    };
    with_defaults(finding, why, fix)
}

pub fn seccomp(host: &Host) -> Finding {
    let why = "a seccomp filter (container runtimes install one; Docker's default profile \
               denies io_uring_setup since 25.0) can refuse the io_uring calls the shards need";
    let fix = "run the broker without the filter, or allow io_uring_setup, io_uring_enter and \
               io_uring_register in its profile (docker run --security-opt seccomp=<profile>)";
    let status = host.read("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    let filters = field("Seccomp_filters:");
    let finding = match field("Seccomp:").as_deref() {
        Some("0") => Finding::new("seccomp", Status::Ok, "no seccomp filter on this process"),
        Some("1") => Finding::new(
            "seccomp",
            Status::Fail,
            "strict mode (only read/write/exit)",
        ),
        Some("2") => Finding::new(
            "seccomp",
            Status::Warn,
            format!(
                "filter mode, {} filter(s): io_uring may be denied",
                filters.as_deref().unwrap_or("?")
            ),
        ),
        _ => Finding::new(
            "seccomp",
            Status::Unknown,
            "no Seccomp: line in /proc/self/status",
        ),
    };
    with_defaults(finding, why, fix)
}

pub fn memlock(host: &Host, target: &Target) -> Finding {
    let need = target.memlock_needed_bytes();
    let why = format!(
        "each shard registers millrace.io.memory.bytes of I/O buffers with its ring, which \
         counts against RLIMIT_MEMLOCK; the broker refuses to start when {} shards x {} = {} \
         exceeds the soft limit, rather than silently falling back to slower buffers",
        target.cores,
        human_bytes(target.io_memory_bytes),
        human_bytes(need)
    );
    let kib = need.div_ceil(1024).max(64);
    let fix = format!(
        "systemd: LimitMEMLOCK={need} in the unit; shell: ulimit -l {kib}; \
         /etc/security/limits.conf: millrace soft memlock {kib} and millrace hard memlock {kib}"
    );
    let finding = match rlimit(host, "Max locked memory") {
        Some((soft, hard)) => {
            let shown = format!(
                "soft {}, hard {}; {} needed",
                limit_text(soft, human_bytes),
                limit_text(hard, human_bytes),
                human_bytes(need)
            );
            let enough = soft.is_none_or(|s| s >= need);
            Finding::new(
                "memlock",
                if enough { Status::Ok } else { Status::Fail },
                shown,
            )
        }
        None => Finding::new(
            "memlock",
            Status::Unknown,
            "no Max locked memory in /proc/self/limits",
        ),
    };
    with_defaults(finding, &why, &fix)
}

pub fn cpu_count(ctx: &Context) -> Finding {
    let cores = ctx.target.cores;
    let why = "Millrace runs one shard per core and pins shard i to the i-th online CPU; more \
               shards than online CPUs would put two shards on one core";
    let fix = "run with --cores N (millrace.cores) no larger than the online CPU count, or bring \
               CPUs online: echo 1 > /sys/devices/system/cpu/cpuN/online";
    let finding = match &ctx.online {
        Some(online) if !online.is_empty() => {
            let shown = format!(
                "{} online ({}), {cores} shard(s) requested",
                online.len(),
                format_cpu_list(online)
            );
            // The broker refuses more pinned shards than CPUs; unpinned, they only share.
            let status = match (cores <= online.len(), ctx.target.pin_cores) {
                (true, _) => Status::Ok,
                (false, true) => Status::Fail,
                (false, false) => Status::Warn,
            };
            Finding::new("cpu_count", status, shown)
        }
        _ => Finding::new(
            "cpu_count",
            Status::Unknown,
            "cannot read /sys/devices/system/cpu/online",
        ),
    };
    with_defaults(finding, why, fix)
}

pub fn cpu_isolation(ctx: &Context) -> Finding {
    let why = "a shard shares its core with kernel threads, timers and other processes unless \
               that core is isolated; each interruption delays every request on the shard";
    let Some(online) = ctx.online.as_ref().filter(|o| !o.is_empty()) else {
        return with_defaults(
            Finding::new("cpu_isolation", Status::Unknown, "cannot read online CPUs"),
            why,
            "",
        );
    };
    let shard_cpus: Vec<usize> = online.iter().copied().take(ctx.target.cores).collect();
    let isolated = ctx
        .host
        .read("/sys/devices/system/cpu/isolated")
        .and_then(|t| parse_cpu_list(&t));
    let fix = format!(
        "isolate the shard CPUs on the kernel command line (reboot): isolcpus=managed_irq,domain,{0} \
         nohz_full={0} rcu_nocbs={0}; keep at least one CPU outside for the kernel and IRQs",
        format_cpu_list(&shard_cpus)
    );
    let finding = match isolated {
        None => Finding::new(
            "cpu_isolation",
            Status::Unknown,
            "cannot read isolated CPUs",
        ),
        Some(iso) if iso.is_empty() => Finding::new(
            "cpu_isolation",
            Status::Warn,
            format!(
                "no isolated CPUs; shards on {}",
                format_cpu_list(&shard_cpus)
            ),
        ),
        Some(iso) => {
            let covered = shard_cpus.iter().filter(|c| iso.contains(c)).count();
            let shown = format!(
                "isolated {}; shards on {} ({covered} of {} isolated)",
                format_cpu_list(&iso),
                format_cpu_list(&shard_cpus),
                shard_cpus.len()
            );
            let status = if covered == shard_cpus.len() {
                Status::Ok
            } else {
                Status::Warn
            };
            Finding::new("cpu_isolation", status, shown)
        }
    };
    with_defaults(finding, why, &fix)
}

pub fn cpu_governor(host: &Host) -> Finding {
    let why = "a power-saving governor lowers the clock between bursts; the next request then \
               runs slowly until the frequency ramps up, which shows in tail latency";
    let fix = "millrace-tune apply, or cpupower frequency-set -g performance";
    let mut counts: Vec<(String, usize)> = Vec::new();
    for cpu in host.list("/sys/devices/system/cpu") {
        let is_cpu = cpu
            .strip_prefix("cpu")
            .is_some_and(|n| n.parse::<usize>().is_ok());
        if !is_cpu {
            continue;
        }
        let path = format!("/sys/devices/system/cpu/{cpu}/cpufreq/scaling_governor");
        if let Some(gov) = host.read(&path) {
            match counts.iter_mut().find(|(g, _)| *g == gov) {
                Some((_, n)) => *n += 1,
                None => counts.push((gov, 1)),
            }
        }
    }
    let finding = if counts.is_empty() {
        Finding::new(
            "cpu_governor",
            Status::Unknown,
            "not exposed (no cpufreq: a VM, or the firmware controls frequency)",
        )
        .fix("none from inside the guest; on bare metal set the BIOS power profile to performance")
    } else {
        let shown: Vec<String> = counts
            .iter()
            .map(|(g, n)| format!("{g} on {n} CPU(s)"))
            .collect();
        let all_performance = counts.iter().all(|(g, _)| g == "performance");
        let status = if all_performance {
            Status::Ok
        } else {
            Status::Warn
        };
        Finding::new("cpu_governor", status, shown.join(", "))
    };
    with_defaults(finding, why, fix)
}

pub fn transparent_hugepages(host: &Host) -> Finding {
    let path = "/sys/kernel/mm/transparent_hugepage/enabled";
    let why = "THP=always makes the kernel compact memory and collapse pages in the background \
               (khugepaged) and on page faults, stalling shards for milliseconds at random";
    let fix = format!("millrace-tune apply, or echo madvise > {path} (persist: transparent_hugepage=madvise on the kernel command line)");
    let finding = match host
        .read(path)
        .as_deref()
        .and_then(selected_choice)
        .as_deref()
    {
        Some(mode @ ("madvise" | "never")) => {
            Finding::new("transparent_hugepages", Status::Ok, mode)
        }
        Some("always") => Finding::new("transparent_hugepages", Status::Warn, "always"),
        Some(other) => Finding::new("transparent_hugepages", Status::Unknown, other),
        None => Finding::new(
            "transparent_hugepages",
            Status::Ok,
            "not built into this kernel",
        ),
    };
    with_defaults(finding, why, &fix)
}

pub fn swappiness(host: &Host) -> Finding {
    let why = "a high vm.swappiness lets the kernel swap out broker memory (batch cache, indexes) \
               to keep page cache; a swapped-in page costs a disk read on the request path";
    let fix = "millrace-tune apply, or sysctl -w vm.swappiness=1 (persist in /etc/sysctl.d/90-millrace.conf)";
    let finding = match read_u64(host, "/proc/sys/vm/swappiness") {
        Some(v) if v <= SWAPPINESS_MAX => Finding::new("swappiness", Status::Ok, v.to_string()),
        Some(v) => Finding::new("swappiness", Status::Warn, v.to_string()),
        None => Finding::new(
            "swappiness",
            Status::Unknown,
            "cannot read /proc/sys/vm/swappiness",
        ),
    };
    with_defaults(finding, why, fix)
}

pub fn data_dir_filesystem(ctx: &Context) -> Finding {
    let why =
        "segments are written with O_DIRECT and made durable with fdatasync; ext4 and XFS do \
               that well on local disks, copy-on-write and network filesystems do not, and tmpfs \
               loses everything at reboot";
    let fix = format!(
        "put the data directory ({}) on a local XFS or ext4 filesystem (--data-dir / log.dirs)",
        ctx.target.data_dir.display()
    );
    let Some(mount) = &ctx.mount else {
        let shown = format!(
            "{}: no mount found in /proc/self/mountinfo",
            ctx.dir.display()
        );
        return with_defaults(
            Finding::new("data_dir_filesystem", Status::Unknown, shown),
            why,
            &fix,
        );
    };
    let free = free_bytes(&ctx.dir).map(|b| format!(", {} free", human_bytes(b)));
    let shown = format!(
        "{} on {} mounted at {} ({}{})",
        mount.fs_type,
        mount.source,
        mount.mount_point.display(),
        ctx.dir.display(),
        free.unwrap_or_default()
    );
    let status = match mount.fs_type.as_str() {
        "xfs" | "ext4" => Status::Ok,
        "tmpfs" | "ramfs" | "nfs" | "nfs4" | "cifs" | "smb3" | "9p" | "virtiofs" => Status::Fail,
        t if t.starts_with("fuse") => Status::Fail,
        _ => Status::Warn,
    };
    with_defaults(
        Finding::new("data_dir_filesystem", status, shown),
        why,
        &fix,
    )
}

pub fn data_dir_mount_options(ctx: &Context) -> Finding {
    let why = "mount options change what every write and fsync costs: sync/dirsync make each \
               write synchronous, data=journal writes data twice, nobarrier drops the cache \
               flushes acks=all relies on, atime updates turn reads into writes, and discard \
               trims every extent freed by retention and compaction as it is freed, which on \
               some devices stalls the queue (on the dev VM single discards held writes and \
               fdatasyncs up to 300 ms)";
    let Some(mount) = &ctx.mount else {
        return with_defaults(
            Finding::new("data_dir_mount_options", Status::Unknown, "no mount found"),
            why,
            "",
        );
    };
    let opts = mount.all_options();
    let has = |o: &str| opts.iter().any(|x| x == o);
    let mut problems = Vec::new();
    let mut fail = false;
    if has("ro") {
        problems.push("read-only");
        fail = true;
    }
    for (opt, what) in [
        ("sync", "sync"),
        ("dirsync", "dirsync"),
        ("data=journal", "data=journal"),
        ("nobarrier", "nobarrier"),
        ("barrier=0", "barrier=0"),
        ("strictatime", "strictatime"),
        ("discard", "discard"),
    ] {
        if has(opt) {
            problems.push(what);
        }
    }
    let shown = format!("{} ({})", opts.join(","), mount.mount_point.display());
    let status = match (fail, problems.is_empty()) {
        (true, _) => Status::Fail,
        (false, false) => Status::Warn,
        (false, true) => Status::Ok,
    };
    let mut fix = format!(
        "remount without {}: edit the options in /etc/fstab for {}, then mount -o remount {}",
        if problems.is_empty() {
            "-".to_string()
        } else {
            problems.join(", ")
        },
        mount.mount_point.display(),
        mount.mount_point.display()
    );
    if has("discard") {
        fix.push_str(
            ", and trim on a schedule instead (systemctl enable --now fstrim.timer, or fstrim \
             from cron in a quiet hour)",
        );
    }
    if problems.is_empty() {
        fix = "none needed; noatime saves an inode update on reads (relatime already limits it)"
            .to_string();
    }
    with_defaults(
        Finding::new("data_dir_mount_options", status, shown),
        why,
        &fix,
    )
}

pub fn block_scheduler(ctx: &Context) -> Finding {
    let why = "NVMe devices order requests themselves; a software I/O scheduler adds CPU and \
               latency to every group commit. Rotating disks want mq-deadline instead";
    let Some(dev) = &ctx.device else {
        return no_device("block_scheduler", ctx, why);
    };
    let path = dev.queue_path("scheduler");
    let fix = format!(
        "millrace-tune apply, or echo none > {} (persist with a udev rule)",
        path.display()
    );
    let Some(active) = ctx.host.read(&path).as_deref().and_then(selected_choice) else {
        let shown = format!("{}: cannot read {}", dev.disk, path.display());
        return with_defaults(
            Finding::new("block_scheduler", Status::Unknown, shown),
            why,
            &fix,
        );
    };
    let rotational = read_u64(ctx.host, dev.queue_path("rotational")) == Some(1);
    let status = match (dev.is_nvme(), rotational, active.as_str()) {
        (true, _, "none") => Status::Ok,
        (true, _, _) => Status::Warn,
        (false, true, "mq-deadline" | "bfq") => Status::Ok,
        (false, true, _) => Status::Warn,
        (false, false, "none" | "mq-deadline") => Status::Ok,
        (false, false, _) => Status::Warn,
    };
    let kind = if dev.is_nvme() {
        "NVMe"
    } else if rotational {
        "rotational"
    } else {
        "non-rotational"
    };
    let shown = format!("{active} on {} ({kind})", dev.disk);
    let fix = if rotational {
        fix.replace("echo none", "echo mq-deadline")
    } else {
        fix
    };
    with_defaults(Finding::new("block_scheduler", status, shown), why, &fix)
}

pub fn block_nr_requests(ctx: &Context) -> Finding {
    let why = "nr_requests caps the requests the block layer queues for the device; every shard \
               flushes its own segments, and a short queue makes their group commits wait in turn";
    let Some(dev) = &ctx.device else {
        return no_device("block_nr_requests", ctx, why);
    };
    let path = dev.queue_path("nr_requests");
    let fix = format!("echo 256 > {} (persist with a udev rule)", path.display());
    let finding = match read_u64(ctx.host, &path) {
        Some(n) if n >= NR_REQUESTS_MIN => Finding::new(
            "block_nr_requests",
            Status::Ok,
            format!("{n} on {}", dev.disk),
        ),
        Some(n) => Finding::new(
            "block_nr_requests",
            Status::Warn,
            format!("{n} on {}", dev.disk),
        ),
        None => Finding::new(
            "block_nr_requests",
            Status::Unknown,
            format!("cannot read {}", path.display()),
        ),
    };
    with_defaults(finding, why, &fix)
}

pub fn block_write_cache(ctx: &Context) -> Finding {
    let why = "with a volatile write cache (write back) each fdatasync also sends a cache flush, \
               which is what makes acks=all durable and what the group commit pays for; write \
               through means no volatile cache or one protected against power loss";
    let Some(dev) = &ctx.device else {
        return no_device("block_write_cache", ctx, why);
    };
    let path = dev.queue_path("write_cache");
    let fix = format!(
        "none: never set {} to write through on a device without power-loss protection \
         (that skips the flushes and loses acknowledged data on power failure)",
        path.display()
    );
    let finding = match ctx.host.read(&path) {
        Some(mode) if mode == "write back" || mode == "write through" => Finding::new(
            "block_write_cache",
            Status::Ok,
            format!("{mode} on {}", dev.disk),
        ),
        Some(other) => Finding::new("block_write_cache", Status::Unknown, other),
        None => Finding::new(
            "block_write_cache",
            Status::Unknown,
            format!("cannot read {}", path.display()),
        ),
    };
    with_defaults(finding, why, &fix)
}

pub fn nofile(host: &Host) -> Finding {
    let why = "every segment, index, client connection and cached sendfile descriptor (256 per \
               shard) holds a file descriptor; at the limit the broker cannot open segments or \
               accept clients";
    let fix = format!(
        "systemd: LimitNOFILE={NOFILE_SUGGESTED}; /etc/security/limits.conf: millrace soft nofile \
         {NOFILE_SUGGESTED} and millrace hard nofile {NOFILE_SUGGESTED} (per process: it applies \
         to the next start)"
    );
    let finding = match rlimit(host, "Max open files") {
        Some((soft, hard)) => {
            let shown = format!(
                "soft {}, hard {}",
                limit_text(soft, |n| n.to_string()),
                limit_text(hard, |n| n.to_string())
            );
            let ok = soft.is_none_or(|s| s >= NOFILE_WANTED);
            Finding::new("nofile", if ok { Status::Ok } else { Status::Warn }, shown)
        }
        None => Finding::new(
            "nofile",
            Status::Unknown,
            "no Max open files in /proc/self/limits",
        ),
    };
    with_defaults(finding, why, &fix)
}

pub fn aio_max_nr(host: &Host) -> Finding {
    let why = "fs.aio-max-nr caps in-flight Linux AIO requests host-wide; Millrace's io_uring \
               rings do not count against it, but libaio users beside it (fio --ioengine=libaio \
               during probes, databases) fail with EAGAIN when it is exhausted";
    let fix = "sysctl -w fs.aio-max-nr=1048576 (persist in /etc/sysctl.d/90-millrace.conf)";
    let used = read_u64(host, "/proc/sys/fs/aio-nr");
    let finding = match read_u64(host, "/proc/sys/fs/aio-max-nr") {
        Some(max) => {
            let in_use = used.map(|u| format!(", {u} in use")).unwrap_or_default();
            let crowded = used.is_some_and(|u| u * 5 > max * 4);
            let status = if max < AIO_MAX_NR_MIN || crowded {
                Status::Warn
            } else {
                Status::Ok
            };
            Finding::new("aio_max_nr", status, format!("{max}{in_use}"))
        }
        None => Finding::new(
            "aio_max_nr",
            Status::Unknown,
            "cannot read /proc/sys/fs/aio-max-nr",
        ),
    };
    with_defaults(finding, why, fix)
}

pub fn nr_open(host: &Host) -> Finding {
    let why = "fs.nr_open is the ceiling for any process's RLIMIT_NOFILE; LimitNOFILE above it \
               makes the service fail to start";
    let fix = format!(
        "sysctl -w fs.nr_open={NOFILE_SUGGESTED} (persist in /etc/sysctl.d/90-millrace.conf)"
    );
    let finding = match read_u64(host, "/proc/sys/fs/nr_open") {
        Some(n) if n >= NOFILE_SUGGESTED => Finding::new("nr_open", Status::Ok, n.to_string()),
        Some(n) => Finding::new("nr_open", Status::Warn, n.to_string()),
        None => Finding::new(
            "nr_open",
            Status::Unknown,
            "cannot read /proc/sys/fs/nr_open",
        ),
    };
    with_defaults(finding, why, &fix)
}

/// Soft and hard limit of one `/proc/self/limits` row; `None` inside means unlimited.
pub fn rlimit(host: &Host, row: &str) -> Option<(Option<u64>, Option<u64>)> {
    let text = host.read("/proc/self/limits")?;
    let line = text.lines().find(|l| l.starts_with(row))?;
    let mut fields = line[row.len()..].split_whitespace();
    let parse = |f: Option<&str>| -> Option<Option<u64>> {
        match f? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some((parse(fields.next())?, parse(fields.next())?))
}

/// Free bytes for an unprivileged writer on the filesystem holding `path` (statvfs).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

pub(crate) fn read_u64(host: &Host, path: impl AsRef<Path>) -> Option<u64> {
    host.read(path)?.trim().parse().ok()
}

fn limit_text(limit: Option<u64>, show: impl Fn(u64) -> String) -> String {
    limit.map_or_else(|| "unlimited".to_string(), show)
}

/// Fills `why` and, for a finding that set none, `fix`.
fn with_defaults(mut finding: Finding, why: &str, fix: &str) -> Finding {
    if finding.why.is_empty() {
        finding.why = why.to_string();
    }
    if finding.fix.is_empty() {
        finding.fix = if fix.is_empty() {
            "none".to_string()
        } else {
            fix.to_string()
        };
    }
    finding
}

fn no_device(name: &'static str, ctx: &Context, why: &str) -> Finding {
    let shown = match &ctx.mount {
        Some(m) => format!(
            "no block device behind {} ({} {})",
            m.mount_point.display(),
            m.fs_type,
            m.source
        ),
        None => "no mount found for the data directory".to_string(),
    };
    Finding::new(name, Status::Unknown, shown)
        .why(why)
        .fix("put the data directory on a local block device to tune its queue")
}

pub mod nic;

#[cfg(test)]
mod tests;
