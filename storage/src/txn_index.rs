//! Aborted transactions: what a read_committed consumer needs to skip aborted records.
//!
//! Each abort marker adds one [`AbortedTxn`]: the producer, the first offset it wrote in the
//! transaction on this partition, the marker's offset, and the last stable offset right after
//! the marker (ignoring the high watermark). The log keeps them all in memory, sorted by marker
//! offset, and writes those of a rolled segment (whose marker lies in it) to that segment's
//! `.txnindex` once its data is synced, before its `.index`:
//!
//! ```text
//! .txnindex  magic "MLTX" v1: base_offset i64, count u32,
//!            count × (producer_id i64, first_offset i64, last_offset i64, last_stable_offset i64)
//! ```
//!
//! A segment with no abort has no file. At open, a closed segment's valid file is trusted; a
//! closed segment with a trusted `.index` and no file has none; any other segment (the active
//! one after a crash, a damaged file) is rebuilt by replaying the producer state from a
//! snapshot at or below it (`recovery.rs`).

use crate::framed;

const MAGIC: &[u8; 4] = b"MLTX";
const VERSION: u16 = 1;

/// One aborted transaction on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// The first offset it wrote in the transaction here (the marker's, if none).
    pub first_offset: i64,
    /// The abort marker's offset.
    pub last_offset: i64,
    /// The last stable offset once the marker was appended: no transaction aborted later
    /// started below it, which lets a search stop early.
    pub last_stable_offset: i64,
}

pub(crate) fn encode(base_offset: i64, entries: &[AbortedTxn]) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + entries.len() * 32);
    body.extend_from_slice(&base_offset.to_be_bytes());
    body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        for field in [
            e.producer_id,
            e.first_offset,
            e.last_offset,
            e.last_stable_offset,
        ] {
            body.extend_from_slice(&field.to_be_bytes());
        }
    }
    framed::seal(MAGIC, VERSION, &body)
}

/// Decodes the file of the segment `[base_offset, next_offset)`: its entries must be that
/// segment's, in marker order.
pub(crate) fn decode(
    base_offset: i64,
    next_offset: i64,
    file: &[u8],
) -> Result<Vec<AbortedTxn>, String> {
    let mut r = framed::Reader::new(framed::open(MAGIC, VERSION, file)?);
    let base = r.i64()?;
    if base != base_offset {
        return Err(format!("base offset {base}, expected {base_offset}"));
    }
    let n = r.count(32)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let e = AbortedTxn {
            producer_id: r.i64()?,
            first_offset: r.i64()?,
            last_offset: r.i64()?,
            last_stable_offset: r.i64()?,
        };
        let in_order = entries
            .last()
            .is_none_or(|p: &AbortedTxn| p.last_offset < e.last_offset);
        if !(base_offset..next_offset).contains(&e.last_offset)
            || e.first_offset > e.last_offset
            || !in_order
        {
            return Err(format!("entry {e:?} out of place"));
        }
        entries.push(e);
    }
    r.finish()?;
    Ok(entries)
}

/// The aborted transactions a fetch of `[from, upper)` must report (`entries` sorted by marker
/// offset): those whose marker is at or after `from` and which started below `upper`.
pub(crate) fn collect(entries: &[AbortedTxn], from: i64, upper: i64) -> Vec<AbortedTxn> {
    let start = entries.partition_point(|e| e.last_offset < from);
    let mut out = Vec::new();
    for e in &entries[start..] {
        if e.first_offset < upper {
            out.push(*e);
        }
        // Every transaction aborted after this one started at or above its stable offset.
        if e.last_stable_offset >= upper {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn file_round_trip_and_checks() {
        let entries = vec![e(1, 3, 10, 11), e(2, 5, 12, 13)];
        let file = encode(10, &entries);
        assert_eq!(decode(10, 20, &file).unwrap(), entries);
        assert!(decode(0, 20, &file).is_err(), "another segment's");
        assert!(decode(10, 12, &file).is_err(), "beyond the segment's end");
        let unordered = encode(10, &[e(2, 5, 12, 13), e(1, 3, 10, 11)]);
        assert!(decode(10, 20, &unordered).is_err());
    }

    #[test]
    fn collect_reports_overlapping_aborts_only() {
        // Producer 1 aborts [0, 4]; producer 2's transaction starts at 2 and aborts at 9 while
        // producer 3's, from 6, is still open (stable offset 6); producer 3 aborts at 12.
        let entries = [e(1, 0, 4, 2), e(2, 2, 9, 6), e(3, 6, 12, 13)];
        let pids = |v: Vec<AbortedTxn>| v.iter().map(|e| e.producer_id).collect::<Vec<_>>();
        assert_eq!(pids(collect(&entries, 0, 2)), vec![1]);
        assert_eq!(pids(collect(&entries, 0, 3)), vec![1, 2]);
        assert_eq!(pids(collect(&entries, 5, 13)), vec![2, 3]);
        assert_eq!(pids(collect(&entries, 10, 13)), vec![3]);
        assert_eq!(pids(collect(&entries, 13, 20)), Vec::<i64>::new());
    }
}
