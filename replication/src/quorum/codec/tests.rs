use super::*;
use crate::metadata::sample::RecordSource;
use crate::quorum::entry::encode_entry_data;

fn entry(term: u64, index: u64, data: &[u8]) -> Entry {
    Entry {
        term,
        index,
        data: bytes::Bytes::copy_from_slice(data),
        ..Default::default()
    }
}

/// One message of every type peers exchange, with every carried field set.
fn samples() -> Vec<Message> {
    let types = [3u8, 4, 5, 6, 7, 8, 9, 13, 14, 17, 18];
    let data = encode_entry_data(&[
        crate::metadata::MetadataRecord::NoOp,
        crate::metadata::MetadataRecord::NoOp,
    ]);
    types
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let i = i as u64;
            let mut m = Message::default();
            m.set_msg_type(message_type(t).unwrap());
            m.to = 1 + i;
            m.from = 2 + i;
            m.term = 7 + i;
            m.log_term = 6;
            m.index = 40 + i;
            m.commit = 39;
            m.commit_term = 5;
            m.request_snapshot = i;
            m.reject = i & 1 == 0;
            m.reject_hint = 41;
            m.priority = -(i as i64);
            m.context = bytes::Bytes::from_static(b"CampaignTransfer");
            if t == 3 {
                m.entries = vec![entry(6, 41, &[]), entry(7, 42, &data)].into();
            }
            if t == 7 {
                let snapshot = m.mut_snapshot();
                snapshot.data = bytes::Bytes::from_static(b"a metadata snapshot file body");
                let metadata = snapshot.mut_metadata();
                metadata.index = 38;
                metadata.term = 5;
                metadata.mut_conf_state().voters = vec![1, 2, 3];
            }
            m
        })
        .collect()
}

#[test]
fn every_carried_type_round_trips() {
    for m in samples() {
        let bytes = encode_message(&m).unwrap();
        assert_eq!(decode_message(&bytes).unwrap(), m, "{:?}", m.get_msg_type());
    }
}

#[test]
fn every_prefix_and_every_extension_is_an_error() {
    for m in samples() {
        let bytes = encode_message(&m).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_message(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_message(&longer).is_err(), "trailing byte");
    }
}

#[test]
fn what_the_quorum_never_sends_is_refused_both_ways() {
    for t in [
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgPropose,
        MessageType::MsgReadIndex,
        MessageType::MsgCheckQuorum,
    ] {
        let mut m = Message::default();
        m.set_msg_type(t);
        assert!(encode_message(&m).is_err(), "{t:?}");
        let mut bytes = encode_message(&samples()[0]).unwrap();
        bytes[1] = t as u8;
        assert!(decode_message(&bytes).is_err(), "{t:?}");
    }
    let mut m = samples()[0].clone();
    m.entries[0].set_entry_type(EntryType::EntryConfChange);
    assert!(encode_message(&m).is_err(), "conf change");
    let mut m = samples()[0].clone();
    m.entries[0].context = bytes::Bytes::from_static(b"x");
    assert!(encode_message(&m).is_err(), "entry context");
    let mut m = samples()[0].clone();
    m.mut_snapshot().mut_metadata().index = 3;
    assert!(
        encode_message(&m).is_err(),
        "a snapshot outside MsgSnapshot"
    );
    let snapshot = samples()[4].clone();
    assert_eq!(snapshot.get_msg_type(), MessageType::MsgSnapshot);
    let mut m = snapshot.clone();
    m.mut_snapshot().mut_metadata().mut_conf_state().learners = vec![4];
    assert!(encode_message(&m).is_err(), "learners");
    let mut m = snapshot.clone();
    m.mut_snapshot().mut_metadata().mut_conf_state().voters = (1..=VOTERS_MAX as u64 + 1).collect();
    assert!(encode_message(&m).is_err(), "too many voters");
    let mut m = snapshot.clone();
    m.mut_snapshot().data = vec![0; SNAPSHOT_BYTES_MAX + 1].into();
    assert!(encode_message(&m).is_err(), "snapshot too large");
    // A snapshot message that declares more data than its bound, with the bytes present.
    let mut m = snapshot;
    m.mut_snapshot().data = vec![7; SNAPSHOT_BYTES_MAX].into();
    let mut bytes = encode_message(&m).unwrap();
    let len_at = bytes.len() - SNAPSHOT_BYTES_MAX - 4;
    bytes[len_at..len_at + 4].copy_from_slice(&(SNAPSHOT_BYTES_MAX as u32 + 1).to_be_bytes());
    bytes.push(7);
    assert!(
        decode_message(&bytes).is_err(),
        "declared snapshot size over the bound"
    );
    let mut m = samples()[0].clone();
    m.context = vec![0; CONTEXT_BYTES_MAX + 1].into();
    assert!(encode_message(&m).is_err(), "context bound");
}

#[test]
fn declared_sizes_beyond_the_bytes_or_the_bounds_are_refused() {
    let m = samples()[0].clone();
    let bytes = encode_message(&m).unwrap();
    // Offsets: version, type, 8 u64s, reject, reject_hint, priority, then the context length.
    let context_len_at = 2 + 8 * 8 + 1 + 8 + 8;
    let mut bad = bytes.clone();
    bad[context_len_at..context_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(decode_message(&bad).is_err());
    let count_at = context_len_at + 4 + m.context.len();
    let mut bad = bytes.clone();
    bad[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(decode_message(&bad).is_err());
    let data_len_at = count_at + 4 + 16;
    let mut bad = bytes.clone();
    bad[data_len_at..data_len_at + 4].copy_from_slice(&(BATCH_BYTES_MAX as u32 + 1).to_be_bytes());
    assert!(decode_message(&bad).is_err());
    let mut huge = bytes;
    huge.resize(MESSAGE_BYTES_MAX + 1, 0);
    assert!(decode_message(&huge).is_err());
    // Many empty entries that the bytes do hold, but more than the bound.
    let mut m = samples()[0].clone();
    m.entries = (0..ENTRIES_PER_MESSAGE_MAX as u64 + 1)
        .map(|i| entry(1, i + 1, &[]))
        .collect::<Vec<_>>()
        .into();
    assert!(encode_message(&m).is_err());
    m.entries.truncate(ENTRIES_PER_MESSAGE_MAX);
    let mut bytes = encode_message(&m).unwrap();
    bytes[count_at..count_at + 4]
        .copy_from_slice(&(ENTRIES_PER_MESSAGE_MAX as u32 + 1).to_be_bytes());
    bytes.extend_from_slice(&[0; ENTRY_MIN_BYTES]);
    assert!(decode_message(&bytes).is_err());
}

#[test]
fn seeded_mutations_never_panic_and_decoded_messages_reencode() {
    let mut rng = RecordSource::new(0x5eed);
    let valid: Vec<Vec<u8>> = samples()
        .iter()
        .map(|m| encode_message(m).unwrap())
        .collect();
    let (mut accepted, mut refused) = (0u32, 0u32);
    for _ in 0..5_000 {
        let mut bytes = valid[rng.below(valid.len() as u64) as usize].clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(4) {
                0 => {
                    let i = rng.below(bytes.len() as u64) as usize;
                    bytes[i] = rng.next_u64() as u8;
                }
                1 => {
                    let i = rng.below(bytes.len() as u64) as usize;
                    bytes[i] ^= 1 << rng.below(8);
                }
                2 => bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize),
                _ => {
                    let i = rng.below(bytes.len() as u64 + 1) as usize;
                    bytes.insert(i, rng.next_u64() as u8);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        match decode_message(&bytes) {
            Ok(m) => {
                accepted += 1;
                assert_eq!(encode_message(&m).unwrap(), bytes, "canonical encoding");
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        accepted > 100 && refused > 100,
        "{accepted} accepted, {refused} refused"
    );
}
