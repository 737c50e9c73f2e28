//! Where to roll back to, and how (pure).
//!
//! Target, in order: the last known-good revision (recorded when a deployment
//! COMPLETED); else the task definition of the previous deployment still in
//! the service; else the previous ACTIVE revision of the family, flagged as
//! unverified. Never the failing revision, never an INACTIVE one, never back to
//! a revision we rolled away from within the window (no loops), and nothing at
//! all while ECS's own circuit breaker is rolling back.
//!
//! Mechanism: `StopServiceDeployment` with stop type `ROLLBACK` when a service
//! deployment is still in progress and the target is the revision it started
//! from (ECS then restores its own source revision, configuration included,
//! and records it as a rollback); otherwise `UpdateService` with the target
//! task definition — the only way once a deployment has finished (FAILED
//! without circuit-breaker rollback, or a crash loop found after COMPLETED).

use serde::Serialize;

use crate::snapshot::ServiceSnapshot;

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

pub use crate::snapshot::RevisionInfo;

#[derive(Debug, Clone, Default)]
pub struct RollbackInput<'a> {
    pub service: ServiceSnapshot,
    pub known_good: Option<&'a str>,
    /// Revisions of the failing family with their status, when they could be
    /// listed; `None` when unknown (then only verified targets are used).
    pub family_revisions: Option<&'a [RevisionInfo]>,
    /// Revisions we rolled away from within the window.
    pub rolled_away_from: &'a [String],
    /// The revision our last executed rollback went to, within the window.
    pub last_rollback_target: Option<&'a str>,
    /// A person named the target (runbook `task_definition`).
    pub explicit_target: Option<&'a str>,
    /// ARN of the service deployment in progress (ListServiceDeployments), if any.
    pub in_progress_service_deployment: Option<&'a str>,
    /// The triggering event says ECS is rolling back (circuit breaker).
    pub ecs_rolling_back: bool,
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
        let short = |td: &str| td_key(td).map(|(f, r)| format!("{f}:{r}")).unwrap_or_else(|| td.to_string());
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
    Refuse(String),
}

/// ECS is already rolling back, or its circuit breaker with rollback will.
fn ecs_is_rolling_back(input: &RollbackInput<'_>) -> Option<String> {
    if input.ecs_rolling_back {
        return Some("ECS deployment circuit breaker is rolling back".into());
    }
    for d in &input.service.deployments {
        let reason = d.rollout_state_reason.as_deref().unwrap_or_default().to_ascii_lowercase();
        if reason.contains("rolling back")
            || reason.contains("rollback") && d.rollout_state.as_deref() == Some("IN_PROGRESS")
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

pub fn plan_rollback(input: &RollbackInput<'_>) -> RollbackDecision {
    if let Some(why) = ecs_is_rolling_back(input) {
        return RollbackDecision::Follow(why);
    }
    // The failing revision is what the service runs now.
    let failing = input.service.task_definition.clone().or_else(|| {
        input.service.deployments.iter().find(|d| d.status == "PRIMARY").map(|d| d.task_definition.clone())
    });
    let Some(failing) = failing else {
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
    let excluded = |td: &str| -> Option<String> {
        if same_td(td, &failing) {
            return Some(format!("{td} is the failing revision"));
        }
        if is_active(td) == Some(false) {
            return Some(format!("{td} is not ACTIVE"));
        }
        if input.rolled_away_from.iter().any(|r| same_td(r, td)) {
            return Some(format!("we rolled away from {td} within the window"));
        }
        None
    };
    let mechanism = |to: &str| -> Mechanism {
        let source_is_target = input.service.deployments.iter().any(|d| {
            d.status == "ACTIVE" && d.rollout_state.as_deref() == Some("COMPLETED") && same_td(&d.task_definition, to)
        });
        match input.in_progress_service_deployment {
            Some(arn) if source_is_target => {
                Mechanism::StopServiceDeployment { service_deployment_arn: arn.to_string() }
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

    if let Some(target) = input.explicit_target {
        // A person chose; only the hard rules apply (not the failing one, not INACTIVE).
        if same_td(target, &failing) {
            return RollbackDecision::Refuse(format!("{target} is what the service runs now"));
        }
        if is_active(target) == Some(false) {
            return RollbackDecision::Refuse(format!("{target} is not an ACTIVE revision"));
        }
        return plan(target, TargetSource::Explicit, true);
    }
    let mut refusals = Vec::new();
    if let Some(kg) = input.known_good {
        match excluded(kg) {
            None => return plan(kg, TargetSource::KnownGood, true),
            Some(why) => refusals.push(format!("known-good: {why}")),
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
        format!(
            "no rollback target: no known-good revision, no previous deployment and no earlier ACTIVE revision than {failing}"
        )
    } else {
        format!("no safe rollback target ({})", refusals.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{CircuitBreaker, DeploymentSnapshot};

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

    fn target(d: RollbackDecision) -> (String, TargetSource, bool) {
        match d {
            RollbackDecision::Plan(p) => (p.to, p.source, p.verified),
            other => panic!("expected a plan, got {other:?}"),
        }
    }

    #[test]
    fn known_good_revision_comes_first() {
        let kg = td(40);
        let r = revs(&[(40, true), (41, true), (42, true)]);
        let input = RollbackInput {
            service: service(
                42,
                vec![dep("d2", "PRIMARY", 42, "FAILED", "2"), dep("d1", "ACTIVE", 41, "COMPLETED", "1")],
            ),
            known_good: Some(&kg),
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
        let kg = td(42);
        let input = RollbackInput {
            service: service(42, vec![dep("d2", "PRIMARY", 42, "FAILED", "2")]),
            known_good: Some(&kg),
            family_revisions: Some(&[]),
            ..Default::default()
        };
        let RollbackDecision::Refuse(why) = plan_rollback(&input) else { panic!() };
        assert!(why.contains("failing revision"), "{why}");
    }

    #[test]
    fn never_an_inactive_known_good_revision() {
        let kg = td(40);
        let r = revs(&[(40, false), (42, true)]);
        let input = RollbackInput {
            service: service(42, vec![dep("d2", "PRIMARY", 42, "FAILED", "2")]),
            known_good: Some(&kg),
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
        let input = RollbackInput {
            service: service(
                42,
                vec![dep("d2", "PRIMARY", 42, "IN_PROGRESS", "2"), dep("d1", "ACTIVE", 41, "COMPLETED", "1")],
            ),
            in_progress_service_deployment: Some(arn),
            ..Default::default()
        };
        let RollbackDecision::Plan(p) = plan_rollback(&input) else { panic!() };
        assert_eq!(p.mechanism, Mechanism::StopServiceDeployment { service_deployment_arn: arn.into() });
        let finished = RollbackInput { in_progress_service_deployment: None, ..input.clone() };
        let RollbackDecision::Plan(p) = plan_rollback(&finished) else { panic!() };
        assert_eq!(p.mechanism, Mechanism::UpdateService);
        let kg = td(39);
        let elsewhere = RollbackInput { known_good: Some(&kg), ..input };
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
}
