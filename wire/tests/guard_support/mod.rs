//! Shared helpers for the guard tests: sample-value constructors, the per-API corpus of
//! kafka-protocol encodings, and the seeded mutation fuzzer.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use millrace_wire::guard::check_request_body;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

pub fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

pub fn uuid(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0000_0000_0000_0000 | n)
}

/// Two unknown tagged fields (one empty) in flexible versions, none otherwise. Tags 90 and
/// 91 are unused by every covered request.
pub fn tags(version: i16, flexible_min: i16) -> BTreeMap<i32, Bytes> {
    let mut tags = BTreeMap::new();
    if version >= flexible_min {
        tags.insert(90, Bytes::from_static(b"\x01\x02\x03"));
        tags.insert(91, Bytes::new());
    }
    tags
}

pub fn encode<R: Encodable>(req: &R, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    req.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encode v{version}: {e}"));
    buf.to_vec()
}

/// Decodes `body` as `R`; `Err` carries kafka-protocol's message.
pub type DecodeFn = fn(&[u8], i16) -> Result<(), String>;

fn decode_as<R: Decodable>(body: &[u8], version: i16) -> Result<(), String> {
    let mut buf = Bytes::copy_from_slice(body);
    R::decode(&mut buf, version)
        .map(drop)
        .map_err(|e| e.to_string())
}

pub struct Case {
    pub version: i16,
    pub label: &'static str,
    pub body: Vec<u8>,
}

pub struct ApiCorpus {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
    pub decode: DecodeFn,
    pub cases: Vec<Case>,
}

/// Builds the sample request for every version kafka-protocol supports, with nullable fields
/// set and null, encodes it and checks that kafka-protocol decodes it back equal.
pub fn cases<R>(api_key: i16, build: fn(i16, bool) -> R) -> ApiCorpus
where
    R: Encodable + Decodable + Message + PartialEq + Debug,
{
    let mut cases = Vec::new();
    for version in R::VERSIONS.min..=R::VERSIONS.max {
        for (null, label) in [(false, "set"), (true, "null")] {
            let req = build(version, null);
            let body = encode(&req, version);
            let back = R::decode(&mut Bytes::from(body.clone()), version)
                .unwrap_or_else(|e| panic!("api {api_key} v{version}: decode: {e}"));
            assert_eq!(back, req, "api {api_key} v{version} {label}: round trip");
            cases.push(Case {
                version,
                label,
                body,
            });
        }
    }
    ApiCorpus {
        api_key,
        min_version: R::VERSIONS.min,
        max_version: R::VERSIONS.max,
        decode: decode_as::<R>,
        cases,
    }
}

/// Mutates the corpus of one API `iterations` times. Whenever the guard accepts a mutant,
/// kafka-protocol must decode it without panicking and without error. Returns how many
/// mutants were accepted. Every failure message carries the seed to replay it with
/// `GUARD_FUZZ_SEED`.
pub fn fuzz_api(api: &ApiCorpus, seed: u64, iterations: usize) -> usize {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut accepted = 0;
    for i in 0..iterations {
        let case = &api.cases[rng.random_range(0..api.cases.len())];
        let mut body = case.body.clone();
        for _ in 0..rng.random_range(1..=3) {
            mutate(&mut rng, &mut body);
        }
        let where_ = format!(
            "api {} v{} iteration {i} (GUARD_FUZZ_SEED base gives seed {seed:#x}), body {body:02x?}",
            api.api_key, case.version
        );
        let verdict = catch_unwind(AssertUnwindSafe(|| {
            check_request_body(api.api_key, case.version, &body)
        }))
        .unwrap_or_else(|_| panic!("guard panicked: {where_}"));
        if verdict.is_ok() {
            accepted += 1;
            let decoded = catch_unwind(AssertUnwindSafe(|| (api.decode)(&body, case.version)))
                .unwrap_or_else(|_| panic!("kafka-protocol panicked on accepted body: {where_}"));
            if let Err(e) = decoded {
                panic!("guard accepted what kafka-protocol refuses ({e}): {where_}");
            }
        }
    }
    accepted
}

/// Counts a hostile sender would pick: huge, negative, null, off by one.
const INTERESTING_I32: [i32; 8] = [i32::MAX, i32::MIN, -1, -2, 0, 1, 0x7fff, 0x0100_0000];

fn mutate(rng: &mut SmallRng, body: &mut Vec<u8>) {
    let len = body.len();
    match rng.random_range(0..7) {
        0 if len > 0 => {
            let at = rng.random_range(0..len);
            body[at] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let at = rng.random_range(0..len);
            body[at] = rng.random();
        }
        2 => {
            let at = rng.random_range(0..=len);
            body.insert(at, rng.random());
        }
        3 if len > 0 => {
            let at = rng.random_range(0..len);
            let end = (at + rng.random_range(1..=8)).min(len);
            body.drain(at..end);
        }
        4 => body.truncate(rng.random_range(0..=len)),
        5 if len >= 4 => {
            let at = rng.random_range(0..=len - 4);
            let n = INTERESTING_I32[rng.random_range(0..INTERESTING_I32.len())];
            body[at..at + 4].copy_from_slice(&n.to_be_bytes());
        }
        6 if len > 0 => {
            // A varint count or length: huge, null, or small.
            let at = rng.random_range(0..len);
            let varint: &[u8] = match rng.random_range(0..4) {
                0 => &[0xff, 0xff, 0xff, 0xff, 0x0f],
                1 => &[0x80, 0x80, 0x80, 0x80, 0x08],
                2 => &[0x00],
                _ => &[0x02],
            };
            body.splice(at..at + 1, varint.iter().copied());
        }
        _ => {}
    }
}
