//! `millrace-tune apply`: the runtime changes that are safe to make on a running host.
//!
//! Safe means: reversible by writing the old value back, effective at once, and never a
//! reboot-level change (kernel command line, isolcpus, firmware). What needs a reboot, a
//! policy decision (io_uring_disabled) or a restart of the broker (resource limits are per
//! process) is printed as advice, never written. Each write is read back; a write the kernel
//! refuses is reported for that item and the others still run.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::checks::{read_u64, Context, NOFILE_SUGGESTED};
use crate::host::{selected_choice, Host};

/// `vm.swappiness` apply sets: keep broker memory resident, swap only to avoid the OOM killer.
pub const SWAPPINESS_TARGET: u64 = 1;

/// One planned step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Write `to` into the kernel file `path`, which holds `from` now.
    Write {
        item: &'static str,
        path: PathBuf,
        from: String,
        to: String,
    },
    /// Nothing to change, and why.
    Keep { item: &'static str, note: String },
    /// A change this tool does not make, with the line that makes it.
    Advice { item: &'static str, text: String },
}

/// The steps for this host, in a fixed order.
pub fn plan(ctx: &Context) -> Vec<Step> {
    let mut steps = vec![transparent_hugepages(ctx.host), swappiness(ctx.host)];
    steps.push(block_scheduler(ctx));
    steps.extend(cpu_governor(ctx.host));
    steps.extend(advice(ctx));
    steps
}

/// Carries out (or with `dry_run` only describes) the steps. Returns the report and whether
/// every write succeeded.
pub fn run(host: &Host, steps: &[Step], dry_run: bool) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    for step in steps {
        match step {
            Step::Write {
                item,
                path,
                from,
                to,
            } => {
                let shown = path.display();
                if dry_run {
                    let _ = writeln!(out, "would change  {item:22} {shown}: {from} -> {to}");
                    continue;
                }
                match write_checked(host, path, to) {
                    Ok(()) => {
                        let _ = writeln!(out, "changed       {item:22} {shown}: {from} -> {to}");
                    }
                    Err(e) => {
                        ok = false;
                        let _ = writeln!(out, "error         {item:22} {shown}: {e}");
                    }
                }
            }
            Step::Keep { item, note } => {
                let _ = writeln!(out, "unchanged     {item:22} {note}");
            }
            Step::Advice { item, text } => {
                let _ = writeln!(out, "advice        {item:22} {text}");
            }
        }
    }
    (out, ok)
}

fn write_checked(host: &Host, path: &PathBuf, to: &str) -> Result<(), String> {
    host.write(path, to).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => "; needs root, or the file is read-only",
            _ => "",
        };
        format!("cannot write {to:?}: {e}{hint}")
    })?;
    let now = host.read(path).and_then(|t| selected_choice(&t));
    match now {
        Some(v) if v == to => Ok(()),
        other => Err(format!("wrote {to:?} but the kernel reports {other:?}")),
    }
}

fn transparent_hugepages(host: &Host) -> Step {
    let item = "transparent_hugepages";
    let path = PathBuf::from("/sys/kernel/mm/transparent_hugepage/enabled");
    match host.read(&path).as_deref().and_then(selected_choice) {
        Some(from) if from == "always" => Step::Write {
            item,
            path,
            from,
            to: "madvise".to_string(),
        },
        Some(mode) => Step::Keep {
            item,
            note: format!("already {mode}"),
        },
        None => Step::Keep {
            item,
            note: "not present in this kernel".to_string(),
        },
    }
}

fn swappiness(host: &Host) -> Step {
    let item = "swappiness";
    let path = PathBuf::from("/proc/sys/vm/swappiness");
    match read_u64(host, &path) {
        Some(v) if v > SWAPPINESS_TARGET => Step::Write {
            item,
            path,
            from: v.to_string(),
            to: SWAPPINESS_TARGET.to_string(),
        },
        Some(v) => Step::Keep {
            item,
            note: format!("already {v}"),
        },
        None => Step::Keep {
            item,
            note: "cannot read /proc/sys/vm/swappiness".to_string(),
        },
    }
}

fn block_scheduler(ctx: &Context) -> Step {
    let item = "block_scheduler";
    let Some(dev) = &ctx.device else {
        return Step::Keep {
            item,
            note: format!("no block device behind {}", ctx.dir.display()),
        };
    };
    let path = dev.queue_path("scheduler");
    let text = ctx.host.read(&path).unwrap_or_default();
    let Some(active) = selected_choice(&text) else {
        return Step::Keep {
            item,
            note: format!("cannot read {}", path.display()),
        };
    };
    if !dev.is_nvme() {
        return Step::Keep {
            item,
            note: format!("{} is not NVMe; left at {active}", dev.disk),
        };
    }
    let offered = text
        .split_whitespace()
        .any(|w| w.trim_matches(['[', ']']) == "none");
    if active == "none" || !offered {
        let note = if offered {
            "already none"
        } else {
            "none is not offered"
        };
        return Step::Keep {
            item,
            note: format!("{}: {note}", dev.disk),
        };
    }
    Step::Write {
        item,
        path,
        from: active,
        to: "none".to_string(),
    }
}

fn cpu_governor(host: &Host) -> Vec<Step> {
    let item = "cpu_governor";
    let mut steps = Vec::new();
    for cpu in host.list("/sys/devices/system/cpu") {
        if cpu
            .strip_prefix("cpu")
            .is_none_or(|n| n.parse::<u32>().is_err())
        {
            continue;
        }
        let dir = format!("/sys/devices/system/cpu/{cpu}/cpufreq");
        let Some(from) = host.read(format!("{dir}/scaling_governor")) else {
            continue;
        };
        let offered = host
            .read(format!("{dir}/scaling_available_governors"))
            .is_some_and(|a| a.split_whitespace().any(|g| g == "performance"));
        if from != "performance" && offered {
            steps.push(Step::Write {
                item,
                path: PathBuf::from(format!("{dir}/scaling_governor")),
                from,
                to: "performance".to_string(),
            });
        }
    }
    if steps.is_empty() {
        let exposed = host.list("/sys/devices/system/cpu").iter().any(|c| {
            host.exists(format!(
                "/sys/devices/system/cpu/{c}/cpufreq/scaling_governor"
            ))
        });
        let note = if exposed {
            "already performance (or not offered)"
        } else {
            "not exposed (no cpufreq on this host)"
        };
        steps.push(Step::Keep {
            item,
            note: note.to_string(),
        });
    }
    steps
}

/// Lines for what apply never writes: limits are per process, sysctl writes do not survive a
/// reboot, isolation and io_uring policy are the operator's call.
fn advice(ctx: &Context) -> Vec<Step> {
    let need = ctx.target.memlock_needed_bytes();
    let kib = need.div_ceil(1024).max(64);
    vec![
        Step::Advice {
            item: "nofile",
            text: format!(
                "per process, not changed here: LimitNOFILE={NOFILE_SUGGESTED} in the unit, or \
                 'millrace - nofile {NOFILE_SUGGESTED}' in /etc/security/limits.conf"
            ),
        },
        Step::Advice {
            item: "memlock",
            text: format!(
                "per process, not changed here: LimitMEMLOCK={need} in the unit, or \
                 'millrace - memlock {kib}' in /etc/security/limits.conf ({} shards x {} bytes)",
                ctx.target.cores, ctx.target.io_memory_bytes
            ),
        },
        Step::Advice {
            item: "persist",
            text: format!(
                "sysctl and sysfs writes last until reboot: put vm.swappiness = \
                 {SWAPPINESS_TARGET} in /etc/sysctl.d/90-millrace.conf and \
                 transparent_hugepage=madvise on the kernel command line"
            ),
        },
        Step::Advice {
            item: "not applied",
            text: "CPU isolation (kernel command line, reboot) and kernel.io_uring_disabled \
                   (security policy) are left to the operator; see millrace-tune check"
                .to_string(),
        },
    ]
}
