//! Bounded big-endian primitives shared by the record codec and the image snapshot.
//!
//! ```text
//! i8 / i16 / u16 / i32 / u32 / i64   fixed width, big-endian (Kafka's byte order)
//! bool              one byte, 0 or 1 (anything else is malformed)
//! string            u32 length | UTF-8 bytes
//! nullable string   i32 length (-1 = null) | UTF-8 bytes
//! i32 array         u32 count | count × i32
//! nullable array    i32 count (-1 = null) | count × i32
//! uuid              16 bytes
//! ```
//!
//! The reader never allocates from a declared length before checking it against the bytes that
//! are left, so a short input declaring `u32::MAX` elements fails at once.

use crate::error::ReplicationError;

/// Appends encoded values to a buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn raw(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    pub(crate) fn i8(&mut self, v: i8) {
        self.0.push(v as u8);
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    pub(crate) fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes16(&mut self, v: &[u8; 16]) {
        self.0.extend_from_slice(v);
    }
    pub(crate) fn string(&mut self, v: &str) {
        self.u32(len_u32(v.len()));
        self.0.extend_from_slice(v.as_bytes());
    }
    pub(crate) fn nullable_string(&mut self, v: Option<&str>) {
        match v {
            None => self.i32(-1),
            Some(s) => {
                self.i32(len_i32(s.len()));
                self.0.extend_from_slice(s.as_bytes());
            }
        }
    }
    pub(crate) fn i32_array(&mut self, v: &[i32]) {
        self.u32(len_u32(v.len()));
        for x in v {
            self.i32(*x);
        }
    }
    pub(crate) fn nullable_i32_array(&mut self, v: Option<&[i32]>) {
        match v {
            None => self.i32(-1),
            Some(items) => {
                self.i32(len_i32(items.len()));
                for x in items {
                    self.i32(*x);
                }
            }
        }
    }
}

/// Lengths in memory come from values this process built; more than 2 GiB in one metadata
/// field is a bug, not input.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("metadata field longer than u32::MAX")
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).expect("metadata field longer than i32::MAX")
}

/// Reads values from untrusted bytes; every method checks what is left first.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What is being decoded, for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was read: trailing bytes mean the layout is not the one assumed.
    pub(crate) fn finish(&self) -> Result<(), ReplicationError> {
        if self.remaining() != 0 {
            return Err(ReplicationError::Malformed {
                what: self.what,
                at: self.pos,
                reason: "trailing bytes",
            });
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReplicationError> {
        if self.remaining() < n {
            return Err(ReplicationError::Truncated {
                what: self.what,
                at: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReplicationError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Byte position of the next read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    /// The next `n` bytes, as they are.
    pub(crate) fn raw(&mut self, n: usize) -> Result<&'a [u8], ReplicationError> {
        self.take(n)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, ReplicationError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u64(&mut self) -> Result<u64, ReplicationError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn i8(&mut self) -> Result<i8, ReplicationError> {
        Ok(self.array::<1>()?[0] as i8)
    }
    pub(crate) fn bool(&mut self) -> Result<bool, ReplicationError> {
        let at = self.pos;
        match self.array::<1>()?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ReplicationError::Malformed {
                what: self.what,
                at,
                reason: "bool is neither 0 nor 1",
            }),
        }
    }
    pub(crate) fn i16(&mut self) -> Result<i16, ReplicationError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u16(&mut self) -> Result<u16, ReplicationError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, ReplicationError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, ReplicationError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, ReplicationError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub(crate) fn bytes16(&mut self) -> Result<[u8; 16], ReplicationError> {
        self.array()
    }

    pub(crate) fn string(&mut self) -> Result<String, ReplicationError> {
        let len = self.u32()? as usize;
        self.utf8(len)
    }

    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, ReplicationError> {
        match self.nullable_len()? {
            None => Ok(None),
            Some(len) => self.utf8(len).map(Some),
        }
    }

    pub(crate) fn i32_array(&mut self) -> Result<Vec<i32>, ReplicationError> {
        let count = self.u32()? as usize;
        self.i32_items(count)
    }

    pub(crate) fn nullable_i32_array(&mut self) -> Result<Option<Vec<i32>>, ReplicationError> {
        match self.nullable_len()? {
            None => Ok(None),
            Some(count) => self.i32_items(count).map(Some),
        }
    }

    /// A count of things that each take at least `min_bytes`: checked against what is left,
    /// so a caller may size a collection from it.
    pub(crate) fn count(&mut self, min_bytes: usize) -> Result<usize, ReplicationError> {
        let at = self.pos;
        let count = self.u32()? as usize;
        if count.saturating_mul(min_bytes.max(1)) > self.remaining() {
            return Err(self.bad_length(at, count as i64));
        }
        Ok(count)
    }

    fn nullable_len(&mut self) -> Result<Option<usize>, ReplicationError> {
        let at = self.pos;
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(self.bad_length(at, i64::from(n))),
            n => Ok(Some(n as usize)),
        }
    }

    fn utf8(&mut self, len: usize) -> Result<String, ReplicationError> {
        let at = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ReplicationError::Malformed {
            what: self.what,
            at,
            reason: "string is not UTF-8",
        })
    }

    fn i32_items(&mut self, count: usize) -> Result<Vec<i32>, ReplicationError> {
        let at = self.pos;
        if count.saturating_mul(4) > self.remaining() {
            return Err(self.bad_length(at, count as i64));
        }
        (0..count).map(|_| self.i32()).collect()
    }

    fn bad_length(&self, at: usize, declared: i64) -> ReplicationError {
        ReplicationError::BadLength {
            what: self.what,
            at,
            declared,
            available: self.remaining(),
        }
    }
}
