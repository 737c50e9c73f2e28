//! Flows: the runbooks as code, one per function. Each flow gathers (through
//! `adapters`), decides (pure functions in `diagnosis` and `actions`),
//! records in the state table, keeps evidence and notifies.
//!
//! A function's `main` names its [`Flow`] (`flows::ecs::FLOW`, …) and hands
//! every invocation to [`handle`], so a binary links only the flow it runs.

pub mod alarm;
pub mod ecs;
pub mod hook;
pub mod pipeline;
pub mod reports;
pub mod runbook;

use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use crate::adapters::state::claims::{ClaimInHand, Hand};
use crate::adapters::state::{Claim, ClaimKey};
use crate::context::{App, Function};
use crate::error::AutopilotError;
use crate::invocation::Invocation;
use crate::outcome::Outcome;
use crate::trigger::{Trigger, trust};

static WARM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The future a flow returns (boxed: flows are deep, and boxing keeps each
/// binary's future type and stack use small).
pub type FlowFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, AutopilotError>> + Send + 'a>>;

/// One function's behaviour: the function it is, and what it does with a
/// trigger routed to it (`Function::for_trigger`).
pub struct Flow {
    pub function: Function,
    pub run: for<'a> fn(&'a App, Trigger, &'a Value) -> FlowFuture<'a>,
}

/// Handle one invocation of `flow`: recognise the trigger, check it belongs
/// to this function, run the flow, log one decision line and emit metrics.
/// Everything runs as `invocation` (its request id is the token of the
/// conditional writes, its deadline bounds the leases).
pub async fn handle(app: &App, flow: &Flow, payload: Value, invocation: Invocation) -> Result<Outcome, AutopilotError> {
    crate::invocation::scope(invocation, handle_now(app, flow, payload)).await
}

async fn handle_now(app: &App, flow: &Flow, payload: Value) -> Result<Outcome, AutopilotError> {
    let started = Instant::now();
    // The first invocation of a process is its cold start.
    let cold_start = !WARM.swap(true, std::sync::atomic::Ordering::Relaxed);
    let calls_before = app.clients.calls.get();
    crate::telemetry::mark_invocation_start(calls_before);
    let result = dispatch(app, flow, payload).await.map(redact_outcome);
    let aws_calls = app.clients.calls.get() - calls_before;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(o) => {
            tracing::info!(
                function = app.function.name(),
                decision = "outcome",
                cold_start,
                kind = ?o.kind,
                cluster = o.cluster.as_deref().unwrap_or(""),
                service = o.service.as_deref().unwrap_or(""),
                incident = o.incident.as_deref().unwrap_or(""),
                severity = o.severity.as_str(),
                cause = o.cause.as_str(),
                notified = o.notified.as_deref().unwrap_or(""),
                actions = o.actions.len(),
                aws_calls,
                handler_ms = millis,
                "{}",
                o.summary
            );
            crate::telemetry::emit_metrics(
                app.function.name(),
                &[],
                &[
                    ("Invocations", 1.0, "Count"),
                    ("AwsCalls", aws_calls as f64, "Count"),
                    ("HandlerTime", millis, "Milliseconds"),
                ],
            );
        }
        Err(e) => {
            // The error goes back to Lambda: an asynchronous invocation is
            // retried (if retryable) and then lands in the dead-letter destination.
            tracing::error!(
                function = app.function.name(),
                decision = "error",
                cold_start,
                error_type = e.error_type(),
                retryable = e.is_retryable(),
                aws_calls,
                handler_ms = millis,
                "{e}"
            );
            crate::telemetry::emit_metrics(
                app.function.name(),
                &[("ErrorType", e.error_type())],
                &[("Errors", 1.0, "Count")],
            );
            // Counted by class too: the self-alarms page on the errors that need a person.
            crate::telemetry::count_error(app.function.name(), e);
        }
    }
    result
}

/// The reply is an outgoing channel like any other: nothing secret leaves in it.
fn redact_outcome(mut o: Outcome) -> Outcome {
    let r = crate::telemetry::redactor();
    o.summary = r.text(&o.summary);
    for a in &mut o.actions {
        a.detail = r.text(&a.detail);
    }
    if let Some(d) = &mut o.details {
        r.json(d);
    }
    o
}

async fn dispatch(app: &App, flow: &Flow, payload: Value) -> Result<Outcome, AutopilotError> {
    if let Some(topic) = trust::sns_topic(&payload)
        && let Err(refused) = trust::sns_topic_allowed(&app.config.alarm_topic_arns, topic)
    {
        return Ok(refuse(app, "sns-topic", refused));
    }
    let trigger = Trigger::parse(&payload)?;
    app.function.check(&trigger)?;
    let own = crate::invocation::own_account();
    if let Err(refused) =
        trust::account_in_scope(own.as_deref(), &app.config.accounts, trust::event_account(&trigger).as_deref())
    {
        let (cluster, service) = trigger.cluster_service();
        return Ok(refuse(app, "account", refused).for_service(cluster, service));
    }
    if let Trigger::Ignored { detail_type, reason, .. } = &trigger {
        return Ok(Outcome::ignored(format!("{detail_type} ignored: {reason}")));
    }
    // A member's input runs in the member: its clients, its keys.
    let scope =
        app.fleet().scope_of(trust::event_account(&trigger).as_deref(), trust::event_region(&trigger).as_deref());
    match app.at(&scope).await {
        Ok(placed) => (flow.run)(&placed, trigger, &payload).await,
        // Boxed: a rare path, kept out of every binary's invocation future.
        Err(e) => Box::pin(unreachable_member(app, &trigger, &scope, e)).await,
    }
}

/// A member whose role cannot be assumed: never silence. One notice per
/// account, region and hour names the account, the role and the reason;
/// the input is answered with the same, and nothing is read or done there.
async fn unreachable_member(
    app: &App,
    trigger: &Trigger,
    scope: &crate::fleet::Scope,
    e: crate::adapters::AwsError,
) -> Result<Outcome, AutopilotError> {
    let Some(place) = scope.place() else { return Err(AutopilotError::Aws(e)) };
    let (cluster, service) = trigger.cluster_service();
    let input = crate::context::describe(trigger);
    tracing::warn!(
        function = app.function.name(),
        decision = "member-unreachable",
        account = %place.account,
        region = %place.region,
        role = %e.resource,
        "{e}"
    );
    crate::telemetry::emit_metrics(
        app.function.name(),
        &[("Account", place.account.as_str())],
        &[("MemberUnreachable", 1.0, "Count")],
    );
    let summary = format!(
        "account {} {}: the member role {} cannot be assumed ({}); {input} not handled there, nothing read or done",
        place.account, place.region, e.resource, e.message
    );
    let hour = crate::time::now() / 3600;
    let key = format!("unreachable/{}/{}/{hour}", place.account, place.region);
    let kind = trigger.kind();
    let notice = once_notice(app, &key, async {
        let view = crate::notify::fleet::UnreachableView {
            place,
            role_arn: &e.resource,
            reason: &e.message,
            input: &input,
            cluster: cluster.as_deref(),
            service: service.as_deref(),
            kind,
        };
        let message = crate::notify::fleet::render_unreachable(&view, &crate::telemetry::redactor());
        let id = crate::adapters::sns::publish(&app.clients, &app.config.notify_topic_arn, &message)
            .await
            .map_err(crate::incident::shell::publish_failed)?;
        // Only its message id is read; its summary is what the notice claim keeps.
        let mut claimed = Outcome::ignored(summary.clone());
        claimed.notified = Some(id);
        Ok(claimed)
    })
    .await?;
    let mut o = Outcome::new(kind, crate::outcome::Severity::Sev2, crate::outcome::Cause::Unknown, summary);
    o.notified = Some(match notice.and_then(|n| n.notified) {
        Some(id) => id,
        None => format!("suppressed:account {} {} already announced this hour", place.account, place.region),
    });
    Ok(o.for_service(cluster, service))
}

/// An input from where it must not come: said in the log, counted, answered
/// as ignored (not an error: a retry would be refused alike), nothing done.
fn refuse(app: &App, check: &str, refused: trust::Refused) -> Outcome {
    tracing::warn!(function = app.function.name(), decision = "refused-source", check, "{refused}");
    crate::telemetry::emit_metrics(app.function.name(), &[("Check", check)], &[("RefusedInputs", 1.0, "Count")]);
    let mut o = Outcome::ignored(refused.0);
    o.notified = Some(format!("suppressed:untrusted-{check}"));
    o
}

/// Run `body` once per event id: a duplicate delivery gets `on_duplicate`
/// and does nothing; a delivery that meets a claim still in progress gets a
/// retryable `InProgress` error (Lambda retries it later; the invocation
/// holding the claim may have died); a failed run gives its claim back so
/// Lambda's retry can process the event.
pub async fn once<F, D>(app: &App, event_id: &str, on_duplicate: D, body: F) -> Result<Outcome, AutopilotError>
where
    F: std::future::Future<Output = Result<Outcome, AutopilotError>>,
    D: FnOnce() -> Outcome,
{
    once_holding(app, event_id, on_duplicate, body, None).await
}

/// [`once`] for a body that ends by driving one incident, with nothing
/// after the drive that a retry would have to redo: the incident's last
/// write (the record saying its message went out) marks the event done in
/// the same transaction, instead of a write of its own after the body. A
/// drive that never comes to such a write leaves the claim to be completed
/// after the body, as [`once`] does.
pub async fn once_driven<F, D>(app: &App, event_id: &str, on_duplicate: D, body: F) -> Result<Outcome, AutopilotError>
where
    F: std::future::Future<Output = Result<Outcome, AutopilotError>>,
    D: FnOnce() -> Outcome,
{
    let (now, lease_until) = claim_lease(app);
    let hand = ClaimInHand::event(event_id, app.function.name(), now, lease_until, Hand::Claimed);
    once_holding(app, event_id, on_duplicate, body, Some(hand)).await
}

/// [`once_driven`] for a body whose first write is the incident's (it only
/// reads before the drive): that write takes the event's claim in the same
/// transaction, instead of a claim of its own before the body. A duplicate
/// delivery then reads what the first one read and stops at that write
/// (told it is a duplicate, or to come back while the first is in
/// progress). A drive that writes nothing marks the event done after it.
pub async fn once_first_write<F, D>(
    app: &App,
    event_id: &str,
    on_duplicate: D,
    body: F,
) -> Result<Outcome, AutopilotError>
where
    F: std::future::Future<Output = Result<Outcome, AutopilotError>>,
    D: FnOnce() -> Outcome,
{
    let (now, lease_until) = claim_lease(app);
    let hand = ClaimInHand::event(event_id, app.function.name(), now, lease_until, Hand::Unclaimed);
    let ran = Arc::clone(&hand).holding(Box::pin(body)).await;
    let what = format!("event {event_id}");
    match (hand.hand(), ran) {
        (Hand::Refused(Claim::Duplicate { .. }), _) => Ok(duplicate_of(app, event_id, on_duplicate).await),
        (Hand::Refused(refused), _) => {
            let until = match refused {
                Claim::InProgress { until } => until,
                _ => now,
            };
            Err(in_progress(what, until))
        }
        (Hand::Done, ran) => ran,
        (Hand::Claimed, ran) => settle(app, ClaimKey::Event(event_id), &what, None, ran).await,
        (Hand::Unclaimed, Ok(outcome)) => {
            if let Err(e) = app.state.claims().record_done(&hand, &outcome.summary).await {
                tracing::warn!(claim = %what, error = %e, "event not marked done");
            }
            Ok(outcome)
        }
        // Nothing was written, nothing is held: Lambda's retry does it all again.
        (Hand::Unclaimed, Err(e)) => Err(e),
    }
}

/// When a claim taken now would be taken, and until when it would hold.
fn claim_lease(app: &App) -> (i64, i64) {
    let now = crate::time::now();
    let lease_until = crate::invocation::lease_until(
        now,
        crate::invocation::deadline_ms(),
        app.config.settings.function_timeout_seconds,
    );
    (now, lease_until)
}

async fn once_holding<F, D>(
    app: &App,
    event_id: &str,
    on_duplicate: D,
    body: F,
    hand: Option<Arc<ClaimInHand>>,
) -> Result<Outcome, AutopilotError>
where
    F: std::future::Future<Output = Result<Outcome, AutopilotError>>,
    D: FnOnce() -> Outcome,
{
    match claimed(app, ClaimKey::Event(event_id), None, None, hand, body).await? {
        Claimed::Ran(outcome) => Ok(*outcome),
        Claimed::Before(_) => Ok(duplicate_of(app, event_id, on_duplicate).await),
    }
}

/// A duplicate delivery's Outcome: `on_duplicate`, pointed at the incident
/// it belongs to when one is open.
async fn duplicate_of<D: FnOnce() -> Outcome>(app: &App, event_id: &str, on_duplicate: D) -> Outcome {
    tracing::info!(event_id, decision = "duplicate-event", "event already processed; skipped");
    let mut outcome = on_duplicate();
    if let (Some(c), Some(s)) = (&outcome.cluster, &outcome.service)
        && let Ok(Some(open)) =
            app.state.incidents().open(&crate::incident::Subject::service(c, s).at(app.scope())).await
    {
        outcome.incident = Some(open.id);
        outcome.evidence = open.evidence;
    }
    outcome
}

/// Run a runbook request carrying `request_id` once: a repeat (the CLI
/// retrying after its read timeout) gets the first run's Outcome as it was;
/// one whose first run is still in progress gets a retryable `InProgress`
/// error; the same id with a different payload is refused
/// (`RequestIdConflict`) and nothing is done.
pub async fn once_request<F>(
    app: &App,
    request_id: &str,
    payload_hash: &str,
    body: F,
) -> Result<Outcome, AutopilotError>
where
    F: std::future::Future<Output = Result<Outcome, AutopilotError>>,
{
    once_request_until(app, request_id, payload_hash, None, body).await
}

/// [`once_request`] for a key held only until `reuse_after` (epoch
/// seconds): a request id the runbook derived from the payload.
pub async fn once_request_until<F>(
    app: &App,
    request_id: &str,
    payload_hash: &str,
    reuse_after: Option<i64>,
    body: F,
) -> Result<Outcome, AutopilotError>
where
    F: std::future::Future<Output = Result<Outcome, AutopilotError>>,
{
    match claimed(app, ClaimKey::Request(request_id), Some(payload_hash), reuse_after, None, body).await? {
        Claimed::Ran(outcome) => Ok(*outcome),
        Claimed::Before(first) => {
            tracing::info!(request_id, decision = "repeated-request", "request already handled; its first result");
            Ok(first.and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_else(|| {
                Outcome::new(
                    crate::outcome::Kind::Runbook,
                    crate::outcome::Severity::Info,
                    crate::outcome::Cause::Unknown,
                    format!("runbook request {request_id} was already handled; its first result was not kept"),
                )
            }))
        }
    }
}

/// Send the notice `key` once, whatever events announce it: `Ok(None)` when
/// it was sent before. Like [`once`], a failed run gives the claim back.
pub async fn once_notice<F>(app: &App, key: &str, body: F) -> Result<Option<Outcome>, AutopilotError>
where
    F: std::future::Future<Output = Result<Outcome, AutopilotError>>,
{
    match claimed(app, ClaimKey::Notice(key), None, None, None, body).await? {
        Claimed::Ran(outcome) => Ok(Some(*outcome)),
        Claimed::Before(_) => Ok(None),
    }
}

/// What a claimed run came to.
enum Claimed {
    Ran(Box<Outcome>),
    /// Done before; the first Outcome (JSON) when it was kept.
    Before(Option<String>),
}

/// The claim machinery of [`once`] and [`once_request`]: claim `key`, run
/// `body` if the claim is new, mark it done (keeping the Outcome when a
/// payload hash binds the key; unless the body's incident write did, holding
/// `hand`) or give it back on failure.
async fn claimed<F>(
    app: &App,
    key: ClaimKey<'_>,
    payload_hash: Option<&str>,
    reuse_after: Option<i64>,
    hand: Option<Arc<ClaimInHand>>,
    body: F,
) -> Result<Claimed, AutopilotError>
where
    F: std::future::Future<Output = Result<Outcome, AutopilotError>>,
{
    let (what, id) = match key {
        ClaimKey::Event(id) => (format!("event {id}"), id),
        ClaimKey::Request(id) => (format!("runbook request {id}"), id),
        ClaimKey::Notice(id) => (format!("notice {id}"), id),
    };
    let (now, lease_until) = claim_lease(app);
    match app.state.claims().claim_until(key, app.function.name(), now, lease_until, payload_hash, reuse_after).await? {
        Claim::InProgress { until } => Err(in_progress(what, until)),
        Claim::Conflict { first_hash } => Err(AutopilotError::RequestIdConflict {
            request_id: id.to_string(),
            first_hash,
            this_hash: payload_hash.unwrap_or_default().to_string(),
        }),
        Claim::Duplicate { outcome } => Ok(Claimed::Before(outcome)),
        Claim::New => {
            let ran = match &hand {
                Some(hand) => Arc::clone(hand).holding(Box::pin(body)).await,
                None => Box::pin(body).await,
            };
            let outcome = match (ran, hand.is_some_and(|h| h.hand() == Hand::Done)) {
                (Ok(outcome), true) => {
                    tracing::debug!(claim = %what, "completed with the incident's last write");
                    outcome
                }
                (ran, _) => settle(app, key, &what, payload_hash, ran).await?,
            };
            Ok(Claimed::Ran(Box::new(outcome)))
        }
    }
}

/// After the body of a claim we hold: mark it done (keeping the Outcome
/// when a payload hash binds the key), or give it back on failure.
async fn settle(
    app: &App,
    key: ClaimKey<'_>,
    what: &str,
    payload_hash: Option<&str>,
    ran: Result<Outcome, AutopilotError>,
) -> Result<Outcome, AutopilotError> {
    match ran {
        Ok(outcome) => {
            // Only a request's claim keeps its Outcome: repeats answer it.
            let kept = payload_hash.and_then(|_| serde_json::to_string(&outcome).ok());
            if let Err(e) = app.state.claims().complete(key, &outcome.summary, kept.as_deref()).await {
                // The work is done; a lingering lease only delays a duplicate's skip.
                tracing::warn!(claim = %what, error = %e, "claim not marked done");
            }
            Ok(outcome)
        }
        Err(e) => {
            if let Err(release) = app.state.claims().release(key).await {
                tracing::warn!(claim = %what, error = %release, "claim not released");
            }
            Err(e)
        }
    }
}

/// Another invocation holds the claim until `until`: come back later.
fn in_progress(what: String, until: i64) -> AutopilotError {
    tracing::info!(claim = %what, until, decision = "claim-in-progress", "claimed by another invocation; retry later");
    AutopilotError::InProgress { what, until: crate::time::iso(until) }
}
