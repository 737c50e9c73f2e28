//! alarm-responder end to end: mapping, runbooks, resolution.

use autopilot_tests::{LambdaProcess, SeededService, TestBed, binary, fixture};
use serde_json::Value;
use std::time::Duration;

/// Create a metric alarm on the local server on a metric with `dimensions`
/// and with `tags`; its ARN.
async fn create_alarm(
    bed: &TestBed,
    name: &str,
    (namespace, metric, dimensions): (&str, &str, &[(&str, &str)]),
    tags: &[(&str, &str)],
) -> String {
    let cw = aws_sdk_cloudwatch::Client::new(&bed.config);
    let mut req = cw
        .put_metric_alarm()
        .alarm_name(name)
        .namespace(namespace)
        .metric_name(metric)
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold);
    for (k, v) in dimensions {
        req = req.dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name(*k).value(*v).build());
    }
    for (k, v) in tags {
        req = req.tags(aws_sdk_cloudwatch::types::Tag::builder().key(*k).value(*v).build());
    }
    req.send().await.expect("put alarm");
    cw.describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .expect("describe")
        .metric_alarms()
        .first()
        .and_then(|a| a.alarm_arn().map(str::to_string))
        .expect("alarm arn")
}

/// The CPU alarm fixture, pointed at a seeded service.
fn cpu_alarm(svc: &SeededService, file: &str, id: &str) -> Value {
    let mut v = fixture(file);
    v["id"] = Value::from(id);
    v["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        serde_json::json!({"ClusterName": svc.cluster, "ServiceName": svc.service});
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn high_cpu_scales_out_within_bounds_and_ok_resolves() {
    let bed = TestBed::new("cpu").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    // The fixture's alarm is `prod-api-cpu-high`: designated by the stack's prefix.
    let mut p = bed.start("alarm-responder", &[("ALARM_NAME_PREFIX", "prod-api-")]);
    let mut firing = cpu_alarm(&svc, "alarm/eventbridge-metric-cpu.json", "cpu-1");
    bed.own_alarm(&mut firing, "ALARM").await;
    let o = p.outcome(&firing);
    assert_eq!(o["cause"], "high-cpu", "{o}");
    assert!(o["severity"] == "SEV2" || o["severity"] == "SEV1", "91% CPU is at least SEV2: {o}");
    assert_eq!(o["actions"][0]["action"], "scale", "{o}");
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    assert_eq!(svc.current(&bed).await.1, 4, "doubled, no more");
    // The same transition again (EventBridge retries): nothing more happens.
    let mut retry = firing.clone();
    retry["id"] = Value::from("cpu-1-retry");
    let again = p.outcome(&retry);
    assert_eq!(again["notified"], "suppressed:duplicate-event", "{again}");
    assert_eq!(svc.current(&bed).await.1, 4);
    let mut back = cpu_alarm(&svc, "alarm/eventbridge-metric-cpu-ok.json", "cpu-ok");
    bed.own_alarm(&mut back, "OK").await;
    let ok = p.outcome(&back);
    assert_eq!(ok["incident"], o["incident"], "{ok}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 2, "{:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    assert!(notes[0].message.contains("scale executed"), "{}", notes[0].message);
    assert!(notes[1].subject.starts_with("[RESOLVED]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_after_a_fresh_deployment_roll_back_and_the_target_group_finds_the_service() {
    let bed = TestBed::new("alarm5xx").await;
    let svc = SeededService::create(&bed, "web", 2).await;
    svc.deploy_new_revision(&bed, "v9-broken").await;
    let tg_dimension = svc.target_group_arn.rsplit(':').next().unwrap().to_string();
    let mut event = fixture("alarm/eventbridge-metric-math-5xx-rate.json");
    event["id"] = Value::from("5xx-1");
    for m in event["detail"]["configuration"]["metrics"].as_array_mut().unwrap() {
        if let Some(dims) = m.pointer_mut("/metricStat/metric/dimensions") {
            dims["TargetGroup"] = Value::from(tg_dimension.clone());
        }
    }
    bed.own_alarm(&mut event, "ALARM").await;
    let mut p = LambdaProcess::start(
        &binary("alarm-responder"),
        "alarm5xx",
        &[
            bed.function_env(),
            vec![("CLUSTERS".into(), svc.cluster.clone()), ("ALARM_NAME_PREFIX".into(), "prod-api-".into())],
        ]
        .concat(),
    );
    p.wait_ready(Duration::from_secs(20));
    let o = p.outcome(&event);
    assert_eq!((o["cluster"].as_str(), o["service"].as_str()), (Some(svc.cluster.as_str()), Some("web")), "{o}");
    assert_eq!(o["cause"], "http-5xx");
    assert_eq!(o["actions"][0]["action"], "rollback", "{o}");
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_ok_does_not_resolve_an_incident_it_did_not_open() {
    let bed = TestBed::new("alarmok").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let mut ecs = LambdaProcess::start(&binary("ecs-events"), "alarmok-ecs", &bed.function_env());
    ecs.wait_ready(Duration::from_secs(20));
    let crash = svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "ok-crash", &format!("{:032x}", 1));
    let opened = tokio::task::block_in_place(|| ecs.invoke(&crash)).expect_response("crash");
    let mut p = bed.start("alarm-responder", &[]);
    let mut back = cpu_alarm(&svc, "alarm/eventbridge-metric-cpu-ok.json", "ok-1");
    bed.own_alarm(&mut back, "OK").await;
    let ok = p.outcome(&back);
    assert_eq!(ok["incident"], opened["incident"]);
    assert!(ok["summary"].as_str().unwrap().contains("stays open"), "{ok}");
    assert_eq!(bed.notifications().await.len(), 1, "only the crash alert");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_without_service_dimensions_is_mapped_by_its_tags() {
    let bed = TestBed::new("alarmtags").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let name = format!("{}-errors", bed.prefix);
    let arn = create_alarm(
        &bed,
        &name,
        ("Checkout", "PaymentErrors", &[]),
        &[("autopilot:cluster", svc.cluster.as_str()), ("autopilot:service", "api")],
    )
    .await;
    let mut event = fixture("alarm/eventbridge-metric-cpu.json");
    event["id"] = Value::from("tags-1");
    event["resources"] = serde_json::json!([arn]);
    event["detail"]["alarmName"] = Value::from(name.clone());
    event["detail"]["configuration"]["metrics"] = serde_json::json!([{
        "id": "m1", "returnData": true,
        "metricStat": {"metric": {"namespace": "Checkout", "name": "PaymentErrors", "dimensions": {}}, "period": 60, "stat": "Sum"}
    }]);
    bed.set_alarm(&name, "ALARM").await;
    let mut p = bed.start("alarm-responder", &[]);
    let o = p.outcome(&event);
    assert_eq!((o["cluster"].as_str(), o["service"].as_str()), (Some(svc.cluster.as_str()), Some("api")), "{o}");
    assert_eq!(o["cause"], "other-alarm");
    assert!(o["incident"].is_string(), "{o}");
    assert!(o["actions"].as_array().is_some_and(Vec::is_empty), "other alarms only diagnose: {o}");
}

/// Point every dimension set of an alarm payload (any delivery path) at `svc`.
fn retarget_dimensions(v: &mut Value, svc: &SeededService) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match (k.as_str(), &mut *child) {
                    ("dimensions" | "Dimensions", Value::Object(d)) => {
                        d.insert("ClusterName".into(), Value::from(svc.cluster.clone()));
                        d.insert("ServiceName".into(), Value::from(svc.service.clone()));
                    }
                    ("dimensions" | "Dimensions", Value::Array(list)) => {
                        *list = vec![
                            serde_json::json!({"name": "ClusterName", "value": svc.cluster}),
                            serde_json::json!({"name": "ServiceName", "value": svc.service}),
                        ];
                    }
                    ("Message", Value::String(text)) => {
                        if let Ok(mut inner) = serde_json::from_str::<Value>(text) {
                            retarget_dimensions(&mut inner, svc);
                            *text = inner.to_string();
                        }
                    }
                    _ => retarget_dimensions(child, svc),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| retarget_dimensions(i, svc)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undesignated_alarm_takes_no_action_on_any_delivery_path_and_says_why() {
    let bed = TestBed::new("alarmdesig").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.deploy_new_revision(&bed, "v3-fresh").await;
    let before = svc.current(&bed).await;
    // The stack's prefix is another team's: none of these alarms is designated.
    let mut p = bed.start("alarm-responder", &[("ALARM_NAME_PREFIX", "payments-autopilot-")]);
    for (n, file) in
        ["alarm/eventbridge-metric-cpu.json", "alarm/sns-metric-math-memory.json", "alarm/lambda-action-metric.json"]
            .iter()
            .enumerate()
    {
        let mut event = fixture(file);
        retarget_dimensions(&mut event, &svc);
        if event.get("id").is_some() {
            event["id"] = Value::from(format!("desig-{n}"));
        }
        bed.own_alarm(&mut event, "ALARM").await;
        let o = p.outcome(&event);
        assert_eq!(o["service"], "api", "{file}: {o}");
        let actions = o["actions"].as_array().expect("actions");
        assert_eq!(actions.len(), 1, "{file}: {o}");
        assert_eq!(actions[0]["status"], "skipped", "{file}: {o}");
        let why = actions[0]["detail"].as_str().unwrap();
        assert!(why.contains("not designated") && why.contains("payments-autopilot-"), "{file}: {why}");
    }
    assert_eq!(svc.current(&bed).await, before, "no alarm changed the service");
    let notes = bed.notifications().await;
    assert!(!notes.is_empty() && notes[0].message.contains("not designated"), "the alert says why");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_tagged_autopilot_actions_on_may_act_outside_the_prefix() {
    let bed = TestBed::new("alarmtagon").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let name = format!("{}-team-cpu", bed.prefix);
    let arn = create_alarm(
        &bed,
        &name,
        ("AWS/ECS", "CPUUtilization", &[("ClusterName", svc.cluster.as_str()), ("ServiceName", "api")]),
        &[("autopilot:actions", "on")],
    )
    .await;
    let mut event = cpu_alarm(&svc, "alarm/eventbridge-metric-cpu.json", "tagon-1");
    event["resources"] = serde_json::json!([arn]);
    event["detail"]["alarmName"] = Value::from(name.clone());
    bed.set_alarm(&name, "ALARM").await;
    let mut p = bed.start("alarm-responder", &[("ALARM_NAME_PREFIX", "payments-autopilot-")]);
    let o = p.outcome(&event);
    assert_eq!(o["actions"][0]["action"], "scale", "{o}");
    assert_eq!(o["actions"][0]["status"], "executed", "{o}");
    assert_eq!(svc.current(&bed).await.1, 4);
}
