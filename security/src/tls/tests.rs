//! End-to-end checks with key material made by the `openssl` CLI (skipped, with a note, when it
//! is missing): configurations are built from it and proven by in-memory rustls handshakes,
//! with the two connections exchanging bytes through buffers.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use rand::{Rng, SeedableRng};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use rustls_pki_types::ServerName;

use super::material::{self, Origin};
use super::*;
use super::{params, pbe};

const PASSWORD: &str = "s3cret-pässword";

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
";

/// PEM texts made once per test run.
struct Fixture {
    ca: String,
    other_ca: String,
    /// EC P-256 broker certificate for localhost / 127.0.0.1.
    broker_cert: String,
    /// The broker key as plain PKCS#8, SEC1, PBES2 (AES-256, HMAC-SHA256), PBES2 (AES-128,
    /// HMAC-SHA1) and PBE-SHA1-3DES; the encrypted ones under `PASSWORD`.
    broker_keys: Vec<(&'static str, String)>,
    rsa_cert: String,
    /// The RSA key as PKCS#8, PKCS#1 and PBE-SHA1-3DES.
    rsa_keys: Vec<(&'static str, String)>,
    /// Subject sequence O, OU, CN (so Java prints CN first).
    alice_cert: String,
    alice_key: String,
    /// Subject sequence CN, OU, O, from `-subj "/CN=alice/OU=eng/O=millrace"`.
    alice_cn_first_cert: String,
    /// Multi-valued RDN, escapes and an attribute without an RFC 2253 keyword.
    odd_subject_cert: String,
    /// Signed by `other_ca`.
    mallory_cert: String,
    mallory_key: String,
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    let fixture = FIXTURE.get_or_init(|| {
        if Command::new("openssl").arg("version").output().is_err() {
            return None;
        }
        Some(make_fixture())
    });
    if fixture.is_none() {
        println!("note: openssl not found; skipping a TLS test that needs generated keys");
    }
    fixture.as_ref()
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("millrace-tls-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the `openssl` CLI in a scratch directory.
struct Maker {
    dir: TempDir,
}

impl Maker {
    /// `args` is split on spaces; `extra` (values that may hold spaces) follows as given.
    fn run(&self, args: &str, extra: &[&str]) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .args(extra)
            .current_dir(&self.dir.0)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args} {extra:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ec_key(&self, name: &str) {
        self.run(
            &format!("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {name}"),
            &[],
        );
    }

    fn ca(&self, name: &str, subject: &str) {
        self.ec_key(&format!("{name}.key"));
        self.run(
            &format!(
                "req -x509 -new -config ext.cnf -extensions ca_ext -key {name}.key -days 3 \
                 -sha256 -out {name}.pem -subj"
            ),
            &[subject],
        );
    }

    fn issue(&self, name: &str, key: &str, subject: &str, ca: &str, ext: &str, serial: u32) {
        self.run(
            &format!("req -new -config ext.cnf -key {key} -out {name}.csr -subj"),
            &[subject],
        );
        self.run(
            &format!(
                "x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -set_serial {serial} \
                 -days 3 -sha256 -extfile ext.cnf -extensions {ext} -out {name}.pem"
            ),
            &[],
        );
    }

    fn encrypt(&self, input: &str, output: &str, how: &str) {
        let pass = format!("pass:{PASSWORD}");
        self.run(
            &format!("pkcs8 -topk8 -in {input} -out {output} {how} -passout"),
            &[&pass],
        );
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path(name)).unwrap()
    }
}

fn make_fixture() -> Fixture {
    let m = Maker {
        dir: TempDir::new("fixture"),
    };
    std::fs::write(m.dir.path("ext.cnf"), OPENSSL_CNF).unwrap();
    m.ca("ca", "/CN=Millrace Test CA");
    m.ca("other-ca", "/CN=Someone Else CA");
    m.ec_key("broker.key");
    m.issue(
        "broker",
        "broker.key",
        "/CN=localhost",
        "ca",
        "server_ext",
        2,
    );
    m.run("ec -in broker.key -out broker.sec1.key", &[]);
    m.encrypt("broker.key", "broker.aes256.key", "-v2 aes-256-cbc");
    m.encrypt(
        "broker.key",
        "broker.aes128-sha1.key",
        "-v2 aes-128-cbc -v2prf hmacWithSHA1",
    );
    m.encrypt("broker.key", "broker.3des.key", "-v1 PBE-SHA1-3DES");

    m.run(
        "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key",
        &[],
    );
    m.issue("rsa", "rsa.key", "/CN=localhost", "ca", "server_ext", 3);
    m.run("rsa -in rsa.key -traditional -out rsa.pkcs1.key", &[]);
    m.encrypt("rsa.key", "rsa.3des.key", "-v1 PBE-SHA1-3DES");

    m.ec_key("alice.key");
    m.run("ec -in alice.key -out alice.sec1.key", &[]);
    m.issue(
        "alice",
        "alice.key",
        "/O=millrace/OU=eng/CN=alice",
        "ca",
        "client_ext",
        4,
    );
    m.issue(
        "alice2",
        "alice.key",
        "/CN=alice/OU=eng/O=millrace",
        "ca",
        "client_ext",
        5,
    );
    let odd = "/C=GB/O=Mill, Race\\+Co/CN=bob+UID=42/emailAddress=bob@example.com";
    m.issue("odd", "alice.key", odd, "ca", "client_ext", 6);
    m.ec_key("mallory.key");
    m.issue(
        "mallory",
        "mallory.key",
        "/CN=mallory",
        "other-ca",
        "client_ext",
        7,
    );

    Fixture {
        ca: m.read("ca.pem"),
        other_ca: m.read("other-ca.pem"),
        broker_cert: m.read("broker.pem"),
        broker_keys: vec![
            ("pkcs8", m.read("broker.key")),
            ("sec1", m.read("broker.sec1.key")),
            ("pbes2-aes256", m.read("broker.aes256.key")),
            ("pbes2-aes128-sha1", m.read("broker.aes128-sha1.key")),
            ("pbe-sha1-3des", m.read("broker.3des.key")),
        ],
        rsa_cert: m.read("rsa.pem"),
        rsa_keys: vec![
            ("pkcs8", m.read("rsa.key")),
            ("pkcs1", m.read("rsa.pkcs1.key")),
            ("pbe-sha1-3des", m.read("rsa.3des.key")),
        ],
        alice_cert: m.read("alice.pem"),
        alice_key: m.read("alice.sec1.key"),
        alice_cn_first_cert: m.read("alice2.pem"),
        odd_subject_cert: m.read("odd.pem"),
        mallory_cert: m.read("mallory.pem"),
        mallory_key: m.read("mallory.key"),
    }
}

fn encrypted(key_pem: &str) -> bool {
    key_pem.contains("ENCRYPTED PRIVATE KEY")
}

fn inline_key(key_pem: &str, chain_pem: &str) -> KeySource {
    KeySource::Inline {
        key_pem: key_pem.to_string(),
        chain_pem: chain_pem.to_string(),
    }
}

fn inline_trust(pem: &str) -> Option<TrustSource> {
    Some(TrustSource::Inline {
        pem: pem.to_string(),
    })
}

fn server_settings(f: &Fixture, client_auth: ClientAuth, protocol: &str) -> ServerTlsSettings {
    let mut s = ServerTlsSettings::new(inline_key(&f.broker_keys[0].1, &f.broker_cert));
    s.truststore = inline_trust(&f.ca);
    s.client_auth = client_auth;
    s.enabled_protocols = vec![protocol.to_string()];
    s
}

fn client_settings(f: &Fixture, with_cert: bool) -> ClientTlsSettings {
    ClientTlsSettings {
        truststore: inline_trust(&f.ca),
        keystore: with_cert.then(|| (inline_key(&f.alice_key, &f.alice_cert), None)),
        ..ClientTlsSettings::default()
    }
}

#[derive(Debug)]
enum Failure {
    Server(rustls::Error),
    Client(rustls::Error),
}

/// Moves everything `from` has to send into `to`; an error is `to`'s.
fn pump(from: &mut Connection, to: &mut Connection) -> Result<bool, rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(!wire.is_empty())
}

/// Runs a handshake and a ping/pong between the two configurations.
fn connect(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    name: &str,
) -> Result<(Connection, Connection), Failure> {
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let mut s = Connection::from(ServerConnection::new(server.clone()).unwrap());
    let mut c = Connection::from(ClientConnection::new(client.clone(), server_name).unwrap());
    c.writer().write_all(b"ping").unwrap();
    for _ in 0..10 {
        let sent = pump(&mut c, &mut s).map_err(Failure::Server)?;
        let answered = pump(&mut s, &mut c).map_err(Failure::Client)?;
        if !sent && !answered {
            break;
        }
    }
    assert!(
        !c.is_handshaking() && !s.is_handshaking(),
        "handshake stalled"
    );
    let mut got = [0u8; 4];
    s.reader()
        .read_exact(&mut got)
        .expect("server reads the ping");
    assert_eq!(&got, b"ping");
    s.writer().write_all(b"pong").unwrap();
    pump(&mut s, &mut c).map_err(Failure::Client)?;
    c.reader()
        .read_exact(&mut got)
        .expect("client reads the pong");
    assert_eq!(&got, b"pong");
    Ok((s, c))
}

fn peer_dn(server_side: &Connection) -> Option<String> {
    let certs = server_side.peer_certificates()?;
    Some(certificate_dn(&certs[0]).unwrap())
}

#[test]
fn mtls_over_tls12_and_tls13_with_every_broker_key_form() {
    let Some(f) = fixture() else { return };
    let rules = PrincipalRules::parse(
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
         RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,DEFAULT",
    )
    .unwrap();
    for (protocol, version) in [
        ("TLSv1.2", rustls::ProtocolVersion::TLSv1_2),
        ("TLSv1.3", rustls::ProtocolVersion::TLSv1_3),
    ] {
        for (form, key) in &f.broker_keys {
            let mut s = server_settings(f, ClientAuth::Required, protocol);
            s.keystore = inline_key(key, &f.broker_cert);
            s.key_password = encrypted(key).then(|| PASSWORD.to_string());
            let server = server_config(&s).unwrap_or_else(|e| panic!("{form}: {e}"));
            let client = client_config(&client_settings(f, true)).unwrap();
            let (s_conn, c_conn) = connect(&server, &client, "localhost")
                .unwrap_or_else(|e| panic!("{protocol} {form}: {e:?}"));
            assert_eq!(c_conn.protocol_version(), Some(version));
            assert_eq!(
                peer_dn(&s_conn).as_deref(),
                Some("CN=alice,OU=eng,O=millrace")
            );
            let principal = peer_principal_name(s_conn.peer_certificates(), &rules).unwrap();
            assert_eq!(principal, "CN=alice,OU=eng,O=millrace");
        }
    }
}

#[test]
fn rsa_broker_keys_and_a_chosen_tls12_suite() {
    let Some(f) = fixture() else { return };
    for (form, key) in &f.rsa_keys {
        let mut s = server_settings(f, ClientAuth::None, "TLSv1.2");
        s.keystore = inline_key(key, &f.rsa_cert);
        s.key_password = encrypted(key).then(|| PASSWORD.to_string());
        s.cipher_suites = vec!["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string()];
        let server = server_config(&s).unwrap_or_else(|e| panic!("{form}: {e}"));
        let client = client_config(&client_settings(f, false)).unwrap();
        let (_, c_conn) =
            connect(&server, &client, "127.0.0.1").unwrap_or_else(|e| panic!("{form}: {e:?}"));
        assert_eq!(
            c_conn.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
        );
    }
}

#[test]
fn required_refuses_a_client_without_certificate_and_requested_accepts_it() {
    let Some(f) = fixture() else { return };
    for protocol in ["TLSv1.2", "TLSv1.3"] {
        let client = client_config(&client_settings(f, false)).unwrap();
        let required = server_config(&server_settings(f, ClientAuth::Required, protocol)).unwrap();
        match connect(&required, &client, "localhost") {
            Err(Failure::Server(rustls::Error::NoCertificatesPresented)) => {}
            other => panic!("{protocol}: expected refusal, got {other:?}"),
        }
        let requested =
            server_config(&server_settings(f, ClientAuth::Requested, protocol)).unwrap();
        let (s_conn, _) = connect(&requested, &client, "localhost").unwrap();
        assert_eq!(peer_dn(&s_conn), None);
        let rules = PrincipalRules::parse("DEFAULT").unwrap();
        assert_eq!(
            peer_principal_name(s_conn.peer_certificates(), &rules).unwrap(),
            ANONYMOUS
        );
        // A certificate is still verified and used when offered.
        let with_cert = client_config(&client_settings(f, true)).unwrap();
        let (s_conn, _) = connect(&requested, &with_cert, "localhost").unwrap();
        assert_eq!(
            peer_dn(&s_conn).as_deref(),
            Some("CN=alice,OU=eng,O=millrace")
        );
        // ClientAuth::None never asks.
        let none = server_config(&server_settings(f, ClientAuth::None, protocol)).unwrap();
        let (s_conn, _) = connect(&none, &with_cert, "localhost").unwrap();
        assert_eq!(peer_dn(&s_conn), None);
    }
}

#[test]
fn certificates_from_the_wrong_ca_are_refused() {
    let Some(f) = fixture() else { return };
    for protocol in ["TLSv1.2", "TLSv1.3"] {
        let server = server_config(&server_settings(f, ClientAuth::Required, protocol)).unwrap();
        // The client trusts another CA: it refuses the broker.
        let mut distrustful = client_settings(f, true);
        distrustful.truststore = inline_trust(&f.other_ca);
        let client = client_config(&distrustful).unwrap();
        assert!(matches!(
            connect(&server, &client, "localhost"),
            Err(Failure::Client(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            )))
        ));
        // The broker refuses a client certificate from another CA.
        let mut mallory = client_settings(f, true);
        mallory.keystore = Some((inline_key(&f.mallory_key, &f.mallory_cert), None));
        let client = client_config(&mallory).unwrap();
        assert!(matches!(
            connect(&server, &client, "localhost"),
            Err(Failure::Server(rustls::Error::InvalidCertificate(_)))
        ));
    }
}

#[test]
fn endpoint_identification_checks_the_name_but_never_skips_the_chain() {
    let Some(f) = fixture() else { return };
    let server = server_config(&server_settings(f, ClientAuth::None, "TLSv1.3")).unwrap();
    let checking = client_config(&client_settings(f, false)).unwrap();
    assert!(matches!(
        connect(&server, &checking, "broker.example"),
        Err(Failure::Client(rustls::Error::InvalidCertificate(_)))
    ));
    let mut lax = client_settings(f, false);
    lax.server_name_check = false;
    let lax_config = client_config(&lax).unwrap();
    connect(&server, &lax_config, "broker.example").expect("name ignored");
    lax.truststore = inline_trust(&f.other_ca);
    let lax_wrong_ca = client_config(&lax).unwrap();
    assert!(matches!(
        connect(&server, &lax_wrong_ca, "broker.example"),
        Err(Failure::Client(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )))
    ));
}

#[test]
fn distinguished_names_print_as_java_does() {
    let Some(f) = fixture() else { return };
    let der = |pem: &str| material::parse_certificates(pem.as_bytes(), &test_origin()).unwrap();
    assert_eq!(
        certificate_dn(&der(&f.alice_cert)[0]).unwrap(),
        "CN=alice,OU=eng,O=millrace"
    );
    // `-subj "/CN=alice/OU=eng/O=millrace"` encodes CN first; Java prints the last RDN first.
    assert_eq!(
        certificate_dn(&der(&f.alice_cn_first_cert)[0]).unwrap(),
        "O=millrace,OU=eng,CN=alice"
    );
    // emailAddress has no RFC 2253 keyword: dotted OID and the IA5String's DER in hex. The
    // multi-valued RDN keeps its encoded order (CN, then UID); `,` and `+` are escaped.
    let email: String = b"bob@example.com"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        certificate_dn(&der(&f.odd_subject_cert)[0]).unwrap(),
        format!("1.2.840.113549.1.9.1=#160f{email},CN=bob+UID=42,O=Mill\\, Race\\+Co,C=GB")
    );
}

#[test]
fn key_password_errors_are_clear_and_do_not_leak() {
    let Some(f) = fixture() else { return };
    for (form, key) in f.broker_keys.iter().filter(|(_, k)| encrypted(k)) {
        let mut s = server_settings(f, ClientAuth::None, "TLSv1.3");
        s.keystore = inline_key(key, &f.broker_cert);
        let err = server_config(&s).unwrap_err();
        assert!(
            matches!(err, TlsError::KeyPasswordMissing { .. }),
            "{form}: {err}"
        );
        assert!(err.to_string().starts_with("ssl.key.password: "), "{err}");
        // Many wrong passwords: also the ones whose CBC padding happens to look valid.
        for i in 0..40 {
            let wrong = format!("not-the-password-{i}");
            s.key_password = Some(wrong.clone());
            let err = server_config(&s).unwrap_err();
            assert!(
                matches!(err, TlsError::WrongKeyPassword { .. }),
                "{form}: {err}"
            );
            let text = err.to_string();
            assert!(
                text.starts_with("ssl.key.password: cannot decrypt"),
                "{text}"
            );
            assert!(
                !text.contains(&wrong) && !text.contains("PRIVATE KEY"),
                "{text}"
            );
        }
    }
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let Some(f) = fixture() else { return };
    let mut s = server_settings(f, ClientAuth::None, "TLSv1.3");
    s.keystore = inline_key(&f.alice_key, &f.broker_cert);
    let err = server_config(&s).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "ssl.keystore.key: the private key in the configured value does not match the certificate"
    );
    s.keystore = inline_key(&f.rsa_keys[0].1, &f.rsa_keys[0].1);
    let err = server_config(&s).unwrap_err();
    assert!(
        matches!(err, TlsError::NoCertificate { key, .. } if key == "ssl.keystore.certificate.chain")
    );
    s.keystore = inline_key(&f.rsa_keys[1].1, &f.broker_cert);
    let err = server_config(&s).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    let mut c = client_settings(f, true);
    c.keystore = Some((inline_key(&f.mallory_key, &f.alice_cert), None));
    let err = client_config(&c).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
}

#[test]
fn truststore_requirements() {
    let Some(f) = fixture() else { return };
    let mut s = server_settings(f, ClientAuth::Required, "TLSv1.3");
    s.truststore = None;
    let err = server_config(&s).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ssl.client.auth=required needs a truststore: set ssl.truststore.location or \
         ssl.truststore.certificates"
    );
    s.client_auth = ClientAuth::None;
    server_config(&s).expect("no client auth needs no truststore");
    let mut c = client_settings(f, false);
    c.truststore = None;
    assert!(matches!(
        client_config(&c).unwrap_err(),
        TlsError::ClientTruststoreRequired
    ));
    c.truststore = inline_trust("no pem here");
    let err = client_config(&c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ssl.truststore.certificates: no certificate in the configured value"
    );
}

#[test]
fn file_sources_watched_files_and_fingerprint() {
    let Some(f) = fixture() else { return };
    let dir = TempDir::new("files");
    let keystore = dir.path("broker.pem");
    let truststore = dir.path("ca.pem");
    // Kafka's PEM keystore file: the key and the chain in one file.
    let (_, encrypted_key) = &f.broker_keys[4];
    let chain = format!("{}{}{}", encrypted_key, f.broker_cert, f.ca);
    std::fs::write(&keystore, chain).unwrap();
    std::fs::write(&truststore, &f.ca).unwrap();
    let mut s = server_settings(f, ClientAuth::Required, "TLSv1.3");
    s.keystore = KeySource::File {
        path: keystore.clone(),
    };
    s.key_password = Some(PASSWORD.to_string());
    s.truststore = Some(TrustSource::File {
        path: truststore.clone(),
    });
    let server = server_config(&s).unwrap();
    let mut c = client_settings(f, true);
    c.truststore = s.truststore.clone();
    let client = client_config(&c).unwrap();
    connect(&server, &client, "localhost").unwrap();

    let files = watched_files(&s);
    assert_eq!(files, [keystore.clone(), truststore.clone()]);
    assert_eq!(client_watched_files(&c), std::slice::from_ref(&truststore));
    let before = fingerprint(&files);
    assert_eq!(before, fingerprint(&files), "stable while nothing changes");
    std::fs::write(&truststore, format!("{}{}", f.ca, f.other_ca)).unwrap();
    let after = fingerprint(&files);
    assert_ne!(before, after, "content change");
    std::fs::remove_file(&truststore).unwrap();
    assert_ne!(after, fingerprint(&files), "removal");
    let err = server_config(&s).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("ssl.truststore.location: cannot read "),
        "{err}"
    );
    let inline_only = server_settings(f, ClientAuth::None, "TLSv1.3");
    assert!(watched_files(&inline_only).is_empty());
}

#[test]
fn invalid_mapping_rules_fail_the_server_config() {
    let Some(f) = fixture() else { return };
    let mut s = server_settings(f, ClientAuth::None, "TLSv1.3");
    s.principal_mapping_rules = "RULE:^CN=(.*$/$1/".to_string();
    assert!(matches!(
        server_config(&s).unwrap_err(),
        TlsError::InvalidRule { .. }
    ));
}

fn test_origin() -> Origin {
    Origin {
        key: "ssl.keystore.key",
        place: "the configured value".to_string(),
    }
}

fn pem_body(pem: &str) -> Vec<u8> {
    let text: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn wrap(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
}

/// Truncated and corrupted real material must give errors, never panics.
#[test]
fn truncated_and_corrupted_key_material_is_an_error() {
    let Some(f) = fixture() else { return };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (form, key) in f.broker_keys.iter().chain(&f.rsa_keys) {
        let label = key
            .lines()
            .next()
            .unwrap()
            .trim_matches('-')
            .trim_start_matches("BEGIN ");
        let der = pem_body(key);
        let step = (der.len() / 60).max(1);
        for len in (0..der.len()).step_by(step) {
            let pem = wrap(label, &der[..len]);
            let mut s = server_settings(f, ClientAuth::None, "TLSv1.3");
            s.keystore = inline_key(&pem, &f.broker_cert);
            s.key_password = Some(PASSWORD.to_string());
            assert!(server_config(&s).is_err(), "{form} truncated to {len}");
            if encrypted(key) {
                assert!(pbe::decrypt_private_key(&der[..len], PASSWORD).is_err());
            }
        }
        for _ in 0..60 {
            let mut damaged = der.clone();
            let at = rng.random_range(0..damaged.len());
            damaged[at] ^= 1 << rng.random_range(0..8);
            let pem = wrap(label, &damaged);
            // Flipping a bit may leave a loadable key (e.g. in padding); only no panic is
            // required.
            let _ = material::parse_private_key(pem.as_bytes(), &test_origin(), Some(PASSWORD));
            let _ = pbe::decrypt_private_key(&damaged, PASSWORD);
        }
    }
    let cert = pem_body(&f.alice_cert);
    for len in 0..cert.len() {
        assert!(certificate_dn(&cert[..len]).is_err());
    }
    for _ in 0..200 {
        let mut damaged = cert.clone();
        let at = rng.random_range(0..damaged.len());
        damaged[at] = rng.random();
        let _ = certificate_dn(&damaged);
    }
}

/// Random bytes in every PEM wrapping and as DER never panic.
#[test]
fn random_key_material_is_an_error() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let labels = [
        "PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "CERTIFICATE",
    ];
    for round in 0..400 {
        let len = rng.random_range(0..300);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if round % 2 == 0 && !bytes.is_empty() {
            bytes[0] = 0x30; // look like a SEQUENCE to get past the first check
        }
        let label = labels[round % labels.len()];
        let pem = wrap(label, &bytes);
        assert!(
            material::parse_private_key(pem.as_bytes(), &test_origin(), Some("pw"))
                .and_then(|k| {
                    // A random body that happens to parse is still not a usable key.
                    params::ring_provider()
                        .key_provider
                        .load_private_key(k)
                        .map(|_| ())
                        .map_err(|e| TlsError::Config {
                            key: "test",
                            reason: e.to_string(),
                        })
                })
                .is_err()
        );
        let _ = material::parse_certificates(pem.as_bytes(), &test_origin());
        let _ = pbe::decrypt_private_key(&bytes, "pw");
        let _ = certificate_dn(&bytes);
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let mut s = ServerTlsSettings::new(inline_key(&raw, &raw));
        s.key_password = Some("pw".into());
        assert!(server_config(&s).is_err());
        let _ = PrincipalRules::parse(&raw).map(|r| r.apply(&raw));
    }
}
