//! The fault bench: one opening path of an incident (a failed deployment, or
//! a crash loop of a freshly deployed revision) run by a real `ecs-events`
//! process through the [`FaultProxy`], with one blow at one of its calls —
//! a fault that makes the call fail for as many attempts as the SDK makes,
//! or the process killed while the call is held (before it reaches the
//! server, or after the server applied it) — then the event redelivered as
//! Lambda redelivers a failed asynchronous invocation (same request id,
//! after [`FaultBench::delay`] and twice that again) and once more as
//! EventBridge duplicates it (a new request id). [`FaultBench::round`]
//! checks the invariants ([`crate::adversity::check`]) and the path's own:
//! an SNS failure fails the invocation; a failed safety read means no action
//! in that invocation.
//!
//! ```no_run
//! # use autopilot_tests::fault_bench::{FaultBench, Path, Blow};
//! # use autopilot_tests::fault_proxy::Fault;
//! # async fn example() {
//! let mut bench = FaultBench::new("my-fault").await;
//! let report = bench.round(Path::FailedDeployment, "dynamodb:PutItem", 2, Blow::Fault(Fault::Throttle)).await;
//! assert_eq!(report.violations(), 0, "{}", report.broken.join("\n"));
//! # }
//! ```

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use crate::adversity::{Episode, Failure, Findings, Notice, Rng, check, env_count, env_seconds, env_seed};
use crate::fault_proxy::{Call, Fault, FaultProxy, Rule, mutations, published};
use crate::{InvokeResult, LambdaProcess, TestBed};

/// The SDK's attempts per call (standard retry mode).
pub const SDK_ATTEMPTS: u32 = 3;
/// How long the function may run (`FUNCTION_TIMEOUT_SECONDS`, and the
/// Runtime API's deadline): leases last this plus 30 s.
pub const FUNCTION_TIMEOUT_SECONDS: u64 = 20;
/// Reads a decision to act rests on: when one fails, that invocation must not act.
pub const SAFETY_READS: [&str; 4] =
    ["ecs:DescribeServices", "ecs:ListTaskDefinitions", "dynamodb:GetItem", "dynamodb:Query"];

/// The opening path of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// SERVICE_DEPLOYMENT_FAILED of a fresh revision: rollback, then the alert.
    FailedDeployment,
    /// A task of a fresh revision crashed (0 running: SEV1): the alert's gather, rollback, alert.
    CrashLoop,
}

impl Path {
    pub const ALL: [Path; 2] = [Path::FailedDeployment, Path::CrashLoop];

    pub fn name(self) -> &'static str {
        match self {
            Self::FailedDeployment => "failed-deployment",
            Self::CrashLoop => "crash-loop",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Self::FailedDeployment => "d",
            Self::CrashLoop => "c",
        }
    }
    /// The event that opens the incident.
    pub fn event(self, f: &Failure) -> Value {
        match self {
            Self::FailedDeployment => f.deployment_failed(0),
            Self::CrashLoop => f.task_crashed(0),
        }
    }
}

/// One call of a path: the `k`-th call of `op` (1-based), at `index` in the clean run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub op: String,
    pub k: u32,
    pub index: usize,
}

/// The logical calls of a run (an SDK retry is the call it retries), in order, as steps.
pub fn steps(calls: &[Call]) -> Vec<Step> {
    let mut seen = BTreeMap::<String, u32>::new();
    let mut ids = BTreeSet::new();
    calls
        .iter()
        .filter(|c| c.invocation.as_ref().is_none_or(|id| ids.insert(id.clone())))
        .enumerate()
        .map(|(index, c)| {
            let k = seen.entry(c.op.clone()).or_default();
            *k += 1;
            Step { op: c.op.clone(), k: *k, index }
        })
        .collect()
}

/// What a round does at its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blow {
    /// The call fails with this fault on every attempt the SDK makes.
    Fault(Fault),
    /// The process is killed while the call is held: before it reaches the
    /// server (`applied: false`) or after the server applied it (`true`).
    Kill { applied: bool },
}

impl Blow {
    pub fn label(self) -> String {
        match self {
            Self::Fault(f) => f.label(),
            Self::Kill { applied: false } => "kill-before".into(),
            Self::Kill { applied: true } => "kill-after".into(),
        }
    }
    /// The four faults, in turn.
    pub fn faults() -> Vec<Blow> {
        Fault::MATRIX.iter().map(|f| Blow::Fault(*f)).collect()
    }
    /// Both kills.
    pub fn kills() -> Vec<Blow> {
        vec![Blow::Kill { applied: false }, Blow::Kill { applied: true }]
    }
}

/// What one round (or many, merged) saw.
#[derive(Debug, Default)]
pub struct RoundReport {
    pub findings: Findings,
    /// Faults the proxy injected.
    pub injected: u64,
    pub kills: usize,
    /// Kill rounds whose call this run never made (it took another way).
    pub not_reached: usize,
    /// Events still failing after Lambda's two retries (to the dead-letter queue).
    pub dead_lettered: usize,
    /// The opening alert's Publish failed and the invocation answered success.
    pub sns_failure_swallowed: usize,
    /// A safety read failed and the same invocation acted.
    pub acted_on_partial_information: usize,
    /// What broke, one line each (the findings' lines included).
    pub broken: Vec<String>,
}

impl RoundReport {
    pub fn violations(&self) -> usize {
        self.findings.violations() + self.sns_failure_swallowed + self.acted_on_partial_information
    }

    pub fn merge(&mut self, other: RoundReport) {
        self.injected += other.injected;
        self.kills += other.kills;
        self.not_reached += other.not_reached;
        self.dead_lettered += other.dead_lettered;
        self.sns_failure_swallowed += other.sns_failure_swallowed;
        self.acted_on_partial_information += other.acted_on_partial_information;
        self.broken.extend(other.broken);
        self.findings.merge(other.findings);
    }
}

/// A test bed, the proxy, and a warm `ecs-events` instance that gets the
/// first delivery of fault rounds and every redelivery.
pub struct FaultBench {
    pub bed: TestBed,
    pub proxy: FaultProxy,
    /// The functions' environment (through the proxy, short SDK timeouts).
    pub env: Vec<(String, String)>,
    pub warm: LambdaProcess,
    /// Lambda's first retry comes after this, the second after twice this more
    /// (`REDELIVERY_DELAY_SECONDS`, 1 s; one minute on AWS).
    pub delay: Duration,
    /// `FAULT_ROUNDS` (8): rounds per path in [`FaultBench::pick`].
    pub rounds: usize,
    /// `FAULT_SEED` (the clock): which rounds [`FaultBench::pick`] draws.
    pub seed: u64,
    clean: BTreeMap<Path, Vec<Step>>,
    rounds_run: usize,
}

impl FaultBench {
    pub async fn new(name: &str) -> Self {
        let bed = TestBed::new(name).await;
        let proxy = FaultProxy::start();
        let mut env = bed.function_env();
        env.extend(proxy.env());
        for (k, v) in [
            ("SDK_ATTEMPT_TIMEOUT_SECONDS", "2".to_string()),
            ("SDK_OPERATION_TIMEOUT_SECONDS", "5".to_string()),
            ("FUNCTION_TIMEOUT_SECONDS", FUNCTION_TIMEOUT_SECONDS.to_string()),
        ] {
            env.push((k.into(), v));
        }
        let warm = bed.start_with_env("ecs-events", env.clone());
        warm.set_deadline(Duration::from_secs(FUNCTION_TIMEOUT_SECONDS));
        Self {
            bed,
            proxy,
            env,
            warm,
            delay: env_seconds("REDELIVERY_DELAY_SECONDS", 1.0),
            rounds: env_count("FAULT_ROUNDS", 8),
            seed: env_seed("FAULT_SEED"),
            clean: BTreeMap::new(),
            rounds_run: 0,
        }
    }

    /// The steps of `path`, from a clean run (once; the clean run must keep
    /// the invariants and roll back exactly once).
    pub async fn steps(&mut self, path: Path) -> Vec<Step> {
        if let Some(s) = self.clean.get(&path) {
            return s.clone();
        }
        let f = Failure::seed(&self.bed, &format!("{}clean", path.short())).await;
        self.proxy.take_calls();
        let event = path.event(&f);
        let warm = &mut self.warm;
        let o = tokio::task::block_in_place(|| warm.invoke(&event)).expect_response("the clean run");
        let calls = self.proxy.take_calls();
        let e = episode(&self.bed, &f, &calls, [o["incident"].as_str().unwrap_or_default().to_string()].into()).await;
        let found = check(&e);
        assert_eq!(found.violations(), 0, "the clean {} run breaks an invariant: {:?}", path.name(), found.broken);
        assert_eq!(e.mutations.len(), 1, "the clean {} run rolls back once: {o}", path.name());
        let s = steps(&calls);
        self.clean.insert(path, s.clone());
        s
    }

    /// The rounds of `path` for `blows`: the calls that decide
    /// (`sns:Publish`, `ecs:UpdateService`) first, then a draw from
    /// [`FaultBench::seed`], every call once before any call twice; at most
    /// [`FaultBench::rounds`].
    pub async fn pick(&mut self, path: Path, blows: &[Blow]) -> Vec<(Step, Blow)> {
        let steps = self.steps(path).await;
        let mut all: Vec<(Step, Blow)> =
            steps.iter().flat_map(|s| blows.iter().map(move |b| (s.clone(), *b))).collect();
        let mut rng = Rng::new(self.seed ^ (path as u64 + 1).wrapping_mul(0x9E37_79B9));
        rng.shuffle(&mut all);
        all.sort_by_key(|(s, _)| !matches!(s.op.as_str(), "sns:Publish" | "ecs:UpdateService"));
        let (mut first, mut rest) = (Vec::new(), Vec::new());
        for (s, b) in all {
            if first.iter().any(|(o, _): &(Step, Blow)| o.index == s.index) {
                rest.push((s, b));
            } else {
                first.push((s, b));
            }
        }
        first.extend(rest);
        first.truncate(self.rounds);
        first
    }

    /// One round: `blow` at the `k`-th call of `op` on `path`, then Lambda's
    /// redeliveries; the invariants. Prints what broke.
    pub async fn round(&mut self, path: Path, op: &str, k: u32, blow: Blow) -> RoundReport {
        let all = self.steps(path).await;
        let step = all.iter().find(|s| s.op == op && s.k == k).cloned().unwrap_or_else(|| {
            panic!(
                "{} makes no call #{k} of {op}; its calls: {:?}",
                path.name(),
                all.iter().map(|s| &s.op).collect::<Vec<_>>()
            )
        });
        self.rounds_run += 1;
        let f = Failure::seed(&self.bed, &format!("{}{}", path.short(), self.rounds_run)).await;
        let event = path.event(&f);
        let request_id = format!("{}-lambda", f.tag);
        let mut report = RoundReport::default();
        self.proxy.take_calls();
        let injected_before = self.proxy.injected();
        let mut answers: Vec<Option<InvokeResult>> = Vec::new();
        match blow {
            Blow::Fault(fault) => {
                self.proxy.inject(Rule { times: SDK_ATTEMPTS, ..Rule::call(op, k, fault) });
                let warm = &mut self.warm;
                answers.push(tokio::task::block_in_place(|| {
                    warm.invoke_with_id(&event, &request_id, Duration::from_secs(90))
                }));
            }
            Blow::Kill { applied } => {
                let fault = if applied { Fault::HangAfterForward } else { Fault::Hang };
                self.proxy.inject(Rule { times: 1, ..Rule::call(op, k, fault) });
                let mut victim = self.bed.start_with_env("ecs-events", self.env.clone());
                victim.set_deadline(Duration::from_secs(FUNCTION_TIMEOUT_SECONDS));
                let id = victim.submit_with_id(&event, &request_id);
                let proxy = &self.proxy;
                if tokio::task::block_in_place(|| proxy.wait_hung(Duration::from_secs(30))).is_some() {
                    // Lambda's timeout: the process dies mid-call; its writes so far stay.
                    victim.kill();
                    report.kills += 1;
                } else {
                    report.not_reached += 1;
                    answers.push(tokio::task::block_in_place(|| victim.answer(&id, Duration::from_secs(90))));
                }
            }
        }
        self.proxy.clear_rules();
        self.proxy.release_hangs();
        report.injected = self.proxy.injected() - injected_before;
        let first_calls = self.proxy.calls().len();
        let first_failed = answers.last().is_none_or(|a| !ok(a));
        // Lambda retries a failed (or timed-out) asynchronous invocation
        // twice, keeping its request id: after one minute, then two more.
        for wait in [self.delay, self.delay * 2] {
            if answers.last().is_some_and(ok) {
                break;
            }
            tokio::time::sleep(wait).await;
            let warm = &mut self.warm;
            answers.push(tokio::task::block_in_place(|| {
                warm.invoke_with_id(&event, &request_id, Duration::from_secs(90))
            }));
        }
        if answers.last().is_some_and(ok) {
            // EventBridge's own duplicate delivery: a new invocation.
            let warm = &mut self.warm;
            let copy = format!("{}-eventbridge-copy", f.tag);
            answers.push(tokio::task::block_in_place(|| warm.invoke_with_id(&event, &copy, Duration::from_secs(90))));
        } else {
            report.dead_lettered += 1;
        }
        let calls = self.proxy.take_calls();
        let mut e = episode(&self.bed, &f, &calls, answers.iter().filter_map(incident_of).collect()).await;
        let publish_at = all.iter().find(|s| s.op == "sns:Publish").map_or(usize::MAX, |s| s.index);
        // Killed after SNS took the alert and before anything could record
        // it: a retry cannot know, and alerts again (at least once, never zero).
        e.tolerate_double_opening = matches!(blow, Blow::Kill { .. })
            && (step.index > publish_at || (step.index == publish_at && blow == Blow::Kill { applied: true }));
        report.findings = check(&e);
        let mut broken = std::mem::take(&mut report.findings.broken);
        if let Blow::Fault(_) = blow {
            if op == "sns:Publish" && !first_failed {
                report.sns_failure_swallowed += 1;
                broken.push(format!(
                    "SNS failed ({}) and the invocation still answered success: {}",
                    blow.label(),
                    show(&answers[0])
                ));
            }
            let mutation_at = all.iter().find(|s| s.op == "ecs:UpdateService").map_or(usize::MAX, |s| s.index);
            let acted_first = mutations(&calls[..first_calls.min(calls.len())]).len();
            // The SDK retries throttling, 5xx and resets by itself: a read whose
            // retry succeeded before the mutation gave the engine the whole facts.
            let first = &calls[..first_calls.min(calls.len())];
            let mutation_seq = first.iter().find(|c| c.op == "ecs:UpdateService").map(|c| c.seq);
            let retried_ok = first.iter().any(|c| {
                c.op == op
                    && c.fault.is_none()
                    && c.status.is_some_and(|s| s < 300)
                    && mutation_seq.is_none_or(|m| c.seq < m)
            });
            if SAFETY_READS.contains(&op) && step.index < mutation_at && acted_first > 0 && !retried_ok {
                report.acted_on_partial_information += 1;
                broken.push(format!("{op} #{k} failed ({}) and the same invocation still acted", blow.label()));
            }
        }
        if !broken.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "\nFAULT {} {op} #{k} (step {}) {}:", path.name(), step.index, blow.label());
            for line in &broken {
                let _ = writeln!(out, "  - {line}");
            }
            for (i, a) in answers.iter().enumerate() {
                let _ = writeln!(out, "  delivery {i}: {}", show(a));
            }
            for n in &e.notices {
                let _ = writeln!(out, "  published #{} {}", n.seq, n.subject);
            }
        }
        report.broken = broken.into_iter().map(|l| format!("{} {op}#{k} {}: {l}", path.name(), blow.label())).collect();
        report
    }
}

async fn episode(bed: &TestBed, f: &Failure, calls: &[Call], outcome_incidents: BTreeSet<String>) -> Episode {
    Episode {
        cluster: f.svc.cluster.clone(),
        service: f.svc.service.clone(),
        bad: f.bad.clone(),
        notices: published(calls).iter().map(Notice::from_published).collect(),
        mutations: mutations(calls),
        incidents: f.stored_incidents(bed).await,
        outcome_incidents: outcome_incidents.into_iter().filter(|i| !i.is_empty()).collect(),
        max_mutations: 1,
        tolerate_double_opening: false,
        expect_all_resolved: false,
        expect_alert: true,
    }
}

fn incident_of(answer: &Option<InvokeResult>) -> Option<String> {
    match answer {
        Some(InvokeResult::Response(o)) => o["incident"].as_str().map(str::to_string),
        _ => None,
    }
}

fn ok(answer: &Option<InvokeResult>) -> bool {
    matches!(answer, Some(InvokeResult::Response(_)))
}

/// One line of an answer: what was notified and done, or the error.
pub fn show(answer: &Option<InvokeResult>) -> String {
    match answer {
        Some(InvokeResult::Response(o)) => format!(
            "ok notified={} actions={}",
            o["notified"],
            o["actions"]
                .as_array()
                .map(|a| a.iter().map(|x| format!("{}:{}", x["action"], x["status"])).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        ),
        Some(InvokeResult::Error { error_type, error_message }) => {
            format!("ERROR {error_type}: {}", error_message.chars().take(200).collect::<String>())
        }
        None => "no answer".into(),
    }
}
