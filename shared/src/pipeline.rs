//! CodePipeline, decided (pure): what an execution, stage or action state
//! change means, which action failed and why, whether the pipeline is
//! production, which ECS service a deploy action targets, the commit an
//! execution carries (its messages are rendered in `notify::pipeline`). The adapters
//! (`adapters::codepipeline`, `adapters::codebuild`) turn API answers into
//! the plain data here; the flow (`flows::pipeline`) applies the decisions.

use crate::outcome::Severity;
use crate::time::human_duration;
use crate::trigger::{PipelineDetail, PipelineLevel};

/// One source revision of an execution (`GetPipelineExecution` →
/// `artifactRevisions`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceRevision {
    pub artifact: String,
    pub revision_id: Option<String>,
    /// CodeCommit: the commit message; CodeStar connections (GitHub,
    /// Bitbucket, GitLab): `{"ProviderType":"GitHub","CommitMessage":"…"}`.
    pub summary: Option<String>,
    pub url: Option<String>,
    /// When the revision was created (the commit's time), epoch seconds.
    pub created_at: Option<i64>,
}

/// What `GetPipelineExecution` says of one execution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionFacts {
    pub execution_id: String,
    pub status: Option<String>,
    pub status_summary: Option<String>,
    pub revisions: Vec<SourceRevision>,
    /// `StartPipelineExecution`, `Webhook`, `CloudWatchEvent`, … and its detail.
    pub trigger: Option<String>,
}

/// One action execution (`ListActionExecutions`, or the event itself).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionFacts {
    pub stage: String,
    pub action: String,
    /// InProgress, Abandoned, Succeeded, Failed.
    pub status: String,
    pub category: Option<String>,
    pub provider: Option<String>,
    pub external_id: Option<String>,
    pub external_url: Option<String>,
    pub summary: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The action's configuration as it ran (resolved values preferred).
    pub configuration: Vec<(String, String)>,
    pub started_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl ActionFacts {
    fn config(&self, key: &str) -> Option<&str> {
        self.configuration.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    pub fn failed(&self) -> bool {
        self.status.eq_ignore_ascii_case("failed")
    }

    fn provider_is(&self, provider: &str) -> bool {
        self.provider.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(provider))
    }

    /// The action as the event describes it (no configuration, no times).
    pub fn from_event(d: &PipelineDetail) -> Option<Self> {
        let r = d.execution_result.clone().unwrap_or_default();
        Some(Self {
            stage: d.stage.clone()?,
            action: d.action.clone()?,
            status: title_case(&d.state),
            category: d.action_type.as_ref().and_then(|t| t.category.clone()),
            provider: d.action_type.as_ref().and_then(|t| t.provider.clone()),
            external_id: r.external_execution_id,
            external_url: r.external_execution_url,
            summary: r.external_execution_summary,
            error_code: r.error_code,
            ..Default::default()
        })
    }

    /// What the API says, completed by what the event said (the event is
    /// there first; the API has the configuration and error details).
    pub fn merged_with(mut self, event: &ActionFacts) -> Self {
        macro_rules! fill {
            ($($f:ident),*) => {$( if self.$f.is_none() { self.$f = event.$f.clone(); } )*};
        }
        fill!(category, provider, external_id, external_url, summary, error_code);
        self
    }
}

fn title_case(state: &str) -> String {
    let lower = state.to_ascii_lowercase();
    let mut c = lower.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// One phase of a CodeBuild build (`BatchGetBuilds` → `phases`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildPhase {
    /// SUBMITTED, QUEUED, PROVISIONING, DOWNLOAD_SOURCE, INSTALL, PRE_BUILD,
    /// BUILD, POST_BUILD, UPLOAD_ARTIFACTS, FINALIZING, COMPLETED.
    pub phase: String,
    /// SUCCEEDED, FAILED, FAULT, TIMED_OUT, IN_PROGRESS, STOPPED.
    pub status: Option<String>,
    /// `statusCode: message` of each context.
    pub contexts: Vec<String>,
}

/// What `BatchGetBuilds` says of one build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildFacts {
    pub id: String,
    pub project: String,
    pub status: Option<String>,
    pub phases: Vec<BuildPhase>,
    /// CloudWatch Logs group and stream the build reported, when it did.
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
    pub log_link: Option<String>,
}

impl BuildFacts {
    /// The phase that failed (the first that did not succeed, COMPLETED aside).
    pub fn failed_phase(&self) -> Option<&BuildPhase> {
        self.phases.iter().find(|p| {
            p.phase != "COMPLETED"
                && p.status.as_deref().is_some_and(|s| matches!(s, "FAILED" | "FAULT" | "TIMED_OUT" | "STOPPED"))
        })
    }

    /// Where the build's log is: what the build reported, else CodeBuild's
    /// default (`/aws/codebuild/<project>`, stream = the build id's suffix).
    pub fn log_location(&self) -> Option<(String, String)> {
        let group = self.log_group.clone().unwrap_or_else(|| format!("/aws/codebuild/{}", self.project));
        let stream = self.log_stream.clone().or_else(|| build_log_stream(&self.id))?;
        (!self.project.is_empty() || self.log_group.is_some()).then_some((group, stream))
    }
}

/// The log stream of a build id (`<project>:<uuid>` → `<uuid>`).
pub fn build_log_stream(build_id: &str) -> Option<String> {
    build_id.rsplit_once(':').map(|(_, s)| s.to_string()).filter(|s| !s.is_empty())
}

/// The project of a build id (`<project>:<uuid>`).
pub fn build_project(build_id: &str) -> Option<&str> {
    build_id.rsplit_once(':').map(|(p, _)| p).filter(|p| !p.is_empty())
}

/// Whether a build log line says why a build failed: an error line of any
/// log, or what build tools print on failure (test runners' FAIL, npm's
/// ERR!, CodeBuild's non-zero exit and failed phase).
pub fn is_build_error_line(line: &str) -> bool {
    if crate::diagnosis::logs::is_error_line(line) {
        return true;
    }
    let lower = line.to_ascii_lowercase();
    ["fail", "err!", "exit status", "did not exit successfully", "✕", "●"].iter().any(|w| lower.contains(w))
}

/// A stage's latest state (`GetPipelineState`), for approvals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageFacts {
    pub name: String,
    /// The stage's latest execution: its id and status.
    pub execution_id: Option<String>,
    pub status: Option<String>,
    /// (action, status, approval token) of its actions' latest executions.
    pub actions: Vec<(String, Option<String>, Option<String>)>,
}

/// The commit an execution carries: its first source revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    pub id: String,
    pub message: Option<String>,
    pub url: Option<String>,
    pub created_at: Option<i64>,
}

impl Commit {
    /// `3f2a9c1 'raise pool size'`.
    pub fn label(&self) -> String {
        let short: String = self.id.chars().take(7).collect();
        match &self.message {
            Some(m) => format!("{short} '{}'", first_line(m, 72)),
            None => short,
        }
    }
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!("{}...", line.chars().take(max).collect::<String>())
    }
}

/// The commit message of a revision summary: the `CommitMessage` of a
/// CodeStar connection's JSON summary, or the summary itself.
pub fn commit_message(summary: &str) -> Option<String> {
    let trimmed = summary.trim();
    if trimmed.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed)
    {
        return v.get("CommitMessage").and_then(|m| m.as_str()).map(str::to_string).filter(|m| !m.is_empty());
    }
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// The execution's commit (the first revision with an id).
pub fn commit_of(revisions: &[SourceRevision]) -> Option<Commit> {
    let r = revisions.iter().find(|r| r.revision_id.is_some())?;
    Some(Commit {
        id: r.revision_id.clone()?,
        message: r.summary.as_deref().and_then(commit_message),
        url: r.url.clone(),
        created_at: r.created_at,
    })
}

/// What a state change means to pipeline-events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// An execution, stage or action FAILED: the execution's incident.
    Failure,
    /// The execution SUCCEEDED: it resolves the pipeline's failures before it.
    Success,
    /// SUPERSEDED, CANCELED, STOPPED, ABANDONED: recorded, not paged.
    Recorded,
    /// A manual approval STARTED: announced once per execution.
    ApprovalWaiting,
    /// An ECS deploy action STARTED or SUCCEEDED: which execution deployed
    /// the service is recorded.
    Deploy,
    /// Nothing to do (STARTED, RESUMED, a stage or action that succeeded), and why.
    Nothing(&'static str),
}

/// Providers of deploy actions that target an ECS service.
const ECS_DEPLOY_PROVIDERS: &[&str] = &["ECS", "CodeDeployToECS", "ECSbluegreen"];

pub fn is_ecs_deploy(category: Option<&str>, provider: Option<&str>) -> bool {
    category.is_some_and(|c| c.eq_ignore_ascii_case("deploy"))
        && provider.is_some_and(|p| ECS_DEPLOY_PROVIDERS.iter().any(|e| e.eq_ignore_ascii_case(p)))
}

pub fn read(level: PipelineLevel, d: &PipelineDetail) -> Reading {
    let state = d.state.to_ascii_uppercase();
    let category = d.action_type.as_ref().and_then(|t| t.category.as_deref());
    let provider = d.action_type.as_ref().and_then(|t| t.provider.as_deref());
    match (level, state.as_str()) {
        (_, "FAILED") => Reading::Failure,
        (PipelineLevel::Execution, "SUCCEEDED") => Reading::Success,
        (PipelineLevel::Execution, "SUPERSEDED" | "CANCELED" | "CANCELLED" | "STOPPED" | "ABANDONED") => {
            Reading::Recorded
        }
        (PipelineLevel::Action, "STARTED") if d.is_approval() => Reading::ApprovalWaiting,
        (PipelineLevel::Action, "STARTED" | "SUCCEEDED") if is_ecs_deploy(category, provider) => Reading::Deploy,
        (PipelineLevel::Execution, _) => Reading::Nothing("an execution starting or resuming is not news"),
        (PipelineLevel::Stage, _) => {
            Reading::Nothing("only a failed stage is news; the execution's own event says the rest")
        }
        (PipelineLevel::Action, _) => Reading::Nothing("only failed actions, approvals and ECS deploys are news"),
    }
}

/// `*` matches any run of characters; everything else literally, ignoring case.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == n;
    }
    let mut rest = n.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Whether the pipeline is production, and why: its `autopilot:env` tag
/// (`production`/`prod` → yes, any other value → no) wins over the name patterns.
pub fn production(name: &str, tags: &[(String, String)], patterns: &[String]) -> (bool, String) {
    if let Some((_, v)) = tags.iter().find(|(k, _)| k.eq_ignore_ascii_case("autopilot:env")) {
        let yes = matches!(v.trim().to_ascii_lowercase().as_str(), "production" | "prod");
        return (yes, format!("tag autopilot:env={}", v.trim()));
    }
    match patterns.iter().find(|p| matches_pattern(p, name)) {
        Some(p) => (true, format!("name matches {p}")),
        None => (false, format!("name matches none of {}", patterns.join(", "))),
    }
}

/// Production pipeline failures are SEV2 (degraded delivery), others SEV3.
pub fn failure_severity(production: bool) -> Severity {
    if production { Severity::Sev2 } else { Severity::Sev3 }
}

/// The failed action: the one the event names when it failed, else the
/// latest failed one of the execution.
pub fn failed_action<'a>(event: Option<&'a ActionFacts>, actions: &'a [ActionFacts]) -> Option<ActionFacts> {
    let listed = |stage: &str, action: &str| actions.iter().find(|a| a.stage == stage && a.action == action);
    if let Some(e) = event.filter(|e| e.failed()) {
        return Some(match listed(&e.stage, &e.action) {
            Some(api) => api.clone().merged_with(e),
            None => e.clone(),
        });
    }
    actions.iter().filter(|a| a.failed()).max_by_key(|a| a.updated_at.or(a.started_at).unwrap_or(0)).cloned()
}

/// The ECS service a deploy action targets: `ClusterName`/`ServiceName` of
/// an ECS (standard) deploy action.
pub fn ecs_target(action: &ActionFacts) -> Option<(String, String)> {
    if !is_ecs_deploy(action.category.as_deref(), action.provider.as_deref()) {
        return None;
    }
    let cluster = action.config("ClusterName").filter(|c| !c.is_empty())?;
    let service = action.config("ServiceName").filter(|s| !s.is_empty())?;
    Some((crate::arn::cluster_name(cluster).to_string(), crate::arn::last_segment(service).to_string()))
}

/// A CodeDeploy-to-ECS action's application and deployment group.
pub fn codedeploy_group(action: &ActionFacts) -> Option<(String, String)> {
    if !action.provider_is("CodeDeployToECS") {
        return None;
    }
    Some((action.config("ApplicationName")?.to_string(), action.config("DeploymentGroupName")?.to_string()))
}

/// Which pipeline execution deployed a service, as recorded on the service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeployLink {
    pub pipeline: String,
    pub execution_id: String,
    pub stage: String,
    pub action: String,
    pub commit: Option<Commit>,
    /// When the deploy action started; when it succeeded (or failed).
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Succeeded, Failed or InProgress.
    pub status: String,
}

impl DeployLink {
    pub fn at(&self) -> i64 {
        self.started_at.or(self.finished_at).unwrap_or(0)
    }

    /// The finding line on an ECS incident: "deployed 12m ago by pipeline
    /// api-prod, execution …, commit 3f2a9c1 'raise pool size'".
    pub fn finding(&self, now: i64) -> String {
        let mut line = format!(
            "deployed {} ago by pipeline {}, execution {}",
            human_duration(now - self.at()),
            self.pipeline,
            self.execution_id
        );
        if let Some(c) = &self.commit {
            line.push_str(&format!(", commit {}", c.label()));
        }
        match self.status.as_str() {
            "Succeeded" => {}
            "Failed" => line.push_str(" (the deploy action failed)"),
            _ => line.push_str(" (the deploy action had not finished when last seen)"),
        }
        line
    }
}

/// The newest link within `window_seconds` of `now`.
pub fn latest_link(links: &[DeployLink], now: i64, window_seconds: i64) -> Option<&DeployLink> {
    links.iter().filter(|l| l.at() >= now - window_seconds).max_by_key(|l| l.at())
}

/// The stage before `stage` and its latest status (from `GetPipelineState`).
pub fn previous_stage<'a>(stages: &'a [StageFacts], stage: &str) -> Option<(&'a str, &'a str)> {
    let at = stages.iter().position(|s| s.name == stage)?;
    let prev = stages.get(at.checked_sub(1)?)?;
    Some((prev.name.as_str(), prev.status.as_deref().unwrap_or("unknown")))
}

/// The approval token of `stage/action`, when GetPipelineState shows it waiting.
pub fn approval_token<'a>(stages: &'a [StageFacts], stage: &str, action: &str) -> Option<&'a str> {
    stages
        .iter()
        .find(|s| s.name == stage)?
        .actions
        .iter()
        .find(|(name, _, _)| name == action)
        .and_then(|(_, _, token)| token.as_deref())
}

#[cfg(test)]
mod tests;
