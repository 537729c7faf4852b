//! Tidy: the workspace's module boundaries and style rules, checked as a test.
//!
//! DESIGN.md draws the crate map and CONVENTIONS.md the rules; this test keeps them true:
//!
//! * internal dependency edges (normal, dev and build, any target) are among those DESIGN.md
//!   allows, and every workspace member is in the map;
//! * only `shard/` names `glommio` (every other crate's `src/**/*.rs` and `Cargo.toml`);
//! * every crate root forbids `unsafe_code` except `shard` (allowed) and `wire` (deny or forbid);
//! * every `unsafe {` block in `shard/` and `wire/` has a `// SAFETY:` comment within the three
//!   lines above it;
//! * every crate root opens with a `//!` doc.
//!
//! Each rule collects all its violations and fails with one line per violation naming the file
//! and the rule. Plain text parsing: no toml crate, and the manifests are simple.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Folder, package name, and the folders it may depend on (DESIGN.md, "The workspace").
const CRATES: [(&str, &str, &[&str]); 10] = [
    ("wire", "millrace-wire", &[]),
    ("storage", "millrace-storage", &["wire"]),
    (
        "shard",
        "millrace-shard",
        &["storage", "replication", "wire"],
    ),
    ("replication", "millrace-replication", &["wire", "storage"]),
    (
        "broker",
        "millrace",
        &[
            "wire",
            "storage",
            "shard",
            "replication",
            "schema",
            "security",
        ],
    ),
    // The tools log in to secured listeners with the security crate's SASL client and TLS
    // configuration, and name ACLs with its vocabulary.
    ("tools", "millrace-tools", &["wire", "security"]),
    // The bench connects to secured listeners as the tools do (`--command-config`).
    ("bench", "millrace-bench", &["wire", "shard", "security"]),
    ("tuning", "millrace-tune", &[]),
    // The schema registry's rules: pure, like wire (ARCHITECTURE.md, "The workspace").
    ("schema", "millrace-schema", &[]),
    // SASL, TLS configuration, ACL decisions, quotas: pure policy and protocol logic
    // (ARCHITECTURE.md, "Security").
    ("security", "millrace-security", &[]),
];

/// Crates whose roots may allow `unsafe_code`; wire may `deny` instead of `forbid` (its
/// zero-copy views opt in per item).
const UNSAFE_RUNTIME: &str = "shard";
const UNSAFE_VIEWS: &str = "wire";
/// How far above an `unsafe {` its `// SAFETY:` comment may start.
const SAFETY_COMMENT_LINES_MAX: usize = 3;

#[test]
fn workspace_members_are_all_in_the_crate_map() {
    let manifest = read(&root().join("Cargo.toml"));
    let members = workspace_members(&manifest);
    let known: BTreeSet<String> = CRATES.iter().map(|c| c.0.to_string()).collect();
    let mut failures = Vec::new();
    for member in &members {
        if !known.contains(member) {
            failures.push(format!(
                "Cargo.toml: member `{member}` is not in DESIGN.md's crate map \
                 (rule: every crate has a place and allowed edges; add it to tidy's CRATES)"
            ));
        }
    }
    for folder in &known {
        if !members.contains(folder) {
            failures.push(format!(
                "Cargo.toml: `{folder}` is in DESIGN.md's crate map but not a workspace member"
            ));
        }
    }
    report("workspace members", failures);
}

#[test]
fn internal_dependency_edges_are_allowed() {
    let mut failures = Vec::new();
    for (folder, package, allowed) in CRATES {
        let path = root().join(folder).join("Cargo.toml");
        let manifest = read(&path);
        let name = package_name(&manifest);
        if name.as_deref() != Some(package) {
            failures.push(format!(
                "{}: package name {name:?}, expected `{package}` (rule: DESIGN.md crate map)",
                rel(&path)
            ));
        }
        for dep in internal_dependencies(&manifest) {
            if dep.folder == folder {
                continue;
            }
            if !allowed.contains(&dep.folder.as_str()) {
                failures.push(format!(
                    "{}:{}: `{folder}` depends on `{}` in [{}]; DESIGN.md allows {folder} → {} \
                     (rule: internal dependency direction)",
                    rel(&path),
                    dep.line,
                    dep.folder,
                    dep.section,
                    if allowed.is_empty() {
                        "nothing internal".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ));
            }
        }
    }
    report("internal dependency edges", failures);
}

#[test]
fn only_shard_names_glommio() {
    let mut failures = Vec::new();
    for (folder, _, _) in CRATES {
        if folder == UNSAFE_RUNTIME {
            continue;
        }
        let dir = root().join(folder);
        let mut files = vec![dir.join("Cargo.toml")];
        files.extend(rust_files(&dir.join("src")));
        for file in files {
            for (n, line) in read(&file).lines().enumerate() {
                if contains_word(&line.to_ascii_lowercase(), "glommio") {
                    failures.push(format!(
                        "{}:{}: mentions glommio (rule: only shard/ names glommio; the \
                         runtime stays behind its facade): {}",
                        rel(&file),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    report("glommio stays in shard", failures);
}

#[test]
fn crate_roots_forbid_unsafe_code() {
    let mut failures = Vec::new();
    for (folder, _, _) in CRATES {
        for file in crate_roots(folder) {
            let text = read(&file);
            let forbid = has_inner_attribute(&text, "forbid(unsafe_code)");
            let deny = has_inner_attribute(&text, "deny(unsafe_code)");
            let ok = match folder {
                UNSAFE_RUNTIME => true,
                UNSAFE_VIEWS => forbid || deny,
                _ => forbid,
            };
            if !ok {
                let wanted = if folder == UNSAFE_VIEWS {
                    "#![deny(unsafe_code)] or #![forbid(unsafe_code)]"
                } else {
                    "#![forbid(unsafe_code)]"
                };
                failures.push(format!(
                    "{}: crate root lacks {wanted} (rule: unsafe only in shard's facade and \
                     wire's zero-copy views)",
                    rel(&file)
                ));
            }
        }
    }
    report("unsafe_code attributes", failures);
}

#[test]
fn unsafe_blocks_have_safety_comments() {
    let mut failures = Vec::new();
    for folder in [UNSAFE_RUNTIME, UNSAFE_VIEWS] {
        for file in rust_files(&root().join(folder)) {
            let text = read(&file);
            let lines: Vec<&str> = text.lines().collect();
            for (n, line) in lines.iter().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if !code.contains("unsafe {") {
                    continue;
                }
                let from = n.saturating_sub(SAFETY_COMMENT_LINES_MAX);
                let justified = lines[from..=n].iter().any(|l| l.contains("// SAFETY:"));
                if !justified {
                    failures.push(format!(
                        "{}:{}: `unsafe {{` without a `// SAFETY:` comment in the {} lines \
                         above (rule: every unsafe block says why it is sound)",
                        rel(&file),
                        n + 1,
                        SAFETY_COMMENT_LINES_MAX
                    ));
                }
            }
        }
    }
    report("SAFETY comments", failures);
}

#[test]
fn crate_roots_have_module_docs() {
    let mut failures = Vec::new();
    for (folder, _, _) in CRATES {
        let roots = crate_roots(folder);
        if roots.is_empty() {
            failures.push(format!(
                "{folder}/: no src/lib.rs or src/main.rs (rule: crate root)"
            ));
        }
        for file in roots {
            let text = read(&file);
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if !first.starts_with("//!") {
                failures.push(format!(
                    "{}: does not open with a `//!` doc (rule: every crate has a doc: purpose, \
                     invariants, which shard its types live on)",
                    rel(&file)
                ));
            }
        }
    }
    report("crate docs", failures);
}

/// The parser itself: the rules above are only as good as it is.
#[test]
fn manifest_parser_finds_every_spelling_of_a_dependency() {
    let manifest = r#"
[package]
name = "x"

[dependencies]
millrace-wire.workspace = true
bytes = "1"
renamed = { package = "millrace-shard", path = "../shard" }

[dev-dependencies]
millrace-storage = { path = "../storage" }

[target.'cfg(unix)'.dependencies]
millrace-tune = { path = "../tuning" }

[dependencies.millrace-replication]
workspace = true

[features]
millrace-bench = []
"#;
    let deps: Vec<(String, String)> = internal_dependencies(manifest)
        .into_iter()
        .map(|d| (d.folder, d.section))
        .collect();
    let want = [
        ("wire", "dependencies"),
        ("shard", "dependencies"),
        ("storage", "dev-dependencies"),
        ("tuning", "target.'cfg(unix)'.dependencies"),
        ("replication", "dependencies.millrace-replication"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(deps, want);
    assert_eq!(package_name(manifest).as_deref(), Some("x"));
    assert!(contains_word("a glommio task", "glommio"));
    assert!(contains_word("glommio::spawn", "glommio"));
    assert!(!contains_word("glommiox", "glommio"));
    assert!(has_inner_attribute(
        "//! doc\n#![forbid(unsafe_code)]\n",
        "forbid(unsafe_code)"
    ));
    assert!(!has_inner_attribute(
        "// #![forbid(unsafe_code)]\n",
        "forbid(unsafe_code)"
    ));
}

// ---------------------------------------------------------------------------------------------

struct Dependency {
    folder: String,
    section: String,
    line: usize,
}

/// Broker files that may name the partition log or a single-node fact: the partition object
/// (the only door to a partition's data, and the only place that knows "this broker is the
/// sole replica").
const PARTITION_DOOR: &str = "broker/src/partition.rs";

/// Words that reach around the partition object: its log type, the first leader epoch as a
/// constant, and the controller addressed by a literal shard number.
const AROUND_THE_PARTITION: [&str; 4] = [
    "PartitionLog",
    "LeaderEpoch::INITIAL",
    "with_leader_epoch(0)",
    ".call(0,",
];

#[test]
fn partition_data_and_single_node_facts_stay_in_the_partition_object() {
    let mut failures = Vec::new();
    for file in rust_files(&root().join("broker/src")) {
        if rel(&file) == PARTITION_DOOR {
            continue;
        }
        for (n, line) in read(&file).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in AROUND_THE_PARTITION {
                if code.contains(word) {
                    failures.push(format!(
                        "{}:{}: `{word}` outside {PARTITION_DOOR} (rule: partitions are \
                         reached through the partition object, which alone holds single-node \
                         facts): {}",
                        rel(&file),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    report("the partition object is the only door", failures);
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("broker/ sits in the workspace root")
        .to_path_buf()
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("tidy: cannot read {}: {e}", path.display()))
}

fn report(rule: &str, failures: Vec<String>) {
    if failures.is_empty() {
        return;
    }
    let mut message = format!("tidy ({rule}): {} violation(s)\n", failures.len());
    for failure in failures {
        let _ = writeln!(message, "  {failure}");
    }
    panic!("{message}");
}

/// `members = [...]` of the root manifest (one line or several).
fn workspace_members(manifest: &str) -> BTreeSet<String> {
    let start = manifest
        .find("members")
        .expect("root Cargo.toml lists members");
    let open = start + manifest[start..].find('[').expect("members = [");
    let close = open + manifest[open..].find(']').expect("members = [...]");
    manifest[open + 1..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(strip_comment) {
        if let Some(section) = section_name(line) {
            in_package = section == "package";
        } else if in_package {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "name" {
                    return Some(value.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

/// Internal dependencies in every dependency table: `[dependencies]`, `[dev-dependencies]`,
/// `[build-dependencies]`, their `[target.'…'.…]` forms and `[dependencies.<name>]` tables.
/// A dependency is internal when its name or `package = ` is a workspace package, or its
/// `path = ` points at a workspace folder.
fn internal_dependencies(manifest: &str) -> Vec<Dependency> {
    let mut deps = Vec::new();
    let mut section = String::new();
    for (n, raw) in manifest.lines().enumerate() {
        let line = strip_comment(raw);
        if let Some(name) = section_name(line) {
            section = name.to_string();
            if let Some((table, dep)) = section.rsplit_once('.') {
                if is_dependency_table(table) {
                    if let Some(folder) = folder_of(dep, "") {
                        deps.push(Dependency {
                            folder,
                            section: section.clone(),
                            line: n + 1,
                        });
                    }
                }
            }
            continue;
        }
        if !is_dependency_table(&section) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().split('.').next().unwrap_or("").trim_matches('"');
        if let Some(folder) = folder_of(key, value) {
            deps.push(Dependency {
                folder,
                section: section.clone(),
                line: n + 1,
            });
        }
    }
    deps
}

fn is_dependency_table(section: &str) -> bool {
    let last = section.rsplit('.').next().unwrap_or("");
    matches!(
        last,
        "dependencies" | "dev-dependencies" | "build-dependencies"
    ) && (section == last || section.starts_with("target."))
}

/// The workspace folder a dependency entry refers to, if any.
fn folder_of(key: &str, value: &str) -> Option<String> {
    let package = quoted_value(value, "package").unwrap_or_else(|| key.to_string());
    if let Some((folder, _, _)) = CRATES.iter().find(|c| c.1 == package) {
        return Some(folder.to_string());
    }
    let path = quoted_value(value, "path")?;
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    CRATES.iter().find(|c| c.0 == last).map(|c| c.0.to_string())
}

/// `field = "value"` inside an inline table.
fn quoted_value(text: &str, field: &str) -> Option<String> {
    let mut rest = text;
    while let Some(at) = rest.find(field) {
        let before_ok = at == 0 || !is_ident(rest.as_bytes()[at - 1]);
        let after = rest[at + field.len()..].trim_start();
        if before_ok {
            if let Some(value) = after.strip_prefix('=') {
                let value = value.trim_start().strip_prefix('"')?;
                return value.split('"').next().map(str::to_string);
            }
        }
        rest = &rest[at + field.len()..];
    }
    None
}

fn section_name(line: &str) -> Option<&str> {
    let line = line.trim();
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.trim_matches(|c| c == '[' || c == ']').trim())
}

fn strip_comment(line: &str) -> &str {
    // Manifests here put no '#' inside strings; good enough for a tidy check.
    line.split('#').next().unwrap_or("").trim()
}

fn crate_roots(folder: &str) -> Vec<PathBuf> {
    ["src/lib.rs", "src/main.rs"]
        .iter()
        .map(|f| root().join(folder).join(f))
        .filter(|p| p.exists())
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// True when an inner attribute `#![<attr>]` appears as code (not in a comment).
fn has_inner_attribute(text: &str, attr: &str) -> bool {
    let wanted = format!("#![{attr}]");
    text.lines().any(|l| l.trim_start().starts_with(&wanted))
}

fn contains_word(text: &str, word: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(word) {
        let start = from + at;
        let end = start + word.len();
        let before = start == 0 || !is_ident(bytes[start - 1]);
        let after = end == bytes.len() || !is_ident(bytes[end]);
        if before && after {
            return true;
        }
        from = end;
    }
    false
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Test-only files of `broker/src`: they sit above everything and may name any module.
const TEST_ONLY_FILES: &[&str] = &["sim_tests.rs", "tests.rs"];

#[test]
fn broker_modules_import_each_other_without_a_circle() {
    let src = root().join("broker/src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        if file
            .file_name()
            .is_some_and(|n| TEST_ONLY_FILES.iter().any(|t| n == *t))
        {
            continue;
        }
        let relative = file.strip_prefix(&src).expect("under broker/src");
        let first = relative.components().next().expect("a file has a name");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let named = edges.entry(module.clone()).or_default();
        for used in crate_paths(&read(&file)) {
            if used != module {
                named.insert(used);
            }
        }
    }
    let modules: BTreeSet<String> = edges.keys().cloned().collect();
    for named in edges.values_mut() {
        named.retain(|m| modules.contains(m));
    }
    let failures: Vec<String> = find_circle(&edges)
        .map(|circle| {
            vec![format!(
                "{} (rule: a module of broker/src names only modules below it; a subsystem \
                 keeps its per-shard state in the shard's typed slots and handlers see a \
                 Context, so the shard never names what is built on it)",
                circle.join(" -> ")
            )]
        })
        .unwrap_or_default();
    report("no import circle between broker modules", failures);
}

#[test]
fn circle_finder_finds_a_circle_and_accepts_a_ladder() {
    let graph = |pairs: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let ladder = graph(&[
        ("handlers", "shard"),
        ("shard", "mesh"),
        ("handlers", "mesh"),
    ]);
    assert_eq!(find_circle(&ladder), None);
    let circle = graph(&[
        ("handlers", "shard"),
        ("shard", "mesh"),
        ("mesh", "handlers"),
    ]);
    let found = find_circle(&circle).expect("a circle");
    assert_eq!(found.first(), found.last());
    assert_eq!(found.len(), 4);
    let text = "use crate::{a::B, b};\n// crate::c in a comment\nlet x = crate::d::e();\n";
    assert_eq!(
        crate_paths(text),
        ["a", "b", "d"].iter().map(|s| s.to_string()).collect()
    );
}

/// The top-level modules a file names as `crate::<module>` in code (comments skipped).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before_ok = at == 0 || !is_ident(rest.as_bytes()[at - 1]);
        rest = &rest[at + "crate::".len()..];
        if !before_ok {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| is_ident(*c as u8))
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c as u8)).collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// One circle in `edges` as a path that starts and ends at the same module, if there is one.
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let from = path
                        .iter()
                        .position(|p| p == next)
                        .expect("open is on the path");
                    let mut circle = path[from..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(circle) = visit(next, edges, marks, path) {
                        return Some(circle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if !marks.contains_key(node) {
            let mut path = Vec::new();
            if let Some(circle) = visit(node, edges, &mut marks, &mut path) {
                return Some(circle);
            }
        }
    }
    None
}
