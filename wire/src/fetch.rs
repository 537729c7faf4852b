//! The Fetch response encoder.
//!
//! A Fetch response is mostly record bytes the broker already has: in its batch cache or in a
//! segment file. The encoder therefore produces a list of [`FetchChunk`]s: small encoded
//! pieces (headers, partition metadata, length prefixes) interleaved with record sources the
//! caller supplies, which the connection writes in order, sending file ranges with sendfile.
//!
//! Layout, versions 4 to 16 (flexible from 12: compact lengths and tagged-field sections):
//! ```text
//! throttle_time_ms i32 | [v7+] error_code i16 | [v7+] session_id i32
//! responses[]: topic string (v4-12) or topic_id uuid (v13+)
//!   partitions[]: partition_index i32 | error_code i16 | high_watermark i64
//!     | last_stable_offset i64 | [v5+] log_start_offset i64
//!     | aborted_transactions[]? (producer_id i64, first_offset i64)
//!     | [v11+] preferred_read_replica i32 | records (nullable bytes) | [flex] tags
//!   [flex] tags
//! [flex] tags
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::put_response_header;
use crate::varint::put_uvarint;

/// Lowest Fetch version the encoder writes.
pub const FETCH_VERSION_MIN: i16 = 4;
/// Highest Fetch version the encoder writes.
pub const FETCH_VERSION_MAX: i16 = 16;

/// One piece of an encoded response.
#[derive(Debug)]
pub enum FetchChunk<R> {
    /// Encoded protocol bytes.
    Encoded(Bytes),
    /// Record bytes from a source the caller knows how to send.
    Records(R),
}

/// Anything that can stand in the records field.
pub trait RecordSource {
    /// Bytes it will send.
    fn len(&self) -> usize;
    /// True when it sends nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The topic key of a response entry.
#[derive(Debug, Clone)]
pub enum TopicKey {
    /// Name (versions up to 12).
    Name(String),
    /// Topic id (versions 13 and up).
    Id(uuid::Uuid),
}

/// One partition's answer.
#[derive(Debug)]
pub struct PartitionData<R> {
    /// Partition index.
    pub partition_index: i32,
    /// Kafka error code.
    pub error_code: i16,
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset (equals the high watermark without transactions).
    pub last_stable_offset: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// For a read_committed fetch: the aborted transactions overlapping the records,
    /// `(producer_id, first_offset)`; None (null on the wire) for read_uncommitted.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// Record sources, concatenated in order.
    pub records: Vec<R>,
    /// To a follower whose log diverges from the leader's (v12+, tag 0): the largest epoch
    /// at or below its last fetched epoch and the offset where that epoch ends here.
    pub diverging_epoch: Option<EpochEnd>,
    /// The leader as this broker knows it, for a NOT_LEADER_OR_FOLLOWER or
    /// FENCED_LEADER_EPOCH answer (v12+, tag 1, KIP-951's hint).
    pub current_leader: Option<LeaderHint>,
}

/// An epoch and the offset where it ends (Kafka's EpochEndOffset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    /// The epoch.
    pub epoch: i32,
    /// The first offset after it.
    pub end_offset: i64,
}

/// A partition's leader and leader epoch (Kafka's LeaderIdAndEpoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's broker id, -1 for none.
    pub leader_id: i32,
    /// Its leader epoch.
    pub leader_epoch: i32,
}

/// A broker's client endpoint, sent with leader hints (v16+, response tag 0, KIP-951), so a
/// client can go to a new leader it has no metadata for yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// Broker id.
    pub node_id: i32,
    /// Host.
    pub host: String,
    /// Port.
    pub port: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// One topic's answer.
#[derive(Debug)]
pub struct TopicData<R> {
    /// Name or id, per version.
    pub topic: TopicKey,
    /// Partitions.
    pub partitions: Vec<PartitionData<R>>,
}

/// Encodes a whole Fetch response frame (size prefix included) at `version`; the endpoints
/// of hinted leaders go out from v16 (none: no tag).
pub fn encode_fetch_response<R: RecordSource>(
    correlation_id: i32,
    version: i16,
    (throttle_time_ms, error_code, session_id): (i32, i16, i32),
    topics: Vec<TopicData<R>>,
    node_endpoints: &[NodeEndpoint],
) -> (Vec<FetchChunk<R>>, usize) {
    assert!((FETCH_VERSION_MIN..=FETCH_VERSION_MAX).contains(&version));
    let flexible = version >= 12;
    let mut out = Writer {
        chunks: Vec::new(),
        buf: BytesMut::with_capacity(256),
        total: 0,
    };
    out.buf.put_i32(0); // size, patched below
    put_response_header(&mut out.buf, correlation_id, i16::from(flexible));
    out.buf.put_i32(throttle_time_ms);
    if version >= 7 {
        out.buf.put_i16(error_code);
        out.buf.put_i32(session_id);
    }
    put_len(&mut out.buf, flexible, topics.len());
    for topic in topics {
        match (&topic.topic, version >= 13) {
            (TopicKey::Id(id), true) => out.buf.put_slice(id.as_bytes()),
            (TopicKey::Name(name), false) => put_string(&mut out.buf, flexible, name),
            (TopicKey::Name(_), true) | (TopicKey::Id(_), false) => {
                panic!("topic key does not match fetch version {version}")
            }
        }
        put_len(&mut out.buf, flexible, topic.partitions.len());
        for partition in topic.partitions {
            out.partition(partition, version, flexible);
        }
        if flexible {
            out.buf.put_u8(0);
        }
    }
    if flexible {
        if version >= 16 && !node_endpoints.is_empty() {
            let mut body = BytesMut::new();
            put_len(&mut body, true, node_endpoints.len());
            for e in node_endpoints {
                body.put_i32(e.node_id);
                put_string(&mut body, true, &e.host);
                body.put_i32(e.port);
                match &e.rack {
                    Some(rack) => put_string(&mut body, true, rack),
                    None => body.put_u8(0), // compact null
                }
                body.put_u8(0);
            }
            let mut tags = Vec::with_capacity(8);
            put_uvarint(&mut tags, 1);
            put_uvarint(&mut tags, 0);
            put_uvarint(&mut tags, body.len() as u64);
            out.buf.put_slice(&tags);
            out.buf.put_slice(&body);
        } else {
            out.buf.put_u8(0);
        }
    }
    let total = out.finish();
    (out.chunks, total)
}

struct Writer<R> {
    chunks: Vec<FetchChunk<R>>,
    buf: BytesMut,
    total: usize,
}

impl<R: RecordSource> Writer<R> {
    fn partition(&mut self, p: PartitionData<R>, version: i16, flexible: bool) {
        self.buf.put_i32(p.partition_index);
        self.buf.put_i16(p.error_code);
        self.buf.put_i64(p.high_watermark);
        self.buf.put_i64(p.last_stable_offset);
        if version >= 5 {
            self.buf.put_i64(p.log_start_offset);
        }
        match &p.aborted_transactions {
            None if flexible => self.buf.put_u8(0),
            None => self.buf.put_i32(-1),
            Some(list) => {
                put_len(&mut self.buf, flexible, list.len());
                for &(producer_id, first_offset) in list {
                    self.buf.put_i64(producer_id);
                    self.buf.put_i64(first_offset);
                    if flexible {
                        self.buf.put_u8(0); // no tagged fields
                    }
                }
            }
        }
        if version >= 11 {
            self.buf.put_i32(-1);
        }
        let records_len: usize = p.records.iter().map(RecordSource::len).sum();
        put_len(&mut self.buf, flexible, records_len);
        for source in p.records {
            if !source.is_empty() {
                self.flush();
                self.total += source.len();
                self.chunks.push(FetchChunk::Records(source));
            }
        }
        if flexible {
            self.partition_tags(p.diverging_epoch, p.current_leader);
        }
    }

    /// The tagged fields of a partition, in tag order: 0 diverging epoch, 1 current leader.
    fn partition_tags(&mut self, diverging: Option<EpochEnd>, leader: Option<LeaderHint>) {
        let count = u64::from(diverging.is_some()) + u64::from(leader.is_some());
        let mut tags = Vec::with_capacity(32);
        put_uvarint(&mut tags, count);
        if let Some(d) = diverging {
            // tag, size (epoch i32 + end_offset i64 + empty tag section), body
            put_uvarint(&mut tags, 0);
            put_uvarint(&mut tags, 13);
            tags.extend_from_slice(&d.epoch.to_be_bytes());
            tags.extend_from_slice(&d.end_offset.to_be_bytes());
            tags.push(0);
        }
        if let Some(l) = leader {
            put_uvarint(&mut tags, 1);
            put_uvarint(&mut tags, 9);
            tags.extend_from_slice(&l.leader_id.to_be_bytes());
            tags.extend_from_slice(&l.leader_epoch.to_be_bytes());
            tags.push(0);
        }
        self.buf.put_slice(&tags);
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            let bytes = self.buf.split().freeze();
            self.total += bytes.len();
            self.chunks.push(FetchChunk::Encoded(bytes));
        }
    }

    /// Flushes the tail and patches the size prefix into the first chunk.
    fn finish(&mut self) -> usize {
        self.flush();
        let size = (self.total - 4) as i32;
        if let Some(FetchChunk::Encoded(first)) = self.chunks.first_mut() {
            let mut patched = BytesMut::from(&first[..]);
            patched[0..4].copy_from_slice(&size.to_be_bytes());
            *first = patched.freeze();
        }
        self.total
    }
}

/// Array length: i32 (classic) or uvarint(len + 1) (compact).
fn put_len(buf: &mut BytesMut, flexible: bool, len: usize) {
    if flexible {
        let mut tmp = Vec::with_capacity(5);
        put_uvarint(&mut tmp, len as u64 + 1);
        buf.put_slice(&tmp);
    } else {
        buf.put_i32(len as i32);
    }
}

fn put_string(buf: &mut BytesMut, flexible: bool, s: &str) {
    if flexible {
        put_len(buf, true, s.len());
    } else {
        buf.put_i16(s.len() as i16);
    }
    buf.put_slice(s.as_bytes());
}

impl RecordSource for Bytes {
    fn len(&self) -> usize {
        Bytes::len(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Decodable;

    fn flatten(chunks: Vec<FetchChunk<Bytes>>) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            match c {
                FetchChunk::Encoded(b) | FetchChunk::Records(b) => out.extend_from_slice(&b),
            }
        }
        out
    }

    #[test]
    fn decodes_with_kafka_protocol_at_every_version() {
        let id = uuid::Uuid::from_u128(0x1234_5678);
        for version in FETCH_VERSION_MIN..=FETCH_VERSION_MAX {
            let topic = if version >= 13 {
                TopicKey::Id(id)
            } else {
                TopicKey::Name("t".into())
            };
            let records = vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
            let partitions = vec![
                PartitionData {
                    partition_index: 3,
                    error_code: 0,
                    high_watermark: 10,
                    last_stable_offset: 10,
                    log_start_offset: 2,
                    aborted_transactions: Some(vec![(7, 3), (9, 5)]),
                    records,
                    diverging_epoch: None,
                    current_leader: None,
                },
                PartitionData {
                    partition_index: 4,
                    error_code: 1,
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                    aborted_transactions: None,
                    records: vec![],
                    diverging_epoch: Some(EpochEnd {
                        epoch: 7,
                        end_offset: 1234,
                    }),
                    current_leader: Some(LeaderHint {
                        leader_id: 2,
                        leader_epoch: 8,
                    }),
                },
            ];
            let endpoints = [NodeEndpoint {
                node_id: 2,
                host: "b2.example".into(),
                port: 9093,
                rack: Some("r2".into()),
            }];
            let (chunks, total) = encode_fetch_response(
                99,
                version,
                (0, 0, 0),
                vec![TopicData { topic, partitions }],
                &endpoints,
            );
            let bytes = flatten(chunks);
            assert_eq!(bytes.len(), total);
            assert_eq!(
                i32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize,
                total - 4
            );
            assert_eq!(i32::from_be_bytes(bytes[4..8].try_into().unwrap()), 99);
            let body_at = if version >= 12 { 9 } else { 8 };
            let mut body = Bytes::copy_from_slice(&bytes[body_at..]);
            let decoded = FetchResponse::decode(&mut body, version).unwrap();
            assert!(body.is_empty(), "v{version}: trailing bytes");
            let t = &decoded.responses[0];
            if version >= 13 {
                assert_eq!(t.topic_id, id);
            } else {
                assert_eq!(t.topic.0.as_str(), "t");
            }
            let p = &t.partitions[0];
            assert_eq!((p.partition_index, p.high_watermark), (3, 10));
            if version >= 5 {
                assert_eq!(p.log_start_offset, 2);
            }
            assert_eq!(p.records.as_deref(), Some(&b"abcdefg"[..]));
            let aborted: Vec<(i64, i64)> = p
                .aborted_transactions
                .iter()
                .flatten()
                .map(|a| (a.producer_id.0, a.first_offset))
                .collect();
            assert_eq!(aborted, vec![(7, 3), (9, 5)], "v{version}");
            assert!(
                t.partitions[1].aborted_transactions.is_none(),
                "null, not empty"
            );
            let refused = &t.partitions[1];
            assert_eq!(refused.error_code, 1);
            if version >= 12 {
                let d = &refused.diverging_epoch;
                assert_eq!((d.epoch, d.end_offset), (7, 1234), "v{version}");
                let l = &refused.current_leader;
                assert_eq!((l.leader_id.0, l.leader_epoch), (2, 8), "v{version}");
                assert_eq!(
                    p.diverging_epoch.epoch, -1,
                    "absent tags decode as defaults"
                );
            }
            if version >= 16 {
                let e = &decoded.node_endpoints[0];
                assert_eq!(decoded.node_endpoints.len(), 1);
                assert_eq!(
                    (e.node_id.0, e.host.as_str(), e.port),
                    (2, "b2.example", 9093)
                );
                assert_eq!(e.rack.as_deref(), Some("r2"));
            } else {
                assert!(decoded.node_endpoints.is_empty());
            }
        }
    }
}
