//! JSON Schema rules: the compatibility table in `json_pairs.json` (also meant for the
//! registry's end-to-end test), parse errors, `$ref`s (internal and through references),
//! canonical forms, and a barrage of broken inputs that must never panic.

use millrace_schema::json::JsonSchema;
use millrace_schema::Dependency;

fn parse(text: &str) -> JsonSchema {
    JsonSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn error_type(message: &str) -> &str {
    let rest = message
        .strip_prefix("{errorType:'")
        .unwrap_or_else(|| panic!("not Confluent's form: {message}"));
    &rest[..rest.find('\'').unwrap_or(rest.len())]
}

#[test]
fn compatibility_table() {
    let table: serde_json::Value =
        serde_json::from_str(include_str!("json_pairs.json")).expect("json_pairs.json");
    let pairs = table.as_array().expect("an array of pairs");
    assert!(pairs.len() >= 50);
    let mut failures = Vec::new();
    for p in pairs {
        let name = p["name"].as_str().unwrap_or("?");
        let writer = parse(&p["writer"].to_string());
        let reader = parse(&p["reader"].to_string());
        let problems = reader.can_read(&writer);
        let want_ok = p["compatible"].as_bool().expect("compatible");
        if want_ok != problems.is_empty() {
            failures.push(format!(
                "{name}: expected compatible={want_ok}, got {problems:?}"
            ));
            continue;
        }
        if let Some(want) = p["errorType"].as_str() {
            if !problems.iter().any(|m| error_type(m) == want) {
                failures.push(format!("{name}: expected {want}, got {problems:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn message_form() {
    let writer = parse(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#);
    let reader =
        parse(r#"{"type":"object","properties":{"a":{"type":"string"},"bar":{"type":"string"}}}"#);
    assert_eq!(
        reader.can_read(&writer),
        vec![
            "{errorType:'OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL', description:'The new \
             schema has an open content model and has a property or item at path \
             '#/properties/bar' which is missing in the old schema'}"
                .to_string()
        ]
    );
    // The other direction drops a property from an open model: fine.
    assert!(writer.can_read(&reader).is_empty());
    let narrowed = parse(r#"{"type":"integer"}"#).can_read(&parse(r#"{"type":"number"}"#));
    assert_eq!(
        narrowed,
        vec![
            "{errorType:'TYPE_NARROWED', description:'A type at path '#/' is different between \
              the new schema and the old schema'}"
                .to_string()
        ]
    );
}

fn parse_err(text: &str) -> String {
    match JsonSchema::parse(text, &[]) {
        Ok(_) => panic!("{text} should not parse"),
        Err(e) => e,
    }
}

#[test]
fn parse_errors() {
    for (text, needle) in [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[]", "must be an object or a boolean"),
        ("\"string\"", "must be an object or a boolean"),
        ("12", "must be an object or a boolean"),
        (r#"{"type":"strin"}"#, "unknown type 'strin'"),
        (r#"{"type":["string",3]}"#, "type name must be a string"),
        (r#"{"type":[]}"#, "empty array"),
        (r#"{"type":["string","string"]}"#, "listed twice"),
        (
            r#"{"properties":[]}"#,
            "'properties' must be an object of schemas",
        ),
        (
            r#"{"properties":{"a":3}}"#,
            "#/properties/a: a schema must be",
        ),
        (r#"{"required":"a"}"#, "'required' must be an array"),
        (r#"{"required":[1]}"#, "property names"),
        (
            r#"{"items":3}"#,
            "'items' must be a schema or an array of schemas",
        ),
        (r#"{"prefixItems":{}}"#, "'prefixItems' must be an array"),
        (r#"{"maxLength":"5"}"#, "non-negative integer"),
        (r#"{"minItems":-1}"#, "non-negative integer"),
        (r#"{"maxProperties":1.5}"#, "non-negative integer"),
        (r#"{"minimum":"0"}"#, "'minimum' must be a number"),
        (r#"{"multipleOf":0}"#, "greater than 0"),
        (
            r#"{"exclusiveMaximum":"x"}"#,
            "'exclusiveMaximum' must be a number",
        ),
        (r#"{"uniqueItems":1}"#, "'uniqueItems' must be a boolean"),
        (r#"{"pattern":"(a"}"#, "invalid regular expression"),
        (r#"{"anyOf":[]}"#, "must not be empty"),
        (r#"{"oneOf":{}}"#, "non-empty array of schemas"),
        (r#"{"not":[]}"#, "'not' must be a schema"),
        (r#"{"enum":"a"}"#, "'enum' must be an array"),
        (r#"{"$ref":5}"#, "'$ref' must be a string"),
        (
            r##"{"$ref":"#/definitions/missing"}"##,
            "cannot resolve $ref",
        ),
        (
            r#"{"$ref":"other.json"}"#,
            "no reference named 'other.json'",
        ),
        (r##"{"$ref":"#nowhere"}"##, "no anchor 'nowhere'"),
        (r##"{"$ref":"#"}"##, "$ref cycle"),
        (
            r##"{"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}}}"##,
            "$ref cycle",
        ),
        (
            r#"{"definitions":{"a":{"type":"nope"}}}"#,
            "#/definitions/a/type",
        ),
        (
            r#"{"dependencies":{"a":3}}"#,
            "a dependency must be a schema or an array",
        ),
        (
            r#"{"additionalProperties":"no"}"#,
            "'additionalProperties' must be a schema",
        ),
    ] {
        let e = parse_err(text);
        assert!(e.contains(needle), "{text}: error {e:?} lacks {needle:?}");
    }
}

#[test]
fn valid_schemas_parse() {
    for text in [
        "true",
        "false",
        "{}",
        r#"{"$schema":"http://json-schema.org/draft-04/schema#","type":"number","maximum":3,"exclusiveMaximum":true}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"}],"items":false}"#,
        r#"{"type":"object","properties":{"a":true,"b":false},"x-unknown":{"whatever":1}}"#,
        r##"{"$defs":{"n":{"$anchor":"node","type":"object","properties":{"next":{"$ref":"#node"}}}},"$ref":"#/$defs/n"}"##,
        r##"{"definitions":{"a~b":{"type":"string"},"c/d":{"type":"string"},"e f":{"type":"string"}},"anyOf":[{"$ref":"#/definitions/a~0b"},{"$ref":"#/definitions/c~1d"},{"$ref":"#/definitions/e%20f"}]}"##,
        r#"{"if":{"required":["a"]},"then":{"required":["b"]},"else":{}}"#,
        r#"{"type":"object","dependentRequired":{"a":["b"]},"dependentSchemas":{"b":{"required":["c"]}}}"#,
    ] {
        parse(text);
    }
}

fn dep(name: &str, schema: &str) -> Dependency {
    Dependency {
        name: name.into(),
        schema: schema.into(),
    }
}

#[test]
fn external_references() {
    let address = dep(
        "address.json",
        r#"{"type":"object","properties":{"street":{"type":"string"}},"definitions":{"zip":{"type":"string","maxLength":10}}}"#,
    );
    let main = r#"{"type":"object","properties":{"home":{"$ref":"address.json"},"zip":{"$ref":"address.json#/definitions/zip"}}}"#;
    let with = JsonSchema::parse(main, std::slice::from_ref(&address)).expect("resolves");
    // Without the reference it does not.
    let e = JsonSchema::parse(main, &[]).unwrap_err();
    assert!(e.contains("address.json"), "{e}");
    // A bad fragment into a known reference.
    let e = JsonSchema::parse(
        r#"{"$ref":"address.json#/definitions/nope"}"#,
        std::slice::from_ref(&address),
    )
    .unwrap_err();
    assert!(e.contains("nothing at"), "{e}");
    // A reference resolved against the main schema's $id, and one named by its own $id.
    let by_url = dep(
        "https://example.com/schemas/address.json",
        r#"{"type":"object","properties":{"street":{"type":"string"}}}"#,
    );
    JsonSchema::parse(
        r#"{"$id":"https://example.com/schemas/customer.json","properties":{"a":{"$ref":"address.json"}}}"#,
        &[by_url],
    )
    .expect("relative ref against $id");
    // Transitive: a reference that itself refers to another.
    let street = dep("street.json", r#"{"type":"string"}"#);
    let addr2 = dep(
        "address2.json",
        r#"{"type":"object","properties":{"street":{"$ref":"street.json"}}}"#,
    );
    let deep =
        JsonSchema::parse(r#"{"$ref":"address2.json"}"#, &[street, addr2]).expect("transitive");

    // Compatibility follows the reference: street changed from string to number.
    let changed = dep(
        "address.json",
        r#"{"type":"object","properties":{"street":{"type":"number"}},"definitions":{"zip":{"type":"string","maxLength":10}}}"#,
    );
    let with_changed = JsonSchema::parse(main, &[changed]).expect("resolves");
    let problems = with_changed.can_read(&with);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("TYPE_CHANGED")
            && problems[0].contains("#/properties/home/properties/street")
    );
    assert!(with.can_read(&with).is_empty());
    assert!(deep.can_read(&deep).is_empty());
}

#[test]
fn internal_reference_cycles_compare() {
    let tree = r##"{"definitions":{"node":{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#/definitions/node"}},"v":{"type":"string"}}}},"$ref":"#/definitions/node"}"##;
    let tree2 = r##"{"definitions":{"node":{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#/definitions/node"}},"v":{"type":"string","maxLength":3}}}},"$ref":"#/definitions/node"}"##;
    let (a, b) = (parse(tree), parse(tree2));
    assert!(a.can_read(&a).is_empty());
    assert!(a.can_read(&b).is_empty(), "maxLength removed is compatible");
    let problems = b.can_read(&a);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("MAX_LENGTH_ADDED") && p.contains("#/properties/v/maxLength")),
        "{problems:?}"
    );
}

#[test]
fn canonical_forms() {
    let a = parse("{ \"type\" : \"object\",\n \"properties\": {\"b\": {\"type\": \"string\"}, \"a\": {\"maxLength\": 2.0, \"type\":\"string\"}},\n \"required\": [\"b\", \"a\"] }");
    assert_eq!(
        a.canonical(false),
        r#"{"type":"object","properties":{"b":{"type":"string"},"a":{"maxLength":2.0,"type":"string"}},"required":["b","a"]}"#
    );
    assert_eq!(
        a.canonical(true),
        r#"{"properties":{"a":{"maxLength":2.0,"type":"string"},"b":{"type":"string"}},"required":["b","a"],"type":"object"}"#
    );
    let b = parse(
        r#"{"required":["b","a"],"properties":{"a":{"type":"string","maxLength":2.0},"b":{"type":"string"}},"type":"object"}"#,
    );
    assert_ne!(a.canonical(false), b.canonical(false));
    assert_eq!(a.canonical(true), b.canonical(true));
    // Escapes survive, and the canonical text parses back to itself.
    let c =
        parse(r#"{"description":"quote \" tab \t unicode \u00e9 \ud83d\ude00","enum":["x\\y"]}"#);
    let again = parse(&c.canonical(false));
    assert_eq!(again.canonical(false), c.canonical(false));
    assert_eq!(parse("true").canonical(true), "true");
    assert_eq!(parse("{ }").canonical(false), "{}");
}

/// A tiny deterministic generator, so the barrage is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_never_panics() {
    let seeds = [
        r##"{"type":"object","properties":{"a":{"type":"string","maxLength":3},"b":{"$ref":"#/definitions/x"}},"required":["a"],"additionalProperties":false,"definitions":{"x":{"oneOf":[{"type":"integer"},{"type":"null"}]}}}"##,
        r##"{"type":"array","items":[{"type":"string"},{"enum":[1,2]}],"additionalItems":{"type":"number","multipleOf":0.5}}"##,
        r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[true,false],"items":{"not":{"const":3}},"$defs":{"r":{"$ref":"#"}}}"##,
        r##"{"allOf":[{"anyOf":[{"type":["string","null"]},{"minimum":1}]},{"patternProperties":{"^x":{}},"dependencies":{"a":["b"],"c":{"$ref":"#"}}}]}"##,
    ];
    let tokens = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\"type\"",
        "\"$ref\"",
        "\"#\"",
        "\"#/definitions/x\"",
        "\"properties\"",
        "\"items\"",
        "true",
        "false",
        "null",
        "-1",
        "1e999",
        "0.5",
        "\"oneOf\"",
        "\"not\"",
        "\"additionalProperties\"",
        "\"string\"",
        "\"\\u0000\"",
        "\"#/\"",
        "\"%\"",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut parsed: Vec<JsonSchema> = Vec::new();
    for round in 0..600 {
        let seed = seeds[round % seeds.len()];
        let mut bytes: Vec<u8> = seed.as_bytes().to_vec();
        for _ in 0..(1 + rng.below(4)) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(4) {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 => bytes
                    .splice(at..at, tokens[rng.below(tokens.len())].bytes())
                    .for_each(drop),
                2 if at < bytes.len() => {
                    let end = (at + rng.below(12)).min(bytes.len());
                    bytes.drain(at..end);
                }
                _ if at < bytes.len() => bytes[at] = (rng.next() & 0x7f) as u8,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(s) = JsonSchema::parse(&text, &[]) {
            let _ = s.canonical(true);
            parsed.push(s);
        }
    }
    for s in seeds {
        parsed.push(parse(s));
    }
    // Every pair of what parsed, both ways.
    for a in &parsed {
        for b in parsed.iter().take(60) {
            let _ = a.can_read(b);
            let _ = b.can_read(a);
        }
    }
    assert!(parsed.len() > 4, "some mutations should still parse");

    // Deep nesting is refused cleanly, not by overflowing the stack.
    let deep = format!("{}{}", r#"{"not":"#.repeat(2000), "}".repeat(2000));
    assert!(JsonSchema::parse(&deep, &[]).is_err());
    let deep_items = format!("{}{{}}{}", r#"{"items":"#.repeat(120), "}".repeat(120));
    let d = parse(&deep_items);
    assert!(d.can_read(&d).is_empty());
    // Long $ref chains through definitions.
    let mut defs = String::new();
    for i in 0..300 {
        defs.push_str(&format!(
            r##""d{i}":{{"$ref":"#/definitions/d{}"}},"##,
            i + 1
        ));
    }
    defs.push_str(r#""d300":{"type":"string"}"#);
    let chain = format!(r##"{{"definitions":{{{defs}}},"$ref":"#/definitions/d0"}}"##);
    match JsonSchema::parse(&chain, &[]) {
        Ok(s) => assert!(s.can_read(&s).is_empty()),
        Err(e) => assert!(e.contains("deep"), "{e}"),
    }
}

#[test]
fn combined_schemas_blow_up_gently() {
    // Wide unions of unions: every pairing is tried, but memoized.
    let leaf =
        |i: usize| format!(r#"{{"type":"object","properties":{{"k{i}":{{"type":"string"}}}}}}"#);
    let inner: Vec<String> = (0..12).map(leaf).collect();
    let union = format!(r#"{{"anyOf":[{}]}}"#, inner.join(","));
    let outer: Vec<String> = (0..12).map(|_| union.clone()).collect();
    let text = format!(r#"{{"oneOf":[{},{}]}}"#, outer.join(","), leaf(99));
    let s = parse(&text);
    assert!(s.can_read(&s).is_empty());
}

#[test]
fn recursive_schemas_of_different_periods() {
    // Two rings of definitions whose lengths share no factor: walking them side by side meets
    // hundreds of distinct pairs before one repeats.
    let ring = |n: usize| {
        let defs: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r##""n{i}":{{"type":"object","properties":{{"next":{{"$ref":"#/definitions/n{}"}},"v":{{"anyOf":[{{"type":"string"}},{{"$ref":"#/definitions/n{}"}}]}}}}}}"##,
                    (i + 1) % n,
                    (i + 2) % n
                )
            })
            .collect();
        parse(&format!(
            r##"{{"definitions":{{{}}},"$ref":"#/definitions/n0"}}"##,
            defs.join(",")
        ))
    };
    let (a, b) = (ring(7), ring(11));
    assert!(a.can_read(&b).is_empty());
    assert!(b.can_read(&a).is_empty());
}
