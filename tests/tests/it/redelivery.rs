//! Redeliveries while an event's claim is still in progress: Lambda retries an
//! invocation that was killed (or whose body failed and could not give its
//! claim back) within the claim's lease. That retry must come back as a
//! retryable error — answered as a duplicate, the event would be lost.

use autopilot_tests::{SeededService, TestBed, fixture};
use aws_sdk_dynamodb::types::AttributeValue;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

async fn seed_claim(bed: &TestBed, event_id: &str, status: &str, lease_until: i64) {
    let n = |v: i64| AttributeValue::N(v.to_string());
    bed.dynamodb
        .put_item()
        .table_name(&bed.table)
        .item("pk", AttributeValue::S(format!("event#{event_id}")))
        .item("sk", AttributeValue::S("event".into()))
        .item("function", AttributeValue::S("ecs-events".into()))
        .item("status", AttributeValue::S(status.into()))
        .item("token", AttributeValue::S("an-invocation-that-was-killed".into()))
        .item("lease_until", n(lease_until))
        .item("received_at", n(now() - 10))
        .item("expires_at", n(now() + 7 * 86_400))
        .send()
        .await
        .expect("seed claim");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_a_redelivery_finds_the_claim_in_progress_should_answer_a_retryable_error_not_a_duplicate() {
    let bed = TestBed::new("inprogress").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let event = svc.retarget(&fixture("ecs/deployment-failed.json"), "inprog-1", "x");
    seed_claim(&bed, "inprog-1", "processing", now() + 200).await;

    let mut p = bed.start("ecs-events", &[]);
    let (error_type, message) =
        tokio::task::block_in_place(|| p.invoke(&event)).expect_error("a redelivery within the lease");
    assert_eq!(error_type, "InProgress", "{message}");
    assert!(message.contains("inprog-1"), "names the event: {message}");
    assert_eq!(svc.current(&bed).await.0, bad, "nothing acted");
    assert!(bed.notifications().await.is_empty(), "nobody was told");

    // Once the first invocation is done, the same delivery is a duplicate.
    seed_claim(&bed, "inprog-1", "done", 0).await;
    let o = p.outcome(&event);
    assert_eq!(o["notified"], "suppressed:duplicate-event", "{o}");
    assert!(p.is_running());
}

fn s_of(item: &std::collections::HashMap<String, AttributeValue>, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

/// A stopped task's claim is taken by the incident's first write, in one
/// transaction with the record (no claim of its own before the body): a
/// redelivery that meets another invocation's claim in progress writes
/// nothing and is told to come back; once that lease has run out it takes
/// the event over; the incident's last write marks the claim done; a
/// later redelivery is a duplicate that writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_tasks_claim_goes_with_the_incidents_writes_and_a_redelivery_in_progress_writes_nothing() {
    let bed = TestBed::new("claimwrite").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let event = svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "claimw-1", &format!("{:032x}", 7));
    let record_pk = format!("service#{}/{}", svc.cluster, svc.service);
    seed_claim(&bed, "claimw-1", "processing", now() + 200).await;

    let mut p = bed.start("ecs-events", &[]);
    let (error_type, message) =
        tokio::task::block_in_place(|| p.invoke(&event)).expect_error("a redelivery within another's lease");
    assert_eq!(error_type, "InProgress", "{message}");
    assert!(bed.state_item(&record_pk, "incident#open").await.is_none(), "no incident record was written");
    assert!(bed.notifications().await.is_empty(), "nobody was told");
    let claim = bed.state_item("event#claimw-1", "event").await.expect("the claim");
    assert_eq!(s_of(&claim, "token").as_deref(), Some("an-invocation-that-was-killed"), "the claim is untouched");

    // The other invocation died: its lease ran out, and this delivery takes the event over.
    seed_claim(&bed, "claimw-1", "processing", now() - 5).await;
    let o = p.outcome(&event);
    assert!(o["incident"].as_str().is_some_and(|i| i.starts_with("inc-")), "{o}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "one opening alert: {:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    let claim = bed.state_item("event#claimw-1", "event").await.expect("the claim");
    assert_eq!(s_of(&claim, "status").as_deref(), Some("done"), "{claim:?}");
    assert_ne!(s_of(&claim, "token").as_deref(), Some("an-invocation-that-was-killed"), "taken over: {claim:?}");
    assert!(!claim.contains_key("lease_until"), "done claims hold no lease: {claim:?}");
    let summary = s_of(&claim, "summary").unwrap_or_default();
    assert!(summary.contains(o["incident"].as_str().unwrap_or("?")), "the claim names the incident: {summary}");
    let record = bed.state_item(&record_pk, "incident#open").await.expect("the incident record");
    let version = record.get("version").cloned();

    // A later redelivery is a duplicate: nothing written, nothing sent.
    let again = p.outcome(&event);
    assert_eq!(again["notified"], "suppressed:duplicate-event", "{again}");
    assert_eq!(again["incident"], o["incident"], "points at the incident: {again}");
    assert!(bed.notifications().await.is_empty(), "nothing more was sent");
    let record = bed.state_item(&record_pk, "incident#open").await.expect("the incident record");
    assert_eq!(record.get("version").cloned(), version, "the record was not written again");
    assert!(p.is_running());
}
