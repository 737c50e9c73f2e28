//! The pipeline-execution subject kind: how a failed execution's incident
//! diagnoses (CodePipeline, CodeBuild and its log, the ECS deploy target)
//! and renders its messages. It never acts. `pipeline-events` builds a
//! [`PipelineEvent`] (or none, for a success and for ticks) and hands the
//! machine's input to [`drive`].

use serde_json::{Value, json};

use super::machine::{ActionCue, Depth, Input, Learnt, MessageKind, Publish, Record, State, Verdict};
use super::shell::{self, Driven, Port};
use super::subject::Subject;
use crate::adapters::{codebuild, codepipeline, logs, s3};
use crate::context::App;
use crate::error::AutopilotError;
use crate::evidence::{self, Encryption};
use crate::notify::pipeline::{FailureView, PipelineLinks, PipelineResolvedView, render_failure, render_resolved};
use crate::notify::render::{EscalationView, EvidenceStatus, Links, Message, render_escalation};
use crate::outcome::{Cause, Kind, Outcome, Severity};
use crate::pipeline::{self as decide, ActionFacts, BuildFacts, Commit, DeployLink, ExecutionFacts};
use crate::time::{iso, now};
use crate::trigger::{PipelineDetail, PipelineLevel};

/// One pipeline event, as the kind needs it.
#[derive(Debug, Clone)]
pub struct PipelineEvent<'a> {
    pub pipeline: &'a str,
    pub execution: &'a str,
    pub level: PipelineLevel,
    pub detail: Option<&'a PipelineDetail>,
    pub raw: Option<&'a Value>,
    /// The pipeline's ARN.
    pub arn: String,
    pub region: String,
    /// When the state changed.
    pub at: i64,
}

impl PipelineEvent<'_> {
    /// `execution FAILED`, `stage Build FAILED`, `action Build/UnitTests FAILED`.
    pub fn what(&self) -> String {
        let Some(d) = self.detail else { return "execution".into() };
        match (self.level, d.stage.as_deref(), d.action.as_deref()) {
            (PipelineLevel::Action, Some(s), Some(a)) => format!("action {s}/{a} {}", d.state),
            (PipelineLevel::Stage, Some(s), _) => format!("stage {s} {}", d.state),
            _ => format!("execution {}", d.state),
        }
    }
}

/// What resolves a pipeline incident: a later execution's success.
#[derive(Debug, Clone)]
pub struct Fix {
    pub execution: String,
    pub commit: Option<Commit>,
}

/// What the failure alert is built from, each read degrading on its own.
#[derive(Default)]
struct FailureFacts {
    tags: Vec<(String, String)>,
    execution: Option<ExecutionFacts>,
    actions: Vec<ActionFacts>,
    failed: Option<ActionFacts>,
    build: Option<BuildFacts>,
    build_log: Option<crate::snapshot::LogExcerpt>,
    target: Option<(String, String)>,
    ecs_incident: Option<String>,
    unread: Vec<String>,
}

/// The pipeline kind's port.
pub struct PipelinePort<'a> {
    pipeline: String,
    execution: String,
    region: String,
    event: Option<PipelineEvent<'a>>,
    fix: Option<Fix>,
    facts: Option<FailureFacts>,
    production: Option<(bool, String)>,
    evidence: Option<EvidenceStatus>,
    /// Details for the Outcome.
    details: Option<Value>,
    /// The subject line of the last message rendered.
    subject_line: Option<String>,
}

impl<'a> PipelinePort<'a> {
    pub fn new(app: &App, subject: &Subject, event: Option<PipelineEvent<'a>>, fix: Option<Fix>) -> Self {
        let (pipeline, execution) = subject.as_pipeline().unwrap_or_default();
        Self {
            pipeline: pipeline.into(),
            execution: execution.into(),
            region: event
                .as_ref()
                .map(|e| e.region.clone())
                .unwrap_or_else(|| app.config.settings.console_region.clone()),
            event,
            fix,
            facts: None,
            production: None,
            evidence: None,
            details: None,
            subject_line: None,
        }
    }

    fn links(&self, execution: &str) -> PipelineLinks {
        PipelineLinks { region: self.region.clone(), pipeline: self.pipeline.clone(), execution_id: execution.into() }
    }

    /// The pipeline's ARN, known from its event (a takeover without it reads no tags).
    fn arn(&self) -> Option<String> {
        self.event.as_ref().map(|e| e.arn.clone())
    }

    fn event_stage(&self) -> Option<String> {
        self.event.as_ref().and_then(|e| e.detail).and_then(|d| d.stage.clone())
    }

    fn failed_at(&self, rec: &Record) -> String {
        let Some(f) = &self.facts else { return rec.headline.trim_start_matches("pipeline failed at ").into() };
        let stage = self.event_stage();
        let links = self.links(&self.execution);
        FailureView { stage: stage.as_deref(), action: f.failed.as_ref(), ..empty_view(&links) }.failed_at()
    }
}

fn empty_view(links: &PipelineLinks) -> FailureView<'_> {
    FailureView {
        pipeline: "",
        execution_id: "",
        incident: "",
        severity: Severity::Info,
        production: "",
        opened_at: 0,
        stage: None,
        action: None,
        commit: None,
        build: None,
        build_log: None,
        target: None,
        ecs_incident: None,
        unread: &[],
        evidence: None,
        links,
    }
}

fn tag<'t>(tags: &'t [(String, String)], key: &str) -> Option<&'t str> {
    tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
}

/// The ECS service a deploy action targets: from an ECS action's
/// configuration, or for CodeDeploy-to-ECS from its deployment group
/// (`GetDeploymentGroup`); with what could not be read.
pub async fn ecs_target(app: &App, action: &ActionFacts) -> (Option<(String, String)>, Option<String>) {
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

/// Which execution and commit deploy the service, as a link record.
pub fn deploy_link(
    pipeline: &str,
    execution: &str,
    at: i64,
    action: &ActionFacts,
    commit: Option<Commit>,
) -> DeployLink {
    let status = match action.status.to_ascii_lowercase().as_str() {
        "succeeded" => "Succeeded",
        "failed" => "Failed",
        _ => "InProgress",
    };
    DeployLink {
        pipeline: pipeline.into(),
        execution_id: execution.into(),
        stage: action.stage.clone(),
        action: action.action.clone(),
        commit,
        started_at: action.started_at.or((status == "InProgress").then_some(at)),
        finished_at: (status != "InProgress").then(|| action.updated_at.unwrap_or(at)),
        status: status.into(),
    }
}

async fn failure_facts(app: &App, port: &PipelinePort<'_>) -> FailureFacts {
    let mut f = FailureFacts::default();
    let arn = port.arn();
    let (tags, execution, actions) = futures::join!(
        async {
            match &arn {
                Some(arn) => Some(codepipeline::tags(&app.clients, arn).await),
                None => None,
            }
        },
        codepipeline::execution(&app.clients, &port.pipeline, &port.execution),
        codepipeline::action_executions(&app.clients, &port.pipeline, &port.execution),
    );
    match tags {
        Some(Ok(t)) => f.tags = t,
        Some(Err(e)) => f.unread.push(format!("pipeline tags: {e}")),
        None => f.unread.push("pipeline tags: the pipeline's ARN is not known without its event".into()),
    }
    match execution {
        Ok(x) => f.execution = Some(x),
        Err(e) => f.unread.push(format!("execution: {e}")),
    }
    match actions {
        Ok(a) => f.actions = a,
        Err(e) => f.unread.push(format!("action executions: {e}")),
    }
    let from_event = port
        .event
        .as_ref()
        .filter(|e| e.level == PipelineLevel::Action)
        .and_then(|e| e.detail)
        .and_then(ActionFacts::from_event);
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
        match app
            .state
            .incidents()
            .open(&crate::incident::Subject::service(cluster.as_str(), service.as_str()).at(app.scope()))
            .await
        {
            Ok(open) => f.ecs_incident = open.map(|i| i.id),
            Err(e) => f.unread.push(format!("ECS incident of {cluster}/{service}: {e}")),
        }
        let at = port.event.as_ref().map_or_else(now, |e| e.at);
        let link = deploy_link(
            &port.pipeline,
            &port.execution,
            at,
            &failed,
            f.execution.as_ref().and_then(|x| decide::commit_of(&x.revisions)),
        );
        if let Err(e) = app.state.pipelines().record_pipeline_deploy((&cluster, &service), &link, now()).await {
            f.unread.push(format!("deploy link not recorded: {e}"));
        }
        f.target = Some((cluster, service));
    }
    f
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

fn execution_json(x: &ExecutionFacts) -> Value {
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

impl PipelinePort<'_> {
    async fn store_evidence(&self, app: &App, rec: &Record, f: &FailureFacts, severity: Severity) -> EvidenceStatus {
        let redactor = crate::telemetry::redactor();
        let commit = f.execution.as_ref().and_then(|x| decide::commit_of(&x.revisions));
        let prefix = evidence::pipeline_prefix(app.scope(), &self.pipeline, &rec.id);
        let production = self
            .production
            .as_ref()
            .map(|(p, why)| format!("{} pipeline: {why}", if *p { "production" } else { "non-production" }));
        let diagnosis = json!({
            "incident": rec.id, "pipeline": self.pipeline, "execution": self.execution,
            "severity": severity, "production": production, "failed_action": f.failed.as_ref().map(action_json),
            "commit": commit.as_ref().map(|c| json!({"id": c.id, "message": c.message, "url": c.url})),
            "target": f.target, "ecs_incident": f.ecs_incident, "opened_at": iso(rec.opened_at),
        });
        let event = self.event.as_ref().and_then(|e| e.raw.cloned()).unwrap_or_else(
            || json!({"note": "the triggering event was not kept by the invocation that stopped", "record": rec}),
        );
        let mut documents = vec![("event.json", event), ("diagnosis.json", diagnosis)];
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
        let objects = evidence::json_bundle(&prefix, &rec.id, documents, &f.unread, &redactor, &iso(rec.opened_at));
        let encryption = Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
        match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            s3::store(&app.clients, &app.config.evidence_bucket, &prefix, objects, &encryption),
        )
        .await
        {
            Ok(Ok(s)) => EvidenceStatus::Stored(s.uri),
            Ok(Err(e)) => EvidenceStatus::NotCaptured(format!("evidence not captured: {e}")),
            Err(_) => EvidenceStatus::NotCaptured("evidence not captured within 5 s".into()),
        }
    }

    fn render_failure(&self, rec: &Record, publish: &Publish) -> Message {
        let redactor = crate::telemetry::redactor();
        let empty = FailureFacts::default();
        let f = self.facts.as_ref().unwrap_or(&empty);
        let commit = f.execution.as_ref().and_then(|x| decide::commit_of(&x.revisions));
        let production = match &self.production {
            Some((p, why)) => format!("{} pipeline: {why}", if *p { "production" } else { "non-production" }),
            None => "production not read".into(),
        };
        let mut unread = f.unread.clone();
        if let Some(EvidenceStatus::NotCaptured(e)) = &self.evidence {
            unread.push(e.clone());
        }
        let links = self.links(&self.execution);
        let log_lines = f.build_log.as_ref().map(|l| l.lines.clone()).unwrap_or_default();
        let stage = self.event_stage();
        let evidence = match &self.evidence {
            Some(EvidenceStatus::Stored(uri)) => Some(uri.clone()),
            _ => rec.evidence.clone(),
        };
        let view = FailureView {
            pipeline: &self.pipeline,
            execution_id: &self.execution,
            incident: &rec.id,
            severity: publish.severity,
            production: &production,
            opened_at: rec.opened_at,
            stage: stage.as_deref(),
            action: f.failed.as_ref(),
            commit: commit.as_ref(),
            build: f.build.as_ref(),
            build_log: f
                .build_log
                .as_ref()
                .map(|l| (l.log_group.as_str(), l.log_stream.as_str(), log_lines.as_slice())),
            target: f.target.as_ref().map(|(c, s)| (c.as_str(), s.as_str())),
            ecs_incident: f.ecs_incident.as_deref(),
            unread: &unread,
            evidence: evidence.as_deref(),
            links: &links,
        };
        let mut message = render_failure(&view, &redactor);
        if publish.message == MessageKind::Update {
            message.subject = crate::notify::render::subject_line(&format!("update: {}", message.subject));
            message.event_type = crate::notify::render::EventType::IncidentUpdate;
        }
        message
    }

    async fn render_resolution(&self, app: &App, rec: &Record, why: &str) -> Message {
        let t = now();
        let redactor = crate::telemetry::redactor();
        let markdown = crate::notify::render::render_incident_report(
            &crate::notify::render::IncidentReportView { incident: rec, ledger: &[], resolved_at: t, resolved_by: why },
            &redactor,
        );
        let key = format!("{}report.md", evidence::pipeline_prefix(app.scope(), &self.pipeline, &rec.id));
        let report = super::service::store_report(app, rec, key, markdown).await;
        let fix = self.fix.as_ref();
        let links = self.links(fix.map_or(self.execution.as_str(), |f| f.execution.as_str()));
        let problem = rec.problem_text();
        let problem = problem.strip_prefix("pipeline ").unwrap_or(&problem).to_string();
        let view = PipelineResolvedView {
            pipeline: &self.pipeline,
            incident: &rec.id,
            failed_execution: &self.execution,
            severity: rec.severity,
            problem: &problem,
            opened_at: rec.opened_at,
            resolved_at: t,
            fixed_by: fix.map(|f| f.execution.as_str()),
            why,
            fixing_commit: fix.and_then(|f| f.commit.as_ref()),
            report: report.as_deref(),
            evidence: rec.evidence.as_deref(),
            links: &links,
        };
        render_resolved(&view, &redactor)
    }
}

impl Port for PipelinePort<'_> {
    async fn act(&mut self, _app: &App, _rec: &Record, _cue: ActionCue) {
        // A pipeline incident reports; it never acts.
    }

    async fn diagnose(&mut self, app: &App, rec: &Record, depth: Depth) {
        if depth != Depth::Full {
            return;
        }
        let f = failure_facts(app, self).await;
        let production = decide::production(&self.pipeline, &f.tags, &app.config.production_pipelines);
        let severity = decide::failure_severity(production.0);
        self.production = Some(production);
        self.evidence = Some(self.store_evidence(app, rec, &f, severity).await);
        let commit = f.execution.as_ref().and_then(|x| decide::commit_of(&x.revisions));
        let mut details = json!({
            "pipeline": self.pipeline, "execution": self.execution,
            "production": self.production.as_ref().map(|p| p.0), "unread": f.unread,
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
        crate::telemetry::redactor().json(&mut details);
        self.details = Some(details);
        self.facts = Some(f);
        let failed_at = self.failed_at(rec);
        if let Some(d) = self.details.as_mut() {
            d["failed_at"] = json!(failed_at);
        }
    }

    async fn learnt(&mut self, _app: &App, rec: &Record, news: bool) -> Learnt {
        let Some(f) = &self.facts else { return Learnt { news, ..Default::default() } };
        let redactor = crate::telemetry::redactor();
        let failed_at = self.failed_at(rec);
        let commit = f.execution.as_ref().and_then(|x| decide::commit_of(&x.revisions));
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
        Learnt {
            severity: self.production.as_ref().map(|(p, _)| decide::failure_severity(*p)),
            cause: Some(Cause::PipelineFailed),
            impact: vec![format!("pipeline {} blocked at {failed_at}", self.pipeline)],
            team: tag(&f.tags, "autopilot:team").map(str::to_string),
            evidence: match &self.evidence {
                Some(EvidenceStatus::Stored(uri)) => Some(uri.clone()),
                _ => None,
            },
            notes,
            label: Some(format!("pipeline failed at {failed_at}")),
            news,
            ..Default::default()
        }
    }

    async fn render(&mut self, app: &App, rec: &Record, publish: &Publish) -> Message {
        let mut message = match &publish.message {
            MessageKind::Opening | MessageKind::Update => self.render_failure(rec, publish),
            MessageKind::Escalation { nth } => {
                let links = Links { region: self.region.clone(), cluster: String::new(), service: String::new() };
                let view = EscalationView {
                    severity: rec.severity,
                    cause: rec.cause,
                    cluster: "",
                    service: "",
                    incident: &rec.id,
                    // Short: the subject line names the pipeline already (the stage is in the body).
                    problem: "pipeline failed",
                    opened_at: &iso(rec.opened_at),
                    open_for_seconds: now() - rec.opened_at,
                    nth: *nth,
                    tried: &rec.notes,
                    evidence: rec.evidence.as_deref(),
                    links,
                    pipeline: Some(self.links(&self.execution)),
                    actions: &[],
                };
                render_escalation(&view, &crate::telemetry::redactor())
            }
            MessageKind::Resolution { why, .. } => self.render_resolution(app, rec, why).await,
        };
        message.team = rec
            .team
            .clone()
            .or_else(|| self.facts.as_ref().and_then(|f| tag(&f.tags, "autopilot:team").map(str::to_string)));
        self.subject_line = Some(message.subject.clone());
        message
    }

    async fn published(&mut self, _app: &App, _rec: &Record, _publish: &Publish) {}
}

/// Drive `input` for the pipeline execution `subject`; the Outcome.
pub async fn drive(
    app: &App,
    subject: &Subject,
    event: Option<PipelineEvent<'_>>,
    fix: Option<Fix>,
    input: Input,
) -> Result<(Outcome, Option<Record>), AutopilotError> {
    let what = event.as_ref().map(PipelineEvent::what);
    let mut port = PipelinePort::new(app, subject, event, fix);
    let driven = shell::drive(app, &mut port, subject, input).await?;
    let o = outcome(&port, what.as_deref(), &driven);
    Ok((o, driven.record))
}

fn outcome(port: &PipelinePort<'_>, what: Option<&str>, driven: &Driven) -> Outcome {
    let pipeline = &port.pipeline;
    let Some(rec) = driven.record.as_ref() else {
        let mut o = Outcome::new(
            Kind::Pipeline,
            Severity::Info,
            Cause::Expected,
            format!("pipeline {pipeline}: no open incident"),
        );
        o.notified = Some("suppressed:no-open-incident".into());
        return o;
    };
    let mut o = match (&rec.state, driven.message_id(|m| matches!(m, MessageKind::Resolution { .. }))) {
        (State::Closed { resolution, at, .. }, Some(id)) => {
            let mut o = Outcome::new(
                Kind::Pipeline,
                rec.severity,
                Cause::PipelineFailed,
                format!(
                    "pipeline {pipeline}: resolved {} ({}) by {resolution} after {}",
                    rec.id,
                    rec.summary(),
                    crate::time::human_duration(at - rec.opened_at)
                ),
            );
            o.notified = Some(id.into());
            o
        }
        (State::Closed { .. }, None) => {
            let mut o = Outcome::new(
                Kind::Pipeline,
                Severity::Info,
                Cause::Expected,
                format!("pipeline {pipeline}: incident {} was resolved already", rec.id),
            );
            o.notified = Some("suppressed:already-resolved".into());
            o
        }
        (State::Open, _) => {
            let sent = driven.message_id(|m| matches!(m, MessageKind::Opening | MessageKind::Update));
            let summary = match (sent, what) {
                (Some(_), _) => port
                    .subject_line
                    .clone()
                    .unwrap_or_else(|| format!("[{}] pipeline {pipeline}: {}", rec.severity, rec.summary())),
                (None, Some(what)) => format!(
                    "pipeline {pipeline}: {what} joins incident {} ({}); one alert per execution",
                    rec.id,
                    rec.summary()
                ),
                (None, None) => format!("pipeline {pipeline}: incident {} ({}) stays open", rec.id, rec.summary()),
            };
            let mut o = Outcome::new(Kind::Pipeline, rec.severity, Cause::PipelineFailed, summary);
            o.notified = Some(match (sent, driven.verdict()) {
                (Some(id), _) => id.into(),
                (None, Some(Verdict::JoinedQuietly)) => "suppressed:alert-sent-by-another-invocation".into(),
                (None, _) => "suppressed:joined-incident".into(),
            });
            o.details = port.details.clone();
            o
        }
    };
    if let Some((c, s)) = port.facts.as_ref().and_then(|f| f.target.clone()) {
        o = o.for_service(Some(c), Some(s));
    }
    o.incident = Some(rec.id.clone());
    o.evidence = rec.evidence.clone();
    o
}
