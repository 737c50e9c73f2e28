//! The messages of a pipeline execution's incident and of its approvals:
//! the failure alert, the resolution, the approval notice (pure rendering
//! over the pipeline's facts; the decisions are in `crate::pipeline`).

use std::fmt::Write;

use crate::outcome::{Cause, Kind, Severity};
use crate::pipeline::{ActionFacts, BuildFacts, Commit};
use crate::redact::Redactor;
use crate::time::iso;

use super::render::{EventType, Message, fit_body, human_duration, subject_line};

pub use super::render::PipelineLinks;

/// Everything the failure alert says.
#[derive(Debug, Clone)]
pub struct FailureView<'a> {
    pub pipeline: &'a str,
    pub execution_id: &'a str,
    pub incident: &'a str,
    pub severity: Severity,
    pub production: &'a str,
    pub opened_at: i64,
    /// The failed stage, when known without the action.
    pub stage: Option<&'a str>,
    pub action: Option<&'a ActionFacts>,
    pub commit: Option<&'a Commit>,
    pub build: Option<&'a BuildFacts>,
    /// (log group, stream, lines), already redacted.
    pub build_log: Option<(&'a str, &'a str, &'a [String])>,
    pub target: Option<(&'a str, &'a str)>,
    /// The open ECS incident of the target service.
    pub ecs_incident: Option<&'a str>,
    /// What could not be read, named.
    pub unread: &'a [String],
    pub evidence: Option<&'a str>,
    pub links: &'a PipelineLinks,
}

impl FailureView<'_> {
    /// `Build/UnitTests`, or the stage alone.
    pub fn failed_at(&self) -> String {
        match (self.action, self.stage) {
            (Some(a), _) => format!("{}/{}", a.stage, a.action),
            (None, Some(s)) => s.to_string(),
            (None, None) => "unknown stage".into(),
        }
    }
}

fn error_of(a: &ActionFacts) -> Option<String> {
    match (a.error_code.as_deref(), a.error_message.as_deref().or(a.summary.as_deref())) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (Some(c), None) => Some(c.to_string()),
        (None, Some(m)) => Some(m.to_string()),
        (None, None) => None,
    }
}

/// The failure alert (runbook incident-alert template, for a pipeline).
pub fn render_failure(v: &FailureView<'_>, redactor: &Redactor) -> Message {
    let failed_at = v.failed_at();
    let phase = v.build.and_then(BuildFacts::failed_phase);
    let what = match (phase, v.action.and_then(|a| a.provider.as_deref())) {
        (Some(p), _) => format!("{failed_at} failed in {}", p.phase),
        (None, Some(provider)) => format!("{failed_at} ({provider}) failed"),
        (None, None) => format!("{failed_at} failed"),
    };
    let subject = subject_line(&redactor.text(&format!("[{}] pipeline {}: {what}", v.severity, v.pipeline)));
    let mut b = String::new();
    let _ = writeln!(b, "INCIDENT {} - {} - pipeline {}", v.incident, v.severity, v.pipeline);
    let _ = writeln!(b, "Problem: pipeline failed at {failed_at}");
    let _ = writeln!(b, "Opened: {}", iso(v.opened_at));
    let _ = writeln!(b, "Execution: {}", v.execution_id);
    let _ = writeln!(b, "Severity: {} ({})", v.severity, v.production);
    let _ = writeln!(b);
    let _ = writeln!(b, "Findings:");
    if let Some(a) = v.action {
        let provider = a.provider.as_deref().unwrap_or("unknown provider");
        let category = a.category.as_deref().unwrap_or("action");
        let _ = writeln!(b, "- failed action: {}/{} ({category}, {provider})", a.stage, a.action);
        if let Some(e) = error_of(a) {
            let _ = writeln!(b, "- error: {e}");
        }
        if let Some(id) = &a.external_id {
            let _ = writeln!(b, "- external execution: {id}");
        }
    } else {
        let _ = writeln!(b, "- failed stage: {failed_at} (the failed action could not be identified)");
    }
    match v.commit {
        Some(c) => {
            let _ = writeln!(b, "- source revision: commit {}", c.label());
        }
        None => {
            let _ = writeln!(b, "- source revision: unknown");
        }
    }
    if let Some(build) = v.build {
        match phase {
            Some(p) => {
                let _ = writeln!(
                    b,
                    "- build {}: phase {} {}{}",
                    build.id,
                    p.phase,
                    p.status.as_deref().unwrap_or(""),
                    if p.contexts.is_empty() { String::new() } else { format!(" - {}", p.contexts.join("; ")) }
                );
            }
            None => {
                let _ = writeln!(b, "- build {}: {}", build.id, build.status.as_deref().unwrap_or("status unknown"));
            }
        }
    }
    if let Some((cluster, service)) = v.target {
        let _ = writeln!(b, "- deploys ECS service {cluster}/{service}");
        match v.ecs_incident {
            Some(id) => {
                let _ = writeln!(b, "- that service has an open incident: {id}");
            }
            None => {
                let _ = writeln!(b, "- that service has no open incident");
            }
        }
    }
    for u in v.unread {
        let _ = writeln!(b, "- not read: {u}");
    }
    if let Some((group, stream, lines)) = v.build_log {
        let _ = writeln!(b);
        let _ = writeln!(b, "Build log ({group} {stream}, last error lines):");
        for l in lines {
            let _ = writeln!(b, "  {l}");
        }
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "Next steps:");
    for s in Cause::PipelineFailed.next_steps() {
        let _ = writeln!(b, "- {s}");
    }
    let _ = writeln!(
        b,
        "- Retry the failed stage once fixed: aws codepipeline retry-stage-execution --pipeline-name {} --stage-name {} --pipeline-execution-id {} --retry-mode FAILED_ACTIONS",
        v.pipeline,
        v.action.map(|a| a.stage.as_str()).or(v.stage).unwrap_or("<stage>"),
        v.execution_id
    );
    let _ = writeln!(b);
    let mut links = vec![("Execution".to_string(), v.links.execution())];
    if let Some(url) = v.action.and_then(|a| a.external_url.clone()) {
        links.push(("Failed action".into(), url));
    }
    if let Some(url) = v.build.and_then(|b| b.log_link.clone()) {
        links.push(("Build log".into(), url));
    }
    if let Some(url) = v.commit.and_then(|c| c.url.clone()) {
        links.push(("Commit".into(), url));
    }
    let _ = writeln!(b, "Links:");
    for (label, url) in &links {
        let _ = writeln!(b, "- {label}: {url}");
    }
    match v.evidence {
        Some(e) => {
            let _ = writeln!(b, "Evidence: {e}");
        }
        None => {
            let _ = writeln!(b, "Evidence: not captured");
        }
    }
    let body = redactor.text(&fit_body(&b));
    let mut highlights = vec![redactor.text(&what)];
    if let Some(e) = v.action.and_then(error_of) {
        highlights.push(redactor.text(&e));
    }
    if let Some(c) = v.commit {
        highlights.push(redactor.text(&format!("commit {}", c.label())));
    }
    Message {
        place: None,
        subject,
        body,
        severity: v.severity,
        cluster: v.target.map(|t| t.0.to_string()).unwrap_or_default(),
        service: v.target.map(|t| t.1.to_string()).unwrap_or_default(),
        cause: Cause::PipelineFailed,
        kind: Kind::Pipeline,
        incident: Some(v.incident.to_string()),
        event_type: EventType::IncidentOpened,
        highlights,
        next_steps: crate::notify::render::steps_of(Cause::PipelineFailed),
        links,
        evidence: v.evidence.map(str::to_string),
        team: None,
        chat_context: Vec::new(),
    }
}

/// The resolution of a pipeline incident by a later successful execution.
#[derive(Debug, Clone)]
pub struct PipelineResolvedView<'a> {
    pub pipeline: &'a str,
    pub incident: &'a str,
    pub failed_execution: &'a str,
    pub severity: Severity,
    pub problem: &'a str,
    pub opened_at: i64,
    pub resolved_at: i64,
    /// The execution whose success resolved it; `None` when it was closed
    /// without one, for `why` (expired after a week without a signal).
    pub fixed_by: Option<&'a str>,
    pub why: &'a str,
    pub fixing_commit: Option<&'a Commit>,
    pub report: Option<&'a str>,
    pub evidence: Option<&'a str>,
    pub links: &'a PipelineLinks,
}

pub fn render_resolved(v: &PipelineResolvedView<'_>, redactor: &Redactor) -> Message {
    let took = human_duration(v.resolved_at - v.opened_at);
    let subject = match v.fixed_by {
        Some(_) => format!("[RESOLVED] pipeline {}: {} (recovered in {took})", v.pipeline, v.problem),
        None => format!("[CLOSED] pipeline {}: {} ({})", v.pipeline, v.problem, v.why),
    };
    let subject = subject_line(&redactor.text(&subject));
    let mut b = String::new();
    let _ = writeln!(
        b,
        "{} {} - {} - pipeline {}",
        if v.fixed_by.is_some() { "RESOLVED" } else { "CLOSED" },
        v.incident,
        v.severity,
        v.pipeline
    );
    let _ = writeln!(b, "Problem: {}", v.problem);
    let _ = writeln!(b, "Failed execution: {}", v.failed_execution);
    let _ = writeln!(b, "Opened: {}", iso(v.opened_at));
    let mut links = Vec::new();
    match v.fixed_by {
        Some(fixed_by) => {
            let _ = writeln!(b, "Resolved: {} by execution {fixed_by} succeeding", iso(v.resolved_at));
            let _ = writeln!(b, "Time to recover: {took}");
            match v.fixing_commit {
                Some(c) => {
                    let _ = writeln!(b, "Fixed by commit {}", c.label());
                }
                None => {
                    let _ = writeln!(b, "Fixed by commit: unknown (the fixing execution was not read)");
                }
            }
            links.push(("Fixing execution".to_string(), v.links.execution()));
        }
        None => {
            let _ = writeln!(b, "Closed: {} without a successful execution: {}", iso(v.resolved_at), v.why);
            let _ = writeln!(b, "Open for: {took}");
        }
    }
    links.push(("Pipeline".into(), v.links.pipeline()));
    if let Some(r) = v.report {
        let _ = writeln!(b, "Incident report: {r}");
    }
    if let Some(e) = v.evidence {
        let _ = writeln!(b, "Evidence: {e}");
    }
    let _ = writeln!(b, "Links:");
    for (label, url) in &links {
        let _ = writeln!(b, "- {label}: {url}");
    }
    let mut highlights = vec![match v.fixed_by {
        Some(x) => format!("recovered in {took} by execution {x}"),
        None => format!("closed after {took}: {}", v.why),
    }];
    if let Some(c) = v.fixing_commit {
        highlights.push(redactor.text(&format!("commit {}", c.label())));
    }
    Message {
        place: None,
        subject,
        body: redactor.text(&b),
        severity: v.severity,
        cluster: String::new(),
        service: String::new(),
        cause: Cause::PipelineFailed,
        kind: Kind::Pipeline,
        incident: Some(v.incident.to_string()),
        event_type: EventType::IncidentResolved,
        highlights,
        next_steps: Vec::new(),
        links,
        evidence: v.evidence.map(str::to_string),
        team: None,
        chat_context: Vec::new(),
    }
}

/// A manual approval waiting.
#[derive(Debug, Clone)]
pub struct ApprovalView<'a> {
    pub pipeline: &'a str,
    pub execution_id: &'a str,
    pub stage: &'a str,
    pub action: &'a str,
    pub commit: Option<&'a Commit>,
    /// The stage before the approval's and how it ended.
    pub previous_stage: Option<(&'a str, &'a str)>,
    pub token: Option<&'a str>,
    pub production: &'a str,
    pub unread: &'a [String],
    pub links: &'a PipelineLinks,
}

pub fn render_approval(v: &ApprovalView<'_>, redactor: &Redactor) -> Message {
    let subject = subject_line(
        &redactor.text(&format!("[APPROVAL] pipeline {}: {}/{} waiting for approval", v.pipeline, v.stage, v.action)),
    );
    let mut b = String::new();
    let _ = writeln!(b, "APPROVAL WAITING - pipeline {} ({})", v.pipeline, v.production);
    let _ = writeln!(b, "Action: {}/{}", v.stage, v.action);
    let _ = writeln!(b, "Execution: {}", v.execution_id);
    let _ = writeln!(b);
    let _ = writeln!(b, "What is being approved:");
    match v.commit {
        Some(c) => {
            let _ = writeln!(b, "- source revision: commit {}", c.label());
        }
        None => {
            let _ = writeln!(b, "- source revision: unknown");
        }
    }
    match v.previous_stage {
        Some((name, status)) => {
            let _ = writeln!(b, "- previous stage {name}: {status}");
        }
        None => {
            let _ = writeln!(b, "- previous stage: none or unknown");
        }
    }
    for u in v.unread {
        let _ = writeln!(b, "- not read: {u}");
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "Approve or reject in the console: {}", v.links.pipeline());
    let token = v.token.unwrap_or("<token from aws codepipeline get-pipeline-state>");
    let _ = writeln!(
        b,
        "Or: aws codepipeline put-approval-result --pipeline-name {} --stage-name {} --action-name {} --token {token} --result 'summary=<why>,status=Approved'",
        v.pipeline, v.stage, v.action
    );
    let links = vec![("Approve or reject".to_string(), v.links.pipeline()), ("Execution".into(), v.links.execution())];
    let mut highlights = vec![format!("{}/{} waits for approval", v.stage, v.action)];
    if let Some(c) = v.commit {
        highlights.push(redactor.text(&format!("commit {}", c.label())));
    }
    if let Some((name, status)) = v.previous_stage {
        highlights.push(format!("previous stage {name}: {status}"));
    }
    Message {
        place: None,
        subject,
        body: redactor.text(&b),
        severity: Severity::Info,
        cluster: String::new(),
        service: String::new(),
        cause: Cause::ApprovalWaiting,
        kind: Kind::Pipeline,
        // Its own thread: an approval is not an incident.
        incident: Some(format!("approval-{}-{}", v.pipeline, v.execution_id)),
        event_type: EventType::PipelineApproval,
        highlights,
        next_steps: crate::notify::render::steps_of(Cause::ApprovalWaiting),
        links,
        evidence: None,
        team: None,
        chat_context: Vec::new(),
    }
}
