//! End-to-end tests of `millrace-tools` against the real `millrace` broker on a free loopback
//! port: every test starts its own broker with its own data directory and kills it on drop.
//!
//! The broker binary is `$MILLRACE_BIN`, else `<workspace>/target/release/millrace`, else
//! `<this test's target dir>/release/millrace`; when none exists (CI runs the tests before the
//! release build) it is built once with `cargo build --release -p millrace` into a separate
//! target directory, so the build does not wait on the lock this `cargo test` holds.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const TOOLS: &str = env!("CARGO_BIN_EXE_millrace-tools");
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

use support::{free_port, secure};

fn broker_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(bin) = std::env::var_os("MILLRACE_BIN") {
            return PathBuf::from(bin);
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        // This test runs from <target>/debug/deps/.
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().nth(3).unwrap().to_path_buf();
        let candidates = [
            workspace.join("target/release/millrace"),
            target.join("release/millrace"),
        ];
        if let Some(found) = candidates.iter().find(|p| p.is_file()) {
            return found.clone();
        }
        let build_dir = target.join("tools-tests-broker");
        eprintln!(
            "building the broker into {} (first run only)",
            build_dir.display()
        );
        let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args(["build", "--release", "-p", "millrace", "--target-dir"])
            .arg(&build_dir)
            .current_dir(workspace)
            .status()
            .expect("run cargo to build the broker");
        assert!(status.success(), "cargo build --release -p millrace failed");
        let built = build_dir.join("release/millrace");
        assert!(built.is_file(), "no broker binary at {}", built.display());
        built
    })
}

/// A broker process on a free port with its own data directory; killed on drop.
struct Broker {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Broker {
    fn start(name: &str) -> Broker {
        Broker::start_with(name, free_port(), &[])
    }

    /// A broker on `port` with more server.properties keys (`KEY=VALUE`, given as --override,
    /// so they win over the flags: `listeners` may add listeners beside `port`'s).
    fn start_with(name: &str, port: u16, overrides: &[String]) -> Broker {
        let binary = broker_binary();
        let dir = std::env::temp_dir().join(format!(
            "millrace-tools-test-{name}-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("broker.log")).unwrap();
        let child = Command::new(binary)
            .args(["--listen", &addr, "--advertise", &addr, "--data-dir"])
            .arg(dir.join("data"))
            .args(["--cores", "2"])
            // No metrics listener: its default port (127.0.0.1:9644) is one for the whole
            // host, and these tests run brokers in parallel.
            .args(["--override", "millrace.metrics.listen="])
            .args(["--override", "millrace.rest.listen="])
            .args(["--override", "millrace.schema.registry.listen="])
            .args(overrides.iter().flat_map(|o| ["--override", o.as_str()]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut broker = Broker {
            child: Some(child),
            port,
            dir,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("broker exited with {status}: {}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "broker not listening after {READY_TIMEOUT:?}: {}",
            self.log()
        );
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    /// SIGTERM (clean shutdown: final flush, indexes) and wait for the exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("broker running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("broker did not stop on SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `millrace-tools ARGS --bootstrap-server <this broker>`.
    fn tools(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push("--bootstrap-server".into());
        all.push(self.bootstrap());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        tools(&all, stdin)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tools(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(TOOLS)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.unwrap_or("").to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(data.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts exit status 1 and exactly one stderr line containing `needle`; returns the line.
#[track_caller]
fn fails_with(out: Output, needle: &str) -> String {
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        stdout(&out)
    );
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    err
}

/// `count` lines `key-i:value-i` (keys repeat every 97 lines).
fn keyed_lines(count: usize, tag: &str) -> String {
    (0..count)
        .map(|i| format!("key-{}:{tag}-value-{i}\n", i % 97))
        .collect()
}

#[test]
fn topics_create_list_describe_add_partitions_delete() {
    let broker = Broker::start("topics");
    let out = ok(broker.tools(
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=-1",
            "--config",
            "max.message.bytes=2000000",
        ],
        None,
    ));
    assert!(out.contains("Created topic orders"), "{out}");
    fails_with(
        broker.tools(&["topics", "create", "orders"], None),
        "TOPIC_ALREADY_EXISTS",
    );

    let list = ok(broker.tools(&["topics", "list"], None));
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.starts_with("orders "))
        .unwrap_or_else(|| panic!("{list}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["orders", "3", "1"], "{list}");
    let json = ok(broker.tools(&["topics", "list", "--json"], None));
    assert!(
        json.contains(r#"{"name":"orders","partitions":3,"replication_factor":1}"#),
        "{json}"
    );

    ok(broker.tools(&["produce", "orders", "--partition", "1"], Some("a\nb\n")));
    let describe = ok(broker.tools(&["topics", "describe", "orders"], None));
    assert!(describe.contains("PartitionCount: 3"), "{describe}");
    let partition_1: Vec<&str> = describe
        .lines()
        .find(|l| l.starts_with("1 "))
        .unwrap()
        .split_whitespace()
        .collect();
    // partition, leader, replicas, isr, log start, log end
    assert_eq!(partition_1, ["1", "0", "0", "0", "0", "2"], "{describe}");
    let retention = describe
        .lines()
        .find(|l| l.starts_with("retention.ms"))
        .unwrap();
    assert!(
        retention.contains("-1") && retention.contains("DYNAMIC_TOPIC_CONFIG"),
        "{retention}"
    );
    assert!(describe.contains("2000000"), "{describe}");
    let json = ok(broker.tools(&["topics", "describe", "orders", "--json"], None));
    assert!(json.contains(r#""partition_count":3"#), "{json}");
    assert!(
        json.contains(r#"{"partition":1,"leader":0,"replicas":[0],"isr":[0],"log_start_offset":0,"log_end_offset":2}"#),
        "{json}"
    );

    // Partition filters (kafka-topics' flags): a single broker's RF=1 partitions are fully
    // replicated and available, and at their (capped) min.insync.replicas.
    for flag in [
        "--under-replicated-partitions",
        "--unavailable-partitions",
        "--under-min-isr-partitions",
    ] {
        let listed = ok(broker.tools(&["topics", "describe", flag, "--json"], None));
        assert_eq!(listed.trim(), "[]", "{flag}: {listed}");
    }
    let at_min = ok(broker.tools(
        &["topics", "describe", "orders", "--at-min-isr-partitions"],
        None,
    ));
    let rows: Vec<&str> = at_min
        .lines()
        .filter(|l| l.starts_with("orders "))
        .collect();
    assert_eq!(rows.len(), 3, "{at_min}");
    fails_with(
        broker.tools(&["topics", "describe"], None),
        "needs a topic name",
    );

    ok(broker.tools(
        &["topics", "add-partitions", "orders", "--partitions", "5"],
        None,
    ));
    let describe = ok(broker.tools(&["topics", "describe", "orders"], None));
    assert!(describe.contains("PartitionCount: 5"), "{describe}");
    fails_with(
        broker.tools(
            &["topics", "add-partitions", "orders", "--partitions", "2"],
            None,
        ),
        "INVALID_PARTITIONS",
    );

    let configs = ok(broker.tools(&["configs", "describe", "--topic", "orders"], None));
    assert!(configs
        .lines()
        .any(|l| l.starts_with("max.message.bytes") && l.contains("2000000")));
    let configs = ok(broker.tools(&["configs", "describe", "--broker", "0", "--json"], None));
    assert!(
        configs.starts_with('[') && configs.contains(r#""name":"broker.id""#),
        "{configs}"
    );

    ok(broker.tools(&["topics", "delete", "orders"], None));
    let list = ok(broker.tools(&["topics", "list"], None));
    assert!(!list.lines().any(|l| l.starts_with("orders ")), "{list}");
    fails_with(
        broker.tools(&["topics", "describe", "orders"], None),
        "unknown topic orders: UNKNOWN_TOPIC_OR_PARTITION",
    );
    fails_with(
        broker.tools(&["topics", "delete", "orders"], None),
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
}

#[test]
fn bad_arguments_and_unsupported_apis_fail_with_one_line() {
    let broker = Broker::start("errors");
    let line = fails_with(
        broker.tools(&["topics", "create", "t", "--config", "retention.ms"], None),
        "malformed --config argument 'retention.ms'",
    );
    assert!(line.starts_with("millrace-tools: "), "{line}");
    fails_with(
        broker.tools(
            &["topics", "create", "t", "--config", "no.such.key=1"],
            None,
        ),
        "INVALID_CONFIG",
    );
    fails_with(
        broker.tools(&["consume", "nope", "--timeout-ms", "100"], None),
        "unknown topic nope: UNKNOWN_TOPIC_OR_PARTITION",
    );
    ok(broker.tools(&["topics", "create", "t", "--partitions", "1"], None));
    // Config changes apply at once (no restart) and read back with their source.
    let alter = |args: &[&str]| {
        let mut all = vec!["configs", "alter", "--topic", "t"];
        all.extend(args);
        broker.tools(&all, None)
    };
    ok(alter(&[
        "--add-config",
        "retention.ms=5000,segment.ms=60000",
    ]));
    let describe = ok(broker.tools(&["configs", "describe", "--topic", "t"], None));
    let line = |key: &str| {
        describe
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in {describe}"))
            .to_string()
    };
    assert!(line("retention.ms").contains(" 5000 "), "{describe}");
    assert!(
        line("retention.ms").contains("DYNAMIC_TOPIC_CONFIG"),
        "{describe}"
    );
    assert!(
        line("cleanup.policy").contains("DEFAULT_CONFIG"),
        "{describe}"
    );
    ok(alter(&["--delete-config", "segment.ms"]));
    let describe = ok(broker.tools(&["configs", "describe", "--topic", "t"], None));
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("segment.ms") && l.contains("DEFAULT_CONFIG")),
        "{describe}"
    );
    fails_with(
        alter(&["--add-config", "retention.ms=-5"]),
        "INVALID_CONFIG",
    );
    fails_with(alter(&["--add-config", "no.such.key=1"]), "INVALID_CONFIG");
    // A group consumer reads what is there and commits it; the next run of the same group
    // starts after the committed offset and finds nothing new.
    ok(broker.tools(&["produce", "t"], Some("first\n")));
    let group = [
        "consume",
        "t",
        "--from-beginning",
        "--group",
        "g",
        "--max-messages",
        "1",
        "--timeout-ms",
        "20000",
    ];
    assert_eq!(ok(broker.tools(&group, None)).trim(), "first");
    let again = ["consume", "t", "--group", "g", "--timeout-ms", "3000"];
    assert_eq!(
        ok(broker.tools(&again, None)).trim(),
        "",
        "the group re-read a committed record"
    );
    fails_with(
        broker.tools(&["consume", "t", "--partition", "7"], None),
        "partition 7",
    );
    fails_with(
        broker.tools(
            &["produce", "t", "--key-separator", ":"],
            Some("k:v\nnokey\n"),
        ),
        "no key separator ':' on line 2",
    );
}

#[test]
fn unreachable_broker_is_one_line_and_nonzero() {
    let port = free_port(); // bound and released: nothing listens there now
    let addr = format!("127.0.0.1:{port}");
    for args in [
        vec!["topics", "list"],
        vec!["cluster", "describe"],
        vec!["consume", "t"],
    ] {
        let mut args = args;
        args.extend(["--bootstrap-server", &addr]);
        fails_with(tools(&args, None), &format!("cannot connect to {addr}: "));
    }
}

#[test]
fn cluster_describe_lists_brokers_controller_id_and_api_versions() {
    let broker = Broker::start("cluster");
    let out = ok(broker.tools(&["cluster", "describe"], None));
    let cluster_id = out
        .lines()
        .find_map(|l| l.strip_prefix("Cluster id: "))
        .unwrap();
    assert!(!cluster_id.is_empty() && cluster_id != "(none)", "{out}");
    assert!(out.contains("Controller: 0"), "{out}");
    let broker_row = out.lines().find(|l| l.starts_with("0 ")).unwrap();
    assert!(broker_row.contains(&broker.port.to_string()), "{out}");
    let produce: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("Produce "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(produce[1], "0", "{out}");
    assert!(out.lines().any(|l| l.starts_with("ApiVersions ")), "{out}");
    let json = ok(broker.tools(&["cluster", "describe", "--json"], None));
    assert!(
        json.contains(&format!(r#""cluster_id":"{cluster_id}""#)),
        "{json}"
    );
    assert!(
        json.contains(r#"{"api":"Fetch","key":1,"min_version":4"#),
        "{json}"
    );
}

#[test]
fn produce_and_consume_1000_keyed_records_with_headers_under_every_codec() {
    let broker = Broker::start("codecs");
    for codec in CODECS {
        let topic = format!("codec-{codec}");
        ok(broker.tools(&["topics", "create", &topic, "--partitions", "3"], None));
        let input = keyed_lines(1000, codec);
        let out = broker.tools(
            &[
                "produce",
                &topic,
                "--key-separator",
                ":",
                "--header",
                "source=test",
                "--header",
                &format!("codec={codec}"),
                "--compression",
                codec,
                "--acks",
                "all",
            ],
            Some(&input),
        );
        let summary = stderr(&out);
        ok(out);
        assert!(summary.contains("Produced 1000 records"), "{summary}");

        let out = ok(broker.tools(
            &[
                "consume",
                &topic,
                "--from-beginning",
                "--max-messages",
                "1000",
                "--format",
                "key-value",
                "--timeout-ms",
                "10000",
            ],
            None,
        ));
        let mut got: Vec<String> = out.lines().map(|l| l.replacen('\t', ":", 1)).collect();
        let mut expected: Vec<String> = input.lines().map(str::to_string).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{codec}");

        let json = ok(broker.tools(
            &[
                "consume",
                &topic,
                "--from-beginning",
                "--max-messages",
                "1000",
                "--format",
                "json",
                "--timeout-ms",
                "10000",
            ],
            None,
        ));
        assert_eq!(json.lines().count(), 1000);
        let header = format!(r#""headers":{{"source":"test","codec":"{codec}"}}}}"#);
        assert!(
            json.lines().all(|l| l.ends_with(&header)),
            "{codec}: {json}"
        );
        // Keyed records: one key, one partition (the murmur2 partitioner is deterministic).
        let mut partitions_of_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in json.lines() {
            let key = field(line, "key");
            partitions_of_key
                .entry(key)
                .or_default()
                .insert(field(line, "partition"));
        }
        assert_eq!(partitions_of_key.len(), 97);
        assert!(
            partitions_of_key.values().all(|p| p.len() == 1),
            "{partitions_of_key:?}"
        );
        let used: BTreeSet<_> = partitions_of_key.values().flatten().collect();
        assert_eq!(used.len(), 3, "keys spread over every partition");
    }
}

#[test]
fn consume_json_fields_and_start_positions() {
    let broker = Broker::start("consume");
    ok(broker.tools(&["topics", "create", "events", "--partitions", "1"], None));
    let before = now_ms();
    ok(broker.tools(
        &[
            "produce",
            "events",
            "--key-separator",
            "=",
            "--header",
            "h=v",
        ],
        Some("k0=v0\nk1=v1\nk2=v2\n"),
    ));
    let out = ok(broker.tools(
        &[
            "consume",
            "events",
            "--from-beginning",
            "--max-messages",
            "1",
            "--format",
            "json",
        ],
        None,
    ));
    let line = out.lines().next().unwrap();
    assert!(
        line.starts_with(r#"{"topic":"events","partition":0,"offset":0,"timestamp":"#),
        "{line}"
    );
    assert!(
        line.ends_with(r#","key":"k0","value":"v0","headers":{"h":"v"}}"#),
        "{line}"
    );
    let timestamp: i64 = field(line, "timestamp").parse().unwrap();
    assert!(timestamp >= before && timestamp <= now_ms(), "{line}");

    let out = ok(broker.tools(
        &["consume", "events", "--offset", "1", "--max-messages", "2"],
        None,
    ));
    assert_eq!(out, "v1\nv2\n");
    let out = ok(broker.tools(
        &[
            "consume",
            "events",
            "--timestamp",
            &before.to_string(),
            "--max-messages",
            "3",
        ],
        None,
    ));
    assert_eq!(out, "v0\nv1\nv2\n");
    // --file, and acks 1 and 0 (acks=0 gets no answer; the records still arrive).
    let file = broker.dir.join("input.txt");
    std::fs::write(&file, "f0\nf1\n").unwrap();
    ok(broker.tools(
        &[
            "produce",
            "events",
            "--file",
            file.to_str().unwrap(),
            "--acks",
            "1",
        ],
        None,
    ));
    ok(broker.tools(&["produce", "events", "--acks", "0"], Some("z0\nz1\n")));
    let out = ok(broker.tools(
        &[
            "consume",
            "events",
            "--offset",
            "3",
            "--max-messages",
            "4",
            "--timeout-ms",
            "10000",
        ],
        None,
    ));
    assert_eq!(out, "f0\nf1\nz0\nz1\n");
    // Default start is the end: nothing arrives, the idle timeout ends the run cleanly.
    let out = broker.tools(&["consume", "events", "--timeout-ms", "700"], None);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("Processed a total of 0 messages"),
        "{}",
        stderr(&out)
    );
    ok(out);
}

#[test]
fn log_check_finds_a_flipped_byte_and_dump_counts_batches() {
    let mut broker = Broker::start("log");
    ok(broker.tools(&["topics", "create", "logs", "--partitions", "1"], None));
    let out = broker.tools(
        &[
            "produce",
            "logs",
            "--batch-size",
            "2000",
            "--compression",
            "lz4",
        ],
        Some(&keyed_lines(1000, "log")),
    );
    let summary = stderr(&out);
    ok(out);
    let batches: usize = summary
        .split_whitespace()
        .skip_while(|w| *w != "in")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(batches > 5, "{summary}");
    broker.stop();

    let partition = broker.data_dir().join("logs-0");
    let dump = ok(tools(&["log", "dump", partition.to_str().unwrap()], None));
    let batch_lines: Vec<&str> = dump
        .lines()
        .filter(|l| l.starts_with("baseOffset:"))
        .collect();
    assert_eq!(batch_lines.len(), batches, "{dump}");
    assert!(
        batch_lines.iter().all(|l| l.contains("isValid: true")),
        "{dump}"
    );
    assert!(
        dump.contains(&format!("{batches} batches, 1000 records")),
        "{dump}"
    );
    let with_records = ok(tools(
        &["log", "dump", "--records", partition.to_str().unwrap()],
        None,
    ));
    assert_eq!(
        with_records
            .lines()
            .filter(|l| l.starts_with("| offset:"))
            .count(),
        1000
    );

    // The data directory also holds the broker's metadata log (`__cluster_metadata-0`, record
    // batches like any partition's): `log check` of the directory covers it too.
    let data = broker.data_dir();
    let metadata = data.join("__cluster_metadata-0");
    let metadata_dump = ok(tools(&["log", "dump", metadata.to_str().unwrap()], None));
    let metadata_batches = metadata_dump
        .lines()
        .filter(|l| l.starts_with("baseOffset:"))
        .count();
    assert!(metadata_batches > 0, "{metadata_dump}");
    let out = ok(tools(&["log", "check", data.to_str().unwrap()], None));
    assert!(
        out.contains(&format!(
            "{} batches, no corruption",
            batches + metadata_batches
        )),
        "{out}"
    );

    // Flip one byte inside the third batch's records.
    let third = batch_lines[2];
    let position: u64 = field_after(third, "position:").parse().unwrap();
    let size: u64 = field_after(third, "size:").parse().unwrap();
    let segment = partition.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = (position + size - 3) as usize;
    bytes[at] ^= 0x20;
    std::fs::write(&segment, bytes).unwrap();

    for dir in [&data, &partition] {
        let out = tools(&["log", "check", dir.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let report = stdout(&out);
        let corrupt: Vec<&str> = report
            .lines()
            .filter(|l| l.starts_with("CORRUPT"))
            .collect();
        assert_eq!(corrupt.len(), 1, "{report}");
        assert!(corrupt[0].contains("00000000000000000000.log"), "{report}");
        assert!(
            corrupt[0].contains(&format!("position {position}:")),
            "{report}"
        );
        assert!(corrupt[0].contains("CRC"), "{report}");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    let dump = ok(tools(&["log", "dump", partition.to_str().unwrap()], None));
    assert!(dump.contains("isValid: false"), "{dump}");
}

/// A JSON field's value as text (strings unquoted), for the flat objects these tests read.
fn field(line: &str, name: &str) -> String {
    let start = line.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
    let rest = &line[start..];
    if let Some(s) = rest.strip_prefix('"') {
        s[..s.find('"').unwrap()].to_string()
    } else {
        rest[..rest.find([',', '}']).unwrap()].to_string()
    }
}

fn field_after<'a>(line: &'a str, label: &str) -> &'a str {
    let start = line.find(label).unwrap() + label.len();
    line[start..].split_whitespace().next().unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn log_check_follows_offsets_across_segments_and_reports_a_missing_one() {
    let mut broker = Broker::start("segments");
    ok(broker.tools(
        &[
            "topics",
            "create",
            "rolled",
            "--partitions",
            "1",
            "--config",
            "segment.bytes=16384",
        ],
        None,
    ));
    ok(broker.tools(
        &["produce", "rolled", "--batch-size", "4000"],
        Some(&keyed_lines(3000, "segment")),
    ));
    broker.stop();
    let partition = broker.data_dir().join("rolled-0");
    let dir = partition.to_str().unwrap();
    let out = ok(tools(&["log", "check", dir], None));
    assert!(out.contains("no corruption"), "{out}");
    let dump = ok(tools(&["log", "dump", dir], None));
    let segments: Vec<&str> = dump.lines().filter(|l| l.starts_with("Dumping ")).collect();
    assert!(segments.len() >= 3, "{dump}");
    let records: u64 = dump
        .lines()
        .filter(|l| l.starts_with("Segment "))
        .map(|l| field_after(l, "batches,").parse::<u64>().unwrap())
        .sum();
    assert_eq!(records, 3000, "{dump}");

    // Remove a middle segment: the next one no longer starts where the previous one ended.
    let middle = field_after(segments[1], "Dumping ");
    std::fs::remove_file(middle).unwrap();
    let out = tools(&["log", "check", dir], None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let report = stdout(&out);
    assert!(
        report.contains("but the previous segment ends at"),
        "{report}"
    );
}

/// One column of `groups describe`'s offsets table, for the rows of `topic`.
fn offsets_column(describe: &str, topic: &str, column: usize) -> Vec<String> {
    describe
        .lines()
        .filter(|l| l.starts_with(&format!("{topic} ")))
        .map(|l| l.split_whitespace().nth(column).unwrap().to_string())
        .collect()
}

#[track_caller]
fn column_sum(describe: &str, topic: &str, column: usize) -> i64 {
    let cells = offsets_column(describe, topic, column);
    assert_eq!(cells.len(), 2, "two partitions expected: {describe}");
    cells
        .iter()
        .map(|c| {
            c.parse::<i64>()
                .unwrap_or_else(|_| panic!("{c}: {describe}"))
        })
        .sum()
}

/// (committed sum, lag sum) of group `g` on `topic`, from `groups describe`.
#[track_caller]
fn committed_and_lag(broker: &Broker, group: &str, topic: &str) -> (i64, i64) {
    let describe = ok(broker.tools(&["groups", "describe", group], None));
    // TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG MEMBER-ID
    (
        column_sum(&describe, topic, 2),
        column_sum(&describe, topic, 4),
    )
}

#[test]
fn groups_list_describe_reset_offsets_and_delete() {
    let broker = Broker::start("groups");
    ok(broker.tools(&["topics", "create", "gt", "--partitions", "2"], None));
    ok(broker.tools(
        &["produce", "gt", "--partition", "0"],
        Some("a0\na1\na2\na3\na4\n"),
    ));
    ok(broker.tools(
        &["produce", "gt", "--partition", "1"],
        Some("b0\nb1\nb2\nb3\nb4\n"),
    ));
    let consumed = ok(broker.tools(
        &[
            "consume",
            "gt",
            "--group",
            "g",
            "--from-beginning",
            "--max-messages",
            "6",
            "--timeout-ms",
            "20000",
        ],
        None,
    ));
    assert_eq!(consumed.lines().count(), 6, "{consumed}");

    let list = ok(broker.tools(&["groups", "list"], None));
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.starts_with("g "))
        .unwrap_or_else(|| panic!("{list}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["g", "consumer", "Empty"], "{list}");
    let json = ok(broker.tools(&["groups", "list", "--json"], None));
    assert!(
        json.contains(r#"{"group":"g","protocol_type":"consumer","state":"Empty"}"#),
        "{json}"
    );

    let describe = ok(broker.tools(&["groups", "describe", "g"], None));
    assert!(describe.contains("State: Empty"), "{describe}");
    assert!(describe.contains("Members: 0"), "{describe}");
    assert_eq!(offsets_column(&describe, "gt", 3), ["5", "5"], "{describe}");
    assert_eq!(committed_and_lag(&broker, "g", "gt"), (6, 4));
    let json = ok(broker.tools(&["groups", "describe", "g", "--json"], None));
    assert!(json.contains(r#""state":"Empty""#), "{json}");
    assert!(json.contains(r#""log_end_offset":5"#), "{json}");

    // Dry run (the default) prints the plan and commits nothing.
    let reset = ["groups", "reset-offsets", "g", "--topic", "gt"];
    let plan = ok(broker.tools(&[&reset[..], &["--to-earliest"]].concat(), None));
    let new_offsets: Vec<&str> = plan
        .lines()
        .filter(|l| l.starts_with("g "))
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(new_offsets, ["0", "0"], "{plan}");
    assert_eq!(committed_and_lag(&broker, "g", "gt"), (6, 4));

    ok(broker.tools(
        &[&reset[..], &["--to-earliest", "--execute"]].concat(),
        None,
    ));
    assert_eq!(committed_and_lag(&broker, "g", "gt"), (0, 10));
    ok(broker.tools(
        &[&reset[..], &["--shift-by", "2", "--execute"]].concat(),
        None,
    ));
    assert_eq!(committed_and_lag(&broker, "g", "gt"), (4, 6));
    ok(broker.tools(
        &[
            &reset[..],
            &["--shift-by", "-1", "--partition", "1", "--execute"],
        ]
        .concat(),
        None,
    ));
    assert_eq!(committed_and_lag(&broker, "g", "gt"), (3, 7));
    // Past the end is clamped to the log end offset.
    ok(broker.tools(
        &[&reset[..], &["--to-offset", "99", "--execute"]].concat(),
        None,
    ));
    assert_eq!(committed_and_lag(&broker, "g", "gt"), (10, 0));
    ok(broker.tools(
        &[
            &reset[..],
            &["--to-offset", "3", "--partition", "0", "--execute"],
        ]
        .concat(),
        None,
    ));
    assert_eq!(committed_and_lag(&broker, "g", "gt"), (8, 2));
    ok(broker.tools(
        &[&reset[..], &["--to-datetime", "0", "--execute"]].concat(),
        None,
    ));
    assert_eq!(committed_and_lag(&broker, "g", "gt"), (0, 10));
    let later = (now_ms() + 3_600_000).to_string();
    ok(broker.tools(
        &[&reset[..], &["--to-datetime", &later, "--execute"]].concat(),
        None,
    ));
    assert_eq!(committed_and_lag(&broker, "g", "gt"), (10, 0));
    ok(broker.tools(
        &[&reset[..], &["--to-earliest", "--execute"]].concat(),
        None,
    ));
    fails_with(
        broker.tools(
            &[
                "groups",
                "reset-offsets",
                "fresh",
                "--topic",
                "gt",
                "--shift-by",
                "1",
            ],
            None,
        ),
        "gt-0: no committed offset to shift from",
    );
    fails_with(
        broker.tools(
            &[&reset[..], &["--to-latest", "--partition", "5"]].concat(),
            None,
        ),
        "topic gt has no partition 5",
    );

    ok(broker.tools(&["groups", "delete", "g"], None));
    let list = ok(broker.tools(&["groups", "list"], None));
    assert!(!list.lines().any(|l| l.starts_with("g ")), "{list}");
    fails_with(
        broker.tools(&["groups", "describe", "g"], None),
        "group g does not exist",
    );
    fails_with(
        broker.tools(&["groups", "describe", "nope"], None),
        "group nope does not exist (state Dead)",
    );
    fails_with(
        broker.tools(&["groups", "delete", "nope"], None),
        "delete group nope: GROUP_ID_NOT_FOUND",
    );
}

/// A `consume --group` child process, killed on drop so a failed assertion leaves nothing.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn groups_with_an_active_member_refuse_reset_and_delete() {
    let broker = Broker::start("active");
    ok(broker.tools(&["topics", "create", "at", "--partitions", "2"], None));
    ok(broker.tools(&["produce", "at"], Some("x\ny\nz\n")));
    let bootstrap = broker.bootstrap();
    let child = Command::new(TOOLS)
        .args(["consume", "at", "--group", "busy", "--from-beginning"])
        .args(["--timeout-ms", "120000", "--bootstrap-server", &bootstrap])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Background(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let describe = loop {
        let out = broker.tools(&["groups", "describe", "busy", "--json"], None);
        let text = stdout(&out);
        if out.status.success() && text.contains(r#""state":"Stable""#) {
            break text;
        }
        assert!(Instant::now() < deadline, "no stable member: {text}");
        assert!(child.0.try_wait().unwrap().is_none(), "the consumer exited");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        describe.contains(r#""client_id":"millrace-tools""#),
        "{describe}"
    );
    assert!(
        describe.contains(r#""assignment":[{"topic":"at","partitions":[0,1]}]"#),
        "{describe}"
    );
    let text = ok(broker.tools(&["groups", "describe", "busy"], None));
    assert!(text.contains("Members: 1"), "{text}");
    assert!(text.contains("at:0,1"), "{text}");
    let list = ok(broker.tools(&["groups", "list"], None));
    assert!(
        list.lines()
            .any(|l| l.starts_with("busy ") && l.ends_with("Stable")),
        "{list}"
    );

    for args in [vec!["--to-earliest"], vec!["--to-earliest", "--execute"]] {
        let mut all = vec!["groups", "reset-offsets", "busy", "--topic", "at"];
        all.extend(args);
        fails_with(
            broker.tools(&all, None),
            "group busy is not inactive (state Stable",
        );
    }
    fails_with(
        broker.tools(&["groups", "delete", "busy"], None),
        "delete group busy: NON_EMPTY_GROUP",
    );
    let _ = child.0.kill();
}

/// Transactions left open by a transactional producer (raw protocol, `support::txn`) are listed,
/// described with their partitions, shown by describe-producers with their start offsets, and
/// aborted by either form of `transactions abort`, which moves the last stable offset past them.
#[test]
fn transactions_list_describe_producers_and_abort_a_hanging_transaction() {
    let broker = Broker::start("transactions");
    support::txn::check_transactions_commands(&broker.bootstrap(), "tx");
}

/// Transactions V2 (KIP-890 part 2) on the raw protocol: the feature finalized, partitions
/// added by Produce v12 and TxnOffsetCommit v5, an epoch bump per EndTxn v5 (an empty abort
/// too), a retried EndTxn answered the same, a delayed Produce fenced. kafka.rs runs the same
/// check against Apache Kafka.
#[test]
fn transactions_v2_on_the_raw_protocol() {
    let broker = Broker::start("transactions-v2");
    support::txn::check_transactions_v2(&broker.bootstrap(), "tx2");
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `--command-config` against millrace's SSL, SASL_PLAINTEXT and SASL_SSL listeners (PLAIN
/// users from JAAS, a SCRAM user made with AlterUserScramCredentials): the same checks as
/// against Kafka. `quotas` and `acls` run their round trip once the broker advertises their
/// APIs; until then they must fail with one line naming the missing API.
#[test]
fn command_config_connects_over_tls_and_sasl_listeners() {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "millrace-tools-secure-{}-{}",
        std::process::id(),
        free_port()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let Some(certs) = secure::make_certs(&dir.0) else {
        eprintln!("SKIPPED: openssl is not installed (scripts/install-test-deps.sh)");
        return;
    };
    let ports = secure::Listeners {
        plaintext: free_port(),
        ssl: free_port(),
        sasl_plaintext: free_port(),
        sasl_ssl: free_port(),
    };
    let broker = Broker::start_with(
        "secure",
        ports.plaintext,
        &millrace_secure_overrides(&ports, &certs),
    );
    secure::create_scram_user(&broker.bootstrap(), "carol", "carol-secret");
    secure::check_command_configs(&dir.0, &certs, &ports, ("carol", "carol-secret"));

    let admin = secure::sasl_properties(&dir.0, "admin", "PLAIN", secure::ADMIN, None);
    let sasl = format!("127.0.0.1:{}", ports.sasl_plaintext);
    let as_admin = |args: &[&str]| secure::tools_as(&sasl, &admin, args);
    let apis = secure::ok(as_admin(&["cluster", "describe"]));
    let has = |api: &str| {
        apis.lines()
            .any(|l| l.split_whitespace().next() == Some(api))
    };
    if has("DescribeClientQuotas") && has("AlterClientQuotas") {
        secure::check_quotas(&as_admin);
    } else {
        let out = as_admin(&["quotas", "--describe"]);
        fails_with(out, "DescribeClientQuotas is unsupported by this broker");
    }
    if has("DescribeAcls") {
        // Without an authorizer configured Kafka answers SECURITY_DISABLED; with one, admin
        // may list. Either way the answer is the broker's, not a protocol error.
        let out = as_admin(&["acls", "--list"]);
        assert!(
            out.status.success() || stderr(&out).contains("SECURITY_DISABLED"),
            "{out:?}"
        );
    } else {
        fails_with(
            as_admin(&["acls", "--list"]),
            "DescribeAcls is unsupported by this broker",
        );
    }
}

/// millrace's keys for four listeners, TLS from `certs` and SASL users as in kafka.rs (PLAIN
/// admin and alice in JAAS, SCRAM on both SASL listeners).
fn millrace_secure_overrides(ports: &secure::Listeners, certs: &secure::Certs) -> Vec<String> {
    let listeners = [
        ("PLAINTEXT", "127.0.0.1", ports.plaintext),
        ("SSL", "localhost", ports.ssl),
        ("SASL_PLAINTEXT", "127.0.0.1", ports.sasl_plaintext),
        ("SASL_SSL", "localhost", ports.sasl_ssl),
    ];
    let join = |host: Option<&str>| {
        listeners
            .iter()
            .map(|(name, advertised, port)| {
                format!("{name}://{}:{port}", host.unwrap_or(advertised))
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let (admin, alice) = (secure::ADMIN, secure::ALICE);
    let plain = format!(
        "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{}\" \
         password=\"{}\" user_{}=\"{}\" user_{}=\"{}\";",
        admin.0, admin.1, admin.0, admin.1, alice.0, alice.1
    );
    let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
    let mut overrides = vec![
        format!("listeners={}", join(Some("127.0.0.1"))),
        format!("advertised.listeners={}", join(None)),
        "ssl.keystore.type=PEM".to_string(),
        format!("ssl.keystore.location={}", certs.broker_keystore.display()),
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_string(),
    ];
    for listener in ["sasl_plaintext", "sasl_ssl"] {
        overrides.push(format!(
            "listener.name.{listener}.plain.sasl.jaas.config={plain}"
        ));
        for mechanism in ["scram-sha-256", "scram-sha-512"] {
            overrides.push(format!(
                "listener.name.{listener}.{mechanism}.sasl.jaas.config={scram}"
            ));
        }
    }
    overrides
}
