//! Claims: every event id, and every runbook `request_id`, is processed
//! once. A claim is a lease while processing, then `done` (kept 7 days; a
//! request's claim keeps its first Outcome, to answer repeats with). A
//! delivery that meets a claim still in progress is neither processed nor a
//! duplicate: it is told to come back later (the invocation holding the
//! claim may yet die).

use std::sync::Arc;

use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, Update};

use super::{Conditional, DAY, Item, StateStore, get_n, get_s, keys, n, s, written_by};
use crate::error::AutopilotError;

/// An event's claim as a body that drives one incident holds it
/// (`flows::once_driven`, `flows::once_first_write`): the incident's first
/// write may take the claim in the same transaction (a body with no write
/// of its own before the drive), and its last write (the record saying its
/// message went out) completes it, so that neither costs a call of its own.
#[derive(Debug)]
pub struct ClaimInHand {
    event_id: String,
    token: String,
    function: String,
    now: i64,
    lease_until: i64,
    state: std::sync::Mutex<Hand>,
}

/// Where a [`ClaimInHand`] stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hand {
    /// Not written yet: the first incident write takes it.
    Unclaimed,
    /// Ours, processing.
    Claimed,
    /// Ours, and marked done.
    Done,
    /// Another invocation's, or done before: the body must stop.
    Refused(Claim),
}

tokio::task_local! {
    static IN_HAND: Arc<ClaimInHand>;
}

impl ClaimInHand {
    /// The claim of event `event_id` in state `hand` (claimed already, or to
    /// be taken by the first write with this lease).
    pub fn event(event_id: &str, function: &str, now: i64, lease_until: i64, hand: Hand) -> Arc<Self> {
        Arc::new(Self {
            event_id: event_id.to_string(),
            token: crate::invocation::token(),
            function: function.to_string(),
            now,
            lease_until,
            state: std::sync::Mutex::new(hand),
        })
    }

    /// Run `work` holding this claim: [`ClaimInHand::current`] finds it.
    pub async fn holding<F: std::future::Future>(self: Arc<Self>, work: F) -> F::Output {
        IN_HAND.scope(self, work).await
    }

    /// The claim the current task holds, while a write can still take or complete it.
    pub fn current() -> Option<Arc<Self>> {
        IN_HAND.try_with(Arc::clone).ok().filter(|c| matches!(c.hand(), Hand::Unclaimed | Hand::Claimed))
    }

    pub fn hand(&self) -> Hand {
        self.state.lock().map(|h| h.clone()).unwrap_or(Hand::Unclaimed)
    }

    pub(crate) fn set(&self, hand: Hand) {
        if let Ok(mut h) = self.state.lock() {
            *h = hand;
        }
    }

    /// What a refusal of our claim's write means (the item that refused it).
    pub(crate) fn refused_by(&self, old: Option<&Item>) -> Claim {
        refused_claim(old, &self.token, None, self.now)
    }

    /// The claim's item as [`ClaimStore::claim_until`] writes it: in
    /// progress with our lease, or `done` with a summary.
    fn item(&self, done: Option<&str>) -> Item {
        let (pk, sk) = ClaimKey::Event(&self.event_id).pk_sk();
        let mut item: Item = [
            ("pk", s(pk)),
            ("sk", s(sk)),
            ("function", s(&self.function)),
            ("token", s(&self.token)),
            ("received_at", n(self.now)),
            ("expires_at", n(self.now + 7 * DAY)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let status = match done {
            Some(summary) => {
                let (summary, _) = redacted_for_storage(summary, None);
                item.insert("summary".into(), s(summary.chars().take(500).collect::<String>()));
                "done"
            }
            None => {
                item.insert("lease_until".into(), n(self.lease_until));
                "processing"
            }
        };
        item.insert("status".into(), s(status));
        item
    }

    /// The transaction's half that takes the claim, as
    /// [`ClaimStore::claim_until`] writes it.
    pub(crate) fn claiming(&self, table: &str) -> Result<Put, aws_sdk_dynamodb::error::BuildError> {
        Put::builder()
            .table_name(table)
            .set_item(Some(self.item(None)))
            .condition_expression(TAKEABLE)
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":now", n(self.now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
    }

    /// The transaction's half that marks the claim done with `summary`
    /// (stored redacted, as [`ClaimStore::complete`] does), only while it
    /// is still ours and in progress: a claim taken over after our lease
    /// ended refuses it, and the record is then written alone.
    pub(crate) fn completion(&self, table: &str, summary: &str) -> Result<Update, aws_sdk_dynamodb::error::BuildError> {
        let (summary, _) = redacted_for_storage(summary, None);
        let (pk, sk) = ClaimKey::Event(&self.event_id).pk_sk();
        Update::builder()
            .table_name(table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET #st = :done, summary = :summary REMOVE lease_until")
            .condition_expression("#st = :processing AND #tok = :token")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "token")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":token", s(&self.token))
            .expression_attribute_values(":summary", s(summary.chars().take(500).collect::<String>()))
            .build()
    }
}

impl ClaimStore<'_> {
    /// Take `hand`'s claim with a write of its own (the incident's first
    /// write could not carry it): what the claim came to is its new state.
    pub async fn take(self, hand: &ClaimInHand) -> Result<Hand, AutopilotError> {
        let key = ClaimKey::Event(&hand.event_id);
        let claim = self.claim_until(key, &hand.function, hand.now, hand.lease_until, None, None).await?;
        let next = match claim {
            Claim::New => Hand::Claimed,
            refused => Hand::Refused(refused),
        };
        hand.set(next.clone());
        Ok(next)
    }

    /// Mark `hand`'s event done in one write when no incident write took
    /// its claim (the drive wrote nothing): a duplicate is then told so.
    /// Refused (another invocation claimed it meanwhile): left to it.
    pub async fn record_done(self, hand: &ClaimInHand, summary: &str) -> Result<(), AutopilotError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(hand.item(Some(summary))))
            .condition_expression(TAKEABLE)
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":now", n(crate::time::now()))
            .send()
            .await;
        match self.conditional("PutItem (claim done)", result)? {
            Conditional::Written(_) => hand.set(Hand::Done),
            Conditional::Refused(_) => {}
        }
        Ok(())
    }
}

/// A claim may be taken when there is none, or when its holder's lease ran out.
const TAKEABLE: &str = "attribute_not_exists(pk) OR (#st = :processing AND lease_until < :now)";

/// What is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKey<'a> {
    /// One event id (EventBridge, SNS, alarm transitions).
    Event(&'a str),
    /// One runbook request's `request_id`.
    Request(&'a str),
    /// One notice that goes out once whatever events announce it (a
    /// pipeline approval waiting, per execution and action).
    Notice(&'a str),
}

impl ClaimKey<'_> {
    fn pk_sk(self) -> (String, &'static str) {
        match self {
            Self::Event(id) => (keys::event(id), keys::EVENT),
            Self::Request(id) => (keys::request(id), keys::REQUEST),
            Self::Notice(id) => (keys::notice(id), keys::NOTICE),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First delivery (or a retry after a crashed attempt's lease expired): process it.
    New,
    /// Already processed; the first Outcome (JSON) when it was kept.
    Duplicate { outcome: Option<String> },
    /// Another invocation holds the claim, its lease running until `until`
    /// (epoch seconds): it may still be processing, or may have died.
    InProgress { until: i64 },
    /// The key was first claimed for a different payload (its hash).
    Conflict { first_hash: String },
}

/// What a refused claim means (pure): `old` is the item that refused it,
/// `token` the one our write carried, `payload_hash` ours if we gave one.
fn refused_claim(old: Option<&Item>, token: &str, payload_hash: Option<&str>, now: i64) -> Claim {
    let Some(item) = old else {
        // Refused, but the item is not there to say why (it changed meanwhile): the retry will see.
        return Claim::InProgress { until: now };
    };
    if let (Some(ours), Some(first)) = (payload_hash, get_s(item, "payload_hash"))
        && ours != first
    {
        return Claim::Conflict { first_hash: first };
    }
    if get_s(item, "status").as_deref() == Some("done") {
        return Claim::Duplicate { outcome: get_s(item, "outcome") };
    }
    if written_by(old, "token", token) {
        // Our own claim: the SDK retried a write whose response was lost.
        return Claim::New;
    }
    Claim::InProgress { until: get_n(item, "lease_until").unwrap_or(now) }
}

/// A kept Outcome stays well inside DynamoDB's 400 KB item.
const OUTCOME_MAX_BYTES: usize = 300_000;

/// One processing per event, per runbook request, per notice. A typed view of the one state table.
#[derive(Clone, Copy)]
pub struct ClaimStore<'a> {
    state: &'a StateStore,
}

impl std::ops::Deref for ClaimStore<'_> {
    type Target = StateStore;

    fn deref(&self) -> &StateStore {
        self.state
    }
}

impl StateStore {
    pub fn claims(&self) -> ClaimStore<'_> {
        ClaimStore { state: self }
    }
}

impl ClaimStore<'_> {
    /// Claim one delivery of an event. EventBridge delivers at least once;
    /// only the first claim (or one whose lease expired) processes it. The
    /// lease (`lease_until`, epoch seconds) must outlast the claimant
    /// ([`crate::invocation::lease_until`]): a crashed invocation's claim
    /// expires so that a later retry can take over, a live one's never does.
    pub async fn claim_event(
        self,
        event_id: &str,
        function: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Claim, AutopilotError> {
        self.claim(ClaimKey::Event(event_id), function, now, lease_until, None).await
    }

    /// Claim `key`, like [`StateStore::claim_event`]. With `payload_hash`,
    /// the key is bound to that payload: a different one is a conflict, even
    /// after the first claim's lease expired.
    pub async fn claim(
        self,
        key: ClaimKey<'_>,
        function: &str,
        now: i64,
        lease_until: i64,
        payload_hash: Option<&str>,
    ) -> Result<Claim, AutopilotError> {
        self.claim_until(key, function, now, lease_until, payload_hash, None).await
    }

    /// Like [`StateStore::claim`], for a key that is only held for a while
    /// (a runbook request id derived from its payload): a claim done before
    /// `reuse_after` answers repeats; from then on the key is claimed anew.
    pub async fn claim_until(
        self,
        key: ClaimKey<'_>,
        function: &str,
        now: i64,
        lease_until: i64,
        payload_hash: Option<&str>,
        reuse_after: Option<i64>,
    ) -> Result<Claim, AutopilotError> {
        let token = crate::invocation::token();
        let (pk, sk) = key.pk_sk();
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("function", s(function))
            .item("token", s(&token))
            .item("status", s("processing"))
            .item("lease_until", n(lease_until))
            .item("received_at", n(now))
            .item("expires_at", n(now + 7 * DAY))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let mut condition = match payload_hash {
            None => TAKEABLE.to_string(),
            Some(hash) => {
                req = req.item("payload_hash", s(hash)).expression_attribute_values(":hash", s(hash));
                "attribute_not_exists(pk) OR (#st = :processing AND lease_until < :now AND payload_hash = :hash)"
                    .to_string()
            }
        };
        if let Some(until) = reuse_after {
            // A done claim whose window is over is claimed anew (a new request with the same payload).
            req = req.item("reuse_after", n(until)).expression_attribute_values(":done", s("done"));
            condition.push_str(" OR (#st = :done AND reuse_after < :now)");
        }
        req = req.condition_expression(condition);
        let result = req.send().await;
        Ok(match self.conditional("PutItem (claim)", result)? {
            Conditional::Written(_) => Claim::New,
            Conditional::Refused(old) => refused_claim(old.as_ref(), &token, payload_hash, now),
        })
    }

    /// Mark a claimed event done, with what was decided.
    pub async fn complete_event(self, event_id: &str, summary: &str) -> Result<(), AutopilotError> {
        self.complete(ClaimKey::Event(event_id), summary, None).await
    }

    /// Mark a claim done, with what was decided and, to answer repeats
    /// with, the Outcome (JSON) when given.
    /// The state table is a channel like any other: the summary and the
    /// Outcome are stored redacted, as the reply is (the same fields).
    pub async fn complete(self, key: ClaimKey<'_>, summary: &str, outcome: Option<&str>) -> Result<(), AutopilotError> {
        let (summary, outcome) = redacted_for_storage(summary, outcome);
        let (summary, outcome) = (summary.as_str(), outcome.as_deref());
        let (pk, sk) = key.pk_sk();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":summary", s(summary.chars().take(500).collect::<String>()));
        req = match outcome {
            Some(json) if json.len() <= OUTCOME_MAX_BYTES => req
                .update_expression("SET #st = :done, summary = :summary, outcome = :outcome REMOVE lease_until")
                .expression_attribute_values(":outcome", s(json)),
            _ => req.update_expression("SET #st = :done, summary = :summary REMOVE lease_until"),
        };
        req.send().await.map(|_| ()).map_err(|e| self.err("UpdateItem (complete claim)", e))
    }

    /// Give our claim back after a failure, so that Lambda's retry processes
    /// it (never another invocation's claim that took over an expired lease).
    pub async fn release_event(self, event_id: &str) -> Result<(), AutopilotError> {
        self.release(ClaimKey::Event(event_id)).await
    }

    /// Give our claim of `key` back (see [`StateStore::release_event`]).
    pub async fn release(self, key: ClaimKey<'_>) -> Result<(), AutopilotError> {
        let (pk, sk) = key.pk_sk();
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("#st = :processing AND #tok = :token")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#tok", "token")
            .expression_attribute_values(":processing", s("processing"))
            .expression_attribute_values(":token", s(crate::invocation::token()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.err("DeleteItem (release claim)", e))
    }
}

/// `summary` and the Outcome JSON with every secret redacted: the
/// Outcome's summary, action details and details, as the reply redacts them.
fn redacted_for_storage(summary: &str, outcome: Option<&str>) -> (String, Option<String>) {
    let r = crate::telemetry::redactor();
    let outcome = outcome.map(|json| match serde_json::from_str::<serde_json::Value>(json) {
        Ok(mut v) => {
            if let Some(t) = v.get("summary").and_then(|t| t.as_str()).map(|t| r.text(t)) {
                v["summary"] = serde_json::Value::String(t);
            }
            for a in v.get_mut("actions").and_then(|a| a.as_array_mut()).into_iter().flatten() {
                if let Some(t) = a.get("detail").and_then(|t| t.as_str()).map(|t| r.text(t)) {
                    a["detail"] = serde_json::Value::String(t);
                }
            }
            if let Some(d) = v.get_mut("details") {
                r.json(d);
            }
            v.to_string()
        }
        Err(_) => r.text(json),
    });
    (r.text(summary), outcome)
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
            (Some(item(&[("status", "done"), ("token", "req-other")], None)), Claim::Duplicate { outcome: None }),
            (
                Some(item(&[("status", "done"), ("outcome", "{\"kind\":\"runbook\"}")], None)),
                Claim::Duplicate { outcome: Some("{\"kind\":\"runbook\"}".into()) },
            ),
            (
                Some(item(&[("status", "processing"), ("token", "req-other")], Some(now + 90))),
                Claim::InProgress { until: now + 90 },
            ),
            (Some(item(&[("status", "processing")], None)), Claim::InProgress { until: now }),
            (Some(item(&[], None)), Claim::InProgress { until: now }),
            (None, Claim::InProgress { until: now }),
        ];
        for (old, expected) in cases {
            assert_eq!(refused_claim(old.as_ref(), "req-mine", None, now), expected, "{old:?}");
        }
    }

    #[test]
    fn when_the_refusing_claim_bears_our_token_it_should_be_ours() {
        let now = 1_800_000_000;
        let ours = item(&[("status", "processing"), ("token", "req-mine")], Some(now + 90));
        assert_eq!(refused_claim(Some(&ours), "req-mine", None, now), Claim::New, "a lost response, retried");
        let done = item(&[("status", "done"), ("token", "req-mine")], None);
        assert_eq!(
            refused_claim(Some(&done), "req-mine", None, now),
            Claim::Duplicate { outcome: None },
            "done is done, whoever did it"
        );
    }

    #[test]
    fn when_a_request_id_was_first_used_for_another_payload_it_should_be_a_conflict() {
        let now = 1_800_000_000;
        let first =
            |status: &str| item(&[("status", status), ("payload_hash", "aaaa"), ("token", "req-1")], Some(now + 9));
        for status in ["done", "processing"] {
            assert_eq!(
                refused_claim(Some(&first(status)), "req-2", Some("bbbb"), now),
                Claim::Conflict { first_hash: "aaaa".into() },
                "{status}"
            );
        }
        assert_eq!(
            refused_claim(Some(&first("processing")), "req-2", Some("aaaa"), now),
            Claim::InProgress { until: now + 9 }
        );
        assert_eq!(refused_claim(Some(&first("done")), "req-2", Some("aaaa"), now), Claim::Duplicate { outcome: None });
    }

    #[test]
    fn a_claim_stores_its_summary_and_outcome_redacted() {
        let outcome = r#"{"summary":"exited: password=hunter2x9","actions":[{"action":"rollback","status":"executed","detail":"token ghp_I14zGtSnovm14TUOizwd1iaeOV4qBkdfQ1y3"}],"incident":"inc-1"}"#;
        let (summary, kept) = redacted_for_storage("exited: login password=hunter2x9 ok", Some(outcome));
        let kept = kept.expect("kept");
        for text in [&summary, &kept] {
            assert!(!text.contains("hunter2x9") && !text.contains("ghp_I14z"), "{text}");
        }
        assert!(kept.contains(r#""incident":"inc-1""#), "{kept}");
    }
}
