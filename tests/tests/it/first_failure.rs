//! Seconds to recover (issue 21, item 4): a stopped task whose reason proves
//! its revision broken — the image does not exist, it was built for another
//! CPU architecture, a secret it names does not exist — rolls a fresh
//! release back on the *first* failed task, ahead of diagnosis and
//! evidence, through the one engine; a storm of such stops runs the engine
//! once; a stop that proves nothing waits for the crash-loop rule; a first
//! deployment (nothing to return to) is named as such in the alert. The
//! real ecs-events binary against the local server.

use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::Value;

fn task_id(n: u32) -> String {
    format!("{:032x}", 0xf1f1_0000_u64 + u64::from(n))
}

/// A stopped-task fixture retargeted at `svc`, its task of `revision`.
fn stop_of(svc: &SeededService, file: &str, event_id: &str, n: u32, revision: &str) -> Value {
    let mut v = svc.retarget(&fixture(file), event_id, &task_id(n));
    v["detail"]["taskDefinitionArn"] = Value::from(revision);
    v
}

/// The AWS calls the binary logged, in order, up to its first Outcome.
fn calls_of_first_invocation(stdout: &[String]) -> Vec<String> {
    let mut calls = Vec::new();
    for v in stdout.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        if v["message"] == "aws call" {
            calls.push(format!("{}.{}", v["service"].as_str().unwrap_or("?"), v["operation"].as_str().unwrap_or("?")));
        } else if v["decision"] == "outcome" {
            break;
        }
    }
    calls
}

fn rollbacks(ledger: &[(String, String, String)]) -> Vec<&(String, String, String)> {
    ledger.iter().filter(|(action, ..)| action == "rollback").collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn definite_failures_roll_a_fresh_release_back_on_the_first_failed_task_before_diagnosis() {
    let bed = TestBed::new("first-fail").await;
    // (service, fixture, what it proves)
    let cases = [
        ("img", "ecs/task-stopped-image-pull.json", "image-pull"),
        ("arch", "ecs/task-stopped-platform-mismatch-manifest.json", "platform-mismatch"),
        ("secret", "ecs/task-stopped-secret-not-found.json", "secrets"),
    ];
    for (name, file, cause) in cases {
        let svc = SeededService::create(&bed, name, 2).await;
        let good = svc.task_definition_arn.clone();
        let (bad, _deployment) = svc.release(&bed, "v9-broken").await;
        let mut p = bed.start("ecs-events", &[("RUST_LOG", "info,aws_calls=debug")]);
        let o = p.outcome(&stop_of(&svc, file, &format!("{name}-1"), 1, &bad));
        assert_eq!(o["cause"], cause, "{name}: {o}");
        let rollback = o["actions"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["action"] == "rollback"))
            .unwrap_or_else(|| panic!("{name}: no rollback on the first definite failure: {o}"));
        assert_eq!(rollback["status"], "executed", "{name}: {o}");
        assert_eq!(svc.current(&bed).await.0, good, "{name}: the service runs the previous revision again");

        // The mutating call comes before the reads of diagnosis, the evidence
        // bundle and the alert (the engine's own pre-action state is written
        // concurrently with the call, never ahead of it).
        let calls = calls_of_first_invocation(&p.stdout());
        let at = |op: &str| calls.iter().position(|c| c == op);
        let update = at("ECS.UpdateService").unwrap_or_else(|| panic!("{name}: no UpdateService in {calls:?}"));
        for later in ["ECS.ListTasks", "CloudWatch.GetMetricData", "CloudWatch Logs.GetLogEvents", "SNS.Publish"] {
            let i = at(later).unwrap_or_else(|| panic!("{name}: no {later} in {calls:?}"));
            assert!(update < i, "{name}: {later} (call {i}) before UpdateService (call {update}): {calls:?}");
        }
        let bundle = calls.iter().rposition(|c| c == "S3.PutObject").expect("the evidence bundle");
        assert!(update < bundle, "{name}: the evidence bundle before UpdateService: {calls:?}");

        // The storm that follows: each further stop of the bad revision joins; the engine ran once.
        for n in 2..=4 {
            let again = p.outcome(&stop_of(&svc, file, &format!("{name}-{n}"), n, &bad));
            assert_eq!(again["incident"], o["incident"], "{name}: {again}");
        }
        let ledger = svc.ledger(&bed).await;
        assert_eq!(rollbacks(&ledger).len(), 1, "{name}: one engine run for the storm: {ledger:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_that_proves_nothing_about_the_revision_is_left_to_the_diagnosis() {
    let bed = TestBed::new("first-none").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let (bad, _) = svc.release(&bed, "v9").await;
    let mut p = bed.start("ecs-events", &[("RUST_LOG", "info,aws_calls=debug")]);
    // The execution role may not read the secret: the previous revision has the same role.
    let o = p.outcome(&stop_of(&svc, "ecs/task-stopped-secrets.json", "none-1", 1, &bad));
    assert_eq!(o["cause"], "secrets", "{o}");
    let stdout = p.stdout();
    let definite: Vec<Value> = stdout
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["decision"] == "definite-failure")
        .collect();
    assert_eq!(definite.len(), 1, "one decision line");
    assert_eq!(definite[0]["definite"], "no", "{}", definite[0]);
    // No engine run ahead of diagnosis: whatever the crash-loop rule decides
    // (the local server's service runs no task: "service down") comes after
    // the diagnosis' reads.
    let calls = calls_of_first_invocation(&stdout);
    let at = |op: &str| calls.iter().position(|c| c == op);
    let listed = at("ECS.ListTasks").unwrap_or_else(|| panic!("diagnosed: {calls:?}"));
    if let Some(update) = at("ECS.UpdateService") {
        assert!(listed < update, "acted before diagnosing: {calls:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_deployment_is_named_in_the_alert_as_one_that_cannot_be_rolled_back() {
    let bed = TestBed::new("first-deploy").await;
    let svc = SeededService::create(&bed, "fresh", 1).await;
    let only = svc.task_definition_arn.clone();
    let mut p = bed.start("ecs-events", &[]);
    let o = p.outcome(&stop_of(&svc, "ecs/task-stopped-image-pull.json", "fd-1", 1, &only));
    let rollback = o["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["action"] == "rollback"))
        .unwrap_or_else(|| panic!("the engine was asked: {o}"));
    assert_eq!(rollback["status"], "skipped", "{o}");
    let detail = rollback["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("is the service's first") && detail.contains("cannot be rolled back"), "{detail}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "one alert");
    let alert = &notes[0].message;
    let deployment = svc.primary_deployment_id(&bed).await.expect("the service's deployment");
    assert!(
        alert.contains(&format!("deployment {deployment} is the service's first")),
        "the alert names the deployment that cannot be rolled back:\n{alert}"
    );
    assert_eq!(svc.current(&bed).await.0, only, "nothing changed");
}
