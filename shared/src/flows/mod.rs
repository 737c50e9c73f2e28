//! Flows: the runbooks as code. Each flow gathers, decides (pure functions in
//! `diagnosis`), records in the state table, keeps evidence and notifies.

pub mod alarm;
pub mod ecs;
pub mod incident;
pub mod runbook;

use crate::error::AutopilotError;
use crate::handlers::App;
use crate::outcome::Outcome;
use crate::state::Claim;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn iso(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Run `body` once per event id: a duplicate delivery gets `on_duplicate`
/// and does nothing; a failed run gives its claim back so Lambda's retry
/// can process the event.
pub async fn once<F, D>(app: &App, event_id: &str, on_duplicate: D, body: F) -> Result<Outcome, AutopilotError>
where
    F: std::future::Future<Output = Result<Outcome, AutopilotError>>,
    D: FnOnce() -> Outcome,
{
    match app.state.claim_event(event_id, app.function.name(), now()).await? {
        Claim::Duplicate => {
            tracing::info!(event_id, decision = "duplicate-event", "event already processed or in progress; skipped");
            let mut outcome = on_duplicate();
            // Point the duplicate at the incident it belongs to, if one is open.
            if let (Some(c), Some(s)) = (&outcome.cluster, &outcome.service)
                && let Ok(Some(open)) = app.state.open_incident(c, s).await
            {
                outcome.incident = Some(open.id);
                outcome.evidence = open.evidence;
            }
            Ok(outcome)
        }
        Claim::New => match Box::pin(body).await {
            Ok(outcome) => {
                if let Err(e) = app.state.complete_event(event_id, &outcome.summary).await {
                    // The work is done; a lingering lease only delays a duplicate's skip.
                    tracing::warn!(event_id, error = %e, "event claim not marked done");
                }
                Ok(outcome)
            }
            Err(e) => {
                if let Err(release) = app.state.release_event(event_id).await {
                    tracing::warn!(event_id, error = %release, "event claim not released");
                }
                Err(e)
            }
        },
    }
}
