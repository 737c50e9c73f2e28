//! The daily and weekly reports across the fleet, run centrally (the local
//! server's own account, 111122223333) over two member accounts that run
//! services of the same cluster and names: every service listed and
//! labelled with its account and region, one section per account with its
//! figures (read back from the stored JSON), an unreachable member named as
//! a failure while the others are reported, and a shard of the fleet
//! (`"accounts": [...]`) kept under a key of its own.

use autopilot_tests::fault_proxy::{Fault, FaultProxy, Rule};
use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::{Value, json};

const MEMBER_A: &str = "444455556666";
const MEMBER_B: &str = "777788889999";
const MEMBERS: &str = "444455556666,777788889999";
const UNREACHABLE: &str = "999988887777";

async fn stored(bed: &TestBed, key: &str) -> Value {
    let out = bed.s3.get_object().bucket(&bed.bucket).key(key).send().await.unwrap_or_else(|e| panic!("{key}: {e}"));
    let bytes = out.body.collect().await.expect("read").into_bytes();
    serde_json::from_slice(&bytes).expect("json")
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

fn section<'a>(report: &'a Value, account: &str) -> &'a Value {
    report["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .find(|a| a["account"] == account)
        .unwrap_or_else(|| panic!("a section of {account} in {}", report["accounts"]))
}

/// Two members, each with `api` in the same cluster (and A also `web`), an
/// incident open on A's `api`.
async fn two_members(bed: &TestBed) -> (SeededService, SeededService, SeededService, String) {
    let (in_a, in_b) = (bed.member(MEMBER_A).await, bed.member(MEMBER_B).await);
    let a_api = SeededService::create(&in_a, "api", 2).await;
    let a_web = SeededService::create(&in_a, "web", 2).await;
    let b_api = SeededService::create(&in_b, "api", 2).await;
    assert_eq!((a_api.cluster.as_str(), a_api.service.as_str()), (b_api.cluster.as_str(), b_api.service.as_str()));
    let mut events = bed.start("ecs-events", &[("ACCOUNTS", MEMBERS)]);
    let crash = fixture("ecs/task-stopped-app-crash.json");
    let opened = events.outcome(&a_api.retarget(&crash, &format!("{}-a-1", bed.prefix), &format!("{:032x}", 1)));
    let incident = opened["incident"].as_str().expect("an incident in A").to_string();
    bed.notifications().await;
    (a_api, a_web, b_api, incident)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daily_report_run_centrally_lists_both_members_services_labelled_with_per_account_figures() {
    let bed = TestBed::new("fleet-daily").await;
    let (a_api, _a_web, b_api, incident) = two_members(&bed).await;
    let cluster = a_api.cluster.clone();

    let mut reports = bed.start("scheduled-reports", &[("ACCOUNTS", MEMBERS), ("CLUSTERS", cluster.as_str())]);
    let o = reports.outcome(&json!({"job": "daily"}));
    let summary = o["summary"].as_str().expect("summary");
    assert!(summary.contains("3 services") && summary.contains("in 3 account/region(s)"), "{o}");

    let report = stored(&bed, &format!("reports/daily/{}/report.json", today())).await;
    // Every service listed, labelled with its account and region.
    let services = report["services"].as_array().expect("services");
    let mut listed: Vec<(String, String, String)> = services
        .iter()
        .map(|s| {
            assert_eq!(s["region"], "us-east-1", "{s}");
            assert_eq!(s["cluster"], cluster.as_str(), "{s}");
            (s["account"].as_str().unwrap_or("-").to_string(), s["service"].to_string(), s["health"].to_string())
        })
        .collect();
    listed.sort();
    let names: Vec<(&str, &str)> = listed.iter().map(|(a, s, _)| (a.as_str(), s.as_str())).collect();
    assert_eq!(names, vec![(MEMBER_A, "\"api\""), (MEMBER_A, "\"web\""), (MEMBER_B, "\"api\"")], "{report}");
    // The incident is A's api's, not B's (same cluster and name).
    let of = |account: &str, name: &str| {
        services.iter().find(|s| s["account"] == account && s["service"] == name).expect("listed").clone()
    };
    assert_eq!(of(MEMBER_A, "api")["incidents"][0]["id"], incident.as_str());
    let reasons = of(MEMBER_A, "api")["reasons"].to_string();
    assert!(reasons.contains(&format!("incident {incident} open")), "{reasons}");
    assert_eq!(of(MEMBER_B, "api")["incidents"], json!([]), "B's api has no incident");

    // One section per account, home first, with its own figures.
    let accounts = report["accounts"].as_array().expect("accounts");
    assert_eq!(accounts.len(), 3, "{}", report["accounts"]);
    assert_eq!(accounts[0]["home"], true);
    assert_eq!(accounts[0]["services"], 0, "home runs none of this cluster");
    assert_eq!(accounts[0]["failure"], Value::Null, "{}", accounts[0]);
    let (a, b) = (section(&report, MEMBER_A), section(&report, MEMBER_B));
    assert_eq!(a["services"], 2);
    assert_eq!(a["open_incidents"], json!([incident]));
    assert_eq!(a["label"], format!("{MEMBER_A} us-east-1"));
    assert_eq!(b["services"], 1);
    assert_eq!(b["open_incidents"], json!([]));
    assert_eq!(b["failure"], Value::Null);
    // Each section's health figures are its own services' (as listed), and
    // the fleet totals their sums.
    for health in ["down", "degraded", "healthy", "unknown"] {
        let mut sum = 0;
        for (account, sec) in [(MEMBER_A, a), (MEMBER_B, b)] {
            let n = services.iter().filter(|s| s["account"] == account && s["health"] == health).count() as u64;
            assert_eq!(sec[health].as_u64(), Some(n), "{account} {health}: {sec}");
            sum += n;
        }
        assert_eq!(report["totals"][health].as_u64(), Some(sum), "{health}: {}", report["totals"]);
    }
    assert_eq!(report["totals"]["services"], 3);
    assert_eq!(report["totals"]["accounts"], 3);
    assert_eq!(report["totals"]["accounts_failed"], 0);

    // One summary naming both accounts with their figures.
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:#?}");
    let (subject, body) = (&notes[0].subject, &notes[0].message);
    assert!(subject.starts_with("[DAILY]") && subject.contains("3 services, 3 accounts"), "{subject}");
    let figures =
        |s: &Value| format!("{} down, {} degraded, {} healthy, 0 unreadable", s["down"], s["degraded"], s["healthy"]);
    for want in [
        format!("- {MEMBER_A} us-east-1: 2 services - {}; 1 open incident(s) ({incident})", figures(a)),
        format!("- {MEMBER_B} us-east-1: 1 services - {}; 0 open incident(s)", figures(b)),
        format!("\n{MEMBER_A} us-east-1 (2 services):\n"),
        format!("\n{MEMBER_B} us-east-1 (1 services):\n"),
    ] {
        assert!(body.contains(&want), "{want:?} in\n{body}");
    }
    // The page: a section per account.
    let page = bed.s3.get_object().bucket(&bed.bucket).key(format!("reports/daily/{}/report.html", today())).send();
    let page = page.await.expect("page").body.collect().await.expect("read").into_bytes();
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains(&format!("Account {MEMBER_A} us-east-1"))
            && page.contains(&format!("Account {MEMBER_B} us-east-1"))
    );
    assert!(b_api.service_arn.contains(MEMBER_B));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_whose_role_cannot_be_assumed_is_named_in_the_reports_while_the_others_are_reported() {
    let bed = TestBed::new("fleet-rep-denied").await;
    let (a_api, _a_web, _b_api, incident) = two_members(&bed).await;
    let proxy = FaultProxy::start();
    proxy.inject(Rule::new("sts:AssumeRole", Fault::Denied).containing(UNREACHABLE));
    let mut env = bed.function_env();
    env.extend(proxy.env());
    env.push(("ACCOUNTS".into(), format!("{MEMBERS},{UNREACHABLE}")));
    env.push(("CLUSTERS".into(), a_api.cluster.clone()));
    let mut reports = bed.start_with_env("scheduled-reports", env);

    let o = reports.outcome(&json!({"job": "daily"}));
    let summary = o["summary"].as_str().expect("summary");
    assert!(summary.contains("1 not reported") && summary.contains(UNREACHABLE), "{o}");
    let report = stored(&bed, &format!("reports/daily/{}/report.json", today())).await;
    let failed = section(&report, UNREACHABLE);
    let why = failed["failure"].as_str().expect("the failure, named");
    for want in ["cannot be assumed", "arn:aws:iam::999988887777:role/ecs-autopilot-member", "AccessDenied"] {
        assert!(why.contains(want), "{want} in {why}");
    }
    assert_eq!(failed["services"], 0);
    assert_eq!(section(&report, MEMBER_A)["services"], 2, "the others are reported");
    assert_eq!(section(&report, MEMBER_A)["open_incidents"], json!([incident]));
    assert_eq!(section(&report, MEMBER_B)["services"], 1);
    assert_eq!(report["totals"]["accounts_failed"], 1);
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(notes[0].subject.contains("1 failed"), "{}", notes[0].subject);
    assert!(
        notes[0]
            .message
            .contains(&format!("- {UNREACHABLE} us-east-1: NOT REPORTED - the member role cannot be assumed")),
        "{}",
        notes[0].message
    );
    assert!(
        proxy.calls().iter().any(|c| c.op == "sts:AssumeRole" && c.fault.is_some()),
        "the member role was asked for and refused"
    );

    // The weekly review alike: sections, the failure named, the others reviewed.
    let o = reports.outcome(&json!({"job": "weekly"}));
    let key = o["details"]["report"].as_str().expect("report key").to_string();
    let weekly = stored(&bed, &key).await;
    assert_eq!(weekly["services"].as_array().map(Vec::len), Some(3), "{weekly}");
    assert!(
        weekly["services"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|s| s["account"].is_string() && s["region"] == "us-east-1")
    );
    assert!(section(&weekly, UNREACHABLE)["failure"].as_str().is_some_and(|f| f.contains("AccessDenied")));
    assert_eq!(section(&weekly, MEMBER_A)["services"], 2);
    assert_eq!(section(&weekly, MEMBER_B)["services"], 1);
    let notes = bed.notifications().await;
    assert!(notes[0].message.contains(&format!("- {UNREACHABLE} us-east-1: NOT REPORTED")), "{}", notes[0].message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shard_of_the_fleet_reports_its_accounts_under_a_key_of_its_own_and_an_unknown_account_is_refused() {
    let bed = TestBed::new("fleet-shard").await;
    let (a_api, _a_web, _b_api, _incident) = two_members(&bed).await;
    let mut reports = bed.start("scheduled-reports", &[("ACCOUNTS", MEMBERS), ("CLUSTERS", a_api.cluster.as_str())]);
    let o = reports.outcome(&json!({"job": "daily", "accounts": [MEMBER_B]}));
    let key = format!("reports/daily/{}/shard-{MEMBER_B}/report.json", today());
    assert_eq!(o["details"]["report"], key.as_str(), "{o}");
    let report = stored(&bed, &key).await;
    assert_eq!(report["accounts"].as_array().map(Vec::len), Some(1), "{}", report["accounts"]);
    assert_eq!(report["accounts"][0]["account"], MEMBER_B);
    assert_eq!(report["shard"]["accounts"], json!([MEMBER_B]));
    assert!(report["services"].as_array().into_iter().flatten().all(|s| s["account"] == MEMBER_B), "{report}");
    // The whole fleet's key was not written by the shard.
    let whole = bed.s3.head_object().bucket(&bed.bucket).key(format!("reports/daily/{}/report.json", today())).send();
    assert!(whole.await.is_err(), "the shard did not write the fleet's report");

    let (error_type, message) =
        tokio::task::block_in_place(|| reports.invoke(&json!({"job": "daily", "accounts": [UNREACHABLE]})))
            .expect_error("an account outside the fleet");
    assert_eq!(error_type, "InvalidEvent", "{message}");
    assert!(message.contains(UNREACHABLE) && message.contains("accounts"), "{message}");
}
