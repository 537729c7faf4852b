//! Kafka's zig-zag varints (records) and unsigned varints (flexible-version lengths).

use crate::WireError;
use bytes::Bytes;

/// Appends a zig-zag varint.
pub fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_uvarint(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

/// Appends a zig-zag varlong.
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Appends an unsigned varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A bounds-checked reader over a byte slice.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads one signed byte.
    pub fn i8(&mut self) -> Result<i8, WireError> {
        let b = *self.buf.get(self.pos).ok_or(self.truncated(1))?;
        self.pos += 1;
        Ok(b as i8)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), WireError> {
        if n > self.remaining() {
            return Err(self.truncated(n));
        }
        self.pos += n;
        Ok(())
    }

    /// Reads an unsigned varint of at most `max_bytes` bytes.
    pub fn uvarint(&mut self, max_bytes: usize) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = *self.buf.get(self.pos).ok_or(self.truncated(1))?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::BadVarint { at: start })
    }

    /// Reads a zig-zag varint (i32).
    pub fn varint(&mut self) -> Result<i32, WireError> {
        let raw = self.uvarint(5)?;
        if raw > u64::from(u32::MAX) {
            return Err(WireError::BadVarint { at: self.pos });
        }
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Reads a zig-zag varlong (i64).
    pub fn varlong(&mut self) -> Result<i64, WireError> {
        let raw = self.uvarint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// Reads varint-length-prefixed bytes (-1 = null) as a slice of `backing`, which must be the
    /// buffer this cursor reads.
    pub fn nullable_bytes(&mut self, backing: &Bytes) -> Result<Option<Bytes>, WireError> {
        let at = self.pos;
        let len = self.varint()?;
        if len < 0 {
            return if len == -1 {
                Ok(None)
            } else {
                Err(WireError::BadLength {
                    at,
                    declared: i64::from(len),
                })
            };
        }
        let len = len as usize;
        if len > self.remaining() {
            return Err(WireError::BadLength {
                at,
                declared: len as i64,
            });
        }
        let out = backing.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(Some(out))
    }

    fn truncated(&self, needed: usize) -> WireError {
        WireError::Truncated {
            at: self.pos,
            needed,
            available: self.remaining(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Cursor::new(&out).varint().unwrap(), v);
        }
        for v in [0, -1, i64::MAX, i64::MIN, 1 << 40] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(Cursor::new(&out).varlong().unwrap(), v);
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        assert!(Cursor::new(&[0xff; 6]).varint().is_err());
        assert!(Cursor::new(&[0x80]).varint().is_err());
        assert!(Cursor::new(&[]).varint().is_err());
    }
}
