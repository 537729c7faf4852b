//! JSON Schema for the registry: checking a registration, its canonical text, and Confluent's
//! compatibility rules.
//!
//! # Parsing
//! [`JsonSchema::parse`] takes a JSON object or boolean and checks that it is a structurally
//! valid JSON Schema (draft-04 to 2020-12 keywords): `type` names, `properties` (and
//! `patternProperties`, `definitions`, `$defs`, `dependentSchemas`) objects of schemas,
//! `required` an array of strings, `items` a schema or an array of schemas, `prefixItems`,
//! numbers and non-negative integers where the keywords want them, and every `$ref` resolvable:
//! a JSON pointer (`#/definitions/x`, `#/$defs/x`), an `$anchor`, or another schema among the
//! registration's references (`deps`), found by the reference's name (the URL or path the
//! `$ref` uses, also resolved against the document's `$id`), optionally with a fragment
//! (`address.json#/definitions/street`). A cycle made only of `$ref`s, nesting past a few
//! hundred levels, or more than 200 000 sub-schemas are refused. Unknown keywords are allowed.
//!
//! # Canonical text
//! `canonical(false)` is the schema re-serialized as compact JSON with the author's key order
//! (what Confluent's registry stores and returns). `canonical(true)` (the API's
//! `normalize=true`) also sorts every object's keys, recursively (byte order of the keys), so
//! registrations that differ only in key order or layout are the same schema. Array order is
//! kept in both (it matters for `items` tuples, `allOf`, `enum`).
//!
//! # Compatibility
//! [`JsonSchema::can_read`] follows Confluent's JSON Schema rules: it walks the writer (the
//! "original") and the reader (the "update") side by side, follows `$ref` on both sides, and
//! records each difference with its path; the change is compatible when every difference is in
//! Confluent's default (strict) compatible set. Open content models (no
//! `additionalProperties`/`patternProperties`/`additionalItems`, or `true`) may lose properties
//! but not gain typed ones; closed ones (`false`) the opposite; partially open ones (a schema
//! there) accept a property when its schema fits. Widening (`integer` to `number`, bounds
//! relaxed, `enum` or `anyOf`/`oneOf` extended, `required` removed) is compatible; narrowing is
//! not. Each problem is reported in Confluent's form,
//! `{errorType:'TYPE', description:'...'}`, the reader called "new" and the writer "old".

mod diff;
mod load;
mod value;

use crate::Dependency;
use load::Model;
use value::J;

/// A parsed, checked JSON Schema.
#[derive(Clone, Debug)]
pub struct JsonSchema {
    json: J,
    model: Model,
}

impl JsonSchema {
    /// Parses and checks `text`, resolving external `$ref`s through `deps` (by name); the
    /// error says what is wrong and where (a `#/...` path).
    pub fn parse(text: &str, deps: &[Dependency]) -> Result<Self, String> {
        let (json, model) = load::load(text, deps)?;
        Ok(JsonSchema { json, model })
    }

    /// The text stored and compared: compact JSON, keys in the author's order, or sorted
    /// recursively when `normalize`.
    pub fn canonical(&self, normalize: bool) -> String {
        let mut out = String::new();
        self.json.write(normalize, &mut out);
        out
    }

    /// Whether every document valid under `writer` stays acceptable to `self` (the reader) by
    /// Confluent's rules: the incompatible differences, none when compatible.
    pub fn can_read(&self, writer: &Self) -> Vec<String> {
        diff::problems(&writer.model, &self.model)
    }
}
