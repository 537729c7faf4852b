//! Whether a reader schema can read what a writer schema wrote: the Avro specification's
//! "Schema Resolution" rules, each problem reported in Confluent's form with the location of
//! the problem in the reader (new) schema or, for union branches, the writer (old) one.
//!
//! - Types match when equal after reducing logical types to the type that carries them, or by
//!   promotion: int to long, float or double; long to float or double; float to double;
//!   string to bytes and bytes to string.
//! - Records, enums and fixed types match by unqualified name, or when the reader lists the
//!   writer's full name among its aliases. Record fields match by name, then by the reader
//!   field's aliases; a reader field the writer lacks needs a default (an explicit `null`
//!   default is a default). Writer fields the reader lacks are skipped.
//! - Enums: a writer symbol the reader lacks is a problem unless the reader has a default.
//! - Fixed: sizes must be equal.
//! - A writer union can be read when each branch can; a reader union reads a writer type when
//!   any of its branches does.
//! - A recursive pair of named types already being compared is taken as readable, so
//!   recursive types terminate.

use super::model::{view, Names, View};
use apache_avro::schema::{EnumSchema, FixedSchema, RecordSchema, Schema};
use std::collections::{HashMap, HashSet};

/// Confluent's kinds of incompatibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    TypeMismatch,
    MissingUnionBranch,
}

/// One problem: its kind, where it is, and the detail Confluent calls `additionalInfo`.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    pub(crate) kind: Kind,
    pub(crate) path: String,
    pub(crate) info: String,
}

impl Problem {
    /// Confluent's verbose message text.
    pub(crate) fn message(&self) -> String {
        let (kind, description) = match self.kind {
            Kind::NameMismatch => (
                "NAME_MISMATCH",
                format!("The name of the schema has changed (path '{}')", self.path),
            ),
            Kind::FixedSizeMismatch => (
                "FIXED_SIZE_MISMATCH",
                format!(
                    "The size of FIXED type field at path '{}' in the new schema does not match with the old schema",
                    self.path
                ),
            ),
            Kind::MissingEnumSymbols => (
                "MISSING_ENUM_SYMBOLS",
                format!(
                    "The new schema is missing enum symbols '{}' at path '{}' in the old schema",
                    self.info, self.path
                ),
            ),
            Kind::ReaderFieldMissingDefaultValue => (
                "READER_FIELD_MISSING_DEFAULT_VALUE",
                format!(
                    "The field '{}' at path '{}' in the new schema has no default value and is missing in the old schema",
                    self.info, self.path
                ),
            ),
            Kind::TypeMismatch => (
                "TYPE_MISMATCH",
                format!(
                    "The type (path '{}') of a field in the new schema does not match with the old schema",
                    self.path
                ),
            ),
            Kind::MissingUnionBranch => (
                "MISSING_UNION_BRANCH",
                format!(
                    "The new schema is missing a type inside a union field at path '{}' in the old schema",
                    self.path
                ),
            ),
        };
        format!(
            "{{errorType:'{kind}', description:'{description}', additionalInfo:'{}'}}",
            self.info
        )
    }
}

/// Compares a reader schema with a writer schema, each with its own table of named types.
pub(crate) struct Checker<'a> {
    reader_names: &'a Names,
    writer_names: &'a Names,
    /// Pairs of named types (reader full name, writer full name) being compared, or compared
    /// already with the problems found.
    memo: HashMap<(String, String), Option<Vec<Problem>>>,
    path: Vec<String>,
}

impl<'a> Checker<'a> {
    /// A checker for schemas whose references resolve in the given tables.
    pub(crate) fn new(reader_names: &'a Names, writer_names: &'a Names) -> Checker<'a> {
        Checker {
            reader_names,
            writer_names,
            memo: HashMap::new(),
            path: Vec::new(),
        }
    }

    /// The problems reading data written with `writer` using `reader`.
    pub(crate) fn check(&mut self, reader: &Schema, writer: &Schema) -> Vec<Problem> {
        // Recursion is bounded by the schemas' nesting (references are memoized), but a
        // guard keeps a pathological input from exhausting the stack.
        if self.path.len() > 512 {
            return Vec::new();
        }
        let r = view(reader, self.reader_names);
        let w = view(writer, self.writer_names);
        match (r, w) {
            (View::Union(rb), View::Union(wb)) => {
                let mut problems = Vec::new();
                for (i, branch) in wb.iter().enumerate() {
                    self.path.push(i.to_string());
                    if !self.reader_union_reads(rb, branch) {
                        problems.push(self.problem(
                            Kind::MissingUnionBranch,
                            format!(
                                "reader union lacking writer type: {}",
                                view(branch, self.writer_names).type_name()
                            ),
                        ));
                    }
                    self.path.pop();
                }
                problems
            }
            (_, View::Union(wb)) => {
                let mut problems = Vec::new();
                for (i, branch) in wb.iter().enumerate() {
                    self.path.push(i.to_string());
                    problems.extend(self.check(reader, branch));
                    self.path.pop();
                }
                problems
            }
            (View::Union(rb), w) => {
                if self.reader_union_reads(rb, writer) {
                    Vec::new()
                } else {
                    vec![self.problem(
                        Kind::MissingUnionBranch,
                        format!("reader union lacking writer type: {}", w.type_name()),
                    )]
                }
            }
            (View::Record(rr), View::Record(wr)) => {
                self.memoized(&rr.name.fullname(None), &wr.name.fullname(None), |c| {
                    c.record(rr, wr)
                })
            }
            (View::Enum(re), View::Enum(we)) => {
                self.memoized(&re.name.fullname(None), &we.name.fullname(None), |c| {
                    c.enumeration(re, we)
                })
            }
            (View::Fixed(rf), View::Fixed(wf)) => self.fixed(rf, wf),
            (View::Array(ri), View::Array(wi)) => self.nested("items", ri, wi),
            (View::Map(rv), View::Map(wv)) => self.nested("values", rv, wv),
            (r, w) if primitive_reads(r, w) => Vec::new(),
            (r, w) => vec![self.problem(
                Kind::TypeMismatch,
                format!(
                    "reader type: {} not compatible with writer type: {}",
                    r.type_name(),
                    w.type_name()
                ),
            )],
        }
    }

    fn problem(&self, kind: Kind, info: String) -> Problem {
        Problem {
            kind,
            path: format!("/{}", self.path.join("/")),
            info,
        }
    }

    fn problem_at(&mut self, step: &str, kind: Kind, info: String) -> Problem {
        self.path.push(step.to_string());
        let p = self.problem(kind, info);
        self.path.pop();
        p
    }

    /// Whether some branch of a reader union reads `writer` (itself no union).
    fn reader_union_reads(&mut self, branches: &[Schema], writer: &Schema) -> bool {
        branches.iter().any(|b| {
            // A trial: its problems (and memo entries) are not the caller's.
            let saved_path = std::mem::take(&mut self.path);
            let saved_memo = self.memo.clone();
            let ok = self.check(b, writer).is_empty();
            self.path = saved_path;
            self.memo = saved_memo;
            ok
        })
    }

    fn nested(&mut self, step: &str, reader: &Schema, writer: &Schema) -> Vec<Problem> {
        self.path.push(step.to_string());
        let problems = self.check(reader, writer);
        self.path.pop();
        problems
    }

    fn memoized(
        &mut self,
        reader: &str,
        writer: &str,
        compare: impl FnOnce(&mut Self) -> Vec<Problem>,
    ) -> Vec<Problem> {
        let key = (reader.to_string(), writer.to_string());
        match self.memo.get(&key) {
            // Being compared further up: taken as readable here.
            Some(None) => return Vec::new(),
            Some(Some(found)) => return found.clone(),
            None => {}
        }
        self.memo.insert(key.clone(), None);
        let problems = compare(self);
        self.memo.insert(key, Some(problems.clone()));
        problems
    }

    fn names_match(
        &mut self,
        reader: &apache_avro::schema::Name,
        reader_aliases: &Option<Vec<apache_avro::schema::Alias>>,
        writer: &apache_avro::schema::Name,
    ) -> Option<Problem> {
        let writer_full = writer.fullname(None);
        let aliased = reader_aliases
            .iter()
            .flatten()
            .any(|a| a.fullname(None) == writer_full);
        if reader.name() == writer.name() || aliased {
            None
        } else {
            Some(self.problem_at(
                "name",
                Kind::NameMismatch,
                format!("expected: {writer_full}"),
            ))
        }
    }

    fn record(&mut self, r: &RecordSchema, w: &RecordSchema) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .names_match(&r.name, &r.aliases, &w.name)
            .into_iter()
            .collect();
        self.path.push("fields".into());
        for (i, rf) in r.fields.iter().enumerate() {
            self.path.push(i.to_string());
            let wf = w.fields.iter().find(|wf| wf.name == rf.name).or_else(|| {
                rf.aliases
                    .iter()
                    .find_map(|a| w.fields.iter().find(|wf| &wf.name == a))
            });
            match wf {
                Some(wf) => {
                    self.path.push("type".into());
                    problems.extend(self.check(&rf.schema, &wf.schema));
                    self.path.pop();
                }
                None if rf.default.is_none() => problems
                    .push(self.problem(Kind::ReaderFieldMissingDefaultValue, rf.name.clone())),
                None => {}
            }
            self.path.pop();
        }
        self.path.pop();
        problems
    }

    fn enumeration(&mut self, r: &EnumSchema, w: &EnumSchema) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .names_match(&r.name, &r.aliases, &w.name)
            .into_iter()
            .collect();
        let reader_symbols: HashSet<&String> = r.symbols.iter().collect();
        let mut missing: Vec<&String> = w
            .symbols
            .iter()
            .filter(|s| !reader_symbols.contains(s))
            .collect();
        missing.sort();
        let has_default = r
            .default
            .as_ref()
            .is_some_and(|d| reader_symbols.contains(d));
        if !missing.is_empty() && !has_default {
            let list = missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            problems.push(self.problem_at(
                "symbols",
                Kind::MissingEnumSymbols,
                format!("[{list}]"),
            ));
        }
        problems
    }

    fn fixed(&mut self, r: &FixedSchema, w: &FixedSchema) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .names_match(&r.name, &r.aliases, &w.name)
            .into_iter()
            .collect();
        if r.size != w.size {
            problems.push(self.problem_at(
                "size",
                Kind::FixedSizeMismatch,
                format!("expected: {}, found: {}", w.size, r.size),
            ));
        }
        problems
    }
}

/// Equal primitive types, or the specification's promotions.
fn primitive_reads(r: View, w: View) -> bool {
    matches!(
        (r, w),
        (View::Null, View::Null)
            | (View::Boolean, View::Boolean)
            | (View::Int, View::Int)
            | (View::Long, View::Int | View::Long)
            | (View::Float, View::Int | View::Long | View::Float)
            | (
                View::Double,
                View::Int | View::Long | View::Float | View::Double
            )
            | (View::Bytes, View::Bytes | View::String)
            | (View::String, View::String | View::Bytes)
    )
}
