//! The request-body guard: a structural check of a request body, run before the body is
//! handed to `kafka-protocol`'s decoder.
//!
//! # Why
//!
//! `kafka-protocol` 0.18 allocates from lengths the sender declared before reading the bytes
//! they promise: arrays do `Vec::with_capacity(count)`, and strings and byte fields decoded
//! into owned buffers do `vec![0; len]`. A seven-byte MetadataRequest declaring `i32::MAX`
//! topics therefore aborts the process. DESIGN.md forbids that class of failure, so the
//! broker calls [`check_request_body`] first and decodes only after it returns `Ok`.
//!
//! The guard walks the body exactly as the decoder will and rejects it if any length or count
//! is negative where the field is not nullable, is larger than the bytes left, a varint is
//! overlong, a string is not UTF-8, the body ends early, or bytes are left over. It allocates
//! nothing, never panics, and runs in time linear in the body length.
//!
//! # Layout of the schema tables
//!
//! `tables.rs` holds one module per API: an `schema::Api` (key, supported versions, first
//! flexible version, root struct) and one `&[Field]` per struct of that request. A
//! `schema::Field` is a name, a `schema::Ty`, a version range and, for tagged fields, a
//! tag. Arrays name their element type, and structs name their fields, so nesting is plain
//! data:
//!
//! ```text
//! FETCH_REQUEST: replica_id Int32 0..=14, max_wait_ms Int32, ...,
//!                topics Array(Struct(FETCH_TOPIC)), ...,
//!                [tag 0] cluster_id NullableString 12+
//! FETCH_TOPIC:   topic String 0..=12, topic_id Uuid 13+, partitions Array(Struct(...))
//! ```
//!
//! One interpreter (`walk.rs`) serves every table. In versions at or above the API's first
//! flexible version, strings, bytes and arrays use compact (unsigned varint, value+1) lengths
//! and every struct ends with a tagged section:
//!
//! ```text
//! uvarint count | count x ( uvarint tag | uvarint size | size bytes )
//! ```
//!
//! Unknown tags are skipped by size; a tag the table knows is walked as its type and must
//! fill exactly `size` bytes, because the decoder reads known tags from the stream itself.
//!
//! Pure data, no state: callable from any shard.

mod schema;
mod tables;
mod walk;

use walk::Reader;

/// Error for a request body that does not match its schema. Offsets (`at`) count from the
/// first byte of the body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    /// The body ended inside a field that starts at or before `at`.
    #[error("request body truncated at byte {at}")]
    Truncated { at: usize },
    /// A length or count at `at` is negative where not allowed or exceeds the bytes left.
    #[error("bad length or count {declared} at byte {at}")]
    BadLength { at: usize, declared: i64 },
    /// An unsigned varint at `at` is longer than five bytes or overflows 32 bits.
    #[error("overlong varint at byte {at}")]
    BadVarint { at: usize },
    /// A string at `at` is not valid UTF-8.
    #[error("string at byte {at} is not UTF-8")]
    InvalidUtf8 { at: usize },
    /// A known tagged field at `at` is not valid in this version, or its content does not
    /// fill exactly its declared size.
    #[error("bad tagged field {tag} at byte {at}")]
    BadTaggedField { at: usize, tag: u32 },
    /// The body holds bytes after its last field, from `at` on.
    #[error("trailing bytes from byte {at}")]
    TrailingBytes { at: usize },
    /// The guard has no schema for this API key and version.
    #[error("no schema for api_key {api_key} version {api_version}")]
    UnknownApi { api_key: i16, api_version: i16 },
}

/// Walks `body` (the bytes after the request header) for `api_key` at `api_version`.
///
/// `Ok` means the body is exactly one well-formed request of that version: every length and
/// count in it is backed by bytes that are present, so decoding it cannot be made to allocate
/// more than a small multiple of `body.len()`.
///
/// ```
/// use millrace_wire::guard::{check_request_body, GuardError};
/// // MetadataRequest v1 declaring i32::MAX topics in four bytes.
/// let body = [0x7f, 0xff, 0xff, 0xff];
/// assert_eq!(
///     check_request_body(3, 1, &body),
///     Err(GuardError::BadLength { at: 0, declared: i64::from(i32::MAX) })
/// );
/// // The same request with a null topic list (all topics) is fine.
/// assert_eq!(check_request_body(3, 1, &[0xff, 0xff, 0xff, 0xff]), Ok(()));
/// ```
pub fn check_request_body(api_key: i16, api_version: i16, body: &[u8]) -> Result<(), GuardError> {
    let api = find(api_key, api_version).ok_or(GuardError::UnknownApi {
        api_key,
        api_version,
    })?;
    let mut reader = Reader::new(body);
    let flexible = api_version >= api.flexible_min;
    walk::walk_struct(&mut reader, api.body, api_version, flexible)?;
    if reader.remaining() != 0 {
        return Err(GuardError::TrailingBytes { at: reader.pos() });
    }
    Ok(())
}

/// True if the guard has a schema for this api_key/version (the broker only advertises APIs
/// it has).
pub fn has_schema(api_key: i16, api_version: i16) -> bool {
    find(api_key, api_version).is_some()
}

fn find(api_key: i16, api_version: i16) -> Option<&'static schema::Api> {
    tables::APIS
        .iter()
        .find(|api| api.api_key == api_key && api.has_version(api_version))
}

#[cfg(test)]
mod tests {
    //! Checks of the tables themselves; behaviour against kafka-protocol is in
    //! `wire/tests/guard.rs`.
    use super::schema::{Field, Ty};
    use super::tables::APIS;

    /// The fewest bytes a value of `ty` can take.
    fn min_size(ty: Ty, version: i16, flexible: bool) -> usize {
        match ty {
            Ty::Bool | Ty::Int8 => 1,
            Ty::Int16 | Ty::Uint16 => 2,
            Ty::Int32 => 4,
            Ty::Int64 | Ty::Float64 => 8,
            Ty::Uuid => 16,
            _ if flexible && !matches!(ty, Ty::Struct(_)) => 1,
            Ty::String | Ty::NullableString => 2,
            Ty::Bytes | Ty::NullableBytes | Ty::Array(_) | Ty::NullableArray(_) => 4,
            Ty::Struct(fields) => {
                let own: usize = fields
                    .iter()
                    .filter(|f| f.tag.is_none() && f.in_version(version))
                    .map(|f| min_size(f.ty, version, flexible))
                    .sum();
                own + usize::from(flexible)
            }
        }
    }

    /// Calls `check` on every struct reachable from `fields` in `version`.
    fn each_struct(fields: &'static [Field], version: i16, check: &mut dyn FnMut(&[Field])) {
        check(fields);
        for field in fields.iter().filter(|f| f.in_version(version)) {
            let mut ty = field.ty;
            while let Ty::Array(elem) | Ty::NullableArray(elem) = ty {
                ty = *elem;
            }
            if let Ty::Struct(inner) = ty {
                each_struct(inner, version, check);
            }
        }
    }

    #[test]
    fn api_keys_are_unique_and_ranges_sane() {
        for (i, api) in APIS.iter().enumerate() {
            assert!(api.min_version <= api.max_version, "api {}", api.api_key);
            assert!(APIS[i + 1..]
                .iter()
                .all(|other| other.api_key != api.api_key));
        }
    }

    #[test]
    fn array_elements_take_at_least_one_byte() {
        // The walker refuses counts above the bytes left; that is only sound if no element
        // can be empty.
        for api in APIS {
            for version in api.min_version..=api.max_version {
                let flexible = version >= api.flexible_min;
                each_struct(api.body, version, &mut |fields| {
                    for f in fields.iter().filter(|f| f.in_version(version)) {
                        if let Ty::Array(elem) | Ty::NullableArray(elem) = f.ty {
                            let size = min_size(*elem, version, flexible);
                            assert!(size >= 1, "api {} v{version} {}", api.api_key, f.name);
                        }
                    }
                });
            }
        }
    }

    #[test]
    fn names_and_tags_are_unique_per_struct_and_version() {
        for api in APIS {
            for version in api.min_version..=api.max_version {
                each_struct(api.body, version, &mut |fields| {
                    let live: Vec<&Field> =
                        fields.iter().filter(|f| f.in_version(version)).collect();
                    for (i, f) in live.iter().enumerate() {
                        for g in &live[i + 1..] {
                            assert_ne!(f.name, g.name, "api {} v{version}", api.api_key);
                            if f.tag.is_some() {
                                assert_ne!(f.tag, g.tag, "api {} v{version}", api.api_key);
                            }
                        }
                        if f.tag.is_some() {
                            assert!(
                                version >= api.flexible_min,
                                "api {} {}",
                                api.api_key,
                                f.name
                            );
                        }
                    }
                });
            }
        }
    }
}
