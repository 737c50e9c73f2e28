//! Deployments seen (`deployment#<id>`, 30 days) and the last task
//! definition that reached steady state (`known-good#latest`).

use super::{DAY, StateStore, get_n, get_s, keys, n, s};
use crate::error::AutopilotError;

/// A revision that reached steady state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownGood {
    pub task_definition: String,
    pub deployment_id: Option<String>,
    pub recorded_at: i64,
}

impl StateStore {
    /// Remember a task definition that reached steady state.
    pub async fn record_known_good(
        &self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        deployment_id: &str,
        now: i64,
    ) -> Result<(), AutopilotError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::service(cluster, service)))
            .item("sk", s(keys::KNOWN_GOOD))
            .item("task_definition", s(task_definition))
            .item("deployment_id", s(deployment_id))
            .item("recorded_at", n(now))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("PutItem (known good)", e))
    }

    pub async fn known_good(&self, cluster: &str, service: &str) -> Result<Option<KnownGood>, AutopilotError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(cluster, service)))
            .key("sk", s(keys::KNOWN_GOOD))
            .send()
            .await
            .map_err(|e| self.err("GetItem (known good)", e))?;
        Ok(resp.item().and_then(|i| {
            Some(KnownGood {
                task_definition: get_s(i, "task_definition")?,
                deployment_id: get_s(i, "deployment_id"),
                recorded_at: get_n(i, "recorded_at").unwrap_or_default(),
            })
        }))
    }

    /// Remember a deployment's state change (when it started, how it ended).
    pub async fn record_deployment(
        &self,
        cluster: &str,
        service: &str,
        deployment_id: &str,
        state: &str,
        now: i64,
    ) -> Result<(), AutopilotError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(cluster, service)))
            .key("sk", s(keys::deployment(deployment_id)))
            .update_expression("SET #st = :state, updated_at = :now, first_seen_at = if_not_exists(first_seen_at, :now), expires_at = :exp")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":exp", n(now + 30 * DAY))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("UpdateItem (deployment)", e))
    }
}
