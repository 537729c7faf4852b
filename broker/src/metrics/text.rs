//! The Prometheus text exposition format (version 0.0.4), written by hand: one family at a time,
//! its `# HELP` and `# TYPE` lines, then its samples.
//!
//! Why not the `prometheus-client` crate: its registry and collectors must be `Send + Sync` and
//! encode synchronously from shared state, while a scrape here is a one-off merge of per-shard
//! snapshots; what remains is string formatting, checked by the tests with Python's
//! `prometheus_client` parser and `promtool check metrics`.

use crate::stats::histogram::{Histogram, BOUNDS_S};
use std::fmt::Write;

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

/// A scrape's text, being written.
#[derive(Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// Starts a family: its help and type lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// A whole histogram with these labels (buckets, `_sum`, `_count`), for the family `name`
    /// just started.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut count = 0;
        for (i, cumulative) in h.cumulative().enumerate() {
            let le = match BOUNDS_S.get(i) {
                Some(bound) => bound.to_string(),
                None => "+Inf".to_string(),
            };
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
            count = cumulative;
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        self.out.push(' ');
        push_value(&mut self.out, h.sum_seconds());
        let _ = write!(self.out, "\n{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {count}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let all = labels.iter().copied().chain(le.map(|v| ("le", v)));
        for (i, (k, v)) in all.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Integers as integers (counters stay exact up to 2^53), the rest in Rust's shortest form.
fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 9.0e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn families_samples_and_escapes() {
        let mut t = Text::default();
        t.family("x_total", Kind::Counter, "Things\\counted\nhere.");
        t.sample("x_total", &[("topic", "a\"b\\c\nd")], 3.0);
        t.sample("x_total", &[], 0.5);
        assert_eq!(
            t.finish(),
            "# HELP x_total Things\\\\counted\\nhere.\n# TYPE x_total counter\n\
             x_total{topic=\"a\\\"b\\\\c\\nd\"} 3\nx_total 0.5\n"
        );
    }

    #[test]
    fn a_histogram_has_cumulative_buckets_then_sum_and_count() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(2));
        h.observe(Duration::from_secs(100));
        let mut t = Text::default();
        t.family("lat_seconds", Kind::Histogram, "Latency.");
        t.histogram("lat_seconds", &[("request", "Produce")], &h);
        let text = t.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + BOUNDS_S.len() + 1 + 2);
        assert_eq!(
            lines[2],
            "lat_seconds_bucket{request=\"Produce\",le=\"0.00005\"} 0"
        );
        assert!(lines.contains(&"lat_seconds_bucket{request=\"Produce\",le=\"0.0025\"} 1"));
        assert!(lines.contains(&"lat_seconds_bucket{request=\"Produce\",le=\"30\"} 1"));
        assert!(lines.contains(&"lat_seconds_bucket{request=\"Produce\",le=\"+Inf\"} 2"));
        assert!(lines.contains(&"lat_seconds_sum{request=\"Produce\"} 100.002"));
        assert_eq!(
            *lines.last().unwrap(),
            "lat_seconds_count{request=\"Produce\"} 2"
        );
    }
}
