//! The service subject kind: how an ECS service's incident acts (through
//! the engine), diagnoses (the runbooks' reads, the evidence bundle) and
//! renders its messages. The flows of `ecs-events`, `alarm-responder` and
//! `scheduled-reports` build a [`ServiceSignal`] (or none, for recoveries
//! and ticks) and hand the machine's input to [`drive`].

use serde_json::{Value, json};

use super::machine::{
    ActionCue, Depth, Input, Learnt, MessageKind, ProblemKey, Publish, Record, State, TaskStop, UpdateReason, Verdict,
    unannounced,
};
use super::shell::{self, Driven, Port};
use crate::actions::ActionKind;
use crate::actions::engine::{self, ActionRequest, PriorReads};
use crate::adapters::gather::{GatherRequest, Gathered, gather};
use crate::adapters::s3;
use crate::adapters::state::ServiceFacts;
use crate::config::ServiceTuning;
use crate::context::App;
use crate::diagnosis::classify::{classify_stop, refine_with_log};
use crate::diagnosis::severity::{SeverityInput, Signal, grade};
use crate::error::AutopilotError;
use crate::evidence::{self, Encryption};
use crate::notify::render::{
    AlertView, EscalationView, EvidenceStatus, Links, Message, ResolvedView, render_alert, render_escalation,
    render_resolved,
};
use crate::outcome::{ActionRecord, ActionStatus, Cause, Kind, Outcome, Severity};
use crate::snapshot::{LedgerEntry, LedgerStatus, ServiceSnapshot};
use crate::time::{iso, now};
use crate::trigger::TaskStateChange;

/// What a problem signal on a service brings besides the machine's input:
/// what the messages and the evidence show, and the action it asks for.
#[derive(Debug, Clone)]
pub struct ServiceSignal<'a> {
    pub kind: Kind,
    /// How diagnosis grades it.
    pub signal: Signal,
    /// Short label: "task failed", "deployment failed", "alarm", …
    pub problem: &'a str,
    /// One line on what this event said.
    pub explanation: String,
    pub task_definition: Option<String>,
    /// `(task id, container)` whose log to read.
    pub failing_task: Option<(String, Option<String>)>,
    pub raw_event: &'a Value,
    /// Lines for the findings ("ECS circuit breaker is rolling back").
    pub notes: Vec<String>,
    /// Decisions already taken for this signal (a skipped action and why).
    pub actions: Vec<ActionRecord>,
    /// The signal's own action, run once the incident exists.
    pub action: Option<ActionRequest<'a>>,
    /// A failed deployment (id, when it failed) whose revision, as the
    /// engine found it, is recorded failed in the known-good history.
    pub failed_deployment: Option<(&'a str, i64)>,
    /// A crash loop on a fresh revision hands off to the rollback engine.
    pub rollback_on_crash_loop: bool,
    /// `action` is due only for the incident's first failed task of
    /// `task_definition` (a definite failure): later stops of a storm are
    /// the crash-loop rule's, not one engine run each.
    pub first_failure_only: bool,
}

/// The service kind's port: the signal (none for recoveries and ticks) and
/// what this invocation learnt so far.
pub struct ServicePort<'a> {
    cluster: String,
    service: String,
    region: Option<String>,
    signal: Option<ServiceSignal<'a>>,
    gathered: Option<Gathered>,
    tuning: Option<ServiceTuning>,
    actions: Vec<ActionRecord>,
    action_failed: bool,
    crash_loop_tried: bool,
    wants_action: bool,
    severity: Option<Severity>,
    reasons: Vec<String>,
    cause: Option<Cause>,
    tasks: Vec<TaskStop>,
    evidence: Option<EvidenceStatus>,
    pipeline_lines: Vec<String>,
    ledger: Vec<LedgerEntry>,
    /// The service's known-good history, ledger and pipeline links, read
    /// once for the diagnosis, the announcements and the engine's planning;
    /// dropped when this invocation writes to them (an action, a message
    /// marking entries announced), so the next use reads them again.
    facts: Option<ServiceFacts>,
    /// When the diagnosis described the service (`gathered.service`).
    gathered_at: i64,
    /// `ledger` was read in this invocation and no action since can have
    /// added an entry a message announces (executed or failed): the next
    /// `learnt` keeps it instead of reading it again.
    ledger_read: bool,
    /// An action since the read added an entry `ledger` lacks (skipped or
    /// planned: never announced, but the incident report lists it).
    ledger_behind: bool,
    /// Notes already handed to the machine.
    noted: usize,
    /// Revisions problems turned out to be about.
    revisions: Vec<(ProblemKey, String)>,
}

impl<'a> ServicePort<'a> {
    pub fn new(cluster: &str, service: &str, region: Option<&str>, signal: Option<ServiceSignal<'a>>) -> Self {
        Self {
            cluster: cluster.into(),
            service: service.into(),
            region: region.map(str::to_string),
            signal,
            gathered: None,
            tuning: None,
            actions: Vec::new(),
            action_failed: false,
            crash_loop_tried: false,
            wants_action: false,
            severity: None,
            reasons: Vec::new(),
            cause: None,
            tasks: Vec::new(),
            evidence: None,
            pipeline_lines: Vec::new(),
            ledger: Vec::new(),
            facts: None,
            gathered_at: 0,
            ledger_read: false,
            ledger_behind: false,
            noted: 0,
            revisions: Vec::new(),
        }
    }

    /// The actions this invocation took or decided, in order.
    pub fn actions(&self) -> &[ActionRecord] {
        &self.actions
    }

    fn links(&self, app: &App) -> Links {
        Links {
            region: self.region.clone().unwrap_or_else(|| app.config.settings.console_region.clone()),
            cluster: self.cluster.clone(),
            service: self.service.clone(),
        }
    }

    fn window(app: &App) -> i64 {
        app.config.settings.incident_window.as_secs() as i64
    }

    /// The severity signal of the record (for ticks and takeovers).
    fn signal_kind(&self, rec: &Record) -> Signal {
        self.signal.as_ref().map(|s| s.signal).unwrap_or(match rec.kind {
            Kind::EcsTaskStopped => Signal::TaskFailed,
            Kind::EcsDeployment => Signal::DeploymentFailed,
            _ => Signal::ServiceWarning,
        })
    }

    /// The notes of the signal and of the actions taken, redacted once.
    fn notes(&self) -> Vec<String> {
        let redactor = crate::telemetry::redactor();
        self.signal
            .iter()
            .flat_map(|s| s.notes.iter().cloned())
            .chain(action_notes(&self.actions))
            .map(|n| redactor.text(&n))
            .collect()
    }
}

/// Actions that changed (or failed to change) the service, for the
/// resolution's "what was done".
fn action_notes(actions: &[ActionRecord]) -> Vec<String> {
    actions
        .iter()
        .filter(|a| matches!(a.status, ActionStatus::Executed | ActionStatus::Failed))
        .map(|a| {
            let word = if a.status == ActionStatus::Failed { "FAILED" } else { "executed" };
            format!("{} {word}: {}", a.action, a.detail)
        })
        .collect()
}

/// `family:revision` of a task definition ARN or short name, empty when unknown.
pub fn revision_of(task_definition: Option<&str>) -> String {
    task_definition
        .and_then(crate::actions::rollback_plan::td_key)
        .map(|(family, rev)| format!("{family}:{rev}"))
        .unwrap_or_default()
}

/// Failed, non-expected stops among recently stopped tasks, within `window_secs` of `now`.
pub fn recent_failures(tasks: &[TaskStateChange], now: i64, window_secs: i64) -> Vec<(&TaskStateChange, Cause)> {
    tasks
        .iter()
        .filter(|t| {
            t.stopped_at
                .as_deref()
                .and_then(crate::lenient::parse_time)
                // Without a stop time (some servers omit it) count the task: ECS keeps stopped tasks about an hour.
                .is_none_or(|at| at.timestamp() >= now - window_secs)
        })
        .filter_map(|t| {
            let c = classify_stop(t);
            c.failure.then_some((t, c.cause))
        })
        .collect()
}

/// The most frequent known cause, for signals that do not prove one.
pub fn dominant_cause(causes: impl IntoIterator<Item = Cause>) -> Option<Cause> {
    let mut counts: Vec<(Cause, usize)> = Vec::new();
    for c in causes.into_iter().filter(|c| *c != Cause::Unknown) {
        match counts.iter_mut().find(|(k, _)| *k == c) {
            Some((_, n)) => *n += 1,
            None => counts.push((c, 1)),
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(c, _)| c)
}

/// Whether a crash loop should hand off to the rollback engine (pure): the
/// incident is at least SEV2, the cause is one a rollback cures, and the
/// failing revision is what the service runs, brought in by a deployment
/// created within the window (the engine then checks it is a fresh release).
pub fn crash_loop_rollback_due(
    severity: Severity,
    cause: Cause,
    failing_task_definition: Option<&str>,
    service: Option<&ServiceSnapshot>,
    now: i64,
    window_seconds: i64,
) -> bool {
    use crate::actions::rollback_plan::td_key;
    let (Some(failing), Some(service)) = (failing_task_definition, service) else { return false };
    if severity > Severity::Sev2 || !cause.rollback_cures() {
        return false;
    }
    let current = service.task_definition.as_deref().and_then(td_key);
    if current.is_none() || current != td_key(failing) {
        return false;
    }
    // The deployment that brought this revision in (newest deployment of it).
    service
        .deployments
        .iter()
        .filter(|d| td_key(&d.task_definition) == current || d.status == "PRIMARY")
        .filter_map(|d| d.created_at.as_deref().and_then(crate::lenient::parse_time))
        .map(|t| t.timestamp())
        .max()
        .is_some_and(|deployed| now - deployed <= window_seconds)
}

fn impact(g: &Gathered) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = &g.service {
        out.push(format!("{} of {} tasks running ({} pending)", s.running, s.desired, s.pending));
    }
    match g.target_counts() {
        Some((_, 0)) => out.push("no targets registered in the target groups".into()),
        Some((healthy, total)) => out.push(format!("{healthy} of {total} targets healthy")),
        None => {}
    }
    out
}

/// `…:targetgroup/<name>/<id>` → `<name>`.
fn target_group_name(arn: &str) -> &str {
    arn.split(':').next_back().and_then(|r| r.split('/').nth(1)).unwrap_or(arn)
}

fn findings(explanation: &str, notes: &[String], g: Option<&Gathered>, tags: &[String], failures: u32) -> Vec<String> {
    let mut f = vec![explanation.to_string()];
    f.extend(notes.iter().cloned());
    f.extend(tags.iter().cloned());
    if failures > 1 {
        f.push(format!("{failures} failed tasks counted in this incident"));
    }
    let Some(g) = g else { return f };
    if let Some(td) = &g.task_definition {
        for c in &td.containers {
            f.push(format!(
                "task definition {}: container {} image {} (cpu {}, memory {})",
                td.short(),
                c.name,
                c.image.as_deref().unwrap_or("?"),
                td.cpu.as_deref().unwrap_or("?"),
                c.memory.map(|m| m.to_string()).or_else(|| td.memory.clone()).unwrap_or_else(|| "?".into())
            ));
        }
    }
    for tg in &g.target_health {
        let unhealthy: Vec<String> = tg
            .targets
            .iter()
            .filter(|t| t.state != "healthy")
            .map(|t| format!("{} {} ({})", t.id, t.state, t.reason.as_deref().unwrap_or("-")))
            .collect();
        f.push(format!(
            "target group {}: {}/{} healthy{}",
            target_group_name(&tg.target_group_arn),
            tg.healthy(),
            tg.targets.len(),
            if unhealthy.is_empty() { String::new() } else { format!("; {}", unhealthy.join(", ")) }
        ));
    }
    if let Some(s) = &g.service {
        for d in s.deployments.iter().take(3) {
            f.push(format!(
                "deployment {} {} {}: {} running / {} desired, {} failed tasks{}",
                d.id,
                d.status,
                crate::arn::last_segment(&d.task_definition),
                d.running,
                d.desired,
                d.failed_tasks,
                d.rollout_state.as_deref().map(|r| format!(", rollout {r}")).unwrap_or_default()
            ));
        }
        for e in s.events.iter().take(3) {
            f.push(format!("service event {}: {}", e.created_at.as_deref().unwrap_or(""), e.message));
        }
    }
    for e in &g.errors {
        f.push(format!("could not read {}: {}", e.step, e.message));
    }
    f
}

/// The label of a task-failure incident at a given severity.
fn task_problem(severity: Severity) -> &'static str {
    match severity {
        Severity::Sev1 => "service down",
        Severity::Sev2 => "crash loop",
        _ => "task failed",
    }
}

/// How long evidence may take before the alert must go out regardless: the
/// invocation's remaining time less what the publish and the record need.
fn evidence_budget() -> std::time::Duration {
    const RESERVE_MS: i64 = 10_000;
    const WITHOUT_DEADLINE_MS: i64 = 30_000;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let ms = crate::invocation::deadline_ms().map_or(WITHOUT_DEADLINE_MS, |d| d - now_ms - RESERVE_MS);
    std::time::Duration::from_millis(ms.clamp(1_000, WITHOUT_DEADLINE_MS) as u64)
}

/// The service's facts as the table holds them now: the ones this
/// invocation read while nothing since wrote to them (`slot`), else one
/// read (again after a read that failed).
async fn current_facts<'f>(
    app: &App,
    cluster: &str,
    service: &str,
    slot: &'f mut Option<ServiceFacts>,
) -> &'f ServiceFacts {
    let facts = match slot.take() {
        Some(f) if !f.failed() => f,
        _ => app.state.service_facts(cluster, service).await,
    };
    slot.insert(facts)
}

/// How far back a pipeline deployment is named on a service's incident.
const DEPLOY_LINK_WINDOW_SECONDS: i64 = 24 * 3600;

/// The pipeline execution and commit that last deployed the service (within
/// a day), and its pipeline incident if one is open: the first thing a
/// person asks of a fresh failure. A read that fails is said, not fatal.
async fn pipeline_findings(app: &App, facts: &ServiceFacts, t: i64) -> Vec<String> {
    let links = match facts.pipeline_deploys() {
        Ok(l) => l,
        Err(e) => return vec![format!("pipeline deployments not read: {e}")],
    };
    let Some(link) = crate::pipeline::latest_link(links, t, DEPLOY_LINK_WINDOW_SECONDS) else {
        return Vec::new();
    };
    let mut lines = vec![link.finding(t)];
    if let Ok(Some(inc)) = app
        .state
        .incidents()
        .open(&crate::incident::Subject::pipeline(&link.pipeline, &link.execution_id).at(app.scope()))
        .await
    {
        lines.push(format!("that execution has an open pipeline incident: {} ({})", inc.id, inc.summary()));
    }
    lines
}

/// The subject's ledger since a window before the incident opened (an
/// automatic action left unannounced by the previous incident is carried
/// into this one); an action left `executing` by an invocation that died is
/// settled first (verified against the service under the lock).
async fn ledger_of(app: &App, rec: &Record, cluster: &str, service: &str, facts: &ServiceFacts) -> Vec<LedgerEntry> {
    let since = rec.opened_at - ServicePort::window(app);
    match facts.ledger_since(since) {
        Ok(l) if l.iter().any(|e| e.status == LedgerStatus::Executing) => {
            match engine::settle_unfinished(&app.engine(), cluster, service).await {
                Ok(true) => app.state.actions().ledger_since(cluster, service, since).await.unwrap_or(l),
                Ok(false) => l,
                Err(e) => {
                    tracing::warn!(incident = %rec.id, error = %e, "unfinished action not settled; announced once verified");
                    l
                }
            }
        }
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(incident = %rec.id, error = %e, "ledger unreadable; unannounced actions wait for the next message");
            Vec::new()
        }
    }
}

impl Port for ServicePort<'_> {
    async fn act(&mut self, app: &App, rec: &Record, cue: ActionCue) {
        // No target is a revision any failed signal of this incident names.
        let avoid = rec.troubled_revisions();
        let request = match cue {
            ActionCue::Signal => {
                let Some(signal) = self.signal.as_ref() else { return };
                let Some(request) = signal.action.clone() else { return };
                if signal.first_failure_only {
                    let revision = revision_of(signal.task_definition.as_deref());
                    let counted = rec.failures.count(Some(&revision), now(), Self::window(app));
                    if counted > 1 {
                        tracing::info!(incident = %rec.id, revision = %revision, failures = counted, decision = "first-failure-action-passed", "not the revision's first failed task: the crash-loop rule decides");
                        return;
                    }
                    // This invocation's rollback is the one the stop asks for.
                    self.crash_loop_tried = true;
                }
                ActionRequest { incident: Some(&rec.id), avoid_revisions: &avoid, ..request }
            }
            ActionCue::CrashLoop => {
                self.crash_loop_tried = true;
                let cause = self.cause.unwrap_or(rec.cause);
                let failing = self.signal.as_ref().and_then(|s| s.task_definition.as_deref());
                ActionRequest {
                    incident: Some(&rec.id),
                    // Only while the service still runs the revision this crash loop is about.
                    failing_revision: failing,
                    avoid_revisions: &avoid,
                    ..ActionRequest::automatic(
                        ActionKind::Rollback,
                        &self.cluster,
                        &self.service,
                        format!("crash loop on a fresh revision ({cause})"),
                    )
                }
            }
        };
        let prior = PriorReads {
            service: self.gathered.as_ref().and_then(|g| g.service.as_ref()).map(|s| (s, self.gathered_at)),
            facts: self.facts.as_ref(),
        };
        let result = engine::run(&app.engine(), &ActionRequest { prior, ..request }).await;
        // The engine wrote to the ledger (every decision is recorded).
        self.facts = None;
        if cue == ActionCue::Signal
            && let Some((deployment, at)) = self.signal.as_ref().and_then(|s| s.failed_deployment)
        {
            match &result.trigger_revision {
                Some(td) => {
                    self.revisions.push((ProblemKey::Deployment(deployment.to_string()), revision_of(Some(td))));
                    if let Err(e) =
                        app.state.deployments().record_failure(&self.cluster, &self.service, td, deployment, at).await
                    {
                        tracing::error!(cluster = %self.cluster, service = %self.service, task_definition = %td, error = %e, decision = "failure-not-recorded", "failed deployment not recorded in the known-good history");
                    }
                }
                None => tracing::info!(
                    cluster = %self.cluster,
                    service = %self.service,
                    deployment,
                    "failed deployment not listed: its revision is not known, nothing recorded"
                ),
            }
        }
        self.action_failed |= result.failed;
        if matches!(result.record.status, ActionStatus::Executed | ActionStatus::Failed) {
            self.ledger_read = false;
        } else {
            self.ledger_behind = true;
        }
        self.actions.push(result.record);
    }

    async fn diagnose(&mut self, app: &App, rec: &Record, depth: Depth) {
        let t = now();
        let window = Self::window(app);
        let full = depth == Depth::Full;
        let (task_definition, failing_task) = match &self.signal {
            Some(s) => (s.task_definition.clone(), s.failing_task.clone()),
            // A takeover without the signal: the last failed task the record kept.
            None => match rec.failures.recent.last() {
                Some(t) => (Some(t.revision.clone()).filter(|r| !r.is_empty()), Some((t.task.clone(), None))),
                None => (None, None),
            },
        };
        let gather_depth =
            if full { crate::adapters::gather::Depth::Full } else { crate::adapters::gather::Depth::Facts };
        let gathered = gather(
            &app.clients,
            &GatherRequest {
                task_definition: task_definition.clone(),
                failing_task,
                ..app.gather_request(&self.cluster, &self.service, gather_depth)
            },
        )
        .await;
        if !full && let Some(td) = gathered.service.as_ref().and_then(|s| s.task_definition.as_deref()) {
            // The task definition's secret values, so that the update redacts them too.
            let _ = crate::adapters::ecs::describe_task_definition(&app.clients, td).await;
        }
        let tuning = ServiceTuning::from_tags(
            &app.config.settings,
            gathered.service.as_ref().map(|s| s.tags.as_slice()).unwrap_or_default(),
        );
        let recent = recent_failures(&gathered.stopped_tasks, t, window);
        self.tasks = recent
            .iter()
            .map(|(task, _)| TaskStop {
                task: crate::arn::last_segment(&task.task_arn).to_string(),
                revision: revision_of(task.task_definition_arn.as_deref()),
                stopped_at: task
                    .stopped_at
                    .as_deref()
                    .and_then(crate::lenient::parse_time)
                    .map_or(t, |at| at.timestamp()),
            })
            .collect();
        let mut failures = rec.failures.clone();
        for task in &self.tasks {
            failures.add(task, t, window);
        }
        let revision = revision_of(task_definition.as_deref());
        let failed_task = self.signal.as_ref().is_some_and(|s| s.signal == Signal::TaskFailed);
        let counted = failures.count(Some(&revision), t, window).max(failed_task as u32);
        let stated = Some(rec.cause).filter(|c| *c != Cause::Unknown);
        let cause = stated.or_else(|| dominant_cause(recent.iter().map(|(_, c)| *c))).unwrap_or(Cause::Unknown);
        let cause = if full {
            // The failing container's log can say what its stop reason does not.
            refine_with_log(cause, gathered.logs.as_ref().map(|l| l.lines.as_slice()).unwrap_or_default())
        } else {
            cause
        };
        let (severity, mut reasons) = grade(&SeverityInput {
            signal: self.signal_kind(rec),
            tasks: gathered.service.as_ref().map(|s| (s.running, s.desired)),
            targets: gathered.target_counts(),
            recent_failures: counted,
            crash_loop_threshold: tuning.crash_loop_threshold,
        });
        if rec.severity < severity
            && let Some(s) = &self.signal
        {
            // The signal proves more than the reads show (an alarm's threshold).
            reasons.insert(0, s.explanation.clone());
        }
        if self.action_failed {
            reasons.push("the automatic action failed; automatic actions on this service are held".into());
        }
        self.wants_action = !self.crash_loop_tried
            && self.signal.as_ref().is_some_and(|s| s.rollback_on_crash_loop)
            && crash_loop_rollback_due(
                severity.min(rec.severity),
                cause,
                task_definition.as_deref(),
                gathered.service.as_ref(),
                t,
                tuning.rollback_window_seconds,
            );
        self.severity = Some(severity);
        self.cause = Some(cause);
        self.reasons = reasons;
        if full {
            let facts = current_facts(app, &self.cluster, &self.service, &mut self.facts).await;
            self.pipeline_lines = pipeline_findings(app, facts, t).await;
            self.evidence =
                Some(self.store_evidence(app, rec, &gathered, severity.min(rec.severity), cause, counted).await);
        }
        tracing::info!(
            incident = %rec.id, cluster = %self.cluster, service = %self.service, cause = cause.as_str(),
            severity = severity.as_str(), failures = counted, decision = "incident-diagnosed", "incident diagnosed"
        );
        self.gathered = Some(gathered);
        self.gathered_at = t;
        self.tuning = Some(tuning);
    }

    async fn learnt(&mut self, app: &App, rec: &Record, news: bool) -> Learnt {
        if !self.ledger_read {
            let facts = current_facts(app, &self.cluster, &self.service, &mut self.facts).await;
            self.ledger = ledger_of(app, rec, &self.cluster, &self.service, facts).await;
            self.ledger_read = true;
            self.ledger_behind = false;
        }
        let carry = Self::window(app);
        let keys = unannounced(rec, &self.ledger, carry).into_iter().filter_map(|e| e.key.clone()).collect();
        let notes = self.notes();
        let fresh: Vec<String> = notes.into_iter().skip(self.noted).collect();
        self.noted += fresh.len();
        let wants_action = std::mem::take(&mut self.wants_action);
        Learnt {
            severity: self.severity,
            cause: self.cause,
            tasks: self.tasks.clone(),
            impact: self.gathered.as_ref().map(impact).unwrap_or_default(),
            team: self.tuning.as_ref().and_then(|t| t.team.clone()),
            evidence: match &self.evidence {
                Some(EvidenceStatus::Stored(uri)) => Some(uri.clone()),
                _ => None,
            },
            notes: fresh,
            unannounced: keys,
            action_failed: self.action_failed,
            wants_action,
            news,
            // A task incident is named by how bad it got: "task failed", "crash loop", "service down".
            label: (rec.kind == Kind::EcsTaskStopped)
                .then(|| task_problem(self.severity.map_or(rec.severity, |s| s.min(rec.severity))).to_string()),
            revisions: std::mem::take(&mut self.revisions),
        }
    }

    async fn render(&mut self, app: &App, rec: &Record, publish: &Publish) -> Message {
        let redactor = crate::telemetry::redactor();
        let mut message = match &publish.message {
            MessageKind::Opening | MessageKind::Update => self.render_alert(app, rec, publish),
            MessageKind::Escalation { nth } => self.render_escalation(app, rec, *nth).await,
            MessageKind::Resolution { why, .. } => self.render_resolution(app, rec, publish, why).await,
        };
        message.team = rec.team.clone().or_else(|| self.tuning.as_ref().and_then(|t| t.team.clone()));
        message.subject = redactor.text(&message.subject);
        message
    }

    async fn published(&mut self, app: &App, _rec: &Record, publish: &Publish) {
        app.state.actions().mark_ledger_announced(&self.cluster, &self.service, &publish.announce, now()).await;
        self.ledger_read = false;
        self.facts = None;
    }
}

impl ServicePort<'_> {
    /// The actions to show: this invocation's, then the ledger entries the
    /// message announces that are not among them.
    fn shown_actions(&self, publish: &Publish) -> Vec<ActionRecord> {
        let mut shown = self.actions.clone();
        for e in self.ledger.iter().filter(|e| e.key.as_ref().is_some_and(|k| publish.announce.contains(k))) {
            let status = if e.status == LedgerStatus::Failed { ActionStatus::Failed } else { ActionStatus::Executed };
            if !shown.iter().any(|a| a.detail == e.detail && a.status == status) {
                shown.push(ActionRecord { action: e.action.as_str().to_string(), status, detail: e.detail.clone() });
            }
        }
        shown
    }

    fn render_alert(&self, app: &App, rec: &Record, publish: &Publish) -> Message {
        let redactor = crate::telemetry::redactor();
        let update = publish.message == MessageKind::Update;
        let severity = publish.severity;
        let task_incident = rec.kind == Kind::EcsTaskStopped;
        let label = if task_incident { task_problem(severity).to_string() } else { rec.problem_text() };
        let t = now();
        let failures = rec.failures.count(None, t, Self::window(app)).max(rec.failures.total.min(1));
        let explanation = self.signal.as_ref().map(|s| s.explanation.clone()).unwrap_or_else(|| {
            format!("the incident's {} was left pending by an invocation that stopped", publish.message.label())
        });
        let notes: Vec<String> = self.signal.iter().flat_map(|s| s.notes.iter().cloned()).collect();
        let tags = self.tuning.as_ref().map(|t| t.notes.clone()).unwrap_or_default();
        let mut found = findings(&explanation, &notes, self.gathered.as_ref(), &tags, failures);
        if !update {
            found.extend(self.pipeline_lines.iter().cloned());
        }
        let status = if let State::Closed { at, resolution, .. } = &rec.state {
            format!("RESOLVED at {} ({resolution}); this action finished after the resolution", iso(*at))
        } else if update {
            format!(
                "OPEN for {} - {}{}",
                crate::time::human_duration(t - rec.opened_at),
                self.reasons.join("; "),
                match publish.reason {
                    Some(UpdateReason::SeverityRose(from)) => format!(" (severity raised from {from})"),
                    _ => String::new(),
                }
            )
        } else {
            format!("OPEN - {}", self.reasons.join("; "))
        };
        let evidence = match (&self.evidence, &rec.evidence) {
            (Some(EvidenceStatus::Stored(uri)), _) | (_, Some(uri)) => EvidenceStatus::Stored(uri.clone()),
            (Some(EvidenceStatus::NotCaptured(why)), None) => EvidenceStatus::NotCaptured(why.clone()),
            (None, None) => EvidenceStatus::NotCaptured("not captured when the incident opened".into()),
        };
        let logs = self.gathered.as_ref().and_then(|g| g.logs.as_ref()).filter(|_| !update);
        let shown = self.shown_actions(publish);
        let view = AlertView {
            update,
            kind: rec.kind,
            severity,
            cause: rec.cause,
            cluster: &self.cluster,
            service: &self.service,
            incident: &rec.id,
            problem: &label,
            opened_at: &iso(rec.opened_at),
            impact: self.gathered.as_ref().map(impact).unwrap_or_else(|| rec.impact.clone()),
            status,
            findings: found,
            log_lines: logs.map(|l| l.lines.clone()).unwrap_or_default(),
            log_source: logs.map(|l| (l.log_group.clone(), l.log_stream.clone())),
            actions: &shown,
            evidence_location: match &self.evidence {
                Some(EvidenceStatus::Stored(_)) if !update => Some((
                    app.config.evidence_bucket.clone(),
                    evidence::prefix(app.scope(), &self.cluster, &self.service, &rec.id),
                )),
                _ => None,
            },
            evidence,
            links: self.links(app),
        };
        render_alert(&view, &redactor)
    }

    async fn render_escalation(&mut self, app: &App, rec: &Record, nth: u32) -> Message {
        let mut tried = rec.notes.clone();
        let mut actions = Vec::new();
        match app.state.actions().ledger_since(&self.cluster, &self.service, rec.opened_at).await {
            Ok(entries) => {
                actions = entries.iter().map(LedgerEntry::record).collect();
                // Executed and failed actions are in the notes already.
                let noted = |detail: &str| rec.notes.iter().any(|n| n.contains(detail));
                tried.extend(
                    entries
                        .iter()
                        .filter(|e| {
                            !matches!(e.status, LedgerStatus::Executed | LedgerStatus::Failed) || !noted(&e.detail)
                        })
                        .map(|e| format!("{} {} at {}: {}", e.action.as_str(), e.status.as_str(), iso(e.at), e.detail)),
                )
            }
            Err(e) => tried.push(format!("ledger unreadable: {e}")),
        }
        let view = EscalationView {
            severity: rec.severity,
            cause: rec.cause,
            cluster: &self.cluster,
            service: &self.service,
            incident: &rec.id,
            problem: &rec.problem_text(),
            opened_at: &iso(rec.opened_at),
            open_for_seconds: now() - rec.opened_at,
            nth,
            tried: &tried,
            evidence: rec.evidence.as_deref(),
            links: self.links(app),
            pipeline: None,
            actions: &actions,
        };
        render_escalation(&view, &crate::telemetry::redactor())
    }

    async fn render_resolution(&mut self, app: &App, rec: &Record, publish: &Publish, why: &str) -> Message {
        let t = now();
        let redactor = crate::telemetry::redactor();
        if self.ledger.is_empty() || self.ledger_behind {
            let facts = current_facts(app, &self.cluster, &self.service, &mut self.facts).await;
            self.ledger = ledger_of(app, rec, &self.cluster, &self.service, facts).await;
            self.ledger_behind = false;
        }
        // Actions no message announced yet are announced by the resolution.
        let unsaid: Vec<ActionRecord> = self
            .ledger
            .iter()
            .filter(|e| e.key.as_ref().is_some_and(|k| publish.announce.contains(k)))
            .map(|e| ActionRecord {
                action: e.action.as_str().into(),
                status: if e.status == LedgerStatus::Failed { ActionStatus::Failed } else { ActionStatus::Executed },
                detail: e.detail.clone(),
            })
            .collect();
        let mut notes = rec.notes.clone();
        notes.extend(action_notes(&unsaid).iter().map(|n| redactor.text(n)));
        let report = post_incident_report(app, rec, &self.ledger, why, t).await;
        // What the next steps weigh: the incident's decisions and the carried ones this message announces.
        let actions: Vec<ActionRecord> = self
            .ledger
            .iter()
            .filter(|e| e.at >= rec.opened_at || e.key.as_ref().is_some_and(|k| publish.announce.contains(k)))
            .map(LedgerEntry::record)
            .collect();
        let problem = rec.problem_text();
        let view = ResolvedView {
            report: report.as_deref(),
            kind: rec.kind,
            severity: rec.severity,
            cause: rec.cause,
            cluster: &self.cluster,
            service: &self.service,
            incident: &rec.id,
            problem: &problem,
            opened_at: &iso(rec.opened_at),
            resolved_at: &iso(t),
            resolved_by: why,
            time_to_recover_seconds: t - rec.opened_at,
            failures: rec.failures.total,
            notes: &notes,
            evidence: rec.evidence.as_deref(),
            links: self.links(app),
            actions: &actions,
        };
        render_resolved(&view, &redactor)
    }

    /// Build and store the evidence bundle within the invocation's remaining
    /// time; its URI, or why it was not kept (the alert says so).
    async fn store_evidence(
        &self,
        app: &App,
        rec: &Record,
        gathered: &Gathered,
        severity: Severity,
        cause: Cause,
        failures: u32,
    ) -> EvidenceStatus {
        let redactor = crate::telemetry::redactor();
        let prefix = evidence::prefix(app.scope(), &self.cluster, &self.service, &rec.id);
        let explanation = self.signal.as_ref().map(|s| s.explanation.clone()).unwrap_or_default();
        let notes: Vec<String> = self.signal.iter().flat_map(|s| s.notes.iter().cloned()).collect();
        let diagnosis = json!({
            "incident": rec.id, "cause": cause, "severity": severity, "problem": rec.problem_text(),
            "explanation": explanation, "severity_reasons": self.reasons, "recent_failures": failures,
            "notes": notes, "opened_at": iso(rec.opened_at),
            "problems": rec.problems,
        });
        // Taken over without the signal: the record stands for the event.
        let fallback = json!({"note": "the triggering event was not kept by the invocation that stopped; the incident record follows", "record": rec});
        let event = self.signal.as_ref().map(|s| s.raw_event).unwrap_or(&fallback);
        let objects =
            evidence::build_bundle(&prefix, &rec.id, event, gathered, &diagnosis, &redactor, &iso(rec.opened_at));
        let encryption = Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
        let budget = evidence_budget();
        match tokio::time::timeout(
            budget,
            s3::store(&app.clients, &app.config.evidence_bucket, &prefix, objects, &encryption),
        )
        .await
        {
            Ok(Ok(stored)) => EvidenceStatus::Stored(stored.uri),
            Ok(Err(e)) => {
                tracing::warn!(incident = %rec.id, error = %e, decision = "evidence-failed", "evidence not captured");
                EvidenceStatus::NotCaptured(e.to_string())
            }
            Err(_) => EvidenceStatus::NotCaptured(format!(
                "evidence writes did not finish within {} s; the alert goes out without it",
                budget.as_secs()
            )),
        }
    }
}

/// Write the incident report (Markdown, after the runbooks' template) beside
/// the incident's evidence; its URI, or `None` when it could not be kept.
async fn post_incident_report(app: &App, rec: &Record, ledger: &[LedgerEntry], why: &str, t: i64) -> Option<String> {
    let (cluster, service) = rec.subject.as_service()?;
    let ledger: Vec<LedgerEntry> = ledger.iter().filter(|e| e.at >= rec.opened_at).cloned().collect();
    let markdown = crate::notify::render::render_incident_report(
        &crate::notify::render::IncidentReportView { incident: rec, ledger: &ledger, resolved_at: t, resolved_by: why },
        &crate::telemetry::redactor(),
    );
    let key = format!("{}report.md", evidence::prefix(app.scope(), cluster, service, &rec.id));
    store_report(app, rec, key, markdown).await
}

/// Put a report beside the evidence within five seconds.
pub async fn store_report(app: &App, rec: &Record, key: String, markdown: String) -> Option<String> {
    let encryption = Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
    let bucket = &app.config.evidence_bucket;
    let put = s3::put_text(&app.clients, bucket, &key, markdown, "text/markdown; charset=utf-8", &encryption);
    match tokio::time::timeout(std::time::Duration::from_secs(5), put).await {
        Ok(Ok(())) => Some(format!("s3://{bucket}/{key}")),
        Ok(Err(e)) => {
            tracing::warn!(incident = %rec.id, error = %e, "incident report not stored");
            None
        }
        Err(_) => {
            tracing::warn!(incident = %rec.id, "incident report not stored within 5 s");
            None
        }
    }
}

/// Drive `input` for the service `cluster/service`; the Outcome of `kind`.
pub async fn drive(
    app: &App,
    kind: Kind,
    cluster: &str,
    service: &str,
    region: Option<&str>,
    signal: Option<ServiceSignal<'_>>,
    input: Input,
) -> Result<Outcome, AutopilotError> {
    let subject = crate::incident::Subject::service(cluster, service).at(app.scope());
    let problem = signal.as_ref().map(|s| s.problem.to_string());
    let revision = signal.as_ref().map(|s| revision_of(s.task_definition.as_deref()));
    let explanation = signal.as_ref().map(|s| s.explanation.clone());
    let mut port = ServicePort::new(cluster, service, region, signal);
    port.actions = port.signal.as_ref().map(|s| s.actions.clone()).unwrap_or_default();
    let driven = shell::drive(app, &mut port, &subject, input).await?;
    let window = ServicePort::window(app);
    let o = outcome(kind, cluster, service, problem.as_deref(), explanation.as_deref(), &port, &driven);
    Ok(with_failures(o, &driven, revision.as_deref(), window))
}

/// "(3 failed tasks)": the failures of the signal's revision within the window.
fn with_failures(mut o: Outcome, driven: &Driven, revision: Option<&str>, window: i64) -> Outcome {
    let Some(rec) = driven.record.as_ref().filter(|r| r.is_open()) else { return o };
    let failures = rec.failures.count(revision, now(), window);
    if failures > 1
        && o.summary.contains(" - ")
        && !o.summary.contains("failed tasks)")
        && let Some(i) = o.summary.find("; ")
    {
        o.summary.insert_str(i, &format!(" ({failures} failed tasks)"));
    }
    o
}

/// The Outcome of a service incident's invocation.
fn outcome(
    kind: Kind,
    cluster: &str,
    service: &str,
    problem: Option<&str>,
    explanation: Option<&str>,
    port: &ServicePort<'_>,
    driven: &Driven,
) -> Outcome {
    let base = |severity, cause, summary: String| {
        Outcome::new(kind, severity, cause, summary).for_service(Some(cluster.into()), Some(service.into()))
    };
    let Some(rec) = driven.record.as_ref() else {
        let why = match driven.verdict() {
            Some(Verdict::Nothing(why) | Verdict::Stale(why)) => why.clone(),
            _ => "no open incident".into(),
        };
        let mut o =
            base(Severity::Info, Cause::Expected, format!("{cluster}/{service}: {}; {why}", explanation.unwrap_or("")));
        if matches!(driven.verdict(), Some(Verdict::Stale(_))) {
            o.notified = Some("suppressed:stale-signal".into());
        }
        o.actions = port.actions.clone();
        return o;
    };
    let resolved = driven.message_id(|m| matches!(m, MessageKind::Resolution { .. }));
    let mut o = match (resolved, &rec.state) {
        (Some(id), State::Closed { resolution, at, .. }) => {
            let mut o = base(
                rec.severity,
                rec.cause,
                format!(
                    "{cluster}/{service}: resolved {} ({}) by {resolution} after {}",
                    rec.id,
                    rec.summary(),
                    crate::time::human_duration(at - rec.opened_at)
                ),
            );
            o.notified = Some(id.to_string());
            o
        }
        _ if problem.is_none() => {
            // A recovery or a tick that resolved nothing.
            let why = match driven.verdicts.iter().find(|v| !matches!(v, Verdict::Delivered(_))) {
                Some(Verdict::Nothing(w) | Verdict::Stale(w)) => w.clone(),
                Some(Verdict::Cleared { remaining }) => {
                    format!("cleared; incident {} stays open for {}", rec.id, remaining.join(", "))
                }
                _ if !rec.is_open() => format!("incident {} already resolved", rec.id),
                Some(v) => format!("{v:?}"),
                None => "nothing to do".into(),
            };
            let mut o = base(Severity::Info, Cause::Expected, format!("{cluster}/{service}: {why}"));
            if !rec.is_open() {
                o.notified = Some("suppressed:already-resolved".into());
            }
            o
        }
        _ => {
            let severity = rec.severity;
            let label = match rec.kind {
                Kind::EcsTaskStopped if problem == Some("task failed") => task_problem(severity).to_string(),
                _ => problem.unwrap_or("incident").to_string(),
            };
            let mut o = base(
                severity,
                rec.cause,
                format!("{cluster}/{service}: {label} - {}; {}", rec.cause.headline(), explanation.unwrap_or("")),
            );
            if let Some(EvidenceStatus::NotCaptured(why)) = &port.evidence {
                o.summary.push_str(&format!(" (evidence not captured: {why})"));
            }
            let sent = driven.published.iter().find(|(m, _)| !matches!(m, MessageKind::Resolution { .. }));
            o.notified = Some(match (sent, driven.verdict(), &driven.not_published) {
                (Some((_, id)), _, _) => id.clone(),
                (None, _, Some(why)) => format!("suppressed:publish-failed: {why}"),
                (None, Some(Verdict::JoinedQuietly), _) => "suppressed:opening-alert-in-flight".into(),
                (None, Some(Verdict::Stale(_)), _) => "suppressed:stale-signal".into(),
                (None, _, _) if rec.sending.as_ref().is_some_and(|s| s.message == MessageKind::Update) => {
                    "suppressed:update-sent-by-another-invocation".into()
                }
                _ => "suppressed:incident-open-update-interval".into(),
            });
            o
        }
    };
    // The incident field names the incident this invocation worked on: not
    // one that was already closed before it came.
    if rec.is_open() || resolved.is_some() {
        o.incident = Some(rec.id.clone());
        o.evidence = rec.evidence.clone();
    }
    if o.actions.is_empty() {
        o.actions = port.actions.clone();
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::DeploymentSnapshot;

    const TD: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition/api";

    fn service(current: i32, deployed_at: &str) -> ServiceSnapshot {
        ServiceSnapshot {
            task_definition: Some(format!("{TD}:{current}")),
            deployments: vec![DeploymentSnapshot {
                id: "ecs-svc/1".into(),
                status: "PRIMARY".into(),
                task_definition: format!("{TD}:{current}"),
                created_at: Some(deployed_at.into()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn crash_loop_hands_off_only_on_a_fresh_failing_revision_with_a_curable_cause() {
        let now = crate::lenient::parse_time("2026-11-20T14:30:00Z").unwrap().timestamp();
        let fresh = service(42, "2026-11-20T14:00:00Z");
        let old = service(42, "2026-11-20T10:00:00Z");
        let failing = format!("{TD}:42");
        let due = |sev, cause, td: Option<&str>, s: Option<&ServiceSnapshot>| {
            crash_loop_rollback_due(sev, cause, td, s, now, 3600)
        };
        assert!(due(Severity::Sev2, Cause::OutOfMemory, Some(&failing), Some(&fresh)));
        assert!(due(Severity::Sev1, Cause::EssentialExit, Some("api:42"), Some(&fresh)), "short names match ARNs");
        assert!(
            !due(Severity::Sev3, Cause::OutOfMemory, Some(&failing), Some(&fresh)),
            "a single failure is not a crash loop"
        );
        assert!(
            !due(Severity::Sev2, Cause::Capacity, Some(&failing), Some(&fresh)),
            "going back does not create capacity"
        );
        assert!(!due(Severity::Sev2, Cause::Network, Some(&failing), Some(&fresh)));
        assert!(!due(Severity::Sev2, Cause::OutOfMemory, Some(&failing), Some(&old)), "deployed hours ago");
        assert!(
            !due(Severity::Sev2, Cause::OutOfMemory, Some(&format!("{TD}:41")), Some(&fresh)),
            "an old task's stop"
        );
        assert!(!due(Severity::Sev2, Cause::OutOfMemory, None, Some(&fresh)));
        assert!(!due(Severity::Sev2, Cause::OutOfMemory, Some(&failing), None), "no facts, no action");
    }

    #[test]
    fn dominant_cause_ignores_unknown_and_counts() {
        use Cause::*;
        assert_eq!(dominant_cause([Unknown, OutOfMemory, ImagePull, OutOfMemory]), Some(OutOfMemory));
        assert_eq!(dominant_cause([Unknown, Unknown]), None);
        assert_eq!(dominant_cause([]), None);
    }

    #[test]
    fn recent_failures_keep_failed_stops_inside_the_window() {
        let now = crate::lenient::parse_time("2026-11-20T14:30:00Z").unwrap().timestamp();
        let stop = |at: Option<&str>, code: &str, reason: &str| TaskStateChange {
            task_arn: "arn:aws:ecs:us-east-1:1:task/prod/abc".into(),
            stop_code: Some(code.into()),
            stopped_reason: Some(reason.into()),
            stopped_at: at.map(str::to_string),
            ..Default::default()
        };
        let tasks = [
            stop(Some("2026-11-20T14:20:00Z"), "TaskFailedToStart", "CannotPullContainerError: not found"),
            stop(Some("2026-11-20T12:00:00Z"), "TaskFailedToStart", "CannotPullContainerError: not found"),
            stop(
                Some("2026-11-20T14:25:00Z"),
                "ServiceSchedulerInitiated",
                "Scaling activity initiated by (deployment ecs-svc/1)",
            ),
            stop(None, "EssentialContainerExited", "Essential container in task exited"),
        ];
        let recent = recent_failures(&tasks, now, 3600);
        assert_eq!(recent.len(), 2, "the old stop and the scale-in are not failures in the window");
        assert_eq!(recent[0].1, Cause::ImagePull);
    }
}
