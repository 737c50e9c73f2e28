//! Dependencies point one way (the layers of `src/lib.rs`): a module may use
//! its own layer and the layers above it in the module map, never one below.
//! Pure decisions never touch the SDK, the adapters or the clock. No two
//! modules import each other, directly or round a circle; no flow imports
//! another flow. This reads the source, so a new `use crate::flows::…` in the
//! engine fails the test suite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path → layer (lower numbers are imported by higher ones). A path
/// with `::` gives one file of a module its own layer (the incident
/// machine is pure, its shell drives the engine).
const LAYERS: &[(&str, u8)] = &[
    ("arn", 1),
    ("fleet", 1),
    ("cause", 1),
    ("config", 1),
    ("error", 1),
    ("iam", 1),
    ("invocation", 1),
    ("lenient", 1),
    ("outcome", 1),
    ("redact", 1),
    ("telemetry", 1),
    ("time", 1),
    ("diagnosis", 2),
    ("evidence", 2),
    ("incident", 2),
    ("notify", 2),
    ("pipeline", 2),
    ("reports", 2),
    ("snapshot", 2),
    ("trigger", 2),
    ("adapters", 3),
    ("actions", 4),
    ("context", 5),
    ("incident::shell", 6),
    ("incident::service", 6),
    ("incident::pipeline", 6),
    ("incident::approval", 6),
    ("flows", 7),
];

/// Files whose code must stay pure: no SDK types, no adapters, no clock.
const PURE: &[&str] = &[
    "cause.rs",
    "outcome.rs",
    "redact.rs",
    "redact/",
    "lenient.rs",
    "arn.rs",
    "snapshot.rs",
    "notify/",
    "evidence.rs",
    "reports/",
    "incident/machine.rs",
    "incident/subject.rs",
    "pipeline.rs",
    "pipeline/",
    "diagnosis/",
    "trigger/",
    "actions/mod.rs",
    "actions/rollback_plan.rs",
    "actions/scale_plan.rs",
];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate's source files as (path relative to `src/`, text).
fn crate_sources() -> Vec<(String, String)> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(p).unwrap())
        })
        .collect()
}

/// `incident/shell.rs` → `incident::shell`; `incident/mod.rs` → `incident`.
fn module_of(relative: &str) -> String {
    relative.trim_end_matches(".rs").trim_end_matches("/mod").replace('/', "::")
}

fn layer_of(module: &str) -> Option<u8> {
    // The longest listed path the module is (or lies under).
    LAYERS
        .iter()
        .filter(|(m, _)| module == *m || module.starts_with(&format!("{m}::")))
        .max_by_key(|(m, _)| m.len())
        .map(|(_, l)| *l)
}

fn code_of(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// Module paths a line uses (`crate::a::b`, groups, and `super::x`
/// resolved against `own`), outside comments. Paths keep two segments at
/// most: enough to tell `incident::machine` from `incident::shell`.
fn uses(line: &str, own: &str) -> Vec<String> {
    let code = code_of(line);
    let mut out = Vec::new();
    let path_at = |rest: &str| -> String {
        rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or("")
            .split("::")
            .filter(|s| !s.is_empty())
            .take(2)
            .collect::<Vec<_>>()
            .join("::")
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(inner) = after.strip_prefix('{') {
            let inner = inner.split('}').next().unwrap_or("");
            out.extend(inner.split(',').map(|p| path_at(p.trim())).filter(|p| !p.is_empty()));
        } else {
            let p = path_at(after);
            if !p.is_empty() {
                out.push(p);
            }
        }
        rest = after;
    }
    let parent = own.rsplit_once("::").map(|(p, _)| p.to_string());
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        let after = &rest[i + "super::".len()..];
        let first = |p: &str| p.split("::").next().unwrap_or("").trim().to_string();
        let names: Vec<String> = match after.strip_prefix('{') {
            Some(inner) => inner.split('}').next().unwrap_or("").split(',').map(first).collect(),
            None => vec![first(after)],
        };
        if let Some(parent) = &parent {
            out.extend(names.into_iter().filter(|n| !n.is_empty()).map(|n| format!("{parent}::{n}")));
        }
        rest = after;
    }
    out
}

fn is_test_code(text: &str, line_index: usize) -> bool {
    // Everything after `#[cfg(test)]` at the start of a line is test code.
    text.lines().take(line_index).any(|l| l.trim_start().starts_with("#[cfg(test)]"))
}

/// The non-test lines of a file, numbered from 1.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if is_test_code(text, i) {
            break;
        }
        out.push((i + 1, line));
    }
    out
}

/// Upward imports, and pure code touching the SDK, adapters or the clock.
fn layering_violations(files: &[(String, String)]) -> Vec<String> {
    let mut violations = Vec::new();
    for (relative, text) in files {
        if relative == "lib.rs" {
            continue;
        }
        let module = module_of(relative);
        let Some(own) = layer_of(&module) else {
            violations.push(format!("{relative}: module `{module}` has no layer in LAYERS (add it)"));
            continue;
        };
        let pure = PURE.iter().any(|p| if p.ends_with('/') { relative.starts_with(p) } else { relative == *p });
        for (n, line) in code_lines(text) {
            for used in uses(line, &module) {
                match layer_of(&used) {
                    Some(l) if l > own => violations.push(format!(
                        "{relative}:{n}: layer {own} module `{module}` uses `crate::{used}` (layer {l})"
                    )),
                    Some(_) => {}
                    None => violations.push(format!("{relative}:{n}: `{used}` has no layer")),
                }
                if pure && used.starts_with("adapters") {
                    violations.push(format!("{relative}:{n}: pure code uses the adapters"));
                }
            }
            let code = code_of(line);
            if pure && (code.contains("aws_sdk_") || code.contains("aws_config") || code.contains("Utc::now")) {
                violations.push(format!("{relative}:{n}: pure code touches the SDK or the clock: {}", line.trim()));
            }
        }
    }
    violations
}

/// The module (file) a used path names: the longest prefix that is a file.
fn node_of(used: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut path = used.to_string();
    loop {
        if modules.contains(&path) {
            return Some(path);
        }
        path = path.rsplit_once("::")?.0.to_string();
    }
}

/// Whether one module lies inside the other (a parent hosting its
/// children's helpers and re-exporting them is structure, not a circle).
fn nested(a: &str, b: &str) -> bool {
    a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// Circles in the import graph between files (nesting aside): each as its
/// path, `a -> b -> a`.
fn circles(files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeSet<String> = files.iter().map(|(r, _)| module_of(r)).filter(|m| m != "lib").collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (relative, text) in files {
        let from = module_of(relative);
        if from == "lib" {
            continue;
        }
        for (_, line) in code_lines(text) {
            for used in uses(line, &from) {
                if let Some(to) = node_of(&used, &modules)
                    && to != from
                    && !nested(&from, &to)
                {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Depth-first search for a back edge; each circle reported once.
    let mut found = BTreeSet::new();
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut BTreeSet<String>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut circle: Vec<String> = stack[at..].to_vec();
            // One spelling per circle: start at its smallest module.
            let start = circle.iter().enumerate().min_by_key(|(_, n)| (*n).clone()).map_or(0, |(i, _)| i);
            circle.rotate_left(start);
            let first = circle[0].clone();
            circle.push(first);
            found.insert(circle.join(" -> "));
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, stack, done, found);
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done, &mut found);
    }
    found.into_iter().collect()
}

/// Flows that import another flow (`flows::<a>` using `flows::<b>`; the
/// invocation wrapper `flows/mod.rs` is everyone's).
fn flow_imports(files: &[(String, String)]) -> Vec<String> {
    let flows: BTreeSet<String> = files
        .iter()
        .map(|(r, _)| module_of(r))
        .filter(|m| m.starts_with("flows::") && m.matches("::").count() == 1)
        .collect();
    let mut out = Vec::new();
    for (relative, text) in files {
        let from = module_of(relative);
        if !flows.contains(&from) {
            continue;
        }
        for (n, line) in code_lines(text) {
            for used in uses(line, &from) {
                if flows.contains(&used) && used != from {
                    out.push(format!("{relative}:{n}: flow `{from}` imports flow `{used}`"));
                }
            }
        }
    }
    out
}

#[test]
fn no_module_imports_a_lower_layer_and_pure_code_touches_no_aws() {
    let files = crate_sources();
    assert!(files.len() > 30, "expected the whole crate, found {} files", files.len());
    let violations = layering_violations(&files);
    assert!(violations.is_empty(), "{} layering violation(s):\n{}", violations.len(), violations.join("\n"));
}

#[test]
fn no_two_modules_import_each_other_round_a_circle() {
    let found = circles(&crate_sources());
    assert!(found.is_empty(), "{} circle(s):\n{}", found.len(), found.join("\n"));
}

#[test]
fn no_flow_imports_another_flow() {
    let found = flow_imports(&crate_sources());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_checks_catch_an_upward_import_a_planted_circle_and_a_flow_importing_a_flow() {
    // The parser the checks rest on.
    assert_eq!(uses("use crate::flows::ecs::FLOW;", "actions::engine"), vec!["flows::ecs"]);
    assert_eq!(uses("    let x = crate::context::App::new(); // crate::ignored", "flows::ecs"), vec!["context::App"]);
    assert_eq!(
        uses("use crate::{adapters::s3, render::Message};", "flows::ecs"),
        vec!["adapters::s3", "render::Message"]
    );
    assert_eq!(uses("use super::{Flow, once};", "flows::ecs"), vec!["flows::Flow", "flows::once"]);
    assert!(layer_of("actions") < layer_of("flows"));
    assert!(layer_of("incident::machine") < layer_of("actions"), "the machine is pure");
    assert!(layer_of("incident::shell") > layer_of("actions"), "the shell drives the engine");
    // Planted: the machine calling its shell, a circle of three pure
    // modules, and one flow using another.
    let planted = |files: &[(&str, &str)]| -> Vec<(String, String)> {
        files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()
    };
    let upward = planted(&[("incident/machine.rs", "use crate::incident::shell::drive;\n")]);
    assert_eq!(layering_violations(&upward).len(), 1, "{:?}", layering_violations(&upward));
    let circle = planted(&[
        ("notify/render.rs", "use crate::pipeline::x;\n"),
        ("pipeline.rs", "use crate::evidence::y;\n"),
        ("evidence.rs", "pub fn f() { crate::notify::render::z(); }\n"),
        ("snapshot.rs", "use crate::notify::render::w;\n#[cfg(test)]\nuse crate::snapshot::q;\n"),
    ]);
    assert_eq!(circles(&circle), vec!["evidence -> notify::render -> pipeline -> evidence".to_string()]);
    let parent_child = planted(&[
        ("adapters/state/mod.rs", "pub use incidents::Write;\nmod incidents;\n"),
        ("adapters/state/incidents.rs", "use super::{keys, s};\n"),
    ]);
    assert!(circles(&parent_child).is_empty(), "a parent and its child are not a circle");
    let flows = planted(&[
        ("flows/mod.rs", "pub mod ecs; pub mod alarm;\n"),
        ("flows/alarm.rs", "use super::{Flow, once};\nuse super::ecs::handle;\n"),
        ("flows/ecs.rs", "use crate::flows::alarm::map;\n"),
    ]);
    assert_eq!(flow_imports(&flows).len(), 2, "{:?}", flow_imports(&flows));
}

#[test]
fn no_adapter_returns_a_string_error() {
    // `Result<_, String>` loses the service, operation and retryability.
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    // The same pattern as `grep -rn 'Result<[^>]*String>' shared/src`.
    let pattern = regex_lite::Regex::new(r"Result<[^>]*String>").unwrap();
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if pattern.is_match(line) {
                found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "Result<_, String> found:\n{}", found.join("\n"));
}
