//! The one engine every mutation goes through. Checks in order: mode, hold,
//! lease lock, budget and cooldown, then the action's plan; acts (or only
//! plans) and writes every decision to the ledger. The caller notifies: the
//! returned record goes into its alert, update or runbook message.
//!
//! Nothing acts unrecorded: under the lock an `executing` entry goes into the
//! ledger before the mutating call, and is finished (executed or failed)
//! after it. An `executing` entry found later — its invocation died, or could
//! not finish it — is an action whose outcome is unknown: it counts as
//! executed for budgets and cooldowns, and before anything is decided on it
//! the service is read under the lock and the entry recorded executed or
//! failed ([`super::verify_unfinished`]). It is never repeated blindly.
//!
//! A mutating call whose outcome is unknown — a timeout, a broken
//! connection, a 5xx after sending, an unreadable answer — is verified by
//! reading the service back while the lock is still held: recorded executed
//! if it took effect (no hold; budgets, cooldowns and the rolled-away mark
//! count it), failed and held only if it did not. A clear refusal (a 4xx
//! such as InvalidParameterException) is failed and held without a read.
//! When even the read-back fails, the entry stays `executing` (counted as
//! executed, verified by the next action) and the result says the outcome is
//! unknown ([`ActionResult::outcome_unknown`]) — never "failed and held".
//!
//! Services ECS does not deploy (`deploymentController` `CODE_DEPLOY`,
//! `EXTERNAL`) are never sent a rollback or a forced deployment: refused
//! before any call, saying how that service is rolled back
//! ([`super::controller_refusal`]); scaling goes ahead.
//!
//! A trigger that no longer describes the service — a failed deployment no
//! longer PRIMARY, a revision the service no longer runs, an alarm's
//! "recent deployment" that is a rollback, a crash loop on a revision that
//! was not freshly released — is skipped and says why
//! ([`ActionRequest::trigger_deployment`], [`ActionRequest::failing_revision`],
//! [`ActionRequest::recent_deployment`]; decided by the pure planner).
//! Revisions any failed signal of the incident named
//! ([`ActionRequest::avoid_revisions`]) are never a rollback target.
//!
//! The hold is read twice for an automatic action: with the other safety
//! records before deciding, and again under the lock, so that a hold another
//! invocation set in between stops it.
//!
//! Critical path of an automatic rollback: DescribeServices, then the reads
//! the plan needs (hold, ledger, known-good history, revisions, service
//! deployments) concurrently, the lock, the ledger re-read under it, the
//! `executing` entry, and the mutating call. Pre-action evidence is written
//! concurrently with the call; the rolled-away mark on the known-good history,
//! logs and the incident bundle come after.

use serde_json::json;

use super::rollback_plan::{
    Mechanism, RollbackDecision, RollbackInput, TriggerSubject, deployment_revision, plan_rollback, td_key,
};
use super::rollback_plan::{ServiceDeployments, family_can_matter, shifts_traffic};
use super::scale_plan::{ScaleBounds, ScaleDecision, plan_scale};
use super::{
    ActionKind, Hold, LedgerEntry, LedgerStatus, Mode, Origin, SafetyReads, SafetyRefusal, check_budget, check_safety,
    controller_refusal, failed_call_detail, resolve_mode, service_moved, verify_lost_answer, verify_unfinished,
};
use crate::adapters::ecs::{ServiceChange, describe_service};
use crate::adapters::state::{LockOutcome, ServiceFacts, StateStore};
use crate::adapters::{Clients, MutationError, autoscaling, ecs};
use crate::arn::last_segment;
use crate::config::Config;
use crate::error::AutopilotError;
use crate::outcome::{ActionRecord, ActionStatus};
use crate::snapshot::{HookAction, ServiceDeploymentBrief, ServiceSnapshot};
use crate::time::{iso, now};

/// What the engine needs from the function it runs in: the clients, the
/// state table, the configuration and the function's name (lock owners,
/// metrics). Built by the application context.
#[derive(Clone, Copy)]
pub struct Engine<'a> {
    pub function: &'static str,
    pub config: &'a Config,
    pub clients: &'a Clients,
    pub state: &'a StateStore,
}

#[derive(Debug, Clone)]
pub struct ActionRequest<'a> {
    pub kind: ActionKind,
    pub cluster: &'a str,
    pub service: &'a str,
    pub origin: Origin,
    /// The request's own dry-run (runbook `dry_run`).
    pub dry_run: bool,
    pub incident: Option<&'a str>,
    pub desired_count: Option<i32>,
    pub task_definition: Option<&'a str>,
    pub confirm: Option<&'a str>,
    /// The triggering event says ECS's circuit breaker is rolling back.
    pub ecs_rolling_back: bool,
    /// A runbook request's idempotency key and who asked; in the ledger.
    pub request_id: Option<&'a str>,
    pub requested_by: Option<&'a str>,
    /// SERVICE_DEPLOYMENT_FAILED: the event's deployment id. A rollback acts
    /// only while it is the service's PRIMARY, unfinished deployment.
    pub trigger_deployment: Option<&'a str>,
    /// The revision the signal is about — a crash loop's failing task
    /// definition, the revision an alarm followed. A rollback acts only while
    /// the service runs it and, without `recent_deployment` (a crash loop),
    /// only when the deployment that brought it in was a fresh release.
    pub failing_revision: Option<&'a str>,
    /// An alarm that follows a deployment: the deployment it blames. A
    /// rollback acts only while it is PRIMARY and a fresh release (not a
    /// redeploy of a revision that reached steady state before it).
    pub recent_deployment: Option<&'a str>,
    /// A single definite failure of `failing_revision`: act only when the
    /// deployment that brought it in is within the service's rollback window.
    pub within_rollback_window: bool,
    /// Revisions any failed signal of the incident named (`family:revision`
    /// or ARNs): never a rollback target.
    pub avoid_revisions: &'a [String],
    /// continue-deployment / rollback-deployment: the paused hook to answer.
    pub hook: Option<HookTarget<'a>>,
    /// What the caller read of the service in this invocation: planning
    /// uses it while fresh; acting reads the service, the ledger and the
    /// hold again under the lock.
    pub prior: PriorReads<'a>,
}

/// Reads an incident made moments before asking the engine to act.
#[derive(Debug, Clone, Copy, Default)]
pub struct PriorReads<'a> {
    /// The service as the diagnosis described it, and when (epoch seconds).
    pub service: Option<(&'a ServiceSnapshot, i64)>,
    /// The known-good history and ledger, read together.
    pub facts: Option<&'a ServiceFacts>,
}

impl<'a> PriorReads<'a> {
    fn service_at(&self, now: i64) -> Option<&'a ServiceSnapshot> {
        self.service.filter(|(_, at)| crate::adapters::state::facts::fresh(*at, now)).map(|(s, _)| s)
    }
    fn facts_at(&self, now: i64) -> Option<&'a ServiceFacts> {
        self.facts.filter(|f| f.fresh_at(now))
    }
}

/// A paused deployment's PAUSE hook, as ContinueServiceDeployment names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookTarget<'a> {
    pub hook_id: &'a str,
    pub service_deployment_arn: &'a str,
}

impl<'a> ActionRequest<'a> {
    pub fn automatic(kind: ActionKind, cluster: &'a str, service: &'a str, trigger: impl Into<String>) -> Self {
        Self {
            kind,
            cluster,
            service,
            origin: Origin::Automatic { trigger: trigger.into() },
            dry_run: false,
            incident: None,
            desired_count: None,
            task_definition: None,
            confirm: None,
            ecs_rolling_back: false,
            request_id: None,
            requested_by: None,
            trigger_deployment: None,
            failing_revision: None,
            recent_deployment: None,
            within_rollback_window: false,
            avoid_revisions: &[],
            hook: None,
            prior: PriorReads::default(),
        }
    }
}

/// What the engine decided and did.
#[derive(Debug, Clone)]
pub struct ActionResult {
    pub record: ActionRecord,
    /// The plan as data (dry-run returns it unchanged).
    pub plan: Option<serde_json::Value>,
    /// A mutating call failed — refused, or verified as not applied: the
    /// caller escalates to SEV1; automatic actions on this service are held
    /// until a person clears the hold.
    pub failed: bool,
    /// A mutating call's answer was lost and the service could not be read
    /// back: whether it took effect is unknown (the record says `failed`,
    /// nothing is held, the ledger keeps it `executing` — counted as
    /// executed — until the next action verifies it). A person should look.
    pub outcome_unknown: bool,
    /// The revision of [`ActionRequest::trigger_deployment`] as the service
    /// listed it (`None` when it is no longer listed, or the service was not read).
    pub trigger_revision: Option<String>,
}

/// How a decision ended, before `run` records it.
struct Decided {
    status: ActionStatus,
    detail: String,
    planned: Option<Planned>,
    failed: bool,
    /// The call's outcome is unknown: its `executing` entry stays executing.
    unknown: bool,
}

impl Decided {
    fn with_plan(mut self, planned: &Planned) -> Self {
        self.planned = Some(planned.clone());
        self
    }
}

/// An early end of the decision (skipped, or failed before acting).
fn stop(status: ActionStatus, detail: impl Into<String>) -> Decided {
    Decided { status, detail: detail.into(), planned: None, failed: false, unknown: false }
}

type Step<T> = Result<T, Decided>;

/// What a decision holds that `run` settles: the lock, and the `executing`
/// ledger entry written before the mutating call (its sort key); and what it
/// saw of the trigger, for the caller.
#[derive(Default)]
struct Held {
    lock_owner: Option<String>,
    executing: Option<String>,
    trigger_revision: Option<String>,
}

fn record(kind: ActionKind, status: ActionStatus, detail: impl Into<String>) -> ActionRecord {
    ActionRecord { action: kind.as_str().into(), status, detail: detail.into() }
}

fn tag<'s>(service: &'s ServiceSnapshot, key: &str) -> Option<&'s str> {
    // IAM compares tag keys case-insensitively; so do we, to agree with it.
    service.tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

/// What a planned action will do.
#[derive(Clone)]
enum Planned {
    Rollback(super::rollback_plan::RollbackPlan),
    Scale(super::scale_plan::ScalePlan),
    ForceDeploy {
        task_definition: Option<String>,
    },
    ScaleToZero {
        from: i32,
    },
    /// ContinueServiceDeployment on a paused hook.
    Hook {
        hook_id: String,
        service_deployment_arn: String,
        action: HookAction,
    },
}

impl Planned {
    fn describe(&self, service: &str) -> String {
        match self {
            Self::Rollback(p) => p.describe(),
            Self::Scale(p) => format!(
                "scale {service} desired count {} -> {}{}",
                p.from,
                p.to,
                if p.limited_by.is_empty() {
                    String::new()
                } else {
                    format!(" (limited by {})", p.limited_by.join(", "))
                }
            ),
            Self::ForceDeploy { task_definition } => format!(
                "force a new deployment of {service} on {}",
                task_definition
                    .as_deref()
                    .and_then(td_key)
                    .map(|(f, r)| format!("{f}:{r}"))
                    .unwrap_or_else(|| "its current revision".into())
            ),
            Self::ScaleToZero { from } => format!("scale {service} to zero ({from} -> 0)"),
            Self::Hook { hook_id, service_deployment_arn, action } => format!(
                "{} the paused deployment {} of {service} (ContinueServiceDeployment {} on hook {hook_id})",
                match action {
                    HookAction::Continue => "continue",
                    HookAction::Rollback => "roll back",
                },
                last_segment(service_deployment_arn),
                action.as_str()
            ),
        }
    }

    fn as_json(&self) -> serde_json::Value {
        match self {
            Self::Rollback(p) => json!({"rollback": p}),
            Self::Scale(p) => json!({"scale": p}),
            Self::ForceDeploy { task_definition } => json!({"force_deploy": {"task_definition": task_definition}}),
            Self::ScaleToZero { from } => json!({"scale_to_zero": {"from": from, "to": 0}}),
            Self::Hook { hook_id, service_deployment_arn, action } => json!({"continue_service_deployment": {
                "hook_id": hook_id, "service_deployment_arn": service_deployment_arn, "action": action.as_str()}}),
        }
    }

    fn endpoints(&self) -> (Option<String>, Option<String>) {
        match self {
            Self::Rollback(p) => (Some(p.from.clone()), Some(p.to.clone())),
            Self::Scale(p) => (Some(p.from.to_string()), Some(p.to.to_string())),
            Self::ForceDeploy { task_definition } => (task_definition.clone(), task_definition.clone()),
            Self::ScaleToZero { from } => (Some(from.to_string()), Some("0".into())),
            Self::Hook { hook_id, action, .. } => (Some(hook_id.clone()), Some(action.as_str().into())),
        }
    }
}

/// Run one action request through the engine.
pub async fn run(app: &Engine<'_>, req: &ActionRequest<'_>) -> ActionResult {
    let t = now();
    let mut held = Held::default();
    let decided = match decide(app, req, t, &mut held).await {
        Ok(d) | Err(d) => d,
    };
    let Decided { status, mut detail, planned, failed, unknown } = decided;
    let (from, to) = planned.as_ref().map(Planned::endpoints).unwrap_or((None, None));
    let recorded = match &held.executing {
        // The entry written before the call: finish it with what happened
        // (an unknown outcome stays executing, with what is known).
        Some(key) => {
            let ledger_status = if unknown { LedgerStatus::Executing } else { status.into() };
            app.state
                .actions()
                .finish_ledger(req.cluster, req.service, key, ledger_status, &detail, now())
                .await
                .map(|_| ())
        }
        None => {
            let entry = LedgerEntry {
                at: t,
                action: req.kind,
                status: status.into(),
                automatic: req.origin.is_automatic(),
                from,
                to,
                detail: detail.clone(),
                key: None,
                announced: false,
            };
            app.state
                .actions()
                .append_ledger(req.cluster, req.service, &entry, &ledger_extra(req, &held))
                .await
                .map(|_| ())
        }
    };
    if let Err(e) = recorded {
        tracing::error!(cluster = req.cluster, service = req.service, error = %e, "ledger write failed");
        if held.executing.is_some() {
            detail.push_str(&format!(
                "; ledger not updated ({e}): the entry stays executing, counted as executed until verified"
            ));
        }
    }
    // Every execution is in the ledger (at least as executing) before the lock goes.
    if let Some(owner) = &held.lock_owner
        && let Err(e) = app.state.actions().release_lock(req.cluster, req.service, owner).await
    {
        // The lease expires on its own; until then the service is only locked, never double-acted.
        tracing::warn!(cluster = req.cluster, service = req.service, error = %e, "lock not released");
    }
    tracing::info!(
        cluster = req.cluster, service = req.service, action = req.kind.as_str(), status = status.as_str(),
        origin = %req.origin.label(), incident = req.incident.unwrap_or(""), decision = "action", "{detail}"
    );
    crate::telemetry::emit_metrics(
        app.function,
        &[("Action", req.kind.as_str()), ("Status", status.as_str())],
        &[("Actions", 1.0, "Count")],
    );
    ActionResult {
        record: record(req.kind, status, detail),
        plan: planned.as_ref().map(Planned::as_json),
        failed,
        outcome_unknown: unknown,
        trigger_revision: held.trigger_revision,
    }
}

/// Who asked, for the ledger.
fn ledger_extra(req: &ActionRequest<'_>, held: &Held) -> Vec<(&'static str, String)> {
    let mut extra = vec![("origin", req.origin.label())];
    if let Some(i) = req.incident {
        extra.push(("incident", i.to_string()));
    }
    if let Some(id) = req.request_id {
        extra.push(("request_id", id.to_string()));
    }
    if let Some(by) = req.requested_by {
        extra.push(("requested_by", by.to_string()));
    }
    if let Some(owner) = &held.lock_owner {
        extra.push(("owner", owner.clone()));
    }
    extra
}

/// Take the service's lease lock for this invocation; the lease runs from
/// now, the moment of acquisition, past this invocation's deadline.
async fn take_lock(app: &Engine<'_>, req: &ActionRequest<'_>, held: &mut Held) -> Step<()> {
    // One owner per invocation: a lock bearing it after a lost response is ours.
    let owner = format!("{}:{}", app.function, crate::invocation::token());
    let acquired_at = now();
    let lease_until = crate::invocation::lease_until(
        acquired_at,
        crate::invocation::deadline_ms(),
        app.config.settings.function_timeout_seconds,
    );
    match app.state.actions().acquire_lock(req.cluster, req.service, &owner, acquired_at, lease_until).await {
        Ok(LockOutcome::Acquired) => {
            held.lock_owner = Some(owner);
            Ok(())
        }
        Ok(LockOutcome::HeldBy(holder)) => {
            Err(stop(ActionStatus::Skipped, format!("another action holds the lock ({holder}); not acting twice")))
        }
        Err(e) => Err(stop(ActionStatus::Skipped, format!("lock unavailable: {e}"))),
    }
}

/// Settle the service's unfinished (`executing`) actions left by an
/// invocation that died: under the lock, each is verified against the
/// service and recorded executed or failed, so that the incident can
/// announce it. `Ok(false)`: the lock is held (its holder is alive and
/// finishes its own entry), nothing settled now.
pub async fn settle_unfinished(app: &Engine<'_>, cluster: &str, service: &str) -> Result<bool, AutopilotError> {
    let req = ActionRequest::automatic(ActionKind::Rollback, cluster, service, "settle unfinished actions");
    let mut held = Held::default();
    if take_lock(app, &req, &mut held).await.is_err() {
        return Ok(false);
    }
    let mut snapshot = describe_service(app.clients, cluster, service).await.map_err(AutopilotError::Aws);
    let settled = match &mut snapshot {
        Ok(snap) => resolve_unfinished(app, &req, now(), snap).await.is_ok(),
        Err(_) => false,
    };
    if let Some(owner) = &held.lock_owner
        && let Err(e) = app.state.actions().release_lock(cluster, service, owner).await
    {
        tracing::warn!(cluster, service, error = %e, "lock not released");
    }
    snapshot.map(|_| settled)
}

/// Under the lock: the ledger as it is now, with every unfinished
/// (`executing`) action verified against the service — read again — and
/// recorded executed or failed.
async fn resolve_unfinished(
    app: &Engine<'_>,
    req: &ActionRequest<'_>,
    t: i64,
    service: &mut ServiceSnapshot,
) -> Step<Vec<LedgerEntry>> {
    let mut ledger = match app.state.actions().ledger_since(req.cluster, req.service, t - 24 * 3600).await {
        Ok(l) => l,
        // Without the ledger the budget cannot be checked: no automatic action on a guess.
        Err(e) if req.origin.is_automatic() => {
            return Err(stop(ActionStatus::Skipped, format!("ledger unreadable, budget unknown: {e}")));
        }
        Err(e) => {
            tracing::warn!(cluster = req.cluster, service = req.service, error = %e, "ledger unreadable under the lock");
            return Ok(Vec::new());
        }
    };
    if !ledger.iter().any(|e| e.status == LedgerStatus::Executing) {
        return Ok(ledger);
    }
    *service = describe_service(app.clients, req.cluster, req.service).await.map_err(|e| {
        stop(ActionStatus::Failed, format!("cannot read the service to verify an unfinished action: {e}"))
    })?;
    for e in ledger.iter_mut().filter(|e| e.status == LedgerStatus::Executing) {
        let (status, why) = verify_unfinished(e, service);
        let detail = format!("{} | {why}", e.detail);
        tracing::info!(
            cluster = req.cluster,
            service = req.service,
            action = e.action.as_str(),
            status = status.as_str(),
            decision = "unfinished-action-verified",
            "{why}"
        );
        if let Some(key) = &e.key
            && let Err(err) =
                app.state.actions().finish_ledger(req.cluster, req.service, key, status, &detail, now()).await
        {
            // Decided on as verified here; left executing there, the next action verifies it again.
            tracing::warn!(cluster = req.cluster, service = req.service, error = %err, "verification not recorded");
        }
        e.status = status;
        e.detail = detail;
    }
    Ok(ledger)
}

async fn decide(app: &Engine<'_>, req: &ActionRequest<'_>, t: i64, held: &mut Held) -> Step<Decided> {
    let kind = req.kind;
    // The diagnosis's description, moments old, plans; acting reads it again under the lock.
    let planned_on_prior = req.prior.service_at(t);
    let mut service = match planned_on_prior {
        Some(s) => s.clone(),
        None => describe_service(app.clients, req.cluster, req.service)
            .await
            .map_err(|e| stop(ActionStatus::Failed, format!("cannot read the service before acting: {e}")))?,
    };
    let prior_facts = req.prior.facts_at(t);
    held.trigger_revision = req.trigger_deployment.and_then(|d| deployment_revision(&service, d)).map(str::to_string);
    let (mode, mode_why) = resolve_mode(app.config.dry_run, tag(&service, "autopilot:mode"), req.dry_run);
    if mode == Mode::Off {
        return Err(stop(ActionStatus::Skipped, format!("mode off: {mode_why}")));
    }
    if kind == ActionKind::ScaleToZero && req.confirm != Some(req.service) {
        return Err(stop(
            ActionStatus::Skipped,
            format!("scale-to-zero needs \"confirm\": \"{}\" (the service name); nothing done", req.service),
        ));
    }
    // Who deploys the service decides what may be sent to it at all: refused before any call.
    if let Some(why) = controller_refusal(kind, &service) {
        return Err(stop(ActionStatus::Skipped, why));
    }
    let automatic = req.origin.is_automatic();
    let limits = &app.config.settings.limits;

    // Reads the decision needs, concurrently. The family's revisions only
    // where they can change it (with the caller's known-good history at hand,
    // a first revision with nothing to return to has no target to check).
    let family = service.task_definition.as_deref().and_then(td_key).map(|(f, _)| f);
    let family_matters = match prior_facts.map(|f| f.known_good()) {
        Some(Ok(known_good)) => family_can_matter(
            &service,
            &known_good,
            req.task_definition,
            &TriggerSubject {
                failed_deployment: req.trigger_deployment,
                failing_revision: req.failing_revision,
                ..Default::default()
            },
        ),
        _ => true,
    };
    let (hold, (ledger, known_good), revisions, in_progress, autoscaling_max) = tokio::join!(
        async {
            // A person's action is not held; an enforced one reads the hold
            // under the lock, where it counts, and a dry run reads it here.
            if !automatic || mode == Mode::Auto {
                return None;
            }
            Some(
                app.state
                    .actions()
                    .hold(req.cluster, req.service)
                    .await
                    .map(|h| h.map(|(since, reason)| Hold { since, reason })),
            )
        },
        async {
            // The ledger, and for a rollback the known-good history: the
            // caller's fresh read, else one read of both.
            let since = t - 24 * 3600;
            let rollback = kind == ActionKind::Rollback;
            let read;
            let facts = match prior_facts {
                Some(f) => Some(f),
                None if rollback => {
                    read = app.state.service_facts(req.cluster, req.service).await;
                    Some(&read)
                }
                None => None,
            };
            match facts {
                Some(f) => (f.ledger_since(since), rollback.then(|| f.known_good())),
                None => (app.state.actions().ledger_since(req.cluster, req.service, since).await, None),
            }
        },
        async {
            match (&family, kind) {
                (Some(f), ActionKind::Rollback) if family_matters => Some(ecs::active_revisions(app.clients, f).await),
                _ => None,
            }
        },
        async {
            // Worth asking while a rolling deployment from a completed one is under way
            // (StopServiceDeployment(ROLLBACK) applies to it), and always for a
            // traffic-shifting strategy (UpdateService must never replace one in progress).
            let rollout_from_completed = service
                .deployments
                .iter()
                .any(|d| d.status == "ACTIVE" && d.rollout_state.as_deref() == Some("COMPLETED"));
            if kind == ActionKind::Rollback && (rollout_from_completed || shifts_traffic(&service)) {
                let listed = ecs::unfinished_service_deployments(app.clients, req.cluster, req.service).await;
                if let Err(e) = &listed {
                    tracing::info!(cluster = req.cluster, service = req.service, error = %e, "service deployments unavailable");
                }
                Some(listed)
            } else {
                None
            }
        },
        async {
            if kind != ActionKind::Scale {
                return None;
            }
            Some(autoscaling::max_capacity(app.clients, req.cluster, req.service).await.map_err(AutopilotError::Aws))
        },
    );
    // Unreadable safety records stop an automatic action; a person's goes on, told what was missing.
    let facts = match check_safety(automatic, SafetyReads { hold, ledger, known_good, autoscaling_max }) {
        Ok(f) => f,
        Err(why) => return Err(stop(ActionStatus::Skipped, why.to_string())),
    };
    // Which revisions are ACTIVE decides which targets are valid: unreadable,
    // an automatic rollback cannot verify its target and does nothing.
    let mut notes = facts.notes.clone();
    let revisions = match revisions {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) if automatic => {
            return Err(stop(
                ActionStatus::Skipped,
                format!(
                    "the family's ACTIVE revisions are unreadable ({e}): the rollback target cannot be verified; nothing done"
                ),
            ));
        }
        Some(Err(e)) => {
            notes.push(format!("ACTIVE revisions unreadable ({e}); the target's status was not checked"));
            None
        }
        None => None,
    };
    let noted = |detail: String| {
        if notes.is_empty() { detail } else { format!("{detail} (note: {})", notes.join("; ")) }
    };
    let mut ledger = facts.ledger.clone();
    // Unfinished actions first: verified against the service before anything is decided on them.
    if ledger.iter().any(|e| e.status == LedgerStatus::Executing) {
        if mode == Mode::DryRun {
            // A dry run records nothing: verified in memory only.
            for e in ledger.iter_mut().filter(|e| e.status == LedgerStatus::Executing) {
                let (status, why) = verify_unfinished(e, &service);
                e.status = status;
                e.detail = format!("{} | {why}", e.detail);
            }
        } else {
            take_lock(app, req, held).await?;
            ledger = resolve_unfinished(app, req, t, &mut service).await?;
        }
    }
    if automatic && let Err(why) = check_budget(kind, &ledger, t, limits) {
        return Err(stop(ActionStatus::Skipped, why.to_string()));
    }

    let planned = match kind {
        ActionKind::Rollback => {
            let window_start = t - limits.rollback_window_seconds;
            let rollbacks: Vec<&LedgerEntry> = ledger
                .iter()
                .filter(|e| e.action == ActionKind::Rollback && e.status.may_have_acted() && e.at >= window_start)
                .collect();
            let rolled_away_from: Vec<String> = rollbacks.iter().filter_map(|e| e.from.clone()).collect();
            let last_target = rollbacks.last().and_then(|e| e.to.clone());
            // Every rollback of ours the ledger holds, window or not: its `from` is not known-good.
            let ever_rolled_away: Vec<(String, i64)> = ledger
                .iter()
                .filter(|e| e.action == ActionKind::Rollback && e.status.may_have_acted())
                .filter_map(|e| Some((e.from.clone()?, e.at)))
                .collect();
            let rollback_targets: Vec<(String, i64)> = ledger
                .iter()
                .filter(|e| e.action == ActionKind::Rollback && e.status.may_have_acted())
                .filter_map(|e| Some((e.to.clone()?, e.at)))
                .collect();
            let unreadable = match &in_progress {
                Some(Err(e)) => e.to_string(),
                _ => String::new(),
            };
            let service_deployments = match &in_progress {
                None => ServiceDeployments::NotRead,
                Some(Ok(listed)) => ServiceDeployments::Listed(listed),
                Some(Err(_)) => ServiceDeployments::Unreadable(&unreadable),
            };
            let input = RollbackInput {
                service: service.clone(),
                known_good: &facts.known_good,
                family_revisions: revisions.as_deref(),
                rolled_away_from: &rolled_away_from,
                rollbacks: &ever_rolled_away,
                rollback_targets: &rollback_targets,
                avoid: req.avoid_revisions,
                last_rollback_target: last_target.as_deref(),
                explicit_target: req.task_definition,
                service_deployments,
                ecs_rolling_back: req.ecs_rolling_back,
                trigger: TriggerSubject {
                    failed_deployment: req.trigger_deployment,
                    failing_revision: req.failing_revision,
                    recent_deployment: req.recent_deployment,
                    deployed_since: req.within_rollback_window.then(|| {
                        t - crate::config::ServiceTuning::from_tags(&app.config.settings, &service.tags)
                            .rollback_window_seconds
                    }),
                },
            };
            match plan_rollback(&input) {
                RollbackDecision::Plan(p) => Planned::Rollback(p),
                RollbackDecision::Follow(why) => {
                    return Err(stop(ActionStatus::Skipped, format!("not acting: {why}; following ECS's rollback")));
                }
                RollbackDecision::Stale(why) => return Err(stop(ActionStatus::Skipped, why)),
                RollbackDecision::Refuse(why) => return Err(stop(ActionStatus::Skipped, noted(why))),
            }
        }
        ActionKind::Scale => {
            let bounds = ScaleBounds {
                autoscaling_max: facts.autoscaling_max,
                service_cap: tag(&service, "autopilot:max-tasks").map(str::to_string),
                global_cap: limits.max_tasks,
            };
            match plan_scale(service.desired, req.desired_count, automatic, &bounds) {
                ScaleDecision::Plan(p) => Planned::Scale(p),
                ScaleDecision::Refuse(why) => return Err(stop(ActionStatus::Skipped, noted(why))),
            }
        }
        ActionKind::ForceDeploy => Planned::ForceDeploy { task_definition: service.task_definition.clone() },
        ActionKind::ScaleToZero => Planned::ScaleToZero { from: service.desired },
        ActionKind::ContinueDeployment | ActionKind::RollbackDeployment => {
            let action =
                if kind == ActionKind::ContinueDeployment { HookAction::Continue } else { HookAction::Rollback };
            plan_hook_answer(req.hook, action, &service)?
        }
    };
    let what = noted(planned.describe(req.service));
    if mode == Mode::DryRun {
        let detail = format!("dry-run ({mode_why}): would {what}");
        return Ok(Decided {
            status: ActionStatus::Planned,
            detail,
            planned: Some(planned),
            failed: false,
            unknown: false,
        });
    }
    if held.lock_owner.is_none() {
        take_lock(app, req, held).await.map_err(|d| d.with_plan(&planned))?;
        // Re-read under the lock: a concurrent winner may have just acted.
        let fresh = resolve_unfinished(app, req, t, &mut service).await.map_err(|d| d.with_plan(&planned))?;
        if automatic && let Err(why) = check_budget(kind, &fresh, t, limits) {
            return Err(stop(ActionStatus::Skipped, why.to_string()).with_plan(&planned));
        }
    }

    // Planned on the diagnosis's description: acting rests on the service as it is now.
    if planned_on_prior.is_some() {
        let now_service = describe_service(app.clients, req.cluster, req.service).await.map_err(|e| {
            stop(ActionStatus::Failed, format!("cannot read the service before acting: {e}")).with_plan(&planned)
        })?;
        if let Some(change) = service_moved(&service, &now_service) {
            return Err(stop(
                ActionStatus::Skipped,
                format!("the service changed while the action was planned ({change}); not acting on the earlier read"),
            )
            .with_plan(&planned));
        }
        service = now_service;
    }

    // The hold under the lock (the only read of it for an enforced automatic
    // action): another invocation's failed action may have set it.
    if automatic {
        let refusal = match app.state.actions().hold(req.cluster, req.service).await {
            Ok(None) => None,
            Ok(Some((since, reason))) => Some(SafetyRefusal::Held(Hold { since, reason })),
            Err(e) => Some(SafetyRefusal::Unreadable { record: "hold", why: e.to_string() }),
        };
        if let Some(why) = refusal {
            return Err(stop(ActionStatus::Skipped, format!("{why} (read again under the lock)")).with_plan(&planned));
        }
    }

    // Nothing acts unrecorded: the entry goes in before the call.
    let (from, to) = planned.endpoints();
    let pending = LedgerEntry {
        at: t,
        action: kind,
        status: LedgerStatus::Executing,
        automatic,
        from,
        to,
        detail: format!("executing: {what}"),
        key: None,
        announced: false,
    };
    match app.state.actions().append_ledger(req.cluster, req.service, &pending, &ledger_extra(req, held)).await {
        Ok(key) => held.executing = Some(key),
        Err(e) => {
            return Err(stop(ActionStatus::Skipped, format!("ledger not writable, so not acting unrecorded: {e}"))
                .with_plan(&planned));
        }
    }

    // Pre-action state goes to S3 concurrently with the call: evidence never delays acting.
    let evidence_key = format!(
        "incidents/{}{}/{}/actions/{}-{}/pre-action.json",
        app.clients.scope().evidence_prefix(),
        req.cluster,
        req.service,
        iso(t),
        kind.as_str()
    );
    let evidence = {
        let clients = app.clients.clone();
        let bucket = app.config.evidence_bucket.clone();
        let key = evidence_key.clone();
        let mut body =
            json!({"service": service, "plan": planned.as_json(), "origin": req.origin.label(), "at": iso(t)});
        // Service events and tags are free text: redacted like every evidence object.
        crate::telemetry::redactor().json(&mut body);
        let encryption = crate::evidence::Encryption { kms_key_id: app.config.evidence_kms_key.clone() };
        tokio::spawn(async move { crate::adapters::s3::put_json(&clients, &bucket, &key, &body, &encryption).await })
    };
    // The figure that matters in an outage: from the event to the mutating call.
    let (to_call_ms, calls_before_call) = crate::telemetry::since_invocation_start(app.clients.calls.get());
    tracing::info!(
        cluster = req.cluster,
        service = req.service,
        action = kind.as_str(),
        to_call_ms,
        calls_before_call,
        decision = "mutating-call",
        "{what}"
    );
    let outcome = execute(app, req, &planned).await;
    // The pre-action write had the call's duration to finish; a few seconds
    // more at most, so that a hanging store never holds up the record and the alert.
    let evidence_note = match tokio::time::timeout(std::time::Duration::from_secs(3), evidence).await {
        Ok(Ok(Ok(()))) => format!("; pre-action state s3://{}/{evidence_key}", app.config.evidence_bucket),
        Ok(Ok(Err(e))) => format!("; pre-action state not kept: {e}"),
        Ok(Err(e)) => format!("; pre-action state not kept: {e}"),
        Err(_) => "; pre-action state not kept: the evidence store did not answer in time".to_string(),
    };
    // What became of the call: applied (answered, or verified after a lost
    // answer), refused or verified not applied (held), or unknown.
    let verified = match &outcome {
        Ok(()) => Ok(None),
        Err(e) if !e.may_have_applied => Err(format!("{what} FAILED: {e}")),
        Err(e) => match read_back(app, req, &planned).await {
            Ok((service_now, stopped)) => {
                let stop_status = stopped.as_ref().map(|d| d.status.as_str());
                let (status, why) = verify_lost_answer(&pending, &service_now, stop_status, &e.to_string());
                tracing::info!(
                    cluster = req.cluster,
                    service = req.service,
                    action = kind.as_str(),
                    status = status.as_str(),
                    decision = "lost-answer-verified",
                    "{why}"
                );
                match status {
                    LedgerStatus::Executed => Ok(Some(why)),
                    _ => Err(format!("{what} FAILED: {why}")),
                }
            }
            Err(read_error) => {
                tracing::error!(cluster = req.cluster, service = req.service, action = kind.as_str(), error = %e, read_error = %read_error, decision = "outcome-unknown", "mutating call's outcome unknown");
                return Ok(Decided {
                    status: ActionStatus::Failed,
                    detail: format!(
                        "{what}: outcome UNKNOWN - its answer was lost ({e}) and the service could not be read back ({read_error}); \
                         recorded as executing, counted as executed for budgets and cooldowns and verified by the next action \
                         on this service; nothing is held - a person should check the service now{evidence_note}"
                    ),
                    planned: Some(planned),
                    failed: false,
                    unknown: true,
                });
            }
        },
    };
    Ok(match verified {
        Ok(lost_answer) => {
            if let Planned::Rollback(p) = &planned
                && let Err(e) = app.state.deployments().record_rolled_away(req.cluster, req.service, &p.from, t).await
            {
                // The ledger entry says it too (read for 24 h); the history keeps it longer.
                tracing::warn!(cluster = req.cluster, service = req.service, error = %e, from = %p.from, "rolled-away mark not recorded");
            }
            if !automatic && matches!(kind, ActionKind::Rollback | ActionKind::ForceDeploy) {
                // A person acted successfully: their action clears a hold.
                let _ = app.state.actions().clear_hold(req.cluster, req.service).await;
            }
            let lost_answer = lost_answer.map(|why| format!("; {why}")).unwrap_or_default();
            Decided {
                status: ActionStatus::Executed,
                detail: format!("{what}{lost_answer}{evidence_note}"),
                planned: Some(planned),
                failed: false,
                unknown: false,
            }
        }
        Err(failure) => {
            let why = format!("{failure}{evidence_note}");
            let hold = app.state.actions().set_hold(req.cluster, req.service, &why, t).await;
            if let Err(he) = &hold {
                tracing::error!(cluster = req.cluster, service = req.service, error = %he, decision = "hold-not-recorded", "hold not recorded after a failed action");
            }
            Decided {
                status: ActionStatus::Failed,
                detail: failed_call_detail(&why, hold),
                planned: Some(planned),
                failed: true,
                unknown: false,
            }
        }
    })
}

/// The service read back under the lock after a lost answer, and — for a
/// StopServiceDeployment — the status of the deployment it stopped (a read
/// that fails leaves the service alone to tell).
async fn read_back(
    app: &Engine<'_>,
    req: &ActionRequest<'_>,
    planned: &Planned,
) -> Result<(ServiceSnapshot, Option<ServiceDeploymentBrief>), crate::adapters::AwsError> {
    let service = describe_service(app.clients, req.cluster, req.service).await?;
    let stopped = match planned {
        Planned::Rollback(p) => match &p.mechanism {
            Mechanism::StopServiceDeployment { service_deployment_arn } => {
                ecs::describe_service_deployment(app.clients, service_deployment_arn).await.ok().flatten()
            }
            Mechanism::UpdateService => None,
        },
        _ => None,
    };
    Ok((service, stopped))
}

async fn execute(app: &Engine<'_>, req: &ActionRequest<'_>, planned: &Planned) -> Result<(), MutationError> {
    let update = |change| ecs::update_service(app.clients, req.cluster, req.service, change);
    match planned {
        Planned::Rollback(p) => match &p.mechanism {
            Mechanism::StopServiceDeployment { service_deployment_arn } => {
                ecs::rollback_service_deployment(app.clients, service_deployment_arn).await
            }
            Mechanism::UpdateService => update(ServiceChange::TaskDefinition(&p.to)).await,
        },
        Planned::Scale(p) => update(ServiceChange::DesiredCount(p.to)).await,
        Planned::ForceDeploy { .. } => update(ServiceChange::ForceNewDeployment).await,
        Planned::ScaleToZero { .. } => update(ServiceChange::DesiredCount(0)).await,
        Planned::Hook { hook_id, service_deployment_arn, action } => {
            ecs::continue_service_deployment(app.clients, service_deployment_arn, hook_id, *action).await
        }
    }
}

/// The answer to a paused hook (pure): only with a hook named, and only
/// while the service has a deployment in progress (a paused deployment is
/// IN_PROGRESS; a finished one has no hook waiting, so a late button does
/// nothing).
fn plan_hook_answer(hook: Option<HookTarget<'_>>, action: HookAction, service: &ServiceSnapshot) -> Step<Planned> {
    let Some(hook) = hook else {
        return Err(stop(ActionStatus::Skipped, "no paused hook named (hook_id); nothing done"));
    };
    let in_progress = service.deployments.iter().any(|d| d.rollout_state.as_deref() == Some("IN_PROGRESS"));
    if !in_progress {
        return Err(stop(
            ActionStatus::Skipped,
            format!(
                "{}/{} has no deployment in progress, so hook {} is no longer waiting; nothing done",
                service.cluster, service.service, hook.hook_id
            ),
        ));
    }
    Ok(Planned::Hook {
        hook_id: hook.hook_id.to_string(),
        service_deployment_arn: hook.service_deployment_arn.to_string(),
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::DeploymentSnapshot;

    fn service(rollout: &str) -> ServiceSnapshot {
        ServiceSnapshot {
            cluster: "prod".into(),
            service: "api".into(),
            deployments: vec![DeploymentSnapshot {
                id: "ecs-svc/1".into(),
                status: "PRIMARY".into(),
                rollout_state: Some(rollout.into()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    const ARN: &str = "arn:aws:ecs:eu-west-1:1:service-deployment/prod/api/dep1";

    #[test]
    fn a_hook_is_answered_only_when_named_and_while_a_deployment_is_in_progress() {
        let hook = HookTarget { hook_id: "ecs-pause-1", service_deployment_arn: ARN };
        match plan_hook_answer(Some(hook), HookAction::Rollback, &service("IN_PROGRESS")) {
            Ok(p @ Planned::Hook { .. }) => {
                assert_eq!(p.endpoints(), (Some("ecs-pause-1".into()), Some("ROLLBACK".into())));
                assert!(p.describe("api").contains("roll back the paused deployment dep1"), "{}", p.describe("api"));
            }
            _ => panic!("planned"),
        }
        for (hook, svc, why) in [
            (Some(hook), service("COMPLETED"), "no deployment in progress"),
            (None, service("IN_PROGRESS"), "no paused hook named"),
        ] {
            match plan_hook_answer(hook, HookAction::Continue, &svc) {
                Err(d) => {
                    assert_eq!(d.status, ActionStatus::Skipped);
                    assert!(d.detail.contains(why), "{}", d.detail);
                }
                Ok(_) => panic!("{why}: refused"),
            }
        }
    }
}
