//! The five binaries under the Lambda Runtime API against the local AWS server.

use autopilot_tests::{LambdaProcess, TestBed, binary, fixture, fixtures_in};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn every_function_should_start_and_answer_its_fixtures_with_an_outcome() {
    let bed = TestBed::new("fixtures").await;
    let cases: &[(&str, &[&str], &str)] = &[
        ("ecs-events", &["ecs", "sns"], ""),
        ("alarm-responder", &["alarm"], "alarm"),
        ("pipeline-events", &["pipeline"], "pipeline"),
        ("scheduled-reports", &["schedule"], "report"),
        ("runbook", &["runbook"], "runbook"),
    ];
    for (function, dirs, kind) in cases {
        let mut p = bed.start(function, &[]);
        for dir in *dirs {
            for file in fixtures_in(dir) {
                let outcome = tokio::task::block_in_place(|| p.invoke(&fixture(&file))).expect_response(&file);
                for key in [
                    "kind", "cluster", "service", "incident", "severity", "cause", "summary", "notified", "evidence",
                    "actions",
                ] {
                    assert!(outcome.get(key).is_some(), "{function} {file}: Outcome lacks {key}: {outcome}");
                }
                if !kind.is_empty() {
                    assert_eq!(outcome["kind"], *kind, "{function} {file}: {outcome}");
                }
                assert!(outcome["actions"].is_array(), "{file}");
            }
        }
        assert!(p.is_running(), "{function} must keep running");
    }
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
