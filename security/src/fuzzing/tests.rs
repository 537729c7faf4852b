//! The stable-toolchain smoke test of the fuzz entry points: every seed, then seeded mutations
//! of the seeds and random bytes (`SECURITY_FUZZ_SEED`, `SECURITY_FUZZ_ITERATIONS` per target,
//! default 1,000). The seeds are also what `fuzz/seeds/` holds (`write_seed_files`).

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustls::{ClientConnection, Connection, ServerConnection};
use rustls_pki_types::ServerName;

use super::*;
use crate::tls::ClientTlsSettings;

type Target = fn(&[u8]);
type Seeds = fn() -> Vec<Vec<u8>>;

/// (name as in `fuzz/fuzz_targets/`, entry point, seeds).
const TARGETS: [(&str, Target, Seeds); 5] = [
    ("sasl_plain", sasl_plain, plain_seeds),
    ("sasl_scram", sasl_scram, scram_seeds),
    ("jaas", jaas, jaas_seeds),
    ("principal_rules", principal_rules, principal_seeds),
    ("tls_server_handshake", tls_server_handshake, tls_seeds),
];

#[test]
fn fuzz_entry_points_survive_seeds_mutations_and_random_bytes() {
    let seed = env_u64("SECURITY_FUZZ_SEED", 0x5ec_f022);
    let iterations = env_u64("SECURITY_FUZZ_ITERATIONS", 1000);
    for (t, (name, target, seeds)) in TARGETS.into_iter().enumerate() {
        let seeds = seeds();
        for input in &seeds {
            run(name, target, input, "a seed");
        }
        let mut rng = StdRng::seed_from_u64(seed + t as u64);
        for i in 0..iterations {
            let input = if i % 4 == 3 {
                let len = rng.random_range(0..300);
                (0..len).map(|_| rng.random()).collect()
            } else {
                mutate(&mut rng, &seeds)
            };
            let what = format!("iteration {i} of SECURITY_FUZZ_SEED={seed}");
            run(name, target, &input, &what);
        }
    }
}

/// The seeds must reach the states the oracles are about, or the fuzzing is shallow.
#[test]
fn seeds_reach_done_and_a_server_hello() {
    let users = users();
    let mut plain = Authenticator::new(Mechanism::Plain);
    assert!(matches!(
        plain.step(&plain_seeds()[0], users),
        Ok(Step::Done { .. })
    ));
    let scram = scram_seeds();
    for (mech, seed) in [
        (Mechanism::ScramSha256, &scram[0]),
        (Mechanism::ScramSha512, &scram[1]),
    ] {
        let tokens: Vec<&[u8]> = seed[1..].split(|&b| b == SEPARATOR).collect();
        let mut auth = Authenticator::with_nonce(mech, SERVER_NONCE);
        assert!(matches!(
            auth.step(tokens[0], users),
            Ok(Step::Challenge(_))
        ));
        assert!(matches!(auth.step(tokens[1], users), Ok(Step::Done { .. })));
    }
    for seed in tls_seeds() {
        let mut server = ServerConnection::new(tls_server_config(usize::from(seed[0]))).unwrap();
        server.read_tls(&mut &seed[2..]).unwrap();
        // The whole recording fails later (its keys are the recorded server's), but the client
        // hello is accepted and answered.
        let _ = server.process_new_packets();
        assert!(server.wants_write());
    }
}

/// A real client completes a handshake with every listener of the TLS target, and the server
/// sees the principal Kafka would give it.
#[test]
fn real_clients_complete_a_handshake_with_every_listener() {
    for (index, &(client_auth, _)) in TLS_LISTENERS.iter().enumerate() {
        let (server, _) = handshake(index);
        let principal = crate::tls::peer_principal_name(
            server.peer_certificates(),
            &PrincipalRules::parse("DEFAULT").unwrap(),
        )
        .unwrap();
        let expected = match client_auth {
            ClientAuth::Required => "CN=fuzz-client,OU=fuzz,O=millrace",
            _ => crate::tls::ANONYMOUS,
        };
        assert_eq!(principal, expected, "listener {index}");
    }
}

/// Writes every target's seeds to `$FUZZ_SEEDS_DIR/<target>/seed-NN` (how `fuzz/seeds/` was
/// made): `FUZZ_SEEDS_DIR=$PWD/fuzz/seeds cargo test -p millrace-security write_seed_files --
/// --ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh fuzz/seeds"]
fn write_seed_files() {
    let dir = std::path::PathBuf::from(std::env::var("FUZZ_SEEDS_DIR").expect("FUZZ_SEEDS_DIR"));
    for (name, _, seeds) in TARGETS {
        let target_dir = dir.join(name);
        std::fs::create_dir_all(&target_dir).unwrap();
        for (i, seed) in seeds().iter().enumerate() {
            std::fs::write(target_dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
}

fn run(name: &str, target: Target, input: &[u8], what: &str) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(input))) {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("{name} panicked on {what}: {message}\ninput: {input:02x?}");
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().expect("a number"))
}

/// One to four of: bit flip, random byte, inserted separator or syntax byte, cut, duplicated
/// range, splice with another seed.
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..5) {
        if input.is_empty() {
            input.push(rng.random());
        }
        let at = rng.random_range(0..input.len());
        match rng.random_range(0..6) {
            0 => input[at] ^= 1 << rng.random_range(0..8),
            1 => input[at] = rng.random(),
            2 => {
                let bytes = b"\xff\0,=\\\"'/;$(){}\x16\x03";
                input.insert(at, bytes[rng.random_range(0..bytes.len())]);
            }
            3 => input.truncate(at.max(1)),
            4 => {
                let end = rng.random_range(at..=input.len());
                let copy = input[at..end].to_vec();
                input.splice(at..at, copy);
            }
            _ => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let from = rng.random_range(0..=other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
        }
    }
    input
}

fn joined(tokens: &[&[u8]]) -> Vec<u8> {
    tokens.join(&SEPARATOR)
}

fn plain_seeds() -> Vec<Vec<u8>> {
    vec![
        b"\0alice\0alice-pw".to_vec(),
        b"alice\0alice\0alice-pw".to_vec(),
        b"admin\0alice\0alice-pw".to_vec(),
        b"\0alice\0wrong".to_vec(),
        joined(&[b"\0admin\0admin-pw", b"\0admin\0admin-pw"]),
        joined(&[b"\0alice", b"\0alice\0alice-pw"]),
        b"\0empty\0".to_vec(),
        b"\0\0nameless-pw".to_vec(),
    ]
}

/// Client-first, then the client-final a correct client sends (seed 0: SHA-256, 1: SHA-512),
/// then the same exchanges in the harness's proof modes, other users and extensions.
fn scram_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (bit, mech) in [(0u8, Mechanism::ScramSha256), (1, Mechanism::ScramSha512)] {
        seeds.push(scram_exchange(bit, mech, "n,,n=alice,r=cn0", "", &[]));
    }
    for (bit, mech) in [(0u8, Mechanism::ScramSha256), (1, Mechanism::ScramSha512)] {
        for mode in [2u8, 4] {
            let first = "n,,n=alice,r=cn1";
            let last = format!("c=biws,r=cn1{SERVER_NONCE}");
            seeds.push(joined(&[&[mode | bit], first.as_bytes(), last.as_bytes()]));
        }
        seeds.push(scram_exchange(
            bit,
            mech,
            "n,a=alice,n=alice,r=cn2",
            "",
            &[b"again"],
        ));
    }
    let s256 = Mechanism::ScramSha256;
    seeds.push(scram_exchange(
        0,
        s256,
        "n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=x",
        "",
        &[],
    ));
    seeds.push(scram_exchange(
        0,
        s256,
        "n,,n=alice,r=e,ext=1",
        ",ext=2",
        &[],
    ));
    seeds.push(scram_exchange(
        1,
        Mechanism::ScramSha512,
        "n,,n=bob,r=b",
        "",
        &[],
    ));
    for first in [
        "n,,n=weak,r=w",
        "n,,n=alice,r=t,tokenauth=true",
        "y,,n=alice,r=y",
        "p=tls-unique,,n=alice,r=p",
        "n,,m=ext,n=alice,r=m",
    ] {
        seeds.push(joined(&[&[2], first.as_bytes(), b"c=biws,r=x"]));
    }
    seeds
}

/// `mode` client-first FF client-final (FF `more`...), with the right proof made here.
fn scram_exchange(mode: u8, mech: Mechanism, first: &str, ext: &str, more: &[&[u8]]) -> Vec<u8> {
    let (.., iterations) = SCRAM_USERS
        .into_iter()
        .find(|&(m, u, ..)| m == mech && first.contains(&format!("n={}", escape(u))))
        .expect("a seed names a known user");
    let bare_at = first.match_indices(',').nth(1).expect("a GS2 header").0 + 1;
    let nonce = first[bare_at..]
        .split(',')
        .nth(1)
        .unwrap()
        .strip_prefix("r=")
        .unwrap();
    let salt = base64::engine::general_purpose::STANDARD.encode(SALT);
    let server_first = format!("r={nonce}{SERVER_NONCE},s={salt},i={iterations}");
    let binding = base64::engine::general_purpose::STANDARD.encode(&first[..bare_at]);
    let without_proof = format!("c={binding},r={nonce}{SERVER_NONCE}{ext}");
    let last = client_final(mech, first, &server_first, &without_proof);
    let mut tokens: Vec<&[u8]> = vec![first.as_bytes(), last.as_bytes()];
    tokens.extend_from_slice(more);
    let mut seed = vec![mode];
    seed.extend(joined(&tokens));
    seed
}

fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn jaas_seeds() -> Vec<Vec<u8>> {
    [
        PLAIN_JAAS,
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "M required a=\"x\\\"y\\101\\n\" /* c */ b='z' // d\n c=w;",
        "com.example.Module OPTIONAL\tk=v k=\"last\" e='' u=\"\u{e9}\\\\\";",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn principal_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        (
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$2/L,DEFAULT",
            "CN=Alice,OU=eng,O=millrace",
        ),
        ("RULE:^CN=(?P<name>[^,]*),.*$/${name}/U", "CN=bob,O=x"),
        (
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.\\/]*).*$/$1\\$/L, DEFAULT",
            "CN=a\\,b+UID=42,O=y",
        ),
        ("DEFAULT", "1.2.840.113549.1.9.1=#16036140"),
    ]
    .iter()
    .map(|(rules, dn)| joined(&[&[0], rules.as_bytes(), dn.as_bytes()]))
    .collect();
    for pem in [CLIENT_CERT, SERVER_CERT, CA_CERT] {
        let mut seed = vec![1];
        seed.extend(pem_der(pem));
        seeds.push(seed);
    }
    seeds
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// Every byte a real client sent in a handshake with each listener, whole and in small reads.
fn tls_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for index in 0..TLS_LISTENERS.len() {
        let (_, client_bytes) = handshake(index);
        for chunk in [0u8, 5] {
            let mut seed = vec![index as u8, chunk];
            seed.extend(&client_bytes);
            seeds.push(seed);
        }
    }
    seeds
}

/// An in-memory handshake and one record each way between a rustls client (with the client
/// certificate when the listener asks for one) and listener `index`. Returns the server side
/// and every byte the client sent.
fn handshake(index: usize) -> (Connection, Vec<u8>) {
    let with_cert = TLS_LISTENERS[index].0 == ClientAuth::Required;
    let settings = ClientTlsSettings {
        truststore: Some(TrustSource::Inline {
            pem: CA_CERT.to_string(),
        }),
        keystore: with_cert.then(|| {
            let key = KeySource::Inline {
                key_pem: CLIENT_KEY.to_string(),
                chain_pem: CLIENT_CERT.to_string(),
            };
            (key, None)
        }),
        ..ClientTlsSettings::default()
    };
    let client_config = tls::client_config(&settings).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = Connection::from(ClientConnection::new(client_config, name).unwrap());
    let mut server = Connection::from(ServerConnection::new(tls_server_config(index)).unwrap());
    client.writer().write_all(b"ping").unwrap();
    let mut sent = Vec::new();
    for _ in 0..10 {
        let from_client = pump(&mut client, &mut server);
        sent.extend(&from_client);
        let from_server = pump(&mut server, &mut client);
        if from_client.is_empty() && from_server.is_empty() {
            break;
        }
    }
    assert!(
        !server.is_handshaking() && !client.is_handshaking(),
        "listener {index}"
    );
    let mut got = [0u8; 4];
    server.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    (server, sent)
}

/// Moves what `from` has to send into `to`; returns those bytes.
fn pump(from: &mut Connection, to: &mut Connection) -> Vec<u8> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets().unwrap();
    }
    wire
}
