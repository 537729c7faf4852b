//! A view of `apache-avro`'s parsed schema by encoding: references resolved through a table of
//! the named types, logical types reduced to the type that carries them (the one that decides
//! how data is read). Shared by the default-value check and the compatibility checker.

use apache_avro::schema::{
    ArraySchema, DecimalSchema, EnumSchema, FixedSchema, InnerDecimalSchema, MapSchema,
    RecordSchema, Schema, UuidSchema,
};
use std::collections::HashMap;

/// Named types by full name (`com.acme.Address`).
pub(crate) type Names = HashMap<String, Schema>;

/// How a schema is encoded.
#[derive(Clone, Copy)]
pub(crate) enum View<'a> {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(&'a Schema),
    Map(&'a Schema),
    Union(&'a [Schema]),
    Record(&'a RecordSchema),
    Enum(&'a EnumSchema),
    Fixed(&'a FixedSchema),
    /// A reference to a name the table lacks (cannot happen for a parsed schema).
    Unknown,
}

impl View<'_> {
    /// The type's name as Java's `Schema.Type` prints it.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            View::Null => "NULL",
            View::Boolean => "BOOLEAN",
            View::Int => "INT",
            View::Long => "LONG",
            View::Float => "FLOAT",
            View::Double => "DOUBLE",
            View::Bytes => "BYTES",
            View::String => "STRING",
            View::Array(_) => "ARRAY",
            View::Map(_) => "MAP",
            View::Union(_) => "UNION",
            View::Record(_) => "RECORD",
            View::Enum(_) => "ENUM",
            View::Fixed(_) => "FIXED",
            View::Unknown => "UNKNOWN",
        }
    }
}

/// The encoding of `s`, references looked up in `names`.
pub(crate) fn view<'a>(s: &'a Schema, names: &'a Names) -> View<'a> {
    view_depth(s, names, 0)
}

fn view_depth<'a>(s: &'a Schema, names: &'a Names, depth: usize) -> View<'a> {
    match s {
        Schema::Null => View::Null,
        Schema::Boolean => View::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => View::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => View::Long,
        Schema::Float => View::Float,
        Schema::Double => View::Double,
        Schema::Bytes | Schema::BigDecimal => View::Bytes,
        Schema::String => View::String,
        Schema::Array(ArraySchema { items, .. }) => View::Array(items),
        Schema::Map(MapSchema { types, .. }) => View::Map(types),
        Schema::Union(u) => View::Union(u.variants()),
        Schema::Record(r) => View::Record(r),
        Schema::Enum(e) => View::Enum(e),
        Schema::Fixed(f) | Schema::Duration(f) => View::Fixed(f),
        Schema::Decimal(DecimalSchema { inner, .. }) => match inner {
            InnerDecimalSchema::Bytes => View::Bytes,
            InnerDecimalSchema::Fixed(f) => View::Fixed(f),
        },
        Schema::Uuid(u) => match u {
            UuidSchema::Bytes => View::Bytes,
            UuidSchema::String => View::String,
            UuidSchema::Fixed(f) => View::Fixed(f),
        },
        Schema::Ref { name } => match names.get(&name.fullname(None)) {
            Some(target) if depth < 8 => view_depth(target, names, depth + 1),
            _ => View::Unknown,
        },
    }
}

/// Adds every named type defined in `s` to `names` (a name already there is kept).
pub(crate) fn collect_names(s: &Schema, names: &mut Names) {
    let mut add = |full: String, s: &Schema| {
        names.entry(full).or_insert_with(|| s.clone());
    };
    match s {
        Schema::Record(r) => {
            add(r.name.fullname(None), s);
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => add(e.name.fullname(None), s),
        Schema::Fixed(f) | Schema::Duration(f) => add(f.name.fullname(None), s),
        Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        })
        | Schema::Uuid(UuidSchema::Fixed(f)) => add(f.name.fullname(None), s),
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_names(v, names);
            }
        }
        _ => {}
    }
}
