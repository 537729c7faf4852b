//! The interpreter: walks a body against a schema table, consuming exactly the bytes the
//! schema says are there and checking every declared length before it is used.
//!
//! Cost: every array element and tagged field consumes at least one byte, and every count is
//! checked against the bytes left before the loop starts, so the walk is linear in the body
//! length times the (static, small) schema size. Recursion depth is bounded by the schema's
//! nesting, never by the input.

use super::schema::{Field, Ty};
use super::GuardError;

/// A cursor over `body[pos..end]`. Offsets in errors are absolute offsets into the body.
pub(super) struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(body: &'a [u8]) -> Self {
        Self {
            body,
            pos: 0,
            end: body.len(),
        }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], GuardError> {
        if n > self.remaining() {
            return Err(GuardError::Truncated { at: self.pos });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.body[start..self.pos])
    }

    fn int16(&mut self) -> Result<i16, GuardError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn int32(&mut self) -> Result<i32, GuardError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Kafka's unsigned varint for 32-bit values: at most 5 bytes, and the fifth byte may
    /// carry only the top 4 bits. kafka-protocol stops after 5 bytes without looking at the
    /// continuation bit, so an overlong varint would desynchronise it from us: reject it.
    pub(super) fn uvarint(&mut self) -> Result<u32, GuardError> {
        let at = self.pos;
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0];
            if i == 4 && b > 0x0f {
                return Err(GuardError::BadVarint { at });
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        // Not reached: the fifth byte either ends the varint or is rejected above.
        Err(GuardError::BadVarint { at })
    }
}

/// Walks one struct: its ordered fields present in `version`, then, if `flexible`, its
/// tagged-field section.
pub(super) fn walk_struct(
    r: &mut Reader<'_>,
    fields: &'static [Field],
    version: i16,
    flexible: bool,
) -> Result<(), GuardError> {
    for field in fields {
        if field.tag.is_none() && field.in_version(version) {
            walk_ty(r, field.ty, version, flexible)?;
        }
    }
    if flexible {
        walk_tagged_section(r, fields, version)?;
    }
    Ok(())
}

fn walk_ty(r: &mut Reader<'_>, ty: Ty, version: i16, flexible: bool) -> Result<(), GuardError> {
    match ty {
        Ty::Bool | Ty::Int8 => r.take(1).map(drop),
        Ty::Int16 | Ty::Uint16 => r.take(2).map(drop),
        Ty::Int32 => r.take(4).map(drop),
        Ty::Int64 | Ty::Float64 => r.take(8).map(drop),
        Ty::Uuid => r.take(16).map(drop),
        Ty::String | Ty::NullableString => {
            let at = r.pos();
            let nullable = matches!(ty, Ty::NullableString);
            let width = if flexible { Width::Compact } else { Width::I16 };
            if let Some(len) = length(r, width, nullable)? {
                let text = r.take(len)?;
                if std::str::from_utf8(text).is_err() {
                    return Err(GuardError::InvalidUtf8 { at });
                }
            }
            Ok(())
        }
        Ty::Bytes | Ty::NullableBytes => {
            let width = if flexible { Width::Compact } else { Width::I32 };
            if let Some(len) = length(r, width, matches!(ty, Ty::NullableBytes))? {
                r.take(len)?;
            }
            Ok(())
        }
        Ty::Array(elem) | Ty::NullableArray(elem) => {
            let width = if flexible { Width::Compact } else { Width::I32 };
            let nullable = matches!(ty, Ty::NullableArray(_));
            // Each element takes at least one byte, so `length` has already refused a count
            // larger than what is left: this loop runs at most `remaining` times.
            if let Some(count) = length(r, width, nullable)? {
                for _ in 0..count {
                    walk_ty(r, *elem, version, flexible)?;
                }
            }
            Ok(())
        }
        Ty::Struct(fields) => walk_struct(r, fields, version, flexible),
    }
}

#[derive(Clone, Copy)]
enum Width {
    I16,
    I32,
    /// Unsigned varint holding length+1, 0 meaning null.
    Compact,
}

/// Reads a length or count prefix. `Ok(None)` is null (only where `nullable`); `Ok(Some(n))`
/// guarantees `n <= remaining` after the prefix.
fn length(r: &mut Reader<'_>, width: Width, nullable: bool) -> Result<Option<usize>, GuardError> {
    let at = r.pos();
    let declared: i64 = match width {
        Width::I16 => i64::from(r.int16()?),
        Width::I32 => i64::from(r.int32()?),
        Width::Compact => i64::from(r.uvarint()?) - 1,
    };
    if declared == -1 && nullable {
        return Ok(None);
    }
    // `declared` is at least -1 for compact and at least i32::MIN otherwise.
    match usize::try_from(declared) {
        Ok(n) if n <= r.remaining() => Ok(Some(n)),
        _ => Err(GuardError::BadLength { at, declared }),
    }
}

/// The tagged-field section: varint count, then per field varint tag, varint size, and
/// `size` bytes. Unknown tags are skipped by size. A tag the schema knows is walked inside
/// exactly `size` bytes, because kafka-protocol decodes known tags from the stream without
/// looking at the size: a size that disagrees with the content would desynchronise it.
fn walk_tagged_section(
    r: &mut Reader<'_>,
    fields: &'static [Field],
    version: i16,
) -> Result<(), GuardError> {
    let at = r.pos();
    let count = r.uvarint()?;
    // Each tagged field takes at least two bytes (tag and size).
    if count as usize > r.remaining() / 2 {
        return Err(GuardError::BadLength {
            at,
            declared: i64::from(count),
        });
    }
    for _ in 0..count {
        let tag_at = r.pos();
        let tag = r.uvarint()?;
        let size_at = r.pos();
        let size = r.uvarint()? as usize;
        if size > r.remaining() {
            return Err(GuardError::BadLength {
                at: size_at,
                declared: size as i64,
            });
        }
        let Some(field) = fields.iter().find(|f| f.tag == Some(tag)) else {
            r.take(size)?;
            continue;
        };
        if !field.in_version(version) {
            return Err(GuardError::BadTaggedField { at: tag_at, tag });
        }
        let mut inner = Reader {
            body: r.body,
            pos: r.pos,
            end: r.pos + size,
        };
        walk_ty(&mut inner, field.ty, version, true)?;
        if inner.remaining() != 0 {
            return Err(GuardError::BadTaggedField { at: tag_at, tag });
        }
        r.pos = inner.end;
    }
    Ok(())
}
