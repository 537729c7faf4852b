//! Stable-toolchain fuzzing of record batches and request frames.
//!
//! Valid inputs come from the crate's own encoders (`BatchBuilder` under every codec, request
//! headers v1 and v2 with tagged fields); seeded mutations then flip bits, cut, insert, delete,
//! overwrite header fields with extreme values and swap codecs. For every mutant:
//!
//! * no decoder panics (each call runs under `catch_unwind`);
//! * no decoder allocates more than its input and its bound allow: a counting allocator
//!   measures the peak bytes live on this thread during the call;
//! * a mutant that still passes `validate_batch` without its CRC being recomputed differs from
//!   the original only outside the CRC (base offset, leader epoch) and decodes to the same
//!   records; a mutant whose CRC was recomputed and validates decodes to `record_count` records;
//! * `BatchIter` over concatenations tiles the buffer exactly and yields every batch before the
//!   first damaged byte unchanged.
//!
//! `BATCH_FUZZ_SEED=s` reruns one seed, `BATCH_FUZZ_ITERATIONS=n` runs longer (default 20,000 per
//! target). A failure prints the seed, the iteration, the mutations and the input in hex.
//!
//! The allocator is the only `unsafe` here: it forwards to `System` and counts. It sees Rust
//! allocations only: zstd-sys allocates its context and window with C `malloc`, out of view.

use millrace_wire::compression::Compression;
use millrace_wire::frame::{frame_size, parse_request_header, request_header_version};
use millrace_wire::records::{
    decode_records, validate_batch, BatchBuilder, BatchIter, BatchStep, NewRecord,
    BATCH_HEADER_BYTES, LOG_OVERHEAD,
};
use millrace_wire::varint::put_uvarint;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Fixed allowance on top of the input-proportional bound: decoder state (gzip's 32 KiB window,
/// an LZ4 frame's block buffers of at most 4 MiB each, zstd's context) that does not depend on
/// what the sender declared beyond the codec's own maximum block size.
const DECODER_STATE_BYTES_MAX: usize = 10 << 20;
/// Bytes of `Vec<Record>` / header entries a decoder may hold per input byte. A `Record` is about
/// 100 bytes and the smallest record 7 bytes; headers entries are 56 bytes, at least 2 input
/// bytes each. Anything above this is amplification from a declared count.
const AMPLIFICATION_MAX: usize = 64;
/// A small decompression bound: every compressed sample batch expands beyond it.
const SMALL_BOUND_BYTES: usize = 256;
/// A roomy bound for decoding that should succeed.
const LARGE_BOUND_BYTES: usize = 1 << 20;
/// Base offsets near `i64::MAX`/`i64::MIN` (no CRC covers them) once made `decode_records`
/// overflow; it now returns an error, pinned by
/// `decode_records_survives_base_offset_near_the_limits`, and the mutator uses extreme values.
const BASE_OFFSET_OVERFLOW_FIXED: bool = true;

// ---------------------------------------------------------------------------------------------
// Targets

#[test]
fn mutated_batches_never_panic_or_overallocate() {
    run_target("batches", 0x6261_7463, |rng, trace| {
        let codec = Compression::ALL[rng.random_range(0..Compression::ALL.len())];
        let original = sample_batch(rng, codec);
        check_batch(&original, &original, false, trace);
        let mut mutant = original.clone();
        for _ in 0..rng.random_range(1..=3) {
            mutate_batch(rng, &mut mutant, trace);
        }
        let refreshed = mutant.len() >= BATCH_HEADER_BYTES && rng.random_bool(0.5);
        if refreshed {
            refresh_crc(&mut mutant);
            trace.push("refresh crc".into());
        }
        check_batch(&original, &mutant, refreshed, trace);
    });
}

#[test]
fn mutated_concatenations_iterate_to_an_exact_tiling() {
    run_target("concatenations", 0x636f_6e63, |rng, trace| {
        let count = rng.random_range(1..=5);
        let batches: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let codec = Compression::ALL[rng.random_range(0..Compression::ALL.len())];
                sample_batch(rng, codec)
            })
            .collect();
        let log: Vec<u8> = batches.concat();
        let steps = check_iter(&log, trace);
        assert_eq!(steps.len(), count, "intact log: one step per batch");
        let mut mutant = log.clone();
        for _ in 0..rng.random_range(1..=2) {
            mutate_anywhere(rng, &mut mutant, trace);
        }
        let damaged_from = first_difference(&log, &mutant);
        let steps = check_iter(&mutant, trace);
        // Every batch that ends before the first damaged byte comes back unchanged.
        let mut end = 0;
        for (i, batch) in batches.iter().enumerate() {
            end += batch.len();
            if end > damaged_from {
                break;
            }
            match steps.get(i) {
                Some(Step::Batch(position, bytes)) => {
                    assert_eq!(*position, end - batch.len(), "batch {i} position");
                    assert_eq!(bytes, batch, "batch {i} before the damage changed");
                }
                other => panic!("batch {i} before the damage at {damaged_from}: {other:?}"),
            }
        }
        for step in &steps {
            if let Step::Batch(_, bytes) = step {
                let _ = guarded("validate_batch (iterated)", trace, || validate_batch(bytes));
                let _ = decode_bounded(bytes, SMALL_BOUND_BYTES, trace);
            }
        }
    });
}

#[test]
fn mutated_request_frames_never_panic_or_overallocate() {
    run_target("frames", 0x6672_616d, |rng, trace| {
        let (frame, expected) = sample_frame(rng);
        let limit = 100 << 20;
        let prefix: [u8; 4] = frame[..4].try_into().unwrap();
        assert_eq!(
            frame_size(prefix, limit),
            Ok(frame.len() - 4),
            "intact size prefix"
        );
        let (header, body_at) = parse_request_header(&frame[4..]).expect("intact frame parses");
        assert_eq!(header.api_key, expected.api_key);
        assert_eq!(header.api_version, expected.api_version);
        assert_eq!(header.correlation_id, expected.correlation_id);
        assert_eq!(header.client_id, expected.client_id);
        assert_eq!(header.header_version, expected.header_version);
        assert_eq!(body_at, expected.body_at, "intact frame: body position");

        let mut mutant = frame.clone();
        for _ in 0..rng.random_range(1..=3) {
            mutate_frame(rng, &mut mutant, trace);
        }
        if mutant.len() >= 4 {
            let prefix: [u8; 4] = mutant[..4].try_into().unwrap();
            let limit = rng.random_range(0..=(256usize << 20));
            check_frame_size(prefix, limit, trace);
        }
        let body = &mutant[4.min(mutant.len())..];
        let peak = peak_alloc(|| {
            let parsed = guarded("parse_request_header", trace, || parse_request_header(body));
            if let Ok((header, at)) = parsed {
                assert!(
                    at <= body.len(),
                    "body position {at} past the frame {}",
                    body.len()
                );
                assert!(
                    (1..=2).contains(&header.header_version) || header.header_version == 0,
                    "header version {}",
                    header.header_version
                );
            }
        });
        assert!(
            peak <= 4 * body.len() + 4096,
            "parse_request_header allocated {peak} bytes for a {}-byte frame",
            body.len()
        );
    });
}

#[test]
fn random_size_prefixes_are_checked_against_the_limit() {
    run_target("size prefixes", 0x7369_7a65, |rng, trace| {
        let prefix: [u8; 4] = match rng.random_range(0..3) {
            0 => rng.random(),
            1 => extreme_i32(rng).to_be_bytes(),
            _ => rng.random_range(-16i32..64).to_be_bytes(),
        };
        let limit = match rng.random_range(0..3) {
            0 => rng.random_range(0..64),
            1 => usize::MAX - rng.random_range(0..4),
            _ => rng.random_range(0..=(i32::MAX as usize) + 8),
        };
        check_frame_size(prefix, limit, trace);
    });
}

/// Regression for a class the random mutations rarely hit exactly: every codec under a tiny
/// bound must refuse a batch that expands beyond it, and never allocate in proportion to the
/// expanded size.
#[test]
fn compressed_batches_error_under_a_small_bound() {
    let mut trace = Vec::new();
    for codec in Compression::ALL {
        let batch = BatchBuilder {
            compression: codec,
            ..Default::default()
        }
        .build(&[NewRecord {
            timestamp: 1,
            key: None,
            value: Some(vec![b'a'; 512 << 10]),
            headers: vec![],
        }]);
        if codec != Compression::None {
            assert!(batch.len() < 64 << 10, "{codec:?} should compress well");
            let result = decode_bounded(&batch, SMALL_BOUND_BYTES, &mut trace);
            assert!(
                result.is_err(),
                "{codec:?}: 512 KiB expanded under a 256-byte bound"
            );
        }
    }
}

/// Base offset is outside the CRC, so a corrupt segment or a producer can put anything there;
/// decoding must return records or an error, not overflow.
#[test]
fn decode_records_survives_base_offset_near_the_limits() {
    let mut trace = Vec::new();
    for codec in Compression::ALL {
        let records: Vec<NewRecord> = (0..3)
            .map(|i| NewRecord {
                timestamp: i,
                value: Some(vec![1; 10]),
                ..Default::default()
            })
            .collect();
        for base_offset in [i64::MAX, i64::MAX - 1, i64::MIN] {
            let batch = BatchBuilder {
                compression: codec,
                base_offset,
                ..Default::default()
            }
            .build(&records);
            assert!(
                validate_batch(&batch).is_ok(),
                "{codec:?}: the CRC does not cover it"
            );
            let result = decode_bounded(&batch, LARGE_BOUND_BYTES, &mut trace);
            if let Ok(decoded) = result {
                assert_eq!(decoded.len(), 3, "{codec:?} at {base_offset}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Runs every decoder on `mutant` and checks the properties in the module doc.
fn check_batch(original: &[u8], mutant: &[u8], refreshed: bool, trace: &mut Vec<String>) {
    let validated = guarded("validate_batch", trace, || validate_batch(mutant));
    let _ = decode_bounded(mutant, SMALL_BOUND_BYTES, trace);
    let decoded = decode_bounded(mutant, LARGE_BOUND_BYTES, trace);
    check_iter(mutant, trace);
    let Ok(header) = validated else { return };
    assert_eq!(
        header.record_count as usize,
        header.last_offset_delta as usize + 1
    );
    if refreshed {
        if let Ok(records) = decoded {
            assert_eq!(records.len(), header.record_count as usize, "decoded count");
        }
        return;
    }
    let stored = u32::from_be_bytes(mutant[17..21].try_into().unwrap());
    assert_eq!(
        stored,
        crc32c::crc32c(&mutant[21..]),
        "validated batch has a wrong CRC"
    );
    assert_eq!(
        mutant.len(),
        original.len(),
        "validated batch changed length"
    );
    let outside_crc = |i: usize| (0..8).contains(&i) || (12..16).contains(&i);
    for (i, (a, b)) in original.iter().zip(mutant).enumerate() {
        assert!(
            a == b || outside_crc(i),
            "validated batch differs at byte {i}, which the CRC covers"
        );
    }
    let want = decode_records(original, LARGE_BOUND_BYTES).expect("original decodes");
    let overflows = header
        .base_offset
        .checked_add(i64::from(header.last_offset_delta))
        .is_none();
    if overflows {
        // The only way such a batch may fail to decode: its offsets do not fit in an i64.
        assert!(decoded.is_err(), "offsets past i64::MAX decoded");
        return;
    }
    let got = decoded.expect("a batch differing only outside its CRC decodes");
    let shift = header
        .base_offset
        .wrapping_sub(i64::from_be_bytes(original[0..8].try_into().unwrap()));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            g.offset,
            w.offset.wrapping_add(shift),
            "offset follows base_offset"
        );
        assert_eq!(
            (&g.key, &g.value, &g.headers),
            (&w.key, &w.value, &w.headers)
        );
        assert_eq!(g.timestamp, w.timestamp);
    }
}

/// `decode_records` under `bound`: no panic, and peak allocation within the input and bound.
fn decode_bounded(
    batch: &[u8],
    bound: usize,
    trace: &mut Vec<String>,
) -> Result<Vec<millrace_wire::records::Record>, millrace_wire::WireError> {
    let mut result = None;
    let peak = peak_alloc(|| {
        result = Some(guarded("decode_records", trace, || {
            decode_records(batch, bound)
        }));
    });
    let allowed = DECODER_STATE_BYTES_MAX + 2 * bound + AMPLIFICATION_MAX * batch.len();
    assert!(
        peak <= allowed,
        "decode_records allocated {peak} bytes (allowed {allowed}) for a {}-byte batch \
         under a {bound}-byte bound",
        batch.len()
    );
    let result = result.unwrap();
    if let Ok(records) = &result {
        let payload: usize = records
            .iter()
            .map(|r| {
                r.value.as_ref().map_or(0, |v| v.len()) + r.key.as_ref().map_or(0, |k| k.len())
            })
            .sum();
        let compressed = batch.len() >= 23 && batch[22] & 0x07 != 0;
        assert!(
            !compressed || payload <= bound,
            "decode_records returned {payload} payload bytes from a compressed batch \
             under a {bound}-byte bound"
        );
    }
    result
}

#[derive(Debug)]
enum Step {
    Batch(usize, Vec<u8>),
    Tail(usize),
}

/// Iterates `log` and checks that the steps tile it: batches back to back from 0, each as long
/// as its header says, at most one tail and only at the end.
fn check_iter(log: &[u8], trace: &mut Vec<String>) -> Vec<Step> {
    let steps: Vec<Step> = guarded("BatchIter", trace, || {
        BatchIter::new(log)
            .take(log.len() / LOG_OVERHEAD + 2)
            .map(|step| match step {
                BatchStep::Batch {
                    position,
                    header,
                    bytes,
                } => {
                    assert_eq!(bytes.len(), header.total_bytes(), "batch length");
                    assert_eq!(bytes, &log[position..position + bytes.len()]);
                    Step::Batch(position, bytes.to_vec())
                }
                BatchStep::Tail { position, .. } => Step::Tail(position),
            })
            .collect()
    });
    assert!(
        BatchIter::new(log)
            .nth(log.len() / LOG_OVERHEAD + 1)
            .is_none(),
        "BatchIter did not terminate"
    );
    let mut expected = 0;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Batch(position, bytes) => {
                assert_eq!(*position, expected, "batches are back to back");
                expected += bytes.len();
            }
            Step::Tail(position) => {
                assert_eq!(*position, expected, "tail starts where the batches end");
                assert_eq!(i, steps.len() - 1, "a tail is the last step");
                expected = log.len();
            }
        }
    }
    assert_eq!(expected, log.len(), "steps cover the whole buffer");
    steps
}

fn check_frame_size(prefix: [u8; 4], limit: usize, trace: &mut Vec<String>) {
    let declared = i32::from_be_bytes(prefix);
    match guarded("frame_size", trace, || frame_size(prefix, limit)) {
        Ok(size) => {
            assert_eq!(
                size as i64,
                i64::from(declared),
                "frame_size changed the size"
            );
            assert!(
                size >= 8 && size <= limit,
                "frame_size accepted {size} (limit {limit})"
            );
        }
        Err(_) => assert!(
            declared < 8 || declared as usize > limit,
            "frame_size refused {declared} under limit {limit}"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

fn sample_batch(rng: &mut SmallRng, codec: Compression) -> Vec<u8> {
    let count = rng.random_range(1..=8);
    let base_timestamp = rng.random_range(0..2_000_000_000_000i64);
    let records: Vec<NewRecord> = (0..count)
        .map(|_| NewRecord {
            timestamp: base_timestamp + rng.random_range(-1000..1000),
            key: rng.random_bool(0.6).then(|| random_bytes(rng, 0..24)),
            // Repetitive values so every codec shrinks them and the small bound bites.
            value: rng
                .random_bool(0.9)
                .then(|| vec![rng.random::<u8>(); rng.random_range(0..700)]),
            headers: (0..rng.random_range(0..3))
                .map(|i| {
                    let value = rng.random_bool(0.7).then(|| random_bytes(rng, 0..8));
                    (format!("h{i}"), value)
                })
                .collect(),
        })
        .collect();
    BatchBuilder {
        compression: codec,
        producer_id: if rng.random_bool(0.5) {
            rng.random_range(0..1 << 40)
        } else {
            -1
        },
        producer_epoch: rng.random_range(-1..5),
        base_sequence: rng.random_range(-1..1000),
        base_offset: if rng.random_bool(0.5) {
            0
        } else {
            rng.random_range(0..1 << 40)
        },
        transactional: rng.random_bool(0.2),
    }
    .build(&records)
}

struct ExpectedHeader {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: Option<String>,
    header_version: i16,
    body_at: usize,
}

/// A size-prefixed request frame with a random known API key and version, a random client id,
/// tagged fields when the header is v2, and a random body.
fn sample_frame(rng: &mut SmallRng) -> (Vec<u8>, ExpectedHeader) {
    use kafka_protocol::messages::ApiKey;
    let keys: Vec<ApiKey> = ApiKey::iter().collect();
    let key = keys[rng.random_range(0..keys.len())];
    let range = key.valid_versions();
    let version = rng.random_range(range.min..=range.max);
    let header_version = request_header_version(key, version).max(1);
    let correlation_id: i32 = rng.random();
    let client_id = match rng.random_range(0..4) {
        0 => None,
        1 => Some(String::new()),
        _ => Some(format!("client-{}", rng.random::<u16>())),
    };
    let mut frame = vec![0u8; 4];
    frame.extend_from_slice(&(key as i16).to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    match &client_id {
        None => frame.extend_from_slice(&(-1i16).to_be_bytes()),
        Some(id) => {
            frame.extend_from_slice(&(id.len() as i16).to_be_bytes());
            frame.extend_from_slice(id.as_bytes());
        }
    }
    if header_version >= 2 {
        let count = rng.random_range(0..3u64);
        put_uvarint(&mut frame, count);
        for tag in 0..count {
            put_uvarint(&mut frame, tag * 3 + rng.random_range(0..3));
            let value = random_bytes(rng, 0..20);
            put_uvarint(&mut frame, value.len() as u64);
            frame.extend_from_slice(&value);
        }
    }
    let body_at = frame.len() - 4;
    frame.extend_from_slice(&random_bytes(rng, 0..64));
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    let expected = ExpectedHeader {
        api_key: key as i16,
        api_version: version,
        correlation_id,
        client_id,
        header_version: request_header_version(key, version),
        body_at,
    };
    (frame, expected)
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// Header fields of a batch: name, offset, width in bytes.
const BATCH_FIELDS: [(&str, usize, usize); 13] = [
    ("base_offset", 0, 8),
    ("batch_length", 8, 4),
    ("partition_leader_epoch", 12, 4),
    ("magic", 16, 1),
    ("crc", 17, 4),
    ("attributes", 21, 2),
    ("last_offset_delta", 23, 4),
    ("base_timestamp", 27, 8),
    ("max_timestamp", 35, 8),
    ("producer_id", 43, 8),
    ("producer_epoch", 51, 2),
    ("base_sequence", 53, 4),
    ("record_count", 57, 4),
];

fn mutate_batch(rng: &mut SmallRng, batch: &mut Vec<u8>, trace: &mut Vec<String>) {
    match rng.random_range(0..10) {
        0..=3 if batch.len() >= BATCH_HEADER_BYTES => {
            let (name, at, width) = BATCH_FIELDS[rng.random_range(0..BATCH_FIELDS.len())];
            let mut value = extreme_i64(rng);
            if name == "base_offset" && !BASE_OFFSET_OVERFLOW_FIXED {
                value = value.clamp(-(1 << 62), 1 << 62);
            }
            let bytes = value.to_be_bytes();
            batch[at..at + width].copy_from_slice(&bytes[8 - width..]);
            trace.push(format!("set {name} to {value:#x} (low {width} bytes)"));
        }
        4 if batch.len() >= BATCH_HEADER_BYTES => {
            let codec = rng.random_range(0..8u8);
            batch[22] = (batch[22] & !0x07) | codec;
            trace.push(format!("set codec bits to {codec}"));
        }
        5 if batch.len() > BATCH_HEADER_BYTES => {
            // Damage the (maybe compressed) records section: its varints and codec framing.
            let at = rng.random_range(BATCH_HEADER_BYTES..batch.len());
            let value = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.random_range(0..5)];
            let run = rng.random_range(1..=6).min(batch.len() - at);
            batch[at..at + run].fill(value);
            trace.push(format!("fill {run} record bytes at {at} with {value:#x}"));
        }
        _ => mutate_anywhere(rng, batch, trace),
    }
}

fn mutate_frame(rng: &mut SmallRng, frame: &mut Vec<u8>, trace: &mut Vec<String>) {
    // Size prefix, api_key, api_version, correlation_id, client_id length.
    const FIELDS: [(&str, usize, usize); 5] = [
        ("size", 0, 4),
        ("api_key", 4, 2),
        ("api_version", 6, 2),
        ("correlation_id", 8, 4),
        ("client_id length", 12, 2),
    ];
    match rng.random_range(0..8) {
        0..=2 if frame.len() >= 14 => {
            let (name, at, width) = FIELDS[rng.random_range(0..FIELDS.len())];
            let value = extreme_i64(rng);
            frame[at..at + width].copy_from_slice(&value.to_be_bytes()[8 - width..]);
            trace.push(format!("set {name} to {value:#x} (low {width} bytes)"));
        }
        3 if frame.len() > 14 => {
            // A huge or overlong unsigned varint where the client id or tagged fields sit.
            let at = rng.random_range(14..frame.len());
            let varint: &[u8] = [
                &[0xff, 0xff, 0xff, 0xff, 0x0f][..],
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
                &[0x80, 0x80, 0x80, 0x80, 0x80][..],
            ][rng.random_range(0..3)];
            frame.splice(at..at, varint.iter().copied());
            trace.push(format!("insert varint {varint:x?} at {at}"));
        }
        _ => mutate_anywhere(rng, frame, trace),
    }
}

/// Format-blind mutations: bit flips, truncation, insertion, deletion, random overwrite.
fn mutate_anywhere(rng: &mut SmallRng, buf: &mut Vec<u8>, trace: &mut Vec<String>) {
    if buf.is_empty() {
        buf.extend_from_slice(&random_bytes(rng, 1..16));
        trace.push("fill empty buffer".into());
        return;
    }
    match rng.random_range(0..5) {
        0 => {
            for _ in 0..rng.random_range(1..=4) {
                let at = rng.random_range(0..buf.len());
                let bit = rng.random_range(0..8);
                buf[at] ^= 1 << bit;
                trace.push(format!("flip bit {bit} of byte {at}"));
            }
        }
        1 => {
            let len = rng.random_range(0..buf.len());
            buf.truncate(len);
            trace.push(format!("truncate to {len}"));
        }
        2 => {
            let at = rng.random_range(0..=buf.len());
            let bytes = random_bytes(rng, 1..32);
            trace.push(format!("insert {} bytes at {at}", bytes.len()));
            buf.splice(at..at, bytes);
        }
        3 => {
            let at = rng.random_range(0..buf.len());
            let end = rng.random_range(at + 1..=buf.len().min(at + 64));
            buf.drain(at..end);
            trace.push(format!("delete {at}..{end}"));
        }
        _ => {
            let at = rng.random_range(0..buf.len());
            let end = rng.random_range(at + 1..=buf.len().min(at + 16));
            rng.fill(&mut buf[at..end]);
            trace.push(format!("overwrite {at}..{end} with random bytes"));
        }
    }
}

fn extreme_i64(rng: &mut SmallRng) -> i64 {
    const EXTREMES: [i64; 14] = [
        0,
        1,
        -1,
        2,
        7,
        49,
        i64::MAX,
        i64::MIN,
        i32::MAX as i64,
        i32::MIN as i64,
        i16::MAX as i64,
        i16::MIN as i64,
        0x7fff_fff0,
        100 << 20,
    ];
    if rng.random_bool(0.8) {
        EXTREMES[rng.random_range(0..EXTREMES.len())]
    } else {
        rng.random()
    }
}

fn extreme_i32(rng: &mut SmallRng) -> i32 {
    extreme_i64(rng) as i32
}

fn refresh_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

fn random_bytes(rng: &mut SmallRng, len: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = vec![0u8; rng.random_range(len)];
    rng.fill(&mut out[..]);
    out
}

// ---------------------------------------------------------------------------------------------
// Harness

/// Runs `iteration` the configured number of times from the configured seed (mixed with
/// `salt`, so targets differ); on a failure prints how to rerun it and the mutation trace.
fn run_target(name: &str, salt: u64, mut iteration: impl FnMut(&mut SmallRng, &mut Vec<String>)) {
    let seed = match std::env::var("BATCH_FUZZ_SEED") {
        Ok(s) => s.parse().expect("BATCH_FUZZ_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    let iterations: u64 = std::env::var("BATCH_FUZZ_ITERATIONS").map_or(20_000, |n| {
        n.parse().expect("BATCH_FUZZ_ITERATIONS is a number")
    });
    let mut rng = SmallRng::seed_from_u64(seed ^ salt);
    for i in 0..iterations {
        let mut trace = Vec::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| iteration(&mut rng, &mut trace)));
        if let Err(panic) = outcome {
            eprintln!(
                "batch_fuzz {name}: failed at iteration {i} with seed {seed}; \
                 rerun with BATCH_FUZZ_SEED={seed}\nmutations: {trace:#?}"
            );
            std::panic::resume_unwind(panic);
        }
    }
}

/// Calls a decoder, turning a panic into a test failure that names the decoder and the input's
/// mutations.
fn guarded<T>(what: &str, trace: &mut Vec<String>, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            trace.push(format!("{what} panicked: {message}"));
            panic!("{what} panicked on untrusted input: {message}");
        }
    }
}

/// Peak bytes live on this thread (above the level at the start) while `f` runs.
fn peak_alloc(f: impl FnOnce()) -> usize {
    let start = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|p| p.set(start));
    f();
    PEAK_BYTES.with(Cell::get).saturating_sub(start)
}

thread_local! {
    static LIVE_BYTES: Cell<usize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// Counts this thread's live and peak heap bytes; forwards everything to `System`.
struct CountingAlloc;

fn note_alloc(bytes: usize) {
    // `try_with`: the allocator may run while thread-locals are torn down.
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get().wrapping_add(bytes);
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn note_free(bytes: usize) {
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get().wrapping_sub(bytes)));
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; the counting touches only
// const-initialised, destructor-free thread-locals and never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: same contract as the caller's; forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: same contract as the caller's; forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        note_free(layout.size());
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
