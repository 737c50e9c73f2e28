//! The six binaries under the Lambda Runtime API against the local AWS server.

use autopilot_tests::{LambdaProcess, TestBed, binary, fixture, fixtures_in};
use serde_json::{Value, json};
use std::time::Duration;

/// The function an input is for, read from its content the way EventBridge
/// rules, SNS subscriptions, schedules and people route it: ECS events (also
/// wrapped in SNS) to `ecs-events`, alarms (EventBridge, classic SNS, alarm
/// action) to `alarm-responder`, CodePipeline to `pipeline-events`, schedules
/// to `scheduled-reports`, runbook requests to `runbook`. Anything else is not
/// ours; it goes to `ecs-events`, which must refuse it.
fn function_for(v: &Value) -> &'static str {
    let by_source = |e: &Value| match e["source"].as_str().unwrap_or_default() {
        "aws.cloudwatch" => "alarm-responder",
        "aws.codepipeline" => "pipeline-events",
        "aws.events" | "aws.scheduler" => "scheduled-reports",
        _ if e.get("alarmData").is_some() => "alarm-responder",
        _ => "ecs-events",
    };
    if v.get("action").is_some() {
        return "runbook";
    }
    if v.get("job").is_some() {
        return "scheduled-reports";
    }
    if v.get("executionDetails").is_some() || v.get("targetServiceRevisionArn").is_some() {
        return "deployment-hook";
    }
    if let Some(message) = v.pointer("/Records/0/Sns/Message") {
        let inner: Value = message.as_str().and_then(|m| serde_json::from_str(m).ok()).unwrap_or(Value::Null);
        return if inner.get("AlarmName").is_some() { "alarm-responder" } else { by_source(&inner) };
    }
    by_source(v)
}

/// Which function each fixture folder feeds, and the Outcome kinds it answers.
const FOLDERS: &[(&str, &str, &[&str])] = &[
    ("ecs", "ecs-events", &["ecs-task-stopped", "ecs-service-action", "ecs-deployment", "ignored"]),
    ("sns", "ecs-events", &["ecs-task-stopped", "ecs-deployment"]),
    ("alarm", "alarm-responder", &["alarm"]),
    ("pipeline", "pipeline-events", &["pipeline"]),
    ("schedule", "scheduled-reports", &["report"]),
    ("runbook", "runbook", &["runbook"]),
    // The hook answers ECS's hook response, not an Outcome (checked below).
    ("hook", "deployment-hook", &[]),
    ("malformed", "", &[]),
];

/// Fixtures under `malformed/` that a function answers: named before the
/// parser read a task's ARN from `resources` (where EventBridge puts it).
const ANSWERED_DESPITE_THEIR_FOLDER: &[&str] = &["malformed/ecs-task-missing-task-arn.json"];

/// Read, and refused for where they come from (README, "Trusted sources"):
/// an SNS record that names no topic cannot be checked against
/// `ALARM_TOPIC_ARNS` (Lambda's SNS subscription always names it).
const REFUSED_FOR_THEIR_SOURCE: &[(&str, &str)] =
    &[("sns/sns-minimal-envelope-deployment-failed.json", "suppressed:untrusted-sns-topic")];

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_should_be_answered_by_the_binary_of_its_function() {
    let bed = TestBed::new("fixtures").await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut on_disk: Vec<String> = std::fs::read_dir(&root)
        .expect("fixtures")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|d| d != "redaction")
        .collect();
    on_disk.sort();
    let mut covered: Vec<String> = FOLDERS.iter().map(|(d, ..)| d.to_string()).collect();
    covered.sort();
    assert_eq!(on_disk, covered, "every fixture folder is routed here (redaction/ holds the corpus, not events)");

    let mut processes: std::collections::BTreeMap<&str, LambdaProcess> = std::collections::BTreeMap::new();
    let mut outcomes: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    let mut answered = 0;
    let mut refused = 0;
    for (dir, folder_function, kinds) in FOLDERS {
        // All of them are prod/api's: recoveries last, so that each problem
        // (replayed now) comes after the recoveries of the folder before it
        // rather than being judged older than one replayed a moment earlier.
        let mut files = fixtures_in(dir);
        files.sort_by_key(|f| (f.contains("steady-state") || f.contains("completed") || f.contains("-ok"), f.clone()));
        for file in files {
            let event = fixture(&file);
            let function = function_for(&event);
            if !folder_function.is_empty() {
                assert_eq!(function, *folder_function, "{file} is routed to the function of its folder");
            }
            let p = processes.entry(function).or_insert_with(|| bed.start(function, &[]));
            let result = tokio::task::block_in_place(|| p.invoke(&event));
            if *dir == "malformed" && !ANSWERED_DESPITE_THEIR_FOLDER.contains(&file.as_str()) {
                let (error_type, message) = result.expect_error(&file);
                assert_eq!(error_type, "InvalidEvent", "{function} {file}: {message}");
                assert!(!message.is_empty(), "{file}");
                refused += 1;
                continue;
            }
            let outcome = result.expect_response(&format!("{function} {file}"));
            if function == "deployment-hook" {
                let status = outcome["hookStatus"].as_str().unwrap_or_default();
                assert!(["SUCCEEDED", "FAILED", "IN_PROGRESS"].contains(&status), "{file}: {outcome}");
                answered += 1;
                continue;
            }
            for key in [
                "kind", "cluster", "service", "incident", "severity", "cause", "summary", "notified", "evidence",
                "actions",
            ] {
                assert!(outcome.get(key).is_some(), "{function} {file}: Outcome lacks {key}: {outcome}");
            }
            assert!(outcome["actions"].is_array(), "{file}");
            if let Some((_, why)) = REFUSED_FOR_THEIR_SOURCE.iter().find(|(f, _)| *f == file) {
                assert_eq!(
                    (outcome["kind"].as_str(), outcome["notified"].as_str()),
                    (Some("ignored"), Some(*why)),
                    "{file}: {outcome}"
                );
                outcomes.insert(file, outcome);
                answered += 1;
                continue;
            }
            let kind = outcome["kind"].as_str().unwrap_or_default();
            if !kinds.is_empty() {
                assert!(kinds.contains(&kind), "{function} {file}: kind {kind}: {outcome}");
            }
            outcomes.insert(file, outcome);
            answered += 1;
        }
    }
    for (function, p) in &mut processes {
        assert!(p.is_running(), "{function} must keep running");
    }

    // The variants of issue 20, each answered as the event it is.
    let task_events: Vec<&String> = outcomes
        .keys()
        .filter(|f| f.starts_with("ecs/task-event-") || ANSWERED_DESPITE_THEIR_FOLDER.contains(&f.as_str()))
        .collect();
    assert_eq!(task_events.len(), 6, "{task_events:?}");
    for file in task_events {
        let o = &outcomes[file];
        // A crashed task of prod/api: it opens or joins that service's incident.
        assert_eq!(
            (o["kind"].as_str(), o["cluster"].as_str(), o["service"].as_str()),
            (Some("ecs-task-stopped"), Some("prod"), Some("api")),
            "{file}: {o}"
        );
        assert!(o["incident"].is_string(), "{file}: {o}");
    }
    let o = &outcomes["ecs/service-action-without-cluster-arn.json"];
    assert_eq!((o["cluster"].as_str(), o["service"].as_str()), (Some("prod"), Some("api")), "{o}");
    for file in [
        "alarm/sns-classic-region-display-name.json",
        "alarm/sns-signing-cert-url-uppercase.json",
        "alarm/eventbridge-version-integer-time-offset.json",
    ] {
        let o = &outcomes[file];
        assert_eq!((o["cluster"].as_str(), o["service"].as_str()), (Some("prod"), Some("api")), "{file}: {o}");
    }
    let o = &outcomes["sns/sns-signing-cert-url-uppercase.json"];
    assert_eq!((o["kind"].as_str(), o["cluster"].as_str()), (Some("ecs-task-stopped"), Some("prod")), "{o}");
    let o = &outcomes["schedule/scheduler-default-notification.json"];
    assert!(o["summary"].as_str().is_some_and(|s| s.starts_with("daily report")), "{o}");
    let o = &outcomes["schedule/scheduler-detail-string-with-job.json"];
    assert!(o["summary"].as_str().is_some_and(|s| s.starts_with("escalation:")), "{o}");
    let o = &outcomes["pipeline/stage-failed-version-integer-time-offset.json"];
    assert!(o["incident"].is_string(), "a failed stage opens its execution's incident: {o}");
    eprintln!("fixtures: {answered} answered with an Outcome, {refused} refused as InvalidEvent");

    // The alarm naming its region for people, alone on a fresh bed (above it
    // joined the open incident quietly): its alert links the region's console.
    let bed = TestBed::new("region").await;
    let mut p = bed.start("alarm-responder", &[]);
    let file = "alarm/sns-classic-region-display-name.json";
    let o = tokio::task::block_in_place(|| p.invoke(&fixture(file))).expect_response(file);
    assert!(o["notified"].as_str().is_some_and(|n| !n.starts_with("suppressed")), "{o}");
    let alerts = bed.notifications().await;
    assert!(
        alerts.iter().any(|n| n.message.contains("https://eu-west-1.console.aws.amazon.com/ecs/")),
        "the alert links the ECS console of eu-west-1 (\"EU (Ireland)\"): {alerts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_input_is_malformed_should_return_a_named_error_and_keep_running() {
    let bed = TestBed::new("malformed").await;
    let mut p = bed.start("runbook", &[]);
    for file in fixtures_in("malformed") {
        let (error_type, message) = tokio::task::block_in_place(|| p.invoke(&fixture(&file))).expect_error(&file);
        assert_eq!(error_type, "InvalidEvent", "{file}: {message}");
        assert!(!message.is_empty(), "{file}");
    }
    // still alive and answering
    let ok =
        tokio::task::block_in_place(|| p.invoke(&fixture("runbook/diagnose.json"))).expect_response("after errors");
    assert_eq!(ok["kind"], "runbook");
    // one error line per refused event in the function's own log
    let errors = p.stdout().iter().filter(|l| l.contains("\"decision\":\"error\"")).count();
    assert_eq!(errors, fixtures_in("malformed").len());
}

#[tokio::test(flavor = "multi_thread")]
async fn when_an_event_reaches_the_wrong_function_should_say_which_function_handles_it() {
    let bed = TestBed::new("wrongfn").await;
    let mut p = bed.start("alarm-responder", &[]);
    let (error_type, message) = tokio::task::block_in_place(|| p.invoke(&fixture("ecs/deployment-failed.json")))
        .expect_error("deployment to alarm-responder");
    assert_eq!(error_type, "InvalidEvent");
    assert!(message.contains("alarm-responder") && message.contains("ECS Deployment State Change"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_a_required_variable_is_missing_the_binary_should_fail_at_start_naming_it() {
    let bed = TestBed::new("envmissing").await;
    let env: Vec<(String, String)> = bed.function_env().into_iter().filter(|(k, _)| k != "STATE_TABLE").collect();
    let mut p = LambdaProcess::start(&binary("ecs-events"), "envmissing", &env);
    let (code, stderr) = p.wait_exit(Duration::from_secs(20));
    assert_ne!(code, Some(0));
    let all = format!("{:?}{:?}", stderr, p.stdout());
    assert!(all.contains("STATE_TABLE"), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_invocation_should_log_one_decision_line_and_emf_metrics() {
    let bed = TestBed::new("logs").await;
    let mut p = bed.start("scheduled-reports", &[]);
    tokio::task::block_in_place(|| p.invoke(&json!({"job": "daily"}))).expect_response("daily");
    std::thread::sleep(Duration::from_millis(100));
    let lines = p.stdout();
    let decisions: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["decision"] == "outcome")
        .collect();
    assert_eq!(decisions.len(), 1, "{lines:?}");
    assert_eq!(decisions[0]["function"], "scheduled-reports");
    let emf: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 1);
    assert_eq!(emf[0]["Invocations"], 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_payload_is_not_json_at_all_the_binary_answers_an_error_and_keeps_running() {
    let bed = TestBed::new("notjson").await;
    let mut p = bed.start("ecs-events", &[]);
    for raw in [&b"not json"[..], b"", b"{\"unterminated\": ", &[0xff, 0xfe, 0x00]] {
        let result = tokio::task::block_in_place(|| p.invoke_raw(raw.to_vec()));
        let (error_type, message) = result.expect_error("raw bytes");
        assert!(!error_type.is_empty() && !message.is_empty(), "{error_type}: {message}");
    }
    assert!(p.is_running());
    let ok =
        tokio::task::block_in_place(|| p.invoke(&fixture("ecs/task-running.json"))).expect_response("after garbage");
    assert_eq!(ok["kind"], "ignored");
}

#[tokio::test(flavor = "multi_thread")]
async fn decision_lines_carry_the_request_id_trace_id_and_cold_start() {
    let bed = TestBed::new("reqid").await;
    let mut p = bed.start("ecs-events", &[]);
    let event = fixture("ecs/task-stopped-scale-in.json");
    let mut ids = Vec::new();
    for _ in 0..2 {
        p.outcome(&event);
        ids.push(p.last_request_id().expect("request id"));
    }
    std::thread::sleep(Duration::from_millis(200));
    let decisions: Vec<Value> = p
        .stdout()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["decision"] == "outcome")
        .collect();
    assert_eq!(decisions.len(), 2, "{:?}", p.stdout());
    for (line, id) in decisions.iter().zip(&ids) {
        assert_eq!(line["requestId"], Value::from(id.clone()), "{line}");
        assert!(line["traceId"].as_str().is_some_and(|t| t.starts_with("Root=1-")), "{line}");
    }
    assert_eq!(decisions[0]["cold_start"], true);
    assert_eq!(decisions[1]["cold_start"], false);
}
