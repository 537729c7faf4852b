//! The registry's state: the fold of the `_schemas` topic, records in Confluent's key/value
//! format, so a topic copied from a Confluent registry loads and ours loads there.
//!
//! Keys are JSON with `keytype` SCHEMA, CONFIG, MODE, DELETE_SUBJECT or NOOP; a SCHEMA value
//! carries subject, version, id, schemaType (absent: AVRO), references, schema and deleted;
//! a tombstone (null value) of a SCHEMA key deletes that version for good, of a CONFIG or MODE
//! key the setting. Every node folds the same records in the same order, so every node's
//! state is the same at the same offset.
//!
//! Writers on different nodes do not coordinate before writing: each picks the next version
//! and id from its fold and appends, then reads up to its own record. The fold keeps the first
//! record for a subject's version and the first schema for an id, and drops a later record
//! that contradicts them, so a writer whose record lost can see it did and try again
//! ("first writer wins", the offset order deciding).

use millrace_schema::SchemaType;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A reference from a schema to a version of another subject.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema as stored under its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub kind: SchemaType,
    pub text: String,
    pub references: Vec<Reference>,
}

/// One version of a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub id: i32,
    pub deleted: bool,
}

/// A compatibility level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Checked against every earlier version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    /// The new schema must read what the old ones wrote.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    /// The old schemas must read what the new one writes.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

/// A registry mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
    Import,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Mode::ReadWrite,
            "READONLY" => Mode::ReadOnly,
            "IMPORT" => Mode::Import,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }
}

/// The folded state.
#[derive(Default, Debug)]
pub struct Store {
    /// The next offset of `_schemas` to fold.
    pub next_offset: i64,
    pub schemas: BTreeMap<i32, Stored>,
    pub subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    /// Compatibility by subject; None is the global one.
    pub configs: BTreeMap<Option<String>, Level>,
    pub modes: BTreeMap<Option<String>, Mode>,
}

/// A record to append: key and value (None: a tombstone) as JSON text.
pub type Entry = (String, Option<String>);

fn subject_key(keytype: &str, subject: Option<&str>) -> String {
    json!({"keytype": keytype, "subject": subject, "magic": 0}).to_string()
}

/// A SCHEMA record.
pub fn schema_entry(subject: &str, version: i32, id: i32, stored: &Stored, deleted: bool) -> Entry {
    let key = json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1});
    let mut v = Map::new();
    v.insert("subject".into(), json!(subject));
    v.insert("version".into(), json!(version));
    v.insert("id".into(), json!(id));
    if stored.kind != SchemaType::Avro {
        v.insert("schemaType".into(), json!(stored.kind.as_str()));
    }
    if !stored.references.is_empty() {
        v.insert("references".into(), references_json(&stored.references));
    }
    v.insert("schema".into(), json!(stored.text));
    v.insert("deleted".into(), json!(deleted));
    (key.to_string(), Some(Value::Object(v).to_string()))
}

/// The tombstone of a SCHEMA record: the version gone for good.
pub fn schema_tombstone(subject: &str, version: i32) -> Entry {
    let key = json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1});
    (key.to_string(), None)
}

/// A CONFIG record (None: back to the default).
pub fn config_entry(subject: Option<&str>, level: Option<Level>) -> Entry {
    (
        subject_key("CONFIG", subject),
        level.map(|l| json!({"compatibilityLevel": l.as_str()}).to_string()),
    )
}

/// A MODE record (None: back to the default).
pub fn mode_entry(subject: Option<&str>, mode: Option<Mode>) -> Entry {
    (
        subject_key("MODE", subject),
        mode.map(|m| json!({"mode": m.as_str()}).to_string()),
    )
}

pub fn references_json(refs: &[Reference]) -> Value {
    Value::Array(
        refs.iter()
            .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
            .collect(),
    )
}

/// References from JSON; None: not an array of {name, subject, version}.
pub fn references_from(v: Option<&Value>) -> Option<Vec<Reference>> {
    match v {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|r| {
                Some(Reference {
                    name: r.get("name")?.as_str()?.to_string(),
                    subject: r.get("subject")?.as_str()?.to_string(),
                    version: i32::try_from(r.get("version")?.as_i64()?).ok()?,
                })
            })
            .collect(),
        _ => None,
    }
}

impl Store {
    /// Folds the record at `offset`. A record that does not parse is skipped (what another
    /// writer of the topic may add, such as Confluent's NOOP).
    pub fn apply(&mut self, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.next_offset = self.next_offset.max(offset + 1);
        let Some(key) = key.and_then(|k| serde_json::from_slice::<Value>(k).ok()) else {
            return;
        };
        let value = value.and_then(|v| serde_json::from_slice::<Value>(v).ok());
        let subject = key.get("subject").and_then(Value::as_str).map(String::from);
        match key.get("keytype").and_then(Value::as_str) {
            Some("SCHEMA") => {
                let Some(subject) = subject else { return };
                let Some(version) = key
                    .get("version")
                    .and_then(Value::as_i64)
                    .and_then(|v| i32::try_from(v).ok())
                else {
                    return;
                };
                match value {
                    None => self.forget_version(&subject, version),
                    Some(v) => self.schema_record(&subject, version, &v),
                }
            }
            Some("CONFIG") => {
                let level = value
                    .as_ref()
                    .and_then(|v| v.get("compatibilityLevel"))
                    .and_then(Value::as_str)
                    .and_then(Level::parse);
                match level {
                    Some(l) => {
                        self.configs.insert(subject, l);
                    }
                    None => {
                        self.configs.remove(&subject);
                    }
                }
            }
            Some("MODE") => {
                let mode = value
                    .as_ref()
                    .and_then(|v| v.get("mode"))
                    .and_then(Value::as_str)
                    .and_then(Mode::parse);
                match mode {
                    Some(m) => {
                        self.modes.insert(subject, m);
                    }
                    None => {
                        self.modes.remove(&subject);
                    }
                }
            }
            Some("DELETE_SUBJECT") => {
                let (Some(subject), Some(upto)) = (
                    subject,
                    value
                        .as_ref()
                        .and_then(|v| v.get("version"))
                        .and_then(Value::as_i64),
                ) else {
                    return;
                };
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    for (v, e) in versions.iter_mut() {
                        if *v as i64 <= upto {
                            e.deleted = true;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn schema_record(&mut self, subject: &str, version: i32, v: &Value) {
        let Some(id) = v
            .get("id")
            .and_then(Value::as_i64)
            .and_then(|i| i32::try_from(i).ok())
        else {
            return;
        };
        let Some(text) = v.get("schema").and_then(Value::as_str) else {
            return;
        };
        let kind = match v.get("schemaType").and_then(Value::as_str) {
            None => SchemaType::Avro,
            Some(t) => match SchemaType::parse(t) {
                Some(k) => k,
                None => return,
            },
        };
        let Some(references) = references_from(v.get("references")) else {
            return;
        };
        let deleted = v.get("deleted").and_then(Value::as_bool).unwrap_or(false);
        let stored = Stored {
            kind,
            text: text.to_string(),
            references,
        };
        // First writer wins: an id keeps its first schema, a version its first id.
        if let Some(existing) = self.schemas.get(&id) {
            if *existing != stored {
                return;
            }
        }
        let versions = self.subjects.entry(subject.to_string()).or_default();
        match versions.get_mut(&version) {
            Some(e) if e.id != id => {}
            Some(e) => e.deleted = deleted,
            None => {
                versions.insert(version, Version { id, deleted });
                self.schemas.insert(id, stored);
            }
        }
    }

    fn forget_version(&mut self, subject: &str, version: i32) {
        let Some(versions) = self.subjects.get_mut(subject) else {
            return;
        };
        let Some(gone) = versions.remove(&version) else {
            return;
        };
        if versions.is_empty() {
            self.subjects.remove(subject);
        }
        if !self.id_in_use(gone.id) {
            self.schemas.remove(&gone.id);
        }
    }

    fn id_in_use(&self, id: i32) -> bool {
        self.subjects
            .values()
            .any(|vs| vs.values().any(|v| v.id == id))
    }

    /// The compatibility level of `subject` (its own, else the global, else BACKWARD).
    pub fn level(&self, subject: &str) -> Level {
        self.configs
            .get(&Some(subject.to_string()))
            .or_else(|| self.configs.get(&None))
            .copied()
            .unwrap_or(Level::Backward)
    }

    /// The mode of `subject` (its own, else the global, else READWRITE).
    pub fn mode(&self, subject: Option<&str>) -> Mode {
        subject
            .and_then(|s| self.modes.get(&Some(s.to_string())))
            .or_else(|| self.modes.get(&None))
            .copied()
            .unwrap_or(Mode::ReadWrite)
    }

    /// A subject's versions, the soft-deleted ones only when `deleted`.
    pub fn versions(&self, subject: &str, deleted: bool) -> Vec<(i32, Version)> {
        self.subjects
            .get(subject)
            .map(|vs| {
                vs.iter()
                    .filter(|(_, v)| deleted || !v.deleted)
                    .map(|(n, v)| (*n, *v))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The id of a schema equal to `stored`, if any is registered.
    pub fn id_of(&self, stored: &Stored) -> Option<i32> {
        self.schemas
            .iter()
            .find(|(_, s)| *s == stored)
            .map(|(id, _)| *id)
    }

    /// The next id to give a new schema.
    pub fn next_id(&self) -> i32 {
        self.schemas.keys().next_back().map_or(1, |m| m + 1)
    }

    /// The next version of `subject` (soft-deleted versions count: a number is never reused
    /// until the versions are deleted for good).
    pub fn next_version(&self, subject: &str) -> i32 {
        self.subjects
            .get(subject)
            .and_then(|vs| vs.keys().next_back())
            .map_or(1, |m| m + 1)
    }

    /// (subject, version) pairs of live versions whose schema refers to `subject`'s `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> BTreeSet<i32> {
        let mut ids = BTreeSet::new();
        for (s, vs) in &self.subjects {
            for v in vs.values().filter(|v| !v.deleted) {
                let Some(stored) = self.schemas.get(&v.id) else {
                    continue;
                };
                if stored
                    .references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
                {
                    let _ = s;
                    ids.insert(v.id);
                }
            }
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(store: &mut Store, entries: &[Entry]) {
        for (key, value) in entries {
            let at = store.next_offset;
            store.apply(
                at,
                Some(key.as_bytes()),
                value.as_deref().map(str::as_bytes),
            );
        }
    }

    fn avro(text: &str) -> Stored {
        Stored {
            kind: SchemaType::Avro,
            text: text.into(),
            references: Vec::new(),
        }
    }

    #[test]
    fn the_first_writer_of_a_version_or_an_id_wins() {
        let mut s = Store::default();
        fold(
            &mut s,
            &[
                schema_entry("a", 1, 1, &avro("\"int\""), false),
                // Another node's writer picked the same version and id for another schema.
                schema_entry("a", 1, 1, &avro("\"long\""), false),
                // ... or the same id under another subject.
                schema_entry("b", 1, 1, &avro("\"long\""), false),
            ],
        );
        assert_eq!(s.schemas[&1], avro("\"int\""));
        assert_eq!(
            s.versions("a", false),
            vec![(
                1,
                Version {
                    id: 1,
                    deleted: false
                }
            )]
        );
        assert!(s.versions("b", true).is_empty());
        assert_eq!(s.next_id(), 2);
        assert_eq!(s.next_version("a"), 2);
    }

    #[test]
    fn soft_then_hard_delete_and_settings() {
        let mut s = Store::default();
        let int = avro("\"int\"");
        fold(
            &mut s,
            &[
                schema_entry("a", 1, 1, &int, false),
                schema_entry("a", 2, 2, &avro("\"long\""), false),
                schema_entry("a", 1, 1, &int, true),
                config_entry(None, Some(Level::Full)),
                config_entry(Some("a"), Some(Level::None)),
                mode_entry(Some("a"), Some(Mode::ReadOnly)),
            ],
        );
        assert_eq!(s.versions("a", false).len(), 1);
        assert_eq!(s.versions("a", true).len(), 2);
        assert_eq!(s.level("a"), Level::None);
        assert_eq!(s.level("b"), Level::Full);
        assert_eq!(s.mode(Some("a")), Mode::ReadOnly);
        assert_eq!(s.mode(None), Mode::ReadWrite);
        fold(
            &mut s,
            &[
                schema_tombstone("a", 1),
                config_entry(Some("a"), None),
                mode_entry(Some("a"), None),
            ],
        );
        assert!(!s.schemas.contains_key(&1));
        assert_eq!(s.level("a"), Level::Full);
        assert_eq!(s.mode(Some("a")), Mode::ReadWrite);
        // The version number is not reused while version 2 stands.
        assert_eq!(s.next_version("a"), 3);
    }

    #[test]
    fn confluent_records_load() {
        let mut s = Store::default();
        let records: [(&str, Option<&str>); 5] = [
            (r#"{"keytype":"NOOP","magic":0}"#, None),
            (
                r#"{"keytype":"SCHEMA","subject":"t-value","version":1,"magic":1}"#,
                Some(
                    r#"{"subject":"t-value","version":1,"id":7,"schema":"\"string\"","deleted":false}"#,
                ),
            ),
            (
                r#"{"keytype":"SCHEMA","subject":"p","version":1,"magic":1}"#,
                Some(
                    r#"{"subject":"p","version":1,"id":8,"schemaType":"PROTOBUF","references":[{"name":"x.proto","subject":"x","version":1}],"schema":"syntax = \"proto3\";","deleted":false}"#,
                ),
            ),
            (
                r#"{"keytype":"DELETE_SUBJECT","subject":"t-value","magic":0}"#,
                Some(r#"{"subject":"t-value","version":1}"#),
            ),
            (r#"not json"#, Some("{}")),
        ];
        for (i, (k, v)) in records.iter().enumerate() {
            s.apply(i as i64, Some(k.as_bytes()), v.map(str::as_bytes));
        }
        assert_eq!(s.next_offset, 5);
        assert_eq!(s.schemas[&7].kind, SchemaType::Avro);
        assert_eq!(s.schemas[&8].references[0].subject, "x");
        assert!(s.versions("t-value", false).is_empty());
        assert_eq!(s.versions("t-value", true).len(), 1);
        assert_eq!(s.next_id(), 9);
    }
}
