//! The envelope of every small file the log writes (indexes, checkpoints, snapshots):
//!
//! ```text
//!  0  4  magic (ASCII, says which kind of file)
//!  4  2  version (big-endian)
//!  6  4  body length in bytes
//! 10  n  body (big-endian fields, described by each file's module)
//! 10+n 4 CRC-32C of bytes 0..10+n
//! ```
//!
//! A file that fails any check is treated as missing and rebuilt from the log.

/// Header bytes before the body.
const HEAD_BYTES: usize = 10;

/// Wraps `body` in the envelope.
pub(crate) fn seal(magic: &[u8; 4], version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_BYTES + body.len() + 4);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Checks the envelope and returns the body.
pub(crate) fn open<'a>(magic: &[u8; 4], version: u16, file: &'a [u8]) -> Result<&'a [u8], String> {
    if file.len() < HEAD_BYTES + 4 {
        return Err(format!("{} bytes is too short", file.len()));
    }
    if &file[..4] != magic {
        return Err("wrong magic".into());
    }
    let found = u16::from_be_bytes([file[4], file[5]]);
    if found != version {
        return Err(format!("version {found}, expected {version}"));
    }
    let len = u32::from_be_bytes(file[6..10].try_into().expect("4 bytes")) as usize;
    if file.len() != HEAD_BYTES + len + 4 {
        return Err(format!(
            "body length {len} does not match file length {}",
            file.len()
        ));
    }
    let (covered, trailer) = file.split_at(HEAD_BYTES + len);
    let stored = u32::from_be_bytes(trailer.try_into().expect("4 bytes"));
    if crc32c::crc32c(covered) != stored {
        return Err("CRC mismatch".into());
    }
    Ok(&covered[HEAD_BYTES..])
}

/// Reads big-endian fields from a body, failing (not panicking) past its end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.pos + N;
        let bytes = self.buf.get(self.pos..end).ok_or("body ends early")?;
        self.pos = end;
        Ok(bytes.try_into().expect("N bytes"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    pub(crate) fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    /// A count of items of `item_bytes` each, checked against the bytes left before any
    /// allocation sized from it.
    pub(crate) fn count(&mut self, item_bytes: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(item_bytes) > self.buf.len() - self.pos {
            return Err(format!("count {n} larger than the body"));
        }
        Ok(n)
    }
    /// Fails unless every byte was read.
    pub(crate) fn finish(self) -> Result<(), String> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err("trailing bytes in body".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flip_and_cut_is_detected() {
        let file = seal(b"TEST", 3, b"hello body");
        assert_eq!(open(b"TEST", 3, &file).unwrap(), b"hello body");
        assert!(open(b"TEST", 4, &file).is_err());
        assert!(open(b"TSET", 3, &file).is_err());
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert!(open(b"TEST", 3, &bad).is_err(), "flip at {i}");
            assert!(open(b"TEST", 3, &file[..i]).is_err(), "cut at {i}");
        }
    }
}
