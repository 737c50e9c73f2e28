//! Event claims: every event id is processed once. A claim is a lease while
//! processing, then `done` (kept 7 days). A delivery that meets a claim still
//! in progress is neither processed nor a duplicate: it is told to come back
//! later (the invocation holding the claim may yet die).

use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::{Conditional, DAY, Item, StateStore, get_n, get_s, keys, n, s, written_by};
use crate::error::AutopilotError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First delivery (or a retry after a crashed attempt's lease expired): process it.
    New,
    /// Already processed.
    Duplicate,
    /// Another invocation holds the claim, its lease running until `until`
    /// (epoch seconds): it may still be processing, or may have died.
    InProgress { until: i64 },
}

/// What a refused claim means (pure): `old` is the item that refused it,
/// `token` the one our write carried.
fn refused_claim(old: Option<&Item>, token: &str, now: i64) -> Claim {
    match old {
        Some(item) if get_s(item, "status").as_deref() == Some("done") => Claim::Duplicate,
        // Our own claim: the SDK retried a write whose response was lost.
        Some(_) if written_by(old, "token", token) => Claim::New,
        Some(item) => Claim::InProgress { until: get_n(item, "lease_until").unwrap_or(now) },
        // Refused, but the item is not there to say why (it changed meanwhile): the retry will see.
        None => Claim::InProgress { until: now },
    }
}

impl StateStore {
    /// Claim one delivery of an event. EventBridge delivers at least once;
    /// only the first claim (or one whose lease expired) processes it. The
    /// lease (`lease_until`, epoch seconds) must outlast the claimant
    /// ([`crate::invocation::lease_until`]): a crashed invocation's claim
    /// expires so that a later retry can take over, a live one's never does.
    pub async fn claim_event(
        &self,
        event_id: &str,
        function: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Claim, AutopilotError> {
        let token = crate::invocation::token();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::event(event_id)))
            .item("sk", s(keys::EVENT))
            .item("function", s(function))
            .item("token", s(&token))
            .item("status", s("processing"))
            .item("lease_until", n(lease_until))
            .item("received_at", n(now))
            .item("expires_at", n(now + 7 * DAY))
            .condition_expression("attribute_not_exists(pk) OR (#st = :processing AND lease_until < :now)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match self.conditional("PutItem (claim event)", result)? {
            Conditional::Written(_) => Claim::New,
            Conditional::Refused(old) => refused_claim(old.as_ref(), &token, now),
        })
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

    /// Give our claim back after a failure, so that Lambda's retry processes
    /// it (never another invocation's claim that took over an expired lease).
    pub async fn release_event(&self, event_id: &str) -> Result<(), AutopilotError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::event(event_id)))
            .key("sk", s(keys::EVENT))
            .condition_expression("#st = :processing AND #tok = :token")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "token")
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":token", s(crate::invocation::token()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("DeleteItem (release event)", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)], lease_until: Option<i64>) -> Item {
        let mut i: Item = pairs.iter().map(|(k, v)| (k.to_string(), s(*v))).collect();
        if let Some(l) = lease_until {
            i.insert("lease_until".into(), n(l));
        }
        i
    }

    #[test]
    fn when_a_claim_is_refused_only_a_completed_one_should_be_a_duplicate() {
        let now = 1_800_000_000;
        let cases = [
            (Some(item(&[("status", "done"), ("token", "req-other")], None)), Claim::Duplicate),
            (
                Some(item(&[("status", "processing"), ("token", "req-other")], Some(now + 90))),
                Claim::InProgress { until: now + 90 },
            ),
            (Some(item(&[("status", "processing")], None)), Claim::InProgress { until: now }),
            (Some(item(&[], None)), Claim::InProgress { until: now }),
            (None, Claim::InProgress { until: now }),
        ];
        for (old, expected) in cases {
            assert_eq!(refused_claim(old.as_ref(), "req-mine", now), expected, "{old:?}");
        }
    }

    #[test]
    fn when_the_refusing_claim_bears_our_token_it_should_be_ours() {
        let now = 1_800_000_000;
        let ours = item(&[("status", "processing"), ("token", "req-mine")], Some(now + 90));
        assert_eq!(refused_claim(Some(&ours), "req-mine", now), Claim::New, "a lost response, retried");
        let done = item(&[("status", "done"), ("token", "req-mine")], None);
        assert_eq!(refused_claim(Some(&done), "req-mine", now), Claim::Duplicate, "done is done, whoever did it");
    }
}
