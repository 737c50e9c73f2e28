//! Lost responses: a conditional write whose first attempt DynamoDB applied
//! but whose response never arrived (HTTP 500 here) is retried by the SDK;
//! the retry then fails its own condition, and DynamoDB's
//! ConditionalCheckFailedException carries the item the first attempt wrote.
//! Such a write is ours — not "another invocation won".

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use shared::adapters::state::{Claim, Incident, LockOutcome, StateStore};
use shared::lifecycle::{Alert, Subject};
use shared::outcome::{Cause, Severity};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Item = HashMap<String, AttributeValue>;
type Kept = Arc<Mutex<Option<Item>>>;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn sk_of(item: Option<&Item>) -> Option<&str> {
    item.and_then(|i| i.get("sk")).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn store(rules: &[&Rule]) -> StateStore {
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules, |b| b
        .retry_config(RetryConfig::standard().with_max_attempts(3)));
    StateStore::new(client, "state")
}

fn ccf(item: Option<Item>) -> ConditionalCheckFailedException {
    // As DynamoDB answers it: the code in the error's metadata, the item alongside.
    let meta = aws_sdk_dynamodb::error::ErrorMetadata::builder()
        .code("ConditionalCheckFailedException")
        .message("The conditional request failed")
        .build();
    let mut e = ConditionalCheckFailedException::builder().message("The conditional request failed").meta(meta);
    for (k, v) in item.unwrap_or_default() {
        e = e.item(k, v);
    }
    e.build()
}

/// PutItem on `sk`: the first attempt is applied (its item kept) and answered
/// 500; the SDK's retry fails its condition on that very item.
fn put_applied_then_lost(sk: &'static str) -> Rule {
    let kept: Kept = Arc::default();
    let k = kept.clone();
    mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |input| {
            let hit = sk_of(input.item()) == Some(sk);
            if hit {
                *k.lock().unwrap() = input.item().cloned();
            }
            hit
        })
        .sequence()
        .http_status(500, None)
        .error(move || PutItemError::ConditionalCheckFailedException(ccf(kept.lock().unwrap().clone())))
        .build()
}

/// PutItem on `sk` refused: the stored item is `item` (another invocation's).
fn put_refused(sk: &'static str, item: Item) -> Rule {
    mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |input| sk_of(input.item()) == Some(sk))
        .then_error(move || PutItemError::ConditionalCheckFailedException(ccf(Some(item.clone()))))
}

fn item(pairs: &[(&str, &str)]) -> Item {
    pairs.iter().map(|(k, v)| (k.to_string(), s(v))).collect()
}

fn open_incident_item(extra: &[(&str, &str)]) -> Item {
    let mut i = item(&[
        ("pk", "service#prod/api"),
        ("sk", "incident#open"),
        ("incident_id", "inc-20261120-140211-abc123"),
        ("cause", "out-of-memory"),
        ("severity", "SEV2"),
        ("summary", "crash loop - out of memory"),
        ("source", "ecs"),
    ]);
    i.insert("opened_at".into(), AttributeValue::N("1795000000".into()));
    i.extend(item(extra));
    i
}

fn incident() -> Incident {
    Incident {
        id: "inc-20261120-140211-abc123".into(),
        subject: Subject::service("prod", "api"),
        cause: Cause::OutOfMemory,
        severity: Severity::Sev2,
        summary: "crash loop - out of memory".into(),
        opened_at: 1_795_000_000,
        last_event_at: 1_795_000_000,
        alert: Alert::Pending { by: "req-lost-3".into(), until: 1_795_000_330 },
        last_notified_at: None,
        failed_tasks: Vec::new(),
        events: 3,
        evidence: None,
        message_id: None,
        notes: Vec::new(),
        source: "ecs".into(),
        announced: Vec::new(),
        escalations: 0,
        impact: Vec::new(),
        team: None,
    }
}

const NOW: i64 = 1_795_000_100;

#[tokio::test]
async fn when_the_event_claims_response_is_lost_the_retry_should_recognise_its_own_claim() {
    let put = put_applied_then_lost("event");
    let state = store(&[&put]);
    let claim = state.claim_event("ev-lost-1", "ecs-events", NOW, NOW + 330).await.expect("claim");
    assert_eq!(put.num_calls(), 2, "the first attempt and the SDK's retry");
    assert_eq!(claim, Claim::New, "our own claim, not a duplicate");
}

#[tokio::test]
async fn when_the_locks_response_is_lost_the_retry_should_hold_the_lock() {
    let put = put_applied_then_lost("lock");
    // A holder read after a refusal (if any) finds the item the first attempt wrote.
    let get = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
        aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
            .set_item(Some(item(&[("owner", "ecs-events:req-lost-2")])))
            .build()
    });
    let state = store(&[&put, &get]);
    let lock = state.acquire_lock("prod", "api", "ecs-events:req-lost-2", NOW, NOW + 330).await.expect("lock");
    assert_eq!(put.num_calls(), 2);
    assert_eq!(lock, LockOutcome::Acquired);
}

#[tokio::test]
async fn when_opening_an_incident_loses_its_response_the_retry_should_know_it_opened_it() {
    let put = put_applied_then_lost("incident#open");
    let state = store(&[&put]);
    let created = state.create_incident(&incident()).await.expect("create");
    assert_eq!(put.num_calls(), 2);
    assert!(created, "we opened it: the alert is ours to send");
}

#[tokio::test]
async fn when_closing_an_incident_loses_its_response_the_retry_should_get_the_incident_back() {
    // Whatever the close writes first on the open item is applied, then answered 500;
    // the retry fails its condition on the item as that first attempt left it.
    let update_kept: Kept = Arc::default();
    let k = update_kept.clone();
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(move |input| {
            let token = input.expression_attribute_values().and_then(|v| v.get(":token")).cloned();
            let mut after = open_incident_item(&[]);
            if let Some(t) = token {
                after.insert("closing_by".into(), t);
            }
            *k.lock().unwrap() = Some(after);
            true
        })
        .sequence()
        .http_status(500, None)
        .error(move || UpdateItemError::ConditionalCheckFailedException(ccf(update_kept.lock().unwrap().clone())))
        .build();
    // The open item is gone after a delete's first attempt: its retry fails with no item.
    let delete = mock!(aws_sdk_dynamodb::Client::delete_item)
        .sequence()
        .http_status(500, None)
        .error(|| DeleteItemError::ConditionalCheckFailedException(ccf(None)))
        .build();
    let history = mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build());
    let state = store(&[&update, &delete, &history]);
    let closed = state
        .close_incident(&Subject::service("prod", "api"), "inc-20261120-140211-abc123", "SERVICE_STEADY_STATE", NOW)
        .await
        .expect("close");
    let closed = closed.expect("we closed it: the resolution is ours to send");
    assert_eq!(closed.id, "inc-20261120-140211-abc123");
    assert_eq!(closed.cause, Cause::OutOfMemory);
}

#[tokio::test]
async fn when_the_refused_items_token_is_another_invocations_it_should_stay_theirs() {
    let claim =
        put_refused("event", item(&[("status", "done"), ("token", "someone-else"), ("function", "ecs-events")]));
    let lock = put_refused("lock", {
        let mut i = item(&[("owner", "ecs-events:someone-else")]);
        i.insert("lease_until".into(), AttributeValue::N((NOW + 300).to_string()));
        i
    });
    let open = put_refused("incident#open", open_incident_item(&[("created_by", "someone-else")]));
    let get = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
        aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
            .set_item(Some(item(&[("owner", "ecs-events:someone-else")])))
            .build()
    });
    let state = store(&[&claim, &lock, &open, &get]);
    assert!(matches!(state.claim_event("ev-2", "ecs-events", NOW, NOW + 330).await.unwrap(), Claim::Duplicate { .. }));
    assert_eq!(
        state.acquire_lock("prod", "api", "ecs-events:me", NOW, NOW + 330).await.unwrap(),
        LockOutcome::HeldBy("ecs-events:someone-else".into())
    );
    assert!(!state.create_incident(&incident()).await.unwrap());
}
