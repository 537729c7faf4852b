//! `millrace-bench report A.json B.json ...`: a side-by-side table (Markdown, on stdout and
//! optionally to a file) and an SVG with two panels: latency percentiles (log scale, one line
//! per run and kind) and throughput over time (one line per run).

use std::fmt::Write as _;

use crate::cli::ReportArgs;
use crate::output::RunResult;
use crate::stats::LatencySummary;
use crate::BenchError;

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Runs the `report` command.
pub fn run(args: ReportArgs) -> Result<(), BenchError> {
    let mut runs = Vec::new();
    for path in &args.files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::Io(format!("reading {}: {e}", path.display())))?;
        let run: RunResult = serde_json::from_str(&text).map_err(|e| {
            BenchError::Usage(format!(
                "{} is not a millrace-bench result: {e}",
                path.display()
            ))
        })?;
        runs.push(run);
    }
    let table = table(&runs);
    print!("{table}");
    if let Some(path) = &args.table {
        std::fs::write(path, &table)
            .map_err(|e| BenchError::Io(format!("writing {}: {e}", path.display())))?;
    }
    std::fs::write(&args.svg, svg(&runs))
        .map_err(|e| BenchError::Io(format!("writing {}: {e}", args.svg.display())))?;
    eprintln!("wrote {}", args.svg.display());
    Ok(())
}

/// The side-by-side Markdown table.
pub fn table(runs: &[RunResult]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&RunResult) -> String| {
        rows.push((name.to_string(), runs.iter().map(f).collect()));
    };
    row("workload", &|r| r.workload.clone());
    row("broker", &|r| r.broker.name.clone());
    row("produce records/s", &|r| {
        opt(r
            .results
            .produce
            .as_ref()
            .map(|t| format!("{:.0}", t.records_per_sec)))
    });
    row("produce MB/s", &|r| {
        opt(r
            .results
            .produce
            .as_ref()
            .map(|t| format!("{:.1}", t.mb_per_sec)))
    });
    row("consume records/s", &|r| {
        opt(r
            .results
            .consume
            .as_ref()
            .map(|t| format!("{:.0}", t.records_per_sec)))
    });
    row("consume MB/s", &|r| {
        opt(r
            .results
            .consume
            .as_ref()
            .map(|t| format!("{:.1}", t.mb_per_sec)))
    });
    let names = ["p50", "p90", "p99", "p99.9", "p99.99", "max"];
    for (i, name) in names.iter().enumerate() {
        row(&format!("produce {name} ms"), &|r| {
            latency_cell(r.results.produce_latency_us.as_ref(), i)
        });
    }
    for (i, name) in names.iter().enumerate() {
        row(&format!("e2e {name} ms"), &|r| {
            latency_cell(r.results.e2e_latency_us.as_ref(), i)
        });
    }
    row("acked / consumed", &|r| {
        format!(
            "{} / {}",
            r.results.acked_records_total, r.results.consumed_records_total
        )
    });
    row("errors", &|r| {
        (r.results.produce_errors + r.results.errors.len() as u64).to_string()
    });
    row("record size, partitions", &|r| {
        format!(
            "{} B, {}",
            r.parameters["record_size"], r.parameters["partitions"]
        )
    });
    row("acks, compression", &|r| {
        format!(
            "{}, {}",
            r.parameters["acks"].as_str().unwrap_or("?"),
            r.parameters["compression_type"].as_str().unwrap_or("?")
        )
    });
    row("rate (records/s, 0 = max)", &|r| {
        r.parameters["rate"].to_string()
    });
    row("git", &|r| r.git_revision.chars().take(10).collect());
    row("host", &|r| {
        format!("{} cores, {}", r.host.cores, r.host.kernel)
    });
    let mut out = String::from("| |");
    for r in runs {
        let _ = write!(out, " {} |", r.label.replace('|', "/"));
    }
    out += "\n|---|";
    out += &"---|".repeat(runs.len());
    out += "\n";
    for (name, cells) in rows {
        let _ = write!(out, "| {name} |");
        for c in cells {
            let _ = write!(out, " {} |", c.replace('|', "/"));
        }
        out += "\n";
    }
    out
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

fn latency_cell(l: Option<&LatencySummary>, i: usize) -> String {
    match l {
        Some(l) if l.count > 0 => format!("{:.3}", l.values()[i] as f64 / 1e3),
        _ => "-".into(),
    }
}

/// The SVG: latency percentiles on top, throughput over time below.
pub fn svg(runs: &[RunResult]) -> String {
    let (w, h) = (1280.0, 760.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n"
    );
    latency_panel(
        &mut s,
        runs,
        Frame {
            x: 80.0,
            y: 40.0,
            w: 640.0,
            h: 280.0,
        },
    );
    throughput_panel(
        &mut s,
        runs,
        Frame {
            x: 80.0,
            y: 420.0,
            w: 640.0,
            h: 280.0,
        },
    );
    s += "</svg>\n";
    s
}

#[derive(Clone, Copy)]
struct Frame {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

fn latency_panel(s: &mut String, runs: &[RunResult], f: Frame) {
    let names = ["p50", "p90", "p99", "p99.9", "p99.99", "max"];
    let mut lines: Vec<(String, [u64; 6])> = Vec::new();
    for r in runs {
        if let Some(l) = r
            .results
            .produce_latency_us
            .as_ref()
            .filter(|l| l.count > 0)
        {
            lines.push((format!("{} produce", r.label), l.values()));
        }
        if let Some(l) = r.results.e2e_latency_us.as_ref().filter(|l| l.count > 0) {
            lines.push((format!("{} e2e", r.label), l.values()));
        }
    }
    let max_us = lines
        .iter()
        .flat_map(|(_, v)| v.iter())
        .copied()
        .max()
        .unwrap_or(1000);
    // Log scale from 10 µs up to the next power of ten above the largest value.
    let lo = 1.0f64;
    let hi = (max_us.max(10) as f64).log10().ceil();
    let y_of = |us: u64| f.y + f.h - ((us.max(10) as f64).log10() - lo) / (hi - lo) * f.h;
    axes(s, f, "Latency percentiles (ms, log scale)");
    for decade in (lo as i32)..=(hi as i32) {
        let us = 10f64.powi(decade);
        let y = y_of(us as u64);
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            f.x,
            f.x + f.w,
            f.x - 6.0,
            y + 4.0,
            fmt_ms(us / 1e3)
        );
    }
    let x_of = |i: usize| f.x + (i as f64 + 0.5) * f.w / names.len() as f64;
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{name}</text>",
            x_of(i),
            f.y + f.h + 16.0
        );
    }
    for (n, (label, values)) in lines.iter().enumerate() {
        let color = COLORS[n % COLORS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{:.1},{:.1}", x_of(i), y_of(v)))
            .collect();
        polyline(s, &points, color);
        legend(s, f, n, label, color);
    }
}

fn throughput_panel(s: &mut String, runs: &[RunResult], f: Frame) {
    let series: Vec<(String, Vec<(u64, f64)>)> = runs
        .iter()
        .map(|r| {
            let consume_only = r.results.produce.is_none();
            let points = r
                .results
                .timeline
                .iter()
                .map(|t| {
                    (
                        t.second,
                        if consume_only {
                            t.consumed_mb
                        } else {
                            t.produced_mb
                        },
                    )
                })
                .collect();
            let what = if consume_only { "consumed" } else { "produced" };
            (format!("{} {what}", r.label), points)
        })
        .collect();
    let max_t = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let max_v = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    axes(s, f, "Throughput per second (MB/s of record values)");
    for i in 0..=4 {
        let v = max_v * i as f64 / 4.0;
        let y = f.y + f.h - v / max_v * f.h;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>",
            f.x,
            f.x + f.w,
            f.x - 6.0,
            y + 4.0
        );
    }
    let x_of = |t: u64| f.x + t as f64 / max_t as f64 * f.w;
    for t in 0..=max_t {
        if max_t <= 20 || t % (max_t / 10).max(1) == 0 {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{t}s</text>",
                x_of(t),
                f.y + f.h + 16.0
            );
        }
    }
    for (n, (label, points)) in series.iter().enumerate() {
        let color = COLORS[n % COLORS.len()];
        let pts: Vec<String> = points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x_of(t), f.y + f.h - v / max_v * f.h))
            .collect();
        polyline(s, &pts, color);
        legend(s, f, n, label, color);
    }
}

fn axes(s: &mut String, f: Frame, title: &str) {
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"15\" font-weight=\"bold\">{}</text>\n\
         <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>",
        f.x,
        f.y - 12.0,
        escape(title),
        f.x,
        f.y,
        f.w,
        f.h
    );
}

fn polyline(s: &mut String, points: &[String], color: &str) {
    let _ = writeln!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
        points.join(" ")
    );
    for p in points {
        let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
        let _ = writeln!(
            s,
            "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{color}\"/>"
        );
    }
}

fn legend(s: &mut String, f: Frame, n: usize, label: &str, color: &str) {
    let y = f.y + 14.0 + n as f64 * 18.0;
    let x = f.x + f.w + 12.0;
    let _ = writeln!(
        s,
        "<rect x=\"{x}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        y - 10.0,
        x + 16.0,
        y,
        escape(label)
    );
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms}")
    } else {
        format!("{ms:.0}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{BrokerInfo, HostInfo, Results, Second, Throughput};

    fn result(label: &str, p99_us: u64, mb: f64) -> RunResult {
        RunResult {
            tool: "millrace-bench".into(),
            tool_version: "0".into(),
            workload: "e2e".into(),
            label: label.into(),
            broker: BrokerInfo {
                name: format!("{label} 1.0"),
                bootstrap_server: "127.0.0.1:1".into(),
            },
            parameters: serde_json::json!({"record_size": 1024, "partitions": 16,
                "acks": "all", "compression_type": "none", "rate": 1000.0}),
            git_revision: "0123456789abcdef".into(),
            host: HostInfo {
                hostname: "h".into(),
                cores: 2,
                cpu_model: "cpu".into(),
                kernel: "6.1".into(),
            },
            started_at_ms: 0,
            results: Results {
                produce: Some(Throughput::of(1000, 1_024_000, 1.0)),
                produce_latency_us: Some(LatencySummary {
                    count: 1000,
                    p50_us: 500,
                    p99_us,
                    max_us: p99_us * 3,
                    ..Default::default()
                }),
                e2e_latency_us: Some(LatencySummary::default()),
                timeline: (0..5)
                    .map(|s| Second {
                        second: s,
                        produced_mb: mb,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn table_puts_runs_side_by_side() {
        let runs = [
            result("millrace", 2_500, 100.0),
            result("kafka <a|b>", 9_000, 80.0),
        ];
        let t = table(&runs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| | millrace | kafka <a/b> |");
        assert!(t.contains("| produce p99 ms | 2.500 | 9.000 |"), "{t}");
        assert!(t.contains("| produce MB/s | 1.0 | 1.0 |"), "{t}");
        assert!(t.contains("| e2e p99 ms | - | - |"), "{t}");
        assert!(t.contains("| consume MB/s | - | - |"), "{t}");
        assert!(
            t.contains("| broker | millrace 1.0 | kafka <a/b> 1.0 |"),
            "{t}"
        );
        // Every row has one cell per run.
        assert!(lines.iter().all(|l| l.matches('|').count() == 4), "{t}");
    }

    #[test]
    fn svg_draws_a_line_per_run_and_escapes_labels() {
        let runs = [
            result("millrace", 2_500, 100.0),
            result("kafka <x>", 9_000, 80.0),
        ];
        let svg = svg(&runs);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Two latency lines (produce; e2e has no samples) and two throughput lines.
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("kafka &lt;x&gt; produce"));
        assert!(!svg.contains("kafka <x>"));
        // The higher p99 is drawn higher up (smaller y).
        let text = svg.clone();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("<polyline"))
            .collect();
        let y_at = |line: &str, i: usize| -> f64 {
            let pts = line.split('"').nth(1).unwrap();
            pts.split(' ')
                .nth(i)
                .unwrap()
                .split(',')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(y_at(lines[1], 2) < y_at(lines[0], 2));
    }

    #[test]
    fn results_round_trip_through_json() {
        let r = result("millrace", 2_500, 100.0);
        let text = serde_json::to_string(&r).unwrap();
        let back: RunResult = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.results.produce_latency_us,
            r.results.produce_latency_us
        );
        assert_eq!(back.results.timeline, r.results.timeline);
    }
}
