//! The same commands against Apache Kafka, where millrace lacks an API
//! (IncrementalAlterConfigs): the tools must work with any Kafka-protocol broker. The
//! `transactions` checks are the ones cli.rs runs against millrace (`support::txn`), and so are
//! the `--command-config` and `quotas` checks (`support::secure`); `acls` runs here against
//! Kafka's StandardAuthorizer.
//!
//! Kafka runs through `bench/peers/apache-kafka.sh` from the jars that
//! `scripts/install-test-deps.sh` puts in `.deps/kafka` (or `$KAFKA_DEPS_DIR`). Without them the
//! test says so on stderr and passes: it cannot fetch Maven Central from a test.

mod support;

use support::secure::{
    check_command_configs, check_quotas, create_scram_user, fails_with, make_certs, properties,
    sasl_properties, tools_as, until, Certs, Listeners, ADMIN, ALICE,
};

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
    start_kafka_with(jars, port, None, "", &kafka_dir(port))
}

fn kafka_dir(port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "millrace-tools-kafka-{}-{port}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Kafka with its PLAINTEXT listener on `port`, the controller on `controller_port` (the
/// script's choice when None), `extra` server.properties lines (KAFKA_EXTRA_PROPERTIES: split
/// at blanks, so a value with a blank writes it `\u0020`), data and logs in `dir`.
fn start_kafka_with(
    jars: &Path,
    port: u16,
    controller_port: Option<u16>,
    extra: &str,
    dir: &Path,
) -> Kafka {
    let dir = dir.to_path_buf();
    let log = std::fs::File::create(dir.join("script.log")).unwrap();
    let mut command = Command::new(workspace().join("bench/peers/apache-kafka.sh"));
    command
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(&dir);
    if let Some(controller_port) = controller_port {
        command.args(["--controller-port", &controller_port.to_string()]);
    }
    let child = command
        .env("KAFKA_DEPS_DIR", jars)
        .env("KAFKA_EXTRA_PROPERTIES", extra)
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

    // No authorizer on this broker: the ACL APIs answer SECURITY_DISABLED.
    fails_with(run(&["acls", "--list"], ""), "SECURITY_DISABLED");
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

/// server.properties lines for a Kafka with four listeners (PLAINTEXT for the test's own raw
/// requests, SSL requiring client certificates, SASL_PLAINTEXT, SASL_SSL), PLAIN users admin
/// and alice in JAAS, SCRAM on both SASL listeners, and the StandardAuthorizer with admin as
/// super user. ANONYMOUS (the PLAINTEXT and controller listeners) is a super user too: the
/// broker reaches its controller over PLAINTEXT and must be allowed to.
fn secured_kafka_properties(ports: &Listeners, controller_port: u16, certs: &Certs) -> String {
    let plain = format!(
        "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{}\" \
         password=\"{}\" user_{}=\"{}\" user_{}=\"{}\";",
        ADMIN.0, ADMIN.1, ADMIN.0, ADMIN.1, ALICE.0, ALICE.1
    );
    let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
    let listeners = [
        ("PLAINTEXT", "127.0.0.1", ports.plaintext),
        ("SSL", "localhost", ports.ssl),
        ("SASL_PLAINTEXT", "127.0.0.1", ports.sasl_plaintext),
        ("SASL_SSL", "localhost", ports.sasl_ssl),
    ];
    let bind: Vec<String> = listeners
        .iter()
        .map(|(name, _, port)| format!("{name}://127.0.0.1:{port}"))
        .collect();
    let advertised: Vec<String> = listeners
        .iter()
        .map(|(name, host, port)| format!("{name}://{host}:{port}"))
        .collect();
    let mut lines = vec![
        format!(
            "listeners={},CONTROLLER://127.0.0.1:{controller_port}",
            bind.join(",")
        ),
        format!("advertised.listeners={}", advertised.join(",")),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,\
         SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
            .to_string(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        format!("super.users=User:{};User:ANONYMOUS", ADMIN.0),
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".into(),
        "ssl.keystore.type=PEM".into(),
        format!("ssl.keystore.location={}", certs.broker_keystore.display()),
        "listener.name.ssl.ssl.client.auth=required".into(),
        "listener.name.ssl.ssl.truststore.type=PEM".into(),
        format!(
            "listener.name.ssl.ssl.truststore.location={}",
            certs.ca.display()
        ),
    ];
    for listener in ["sasl_plaintext", "sasl_ssl"] {
        lines.push(format!(
            "listener.name.{listener}.plain.sasl.jaas.config={plain}"
        ));
        for mechanism in ["scram-sha-256", "scram-sha-512"] {
            lines.push(format!(
                "listener.name.{listener}.{mechanism}.sasl.jaas.config={scram}"
            ));
        }
    }
    // The script splits KAFKA_EXTRA_PROPERTIES at blanks; Java reads \u0020 back as one.
    lines.join("\n").replace(' ', "\\u0020")
}

/// ACLs, secured listeners and quotas against Kafka's StandardAuthorizer: `acls` round trips as
/// admin and is refused for alice where Kafka refuses her, the mTLS principal gets what an ACL
/// gives it, `--command-config` works with every protocol and mechanism, `quotas` round trips.
#[test]
fn acls_quotas_and_secured_listeners_against_apache_kafka() {
    let Some(jars) = kafka_jars() else {
        eprintln!(
            "SKIPPED: no Apache Kafka jars (run scripts/install-test-deps.sh or set KAFKA_DEPS_DIR)"
        );
        return;
    };
    let ports = Listeners {
        plaintext: support::free_port(),
        ssl: support::free_port(),
        sasl_plaintext: support::free_port(),
        sasl_ssl: support::free_port(),
    };
    let controller_port = support::free_port();
    let dir = kafka_dir(ports.plaintext);
    let Some(certs) = make_certs(&dir) else {
        eprintln!("SKIPPED: openssl is not installed (scripts/install-test-deps.sh)");
        return;
    };
    let extra = secured_kafka_properties(&ports, controller_port, &certs);
    let kafka = start_kafka_with(&jars, ports.plaintext, Some(controller_port), &extra, &dir);
    create_scram_user(&kafka.bootstrap, "carol", "carol-secret");
    check_command_configs(&dir, &certs, &ports, ("carol", "carol-secret"));

    let sasl = format!("127.0.0.1:{}", ports.sasl_plaintext);
    let admin = sasl_properties(&dir, "admin", "PLAIN", ADMIN, None);
    let alice = sasl_properties(&dir, "alice", "PLAIN", ALICE, None);
    let as_admin = |args: &[&str]| tools_as(&sasl, &admin, args);
    let as_alice = |args: &[&str]| tools_as(&sasl, &alice, args);
    ok(as_admin(&[
        "topics",
        "create",
        "secured",
        "--partitions",
        "1",
    ]));
    check_acls(&as_admin, &as_alice);
    check_mtls_principal(&dir, &certs, ports.ssl, &as_admin);
    check_quotas(&as_admin);
    fails_with(
        as_alice(&["quotas", "--describe"]),
        "CLUSTER_AUTHORIZATION_FAILED",
    );
    let out = as_alice(&[
        "quotas",
        "--alter",
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
        "--add-config",
        "producer_byte_rate=1",
    ]);
    fails_with(out, "CLUSTER_AUTHORIZATION_FAILED");
}

type Run<'a> = &'a dyn Fn(&[&str]) -> Output;

/// Adds alice's ACLs as admin, lists them with each filter, and checks that they take effect.
fn check_acls(as_admin: Run<'_>, as_alice: Run<'_>) {
    let topics_of_alice = || as_alice(&["topics", "list"]);
    assert!(
        !ok(topics_of_alice()).contains("secured"),
        "alice sees no topic yet"
    );
    let added = ok(as_admin(&[
        "acls",
        "--add",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--operation",
        "Describe",
        "--topic",
        "secured",
        "--group",
        "g1",
    ]));
    assert!(
        added.contains(
            "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=secured, \
             patternType=LITERAL)`:\n \t(principal=User:alice, host=*, operation=READ, \
             permissionType=ALLOW)"
        ),
        "{added}"
    );
    ok(as_admin(&[
        "acls",
        "--add",
        "--deny-principal",
        "User:alice",
        "--deny-host",
        "10.9.9.9",
        "--operation",
        "Write",
        "--topic",
        "sec",
        "--resource-pattern-type",
        "prefixed",
    ]));
    let json = until(
        "ACLs of alice",
        || as_admin(&["acls", "--list", "--principal", "User:alice", "--json"]),
        |out| out.matches("\"principal\"").count() == 5,
    );
    assert!(
        json.contains(
            r#"{"resource_type":"TOPIC","resource_name":"sec","pattern_type":"PREFIXED","principal":"User:alice","host":"10.9.9.9","operation":"WRITE","permission_type":"DENY"}"#
        ),
        "{json}"
    );
    // Pattern type any: the patterns named `secured`; match: also the prefix that covers it.
    let named = ok(as_admin(&["acls", "--list", "--topic", "secured"]));
    assert_eq!(named.matches("principal=").count(), 2, "{named}");
    let matching = ok(as_admin(&[
        "acls",
        "--list",
        "--topic",
        "secured",
        "--resource-pattern-type",
        "match",
    ]));
    assert!(
        matching.contains("name=sec, patternType=PREFIXED"),
        "{matching}"
    );
    until("alice's Describe", topics_of_alice, |out| {
        out.contains("secured")
    });

    check_refusals(as_admin, as_alice);
    remove_acls(as_admin);
}

/// Kafka's refusals of alice (and of a remove without --force), each with its error name and
/// message, exit status 1.
fn check_refusals(as_admin: Run<'_>, as_alice: Run<'_>) {
    fails_with(
        as_alice(&["acls", "--list"]),
        "describe ACLs: CLUSTER_AUTHORIZATION_FAILED",
    );
    let out = as_alice(&[
        "acls",
        "--add",
        "--allow-principal",
        "User:alice",
        "--topic",
        "secured",
    ]);
    fails_with(out, "CLUSTER_AUTHORIZATION_FAILED");
    let out = as_alice(&["acls", "--remove", "--force", "--topic", "secured"]);
    fails_with(out, "CLUSTER_AUTHORIZATION_FAILED");
    let out = as_alice(&["topics", "create", "alices-own"]);
    fails_with(out, "TOPIC_AUTHORIZATION_FAILED");
    let out = as_admin(&["acls", "--remove", "--topic", "secured"]);
    fails_with(out, "--remove needs --force");
}

/// Removes alice's ACLs in three ways (one operation, whole resources, a prefixed pattern) and
/// checks what each removal printed.
fn remove_acls(as_admin: Run<'_>) {
    let removed = ok(as_admin(&[
        "acls",
        "--remove",
        "--force",
        "--topic",
        "secured",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
    ]));
    assert_eq!(removed.matches("principal=").count(), 1, "{removed}");
    assert!(removed.contains("operation=READ"), "{removed}");
    ok(as_admin(&[
        "acls", "--remove", "--force", "--topic", "secured", "--group", "g1",
    ]));
    let prefixed = ok(as_admin(&[
        "acls",
        "--remove",
        "--force",
        "--topic",
        "sec",
        "--resource-pattern-type",
        "prefixed",
    ]));
    assert!(prefixed.contains("permissionType=DENY"), "{prefixed}");
    until(
        "alice's ACLs removed",
        || as_admin(&["acls", "--list", "--principal", "User:alice"]),
        |out| out.trim().is_empty(),
    );
    let none = ok(as_admin(&[
        "acls", "--remove", "--force", "--topic", "secured",
    ]));
    assert_eq!(none.trim(), "No ACLs matched.");
}

/// The client certificate is the principal on the SSL listener: it sees `secured` only once an
/// ACL for `User:CN=tools-client` allows it.
fn check_mtls_principal(dir: &Path, certs: &Certs, ssl_port: u16, as_admin: Run<'_>) {
    let mtls = properties(
        dir,
        "mtls.properties",
        &format!(
            "security.protocol=SSL\nssl.truststore.location={}\nssl.keystore.location={}\n",
            certs.ca.display(),
            certs.client_keystore.display()
        ),
    );
    let address = format!("localhost:{ssl_port}");
    let list = || tools_as(&address, &mtls, &["topics", "list"]);
    assert!(!ok(list()).contains("secured"));
    ok(as_admin(&[
        "acls",
        "--add",
        "--allow-principal",
        "User:CN=tools-client",
        "--operation",
        "Describe",
        "--topic",
        "secured",
    ]));
    until("the certificate's ACL", list, |out| out.contains("secured"));
    ok(as_admin(&[
        "acls", "--remove", "--force", "--topic", "secured",
    ]));
}
