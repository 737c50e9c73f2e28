//! `STATE_TABLE`, split by concern: [`claims`] (one processing per event),
//! [`incidents`] (open incidents and their history), [`deployments`]
//! (deployments seen and known-good revisions), [`actions`] (locks, holds and
//! the action ledger), [`facts`] (one read of a service's known-good
//! history, ledger and pipeline links). Every write that decides "who acts" is conditional, so
//! concurrent invocations agree on one winner. Keys are built in [`keys`]
//! only; items are read and written through the helpers here.
//!
//! Every conditional write that decides who acts carries a token of its
//! invocation ([`crate::invocation::token`]) and asks for the refusing item:
//! a refusal by an item bearing our own token is our own write, retried by
//! the SDK after its response was lost.
//!
//! Item layout (key schema fixed by docs/ARCHITECTURE.md: `pk`, `sk`, TTL `expires_at`):
//!
//! | pk                          | sk                          | what |
//! |-----------------------------|-----------------------------|------|
//! | `event#<event id>`          | `event`                     | claim of one delivery (lease while processing, then done; 7 days) |
//! | `runbook#<request id>`      | `request`                   | claim of one runbook request: payload hash, lease, then done with its first Outcome (7 days) |
//! In a fleet, every `service#…` and `pipeline#…` key of a member account
//! and region starts with `<account>/<region>/` (`crate::fleet::Scope`);
//! home's keys are as a single-account deployment wrote them.
//!
//! | `service#<cluster>/<svc>` or `pipeline#<name>` | `incident#open` | the open incident of a subject (at most one); carries `open_index`/`open_since` while open, so the sparse index `open-incidents` lists exactly the open ones |
//! | `service#<cluster>/<svc>`   | `incident#<opened>#<id>`    | a closed incident (90 days) |
//! | `service#<cluster>/<svc>`   | `known-good#<family>:<rev>` | known-good history of one revision: completions, last failure, last rolled away from |
//! | `service#<cluster>/<svc>`   | `deployment#<id>`           | deployments seen, with their state and time |
//! | `notice#<what>`             | `notice`                    | claim of a notice sent once (a pipeline approval, per execution and action; 7 days) |
//! | `service#<cluster>/<svc>`   | `pipeline-deploy#<exec>#<stage>#<action>` | which pipeline execution and commit deployed the service (30 days) |
//! | `pipeline#<name>`           | `execution#<exec>`          | an execution's last recorded state (SUPERSEDED, CANCELED, SUCCEEDED, …; 30 days) |
//! | `service#<cluster>/<svc>`   | `lock`                      | lease lock of the action engine (owner, expires_at) |
//! | `service#<cluster>/<svc>`   | `hold`                      | automatic actions stopped after a failed action, until a person clears it |
//! | `service#<cluster>/<svc>`   | `ledger#<time>#<action>#<id>` | every action decision: executed, planned, skipped, failed (90 days) |
//! | `hook#<hook id>`            | `hook`                      | a paused deployment hook as its approval notice announced it (15 days) |
//! | `service#<cluster>/<svc>`   | `gate#<revision id>#<stage>#<weight>` | the deployment gate: when it first saw the step, its last verdict, `passed_at` (30 days) |

pub mod actions;
pub mod claims;
pub mod deployments;
pub mod facts;
pub mod gates;
pub mod hooks;
pub mod incidents;
pub mod pipelines;
pub mod weekly;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

use super::aws_error;
use crate::error::AutopilotError;

pub use actions::{LedgerEntry, LedgerStatus, LockOutcome};
pub use claims::{Claim, ClaimKey};
pub use deployments::KnownGood;
pub use facts::ServiceFacts;
pub use incidents::{IncidentStore, OPEN_INDEX, Write};

pub(crate) const DAY: i64 = 24 * 60 * 60;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Every key of the table (the layout in the module doc).
pub(crate) mod keys {
    use crate::fleet::Scope;

    pub const EVENT: &str = "event";
    pub const REQUEST: &str = "request";
    pub const NOTICE: &str = "notice";
    /// Sort keys of a service's pipeline deployment links start with this.
    pub const PIPELINE_DEPLOY: &str = "pipeline-deploy#";
    pub const OPEN_INCIDENT: &str = "incident#open";
    pub const KNOWN_GOOD: &str = "known-good#latest";
    pub const LOCK: &str = "lock";
    pub const HOLD: &str = "hold";
    /// Sort keys of ledger entries start with this; `ledger#~` sorts after all of them.
    pub const LEDGER: &str = "ledger#";

    pub fn event(event_id: &str) -> String {
        format!("event#{event_id}")
    }
    /// A runbook request's claim, by its caller-chosen `request_id`.
    pub fn request(request_id: &str) -> String {
        format!("runbook#{request_id}")
    }
    /// A notice sent once (see `ClaimKey::Notice`).
    pub fn notice(id: &str) -> String {
        format!("notice#{id}")
    }
    /// Which pipeline action deployed a service: one item per execution and action.
    pub fn pipeline_deploy(execution: &str, stage: &str, action: &str) -> String {
        format!("{PIPELINE_DEPLOY}{execution}#{stage}#{action}")
    }
    /// A pipeline's execution record (its final state).
    pub fn pipeline(scope: &Scope, pipeline: &str) -> String {
        format!("{}pipeline#{pipeline}", scope.key_prefix())
    }
    pub fn execution(execution: &str) -> String {
        format!("execution#{execution}")
    }
    /// Everything about a service in `scope` (the same key as its incident
    /// subject's, `crate::incident::Subject::key`).
    pub fn service(scope: &Scope, cluster: &str, service: &str) -> String {
        format!("{}service#{cluster}/{service}", scope.key_prefix())
    }
    pub fn closed_incident(opened_rfc3339: &str, incident_id: &str) -> String {
        format!("incident#{opened_rfc3339}#{incident_id}")
    }
    pub fn deployment(deployment_id: &str) -> String {
        format!("deployment#{deployment_id}")
    }
    pub fn ledger(at_rfc3339: &str, action: &str, digest_hex: &str) -> String {
        format!("{LEDGER}{at_rfc3339}#{action}#{digest_hex}")
    }
    /// A deployment gate step: target revision, stage, production weight.
    pub fn gate(revision_id: &str, stage: &str, weight: f64) -> String {
        format!("gate#{revision_id}#{stage}#{weight}")
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
pub(crate) fn get_s(item: &Item, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}
pub(crate) fn get_n(item: &Item, k: &str) -> Option<i64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}
/// Whether `old` (the item that refused a conditional write) was written by
/// the holder of `token`: then the refused write is an SDK retry of our own
/// write whose response was lost, and it is ours.
pub(crate) fn written_by(old: Option<&Item>, attribute: &str, token: &str) -> bool {
    old.and_then(|i| get_s(i, attribute)).is_some_and(|t| t == token)
}

pub(crate) fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default().to_rfc3339()
}

/// The state table, as one scope of the fleet sees it: the keys of its
/// services and pipelines carry the scope ([`crate::fleet::Scope::key_prefix`]).
#[derive(Debug, Clone)]
pub struct StateStore {
    /// Built on the first call, not at start (see [`crate::adapters::DynamoHandle`]).
    client: crate::adapters::DynamoHandle,
    table: String,
    scope: crate::fleet::Scope,
}

impl StateStore {
    pub fn new(client: impl Into<crate::adapters::DynamoHandle>, table: impl Into<String>) -> Self {
        Self { client: client.into(), table: table.into(), scope: crate::fleet::Scope::Home }
    }

    /// The same table, with the keys of `scope`.
    pub fn at(&self, scope: &crate::fleet::Scope) -> Self {
        Self { scope: scope.clone(), ..self.clone() }
    }

    pub fn scope(&self) -> &crate::fleet::Scope {
        &self.scope
    }

    fn err<E, R>(&self, op: &'static str, e: SdkError<E, R>) -> AutopilotError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        AutopilotError::State(aws_error("dynamodb", op, &self.table, &e))
    }

    /// A conditional write's result: written, or refused by its condition
    /// (with the item that refused it, when the write asked for it with
    /// `ReturnValuesOnConditionCheckFailure::AllOld`), or an error.
    fn conditional<T, E, R>(
        &self,
        op: &'static str,
        result: Result<T, SdkError<E, R>>,
    ) -> Result<Conditional<T>, AutopilotError>
    where
        E: ProvideErrorMetadata + ConditionFailure + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        match result {
            Ok(out) => Ok(Conditional::Written(out)),
            Err(e) => match e.as_service_error().and_then(ConditionFailure::refused) {
                Some(old) => Ok(Conditional::Refused(old)),
                None => Err(self.err(op, e)),
            },
        }
    }
}

/// What a conditional write came to.
#[derive(Debug)]
pub(crate) enum Conditional<T> {
    Written(T),
    /// The condition said no; the item as it stood, when DynamoDB returned it.
    Refused(Option<Item>),
}

impl<T> Conditional<T> {
    pub(crate) fn written(self) -> Option<T> {
        match self {
            Self::Written(t) => Some(t),
            Self::Refused(_) => None,
        }
    }
}

/// An operation error that may be a refused condition.
pub(crate) trait ConditionFailure {
    /// `Some(old item)` when the error is ConditionalCheckFailed.
    fn refused(&self) -> Option<Option<Item>>;
}

macro_rules! condition_failure {
    ($($error:ty),*) => {$(
        impl ConditionFailure for $error {
            fn refused(&self) -> Option<Option<Item>> {
                match self {
                    Self::ConditionalCheckFailedException(e) => Some(e.item().cloned()),
                    other if other.code() == Some("ConditionalCheckFailedException") => Some(None),
                    _ => None,
                }
            }
        }
    )*};
}

condition_failure!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusing_item_is_ours_only_when_it_bears_our_token() {
        let item = |v: &str| -> Item { [("token".to_string(), s(v))].into() };
        let cases = [
            (Some(item("req-1")), "req-1", true),
            (Some(item("req-2")), "req-1", false),
            (Some(Item::new()), "req-1", false),
            (None, "req-1", false),
        ];
        for (old, token, ours) in cases {
            assert_eq!(written_by(old.as_ref(), "token", token), ours, "{old:?} {token}");
        }
    }
}
