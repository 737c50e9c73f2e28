//! `runbook`: the manual actions of `aws lambda invoke`. Reads (diagnose,
//! health-check) report; changes (rollback, scale, force-deploy,
//! scale-to-zero) go through the action engine; capture-evidence keeps the
//! security-incident snapshot; acknowledge records who took the open
//! incident on, and continue-deployment / rollback-deployment answer a
//! paused deployment's hook through the engine (`incident::approval`). Every action accepts `dry_run`. A request
//! with a `request_id` is handled once (`flows::once_request`): the CLI
//! retrying after its read timeout gets the first result, not a second
//! rollback. A mutation without one gets one derived from its payload
//! ([`derived_request_id`]), held for `RUNBOOK_REPEAT_WINDOW_SECONDS` after
//! its first run: the same invoke retried within that window answers the
//! first Outcome; after it, the same payload is a new request.

use serde_json::{Value, json};

use super::{Flow, FlowFuture};
use crate::actions::ActionKind;
use crate::actions::Origin;
use crate::actions::engine::{self, ActionRequest};
use crate::adapters::gather::{Depth, GatherRequest, Gathered, gather};
use crate::adapters::sns::publish;
use crate::adapters::{logs, s3};
use crate::arn::{cluster_name, last_segment};
use crate::context::{App, Function};
use crate::diagnosis::severity::{SeverityInput, Signal, grade};
use crate::error::AutopilotError;
use crate::evidence::{self, Encryption};
use crate::incident::approval;
use crate::notify::render::{Links, Message};
use crate::outcome::{ActionRecord, ActionStatus, Cause, Kind, Outcome, Severity};
use crate::time::{iso, now};
use crate::trigger::{RunbookAction, RunbookRequest, Trigger, trust};

pub const FLOW: Flow = Flow { function: Function::Runbook, run };

fn run<'a>(app: &'a App, trigger: Trigger, _raw: &'a Value) -> FlowFuture<'a> {
    Box::pin(async move {
        match trigger {
            Trigger::Runbook(req) => handle(app, &req).await,
            other => Ok(Outcome::ignored(format!("{:?} is not a runbook request", other.kind()))),
        }
    })
}

async fn handle(app: &App, req: &RunbookRequest) -> Result<Outcome, AutopilotError> {
    let action = serde_json::to_value(req.action).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    if let Err(refused) = trust::caller_allowed(&app.config.runbook_callers, &action, &req.caller) {
        tracing::warn!(action, decision = "caller-refused", "{refused}");
        return Ok(Outcome::new(Kind::Runbook, Severity::Info, Cause::Unknown, refused.0)
            .for_service(Some(cluster_name(&req.cluster).into()), Some(last_segment(&req.service).into())));
    }
    let hash = req.payload_hash();
    match req.request_id.as_deref() {
        Some(id) => super::once_request(app, id, &hash, handle_now(app, req)).await,
        // A mutation without a request_id: the AWS CLI retries an invoke it
        // gave up waiting for, with the same payload; that retry must answer
        // the first run, not act twice.
        None if req.action.is_mutating() && !req.dry_run => {
            let reuse_after = now() + app.config.settings.runbook_repeat_window_seconds;
            let id = derived_request_id(&hash);
            super::once_request_until(app, &id, &hash, Some(reuse_after), handle_now(app, req)).await
        }
        None => handle_now(app, req).await,
    }
}

/// The request id of a mutation that came without one: its payload hash
/// (SHA-256 of the parsed request — every field, since any of them may
/// change what is done). Held for a window after the first run
/// ([`crate::config::Settings::runbook_repeat_window_seconds`]).
pub fn derived_request_id(payload_hash: &str) -> String {
    format!("payload-{payload_hash}")
}

async fn handle_now(app: &App, req: &RunbookRequest) -> Result<Outcome, AutopilotError> {
    let cluster = cluster_name(&req.cluster).to_string();
    let service = last_segment(&req.service).to_string();
    if !app.config.in_scope(&cluster) {
        return Ok(Outcome::new(
            Kind::Runbook,
            Severity::Info,
            Cause::Unknown,
            format!("cluster {cluster} is not in CLUSTERS; nothing done"),
        )
        .for_service(Some(cluster), Some(service)));
    }
    match req.action {
        RunbookAction::Diagnose => diagnose(app, &cluster, &service, false).await,
        RunbookAction::HealthCheck => diagnose(app, &cluster, &service, true).await,
        RunbookAction::Rollback => act(app, req, ActionKind::Rollback, &cluster, &service).await,
        RunbookAction::Scale => act(app, req, ActionKind::Scale, &cluster, &service).await,
        RunbookAction::ForceDeploy => act(app, req, ActionKind::ForceDeploy, &cluster, &service).await,
        RunbookAction::ScaleToZero => act(app, req, ActionKind::ScaleToZero, &cluster, &service).await,
        RunbookAction::CaptureEvidence => capture_evidence(app, req, &cluster, &service).await,
        RunbookAction::Acknowledge => approval::acknowledge(app, req, &cluster, &service).await,
        RunbookAction::ContinueDeployment => {
            approval::answer(app, req, ActionKind::ContinueDeployment, &cluster, &service).await
        }
        RunbookAction::RollbackDeployment => {
            approval::answer(app, req, ActionKind::RollbackDeployment, &cluster, &service).await
        }
    }
}

/// One health check of the runbook: a name, a verdict and what was seen.
fn check(name: &str, ok: bool, detail: impl Into<String>) -> Value {
    json!({"check": name, "ok": ok, "detail": detail.into()})
}

fn health_checks(g: &Gathered, recent_failures: usize) -> Vec<Value> {
    let mut checks = Vec::new();
    match &g.service {
        Some(s) => {
            checks.push(check(
                "service status",
                s.status.as_deref() == Some("ACTIVE"),
                s.status.clone().unwrap_or_default(),
            ));
            checks.push(check(
                "running vs desired",
                s.running >= s.desired,
                format!("{} running, {} desired, {} pending", s.running, s.desired, s.pending),
            ));
            let primary = s.deployments.iter().find(|d| d.status == "PRIMARY");
            checks.push(check(
                "deployment",
                s.deployments.len() == 1 && primary.is_some_and(|d| d.rollout_state.as_deref() != Some("FAILED")),
                s.deployments
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {} {} {}",
                            d.id,
                            d.status,
                            last_segment(&d.task_definition),
                            d.rollout_state.as_deref().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        None => checks.push(check("service status", false, "service could not be read")),
    }
    if let Some((healthy, total)) = g.target_counts() {
        checks.push(check(
            "target health",
            total > 0 && healthy == total,
            format!("{healthy} of {total} targets healthy"),
        ));
    }
    checks.push(check(
        "recent task failures",
        recent_failures == 0,
        format!("{recent_failures} failed tasks in the incident window"),
    ));
    let errors = g.logs.as_ref().filter(|l| l.only_errors).map(|l| l.lines.len()).unwrap_or(0);
    checks.push(check(
        "recent errors in logs",
        errors == 0,
        format!("{errors} error lines in the latest stopped task's log"),
    ));
    for e in &g.errors {
        checks.push(check(&format!("read {}", e.step), false, e.message.clone()));
    }
    checks
}

async fn diagnose(app: &App, cluster: &str, service: &str, health_only: bool) -> Result<Outcome, AutopilotError> {
    let settings = &app.config.settings;
    let t = now();
    let g = gather(&app.clients, &app.gather_request(cluster, service, Depth::Full)).await;
    let recent =
        crate::incident::service::recent_failures(&g.stopped_tasks, t, settings.incident_window.as_secs() as i64);
    let cause = crate::incident::service::dominant_cause(recent.iter().map(|(_, c)| *c)).unwrap_or(Cause::Unknown);
    let (severity, reasons) = grade(&SeverityInput {
        signal: Signal::TaskFailed,
        tasks: g.service.as_ref().map(|s| (s.running, s.desired)),
        targets: g.target_counts(),
        recent_failures: recent.len() as u32,
        crash_loop_threshold: settings.crash_loop_threshold,
    });
    let checks = health_checks(&g, recent.len());
    let healthy = checks.iter().all(|c| c["ok"] == true);
    let (severity, cause) = if healthy { (Severity::Info, Cause::Expected) } else { (severity, cause) };
    let failed: Vec<&str> = checks.iter().filter(|c| c["ok"] != true).filter_map(|c| c["check"].as_str()).collect();
    let summary = if healthy {
        format!("{cluster}/{service}: healthy - all {} checks pass", checks.len())
    } else {
        format!("{cluster}/{service}: {} - failing checks: {}; {}", severity, failed.join(", "), reasons.join("; "))
    };
    let redactor = crate::telemetry::redactor();
    let mut details = json!({
        "checked_at": iso(t),
        "checks": checks,
        "severity_reasons": reasons,
        "recent_failures": recent.iter().map(|(task, cause)| json!({
            "task": task.task_id(), "cause": cause, "stopped_at": task.stopped_at, "stop_code": task.stop_code,
            "reason": task.stopped_reason,
        })).collect::<Vec<_>>(),
        "next_steps": cause.next_steps(),
    });
    if !health_only {
        details["service"] = serde_json::to_value(&g.service).unwrap_or(Value::Null);
        details["task_definition"] = serde_json::to_value(&g.task_definition).unwrap_or(Value::Null);
        details["target_health"] = serde_json::to_value(&g.target_health).unwrap_or(Value::Null);
        details["logs"] = serde_json::to_value(&g.logs).unwrap_or(Value::Null);
        details["metrics"] = serde_json::to_value(&g.metrics).unwrap_or(Value::Null);
    }
    redactor.json(&mut details);
    let mut o =
        Outcome::new(Kind::Runbook, severity, cause, summary).for_service(Some(cluster.into()), Some(service.into()));
    o.details = Some(details);
    Ok(o)
}

async fn act(
    app: &App,
    req: &RunbookRequest,
    kind: ActionKind,
    cluster: &str,
    service: &str,
) -> Result<Outcome, AutopilotError> {
    // Verified only when Lambda authenticated the caller (the function URL).
    let requested_by = req.caller.requested_by(req.requested_by.as_deref());
    let result = engine::run(
        &app.engine(),
        &ActionRequest {
            kind,
            cluster,
            service,
            origin: Origin::Manual { reason: req.reason.clone() },
            dry_run: req.dry_run,
            incident: None,
            desired_count: req.desired_count,
            task_definition: req.task_definition.as_deref(),
            confirm: req.confirm.as_deref(),
            ecs_rolling_back: false,
            request_id: req.request_id.as_deref(),
            requested_by: Some(&requested_by),
            // A person's request is about the service as it is now.
            trigger_deployment: None,
            failing_revision: None,
            recent_deployment: None,
            within_rollback_window: false,
            avoid_revisions: &[],
            hook: None,
            // A person's request reads everything itself.
            prior: crate::actions::engine::PriorReads::default(),
        },
    )
    .await;
    // A failed call, or one whose outcome nobody knows, needs a person now.
    let severity = if result.failed || result.outcome_unknown { Severity::Sev1 } else { Severity::Info };
    let mut o = Outcome::new(
        Kind::Runbook,
        severity,
        Cause::Unknown,
        format!("{cluster}/{service}: {} {}: {}", kind.as_str(), result.record.status.as_str(), result.record.detail),
    )
    .for_service(Some(cluster.into()), Some(service.into()));
    o.notified = Some(notify_action(app, cluster, service, &result.record, severity).await);
    o.details = result.plan.map(|p| json!({"plan": p}));
    o.actions.push(result.record);
    Ok(o)
}

/// Every engine decision is announced.
async fn notify_action(app: &App, cluster: &str, service: &str, record: &ActionRecord, severity: Severity) -> String {
    let status = record.status.as_str();
    let subject = crate::notify::render::subject_line(&format!(
        "[{severity}] {cluster}/{service}: {} {status} (runbook)",
        record.action
    ));
    let links =
        Links { region: app.config.settings.console_region.clone(), cluster: cluster.into(), service: service.into() };
    let body = format!(
        "RUNBOOK ACTION - {}\n\nService:  {cluster}/{service}\nAction:   {}\nStatus:   {status}\nDetail:   {}\n\n- Service health: {}\n- Deployments: {}\n",
        severity,
        record.action,
        record.detail,
        links.service(),
        links.deployments()
    );
    let message = Message {
        place: None,
        subject,
        body,
        severity,
        cluster: cluster.into(),
        service: service.into(),
        cause: Cause::Unknown,
        kind: Kind::Runbook,
        incident: None,
        event_type: crate::notify::render::EventType::RunbookAction,
        highlights: vec![format!("{} {status}: {}", record.action, record.detail)],
        next_steps: Vec::new(),
        links: vec![("Service health".into(), links.service()), ("Deployments".into(), links.deployments())],
        evidence: None,
        team: None,
        chat_context: Vec::new(),
    };
    match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
        Ok(id) => id,
        Err(e) => format!("suppressed:publish-failed: {}", e.message),
    }
}

/// The security-incident procedure: snapshot service and task definition,
/// and export the service's log groups for the last N hours to the bucket.
async fn capture_evidence(
    app: &App,
    req: &RunbookRequest,
    cluster: &str,
    service: &str,
) -> Result<Outcome, AutopilotError> {
    let t = now();
    let hours = req.since_hours.unwrap_or(24).clamp(1, 24 * 14) as i64;
    let capture =
        format!("capture-{}", chrono::DateTime::from_timestamp(t, 0).unwrap_or_default().format("%Y%m%d-%H%M%S"));
    let prefix = evidence::prefix(app.scope(), cluster, service, &capture);
    let g = gather(&app.clients, &GatherRequest { log_lines: 50, ..app.gather_request(cluster, service, Depth::Full) })
        .await;
    let log_groups: Vec<String> = {
        let mut v: Vec<String> = g
            .task_definition
            .iter()
            .flat_map(|td| td.containers.iter())
            .filter_map(|c| c.log_options.iter().find(|(k, _)| k == "awslogs-group").map(|(_, v)| v.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let plan = json!({"capture": capture, "prefix": prefix, "since_hours": hours, "log_groups": log_groups});
    let mut o = Outcome::new(Kind::Runbook, Severity::Info, Cause::Unknown, String::new())
        .for_service(Some(cluster.into()), Some(service.into()));
    if req.dry_run || app.config.dry_run {
        o.summary = format!(
            "{cluster}/{service}: dry-run: would snapshot the service and task definition to s3://{}/{prefix} and export {} log group(s) for {hours} h",
            app.config.evidence_bucket,
            log_groups.len()
        );
        o.actions.push(ActionRecord {
            action: "capture-evidence".into(),
            status: ActionStatus::Planned,
            detail: plan.to_string(),
        });
        o.details = Some(plan);
        return Ok(o);
    }
    let redactor = crate::telemetry::redactor();
    let request = serde_json::to_value(req).unwrap_or(Value::Null);
    let diagnosis = json!({"capture": capture, "requested": request, "since_hours": hours, "at": iso(t)});
    let objects = evidence::build_bundle(&prefix, &capture, &request, &g, &diagnosis, &redactor, &iso(t));
    let encryption = Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
    let stored = s3::store(&app.clients, &app.config.evidence_bucket, &prefix, objects, &encryption).await;
    match &stored {
        Ok(s) => o.actions.push(ActionRecord {
            action: "snapshot".into(),
            status: ActionStatus::Executed,
            detail: format!("{} objects to {}", s.written + s.existing, s.uri),
        }),
        Err(e) => o.actions.push(ActionRecord {
            action: "snapshot".into(),
            status: ActionStatus::Failed,
            detail: e.to_string(),
        }),
    }
    o.evidence = stored.as_ref().ok().map(|s| s.uri.clone());
    for group in &log_groups {
        o.actions.push(export_logs(app, group, &format!("{prefix}logs"), t - hours * 3600, t).await);
    }
    if log_groups.is_empty() {
        o.actions.push(ActionRecord {
            action: "log-export".into(),
            status: ActionStatus::Skipped,
            detail: "no awslogs log group in the task definition".into(),
        });
    }
    let failed = o.actions.iter().any(|a| a.status == ActionStatus::Failed);
    o.summary = format!(
        "{cluster}/{service}: evidence captured under s3://{}/{prefix}{}",
        app.config.evidence_bucket,
        if failed { " (partly: see actions)" } else { "" }
    );
    o.details = Some(plan);
    Ok(o)
}

/// CreateExportTask allows one running export per account: when one runs,
/// say which and leave the retry to the person (never queue blindly).
async fn export_logs(app: &App, group: &str, prefix: &str, from: i64, to: i64) -> ActionRecord {
    if !app.config.log_group_allowed(group) {
        return ActionRecord {
            action: "log-export".into(),
            status: ActionStatus::Skipped,
            detail: format!(
                "{group}: not exported: the log group is outside LOG_GROUP_PREFIXES ({})",
                app.config.log_group_prefixes.join(", ")
            ),
        };
    }
    let skipped = |id: String| ActionRecord {
        action: "log-export".into(),
        status: ActionStatus::Skipped,
        detail: format!(
            "{group}: export task {id} is already running (one export per account at a time); run capture-evidence again when it finishes"
        ),
    };
    // An unreadable list is not a running export: CreateExportTask itself refuses a second one.
    if let Ok(Some(id)) = logs::active_export(&app.clients).await {
        return skipped(id);
    }
    let task_name = format!("autopilot-{}", last_segment(prefix));
    let bucket = &app.config.evidence_bucket;
    match logs::export_log_group(&app.clients, group, &task_name, from, to, bucket, prefix).await {
        Ok(task_id) => ActionRecord {
            action: "log-export".into(),
            status: ActionStatus::Executed,
            detail: format!("{group}: export task {task_id} to s3://{bucket}/{prefix}"),
        },
        Err(e) if e.code_is("LimitExceededException") => skipped("(another)".into()),
        Err(e) => ActionRecord {
            action: "log-export".into(),
            status: ActionStatus::Failed,
            detail: format!("{group}: {}", e.message),
        },
    }
}
