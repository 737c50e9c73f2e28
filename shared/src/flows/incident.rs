//! One incident per problem: open with a full diagnosis, evidence and one
//! alert; count follow-up events with at most one update per interval (or on
//! rising severity); resolve once, with the time to recover.

use serde_json::{Value, json};

use crate::actions::ActionKind;
use crate::actions::engine::{self, ActionRequest};
use crate::adapters::gather::{Depth, GatherRequest, Gathered, gather};
use crate::adapters::s3;
use crate::adapters::sns::publish;
use crate::adapters::state::{Delivery, Incident, UpdateClaim};
use crate::config::ServiceTuning;
use crate::context::App;
use crate::diagnosis::classify::{classify_stop, refine_with_log};
use crate::diagnosis::severity::{SeverityInput, Signal, grade};
use crate::error::{AutopilotError, AwsError};
use crate::evidence::{self, Encryption};
use crate::lifecycle::{
    FailedTask, Opening, Policy, Signal as LifeSignal, Step, Subject, UpdateReason, count_failures, joined_cause,
    joined_severity, next_step, unannounced, update_due,
};
use crate::outcome::{ActionRecord, ActionStatus, Cause, Kind, Outcome, Severity};
use crate::render::{AlertView, EvidenceStatus, Links, ResolvedView, render_alert, render_resolved};
use crate::snapshot::{LedgerEntry, LedgerStatus};
use crate::time::{iso, now};
use crate::trigger::TaskStateChange;

/// A problem signal on one service.
#[derive(Debug, Clone)]
pub struct ProblemSignal<'a> {
    pub kind: Kind,
    pub signal: Signal,
    pub cluster: &'a str,
    pub service: &'a str,
    /// The cause the event itself proves, if any; else diagnosis decides.
    pub cause: Option<Cause>,
    /// Short label: "crash loop", "deployment failed", …
    pub problem: &'a str,
    /// One line on what this event said.
    pub explanation: String,
    pub task_definition: Option<String>,
    pub failing_task: Option<(String, Option<String>)>,
    /// Whether this event is one more failed task.
    pub failed_task: bool,
    pub region: Option<&'a str>,
    pub raw_event: &'a Value,
    /// Extra lines for the findings (e.g. "ECS circuit breaker is rolling back").
    pub notes: Vec<String>,
    /// Actions already taken for this signal.
    pub actions: Vec<ActionRecord>,
    /// The signal's own action (a failed deployment's rollback), run by the
    /// incident core once the incident exists, so that it is recorded
    /// against it and announced in its messages whoever executes it.
    pub action: Option<ActionRequest<'a>>,
    /// A failed deployment (id, when it failed) whose revision — as the
    /// engine found it on the service — is recorded failed in the known-good
    /// history once [`ProblemSignal::action`] ran.
    pub failed_deployment: Option<(&'a str, i64)>,
    /// A crash loop on a freshly deployed revision hands off to the rollback engine.
    pub rollback_on_crash_loop: bool,
    /// An action on the critical path failed: SEV1.
    pub action_failed: bool,
    /// `ecs` or `alarm:<name>` (see [`Incident::source`]).
    pub source: String,
    /// A severity the signal proves on its own (an alarm's threshold); the
    /// incident is at least this severe.
    pub severity_floor: Option<Severity>,
}

impl<'a> ProblemSignal<'a> {
    /// A signal with no cause of its own, no actions, sourced from ECS; set
    /// the rest with struct-update syntax.
    pub fn new(
        kind: Kind,
        signal: Signal,
        cluster: &'a str,
        service: &'a str,
        problem: &'a str,
        explanation: String,
        raw_event: &'a Value,
    ) -> Self {
        Self {
            kind,
            signal,
            cluster,
            service,
            cause: None,
            problem,
            explanation,
            task_definition: None,
            failing_task: None,
            failed_task: false,
            region: None,
            raw_event,
            notes: Vec::new(),
            actions: Vec::new(),
            action: None,
            failed_deployment: None,
            rollback_on_crash_loop: false,
            action_failed: false,
            source: "ecs".into(),
            severity_floor: None,
        }
    }
}

/// Whether a crash loop should hand off to the rollback engine (pure): the
/// incident is at least SEV2, the cause is one a rollback cures, and the
/// failing revision is what the service runs, deployed within the window.
pub fn crash_loop_rollback_due(
    severity: Severity,
    cause: Cause,
    failing_task_definition: Option<&str>,
    service: Option<&crate::snapshot::ServiceSnapshot>,
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

fn links(app: &App, sig: &ProblemSignal<'_>) -> Links {
    Links {
        region: sig.region.unwrap_or(&app.config.settings.console_region).to_string(),
        cluster: sig.cluster.to_string(),
        service: sig.service.to_string(),
    }
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

fn findings(sig: &ProblemSignal<'_>, g: &Gathered, severity_reasons: &[String], failures: u32) -> Vec<String> {
    let mut f = vec![sig.explanation.clone()];
    f.extend(severity_reasons.iter().cloned());
    f.extend(sig.notes.iter().cloned());
    if failures > 1 {
        f.push(format!("{failures} failed tasks counted in this incident"));
    }
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

/// `…:targetgroup/<name>/<id>` → `<name>`.
fn target_group_name(arn: &str) -> &str {
    arn.split(':').next_back().and_then(|r| r.split('/').nth(1)).unwrap_or(arn)
}

/// The label of a task-failure incident at a given severity.
fn task_problem(severity: Severity) -> &'static str {
    match severity {
        Severity::Sev1 => "service down",
        Severity::Sev2 => "crash loop",
        _ => "task failed",
    }
}

fn outcome_for(sig: &ProblemSignal<'_>, inc: &Incident, severity: Severity, cause: Cause, failures: u32) -> Outcome {
    let mut o = Outcome::new(
        sig.kind,
        severity,
        cause,
        format!(
            "{}/{}: {} - {}{}; {}",
            sig.cluster,
            sig.service,
            sig.problem,
            cause.headline(),
            if failures > 1 { format!(" ({failures} failed tasks)") } else { String::new() },
            sig.explanation
        ),
    )
    .for_service(Some(sig.cluster.to_string()), Some(sig.service.to_string()));
    o.incident = Some(inc.id.clone());
    o.evidence = inc.evidence.clone();
    o
}

/// The signal's own actions plus, when a crash loop on a fresh revision is
/// due (and `allowed`: on opening, or when the severity rises), the rollback
/// engine's decision. Returns the records and whether an action failed.
#[allow(clippy::too_many_arguments)]
async fn crash_loop_hand_off(
    app: &App,
    sig: &ProblemSignal<'_>,
    allowed: bool,
    severity: Severity,
    cause: Cause,
    service: Option<&crate::snapshot::ServiceSnapshot>,
    incident: Option<&str>,
    t: i64,
    window: i64,
) -> (Vec<ActionRecord>, bool) {
    let mut actions = Vec::new();
    let mut failed = false;
    if allowed
        && sig.rollback_on_crash_loop
        && crash_loop_rollback_due(severity, cause, sig.task_definition.as_deref(), service, t, window)
    {
        let request = ActionRequest {
            incident,
            // Only while the service still runs the revision this crash loop is about.
            failing_revision: sig.task_definition.as_deref(),
            ..ActionRequest::automatic(
                ActionKind::Rollback,
                sig.cluster,
                sig.service,
                format!("crash loop on a fresh revision ({cause})"),
            )
        };
        let result = engine::run(&app.engine(), &request).await;
        failed |= result.failed;
        actions.push(result.record);
    }
    (actions, failed)
}

/// Actions that changed (or failed to change) the service, for the
/// resolution's "what was done".
fn action_notes(actions: &[ActionRecord]) -> Vec<String> {
    actions
        .iter()
        .filter(|a| matches!(a.status, crate::outcome::ActionStatus::Executed | crate::outcome::ActionStatus::Failed))
        .map(|a| {
            format!("{} {:?}: {}", a.action, a.status, a.detail)
                .replace(" Executed:", " executed:")
                .replace(" Failed:", " FAILED:")
        })
        .collect()
}

/// A failed action makes the incident SEV1 and says why.
fn escalate_on_failure(failed: bool, severity: &mut Severity, reasons: &mut Vec<String>) {
    if failed {
        *severity = Severity::Sev1;
        reasons.push("the automatic action failed; automatic actions on this service are held".into());
    }
}

fn policy(app: &App) -> Policy {
    Policy::from_settings(&app.config.settings)
}

/// Until when this invocation holds what it takes now (an opening alert).
fn lease(app: &App, t: i64) -> i64 {
    crate::invocation::lease_until(t, crate::invocation::deadline_ms(), app.config.settings.function_timeout_seconds)
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

/// The failed task this signal reports, once per task.
fn failed_task_of(sig: &ProblemSignal<'_>, t: i64) -> Option<FailedTask> {
    if !sig.failed_task {
        return None;
    }
    let task = sig.failing_task.as_ref().map(|(arn, _)| crate::arn::last_segment(arn).to_string())?;
    Some(FailedTask { revision: revision_of(sig.task_definition.as_deref()), stopped_at: t, task })
}

/// `family:revision` of a task definition ARN or short name, empty when unknown.
fn revision_of(task_definition: Option<&str>) -> String {
    task_definition
        .and_then(crate::actions::rollback_plan::td_key)
        .map(|(family, rev)| format!("{family}:{rev}"))
        .unwrap_or_default()
}

/// Ledger entries to announce, as action records, and their keys. Entries
/// this invocation just produced are already in `own` (same detail).
fn announcements(
    app: &App,
    inc: &Incident,
    ledger: &[LedgerEntry],
    own: &[ActionRecord],
) -> (Vec<ActionRecord>, Vec<String>) {
    let mut records = Vec::new();
    let mut keys = Vec::new();
    for e in unannounced(inc, ledger, policy(app).window_seconds) {
        keys.extend(e.key.clone());
        let status = match e.status {
            LedgerStatus::Failed => ActionStatus::Failed,
            _ => ActionStatus::Executed,
        };
        if !own.iter().any(|a| a.detail == e.detail && a.status == status) {
            records.push(ActionRecord { action: e.action.as_str().to_string(), status, detail: e.detail.clone() });
        }
    }
    (records, keys)
}

/// The subject's ledger since a window before the incident opened (an
/// automatic action left unannounced by the previous incident is carried
/// into this one, [`unannounced`]); unreadable means nothing extra to
/// announce this time (the entries stay unannounced for the next message).
async fn ledger_of(app: &App, inc: &Incident) -> Vec<LedgerEntry> {
    let Some((cluster, service)) = inc.subject.as_service() else { return Vec::new() };
    let since = inc.opened_at - policy(app).window_seconds;
    match app.state.ledger_since(cluster, service, since).await {
        // An action left `executing` by an invocation that died: settle it
        // (verified against the service under the lock), then read again.
        Ok(l) if l.iter().any(|e| e.status == LedgerStatus::Executing) => {
            match engine::settle_unfinished(&app.engine(), cluster, service).await {
                Ok(true) => app.state.ledger_since(cluster, service, since).await.unwrap_or(l),
                Ok(false) => l,
                Err(e) => {
                    tracing::warn!(incident = %inc.id, error = %e, "unfinished action not settled; announced once verified");
                    l
                }
            }
        }
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(incident = %inc.id, error = %e, "ledger unreadable; unannounced actions wait for the next message");
            Vec::new()
        }
    }
}

/// Run the signal's own action (a failed deployment's rollback), now that
/// the incident exists, so that its ledger entry names the incident.
async fn immediate_action(app: &App, sig: &ProblemSignal<'_>, incident: &str) -> (Vec<ActionRecord>, bool) {
    let mut actions = sig.actions.clone();
    let mut failed = sig.action_failed;
    if let Some(request) = &sig.action {
        let request = ActionRequest { incident: Some(incident), ..request.clone() };
        let result = engine::run(&app.engine(), &request).await;
        if let Some((deployment, at)) = sig.failed_deployment {
            match &result.trigger_revision {
                Some(td) => {
                    if let Err(e) = app.state.record_failure(sig.cluster, sig.service, td, deployment, at).await {
                        tracing::error!(cluster = sig.cluster, service = sig.service, task_definition = %td, error = %e, decision = "failure-not-recorded", "failed deployment not recorded in the known-good history");
                    }
                }
                None => {
                    tracing::info!(
                        cluster = sig.cluster,
                        service = sig.service,
                        deployment,
                        "failed deployment not listed: its revision is not known, nothing recorded"
                    )
                }
            }
        }
        failed |= result.failed;
        actions.push(result.record);
    }
    (actions, failed)
}

/// Open or update the service's incident for a problem signal.
pub async fn on_problem(app: &App, sig: ProblemSignal<'_>) -> Result<Outcome, AutopilotError> {
    let subject = Subject::service(sig.cluster, sig.service);
    let t = now();
    let current = app.state.open_incident(&subject).await?;
    step_problem(app, &sig, subject, current, t, 0).await
}

fn step_problem<'s>(
    app: &'s App,
    sig: &'s ProblemSignal<'s>,
    subject: Subject,
    current: Option<Incident>,
    t: i64,
    depth: u8,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, AutopilotError>> + Send + 's>> {
    Box::pin(async move {
        let token = crate::invocation::token();
        let step = next_step(current.as_ref(), LifeSignal::Problem, t, &token, &policy(app));
        tracing::info!(step = ?step, incident = current.as_ref().map(|i| i.id.as_str()).unwrap_or(""), decision = "incident-step", "incident step");
        match (step, current) {
            (Step::Expire { .. }, Some(inc)) => {
                // Nothing happened for a whole window: that incident is over
                // without a resolution signal; this is a new one.
                let window = crate::render::human_duration(policy(app).window_seconds);
                resolve(app, sig.kind, &inc, &format!("expired: no signal for {window}"), sig.region).await?;
                step_problem(app, sig, subject, None, t, depth).await
            }
            (Step::SendOpeningAlert, Some(inc)) => match app.state.claim_opening_alert(&inc, t, lease(app, t)).await? {
                Some(claimed) => {
                    let counted = app.state.record_event(&claimed, failed_task_of(sig, t).as_ref(), t).await?;
                    deliver_opening(app, sig, counted.unwrap_or(claimed), t).await
                }
                // Someone else took it (or delivered it) a moment ago.
                None => {
                    let current = app.state.open_incident(&subject).await?;
                    retry_step(app, sig, subject, current, t, depth).await
                }
            },
            (Step::Join, Some(inc)) => join(app, sig, inc, t, false, depth).await,
            (Step::JoinQuietly, Some(inc)) => join(app, sig, inc, t, true, depth).await,
            (_, _) => open_new(app, sig, subject, t, depth).await,
        }
    })
}

/// Re-decide after a conditional write lost to another invocation; twice at
/// most, then the event is retried by Lambda.
async fn retry_step(
    app: &App,
    sig: &ProblemSignal<'_>,
    subject: Subject,
    current: Option<Incident>,
    t: i64,
    depth: u8,
) -> Result<Outcome, AutopilotError> {
    if depth >= 2 {
        return Err(AutopilotError::State(AwsError {
            retryable: true,
            ..AwsError::answer(
                "dynamodb",
                "incident",
                &app.config.state_table,
                format!("incident of {} kept changing under concurrent writers; retry", subject.label()),
            )
        }));
    }
    step_problem(app, sig, subject, current, t, depth + 1).await
}

async fn open_new(
    app: &App,
    sig: &ProblemSignal<'_>,
    subject: Subject,
    t: i64,
    depth: u8,
) -> Result<Outcome, AutopilotError> {
    let token = crate::invocation::token();
    let opening = Opening {
        // Provisional until diagnosis grades it at delivery (only ever raised).
        severity: sig.severity_floor.unwrap_or(Severity::Sev3),
        cause: sig.cause.unwrap_or(Cause::Unknown),
        summary: format!("{} - {}", sig.problem, sig.cause.unwrap_or(Cause::Unknown).headline()),
        source: sig.source.clone(),
        failed_tasks: failed_task_of(sig, t).into_iter().collect(),
    };
    let salt = format!("{token}/{}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let incident = Incident::opening(subject.clone(), &opening, t, &token, lease(app, t), &salt);
    // Recorded before anything else happens: the alert is pending until published.
    if !app.state.create_incident(&incident).await? {
        // Another invocation opened it a moment ago: this event joins it.
        let current = app.state.open_incident(&subject).await?;
        return retry_step(app, sig, subject, current, t, depth).await;
    }
    tracing::info!(incident = %incident.id, cluster = sig.cluster, service = sig.service, decision = "incident-opened", "incident opened; alert pending");
    deliver_opening(app, sig, incident, t).await
}

/// How far back a pipeline deployment is named on a service's incident.
const DEPLOY_LINK_WINDOW_SECONDS: i64 = 24 * 3600;

/// The pipeline execution and commit that last deployed the service (within
/// a day), and its pipeline incident if one is open: the first thing a
/// person asks of a fresh failure. A read that fails is said, not fatal.
async fn pipeline_findings(app: &App, cluster: &str, service: &str, t: i64) -> Vec<String> {
    let links = match app.state.pipeline_deploys(cluster, service).await {
        Ok(l) => l,
        Err(e) => return vec![format!("pipeline deployments not read: {e}")],
    };
    let Some(link) = crate::pipeline::latest_link(&links, t, DEPLOY_LINK_WINDOW_SECONDS) else {
        return Vec::new();
    };
    let mut lines = vec![link.finding(t)];
    if let Ok(Some(inc)) = app.state.open_incident(&Subject::pipeline(&link.pipeline, &link.execution_id)).await {
        lines.push(format!("that execution has an open pipeline incident: {} ({})", inc.id, inc.summary));
    }
    lines
}

/// Diagnose, act, keep the evidence and send the opening alert of `incident`
/// (pending and ours); record it delivered only after the publish succeeded.
async fn deliver_opening(
    app: &App,
    sig: &ProblemSignal<'_>,
    incident: Incident,
    t: i64,
) -> Result<Outcome, AutopilotError> {
    let settings = &app.config.settings;
    let window = settings.incident_window.as_secs() as i64;
    // Act first: the rollback's critical path is the service read and the
    // engine's checks; diagnosis, logs and evidence follow.
    let (mut actions, mut action_failed) = immediate_action(app, sig, &incident.id).await;
    let gathered = gather(
        &app.clients,
        &GatherRequest {
            task_definition: sig.task_definition.clone(),
            failing_task: sig.failing_task.clone(),
            ..app.gather_request(sig.cluster, sig.service, Depth::Full)
        },
    )
    .await;
    let recent = recent_failures(&gathered.stopped_tasks, t, window);
    // The stopped tasks ECS still lists count too, once per task.
    let mut failed_tasks = incident.failed_tasks.clone();
    for (task, _) in &recent {
        let stopped_at = task.stopped_at.as_deref().and_then(crate::lenient::parse_time).map_or(t, |at| at.timestamp());
        let known = FailedTask {
            revision: revision_of(task.task_definition_arn.as_deref()),
            stopped_at,
            task: crate::arn::last_segment(&task.task_arn).to_string(),
        };
        if !failed_tasks.iter().any(|f| f.task == known.task) {
            failed_tasks.push(known);
        }
    }
    let tuning =
        ServiceTuning::from_tags(settings, gathered.service.as_ref().map(|s| s.tags.as_slice()).unwrap_or_default());
    let revision = revision_of(sig.task_definition.as_deref());
    let failures = count_failures(&failed_tasks, Some(&revision), t, window).max(sig.failed_task as u32);
    let cause = sig
        .cause
        .filter(|c| *c != Cause::Unknown)
        .or_else(|| dominant_cause(recent.iter().map(|(_, c)| *c)))
        .unwrap_or(Cause::Unknown);
    // The failing container's log can say what its stop reason does not.
    let cause = refine_with_log(cause, gathered.logs.as_ref().map(|l| l.lines.as_slice()).unwrap_or_default());
    let (severity, reasons) = grade(&SeverityInput {
        signal: sig.signal,
        tasks: gathered.service.as_ref().map(|s| (s.running, s.desired)),
        targets: gathered.target_counts(),
        recent_failures: failures,
        crash_loop_threshold: tuning.crash_loop_threshold,
    });
    let (mut severity, mut reasons) = (severity, reasons);
    if let Some(floor) = sig.severity_floor
        && floor < severity
    {
        severity = floor;
        reasons.insert(0, sig.explanation.clone());
    }
    let (more, more_failed) = crash_loop_hand_off(
        app,
        sig,
        true,
        severity,
        cause,
        gathered.service.as_ref(),
        Some(&incident.id),
        t,
        tuning.rollback_window_seconds,
    )
    .await;
    actions.extend(more);
    action_failed |= more_failed;
    escalate_on_failure(action_failed, &mut severity, &mut reasons);
    let problem = if sig.signal == Signal::TaskFailed { task_problem(severity) } else { sig.problem };
    // What other invocations did meanwhile (or a killed attempt of this one).
    let ledger = ledger_of(app, &incident).await;
    let (others, announced) = announcements(app, &incident, &ledger, &actions);
    actions.extend(others);
    tracing::info!(
        incident = %incident.id, cluster = sig.cluster, service = sig.service, cause = cause.as_str(),
        severity = severity.as_str(), failures, decision = "incident-diagnosed", "incident diagnosed"
    );

    // Evidence first (fast, concurrent puts, bounded by the invocation's
    // remaining time), so the alert can say where it is — or why not.
    let redactor = crate::telemetry::redactor();
    let prefix = evidence::prefix(sig.cluster, sig.service, &incident.id);
    let diagnosis = json!({
        "incident": incident.id, "cause": cause, "severity": severity, "problem": problem,
        "explanation": sig.explanation, "severity_reasons": reasons, "recent_failures": failures,
        "notes": sig.notes, "opened_at": iso(incident.opened_at),
    });
    let objects = evidence::build_bundle(
        &prefix,
        &incident.id,
        sig.raw_event,
        &gathered,
        &diagnosis,
        &redactor,
        &iso(incident.opened_at),
    );
    let encryption = Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
    let budget = evidence_budget();
    let stored = match tokio::time::timeout(
        budget,
        s3::store(&app.clients, &app.config.evidence_bucket, &prefix, objects, &encryption),
    )
    .await
    {
        Ok(stored) => stored.map_err(|e| e.to_string()),
        Err(_) => {
            Err(format!("evidence writes did not finish within {} s; the alert goes out without it", budget.as_secs()))
        }
    };
    if let Err(e) = &stored {
        tracing::warn!(incident = %incident.id, error = %e, decision = "evidence-failed", "evidence not captured");
    }
    let evidence_uri = stored.as_ref().ok().map(|s| s.uri.clone());

    let view = AlertView {
        update: false,
        kind: sig.kind,
        severity,
        cause,
        cluster: sig.cluster,
        service: sig.service,
        incident: &incident.id,
        problem,
        opened_at: &iso(incident.opened_at),
        impact: impact(&gathered),
        status: format!("OPEN - {}", reasons.join("; ")),
        findings: {
            let mut lines = findings(sig, &gathered, &tuning.notes, failures);
            lines.extend(pipeline_findings(app, sig.cluster, sig.service, t).await);
            lines
        },
        log_lines: gathered.logs.as_ref().map(|l| l.lines.clone()).unwrap_or_default(),
        log_source: gathered.logs.as_ref().map(|l| (l.log_group.clone(), l.log_stream.clone())),
        actions: &actions,
        evidence: match &stored {
            Ok(s) => EvidenceStatus::Stored(s.uri.clone()),
            Err(e) => EvidenceStatus::NotCaptured(e.clone()),
        },
        evidence_location: evidence_uri.as_ref().map(|_| (app.config.evidence_bucket.clone(), prefix.clone())),
        links: links(app, sig),
    };
    let view_impact = view.impact.clone();
    let mut message = render_alert(&view, &redactor);
    message.team = tuning.team.clone();
    // Unpublished, the alert stays pending and ours: Lambda's retry of this
    // event (same token) sends it; so does the next signal once our lease is over.
    let message_id = publish(&app.clients, &app.config.notify_topic_arn, &message).await.map_err(publish_failed)?;
    let summary = format!("{problem} - {}", cause.headline());
    // Notes are stored redacted: later messages render them without the task definition at hand.
    let notes: Vec<String> =
        sig.notes.iter().cloned().chain(action_notes(&actions)).map(|n| redactor.text(&n)).collect();
    let delivery = Delivery {
        message_id: Some(&message_id),
        evidence: evidence_uri.as_deref(),
        severity: Some(severity),
        cause: Some(cause),
        summary: Some(&summary),
        notes: &notes,
        announced: &announced,
        failed_tasks: &failed_tasks,
        impact: &view_impact,
        team: tuning.team.as_deref(),
    };
    if let Err(e) = app.state.mark_delivered(&incident, &delivery, now()).await {
        // The alert is out; the record says pending until our lease ends.
        tracing::error!(incident = %incident.id, error = %e, decision = "delivery-not-recorded", "alert sent but not recorded as delivered");
    }
    let mut inc = incident;
    inc.evidence = evidence_uri;
    let mut o = outcome_for(sig, &inc, severity, cause, failures);
    o.summary = format!("{}/{}: {problem} - {}; {}", sig.cluster, sig.service, cause.headline(), sig.explanation);
    if let Err(e) = &stored {
        o.summary.push_str(&format!(" (evidence not captured: {e})"));
    }
    o.notified = Some(message_id);
    o.actions = actions;
    Ok(o)
}

async fn join(
    app: &App,
    sig: &ProblemSignal<'_>,
    inc: Incident,
    t: i64,
    quiet: bool,
    depth: u8,
) -> Result<Outcome, AutopilotError> {
    let settings = &app.config.settings;
    let window = settings.incident_window.as_secs() as i64;
    let Some(updated) = app.state.record_event(&inc, failed_task_of(sig, t).as_ref(), t).await? else {
        // Resolved between our read and write: this is a new problem.
        let subject = inc.subject.clone();
        return retry_step(app, sig, subject, None, t, depth).await;
    };
    let redactor = crate::telemetry::redactor();
    let (mut actions, mut action_failed) = immediate_action(app, sig, &updated.id).await;
    // Facts only: enough to see whether the service got worse.
    let gathered = gather(&app.clients, &app.gather_request(sig.cluster, sig.service, Depth::Facts)).await;
    // The task definition's secret values, so that the update redacts them too.
    if let Some(td) = gathered.service.as_ref().and_then(|s| s.task_definition.as_deref()) {
        let _ = crate::adapters::ecs::describe_task_definition(&app.clients, td).await;
    }
    let tuning =
        ServiceTuning::from_tags(settings, gathered.service.as_ref().map(|s| s.tags.as_slice()).unwrap_or_default());
    let revision = revision_of(sig.task_definition.as_deref());
    let failures = updated.failures_in(Some(&revision), t, window);
    let (observed, reasons) = grade(&SeverityInput {
        signal: sig.signal,
        tasks: gathered.service.as_ref().map(|s| (s.running, s.desired)),
        targets: gathered.target_counts(),
        recent_failures: failures,
        crash_loop_threshold: tuning.crash_loop_threshold,
    });
    let mut severity = joined_severity(updated.severity, observed, sig.severity_floor);
    let mut reasons = reasons;
    let cause = joined_cause(updated.cause, sig.cause);
    let rises_now = severity < updated.severity;
    let (more, more_failed) = crash_loop_hand_off(
        app,
        sig,
        rises_now,
        severity,
        cause,
        gathered.service.as_ref(),
        Some(&updated.id),
        t,
        tuning.rollback_window_seconds,
    )
    .await;
    actions.extend(more);
    action_failed |= more_failed;
    escalate_on_failure(action_failed, &mut severity, &mut reasons);
    let notes: Vec<String> =
        sig.notes.iter().cloned().chain(action_notes(&actions)).map(|n| redactor.text(&n)).collect();
    let mut o = outcome_for(sig, &updated, severity, cause, failures);
    o.actions = actions.clone();
    if quiet {
        // The opening alert is on its way from another invocation: no update
        // before it. A raised severity is kept for its sender and the next update.
        if severity < updated.severity {
            app.state.raise_severity(&updated, severity).await?;
        }
        app.state.mark_announced(&updated, &[], &notes).await?;
        if action_failed || actions.iter().any(|a| a.status == ActionStatus::Executed) {
            // Our action must be announced, and only after the opening alert:
            // Lambda retries this event once that alert is out.
            let until = match &updated.alert {
                crate::lifecycle::Alert::Pending { until, .. } => iso(*until),
                crate::lifecycle::Alert::Delivered { at } => iso(*at),
            };
            return Err(AutopilotError::InProgress {
                what: format!("opening alert of incident {} (the executed action is announced on retry)", updated.id),
                until,
            });
        }
        o.notified = Some("suppressed:opening-alert-in-flight".into());
        return Ok(o);
    }
    let ledger = ledger_of(app, &updated).await;
    let (others, announced) = announcements(app, &updated, &ledger, &actions);
    let mut shown = actions.clone();
    shown.extend(others);
    let policy = policy(app);
    // A failed deployment (a new one, or a refusal to act on it) and ECS's
    // own rollback are news by themselves; a crash loop's next stop is not.
    let news = sig.signal == Signal::DeploymentFailed || !sig.notes.is_empty();
    let Some(reason) = update_due(&updated, severity, !announced.is_empty(), news, t, &policy) else {
        app.state.mark_announced(&updated, &[], &notes).await?;
        o.notified = Some("suppressed:incident-open-update-interval".into());
        return Ok(o);
    };
    // Claim the update: the reason first, then any other that still holds.
    let mut reasons_to_try = vec![reason];
    for r in [UpdateReason::Action, UpdateReason::Interval] {
        let holds = match r {
            UpdateReason::Action => !announced.is_empty(),
            _ => true,
        };
        if holds && !reasons_to_try.contains(&r) {
            reasons_to_try.push(r);
        }
    }
    let mut claimed = None;
    for r in reasons_to_try {
        let got = app
            .state
            .claim_update(
                &updated,
                &UpdateClaim {
                    reason: r,
                    severity,
                    cause: Some(cause),
                    first_unannounced: announced.first().map(String::as_str),
                    now: t,
                    interval_seconds: policy.update_interval_seconds,
                },
            )
            .await?;
        if let Some(stored) = got {
            claimed = Some((r, stored));
            break;
        }
    }
    let Some((reason, stored)) = claimed else {
        let current = app.state.open_incident(&updated.subject).await?;
        if current.as_ref().is_none_or(|c| c.id != updated.id) {
            // Resolved (or replaced) under us: this signal (and any action
            // it took, still unannounced) belongs to what is open now.
            return retry_step(app, sig, updated.subject.clone(), current, t, depth).await;
        }
        app.state.mark_announced(&updated, &[], &notes).await?;
        o.notified = Some("suppressed:update-sent-by-another-invocation".into());
        return Ok(o);
    };
    // The stored severity is the incident's: never lower than what we saw raised.
    let severity = stored.severity.min(severity);
    o.severity = severity;
    let problem = if sig.signal == Signal::TaskFailed { task_problem(severity) } else { sig.problem };
    let opened = iso(updated.opened_at);
    let view = AlertView {
        update: true,
        kind: sig.kind,
        severity,
        cause: stored.cause,
        cluster: sig.cluster,
        service: sig.service,
        incident: &updated.id,
        problem,
        opened_at: &opened,
        impact: impact(&gathered),
        status: format!(
            "OPEN for {} - {}{}",
            crate::render::human_duration(t - updated.opened_at),
            reasons.join("; "),
            match reason {
                UpdateReason::SeverityRose(from) => format!(" (severity raised from {from})"),
                _ => String::new(),
            }
        ),
        findings: findings(sig, &gathered, &tuning.notes, failures),
        log_lines: Vec::new(),
        log_source: None,
        actions: &shown,
        evidence: match updated.evidence.clone() {
            Some(uri) => EvidenceStatus::Stored(uri),
            None => EvidenceStatus::NotCaptured("not captured when the incident opened".into()),
        },
        evidence_location: None,
        links: links(app, sig),
    };
    let mut message = render_alert(&view, &redactor);
    message.team = tuning.team.clone().or_else(|| updated.team.clone());
    match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
        Ok(id) => {
            o.notified = Some(id);
            if let Err(e) = app.state.mark_announced(&updated, &announced, &notes).await {
                tracing::warn!(incident = %updated.id, error = %e, "announced actions not recorded; they may be announced again");
            }
        }
        // An executed action must reach the channel: fail so that Lambda retries.
        Err(e) if !announced.is_empty() => return Err(publish_failed(e)),
        Err(e) => {
            // The incident is already announced; a lost routine update is logged, not retried.
            tracing::warn!(incident = %updated.id, error = %e, decision = "update-not-sent", "incident update not published");
            let _ = app.state.mark_announced(&updated, &[], &notes).await;
            o.notified = Some(format!("suppressed:publish-failed: {}", e.message));
        }
    }
    Ok(o)
}

/// Close `inc` (once) and send its resolution; an unsent resolution gives
/// the closing back and fails, so that Lambda's retry sends it.
async fn resolve(
    app: &App,
    kind: Kind,
    inc: &Incident,
    resolved_by: &str,
    region: Option<&str>,
) -> Result<Option<(Incident, String)>, AutopilotError> {
    let t = now();
    let Some(closing) = app.state.begin_close(&inc.subject, &inc.id, t).await? else {
        return Ok(None);
    };
    let (cluster, service) = closing.subject.as_service().unwrap_or(("", ""));
    let ttr = t - closing.opened_at;
    let problem = closing.summary.split(" - ").next().unwrap_or("incident").to_string();
    let ledger = ledger_of(app, &closing).await;
    // Actions no message announced yet (another invocation's, finished
    // after the last update) are announced by the resolution.
    let (unsaid, announced) = announcements(app, &closing, &ledger, &[]);
    let redactor = crate::telemetry::redactor();
    let mut notes = closing.notes.clone();
    notes.extend(action_notes(&unsaid).iter().map(|n| redactor.text(n)));
    // The post-incident report, beside the evidence; the resolution names it.
    let report = post_incident_report(app, &closing, &ledger, resolved_by, t).await;
    let view = ResolvedView {
        report: report.as_deref(),
        kind,
        severity: closing.severity,
        cause: closing.cause,
        cluster,
        service,
        incident: &closing.id,
        problem: &problem,
        opened_at: &iso(closing.opened_at),
        resolved_at: &iso(t),
        resolved_by,
        time_to_recover_seconds: ttr,
        failures: closing.failures(),
        notes: &notes,
        evidence: closing.evidence.as_deref(),
        links: Links {
            region: region.unwrap_or(&app.config.settings.console_region).to_string(),
            cluster: cluster.into(),
            service: service.into(),
        },
    };
    let mut message = render_resolved(&view, &redactor);
    message.team = closing.team.clone();
    let message_id = match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
        Ok(id) => id,
        Err(e) => {
            if let Err(undo) = app.state.abandon_close(&closing.subject, &closing.id).await {
                tracing::error!(incident = %closing.id, error = %undo, "closing not given back; the retry resolves it");
            }
            return Err(publish_failed(e));
        }
    };
    app.state.mark_ledger_announced(cluster, service, &announced, t).await;
    app.state.finish_close(&closing, resolved_by, t).await;
    tracing::info!(incident = %closing.id, ttr_seconds = ttr, resolved_by, decision = "incident-resolved", "incident resolved");
    Ok(Some((closing, message_id)))
}

/// Write the incident report (Markdown, after the runbooks' template) beside
/// the incident's evidence; its URI, or `None` when it could not be kept (the
/// resolution goes out regardless, within a few seconds).
async fn post_incident_report(
    app: &App,
    closing: &Incident,
    ledger: &[LedgerEntry],
    resolved_by: &str,
    t: i64,
) -> Option<String> {
    let (cluster, service) = closing.subject.as_service()?;
    // The timeline is this incident's: from its opening.
    let ledger: Vec<LedgerEntry> = ledger.iter().filter(|e| e.at >= closing.opened_at).cloned().collect();
    let markdown = crate::render::render_incident_report(
        &crate::render::IncidentReportView { incident: closing, ledger: &ledger, resolved_at: t, resolved_by },
        &crate::telemetry::redactor(),
    );
    let key = format!("{}report.md", evidence::prefix(cluster, service, &closing.id));
    let encryption = Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
    let bucket = &app.config.evidence_bucket;
    let put = s3::put_text(&app.clients, bucket, &key, markdown, "text/markdown; charset=utf-8", &encryption);
    match tokio::time::timeout(std::time::Duration::from_secs(5), put).await {
        Ok(Ok(())) => Some(format!("s3://{bucket}/{key}")),
        Ok(Err(e)) => {
            tracing::warn!(incident = %closing.id, error = %e, "incident report not stored");
            None
        }
        Err(_) => {
            tracing::warn!(incident = %closing.id, "incident report not stored within 5 s");
            None
        }
    }
}

/// Close `inc` as expired (no signal for a whole window), saying so to the
/// channel; `Ok(false)` when another invocation closed it first.
pub(crate) async fn expire(app: &App, inc: &Incident, why: &str) -> Result<bool, AutopilotError> {
    if inc.subject.as_pipeline().is_some() {
        return super::pipeline::expire(app, inc, why).await;
    }
    Ok(resolve(app, Kind::Report, inc, why, None).await?.is_some())
}

/// Resolve the service's open incident, once, with its time to recover.
pub async fn on_recovery(
    app: &App,
    kind: Kind,
    cluster: &str,
    service: &str,
    resolved_by: &str,
    region: Option<&str>,
) -> Result<Outcome, AutopilotError> {
    on_recovery_of(app, kind, cluster, service, resolved_by, region, None).await
}

/// Like [`on_recovery`], but only for the incident `source` opened (an alarm's
/// OK proves its own problem gone, not a crash loop's).
pub async fn on_recovery_of(
    app: &App,
    kind: Kind,
    cluster: &str,
    service: &str,
    resolved_by: &str,
    region: Option<&str>,
    source: Option<&str>,
) -> Result<Outcome, AutopilotError> {
    let t = now();
    let subject = Subject::service(cluster, service);
    let base = |summary: String| {
        Outcome::new(kind, Severity::Info, Cause::Expected, summary)
            .for_service(Some(cluster.into()), Some(service.into()))
    };
    let current = app.state.open_incident(&subject).await?;
    let token = crate::invocation::token();
    let step = next_step(current.as_ref(), LifeSignal::Recovered { source }, t, &token, &policy(app));
    let Some(open) = current else {
        return Ok(base(format!("{cluster}/{service}: {resolved_by}; no open incident")));
    };
    let resolved_by = match step {
        Step::Resolve => resolved_by.to_string(),
        // Lambda retries the recovery once the opening alert is out.
        Step::AwaitOpeningAlert => {
            let until = match &open.alert {
                crate::lifecycle::Alert::Pending { until, .. } => iso(*until),
                crate::lifecycle::Alert::Delivered { at } => iso(*at),
            };
            tracing::info!(incident = %open.id, decision = "resolution-deferred", "recovery waits for the opening alert");
            return Err(AutopilotError::InProgress {
                what: format!("the opening alert of incident {}", open.id),
                until,
            });
        }
        Step::Expire { .. } => {
            let window = crate::render::human_duration(policy(app).window_seconds);
            format!("expired: no signal for {window} (then {resolved_by})")
        }
        _ => {
            let mut o = base(format!(
                "{cluster}/{service}: {resolved_by}; open incident {} ({}) was not opened by it and stays open",
                open.id, open.summary
            ));
            o.incident = Some(open.id);
            return Ok(o);
        }
    };
    let Some((closed, message_id)) = resolve(app, kind, &open, &resolved_by, region).await? else {
        let mut o = base(format!("{cluster}/{service}: {resolved_by}; incident {} already resolved", open.id));
        o.incident = Some(open.id);
        o.notified = Some("suppressed:already-resolved".into());
        return Ok(o);
    };
    let ttr = t - closed.opened_at;
    let mut o = Outcome::new(
        kind,
        closed.severity,
        closed.cause,
        format!(
            "{cluster}/{service}: resolved {} ({}) by {resolved_by} after {}",
            closed.id,
            closed.summary,
            crate::render::human_duration(ttr)
        ),
    )
    .for_service(Some(cluster.into()), Some(service.into()));
    o.incident = Some(closed.id.clone());
    o.evidence = closed.evidence.clone();
    o.notified = Some(message_id);
    Ok(o)
}

/// An undelivered notification fails the invocation so that Lambda retries
/// it, whatever SNS said.
pub(crate) fn publish_failed(e: AwsError) -> AutopilotError {
    AutopilotError::Aws(AwsError { retryable: true, ..e })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{DeploymentSnapshot, ServiceSnapshot};

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
