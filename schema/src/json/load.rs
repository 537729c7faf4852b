//! Checking a JSON Schema document and loading it into the typed model the compatibility rules
//! work on. The model follows how Confluent's registry sees a schema (the everit loader): an
//! object schema becomes one typed node per family of keywords it carries (enum, each of
//! allOf/anyOf/oneOf, not, const, the explicit `type`, then the keywords of other types it
//! still has), and more than one of those is an `allOf` of them; a list of types is an `anyOf`
//! of one node per type; `$ref` stands alone (draft-07 and earlier ignore its siblings).

use super::value::J;
use crate::Dependency;
use regex::Regex;
use std::collections::HashMap;

/// Index of a node in [`Model::nodes`].
pub(crate) type Id = usize;

/// How deep schemas may nest before the schema is refused (JSON's own nesting limit, 128,
/// comes first in practice).
const MAX_DEPTH: usize = 128;
/// How many schema nodes one registration may produce.
const MAX_NODES: usize = 200_000;

/// The criterion of a combined schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Crit {
    All,
    Any,
    One,
}

impl Crit {
    /// The keyword, as it appears in a difference's path.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Crit::All => "allOf",
            Crit::Any => "anyOf",
            Crit::One => "oneOf",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct StrS {
    pub min_len: Option<u64>,
    pub max_len: Option<u64>,
    pub pattern: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NumS {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub ex_min: Option<f64>,
    pub ex_max: Option<f64>,
    pub multiple_of: Option<serde_json::Number>,
    pub integer: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct ObjS {
    pub props: Vec<(String, Id)>,
    pub required: Vec<String>,
    pub pattern_props: Vec<(Option<Regex>, Id)>,
    pub add_permits: bool,
    pub add_schema: Option<Id>,
    pub uneval: Option<Id>,
    pub prop_deps: Vec<(String, Vec<String>)>,
    pub schema_deps: Vec<(String, Id)>,
    pub max_props: Option<u64>,
    pub min_props: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct ArrS {
    pub all_items: Option<Id>,
    pub item_list: Vec<Id>,
    pub add_permits: bool,
    pub add_schema: Option<Id>,
    pub uneval: Option<Id>,
    pub max_items: Option<u64>,
    pub min_items: Option<u64>,
    pub unique: bool,
    pub max_contains: Option<u64>,
    pub min_contains: Option<u64>,
}

/// One schema of the model.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// Being loaded (only seen while loading, through a `$ref` cycle).
    Pending,
    /// `{}` or `true`: everything is valid.
    Empty,
    /// `false`: nothing is valid.
    False,
    Str(StrS),
    Num(NumS),
    Bool,
    Null,
    Obj(Box<ObjS>),
    Arr(Box<ArrS>),
    Enum(Vec<J>),
    Const(J),
    Comb(Crit, Vec<Id>),
    Not(Id),
    Ref(Id),
    /// `if`/`then`/`else`, which the rules do not look into.
    Cond,
}

impl Kind {
    /// Which "class" of schema this is: schemas of different classes have different types.
    pub(crate) fn class(&self) -> u8 {
        match self {
            Kind::Pending | Kind::Empty => 0,
            Kind::False => 1,
            Kind::Str(_) => 2,
            Kind::Num(_) => 3,
            Kind::Bool => 4,
            Kind::Null => 5,
            Kind::Obj(_) => 6,
            Kind::Arr(_) => 7,
            Kind::Enum(_) => 8,
            Kind::Const(_) => 9,
            Kind::Comb(..) => 10,
            Kind::Not(_) => 11,
            Kind::Ref(_) => 12,
            Kind::Cond => 13,
        }
    }
}

/// A node: its schema and the annotations the rules look at.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Has a `default`.
    pub has_default: bool,
    /// Carries Kafka Connect's `"connect.type": "bytes"`.
    pub connect_bytes: bool,
    /// The schema's JSON, keys sorted: equal keys are the same schema.
    pub key: String,
}

/// A loaded schema: its nodes, the root first.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub nodes: Vec<Node>,
    pub root: Id,
}

impl Model {
    /// Follows `$ref`s to the schema they name (cycles of bare refs are refused at load).
    pub(crate) fn resolve(&self, mut id: Id) -> Id {
        for _ in 0..=self.nodes.len() {
            match self.nodes[id].kind {
                Kind::Ref(t) => id = t,
                _ => return id,
            }
        }
        id
    }
}

struct Doc {
    /// The dependency name (empty for the schema being registered).
    name: String,
    json: J,
    /// Its `$id` (or draft-04 `id`), if a string.
    id: Option<String>,
    /// Declares draft 2019-09 or 2020-12 in `$schema`.
    modern: bool,
}

struct Loader {
    docs: Vec<Doc>,
    nodes: Vec<Node>,
    at: HashMap<(usize, String), Id>,
    /// `$ref` nodes whose targets are still to load (a work list rather than recursion, so
    /// long chains of references cannot exhaust the stack).
    pending: Vec<(Id, usize, String)>,
}

const ARRAY_KW: &[&str] = &[
    "items",
    "additionalItems",
    "maxItems",
    "minItems",
    "uniqueItems",
    "contains",
    "prefixItems",
    "unevaluatedItems",
    "maxContains",
    "minContains",
];
const OBJECT_KW: &[&str] = &[
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "dependencies",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
];
const NUMBER_KW: &[&str] = &[
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];
const STRING_KW: &[&str] = &["minLength", "maxLength", "pattern", "format"];
const TYPES: &[&str] = &[
    "string", "integer", "number", "boolean", "null", "array", "object",
];

/// Parses `text` and its dependencies and loads the model.
pub(crate) fn load(text: &str, deps: &[Dependency]) -> Result<(J, Model), String> {
    let main = J::parse(text)?;
    if !matches!(main, J::Obj(_) | J::Bool(_)) {
        return Err(format!(
            "a JSON Schema must be an object or a boolean, not {}",
            main.kind()
        ));
    }
    let mut docs = vec![Doc {
        name: String::new(),
        id: doc_id(&main),
        modern: is_modern(&main),
        json: main.clone(),
    }];
    for d in deps {
        let json = J::parse(&d.schema).map_err(|e| format!("reference '{}': {e}", d.name))?;
        if !matches!(json, J::Obj(_) | J::Bool(_)) {
            return Err(format!(
                "reference '{}': a JSON Schema must be an object or a boolean, not {}",
                d.name,
                json.kind()
            ));
        }
        docs.push(Doc {
            name: d.name.clone(),
            id: doc_id(&json),
            modern: is_modern(&json),
            json,
        });
    }
    let mut l = Loader {
        docs,
        nodes: Vec::new(),
        at: HashMap::new(),
        pending: Vec::new(),
    };
    let root = l.load(0, String::new(), 0)?;
    while let Some((id, doc, ptr)) = l.pending.pop() {
        let target = l.load(doc, ptr, 0)?;
        l.nodes[id].kind = Kind::Ref(target);
    }
    // A cycle of bare `$ref`s describes no schema at all.
    for start in 0..l.nodes.len() {
        let mut id = start;
        let mut hops = 0;
        while let Kind::Ref(t) = l.nodes[id].kind {
            id = t;
            hops += 1;
            if hops > l.nodes.len() {
                return Err(format!(
                    "a $ref cycle: the schema refers to itself through $ref alone ({})",
                    l.nodes[start].key.chars().take(80).collect::<String>()
                ));
            }
        }
    }
    Ok((
        main,
        Model {
            nodes: l.nodes,
            root,
        },
    ))
}

fn is_modern(j: &J) -> bool {
    matches!(j.get("$schema"), Some(J::Str(s)) if s.contains("2019-09") || s.contains("2020-12"))
}

fn doc_id(j: &J) -> Option<String> {
    match j.get("$id").or_else(|| j.get("id")) {
        Some(J::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value at JSON pointer `ptr` (already unescaped per segment on the way).
fn at_pointer<'a>(root: &'a J, ptr: &str) -> Option<&'a J> {
    if ptr.is_empty() {
        return Some(root);
    }
    let rest = ptr.strip_prefix('/')?;
    let mut cur = root;
    for seg in rest.split('/') {
        let seg = unescape(seg);
        cur = match cur {
            J::Obj(_) => cur.get(&seg)?,
            J::Arr(items) => {
                if seg.len() > 1 && seg.starts_with('0') {
                    return None;
                }
                items.get(seg.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// The last path segment of a URL or file path, without its fragment.
fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// `rel` resolved against the base URL/path `base` (enough of RFC 3986 for schema names).
fn join(base: &str, rel: &str) -> String {
    if rel.contains("://") || rel.starts_with('/') && !base.contains("://") {
        return rel.to_owned();
    }
    if let Some(rest) = rel.strip_prefix('/') {
        // Absolute path on the base's host.
        if let Some(scheme_end) = base.find("://") {
            let after = &base[scheme_end + 3..];
            let host_end = after
                .find('/')
                .map(|i| scheme_end + 3 + i)
                .unwrap_or(base.len());
            return format!("{}/{}", &base[..host_end], rest);
        }
        return rel.to_owned();
    }
    let dir = match base.rfind('/') {
        Some(i) => &base[..=i],
        None => "",
    };
    let mut parts: Vec<&str> = Vec::new();
    let joined = format!("{dir}{rel}");
    let (prefix, path) = match joined.find("://") {
        Some(i) => {
            let after = &joined[i + 3..];
            let host_end = after.find('/').map(|j| i + 3 + j).unwrap_or(joined.len());
            (joined[..host_end].to_owned(), joined[host_end..].to_owned())
        }
        None => (String::new(), joined.clone()),
    };
    for p in path.split('/') {
        match p {
            "." => {}
            ".." => {
                if parts.len() > 1 {
                    parts.pop();
                }
            }
            _ => parts.push(p),
        }
    }
    format!("{prefix}{}", parts.join("/"))
}

impl Loader {
    fn loc(&self, doc: usize, ptr: &str) -> String {
        if doc == 0 {
            format!("#{ptr}")
        } else {
            format!("{}#{ptr}", self.docs[doc].name)
        }
    }

    fn push(&mut self, kind: Kind, key: String) -> Result<Id, String> {
        if self.nodes.len() >= MAX_NODES {
            return Err(format!(
                "the schema is too large (more than {MAX_NODES} sub-schemas)"
            ));
        }
        self.nodes.push(Node {
            kind,
            has_default: false,
            connect_bytes: false,
            key,
        });
        Ok(self.nodes.len() - 1)
    }

    /// Loads the schema at `ptr` in document `doc` (once: later loads share the node).
    fn load(&mut self, doc: usize, ptr: String, depth: usize) -> Result<Id, String> {
        if let Some(&id) = self.at.get(&(doc, ptr.clone())) {
            return Ok(id);
        }
        if depth > MAX_DEPTH {
            return Err(format!(
                "{}: schemas nest (or $ref) more than {MAX_DEPTH} deep",
                self.loc(doc, &ptr)
            ));
        }
        let value = match at_pointer(&self.docs[doc].json, &ptr) {
            Some(v) => v.clone(),
            None => return Err(format!("{}: no such location", self.loc(doc, &ptr))),
        };
        let id = self.push(Kind::Pending, value.key())?;
        self.at.insert((doc, ptr.clone()), id);
        let (kind, has_default, connect_bytes) = self.build(id, doc, &ptr, &value, depth)?;
        let node = &mut self.nodes[id];
        node.kind = kind;
        node.has_default = has_default;
        node.connect_bytes = connect_bytes;
        Ok(id)
    }

    fn child(&mut self, doc: usize, ptr: &str, segs: &[&str], depth: usize) -> Result<Id, String> {
        let mut p = ptr.to_owned();
        for s in segs {
            p.push('/');
            p.push_str(&escape(s));
        }
        self.load(doc, p, depth + 1)
    }

    fn build(
        &mut self,
        id: Id,
        doc: usize,
        ptr: &str,
        v: &J,
        depth: usize,
    ) -> Result<(Kind, bool, bool), String> {
        let members = match v {
            J::Bool(true) => return Ok((Kind::Empty, false, false)),
            J::Bool(false) => return Ok((Kind::False, false, false)),
            J::Obj(m) => m,
            other => {
                return Err(format!(
                    "{}: a schema must be an object or a boolean, not {}",
                    self.loc(doc, ptr),
                    other.kind()
                ))
            }
        };
        self.check_keywords(doc, ptr, v)?;
        let has_default = v.get("default").is_some();
        let connect_bytes = matches!(v.get("connect.type"), Some(J::Str(s)) if s == "bytes");

        // Sub-schemas the model does not use are still loaded, so they are checked.
        for container in ["definitions", "$defs", "dependentSchemas"] {
            if let Some(J::Obj(defs)) = v.get(container) {
                for (k, _) in defs {
                    self.child(doc, ptr, &[container, k], depth)?;
                }
            }
        }
        for single in ["propertyNames", "contains", "if", "then", "else"] {
            if v.get(single).is_some() {
                self.child(doc, ptr, &[single], depth)?;
            }
        }

        if let Some(r) = v.get("$ref") {
            let J::Str(r) = r else {
                return Err(format!("{}: '$ref' must be a string", self.loc(doc, ptr)));
            };
            let (tdoc, tptr) = self.resolve_ref(doc, ptr, r)?;
            self.pending.push((id, tdoc, tptr));
            return Ok((Kind::Pending, has_default, connect_bytes));
        }

        let mut parts: Vec<Kind> = Vec::new();
        if let Some(J::Arr(values)) = v.get("enum") {
            parts.push(Kind::Enum(values.clone()));
        }
        for (kw, crit) in [
            ("allOf", Crit::All),
            ("anyOf", Crit::Any),
            ("oneOf", Crit::One),
        ] {
            if let Some(J::Arr(subs)) = v.get(kw) {
                let mut ids = Vec::with_capacity(subs.len());
                for i in 0..subs.len() {
                    ids.push(self.child(doc, ptr, &[kw, &i.to_string()], depth)?);
                }
                parts.push(Kind::Comb(crit, ids));
            }
        }
        if v.get("not").is_some() {
            parts.push(Kind::Not(self.child(doc, ptr, &["not"], depth)?));
        }
        if let Some(c) = v.get("const") {
            parts.push(Kind::Const(c.clone()));
        }
        let mut consumed: Vec<&str> = Vec::new();
        match v.get("type") {
            Some(J::Str(t)) => {
                consumed.extend(keywords_of(t));
                parts.push(self.typed(doc, ptr, v, t, depth)?);
            }
            Some(J::Arr(ts)) => {
                let mut ids = Vec::new();
                for t in ts {
                    if let J::Str(t) = t {
                        consumed.extend(keywords_of(t));
                        let kind = self.typed(doc, ptr, v, t, depth)?;
                        let key = format!("{}#type:{t}", self.nodes_key(v));
                        ids.push(self.push(kind, key)?);
                    }
                }
                parts.push(Kind::Comb(Crit::Any, ids));
            }
            _ => {}
        }
        let present = |kws: &[&str]| {
            members
                .iter()
                .any(|(k, _)| kws.contains(&k.as_str()) && !consumed.contains(&k.as_str()))
        };
        if present(ARRAY_KW) {
            parts.push(self.typed(doc, ptr, v, "array", depth)?);
        }
        if present(OBJECT_KW) {
            parts.push(self.typed(doc, ptr, v, "object", depth)?);
        }
        if present(NUMBER_KW) {
            let mut k = self.typed(doc, ptr, v, "number", depth)?;
            if let Kind::Num(n) = &mut k {
                n.integer = false;
            }
            parts.push(k);
        }
        if present(STRING_KW) {
            parts.push(self.typed(doc, ptr, v, "string", depth)?);
        }
        if ["if", "then", "else"].iter().any(|k| v.get(k).is_some()) {
            parts.push(Kind::Cond);
        }
        let kind = match parts.len() {
            0 => Kind::Empty,
            1 => parts.pop().unwrap_or(Kind::Empty),
            _ => {
                let base = self.nodes_key(v);
                let mut ids = Vec::new();
                for (i, p) in parts.into_iter().enumerate() {
                    ids.push(self.push(p, format!("{base}#part:{i}"))?);
                }
                Kind::Comb(Crit::All, ids)
            }
        };
        Ok((kind, has_default, connect_bytes))
    }

    fn nodes_key(&self, v: &J) -> String {
        v.key()
    }

    /// The node for explicit type `t` built from the keywords of schema `v`.
    fn typed(
        &mut self,
        doc: usize,
        ptr: &str,
        v: &J,
        t: &str,
        depth: usize,
    ) -> Result<Kind, String> {
        Ok(match t {
            "string" => Kind::Str(StrS {
                min_len: uint(v.get("minLength")),
                max_len: uint(v.get("maxLength")),
                pattern: match v.get("pattern") {
                    Some(J::Str(p)) => Some(p.clone()),
                    _ => None,
                },
            }),
            "integer" | "number" => Kind::Num(NumS {
                min: v.get("minimum").and_then(J::as_f64),
                max: v.get("maximum").and_then(J::as_f64),
                ex_min: v.get("exclusiveMinimum").and_then(J::as_f64),
                ex_max: v.get("exclusiveMaximum").and_then(J::as_f64),
                multiple_of: match v.get("multipleOf") {
                    Some(J::Num(n)) => Some(n.clone()),
                    _ => None,
                },
                integer: t == "integer",
            }),
            "boolean" => Kind::Bool,
            "null" => Kind::Null,
            "object" => Kind::Obj(Box::new(self.object(doc, ptr, v, depth)?)),
            "array" => Kind::Arr(Box::new(self.array(doc, ptr, v, depth)?)),
            other => return Err(format!("{}: unknown type '{other}'", self.loc(doc, ptr))),
        })
    }

    fn object(&mut self, doc: usize, ptr: &str, v: &J, depth: usize) -> Result<ObjS, String> {
        let mut o = ObjS {
            props: Vec::new(),
            required: Vec::new(),
            pattern_props: Vec::new(),
            add_permits: true,
            add_schema: None,
            uneval: None,
            prop_deps: Vec::new(),
            schema_deps: Vec::new(),
            max_props: uint(v.get("maxProperties")),
            min_props: uint(v.get("minProperties")),
        };
        if let Some(J::Obj(props)) = v.get("properties") {
            for (k, _) in props {
                let id = self.child(doc, ptr, &["properties", k], depth)?;
                o.props.push((k.clone(), id));
            }
        }
        if let Some(J::Arr(req)) = v.get("required") {
            for r in req {
                if let J::Str(r) = r {
                    if !o.required.contains(r) {
                        o.required.push(r.clone());
                    }
                }
            }
        }
        if let Some(J::Obj(pp)) = v.get("patternProperties") {
            for (k, _) in pp {
                let id = self.child(doc, ptr, &["patternProperties", k], depth)?;
                let re = regex::RegexBuilder::new(k).size_limit(1 << 20).build().ok();
                o.pattern_props.push((re, id));
            }
        }
        match v.get("additionalProperties") {
            Some(J::Bool(b)) => o.add_permits = *b,
            Some(J::Obj(_)) => {
                o.add_schema = Some(self.child(doc, ptr, &["additionalProperties"], depth)?)
            }
            _ => {}
        }
        if v.get("unevaluatedProperties").is_some() {
            o.uneval = Some(self.child(doc, ptr, &["unevaluatedProperties"], depth)?);
        }
        for kw in ["dependencies", "dependentRequired", "dependentSchemas"] {
            if let Some(J::Obj(deps)) = v.get(kw) {
                for (k, d) in deps {
                    match d {
                        J::Arr(names) => {
                            let names: Vec<String> = names
                                .iter()
                                .filter_map(|n| match n {
                                    J::Str(s) => Some(s.clone()),
                                    _ => None,
                                })
                                .collect();
                            o.prop_deps.retain(|(p, _)| p != k);
                            o.prop_deps.push((k.clone(), names));
                        }
                        _ => {
                            let id = self.child(doc, ptr, &[kw, k], depth)?;
                            o.schema_deps.retain(|(p, _)| p != k);
                            o.schema_deps.push((k.clone(), id));
                        }
                    }
                }
            }
        }
        Ok(o)
    }

    fn array(&mut self, doc: usize, ptr: &str, v: &J, depth: usize) -> Result<ArrS, String> {
        let mut a = ArrS {
            all_items: None,
            item_list: Vec::new(),
            add_permits: true,
            add_schema: None,
            uneval: None,
            max_items: uint(v.get("maxItems")),
            min_items: uint(v.get("minItems")),
            unique: matches!(v.get("uniqueItems"), Some(J::Bool(true))),
            max_contains: uint(v.get("maxContains")),
            min_contains: uint(v.get("minContains")),
        };
        // Tuple items: `prefixItems` (2020-12) or an `items` array (earlier drafts); what
        // follows them: `items` (2020-12) or `additionalItems`.
        let mut rest_kw = "additionalItems";
        if let Some(J::Arr(prefix)) = v.get("prefixItems") {
            for i in 0..prefix.len() {
                a.item_list
                    .push(self.child(doc, ptr, &["prefixItems", &i.to_string()], depth)?);
            }
            rest_kw = "items";
        } else if self.docs[doc].modern && matches!(v.get("items"), Some(J::Bool(_))) {
            // 2019-09 and later: a boolean `items` alone says whether any items may appear,
            // which is what `additionalItems` says (Confluent reads it so).
            rest_kw = "items";
        } else {
            match v.get("items") {
                Some(J::Arr(items)) => {
                    for i in 0..items.len() {
                        a.item_list.push(self.child(
                            doc,
                            ptr,
                            &["items", &i.to_string()],
                            depth,
                        )?);
                    }
                }
                Some(_) => a.all_items = Some(self.child(doc, ptr, &["items"], depth)?),
                None => {}
            }
        }
        match v.get(rest_kw) {
            Some(J::Bool(b)) => a.add_permits = *b,
            Some(J::Obj(_)) => a.add_schema = Some(self.child(doc, ptr, &[rest_kw], depth)?),
            _ => {}
        }
        if rest_kw == "items" && v.get("additionalItems").is_some() {
            self.child(doc, ptr, &["additionalItems"], depth)?;
        }
        if v.get("unevaluatedItems").is_some() {
            a.uneval = Some(self.child(doc, ptr, &["unevaluatedItems"], depth)?);
        }
        Ok(a)
    }

    /// Checks the shape of every keyword the rules know.
    fn check_keywords(&self, doc: usize, ptr: &str, v: &J) -> Result<(), String> {
        let J::Obj(members) = v else { return Ok(()) };
        let at = |k: &str| format!("{}/{}", self.loc(doc, ptr), escape(k));
        for (k, val) in members {
            let bad = |what: &str| -> Result<(), String> {
                Err(format!(
                    "{}: '{k}' must be {what}, not {}",
                    at(k),
                    val.kind()
                ))
            };
            let require = |ok: bool, what: &str| if ok { Ok(()) } else { bad(what) };
            match k.as_str() {
                "type" => match val {
                    J::Str(t) => check_type_name(t, &at(k))?,
                    J::Arr(ts) => {
                        if ts.is_empty() {
                            return Err(format!("{}: 'type' must not be an empty array", at(k)));
                        }
                        for (i, t) in ts.iter().enumerate() {
                            let J::Str(t) = t else {
                                return Err(format!(
                                    "{}/{i}: a type name must be a string, not {}",
                                    at(k),
                                    t.kind()
                                ));
                            };
                            check_type_name(t, &at(k))?;
                            if ts[..i].contains(&J::Str(t.clone())) {
                                return Err(format!("{}: type '{t}' is listed twice", at(k)));
                            }
                        }
                    }
                    _ => bad("a type name or an array of type names")?,
                },
                "properties" | "patternProperties" | "definitions" | "$defs"
                | "dependentSchemas" => match val {
                    J::Obj(m) => {
                        for (name, s) in m {
                            if !matches!(s, J::Obj(_) | J::Bool(_)) {
                                return Err(format!(
                                    "{}/{}: a schema must be an object or a boolean, not {}",
                                    at(k),
                                    escape(name),
                                    s.kind()
                                ));
                            }
                        }
                        if k == "patternProperties" {
                            // Patterns are ECMA 262 regular expressions; refuse only what is
                            // plainly broken (an unbalanced group or class).
                            for (p, _) in m {
                                check_pattern_shape(p, &at(k))?;
                            }
                        }
                    }
                    _ => bad("an object of schemas")?,
                },
                "required" => match val {
                    J::Arr(items) => {
                        for it in items {
                            if !matches!(it, J::Str(_)) {
                                return Err(format!(
                                    "{}: 'required' must list property names (strings), not {}",
                                    at(k),
                                    it.kind()
                                ));
                            }
                        }
                    }
                    _ => bad("an array of property names")?,
                },
                "items" => match val {
                    J::Obj(_) | J::Bool(_) => {}
                    J::Arr(items) => check_schema_list(items, &at(k), true)?,
                    _ => bad("a schema or an array of schemas")?,
                },
                "prefixItems" => match val {
                    J::Arr(items) => check_schema_list(items, &at(k), true)?,
                    _ => bad("an array of schemas")?,
                },
                "allOf" | "anyOf" | "oneOf" => match val {
                    J::Arr(items) if items.is_empty() => {
                        return Err(format!("{}: '{k}' must not be empty", at(k)))
                    }
                    J::Arr(items) => check_schema_list(items, &at(k), false)?,
                    _ => bad("a non-empty array of schemas")?,
                },
                "additionalItems"
                | "additionalProperties"
                | "unevaluatedItems"
                | "unevaluatedProperties"
                | "contains"
                | "propertyNames"
                | "not"
                | "if"
                | "then"
                | "else" => require(
                    matches!(val, J::Obj(_) | J::Bool(_)),
                    "a schema (an object or a boolean)",
                )?,
                "enum" => require(matches!(val, J::Arr(_)), "an array")?,
                "minimum" | "maximum" => require(matches!(val, J::Num(_)), "a number")?,
                "exclusiveMinimum" | "exclusiveMaximum" => require(
                    matches!(val, J::Num(_) | J::Bool(_)),
                    "a number (or, in draft-04, a boolean)",
                )?,
                "multipleOf" => match val.as_f64() {
                    Some(x) if x > 0.0 => {}
                    Some(_) => {
                        return Err(format!("{}: 'multipleOf' must be greater than 0", at(k)))
                    }
                    None => bad("a number greater than 0")?,
                },
                "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
                | "maxProperties" | "minContains" | "maxContains" => {
                    require(uint(Some(val)).is_some(), "a non-negative integer")?
                }
                "uniqueItems" => require(matches!(val, J::Bool(_)), "a boolean")?,
                "pattern" => match val {
                    J::Str(p) => check_pattern_shape(p, &at(k))?,
                    _ => bad("a string (a regular expression)")?,
                },
                "format" | "title" | "description" | "$ref" | "$schema" | "$id" | "$anchor"
                | "$comment" => require(matches!(val, J::Str(_)), "a string")?,
                "dependencies" => match val {
                    J::Obj(m) => {
                        for (name, d) in m {
                            match d {
                                J::Obj(_) | J::Bool(_) => {}
                                J::Arr(names) if names.iter().all(|n| matches!(n, J::Str(_))) => {}
                                _ => {
                                    return Err(format!(
                                        "{}/{}: a dependency must be a schema or an array of property names",
                                        at(k),
                                        escape(name)
                                    ))
                                }
                            }
                        }
                    }
                    _ => bad("an object")?,
                },
                "dependentRequired" => match val {
                    J::Obj(m) => {
                        for (name, d) in m {
                            match d {
                                J::Arr(names) if names.iter().all(|n| matches!(n, J::Str(_))) => {}
                                _ => {
                                    return Err(format!(
                                        "{}/{}: must be an array of property names",
                                        at(k),
                                        escape(name)
                                    ))
                                }
                            }
                        }
                    }
                    _ => bad("an object")?,
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// Where `$ref` `r`, met in document `doc`, points: a document and a JSON pointer in it.
    fn resolve_ref(&self, doc: usize, ptr: &str, r: &str) -> Result<(usize, String), String> {
        let (base, frag) = match r.find('#') {
            Some(i) => (&r[..i], &r[i + 1..]),
            None => (r, ""),
        };
        let here = self.loc(doc, ptr);
        let target_doc = if base.is_empty() {
            doc
        } else {
            self.find_doc(doc, base).ok_or_else(|| {
                format!("{here}: cannot resolve $ref '{r}': no reference named '{base}' was given")
            })?
        };
        let frag = percent_decode(frag);
        if frag.is_empty() || frag.starts_with('/') {
            if at_pointer(&self.docs[target_doc].json, &frag).is_none() {
                return Err(format!(
                    "{here}: cannot resolve $ref '{r}': nothing at '#{frag}'"
                ));
            }
            return Ok((target_doc, frag));
        }
        // A plain-name fragment: an `$anchor` (or a draft-07 `"$id": "#name"`).
        let mut found = None;
        find_anchor(
            &self.docs[target_doc].json,
            &frag,
            &mut String::new(),
            &mut found,
            0,
        );
        match found {
            Some(p) => Ok((target_doc, p)),
            None => Err(format!(
                "{here}: cannot resolve $ref '{r}': no anchor '{frag}'"
            )),
        }
    }

    fn find_doc(&self, from: usize, base: &str) -> Option<usize> {
        let deps = || (1..self.docs.len()).rev();
        if let Some(i) = deps().find(|&i| self.docs[i].name == base) {
            return Some(i);
        }
        let resolved = self.docs[from].id.as_deref().map(|id| join(id, base));
        let resolved = resolved.as_deref();
        for i in deps() {
            let d = &self.docs[i];
            if Some(d.name.as_str()) == resolved
                || d.id.as_deref() == Some(base)
                || (resolved.is_some() && d.id.as_deref() == resolved)
            {
                return Some(i);
            }
        }
        if self.docs[0].id.as_deref() == Some(base)
            || (resolved.is_some() && self.docs[0].id.as_deref() == resolved)
        {
            return Some(0);
        }
        let last = last_segment(base);
        deps().find(|&i| {
            last_segment(&self.docs[i].name) == last
                || self.docs[i].id.as_deref().map(last_segment) == Some(last)
        })
    }
}

fn find_anchor(v: &J, name: &str, path: &mut String, found: &mut Option<String>, depth: usize) {
    if found.is_some() || depth > MAX_DEPTH {
        return;
    }
    match v {
        J::Obj(m) => {
            let hash = format!("#{name}");
            if matches!(v.get("$anchor"), Some(J::Str(a)) if a == name)
                || matches!(v.get("$id"), Some(J::Str(a)) if *a == hash)
                || matches!(v.get("id"), Some(J::Str(a)) if *a == hash)
            {
                *found = Some(path.clone());
                return;
            }
            for (k, c) in m {
                let len = path.len();
                path.push('/');
                path.push_str(&escape(k));
                find_anchor(c, name, path, found, depth + 1);
                path.truncate(len);
            }
        }
        J::Arr(items) => {
            for (i, c) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                find_anchor(c, name, path, found, depth + 1);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn keywords_of(t: &str) -> &'static [&'static str] {
    match t {
        "string" => STRING_KW,
        "integer" | "number" => NUMBER_KW,
        "array" => ARRAY_KW,
        "object" => OBJECT_KW,
        _ => &[],
    }
}

fn check_type_name(t: &str, at: &str) -> Result<(), String> {
    if TYPES.contains(&t) {
        Ok(())
    } else {
        Err(format!(
            "{at}: unknown type '{t}' (expected one of {})",
            TYPES.join(", ")
        ))
    }
}

fn check_schema_list(items: &[J], at: &str, _tuple: bool) -> Result<(), String> {
    for (i, s) in items.iter().enumerate() {
        if !matches!(s, J::Obj(_) | J::Bool(_)) {
            return Err(format!(
                "{at}/{i}: a schema must be an object or a boolean, not {}",
                s.kind()
            ));
        }
    }
    Ok(())
}

/// Refuses a regular expression whose brackets do not balance (the one error every regex
/// dialect agrees on); other dialect differences are left alone.
fn check_pattern_shape(p: &str, at: &str) -> Result<(), String> {
    let mut depth: i64 = 0;
    let mut in_class = false;
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "{at}: invalid regular expression '{p}': unmatched ')'"
                    ));
                }
            }
            _ => {}
        }
    }
    if in_class || depth != 0 {
        return Err(format!(
            "{at}: invalid regular expression '{p}': unclosed {}",
            if in_class { "'['" } else { "'('" }
        ));
    }
    Ok(())
}

/// A non-negative integer (`2` or `2.0`).
fn uint(v: Option<&J>) -> Option<u64> {
    match v? {
        J::Num(n) => n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            (f >= 0.0 && f.fract() == 0.0 && f < 9.0e15).then_some(f as u64)
        }),
        _ => None,
    }
}
