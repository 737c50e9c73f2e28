//! The incident core's guarantees under the failures issue 9 names, one test
//! per finding (see the closing note for the map), through the real binaries
//! against the local server — and, where only a race between two writes
//! shows it, through the state store against the same server.

use autopilot_tests::fault_proxy::FaultProxy;
use autopilot_tests::{LedgerSeed, SeededService, TestBed, fixture};
use serde_json::Value;
use shared::adapters::state::{StateStore, Write};
use shared::incident::Subject;
use shared::incident::machine::{Ctx, Input, Learnt, Policy, ProblemKey, ProblemSignal, step};
use shared::{Cause, Kind, Severity};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn is_opening_alert(subject: &str) -> bool {
    !subject.contains("UPDATE") && !subject.starts_with("[RESOLVED]")
}

/// An endpoint that accepts connections and never answers: every call to it
/// hangs until the caller's timeout (or the process dies).
fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind black hole");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    format!("http://{addr}")
}

fn executed(ledger: &[(String, String, String)]) -> usize {
    ledger.iter().filter(|(_, status, _)| status == "executed").count()
}

/// Finding 1: the opener dies after recording the incident and rolling back,
/// while its evidence writes hang; Lambda's retry of the same invocation
/// (same request id) must still send the one opening alert — naming the
/// rollback the dead attempt executed — and must not roll back again.
#[tokio::test(flavor = "multi_thread")]
async fn finding_1_an_opener_killed_before_its_alert_is_retried_into_exactly_one_opening_alert() {
    let bed = TestBed::new("lostalert").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let event = svc.retarget(&fixture("ecs/deployment-failed.json"), "lost-alert-1", "x");
    // Every call through the recording proxy (S3 into a black hole): the
    // rollbacks are counted on the wire.
    let proxy = FaultProxy::start();
    let mut env = bed.function_env();
    env.extend(proxy.env());
    env.push(("AWS_ENDPOINT_URL_S3".into(), black_hole()));
    env.push(("SDK_OPERATION_TIMEOUT_SECONDS".into(), "120".into()));
    env.push(("SDK_ATTEMPT_TIMEOUT_SECONDS".into(), "120".into()));
    let mut first = bed.start_with_env("ecs-events", env);
    let request_id = first.submit(&event);
    // Wait for the rollback (recorded `executing` before its call), then for
    // the process to be stuck in the evidence writes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let acted = |l: &[(String, String, String)]| l.iter().any(|(_, s, _)| s == "executing" || s == "executed");
    while !acted(&svc.ledger(&bed).await) {
        assert!(Instant::now() < deadline, "the first attempt never rolled back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(first.answer(&request_id, Duration::from_millis(10)).is_none(), "stuck in the evidence writes");
    first.kill();
    assert!(bed.notifications().await.is_empty(), "killed before anything was published");

    let mut retry =
        bed.start("ecs-events", &proxy.env().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>());
    let o = tokio::task::block_in_place(|| retry.invoke_as(&request_id, &event)).expect_response("the retry");
    let notes = bed.notifications().await;
    let openings: Vec<_> = notes.iter().filter(|n| is_opening_alert(&n.subject)).collect();
    assert_eq!(openings.len(), 1, "{:?}\n{o}", notes.iter().map(|n| &n.subject).collect::<Vec<_>>());
    assert!(
        openings[0].message.contains("rollback executed"),
        "the dead attempt's rollback is announced:\n{}",
        openings[0].message
    );
    assert_eq!(executed(&svc.ledger(&bed).await), 1, "never a second rollback");
    let wire = proxy.mutations_of(&svc.cluster, &svc.service);
    assert_eq!(wire.len(), 1, "one UpdateService on the wire, by the dead attempt: {wire:#?}");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn);
    // A later redelivery of the same event is a duplicate: still one alert.
    let again = retry.outcome(&event);
    assert_eq!(again["notified"], "suppressed:duplicate-event", "{again}");
    assert!(bed.notifications().await.is_empty(), "nothing more was sent");
}

/// Finding 6: an action executed on the service while its incident is open —
/// by an invocation that lost the race to open it, or died before telling —
/// is announced by the incident's next message, even inside the update interval.
#[tokio::test(flavor = "multi_thread")]
async fn finding_6_an_action_another_invocation_executed_is_announced_by_the_next_message() {
    let bed = TestBed::new("unannounced").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    let stop = fixture("ecs/task-stopped-app-crash.json");
    let mut p = bed.start("ecs-events", &[]);
    let opened = p.outcome(&svc.retarget(&stop, "unann-1", &format!("{:032x}", 1)));
    let incident = opened["incident"].as_str().expect("incident").to_string();
    assert_eq!(bed.notifications().await.len(), 1);
    let detail = "rolled back api:7 -> api:6 (UpdateService); executed by an invocation that died before announcing it";
    svc.seed_ledger(
        &bed,
        &LedgerSeed {
            at: now(),
            action: "rollback",
            status: "executed",
            automatic: true,
            from: Some("api:7"),
            to: Some("api:6"),
            detail,
        },
    )
    .await;
    let joined = p.outcome(&svc.retarget(&stop, "unann-2", &format!("{:032x}", 2)));
    assert_eq!(joined["incident"], incident.as_str());
    // (notifications() hands out each message once: these are the new ones.)
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{joined}");
    assert!(notes[0].subject.contains("UPDATE"), "{}", notes[0].subject);
    assert!(notes[0].message.contains(detail), "the executed action is announced:\n{}", notes[0].message);
    // Announced once: the next stop inside the interval stays quiet.
    let third = p.outcome(&svc.retarget(&stop, "unann-3", &format!("{:032x}", 3)));
    assert_eq!(third["notified"], "suppressed:incident-open-update-interval", "{third}");
}

/// A stale, milder reading can never lower an incident's severity: every
/// write of the record is conditional on the version its writer read, so a
/// writer that read an older version conflicts and steps again on the new one.
#[tokio::test(flavor = "multi_thread")]
async fn a_writer_that_read_an_older_version_conflicts_and_never_lowers_the_severity() {
    let bed = TestBed::new("sevfall").await;
    let state = StateStore::new(bed.dynamodb.clone(), bed.table.clone());
    let store = state.incidents();
    let subject = Subject::service("prod", "api");
    let t = now();
    let policy = Policy {
        window_seconds: 3600,
        update_interval_seconds: 900,
        escalate_after_seconds: 900,
        crash_loop_threshold: 3,
    };
    let ctx = |token: &'static str| Ctx {
        subject: &subject,
        now: t,
        token,
        lease_until: t + 330,
        salt: token,
        policy: &policy,
    };
    let signal = ProblemSignal {
        key: ProblemKey::Tasks,
        label: "task failed".into(),
        kind: Kind::EcsTaskStopped,
        at: t,
        severity: Severity::Sev3,
        cause: Some(Cause::Unknown),
        revision: None,
        task: None,
        news: false,
        note: None,
    };
    let opened = step(None, &Input::Problem(signal.clone()), &ctx("req-a")).record.expect("open");
    assert_eq!(store.write(None, &opened, "req-a#1").await.expect("create"), Write::Written);
    // A and B both read version 0 …
    let read = store.get(&subject).await.expect("read").expect("stored");
    // … B raises it to SEV2 and writes first …
    let raised = step(
        Some(&read),
        &Input::Learnt(Learnt { severity: Some(Severity::Sev2), ..Default::default() }),
        &ctx("req-b"),
    )
    .record
    .expect("raised");
    assert_eq!(store.write(Some(&read), &raised, "req-b#1").await.expect("b"), Write::Written);
    // … then A, still on version 0 and believing SEV3, is refused.
    let stale = step(Some(&read), &Input::Problem(signal.clone()), &ctx("req-a")).record.expect("a");
    assert_eq!(stale.severity, Severity::Sev3);
    assert_eq!(store.write(Some(&read), &stale, "req-a#2").await.expect("a"), Write::Conflict);
    // Stepping again on what is stored keeps the higher severity.
    let fresh = store.get(&subject).await.expect("read").expect("stored");
    let again = step(Some(&fresh), &Input::Problem(signal), &ctx("req-a")).record.expect("a again");
    assert_eq!(store.write(Some(&fresh), &again, "req-a#3").await.expect("a"), Write::Written);
    let stored = store.get(&subject).await.expect("read").expect("stored");
    assert_eq!((stored.severity, stored.version, stored.events), (Severity::Sev2, 2, 2));
}

/// Finding 10: a crash loop is counted once per task, per revision, within
/// the window: two failures of the old revision (one reported twice) and
/// one of a fresh revision are not a crash loop of the fresh one, and do not
/// roll it back.
#[tokio::test(flavor = "multi_thread")]
async fn finding_10_old_failures_and_repeated_reports_do_not_make_a_fresh_revision_a_crash_loop() {
    let bed = TestBed::new("perrev").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    let stop = fixture("ecs/task-stopped-app-crash.json");
    let old = svc.task_definition_arn.clone();
    let mut p = bed.start("ecs-events", &[]);
    let at = |event_id: &str, task: u32, td: &str| {
        let mut e = svc.retarget(&stop, event_id, &format!("{task:032x}"));
        e["detail"]["taskDefinitionArn"] = Value::from(td);
        e
    };
    p.outcome(&at("perrev-1", 1, &old));
    p.outcome(&at("perrev-2", 2, &old));
    // The same task's stop reported again under another event id.
    p.outcome(&at("perrev-2b", 2, &old));
    let fresh = svc.deploy_new_revision(&bed, "v2.5.0").await;
    let o = p.outcome(&at("perrev-3", 3, &fresh));
    let summary = o["summary"].as_str().unwrap_or_default();
    assert!(!summary.contains("failed tasks)"), "one failure of the fresh revision, counted alone: {o}");
    let acted = o["actions"].as_array().is_some_and(|a| a.iter().any(|x| x["status"] == "executed"));
    assert!(!acted, "{o}");
    assert_eq!(executed(&svc.ledger(&bed).await), 0);
    assert_eq!(svc.current(&bed).await.0, fresh, "the fresh revision keeps running");
    // Two more distinct failures of the fresh revision make three of it.
    p.outcome(&at("perrev-4", 4, &fresh));
    let third = p.outcome(&at("perrev-5", 5, &fresh));
    assert!(third["summary"].as_str().unwrap_or_default().contains("(3 failed tasks)"), "{third}");
}

/// Open incidents are listed from the sparse index: two services' incidents
/// appear, and a resolved one leaves the list.
#[tokio::test(flavor = "multi_thread")]
async fn open_incidents_are_listed_and_leave_the_list_when_resolved() {
    let bed = TestBed::new("listing").await;
    let api = SeededService::create(&bed, "api", 2).await;
    let web = SeededService::create(&bed, "web", 2).await;
    let stop = fixture("ecs/task-stopped-app-crash.json");
    let mut p = bed.start("ecs-events", &[]);
    let a = p.outcome(&api.retarget(&stop, "list-1", &format!("{:032x}", 1)));
    let w = p.outcome(&web.retarget(&stop, "list-2", &format!("{:032x}", 2)));
    let state = StateStore::new(bed.dynamodb.clone(), bed.table.clone());
    let mut ids: Vec<String> = state.incidents().open_all().await.expect("list").into_iter().map(|i| i.id).collect();
    ids.sort();
    let mut expected = vec![a["incident"].as_str().unwrap().to_string(), w["incident"].as_str().unwrap().to_string()];
    expected.sort();
    assert_eq!(ids, expected);
    let steady = api.retarget(&fixture("ecs/service-steady-state.json"), "list-3", "x");
    let resolved = p.outcome(&steady);
    assert_eq!(resolved["incident"], a["incident"], "{resolved}");
    let left: Vec<String> = state.incidents().open_all().await.expect("list").into_iter().map(|i| i.id).collect();
    assert_eq!(left, vec![w["incident"].as_str().unwrap().to_string()]);
    // The resolution names the post-incident report stored beside the evidence.
    let resolution =
        bed.notifications().await.into_iter().find(|n| n.subject.starts_with("[RESOLVED]")).expect("resolution");
    let id = a["incident"].as_str().unwrap();
    assert!(resolution.message.contains(&format!("{id}/report.md")), "{}", resolution.message);
    let report_key = bed.evidence_keys().await.into_iter().find(|k| k.contains(id) && k.ends_with("report.md"));
    let report_key = report_key.expect("report.md stored");
    let body = bed.s3.get_object().bucket(&bed.bucket).key(&report_key).send().await.expect("get report");
    let text = String::from_utf8(body.body.collect().await.expect("read").into_bytes().to_vec()).expect("utf-8");
    for section in
        ["# Incident report:", "## Impact", "## Timeline (UTC)", "## Root cause", "## Resolution", "## Follow-up"]
    {
        assert!(text.contains(section), "{section}:\n{text}");
    }
}

/// Per-service tuning comes from the service's tags; a tag that does not
/// parse keeps the default and the alert says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_services_tuning_tags_are_read_and_a_bad_one_is_named_in_the_alert() {
    let bed = TestBed::new("tuning").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    svc.tag(&bed, "autopilot:crash-loop-threshold", "zero").await;
    let mut p = bed.start("ecs-events", &[]);
    p.outcome(&svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), "tune-1", &format!("{:032x}", 1)));
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].message.contains("autopilot:crash-loop-threshold=\"zero\" is not a whole number"),
        "{}",
        notes[0].message
    );
}

/// A service tagged `autopilot:team` has every message of its incident
/// carry the attribute `team`, so a team's filter policy routes the alert
/// and the resolution to it; untagged services say `team=none`. Matched by
/// the local server's own filter-policy evaluation.
#[tokio::test(flavor = "multi_thread")]
async fn a_teams_filter_policy_receives_its_services_alert_and_resolution_and_nothing_else() {
    let bed = TestBed::new("team").await;
    let payments = SeededService::create(&bed, "pay", 3).await;
    payments.tag(&bed, "autopilot:team", "payments").await;
    let other = SeededService::create(&bed, "web", 3).await;
    let team_queue = bed.subscribe_filtered("payments", r#"{"team": ["payments"]}"#).await;
    let untagged_queue = bed.subscribe_filtered("untagged", r#"{"team": ["none"]}"#).await;
    let mut p = bed.start("ecs-events", &[]);
    p.outcome(&payments.retarget(&fixture("ecs/task-stopped-app-crash.json"), "team-1", &format!("{:032x}", 1)));
    p.outcome(&other.retarget(&fixture("ecs/task-stopped-app-crash.json"), "team-2", &format!("{:032x}", 2)));
    let resolved = p.outcome(&payments.retarget(&fixture("ecs/service-steady-state.json"), "team-3", "x"));
    assert!(resolved["summary"].as_str().unwrap_or_default().contains("resolved"), "{resolved}");

    let all = bed.notifications().await;
    assert_eq!(all.len(), 3, "the unfiltered subscriber gets everything: {:?}", subjects(&all));
    let team = bed.notifications_in(&team_queue).await;
    assert_eq!(team.len(), 2, "the payments subscriber: {:?}", subjects(&team));
    assert!(team.iter().all(|n| n.attributes["service"]["Value"] == "pay"), "{:?}", subjects(&team));
    assert!(team[1].subject.starts_with("[RESOLVED]"), "{:?}", subjects(&team));
    assert!(team.iter().all(|n| n.attributes["team"]["Value"] == "payments"));
    let untagged = bed.notifications_in(&untagged_queue).await;
    assert_eq!(untagged.len(), 1, "the untagged service's alert only: {:?}", subjects(&untagged));
    assert_eq!(untagged[0].attributes["service"]["Value"], "web");
}

fn subjects(notes: &[autopilot_tests::testbed::Notification]) -> Vec<&str> {
    notes.iter().map(|n| n.subject.as_str()).collect()
}

/// Issue 25: a join on a cold instance. The incident is opened by one
/// process, which then ends; the next stop of the same failure is the first
/// event of a freshly started process (a cold Lambda instance, nothing in
/// memory). It must join the open incident exactly as a warm instance does:
/// the same incident id, no second alert, the stop counted in the record.
#[tokio::test(flavor = "multi_thread")]
async fn a_join_handled_by_a_cold_instance_joins_the_open_incident_as_a_warm_one_does() {
    let bed = TestBed::new("cold-join").await;
    let svc = SeededService::create(&bed, "api", 3).await;
    let stop = fixture("ecs/task-stopped-app-crash.json");
    let pk = format!("service#{}/{}", svc.cluster, svc.service);
    let incident = {
        let mut opener = bed.start("ecs-events", &[]);
        let opened = opener.outcome(&svc.retarget(&stop, "cold-1", &format!("{:032x}", 1)));
        opened["incident"].as_str().expect("incident").to_string()
        // The opener's process ends here.
    };
    assert_eq!(bed.notifications().await.len(), 1, "the opening alert");
    let before = bed.incident_record(&pk).await.expect("the open incident");
    assert_eq!(before["failures"]["total"], 1, "{before}");

    let mut cold = bed.start("ecs-events", &[]);
    let joined = cold.outcome(&svc.retarget(&stop, "cold-2", &format!("{:032x}", 2)));
    assert_eq!(joined["incident"], incident.as_str(), "the cold instance joins the open incident: {joined}");
    assert!(
        joined["notified"].as_str().is_some_and(|n| n.starts_with("suppressed:")),
        "a join sends no second alert: {joined}"
    );
    let after = bed.incident_record(&pk).await.expect("still open");
    assert_eq!(after["id"], incident.as_str(), "{after}");
    assert_eq!(after["failures"]["total"], 2, "the cold join counted its stop: {after}");
    assert!(after["version"].as_u64() > before["version"].as_u64(), "{before}\n{after}");

    // The same instance, warm now: the next join answers the same way.
    let warm = cold.outcome(&svc.retarget(&stop, "cold-3", &format!("{:032x}", 3)));
    for k in ["incident", "notified", "severity", "cause", "kind"] {
        assert_eq!(warm[k], joined[k], "{k}: cold {joined}\nwarm {warm}");
    }
    let last = bed.incident_record(&pk).await.expect("still open");
    assert_eq!(last["failures"]["total"], 3, "{last}");
    assert!(bed.notifications().await.is_empty(), "no message for either join (inside the update interval)");
}
