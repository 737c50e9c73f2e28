//! Late and stale triggers, and the known-good history, end to end: the real
//! function binaries against the local server, every release and every ECS
//! rollback a deployment of its own (as ECS runs them). What the local server
//! cannot show — several deployments listed at once, rollout states — is
//! tested over ECS's own response shapes in `engine_faults` and in the pure
//! planner's table tests (`shared/src/actions/rollback_plan.rs`).

use autopilot_tests::fault_proxy::FaultProxy;
use autopilot_tests::{LambdaProcess, LedgerSeed, SeededService, TestBed, binary, fixture};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn text(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn executed(ledger: &[(String, String, String)]) -> usize {
    ledger.iter().filter(|(_, status, _)| status == "executed").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_failed_deployment_event_after_ecs_rolled_back_leaves_the_healthy_service_alone() {
    let bed = TestBed::new("late-failed").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let good = svc.task_definition_arn.clone();
    let first = svc.deployment_id.clone();
    let (bad, failing) = svc.release(&bed, "v2.4.0-broken").await;
    let proxy = FaultProxy::start();
    let mut p = bed.start("ecs-events", &proxy.env().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>());
    // The first deployment's COMPLETED, delivered late (an async retry) while
    // the release rolls out: it is no longer listed.
    let late_completed =
        p.outcome(&svc.deployment_event("ecs/deployment-completed.json", "late-c1", &first, now() - 900));
    assert!(late_completed["incident"].is_null(), "{late_completed}");
    // The release fails; ECS's circuit breaker rolls back with a deployment of
    // its own to the good revision.
    let rollback = svc.start_deployment(&bed, &good).await;
    assert_ne!(rollback, failing);
    // Its FAILED event arrives late, after ECS rolled back.
    let o = p.outcome(&svc.deployment_event("ecs/deployment-failed.json", "late-f2", &failing, now() - 300));
    let action = &o["actions"][0];
    assert_eq!(action["action"], "rollback", "{o}");
    assert_eq!(action["status"], "skipped", "{o}");
    let detail = action["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("deployment {failing} is no longer the service's primary deployment"))
            && detail.contains("nothing to do"),
        "{detail}"
    );
    assert_eq!(svc.current(&bed).await.0, good, "the healthy service still runs the good revision, not {bad}");
    assert_eq!(executed(&svc.ledger(&bed).await), 0, "no mutating call");
    let wire = proxy.mutations_of(&svc.cluster, &svc.service);
    assert!(wire.is_empty(), "no mutating call on the wire: {wire:#?}");
    // The rollback deployment's own COMPLETED: the good revision is known-good.
    let done = p.outcome(&svc.deployment_event("ecs/deployment-completed.json", "late-c3", &rollback, now()));
    assert_eq!(done["incident"], o["incident"], "it resolves the incident the late event opened: {done}");
    let items = svc.known_good_items(&bed).await;
    assert!(items.iter().any(|i| text(i, "task_definition") == good && i.contains_key("completed_at")), "{items:?}");
    assert!(!items.iter().any(|i| text(i, "task_definition") == bad && i.contains_key("completed_at")), "{items:?}");
}

/// The 5xx-rate alarm fixture, mapped to the service through its target group.
fn five_xx_alarm(svc: &SeededService, id: &str) -> Value {
    let tg_dimension = svc.target_group_arn.rsplit(':').next().unwrap_or_default().to_string();
    let mut event = fixture("alarm/eventbridge-metric-math-5xx-rate.json");
    event["id"] = Value::from(id);
    if let Some(metrics) = event["detail"]["configuration"]["metrics"].as_array_mut() {
        for m in metrics {
            if let Some(dims) = m.pointer_mut("/metricStat/metric/dimensions") {
                dims["TargetGroup"] = Value::from(tg_dimension.clone());
            }
        }
    }
    event
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_alarm_after_ecs_rolled_back_does_not_count_the_rollback_as_a_fresh_release() {
    let bed = TestBed::new("late-alarm").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let mut ecs_events = bed.start("ecs-events", &[]);
    // Release v2 reaches steady state ten minutes ago.
    let (v2, d2) = svc.release(&bed, "v2").await;
    ecs_events.outcome(&svc.deployment_event("ecs/deployment-completed.json", "al-c2", &d2, now() - 600));
    // Release v3 fails; ECS's circuit breaker rolls it back to v2 with a new
    // deployment, which completes.
    let (v3, _d3) = svc.release(&bed, "v3-broken").await;
    let rollback = svc.start_deployment(&bed, &v2).await;
    ecs_events.outcome(&svc.deployment_event("ecs/deployment-completed.json", "al-c4", &rollback, now()));
    // The 5xx alarm about v3 lags behind and arrives now.
    let proxy = FaultProxy::start();
    let mut p = LambdaProcess::start(
        &binary("alarm-responder"),
        &format!("{}-alarm", bed.prefix),
        &[
            bed.function_env(),
            proxy.env(),
            vec![("CLUSTERS".into(), svc.cluster.clone()), ("ALARM_NAME_PREFIX".into(), "prod-api-".into())],
        ]
        .concat(),
    );
    p.wait_ready(Duration::from_secs(20));
    // It is still in ALARM when it arrives (the rollback has not cleared it yet).
    let mut lagging = five_xx_alarm(&svc, "al-5xx");
    bed.own_alarm(&mut lagging, "ALARM").await;
    let o = p.outcome(&lagging);
    assert_eq!(o["service"], "api", "{o}");
    let action = &o["actions"][0];
    assert_eq!(action["action"], "rollback", "{o}");
    assert_eq!(action["status"], "skipped", "{o}");
    let detail = action["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&format!("deployment {rollback}")) && detail.contains("not a fresh release"), "{detail}");
    assert_eq!(svc.current(&bed).await.0, v2, "still on the good v2: neither back onto {v3} nor down to an older one");
    assert_eq!(executed(&svc.ledger(&bed).await), 0);
    let wire = proxy.mutations_of(&svc.cluster, &svc.service);
    assert!(wire.is_empty(), "no mutating call on the wire: {wire:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_completed_deployment_that_is_no_longer_listed_is_never_recorded_as_the_primary_revision() {
    let bed = TestBed::new("kg-unlisted").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let first = svc.deployment_id.clone();
    let (bad, _) = svc.release(&bed, "v2.4.0-broken").await;
    let mut p = bed.start("ecs-events", &[]);
    // The first deployment's COMPLETED arrives late, while the release is PRIMARY.
    let o = p.outcome(&svc.deployment_event("ecs/deployment-completed.json", "unl-c1", &first, now() - 900));
    assert!(o["summary"].as_str().unwrap_or_default().contains("known-good not recorded"), "{o}");
    let items = svc.known_good_items(&bed).await;
    assert!(!items.iter().any(|i| text(i, "task_definition") == bad), "the release never completed: {items:?}");
    assert!(items.is_empty(), "which revision completed is not known, so nothing is recorded: {items:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revision_we_rolled_away_from_is_not_known_good_and_the_newest_good_one_is_the_target() {
    let bed = TestBed::new("kg-away").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let v1 = svc.task_definition_arn.clone();
    let mut p = bed.start("ecs-events", &[]);
    let completed = |id: &str, deployment: &str, ago: i64| {
        svc.deployment_event("ecs/deployment-completed.json", id, deployment, now() - ago)
    };
    // v2 reached steady state five hours ago; v1, deployed again, four hours ago.
    let (v2, d2) = svc.release(&bed, "v2").await;
    p.outcome(&completed("away-c2", &d2, 5 * 3600));
    let d1 = svc.start_deployment(&bed, &v1).await;
    p.outcome(&completed("away-c1", &d1, 4 * 3600));
    // Two hours ago (outside the rollback window) v1 crashed and we rolled it back to v2.
    svc.seed_ledger(
        &bed,
        &LedgerSeed {
            at: now() - 2 * 3600,
            action: "rollback",
            status: "executed",
            automatic: true,
            from: Some(&v1),
            to: Some(&v2),
            detail: "roll back after a crash loop",
        },
    )
    .await;
    svc.start_deployment(&bed, &v2).await;
    // Now release v3 fails.
    let (v3, d3) = svc.release(&bed, "v3-broken").await;
    let o = p.outcome(&svc.deployment_event("ecs/deployment-failed.json", "away-f3", &d3, now()));
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    assert_eq!(
        svc.current(&bed).await.0,
        v2,
        "v2 is the newest known-good revision we did not roll away from; v1 completed last but we rolled away from it"
    );
    assert_ne!(svc.current(&bed).await.0, v3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revision_whose_later_deployment_failed_is_not_known_good() {
    let bed = TestBed::new("kg-failed").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let v1 = svc.task_definition_arn.clone();
    let mut p = bed.start("ecs-events", &[]);
    let event = |file: &str, id: &str, deployment: &str, ago: i64| {
        svc.deployment_event(&format!("ecs/{file}.json"), id, deployment, now() - ago)
    };
    // v2 reached steady state four hours ago; v1, deployed again, three hours ago.
    let (v2, d2) = svc.release(&bed, "v2").await;
    p.outcome(&event("deployment-completed", "kf-c2", &d2, 4 * 3600));
    let d1 = svc.start_deployment(&bed, &v1).await;
    p.outcome(&event("deployment-completed", "kf-c1", &d1, 3 * 3600));
    // 50 minutes ago v1 was deployed once more (new settings) and that
    // deployment failed; automation was off, ECS rolled back to v2 on its own.
    svc.tag(&bed, "autopilot:mode", "off").await;
    let again = svc.start_deployment(&bed, &v1).await;
    let off = p.outcome(&event("deployment-failed", "kf-f1", &again, 50 * 60));
    assert!(off["actions"][0]["detail"].as_str().unwrap_or_default().contains("mode off"), "{off}");
    svc.start_deployment(&bed, &v2).await;
    svc.tag(&bed, "autopilot:mode", "auto").await;
    // Now release v3 fails.
    let (_v3, d3) = svc.release(&bed, "v3-broken").await;
    let o = p.outcome(&event("deployment-failed", "kf-f3", &d3, 0));
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    assert_eq!(svc.current(&bed).await.0, v2, "v1's last deployment failed, so v2 is the target, not {v1}");
}

/// Judged at its event time: a FAILED delivered two hours late pages nobody
/// and acts on nothing, and its revision is still recorded failed.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_deployment_older_than_the_window_pages_nobody_and_is_still_recorded_failed() {
    let bed = TestBed::new("kg-stale").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let (v2, d2) = svc.release(&bed, "v2-broken").await;
    let mut p = bed.start("ecs-events", &[]);
    let late = svc.deployment_event("ecs/deployment-failed.json", "ks-f2", &d2, now() - 2 * 3600);
    let o = p.outcome(&late);
    assert_eq!(o["notified"], "suppressed:stale-signal", "{o}");
    assert!(o["incident"].is_null() && o["actions"].as_array().is_some_and(Vec::is_empty), "{o}");
    assert!(bed.notifications().await.is_empty(), "nobody is paged for a two-hour-old signal");
    assert_eq!(svc.current(&bed).await.0, v2, "nothing was rolled back");
    let items = svc.known_good_items(&bed).await;
    assert!(
        items.iter().any(|i| text(i, "task_definition") == v2 && i.contains_key("failed_at")),
        "the failure is a fact about {v2}: {items:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn known_good_history_writes_are_idempotent_and_never_move_backwards() {
    let bed = TestBed::new("kg-writes").await;
    let state = shared::adapters::state::StateStore::new(bed.dynamodb.clone(), bed.table.clone());
    let td = "arn:aws:ecs:us-east-1:111122223333:task-definition/api:7";
    let (c, s) = ("prod", "api");
    let t = 1_795_183_200;
    assert!(state.deployments().record_completion(c, s, td, "ecs-svc/7", t).await.expect("first completion"));
    // A redelivery of the same completion, and a late older one: nothing moves
    // back, but the older one is the first completion.
    assert!(!state.deployments().record_completion(c, s, td, "ecs-svc/7", t).await.expect("redelivery"));
    assert!(!state.deployments().record_completion(c, s, "api:7", "ecs-svc/6", t - 600).await.expect("late, older"));
    assert!(state.deployments().record_failure(c, s, td, "ecs-svc/8", t + 60).await.expect("failure"));
    assert!(!state.deployments().record_failure(c, s, td, "ecs-svc/5", t - 60).await.expect("late, older failure"));
    assert!(state.deployments().record_rolled_away(c, s, td, t + 120).await.expect("rolled away"));
    let history = state.deployments().known_good_history(c, s).await.expect("history");
    assert_eq!(
        history,
        vec![shared::snapshot::KnownGood {
            task_definition: td.into(),
            first_completed_at: Some(t - 600),
            completed_at: Some(t),
            completed_by: Some("ecs-svc/7".into()),
            failed_at: Some(t + 60),
            failed_deployment: Some("ecs-svc/8".into()),
            rolled_away_at: Some(t + 120),
        }]
    );
    // The old single slot is not history.
    bed.dynamodb
        .put_item()
        .table_name(&bed.table)
        .item("pk", AttributeValue::S("service#prod/api".into()))
        .item("sk", AttributeValue::S("known-good#latest".into()))
        .item("task_definition", AttributeValue::S("api:9".into()))
        .send()
        .await
        .expect("legacy slot");
    assert_eq!(state.deployments().known_good_history(c, s).await.expect("history").len(), 1);
}
