//! `scripts/bench.sh`: cold start (and its ratio to the hello-world baseline,
//! `bench/hello`, in the same run), peak memory, binary size (raw and zip -9)
//! and AWS calls per
//! event of the release binaries, against the local AWS server; and the
//! scheduled jobs (daily, weekly, escalate) over 1, 10 and 100 seeded services
//! (`BENCH_SCALE=1,10,100`); and the same jobs run centrally over a fleet of
//! member accounts (`BENCH_FLEET=10x100`: 10 member accounts of 100 services
//! each, reached through the member role; `BENCH_FLEET=0` leaves it out,
//! `BENCH_FLEET_ONLY=1` runs only it). Measures; does not judge (no
//! thresholds), so numbers go into the README and closing notes.

use autopilot_tests::{LambdaProcess, SeededService, TestBed, binary, fixture};
use serde_json::Value;
use std::time::Duration;

const FUNCTIONS: &[(&str, &str)] = &[
    ("ecs-events", "ecs/task-running.json"),
    ("alarm-responder", "alarm/eventbridge-metric-cpu.json"),
    ("pipeline-events", "pipeline/action-failed-codebuild.json"),
    ("scheduled-reports", "schedule/job-daily.json"),
    ("runbook", "runbook/diagnose.json"),
    ("deployment-hook", "hook/post-scale-up.json"),
];
const COLD_RUNS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// `(aws_calls, handler_ms)` of each decision line, in order.
/// `(aws_calls, handler_ms, notified)` of one decision line.
type Decision = (u64, f64, String);

fn decisions(p: &LambdaProcess) -> Vec<Decision> {
    p.stdout()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["decision"] == "outcome" || v["decision"] == "error")
        .map(|v| {
            (
                v["aws_calls"].as_u64().unwrap_or(0),
                v["handler_ms"].as_f64().unwrap_or(0.0),
                v["notified"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Size of `path` deflated as Lambda stores it: `zip -9` of the file alone
/// (the deployment package holds the `bootstrap` and nothing else).
fn deflated_mib(path: &std::path::Path) -> Option<f64> {
    let zip = std::env::temp_dir().join(format!("bench-{}-{}.zip", std::process::id(), path.file_name()?.to_str()?));
    let _ = std::fs::remove_file(&zip);
    let ok = std::process::Command::new("zip")
        .args(["-9", "-j", "-q"])
        .arg(&zip)
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let size = std::fs::metadata(&zip).ok().filter(|_| ok).map(|m| m.len() as f64 / 1048576.0);
    let _ = std::fs::remove_file(&zip);
    size
}

/// One binary's start-up figures: cold starts (ms, one per round) and the
/// peak RSS after its first event (MiB).
struct Start {
    name: &'static str,
    label: String,
    path: std::path::PathBuf,
    colds: Vec<f64>,
    rss: f64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::var_os("BENCH_FLEET_ONLY").is_some() {
        fleet_reports_at_scale().await;
        return;
    }
    let bed = TestBed::new("bench").await;
    let incidents_only = std::env::var_os("BENCH_INCIDENTS_ONLY").is_some();
    // The baseline: a hello-world `lambda_runtime` binary (bench/hello) of the
    // same release profile, started in the same rounds as ours, so each
    // function's cold start reads as a ratio to it on the same (loaded) machine.
    // BENCH_COMPARE_DIR: the binaries of another build (a commit before a
    // change) started in the same rounds, as rows of their own.
    let compare = std::env::var_os("BENCH_COMPARE_DIR").map(std::path::PathBuf::from);
    let names: Vec<&'static str> =
        std::iter::once("hello").chain(FUNCTIONS.iter().map(|(n, _)| *n)).filter(|_| !incidents_only).collect();
    let mut starts: Vec<Start> = names
        .iter()
        .map(|&name| Start { name, label: name.to_string(), path: binary(name), colds: Vec::new(), rss: 0.0 })
        .chain(compare.iter().flat_map(|dir| {
            names.iter().map(move |&name| Start {
                name,
                label: format!("{name} (BENCH_COMPARE_DIR)"),
                path: dir.join(name),
                colds: Vec::new(),
                rss: 0.0,
            })
        }))
        // A profile comparison builds only some binaries.
        .filter(|s| s.path.exists())
        .collect();
    // Rounds interleave the binaries: load on the machine falls on all alike.
    for run in 0..COLD_RUNS {
        for s in starts.iter_mut() {
            let mut p = LambdaProcess::start(&s.path, s.name, &bed.function_env());
            s.colds.push(p.wait_ready(Duration::from_secs(20)).as_secs_f64() * 1000.0);
            if run == 0 {
                // A real event: ecs-events a running task (gathered, judged
                // expected), the others their own trigger.
                let sample = FUNCTIONS.iter().find(|(n, _)| *n == s.name).map_or("ecs/task-running.json", |(_, f)| f);
                let _ = tokio::task::block_in_place(|| p.invoke(&fixture(sample)));
                s.rss = p.peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
                if std::env::var_os("BENCH_VERBOSE").is_some() {
                    // What the peak is made of: the binary's pages and the heap.
                    eprintln!("RSS {}: {}", s.label, p.rss_parts().unwrap_or_default());
                }
            }
        }
    }
    let hello = starts.iter().find(|s| s.label == "hello").map(|s| median(s.colds.clone()));
    println!(
        "| binary | size (MiB) | deflated, zip -9 (MiB) | cold start, median of {COLD_RUNS} (ms) | cold start / hello world | peak RSS after one event (MiB) |"
    );
    println!("|---|---|---|---|---|---|");
    for s in &starts {
        let size = std::fs::metadata(&s.path).map(|m| m.len() as f64 / 1048576.0).unwrap_or(0.0);
        let deflated = deflated_mib(&s.path).map_or("-".to_string(), |d| format!("{d:.2}"));
        let cold = median(s.colds.clone());
        let ratio = hello.filter(|h| *h > 0.0).map_or("-".to_string(), |h| format!("{:.2}x", cold / h));
        let label =
            if s.label == "hello" { "hello world (`bench/hello`)".to_string() } else { format!("`{}`", s.label) };
        println!("| {label} | {size:.2} | {deflated} | {cold:.1} | {ratio} | {:.1} |", s.rss);
    }

    if std::env::var_os("BENCH_COLD_ONLY").is_some() {
        return;
    }
    if std::env::var_os("BENCH_ROLLBACK_ONLY").is_some() {
        // Only ecs-events' two paths from an event to the rollback call.
        rollback_paths(&bed).await;
        return;
    }
    incident_calls(&bed).await;
    if std::env::var_os("BENCH_INCIDENTS_ONLY").is_some() {
        return;
    }
    if std::env::var("BENCH_SCALE").as_deref() != Ok("0") {
        reports_at_scale().await;
        weekly_render_at_scale();
    }
    if std::env::var("BENCH_FLEET").as_deref() != Ok("0") {
        fleet_reports_at_scale().await;
    }
    if std::env::var_os("BENCH_SCALE_ONLY").is_some() {
        return;
    }
    // AWS calls and handler time per stopped-task event, on a seeded service.
    let svc = SeededService::create(&bed, "api", 3).await;
    let task = |n: u64| format!("{:032x}", 0xbe00_0000_u64 + n);
    svc.write_crash_log(&bed, &task(0)).await;
    let mut p = LambdaProcess::start(&binary("ecs-events"), "bench-ecs-events", &bed.function_env());
    p.wait_ready(Duration::from_secs(20));
    let oom = fixture("ecs/task-stopped-oom-on-container.json");
    for n in 0..21u64 {
        let _ = tokio::task::block_in_place(|| p.invoke(&svc.retarget(&oom, &format!("bench-{n}"), &task(n))));
    }
    let _ = tokio::task::block_in_place(|| p.invoke(&svc.retarget(&oom, "bench-3", &task(3))));
    let _ = tokio::task::block_in_place(|| {
        p.invoke(&svc.retarget(&fixture("ecs/task-stopped-scale-in.json"), "bench-exp", &task(99)))
    });
    let _ = tokio::task::block_in_place(|| {
        p.invoke(&svc.retarget(&fixture("ecs/service-steady-state.json"), "bench-steady", "-"))
    });
    std::thread::sleep(Duration::from_millis(200));
    let d = decisions(&p);
    let rows: [(&str, Vec<&Decision>); 5] = [
        ("stopped task, opens the incident (gather, evidence, alert)", d.iter().take(1).collect()),
        ("stopped task, joins the open incident (median of 20)", d.iter().skip(1).take(20).collect()),
        ("duplicate delivery", d.iter().skip(21).take(1).collect()),
        ("expected stop (scale-in)", d.iter().skip(22).take(1).collect()),
        ("steady state, resolves the incident", d.iter().skip(23).take(1).collect()),
    ];
    println!("\n| ecs-events event | AWS calls | handler time (ms) |");
    println!("|---|---|---|");
    for (label, r) in rows {
        if r.is_empty() {
            continue;
        }
        let calls = median(r.iter().map(|x| x.0 as f64).collect());
        let ms = median(r.iter().map(|x| x.1).collect());
        println!("| {label} | {calls:.0} | {ms:.1} |");
    }
    println!(
        "\necs-events peak RSS after {} events: {:.1} MiB",
        d.len(),
        p.peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );

    rollback_paths(&bed).await;
}

fn verbose() -> bool {
    std::env::var_os("BENCH_VERBOSE").is_some()
}

/// `BENCH_VERBOSE=1`: each invocation's AWS calls, in order (the functions
/// log them at `aws_calls=debug`).
fn print_calls(p: &LambdaProcess) {
    let mut calls = Vec::new();
    for v in p.stdout().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        if v["message"] == "aws call" {
            calls.push(format!("{}.{}", v["service"].as_str().unwrap_or("?"), v["operation"].as_str().unwrap_or("?")));
            if std::env::var_os("BENCH_BODIES").is_some() {
                eprintln!(
                    "CALL {}.{} {}",
                    v["service"].as_str().unwrap_or("?"),
                    v["operation"].as_str().unwrap_or("?"),
                    v["body"].as_str().unwrap_or("")
                );
            }
        } else if std::env::var_os("BENCH_BODIES").is_some() && v["decision"].is_string() {
            eprintln!("DECISION {}", v["decision"]);
        } else if v["decision"] == "outcome" {
            eprintln!("{} calls: {}", calls.len(), calls.join(" "));
            calls.clear();
        }
    }
}

/// One function's row: its label and the calls to open, join and resolve, per run.
type IncidentRow = (&'static str, Vec<u64>, Vec<u64>, Vec<u64>);

/// AWS calls of opening, joining and resolving an incident, per function
/// that drives incidents: the median over `RUNS` fresh services each.
async fn incident_calls(bed: &TestBed) {
    const RUNS: usize = 3;
    let mut rows: Vec<IncidentRow> = Vec::new();
    let task = |n: u64| format!("{:032x}", 0xbc00_0000_u64 + n);
    // ecs-events: a crashed task opens, another joins, steady state resolves.
    let (mut open, mut join, mut resolve) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let svc = SeededService::create(bed, &format!("ie{run}"), 3).await;
        let mut env = bed.function_env();
        if verbose() {
            env.push(("RUST_LOG".into(), "info,aws_calls=debug".into()));
        }
        let mut p = LambdaProcess::start(&binary("ecs-events"), "bench-inc-ecs", &env);
        p.wait_ready(Duration::from_secs(20));
        let crash = fixture("ecs/task-stopped-app-crash.json");
        for (n, e) in [
            svc.retarget(&crash, &format!("ie{run}-1"), &task(1)),
            svc.retarget(&crash, &format!("ie{run}-2"), &task(2)),
            svc.retarget(&fixture("ecs/service-steady-state.json"), &format!("ie{run}-3"), "-"),
        ]
        .iter()
        .enumerate()
        {
            let _ = tokio::task::block_in_place(|| p.invoke(e));
            let _ = n;
        }
        std::thread::sleep(Duration::from_millis(100));
        let d = decisions(&p);
        if verbose() {
            eprintln!("{:?}", d.iter().map(|x| (x.0, x.2.as_str())).collect::<Vec<_>>());
            print_calls(&p);
        }
        if d.len() >= 3 {
            open.push(d[0].0);
            join.push(d[1].0);
            resolve.push(d[2].0);
        }
    }
    rows.push(("ecs-events (stopped task, stopped task, steady state)", open, join, resolve));
    // alarm-responder: the CPU alarm opens, the 5xx alarm joins, both OKs resolve (the second counts).
    let (mut open, mut join, mut resolve) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let svc = SeededService::create(bed, &format!("ia{run}"), 3).await;
        let mut env = bed.function_env();
        if verbose() {
            env.push(("RUST_LOG".into(), "info,aws_calls=debug".into()));
        }
        let mut p = LambdaProcess::start(&binary("alarm-responder"), "bench-inc-alarm", &env);
        p.wait_ready(Duration::from_secs(20));
        let point = |file: &str, id: &str| {
            let mut v = fixture(file);
            v["id"] = Value::from(id);
            for m in v["detail"]["configuration"]["metrics"].as_array_mut().into_iter().flatten() {
                if let Some(dims) = m.pointer_mut("/metricStat/metric/dimensions") {
                    *dims = serde_json::json!({"ClusterName": svc.cluster, "ServiceName": svc.service});
                }
            }
            v
        };
        let mut cpu = point("alarm/eventbridge-metric-cpu.json", &format!("ia{run}-1"));
        let mut five = point("alarm/eventbridge-metric-math-5xx-rate.json", &format!("ia{run}-2"));
        bed.own_alarm(&mut cpu, "ALARM").await;
        bed.own_alarm(&mut five, "ALARM").await;
        let _ = tokio::task::block_in_place(|| p.invoke(&cpu));
        let _ = tokio::task::block_in_place(|| p.invoke(&five));
        std::thread::sleep(Duration::from_millis(1100));
        let mut cpu_ok = point("alarm/eventbridge-metric-cpu-ok.json", &format!("ia{run}-3"));
        bed.own_alarm(&mut cpu_ok, "OK").await;
        let _ = tokio::task::block_in_place(|| p.invoke(&cpu_ok));
        let mut five_ok = five.clone();
        five_ok["id"] = Value::from(format!("ia{run}-4"));
        five_ok["detail"]["state"]["value"] = Value::from("OK");
        bed.own_alarm(&mut five_ok, "OK").await;
        let _ = tokio::task::block_in_place(|| p.invoke(&five_ok));
        std::thread::sleep(Duration::from_millis(100));
        let d = decisions(&p);
        if verbose() {
            eprintln!("{:?}", d.iter().map(|x| (x.0, x.2.as_str())).collect::<Vec<_>>());
            print_calls(&p);
        }
        if d.len() >= 4 {
            open.push(d[0].0);
            join.push(d[1].0);
            resolve.push(d[3].0);
        }
    }
    rows.push(("alarm-responder (CPU ALARM, 5xx ALARM, both OK)", open, join, resolve));
    // pipeline-events: an action failure opens, its stage's failure joins, a later success resolves.
    let (mut open, mut join, mut resolve) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let pipeline = format!("{}-bench{run}-prod", bed.prefix);
        let mut env = bed.function_env();
        if verbose() {
            env.push(("RUST_LOG".into(), "info,aws_calls=debug".into()));
        }
        let mut p = LambdaProcess::start(&binary("pipeline-events"), "bench-inc-pipeline", &env);
        p.wait_ready(Duration::from_secs(20));
        let event = |file: &str, execution: &str, id: &str| {
            let mut v = fixture(&format!("pipeline/{file}"));
            v["id"] = Value::from(id);
            v["detail"]["pipeline"] = Value::from(pipeline.clone());
            v["detail"]["execution-id"] = Value::from(execution);
            v["resources"] = serde_json::json!([format!("arn:aws:codepipeline:us-east-1:111122223333:{pipeline}")]);
            v
        };
        for e in [
            event("action-failed-codebuild.json", "exec-1", &format!("ip{run}-1")),
            event("stage-failed.json", "exec-1", &format!("ip{run}-2")),
            event("pipeline-execution-succeeded.json", "exec-2", &format!("ip{run}-3")),
        ] {
            let _ = tokio::task::block_in_place(|| p.invoke(&e));
        }
        std::thread::sleep(Duration::from_millis(100));
        let d = decisions(&p);
        if verbose() {
            eprintln!("{:?}", d.iter().map(|x| (x.0, x.2.as_str())).collect::<Vec<_>>());
            print_calls(&p);
        }
        if d.len() >= 3 {
            open.push(d[0].0);
            join.push(d[1].0);
            resolve.push(d[2].0);
        }
    }
    rows.push(("pipeline-events (action FAILED, stage FAILED, a later SUCCEEDED)", open, join, resolve));
    println!("\n| incident (median of {RUNS}) | AWS calls to open | to join | to resolve |");
    println!("|---|---|---|---|");
    let med = |v: &[u64]| {
        if v.is_empty() { "-".to_string() } else { format!("{:.0}", median(v.iter().map(|x| *x as f64).collect())) }
    };
    for (label, o, j, r) in rows {
        println!("| {label} | {} | {} | {} |", med(&o), med(&j), med(&r));
    }
}

/// AWS calls, handler time and wall time of each scheduled job over `n`
/// seeded services (one cluster), each with an open incident (one crashed
/// task through ecs-events) that the escalation run escalates
/// (`ESCALATE_AFTER_MINUTES=0`). No datapoints are put: the calls do not
/// depend on them, and the local server's GetMetricData scans every
/// datapoint per query and period, which would measure the emulator.
async fn reports_at_scale() {
    let sizes: Vec<usize> = std::env::var("BENCH_SCALE")
        .unwrap_or_else(|_| "1,10,100".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!("\n| services | job | AWS calls | calls per service | handler time (ms) | wall time (ms) |");
    println!("|---|---|---|---|---|---|");
    for n in sizes {
        let bed = TestBed::new(&format!("scale{n}")).await;
        let cluster = format!("{}-cl", bed.prefix);
        let mut services = Vec::new();
        for k in 0..n {
            services.push(SeededService::create_named(&bed, &cluster, &format!("s{k}"), 2).await);
        }
        let mut events = LambdaProcess::start(&binary("ecs-events"), "bench-scale-events", &bed.function_env());
        events.wait_ready(Duration::from_secs(20));
        let crash = fixture("ecs/task-stopped-app-crash.json");
        for (k, s) in services.iter().enumerate() {
            let event = s.retarget(&crash, &format!("scale-{n}-{k}"), &format!("{:032x}", 0x5ca1e000_u64 + k as u64));
            let _ = tokio::task::block_in_place(|| events.invoke(&event));
        }
        std::thread::sleep(Duration::from_millis(1100));
        let mut env = bed.function_env();
        env.push(("CLUSTERS".into(), cluster.clone()));
        env.push(("ESCALATE_AFTER_MINUTES".into(), "0".into()));
        let mut p = LambdaProcess::start(&binary("scheduled-reports"), "bench-scale-reports", &env);
        p.wait_ready(Duration::from_secs(20));
        let mut walls = Vec::new();
        for job in ["daily", "weekly", "escalate"] {
            let started = std::time::Instant::now();
            let r = tokio::task::block_in_place(|| p.invoke(&serde_json::json!({ "job": job })));
            walls.push((job, started.elapsed().as_secs_f64() * 1000.0, r));
        }
        std::thread::sleep(Duration::from_millis(200));
        let d = decisions(&p);
        for (k, (job, wall, _)) in walls.iter().enumerate() {
            let (calls, ms) = d.get(k).map(|x| (x.0, x.1)).unwrap_or((0, 0.0));
            println!("| {n} | {job} | {calls} | {:.1} | {ms:.0} | {wall:.0} |", calls as f64 / n as f64);
        }
    }
}

/// `BENCH_FLEET=<accounts>x<services>` (default 10x100): the scheduled jobs
/// run centrally (`ACCOUNTS` set) over that many member accounts, each
/// seeded with that many services in one cluster through the member role
/// (`TestBed::member`; the accounts are the first of `TEST_MEMBER_NETWORKS`,
/// which `scripts/bench.sh` asks `seed_network.py` for). One service per
/// account has an open incident (a crashed task through ecs-events), which
/// the escalation run escalates (`ESCALATE_AFTER_MINUTES=0`). Each job runs
/// in a fresh process, so its peak RSS is its own. Prints the seeding time
/// and one row per job: AWS calls, handler time, wall time, peak RSS.
async fn fleet_reports_at_scale() {
    use futures::StreamExt;
    let spec = std::env::var("BENCH_FLEET").unwrap_or_else(|_| "10x100".into());
    let Some((accounts, per_account)) = spec
        .split_once('x')
        .and_then(|(a, n)| Some((a.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)))
    else {
        println!("\nBENCH_FLEET={spec}: expected <accounts>x<services>, e.g. 10x100");
        return;
    };
    let members: Vec<String> = std::env::var("TEST_MEMBER_NETWORKS")
        .unwrap_or_default()
        .split(';')
        .filter_map(|m| m.split(':').next())
        .filter(|a| a.len() == 12)
        .map(str::to_string)
        .take(accounts)
        .collect();
    if members.len() < accounts {
        println!(
            "\nfleet bench: {} member networks seeded, {accounts} asked for (set TEST_MEMBER_ACCOUNTS for seed_network.py, as scripts/bench.sh does)",
            members.len()
        );
        if members.is_empty() {
            return;
        }
    }
    let bed = TestBed::new("fleet").await;
    let cluster = format!("{}-cl", bed.prefix);
    let seeding = std::time::Instant::now();
    let mut first_of_each = Vec::new();
    for account in &members {
        let member = bed.member(account).await;
        let services: Vec<SeededService> = futures::stream::iter(0..per_account)
            .map(|k| {
                let (member, cluster) = (&member, &cluster);
                async move { SeededService::create_named(member, cluster, &format!("s{k}"), 2).await }
            })
            .buffered(4)
            .collect()
            .await;
        first_of_each.extend(services.into_iter().next());
    }
    let seeded_s = seeding.elapsed().as_secs_f64();
    let accounts_env = members.join(",");
    let mut env = bed.function_env();
    env.push(("ACCOUNTS".into(), accounts_env.clone()));
    let mut events = LambdaProcess::start(&binary("ecs-events"), "bench-fleet-events", &env);
    events.wait_ready(Duration::from_secs(20));
    let crash = fixture("ecs/task-stopped-app-crash.json");
    for (k, s) in first_of_each.iter().enumerate() {
        let event = s.retarget(&crash, &format!("fleet-{k}"), &format!("{:032x}", 0xf1ee_7000_u64 + k as u64));
        let _ = tokio::task::block_in_place(|| events.invoke(&event));
    }
    drop(events);
    std::thread::sleep(Duration::from_millis(1100));
    env.push(("CLUSTERS".into(), cluster.clone()));
    env.push(("ESCALATE_AFTER_MINUTES".into(), "0".into()));
    println!(
        "\nFleet: {} member accounts x {per_account} services ({} services; seeded in {seeded_s:.0} s, {:.0} ms per service), {} open incidents",
        members.len(),
        members.len() * per_account,
        seeded_s * 1000.0 / (members.len() * per_account).max(1) as f64,
        first_of_each.len()
    );
    println!("\n| fleet | job | AWS calls | handler time (ms) | wall time (ms) | peak RSS (MiB) | outcome |");
    println!("|---|---|---|---|---|---|---|");
    for job in ["daily", "weekly", "escalate"] {
        let mut p = LambdaProcess::start(&binary("scheduled-reports"), &format!("bench-fleet-{job}"), &env);
        p.wait_ready(Duration::from_secs(20));
        let started = std::time::Instant::now();
        // Up to the function's 300 s timeout and beyond: the local server is slower than AWS.
        let r = tokio::task::block_in_place(|| {
            p.invoke_with_id(&serde_json::json!({ "job": job }), &format!("fleet-{job}"), Duration::from_secs(900))
        });
        let wall = started.elapsed().as_secs_f64() * 1000.0;
        std::thread::sleep(Duration::from_millis(200));
        let rss = p.peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
        let (calls, ms) = decisions(&p).first().map(|x| (x.0, x.1)).unwrap_or((0, 0.0));
        let what = match r {
            None => "no answer in 900 s".to_string(),
            Some(autopilot_tests::InvokeResult::Response(v)) => {
                v["summary"].as_str().unwrap_or("").chars().take(140).collect::<String>()
            }
            Some(autopilot_tests::InvokeResult::Error { error_type, error_message }) => {
                format!("ERROR {error_type}: {}", error_message.chars().take(120).collect::<String>())
            }
        };
        println!(
            "| {} x {per_account} | {job} | {calls} | {ms:.0} | {wall:.0} | {rss:.1} | {} |",
            members.len(),
            what.replace('|', "/")
        );
    }
}

/// What rendering the weekly review costs in memory and time for 100 and
/// 1,000 services with a full week of hourly datapoints each (synthetic
/// answers through the same planner, reader, judge and renderers as the
/// flow; the bench binary is a debug build, so these are upper bounds).
fn weekly_render_at_scale() {
    use shared::reports::weekly::{self as wr, LoadBalancedTarget, MetricAnswers, ServiceRef};
    let end = 1_795_000_000 - 1_795_000_000 % wr::HOUR;
    let start = end - wr::WINDOW_SECONDS;
    println!(
        "\n| services (synthetic week) | HTML | JSON | render HTML + JSON (ms) | redact HTML (text and chart labels) + JSON (ms) | peak RSS of the bench |"
    );
    println!("|---|---|---|---|---|---|");
    for n in [100usize, 1000] {
        let refs: Vec<ServiceRef> = (0..n)
            .map(|i| ServiceRef {
                cluster: "prod".into(),
                service: format!("svc{i}"),
                targets: vec![LoadBalancedTarget {
                    target_group: format!("targetgroup/svc{i}/0123456789abcdef"),
                    load_balancer: Some("app/prod/0123456789abcdef".into()),
                }],
            })
            .collect();
        let mut answers = MetricAnswers::default();
        for q in wr::plan_queries(&refs, wr::WINDOW_SECONDS).into_iter().flatten() {
            let step = q.period as i64;
            let points: Vec<(i64, f64)> = (0..(wr::WINDOW_SECONDS / step))
                .map(|k| (start + k * step, 20.0 + ((k * 7 + q.id.len() as i64) % 50) as f64))
                .collect();
            if !q.is_percentile() {
                answers.values.insert(q.id.clone(), points);
            }
        }
        let judged: Vec<_> = refs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut unread = Vec::new();
                let metrics = wr::service_metrics(i, r, &answers, (start, end), &mut unread);
                let facts = wr::WeekFacts {
                    cluster: r.cluster.clone(),
                    service: r.service.clone(),
                    capacity: wr::CapacityFacts {
                        size: Some(wr::FargateSize { cpu: 512, memory: 1024 }),
                        running: 2,
                        desired: 2,
                        autoscaling: None,
                    },
                    metrics,
                    unread,
                    ..Default::default()
                };
                wr::judge(facts, start, end, 3600)
            })
            .collect();
        let window = wr::ReportWindow { week: "2026-W49".into(), start, end, generated_at: "bench".into() };
        let t0 = std::time::Instant::now();
        let report = wr::build(&window, judged, 0, 0, Vec::new());
        let page = wr::html(&report);
        let mut json = serde_json::to_value(&report).unwrap_or(Value::Null);
        let rendered = t0.elapsed().as_secs_f64() * 1000.0;
        let redactor = shared::telemetry::redactor();
        let t1 = std::time::Instant::now();
        let page = wr::scrub_page(&page, |t| redactor.text(t));
        redactor.json(&mut json);
        let redacted = t1.elapsed().as_secs_f64() * 1000.0;
        let json_bytes = json.to_string().len();
        // The bench process's peak RSS so far (this report, its JSON tree and page included).
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
            })
            .unwrap_or_else(|| "?".into());
        println!(
            "| {n} | {:.1} MiB | {:.1} MiB | {rendered:.0} | {redacted:.0} | {peak} |",
            page.len() as f64 / 1048576.0,
            json_bytes as f64 / 1048576.0
        );
    }
}

/// From the event to the rollback call, on 5 fresh services each with a
/// fresh release (`event(service, the release's revision, n)`): the time,
/// the AWS calls before the mutating call (and which), and the whole
/// invocation. `new_deployment`: the release starts a deployment of its own
/// (the local server's UpdateService alone only changes the revision).
async fn rollback_path(
    bed: &TestBed,
    label: &str,
    new_deployment: bool,
    event: impl Fn(&SeededService, &str, u32) -> Value,
) {
    println!("\n| {label} -> rollback (median of 5 services) | value |");
    println!("|---|---|");
    let mut to_call = Vec::new();
    let mut calls_before = Vec::new();
    let mut totals = Vec::new();
    let mut path = String::new();
    for n in 0..5u32 {
        let svc = SeededService::create(bed, &format!("rb{}{n}", label.len()), 2).await;
        let bad = if new_deployment {
            svc.release(bed, "broken").await.0
        } else {
            svc.deploy_new_revision(bed, "broken").await
        };
        let mut env = bed.function_env();
        env.push(("RUST_LOG".into(), "info,aws_calls=debug".into()));
        let mut p = LambdaProcess::start(&binary("ecs-events"), "bench-rollback", &env);
        p.wait_ready(Duration::from_secs(20));
        let _ = tokio::task::block_in_place(|| p.invoke(&event(&svc, &bad, n)));
        std::thread::sleep(Duration::from_millis(100));
        let lines: Vec<Value> = p.stdout().iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
        if let Some(i) = lines.iter().position(|v| v["decision"] == "mutating-call") {
            let call = &lines[i];
            to_call.push(call["to_call_ms"].as_f64().unwrap_or(0.0));
            calls_before.push(call["calls_before_call"].as_f64().unwrap_or(0.0));
            if path.is_empty() {
                let ops: Vec<String> = lines[..i]
                    .iter()
                    .filter(|v| v["message"] == "aws call")
                    .map(|v| {
                        format!("{}.{}", v["service"].as_str().unwrap_or("?"), v["operation"].as_str().unwrap_or("?"))
                    })
                    .collect();
                path = ops.join(", ");
            }
        }
        if let Some(done) = lines.iter().find(|v| v["decision"] == "outcome") {
            totals.push(done["handler_ms"].as_f64().unwrap_or(0.0));
        }
    }
    if to_call.is_empty() {
        println!("| no rollback call was made | - |");
        return;
    }
    println!("| event received -> rollback call issued (ms) | {:.1} |", median(to_call));
    println!("| AWS calls before the rollback call | {:.0} |", median(calls_before));
    println!("| whole invocation incl. diagnosis, evidence, alert (ms) | {:.1} |", median(totals));
    println!("\ncalls before the rollback call: {path}");
}

/// Time and AWS calls from the event to the rollback call: a failed
/// deployment, and the first stopped task whose reason proves a fresh
/// release broken (its image does not exist).
async fn rollback_paths(bed: &TestBed) {
    rollback_path(bed, "failed deployment", false, |svc, _bad, n| {
        svc.retarget(&fixture("ecs/deployment-failed.json"), &format!("rb-{n}"), "-")
    })
    .await;
    rollback_path(bed, "first definite-failure stop (image not found)", true, |svc, bad, n| {
        let mut v = svc.retarget(
            &fixture("ecs/task-stopped-image-pull.json"),
            &format!("df-{n}"),
            &format!("{:032x}", 0xdf00 + n),
        );
        v["detail"]["taskDefinitionArn"] = Value::from(bad);
        v
    })
    .await;
}
