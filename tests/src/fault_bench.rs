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
/// Reads a decision to act rests on, as `(operation, text its request
/// carries)`: the service and its revisions, and the engine's state reads —
/// the ledger (budget, cooldown, never twice in a row: a Query of `ledger#`),
/// the known-good revisions (a Query of `known-good#`) and the hold (a
/// GetItem of `hold`). Other state reads (the event claim, the incident,
/// the deploy links) are not safety reads: no decision rests on them.
pub const SAFETY_READS: [(&str, &str); 5] = [
    ("ecs:DescribeServices", ""),
    ("ecs:ListTaskDefinitions", ""),
    ("dynamodb:Query", "ledger#"),
    ("dynamodb:Query", "known-good#"),
    ("dynamodb:GetItem", r#"{"S":"hold"}"#),
];

/// Whether `call` is a safety read ([`SAFETY_READS`]).
pub fn is_safety_read(call: &Call) -> bool {
    SAFETY_READS.iter().any(|(op, text)| call.op == *op && (text.is_empty() || call.mentions(text)))
}

/// Whether `call` takes a service's lease lock (the engine's PutItem of `lock`).
fn takes_lock(call: &Call) -> bool {
    call.op == "dynamodb:PutItem" && call.mentions(r#""sk":{"S":"lock"}"#)
}

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
    /// A write of the incident record (`PutItem` of `incident#open`, or the
    /// `TransactWriteItems` that writes it with the event's claim): after
    /// the opening alert, the write that records it delivered.
    pub records_incident: bool,
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
            let records_incident = matches!(c.op.as_str(), "dynamodb:PutItem" | "dynamodb:TransactWriteItems")
                && c.mentions(INCIDENT_RECORD);
            Step { op: c.op.clone(), k: *k, index, records_incident }
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
    /// Rounds whose blow never landed: a fault the proxy never injected, a
    /// kill whose call was never reached (or another call was held). Such a
    /// round proved nothing, so it fails ([`blow_missed`]).
    pub missed_blows: usize,
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
        self.findings.violations() + self.sns_failure_swallowed + self.acted_on_partial_information + self.missed_blows
    }

    pub fn merge(&mut self, other: RoundReport) {
        self.injected += other.injected;
        self.kills += other.kills;
        self.missed_blows += other.missed_blows;
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
        let _ = writeln!(
            std::io::stdout().lock(),
            "FAULT {} clean run: {}",
            path.name(),
            s.iter().map(|x| format!("{}#{}", x.op, x.k)).collect::<Vec<_>>().join(" ")
        );
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
        let mut held: Option<Call> = None;
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
                held = tokio::task::block_in_place(|| proxy.wait_hung(Duration::from_secs(30)));
                if held.is_some() {
                    // Lambda's timeout: the process dies mid-call; its writes so far stay.
                    victim.kill();
                    report.kills += 1;
                } else {
                    answers.push(tokio::task::block_in_place(|| victim.answer(&id, Duration::from_secs(90))));
                }
            }
        }
        self.proxy.clear_rules();
        self.proxy.release_hangs();
        report.injected = self.proxy.injected() - injected_before;
        let first_calls = self.proxy.calls().len();
        let missed = blow_missed(blow, op, report.injected, held.as_ref());
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
        e.tolerate_double_opening = double_opening_unavoidable(&all, &step, blow);
        report.findings = check(&e);
        let mut broken = std::mem::take(&mut report.findings.broken);
        if let Some(why) = missed {
            report.missed_blows += 1;
            broken.push(format!("the round proved nothing: {why}"));
        }
        if let Blow::Fault(_) = blow {
            if op == "sns:Publish" && !first_failed {
                report.sns_failure_swallowed += 1;
                broken.push(format!(
                    "SNS failed ({}) and the invocation still answered success: {}",
                    blow.label(),
                    show(&answers[0])
                ));
            }
            let first = &calls[..first_calls.min(calls.len())];
            if acted_on_partial_information(op, first) {
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

/// Whether an invocation acted on partial information: a safety read
/// ([`SAFETY_READS`]) failed — the fault held on every attempt the SDK made
/// — inside the decision that then acted (`first`: the calls of the first
/// delivery), and the mutating call was applied after it. A decision runs
/// from the engine taking the service's lock to its mutating call (every
/// mutating action goes through the engine, under the lock; without a lock
/// taken, from the start of the invocation). No excuse is made for another
/// call of the same operation that succeeded, before or after: a safety
/// read of the decision under a fault fails closed, or the round is a
/// violation. (A same-kind read *before* the lock — the alert's gather, the
/// ledger read for announcements — is not one the decision rests on: the
/// engine reads again under the lock, and that read is the one checked.)
pub fn acted_on_partial_information(op: &str, first: &[Call]) -> bool {
    let Some(failed) = first.iter().find(|c| c.op == op && c.fault.is_some()) else { return false };
    if !is_safety_read(failed) {
        return false;
    }
    mutations(first).iter().any(|m| {
        let lock = first.iter().filter(|c| c.seq < m.seq && takes_lock(c) && c.applied()).map(|c| c.seq).max();
        failed.seq < m.seq && lock.is_none_or(|l| failed.seq > l)
    })
}

/// The sort key of a subject's incident record.
const INCIDENT_RECORD: &str = r#"{"S":"incident#open"}"#;

/// The two cells of the kill matrix where a second opening alert cannot be
/// avoided, and no others:
///
/// 1. **kill-after at the opening `sns:Publish`**: SNS accepted the alert and
///    the process died before its answer arrived. Nothing anywhere says the
///    alert went out, so the redelivery must send it again (or risk none).
/// 2. **kill-before at the write that records the alert delivered** (the
///    first write of the incident record after that `Publish`): the alert
///    went out and its record never reached the table, so the redelivery
///    cannot know either.
///
/// A kill anywhere else either comes before SNS took the alert (the retry
/// sends the first and only one) or after the record is written (the retry
/// sees it), or between the two at a call that could have come after the
/// record (an implementation records the delivery first): a second alert
/// there is a violation. Even in these two cells [`check`] allows one extra
/// alert at most.
pub fn double_opening_unavoidable(steps: &[Step], step: &Step, blow: Blow) -> bool {
    let Some(publish) = steps.iter().find(|s| s.op == "sns:Publish") else { return false };
    let record = steps.iter().find(|s| s.index > publish.index && s.records_incident);
    match blow {
        Blow::Kill { applied: true } => step.index == publish.index,
        Blow::Kill { applied: false } => record.is_some_and(|r| r.index == step.index),
        Blow::Fault(_) => false,
    }
}

/// Why a round's blow did not land (it then proves nothing), or `None`:
/// a fault must have been injected at least once; a kill must have held
/// the very call it aims at — `op`, and for a kill after the server
/// applied it, a call the server did apply.
pub fn blow_missed(blow: Blow, op: &str, injected: u64, held: Option<&Call>) -> Option<String> {
    match blow {
        Blow::Fault(f) if injected == 0 => Some(format!("no {} was injected: {op} never met its rule", f.label())),
        Blow::Fault(_) => None,
        Blow::Kill { applied } => match held {
            None => Some(format!("the process was never held at {op}, so it was not killed there")),
            Some(c) if c.op != op => Some(format!("the kill aimed at {op} held {} instead", c.op)),
            // (The server answering it with an error is fine: it got the call.)
            Some(c) if applied && !c.forwarded => Some(format!("{op} was held before the server got it")),
            Some(c) if !applied && c.forwarded => Some(format!("{op} reached the server before the kill-before")),
            Some(_) => None,
        },
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

#[cfg(test)]
mod tests {
    //! The round's own checks, each shown to catch the bug it is there for.
    use super::*;
    use std::time::Instant;

    fn call(seq: usize, op: &str, fault: Option<Fault>, applied: bool) -> Call {
        let body = match op {
            "ecs:UpdateService" => br#"{"cluster":"prod","service":"api","taskDefinition":"fam:1"}"#.to_vec(),
            "dynamodb:Query" => br#"{"ExpressionAttributeValues":{":from":{"S":"ledger#2026"}}}"#.to_vec(),
            "dynamodb:GetItem" => br#"{"Key":{"sk":{"S":"event#x"}}}"#.to_vec(),
            _ => Vec::new(),
        };
        Call {
            seq,
            op: op.into(),
            method: "POST".into(),
            path: "/".into(),
            body,
            status: if applied { Some(200) } else { fault.map(|_| 400) },
            fault,
            forwarded: applied,
            at: Instant::now(),
            invocation: Some(format!("inv-{seq}")),
        }
    }

    #[test]
    fn a_failed_safety_read_then_an_action_is_caught_even_when_the_same_read_succeeded_elsewhere() {
        let throttled = Some(Fault::Throttle);
        // Planted: the alert's gather read the revisions; under the lock the
        // engine's own read fails (every attempt) and it acts all the same.
        // The old check excused it: another call of ecs:ListTaskDefinitions
        // had succeeded before the mutation.
        let repeated = [
            call(0, "ecs:ListTaskDefinitions", None, true),
            call(1, "dynamodb:PutItem", None, true),
            call(2, "ecs:ListTaskDefinitions", throttled, false),
            call(3, "ecs:ListTaskDefinitions", throttled, false),
            call(4, "ecs:ListTaskDefinitions", throttled, false),
            call(5, "ecs:UpdateService", None, true),
        ];
        let mut repeated = repeated.to_vec();
        repeated[1].body = br#"{"Item":{"pk":{"S":"service#prod/api"},"sk":{"S":"lock"}}}"#.to_vec();
        assert!(acted_on_partial_information("ecs:ListTaskDefinitions", &repeated));
        // ... and when the same read succeeds again before the mutation.
        let mut again = repeated.clone();
        again.insert(5, call(5, "ecs:ListTaskDefinitions", None, true));
        again[6].seq = 6;
        assert!(acted_on_partial_information("ecs:ListTaskDefinitions", &again));
        // Without a lock the whole invocation is the decision.
        let unlocked = [call(0, "dynamodb:Query", throttled, false), call(1, "ecs:UpdateService", None, true)];
        assert!(acted_on_partial_information("dynamodb:Query", &unlocked), "a failed ledger read, then an action");
        // Failing closed: no mutation after the failed read.
        assert!(!acted_on_partial_information("ecs:ListTaskDefinitions", &repeated[..5]));
        // A same-kind read before the lock (the ledger read for announcements)
        // is not the decision's: the engine's own read under the lock is.
        let mut announce = repeated.clone();
        announce[0] = call(0, "dynamodb:Query", throttled, false);
        announce[2] = call(2, "dynamodb:Query", None, true);
        assert!(!acted_on_partial_information("dynamodb:Query", &announce));
        // A mutation before the read failed did not rest on it.
        let before = [call(0, "ecs:UpdateService", None, true), call(1, "dynamodb:Query", throttled, false)];
        assert!(!acted_on_partial_information("dynamodb:Query", &before));
        // Not a safety read: evidence, or a state read no decision rests on (the event claim).
        let other = [call(0, "s3:PutObject", throttled, false), call(1, "ecs:UpdateService", None, true)];
        assert!(!acted_on_partial_information("s3:PutObject", &other));
        let claim = [call(0, "dynamodb:GetItem", throttled, false), call(1, "ecs:UpdateService", None, true)];
        assert!(!acted_on_partial_information("dynamodb:GetItem", &claim));
    }

    fn step(op: &str, k: u32, index: usize) -> Step {
        Step { op: op.into(), k, index, records_incident: false }
    }

    #[test]
    fn a_second_alert_is_excused_only_in_the_two_cells_where_it_is_unavoidable() {
        let steps = [
            step("dynamodb:PutItem", 1, 0),
            step("ecs:DescribeServices", 1, 1),
            step("ecs:UpdateService", 1, 2),
            step("sns:Publish", 1, 3),
            step("dynamodb:UpdateItem", 1, 4),
            Step { records_incident: true, ..step("dynamodb:PutItem", 2, 5) },
            step("dynamodb:UpdateItem", 2, 6),
        ];
        let (before, after) = (Blow::Kill { applied: false }, Blow::Kill { applied: true });
        assert!(double_opening_unavoidable(&steps, &steps[3], after), "SNS took it, its answer lost");
        assert!(double_opening_unavoidable(&steps, &steps[5], before), "sent, its record never written");
        // Planted: the old allowance, every kill after Publish. Each of these
        // can be avoided (the record is written, the alert not yet sent, or
        // — the ledger marked before the delivery is recorded — the record
        // could have come first).
        for (s, b) in [(3, before), (4, before), (4, after), (5, after), (6, before), (6, after), (2, after)] {
            assert!(!double_opening_unavoidable(&steps, &steps[s], b), "{} {}", steps[s].op, b.label());
        }
        assert!(!double_opening_unavoidable(&steps, &steps[3], Blow::Fault(Fault::Status(503))));
    }

    #[test]
    fn a_round_whose_fault_or_kill_never_landed_fails() {
        let op = "ecs:ListTaskDefinitions";
        // Planted: a rule that never matched (a misspelt op, a call the path no longer makes).
        assert!(blow_missed(Blow::Fault(Fault::Throttle), op, 0, None).is_some());
        assert!(blow_missed(Blow::Fault(Fault::Throttle), op, 3, None).is_none());
        // Planted: a kill round that never held its call, or held another one.
        assert!(blow_missed(Blow::Kill { applied: false }, op, 0, None).is_some());
        let other = call(0, "dynamodb:GetItem", Some(Fault::Hang), false);
        assert!(blow_missed(Blow::Kill { applied: false }, op, 1, Some(&other)).is_some());
        let held = call(0, op, Some(Fault::Hang), false);
        assert!(blow_missed(Blow::Kill { applied: false }, op, 1, Some(&held)).is_none());
        // A kill-after whose call the server never applied is a kill-before in disguise.
        assert!(blow_missed(Blow::Kill { applied: true }, op, 1, Some(&held)).is_some());
        let applied = call(0, op, Some(Fault::HangAfterForward), true);
        assert!(blow_missed(Blow::Kill { applied: true }, op, 1, Some(&applied)).is_none());
        let refused = Call { status: Some(400), ..applied.clone() };
        assert!(blow_missed(Blow::Kill { applied: true }, op, 1, Some(&refused)).is_none(), "the server got it");
    }
}
