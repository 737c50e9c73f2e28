//! Dependencies point one way (the layers of `src/lib.rs`): a module may use
//! its own layer and the layers above it in the module map, never one below.
//! Pure decisions also never touch the SDK or the adapters. This reads the
//! source, so a new `use crate::flows::…` in the engine fails the test suite.

use std::path::{Path, PathBuf};

/// Top-level module → layer (lower numbers are imported by higher ones).
const LAYERS: &[(&str, u8)] = &[
    ("arn", 1),
    ("cause", 1),
    ("config", 1),
    ("error", 1),
    ("invocation", 1),
    ("lenient", 1),
    ("outcome", 1),
    ("redact", 1),
    ("telemetry", 1),
    ("time", 1),
    ("chat", 2),
    ("daily_report", 2),
    ("weekly_report", 2),
    ("diagnosis", 2),
    ("evidence", 2),
    ("lifecycle", 2),
    ("pipeline", 2),
    ("render", 2),
    ("snapshot", 2),
    ("trigger", 2),
    ("adapters", 3),
    ("actions", 4),
    ("context", 5),
    ("flows", 6),
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
    "render.rs",
    "chat.rs",
    "evidence.rs",
    "daily_report.rs",
    "weekly_report.rs",
    "lifecycle.rs",
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

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// `crate::<module>` paths a line uses, outside comments.
fn crate_uses(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.push(name);
        }
        rest = after;
    }
    // `use crate::{a, b}` groups.
    if let Some(i) = code.find("crate::{") {
        let inner = &code[i + "crate::{".len()..];
        let inner = inner.split('}').next().unwrap_or("");
        out.extend(inner.split(',').map(|p| p.trim().split("::").next().unwrap_or("").to_string()));
    }
    out.retain(|m| !m.is_empty());
    out
}

/// `super::` inside a sub-module refers to its own top-level module: allowed.
fn top_module(relative: &str) -> &str {
    relative.split('/').next().unwrap_or(relative).trim_end_matches(".rs")
}

fn is_test_code(text: &str, line_index: usize) -> bool {
    // Everything after `#[cfg(test)]` at the start of a line is test code.
    text.lines().take(line_index).any(|l| l.trim_start().starts_with("#[cfg(test)]"))
}

#[test]
fn no_module_imports_a_lower_layer_and_pure_code_touches_no_aws() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 30, "expected the whole crate, found {} files", files.len());
    let mut violations = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        if relative == "lib.rs" {
            continue;
        }
        let module = top_module(&relative);
        let Some(own) = layer_of(module) else {
            violations.push(format!("{relative}: module `{module}` has no layer in LAYERS (add it)"));
            continue;
        };
        let pure = PURE.iter().any(|p| if p.ends_with('/') { relative.starts_with(p) } else { relative == *p });
        let text = std::fs::read_to_string(path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if is_test_code(&text, i) {
                break;
            }
            for used in crate_uses(line) {
                match layer_of(&used) {
                    Some(l) if l > own => violations.push(format!(
                        "{relative}:{}: layer {own} module `{module}` uses `crate::{used}` (layer {l})",
                        i + 1
                    )),
                    Some(_) => {}
                    None => violations.push(format!("{relative}:{}: `crate::{used}` has no layer", i + 1)),
                }
                if pure && used == "adapters" {
                    violations.push(format!("{relative}:{}: pure code uses the adapters", i + 1));
                }
            }
            let code = line.split("//").next().unwrap_or("");
            if pure && (code.contains("aws_sdk_") || code.contains("aws_config") || code.contains("Utc::now")) {
                violations.push(format!(
                    "{relative}:{}: pure code touches the SDK or the clock: {}",
                    i + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{} layering violation(s):\n{}", violations.len(), violations.join("\n"));
}

#[test]
fn the_layering_check_catches_an_upward_import() {
    // The parser the check rests on: a use of a higher layer is seen.
    assert_eq!(crate_uses("use crate::flows::incident::on_problem;"), vec!["flows"]);
    assert_eq!(crate_uses("    let x = crate::context::App::new(); // crate::ignored"), vec!["context"]);
    assert_eq!(crate_uses("use crate::{adapters::s3, render::Message};"), vec!["adapters", "render"]);
    assert!(layer_of("actions") < layer_of("flows"));
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
