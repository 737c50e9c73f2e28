//! Fuzzing the code that meets outside data first, with `proptest` on stable
//! Rust: trigger parsing (arbitrary JSON, arbitrary bytes, and the real
//! fixtures of `tests/fixtures/` mutated), stop classification, redaction,
//! and subject / message rendering. Properties: nothing panics; malformed
//! input is refused with a typed error (`TriggerError`, answered to Lambda
//! as a non-retryable `InvalidEvent`); a known secret never leaves through a
//! rendered message; subjects stay ASCII, one line, under 100 characters.
//!
//! `FUZZ_CASES` (6000) cases in total, shared among the targets (each gets
//! its share, at least one); the suite prints one parseable line:
//! `ADVERSITY fuzz cases=<run> panics=<n> failures=<n> targets=<n> seed=<seed>`.
//! `FUZZ_SEED` (else `AUTOPILOT_SEED`, pinned by scripts/test.sh; else the
//! clock) seeds every target's generator (target `i` gets seed + `i`): a
//! failure replays with the seed its message names.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use serde_json::{Value, json};
use shared::AutopilotError;
use shared::context::Function;
use shared::diagnosis::classify::{classify_stop, refine_with_log};
use shared::notify::render::{
    AlertView, EvidenceStatus, Links, ResolvedView, fit_body, render_alert, render_resolved, subject_line,
};
use shared::outcome::{ActionRecord, ActionStatus, Cause, Kind, Severity};
use shared::redact::Redactor;
use shared::trigger::{ContainerState, TaskStateChange, Trigger};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

/// A secret value planted in rendered inputs; it must never come out.
const PLANTED: &str = "hunter2-Fuzz3dSecret!q7";

// ---------------------------------------------------------------- inputs

/// Every fixture under tests/fixtures (JSON), as values.
fn fixtures() -> Vec<(String, Value)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, Value)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                // A fixture of a malformed input may be malformed JSON too: then it is bytes only.
                if let Ok(v) = serde_json::from_str(&text) {
                    out.push((p.display().to_string(), v));
                }
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut out = Vec::new();
    walk(&root, &mut out);
    assert!(out.len() > 50, "the fixtures under {} were not found", root.display());
    out
}

/// Keys the parsers look at, so that arbitrary objects reach past the first check.
const KEYS: &[&str] = &[
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
    "Records",
    "EventSource",
    "Sns",
    "Message",
    "Subject",
    "Type",
    "MessageId",
    "TopicArn",
    "eventName",
    "eventType",
    "deploymentId",
    "reason",
    "clusterArn",
    "taskArn",
    "taskDefinitionArn",
    "group",
    "lastStatus",
    "stopCode",
    "stoppedReason",
    "containers",
    "exitCode",
    "name",
    "alarmName",
    "state",
    "value",
    "timestamp",
    "previousState",
    "configuration",
    "metrics",
    "metricStat",
    "metric",
    "dimensions",
    "namespace",
    "alarmData",
    "AlarmName",
    "NewStateValue",
    "NewStateReason",
    "StateChangeTime",
    "Trigger",
    "Dimensions",
    "action",
    "cluster",
    "service",
    "dry_run",
    "desired_count",
    "task_definition",
    "confirm",
    "request_id",
    "requested_by",
    "job",
    "pipeline",
    "stage",
    "execution-id",
];

/// Values the parsers compare against.
const WORDS: &[&str] = &[
    "aws.ecs",
    "aws.cloudwatch",
    "aws.codepipeline",
    "aws.events",
    "aws:sns",
    "ECS Task State Change",
    "ECS Service Action",
    "ECS Deployment State Change",
    "ECS Container Instance State Change",
    "CloudWatch Alarm State Change",
    "Scheduled Event",
    "CodePipeline Pipeline Execution State Change",
    "STOPPED",
    "RUNNING",
    "ALARM",
    "OK",
    "INSUFFICIENT_DATA",
    "SERVICE_DEPLOYMENT_FAILED",
    "SERVICE_DEPLOYMENT_COMPLETED",
    "SERVICE_STEADY_STATE",
    "EssentialContainerExited",
    "TaskFailedToStart",
    "OutOfMemoryError",
    "CannotPullContainerError",
    "ResourceInitializationError",
    "service:api",
    "daily",
    "rollback",
    "scale",
    "scale-to-zero",
    "arn:aws:ecs:us-east-1:111122223333:service/prod/api",
    "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
    "arn:aws:ecs:us-east-1:111122223333:task/prod/abc",
    "exec format error",
    "2026-11-20T14:02:11Z",
    "",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_string),
        2 => any::<String>(),
        1 => "[\\x00-\\x1f\\x7f\u{fffd}\"\\\\{}\\[\\]:,/ -]{0,12}",
        1 => "[0-9.eE+-]{1,24}",
        1 => Just(PLANTED.to_string()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_string), 1 => any::<String>()]
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..10).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One change to a document: at a path chosen by `choice`s, do `op` with `with`.
#[derive(Debug, Clone)]
struct Mutation {
    choices: Vec<usize>,
    op: u8,
    with: Value,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (prop::collection::vec(any::<usize>(), 0..6), 0u8..9, arbitrary_json()).prop_map(|(choices, op, with)| Mutation {
        choices,
        op,
        with,
    })
}

/// Walk into `v` by `choices` (object entries or array items), as deep as it goes.
fn node<'a>(v: &'a mut Value, choices: &[usize]) -> &'a mut Value {
    let Some((first, rest)) = choices.split_first() else { return v };
    let has_children = match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    };
    if !has_children {
        return v;
    }
    match v {
        Value::Object(m) => {
            let n = m.len();
            let child = m.values_mut().nth(first % n).expect("a child within the length");
            node(child, rest)
        }
        Value::Array(a) => {
            let n = a.len();
            node(&mut a[first % n], rest)
        }
        _ => v,
    }
}

fn apply(doc: &mut Value, m: &Mutation) {
    let target = node(doc, &m.choices);
    match m.op {
        // Another value, of any type.
        0 => *target = m.with.clone(),
        1 => *target = Value::Null,
        // Drop a key (or an item).
        2 => match target {
            Value::Object(map) if !map.is_empty() => {
                let k = map.keys().nth(m.choices.len() % map.len()).cloned().unwrap_or_default();
                map.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                a.remove(m.choices.len() % a.len());
            }
            _ => *target = Value::Object(Default::default()),
        },
        // A number as a string, a string as a number, truncated text.
        3 => {
            *target = match target.take() {
                Value::Number(n) => Value::String(n.to_string()),
                Value::String(s) => s
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| Value::String(s.chars().take(s.chars().count() / 2).collect()), Value::Number),
                other => Value::String(other.to_string()),
            }
        }
        // A key added where the parser does not expect it.
        4 => {
            if let Value::Object(map) = target {
                map.insert(KEYS[m.choices.len() % KEYS.len()].to_string(), m.with.clone());
            } else {
                *target = json!({ KEYS[m.choices.len() % KEYS.len()]: m.with.clone() });
            }
        }
        // Wrapped in a list, as SNS batches and EventBridge resources are.
        5 => *target = Value::Array(vec![target.take()]),
        // Nested JSON as text (SNS Message), possibly cut short.
        6 => {
            let t = target.to_string();
            let cut = if m.choices.is_empty() { t.len() } else { m.choices[0] % (t.len() + 1) };
            *target = Value::String(t.get(..cut).unwrap_or(&t).to_string());
        }
        // The whole document wrapped in an SNS envelope.
        7 => {
            let inner = doc.to_string();
            *doc =
                json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": inner, "Subject": m.with.clone()}}]});
        }
        // Huge text.
        _ => *target = Value::String(PLANTED.repeat(1 + m.choices.len() * 200)),
    }
}

// ---------------------------------------------------------------- properties

/// Parse one input: no panic; refused input is a typed, non-retryable
/// `InvalidEvent`; a parsed trigger answers every question asked of it.
fn parse_ok_or_typed_error(input: &Value) -> Result<(), TestCaseError> {
    match Trigger::parse(input) {
        Ok(t) => {
            let _ = (t.kind(), t.cluster_service(), t.event_id());
            let _ = Function::for_trigger(&t);
            for f in [Function::EcsEvents, Function::AlarmResponder, Function::Runbook] {
                if let Err(e) = f.check(&t) {
                    prop_assert_eq!(e.error_type(), "InvalidEvent", "{}", e);
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert!(!message.is_empty());
            let as_lambda_error = AutopilotError::from(e);
            prop_assert_eq!(as_lambda_error.error_type(), "InvalidEvent");
            prop_assert!(!as_lambda_error.is_retryable());
        }
    }
    Ok(())
}

fn stop() -> impl Strategy<Value = TaskStateChange> {
    let opt = || prop::option::of(text());
    let container =
        (text(), opt(), prop::option::of(any::<i64>()), opt()).prop_map(|(name, reason, exit_code, image)| {
            ContainerState { name, reason, exit_code, image, ..Default::default() }
        });
    ((text(), text(), opt(), opt(), opt()), (opt(), opt(), opt(), opt()), prop::collection::vec(container, 0..4))
        .prop_map(
            |(
                (cluster_arn, task_arn, task_definition_arn, group, last_status),
                (stop_code, stopped_reason, started_by, stopped_at),
                containers,
            )| {
                TaskStateChange {
                    cluster_arn,
                    task_arn,
                    task_definition_arn,
                    group,
                    last_status,
                    stop_code,
                    stopped_reason,
                    started_by,
                    stopped_at,
                    containers,
                    ..Default::default()
                }
            },
        )
}

fn classify_without_panic(task: &TaskStateChange, log: &[String]) -> Result<(), TestCaseError> {
    let v = classify_stop(task);
    prop_assert!(Cause::ALL.contains(&v.cause), "{:?}", v.cause);
    prop_assert!(!v.explanation.is_empty());
    let refined = refine_with_log(v.cause, log);
    prop_assert!(Cause::ALL.contains(&refined));
    let _ = (task.is_stopped(), task.task_id(), task.service_name());
    Ok(())
}

fn links(cluster: &str, service: &str) -> Links {
    Links { region: "us-east-1".into(), cluster: cluster.into(), service: service.into() }
}

fn subject_is_sound(subject: &str) -> Result<(), TestCaseError> {
    prop_assert!(subject.is_ascii(), "{subject:?}");
    prop_assert!(subject.len() < 100, "{} chars: {subject:?}", subject.len());
    prop_assert!(!subject.contains('\n') && !subject.contains('\r'), "{subject:?}");
    Ok(())
}

#[derive(Debug, Clone)]
struct Rendered {
    cluster: String,
    service: String,
    incident: String,
    problem: String,
    findings: Vec<String>,
    log_lines: Vec<String>,
    action_detail: String,
    why: String,
}

fn rendered() -> impl Strategy<Value = Rendered> {
    (
        (text(), text(), text(), text()),
        (prop::collection::vec(text(), 0..6), prop::collection::vec(text(), 0..6), text(), text()),
    )
        .prop_map(|((cluster, service, incident, problem), (findings, log_lines, action_detail, why))| Rendered {
            cluster,
            service,
            incident,
            problem,
            findings,
            log_lines,
            action_detail,
            why,
        })
}

fn render_is_sound(r: &Rendered, update: bool, severity: Severity, cause: Cause) -> Result<(), TestCaseError> {
    let redactor = Redactor::with_known_secrets([PLANTED.to_string()]);
    let actions =
        [ActionRecord { action: "rollback".into(), status: ActionStatus::Executed, detail: r.action_detail.clone() }];
    let findings: Vec<String> = r.findings.iter().map(|f| format!("{f} {PLANTED}")).collect();
    {
        let view = AlertView {
            update,
            kind: Kind::EcsTaskStopped,
            severity,
            cause,
            cluster: &r.cluster,
            service: &r.service,
            incident: &r.incident,
            problem: &r.problem,
            opened_at: "2026-11-20T14:02:11Z",
            impact: vec![r.why.clone()],
            status: format!("OPEN - {}", r.why),
            findings: findings.clone(),
            log_lines: r.log_lines.clone(),
            log_source: Some((r.cluster.clone(), r.service.clone())),
            actions: &actions,
            evidence: if update {
                EvidenceStatus::NotCaptured(r.why.clone())
            } else {
                EvidenceStatus::Stored(r.why.clone())
            },
            evidence_location: Some((r.cluster.clone(), r.service.clone())),
            links: links(&r.cluster, &r.service),
        };
        let m = render_alert(&view, &redactor);
        subject_is_sound(&subject_line(&m.subject))?;
        prop_assert!(!m.body.contains(PLANTED), "the planted secret left in an alert");
        prop_assert!(!m.subject.contains(PLANTED));
        prop_assert!(m.body.contains("Incident:"));
        prop_assert!(fit_body(&m.body).len() <= shared::notify::render::MAX_BODY_BYTES);
    }
    let notes: Vec<String> = r.findings.iter().map(|f| format!("{f} {PLANTED}")).collect();
    let view = ResolvedView {
        kind: Kind::EcsServiceAction,
        severity,
        cause,
        cluster: &r.cluster,
        service: &r.service,
        incident: &r.incident,
        problem: &r.problem,
        opened_at: "2026-11-20T14:02:11Z",
        resolved_at: "2026-11-20T14:32:11Z",
        resolved_by: &r.why,
        time_to_recover_seconds: r.why.len() as i64 * 37 - 100,
        failures: r.findings.len() as u32,
        notes: &notes,
        evidence: Some(&r.why),
        links: links(&r.cluster, &r.service),
        report: Some(&r.why),
        actions: &actions,
    };
    let m = render_resolved(&view, &redactor);
    subject_is_sound(&subject_line(&m.subject))?;
    prop_assert!(!m.body.contains(PLANTED), "the planted secret left in a resolution");
    Ok(())
}

// ---------------------------------------------------------------- the runner

struct Target {
    name: &'static str,
    /// Share of the cases (percent): rendering and redaction run the
    /// redactor's patterns over kilobytes and cost a thousand parses each.
    weight: u64,
    run: fn(&mut TestRunner, &Counter) -> Result<(), String>,
}

#[derive(Default)]
struct Counter {
    cases: AtomicU64,
    panics: AtomicU64,
    millis: AtomicU64,
}

impl Counter {
    /// Run `body`, counting the case and turning a panic into a failing case.
    fn case(&self, body: impl FnOnce() -> Result<(), TestCaseError>) -> Result<(), TestCaseError> {
        self.cases.fetch_add(1, Ordering::Relaxed);
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(r) => r,
            Err(p) => {
                self.panics.fetch_add(1, Ordering::Relaxed);
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(TestCaseError::fail(format!("panicked: {what}")))
            }
        }
    }
}

fn report<T: std::fmt::Debug>(r: Result<(), TestError<T>>) -> Result<(), String> {
    r.map_err(|e| match e {
        TestError::Fail(why, input) => format!("{why}; minimal input: {input:?}"),
        TestError::Abort(why) => format!("aborted: {why}"),
    })
}

fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "parse-arbitrary-json",
            weight: 30,
            run: |runner, c| report(runner.run(&arbitrary_json(), |v| c.case(|| parse_ok_or_typed_error(&v)))),
        },
        Target {
            name: "parse-mutated-fixtures",
            weight: 30,
            run: |runner, c| {
                let docs = fixtures();
                let strategy = (prop::sample::select(docs), prop::collection::vec(mutation(), 1..4));
                report(runner.run(&strategy, |((_, mut doc), changes)| {
                    c.case(|| {
                        for m in &changes {
                            apply(&mut doc, m);
                        }
                        parse_ok_or_typed_error(&doc)
                    })
                }))
            },
        },
        Target {
            name: "parse-bytes",
            weight: 15,
            run: |runner, c| {
                let docs: Vec<String> = fixtures().into_iter().map(|(_, v)| v.to_string()).collect();
                let strategy = (
                    prop::sample::select(docs),
                    any::<usize>(),
                    any::<usize>(),
                    prop::collection::vec(any::<u8>(), 0..16),
                );
                report(runner.run(&strategy, |(text, at, len, junk)| {
                    c.case(|| {
                        // Text cut and spliced with arbitrary bytes, as a broken caller sends it.
                        let bytes = text.into_bytes();
                        let at = at % (bytes.len() + 1);
                        let end = (at + len % 32).min(bytes.len());
                        let mut spliced = bytes[..at].to_vec();
                        spliced.extend_from_slice(&junk);
                        spliced.extend_from_slice(&bytes[end..]);
                        if let Ok(v) = serde_json::from_slice::<Value>(&spliced) {
                            parse_ok_or_typed_error(&v)?;
                        }
                        Ok(())
                    })
                }))
            },
        },
        Target {
            name: "classify-stops",
            weight: 15,
            run: |runner, c| {
                let strategy = (stop(), prop::collection::vec(text(), 0..8));
                report(runner.run(&strategy, |(task, log)| c.case(|| classify_without_panic(&task, &log))))
            },
        },
        Target {
            name: "redaction",
            weight: 6,
            run: |runner, c| {
                let strategy = (prop::collection::vec(text(), 0..12), arbitrary_json(), "[A-Za-z0-9]{24}");
                report(runner.run(&strategy, |(parts, mut doc, secret)| {
                    c.case(|| {
                        let red = Redactor::with_known_secrets([secret.clone()]);
                        let planted = format!("{}{secret}{}", parts.concat(), parts.join("\n"));
                        let out = red.text(&planted);
                        prop_assert!(!out.contains(&secret), "{out:?}");
                        let lines: Vec<&str> = planted.split('\n').collect();
                        let out = red.lines(&lines);
                        prop_assert_eq!(out.len(), lines.len());
                        red.json(&mut doc);
                        let mut wrapped = json!({"message": planted, "doc": doc});
                        red.json(&mut wrapped);
                        prop_assert!(!wrapped.to_string().contains(&secret));
                        Ok(())
                    })
                }))
            },
        },
        Target {
            name: "render-subject-and-message",
            weight: 4,
            run: |runner, c| {
                let strategy = (
                    rendered(),
                    prop::sample::select(vec![Severity::Sev1, Severity::Sev2, Severity::Sev3, Severity::Info]),
                    prop::sample::select(Cause::ALL.to_vec()),
                    (any::<String>(), any::<bool>()),
                );
                report(runner.run(&strategy, |(r, severity, cause, (raw, update))| {
                    c.case(|| {
                        subject_is_sound(&subject_line(&raw))?;
                        render_is_sound(&r, update, severity, cause)
                    })
                }))
            },
        },
    ]
}

#[test]
fn fuzz_targets_never_panic_and_refuse_malformed_input_with_typed_errors() {
    let total: u64 = std::env::var("FUZZ_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(6000);
    let seed = fuzz_seed();
    let _ = writeln!(std::io::stdout().lock(), "fuzz: FUZZ_SEED={seed} FUZZ_CASES={total}");
    let targets = targets();
    let weights: u64 = targets.iter().map(|t| t.weight).sum();
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(targets.len());
    let counters: Vec<Counter> = targets.iter().map(|_| Counter::default()).collect();
    let results: Vec<std::sync::Mutex<Option<Result<(), String>>>> =
        targets.iter().map(|_| Default::default()).collect();
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(t) = targets.get(i) else { return };
                    let cases = (total * t.weight).div_ceil(weights).max(1);
                    let config = Config {
                        cases: u32::try_from(cases).unwrap_or(u32::MAX),
                        // No regression files: they would land in the source tree.
                        failure_persistence: None,
                        max_shrink_iters: 4096,
                        rng_seed: RngSeed::Fixed(seed.wrapping_add(i as u64)),
                        ..Config::default()
                    };
                    let mut runner = TestRunner::new(config);
                    let began = std::time::Instant::now();
                    let r = (t.run)(&mut runner, &counters[i]);
                    counters[i].millis.store(began.elapsed().as_millis() as u64, Ordering::Relaxed);
                    *results[i].lock().expect("result slot") = Some(r);
                }
            });
        }
    });
    let mut out = std::io::stdout().lock();
    let mut failures = Vec::new();
    for ((t, c), r) in targets.iter().zip(&counters).zip(&results) {
        let r = r.lock().expect("result slot").take().unwrap_or_else(|| Err("did not run".into()));
        let _ = writeln!(
            out,
            "ADVERSITY fuzz-target {} cases={} panics={} ok={} seconds={:.1}",
            t.name,
            c.cases.load(Ordering::Relaxed),
            c.panics.load(Ordering::Relaxed),
            r.is_ok(),
            c.millis.load(Ordering::Relaxed) as f64 / 1000.0
        );
        if let Err(why) = r {
            failures.push(format!("{}: {why}", t.name));
        }
    }
    let cases: u64 = counters.iter().map(|c| c.cases.load(Ordering::Relaxed)).sum();
    let panics: u64 = counters.iter().map(|c| c.panics.load(Ordering::Relaxed)).sum();
    let _ = writeln!(
        out,
        "ADVERSITY fuzz cases={cases} panics={panics} failures={} targets={} seed={seed} seconds={:.0}",
        failures.len(),
        targets.len(),
        started.elapsed().as_secs_f64()
    );
    drop(out);
    assert!(
        failures.is_empty(),
        "{} fuzz target(s) failed (replay: FUZZ_SEED={seed} FUZZ_CASES={total}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `FUZZ_SEED`, else `AUTOPILOT_SEED` (pinned in CI), else the clock.
fn fuzz_seed() -> u64 {
    for var in ["FUZZ_SEED", "AUTOPILOT_SEED"] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
            return v.trim().parse().unwrap_or_else(|_| panic!("{var}={v}: expected a seed (an unsigned number)"));
        }
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
}
