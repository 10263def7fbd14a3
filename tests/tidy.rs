//! The import rules ARCHITECTURE.md states, checked on the source text (in
//! the spirit of rust-analyzer's tidy tests): a rule that only lives in a
//! document is broken by the first hurried change.
//!
//! The sandbox is a crate of its own (`crates/sandbox`, `flexsync_sandbox`):
//! here it counts as a module named `sandbox` that flexsync's modules may or
//! may not use, and it must itself name nothing of flexsync.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules of the library.
fn modules() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("src").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        out.insert(name, path);
    }
    out
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

/// The code of a file without its `#[cfg(test)]` module (tests may use
/// anything) and without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    // The test module ends at the first top-level `}` after it (rustfmt puts
    // it in column 0); code after it still counts.
    let mut in_tests = false;
    let mut after_cfg_test = false;
    let mut kept = Vec::new();
    for line in text.lines() {
        if in_tests {
            in_tests = line != "}";
            continue;
        }
        if after_cfg_test && line.starts_with("mod tests") {
            kept.pop();
            in_tests = true;
            continue;
        }
        after_cfg_test = line == "#[cfg(test)]";
        if !line.trim_start().starts_with("//") {
            kept.push(line);
        }
    }
    kept.join("\n")
}

/// Where the sandbox crate lives.
const SANDBOX_CRATE: &str = "crates/sandbox";

/// Which top-level modules `text` names as `crate::NAME`, and `sandbox` if it
/// names the sandbox crate.
fn crate_refs(text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if text.contains("flexsync_sandbox") {
        out.insert("sandbox".to_owned());
    }
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if known.contains_key(&name) {
            out.insert(name);
        }
    }
    // `use crate::{a, b::c}` groups.
    for (i, _) in text.match_indices("crate::{") {
        let rest = &text[i + "crate::{".len()..];
        let group = &rest[..rest.find('}').unwrap_or(rest.len())];
        for part in group.split(',') {
            let name: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if known.contains_key(&name) {
                out.insert(name);
            }
        }
    }
    out
}

fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    known
        .iter()
        .map(|(name, path)| {
            let mut refs = BTreeSet::new();
            for f in rust_files(path) {
                refs.extend(crate_refs(&code(&f), &known));
            }
            refs.remove(name);
            (name.clone(), refs)
        })
        .collect()
}

#[test]
fn modules_import_only_what_architecture_md_allows() {
    let imports = imports();
    let may_not: &[(&str, &[&str])] = &[
        // The vocabulary is a leaf.
        ("model", &["*"]),
        // The planner performs no I/O: the model is all it knows.
        ("plan", &["*except model"]),
        (
            "config",
            &[
                "api", "plan", "render", "apply", "daemon", "sandbox", "cli", "planfile", "audit",
            ],
        ),
        // Views may show a saved plan (planfile's format); they never
        // fetch, load or act.
        (
            "render",
            &[
                "config", "api", "apply", "daemon", "sandbox", "cli", "audit",
            ],
        ),
        // The client and the sandbox are written independently from the
        // API reference; neither may lean on the other.
        (
            "api",
            &[
                "config", "plan", "render", "apply", "daemon", "sandbox", "cli", "planfile",
                "audit",
            ],
        ),
        // Where a snapshot meets the sandbox: it hands the sandbox a copy
        // of live teams and, like the sandbox, leans on nothing of the
        // client's.
        (
            "rehearsal",
            &[
                "api", "plan", "config", "render", "apply", "daemon", "cli", "planfile", "audit",
                "metrics",
            ],
        ),
        ("apply", &["config", "render", "daemon", "cli", "sandbox"]),
        ("daemon", &["cli", "sandbox"]),
    ];
    let mut broken = Vec::new();
    for (module, rules) in may_not {
        let used = imports.get(*module).cloned().unwrap_or_default();
        for dep in &used {
            let refused = rules.iter().any(|r| {
                *r == "*" || *r == dep || r.strip_prefix("*except ").is_some_and(|ok| ok != dep)
            });
            if refused {
                broken.push(format!("{module} imports {dep}"));
            }
        }
    }
    for (module, used) in &imports {
        if module != "cli" && used.contains("cli") {
            broken.push(format!("{module} imports cli (only main may)"));
        }
    }
    assert!(
        broken.is_empty(),
        "import rules broken:\n{}",
        broken.join("\n")
    );
}

/// Depth-first search for a cycle in `graph`.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_import_circle_between_modules() {
    if let Some(c) = cycle(&imports()) {
        panic!("import circle: {}", c.join(" -> "));
    }
}

/// A cycle among the files directly in `dir` (its `root` file, `mod.rs` or
/// `lib.rs`, aside), each naming its siblings as `super::NAME` or
/// `{prefix}NAME`.
fn file_cycle(dir: &Path, root: &str, prefix: &str) -> Option<Vec<String>> {
    let files: BTreeMap<String, PathBuf> = rust_files(dir)
        .into_iter()
        .filter(|f| f.parent() == Some(dir))
        .map(|f| (f.file_stem().unwrap().to_string_lossy().into_owned(), f))
        .filter(|(n, _)| n != root)
        .collect();
    let mut graph = BTreeMap::new();
    for (name, file) in &files {
        let text = code(file);
        let mut deps = BTreeSet::new();
        for sibling in files.keys().filter(|s| *s != name) {
            let named = [
                format!("super::{sibling}::"),
                format!("super::{sibling}}}"),
                format!("super::{sibling},"),
                format!("super::{sibling};"),
                format!("{prefix}{sibling}::"),
                format!("{prefix}{sibling};"),
            ];
            if named.iter().any(|n| text.contains(n.as_str()))
                || text.contains(&format!("super::{{{sibling}"))
            {
                deps.insert(sibling.clone());
            }
        }
        graph.insert(name.clone(), deps);
    }
    cycle(&graph)
}

#[test]
fn no_import_circle_between_the_files_of_a_module() {
    for (module, path) in modules() {
        if !path.is_dir() {
            continue;
        }
        if let Some(c) = file_cycle(&path, "mod", &format!("crate::{module}::")) {
            panic!("import circle in src/{module}/: {}", c.join(" -> "));
        }
    }
    let sandbox = Path::new(SANDBOX_CRATE).join("src");
    if let Some(c) = file_cycle(&sandbox, "lib", "crate::") {
        panic!("import circle in {}: {}", sandbox.display(), c.join(" -> "));
    }
}

/// Where `crate_dir` names the `flexsync` crate: in its sources (any
/// `flexsync::` path, `extern crate flexsync`) or as a dependency in its
/// manifest.
fn flexsync_refs(crate_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for file in rust_files(&crate_dir.join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("flexsync::") || line.contains("extern crate flexsync") {
                out.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    let manifest = crate_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    for (n, line) in text.lines().enumerate() {
        let key: String = line
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        let rest = line.trim_start()[key.len()..].trim_start();
        let names_flexsync = key == "flexsync" && (rest.starts_with('=') || rest.starts_with('.'));
        let squeezed = line.replace(' ', "");
        let renamed = squeezed.contains("package=\"flexsync\"");
        let table = squeezed.ends_with(".flexsync]");
        if names_flexsync || renamed || table {
            out.push(format!("{}:{}: {}", manifest.display(), n + 1, line.trim()));
        }
    }
    out
}

/// The functional core (the vocabulary, the declaration, the planner, the
/// views) is kept in the main crate, not a crate of its own: this is the
/// rule such a crate would have made the compiler check. It names no
/// async runtime, HTTP or network library.
#[test]
fn the_core_names_no_runtime_or_network_library() {
    let core = ["model", "config", "plan", "render", "explain", "diagnostic"];
    let banned = [
        "tokio", "reqwest", "axum", "hyper", "rustls", "notify::", "std::net",
    ];
    let known = modules();
    let mut broken = Vec::new();
    for module in core {
        let path = &known[module];
        for file in rust_files(path) {
            let text = code(&file);
            for b in banned {
                if text.contains(b) {
                    broken.push(format!("{} names {b}", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_sandbox_crate_uses_nothing_of_flexsync() {
    // The sandbox and the API client are written independently from the
    // API reference; the crate graph keeps them apart only while the
    // sandbox depends on nothing of flexsync.
    let refs = flexsync_refs(Path::new(SANDBOX_CRATE));
    assert!(
        refs.is_empty(),
        "the sandbox crate must not use flexsync:\n{}",
        refs.join("\n")
    );
}

#[test]
fn the_tidy_checks_see_a_broken_rule() {
    // The checker itself: a planner that reached for the API would be seen.
    let known = modules();
    let refs = crate_refs(
        "use crate::{api::Client, model};\nfn f() { crate::plan::x(); }",
        &known,
    );
    assert!(refs.contains("api") && refs.contains("model") && refs.contains("plan"));
    assert!(crate_refs("use flexsync_sandbox::Seed;", &known).contains("sandbox"));
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(cycle(&g).is_some());
    // A sandbox crate that reached for flexsync would be seen.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "//! x\n").unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"flexsync-sandbox\"\n[dependencies]\nserde.workspace = true\n",
    )
    .unwrap();
    assert!(flexsync_refs(dir.path()).is_empty());
    std::fs::write(
        dir.path().join("src/lib.rs"),
        "use flexsync::model::Email;\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[dependencies]\nflexsync = { path = \"../..\" }\nf = { package = \"flexsync\", path = \"../..\" }\n\
         [dev-dependencies.flexsync]\npath = \"../..\"\n",
    )
    .unwrap();
    assert_eq!(flexsync_refs(dir.path()).len(), 4);
}
