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
//! The incident is the one machine's (`incident::machine`, driven by
//! `incident::shell` through the pipeline kind `incident::pipeline`): this
//! flow only turns events into its inputs.

use serde_json::{Value, json};

use super::{Flow, FlowFuture, once, once_notice};
use crate::adapters::codepipeline;
use crate::adapters::sns::publish;
use crate::context::{App, Function};
use crate::error::AutopilotError;
use crate::incident::machine::{Input, ProblemKey, ProblemSignal, Recovery, RecoveryScope};
use crate::incident::pipeline::{self as kind, Fix, PipelineEvent as KindEvent, deploy_link, ecs_target};
use crate::incident::shell::publish_failed;
use crate::incident::subject::Subject;
use crate::notify::pipeline::{ApprovalView, PipelineLinks, render_approval};
use crate::outcome::{Cause, Kind, Outcome, Severity};
use crate::pipeline::{self as decide, ActionFacts, Reading};
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

impl<'a> PipelineEvent<'a> {
    /// The event as the pipeline incident kind reads it.
    fn for_kind(&self) -> KindEvent<'a> {
        KindEvent {
            pipeline: self.pipeline,
            execution: self.execution,
            level: self.level,
            detail: Some(&self.e.detail),
            raw: Some(self.raw),
            arn: self.arn(),
            region: self.region.clone(),
            at: self.at,
        }
    }
}

// ---------------------------------------------------------------- failures

async fn failure(app: &App, ev: &PipelineEvent<'_>) -> Result<Outcome, AutopilotError> {
    let subject = crate::incident::Subject::pipeline(ev.pipeline, ev.execution).at(app.scope());
    let open = app.state.incidents().open(&subject).await?;
    if open.is_none()
        && let Some((fixed_by, at)) = app.state.pipelines().pipeline_succeeded_after(ev.pipeline, ev.at).await?
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
    let input = Input::Problem(ProblemSignal {
        key: ProblemKey::Pipeline,
        label: "pipeline failed".into(),
        kind: Kind::Pipeline,
        // The pipeline failed when its event says (a retried delivery is processed later).
        at: ev.at,
        severity: Severity::Sev3,
        cause: Some(Cause::PipelineFailed),
        revision: None,
        task: None,
        news: false,
        note: None,
    });
    let (o, _) = kind::drive(app, &subject, Some(ev.for_kind()), None, input).await?;
    Ok(o)
}

// ---------------------------------------------------------------- success

/// A SUCCEEDED execution resolves every open incident of the pipeline
/// opened before it succeeded (a late success of an older execution does
/// not resolve a newer failure: the machine judges it at its event time).
async fn success(app: &App, ev: &PipelineEvent<'_>) -> Result<Outcome, AutopilotError> {
    if let Err(e) = app.state.pipelines().record_pipeline_execution(ev.pipeline, ev.execution, "SUCCEEDED", ev.at).await
    {
        tracing::warn!(error = %e, "execution state not recorded");
    }
    let mut open: Vec<Subject> = Vec::new();
    for subject in app.state.incidents().open_subjects().await? {
        if !subject.as_pipeline().is_some_and(|(p, x)| p == ev.pipeline && x != ev.execution) {
            continue;
        }
        // A success older than a failure does not speak for it (the machine
        // judges that too; read here, it also spares the execution read).
        if app.state.incidents().open(&subject).await?.is_some_and(|r| r.opened_at <= ev.at) {
            open.push(subject);
        }
    }
    if open.is_empty() {
        let mut o = outcome(
            Severity::Info,
            Cause::Expected,
            format!("pipeline {}: execution {} succeeded; no open incident", ev.pipeline, ev.execution),
        );
        o.notified = Some("suppressed:no-open-incident".into());
        return Ok(o);
    }
    let commit = match codepipeline::execution(&app.clients, ev.pipeline, ev.execution).await {
        Ok(x) => decide::commit_of(&x.revisions),
        Err(e) => {
            tracing::warn!(error = %e, "fixing execution not read; the resolution names no commit");
            None
        }
    };
    let by = match &commit {
        Some(c) => format!("execution {} succeeded (commit {})", ev.execution, c.label()),
        None => format!("execution {} succeeded", ev.execution),
    };
    let fix = Fix { execution: ev.execution.to_string(), commit };
    let mut resolved = Vec::new();
    let mut first: Option<Outcome> = None;
    for subject in &open {
        let input = Input::Recovery(Recovery { scope: RecoveryScope::Pipeline, at: ev.at, by: by.clone() });
        let (o, record) = kind::drive(app, subject, None, Some(fix.clone()), input).await?;
        if o.notified.as_deref().is_some_and(|n| !n.starts_with("suppressed:")) {
            if let Some(r) = record {
                resolved.push(r);
            }
            first.get_or_insert(o);
        }
    }
    let Some(mut o) = first else {
        let mut o = outcome(
            Severity::Info,
            Cause::Expected,
            format!(
                "pipeline {}: execution {} succeeded; no open incident older than it to resolve",
                ev.pipeline, ev.execution
            ),
        );
        o.notified = Some("suppressed:already-resolved".into());
        return Ok(o);
    };
    let t = now();
    o.summary = format!(
        "pipeline {}: execution {} succeeded; resolved {} after {}",
        ev.pipeline,
        ev.execution,
        resolved.iter().map(|i| format!("{} ({})", i.id, i.summary())).collect::<Vec<_>>().join(", "),
        crate::time::human_duration(t - resolved.first().map_or(t, |r| r.opened_at))
    );
    o.details = Some(json!({
        "resolved": resolved.iter().map(|i| &i.id).collect::<Vec<_>>(),
        "fixed_by": {"execution": ev.execution, "commit": fix.commit.as_ref().map(|c| json!({"id": c.id, "message": c.message}))},
    }));
    Ok(o)
}

// ------------------------------------------------------ recorded, approvals, deploys

async fn recorded(app: &App, ev: &PipelineEvent<'_>) -> Result<Outcome, AutopilotError> {
    let state = ev.detail().state.to_ascii_uppercase();
    app.state.pipelines().record_pipeline_execution(ev.pipeline, ev.execution, &state, ev.at).await?;
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
        let mut message = render_approval(&view, &redactor);
        message.team = tags
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("autopilot:team"))
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty());
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
        // AWS said "later" (throttling, a 5xx, a timeout): fail the invocation
        // so Lambda retries it, else a throttle would lose the link for good.
        Err(e) if e.retryable => return Err(AutopilotError::Aws(e)),
        // A definite refusal (no such pipeline or execution, access denied): named, not retried.
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
    let link = deploy_link(ev.pipeline, ev.execution, ev.at, &action, commit);
    app.state.pipelines().record_pipeline_deploy((&cluster, &service), &link, now()).await?;
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
