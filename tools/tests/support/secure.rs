//! The `--command-config` and `quotas` checks that kafka.rs runs against Apache Kafka and cli.rs
//! against millrace, and what they need: a CA, a broker certificate and a client certificate
//! made with openssl (as tests/clients/test_security.py makes them), Kafka client properties
//! files, and SCRAM users created with AlterUserScramCredentials on the raw protocol.
//!
//! The broker certificate names `localhost` only (no IP SAN), so that connecting to
//! `127.0.0.1` shows the host name check at work and `ssl.endpoint.identification.algorithm=`
//! turning it off. Any unexpected answer panics: this is test code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::AlterUserScramCredentialsRequest;
use kafka_protocol::protocol::StrBytes;
use millrace_security::sasl::{salted_password, Mechanism};

use super::txn::Conn;

const TOOLS: &str = env!("CARGO_BIN_EXE_millrace-tools");
/// SCRAM credentials and ACL or quota changes reach a Kafka broker through the metadata log, a
/// little after the request that made them is answered.
const PROPAGATION_WAIT: Duration = Duration::from_secs(30);
const RETRY_BACKOFF: Duration = Duration::from_millis(250);
const SCRAM_ITERATIONS: i32 = 8192;
/// The PLAIN users every secured broker of these tests declares in its JAAS line.
pub const ADMIN: (&str, &str) = ("admin", "admin-secret");
pub const ALICE: (&str, &str) = ("alice", "alice-secret");

/// The files [`make_certs`] writes.
pub struct Certs {
    /// The CA certificate: the clients' truststore.
    pub ca: PathBuf,
    /// The broker's key and certificate (CN and SAN `localhost`), one PEM file.
    pub broker_keystore: PathBuf,
    /// A client's key and certificate (CN=tools-client), one PEM file.
    pub client_keystore: PathBuf,
}

/// The ports of a broker's four listeners.
pub struct Listeners {
    pub plaintext: u16,
    pub ssl: u16,
    pub sasl_plaintext: u16,
    pub sasl_ssl: u16,
}

/// A CA, a broker and a client certificate in `dir`; `None` when openssl is not installed.
pub fn make_certs(dir: &Path) -> Option<Certs> {
    if Command::new("openssl").arg("version").output().is_err() {
        return None;
    }
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "ca.key",
    ]);
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=millrace-tools-test-ca",
        "-days",
        "2",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
    ]);
    for (name, subject, extension) in [
        ("broker", "/CN=localhost", "subjectAltName=DNS:localhost"),
        ("client", "/CN=tools-client", "extendedKeyUsage=clientAuth"),
    ] {
        let (raw, key, csr, pem) = (
            format!("{name}.raw.key"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        run(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &raw,
        ]);
        run(&["pkcs8", "-topk8", "-nocrypt", "-in", &raw, "-out", &key]);
        run(&[
            "req", "-new", "-key", &key, "-subj", subject, "-addext", extension, "-out", &csr,
        ]);
        // Extensions make it an X.509 v3 certificate, the only version rustls accepts.
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-copy_extensions",
            "copy",
            "-out",
            &pem,
        ]);
        let keystore = std::fs::read_to_string(dir.join(&key)).unwrap()
            + &std::fs::read_to_string(dir.join(&pem)).unwrap();
        std::fs::write(dir.join(format!("{name}-keystore.pem")), keystore).unwrap();
    }
    Some(Certs {
        ca: dir.join("ca.pem"),
        broker_keystore: dir.join("broker-keystore.pem"),
        client_keystore: dir.join("client-keystore.pem"),
    })
}

/// Writes `text` to `dir/name` and returns the path.
pub fn properties(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `dir/name.properties` for SASL with `mechanism` as `user`, over TLS (trusting `ca`) when
/// `ca` is given.
pub fn sasl_properties(
    dir: &Path,
    name: &str,
    mechanism: &str,
    (user, password): (&str, &str),
    ca: Option<&Path>,
) -> PathBuf {
    let module = match mechanism {
        "PLAIN" => "org.apache.kafka.common.security.plain.PlainLoginModule",
        _ => "org.apache.kafka.common.security.scram.ScramLoginModule",
    };
    let mut text = format!(
        "# {name}\nsasl.mechanism={mechanism}\nsasl.jaas.config={module} required \\\n    \
         username=\"{user}\" password=\"{password}\";\n"
    );
    match ca {
        Some(ca) => text.push_str(&format!(
            "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n",
            ca.display()
        )),
        None => text.push_str("security.protocol=SASL_PLAINTEXT\n"),
    }
    properties(dir, &format!("{name}.properties"), &text)
}

/// Gives `user` a SCRAM-SHA-256 and a SCRAM-SHA-512 credential for `password` through
/// AlterUserScramCredentials on the PLAINTEXT listener `bootstrap`, one request per mechanism
/// (Kafka refuses two changes of one user in a request with DUPLICATE_RESOURCE).
pub fn create_scram_user(bootstrap: &str, user: &str, password: &str) {
    for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
        let mut request = AlterUserScramCredentialsRequest::default();
        let salt = format!("{user}-{mechanism}-{}", std::process::id()).into_bytes();
        let salted = salted_password(mechanism, password, &salt, SCRAM_ITERATIONS).unwrap();
        let mut upsertion = ScramCredentialUpsertion::default();
        upsertion.name = StrBytes::from_string(user.to_string());
        upsertion.mechanism = mechanism.scram_type().unwrap();
        upsertion.iterations = SCRAM_ITERATIONS;
        upsertion.salt = Bytes::from(salt);
        upsertion.salted_password = Bytes::from(salted);
        request.upsertions.push(upsertion);
        let response = Conn::connect(bootstrap).call(&request, 0);
        for result in &response.results {
            assert_eq!(
                result.error_code, 0,
                "create {mechanism} user {user}: {result:?}"
            );
        }
    }
}

/// Runs `millrace-tools ARGS`.
pub fn tools(args: &[&str]) -> Output {
    Command::new(TOOLS).args(args).output().unwrap()
}

/// Runs `millrace-tools ARGS --bootstrap-server ADDRESS --command-config CONFIG`.
pub fn tools_as(address: &str, config: &Path, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    let config = config.to_str().unwrap();
    all.extend(["--bootstrap-server", address, "--command-config", config]);
    tools(&all)
}

#[track_caller]
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts exit status 1 and a stderr naming `needle`; returns stderr.
#[track_caller]
pub fn fails_with(out: Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
    stderr
}

/// Runs `probe` until it succeeds (the change it waits for has propagated); returns stdout.
#[track_caller]
pub fn eventually(what: &str, probe: impl Fn() -> Output) -> String {
    let deadline = Instant::now() + PROPAGATION_WAIT;
    loop {
        let out = probe();
        if out.status.success() || Instant::now() > deadline {
            return ok(out);
        }
        eprintln!(
            "{what}: not yet: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        std::thread::sleep(RETRY_BACKOFF);
    }
}

/// Polls `probe` until its stdout satisfies `done`; returns that stdout.
#[track_caller]
pub fn until(what: &str, probe: impl Fn() -> Output, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PROPAGATION_WAIT;
    loop {
        let stdout = ok(probe());
        if done(&stdout) {
            return stdout;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never reached; last:\n{stdout}"
        );
        std::thread::sleep(RETRY_BACKOFF);
    }
}

/// `--command-config` against a broker with the four listeners of `ports`, PLAIN users
/// [`ADMIN`] and [`ALICE`], TLS with `certs`, and a SCRAM user `scram` (both mechanisms):
/// every protocol and mechanism connects, the host name check and wrong passwords refuse.
pub fn check_command_configs(dir: &Path, certs: &Certs, ports: &Listeners, scram: (&str, &str)) {
    check_tls(dir, certs, ports.ssl);
    let sasl = format!("127.0.0.1:{}", ports.sasl_plaintext);
    let sasl_ssl = format!("localhost:{}", ports.sasl_ssl);
    let list = |address: &str, config: &Path| tools_as(address, config, &["topics", "list"]);
    let tls = Some(certs.ca.as_path());
    ok(list(
        &sasl_ssl,
        &sasl_properties(dir, "p-ssl", "PLAIN", ALICE, tls),
    ));
    let wrong = sasl_properties(dir, "p-wrong", "PLAIN", (ALICE.0, "guess"), None);
    fails_with(list(&sasl, &wrong), "SASL_AUTHENTICATION_FAILED");
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let plaintext = sasl_properties(dir, mechanism, mechanism, scram, None);
        eventually(&format!("{mechanism} login"), || list(&sasl, &plaintext));
        let over_tls = sasl_properties(dir, &format!("{mechanism}-ssl"), mechanism, scram, tls);
        ok(list(&sasl_ssl, &over_tls));
        let guess = (scram.0, "guess");
        let wrong = sasl_properties(dir, &format!("{mechanism}-wrong"), mechanism, guess, None);
        fails_with(list(&sasl, &wrong), "SASL_AUTHENTICATION_FAILED");
    }
    // Without --command-config a SASL listener hangs up after ApiVersions.
    let out = tools(&["topics", "list", "--bootstrap-server", &sasl]);
    fails_with(out, "closed the connection");
}

/// SSL with the client certificate: the host name must be in the broker's certificate unless
/// `ssl.endpoint.identification.algorithm` is empty; a plaintext client is refused.
fn check_tls(dir: &Path, certs: &Certs, port: u16) {
    let ssl = format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
         ssl.keystore.type=PEM\nssl.keystore.location={}\n",
        certs.ca.display(),
        certs.client_keystore.display()
    );
    let checked = properties(dir, "ssl.properties", &ssl);
    let unchecked = format!("{ssl}ssl.endpoint.identification.algorithm=\n");
    let unchecked = properties(dir, "ssl-no-hostname.properties", &unchecked);
    let (by_name, by_ip) = (format!("localhost:{port}"), format!("127.0.0.1:{port}"));
    let list = |address: &str, config: &Path| tools_as(address, config, &["topics", "list"]);
    ok(list(&by_name, &checked));
    fails_with(list(&by_ip, &checked), "certificate not valid for name");
    ok(list(&by_ip, &unchecked));
    let out = tools(&["topics", "list", "--bootstrap-server", &by_ip]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// The entities of [`check_quotas`]: (entity flags, quotas set, what `--describe` prints).
const QUOTA_CASES: [(&str, &str, &str); 5] = [
    (
        "--entity-type users --entity-name alice",
        "producer_byte_rate=1048576,consumer_byte_rate=2097152,request_percentage=200,\
         controller_mutation_rate=10",
        "Quota configs for user-principal 'alice' are consumer_byte_rate=2097152.0, \
         controller_mutation_rate=10.0, producer_byte_rate=1048576.0, request_percentage=200.0",
    ),
    (
        "--entity-type users --entity-name alice --entity-type clients --entity-name app",
        "producer_byte_rate=1024",
        "Quota configs for user-principal 'alice', client-id 'app' are producer_byte_rate=1024.0",
    ),
    (
        "--entity-type users --entity-default",
        "consumer_byte_rate=4096",
        "Quota configs for the default user-principal are consumer_byte_rate=4096.0",
    ),
    (
        "--entity-type clients --entity-default",
        "request_percentage=50.5",
        "Quota configs for the default client-id are request_percentage=50.5",
    ),
    (
        "--entity-type ips --entity-name 10.1.2.3",
        "connection_creation_rate=7",
        "Quota configs for ip '10.1.2.3' are connection_creation_rate=7.0",
    ),
];

/// `quotas` round trip through `run` (a command with the connection flags appended): users,
/// clients, a (user, client) pair, the defaults and an IP, described, then deleted again.
pub fn check_quotas(run: &dyn Fn(&[&str]) -> Output) {
    let alter = |entity: &str, change: &[&str]| {
        let mut args = vec!["quotas", "--alter"];
        args.extend(entity.split_whitespace());
        args.extend(change);
        ok(run(&args))
    };
    for (entity, set, _) in QUOTA_CASES {
        let done = alter(entity, &["--add-config", set]);
        assert!(done.starts_with("Completed updating quotas for "), "{done}");
    }
    let bob = "--entity-type users --entity-name bob";
    let dry = alter(bob, &["--add-config", "producer_byte_rate=1", "--dry-run"]);
    assert!(dry.contains("dry run"), "{dry}");
    let describe_all = || run(&["quotas", "--describe"]);
    let everything = until("quotas altered", describe_all, |out| {
        QUOTA_CASES
            .iter()
            .all(|(_, _, line)| out.lines().any(|l| l == *line))
    });
    assert!(
        !everything.contains("'bob'"),
        "a dry run changes nothing: {everything}"
    );
    check_quota_filters(run);
    for (entity, set, _) in QUOTA_CASES {
        let keys: Vec<&str> = set
            .split(',')
            .filter_map(|kv| kv.split('=').next())
            .collect();
        alter(entity, &["--delete-config", &keys.join(",")]);
    }
    until("quotas deleted", describe_all, |out| out.trim().is_empty());
}

/// With [`QUOTA_CASES`] set: strict filters (alice alone is not (alice, app); a type alone
/// matches names and defaults), JSON, and the broker's refusal of a key the entity cannot have.
fn check_quota_filters(run: &dyn Fn(&[&str]) -> Output) {
    let describe = |filter: &str| {
        let mut args = vec!["quotas", "--describe"];
        args.extend(filter.split_whitespace());
        ok(run(&args))
    };
    assert_eq!(describe(QUOTA_CASES[0].0).trim(), QUOTA_CASES[0].2);
    let users = describe("--entity-type users");
    assert_eq!(users.lines().count(), 2, "{users}");
    let json = describe("--entity-type users --entity-type clients --json");
    assert_eq!(
        json.trim(),
        r#"[{"entity":{"client-id":"app","user":"alice"},"quotas":{"producer_byte_rate":1024}}]"#
    );
    let mut args = vec!["quotas", "--alter", "--add-config", "producer_byte_rate=1"];
    args.extend(QUOTA_CASES[4].0.split_whitespace());
    fails_with(run(&args), "INVALID_REQUEST");
}
