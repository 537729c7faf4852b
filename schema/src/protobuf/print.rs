//! Prints `.proto` text from a compiled `FileDescriptorProto`: the canonical form the
//! registry stores and returns.
//!
//! Type names are printed relative to where they are used when that resolves to the same
//! type (else fully qualified with a leading dot). Custom options (extensions such as
//! `(confluent.field_meta)`) are printed from the reflection pool, as text-format values.

use std::collections::HashSet;
use std::fmt::Write;

use prost_reflect::{DynamicMessage, Value};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto,
};

use super::compat::is_map_entry;
use super::Compiled as ProtobufSchema;

/// Prints the schema's own file.
pub(crate) fn print(schema: &ProtobufSchema, normalize: bool) -> String {
    let mut symbols = HashSet::new();
    for f in &schema.files {
        let pkg = f.package();
        let mut p = String::new();
        for part in pkg.split('.').filter(|s| !s.is_empty()) {
            p = join(&p, part);
            symbols.insert(p.clone());
        }
        for m in &f.message_type {
            collect(&mut symbols, m, pkg);
        }
        for e in &f.enum_type {
            symbols.insert(join(pkg, e.name()));
        }
    }
    let p = Printer {
        schema,
        file: &schema.file,
        symbols,
        normalize,
        proto3: schema.file.syntax() == "proto3",
        out: String::new(),
    };
    p.file()
}

fn collect(symbols: &mut HashSet<String>, m: &DescriptorProto, scope: &str) {
    let fqn = join(scope, m.name());
    for n in &m.nested_type {
        collect(symbols, n, &fqn);
    }
    for e in &m.enum_type {
        symbols.insert(join(&fqn, e.name()));
    }
    symbols.insert(fqn);
}

fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

struct Printer<'a> {
    schema: &'a ProtobufSchema,
    file: &'a FileDescriptorProto,
    /// Full names (no leading dot) of every type and package prefix known to the schema.
    symbols: HashSet<String>,
    normalize: bool,
    proto3: bool,
    out: String,
}

/// An option as printed: its name (with parentheses for extensions) and value text.
type Opt = (String, String);

impl Printer<'_> {
    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn file(mut self) -> String {
        let f = self.file;
        let syntax = if f.syntax().is_empty() {
            "proto2"
        } else {
            f.syntax()
        };
        self.line(0, &format!("syntax = {};", quote(syntax)));
        if !f.package().is_empty() {
            self.line(0, &format!("package {};", f.package()));
        }
        let mut imports: Vec<(String, &str)> = Vec::new();
        for (i, dep) in f.dependency.iter().enumerate() {
            let i = i as i32;
            let kind = if f.public_dependency.contains(&i) {
                "public "
            } else if f.weak_dependency.contains(&i) {
                "weak "
            } else {
                ""
            };
            imports.push((dep.clone(), kind));
        }
        if self.normalize {
            imports.sort();
            imports.dedup();
        }
        if !imports.is_empty() {
            self.out.push('\n');
        }
        for (dep, kind) in imports {
            self.line(0, &format!("import {kind}{};", quote(&dep)));
        }
        let mut opts = file_options(f);
        opts.extend(self.custom(self.pool_file().map(|d| d.options())));
        self.options_block(0, opts);
        let pkg = f.package().to_string();
        for m in &f.message_type {
            self.out.push('\n');
            self.message(0, m, &pkg);
        }
        for e in &f.enum_type {
            self.out.push('\n');
            self.enumeration(0, e, &pkg);
        }
        for s in &f.service {
            self.out.push('\n');
            self.service(s);
        }
        self.extends(0, &f.extension, &pkg);
        self.out
    }

    fn pool_file(&self) -> Option<prost_reflect::FileDescriptor> {
        self.schema.pool.get_file_by_name(&self.schema.name)
    }

    fn options_block(&mut self, depth: usize, mut opts: Vec<Opt>) {
        if self.normalize {
            opts.sort();
        }
        if opts.is_empty() {
            return;
        }
        if depth == 0 {
            self.out.push('\n');
        }
        for (k, v) in opts {
            self.line(depth, &format!("option {k} = {v};"));
        }
    }

    /// The extension options set in `options` (a reflection `*Options` message).
    fn custom(&self, options: Option<DynamicMessage>) -> Vec<Opt> {
        let Some(options) = options else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (ext, value) in options.extensions() {
            let name = format!("({})", ext.full_name());
            match value {
                Value::List(items) => {
                    for v in items {
                        out.push((name.clone(), value_text(v)));
                    }
                }
                v => out.push((name, value_text(v))),
            }
        }
        out
    }

    /// A type name as written in `scope` (the full name of the enclosing message or the
    /// package): a type of the file's own package by the shortest suffix that resolves back
    /// to it, any other by its full name (with a leading dot only where that is needed).
    fn type_name(&self, full: &str, scope: &str) -> String {
        let target = full.trim_start_matches('.');
        let parts: Vec<&str> = target.split('.').collect();
        let package = self.file.package();
        let own = !package.is_empty() && target.starts_with(&format!("{package}."));
        let shortest_start = if own || package.is_empty() {
            parts.len() - 1
        } else {
            0
        };
        let longest_start = if own { package.split('.').count() } else { 0 };
        for start in (longest_start..=shortest_start).rev() {
            let candidate = parts[start..].join(".");
            if self.resolve(&candidate, scope).as_deref() == Some(target) {
                return candidate;
            }
        }
        if self.resolve(target, scope).as_deref() == Some(target) {
            return target.to_string();
        }
        format!(".{target}")
    }

    /// Protobuf's name lookup: the first part is searched from the innermost scope outward.
    fn resolve(&self, name: &str, scope: &str) -> Option<String> {
        let first = name.split('.').next().unwrap_or(name);
        let mut s = scope.to_string();
        loop {
            let cand = join(&s, first);
            if self.symbols.contains(&cand) {
                return Some(join(&s, name));
            }
            if s.is_empty() {
                return None;
            }
            s = match s.rfind('.') {
                Some(i) => s[..i].to_string(),
                None => String::new(),
            };
        }
    }

    fn message(&mut self, depth: usize, m: &DescriptorProto, scope: &str) {
        self.line(depth, &format!("message {} {{", m.name()));
        self.message_body(depth + 1, m, scope);
        self.line(depth, "}");
    }

    fn message_body(&mut self, depth: usize, m: &DescriptorProto, scope: &str) {
        let fqn = join(scope, m.name());
        let mut opts = message_options(m);
        let pool_msg = self.schema.pool.get_message_by_name(&fqn);
        opts.extend(self.custom(pool_msg.as_ref().map(|d| d.options())));
        self.options_block(depth, opts);

        // Which oneofs are real (not the synthetic ones of proto3 `optional`).
        let real_oneof = |f: &FieldDescriptorProto| -> Option<usize> {
            if f.proto3_optional() {
                return None;
            }
            f.oneof_index
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < m.oneof_decl.len())
        };
        // Items: a plain field, or a whole oneof at its first (or lowest) field.
        let mut items: Vec<(i32, Option<usize>, Option<&FieldDescriptorProto>)> = Vec::new();
        let mut seen = HashSet::new();
        for f in &m.field {
            match real_oneof(f) {
                None => items.push((f.number(), None, Some(f))),
                Some(o) => {
                    if seen.insert(o) {
                        let low = m
                            .field
                            .iter()
                            .filter(|g| real_oneof(g) == Some(o))
                            .map(|g| g.number())
                            .min()
                            .unwrap_or(0);
                        items.push((low, Some(o), None));
                    }
                }
            }
        }
        if self.normalize {
            items.sort_by_key(|i| i.0);
        }
        let groups: HashSet<String> = m
            .field
            .iter()
            .filter(|f| f.r#type() == Type::Group)
            .map(|f| f.type_name().trim_start_matches('.').to_string())
            .collect();
        for (_, oneof, field) in items {
            if let Some(f) = field {
                self.field(depth, f, m, &fqn, true);
                continue;
            }
            let Some(o) = oneof else { continue };
            let decl = &m.oneof_decl[o];
            self.line(depth, &format!("oneof {} {{", decl.name()));
            let mut members: Vec<&FieldDescriptorProto> = m
                .field
                .iter()
                .filter(|g| real_oneof(g) == Some(o))
                .collect();
            if self.normalize {
                members.sort_by_key(|g| g.number());
            }
            let mut oopts = Vec::new();
            if let Some(pm) = &pool_msg {
                if let Some(od) = pm.oneofs().find(|d| d.name() == decl.name()) {
                    oopts = self.custom(Some(od.options()));
                }
            }
            self.options_block(depth + 1, oopts);
            for g in members {
                self.field(depth + 1, g, m, &fqn, false);
            }
            self.line(depth, "}");
        }
        self.reserved(depth, m);
        let mut ranges: Vec<(i32, i32)> = m
            .extension_range
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect();
        if self.normalize {
            ranges.sort();
        }
        if !ranges.is_empty() {
            let text: Vec<String> = ranges
                .iter()
                .map(|&(s, e)| range_text(s, e - 1, 536_870_911))
                .collect();
            self.line(depth, &format!("extensions {};", text.join(", ")));
        }
        for n in &m.nested_type {
            if is_map_entry(n) || groups.contains(&join(&fqn, n.name())) {
                continue;
            }
            self.message(depth, n, &fqn);
        }
        for e in &m.enum_type {
            self.enumeration(depth, e, &fqn);
        }
        self.extends(depth, &m.extension, &fqn);
    }

    fn reserved(&mut self, depth: usize, m: &DescriptorProto) {
        let mut ranges: Vec<(i32, i32)> = m
            .reserved_range
            .iter()
            .map(|r| (r.start(), r.end() - 1))
            .collect();
        let mut names: Vec<&String> = m.reserved_name.iter().collect();
        if self.normalize {
            ranges.sort();
            names.sort();
        }
        if !ranges.is_empty() {
            let text: Vec<String> = ranges
                .iter()
                .map(|&(s, e)| range_text(s, e, 536_870_911))
                .collect();
            self.line(depth, &format!("reserved {};", text.join(", ")));
        }
        if !names.is_empty() {
            let text: Vec<String> = names.iter().map(|n| quote(n)).collect();
            self.line(depth, &format!("reserved {};", text.join(", ")));
        }
    }

    /// One field; `labelled` is false inside a oneof.
    fn field(
        &mut self,
        depth: usize,
        f: &FieldDescriptorProto,
        m: &DescriptorProto,
        scope: &str,
        labelled: bool,
    ) {
        // A map field: its type is a nested map entry.
        if f.r#type() == Type::Message && f.label() == Label::Repeated {
            let entry_name = f.type_name().trim_start_matches('.');
            if let Some(entry) = m
                .nested_type
                .iter()
                .find(|n| is_map_entry(n) && join(scope, n.name()) == entry_name)
            {
                let key = entry.field.iter().find(|x| x.number() == 1);
                let value = entry.field.iter().find(|x| x.number() == 2);
                if let (Some(k), Some(v)) = (key, value) {
                    let kt = self.field_type(k, scope);
                    let vt = self.field_type(v, scope);
                    let opts = self.field_options(f, scope);
                    self.line(
                        depth,
                        &format!("map<{kt}, {vt}> {} = {}{opts};", f.name(), f.number()),
                    );
                    return;
                }
            }
        }
        let label = if !labelled {
            ""
        } else {
            match f.label() {
                Label::Repeated => "repeated ",
                Label::Required => "required ",
                Label::Optional => {
                    if !self.proto3 || f.proto3_optional() {
                        "optional "
                    } else {
                        ""
                    }
                }
            }
        };
        if f.r#type() == Type::Group {
            let gname = f.type_name().trim_start_matches('.');
            if let Some(g) = m
                .nested_type
                .iter()
                .find(|n| join(scope, n.name()) == gname)
            {
                let opts = self.field_options(f, scope);
                self.line(
                    depth,
                    &format!("{label}group {} = {}{opts} {{", g.name(), f.number()),
                );
                self.message_body(depth + 1, g, scope);
                self.line(depth, "}");
                return;
            }
        }
        let t = self.field_type(f, scope);
        let opts = self.field_options(f, scope);
        self.line(
            depth,
            &format!("{label}{t} {} = {}{opts};", f.name(), f.number()),
        );
    }

    fn field_type(&self, f: &FieldDescriptorProto, scope: &str) -> String {
        match f.r#type() {
            Type::Double => "double".into(),
            Type::Float => "float".into(),
            Type::Int64 => "int64".into(),
            Type::Uint64 => "uint64".into(),
            Type::Int32 => "int32".into(),
            Type::Fixed64 => "fixed64".into(),
            Type::Fixed32 => "fixed32".into(),
            Type::Bool => "bool".into(),
            Type::String => "string".into(),
            Type::Bytes => "bytes".into(),
            Type::Uint32 => "uint32".into(),
            Type::Sfixed32 => "sfixed32".into(),
            Type::Sfixed64 => "sfixed64".into(),
            Type::Sint32 => "sint32".into(),
            Type::Sint64 => "sint64".into(),
            Type::Group | Type::Message | Type::Enum => self.type_name(f.type_name(), scope),
        }
    }

    /// ` [a = b, ...]` or nothing.
    fn field_options(&self, f: &FieldDescriptorProto, scope: &str) -> String {
        let mut opts: Vec<Opt> = Vec::new();
        if let Some(d) = &f.default_value {
            let v = match f.r#type() {
                Type::String => quote(d),
                Type::Bytes => format!("\"{d}\""),
                _ => d.clone(),
            };
            opts.push(("default".into(), v));
        }
        if let Some(j) = &f.json_name {
            if *j != json_name(f.name()) {
                opts.push(("json_name".into(), quote(j)));
            }
        }
        if let Some(o) = &f.options {
            if let Some(c) = o.ctype {
                let name = match c {
                    1 => "CORD",
                    2 => "STRING_PIECE",
                    _ => "STRING",
                };
                opts.push(("ctype".into(), name.into()));
            }
            if let Some(p) = o.packed {
                opts.push(("packed".into(), p.to_string()));
            }
            if let Some(j) = o.jstype {
                let name = match j {
                    1 => "JS_STRING",
                    2 => "JS_NUMBER",
                    _ => "JS_NORMAL",
                };
                opts.push(("jstype".into(), name.into()));
            }
            if let Some(l) = o.lazy {
                opts.push(("lazy".into(), l.to_string()));
            }
            if let Some(d) = o.deprecated {
                opts.push(("deprecated".into(), d.to_string()));
            }
            if let Some(w) = o.weak {
                opts.push(("weak".into(), w.to_string()));
            }
        }
        let pool_field = if f.extendee.is_some() {
            self.schema
                .pool
                .get_extension_by_name(&join(scope, f.name()))
                .map(|e| e.options())
        } else {
            let msg = scope;
            self.schema
                .pool
                .get_message_by_name(msg)
                .and_then(|m| m.get_field(f.number() as u32))
                .map(|fd| fd.options())
        };
        opts.extend(self.custom(pool_field));
        if self.normalize {
            opts.sort();
        }
        if opts.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = opts.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!(" [{}]", parts.join(", "))
    }

    fn enumeration(&mut self, depth: usize, e: &EnumDescriptorProto, scope: &str) {
        let fqn = join(scope, e.name());
        self.line(depth, &format!("enum {} {{", e.name()));
        let mut opts = Vec::new();
        if let Some(o) = &e.options {
            if let Some(a) = o.allow_alias {
                opts.push(("allow_alias".to_string(), a.to_string()));
            }
            if let Some(d) = o.deprecated {
                opts.push(("deprecated".to_string(), d.to_string()));
            }
        }
        let pool_enum = self.schema.pool.get_enum_by_name(&fqn);
        opts.extend(self.custom(pool_enum.as_ref().map(|d| d.options())));
        self.options_block(depth + 1, opts);
        let mut values: Vec<_> = e.value.iter().collect();
        if self.normalize {
            values.sort_by(|a, b| (a.number(), a.name()).cmp(&(b.number(), b.name())));
            if self.proto3 {
                // proto3 wants its zero value first.
                if let Some(i) = values.iter().position(|v| v.number() == 0) {
                    let zero = values.remove(i);
                    values.insert(0, zero);
                }
            }
        }
        for v in values {
            let mut vopts: Vec<Opt> = Vec::new();
            if let Some(d) = v.options.as_ref().and_then(|o| o.deprecated) {
                vopts.push(("deprecated".into(), d.to_string()));
            }
            let pv = pool_enum
                .as_ref()
                .and_then(|pe| pe.get_value_by_name(v.name()));
            vopts.extend(self.custom(pv.map(|d| d.options())));
            if self.normalize {
                vopts.sort();
            }
            let o = if vopts.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = vopts.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!(" [{}]", parts.join(", "))
            };
            self.line(depth + 1, &format!("{} = {}{o};", v.name(), v.number()));
        }
        let mut ranges: Vec<(i32, i32)> = e
            .reserved_range
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect();
        let mut names: Vec<&String> = e.reserved_name.iter().collect();
        if self.normalize {
            ranges.sort();
            names.sort();
        }
        if !ranges.is_empty() {
            let text: Vec<String> = ranges
                .iter()
                .map(|&(s, e)| range_text(s, e, i32::MAX))
                .collect();
            self.line(depth + 1, &format!("reserved {};", text.join(", ")));
        }
        if !names.is_empty() {
            let text: Vec<String> = names.iter().map(|n| quote(n)).collect();
            self.line(depth + 1, &format!("reserved {};", text.join(", ")));
        }
        self.line(depth, "}");
    }

    fn service(&mut self, s: &ServiceDescriptorProto) {
        let pkg = self.file.package().to_string();
        let fqn = join(&pkg, s.name());
        self.line(0, &format!("service {} {{", s.name()));
        let mut opts = Vec::new();
        if let Some(d) = s.options.as_ref().and_then(|o| o.deprecated) {
            opts.push(("deprecated".to_string(), d.to_string()));
        }
        let ps = self.schema.pool.get_service_by_name(&fqn);
        opts.extend(self.custom(ps.as_ref().map(|d| d.options())));
        self.options_block(1, opts);
        for m in &s.method {
            let input = self.type_name(m.input_type(), &pkg);
            let output = self.type_name(m.output_type(), &pkg);
            let cs = if m.client_streaming() { "stream " } else { "" };
            let ss = if m.server_streaming() { "stream " } else { "" };
            let mut mopts = Vec::new();
            if let Some(o) = &m.options {
                if let Some(d) = o.deprecated {
                    mopts.push(("deprecated".to_string(), d.to_string()));
                }
                if let Some(l) = o.idempotency_level {
                    let name = match l {
                        1 => "NO_SIDE_EFFECTS",
                        2 => "IDEMPOTENT",
                        _ => "IDEMPOTENCY_UNKNOWN",
                    };
                    mopts.push(("idempotency_level".to_string(), name.to_string()));
                }
            }
            let pm = ps
                .as_ref()
                .and_then(|p| p.methods().find(|x| x.name() == m.name()));
            mopts.extend(self.custom(pm.map(|d| d.options())));
            let head = format!("rpc {} ({cs}{input}) returns ({ss}{output})", m.name());
            if mopts.is_empty() {
                self.line(1, &format!("{head};"));
            } else {
                self.line(1, &format!("{head} {{"));
                self.options_block(2, mopts);
                self.line(1, "}");
            }
        }
        self.line(0, "}");
    }

    /// `extend` blocks for the extensions declared in `scope`, grouped by extendee.
    fn extends(&mut self, depth: usize, fields: &[FieldDescriptorProto], scope: &str) {
        let mut i = 0;
        while i < fields.len() {
            let extendee = fields[i].extendee();
            let mut j = i;
            while j < fields.len() && fields[j].extendee() == extendee {
                j += 1;
            }
            if depth == 0 {
                self.out.push('\n');
            }
            let name = self.type_name(extendee, scope);
            self.line(depth, &format!("extend {name} {{"));
            let empty = DescriptorProto::default();
            for f in &fields[i..j] {
                self.field(depth + 1, f, &empty, scope, true);
            }
            self.line(depth, "}");
            i = j;
        }
    }
}

/// `a`, `a to b` or `a to max`.
fn range_text(start: i32, end_inclusive: i32, max: i32) -> String {
    if start == end_inclusive {
        start.to_string()
    } else if end_inclusive >= max {
        format!("{start} to max")
    } else {
        format!("{start} to {end_inclusive}")
    }
}

/// protoc's default JSON name: underscores dropped, the letter after one upper-cased.
pub(crate) fn json_name(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A quoted protobuf string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}

/// A custom option's value: a scalar literal, an enum value name or a `{ ... }` message.
fn value_text(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(n) => float_text(f64::from(*n)),
        Value::F64(n) => float_text(*n),
        Value::String(s) => quote(s),
        Value::Bytes(b) => {
            let mut out = String::from("\"");
            for &c in b.iter() {
                let _ = write!(out, "\\{c:03o}");
            }
            out.push('"');
            out
        }
        Value::EnumNumber(n) => n.to_string(),
        Value::Message(m) => format!("{{ {} }}", m.to_text_format()),
        Value::List(items) => {
            let parts: Vec<String> = items.iter().map(value_text).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Map(_) => "{}".to_string(),
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{f:?}")
    }
}

fn file_options(f: &FileDescriptorProto) -> Vec<Opt> {
    let mut out: Vec<Opt> = Vec::new();
    let Some(o) = &f.options else { return out };
    let s = |out: &mut Vec<Opt>, k: &str, v: &Option<String>| {
        if let Some(v) = v {
            out.push((k.to_string(), quote(v)));
        }
    };
    let b = |out: &mut Vec<Opt>, k: &str, v: Option<bool>| {
        if let Some(v) = v {
            out.push((k.to_string(), v.to_string()));
        }
    };
    s(&mut out, "java_package", &o.java_package);
    s(&mut out, "java_outer_classname", &o.java_outer_classname);
    if let Some(m) = o.optimize_for {
        let name = match m {
            2 => "CODE_SIZE",
            3 => "LITE_RUNTIME",
            _ => "SPEED",
        };
        out.push(("optimize_for".into(), name.into()));
    }
    b(&mut out, "java_multiple_files", o.java_multiple_files);
    s(&mut out, "go_package", &o.go_package);
    b(&mut out, "cc_generic_services", o.cc_generic_services);
    b(&mut out, "java_generic_services", o.java_generic_services);
    b(&mut out, "py_generic_services", o.py_generic_services);
    b(&mut out, "php_generic_services", o.php_generic_services);
    #[allow(deprecated)]
    b(
        &mut out,
        "java_generate_equals_and_hash",
        o.java_generate_equals_and_hash,
    );
    b(&mut out, "deprecated", o.deprecated);
    b(&mut out, "java_string_check_utf8", o.java_string_check_utf8);
    b(&mut out, "cc_enable_arenas", o.cc_enable_arenas);
    s(&mut out, "objc_class_prefix", &o.objc_class_prefix);
    s(&mut out, "csharp_namespace", &o.csharp_namespace);
    s(&mut out, "swift_prefix", &o.swift_prefix);
    s(&mut out, "php_class_prefix", &o.php_class_prefix);
    s(&mut out, "php_namespace", &o.php_namespace);
    s(
        &mut out,
        "php_metadata_namespace",
        &o.php_metadata_namespace,
    );
    s(&mut out, "ruby_package", &o.ruby_package);
    out
}

fn message_options(m: &DescriptorProto) -> Vec<Opt> {
    let mut out: Vec<Opt> = Vec::new();
    let Some(o) = &m.options else { return out };
    if let Some(v) = o.message_set_wire_format {
        out.push(("message_set_wire_format".into(), v.to_string()));
    }
    if let Some(v) = o.no_standard_descriptor_accessor {
        out.push(("no_standard_descriptor_accessor".into(), v.to_string()));
    }
    if let Some(v) = o.deprecated {
        out.push(("deprecated".into(), v.to_string()));
    }
    out
}
