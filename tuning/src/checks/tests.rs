//! Checks against fake /proc and /sys trees: real-looking sample files, not mocks. The sample
//! host is a bare-metal box with one NVMe disk and one 4-queue NIC, tuned badly on purpose.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::apply;

pub(crate) struct Fake {
    pub root: PathBuf,
    pub host: Host,
}

impl Fake {
    pub fn put(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).unwrap()
    }

    fn link(&self, rel: &str, target: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
";

const STATUS: &str = "\
Name:\tmillrace-tune
Umask:\t0022
State:\tR (running)
NoNewPrivs:\t0
Seccomp:\t0
Seccomp_filters:\t0
Speculation_Store_Bypass:\tthread vulnerable
";

const MOUNTINFO: &str = "\
22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
23 28 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
";

const INTERRUPTS: &str = "\
            CPU0       CPU1       CPU2       CPU3       CPU4       CPU5       CPU6       CPU7
   0:         31          0          0          0          0          0          0          0  IR-IO-APIC    2-edge      timer
 120:          0          0          0          0          0          0          0          0  IR-PCI-MSIX-0000:01:00.0    0-edge      mlx5_async0@pci:0000:01:00.0
 121:    9120331          0          0          0          0          0          0          0  IR-PCI-MSIX-0000:01:00.0    1-edge      mlx5_comp0@pci:0000:01:00.0
 122:    8812001          0          0          0          0          0          0          0  IR-PCI-MSIX-0000:01:00.0    2-edge      mlx5_comp1@pci:0000:01:00.0
 130:        120          0          0          0          0          0          0          0  IR-PCI-MSIX-0000:02:00.0    0-edge      nvme0q0
NMI:          0          0          0          0          0          0          0          0   Non-maskable interrupts
";

/// The sample host, and a data directory that exists on the real machine (the fake
/// mountinfo maps `/` to the NVMe partition, so any path lands there).
pub(crate) fn fake(tag: &str) -> Fake {
    let root =
        std::env::temp_dir().join(format!("millrace-tune-fake-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    let f = Fake {
        root: root.clone(),
        host: Host::under(&root),
    };
    f.put("proc/sys/kernel/io_uring_disabled", "0\n");
    f.put("proc/self/status", STATUS);
    f.put("proc/self/limits", LIMITS);
    f.put("proc/self/mountinfo", MOUNTINFO);
    f.put("proc/interrupts", INTERRUPTS);
    f.put("proc/sys/vm/swappiness", "60\n");
    f.put("proc/sys/fs/aio-max-nr", "65536\n");
    f.put("proc/sys/fs/aio-nr", "0\n");
    f.put("proc/sys/fs/nr_open", "1048576\n");
    f.put("sys/devices/system/cpu/online", "0-7\n");
    f.put("sys/devices/system/cpu/isolated", "\n");
    for cpu in 0..8 {
        let dir = format!("sys/devices/system/cpu/cpu{cpu}/cpufreq");
        let gov = if cpu < 6 { "powersave" } else { "performance" };
        f.put(&format!("{dir}/scaling_governor"), &format!("{gov}\n"));
        f.put(
            &format!("{dir}/scaling_available_governors"),
            "performance powersave\n",
        );
    }
    f.put(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    );
    let part = "sys/devices/pci0000:00/0000:00:02.0/nvme/nvme0/nvme0n1/nvme0n1p2";
    f.put(&format!("{part}/partition"), "2\n");
    f.link(
        "sys/dev/block/259:2",
        "../../devices/pci0000:00/0000:00:02.0/nvme/nvme0/nvme0n1/nvme0n1p2",
    );
    f.put(
        "sys/block/nvme0n1/queue/scheduler",
        "[mq-deadline] kyber bfq none\n",
    );
    f.put("sys/block/nvme0n1/queue/nr_requests", "32\n");
    f.put("sys/block/nvme0n1/queue/write_cache", "write back\n");
    f.put("sys/block/nvme0n1/queue/rotational", "0\n");
    let nic = "sys/devices/pci0000:00/0000:01:00.0";
    for irq in [120, 121, 122] {
        f.put(&format!("{nic}/msi_irqs/{irq}"), "msix\n");
        f.put(&format!("proc/irq/{irq}/smp_affinity_list"), "0-7\n");
        f.put(&format!("proc/irq/{irq}/effective_affinity_list"), "0\n");
    }
    f.link(
        "sys/class/net/enp1s0/device",
        "../../../devices/pci0000:00/0000:01:00.0",
    );
    for q in 0..4 {
        f.put(
            &format!("sys/class/net/enp1s0/queues/rx-{q}/rps_cpus"),
            "00\n",
        );
    }
    f.put("sys/class/net/lo/queues/rx-0/rps_cpus", "00\n");
    f
}

pub(crate) fn target(cores: usize) -> Target {
    Target {
        cores,
        io_memory_bytes: 2 << 20,
        data_dir: std::env::temp_dir(),
        pin_cores: true,
    }
}

fn run(f: &Fake, t: &Target) -> Vec<Finding> {
    let ctx = Context::gather(&f.host, t).unwrap();
    run_all(&ctx)
}

fn find<'a>(findings: &'a [Finding], name: &str) -> &'a Finding {
    findings.iter().find(|x| x.name == name).unwrap()
}

#[test]
fn sample_host_reports_each_finding() {
    let f = fake("sample");
    let all = run(&f, &target(4));
    let names: Vec<&str> = all.iter().map(|x| x.name).collect();
    assert_eq!(names, CHECK_NAMES);
    for x in &all {
        assert!(
            !x.observed.is_empty() && !x.why.is_empty() && !x.fix.is_empty(),
            "{x:?}"
        );
    }
    let status = |n| find(&all, n).status;
    assert_eq!(status("io_uring"), Status::Ok);
    assert_eq!(status("seccomp"), Status::Ok);
    assert_eq!(status("memlock"), Status::Ok, "{:?}", find(&all, "memlock"));
    assert_eq!(
        find(&all, "memlock").observed,
        "soft 8 MiB, hard 8 MiB; 8 MiB needed"
    );
    assert_eq!(status("cpu_count"), Status::Ok);
    assert_eq!(status("cpu_isolation"), Status::Warn);
    assert_eq!(status("cpu_governor"), Status::Warn);
    assert_eq!(
        find(&all, "cpu_governor").observed,
        "powersave on 6 CPU(s), performance on 2 CPU(s)"
    );
    assert_eq!(status("transparent_hugepages"), Status::Warn);
    assert_eq!(status("swappiness"), Status::Warn);
    assert_eq!(status("data_dir_filesystem"), Status::Ok);
    assert!(find(&all, "data_dir_filesystem")
        .observed
        .starts_with("ext4 on /dev/nvme0n1p2"));
    assert_eq!(status("data_dir_mount_options"), Status::Ok);
    assert_eq!(status("block_scheduler"), Status::Warn);
    assert_eq!(
        find(&all, "block_scheduler").observed,
        "mq-deadline on nvme0n1 (NVMe)"
    );
    assert_eq!(status("block_nr_requests"), Status::Warn);
    assert_eq!(status("block_write_cache"), Status::Ok);
    assert_eq!(status("nic_irq_affinity"), Status::Warn);
    assert_eq!(
        find(&all, "nic_irq_affinity").observed,
        "enp1s0: 3 IRQ(s) on CPUs 0"
    );
    assert_eq!(status("nic_rss"), Status::Ok);
    assert_eq!(
        find(&all, "nic_rss").observed,
        "enp1s0: 4 rx queue(s), RPS on 0"
    );
    assert_eq!(status("nofile"), Status::Warn);
    assert_eq!(status("aio_max_nr"), Status::Ok);
    assert_eq!(status("nr_open"), Status::Ok);
    assert_eq!(worst(&all), Status::Warn);
}

#[test]
fn memlock_fails_when_shards_need_more() {
    let f = fake("memlock");
    let all = run(&f, &target(8));
    assert_eq!(
        find(&all, "memlock").observed,
        "soft 8 MiB, hard 8 MiB; 16 MiB needed"
    );
    assert_eq!(find(&all, "memlock").status, Status::Fail);
    assert!(find(&all, "memlock").fix.contains("LimitMEMLOCK=16777216"));
    assert_eq!(worst(&all), Status::Fail);
    let all = run(&f, &target(4));
    assert_eq!(find(&all, "memlock").status, Status::Ok);
    f.put(
        "proc/self/limits",
        &LIMITS.replace("8388608              8388608", "unlimited unlimited"),
    );
    let all = run(&f, &target(64));
    assert_eq!(find(&all, "memlock").status, Status::Ok);
    assert_eq!(find(&all, "cpu_count").status, Status::Fail);
    let unpinned = Target {
        pin_cores: false,
        ..target(64)
    };
    assert_eq!(find(&run(&f, &unpinned), "cpu_count").status, Status::Warn);
}

#[test]
fn io_uring_and_seccomp_states() {
    let f = fake("uring");
    for (value, want) in [("0", Status::Ok), ("1", Status::Warn), ("2", Status::Fail)] {
        f.put("proc/sys/kernel/io_uring_disabled", value);
        assert_eq!(io_uring(&f.host).status, want, "io_uring_disabled={value}");
    }
    fs::remove_file(f.root.join("proc/sys/kernel/io_uring_disabled")).unwrap();
    assert_eq!(io_uring(&f.host).status, Status::Unknown);
    f.put(
        "proc/self/status",
        &STATUS.replace(
            "Seccomp:\t0\nSeccomp_filters:\t0",
            "Seccomp:\t2\nSeccomp_filters:\t3",
        ),
    );
    let s = seccomp(&f.host);
    assert_eq!(
        (s.status, s.observed.as_str()),
        (
            Status::Warn,
            "filter mode, 3 filter(s): io_uring may be denied"
        )
    );
    f.put(
        "proc/self/status",
        &STATUS.replace("Seccomp:\t0", "Seccomp:\t1"),
    );
    assert_eq!(seccomp(&f.host).status, Status::Fail);
}

#[test]
fn cpu_isolation_covers_the_shard_cpus() {
    let f = fake("iso");
    f.put("sys/devices/system/cpu/isolated", "2-7\n");
    let all = run(&f, &target(6));
    let iso = find(&all, "cpu_isolation");
    assert_eq!(
        iso.observed,
        "isolated 2-7; shards on 0-5 (4 of 6 isolated)"
    );
    assert_eq!(iso.status, Status::Warn);
    f.put("sys/devices/system/cpu/isolated", "0-7\n");
    assert_eq!(
        find(&run(&f, &target(6)), "cpu_isolation").status,
        Status::Ok
    );
}

#[test]
fn governor_absent_in_vms_is_not_exposed() {
    let f = fake("gov");
    for cpu in 0..8 {
        fs::remove_dir_all(
            f.root
                .join(format!("sys/devices/system/cpu/cpu{cpu}/cpufreq")),
        )
        .unwrap();
    }
    let g = cpu_governor(&f.host);
    assert_eq!(g.status, Status::Unknown);
    assert!(g.observed.starts_with("not exposed"));
}

#[test]
fn thp_swappiness_and_limits_thresholds() {
    let f = fake("vm");
    f.put(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "always madvise [never]\n",
    );
    assert_eq!(transparent_hugepages(&f.host).status, Status::Ok);
    f.put("proc/sys/vm/swappiness", "1\n");
    assert_eq!(swappiness(&f.host).status, Status::Ok);
    f.put("proc/sys/fs/nr_open", "65536\n");
    assert_eq!(nr_open(&f.host).status, Status::Warn);
    f.put("proc/sys/fs/aio-nr", "60000\n");
    assert_eq!(aio_max_nr(&f.host).status, Status::Warn);
    assert_eq!(
        rlimit(&f.host, "Max open files"),
        Some((Some(1024), Some(524288)))
    );
    assert_eq!(rlimit(&f.host, "Max cpu time"), Some((None, None)));
}

#[test]
fn filesystems_and_mount_options() {
    let f = fake("fs");
    let swap = |line: &str| f.put("proc/self/mountinfo", &format!("{MOUNTINFO}{line}\n"));
    swap("40 28 0:45 / / rw,nosuid,nodev - tmpfs tmpfs rw,size=1048576k");
    let all = run(&f, &target(2));
    assert_eq!(find(&all, "data_dir_filesystem").status, Status::Fail);
    assert_eq!(find(&all, "block_scheduler").status, Status::Unknown);
    assert!(find(&all, "block_scheduler")
        .observed
        .starts_with("no block device behind /"));
    swap("40 28 259:2 / / rw,noatime,sync - ext4 /dev/nvme0n1p2 rw,data=journal");
    let all = run(&f, &target(2));
    let opts = find(&all, "data_dir_mount_options");
    assert_eq!(opts.status, Status::Warn);
    assert!(opts.fix.contains("sync, data=journal"), "{}", opts.fix);
    assert!(!opts.fix.contains("fstrim"), "{}", opts.fix);
    swap("40 28 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw,discard");
    let all = run(&f, &target(2));
    let opts = find(&all, "data_dir_mount_options");
    assert_eq!(opts.status, Status::Warn);
    assert!(opts.fix.contains("without discard"), "{}", opts.fix);
    assert!(opts.fix.contains("fstrim.timer"), "{}", opts.fix);
    swap("40 28 259:2 / / ro,noatime - xfs /dev/nvme0n1p2 ro,attr2");
    assert_eq!(
        find(&run(&f, &target(2)), "data_dir_mount_options").status,
        Status::Fail
    );
}

#[test]
fn single_queue_nic_and_loopback_only_hosts() {
    let f = fake("nic");
    for q in 1..4 {
        fs::remove_dir_all(f.root.join(format!("sys/class/net/enp1s0/queues/rx-{q}"))).unwrap();
    }
    let all = run(&f, &target(8));
    let rss = find(&all, "nic_rss");
    assert_eq!(rss.status, Status::Warn);
    assert!(
        rss.fix
            .contains("echo ff > /sys/class/net/enp1s0/queues/rx-0/rps_cpus"),
        "{}",
        rss.fix
    );
    f.put("sys/class/net/enp1s0/queues/rx-0/rps_cpus", "0f\n");
    assert_eq!(find(&run(&f, &target(8)), "nic_rss").status, Status::Ok);
    fs::remove_dir_all(f.root.join("sys/class/net/enp1s0")).unwrap();
    let all = run(&f, &target(8));
    for name in ["nic_irq_affinity", "nic_rss"] {
        let x = find(&all, name);
        assert_eq!(x.status, Status::Ok);
        assert!(x.observed.starts_with("loopback only"), "{}", x.observed);
    }
}

#[test]
fn masks_and_interrupt_names() {
    assert_eq!(nic::cpu_mask(&[0, 1]), "3");
    assert_eq!(nic::cpu_mask(&[0, 33]), "2,00000001");
    let irqs = nic::parse_interrupts(INTERRUPTS);
    assert_eq!(
        irqs.get(&121).map(String::as_str),
        Some("mlx5_comp0@pci:0000:01:00.0")
    );
    assert_eq!(irqs.get(&0).map(String::as_str), Some("timer"));
    assert_eq!(
        irqs.len(),
        5,
        "NMI and other named rows are not numbered IRQs"
    );
}

#[test]
fn json_and_table_carry_every_check() {
    let f = fake("out");
    let t = target(2);
    let ctx = Context::gather(&f.host, &t).unwrap();
    let all = run_all(&ctx);
    let doc = crate::json::parse(&to_json(&ctx, &all).to_pretty()).unwrap();
    let checks = doc.get("checks").and_then(Json::as_array).unwrap();
    assert_eq!(checks.len(), CHECK_NAMES.len());
    let table = to_table(&all);
    assert!(table.starts_with("CHECK "));
    assert!(
        table.contains("swappiness              warn     60\n"),
        "{table}"
    );
    assert!(table.contains("fix: millrace-tune apply, or sysctl -w vm.swappiness=1"));
}

#[test]
fn apply_dry_run_writes_nothing() {
    let f = fake("dry");
    let t = target(2);
    let ctx = Context::gather(&f.host, &t).unwrap();
    let steps = apply::plan(&ctx);
    let (out, ok) = apply::run(&f.host, &steps, true);
    assert!(ok);
    assert!(out.contains("would change  transparent_hugepages  /sys/kernel/mm/transparent_hugepage/enabled: always -> madvise"), "{out}");
    assert!(out.contains("would change  swappiness             /proc/sys/vm/swappiness: 60 -> 1"));
    assert!(out.contains("would change  block_scheduler        /sys/block/nvme0n1/queue/scheduler: mq-deadline -> none"));
    assert_eq!(out.matches("would change  cpu_governor").count(), 6);
    assert!(out.contains("advice        memlock"));
    assert_eq!(f.read("proc/sys/vm/swappiness"), "60\n");
    assert_eq!(
        f.read("sys/kernel/mm/transparent_hugepage/enabled"),
        "[always] madvise never\n"
    );
    assert_eq!(
        f.read("sys/block/nvme0n1/queue/scheduler"),
        "[mq-deadline] kyber bfq none\n"
    );
}

#[test]
fn apply_writes_the_fake_tree_then_has_nothing_left() {
    let f = fake("apply");
    let t = target(2);
    let ctx = Context::gather(&f.host, &t).unwrap();
    let (out, ok) = apply::run(&f.host, &apply::plan(&ctx), false);
    assert!(ok, "{out}");
    assert!(out.contains("changed       swappiness             /proc/sys/vm/swappiness: 60 -> 1"));
    assert_eq!(f.read("proc/sys/vm/swappiness"), "1");
    assert_eq!(
        f.read("sys/kernel/mm/transparent_hugepage/enabled"),
        "madvise"
    );
    assert_eq!(f.read("sys/block/nvme0n1/queue/scheduler"), "none");
    assert_eq!(
        f.read("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "performance"
    );
    let again = apply::plan(&Context::gather(&f.host, &t).unwrap());
    assert!(
        again
            .iter()
            .all(|s| !matches!(s, apply::Step::Write { .. })),
        "{again:?}"
    );
}

#[test]
fn apply_reports_each_refused_write_and_goes_on() {
    let f = fake("refused");
    let t = target(2);
    let ctx = Context::gather(&f.host, &t).unwrap();
    let steps = apply::plan(&ctx);
    // A directory where the file was: the write fails as it would without the rights.
    fs::remove_file(f.root.join("proc/sys/vm/swappiness")).unwrap();
    fs::create_dir(f.root.join("proc/sys/vm/swappiness")).unwrap();
    let (out, ok) = apply::run(&f.host, &steps, false);
    assert!(!ok);
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("/proc/sys/vm/swappiness: cannot write \"1\""),
        "{}",
        errors[0]
    );
    assert_eq!(
        f.read("sys/kernel/mm/transparent_hugepage/enabled"),
        "madvise"
    );
}

#[test]
fn fake_paths_stay_inside_the_root() {
    let f = fake("paths");
    assert!(f.host.path("/proc/sys/vm/swappiness").starts_with(&f.root));
    assert_eq!(
        f.host.canonical("/sys/class/net/enp1s0/device").as_deref(),
        Some(Path::new("/sys/devices/pci0000:00/0000:01:00.0"))
    );
}
