//! Deployment approvals and acknowledgements: the I/O around the pure
//! `notify::approval` and `incident::machine` (layer of the incident
//! shell: flows call it; it reads and writes through adapters and drives
//! the engine and the machine).
//!
//! - [`notice`]: a PAUSE hook waiting (`ECS Hook State Change`
//!   `HOOK_AWAITING_ACTION`) becomes one approval notice: the service, the
//!   target and the running revision and what changed between them, the
//!   target's health, the commands and chat buttons to continue or roll
//!   back. The caller runs it inside the notice's claim (`notice#hook/<id>`):
//!   delivered twice, it is one notice; the claim is done only after the
//!   publish succeeded.
//! - [`answer`]: runbook `continue-deployment` / `rollback-deployment`:
//!   ContinueServiceDeployment through the bounded-action engine (mode,
//!   lock, ledger), announced in the approval's thread.
//! - [`acknowledge`]: runbook `acknowledge`: the machine's `Acknowledge`
//!   input on the service's open incident, announced in its thread.

use serde_json::json;

use crate::actions::engine::{self, ActionRequest, HookTarget};
use crate::actions::{ActionKind, Origin};
use crate::adapters::ecs;
use crate::adapters::sns::publish;
use crate::adapters::state::hooks::HookRecord;
use crate::context::App;
use crate::error::AutopilotError;
use crate::incident::machine::Input;
use crate::notify::approval::{self as view, ApprovalView, ChangesRead, ThreadNote};
use crate::notify::render::EventType;
use crate::outcome::{ActionRecord, ActionStatus, Cause, Kind, Outcome, Severity};
use crate::trigger::{Envelope, HookStateChange, RunbookRequest};

/// The approval notice of one paused hook (run it inside the notice's claim).
pub async fn notice(
    app: &App,
    e: &Envelope<HookStateChange>,
    cluster: &str,
    service: &str,
) -> Result<Outcome, AutopilotError> {
    let hook = &e.detail;
    let snapshot = ecs::describe_service(&app.clients, cluster, service).await;
    let known_good: Vec<String> = match app.state.deployments().known_good_history(cluster, service).await {
        Ok(mut h) => {
            h.retain(|k| k.completed_at.is_some());
            h.sort_by_key(|k| std::cmp::Reverse(k.completed_at));
            h.into_iter().map(|k| k.task_definition).collect()
        }
        Err(err) => {
            tracing::warn!(cluster, service, error = %err, "known-good history unreadable; running revision from the service only");
            Vec::new()
        }
    };
    let (target, running) = match &snapshot {
        Ok(s) => view::revisions(s, &known_good),
        Err(_) => (None, None),
    };
    let changes = match (&snapshot, &target, &running) {
        (Err(err), _, _) => ChangesRead::Unread(format!("the service could not be read ({err})")),
        (_, None, _) => ChangesRead::Unread("the service names no task definition".into()),
        (_, _, None) => ChangesRead::Unread("no running revision other than the target is known".into()),
        (Ok(_), Some(t), Some(r)) => {
            let (a, b) = tokio::join!(
                ecs::describe_task_definition(&app.clients, r),
                ecs::describe_task_definition(&app.clients, t)
            );
            match (a, b) {
                (Ok(r), Ok(t)) => ChangesRead::Read(view::diff(&r, &t)),
                (Err(err), _) | (_, Err(err)) => {
                    ChangesRead::Unread(format!("a task definition could not be read ({err})"))
                }
            }
        }
    };
    let health = snapshot.as_ref().ok().map(|s| view::green_health(s, target.as_deref()));
    let function = view::runbook_function(
        std::env::var("RUNBOOK_FUNCTION_NAME").ok().as_deref(),
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().as_deref(),
    );
    let region = e.meta.region.clone().unwrap_or_else(|| app.config.settings.console_region.clone());
    let message = view::render_approval(
        &ApprovalView {
            cluster,
            service,
            hook,
            target: target.as_deref(),
            running: running.as_deref(),
            changes,
            health,
            runbook_function: &function,
            region: &region,
        },
        &crate::telemetry::redactor(),
    );
    let thread = view::thread(hook.deployment_id());
    // Recorded before the notice goes out: a button pressed at once finds it.
    let record = HookRecord {
        hook_id: hook.hook_id.clone(),
        cluster: cluster.into(),
        service: service.into(),
        service_deployment_arn: hook.service_deployment_arn.clone(),
        thread: thread.clone(),
        target: target.clone(),
        announced_at: crate::time::now(),
    };
    app.state.hooks().put(&record).await?;
    let id = publish(&app.clients, &app.config.notify_topic_arn, &message)
        .await
        .map_err(crate::incident::shell::publish_failed)?;
    tracing::info!(cluster, service, hook = %hook.hook_id, thread = %thread, message_id = %id, decision = "approval-notice", "approval notice sent");
    let mut o = Outcome::new(
        Kind::EcsDeployment,
        Severity::Info,
        Cause::Expected,
        format!(
            "{cluster}/{service}: deployment {} paused at {} (hook {}): approval notice sent",
            hook.deployment_id(),
            hook.lifecycle_stage.as_deref().unwrap_or("a lifecycle stage"),
            hook.hook_id
        ),
    )
    .for_service(Some(cluster.into()), Some(service.into()));
    o.notified = Some(id);
    Ok(o)
}

/// A hook event that asks nothing of anyone (in progress, succeeded, …): recorded, not paged.
pub fn recorded(hook: &HookStateChange, cluster: &str, service: &str) -> Outcome {
    let mut o = Outcome::new(
        Kind::EcsDeployment,
        Severity::Info,
        Cause::Expected,
        format!(
            "{cluster}/{service}: hook {} of deployment {} {}; recorded, nothing to approve",
            hook.hook_id,
            hook.deployment_id(),
            hook.event_name
        ),
    )
    .for_service(Some(cluster.into()), Some(service.into()));
    o.notified = Some("suppressed:no-action-awaited".into());
    o
}

/// The outcome of a duplicate delivery of an announced hook.
pub fn duplicate(hook: &HookStateChange, cluster: &str, service: &str) -> Outcome {
    let mut o = Outcome::new(
        Kind::EcsDeployment,
        Severity::Info,
        Cause::Expected,
        format!("{cluster}/{service}: hook {} already announced", hook.hook_id),
    )
    .for_service(Some(cluster.into()), Some(service.into()));
    o.notified = Some("suppressed:duplicate-notice".into());
    o
}

fn runbook_outcome(cluster: &str, service: &str, severity: Severity, summary: String) -> Outcome {
    Outcome::new(Kind::Runbook, severity, Cause::Unknown, summary)
        .for_service(Some(cluster.into()), Some(service.into()))
}

/// Runbook `continue-deployment` / `rollback-deployment`.
pub async fn answer(
    app: &App,
    req: &RunbookRequest,
    kind: ActionKind,
    cluster: &str,
    service: &str,
) -> Result<Outcome, AutopilotError> {
    let hook_id = req.hook_id.as_deref().unwrap_or_default();
    let requested_by = req.caller.requested_by(req.requested_by.as_deref());
    // Refused before the engine: said, logged, and recorded as skipped.
    let refuse = |decision: &str, why: String| {
        tracing::warn!(cluster, service, hook = hook_id, decision, "{why}");
        let mut o = runbook_outcome(cluster, service, Severity::Info, format!("{cluster}/{service}: {why}"));
        o.actions.push(ActionRecord { action: kind.as_str().into(), status: ActionStatus::Skipped, detail: why });
        Ok(o)
    };
    let known = app.state.hooks().get(hook_id).await?;
    if let Some(k) = known.as_ref().filter(|k| k.cluster != cluster || k.service != service) {
        return refuse(
            "hook-refused",
            format!("hook {hook_id} belongs to {}/{}, not {cluster}/{service}; nothing done", k.cluster, k.service),
        );
    }
    let arn = req.service_deployment_arn.clone().or_else(|| known.as_ref().map(|k| k.service_deployment_arn.clone()));
    let Some(arn) = arn else {
        return refuse(
            "hook-unknown",
            format!(
                "hook {hook_id} is unknown: no approval notice recorded it; give service_deployment_arn \
                 (aws ecs list-service-deployments --cluster {cluster} --service {service}); nothing done"
            ),
        );
    };
    let result = engine::run(
        &app.engine(),
        &ActionRequest {
            origin: Origin::Manual { reason: req.reason.clone() },
            dry_run: req.dry_run,
            request_id: req.request_id.as_deref(),
            requested_by: Some(&requested_by),
            hook: Some(HookTarget { hook_id, service_deployment_arn: &arn }),
            ..ActionRequest::automatic(kind, cluster, service, "")
        },
    )
    .await;
    let severity = if result.failed || result.outcome_unknown { Severity::Sev1 } else { Severity::Info };
    let verb = if kind == ActionKind::ContinueDeployment { "continue" } else { "roll back" };
    let headline = match result.record.status {
        ActionStatus::Executed => format!(
            "deployment {} {}",
            crate::arn::last_segment(&arn),
            if kind == ActionKind::ContinueDeployment { "continued" } else { "rolled back" }
        ),
        status => format!("{verb} deployment {}: {}", crate::arn::last_segment(&arn), status.as_str()),
    };
    let thread =
        known.as_ref().map(|k| k.thread.clone()).unwrap_or_else(|| view::thread(crate::arn::last_segment(&arn)));
    let message = view::render_thread_note(
        &ThreadNote {
            cluster,
            service,
            thread: &thread,
            event_type: EventType::RunbookAction,
            headline: &headline,
            record: Some(&result.record),
            requested_by: &requested_by,
        },
        &crate::telemetry::redactor(),
    );
    let mut o = runbook_outcome(
        cluster,
        service,
        severity,
        format!("{cluster}/{service}: {} {}: {}", kind.as_str(), result.record.status.as_str(), result.record.detail),
    );
    o.notified = Some(match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
        Ok(id) => id,
        Err(err) => format!("suppressed:publish-failed: {}", err.message),
    });
    o.details = Some(json!({"plan": result.plan, "hook_id": hook_id, "service_deployment_arn": arn, "thread": thread}));
    o.actions.push(result.record);
    Ok(o)
}

/// Runbook `acknowledge`: who took the service's open incident on.
pub async fn acknowledge(
    app: &App,
    req: &RunbookRequest,
    cluster: &str,
    service: &str,
) -> Result<Outcome, AutopilotError> {
    let by = req.caller.requested_by(req.requested_by.as_deref());
    let open = app.state.incidents().open(&crate::incident::Subject::service(cluster, service).at(app.scope())).await?;
    let refuse = |why: String| {
        tracing::info!(cluster, service, decision = "acknowledge-refused", "{why}");
        runbook_outcome(cluster, service, Severity::Info, format!("{cluster}/{service}: {why}; nothing recorded"))
    };
    let Some(open) = open else {
        return Ok(refuse("no open incident to acknowledge".into()));
    };
    if let Some(asked) = req.incident.as_deref().filter(|i| *i != open.id) {
        return Ok(refuse(format!("incident {asked} is not the open incident of {cluster}/{service} ({})", open.id)));
    }
    if req.dry_run {
        let mut o = runbook_outcome(
            cluster,
            service,
            Severity::Info,
            format!("{cluster}/{service}: dry-run: would record incident {} acknowledged by {by}", open.id),
        );
        o.incident = Some(open.id.clone());
        return Ok(o);
    }
    let input = Input::Acknowledge { by: by.clone(), at: crate::time::now() };
    let driven = crate::incident::service::drive(app, Kind::Runbook, cluster, service, None, None, input).await?;
    let Some(id) = driven.incident.clone() else {
        return Ok(refuse(format!("incident {} closed meanwhile", open.id)));
    };
    let headline = format!("incident {id} acknowledged by {by}");
    let message = view::render_thread_note(
        &ThreadNote {
            cluster,
            service,
            thread: &id,
            event_type: EventType::IncidentAcknowledged,
            headline: &headline,
            record: None,
            requested_by: &by,
        },
        &crate::telemetry::redactor(),
    );
    let mut o = runbook_outcome(
        cluster,
        service,
        Severity::Info,
        format!("{cluster}/{service}: {headline}; no escalation until its severity rises above {}", open.severity),
    );
    o.incident = Some(id);
    o.notified = Some(match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
        Ok(m) => m,
        Err(err) => format!("suppressed:publish-failed: {}", err.message),
    });
    tracing::info!(cluster, service, by = %by, decision = "acknowledged", "{}", o.summary);
    Ok(o)
}
