//! The weekly capacity review (`{"job": "weekly"}`) against the local server:
//! seven days of datapoints put with PutMetricData (ECS utilisation,
//! Container Insights task counts, ALB requests and latency), an autoscaling
//! target, a load balancer, deployment and incident records; the seeded
//! numbers are read back from the stored JSON and HTML, and the one SNS
//! summary links to both. And the cost check: API calls grow with the number
//! of services only by each service's own reads, the batched ones do not.

use autopilot_tests::fault_proxy::FaultProxy;
use autopilot_tests::{SeededService, TestBed};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// One point in the middle of each of the 168 hours before the current hour.
fn week_of(hour_end: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (0..168).map(|h| (hour_end - (168 - h) * HOUR + HOUR / 2, f(h))).collect()
}

fn epoch(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a time")).expect("rfc3339").timestamp()
}

fn in_window(points: &[(i64, f64)], start: i64, end: i64) -> Vec<f64> {
    points.iter().filter(|p| p.0 >= start && p.0 < end).map(|p| p.1).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// The text of the cells of the table row that starts with `<th>{header}</th>`.
fn row_cells(page: &str, header: &str, occurrence: usize) -> Vec<String> {
    let marker = format!("<th>{header}</th>");
    let at = page.match_indices(&marker).nth(occurrence).map(|(i, _)| i).unwrap_or_else(|| panic!("no row {header}"));
    let row = &page[at + marker.len()..];
    let row = &row[..row.find("</tr>").expect("row end")];
    row.split("<td")
        .skip(1)
        .map(|c| {
            let inner = &c[c.find('>').expect("cell") + 1..];
            let inner = &inner[..inner.find("</td>").expect("cell end")];
            // Strip inner tags (spans, code).
            let mut text = String::new();
            let mut in_tag = false;
            for ch in inner.chars() {
                match ch {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text
        })
        .collect()
}

fn percent(cell: &str) -> f64 {
    cell.trim_end_matches(" %").parse().unwrap_or_else(|_| panic!("a percentage: {cell:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_weekly_review_reads_a_week_of_metrics_and_delivery_and_stores_json_and_html_holding_them() {
    let bed = TestBed::new("weekly").await;
    let hot = SeededService::create(&bed, "hot", 2).await;
    let idle = SeededService::create(&bed, "idle", 2).await;
    let t = now();
    let hour_end = t - t % HOUR;

    // hot: CPU 75-78 % every hour (sustained), memory 40-44 %; at its
    // autoscaling maximum (3) for the last 48 hours; behind an ALB.
    let hot_cpu = week_of(hour_end, |h| 75.0 + (h % 4) as f64);
    let hot_mem = week_of(hour_end, |h| 40.0 + (h % 5) as f64);
    let hot_running = week_of(hour_end, |h| if h >= 120 { 3.0 } else { 2.0 });
    let requests = week_of(hour_end, |h| if h < 84 { 1000.0 } else { 1500.0 });
    let latency = week_of(hour_end, |h| if h < 84 { 0.100 } else { 0.150 });
    // idle: CPU 4-6 %, memory 10-11 % on 512 CPU units / 1024 MiB.
    let idle_cpu = week_of(hour_end, |h| 4.0 + (h % 3) as f64);
    let idle_mem = week_of(hour_end, |h| 10.0 + (h % 2) as f64);
    let lb_arn = hot.attach_load_balancer(&bed).await;
    hot.register_scalable_target(&bed, 2, 3).await;
    let tg_dim = hot.target_group_arn.rsplit_once(':').map(|(_, r)| r.to_string()).expect("target group dimension");
    let lb_dim = lb_arn.split_once(":loadbalancer/").map(|(_, r)| r.to_string()).expect("load balancer dimension");
    let alb_dims = [("TargetGroup", tg_dim.as_str()), ("LoadBalancer", lb_dim.as_str())];
    hot.put_metric(&bed, "AWS/ECS", "CPUUtilization", &hot.ecs_dimensions(), &hot_cpu).await;
    hot.put_metric(&bed, "AWS/ECS", "MemoryUtilization", &hot.ecs_dimensions(), &hot_mem).await;
    hot.put_metric(&bed, "ECS/ContainerInsights", "RunningTaskCount", &hot.ecs_dimensions(), &hot_running).await;
    hot.put_metric(&bed, "AWS/ApplicationELB", "RequestCount", &alb_dims, &requests).await;
    hot.put_metric(&bed, "AWS/ApplicationELB", "TargetResponseTime", &alb_dims, &latency).await;
    idle.put_metric(&bed, "AWS/ECS", "CPUUtilization", &idle.ecs_dimensions(), &idle_cpu).await;
    idle.put_metric(&bed, "AWS/ECS", "MemoryUtilization", &idle.ecs_dimensions(), &idle_mem).await;

    // hot's deliveries: one completed, one failed, one followed by an
    // incident 10 minutes later that took 20 minutes to recover.
    let d3_at = t - 2 * DAY;
    hot.seed_deployment_record(&bed, "ecs-svc/1001", "SERVICE_DEPLOYMENT_COMPLETED", t - 6 * DAY).await;
    hot.seed_deployment_record(&bed, "ecs-svc/1002", "SERVICE_DEPLOYMENT_FAILED", t - 4 * DAY).await;
    hot.seed_deployment_record(&bed, &hot.deployment_id, "SERVICE_DEPLOYMENT_COMPLETED", d3_at).await;
    hot.seed_closed_incident(&bed, "inc-weekly-1", d3_at + 600, d3_at + 600 + 1200).await;

    let mut reports = bed.start("scheduled-reports", &[("CLUSTERS", hot.cluster.as_str())]);
    let o = reports.outcome(&json!({"job": "weekly"}));
    let summary = o["summary"].as_str().expect("summary");
    assert!(summary.contains("2 services (1 scale-up, 1 right-size)"), "{o}");

    let week = o["details"]["report"].as_str().expect("report key").split('/').nth(2).expect("week").to_string();
    assert!(week.len() == 8 && week.contains("-W"), "an ISO week: {week}");
    let get = |key: String| {
        let bed = &bed;
        async move {
            let out = bed.s3.get_object().bucket(&bed.bucket).key(&key).send().await.expect("stored");
            String::from_utf8(out.body.collect().await.expect("read").into_bytes().to_vec()).expect("utf-8")
        }
    };
    let report: Value =
        serde_json::from_str(&get(format!("reports/weekly/{week}/report.json")).await).expect("json report");
    let page = get(format!("reports/weekly/{week}/report.html")).await;
    let (start, end) = (epoch(&report["window_start"]), epoch(&report["window_end"]));
    assert_eq!(end - start, 7 * DAY);

    // --- JSON: the seeded numbers.
    let services = report["services"].as_array().expect("services");
    assert_eq!(services.len(), 2);
    let (h, i) = (&services[0], &services[1]);
    assert_eq!((h["service"].as_str(), h["verdict"].as_str()), (Some("hot"), Some("scale-up")), "{h}");
    assert_eq!((i["service"].as_str(), i["verdict"].as_str()), (Some("idle"), Some("right-size")), "{i}");
    let cpu = in_window(&hot_cpu, start, end);
    let cpu_mean = cpu.iter().sum::<f64>() / cpu.len() as f64;
    assert!(close(h["cpu"]["average"].as_f64().expect("cpu average"), cpu_mean), "{}", h["cpu"]);
    assert_eq!(h["cpu"]["maximum"].as_f64(), Some(78.0));
    assert_eq!(h["cpu"]["hours_with_data"].as_u64(), Some(cpu.len() as u64));
    assert_eq!(h["cpu"]["hours_high"].as_u64(), Some(cpu.len() as u64), "every hour at or above 70 %");
    // The local server cannot compute percentiles: p95 is absent and the peak is the maximum.
    assert!(h["cpu"]["p95"].is_null(), "{}", h["cpu"]);
    assert_eq!(h["cpu"]["peak_stat"], "Maximum");
    assert!(h["cpu"]["notes"].to_string().contains("p95"), "says why p95 is missing: {}", h["cpu"]["notes"]);
    let mem = in_window(&hot_mem, start, end);
    assert!(close(h["memory"]["average"].as_f64().expect("memory"), mem.iter().sum::<f64>() / mem.len() as f64));
    assert_eq!(h["memory"]["maximum"].as_f64(), Some(44.0));
    assert_eq!(h["autoscaling"], json!({"min": 2, "max": 3}));
    let at_max = in_window(&hot_running, start, end).iter().filter(|v| **v >= 3.0).count();
    assert_eq!(h["hours_at_max"].as_u64(), Some(at_max as u64));
    assert_eq!(h["recommendations"][0], json!({"kind": "autoscaling-max", "from": 3, "to": 4}), "{h}");
    let traffic = &h["traffic"][0];
    assert_eq!(traffic["load_balancer"].as_str(), Some(lb_dim.as_str()));
    let req_total: f64 = in_window(&requests, start, end).iter().sum();
    assert_eq!(traffic["requests_total"].as_f64(), Some(req_total));
    let last_day_latency = {
        let last = in_window(&latency, end - DAY, end);
        last.iter().sum::<f64>() / last.len() as f64 * 1000.0
    };
    let daily_avg = traffic["latency_avg_ms_daily"].as_array().expect("daily latency");
    assert!(close(daily_avg.last().expect("a day")[1].as_f64().expect("ms"), last_day_latency), "{traffic}");
    assert!(traffic["requests_trend_pct"].as_f64().expect("trend") > 0.0, "requests rose");
    assert_eq!(i["recommendations"][0]["kind"], "fargate-size", "{i}");
    assert_eq!(i["recommendations"][0]["to"], json!({"cpu": 256, "memory": 512}), "{i}");
    assert_eq!(i["task_size"], json!({"cpu": 512, "memory": 1024}));
    let d = &h["delivery"];
    assert_eq!(d["deployments"], 3, "{d}");
    let failed: Vec<&str> =
        d["change_failures"].as_array().unwrap().iter().filter_map(|f| f["deployment"].as_str()).collect();
    assert_eq!(
        failed,
        vec!["ecs-svc/1002", hot.deployment_id.as_str()],
        "the failed one, and the one the incident followed"
    );
    assert!(close(d["change_failure_rate"].as_f64().expect("rate"), 2.0 / 3.0));
    assert_eq!(d["mttr_seconds"], 1200);
    assert_eq!(d["lead_time"]["note"], "no pipeline-linked deployments recorded");
    // Overall: the window ends at the top of the hour, so the deployments ECS
    // lists for the services just created (this hour) are not in it.
    assert_eq!(report["delivery"]["deployments"], 3, "{}\n{}", report["delivery"], i);
    assert_eq!(i["delivery"]["deployments"], 0);
    assert!(i["delivery"]["change_failure_rate"].is_null(), "no deployments, no rate");
    assert!(close(report["delivery"]["change_failure_rate"].as_f64().expect("rate"), 2.0 / 3.0));
    assert_eq!(report["metric_calls"], 2, "one call of plain statistics, one of percentiles");

    // --- HTML: the same numbers, read back from the page.
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.to_ascii_lowercase().contains("<script") && !page.contains("src=") && !page.contains("<link"));
    let hot_cpu_cells = row_cells(&page, "CPU", 0);
    assert!(close(percent(&hot_cpu_cells[0]), (cpu_mean * 10.0).round() / 10.0), "{hot_cpu_cells:?}");
    assert_eq!(hot_cpu_cells[1], "not returned");
    assert_eq!(percent(&hot_cpu_cells[2]), 78.0);
    assert_eq!(hot_cpu_cells[3], format!("{} / {}", cpu.len(), cpu.len()));
    let idle_cpu_cells = row_cells(&page, "CPU", 1);
    assert_eq!(percent(&idle_cpu_cells[2]), 6.0, "{idle_cpu_cells:?}");
    let totals = row_cells(&page, "requests", 0);
    assert!(page.contains(&format!("<td class=\"num\">{req_total:.0}</td>")), "request total {req_total} in the page");
    assert!(!totals.is_empty());
    assert!(page.contains(&format!("{last_day_latency:.0} ms")), "last day's latency");
    assert!(page.contains("raise the autoscaling maximum from 3 to 4 tasks"));
    assert!(page.contains("task size 0.25 vCPU / 0.5 GB (256 CPU units / 512 MiB)"));
    assert!(page.contains(&format!("{at_max} h at the maximum")));
    assert!(page.contains(&shared::notify::render::human_duration(1200)), "MTTR");
    assert!(page.contains("67 % (2)"), "hot's change failure rate");
    assert!(page.contains("no pipeline-linked deployments recorded"));
    assert!(page.matches("<svg").count() >= 4, "utilisation charts for both, requests and latency for hot");
    assert!(page.contains("<polyline") || page.contains("<path"), "lines drawn");

    // --- SNS: one summary, linking to both.
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1, "one summary");
    let n = &notes[0];
    assert!(n.subject.starts_with(&format!("[WEEKLY] {week}: 2 services - 1 scale-up, 1 right-size")), "{}", n.subject);
    let body = &n.message;
    assert!(body.contains("raise the autoscaling maximum from 3 to 4 tasks"), "{body}");
    assert!(body.contains("change failure rate 67 %"), "{body}");
    // Each object's console and presigned link (report_links.rs opens them).
    let link = |start: String| {
        body.lines()
            .find(|l| l.starts_with(&start))
            .and_then(|l| l.rsplit_once(": "))
            .map(|(_, url)| url)
            .unwrap_or_else(|| panic!("{start} link: {body}"))
    };
    for (label, file) in [("HTML", "report.html"), ("JSON", "report.json")] {
        let console = link(format!("- {label} in the S3 console"));
        assert!(console.starts_with("https://") && console.ends_with(&format!("reports/weekly/{week}/{file}")));
        let presigned = link(format!("  {label} presigned, opens without sign-in for "));
        assert!(presigned.starts_with("http") && presigned.contains(&format!("reports/weekly/{week}/{file}?")));
    }
    if let Ok(dir) = std::env::var("REPORT_HTML_DIR") {
        // For looking at it (headless Chromium screenshots).
        std::fs::write(format!("{dir}/weekly.html"), &page).expect("write the page");
    }
}

/// Calls per AWS operation of one invocation, through the recording proxy.
fn calls_by_op(proxy: &FaultProxy) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in proxy.take_calls() {
        *out.entry(c.op.clone()).or_default() += 1;
    }
    out
}

async fn calls_of_jobs(services: usize) -> BTreeMap<&'static str, BTreeMap<String, usize>> {
    let bed = TestBed::new(&format!("scale{services}")).await;
    let cluster = format!("{}-cl", bed.prefix);
    for k in 0..services {
        SeededService::create_named(&bed, &cluster, &format!("svc{k}"), 1).await;
    }
    let proxy = FaultProxy::start();
    let url = proxy.url();
    let mut reports =
        bed.start("scheduled-reports", &[("CLUSTERS", cluster.as_str()), ("AWS_ENDPOINT_URL", url.as_str())]);
    let mut out = BTreeMap::new();
    proxy.take_calls();
    for job in ["weekly", "daily", "escalate"] {
        let o = reports.outcome(&json!({ "job": job }));
        assert_eq!(o["kind"], "report", "{o}");
        out.insert(job, calls_by_op(&proxy));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn report_calls_grow_only_by_each_services_own_reads_and_batched_reads_stay_one_call() {
    let one = calls_of_jobs(1).await;
    let ten = calls_of_jobs(10).await;
    let total = |m: &BTreeMap<String, usize>| m.values().sum::<usize>();
    let get = |m: &BTreeMap<String, usize>, op: &str| m.get(op).copied().unwrap_or(0);
    // Per service, the weekly review reads its task definition and four state
    // queries (deployments, incidents, ledger, pipeline deploy links); the daily check its target
    // health, task definition, log group, incidents and ledger.
    for (job, per_service) in [("weekly", 5), ("daily", 5), ("escalate", 0)] {
        let (a, b) = (&one[job], &ten[job]);
        assert!(
            total(b) <= total(a) + 9 * per_service,
            "{job}: {} calls for 1 service, {} for 10 (at most {per_service} more per service)\n1: {a:?}\n10: {b:?}",
            total(a),
            total(b)
        );
        assert!(total(b) > total(a) || per_service == 0, "{job}: per-service reads happen");
        assert_eq!(get(a, "ecs:DescribeServices"), get(b, "ecs:DescribeServices"), "{job}: ten per call\n{a:?}\n{b:?}");
    }
    // One call of plain statistics and one of percentiles, one autoscaling
    // and one target-group read, whether for 1 service or 10.
    for (op, calls) in [
        ("cloudwatch:GetMetricData", 2),
        ("application-autoscaling:DescribeScalableTargets", 1),
        ("elbv2:DescribeTargetGroups", 1),
    ] {
        assert_eq!(get(&one["weekly"], op), calls, "{op}: {:?}", one["weekly"]);
        assert_eq!(get(&ten["weekly"], op), calls, "{op} batched across services: {:?}", ten["weekly"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn when_metrics_and_a_task_definition_cannot_be_read_the_review_still_goes_out_naming_what_was_unread() {
    use autopilot_tests::fault_proxy::{Fault, Rule};
    let bed = TestBed::new("weekly-degraded").await;
    let a = SeededService::create(&bed, "alpha", 2).await;
    let b = SeededService::create(&bed, "beta", 2).await;
    let proxy = FaultProxy::start();
    // Every GetMetricData attempt is throttled; beta's task definition answers 500.
    proxy.inject(Rule::new("cloudwatch:GetMetricData", Fault::Throttle));
    let family = b.task_definition_arn.rsplit('/').next().expect("family:revision").to_string();
    proxy.inject(Rule::new("ecs:DescribeTaskDefinition", Fault::Status(500)).containing(&family));
    let url = proxy.url();
    let mut reports =
        bed.start("scheduled-reports", &[("CLUSTERS", a.cluster.as_str()), ("AWS_ENDPOINT_URL", url.as_str())]);
    let o = reports.outcome(&json!({"job": "weekly"}));
    assert!(o["summary"].as_str().unwrap().contains("2 services"), "{o}");
    let key = o["details"]["report"].as_str().expect("report key").to_string();
    let out = bed.s3.get_object().bucket(&bed.bucket).key(&key).send().await.expect("stored despite the faults");
    let report: Value = serde_json::from_slice(&out.body.collect().await.expect("read").into_bytes()).expect("json");
    let by_name =
        |n: &str| report["services"].as_array().unwrap().iter().find(|s| s["service"] == n).cloned().expect(n);
    let (alpha, beta) = (by_name("alpha"), by_name("beta"));
    for s in [&alpha, &beta] {
        assert_eq!(s["verdict"], "no-data", "{s}");
        let unread = s["unread"].to_string();
        assert!(unread.contains("CPUUtilization average") && unread.contains("GetMetricData"), "{unread}");
    }
    assert!(beta["unread"].to_string().contains("task definition"), "{}", beta["unread"]);
    assert!(!alpha["unread"].to_string().contains("task definition"), "alpha's was read: {}", alpha["unread"]);
    assert_eq!(alpha["task_size"], json!({"cpu": 512, "memory": 1024}));
    let notes = bed.notifications().await;
    assert_eq!(notes.len(), 1);
    assert!(notes[0].message.contains("not read:"), "the summary says what was unread: {}", notes[0].message);
    assert!(
        proxy.injected_into("cloudwatch:GetMetricData") > 0,
        "the fault aimed at cloudwatch:GetMetricData was injected (else this proved nothing)"
    );
    assert!(
        proxy.injected_into("ecs:DescribeTaskDefinition") > 0,
        "the fault aimed at ecs:DescribeTaskDefinition was injected (else this proved nothing)"
    );
}
