//! The incident lifecycle as pure decisions: given the stored incident (or
//! none), a signal, the time and the policy, what happens next and what must
//! be said. The flows (`flows::incident`) apply these decisions with
//! conditional writes; nothing here touches AWS or the clock.
//!
//! The guarantees this module encodes:
//!
//! - An incident's opening alert is *pending* until a publish succeeded; a
//!   pending alert is sent by the invocation that opened the incident, or —
//!   when that one died or failed (its lease is over) or this is its own
//!   retry (same token) — by the next signal.
//! - Severity never falls within an incident; the cause is refined, never lost.
//! - Failures are counted once per task, per revision, within the window.
//! - Every executed (or failed) action on the subject while the incident is
//!   open is announced in one of its messages, whichever invocation executed
//!   it: the ledger is the outbox, the incident remembers what it announced.
//! - A skipped or planned action is not news by itself.

use crate::cause::Cause;
use crate::outcome::Severity;
use crate::snapshot::{LedgerEntry, LedgerStatus};

/// What an incident is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// An ECS service.
    Service { cluster: String, service: String },
    /// One execution of a CodePipeline pipeline: its stage and action
    /// failures join one incident; a later successful execution of the
    /// pipeline resolves it.
    Pipeline { pipeline: String, execution: String },
}

impl Subject {
    pub fn service(cluster: impl Into<String>, service: impl Into<String>) -> Self {
        Self::Service { cluster: cluster.into(), service: service.into() }
    }

    pub fn pipeline(pipeline: impl Into<String>, execution: impl Into<String>) -> Self {
        Self::Pipeline { pipeline: pipeline.into(), execution: execution.into() }
    }

    /// The state table's partition key for everything about this subject.
    pub fn key(&self) -> String {
        match self {
            Self::Service { cluster, service } => format!("service#{cluster}/{service}"),
            // Pipeline names never hold '/': [A-Za-z0-9.@_-]+.
            Self::Pipeline { pipeline, execution } => format!("pipeline#{pipeline}/{execution}"),
        }
    }

    /// The subject of a partition key written by [`Subject::key`].
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(rest) = key.strip_prefix("service#") {
            let (cluster, service) = rest.split_once('/')?;
            return (!cluster.is_empty() && !service.is_empty()).then(|| Self::service(cluster, service));
        }
        let (pipeline, execution) = key.strip_prefix("pipeline#")?.split_once('/')?;
        (!pipeline.is_empty() && !execution.is_empty()).then(|| Self::pipeline(pipeline, execution))
    }

    /// `cluster/service` or `pipeline <name>`, for messages.
    pub fn label(&self) -> String {
        match self {
            Self::Service { cluster, service } => format!("{cluster}/{service}"),
            Self::Pipeline { pipeline, execution } => format!("pipeline {pipeline} execution {execution}"),
        }
    }

    /// `(cluster, service)` of a service subject.
    pub fn as_service(&self) -> Option<(&str, &str)> {
        match self {
            Self::Service { cluster, service } => Some((cluster, service)),
            Self::Pipeline { .. } => None,
        }
    }

    /// `(pipeline, execution)` of a pipeline subject.
    pub fn as_pipeline(&self) -> Option<(&str, &str)> {
        match self {
            Self::Pipeline { pipeline, execution } => Some((pipeline, execution)),
            Self::Service { .. } => None,
        }
    }
}

/// One failed task, counted once however many events report it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailedTask {
    /// `family:revision` of its task definition, empty when unknown.
    pub revision: String,
    /// Epoch seconds it stopped (or was reported).
    pub stopped_at: i64,
    /// The task id (last segment of its ARN).
    pub task: String,
}

impl FailedTask {
    /// One string set element: `<revision>|<stopped_at>|<task>`.
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.revision, self.stopped_at, self.task)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '|');
        let revision = parts.next()?.to_string();
        let stopped_at = parts.next()?.parse().ok()?;
        let task = parts.next().filter(|t| !t.is_empty())?.to_string();
        Some(Self { revision, stopped_at, task })
    }
}

/// Where the opening alert stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// Not yet published. `by` (an invocation token) is sending it until `until`.
    Pending { by: String, until: i64 },
    /// Published at `at`.
    Delivered { at: i64 },
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: String,
    pub subject: Subject,
    pub cause: Cause,
    pub severity: Severity,
    pub summary: String,
    pub opened_at: i64,
    pub last_event_at: i64,
    pub alert: Alert,
    /// The last message of any kind that went out (opening alert or update).
    pub last_notified_at: Option<i64>,
    /// Failed tasks counted into this incident, each once.
    pub failed_tasks: Vec<FailedTask>,
    /// Events of any kind counted into this incident.
    pub events: u32,
    pub evidence: Option<String>,
    pub message_id: Option<String>,
    /// Notes for the resolution message ("ECS circuit breaker rolled back", …).
    pub notes: Vec<String>,
    /// What opened it: `ecs`, `alarm:<name>` or `pipeline`. An alarm's OK
    /// resolves only the incident that alarm opened; ECS's steady state any.
    pub source: String,
    /// Ledger keys of the actions already announced in its messages.
    pub announced: Vec<String>,
    /// Escalations sent (by the scheduled escalation job).
    pub escalations: u32,
    /// The impact the opening alert stated (tasks running, targets healthy).
    pub impact: Vec<String>,
    /// The owning team (service tag `autopilot:team`), as the opening alert
    /// found it: later messages (resolution, escalation) are routed the same way.
    pub team: Option<String>,
}

impl Incident {
    /// A new incident id: time-ordered, readable, unique per subject, second and opener.
    pub fn new_id(subject: &Subject, now: i64, salt: &str) -> String {
        use sha2::{Digest, Sha256};
        let when = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default().format("%Y%m%d-%H%M%S");
        // A salt unique to the opening attempt (the flow's): two incidents of
        // one subject opened in the same second — even by one invocation's
        // retries — never share an id, nor their evidence prefix.
        let digest = Sha256::digest(format!("{}/{now}/{salt}", subject.key()).as_bytes());
        format!("inc-{when}-{}", crate::arn::hex(&digest[..3]))
    }

    /// A freshly opened incident whose alert `token` is sending until
    /// `lease_until`; `salt` makes its id unique (see [`Incident::new_id`]).
    pub fn opening(subject: Subject, opening: &Opening, now: i64, token: &str, lease_until: i64, salt: &str) -> Self {
        Self {
            id: Self::new_id(&subject, now, salt),
            subject,
            cause: opening.cause,
            severity: opening.severity,
            summary: opening.summary.clone(),
            opened_at: now,
            last_event_at: now,
            alert: Alert::Pending { by: token.to_string(), until: lease_until },
            last_notified_at: None,
            failed_tasks: opening.failed_tasks.clone(),
            events: 1,
            evidence: None,
            message_id: None,
            notes: Vec::new(),
            source: opening.source.clone(),
            announced: Vec::new(),
            escalations: 0,
            impact: Vec::new(),
            team: None,
        }
    }

    /// All failed tasks counted, each once.
    pub fn failures(&self) -> u32 {
        self.failed_tasks.len() as u32
    }

    /// Failed tasks of `revision` (any revision when `None`) that stopped
    /// within `window_seconds` of `now`: what makes a crash loop.
    pub fn failures_in(&self, revision: Option<&str>, now: i64, window_seconds: i64) -> u32 {
        count_failures(&self.failed_tasks, revision, now, window_seconds)
    }

    pub fn alert_delivered(&self) -> bool {
        matches!(self.alert, Alert::Delivered { .. })
    }
}

/// Failed tasks of `revision` (any when `None` or unknown) within the window.
pub fn count_failures(tasks: &[FailedTask], revision: Option<&str>, now: i64, window_seconds: i64) -> u32 {
    let mut seen: Vec<&str> = Vec::new();
    for t in tasks {
        let same_revision = revision.is_none_or(|r| r.is_empty() || t.revision.is_empty() || t.revision == r);
        if same_revision && t.stopped_at >= now - window_seconds && !seen.contains(&t.task.as_str()) {
            seen.push(&t.task);
        }
    }
    seen.len() as u32
}

/// What an opening carries before diagnosis refines it at delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    pub severity: Severity,
    pub cause: Cause,
    pub summary: String,
    pub source: String,
    pub failed_tasks: Vec<FailedTask>,
}

/// The lifecycle's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// An incident with no signal for this long is over (expired).
    pub window_seconds: i64,
    /// At most one update per interval, unless severity rises or an action is news.
    pub update_interval_seconds: i64,
}

/// A failed pipeline stays failed without further events until someone
/// fixes it: its execution's incident lasts this long without a signal
/// (a service's lasts one incident window).
pub const PIPELINE_WINDOW_SECONDS: i64 = 7 * 24 * 3600;

impl Policy {
    /// How long `subject`'s incident lasts without a signal.
    pub fn window_for(&self, subject: &Subject) -> i64 {
        match subject {
            Subject::Service { .. } => self.window_seconds,
            Subject::Pipeline { .. } => self.window_seconds.max(PIPELINE_WINDOW_SECONDS),
        }
    }

    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            window_seconds: settings.incident_window.as_secs() as i64,
            update_interval_seconds: settings.update_interval.as_secs() as i64,
        }
    }
}

/// A signal about a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal<'a> {
    /// Something is wrong (a failed task, a failed deployment, an alarm).
    Problem,
    /// The subject recovered; `source` limits which incident it resolves
    /// (an alarm's OK resolves only the incident that alarm opened).
    Recovered { source: Option<&'a str> },
}

/// What to do with a signal, given the stored incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No live incident: open one (its alert pending, sent by this invocation).
    Open,
    /// The open incident saw no signal for a whole window: close it as
    /// expired, then (for a problem) open a new one.
    Expire { then_open: bool },
    /// The opening alert is still pending and is this invocation's to send
    /// (its own retry, or the sender's lease is over): send it now.
    SendOpeningAlert,
    /// Count the signal into the open incident; the opening alert is being
    /// sent by another live invocation, so no update now.
    JoinQuietly,
    /// Count the signal into the open incident; an update may be due.
    Join,
    /// Resolve the open incident (once).
    Resolve,
    /// The subject recovered, but the opening alert is still being sent by
    /// another live invocation: resolve after it (retry later), so that
    /// nobody reads a resolution before the alert it resolves.
    AwaitOpeningAlert,
    /// Nothing to do, and why.
    Nothing(&'static str),
}

/// The step for `signal` on `current` (the open incident, if any).
pub fn next_step(current: Option<&Incident>, signal: Signal<'_>, now: i64, token: &str, policy: &Policy) -> Step {
    let Some(inc) = current else {
        return match signal {
            Signal::Problem => Step::Open,
            Signal::Recovered { .. } => Step::Nothing("no open incident"),
        };
    };
    if inc.last_event_at < now - policy.window_for(&inc.subject) {
        return Step::Expire { then_open: signal == Signal::Problem };
    }
    match signal {
        Signal::Recovered { source: Some(src) } if inc.source != src => {
            Step::Nothing("the open incident was not opened by this signal's source")
        }
        // The resolution follows the opening alert. A recovery while another
        // live invocation sends that alert waits for it; once the sender's
        // lease is over (it died), the resolution alone says what happened.
        Signal::Recovered { .. } => match &inc.alert {
            Alert::Pending { by, until } if by != token && *until >= now => Step::AwaitOpeningAlert,
            _ => Step::Resolve,
        },
        Signal::Problem => match &inc.alert {
            Alert::Delivered { .. } => Step::Join,
            Alert::Pending { by, until } if by == token || *until < now => Step::SendOpeningAlert,
            Alert::Pending { .. } => Step::JoinQuietly,
        },
    }
}

/// Why an update goes out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateReason {
    /// The severity rose from this one.
    SeverityRose(Severity),
    /// An action was executed or failed and is not yet announced.
    Action,
    /// The signal is news by itself (a deployment failed, ECS rolls back):
    /// an update whatever the interval.
    News,
    /// The last message is older than the update interval.
    Interval,
}

/// Whether a joined signal sends an update: the observed severity is worse
/// than the stored one, an executed action is unannounced, the signal is news
/// by itself, or the interval since the last message passed. A skipped or
/// planned action alone is not news.
pub fn update_due(
    stored: &Incident,
    observed: Severity,
    unannounced_actions: bool,
    news: bool,
    now: i64,
    policy: &Policy,
) -> Option<UpdateReason> {
    if observed < stored.severity {
        return Some(UpdateReason::SeverityRose(stored.severity));
    }
    if unannounced_actions {
        return Some(UpdateReason::Action);
    }
    if news {
        return Some(UpdateReason::News);
    }
    stored
        .last_notified_at
        .is_none_or(|at| now - at >= policy.update_interval_seconds)
        .then_some(UpdateReason::Interval)
}

/// The severity of an incident after a signal graded `observed`: never lower
/// than stored, and at least the signal's own floor.
pub fn joined_severity(stored: Severity, observed: Severity, floor: Option<Severity>) -> Severity {
    stored.min(observed).min(floor.unwrap_or(Severity::Info))
}

/// The cause after a signal: a known cause is never replaced by unknown, and
/// an unknown one is refined by the first signal that proves one.
pub fn joined_cause(stored: Cause, signal: Option<Cause>) -> Cause {
    match (stored, signal) {
        (Cause::Unknown, Some(c)) => c,
        (c, _) => c,
    }
}

/// Ledger entries this incident's next message must announce: executed or
/// failed, not announced by any message yet (neither marked on the entry
/// nor in the incident's `announced` set), on its subject since it opened —
/// or, for an automatic action, up to `carry_seconds` before: one that
/// finished after its own incident was resolved is announced by the
/// subject's next incident. Entries still `executing` wait until verified.
pub fn unannounced<'a>(incident: &Incident, ledger: &'a [LedgerEntry], carry_seconds: i64) -> Vec<&'a LedgerEntry> {
    ledger
        .iter()
        .filter(|e| matches!(e.status, LedgerStatus::Executed | LedgerStatus::Failed) && !e.announced)
        .filter(|e| e.at >= incident.opened_at || (e.automatic && e.at >= incident.opened_at - carry_seconds))
        .filter(|e| e.key.as_ref().is_some_and(|k| !incident.announced.contains(k)))
        .collect()
}

/// What the escalation job does with one open incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// Nothing now.
    NotDue,
    /// Send escalation number `nth` (1 for the first).
    Escalate { nth: u32 },
    /// No signal for longer than the window: close it as expired, and say so.
    Expire,
}

/// A SEV1 is re-announced this often while open.
pub const SEV1_REPEAT_SECONDS: i64 = 30 * 60;

/// Whether `incident` is due an escalation now: one once it has been open
/// longer than `escalate_after_seconds`, and for a SEV1 one more every 30
/// minutes after that. An incident whose opening alert is not out yet is
/// left to its sender; one with no signal for a whole window is expired.
pub fn escalation_due(incident: &Incident, now: i64, escalate_after_seconds: i64, policy: &Policy) -> Escalation {
    if incident.last_event_at < now - policy.window_for(&incident.subject) {
        return Escalation::Expire;
    }
    if !incident.alert_delivered() {
        return Escalation::NotDue;
    }
    let age = now - incident.opened_at;
    if age <= escalate_after_seconds {
        return Escalation::NotDue;
    }
    let sent = incident.escalations;
    if sent == 0 {
        return Escalation::Escalate { nth: 1 };
    }
    let next_at = escalate_after_seconds + i64::from(sent) * SEV1_REPEAT_SECONDS;
    if incident.severity == Severity::Sev1 && age > next_at {
        Escalation::Escalate { nth: sent + 1 }
    } else {
        Escalation::NotDue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ActionKind;

    const T0: i64 = 1_795_000_000;
    const POLICY: Policy = Policy { window_seconds: 3600, update_interval_seconds: 900 };

    fn incident(alert: Alert) -> Incident {
        let opening = Opening {
            severity: Severity::Sev3,
            cause: Cause::Unknown,
            summary: "task failed".into(),
            source: "ecs".into(),
            failed_tasks: Vec::new(),
        };
        let mut inc = Incident::opening(Subject::service("prod", "api"), &opening, T0, "req-a", T0 + 330, "salt");
        inc.alert = alert;
        inc
    }

    fn delivered() -> Incident {
        let mut i = incident(Alert::Delivered { at: T0 });
        i.last_notified_at = Some(T0);
        i
    }

    fn pending(by: &str, until: i64) -> Incident {
        incident(Alert::Pending { by: by.into(), until })
    }

    #[test]
    fn every_transition_of_the_lifecycle() {
        let p = Signal::Problem;
        let ok_any = Signal::Recovered { source: None };
        let ok_alarm = Signal::Recovered { source: Some("alarm:api-5xx") };
        let mut by_alarm = delivered();
        by_alarm.source = "alarm:api-5xx".into();
        type Row<'a> = (&'a str, Option<Incident>, Signal<'a>, i64, &'a str, Step);
        let rows: Vec<Row<'_>> = vec![
            ("open: no incident, a problem", None, p, T0, "req-a", Step::Open),
            ("nothing: no incident, a recovery", None, ok_any, T0, "req-a", Step::Nothing("no open incident")),
            ("join: alert delivered", Some(delivered()), p, T0 + 60, "req-b", Step::Join),
            (
                "duplicate/retry of the opener: its own pending alert is its to send",
                Some(pending("req-a", T0 + 330)),
                p,
                T0 + 60,
                "req-a",
                Step::SendOpeningAlert,
            ),
            (
                "concurrent: another live invocation is sending the alert",
                Some(pending("req-a", T0 + 330)),
                p,
                T0 + 60,
                "req-b",
                Step::JoinQuietly,
            ),
            (
                "lost alert: the opener died, its lease is over; the next signal sends it",
                Some(pending("req-a", T0 + 330)),
                p,
                T0 + 331,
                "req-b",
                Step::SendOpeningAlert,
            ),
            ("resolve", Some(delivered()), ok_any, T0 + 60, "req-b", Step::Resolve),
            ("resolve by the alarm that opened it", Some(by_alarm.clone()), ok_alarm, T0 + 60, "req-b", Step::Resolve),
            (
                "an alarm's OK leaves an ECS incident open",
                Some(delivered()),
                ok_alarm,
                T0 + 60,
                "req-b",
                Step::Nothing("the open incident was not opened by this signal's source"),
            ),
            (
                "expire then open: no signal for a window",
                Some(delivered()),
                p,
                T0 + 3601,
                "req-b",
                Step::Expire { then_open: true },
            ),
            (
                "late recovery after the window expires the incident, opens nothing",
                Some(delivered()),
                ok_any,
                T0 + 3601,
                "req-b",
                Step::Expire { then_open: false },
            ),
            (
                "a recovery while another invocation sends the opening alert waits for it",
                Some(pending("req-a", T0 + 330)),
                ok_any,
                T0 + 5,
                "req-b",
                Step::AwaitOpeningAlert,
            ),
            (
                "a recovery after the alert sender died resolves (the resolution says what happened)",
                Some(pending("req-a", T0 + 330)),
                ok_any,
                T0 + 331,
                "req-b",
                Step::Resolve,
            ),
            (
                "the opener's own retry may resolve its pending incident",
                Some(pending("req-a", T0 + 330)),
                ok_any,
                T0 + 5,
                "req-a",
                Step::Resolve,
            ),
        ];
        for (name, current, signal, now, token, expected) in rows {
            assert_eq!(next_step(current.as_ref(), signal, now, token, &POLICY), expected, "{name}");
        }
    }

    #[test]
    fn escalations_once_after_the_delay_and_for_a_sev1_every_thirty_minutes() {
        let policy = Policy { window_seconds: 7200, update_interval_seconds: 900 };
        let at = |inc: &Incident, minutes: i64| escalation_due(inc, T0 + minutes * 60, 15 * 60, &policy);
        let mut sev2 = delivered();
        sev2.severity = Severity::Sev2;
        sev2.last_event_at = T0 + 100 * 60;
        assert_eq!(at(&sev2, 10), Escalation::NotDue, "not yet");
        assert_eq!(at(&sev2, 16), Escalation::Escalate { nth: 1 });
        sev2.escalations = 1;
        assert_eq!(at(&sev2, 90), Escalation::NotDue, "a SEV2 escalates once");
        let mut sev1 = sev2.clone();
        sev1.severity = Severity::Sev1;
        assert_eq!(at(&sev1, 30), Escalation::NotDue);
        assert_eq!(at(&sev1, 46), Escalation::Escalate { nth: 2 });
        sev1.escalations = 2;
        assert_eq!(at(&sev1, 60), Escalation::NotDue);
        assert_eq!(at(&sev1, 76), Escalation::Escalate { nth: 3 });
        let quiet = delivered();
        assert_eq!(at(&quiet, 121), Escalation::Expire, "no signal for a whole window");
        let mut unsent = pending("req-a", T0 + 330);
        unsent.last_event_at = T0 + 100 * 60;
        assert_eq!(at(&unsent, 16), Escalation::NotDue, "the opening alert goes first");
    }

    #[test]
    fn updates_go_out_on_rising_severity_unannounced_actions_or_the_interval() {
        let stored = delivered();
        let due = |observed, actions, news, now| update_due(&stored, observed, actions, news, now, &POLICY);
        assert_eq!(due(Severity::Sev2, false, false, T0 + 10), Some(UpdateReason::SeverityRose(Severity::Sev3)));
        assert_eq!(due(Severity::Sev3, true, false, T0 + 10), Some(UpdateReason::Action));
        assert_eq!(due(Severity::Sev3, false, true, T0 + 10), Some(UpdateReason::News));
        assert_eq!(due(Severity::Sev3, false, false, T0 + 10), None, "flapping inside the interval stays quiet");
        assert_eq!(due(Severity::Info, false, false, T0 + 10), None, "a milder signal is not news");
        assert_eq!(due(Severity::Sev3, false, false, T0 + 900), Some(UpdateReason::Interval));
    }

    #[test]
    fn severity_never_falls_and_the_cause_is_refined_never_lost() {
        assert_eq!(
            joined_severity(Severity::Sev2, Severity::Sev3, None),
            Severity::Sev2,
            "a stale SEV3 never lowers a SEV2"
        );
        assert_eq!(joined_severity(Severity::Sev3, Severity::Sev1, None), Severity::Sev1);
        assert_eq!(joined_severity(Severity::Sev3, Severity::Sev3, Some(Severity::Sev2)), Severity::Sev2);
        assert_eq!(joined_cause(Cause::Unknown, Some(Cause::OutOfMemory)), Cause::OutOfMemory);
        assert_eq!(joined_cause(Cause::OutOfMemory, Some(Cause::Unknown)), Cause::OutOfMemory);
        assert_eq!(joined_cause(Cause::OutOfMemory, None), Cause::OutOfMemory);
    }

    #[test]
    fn crash_loops_count_each_task_once_per_revision_within_the_window() {
        let t = |rev: &str, at: i64, task: &str| FailedTask { revision: rev.into(), stopped_at: at, task: task.into() };
        let tasks = vec![
            t("api:1", T0 - 7200, "old-1"),
            t("api:1", T0 - 100, "a"),
            t("api:1", T0 - 90, "b"),
            t("api:2", T0 - 10, "c"),
            // The same task reported twice (STOPPING then STOPPED, a duplicate delivery).
            t("api:2", T0 - 10, "c"),
        ];
        assert_eq!(
            count_failures(&tasks, Some("api:2"), T0, 3600),
            1,
            "two failures of :1 do not make :2 a crash loop"
        );
        assert_eq!(count_failures(&tasks, Some("api:1"), T0, 3600), 2, "outside the window does not count");
        assert_eq!(count_failures(&tasks, None, T0, 3600), 3);
        assert_eq!(count_failures(&tasks, None, T0, 10_000), 4);
    }

    #[test]
    fn failed_tasks_round_trip_through_their_string_set_element() {
        let t = FailedTask { revision: "api:7".into(), stopped_at: T0, task: "0a1b|x".into() };
        assert_eq!(FailedTask::decode(&t.encode()), Some(t));
        assert_eq!(FailedTask::decode("api:7|notanumber|x"), None);
        assert_eq!(FailedTask::decode("api:7|1"), None);
    }

    #[test]
    fn subjects_have_one_key_each_and_parse_back() {
        for s in [Subject::service("prod", "api"), Subject::pipeline("api-prod", "8f1d2c3b-4a5e")] {
            assert_eq!(Subject::parse(&s.key()), Some(s.clone()));
        }
        assert_eq!(Subject::service("prod", "api").key(), "service#prod/api", "the existing layout is kept");
        assert_eq!(Subject::parse("service#prod"), None);
        assert_eq!(Subject::parse("pipeline#api-prod"), None, "a pipeline subject is one execution");
        assert_eq!(Subject::parse("event#x"), None);
    }

    #[test]
    fn only_executed_or_failed_unannounced_actions_since_the_opening_are_news() {
        let mut inc = delivered();
        let e = |at: i64, status: LedgerStatus, key: &str| LedgerEntry {
            at,
            action: ActionKind::Rollback,
            status,
            automatic: true,
            from: None,
            to: None,
            detail: String::new(),
            key: Some(key.into()),
            announced: false,
        };
        let mut announced_before = e(T0 - 30, LedgerStatus::Executed, "announced-before");
        announced_before.announced = true;
        let mut manual_before = e(T0 - 20, LedgerStatus::Executed, "manual-before");
        manual_before.automatic = false;
        let ledger = vec![
            e(T0 - 4000, LedgerStatus::Executed, "long-before"),
            e(T0 - 60, LedgerStatus::Executed, "unannounced-before"),
            announced_before,
            manual_before,
            e(T0 + 1, LedgerStatus::Skipped, "skipped"),
            e(T0 + 2, LedgerStatus::Executed, "done"),
            e(T0 + 3, LedgerStatus::Executing, "in-flight"),
            e(T0 + 4, LedgerStatus::Failed, "failed"),
        ];
        let keys = |v: Vec<&LedgerEntry>| v.into_iter().filter_map(|e| e.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(unannounced(&inc, &ledger, 0)), ["done", "failed"]);
        assert_eq!(
            keys(unannounced(&inc, &ledger, 3600)),
            ["unannounced-before", "done", "failed"],
            "an automatic action no message announced is carried into the next incident, within the window"
        );
        inc.announced.push("done".into());
        assert_eq!(keys(unannounced(&inc, &ledger, 0)), ["failed"]);
    }
}

#[cfg(test)]
mod pipeline_window_tests {
    use super::*;

    #[test]
    fn a_failed_pipeline_execution_stays_open_for_days_where_a_service_incident_expires_in_its_window() {
        let policy = Policy { window_seconds: 3600, update_interval_seconds: 900 };
        let opening = Opening {
            severity: Severity::Sev2,
            cause: Cause::PipelineFailed,
            summary: "pipeline failed - at Build/UnitTests".into(),
            source: "pipeline".into(),
            failed_tasks: Vec::new(),
        };
        let t0 = 1_795_000_000;
        let mut pipeline = Incident::opening(Subject::pipeline("api-prod", "x-1"), &opening, t0, "req", t0, "s");
        pipeline.alert = Alert::Delivered { at: t0 };
        pipeline.escalations = 1;
        let mut service = pipeline.clone();
        service.subject = Subject::service("prod", "api");
        let later = t0 + 6 * 3600;
        assert_eq!(escalation_due(&service, later, 900, &policy), Escalation::Expire);
        assert_eq!(escalation_due(&pipeline, later, 900, &policy), Escalation::NotDue, "escalated once, still open");
        assert_eq!(next_step(Some(&pipeline), Signal::Recovered { source: None }, later, "r", &policy), Step::Resolve);
        let week = t0 + PIPELINE_WINDOW_SECONDS + 1;
        assert_eq!(escalation_due(&pipeline, week, 900, &policy), Escalation::Expire, "a week without a word");
    }
}
