//! NIC checks: where the receive interrupts land and how many receive queues spread them.
//!
//! Only interfaces backed by a device (`/sys/class/net/<if>/device`) count: loopback, bridges,
//! veth and ifb interfaces have no interrupts of their own.

use std::collections::BTreeMap;

use super::{with_defaults, Context, Finding, Status};
use crate::host::{format_cpu_list, parse_cpu_list, Host};

/// A NIC and its queue interrupts.
#[derive(Debug, PartialEq)]
pub struct Nic {
    pub name: String,
    /// (irq, action name, CPUs it may run on)
    pub irqs: Vec<(u32, String, Vec<usize>)>,
    pub rx_queues: usize,
    /// Receive queues with a non-empty `rps_cpus` mask (receive packet steering).
    pub rps_queues: usize,
}

/// Interfaces with a device behind them; `Err` carries the device-less names for the report.
pub fn nics(host: &Host) -> Result<Vec<Nic>, Vec<String>> {
    let all = host.list("/sys/class/net");
    let interrupts = parse_interrupts(&host.read("/proc/interrupts").unwrap_or_default());
    let mut found = Vec::new();
    for name in &all {
        if name == "lo" || !host.exists(format!("/sys/class/net/{name}/device")) {
            continue;
        }
        found.push(nic(host, name, &interrupts));
    }
    if found.is_empty() {
        return Err(all);
    }
    Ok(found)
}

pub fn irq_affinity(ctx: &Context) -> Finding {
    let why = "receive interrupts and their softirq work run on the CPUs in each IRQ's affinity; \
               all of them on one CPU make that CPU's shard serve the network for every other \
               shard, and its requests wait";
    let fix = "spread the queue IRQs: echo <cpu> > /proc/irq/<irq>/smp_affinity_list for each, \
               or irqbalance --oneshot; with isolated shard CPUs, keep IRQs on the housekeeping CPUs";
    let nics = match nics(ctx.host) {
        Ok(nics) => nics,
        Err(names) => return loopback_only("nic_irq_affinity", &names, why),
    };
    let online = ctx.online.as_ref().map_or(1, Vec::len);
    let mut used: Vec<usize> = Vec::new();
    let mut parts = Vec::new();
    for nic in &nics {
        let mut cpus: Vec<usize> = nic.irqs.iter().flat_map(|(_, _, c)| c.clone()).collect();
        cpus.sort_unstable();
        cpus.dedup();
        parts.push(format!(
            "{}: {} IRQ(s) on CPUs {}",
            nic.name,
            nic.irqs.len(),
            cpu_text(&cpus)
        ));
        used.extend(cpus);
    }
    used.sort_unstable();
    used.dedup();
    let irq_count: usize = nics.iter().map(|n| n.irqs.len()).sum();
    let status = if irq_count == 0 {
        Status::Unknown
    } else if online > 1 && used.len() == 1 {
        Status::Warn
    } else {
        Status::Ok
    };
    with_defaults(
        Finding::new("nic_irq_affinity", status, parts.join("; ")),
        why,
        fix,
    )
}

pub fn rss(ctx: &Context) -> Finding {
    let why = "receive-side scaling gives each CPU its own receive queue; with one queue and no \
               packet steering, one CPU takes every incoming packet for all shards";
    let nics = match nics(ctx.host) {
        Ok(nics) => nics,
        Err(names) => return loopback_only("nic_rss", &names, why),
    };
    let online = ctx.online.clone().unwrap_or_default();
    let mut parts = Vec::new();
    let mut short = Vec::new();
    for nic in &nics {
        parts.push(format!(
            "{}: {} rx queue(s), RPS on {}",
            nic.name, nic.rx_queues, nic.rps_queues
        ));
        if online.len() > 1 && nic.rx_queues < 2 && nic.rps_queues == 0 {
            short.push(nic.name.clone());
        }
    }
    let status = if short.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    let fix = match short.first() {
        Some(name) => format!(
            "ethtool -L {name} combined {} if the NIC has more queues; otherwise steer packets: \
             echo {} > /sys/class/net/{name}/queues/rx-0/rps_cpus",
            online.len(),
            cpu_mask(&online)
        ),
        None => "none".to_string(),
    };
    with_defaults(Finding::new("nic_rss", status, parts.join("; ")), why, &fix)
}

/// `irq -> action name` from `/proc/interrupts` (numbered lines only).
pub fn parse_interrupts(text: &str) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((irq, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(irq) = irq.parse::<u32>() else {
            continue;
        };
        if let Some(name) = rest.split_whitespace().next_back() {
            out.insert(irq, name.to_string());
        }
    }
    out
}

/// A CPU mask as the kernel writes it: hex, 32 bits per comma-separated group.
pub fn cpu_mask(cpus: &[usize]) -> String {
    let groups = cpus.iter().max().map_or(1, |m| m / 32 + 1);
    let mut words = vec![0u32; groups];
    for &cpu in cpus {
        words[cpu / 32] |= 1 << (cpu % 32);
    }
    let parts: Vec<String> = words
        .iter()
        .rev()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                format!("{w:x}")
            } else {
                format!("{w:08x}")
            }
        })
        .collect();
    parts.join(",")
}

fn nic(host: &Host, name: &str, interrupts: &BTreeMap<u32, String>) -> Nic {
    let queues = host.list(format!("/sys/class/net/{name}/queues"));
    let rx: Vec<&String> = queues.iter().filter(|q| q.starts_with("rx-")).collect();
    let rps_queues = rx
        .iter()
        .filter(|q| {
            let mask = host.read(format!("/sys/class/net/{name}/queues/{q}/rps_cpus"));
            mask.is_some_and(|m| m.chars().any(|c| c.is_ascii_hexdigit() && c != '0'))
        })
        .count();
    let mut irqs = Vec::new();
    for irq in device_irqs(host, name, interrupts) {
        let action = interrupts.get(&irq).cloned().unwrap_or_default();
        if action.contains("config") {
            continue; // virtio's configuration-change interrupt carries no packets
        }
        let cpus = ["effective_affinity_list", "smp_affinity_list"]
            .iter()
            .find_map(|f| host.read(format!("/proc/irq/{irq}/{f}")))
            .and_then(|t| parse_cpu_list(&t))
            .unwrap_or_default();
        irqs.push((irq, action, cpus));
    }
    Nic {
        name: name.to_string(),
        irqs,
        rx_queues: rx.len(),
        rps_queues,
    }
}

/// The device's MSI interrupts (on the device or, for virtio, its PCI parent) that appear in
/// `/proc/interrupts`; failing that, interrupts whose action names the interface.
fn device_irqs(host: &Host, name: &str, interrupts: &BTreeMap<u32, String>) -> Vec<u32> {
    if let Some(dev) = host.canonical(format!("/sys/class/net/{name}/device")) {
        for dir in [Some(dev.as_path()), dev.parent()].into_iter().flatten() {
            let msi = host.list(dir.join("msi_irqs"));
            let irqs: Vec<u32> = msi
                .iter()
                .filter_map(|n| n.parse().ok())
                .filter(|irq| interrupts.contains_key(irq))
                .collect();
            if !irqs.is_empty() {
                return irqs;
            }
        }
    }
    interrupts
        .iter()
        .filter(|(_, action)| action.contains(name))
        .map(|(irq, _)| *irq)
        .collect()
}

fn cpu_text(cpus: &[usize]) -> String {
    if cpus.is_empty() {
        "unknown".to_string()
    } else {
        format_cpu_list(cpus)
    }
}

fn loopback_only(name: &'static str, interfaces: &[String], why: &str) -> Finding {
    let others: Vec<&String> = interfaces.iter().filter(|n| *n != "lo").collect();
    let shown = if others.is_empty() {
        "loopback only: no NIC on this host, nothing to place".to_string()
    } else {
        let names: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
        format!(
            "no NIC with a device: only lo and virtual {}",
            names.join(", ")
        )
    };
    with_defaults(Finding::new(name, Status::Ok, shown), why, "none")
}
