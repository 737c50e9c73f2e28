//! Event claims: every event id is processed once. A claim is a lease while
//! processing, then `done` (kept 7 days).

use super::{DAY, StateStore, keys, n, s};
use crate::error::AutopilotError;

/// How long a claim protects an event that is still being processed; a
/// crashed invocation's claim expires so that Lambda's retry can take over.
pub const CLAIM_LEASE_SECONDS: i64 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First delivery (or a retry after a crashed attempt): process it.
    New,
    /// Already processed, or being processed right now.
    Duplicate,
}

impl StateStore {
    /// Claim one delivery of an event. EventBridge delivers at least once;
    /// only the first claim (or one whose lease expired) processes it.
    pub async fn claim_event(&self, event_id: &str, function: &str, now: i64) -> Result<Claim, AutopilotError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::event(event_id)))
            .item("sk", s(keys::EVENT))
            .item("function", s(function))
            .item("status", s("processing"))
            .item("lease_until", n(now + CLAIM_LEASE_SECONDS))
            .item("received_at", n(now))
            .item("expires_at", n(now + 7 * DAY))
            .condition_expression("attribute_not_exists(pk) OR (#st = :processing AND lease_until < :now)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        Ok(self.conditional("PutItem (claim event)", result)?.map_or(Claim::Duplicate, |_| Claim::New))
    }

    /// Mark a claimed event done, with what was decided.
    pub async fn complete_event(&self, event_id: &str, summary: &str) -> Result<(), AutopilotError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::event(event_id)))
            .key("sk", s(keys::EVENT))
            .update_expression("SET #st = :done, summary = :summary REMOVE lease_until")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":summary", s(summary.chars().take(500).collect::<String>()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("UpdateItem (complete event)", e))
    }

    /// Give a claim back after a failure, so that Lambda's retry processes it.
    pub async fn release_event(&self, event_id: &str) -> Result<(), AutopilotError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::event(event_id)))
            .key("sk", s(keys::EVENT))
            .condition_expression("#st = :processing")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("DeleteItem (release event)", e))
    }
}
