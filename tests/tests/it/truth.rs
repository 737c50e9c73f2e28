//! The incident machine's truth rules through the real binaries (issue 19):
//! signals judged at their own event time, recoveries that clear only what
//! they speak for, a bounded record, alerts left pending delivered by the
//! scheduled run, the opening alert's severity at send time. Each test
//! names the finding it shows; each failed on the code before the machine.

use autopilot_tests::fault_proxy::{Fault, FaultProxy, Rule};
use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::{Value, json};
use std::time::Duration;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn iso(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn task(n: usize) -> String {
    format!("{:032x}", 0x7e57_0000_u64 + n as u64)
}

fn pk(svc: &SeededService) -> String {
    format!("service#{}/{}", svc.cluster, svc.service)
}

/// The 5xx-rate alarm fixture pointed at `svc` through its target group.
fn five_xx(svc: &SeededService, id: &str) -> Value {
    let tg = svc.target_group_arn.rsplit(':').next().unwrap_or_default().to_string();
    let mut e = fixture("alarm/eventbridge-metric-math-5xx-rate.json");
    e["id"] = Value::from(id);
    for m in e["detail"]["configuration"]["metrics"].as_array_mut().into_iter().flatten() {
        if let Some(dims) = m.pointer_mut("/metricStat/metric/dimensions") {
            dims["TargetGroup"] = Value::from(tg.clone());
        }
    }
    e
}

/// The CPU alarm fixture pointed at `svc` by its dimensions.
fn cpu(svc: &SeededService, file: &str, id: &str) -> Value {
    let mut v = fixture(file);
    v["id"] = Value::from(id);
    v["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({"ClusterName": svc.cluster, "ServiceName": svc.service});
    v
}

/// Finding 1: a 5xx ALARM retried by Lambda after the alarm went back to OK
/// (a fresh deployment on the service: its runbook would roll back) neither
/// acts nor pages — the alarm is read first.
#[tokio::test(flavor = "multi_thread")]
async fn finding_1_a_stale_alarm_retried_after_the_alarm_went_back_to_ok_neither_acts_nor_pages() {
    let bed = TestBed::new("truth-stale-alarm").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let (fresh, _) = svc.release(&bed, "v2").await;
    let mut event = five_xx(&svc, "stale-5xx");
    // It fired (the event says when), then went back to OK before the retry came.
    let alarm = bed.own_alarm(&mut event, "ALARM").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    bed.set_alarm(&alarm, "OK").await;
    let mut p = bed.start("alarm-responder", &[("CLUSTERS", svc.cluster.as_str()), ("ALARM_NAME_PREFIX", "prod-api-")]);
    let o = p.outcome(&event);
    assert_eq!(o["notified"], "suppressed:alarm-recovered", "{o}");
    assert!(o["summary"].as_str().unwrap_or_default().contains("stale"), "{o}");
    assert!(o["actions"].as_array().is_some_and(Vec::is_empty), "no action on a stale alarm: {o}");
    assert_eq!(svc.current(&bed).await.0, fresh, "the recovered service keeps its revision");
    assert!(bed.notifications().await.is_empty(), "nobody is paged for an alarm that is OK");
    assert!(bed.incident_record(&pk(&svc)).await.is_none(), "no incident left open that its OK could never resolve");
}

/// Finding 1 (its other half): an alarm incident whose OK event was lost is
/// resolved by the scheduled run, which reads the alarm and finds it OK.
#[tokio::test(flavor = "multi_thread")]
async fn finding_1_an_alarm_incident_whose_ok_was_lost_is_resolved_by_reading_the_alarm() {
    let bed = TestBed::new("truth-alarm-read").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let mut first = cpu(&svc, "alarm/eventbridge-metric-cpu.json", "cpu-1");
    let alarm = bed.own_alarm(&mut first, "ALARM").await;
    let mut p = bed.start("alarm-responder", &[]);
    let opened = p.outcome(&first);
    assert!(opened["incident"].is_string(), "{opened}");
    bed.notifications().await;
    let mut reports = bed.start("scheduled-reports", &[]);
    let run = reports.outcome(&json!({"job": "escalate"}));
    assert!(run["summary"].as_str().unwrap_or_default().contains("0 resolved"), "still firing: {run}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // It goes back to OK; the OK event is lost.
    bed.set_alarm(&alarm, "OK").await;
    let run = reports.outcome(&json!({"job": "escalate"}));
    assert!(run["summary"].as_str().unwrap_or_default().contains("1 resolved"), "{run}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{:?}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    assert!(notes[0].subject.starts_with("[RESOLVED]"), "{}", notes[0].subject);
    assert!(notes[0].message.contains("read OK"), "{}", notes[0].message);
    assert!(notes[0].message.contains(opened["incident"].as_str().unwrap_or("?")), "{}", notes[0].message);
}

/// Finding 2: steady state does not resolve an incident a CPU alarm opened
/// while that alarm still fires; the alarm's OK does.
#[tokio::test(flavor = "multi_thread")]
async fn finding_2_steady_state_leaves_a_firing_cpu_alarms_incident_open() {
    let bed = TestBed::new("truth-scope").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let mut firing = cpu(&svc, "alarm/eventbridge-metric-cpu.json", "scope-cpu");
    let alarm = bed.own_alarm(&mut firing, "ALARM").await;
    let mut alarms = bed.start("alarm-responder", &[]);
    let opened = alarms.outcome(&firing);
    let incident = opened["incident"].as_str().expect("incident").to_string();
    bed.notifications().await;
    let mut ecs = bed.start("ecs-events", &[]);
    let steady = ecs.outcome(&svc.retarget(&fixture("ecs/service-steady-state.json"), "scope-steady", "x"));
    assert!(steady["summary"].as_str().unwrap_or_default().contains("alarm"), "names what stays open: {steady}");
    assert!(bed.notifications().await.is_empty(), "no resolution while the alarm fires");
    let record = bed.incident_record(&pk(&svc)).await.expect("record");
    assert_eq!(record["state"]["state"], "open", "{record}");
    // The alarm's own OK resolves it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut ok = cpu(&svc, "alarm/eventbridge-metric-cpu-ok.json", "scope-ok");
    let _ = alarm;
    bed.own_alarm(&mut ok, "OK").await;
    let resolved = alarms.outcome(&ok);
    assert_eq!(resolved["incident"], incident.as_str(), "{resolved}");
    assert!(bed.notifications().await.iter().any(|n| n.subject.starts_with("[RESOLVED]")));
}

/// Finding 2: a steady state delivered late — it happened before the
/// incident opened — resolves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn finding_2_a_steady_state_older_than_the_incident_resolves_nothing() {
    let bed = TestBed::new("truth-late-steady").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let mut ecs = bed.start("ecs-events", &[]);
    let opened = ecs.outcome(&svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "late-1", &task(1)));
    bed.notifications().await;
    let mut late = svc.retarget(&fixture("ecs/service-steady-state.json"), "late-steady", "x");
    late["time"] = Value::from(iso(now() - 600));
    late["detail"]["createdAt"] = Value::from(iso(now() - 600));
    let o = ecs.outcome(&late);
    assert_eq!(o["incident"], opened["incident"], "{o}");
    assert!(o["summary"].as_str().unwrap_or_default().contains("older than"), "{o}");
    assert!(bed.notifications().await.is_empty(), "no resolution from a recovery older than the incident");
    // A current one does.
    let now_steady = ecs.outcome(&svc.retarget(&fixture("ecs/service-steady-state.json"), "late-steady-2", "x"));
    assert_eq!(now_steady["incident"], opened["incident"], "{now_steady}");
    assert!(bed.notifications().await.iter().any(|n| n.subject.starts_with("[RESOLVED]")));
}

/// Finding 3 (and 10's TTL): a crash loop of hundreds of stops keeps the
/// open record small, every task counted once; an open record carries no
/// TTL, the open index only keys.
#[tokio::test(flavor = "multi_thread")]
async fn finding_3_hundreds_of_stops_keep_the_open_record_small_and_it_never_expires_by_ttl() {
    let bed = TestBed::new("truth-bounded").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    let stop = fixture("ecs/task-stopped-app-crash.json");
    let mut ecs = bed.start("ecs-events", &[]);
    let stops = 240;
    for n in 0..stops {
        let mut e = svc.retarget(&stop, &format!("bounded-{n}"), &task(n));
        // Stopped over the last 40 minutes, one every ten seconds.
        let at = now() - 2400 + 10 * n as i64;
        e["detail"]["stoppedAt"] = Value::from(iso(at));
        ecs.outcome(&e);
        if n % 60 == 0 {
            // The same task reported again (STOPPING, then STOPPED; a redelivery).
            ecs.outcome(&svc.retarget(&stop, &format!("bounded-{n}-again"), &task(n)));
        }
    }
    let item = bed
        .dynamodb
        .get_item()
        .table_name(&bed.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk(&svc)))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("incident#open".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .expect("the open record");
    let size: usize = item.iter().map(|(k, v)| k.len() + v.as_s().map(String::len).unwrap_or(16)).sum();
    assert!(size < 16 * 1024, "the open record stays small: {size} bytes");
    assert!(!item.contains_key("expires_at"), "an open incident is never deleted by TTL");
    let record = bed.incident_record(&pk(&svc)).await.expect("record");
    assert_eq!(record["failures"]["total"], stops, "each task once: {}", record["failures"]);
    assert!(record["failures"]["recent"].as_array().is_some_and(|r| r.len() <= 32));
    let table = bed.dynamodb.describe_table().table_name(&bed.table).send().await.expect("describe");
    let index = table.table().and_then(|t| t.global_secondary_indexes().first().cloned()).expect("the open index");
    assert_eq!(
        index.projection().and_then(|p| p.projection_type()).map(|t| t.as_str()),
        Some("KEYS_ONLY"),
        "the index lists keys, not a second copy of every record"
    );
    assert_eq!(bed.notifications().await.iter().filter(|n| n.message.starts_with("INCIDENT ALERT")).count(), 1);
}

/// Finding 6: a one-shot signal whose alert could not be sent (SNS down for
/// its sender, which then gave up) is delivered by the scheduled run —
/// once, however many runs race for it.
#[tokio::test(flavor = "multi_thread")]
async fn finding_6_an_alert_left_pending_is_delivered_by_the_escalate_run_exactly_once() {
    let bed = TestBed::new("truth-pending").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    let broken = format!("{}-deleted", bed.topic_arn);
    let mut down = bed.start("ecs-events", &[("NOTIFY_TOPIC_ARN", broken.as_str())]);
    let failed = svc.retarget(&fixture("ecs/deployment-failed.json"), "pending-1", "x");
    let err = down.invoke(&failed);
    assert!(!matches!(err, autopilot_tests::InvokeResult::Response(_)), "the unsent alert fails the invocation");
    let record = bed.incident_record(&pk(&svc)).await.expect("recorded before the alert");
    assert!(record["alert_at"].is_null(), "pending: {record}");
    // No other signal comes. The escalation runs, three at once.
    let env = bed.function_env();
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let (env, name) = (env.clone(), format!("{}-pending-{i}", bed.prefix));
            std::thread::spawn(move || {
                let mut p =
                    autopilot_tests::LambdaProcess::start(&autopilot_tests::binary("scheduled-reports"), &name, &env);
                p.wait_ready(Duration::from_secs(20));
                p.invoke(&json!({"job": "escalate"})).expect_response("escalate")
            })
        })
        .collect();
    let outcomes: Vec<Value> = runs.into_iter().map(|r| r.join().expect("run")).collect();
    let notes = bed.notifications().await;
    let alerts: Vec<_> = notes.iter().filter(|n| n.message.starts_with("INCIDENT ALERT")).collect();
    assert_eq!(
        alerts.len(),
        1,
        "exactly one opening alert: {:?}\n{outcomes:#?}",
        notes.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    assert!(alerts[0].subject.contains("deployment failed"), "{}", alerts[0].subject);
    let record = bed.incident_record(&pk(&svc)).await.expect("record");
    assert!(record["alert_at"].is_i64(), "delivered: {record}");
    assert!(
        outcomes.iter().any(|o| o["summary"].as_str().unwrap_or_default().contains("1 pending alert(s) delivered"))
    );
}

/// Finding 7: a rise of severity another invocation records while the
/// opening alert is on its way is announced at once by an update.
#[tokio::test(flavor = "multi_thread")]
async fn finding_7_a_rise_recorded_while_the_opening_alert_was_sent_is_announced() {
    let bed = TestBed::new("truth-rise").await;
    // Scaled to zero: one failed task is a SEV3 warning, not "service down".
    let svc = SeededService::create(&bed, "api", 0).await;
    let proxy = FaultProxy::start();
    // The first Publish hangs (never forwarded) until its attempt times out; the SDK's retry goes through.
    proxy.inject(Rule::new("sns:Publish", Fault::Hang).times(1));
    let sns = proxy.url();
    let mut ecs =
        bed.start("ecs-events", &[("AWS_ENDPOINT_URL_SNS", sns.as_str()), ("SDK_ATTEMPT_TIMEOUT_SECONDS", "3")]);
    let stop = svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "rise-1", &task(1));
    let opener = std::thread::spawn(move || {
        let o = ecs.invoke(&stop).expect_response("opener");
        (ecs, o)
    });
    proxy.wait_hung(Duration::from_secs(30)).expect("the opening alert is on its way");
    // Meanwhile another invocation records SEV1 (its write bumps the version).
    bed.edit_incident(&pk(&svc), |r| {
        r["severity"] = Value::from("SEV1");
        let v = r["version"].as_u64().unwrap_or_default();
        r["version"] = Value::from(v + 1);
    })
    .await;
    let (_ecs, o) = opener.join().expect("opener");
    let notes = bed.notifications().await;
    let subjects: Vec<&str> = notes.iter().map(|n| n.subject.as_str()).collect();
    assert_eq!(notes.len(), 2, "the alert and the update announcing the rise: {subjects:?}\n{o}");
    assert!(notes[0].subject.starts_with("[SEV3]"), "{subjects:?}");
    assert!(notes[1].subject.starts_with("[SEV1]") && notes[1].subject.contains("UPDATE"), "{subjects:?}");
    assert!(notes[1].message.contains("severity raised from SEV3"), "{}", notes[1].message);
    assert!(
        proxy.injected_into("sns:Publish") > 0,
        "the fault aimed at sns:Publish was injected (else this proved nothing)"
    );
}

/// Finding 9: a stop counts at ECS's stop time — two stops from before the
/// window, delivered late, neither page nor make the third a crash loop.
#[tokio::test(flavor = "multi_thread")]
async fn finding_9_late_stops_count_at_their_stop_time() {
    let bed = TestBed::new("truth-stop-time").await;
    let svc = SeededService::create(&bed, "api", 0).await;
    let stop = fixture("ecs/task-stopped-app-crash.json");
    let mut ecs = bed.start("ecs-events", &[("INCIDENT_WINDOW_MINUTES", "30")]);
    for n in 0..2 {
        let mut e = svc.retarget(&stop, &format!("stop-time-{n}"), &task(n));
        e["detail"]["stoppedAt"] = Value::from(iso(now() - 50 * 60));
        let o = ecs.outcome(&e);
        assert_eq!(o["notified"], "suppressed:stale-signal", "stopped 50 minutes ago, window 30: {o}");
    }
    assert!(bed.notifications().await.is_empty());
    let third = ecs.outcome(&svc.retarget(&stop, "stop-time-2", &task(2)));
    let summary = third["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("task failed") && !summary.contains("failed tasks)"),
        "one failure in the window: {third}"
    );
    assert_eq!(third["severity"], "SEV3", "{third}");
}
