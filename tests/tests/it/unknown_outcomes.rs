//! Mutating calls whose outcome is unknown (issue 19, finding 4): the
//! request reached ECS and was applied, but its answer was lost — a 5xx
//! after sending, a connection reset. The loopback fault proxy forwards the
//! call to the local server (which applies it) and then answers 500 or
//! resets the connection, on every attempt the SDK makes. The engine reads
//! the service back under its lock: executed if it took effect (no hold, the
//! budget and the rolled-away mark count it), failed — and held — only if it
//! did not.

use autopilot_tests::fault_proxy::{Fault, FaultProxy, Rule};
use autopilot_tests::{SeededService, TestBed, fixture};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use std::collections::HashMap;

fn text(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn statuses(items: &[HashMap<String, AttributeValue>], action: &str) -> Vec<String> {
    items.iter().filter(|i| text(i, "action") == action).map(|i| text(i, "status")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn when_update_services_answer_is_lost_after_ecs_applied_it_the_rollback_should_be_executed_not_failed() {
    let bed = TestBed::new("lost-rollback").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let proxy = FaultProxy::start();
    // Every attempt of the first UpdateService reaches the server, which applies it; each answer is a 500.
    proxy.inject(Rule::call("ecs:UpdateService", 1, Fault::StatusAfterForward(500)));
    let url = proxy.url();
    let mut p = bed.start("ecs-events", &[("AWS_ENDPOINT_URL", url.as_str())]);
    let o = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "lost-1", "x"));
    let action = &o["actions"][0];
    assert_eq!(action["action"], "rollback", "{o}");
    assert!(proxy.calls_of("ecs:UpdateService").iter().all(|c| c.fault.is_some()), "every answer was lost");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn, "ECS applied the rollback");
    assert_eq!(action["status"], "executed", "it took effect, so it was executed: {o}");
    let detail = action["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("verified") && detail.contains("took effect"), "{detail}");
    // (The local server runs no tasks, so the service is down and the incident SEV1 on that ground alone.)
    let alerts = bed.notifications().await;
    assert!(alerts.iter().any(|n| n.message.contains("rollback executed")), "announced as executed: {alerts:?}");
    assert!(
        !alerts.iter().any(|n| n.message.contains("action failed") || n.message.contains("FAILED")),
        "an action that took effect is no failure to escalate: {alerts:?}"
    );
    assert!(svc.hold(&bed).await.is_none(), "no hold for an action that took effect");
    let items = svc.ledger_items(&bed).await;
    assert_eq!(statuses(&items, "rollback"), ["executed"], "{items:?}");
    // The rolled-away mark on the known-good history counts it.
    let history = svc.known_good_items(&bed).await;
    assert!(
        history.iter().any(|k| text(k, "task_definition") == bad && k.contains_key("rolled_away_at")),
        "{history:?}"
    );
    // And the budget: the next failed release is not rolled back automatically within 30 minutes.
    proxy.clear_rules();
    svc.deploy_new_revision(&bed, "v2.4.1-also-broken").await;
    let mut again = svc.retarget(&fixture("ecs/deployment-failed.json"), "lost-2", "x");
    again["detail"]["deploymentId"] = Value::from("ecs-svc/999");
    let second = p.outcome(&again);
    assert_eq!(second["actions"][0]["status"], "skipped", "{second}");
    assert!(second["actions"][0]["detail"].as_str().unwrap_or_default().contains("budget exhausted"), "{second}");
    assert!(
        proxy.injected_into("ecs:UpdateService") > 0,
        "the fault aimed at ecs:UpdateService was injected (else this proved nothing)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_connection_resets_after_ecs_applied_a_scale_it_should_be_executed_and_not_escalated() {
    let bed = TestBed::new("lost-scale").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let proxy = FaultProxy::start();
    proxy.inject(Rule::call("ecs:UpdateService", 1, Fault::ResetAfterForward));
    let url = proxy.url();
    let mut p = bed.start("runbook", &[("AWS_ENDPOINT_URL", url.as_str())]);
    let o = p.outcome(&json!({"action": "scale", "cluster": svc.cluster, "service": "api", "desired_count": 4}));
    assert_eq!(svc.current(&bed).await.1, 4, "ECS applied the scale");
    assert!(proxy.calls_of("ecs:UpdateService").iter().all(|c| c.fault.is_some()));
    let action = &o["actions"][0];
    assert_eq!(action["status"], "executed", "{o}");
    assert!(action["detail"].as_str().unwrap_or_default().contains("took effect"), "{o}");
    assert_ne!(o["severity"], "SEV1", "{o}");
    assert!(svc.hold(&bed).await.is_none());
    assert_eq!(statuses(&svc.ledger_items(&bed).await, "scale"), ["executed"]);
    assert!(
        proxy.injected_into("ecs:UpdateService") > 0,
        "the fault aimed at ecs:UpdateService was injected (else this proved nothing)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_a_5xx_answered_a_call_ecs_never_applied_it_should_be_failed_and_held() {
    let bed = TestBed::new("unapplied").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let proxy = FaultProxy::start();
    // Answered 503 without forwarding: nothing reaches the server.
    proxy.inject(Rule::call("ecs:UpdateService", 1, Fault::Status(503)));
    let url = proxy.url();
    let mut p = bed.start("runbook", &[("AWS_ENDPOINT_URL", url.as_str())]);
    let o = p.outcome(&json!({"action": "scale", "cluster": svc.cluster, "service": "api", "desired_count": 4}));
    assert_eq!(svc.current(&bed).await.1, 2, "nothing applied");
    let action = &o["actions"][0];
    assert_eq!(action["status"], "failed", "{o}");
    let detail = action["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("did not take effect") && detail.contains("now held"), "{detail}");
    assert_eq!(o["severity"], "SEV1", "{o}");
    assert!(svc.hold(&bed).await.is_some(), "a failure verified as not applied holds the service");
    assert_eq!(statuses(&svc.ledger_items(&bed).await, "scale"), ["failed"]);
    assert!(
        proxy.injected_into("ecs:UpdateService") > 0,
        "the fault aimed at ecs:UpdateService was injected (else this proved nothing)"
    );
}
