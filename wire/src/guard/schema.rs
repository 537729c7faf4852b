//! The vocabulary of the schema tables: field types, fields with version ranges, and one
//! [`Api`] per request. Everything here is `const` data; [`super::walk`] interprets it.

/// The wire type of one field. Nullability is part of the type because it decides whether a
/// length or count of -1 (compact: 0) is accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    /// BrokerRegistration's listener port.
    Uint16,
    /// AlterClientQuotas' values.
    Float64,
    Uuid,
    /// int16 length (compact: unsigned varint length+1), UTF-8.
    String,
    NullableString,
    /// int32 length (compact: unsigned varint length+1). Record sets are nullable bytes.
    Bytes,
    NullableBytes,
    /// int32 count (compact: unsigned varint count+1), then that many elements.
    Array(&'static Ty),
    NullableArray(&'static Ty),
    /// A nested struct: its fields in order, then (flexible versions) its tagged section.
    Struct(&'static [Field]),
}

/// One field of a struct, present in `min_version..=max_version`. A field with a `tag` is
/// not part of the ordered fields: it may appear in the struct's tagged section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// Kafka's field name in snake case; for reading the tables and for diagnostics.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    pub(crate) min_version: i16,
    pub(crate) max_version: i16,
    pub(crate) tag: Option<u32>,
}

impl Field {
    pub(crate) const fn new(
        name: &'static str,
        ty: Ty,
        min_version: i16,
        max_version: i16,
    ) -> Self {
        Self {
            name,
            ty,
            min_version,
            max_version,
            tag: None,
        }
    }

    pub(crate) const fn tagged(
        name: &'static str,
        ty: Ty,
        tag: u32,
        min_version: i16,
        max_version: i16,
    ) -> Self {
        Self {
            name,
            ty,
            min_version,
            max_version,
            tag: Some(tag),
        }
    }

    pub(crate) const fn in_version(&self, version: i16) -> bool {
        self.min_version <= version && version <= self.max_version
    }
}

/// The request body schema of one API.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Api {
    pub(crate) api_key: i16,
    pub(crate) min_version: i16,
    pub(crate) max_version: i16,
    /// First flexible version (compact lengths, tagged sections); `i16::MAX` if none.
    pub(crate) flexible_min: i16,
    pub(crate) body: &'static [Field],
}

impl Api {
    pub(crate) const fn has_version(&self, version: i16) -> bool {
        self.min_version <= version && version <= self.max_version
    }
}
