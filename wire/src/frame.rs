//! Framing and headers.
//!
//! ```text
//! request  = size:i32 | api_key:i16 | api_version:i16 | correlation_id:i32
//!            | client_id:nullable string (i16 length)
//!            | [header v2 only] tagged fields (uvarint count, then tag, size, bytes)
//!            | body
//! response = size:i32 | correlation_id:i32 | [header v1 only] tagged fields | body
//! ```
//!
//! The size prefix is checked against `socket.request.max.bytes` before anything is allocated.
//! The header version follows from the API key and version (flexible versions use request
//! header v2 and response header v1, except that ApiVersions responses always use header v0 so a
//! client that does not yet know the broker's versions can read them).

use crate::varint::Cursor;
use crate::WireError;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;

/// Bytes of the size prefix.
pub const SIZE_PREFIX_BYTES: usize = 4;
/// The fixed part of every request header: key, version, correlation id.
pub const REQUEST_HEADER_FIXED_BYTES: usize = 8;

/// Checks a frame's 4-byte size prefix against `limit` and returns the body size.
pub fn frame_size(prefix: [u8; 4], limit: usize) -> Result<usize, WireError> {
    let size = i32::from_be_bytes(prefix);
    if size < REQUEST_HEADER_FIXED_BYTES as i32 || size as usize > limit {
        return Err(WireError::FrameTooLarge {
            size: i64::from(size),
            limit,
        });
    }
    Ok(size as usize)
}

/// A decoded request header. The client id borrows nothing: it is copied (it is short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// API key.
    pub api_key: i16,
    /// API version.
    pub api_version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// The client's self-declared id.
    pub client_id: Option<String>,
    /// Header version used (1 or 2).
    pub header_version: i16,
}

/// Reads the fixed part (key, version, correlation id), which every request has whatever its
/// header version; enough to answer or log a request the broker cannot otherwise parse.
pub fn peek_fixed(frame: &[u8]) -> Result<(i16, i16, i32), WireError> {
    if frame.len() < REQUEST_HEADER_FIXED_BYTES {
        return Err(WireError::Truncated {
            at: 0,
            needed: REQUEST_HEADER_FIXED_BYTES,
            available: frame.len(),
        });
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Ok((key, version, correlation_id))
}

/// The request header version for a known API key at `version`.
pub fn request_header_version(api_key: ApiKey, version: i16) -> i16 {
    api_key.request_header_version(version)
}

/// The response header version for a known API key at `version`.
pub fn response_header_version(api_key: ApiKey, version: i16) -> i16 {
    api_key.response_header_version(version)
}

/// Millrace's private API key for Raft messages between controllers. Served on the
/// controller listener only and never advertised: the body is the quorum's own bounded codec
/// (no Kafka schema), the request header is v1 and the response header v0.
pub const RAFT_API_KEY: i16 = 1000;

/// A response frame with header v0 and `body` as given (for [`RAFT_API_KEY`]).
pub fn encode_raw_response(correlation_id: i32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(SIZE_PREFIX_BYTES + 4 + body.len());
    buf.put_i32((4 + body.len()) as i32);
    buf.put_i32(correlation_id);
    buf.put_slice(body);
    buf.freeze()
}

/// Parses a request header from the frame (the bytes after the size prefix); returns the
/// header and the position where the body starts.
pub fn parse_request_header(frame: &[u8]) -> Result<(RequestHeader, usize), WireError> {
    let (api_key, api_version, correlation_id) = peek_fixed(frame)?;
    let header_version = if api_key == RAFT_API_KEY {
        1
    } else {
        let key = ApiKey::try_from(api_key).map_err(|_| WireError::UnsupportedApi {
            api_key,
            api_version,
        })?;
        request_header_version(key, api_version)
    };
    let rest = &frame[REQUEST_HEADER_FIXED_BYTES..];
    if rest.len() < 2 {
        return Err(WireError::Truncated {
            at: 8,
            needed: 2,
            available: rest.len(),
        });
    }
    let len = i16::from_be_bytes([rest[0], rest[1]]);
    let mut pos = REQUEST_HEADER_FIXED_BYTES + 2;
    let client_id = if len < 0 {
        if len != -1 {
            return Err(WireError::BadLength {
                at: 8,
                declared: i64::from(len),
            });
        }
        None
    } else {
        let len = len as usize;
        if frame.len() < pos + len {
            return Err(WireError::BadLength {
                at: 8,
                declared: len as i64,
            });
        }
        let id = String::from_utf8_lossy(&frame[pos..pos + len]).into_owned();
        pos += len;
        Some(id)
    };
    if header_version >= 2 {
        pos += skip_tagged_fields(&frame[pos..], pos)?;
    }
    let header = RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id,
        header_version,
    };
    Ok((header, pos))
}

/// Skips a tagged-field section; returns the bytes it occupied. `base` is for error positions.
pub fn skip_tagged_fields(buf: &[u8], base: usize) -> Result<usize, WireError> {
    let mut cursor = Cursor::new(buf);
    let count = cursor
        .uvarint(5)
        .map_err(|_| WireError::BadVarint { at: base })?;
    if count as usize > cursor.remaining() {
        return Err(WireError::BadLength {
            at: base,
            declared: count as i64,
        });
    }
    for _ in 0..count {
        cursor.uvarint(5).map_err(|_| WireError::BadVarint {
            at: base + cursor.position(),
        })?;
        let at = base + cursor.position();
        let size = cursor.uvarint(5).map_err(|_| WireError::BadVarint { at })?;
        if size as usize > cursor.remaining() {
            return Err(WireError::BadLength {
                at,
                declared: size as i64,
            });
        }
        cursor.skip(size as usize)?;
    }
    Ok(cursor.position())
}

/// Encodes a complete response frame: size prefix, response header, body.
pub fn encode_response<M: Encodable>(
    correlation_id: i32,
    response_header_version: i16,
    body: &M,
    version: i16,
) -> Result<Bytes, WireError> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    put_response_header(&mut buf, correlation_id, response_header_version);
    body.encode(&mut buf, version)
        .map_err(|e| WireError::Malformed {
            what: "response",
            reason: e.to_string(),
        })?;
    let size = (buf.len() - SIZE_PREFIX_BYTES) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Writes a response header (correlation id, and an empty tagged-field section for v1).
pub fn put_response_header(buf: &mut BytesMut, correlation_id: i32, header_version: i16) {
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_v1(key: i16, version: i16, client: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&key.to_be_bytes());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&7i32.to_be_bytes());
        out.extend_from_slice(&(client.len() as i16).to_be_bytes());
        out.extend_from_slice(client.as_bytes());
        out
    }

    #[test]
    fn size_prefix_is_checked_before_allocation() {
        assert_eq!(frame_size(100i32.to_be_bytes(), 1000).unwrap(), 100);
        assert!(frame_size(1001i32.to_be_bytes(), 1000).is_err());
        assert!(frame_size((-5i32).to_be_bytes(), 1000).is_err());
        assert!(frame_size(i32::MAX.to_be_bytes(), 100 << 20).is_err());
        assert!(frame_size(3i32.to_be_bytes(), 1000).is_err());
    }

    #[test]
    fn headers_parse_in_both_versions() {
        let mut v1 = header_v1(3, 1, "kcat");
        v1.extend_from_slice(b"body");
        let (h, body) = parse_request_header(&v1).unwrap();
        assert_eq!((h.api_key, h.api_version, h.correlation_id), (3, 1, 7));
        assert_eq!(h.client_id.as_deref(), Some("kcat"));
        assert_eq!(&v1[body..], b"body");

        let mut v2 = header_v1(3, 12, "rdkafka");
        v2.extend_from_slice(&[1, 5, 2, 0xaa, 0xbb]);
        v2.extend_from_slice(b"xyz");
        let (h, body) = parse_request_header(&v2).unwrap();
        assert_eq!(h.header_version, 2);
        assert_eq!(&v2[body..], b"xyz");
    }

    #[test]
    fn every_prefix_of_a_header_is_an_error() {
        let mut v2 = header_v1(3, 12, "rdkafka");
        v2.extend_from_slice(&[1, 5, 2, 0xaa, 0xbb]);
        for cut in 0..v2.len() {
            assert!(parse_request_header(&v2[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn unknown_api_key_is_an_error_with_the_fixed_fields_still_readable() {
        let frame = header_v1(999, 0, "x");
        assert!(matches!(
            parse_request_header(&frame),
            Err(WireError::UnsupportedApi { api_key: 999, .. })
        ));
        assert_eq!(peek_fixed(&frame).unwrap(), (999, 0, 7));
    }

    #[test]
    fn the_raft_key_parses_with_header_v1_and_answers_with_header_v0() {
        let mut frame = header_v1(RAFT_API_KEY, 0, "millrace-controller-2");
        frame.extend_from_slice(&[9, 9]);
        let (h, body) = parse_request_header(&frame).unwrap();
        assert_eq!((h.api_key, h.header_version), (RAFT_API_KEY, 1));
        assert_eq!(&frame[body..], &[9, 9]);
        let response = encode_raw_response(7, b"ok");
        assert_eq!(&response[..], &[0, 0, 0, 6, 0, 0, 0, 7, b'o', b'k']);
    }
}
