//! The README demo: a real incident replayed against the local AWS server,
//! through the real `ecs-events` binary under the Lambda Runtime API.
//!
//! A Fargate service `checkout` (3 tasks desired, behind a target group) runs
//! revision 1 of its task definition, which carries a database password and
//! logs to CloudWatch Logs. Release v2.4.0 (revision 2) is deployed and its
//! tasks die with OutOfMemoryError: eight stopped-task events arrive in a
//! burst (one delivered twice). autopilot opens one incident, rolls the
//! service back to revision 1 through the bounded-action engine, alerts once
//! and keeps the evidence; then ECS reports steady state and the incident is
//! resolved with its time to recover. The demo prints what each invocation
//! returned, the service before and after, the notifications a subscriber
//! received, the evidence kept and the action ledger. Then a gated
//! deployment: ECS asks the `deployment-hook` function about release v3.0.0
//! of a second service at POST_SCALE_UP; the hook bakes it (IN_PROGRESS)
//! until a task of that release stops (its image is not in the registry),
//! then answers FAILED, naming the cause, so that ECS rolls it back before
//! it takes production traffic.

use autopilot_tests::{InvokeResult, LambdaProcess, SeededService, TestBed, binary, fixture};
use serde_json::Value;
use std::time::Duration;

fn show(label: &str, result: InvokeResult) -> Value {
    match result {
        InvokeResult::Response(v) => {
            println!(
                "  {label:<22} -> {} {} {} | incident {} | notified {}",
                v["severity"].as_str().unwrap_or("?"),
                v["cause"].as_str().unwrap_or("?"),
                v["kind"].as_str().unwrap_or("?"),
                v["incident"].as_str().unwrap_or("-"),
                v["notified"].as_str().unwrap_or("-"),
            );
            v
        }
        InvokeResult::Error { error_type, error_message } => {
            println!("  {label:<22} -> error {error_type}: {error_message}");
            Value::Null
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let bed = TestBed::new("demo").await;
    let svc = SeededService::create(&bed, "checkout", 3).await;
    let task = |n: u64| format!("{:032x}", 0x5eed_0000_u64 + n);
    svc.write_crash_log(&bed, &task(0)).await;
    println!(
        "Seeded on the local AWS server: cluster {}, service {}, running {}",
        svc.cluster, svc.service, svc.task_definition_arn
    );
    let release = svc.deploy_new_revision(&bed, "v2.4.0").await;
    println!("Release v2.4.0 deployed: the service now runs {release}");

    let mut lambda = LambdaProcess::start(&binary("ecs-events"), "demo-ecs-events", &bed.function_env());
    let cold = lambda.wait_ready(Duration::from_secs(20));
    println!("ecs-events started under the Lambda Runtime API (cold start {:.1} ms)\n", cold.as_secs_f64() * 1000.0);

    println!("1. A crash loop: 8 stopped-task events (OutOfMemoryError), one delivered twice");
    let mut oom = fixture("ecs/task-stopped-oom-on-container.json");
    oom["detail"]["taskDefinitionArn"] = Value::from(release.clone());
    let mut first = Value::Null;
    for n in 0..8u64 {
        let event = svc.retarget(&oom, &format!("demo-stop-{n}"), &task(n));
        let v =
            show(&format!("task {} stopped", &task(n)[24..]), tokio::task::block_in_place(|| lambda.invoke(&event)));
        if n == 0 {
            first = v;
        }
    }
    let again = svc.retarget(&oom, "demo-stop-3", &task(3));
    show("duplicate delivery", tokio::task::block_in_place(|| lambda.invoke(&again)));

    let (now_running, desired) = svc.current(&bed).await;
    println!("\n   The service now runs {now_running} ({desired} desired): rolled back by the engine");

    println!("\n2. ECS replaces the tasks and the service reaches steady state");
    let steady = svc.retarget(&fixture("ecs/service-steady-state.json"), "demo-steady", "-");
    show("SERVICE_STEADY_STATE", tokio::task::block_in_place(|| lambda.invoke(&steady)));

    println!("\n3. The Outcome of the first event (what `aws lambda invoke` returns)");
    println!("{}", serde_json::to_string_pretty(&first).unwrap_or_default());

    println!("\n4. What the SNS subscriber received");
    for n in bed.notifications().await {
        println!("----------------------------------------------------------------------");
        println!("Subject: {}", n.subject);
        let attrs: Vec<String> = ["severity", "cluster", "service", "cause", "kind"]
            .iter()
            .map(|k| format!("{k}={}", n.attributes[*k]["Value"].as_str().unwrap_or("?")))
            .collect();
        println!("Attributes: {}\n", attrs.join(" "));
        println!("{}", n.message);
    }
    println!("----------------------------------------------------------------------");

    println!("\n5. Evidence kept in s3://{}/", bed.bucket);
    for (key, body) in bed.evidence_objects("").await {
        // A document inside bundle.json is listed as `<bundle key>#<name>`: a part, not an object.
        if let Some((_, name)) = key.split_once('#') {
            println!("      {name}  ({} bytes, inside bundle.json)", body.len());
            continue;
        }
        let head = bed.s3.head_object().bucket(&bed.bucket).key(&key).send().await.ok();
        println!(
            "  {key}  ({} bytes, {})",
            head.as_ref().and_then(|h| h.content_length()).unwrap_or(0),
            head.as_ref()
                .and_then(|h| h.server_side_encryption())
                .map(|e| e.as_str().to_string())
                .unwrap_or_else(|| "unencrypted".into())
        );
    }
    println!("\n6. The action ledger (every decision, with its reason)");
    for (action, status, detail) in svc.ledger(&bed).await {
        println!("  {action} {status}: {detail}");
    }
    if let Some(peak) = lambda.peak_rss_kib() {
        println!("\necs-events peak RSS: {:.1} MiB", peak as f64 / 1024.0);
    }

    gated_deployment(&bed, &mut lambda).await;
}

/// A hook fixture (the payload ECS documents) aimed at `svc`.
fn hook_call(svc: &SeededService, file: &str) -> Value {
    let (prefix, _) = svc.service_arn.split_once(":service/").unwrap_or_default();
    let text = fixture(file)
        .to_string()
        .replace(
            "arn:aws:ecs:us-west-2:111122223333:service-revision/prod/api/",
            &format!("{prefix}:service-revision/{}/{}/", svc.cluster, svc.service),
        )
        .replace("arn:aws:ecs:us-west-2:111122223333:service/prod/api", &svc.service_arn);
    serde_json::from_str(&text).unwrap_or_default()
}

fn show_hook(label: &str, result: InvokeResult) -> Value {
    match result {
        InvokeResult::Response(v) => {
            println!(
                "  {label:<22} -> hookStatus {}{}",
                v["hookStatus"].as_str().unwrap_or("?"),
                v["callBackDelay"].as_i64().map(|d| format!(", callBackDelay {d} s")).unwrap_or_default()
            );
            v
        }
        InvokeResult::Error { error_type, error_message } => {
            println!("  {label:<22} -> error {error_type}: {error_message}");
            Value::Null
        }
    }
}

async fn gated_deployment(bed: &TestBed, events: &mut LambdaProcess) {
    println!("\n7. A gated deployment: ECS asks the deployment hook before release v3.0.0 takes traffic");
    let svc = SeededService::create(bed, "payments", 2).await;
    // ECS rolls back on the hook's FAILED; here the engine only plans, so
    // that what the demo shows is the gate's doing.
    svc.tag(bed, "autopilot:mode", "dry-run").await;
    let green = svc.deploy_new_revision(bed, "v3.0.0").await;
    println!("   {}/{} deploys {green} (tagged autopilot:mode=dry-run: the gate decides)", svc.cluster, svc.service);
    let mut hook = LambdaProcess::start(&binary("deployment-hook"), "demo-deployment-hook", &bed.function_env());
    hook.wait_ready(Duration::from_secs(20));
    let call = hook_call(&svc, "hook/post-scale-up.json");
    let first = show_hook("POST_SCALE_UP", tokio::task::block_in_place(|| hook.invoke(&call)));
    let mut stop =
        svc.retarget(&fixture("ecs/task-stopped-image-pull.json"), "demo-gate-stop", &format!("{:032x}", 0x9a7e));
    stop["detail"]["taskDefinitionArn"] = Value::from(green);
    show("green task stopped", tokio::task::block_in_place(|| events.invoke(&stop)));
    // ECS calls again after callBackDelay, handing back the hookDetails we returned.
    let mut again = call.clone();
    if !first["hookDetails"].is_null() {
        again["hookDetails"] = first["hookDetails"].clone();
    }
    let answer = show_hook("POST_SCALE_UP (again)", tokio::task::block_in_place(|| hook.invoke(&again)));
    let why: Vec<String> = hook
        .stdout()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["decision"] == "outcome")
        .filter_map(|v| v["message"].as_str().map(str::to_string))
        .collect();
    if let Some(last) = why.last() {
        println!("   the hook's decision: {last}");
    }
    println!("   ECS reads hookStatus {} and rolls the deployment back", answer["hookStatus"].as_str().unwrap_or("?"));
    let alerts: Vec<String> = bed
        .notifications()
        .await
        .into_iter()
        .filter(|n| n.attributes["service"]["Value"].as_str() == Some(svc.service.as_str()))
        .map(|n| n.subject)
        .collect();
    for subject in alerts {
        println!("   alert: {subject}");
    }
}
