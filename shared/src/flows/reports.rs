//! `scheduled-reports`: the escalation job (every five minutes) and the daily
//! and weekly reports.
//!
//! Escalation reads the open incidents from the state table's open index and
//! decides per incident with `lifecycle::escalation_due`; the escalation count
//! is claimed with a conditional write before the publish (and given back if
//! the publish fails), so concurrent or repeated runs never send the same
//! escalation twice.

use serde_json::{Value, json};

use super::{Flow, FlowFuture};
use crate::adapters::sns::publish;
use crate::context::{App, Function};
use crate::error::AutopilotError;
use crate::lifecycle::{Escalation, Incident, Policy, escalation_due};
use crate::outcome::{Cause, Kind, Outcome, Severity};
use crate::render::{EscalationView, Links, render_escalation};
use crate::snapshot::LedgerStatus;
use crate::time::{iso, now};
use crate::trigger::{Job, Trigger};

pub const FLOW: Flow = Flow { function: Function::ScheduledReports, run };

fn run<'a>(app: &'a App, trigger: Trigger, _raw: &'a Value) -> FlowFuture<'a> {
    Box::pin(async move {
        match trigger {
            Trigger::Scheduled { job: Job::Escalate, .. } => escalate(app).await,
            Trigger::Scheduled { job, .. } => Ok(Outcome::new(
                Kind::Report,
                Severity::Info,
                Cause::Expected,
                format!("{job:?} job recognised; this report is not built yet"),
            )),
            other => Ok(Outcome::ignored(format!("{:?} is not a scheduled job", other.kind()))),
        }
    })
}

/// One escalation run over every open incident.
async fn escalate(app: &App) -> Result<Outcome, AutopilotError> {
    let settings = &app.config.settings;
    let policy = Policy {
        window_seconds: settings.incident_window.as_secs() as i64,
        update_interval_seconds: settings.update_interval.as_secs() as i64,
    };
    let escalate_after = settings.escalate_after.as_secs() as i64;
    let open = app.state.open_incidents().await?;
    let t = now();
    let mut escalated = Vec::new();
    let mut expired = Vec::new();
    let mut failed = Vec::new();
    for inc in &open {
        match escalation_due(inc, t, escalate_after, &policy) {
            Escalation::NotDue => {}
            Escalation::Expire => {
                let window = crate::render::human_duration(policy.window_seconds);
                match super::incident::expire(app, inc, &format!("expired: no signal for {window}")).await {
                    Ok(true) => expired.push(inc.id.clone()),
                    Ok(false) => {}
                    Err(e) => failed.push(format!("{}: {e}", inc.id)),
                }
            }
            Escalation::Escalate { nth } => match escalate_one(app, inc, nth, t).await {
                Ok(true) => escalated.push(inc.id.clone()),
                Ok(false) => {}
                Err(e) => failed.push(format!("{}: {e}", inc.id)),
            },
        }
    }
    tracing::info!(
        open = open.len(),
        escalated = escalated.len(),
        expired = expired.len(),
        failed = failed.len(),
        decision = "escalation-run",
        "escalation run"
    );
    if !failed.is_empty() && escalated.is_empty() && expired.is_empty() {
        // Nothing got through: fail so that the schedule's retry tries again.
        return Err(AutopilotError::Aws(crate::error::AwsError {
            retryable: true,
            ..crate::error::AwsError::answer(
                "sns",
                "Publish (escalation)",
                &app.config.notify_topic_arn,
                failed.join("; "),
            )
        }));
    }
    let mut o = Outcome::new(
        Kind::Report,
        Severity::Info,
        Cause::Expected,
        format!(
            "escalation: {} open incident(s), {} escalated, {} expired{}",
            open.len(),
            escalated.len(),
            expired.len(),
            if failed.is_empty() { String::new() } else { format!(", {} failed: {}", failed.len(), failed.join("; ")) }
        ),
    );
    o.details = Some(json!({"escalated": escalated, "expired": expired, "failed": failed}));
    Ok(o)
}

/// Claim escalation `nth` of `inc`, then send it; `Ok(false)` when another
/// run claimed it first. An unsent escalation gives its claim back.
async fn escalate_one(app: &App, inc: &Incident, nth: u32, t: i64) -> Result<bool, AutopilotError> {
    if !app.state.count_escalation(inc, nth - 1, t).await? {
        return Ok(false);
    }
    let (cluster, service) = inc.subject.as_service().unwrap_or(("", ""));
    let mut tried = inc.notes.clone();
    if let Some((c, s)) = inc.subject.as_service() {
        // The ledger says what the engine decided, executed or not.
        match app.state.ledger_since(c, s, inc.opened_at).await {
            Ok(entries) => {
                // Executed and failed actions are in the notes already.
                let noted = |detail: &str| inc.notes.iter().any(|n| n.contains(detail));
                tried.extend(
                    entries
                        .iter()
                        .filter(|e| {
                            !matches!(e.status, LedgerStatus::Executed | LedgerStatus::Failed) || !noted(&e.detail)
                        })
                        .map(|e| format!("{} {} at {}: {}", e.action.as_str(), e.status.as_str(), iso(e.at), e.detail)),
                )
            }
            Err(e) => tried.push(format!("ledger unreadable: {e}")),
        }
    }
    let problem = inc.summary.split(" - ").next().unwrap_or("incident").to_string();
    let view = EscalationView {
        severity: inc.severity,
        cause: inc.cause,
        cluster,
        service,
        incident: &inc.id,
        problem: &problem,
        opened_at: &iso(inc.opened_at),
        open_for_seconds: t - inc.opened_at,
        nth,
        tried: &tried,
        evidence: inc.evidence.as_deref(),
        links: Links {
            region: app.config.settings.console_region.clone(),
            cluster: cluster.into(),
            service: service.into(),
        },
    };
    let message = render_escalation(&view, &crate::telemetry::redactor());
    match publish(&app.clients, &app.config.notify_topic_arn, &message).await {
        Ok(_) => {
            tracing::info!(incident = %inc.id, nth, decision = "escalated", "incident escalated");
            Ok(true)
        }
        Err(e) => {
            if let Err(undo) = app.state.uncount_escalation(inc, nth).await {
                tracing::error!(incident = %inc.id, error = %undo, "escalation claim not given back; it is not re-sent");
            }
            Err(AutopilotError::Aws(e))
        }
    }
}
