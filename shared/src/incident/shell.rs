//! The one incident shell: every incident of every subject kind is driven
//! here, and nowhere else.
//!
//! Read the record (consistently), `step` it, write the result conditional
//! on the version read; on a conflict step the same input again on the
//! record the failed write returned (read again when none came back) — so
//! no business rule lives in a DynamoDB expression, and a write whose
//! response was lost is recognised by its writer id. A problem skips the
//! first read: it is stepped as if there were no record and created
//! conditionally, and only a subject that has a record pays for it. Then carry out
//! the transition's effects in order through the subject kind's [`Port`]
//! (act, diagnose, render) and the notifier, and feed what they came to
//! back in (`Learnt`, `Sent`, `NotSent`, recoveries read from alarms).
//! The process may die between any two calls: whatever it claimed carries
//! its lease, and the next signal or the scheduled tick takes it over.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::adapters::cloudwatch;
use crate::adapters::sns::publish;
use crate::adapters::state::claims::{ClaimInHand, Hand};
use crate::adapters::state::incidents::Write;
use crate::context::App;
use crate::error::{AutopilotError, AwsError};
use crate::incident::machine::{
    self, ActionCue, Ctx, Depth, Effect, Input, Learnt, MessageKind, Policy, Publish, Record, Recovery, RecoveryScope,
    Sent, Verdict,
};
use crate::incident::subject::Subject;
use crate::notify::render::Message;

/// What differs per subject kind: how it acts, diagnoses and renders.
pub trait Port: Send {
    /// Run an action through the engine, recorded against `rec`.
    fn act(&mut self, app: &App, rec: &Record, cue: ActionCue) -> impl Future<Output = ()> + Send;
    /// Read the subject (and for `Full`, keep the evidence).
    fn diagnose(&mut self, app: &App, rec: &Record, depth: Depth) -> impl Future<Output = ()> + Send;
    /// What the acting and diagnosing since the last call learnt.
    fn learnt(&mut self, app: &App, rec: &Record, news: bool) -> impl Future<Output = Learnt> + Send;
    /// The message `publish` asks for, from the record as claimed.
    fn render(&mut self, app: &App, rec: &Record, publish: &Publish) -> impl Future<Output = Message> + Send;
    /// `publish` went out and the record says so: record what it announced
    /// outside the incident (a death before this leaves those actions to be
    /// announced again, never the message to be sent again).
    fn published(&mut self, app: &App, rec: &Record, publish: &Publish) -> impl Future<Output = ()> + Send;
}

/// What driving one input came to.
#[derive(Debug, Default)]
pub struct Driven {
    /// The record as last written or read.
    pub record: Option<Record>,
    /// Every step's verdict, in order.
    pub verdicts: Vec<Verdict>,
    /// Messages published: what, and SNS's message id.
    pub published: Vec<(MessageKind, String)>,
    /// A routine message that could not be published (logged, not retried).
    pub not_published: Option<String>,
}

impl Driven {
    /// The first verdict that says what happened to the input.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdicts.first()
    }

    /// The message id of the first message of `kind` published.
    pub fn message_id(&self, kind: impl Fn(&MessageKind) -> bool) -> Option<&str> {
        self.published.iter().find(|(m, _)| kind(m)).map(|(_, id)| id.as_str())
    }
}

/// Conflicting writes in a row tolerated before the event is handed back to Lambda.
const MAX_CONFLICTS: u32 = 16;
/// Steps one input may take (a bound against a rule that never settles).
const MAX_STEPS: u32 = 32;

fn writer_id(token: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{token}#{nanos:x}#{}", N.fetch_add(1, Ordering::Relaxed))
}

pub fn policy(app: &App) -> Policy {
    Policy::from_settings(&app.config.settings)
}

/// Until when this invocation holds what it claims now.
pub fn lease(app: &App, t: i64) -> i64 {
    crate::invocation::lease_until(t, crate::invocation::deadline_ms(), app.config.settings.function_timeout_seconds)
}

fn kept_changing(app: &App, subject: &Subject) -> AutopilotError {
    AutopilotError::State(AwsError {
        retryable: true,
        ..AwsError::answer(
            "dynamodb",
            "PutItem (incident)",
            &app.config.state_table,
            format!("the incident of {} kept changing under concurrent writers; retry", subject.label()),
        )
    })
}

/// An undelivered notification fails the invocation so that Lambda retries
/// it, whatever SNS said.
pub fn publish_failed(e: AwsError) -> AutopilotError {
    AutopilotError::Aws(AwsError { retryable: true, ..e })
}

/// Drive `input` for `subject` to its end.
pub async fn drive<P: Port>(
    app: &App,
    port: &mut P,
    subject: &Subject,
    input: Input,
) -> Result<Driven, AutopilotError> {
    let store = app.state.incidents();
    let token = crate::invocation::token();
    let policy = policy(app);
    // A problem is written first and read only if the subject already has a
    // record: the conditional create fails then and DynamoDB returns the
    // record it holds, so opening costs no read and joining no more than the
    // read it replaces. Every other input reads first.
    let mut optimistic = matches!(input, Input::Problem(_));
    let mut out = Driven { record: if optimistic { None } else { store.get(subject).await? }, ..Default::default() };
    let mut queue = VecDeque::from([input]);
    let (mut conflicts, mut steps) = (0, 0);
    let mut publish_error: Option<AwsError> = None;
    // Messages out whose delivery the record does not say yet: what they
    // announced is marked outside the incident only after it does, so the
    // one window in which a death repeats a message is Publish → that write.
    let mut awaiting_record: VecDeque<machine::Publish> = VecDeque::new();
    while let Some(input) = queue.pop_front() {
        steps += 1;
        if steps > MAX_STEPS {
            tracing::error!(subject = %subject.label(), decision = "incident-unsettled", "too many steps; handed back");
            return Err(kept_changing(app, subject));
        }
        let now = crate::time::now();
        let salt = format!("{token}/{}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
        let ctx = Ctx { subject, now, token: &token, lease_until: lease(app, now), salt: &salt, policy: &policy };
        let t = machine::step(out.record.as_ref(), &input, &ctx);
        if optimistic && t.record.is_none() {
            // Judged as if the subject had no record, it would write nothing
            // (a stale signal): judge it on the record as it is.
            optimistic = false;
            out.record = store.get(subject).await?;
            queue.push_front(input);
            continue;
        }
        if let Some(next) = &t.record {
            // The input's last write (its message out, nothing left to do
            // but the history line) also completes the event's claim, when
            // the flow handed it over: see `flows::once_driven`.
            let last = matches!(input, Input::Sent(_))
                && !t.again
                && queue.is_empty()
                && t.effects.iter().all(|e| matches!(e, Effect::Archive));
            let writer = writer_id(&token);
            let write = match ClaimInHand::current() {
                Some(hand) => {
                    let summary = last.then(|| format!("incident {} v{}: {}", next.id, next.version, next.summary()));
                    store.write_seen_holding(out.record.as_ref(), next, &writer, &hand, summary.as_deref()).await
                }
                None => store.write_seen(out.record.as_ref(), next, &writer).await,
            };
            let written = match write {
                Ok(w) => w,
                // The message is out; failing now would make Lambda's retry
                // send it again. The record stays claimed until our lease
                // ends: only a sender that dies in this window can repeat it.
                Err(e) if matches!(input, Input::Sent(_)) => {
                    tracing::error!(subject = %subject.label(), error = %e, decision = "delivery-not-recorded", "message sent but not recorded");
                    out.verdicts.push(Verdict::Nothing(format!("sent, not recorded: {e}")));
                    if let (Some(p), Some(rec)) = (awaiting_record.pop_front(), out.record.as_ref()) {
                        port.published(app, rec, &p).await;
                    }
                    return Ok(out);
                }
                Err(e) => return Err(e),
            };
            match written {
                (Write::NotClaimed, _) => return Ok(not_claimed(subject, out)),
                (Write::Written, _) => {
                    conflicts = 0;
                    optimistic = false;
                    out.record = Some(next.clone());
                }
                (Write::Conflict, held) => {
                    if std::mem::take(&mut optimistic) {
                        tracing::debug!(subject = %subject.label(), "the subject has a record; stepping on it");
                    } else {
                        conflicts += 1;
                        if conflicts > MAX_CONFLICTS {
                            return Err(kept_changing(app, subject));
                        }
                        tracing::info!(subject = %subject.label(), decision = "incident-conflict", "record changed meanwhile; stepping again");
                    }
                    out.record = match held {
                        Some(record) => Some(record),
                        None => store.get(subject).await?,
                    };
                    queue.push_front(input);
                    continue;
                }
            }
        }
        if matches!(input, Input::Sent(_))
            && let (Some(p), Some(rec)) = (awaiting_record.pop_front(), out.record.as_ref())
        {
            port.published(app, rec, &p).await;
        }
        let rec = out.record.clone();
        tracing::info!(
            subject = %subject.label(),
            incident = rec.as_ref().map(|r| r.id.as_str()).unwrap_or(""),
            version = rec.as_ref().map(|r| r.version).unwrap_or_default(),
            verdict = ?t.verdict,
            effects = t.effects.len(),
            decision = "incident-step",
            "incident step"
        );
        out.verdicts.push(t.verdict.clone());
        // Nothing is done outside the record for an event whose claim is
        // not ours yet (a write normally took it already).
        if t.effects.iter().any(|e| matches!(e, Effect::Act(_) | Effect::Diagnose(_) | Effect::Publish(_)))
            && let Some(hand) = ClaimInHand::current().filter(|h| h.hand() == Hand::Unclaimed)
            && let Hand::Refused(_) = app.state.claims().take(&hand).await?
        {
            return Ok(not_claimed(subject, out));
        }
        let mut learn = false;
        let mut then: Vec<Input> = Vec::new();
        for effect in t.effects {
            let Some(rec) = out.record.as_ref() else { break };
            match effect {
                Effect::Act(cue) => {
                    port.act(app, rec, cue).await;
                    learn = true;
                }
                Effect::Diagnose(depth) => {
                    port.diagnose(app, rec, depth).await;
                    learn = true;
                }
                Effect::CheckAlarms(names) => then.extend(alarm_recoveries(app, &names).await),
                Effect::ReadLedger => learn = true,
                Effect::Publish(p) => {
                    let message = port.render(app, rec, &p).await;
                    match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
                        Ok(id) => {
                            tracing::info!(incident = %rec.id, message = p.message.label(), severity = p.severity.as_str(), decision = "published", "{}", message.subject);
                            awaiting_record.push_back(p.clone());
                            out.published.push((p.message.clone(), id.clone()));
                            then.push(Input::Sent(Sent {
                                message: p.message,
                                message_id: id,
                                severity: p.severity,
                                announced: p.announce,
                            }));
                        }
                        Err(e) => {
                            tracing::warn!(incident = %rec.id, message = p.message.label(), error = %e, decision = "not-published", "message not published");
                            publish_error = Some(e);
                            then.push(Input::NotSent(p));
                        }
                    }
                }
                Effect::Archive => {
                    if let Err(e) = store.archive(rec).await {
                        // The tombstone still says it is closed; the history misses one line.
                        tracing::warn!(incident = %rec.id, error = %e, "incident history not written");
                    }
                }
                Effect::RetryLater { what, until } => {
                    tracing::info!(incident = %rec.id, decision = "retry-later", "{what}");
                    return Err(AutopilotError::InProgress { what, until: crate::time::iso(until) });
                }
                Effect::Fail { retry, what } => {
                    let e = publish_error.take().unwrap_or_else(|| {
                        AwsError::answer("sns", "Publish", &app.config.notify_topic_arn, what.clone())
                    });
                    if retry {
                        return Err(publish_failed(e));
                    }
                    out.not_published = Some(format!("{what}: {}", e.message));
                }
            }
        }
        if learn && let Some(rec) = out.record.as_ref() {
            let learnt = port.learnt(app, rec, t.news).await;
            queue.push_front(Input::Learnt(learnt));
        }
        for input in then.into_iter().rev() {
            queue.push_front(input);
        }
        if t.again {
            queue.push_back(machine::again_input(&input));
        }
    }
    Ok(out)
}

/// The event is another invocation's, or was handled before: this one stops.
fn not_claimed(subject: &Subject, mut out: Driven) -> Driven {
    tracing::info!(subject = %subject.label(), decision = "event-claimed-elsewhere", "the event's claim is not ours; stopped");
    out.verdicts.push(Verdict::Nothing("the event is handled by another invocation".into()));
    out
}

/// Read `names`; each alarm found OK is a recovery of its problem, at the
/// time it entered OK. Unreadable: no recovery (the alarm's own OK still comes).
async fn alarm_recoveries(app: &App, names: &[String]) -> Vec<Input> {
    match cloudwatch::alarm_states(&app.clients, names).await {
        Ok(states) => states
            .into_iter()
            .filter(|a| a.state == "OK")
            .map(|a| {
                let at = a.since.unwrap_or_else(crate::time::now);
                Input::Recovery(Recovery {
                    by: format!("alarm {} read OK (since {})", a.name, crate::time::iso(at)),
                    scope: RecoveryScope::Alarm(a.name),
                    at,
                })
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "alarm states unreadable; their problems stay open");
            Vec::new()
        }
    }
}
