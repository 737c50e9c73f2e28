//! Deployments seen (`deployment#<id>`, 30 days) and the known-good history:
//! one item per revision (`known-good#<family>:<revision>`) recording when a
//! deployment of it completed, when one failed and when we rolled away from
//! it. Every history write is conditional on its time being newer than the
//! one stored, so redeliveries and late events never move it backwards.
//!
//! The single slot of earlier versions (`known-good#latest`, written from
//! whatever deployment was PRIMARY) is never read as history.

use super::{DAY, Item, StateStore, get_n, get_s, keys, n, s};
use crate::error::{AutopilotError, AwsError};
pub use crate::snapshot::KnownGood;

/// Sort keys of the known-good history start with this.
// Kept here while `keys` (state/mod.rs) is being reworked elsewhere; it belongs there.
pub(super) const KNOWN_GOOD_PREFIX: &str = "known-good#";

/// `known-good#<family>:<revision>` of a task definition ARN or `family:revision`.
fn known_good_key(task_definition: &str) -> Option<String> {
    let short = crate::arn::last_segment(task_definition);
    let (family, rev) = short.rsplit_once(':')?;
    (!family.is_empty() && rev.parse::<u32>().is_ok()).then(|| format!("{KNOWN_GOOD_PREFIX}{family}:{rev}"))
}

pub(super) fn known_good(item: &Item) -> Option<KnownGood> {
    Some(KnownGood {
        task_definition: get_s(item, "task_definition")?,
        first_completed_at: get_n(item, "first_completed_at"),
        completed_at: get_n(item, "completed_at"),
        completed_by: get_s(item, "completed_by"),
        failed_at: get_n(item, "failed_at"),
        failed_deployment: get_s(item, "failed_deployment"),
        rolled_away_at: get_n(item, "rolled_away_at"),
    })
}

/// One kind of history write: what it sets, and the time it must be newer than.
struct HistoryWrite<'a> {
    op: &'static str,
    set: &'a str,
    time_attr: &'a str,
    values: &'a [(&'a str, &'a str)],
}

/// Deployments seen and the known-good history of revisions. A typed view of the one state table.
#[derive(Clone, Copy)]
pub struct DeploymentStore<'a> {
    state: &'a StateStore,
}

impl std::ops::Deref for DeploymentStore<'_> {
    type Target = StateStore;

    fn deref(&self) -> &StateStore {
        self.state
    }
}

impl StateStore {
    pub fn deployments(&self) -> DeploymentStore<'_> {
        DeploymentStore { state: self }
    }
}

impl DeploymentStore<'_> {
    fn known_good_key(self, op: &'static str, task_definition: &str) -> Result<String, AutopilotError> {
        known_good_key(task_definition).ok_or_else(|| {
            AutopilotError::State(AwsError::answer(
                "dynamodb",
                op,
                &self.table,
                format!("{task_definition:?} is not a family:revision task definition"),
            ))
        })
    }

    /// One conditional `SET …` on a revision's history item: written only
    /// when `write.time_attr` is absent or older than `at`. `Ok(false)` when
    /// a record as new or newer is already there (a redelivery, a late event).
    async fn set_if_newer(
        self,
        (cluster, service): (&str, &str),
        task_definition: &str,
        at: i64,
        write: HistoryWrite<'_>,
    ) -> Result<bool, AutopilotError> {
        let HistoryWrite { op, set, time_attr, values } = write;
        let sk = self.known_good_key(op, task_definition)?;
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(&self.scope, cluster, service)))
            .key("sk", s(sk))
            .update_expression(format!("SET task_definition = if_not_exists(task_definition, :td), {set}"))
            .condition_expression(format!("attribute_not_exists({time_attr}) OR {time_attr} < :at"))
            .expression_attribute_values(":td", s(task_definition))
            .expression_attribute_values(":at", n(at));
        for (k, v) in values {
            req = req.expression_attribute_values(*k, s(*v));
        }
        Ok(self.conditional(op, req.send().await)?.written().is_some())
    }

    /// A deployment of `task_definition` completed at `at`. Never moves the
    /// record backwards; keeps the earliest completion seen.
    pub async fn record_completion(
        self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        deployment_id: &str,
        at: i64,
    ) -> Result<bool, AutopilotError> {
        const OP: &str = "UpdateItem (known-good completion)";
        let write = HistoryWrite {
            op: OP,
            set: "completed_at = :at, completed_by = :dep, first_completed_at = if_not_exists(first_completed_at, :at)",
            time_attr: "completed_at",
            values: &[(":dep", deployment_id)],
        };
        let written = self.set_if_newer((cluster, service), task_definition, at, write).await?;
        if !written {
            // A late, older completion: it may still be the first one.
            let sk = self.known_good_key(OP, task_definition)?;
            let earlier = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(keys::service(&self.scope, cluster, service)))
                .key("sk", s(sk))
                .update_expression("SET first_completed_at = :at")
                .condition_expression("first_completed_at > :at")
                .expression_attribute_values(":at", n(at))
                .send()
                .await;
            self.conditional(OP, earlier)?;
        }
        Ok(written)
    }

    /// A deployment of `task_definition` failed at `at`: the revision is not
    /// known-good until a deployment of it completes after that.
    pub async fn record_failure(
        self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        deployment_id: &str,
        at: i64,
    ) -> Result<bool, AutopilotError> {
        let write = HistoryWrite {
            op: "UpdateItem (known-good failure)",
            set: "failed_at = :at, failed_deployment = :dep",
            time_attr: "failed_at",
            values: &[(":dep", deployment_id)],
        };
        self.set_if_newer((cluster, service), task_definition, at, write).await
    }

    /// We rolled the service away from `task_definition` at `at`: the
    /// revision is not known-good until a deployment of it completes after that.
    pub async fn record_rolled_away(
        self,
        cluster: &str,
        service: &str,
        task_definition: &str,
        at: i64,
    ) -> Result<bool, AutopilotError> {
        let write = HistoryWrite {
            op: "UpdateItem (known-good rolled away)",
            set: "rolled_away_at = :at",
            time_attr: "rolled_away_at",
            values: &[],
        };
        self.set_if_newer((cluster, service), task_definition, at, write).await
    }

    /// The known-good history of a service, one record per revision. An
    /// unreadable record fails the read: a safety record is never guessed.
    pub async fn known_good_history(self, cluster: &str, service: &str) -> Result<Vec<KnownGood>, AutopilotError> {
        const OP: &str = "Query (known-good)";
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :kg)")
                .expression_attribute_values(":pk", s(keys::service(&self.scope, cluster, service)))
                .expression_attribute_values(":kg", s(KNOWN_GOOD_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err(OP, e))?;
            // The old single slot shares the prefix; it was not a history.
            for item in resp.items().iter().filter(|i| get_s(i, "sk").as_deref() != Some(keys::KNOWN_GOOD)) {
                out.push(known_good(item).ok_or_else(|| {
                    AutopilotError::State(AwsError::answer(
                        "dynamodb",
                        OP,
                        &self.table,
                        format!("unreadable known-good record {:?}", get_s(item, "sk")),
                    ))
                })?);
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Remember a deployment's state change (when it started, how it ended).
    pub async fn record_deployment(
        self,
        cluster: &str,
        service: &str,
        deployment_id: &str,
        state: &str,
        now: i64,
    ) -> Result<(), AutopilotError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(&self.scope, cluster, service)))
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

#[cfg(test)]
mod tests {
    use super::known_good_key;

    #[test]
    fn a_revision_is_keyed_by_family_and_revision_whatever_form_it_is_written_in() {
        let arn = "arn:aws:ecs:us-east-1:111122223333:task-definition/api:42";
        assert_eq!(known_good_key(arn).as_deref(), Some("known-good#api:42"));
        assert_eq!(known_good_key("api:42").as_deref(), Some("known-good#api:42"));
        for bad in ["api", "api:latest", ":4", "arn:aws:ecs:us-east-1:111122223333:task-definition/api"] {
            assert_eq!(known_good_key(bad), None, "{bad}");
        }
    }
}
