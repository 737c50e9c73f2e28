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
