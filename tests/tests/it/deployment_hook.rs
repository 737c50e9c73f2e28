//! `deployment-hook` through the real binary under the Lambda Runtime API:
//! the documented hook payloads (tests/fixtures/hook/, built from the AWS
//! documentation) retargeted at a service of the local server. The answer is
//! the hook response ECS reads (`hookStatus`, `callBackDelay`, `hookDetails`).

use autopilot_tests::fault_proxy::{Fault, FaultProxy, Rule};
use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const FIXTURE_SERVICE: &str = "arn:aws:ecs:us-west-2:111122223333:service/prod/api";
const FIXTURE_REVISIONS: &str = "arn:aws:ecs:us-west-2:111122223333:service-revision/prod/api/";

/// A hook fixture aimed at `svc` (its service ARN and service revisions).
fn hook_call(svc: &SeededService, file: &str) -> Value {
    let (prefix, _) = svc.service_arn.split_once(":service/").expect("service arn");
    let text = fixture(file)
        .to_string()
        .replace(FIXTURE_REVISIONS, &format!("{prefix}:service-revision/{}/{}/", svc.cluster, svc.service))
        .replace(FIXTURE_SERVICE, &svc.service_arn);
    serde_json::from_str(&text).expect("retargeted hook call")
}

fn status(r: &Value) -> &str {
    r["hookStatus"].as_str().unwrap_or_default()
}

/// The decision line of the hook's verdict in the function's own log.
fn verdict_lines(p: &autopilot_tests::LambdaProcess) -> Vec<Value> {
    p.stdout()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.to_string().contains("\"hook-verdict\""))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_green_task_stopped_with_a_definite_cause_should_fail_the_gate_naming_it_and_join_the_incident() {
    let bed = TestBed::new("hook-fail").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let green = svc.deploy_new_revision(&bed, "v2-bad").await;
    // ECS rolls back on the hook's answer; our own engine only plans here
    // (else ecs-events' crash-loop rollback would move the service first).
    svc.tag(&bed, "autopilot:mode", "dry-run").await;
    // ECS stops a task of the green revision: the image is not there.
    let mut stop =
        svc.retarget(&fixture("ecs/task-stopped-image-pull.json"), "hook-fail-stop-1", &format!("{:032x}", 7));
    stop["detail"]["taskDefinitionArn"] = Value::from(green.clone());
    let mut events = bed.start("ecs-events", &[]);
    let opened = events.outcome(&stop);
    assert_eq!(opened["cause"], "image-pull", "{opened}");
    let incident = opened["incident"].as_str().expect("incident").to_string();

    let mut hook = bed.start("deployment-hook", &[("HOOK_BAKE_SECONDS", "600")]);
    let call = hook_call(&svc, "hook/post-scale-up.json");
    let started = Instant::now();
    let answer = tokio::task::block_in_place(|| hook.invoke(&call)).expect_response("hook");
    let pk = format!("service#{}/{}", svc.cluster, svc.service);
    assert_eq!(status(&answer), "FAILED", "{answer} {:?} {:?}", bed.incident_record(&pk).await, hook.stdout());
    assert!(answer.get("callBackDelay").is_none(), "no callBackDelay with FAILED: {answer}");
    assert!(started.elapsed() < Duration::from_secs(20), "answered in {:?}", started.elapsed());
    let keys: Vec<&String> = answer.as_object().expect("object").keys().collect();
    assert!(keys.iter().all(|k| ["hookStatus", "callBackDelay", "hookDetails"].contains(&k.as_str())), "{answer}");
    assert_eq!(answer["hookDetails"]["team"], "payments", "the configured hookDetails come back: {answer}");
    let lines = verdict_lines(&hook);
    assert!(
        lines.iter().any(|l| l.to_string().contains("\"cause\":\"image-pull\"")),
        "the verdict names the cause: {lines:?}"
    );
    let outcome_line =
        hook.stdout().into_iter().find(|l| l.contains("\"decision\":\"outcome\"")).expect("outcome line");
    assert!(outcome_line.contains("ECS is rolling back"), "{outcome_line}");
    assert!(outcome_line.contains(&incident), "the FAILED joins the open incident: {outcome_line}");

    // The verdict is an input of the incident machine: the gate's problem
    // joined the service's incident, saying ECS rolls back.
    let record = bed.incident_record(&pk).await.expect("incident record");
    let text = record.to_string();
    assert!(text.contains("deployment gate failed"), "{record}");
    assert!(text.contains("ECS rolls the deployment back"), "{record}");
    let problems = record["problems"].as_array().map_or(0, Vec::len);

    // ECS calling again, and Lambda retrying the same request: the same verdict, the incident unchanged.
    let again = tokio::task::block_in_place(|| hook.invoke(&call)).expect_response("again");
    let retried =
        tokio::task::block_in_place(|| hook.invoke_as("retry-of-one-request", &call)).expect_response("retry");
    let retried2 =
        tokio::task::block_in_place(|| hook.invoke_as("retry-of-one-request", &call)).expect_response("retry");
    for r in [&again, &retried, &retried2] {
        assert_eq!(status(r), "FAILED", "{r}");
    }
    let record = bed.incident_record(&pk).await.expect("incident record");
    assert_eq!(record["problems"].as_array().map_or(0, Vec::len), problems, "{record}");
    assert!(hook.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_revision_should_bake_in_progress_then_succeed_and_be_recorded_as_passed() {
    let bed = TestBed::new("hook-bake").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.deploy_new_revision(&bed, "v2-good").await;
    svc.tag(&bed, "autopilot:bake-seconds", "8").await;
    let mut hook = bed.start("deployment-hook", &[]);
    let call = hook_call(&svc, "hook/post-test-traffic-shift.json");

    let first = tokio::task::block_in_place(|| hook.invoke(&call)).expect_response("first");
    assert_eq!(status(&first), "IN_PROGRESS", "{first} {:?}", verdict_lines(&hook));
    let delay = first["callBackDelay"].as_i64().expect("callBackDelay");
    assert!((1..=8).contains(&delay), "{first}");
    let since = first["hookDetails"]["autopilot"]["since"].as_i64().expect("since");

    // A Lambda retry of the first call (its payload has no hookDetails of
    // ours) does not restart the bake: the state table kept when it began.
    std::thread::sleep(Duration::from_millis(1100));
    let retry = tokio::task::block_in_place(|| hook.invoke(&call)).expect_response("retry");
    assert_eq!(status(&retry), "IN_PROGRESS", "{retry}");
    assert_eq!(retry["hookDetails"]["autopilot"]["since"].as_i64(), Some(since), "{retry}");

    // ECS calls back with what we returned, after the bake: SUCCEEDED.
    let baked_at = since + 9;
    while chrono::Utc::now().timestamp() < baked_at {
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut next = call.clone();
    next["hookDetails"] = first["hookDetails"].clone();
    let done = tokio::task::block_in_place(|| hook.invoke(&next)).expect_response("after the bake");
    assert_eq!(status(&done), "SUCCEEDED", "{done}");
    assert!(done.get("callBackDelay").is_none(), "{done}");
    // The same call again (ECS or a Lambda retry): the same verdict.
    let repeat = tokio::task::block_in_place(|| hook.invoke_as("hook-bake-retry", &next)).expect_response("repeat");
    assert_eq!(status(&repeat), "SUCCEEDED", "{repeat}");

    // The revision is recorded as having passed the gate.
    use aws_sdk_dynamodb::types::AttributeValue;
    let items = bed
        .dynamodb
        .query()
        .table_name(&bed.table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :gate)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("service#{}/{}", svc.cluster, svc.service)))
        .expression_attribute_values(":gate", AttributeValue::S("gate#".into()))
        .send()
        .await
        .expect("gate records")
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(item.get("verdict").and_then(|v| v.as_s().ok()).map(String::as_str), Some("SUCCEEDED"), "{item:?}");
    assert!(item.contains_key("passed_at"), "{item:?}");
    assert_eq!(item.get("stage").and_then(|v| v.as_s().ok()).map(String::as_str), Some("POST_TEST_TRAFFIC_SHIFT"));
    // No incident for a clean revision, nothing sent.
    assert!(bed.incident_record(&format!("service#{}/{}", svc.cluster, svc.service)).await.is_none());
    assert!(bed.notifications().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opted_out_service_should_pass_at_once() {
    let bed = TestBed::new("hook-optout").await;
    let svc = SeededService::create(&bed, "api", 1).await;
    svc.tag(&bed, "autopilot:hook", "off").await;
    let mut hook = bed.start("deployment-hook", &[]);
    let r =
        tokio::task::block_in_place(|| hook.invoke(&hook_call(&svc, "hook/production-traffic-shift-canary-10.json")))
            .expect_response("opted out");
    assert_eq!(status(&r), "SUCCEEDED", "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_service_should_get_the_documented_default_within_the_timeout() {
    let bed = TestBed::new("hook-unread").await;
    let svc = SeededService::create(&bed, "api", 1).await;
    // A service in a cluster that does not exist: nothing to read.
    let mut gone = hook_call(&svc, "hook/post-scale-up.json");
    let missing = svc.service_arn.replace(&format!("service/{}/", svc.cluster), "service/no-such-cluster/");
    gone["executionDetails"]["serviceArn"] = Value::from(missing);
    let mut hook = bed.start("deployment-hook", &[]);
    let started = Instant::now();
    let r = tokio::task::block_in_place(|| hook.invoke(&gone)).expect_response("unreadable");
    assert_eq!(status(&r), "FAILED", "HOOK_ON_READ_FAILURE defaults to fail: {r}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let mut passing = bed.start("deployment-hook", &[("HOOK_ON_READ_FAILURE", "pass")]);
    let r = tokio::task::block_in_place(|| passing.invoke(&gone)).expect_response("unreadable, pass");
    assert_eq!(status(&r), "SUCCEEDED", "{r}");

    // ECS hanging: the reads have a budget below the Lambda timeout, and the
    // answer comes within it.
    let proxy = FaultProxy::start();
    proxy.inject(Rule::new("ecs:DescribeServices", Fault::Hang));
    let mut env = bed.function_env();
    env.extend(proxy.env());
    env.push(("HOOK_READ_BUDGET_SECONDS".into(), "2".into()));
    let mut slow = bed.start_with_env("deployment-hook", env);
    let started = Instant::now();
    let r = tokio::task::block_in_place(|| slow.invoke(&hook_call(&svc, "hook/post-scale-up.json")))
        .expect_response("hang");
    let took = started.elapsed();
    proxy.release_hangs();
    assert_eq!(status(&r), "FAILED", "{r}");
    assert!(took < Duration::from_secs(8), "answered after {took:?}, the read budget is 2 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payload_without_a_service_arn_should_be_refused_naming_the_field() {
    let bed = TestBed::new("hook-invalid").await;
    let mut hook = bed.start("deployment-hook", &[]);
    let (error_type, message) =
        tokio::task::block_in_place(|| hook.invoke(&fixture("malformed/hook-no-service-arn.json")))
            .expect_error("no service arn");
    assert_eq!(error_type, "InvalidEvent");
    assert!(message.contains("executionDetails.serviceArn"), "{message}");
    // Another function's input is refused naming what this one takes.
    let (error_type, message) =
        tokio::task::block_in_place(|| hook.invoke(&json!({"action": "diagnose", "cluster": "c", "service": "s"})))
            .expect_error("runbook request");
    assert_eq!(error_type, "InvalidEvent", "{message}");
    assert!(message.contains("lifecycle hook"), "{message}");
    assert!(hook.is_running());
}

/// Start a task of `task_definition` as one of the service's (group `service:<name>`).
async fn run_service_task(bed: &TestBed, svc: &SeededService, task_definition: &str) -> String {
    let ecs = aws_sdk_ecs::Client::new(&bed.config);
    let subnets: Vec<String> =
        std::env::var("TEST_SUBNET_IDS").expect("subnets").split(',').map(str::to_string).collect();
    let sg = std::env::var("TEST_SECURITY_GROUP_ID").expect("security group");
    let out = ecs
        .run_task()
        .cluster(&svc.cluster)
        .task_definition(task_definition)
        .group(format!("service:{}", svc.service))
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                        .set_subnets(Some(subnets))
                        .security_groups(sg)
                        .build()
                        .expect("awsvpc"),
                )
                .build(),
        )
        .send()
        .await
        .expect("run task");
    let arn = out.tasks().first().and_then(|t| t.task_arn()).expect("task arn").to_string();
    arn.rsplit('/').next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_revision_logging_more_errors_than_the_running_one_should_fail_the_gate() {
    let bed = TestBed::new("hook-errors").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let blue = svc.task_definition_arn.clone();
    let green = svc.deploy_new_revision(&bed, "v2-noisy").await;
    let (b, g) = (run_service_task(&bed, &svc, &blue).await, run_service_task(&bed, &svc, &green).await);
    svc.write_log(&bed, &b, &["GET / 200".to_string(), "ERROR one timeout".to_string()]).await;
    let noisy: Vec<String> = (0..12).map(|n| format!("ERROR request {n} failed: connection refused")).collect();
    svc.write_log(&bed, &g, &noisy).await;
    let mut hook = bed.start("deployment-hook", &[]);
    let r =
        tokio::task::block_in_place(|| hook.invoke(&hook_call(&svc, "hook/production-traffic-shift-canary-10.json")))
            .expect_response("noisy");
    assert_eq!(status(&r), "FAILED", "{r} {:?}", verdict_lines(&hook));
    let lines = verdict_lines(&hook);
    assert!(lines.iter().any(|l| l["rule"] == "error-lines"), "{lines:?}");

    // The same logs on both revisions: not worse, the bake goes on.
    svc.write_log(&bed, &b, &noisy).await;
    svc.write_log(&bed, &b, &noisy).await;
    let r =
        tokio::task::block_in_place(|| hook.invoke(&hook_call(&svc, "hook/production-traffic-shift-canary-10.json")))
            .expect_response("as noisy as blue");
    assert_eq!(status(&r), "IN_PROGRESS", "{r} {:?}", verdict_lines(&hook));
}
