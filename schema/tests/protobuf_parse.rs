//! Parsing, printing and serializing Protobuf schemas.

use base64::Engine;
use millrace_schema::protobuf::ProtobufSchema;
use millrace_schema::Dependency;
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto};

/// `user.proto` compiled by protoc (grpcio-tools) and registered the way confluent-kafka's
/// Python serializer does: `base64.standard_b64encode(DESCRIPTOR.serialized_pb)`.
const USER_B64: &str = "Cgp1c2VyLnByb3RvEgphY21lLnVzZXJzGh9nb29nbGUvcHJvdG9idWYvdGltZXN0YW1wLnByb3RvItwCCgRVc2VyEgwKBG5hbWUYASABKAkSCgoCaWQYAiABKAMSDgoGZW1haWxzGAMgAygJEiwKBnNjb3JlcxgEIAMoCzIcLmFjbWUudXNlcnMuVXNlci5TY29yZXNFbnRyeRIrCgdjcmVhdGVkGAUgASgLMhouZ29vZ2xlLnByb3RvYnVmLlRpbWVzdGFtcBIPCgVwaG9uZRgGIAEoCUgAEg0KA2ZheBgHIAEoCUgAEhAKA2FnZRgIIAEoBUgBiAEBEicKBnN0YXR1cxgJIAEoDjIXLmFjbWUudXNlcnMuVXNlci5TdGF0dXMaLQoLU2NvcmVzRW50cnkSCwoDa2V5GAEgASgJEg0KBXZhbHVlGAIgASgFOgI4ASIhCgZTdGF0dXMSCwoHVU5LTk9XThAAEgoKBkFDVElWRRABQgkKB2NvbnRhY3RCBgoEX2FnZUoECBQQFUoECB4QKVIDb2xkQhwKDmNvbS5hY21lLnVzZXJzWgphY21lL3VzZXJzYgZwcm90bzM=";

/// The source `USER_B64` was compiled from.
const USER_PROTO: &str = r#"syntax = "proto3";
package acme.users;

import "google/protobuf/timestamp.proto";

option java_package = "com.acme.users";
option go_package = "acme/users";

message User {
  string name = 1;
  int64 id = 2;
  repeated string emails = 3;
  map<string, int32> scores = 4;
  google.protobuf.Timestamp created = 5;
  oneof contact {
    string phone = 6;
    string fax = 7;
  }
  optional int32 age = 8;
  Status status = 9;
  enum Status {
    UNKNOWN = 0;
    ACTIVE = 1;
  }
  reserved 20, 30 to 40;
  reserved "old";
}
"#;

const PROTO2: &str = r#"
// A proto2 file using most of what the printer knows.
syntax = "proto2";
package shop.v1;

import "google/protobuf/descriptor.proto";
import "confluent/meta.proto";

option java_package = "com.shop.v1";
option java_outer_classname = "ShopProto";
option java_multiple_files = true;
option optimize_for = CODE_SIZE;
option (confluent.file_meta) = { doc: "shop file" };

message Item {
  option deprecated = true;
  option (confluent.message_meta).doc = "an item";
  required string sku = 1 [(confluent.field_meta) = { doc: "stock keeping unit", tags: ["PII"] }];
  optional int32 count = 2 [default = 1];
  optional string label = 3 [default = "none \"yet\"\n"];
  optional double price = 4 [default = -inf];
  optional Kind kind = 5 [default = BOOK];
  repeated int32 codes = 6 [packed = true];
  repeated sint64 deltas = 7 [packed = false, deprecated = true];
  optional bytes blob = 8 [default = "\001\377"];
  optional string display = 9 [json_name = "displayName"];
  optional group Extra = 10 {
    optional string text = 11;
  }
  map<string, Item> children = 12;
  oneof choice {
    string a = 13;
    int64 b = 14;
  }
  extensions 100 to 199, 500 to max;
  reserved 20 to 25, 30;
  reserved "gone", "old";
  enum Kind {
    option allow_alias = true;
    BOOK = 1;
    TOME = 1;
    MUSIC = 2 [deprecated = true];
    reserved 10 to 20, 99;
    reserved "GAME";
  }
  message Note {
    optional string body = 1;
    optional Item.Kind kind = 2;
  }
}

message Kind {
  optional Item.Kind inner = 1;
}

extend Item {
  optional string ext_note = 100;
}

service Shop {
  rpc Get (Item) returns (Item);
  rpc Watch (stream Item.Note) returns (stream Kind) {
    option deprecated = true;
  }
}
"#;

/// The descriptor with what legitimately differs between compilations cleared: the file
/// name and protoc's computed JSON names.
fn comparable(f: &FileDescriptorProto) -> FileDescriptorProto {
    fn clear(m: &mut DescriptorProto) {
        for f in &mut m.field {
            f.json_name = None;
        }
        for f in &mut m.extension {
            f.json_name = None;
        }
        for n in &mut m.nested_type {
            clear(n);
        }
    }
    let mut f = f.clone();
    f.name = None;
    f.source_code_info = None;
    for m in &mut f.message_type {
        clear(m);
    }
    for e in &mut f.extension {
        e.json_name = None;
    }
    f
}

/// Printing and parsing again gives the same descriptor, and printing is a fixpoint.
fn assert_round_trip(s: &ProtobufSchema, deps: &[Dependency]) {
    for normalize in [false, true] {
        let text = s.canonical(normalize);
        let again = ProtobufSchema::parse(&text, deps)
            .unwrap_or_else(|e| panic!("reparse failed: {e}\n{text}"));
        assert_eq!(
            again.canonical(normalize),
            text,
            "printing is not a fixpoint"
        );
        if !normalize {
            assert_eq!(
                comparable(again.file_descriptor()),
                comparable(s.file_descriptor()),
                "{text}"
            );
        }
    }
}

#[test]
fn proto3_source() {
    let s = ProtobufSchema::parse(USER_PROTO, &[]).unwrap();
    let text = s.canonical(false);
    assert!(
        text.starts_with("syntax = \"proto3\";\npackage acme.users;\n"),
        "{text}"
    );
    assert!(
        text.contains("  map<string, int32> scores = 4;\n"),
        "{text}"
    );
    assert!(text.contains("  optional int32 age = 8;\n"), "{text}");
    assert!(
        text.contains("  oneof contact {\n    string phone = 6;\n"),
        "{text}"
    );
    assert!(
        text.contains("  reserved 20, 30 to 40;\n  reserved \"old\";\n"),
        "{text}"
    );
    assert!(
        text.contains("option go_package = \"acme/users\";"),
        "{text}"
    );
    assert_round_trip(&s, &[]);
}

#[test]
fn proto2_source_with_options_groups_defaults_and_services() {
    let s = ProtobufSchema::parse(PROTO2, &[]).unwrap();
    let text = s.canonical(false);
    for want in [
        "syntax = \"proto2\";",
        "option optimize_for = CODE_SIZE;",
        "option (confluent.file_meta) = {",
        "  required string sku = 1 [(confluent.field_meta) = {",
        "  optional int32 count = 2 [default = 1];",
        "  optional double price = 4 [default = -inf];",
        "  optional Kind kind = 5 [default = BOOK];",
        "  repeated sint64 deltas = 7 [packed = false, deprecated = true];",
        "  optional string display = 9 [json_name = \"displayName\"];",
        "  optional group Extra = 10 {",
        "  map<string, Item> children = 12;",
        "  extensions 100 to 199, 500 to max;",
        "  reserved 20 to 25, 30;",
        "    MUSIC = 2 [deprecated = true];",
        "    reserved 10 to 20, 99;",
        "  optional Item.Kind inner = 1;",
        "  rpc Watch (stream Item.Note) returns (stream Kind) {",
        "extend Item {",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert_round_trip(&s, &[]);
}

#[test]
fn base64_descriptor_is_returned_as_proto_text() {
    let from_b64 = ProtobufSchema::parse(USER_B64, &[]).unwrap();
    let from_text = ProtobufSchema::parse(USER_PROTO, &[]).unwrap();
    assert_eq!(from_b64.canonical(false), from_text.canonical(false));
    assert_eq!(from_b64.canonical(true), from_text.canonical(true));
    assert_eq!(
        comparable(from_b64.file_descriptor()),
        comparable(from_text.file_descriptor())
    );
    assert!(from_b64.can_read(&from_text).is_empty());
    assert_round_trip(&from_b64, &[]);
}

#[test]
fn serialized_decodes_to_the_same_descriptor() {
    for text in [USER_PROTO, PROTO2, USER_B64] {
        let s = ProtobufSchema::parse(text, &[]).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.serialized())
            .unwrap();
        let decoded = FileDescriptorProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(&decoded, s.file_descriptor());
        // And it is itself a valid registration, equal to the original.
        let again = ProtobufSchema::parse(&s.serialized(), &[]).unwrap();
        assert_eq!(again.canonical(false), s.canonical(false));
    }
    // Custom options survive serialization.
    let s = ProtobufSchema::parse(PROTO2, &[]).unwrap();
    let again = ProtobufSchema::parse(&s.serialized(), &[]).unwrap();
    assert!(again.canonical(false).contains("(confluent.field_meta)"));
}

#[test]
fn imports_resolve_from_references_text_and_base64() {
    let money =
        "syntax = \"proto3\";\npackage acme.common;\nmessage Money {\n  int64 units = 1;\n}\n";
    let main = "syntax = \"proto3\";\npackage acme;\nimport \"acme/common/money.proto\";\nmessage Order {\n  acme.common.Money total = 1;\n}\n";
    let deps = vec![Dependency {
        name: "acme/common/money.proto".into(),
        schema: money.into(),
    }];
    let s = ProtobufSchema::parse(main, &deps).unwrap();
    assert!(
        s.canonical(false).contains("  common.Money total = 1;"),
        "{}",
        s.canonical(false)
    );
    assert_round_trip(&s, &deps);

    // The same reference registered as base64 of its descriptor.
    let dep = ProtobufSchema::parse(money, &[]).unwrap();
    let deps64 = vec![Dependency {
        name: "acme/common/money.proto".into(),
        schema: dep.serialized(),
    }];
    let s64 = ProtobufSchema::parse(main, &deps64).unwrap();
    assert_eq!(s64.canonical(false), s.canonical(false));

    // Transitive references.
    let order_dep = Dependency {
        name: "acme/order.proto".into(),
        schema: main.into(),
    };
    let top = "syntax = \"proto3\";\nimport \"acme/order.proto\";\nmessage Batch {\n  repeated acme.Order orders = 1;\n}\n";
    let all = vec![deps[0].clone(), order_dep];
    let t = ProtobufSchema::parse(top, &all).unwrap();
    assert!(t
        .canonical(false)
        .contains("repeated acme.Order orders = 1;"));

    let missing = ProtobufSchema::parse(main, &[]).unwrap_err();
    assert!(missing.contains("acme/common/money.proto"), "{missing}");
}

#[test]
fn well_known_and_confluent_imports() {
    let text = r#"syntax = "proto3";
import "google/protobuf/any.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/struct.proto";
import "confluent/meta.proto";
import "confluent/type/decimal.proto";
message Payment {
  option (confluent.message_meta) = { doc: "a payment", params: [{ key: "owner", value: "billing" }] };
  confluent.type.Decimal amount = 1 [(confluent.field_meta) = { tags: ["PII", "FIN"] }];
  google.protobuf.Timestamp at = 2;
  google.protobuf.StringValue note = 3;
  google.protobuf.Any detail = 4;
  google.protobuf.Struct extra = 5;
  Kind kind = 6;
}
enum Kind {
  option (confluent.enum_meta).doc = "kinds";
  KIND_UNSPECIFIED = 0;
  CARD = 1 [(confluent.enum_value_meta).doc = "card"];
}
"#;
    let s = ProtobufSchema::parse(text, &[]).unwrap();
    let out = s.canonical(false);
    assert!(
        out.contains("confluent.type.Decimal amount = 1 [(confluent.field_meta) = {"),
        "{out}"
    );
    assert!(out.contains("option (confluent.enum_meta) = {"), "{out}");
    assert!(
        out.contains("CARD = 1 [(confluent.enum_value_meta) = {"),
        "{out}"
    );
    assert_round_trip(&s, &[]);
}

#[test]
fn every_builtin_import_resolves() {
    let imports = [
        "confluent/meta.proto",
        "confluent/type/decimal.proto",
        "confluent/type/variant.proto",
        "google/type/calendar_period.proto",
        "google/type/color.proto",
        "google/type/date.proto",
        "google/type/datetime.proto",
        "google/type/dayofweek.proto",
        "google/type/decimal.proto",
        "google/type/expr.proto",
        "google/type/fraction.proto",
        "google/type/interval.proto",
        "google/type/latlng.proto",
        "google/type/money.proto",
        "google/type/month.proto",
        "google/type/phone_number.proto",
        "google/type/postal_address.proto",
        "google/type/quaternion.proto",
        "google/type/timeofday.proto",
        "google/protobuf/empty.proto",
        "google/protobuf/field_mask.proto",
        "google/protobuf/api.proto",
        "google/protobuf/type.proto",
    ];
    let mut text = String::from("syntax = \"proto3\";\n");
    for i in imports {
        text.push_str(&format!("import \"{i}\";\n"));
    }
    text.push_str(
        "message Uses {\n  google.type.Date d = 1;\n  google.type.Money m = 2;\n  google.type.LatLng l = 3;\n  \
         google.type.DayOfWeek w = 4;\n  confluent.type.Variant v = 5;\n  google.type.DateTime t = 6;\n}\n",
    );
    let s = ProtobufSchema::parse(&text, &[]).unwrap();
    assert_round_trip(&s, &[]);
}

#[test]
fn normalize_orders_what_protobuf_leaves_unordered() {
    let a = r#"syntax = "proto3";
package p;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
option java_package = "x";
option go_package = "y";
message M {
  int32 b = 2;
  oneof o {
    string y = 5;
    string x = 4;
  }
  int32 a = 1;
  reserved 9, 7;
  reserved "z", "q";
  google.protobuf.Timestamp t = 3 [deprecated = true, json_name = "tt"];
  google.protobuf.Duration d = 6;
}
enum E {
  Z = 0;
  B = 2;
  A = 1;
}
"#;
    let b = r#"syntax = "proto3";
package p;
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
option go_package = "y";
option java_package = "x";
message M {
  int32 a = 1;
  int32 b = 2;
  google.protobuf.Timestamp t = 3 [json_name = "tt", deprecated = true];
  oneof o {
    string x = 4;
    string y = 5;
  }
  google.protobuf.Duration d = 6;
  reserved 7, 9;
  reserved "q", "z";
}
enum E {
  Z = 0;
  A = 1;
  B = 2;
}
"#;
    let sa = ProtobufSchema::parse(a, &[]).unwrap();
    let sb = ProtobufSchema::parse(b, &[]).unwrap();
    assert_ne!(sa.canonical(false), sb.canonical(false));
    assert_eq!(sa.canonical(true), sb.canonical(true));
    assert_round_trip(&sa, &[]);
    // Layout and comments never matter, even without normalizing.
    let c = b.replace("\n  ", "\n\t// comment\n\t").replace(" = ", "=");
    assert_eq!(
        ProtobufSchema::parse(&c, &[]).unwrap().canonical(false),
        sb.canonical(false)
    );
}

#[test]
fn type_names_are_printed_so_they_resolve_to_the_same_type() {
    let text = r#"syntax = "proto3";
package a.b;
message B {
  message B {
    int32 x = 1;
  }
  B inner = 1;
  .a.b.B outer = 2;
  a.b.B.B again = 3;
}
message C {
  B.B deep = 1;
  B top = 2;
}
"#;
    let s = ProtobufSchema::parse(text, &[]).unwrap();
    assert_round_trip(&s, &[]);
}

#[test]
fn bad_input_is_a_clear_error() {
    for (text, want) in [
        ("", ""),
        (
            "syntax = \"proto3\";\nmessage M {\n  int32 a = 1\n}\n",
            "expected",
        ),
        (
            "syntax = \"proto3\";\nmessage M {\n  Unknown a = 1;\n}\n",
            "Unknown",
        ),
        (
            "syntax = \"proto3\";\nmessage M {\n  int32 a = 1;\n  int32 b = 1;\n}\n",
            "1",
        ),
        (
            "syntax = \"proto3\";\nimport \"nope.proto\";\n",
            "nope.proto",
        ),
        ("bm90IGEgZGVzY3JpcHRvcg==", "invalid Protobuf schema"),
        ("{\"type\": \"record\"}", "invalid Protobuf schema"),
    ] {
        if text.is_empty() {
            // An empty file is a valid (empty) proto2 schema, as protoc has it.
            assert!(ProtobufSchema::parse(text, &[]).is_ok());
            continue;
        }
        let e = ProtobufSchema::parse(text, &[]).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
    let e = ProtobufSchema::parse(
        "syntax = \"proto3\";",
        &[Dependency {
            name: "x.proto".into(),
            schema: "garbage {".into(),
        }],
    );
    assert!(e.is_ok(), "a reference nobody imports is not compiled");
    let e = ProtobufSchema::parse(
        "syntax = \"proto3\";\nimport \"x.proto\";\n",
        &[Dependency {
            name: "x.proto".into(),
            schema: "garbage {".into(),
        }],
    )
    .unwrap_err();
    assert!(e.contains("x.proto"), "{e}");
}
