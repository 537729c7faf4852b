//! Field default values must be values of the field's type (Confluent's registry validates
//! them, as Java Avro's parser does when asked to). The rules are the specification's table of
//! default values, with the Avro 1.12 reading for unions: the default may be a value of any of
//! the union's branches (earlier specifications asked for the first one).

use super::model::{view, Names, View};
use apache_avro::schema::Schema;
use serde_json::Value;

/// Checks the default of every field of every record defined in `s`.
pub(crate) fn check_defaults(s: &Schema, names: &Names) -> Result<(), String> {
    match s {
        Schema::Record(r) => {
            for f in &r.fields {
                if let Some(default) = &f.default {
                    if !valid(&f.schema, default, names, 0) {
                        return Err(format!(
                            "Invalid default for field {} of {}: {} is not a valid value of its type",
                            f.name,
                            r.name.fullname(None),
                            default
                        ));
                    }
                }
                check_defaults(&f.schema, names)?;
            }
            Ok(())
        }
        Schema::Array(a) => check_defaults(&a.items, names),
        Schema::Map(m) => check_defaults(&m.types, names),
        Schema::Union(u) => u
            .variants()
            .iter()
            .try_for_each(|v| check_defaults(v, names)),
        _ => Ok(()),
    }
}

/// Whether `v` is a value of `s` as the specification's table of default values writes it.
fn valid(s: &Schema, v: &Value, names: &Names, depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    match view(s, names) {
        View::Null => v.is_null(),
        View::Boolean => v.is_boolean(),
        View::Int => v.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        View::Long => v.is_i64() || v.is_u64() && v.as_u64().is_some_and(|u| u <= i64::MAX as u64),
        // Java also takes the texts it writes for the non-finite values.
        View::Float | View::Double => {
            v.is_number() || matches!(v.as_str(), Some("NaN" | "Infinity" | "-Infinity"))
        }
        View::Bytes | View::String => v.is_string(),
        View::Fixed(_) => v.is_string(),
        View::Enum(e) => v.as_str().is_some_and(|s| e.symbols.iter().any(|x| x == s)),
        View::Array(items) => v
            .as_array()
            .is_some_and(|a| a.iter().all(|x| valid(items, x, names, depth + 1))),
        View::Map(values) => v
            .as_object()
            .is_some_and(|m| m.values().all(|x| valid(values, x, names, depth + 1))),
        View::Union(branches) => branches.iter().any(|b| valid(b, v, names, depth + 1)),
        View::Record(r) => v.as_object().is_some_and(|m| {
            r.fields.iter().all(|f| match m.get(&f.name) {
                Some(x) => valid(&f.schema, x, names, depth + 1),
                None => f.default.is_some(),
            })
        }),
        View::Unknown => false,
    }
}
