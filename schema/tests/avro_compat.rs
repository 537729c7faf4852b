//! The Avro compatibility table (`avro_pairs.json`, checked against Python avro by
//! `avro_oracle.py`), parse errors, canonical forms, references, and garbage inputs.

use millrace_schema::avro::AvroSchema;
use millrace_schema::Dependency;
use serde_json::Value;

fn parse(text: &str) -> AvroSchema {
    AvroSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn canonical(text: &str) -> String {
    parse(text).canonical(false)
}

fn normalized(text: &str) -> String {
    parse(text).canonical(true)
}

fn error_types(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let rest = m.strip_prefix("{errorType:'").expect(m);
            rest[..rest.find('\'').expect(m)].to_string()
        })
        .collect()
}

#[test]
fn pairs_table() {
    let table: Vec<Value> =
        serde_json::from_str(include_str!("avro_pairs.json")).expect("avro_pairs.json");
    assert!(table.len() >= 40);
    let mut failures = Vec::new();
    for pair in &table {
        let name = pair["name"].as_str().unwrap();
        let reader = parse(&pair["reader"].to_string());
        let writer = parse(&pair["writer"].to_string());
        let problems = reader.can_read(&writer);
        let expected = pair["compatible"].as_bool().unwrap();
        if problems.is_empty() != expected {
            failures.push(format!(
                "{name}: expected compatible={expected}, got {problems:?}"
            ));
            continue;
        }
        if let Some(errors) = pair.get("errors") {
            let expected: Vec<String> = errors
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .collect();
            if error_types(&problems) != expected {
                failures.push(format!("{name}: expected {expected:?}, got {problems:?}"));
            }
        }
        // Every schema reads itself.
        assert!(
            reader.can_read(&reader).is_empty(),
            "{name}: reader vs itself"
        );
        assert!(
            writer.can_read(&writer).is_empty(),
            "{name}: writer vs itself"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn messages_in_confluent_form() {
    let old = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
    let new = parse(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#,
    );
    assert_eq!(
        new.can_read(&old),
        vec![
            "{errorType:'TYPE_MISMATCH', description:'The type (path '/fields/0/type') of a field in the new schema does not match with the old schema', additionalInfo:'reader type: STRING not compatible with writer type: INT'}",
            "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'b' at path '/fields/1' in the new schema has no default value and is missing in the old schema', additionalInfo:'b'}",
        ]
    );
    let e1 = parse(r#"{"type":"enum","name":"E","symbols":["A"]}"#);
    let e2 = parse(r#"{"type":"enum","name":"E","symbols":["C","A","B"]}"#);
    assert_eq!(
        e1.can_read(&e2),
        vec!["{errorType:'MISSING_ENUM_SYMBOLS', description:'The new schema is missing enum symbols '[B, C]' at path '/symbols' in the old schema', additionalInfo:'[B, C]'}"]
    );
    let u1 = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"]}]}"#);
    let u2 =
        parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","string"]}]}"#);
    assert_eq!(
        u1.can_read(&u2),
        vec!["{errorType:'MISSING_UNION_BRANCH', description:'The new schema is missing a type inside a union field at path '/fields/0/type/1' in the old schema', additionalInfo:'reader union lacking writer type: STRING'}"]
    );
    let f1 = parse(r#"{"type":"fixed","name":"F","size":4}"#);
    let f2 = parse(r#"{"type":"fixed","name":"G","size":8}"#);
    assert_eq!(
        f1.can_read(&f2),
        vec![
            "{errorType:'NAME_MISMATCH', description:'The name of the schema has changed (path '/name')', additionalInfo:'expected: G'}",
            "{errorType:'FIXED_SIZE_MISMATCH', description:'The size of FIXED type field at path '/size' in the new schema does not match with the old schema', additionalInfo:'expected: 8, found: 4'}",
        ]
    );
}

#[test]
fn canonical_ignores_layout_and_attribute_order() {
    let a = r#"{"type":"record","name":"R","namespace":"com.acme","doc":"d","fields":[{"name":"a","type":"int","doc":"x","default":1}]}"#;
    let b = r#"{
        "fields": [ { "default": 1, "doc": "x", "type": { "type": "int" }, "name": "a" } ],
        "doc": "d",
        "namespace": "com.acme",
        "name": "R",
        "type": "record"
    }"#;
    assert_eq!(canonical(a), a);
    assert_eq!(canonical(b), a);
    assert_eq!(normalized(a), normalized(b));
}

#[test]
fn canonical_primitives() {
    for p in [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ] {
        assert_eq!(canonical(&format!("\"{p}\"")), format!("\"{p}\""));
        assert_eq!(
            canonical(&format!("{{ \"type\" : \"{p}\" }}")),
            format!("\"{p}\"")
        );
        assert_eq!(
            normalized(&format!("{{\"type\":\"{p}\"}}")),
            format!("\"{p}\"")
        );
    }
    // Properties keep the object form.
    assert_eq!(
        canonical(r#"{"type":"string","avro.java.string":"String"}"#),
        r#"{"type":"string","avro.java.string":"String"}"#
    );
}

#[test]
fn canonical_logical_types_keep_their_attributes() {
    assert_eq!(
        canonical(r#"{ "logicalType": "timestamp-millis", "type": "long" }"#),
        r#"{"type":"long","logicalType":"timestamp-millis"}"#
    );
    assert_eq!(
        canonical(r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#),
        r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#
    );
    assert_eq!(
        canonical(
            r#"{"name":"D","size":8,"type":"fixed","scale":2,"precision":10,"logicalType":"decimal"}"#
        ),
        r#"{"type":"fixed","name":"D","size":8,"scale":2,"precision":10,"logicalType":"decimal"}"#
    );
    // Unknown logical types are kept as properties too.
    assert_eq!(
        canonical(r#"{"type":"string","logicalType":"iso-8601"}"#),
        r#"{"type":"string","logicalType":"iso-8601"}"#
    );
}

#[test]
fn canonical_namespaces_as_java_writes_them() {
    // A dotted name is split; nested types inherit the namespace and are written without it;
    // a reference is written relative to the enclosing namespace.
    let text = r#"{"type":"record","name":"com.acme.Order","fields":[
        {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","DONE"]}},
        {"name":"previous","type":["null","Status"],"default":null},
        {"name":"money","type":{"type":"record","name":"Money","namespace":"com.fin","fields":[
            {"name":"cur","type":{"type":"fixed","name":"Cur","size":3}},
            {"name":"s","type":"com.acme.Status"}]}},
        {"name":"other","type":"com.fin.Cur"},
        {"name":"plain","type":{"type":"record","name":"Plain","namespace":"","fields":[]}}
    ]}"#;
    assert_eq!(
        canonical(text),
        concat!(
            r#"{"type":"record","name":"Order","namespace":"com.acme","fields":["#,
            r#"{"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","DONE"]}},"#,
            r#"{"name":"previous","type":["null","Status"],"default":null},"#,
            r#"{"name":"money","type":{"type":"record","name":"Money","namespace":"com.fin","fields":["#,
            r#"{"name":"cur","type":{"type":"fixed","name":"Cur","size":3}},"#,
            r#"{"name":"s","type":"com.acme.Status"}]}},"#,
            r#"{"name":"other","type":"com.fin.Cur"},"#,
            r#"{"name":"plain","type":{"type":"record","name":"Plain","namespace":"","fields":[]}}]}"#
        )
    );
    assert_eq!(
        normalized(text),
        concat!(
            r#"{"type":"record","name":"com.acme.Order","fields":["#,
            r#"{"name":"status","type":{"type":"enum","name":"com.acme.Status","symbols":["NEW","DONE"]}},"#,
            r#"{"name":"previous","type":["null","com.acme.Status"],"default":null},"#,
            r#"{"name":"money","type":{"type":"record","name":"com.fin.Money","fields":["#,
            r#"{"name":"cur","type":{"type":"fixed","name":"com.fin.Cur","size":3}},"#,
            r#"{"name":"s","type":"com.acme.Status"}]}},"#,
            r#"{"name":"other","type":"com.fin.Cur"},"#,
            r#"{"name":"plain","type":{"type":"record","name":"Plain","namespace":"","fields":[]}}]}"#
        )
    );
    // Both forms read back as the same schema.
    for form in [canonical(text), normalized(text)] {
        assert_eq!(canonical(&form), canonical(text));
        assert_eq!(normalized(&form), normalized(text));
    }
}

#[test]
fn normalized_form_equates_ways_of_writing_names_and_properties() {
    let a = r#"{"type":"record","name":"R","namespace":"com.acme","x-b":1,"x-a":{"q":1,"p":2},"fields":[
        {"name":"self","type":["null","R"],"default":null}]}"#;
    let b = r#"{"type":"record","name":"com.acme.R","x-a":{"p":2,"q":1},"x-b":1,"fields":[
        {"name":"self","type":["null","com.acme.R"],"default":null}]}"#;
    assert_ne!(canonical(a), canonical(b));
    assert_eq!(normalized(a), normalized(b));
    assert_eq!(
        normalized(a),
        r#"{"type":"record","name":"com.acme.R","fields":[{"name":"self","type":["null","com.acme.R"],"default":null}],"x-a":{"p":2,"q":1},"x-b":1}"#
    );
}

#[test]
fn canonical_field_attributes_in_java_order() {
    let text = r#"{"type":"record","name":"R","aliases":["Old","x.Older","Old"],"custom":true,"fields":[
        {"x-prop":"v","aliases":["b","b"],"order":"DESCENDING","default":"s","doc":"the a","type":"string","name":"a"},
        {"name":"c","type":"long","order":"ascending","logicalType":"timestamp-millis"}]}"#;
    assert_eq!(
        canonical(text),
        concat!(
            r#"{"type":"record","name":"R","fields":["#,
            r#"{"name":"a","type":"string","doc":"the a","default":"s","order":"descending","aliases":["b"],"x-prop":"v"},"#,
            r#"{"name":"c","type":"long","logicalType":"timestamp-millis"}],"#,
            r#""custom":true,"aliases":["Old","x.Older"]}"#
        )
    );
    assert_eq!(
        canonical(
            r#"{"type":"enum","name":"E","aliases":["F"],"symbols":["A","B"],"default":"A","doc":"e","p":1}"#
        ),
        r#"{"type":"enum","name":"E","doc":"e","symbols":["A","B"],"default":"A","p":1,"aliases":["F"]}"#
    );
    assert_eq!(
        canonical(r#"{"type":"map","values":{"type":"array","items":"int","p":[1]},"q":"r"}"#),
        r#"{"type":"map","values":{"type":"array","items":"int","p":[1]},"q":"r"}"#
    );
}

#[test]
fn canonical_defaults_as_written() {
    assert_eq!(
        canonical(
            r#"{"type":"record","name":"R","fields":[
            {"name":"d","type":"double","default":1.50},
            {"name":"i","type":"double","default":2},
            {"name":"m","type":{"type":"map","values":"int"},"default":{"b":1,"a":2}},
            {"name":"s","type":"string","default":"\u00e9\n\"q\""}]}"#
        ),
        concat!(
            r#"{"type":"record","name":"R","fields":[{"name":"d","type":"double","default":1.5},"#,
            r#"{"name":"i","type":"double","default":2},"#,
            r#"{"name":"m","type":{"type":"map","values":"int"},"default":{"b":1,"a":2}},"#,
            "{\"name\":\"s\",\"type\":\"string\",\"default\":\"\u{e9}\\n\\\"q\\\"\"}]}"
        )
    );
}

fn dep(name: &str, schema: &str) -> Dependency {
    Dependency {
        name: name.into(),
        schema: schema.into(),
    }
}

#[test]
fn references_are_used_by_name() {
    let country = dep(
        "com.acme.Country",
        r#"{"type":"enum","name":"Country","namespace":"com.acme","symbols":["FR","DE"]}"#,
    );
    let address = dep(
        "com.acme.Address",
        r#"{"type":"record","name":"com.acme.Address","fields":[{"name":"street","type":"string"},{"name":"country","type":"Country"}]}"#,
    );
    let deps = [country, address];
    let main = r#"{"type":"record","name":"Customer","namespace":"com.acme","fields":[
        {"name":"home","type":"Address"},
        {"name":"work","type":["null","com.acme.Address"],"default":null}]}"#;
    let s = AvroSchema::parse(main, &deps).unwrap();
    assert_eq!(
        s.canonical(false),
        r#"{"type":"record","name":"Customer","namespace":"com.acme","fields":[{"name":"home","type":"Address"},{"name":"work","type":["null","Address"],"default":null}]}"#
    );
    assert_eq!(
        s.canonical(true),
        r#"{"type":"record","name":"com.acme.Customer","fields":[{"name":"home","type":"com.acme.Address"},{"name":"work","type":["null","com.acme.Address"],"default":null}]}"#
    );
    // From another namespace the reference is written in full.
    let other = AvroSchema::parse(
        r#"{"type":"record","name":"x.Y","fields":[{"name":"a","type":"com.acme.Address"}]}"#,
        &deps,
    )
    .unwrap();
    assert_eq!(
        other.canonical(false),
        r#"{"type":"record","name":"Y","namespace":"x","fields":[{"name":"a","type":"com.acme.Address"}]}"#
    );
    // The main schema may be just the referenced type; repeated references are one.
    let bare = AvroSchema::parse(
        r#""com.acme.Address""#,
        &[deps[0].clone(), deps[1].clone(), deps[1].clone()],
    )
    .unwrap();
    assert_eq!(bare.canonical(false), r#""com.acme.Address""#);
    // Without the reference the name is unknown.
    assert!(AvroSchema::parse(main, &[]).is_err());
    assert!(AvroSchema::parse(main, &deps[..1]).is_err());

    // Compatibility looks through references: a referenced enum losing a symbol is seen.
    let country2 = dep(
        "com.acme.Country",
        r#"{"type":"enum","name":"Country","namespace":"com.acme","symbols":["FR"]}"#,
    );
    let deps2 = [country2, deps[1].clone()];
    let s2 = AvroSchema::parse(main, &deps2).unwrap();
    assert!(s.can_read(&s2).is_empty());
    assert_eq!(
        error_types(&s2.can_read(&s)),
        vec!["MISSING_ENUM_SYMBOLS", "MISSING_UNION_BRANCH"]
    );
    // An invalid reference is reported as such.
    let err = AvroSchema::parse(main, &[dep("com.acme.Address", "{not json")]).unwrap_err();
    assert!(err.contains("com.acme.Address"), "{err}");
}

#[test]
fn parse_rejects_invalid_schemas() {
    let cases = [
        ("{\"type\":", "bad JSON"),
        ("", "empty"),
        ("42", "a number"),
        ("\"strin\"", "unknown primitive"),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}"#,
            "unknown type name",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"long"}]}"#,
            "duplicate field",
        ),
        (
            r#"{"type":"record","name":"1R","fields":[]}"#,
            "invalid name",
        ),
        (
            r#"{"type":"record","name":"R","namespace":"a..b","fields":[]}"#,
            "invalid namespace",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a-b","type":"int"}]}"#,
            "invalid field name",
        ),
        (r#"{"type":"record","name":"R"}"#, "record without fields"),
        (
            r#"{"type":"record","name":"R","fields":[1]}"#,
            "field not an object",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a"}]}"#,
            "field without type",
        ),
        (r#"{"type":"record","fields":[]}"#, "record without name"),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}"#,
            "string default for int",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":1.5}]}"#,
            "fractional default for int",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":3000000000}]}"#,
            "int default out of range",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string","default":null}]}"#,
            "null default for string",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"],"default":"x"}]}"#,
            "union default of no branch",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"int"},"default":["x"]}]}"#,
            "array default item",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]},"default":"B"}]}"#,
            "enum field default not a symbol",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"n","type":{"type":"record","name":"N","fields":[{"name":"x","type":"int"}]},"default":{}}]}"#,
            "record default lacking a field",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","order":"sideways"}]}"#,
            "bad order",
        ),
        (
            r#"{"type":"enum","name":"E","symbols":["A","A"]}"#,
            "duplicate symbols",
        ),
        (
            r#"{"type":"enum","name":"E","symbols":["A"],"default":"B"}"#,
            "enum default not a symbol",
        ),
        (
            r#"{"type":"enum","name":"E","symbols":["1A"]}"#,
            "invalid symbol",
        ),
        (r#"{"type":"enum","name":"E"}"#, "enum without symbols"),
        (r#"{"type":"fixed","name":"F"}"#, "fixed without size"),
        (r#"{"type":"fixed","name":"F","size":-1}"#, "negative size"),
        (r#"{"type":"array"}"#, "array without items"),
        (r#"{"type":"map"}"#, "map without values"),
        (r#"["int","int"]"#, "duplicate union branch"),
        (r#"["null",["int","string"]]"#, "nested union"),
        (
            r#"{"type":{"type":"string"}}"#,
            "type object in schema object",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"enum","name":"R","symbols":["A"]}}]}"#,
            "redefined name",
        ),
        (
            r#"{"type":"record","name":"R","aliases":["Old"],"fields":[{"name":"a","type":["null","Old"]}]}"#,
            "reference by alias",
        ),
        (
            r#"{"type":"record","name":"int","fields":[]}"#,
            "primitive name",
        ),
        (
            r#"{"type":"error","name":"Oops","fields":[]}"#,
            "protocol error type",
        ),
    ];
    for (text, what) in cases {
        match AvroSchema::parse(text, &[]) {
            Ok(s) => panic!("{what}: accepted {text} as {}", s.canonical(false)),
            Err(e) => assert!(!e.is_empty(), "{what}: empty error"),
        }
    }
}

#[test]
fn parse_accepts_valid_defaults() {
    let ok = [
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"],"default":null}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":["int","null"],"default":1}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"],"default":1}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long","default":9007199254740993}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"float","default":1}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"bytes","default":"\u00ff"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"fixed","name":"F","size":2},"default":"ab"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"map","values":"long"},"default":{"x":1}}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"n","type":{"type":"record","name":"N","fields":[{"name":"x","type":"int","default":0}]},"default":{}}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"},"default":0}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"d","type":"double","default":"NaN"}]}"#,
        // A bare name falls back to the null namespace, as in Java.
        r#"{"type":"record","name":"a.R","fields":[{"name":"x","type":{"type":"record","name":"Top","namespace":"","fields":[]}},{"name":"y","type":"Top"}]}"#,
    ];
    for text in ok {
        AvroSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

/// A small deterministic generator, so the garbage test needs no dependency and repeats.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_never_panics() {
    let seeds = [
        r#"{"type":"record","name":"com.acme.R","aliases":["Q"],"fields":[{"name":"a","type":"int","default":1},{"name":"b","type":["null",{"type":"enum","name":"E","symbols":["X","Y"],"default":"X"}],"default":null},{"name":"c","type":{"type":"array","items":{"type":"map","values":"R"}}},{"name":"d","type":{"type":"fixed","name":"F","size":4,"logicalType":"decimal","precision":4,"scale":1}}]}"#,
        r#"["null","string",{"type":"long","logicalType":"timestamp-millis"},{"type":"record","name":"LL","fields":[{"name":"next","type":["null","LL"]}]}]"#,
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
        r#"{"type":"map","values":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}}"#,
    ];
    let tokens = [
        "\"",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "null",
        "\"type\"",
        "\"record\"",
        "\"name\"",
        "\"fields\"",
        "\"R\"",
        "\"LL\"",
        "\"default\"",
        "-1",
        "1e999",
        "\"\\u0000\"",
        "\"union\"",
        "\"fixed\"",
        "\"size\"",
        "\"aliases\"",
        "\"logicalType\"",
        "\"decimal\"",
        "\"precision\"",
        "99999999999999999999",
        "\"uuid\"",
        "\"enum\"",
        "\"symbols\"",
        "\"E\"",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut parsed: Vec<AvroSchema> = seeds.iter().map(|s| parse(s)).collect();
    let mut accepted = 0;
    for round in 0..600 {
        let mut text = seeds[round % seeds.len()].to_string();
        for _ in 0..1 + rng.below(4) {
            let mut boundaries: Vec<usize> = (0..=text.len())
                .filter(|i| text.is_char_boundary(*i))
                .collect();
            boundaries.dedup();
            let at = boundaries[rng.below(boundaries.len())];
            match rng.below(4) {
                0 => text.insert_str(at, tokens[rng.below(tokens.len())]),
                1 => {
                    let end = boundaries
                        .iter()
                        .copied()
                        .find(|b| *b > at + rng.below(12))
                        .unwrap_or(text.len());
                    text.replace_range(at..end, "");
                }
                2 => {
                    let end = boundaries
                        .iter()
                        .copied()
                        .find(|b| *b > at)
                        .unwrap_or(text.len());
                    text.replace_range(at..end, tokens[rng.below(tokens.len())]);
                }
                _ => {
                    let cut = rng.below(text.len() + 1);
                    let cut = boundaries
                        .iter()
                        .copied()
                        .find(|b| *b >= cut)
                        .unwrap_or(text.len());
                    text.truncate(cut);
                }
            }
        }
        if let Ok(s) = AvroSchema::parse(&text, &[]) {
            accepted += 1;
            let _ = s.canonical(false);
            let _ = s.canonical(true);
            // A schema's canonical text parses to the same canonical text.
            let again = AvroSchema::parse(&s.canonical(false), &[])
                .unwrap_or_else(|e| panic!("canonical of {text} does not parse: {e}"));
            assert_eq!(again.canonical(false), s.canonical(false), "{text}");
            for other in &parsed {
                let _ = s.can_read(other);
                let _ = other.can_read(&s);
            }
            if parsed.len() < 40 {
                parsed.push(s);
            }
        }
        // Garbage as a reference too.
        let _ = AvroSchema::parse(
            seeds[0],
            &[Dependency {
                name: "x".into(),
                schema: text,
            }],
        );
    }
    eprintln!("{accepted} of 600 mutated schemas parsed");
    assert!(
        accepted > 0,
        "no mutation parsed; the test exercises only rejection"
    );
}

/// Valid-JSON mutations (one quoted word swapped for another), so that many variants parse
/// and the checker is exercised on many pairs: no panic, every schema reads itself, and the
/// canonical text is stable.
#[test]
fn word_swaps_exercise_the_checker() {
    let seeds = [
        r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"int","default":1},{"name":"b","type":["null","string",{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}],"default":null},{"name":"c","type":{"type":"array","items":{"type":"map","values":"long"}}},{"name":"d","type":{"type":"fixed","name":"F","size":4}},{"name":"e","type":["null","R"],"default":null}]}"#,
        r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"long"},{"name":"b","type":["null","bytes",{"type":"enum","name":"E","symbols":["A","C"]}]},{"name":"c","type":{"type":"array","items":{"type":"map","values":"double"}}},{"name":"d","type":{"type":"fixed","name":"F","size":8}}]}"#,
        r#"["null","int",{"type":"record","name":"LL","fields":[{"name":"v","type":"string"},{"name":"next","type":["null","LL"],"default":null}]}]"#,
    ];
    let words = [
        "int", "long", "float", "double", "string", "bytes", "null", "boolean", "A", "B", "C", "R",
        "E", "F", "LL", "a", "b", "x", "n", "m",
    ];
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut schemas: Vec<AvroSchema> = seeds.iter().map(|s| parse(s)).collect();
    for round in 0..600 {
        let mut text = seeds[round % seeds.len()].to_string();
        for _ in 0..1 + rng.below(2) {
            let quotes: Vec<usize> = text.match_indices('"').map(|(i, _)| i).collect();
            let pairs: Vec<(usize, usize)> = quotes.chunks(2).map(|c| (c[0], c[1])).collect();
            let (start, end) = pairs[rng.below(pairs.len())];
            text.replace_range(start + 1..end, words[rng.below(words.len())]);
        }
        if let Ok(s) = AvroSchema::parse(&text, &[]) {
            assert!(
                s.can_read(&s).is_empty(),
                "{text} cannot read itself: {:?}",
                s.can_read(&s)
            );
            let again = AvroSchema::parse(&s.canonical(false), &[]).unwrap();
            assert_eq!(again.canonical(false), s.canonical(false));
            assert_eq!(again.canonical(true), s.canonical(true));
            // The normalized text is a schema too, and its own normalized form.
            let norm = AvroSchema::parse(&s.canonical(true), &[]).unwrap();
            assert_eq!(norm.canonical(true), s.canonical(true));
            schemas.push(s);
        }
    }
    assert!(
        schemas.len() > 100,
        "only {} variants parsed",
        schemas.len()
    );
    for (i, r) in schemas.iter().enumerate() {
        for w in schemas.iter().skip(i % 7).step_by(7) {
            let _ = r.can_read(w);
        }
    }
}

#[test]
fn deep_nesting_is_handled() {
    // Deeper than the JSON parser's limit: an error, not a stack overflow.
    let deep = format!("{}\"int\"{}", "[".repeat(5000), "]".repeat(5000));
    assert!(AvroSchema::parse(&deep, &[]).is_err());
    let deep_obj = format!(
        "{}\"int\"{}",
        r#"{"type":"array","items":"#.repeat(3000),
        "}".repeat(3000)
    );
    assert!(AvroSchema::parse(&deep_obj, &[]).is_err());
    // As deep as the parser allows: parses, prints and compares.
    let nest = |leaf: &str| {
        format!(
            "{}\"{leaf}\"{}",
            r#"{"type":"array","items":"#.repeat(100),
            "}".repeat(100)
        )
    };
    let longs = parse(&nest("long"));
    let ints = parse(&nest("int"));
    assert!(longs.can_read(&ints).is_empty());
    let problems = ints.can_read(&longs);
    assert_eq!(error_types(&problems), vec!["TYPE_MISMATCH"]);
    assert!(
        problems[0].contains(&"/items".repeat(100)),
        "{}",
        problems[0]
    );
    assert_eq!(
        parse(&longs.canonical(false)).canonical(false),
        longs.canonical(false)
    );
}

#[test]
fn bare_names_resolve_like_java_in_the_checker() {
    // `Top` is in no namespace; inside namespace `a` the bare reference still finds it.
    let with = |fields: &str| {
        parse(&format!(
            r#"{{"type":"record","name":"a.R","fields":[{{"name":"x","type":{{"type":"record","name":"Top","namespace":"","fields":[{fields}]}}}},{{"name":"y","type":"Top"}}]}}"#
        ))
    };
    let old = with("");
    let new = with(r#"{"name":"z","type":"int"}"#);
    let newer = with(r#"{"name":"z","type":"int","default":0}"#);
    assert!(old.can_read(&new).is_empty());
    assert!(newer.can_read(&old).is_empty());
    let problems = new.can_read(&old);
    assert!(!problems.is_empty());
    assert!(
        error_types(&problems)
            .iter()
            .all(|t| t == "READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{problems:?}"
    );
    assert_eq!(
        new.canonical(false),
        r#"{"type":"record","name":"R","namespace":"a","fields":[{"name":"x","type":{"type":"record","name":"Top","namespace":"","fields":[{"name":"z","type":"int"}]}},{"name":"y","type":"Top"}]}"#
    );
}
