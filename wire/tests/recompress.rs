//! `recompress` keeps every record and header field and changes only the codec.

use millrace_wire::records::{decode_records, recompress, validate_batch, BatchBuilder, NewRecord};
use millrace_wire::Compression;

#[test]
fn every_codec_to_every_codec_keeps_the_records() {
    let records: Vec<NewRecord> = (0..50)
        .map(|i| NewRecord {
            timestamp: 1_700_000_000_000 + i,
            key: (i % 3 != 0).then(|| format!("k{i}").into_bytes()),
            value: (i % 7 != 0).then(|| vec![i as u8; 100]),
            headers: vec![("h".into(), Some(b"v".to_vec()))],
        })
        .collect();
    for from in Compression::ALL {
        let original = BatchBuilder {
            compression: from,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 7,
            ..BatchBuilder::default()
        }
        .build(&records);
        let expected = decode_records(&original, 1 << 20).unwrap();
        for to in Compression::ALL {
            let out = recompress(&original, to, 1 << 20).unwrap();
            let header = validate_batch(&out).unwrap();
            assert_eq!(header.compression().unwrap(), to);
            let before = validate_batch(&original).unwrap();
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (
                    before.producer_id,
                    before.producer_epoch,
                    before.base_sequence
                )
            );
            assert_eq!(
                (
                    header.base_timestamp,
                    header.max_timestamp,
                    header.last_offset_delta
                ),
                (
                    before.base_timestamp,
                    before.max_timestamp,
                    before.last_offset_delta
                )
            );
            assert_eq!(
                decode_records(&out, 1 << 20).unwrap(),
                expected,
                "{from:?} -> {to:?}"
            );
        }
    }
}

#[test]
fn refuses_a_bomb_over_the_bound() {
    let records = vec![NewRecord {
        value: Some(vec![0u8; 1 << 20]),
        ..NewRecord::default()
    }];
    let batch = BatchBuilder {
        compression: Compression::Zstd,
        ..BatchBuilder::default()
    }
    .build(&records);
    assert!(recompress(&batch, Compression::None, 64 << 10).is_err());
}
