//! `pipeline-events`: CodePipeline execution, stage and action state changes.
//!
//! - A FAILED execution, stage or action opens one incident per pipeline
//!   execution (subject `pipeline#<name>/<execution>`); the other failure
//!   events of that execution join it quietly, in whatever order they come.
//!   The alert names the failed stage and action, its provider, error, the
//!   commit, and for CodeBuild the failed phase and the build log's error
//!   lines; for ECS deploy actions the service and its open incident.
//! - A SUCCEEDED execution resolves the pipeline's incidents opened before it.
//! - SUPERSEDED, CANCELED, STOPPED, ABANDONED are recorded, not paged.
//! - A manual approval STARTED is announced once per execution and action.
//! - An ECS deploy action STARTED or SUCCEEDED records, on the service,
//!   which execution and commit deployed it; the service's incidents name it.
//!
//! The lifecycle is the incident core's (`lifecycle::next_step`, the same
//! conditional writes): pending alert until published, one closer.

use serde_json::{Value, json};

use super::incident::publish_failed;
use super::{Flow, FlowFuture, once, once_notice};
use crate::adapters::sns::publish;
use crate::adapters::{codebuild, codepipeline, logs, s3};
use crate::context::{App, Function};
use crate::error::{AutopilotError, AwsError};
use crate::evidence::{self, Encryption};
use crate::lifecycle::{Alert, Incident, Opening, Policy, Signal as LifeSignal, Step, Subject, next_step};
use crate::outcome::{Cause, Kind, Outcome, Severity};
use crate::pipeline::{
    self as decide, ActionFacts, ApprovalView, BuildFacts, Commit, DeployLink, FailureView, PipelineLinks,
    PipelineResolvedView, Reading,
};
use crate::time::{iso, now};
use crate::trigger::{Envelope, PipelineDetail, PipelineLevel, Trigger};

pub const FLOW: Flow = Flow { function: Function::PipelineEvents, run };

fn run<'a>(app: &'a App, trigger: Trigger, raw: &'a Value) -> FlowFuture<'a> {
    Box::pin(async move {
        match trigger {
            Trigger::Pipeline(e) => handle(app, &e, raw).await,
            other => Ok(Outcome::ignored(format!("{:?} is not a pipeline event", other.kind()))),
        }
    })
}

/// One pipeline event, as the steps below need it.
struct PipelineEvent<'a> {
    e: &'a Envelope<PipelineDetail>,
    raw: &'a Value,
    level: PipelineLevel,
    pipeline: &'a str,
    execution: &'a str,
    /// When the state changed (the event's time; now when it has none).
    at: i64,
    region: String,
}

impl PipelineEvent<'_> {
    fn detail(&self) -> &PipelineDetail {
        &self.e.detail
    }

    /// The pipeline's ARN: the event's resource, else built from its account.
    fn arn(&self) -> String {
        self.e.meta.resources.iter().find(|r| r.starts_with("arn:")).cloned().unwrap_or_else(|| {
            format!(
                "arn:aws:codepipeline:{}:{}:{}",
                self.region,
                self.e.meta.account.as_deref().unwrap_or(""),
                self.pipeline
            )
        })
    }

    fn links(&self, execution: &str) -> PipelineLinks {
        PipelineLinks { region: self.region.clone(), pipeline: self.pipeline.into(), execution_id: execution.into() }
    }

    /// `execution FAILED`, `stage Build FAILED`, `action Build/UnitTests FAILED`.
    fn what(&self) -> String {
        let d = self.detail();
        match (self.level, d.stage.as_deref(), d.action.as_deref()) {
            (PipelineLevel::Action, Some(s), Some(a)) => format!("action {s}/{a} {}", d.state),
            (PipelineLevel::Stage, Some(s), _) => format!("stage {s} {}", d.state),
            _ => format!("execution {}", d.state),
        }
    }
}

fn outcome(severity: Severity, cause: Cause, summary: String) -> Outcome {
    Outcome::new(Kind::Pipeline, severity, cause, summary)
}

async fn handle(app: &App, e: &Envelope<PipelineDetail>, raw: &Value) -> Result<Outcome, AutopilotError> {
    let Some(level) = PipelineLevel::of(&e.meta.detail_type) else {
        return Ok(Outcome::ignored(format!("{} is not a CodePipeline state change", e.meta.detail_type)));
    };
    let Some(execution) = e.detail.execution_id.as_deref().filter(|x| !x.is_empty()) else {
        // Refused when the trigger was parsed; kept for triggers built by hand.
        return Err(AutopilotError::InvalidEvent(crate::error::TriggerError::Missing {
            what: e.meta.detail_type.clone(),
            field: "detail.execution-id".into(),
        }));
    };
    let ev = PipelineEvent {
        e,
        raw,
        level,
        pipeline: &e.detail.pipeline,
        execution,
        at: e.meta.time.map(|t| t.timestamp()).unwrap_or_else(now),
        region: e
            .detail
            .region
            .clone()
            .or_else(|| e.meta.region.clone())
            .unwrap_or_else(|| app.config.settings.console_region.clone()),
    };
    let reading = decide::read(level, &e.detail);
    tracing::info!(pipeline = ev.pipeline, execution, level = level.as_str(), state = %e.detail.state, reading = ?reading, decision = "pipeline-reading", "pipeline event read");
    if let Reading::Nothing(why) = reading {
        let mut o = outcome(Severity::Info, Cause::Expected, format!("pipeline {}: {}; {why}", ev.pipeline, ev.what()));
        o.notified = Some("suppressed:not-news".into());
        return Ok(o);
    }
    let duplicate = {
        let summary = format!("pipeline {}: duplicate delivery of {}", ev.pipeline, ev.what());
        move || {
            let mut o = outcome(Severity::Info, Cause::PipelineFailed, summary);
            o.notified = Some("suppressed:duplicate-event".into());
            o
        }
    };
    once(app, &e.meta.id, duplicate, async {
        match reading {
            Reading::Failure => failure(app, &ev).await,
            Reading::Success => success(app, &ev).await,
            Reading::Recorded => recorded(app, &ev).await,
            Reading::ApprovalWaiting => approval(app, &ev).await,
            Reading::Deploy => deploy(app, &ev).await,
            Reading::Nothing(_) => unreachable!("answered above"),
        }
    })
    .await
}

fn policy(app: &App) -> Policy {
    Policy::from_settings(&app.config.settings)
}

fn lease(app: &App, t: i64) -> i64 {
    crate::invocation::lease_until(t, crate::invocation::deadline_ms(), app.config.settings.function_timeout_seconds)
}

// ---------------------------------------------------------------- failures

async fn failure(app: &App, ev: &PipelineEvent<'_>) -> Result<Outcome, AutopilotError> {
    let subject = Subject::pipeline(ev.pipeline, ev.execution);
    let t = now();
    let current = app.state.open_incident(&subject).await?;
    if current.is_none()
        && let Some((fixed_by, at)) = app.state.pipeline_succeeded_after(ev.pipeline, ev.at).await?
    {
        // A failure delivered after the pipeline succeeded again: already fixed.
        tracing::info!(pipeline = ev.pipeline, execution = ev.execution, fixed_by = %fixed_by, decision = "stale-failure", "failure older than a success; not paged");
        let mut o = outcome(
            Severity::Info,
            Cause::PipelineFailed,
            format!(
                "pipeline {}: {} at {} is older than execution {fixed_by}'s success at {}; not paged",
                ev.pipeline,
                ev.what(),
                iso(ev.at),
                iso(at)
            ),
        );
        o.notified = Some("suppressed:stale-failure".into());
        return Ok(o);
    }
    step_failure(app, ev, subject, current, t, 0).await
}

fn step_failure<'s>(
    app: &'s App,
    ev: &'s PipelineEvent<'s>,
    subject: Subject,
    current: Option<Incident>,
    t: i64,
    depth: u8,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, AutopilotError>> + Send + 's>> {
    Box::pin(async move {
        if depth > 2 {
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
        let token = crate::invocation::token();
        let step = next_step(current.as_ref(), LifeSignal::Problem, t, &token, &policy(app));
        tracing::info!(step = ?step, incident = current.as_ref().map(|i| i.id.as_str()).unwrap_or(""), decision = "incident-step", "incident step");
        match (step, current) {
            (Step::Expire { .. }, Some(inc)) => {
                let window = crate::render::human_duration(policy(app).window_for(&subject));
                app.state.close_incident(&subject, &inc.id, &format!("expired: no signal for {window}"), t).await?;
                step_failure(app, ev, subject, None, t, depth + 1).await
            }
            (Step::SendOpeningAlert, Some(inc)) => match app.state.claim_opening_alert(&inc, t, lease(app, t)).await? {
                Some(claimed) => {
                    let counted = app.state.record_event(&claimed, None, t).await?;
                    deliver(app, ev, counted.unwrap_or(claimed)).await
                }
                None => {
                    let current = app.state.open_incident(&subject).await?;
                    step_failure(app, ev, subject, current, t, depth + 1).await
                }
            },
            (Step::Join | Step::JoinQuietly, Some(inc)) => match app.state.record_event(&inc, None, t).await? {
                Some(joined) => {
                    let mut o = outcome(
                        joined.severity,
                        Cause::PipelineFailed,
                        format!(
                            "pipeline {}: {} joins incident {} ({}); one alert per execution",
                            ev.pipeline,
                            ev.what(),
                            joined.id,
                            joined.summary
                        ),
                    );
                    o.incident = Some(joined.id);
                    o.evidence = joined.evidence;
                    o.notified = Some(match joined.alert {
                        Alert::Delivered { .. } => "suppressed:joined-incident".into(),
                        Alert::Pending { .. } => "suppressed:alert-sent-by-another-invocation".into(),
                    });
                    Ok(o)
                }
                None => step_failure(app, ev, subject, None, t, depth + 1).await,
            },
            (_, _) => {
                let opening = Opening {
                    severity: Severity::Sev3,
                    cause: Cause::PipelineFailed,
                    summary: format!("pipeline failed - {}", ev.what()),
                    source: "pipeline".into(),
                    failed_tasks: Vec::new(),
                };
                let salt = format!("{token}/{}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
                let mut incident = Incident::opening(subject.clone(), &opening, t, &token, lease(app, t), &salt);
                // The pipeline failed when its event says (a retried delivery is
                // processed later): the time to recover, and which later
                // success resolves it, count from there.
                incident.opened_at = ev.at.min(t);
                if !app.state.create_incident(&incident).await? {
                    let current = app.state.open_incident(&subject).await?;
                    return step_failure(app, ev, subject, current, t, depth + 1).await;
                }
                tracing::info!(incident = %incident.id, pipeline = ev.pipeline, execution = ev.execution, decision = "incident-opened", "pipeline incident opened; alert pending");
                deliver(app, ev, incident).await
            }
        }
    })
}

/// What the failure alert is built from, each read degrading on its own.
#[derive(Default)]
struct FailureFacts {
    tags: Vec<(String, String)>,
    execution: Option<decide::ExecutionFacts>,
    actions: Vec<ActionFacts>,
    failed: Option<ActionFacts>,
    build: Option<BuildFacts>,
    build_log: Option<crate::snapshot::LogExcerpt>,
    target: Option<(String, String)>,
    ecs_incident: Option<String>,
    unread: Vec<String>,
}

async fn failure_facts(app: &App, ev: &PipelineEvent<'_>) -> FailureFacts {
    let mut f = FailureFacts::default();
    let arn = ev.arn();
    let (tags, execution, actions) = futures::join!(
        codepipeline::tags(&app.clients, &arn),
        codepipeline::execution(&app.clients, ev.pipeline, ev.execution),
        codepipeline::action_executions(&app.clients, ev.pipeline, ev.execution),
    );
    match tags {
        Ok(t) => f.tags = t,
        Err(e) => f.unread.push(format!("pipeline tags: {e}")),
    }
    match execution {
        Ok(x) => f.execution = Some(x),
        Err(e) => f.unread.push(format!("execution: {e}")),
    }
    match actions {
        Ok(a) => f.actions = a,
        Err(e) => f.unread.push(format!("action executions: {e}")),
    }
    let from_event = (ev.level == PipelineLevel::Action).then(|| ActionFacts::from_event(ev.detail())).flatten();
    f.failed = decide::failed_action(from_event.as_ref(), &f.actions);
    let Some(failed) = f.failed.clone() else { return f };
    if failed.provider.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("CodeBuild"))
        && let Some(build_id) = failed.external_id.as_deref()
    {
        let build = match codebuild::build(&app.clients, build_id).await {
            Ok(Some(b)) => Some(b),
            Ok(None) => {
                f.unread.push(format!("build {build_id}: BatchGetBuilds returned no build"));
                None
            }
            Err(e) => {
                f.unread.push(format!("build: {e}"));
                None
            }
        };
        // The log's default place is known from the build id alone.
        let located = build.clone().unwrap_or_else(|| BuildFacts {
            id: build_id.into(),
            project: decide::build_project(build_id).unwrap_or_default().into(),
            ..Default::default()
        });
        if let Some((group, stream)) = located.log_location() {
            if app.config.build_log_group_prefixes.iter().any(|p| group.starts_with(p.as_str())) {
                let redactor = crate::telemetry::redactor();
                match logs::build_log_excerpt(&app.clients, &group, &stream, app.config.settings.log_lines, &redactor)
                    .await
                {
                    Ok(x) if !x.lines.is_empty() => f.build_log = Some(x),
                    Ok(_) => f.unread.push(format!("build log {group} {stream}: empty")),
                    Err(e) => f.unread.push(format!("build log: {e}")),
                }
            } else {
                f.unread.push(format!("build log group {group} is outside BUILD_LOG_GROUP_PREFIXES"));
            }
        }
        f.build = build;
    }
    let (target, unread) = ecs_target(app, &failed).await;
    f.unread.extend(unread);
    if let Some((cluster, service)) = target {
        match app.state.open_incident(&Subject::service(cluster.as_str(), service.as_str())).await {
            Ok(open) => f.ecs_incident = open.map(|i| i.id),
            Err(e) => f.unread.push(format!("ECS incident of {cluster}/{service}: {e}")),
        }
        let link = deploy_link(ev, &failed, f.execution.as_ref().and_then(|x| decide::commit_of(&x.revisions)));
        if let Err(e) = app.state.record_pipeline_deploy((&cluster, &service), &link, now()).await {
            f.unread.push(format!("deploy link not recorded: {e}"));
        }
        f.target = Some((cluster, service));
    }
    f
}

/// The ECS service a deploy action targets: from an ECS action's
/// configuration, or for CodeDeploy-to-ECS from its deployment group
/// (`GetDeploymentGroup`); with what could not be read.
async fn ecs_target(app: &App, action: &ActionFacts) -> (Option<(String, String)>, Option<String>) {
    if let Some(t) = decide::ecs_target(action) {
        return (Some(t), None);
    }
    let Some((application, group)) = decide::codedeploy_group(action) else { return (None, None) };
    match crate::adapters::codedeploy::ecs_services(&app.clients, &application, &group).await {
        Ok(services) => match services.into_iter().next() {
            Some(t) => (Some(t), None),
            None => (None, Some(format!("CodeDeploy deployment group {application}/{group} names no ECS service"))),
        },
        Err(e) => (None, Some(format!("the ECS service of CodeDeploy deployment group {application}/{group}: {e}"))),
    }
}

fn deploy_link(ev: &PipelineEvent<'_>, action: &ActionFacts, commit: Option<Commit>) -> DeployLink {
    let status = match action.status.to_ascii_lowercase().as_str() {
        "succeeded" => "Succeeded",
        "failed" => "Failed",
        _ => "InProgress",
    };
    DeployLink {
        pipeline: ev.pipeline.into(),
        execution_id: ev.execution.into(),
        stage: action.stage.clone(),
        action: action.action.clone(),
        commit,
        started_at: action.started_at.or((status == "InProgress").then_some(ev.at)),
        finished_at: (status != "InProgress").then(|| action.updated_at.unwrap_or(ev.at)),
        status: status.into(),
    }
}

fn tag<'t>(tags: &'t [(String, String)], key: &str) -> Option<&'t str> {
    tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
}

/// Gather, keep the evidence and send the opening alert of `incident`
/// (pending and ours); recorded delivered only after the publish succeeded.
async fn deliver(app: &App, ev: &PipelineEvent<'_>, incident: Incident) -> Result<Outcome, AutopilotError> {
    let f = failure_facts(app, ev).await;
    let (production, why) = decide::production(ev.pipeline, &f.tags, &app.config.production_pipelines);
    let severity = decide::failure_severity(production);
    let production_label = format!("{} pipeline: {why}", if production { "production" } else { "non-production" });
    let team = tag(&f.tags, "autopilot:team").map(str::to_string);
    let commit = f.execution.as_ref().and_then(|x| decide::commit_of(&x.revisions));
    let redactor = crate::telemetry::redactor();
    let stage = ev.detail().stage.as_deref();

    let prefix = evidence::pipeline_prefix(ev.pipeline, &incident.id);
    let diagnosis = json!({
        "incident": incident.id, "pipeline": ev.pipeline, "execution": ev.execution,
        "severity": severity, "production": production_label, "failed_action": f.failed.as_ref().map(action_json),
        "commit": commit.as_ref().map(|c| json!({"id": c.id, "message": c.message, "url": c.url})),
        "target": f.target, "ecs_incident": f.ecs_incident, "opened_at": iso(incident.opened_at),
    });
    let mut documents = vec![("event.json", ev.raw.clone()), ("diagnosis.json", diagnosis)];
    if let Some(x) = &f.execution {
        documents.push(("execution.json", execution_json(x)));
    }
    if !f.actions.is_empty() {
        documents.push(("action-executions.json", Value::Array(f.actions.iter().map(action_json).collect())));
    }
    if let Some(b) = &f.build {
        documents.push(("build.json", build_json(b)));
    }
    if let Some(l) = &f.build_log {
        documents.push(("build-log.json", serde_json::to_value(l).unwrap_or(Value::Null)));
    }
    let objects =
        evidence::json_bundle(&prefix, &incident.id, documents, &f.unread, &redactor, &iso(incident.opened_at));
    let encryption = Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
    let stored = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s3::store(&app.clients, &app.config.evidence_bucket, &prefix, objects, &encryption),
    )
    .await;
    let mut unread = f.unread.clone();
    let evidence_uri = match stored {
        Ok(Ok(s)) => Some(s.uri),
        Ok(Err(e)) => {
            unread.push(format!("evidence not captured: {e}"));
            None
        }
        Err(_) => {
            unread.push("evidence not captured within 5 s".into());
            None
        }
    };

    let links = ev.links(ev.execution);
    let log_lines = f.build_log.as_ref().map(|l| l.lines.clone()).unwrap_or_default();
    let view = FailureView {
        pipeline: ev.pipeline,
        execution_id: ev.execution,
        incident: &incident.id,
        severity,
        production: &production_label,
        opened_at: incident.opened_at,
        stage,
        action: f.failed.as_ref(),
        commit: commit.as_ref(),
        build: f.build.as_ref(),
        build_log: f.build_log.as_ref().map(|l| (l.log_group.as_str(), l.log_stream.as_str(), log_lines.as_slice())),
        target: f.target.as_ref().map(|(c, s)| (c.as_str(), s.as_str())),
        ecs_incident: f.ecs_incident.as_deref(),
        unread: &unread,
        evidence: evidence_uri.as_deref(),
        links: &links,
    };
    let failed_at = view.failed_at();
    let mut message = decide::render_failure(&view, &redactor);
    message.team = team.clone();
    let message_id = publish(&app.clients, &app.config.notify_topic_arn, &message).await.map_err(publish_failed)?;
    let summary = format!("pipeline failed - at {failed_at}");
    let notes: Vec<String> = [
        f.failed.as_ref().and_then(|a| a.error_code.clone().map(|c| format!("{failed_at} failed: {c}"))),
        f.build.as_ref().and_then(|b| b.failed_phase()).map(|p| format!("build phase {} failed", p.phase)),
        commit.as_ref().map(|c| format!("commit {}", c.label())),
        f.ecs_incident.as_ref().map(|i| format!("ECS incident {i}")),
    ]
    .into_iter()
    .flatten()
    .map(|n| redactor.text(&n))
    .collect();
    let impact = vec![format!("pipeline {} blocked at {failed_at}", ev.pipeline)];
    let delivery = crate::adapters::state::Delivery {
        message_id: Some(&message_id),
        evidence: evidence_uri.as_deref(),
        severity: Some(severity),
        cause: Some(Cause::PipelineFailed),
        summary: Some(&summary),
        notes: &notes,
        impact: &impact,
        team: team.as_deref(),
        ..Default::default()
    };
    if let Err(e) = app.state.mark_delivered(&incident, &delivery, now()).await {
        tracing::error!(incident = %incident.id, error = %e, decision = "delivery-not-recorded", "alert sent but not recorded as delivered");
    }
    tracing::info!(incident = %incident.id, pipeline = ev.pipeline, severity = severity.as_str(), failed_at = %failed_at, decision = "pipeline-alert-sent", "pipeline failure alert sent");
    let mut o = outcome(severity, Cause::PipelineFailed, redactor.text(&message.subject));
    if let Some((c, s)) = &f.target {
        o = o.for_service(Some(c.clone()), Some(s.clone()));
    }
    o.incident = Some(incident.id.clone());
    o.notified = Some(message_id);
    o.evidence = evidence_uri;
    let mut details = json!({
        "pipeline": ev.pipeline, "execution": ev.execution, "failed_at": failed_at,
        "production": production, "unread": unread,
    });
    if let Some(a) = &f.failed {
        details["action"] = action_json(a);
    }
    if let Some(p) = f.build.as_ref().and_then(|b| b.failed_phase()) {
        details["build_phase"] = json!({"phase": p.phase, "status": p.status, "contexts": p.contexts});
    }
    if let Some(c) = &commit {
        details["commit"] = json!({"id": c.id, "message": c.message});
    }
    if let Some(i) = &f.ecs_incident {
        details["ecs_incident"] = json!(i);
    }
    redactor.json(&mut details);
    o.details = Some(details);
    Ok(o)
}

fn action_json(a: &ActionFacts) -> Value {
    json!({
        "stage": a.stage, "action": a.action, "status": a.status, "category": a.category,
        "provider": a.provider, "external_execution_id": a.external_id, "external_execution_url": a.external_url,
        "summary": a.summary, "error_code": a.error_code, "error_message": a.error_message,
        "configuration": a.configuration.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "started_at": a.started_at.map(iso), "updated_at": a.updated_at.map(iso),
    })
}

fn execution_json(x: &decide::ExecutionFacts) -> Value {
    json!({
        "execution_id": x.execution_id, "status": x.status, "status_summary": x.status_summary, "trigger": x.trigger,
        "artifact_revisions": x.revisions.iter().map(|r| json!({
            "name": r.artifact, "revision_id": r.revision_id, "summary": r.summary, "url": r.url,
            "created": r.created_at.map(iso),
        })).collect::<Vec<_>>(),
    })
}

fn build_json(b: &BuildFacts) -> Value {
    json!({
        "id": b.id, "project": b.project, "status": b.status,
        "phases": b.phases.iter().map(|p| json!({"phase": p.phase, "status": p.status, "contexts": p.contexts})).collect::<Vec<_>>(),
        "log_group": b.log_group, "log_stream": b.log_stream, "log_link": b.log_link,
    })
}

// ---------------------------------------------------------------- success

/// A SUCCEEDED execution resolves every open incident of the pipeline
/// opened before it succeeded (a late success of an older execution does
/// not resolve a newer failure).
async fn success(app: &App, ev: &PipelineEvent<'_>) -> Result<Outcome, AutopilotError> {
    if let Err(e) = app.state.record_pipeline_execution(ev.pipeline, ev.execution, "SUCCEEDED", ev.at).await {
        tracing::warn!(error = %e, "execution state not recorded");
    }
    let open: Vec<Incident> = app
        .state
        .open_incidents()
        .await?
        .into_iter()
        .filter(|i| i.subject.as_pipeline().is_some_and(|(p, _)| p == ev.pipeline) && i.opened_at <= ev.at)
        .collect();
    if open.is_empty() {
        let mut o = outcome(
            Severity::Info,
            Cause::Expected,
            format!("pipeline {}: execution {} succeeded; no open incident", ev.pipeline, ev.execution),
        );
        o.notified = Some("suppressed:no-open-incident".into());
        return Ok(o);
    }
    let fixing = match codepipeline::execution(&app.clients, ev.pipeline, ev.execution).await {
        Ok(x) => decide::commit_of(&x.revisions),
        Err(e) => {
            tracing::warn!(error = %e, "fixing execution not read; the resolution names no commit");
            None
        }
    };
    let t = now();
    let token = crate::invocation::token();
    let mut resolved = Vec::new();
    let mut message_ids = Vec::new();
    for inc in &open {
        match next_step(Some(inc), LifeSignal::Recovered { source: None }, t, &token, &policy(app)) {
            Step::AwaitOpeningAlert => {
                let until = match &inc.alert {
                    Alert::Pending { until, .. } => iso(*until),
                    Alert::Delivered { at } => iso(*at),
                };
                return Err(AutopilotError::InProgress {
                    what: format!("the opening alert of incident {}", inc.id),
                    until,
                });
            }
            Step::Resolve | Step::Expire { .. } => {}
            _ => continue,
        }
        if let Some((closed, id)) = resolve_one(app, ev, inc, fixing.as_ref(), t).await? {
            resolved.push(closed);
            message_ids.push(id);
        }
    }
    let Some(first) = resolved.first() else {
        let mut o = outcome(
            Severity::Info,
            Cause::Expected,
            format!(
                "pipeline {}: execution {} succeeded; its incidents were resolved by another invocation",
                ev.pipeline, ev.execution
            ),
        );
        o.notified = Some("suppressed:already-resolved".into());
        return Ok(o);
    };
    let mut o = outcome(
        first.severity,
        Cause::PipelineFailed,
        format!(
            "pipeline {}: execution {} succeeded; resolved {} after {}",
            ev.pipeline,
            ev.execution,
            resolved.iter().map(|i| format!("{} ({})", i.id, i.summary)).collect::<Vec<_>>().join(", "),
            crate::render::human_duration(t - first.opened_at)
        ),
    );
    o.incident = Some(first.id.clone());
    o.evidence = first.evidence.clone();
    o.notified = message_ids.first().cloned();
    o.details = Some(json!({
        "resolved": resolved.iter().map(|i| &i.id).collect::<Vec<_>>(),
        "fixed_by": {"execution": ev.execution, "commit": fixing.as_ref().map(|c| json!({"id": c.id, "message": c.message}))},
    }));
    Ok(o)
}

/// Close `inc` (once), write its incident report and send the resolution;
/// an unsent resolution gives the closing back and fails (Lambda retries).
async fn resolve_one(
    app: &App,
    ev: &PipelineEvent<'_>,
    inc: &Incident,
    fixing: Option<&Commit>,
    t: i64,
) -> Result<Option<(Incident, String)>, AutopilotError> {
    let resolved_by = match fixing {
        Some(c) => format!("execution {} succeeded (commit {})", ev.execution, c.label()),
        None => format!("execution {} succeeded", ev.execution),
    };
    let links = ev.links(ev.execution);
    close(app, inc, Closing { fixed_by: Some(ev.execution), fixing, resolved_by: &resolved_by, links: &links }, t).await
}

/// Close a pipeline incident that saw no signal for a week (the escalation
/// job), saying so; `Ok(false)` when another invocation closed it first.
pub(crate) async fn expire(app: &App, inc: &Incident, why: &str) -> Result<bool, AutopilotError> {
    let Some((pipeline, execution)) = inc.subject.as_pipeline() else { return Ok(false) };
    let links = PipelineLinks {
        region: app.config.settings.console_region.clone(),
        pipeline: pipeline.into(),
        execution_id: execution.into(),
    };
    let closing = Closing { fixed_by: None, fixing: None, resolved_by: why, links: &links };
    Ok(close(app, inc, closing, now()).await?.is_some())
}

/// How a pipeline incident ends.
struct Closing<'a> {
    fixed_by: Option<&'a str>,
    fixing: Option<&'a Commit>,
    resolved_by: &'a str,
    links: &'a PipelineLinks,
}

async fn close(
    app: &App,
    inc: &Incident,
    how: Closing<'_>,
    t: i64,
) -> Result<Option<(Incident, String)>, AutopilotError> {
    let Some(closing) = app.state.begin_close(&inc.subject, &inc.id, t).await? else {
        return Ok(None);
    };
    let (pipeline, failed_execution) = closing.subject.as_pipeline().unwrap_or_default();
    let resolved_by = how.resolved_by;
    let report = incident_report(app, &closing, resolved_by, t).await;
    let redactor = crate::telemetry::redactor();
    let problem = closing.summary.split(" - ").nth(1).unwrap_or(&closing.summary).to_string();
    let view = PipelineResolvedView {
        pipeline,
        incident: &closing.id,
        failed_execution,
        severity: closing.severity,
        problem: &format!("failed {problem}"),
        opened_at: closing.opened_at,
        resolved_at: t,
        fixed_by: how.fixed_by,
        why: resolved_by,
        fixing_commit: how.fixing,
        report: report.as_deref(),
        evidence: closing.evidence.as_deref(),
        links: how.links,
    };
    let mut message = decide::render_resolved(&view, &redactor);
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
    app.state.finish_close(&closing, resolved_by, t).await;
    tracing::info!(incident = %closing.id, ttr_seconds = t - closing.opened_at, decision = "incident-resolved", "pipeline incident resolved");
    Ok(Some((closing, message_id)))
}

/// The post-incident report beside the incident's evidence.
async fn incident_report(app: &App, closing: &Incident, resolved_by: &str, t: i64) -> Option<String> {
    let (pipeline, _) = closing.subject.as_pipeline()?;
    let markdown = crate::render::render_incident_report(
        &crate::render::IncidentReportView { incident: closing, ledger: &[], resolved_at: t, resolved_by },
        &crate::telemetry::redactor(),
    );
    let key = format!("{}report.md", evidence::pipeline_prefix(pipeline, &closing.id));
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

// ------------------------------------------------------ recorded, approvals, deploys

async fn recorded(app: &App, ev: &PipelineEvent<'_>) -> Result<Outcome, AutopilotError> {
    let state = ev.detail().state.to_ascii_uppercase();
    app.state.record_pipeline_execution(ev.pipeline, ev.execution, &state, ev.at).await?;
    let mut o = outcome(
        Severity::Info,
        Cause::Expected,
        format!("pipeline {}: execution {} {state}; recorded, not paged", ev.pipeline, ev.execution),
    );
    o.notified = Some("suppressed:not-paged".into());
    Ok(o)
}

/// A manual approval waiting: announced once per execution and action.
async fn approval(app: &App, ev: &PipelineEvent<'_>) -> Result<Outcome, AutopilotError> {
    let d = ev.detail();
    let stage = d.stage.clone().unwrap_or_default();
    let action = d.action.clone().unwrap_or_default();
    let key = format!("approval/{}/{}/{stage}/{action}", ev.pipeline, ev.execution);
    let sent = once_notice(app, &key, async {
        let arn = ev.arn();
        let (tags, execution, stages) = futures::join!(
            codepipeline::tags(&app.clients, &arn),
            codepipeline::execution(&app.clients, ev.pipeline, ev.execution),
            codepipeline::stages(&app.clients, ev.pipeline),
        );
        let mut unread = Vec::new();
        let tags = tags.unwrap_or_else(|e| {
            unread.push(format!("pipeline tags: {e}"));
            Vec::new()
        });
        let commit = match execution {
            Ok(x) => decide::commit_of(&x.revisions),
            Err(e) => {
                unread.push(format!("execution: {e}"));
                None
            }
        };
        let stages = stages.unwrap_or_else(|e| {
            unread.push(format!("pipeline state: {e}"));
            Vec::new()
        });
        let (production, why) = decide::production(ev.pipeline, &tags, &app.config.production_pipelines);
        let production_label = format!("{} pipeline: {why}", if production { "production" } else { "non-production" });
        let links = ev.links(ev.execution);
        // The token is only the waiting execution's: a newer execution's approval is not this one.
        let token = stages
            .iter()
            .find(|s| s.name == stage && s.execution_id.as_deref().is_none_or(|x| x == ev.execution))
            .and_then(|_| decide::approval_token(&stages, &stage, &action));
        let view = ApprovalView {
            pipeline: ev.pipeline,
            execution_id: ev.execution,
            stage: &stage,
            action: &action,
            commit: commit.as_ref(),
            previous_stage: decide::previous_stage(&stages, &stage),
            token,
            production: &production_label,
            unread: &unread,
            links: &links,
        };
        let redactor = crate::telemetry::redactor();
        let mut message = decide::render_approval(&view, &redactor);
        message.team = tag(&tags, "autopilot:team").map(str::to_string);
        let id = publish(&app.clients, &app.config.notify_topic_arn, &message).await.map_err(publish_failed)?;
        tracing::info!(pipeline = ev.pipeline, execution = ev.execution, stage = %stage, action = %action, decision = "approval-announced", "approval waiting announced");
        let mut o = outcome(Severity::Info, Cause::ApprovalWaiting, message.subject.clone());
        o.notified = Some(id);
        o.details = Some(json!({"pipeline": ev.pipeline, "execution": ev.execution, "stage": stage, "action": action,
            "commit": commit.as_ref().map(|c| json!({"id": c.id, "message": c.message})), "unread": unread}));
        Ok(o)
    })
    .await?;
    Ok(sent.unwrap_or_else(|| {
        let mut o = outcome(
            Severity::Info,
            Cause::ApprovalWaiting,
            format!(
                "pipeline {}: approval {stage}/{action} of execution {} was announced already",
                ev.pipeline, ev.execution
            ),
        );
        o.notified = Some("suppressed:approval-already-announced".into());
        o
    }))
}

/// An ECS deploy action started or succeeded: record which execution and
/// commit deploy the service, for the service's incidents to name.
async fn deploy(app: &App, ev: &PipelineEvent<'_>) -> Result<Outcome, AutopilotError> {
    let d = ev.detail();
    let event_action = ActionFacts::from_event(d).unwrap_or_default();
    let (actions, execution) = futures::join!(
        codepipeline::action_executions(&app.clients, ev.pipeline, ev.execution),
        codepipeline::execution(&app.clients, ev.pipeline, ev.execution),
    );
    let listed = match actions {
        Ok(a) => a,
        // A link is a record, not a page: an unreadable action is named, not retried.
        Err(e) => {
            let mut o = outcome(
                Severity::Info,
                Cause::Expected,
                format!("pipeline {}: {}; deploy target not recorded: {e}", ev.pipeline, ev.what()),
            );
            o.notified = Some("suppressed:not-news".into());
            return Ok(o);
        }
    };
    let action = listed
        .iter()
        .filter(|a| a.stage == event_action.stage && a.action == event_action.action)
        .max_by_key(|a| a.started_at.unwrap_or(0))
        .cloned()
        .map(|a| a.merged_with(&event_action))
        .unwrap_or(event_action);
    // The event's state is the newest word on this action.
    let action = ActionFacts {
        status: crate::pipeline::ActionFacts::from_event(d).map(|e| e.status).unwrap_or(action.status.clone()),
        ..action
    };
    let commit = execution.ok().and_then(|x| decide::commit_of(&x.revisions));
    let (target, unread) = ecs_target(app, &action).await;
    let Some((cluster, service)) = target else {
        let why = unread.unwrap_or_else(|| "its configuration names no ClusterName/ServiceName".into());
        let mut o = outcome(
            Severity::Info,
            Cause::Expected,
            format!("pipeline {}: {}; not linked: {why}", ev.pipeline, ev.what()),
        );
        o.notified = Some("suppressed:not-news".into());
        return Ok(o);
    };
    let link = deploy_link(ev, &action, commit);
    app.state.record_pipeline_deploy((&cluster, &service), &link, now()).await?;
    tracing::info!(pipeline = ev.pipeline, execution = ev.execution, cluster = %cluster, service = %service, decision = "deploy-linked", "pipeline deployment recorded on the service");
    let mut o = outcome(
        Severity::Info,
        Cause::Expected,
        format!(
            "pipeline {}: {} deploys {cluster}/{service}{}; recorded for its incidents",
            ev.pipeline,
            ev.what(),
            link.commit.as_ref().map(|c| format!(" (commit {})", c.label())).unwrap_or_default()
        ),
    )
    .for_service(Some(cluster), Some(service));
    o.notified = Some("suppressed:not-news".into());
    Ok(o)
}
