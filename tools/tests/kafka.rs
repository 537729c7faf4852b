//! The same commands against Apache Kafka, where millrace lacks an API
//! (IncrementalAlterConfigs): the tools must work with any Kafka-protocol broker. The
//! `transactions` checks are the ones cli.rs runs against millrace (`support::txn`).
//!
//! Kafka runs through `bench/peers/apache-kafka.sh` from the jars that
//! `scripts/install-test-deps.sh` puts in `.deps/kafka` (or `$KAFKA_DEPS_DIR`). Without them the
//! test says so on stderr and passes: it cannot fetch Maven Central from a test.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOOLS: &str = env!("CARGO_BIN_EXE_millrace-tools");
const READY_TIMEOUT: Duration = Duration::from_secs(90);

struct Kafka {
    child: Child,
    dir: PathBuf,
    bootstrap: String,
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn kafka_jars() -> Option<PathBuf> {
    let dir = std::env::var_os("KAFKA_DEPS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".deps/kafka"));
    let has_broker = std::fs::read_dir(&dir)
        .ok()?
        .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-")));
    has_broker.then_some(dir)
}

fn start_kafka(jars: &Path) -> Kafka {
    let port = support::free_port();
    let dir = std::env::temp_dir().join(format!(
        "millrace-tools-kafka-{}-{port}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::File::create(dir.join("script.log")).unwrap();
    let child = Command::new(workspace().join("bench/peers/apache-kafka.sh"))
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(&dir)
        .env("KAFKA_DEPS_DIR", jars)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let kafka = Kafka {
        child,
        dir,
        bootstrap: format!("127.0.0.1:{port}"),
    };
    // Ready when it answers a protocol request, not merely when the port opens.
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let out = tools(
            &["topics", "list", "--bootstrap-server", &kafka.bootstrap],
            "",
        );
        if out.status.success() {
            return kafka;
        }
        assert!(
            Instant::now() < deadline,
            "Kafka not ready: {}",
            std::fs::read_to_string(kafka.dir.join("script.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn tools(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(TOOLS)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn config_line(describe: &str, key: &str) -> String {
    describe
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no {key} in {describe}"))
        .to_string()
}

#[test]
fn configs_alter_and_the_data_path_work_against_apache_kafka() {
    let Some(jars) = kafka_jars() else {
        eprintln!(
            "SKIPPED: no Apache Kafka jars (run scripts/install-test-deps.sh or set KAFKA_DEPS_DIR)"
        );
        return;
    };
    let kafka = start_kafka(&jars);
    let b = ["--bootstrap-server", kafka.bootstrap.as_str()];
    let run = |args: &[&str], stdin: &str| {
        let mut all = args.to_vec();
        all.extend(b);
        tools(&all, stdin)
    };
    ok(run(
        &[
            "topics",
            "create",
            "kt",
            "--partitions",
            "2",
            "--replication-factor",
            "1",
        ],
        "",
    ));
    ok(run(
        &[
            "configs",
            "alter",
            "--topic",
            "kt",
            "--add-config",
            "retention.ms=5000,segment.ms=60000",
        ],
        "",
    ));
    // KRaft applies a config change asynchronously: poll until the broker reports it.
    let eventually = |key: &str, expect: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let describe = ok(run(&["configs", "describe", "--topic", "kt"], ""));
            let line = config_line(&describe, key);
            if expect(&line) {
                return;
            }
            assert!(Instant::now() < deadline, "{line}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    eventually("retention.ms", &|l| {
        l.contains(" 5000 ") && l.contains("DYNAMIC_TOPIC_CONFIG")
    });
    eventually("segment.ms", &|l| l.contains(" 60000 "));
    ok(run(
        &[
            "configs",
            "alter",
            "--topic",
            "kt",
            "--delete-config",
            "segment.ms",
        ],
        "",
    ));
    eventually("segment.ms", &|l| l.contains("DEFAULT_CONFIG"));

    let input: String = (0..500).map(|i| format!("k{}|v{i}\n", i % 13)).collect();
    ok(run(
        &[
            "produce",
            "kt",
            "--key-separator",
            "|",
            "--compression",
            "gzip",
        ],
        &input,
    ));
    let out = ok(run(
        &[
            "consume",
            "kt",
            "--from-beginning",
            "--max-messages",
            "500",
            "--format",
            "key-value",
        ],
        "",
    ));
    let mut got: Vec<String> = out.lines().map(|l| l.replacen('\t', "|", 1)).collect();
    let mut expected: Vec<String> = input.lines().map(str::to_string).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    // A consumer group resumes where the previous member stopped: nothing twice, nothing lost.
    let first = ok(run(
        &[
            "consume",
            "kt",
            "--group",
            "g1",
            "--from-beginning",
            "--max-messages",
            "200",
            "--format",
            "key-value",
        ],
        "",
    ));
    let second = ok(run(
        &[
            "consume",
            "kt",
            "--group",
            "g1",
            "--max-messages",
            "300",
            "--timeout-ms",
            "15000",
            "--format",
            "key-value",
        ],
        "",
    ));
    let third = ok(run(
        &["consume", "kt", "--group", "g1", "--timeout-ms", "2000"],
        "",
    ));
    assert_eq!(
        (first.lines().count(), second.lines().count(), third),
        (200, 300, String::new())
    );
    let mut both: Vec<String> = first
        .lines()
        .chain(second.lines())
        .map(|l| l.replacen('\t', "|", 1))
        .collect();
    both.sort();
    assert_eq!(both, expected);

    let cluster = ok(run(&["cluster", "describe"], ""));
    assert!(
        cluster
            .lines()
            .any(|l| l.starts_with("IncrementalAlterConfigs ")),
        "{cluster}"
    );
    ok(run(&["topics", "delete", "kt"], ""));
}

/// The `transactions` commands against Kafka's own transaction coordinator and partition
/// leader: the same checks as the millrace test in cli.rs.
#[test]
fn transactions_commands_work_against_apache_kafka() {
    let Some(jars) = kafka_jars() else {
        eprintln!(
            "SKIPPED: no Apache Kafka jars (run scripts/install-test-deps.sh or set KAFKA_DEPS_DIR)"
        );
        return;
    };
    let kafka = start_kafka(&jars);
    support::txn::check_transactions_commands(&kafka.bootstrap, "tx");
    // And Transactions V2 on the raw protocol, the same check as cli.rs's.
    support::txn::check_transactions_v2(&kafka.bootstrap, "tx2");
}
