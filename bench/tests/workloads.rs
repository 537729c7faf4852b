//! Each workload briefly against the real `millrace` broker on a free loopback port: what the
//! consumers counted must equal what the producers had acknowledged. No timing assertions.
//!
//! The broker binary is `$MILLRACE_BIN`, else `<workspace>/target/release/millrace`, else
//! `<this test's target dir>/release/millrace`; when none exists it is built once with
//! `cargo build --release -p millrace` into a separate target directory.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_millrace-bench");

fn broker_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("MILLRACE_BIN") {
        return PathBuf::from(bin);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let candidates = [
        workspace.join("target/release/millrace"),
        target.join("release/millrace"),
    ];
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return found.clone();
    }
    let build_dir = target.join("bench-tests-broker");
    let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args(["build", "--release", "-p", "millrace", "--target-dir"])
        .arg(&build_dir)
        .current_dir(workspace)
        .status()
        .expect("run cargo to build the broker");
    assert!(status.success(), "cargo build --release -p millrace failed");
    build_dir.join("release/millrace")
}

/// A free port below the ephemeral range (a port inside it can be taken by any outgoing
/// connection, or even self-connect while nothing listens).
fn free_port() -> u16 {
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = std::process::id() ^ clock.map_or(0, |d| d.subsec_nanos());
    for n in 0..2000u32 {
        let port = 20_000 + (seed.wrapping_mul(7919).wrapping_add(n * 104_729) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

struct Broker {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Broker {
    fn start() -> Broker {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("millrace-bench-test-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("broker.log")).unwrap();
        let child = Command::new(broker_binary())
            .args(["--listen", &addr, "--advertise", &addr, "--data-dir"])
            .arg(dir.join("data"))
            .args(["--cores", "2"])
            // No metrics listener: its default port (127.0.0.1:9644) is one for the whole
            // host, where other test brokers may be running.
            .args(["--override", "millrace.metrics.listen="])
            .args(["--override", "millrace.rest.listen="])
            .args(["--override", "millrace.schema.registry.listen="])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the broker");
        let mut broker = Broker { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = broker.child.try_wait().unwrap() {
                panic!("broker exited with {status}: {}", broker.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return broker;
            }
            assert!(
                Instant::now() < deadline,
                "broker not listening: {}",
                broker.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    /// Runs the bench with `args` plus the bootstrap address and a JSON file; returns the JSON.
    fn bench(&self, name: &str, args: &[&str]) -> serde_json::Value {
        let json = self.dir.join(format!("{name}.json"));
        let out: Output = Command::new(BENCH)
            .args(args)
            .args(["--bootstrap-server", &format!("127.0.0.1:{}", self.port)])
            .args(["--no-pin", "--quiet", "--json"])
            .arg(&json)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "millrace-bench {args:?} failed\nstdout: {}\nstderr: {}\nbroker: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn total(v: &serde_json::Value, field: &str) -> u64 {
    v["results"][field].as_u64().unwrap()
}

#[test]
fn each_workload_consumes_exactly_what_was_acknowledged() {
    let broker = Broker::start();
    let short = [
        "--warmup",
        "0s",
        "--duration",
        "1s",
        "--drain-timeout",
        "10s",
    ];
    // Produce (idempotent, acks=all, lz4, zipf keys), then catch up over it.
    let mut args = vec![
        "produce",
        "--topic",
        "t",
        "--partitions",
        "4",
        "--record-size",
        "100",
    ];
    args.extend([
        "--rate",
        "20000",
        "--compression-type",
        "lz4",
        "--keys",
        "zipf:50",
    ]);
    args.extend(short);
    let produced = broker.bench("produce", &args);
    let acked = total(&produced, "acked_records_total");
    assert!(acked > 0, "{produced}");
    assert_eq!(total(&produced, "produce_errors"), 0);
    assert_eq!(produced["parameters"]["partitions"], 4);
    assert!(
        produced["results"]["produce_latency_us"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );

    let mut args = vec!["consume", "--topic", "t", "--consumers", "2"];
    args.extend(short);
    let consumed = broker.bench("consume", &args);
    assert_eq!(
        total(&consumed, "consumed_records_total"),
        acked,
        "{consumed}"
    );
    assert_eq!(
        consumed["results"]["consume"]["bytes"].as_u64().unwrap(),
        produced["results"]["acked_records_total"].as_u64().unwrap() * 100
    );

    // e2e on a new topic, acks=1 and gzip, two producers: every acknowledged record arrives.
    let mut args = vec![
        "e2e",
        "--topic",
        "e",
        "--partitions",
        "3",
        "--record-size",
        "64",
    ];
    args.extend(["--rate", "5000", "--producers", "2", "--acks", "1"]);
    args.extend(["--compression-type", "gzip", "--executors", "2"]);
    args.extend(short);
    let e2e = broker.bench("e2e", &args);
    let acked = total(&e2e, "acked_records_total");
    assert!(acked > 0, "{e2e}");
    assert_eq!(total(&e2e, "consumed_records_total"), acked, "{e2e}");
    assert!(e2e["results"]["e2e_latency_us"]["count"].as_u64().unwrap() > 0);

    // Catch-up through a consumer group (classic protocol, range assignor) over topic t.
    let mut args = vec![
        "consume",
        "--topic",
        "t",
        "--group",
        "bench-test",
        "--consumers",
        "2",
    ];
    args.extend(short);
    let grouped = broker.bench("group", &args);
    assert_eq!(
        total(&grouped, "consumed_records_total"),
        total(&produced, "acked_records_total")
    );

    // Tailing consume of an idle topic sees nothing and ends at its deadline.
    let mut args = vec!["consume", "--topic", "t", "--from", "end"];
    args.extend(short);
    let tail = broker.bench("tail", &args);
    assert_eq!(total(&tail, "consumed_records_total"), 0);

    // The report reads the results back and draws them.
    let svg = broker.dir.join("r.svg");
    let out = Command::new(BENCH)
        .arg("report")
        .arg(broker.dir.join("produce.json"))
        .arg(broker.dir.join("e2e.json"))
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| produce MB/s |"), "{table}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<polyline"));
}
