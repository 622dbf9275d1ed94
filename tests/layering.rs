//! The layering written in `docs/ARCHITECTURE.md` ("Layers"), enforced: every
//! reference from one top-level module to another (`use crate::…`, grouped
//! `use crate::{…}`, inline `crate::` paths, `super::` paths that climb to
//! the crate root, re-exports) must be an arrow the table allows, there is
//! no import cycle between modules, and the code map names every file.
//! Also the one home of the words people read: no string literal outside
//! `src/core/` holds a Vietnamese letter, so a text shown in Vietnamese
//! cannot be spelled out anywhere but `core::words`.
//!
//! Reads the sources as text; needs no build of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which modules each top-level module may import. `core` imports only
/// `core`; the socket adapter (`api`) only the command layer and `core`;
/// MQTT the command layer, `core` and its own infrastructure (the event
/// outbox it publishes, the store holding its idempotency tree, TLS); only
/// `daemon` wires the actors together, and `cli` sits above everything.
const TABLE: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("util", &["core"]),
    ("lifecycle", &["core"]),
    ("tls", &["core"]),
    ("logging", &["core"]),
    ("systemd", &["core"]),
    ("config", &["core", "util"]),
    ("store", &["core", "util"]),
    ("events", &["core", "util"]),
    ("client", &["core"]),
    ("camera", &["core", "config", "util"]),
    ("audio_devices", &["core", "config"]),
    ("recorder", &["core", "config", "events", "util"]),
    ("audit", &["core", "events", "util"]),
    // Provisioning makes the recorder's signing key, for the report.
    (
        "provision",
        &["core", "config", "util", "recorder", "audit"],
    ),
    (
        "media",
        &[
            "core",
            "config",
            "recorder",
            "camera",
            "audio_devices",
            "util",
        ],
    ),
    (
        "upload",
        &[
            "core",
            "config",
            "events",
            "recorder",
            "media",
            "util",
            "lifecycle",
            "audit",
        ],
    ),
    (
        "supervisor",
        &[
            "core", "config", "events", "media", "store", "systemd", "audit",
        ],
    ),
    (
        "sip",
        &[
            "core",
            "config",
            "events",
            "media",
            "supervisor",
            "tls",
            "lifecycle",
            "util",
        ],
    ),
    ("button", &["core", "config", "events", "supervisor"]),
    (
        "schedule",
        &[
            "core",
            "config",
            "events",
            "supervisor",
            "button",
            "lifecycle",
            "util",
        ],
    ),
    ("led", &["core", "config", "button", "supervisor"]),
    (
        "display",
        &["core", "config", "media", "provision", "supervisor"],
    ),
    (
        "doctor",
        &[
            "core",
            "config",
            "client",
            "media",
            "recorder",
            "store",
            "upload",
            "camera",
            "audio_devices",
            "provision",
            "tls",
            "util",
        ],
    ),
    (
        "control",
        &[
            "core",
            "config",
            "supervisor",
            "store",
            "recorder",
            "camera",
            "button",
            "display",
            "upload",
            "lifecycle",
            "doctor",
            "audit",
            "media",
            "schedule",
        ],
    ),
    ("api", &["core", "control", "util"]),
    (
        "mqtt",
        &[
            "core", "control", "config", "events", "store", "util", "tls", "schedule",
        ],
    ),
    (
        "daemon",
        &[
            "core",
            "config",
            "api",
            "mqtt",
            "control",
            "supervisor",
            "media",
            "recorder",
            "upload",
            "button",
            "led",
            "display",
            "camera",
            "events",
            "store",
            "lifecycle",
            "systemd",
            "util",
            "sip",
            "audit",
            "schedule",
        ],
    ),
    (
        "cli",
        &[
            "core",
            "config",
            "client",
            "daemon",
            "doctor",
            "mqtt",
            "provision",
            "recorder",
            "store",
            "camera",
            "util",
            "audit",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`None` for lib.rs and main.rs).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_owned()),
    }
}

/// The text without comments (line and block), so a doc comment naming a
/// module is not an import; string literals are left, which errs on the
/// side of reporting.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        if in_str {
            if b[i] == b'\\' && i + 1 < b.len() {
                out.push(b[i] as char);
                out.push(b[i + 1] as char);
                i += 2;
                continue;
            }
            if b[i] == b'"' {
                in_str = false;
            }
            out.push(b[i] as char);
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else {
            if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
                in_str = true;
            }
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Names of top-level modules referred to in `text` of a file whose module
/// path below the crate root is `depth` deep.
fn references(text: &str, depth: usize, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut add = |name: &str| {
        if modules.contains(name) {
            found.insert(name.to_owned());
        }
    };
    // `crate::name` and `crate::{a, b::c, ...}`.
    for (i, _) in text.match_indices("crate::") {
        if i > 0 {
            let prev = text.as_bytes()[i - 1];
            if prev.is_ascii_alphanumeric() || prev == b'_' || prev == b'$' {
                continue; // `diemcau_crate::`, `$crate::`
            }
        }
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut level = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => level += 1,
                    '}' if level == 0 => {
                        add(ident_at(group[start..j].trim()));
                        break;
                    }
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        add(ident_at(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            add(ident_at(rest));
        }
    }
    // `super::super::name` climbing to the crate root.
    for (i, _) in text.match_indices("super::") {
        if i >= "super::".len() && text[..i].ends_with("super::") {
            continue; // counted from the first `super::` of the chain
        }
        let mut rest = &text[i..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        if ups >= depth {
            add(ident_at(rest));
        }
    }
    found
}

struct Graph {
    modules: BTreeSet<String>,
    edges: BTreeMap<String, BTreeSet<String>>,
    /// Where each edge was seen, for the failure message.
    seen_in: BTreeMap<(String, String), String>,
    files: Vec<PathBuf>,
}

fn graph() -> Graph {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(f.strip_prefix(&root).unwrap()))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen_in = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap();
        let Some(m) = module_of(rel) else { continue };
        // src/x.rs and src/x/mod.rs are depth 1, src/x/y.rs depth 2, ...
        let mut depth = rel.components().count();
        if rel.file_name().is_some_and(|n| n == "mod.rs") {
            depth -= 1;
        }
        let text = strip_comments(&std::fs::read_to_string(f).unwrap());
        for to in references(&text, depth, &modules) {
            if to != m {
                seen_in
                    .entry((m.clone(), to.clone()))
                    .or_insert_with(|| rel.display().to_string());
                edges.entry(m.clone()).or_default().insert(to);
            }
        }
    }
    Graph {
        modules,
        edges,
        seen_in,
        files,
    }
}

#[test]
fn every_module_is_in_the_table_and_imports_only_what_it_may() {
    let g = graph();
    let table: BTreeMap<&str, &[&str]> = TABLE.iter().copied().collect();
    let mut problems = Vec::new();
    for m in &g.modules {
        if !table.contains_key(m.as_str()) {
            problems.push(format!(
                "module `{m}` is not in the layering table (tests/layering.rs and docs/ARCHITECTURE.md): place it"
            ));
        }
    }
    for (from, tos) in &g.edges {
        let allowed = table.get(from.as_str()).copied().unwrap_or(&[]);
        for to in tos {
            if !allowed.contains(&to.as_str()) {
                problems.push(format!(
                    "`{from}` imports `{to}` (in src/{}), which the layering table forbids",
                    g.seen_in[&(from.clone(), to.clone())]
                ));
            }
        }
    }
    for (m, _) in TABLE {
        if !g.modules.contains(*m) {
            problems.push(format!("the table names `{m}`, which does not exist"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_import_cycle_between_modules() {
    let g = graph();
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        m: &str,
        g: &Graph,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_owned(), 1);
        stack.push(m.to_owned());
        for to in g.edges.get(m).into_iter().flatten() {
            match state.get(to.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == to).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(to.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(to, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in &g.modules {
        if state.get(m.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(m, &g, &mut state, &mut Vec::new()) {
                panic!("import cycle: {}", c.join(" → "));
            }
        }
    }
}

#[test]
fn core_uses_no_runtime_media_or_database_crate() {
    let root = src().join("core");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for f in files {
        let text = strip_comments(&std::fs::read_to_string(&f).unwrap());
        for banned in ["tokio", "gstreamer", "gst::", "sled", "rumqttc", "ureq"] {
            assert!(
                !text.contains(banned),
                "{} uses `{banned}`; core is plain types and words",
                f.display()
            );
        }
    }
}

#[test]
fn the_code_map_names_every_file() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ARCHITECTURE.md"))
            .unwrap();
    let g = graph();
    let root = src();
    let missing: Vec<String> = g
        .files
        .iter()
        .map(|f| f.strip_prefix(&root).unwrap())
        .filter(|rel| {
            let full = format!("src/{}", rel.display());
            let name = format!("`{}`", rel.file_name().unwrap().to_string_lossy());
            !(doc.contains(&full) || (rel.components().count() > 1 && doc.contains(&name)))
        })
        .map(|rel| format!("src/{}", rel.display()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md's code map does not name: {}",
        missing.join(", ")
    );
}

#[test]
fn the_reference_scanner_sees_every_form() {
    let modules: BTreeSet<String> = ["api", "core", "media", "store", "control"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let text = "use crate::{api::x, core::{a, b}};\nfn f() { crate::media::go(); }\npub use crate::store::S;\nuse super::super::control::C;\nlet s = $crate::api;";
    let got = references(text, 2, &modules);
    let want: BTreeSet<String> = ["api", "core", "media", "store", "control"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
    // `super::` that stays inside the module is not a reference.
    assert!(references("use super::control::C;", 2, &modules).is_empty());
    assert!(references(
        &strip_comments("// crate::api\n/* crate::media */"),
        1,
        &modules
    )
    .is_empty());
}

/// Letters only Vietnamese writes, in lower case (capitals are matched
/// through `to_lowercase`).
const VIETNAMESE: &str = "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ";

/// A Vietnamese letter, or one of the combining marks (U+0300 to U+0323)
/// that spell one decomposed.
fn vietnamese(c: char) -> bool {
    c.to_lowercase().any(|l| VIETNAMESE.contains(l)) || ('\u{300}'..='\u{323}').contains(&c)
}

/// The string and character literals of a source file, each with the line
/// it starts on. Comments are skipped (doc comments too), and so is
/// everything from a line `#[cfg(test)]` on: the tests may say what they
/// expect in Vietnamese.
fn literals(text: &str) -> Vec<(usize, String)> {
    let end = text
        .lines()
        .scan(0, |at, l| {
            let start = *at;
            *at += l.len() + 1;
            Some((start, l))
        })
        .find(|(_, l)| l.trim() == "#[cfg(test)]")
        .map_or(text.len(), |(start, _)| start);
    let c: Vec<char> = text[..end].chars().collect();
    let ident = |i: usize| i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        match c[i] {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if next == Some('/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                // Block comments nest.
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(c[i] == '\n');
                        i += 1;
                    }
                }
            }
            '"' => {
                // A string ("…", or b"…" whose `b` was passed over).
                let start = line;
                let mut lit = String::new();
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' && i + 1 < c.len() {
                        lit.push(c[i]);
                        i += 1;
                    }
                    line += usize::from(c[i] == '\n');
                    lit.push(c[i]);
                    i += 1;
                }
                i += 1;
                out.push((start, lit));
            }
            'r' | 'b' if !ident(i) => {
                // A raw string: r"…", r#"…"#, br"…" and so on.
                let mut j = i + 1;
                if c[i] == 'b' && next == Some('r') {
                    j += 1;
                }
                let hashes = c[j..].iter().take_while(|&&h| h == '#').count();
                j += hashes;
                if (c[i] == 'r' || j > i + 1) && c.get(j) == Some(&'"') {
                    let start = line;
                    let close: Vec<char> = std::iter::once('"')
                        .chain(std::iter::repeat_n('#', hashes))
                        .collect();
                    let mut lit = String::new();
                    j += 1;
                    while j < c.len() && !c[j..].starts_with(&close) {
                        line += usize::from(c[j] == '\n');
                        lit.push(c[j]);
                        j += 1;
                    }
                    i = j + close.len();
                    out.push((start, lit));
                } else {
                    i += 1;
                }
            }
            '\'' => {
                // A character ('x', '\n', '\u{…}') or a lifetime ('a).
                if next == Some('\\') {
                    let mut j = i + 3;
                    while j < c.len() && c[j] != '\'' {
                        j += 1;
                    }
                    out.push((line, c[i + 1..j.min(c.len())].iter().collect()));
                    i = j + 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    out.push((line, c[i + 1].to_string()));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn no_vietnamese_in_a_string_outside_core() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut found = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap();
        if rel.starts_with("core") || rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (line, lit) in literals(&text) {
            if lit.chars().any(vietnamese) {
                let shown: String = lit.chars().take(60).collect();
                found.push(format!("src/{}:{line}: \"{shown}\"", rel.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "words in Vietnamese outside src/core/; give each a function (with its English) \
         in src/core/words/ and call that:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_literal_scanner_sees_every_form() {
    let text = "//! Đây là chú thích\n\
                /* khối /* lồng */ đ */ let a = \"Sẵn sàng\";\n\
                let b = r#\"có \"dấu\" ngoặc\"#; let c = b\"x\";\n\
                fn f<'a>(x: &'a str) -> char { 'đ' }\n\
                let d = '\\u{301}'; let e = br\"y\";\n\
                let r#type = 1; // ấ\n\
                #[cfg(test)]\n\
                let z = \"thử\";\n";
    let got = literals(text);
    let want: Vec<(usize, String)> = vec![
        (2, "Sẵn sàng".into()),
        (3, "có \"dấu\" ngoặc".into()),
        (3, "x".into()),
        (4, "đ".into()),
        (5, "\\u{301}".into()),
        (5, "y".into()),
    ];
    assert_eq!(got, want);
    assert!(vietnamese('Đ') && vietnamese('\u{301}') && !vietnamese('e') && !vietnamese('—'));
    // A string over several lines counts the lines it holds.
    assert_eq!(
        literals("\"a\nb\"\n\"đ\""),
        vec![(1, "a\nb".into()), (3, "đ".into())]
    );
}
