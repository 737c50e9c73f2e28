//! The incident machine: every rule of an incident's life as one pure
//! function, `step(record, input, ctx) -> Transition` — no I/O, no clock
//! (the time is `ctx.now`), in the sans-I/O style of `quinn-proto`. The one
//! driver (`incident::shell`) reads the record, steps, writes the record with
//! an optimistic version condition, then carries out the transition's
//! effects and feeds their results back in as inputs.
//!
//! The rules, each a row of the table tests below:
//!
//! - **Judged at event time.** A signal carries the time it happened
//!   (`stoppedAt`, the alarm's state time, ECS's `updatedAt`). A problem
//!   older than the incident window opens nothing; one older than the
//!   recovery that closed the subject's last incident is stale. A recovery
//!   clears only problems whose last signal it post-dates.
//! - **Problems, not a summary.** An incident holds the problems that opened
//!   or joined it (failed tasks, a failed deployment, a service event, an
//!   alarm, a pipeline failure). A recovery clears the problems of its scope:
//!   an alarm's OK its own alarm; steady state or a completed deployment the
//!   task, deployment and service-event problems — unless the completed
//!   revision is the one in trouble. The incident resolves when every problem
//!   has cleared.
//! - **Every message is pending until published.** The opening alert, an
//!   update, an escalation and the resolution are each first *claimed*
//!   (`sending`, with the sender's lease), then published, then recorded
//!   (`Sent`). A sender that died leaves a claim whose lease ends; the next
//!   signal or the scheduled tick takes it over. A message that could not be
//!   published is released, to be sent by the retry.
//! - **The truth at send time.** The opening alert carries the highest
//!   severity recorded when it is sent; a rise recorded by another invocation
//!   after that is announced by an update (`announced_severity`).
//! - **Bounded.** Failed tasks are counts per revision in five-minute buckets
//!   within the window plus the last [`MAX_RECENT_TASKS`] task ids (each task
//!   counted once while it is among them); problems, notes and announced
//!   action keys are capped. A storm of any length keeps the record small.
//! - **Closed is a state.** A resolved incident's record stays (as the
//!   subject's tombstone, with the recovery's event time) so that a problem
//!   older than that recovery, delivered late, is recognised as stale.

use serde::{Deserialize, Serialize};

use super::subject::Subject;
use crate::cause::Cause;
use crate::outcome::{Kind, Severity};
use crate::snapshot::{LedgerEntry, LedgerStatus};

/// Failed tasks are counted in buckets of this many seconds.
pub const BUCKET_SECONDS: i64 = 300;
/// At most this many (revision, bucket) counts are kept, newest first.
pub const MAX_BUCKETS: usize = 48;
/// The last task ids kept, to count each task once.
pub const MAX_RECENT_TASKS: usize = 32;
/// Problems kept (cleared ones are dropped first).
pub const MAX_PROBLEMS: usize = 16;
/// Notes kept for the resolution and the report, and their length.
pub const MAX_NOTES: usize = 24;
pub const MAX_NOTE_CHARS: usize = 400;
/// Ledger keys remembered as announced (entries are also marked themselves).
pub const MAX_ANNOUNCED: usize = 64;
/// Impact lines kept.
pub const MAX_IMPACT: usize = 8;
/// A SEV1 is re-announced this often while open.
pub const SEV1_REPEAT_SECONDS: i64 = 30 * 60;
/// A failed pipeline stays failed without further events until someone fixes
/// it: its execution's incident lasts this long without a signal.
pub const PIPELINE_WINDOW_SECONDS: i64 = 7 * 24 * 3600;

/// The machine's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// An incident with no signal for this long is over (expired).
    pub window_seconds: i64,
    /// At most one routine update per interval.
    pub update_interval_seconds: i64,
    /// An incident open this long is escalated (once; a SEV1 every 30 minutes).
    pub escalate_after_seconds: i64,
    /// Failed tasks of one revision within the window that make it "in trouble".
    pub crash_loop_threshold: u32,
}

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
            escalate_after_seconds: settings.escalate_after.as_secs() as i64,
            crash_loop_threshold: settings.crash_loop_threshold,
        }
    }
}

/// What a problem is, and so which recovery clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum ProblemKey {
    /// Tasks of the service failed.
    Tasks,
    /// A deployment (its id) failed, or ECS rolls it back.
    Deployment(String),
    /// ECS reported a service event (its name), e.g. SERVICE_TASK_START_IMPAIRED.
    ServiceEvent(String),
    /// An alarm (its name) is in ALARM.
    Alarm(String),
    /// The pipeline execution failed.
    Pipeline,
}

impl ProblemKey {
    /// Whether a recovery of `scope` speaks for this problem at all.
    fn in_scope(&self, scope: &RecoveryScope) -> bool {
        match (self, scope) {
            (Self::Alarm(a), RecoveryScope::Alarm(b)) => a == b,
            (Self::Tasks | Self::Deployment(_) | Self::ServiceEvent(_), RecoveryScope::Service { .. }) => true,
            (Self::Pipeline, RecoveryScope::Pipeline) => true,
            _ => false,
        }
    }

    /// What it is, for messages: "failed tasks", "alarm api-5xx", …
    pub fn describe(&self) -> String {
        match self {
            Self::Tasks => "failed tasks".into(),
            Self::Deployment(id) => format!("deployment {id}"),
            Self::ServiceEvent(name) => format!("ECS {name}"),
            Self::Alarm(name) => format!("alarm {name}"),
            Self::Pipeline => "pipeline failure".into(),
        }
    }
}

/// One problem of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub key: ProblemKey,
    /// Short label: "crash loop", "deployment failed", …
    pub label: String,
    /// Event time of its first and its newest signal.
    pub first_at: i64,
    pub last_at: i64,
    /// Event time of the recovery that cleared it, and what that was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_by: Option<String>,
    /// `family:revision` the problem is about, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl Problem {
    pub fn is_cleared(&self) -> bool {
        self.cleared_at.is_some()
    }
}

/// One failed task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStop {
    /// The task id (last segment of its ARN).
    pub task: String,
    /// `family:revision`, empty when unknown.
    pub revision: String,
    /// When ECS stopped it (epoch seconds).
    pub stopped_at: i64,
}

/// Failed tasks of one revision in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub revision: String,
    pub start: i64,
    pub count: u32,
}

/// Failed tasks, bounded whatever the storm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// Counts per revision and bucket, within the window.
    #[serde(default)]
    pub buckets: Vec<Bucket>,
    /// The newest task stops (last [`MAX_RECENT_TASKS`]), oldest first.
    #[serde(default)]
    pub recent: Vec<TaskStop>,
    /// Every failed task counted into the incident.
    #[serde(default)]
    pub total: u32,
}

fn same_revision(filter: Option<&str>, revision: &str) -> bool {
    filter.is_none_or(|r| r.is_empty() || revision.is_empty() || r == revision)
}

impl Failures {
    /// Count `stop` once; `false` when this task was counted already.
    pub fn add(&mut self, stop: &TaskStop, now: i64, window: i64) -> bool {
        if self.recent.iter().any(|t| t.task == stop.task) {
            return false;
        }
        self.total += 1;
        self.recent.push(stop.clone());
        self.recent.sort_by_key(|t| t.stopped_at);
        if self.recent.len() > MAX_RECENT_TASKS {
            let extra = self.recent.len() - MAX_RECENT_TASKS;
            self.recent.drain(..extra);
        }
        let start = stop.stopped_at - stop.stopped_at.rem_euclid(BUCKET_SECONDS);
        match self.buckets.iter_mut().find(|b| b.revision == stop.revision && b.start == start) {
            Some(b) => b.count += 1,
            None => self.buckets.push(Bucket { revision: stop.revision.clone(), start, count: 1 }),
        }
        self.prune(now, window);
        true
    }

    /// Drop buckets older than the window, keep the newest [`MAX_BUCKETS`].
    fn prune(&mut self, now: i64, window: i64) {
        self.buckets.retain(|b| b.start + BUCKET_SECONDS > now - window);
        self.buckets.sort_by_key(|b| std::cmp::Reverse(b.start));
        self.buckets.truncate(MAX_BUCKETS);
    }

    /// Failed tasks of `revision` (any when `None` or unknown) that stopped
    /// within `window` before `at` (to the bucket: a bucket that overlaps
    /// the window counts whole).
    pub fn count(&self, revision: Option<&str>, at: i64, window: i64) -> u32 {
        self.buckets
            .iter()
            .filter(|b| same_revision(revision, &b.revision))
            .filter(|b| b.start + BUCKET_SECONDS > at - window && b.start <= at)
            .map(|b| b.count)
            .sum()
    }

    /// Revisions with failed tasks, newest first.
    pub fn revisions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for b in &self.buckets {
            if !b.revision.is_empty() && !out.contains(&b.revision) {
                out.push(b.revision.clone());
            }
        }
        out
    }
}

/// A message of an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MessageKind {
    Opening,
    Update,
    Escalation {
        nth: u32,
    },
    /// The resolution; `why` is what resolved it ("alarm api-5xx back to OK", "expired: …").
    Resolution {
        why: String,
        expired: bool,
    },
}

impl MessageKind {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Opening => "opening alert",
            Self::Update => "update",
            Self::Escalation { .. } => "escalation",
            Self::Resolution { .. } => "resolution",
        }
    }
}

/// A message claimed for sending: `by` (an invocation token) publishes it
/// until `until`; after that anyone may take it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sending {
    pub message: MessageKind,
    pub by: String,
    pub until: i64,
}

/// Open, or closed (resolved or expired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    Open,
    Closed {
        at: i64,
        resolution: String,
        /// Event time of the recovery that cleared the last problem (none when expired).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered_at: Option<i64>,
    },
}

/// The incident as stored (one per subject; the closed one stays until the next opens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub subject: Subject,
    /// Bumped by every write; writes are conditional on it.
    pub version: u64,
    pub state: State,
    /// The kind of the signal that opened it.
    pub kind: Kind,
    /// The problem label of the opening signal ("crash loop", …).
    pub headline: String,
    pub opened_at: i64,
    /// Event time of the newest signal counted.
    pub last_signal_at: i64,
    /// The highest severity recorded (never falls).
    pub severity: Severity,
    pub cause: Cause,
    pub problems: Vec<Problem>,
    #[serde(default)]
    pub failures: Failures,
    /// When the opening alert was published (none while pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending: Option<Sending>,
    /// The severity of the most severe message published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<i64>,
    /// Ledger keys of actions a message announced.
    #[serde(default)]
    pub announced: Vec<String>,
    #[serde(default)]
    pub escalations: u32,
    /// Redacted lines for the resolution and the incident report.
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// The impact the opening alert stated.
    #[serde(default)]
    pub impact: Vec<String>,
    /// The owning team (service tag `autopilot:team`), for routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default)]
    pub events: u32,
    /// Who acknowledged the incident (runbook `acknowledge`, a chat button):
    /// no escalation while its severity stays at or below the acknowledged one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledgement>,
}

/// A person took the incident on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub at: i64,
    /// The incident's severity when acknowledged: a rise above it escalates again.
    pub severity: Severity,
    /// Escalations sent before the acknowledgement.
    #[serde(default)]
    pub escalations: u32,
}

impl Record {
    /// A new incident id: time-ordered, readable, unique per subject, second and opener.
    pub fn new_id(subject: &Subject, at: i64, salt: &str) -> String {
        use sha2::{Digest, Sha256};
        let when = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default().format("%Y%m%d-%H%M%S");
        let digest = Sha256::digest(format!("{}/{at}/{salt}", subject.key()).as_bytes());
        format!("inc-{when}-{}", crate::arn::hex(&digest[..3]))
    }

    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    pub fn alert_delivered(&self) -> bool {
        self.alert_at.is_some()
    }

    /// The problems not cleared yet.
    pub fn open_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_cleared())
    }

    /// Revisions any problem of the incident is about, or whose tasks failed:
    /// never a rollback target.
    pub fn troubled_revisions(&self) -> Vec<String> {
        let mut out = self.failures.revisions();
        for r in self.problems.iter().filter_map(|p| p.revision.clone()) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }

    /// One line on what is (still) wrong: "crash loop; alarm api-cpu".
    pub fn problem_text(&self) -> String {
        let open: Vec<String> = self.open_problems().map(|p| p.label.clone()).collect();
        let mut labels: Vec<String> = Vec::new();
        for l in if open.is_empty() { self.problems.iter().map(|p| p.label.clone()).collect() } else { open } {
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
        if labels.is_empty() { self.headline.clone() } else { labels.join("; ") }
    }

    /// `problem - cause headline`, as the history and listings show it (the
    /// headline once: "pipeline failed at Build/UnitTests").
    pub fn summary(&self) -> String {
        let problem = self.problem_text();
        let headline = self.cause.headline();
        if problem.starts_with(headline) { problem } else { format!("{problem} - {headline}") }
    }
}

/// Deep or shallow diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Everything the opening alert shows, and the evidence bundle.
    Full,
    /// Enough to see whether the service got worse.
    Facts,
}

/// Which action the shell should run through the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionCue {
    /// The signal's own action (a failed deployment's rollback, an alarm's runbook).
    Signal,
    /// A crash loop on a fresh revision, found by diagnosis.
    CrashLoop,
}

/// A problem signal.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemSignal {
    pub key: ProblemKey,
    pub label: String,
    pub kind: Kind,
    /// When it happened.
    pub at: i64,
    /// What the signal proves on its own (a floor; diagnosis may raise it).
    pub severity: Severity,
    pub cause: Option<Cause>,
    pub revision: Option<String>,
    /// A failed task to count.
    pub task: Option<TaskStop>,
    /// News by itself (a failed deployment, ECS rolling back): an update whatever the interval.
    pub news: bool,
    pub note: Option<String>,
}

/// What a recovery speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryScope {
    /// That alarm is OK.
    Alarm(String),
    /// The service reached steady state, or a deployment of `revision` completed.
    Service { revision: Option<String> },
    /// A later execution of the pipeline succeeded.
    Pipeline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub scope: RecoveryScope,
    /// When it happened.
    pub at: i64,
    /// What it was, for the resolution: "deployment ecs-svc/1 COMPLETED".
    pub by: String,
}

/// What an invocation learnt after its record was written: diagnosis,
/// actions, the ledger.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learnt {
    /// Severity graded by diagnosis.
    pub severity: Option<Severity>,
    pub cause: Option<Cause>,
    /// Failed tasks ECS still lists.
    pub tasks: Vec<TaskStop>,
    pub impact: Vec<String>,
    pub team: Option<String>,
    pub evidence: Option<String>,
    /// Redacted notes for the resolution.
    pub notes: Vec<String>,
    /// Ledger keys of executed or failed actions no message announced ([`unannounced`]).
    pub unannounced: Vec<String>,
    /// An action was verified not to have taken effect: SEV1.
    pub action_failed: bool,
    /// Diagnosis found a crash loop an automatic rollback may cure.
    pub wants_action: bool,
    /// The signal was news by itself (carried from its problem step).
    pub news: bool,
    /// A better label for the problem the incident opened with, found by
    /// diagnosis ("pipeline failed at Build/UnitTests", "crash loop").
    pub label: Option<String>,
    /// Revisions problems turned out to be about (a failed deployment's, as
    /// the engine found it listed): never a rollback target after that.
    pub revisions: Vec<(ProblemKey, String)>,
}

/// A message went out.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub message: MessageKind,
    pub message_id: String,
    pub severity: Severity,
    pub announced: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Problem(ProblemSignal),
    Recovery(Recovery),
    Learnt(Learnt),
    Sent(Sent),
    /// The claimed message could not be published.
    NotSent(Publish),
    /// The scheduled run; `alarms_checked` once its alarm reads were fed in.
    Tick {
        alarms_checked: bool,
    },
    /// A person acknowledged the open incident (`by`, at `at`).
    Acknowledge {
        by: String,
        at: i64,
    },
}

/// Why an update goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateReason {
    /// The severity rose above what was announced (from this one).
    SeverityRose(Severity),
    /// An action was executed or failed and is not yet announced.
    Action,
    /// The signal is news by itself, or a new problem joined.
    News,
    /// The last message is older than the update interval.
    Interval,
}

/// A message to publish, claimed by this invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub message: MessageKind,
    /// The record's severity when it was claimed.
    pub severity: Severity,
    pub reason: Option<UpdateReason>,
    /// Ledger keys this message announces.
    pub announce: Vec<String>,
}

impl Publish {
    /// Whether losing it loses something only a message can say: the
    /// opening alert, the resolution, an action, a rise of severity.
    pub fn must_arrive(&self) -> bool {
        match self.message {
            MessageKind::Opening | MessageKind::Resolution { .. } => true,
            MessageKind::Escalation { .. } => false,
            MessageKind::Update => {
                !self.announce.is_empty() || matches!(self.reason, Some(UpdateReason::SeverityRose(_)))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Run an action through the engine, recorded against the incident.
    Act(ActionCue),
    /// Diagnose the subject (and for `Full`, keep the evidence).
    Diagnose(Depth),
    /// Read these alarms; each found OK is a recovery of its problem.
    CheckAlarms(Vec<String>),
    /// Read the subject's ledger only (feed back `Learnt`): an action that
    /// finished after the resolution may still wait to be announced.
    ReadLedger,
    /// Publish the claimed message; feed back `Sent` or `NotSent`.
    Publish(Publish),
    /// Keep the closed incident in the history.
    Archive,
    /// Answer the retryable `InProgress`: another live invocation sends a
    /// message that must come first.
    RetryLater { what: String, until: i64 },
    /// The claimed message was not published: fail the invocation
    /// (`retry`: so that Lambda's retry sends it).
    Fail { retry: bool, what: String },
}

/// What the step did, for the Outcome and the decision log.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Opened,
    Joined,
    /// Another live invocation is sending a message; counted without one.
    JoinedQuietly,
    /// The opening alert is pending and now ours to send.
    TookOverAlert,
    /// Some problems cleared, others remain (named).
    Cleared {
        remaining: Vec<String>,
    },
    Resolving,
    Expiring,
    Claimed(MessageKind),
    Delivered(MessageKind),
    Released(MessageKind),
    /// Closed and archived.
    Closed,
    Stale(String),
    Nothing(String),
    /// The open incident is now acknowledged by this person.
    Acknowledged {
        by: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The record to write (conditional on the version read), when it changed.
    pub record: Option<Record>,
    pub effects: Vec<Effect>,
    pub verdict: Verdict,
    /// Step the same input again once the effects are done (expire, then open).
    pub again: bool,
    /// The problem signal is news by itself, or a new problem joined: the
    /// shell carries it into the `Learnt` that follows.
    pub news: bool,
}

impl Transition {
    fn nothing(verdict: Verdict) -> Self {
        Self { record: None, effects: Vec::new(), verdict, again: false, news: false }
    }

    fn write(record: Record, effects: Vec<Effect>, verdict: Verdict) -> Self {
        Self { record: Some(record), effects, verdict, again: false, news: false }
    }

    fn with_news(mut self, news: bool) -> Self {
        self.news = news;
        self
    }

    fn again_after(mut self) -> Self {
        self.again = true;
        self
    }
}

/// What the step needs besides the record and the input.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub subject: &'a Subject,
    pub now: i64,
    /// This invocation (Lambda's request id: the same for its retries).
    pub token: &'a str,
    /// Until when this invocation holds what it claims now.
    pub lease_until: i64,
    /// Unique to this attempt: makes a new incident id unique.
    pub salt: &'a str,
    pub policy: &'a Policy,
}

impl Ctx<'_> {
    fn window(&self) -> i64 {
        self.policy.window_for(self.subject)
    }

    fn claim(&self, message: MessageKind) -> Sending {
        Sending { message, by: self.token.to_string(), until: self.lease_until }
    }

    /// Held by another invocation that may still be working on it.
    fn held_by_another(&self, s: &Sending) -> bool {
        s.by != self.token && s.until >= self.now
    }
}

/// The input to step again when a transition says `again`: the same one,
/// except that a tick's alarms have then been read.
pub fn again_input(input: &Input) -> Input {
    match input {
        Input::Tick { .. } => Input::Tick { alarms_checked: true },
        other => other.clone(),
    }
}

/// The one transition function.
pub fn step(current: Option<&Record>, input: &Input, ctx: &Ctx<'_>) -> Transition {
    let open = current.filter(|r| r.is_open());
    match input {
        Input::Problem(p) => problem(current, p, ctx),
        Input::Recovery(r) => match open {
            Some(rec) => recovery(rec, r, ctx),
            None => Transition::nothing(Verdict::Nothing(match current {
                Some(rec) => format!("incident {} is already resolved", rec.id),
                None => "no open incident".into(),
            })),
        },
        Input::Learnt(l) => match (open, current) {
            (Some(rec), _) => learnt(rec, l, ctx),
            (None, Some(closed)) if !l.unannounced.is_empty() => late_action(closed, l, ctx),
            _ => Transition::nothing(Verdict::Nothing("the incident closed meanwhile".into())),
        },
        Input::Sent(s) => match current {
            Some(rec) => sent(rec, s, ctx),
            None => Transition::nothing(Verdict::Nothing("the incident is gone".into())),
        },
        Input::NotSent(p) => not_sent(current, p, ctx),
        Input::Tick { alarms_checked } => match open {
            Some(rec) => tick(rec, *alarms_checked, ctx),
            None => Transition::nothing(Verdict::Nothing("no open incident".into())),
        },
        Input::Acknowledge { by, at } => match open {
            Some(rec) => acknowledge(rec, by, *at),
            None => Transition::nothing(Verdict::Nothing("no open incident to acknowledge".into())),
        },
    }
}

/// A person takes the incident on: recorded (the latest acknowledgement
/// counts, at the severity of now), noted for the resolution and the
/// report. No message here: the caller announces it in the thread.
fn acknowledge(rec: &Record, by: &str, at: i64) -> Transition {
    let mut r = next_version(rec);
    r.acknowledged =
        Some(Acknowledgement { by: by.to_string(), at, severity: rec.severity, escalations: rec.escalations });
    bounded_push(
        &mut r.notes,
        format!("acknowledged by {by} at {} ({})", crate::time::iso(at), rec.severity),
        MAX_NOTES,
    );
    Transition::write(r, Vec::new(), Verdict::Acknowledged { by: by.to_string() })
}

fn bounded_push(list: &mut Vec<String>, item: String, max: usize) {
    let item: String = if item.chars().count() > MAX_NOTE_CHARS {
        item.chars().take(MAX_NOTE_CHARS).chain("…".chars()).collect()
    } else {
        item
    };
    if !list.contains(&item) {
        list.push(item);
        if list.len() > max {
            let extra = list.len() - max;
            list.drain(..extra);
        }
    }
}

fn next_version(rec: &Record) -> Record {
    let mut r = rec.clone();
    r.version += 1;
    r
}

/// The resolution of `rec`, claimed by this invocation.
fn claim_resolution(mut r: Record, why: String, expired: bool, ctx: &Ctx<'_>) -> (Record, Effect) {
    let message = MessageKind::Resolution { why, expired };
    r.sending = Some(ctx.claim(message.clone()));
    let publish = Publish { message, severity: r.severity, reason: None, announce: Vec::new() };
    (r, Effect::Publish(publish))
}

/// Whether the incident saw no signal for a whole window.
fn expired(rec: &Record, ctx: &Ctx<'_>) -> bool {
    rec.last_signal_at < ctx.now - ctx.window()
}

fn expiry_text(ctx: &Ctx<'_>) -> String {
    format!("expired: no signal for {}", crate::time::human_duration(ctx.window()))
}

/// A resolution claimed by someone: taken over when theirs is over (or it is ours).
fn pending_resolution(rec: &Record) -> Option<&Sending> {
    rec.sending.as_ref().filter(|s| matches!(s.message, MessageKind::Resolution { .. }))
}

fn take_over_resolution(rec: &Record, s: &Sending, ctx: &Ctx<'_>) -> Transition {
    let mut r = next_version(rec);
    r.sending = Some(ctx.claim(s.message.clone()));
    let publish = Publish { message: s.message.clone(), severity: r.severity, reason: None, announce: Vec::new() };
    Transition::write(r, vec![Effect::Publish(publish)], Verdict::Resolving).again_after()
}

fn problem(current: Option<&Record>, p: &ProblemSignal, ctx: &Ctx<'_>) -> Transition {
    let window = ctx.window();
    match current {
        Some(rec) if rec.is_open() => {
            if let Some(s) = pending_resolution(rec) {
                if ctx.held_by_another(s) {
                    return Transition {
                        effects: vec![Effect::RetryLater {
                            what: format!("the resolution of incident {}", rec.id),
                            until: s.until,
                        }],
                        ..Transition::nothing(Verdict::Nothing("the incident is being resolved".into()))
                    };
                }
                return take_over_resolution(rec, s, ctx);
            }
            if expired(rec, ctx) && p.at >= ctx.now - window {
                // Nothing happened for a whole window: that incident is over; this is a new one.
                let (r, publish) = claim_resolution(next_version(rec), expiry_text(ctx), true, ctx);
                return Transition::write(r, vec![publish], Verdict::Expiring).again_after();
            }
            join(rec, p, ctx)
        }
        closed => {
            if p.at < ctx.now - window {
                return Transition::nothing(Verdict::Stale(format!(
                    "the signal is older than the incident window ({} ago)",
                    crate::time::human_duration(ctx.now - p.at)
                )));
            }
            if let Some(Record { state: State::Closed { recovered_at: Some(rec_at), at: closed_at, .. }, id, .. }) =
                closed
                && p.at <= *rec_at
            {
                // Stale; but an action its signal's first delivery took as the
                // incident closed may still wait to be said: read the outbox.
                let effects = if *closed_at >= ctx.now - window { vec![Effect::ReadLedger] } else { Vec::new() };
                return Transition {
                    effects,
                    ..Transition::nothing(Verdict::Stale(format!(
                        "the signal ({}) is older than the recovery ({}) that resolved incident {id}",
                        crate::time::iso(p.at),
                        crate::time::iso(*rec_at)
                    )))
                };
            }
            open(closed.map_or(0, |r| r.version + 1), p, ctx)
        }
    }
}

fn open(version: u64, p: &ProblemSignal, ctx: &Ctx<'_>) -> Transition {
    let opened_at = p.at.min(ctx.now);
    let mut failures = Failures::default();
    if let Some(t) = &p.task {
        failures.add(t, ctx.now, ctx.window());
    }
    let mut notes = Vec::new();
    if let Some(n) = &p.note {
        bounded_push(&mut notes, n.clone(), MAX_NOTES);
    }
    let record = Record {
        id: Record::new_id(ctx.subject, opened_at, ctx.salt),
        subject: ctx.subject.clone(),
        version,
        state: State::Open,
        kind: p.kind,
        headline: p.label.clone(),
        opened_at,
        last_signal_at: p.at,
        severity: p.severity,
        cause: p.cause.unwrap_or(Cause::Unknown),
        problems: vec![Problem {
            key: p.key.clone(),
            label: p.label.clone(),
            first_at: p.at,
            last_at: p.at,
            cleared_at: None,
            cleared_by: None,
            revision: p.revision.clone(),
        }],
        failures,
        alert_at: None,
        message_id: None,
        // Recorded before anything else happens: the alert is pending until published.
        sending: Some(ctx.claim(MessageKind::Opening)),
        announced_severity: None,
        last_message_at: None,
        announced: Vec::new(),
        escalations: 0,
        notes,
        evidence: None,
        impact: Vec::new(),
        team: None,
        events: 1,
        acknowledged: None,
    };
    Transition::write(record, vec![Effect::Act(ActionCue::Signal), Effect::Diagnose(Depth::Full)], Verdict::Opened)
}

/// Count a problem signal into the open incident `rec`.
fn merge_problem(rec: &Record, p: &ProblemSignal, ctx: &Ctx<'_>) -> (Record, bool) {
    let mut r = next_version(rec);
    r.events += 1;
    r.last_signal_at = r.last_signal_at.max(p.at);
    r.severity = r.severity.min(p.severity);
    if r.cause == Cause::Unknown
        && let Some(c) = p.cause
    {
        r.cause = c;
    }
    if let Some(t) = &p.task {
        r.failures.add(t, ctx.now, ctx.window());
    }
    if let Some(n) = &p.note {
        bounded_push(&mut r.notes, n.clone(), MAX_NOTES);
    }
    let mut new_problem = false;
    match r.problems.iter_mut().find(|x| x.key == p.key) {
        Some(x) => {
            x.first_at = x.first_at.min(p.at);
            // A signal newer than the recovery that cleared it raises it again.
            if x.cleared_at.is_some_and(|c| p.at > c) {
                x.cleared_at = None;
                x.cleared_by = None;
                new_problem = true;
            }
            x.last_at = x.last_at.max(p.at);
            if p.revision.is_some() {
                x.revision = p.revision.clone();
            }
            if x.label != p.label && p.severity < rec.severity {
                x.label = p.label.clone();
            }
        }
        None => {
            new_problem = true;
            r.problems.push(Problem {
                key: p.key.clone(),
                label: p.label.clone(),
                first_at: p.at,
                last_at: p.at,
                cleared_at: None,
                cleared_by: None,
                revision: p.revision.clone(),
            });
            if r.problems.len() > MAX_PROBLEMS {
                // The oldest cleared problem goes first, else the oldest.
                let drop = r
                    .problems
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.is_cleared())
                    .min_by_key(|(_, x)| x.last_at)
                    .or_else(|| r.problems.iter().enumerate().min_by_key(|(_, x)| x.last_at))
                    .map(|(i, _)| i);
                if let Some(i) = drop {
                    r.problems.remove(i);
                }
            }
        }
    }
    (r, new_problem)
}

fn join(rec: &Record, p: &ProblemSignal, ctx: &Ctx<'_>) -> Transition {
    let (mut r, new_problem) = merge_problem(rec, p, ctx);
    let work = |depth| vec![Effect::Act(ActionCue::Signal), Effect::Diagnose(depth)];
    let news = p.news || new_problem;
    match r.sending.clone() {
        Some(s) if ctx.held_by_another(&s) => {
            Transition::write(r, work(Depth::Facts), Verdict::JoinedQuietly).with_news(news)
        }
        Some(s) if s.message == MessageKind::Opening => {
            // Our own retry, or the sender's lease is over: the pending alert is ours.
            r.sending = Some(ctx.claim(MessageKind::Opening));
            Transition::write(r, work(Depth::Full), Verdict::TookOverAlert).with_news(news)
        }
        None if r.alert_at.is_none() => {
            // Pending, and nobody sends it (its sender gave up): ours.
            r.sending = Some(ctx.claim(MessageKind::Opening));
            Transition::write(r, work(Depth::Full), Verdict::TookOverAlert).with_news(news)
        }
        Some(_) => {
            // An update or escalation whose sender is gone: whatever it said is due again.
            r.sending = None;
            Transition::write(r, work(Depth::Facts), Verdict::Joined).with_news(news)
        }
        None => Transition::write(r, work(Depth::Facts), Verdict::Joined).with_news(news),
    }
}

/// Whether an update is due for `rec` now (the reason first found).
pub fn update_due(rec: &Record, unannounced: &[String], news: bool, now: i64, policy: &Policy) -> Option<UpdateReason> {
    if let Some(announced) = rec.announced_severity
        && rec.severity < announced
    {
        return Some(UpdateReason::SeverityRose(announced));
    }
    if !unannounced.is_empty() {
        return Some(UpdateReason::Action);
    }
    if news {
        return Some(UpdateReason::News);
    }
    rec.last_message_at.is_none_or(|at| now - at >= policy.update_interval_seconds).then_some(UpdateReason::Interval)
}

fn learnt(rec: &Record, l: &Learnt, ctx: &Ctx<'_>) -> Transition {
    let mut r = next_version(rec);
    if let Some(s) = l.severity {
        r.severity = r.severity.min(s);
    }
    if l.action_failed {
        r.severity = Severity::Sev1;
    }
    if let Some(c) = l.cause
        && (r.cause == Cause::Unknown
            || rec.kind == Kind::EcsTaskStopped && c != Cause::Unknown && rec.alert_at.is_none())
    {
        // Diagnosis refines an unknown cause; before the alert it may correct the stop's own.
        r.cause = c;
    }
    for t in &l.tasks {
        r.failures.add(t, ctx.now, ctx.window());
    }
    if !l.impact.is_empty() {
        r.impact = l.impact.iter().take(MAX_IMPACT).cloned().collect();
    }
    if l.team.is_some() {
        r.team = l.team.clone();
    }
    if l.evidence.is_some() {
        r.evidence = l.evidence.clone();
    }
    for n in &l.notes {
        bounded_push(&mut r.notes, n.clone(), MAX_NOTES);
    }
    for (key, revision) in &l.revisions {
        if let Some(p) = r.problems.iter_mut().find(|p| &p.key == key && p.revision.is_none()) {
            p.revision = Some(revision.clone());
        }
    }
    if let Some(label) = &l.label {
        if let Some(first) = r.problems.first_mut() {
            first.label = label.clone();
        }
        r.headline = label.clone();
    }
    let rose = r.severity < rec.severity || rec.sending.as_ref().is_some_and(|s| s.message == MessageKind::Opening);
    match r.sending.clone() {
        Some(s) if s.by == ctx.token && s.message == MessageKind::Opening => {
            if l.wants_action {
                return Transition::write(r, vec![Effect::Act(ActionCue::CrashLoop)], Verdict::TookOverAlert);
            }
            let publish = Publish {
                message: MessageKind::Opening,
                severity: r.severity,
                reason: None,
                announce: l.unannounced.clone(),
            };
            Transition::write(r, vec![Effect::Publish(publish)], Verdict::Claimed(MessageKind::Opening))
        }
        Some(s) if ctx.held_by_another(&s) => {
            if l.wants_action && rose {
                return Transition::write(r, vec![Effect::Act(ActionCue::CrashLoop)], Verdict::JoinedQuietly);
            }
            let effects = if l.unannounced.is_empty() {
                Vec::new()
            } else {
                // Our action must be announced, and only after the message in flight.
                vec![Effect::RetryLater {
                    what: format!("the {} of incident {} (the action is announced on retry)", s.message.label(), r.id),
                    until: s.until,
                }]
            };
            Transition::write(r, effects, Verdict::JoinedQuietly)
        }
        _ => {
            if l.wants_action && r.severity < rec.severity {
                return Transition::write(r, vec![Effect::Act(ActionCue::CrashLoop)], Verdict::Joined);
            }
            if r.alert_at.is_none() {
                // The opening alert is pending and not ours: nothing to say before it.
                return Transition::write(r, Vec::new(), Verdict::JoinedQuietly);
            }
            match update_due(&r, &l.unannounced, l.news, ctx.now, ctx.policy) {
                Some(reason) => {
                    r.sending = Some(ctx.claim(MessageKind::Update));
                    let publish = Publish {
                        message: MessageKind::Update,
                        severity: r.severity,
                        reason: Some(reason),
                        announce: l.unannounced.clone(),
                    };
                    Transition::write(r, vec![Effect::Publish(publish)], Verdict::Claimed(MessageKind::Update))
                }
                None => Transition::write(
                    r,
                    Vec::new(),
                    Verdict::Nothing("no update due (severity unchanged, nothing new, within the interval)".into()),
                ),
            }
        }
    }
}

/// An action that finished after its incident was resolved (the joiner
/// acted while another invocation resolved): said at once, in an update of
/// the resolved incident — an executed action is never left unannounced.
fn late_action(closed: &Record, l: &Learnt, ctx: &Ctx<'_>) -> Transition {
    if let Some(s) = closed.sending.as_ref().filter(|s| ctx.held_by_another(s)) {
        return Transition {
            effects: vec![Effect::RetryLater {
                what: format!("the {} of incident {} (the action is announced on retry)", s.message.label(), closed.id),
                until: s.until,
            }],
            ..Transition::nothing(Verdict::Nothing("a message of the resolved incident is being sent".into()))
        };
    }
    let mut r = next_version(closed);
    r.sending = Some(ctx.claim(MessageKind::Update));
    let publish = Publish {
        message: MessageKind::Update,
        severity: r.severity,
        reason: Some(UpdateReason::Action),
        announce: l.unannounced.clone(),
    };
    Transition::write(r, vec![Effect::Publish(publish)], Verdict::Claimed(MessageKind::Update))
}

fn remember_announced(r: &mut Record, keys: &[String]) {
    for k in keys {
        bounded_push(&mut r.announced, k.clone(), MAX_ANNOUNCED);
    }
}

fn sent(rec: &Record, s: &Sent, ctx: &Ctx<'_>) -> Transition {
    let mut r = next_version(rec);
    remember_announced(&mut r, &s.announced);
    r.announced_severity = Some(r.announced_severity.map_or(s.severity, |a| a.min(s.severity)));
    r.last_message_at = Some(ctx.now);
    if s.message == MessageKind::Opening && r.alert_at.is_none() {
        r.alert_at = Some(ctx.now);
        r.message_id = Some(s.message_id.clone());
    }
    if let MessageKind::Escalation { nth } = s.message {
        r.escalations = r.escalations.max(nth);
    }
    let ours = r.sending.as_ref().is_some_and(|x| x.by == ctx.token && x.message == s.message);
    if !ours {
        // Our message went out after another invocation took the claim over
        // (our lease ended first): record what we said, leave theirs alone.
        return Transition::write(r, Vec::new(), Verdict::Delivered(s.message.clone()));
    }
    r.sending = None;
    if let MessageKind::Resolution { why, expired } = &s.message {
        let recovered_at = if *expired { None } else { r.problems.iter().filter_map(|p| p.cleared_at).max() };
        r.state = State::Closed { at: ctx.now, resolution: why.clone(), recovered_at };
        return Transition::write(r, vec![Effect::Archive], Verdict::Delivered(s.message.clone()));
    }
    if r.is_open()
        && let Some(announced) = r.announced_severity
        && r.severity < announced
    {
        // Raised by another invocation while we were sending: say so now.
        r.sending = Some(ctx.claim(MessageKind::Update));
        let publish = Publish {
            message: MessageKind::Update,
            severity: r.severity,
            reason: Some(UpdateReason::SeverityRose(announced)),
            announce: Vec::new(),
        };
        return Transition::write(r, vec![Effect::Publish(publish)], Verdict::Delivered(s.message.clone()));
    }
    Transition::write(r, Vec::new(), Verdict::Delivered(s.message.clone()))
}

fn not_sent(current: Option<&Record>, p: &Publish, ctx: &Ctx<'_>) -> Transition {
    let fail = Effect::Fail { retry: p.must_arrive(), what: format!("the {} was not published", p.message.label()) };
    match current {
        Some(rec) if rec.sending.as_ref().is_some_and(|s| s.by == ctx.token && s.message == p.message) => {
            // Released: the next signal, the tick or Lambda's retry sends it.
            let mut r = next_version(rec);
            r.sending = None;
            Transition::write(r, vec![fail], Verdict::Released(p.message.clone()))
        }
        _ => Transition { effects: vec![fail], ..Transition::nothing(Verdict::Released(p.message.clone())) },
    }
}

/// Whether `revision` is in trouble at `at`: its tasks failed at the
/// crash-loop threshold within the window before `at`. (A deployment of it
/// that completes after its own failure is a redeploy that worked: the time
/// rule alone decides that.)
fn in_trouble(rec: &Record, revision: &str, at: i64, ctx: &Ctx<'_>) -> bool {
    rec.failures.buckets.iter().any(|b| b.revision == revision)
        && rec.failures.count(Some(revision), at, ctx.window()) >= ctx.policy.crash_loop_threshold.max(1)
}

fn recovery(rec: &Record, r: &Recovery, ctx: &Ctx<'_>) -> Transition {
    if let Some(s) = pending_resolution(rec) {
        if ctx.held_by_another(s) {
            return Transition::nothing(Verdict::Nothing(format!("incident {} is being resolved", rec.id)));
        }
        let mut t = take_over_resolution(rec, s, ctx);
        t.again = false;
        return t;
    }
    let troubled = match &r.scope {
        RecoveryScope::Service { revision: Some(rev) } => in_trouble(rec, rev, r.at, ctx),
        _ => false,
    };
    let mut next = next_version(rec);
    let mut cleared = 0;
    let mut too_old = Vec::new();
    for p in next.problems.iter_mut().filter(|p| !p.is_cleared() && p.key.in_scope(&r.scope)) {
        if p.last_at > r.at {
            too_old.push(p.key.describe());
            continue;
        }
        if troubled && matches!(p.key, ProblemKey::Tasks | ProblemKey::Deployment(_)) {
            continue;
        }
        p.cleared_at = Some(r.at);
        p.cleared_by = Some(r.by.clone());
        cleared += 1;
    }
    let remaining: Vec<&Problem> = next.open_problems().collect();
    let alarms: Vec<String> = remaining
        .iter()
        .filter_map(|p| match &p.key {
            ProblemKey::Alarm(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    let only_alarms_left = !remaining.is_empty() && alarms.len() == remaining.len();
    let remaining_text: Vec<String> = remaining.iter().map(|p| p.key.describe()).collect();
    if cleared == 0 {
        let why = if !too_old.is_empty() {
            Verdict::Stale(format!(
                "the recovery ({}) is older than the last signal of {}",
                crate::time::iso(r.at),
                too_old.join(", ")
            ))
        } else if troubled {
            Verdict::Nothing(format!(
                "{} is the revision in trouble: its completion does not clear {}",
                match &r.scope {
                    RecoveryScope::Service { revision: Some(rev) } => rev.as_str(),
                    _ => "it",
                },
                remaining_text.join(", ")
            ))
        } else {
            Verdict::Nothing(format!(
                "incident {} stays open: {} not cleared by {}",
                rec.id,
                remaining_text.join(", "),
                r.by
            ))
        };
        let effects = if only_alarms_left && matches!(r.scope, RecoveryScope::Service { .. }) {
            vec![Effect::CheckAlarms(alarms)]
        } else {
            Vec::new()
        };
        return Transition { effects, ..Transition::nothing(why) };
    }
    if !remaining.is_empty() {
        let effects = if only_alarms_left { vec![Effect::CheckAlarms(alarms)] } else { Vec::new() };
        return Transition::write(next, effects, Verdict::Cleared { remaining: remaining_text });
    }
    // Every problem cleared: resolve — after the opening alert, never before
    // it. An update or escalation in flight does not hold the resolution up.
    if let Some(s) = next.sending.clone().filter(|s| ctx.held_by_another(s) && s.message == MessageKind::Opening) {
        return Transition {
            effects: vec![Effect::RetryLater {
                what: format!("the {} of incident {}", s.message.label(), rec.id),
                until: s.until,
            }],
            ..Transition::nothing(Verdict::Nothing("a message of the incident is being sent".into()))
        };
    }
    let (resolved, publish) = claim_resolution(next, r.by.clone(), false, ctx);
    Transition::write(resolved, vec![publish], Verdict::Resolving)
}

/// What the scheduled job does with one open incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    NotDue,
    Escalate { nth: u32 },
}

/// Whether `rec` is due an escalation now: one once it has been open longer
/// than the escalation delay, and for a SEV1 one more every 30 minutes.
pub fn escalation_due(rec: &Record, now: i64, policy: &Policy) -> Escalation {
    if !rec.alert_delivered() {
        return Escalation::NotDue;
    }
    let after = policy.escalate_after_seconds;
    let age = now - rec.opened_at;
    if age <= after {
        return Escalation::NotDue;
    }
    if let Some(ack) = &rec.acknowledged {
        // Acknowledged: quiet until the severity rises above the acknowledged one.
        if rec.severity >= ack.severity {
            return Escalation::NotDue;
        }
        // It rose: escalated once for the rise, then as usual.
        if rec.escalations <= ack.escalations {
            return Escalation::Escalate { nth: rec.escalations + 1 };
        }
    }
    let sent = rec.escalations;
    if sent == 0 {
        return Escalation::Escalate { nth: 1 };
    }
    let next_at = after + i64::from(sent) * SEV1_REPEAT_SECONDS;
    if rec.severity == Severity::Sev1 && age > next_at {
        Escalation::Escalate { nth: sent + 1 }
    } else {
        Escalation::NotDue
    }
}

fn tick(rec: &Record, alarms_checked: bool, ctx: &Ctx<'_>) -> Transition {
    let mut r = next_version(rec);
    if let Some(s) = rec.sending.clone() {
        if ctx.held_by_another(&s) {
            return Transition::nothing(Verdict::Nothing(format!("a {} is being sent", s.message.label())));
        }
        match s.message {
            MessageKind::Resolution { .. } => {
                let mut t = take_over_resolution(rec, &s, ctx);
                t.again = false;
                return t;
            }
            MessageKind::Opening => {}
            // A dead sender's update or escalation: due again if still due.
            _ => r.sending = None,
        }
    }
    if expired(rec, ctx) {
        let (closing, publish) = claim_resolution(r, expiry_text(ctx), true, ctx);
        return Transition::write(closing, vec![publish], Verdict::Expiring);
    }
    if !r.problems.is_empty() && r.open_problems().next().is_none() {
        // Every problem cleared, its resolution never sent: send it now.
        let why = r.problems.iter().filter_map(|p| p.cleared_by.clone()).next_back().unwrap_or_default();
        let (closing, publish) = claim_resolution(r, why, false, ctx);
        return Transition::write(closing, vec![publish], Verdict::Resolving);
    }
    if r.alert_at.is_none() {
        // The opening alert of a sender that died (or gave up): delivered now, exactly once.
        r.sending = Some(ctx.claim(MessageKind::Opening));
        return Transition::write(r, vec![Effect::Diagnose(Depth::Full)], Verdict::TookOverAlert);
    }
    let alarms: Vec<String> = r
        .open_problems()
        .filter_map(|p| match &p.key {
            ProblemKey::Alarm(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    if !alarms_checked && !alarms.is_empty() {
        return Transition { effects: vec![Effect::CheckAlarms(alarms)], ..Transition::nothing(Verdict::Joined) }
            .again_after();
    }
    match escalation_due(&r, ctx.now, ctx.policy) {
        Escalation::Escalate { nth } => {
            let message = MessageKind::Escalation { nth };
            r.sending = Some(ctx.claim(message.clone()));
            let publish =
                Publish { message: message.clone(), severity: r.severity, reason: None, announce: Vec::new() };
            Transition::write(r, vec![Effect::Publish(publish)], Verdict::Claimed(message))
        }
        Escalation::NotDue if r.sending != rec.sending => {
            Transition::write(r, Vec::new(), Verdict::Nothing("not due".into()))
        }
        Escalation::NotDue => Transition::nothing(Verdict::Nothing("nothing due".into())),
    }
}

/// Ledger entries the next message of `rec` must announce: executed or
/// failed, announced by no message yet (neither marked on the entry nor in
/// the incident's `announced`), since the incident opened — or, for an
/// automatic action, up to `carry_seconds` before: one that finished after
/// its own incident was resolved is announced by the subject's next
/// incident. Entries still `executing` wait until verified.
pub fn unannounced<'a>(rec: &Record, ledger: &'a [LedgerEntry], carry_seconds: i64) -> Vec<&'a LedgerEntry> {
    ledger
        .iter()
        .filter(|e| matches!(e.status, LedgerStatus::Executed | LedgerStatus::Failed) && !e.announced)
        .filter(|e| e.at >= rec.opened_at || (e.automatic && e.at >= rec.opened_at - carry_seconds))
        .filter(|e| e.key.as_ref().is_some_and(|k| !rec.announced.contains(k)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_000_000;
    const POLICY: Policy = Policy {
        window_seconds: 3600,
        update_interval_seconds: 900,
        escalate_after_seconds: 900,
        crash_loop_threshold: 3,
    };

    fn svc() -> Subject {
        Subject::service("prod", "api")
    }

    fn ctx<'a>(subject: &'a Subject, now: i64, token: &'a str) -> Ctx<'a> {
        Ctx { subject, now, token, lease_until: now + 330, salt: "salt", policy: &POLICY }
    }

    fn stop(task: &str, rev: &str, at: i64) -> ProblemSignal {
        ProblemSignal {
            key: ProblemKey::Tasks,
            label: "task failed".into(),
            kind: Kind::EcsTaskStopped,
            at,
            severity: Severity::Sev3,
            cause: Some(Cause::OutOfMemory),
            revision: Some(rev.into()),
            task: Some(TaskStop { task: task.into(), revision: rev.into(), stopped_at: at }),
            news: false,
            note: None,
        }
    }

    fn alarm(name: &str, at: i64, severity: Severity) -> ProblemSignal {
        ProblemSignal {
            key: ProblemKey::Alarm(name.into()),
            label: "alarm".into(),
            kind: Kind::Alarm,
            at,
            severity,
            cause: Some(Cause::HighCpu),
            revision: None,
            task: None,
            news: false,
            note: None,
        }
    }

    fn failed_deployment(id: &str, rev: &str, at: i64) -> ProblemSignal {
        ProblemSignal {
            key: ProblemKey::Deployment(id.into()),
            label: "deployment failed".into(),
            kind: Kind::EcsDeployment,
            at,
            severity: Severity::Sev2,
            cause: None,
            revision: Some(rev.into()),
            task: None,
            news: true,
            note: None,
        }
    }

    fn steady(at: i64) -> Recovery {
        Recovery { scope: RecoveryScope::Service { revision: None }, at, by: "SERVICE_STEADY_STATE".into() }
    }

    fn ok(name: &str, at: i64) -> Recovery {
        Recovery { scope: RecoveryScope::Alarm(name.into()), at, by: format!("alarm {name} back to OK") }
    }

    /// Apply `input` at `now` as `token`; the record as written (or as it was).
    fn run(rec: Option<&Record>, input: Input, now: i64, token: &str) -> (Option<Record>, Transition) {
        let subject = rec.map(|r| r.subject.clone()).unwrap_or_else(svc);
        let t = step(rec, &input, &ctx(&subject, now, token));
        if let (Some(before), Some(after)) = (rec, &t.record) {
            assert_eq!(after.version, before.version + 1, "every write bumps the version by one: {:?}", t.verdict);
        }
        (t.record.clone().or_else(|| rec.cloned()), t)
    }

    /// Open an incident with `p` as `req-a` at `T0`, and deliver its alert at `SEV3`.
    fn delivered(p: ProblemSignal) -> Record {
        let (rec, _) = run(None, Input::Problem(p), T0, "req-a");
        let (rec, t) = run(rec.as_ref(), Input::Learnt(Learnt::default()), T0 + 1, "req-a");
        let Some(Effect::Publish(publish)) = t.effects.first().cloned() else { panic!("{t:?}") };
        let sent = Sent {
            message: publish.message,
            message_id: "m-1".into(),
            severity: publish.severity,
            announced: Vec::new(),
        };
        run(rec.as_ref(), Input::Sent(sent), T0 + 2, "req-a").0.unwrap()
    }

    fn pending(p: ProblemSignal) -> Record {
        run(None, Input::Problem(p), T0, "req-a").0.unwrap()
    }

    fn ack(by: &str, at: i64) -> Input {
        Input::Acknowledge { by: by.into(), at }
    }

    #[test]
    fn an_acknowledgement_is_recorded_on_the_open_incident_and_noted_for_the_report() {
        let open = delivered(stop("t1", "api:7", T0));
        let (rec, t) = run(Some(&open), ack("bob", T0 + 60), T0 + 60, "req-b");
        assert_eq!(t.verdict, Verdict::Acknowledged { by: "bob".into() });
        assert!(t.effects.is_empty(), "the runbook announces it, not the machine: {:?}", t.effects);
        let rec = rec.unwrap();
        let a = rec.acknowledged.clone().unwrap();
        assert_eq!((a.by.as_str(), a.at, a.severity, a.escalations), ("bob", T0 + 60, open.severity, 0));
        assert!(rec.notes.iter().any(|n| n.starts_with("acknowledged by bob")), "{:?}", rec.notes);
        // A second acknowledgement replaces the first (the latest person counts).
        let (again, _) = run(Some(&rec), ack("carol", T0 + 90), T0 + 90, "req-c");
        assert_eq!(again.unwrap().acknowledged.unwrap().by, "carol");
        // Nothing open: nothing recorded.
        let closed = resolved_copy(&open);
        let (_, t) = run(Some(&closed), ack("bob", T0 + 60), T0 + 60, "req-b");
        assert!(t.record.is_none() && matches!(t.verdict, Verdict::Nothing(_)), "{t:?}");
        let (_, t) = run(None, ack("bob", T0), T0, "req-b");
        assert!(matches!(t.verdict, Verdict::Nothing(_)), "{t:?}");
    }

    fn resolved_copy(open: &Record) -> Record {
        let mut r = open.clone();
        r.state = State::Closed { at: T0 + 30, resolution: "steady".into(), recovered_at: Some(T0 + 30) };
        r
    }

    #[test]
    fn escalation_waits_for_an_acknowledged_incident_until_its_severity_rises() {
        let late = T0 + POLICY.escalate_after_seconds + 60;
        // (severity at ack, severity now, escalations before ack, escalations now, due?)
        let cases: &[(Severity, Severity, u32, u32, Escalation)] = &[
            (Severity::Sev2, Severity::Sev2, 0, 0, Escalation::NotDue),
            (Severity::Sev1, Severity::Sev1, 1, 1, Escalation::NotDue),
            (Severity::Sev2, Severity::Sev1, 0, 0, Escalation::Escalate { nth: 1 }),
            (Severity::Sev2, Severity::Sev1, 1, 1, Escalation::Escalate { nth: 2 }),
            // Escalated once for the rise: then the SEV1 rhythm (30 minutes) as usual.
            (Severity::Sev2, Severity::Sev1, 0, 1, Escalation::NotDue),
        ];
        let open = delivered(stop("t1", "api:7", T0));
        for (at_ack, now_sev, before, sent, due) in cases {
            let mut rec = open.clone();
            rec.severity = *now_sev;
            rec.escalations = *sent;
            rec.acknowledged =
                Some(Acknowledgement { by: "bob".into(), at: T0 + 10, severity: *at_ack, escalations: *before });
            assert_eq!(escalation_due(&rec, late, &POLICY), *due, "ack {at_ack:?} now {now_sev:?} {before}/{sent}");
        }
        // Without an acknowledgement the same record escalates.
        let mut plain = open.clone();
        plain.severity = Severity::Sev2;
        assert_eq!(escalation_due(&plain, late, &POLICY), Escalation::Escalate { nth: 1 });
        // Through the tick: acknowledged, the tick claims no escalation.
        let (acked, _) = run(Some(&open), ack("bob", T0 + 60), T0 + 60, "req-b");
        let (_, t) = run(acked.as_ref(), Input::Tick { alarms_checked: true }, late, "tick");
        assert!(!t.effects.iter().any(|e| matches!(e, Effect::Publish(_))), "{t:?}");
    }

    #[test]
    fn a_problem_with_no_incident_opens_one_with_its_alert_pending_and_acts_first() {
        let (rec, t) = run(None, Input::Problem(stop("t1", "api:7", T0 - 30)), T0, "req-a");
        let rec = rec.unwrap();
        assert_eq!(t.verdict, Verdict::Opened);
        assert_eq!(t.effects, vec![Effect::Act(ActionCue::Signal), Effect::Diagnose(Depth::Full)]);
        assert_eq!(rec.sending, Some(Sending { message: MessageKind::Opening, by: "req-a".into(), until: T0 + 330 }));
        assert_eq!(rec.opened_at, T0 - 30, "opened when the task stopped, not when the event was handled");
        assert_eq!(rec.version, 0);
        assert!(rec.alert_at.is_none());
    }

    #[test]
    fn signals_are_judged_at_their_event_time() {
        // Finding 9: a stop delivered late counts at ECS's stop time.
        let (rec, _) = run(None, Input::Problem(stop("t1", "api:7", T0 - 1800)), T0, "req-a");
        let rec = rec.unwrap();
        assert_eq!(rec.failures.count(Some("api:7"), T0, 900), 0, "stopped 30 minutes ago: outside a 15-minute window");
        assert_eq!(rec.failures.count(Some("api:7"), T0, 3600), 1);
        // A problem older than the whole window opens nothing.
        let (rec, t) = run(None, Input::Problem(stop("t2", "api:7", T0 - 3700)), T0, "req-a");
        assert!(matches!(t.verdict, Verdict::Stale(_)), "{:?}", t.verdict);
        assert!(rec.is_none() && t.effects.is_empty(), "no action on a stale signal");
        // Finding 2: a recovery older than the incident does not resolve it.
        let open = delivered(stop("t3", "api:7", T0));
        let (_, t) = run(Some(&open), Input::Recovery(steady(T0 - 60)), T0 + 120, "req-b");
        assert!(matches!(t.verdict, Verdict::Stale(_)), "{:?}", t.verdict);
        assert!(t.record.is_none() && t.effects.is_empty());
        // A problem older than the recovery that closed the last incident is stale.
        let closed = resolve(&open, steady(T0 + 100), T0 + 110);
        let (_, t) = run(Some(&closed), Input::Problem(stop("t4", "api:7", T0 + 90)), T0 + 200, "req-c");
        assert!(
            matches!(t.verdict, Verdict::Stale(ref why) if why.contains("older than the recovery")),
            "{:?}",
            t.verdict
        );
        assert_eq!(t.effects, vec![Effect::ReadLedger], "no page, no action; the outbox is read");
        let (reopened, t) = run(Some(&closed), Input::Problem(stop("t5", "api:7", T0 + 150)), T0 + 200, "req-c");
        assert_eq!(t.verdict, Verdict::Opened, "a newer problem opens a new incident");
        let reopened = reopened.unwrap();
        assert_ne!(reopened.id, closed.id);
        assert_eq!(reopened.version, closed.version + 1, "the same item, the next version");
    }

    /// Resolve `open` with `recovery` at `now` as `req-r`, the resolution delivered.
    fn resolve(open: &Record, recovery: Recovery, now: i64) -> Record {
        let (rec, t) = run(Some(open), Input::Recovery(recovery), now, "req-r");
        assert_eq!(t.verdict, Verdict::Resolving, "{t:?}");
        let Some(Effect::Publish(p)) = t.effects.first().cloned() else { panic!("{t:?}") };
        let sent = Sent { message: p.message, message_id: "m-r".into(), severity: p.severity, announced: Vec::new() };
        let (rec, t) = run(rec.as_ref(), Input::Sent(sent), now + 1, "req-r");
        assert_eq!(t.effects, vec![Effect::Archive]);
        rec.unwrap()
    }

    #[test]
    fn a_recovery_clears_only_the_problems_it_speaks_for() {
        // Finding 2: a CPU alarm's incident stays open through a steady state.
        let cpu = delivered(alarm("api-cpu", T0, Severity::Sev2));
        let (_, t) = run(Some(&cpu), Input::Recovery(steady(T0 + 300)), T0 + 300, "req-b");
        assert!(matches!(t.verdict, Verdict::Nothing(ref why) if why.contains("alarm api-cpu")), "{:?}", t.verdict);
        assert_eq!(t.effects, vec![Effect::CheckAlarms(vec!["api-cpu".into()])], "the alarm is read instead");
        // Its own OK resolves it.
        let closed = resolve(&cpu, ok("api-cpu", T0 + 400), T0 + 400);
        assert_eq!(
            closed.state,
            State::Closed { at: T0 + 401, resolution: "alarm api-cpu back to OK".into(), recovered_at: Some(T0 + 400) }
        );
        // Tasks and an alarm: steady state clears the tasks, the alarm remains.
        let both = delivered(stop("t1", "api:7", T0));
        let (both, _) = run(Some(&both), Input::Problem(alarm("api-5xx", T0 + 10, Severity::Sev2)), T0 + 10, "req-c");
        let both = both.unwrap();
        let (after, t) = run(Some(&both), Input::Recovery(steady(T0 + 300)), T0 + 300, "req-d");
        assert_eq!(t.verdict, Verdict::Cleared { remaining: vec!["alarm api-5xx".into()] });
        assert_eq!(t.effects, vec![Effect::CheckAlarms(vec!["api-5xx".into()])]);
        let after = after.unwrap();
        assert!(after.is_open());
        // Another alarm's OK clears nothing.
        let (_, t) = run(Some(&after), Input::Recovery(ok("api-cpu", T0 + 310)), T0 + 310, "req-e");
        assert!(matches!(t.verdict, Verdict::Nothing(_)));
        // The 5xx alarm's OK resolves what is left.
        resolve(&after, ok("api-5xx", T0 + 320), T0 + 320);
    }

    #[test]
    fn a_completed_deployment_of_the_revision_in_trouble_clears_nothing() {
        let mut rec = delivered(stop("t1", "api:7", T0));
        for (i, at) in [T0 + 10, T0 + 20].into_iter().enumerate() {
            rec = run(Some(&rec), Input::Problem(stop(&format!("t{}", i + 2), "api:7", at)), at, "req-b").0.unwrap();
        }
        let completed = |rev: &str| Recovery {
            scope: RecoveryScope::Service { revision: Some(rev.into()) },
            at: T0 + 60,
            by: format!("deployment of {rev} COMPLETED"),
        };
        let (_, t) = run(Some(&rec), Input::Recovery(completed("api:7")), T0 + 60, "req-c");
        assert!(matches!(t.verdict, Verdict::Nothing(ref why) if why.contains("in trouble")), "{:?}", t.verdict);
        let (_, t) = run(Some(&rec), Input::Recovery(completed("api:6")), T0 + 60, "req-c");
        assert_eq!(t.verdict, Verdict::Resolving, "the rollback's revision completing resolves the crash loop");
    }

    #[test]
    fn a_failed_deployment_is_cleared_by_a_later_completion_and_its_revision_is_never_a_target() {
        let rec = delivered(failed_deployment("ecs-svc/2", "api:8", T0));
        assert_eq!(rec.troubled_revisions(), vec!["api:8".to_string()]);
        let (_, t) = run(
            Some(&rec),
            Input::Recovery(Recovery {
                scope: RecoveryScope::Service { revision: Some("api:7".into()) },
                at: T0 - 10,
                by: "a completion older than the failure".into(),
            }),
            T0 + 60,
            "req-b",
        );
        assert!(matches!(t.verdict, Verdict::Stale(_)), "{:?}", t.verdict);
        let (_, t) = run(
            Some(&rec),
            Input::Recovery(Recovery {
                scope: RecoveryScope::Service { revision: Some("api:7".into()) },
                at: T0 + 60,
                by: "ECS rolled back".into(),
            }),
            T0 + 60,
            "req-b",
        );
        assert_eq!(t.verdict, Verdict::Resolving);
    }

    #[test]
    fn the_opening_alert_carries_the_highest_severity_recorded_when_it_is_sent() {
        // Finding 7: a concurrent joiner raises the record to SEV1 quietly.
        let opened = pending(stop("t1", "api:7", T0));
        let (raised, t) = run(Some(&opened), Input::Problem(stop("t2", "api:7", T0 + 5)), T0 + 5, "req-b");
        assert_eq!(t.verdict, Verdict::JoinedQuietly);
        let (raised, _) = run(
            raised.as_ref(),
            Input::Learnt(Learnt { severity: Some(Severity::Sev1), ..Default::default() }),
            T0 + 6,
            "req-b",
        );
        let raised = raised.unwrap();
        assert_eq!(raised.severity, Severity::Sev1);
        // The opener's own diagnosis said SEV3; it publishes the record's SEV1.
        let (_, t) = run(
            Some(&raised),
            Input::Learnt(Learnt { severity: Some(Severity::Sev3), ..Default::default() }),
            T0 + 7,
            "req-a",
        );
        let Some(Effect::Publish(p)) = t.effects.first() else { panic!("{t:?}") };
        assert_eq!((p.message.clone(), p.severity), (MessageKind::Opening, Severity::Sev1));
        // Raised after the opener's claim: its Sent announces the rise at once.
        let (claimed, _) = run(Some(&opened), Input::Learnt(Learnt::default()), T0 + 2, "req-a");
        let mut claimed = claimed.unwrap();
        claimed.severity = Severity::Sev1;
        let sent = Sent {
            message: MessageKind::Opening,
            message_id: "m-1".into(),
            severity: Severity::Sev3,
            announced: vec![],
        };
        let (after, t) = run(Some(&claimed), Input::Sent(sent), T0 + 8, "req-a");
        let after = after.unwrap();
        assert!(after.alert_delivered());
        let Some(Effect::Publish(p)) = t.effects.first() else { panic!("{t:?}") };
        assert_eq!(p.reason, Some(UpdateReason::SeverityRose(Severity::Sev3)));
        assert_eq!(p.severity, Severity::Sev1);
        assert_eq!(after.sending.as_ref().map(|s| s.message.clone()), Some(MessageKind::Update));
    }

    #[test]
    fn every_transition_of_the_opening_alert() {
        let p = || Input::Problem(stop("t9", "api:7", T0 + 60));
        let live = pending(stop("t1", "api:7", T0));
        let rows: Vec<(&str, i64, &str, Verdict, Vec<Effect>)> = vec![
            (
                "another live invocation is sending it: counted quietly",
                T0 + 60,
                "req-b",
                Verdict::JoinedQuietly,
                vec![Effect::Act(ActionCue::Signal), Effect::Diagnose(Depth::Facts)],
            ),
            (
                "the opener's own retry takes it over",
                T0 + 60,
                "req-a",
                Verdict::TookOverAlert,
                vec![Effect::Act(ActionCue::Signal), Effect::Diagnose(Depth::Full)],
            ),
            (
                "the opener died (lease over): the next signal sends it",
                T0 + 331,
                "req-b",
                Verdict::TookOverAlert,
                vec![Effect::Act(ActionCue::Signal), Effect::Diagnose(Depth::Full)],
            ),
        ];
        for (name, now, token, verdict, effects) in rows {
            let (rec, t) = run(Some(&live), p(), now, token);
            assert_eq!((&t.verdict, &t.effects), (&verdict, &effects), "{name}");
            if verdict == Verdict::TookOverAlert {
                assert_eq!(rec.unwrap().sending.unwrap().by, token, "{name}");
            }
        }
        // A recovery waits for a live opener, resolves after a dead one.
        let (_, t) = run(Some(&live), Input::Recovery(steady(T0 + 30)), T0 + 30, "req-b");
        assert!(matches!(t.effects.as_slice(), [Effect::RetryLater { .. }]), "{t:?}");
        let (_, t) = run(Some(&live), Input::Recovery(steady(T0 + 30)), T0 + 331, "req-b");
        assert_eq!(t.verdict, Verdict::Resolving, "the resolution alone says what happened");
        // Released after a failed publish: Lambda's retry (or anyone) sends it.
        let (claimed, t) = run(Some(&live), Input::Learnt(Learnt::default()), T0 + 2, "req-a");
        let Some(Effect::Publish(publish)) = t.effects.first().cloned() else { panic!() };
        let (released, t) = run(claimed.as_ref(), Input::NotSent(publish), T0 + 3, "req-a");
        assert_eq!(t.effects, vec![Effect::Fail { retry: true, what: "the opening alert was not published".into() }]);
        let released = released.unwrap();
        assert!(released.sending.is_none() && released.alert_at.is_none());
        let (_, t) = run(Some(&released), p(), T0 + 4, "req-c");
        assert_eq!(t.verdict, Verdict::TookOverAlert, "pending and nobody sends it: the next signal does");
    }

    #[test]
    fn the_scheduled_tick_delivers_an_opening_alert_left_pending_exactly_once() {
        // Finding 6: a one-shot signal whose sender died.
        let live = pending(failed_deployment("ecs-svc/2", "api:8", T0));
        let tick = Input::Tick { alarms_checked: false };
        let (_, t) = run(Some(&live), tick.clone(), T0 + 60, "tick-1");
        assert!(t.record.is_none(), "the sender is alive: {t:?}");
        let (claimed, t) = run(Some(&live), tick.clone(), T0 + 331, "tick-1");
        assert_eq!((t.verdict, t.effects), (Verdict::TookOverAlert, vec![Effect::Diagnose(Depth::Full)]));
        let claimed = claimed.unwrap();
        // A second run meanwhile leaves it to the first.
        let (_, t) = run(Some(&claimed), tick.clone(), T0 + 332, "tick-2");
        assert!(t.record.is_none(), "{t:?}");
        let (rec, t) = run(Some(&claimed), Input::Learnt(Learnt::default()), T0 + 333, "tick-1");
        assert!(matches!(t.effects.as_slice(), [Effect::Publish(Publish { message: MessageKind::Opening, .. })]));
        let sent =
            Sent { message: MessageKind::Opening, message_id: "m".into(), severity: Severity::Sev2, announced: vec![] };
        let (rec, _) = run(rec.as_ref(), Input::Sent(sent), T0 + 334, "tick-1");
        let rec = rec.unwrap();
        assert!(rec.alert_delivered());
        let (_, t) = run(Some(&rec), tick, T0 + 340, "tick-3");
        assert!(!matches!(t.verdict, Verdict::TookOverAlert), "delivered once: {t:?}");
    }

    #[test]
    fn expiry_and_escalation_by_the_tick() {
        let mut rec = delivered(stop("t1", "api:7", T0));
        rec.severity = Severity::Sev2;
        let tick = Input::Tick { alarms_checked: true };
        let (_, t) = run(Some(&rec), tick.clone(), T0 + 600, "tick");
        assert!(t.record.is_none(), "not due: {t:?}");
        let (esc, t) = run(Some(&rec), tick.clone(), T0 + 960, "tick");
        assert_eq!(t.verdict, Verdict::Claimed(MessageKind::Escalation { nth: 1 }));
        let sent = Sent {
            message: MessageKind::Escalation { nth: 1 },
            message_id: "e".into(),
            severity: Severity::Sev2,
            announced: vec![],
        };
        let (esc, _) = run(esc.as_ref(), Input::Sent(sent), T0 + 961, "tick");
        let esc = esc.unwrap();
        assert_eq!(esc.escalations, 1);
        let (_, t) = run(Some(&esc), tick.clone(), T0 + 3000, "tick");
        assert!(t.record.is_none(), "a SEV2 escalates once: {t:?}");
        // No signal for a whole window: expired, saying so.
        let (exp, t) = run(Some(&esc), tick.clone(), T0 + 3601, "tick");
        assert_eq!(t.verdict, Verdict::Expiring);
        let Some(Effect::Publish(p)) = t.effects.first().cloned() else { panic!() };
        assert!(matches!(p.message, MessageKind::Resolution { expired: true, .. }));
        let sent = Sent { message: p.message, message_id: "x".into(), severity: p.severity, announced: vec![] };
        let (closed, t) = run(exp.as_ref(), Input::Sent(sent), T0 + 3602, "tick");
        assert_eq!(t.effects, vec![Effect::Archive]);
        assert!(matches!(closed.unwrap().state, State::Closed { recovered_at: None, .. }));
        // A pipeline execution's incident lasts a week.
        let mut pipe = esc.clone();
        pipe.subject = Subject::pipeline("api-prod", "x-1");
        let (_, t) = run(Some(&pipe), tick, T0 + 6 * 3600, "tick");
        assert!(t.record.is_none(), "{t:?}");
    }

    #[test]
    fn the_tick_reads_open_alarms_before_deciding() {
        let rec = delivered(alarm("api-cpu", T0, Severity::Sev2));
        let (_, t) = run(Some(&rec), Input::Tick { alarms_checked: false }, T0 + 100, "tick");
        assert_eq!(t.effects, vec![Effect::CheckAlarms(vec!["api-cpu".into()])]);
        assert!(t.again);
    }

    #[test]
    fn a_problem_on_an_expired_incident_closes_it_then_opens_a_new_one() {
        let rec = delivered(stop("t1", "api:7", T0));
        let (exp, t) = run(Some(&rec), Input::Problem(stop("t2", "api:7", T0 + 4000)), T0 + 4000, "req-b");
        assert_eq!(t.verdict, Verdict::Expiring);
        assert!(t.again);
        let Some(Effect::Publish(p)) = t.effects.first().cloned() else { panic!() };
        let sent = Sent { message: p.message, message_id: "x".into(), severity: p.severity, announced: vec![] };
        let (closed, _) = run(exp.as_ref(), Input::Sent(sent), T0 + 4001, "req-b");
        let (_, t) = run(closed.as_ref(), Input::Problem(stop("t2", "api:7", T0 + 4000)), T0 + 4001, "req-b");
        assert_eq!(t.verdict, Verdict::Opened);
    }

    #[test]
    fn closing_and_opening_agree_under_races() {
        // Finding 10: a problem while another live invocation sends the resolution waits for it.
        let rec = delivered(stop("t1", "api:7", T0));
        let (resolving, _) = run(Some(&rec), Input::Recovery(steady(T0 + 100)), T0 + 100, "req-r");
        let resolving = resolving.unwrap();
        let (_, t) = run(Some(&resolving), Input::Problem(stop("t2", "api:7", T0 + 150)), T0 + 150, "req-b");
        assert!(matches!(t.effects.as_slice(), [Effect::RetryLater { .. }]), "{t:?}");
        assert!(t.record.is_none());
        // Its closer died: the next signal sends the resolution first, then opens anew.
        let (_, t) = run(Some(&resolving), Input::Problem(stop("t2", "api:7", T0 + 150)), T0 + 500, "req-b");
        assert_eq!(t.verdict, Verdict::Resolving);
        assert!(t.again);
        // The closer's retry, once a new incident is open, does not resolve the new one:
        let closed = resolve(&rec, steady(T0 + 100), T0 + 100);
        let (new, _) = run(Some(&closed), Input::Problem(stop("t3", "api:7", T0 + 200)), T0 + 200, "req-b");
        let (_, t) = run(new.as_ref(), Input::Recovery(steady(T0 + 100)), T0 + 300, "req-r");
        assert!(matches!(t.verdict, Verdict::Stale(_)), "{:?}", t.verdict);
        // An update in flight does not hold a resolution up (only the opening alert does).
        let mut updating = rec.clone();
        updating.sending = Some(Sending { message: MessageKind::Update, by: "req-u".into(), until: T0 + 900 });
        let (_, t) = run(Some(&updating), Input::Recovery(steady(T0 + 100)), T0 + 120, "req-r");
        assert_eq!(t.verdict, Verdict::Resolving, "{t:?}");
        // An action that finished after the resolution is announced by an update of the resolved incident.
        let (_, t) = run(
            Some(&closed),
            Input::Learnt(Learnt { unannounced: vec!["ledger#late".into()], ..Default::default() }),
            T0 + 130,
            "req-j",
        );
        assert!(
            matches!(t.effects.as_slice(), [Effect::Publish(Publish { message: MessageKind::Update, reason: Some(UpdateReason::Action), announce, .. })] if announce == &vec!["ledger#late".to_string()]),
            "{t:?}"
        );
        let (_, t) = run(Some(&closed), Input::Learnt(Learnt::default()), T0 + 130, "req-j");
        assert!(t.record.is_none() && t.effects.is_empty(), "nothing to say: {t:?}");
        // A recovery of a resolved incident does nothing.
        let (_, t) = run(Some(&closed), Input::Recovery(steady(T0 + 100)), T0 + 300, "req-r");
        assert!(matches!(t.verdict, Verdict::Nothing(ref w) if w.contains("already resolved")));
    }

    #[test]
    fn the_record_stays_bounded_whatever_the_storm() {
        // Finding 3: a crash loop for ten hours, a stop every ten seconds.
        let mut rec = delivered(stop("t0", "api:7", T0));
        for i in 1..3600_i64 {
            let at = T0 + i * 10;
            let rev = if i % 2 == 0 { "api:7" } else { "api:8" };
            let (r, _) = run(Some(&rec), Input::Problem(stop(&format!("task-{i:05}"), rev, at)), at, "req-b");
            rec = r.unwrap();
            // The same task reported again counts once.
            let (r, _) = run(Some(&rec), Input::Problem(stop(&format!("task-{i:05}"), rev, at)), at, "req-b");
            rec = r.unwrap();
        }
        assert_eq!(rec.failures.total, 3600, "each task once");
        assert!(rec.failures.recent.len() <= MAX_RECENT_TASKS);
        assert!(rec.failures.buckets.len() <= MAX_BUCKETS);
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.len() < 16 * 1024, "{} bytes", json.len());
        let end = T0 + 3599 * 10;
        let last_hour = rec.failures.count(Some("api:7"), end, 3600);
        assert!((180..=210).contains(&last_hour), "about 180 stops of api:7 in the last hour: {last_hour}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), rec, "it round-trips");
    }

    #[test]
    fn updates_go_out_on_rising_severity_unannounced_actions_news_or_the_interval() {
        let rec = delivered(stop("t1", "api:7", T0));
        let due = |r: &Record, actions: &[String], news: bool, now: i64| update_due(r, actions, news, now, &POLICY);
        let mut higher = rec.clone();
        higher.severity = Severity::Sev2;
        assert_eq!(due(&higher, &[], false, T0 + 10), Some(UpdateReason::SeverityRose(Severity::Sev3)));
        assert_eq!(due(&rec, &["k".into()], false, T0 + 10), Some(UpdateReason::Action));
        assert_eq!(due(&rec, &[], true, T0 + 10), Some(UpdateReason::News));
        assert_eq!(due(&rec, &[], false, T0 + 10), None, "flapping inside the interval stays quiet");
        assert_eq!(due(&rec, &[], false, T0 + 902), Some(UpdateReason::Interval));
        // Joined, the update is claimed before it is published.
        let (joined, t) =
            run(Some(&rec), Input::Problem(failed_deployment("ecs-svc/3", "api:8", T0 + 20)), T0 + 20, "req-b");
        assert!(t.news, "a failed deployment is news");
        let (claimed, t) =
            run(joined.as_ref(), Input::Learnt(Learnt { news: true, ..Default::default() }), T0 + 21, "req-b");
        assert!(
            matches!(
                t.effects.as_slice(),
                [Effect::Publish(Publish { reason: Some(UpdateReason::SeverityRose(Severity::Sev3)), .. })]
            ),
            "its SEV2 floor is above the SEV3 announced: {t:?}"
        );
        let mut same = rec.clone();
        same.version += 1;
        let (_, t) = run(Some(&same), Input::Learnt(Learnt { news: true, ..Default::default() }), T0 + 21, "req-b");
        assert!(matches!(t.effects.as_slice(), [Effect::Publish(Publish { reason: Some(UpdateReason::News), .. })]));
        let claimed = claimed.unwrap();
        // While it is being sent, another signal with an action waits for it.
        let (_, t) = run(Some(&claimed), Input::Problem(stop("t2", "api:7", T0 + 22)), T0 + 22, "req-c");
        assert_eq!(t.verdict, Verdict::JoinedQuietly);
        let (_, t) = run(
            Some(&claimed),
            Input::Learnt(Learnt { unannounced: vec!["ledger#1".into()], ..Default::default() }),
            T0 + 23,
            "req-c",
        );
        assert!(matches!(t.effects.as_slice(), [Effect::RetryLater { .. }]), "{t:?}");
    }

    #[test]
    fn severity_never_falls_and_a_failed_action_makes_it_sev1() {
        let rec = delivered(alarm("api-5xx", T0, Severity::Sev2));
        let (r, _) = run(Some(&rec), Input::Problem(alarm("api-5xx", T0 + 5, Severity::Sev3)), T0 + 5, "req-b");
        assert_eq!(r.unwrap().severity, Severity::Sev2);
        let (r, _) = run(Some(&rec), Input::Learnt(Learnt { action_failed: true, ..Default::default() }), T0 + 5, "b");
        assert_eq!(r.unwrap().severity, Severity::Sev1);
    }

    #[test]
    fn only_executed_or_failed_unannounced_actions_since_the_opening_are_news() {
        use crate::outcome::ActionKind;
        let mut rec = delivered(stop("t1", "api:7", T0));
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
        assert_eq!(keys(unannounced(&rec, &ledger, 0)), ["done", "failed"]);
        assert_eq!(keys(unannounced(&rec, &ledger, 3600)), ["unannounced-before", "done", "failed"]);
        rec.announced.push("done".into());
        assert_eq!(keys(unannounced(&rec, &ledger, 0)), ["failed"]);
    }
}
