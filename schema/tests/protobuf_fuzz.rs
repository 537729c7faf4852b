//! Throws mutated and garbage input at the Protobuf parser and comparer: errors are fine,
//! panics are not, and whatever parses must print to text that parses again.

use base64::Engine;
use millrace_schema::protobuf::ProtobufSchema;
use millrace_schema::Dependency;
use prost_types::{DescriptorProto, FileDescriptorProto};

/// The descriptor without what legitimately differs between compilations: the file name
/// and protoc's computed JSON names; empty options are no options.
fn comparable(f: &FileDescriptorProto) -> FileDescriptorProto {
    fn clear(m: &mut DescriptorProto) {
        for f in m.field.iter_mut().chain(m.extension.iter_mut()) {
            f.json_name = None;
            // Options holding only an unknown extension print as nothing.
            if f.options == Some(Default::default()) {
                f.options = None;
            }
        }
        if m.options == Some(Default::default()) {
            m.options = None;
        }
        m.nested_type.iter_mut().for_each(clear);
    }
    let mut f = f.clone();
    f.name = None;
    f.message_type.iter_mut().for_each(clear);
    for e in &mut f.extension {
        e.json_name = None;
    }
    f
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const SEEDS: &[&str] = &[
    "syntax = \"proto3\";\npackage acme;\nimport \"google/protobuf/timestamp.proto\";\nmessage Order {\n  string id = 1;\n  map<string, int32> q = 2;\n  oneof o {\n    int64 a = 3;\n    Order b = 4;\n  }\n  google.protobuf.Timestamp at = 5;\n  enum E {\n    Z = 0;\n  }\n  E e = 6;\n  reserved 9 to 11;\n}\n",
    "syntax = \"proto2\";\nmessage A {\n  required int32 x = 1 [default = 3];\n  optional group G = 2 {\n    optional string s = 3;\n  }\n  extensions 10 to max;\n}\nextend A {\n  optional int32 e = 10;\n}\nservice S {\n  rpc M (A) returns (stream A);\n}\n",
    "syntax = \"proto3\";\nimport \"confluent/meta.proto\";\nmessage M {\n  option (confluent.message_meta) = { doc: \"x\" };\n  int32 a = 1 [(confluent.field_meta).tags = \"t\"];\n}\n",
];

const TOKENS: &[&str] = &[
    "message",
    "enum",
    "oneof",
    "map<",
    ">",
    "{",
    "}",
    ";",
    "=",
    "\"",
    "repeated",
    "optional",
    "required",
    "import",
    "package",
    ".",
    "[",
    "]",
    "(",
    ")",
    "0",
    "-1",
    "536870912",
    "19000",
    "option",
    "group",
    "stream",
    "extend",
    "reserved",
    "max",
    "to",
    "syntax = \"proto2\";",
    "\\",
    "\u{0}",
    "é",
    "/*",
    "//",
    "\n",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !s.is_empty() => {
                let i = rng.below(s.len());
                s.remove(i);
            }
            1 => {
                let i = rng.below(s.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                for (k, c) in t.chars().enumerate() {
                    s.insert(i + k, c);
                }
            }
            2 if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] = char::from(b' ' + (rng.below(95) as u8));
            }
            3 => {
                let i = rng.below(s.len() + 1);
                s.truncate(i);
            }
            _ if s.len() > 2 => {
                // Swap two spans' first characters: reorders tokens now and then.
                let (i, j) = (rng.below(s.len()), rng.below(s.len()));
                s.swap(i, j);
            }
            _ => {}
        }
    }
    s.into_iter().collect()
}

fn mutate_bytes(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(4) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b.remove(i);
            }
            2 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.next() as u8);
            }
            _ => {
                let i = rng.below(b.len() + 1);
                b.truncate(i);
            }
        }
    }
    b
}

fn exercise(text: &str, deps: &[Dependency], others: &[ProtobufSchema], parsed: &mut usize) {
    let s = match ProtobufSchema::parse(text, deps) {
        Ok(s) => s,
        Err(e) => {
            // The parser's last line of defence turns a compiler panic into this error.
            assert!(
                !e.contains("compiler failed"),
                "the compiler panicked on {text:?}"
            );
            return;
        }
    };
    *parsed += 1;
    for normalize in [false, true] {
        let printed = s.canonical(normalize);
        let again = match ProtobufSchema::parse(&printed, deps) {
            Ok(a) => a,
            Err(e) => panic!(
                "printed text does not parse again: {e}\ninput:\n{text}\nprinted:\n{printed}"
            ),
        };
        if !normalize {
            let (a, b) = (
                comparable(again.file_descriptor()),
                comparable(s.file_descriptor()),
            );
            assert!(
                a == b,
                "printing lost something\ninput:\n{text}\nprinted:\n{printed}\n{a:?}\n{b:?}"
            );
        }
    }
    let _ = s.serialized();
    for o in others {
        let _ = s.can_read(o);
        let _ = o.can_read(&s);
    }
    let _ = s.can_read(&s);
}

#[test]
fn mutated_and_garbage_input_never_panics() {
    let engine = base64::engine::general_purpose::STANDARD;
    let others: Vec<ProtobufSchema> = SEEDS
        .iter()
        .map(|s| ProtobufSchema::parse(s, &[]).unwrap())
        .collect();
    let serialized: Vec<Vec<u8>> = others
        .iter()
        .map(|s| engine.decode(s.serialized()).unwrap())
        .collect();
    // PROTOBUF_FUZZ_SEED picks another deterministic run.
    let seed = std::env::var("PROTOBUF_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut rng = Rng(seed.unwrap_or(0x9e37_79b9_7f4a_7c15));
    let mut parsed = 0;
    let mut tried = 0;
    for round in 0..1000 {
        let seed = SEEDS[round % SEEDS.len()];
        // Mutated source text.
        exercise(&mutate(&mut rng, seed), &[], &others, &mut parsed);
        // Mutated serialized descriptors, base64 encoded.
        let bytes = mutate_bytes(&mut rng, &serialized[round % serialized.len()]);
        exercise(&engine.encode(&bytes), &[], &others, &mut parsed);
        // Random bytes as base64, and random text.
        let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        exercise(&engine.encode(&junk), &[], &others, &mut parsed);
        let junk_text: String = (0..rng.below(40))
            .map(|_| TOKENS[rng.below(TOKENS.len())])
            .collect::<Vec<_>>()
            .join(" ");
        exercise(&junk_text, &[], &others, &mut parsed);
        // A mutated reference.
        let dep = Dependency {
            name: "dep.proto".into(),
            schema: mutate(&mut rng, SEEDS[0]),
        };
        exercise(
            "syntax = \"proto3\";\nimport \"dep.proto\";\nmessage X {\n  acme.Order o = 1;\n}\n",
            &[dep],
            &others,
            &mut parsed,
        );
        tried += 5;
    }
    for garbage in [
        "", "=", "====", "!!!!", "AAAA", "////", "Cg==", "CgA=", "\u{feff}", "syntax", "{}", "null",
    ] {
        exercise(garbage, &[], &others, &mut parsed);
        tried += 1;
    }
    eprintln!("tried {tried}, parsed {parsed}");
    assert!(tried >= 5000);
    assert!(parsed > 0, "some mutations are still valid schemas");
}
