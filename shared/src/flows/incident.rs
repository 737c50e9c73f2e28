//! One incident per problem: open with a full diagnosis, evidence and one
//! alert; count follow-up events with at most one update per interval (or on
//! rising severity); resolve once, with the time to recover.

use serde_json::{Value, json};

use crate::actions::ActionKind;
use crate::actions::engine::{self, ActionRequest};
use crate::adapters::gather::{Depth, GatherRequest, Gathered, gather};
use crate::adapters::s3;
use crate::adapters::sns::publish;
use crate::adapters::state::Incident;
use crate::context::App;
use crate::diagnosis::classify::{classify_stop, refine_with_log};
use crate::diagnosis::severity::{SeverityInput, Signal, grade};
use crate::error::{AutopilotError, AwsError};
use crate::evidence::{self, Encryption};
use crate::outcome::{ActionRecord, Cause, Kind, Outcome, Severity};
use crate::render::{AlertView, EvidenceStatus, Links, ResolvedView, render_alert, render_resolved};
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
    /// Actions already taken for this signal (e.g. the rollback of a failed deployment).
    pub actions: Vec<ActionRecord>,
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
) -> (Vec<ActionRecord>, bool) {
    let mut actions = sig.actions.clone();
    let mut failed = sig.action_failed;
    let window = app.config.settings.limits.rollback_window_seconds;
    if allowed
        && sig.rollback_on_crash_loop
        && crash_loop_rollback_due(severity, cause, sig.task_definition.as_deref(), service, t, window)
    {
        let request = ActionRequest {
            incident,
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

/// Open or update the service's incident for a problem signal.
pub async fn on_problem(app: &App, sig: ProblemSignal<'_>) -> Result<Outcome, AutopilotError> {
    let settings = &app.config.settings;
    let window = settings.incident_window.as_secs() as i64;
    let t = now();
    let mut open = app.state.open_incident(sig.cluster, sig.service).await?;
    if let Some(inc) = &open
        && inc.last_event_at < t - window
    {
        // Nothing happened for a whole window: that incident is over without a
        // resolution signal; this is a new one.
        app.state
            .close_incident(sig.cluster, sig.service, &inc.id, "expired: no event within the incident window", t)
            .await?;
        tracing::info!(incident = %inc.id, decision = "incident-expired", "open incident expired");
        open = None;
    }
    match open {
        Some(inc) => follow_up(app, &sig, inc, t).await,
        None => open_new(app, &sig, t).await,
    }
}

async fn open_new(app: &App, sig: &ProblemSignal<'_>, t: i64) -> Result<Outcome, AutopilotError> {
    let settings = &app.config.settings;
    let window = settings.incident_window.as_secs() as i64;
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
    let failures = (recent.len() as u32).max(sig.failed_task as u32);
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
        crash_loop_threshold: settings.crash_loop_threshold,
    });
    let (mut severity, mut reasons) = (severity, reasons);
    if let Some(floor) = sig.severity_floor
        && floor < severity
    {
        severity = floor;
        reasons.insert(0, sig.explanation.clone());
    }
    let (actions, action_failed) =
        crash_loop_hand_off(app, sig, true, severity, cause, gathered.service.as_ref(), None, t).await;
    escalate_on_failure(action_failed, &mut severity, &mut reasons);
    let problem = if sig.signal == Signal::TaskFailed { task_problem(severity) } else { sig.problem };
    let incident = Incident {
        id: Incident::new_id(sig.cluster, sig.service, t),
        cluster: sig.cluster.to_string(),
        service: sig.service.to_string(),
        cause,
        severity,
        summary: format!("{problem} - {}", cause.headline()),
        opened_at: t,
        last_event_at: t,
        last_notified_at: Some(t),
        failures: sig.failed_task as u32,
        events: 1,
        evidence: None,
        message_id: None,
        notes: Vec::new(),
        source: sig.source.clone(),
    };
    if !app.state.create_incident(&incident).await? {
        // Another invocation opened it a moment ago: this event is a follow-up.
        return match app.state.open_incident(sig.cluster, sig.service).await? {
            Some(inc) => follow_up(app, sig, inc, t).await,
            None => Err(AutopilotError::State(AwsError {
                retryable: true,
                ..AwsError::answer(
                    "dynamodb",
                    "GetItem (open incident)",
                    &app.config.state_table,
                    format!("incident of {}/{} vanished while opening; retry", sig.cluster, sig.service),
                )
            })),
        };
    }
    // Notes are stored redacted: later messages render them without the task definition at hand.
    let redactor = crate::telemetry::redactor();
    for note in sig.notes.iter().cloned().chain(action_notes(&actions)) {
        app.state.add_note(&incident, &redactor.text(&note)).await?;
    }
    tracing::info!(
        incident = %incident.id, cluster = sig.cluster, service = sig.service, cause = cause.as_str(),
        severity = severity.as_str(), failures, decision = "incident-opened", "incident opened"
    );

    // Evidence first (fast, concurrent puts), so the alert can say where it is — or why not.

    let prefix = evidence::prefix(sig.cluster, sig.service, &incident.id);
    let diagnosis = json!({
        "incident": incident.id, "cause": cause, "severity": severity, "problem": problem,
        "explanation": sig.explanation, "severity_reasons": reasons, "recent_failures": failures,
        "notes": sig.notes, "opened_at": iso(t),
    });
    let objects =
        evidence::build_bundle(&prefix, &incident.id, sig.raw_event, &gathered, &diagnosis, &redactor, &iso(t));
    let encryption = Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
    let stored = s3::store(&app.clients, &app.config.evidence_bucket, &prefix, objects, &encryption).await;
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
        opened_at: &iso(t),
        impact: impact(&gathered),
        status: format!("OPEN - {}", reasons.join("; ")),
        findings: findings(sig, &gathered, &[], failures),
        log_lines: gathered.logs.as_ref().map(|l| l.lines.clone()).unwrap_or_default(),
        log_source: gathered.logs.as_ref().map(|l| (l.log_group.clone(), l.log_stream.clone())),
        actions: &actions,
        evidence: match &stored {
            Ok(s) => EvidenceStatus::Stored(s.uri.clone()),
            Err(e) => EvidenceStatus::NotCaptured(e.to_string()),
        },
        evidence_location: evidence_uri.as_ref().map(|_| (app.config.evidence_bucket.clone(), prefix.clone())),
        links: links(app, sig),
    };
    let message = render_alert(&view, &redactor);
    let message_id = match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
        Ok(id) => id,
        Err(e) => {
            // Without the alert the incident must not look handled: close it so
            // the retry of this event opens it again and alerts.
            let _ = app.state.close_incident(sig.cluster, sig.service, &incident.id, "alert not delivered", t).await;
            return Err(publish_failed(e));
        }
    };
    app.state.set_delivery(&incident, Some(&message_id), evidence_uri.as_deref()).await?;
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

async fn follow_up(app: &App, sig: &ProblemSignal<'_>, inc: Incident, t: i64) -> Result<Outcome, AutopilotError> {
    let settings = &app.config.settings;
    let Some(updated) = app.state.record_event(&inc, sig.failed_task, t).await? else {
        // Resolved between our read and write: this is a new problem.
        return Box::pin(open_new(app, sig, t)).await;
    };
    // Facts only: enough to see whether the service got worse.
    let gathered = gather(&app.clients, &app.gather_request(sig.cluster, sig.service, Depth::Facts)).await;
    // The task definition's secret values, so that the update redacts them too.
    if let Some(td) = gathered.service.as_ref().and_then(|s| s.task_definition.as_deref()) {
        let _ = crate::adapters::ecs::describe_task_definition(&app.clients, td).await;
    }
    let redactor = crate::telemetry::redactor();
    for note in &sig.notes {
        app.state.add_note(&updated, &redactor.text(note)).await?;
    }
    let (observed, reasons) = grade(&SeverityInput {
        signal: sig.signal,
        tasks: gathered.service.as_ref().map(|s| (s.running, s.desired)),
        targets: gathered.target_counts(),
        recent_failures: updated.failures,
        crash_loop_threshold: settings.crash_loop_threshold,
    });
    // Severity only rises within an incident; the cause is refined, never lost.
    let mut severity = observed.min(updated.severity).min(sig.severity_floor.unwrap_or(Severity::Info));
    let mut reasons = reasons;
    let cause = match (updated.cause, sig.cause) {
        (Cause::Unknown, Some(c)) => c,
        (c, _) => c,
    };
    let rises_now = severity < updated.severity;
    let (actions, action_failed) =
        crash_loop_hand_off(app, sig, rises_now, severity, cause, gathered.service.as_ref(), Some(&updated.id), t)
            .await;
    escalate_on_failure(action_failed, &mut severity, &mut reasons);
    for note in action_notes(&actions) {
        app.state.add_note(&updated, &redactor.text(&note)).await?;
    }
    let rises = severity < updated.severity;
    // Any action decision is news: it goes out whatever the update interval.
    let acted = !actions.is_empty();
    let interval = if acted { -1 } else { settings.update_interval.as_secs() as i64 };
    let due = updated.last_notified_at.is_none_or(|at| t - at >= interval);
    let mut o = outcome_for(sig, &updated, severity, cause, updated.failures);
    o.actions = actions.clone();
    if !(rises || due) {
        o.notified = Some("suppressed:incident-open-update-interval".into());
        return Ok(o);
    }
    if !app.state.claim_update(&updated, severity, cause, t, interval).await? {
        o.notified = Some("suppressed:update-sent-by-another-invocation".into());
        return Ok(o);
    }
    let problem = if sig.signal == Signal::TaskFailed { task_problem(severity) } else { sig.problem };
    let opened = iso(updated.opened_at);
    let view = AlertView {
        update: true,
        kind: sig.kind,
        severity,
        cause,
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
            if rises { format!(" (severity raised from {})", updated.severity) } else { String::new() }
        ),
        findings: findings(sig, &gathered, &[], updated.failures),
        log_lines: Vec::new(),
        log_source: None,
        actions: &actions,
        evidence: match updated.evidence.clone() {
            Some(uri) => EvidenceStatus::Stored(uri),
            None => EvidenceStatus::NotCaptured("not captured when the incident opened".into()),
        },
        evidence_location: None,
        links: links(app, sig),
    };
    let message = render_alert(&view, &redactor);
    match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
        Ok(id) => o.notified = Some(id),
        Err(e) => {
            // The incident is already announced; a lost update is logged, not retried.
            tracing::warn!(incident = %updated.id, error = %e, decision = "update-not-sent", "incident update not published");
            o.notified = Some(format!("suppressed:publish-failed: {}", e.message));
        }
    }
    Ok(o)
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
    let base = |summary: String| {
        Outcome::new(kind, Severity::Info, Cause::Expected, summary)
            .for_service(Some(cluster.into()), Some(service.into()))
    };
    let Some(open) = app.state.open_incident(cluster, service).await? else {
        return Ok(base(format!("{cluster}/{service}: {resolved_by}; no open incident")));
    };
    if let Some(src) = source
        && open.source != src
    {
        let mut o = base(format!(
            "{cluster}/{service}: {resolved_by}; open incident {} ({}) was not opened by it and stays open",
            open.id, open.summary
        ));
        o.incident = Some(open.id);
        return Ok(o);
    }
    let Some(closed) = app.state.close_incident(cluster, service, &open.id, resolved_by, t).await? else {
        let mut o = base(format!("{cluster}/{service}: {resolved_by}; incident {} already resolved", open.id));
        o.incident = Some(open.id);
        o.notified = Some("suppressed:already-resolved".into());
        return Ok(o);
    };
    let ttr = t - closed.opened_at;
    let problem = closed.summary.split(" - ").next().unwrap_or("incident").to_string();
    let view = ResolvedView {
        kind,
        severity: closed.severity,
        cause: closed.cause,
        cluster,
        service,
        incident: &closed.id,
        problem: &problem,
        opened_at: &iso(closed.opened_at),
        resolved_at: &iso(t),
        resolved_by,
        time_to_recover_seconds: ttr,
        failures: closed.failures,
        notes: &closed.notes,
        evidence: closed.evidence.as_deref(),
        links: Links {
            region: region.unwrap_or(&app.config.settings.console_region).to_string(),
            cluster: cluster.into(),
            service: service.into(),
        },
    };
    let message = render_resolved(&view, &crate::telemetry::redactor());
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
    o.notified = Some(match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(incident = %closed.id, error = %e, decision = "resolution-not-sent", "resolution not published");
            format!("suppressed:publish-failed: {}", e.message)
        }
    });
    tracing::info!(incident = %closed.id, ttr_seconds = ttr, decision = "incident-resolved", "incident resolved");
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
