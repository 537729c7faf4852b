//! The schema registry's rules, kept apart from the broker: parsing a schema of each type the
//! registry accepts (Avro, JSON Schema, Protobuf), its canonical text (what makes two
//! registrations "the same schema"), and whether one schema can read what another wrote.
//!
//! Pure: no I/O, no async. The registry (`broker/src/registry`) stores schemas in `_schemas` and
//! maps Confluent's compatibility levels onto [`can_read`]:
//! BACKWARD is `can_read(new, old)`, FORWARD `can_read(old, new)`, FULL both; the _TRANSITIVE
//! forms check against every earlier version rather than only the latest.
#![forbid(unsafe_code)]

pub mod avro;
pub mod json;
pub mod protobuf;

use std::fmt;

/// The schema types Confluent's registry knows (`schemaType`; absent means AVRO).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    /// From the API's `schemaType` text (case as Confluent writes it; lower case accepted too).
    pub fn parse(s: &str) -> Option<SchemaType> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Some(SchemaType::Avro),
            "JSON" => Some(SchemaType::Json),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            _ => None,
        }
    }

    /// The API's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schema the one being parsed refers to (Confluent's `references`, resolved by the
/// registry): the name it is referred to by (an Avro full type name, a JSON Schema `$ref` URL,
/// a Protobuf import path) and its text. The registry passes every reference, transitively,
/// dependencies before the schemas that use them.
#[derive(Clone, Debug)]
pub struct Dependency {
    pub name: String,
    pub schema: String,
}

/// A parsed, valid schema of one type.
#[derive(Clone, Debug)]
pub enum Schema {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
    Protobuf(protobuf::ProtobufSchema),
}

/// Parses `text` as a schema of `kind`; the error says what is wrong, for Confluent's 42201
/// ("Invalid schema") answer.
pub fn parse(kind: SchemaType, text: &str, deps: &[Dependency]) -> Result<Schema, String> {
    Ok(match kind {
        SchemaType::Avro => Schema::Avro(avro::AvroSchema::parse(text, deps)?),
        SchemaType::Json => Schema::Json(json::JsonSchema::parse(text, deps)?),
        SchemaType::Protobuf => Schema::Protobuf(protobuf::ProtobufSchema::parse(text, deps)?),
    })
}

impl Schema {
    /// The schema's type.
    pub fn kind(&self) -> SchemaType {
        match self {
            Schema::Avro(_) => SchemaType::Avro,
            Schema::Json(_) => SchemaType::Json,
            Schema::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The name Confluent's RecordNameStrategy files the schema under: an Avro named type's
    /// full name, a JSON Schema's `title`, a Protobuf file's first message's full name. None
    /// when the schema has no such name (an Avro primitive, a JSON Schema without a title).
    pub fn record_name(&self) -> Option<String> {
        match self {
            Schema::Avro(s) => {
                let doc: serde_json::Value = serde_json::from_str(&s.canonical(true)).ok()?;
                let name = doc.get("name")?.as_str()?;
                match doc.get("namespace").and_then(|n| n.as_str()) {
                    Some(ns) if !ns.is_empty() && !name.contains('.') => {
                        Some(format!("{ns}.{name}"))
                    }
                    _ => Some(name.to_string()),
                }
            }
            Schema::Json(s) => {
                let doc: serde_json::Value = serde_json::from_str(&s.canonical(false)).ok()?;
                Some(doc.get("title")?.as_str()?.to_string())
            }
            Schema::Protobuf(s) => {
                let file = s.file_descriptor();
                let message = file.message_type.first()?.name.clone()?;
                match file.package.as_deref() {
                    Some(p) if !p.is_empty() => Some(format!("{p}.{message}")),
                    _ => Some(message),
                }
            }
        }
    }

    /// The text stored and compared: the schema as its type prints it, so registrations that
    /// differ only in layout are the same schema. `normalize` (the API's `?normalize=true`)
    /// also puts what the type leaves unordered into one order.
    pub fn canonical(&self, normalize: bool) -> String {
        match self {
            Schema::Avro(s) => s.canonical(normalize),
            Schema::Json(s) => s.canonical(normalize),
            Schema::Protobuf(s) => s.canonical(normalize),
        }
    }
}

/// Whether data written with `writer` can be read with `reader`: the problems found, each in
/// Confluent's message form (`{errorType:'...', description:'...'}`), none when it can.
/// Schemas of different types can never read each other.
pub fn can_read(reader: &Schema, writer: &Schema) -> Vec<String> {
    match (reader, writer) {
        (Schema::Avro(r), Schema::Avro(w)) => r.can_read(w),
        (Schema::Json(r), Schema::Json(w)) => r.can_read(w),
        (Schema::Protobuf(r), Schema::Protobuf(w)) => r.can_read(w),
        _ => vec![format!(
            "{{errorType:'TYPE_MISMATCH', description:'The new schema is {} and the old one {}'}}",
            reader.kind(),
            writer.kind()
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_as_confluents_record_name_strategy_takes_them() {
        let avro = parse(
            SchemaType::Avro,
            r#"{"type":"record","name":"User","namespace":"acme","fields":[]}"#,
            &[],
        )
        .unwrap();
        assert_eq!(avro.record_name().as_deref(), Some("acme.User"));
        let prim = parse(SchemaType::Avro, r#""int""#, &[]).unwrap();
        assert_eq!(prim.record_name(), None);
        let json = parse(SchemaType::Json, r#"{"title":"Item","type":"object"}"#, &[]).unwrap();
        assert_eq!(json.record_name().as_deref(), Some("Item"));
        let proto = parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\";\npackage acme;\nmessage Order { string id = 1; }\nmessage B {}\n",
            &[],
        )
        .unwrap();
        assert_eq!(proto.record_name().as_deref(), Some("acme.Order"));
    }
}
