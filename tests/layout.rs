//! The source tree keeps the shape `src/lib.rs` describes, so the layout doc cannot drift
//! and the budgets hold in CI: no source file over [`MAX_LINES`] lines, `lib.rs`'s
//! `# Layout` names every module once, and every module imports only modules listed
//! below it there (which also rules out import cycles between modules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines a source file may have: beyond it a file holds more than one concern.
const MAX_LINES: usize = 400;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `src/`, as `src/...` paths with their text.
fn sources() -> BTreeMap<String, String> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = Path::new("src").join(path.strip_prefix(src()).unwrap());
            let text = std::fs::read_to_string(&path).unwrap();
            (rel.display().to_string(), text)
        })
        .collect()
}

/// The modules `lib.rs` declares.
fn declared(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.strip_suffix(';')?.trim().to_owned())
        })
        .collect()
}

/// The modules `lib.rs`'s `# Layout` bullets name (`- [`x`]: …`), in order.
fn layout(lib: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with('#') {
            inside = doc == "# Layout";
            continue;
        }
        let Some(bullet) = doc.strip_prefix("- ").filter(|_| inside) else {
            continue;
        };
        let head = bullet.split(':').next().unwrap_or_default();
        for part in head.split("[`").skip(1) {
            if let Some((name, _)) = part.split_once("`]") {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The top-level module a file belongs to (`src/x.rs`, `src/x_tests.rs`, `src/x/…`).
fn module_of(rel: &str) -> Option<String> {
    let first = rel.strip_prefix("src/")?.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    let name = name.strip_suffix("_tests").unwrap_or(name);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The modules a file's code names as `crate::x` (comments and doc comments aside).
/// `crate::{a, b}` is reported as `{`, so a grouped import cannot hide a dependency.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &line[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            refs.insert(if name.is_empty() {
                rest.chars().take(1).collect()
            } else {
                name
            });
        }
    }
    refs
}

#[test]
fn no_source_file_is_longer_than_400_lines() {
    let problems: Vec<String> = sources()
        .into_iter()
        .map(|(path, text)| (path, text.lines().count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(path, lines)| format!(
            "{path} has {lines} lines (at most {MAX_LINES}): split it by concern, or move its unit tests to a sibling *_tests.rs"
        ))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_layout_in_lib_rs_names_every_module_exactly_once() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let listed = layout(&lib);
    let declared: BTreeSet<String> = declared(&lib).into_iter().collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let twice: Vec<&String> = listed
        .iter()
        .filter(|n| !seen.insert((*n).clone()))
        .collect();
    let missing: Vec<&String> = declared.difference(&seen).collect();
    let stale: Vec<&String> = seen.difference(&declared).collect();
    assert!(
        twice.is_empty() && missing.is_empty() && stale.is_empty(),
        "lib.rs's # Layout: listed twice {twice:?}; declared but not listed {missing:?}; listed but not declared {stale:?}"
    );
}

#[test]
fn every_module_imports_only_modules_listed_below_it_in_the_layout() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let order: BTreeMap<String, usize> = layout(&lib)
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    let mut problems = Vec::new();
    for (path, text) in sources() {
        let Some(module) = module_of(&path) else {
            continue;
        };
        let Some(&at) = order.get(&module) else {
            problems.push(format!(
                "{path}: module {module} is not in lib.rs's # Layout"
            ));
            continue;
        };
        for used in crate_refs(&text).into_iter().filter(|u| *u != module) {
            match order.get(&used) {
                Some(&below) if below > at => {}
                Some(_) => problems.push(format!(
                    "{path}: {module} imports crate::{used}, which lib.rs's # Layout lists above it (move the shared type below both, or reorder the layout if it is wrong)"
                )),
                None if used == "{" => problems.push(format!(
                    "{path}: a grouped `crate::{{…}}` import hides which modules it uses; write one `use crate::module::…` per module"
                )),
                None => problems.push(format!(
                    "{path}: crate::{used} is not a module listed in lib.rs's # Layout"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
