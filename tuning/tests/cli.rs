//! The built `millrace-tune` binary, run as an operator would: `check` on this machine,
//! `probe` on a temporary directory with small bounds, `apply` only with `--dry-run` or
//! against a fake tree (`MILLRACE_TUNE_ROOT`), and bad input.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use millrace_tune::checks::CHECK_NAMES;
use millrace_tune::json::{parse, Json};
use millrace_tune::probe::{PROFILE_FILE, RESULT_FILE, SCRATCH_FILE};

const BIN: &str = env!("CARGO_BIN_EXE_millrace-tune");

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("millrace-tune-cli-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn put(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary on the real host (any inherited fake root removed).
fn tune(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("MILLRACE_TUNE_ROOT")
        .output()
        .unwrap()
}

fn tune_in(root: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("MILLRACE_TUNE_ROOT", root)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_json_on_this_machine_has_every_finding() {
    let dir = TempDir::new("check");
    let data = dir.0.to_str().unwrap();
    let out = tune(&["check", "--json", "--data-dir", data, "--cores", "1"]);
    let stdout = text(&out.stdout);
    let doc = parse(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(doc.get("version").and_then(Json::as_f64), Some(1.0));
    let checks = doc.get("checks").and_then(Json::as_array).unwrap();
    let mut any_fail = false;
    for name in CHECK_NAMES {
        let check = checks
            .iter()
            .find(|c| c.get("name").and_then(Json::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from {stdout}"));
        let status = check.get("status").and_then(Json::as_str).unwrap();
        assert!(
            ["ok", "warn", "fail", "unknown"].contains(&status),
            "{name}: {status}"
        );
        any_fail |= status == "fail";
        for field in ["observed", "why", "fix"] {
            let value = check.get(field).and_then(Json::as_str).unwrap_or("");
            assert!(!value.is_empty(), "{name}.{field} empty");
        }
    }
    assert_eq!(checks.len(), CHECK_NAMES.len());
    assert_eq!(out.status.code(), Some(i32::from(any_fail)), "{stdout}");
}

#[test]
fn check_table_is_aligned() {
    let dir = TempDir::new("table");
    let out = tune(&[
        "check",
        "--data-dir",
        dir.0.to_str().unwrap(),
        "--cores",
        "1",
    ]);
    let stdout = text(&out.stdout);
    let rows: Vec<&str> = stdout.lines().filter(|l| !l.starts_with(' ')).collect();
    assert!(
        rows[0].starts_with("CHECK") && rows[0].contains("STATUS") && rows[0].contains("OBSERVED")
    );
    assert_eq!(rows.len(), CHECK_NAMES.len() + 1, "{stdout}");
    let column = rows[0].find("STATUS").unwrap();
    for (row, name) in rows[1..].iter().zip(CHECK_NAMES) {
        assert!(row.starts_with(name), "{row}");
        let status = row[column..].split_whitespace().next().unwrap();
        assert!(["ok", "warn", "fail", "unknown"].contains(&status), "{row}");
    }
}

#[test]
fn check_fails_with_exit_1_on_a_failing_host() {
    let root = TempDir::new("fail-root");
    root.put("proc/sys/kernel/io_uring_disabled", "2\n");
    let data = TempDir::new("fail-data");
    let out = tune_in(
        &root.0,
        &["check", "--json", "--data-dir", data.0.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let doc = parse(&text(&out.stdout)).unwrap();
    let checks = doc.get("checks").and_then(Json::as_array).unwrap();
    let uring = checks
        .iter()
        .find(|c| c.get("name").and_then(Json::as_str) == Some("io_uring"))
        .unwrap();
    assert_eq!(uring.get("status").and_then(Json::as_str), Some("fail"));
}

#[test]
fn probe_writes_its_result_and_removes_its_scratch_file() {
    let dir = TempDir::new("probe");
    let d = dir.0.to_str().unwrap();
    let out = tune(&["probe", d, "--size-bytes", "8388608", "--seconds", "2"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("threads"),
        "the summary names the method"
    );
    assert!(!dir.0.join(SCRATCH_FILE).exists());
    let doc = parse(&fs::read_to_string(dir.0.join(RESULT_FILE)).unwrap()).unwrap();
    assert_eq!(
        doc.get("format").and_then(Json::as_str),
        Some("millrace-probe")
    );
    assert_eq!(doc.get("version").and_then(Json::as_f64), Some(1.0));
    let writes = doc
        .get("sequential_write")
        .and_then(Json::as_array)
        .unwrap();
    assert_eq!(writes.len(), 6);
    for w in writes {
        assert!(
            w.get("bytes_per_second").and_then(Json::as_f64).unwrap() > 0.0,
            "{w:?}"
        );
    }
    let append = doc.get("sequential_append").unwrap();
    assert!(append.get("bytes").and_then(Json::as_f64).unwrap() <= 8388608.0);
    let sync = doc.get("fdatasync").unwrap();
    let p50 = sync.get("p50_us").and_then(Json::as_f64).unwrap();
    assert!(sync.get("max_us").and_then(Json::as_f64).unwrap() >= p50);
    for r in doc.get("random_read").and_then(Json::as_array).unwrap() {
        assert!(r.get("iops").and_then(Json::as_f64).unwrap() > 0.0);
    }
    // The broker's copy: server.properties syntax with the two numbers it sizes buffers from.
    let props = fs::read_to_string(dir.0.join(PROFILE_FILE)).unwrap();
    assert!(props.contains("probe.version=1\n"), "{props}");
    for key in ["probe.write.bytes.per.second=", "probe.fdatasync.p99.us="] {
        let line = props.lines().find(|l| l.starts_with(key)).expect(key);
        let value: f64 = line[key.len()..].parse().unwrap();
        assert!(value > 0.0, "{line}");
    }
    let mut names: Vec<_> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [RESULT_FILE, PROFILE_FILE],
        "nothing else is left behind"
    );
}

#[test]
fn probe_refuses_a_file_a_missing_dir_and_a_full_disk() {
    let dir = TempDir::new("refuse");
    let file = dir.put("segment.log", "keep me");
    let out = tune(&["probe", file.to_str().unwrap(), "--size-bytes", "8388608"]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("not a directory") && err.lines().count() == 1,
        "{err}"
    );
    let out = tune(&["probe", dir.0.join("nope").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let huge = (u64::MAX / 4).to_string();
    let out = tune(&["probe", dir.0.to_str().unwrap(), "--size-bytes", &huge]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("free"), "{}", text(&out.stderr));
    let out = tune(&["probe", dir.0.to_str().unwrap(), "--size-bytes", "4096"]);
    assert_eq!(out.status.code(), Some(2));
    let names: Vec<_> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["segment.log"]);
    assert_eq!(fs::read_to_string(file).unwrap(), "keep me");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let dir = TempDir::new("usage");
    let file = dir.put("not-a-dir", "x");
    let bad_config = dir.put("server.properties", "millrace.cores=many\n");
    let cases: Vec<Vec<&str>> = vec![
        vec!["check", "--frobnicate"],
        vec!["check", "--data-dir", file.to_str().unwrap()],
        vec!["check", "--config", bad_config.to_str().unwrap()],
        vec!["check", "--config", "/nonexistent/server.properties"],
        vec!["check", "--cores", "0"],
        vec!["apply", "--dry-run", "--io-memory-bytes", "12"],
        vec!["bogus"],
        vec![],
        vec!["probe"],
        vec!["probe", "/tmp", "--seconds", "soon"],
    ];
    for args in cases {
        let out = tune(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?} printed a report");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("millrace-tune: "), "{err}");
    }
    let out = tune(&["check", "--data-dir", file.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a directory"));
}

#[test]
fn config_file_sets_the_deployment() {
    let dir = TempDir::new("config");
    let data = dir.0.join("data");
    let config = dir.put(
        "server.properties",
        &format!(
            "millrace.cores=1\nmillrace.io.memory.bytes=1048576\nlog.dirs={}\n",
            data.display()
        ),
    );
    let out = tune(&["check", "--json", "--config", config.to_str().unwrap()]);
    let doc = parse(&text(&out.stdout)).unwrap();
    assert_eq!(doc.get("cores").and_then(Json::as_f64), Some(1.0));
    assert_eq!(
        doc.get("io_memory_bytes").and_then(Json::as_f64),
        Some(1048576.0)
    );
    let checked = doc.get("data_dir").and_then(Json::as_str).unwrap();
    assert_eq!(
        Path::new(checked),
        dir.0.canonicalize().unwrap(),
        "nearest existing parent"
    );
}

#[test]
fn apply_dry_run_and_refused_writes_on_a_fake_tree() {
    let root = TempDir::new("apply-root");
    root.put("proc/sys/vm/swappiness", "60\n");
    root.put(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    );
    root.put("sys/devices/system/cpu/online", "0-1\n");
    let data = TempDir::new("apply-data");
    let d = data.0.to_str().unwrap();
    let out = tune_in(&root.0, &["apply", "--dry-run", "--data-dir", d]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("would change  swappiness             /proc/sys/vm/swappiness: 60 -> 1"),
        "{stdout}"
    );
    assert!(stdout.contains("would change  transparent_hugepages"));
    assert!(stdout.contains("advice        nofile"));
    assert_eq!(
        fs::read_to_string(root.0.join("proc/sys/vm/swappiness")).unwrap(),
        "60\n"
    );

    // Without the rights to write, each item says why on its own line, the rest still happen
    // and the exit code says it failed. The fake swappiness becomes a link to a sysctl that is
    // read-only for everyone, root included (mode 0444: the kernel refuses the open), so the
    // write fails as it does for an unprivileged user, and nothing on the host can change.
    let ro = Path::new("/proc/sys/kernel/ngroups_max");
    assert!(
        fs::read_to_string(ro)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
            > 1
    );
    fs::remove_file(root.0.join("proc/sys/vm/swappiness")).unwrap();
    std::os::unix::fs::symlink(ro, root.0.join("proc/sys/vm/swappiness")).unwrap();
    let out = tune_in(&root.0, &["apply", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stdout}");
    assert!(
        errors[0].contains("swappiness") && errors[0].contains("denied"),
        "{stdout}"
    );
    assert!(stdout.contains("changed       transparent_hugepages"));
    assert!(text(&out.stderr).contains("could not be made"));
}
