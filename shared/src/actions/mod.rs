//! Bounded actions: every rollback and scale goes through [`engine::run`],
//! which checks, in order, the mode (global `DRY_RUN`, service tag
//! `autopilot:mode`), a hold left by a failed action, a lease lock per
//! service, the budget, the cooldown, and the action's own preconditions and
//! plan — then acts, or only plans, and records every decision in the ledger.
//!
//! The decisions are pure functions here and in [`rollback_plan`] and
//! [`scale_plan`]; [`engine`] does the I/O.

pub mod engine;
pub mod rollback_plan;
pub mod scale_plan;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    Rollback,
    Scale,
    ForceDeploy,
    ScaleToZero,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Scale => "scale",
            Self::ForceDeploy => "force-deploy",
            Self::ScaleToZero => "scale-to-zero",
        }
    }
}

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

/// Limits on automatic actions (README, "Bounded actions").
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub rollback_per_30m: usize,
    pub rollback_per_day: usize,
    pub scale_per_30m: usize,
    pub scale_per_day: usize,
    /// After any executed action on a service, automatic actions wait this long.
    pub cooldown_seconds: i64,
    /// A crash loop triggers a rollback only on a revision deployed this recently.
    pub rollback_window_seconds: i64,
    /// Global cap on desired count for any scale.
    pub max_tasks: i32,
    pub lock_seconds: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rollback_per_30m: 1,
            rollback_per_day: 3,
            scale_per_30m: 3,
            scale_per_day: 10,
            cooldown_seconds: 5 * 60,
            rollback_window_seconds: 60 * 60,
            max_tasks: 50,
            lock_seconds: 120,
        }
    }
}

/// One ledger record, as the budget and loop checks read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub at: i64,
    pub action: String,
    /// executed | planned | skipped | failed
    pub status: String,
    pub automatic: bool,
    pub from: Option<String>,
    pub to: Option<String>,
    pub detail: String,
}

/// Budget, then cooldown, for an automatic action (pure). `Err` says why
/// not; an exhausted budget is named before a running cooldown.
pub fn check_budget(kind: ActionKind, ledger: &[LedgerEntry], now: i64, limits: &Limits) -> Result<(), String> {
    let (per_30m, per_day) = match kind {
        ActionKind::Rollback => (limits.rollback_per_30m, limits.rollback_per_day),
        ActionKind::Scale => (limits.scale_per_30m, limits.scale_per_day),
        // Not automatic actions; a person asked.
        ActionKind::ForceDeploy | ActionKind::ScaleToZero => return cooldown(ledger, now, limits),
    };
    let same = |e: &&LedgerEntry| e.automatic && e.action == kind.as_str() && e.status == "executed";
    let in_30m = ledger.iter().filter(same).filter(|e| now - e.at < 30 * 60).count();
    let in_day = ledger.iter().filter(same).filter(|e| now - e.at < 24 * 60 * 60).count();
    if in_30m >= per_30m {
        return Err(format!(
            "budget exhausted: {in_30m} automatic {} in the last 30 minutes (limit {per_30m})",
            kind.as_str()
        ));
    }
    if in_day >= per_day {
        return Err(format!(
            "budget exhausted: {in_day} automatic {} in the last 24 hours (limit {per_day})",
            kind.as_str()
        ));
    }
    cooldown(ledger, now, limits)
}

/// Any executed action on the service starts a cooldown for automatic ones.
fn cooldown(ledger: &[LedgerEntry], now: i64, limits: &Limits) -> Result<(), String> {
    let last = ledger.iter().filter(|e| e.status == "executed").map(|e| e.at).max();
    if let Some(last) = last
        && now - last < limits.cooldown_seconds
    {
        return Err(format!(
            "cooldown: an action was executed {}s ago (cooldown {}s)",
            now - last,
            limits.cooldown_seconds
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, action: &str, status: &str, automatic: bool) -> LedgerEntry {
        LedgerEntry {
            at,
            action: action.into(),
            status: status.into(),
            automatic,
            from: None,
            to: None,
            detail: String::new(),
        }
    }

    #[test]
    fn mode_table() {
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
        assert!(check_budget(ActionKind::Rollback, &recent, now, &l).unwrap_err().contains("30 minutes"));
        let day = [
            entry(now - 3 * 3600, "rollback", "executed", true),
            entry(now - 5 * 3600, "rollback", "executed", true),
            entry(now - 7 * 3600, "rollback", "executed", true),
        ];
        assert!(check_budget(ActionKind::Rollback, &day, now, &l).unwrap_err().contains("24 hours"));
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
        assert!(check_budget(ActionKind::Rollback, &ledger, now, &l).unwrap_err().contains("budget exhausted"));
    }

    #[test]
    fn any_recent_execution_starts_a_cooldown() {
        let l = Limits::default();
        let now = 100_000;
        let ledger = [entry(now - 60, "scale", "executed", false)];
        assert!(check_budget(ActionKind::Rollback, &ledger, now, &l).unwrap_err().contains("cooldown"));
        assert!(check_budget(ActionKind::Scale, &ledger, now, &l).unwrap_err().contains("cooldown"));
    }

    #[test]
    fn scaling_has_its_own_budget() {
        let l = Limits::default();
        let now = 100_000;
        let ledger: Vec<_> = (0..3).map(|i| entry(now - 400 - i * 300, "scale", "executed", true)).collect();
        assert!(check_budget(ActionKind::Scale, &ledger, now, &l).unwrap_err().contains("budget"));
        assert!(check_budget(ActionKind::Rollback, &ledger, now, &l).is_ok());
    }
}
