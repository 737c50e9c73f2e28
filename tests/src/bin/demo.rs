//! The README demo: real event payloads replayed through the real function
//! binaries against the local AWS server; prints what each function returned.

use autopilot_tests::{LambdaProcess, TestBed, binary, fixture};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let bed = TestBed::new("demo").await;
    let replay: &[(&str, &[&str])] = &[
        (
            "ecs-events",
            &["ecs/task-stopped-oom-on-container.json", "ecs/deployment-failed.json", "ecs/service-steady-state.json"],
        ),
        ("alarm-responder", &["alarm/eventbridge-metric-cpu.json", "alarm/sns-metric-unhealthy-hosts.json"]),
        ("pipeline-events", &["pipeline/action-failed-codebuild.json"]),
        ("scheduled-reports", &["schedule/job-daily.json"]),
        ("runbook", &["runbook/rollback-dry-run.json"]),
    ];
    for (function, files) in replay {
        let mut p = LambdaProcess::start(&binary(function), function, &bed.function_env());
        let cold = p.wait_ready(std::time::Duration::from_secs(20));
        println!("\n=== {function} (cold start {:.1} ms)", cold.as_secs_f64() * 1000.0);
        for file in *files {
            let result = tokio::task::block_in_place(|| p.invoke(&fixture(file)));
            println!("--- {file}");
            match result {
                autopilot_tests::InvokeResult::Response(v) => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
                }
                autopilot_tests::InvokeResult::Error { error_type, error_message } => {
                    println!("error {error_type}: {error_message}")
                }
            }
        }
    }
}
