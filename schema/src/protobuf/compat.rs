//! Confluent's Protobuf compatibility rules (schema-registry's `protobuf/diff`), applied to
//! compiled descriptors.
//!
//! The diff goes from the *original* schema (the writer) to the *update* (the reader):
//!
//! * the packages must match (`PACKAGE_CHANGED`);
//! * every message and enum of the file is matched by name with its counterpart, top level
//!   and nested alike: a message that disappears is `MESSAGE_REMOVED` (incompatible); added
//!   or reordered messages, added or removed enums and enum constants are compatible;
//! * fields are matched by number across the whole message (oneof members included):
//!   removed and added fields are compatible unless `required` (`REQUIRED_FIELD_REMOVED`,
//!   `REQUIRED_FIELD_ADDED`), a removed oneof member is `ONEOF_FIELD_REMOVED` unless the
//!   whole oneof went, a new oneof that gathers fields which used to be independent is
//!   `MULTIPLE_FIELDS_MOVED_TO_ONEOF` or `FIELD_MOVED_TO_EXISTING_ONEOF`;
//! * a field's kind (scalar, message, map; an enum counts as a scalar) must not change
//!   (`FIELD_KIND_CHANGED`); scalars must stay in one wire-compatible group — {int32, int64,
//!   uint32, uint64, bool, enums}, {sint32, sint64}, {string, bytes}, {fixed32, sfixed32},
//!   {fixed64, sfixed64}, {float}, {double} — (`FIELD_SCALAR_KIND_CHANGED`); a numeric
//!   field's explicit label must not change (`FIELD_NUMERIC_LABEL_CHANGED`); a message
//!   field must keep its type name, and a type from a changed reference must itself be
//!   compatible (`FIELD_NAMED_TYPE_CHANGED`); map keys and values are compared the same way.
//!
//! Comparing through references stops at a message already being compared, so cycles end.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
};

use super::Compiled as ProtobufSchema;

/// How deep comparisons through referenced types may nest before they stop.
const MAX_DEPTH: usize = 64;

/// Confluent's `Difference.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    PackageChanged,
    MessageAdded,
    MessageRemoved,
    MessageMoved,
    EnumAdded,
    EnumRemoved,
    EnumConstAdded,
    EnumConstChanged,
    EnumConstRemoved,
    FieldAdded,
    FieldRemoved,
    FieldNameChanged,
    FieldKindChanged,
    FieldScalarKindChanged,
    FieldNamedTypeChanged,
    FieldNumericLabelChanged,
    FieldStringOrBytesLabelChanged,
    RequiredFieldAdded,
    RequiredFieldRemoved,
    OneofAdded,
    OneofRemoved,
    OneofFieldAdded,
    OneofFieldRemoved,
    OneofFieldMovedToTopLevel,
    MultipleFieldsMovedToOneof,
    FieldMovedToExistingOneof,
}

impl Kind {
    /// Confluent's name for the difference.
    pub(crate) fn name(self) -> &'static str {
        use Kind::*;
        match self {
            PackageChanged => "PACKAGE_CHANGED",
            MessageAdded => "MESSAGE_ADDED",
            MessageRemoved => "MESSAGE_REMOVED",
            MessageMoved => "MESSAGE_MOVED",
            EnumAdded => "ENUM_ADDED",
            EnumRemoved => "ENUM_REMOVED",
            EnumConstAdded => "ENUM_CONST_ADDED",
            EnumConstChanged => "ENUM_CONST_CHANGED",
            EnumConstRemoved => "ENUM_CONST_REMOVED",
            FieldAdded => "FIELD_ADDED",
            FieldRemoved => "FIELD_REMOVED",
            FieldNameChanged => "FIELD_NAME_CHANGED",
            FieldKindChanged => "FIELD_KIND_CHANGED",
            FieldScalarKindChanged => "FIELD_SCALAR_KIND_CHANGED",
            FieldNamedTypeChanged => "FIELD_NAMED_TYPE_CHANGED",
            FieldNumericLabelChanged => "FIELD_NUMERIC_LABEL_CHANGED",
            FieldStringOrBytesLabelChanged => "FIELD_STRING_OR_BYTES_LABEL_CHANGED",
            RequiredFieldAdded => "REQUIRED_FIELD_ADDED",
            RequiredFieldRemoved => "REQUIRED_FIELD_REMOVED",
            OneofAdded => "ONEOF_ADDED",
            OneofRemoved => "ONEOF_REMOVED",
            OneofFieldAdded => "ONEOF_FIELD_ADDED",
            OneofFieldRemoved => "ONEOF_FIELD_REMOVED",
            OneofFieldMovedToTopLevel => "ONEOF_FIELD_MOVED_TO_TOP_LEVEL",
            MultipleFieldsMovedToOneof => "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
            FieldMovedToExistingOneof => "FIELD_MOVED_TO_EXISTING_ONEOF",
        }
    }

    /// Confluent's `SchemaDiff.COMPATIBLE_CHANGES`.
    pub(crate) fn is_compatible(self) -> bool {
        use Kind::*;
        matches!(
            self,
            MessageAdded
                | MessageMoved
                | EnumAdded
                | EnumRemoved
                | EnumConstAdded
                | EnumConstChanged
                | EnumConstRemoved
                | FieldAdded
                | FieldRemoved
                | FieldNameChanged
                | FieldStringOrBytesLabelChanged
                | OneofAdded
                | OneofRemoved
                | OneofFieldAdded
                | OneofFieldMovedToTopLevel
        )
    }
}

/// One difference found, at a path such as `#/Order/2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Difference {
    pub(crate) kind: Kind,
    pub(crate) path: String,
}

impl Difference {
    /// Confluent's message for the difference; `r` names the reader, `w` the writer.
    pub(crate) fn message(&self, r: &str, w: &str) -> String {
        use Kind::*;
        let p = &self.path;
        let description = match self.kind {
            PackageChanged => format!(
                "The package at '{p}' in the {r} schema does not match the package in the {w} schema"
            ),
            MessageRemoved => format!("The {r} schema is missing a MESSAGE type at path '{p}' in the {w} schema"),
            FieldKindChanged => {
                format!("The type of a field at path '{p}' in the {r} schema does not match the {w} schema")
            }
            FieldScalarKindChanged => format!(
                "The kind of a SCALAR field at path '{p}' in the {r} schema does not match its kind in the {w} schema"
            ),
            FieldNamedTypeChanged => format!(
                "The type of a MESSAGE field at path '{p}' in the {r} schema does not match its type in the {w} schema"
            ),
            FieldNumericLabelChanged => format!(
                "The label for a NUMERIC field at path '{p}' in the {r} schema does not match its label in the {w} schema"
            ),
            RequiredFieldAdded => format!("A required field  at path '{p}' in the {r} schema is missing in the {w} schema"),
            RequiredFieldRemoved => {
                format!("The {r} schema is missing a required field at path: '{p}' in the {w} schema")
            }
            OneofFieldRemoved => format!("The {r} schema is missing a oneof field at path '{p}' in the {w} schema"),
            OneofFieldMovedToTopLevel => format!(
                "The oneof field at path '{p}' in the {r} schema was moved out of its oneof to a top-level field in the {w} schema"
            ),
            MultipleFieldsMovedToOneof => format!(
                "Multiple fields in the oneof at path '{p}' in the {r} schema are outside a oneof in the {w} schema"
            ),
            FieldMovedToExistingOneof => format!(
                "A field in the oneof at path '{p}' in the {r} schema is outside an existing oneof in the {w} schema"
            ),
            _ => String::new(),
        };
        format!(
            "{{errorType:'{}', description:'{}'}}",
            self.kind.name(),
            description
        )
    }
}

/// What a type name stands for on one side.
#[derive(Clone, Copy)]
enum TypeInfo<'a> {
    Message {
        msg: &'a DescriptorProto,
        /// The package of the file that declares it.
        package: &'a str,
        /// The declaring file, or `None` for the schema's own file.
        origin: Option<&'a FileDescriptorProto>,
    },
    Map {
        key: &'a FieldDescriptorProto,
        value: &'a FieldDescriptorProto,
    },
    Enum,
}

/// One schema's view: its own file and every type it can name.
struct Side<'a> {
    file: &'a FileDescriptorProto,
    types: HashMap<String, TypeInfo<'a>>,
}

impl<'a> Side<'a> {
    fn new(schema: &'a ProtobufSchema) -> Side<'a> {
        let mut types = HashMap::new();
        for f in &schema.files {
            let origin = if f.name() == schema.name {
                None
            } else {
                Some(f)
            };
            let package = f.package();
            for m in &f.message_type {
                collect_message(&mut types, m, package, package, origin);
            }
            for e in &f.enum_type {
                types.insert(join(package, e.name()), TypeInfo::Enum);
            }
        }
        Side {
            file: &schema.file,
            types,
        }
    }

    fn get(&self, type_name: &str) -> Option<TypeInfo<'a>> {
        self.types.get(type_name.trim_start_matches('.')).copied()
    }
}

fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

fn collect_message<'a>(
    types: &mut HashMap<String, TypeInfo<'a>>,
    m: &'a DescriptorProto,
    scope: &str,
    package: &'a str,
    origin: Option<&'a FileDescriptorProto>,
) {
    let fqn = join(scope, m.name());
    if is_map_entry(m) {
        let key = m.field.iter().find(|f| f.number() == 1);
        let value = m.field.iter().find(|f| f.number() == 2);
        if let (Some(key), Some(value)) = (key, value) {
            types.insert(fqn.clone(), TypeInfo::Map { key, value });
        }
    } else {
        types.insert(
            fqn.clone(),
            TypeInfo::Message {
                msg: m,
                package,
                origin,
            },
        );
    }
    for n in &m.nested_type {
        collect_message(types, n, &fqn, package, origin);
    }
    for e in &m.enum_type {
        types.insert(join(&fqn, e.name()), TypeInfo::Enum);
    }
}

pub(crate) fn is_map_entry(m: &DescriptorProto) -> bool {
    m.options.as_ref().is_some_and(|o| o.map_entry())
}

/// The diff state (Confluent's `Context`).
struct Ctx<'s, 'a> {
    orig: &'s Side<'a>,
    upd: &'s Side<'a>,
    path: Vec<String>,
    /// Original messages being compared (by full name), so reference cycles end.
    active: HashSet<String>,
    diffs: Vec<Difference>,
    depth: usize,
}

impl Ctx<'_, '_> {
    fn add(&mut self, kind: Kind) {
        self.diffs.push(Difference {
            kind,
            path: format!("#/{}", self.path.join("/")),
        });
    }

    fn add_at(&mut self, parts: &[&str], kind: Kind) {
        let n = self.path.len();
        self.path.extend(parts.iter().map(|s| s.to_string()));
        self.add(kind);
        self.path.truncate(n);
    }
}

/// Every difference between `original` (the writer) and `update` (the reader).
pub(crate) fn compare(original: &ProtobufSchema, update: &ProtobufSchema) -> Vec<Difference> {
    let orig = Side::new(original);
    let upd = Side::new(update);
    let mut ctx = Ctx {
        orig: &orig,
        upd: &upd,
        path: Vec::new(),
        active: HashSet::new(),
        diffs: Vec::new(),
        depth: 0,
    };
    if orig.file.package() != upd.file.package() {
        ctx.add(Kind::PackageChanged);
    }
    let (op, up) = (orig.file.package(), upd.file.package());
    compare_types(
        &mut ctx,
        (op, &orig.file.message_type, &orig.file.enum_type),
        (up, &upd.file.message_type, &upd.file.enum_type),
    );
    ctx.diffs
}

type Types<'x> = (&'x str, &'x [DescriptorProto], &'x [EnumDescriptorProto]);

/// Confluent's `compareTypeElements`: messages and enums declared in one scope, by name.
fn compare_types(ctx: &mut Ctx, (oscope, omsgs, oenums): Types, (uscope, umsgs, uenums): Types) {
    let index = |msgs: &[DescriptorProto]| -> BTreeMap<String, (usize, usize)> {
        let mut out = BTreeMap::new();
        let mut i = 0;
        for (pos, m) in msgs.iter().enumerate() {
            if is_map_entry(m) {
                continue;
            }
            out.insert(m.name().to_string(), (pos, i));
            i += 1;
        }
        out
    };
    let om = index(omsgs);
    let um = index(umsgs);
    let names: BTreeSet<&String> = om.keys().chain(um.keys()).collect();
    for name in names {
        ctx.path.push(name.clone());
        match (om.get(name), um.get(name)) {
            (Some(_), None) => ctx.add(Kind::MessageRemoved),
            (None, Some(_)) => ctx.add(Kind::MessageAdded),
            (Some(&(opos, oi)), Some(&(upos, ui))) => {
                let ofqn = join(oscope, name);
                let ufqn = join(uscope, name);
                compare_message(ctx, (&omsgs[opos], &ofqn), (&umsgs[upos], &ufqn));
                if oi != ui {
                    ctx.add(Kind::MessageMoved);
                }
            }
            (None, None) => {}
        }
        ctx.path.pop();
    }
    let oe: BTreeMap<&str, &EnumDescriptorProto> = oenums.iter().map(|e| (e.name(), e)).collect();
    let ue: BTreeMap<&str, &EnumDescriptorProto> = uenums.iter().map(|e| (e.name(), e)).collect();
    let names: BTreeSet<&str> = oe.keys().chain(ue.keys()).copied().collect();
    for name in names {
        ctx.path.push(name.to_string());
        match (oe.get(name), ue.get(name)) {
            (Some(_), None) => ctx.add(Kind::EnumRemoved),
            (None, Some(_)) => ctx.add(Kind::EnumAdded),
            (Some(o), Some(u)) => compare_enum(ctx, o, u),
            (None, None) => {}
        }
        ctx.path.pop();
    }
}

/// Confluent's `EnumSchemaDiff`: constants by number.
fn compare_enum(ctx: &mut Ctx, o: &EnumDescriptorProto, u: &EnumDescriptorProto) {
    let ov: BTreeMap<i32, &str> = o.value.iter().map(|v| (v.number(), v.name())).collect();
    let uv: BTreeMap<i32, &str> = u.value.iter().map(|v| (v.number(), v.name())).collect();
    let tags: BTreeSet<i32> = ov.keys().chain(uv.keys()).copied().collect();
    for tag in tags {
        let t = tag.to_string();
        match (ov.get(&tag), uv.get(&tag)) {
            (Some(_), None) => ctx.add_at(&[&t], Kind::EnumConstRemoved),
            (None, Some(_)) => ctx.add_at(&[&t], Kind::EnumConstAdded),
            (Some(a), Some(b)) if a != b => ctx.add_at(&[&t], Kind::EnumConstChanged),
            _ => {}
        }
    }
}

/// A field as Confluent's diff sees it.
struct FieldView<'a> {
    field: &'a FieldDescriptorProto,
    /// The label written in the source, if any (none in oneofs and for proto3 singular fields).
    label: Option<Label>,
    /// The (real, not proto3-optional) oneof the field belongs to.
    oneof: Option<&'a str>,
}

fn field_views<'a>(m: &'a DescriptorProto, proto3: bool) -> BTreeMap<i32, FieldView<'a>> {
    let mut out = BTreeMap::new();
    for f in &m.field {
        let oneof = if f.proto3_optional() {
            None
        } else {
            f.oneof_index
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| m.oneof_decl.get(i))
                .map(|o| o.name())
        };
        let label = if oneof.is_some() {
            None
        } else if f.label() == Label::Repeated {
            Some(Label::Repeated)
        } else if proto3 && !f.proto3_optional() {
            None
        } else {
            Some(f.label())
        };
        out.insert(
            f.number(),
            FieldView {
                field: f,
                label,
                oneof,
            },
        );
    }
    out
}

/// Whether the file that declares a message is proto3.
fn is_proto3(side: &Side, fqn: &str) -> bool {
    match side.get(fqn) {
        Some(TypeInfo::Message {
            origin: Some(f), ..
        }) => f.syntax() == "proto3",
        _ => side.file.syntax() == "proto3",
    }
}

/// Confluent's `MessageSchemaDiff.compare`.
fn compare_message(
    ctx: &mut Ctx,
    (o, ofqn): (&DescriptorProto, &str),
    (u, ufqn): (&DescriptorProto, &str),
) {
    if ctx.depth > MAX_DEPTH {
        return;
    }
    ctx.depth += 1;
    if ctx.active.insert(ofqn.to_string()) {
        compare_fields(ctx, (o, ofqn), (u, ufqn));
        ctx.active.remove(ofqn);
    }
    compare_types(
        ctx,
        (ofqn, &o.nested_type, &o.enum_type),
        (ufqn, &u.nested_type, &u.enum_type),
    );
    ctx.depth -= 1;
}

fn compare_fields(
    ctx: &mut Ctx,
    (o, ofqn): (&DescriptorProto, &str),
    (u, ufqn): (&DescriptorProto, &str),
) {
    let of = field_views(o, is_proto3(ctx.orig, ofqn));
    let uf = field_views(u, is_proto3(ctx.upd, ufqn));
    let oneofs = |fields: &BTreeMap<i32, FieldView>| -> BTreeMap<String, Vec<i32>> {
        let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (tag, f) in fields {
            if let Some(name) = f.oneof {
                out.entry(name.to_string()).or_default().push(*tag);
            }
        }
        out
    };
    let o_oneofs = oneofs(&of);
    let u_oneofs = oneofs(&uf);

    // Oneofs removed by name with none of their members left anywhere: a whole deletion.
    let deleted: HashSet<&String> = o_oneofs
        .iter()
        .filter(|(name, tags)| {
            !u_oneofs.contains_key(*name) && !tags.iter().any(|t| uf.contains_key(t))
        })
        .map(|(name, _)| name)
        .collect();

    // New mutual exclusivity: an update oneof whose pre-existing members come from more than
    // one original group (an original oneof, or each original top-level field alone).
    for (name, tags) in &u_oneofs {
        let mut groups: HashSet<String> = HashSet::new();
        let mut moved_in = 0;
        for tag in tags {
            if let Some(of) = of.get(tag) {
                match of.oneof {
                    Some(oo) => groups.insert(format!("oneof:{oo}")),
                    None => {
                        moved_in += 1;
                        groups.insert(format!("field:{tag}"))
                    }
                };
            }
        }
        if groups.len() > 1 {
            let kind = if moved_in > 1 {
                Kind::MultipleFieldsMovedToOneof
            } else {
                Kind::FieldMovedToExistingOneof
            };
            ctx.add_at(&[name], kind);
        }
    }

    let all: BTreeSet<&String> = o_oneofs.keys().chain(u_oneofs.keys()).collect();
    for name in all {
        if !u_oneofs.contains_key(name) {
            ctx.add_at(&[name], Kind::OneofRemoved);
        } else if !o_oneofs.contains_key(name) {
            ctx.add_at(&[name], Kind::OneofAdded);
        }
    }

    let tags: BTreeSet<i32> = of.keys().chain(uf.keys()).copied().collect();
    for tag in tags {
        let t = tag.to_string();
        match (of.get(&tag), uf.get(&tag)) {
            (Some(ofv), None) => match ofv.oneof {
                Some(oo) => {
                    if !deleted.contains(&oo.to_string()) {
                        ctx.add_at(&[oo, &t], Kind::OneofFieldRemoved);
                    }
                }
                None => {
                    let kind = if ofv.label == Some(Label::Required) {
                        Kind::RequiredFieldRemoved
                    } else {
                        Kind::FieldRemoved
                    };
                    ctx.add_at(&[&t], kind);
                }
            },
            (None, Some(ufv)) => match ufv.oneof {
                Some(uo) => ctx.add_at(&[uo, &t], Kind::OneofFieldAdded),
                None => {
                    let kind = if ufv.label == Some(Label::Required) {
                        Kind::RequiredFieldAdded
                    } else {
                        Kind::FieldAdded
                    };
                    ctx.add_at(&[&t], kind);
                }
            },
            (Some(ofv), Some(ufv)) => {
                if ofv.oneof.is_some() && ufv.oneof.is_none() {
                    ctx.add_at(&[&t], Kind::OneofFieldMovedToTopLevel);
                }
                let n = ctx.path.len();
                if let Some(uo) = ufv.oneof {
                    ctx.path.push(uo.to_string());
                }
                ctx.path.push(t);
                compare_field(ctx, ofv, ufv);
                ctx.path.truncate(n);
            }
            (None, None) => {}
        }
    }
}

/// A field's type as the diff sees it: a scalar's name or a type's full name.
#[derive(Clone, Copy)]
enum FieldType<'a> {
    Scalar(&'static str),
    Named(&'a str),
}

fn field_type(f: &FieldDescriptorProto) -> FieldType<'_> {
    let scalar = match f.r#type() {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => {
            return FieldType::Named(f.type_name().trim_start_matches('.'));
        }
    };
    FieldType::Scalar(scalar)
}

/// Confluent's `FieldSchemaDiff.compare`.
fn compare_field(ctx: &mut Ctx, o: &FieldView, u: &FieldView) {
    if o.field.name() != u.field.name() {
        ctx.add(Kind::FieldNameChanged);
    }
    compare_labels_and_types(
        ctx,
        o.label,
        u.label,
        field_type(o.field),
        field_type(u.field),
    );
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum FieldKind {
    Scalar,
    Map,
    Message,
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum ScalarKind {
    GeneralNumber,
    SignedNumber,
    StringOrBytes,
    Fixed32,
    Fixed64,
    Float,
    Double,
}

fn kind_of(side: &Side, t: FieldType) -> FieldKind {
    match t {
        FieldType::Scalar(_) => FieldKind::Scalar,
        FieldType::Named(n) => match side.get(n) {
            Some(TypeInfo::Enum) => FieldKind::Scalar,
            Some(TypeInfo::Map { .. }) => FieldKind::Map,
            _ => FieldKind::Message,
        },
    }
}

/// Confluent's wire-compatible scalar groups (an enum is a general number).
fn scalar_kind(t: FieldType) -> ScalarKind {
    match t {
        FieldType::Named(_) => ScalarKind::GeneralNumber,
        FieldType::Scalar(s) => match s {
            "sint32" | "sint64" => ScalarKind::SignedNumber,
            "string" | "bytes" => ScalarKind::StringOrBytes,
            "fixed32" | "sfixed32" => ScalarKind::Fixed32,
            "fixed64" | "sfixed64" => ScalarKind::Fixed64,
            "float" => ScalarKind::Float,
            "double" => ScalarKind::Double,
            _ => ScalarKind::GeneralNumber,
        },
    }
}

fn compare_labels_and_types(
    ctx: &mut Ctx,
    ol: Option<Label>,
    ul: Option<Label>,
    ot: FieldType,
    ut: FieldType,
) {
    let ok = kind_of(ctx.orig, ot);
    let uk = kind_of(ctx.upd, ut);
    if ok != uk {
        ctx.add(Kind::FieldKindChanged);
        return;
    }
    match ok {
        FieldKind::Scalar => {
            let (osk, usk) = (scalar_kind(ot), scalar_kind(ut));
            if osk != usk {
                ctx.add(Kind::FieldScalarKindChanged);
            } else if let (Some(a), Some(b)) = (ol, ul) {
                if a != b {
                    if osk == ScalarKind::StringOrBytes {
                        ctx.add(Kind::FieldStringOrBytesLabelChanged);
                    } else {
                        ctx.add(Kind::FieldNumericLabelChanged);
                    }
                }
            }
        }
        FieldKind::Map => {
            let (FieldType::Named(on), FieldType::Named(un)) = (ot, ut) else {
                return;
            };
            let (
                Some(TypeInfo::Map { key: ok, value: ov }),
                Some(TypeInfo::Map { key: uk, value: uv }),
            ) = (ctx.orig.get(on), ctx.upd.get(un))
            else {
                return;
            };
            compare_labels_and_types(ctx, None, None, field_type(ok), field_type(uk));
            compare_labels_and_types(ctx, None, None, field_type(ov), field_type(uv));
        }
        FieldKind::Message => {
            let (FieldType::Named(on), FieldType::Named(un)) = (ot, ut) else {
                return;
            };
            compare_message_types(ctx, on, un);
        }
    }
}

/// Confluent's `compareMessageTypes`: same name relative to the package, and a type from a
/// changed reference must itself be compatible.
fn compare_message_types(ctx: &mut Ctx, on: &str, un: &str) {
    let (oi, ui) = (ctx.orig.get(on), ctx.upd.get(un));
    let (
        Some(TypeInfo::Message {
            msg: om,
            package: op,
            origin: oo,
        }),
        Some(TypeInfo::Message {
            msg: um,
            package: up,
            origin: uo,
        }),
    ) = (oi, ui)
    else {
        if on != un {
            ctx.add(Kind::FieldNamedTypeChanged);
        }
        return;
    };
    let local = |fqn: &'_ str, pkg: &str| -> String {
        match fqn.strip_prefix(pkg).and_then(|r| r.strip_prefix('.')) {
            Some(l) if !pkg.is_empty() => l.to_string(),
            _ => fqn.to_string(),
        }
    };
    let ol = local(on, op);
    let ul = local(un, up);
    if ol != ul {
        ctx.add(Kind::FieldNamedTypeChanged);
        return;
    }
    // Both in the schemas' own files (compared by the file-level pass), or the same
    // reference on both sides: nothing to compare.
    let same = match (oo, uo) {
        (None, None) => true,
        (Some(a), Some(b)) => a.name() == b.name() && a == b,
        _ => false,
    };
    if same {
        return;
    }
    let saved_path = std::mem::replace(&mut ctx.path, ol.split('.').map(str::to_string).collect());
    let saved_diffs = std::mem::take(&mut ctx.diffs);
    compare_message(ctx, (om, on), (um, un));
    let sub = std::mem::replace(&mut ctx.diffs, saved_diffs);
    ctx.path = saved_path;
    let incompatible = sub.iter().any(|d| !d.kind.is_compatible());
    ctx.diffs.extend(sub);
    if incompatible {
        ctx.add(Kind::FieldNamedTypeChanged);
    }
}
