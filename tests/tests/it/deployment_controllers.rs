//! Services ECS does not deploy (issue 19, finding 5). A service whose
//! `deploymentController` is `CODE_DEPLOY` or `EXTERNAL` is never sent a
//! task-definition change, a forced deployment or StopServiceDeployment: the
//! engine refuses before any mutating call (skipped, no hold, no SEV1) and
//! says how that service is rolled back. Scaling stays allowed. The local
//! server keeps `deploymentController`, so these run the real binaries; the
//! recording fault proxy shows which calls reached the server.
//!
//! ECS's own blue/green, linear and canary strategies (which the local
//! server drops) are tested over ListServiceDeployments and DescribeServices
//! shapes with aws-smithy-mocks in `engine_faults`.

use autopilot_tests::fault_proxy::{FaultProxy, MUTATING_OPS};
use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::json;

/// Every mutating ECS call that reached the proxy (applied or not).
fn mutating_calls(proxy: &FaultProxy) -> Vec<String> {
    proxy.calls().into_iter().filter(|c| MUTATING_OPS.contains(&c.op.as_str())).map(|c| c.op).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_codedeploy_service_is_never_sent_a_rollback_or_force_deploy_by_the_runbook_but_may_be_scaled() {
    let bed = TestBed::new("codedeploy-runbook").await;
    let svc = SeededService::create_deployed_by(&bed, "api", 2, "CODE_DEPLOY").await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let proxy = FaultProxy::start();
    let url = proxy.url();
    let mut p = bed.start("runbook", &[("AWS_ENDPOINT_URL", url.as_str())]);
    for action in ["rollback", "force-deploy"] {
        let o = p.outcome(&json!({"action": action, "cluster": svc.cluster, "service": "api"}));
        let record = &o["actions"][0];
        assert_eq!(record["status"], "skipped", "{action}: {o}");
        let detail = record["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("CODE_DEPLOY"), "{action}: {detail}");
        assert!(
            detail.contains("aws deploy stop-deployment --deployment-id") && detail.contains("--auto-rollback-enabled"),
            "{action}: says how CodeDeploy rolls it back: {detail}"
        );
        assert_ne!(o["severity"], "SEV1", "{action}: a refusal is no failure: {o}");
    }
    assert_eq!(mutating_calls(&proxy), Vec::<String>::new(), "no mutating call reached ECS");
    assert_eq!(svc.current(&bed).await.0, bad, "nothing changed");
    assert!(svc.hold(&bed).await.is_none(), "a refusal leaves no hold");
    // UpdateService(desiredCount) is allowed for CODE_DEPLOY services.
    let o = p.outcome(&json!({"action": "scale", "cluster": svc.cluster, "service": "api", "desired_count": 3}));
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    assert_eq!(svc.current(&bed).await.1, 3);
    assert_eq!(mutating_calls(&proxy), ["ecs:UpdateService"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_deployment_of_a_codedeploy_or_external_service_is_never_rolled_back_through_ecs() {
    for (controller, how) in [("CODE_DEPLOY", "aws deploy stop-deployment"), ("EXTERNAL", "deployment tool")] {
        let bed = TestBed::new(&format!("controller-{}", controller.to_ascii_lowercase().replace('_', "-"))).await;
        let svc = SeededService::create_deployed_by(&bed, "api", 2, controller).await;
        let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
        let proxy = FaultProxy::start();
        let url = proxy.url();
        let mut p = bed.start("ecs-events", &[("AWS_ENDPOINT_URL", url.as_str())]);
        let o = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "ctl-1", "x"));
        let record = &o["actions"][0];
        assert_eq!(record["action"], "rollback", "{controller}: {o}");
        assert_eq!(record["status"], "skipped", "{controller}: {o}");
        let detail = record["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(controller) && detail.contains(how), "{controller}: {detail}");
        assert_eq!(mutating_calls(&proxy), Vec::<String>::new(), "{controller}: no mutating call reached ECS");
        assert_eq!(svc.current(&bed).await.0, bad, "{controller}");
        assert!(svc.hold(&bed).await.is_none(), "{controller}: no hold");
        let ledger = svc.ledger(&bed).await;
        assert!(ledger.iter().all(|(_, status, _)| status == "skipped"), "{controller}: {ledger:?}");
        // The alert carries how the service is rolled back.
        let alerts = bed.notifications().await;
        assert!(alerts.iter().any(|n| n.message.contains(how)), "{controller}: {alerts:?}");
    }
}
