//! One read of what a service's incident and its action both consult: the
//! known-good history, the action ledger and the pipeline deployment links.
//! Their sort keys are adjacent (`known-good#…` < `ledger#…` < `lock` <
//! `pipeline-deploy#…`), so a single consistent Query returns all three;
//! the diagnosis, the alert's announcements and the engine's planning share
//! it instead of reading each on its own.
//!
//! The engine plans on it only while it is fresh ([`ServiceFacts::fresh_at`])
//! and reads the ledger and the hold again under its lock before acting.

use super::actions::ledger_entry;
use super::deployments::{KNOWN_GOOD_PREFIX, known_good};
use super::pipelines::link_from;
use super::{Item, StateStore, get_s, keys, s};
use crate::adapters::aws_error;
use crate::error::{AutopilotError, AwsError};
use crate::pipeline::DeployLink;
use crate::snapshot::{KnownGood, LedgerEntry};

/// How long a read serves the engine's planning in the invocation that made it.
pub const FACTS_MAX_AGE_SECONDS: i64 = 10;

/// Whether what was read at `read_at` may still stand in for a fresh read at `now`.
pub fn fresh(read_at: i64, now: i64) -> bool {
    (read_at..=read_at + FACTS_MAX_AGE_SECONDS).contains(&now)
}

/// A service's known-good history, ledger and pipeline links as one Query
/// read them at `read_at`. A damaged known-good or ledger item makes that
/// record unreadable (a safety record is never guessed); the others stand.
/// A Query that failed makes all three unreadable.
#[derive(Debug, Clone)]
pub struct ServiceFacts {
    pub read_at: i64,
    known_good: Result<Vec<KnownGood>, AwsError>,
    /// Every ledger entry the table still holds, oldest first.
    ledger: Result<Vec<LedgerEntry>, AwsError>,
    pipeline_deploys: Result<Vec<DeployLink>, AwsError>,
    /// The Query itself failed: nothing stands in for a read.
    failed: bool,
}

impl ServiceFacts {
    /// Whether the read may still stand in for a fresh one at `now` (a
    /// failed read never does).
    pub fn fresh_at(&self, now: i64) -> bool {
        !self.failed && fresh(self.read_at, now)
    }

    /// The Query failed: every record is unreadable, and reading again may help.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The pipeline deployment links, as `PipelineStore::pipeline_deploys` returns them.
    pub fn pipeline_deploys(&self) -> Result<&[DeployLink], AutopilotError> {
        self.pipeline_deploys.as_deref().map_err(|e| AutopilotError::State(e.clone()))
    }

    /// The ledger entries at or after `since`, as `ActionStore::ledger_since` returns them.
    pub fn ledger_since(&self, since: i64) -> Result<Vec<LedgerEntry>, AutopilotError> {
        match &self.ledger {
            Ok(l) => Ok(l.iter().filter(|e| e.at >= since).cloned().collect()),
            Err(e) => Err(AutopilotError::State(e.clone())),
        }
    }

    /// The known-good history, as `DeploymentStore::known_good_history` returns it.
    pub fn known_good(&self) -> Result<Vec<KnownGood>, AutopilotError> {
        self.known_good.clone().map_err(AutopilotError::State)
    }

    /// Sort the items of one Query into the three records (pure).
    fn from_items<'i>(read_at: i64, table: &str, items: impl IntoIterator<Item = &'i Item>) -> Self {
        const OP: &str = "Query (service facts)";
        let unreadable = |what: &str, sk: Option<String>| {
            AwsError::answer("dynamodb", OP, table, format!("unreadable {what} record {sk:?}"))
        };
        let mut facts = Self {
            read_at,
            known_good: Ok(Vec::new()),
            ledger: Ok(Vec::new()),
            pipeline_deploys: Ok(Vec::new()),
            failed: false,
        };
        for item in items {
            let sk = get_s(item, "sk").unwrap_or_default();
            if sk.starts_with(keys::LEDGER) {
                if let Ok(l) = &mut facts.ledger {
                    match ledger_entry(item) {
                        Some(e) => l.push(e),
                        None => facts.ledger = Err(unreadable("ledger", Some(sk))),
                    }
                }
            } else if sk.starts_with(KNOWN_GOOD_PREFIX) {
                // The old single slot shares the prefix; it was not a history.
                if sk == keys::KNOWN_GOOD {
                    continue;
                }
                if let Ok(k) = &mut facts.known_good {
                    match known_good(item) {
                        Some(g) => k.push(g),
                        None => facts.known_good = Err(unreadable("known-good", Some(sk))),
                    }
                }
            } else if sk.starts_with(keys::PIPELINE_DEPLOY)
                && let Ok(links) = &mut facts.pipeline_deploys
            {
                links.extend(link_from(item));
            }
        }
        facts
    }

    /// Nothing read: every record unreadable for `why`.
    fn unread(read_at: i64, why: AwsError) -> Self {
        Self {
            read_at,
            known_good: Err(why.clone()),
            ledger: Err(why.clone()),
            pipeline_deploys: Err(why),
            failed: true,
        }
    }
}

impl StateStore {
    /// The service's known-good history, ledger and pipeline links: one
    /// consistent Query over their adjacent sort keys (more pages only past 1 MB).
    pub async fn service_facts(&self, cluster: &str, service: &str) -> ServiceFacts {
        let read_at = crate::time::now();
        let mut items: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(keys::service(&self.scope, cluster, service)))
                .expression_attribute_values(":from", s(KNOWN_GOOD_PREFIX))
                .expression_attribute_values(":to", s(format!("{}~", keys::PIPELINE_DEPLOY)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    return ServiceFacts::unread(
                        read_at,
                        aws_error("dynamodb", "Query (service facts)", &self.table, &e),
                    );
                }
            };
            items.extend(resp.items().iter().cloned());
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return ServiceFacts::from_items(read_at, &self.table, &items),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }
    fn st(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn num(v: i64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }
    fn ledger(at: i64, status: &str) -> Item {
        item(&[
            ("sk", st(&format!("ledger#{}#rollback#ab", super::super::rfc3339(at)))),
            ("at", num(at)),
            ("action", st("rollback")),
            ("status", st(status)),
        ])
    }

    #[test]
    fn the_three_records_are_sorted_out_of_one_read_and_the_lock_and_old_slot_are_not_history() {
        let items = vec![
            item(&[("sk", st("known-good#latest")), ("task_definition", st("api:1"))]),
            item(&[("sk", st("known-good#api:3")), ("task_definition", st("api:3")), ("completed_at", num(50))]),
            ledger(100, "executed"),
            ledger(200, "skipped"),
            item(&[("sk", st("lock")), ("owner", st("someone"))]),
        ];
        let facts = ServiceFacts::from_items(300, "t", &items);
        let kg = facts.known_good().expect("known-good");
        assert_eq!(kg.len(), 1);
        assert_eq!(kg[0].task_definition, "api:3");
        assert_eq!(facts.ledger_since(0).expect("ledger").len(), 2);
        assert_eq!(facts.ledger_since(150).expect("ledger").len(), 1, "entries before `since` are left out");
        assert_eq!(facts.ledger_since(200).expect("ledger").len(), 1, "`since` itself is included");
        assert!(facts.pipeline_deploys().expect("links").is_empty());
    }

    #[test]
    fn a_damaged_safety_record_makes_that_record_unreadable_not_empty() {
        let bad_ledger = item(&[("sk", st("ledger#2026-12-06T00:00:00+00:00#x#1")), ("at", num(5))]);
        let bad_kg = item(&[("sk", st("known-good#api:2"))]);
        let facts = ServiceFacts::from_items(10, "t", &[ledger(1, "executed"), bad_ledger]);
        assert!(facts.ledger_since(0).is_err(), "a damaged entry is never read as no action");
        assert!(facts.known_good().is_ok());
        let facts = ServiceFacts::from_items(10, "t", &[bad_kg, ledger(1, "executed")]);
        assert!(facts.known_good().is_err());
        assert_eq!(facts.ledger_since(0).expect("the ledger stands").len(), 1);
    }

    #[test]
    fn a_read_stands_in_for_a_fresh_one_only_briefly_and_never_from_the_future() {
        let facts = ServiceFacts::from_items(1000, "t", &[]);
        assert!(facts.fresh_at(1000));
        assert!(facts.fresh_at(1000 + FACTS_MAX_AGE_SECONDS));
        assert!(!facts.fresh_at(1001 + FACTS_MAX_AGE_SECONDS));
        assert!(!facts.fresh_at(999));
    }
}
