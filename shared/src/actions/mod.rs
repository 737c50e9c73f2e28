//! Bounded actions: every rollback and scale goes through [`engine::run`],
//! which checks, in order, the mode (global `DRY_RUN`, service tag
//! `autopilot:mode`), a hold left by a failed action, a lease lock per
//! service, the budget, the cooldown, and the action's own preconditions and
//! plan — then acts, or only plans, and records every decision in the ledger.
//! An automatic action whose safety records (hold, ledger, known-good
//! revision, autoscaling maximum) cannot be read is skipped, saying which.
//!
//! The decisions are pure functions here and in [`rollback_plan`] and
//! [`scale_plan`]; [`engine`] does the I/O.

pub mod engine;
pub mod rollback_plan;
pub mod scale_plan;

pub use crate::outcome::ActionKind;
use crate::snapshot::ServiceSnapshot;
pub use crate::snapshot::{KnownGood, LedgerEntry, LedgerStatus};

/// Who asked: automation (a trigger) or a person (the runbook function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Automatic { trigger: String },
    Manual { reason: Option<String> },
}

impl Origin {
    pub fn is_automatic(&self) -> bool {
        matches!(self, Self::Automatic { .. })
    }
    pub fn label(&self) -> String {
        match self {
            Self::Automatic { trigger } => format!("automatic ({trigger})"),
            Self::Manual { reason: Some(r) } => format!("manual ({r})"),
            Self::Manual { reason: None } => "manual".into(),
        }
    }
}

/// Whether mutations may happen for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    DryRun,
    Off,
}

/// The effective mode and why. Order: global `DRY_RUN`, then the service tag
/// `autopilot:mode` (`auto` | `dry-run` | `off`; untagged means `auto`), then
/// the request's own `dry_run`. An unreadable tag value is treated as
/// `dry-run`: a typo must never enable action.
pub fn resolve_mode(global_dry_run: bool, tag: Option<&str>, request_dry_run: bool) -> (Mode, String) {
    if global_dry_run {
        return (Mode::DryRun, "DRY_RUN=true: global dry-run".into());
    }
    match tag.map(|t| t.trim().to_ascii_lowercase()) {
        Some(t) if t == "off" => return (Mode::Off, "service tag autopilot:mode=off".into()),
        Some(t) if t == "dry-run" || t == "dryrun" => {
            return (Mode::DryRun, "service tag autopilot:mode=dry-run".into());
        }
        Some(t) if t == "auto" || t.is_empty() => {}
        Some(other) => {
            return (
                Mode::DryRun,
                format!("service tag autopilot:mode={other:?} is not auto|dry-run|off; treated as dry-run"),
            );
        }
        None => {}
    }
    if request_dry_run {
        return (Mode::DryRun, "dry_run requested".into());
    }
    (Mode::Auto, "auto".into())
}

pub use crate::config::Limits;

/// The hold left by a failed action: automatic actions wait for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub since: i64,
    pub reason: String,
}

/// The safety records as read before deciding: `None` for a record this
/// action does not read, `Err` for one that could not be read.
#[derive(Debug)]
pub struct SafetyReads<E> {
    pub hold: Option<Result<Option<Hold>, E>>,
    pub ledger: Result<Vec<LedgerEntry>, E>,
    /// The known-good history, one record per revision.
    pub known_good: Option<Result<Vec<KnownGood>, E>>,
    pub autoscaling_max: Option<Result<Option<i32>, E>>,
}

/// What the decision may rely on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SafetyFacts {
    pub ledger: Vec<LedgerEntry>,
    pub known_good: Vec<KnownGood>,
    pub autoscaling_max: Option<i32>,
    /// What a manual action goes ahead without; said in its record.
    pub notes: Vec<String>,
}

/// Why an automatic action does not go ahead on its safety records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SafetyRefusal {
    Held(Hold),
    Unreadable { record: &'static str, why: String },
}

impl std::fmt::Display for SafetyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Held(h) => write!(
                f,
                "automatic actions on this service are held since {} ({}); a person must clear the hold",
                crate::time::iso(h.since),
                h.reason
            ),
            Self::Unreadable { record, why } => {
                write!(f, "{record} unreadable, so an automatic action does not act on a guess: {why}")
            }
        }
    }
}

/// Whether the safety records let an action go ahead (pure). An automatic
/// action needs every record it reads: a hold, or any record unreadable,
/// refuses it. A person's action reads no hold and goes ahead without an
/// unreadable record, saying so in a note.
pub fn check_safety<E: std::fmt::Display>(
    automatic: bool,
    reads: SafetyReads<E>,
) -> Result<SafetyFacts, SafetyRefusal> {
    fn need<T, E: std::fmt::Display>(
        automatic: bool,
        notes: &mut Vec<String>,
        (record, without): (&'static str, &str),
        read: Option<Result<Option<T>, E>>,
    ) -> Result<Option<T>, SafetyRefusal> {
        match read {
            None => Ok(None),
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) if automatic => Err(SafetyRefusal::Unreadable { record, why: e.to_string() }),
            Some(Err(e)) => {
                notes.push(format!("{record} unreadable ({e}): {without}"));
                Ok(None)
            }
        }
    }
    let mut notes = Vec::new();
    if let Some(h) = need(automatic, &mut notes, ("hold", "not consulted"), reads.hold)? {
        return Err(SafetyRefusal::Held(h));
    }
    let ledger = need(automatic, &mut notes, ("ledger", "earlier actions not known"), Some(reads.ledger.map(Some)))?
        .unwrap_or_default();
    let known_good = need(
        automatic,
        &mut notes,
        ("known-good revision", "target chosen from the service's deployments"),
        reads.known_good.map(|r| r.map(Some)),
    )?
    .unwrap_or_default();
    let autoscaling_max = need(automatic, &mut notes, ("autoscaling maximum", "not applied"), reads.autoscaling_max)?;
    Ok(SafetyFacts { ledger, known_good, autoscaling_max, notes })
}

/// What changed between the description an action was planned on and the
/// service as it is under the lock (pure): the revision it runs, its desired
/// count, its deployments (their revision, status and rollout), who deploys
/// it, or its `autopilot:mode`. Running and pending counts move by the
/// second in an incident and are not a change of plan.
pub fn service_moved(planned_on: &ServiceSnapshot, now: &ServiceSnapshot) -> Option<String> {
    fn deployments(s: &ServiceSnapshot) -> Vec<(&str, &str, &str, Option<&str>)> {
        let mut d: Vec<_> = s
            .deployments
            .iter()
            .map(|d| (d.id.as_str(), d.status.as_str(), d.task_definition.as_str(), d.rollout_state.as_deref()))
            .collect();
        d.sort_unstable();
        d
    }
    let mode = |s: &ServiceSnapshot| {
        s.tags.iter().find(|(k, _)| k == "autopilot:mode").map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    if planned_on.task_definition != now.task_definition {
        return Some(format!(
            "it runs {} now, {} when planned",
            now.task_definition.as_deref().unwrap_or("?"),
            planned_on.task_definition.as_deref().unwrap_or("?")
        ));
    }
    if planned_on.desired != now.desired {
        return Some(format!("desired count {} now, {} when planned", now.desired, planned_on.desired));
    }
    if deployments(planned_on) != deployments(now) {
        return Some("its deployments changed".into());
    }
    if planned_on.deployment_controller != now.deployment_controller {
        return Some("its deployment controller changed".into());
    }
    if mode(planned_on) != mode(now) {
        return Some("its autopilot:mode tag changed".into());
    }
    None
}

/// The record of a failed mutating call (pure): the failure, and whether
/// automatic actions are now held — never a hold that was not recorded.
pub fn failed_call_detail<E: std::fmt::Display>(failure: &str, hold_recorded: Result<(), E>) -> String {
    match hold_recorded {
        Ok(()) => format!("{failure}; automatic actions on this service are now held"),
        Err(e) => format!(
            "{failure}; hold NOT recorded ({e}): automatic actions on this service are NOT held - a person must look now"
        ),
    }
}

/// Why the budget or the cooldown refuses an automatic action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetRefusal {
    Exhausted { kind: ActionKind, count: usize, limit: usize, window: &'static str },
    Cooldown { seconds_ago: i64, cooldown_seconds: i64 },
}

impl std::fmt::Display for BudgetRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exhausted { kind, count, limit, window } => {
                write!(f, "budget exhausted: {count} automatic {} in the last {window} (limit {limit})", kind.as_str())
            }
            Self::Cooldown { seconds_ago, cooldown_seconds } => {
                write!(f, "cooldown: an action was executed {seconds_ago}s ago (cooldown {cooldown_seconds}s)")
            }
        }
    }
}

/// Budget, then cooldown, for an automatic action (pure). An exhausted
/// budget is named before a running cooldown.
pub fn check_budget(kind: ActionKind, ledger: &[LedgerEntry], now: i64, limits: &Limits) -> Result<(), BudgetRefusal> {
    let (per_30m, per_day) = match kind {
        ActionKind::Rollback => (limits.rollback_per_30m, limits.rollback_per_day),
        ActionKind::Scale => (limits.scale_per_30m, limits.scale_per_day),
        // Not automatic actions; a person asked.
        ActionKind::ForceDeploy
        | ActionKind::ScaleToZero
        | ActionKind::ContinueDeployment
        | ActionKind::RollbackDeployment => return cooldown(ledger, now, limits),
    };
    // An action whose outcome is unknown (`executing`) may have acted: it counts.
    let same = |e: &&LedgerEntry| e.automatic && e.action == kind && e.status.may_have_acted();
    let in_30m = ledger.iter().filter(same).filter(|e| now - e.at < 30 * 60).count();
    let in_day = ledger.iter().filter(same).filter(|e| now - e.at < 24 * 60 * 60).count();
    if in_30m >= per_30m {
        return Err(BudgetRefusal::Exhausted { kind, count: in_30m, limit: per_30m, window: "30 minutes" });
    }
    if in_day >= per_day {
        return Err(BudgetRefusal::Exhausted { kind, count: in_day, limit: per_day, window: "24 hours" });
    }
    cooldown(ledger, now, limits)
}

/// Any executed (or executing) action on the service starts a cooldown for automatic ones.
fn cooldown(ledger: &[LedgerEntry], now: i64, limits: &Limits) -> Result<(), BudgetRefusal> {
    let last = ledger.iter().filter(|e| e.status.may_have_acted()).map(|e| e.at).max();
    if let Some(last) = last
        && now - last < limits.cooldown_seconds
    {
        return Err(BudgetRefusal::Cooldown { seconds_ago: now - last, cooldown_seconds: limits.cooldown_seconds });
    }
    Ok(())
}

/// Who deploys a service: `deploymentController.type`. AWS documents an
/// absent controller as `ECS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Controller {
    Ecs,
    CodeDeploy,
    External,
    /// A type this code does not know (a newer API): treated as not ours.
    Other(String),
}

impl Controller {
    pub fn of(service: &ServiceSnapshot) -> Self {
        match service.deployment_controller.as_deref() {
            None | Some("ECS") => Self::Ecs,
            Some("CODE_DEPLOY") => Self::CodeDeploy,
            Some("EXTERNAL") => Self::External,
            Some(other) => Self::Other(other.to_string()),
        }
    }
}

/// Why an action must not be sent to this service at all, given who deploys
/// it (pure); `None` when ECS deploys it or the action only scales.
///
/// For `CODE_DEPLOY` and `EXTERNAL` services UpdateService may change the
/// desired count but not the task definition — "For services using the
/// blue/green (CODE_DEPLOY) deployment controller, only the desired count,
/// deployment configuration, health check grace period, task placement
/// constraints and strategies, enable ECS managed tags option, and propagate
/// tags can be updated using this API. If the network configuration, platform
/// version, task definition, or load balancer need to be updated, create a new
/// CodeDeploy deployment", and for an external controller "you can update only
/// the desired count, task placement constraints and strategies, health check
/// grace period, enable ECS managed tags option, and propagate tags option"
/// (ECS API Reference, UpdateService:
/// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateService.html>).
/// A forced deployment is not in either list, and service deployments
/// (StopServiceDeployment) belong to the ECS controller only. So a rollback
/// or a force-deploy is refused before any call, and scaling goes ahead.
pub fn controller_refusal(kind: ActionKind, service: &ServiceSnapshot) -> Option<String> {
    if matches!(kind, ActionKind::Scale | ActionKind::ScaleToZero) {
        return None;
    }
    let name = format!("{}/{}", service.cluster, service.service);
    let what = match kind {
        ActionKind::Rollback => "roll back",
        // Pause hooks are lifecycle hooks of the ECS deployment controller only.
        ActionKind::ContinueDeployment | ActionKind::RollbackDeployment => "answer a paused deployment hook of",
        _ => "force a new deployment of",
    };
    match Controller::of(service) {
        Controller::Ecs => None,
        Controller::CodeDeploy => Some(format!(
            "not acting: {name} is deployed by CodeDeploy (deploymentController CODE_DEPLOY); ECS refuses a task-definition \
             change or a forced deployment through UpdateService, and StopServiceDeployment does not apply, so autopilot \
             does not {what} it. Roll it back through CodeDeploy: stop the deployment in progress with rollback \
             (aws deploy stop-deployment --deployment-id <id> --auto-rollback-enabled; aws deploy list-deployments \
             --application-name <app> --deployment-group-name <group> --include-only-statuses InProgress finds it), or \
             redeploy the previous revision through CodeDeploy (aws deploy create-deployment with the previous \
             task definition in its AppSpec). Nothing was called, so nothing is held"
        )),
        Controller::External => Some(format!(
            "not acting: {name} uses the EXTERNAL deployment controller; its task sets belong to the deployment tool \
             that owns it, and ECS refuses a task-definition change or a forced deployment through UpdateService, so \
             autopilot does not {what} it. Roll it back with the owning deployment tool (make the previous task set \
             primary again: aws ecs update-service-primary-task-set, as that tool does). Nothing was called, so \
             nothing is held"
        )),
        Controller::Other(t) => Some(format!(
            "not acting: {name} uses deployment controller {t}, which autopilot does not deploy through; roll it back \
             with the tool that owns its deployments. Nothing was called, so nothing is held"
        )),
    }
}

/// What became of an action left `executing` (pure): its invocation died,
/// or could not record the outcome. Read from the service as it is now —
/// does it run the planned revision, have the planned desired count, a
/// deployment started since? — never guessed, never repeated blindly.
pub fn verify_unfinished(entry: &LedgerEntry, service: &ServiceSnapshot) -> (LedgerStatus, String) {
    match took_effect(entry, service, None) {
        Some((took, seen)) => verdict(took, format!("outcome verified later from the service: {seen}")),
        None => (LedgerStatus::Failed, "outcome unknown and not verifiable: the entry names no target".into()),
    }
}

/// What became of a mutating call whose answer was lost (pure): `failure`
/// says what the caller heard (a 5xx, a timeout, a reset), `service` is the
/// service read back under the lock right after, `stop_status` the status
/// of the service deployment a StopServiceDeployment was sent to, when read.
pub fn verify_lost_answer(
    entry: &LedgerEntry,
    service: &ServiceSnapshot,
    stop_status: Option<&str>,
    failure: &str,
) -> (LedgerStatus, String) {
    match took_effect(entry, service, stop_status) {
        Some((took, seen)) => verdict(
            took,
            format!(
                "the call ended without a clear answer ({failure}); verified from the service read back under the lock: {seen}"
            ),
        ),
        None => (
            LedgerStatus::Failed,
            format!("the call ended without a clear answer ({failure}) and the plan names no target to verify"),
        ),
    }
}

fn verdict(took: bool, seen: String) -> (LedgerStatus, String) {
    let status = if took { LedgerStatus::Executed } else { LedgerStatus::Failed };
    let what = if took { "it took effect" } else { "it did not take effect" };
    (status, format!("{seen}, so {what}"))
}

/// Whether the action of `entry` shows in the service, and what was seen;
/// `None` when the entry names nothing to look for.
fn took_effect(entry: &LedgerEntry, service: &ServiceSnapshot, stop_status: Option<&str>) -> Option<(bool, String)> {
    use rollback_plan::td_key;
    // A deployment (of `td`, or any) created after the entry was written.
    // `at` is whole seconds: `strict` asks for a later second, where the same
    // second cannot tell before from after.
    let started_since = |td: Option<&str>, strict: bool| {
        service.deployments.iter().any(|d| {
            td.is_none_or(|td| td_key(&d.task_definition).is_some_and(|k| Some(k) == td_key(td)))
                && d.created_at.as_deref().and_then(crate::lenient::parse_time).is_some_and(|c| {
                    let second = c.timestamp();
                    if strict { second > entry.at } else { second >= entry.at }
                })
        })
    };
    match (entry.action, entry.to.as_deref()) {
        (ActionKind::Rollback, Some(to)) => {
            let runs = service.task_definition.as_deref().and_then(td_key);
            // StopServiceDeployment(ROLLBACK) took effect once ECS rolls the deployment back.
            let stopped = stop_status.is_some_and(|s| s.starts_with("ROLLBACK_"));
            // It runs the target, or a deployment of the target began after the entry
            // (then a newer release replaced it).
            let took = stopped || (runs.is_some() && runs == td_key(to)) || started_since(Some(to), true);
            let deployment = stop_status.map(|s| format!(", the service deployment is {s}")).unwrap_or_default();
            Some((
                took,
                format!(
                    "it runs {}, the plan was {to}{deployment}",
                    service.task_definition.as_deref().unwrap_or("nothing known")
                ),
            ))
        }
        (ActionKind::Scale | ActionKind::ScaleToZero, Some(to)) => {
            let planned = to.parse::<i32>().ok();
            Some((planned == Some(service.desired), format!("desired count {}, the plan was {to}", service.desired)))
        }
        // The hook's status is only in DescribeServiceDeployments, not in the
        // service: nothing here to verify it by.
        (ActionKind::ContinueDeployment | ActionKind::RollbackDeployment, _) => None,
        (ActionKind::ForceDeploy, _) => {
            let took = started_since(None, false);
            let seen = if took { "a deployment started after it" } else { "no deployment started after it" };
            Some((took, seen.into()))
        }
        (_, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, action: &str, status: &str, automatic: bool) -> LedgerEntry {
        LedgerEntry {
            at,
            action: ActionKind::parse(action).unwrap(),
            status: LedgerStatus::parse(status).unwrap(),
            automatic,
            from: None,
            to: None,
            detail: String::new(),
            key: None,
            announced: false,
        }
    }

    fn reads(
        hold: Option<Result<Option<Hold>, &'static str>>,
        ledger: Result<Vec<LedgerEntry>, &'static str>,
        known_good: Option<Result<Vec<KnownGood>, &'static str>>,
        autoscaling_max: Option<Result<Option<i32>, &'static str>>,
    ) -> SafetyReads<&'static str> {
        SafetyReads { hold, ledger, known_good, autoscaling_max }
    }

    #[test]
    fn when_a_safety_record_is_unreadable_an_automatic_action_should_skip_naming_it() {
        let held = Hold { since: 1_795_000_000, reason: "UpdateService FAILED".into() };
        // (reads, what the refusal names)
        let cases = [
            (reads(Some(Err("GetItem: AccessDenied")), Ok(vec![]), None, None), "hold unreadable"),
            (reads(Some(Ok(Some(held))), Ok(vec![]), None, None), "held since"),
            (reads(Some(Ok(None)), Err("Query: throttled"), None, None), "ledger unreadable"),
            (reads(Some(Ok(None)), Ok(vec![]), Some(Err("GetItem: 500")), None), "known-good revision unreadable"),
            (
                reads(Some(Ok(None)), Ok(vec![]), None, Some(Err("DescribeScalableTargets: denied"))),
                "autoscaling maximum",
            ),
        ];
        for (r, named) in cases {
            let why = check_safety(true, r).expect_err(named).to_string();
            assert!(why.contains(named), "{why}");
        }
    }

    #[test]
    fn when_every_safety_record_is_read_an_automatic_action_should_go_ahead_on_them() {
        let facts = check_safety(
            true,
            reads(
                Some(Ok(None)),
                Ok(vec![entry(1, "rollback", "executed", true)]),
                Some(Ok(vec![KnownGood { task_definition: "api:40".into(), ..Default::default() }])),
                None,
            ),
        )
        .unwrap();
        let known_good: Vec<&str> = facts.known_good.iter().map(|k| k.task_definition.as_str()).collect();
        assert_eq!((facts.ledger.len(), known_good, facts.autoscaling_max), (1, vec!["api:40"], None));
        assert!(facts.notes.is_empty());
    }

    #[test]
    fn when_a_record_is_unreadable_a_persons_action_should_go_ahead_and_say_so() {
        let facts =
            check_safety(false, reads(None, Err("Query: throttled"), Some(Err("GetItem: 500")), Some(Err("denied"))))
                .unwrap();
        assert_eq!((facts.ledger.len(), facts.known_good, facts.autoscaling_max), (0, vec![], None));
        assert_eq!(facts.notes.len(), 3, "{:?}", facts.notes);
        assert!(facts.notes.iter().any(|n| n.contains("known-good revision unreadable")), "{:?}", facts.notes);
    }

    #[test]
    fn when_the_hold_cannot_be_recorded_the_failure_should_say_nothing_is_held() {
        let recorded = failed_call_detail::<&str>("UpdateService FAILED", Ok(()));
        assert!(recorded.ends_with("are now held"), "{recorded}");
        let lost = failed_call_detail("UpdateService FAILED", Err("PutItem (hold): AccessDenied"));
        assert!(
            lost.contains("hold NOT recorded (PutItem (hold): AccessDenied)") && lost.contains("NOT held"),
            "{lost}"
        );
        assert!(!lost.contains("now held"), "{lost}");
    }

    #[test]
    fn mode_follows_global_dry_run_then_the_service_tag_then_the_request() {
        let cases = [
            (true, None, false, Mode::DryRun),
            (true, Some("auto"), false, Mode::DryRun),
            (false, None, false, Mode::Auto),
            (false, Some("auto"), false, Mode::Auto),
            (false, Some("AUTO"), true, Mode::DryRun),
            (false, Some("off"), false, Mode::Off),
            (false, Some("off"), true, Mode::Off),
            (false, Some("dry-run"), false, Mode::DryRun),
            (false, Some("yes please"), false, Mode::DryRun),
            (false, None, true, Mode::DryRun),
        ];
        for (global, tag, req, expected) in cases {
            assert_eq!(resolve_mode(global, tag, req).0, expected, "{global} {tag:?} {req}");
        }
    }

    #[test]
    fn one_automatic_rollback_per_30_minutes_and_three_per_day() {
        let l = Limits::default();
        let now = 100_000;
        assert!(check_budget(ActionKind::Rollback, &[], now, &l).is_ok());
        let recent = [entry(now - 20 * 60, "rollback", "executed", true)];
        assert!(check_budget(ActionKind::Rollback, &recent, now, &l).unwrap_err().to_string().contains("30 minutes"));
        let day = [
            entry(now - 3 * 3600, "rollback", "executed", true),
            entry(now - 5 * 3600, "rollback", "executed", true),
            entry(now - 7 * 3600, "rollback", "executed", true),
        ];
        assert!(check_budget(ActionKind::Rollback, &day, now, &l).unwrap_err().to_string().contains("24 hours"));
        let old =
            [entry(now - 25 * 3600, "rollback", "executed", true), entry(now - 40 * 60, "rollback", "executed", true)];
        assert!(check_budget(ActionKind::Rollback, &old, now, &l).is_ok());
    }

    #[test]
    fn refusals_planned_and_manual_actions_do_not_spend_the_budget() {
        let l = Limits::default();
        let now = 100_000;
        let ledger = [
            entry(now - 600, "rollback", "skipped", true),
            entry(now - 600, "rollback", "planned", true),
            entry(now - 600, "rollback", "failed", true),
            entry(now - 3600, "rollback", "executed", false),
        ];
        assert!(check_budget(ActionKind::Rollback, &ledger, now, &l).is_ok());
    }

    #[test]
    fn an_exhausted_budget_is_named_before_a_running_cooldown() {
        let l = Limits::default();
        let now = 100_000;
        let ledger = [entry(now - 60, "rollback", "executed", true)];
        assert!(
            check_budget(ActionKind::Rollback, &ledger, now, &l).unwrap_err().to_string().contains("budget exhausted")
        );
    }

    #[test]
    fn any_recent_execution_starts_a_cooldown() {
        let l = Limits::default();
        let now = 100_000;
        let ledger = [entry(now - 60, "scale", "executed", false)];
        assert!(check_budget(ActionKind::Rollback, &ledger, now, &l).unwrap_err().to_string().contains("cooldown"));
        assert!(check_budget(ActionKind::Scale, &ledger, now, &l).unwrap_err().to_string().contains("cooldown"));
    }

    #[test]
    fn when_an_action_is_executing_it_should_count_like_an_executed_one_for_budgets_and_cooldowns() {
        let l = Limits::default();
        let now = 100_000;
        // (ledger: (seconds ago, action, status, automatic), kind checked, what the refusal names)
        type Case<'a> = (&'a [(i64, &'a str, &'a str, bool)], ActionKind, Option<&'a str>);
        let cases: &[Case] = &[
            (&[(20 * 60, "rollback", "executing", true)], ActionKind::Rollback, Some("30 minutes")),
            (
                &[
                    (3 * 3600, "rollback", "executing", true),
                    (5 * 3600, "rollback", "executed", true),
                    (7 * 3600, "rollback", "executing", true),
                ],
                ActionKind::Rollback,
                Some("24 hours"),
            ),
            (&[(60, "scale", "executing", false)], ActionKind::Rollback, Some("cooldown")),
            (&[(60, "force-deploy", "executing", false)], ActionKind::Scale, Some("cooldown")),
            (
                &[
                    (60, "scale", "executing", true),
                    (120, "scale", "executing", true),
                    (900, "scale", "executed", true),
                ],
                ActionKind::Scale,
                Some("30 minutes"),
            ),
            (&[(40 * 60, "rollback", "executing", true)], ActionKind::Rollback, None),
            (&[(600, "rollback", "failed", true), (600, "rollback", "skipped", true)], ActionKind::Rollback, None),
        ];
        for (entries, kind, named) in cases {
            let ledger: Vec<LedgerEntry> =
                entries.iter().map(|(ago, action, status, auto)| entry(now - ago, action, status, *auto)).collect();
            match (check_budget(*kind, &ledger, now, &l), named) {
                (Ok(()), None) => {}
                (Err(why), Some(word)) => assert!(why.to_string().contains(word), "{entries:?}: {why}"),
                (got, want) => panic!("{entries:?} {kind:?}: got {got:?}, wanted a refusal naming {want:?}"),
            }
        }
    }

    #[test]
    fn an_unfinished_action_should_be_verified_against_the_service_as_it_is_now() {
        use crate::snapshot::DeploymentSnapshot;
        const TD: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition/api";
        let at = 1_795_000_000; // 2026-11-18T11:06:40Z
        let dep = |rev: i32, created: &str| DeploymentSnapshot {
            task_definition: format!("{TD}:{rev}"),
            created_at: Some(created.into()),
            ..Default::default()
        };
        let svc = |rev: i32, desired: i32, deployments: Vec<DeploymentSnapshot>| ServiceSnapshot {
            task_definition: Some(format!("{TD}:{rev}")),
            desired,
            deployments,
            ..Default::default()
        };
        let unfinished = |action: &str, to: Option<&str>| LedgerEntry {
            to: to.map(str::to_string),
            ..entry(at, action, "executing", true)
        };
        let to41 = format!("{TD}:41");
        // (entry, service now, verdict)
        let cases = [
            (unfinished("rollback", Some(&to41)), svc(41, 2, vec![]), LedgerStatus::Executed),
            (unfinished("rollback", Some("api:41")), svc(41, 2, vec![]), LedgerStatus::Executed),
            (
                unfinished("rollback", Some(&to41)),
                svc(42, 2, vec![dep(42, "2026-11-18T11:00:00Z")]),
                LedgerStatus::Failed,
            ),
            // Rolled back, then replaced by a newer release: its deployment still shows it.
            (
                unfinished("rollback", Some(&to41)),
                svc(43, 2, vec![dep(41, "2026-11-18T11:07:00Z")]),
                LedgerStatus::Executed,
            ),
            (
                unfinished("rollback", Some(&to41)),
                svc(43, 2, vec![dep(41, "2026-11-18T11:00:00Z")]),
                LedgerStatus::Failed,
            ),
            (unfinished("scale", Some("6")), svc(42, 6, vec![]), LedgerStatus::Executed),
            (unfinished("scale", Some("6")), svc(42, 3, vec![]), LedgerStatus::Failed),
            (unfinished("scale-to-zero", Some("0")), svc(42, 0, vec![]), LedgerStatus::Executed),
            (
                unfinished("force-deploy", Some(&to41)),
                svc(41, 2, vec![dep(41, "2026-11-18T11:07:00Z")]),
                LedgerStatus::Executed,
            ),
            (
                unfinished("force-deploy", Some(&to41)),
                svc(41, 2, vec![dep(41, "2026-11-18T11:00:00Z")]),
                LedgerStatus::Failed,
            ),
            (unfinished("rollback", None), svc(41, 2, vec![]), LedgerStatus::Failed),
        ];
        for (e, service, expected) in cases {
            let (status, why) = verify_unfinished(&e, &service);
            assert_eq!(status, expected, "{:?} -> {:?}: {why}", e.to, service.task_definition);
            assert!(why.contains("verified") || why.contains("not verifiable"), "{why}");
        }
    }

    #[test]
    fn scaling_has_its_own_budget() {
        let l = Limits::default();
        let now = 100_000;
        let ledger: Vec<_> = (0..3).map(|i| entry(now - 400 - i * 300, "scale", "executed", true)).collect();
        assert!(check_budget(ActionKind::Scale, &ledger, now, &l).unwrap_err().to_string().contains("budget"));
        assert!(check_budget(ActionKind::Rollback, &ledger, now, &l).is_ok());
    }

    #[test]
    fn services_ecs_does_not_deploy_are_never_sent_a_rollback_or_a_force_deploy_but_may_be_scaled() {
        let svc = |controller: Option<&str>| ServiceSnapshot {
            cluster: "prod".into(),
            service: "api".into(),
            deployment_controller: controller.map(str::to_string),
            ..Default::default()
        };
        // (controller, action, what the refusal says, or None: goes ahead)
        let cases = [
            (None, "rollback", None),
            (Some("ECS"), "force-deploy", None),
            (
                Some("CODE_DEPLOY"),
                "rollback",
                Some("aws deploy stop-deployment --deployment-id <id> --auto-rollback-enabled"),
            ),
            (Some("CODE_DEPLOY"), "force-deploy", Some("force a new deployment of")),
            (Some("CODE_DEPLOY"), "scale", None),
            (Some("CODE_DEPLOY"), "scale-to-zero", None),
            (Some("EXTERNAL"), "rollback", Some("owning deployment tool")),
            (Some("EXTERNAL"), "force-deploy", Some("EXTERNAL")),
            (Some("EXTERNAL"), "scale", None),
            (Some("SOMETHING_NEW"), "rollback", Some("deployment controller SOMETHING_NEW")),
        ];
        for (controller, action, expected) in cases {
            let got = controller_refusal(ActionKind::parse(action).unwrap(), &svc(controller));
            match (got, expected) {
                (None, None) => {}
                (Some(why), Some(word)) => {
                    assert!(why.contains(word) && why.contains("prod/api"), "{controller:?} {action}: {why}");
                    assert!(why.contains("nothing is held"), "{why}");
                }
                (got, want) => panic!("{controller:?} {action}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_lost_answer_is_executed_only_if_the_service_shows_it() {
        const TD: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition/api";
        let pending = |action: &str, to: &str| LedgerEntry {
            to: Some(to.into()),
            ..entry(1_795_000_000, action, "executing", true)
        };
        let svc = |rev: i32, desired: i32| ServiceSnapshot {
            task_definition: Some(format!("{TD}:{rev}")),
            desired,
            ..Default::default()
        };
        let to41 = format!("{TD}:41");
        // (entry, service read back, StopServiceDeployment's deployment status, verdict)
        let cases = [
            (pending("rollback", &to41), svc(41, 2), None, LedgerStatus::Executed),
            (pending("rollback", &to41), svc(42, 2), None, LedgerStatus::Failed),
            // ECS accepted the ROLLBACK: its deployment is rolling back, the service not yet switched.
            (pending("rollback", &to41), svc(42, 2), Some("ROLLBACK_REQUESTED"), LedgerStatus::Executed),
            (pending("rollback", &to41), svc(42, 2), Some("IN_PROGRESS"), LedgerStatus::Failed),
            (pending("scale", "5"), svc(42, 5), None, LedgerStatus::Executed),
            (pending("scale", "5"), svc(42, 2), None, LedgerStatus::Failed),
        ];
        for (e, service, stop, expected) in cases {
            let (status, why) =
                verify_lost_answer(&e, &service, stop, "ecs:UpdateService on prod/api: InternalFailure");
            assert_eq!(status, expected, "{:?} {stop:?}: {why}", e.to);
            assert!(why.contains("without a clear answer (ecs:UpdateService on prod/api: InternalFailure)"), "{why}");
            assert!(why.contains("verified from the service read back under the lock"), "{why}");
        }
    }

    #[test]
    fn a_plan_stands_only_while_what_it_rests_on_is_unchanged() {
        let dep = |id: &str, status: &str, rev: i32, rollout: &str| crate::snapshot::DeploymentSnapshot {
            id: id.into(),
            status: status.into(),
            task_definition: format!("arn:aws:ecs:us-east-1:1:task-definition/api:{rev}"),
            rollout_state: Some(rollout.into()),
            ..Default::default()
        };
        let base = ServiceSnapshot {
            desired: 3,
            running: 1,
            task_definition: Some("arn:aws:ecs:us-east-1:1:task-definition/api:42".into()),
            deployments: vec![
                dep("ecs-svc/2", "PRIMARY", 42, "IN_PROGRESS"),
                dep("ecs-svc/1", "ACTIVE", 41, "COMPLETED"),
            ],
            tags: vec![("autopilot:mode".into(), "auto".into())],
            ..Default::default()
        };
        assert_eq!(service_moved(&base, &base.clone()), None);
        let moving = ServiceSnapshot { running: 0, pending: 2, ..base.clone() };
        assert_eq!(service_moved(&base, &moving), None, "counts move by the second in an incident");
        let mut reordered = base.clone();
        reordered.deployments.reverse();
        assert_eq!(service_moved(&base, &reordered), None, "the order ECS lists them in is not a change");
        let cases: Vec<(ServiceSnapshot, &str)> = vec![
            (ServiceSnapshot { task_definition: Some("api:43".into()), ..base.clone() }, "runs api:43 now"),
            (ServiceSnapshot { desired: 6, ..base.clone() }, "desired count 6 now, 3"),
            (
                ServiceSnapshot {
                    deployments: vec![
                        dep("ecs-svc/2", "PRIMARY", 42, "FAILED"),
                        dep("ecs-svc/1", "ACTIVE", 41, "COMPLETED"),
                    ],
                    ..base.clone()
                },
                "deployments changed",
            ),
            (
                ServiceSnapshot { deployments: vec![dep("ecs-svc/3", "PRIMARY", 42, "IN_PROGRESS")], ..base.clone() },
                "deployments changed",
            ),
            (ServiceSnapshot { deployment_controller: Some("CODE_DEPLOY".into()), ..base.clone() }, "controller"),
            (ServiceSnapshot { tags: vec![("autopilot:mode".into(), "off".into())], ..base.clone() }, "autopilot:mode"),
        ];
        for (now, says) in cases {
            let why = service_moved(&base, &now).unwrap_or_default();
            assert!(why.contains(says), "{says:?} expected in {why:?}");
        }
    }
}
