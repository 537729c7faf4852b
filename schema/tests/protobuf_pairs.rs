//! Runs the compatibility table in `protobuf_pairs.json` through `ProtobufSchema::can_read`.

use millrace_schema::protobuf::ProtobufSchema;
use millrace_schema::Dependency;
use serde_json::Value;

fn refs(v: &Value) -> Vec<Dependency> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|d| Dependency {
                    name: d["name"].as_str().expect("reference name").to_string(),
                    schema: d["schema"].as_str().expect("reference schema").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compatibility_pairs() {
    let text = include_str!("protobuf_pairs.json");
    let table: Value = serde_json::from_str(text).expect("valid JSON");
    let pairs = table["pairs"].as_array().expect("pairs");
    assert!(pairs.len() >= 40, "at least 40 pairs");
    let mut failures = Vec::new();
    for p in pairs {
        let name = p["name"].as_str().expect("name");
        let reader = ProtobufSchema::parse(
            p["reader"].as_str().expect("reader"),
            &refs(&p["readerReferences"]),
        )
        .unwrap_or_else(|e| panic!("{name}: reader does not parse: {e}"));
        let writer = ProtobufSchema::parse(
            p["writer"].as_str().expect("writer"),
            &refs(&p["writerReferences"]),
        )
        .unwrap_or_else(|e| panic!("{name}: writer does not parse: {e}"));
        let errors = reader.can_read(&writer);
        let compatible = p["compatible"].as_bool().expect("compatible");
        if compatible != errors.is_empty() {
            failures.push(format!(
                "{name}: expected compatible={compatible}, got {errors:?}"
            ));
            continue;
        }
        if let Some(kind) = p["errorType"].as_str() {
            let needle = format!("{{errorType:'{kind}'");
            if !errors.iter().any(|e| e.starts_with(&needle)) {
                failures.push(format!("{name}: expected {kind}, got {errors:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn message_names_the_path_and_sides() {
    let writer = ProtobufSchema::parse(
        "syntax = \"proto3\";\nmessage Order {\n  int32 a = 1;\n  int32 b = 2;\n}\n",
        &[],
    )
    .unwrap();
    let reader = ProtobufSchema::parse(
        "syntax = \"proto3\";\nmessage Order {\n  int32 a = 1;\n  string b = 2;\n}\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        reader.can_read(&writer),
        vec!["{errorType:'FIELD_SCALAR_KIND_CHANGED', description:'The kind of a SCALAR field at path '#/Order/2' in the new schema does not match its kind in the old schema'}".to_string()]
    );
    let forward = writer.can_read_labeled(&reader, "old", "new");
    assert!(
        forward[0].contains("in the old schema does not match its kind in the new schema"),
        "{forward:?}"
    );
}

#[test]
fn cycles_through_references_end() {
    // Two messages in a reference that point at each other, changed between versions.
    let v1 = "syntax = \"proto3\";\npackage lib;\nmessage A {\n  B b = 1;\n  int32 n = 2;\n}\nmessage B {\n  A a = 1;\n}\n";
    let v2 = "syntax = \"proto3\";\npackage lib;\nmessage A {\n  B b = 1;\n  string n = 2;\n}\nmessage B {\n  A a = 1;\n}\n";
    let main = "syntax = \"proto3\";\nimport \"lib.proto\";\nmessage Root {\n  lib.A a = 1;\n  lib.B b = 2;\n}\n";
    let dep = |s: &str| {
        vec![Dependency {
            name: "lib.proto".into(),
            schema: s.into(),
        }]
    };
    let old = ProtobufSchema::parse(main, &dep(v1)).unwrap();
    let new = ProtobufSchema::parse(main, &dep(v2)).unwrap();
    let errors = new.can_read(&old);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("FIELD_SCALAR_KIND_CHANGED") && e.contains("'#/A/2'")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("FIELD_NAMED_TYPE_CHANGED") && e.contains("'#/Root/1'")),
        "{errors:?}"
    );
    assert!(new.can_read(&new).is_empty());
}
