//! ecs-events end to end: incidents, notifications, evidence, redaction.

use autopilot_tests::{LambdaProcess, PLANTED_SECRET, SeededService, TestBed, binary, fixture};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

fn task_id(n: usize) -> String {
    format!("{:032x}", 0xabc0_0000_u64 + n as u64)
}

/// Every object of the bundle, downloaded, and the documents of `bundle.json` as `…/bundle.json#<name>`.
async fn bundle(bed: &TestBed, prefix: &str) -> Vec<(String, Vec<u8>)> {
    bed.evidence_objects(prefix).await
}

#[tokio::test(flavor = "multi_thread")]
async fn storm_of_50_stopped_tasks_with_duplicates_gives_one_alert_one_bundle_one_resolution() {
    let bed = TestBed::new("storm").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    svc.write_crash_log(&bed, &task_id(0)).await;
    let oom = fixture("ecs/task-stopped-oom-on-container.json");
    let mut events: Vec<Value> = (0..50).map(|n| svc.retarget(&oom, &format!("storm-{n}"), &task_id(n))).collect();
    // EventBridge delivers at least once: ten events arrive twice.
    for n in 0..10 {
        events.push(svc.retarget(&oom, &format!("storm-{n}"), &task_id(n)));
    }
    // Two concurrent Lambda instances share the burst, the way Lambda scales out.
    let env = bed.function_env();
    let (first, rest) = events.split_at(1);
    let mut a = bed.start_with_env("ecs-events", env.clone());
    let opened = a.outcome(&first[0]);
    let (left, right) = rest.split_at(rest.len() / 2);
    let (left, right) = (left.to_vec(), right.to_vec());
    let bed_env = env.clone();
    let name = bed.prefix.clone();
    let other = std::thread::spawn(move || {
        let mut b = LambdaProcess::start(&binary("ecs-events"), &format!("{name}-b"), &bed_env);
        b.wait_ready(Duration::from_secs(20));
        right.iter().map(|e| b.invoke(e).expect_response("b")).collect::<Vec<Value>>()
    });
    let mut outcomes: Vec<Value> = left.iter().map(|e| a.outcome(e)).collect();
    outcomes.extend(other.join().expect("second instance"));

    assert_eq!(opened["kind"], "ecs-task-stopped");
    assert_eq!(opened["cause"], "out-of-memory", "{opened}");
    let incident = opened["incident"].as_str().expect("incident id").to_string();
    for o in &outcomes {
        assert_eq!(o["incident"], incident.as_str(), "every stop joins the one incident: {o}");
        let notified = o["notified"].as_str().unwrap_or_default();
        assert!(notified.starts_with("suppressed:"), "only the opener notifies: {o}");
    }
    let duplicates = outcomes.iter().filter(|o| o["notified"] == "suppressed:duplicate-event").count();
    assert_eq!(duplicates, 10, "each re-delivered event is recognised");

    // The service reaches steady state: one resolution.
    let steady = svc.retarget(&fixture("ecs/service-steady-state.json"), "steady-1", "x");
    let resolved = a.outcome(&steady);
    assert_eq!(resolved["incident"], incident.as_str(), "{resolved}");
    let again = a.outcome(&svc.retarget(&fixture("ecs/service-steady-state.json"), "steady-2", "x"));
    assert!(again["incident"].is_null(), "nothing left to resolve: {again}");

    let notes = bed.notifications().await;
    let subjects: Vec<&str> = notes.iter().map(|n| n.subject.as_str()).collect();
    assert_eq!(notes.len(), 2, "one alert and one resolution: {subjects:?}");
    let alert = &notes[0];
    assert!(alert.subject.starts_with("[SEV1] "), "0 of 3 running is SEV1: {}", alert.subject);
    assert!(alert.subject.contains("out of memory"), "{}", alert.subject);
    assert!(alert.subject.is_ascii() && alert.subject.len() < 100 && !alert.subject.contains('\n'));
    for (k, v) in [("severity", "SEV1"), ("cause", "out-of-memory"), ("kind", "ecs-task-stopped"), ("service", "api")] {
        assert_eq!(alert.attributes[k]["Value"], v, "attribute {k}: {}", alert.attributes);
    }
    assert_eq!(alert.attributes["cluster"]["Value"], svc.cluster.as_str());
    for section in
        ["INCIDENT ALERT", "Findings", "Actions taken", "Next steps", "Evidence: s3://", "Console", "OutOfMemoryError"]
    {
        assert!(alert.message.contains(section), "alert lacks {section}:\n{}", alert.message);
    }
    assert!(notes[1].subject.starts_with("[RESOLVED] "), "{}", notes[1].subject);
    assert!(notes[1].message.contains("Time to recover:"), "{}", notes[1].message);

    // One evidence bundle, whose manifest hashes match the stored objects.
    let prefix = format!("incidents/{}/api/{incident}/", svc.cluster);
    let all_keys = bed.evidence_keys().await;
    assert!(all_keys.iter().all(|k| k.starts_with(&prefix)), "one bundle only: {all_keys:?}");
    let objects = bundle(&bed, &prefix).await;
    let manifest: Value =
        serde_json::from_slice(&objects.iter().find(|(k, _)| k.ends_with("manifest.json")).expect("manifest").1)
            .unwrap();
    let listed = manifest["objects"].as_array().expect("objects");
    let contents = manifest["contents"].as_array().expect("contents");
    // The post-incident report is written at the resolution, after the bundle.
    assert!(objects.iter().any(|(k, _)| k.ends_with("/report.md")), "the incident report sits beside the bundle");
    let stored: Vec<&String> =
        objects.iter().map(|(k, _)| k).filter(|k| !k.ends_with("/report.md") && !k.contains('#')).collect();
    assert_eq!(stored.len(), 2, "the bundle and its manifest: {stored:?}");
    assert_eq!(listed.len(), 1, "the manifest lists the bundle object");
    let documents = objects.iter().filter(|(k, _)| k.contains('#')).count();
    assert_eq!(contents.len(), documents, "and every document in it");
    for entry in listed.iter().chain(contents) {
        let key = entry["key"].as_str().unwrap();
        let (_, body) = objects.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("{key} listed but not stored"));
        let hash: String = Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(entry["sha256"], hash, "{key}");
        assert_eq!(entry["bytes"], body.len(), "{key}");
    }
    for name in
        ["event.json", "service.json", "task-definition.json", "logs.json", "stopped-tasks.json", "diagnosis.json"]
    {
        assert!(objects.iter().any(|(k, _)| k.ends_with(&format!("bundle.json#{name}"))), "bundle lacks {name}");
    }
    let head = bed.s3.head_object().bucket(&bed.bucket).key(format!("{prefix}manifest.json")).send().await.unwrap();
    assert!(head.server_side_encryption().is_some(), "every object is encrypted at rest");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_environment_value_appears_in_neither_s3_nor_sns() {
    let bed = TestBed::new("secret").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.write_crash_log(&bed, &task_id(7)).await;
    let mut p = bed.start_with_env("ecs-events", bed.function_env());
    let event = svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "secret-1", &task_id(7));
    let o = p.outcome(&event);
    assert!(o["evidence"].as_str().is_some_and(|e| e.starts_with("s3://")), "{o}");

    let objects = bundle(&bed, "incidents/").await;
    assert!(!objects.is_empty());
    for (key, body) in &objects {
        assert!(!String::from_utf8_lossy(body).contains(PLANTED_SECRET), "secret leaked into {key}");
    }
    let td = objects.iter().find(|(k, _)| k.ends_with("task-definition.json")).expect("task definition kept");
    let td = String::from_utf8_lossy(&td.1);
    assert!(td.contains("DB_PASSWORD") && td.contains("***REDACTED***"), "{td}");
    assert!(td.contains("LOG_LEVEL") && td.contains("\"info\""), "ordinary values stay: {td}");
    assert!(td.contains("secret:prod/api/token"), "secret references (valueFrom) stay as evidence");
    let logs = objects.iter().find(|(k, _)| k.ends_with("logs.json")).expect("log excerpt kept");
    assert!(String::from_utf8_lossy(&logs.1).contains("OutOfMemoryError"), "error lines kept");
    for n in bed.notifications().await {
        assert!(!n.message.contains(PLANTED_SECRET) && !n.subject.contains(PLANTED_SECRET), "secret leaked into SNS");
        assert!(n.message.contains("OutOfMemoryError"), "the log excerpt is in the alert:\n{}", n.message);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn expected_stops_never_alert() {
    let bed = TestBed::new("expected").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let mut p = bed.start_with_env("ecs-events", bed.function_env());
    for (n, file) in
        ["ecs/task-stopped-scale-in.json", "ecs/task-stopped-deployment-replaced.json", "ecs/task-stopped-user.json"]
            .iter()
            .enumerate()
    {
        let o = p.outcome(&svc.retarget(&fixture(file), &format!("exp-{n}"), &task_id(n)));
        assert_eq!(o["cause"], "expected", "{file}: {o}");
        assert_eq!(o["severity"], "INFO");
        assert!(o["incident"].is_null());
    }
    let standalone = p.outcome(&svc.retarget(&fixture("ecs/task-stopped-standalone.json"), "exp-sa", &task_id(9)));
    assert_eq!(standalone["notified"], "suppressed:not-a-service-task");
    assert!(bed.notifications().await.is_empty());
    assert!(bed.evidence_keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn when_evidence_cannot_be_kept_the_alert_still_goes_out_and_says_so() {
    let bed = TestBed::new("noevidence").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let env: Vec<(String, String)> = bed
        .function_env()
        .into_iter()
        .map(|(k, v)| if k == "EVIDENCE_BUCKET" { (k, format!("{}-missing", bed.bucket)) } else { (k, v) })
        .collect();
    let mut p = bed.start_with_env("ecs-events", env);
    let o = p.outcome(&svc.retarget(&fixture("ecs/task-stopped-image-pull.json"), "noev-1", &task_id(1)));
    assert!(o["evidence"].is_null(), "{o}");
    assert!(o["notified"].as_str().is_some_and(|n| !n.starts_with("suppressed")), "{o}");
    assert!(o["summary"].as_str().unwrap().contains("evidence not captured"), "{o}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].message.contains("Evidence: NOT CAPTURED"), "{}", notes[0].message);
    assert_eq!(notes[0].attributes["cause"]["Value"], "image-pull");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_deployment_opens_an_incident_and_completed_deployment_resolves_it_and_records_known_good() {
    let bed = TestBed::new("deploy").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let mut p = bed.start_with_env("ecs-events", bed.function_env());
    let failed = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "dep-f", "x"));
    assert_eq!(failed["kind"], "ecs-deployment");
    assert!(failed["incident"].is_string(), "{failed}");
    // Only one revision exists: the rollback engine refuses, and says why.
    assert_eq!(failed["actions"][0]["status"], "skipped", "{failed}");
    assert!(failed["actions"][0]["detail"].as_str().unwrap().contains("no rollback target"), "{failed}");
    let rolling = p.outcome(&svc.retarget(&fixture("ecs/deployment-circuit-breaker-rolling-back.json"), "dep-r", "x"));
    assert_eq!(rolling["incident"], failed["incident"], "same incident: {rolling}");
    assert!(rolling["summary"].as_str().unwrap().contains("ECS is rolling back"), "{rolling}");
    assert!(
        rolling["actions"][0]["detail"].as_str().unwrap().contains("following ECS"),
        "never act on top of ECS: {rolling}"
    );
    let done = p.outcome(&svc.retarget(&fixture("ecs/deployment-completed.json"), "dep-c", "x"));
    assert_eq!(done["incident"], failed["incident"], "{done}");
    let notes = bed.notifications().await;
    // Alert, the update announcing that ECS rolls back (an action decision is news), resolution.
    assert_eq!(notes.len(), 3, "{:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    assert!(notes[0].subject.contains("deployment failed"), "{}", notes[0].subject);
    assert!(notes[1].message.contains("following ECS"), "{}", notes[1].message);
    assert!(notes[2].subject.starts_with("[RESOLVED]"));
    assert!(
        notes[2].message.contains("circuit breaker is rolling back"),
        "the resolution tells what happened:\n{}",
        notes[2].message
    );
    let item = bed
        .dynamodb
        .get_item()
        .table_name(&bed.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("service#{}/api", svc.cluster)))
        // The known-good history: one item per revision (`known-good#<family>:<revision>`).
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "known-good#{}",
                svc.task_definition_arn.rsplit('/').next().unwrap_or_default()
            )),
        )
        .send()
        .await
        .unwrap();
    let td = item.item().and_then(|i| i.get("task_definition")).and_then(|v| v.as_s().ok()).cloned();
    assert_eq!(td.as_deref(), Some(svc.task_definition_arn.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn service_actions_map_to_incidents_or_records() {
    let bed = TestBed::new("svcaction").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let mut p = bed.start_with_env("ecs-events", bed.function_env());
    let throttled = p.outcome(&svc.retarget(&fixture("ecs/service-unknown-event-name.json"), "sa-u", "x"));
    assert_eq!(throttled["severity"], "INFO", "unknown WARN names are recorded: {throttled}");
    assert!(throttled["incident"].is_null());
    let placement = p.outcome(&svc.retarget(&fixture("ecs/service-task-placement-failure.json"), "sa-p", "x"));
    assert_eq!(placement["cause"], "capacity", "{placement}");
    assert!(placement["incident"].is_string());
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].subject.contains("task placement failed"), "{}", notes[0].subject);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_built_for_another_architecture_alerts_as_platform_mismatch_in_both_forms() {
    let bed = TestBed::new("platform").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let mut p = bed.start("ecs-events", &[]);
    // Form 1: the manifest has no image for the task's platform.
    let o = p.outcome(&svc.retarget(&fixture("ecs/task-stopped-platform-mismatch-manifest.json"), "pm-1", &task_id(1)));
    assert_eq!(o["cause"], "platform-mismatch", "{o}");
    let notes = bed.notifications().await;
    assert!(notes[0].subject.ends_with("image built for another CPU architecture"), "{}", notes[0].subject);
    assert!(notes[0].message.contains("runtimePlatform.cpuArchitecture"), "{}", notes[0].message);
    assert_eq!(notes[0].attributes["cause"]["Value"], "platform-mismatch", "{}", notes[0].attributes);

    // Form 2: an essential container exits 1 and only its log says `exec format error`.
    let other = SeededService::create(&bed, "worker", 2).await;
    let task = task_id(2);
    other.write_log(&bed, &task, &["exec /usr/local/bin/worker: exec format error".to_string()]).await;
    let o = p.outcome(&other.retarget(&fixture("ecs/task-stopped-app-crash.json"), "pm-2", &task));
    assert_eq!(o["cause"], "platform-mismatch", "the log refines the essential exit: {o}");
}
