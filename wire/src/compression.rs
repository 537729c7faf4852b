//! Record batch compression codecs: the attribute bits 0-2 of a batch.
//!
//! Decompression is bounded (a compressed batch is untrusted input and could expand without
//! limit). Snappy accepts both the raw block format (librdkafka) and the "xerial" framing the
//! Java client writes (an 8-byte magic, two version words, then length-prefixed raw blocks); we
//! write the framed form, which every client reads.

use crate::WireError;
use std::io::{Read, Write};

/// A Kafka compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Attribute value 0.
    None,
    /// Attribute value 1.
    Gzip,
    /// Attribute value 2.
    Snappy,
    /// Attribute value 3 (LZ4 frame format).
    Lz4,
    /// Attribute value 4.
    Zstd,
}

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

impl Compression {
    /// Every codec, for tests and option parsing.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec named by a batch's attributes.
    pub fn from_attributes(attributes: i16) -> Result<Self, WireError> {
        Ok(match attributes & 0x07 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            codec => return Err(WireError::UnknownCodec { codec }),
        })
    }

    /// The attribute bits for this codec.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name for the codec (`compression.type` values).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses a `compression.type` value.
    pub fn from_name(name: &str) -> Option<Self> {
        Compression::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Compresses `data`.
    pub fn compress(self, data: &[u8]) -> Result<Vec<u8>, WireError> {
        let fail = |e: std::io::Error| self.error(e.to_string());
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(data).map_err(fail)?;
                enc.finish().map_err(fail)
            }
            Compression::Snappy => Ok(xerial_compress(data)),
            Compression::Lz4 => {
                let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
                enc.write_all(data).map_err(fail)?;
                enc.finish().map_err(|e| self.error(e.to_string()))
            }
            Compression::Zstd => zstd::bulk::compress(data, 3).map_err(fail),
        }
    }

    /// Decompresses `data`, failing if the result would exceed `max_bytes`.
    pub fn decompress(self, data: &[u8], max_bytes: usize) -> Result<Vec<u8>, WireError> {
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => {
                self.read_bounded(flate2::read::MultiGzDecoder::new(data), max_bytes)
            }
            Compression::Snappy => self.snappy_decompress(data, max_bytes),
            Compression::Lz4 => {
                self.read_bounded(lz4_flex::frame::FrameDecoder::new(data), max_bytes)
            }
            Compression::Zstd => {
                let dec = zstd::stream::read::Decoder::new(data)
                    .map_err(|e| self.error(e.to_string()))?;
                self.read_bounded(dec, max_bytes)
            }
        }
    }

    fn read_bounded(self, reader: impl Read, max_bytes: usize) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        reader
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| self.error(e.to_string()))?;
        if out.len() > max_bytes {
            return Err(self.error(format!("output exceeds {max_bytes} bytes")));
        }
        Ok(out)
    }

    fn snappy_decompress(self, data: &[u8], max_bytes: usize) -> Result<Vec<u8>, WireError> {
        if data.len() < XERIAL_HEADER_BYTES || data[..8] != XERIAL_MAGIC {
            return self.snappy_block(data, max_bytes, Vec::new());
        }
        let mut out = Vec::new();
        let mut rest = &data[XERIAL_HEADER_BYTES..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(self.error("truncated xerial block length".into()));
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if len > rest.len() {
                return Err(self.error("xerial block longer than the data".into()));
            }
            out = self.snappy_block(&rest[..len], max_bytes, out)?;
            rest = &rest[len..];
        }
        Ok(out)
    }

    fn snappy_block(
        self,
        block: &[u8],
        max_bytes: usize,
        mut out: Vec<u8>,
    ) -> Result<Vec<u8>, WireError> {
        let len = snap::raw::decompress_len(block).map_err(|e| self.error(e.to_string()))?;
        if out.len() + len > max_bytes {
            return Err(self.error(format!("output exceeds {max_bytes} bytes")));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| self.error(e.to_string()))?;
        Ok(out)
    }

    fn error(self, reason: String) -> WireError {
        WireError::Decompression {
            codec: self.name(),
            reason,
        }
    }
}

fn xerial_compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + data.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in data.chunks(XERIAL_BLOCK_BYTES) {
        let block = encoder
            .compress_vec(chunk)
            .expect("snappy compresses any input");
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bound() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in Compression::ALL {
            let packed = codec.compress(&data).unwrap();
            assert_eq!(
                codec.decompress(&packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            if codec != Compression::None {
                assert!(
                    codec.decompress(&packed, data.len() - 1).is_err(),
                    "{codec:?}"
                );
            }
            assert_eq!(
                Compression::from_attributes(codec.attribute_bits()).unwrap(),
                codec
            );
        }
        assert!(Compression::from_attributes(5).is_err());
    }

    #[test]
    fn raw_snappy_blocks_are_accepted() {
        let raw = snap::raw::Encoder::new()
            .compress_vec(b"hello hello hello")
            .unwrap();
        assert_eq!(
            Compression::Snappy.decompress(&raw, 100).unwrap(),
            b"hello hello hello"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(codec
                .decompress(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 1000)
                .is_err());
        }
    }
}
