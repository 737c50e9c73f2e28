//! Inputs are taken only from where they must come (issue 25, "Trusted
//! sources"), through the real binaries: an event of another account, an
//! SNS message from a topic nobody configured, an alarm whose payload is not
//! what CloudWatch describes, and a runbook caller the allow-list does not
//! name act on nothing. Each test first shows the same input from where it
//! must come does act, so a refusal is never the test bed failing to act.

use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::{Value, json};

const OTHER_ACCOUNT: &str = "444455556666";

/// `event` as the same service name's event in another account: the
/// envelope and every ARN name that account (EventBridge sets `account`).
fn from_other_account(event: &Value) -> Value {
    serde_json::from_str(&event.to_string().replace("111122223333", OTHER_ACCOUNT)).expect("json")
}

fn executed(svc_ledger: &[(String, String, String)]) -> usize {
    svc_ledger.iter().filter(|(_, status, _)| status == "executed").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_another_account_neither_page_nor_roll_back_a_service_of_the_same_name() {
    let bed = TestBed::new("trust-account").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let mut p = bed.start("ecs-events", &[]);
    // Their failed deployment and four of their crash stops.
    let failed = from_other_account(&svc.retarget(&fixture("ecs/deployment-failed.json"), "theirs-dep", "x"));
    assert_eq!(failed["account"], OTHER_ACCOUNT);
    let mut events = vec![failed];
    for n in 0..4 {
        let mut stop = svc.retarget(
            &fixture("ecs/task-stopped-app-crash.json"),
            &format!("theirs-stop-{n}"),
            &format!("{n:032x}"),
        );
        stop["detail"]["taskDefinitionArn"] = Value::from(bad.clone());
        events.push(from_other_account(&stop));
    }
    for e in &events {
        let o = p.outcome(e);
        assert_eq!(o["kind"], "ignored", "{o}");
        assert_eq!(o["notified"], "suppressed:untrusted-account", "{o}");
        let summary = o["summary"].as_str().unwrap_or_default();
        assert!(summary.contains(OTHER_ACCOUNT) && summary.contains("111122223333"), "names both accounts: {o}");
        assert!(o["actions"].as_array().is_some_and(Vec::is_empty), "{o}");
    }
    assert_eq!(svc.current(&bed).await.0, bad, "this account's service keeps its revision");
    assert!(bed.notifications().await.is_empty(), "nobody here is paged for another account's service");
    assert!(svc.ledger(&bed).await.is_empty(), "no action recorded");
    assert!(bed.incident_record(&format!("service#{}/{}", svc.cluster, svc.service)).await.is_none());
    // The same failure in this account rolls back.
    let ours = p.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "ours-dep", "x"));
    assert_eq!(
        (ours["actions"][0]["action"].as_str(), ours["actions"][0]["status"].as_str()),
        (Some("rollback"), Some("executed")),
        "{ours}"
    );
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn);
    // Once ACCOUNTS names the other account (the fleet), its events are in scope.
    let mut fleet = bed.start("ecs-events", &[("ACCOUNTS", OTHER_ACCOUNT)]);
    let o = fleet.outcome(&events[1]);
    assert_ne!(o["kind"], "ignored", "{o}");
}

/// The memory alarm of the SNS fixture, on `svc`, renamed into the
/// designated prefix and created on the local server as it says.
async fn sns_memory_alarm(bed: &TestBed, svc: &SeededService, topic: &str) -> Value {
    let mut e = fixture("alarm/sns-metric-math-memory.json");
    let text = e["Records"][0]["Sns"]["Message"].as_str().expect("message").to_string();
    let message = text
        .replace(
            "{\"value\": \"prod\", \"name\": \"ClusterName\"}",
            &format!("{{\"value\": \"{}\", \"name\": \"ClusterName\"}}", svc.cluster),
        )
        .replace(
            "{\"value\": \"api\", \"name\": \"ServiceName\"}",
            &format!("{{\"value\": \"{}\", \"name\": \"ServiceName\"}}", svc.service),
        );
    e["Records"][0]["Sns"]["Message"] = Value::from(message);
    e["Records"][0]["Sns"]["MessageId"] = Value::from(format!("{}-{topic}", bed.prefix));
    e["Records"][0]["Sns"]["TopicArn"] = Value::from(topic);
    bed.own_alarm(&mut e, "ALARM").await;
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sns_wrapped_alarm_from_a_topic_nobody_configured_takes_no_action() {
    let bed = TestBed::new("trust-topic").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.register_scalable_target(&bed, 1, 10).await;
    let env = [("ALARM_NAME_PREFIX", "prod-api-")];
    let mut p = bed.start("alarm-responder", &env);
    let foreign = sns_memory_alarm(&bed, &svc, "arn:aws:sns:us-east-1:444455556666:anyone").await;
    let o = p.outcome(&foreign);
    assert_eq!(
        (o["kind"].as_str(), o["notified"].as_str()),
        (Some("ignored"), Some("suppressed:untrusted-sns-topic")),
        "{o}"
    );
    assert!(o["summary"].as_str().unwrap_or_default().contains("444455556666:anyone"), "names the topic: {o}");
    assert_eq!(svc.current(&bed).await.1, 2, "no scale-out");
    assert!(bed.notifications().await.is_empty());
    assert!(svc.ledger(&bed).await.is_empty());
    // A deployment that configured no alarm topic takes no SNS input at all.
    let mut none = bed.start_with_env(
        "alarm-responder",
        bed.function_env()
            .into_iter()
            .filter(|(k, _)| k != "ALARM_TOPIC_ARNS")
            .chain([("ALARM_NAME_PREFIX".to_string(), "prod-api-".to_string())])
            .collect(),
    );
    let ours = sns_memory_alarm(&bed, &svc, "arn:aws:sns:us-east-1:111122223333:autopilot-alarms").await;
    let o = none.outcome(&ours);
    assert_eq!(o["notified"], "suppressed:untrusted-sns-topic", "{o}");
    // The same message from the configured topic is the alarm's runbook.
    let o = p.outcome(&ours);
    assert_eq!(o["kind"], "alarm", "{o}");
    assert!(o["incident"].is_string(), "{o}");
    assert_eq!(bed.notifications().await.len(), 1);
}

/// The CPU alarm fixture on `svc`.
fn cpu_on(svc: &SeededService, id: &str) -> Value {
    let mut v = fixture("alarm/eventbridge-metric-cpu.json");
    v["id"] = Value::from(id);
    v["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({"ClusterName": svc.cluster, "ServiceName": svc.service});
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_acts_only_when_cloudwatch_describes_it_as_the_payload_does() {
    let bed = TestBed::new("trust-alarm").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let web = SeededService::create_named(&bed, &svc.cluster, "web", 2).await;
    svc.register_scalable_target(&bed, 1, 10).await;
    let env = [("ALARM_NAME_PREFIX", "prod-api-")];
    let mut p = bed.start("alarm-responder", &env);

    // The payload says ALARM; CloudWatch says OK (a stale or forged event).
    let mut reads_ok = cpu_on(&svc, "cpu-reads-ok");
    let name = bed.own_alarm(&mut reads_ok, "ALARM").await;
    bed.set_alarm(&name, "OK").await;
    let o = p.outcome(&reads_ok);
    assert!(o["actions"].as_array().is_none_or(|a| a.iter().all(|x| x["status"] != "executed")), "{o}");
    assert_eq!(svc.current(&bed).await.1, 2, "no scale-out on an alarm that reads OK");

    // The payload names service api; the real alarm watches web.
    let mut forged = cpu_on(&svc, "cpu-forged");
    let name = bed.own_alarm(&mut forged, "ALARM").await;
    bed.set_alarm_on(&name, "ALARM", &[("ClusterName", &web.cluster), ("ServiceName", &web.service)]).await;
    let o = p.outcome(&forged);
    let actions = o["actions"].as_array().cloned().unwrap_or_default();
    assert!(actions.iter().all(|a| a["status"] != "executed"), "{o}");
    assert!(
        actions.iter().any(|a| a["detail"].as_str().unwrap_or_default().contains("ServiceName=api")),
        "says which dimension the alarm does not have: {o}"
    );
    assert_eq!(svc.current(&bed).await.1, 2, "no scale-out on a service the alarm does not watch");
    assert_eq!(executed(&svc.ledger(&bed).await), 0);

    // The payload is the alarm as CloudWatch describes it: its runbook acts.
    let mut real = cpu_on(&svc, "cpu-real");
    bed.own_alarm(&mut real, "ALARM").await;
    let o = bed.start("alarm-responder", &env).outcome(&real);
    assert_eq!(
        (o["actions"][0]["action"].as_str(), o["actions"][0]["status"].as_str()),
        (Some("scale"), Some("executed")),
        "{o}"
    );
}

/// A runbook request as Lambda hands a function URL's POST to the function
/// (payload format 2.0), signed by `caller`.
fn through_url(request: &Value, caller: &str, base64: bool) -> Value {
    use base64::Engine as _;
    let body = request.to_string();
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abcdefghij.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "111122223333", "apiId": "abcdefghij", "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghij", "requestId": "4a7e2c1b-0000-4000-8000-000000000001",
            "routeKey": "$default", "stage": "$default", "time": "06/Dec/2026:09:00:00 +0000", "timeEpoch": 1796547600000u64,
            "authorizer": {"iam": {"accessKey": "ASIAEXAMPLEEXAMPLE00", "accountId": "111122223333",
                "callerId": "AROAEXAMPLEEXAMPLE000:alice", "userArn": caller, "userId": "AROAEXAMPLEEXAMPLE000:alice"}},
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"}
        },
        "body": if base64 { base64::engine::general_purpose::STANDARD.encode(body) } else { body },
        "isBase64Encoded": base64
    })
}

fn requested_by(items: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>]) -> Vec<String> {
    let mut out: Vec<String> =
        items.iter().filter_map(|i| i.get("requested_by").and_then(|v| v.as_s().ok()).cloned()).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_url_caller_is_recorded_and_held_to_the_allow_list_and_a_plain_invoke_is_recorded_unverified() {
    let bed = TestBed::new("trust-caller").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let oncall = "arn:aws:sts::111122223333:assumed-role/oncall/alice";
    let dev = "arn:aws:sts::111122223333:assumed-role/dev/eve";
    let callers = json!({"scale": ["arn:aws:sts::111122223333:assumed-role/oncall/*"]}).to_string();
    let mut p = bed.start("runbook", &[("RUNBOOK_CALLERS", callers.as_str())]);
    let scale = |n: i32, id: &str| {
        json!({"action": "scale", "cluster": svc.cluster, "service": svc.service, "desired_count": n,
               "dry_run": false, "request_id": id, "requested_by": "alice@example.com"})
    };
    let refused = p.outcome(&through_url(&scale(5, "url-dev"), dev, false));
    assert!(refused["summary"].as_str().unwrap_or_default().contains(dev), "names the caller: {refused}");
    assert_eq!(svc.current(&bed).await.1, 2, "a caller the allow-list does not name changes nothing");
    let o = p.outcome(&through_url(&scale(3, "url-oncall"), oncall, true));
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    assert_eq!(svc.current(&bed).await.1, 3);
    // A plain invoke still works; who asked is what the caller claims.
    let o = p.outcome(&scale(4, "plain"));
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    let by = requested_by(&svc.ledger_items(&bed).await);
    assert!(by.iter().any(|b| b.starts_with(oncall)), "the URL caller is recorded as Lambda authenticated it: {by:?}");
    assert!(by.iter().any(|b| b == "unverified: alice@example.com"), "{by:?}");
    assert!(!by.iter().any(|b| b.contains(dev)), "{by:?}");
    // A URL request without an IAM caller (AuthType NONE) is refused as invalid.
    let mut anonymous = through_url(&scale(6, "anon"), oncall, false);
    anonymous["requestContext"].as_object_mut().expect("context").remove("authorizer");
    match p.invoke(&anonymous) {
        autopilot_tests::InvokeResult::Error { error_type, error_message } => {
            assert_eq!(error_type, "InvalidEvent", "{error_message}");
            assert!(error_message.contains("userArn"), "{error_message}");
        }
        other => panic!("expected an error naming the missing caller, got {other:?}"),
    }
    assert_eq!(svc.current(&bed).await.1, 4);
}
