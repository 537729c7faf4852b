//! `log dump` and `log check`: read partition directories offline, as Kafka's
//! `kafka-dump-log.sh` does.
//!
//! A partition directory is `<topic>-<partition>/` holding segment files named by their base
//! offset in 20 digits (`00000000000000004211.log`). A segment is record batches v2 back to back:
//!
//! ```text
//! position 0:  batch (12-byte overhead: base_offset i64, batch_length i32; then the rest)
//! position n:  batch ...
//! position e:  zeros up to the block boundary (direct I/O), or the end of the file
//! ```
//!
//! A batch whose length field is zero marks the end (block padding), as does a tail shorter
//! than the 12-byte overhead that is all zeros. Anything else that does not frame,
//! a CRC mismatch, inconsistent header fields, or offsets that go backwards or overlap (within a
//! segment, and from one segment to the next) is corruption: `check` names the file and byte
//! position and exits 1. Gaps are not: log compaction removes records and whole batches but
//! keeps the others at their offsets, and may leave batches holding fewer records than their
//! offset span, or none.
//!
//! Segments are read one batch at a time, so memory stays at one batch (at most
//! `BATCH_BYTES_MAX`) whatever the segment size.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use millrace_wire::records::{
    decode_records, validate_stored_batch, BatchHeader, BATCH_HEADER_BYTES, LOG_OVERHEAD,
};

use crate::error::ToolError;
use crate::output::outln;

/// A batch longer than this is taken as a corrupt length (Kafka's own limit is far lower).
const BATCH_BYTES_MAX: usize = 256 << 20;
/// Bound on one batch's decompressed records when printing them.
const DECOMPRESSED_BYTES_MAX: usize = 256 << 20;
const SEGMENT_SUFFIX: &str = ".log";

/// `log ...`
#[derive(Subcommand)]
pub enum LogCommand {
    /// List segments and batches of a partition directory or of every partition in a data dir.
    Dump {
        /// Partition directory or data directory.
        dir: PathBuf,
        /// Also print every record.
        #[arg(long)]
        records: bool,
    },
    /// Validate every batch (CRC, lengths, increasing offsets); exit 1 on any corruption.
    Check {
        /// Partition directory or data directory.
        dir: PathBuf,
    },
}

/// Runs a `log` subcommand.
pub fn run(cmd: LogCommand) -> Result<(), ToolError> {
    match cmd {
        LogCommand::Dump { dir, records } => {
            for partition in partition_dirs(&dir)? {
                dump_partition(&partition, records)?;
            }
            Ok(())
        }
        LogCommand::Check { dir } => {
            let mut problems = 0usize;
            let mut batches = 0u64;
            let partitions = partition_dirs(&dir)?;
            for partition in &partitions {
                let report = check_partition(partition)?;
                batches += report.batches;
                for problem in &report.problems {
                    outln!("CORRUPT {problem}");
                }
                problems += report.problems.len();
            }
            if problems > 0 {
                return Err(ToolError::Corrupt(format!(
                    "{problems} corruption(s) found in {}",
                    dir.display()
                )));
            }
            outln!(
                "OK: {} partition(s), {batches} batches, no corruption",
                partitions.len()
            );
            Ok(())
        }
    }
}

/// What one segment holds, batch by batch.
#[derive(Debug)]
enum Entry {
    /// A batch that framed; `error` says what is wrong with it, if anything.
    Batch {
        position: u64,
        header: BatchHeader,
        bytes: Vec<u8>,
        error: Option<String>,
    },
    /// The bytes at `position` do not frame as a batch; the rest of the segment is unreadable.
    Broken { position: u64, reason: String },
}

/// Reads a segment batch by batch, stopping at the end, at zero padding, or at bytes that do
/// not frame.
struct SegmentReader {
    reader: BufReader<File>,
    position: u64,
    finished: bool,
}

impl SegmentReader {
    fn open(path: &Path) -> Result<SegmentReader, ToolError> {
        let file = File::open(path).map_err(|e| file_error(path, e))?;
        Ok(SegmentReader {
            reader: BufReader::with_capacity(1 << 20, file),
            position: 0,
            finished: false,
        })
    }

    fn next_entry(&mut self) -> std::io::Result<Option<Entry>> {
        if self.finished {
            return Ok(None);
        }
        let position = self.position;
        let mut overhead = [0u8; LOG_OVERHEAD];
        let got = read_full(&mut self.reader, &mut overhead)?;
        if got < LOG_OVERHEAD {
            self.finished = true;
            if overhead[..got].iter().all(|&b| b == 0) {
                return Ok(None);
            }
            return Ok(Some(Entry::Broken {
                position,
                reason: format!("{got} trailing bytes, too short for a batch"),
            }));
        }
        let base_offset = i64::from_be_bytes(overhead[..8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(overhead[8..].try_into().expect("4 bytes"));
        if length == 0 {
            // Zero padding after the last batch: the end.
            self.finished = true;
            return Ok(None);
        }
        let total = LOG_OVERHEAD as i64 + i64::from(length);
        if (length as i64) < (BATCH_HEADER_BYTES - LOG_OVERHEAD) as i64
            || total as usize > BATCH_BYTES_MAX
        {
            self.finished = true;
            return Ok(Some(Entry::Broken {
                position,
                reason: format!("bad batch length {length} (base offset {base_offset})"),
            }));
        }
        let mut bytes = vec![0u8; total as usize];
        bytes[..LOG_OVERHEAD].copy_from_slice(&overhead);
        let got = read_full(&mut self.reader, &mut bytes[LOG_OVERHEAD..])?;
        if got < bytes.len() - LOG_OVERHEAD {
            self.finished = true;
            return Ok(Some(Entry::Broken {
                position,
                reason: format!(
                    "truncated batch: length says {total} bytes, {} present",
                    LOG_OVERHEAD + got
                ),
            }));
        }
        self.position += total as u64;
        let header = match BatchHeader::parse(&bytes) {
            Ok(h) => h,
            Err(e) => {
                // A wrong magic: this is not a v2 batch, so its length cannot be trusted either.
                self.finished = true;
                return Ok(Some(Entry::Broken {
                    position,
                    reason: e.to_string(),
                }));
            }
        };
        let error = validate_stored_batch(&bytes).err().map(|e| e.to_string());
        Ok(Some(Entry::Batch {
            position,
            header,
            bytes,
            error,
        }))
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The partition directories under `dir`: `dir` itself when it holds segments, else every
/// directory below it that does (sorted, recursively).
pub fn partition_dirs(dir: &Path) -> Result<Vec<PathBuf>, ToolError> {
    let meta = std::fs::metadata(dir).map_err(|e| file_error(dir, e))?;
    if !meta.is_dir() {
        return Err(ToolError::File {
            path: dir.display().to_string(),
            reason: "not a directory".into(),
        });
    }
    let mut out = Vec::new();
    collect_partition_dirs(dir, &mut out)?;
    if out.is_empty() {
        return Err(ToolError::File {
            path: dir.display().to_string(),
            reason: "no partition directories (no *.log segment files) found".into(),
        });
    }
    Ok(out)
}

fn collect_partition_dirs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ToolError> {
    if !segments(dir)?.is_empty() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| file_error(dir, e))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    children.sort();
    for child in children {
        collect_partition_dirs(&child, out)?;
    }
    Ok(())
}

/// Segment files of a partition directory with their base offsets, in offset order.
fn segments(dir: &Path) -> Result<Vec<(i64, PathBuf)>, ToolError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| file_error(dir, e))? {
        let entry = entry.map_err(|e| file_error(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = stem.parse::<i64>() {
                out.push((base, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn dump_partition(dir: &Path, records: bool) -> Result<(), ToolError> {
    for (base, path) in segments(dir)? {
        let size = std::fs::metadata(&path)
            .map_err(|e| file_error(&path, e))?
            .len();
        outln!(
            "Dumping {} (base offset {base}, {size} bytes on disk)",
            path.display()
        );
        let mut reader = SegmentReader::open(&path)?;
        let (mut batches, mut record_count) = (0u64, 0u64);
        while let Some(entry) = reader.next_entry().map_err(|e| file_error(&path, e))? {
            match entry {
                Entry::Batch {
                    position,
                    header,
                    bytes,
                    error,
                } => {
                    batches += 1;
                    record_count += header.record_count.max(0) as u64;
                    outln!("{}", batch_line(position, &header, error.as_deref()));
                    if records && error.is_none() {
                        print_records(&header, &bytes);
                    }
                }
                Entry::Broken { position, reason } => {
                    outln!("position: {position} unreadable: {reason}");
                }
            }
        }
        outln!(
            "Segment {}: {batches} batches, {record_count} records, {} valid bytes",
            path.display(),
            reader.position
        );
    }
    Ok(())
}

fn batch_line(position: u64, h: &BatchHeader, error: Option<&str>) -> String {
    let codec = h.compression().map_or("unknown", |c| c.name());
    let ts_type = if h.is_log_append_time() {
        "LogAppendTime"
    } else {
        "CreateTime"
    };
    let mut line = format!(
        "baseOffset: {} lastOffset: {} count: {} position: {position} size: {} \
         baseTimestamp: {} maxTimestamp: {} timestampType: {ts_type} producerId: {} \
         producerEpoch: {} baseSequence: {} partitionLeaderEpoch: {} isTransactional: {} \
         isControl: {} compresscodec: {codec} crc: {} isValid: {}",
        h.base_offset,
        h.last_offset(),
        h.record_count,
        h.total_bytes(),
        h.base_timestamp,
        h.max_timestamp,
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.partition_leader_epoch,
        h.is_transactional(),
        h.is_control(),
        h.crc,
        error.is_none()
    );
    if let Some(e) = error {
        line.push_str(&format!(" error: {e}"));
    }
    line
}

fn print_records(header: &BatchHeader, bytes: &[u8]) {
    match decode_records(bytes, DECOMPRESSED_BYTES_MAX) {
        Ok(records) => {
            for r in records {
                let text = |b: &Option<bytes::Bytes>| {
                    b.as_ref().map_or("null".to_string(), |b| {
                        String::from_utf8_lossy(b).into_owned()
                    })
                };
                let headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}={}", text(v)))
                    .collect();
                outln!(
                    "| offset: {} {}: {} keySize: {} valueSize: {} headers: [{}] key: {} payload: {}",
                    r.offset,
                    if header.is_log_append_time() { "LogAppendTime" } else { "CreateTime" },
                    r.timestamp,
                    r.key.as_ref().map_or(-1, |k| k.len() as i64),
                    r.value.as_ref().map_or(-1, |v| v.len() as i64),
                    headers.join(","),
                    text(&r.key),
                    text(&r.value)
                );
            }
        }
        Err(e) => outln!("| records undecodable: {e}"),
    }
}

/// What `check` found in one partition directory.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Batches read.
    pub batches: u64,
    /// One line per problem: file, byte position, what.
    pub problems: Vec<String>,
}

/// Validates every batch of every segment in `dir`.
pub fn check_partition(dir: &Path) -> Result<CheckReport, ToolError> {
    let mut report = CheckReport::default();
    // The offset the next batch must start at; None after corruption (not checkable).
    let mut expected: Option<i64> = None;
    for (base, path) in segments(dir)? {
        let file = path.display().to_string();
        match expected {
            Some(next) if next != base => report.problems.push(format!(
                "{file}: segment base offset {base} but the previous segment ends at {next}"
            )),
            _ => {}
        }
        expected = Some(base);
        let mut reader = SegmentReader::open(&path)?;
        while let Some(entry) = reader.next_entry().map_err(|e| file_error(&path, e))? {
            match entry {
                Entry::Batch {
                    position,
                    header,
                    error,
                    ..
                } => {
                    report.batches += 1;
                    if let Some(e) = error {
                        report
                            .problems
                            .push(format!("{file} position {position}: {e}"));
                    }
                    if let Some(next) = expected {
                        if header.base_offset < next {
                            report.problems.push(format!(
                                "{file} position {position}: batch base offset {} but at least \
                                 {next} expected (offsets must increase)",
                                header.base_offset
                            ));
                        }
                    }
                    expected = Some(header.next_offset());
                }
                Entry::Broken { position, reason } => {
                    report
                        .problems
                        .push(format!("{file} position {position}: {reason}"));
                    expected = None;
                }
            }
        }
    }
    Ok(report)
}

fn file_error(path: &Path, e: std::io::Error) -> ToolError {
    ToolError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_wire::records::{set_base_offset, BatchBuilder, NewRecord};

    fn batch(base: i64, n: usize) -> Vec<u8> {
        let records: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                timestamp: 1000 + i as i64,
                key: Some(format!("k{i}").into_bytes()),
                value: Some(vec![b'v'; 20]),
                headers: vec![],
            })
            .collect();
        let mut b = BatchBuilder::default().build(&records);
        set_base_offset(&mut b, base);
        b
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("millrace-tools-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("t-0")).unwrap();
        dir
    }

    fn write_segment(dir: &Path, base: i64, batches: &[Vec<u8>], padding: usize) -> PathBuf {
        let mut bytes: Vec<u8> = batches.concat();
        bytes.resize(bytes.len() + padding, 0);
        let path = dir.join("t-0").join(format!("{base:020}.log"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn clean_padded_segments_pass_and_a_flipped_byte_is_found() {
        let dir = temp_dir("check");
        let first = [batch(0, 3), batch(3, 2)];
        let first_len = first[0].len();
        let path = write_segment(&dir, 0, &first, 4096 - 7);
        write_segment(&dir, 5, &[batch(5, 4)], 100);
        let partitions = partition_dirs(&dir).unwrap();
        assert_eq!(partitions, vec![dir.join("t-0")]);
        let report = check_partition(&partitions[0]).unwrap();
        assert_eq!(
            (report.batches, report.problems.len()),
            (3, 0),
            "{report:?}"
        );

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[first_len + 70] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let report = check_partition(&partitions[0]).unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert!(
            report.problems[0].contains(&format!("position {first_len}")),
            "{report:?}"
        );
        assert!(report.problems[0].contains("CRC"), "{report:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn compaction_gaps_are_fine_but_overlaps_and_garbage_are_corruption() {
        let dir = temp_dir("compacted");
        write_segment(&dir, 0, &[batch(0, 3), batch(5, 1), batch(9, 1)], 0);
        write_segment(&dir, 10, &[batch(12, 2)], 0);
        let report = check_partition(&dir.join("t-0")).unwrap();
        assert!(report.problems.is_empty(), "{report:?}");
        let _ = std::fs::remove_dir_all(&dir);

        let dir = temp_dir("gaps");
        write_segment(&dir, 0, &[batch(0, 3), batch(2, 4)], 0);
        let mut garbage = batch(6, 1);
        garbage.extend_from_slice(&[0xff; 30]);
        write_segment(&dir, 6, &[garbage], 0);
        let report = check_partition(&dir.join("t-0")).unwrap();
        assert_eq!(report.problems.len(), 2, "{report:?}");
        assert!(report.problems[0].contains("must increase"), "{report:?}");
        assert!(
            report.problems[1].contains("bad batch length"),
            "{report:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
