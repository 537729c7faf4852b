//! A JSON tree that keeps the order in which an object's members were written, and a writer that
//! prints it the way Java Avro's `Schema.toString()` (through Jackson) does: compact, members
//! in order, Jackson's string escapes and Java's spelling of floating point numbers.
//!
//! Avro's canonical text keeps custom properties in the order the schema gave them, which
//! `serde_json::Value` (a sorted map without the `preserve_order` feature, which would change
//! every other crate of the workspace) cannot do.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::fmt;

/// One JSON value; objects keep their members in document order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    Arr(Vec<Json>),
    /// Members in document order. A key given twice keeps its first position and its last
    /// value, as Jackson's `ObjectNode` does.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses `text`; the error is serde_json's, which says where the text went wrong.
    pub(crate) fn parse(text: &str) -> Result<Json, String> {
        serde_json::from_str(text).map_err(|e| format!("Invalid JSON: {e}"))
    }

    /// The member `key` of an object (`None` for anything else).
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string value.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Writes the value compactly, members in their order.
    pub(crate) fn write(&self, out: &mut String) {
        self.write_with(out, false);
    }

    /// Writes the value compactly with every object's members sorted by key (for the
    /// normalized form, where custom properties are unordered).
    pub(crate) fn write_sorted(&self, out: &mut String) {
        self.write_with(out, true);
    }

    fn write_with(&self, out: &mut String, sorted: bool) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => write_number(n, out),
            Json::Str(s) => write_str(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_with(out, sorted);
                }
                out.push(']');
            }
            Json::Obj(members) => {
                let mut refs: Vec<&(String, Json)> = members.iter().collect();
                if sorted {
                    refs.sort_by(|a, b| a.0.cmp(&b.0));
                }
                out.push('{');
                for (i, (k, v)) in refs.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write_with(out, sorted);
                }
                out.push('}');
            }
        }
    }
}

/// Writes `s` as a JSON string with Jackson's escapes: `"` and `\`, the short forms for
/// backspace, tab, newline, form feed and carriage return, `\u00XX` (upper-case hex) for the
/// other control characters; everything else as is.
pub(crate) fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Integers as written; floating point numbers as Java's `Double.toString` spells them
/// (`1.0`, `0.001`, `1.0E7`, `1.5E-4`).
fn write_number(n: &Number, out: &mut String) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let Some(d) = n.as_f64() else {
        out.push_str(&n.to_string());
        return;
    };
    out.push_str(&java_double(d));
}

/// Java's `Double.toString` for a finite double: plain notation for magnitudes in
/// [10^-3, 10^7), computerized scientific notation (`1.0E10`) otherwise, always with a
/// fractional part.
pub(crate) fn java_double(d: f64) -> String {
    if !d.is_finite() {
        return if d.is_nan() {
            "NaN".into()
        } else if d > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let mag = d.abs();
    if d == 0.0 || (1e-3..1e7).contains(&mag) {
        let s = format!("{d}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{d:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Num(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Num(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        Number::from_f64(v)
            .map(Json::Num)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            match members.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => members.push((key, value)),
            }
        }
        Ok(Json::Obj(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(text: &str) -> String {
        let mut out = String::new();
        Json::parse(text).unwrap().write(&mut out);
        out
    }

    #[test]
    fn keeps_member_order_and_prints_compactly() {
        assert_eq!(
            round(r#"{ "b" : 1, "a" : [true, null] }"#),
            r#"{"b":1,"a":[true,null]}"#
        );
        assert_eq!(round(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn numbers_as_java_prints_them() {
        assert_eq!(
            round("[1, -2, 1.0, 1.50, 1e20, 0.0001, 12345678.0, 0.5]"),
            "[1,-2,1.0,1.5,1.0E20,1.0E-4,1.2345678E7,0.5]"
        );
    }

    #[test]
    fn strings_with_jackson_escapes() {
        assert_eq!(
            round(r#""a\"b\\c\n\u0001/é""#),
            "\"a\\\"b\\\\c\\n\\u0001/é\""
        );
    }
}
