//! Deployment approvals and acknowledgements through the real binaries:
//! a paused deployment's `ECS Hook State Change` (`HOOK_AWAITING_ACTION`) is
//! one approval notice however often it arrives; `continue-deployment` and
//! `rollback-deployment` call ContinueServiceDeployment once each with the
//! hook and the answer, recorded in the ledger and announced in the
//! approval's thread; `acknowledge` keeps the escalation job quiet until
//! the incident's severity rises.
//!
//! The local server (moto 5.2.5) does not implement ContinueServiceDeployment:
//! the recording fault proxy answers that one operation itself, as ECS
//! documents it, and records each call (`tests/src/fault_proxy.rs`,
//! `local_answer`); everything else reaches the local server.

use autopilot_tests::fault_proxy::FaultProxy;
use autopilot_tests::{LambdaProcess, SeededService, TestBed, fixture};
use serde_json::{Value, json};

const HOOK: &str = "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The paused deployment's ARN for `svc` (`service-deployment/<cluster>/<service>/<id>`).
fn deployment_arn(svc: &SeededService, id: &str) -> String {
    let head = svc.service_arn.rsplit_once(":service/").map(|(h, _)| h).expect("service arn");
    format!("{head}:service-deployment/{}/{}/{id}", svc.cluster, svc.service)
}

/// The documented `HOOK_AWAITING_ACTION` event, retargeted at `svc`.
fn hook_event(svc: &SeededService, event_id: &str, deployment: &str) -> Value {
    let mut v = fixture("ecs/hook-awaiting-action.json");
    let arn = deployment_arn(svc, deployment);
    v["id"] = Value::from(event_id);
    v["account"] = Value::from(svc.service_arn.split(':').nth(4).unwrap_or_default());
    v["region"] = Value::from(svc.service_arn.split(':').nth(3).unwrap_or_default());
    v["resources"] = json!([arn]);
    v["detail"]["clusterArn"] = Value::from(svc.cluster_arn.clone());
    v["detail"]["serviceArn"] = Value::from(svc.service_arn.clone());
    v["detail"]["serviceDeploymentArn"] = Value::from(arn);
    v
}

/// A release paused at its hook: the target revision adds an environment
/// variable (whose value must never appear) and is what the service runs.
async fn paused_release(bed: &TestBed, svc: &SeededService) -> String {
    let target = svc.register_with_environment(bed, &[("NEW_FLAG".into(), "s3cr3t-flag-value".into())]).await;
    svc.roll_to(bed, &target).await;
    target
}

fn start_recorded(bed: &TestBed, proxy: &FaultProxy, function: &str) -> LambdaProcess {
    let mut env = bed.function_env();
    env.extend(proxy.env());
    bed.start_with_env(function, env)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_deployment_gets_exactly_one_approval_notice_however_often_it_is_delivered() {
    let bed = TestBed::new("approve-notice").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let target = paused_release(&bed, &svc).await;
    let mut events = bed.start("ecs-events", &[("RUNBOOK_FUNCTION_NAME", "autopilot-runbook")]);
    let event = hook_event(&svc, "hook-evt-1", "dep1");
    let first = events.outcome(&event);
    assert_eq!(first["kind"], "ecs-deployment", "{first}");
    assert!(!first["notified"].as_str().unwrap_or_default().starts_with("suppressed"), "{first}");
    // Delivered twice (the same event), and announced again by another event of the same hook.
    let again = events.outcome(&event);
    let mut other = event.clone();
    other["id"] = Value::from("hook-evt-2");
    let third = events.outcome(&other);
    for o in [&again, &third] {
        assert_eq!(o["notified"], "suppressed:duplicate-notice", "{o}");
    }
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "one notice per hook: {:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    let n = &notes[0];
    assert!(n.subject.starts_with("[APPROVAL]") && n.subject.contains(&svc.service), "{}", n.subject);
    let body = &n.message;
    let target_rev = target.rsplit('/').next().unwrap_or_default();
    for needle in [
        HOOK,
        target_rev,
        "POST_TEST_TRAFFIC_SHIFT",
        "environment names added",
        "NEW_FLAG",
        "aws lambda invoke --function-name autopilot-runbook",
        "\"action\":\"continue-deployment\"",
        "\"action\":\"rollback-deployment\"",
        "Target revision health:",
    ] {
        assert!(body.contains(needle), "{needle:?} in the notice:\n{body}");
    }
    assert!(!body.contains("s3cr3t-flag-value"), "environment values never leave:\n{body}");
    // The running revision is the one the service ran before the release.
    let running_rev = svc.task_definition_arn.rsplit('/').next().unwrap_or_default();
    assert!(body.contains(&format!("Running:     {}", svc.task_definition_arn)), "{running_rev} as running:\n{body}");

    // A hook that asks nothing (succeeded) is recorded, never paged.
    let mut done = fixture("ecs/hook-succeeded.json");
    done["account"] = event["account"].clone();
    done["detail"] = event["detail"].clone();
    done["detail"]["eventName"] = Value::from("HOOK_SUCCEEDED");
    done["resources"] = event["resources"].clone();
    let o = events.outcome(&done);
    assert_eq!(o["notified"], "suppressed:no-action-awaited", "{o}");
    assert!(bed.notifications().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn continue_and_rollback_deployment_call_continue_service_deployment_once_each() {
    let bed = TestBed::new("approve-answer").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    paused_release(&bed, &svc).await;
    let mut events = bed.start("ecs-events", &[]);
    events.outcome(&hook_event(&svc, "hook-evt-a", "depA"));
    assert_eq!(bed.notifications().await.len(), 1, "the approval notice");

    let proxy = FaultProxy::start();
    let mut runbook = start_recorded(&bed, &proxy, "runbook");
    let request = |action: &str, id: &str| {
        json!({"action": action, "cluster": svc.cluster, "service": svc.service, "hook_id": HOOK,
            "request_id": id, "requested_by": "alice@example.com"})
    };
    // A dry run returns the plan and calls nothing.
    let mut dry = request("continue-deployment", "chg-dry");
    dry["dry_run"] = Value::from(true);
    let planned = runbook.outcome(&dry);
    assert_eq!(planned["actions"][0]["status"], "planned", "{planned}");
    assert!(planned["details"]["plan"]["continue_service_deployment"]["hook_id"] == HOOK, "{planned}");
    assert!(proxy.calls_of("ecs:ContinueServiceDeployment").is_empty(), "a dry run calls nothing");

    let cont = runbook.outcome(&request("continue-deployment", "chg-cont"));
    assert_eq!(cont["actions"][0]["action"], "continue-deployment", "{cont}");
    assert_eq!(cont["actions"][0]["status"], "executed", "{cont}");
    // The same request again (the CLI retrying): the first result, no second call.
    let repeat = runbook.outcome(&request("continue-deployment", "chg-cont"));
    assert_eq!(repeat["actions"], cont["actions"], "{repeat}");
    let roll = runbook.outcome(&request("rollback-deployment", "chg-roll"));
    assert_eq!(roll["actions"][0]["status"], "executed", "{roll}");

    // A hook no notice announced (and no service_deployment_arn given): refused, nothing called.
    let unknown = runbook.outcome(&json!({"action": "continue-deployment", "cluster": svc.cluster,
        "service": svc.service, "hook_id": "ecs-pause-unknown", "request_id": "chg-unknown", "requested_by": "mallory"}));
    assert_eq!(unknown["actions"][0]["status"], "skipped", "{unknown}");
    assert!(unknown["summary"].as_str().unwrap_or_default().contains("service_deployment_arn"), "{unknown}");
    // The hook of another service: refused, nothing called.
    let elsewhere = runbook.outcome(&json!({"action": "rollback-deployment", "cluster": svc.cluster,
        "service": "other", "hook_id": HOOK, "request_id": "chg-else", "requested_by": "mallory"}));
    assert_eq!(elsewhere["actions"][0]["status"], "skipped", "{elsewhere}");
    assert!(elsewhere["summary"].as_str().unwrap_or_default().contains("belongs to"), "{elsewhere}");

    let calls = proxy.calls_of("ecs:ContinueServiceDeployment");
    let sent: Vec<(String, String, String)> = calls
        .iter()
        .map(|c| {
            let j = c.json().expect("json body");
            let s = |k: &str| j[k].as_str().unwrap_or_default().to_string();
            (s("hookId"), s("action"), s("serviceDeploymentArn"))
        })
        .collect();
    let arn = deployment_arn(&svc, "depA");
    assert_eq!(
        sent,
        vec![(HOOK.to_string(), "CONTINUE".to_string(), arn.clone()), (HOOK.to_string(), "ROLLBACK".to_string(), arn)],
        "once each, with the hook and the answer"
    );
    // Recorded in the ledger, with who asked.
    let ledger = svc.ledger(&bed).await;
    for action in ["continue-deployment", "rollback-deployment"] {
        assert_eq!(
            ledger.iter().filter(|(a, s, _)| a == action && s == "executed").count(),
            1,
            "{action} in the ledger: {ledger:?}"
        );
    }
    // Announced in the approval's thread.
    let notes = bed.notifications().await;
    let subjects: Vec<&str> = notes.iter().map(|n| n.subject.as_str()).collect();
    assert_eq!(notes.len(), 3, "the dry run's plan and both answers: {subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("continued")), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("rolled back")), "{subjects:?}");
    assert!(notes.iter().all(|n| n.message.contains("Thread:   approval-depA")), "the approval's thread");
    assert!(notes.iter().all(|n| n.message.contains("alice@example.com")), "who asked");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_incident_is_not_escalated_until_its_severity_rises() {
    let bed = TestBed::new("acknowledge").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    let mut events = bed.start("ecs-events", &[]);
    let opened =
        events.outcome(&svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "ack-1", &format!("{:032x}", 1)));
    let incident = opened["incident"].as_str().expect("incident").to_string();
    assert_eq!(bed.notifications().await.len(), 1, "the opening alert");
    // Degraded, not down (as announced): a SEV1 is the most severe, and the
    // rule is about a rise.
    let pk = format!("service#{}/{}", svc.cluster, svc.service);
    bed.edit_incident(&pk, |r| {
        r["severity"] = Value::from("SEV2");
        r["announced_severity"] = Value::from("SEV2");
    })
    .await;

    let mut runbook = bed.start("runbook", &[]);
    let ack = runbook.outcome(&json!({"action": "acknowledge", "cluster": svc.cluster, "service": svc.service,
        "incident": incident, "requested_by": "bob@example.com"}));
    assert_eq!(ack["incident"], Value::from(incident.clone()), "{ack}");
    let summary = ack["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("acknowledged by unverified: bob@example.com"), "{ack}");
    assert!(summary.contains("rises above SEV2"), "{ack}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "the acknowledgement in the thread");
    assert!(notes[0].message.contains(&format!("Thread:   {incident}")), "{}", notes[0].message);
    let record = bed.incident_record(&pk).await.expect("record");
    assert_eq!(record["acknowledged"]["by"], "unverified: bob@example.com", "{record}");
    assert_eq!(record["acknowledged"]["severity"], "SEV2", "{record}");

    // Past the escalation delay: acknowledged, nothing is sent.
    bed.edit_incident(&pk, |r| r["opened_at"] = Value::from(now() - 20 * 60)).await;
    let mut reports = bed.start("scheduled-reports", &[]);
    let quiet = reports.outcome(&json!({"job": "escalate"}));
    assert!(quiet["summary"].as_str().unwrap_or_default().contains("0 escalated"), "{quiet}");
    assert!(bed.notifications().await.is_empty(), "an acknowledged incident is not escalated");

    // Its severity rises (announced as an update would): escalated again.
    bed.edit_incident(&pk, |r| {
        r["severity"] = Value::from("SEV1");
        r["announced_severity"] = Value::from("SEV1");
    })
    .await;
    reports.outcome(&json!({"job": "escalate"}));
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    assert!(notes[0].subject.contains("ESCALATION"), "{}", notes[0].subject);
    assert!(notes[0].message.contains(&incident), "{}", notes[0].message);

    // A wrong incident id is refused, recording nothing.
    let wrong = runbook.outcome(&json!({"action": "acknowledge", "cluster": svc.cluster, "service": svc.service,
        "incident": "not-this-one", "requested_by": "eve"}));
    assert!(wrong["summary"].as_str().unwrap_or_default().contains("nothing recorded"), "{wrong}");
    assert_eq!(bed.incident_record(&pk).await.expect("record")["acknowledged"]["by"], "unverified: bob@example.com");
}
