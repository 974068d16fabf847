//! The frame's shape, checked on every test run so it cannot quietly grow tangled again
//! (see ARCHITECTURE.md):
//!
//! 1. no circle of files: no two source files reach each other through `use` paths;
//! 2. no upward import: a layer imports only from its own layer or the ones below it;
//! 3. components stay apart: a receiver, processor, exporter or extension imports nothing
//!    from another component, except the composite `loadbalancing` exporter, which is built
//!    from `otlp` exporters by design.
//!
//! The check reads `collector/src` as text: it follows `crate::`, `super::` and `self::`
//! paths (with `{}` groups) to the file that defines the module. Test code (`tests.rs`,
//! `tests/` folders and a trailing `#[cfg(test)] mod tests { … }`) is left out: tests may
//! reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layers, lowest first. A new top-level module must be given a rank here, deliberately.
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("telemetry", 1),
    ("component", 2),
    ("output", 3),
    ("net", 3),
    ("aws", 4),
    ("receiver", 5),
    ("processor", 5),
    ("exporter", 5),
    ("extension", 5),
    ("config", 6),
    ("topology", 7),
    ("service", 8),
    ("lambda_extension", 9),
];

/// Rank of the crate root: it declares every module.
const ROOT_RANK: u8 = u8::MAX;

/// The one layer whose folders are independent components.
const COMPONENT_RANK: u8 = 5;

/// Component-to-component imports that are part of the design.
const ALLOWED_COMPONENT_IMPORTS: &[(&str, &str)] = &[("exporter/loadbalancing", "exporter/otlp")];

type Sources = BTreeMap<String, String>;

#[test]
fn the_collector_has_no_circles_no_upward_imports_and_no_component_coupling() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources = read_sources(&src);
    assert!(
        sources.len() > 50,
        "read only {} files from {src:?}",
        sources.len()
    );
    let problems = problems(&sources);
    assert!(
        problems.is_empty(),
        "the frame is tangled:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_check_finds_a_circle_an_upward_import_and_component_coupling() {
    let sources: Sources = [
        (
            "lib.rs",
            "pub mod model; pub mod exporter; pub mod topology;",
        ),
        ("model/mod.rs", "pub mod a; pub mod b;"),
        ("model/a.rs", "use super::b::Thing;"),
        ("model/b.rs", "use crate::model::{a::Other, b};"),
        (
            "exporter/mod.rs",
            "pub mod xray; pub mod otlp; pub mod loadbalancing;",
        ),
        (
            "exporter/xray/mod.rs",
            "use crate::topology::driver;\nuse crate::exporter::otlp::Peer;",
        ),
        (
            "exporter/otlp/mod.rs",
            "use crate::model::a::Other;\n#[cfg(test)]\nmod tests {\n    fn f() { use crate::topology::driver; }\n}\nuse crate::topology;\n",
        ),
        (
            "exporter/loadbalancing/mod.rs",
            "use crate::exporter::otlp::Peer;",
        ),
        ("topology/mod.rs", "pub mod driver;"),
        (
            "topology/driver.rs",
            "use crate::model::a;",
        ),
    ]
    .into_iter()
    .map(|(path, text)| (path.to_owned(), text.to_owned()))
    .collect();
    let found = problems(&sources);
    let expect = [
        "circle: model/a.rs, model/b.rs",
        "upward: exporter/xray/mod.rs (exporter) imports topology/driver.rs (topology)",
        "component coupling: exporter/xray/mod.rs imports exporter/otlp/mod.rs",
        "upward: exporter/otlp/mod.rs (exporter) imports topology/mod.rs (topology)",
    ];
    for problem in expect {
        assert!(
            found.iter().any(|p| p == problem),
            "missed {problem:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "unexpected findings: {found:#?}");
}

/// Every problem, one line each: circles, upward imports, component coupling.
fn problems(sources: &Sources) -> Vec<String> {
    let graph = imports(sources);
    let mut found: Vec<String> = circles(&graph)
        .into_iter()
        .map(|files| format!("circle: {}", files.join(", ")))
        .collect();
    for (from, targets) in &graph {
        let from_rank = rank(from);
        for to in targets {
            let to_rank = rank(to);
            match (from_rank.clone(), to_rank) {
                (Err(top), _) | (_, Err(top)) => {
                    found.push(format!("unranked layer `{top}`: give it a rank in LAYERS"))
                }
                (Ok(a), Ok(b)) if b > a => found.push(format!(
                    "upward: {from} ({}) imports {to} ({})",
                    top_module(from),
                    top_module(to)
                )),
                (Ok(COMPONENT_RANK), Ok(COMPONENT_RANK)) => {
                    let (a, b) = (component_of(from), component_of(to));
                    if a != b && !ALLOWED_COMPONENT_IMPORTS.contains(&(a.as_str(), b.as_str())) {
                        found.push(format!("component coupling: {from} imports {to}"));
                    }
                }
                _ => {}
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn read_sources(src: &Path) -> Sources {
    let mut sources = Sources::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read source dir") {
            let path = entry.expect("dir entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if name != "tests" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" && name != "main.rs" {
                let rel = path.strip_prefix(src).expect("under src");
                let rel = rel.to_string_lossy().replace('\\', "/");
                sources.insert(rel, std::fs::read_to_string(&path).expect("read source"));
            }
        }
    }
    sources
}

/// Module path of a file: `a/b/mod.rs` and `a/b.rs` are both `a::b`; `lib.rs` is the root.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn top_module(file: &str) -> String {
    module_of(file).first().cloned().unwrap_or_default()
}

/// `receiver/otlp` for any file inside that component.
fn component_of(file: &str) -> String {
    module_of(file)
        .into_iter()
        .take(2)
        .collect::<Vec<_>>()
        .join("/")
}

fn rank(file: &str) -> Result<u8, String> {
    let top = top_module(file);
    if top.is_empty() {
        return Ok(ROOT_RANK);
    }
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, rank)| *rank)
        .ok_or(top)
}

/// File → the other files it names in paths.
fn imports(sources: &Sources) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<Vec<String>, &str> = sources
        .keys()
        .map(|file| (module_of(file), file.as_str()))
        .collect();
    let resolve = |path: &[String]| {
        (1..=path.len())
            .rev()
            .find_map(|len| modules.get(&path[..len]).copied())
    };
    let mut graph = BTreeMap::new();
    for (file, text) in sources {
        let here = module_of(file);
        let mut targets = BTreeSet::new();
        for path in paths(&code_without_tests(text)) {
            let Some(absolute) = absolute(&here, &path) else {
                continue;
            };
            if let Some(target) = resolve(&absolute)
                && target != file
            {
                targets.insert(target.to_owned());
            }
        }
        graph.insert(file.clone(), targets);
    }
    graph
}

/// `crate::a`, `super::super::b`, `self::c` as seen from module `here`, made absolute.
fn absolute(here: &[String], path: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => here[..here.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    let mut rest = rest;
    while let Some((segment, tail)) = rest.split_first() {
        if segment != "super" {
            break;
        }
        base.pop()?;
        rest = tail;
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The source with comments and a trailing `#[cfg(test)] mod tests` removed.
fn code_without_tests(text: &str) -> String {
    let mut code = text.to_owned();
    while let Some(at) = code.find("#[cfg(test)]\nmod tests") {
        let end = test_module_end(&code, at);
        code.replace_range(at..end, "");
    }
    code.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// End of the `mod tests;` line or of the `mod tests { … }` block that starts at `at`.
fn test_module_end(code: &str, at: usize) -> usize {
    let rest = &code[at..];
    match (rest.find(';'), rest.find('{')) {
        (Some(semi), Some(open)) if semi < open => at + semi + 1,
        (_, Some(open)) => {
            let mut depth = 0usize;
            for (offset, c) in rest[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            return at + open + offset + 1;
                        }
                    }
                    _ => {}
                }
            }
            code.len()
        }
        (Some(semi), None) => at + semi + 1,
        (None, None) => code.len(),
    }
}

/// Every path that starts with `crate`, `super` or `self`, with `{}` groups expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let tokens = tokenize(code);
    let mut found = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        let starts_path = matches!(tokens[at].as_str(), "crate" | "super" | "self")
            && tokens.get(at + 1).map(String::as_str) == Some("::")
            && (at == 0 || tokens[at - 1] != "::");
        if starts_path {
            at = use_tree(&tokens, at, Vec::new(), &mut found);
        } else {
            at += 1;
        }
    }
    found
}

/// Reads one path (or use tree) from `tokens[at..]` under `prefix`; returns where it ended.
fn use_tree(
    tokens: &[String],
    mut at: usize,
    mut prefix: Vec<String>,
    found: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match tokens.get(at).map(String::as_str) {
            Some("{") => {
                at += 1;
                while at < tokens.len() && tokens[at] != "}" {
                    if tokens[at] == "," {
                        at += 1;
                    } else {
                        at = use_tree(tokens, at, prefix.clone(), found);
                    }
                }
                found.push(prefix);
                return at + 1;
            }
            Some(word) if is_identifier(word) => {
                if word != "self" || prefix.is_empty() {
                    prefix.push(word.to_owned());
                }
                at += 1;
                if tokens.get(at).map(String::as_str) == Some("::") {
                    at += 1;
                } else {
                    found.push(prefix);
                    return at;
                }
            }
            _ => {
                found.push(prefix);
                return at;
            }
        }
    }
}

fn is_identifier(token: &str) -> bool {
    token.chars().all(|c| c.is_alphanumeric() || c == '_') && !token.is_empty()
}

/// Identifiers, `::` and single punctuation characters; string literals skipped.
fn tokenize(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut word = c.to_string();
            while let Some(&next) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                word.push(next);
                chars.next();
            }
            tokens.push(word);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            tokens.push("::".to_owned());
        } else if c == '\'' && chars.clone().take(2).eq(['"', '\'']) {
            chars.nth(1);
        } else if c == '"' {
            let mut escaped = false;
            for inner in chars.by_ref() {
                match (escaped, inner) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    _ => escaped = false,
                }
            }
        } else if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    tokens
}

/// Strongly connected groups of more than one file (Tarjan), each sorted.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        groups: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, file: &'a str) {
            let order = self.index.len();
            self.index.insert(file, order);
            self.low.insert(file, order);
            self.stack.push(file);
            self.on_stack.insert(file);
            for next in self.graph.get(file).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[file].min(self.low[next]);
                    self.low.insert(file, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[file].min(self.index[next]);
                    self.low.insert(file, low);
                }
            }
            if self.low[file] == self.index[file] {
                let mut group = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    group.push(member.to_owned());
                    if member == file {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.groups.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        groups: Vec::new(),
    };
    for file in graph.keys() {
        if !walk.index.contains_key(file.as_str()) {
            walk.visit(file);
        }
    }
    walk.groups
}
