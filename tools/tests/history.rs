//! `millrace-tools history check` on recorded histories: a clean one exits 0, each kind of
//! anomaly exits 1 and is named, warnings fail only with `--strict`, and a malformed file is
//! refused naming its line. No broker needed.

use std::path::PathBuf;
use std::process::{Command, Output};

const TOOLS: &str = env!("CARGO_BIN_EXE_millrace-tools");

/// Two producers on one partition, acks at 0..3, one refusal, one unknown that made it, a
/// consumer that read the first two records, and the final read.
const CLEAN: &str = r#"{"op": "note", "text": "two producers, one partition"}
{"op": "produce", "topic": "t", "partition": 0, "producer": "a", "seq": 0, "value": "a0", "outcome": "acked", "offset": 0}
{"op": "produce", "topic": "t", "partition": 0, "producer": "b", "seq": 0, "value": "b0", "outcome": "acked", "offset": 1}
{"op": "produce", "topic": "t", "partition": 0, "producer": "a", "seq": 1, "value": "a1", "outcome": "unknown", "error": -192}
{"op": "produce", "topic": "t", "partition": 0, "producer": "a", "seq": 2, "value": "a2", "outcome": "acked", "offset": 3}
{"op": "produce", "topic": "t", "partition": 0, "producer": "b", "seq": 1, "value": "b1", "outcome": "failed", "error": 19}
{"op": "read", "topic": "t", "partition": 0, "offset": 0, "value": "a0", "reader": "c"}
{"op": "read", "topic": "t", "partition": 0, "offset": 1, "value": "b0", "reader": "c"}
{"op": "final", "topic": "t", "partition": 0, "log_start_offset": 0, "high_watermark": 4}
{"op": "final_read", "topic": "t", "partition": 0, "offset": 0, "value": "a0"}
{"op": "final_read", "topic": "t", "partition": 0, "offset": 1, "value": "b0"}
{"op": "final_read", "topic": "t", "partition": 0, "offset": 2, "value": "a1"}
{"op": "final_read", "topic": "t", "partition": 0, "offset": 3, "value": "a2"}
"#;

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("millrace-history-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn history_check(path: &PathBuf, flags: &[&str]) -> Output {
    Command::new(TOOLS)
        .args(["history", "check"])
        .arg(path)
        .args(flags)
        .output()
        .expect("run millrace-tools")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// CLEAN with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> String {
    assert!(CLEAN.contains(from), "{from}");
    CLEAN.replace(from, to)
}

#[test]
fn a_clean_history_passes_with_its_counts() {
    let path = write("clean.jsonl", CLEAN);
    let out = history_check(&path, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("1 partitions, 5 produced (3 acked, 1 failed, 1 unknown of which 1 present)"),
        "{text}"
    );
    assert!(text.contains("lost: 0\n"), "{text}");
    assert!(text.contains("anomalies: 0 errors, 0 warnings"), "{text}");

    let out = history_check(&path, &["--json"]);
    assert!(out.status.success());
    let json = stdout(&out);
    assert!(
        json.starts_with("{\"clean\":true,\"errors\":0,\"warnings\":0,"),
        "{json}"
    );
    assert!(json.contains("\"counts\":{\"lost\":0,"), "{json}");
    assert!(json.contains("\"acked\":3,"), "{json}");
    assert!(json.trim_end().ends_with("\"anomalies\":[]}"), "{json}");
}

#[test]
fn each_kind_of_anomaly_fails_the_check_and_is_named() {
    let truncated = r#"{"op": "final_read", "topic": "t", "partition": 0, "offset": 3, "value": "a2"}
"#;
    let cases = [
        ("lost", CLEAN.replace(truncated, "")),
        (
            "offset_mismatch",
            edited(
                r#""value": "a2", "outcome": "acked", "offset": 3"#,
                r#""value": "a2", "outcome": "acked", "offset": 2"#,
            ),
        ),
        (
            "duplicated",
            edited(r#""high_watermark": 4"#, r#""high_watermark": 5"#)
                + r#"{"op": "final_read", "topic": "t", "partition": 0, "offset": 4, "value": "a0"}"#,
        ),
        (
            "reordered",
            edited(r#""seq": 2, "value": "a2""#, r#""seq": 1, "value": "a2""#)
                .replace(r#""seq": 1, "value": "a1""#, r#""seq": 2, "value": "a1""#),
        ),
        (
            "read_uncommitted",
            CLEAN.to_string()
                + r#"{"op": "read", "topic": "t", "partition": 0, "offset": 4, "value": "a2", "reader": "c"}"#,
        ),
        (
            "refused_but_present",
            edited(
                r#""value": "a1", "outcome": "unknown", "error": -192"#,
                r#""value": "a1", "outcome": "failed", "error": 19"#,
            )
            .replace(
                r#""value": "b1", "outcome": "failed", "error": 19"#,
                r#""value": "b1", "outcome": "unknown""#,
            ),
        ),
        (
            "unexpected_value",
            edited(
                r#""offset": 2, "value": "a1""#,
                r#""offset": 2, "value": "zz""#,
            ),
        ),
    ];
    for (category, text) in cases {
        let path = write(&format!("{category}.jsonl"), &text);
        let out = history_check(&path, &["--max", "3"]);
        let summary = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{category}: {summary}");
        assert!(
            summary.contains(&format!("\n{category}: 1\n")),
            "{category}: {summary}"
        );
        assert!(
            summary.contains(&format!("  {category} t-0 value ")),
            "{category}: {summary}"
        );
        let err = stderr(&out);
        assert!(
            err.starts_with("millrace-tools: history anomalies: "),
            "{err}"
        );

        let out = history_check(&path, &["--json"]);
        assert_eq!(out.status.code(), Some(1));
        let json = stdout(&out);
        assert!(json.starts_with("{\"clean\":false,"), "{json}");
        assert!(json.contains(&format!("\"{category}\":1")), "{json}");
        assert!(
            json.contains(&format!(
                "{{\"category\":\"{category}\",\"topic\":\"t\",\"partition\":0,"
            )),
            "{json}"
        );
    }
}

#[test]
fn a_warning_fails_only_with_strict() {
    // NOT_ENOUGH_REPLICAS_AFTER_APPEND: the leader had appended it; reading it is legal.
    let text = edited(
        r#""value": "a1", "outcome": "unknown", "error": -192"#,
        r#""value": "a1", "outcome": "failed", "error": 20"#,
    );
    let path = write("warning.jsonl", &text);
    let out = history_check(&path, &[]);
    let summary = stdout(&out);
    assert!(out.status.success(), "{summary}");
    assert!(
        summary.contains("failed_but_present (warning): 1\n"),
        "{summary}"
    );
    assert!(
        summary.contains("anomalies: 0 errors, 1 warnings"),
        "{summary}"
    );
    let out = history_check(&path, &["--strict"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn unreadable_histories_are_refused_naming_the_line() {
    let path = write(
        "bad.jsonl",
        &edited(
            r#""offset": 1, "value": "b0", "reader""#,
            r#""offset": 1.5, "value": "b0", "reader""#,
        ),
    );
    let out = history_check(&path, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("bad.jsonl: line 8: "), "{err}");
    assert!(err.contains("not an integer"), "{err}");
    assert!(stdout(&out).is_empty());

    let twice = edited(r#""value": "b0", "outcome""#, r#""value": "a0", "outcome""#);
    let out = history_check(&write("twice.jsonl", &twice), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("value \"a0\" produced twice"),
        "{}",
        stderr(&out)
    );

    let out = history_check(&PathBuf::from("/nonexistent/history.jsonl"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/history.jsonl"),
        "{}",
        stderr(&out)
    );
}
