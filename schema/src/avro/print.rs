//! The canonical text of a schema, as Java Avro's `Schema.toString()` prints it (what Confluent
//! stores and returns), and the normalized variant. Walking the schema's own JSON (rather than
//! the crate's parsed model) keeps what Java keeps: custom properties in their order, default
//! values as written, `doc`, `aliases`, `order`.
//!
//! The walk also applies the parsing rules Java applies and `apache-avro` does not: a record
//! needs a `fields` array of objects, a named type is defined once, a type is referred to by
//! its name (never by an alias), `order` is one of the three orders.

use super::ordered::{write_str, Json};
use std::collections::HashSet;

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Attributes Java reads itself on a schema object and does not keep as custom properties.
const SCHEMA_RESERVED: [&str; 10] = [
    "doc",
    "fields",
    "items",
    "name",
    "namespace",
    "size",
    "symbols",
    "values",
    "type",
    "aliases",
];

/// Likewise for a record field.
const FIELD_RESERVED: [&str; 6] = ["default", "doc", "name", "order", "type", "aliases"];

/// Whether `s` is one of Avro's primitive type names.
pub(crate) fn is_primitive(s: &str) -> bool {
    PRIMITIVES.contains(&s)
}

/// A named type's name split as Java splits it.
struct FullName {
    space: Option<String>,
    name: String,
}

impl FullName {
    /// `name` as written (possibly dotted), `namespace` the attribute if given, `enclosing`
    /// the namespace in force. An empty namespace is no namespace.
    fn new(name: &str, namespace: Option<&str>, enclosing: Option<&str>) -> FullName {
        let (space, simple) = match name.rfind('.') {
            Some(dot) => (Some(&name[..dot]), &name[dot + 1..]),
            None => (namespace.or(enclosing), name),
        };
        FullName {
            space: space.filter(|s| !s.is_empty()).map(str::to_string),
            name: simple.to_string(),
        }
    }

    fn full(&self) -> String {
        match &self.space {
            Some(space) => format!("{space}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The name as Java writes a reference from inside namespace `current`.
    fn qualified(&self, current: Option<&str>) -> String {
        match &self.space {
            Some(space) if Some(space.as_str()) != current => self.full(),
            _ => self.name.clone(),
        }
    }
}

/// Which text a [`Printer`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// Java's `Schema.toString()`.
    Java,
    /// Names fully qualified, properties sorted (see the module documentation of `avro`).
    Normalized,
    /// The normalized form, but a reference from inside a namespace to a type in no namespace
    /// is written with a leading dot: what is handed to `apache-avro`, which (unlike Java)
    /// does not fall back to the null namespace when resolving a bare name.
    Resolved,
}

/// Prints schemas; knows the named types defined so far (by full name).
pub(crate) struct Printer {
    form: Form,
    normalize: bool,
    known: HashSet<String>,
    out: String,
}

impl Printer {
    /// A printer of the given form.
    pub(crate) fn new(form: Form) -> Printer {
        Printer {
            form,
            normalize: form != Form::Java,
            known: HashSet::new(),
            out: String::new(),
        }
    }

    /// Prints a referenced schema, whose named types are then known (and printed by name) in
    /// what is printed next, and returns its text.
    pub(crate) fn learn(&mut self, dep: &Json) -> Result<String, String> {
        self.out.clear();
        self.schema(dep, None)?;
        Ok(std::mem::take(&mut self.out))
    }

    /// Prints `schema` and returns its text.
    pub(crate) fn print(mut self, schema: &Json) -> Result<String, String> {
        self.out.clear();
        self.schema(schema, None)?;
        Ok(self.out)
    }

    fn schema(&mut self, j: &Json, ns: Option<&str>) -> Result<(), String> {
        match j {
            Json::Str(t) => {
                if is_primitive(t) {
                    write_str(t, &mut self.out);
                    Ok(())
                } else {
                    self.reference(t, ns)
                }
            }
            Json::Arr(branches) => {
                self.out.push('[');
                for (i, b) in branches.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    if matches!(b, Json::Arr(_)) {
                        return Err("Unions may not immediately contain other unions".into());
                    }
                    self.schema(b, ns)?;
                }
                self.out.push(']');
                Ok(())
            }
            Json::Obj(members) => {
                let t = match j.get("type") {
                    Some(Json::Str(t)) => t.as_str(),
                    Some(other) => {
                        let mut text = String::new();
                        other.write(&mut text);
                        return Err(format!(
                            "A schema's \"type\" must be a type name, found {text}"
                        ));
                    }
                    None => return Err("No type in schema object".into()),
                };
                match t {
                    "record" => self.record(t, j, ns),
                    "error" => Err("Error types belong to Avro protocols, not schemas".into()),
                    "enum" => self.enumeration(j, ns),
                    "fixed" => self.fixed(j, ns),
                    "array" => self.container("array", "items", j, ns),
                    "map" => self.container("map", "values", j, ns),
                    t if is_primitive(t) => {
                        let props = self.props(members, &SCHEMA_RESERVED);
                        if props.is_empty() {
                            write_str(t, &mut self.out);
                        } else {
                            self.out.push_str("{\"type\":");
                            write_str(t, &mut self.out);
                            self.write_props(&props);
                            self.out.push('}');
                        }
                        Ok(())
                    }
                    // Java reads `{"type": "SomeName"}` as a reference to a named type.
                    other => self.reference(other, ns),
                }
            }
            _ => {
                let mut text = String::new();
                j.write(&mut text);
                Err(format!("Not a schema: {text}"))
            }
        }
    }

    fn reference(&mut self, name: &str, ns: Option<&str>) -> Result<(), String> {
        let name = name.strip_prefix('.').unwrap_or(name);
        let candidates = if name.contains('.') {
            vec![FullName::new(name, None, None)]
        } else {
            vec![
                FullName::new(name, None, ns),
                FullName::new(name, None, None),
            ]
        };
        for c in candidates {
            if self.known.contains(&c.full()) {
                let text = if self.form == Form::Resolved && c.space.is_none() && ns.is_some() {
                    format!(".{}", c.name)
                } else if self.normalize {
                    c.full()
                } else {
                    c.qualified(ns)
                };
                write_str(&text, &mut self.out);
                return Ok(());
            }
        }
        Err(format!("Unknown type: {name}"))
    }

    /// Defines a named type: registers it and writes `"name"` (and `"namespace"` where Java
    /// writes it). Returns the type's namespace, the one in force inside it.
    fn define(&mut self, j: &Json, ns: Option<&str>) -> Result<Option<String>, String> {
        let name = match j.get("name") {
            Some(Json::Str(n)) => n.as_str(),
            _ => return Err("No name in schema".into()),
        };
        let namespace = match j.get("namespace") {
            None => None,
            Some(Json::Str(s)) => Some(s.as_str()),
            Some(_) => return Err(format!("Namespace of {name} is not a string")),
        };
        let full = FullName::new(name, namespace, ns);
        if is_primitive(&full.name) && full.space.is_none() {
            return Err(format!("Illegal name: {name}"));
        }
        if !self.known.insert(full.full()) {
            return Err(format!("Can't redefine: {}", full.full()));
        }
        self.out.push_str(",\"name\":");
        if self.normalize {
            write_str(&full.full(), &mut self.out);
            // A full name has no dot when the type is in no namespace; inside a namespace
            // that must still be said, or the type would be read back into it.
            if full.space.is_none() && ns.is_some() {
                self.out.push_str(",\"namespace\":\"\"");
            }
        } else {
            write_str(&full.name, &mut self.out);
            match (&full.space, ns) {
                (Some(space), current) if Some(space.as_str()) != current => {
                    self.out.push_str(",\"namespace\":");
                    write_str(space, &mut self.out);
                }
                (None, Some(_)) => self.out.push_str(",\"namespace\":\"\""),
                _ => {}
            }
        }
        Ok(full.space)
    }

    fn doc(&mut self, j: &Json) {
        if let Some(Json::Str(doc)) = j.get("doc") {
            self.out.push_str(",\"doc\":");
            write_str(doc, &mut self.out);
        }
    }

    /// The named type's aliases, as Java writes them: relative to its namespace, duplicates
    /// dropped (fully qualified in the normalized form).
    fn aliases(&mut self, j: &Json, space: Option<&str>) -> Result<(), String> {
        let Some(aliases) = j.get("aliases") else {
            return Ok(());
        };
        let Json::Arr(items) = aliases else {
            return Err("aliases must be an array of names".into());
        };
        let mut seen = HashSet::new();
        let mut names = Vec::new();
        for a in items {
            let Some(a) = a.as_str() else {
                return Err("aliases must be an array of names".into());
            };
            let full = FullName::new(a, None, space);
            if seen.insert(full.full()) {
                names.push(if self.normalize {
                    full.full()
                } else {
                    full.qualified(space)
                });
            }
        }
        if !names.is_empty() {
            self.out.push_str(",\"aliases\":[");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                write_str(n, &mut self.out);
            }
            self.out.push(']');
        }
        Ok(())
    }

    fn props<'j>(
        &self,
        members: &'j [(String, Json)],
        reserved: &[&str],
    ) -> Vec<&'j (String, Json)> {
        let mut props: Vec<&(String, Json)> = members
            .iter()
            .filter(|(k, _)| !reserved.contains(&k.as_str()))
            .collect();
        if self.normalize {
            props.sort_by(|a, b| a.0.cmp(&b.0));
        }
        props
    }

    fn write_props(&mut self, props: &[&(String, Json)]) {
        for (k, v) in props {
            self.out.push(',');
            write_str(k, &mut self.out);
            self.out.push(':');
            self.value(v);
        }
    }

    fn value(&mut self, v: &Json) {
        if self.normalize {
            v.write_sorted(&mut self.out);
        } else {
            v.write(&mut self.out);
        }
    }

    fn members(j: &Json) -> &[(String, Json)] {
        match j {
            Json::Obj(m) => m,
            _ => &[],
        }
    }

    fn record(&mut self, t: &str, j: &Json, ns: Option<&str>) -> Result<(), String> {
        self.out.push_str("{\"type\":");
        write_str(t, &mut self.out);
        let space = self.define(j, ns)?;
        let space = space.as_deref();
        self.doc(j);
        let Some(Json::Arr(fields)) = j.get("fields") else {
            return Err("Record has no fields array".into());
        };
        self.out.push_str(",\"fields\":[");
        let mut names = HashSet::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let Json::Obj(fmembers) = f else {
                return Err("A record's fields must be objects".into());
            };
            let Some(Json::Str(fname)) = f.get("name") else {
                return Err("No field name".into());
            };
            if !names.insert(fname.clone()) {
                return Err(format!("Duplicate field {fname}"));
            }
            let Some(ftype) = f.get("type") else {
                return Err(format!("No field type: {fname}"));
            };
            self.out.push_str("{\"name\":");
            write_str(fname, &mut self.out);
            self.out.push_str(",\"type\":");
            self.schema(ftype, space)?;
            self.doc(f);
            if let Some(default) = f.get("default") {
                self.out.push_str(",\"default\":");
                self.value(default);
            }
            match f.get("order") {
                None => {}
                Some(Json::Str(o)) => match o.to_ascii_lowercase().as_str() {
                    "ascending" => {}
                    o @ ("descending" | "ignore") => {
                        self.out.push_str(",\"order\":");
                        write_str(o, &mut self.out);
                    }
                    _ => return Err(format!("Invalid order {o} of field {fname}")),
                },
                Some(_) => return Err(format!("Invalid order of field {fname}")),
            }
            match f.get("aliases") {
                None => {}
                Some(Json::Arr(items)) => {
                    let mut seen = HashSet::new();
                    let mut aliases = Vec::new();
                    for a in items {
                        let Some(a) = a.as_str() else {
                            return Err(format!("Aliases of field {fname} must be names"));
                        };
                        if seen.insert(a) {
                            aliases.push(a);
                        }
                    }
                    if !aliases.is_empty() {
                        self.out.push_str(",\"aliases\":[");
                        for (i, a) in aliases.iter().enumerate() {
                            if i > 0 {
                                self.out.push(',');
                            }
                            write_str(a, &mut self.out);
                        }
                        self.out.push(']');
                    }
                }
                Some(_) => return Err(format!("Aliases of field {fname} must be an array")),
            }
            let props = self.props(fmembers, &FIELD_RESERVED);
            self.write_props(&props);
            self.out.push('}');
        }
        self.out.push(']');
        let props = self.props(Self::members(j), &SCHEMA_RESERVED);
        self.write_props(&props);
        self.aliases(j, space)?;
        self.out.push('}');
        Ok(())
    }

    fn enumeration(&mut self, j: &Json, ns: Option<&str>) -> Result<(), String> {
        self.out.push_str("{\"type\":\"enum\"");
        let space = self.define(j, ns)?;
        self.doc(j);
        let Some(Json::Arr(symbols)) = j.get("symbols") else {
            return Err("Enum has no symbols array".into());
        };
        self.out.push_str(",\"symbols\":[");
        for (i, s) in symbols.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let Some(s) = s.as_str() else {
                return Err("Enum symbols must be strings".into());
            };
            write_str(s, &mut self.out);
        }
        self.out.push(']');
        match j.get("default") {
            None => {}
            Some(Json::Str(d)) => {
                self.out.push_str(",\"default\":");
                write_str(d, &mut self.out);
            }
            Some(_) => return Err("An enum's default must be one of its symbols".into()),
        }
        let mut reserved = SCHEMA_RESERVED.to_vec();
        reserved.push("default");
        let props = self.props(Self::members(j), &reserved);
        self.write_props(&props);
        self.aliases(j, space.as_deref())?;
        self.out.push('}');
        Ok(())
    }

    fn fixed(&mut self, j: &Json, ns: Option<&str>) -> Result<(), String> {
        self.out.push_str("{\"type\":\"fixed\"");
        let space = self.define(j, ns)?;
        self.doc(j);
        let Some(Json::Num(size)) = j.get("size") else {
            return Err("Fixed has no numeric size".into());
        };
        let Some(size) = size.as_u64().filter(|s| *s <= i32::MAX as u64) else {
            return Err(format!("Invalid fixed size {size}"));
        };
        self.out.push_str(&format!(",\"size\":{size}"));
        let props = self.props(Self::members(j), &SCHEMA_RESERVED);
        self.write_props(&props);
        self.aliases(j, space.as_deref())?;
        self.out.push('}');
        Ok(())
    }

    fn container(&mut self, t: &str, key: &str, j: &Json, ns: Option<&str>) -> Result<(), String> {
        let Some(inner) = j.get(key) else {
            return Err(format!("{t} has no {key}"));
        };
        self.out.push_str("{\"type\":");
        write_str(t, &mut self.out);
        self.out.push(',');
        write_str(key, &mut self.out);
        self.out.push(':');
        self.schema(inner, ns)?;
        let props = self.props(Self::members(j), &SCHEMA_RESERVED);
        self.write_props(&props);
        self.out.push('}');
        Ok(())
    }
}
