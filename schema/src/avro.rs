//! Avro schemas: parsing and validation, the canonical text Confluent stores, and the
//! specification's reader/writer resolution rules as a compatibility check.
//!
//! **Parsing.** A schema must be JSON that `apache-avro` accepts as a schema and that also
//! passes the checks Java Avro (Confluent's parser) makes and `apache-avro` does not: records
//! have a `fields` array of objects with distinct names, a named type is defined once and
//! referred to by its name, `order` is `ascending`, `descending` or `ignore`, and every field
//! default is a value of the field's type (for a union, of any of its branches, as Avro 1.12
//! reads it). References ([`Dependency`]) are parsed first; the main schema may then use the
//! named types they define.
//!
//! **Canonical text.** `canonical(false)` is the schema as Java Avro's `Schema.toString()`
//! prints it: compact JSON, attributes in Java's order (`type`, `name`, `namespace`, `doc`,
//! `fields`/`symbols`/`size`/`items`/`values`, custom properties in the order written,
//! `aliases`; fields as `name`, `type`, `doc`, `default`, `order`, `aliases`, properties), a
//! primitive without properties as its bare name, `namespace` written only where it differs
//! from the enclosing one, a named type defined once and afterwards referred to by its name
//! relative to the enclosing namespace. Types from references are referred to by name, never
//! inlined.
//!
//! `canonical(true)` (the API's `normalize=true`) is the same layout with everything that is
//! only a way of writing put into one form: every type name (definitions, references and
//! aliases) fully qualified and no `namespace` attribute (but `"namespace":""` on a type in no
//! namespace defined inside one, which would otherwise be read back into it), custom
//! properties sorted by key, and so are the members of objects inside property values and
//! defaults. Two schemas that differ only in where names are qualified, in the order of
//! attributes or properties, or in layout have the same normalized text. What carries meaning
//! is kept as written: field, symbol and union branch order, docs, aliases, property values.
//! Both texts parse back to the same schema.
//!
//! Where this knowingly differs from Java: every named type a reference defines (nested ones
//! too) is printed by name in the main schema, where Java's `toString(referencedSchemas)`
//! knows only each reference's top-level type; Avro protocol `error` types are refused.
//!
//! **Compatibility.** [`AvroSchema::can_read`] applies the "Schema Resolution" rules of the
//! specification, reporting each problem in Confluent's verbose form (see `compat`).

mod compat;
mod defaults;
mod model;
mod ordered;
mod print;

use crate::Dependency;
use apache_avro::schema::Schema;
use model::Names;
use ordered::Json;
use print::{Form, Printer};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A parsed, valid Avro schema with the named types of its references.
#[derive(Clone, Debug)]
pub struct AvroSchema {
    schema: Schema,
    names: Arc<Names>,
    canonical: String,
    normalized: String,
}

impl AvroSchema {
    /// Parses `text` as an Avro schema whose named-type references resolve in `deps` (each an
    /// Avro schema, dependencies before their users). The error says what is wrong.
    pub fn parse(text: &str, deps: &[Dependency]) -> Result<Self, String> {
        // The same reference may reach us by two paths; it is one definition.
        let mut unique: Vec<&Dependency> = Vec::new();
        for d in deps {
            if !unique.iter().any(|u| u.schema == d.schema) {
                unique.push(d);
            }
        }

        let mut printer = Printer::new(Form::Java);
        let mut normalizer = Printer::new(Form::Normalized);
        let mut resolver = Printer::new(Form::Resolved);
        let mut resolved_deps = Vec::new();
        for d in &unique {
            let json =
                Json::parse(&d.schema).map_err(|e| format!("Invalid reference {}: {e}", d.name))?;
            let resolved = printer
                .learn(&json)
                .and_then(|_| normalizer.learn(&json))
                .and_then(|_| resolver.learn(&json))
                .map_err(|e| format!("Invalid reference {}: {e}", d.name))?;
            resolved_deps.push(resolved);
        }
        let json = Json::parse(text)?;
        let canonical = printer.print(&json)?;
        let normalized = normalizer.print(&json)?;
        // apache-avro reads the schema with every name already resolved the way Java
        // resolves it.
        let resolved = resolver.print(&json)?;

        let parsed = catch_unwind(AssertUnwindSafe(|| {
            if resolved_deps.is_empty() {
                Schema::parse_str(&resolved).map(|s| (s, Vec::new()))
            } else {
                Schema::parse_str_with_list(&resolved, &resolved_deps)
            }
        }))
        .map_err(|_| "Invalid schema: the Avro parser failed on it".to_string())?;
        let (schema, dep_schemas) = parsed.map_err(|e| format!("Invalid schema: {e}"))?;

        let mut names = Names::new();
        model::collect_names(&schema, &mut names);
        for d in &dep_schemas {
            model::collect_names(d, &mut names);
        }
        defaults::check_defaults(&schema, &names)?;

        Ok(AvroSchema {
            schema,
            names: Arc::new(names),
            canonical,
            normalized,
        })
    }

    /// The text stored and compared: Java Avro's `Schema.toString()` form, or with `normalize`
    /// the normalized form described in the module documentation.
    pub fn canonical(&self, normalize: bool) -> String {
        if normalize {
            self.normalized.clone()
        } else {
            self.canonical.clone()
        }
    }

    /// The problems reading data written with `writer` using `self` as the reader schema, in
    /// Confluent's message form; empty when it can read everything `writer` writes.
    pub fn can_read(&self, writer: &Self) -> Vec<String> {
        let result = catch_unwind(AssertUnwindSafe(|| {
            compat::Checker::new(&self.names, &writer.names).check(&self.schema, &writer.schema)
        }));
        match result {
            Ok(problems) => problems.iter().map(compat::Problem::message).collect(),
            Err(_) => vec![
                "{errorType:'TYPE_MISMATCH', description:'The schemas could not be compared', additionalInfo:''}"
                    .to_string(),
            ],
        }
    }
}
