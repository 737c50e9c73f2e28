//! Lost responses: a conditional write whose first attempt DynamoDB applied
//! but whose response never arrived (HTTP 500 here) is retried by the SDK;
//! the retry then fails its own condition, and DynamoDB's
//! ConditionalCheckFailedException carries the item the first attempt wrote.
//! Such a write is ours — not "another invocation won".

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use shared::adapters::state::{Claim, LockOutcome, StateStore, Write};
use shared::incident::Record;
use shared::incident::Subject;
use shared::incident::machine::{Ctx, Input, Policy, ProblemKey, ProblemSignal, step};
use shared::outcome::{Cause, Kind, Severity};
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

/// An incident record as the machine opens it (version 0).
fn incident() -> Record {
    let subject = Subject::service("prod", "api");
    let policy = Policy {
        window_seconds: 3600,
        update_interval_seconds: 900,
        escalate_after_seconds: 900,
        crash_loop_threshold: 3,
    };
    let ctx = Ctx {
        subject: &subject,
        now: 1_795_000_000,
        token: "req-lost-3",
        lease_until: 1_795_000_330,
        salt: "salt",
        policy: &policy,
    };
    let signal = ProblemSignal {
        key: ProblemKey::Tasks,
        label: "task failed".into(),
        kind: Kind::EcsTaskStopped,
        at: 1_795_000_000,
        severity: Severity::Sev2,
        cause: Some(Cause::OutOfMemory),
        revision: None,
        task: None,
        news: false,
        note: None,
    };
    step(None, &Input::Problem(signal), &ctx).record.expect("opened")
}

/// The stored item of `record`, written by `writer` (as the store writes it).
fn incident_item(record: &Record, writer: &str) -> Item {
    let mut i = item(&[("pk", "service#prod/api"), ("sk", "incident#open"), ("writer", writer)]);
    i.insert("record".into(), s(&serde_json::to_string(record).unwrap()));
    i.insert("version".into(), AttributeValue::N(record.version.to_string()));
    i
}

const NOW: i64 = 1_795_000_100;

#[tokio::test]
async fn when_the_event_claims_response_is_lost_the_retry_should_recognise_its_own_claim() {
    let put = put_applied_then_lost("event");
    let state = store(&[&put]);
    let claim = state.claims().claim_event("ev-lost-1", "ecs-events", NOW, NOW + 330).await.expect("claim");
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
    let lock =
        state.actions().acquire_lock("prod", "api", "ecs-events:req-lost-2", NOW, NOW + 330).await.expect("lock");
    assert_eq!(put.num_calls(), 2);
    assert_eq!(lock, LockOutcome::Acquired);
}

/// Finding 8: every write of the incident record recognises its own retry.
#[tokio::test]
async fn when_an_incident_write_loses_its_response_the_retry_should_know_it_wrote_it() {
    // Opening (no record read) and a later write (version 0 read) alike.
    let opened = incident();
    let mut next = opened.clone();
    next.version = 1;
    next.severity = Severity::Sev1;
    for (read, written) in [(None, &opened), (Some(&opened), &next)] {
        let put = put_applied_then_lost("incident#open");
        let state = store(&[&put]);
        let writer = format!("req-lost-3#{}", written.version);
        let outcome = state.incidents().write(read, written, &writer).await.expect("write");
        assert_eq!(put.num_calls(), 2, "the first attempt and the SDK's retry");
        assert_eq!(outcome, Write::Written, "our own write (version {}), not a conflict", written.version);
    }
}

#[tokio::test]
async fn when_another_writer_wrote_the_same_version_it_is_a_conflict() {
    let opened = incident();
    let mut next = opened.clone();
    next.version = 1;
    let theirs = put_refused("incident#open", incident_item(&next, "someone-else#1"));
    let state = store(&[&theirs]);
    assert_eq!(state.incidents().write(Some(&opened), &next, "me#1").await.unwrap(), Write::Conflict);
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
    let open = put_refused("incident#open", incident_item(&incident(), "someone-else#0"));
    let get = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
        aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder()
            .set_item(Some(item(&[("owner", "ecs-events:someone-else")])))
            .build()
    });
    let state = store(&[&claim, &lock, &open, &get]);
    assert!(matches!(
        state.claims().claim_event("ev-2", "ecs-events", NOW, NOW + 330).await.unwrap(),
        Claim::Duplicate { .. }
    ));
    assert_eq!(
        state.actions().acquire_lock("prod", "api", "ecs-events:me", NOW, NOW + 330).await.unwrap(),
        LockOutcome::HeldBy("ecs-events:someone-else".into())
    );
    assert_eq!(state.incidents().write(None, &incident(), "me#0").await.unwrap(), Write::Conflict);
}
