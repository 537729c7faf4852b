//! Protobuf schemas as Confluent's registry treats them.
//!
//! A schema arrives either as `.proto` source text (proto2 or proto3) or as the standard
//! base64 of a serialized `FileDescriptorProto` (what confluent-kafka's Python serializer
//! registers). Either way it is compiled with `protox` against its references (Confluent's
//! `references`, by import path), the well-known `google/protobuf/*.proto` files, and the
//! files clients import without registering: Confluent's `confluent/meta.proto`,
//! `confluent/type/decimal.proto`, `confluent/type/variant.proto` and googleapis'
//! `google/type/*.proto` (Millrace's own declarations, same names and numbers).
//!
//! * [`ProtobufSchema::canonical`] prints `.proto` text back from the compiled descriptor
//!   (so a base64 registration is stored and returned as text, like Confluent does).
//! * [`ProtobufSchema::serialized`] is the descriptor in binary, base64 encoded
//!   (`?format=serialized`).
//! * [`ProtobufSchema::can_read`] applies Confluent's Protobuf compatibility rules
//!   (`protobuf/diff/*` in Confluent's schema-registry); see the `compat` module.

mod compat;
mod print;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use base64::Engine;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
use protox::file::{File, FileResolver, GoogleFileResolver};

use crate::Dependency;

/// The files Confluent's registry resolves without a registered reference (besides the
/// `google/protobuf/*.proto` well-known types protox ships): Confluent's own and the
/// googleapis `google/type` ones, declared for Millrace with the same names and numbers.
const BUILTINS: &[(&str, &str)] = &[
    (
        "confluent/meta.proto",
        include_str!("protobuf/confluent/meta.proto"),
    ),
    (
        "confluent/type/decimal.proto",
        include_str!("protobuf/confluent/type/decimal.proto"),
    ),
    (
        "confluent/type/variant.proto",
        include_str!("protobuf/confluent/type/variant.proto"),
    ),
    (
        "google/type/calendar_period.proto",
        include_str!("protobuf/google/type/calendar_period.proto"),
    ),
    (
        "google/type/color.proto",
        include_str!("protobuf/google/type/color.proto"),
    ),
    (
        "google/type/date.proto",
        include_str!("protobuf/google/type/date.proto"),
    ),
    (
        "google/type/datetime.proto",
        include_str!("protobuf/google/type/datetime.proto"),
    ),
    (
        "google/type/dayofweek.proto",
        include_str!("protobuf/google/type/dayofweek.proto"),
    ),
    (
        "google/type/decimal.proto",
        include_str!("protobuf/google/type/decimal.proto"),
    ),
    (
        "google/type/expr.proto",
        include_str!("protobuf/google/type/expr.proto"),
    ),
    (
        "google/type/fraction.proto",
        include_str!("protobuf/google/type/fraction.proto"),
    ),
    (
        "google/type/interval.proto",
        include_str!("protobuf/google/type/interval.proto"),
    ),
    (
        "google/type/latlng.proto",
        include_str!("protobuf/google/type/latlng.proto"),
    ),
    (
        "google/type/money.proto",
        include_str!("protobuf/google/type/money.proto"),
    ),
    (
        "google/type/month.proto",
        include_str!("protobuf/google/type/month.proto"),
    ),
    (
        "google/type/phone_number.proto",
        include_str!("protobuf/google/type/phone_number.proto"),
    ),
    (
        "google/type/postal_address.proto",
        include_str!("protobuf/google/type/postal_address.proto"),
    ),
    (
        "google/type/quaternion.proto",
        include_str!("protobuf/google/type/quaternion.proto"),
    ),
    (
        "google/type/timeofday.proto",
        include_str!("protobuf/google/type/timeofday.proto"),
    ),
];

/// The file name a schema given as source text is compiled under (Confluent's default name).
const DEFAULT_NAME: &str = "default";

/// A compiled, valid Protobuf schema (one `.proto` file and what it imports). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProtobufSchema {
    inner: Arc<Compiled>,
}

/// What [`ProtobufSchema`] shares between its clones.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// The schema's own file name in `pool` (its descriptor's name, or [`DEFAULT_NAME`]).
    name: String,
    /// The schema's own file, type names resolved, without source info.
    file: FileDescriptorProto,
    /// Every file compiled, dependencies first, the schema's own file last.
    files: Vec<FileDescriptorProto>,
    /// The same files as a reflection pool (keeps custom options such as `confluent.field_meta`).
    pool: DescriptorPool,
    /// The schema's own file serialized from the pool (custom options kept), no source info.
    encoded: Option<Vec<u8>>,
}

impl ProtobufSchema {
    /// Compiles `text` (`.proto` source or base64 of a serialized `FileDescriptorProto`),
    /// resolving imports from `deps` (by import path), the well-known types and Confluent's
    /// built-in files. The error says what is wrong (for Confluent's 42201 answer).
    pub fn parse(text: &str, deps: &[Dependency]) -> Result<Self, String> {
        match catch_unwind(AssertUnwindSafe(|| Self::parse_checked(text, deps))) {
            Ok(result) => result,
            Err(_) => Err("invalid Protobuf schema: the compiler failed on it".to_string()),
        }
    }

    /// Compiles, then makes sure the text the registry will store compiles too, to the same
    /// descriptor: a binary descriptor can hold what no `.proto` file can (an empty name, a
    /// map entry with other fields, a field without a type), and a printer slip must not
    /// store a different schema than the one registered.
    fn parse_checked(text: &str, deps: &[Dependency]) -> Result<Self, String> {
        let schema = Self::parse_inner(text, deps)?;
        for normalize in [false, true] {
            let printed = schema.canonical(normalize);
            let again = Self::parse_inner(&printed, deps).map_err(|e| {
                format!("invalid Protobuf schema: it has no valid .proto text form ({e})")
            })?;
            if !normalize && comparable(&again.inner.file) != comparable(&schema.inner.file) {
                return Err(
                    "invalid Protobuf schema: the descriptor says more than .proto text can \
                     (a malformed map entry, a field without a type, ...)"
                        .to_string(),
                );
            }
        }
        Ok(schema)
    }

    fn parse_inner(text: &str, deps: &[Dependency]) -> Result<Self, String> {
        // References are only read when imported (a reference nobody imports is not checked).
        let mut deps_by_name: HashMap<String, String> = HashMap::new();
        for dep in deps {
            if dep.name.is_empty() {
                return Err("a Protobuf reference has an empty name".to_string());
            }
            deps_by_name.insert(dep.name.clone(), dep.schema.clone());
        }
        let main = load_file(DEFAULT_NAME, text, false)?;
        let mut name = main.name().to_string();
        if name.is_empty() {
            name = DEFAULT_NAME.to_string();
        }
        if deps_by_name.contains_key(&name) || builtin(&name).is_some() {
            // The schema's own name collides with a reference; compile it under a free one.
            let mut n = 0;
            while deps_by_name.contains_key(&format!("{DEFAULT_NAME}{n}")) {
                n += 1;
            }
            name = format!("{DEFAULT_NAME}{n}");
        }
        let main = if main.name() == name {
            main
        } else {
            let mut proto = main.file_descriptor_proto().clone();
            proto.name = Some(name.clone());
            File::from_file_descriptor_proto(proto)
        };
        let resolver = MapResolver {
            main_name: name.clone(),
            main,
            deps: deps_by_name,
        };
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true).include_source_info(false);
        compiler
            .open_file(&name)
            .map_err(|e| format!("invalid Protobuf schema: {e}"))?;
        let set = compiler.file_descriptor_set();
        let pool = compiler.descriptor_pool();
        let encoded = match pool.get_file_by_name(&name) {
            Some(f) => without_source_info(&f.encode_to_vec()),
            None => None,
        };
        let file = set
            .file
            .iter()
            .find(|f| f.name() == name)
            .cloned()
            .ok_or_else(|| "invalid Protobuf schema: the file did not compile".to_string())?;
        match file.syntax() {
            "" | "proto2" | "proto3" => {}
            other => return Err(format!("unsupported Protobuf syntax '{other}'")),
        }
        Ok(ProtobufSchema {
            inner: Arc::new(Compiled {
                name,
                file,
                files: set.file,
                pool,
                encoded,
            }),
        })
    }

    /// The schema as `.proto` text printed from its descriptor: what the registry stores,
    /// compares and returns. With `normalize` (the API's `?normalize=true`) the parts
    /// protobuf leaves unordered are put in one order, as Confluent's normalization does:
    /// imports sorted (and deduplicated), options sorted by name, fields sorted by number
    /// (a oneof placed at its lowest field number), reserved ranges and names sorted,
    /// extension ranges sorted and enum values sorted by number (a proto3 enum keeps its
    /// zero value first). Messages, enums, services and methods keep their order: message
    /// order is part of the wire format (Confluent's message indexes).
    pub fn canonical(&self, normalize: bool) -> String {
        print::print(&self.inner, normalize)
    }

    /// The schema's `FileDescriptorProto` in protobuf binary, standard base64 encoded (what
    /// Confluent answers for `GET /schemas/ids/{id}?format=serialized`).
    pub fn serialized(&self) -> String {
        let bytes = match &self.inner.encoded {
            Some(b) => b.clone(),
            None => self.inner.file.encode_to_vec(),
        };
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Whether data written with `writer` can be read with `self`, by Confluent's Protobuf
    /// rules: the incompatible differences found, each as
    /// `{errorType:'...', description:'...'}` with `self` called the "new" schema and
    /// `writer` the "old" one; empty when compatible. (Confluent's Protobuf provider itself
    /// puts double quotes around both values; the single quotes follow this crate's common
    /// form, which its Avro checker shares.)
    pub fn can_read(&self, writer: &Self) -> Vec<String> {
        self.can_read_labeled(writer, "new", "old")
    }

    /// [`can_read`](Self::can_read) with the words the descriptions use for the reader and
    /// the writer (Confluent says "old" for the reader when it checks FORWARD compatibility).
    pub fn can_read_labeled(
        &self,
        writer: &Self,
        reader_label: &str,
        writer_label: &str,
    ) -> Vec<String> {
        match catch_unwind(AssertUnwindSafe(|| {
            compat::compare(&writer.inner, &self.inner)
        })) {
            Ok(diffs) => diffs
                .iter()
                .filter(|d| !d.kind.is_compatible())
                .map(|d| d.message(reader_label, writer_label))
                .collect(),
            Err(_) => vec![
                "{errorType:'INTERNAL', description:'The schemas could not be compared'}"
                    .to_string(),
            ],
        }
    }

    /// The names of every difference Confluent's diff reports between `writer` (old) and
    /// `self` (new), compatible ones included, as `(errorType, path)`.
    pub fn differences(&self, writer: &Self) -> Vec<(String, String)> {
        compat::compare(&writer.inner, &self.inner)
            .into_iter()
            .map(|d| (d.kind.name().to_string(), d.path))
            .collect()
    }

    /// The schema's own file descriptor (type names fully qualified).
    pub fn file_descriptor(&self) -> &FileDescriptorProto {
        &self.inner.file
    }
}

/// Reads one file: `.proto` source, or base64 of a serialized `FileDescriptorProto`. For a
/// reference (`is_dep`) the file is named by its import path whatever its descriptor says.
fn load_file(name: &str, text: &str, is_dep: bool) -> Result<File, String> {
    let source_err = match File::from_source(name, text) {
        Ok(f) => return Ok(f),
        Err(e) => e.to_string(),
    };
    let Some(bytes) = decode_base64(text) else {
        return Err(format!("invalid Protobuf schema: {source_err}"));
    };
    let proto = FileDescriptorProto::decode(bytes.as_slice()).map_err(|e| {
        format!("invalid Protobuf schema: base64 text is not a FileDescriptorProto: {e}")
    })?;
    if proto.message_type.is_empty()
        && proto.enum_type.is_empty()
        && proto.service.is_empty()
        && proto.extension.is_empty()
        && proto.package.is_none()
        && proto.dependency.is_empty()
        && proto.syntax.is_none()
    {
        return Err(format!("invalid Protobuf schema: {source_err}"));
    }
    check_enums(&proto)?;
    // Checked here: the compiler's own report of a bad syntax panics on descriptor input.
    match proto.syntax() {
        "" | "proto2" | "proto3" => {}
        other => return Err(format!("unsupported Protobuf syntax '{other}'")),
    }
    let keep_name = !is_dep && proto.name.as_deref().is_some_and(|n| !n.is_empty());
    if keep_name || proto.name.as_deref() == Some(name) {
        // Decoding again through protox keeps extension options the prost types drop.
        File::decode_file_descriptor_proto(bytes.as_slice())
            .map_err(|e| format!("invalid Protobuf schema: {e}"))
    } else {
        let mut proto = proto;
        proto.name = Some(name.to_string());
        Ok(File::from_file_descriptor_proto(proto))
    }
}

/// A serialized `FileDescriptorProto` without its `source_code_info`, the rest (custom
/// options included) untouched.
fn without_source_info(bytes: &[u8]) -> Option<Vec<u8>> {
    let desc = FileDescriptorProto::default().descriptor();
    let mut msg = DynamicMessage::decode(desc, bytes).ok()?;
    msg.clear_field_by_name("source_code_info");
    Some(msg.encode_to_vec())
}

/// A descriptor without what legitimately differs between compilations of the same schema:
/// the file name, source info, protoc's computed JSON names, and options left empty (an
/// options message that only held an extension nobody defined).
fn comparable(f: &FileDescriptorProto) -> FileDescriptorProto {
    fn field(f: &mut FieldDescriptorProto) {
        if f.json_name.as_deref() == Some(print::json_name(f.name()).as_str()) {
            f.json_name = None;
        }
        if f.options == Some(Default::default()) {
            f.options = None;
        }
    }
    fn message(m: &mut DescriptorProto) {
        m.field.iter_mut().for_each(field);
        m.extension.iter_mut().for_each(field);
        m.nested_type.iter_mut().for_each(message);
        if m.options == Some(Default::default()) {
            m.options = None;
        }
        for e in &mut m.enum_type {
            if e.options == Some(Default::default()) {
                e.options = None;
            }
        }
    }
    let mut f = f.clone();
    f.name = None;
    f.source_code_info = None;
    f.message_type.iter_mut().for_each(message);
    f.extension.iter_mut().for_each(field);
    for e in &mut f.enum_type {
        if e.options == Some(Default::default()) {
            e.options = None;
        }
    }
    if f.options == Some(Default::default()) {
        f.options = None;
    }
    f
}

/// Rejects fields whose type or label is no value protobuf knows (a binary descriptor can
/// say anything there, and the compiler does not look).
fn check_enums(file: &FileDescriptorProto) -> Result<(), String> {
    fn field(f: &FieldDescriptorProto) -> Result<(), String> {
        if let Some(t) = f.r#type {
            Type::try_from(t).map_err(|_| {
                format!(
                    "invalid Protobuf schema: field '{}' has unknown type {t}",
                    f.name()
                )
            })?;
        }
        if let Some(l) = f.label {
            Label::try_from(l).map_err(|_| {
                format!(
                    "invalid Protobuf schema: field '{}' has unknown label {l}",
                    f.name()
                )
            })?;
        }
        Ok(())
    }
    fn message(m: &DescriptorProto) -> Result<(), String> {
        m.field.iter().chain(&m.extension).try_for_each(field)?;
        m.nested_type.iter().try_for_each(message)
    }
    file.extension.iter().try_for_each(field)?;
    file.message_type.iter().try_for_each(message)
}

/// Standard base64 (padding optional, surrounding whitespace ignored), or `None`.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let t: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if t.is_empty() {
        return None;
    }
    let engine = base64::engine::general_purpose::STANDARD;
    engine.decode(&t).ok().or_else(|| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(t.trim_end_matches('='))
            .ok()
    })
}

/// A file Confluent's registry knows without a reference, by import path.
fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// Serves the schema, its references, Confluent's built-ins and the well-known types.
struct MapResolver {
    main_name: String,
    main: File,
    /// References by import path: their text (source or base64).
    deps: HashMap<String, String>,
}

impl FileResolver for MapResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.main_name {
            return Ok(self.main.clone());
        }
        if let Some(text) = self.deps.get(name) {
            return load_file(name, text, true)
                .map_err(|e| protox::Error::new(format!("reference '{name}': {e}")));
        }
        if let Some(text) = builtin(name) {
            return File::from_source(name, text);
        }
        GoogleFileResolver::new().open_file(name)
    }
}
