//! The SDK's modules form a layered graph: no two modules import each other, directly or
//! through others (issue 13). A circle means neither module can be understood, tested or
//! moved without the other.
//!
//! The graph is read from the source: a module `a` depends on `b` when a code line of
//! `src/a.rs` (or `src/a/**.rs`) names `crate::b` (in a `use`, also inside
//! `use crate::{b, ..}` groups, or inline as `crate::b::f()`). Names re-exported by
//! `lib.rs` (`crate::Telemetry`) count as the module they come from. Comment lines (and so
//! doc links) do not count. `lib.rs` itself is the root that declares every module and is
//! left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn sdk_modules_import_each_other_in_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("sdk/src/lib.rs");
    let mut sources = Vec::new();
    read_modules(&src, None, &mut sources);
    let graph = module_graph(&lib, &sources);

    // The parser must see the SDK's real imports, or an empty graph would pass trivially.
    assert!(
        graph["init"].contains("telemetry") && graph["middleware"].contains("telemetry"),
        "module graph misread: {graph:#?}"
    );
    assert_eq!(find_cycle(&graph), None, "module graph: {graph:#?}");
}

#[test]
fn a_circle_is_found_through_groups_inline_paths_and_re_exports() {
    let lib = "pub mod a;\npub mod b;\npub mod c;\npub use c::{Handle, Other};\n";
    let sources = vec![
        (
            "a".to_owned(),
            "use crate::{b::{Thing, Other}, error};\n".to_owned(),
        ),
        (
            "b".to_owned(),
            "fn f() { crate::Handle::new(); }\n".to_owned(),
        ),
        (
            "c".to_owned(),
            "/// see [`crate::b`]\nuse crate::{\n    error::E,\n    a::X,\n};\n".to_owned(),
        ),
    ];
    let graph = module_graph(lib, &sources);
    assert_eq!(
        graph["a"],
        BTreeSet::from(["b".to_owned(), "error".to_owned()])
    );
    assert_eq!(graph["b"], BTreeSet::from(["c".to_owned()]));
    assert_eq!(
        graph["c"],
        BTreeSet::from(["a".to_owned(), "error".to_owned()])
    );
    let cycle = find_cycle(&graph).expect("a -> b -> c -> a");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");

    let acyclic = vec![
        ("a".to_owned(), "use crate::b::Thing;\n".to_owned()),
        ("b".to_owned(), "use crate::c::Thing;\n".to_owned()),
        ("c".to_owned(), "// use crate::a;\n".to_owned()),
    ];
    assert_eq!(find_cycle(&module_graph(lib, &acyclic)), None);
}

/// `(module, source)` for every `.rs` file under `dir` except `lib.rs`; files in a
/// module's folder belong to that top-level module.
fn read_modules(dir: &Path, module: Option<&str>, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name")
            .to_owned();
        let owner = module.map(str::to_owned).unwrap_or_else(|| stem.clone());
        if path.is_dir() {
            read_modules(&path, Some(&owner), out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && !(module.is_none() && stem == "lib")
        {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.push((owner, text));
        }
    }
}

/// Module → the modules it names. `lib` maps re-exported names to their modules.
fn module_graph(lib: &str, sources: &[(String, String)]) -> Graph {
    let re_exports = re_exports(lib);
    let mut graph = Graph::new();
    for (module, text) in sources {
        let deps = graph.entry(module.clone()).or_default();
        for name in crate_paths(&code_only(text)) {
            let target = re_exports.get(&name).cloned().unwrap_or(name);
            if &target != module {
                deps.insert(target);
            }
        }
    }
    graph
}

/// The text without comment lines (`//`, `///`, `//!`).
fn code_only(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every `crate::` path, including each item of a
/// `crate::{..}` group.
fn crate_paths(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            names.extend(
                group_items(group)
                    .into_iter()
                    .map(|item| leading_ident(item.trim_start()))
                    .filter(|name| !name.is_empty()),
            );
        } else {
            let name = leading_ident(rest);
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// The top-level items of a `{..}` group (`group` starts after its `{`), nested groups
/// kept whole: `a::{X, Y}, b}` gives `a::{X, Y}` and ` b`.
fn group_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0_usize, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

fn leading_ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// `pub use module::Name;` and `pub use module::{A, B};` in `lib.rs`: name → module,
/// except names that are modules themselves (`crate::init` is the module, not the
/// re-exported function).
fn re_exports(lib: &str) -> BTreeMap<String, String> {
    let code = code_only(lib);
    let modules: BTreeSet<&str> = code
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("pub ");
            line.strip_prefix("mod ")?.strip_suffix(';')
        })
        .collect();
    let mut map = BTreeMap::new();
    for line in code.lines() {
        let Some(path) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let path = path.trim_end_matches(';');
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() && !modules.contains(name) {
                map.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    map
}

/// A circle as the list of modules walked (first = last), or `None`.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
