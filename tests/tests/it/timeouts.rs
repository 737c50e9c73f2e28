//! Time bounds: an AWS endpoint that accepts connections and never answers
//! fails the call within the SDK timeouts instead of hanging the function,
//! and the leases an invocation takes outlive it — so a killed invocation's
//! lock and claim still stand when Lambda retries, and nothing acts twice.

use autopilot_tests::{SeededService, TestBed, fixture};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The test Runtime API gives every invocation this long (its deadline).
const TEST_DEADLINE_SECONDS: i64 = 300;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A loopback endpoint that accepts every connection and never answers.
fn hanging_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            open.push(stream);
        }
    });
    url
}

async fn item(bed: &TestBed, pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    bed.state_item(pk, sk).await.unwrap_or_default()
}

fn number(item: &HashMap<String, AttributeValue>, k: &str) -> i64 {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn when_an_aws_endpoint_never_answers_the_call_should_fail_within_the_sdk_timeouts() {
    let bed = TestBed::new("hang").await;
    let hang = hanging_endpoint();
    let mut p = bed.start(
        "runbook",
        &[
            ("AWS_ENDPOINT_URL_ECS", hang.as_str()),
            ("SDK_ATTEMPT_TIMEOUT_SECONDS", "1"),
            ("SDK_OPERATION_TIMEOUT_SECONDS", "2"),
        ],
    );
    let started = Instant::now();
    let id = p.submit(&json!({"action": "health-check", "cluster": "prod", "service": "api"}));
    let answer = tokio::task::block_in_place(|| p.answer(&id, Duration::from_secs(30)));
    let elapsed = started.elapsed();
    let o = answer.expect("an answer, not a hang").expect_response("health-check");
    assert!(elapsed < Duration::from_secs(20), "answered after {elapsed:?}");
    let checks = o["details"]["checks"].as_array().expect("checks").clone();
    let read = checks.iter().find(|c| c["check"] == "read ecs:DescribeServices").expect("the failed read is named");
    assert_eq!(read["ok"], false, "{read}");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_an_invocation_is_killed_mid_rollback_its_leases_should_outlive_it_and_nothing_should_act_twice() {
    let bed = TestBed::new("killed").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let event = svc.retarget(&fixture("ecs/deployment-failed.json"), "killed-1", "x");
    // S3 never answers: the engine is inside its action, holding the lock,
    // waiting for the pre-action evidence, when Lambda kills it.
    let hang = hanging_endpoint();
    let mut first = bed.start("ecs-events", &[("AWS_ENDPOINT_URL_S3", hang.as_str())]);
    let submitted = now();
    first.submit(&event);
    let deadline = Instant::now() + Duration::from_secs(30);
    while svc.current(&bed).await.0 != svc.task_definition_arn {
        assert!(Instant::now() < deadline, "the rollback's UpdateService never went out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();

    let service_pk = format!("service#{}/{}", svc.cluster, svc.service);
    let lock = item(&bed, &service_pk, "lock").await;
    assert!(
        number(&lock, "lease_until") >= submitted + TEST_DEADLINE_SECONDS,
        "the lock outlives its holder's deadline: {lock:?}"
    );
    let claim = item(&bed, "event#killed-1", "event").await;
    assert!(
        number(&claim, "lease_until") >= submitted + TEST_DEADLINE_SECONDS,
        "the claim outlives its holder's deadline: {claim:?}"
    );
    let ledger = svc.ledger(&bed).await;
    assert_eq!(
        ledger.iter().filter(|(a, s, _)| a == "rollback" && s == "executing").count(),
        1,
        "the rollback was recorded before its call: {ledger:?}"
    );

    // Lambda's retry of the killed invocation, within the lease: in progress.
    let mut next = bed.start("ecs-events", &[]);
    let (error_type, message) = tokio::task::block_in_place(|| next.invoke(&event)).expect_error("the retry");
    assert_eq!(error_type, "InProgress", "{message}");
    // Another trigger for the same failure does not act again.
    let mut other = svc.retarget(&fixture("ecs/deployment-failed.json"), "killed-2", "x");
    other["detail"]["deploymentId"] = Value::from("ecs-svc/999");
    let o = next.outcome(&other);
    assert_eq!(o["actions"][0]["status"], "skipped", "{o}");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn, "still the one rollback");
}
