//! The deployment gate: the verdict of the `deployment-hook` function on a
//! target service revision (green) at one lifecycle stage. Pure: plain
//! facts in, the answer ECS reads out (`hookStatus`, `callBackDelay`,
//! `hookDetails`).
//!
//! Rules, in order (each a row of the table tests below):
//!
//! 1. **Opted out**: the service tag `autopilot:hook` is `off` (or
//!    `false`, `disabled`, `skip`) → `SUCCEEDED` at once.
//! 2. **Unreadable**: the service (or its stopped tasks) could not be read
//!    within the read budget → `HOOK_ON_READ_FAILURE`: `fail` (default,
//!    fail safe: `FAILED`, ECS rolls back) or `pass` (`SUCCEEDED`).
//! 3. **Definite failure of a green task**: a task of the target revision
//!    stopped with a *definite* cause ([`DEFINITE`]: `image-pull`,
//!    `platform-mismatch`, `secrets`, `out-of-memory`, `essential-exit`,
//!    `health-check` — causes the revision itself brings; `network`,
//!    `capacity`, `spot-interruption`, `expected`, `unknown` are not the
//!    revision's fault and never fail the gate alone) → `FAILED`, naming it.
//!    The service's open incident counts the same way when one of its
//!    open problems is about the target revision and its cause is definite
//!    (the stops `ecs-events` already classified).
//! 4. **Green targets unhealthy**: a target group of the service whose
//!    registered targets include an `unhealthy` one and no `healthy` one →
//!    `FAILED` (`unhealthy-targets`).
//! 5. **Alarm**: an alarm of the service (named in `autopilot:hook-alarms`,
//!    or mapped to the service by its dimensions) that entered ALARM at or
//!    after the stage began → `FAILED`, naming it.
//! 6. **Error lines**: the target revision's error lines per task above the
//!    running (blue) revision's over the same window, with at least
//!    [`MIN_ERROR_LINES`] lines → `FAILED` (the flow reads up to three
//!    running tasks of each revision; without tasks of both, no comparison).
//! 7. Otherwise `IN_PROGRESS` with `callBackDelay` until the bake time
//!    (`autopilot:bake-seconds`, else `HOOK_BAKE_SECONDS`, default 300) has
//!    passed since the stage began, then `SUCCEEDED`. At stages where the
//!    target revision runs no task yet (`RECONCILE_SERVICE`,
//!    `PRE_SCALE_UP`) there is nothing to bake: `SUCCEEDED` once the checks
//!    are clean. A check that could not be read is not clean: at the end of
//!    the bake it is judged as rule 2.
//!
//! When the stage began travels in `hookDetails.autopilot` (`since`), so
//! ECS's repeated calls continue the same bake; the flow also keeps it in
//! the state table, so a Lambda retry of the first call (whose payload has
//! no `hookDetails` of ours yet) does not restart it: the earlier of both
//! wins. A new stage, a new linear/canary step (another production weight)
//! or another target revision starts a new bake.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::outcome::Cause;

/// Causes that fail the gate at once: the revision brings them.
pub const DEFINITE: &[Cause] = &[
    Cause::ImagePull,
    Cause::PlatformMismatch,
    Cause::Secrets,
    Cause::OutOfMemory,
    Cause::EssentialExit,
    Cause::HealthCheck,
];

/// Error lines below this many never fail the gate (noise floor).
pub const MIN_ERROR_LINES: u64 = 5;

/// Default bake time (`HOOK_BAKE_SECONDS`).
pub const DEFAULT_BAKE_SECONDS: i64 = 300;
/// Default callback delay (`HOOK_CALLBACK_SECONDS`); ECS's own default is 30.
pub const DEFAULT_CALLBACK_SECONDS: i64 = 30;

/// Stages at which the target revision runs no task yet.
const NO_TASKS_YET: &[&str] = &["RECONCILE_SERVICE", "PRE_SCALE_UP"];

/// `hookStatus`, as ECS documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStatus {
    Succeeded,
    Failed,
    InProgress,
}

impl HookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::InProgress => "IN_PROGRESS",
        }
    }
}

/// What a failed read means (`HOOK_ON_READ_FAILURE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnReadFailure {
    /// Fail safe: `FAILED`, ECS rolls back (the default).
    #[default]
    Fail,
    /// `SUCCEEDED`: the deployment goes on unjudged.
    Pass,
}

impl OnReadFailure {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "fail" | "failed" => Some(Self::Fail),
            "pass" | "succeed" | "succeeded" => Some(Self::Pass),
            _ => None,
        }
    }
}

/// The gate's settings, from the environment (service tags may override the bake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// `HOOK_BAKE_SECONDS` (300).
    pub bake_seconds: i64,
    /// `HOOK_CALLBACK_SECONDS` (30): the longest `callBackDelay` answered.
    pub callback_seconds: i64,
    /// `HOOK_ON_READ_FAILURE` (`fail`).
    pub on_read_failure: OnReadFailure,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            bake_seconds: DEFAULT_BAKE_SECONDS,
            callback_seconds: DEFAULT_CALLBACK_SECONDS,
            on_read_failure: OnReadFailure::Fail,
        }
    }
}

impl GateSettings {
    /// Read from `get` (the environment): an unusable value keeps its
    /// default and is named in the returned notes.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let mut s = Self::default();
        let mut notes = Vec::new();
        let mut seconds = |name: &str, slot: &mut i64, min: i64| {
            if let Some(v) = get(name).filter(|v| !v.trim().is_empty()) {
                match v.trim().parse::<i64>() {
                    Ok(n) if n >= min => *slot = n,
                    _ => notes.push(format!("{name}={v:?} is not a whole number of seconds ≥ {min}; using {slot}")),
                }
            }
        };
        seconds("HOOK_BAKE_SECONDS", &mut s.bake_seconds, 0);
        seconds("HOOK_CALLBACK_SECONDS", &mut s.callback_seconds, 1);
        if let Some(v) = get("HOOK_ON_READ_FAILURE").filter(|v| !v.trim().is_empty()) {
            match OnReadFailure::parse(&v) {
                Some(p) => s.on_read_failure = p,
                None => notes.push(format!("HOOK_ON_READ_FAILURE={v:?} is neither fail nor pass; using fail")),
            }
        }
        (s, notes)
    }
}

/// The service's tags that concern the gate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateTags {
    /// `autopilot:hook` is off.
    pub opted_out: bool,
    /// `autopilot:bake-seconds`.
    pub bake_seconds: Option<i64>,
    /// `autopilot:hook-alarms`: alarm names (comma list) to watch.
    pub alarms: Vec<String>,
    /// Tags that were ignored, and why.
    pub notes: Vec<String>,
}

impl GateTags {
    pub fn from_tags(tags: &[(String, String)]) -> Self {
        let tag = |k: &str| tags.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.trim());
        let mut out = Self::default();
        if let Some(v) = tag("autopilot:hook") {
            out.opted_out = matches!(v.to_ascii_lowercase().as_str(), "off" | "false" | "disabled" | "skip");
        }
        if let Some(v) = tag("autopilot:bake-seconds") {
            match v.parse::<i64>() {
                Ok(n) if n >= 0 => out.bake_seconds = Some(n),
                _ => out.notes.push(format!("tag autopilot:bake-seconds={v:?} is not a whole number of seconds")),
            }
        }
        if let Some(v) = tag("autopilot:hook-alarms") {
            out.alarms = v.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect();
        }
        out
    }
}

/// A stopped task of the target revision, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreenStop {
    pub task: String,
    pub cause: Cause,
    pub explanation: String,
}

/// One target group's health counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupHealth {
    pub target_group: String,
    pub healthy: usize,
    pub unhealthy: usize,
}

/// An alarm of the service, as read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmNow {
    pub name: String,
    pub in_alarm: bool,
    /// When it entered its state (epoch seconds).
    pub since: Option<i64>,
}

/// Error lines counted over the same period for each revision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorLines {
    pub green: u64,
    pub green_tasks: u32,
    pub blue: u64,
    pub blue_tasks: u32,
}

/// What was read about the service for this call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateFacts {
    pub tags: GateTags,
    pub green_stops: Vec<GreenStop>,
    /// The open incident's definite cause on the target revision, and its id.
    pub incident: Option<(Cause, String)>,
    pub targets: Vec<GroupHealth>,
    pub alarms: Vec<AlarmNow>,
    pub errors: Option<ErrorLines>,
    /// Checks that could not be read (named).
    pub unread: Vec<String>,
}

/// The reads for this call.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Facts(Box<GateFacts>),
    /// The service (or its tasks) could not be read: why.
    Unreadable(String),
}

/// The state the gate keeps between calls (in `hookDetails.autopilot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateState {
    pub v: u32,
    /// The target revision ARN (or "unknown").
    pub revision: String,
    pub stage: String,
    /// The target revision's production weight at this step.
    #[serde(default)]
    pub weight: f64,
    /// When this stage (step) began for the gate (epoch seconds).
    pub since: i64,
    /// Calls answered so far in this stage.
    #[serde(default)]
    pub checks: u32,
}

impl GateState {
    /// Our state in `hookDetails` (under `autopilot`), if it is there and valid.
    pub fn from_hook_details(details: &Value) -> Option<Self> {
        details.get("autopilot").and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    fn same_step(&self, revision: &str, stage: &str, weight: f64) -> bool {
        self.revision == revision && self.stage == stage && (self.weight - weight).abs() < 0.001
    }
}

/// Everything the verdict depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct GateInput {
    pub revision: String,
    pub stage: String,
    pub weight: f64,
    pub now: i64,
    /// From `hookDetails` of this call.
    pub carried: Option<GateState>,
    /// When the state table first saw this step, if it did.
    pub stored_since: Option<i64>,
    pub settings: GateSettings,
    pub read: Read,
}

/// The verdict: the answer to ECS and why.
#[derive(Debug, Clone, PartialEq)]
pub struct GateVerdict {
    pub status: HookStatus,
    pub callback_delay: Option<i64>,
    /// The cause a `FAILED` names (`unknown` when none is known).
    pub cause: Cause,
    /// One line a person can act on.
    pub reason: String,
    /// The state to carry in `hookDetails`.
    pub state: GateState,
    /// Which rule decided (for the decision log and tests).
    pub rule: &'static str,
}

impl GateVerdict {
    /// The response ECS documents: `hookStatus`, `callBackDelay` (only with
    /// `IN_PROGRESS`), `hookDetails` (what came in, with our state under `autopilot`).
    pub fn response(&self, incoming: &Value) -> Value {
        let mut details = match incoming {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        details.insert("autopilot".into(), serde_json::to_value(&self.state).unwrap_or(Value::Null));
        let mut out = json!({"hookStatus": self.status.as_str(), "hookDetails": Value::Object(details)});
        if let (HookStatus::InProgress, Some(d)) = (self.status, self.callback_delay) {
            out["callBackDelay"] = json!(d);
        }
        out
    }
}

/// When this stage (step) began: the earliest of what the call carries and
/// what the state table keeps, else now.
pub fn stage_since(input: &GateInput) -> i64 {
    let carried =
        input.carried.as_ref().filter(|s| s.same_step(&input.revision, &input.stage, input.weight)).map(|s| s.since);
    [carried, input.stored_since].into_iter().flatten().filter(|t| *t <= input.now).min().unwrap_or(input.now)
}

/// The verdict (rules in the module doc, in order).
pub fn judge(input: &GateInput) -> GateVerdict {
    let since = stage_since(input);
    let checks = input
        .carried
        .as_ref()
        .filter(|s| s.same_step(&input.revision, &input.stage, input.weight))
        .map_or(0, |s| s.checks)
        .saturating_add(1);
    let state = GateState {
        v: 1,
        revision: input.revision.clone(),
        stage: input.stage.clone(),
        weight: input.weight,
        since,
        checks,
    };
    let verdict = |status, cause, reason: String, rule| GateVerdict {
        status,
        callback_delay: None,
        cause,
        reason,
        state: state.clone(),
        rule,
    };
    let on_failure = |why: String, rule| match input.settings.on_read_failure {
        OnReadFailure::Fail => verdict(
            HookStatus::Failed,
            Cause::Unknown,
            format!("{why}; HOOK_ON_READ_FAILURE=fail: failing safe, ECS rolls the deployment back"),
            rule,
        ),
        OnReadFailure::Pass => verdict(
            HookStatus::Succeeded,
            Cause::Unknown,
            format!("{why}; HOOK_ON_READ_FAILURE=pass: the deployment goes on unjudged"),
            rule,
        ),
    };
    let facts = match &input.read {
        Read::Unreadable(why) => return on_failure(format!("not judged: {why}"), "unreadable"),
        Read::Facts(f) => f,
    };
    if facts.tags.opted_out {
        return verdict(
            HookStatus::Succeeded,
            Cause::Expected,
            "the service opted out of the gate (tag autopilot:hook=off)".into(),
            "opted-out",
        );
    }
    if let Some(stop) = facts.green_stops.iter().find(|s| DEFINITE.contains(&s.cause)) {
        return verdict(
            HookStatus::Failed,
            stop.cause,
            format!("task {} of the target revision stopped: {} ({})", stop.task, stop.cause, stop.explanation),
            "definite-stop",
        );
    }
    if let Some((cause, incident)) = facts.incident.as_ref().filter(|(c, _)| DEFINITE.contains(c)) {
        return verdict(
            HookStatus::Failed,
            *cause,
            format!("incident {incident} holds failed tasks of the target revision: {cause}"),
            "incident",
        );
    }
    if let Some(g) = facts.targets.iter().find(|g| g.unhealthy > 0 && g.healthy == 0) {
        return verdict(
            HookStatus::Failed,
            Cause::UnhealthyTargets,
            format!("target group {} has {} unhealthy and no healthy target", g.target_group, g.unhealthy),
            "unhealthy-targets",
        );
    }
    if let Some(a) = facts.alarms.iter().find(|a| a.in_alarm && a.since.is_some_and(|t| t >= since)) {
        return verdict(
            HookStatus::Failed,
            Cause::OtherAlarm,
            format!("alarm {} entered ALARM since the stage began", a.name),
            "alarm",
        );
    }
    if let Some(e) = facts.errors
        && e.green >= MIN_ERROR_LINES
        && rate(e.green, e.green_tasks) > rate(e.blue, e.blue_tasks)
    {
        return verdict(
            HookStatus::Failed,
            Cause::Unknown,
            format!(
                "the target revision logs {} error lines ({} tasks) against {} ({} tasks) of the running revision",
                e.green, e.green_tasks, e.blue, e.blue_tasks
            ),
            "error-lines",
        );
    }
    let bake = facts.tags.bake_seconds.unwrap_or(input.settings.bake_seconds);
    let no_tasks = NO_TASKS_YET.contains(&input.stage.as_str());
    let elapsed = input.now - since;
    if no_tasks || elapsed >= bake {
        if !facts.unread.is_empty() {
            return on_failure(format!("checks not read: {}", facts.unread.join("; ")), "unread-checks");
        }
        let reason = if no_tasks {
            format!("{}: the target revision runs no task yet; checks clean", input.stage)
        } else {
            format!("{}: clean for {elapsed}s (bake {bake}s, {checks} checks)", input.stage)
        };
        return verdict(HookStatus::Succeeded, Cause::Expected, reason, "baked");
    }
    let remaining = bake - elapsed;
    GateVerdict {
        callback_delay: Some(remaining.clamp(1, input.settings.callback_seconds.max(1))),
        ..verdict(
            HookStatus::InProgress,
            Cause::Expected,
            format!("{}: clean so far, baking ({elapsed}s of {bake}s)", input.stage),
            "baking",
        )
    }
}

/// Error lines per task (a revision without tasks counts as one).
fn rate(lines: u64, tasks: u32) -> f64 {
    lines as f64 / f64::from(tasks.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREEN: &str = "arn:aws:ecs:us-east-1:1:service-revision/prod/api/2";

    fn facts() -> GateFacts {
        GateFacts {
            targets: vec![GroupHealth { target_group: "tg-green".into(), healthy: 2, unhealthy: 0 }],
            ..Default::default()
        }
    }

    fn input(read: Read) -> GateInput {
        GateInput {
            revision: GREEN.into(),
            stage: "POST_TEST_TRAFFIC_SHIFT".into(),
            weight: 0.0,
            now: 1_000,
            carried: None,
            stored_since: None,
            settings: GateSettings { bake_seconds: 300, callback_seconds: 30, on_read_failure: OnReadFailure::Fail },
            read,
        }
    }

    fn with(f: impl FnOnce(&mut GateFacts)) -> GateInput {
        let mut x = facts();
        f(&mut x);
        input(Read::Facts(Box::new(x)))
    }

    fn stop(cause: Cause) -> GreenStop {
        GreenStop { task: "t1".into(), cause, explanation: "why".into() }
    }

    fn carried(since: i64, stage: &str) -> GateState {
        GateState { v: 1, revision: GREEN.into(), stage: stage.into(), weight: 0.0, since, checks: 4 }
    }

    #[test]
    fn each_rule_should_decide_its_row() {
        let rows: Vec<(&str, GateInput, HookStatus, Cause, &str)> = vec![
            ("clean first call", with(|_| {}), HookStatus::InProgress, Cause::Expected, "baking"),
            (
                "image pull",
                with(|f| f.green_stops = vec![stop(Cause::ImagePull)]),
                HookStatus::Failed,
                Cause::ImagePull,
                "definite-stop",
            ),
            (
                "platform mismatch",
                with(|f| f.green_stops = vec![stop(Cause::Capacity), stop(Cause::PlatformMismatch)]),
                HookStatus::Failed,
                Cause::PlatformMismatch,
                "definite-stop",
            ),
            (
                "oom",
                with(|f| f.green_stops = vec![stop(Cause::OutOfMemory)]),
                HookStatus::Failed,
                Cause::OutOfMemory,
                "definite-stop",
            ),
            (
                "secrets",
                with(|f| f.green_stops = vec![stop(Cause::Secrets)]),
                HookStatus::Failed,
                Cause::Secrets,
                "definite-stop",
            ),
            (
                "crash",
                with(|f| f.green_stops = vec![stop(Cause::EssentialExit)]),
                HookStatus::Failed,
                Cause::EssentialExit,
                "definite-stop",
            ),
            (
                "health check",
                with(|f| f.green_stops = vec![stop(Cause::HealthCheck)]),
                HookStatus::Failed,
                Cause::HealthCheck,
                "definite-stop",
            ),
            (
                "capacity, network, spot, unknown are not the revision's fault",
                with(|f| {
                    f.green_stops = vec![
                        stop(Cause::Capacity),
                        stop(Cause::Network),
                        stop(Cause::SpotInterruption),
                        stop(Cause::Unknown),
                    ]
                }),
                HookStatus::InProgress,
                Cause::Expected,
                "baking",
            ),
            (
                "incident names a definite cause",
                with(|f| f.incident = Some((Cause::Secrets, "inc-1".into()))),
                HookStatus::Failed,
                Cause::Secrets,
                "incident",
            ),
            (
                "incident with an indefinite cause",
                with(|f| f.incident = Some((Cause::Capacity, "inc-1".into()))),
                HookStatus::InProgress,
                Cause::Expected,
                "baking",
            ),
            (
                "all green targets unhealthy",
                with(|f| f.targets.push(GroupHealth { target_group: "tg-alt".into(), healthy: 0, unhealthy: 2 })),
                HookStatus::Failed,
                Cause::UnhealthyTargets,
                "unhealthy-targets",
            ),
            (
                "some unhealthy, some healthy",
                with(|f| f.targets = vec![GroupHealth { target_group: "tg".into(), healthy: 1, unhealthy: 1 }]),
                HookStatus::InProgress,
                Cause::Expected,
                "baking",
            ),
            (
                "alarm entered ALARM during the stage",
                with(|f| f.alarms = vec![AlarmNow { name: "api-5xx".into(), in_alarm: true, since: Some(1_000) }]),
                HookStatus::Failed,
                Cause::OtherAlarm,
                "alarm",
            ),
            (
                "alarm in ALARM from before the stage",
                with(|f| f.alarms = vec![AlarmNow { name: "api-5xx".into(), in_alarm: true, since: Some(999) }]),
                HookStatus::InProgress,
                Cause::Expected,
                "baking",
            ),
            (
                "alarm OK",
                with(|f| f.alarms = vec![AlarmNow { name: "api-5xx".into(), in_alarm: false, since: Some(1_000) }]),
                HookStatus::InProgress,
                Cause::Expected,
                "baking",
            ),
            (
                "green logs more errors per task than blue",
                with(|f| f.errors = Some(ErrorLines { green: 12, green_tasks: 2, blue: 10, blue_tasks: 4 })),
                HookStatus::Failed,
                Cause::Unknown,
                "error-lines",
            ),
            (
                "green errors below the noise floor",
                with(|f| f.errors = Some(ErrorLines { green: 4, green_tasks: 1, blue: 0, blue_tasks: 4 })),
                HookStatus::InProgress,
                Cause::Expected,
                "baking",
            ),
            (
                "green errors not above blue",
                with(|f| f.errors = Some(ErrorLines { green: 10, green_tasks: 2, blue: 20, blue_tasks: 4 })),
                HookStatus::InProgress,
                Cause::Expected,
                "baking",
            ),
            (
                "opted out wins over a failure",
                with(|f| {
                    f.tags.opted_out = true;
                    f.green_stops = vec![stop(Cause::ImagePull)];
                }),
                HookStatus::Succeeded,
                Cause::Expected,
                "opted-out",
            ),
            (
                "unreadable, fail safe",
                input(Read::Unreadable("ecs:DescribeServices: cluster not found".into())),
                HookStatus::Failed,
                Cause::Unknown,
                "unreadable",
            ),
            (
                "unreadable, pass",
                GateInput {
                    settings: GateSettings { on_read_failure: OnReadFailure::Pass, ..GateSettings::default() },
                    ..input(Read::Unreadable("timeout".into()))
                },
                HookStatus::Succeeded,
                Cause::Unknown,
                "unreadable",
            ),
            (
                "baked clean",
                GateInput { carried: Some(carried(700, "POST_TEST_TRAFFIC_SHIFT")), ..with(|_| {}) },
                HookStatus::Succeeded,
                Cause::Expected,
                "baked",
            ),
            (
                "baked but a check unread: fail safe",
                GateInput {
                    carried: Some(carried(700, "POST_TEST_TRAFFIC_SHIFT")),
                    ..with(|f| f.unread = vec!["elb: throttled".into()])
                },
                HookStatus::Failed,
                Cause::Unknown,
                "unread-checks",
            ),
            (
                "a tag's bake of 0 passes at once",
                with(|f| f.tags.bake_seconds = Some(0)),
                HookStatus::Succeeded,
                Cause::Expected,
                "baked",
            ),
            (
                "no tasks yet at PRE_SCALE_UP",
                GateInput { stage: "PRE_SCALE_UP".into(), ..with(|_| {}) },
                HookStatus::Succeeded,
                Cause::Expected,
                "baked",
            ),
        ];
        for (name, input, status, cause, rule) in rows {
            let v = judge(&input);
            assert_eq!((v.status, v.cause, v.rule), (status, cause, rule), "{name}: {}", v.reason);
        }
    }

    #[test]
    fn the_bake_should_continue_across_calls_and_restart_on_a_new_step() {
        // Carried from a previous answer of this stage: continues.
        let i = GateInput { carried: Some(carried(900, "POST_TEST_TRAFFIC_SHIFT")), ..with(|_| {}) };
        let v = judge(&i);
        assert_eq!((v.state.since, v.state.checks, v.callback_delay), (900, 5, Some(30)));
        // Near the end the callback is what remains.
        let i = GateInput { carried: Some(carried(710, "POST_TEST_TRAFFIC_SHIFT")), ..with(|_| {}) };
        assert_eq!(judge(&i).callback_delay, Some(10));
        // A carried state of another stage does not count.
        let i = GateInput { carried: Some(carried(100, "POST_SCALE_UP")), ..with(|_| {}) };
        assert_eq!((judge(&i).status, judge(&i).state.since), (HookStatus::InProgress, 1_000));
        // Another production weight (the next linear step) starts anew.
        let i = GateInput { weight: 20.0, carried: Some(carried(100, "POST_TEST_TRAFFIC_SHIFT")), ..with(|_| {}) };
        assert_eq!(judge(&i).state.since, 1_000);
        // A retry of the first call (no hookDetails yet) keeps the stored start.
        let i = GateInput { stored_since: Some(950), ..with(|_| {}) };
        assert_eq!(judge(&i).state.since, 950);
        // The earlier of both wins; a start in the future is ignored.
        let i = GateInput {
            stored_since: Some(950),
            carried: Some(carried(960, "POST_TEST_TRAFFIC_SHIFT")),
            ..with(|_| {})
        };
        assert_eq!(judge(&i).state.since, 950);
        let i = GateInput { stored_since: Some(5_000), ..with(|_| {}) };
        assert_eq!(judge(&i).state.since, 1_000);
    }

    #[test]
    fn the_same_call_twice_should_give_the_same_answer() {
        let i = GateInput { carried: Some(carried(900, "POST_TEST_TRAFFIC_SHIFT")), ..with(|_| {}) };
        let (a, b) = (judge(&i), judge(&i));
        assert_eq!(a, b);
        assert_eq!(a.response(&Value::Null), b.response(&Value::Null));
    }

    #[test]
    fn the_response_should_have_exactly_the_documented_fields() {
        let incoming = json!({"team": "payments", "autopilot": {"old": true}});
        let v = judge(&with(|_| {}));
        let r = v.response(&incoming);
        // Sorted: `cargo test --workspace` turns on serde_json's `preserve_order`.
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["callBackDelay", "hookDetails", "hookStatus"]);
        assert_eq!(r["hookStatus"], "IN_PROGRESS");
        assert_eq!(r["callBackDelay"], 30);
        assert_eq!(r["hookDetails"]["team"], "payments");
        assert_eq!(GateState::from_hook_details(&r["hookDetails"]), Some(v.state.clone()));
        let failed = judge(&with(|f| f.green_stops = vec![stop(Cause::ImagePull)])).response(&Value::Null);
        assert_eq!(failed["hookStatus"], "FAILED");
        assert!(failed.get("callBackDelay").is_none());
    }

    #[test]
    fn settings_and_tags_should_read_leniently() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let (s, notes) = GateSettings::from_lookup(env(&[]));
        assert_eq!((s, notes.len()), (GateSettings::default(), 0));
        let (s, notes) = GateSettings::from_lookup(env(&[
            ("HOOK_BAKE_SECONDS", "5"),
            ("HOOK_CALLBACK_SECONDS", "2"),
            ("HOOK_ON_READ_FAILURE", "pass"),
        ]));
        assert_eq!(
            (s.bake_seconds, s.callback_seconds, s.on_read_failure, notes.len()),
            (5, 2, OnReadFailure::Pass, 0)
        );
        let (s, notes) =
            GateSettings::from_lookup(env(&[("HOOK_BAKE_SECONDS", "soon"), ("HOOK_ON_READ_FAILURE", "maybe")]));
        assert_eq!((s.bake_seconds, s.on_read_failure, notes.len()), (300, OnReadFailure::Fail, 2));
        let t = GateTags::from_tags(&[
            ("autopilot:hook".into(), "OFF".into()),
            ("autopilot:bake-seconds".into(), "45".into()),
            ("autopilot:hook-alarms".into(), "a, b,".into()),
        ]);
        assert_eq!((t.opted_out, t.bake_seconds, t.alarms.clone()), (true, Some(45), vec!["a".into(), "b".into()]));
        let t = GateTags::from_tags(&[
            ("autopilot:hook".into(), "on".into()),
            ("autopilot:bake-seconds".into(), "-1".into()),
        ]);
        assert_eq!((t.opted_out, t.bake_seconds, t.notes.len()), (false, None, 1));
    }
}
