//! Pipelines in the state table: which pipeline execution deployed a
//! service (`pipeline-deploy#…` on the service's partition, 30 days), and
//! the last recorded state of an execution (`execution#<id>` under
//! `pipeline#<name>`, 30 days).

use super::{DAY, Item, StateStore, get_n, get_s, keys, n, s};
use crate::error::AutopilotError;
use crate::pipeline::{Commit, DeployLink};

pub(super) fn link_from(item: &Item) -> Option<DeployLink> {
    Some(DeployLink {
        pipeline: get_s(item, "pipeline")?,
        execution_id: get_s(item, "execution_id")?,
        stage: get_s(item, "stage").unwrap_or_default(),
        action: get_s(item, "action").unwrap_or_default(),
        commit: get_s(item, "commit_id").map(|id| Commit {
            id,
            message: get_s(item, "commit_message"),
            url: get_s(item, "commit_url"),
            created_at: get_n(item, "commit_created_at"),
        }),
        started_at: get_n(item, "started_at"),
        finished_at: get_n(item, "finished_at"),
        status: get_s(item, "status").unwrap_or_else(|| "InProgress".into()),
    })
}

/// Which pipeline execution deployed a service, and executions' final states. A typed view of the one state table.
#[derive(Clone, Copy)]
pub struct PipelineStore<'a> {
    state: &'a StateStore,
}

impl std::ops::Deref for PipelineStore<'_> {
    type Target = StateStore;

    fn deref(&self) -> &StateStore {
        self.state
    }
}

impl StateStore {
    pub fn pipelines(&self) -> PipelineStore<'_> {
        PipelineStore { state: self }
    }
}

impl PipelineStore<'_> {
    /// Record that `link`'s pipeline action deploys (or deployed) the
    /// service. Idempotent per execution and action; a late STARTED never
    /// undoes a recorded end (`status` is only set by an end, or when absent).
    pub async fn record_pipeline_deploy(
        self,
        (cluster, service): (&str, &str),
        link: &DeployLink,
        now: i64,
    ) -> Result<(), AutopilotError> {
        let finished = link.status != "InProgress";
        let mut sets = vec!["pipeline = :p", "execution_id = :e", "stage = :st", "#action = :a", "expires_at = :exp"];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(&self.scope, cluster, service)))
            .key("sk", s(keys::pipeline_deploy(&link.execution_id, &link.stage, &link.action)))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#action", "action")
            .expression_attribute_values(":p", s(&link.pipeline))
            .expression_attribute_values(":e", s(&link.execution_id))
            .expression_attribute_values(":st", s(&link.stage))
            .expression_attribute_values(":a", s(&link.action))
            .expression_attribute_values(":status", s(&link.status))
            .expression_attribute_values(":exp", n(now + 30 * DAY));
        if finished {
            sets.push("#status = :status");
            sets.push("finished_at = :fin");
            req = req.expression_attribute_values(":fin", n(link.finished_at.unwrap_or(now)));
        } else {
            sets.push("#status = if_not_exists(#status, :status)");
        }
        if let Some(t) = link.started_at {
            sets.push("started_at = if_not_exists(started_at, :start)");
            req = req.expression_attribute_values(":start", n(t));
        }
        if let Some(c) = &link.commit {
            sets.push("commit_id = :cid");
            req = req.expression_attribute_values(":cid", s(&c.id));
            if let Some(m) = &c.message {
                sets.push("commit_message = :cm");
                req = req.expression_attribute_values(":cm", s(m));
            }
            if let Some(u) = &c.url {
                sets.push("commit_url = :cu");
                req = req.expression_attribute_values(":cu", s(u));
            }
            if let Some(t) = c.created_at {
                sets.push("commit_created_at = :ct");
                req = req.expression_attribute_values(":ct", n(t));
            }
        }
        req.update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("UpdateItem (pipeline deploy)", e))
    }

    /// Every pipeline deployment recorded on the service (30 days).
    pub async fn pipeline_deploys(self, cluster: &str, service: &str) -> Result<Vec<DeployLink>, AutopilotError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(keys::service(&self.scope, cluster, service)))
                .expression_attribute_values(":prefix", s(keys::PIPELINE_DEPLOY))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Query (pipeline deploys)", e))?;
            out.extend(resp.items().iter().filter_map(link_from));
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// The newest execution of `pipeline` recorded SUCCEEDED after `at`
    /// (its id and time): a failure from before it is already fixed.
    pub async fn pipeline_succeeded_after(
        self,
        pipeline: &str,
        at: i64,
    ) -> Result<Option<(String, i64)>, AutopilotError> {
        let mut newest: Option<(String, i64)> = None;
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .filter_expression("#st = :ok AND state_at > :at")
                .expression_attribute_names("#st", "state")
                .expression_attribute_values(":pk", s(keys::pipeline(&self.scope, pipeline)))
                .expression_attribute_values(":prefix", s(keys::execution("")))
                .expression_attribute_values(":ok", s("SUCCEEDED"))
                .expression_attribute_values(":at", n(at))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Query (pipeline executions)", e))?;
            for item in resp.items() {
                let (Some(sk), Some(t)) = (get_s(item, "sk"), get_n(item, "state_at")) else { continue };
                let id = sk.trim_start_matches(&keys::execution("")).to_string();
                if newest.as_ref().is_none_or(|(_, n)| t > *n) {
                    newest = Some((id, t));
                }
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(newest),
            }
        }
    }

    /// Record an execution's state (a newer record is never replaced by an older one).
    pub async fn record_pipeline_execution(
        self,
        pipeline: &str,
        execution_id: &str,
        state: &str,
        at: i64,
    ) -> Result<(), AutopilotError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::pipeline(&self.scope, pipeline)))
            .key("sk", s(keys::execution(execution_id)))
            .update_expression("SET #st = :state, state_at = :at, expires_at = :exp")
            .condition_expression("attribute_not_exists(state_at) OR state_at <= :at")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":exp", n(at + 30 * DAY))
            .send()
            .await;
        // Refused: a newer state is already recorded.
        self.conditional("UpdateItem (pipeline execution)", result).map(|_| ())
    }
}
