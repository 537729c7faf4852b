//! ShareFetch and ShareAcknowledge version 2 (Kafka 4.2+, KIP-1222) over kafka-protocol's
//! version 1 codec, which is all kafka-protocol 0.18 has. Version 2 differs from 1 only by
//! fields the broker can take out or put in at fixed places:
//!
//! ```text
//! ShareFetch request v2        = v1 with ShareAcquireMode:int8, IsRenewAck:bool after BatchSize
//! ShareAcknowledge request v2  = v1 with IsRenewAck:bool after ShareSessionEpoch
//! ShareFetch response v2       = v1
//! ShareAcknowledge response v2 = v1 with AcquisitionLockTimeoutMs:int32 after ErrorMessage
//! ```
//!
//! A v2 body is checked by the wire guard at v2, the extra request fields are read and cut out,
//! and the rest decoded as v1. Responses are encoded as v1 (same response header version) and
//! patched.

use super::Response;
use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::Decodable;
use millrace_wire::frame::RequestHeader;

/// (api key, version) pairs served by decoding another version (ShareFetch and
/// ShareAcknowledge v2), which kafka-protocol 0.18 lacks.
pub const BRIDGED: &[(i16, i16)] = &[(78, 2), (79, 2)];

/// The fields v2 adds to a request (their defaults for v1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct V2Fields {
    /// ShareFetch's ShareAcquireMode: 0 batch-optimized, 1 record-limit.
    pub acquire_mode: i8,
    /// IsRenewAck: the acknowledgements include RENEW (4) entries.
    pub renew: bool,
}

/// Offset of the byte after `n` compact nullable strings at `at`, if the body holds them.
fn skip_compact_strings(body: &[u8], mut at: usize, n: usize) -> Option<usize> {
    for _ in 0..n {
        let (len_plus_one, used) = read_uvarint(&body[at.min(body.len())..])?;
        at += used;
        if len_plus_one > 0 {
            at = at.checked_add(usize::try_from(len_plus_one - 1).ok()?)?;
        }
    }
    (at <= body.len()).then_some(at)
}

fn read_uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(5) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Decodes a ShareFetch (`fetch`) or ShareAcknowledge request of version 1 or 2: the body
/// and, for v2, the fields it adds; the header to answer with (v1's for a v2 request).
pub fn decode<T: Decodable>(
    header: &RequestHeader,
    body: &Bytes,
    fetch: bool,
) -> Result<(T, V2Fields, RequestHeader), Response> {
    if !BRIDGED.contains(&(header.api_key, header.api_version)) {
        let req = super::decode(header, body)?;
        return Ok((req, V2Fields::default(), header.clone()));
    }
    let close = |why: String| {
        Response::Close(format!(
            "malformed request (api {} v2): {why}",
            header.api_key
        ))
    };
    millrace_wire::guard::check_request_body(header.api_key, 2, body)
        .or_else(|e| match e {
            millrace_wire::guard::GuardError::TrailingBytes { .. } => Ok(()),
            other => Err(other),
        })
        .map_err(|e| close(e.to_string()))?;
    // Two compact strings, then int32s: ShareFetch has six (epoch, wait, min/max bytes, max
    // records, batch size), ShareAcknowledge one (epoch).
    let strings_end = skip_compact_strings(body, 0, 2).ok_or_else(|| close("short".into()))?;
    let at = strings_end + if fetch { 24 } else { 4 };
    let extra = if fetch { 2 } else { 1 };
    if body.len() < at + extra {
        return Err(close("short".into()));
    }
    let fields = if fetch {
        V2Fields {
            acquire_mode: body[at] as i8,
            renew: body[at + 1] != 0,
        }
    } else {
        V2Fields {
            acquire_mode: 0,
            renew: body[at] != 0,
        }
    };
    let mut v1 = BytesMut::with_capacity(body.len() - extra);
    v1.extend_from_slice(&body[..at]);
    v1.extend_from_slice(&body[at + extra..]);
    let mut buf = v1.freeze();
    let req = T::decode(&mut buf, 1).map_err(|e| close(e.to_string()))?;
    let v1_header = RequestHeader {
        api_version: 1,
        ..header.clone()
    };
    Ok((req, fields, v1_header))
}

/// A ShareAcknowledge response frame encoded at v1, made v2 by putting
/// AcquisitionLockTimeoutMs after the top-level ErrorMessage.
pub fn acknowledge_response_v2(frame: Response, lock_ms: i32) -> Response {
    let Response::Frame(frame) = frame else {
        return frame;
    };
    // size:int32 | correlation_id:int32 | header tags (empty: 1 byte) | throttle:int32 |
    // error_code:int16 | error_message: compact nullable string | ...
    let body_at = 4 + 4 + 1;
    let Some(after) = skip_compact_strings(&frame, body_at + 4 + 2, 1) else {
        return Response::Close("encoding ShareAcknowledge v2".into());
    };
    let mut out = BytesMut::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..after]);
    out.extend_from_slice(&lock_ms.to_be_bytes());
    out.extend_from_slice(&frame[after..]);
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Response::Frame(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_strings_are_skipped_null_and_not() {
        // "ab" (len+1 = 3), null (0), then a byte.
        let body = [3u8, b'a', b'b', 0, 9];
        assert_eq!(skip_compact_strings(&body, 0, 2), Some(4));
        assert_eq!(skip_compact_strings(&body, 0, 1), Some(3));
        assert_eq!(skip_compact_strings(&[5u8, b'a'], 0, 1), None);
    }

    #[test]
    fn a_v2_share_fetch_decodes_as_its_v1_body_with_the_two_fields() {
        use kafka_protocol::messages::share_fetch_request::FetchTopic;
        use kafka_protocol::messages::{GroupId, ShareFetchRequest};
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let req = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
            .with_member_id(Some(StrBytes::from_static_str("m")))
            .with_share_session_epoch(3)
            .with_max_records(7)
            .with_topics(vec![
                FetchTopic::default().with_topic_id(uuid::Uuid::from_u128(9))
            ]);
        let mut v1 = BytesMut::new();
        req.encode(&mut v1, 1).unwrap();
        // group "g", member "m": 2 + 2 bytes, then six int32s, then the v2 fields.
        let at = 4 + 24;
        let mut v2 = v1[..at].to_vec();
        v2.extend_from_slice(&[1, 1]);
        v2.extend_from_slice(&v1[at..]);
        let header = RequestHeader {
            api_key: 78,
            api_version: 2,
            correlation_id: 1,
            client_id: None,
            header_version: 2,
        };
        let Ok((decoded, fields, answer_as)) =
            decode::<ShareFetchRequest>(&header, &Bytes::from(v2), true)
        else {
            panic!("a v2 body decodes");
        };
        assert_eq!(decoded, req);
        assert_eq!(
            fields,
            V2Fields {
                acquire_mode: 1,
                renew: true
            }
        );
        assert_eq!(answer_as.api_version, 1);
    }

    #[test]
    fn the_lock_timeout_goes_after_the_error_message() {
        let mut f = vec![0u8; 4];
        f.extend_from_slice(&7i32.to_be_bytes()); // correlation id
        f.push(0); // header tags
        f.extend_from_slice(&0i32.to_be_bytes()); // throttle
        f.extend_from_slice(&0i16.to_be_bytes()); // error code
        f.push(0); // null error message
        f.push(1); // empty responses
        let size = (f.len() - 4) as i32;
        f[..4].copy_from_slice(&size.to_be_bytes());
        let Response::Frame(out) = acknowledge_response_v2(Response::Frame(f.clone().into()), 5000)
        else {
            panic!("a frame");
        };
        assert_eq!(out.len(), f.len() + 4);
        assert_eq!(&out[16..20], &5000i32.to_be_bytes());
        assert_eq!(out[20], 1);
        assert_eq!(
            i32::from_be_bytes(out[..4].try_into().unwrap()) as usize,
            out.len() - 4
        );
    }
}
