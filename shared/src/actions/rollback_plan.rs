//! Where to roll back to, and how (pure).
//!
//! First, whether the trigger still stands: an automatic rollback acts only
//! while what triggered it is still the service's current, failing state — a
//! failed deployment still its PRIMARY, unfinished deployment; a crash loop's
//! or an alarm's revision still what it runs; an alarm's "recent deployment"
//! still PRIMARY and a fresh release, not a redeploy of a revision that had
//! reached steady state before (ECS's circuit-breaker rollback, ours, a
//! person's). A late or stale trigger is [`RollbackDecision::Stale`]: report,
//! do nothing.
//!
//! Target, in order: the newest known-good revision (the history records
//! when each revision's deployments completed, failed, and when we rolled
//! away from it; it is known-good only if it completed after all of those);
//! else the task definition of the previous deployment still in the service;
//! else the previous ACTIVE revision of the family, flagged as unverified.
//! Never the failing revision, never a failed deployment's, never an
//! INACTIVE one, never one we rolled away from (unless it completed since),
//! and nothing at all while ECS's own circuit breaker is rolling back.
//!
//! The failing revision is the one the trigger names — the failed
//! deployment's own revision as the service lists it, a crash loop's task's
//! revision — and only without a trigger (a person's request) what the
//! service runs now. A crash loop's revision is a rollback's subject only
//! while the deployment that brought it in is a fresh release (the same rule
//! as an alarm's "recent deployment"). Revisions any failed signal of the
//! incident named ([`RollbackInput::avoid`]) are never a target.
//!
//! Mechanism: `StopServiceDeployment` with stop type `ROLLBACK` when a service
//! deployment is still in progress and the target is the revision it started
//! from (ECS then restores its own source revision, configuration included,
//! and records it as a rollback); otherwise `UpdateService` with the target
//! task definition — the only way once a deployment has finished (FAILED
//! without circuit-breaker rollback, or a crash loop found after COMPLETED).
//! A service whose deployment strategy shifts traffic (`BLUE_GREEN`,
//! `LINEAR`, `CANARY`) is never sent `UpdateService` while one of its
//! deployments is in progress: that deployment is stopped with `ROLLBACK`
//! (ECS returns to the blue revision), and when whether one is in progress
//! cannot be read, nothing is done.

use serde::Serialize;

use crate::snapshot::{DeploymentSnapshot, KnownGood, ServiceDeploymentBrief, ServiceSnapshot};

/// `family:revision` of a task definition ARN or of a `family:revision` string.
pub fn td_key(td: &str) -> Option<(String, i32)> {
    let tail = td.rsplit('/').next().unwrap_or(td);
    let (family, rev) = tail.rsplit_once(':')?;
    Some((family.to_string(), rev.parse().ok()?))
}

fn same_td(a: &str, b: &str) -> bool {
    match (td_key(a), td_key(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `family:revision`, as people read it.
fn short(td: &str) -> String {
    td_key(td).map(|(f, r)| format!("{f}:{r}")).unwrap_or_else(|| td.to_string())
}

pub use crate::snapshot::RevisionInfo;

/// What the trigger is about, as the engine's caller knew it; checked
/// against the service as it is now. All `None` for a person's request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TriggerSubject<'a> {
    /// SERVICE_DEPLOYMENT_FAILED: the event's deployment id. It must still be
    /// the service's PRIMARY deployment, not completed.
    pub failed_deployment: Option<&'a str>,
    /// The revision the signal is about (a crash loop's failing task
    /// definition, the revision an alarm followed): still what the service runs.
    pub failing_revision: Option<&'a str>,
    /// An alarm that follows a deployment: the deployment it blames. It must
    /// still be PRIMARY and a fresh release.
    pub recent_deployment: Option<&'a str>,
    /// A single definite failure (not a crash loop) rolls back only a
    /// release: the deployment that brought `failing_revision` in must have
    /// been created at or after this time (the rollback window).
    pub deployed_since: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct RollbackInput<'a> {
    pub service: ServiceSnapshot,
    /// The known-good history, one record per revision.
    pub known_good: &'a [KnownGood],
    /// Revisions of the failing family with their status, when they could be
    /// listed; `None` when unknown (then only verified targets are used).
    pub family_revisions: Option<&'a [RevisionInfo]>,
    /// Revisions we rolled away from within the window.
    pub rolled_away_from: &'a [String],
    /// Every rollback of ours the ledger read holds: `(from, at)`.
    pub rollbacks: &'a [(String, i64)],
    /// Every rollback of ours the ledger read holds, by where it went: `(to, at)`.
    /// A deployment of such a revision created after it is our rollback, not a release.
    pub rollback_targets: &'a [(String, i64)],
    /// Revisions a failed signal of the incident named (`family:revision` or
    /// ARNs): never a target, whatever their history says.
    pub avoid: &'a [String],
    /// The revision our last executed rollback went to, within the window.
    pub last_rollback_target: Option<&'a str>,
    /// A person named the target (runbook `task_definition`).
    pub explicit_target: Option<&'a str>,
    /// The service's unfinished deployments (ListServiceDeployments), when read.
    pub service_deployments: ServiceDeployments<'a>,
    /// The triggering event says ECS is rolling back (circuit breaker).
    pub ecs_rolling_back: bool,
    pub trigger: TriggerSubject<'a>,
}

/// What ListServiceDeployments said of the service's unfinished deployments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServiceDeployments<'a> {
    /// Not asked (nothing the plan needs it for).
    #[default]
    NotRead,
    /// Asked and not answered: why.
    Unreadable(&'a str),
    Listed(&'a [ServiceDeploymentBrief]),
}

impl<'a> ServiceDeployments<'a> {
    /// The one ECS is rolling out (PENDING or IN_PROGRESS), when listed.
    fn in_progress(self) -> Option<&'a ServiceDeploymentBrief> {
        match self {
            Self::Listed(l) => l.iter().find(|d| matches!(d.status.as_str(), "PENDING" | "IN_PROGRESS")),
            _ => None,
        }
    }
}

/// Whether the service's deployment strategy shifts traffic between two
/// revisions (ECS blue/green, linear, canary): a deployment of it in progress
/// is rolled back with StopServiceDeployment, never replaced by UpdateService.
pub fn shifts_traffic(service: &ServiceSnapshot) -> bool {
    matches!(service.deployment_strategy.as_deref(), Some("BLUE_GREEN" | "LINEAR" | "CANARY"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSource {
    KnownGood,
    PreviousDeployment,
    PreviousRevision,
    Explicit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Mechanism {
    StopServiceDeployment { service_deployment_arn: String },
    UpdateService,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackPlan {
    pub from: String,
    pub to: String,
    pub source: TargetSource,
    /// `false` for a previous revision never seen healthy.
    pub verified: bool,
    pub mechanism: Mechanism,
}

impl RollbackPlan {
    pub fn describe(&self) -> String {
        format!(
            "roll back {} -> {} ({:?}{}) via {}",
            short(&self.from),
            short(&self.to),
            self.source,
            if self.verified { "" } else { ", UNVERIFIED: not seen to reach steady state" },
            match &self.mechanism {
                Mechanism::StopServiceDeployment { .. } => "StopServiceDeployment(ROLLBACK)",
                Mechanism::UpdateService => "UpdateService",
            }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackDecision {
    Plan(RollbackPlan),
    /// ECS is handling it: follow and report, do not act.
    Follow(String),
    /// The trigger no longer describes the service: report, do nothing.
    Stale(String),
    Refuse(String),
}

fn mentions_rollback(d: &DeploymentSnapshot) -> bool {
    let reason = d.rollout_state_reason.as_deref().unwrap_or_default().to_ascii_lowercase();
    reason.contains("rolling back") || reason.contains("rollback")
}

/// ECS is already rolling back, or its circuit breaker with rollback will.
fn ecs_is_rolling_back(input: &RollbackInput<'_>) -> Option<String> {
    if input.ecs_rolling_back {
        return Some("ECS deployment circuit breaker is rolling back".into());
    }
    if let ServiceDeployments::Listed(listed) = input.service_deployments
        && let Some(d) = listed
            .iter()
            .find(|d| matches!(d.status.as_str(), "ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS" | "STOP_REQUESTED"))
    {
        return Some(format!(
            "ECS is already stopping or rolling back service deployment {} ({}{})",
            d.arn,
            d.status,
            d.status_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        ));
    }
    for d in &input.service.deployments {
        let reason = d.rollout_state_reason.as_deref().unwrap_or_default().to_ascii_lowercase();
        if reason.contains("rolling back") || mentions_rollback(d) && d.rollout_state.as_deref() == Some("IN_PROGRESS")
        {
            return Some(format!(
                "ECS is rolling back deployment {} ({})",
                d.id,
                d.rollout_state_reason.as_deref().unwrap_or("")
            ));
        }
    }
    if let Some(cb) = input.service.circuit_breaker
        && cb.enable
        && cb.rollback
        && input
            .service
            .deployments
            .iter()
            .any(|d| d.status == "PRIMARY" && d.rollout_state.as_deref() == Some("FAILED"))
    {
        return Some("the deployment circuit breaker (with rollback) has fired; ECS rolls back on its own".into());
    }
    None
}

fn primary(service: &ServiceSnapshot) -> Option<&DeploymentSnapshot> {
    service.deployments.iter().find(|d| d.status == "PRIMARY")
}

/// The revision a listed deployment runs. For the PRIMARY one that is the
/// service's own task definition (the same in ECS; the local test server
/// leaves the deployment's stale), for the others their own.
pub fn deployment_revision<'s>(service: &'s ServiceSnapshot, deployment_id: &str) -> Option<&'s str> {
    let d = service.deployments.iter().find(|d| d.id == deployment_id)?;
    let own = Some(d.task_definition.as_str()).filter(|td| !td.is_empty());
    if d.status == "PRIMARY" { service.task_definition.as_deref().or(own) } else { own }
}

/// Why a completed deployment's revision is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownCompletion {
    #[error("deployment {0} is no longer listed by the service, so which revision completed is not known")]
    NotListed(String),
    #[error("the service lists deployment {0} as FAILED")]
    ListedFailed(String),
    #[error("deployment {0} names no task definition")]
    NoTaskDefinition(String),
}

/// Which revision a SERVICE_DEPLOYMENT_COMPLETED event is about — only when
/// the service still lists that deployment. Never "whatever is PRIMARY": a
/// late COMPLETED names a deployment that is gone, and the PRIMARY one may be
/// a release still rolling out.
pub fn completed_revision(service: &ServiceSnapshot, deployment_id: &str) -> Result<String, UnknownCompletion> {
    let Some(d) = service.deployments.iter().find(|d| d.id == deployment_id) else {
        return Err(UnknownCompletion::NotListed(deployment_id.into()));
    };
    if d.rollout_state.as_deref() == Some("FAILED") {
        return Err(UnknownCompletion::ListedFailed(deployment_id.into()));
    }
    deployment_revision(service, deployment_id)
        .map(str::to_string)
        .ok_or_else(|| UnknownCompletion::NoTaskDefinition(deployment_id.into()))
}

/// The deployment an alarm follows: the PRIMARY one, created within `window`
/// seconds before `now`, and the revision it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentDeployment {
    pub deployment: String,
    pub revision: String,
}

pub fn recent_deployment(service: &ServiceSnapshot, now: i64, window: i64) -> Option<RecentDeployment> {
    let p = primary(service)?;
    let created = p.created_at.as_deref().and_then(crate::lenient::parse_time)?.timestamp();
    // `now` is the alarm's own state time: a deployment after it is not what
    // it follows (a minute's grace for the clocks of ECS and CloudWatch).
    if now - created > window || created > now + 60 {
        return None;
    }
    Some(RecentDeployment { deployment: p.id.clone(), revision: deployment_revision(service, &p.id)?.to_string() })
}

/// Where the service is now, for a stale trigger's record.
fn where_now(service: &ServiceSnapshot, failed: Option<&DeploymentSnapshot>) -> String {
    let p = primary(service);
    let runs = service.task_definition.as_deref().or(p.map(|d| d.task_definition.as_str())).map(short);
    let Some(runs) = runs else { return "what it runs now is unknown".into() };
    // ECS's breaker failed the deployment and something else is PRIMARY: its rollback.
    let by_ecs = service.circuit_breaker.is_some_and(|c| c.enable && c.rollback)
        || p.is_some_and(mentions_rollback)
        || failed.is_some_and(|d| {
            d.rollout_state_reason.as_deref().unwrap_or_default().to_ascii_lowercase().contains("circuit breaker")
        });
    let verb = if by_ecs { "ECS already rolled back to" } else { "the service now runs" };
    match p {
        Some(p) => {
            format!("{verb} {runs}, deployment {} {}", p.id, p.rollout_state.as_deref().unwrap_or("state unknown"))
        }
        None => format!("{verb} {runs}"),
    }
}

/// Whether the trigger still describes the service (`None`), or why not.
fn stale_trigger(input: &RollbackInput<'_>) -> Option<String> {
    let service = &input.service;
    let listed = |id: &str| service.deployments.iter().find(|d| d.id == id);
    if let Some(id) = input.trigger.failed_deployment {
        match listed(id) {
            Some(d) if d.status == "PRIMARY" && d.rollout_state.as_deref() == Some("COMPLETED") => {
                return Some(format!(
                    "deployment {id} has completed since ({} at steady state); nothing to do",
                    deployment_revision(service, id).map(short).unwrap_or_else(|| "its revision".into())
                ));
            }
            Some(d) if d.status == "PRIMARY" => {}
            other => {
                return Some(format!(
                    "deployment {id} is no longer the service's primary deployment ({}); nothing to do",
                    where_now(service, other)
                ));
            }
        }
    }
    if let Some(rev) = input.trigger.failing_revision
        && let Some(runs) = service.task_definition.as_deref()
        && !same_td(rev, runs)
    {
        return Some(format!(
            "{} is no longer what the service runs ({}); nothing to do",
            short(rev),
            where_now(service, None)
        ));
    }
    if let Some(id) = input.trigger.recent_deployment {
        let Some(d) = listed(id).filter(|d| d.status == "PRIMARY") else {
            return Some(format!(
                "deployment {id}, the one the alarm followed, is no longer the service's primary deployment ({}); nothing to do",
                where_now(service, None)
            ));
        };
        let revision = deployment_revision(service, id).unwrap_or(d.task_definition.as_str());
        return not_a_fresh_release(input, d, revision);
    }
    // A crash loop's revision: only a fresh release of it is rolled back.
    if input.trigger.failed_deployment.is_none()
        && let Some(rev) = input.trigger.failing_revision
    {
        let Some(d) = brought_in(service, rev) else {
            return Some(format!(
                "no deployment of {} is listed by the service, so whether it is a fresh release is not known; nothing rolled back",
                short(rev)
            ));
        };
        if let Some(since) = input.trigger.deployed_since {
            let created = d.created_at.as_deref().and_then(crate::lenient::parse_time).map(|t| t.timestamp());
            if created.is_none_or(|c| c < since) {
                return Some(format!(
                    "{} came in with deployment {} ({}), not within the rollback window (since {}): \
                     a single failed task does not roll back a revision that ran before; nothing rolled back",
                    short(rev),
                    d.id,
                    d.created_at.as_deref().unwrap_or("creation time unknown"),
                    crate::time::iso(since)
                ));
            }
        }
        return not_a_fresh_release(input, d, rev);
    }
    None
}

/// What the service runs now: its task definition, else its PRIMARY deployment's.
fn runs_now(service: &ServiceSnapshot) -> Option<String> {
    service.task_definition.clone().or_else(|| primary(service).map(|d| d.task_definition.clone()))
}

/// The failing revision: the one the trigger names; only without one (a
/// person's request) what the service runs now.
fn failing_revision(service: &ServiceSnapshot, trigger: &TriggerSubject<'_>) -> Option<String> {
    trigger
        .failed_deployment
        .and_then(|id| deployment_revision(service, id))
        .or(trigger.failing_revision)
        .map(str::to_string)
        .or_else(|| runs_now(service))
}

/// Whether the family's ACTIVE revisions (ListTaskDefinitions) can change
/// a rollback's decision (pure). Not when nothing could be a target: no
/// person's target, no known-good history, no other deployment listed, and
/// the failing revision the first of its family (no earlier one to return
/// to). [`plan_rollback`] then refuses alike with or without them, and
/// they need not be read.
pub fn family_can_matter(
    service: &ServiceSnapshot,
    known_good: &[KnownGood],
    explicit_target: Option<&str>,
    trigger: &TriggerSubject<'_>,
) -> bool {
    let Some(failing) = failing_revision(service, trigger) else { return false };
    explicit_target.is_some()
        || !known_good.is_empty()
        || service.deployments.iter().any(|d| !same_td(&d.task_definition, &failing))
        || td_key(&failing).is_none_or(|(_, revision)| revision > 1)
}

/// The deployment of a service that lists no other revision: every listed
/// deployment is of `failing`, so neither we nor ECS's circuit breaker has
/// a revision to return to.
fn first_deployment<'s>(service: &'s ServiceSnapshot, failing: &str) -> Option<&'s DeploymentSnapshot> {
    service.deployments.iter().all(|d| same_td(&d.task_definition, failing)).then(|| primary(service)).flatten()
}

/// The deployment that brought `revision` in: the newest listed deployment of it.
fn brought_in<'s>(service: &'s ServiceSnapshot, revision: &str) -> Option<&'s DeploymentSnapshot> {
    service
        .deployments
        .iter()
        .filter(|d| deployment_revision(service, &d.id).is_some_and(|r| same_td(r, revision)))
        .max_by_key(|d| d.created_at.as_deref().and_then(crate::lenient::parse_time).map(|t| t.timestamp()))
}

/// Why deployment `d` of `revision` is not a fresh release (`None`: it is):
/// it is a rollback (ECS says so, or ours went to that revision before it
/// was created), or the revision had reached steady state before it — a
/// redeploy of a proven revision (ECS's circuit-breaker rollback, ours, a
/// person's, a force-deploy), which a rollback would not cure.
fn not_a_fresh_release(input: &RollbackInput<'_>, d: &DeploymentSnapshot, revision: &str) -> Option<String> {
    let id = &d.id;
    if mentions_rollback(d) {
        return Some(format!(
            "deployment {id} is a rollback ({}), not a fresh release; nothing to roll back",
            d.rollout_state_reason.as_deref().unwrap_or_default()
        ));
    }
    let created = d.created_at.as_deref().and_then(crate::lenient::parse_time).map(|t| t.timestamp());
    // Our UpdateService precedes the deployment it creates by a moment; a minute covers it.
    const OURS_SLACK: i64 = 60;
    if let Some(at) = input
        .rollback_targets
        .iter()
        .filter(|(to, _)| same_td(to, revision))
        .map(|(_, at)| *at)
        .find(|at| created.is_some_and(|c| *at <= c + OURS_SLACK))
    {
        return Some(format!(
            "deployment {id} of {} is our rollback to it (at {}), not a fresh release; nothing to roll back",
            short(revision),
            crate::time::iso(at)
        ));
    }
    let proven_before = input
        .known_good
        .iter()
        .filter(|k| same_td(&k.task_definition, revision))
        .filter_map(|k| k.first_completed_at)
        .find(|first| created.is_some_and(|c| *first < c));
    proven_before.map(|first| {
        format!(
            "deployment {id} re-deployed {}, which had reached steady state before (first at {}): \
             a rollback (ECS's, ours or a person's), not a fresh release; nothing to roll back",
            short(revision),
            crate::time::iso(first)
        )
    })
}

/// Why a revision of the history is not known-good.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NotKnownGood {
    NeverCompleted {
        name: String,
    },
    /// A deployment of it failed (after its last completion, if any).
    Failed {
        name: String,
        deployment: Option<String>,
        at: i64,
        completed: bool,
    },
    /// We rolled away from it (after its last completion, if any).
    RolledAway {
        name: String,
        at: i64,
        completed: bool,
    },
}

impl std::fmt::Display for NotKnownGood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since = |completed: bool| if completed { ", after it last reached steady state" } else { "" };
        match self {
            Self::NeverCompleted { name } => write!(f, "{name} never reached steady state"),
            Self::Failed { name, deployment, at, completed } => write!(
                f,
                "{name}: deployment {} of it failed at {}{}",
                deployment.as_deref().unwrap_or("?"),
                crate::time::iso(*at),
                since(*completed)
            ),
            Self::RolledAway { name, at, completed } => {
                write!(f, "{name}: we rolled away from it at {}{}", crate::time::iso(*at), since(*completed))
            }
        }
    }
}

/// The time a revision last became known-good, or why it is not.
fn known_good_since(k: &KnownGood, rollbacks: &[(String, i64)]) -> Result<i64, NotKnownGood> {
    let name = short(&k.task_definition);
    let away = rollbacks.iter().filter(|(from, _)| same_td(from, &k.task_definition)).map(|(_, at)| *at).max();
    let away = away.max(k.rolled_away_at);
    let failed = |at, completed| NotKnownGood::Failed {
        name: name.clone(),
        deployment: k.failed_deployment.clone(),
        at,
        completed,
    };
    let Some(done) = k.completed_at else {
        return Err(match (k.failed_at, away) {
            (Some(at), _) => failed(at, false),
            (None, Some(at)) => NotKnownGood::RolledAway { name, at, completed: false },
            (None, None) => NotKnownGood::NeverCompleted { name },
        });
    };
    // A failure or a rollback at the same second as the completion wins: fail closed.
    if let Some(at) = k.failed_at.filter(|at| *at >= done) {
        return Err(failed(at, true));
    }
    if let Some(at) = away.filter(|at| *at >= done) {
        return Err(NotKnownGood::RolledAway { name, at, completed: true });
    }
    Ok(done)
}

pub fn plan_rollback(input: &RollbackInput<'_>) -> RollbackDecision {
    if let Some(why) = ecs_is_rolling_back(input) {
        return RollbackDecision::Follow(why);
    }
    if let Some(why) = stale_trigger(input) {
        return RollbackDecision::Stale(why);
    }
    let runs_now = runs_now(&input.service);
    let Some(failing) = failing_revision(&input.service, &input.trigger) else {
        return RollbackDecision::Refuse("the service's current task definition is unknown".into());
    };
    if let Some(last_to) = input.last_rollback_target
        && same_td(last_to, &failing)
        && input.explicit_target.is_none()
    {
        return RollbackDecision::Refuse(format!(
            "{failing} is the revision our last rollback went to; rolling back twice in a row would loop — a person must decide"
        ));
    }
    let is_active = |td: &str| -> Option<bool> {
        input.family_revisions.map(|revs| revs.iter().any(|r| r.active && same_td(&r.arn, td)))
    };
    let avoided = |td: &str| input.avoid.iter().any(|a| same_td(a, td));
    // Why a revision may not be an automatic target, whatever the source.
    let excluded = |td: &str| -> Option<String> {
        if same_td(td, &failing) {
            return Some(format!("{td} is the failing revision"));
        }
        if runs_now.as_deref().is_some_and(|now| same_td(td, now)) {
            return Some(format!("{td} is what the service runs now"));
        }
        if avoided(td) {
            return Some(format!("{td} is a revision a failed signal of this incident named"));
        }
        if is_active(td) == Some(false) {
            return Some(format!("{td} is not ACTIVE"));
        }
        if input.rolled_away_from.iter().any(|r| same_td(r, td)) {
            return Some(format!("we rolled away from {td} within the window"));
        }
        if let Some(d) = input
            .service
            .deployments
            .iter()
            .find(|d| d.rollout_state.as_deref() == Some("FAILED") && same_td(&d.task_definition, td))
        {
            return Some(format!("{td} is the revision of failed deployment {}", d.id));
        }
        // Failed, or rolled away from (history or ledger), and not completed since.
        let rolled_away = input.rollbacks.iter().filter(|(from, _)| same_td(from, td)).map(|(_, at)| *at).max();
        match input.known_good.iter().find(|k| same_td(&k.task_definition, td)) {
            Some(k) if k.failed_at.is_some() || k.rolled_away_at.is_some() || rolled_away.is_some() => {
                known_good_since(k, input.rollbacks).err().map(|why| why.to_string())
            }
            None => rolled_away.map(|at| format!("we rolled away from {td} at {}", crate::time::iso(at))),
            Some(_) => None,
        }
    };
    let in_progress = input.service_deployments.in_progress();
    // The revision an in-progress deployment started from: what ROLLBACK returns to.
    let source = input
        .service
        .deployments
        .iter()
        .filter(|d| d.status == "ACTIVE" && d.rollout_state.as_deref() != Some("FAILED"))
        .max_by_key(|d| d.created_at.clone());
    let mechanism = |to: &str| -> Mechanism {
        let source_is_target = input.service.deployments.iter().any(|d| {
            d.status == "ACTIVE" && d.rollout_state.as_deref() == Some("COMPLETED") && same_td(&d.task_definition, to)
        });
        match in_progress {
            Some(dep) if source_is_target => {
                Mechanism::StopServiceDeployment { service_deployment_arn: dep.arn.clone() }
            }
            _ => Mechanism::UpdateService,
        }
    };
    let plan = |to: &str, source, verified| {
        RollbackDecision::Plan(RollbackPlan {
            from: failing.clone(),
            to: to.to_string(),
            source,
            verified,
            mechanism: mechanism(to),
        })
    };

    // Blue/green, linear, canary: a deployment in progress is stopped with
    // ROLLBACK (back to its source), never replaced by UpdateService.
    if shifts_traffic(&input.service) {
        let strategy = input.service.deployment_strategy.as_deref().unwrap_or_default();
        let unknown = |why: &str| {
            RollbackDecision::Refuse(format!(
                "the service deploys {strategy} and whether a deployment of it is in progress is not known \
                 (ListServiceDeployments {why}); UpdateService must not replace one in progress, so nothing is done"
            ))
        };
        // A PRIMARY deployment ECS reports COMPLETED has nothing in progress to stop.
        let settled = primary(&input.service).is_some_and(|d| d.rollout_state.as_deref() == Some("COMPLETED"));
        match (input.service_deployments, in_progress) {
            (ServiceDeployments::NotRead, _) if !settled => return unknown("not read"),
            (ServiceDeployments::Unreadable(why), _) if !settled => return unknown(why),
            (_, Some(dep)) => {
                let Some(src) = source else {
                    return RollbackDecision::Refuse(format!(
                        "a {strategy} deployment is in progress ({}) and the revision it started from is not listed; \
                         roll it back with aws ecs stop-service-deployment --service-deployment-arn {} --stop-type ROLLBACK",
                        dep.arn, dep.arn
                    ));
                };
                let to = src.task_definition.as_str();
                if let Some(target) = input.explicit_target
                    && !same_td(target, to)
                {
                    return RollbackDecision::Refuse(format!(
                        "a {strategy} deployment is in progress: its rollback (StopServiceDeployment ROLLBACK) returns to {}, \
                         not {target}; roll it back first, then deploy {target}",
                        short(to)
                    ));
                }
                if input.explicit_target.is_none()
                    && let Some(why) = excluded(to)
                {
                    return RollbackDecision::Refuse(format!(
                        "a {strategy} deployment is in progress and its rollback would return to {}, which is excluded ({why}); a person must decide",
                        short(to)
                    ));
                }
                return RollbackDecision::Plan(RollbackPlan {
                    from: failing.clone(),
                    to: to.to_string(),
                    source: if input.explicit_target.is_some() {
                        TargetSource::Explicit
                    } else {
                        TargetSource::PreviousDeployment
                    },
                    verified: src.rollout_state.as_deref() == Some("COMPLETED"),
                    mechanism: Mechanism::StopServiceDeployment { service_deployment_arn: dep.arn.clone() },
                });
            }
            _ => {} // nothing in progress: a new deployment of the target (UpdateService) is the way
        }
    }

    if let Some(target) = input.explicit_target {
        // A person chose; only the hard rules apply (not the failing one, not INACTIVE).
        if same_td(target, &failing) {
            return RollbackDecision::Refuse(format!("{target} is what the service runs now"));
        }
        if is_active(target) == Some(false) {
            return RollbackDecision::Refuse(format!("{target} is not an ACTIVE revision"));
        }
        if avoided(target) {
            return RollbackDecision::Refuse(format!("{target} is a revision a failed signal of this incident named"));
        }
        return plan(target, TargetSource::Explicit, true);
    }
    let mut refusals = Vec::new();
    // The newest known-good revision first (latest completion, then highest revision).
    let mut history: Vec<&KnownGood> = input.known_good.iter().collect();
    let rev_of = |k: &KnownGood| td_key(&k.task_definition).map(|(_, r)| r).unwrap_or_default();
    history.sort_by_key(|k| std::cmp::Reverse((k.completed_at, rev_of(k))));
    for k in history {
        match known_good_since(k, input.rollbacks) {
            Err(why) if k.completed_at.is_some() => refusals.push(format!("known-good: {why}")),
            Err(_) => {} // only a failure or a rollback recorded: never was known-good
            Ok(_) => match excluded(&k.task_definition) {
                None => return plan(&k.task_definition, TargetSource::KnownGood, true),
                Some(why) => refusals.push(format!("known-good: {why}")),
            },
        }
    }
    // The previous deployment: any other deployment of the service, newest first.
    let mut previous: Vec<_> =
        input.service.deployments.iter().filter(|d| !same_td(&d.task_definition, &failing)).collect();
    previous.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    for d in previous {
        match excluded(&d.task_definition) {
            None => {
                return plan(
                    &d.task_definition,
                    TargetSource::PreviousDeployment,
                    d.rollout_state.as_deref() == Some("COMPLETED"),
                );
            }
            Some(why) => refusals.push(format!("previous deployment: {why}")),
        }
    }
    // The previous ACTIVE revision of the family, unverified.
    if let (Some(revs), Some((family, failing_rev))) = (input.family_revisions, td_key(&failing)) {
        let mut candidates: Vec<(i32, &RevisionInfo)> = revs
            .iter()
            .filter_map(|r| {
                td_key(&r.arn).filter(|(f, rev)| *f == family && *rev < failing_rev).map(|(_, rev)| (rev, r))
            })
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        for (_, r) in candidates {
            match excluded(&r.arn) {
                None => return plan(&r.arn, TargetSource::PreviousRevision, false),
                Some(why) => refusals.push(format!("previous revision: {why}")),
            }
        }
    }
    RollbackDecision::Refuse(if refusals.is_empty() {
        match first_deployment(&input.service, &failing) {
            // ECS's circuit breaker has nothing to return to either: say so now, not after it gives up.
            Some(d) => format!(
                "no rollback target: deployment {} is the service's first ({} is its only revision; no completed revision to return to): \
                 it cannot be rolled back; fix the revision and deploy it, or stop the service's tasks \
                 (aws ecs update-service --desired-count 0)",
                d.id,
                short(&failing)
            ),
            None => format!(
                "no rollback target: no known-good revision, no previous deployment and no earlier ACTIVE revision than {failing}"
            ),
        }
    } else {
        format!("no safe rollback target ({})", refusals.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::CircuitBreaker;

    const A: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition/api";

    fn td(rev: i32) -> String {
        format!("{A}:{rev}")
    }

    fn dep(id: &str, status: &str, rev: i32, rollout: &str, created: &str) -> DeploymentSnapshot {
        DeploymentSnapshot {
            id: id.into(),
            status: status.into(),
            task_definition: td(rev),
            rollout_state: Some(rollout.into()),
            created_at: Some(created.into()),
            ..Default::default()
        }
    }

    fn service(current: i32, deployments: Vec<DeploymentSnapshot>) -> ServiceSnapshot {
        ServiceSnapshot { task_definition: Some(td(current)), deployments, ..Default::default() }
    }

    fn revs(list: &[(i32, bool)]) -> Vec<RevisionInfo> {
        list.iter().map(|(r, a)| RevisionInfo { arn: td(*r), active: *a }).collect()
    }

    /// A revision that reached steady state at `at` (and first at `at`).
    fn completed(rev: i32, at: i64) -> KnownGood {
        KnownGood {
            task_definition: td(rev),
            first_completed_at: Some(at),
            completed_at: Some(at),
            completed_by: Some(format!("ecs-svc/{rev}")),
            ..Default::default()
        }
    }

    /// A service deployment as ListServiceDeployments lists it.
    fn brief(arn: &str, status: &str) -> ServiceDeploymentBrief {
        ServiceDeploymentBrief { arn: arn.into(), status: status.into(), ..Default::default() }
    }

    fn target(d: RollbackDecision) -> (String, TargetSource, bool) {
        match d {
            RollbackDecision::Plan(p) => (p.to, p.source, p.verified),
            other => panic!("expected a plan, got {other:?}"),
        }
    }

    #[test]
    fn the_family_is_read_only_when_a_target_could_come_from_it_or_be_checked_against_it() {
        let first = || service(1, vec![dep("d1", "PRIMARY", 1, "IN_PROGRESS", "1")]);
        let kg = [completed(7, 100)];
        let other_family = format!("{A}-v2:1");
        let trigger = TriggerSubject::default();
        let failing_first = TriggerSubject { failing_revision: Some(&other_family), ..Default::default() };
        // (service, known-good, a person's target, trigger) -> may the list change the decision?
        type Case<'c> = (&'c str, ServiceSnapshot, &'c [KnownGood], Option<&'c str>, &'c TriggerSubject<'c>, bool);
        let cases: Vec<Case<'_>> = vec![
            ("first revision, nothing else", first(), &[], None, &trigger, false),
            ("a known-good revision to check", first(), &kg, None, &trigger, true),
            ("a person's target to check", first(), &[], Some("x:3"), &trigger, true),
            (
                "another deployment listed",
                service(1, vec![dep("d1", "PRIMARY", 1, "IN_PROGRESS", "2"), dep("d0", "ACTIVE", 9, "COMPLETED", "1")]),
                &[],
                None,
                &trigger,
                true,
            ),
            (
                "an earlier revision may exist",
                service(2, vec![dep("d2", "PRIMARY", 2, "IN_PROGRESS", "1")]),
                &[],
                None,
                &trigger,
                true,
            ),
            (
                "the trigger's revision is the first of a new family",
                ServiceSnapshot { task_definition: Some(other_family.clone()), ..Default::default() },
                &[],
                None,
                &failing_first,
                false,
            ),
            (
                "an unparseable revision",
                ServiceSnapshot { task_definition: Some("odd".into()), ..Default::default() },
                &[],
                None,
                &trigger,
                true,
            ),
            ("no revision known at all", ServiceSnapshot::default(), &[], None, &trigger, false),
        ];
        for (what, svc, known_good, explicit, trig, expected) in cases {
            assert_eq!(family_can_matter(&svc, known_good, explicit, trig), expected, "{what}");
            if !expected {
                // The decision does not depend on the list: the same with or without it.
                let listed = revs(&[(1, true)]);
                let input = |family_revisions| RollbackInput {
                    service: svc.clone(),
                    known_good,
                    family_revisions,
                    explicit_target: explicit,
                    trigger: TriggerSubject { ..*trig },
                    ..Default::default()
                };
                let (without, with) = (plan_rollback(&input(None)), plan_rollback(&input(Some(&listed))));
                assert!(!matches!(without, RollbackDecision::Plan(_)), "{what}: {without:?}");
                assert_eq!(format!("{without:?}"), format!("{with:?}"), "{what}");
            }
        }
    }

    #[test]
    fn known_good_revision_comes_first() {
        let kg = [completed(40, 100)];
        let r = revs(&[(40, true), (41, true), (42, true)]);
        let input = RollbackInput {
            service: service(
                42,
                vec![dep("d2", "PRIMARY", 42, "FAILED", "2"), dep("d1", "ACTIVE", 41, "COMPLETED", "1")],
            ),
            known_good: &kg,
            family_revisions: Some(&r),
            ..Default::default()
        };
        assert_eq!(target(plan_rollback(&input)), (td(40), TargetSource::KnownGood, true));
    }

    #[test]
    fn without_known_good_the_previous_deployment_is_the_target() {
        let input = RollbackInput {
            service: service(
                42,
                vec![dep("d2", "PRIMARY", 42, "IN_PROGRESS", "2"), dep("d1", "ACTIVE", 41, "COMPLETED", "1")],
            ),
            ..Default::default()
        };
        assert_eq!(target(plan_rollback(&input)), (td(41), TargetSource::PreviousDeployment, true));
    }

    #[test]
    fn else_the_previous_active_revision_flagged_unverified() {
        let r = revs(&[(42, true), (41, false), (40, true), (43, true)]);
        let input = RollbackInput {
            service: service(42, vec![dep("d2", "PRIMARY", 42, "FAILED", "2")]),
            family_revisions: Some(&r),
            ..Default::default()
        };
        assert_eq!(
            target(plan_rollback(&input)),
            (td(40), TargetSource::PreviousRevision, false),
            "41 is INACTIVE, 43 is newer"
        );
    }

    #[test]
    fn never_the_failing_revision() {
        let kg = [completed(42, 100)];
        let input = RollbackInput {
            service: service(42, vec![dep("d2", "PRIMARY", 42, "FAILED", "2")]),
            known_good: &kg,
            family_revisions: Some(&[]),
            ..Default::default()
        };
        let RollbackDecision::Refuse(why) = plan_rollback(&input) else { panic!() };
        assert!(why.contains("failing revision"), "{why}");
    }

    #[test]
    fn never_an_inactive_known_good_revision() {
        let kg = [completed(40, 100)];
        let r = revs(&[(40, false), (42, true)]);
        let input = RollbackInput {
            service: service(42, vec![dep("d2", "PRIMARY", 42, "FAILED", "2")]),
            known_good: &kg,
            family_revisions: Some(&r),
            ..Default::default()
        };
        let RollbackDecision::Refuse(why) = plan_rollback(&input) else { panic!() };
        assert!(why.contains("not ACTIVE"), "{why}");
    }

    #[test]
    fn never_back_to_a_revision_we_rolled_away_from() {
        let away = vec![td(41)];
        let r = revs(&[(39, true), (40, true), (41, true), (42, true)]);
        let input = RollbackInput {
            service: service(
                42,
                vec![dep("d2", "PRIMARY", 42, "FAILED", "2"), dep("d1", "ACTIVE", 41, "COMPLETED", "1")],
            ),
            rolled_away_from: &away,
            family_revisions: Some(&r),
            ..Default::default()
        };
        assert_eq!(target(plan_rollback(&input)).0, td(40));
    }

    #[test]
    fn never_twice_in_a_row_when_our_last_rollback_target_fails() {
        let last = td(41);
        let input = RollbackInput {
            service: service(
                41,
                vec![dep("d3", "PRIMARY", 41, "IN_PROGRESS", "3"), dep("d2", "ACTIVE", 40, "COMPLETED", "2")],
            ),
            last_rollback_target: Some(&last),
            ..Default::default()
        };
        let RollbackDecision::Refuse(why) = plan_rollback(&input) else { panic!() };
        assert!(why.contains("loop"), "{why}");
    }

    #[test]
    fn when_ecs_is_rolling_back_we_follow() {
        let mut s =
            service(42, vec![dep("d2", "PRIMARY", 42, "FAILED", "2"), dep("d1", "ACTIVE", 41, "COMPLETED", "1")]);
        let by_event = RollbackInput { service: s.clone(), ecs_rolling_back: true, ..Default::default() };
        assert!(matches!(plan_rollback(&by_event), RollbackDecision::Follow(_)));
        s.circuit_breaker = Some(CircuitBreaker { enable: true, rollback: true });
        let by_breaker = RollbackInput { service: s.clone(), ..Default::default() };
        assert!(matches!(plan_rollback(&by_breaker), RollbackDecision::Follow(_)));
        s.circuit_breaker = Some(CircuitBreaker { enable: true, rollback: false });
        let breaker_without_rollback = RollbackInput { service: s.clone(), ..Default::default() };
        assert!(matches!(plan_rollback(&breaker_without_rollback), RollbackDecision::Plan(_)));
        let mut rolling = service(41, vec![dep("d3", "PRIMARY", 41, "IN_PROGRESS", "3")]);
        rolling.deployments[0].rollout_state_reason =
            Some("ECS deployment circuit breaker: rolling back to deploymentId d1".into());
        assert!(matches!(
            plan_rollback(&RollbackInput { service: rolling, ..Default::default() }),
            RollbackDecision::Follow(_)
        ));
    }

    #[test]
    fn stop_service_deployment_only_while_the_deployment_is_in_progress_from_the_target() {
        let arn = "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/api/abc";
        let listed = [brief(arn, "IN_PROGRESS")];
        let input = RollbackInput {
            service: service(
                42,
                vec![dep("d2", "PRIMARY", 42, "IN_PROGRESS", "2"), dep("d1", "ACTIVE", 41, "COMPLETED", "1")],
            ),
            service_deployments: ServiceDeployments::Listed(&listed),
            ..Default::default()
        };
        let RollbackDecision::Plan(p) = plan_rollback(&input) else { panic!() };
        assert_eq!(p.mechanism, Mechanism::StopServiceDeployment { service_deployment_arn: arn.into() });
        let finished = RollbackInput { service_deployments: ServiceDeployments::Listed(&[]), ..input.clone() };
        let RollbackDecision::Plan(p) = plan_rollback(&finished) else { panic!() };
        assert_eq!(p.mechanism, Mechanism::UpdateService);
        let kg = [completed(39, 100)];
        let elsewhere = RollbackInput { known_good: &kg, ..input };
        let RollbackDecision::Plan(p) = plan_rollback(&elsewhere) else { panic!() };
        assert_eq!(p.mechanism, Mechanism::UpdateService, "ROLLBACK returns to the source, not to 39");
    }

    #[test]
    fn short_names_and_arns_are_the_same_revision() {
        // Some servers (and people) write `family:rev`; ARNs and short names must compare equal.
        let mut s = service(42, vec![dep("d1", "PRIMARY", 41, "IN_PROGRESS", "1")]);
        s.task_definition = Some("api:42".into());
        let input = RollbackInput { service: s, ..Default::default() };
        assert_eq!(target(plan_rollback(&input)).0, td(41));
        assert!(same_td("api:7", &format!("{A}:7")));
        assert!(!same_td("api:7", &format!("{A}:70")));
    }

    #[test]
    fn an_explicit_target_is_taken_unless_it_is_current_or_inactive() {
        let r = revs(&[(30, true), (31, false), (42, true)]);
        let base = RollbackInput { service: service(42, vec![]), family_revisions: Some(&r), ..Default::default() };
        let t = "api:30";
        assert_eq!(
            target(plan_rollback(&RollbackInput { explicit_target: Some(t), ..base.clone() })).1,
            TargetSource::Explicit
        );
        assert!(matches!(
            plan_rollback(&RollbackInput { explicit_target: Some("api:31"), ..base.clone() }),
            RollbackDecision::Refuse(_)
        ));
        assert!(matches!(
            plan_rollback(&RollbackInput { explicit_target: Some("api:42"), ..base }),
            RollbackDecision::Refuse(_)
        ));
    }

    #[test]
    fn nothing_to_go_back_to_is_a_clear_refusal() {
        let r = revs(&[(1, true)]);
        let input = RollbackInput {
            service: service(1, vec![dep("d1", "PRIMARY", 1, "IN_PROGRESS", "1")]),
            family_revisions: Some(&r),
            ..Default::default()
        };
        let RollbackDecision::Refuse(why) = plan_rollback(&input) else { panic!() };
        assert!(why.contains("no rollback target"), "{why}");
    }

    // ---- Triggers against ECS's deployment shapes (DescribeServices
    // `deployments`: status PRIMARY/ACTIVE, rolloutState IN_PROGRESS/
    // COMPLETED/FAILED) — what the local test server cannot model.

    /// 2026-11-20T14:00:00Z plus `min` minutes, as epoch seconds.
    fn epoch(min: i64) -> i64 {
        1_795_183_200 + min * 60
    }

    fn iso(min: i64) -> String {
        crate::time::iso(epoch(min))
    }

    fn shaped(id: &str, status: &str, rev: i32, rollout: &str, created_min: i64, reason: &str) -> DeploymentSnapshot {
        DeploymentSnapshot {
            rollout_state_reason: Some(reason.into()).filter(|r: &String| !r.is_empty()),
            ..dep(id, status, rev, rollout, &iso(created_min))
        }
    }

    /// What a decision came to, for table rows.
    fn verdict(d: &RollbackDecision) -> String {
        match d {
            RollbackDecision::Plan(p) => format!("plan {}", short(&p.to)),
            RollbackDecision::Follow(_) => "follow".into(),
            RollbackDecision::Stale(why) => format!("stale: {why}"),
            RollbackDecision::Refuse(why) => format!("refuse: {why}"),
        }
    }

    #[test]
    fn a_failed_deployment_trigger_acts_only_while_it_is_the_primary_unfinished_deployment() {
        const BREAKER: &str = "ECS deployment circuit breaker: task failed to start.";
        let kg = [completed(41, epoch(-60))];
        let r = revs(&[(40, true), (41, true), (42, true), (43, true)]);
        // (case, service runs, deployments, what the decision must say)
        let cases: Vec<(&str, i32, Vec<DeploymentSnapshot>, &str)> = vec![
            (
                "failed, no automatic rollback: still PRIMARY",
                42,
                vec![
                    shaped("ecs-svc/2", "PRIMARY", 42, "FAILED", 0, BREAKER),
                    shaped("ecs-svc/1", "ACTIVE", 41, "COMPLETED", -60, ""),
                ],
                "plan api:41",
            ),
            (
                "the event is ahead of DescribeServices: still IN_PROGRESS",
                42,
                vec![
                    shaped("ecs-svc/2", "PRIMARY", 42, "IN_PROGRESS", 0, ""),
                    shaped("ecs-svc/1", "ACTIVE", 41, "COMPLETED", -60, ""),
                ],
                "plan api:41",
            ),
            (
                "ECS rolled back and completed; the failed one drains",
                41,
                vec![
                    shaped("ecs-svc/3", "PRIMARY", 41, "COMPLETED", 4, "ECS deployment ecs-svc/3 completed."),
                    shaped("ecs-svc/2", "ACTIVE", 42, "FAILED", 0, BREAKER),
                ],
                "stale: deployment ecs-svc/2 is no longer the service's primary deployment (ECS already rolled back to api:41, deployment ecs-svc/3 COMPLETED); nothing to do",
            ),
            (
                "ECS rolled back and completed; the failed one is gone",
                41,
                vec![shaped("ecs-svc/3", "PRIMARY", 41, "COMPLETED", 4, "ECS deployment ecs-svc/3 completed.")],
                "stale: deployment ecs-svc/2 is no longer the service's primary deployment (the service now runs api:41, deployment ecs-svc/3 COMPLETED); nothing to do",
            ),
            (
                "a newer release replaced it",
                43,
                vec![
                    shaped("ecs-svc/4", "PRIMARY", 43, "IN_PROGRESS", 10, ""),
                    shaped("ecs-svc/2", "ACTIVE", 42, "FAILED", 0, "tasks failed to start"),
                ],
                "stale: deployment ecs-svc/2 is no longer the service's primary deployment (the service now runs api:43",
            ),
            (
                "ECS reports it completed",
                42,
                vec![shaped("ecs-svc/2", "PRIMARY", 42, "COMPLETED", 0, "")],
                "stale: deployment ecs-svc/2 has completed since (api:42 at steady state); nothing to do",
            ),
            (
                "ECS is rolling back right now",
                41,
                vec![
                    shaped(
                        "ecs-svc/3",
                        "PRIMARY",
                        41,
                        "IN_PROGRESS",
                        4,
                        "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1.",
                    ),
                    shaped("ecs-svc/2", "ACTIVE", 42, "FAILED", 0, BREAKER),
                ],
                "follow",
            ),
        ];
        for (case, runs, deployments, expected) in cases {
            let input = RollbackInput {
                service: service(runs, deployments),
                known_good: &kg,
                family_revisions: Some(&r),
                trigger: TriggerSubject { failed_deployment: Some("ecs-svc/2"), ..Default::default() },
                ..Default::default()
            };
            let got = verdict(&plan_rollback(&input));
            assert!(got.starts_with(expected), "{case}:\n got  {got}\n want {expected}");
        }
    }

    #[test]
    fn a_revision_trigger_acts_only_while_the_service_runs_that_revision() {
        let kg = [completed(40, epoch(-600))];
        let r = revs(&[(40, true), (41, true), (42, true)]);
        // (crash loop of, service runs, expected)
        let cases = [
            (42, 42, "plan api:40"),
            (42, 41, "stale: api:42 is no longer what the service runs (the service now runs api:41"),
        ];
        for (failing, runs, expected) in cases {
            let f = td(failing);
            let input = RollbackInput {
                service: service(runs, vec![shaped("ecs-svc/9", "PRIMARY", runs, "COMPLETED", 0, "")]),
                known_good: &kg,
                family_revisions: Some(&r),
                trigger: TriggerSubject { failing_revision: Some(&f), ..Default::default() },
                ..Default::default()
            };
            let got = verdict(&plan_rollback(&input));
            assert!(got.starts_with(expected), "{failing} on {runs}: {got}");
        }
    }

    #[test]
    fn an_alarm_after_a_deployment_acts_only_on_a_fresh_release_still_primary() {
        let r = revs(&[(40, true), (41, true), (42, true)]);
        let rev42 = td(42);
        // (case, deployments, known-good history, blamed deployment, expected)
        type Case<'a> = (&'a str, Vec<DeploymentSnapshot>, Vec<KnownGood>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (
                "a fresh release that completed, then broke",
                vec![shaped("ecs-svc/5", "PRIMARY", 42, "COMPLETED", 0, "")],
                vec![completed(41, epoch(-600)), completed(42, epoch(5))],
                "ecs-svc/5",
                "plan api:41",
            ),
            (
                "ECS's circuit-breaker rollback to a revision that had completed before",
                vec![shaped("ecs-svc/6", "PRIMARY", 42, "COMPLETED", 0, "ECS deployment ecs-svc/6 completed.")],
                vec![
                    completed(41, epoch(-900)),
                    KnownGood { completed_at: Some(epoch(3)), ..completed(42, epoch(-600)) },
                ],
                "ecs-svc/6",
                "stale: deployment ecs-svc/6 re-deployed api:42, which had reached steady state before",
            ),
            (
                "a rollback deployment that says so",
                vec![shaped(
                    "ecs-svc/6",
                    "PRIMARY",
                    42,
                    "COMPLETED",
                    0,
                    "ECS deployment circuit breaker: rollback completed.",
                )],
                vec![],
                "ecs-svc/6",
                "stale: deployment ecs-svc/6 is a rollback",
            ),
            (
                "replaced since the alarm's flow looked",
                vec![shaped("ecs-svc/7", "PRIMARY", 42, "IN_PROGRESS", 1, "")],
                vec![],
                "ecs-svc/5",
                "stale: deployment ecs-svc/5, the one the alarm followed, is no longer the service's primary deployment",
            ),
        ];
        for (case, deployments, history, blamed, expected) in cases {
            let input = RollbackInput {
                service: service(42, deployments),
                known_good: &history,
                family_revisions: Some(&r),
                trigger: TriggerSubject {
                    failing_revision: Some(&rev42),
                    recent_deployment: Some(blamed),
                    ..Default::default()
                },
                ..Default::default()
            };
            let got = verdict(&plan_rollback(&input));
            assert!(got.starts_with(expected), "{case}:\n got  {got}\n want {expected}");
        }
    }

    #[test]
    fn the_target_is_the_newest_revision_still_known_good() {
        let r = revs(&[(38, true), (39, true), (40, true), (41, true), (42, true)]);
        let failed =
            |k: KnownGood, at: i64| KnownGood { failed_at: Some(at), failed_deployment: Some("ecs-svc/f".into()), ..k };
        let away = |k: KnownGood, at: i64| KnownGood { rolled_away_at: Some(at), ..k };
        // (case, history, ledger rollbacks (from, at), expected)
        type Case<'a> = (&'a str, Vec<KnownGood>, Vec<(String, i64)>, &'a str);
        let cases: Vec<Case> = vec![
            (
                "the newest completion wins",
                vec![completed(39, epoch(-30)), completed(40, epoch(-90))],
                vec![],
                "plan api:39",
            ),
            (
                "a later completion of an older revision is newer",
                vec![completed(41, epoch(-90)), completed(39, epoch(-10))],
                vec![],
                "plan api:39",
            ),
            (
                "never the failing revision",
                vec![completed(42, epoch(-5)), completed(40, epoch(-90))],
                vec![],
                "plan api:40",
            ),
            (
                "a revision whose later deployment failed is not known-good",
                vec![failed(completed(41, epoch(-90)), epoch(-60)), completed(40, epoch(-200))],
                vec![],
                "plan api:40",
            ),
            (
                "a failure and a completion in the same second: the failure wins",
                vec![failed(completed(41, epoch(-60)), epoch(-60)), completed(40, epoch(-200))],
                vec![],
                "plan api:40",
            ),
            (
                "completed again after failing: known-good again",
                vec![failed(completed(41, epoch(-10)), epoch(-60)), completed(40, epoch(-200))],
                vec![],
                "plan api:41",
            ),
            (
                "rolled away from (history): not known-good",
                vec![away(completed(41, epoch(-90)), epoch(-30)), completed(40, epoch(-200))],
                vec![],
                "plan api:40",
            ),
            (
                "rolled away from (ledger): not known-good",
                vec![completed(41, epoch(-90)), completed(40, epoch(-200))],
                vec![(td(41), epoch(-30))],
                "plan api:40",
            ),
            (
                "rolled away from, then completed again",
                vec![completed(41, epoch(-10)), completed(40, epoch(-200))],
                vec![(td(41), epoch(-30))],
                "plan api:41",
            ),
            (
                "a failed revision is not an unverified target either",
                vec![KnownGood { task_definition: td(41), failed_at: Some(epoch(-5)), ..Default::default() }],
                vec![(td(40), epoch(-20))],
                "plan api:39",
            ),
        ];
        for (case, history, rollbacks, expected) in cases {
            let input = RollbackInput {
                service: service(42, vec![shaped("ecs-svc/2", "PRIMARY", 42, "FAILED", 0, "")]),
                known_good: &history,
                rollbacks: &rollbacks,
                family_revisions: Some(&r),
                trigger: TriggerSubject { failed_deployment: Some("ecs-svc/2"), ..Default::default() },
                ..Default::default()
            };
            let got = verdict(&plan_rollback(&input));
            assert!(got.starts_with(expected), "{case}:\n got  {got}\n want {expected}");
        }
    }

    #[test]
    fn a_failed_deployments_revision_is_never_a_target() {
        // ECS rolled back to 41 (PRIMARY); 42's failed deployment is still listed, ACTIVE.
        let r = revs(&[(41, true), (42, true)]);
        let input = RollbackInput {
            service: service(
                41,
                vec![
                    shaped("ecs-svc/3", "PRIMARY", 41, "COMPLETED", 4, ""),
                    shaped("ecs-svc/2", "ACTIVE", 42, "FAILED", 0, "tasks failed to start"),
                ],
            ),
            family_revisions: Some(&r),
            ..Default::default()
        };
        let got = verdict(&plan_rollback(&input));
        assert!(got.contains("api:42 is the revision of failed deployment ecs-svc/2"), "{got}");
        assert!(got.starts_with("refuse"), "{got}");
    }

    #[test]
    fn a_completion_is_recorded_for_the_revision_of_the_deployment_that_completed_and_only_while_listed() {
        let moto_like = ServiceSnapshot {
            // The local server leaves the PRIMARY deployment's revision stale; ECS does not.
            task_definition: Some(td(42)),
            deployments: vec![shaped("ecs-svc/2", "PRIMARY", 41, "IN_PROGRESS", 0, "")],
            ..Default::default()
        };
        let rolled_back = service(
            41,
            vec![
                shaped("ecs-svc/3", "PRIMARY", 41, "IN_PROGRESS", 4, ""),
                shaped("ecs-svc/2", "ACTIVE", 42, "COMPLETED", 0, ""),
            ],
        );
        let failed = service(41, vec![shaped("ecs-svc/2", "ACTIVE", 42, "FAILED", 0, "")]);
        // (service, completed deployment, revision or why not)
        let cases = [
            (&moto_like, "ecs-svc/2", Ok(td(42))),
            (&rolled_back, "ecs-svc/2", Ok(td(42))),
            (&rolled_back, "ecs-svc/3", Ok(td(41))),
            (&rolled_back, "ecs-svc/1", Err("no longer listed")),
            (&failed, "ecs-svc/2", Err("FAILED")),
        ];
        for (svc, id, expected) in cases {
            match (completed_revision(svc, id), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{id}"),
                (Err(why), Err(word)) => assert!(why.to_string().contains(word), "{id}: {why}"),
                (got, want) => panic!("{id}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn an_alarm_follows_the_primary_deployment_only_within_the_window() {
        let svc = service(42, vec![shaped("ecs-svc/5", "PRIMARY", 42, "COMPLETED", 0, "")]);
        let within = recent_deployment(&svc, epoch(30), 3600);
        assert_eq!(within, Some(RecentDeployment { deployment: "ecs-svc/5".into(), revision: td(42) }));
        assert_eq!(recent_deployment(&svc, epoch(61), 3600), None);
        let undated = service(42, vec![dep("ecs-svc/5", "PRIMARY", 42, "COMPLETED", "not a time")]);
        assert_eq!(recent_deployment(&undated, epoch(1), 3600), None);
    }

    // ---- Traffic-shifting strategies, over DescribeServices `deployments`
    // and ListServiceDeployments `serviceDeployments` (status PENDING,
    // IN_PROGRESS, ROLLBACK_IN_PROGRESS, …) as ECS documents them.

    /// A decision with its mechanism, for table rows.
    fn verdict_via(d: &RollbackDecision) -> String {
        match d {
            RollbackDecision::Plan(p) => format!(
                "plan {} via {}",
                short(&p.to),
                match p.mechanism {
                    Mechanism::StopServiceDeployment { .. } => "stop",
                    Mechanism::UpdateService => "update",
                }
            ),
            other => verdict(other),
        }
    }

    #[test]
    fn a_traffic_shifting_deployment_in_progress_is_stopped_with_rollback_never_replaced_by_update_service() {
        const ARN: &str = "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/api/r9i43YFjvgF_xlg7m2eJ1r";
        let kg = [completed(40, epoch(-600))];
        let r = revs(&[(40, true), (41, true), (42, true)]);
        let in_progress = [brief(ARN, "IN_PROGRESS")];
        let pending = [brief(ARN, "PENDING")];
        let rolling_back = [brief(ARN, "ROLLBACK_IN_PROGRESS")];
        let nothing: [ServiceDeploymentBrief; 0] = [];
        let green_over_blue = vec![
            shaped("ecs-svc/2", "PRIMARY", 42, "IN_PROGRESS", 0, ""),
            shaped("ecs-svc/1", "ACTIVE", 41, "COMPLETED", -60, ""),
        ];
        let completed_green = vec![shaped("ecs-svc/2", "PRIMARY", 42, "COMPLETED", 0, "")];
        let no_blue_listed = vec![shaped("ecs-svc/2", "PRIMARY", 42, "IN_PROGRESS", 0, "")];
        let avoid41 = [td(41)];
        let none: [String; 0] = [];
        // (case, strategy, deployments, service deployments, avoided, explicit target, expected)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Vec<DeploymentSnapshot>,
            ServiceDeployments<'a>,
            &'a [String],
            Option<&'a str>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "blue/green in progress: back to blue",
                Some("BLUE_GREEN"),
                green_over_blue.clone(),
                ServiceDeployments::Listed(&in_progress),
                &none,
                None,
                "plan api:41 via stop",
            ),
            (
                "linear in progress",
                Some("LINEAR"),
                green_over_blue.clone(),
                ServiceDeployments::Listed(&in_progress),
                &none,
                None,
                "plan api:41 via stop",
            ),
            (
                "canary pending",
                Some("CANARY"),
                green_over_blue.clone(),
                ServiceDeployments::Listed(&pending),
                &none,
                None,
                "plan api:41 via stop",
            ),
            (
                "rolling: UpdateService to known-good 40 (ROLLBACK would return to 41)",
                Some("ROLLING"),
                green_over_blue.clone(),
                ServiceDeployments::Listed(&in_progress),
                &none,
                None,
                "plan api:40 via update",
            ),
            (
                "blue/green finished (crash loop after it): a new deployment of the target",
                Some("BLUE_GREEN"),
                completed_green.clone(),
                ServiceDeployments::Listed(&nothing),
                &none,
                None,
                "plan api:40 via update",
            ),
            (
                "blue/green, unreadable, finished: UpdateService is safe",
                Some("BLUE_GREEN"),
                completed_green,
                ServiceDeployments::Unreadable("AccessDeniedException"),
                &none,
                None,
                "plan api:40 via update",
            ),
            (
                "blue/green, unreadable, maybe in progress",
                Some("BLUE_GREEN"),
                green_over_blue.clone(),
                ServiceDeployments::Unreadable("AccessDeniedException"),
                &none,
                None,
                "refuse: the service deploys BLUE_GREEN and whether a deployment of it is in progress is not known (ListServiceDeployments AccessDeniedException)",
            ),
            (
                "blue/green, not read",
                Some("CANARY"),
                green_over_blue.clone(),
                ServiceDeployments::NotRead,
                &none,
                None,
                "refuse: the service deploys CANARY and whether",
            ),
            (
                "ECS is rolling it back already",
                Some("BLUE_GREEN"),
                green_over_blue.clone(),
                ServiceDeployments::Listed(&rolling_back),
                &none,
                None,
                "follow",
            ),
            (
                "the blue revision is not listed",
                Some("BLUE_GREEN"),
                no_blue_listed,
                ServiceDeployments::Listed(&in_progress),
                &none,
                None,
                "refuse: a BLUE_GREEN deployment is in progress",
            ),
            (
                "the blue revision is one a failed signal named",
                Some("BLUE_GREEN"),
                green_over_blue.clone(),
                ServiceDeployments::Listed(&in_progress),
                &avoid41,
                None,
                "refuse: a BLUE_GREEN deployment is in progress and its rollback would return to api:41, which is excluded",
            ),
            (
                "a person names blue",
                Some("BLUE_GREEN"),
                green_over_blue.clone(),
                ServiceDeployments::Listed(&in_progress),
                &none,
                Some("api:41"),
                "plan api:41 via stop",
            ),
            (
                "a person names another revision mid-deployment",
                Some("BLUE_GREEN"),
                green_over_blue,
                ServiceDeployments::Listed(&in_progress),
                &none,
                Some("api:40"),
                "refuse: a BLUE_GREEN deployment is in progress: its rollback (StopServiceDeployment ROLLBACK) returns to api:41, not api:40",
            ),
        ];
        for (case, strategy, deployments, listed, avoid, explicit, expected) in cases {
            let mut svc = service(42, deployments);
            svc.deployment_strategy = strategy.map(str::to_string);
            let input = RollbackInput {
                service: svc,
                known_good: &kg,
                family_revisions: Some(&r),
                service_deployments: listed,
                avoid,
                explicit_target: explicit,
                ..Default::default()
            };
            let got = verdict_via(&plan_rollback(&input));
            assert!(got.starts_with(expected), "{case}:\n got  {got}\n want {expected}");
        }
    }

    #[test]
    fn a_crash_loops_revision_is_rolled_back_only_when_it_was_freshly_released() {
        let r = revs(&[(40, true), (41, true), (42, true)]);
        let rev42 = td(42);
        let short42 = "api:42".to_string();
        // (case, PRIMARY deployment of 42 (created at minute 0), known-good history, our rollbacks to, expected)
        type Case<'a> = (&'a str, Vec<DeploymentSnapshot>, Vec<KnownGood>, Vec<(String, i64)>, &'a str);
        let cases: Vec<Case> = vec![
            (
                "a fresh release crash-loops",
                vec![shaped("ecs-svc/9", "PRIMARY", 42, "IN_PROGRESS", 0, "")],
                vec![completed(40, epoch(-600))],
                vec![],
                "plan api:40",
            ),
            (
                "a fresh release that completed, then crash-loops",
                vec![shaped("ecs-svc/9", "PRIMARY", 42, "COMPLETED", 0, "")],
                vec![completed(40, epoch(-600)), completed(42, epoch(5))],
                vec![],
                "plan api:40",
            ),
            (
                "a force-deploy of a revision that reached steady state before",
                vec![shaped("ecs-svc/9", "PRIMARY", 42, "COMPLETED", 0, "")],
                vec![completed(40, epoch(-900)), completed(42, epoch(-600))],
                vec![],
                "stale: deployment ecs-svc/9 re-deployed api:42, which had reached steady state before",
            ),
            (
                "ECS's circuit-breaker rollback onto it",
                vec![shaped(
                    "ecs-svc/9",
                    "PRIMARY",
                    42,
                    "COMPLETED",
                    0,
                    "ECS deployment circuit breaker: rollback completed.",
                )],
                vec![completed(40, epoch(-900))],
                vec![],
                "stale: deployment ecs-svc/9 is a rollback",
            ),
            (
                "our own rollback onto it (an unverified target)",
                vec![shaped("ecs-svc/9", "PRIMARY", 42, "IN_PROGRESS", 0, "")],
                vec![completed(40, epoch(-900))],
                vec![(short42.clone(), epoch(0) - 2)],
                "stale: deployment ecs-svc/9 of api:42 is our rollback to it",
            ),
            (
                "our rollback to it came after the deployment: not the reason for it",
                vec![shaped("ecs-svc/9", "PRIMARY", 42, "IN_PROGRESS", 0, "")],
                vec![completed(40, epoch(-900))],
                vec![(short42.clone(), epoch(10))],
                "plan api:40",
            ),
            (
                "no deployment listed",
                vec![],
                vec![completed(40, epoch(-900))],
                vec![],
                "stale: no deployment of api:42 is listed by the service",
            ),
        ];
        for (case, deployments, history, ours, expected) in cases {
            let input = RollbackInput {
                service: service(42, deployments),
                known_good: &history,
                family_revisions: Some(&r),
                rollback_targets: &ours,
                trigger: TriggerSubject { failing_revision: Some(&rev42), ..Default::default() },
                ..Default::default()
            };
            let got = verdict(&plan_rollback(&input));
            assert!(got.starts_with(expected), "{case}:\n got  {got}\n want {expected}");
        }
    }

    #[test]
    fn a_revision_a_failed_signal_named_is_never_a_target() {
        let r = revs(&[(39, true), (40, true), (41, true), (42, true)]);
        let kg = [completed(41, epoch(-60)), completed(40, epoch(-600))];
        let deployments = vec![
            shaped("ecs-svc/2", "PRIMARY", 42, "FAILED", 0, ""),
            shaped("ecs-svc/1", "ACTIVE", 41, "COMPLETED", -60, ""),
        ];
        // (avoided, expected)
        let cases: [(Vec<String>, &str); 4] = [
            (vec![], "plan api:41"),
            (vec!["api:41".into()], "plan api:40"),
            (vec![td(41), "api:40".into()], "plan api:39"),
            (vec!["api:41".into(), "api:40".into(), "api:39".into()], "refuse: no safe rollback target"),
        ];
        for (avoid, expected) in cases {
            let input = RollbackInput {
                service: service(42, deployments.clone()),
                known_good: &kg,
                family_revisions: Some(&r),
                avoid: &avoid,
                trigger: TriggerSubject { failed_deployment: Some("ecs-svc/2"), ..Default::default() },
                ..Default::default()
            };
            let got = verdict(&plan_rollback(&input));
            assert!(got.starts_with(expected), "{avoid:?}: {got}");
            if let Some(named) = avoid.first() {
                assert!(
                    got.starts_with("plan") || got.contains("a failed signal of this incident named"),
                    "{avoid:?}: {got}"
                );
                let explicit = RollbackInput { explicit_target: Some(named.as_str()), ..input.clone() };
                assert!(verdict(&plan_rollback(&explicit)).starts_with("refuse"), "a person's target too: {named}");
            }
        }
    }

    #[test]
    fn the_failing_revision_is_the_one_the_trigger_names() {
        // DescribeServices without the service's own taskDefinition (an
        // inconsistent read): the failed deployment's revision, as listed.
        let r = revs(&[(40, true), (41, true), (42, true)]);
        let mut svc = service(
            42,
            vec![
                shaped("ecs-svc/2", "PRIMARY", 42, "IN_PROGRESS", 0, ""),
                shaped("ecs-svc/1", "ACTIVE", 41, "COMPLETED", -60, ""),
            ],
        );
        svc.task_definition = None;
        let input = RollbackInput {
            service: svc,
            family_revisions: Some(&r),
            trigger: TriggerSubject { failed_deployment: Some("ecs-svc/2"), ..Default::default() },
            ..Default::default()
        };
        let RollbackDecision::Plan(p) = plan_rollback(&input) else { panic!("{:?}", plan_rollback(&input)) };
        assert_eq!((short(&p.from), short(&p.to)), ("api:42".to_string(), "api:41".to_string()));
        // A crash loop names its task's revision; the plan rolls away from that one.
        let rev42 = "api:42".to_string();
        let crash = RollbackInput {
            service: service(42, vec![shaped("ecs-svc/2", "PRIMARY", 42, "IN_PROGRESS", 0, "")]),
            family_revisions: Some(&r),
            trigger: TriggerSubject { failing_revision: Some(&rev42), ..Default::default() },
            ..Default::default()
        };
        let RollbackDecision::Plan(p) = plan_rollback(&crash) else { panic!() };
        assert_eq!(p.from, "api:42");
    }

    #[test]
    fn a_single_definite_failure_rolls_back_only_a_revision_deployed_within_the_window() {
        let r = revs(&[(41, true), (42, true)]);
        let kg = [completed(41, epoch(-600))];
        let rev42 = td(42);
        // (case, the deployment of api:42 created at minute, window since minute, expected)
        let cases = [
            ("deployed ten minutes ago, window an hour", -10, Some(-60), "plan api:41"),
            (
                "deployed two hours ago, window an hour",
                -120,
                Some(-60),
                "stale: api:42 came in with deployment ecs-svc/2",
            ),
            ("a crash loop has no such bound", -120, None, "plan api:41"),
        ];
        for (case, created, since, expected) in cases {
            let input = RollbackInput {
                service: service(
                    42,
                    vec![
                        shaped("ecs-svc/2", "PRIMARY", 42, "IN_PROGRESS", created, ""),
                        shaped("ecs-svc/1", "ACTIVE", 41, "COMPLETED", -700, ""),
                    ],
                ),
                known_good: &kg,
                family_revisions: Some(&r),
                trigger: TriggerSubject {
                    failing_revision: Some(&rev42),
                    deployed_since: since.map(epoch),
                    ..Default::default()
                },
                ..Default::default()
            };
            let got = verdict(&plan_rollback(&input));
            assert!(got.starts_with(expected), "{case}:\n got  {got}\n want {expected}");
        }
    }

    #[test]
    fn a_first_deployment_is_named_as_one_that_cannot_be_rolled_back() {
        let rev1 = "arn:aws:ecs:us-east-1:111122223333:task-definition/api:1".to_string();
        let input = RollbackInput {
            service: ServiceSnapshot {
                task_definition: Some(rev1.clone()),
                deployments: vec![DeploymentSnapshot {
                    id: "ecs-svc/7".into(),
                    status: "PRIMARY".into(),
                    task_definition: rev1.clone(),
                    rollout_state: Some("IN_PROGRESS".into()),
                    created_at: Some(iso(-5)),
                    ..Default::default()
                }],
                ..Default::default()
            },
            family_revisions: Some(&[]),
            trigger: TriggerSubject { failing_revision: Some(&rev1), ..Default::default() },
            ..Default::default()
        };
        let got = verdict(&plan_rollback(&input));
        assert!(
            got.contains("deployment ecs-svc/7 is the service's first") && got.contains("cannot be rolled back"),
            "{got}"
        );
    }
}
