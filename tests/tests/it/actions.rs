//! The bounded-action engine end to end: rollbacks and scaling through the
//! real ECS API of the local server, exactly once, within budgets.

use autopilot_tests::fault_proxy::{FaultProxy, Mutation};
use autopilot_tests::{InvokeResult, LambdaProcess, LedgerSeed, SeededService, TestBed, binary, fixture};
use serde_json::{Value, json};
use std::time::Duration;

/// The mutating ECS calls (UpdateService, StopServiceDeployment) the server
/// applied to `svc`, as the recording proxy saw them on the wire.
fn ecs_mutations(proxy: &FaultProxy, svc: &SeededService) -> Vec<Mutation> {
    proxy.mutations_of(&svc.cluster, &svc.service)
}

/// `function` started with every AWS call through `proxy` (and `extra` env).
fn start_recorded(bed: &TestBed, proxy: &FaultProxy, function: &str, extra: &[(&str, &str)]) -> LambdaProcess {
    let mut env = bed.function_env();
    env.extend(proxy.env());
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    bed.start_with_env(function, env)
}

fn executed(ledger: &[(String, String, String)]) -> usize {
    ledger.iter().filter(|(_, status, _)| status == "executed").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_deployment_rolls_the_service_back_through_the_real_api() {
    let bed = TestBed::new("rollback").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    assert_eq!(svc.current(&bed).await.0, bad);
    let proxy = FaultProxy::start();
    let mut p = start_recorded(&bed, &proxy, "ecs-events", &[]);
    let o = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "rb-1", "x"));
    let action = &o["actions"][0];
    assert_eq!(action["action"], "rollback", "{o}");
    assert_eq!(action["status"], "executed", "{o}");
    assert!(action["detail"].as_str().unwrap().contains("UpdateService"), "{action}");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn, "the service runs the previous revision again");
    let ledger = svc.ledger(&bed).await;
    assert_eq!(executed(&ledger), 1, "{ledger:?}");
    assert_eq!(ecs_mutations(&proxy, &svc).len(), 1, "one UpdateService on the wire: {:#?}", proxy.mutations());
    // The alert reports the action; the pre-action state was kept.
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].message.contains("rollback executed"), "{}", notes[0].message);
    assert!(bed.evidence_keys().await.iter().any(|k| k.contains("/actions/") && k.ends_with("pre-action.json")));
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicated_and_concurrent_triggers_cause_exactly_one_mutating_call() {
    let bed = TestBed::new("once").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let failed = svc.retarget(&fixture("ecs/deployment-failed.json"), "once-dep", "x");
    // A crash-loop stop of the fresh revision: a second, different trigger for the same rollback.
    let mut stop = svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "once-stop", &format!("{:032x}", 77));
    stop["detail"]["taskDefinitionArn"] = Value::from(bad.clone());
    // Every AWS call through the recording proxy: the mutating ECS calls are
    // counted as the server saw them, not as the ledger tells them.
    let proxy = FaultProxy::start();
    let mut env = bed.function_env();
    env.extend(proxy.env());
    let name = bed.prefix.clone();
    let events = [failed.clone(), failed.clone(), stop, failed.clone()];
    let handles: Vec<_> = events
        .clone()
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let env = env.clone();
            let name = format!("{name}-{i}");
            std::thread::spawn(move || {
                let mut p = LambdaProcess::start(&binary("ecs-events"), &name, &env);
                p.wait_ready(Duration::from_secs(20));
                p.invoke(&event)
            })
        })
        .collect();
    let results: Vec<InvokeResult> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
    // A copy that met another's claim in progress (or that acted while the
    // opening alert was still being sent) is told to come back later: an
    // error Lambda retries. Retry those, as Lambda would.
    let mut outcomes = Vec::new();
    let mut to_retry = Vec::new();
    for (event, r) in events.iter().zip(results) {
        match r {
            InvokeResult::Response(v) => outcomes.push(v),
            InvokeResult::Error { error_type, error_message } => {
                assert_eq!(error_type, "InProgress", "{error_message}");
                to_retry.push(event.clone());
            }
        }
    }
    let mut retry = bed.start_with_env("ecs-events", env.clone());
    for event in &to_retry {
        let again = retry.outcome(event);
        let acted_again = again["actions"].as_array().is_some_and(|a| a.iter().any(|x| x["status"] == "executed"));
        assert!(!acted_again, "a retry never acts again: {again}");
    }
    // Once everything is done, one more copy is a duplicate.
    let again = retry.outcome(&failed);
    assert_eq!(again["notified"], "suppressed:duplicate-event", "{again}");
    let ledger = svc.ledger(&bed).await;
    // What a test that says "one action" counts: mutating ECS calls on the
    // wire (UpdateService, StopServiceDeployment), SDK retries of one call
    // being one call. The ledger is what the code says it did.
    let wire = ecs_mutations(&proxy, &svc);
    assert_eq!(wire.len(), 1, "exactly one mutating ECS call reached the server: {wire:#?}\nledger: {ledger:?}");
    assert_eq!(wire[0].task_definition.as_deref(), Some(svc.task_definition_arn.as_str()), "{wire:#?}");
    assert_eq!(executed(&ledger), 1, "exactly one rollback executed: {ledger:?}\n{outcomes:#?}");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn);
    // The invocation that executed it reports it — or, when another one was
    // still sending the opening alert, answers InProgress and its retry
    // announces it; either way the channel hears of the rollback.
    let executed_outcomes = outcomes
        .iter()
        .filter(|o| o["actions"].as_array().is_some_and(|a| a.iter().any(|x| x["status"] == "executed")))
        .count();
    assert!(executed_outcomes <= 1, "{outcomes:#?}");
    let announced = bed.notifications().await.iter().filter(|n| n.message.contains("rollback executed")).count();
    assert!(announced >= 1, "the executed rollback is announced: {outcomes:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_returns_the_plan_and_changes_nothing() {
    let bed = TestBed::new("dryrun").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let mut runbook = bed.start("runbook", &[]);
    let o = runbook.outcome(&json!({"action": "rollback", "cluster": svc.cluster, "service": "api", "dry_run": true}));
    assert_eq!(o["actions"][0]["status"], "planned", "{o}");
    let plan = &o["details"]["plan"]["rollback"];
    assert_eq!(plan["to"], svc.task_definition_arn.as_str(), "{o}");
    assert_eq!(plan["from"], bad.as_str());
    assert_eq!(svc.current(&bed).await.0, bad, "nothing changed");
    // Global DRY_RUN: the automatic path only plans too.
    let mut events = bed.start("ecs-events", &[("DRY_RUN", "true")]);
    let o = events.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "dry-1", "x"));
    assert_eq!(o["actions"][0]["status"], "planned", "{o}");
    assert_eq!(svc.current(&bed).await.0, bad, "nothing changed");
    let ledger = svc.ledger(&bed).await;
    assert_eq!(executed(&ledger), 0);
    assert_eq!(ledger.iter().filter(|(_, s, _)| s == "planned").count(), 2, "{ledger:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_budget_refuses_and_says_so() {
    let bed = TestBed::new("budget").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let proxy = FaultProxy::start();
    let mut p = start_recorded(&bed, &proxy, "ecs-events", &[]);
    let first = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "bud-1", "x"));
    assert_eq!(first["actions"][0]["status"], "executed", "{first}");
    // The next release fails too, minutes later.
    svc.deploy_new_revision(&bed, "v2.4.1-also-broken").await;
    let mut again = svc.retarget(&fixture("ecs/deployment-failed.json"), "bud-2", "x");
    again["detail"]["deploymentId"] = Value::from("ecs-svc/999");
    let second = p.outcome(&again);
    let action = &second["actions"][0];
    assert_eq!(action["status"], "skipped", "{second}");
    assert!(action["detail"].as_str().unwrap().contains("budget exhausted"), "{action}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 2, "alert, then an update carrying the refusal");
    assert!(notes[1].message.contains("budget exhausted"), "{}", notes[1].message);
    assert_eq!(executed(&svc.ledger(&bed).await), 1);
    assert_eq!(ecs_mutations(&proxy, &svc).len(), 1, "the refusal made no call: {:#?}", proxy.mutations());
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_to_zero_needs_the_service_name_as_confirmation() {
    let bed = TestBed::new("zero").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    let mut p = bed.start("runbook", &[]);
    let (error_type, message) = tokio::task::block_in_place(|| {
        p.invoke(&json!({"action": "scale-to-zero", "cluster": svc.cluster, "service": "api"}))
    })
    .expect_error("no confirm");
    assert_eq!(error_type, "InvalidEvent");
    assert!(message.contains("confirm"), "{message}");
    let wrong =
        p.outcome(&json!({"action": "scale-to-zero", "cluster": svc.cluster, "service": "api", "confirm": "web"}));
    assert_eq!(wrong["actions"][0]["status"], "skipped", "{wrong}");
    assert_eq!(svc.current(&bed).await.1, 3, "still 3 tasks");
    let right =
        p.outcome(&json!({"action": "scale-to-zero", "cluster": svc.cluster, "service": "api", "confirm": "api"}));
    assert_eq!(right["actions"][0]["status"], "executed", "{right}");
    assert_eq!(svc.current(&bed).await.1, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_scale_is_bounded_by_the_caps_and_every_decision_is_announced() {
    let bed = TestBed::new("scale").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.tag(&bed, "autopilot:max-tasks", "5").await;
    let mut p = bed.start("runbook", &[]);
    let o = p.outcome(&json!({"action": "scale", "cluster": svc.cluster, "service": "api", "desired_count": 9}));
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    assert!(o["actions"][0]["detail"].as_str().unwrap().contains("autopilot:max-tasks=5"), "{o}");
    assert_eq!(svc.current(&bed).await.1, 5);
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].subject.contains("scale executed"), "{}", notes[0].subject);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_tagged_off_is_never_touched() {
    let bed = TestBed::new("off").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    svc.tag(&bed, "autopilot:mode", "off").await;
    let mut p = bed.start("ecs-events", &[]);
    let o = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "off-1", "x"));
    assert_eq!(o["actions"][0]["status"], "skipped", "{o}");
    assert!(o["actions"][0]["detail"].as_str().unwrap().contains("mode off"), "{o}");
    assert_eq!(svc.current(&bed).await.0, bad);
}

#[tokio::test(flavor = "multi_thread")]
async fn capture_evidence_snapshots_and_exports_the_log_group() {
    let bed = TestBed::new("capture").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.write_crash_log(&bed, &format!("{:032x}", 5)).await;
    let mut p = bed.start("runbook", &[]);
    let o =
        p.outcome(&json!({"action": "capture-evidence", "cluster": svc.cluster, "service": "api", "since_hours": 2}));
    let actions = o["actions"].as_array().expect("actions");
    assert!(actions.iter().any(|a| a["action"] == "snapshot" && a["status"] == "executed"), "{o}");
    assert!(actions.iter().any(|a| a["action"] == "log-export" && a["status"] != "failed"), "{o}");
    let keys = bed.evidence_keys().await;
    assert!(keys.iter().any(|k| k.ends_with("task-definition.json")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("/logs")), "exported log objects: {keys:?}");
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn text(item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, k: &str) -> String {
    item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// A rollback an invocation recorded as executing just now, after the bad
/// release, and then died (before or after its UpdateService): its outcome
/// is unknown until someone looks.
async fn seed_unfinished_rollback(bed: &TestBed, svc: &SeededService, bad: &str) -> String {
    svc.seed_ledger(
        bed,
        &LedgerSeed {
            at: now(),
            action: "rollback",
            status: "executing",
            automatic: true,
            from: Some(bad),
            to: Some(&svc.task_definition_arn),
            detail: "roll back to the known-good revision via UpdateService",
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn when_a_rollback_left_executing_took_effect_the_next_trigger_should_record_it_executed_and_not_roll_back_again()
{
    let bed = TestBed::new("unfinished-done").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    // The dead invocation's UpdateService had gone out.
    svc.roll_to(&bed, &svc.task_definition_arn).await;
    let sk = seed_unfinished_rollback(&bed, &svc, &bad).await;
    let proxy = FaultProxy::start();
    let mut p = start_recorded(&bed, &proxy, "ecs-events", &[]);
    let o = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "unfinished-1", "x"));
    let action = &o["actions"][0];
    assert_eq!(action["status"], "skipped", "{o}");
    assert!(
        action["detail"].as_str().unwrap().contains("budget exhausted"),
        "counted as the rollback it was: {action}"
    );
    let items = svc.ledger_items(&bed).await;
    let seeded = items.iter().find(|i| text(i, "sk") == sk).expect("the seeded entry");
    assert_eq!(text(seeded, "status"), "executed", "verified against the service: {seeded:?}");
    assert!(text(seeded, "detail").contains("verified"), "{seeded:?}");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn);
    assert_eq!(executed(&svc.ledger(&bed).await), 1, "only the seeded rollback");
    assert!(ecs_mutations(&proxy, &svc).is_empty(), "no mutating call now: {:#?}", proxy.mutations());
}

#[tokio::test(flavor = "multi_thread")]
async fn when_a_rollback_left_executing_did_not_take_effect_the_next_trigger_should_record_it_failed_and_roll_back_once()
 {
    let bed = TestBed::new("unfinished-not").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    // The dead invocation never reached its UpdateService: the service still runs the bad revision.
    let sk = seed_unfinished_rollback(&bed, &svc, &bad).await;
    let proxy = FaultProxy::start();
    let mut p = start_recorded(&bed, &proxy, "ecs-events", &[]);
    let o = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "unfinished-2", "x"));
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn);
    let items = svc.ledger_items(&bed).await;
    let seeded = items.iter().find(|i| text(i, "sk") == sk).expect("the seeded entry");
    assert_eq!(text(seeded, "status"), "failed", "verified: it did not take effect: {seeded:?}");
    assert!(text(seeded, "detail").contains("verified"), "{seeded:?}");
    assert_eq!(executed(&svc.ledger(&bed).await), 1, "one rollback in all");
    assert_eq!(ecs_mutations(&proxy, &svc).len(), 1, "one UpdateService on the wire: {:#?}", proxy.mutations());
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_same_rollback_request_arrives_twice_with_one_request_id_should_roll_back_once_and_answer_the_same() {
    let bed = TestBed::new("request-id").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let request = json!({
        "action": "rollback", "cluster": svc.cluster, "service": "api",
        "reason": "bad release", "request_id": "chg-4711", "requested_by": "alice@example.com",
    });
    let proxy = FaultProxy::start();
    let mut p = start_recorded(&bed, &proxy, "runbook", &[]);
    let first = p.outcome(&request);
    assert_eq!(first["actions"][0]["status"], "executed", "{first}");
    // `aws lambda invoke` retrying after its read timeout reaches another instance.
    let mut other = start_recorded(&bed, &proxy, "runbook", &[]);
    let second = other.outcome(&request);
    assert_eq!(second, first, "the repeat answers the first result");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn);
    let items = svc.ledger_items(&bed).await;
    let executed: Vec<_> = items.iter().filter(|i| text(i, "status") == "executed").collect();
    assert_eq!(executed.len(), 1, "one UpdateService: {items:?}");
    assert_eq!(ecs_mutations(&proxy, &svc).len(), 1, "one UpdateService on the wire: {:#?}", proxy.mutations());
    assert_eq!(text(executed[0], "request_id"), "chg-4711");
    // A plain invoke: who asked is what the payload claims, recorded as such.
    assert_eq!(text(executed[0], "requested_by"), "unverified: alice@example.com");
    assert_eq!(bed.notifications().await.len(), 1, "announced once");

    // The same id for a different request is refused, naming the id.
    let mut changed = request.clone();
    changed["dry_run"] = Value::from(true);
    let (error_type, message) = tokio::task::block_in_place(|| p.invoke(&changed)).expect_error("reused id");
    assert_eq!(error_type, "RequestIdConflict", "{message}");
    assert!(message.contains("chg-4711"), "{message}");

    // A request whose first run is still in progress: retry later.
    bed.dynamodb
        .put_item()
        .table_name(&bed.table)
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("runbook#chg-4712".into()))
        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S("request".into()))
        .item("status", aws_sdk_dynamodb::types::AttributeValue::S("processing".into()))
        .item("token", aws_sdk_dynamodb::types::AttributeValue::S("the-first-invocation".into()))
        .item("lease_until", aws_sdk_dynamodb::types::AttributeValue::N((now() + 200).to_string()))
        .send()
        .await
        .expect("seed request claim");
    let mut pending = request.clone();
    pending["request_id"] = Value::from("chg-4712");
    let (error_type, message) = tokio::task::block_in_place(|| p.invoke(&pending)).expect_error("in progress");
    assert_eq!(error_type, "InProgress", "{message}");
    assert_eq!(executed.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_cli_retries_a_mutation_without_a_request_id_it_should_act_once_and_answer_the_first_outcome() {
    let bed = TestBed::new("derived-id").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    // A short repeat window, so that the test can outlive it.
    let proxy = FaultProxy::start();
    let mut p = start_recorded(&bed, &proxy, "runbook", &[("RUNBOOK_REPEAT_WINDOW_SECONDS", "3")]);
    let request = json!({"action": "force-deploy", "cluster": svc.cluster, "service": "api", "reason": "stuck tasks"});
    let first = p.outcome(&request);
    assert_eq!(first["actions"][0]["status"], "executed", "{first}");
    // `aws lambda invoke` retrying after its read timeout, on another instance.
    let mut other = start_recorded(&bed, &proxy, "runbook", &[("RUNBOOK_REPEAT_WINDOW_SECONDS", "3")]);
    let second = other.outcome(&request);
    assert_eq!(second, first, "the repeat answers the first run's Outcome");
    let executed_now = || async { executed(&svc.ledger(&bed).await) };
    assert_eq!(executed_now().await, 1, "one force-deploy");
    assert_eq!(ecs_mutations(&proxy, &svc).len(), 1, "one UpdateService on the wire: {:#?}", proxy.mutations());
    assert_eq!(bed.notifications().await.len(), 1, "announced once");
    // A different request is a request of its own.
    let dry = p.outcome(&json!({"action": "force-deploy", "cluster": svc.cluster, "service": "api", "dry_run": true}));
    assert_eq!(dry["actions"][0]["status"], "planned", "{dry}");
    // After the window the same payload is a new request and acts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = p.outcome(&request);
    assert_eq!(later["actions"][0]["status"], "executed", "{later}");
    assert_ne!(later, first);
    assert_eq!(executed_now().await, 2, "a second force-deploy, after the window");
    assert_eq!(ecs_mutations(&proxy, &svc).len(), 2, "two UpdateService calls on the wire: {:#?}", proxy.mutations());
}
