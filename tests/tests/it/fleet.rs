//! The fleet against the local server: one central deployment (the local
//! server's own account, 111122223333) and two member accounts, reached
//! through the member role the central functions assume (STS `AssumeRole`;
//! the server then acts in the member account, `scripts/moto_server_atomic.py`).
//! Both members run a service of the same cluster and name: incidents,
//! state keys, evidence and messages must keep them apart.

use autopilot_tests::fault_proxy::{Fault, FaultProxy, Rule};
use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::Value;

const MEMBER_A: &str = "444455556666";
const MEMBER_B: &str = "777788889999";
const MEMBERS: &str = "444455556666,777788889999";

fn stopped(svc: &SeededService, event_id: &str, task: u32) -> Value {
    svc.retarget(&fixture("ecs/task-stopped-app-crash.json"), event_id, &format!("{task:032x}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_task_in_each_member_opens_one_incident_each_keyed_and_labelled_by_account() {
    let bed = TestBed::new("fleet-open").await;
    let (in_a, in_b) = (bed.member(MEMBER_A).await, bed.member(MEMBER_B).await);
    let a = SeededService::create(&in_a, "api", 2).await;
    let b = SeededService::create(&in_b, "api", 2).await;
    assert_eq!(
        (a.cluster.as_str(), a.service.as_str()),
        (b.cluster.as_str(), b.service.as_str()),
        "one name, two accounts"
    );
    assert!(a.service_arn.contains(MEMBER_A) && b.service_arn.contains(MEMBER_B), "seeded in the members");

    let mut events = bed.start("ecs-events", &[("ACCOUNTS", MEMBERS)]);
    let oa = events.outcome(&stopped(&a, "fleet-a-1", 1));
    let ob = events.outcome(&stopped(&b, "fleet-b-1", 2));
    let (ia, ib) = (oa["incident"].as_str().expect("incident in A"), ob["incident"].as_str().expect("incident in B"));
    assert_ne!(ia, ib, "two accounts, two incidents: {oa}\n{ob}");
    // A redelivery and a second stop in A join A's incident.
    events.outcome(&stopped(&a, "fleet-a-1", 1));
    let again = events.outcome(&stopped(&a, "fleet-a-2", 3));
    assert_eq!(again["incident"], ia, "{again}");

    // Keyed by account and region; nothing under home's key of that name.
    assert_eq!(a.state_key(), format!("{MEMBER_A}/us-east-1/service#{}/api", a.cluster));
    let ra = bed.incident_record(&a.state_key()).await.expect("A's incident under A's key");
    let rb = bed.incident_record(&b.state_key()).await.expect("B's incident under B's key");
    assert_eq!(ra["id"], ia);
    assert_eq!(rb["id"], ib);
    assert!(bed.incident_record(&format!("service#{}/api", a.cluster)).await.is_none(), "nothing at home");

    // Labelled by account: one alert each, its subject, body and attributes.
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 2, "{notes:#?}");
    for (account, incident) in [(MEMBER_A, ia), (MEMBER_B, ib)] {
        let n = notes.iter().find(|n| n.message.contains(incident)).expect("the incident's alert");
        assert!(n.subject.contains(&format!("{account} us-east-1 {}/api", a.cluster)), "{}", n.subject);
        assert!(n.message.starts_with(&format!("Account {account} in us-east-1")), "{}", n.message);
        assert_eq!(n.attributes["account"]["Value"], account, "{}", n.attributes);
        assert_eq!(n.attributes["region"]["Value"], "us-east-1", "{}", n.attributes);
    }
    // Evidence under each account's prefix, read there (the service description names the member's ARN).
    let keys = bed.evidence_keys().await;
    for (account, incident, arn) in [(MEMBER_A, ia, &a.service_arn), (MEMBER_B, ib, &b.service_arn)] {
        let prefix = format!("incidents/{account}/us-east-1/{}/api/{incident}/", a.cluster);
        assert!(keys.iter().any(|k| k.starts_with(&prefix)), "{prefix} in {keys:#?}");
        let objects = bed.evidence_objects(&prefix).await;
        let bundle = objects.iter().find(|(k, _)| k.ends_with("bundle.json")).expect("bundle");
        assert!(String::from_utf8_lossy(&bundle.1).contains(arn.as_str()), "the bundle describes {arn}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_deployment_in_one_member_is_rolled_back_in_that_account_only() {
    let bed = TestBed::new("fleet-rollback").await;
    let (in_a, in_b) = (bed.member(MEMBER_A).await, bed.member(MEMBER_B).await);
    let a = SeededService::create(&in_a, "api", 2).await;
    let b = SeededService::create(&in_b, "api", 2).await;
    let bad_a = a.deploy_new_revision(&in_a, "v2.4.0-broken").await;
    let bad_b = b.deploy_new_revision(&in_b, "v2.4.0-broken").await;

    let mut events = bed.start("ecs-events", &[("ACCOUNTS", MEMBERS)]);
    let o = events.outcome(&a.retarget(&fixture("ecs/deployment-failed.json"), "fleet-rb-1", "x"));
    let action = &o["actions"][0];
    assert_eq!((action["action"].as_str(), action["status"].as_str()), (Some("rollback"), Some("executed")), "{o}");
    assert_eq!(a.current(&in_a).await.0, a.task_definition_arn, "A runs its previous revision again");
    assert_ne!(a.current(&in_a).await.0, bad_a);
    assert_eq!(b.current(&in_b).await.0, bad_b, "B is untouched");
    let executed = |l: &[(String, String, String)]| l.iter().filter(|(_, s, _)| s == "executed").count();
    assert_eq!(executed(&a.ledger(&bed).await), 1, "A's ledger, under A's key");
    assert!(b.ledger(&bed).await.is_empty(), "nothing in B's ledger");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].subject.contains(MEMBER_A) && notes[0].message.contains("rollback executed"), "{notes:#?}");
    let keys = bed.evidence_keys().await;
    assert!(
        keys.iter().any(|k| k.starts_with(&format!("incidents/{MEMBER_A}/us-east-1/{}/api/actions/", a.cluster))),
        "pre-action state under A's prefix: {keys:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_whose_role_cannot_be_assumed_gets_an_alert_naming_it() {
    const UNREACHABLE: &str = "999988887777";
    let bed = TestBed::new("fleet-denied").await;
    let in_a = bed.member(MEMBER_A).await;
    let a = SeededService::create(&in_a, "api", 2).await;
    // The member's trust policy refuses the central role: STS answers AccessDenied.
    let proxy = FaultProxy::start();
    proxy.inject(Rule::new("sts:AssumeRole", Fault::Denied).containing(UNREACHABLE));
    let mut env = bed.function_env();
    env.extend(proxy.env());
    env.push(("ACCOUNTS".into(), format!("{MEMBERS},{UNREACHABLE}")));
    let mut events = bed.start_with_env("ecs-events", env);

    let mut from_unreachable = stopped(&a, "fleet-denied-1", 1);
    from_unreachable["account"] = UNREACHABLE.into();
    let o = events.outcome(&from_unreachable);
    let summary = o["summary"].as_str().expect("summary");
    for want in [UNREACHABLE, "ecs-autopilot-member", "cannot be assumed", "AccessDenied"] {
        assert!(summary.contains(want), "{want} in {summary}");
    }
    assert_eq!(o["severity"], "SEV2");
    assert!(o["notified"].as_str().is_some_and(|n| !n.starts_with("suppressed")), "{o}");
    // A storm from that account: one notice per hour, each input answered.
    let mut second = stopped(&a, "fleet-denied-2", 2);
    second["account"] = UNREACHABLE.into();
    let o2 = events.outcome(&second);
    assert!(o2["notified"].as_str().is_some_and(|n| n.starts_with("suppressed")), "{o2}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(notes[0].subject.contains(UNREACHABLE), "{}", notes[0].subject);
    assert!(notes[0].message.contains("arn:aws:iam::999988887777:role/ecs-autopilot-member"), "{}", notes[0].message);
    // Nothing was read or opened there.
    assert!(proxy.calls().iter().all(|c| !c.op.starts_with("ecs:")), "no ECS call for the unreachable account");
    assert!(bed.incident_record(&a.state_key().replace(MEMBER_A, UNREACHABLE)).await.is_none());
    // The reachable member still works through the same function.
    let ok = events.outcome(&stopped(&a, "fleet-denied-3", 3));
    assert!(ok["incident"].as_str().is_some(), "{ok}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_account_stack_upgrades_in_place_its_open_incident_and_known_good_records_are_found() {
    let bed = TestBed::new("fleet-upgrade").await;
    let svc = SeededService::create(&bed, "api", 2).await;
    // The layout every release before the fleet wrote: `service#<cluster>/<service>`.
    let old_key = format!("service#{}/{}", svc.cluster, svc.service);
    assert_eq!(svc.state_key(), old_key, "home keys are unchanged");

    // A release whose tasks crash: the incident's failed revision.
    let bad = svc.deploy_new_revision(&bed, "v2.4.0-broken").await;
    let on_bad = |v: Value| -> Value {
        serde_json::from_str(&v.to_string().replace(&svc.task_definition_arn, &bad)).expect("json")
    };
    // Before: a single-account configuration (no ACCOUNTS, no member
    // settings) opens an incident; in dry-run, so that the one rollback the
    // budget allows is left to the upgraded function.
    let mut before = bed.start("ecs-events", &[("DRY_RUN", "true")]);
    let opened = before.outcome(&on_bad(stopped(&svc, "upgrade-1", 1)));
    let incident = opened["incident"].as_str().expect("incident").to_string();
    drop(before);
    assert_eq!(bed.incident_record(&old_key).await.expect("under the old key")["id"], incident);
    // And the revision it runs was known good, written under the old key.
    let family_rev = svc.task_definition_arn.rsplit('/').next().expect("family:revision").to_string();
    let an_hour_ago = chrono::Utc::now().timestamp() - 3600;
    bed.dynamodb
        .put_item()
        .table_name(&bed.table)
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(old_key.clone()))
        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S(format!("known-good#{family_rev}")))
        .item("task_definition", aws_sdk_dynamodb::types::AttributeValue::S(svc.task_definition_arn.clone()))
        .item("first_completed_at", aws_sdk_dynamodb::types::AttributeValue::N(an_hour_ago.to_string()))
        .item("completed_at", aws_sdk_dynamodb::types::AttributeValue::N(an_hour_ago.to_string()))
        .item("completed_by", aws_sdk_dynamodb::types::AttributeValue::S("ecs-svc/1111111111111111111".into()))
        .send()
        .await
        .expect("known-good record");
    bed.notifications().await;

    // After the upgrade: the fleet's settings, the same table.
    let mut after = bed.start(
        "ecs-events",
        &[("ACCOUNTS", MEMBERS), ("REGIONS", "us-east-1,eu-west-1"), ("MEMBER_ROLE_NAME", "ecs-autopilot-member")],
    );
    let joined = after.outcome(&on_bad(stopped(&svc, "upgrade-2", 2)));
    assert_eq!(joined["incident"], incident.as_str(), "the open incident is found: {joined}");
    let o = after.outcome(&svc.retarget(&fixture("ecs/deployment-failed.json"), "upgrade-3", "x"));
    assert_eq!(o["incident"], incident.as_str(), "{o}");
    // The crash loop (its second failed task) or the failed deployment rolls
    // back once, to the revision the old known-good record names.
    let executed: Vec<&Value> = [&joined, &o]
        .into_iter()
        .flat_map(|x| x["actions"].as_array().into_iter().flatten())
        .filter(|a| a["action"] == "rollback" && a["status"] == "executed")
        .collect();
    assert_eq!(executed.len(), 1, "{joined}\n{o}");
    let detail = executed[0]["detail"].as_str().expect("detail");
    assert!(detail.contains("KnownGood") && !detail.contains("UNVERIFIED"), "the old known-good record: {detail}");
    assert_eq!(svc.current(&bed).await.0, svc.task_definition_arn);
    assert_ne!(svc.current(&bed).await.0, bad);
    let rec = bed.incident_record(&old_key).await.expect("still under the old key");
    assert_eq!(rec["id"], incident.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runbook_acts_in_the_member_account_a_request_names_and_refuses_one_out_of_scope() {
    let bed = TestBed::new("fleet-runbook").await;
    let (in_a, in_b) = (bed.member(MEMBER_A).await, bed.member(MEMBER_B).await);
    let a = SeededService::create(&in_a, "api", 2).await;
    let b = SeededService::create(&in_b, "api", 2).await;
    let bad_b = b.deploy_new_revision(&in_b, "v2.4.0-broken").await;
    let mut runbook = bed.start("runbook", &[("ACCOUNTS", MEMBERS)]);

    // Diagnose in A: A's service (its ARN), not B's of the same name.
    let d = runbook.outcome(&serde_json::json!({
        "action": "diagnose", "cluster": a.cluster, "service": "api", "account": MEMBER_A, "region": "us-east-1"}));
    let text = d.to_string();
    assert!(text.contains(&a.task_definition_arn) && !text.contains(&bad_b), "A's service described: {d}");
    // A rollback in B, through the engine in B.
    let r = runbook.outcome(&serde_json::json!({
        "action": "rollback", "cluster": b.cluster, "service": "api", "account": MEMBER_B,
        "reason": "fleet test", "request_id": "fleet-rb-b", "requested_by": "test@example.com"}));
    assert_eq!(r["actions"][0]["status"], "executed", "{r}");
    assert_eq!(b.current(&in_b).await.0, b.task_definition_arn, "B rolled back");
    assert_eq!(a.current(&in_a).await.0, a.task_definition_arn, "A as it was");
    assert_eq!(b.ledger(&bed).await.iter().filter(|(_, s, _)| s == "executed").count(), 1);
    // An account outside ACCOUNTS: refused, nothing done.
    let refused = runbook.outcome(&serde_json::json!({
        "action": "rollback", "cluster": b.cluster, "service": "api", "account": "999988887777", "dry_run": true}));
    assert_eq!(refused["kind"], "ignored", "{refused}");
    assert!(refused["summary"].as_str().unwrap_or_default().contains("999988887777"), "{refused}");
    // The announcement names the account.
    let notes = bed.notifications().await;
    assert!(
        notes.iter().any(|n| n.subject.contains(MEMBER_B) && n.attributes["account"]["Value"] == MEMBER_B),
        "{notes:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_members_alarm_scales_its_service_there_and_its_ok_resolves_the_members_incident() {
    let bed = TestBed::new("fleet-alarm").await;
    let in_a = bed.member(MEMBER_A).await;
    let a = SeededService::create(&in_a, "api", 2).await;
    let home = SeededService::create(&bed, "api", 2).await;
    let alarm = |file: &str, id: &str| {
        let mut v = fixture(file);
        v["id"] = Value::from(id);
        v["account"] = Value::from(MEMBER_A);
        v["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
            serde_json::json!({"ClusterName": a.cluster, "ServiceName": a.service});
        v
    };
    let mut p = bed.start("alarm-responder", &[("ALARM_NAME_PREFIX", "prod-api-"), ("ACCOUNTS", MEMBERS)]);
    // The alarm lives in the member account, as its state does.
    let mut firing = alarm("alarm/eventbridge-metric-cpu.json", "fleet-cpu-1");
    in_a.own_alarm(&mut firing, "ALARM").await;
    let o = p.outcome(&firing);
    assert_eq!(
        (o["actions"][0]["action"].as_str(), o["actions"][0]["status"].as_str()),
        (Some("scale"), Some("executed")),
        "{o}"
    );
    assert_eq!(a.current(&in_a).await.1, 4, "A's service scaled out");
    assert_eq!(home.current(&bed).await.1, 2, "home's service of the same name untouched");
    let record = bed.incident_record(&a.state_key()).await.expect("A's incident");
    assert_eq!(record["id"], o["incident"]);
    let mut back = alarm("alarm/eventbridge-metric-cpu-ok.json", "fleet-cpu-ok");
    in_a.own_alarm(&mut back, "OK").await;
    let ok = p.outcome(&back);
    assert_eq!(ok["incident"], o["incident"], "{ok}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(notes.iter().all(|n| n.subject.contains(MEMBER_A)), "{notes:#?}");
    assert!(notes[1].subject.starts_with("[RESOLVED]"), "{}", notes[1].subject);
}
