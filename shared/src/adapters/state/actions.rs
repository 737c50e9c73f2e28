//! Safety records of the action engine: the lease lock per service, the
//! hold left by a failed action, and the ledger of every decision (90 days).

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{Conditional, DAY, Item, StateStore, get_n, get_s, keys, n, rfc3339, s, written_by};
use crate::error::AutopilotError;
use crate::outcome::ActionKind;
pub use crate::snapshot::{LedgerEntry, LedgerStatus};

/// Whether the lock was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    Acquired,
    /// Someone else holds it (their owner label).
    HeldBy(String),
}

/// What a refused lock means (pure): `old` is the lock item that refused it.
fn refused_lock(old: Option<&Item>, owner: &str) -> LockOutcome {
    if written_by(old, "owner", owner) {
        // Our own lock: the SDK retried a write whose response was lost.
        return LockOutcome::Acquired;
    }
    LockOutcome::HeldBy(
        old.and_then(|i| get_s(i, "owner"))
            .unwrap_or_else(|| "another invocation (its lock item was not returned)".into()),
    )
}

/// A stored ledger item; `None` when its action or status is not ours (a
/// damaged record must not be read as "no action").
pub(super) fn ledger_entry(item: &Item) -> Option<LedgerEntry> {
    Some(LedgerEntry {
        at: get_n(item, "at")?,
        action: ActionKind::parse(&get_s(item, "action")?)?,
        status: LedgerStatus::parse(&get_s(item, "status")?)?,
        automatic: item.get("automatic").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        from: get_s(item, "from"),
        to: get_s(item, "to"),
        detail: get_s(item, "detail").unwrap_or_default(),
        key: get_s(item, "sk"),
        announced: item.contains_key("announced_at"),
    })
}

/// The action engine's safety records: the lease lock, the hold, the ledger. A typed view of the one state table.
#[derive(Clone, Copy)]
pub struct ActionStore<'a> {
    state: &'a StateStore,
}

impl std::ops::Deref for ActionStore<'_> {
    type Target = StateStore;

    fn deref(&self) -> &StateStore {
        self.state
    }
}

impl StateStore {
    pub fn actions(&self) -> ActionStore<'_> {
        ActionStore { state: self }
    }
}

impl ActionStore<'_> {
    /// Take the service's lease lock at `now`, until `lease_until` (which
    /// must outlast the holder, [`crate::invocation::lease_until`]). `owner`
    /// names this invocation (its function and token): a refusal by a lock
    /// bearing it is our own lock.
    pub async fn acquire_lock(
        self,
        cluster: &str,
        service: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<LockOutcome, AutopilotError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::service(&self.scope, cluster, service)))
            .item("sk", s(keys::LOCK))
            .item("owner", s(owner))
            .item("acquired_at", n(now))
            .item("lease_until", n(lease_until))
            .item("expires_at", n(lease_until + DAY))
            .condition_expression("attribute_not_exists(pk) OR lease_until < :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match self.conditional("PutItem (lock)", result)? {
            Conditional::Written(_) => LockOutcome::Acquired,
            Conditional::Refused(old) => refused_lock(old.as_ref(), owner),
        })
    }

    pub async fn release_lock(self, cluster: &str, service: &str, owner: &str) -> Result<(), AutopilotError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(&self.scope, cluster, service)))
            .key("sk", s(keys::LOCK))
            .condition_expression("#o = :owner")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        self.conditional("DeleteItem (lock)", result).map(|_| ())
    }

    /// Append one decision to the service's ledger; returns its sort key
    /// (to finish an `executing` entry with [`StateStore::finish_ledger`]).
    pub async fn append_ledger(
        self,
        cluster: &str,
        service: &str,
        entry: &LedgerEntry,
        extra: &[(&str, String)],
    ) -> Result<String, AutopilotError> {
        use sha2::{Digest, Sha256};
        let when = rfc3339(entry.at);
        let digest = Sha256::digest(format!("{entry:?}{extra:?}").as_bytes());
        let key = keys::ledger(&when, entry.action.as_str(), &crate::arn::hex(&digest[..4]));
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::service(&self.scope, cluster, service)))
            .item("sk", s(&key))
            .item("at", n(entry.at))
            .item("action", s(entry.action.as_str()))
            .item("status", s(entry.status.as_str()))
            .item("automatic", AttributeValue::Bool(entry.automatic))
            .item("detail", s(&entry.detail))
            .item("expires_at", n(entry.at + 90 * DAY));
        if let Some(f) = &entry.from {
            req = req.item("from", s(f));
        }
        if let Some(t) = &entry.to {
            req = req.item("to", s(t));
        }
        for (k, v) in extra {
            req = req.item(*k, s(v));
        }
        req.send().await.map(|_| key).map_err(|e| self.err("PutItem (ledger)", e))
    }

    /// Finish an `executing` entry with what became of it. `Ok(false)`: it
    /// was no longer executing (someone verified it meanwhile).
    pub async fn finish_ledger(
        self,
        cluster: &str,
        service: &str,
        key: &str,
        status: LedgerStatus,
        detail: &str,
        now: i64,
    ) -> Result<bool, AutopilotError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(&self.scope, cluster, service)))
            .key("sk", s(key))
            .update_expression("SET #st = :status, detail = :detail, finished_at = :now")
            .condition_expression("#st = :executing")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":detail", s(detail))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":executing", s(LedgerStatus::Executing.as_str()))
            .send()
            .await;
        Ok(self.conditional("UpdateItem (finish ledger)", result)?.written().is_some())
    }

    /// Mark ledger entries as announced by a published message, so that no
    /// later message (of this incident or the subject's next) repeats them.
    /// Records, not decisions: a failed mark is logged (the action may then
    /// be announced once more, never not at all).
    pub async fn mark_ledger_announced(self, cluster: &str, service: &str, entries: &[String], now: i64) {
        for key in entries {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(keys::service(&self.scope, cluster, service)))
                .key("sk", s(key))
                .update_expression("SET announced_at = if_not_exists(announced_at, :now)")
                .condition_expression("attribute_exists(sk)")
                .expression_attribute_values(":now", n(now))
                .send()
                .await;
            if let Err(e) = self.conditional("UpdateItem (ledger announced)", result) {
                tracing::warn!(ledger = %key, error = %e, "ledger entry not marked announced; it may be announced again");
            }
        }
    }

    /// Ledger entries of the service since `since` (epoch seconds), oldest first.
    pub async fn ledger_since(
        self,
        cluster: &str,
        service: &str,
        since: i64,
    ) -> Result<Vec<LedgerEntry>, AutopilotError> {
        let from = rfc3339(since);
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(keys::service(&self.scope, cluster, service)))
                .expression_attribute_values(":from", s(format!("{}{from}", keys::LEDGER)))
                .expression_attribute_values(":to", s(format!("{}~", keys::LEDGER)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.err("Query (ledger)", e))?;
            for item in resp.items() {
                out.push(ledger_entry(item).ok_or_else(|| {
                    AutopilotError::State(crate::error::AwsError::answer(
                        "dynamodb",
                        "Query (ledger)",
                        &self.table,
                        format!("unreadable ledger entry {:?}", get_s(item, "sk")),
                    ))
                })?);
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// The hold left by a failed action, if any: `(since, reason)`.
    pub async fn hold(self, cluster: &str, service: &str) -> Result<Option<(i64, String)>, AutopilotError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(&self.scope, cluster, service)))
            .key("sk", s(keys::HOLD))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.err("GetItem (hold)", e))?;
        Ok(resp.item().map(|i| (get_n(i, "since").unwrap_or_default(), get_s(i, "reason").unwrap_or_default())))
    }

    pub async fn set_hold(self, cluster: &str, service: &str, reason: &str, now: i64) -> Result<(), AutopilotError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::service(&self.scope, cluster, service)))
            .item("sk", s(keys::HOLD))
            .item("since", n(now))
            .item("reason", s(reason))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("PutItem (hold)", e))
    }

    pub async fn clear_hold(self, cluster: &str, service: &str) -> Result<(), AutopilotError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::service(&self.scope, cluster, service)))
            .key("sk", s(keys::HOLD))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("DeleteItem (hold)", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_the_lock_is_refused_it_should_be_ours_only_if_it_bears_our_owner() {
        let lock = |owner: &str| -> Item { [("owner".to_string(), s(owner))].into() };
        let cases = [
            (Some(lock("ecs-events:req-1")), LockOutcome::Acquired),
            (Some(lock("alarm-responder:req-9")), LockOutcome::HeldBy("alarm-responder:req-9".into())),
            (None, LockOutcome::HeldBy("another invocation (its lock item was not returned)".into())),
        ];
        for (old, expected) in cases {
            assert_eq!(refused_lock(old.as_ref(), "ecs-events:req-1"), expected, "{old:?}");
        }
    }
}
