//! The daily health check (`{"job": "daily"}`) against the local server:
//! every service of the clusters in scope, judged and listed worst first,
//! stored as JSON and self-contained HTML, summarised once over SNS with
//! links to both.

use autopilot_tests::{SeededService, TestBed, fixture};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn the_daily_report_lists_every_service_worst_first_and_links_its_json_and_html() {
    let bed = TestBed::new("daily").await;
    let api = SeededService::create(&bed, "api", 2).await;
    let web = SeededService::create(&bed, "web", 2).await;
    assert_eq!(api.cluster, web.cluster, "one cluster, two services");
    // api had a bad day: a crash (an open incident) and error lines in its log.
    api.write_log(&bed, "t1", &["INFO started".into(), "ERROR pool exhausted".into(), "ERROR giving up".into()]).await;
    let mut events = bed.start("ecs-events", &[]);
    let opened =
        events.outcome(&api.retarget(&fixture("ecs/task-stopped-app-crash.json"), "daily-1", &format!("{:032x}", 1)));
    let incident = opened["incident"].as_str().expect("incident").to_string();
    bed.notifications().await;

    let mut reports = bed.start("scheduled-reports", &[("CLUSTERS", api.cluster.as_str())]);
    let o = reports.outcome(&json!({"job": "daily"}));
    assert!(o["summary"].as_str().unwrap().contains("2 services"), "{o}");
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "one summary");
    let body = &notes[0].message;
    assert!(notes[0].subject.starts_with("[DAILY]"), "{}", notes[0].subject);
    let api_at = body.find(&format!("{}/api", api.cluster)).expect("api listed");
    let web_at = body.find(&format!("{}/web", web.cluster)).expect("web listed");
    assert!(api_at < web_at, "worst first:\n{body}");
    assert!(body.contains(&format!("incident {incident} open")), "{body}");
    assert!(body.contains("- HTML in the S3 console (sign-in needed"), "a console link: {body}");
    assert!(body.contains("  HTML presigned, opens without sign-in for "), "a presigned link, its lifetime: {body}");

    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let get = |key: String| {
        let bed = &bed;
        async move {
            let out = bed.s3.get_object().bucket(&bed.bucket).key(&key).send().await.expect("stored");
            String::from_utf8(out.body.collect().await.expect("read").into_bytes().to_vec()).expect("utf-8")
        }
    };
    let report: Value = serde_json::from_str(&get(format!("reports/daily/{date}/report.json")).await).expect("json");
    let services = report["services"].as_array().expect("services");
    assert_eq!(services.len(), 2);
    assert_eq!(services[0]["service"], "api");
    assert_eq!(services[0]["incidents"][0]["id"], incident.as_str());
    assert_eq!(services[0]["errors"]["errors"], 2, "two error lines counted: {}", services[0]);
    assert_eq!(services[1]["service"], "web");
    let page = get(format!("reports/daily/{date}/report.html")).await;
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains(&incident));
    // The seeded numbers, read back from the page: api's two error lines, 2 desired tasks.
    let api_section = &page[page.find(&format!("{}/api", api.cluster)).expect("api on the page")..];
    let errors: u64 = api_section
        .split_once("Error lines: <strong>")
        .and_then(|(_, rest)| rest.split_once("</strong>"))
        .and_then(|(n, _)| n.parse().ok())
        .expect("an error count");
    assert_eq!(errors, 2);
    assert!(api_section.contains("/ 2 desired"), "desired count on the page");
    assert!(!page.contains("<script") && !page.contains("src="), "self-contained, no JavaScript");
    if let Ok(dir) = std::env::var("REPORT_HTML_DIR") {
        // For looking at it (headless Chromium screenshots).
        std::fs::write(format!("{dir}/daily.html"), &page).expect("write the page");
    }
}
