//! The race bench: warm function processes (`ecs-events`, `alarm-responder`)
//! sharing one test bed and one recording [`FaultProxy`], fed the signals of
//! one service's failure as they arrive in production — in bursts,
//! duplicated, late, out of order — each process handling one invocation at
//! a time as a Lambda instance does, a failed invocation retried as Lambda
//! retries an asynchronous one (twice, same request id, after 1× and 2× more
//! of [`RaceBench::retry`]). After the signals, a final SERVICE_STEADY_STATE
//! closes whatever is open; then the invariants ([`crate::adversity::check`]).
//!
//! ```no_run
//! # use autopilot_tests::race_bench::RaceBench;
//! # async fn example() {
//! let mut bench = RaceBench::new("my-race", 3, 2).await;
//! let report = bench.interleaving(42).await; // a fresh failure, signals drawn from seed 42
//! assert_eq!(report.findings.violations(), 0, "{}", report.detail);
//! # }
//! ```

use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::adversity::{Episode, Failure, Findings, Notice, Rng, check, env_seconds};
use crate::fault_proxy::{FaultProxy, mutations, published, published_copies};
use crate::{InvokeResult, LambdaProcess, TestBed};

/// Which function a signal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Ecs,
    Alarm,
}

impl Function {
    fn binary(self) -> &'static str {
        match self {
            Self::Ecs => "ecs-events",
            Self::Alarm => "alarm-responder",
        }
    }
}

/// One delivery of one signal.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub label: String,
    pub function: Function,
    pub event: Value,
    /// When it arrives, from the start of the interleaving.
    pub offset: Duration,
}

impl Delivery {
    pub fn new(label: &str, function: Function, event: Value, offset_ms: u64) -> Self {
        Self { label: label.into(), function, event, offset: Duration::from_millis(offset_ms) }
    }
}

/// The signals of one failure, drawn from `rng`: zero to four crashed tasks
/// of the fresh revision, its deployment FAILED (always, without crashes),
/// the designated 5xx alarm to ALARM (when the episode starts) and back to
/// OK (when its first delivery is due: the bench turns the alarm OK on the
/// local server then), deployment COMPLETED, steady state; each in the first
/// burst or up to 1.5 s late, each perhaps delivered again (EventBridge's
/// at-least-once), shuffled.
pub fn draw_signals(f: &Failure, rng: &mut Rng) -> Vec<Delivery> {
    let t0 = chrono::Utc::now().timestamp_millis();
    let mut signals: Vec<(String, Function, Value)> = Vec::new();
    for n in 0..rng.below(5) {
        signals.push((format!("stop-{n}"), Function::Ecs, f.task_crashed(n)));
    }
    if signals.is_empty() || rng.chance(0.8) {
        signals.push(("failed".into(), Function::Ecs, f.deployment_failed(0)));
    }
    if rng.chance(0.5) {
        signals.push(("alarm".into(), Function::Alarm, f.alarm("ALARM", t0)));
    }
    if rng.chance(0.3) {
        signals.push(("alarm-ok".into(), Function::Alarm, f.alarm("OK", t0)));
    }
    if rng.chance(0.3) {
        signals.push(("completed".into(), Function::Ecs, f.deployment_completed(0)));
    }
    if rng.chance(0.4) {
        signals.push(("steady".into(), Function::Ecs, f.steady_state(0)));
    }
    // Late and out of order: recoveries that happened before the failure
    // began (a steady state, the completion of the deployment before),
    // delivered now, must resolve nothing.
    if rng.chance(0.3) {
        signals.push(("late-steady".into(), Function::Ecs, f.late(f.steady_state(7), 600)));
    }
    if rng.chance(0.2) {
        signals.push(("late-completed".into(), Function::Ecs, f.late(f.deployment_completed(7), 900)));
    }
    let mut out = Vec::new();
    for (label, function, mut event) in signals {
        let offset = if rng.chance(0.6) { 0 } else { rng.below(1500) as u64 };
        if label == "alarm-ok" {
            // It went OK when its first delivery is due, and says so.
            event = f.alarm("OK", t0 + offset as i64);
        }
        out.push(Delivery::new(&label, function, event.clone(), offset));
        for copy in 1..=2 {
            if rng.chance(0.3 / copy as f64) {
                let again = offset + rng.below(800) as u64;
                out.push(Delivery::new(&format!("{label}-dup{copy}"), function, event.clone(), again));
            }
        }
    }
    rng.shuffle(&mut out);
    out
}

/// One invocation of an interleaving: the delivery (index), Lambda's
/// attempt (0, 1, 2), its request id and what came back.
pub type Attempt = (usize, u32, String, Option<InvokeResult>);

/// What one interleaving came to.
#[derive(Debug, Default)]
pub struct InterleavingReport {
    pub findings: Findings,
    pub invocations: usize,
    /// Deliveries still failing after Lambda's two retries.
    pub dead_lettered: usize,
    /// The deliveries, every attempt's answer, what was published and
    /// applied, and the decisions the functions logged: to read when it broke.
    pub detail: String,
}

pub struct RaceBench {
    pub bed: TestBed,
    pub proxy: FaultProxy,
    pub processes: Vec<(Function, LambdaProcess)>,
    /// `RACE_RETRY_SECONDS` (0.3): Lambda's retries come after 1× and 2× more.
    pub retry: Duration,
    interleavings: usize,
}

impl RaceBench {
    /// `ecs` `ecs-events` and `alarm` `alarm-responder` processes, warm,
    /// their AWS calls through the proxy; the 5xx alarm of
    /// [`Failure::alarm`] is designated (`ALARM_NAME_PREFIX`).
    pub async fn new(name: &str, ecs: usize, alarm: usize) -> Self {
        let bed = TestBed::new(name).await;
        let proxy = FaultProxy::start();
        let mut env = bed.function_env();
        env.extend(proxy.env());
        env.push(("ALARM_NAME_PREFIX".into(), "prod-api-".into()));
        let kinds = std::iter::repeat_n(Function::Ecs, ecs).chain(std::iter::repeat_n(Function::Alarm, alarm));
        let processes = kinds
            .enumerate()
            .map(|(i, f)| {
                let mut p = LambdaProcess::start(
                    &crate::binary(f.binary()),
                    &format!("{}-{}-{i}", bed.prefix, f.binary()),
                    &env,
                );
                p.wait_ready(Duration::from_secs(20));
                (f, p)
            })
            .collect();
        Self { bed, proxy, processes, retry: env_seconds("RACE_RETRY_SECONDS", 0.3), interleavings: 0 }
    }

    /// A fresh failure, its signals drawn from `seed`, raced; the invariants.
    pub async fn interleaving(&mut self, seed: u64) -> InterleavingReport {
        let mut rng = Rng::new(seed);
        let f = Failure::seed(&self.bed, &format!("r{}", self.interleavings)).await;
        self.interleavings += 1;
        // Sometimes the release went out from a revision ECS saw reach steady state.
        let known_good = rng.chance(0.5);
        let deliveries = draw_signals(&f, &mut rng);
        let mut report = self.race(&f, known_good, &deliveries).await;
        report.detail = format!("seed {seed}, known-good first: {known_good}\n{}", report.detail);
        report
    }

    /// Race `deliveries` of the failure `f` (after a deployment COMPLETED
    /// when `known_good`), settle, check.
    pub async fn race(&mut self, f: &Failure, known_good: bool, deliveries: &[Delivery]) -> InterleavingReport {
        self.proxy.take_calls();
        if known_good {
            let ecs = self.first(Function::Ecs);
            tokio::task::block_in_place(|| ecs.invoke(&f.deployment_completed(99))).expect_response("known-good first");
        }
        let (retry, tag) = (self.retry, f.tag.clone());
        // The alarm's own state on the local server follows the world: ALARM
        // from the start, OK once its OK is due; the functions read it.
        let alarm = f.alarm_name();
        let ok_at = deliveries.iter().filter(|d| d.label.starts_with("alarm-ok")).map(|d| d.offset).min();
        // On the metric of the service the alarm events name, as they say.
        let dimensions = f.alarm_dimensions();
        let dimensions: Vec<(&str, &str)> = dimensions.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if deliveries.iter().any(|d| d.label.starts_with("alarm")) {
            self.bed.set_alarm_on(&alarm, "ALARM", &dimensions).await;
        }
        let turn_ok = ok_at.map(|after| {
            let (config, name) = (self.bed.config.clone(), alarm.clone());
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                crate::testbed::set_alarm_state(&config, &name, "OK").await;
            })
        });
        let log = tokio::task::block_in_place(|| run(&mut self.processes, deliveries, &tag, retry));
        if let Some(task) = turn_ok {
            let _ = task.await;
        }
        // The world recovers fully before the final steady state.
        self.bed.set_alarm_on(&alarm, "OK", &dimensions).await;
        let settle = f.steady_state(999);
        let ecs = self.first(Function::Ecs);
        let settled = Some(tokio::task::block_in_place(|| ecs.invoke(&settle)));
        let mut outcome_incidents = BTreeSet::new();
        for r in log.iter().map(|entry| &entry.3).chain([&settled]) {
            if let Some(InvokeResult::Response(o)) = r
                && let Some(id) = o["incident"].as_str()
            {
                outcome_incidents.insert(id.to_string());
            }
        }
        let calls = self.proxy.take_calls();
        let episode = Episode {
            cluster: f.svc.cluster.clone(),
            service: f.svc.service.clone(),
            bad: f.bad.clone(),
            notices: published(&calls).iter().map(Notice::from_published).collect(),
            mutations: mutations(&calls),
            incidents: f.stored_incidents(&self.bed).await,
            outcome_incidents,
            max_mutations: 1,
            tolerate_double_opening: false,
            expect_all_resolved: true,
            expect_alert: true,
        };
        let findings = check(&episode);
        // What people received is what the proxy saw accepted.
        let delivered = self.bed.notifications().await;
        let received = delivered
            .iter()
            .filter(|n| {
                n.attributes["service"]["Value"] == f.svc.service.as_str()
                    && n.attributes["cluster"]["Value"] == f.svc.cluster.as_str()
            })
            .count();
        let seen = published_copies(&calls)
            .iter()
            .filter(|p| {
                p.attributes.get("service") == Some(&f.svc.service)
                    && p.attributes.get("cluster") == Some(&f.svc.cluster)
            })
            .count();
        assert_eq!(received, seen, "{}: SQS received {received} messages, the proxy saw {seen} published", f.tag);
        let logs: Vec<String> = self.processes.iter().flat_map(|(_, p)| p.drain_stdout()).collect();
        let mut detail = String::new();
        for b in &findings.broken {
            let _ = writeln!(detail, "  - {b}");
        }
        for (d, attempt, id, r) in &log {
            let del = &deliveries[*d];
            let _ = writeln!(
                detail,
                "  {:>5}ms {:<14} try {attempt} {id}: {}",
                del.offset.as_millis(),
                del.label,
                describe(r)
            );
        }
        for n in &episode.notices {
            let _ = writeln!(detail, "  published #{} {}", n.seq, n.subject);
        }
        for m in &episode.mutations {
            let _ = writeln!(detail, "  applied #{} {} {:?}", m.seq, m.op, m.task_definition);
        }
        for l in logs.iter().filter(|l| l.contains("\"decision\":\"action\"") || l.contains("incident-opened")) {
            let _ = writeln!(detail, "  log {}", l.chars().take(300).collect::<String>());
        }
        InterleavingReport {
            findings,
            invocations: log.len() + 1,
            dead_lettered: log
                .iter()
                .filter(|(_, attempt, _, r)| *attempt == 2 && !matches!(r, Some(InvokeResult::Response(_))))
                .count(),
            detail,
        }
    }

    fn first(&mut self, function: Function) -> &mut LambdaProcess {
        &mut self
            .processes
            .iter_mut()
            .find(|(f, _)| *f == function)
            .unwrap_or_else(|| panic!("the bench has no {} process", function.binary()))
            .1
    }
}

fn describe(result: &Option<InvokeResult>) -> String {
    match result {
        Some(InvokeResult::Response(o)) => format!(
            "incident={} notified={} actions={}",
            o["incident"],
            o["notified"],
            o["actions"]
                .as_array()
                .map(|a| a.iter().map(|x| format!("{}:{}", x["action"], x["status"])).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        ),
        Some(InvokeResult::Error { error_type, error_message }) => format!("ERROR {error_type}: {error_message}"),
        None => "NO ANSWER".into(),
    }
}

/// One invocation waiting for a process: a delivery or Lambda's retry of one.
struct Job {
    delivery: usize,
    request_id: String,
    attempt: u32,
    due: Instant,
}

struct Queue {
    jobs: Vec<Job>,
    outstanding: usize,
    log: Vec<Attempt>,
}

/// Run `deliveries` over the processes, each taking the earliest due job of
/// its function; every attempt's answer, in the order they came back.
fn run(
    processes: &mut [(Function, LambdaProcess)],
    deliveries: &[Delivery],
    tag: &str,
    retry: Duration,
) -> Vec<Attempt> {
    let start = Instant::now();
    let queue = Mutex::new(Queue {
        jobs: deliveries
            .iter()
            .enumerate()
            .map(|(i, d)| Job {
                delivery: i,
                request_id: format!("{tag}-{i}-{}", d.label),
                attempt: 0,
                due: start + d.offset,
            })
            .collect(),
        outstanding: deliveries.len(),
        log: Vec::new(),
    });
    let wake = Condvar::new();
    std::thread::scope(|scope| {
        for (function, process) in processes.iter_mut() {
            let (queue, wake, function) = (&queue, &wake, *function);
            scope.spawn(move || {
                loop {
                    let job = {
                        let mut q = queue.lock().expect("queue");
                        loop {
                            if q.outstanding == 0 {
                                return;
                            }
                            let now = Instant::now();
                            let mine = |j: &Job| deliveries[j.delivery].function == function;
                            let ready = q
                                .jobs
                                .iter()
                                .enumerate()
                                .filter(|(_, j)| mine(j) && j.due <= now)
                                .min_by_key(|(_, j)| j.due)
                                .map(|(i, _)| i);
                            if let Some(i) = ready {
                                break q.jobs.swap_remove(i);
                            }
                            let next = q.jobs.iter().filter(|j| mine(j)).map(|j| j.due).min();
                            let wait = next
                                .map_or(Duration::from_millis(20), |t| t.saturating_duration_since(now))
                                .clamp(Duration::from_millis(1), Duration::from_millis(20));
                            q = wake.wait_timeout(q, wait).expect("queue").0;
                        }
                    };
                    let d = &deliveries[job.delivery];
                    let answer = process.invoke_with_id(&d.event, &job.request_id, Duration::from_secs(120));
                    let mut q = queue.lock().expect("queue");
                    let failed = !matches!(answer, Some(InvokeResult::Response(_)));
                    q.log.push((job.delivery, job.attempt, job.request_id.clone(), answer));
                    // Lambda retries any function error of an asynchronous
                    // invocation twice: after one minute, then two more.
                    if failed && job.attempt < 2 {
                        let after = retry * if job.attempt == 0 { 1 } else { 2 };
                        q.jobs.push(Job { attempt: job.attempt + 1, due: Instant::now() + after, ..job });
                    } else {
                        q.outstanding -= 1;
                    }
                    drop(q);
                    wake.notify_all();
                }
            });
        }
    });
    queue.into_inner().expect("queue").log
}
