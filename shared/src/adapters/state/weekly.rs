//! Reads of the weekly capacity review: the deployments recorded for a
//! service (`deployment#<id>`, written by ecs-events), as delivery records.

use super::{Item, get_n, get_s, keys, s};
use crate::error::AutopilotError;
use crate::reports::weekly::DeploymentRecord;

impl super::deployments::DeploymentStore<'_> {
    /// The deployments of a service first seen at or after `since`, oldest first.
    pub async fn deployments_since(
        self,
        cluster: &str,
        service: &str,
        since: i64,
    ) -> Result<Vec<DeploymentRecord>, AutopilotError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :d)")
                .expression_attribute_values(":pk", s(keys::service(&self.scope, cluster, service)))
                .expression_attribute_values(":d", s(keys::deployment("")))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Query (deployments)", e))?;
            for item in resp.items() {
                let Some(started_at) = get_n(item, "first_seen_at").filter(|t| *t >= since) else { continue };
                let id = get_s(item, "sk")
                    .and_then(|k| k.strip_prefix(&keys::deployment("")).map(str::to_string))
                    .unwrap_or_default();
                let state = get_s(item, "state").unwrap_or_default();
                out.push(DeploymentRecord { id, started_at, failed: state.contains("FAILED"), state });
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.sort_by_key(|d| d.started_at);
        Ok(out)
    }
}
